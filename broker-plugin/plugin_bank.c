/*
 * plugin_bank.c: the bank for one-use coins (seed 001).
 *
 * Why this exists: a collector pays for each payload with a coin that is
 * also its key; an analyst redeems the coin's sealed header here and gets
 * the payload and result keys back, once. Every state change (mint, redeem,
 * refund) is answered only after its record is durable, and a coin that is
 * being redeemed is marked at once, so of two racing redeems exactly one
 * wins, and after a crash no acknowledged redeem can happen twice. The same
 * analyst repeating the same redeem (its answer was lost, or of unknown
 * outcome) gets the same keys again without a new record, so a durable
 * redeem never burns a coin for nothing.
 */
#include "plugin.h"

#include <cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_bank.h"
#include "ig_coin.h"
#include "ig_coins.h"
#include "ig_json.h"
#include "ig_topic.h"

#define HEADER_MAX 512
#define NONCE_MAX 64

static const char *const refusal_names[IG_BANK_REFUSAL_COUNT] = {
	[IG_BANK_NO_CREDIT] = "no_credit",
	[IG_BANK_UNKNOWN_COIN] = "unknown_coin",
	[IG_BANK_ALREADY_SPENT] = "already_spent",
	[IG_BANK_EXPIRED] = "expired",
	[IG_BANK_WRONG_COLLECTOR] = "wrong_collector",
	[IG_BANK_WRONG_TOPIC] = "wrong_topic",
	[IG_BANK_MALFORMED] = "malformed",
	[IG_BANK_NOT_ALLOWED] = "not_allowed",
	[IG_BANK_OVER_LIMIT] = "over_limit",
	[IG_BANK_STORAGE_FAILED] = "storage_failed",
	[IG_BANK_OUTCOME_UNKNOWN] = IG_PLUGIN_E_OUTCOME_UNKNOWN,
};

/* Spent and expired coins are pruned a slice at a time, at most every 10 ms:
 * the tick fires on every loop pass under load, and a slice per pass cost
 * about 3% of publish throughput (bench_publish) for no benefit, since a
 * slice per 10 ms still sweeps 1.6M slots a second. */
#define PRUNE_SLOTS_PER_STEP 16384
#define PRUNE_INTERVAL_MS 10

void ig_plugin_bank_tick(ig_plugin *pl, uint64_t now_s)
{
	uint64_t now_ms = ig_now_ms();
	if (now_ms - pl->coins_pruned_ms < PRUNE_INTERVAL_MS)
		return;
	pl->coins_pruned_ms = now_ms;
	ig_coins_prune_step(pl->coins, now_s, &pl->coins_prune_cursor, PRUNE_SLOTS_PER_STEP);
}

/* Errors carry the request's type and nonce back, so a client with several
 * requests in flight knows which one failed. */
static void bank_error(ig_plugin *pl, const char *id, const char *request, ig_bank_refusal why, const char *nonce,
                       const char *message)
{
	pl->bank_refused[why]++;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "error");
	cJSON_AddStringToObject(o, "error", refusal_names[why]);
	cJSON_AddStringToObject(o, "request", request);
	if (nonce)
		cJSON_AddStringToObject(o, "nonce", nonce);
	cJSON_AddStringToObject(o, "message", message);
	ig_plugin_reply(pl, id, o);
}

static const char *request_nonce(const cJSON *req)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(req, "nonce");
	if (!cJSON_IsString(n))
		return NULL;
	size_t len = strlen(n->valuestring);
	if (len == 0 || len > NONCE_MAX)
		return NULL;
	for (size_t i = 0; i < len; i++)
		if (n->valuestring[i] < 0x21 || n->valuestring[i] > 0x7e)
			return NULL;
	return n->valuestring;
}

static const ig_identity *active_with_role(ig_plugin *pl, const char *id, ig_role role)
{
	const ig_identity *who = ig_registry_find(pl->reg, id, strlen(id));
	return who && who->status == IG_ID_ACTIVE && who->role == role ? who : NULL;
}

/* Boxes plain for `to` from the cluster head and adds box_nonce/box to o. */
static bool add_box(ig_plugin *pl, cJSON *o, const ig_identity *to, const uint8_t *plain, size_t len)
{
	const ig_box_key *bk = ig_state_box_key(pl->state, to, ig_ledger_ch_sk(pl->ledger));
	uint8_t box[IG_COINS_PER_REQUEST * IG_COIN_BYTES + crypto_box_MACBYTES], nonce[crypto_box_NONCEBYTES];
	if (!bk || len + crypto_box_MACBYTES > sizeof box)
		return false;
	randombytes_buf(nonce, sizeof nonce);
	if (crypto_box_easy_afternm(box, plain, len, nonce, bk->k) != 0)
		return false;
	char nonce_hex[2 * sizeof nonce + 1];
	char b64[sodium_base64_ENCODED_LEN(sizeof box, sodium_base64_VARIANT_ORIGINAL)];
	ig_hex_encode(nonce_hex, nonce, sizeof nonce);
	sodium_bin2base64(b64, sizeof b64, box, len + crypto_box_MACBYTES, sodium_base64_VARIANT_ORIGINAL);
	cJSON_AddStringToObject(o, "box_nonce", nonce_hex);
	cJSON_AddStringToObject(o, "box", b64);
	return true;
}

/* ---- mint ---- */

typedef struct mint_pending {
	ig_plugin *pl;
	char id[IG_ID_MAX + 1];
	char nonce[NONCE_MAX + 1];
	uint32_t count;
	uint64_t expires_at;
	uint8_t coins[IG_COINS_PER_REQUEST][IG_COIN_BYTES];
} mint_pending;

/* The mint record reached the kernel but its batch failed, so it may be
 * replayed at the next start, debiting the collector for these coins. The
 * coins are therefore delivered anyway, marked as of unknown outcome: once
 * the broker is back, the collector spends or refunds them (a refund of a
 * coin whose mint was lost answers unknown_coin and costs nothing), so a
 * durable mint's credit is never lost. The index is the mint record's if it
 * exists, for the operator's `iotguard show`. */
static void mint_outcome_unknown(ig_plugin *pl, const mint_pending *mp, const ig_identity *who, const ig_record *rec)
{
	pl->bank_refused[IG_BANK_OUTCOME_UNKNOWN]++;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "error");
	cJSON_AddStringToObject(o, "error", IG_PLUGIN_E_OUTCOME_UNKNOWN);
	cJSON_AddStringToObject(o, "request", "mint");
	cJSON_AddStringToObject(o, "nonce", mp->nonce);
	if (rec)
		cJSON_AddNumberToObject(o, "index", (double)rec->index);
	cJSON_AddNumberToObject(o, "count", mp->count);
	cJSON_AddNumberToObject(o, "expires_at", (double)mp->expires_at);
	if (who && add_box(pl, o, who, &mp->coins[0][0], (size_t)mp->count * IG_COIN_BYTES)) {
		cJSON_AddStringToObject(o, "message",
		                        "a disk write failed after the mint record was written, so it may or may not be "
		                        "durable: keep the boxed coins; once the broker is back, spend or refund them (a "
		                        "refund answers unknown_coin if the mint was lost)");
	} else {
		/* Revoked meanwhile: nobody may have the coins; if the mint was
		 * durable they die with the revoked identity. */
		cJSON_DeleteItemFromObjectCaseSensitive(o, "count");
		cJSON_DeleteItemFromObjectCaseSensitive(o, "expires_at");
		cJSON_AddStringToObject(o, "message",
		                        "a disk write failed after the mint record was written, so it may or may not be "
		                        "durable; the coins cannot be delivered to an identity that is no longer active");
	}
	ig_plugin_reply(pl, mp->id, o);
}

static void on_mint_durable(void *ctx, int status, const ig_record *rec)
{
	mint_pending *mp = ctx;
	ig_plugin *pl = mp->pl;
	ig_coins_unreserve(pl->coins, mp->id, mp->count);
	const ig_identity *who = active_with_role(pl, mp->id, IG_ROLE_DEVICE);
	if (status == IG_ERR_UNKNOWN) {
		mint_outcome_unknown(pl, mp, who, rec);
	} else if (status != IG_OK) {
		char msg[300];
		snprintf(msg, sizeof msg, "the mint was not recorded and no coins were issued: %s",
		         ig_plugin_ledger_refusal(status));
		bank_error(pl, mp->id, "mint", IG_BANK_STORAGE_FAILED, mp->nonce, msg);
	} else {
		ig_error err = {0};
		if (ig_coins_apply(pl->coins, rec, &err) != IG_OK)
			ig_plugin_log(MOSQ_LOG_ERR, "ledger record %llu is durable but the coin index refused it: %s",
			              (unsigned long long)rec->index, err.msg);
		ig_plugin_publish_event(pl, rec);
		pl->coins_minted += mp->count;
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "type", "coins");
		cJSON_AddStringToObject(o, "nonce", mp->nonce);
		cJSON_AddNumberToObject(o, "count", mp->count);
		cJSON_AddNumberToObject(o, "expires_at", (double)mp->expires_at);
		/* A collector revoked meanwhile gets nothing; its coins are minted
		 * and will expire unspent. */
		if (who && add_box(pl, o, who, &mp->coins[0][0], (size_t)mp->count * IG_COIN_BYTES))
			ig_plugin_reply(pl, mp->id, o);
		else
			cJSON_Delete(o);
	}
	sodium_memzero(mp, sizeof *mp);
	free(mp);
}

static void do_mint(ig_plugin *pl, const char *id, const cJSON *req)
{
	const char *nonce = request_nonce(req);
	const cJSON *count = cJSON_GetObjectItemCaseSensitive(req, "count");
	if (!active_with_role(pl, id, IG_ROLE_DEVICE)) {
		bank_error(pl, id, "mint", IG_BANK_NOT_ALLOWED, nonce, "only active devices (collectors) may mint coins");
		return;
	}
	uint64_t asked = 0;
	int crc = ig_json_uint(&asked, count, 1, IG_COINS_PER_REQUEST);
	if (!nonce || crc == IG_ERR_INVAL) {
		bank_error(pl, id, "mint", IG_BANK_MALFORMED, nonce, "mint needs \"count\" (a whole number) and \"nonce\" (1..64 printable)");
		return;
	}
	if (crc != IG_OK) {
		bank_error(pl, id, "mint", IG_BANK_OVER_LIMIT, nonce, "a mint request may ask for 1 to 64 coins");
		return;
	}
	int n = (int)asked;
	if (ig_coins_reserve(pl->coins, id, (uint64_t)n) != IG_OK) {
		bank_error(pl, id, "mint", IG_BANK_NO_CREDIT, nonce, "not enough credit; ask an admin for 'iotguard credit'");
		return;
	}
	mint_pending *mp = calloc(1, sizeof *mp);
	ig_mint_rec *rec = calloc(1, sizeof *rec);
	int ok = mp && rec;
	if (ok) {
		mp->pl = pl;
		mp->count = (uint32_t)n;
		mp->expires_at = ig_now_ms() / 1000 + pl->cfg.coin_ttl_s;
		snprintf(mp->id, sizeof mp->id, "%s", id);
		snprintf(mp->nonce, sizeof mp->nonce, "%s", nonce);
		snprintf(rec->owner, sizeof rec->owner, "%s", id);
		rec->expires_at = mp->expires_at;
		rec->count = (uint32_t)n;
		for (int i = 0; ok && i < n; i++) {
			uint8_t key_id[16];
			randombytes_buf(key_id, sizeof key_id);
			ok = ig_pool_derive(&pl->pool, mp->coins[i], IG_COIN_BYTES, "coin", key_id, sizeof key_id) == IG_OK;
			ig_coin_hash(rec->hashes[i], mp->coins[i]);
		}
	}
	uint8_t body[IG_COINS_PER_REQUEST * (IG_HASH_BYTES + 4) + 256];
	int blen = ok ? ig_mint_encode(body, sizeof body, rec) : IG_ERR_NOMEM;
	free(rec);
	int src = blen < 0 ? blen : ig_ledger_submit(pl->ledger, IG_REC_COIN_MINT, body, (size_t)blen, on_mint_durable, mp);
	if (src != IG_OK) {
		ig_coins_unreserve(pl->coins, id, (uint64_t)n);
		if (mp)
			sodium_memzero(mp, sizeof *mp);
		free(mp);
		bank_error(pl, id, "mint", IG_BANK_STORAGE_FAILED, nonce,
		           blen < 0 ? "could not build the mint record; no coins were issued" : ig_plugin_ledger_refusal(src));
	}
}

/* ---- redeem ---- */

typedef struct redeem_pending {
	ig_plugin *pl;
	char analyst[IG_ID_MAX + 1];
	char nonce[NONCE_MAX + 1];
	uint8_t coin_hash[IG_HASH_BYTES];
	uint8_t header_hash[IG_HASH_BYTES];
	ig_coin_header h;
} redeem_pending;

/* The keys of the coin in rp->h, boxed for the analyst. Computed from the
 * coin and the header alone, so a repeat for the same redeemer (its answer
 * was lost) is the same answer and needs no new record. */
static void send_redeemed(ig_plugin *pl, const redeem_pending *rp)
{
	const ig_identity *who = active_with_role(pl, rp->analyst, IG_ROLE_ANALYST);
	uint8_t plain[32 + 32 + IG_COIN_NONCE_BYTES + IG_HASH_BYTES];
	ig_coin_keys(rp->h.coin, plain, plain + 32);
	memcpy(plain + 64, rp->h.nonce, IG_COIN_NONCE_BYTES);
	memcpy(plain + 64 + IG_COIN_NONCE_BYTES, rp->header_hash, IG_HASH_BYTES);
	char hh[2 * IG_HASH_BYTES + 1];
	ig_hex_encode(hh, rp->header_hash, IG_HASH_BYTES);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "redeemed");
	cJSON_AddStringToObject(o, "nonce", rp->nonce);
	cJSON_AddStringToObject(o, "header_hash", hh);
	cJSON_AddStringToObject(o, "suite", ig_suite_name(rp->h.suite));
	if (who && add_box(pl, o, who, plain, sizeof plain))
		ig_plugin_reply(pl, rp->analyst, o);
	else
		cJSON_Delete(o);
	sodium_memzero(plain, sizeof plain);
}

static void on_redeem_durable(void *ctx, int status, const ig_record *rec)
{
	redeem_pending *rp = ctx;
	ig_plugin *pl = rp->pl;
	if (status == IG_ERR_UNKNOWN) {
		/* Stays in flight until the restart tells: meanwhile this
		 * analyst's retry is outcome_unknown again, anyone else's
		 * already_spent. */
		bank_error(pl, rp->analyst, "redeem", IG_BANK_OUTCOME_UNKNOWN, rp->nonce,
		           "a disk write failed after the redeem record was written, so it may or may not be durable; "
		           "retry the same redeem once the broker is back: if it was recorded, the retry answers with the "
		           "same keys, if not it redeems the coin");
	} else if (status != IG_OK) {
		ig_coins_set_in_flight(pl->coins, rp->coin_hash, false);
		bank_error(pl, rp->analyst, "redeem", IG_BANK_STORAGE_FAILED, rp->nonce, ig_plugin_ledger_refusal(status));
	} else {
		ig_error err = {0};
		if (ig_coins_apply(pl->coins, rec, &err) != IG_OK)
			ig_plugin_log(MOSQ_LOG_ERR, "ledger record %llu is durable but the coin index refused it: %s",
			              (unsigned long long)rec->index, err.msg);
		ig_coins_set_in_flight(pl->coins, rp->coin_hash, false);
		ig_plugin_publish_event(pl, rec);
		pl->coins_redeemed++;
		send_redeemed(pl, rp);
	}
	sodium_memzero(rp, sizeof *rp);
	free(rp);
}

/* "iotguard/<cluster>/dev/<collector>/data/<stream>" for this collector,
 * where <stream> is 1..64 characters of the id alphabet [A-Za-z0-9_.-]
 * (docs/PROTOCOL.md "Data message"), as the agents require too. */
static bool data_topic_of(ig_plugin *pl, const char *topic, const char *collector)
{
	size_t plen = pl->topic_dev_prefix_len, clen = strlen(collector);
	if (strncmp(topic, pl->topic_dev_prefix, plen) != 0 || strncmp(topic + plen, collector, clen) != 0 ||
	    strncmp(topic + plen + clen, "/data/", 6) != 0)
		return false;
	const char *stream = topic + plen + clen + 6;
	return ig_id_valid(stream, strlen(stream)) && ig_topic_valid(topic);
}

static void do_redeem(ig_plugin *pl, const char *id, const cJSON *req)
{
	const char *nonce = request_nonce(req);
	const cJSON *topic = cJSON_GetObjectItemCaseSensitive(req, "topic");
	const cJSON *header = cJSON_GetObjectItemCaseSensitive(req, "header");
	if (!active_with_role(pl, id, IG_ROLE_ANALYST)) {
		bank_error(pl, id, "redeem", IG_BANK_NOT_ALLOWED, nonce, "only active analysts may redeem coins");
		return;
	}
	uint8_t sealed[HEADER_MAX];
	size_t sealed_len = 0;
	if (!nonce || !cJSON_IsString(topic) || !cJSON_IsString(header) ||
	    sodium_base642bin(sealed, sizeof sealed, header->valuestring, strlen(header->valuestring), NULL, &sealed_len,
	                      NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
		bank_error(pl, id, "redeem", IG_BANK_MALFORMED, nonce, "redeem needs \"topic\", \"header\" (base64) and \"nonce\"");
		return;
	}
	redeem_pending *rp = calloc(1, sizeof *rp);
	if (!rp) {
		bank_error(pl, id, "redeem", IG_BANK_STORAGE_FAILED, nonce, "out of memory; retry later");
		return;
	}
	rp->pl = pl;
	if (ig_coin_header_open(&rp->h, sealed, sealed_len, ig_ledger_ch_sk(pl->ledger)) != IG_OK) {
		free(rp);
		bank_error(pl, id, "redeem", IG_BANK_MALFORMED, nonce, "the header does not open with the bank's key (tampered or not ours)");
		return;
	}
	ig_coin_hash(rp->coin_hash, rp->h.coin);
	crypto_generichash(rp->header_hash, IG_HASH_BYTES, sealed, sealed_len, NULL, 0);
	uint8_t topic_hash[IG_HASH_BYTES];
	crypto_generichash(topic_hash, sizeof topic_hash, (const uint8_t *)topic->valuestring,
	                   strlen(topic->valuestring), NULL, 0);

	ig_coin_info info;
	ig_bank_refusal why = IG_BANK_REFUSAL_COUNT;
	const char *msg = NULL;
	const ig_identity *owner = NULL;
	bool found = ig_coins_find(pl->coins, rp->coin_hash, &info) == IG_OK;
	/* This analyst already redeemed (or is redeeming) this very header. */
	bool mine = found && ig_coins_redeemed_by(pl->coins, rp->coin_hash, id, rp->header_hash);
	bool topic_ok = data_topic_of(pl, topic->valuestring, rp->h.collector) &&
	                sodium_memcmp(topic_hash, rp->h.topic_hash, IG_HASH_BYTES) == 0;
	if (found)
		owner = ig_registry_find(pl->reg, info.owner, strlen(info.owner));
	if (!found || info.state == IG_COIN_REFUNDED)
		why = IG_BANK_UNKNOWN_COIN, msg = "this coin was never minted, has been refunded, or was cancelled when its "
		                                  "collector was revoked";
	/* A repeat by the redeemer, whose answer was lost or of unknown outcome:
	 * the same keys again, with no new record, until the coin expires (then
	 * the spent coin is forgotten). Before any check of the collector: the
	 * coin was paid for before a later revocation could cancel it. */
	else if (mine && info.state == IG_COIN_REDEEMED && ig_now_ms() / 1000 < info.expires_at) {
		if (!topic_ok) {
			why = IG_BANK_WRONG_TOPIC, msg = "the header is bound to another topic";
		} else {
			snprintf(rp->analyst, sizeof rp->analyst, "%s", id);
			snprintf(rp->nonce, sizeof rp->nonce, "%s", nonce);
			send_redeemed(pl, rp);
			sodium_memzero(rp, sizeof *rp);
			free(rp);
			return;
		}
	} else if (mine && info.in_flight)
		why = IG_BANK_OUTCOME_UNKNOWN, msg = "your redeem of this header is still being recorded, or a disk write "
		                                     "failed and its outcome is unknown until the broker restarts; retry "
		                                     "the same redeem in a moment";
	/* Revoked (the record may still be on its way to the disk): the revoke
	 * cancels its coins, so no redeem may be ordered after it. */
	else if (!owner || owner->status != IG_ID_ACTIVE)
		why = IG_BANK_UNKNOWN_COIN, msg = "this coin was cancelled: its collector has been revoked";
	else if (info.state == IG_COIN_REDEEMED || info.in_flight)
		why = IG_BANK_ALREADY_SPENT, msg = "this coin has already been spent";
	else if (ig_now_ms() / 1000 >= info.expires_at)
		why = IG_BANK_EXPIRED, msg = "this coin has expired";
	else if (strcmp(info.owner, rp->h.collector) != 0)
		why = IG_BANK_WRONG_COLLECTOR, msg = "the header names a collector that does not own this coin";
	else if (!topic_ok)
		why = IG_BANK_WRONG_TOPIC, msg = "the header is bound to another topic";
	if (msg) {
		sodium_memzero(rp, sizeof *rp);
		free(rp);
		bank_error(pl, id, "redeem", why, nonce, msg);
		return;
	}
	snprintf(rp->analyst, sizeof rp->analyst, "%s", id);
	snprintf(rp->nonce, sizeof rp->nonce, "%s", nonce);
	ig_redeem_rec r = {0};
	memcpy(r.coin_hash, rp->coin_hash, IG_HASH_BYTES);
	snprintf(r.analyst, sizeof r.analyst, "%s", id);
	snprintf(r.collector, sizeof r.collector, "%s", rp->h.collector);
	r.has_header_hash = true;
	memcpy(r.header_hash, rp->header_hash, IG_HASH_BYTES);
	uint8_t body[256];
	int blen = ig_redeem_encode(body, sizeof body, &r);
	int src = blen < 0 ? blen : ig_ledger_submit(pl->ledger, IG_REC_COIN_REDEEM, body, (size_t)blen, on_redeem_durable, rp);
	if (src != IG_OK) {
		sodium_memzero(rp, sizeof *rp);
		free(rp);
		bank_error(pl, id, "redeem", IG_BANK_STORAGE_FAILED, nonce,
		           blen < 0 ? "could not build the redeem record; retry" : ig_plugin_ledger_refusal(src));
		return;
	}
	/* From here a second redeem of the same coin is "already spent", or
	 * outcome_unknown for this analyst and header. */
	ig_coins_set_redeeming(pl->coins, r.coin_hash, id, rp->header_hash);
}

/* ---- refund ---- */

typedef struct refund_pending {
	ig_plugin *pl;
	char id[IG_ID_MAX + 1];
	char nonce[NONCE_MAX + 1];
	uint32_t remaining, refunded;
	cJSON *refused;
} refund_pending;

static void refund_step(refund_pending *fp)
{
	if (--fp->remaining > 0)
		return;
	ig_plugin *pl = fp->pl;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "refunded");
	cJSON_AddStringToObject(o, "nonce", fp->nonce);
	cJSON_AddNumberToObject(o, "refunded", fp->refunded);
	cJSON_AddItemToObject(o, "refused", fp->refused);
	cJSON_AddNumberToObject(o, "balance", (double)ig_coins_balance(pl->coins, fp->id));
	ig_plugin_reply(pl, fp->id, o);
	free(fp);
}

typedef struct refund_one {
	refund_pending *fp;
	uint8_t coin_hash[IG_HASH_BYTES];
} refund_one;

static void on_refund_durable(void *ctx, int status, const ig_record *rec)
{
	refund_one *one = ctx;
	refund_pending *fp = one->fp;
	ig_plugin *pl = fp->pl;
	ig_coins_set_in_flight(pl->coins, one->coin_hash, false);
	if (status == IG_OK) {
		ig_error err = {0};
		if (ig_coins_apply(pl->coins, rec, &err) != IG_OK)
			ig_plugin_log(MOSQ_LOG_ERR, "ledger record %llu is durable but the coin index refused it: %s",
			              (unsigned long long)rec->index, err.msg);
		ig_plugin_publish_event(pl, rec);
		fp->refunded++;
		pl->coins_refunded++;
	} else {
		char hex[2 * IG_HASH_BYTES + 1];
		ig_hex_encode(hex, one->coin_hash, IG_HASH_BYTES);
		cJSON *r = cJSON_CreateObject();
		cJSON_AddStringToObject(r, "coin_hash", hex);
		/* Unknown: retrying after a restart is safe (already_refunded if it
		 * was recorded, a refund if not). */
		cJSON_AddStringToObject(r, "error", status == IG_ERR_UNKNOWN ? IG_PLUGIN_E_OUTCOME_UNKNOWN : "storage_failed");
		cJSON_AddItemToArray(fp->refused, r);
	}
	free(one);
	refund_step(fp);
}

static void refuse_coin(refund_pending *fp, const uint8_t hash[IG_HASH_BYTES], const char *error)
{
	char hex[2 * IG_HASH_BYTES + 1];
	ig_hex_encode(hex, hash, IG_HASH_BYTES);
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "coin_hash", hex);
	cJSON_AddStringToObject(r, "error", error);
	cJSON_AddItemToArray(fp->refused, r);
}

static void do_refund(ig_plugin *pl, const char *id, const cJSON *req)
{
	const char *nonce = request_nonce(req);
	const cJSON *coins = cJSON_GetObjectItemCaseSensitive(req, "coins");
	int n = cJSON_IsArray(coins) ? cJSON_GetArraySize(coins) : 0;
	if (!active_with_role(pl, id, IG_ROLE_DEVICE)) {
		bank_error(pl, id, "refund", IG_BANK_NOT_ALLOWED, nonce, "only active devices (collectors) may ask for refunds");
		return;
	}
	if (!nonce || n < 1 || n > IG_COINS_PER_REQUEST) {
		bank_error(pl, id, "refund", IG_BANK_MALFORMED, nonce, "refund needs \"coins\" (1..64 coins as 64 hex) and \"nonce\"");
		return;
	}
	refund_pending *fp = calloc(1, sizeof *fp);
	if (!fp) {
		bank_error(pl, id, "refund", IG_BANK_STORAGE_FAILED, nonce, "out of memory; retry later");
		return;
	}
	*fp = (refund_pending){.pl = pl, .remaining = 1, .refused = cJSON_CreateArray()};
	snprintf(fp->id, sizeof fp->id, "%s", id);
	snprintf(fp->nonce, sizeof fp->nonce, "%s", nonce);
	uint64_t now = ig_now_ms() / 1000;
	const cJSON *c;
	cJSON_ArrayForEach(c, coins) {
		uint8_t coin[IG_COIN_BYTES], hash[IG_HASH_BYTES] = {0};
		ig_coin_info info;
		if (!cJSON_IsString(c) || ig_hex_decode(coin, sizeof coin, c->valuestring, strlen(c->valuestring)) != IG_OK) {
			refuse_coin(fp, hash, "malformed");
			continue;
		}
		ig_coin_hash(hash, coin);
		sodium_memzero(coin, sizeof coin);
		if (ig_coins_find(pl->coins, hash, &info) != IG_OK || strcmp(info.owner, id) != 0) {
			refuse_coin(fp, hash, "unknown_coin");
			continue;
		}
		if (info.state != IG_COIN_MINTED || info.in_flight) {
			refuse_coin(fp, hash, info.state == IG_COIN_REFUNDED ? "already_refunded" : "already_spent");
			continue;
		}
		ig_refund_rec r = {0};
		memcpy(r.coin_hash, hash, IG_HASH_BYTES);
		snprintf(r.collector, sizeof r.collector, "%s", id);
		snprintf(r.reason, sizeof r.reason, "%s", now >= info.expires_at ? "expired" : "cancelled");
		uint8_t body[256];
		int blen = ig_refund_encode(body, sizeof body, &r);
		refund_one *one = calloc(1, sizeof *one);
		if (one) {
			one->fp = fp;
			memcpy(one->coin_hash, hash, IG_HASH_BYTES);
		}
		if (!one || blen < 0 ||
		    ig_ledger_submit(pl->ledger, IG_REC_COIN_REFUND, body, (size_t)blen, on_refund_durable, one) != IG_OK) {
			free(one);
			refuse_coin(fp, hash, "storage_failed");
			continue;
		}
		ig_coins_set_in_flight(pl->coins, hash, true);
		fp->remaining++;
	}
	refund_step(fp);   /* releases the hold */
}

static void do_balance(ig_plugin *pl, const char *id, const cJSON *req)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "balance");
	const char *nonce = request_nonce(req);
	if (nonce)
		cJSON_AddStringToObject(o, "nonce", nonce);
	cJSON_AddNumberToObject(o, "balance", (double)ig_coins_balance(pl->coins, id));
	cJSON_AddNumberToObject(o, "outstanding", (double)ig_coins_outstanding(pl->coins, id));
	ig_plugin_reply(pl, id, o);
}

bool ig_plugin_bank_request(ig_plugin *pl, const char *id, const char *type, const cJSON *req)
{
	if (strcmp(type, "mint") == 0)
		do_mint(pl, id, req);
	else if (strcmp(type, "redeem") == 0)
		do_redeem(pl, id, req);
	else if (strcmp(type, "refund") == 0)
		do_refund(pl, id, req);
	else if (strcmp(type, "balance") == 0)
		do_balance(pl, id, req);
	else
		return false;
	return true;
}

void ig_plugin_bank_stats(ig_plugin *pl, cJSON *stats)
{
	cJSON *b = cJSON_AddObjectToObject(stats, "bank");
	cJSON_AddNumberToObject(b, "minted", (double)pl->coins_minted);
	cJSON_AddNumberToObject(b, "redeemed", (double)pl->coins_redeemed);
	cJSON_AddNumberToObject(b, "refunded", (double)pl->coins_refunded);
	cJSON_AddNumberToObject(b, "outstanding", (double)ig_coins_count(pl->coins, IG_COIN_MINTED));
	cJSON *r = cJSON_AddObjectToObject(b, "refused");
	for (int i = 0; i < IG_BANK_REFUSAL_COUNT; i++)
		cJSON_AddNumberToObject(r, refusal_names[i], (double)pl->bank_refused[i]);
}
