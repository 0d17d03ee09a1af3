/*
 * plugin_entropy.c: entropy contributions and attestation reports.
 *
 * Why this exists (seed 002): devices contribute health-tested, conditioned
 * entropy sealed to the cluster head; it is mixed into the key pool, never
 * trusted alone (ig_pool_derive always adds fresh OS randomness). A device
 * whose measured software is not on the policy's list is flagged and its
 * entropy refused. Each refusal is counted by reason and by device.
 */
#include "plugin.h"

#include <cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_hkdf.h"
#include "ig_json.h"

#define ATTEST_DOMAIN "iotguard-attest-v1"
#define ATTEST_MAX_AGE_MS (10u * 60u * 1000u)
#define STATS_MAX_DEVICES 1000

static const char *const refusal_names[IG_ENT_REFUSAL_COUNT] = {
	[IG_ENT_MALFORMED] = "malformed",
	[IG_ENT_REPLAYED] = "replayed",
	[IG_ENT_OVER_RATE] = "over_rate",
	[IG_ENT_ATTESTATION] = "attestation",
};

int ig_plugin_entropy_init(ig_plugin *pl)
{
	const uint8_t *sk = ig_ledger_ch_sk(pl->ledger);
	if (!sk)
		return -1;
	uint8_t pool_key[32];
	static const char info[] = "iotguard entropy pool v1";
	if (ig_hkdf(pool_key, sizeof pool_key, NULL, 0, sk, IG_SEED_BYTES, (const uint8_t *)info, sizeof info - 1) != IG_OK)
		return -1;
	ig_pool_init(&pl->pool, pool_key);
	sodium_memzero(pool_key, sizeof pool_key);
	/* The pool starts from OS randomness, so it is never weaker than the
	 * cluster head's own randomness, whatever devices send. */
	uint8_t seed[32];
	randombytes_buf(seed, sizeof seed);
	ig_pool_mix(&pl->pool, "-", 0, seed, sizeof seed);
	sodium_memzero(seed, sizeof seed);

	ig_join_key_derive(&pl->join_key, sk);
	if (crypto_sign_ed25519_pk_to_curve25519(pl->ch_x_pk, pl->ch_pk) != 0 ||
	    crypto_sign_ed25519_sk_to_curve25519(pl->ch_x_sk, sk) != 0)
		return -1;
	return 0;
}

static void refuse(ig_plugin *pl, ig_device *d, ig_entropy_refusal why)
{
	pl->entropy_refused[why]++;
	if (d)
		d->entropy_refused[why]++;
}

void ig_plugin_entropy_message(ig_plugin *pl, const char *id, const void *payload, uint32_t len)
{
	ig_device *d = ig_state_device(pl->state, id);
	if (!d)
		return;
	if (d->attest == IG_ATTEST_DISALLOWED) {
		refuse(pl, d, IG_ENT_ATTESTATION);
		return;
	}
	cJSON *msg = len <= 1024 ? cJSON_ParseWithLength(payload, len) : NULL;
	const cJSON *seq = msg ? cJSON_GetObjectItemCaseSensitive(msg, "seq") : NULL;
	const cJSON *sealed = msg ? cJSON_GetObjectItemCaseSensitive(msg, "sealed") : NULL;
	uint8_t box[crypto_box_SEALBYTES + 8 + IG_ENTROPY_BLOCK_BYTES], plain[8 + IG_ENTROPY_BLOCK_BYTES];
	size_t box_len = 0;
	uint64_t outer_seq = 0;
	bool ok = ig_json_uint(&outer_seq, seq, 1, IG_JSON_UINT_MAX) == IG_OK && cJSON_IsString(sealed) &&
	          sodium_base642bin(box, sizeof box, sealed->valuestring, strlen(sealed->valuestring), NULL, &box_len,
	                            NULL, sodium_base64_VARIANT_ORIGINAL) == 0 &&
	          box_len == sizeof box && crypto_box_seal_open(plain, box, box_len, pl->ch_x_pk, pl->ch_x_sk) == 0;
	cJSON_Delete(msg);
	if (!ok || ig_get_u64(plain) != outer_seq) {
		sodium_memzero(plain, sizeof plain);
		refuse(pl, d, IG_ENT_MALFORMED);
		return;
	}
	uint64_t now = ig_now_ms();
	if (outer_seq <= d->entropy_last_seq) {
		refuse(pl, d, IG_ENT_REPLAYED);
	} else if (d->entropy_last_ms && now - d->entropy_last_ms < pl->cfg.entropy_min_interval_ms) {
		refuse(pl, d, IG_ENT_OVER_RATE);
	} else {
		ig_pool_mix(&pl->pool, id, outer_seq, plain + 8, IG_ENTROPY_BLOCK_BYTES);
		d->entropy_last_seq = outer_seq;
		d->entropy_last_ms = now;
		d->entropy_accepted++;
		pl->entropy_accepted++;
	}
	sodium_memzero(plain, sizeof plain);
}

/* ---- attestation ---- */

typedef struct attest_pending {
	ig_plugin *pl;
	char id[IG_ID_MAX + 1];
} attest_pending;

static void on_attest_durable(void *ctx, int status, const ig_record *rec)
{
	attest_pending *ap = ctx;
	ig_plugin *pl = ap->pl;
	ig_device *d = ig_state_device(pl->state, ap->id);
	if (d)
		d->attest_in_flight = false;
	if (status == IG_OK) {
		ig_plugin_publish_event(pl, rec);
	} else if (status == IG_ERR_UNKNOWN) {
		/* An accepted report gets no reply, so a silent loss would look
		 * like success; the agent reports again at its next connect, which
		 * after the restart is a first report and recorded. */
		ig_plugin_reply_error(pl, ap->id, "attest", NULL, IG_PLUGIN_E_OUTCOME_UNKNOWN,
		                      "a disk write failed after the attest record was written, so it may or may not be "
		                      "durable; report the measurement again once the broker is back");
	} else {
		/* Certainly not recorded: forget the measurement, so that the same
		 * report again counts as a change and is written. The verdict
		 * stays, so a disallowed device stays refused. */
		if (d)
			sodium_memzero(d->measurement, sizeof d->measurement);
		char msg[300];
		snprintf(msg, sizeof msg, "the measurement was not recorded: %s", ig_plugin_ledger_refusal(status));
		ig_plugin_reply_error(pl, ap->id, "attest", NULL, "storage_failed", msg);
	}
	free(ap);
}

static bool verify_attest(const ig_identity *who, const uint8_t m[IG_HASH_BYTES], uint64_t ts, const char *sig_hex)
{
	uint8_t sig[crypto_sign_BYTES];
	if (!sig_hex || ig_hex_decode(sig, sizeof sig, sig_hex, strlen(sig_hex)) != IG_OK)
		return false;
	uint8_t msg[sizeof ATTEST_DOMAIN + IG_ID_MAX + 1 + IG_HASH_BYTES + 8];
	size_t n = 0;
	memcpy(msg, ATTEST_DOMAIN, sizeof ATTEST_DOMAIN);   /* includes the 0x00 separator */
	n += sizeof ATTEST_DOMAIN;
	memcpy(msg + n, who->id, who->id_len);
	n += who->id_len;
	msg[n++] = 0;
	memcpy(msg + n, m, IG_HASH_BYTES);
	n += IG_HASH_BYTES;
	ig_put_u64(msg + n, ts);
	n += 8;
	return crypto_sign_verify_detached(sig, msg, n, who->pk) == 0;
}

void ig_plugin_attest_request(ig_plugin *pl, const char *id, const cJSON *req)
{
	const ig_identity *who = ig_registry_find(pl->reg, id, strlen(id));
	ig_device *d = ig_state_device(pl->state, id);
	if (!who || who->status != IG_ID_ACTIVE || !d)
		return;
	const cJSON *mj = cJSON_GetObjectItemCaseSensitive(req, "measurement");
	const cJSON *tsj = cJSON_GetObjectItemCaseSensitive(req, "ts");
	const cJSON *sj = cJSON_GetObjectItemCaseSensitive(req, "sig");
	uint8_t m[IG_HASH_BYTES];
	uint64_t ts = 0, now = ig_now_ms();
	if (!cJSON_IsString(mj) || ig_hex_decode(m, sizeof m, mj->valuestring, strlen(mj->valuestring)) != IG_OK ||
	    ig_json_uint(&ts, tsj, 0, IG_JSON_UINT_MAX) != IG_OK || !cJSON_IsString(sj)) {
		ig_plugin_reply_error(pl, id, "attest", NULL, "malformed", "attest needs \"measurement\" (64 hex), \"ts\" (Unix ms, a "
		                      "whole number up to 2^53-1) and \"sig\" (128 hex)");
		return;
	}
	if ((ts > now ? ts - now : now - ts) > ATTEST_MAX_AGE_MS) {
		ig_plugin_reply_error(pl, id, "attest", NULL, "stale", "attestation timestamp is more than 10 minutes off; check the clock");
		return;
	}
	if (!verify_attest(who, m, ts, sj->valuestring)) {
		ig_plugin_reply_error(pl, id, "attest", NULL, "bad_signature", "attestation signature does not verify with the enrolled key");
		return;
	}
	pl->attest_reports++;
	int verdict = ig_policy_measurement_allowed(pl->policy, (ig_role)who->role, m);
	uint8_t state = verdict == 1 ? IG_ATTEST_ALLOWED : verdict == 0 ? IG_ATTEST_DISALLOWED : IG_ATTEST_UNLISTED;
	bool changed = d->attest != state || sodium_memcmp(d->measurement, m, IG_HASH_BYTES) != 0;
	/* Every accepted change is a ledger record, so changes are rationed
	 * (lib/entropy.c); a refused one leaves the last recorded state. */
	ig_attest_decision dec = ig_attest_admit(&d->attest_rate, changed, d->attest_in_flight, now,
	                                         pl->cfg.attest_max_per_hour);
	if (dec == IG_ATTEST_REFUSED_RATE) {
		pl->attest_over_rate++;
		char msg[200];
		snprintf(msg, sizeof msg, d->attest_in_flight
		         ? "the previous measurement is still being recorded; report the new one again in a moment"
		         : "more than %u measurement changes this hour; the last recorded measurement stands",
		         pl->cfg.attest_max_per_hour);
		ig_plugin_reply_error(pl, id, "attest", NULL, "over_rate", msg);
		return;
	}
	if (state == IG_ATTEST_DISALLOWED && changed) {
		pl->attest_disallowed++;
		ig_plugin_log(MOSQ_LOG_WARNING, "%s reports a measurement the policy does not allow; its entropy is refused", id);
	}
	memcpy(d->measurement, m, IG_HASH_BYTES);
	d->attest = state;
	if (dec != IG_ATTEST_RECORD)
		return;
	/* First report, or a change: that is worth an audit record. */
	ig_attest a = {.allowed = verdict == 1 ? 1 : verdict == 0 ? 0 : 2};
	snprintf(a.id, sizeof a.id, "%s", id);
	memcpy(a.measurement, m, IG_HASH_BYTES);
	uint8_t body[256];
	int blen = ig_attest_encode(body, sizeof body, &a);
	attest_pending *ap = calloc(1, sizeof *ap);
	if (blen < 0 || !ap) {
		free(ap);
		return;
	}
	ap->pl = pl;
	snprintf(ap->id, sizeof ap->id, "%s", id);
	if (ig_ledger_submit(pl->ledger, IG_REC_ATTEST, body, (size_t)blen, on_attest_durable, ap) != IG_OK) {
		free(ap);
		return;
	}
	d->attest_in_flight = true;
}

/* ---- stats ---- */

typedef struct stats_ctx {
	cJSON *devices;
	cJSON *flagged;
	size_t listed;
} stats_ctx;

static bool device_stats(void *ctx, const char *id, ig_device *d)
{
	stats_ctx *sc = ctx;
	if (d->attest == IG_ATTEST_DISALLOWED)
		cJSON_AddItemToArray(sc->flagged, cJSON_CreateString(id));
	uint64_t refused = 0;
	for (int i = 0; i < IG_ENT_REFUSAL_COUNT; i++)
		refused += d->entropy_refused[i];
	if ((d->entropy_accepted || refused) && sc->listed < STATS_MAX_DEVICES) {
		cJSON *o = cJSON_AddObjectToObject(sc->devices, id);
		cJSON_AddNumberToObject(o, "accepted", (double)d->entropy_accepted);
		cJSON_AddNumberToObject(o, "refused", (double)refused);
		sc->listed++;
	}
	return true;
}

void ig_plugin_entropy_stats(ig_plugin *pl, cJSON *stats)
{
	cJSON *e = cJSON_AddObjectToObject(stats, "entropy");
	cJSON_AddNumberToObject(e, "accepted", (double)pl->entropy_accepted);
	cJSON *r = cJSON_AddObjectToObject(e, "refused");
	for (int i = 0; i < IG_ENT_REFUSAL_COUNT; i++)
		cJSON_AddNumberToObject(r, refusal_names[i], (double)pl->entropy_refused[i]);
	cJSON_AddNumberToObject(e, "pool_inputs", (double)pl->pool.inputs);
	stats_ctx sc = {.devices = cJSON_AddObjectToObject(e, "devices"), .flagged = cJSON_CreateArray()};
	ig_state_device_foreach(pl->state, device_stats, &sc);

	cJSON *a = cJSON_AddObjectToObject(stats, "attestation");
	cJSON_AddNumberToObject(a, "reports", (double)pl->attest_reports);
	cJSON_AddNumberToObject(a, "over_rate", (double)pl->attest_over_rate);
	cJSON_AddItemToObject(a, "flagged", sc.flagged);
}
