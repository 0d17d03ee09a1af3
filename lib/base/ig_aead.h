/*
 * ig_aead.h: authenticated encryption with one of the two suites and an
 * explicit nonce.
 *
 * Why this exists: every sealed byte between devices (m2m messages, coin
 * data and results) goes through these two calls, so the argument checks,
 * the "never leave unauthenticated plaintext behind" rule and the refusal
 * of AES-256-GCM on a CPU without AES-NI are written once. Nonces are
 * never random here: the caller derives them (ig_m2m.h: direction ||
 * counter), so a key never sees a nonce twice. The suite itself is
 * ig_suite.h.
 */
#ifndef IG_AEAD_H
#define IG_AEAD_H

#include "ig_common.h"
#include "ig_suite.h"

#define IG_AEAD_KEY_BYTES 32
#define IG_AEAD_TAG_BYTES 16
#define IG_KEY_ID_BYTES 16     /* names a session key on the wire */

/* Generic AEAD with an explicit nonce (ig_suite_nonce_bytes(s) bytes).
 * out must hold len + 16. Returns ciphertext length or IG_ERR_*. */
int ig_aead_seal(ig_suite s, uint8_t *out, size_t cap, const uint8_t *pt, size_t len, const uint8_t *aad,
                 size_t aad_len, const uint8_t *nonce, const uint8_t key[IG_AEAD_KEY_BYTES]);
/* Returns plaintext length, or IG_ERR_CRYPTO on a bad tag. */
int ig_aead_open(ig_suite s, uint8_t *out, size_t cap, const uint8_t *ct, size_t len, const uint8_t *aad,
                 size_t aad_len, const uint8_t *nonce, const uint8_t key[IG_AEAD_KEY_BYTES]) IG_NODISCARD;

#endif
