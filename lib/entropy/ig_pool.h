/*
 * ig_pool.h: the cluster head's keyed entropy pool.
 *
 * Why this exists (seed 002): devices contribute conditioned entropy blocks
 * (ig_entropy.h) that the cluster head mixes into one keyed state, and every
 * key the cluster head hands out is derived from it. Device entropy is
 * never trusted alone: each derivation also takes fresh OS randomness, and
 * ratchets the state so an output never reveals it.
 */
#ifndef IG_POOL_H
#define IG_POOL_H

#include "ig_common.h"

typedef struct ig_pool {
	uint8_t key[32];          /* cluster-head secret, from ch.key via HKDF */
	uint8_t state[64];
	uint64_t inputs;
} ig_pool;

void ig_pool_init(ig_pool *p, const uint8_t key[32]);
/* state = BLAKE2b-512(key = pool key, state || u8 id_len || id || u64 seq ||
 * u32 len || block). */
void ig_pool_mix(ig_pool *p, const char *id, uint64_t seq, const uint8_t *block, size_t len);
/* out = HKDF-SHA256(salt = 32 bytes of fresh OS randomness, ikm = state,
 * info = purpose || 0x00 || key_id). Also ratchets state forward so an
 * output never reveals the state. */
int ig_pool_derive(ig_pool *p, uint8_t *out, size_t out_len, const char *purpose, const uint8_t *key_id,
                   size_t key_id_len);
void ig_pool_wipe(ig_pool *p);

#endif
