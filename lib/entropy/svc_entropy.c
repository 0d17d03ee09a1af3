/*
 * svc_entropy.c: the entropy service (ig_svc_entropy.h; docs/PROTOCOL.md,
 * "Sealed message").
 *
 * Why this exists: see ig_svc_entropy.h. The checks run cheapest first, so
 * a flagged device costs no box opening, and a sample's plaintext is wiped
 * on every path.
 */
#include "ig_svc_entropy.h"

#include <cJSON.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "ig_hkdf.h"
#include "ig_json.h"

#define SAMPLE_MAX 1024
#define STATS_MAX_DEVICES 1000

static const char *const refusal_names[IG_ENT_REFUSAL_COUNT] = {
	[IG_ENT_MALFORMED] = "malformed",
	[IG_ENT_REPLAYED] = "replayed",
	[IG_ENT_OVER_RATE] = "over_rate",
	[IG_ENT_ATTESTATION] = "attestation",
};

struct ig_svc_entropy {
	ig_state *st;
	ig_pool *pool;
	uint8_t ch_x_pk[32], ch_x_sk[32];   /* X25519 form of the cluster-head key */
	ig_svc_entropy_config cfg;
	uint64_t accepted, refused[IG_ENT_REFUSAL_COUNT];
};

ig_svc_entropy *ig_svc_entropy_new(ig_state *st, ig_pool *pool, const uint8_t ch_pk[IG_PK_BYTES],
                                   const uint8_t ch_sk[IG_SK_BYTES], const ig_svc_entropy_config *cfg)
{
	ig_svc_entropy *e = calloc(1, sizeof *e);
	if (!e)
		return NULL;
	e->st = st;
	e->pool = pool;
	e->cfg = *cfg;
	uint8_t pool_key[32];
	static const char info[] = "iotguard entropy pool v1";
	if (ig_hkdf(pool_key, sizeof pool_key, NULL, 0, ch_sk, IG_SEED_BYTES, (const uint8_t *)info,
	            sizeof info - 1) != IG_OK ||
	    crypto_sign_ed25519_pk_to_curve25519(e->ch_x_pk, ch_pk) != 0 ||
	    crypto_sign_ed25519_sk_to_curve25519(e->ch_x_sk, ch_sk) != 0) {
		sodium_memzero(pool_key, sizeof pool_key);
		ig_svc_entropy_free(e);
		return NULL;
	}
	ig_pool_init(pool, pool_key);
	sodium_memzero(pool_key, sizeof pool_key);
	uint8_t seed[32];
	randombytes_buf(seed, sizeof seed);
	ig_pool_mix(pool, "-", 0, seed, sizeof seed);
	sodium_memzero(seed, sizeof seed);
	return e;
}

void ig_svc_entropy_free(ig_svc_entropy *e)
{
	if (!e)
		return;
	sodium_memzero(e, sizeof *e);
	free(e);
}

int ig_svc_entropy_decode(uint64_t *seq, uint8_t block[IG_ENTROPY_BLOCK_BYTES], const void *payload, size_t len,
                          const uint8_t ch_x_pk[32], const uint8_t ch_x_sk[32])
{
	cJSON *msg = len <= SAMPLE_MAX ? cJSON_ParseWithLength(payload, len) : NULL;
	const cJSON *seqj = cJSON_IsObject(msg) ? cJSON_GetObjectItemCaseSensitive(msg, "seq") : NULL;
	const cJSON *sealed = cJSON_IsObject(msg) ? cJSON_GetObjectItemCaseSensitive(msg, "sealed") : NULL;
	uint8_t box[crypto_box_SEALBYTES + 8 + IG_ENTROPY_BLOCK_BYTES], plain[8 + IG_ENTROPY_BLOCK_BYTES];
	size_t box_len = 0;
	uint64_t outer = 0;
	bool ok = ig_json_uint(&outer, seqj, 1, IG_JSON_UINT_MAX) == IG_OK && cJSON_IsString(sealed) &&
	          sodium_base642bin(box, sizeof box, sealed->valuestring, strlen(sealed->valuestring), NULL, &box_len,
	                            NULL, sodium_base64_VARIANT_ORIGINAL) == 0 &&
	          box_len == sizeof box && crypto_box_seal_open(plain, box, box_len, ch_x_pk, ch_x_sk) == 0 &&
	          ig_get_u64(plain) == outer;
	cJSON_Delete(msg);
	if (ok) {
		*seq = outer;
		memcpy(block, plain + 8, IG_ENTROPY_BLOCK_BYTES);
	} else {
		sodium_memzero(block, IG_ENTROPY_BLOCK_BYTES);
	}
	sodium_memzero(plain, sizeof plain);
	return ok ? IG_OK : IG_ERR_INVAL;
}

static int refuse(ig_svc_entropy *e, ig_device *d, ig_entropy_refusal why)
{
	e->refused[why]++;
	d->entropy_refused[why]++;
	return (int)why;
}

int ig_svc_entropy_message(ig_decision *out, ig_svc_entropy *e, const char *id, const void *payload, size_t len,
                           uint64_t now_ms)
{
	out->kind = IG_DECISION_NONE;
	ig_device *d = ig_state_device(e->st, id);
	if (!d)
		return IG_SVC_ENTROPY_IGNORED;
	if (d->attest == IG_ATTEST_DISALLOWED)
		return refuse(e, d, IG_ENT_ATTESTATION);
	uint64_t seq = 0;
	uint8_t block[IG_ENTROPY_BLOCK_BYTES];
	if (ig_svc_entropy_decode(&seq, block, payload, len, e->ch_x_pk, e->ch_x_sk) != IG_OK)
		return refuse(e, d, IG_ENT_MALFORMED);
	int result = IG_SVC_ENTROPY_ACCEPTED;
	if (seq <= d->entropy_last_seq) {
		result = refuse(e, d, IG_ENT_REPLAYED);
	} else if (d->entropy_last_ms && now_ms - d->entropy_last_ms < e->cfg.min_interval_ms) {
		result = refuse(e, d, IG_ENT_OVER_RATE);
	} else {
		ig_pool_mix(e->pool, id, seq, block, sizeof block);
		d->entropy_last_seq = seq;
		d->entropy_last_ms = now_ms;
		d->entropy_accepted++;
		e->accepted++;
	}
	sodium_memzero(block, sizeof block);
	return result;
}

void ig_svc_entropy_get_counts(const ig_svc_entropy *e, ig_svc_entropy_counts *out)
{
	out->accepted = e->accepted;
	memcpy(out->refused, e->refused, sizeof out->refused);
}

typedef struct stats_ctx {
	cJSON *devices;
	size_t listed;
} stats_ctx;

static bool device_stats(void *ctx, const char *id, ig_device *d)
{
	stats_ctx *sc = ctx;
	uint64_t refused = 0;
	for (int i = 0; i < IG_ENT_REFUSAL_COUNT; i++)
		refused += d->entropy_refused[i];
	if ((d->entropy_accepted || refused) && sc->listed < STATS_MAX_DEVICES) {
		cJSON *o = cJSON_AddObjectToObject(sc->devices, id);
		cJSON_AddNumberToObject(o, "accepted", (double)d->entropy_accepted);
		cJSON_AddNumberToObject(o, "refused", (double)refused);
		sc->listed++;
	}
	return sc->listed < STATS_MAX_DEVICES;
}

void ig_svc_entropy_stats(const ig_svc_entropy *e, cJSON *stats)
{
	cJSON *o = cJSON_AddObjectToObject(stats, "entropy");
	cJSON_AddNumberToObject(o, "accepted", (double)e->accepted);
	cJSON *r = cJSON_AddObjectToObject(o, "refused");
	for (int i = 0; i < IG_ENT_REFUSAL_COUNT; i++)
		cJSON_AddNumberToObject(r, refusal_names[i], (double)e->refused[i]);
	cJSON_AddNumberToObject(o, "pool_inputs", (double)e->pool->inputs);
	stats_ctx sc = {.devices = cJSON_AddObjectToObject(o, "devices")};
	ig_state_device_foreach(e->st, device_stats, &sc);
}
