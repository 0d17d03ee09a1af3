/*
 * pool.c: the cluster head's keyed entropy pool.
 *
 * Why this exists: device entropy is never trusted alone, so every pool
 * derivation also takes fresh OS randomness and ratchets the state; the
 * framing and ratchet rules live in one place. See ig_pool.h.
 */
#include "ig_pool.h"
#include "ig_hkdf.h"

#include <sodium.h>
#include <string.h>

/* ---- cluster-head pool -----------------------------------------------------
 *
 * Every input is framed with its lengths, so two different sequences of
 * (id, seq, block) can never produce the same hash input: ("ab", block) and
 * ("a", "b" || block) differ in the id length byte.
 */

#define POOL_INIT_LABEL "iotguard-pool-v1"
#define POOL_RATCHET_LABEL "ratchet"
#define POOL_PURPOSE_MAX 128
#define POOL_KEY_ID_MAX 128

void ig_pool_init(ig_pool *p, const uint8_t key[32])
{
	if (!p || !key)
		return;
	(void)ig_init();   /* BLAKE2b works either way; ig_pool_derive checks it */
	memset(p, 0, sizeof *p);
	memcpy(p->key, key, sizeof p->key);
	/* A key-dependent starting state, so two pools with different keys
	 * differ before any input. */
	crypto_generichash(p->state, sizeof p->state, (const uint8_t *)POOL_INIT_LABEL, sizeof POOL_INIT_LABEL - 1,
	                   p->key, sizeof p->key);
}

void ig_pool_mix(ig_pool *p, const char *id, uint64_t seq, const uint8_t *block, size_t len)
{
	if (!p || !id || (!block && len > 0))
		return;
	size_t id_len = strnlen(id, 256);
	if (id_len > 255 || len > UINT32_MAX)
		return;   /* cannot be framed unambiguously; callers pass ids of <= 64 bytes */
	uint8_t frame[1 + 255 + 8 + 4];
	size_t pos = 0;
	frame[pos++] = (uint8_t)id_len;
	memcpy(frame + pos, id, id_len);
	pos += id_len;
	ig_put_u64(frame + pos, seq);
	pos += 8;
	ig_put_u32(frame + pos, (uint32_t)len);
	pos += 4;

	crypto_generichash_state st;
	crypto_generichash_init(&st, p->key, sizeof p->key, sizeof p->state);
	crypto_generichash_update(&st, p->state, sizeof p->state);
	crypto_generichash_update(&st, frame, pos);
	if (len > 0)
		crypto_generichash_update(&st, block, len);
	crypto_generichash_final(&st, p->state, sizeof p->state);
	sodium_memzero(&st, sizeof st);
	sodium_memzero(frame, sizeof frame);
	p->inputs++;
}

/* state = BLAKE2b-512(key, "ratchet" || state): the old state cannot be
 * recomputed from the new one. */
static void pool_ratchet(ig_pool *p)
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, p->key, sizeof p->key, sizeof p->state);
	crypto_generichash_update(&st, (const uint8_t *)POOL_RATCHET_LABEL, sizeof POOL_RATCHET_LABEL - 1);
	crypto_generichash_update(&st, p->state, sizeof p->state);
	crypto_generichash_final(&st, p->state, sizeof p->state);
	sodium_memzero(&st, sizeof st);
}

int ig_pool_derive(ig_pool *p, uint8_t *out, size_t out_len, const char *purpose, const uint8_t *key_id,
                   size_t key_id_len)
{
	if (!p || !out || !purpose || (!key_id && key_id_len > 0))
		return IG_ERR_INVAL;
	if (out_len == 0 || out_len > IG_HKDF_MAX_OUT)
		return IG_ERR_RANGE;
	size_t purpose_len = strnlen(purpose, POOL_PURPOSE_MAX + 1);
	if (purpose_len > POOL_PURPOSE_MAX || key_id_len > POOL_KEY_ID_MAX)
		return IG_ERR_RANGE;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;

	uint8_t info[POOL_PURPOSE_MAX + 1 + POOL_KEY_ID_MAX];
	size_t info_len = 0;
	memcpy(info, purpose, purpose_len);
	info_len += purpose_len;
	info[info_len++] = 0x00;
	if (key_id_len > 0)
		memcpy(info + info_len, key_id, key_id_len);
	info_len += key_id_len;

	/* The OS share: even a pool fed only by hostile devices yields keys at
	 * least as strong as the OS generator. */
	uint8_t salt[32];
	randombytes_buf(salt, sizeof salt);
	int rc = ig_hkdf(out, out_len, salt, sizeof salt, p->state, sizeof p->state, info, info_len);
	pool_ratchet(p);
	sodium_memzero(salt, sizeof salt);
	sodium_memzero(info, sizeof info);
	if (rc != IG_OK)
		sodium_memzero(out, out_len);
	return rc;
}

void ig_pool_wipe(ig_pool *p)
{
	if (p)
		sodium_memzero(p, sizeof *p);
}
