/*
 * svc_bank.c: the bank for one-use coins (ig_svc_bank.h; seed 001).
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
#include "ig_svc_bank.h"

#include <cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_coin.h"
#include "ig_coins.h"
#include "ig_json.h"
#include "ig_topic.h"

/* Spent and expired coins are pruned a slice at a time, at most every 10 ms:
 * the tick fires on every loop pass under load, and a slice per pass cost
 * about 3% of publish throughput (bench_publish) for no benefit, since a
 * slice per 10 ms still sweeps 1.6M slots a second. */
#define PRUNE_SLOTS_PER_STEP 16384
#define PRUNE_INTERVAL_MS 10

struct ig_svc_bank {
	uint32_t coin_ttl_s;
	char dev_prefix[IG_CLUSTER_MAX + 16];    /* "iotguard/<cluster>/dev/" */
	size_t dev_prefix_len;
	uint32_t prune_cursor;                   /* spent coins are dropped a slice at a time */
	uint64_t pruned_ms;                      /* when the last slice ran */
	uint64_t minted, redeemed, refunded;
	uint64_t refused[IG_SVC_BANK_REFUSAL_COUNT];
};

static const char *const refusal_names[IG_SVC_BANK_REFUSAL_COUNT] = {
	[IG_SVC_BANK_NO_CREDIT] = "no_credit",
	[IG_SVC_BANK_UNKNOWN_COIN] = "unknown_coin",
	[IG_SVC_BANK_ALREADY_SPENT] = "already_spent",
	[IG_SVC_BANK_EXPIRED] = "expired",
	[IG_SVC_BANK_WRONG_COLLECTOR] = "wrong_collector",
	[IG_SVC_BANK_WRONG_TOPIC] = "wrong_topic",
	[IG_SVC_BANK_MALFORMED] = "malformed",
	[IG_SVC_BANK_NOT_ALLOWED] = "not_allowed",
	[IG_SVC_BANK_OVER_LIMIT] = "over_limit",
	[IG_SVC_BANK_STORAGE_FAILED] = "storage_failed",
	[IG_SVC_BANK_OUTCOME_UNKNOWN] = IG_DECISION_E_OUTCOME_UNKNOWN,
};

const char *ig_svc_bank_refusal_name(ig_svc_bank_refusal why)
{
	return (unsigned)why < IG_SVC_BANK_REFUSAL_COUNT ? refusal_names[why] : NULL;
}

/* ---- request decoders ------------------------------------------------------ */

/* The request's nonce into out if it is 1..64 printable ASCII, else "". */
static void decode_nonce(char out[IG_SVC_BANK_NONCE_MAX + 1], const cJSON *req)
{
	out[0] = '\0';
	const cJSON *n = cJSON_IsObject(req) ? cJSON_GetObjectItemCaseSensitive(req, "nonce") : NULL;
	if (!cJSON_IsString(n))
		return;
	size_t len = strlen(n->valuestring);
	if (len == 0 || len > IG_SVC_BANK_NONCE_MAX)
		return;
	for (size_t i = 0; i < len; i++)
		if (n->valuestring[i] < 0x21 || n->valuestring[i] > 0x7e)
			return;
	memcpy(out, n->valuestring, len + 1);
}

static const cJSON *field(const cJSON *req, const char *name)
{
	return cJSON_IsObject(req) ? cJSON_GetObjectItemCaseSensitive(req, name) : NULL;
}

int ig_svc_bank_decode_mint(ig_svc_bank_mint_req *out, const cJSON *req)
{
	memset(out, 0, sizeof *out);
	decode_nonce(out->nonce, req);
	uint64_t asked = 0;
	int rc = ig_json_uint(&asked, field(req, "count"), 1, IG_COINS_PER_REQUEST);
	if (!out->nonce[0] || rc == IG_ERR_INVAL)
		return IG_ERR_INVAL;
	if (rc != IG_OK)
		return IG_ERR_RANGE;
	out->count = (uint32_t)asked;
	return IG_OK;
}

int ig_svc_bank_decode_redeem(ig_svc_bank_redeem_req *out, const cJSON *req)
{
	memset(out, 0, sizeof *out);
	decode_nonce(out->nonce, req);
	const cJSON *topic = field(req, "topic"), *header = field(req, "header");
	if (!out->nonce[0] || !cJSON_IsString(topic) || !cJSON_IsString(header) ||
	    sodium_base642bin(out->header, sizeof out->header, header->valuestring, strlen(header->valuestring), NULL,
	                      &out->header_len, NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
		out->header_len = 0;
		return IG_ERR_INVAL;
	}
	out->topic = topic->valuestring;
	return IG_OK;
}

int ig_svc_bank_decode_refund(ig_svc_bank_refund_req *out, const cJSON *req)
{
	memset(out, 0, sizeof *out);
	decode_nonce(out->nonce, req);
	const cJSON *coins = field(req, "coins");
	int n = cJSON_IsArray(coins) ? cJSON_GetArraySize(coins) : 0;
	if (!out->nonce[0] || n < 1 || n > IG_COINS_PER_REQUEST)
		return IG_ERR_INVAL;
	const cJSON *c;
	cJSON_ArrayForEach(c, coins) {
		ig_svc_bank_refund_coin *one = &out->coins[out->n++];
		uint8_t coin[IG_COIN_BYTES];
		if (!cJSON_IsString(c) || ig_hex_decode(coin, sizeof coin, c->valuestring, strlen(c->valuestring)) != IG_OK) {
			one->malformed = true;
			continue;
		}
		ig_coin_hash(one->hash, coin);
		sodium_memzero(coin, sizeof coin);
	}
	return IG_OK;
}

int ig_svc_bank_decode_balance(ig_svc_bank_balance_req *out, const cJSON *req)
{
	memset(out, 0, sizeof *out);
	decode_nonce(out->nonce, req);
	return IG_OK;
}

/* ---- the service ------------------------------------------------------------- */

ig_svc_bank *ig_svc_bank_new(const ig_svc_bank_config *cfg)
{
	if (!cfg || !cfg->cluster || !ig_id_valid(cfg->cluster, strlen(cfg->cluster)))
		return NULL;
	ig_svc_bank *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	b->coin_ttl_s = cfg->coin_ttl_s;
	int n = snprintf(b->dev_prefix, sizeof b->dev_prefix, "iotguard/%s/dev/", cfg->cluster);
	b->dev_prefix_len = (size_t)n;
	return b;
}

void ig_svc_bank_free(ig_svc_bank *b)
{
	free(b);
}

/* Errors carry the request's type and nonce back, so a client with several
 * requests in flight knows which one failed. */
static void refuse(ig_svc_bank *b, ig_decision *out, const char *request, ig_svc_bank_refusal why,
                   const char *nonce, const char *message)
{
	b->refused[why]++;
	ig_decision_refuse(out, request, nonce, refusal_names[why], "%s", message);
}

/* Boxes plain for `to` from the cluster head and adds box_nonce/box to o. */
static bool add_box(ig_state *st, const uint8_t *ch_sk, cJSON *o, const ig_identity *to, const uint8_t *plain,
                    size_t len)
{
	const ig_box_key *bk = ig_state_box_key(st, to, ch_sk);
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
	ig_svc_bank *b;
	ig_state *state;
	const uint8_t *ch_sk;
	char id[IG_ID_MAX + 1];
	char nonce[IG_SVC_BANK_NONCE_MAX + 1];
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
static void mint_outcome_unknown(const mint_pending *mp, const ig_identity *who, const ig_record *rec,
                                 ig_decision *out)
{
	mp->b->refused[IG_SVC_BANK_OUTCOME_UNKNOWN]++;
	cJSON *o = cJSON_CreateObject();
	if (!o) {
		ig_decision_reply(out, mp->id, NULL);   /* a refusal "internal" */
		return;
	}
	cJSON_AddStringToObject(o, "type", "error");
	cJSON_AddStringToObject(o, "error", IG_DECISION_E_OUTCOME_UNKNOWN);
	cJSON_AddStringToObject(o, "request", "mint");
	cJSON_AddStringToObject(o, "nonce", mp->nonce);
	if (rec)
		cJSON_AddNumberToObject(o, "index", (double)rec->index);
	cJSON_AddNumberToObject(o, "count", mp->count);
	cJSON_AddNumberToObject(o, "expires_at", (double)mp->expires_at);
	if (who && add_box(mp->state, mp->ch_sk, o, who, &mp->coins[0][0], (size_t)mp->count * IG_COIN_BYTES)) {
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
	ig_decision_reply(out, mp->id, o);
}

static void on_mint_done(void *ctx, int status, const ig_record *rec, ig_decision *out)
{
	mint_pending *mp = ctx;
	ig_coins *coins = ig_state_coins(mp->state);
	ig_coins_unreserve(coins, mp->id, mp->count);
	const ig_identity *who = ig_state_active(mp->state, mp->id, IG_ROLE_DEVICE);
	if (status == IG_ERR_UNKNOWN) {
		mint_outcome_unknown(mp, who, rec, out);
	} else if (status == IG_ERR_CONFLICT) {
		/* Another broker's records came first: the collector's credit went
		 * to its mints, or it was revoked there. The answer a local mint
		 * would get against the state as it is now. */
		if (!who)
			refuse(mp->b, out, "mint", IG_SVC_BANK_NOT_ALLOWED, mp->nonce,
			       "only active devices (collectors) may mint coins; this identity was revoked on another "
			       "broker meanwhile, and no coins were issued");
		else
			refuse(mp->b, out, "mint", IG_SVC_BANK_NO_CREDIT, mp->nonce,
			       "not enough credit: mints through another broker used it first, and no coins were issued; "
			       "ask an admin for 'iotguard credit'");
	} else if (status != IG_OK) {
		char msg[IG_DECISION_MESSAGE_MAX];
		snprintf(msg, sizeof msg, "the mint was not recorded and no coins were issued: %s",
		         ig_decision_ledger_refusal(status));
		refuse(mp->b, out, "mint", IG_SVC_BANK_STORAGE_FAILED, mp->nonce, msg);
	} else {
		mp->b->minted += mp->count;
		cJSON *o = cJSON_CreateObject();
		if (o) {
			cJSON_AddStringToObject(o, "type", "coins");
			cJSON_AddStringToObject(o, "nonce", mp->nonce);
			cJSON_AddNumberToObject(o, "count", mp->count);
			cJSON_AddNumberToObject(o, "expires_at", (double)mp->expires_at);
		}
		/* A collector revoked meanwhile gets nothing; its coins are minted
		 * and will expire unspent. */
		if (o && who && add_box(mp->state, mp->ch_sk, o, who, &mp->coins[0][0], (size_t)mp->count * IG_COIN_BYTES))
			ig_decision_reply(out, mp->id, o);
		else if (o)
			cJSON_Delete(o);
		else if (who)
			ig_decision_reply(out, mp->id, NULL);   /* a refusal "internal" */
	}
	sodium_memzero(mp, sizeof *mp);
	free(mp);
}

static void do_mint(ig_svc_bank *b, const ig_svc_bank_env *env, const char *id, const cJSON *req, ig_decision *out)
{
	ig_svc_bank_mint_req m;
	int drc = ig_svc_bank_decode_mint(&m, req);
	if (!ig_state_active(env->state, id, IG_ROLE_DEVICE)) {
		refuse(b, out, "mint", IG_SVC_BANK_NOT_ALLOWED, m.nonce, "only active devices (collectors) may mint coins");
		return;
	}
	if (drc == IG_ERR_INVAL) {
		refuse(b, out, "mint", IG_SVC_BANK_MALFORMED, m.nonce,
		       "mint needs \"count\" (a whole number) and \"nonce\" (1..64 printable)");
		return;
	}
	if (drc != IG_OK) {
		refuse(b, out, "mint", IG_SVC_BANK_OVER_LIMIT, m.nonce, "a mint request may ask for 1 to 64 coins");
		return;
	}
	ig_coins *coins = ig_state_coins(env->state);
	if (ig_coins_reserve(coins, id, m.count) != IG_OK) {
		refuse(b, out, "mint", IG_SVC_BANK_NO_CREDIT, m.nonce, "not enough credit; ask an admin for 'iotguard credit'");
		return;
	}
	mint_pending *mp = calloc(1, sizeof *mp);
	/* 2 KiB of hashes: heap, not stack (the broker's thread stack). */
	ig_mint_rec *rec = calloc(1, sizeof *rec);
	bool ok = mp && rec;
	if (ok) {
		*mp = (mint_pending){.b = b, .state = env->state, .ch_sk = env->ch_sk, .count = m.count,
		                     .expires_at = env->now_s + b->coin_ttl_s};
		snprintf(mp->id, sizeof mp->id, "%s", id);
		memcpy(mp->nonce, m.nonce, sizeof mp->nonce);
		snprintf(rec->owner, sizeof rec->owner, "%s", id);
		rec->expires_at = mp->expires_at;
		rec->count = m.count;
		for (uint32_t i = 0; ok && i < m.count; i++) {
			uint8_t key_id[16];
			randombytes_buf(key_id, sizeof key_id);
			ok = ig_pool_derive(env->pool, mp->coins[i], IG_COIN_BYTES, "coin", key_id, sizeof key_id) == IG_OK;
			ig_coin_hash(rec->hashes[i], mp->coins[i]);
		}
	}
	uint8_t body[IG_COINS_PER_REQUEST * (IG_HASH_BYTES + 4) + 256];
	int blen = ok ? ig_bank_mint_encode(body, sizeof body, rec) : IG_ERR_NOMEM;
	free(rec);
	if (blen < 0 || !ig_decision_append(out, IG_REC_COIN_MINT, body, (size_t)blen, on_mint_done, mp)) {
		ig_coins_unreserve(coins, id, m.count);
		if (mp)
			sodium_memzero(mp, sizeof *mp);
		free(mp);
		refuse(b, out, "mint", IG_SVC_BANK_STORAGE_FAILED, m.nonce,
		       "could not build the mint record; no coins were issued");
	}
}

/* ---- redeem ---- */

typedef struct redeem_pending {
	ig_svc_bank *b;
	ig_state *state;
	const uint8_t *ch_sk;
	char analyst[IG_ID_MAX + 1];
	char nonce[IG_SVC_BANK_NONCE_MAX + 1];
	uint8_t coin_hash[IG_HASH_BYTES];
	uint8_t header_hash[IG_HASH_BYTES];
	ig_coin_header h;
} redeem_pending;

/* The keys of the coin in rp->h, boxed for the analyst. Computed from the
 * coin and the header alone, so a repeat for the same redeemer (its answer
 * was lost) is the same answer and needs no new record. Nothing is sent to
 * an analyst revoked meanwhile. */
static void send_redeemed(const redeem_pending *rp, ig_decision *out)
{
	const ig_identity *who = ig_state_active(rp->state, rp->analyst, IG_ROLE_ANALYST);
	uint8_t plain[32 + 32 + IG_COIN_NONCE_BYTES + IG_HASH_BYTES];
	ig_coin_keys(rp->h.coin, plain, plain + 32);
	memcpy(plain + 64, rp->h.nonce, IG_COIN_NONCE_BYTES);
	memcpy(plain + 64 + IG_COIN_NONCE_BYTES, rp->header_hash, IG_HASH_BYTES);
	char hh[2 * IG_HASH_BYTES + 1];
	ig_hex_encode(hh, rp->header_hash, IG_HASH_BYTES);
	cJSON *o = cJSON_CreateObject();
	if (o) {
		cJSON_AddStringToObject(o, "type", "redeemed");
		cJSON_AddStringToObject(o, "nonce", rp->nonce);
		cJSON_AddStringToObject(o, "header_hash", hh);
		cJSON_AddStringToObject(o, "suite", ig_suite_name(rp->h.suite));
	}
	if (o && who && add_box(rp->state, rp->ch_sk, o, who, plain, sizeof plain))
		ig_decision_reply(out, rp->analyst, o);
	else if (o)
		cJSON_Delete(o);
	else if (who)
		ig_decision_reply(out, rp->analyst, NULL);   /* a refusal "internal" */
	sodium_memzero(plain, sizeof plain);
}

/* Another broker's record for this coin came first (a redeem, a refund, or
 * its collector's revocation), and the state already holds it: the mark
 * this redeem set goes, and the analyst gets what a redeem asked now would
 * get: the keys again if the winner was this very redeem (the analyst
 * repeated it through another broker), else already_spent or unknown_coin,
 * as for a second redeem on one broker. */
static void redeem_lost(redeem_pending *rp, ig_decision *out)
{
	ig_coins *coins = ig_state_coins(rp->state);
	ig_coins_set_in_flight(coins, rp->coin_hash, false);
	ig_coin_info info;
	bool found = ig_coins_find(coins, rp->coin_hash, &info) == IG_OK;
	if (found && info.state == IG_COIN_REDEEMED && ig_coins_redeemed_by(coins, rp->coin_hash, rp->analyst,
	                                                                   rp->header_hash))
		send_redeemed(rp, out);
	else if (!found || info.state == IG_COIN_REFUNDED)
		refuse(rp->b, out, "redeem", IG_SVC_BANK_UNKNOWN_COIN, rp->nonce,
		       "this coin was refunded, or cancelled when its collector was revoked, through another broker "
		       "before this redeem could be recorded");
	else
		refuse(rp->b, out, "redeem", IG_SVC_BANK_ALREADY_SPENT, rp->nonce, "this coin has already been spent");
}

static void on_redeem_done(void *ctx, int status, const ig_record *rec, ig_decision *out)
{
	(void)rec;
	redeem_pending *rp = ctx;
	ig_coins *coins = ig_state_coins(rp->state);
	if (status == IG_ERR_UNKNOWN) {
		/* Stays in flight until the restart tells: meanwhile this
		 * analyst's retry is outcome_unknown again, anyone else's
		 * already_spent. */
		refuse(rp->b, out, "redeem", IG_SVC_BANK_OUTCOME_UNKNOWN, rp->nonce,
		       "a disk write failed after the redeem record was written, so it may or may not be durable; "
		       "retry the same redeem once the broker is back: if it was recorded, the retry answers with the "
		       "same keys, if not it redeems the coin");
	} else if (status == IG_ERR_CONFLICT) {
		redeem_lost(rp, out);
	} else if (status != IG_OK) {
		ig_coins_set_in_flight(coins, rp->coin_hash, false);
		refuse(rp->b, out, "redeem", IG_SVC_BANK_STORAGE_FAILED, rp->nonce, ig_decision_ledger_refusal(status));
	} else {
		/* The carrier applied the record: the coin is REDEEMED with this
		 * redeemer's tag; only the in-flight mark is left to clear. */
		ig_coins_set_in_flight(coins, rp->coin_hash, false);
		rp->b->redeemed++;
		send_redeemed(rp, out);
	}
	sodium_memzero(rp, sizeof *rp);
	free(rp);
}

/* "iotguard/<cluster>/dev/<collector>/data/<stream>" for this collector,
 * where <stream> is 1..64 characters of the id alphabet [A-Za-z0-9_.-]
 * (docs/PROTOCOL.md "Data message"), as the agents require too. */
static bool data_topic_of(const ig_svc_bank *b, const char *topic, const char *collector)
{
	size_t plen = b->dev_prefix_len, clen = strlen(collector);
	if (strncmp(topic, b->dev_prefix, plen) != 0 || strncmp(topic + plen, collector, clen) != 0 ||
	    strncmp(topic + plen + clen, "/data/", 6) != 0)
		return false;
	const char *stream = topic + plen + clen + 6;
	return ig_id_valid(stream, strlen(stream)) && ig_topic_valid(topic);
}

static void do_redeem(ig_svc_bank *b, const ig_svc_bank_env *env, const char *id, const cJSON *req,
                      ig_decision *out)
{
	ig_svc_bank_redeem_req *r = malloc(sizeof *r);
	if (!r) {
		char nonce[IG_SVC_BANK_NONCE_MAX + 1];
		decode_nonce(nonce, req);
		refuse(b, out, "redeem", IG_SVC_BANK_STORAGE_FAILED, nonce, "out of memory; retry later");
		return;
	}
	int drc = ig_svc_bank_decode_redeem(r, req);
	redeem_pending *rp = NULL;
	if (!ig_state_active(env->state, id, IG_ROLE_ANALYST)) {
		refuse(b, out, "redeem", IG_SVC_BANK_NOT_ALLOWED, r->nonce, "only active analysts may redeem coins");
		goto done;
	}
	if (drc != IG_OK) {
		refuse(b, out, "redeem", IG_SVC_BANK_MALFORMED, r->nonce,
		       "redeem needs \"topic\", \"header\" (base64) and \"nonce\"");
		goto done;
	}
	rp = calloc(1, sizeof *rp);
	if (!rp) {
		refuse(b, out, "redeem", IG_SVC_BANK_STORAGE_FAILED, r->nonce, "out of memory; retry later");
		goto done;
	}
	*rp = (redeem_pending){.b = b, .state = env->state, .ch_sk = env->ch_sk};
	if (ig_coin_header_open(&rp->h, r->header, r->header_len, env->ch_sk) != IG_OK) {
		refuse(b, out, "redeem", IG_SVC_BANK_MALFORMED, r->nonce,
		       "the header does not open with the bank's key (tampered or not ours)");
		goto done;
	}
	ig_coins *coins = ig_state_coins(env->state);
	ig_coin_hash(rp->coin_hash, rp->h.coin);
	crypto_generichash(rp->header_hash, IG_HASH_BYTES, r->header, r->header_len, NULL, 0);
	uint8_t topic_hash[IG_HASH_BYTES];
	crypto_generichash(topic_hash, sizeof topic_hash, (const uint8_t *)r->topic, strlen(r->topic), NULL, 0);

	ig_coin_info info;
	ig_svc_bank_refusal why = IG_SVC_BANK_REFUSAL_COUNT;
	const char *msg = NULL;
	const ig_identity *owner = NULL;
	bool found = ig_coins_find(coins, rp->coin_hash, &info) == IG_OK;
	/* This analyst already redeemed (or is redeeming) this very header. */
	bool mine = found && ig_coins_redeemed_by(coins, rp->coin_hash, id, rp->header_hash);
	bool topic_ok = data_topic_of(b, r->topic, rp->h.collector) &&
	                sodium_memcmp(topic_hash, rp->h.topic_hash, IG_HASH_BYTES) == 0;
	if (found)
		owner = ig_registry_find(ig_state_registry(env->state), info.owner, strlen(info.owner));
	if (!found || info.state == IG_COIN_REFUNDED)
		why = IG_SVC_BANK_UNKNOWN_COIN, msg = "this coin was never minted, has been refunded, or was cancelled "
		                                      "when its collector was revoked";
	/* A repeat by the redeemer, whose answer was lost or of unknown outcome:
	 * the same keys again, with no new record, until the coin expires (then
	 * the spent coin is forgotten). Before any check of the collector: the
	 * coin was paid for before a later revocation could cancel it. */
	else if (mine && info.state == IG_COIN_REDEEMED && env->now_s < info.expires_at) {
		if (!topic_ok) {
			why = IG_SVC_BANK_WRONG_TOPIC, msg = "the header is bound to another topic";
		} else {
			snprintf(rp->analyst, sizeof rp->analyst, "%s", id);
			memcpy(rp->nonce, r->nonce, sizeof rp->nonce);
			send_redeemed(rp, out);
			goto done;
		}
	} else if (mine && info.in_flight)
		why = IG_SVC_BANK_OUTCOME_UNKNOWN, msg = "your redeem of this header is still being recorded, or a disk "
		                                         "write failed and its outcome is unknown until the broker "
		                                         "restarts; retry the same redeem in a moment";
	/* Revoked (the record may still be on its way to the disk): the revoke
	 * cancels its coins, so no redeem may be ordered after it. */
	else if (!owner || owner->status != IG_ID_ACTIVE)
		why = IG_SVC_BANK_UNKNOWN_COIN, msg = "this coin was cancelled: its collector has been revoked";
	else if (info.state == IG_COIN_REDEEMED || info.in_flight)
		why = IG_SVC_BANK_ALREADY_SPENT, msg = "this coin has already been spent";
	else if (env->now_s >= info.expires_at)
		why = IG_SVC_BANK_EXPIRED, msg = "this coin has expired";
	else if (strcmp(info.owner, rp->h.collector) != 0)
		why = IG_SVC_BANK_WRONG_COLLECTOR, msg = "the header names a collector that does not own this coin";
	else if (!topic_ok)
		why = IG_SVC_BANK_WRONG_TOPIC, msg = "the header is bound to another topic";
	if (msg) {
		refuse(b, out, "redeem", why, r->nonce, msg);
		goto done;
	}
	snprintf(rp->analyst, sizeof rp->analyst, "%s", id);
	memcpy(rp->nonce, r->nonce, sizeof rp->nonce);
	ig_redeem_rec rr = {0};
	memcpy(rr.coin_hash, rp->coin_hash, IG_HASH_BYTES);
	snprintf(rr.analyst, sizeof rr.analyst, "%s", id);
	snprintf(rr.collector, sizeof rr.collector, "%s", rp->h.collector);
	rr.has_header_hash = true;
	memcpy(rr.header_hash, rp->header_hash, IG_HASH_BYTES);
	uint8_t body[256];
	int blen = ig_bank_redeem_encode(body, sizeof body, &rr);
	if (blen < 0 || !ig_decision_append(out, IG_REC_COIN_REDEEM, body, (size_t)blen, on_redeem_done, rp)) {
		refuse(b, out, "redeem", IG_SVC_BANK_STORAGE_FAILED, r->nonce, "could not build the redeem record; retry");
		goto done;
	}
	/* From here a second redeem of the same coin is "already spent", or
	 * outcome_unknown for this analyst and header; done clears the mark
	 * unless the outcome is unknown. */
	ig_coins_set_redeeming(coins, rr.coin_hash, id, rp->header_hash);
	rp = NULL;   /* owned by the append */
done:
	if (rp) {
		sodium_memzero(rp, sizeof *rp);
		free(rp);
	}
	free(r);
}

/* ---- refund ---- */

/* One refund request: one record per accepted coin, all handed to the
 * ledger at once (a chain of appends, in the order of "coins"), each coin
 * marked in flight until its record's fate is known. The last done to run
 * answers. */
typedef struct refund_pending {
	ig_svc_bank *b;
	ig_state *state;
	char id[IG_ID_MAX + 1];
	char nonce[IG_SVC_BANK_NONCE_MAX + 1];
	uint32_t remaining, refunded;               /* records whose done has not run; durable ones */
	cJSON *refused;
} refund_pending;

typedef struct refund_one {
	refund_pending *fp;
	uint8_t coin_hash[IG_HASH_BYTES];
} refund_one;

static void refuse_coin(refund_pending *fp, const uint8_t hash[IG_HASH_BYTES], const char *error)
{
	char hex[2 * IG_HASH_BYTES + 1];
	ig_hex_encode(hex, hash, IG_HASH_BYTES);
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "coin_hash", hex);
	cJSON_AddStringToObject(r, "error", error);
	cJSON_AddItemToArray(fp->refused, r);
}

static void refund_answer(refund_pending *fp, ig_decision *out)
{
	cJSON *o = cJSON_CreateObject();
	if (o) {
		cJSON_AddStringToObject(o, "type", "refunded");
		cJSON_AddStringToObject(o, "nonce", fp->nonce);
		cJSON_AddNumberToObject(o, "refunded", fp->refunded);
		cJSON_AddItemToObject(o, "refused", fp->refused);
		cJSON_AddNumberToObject(o, "balance", (double)ig_coins_balance(ig_state_coins(fp->state), fp->id));
	} else {
		cJSON_Delete(fp->refused);
	}
	ig_decision_reply(out, fp->id, o);
	free(fp);
}

static void on_refund_done(void *ctx, int status, const ig_record *rec, ig_decision *out)
{
	(void)rec;
	refund_one *one = ctx;
	refund_pending *fp = one->fp;
	/* A durable record was applied (the coin is REFUNDED); otherwise the
	 * coin is spendable again. */
	ig_coins_set_in_flight(ig_state_coins(fp->state), one->coin_hash, false);
	if (status == IG_OK) {
		fp->refunded++;
		fp->b->refunded++;
	} else if (status == IG_ERR_CONFLICT) {
		/* Spent, refunded or cancelled through another broker first: the
		 * word a refund asked now would get. */
		ig_coin_info info;
		bool found = ig_coins_find(ig_state_coins(fp->state), one->coin_hash, &info) == IG_OK;
		refuse_coin(fp, one->coin_hash, !found ? "unknown_coin"
		                                : info.state == IG_COIN_REFUNDED ? "already_refunded" : "already_spent");
	} else {
		/* Unknown: retrying after a restart is safe (already_refunded if it
		 * was recorded, a refund if not). */
		refuse_coin(fp, one->coin_hash, status == IG_ERR_UNKNOWN ? IG_DECISION_E_OUTCOME_UNKNOWN : "storage_failed");
	}
	free(one);
	if (--fp->remaining == 0)
		refund_answer(fp, out);
}

/* Adds the append of coin's refund record to the chain of out (out itself
 * for the first). False when it cannot be built or out of memory. */
static bool refund_append(refund_pending *fp, ig_decision *out, const uint8_t hash[IG_HASH_BYTES], bool expired)
{
	ig_refund_rec r = {0};
	memcpy(r.coin_hash, hash, IG_HASH_BYTES);
	snprintf(r.collector, sizeof r.collector, "%s", fp->id);
	snprintf(r.reason, sizeof r.reason, "%s", expired ? "expired" : "cancelled");
	uint8_t body[256];
	int blen = ig_bank_refund_encode(body, sizeof body, &r);
	refund_one *one = calloc(1, sizeof *one);
	ig_decision *d = fp->remaining == 0 ? out : ig_decision_then(out);
	if (blen < 0 || !one || !d) {
		free(one);
		return false;
	}
	one->fp = fp;
	memcpy(one->coin_hash, hash, IG_HASH_BYTES);
	if (!ig_decision_append(d, IG_REC_COIN_REFUND, body, (size_t)blen, on_refund_done, one)) {
		free(one);
		return false;   /* d stays an empty link: carried out as nothing */
	}
	fp->remaining++;
	return true;
}

static void do_refund(ig_svc_bank *b, const ig_svc_bank_env *env, const char *id, const cJSON *req,
                      ig_decision *out)
{
	ig_svc_bank_refund_req *r = malloc(sizeof *r);
	refund_pending *fp = calloc(1, sizeof *fp);
	if (!r || !fp) {
		char nonce[IG_SVC_BANK_NONCE_MAX + 1];
		decode_nonce(nonce, req);
		refuse(b, out, "refund", IG_SVC_BANK_STORAGE_FAILED, nonce, "out of memory; retry later");
		goto fail;
	}
	int drc = ig_svc_bank_decode_refund(r, req);
	if (!ig_state_active(env->state, id, IG_ROLE_DEVICE)) {
		refuse(b, out, "refund", IG_SVC_BANK_NOT_ALLOWED, r->nonce,
		       "only active devices (collectors) may ask for refunds");
		goto fail;
	}
	if (drc != IG_OK) {
		refuse(b, out, "refund", IG_SVC_BANK_MALFORMED, r->nonce,
		       "refund needs \"coins\" (1..64 coins as 64 hex) and \"nonce\"");
		goto fail;
	}
	*fp = (refund_pending){.b = b, .state = env->state, .refused = cJSON_CreateArray()};
	if (!fp->refused) {
		refuse(b, out, "refund", IG_SVC_BANK_STORAGE_FAILED, r->nonce, "out of memory; retry later");
		goto fail;
	}
	snprintf(fp->id, sizeof fp->id, "%s", id);
	memcpy(fp->nonce, r->nonce, sizeof fp->nonce);
	ig_coins *coins = ig_state_coins(env->state);
	for (uint32_t i = 0; i < r->n; i++) {
		const ig_svc_bank_refund_coin *c = &r->coins[i];
		ig_coin_info info;
		if (c->malformed) {
			refuse_coin(fp, c->hash, "malformed");
			continue;
		}
		if (ig_coins_find(coins, c->hash, &info) != IG_OK || strcmp(info.owner, id) != 0) {
			refuse_coin(fp, c->hash, "unknown_coin");
			continue;
		}
		if (info.state != IG_COIN_MINTED || info.in_flight) {
			refuse_coin(fp, c->hash, info.state == IG_COIN_REFUNDED ? "already_refunded" : "already_spent");
			continue;
		}
		if (!refund_append(fp, out, c->hash, env->now_s >= info.expires_at)) {
			refuse_coin(fp, c->hash, "storage_failed");
			continue;
		}
		/* From here a redeem of it, or the same coin again in this
		 * request, is already_spent. */
		ig_coins_set_in_flight(coins, c->hash, true);
	}
	free(r);
	if (fp->remaining == 0)
		refund_answer(fp, out);   /* nothing to write: answered at once */
	return;
fail:
	free(r);
	free(fp);
}

/* ---- balance ---- */

static void do_balance(const ig_svc_bank_env *env, const char *id, const cJSON *req, ig_decision *out)
{
	ig_svc_bank_balance_req q;
	(void)ig_svc_bank_decode_balance(&q, req);
	ig_coins *coins = ig_state_coins(env->state);
	cJSON *o = cJSON_CreateObject();
	if (o) {
		cJSON_AddStringToObject(o, "type", "balance");
		if (q.nonce[0])
			cJSON_AddStringToObject(o, "nonce", q.nonce);
		cJSON_AddNumberToObject(o, "balance", (double)ig_coins_balance(coins, id));
		cJSON_AddNumberToObject(o, "outstanding", (double)ig_coins_outstanding(coins, id));
	}
	out->request = "balance";
	ig_decision_reply(out, id, o);
}

void ig_svc_bank_request(ig_svc_bank *b, const ig_svc_bank_env *env, const char *id, const char *type,
                         const cJSON *req, ig_decision *out)
{
	if (strcmp(type, "mint") == 0)
		do_mint(b, env, id, req, out);
	else if (strcmp(type, "redeem") == 0)
		do_redeem(b, env, id, req, out);
	else if (strcmp(type, "refund") == 0)
		do_refund(b, env, id, req, out);
	else if (strcmp(type, "balance") == 0)
		do_balance(env, id, req, out);
	else
		ig_decision_refuse(out, NULL, NULL, "malformed", "the bank answers mint, redeem, refund and balance");
}

size_t ig_svc_bank_tick(ig_svc_bank *b, ig_state *st, uint64_t now_ms)
{
	if (now_ms - b->pruned_ms < PRUNE_INTERVAL_MS)
		return 0;
	b->pruned_ms = now_ms;
	/* Only redeemed and refunded coins are ever dropped: with none, a step
	 * would walk its slots (every 10 ms, in the broker's loop) for nothing. */
	ig_coins *coins = ig_state_coins(st);
	if (ig_coins_count(coins, IG_COIN_REDEEMED) == 0 && ig_coins_count(coins, IG_COIN_REFUNDED) == 0)
		return 0;
	return ig_coins_prune_step(coins, now_ms / 1000, &b->prune_cursor, PRUNE_SLOTS_PER_STEP);
}

void ig_svc_bank_stats(const ig_svc_bank *b, ig_state *st, cJSON *stats)
{
	cJSON *o = cJSON_AddObjectToObject(stats, "bank");
	cJSON_AddNumberToObject(o, "minted", (double)b->minted);
	cJSON_AddNumberToObject(o, "redeemed", (double)b->redeemed);
	cJSON_AddNumberToObject(o, "refunded", (double)b->refunded);
	cJSON_AddNumberToObject(o, "outstanding", (double)ig_coins_count(ig_state_coins(st), IG_COIN_MINTED));
	cJSON *r = cJSON_AddObjectToObject(o, "refused");
	for (int i = 0; i < IG_SVC_BANK_REFUSAL_COUNT; i++)
		cJSON_AddNumberToObject(r, refusal_names[i], (double)b->refused[i]);
}
