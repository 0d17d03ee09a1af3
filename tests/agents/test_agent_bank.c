/*
 * test_agent_bank.c: unit tests for the collector's wallet and the
 * analyst's redeems and statistics.
 *
 * Why this exists: a wallet that spends a coin twice, forgets one that paid
 * for a message, refunds the wrong coins, or matches a result to the wrong
 * request fails quietly in production; so does an analyst that accepts the
 * bank's keys for another message. These tests drive the bookkeeping
 * through its states, build real coin messages and bank boxes with the
 * library, and try to get wrong ones past both sides: every byte flipped,
 * wrong topics, wrong requests, wrong boxes. The collector duty itself is
 * driven with the bank's inbox answers through a real, never connected
 * agent, where no credit may be lost: mints and refunds of unknown outcome,
 * and the analyst's redeems of unknown outcome, which are sent again.
 */
#include <cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <mosquitto.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wallet.h"
#include "agent_testutil.h"
#include "testutil.h"

#define NOW_S 1700000000ull
#define NOW_MS (NOW_S * 1000ull)
#define CLUSTER "c1"
#define DATA_TOPIC "iotguard/c1/dev/dev1/data/readings"
#define RESULTS_TOPIC "iotguard/c1/dev/dev1/results/readings"

static void coin_bytes(uint8_t *out, size_t n, uint8_t first)
{
	for (size_t i = 0; i < n; i++)
		memset(out + i * IG_COIN_BYTES, (int)(first + i), IG_COIN_BYTES);
}

static const uint8_t *hash_of(uint8_t b, uint8_t out[IG_HASH_BYTES])
{
	memset(out, b, IG_HASH_BYTES);
	return out;
}

/* ---- wallet bookkeeping --------------------------------------------------------- */

Test(wallet, add_take_send_find_forget)
{
	cr_assert_eq(ig_init(), IG_OK);
	static ig_wallet w;
	ig_wallet_init(&w);
	uint8_t coins[3 * IG_COIN_BYTES];
	coin_bytes(coins, 3, 1);
	cr_assert_eq(ig_wallet_add(&w, coins, 2, NOW_S + 3600), IG_OK);
	cr_assert_eq(ig_wallet_add(&w, coins + 2 * IG_COIN_BYTES, 1, NOW_S + 600), IG_OK);
	cr_assert_eq(ig_wallet_count(&w, IG_WSLOT_READY), 3);
	cr_assert_eq(ig_wallet_count(&w, IG_WSLOT_EMPTY), IG_WALLET_CAP - 3);

	/* The coin expiring soonest goes first. */
	ig_wallet_coin *c = ig_wallet_take(&w, NOW_S);
	cr_assert_not_null(c);
	cr_assert_eq(c->coin[0], 3);
	cr_assert_eq(c->expires_at, NOW_S + 600);
	uint8_t hh[IG_HASH_BYTES], other[IG_HASH_BYTES];
	hash_of(0xaa, hh);
	hash_of(0xbb, other);
	ig_wallet_mark_sent(c, hh, 7, NOW_MS);
	cr_assert_eq(ig_wallet_count(&w, IG_WSLOT_READY), 2);
	cr_assert_eq(ig_wallet_count(&w, IG_WSLOT_OUTSTANDING), 1);

	/* A coin is never handed out twice. */
	ig_wallet_coin *d = ig_wallet_take(&w, NOW_S);
	cr_assert_not_null(d);
	cr_assert_neq(d, c);
	cr_assert_eq(ig_wallet_find(&w, hh), c);
	cr_assert_null(ig_wallet_find(&w, other));
	cr_assert_null(ig_wallet_find(&w, (uint8_t[IG_HASH_BYTES]){0}), "a ready coin has no header hash to match");
	cr_assert_eq(c->seq, 7);
	ig_wallet_forget(c);
	cr_assert(tu_all_zero(c, sizeof *c), "a forgotten coin must be wiped");
	cr_assert_null(ig_wallet_find(&w, hh));
	cr_assert_eq(ig_wallet_count(&w, IG_WSLOT_OUTSTANDING), 0);
	ig_wallet_wipe(&w);
	cr_assert(tu_all_zero(&w, sizeof w));
}

Test(wallet, add_is_all_or_nothing)
{
	static ig_wallet w;
	ig_wallet_init(&w);
	static uint8_t coins[IG_WALLET_CAP * IG_COIN_BYTES];
	randombytes_buf(coins, sizeof coins);
	cr_assert_eq(ig_wallet_add(&w, coins, IG_WALLET_CAP - 2, NOW_S + 60), IG_OK);
	cr_assert_eq(ig_wallet_add(&w, coins, 3, NOW_S + 60), IG_ERR_RANGE);
	cr_assert_eq(ig_wallet_count(&w, IG_WSLOT_READY), IG_WALLET_CAP - 2, "a refused add must add nothing");
	cr_assert_eq(ig_wallet_add(&w, coins, 2, NOW_S + 60), IG_OK);
	cr_assert_eq(ig_wallet_count(&w, IG_WSLOT_EMPTY), 0);
}

Test(wallet, take_skips_coins_near_expiry)
{
	static ig_wallet w;
	ig_wallet_init(&w);
	uint8_t coins[2 * IG_COIN_BYTES];
	coin_bytes(coins, 2, 1);
	cr_assert_eq(ig_wallet_add(&w, coins, 1, NOW_S + IG_WALLET_MIN_LIFE_S), IG_OK);
	cr_assert_null(ig_wallet_take(&w, NOW_S), "a coin that may expire before it is redeemed must not be spent");
	cr_assert_eq(ig_wallet_add(&w, coins + IG_COIN_BYTES, 1, NOW_S + IG_WALLET_MIN_LIFE_S + 1), IG_OK);
	ig_wallet_coin *c = ig_wallet_take(&w, NOW_S);
	cr_assert_not_null(c);
	cr_assert_eq(c->coin[0], 2);
	cr_assert_null(ig_wallet_take(&w, NOW_S + 1));
}

/* ---- refund selection ------------------------------------------------------------ */

Test(refund, sweep_picks_unanswered_expired_and_dying_coins)
{
	static ig_wallet w;
	ig_wallet_init(&w);
	uint8_t coins[6 * IG_COIN_BYTES], hh[IG_HASH_BYTES];
	coin_bytes(coins, 6, 1);
	cr_assert_eq(ig_wallet_add(&w, coins, 4, NOW_S + 3600), IG_OK);
	cr_assert_eq(ig_wallet_add(&w, coins + 4 * IG_COIN_BYTES, 1, NOW_S + 5), IG_OK);    /* dying, unused */
	cr_assert_eq(ig_wallet_add(&w, coins + 5 * IG_COIN_BYTES, 1, NOW_S + 30), IG_OK);   /* will expire while out */
	ig_wallet_coin *fresh = NULL, *old = NULL, *expiring = NULL;
	for (size_t i = 0; i < IG_WALLET_CAP; i++) {
		ig_wallet_coin *c = &w.slot[i];
		if (c->state != IG_WSLOT_READY)
			continue;
		if (c->coin[0] == 1)
			old = c;
		else if (c->coin[0] == 2)
			fresh = c;
		else if (c->coin[0] == 6)
			expiring = c;
	}
	cr_assert(fresh && old && expiring);
	ig_wallet_mark_sent(old, hash_of(1, hh), 1, NOW_MS - 61000);
	ig_wallet_mark_sent(fresh, hash_of(2, hh), 2, NOW_MS - 1000);
	ig_wallet_mark_sent(expiring, hash_of(6, hh), 3, NOW_MS - 1000);

	cr_assert_eq(ig_wallet_sweep(&w, NOW_MS, 60000), 2, "the unanswered coin and the dying unused coin");
	cr_assert_eq(old->state, IG_WSLOT_REFUND_DUE);
	cr_assert_eq(fresh->state, IG_WSLOT_OUTSTANDING);
	cr_assert_eq(expiring->state, IG_WSLOT_OUTSTANDING);
	cr_assert_eq(ig_wallet_count(&w, IG_WSLOT_READY), 2);
	cr_assert_eq(ig_wallet_sweep(&w, NOW_MS, 60000), 0, "a sweep marks a coin once");
	/* Past its expiry nobody can redeem it: refund it without waiting. */
	cr_assert_eq(ig_wallet_sweep(&w, (NOW_S + 30) * 1000ull, 60000), 1);
	cr_assert_eq(expiring->state, IG_WSLOT_REFUND_DUE);
	cr_assert_eq(fresh->state, IG_WSLOT_OUTSTANDING);

	/* A late result still finds its coin. */
	cr_assert_eq(ig_wallet_find(&w, hash_of(1, hh)), old);
}

Test(refund, batch_settle_and_retry)
{
	static ig_wallet w;
	ig_wallet_init(&w);
	static uint8_t coins[100 * IG_COIN_BYTES];
	randombytes_buf(coins, sizeof coins);
	cr_assert_eq(ig_wallet_add(&w, coins, 100, NOW_S + 5), IG_OK);
	cr_assert_eq(ig_wallet_sweep(&w, NOW_MS, 60000), 100);
	ig_wallet_coin *batch[IG_COINS_PER_REQUEST];
	cr_assert_eq(ig_wallet_refund_batch(&w, batch, IG_COINS_PER_REQUEST), IG_COINS_PER_REQUEST);
	for (size_t i = 0; i < IG_COINS_PER_REQUEST; i++) {
		cr_assert_eq(batch[i]->state, IG_WSLOT_REFUNDING);
		for (size_t j = 0; j < i; j++)
			cr_assert_neq(batch[i], batch[j]);
	}
	cr_assert_eq(ig_wallet_count(&w, IG_WSLOT_REFUND_DUE), 100 - IG_COINS_PER_REQUEST);
	/* Unanswered: the same coins are offered again. */
	cr_assert_eq(ig_wallet_refund_retry(&w), IG_COINS_PER_REQUEST);
	cr_assert_eq(ig_wallet_count(&w, IG_WSLOT_REFUND_DUE), 100);
	cr_assert_eq(ig_wallet_refund_batch(&w, batch, IG_COINS_PER_REQUEST), IG_COINS_PER_REQUEST);
	cr_assert_eq(ig_wallet_refund_settle(&w, NULL), IG_COINS_PER_REQUEST);
	cr_assert_eq(ig_wallet_count(&w, IG_WSLOT_REFUNDING), 0);
	cr_assert_eq(ig_wallet_count(&w, IG_WSLOT_EMPTY), IG_WALLET_CAP - (100 - IG_COINS_PER_REQUEST));
	cr_assert_eq(ig_wallet_refund_batch(&w, batch, IG_COINS_PER_REQUEST), 100 - IG_COINS_PER_REQUEST);
	cr_assert_eq(ig_wallet_refund_settle(&w, NULL), 100 - IG_COINS_PER_REQUEST);
	cr_assert(tu_all_zero(&w, sizeof w), "settled coins must be wiped");
}

Test(refund, stopping_cancels_ready_coins_then_outstanding_ones)
{
	static ig_wallet w;
	ig_wallet_init(&w);
	uint8_t coins[6 * IG_COIN_BYTES], hash[IG_HASH_BYTES] = {1};
	randombytes_buf(coins, sizeof coins);
	cr_assert_eq(ig_wallet_add(&w, coins, 6, NOW_S + 3600), IG_OK);
	ig_wallet_coin *sent = ig_wallet_take(&w, NOW_S);
	ig_wallet_mark_sent(sent, hash, 1, NOW_MS);
	ig_wallet_coin *batch[IG_COINS_PER_REQUEST];
	cr_assert_eq(ig_wallet_refund_batch(&w, batch, 0), 0);
	/* One coin already in a refund request stays there. */
	ig_wallet_sweep(&w, NOW_MS, 60000);
	ig_wallet_coin *other = ig_wallet_take(&w, NOW_S);
	other->state = IG_WSLOT_REFUNDING;

	cr_assert_eq(ig_wallet_cancel(&w, false), 4, "ready coins first");
	cr_assert_eq(sent->state, IG_WSLOT_OUTSTANDING, "a paid reading may still be answered");
	cr_assert_eq(ig_wallet_find(&w, hash), sent);
	cr_assert_eq(ig_wallet_cancel(&w, true), 1, "then the outstanding one");
	cr_assert_eq(sent->state, IG_WSLOT_REFUND_DUE);
	cr_assert_eq(ig_wallet_find(&w, hash), sent, "a late result still finds its coin");
	cr_assert_eq(ig_wallet_count(&w, IG_WSLOT_REFUND_DUE), 5);
	cr_assert_eq(ig_wallet_count(&w, IG_WSLOT_REFUNDING), 1);
	cr_assert_eq(ig_wallet_count(&w, IG_WSLOT_READY) + ig_wallet_count(&w, IG_WSLOT_OUTSTANDING), 0);
	cr_assert_eq(ig_wallet_cancel(&w, true), 0, "idempotent");
	cr_assert_eq(ig_wallet_refund_batch(&w, batch, IG_COINS_PER_REQUEST), 5);
}

Test(analyst, error_result_is_json_matching_its_schema_shape)
{
	char out[256];
	int n = ig_analyst_error_result(out, sizeof out, IG_RESULT_ERR_NOT_JSON, "the payload is not a JSON object");
	cr_assert_gt(n, 0);
	cr_assert_eq((size_t)n, strlen(out));
	cJSON *j = cJSON_Parse(out);
	cr_assert(cJSON_IsObject(j));
	cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "error")->valuestring, "not_json");
	cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "message")->valuestring, "the payload is not a JSON object");
	cr_assert_eq(cJSON_GetArraySize(j), 2);
	cJSON_Delete(j);
	cr_assert_eq(ig_analyst_error_result(out, 20, IG_RESULT_ERR_UNDECRYPTABLE, "too long for the buffer"),
	             IG_ERR_RANGE);
}

Test(refund, request_json)
{
	static ig_wallet w;
	ig_wallet_init(&w);
	uint8_t coins[3 * IG_COIN_BYTES];
	randombytes_buf(coins, sizeof coins);
	cr_assert_eq(ig_wallet_add(&w, coins, 3, NOW_S), IG_OK);
	cr_assert_eq(ig_wallet_sweep(&w, NOW_MS, 60000), 3);
	ig_wallet_coin *batch[IG_COINS_PER_REQUEST];
	cr_assert_eq(ig_wallet_refund_batch(&w, batch, IG_COINS_PER_REQUEST), 3);
	char out[1024];
	int n = ig_wallet_refund_request(out, sizeof out, batch, 3, "n1");
	cr_assert_gt(n, 0);
	cr_assert_eq((size_t)n, strlen(out));
	cJSON *j = cJSON_Parse(out);
	cr_assert_not_null(j);
	cr_assert_str_eq(cJSON_GetObjectItem(j, "type")->valuestring, "refund");
	cr_assert_str_eq(cJSON_GetObjectItem(j, "nonce")->valuestring, "n1");
	cJSON *arr = cJSON_GetObjectItem(j, "coins");
	cr_assert_eq(cJSON_GetArraySize(arr), 3);
	for (int i = 0; i < 3; i++) {
		uint8_t coin[IG_COIN_BYTES];
		const char *hex = cJSON_GetArrayItem(arr, i)->valuestring;
		cr_assert_eq(ig_hex_decode(coin, sizeof coin, hex, strlen(hex)), IG_OK);
		cr_assert_arr_eq(coin, batch[i]->coin, IG_COIN_BYTES);
	}
	cJSON_Delete(j);
	for (int cap = 0; cap < n + 1; cap += 7)
		cr_assert_eq(ig_wallet_refund_request(out, (size_t)cap, batch, 3, "n1"), IG_ERR_RANGE, "cap %d", cap);
	cr_assert_eq(ig_wallet_refund_request(out, sizeof out, batch, 0, "n1"), IG_ERR_RANGE);
	cr_assert_eq(ig_wallet_refund_request(out, sizeof out, batch, IG_COINS_PER_REQUEST + 1, "n1"), IG_ERR_RANGE);
}

/* ---- boxes from the cluster head ------------------------------------------------ */

typedef struct keys {
	uint8_t ch_pk[IG_PK_BYTES], ch_sk[IG_SK_BYTES], dev_pk[IG_PK_BYTES], dev_sk[IG_SK_BYTES];
	ig_box_key ch_side, dev_side;
} keys;

static void make_keys(keys *k)
{
	cr_assert_eq(ig_init(), IG_OK);
	crypto_sign_keypair(k->ch_pk, k->ch_sk);
	crypto_sign_keypair(k->dev_pk, k->dev_sk);
	cr_assert_eq(ig_keybox_key_for_device(&k->ch_side, k->ch_sk, k->dev_pk), IG_OK);
	cr_assert_eq(ig_keybox_key_for_ch(&k->dev_side, k->dev_sk, k->ch_pk), IG_OK);
}

/* A reply as the bank sends it: "box_nonce" and "box" over pt. */
static cJSON *make_box_msg(const char *type, const uint8_t *pt, size_t len, const ig_box_key *bk)
{
	uint8_t nonce[crypto_box_NONCEBYTES], box[512];
	char nonce_hex[2 * sizeof nonce + 1], b64[1024];
	cr_assert_leq(len + crypto_box_MACBYTES, sizeof box);
	randombytes_buf(nonce, sizeof nonce);
	cr_assert_eq(crypto_box_easy_afternm(box, pt, len, nonce, bk->k), 0);
	ig_hex_encode(nonce_hex, nonce, sizeof nonce);
	sodium_bin2base64(b64, sizeof b64, box, len + crypto_box_MACBYTES, sodium_base64_VARIANT_ORIGINAL);
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "type", type);
	cJSON_AddStringToObject(j, "box_nonce", nonce_hex);
	cJSON_AddStringToObject(j, "box", b64);
	return j;
}

/* Replaces the box by one with byte i flipped. */
static void flip_box_byte(cJSON *j, size_t i)
{
	uint8_t box[1024];
	size_t len = 0;
	const char *b64 = cJSON_GetObjectItem(j, "box")->valuestring;
	cr_assert_eq(sodium_base642bin(box, sizeof box, b64, strlen(b64), NULL, &len, NULL, sodium_base64_VARIANT_ORIGINAL), 0);
	cr_assert_lt(i, len);
	box[i] ^= 0x01;
	char out[2048];
	sodium_bin2base64(out, sizeof out, box, len, sodium_base64_VARIANT_ORIGINAL);
	cJSON_ReplaceItemInObject(j, "box", cJSON_CreateString(out));
}

Test(ch_box, opens_only_boxes_from_the_cluster_head)
{
	keys k;
	make_keys(&k);
	uint8_t coins[4 * IG_COIN_BYTES], out[4 * IG_COIN_BYTES];
	randombytes_buf(coins, sizeof coins);
	cJSON *j = make_box_msg("coins", coins, sizeof coins, &k.ch_side);
	cr_assert_eq(ig_ch_box_open(out, sizeof out, j, &k.dev_side), (int)sizeof coins);
	cr_assert_arr_eq(out, coins, sizeof coins);
	cr_assert_eq(ig_ch_box_open(out, sizeof out - 1, j, &k.dev_side), IG_ERR_RANGE);

	/* Another device's key, or a box from someone else, must not open. */
	keys other;
	make_keys(&other);
	cr_assert_eq(ig_ch_box_open(out, sizeof out, j, &other.dev_side), IG_ERR_CRYPTO);
	cJSON *forged = make_box_msg("coins", coins, sizeof coins, &other.ch_side);
	cr_assert_eq(ig_ch_box_open(out, sizeof out, forged, &k.dev_side), IG_ERR_CRYPTO);
	cJSON_Delete(forged);

	for (size_t i = 0; i < sizeof coins + crypto_box_MACBYTES; i++) {
		cJSON *t = cJSON_Duplicate(j, true);
		flip_box_byte(t, i);
		cr_assert_eq(ig_ch_box_open(out, sizeof out, t, &k.dev_side), IG_ERR_CRYPTO, "byte %zu", i);
		cJSON_Delete(t);
	}
	/* Wrong nonce, missing or malformed fields. */
	cJSON *t = cJSON_Duplicate(j, true);
	char hex[49];
	snprintf(hex, sizeof hex, "%s", cJSON_GetObjectItem(t, "box_nonce")->valuestring);
	hex[0] = hex[0] == '0' ? '1' : '0';
	cJSON_ReplaceItemInObject(t, "box_nonce", cJSON_CreateString(hex));
	cr_assert_eq(ig_ch_box_open(out, sizeof out, t, &k.dev_side), IG_ERR_CRYPTO);
	hex[47] = '\0';
	cJSON_ReplaceItemInObject(t, "box_nonce", cJSON_CreateString(hex));
	cr_assert_eq(ig_ch_box_open(out, sizeof out, t, &k.dev_side), IG_ERR_INVAL);
	cJSON_Delete(t);
	t = cJSON_Duplicate(j, true);
	cJSON_ReplaceItemInObject(t, "box", cJSON_CreateString("not base64!"));
	cr_assert_eq(ig_ch_box_open(out, sizeof out, t, &k.dev_side), IG_ERR_INVAL);
	cJSON_ReplaceItemInObject(t, "box", cJSON_CreateString(""));
	cr_assert_eq(ig_ch_box_open(out, sizeof out, t, &k.dev_side), IG_ERR_INVAL);
	cJSON_DeleteItemFromObject(t, "box");
	cr_assert_eq(ig_ch_box_open(out, sizeof out, t, &k.dev_side), IG_ERR_INVAL);
	cJSON_Delete(t);
	cJSON_Delete(j);
}

/* ---- topics ---------------------------------------------------------------------- */

Test(topics, split_accepts_only_well_formed_topics)
{
	char collector[IG_ID_MAX + 1], stream[IG_ID_MAX + 1];
	cr_assert_eq(ig_bank_topic_split(DATA_TOPIC, CLUSTER, "data", collector, stream), IG_OK);
	cr_assert_str_eq(collector, "dev1");
	cr_assert_str_eq(stream, "readings");
	cr_assert_eq(ig_bank_topic_split(RESULTS_TOPIC, CLUSTER, "results", collector, stream), IG_OK);
	static const char *const bad[] = {
		RESULTS_TOPIC,                                  /* wrong kind for "data" */
		"iotguard/c2/dev/dev1/data/readings",           /* another cluster */
		"iotguard/c1/dev/dev1/data",                    /* no stream */
		"iotguard/c1/dev/dev1/data/",                   /* empty stream */
		"iotguard/c1/dev/dev1/data/readings/x",         /* one level too many */
		"iotguard/c1/dev//data/readings",               /* empty collector */
		"iotguard/c1/dev/+/data/readings",              /* wildcard */
		"iotguard/c1/dev/dev1/data/#",
		"iotguard/c1/ch/dev1/data/readings",
		"iotguard/c1/dev/dev1/datax/readings",
		"xiotguard/c1/dev/dev1/data/readings",
		"iotguard/c1",
		"",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_eq(ig_bank_topic_split(bad[i], CLUSTER, "data", collector, stream), IG_ERR_INVAL, "%s", bad[i]);
	char long_topic[256];
	snprintf(long_topic, sizeof long_topic, "iotguard/c1/dev/%065d/data/s", 0);
	cr_assert_eq(ig_bank_topic_split(long_topic, CLUSTER, "data", collector, stream), IG_ERR_INVAL);
}

/* ---- readings --------------------------------------------------------------------- */

Test(readings, payload_is_json_with_what_was_read)
{
	ig_reading r = {.has_load = true, .load = 0.25, .has_mem = true, .mem_kb = 123456, .has_temp = true,
	                .temp_c = 41.5};
	char out[256];
	int n = ig_reading_payload(out, sizeof out, 3, NOW_MS, &r);
	cr_assert_gt(n, 0);
	cJSON *j = cJSON_Parse(out);
	cr_assert_not_null(j);
	cr_assert_eq(cJSON_GetObjectItem(j, "seq")->valuedouble, 3);
	cr_assert_eq(cJSON_GetObjectItem(j, "t")->valuedouble, (double)NOW_MS);
	cr_assert_float_eq(cJSON_GetObjectItem(j, "load")->valuedouble, 0.25, 1e-9);
	cr_assert_eq(cJSON_GetObjectItem(j, "mem_kb")->valuedouble, 123456);
	cr_assert_float_eq(cJSON_GetObjectItem(j, "temp_c")->valuedouble, 41.5, 1e-9);
	cJSON_Delete(j);
	r.has_temp = false;
	cr_assert_gt(ig_reading_payload(out, sizeof out, 4, NOW_MS, &r), 0);
	j = cJSON_Parse(out);
	cr_assert_not_null(j);
	cr_assert_null(cJSON_GetObjectItem(j, "temp_c"));
	cJSON_Delete(j);
	for (size_t cap = 0; cap <= (size_t)n; cap++) {
		r.has_temp = true;
		int m = ig_reading_payload(out, cap, 3, NOW_MS, &r);
		cr_assert(cap <= (size_t)n ? m == IG_ERR_RANGE : m == n, "cap %zu", cap);
	}
	/* This machine has /proc: a real reading has at least the load. */
	ig_reading real;
	cr_assert_eq(ig_reading_take(&real), IG_OK);
	cr_assert(real.has_load && real.has_mem);
	cr_assert(real.load >= 0);
}

/* ---- running statistics ---------------------------------------------------------- */

Test(stats, running_mean_min_max_match_a_direct_computation)
{
	static ig_stats st;
	memset(&st, 0, sizeof st);
	ig_stat_series *s = ig_stats_series(&st, "dev1", "readings");
	double sum = 0, mn = INFINITY, mx = -INFINITY;
	for (int i = 0; i < 1000; i++) {
		double v = (double)randombytes_uniform(2000001) / 1000.0 - 1000.0;
		sum += v;
		mn = v < mn ? v : mn;
		mx = v > mx ? v : mx;
		cr_assert_eq(ig_stats_add(s, "load", v), IG_OK);
	}
	const ig_stat_field *f = ig_stats_field(s, "load");
	cr_assert_not_null(f);
	cr_assert_eq(f->count, 1000);
	cr_assert_float_eq(f->mean, sum / 1000.0, 1e-9);
	cr_assert_eq(f->min, mn);
	cr_assert_eq(f->max, mx);
	cr_assert_eq(ig_stats_add(s, "load", NAN), IG_ERR_INVAL);
	cr_assert_eq(ig_stats_add(s, "load", INFINITY), IG_ERR_INVAL);
	cr_assert_eq(f->count, 1000, "rejected values must not count");
	cr_assert_null(ig_stats_field(s, "temp_c"));
}

Test(stats, feed_takes_numeric_measurements_only)
{
	static ig_stats st;
	memset(&st, 0, sizeof st);
	ig_stat_series *s = ig_stats_series(&st, "dev1", "readings");
	cJSON *p = cJSON_Parse("{\"seq\":1,\"t\":5,\"load\":0.5,\"mem_kb\":1000,\"temp_c\":40,\"name\":\"x\","
	                       "\"ok\":true,\"nested\":{\"a\":1},\"bad name\":3,\"\":4}");
	cr_assert_eq(ig_stats_feed(s, p), 3);
	cJSON_Delete(p);
	p = cJSON_Parse("{\"seq\":2,\"t\":6,\"load\":1.5,\"mem_kb\":3000}");
	cr_assert_eq(ig_stats_feed(s, p), 2);
	cJSON_Delete(p);
	cr_assert_null(ig_stats_field(s, "seq"));
	cr_assert_null(ig_stats_field(s, "t"));
	cr_assert_null(ig_stats_field(s, "bad name"));
	const ig_stat_field *load = ig_stats_field(s, "load"), *temp = ig_stats_field(s, "temp_c");
	cr_assert_float_eq(load->mean, 1.0, 1e-12);
	cr_assert_eq(load->min, 0.5);
	cr_assert_eq(load->max, 1.5);
	cr_assert_eq(temp->count, 1);
	cr_assert_eq(s->messages, 2);
	cr_assert_eq(ig_stats_feed(s, NULL), IG_ERR_INVAL);
	p = cJSON_Parse("[1,2]");
	cr_assert_eq(ig_stats_feed(s, p), IG_ERR_INVAL);
	cJSON_Delete(p);

	/* Result JSON. */
	char out[1024];
	int n = ig_stats_result(out, sizeof out, s, 2);
	cr_assert_gt(n, 0);
	cJSON *r = cJSON_Parse(out);
	cr_assert_not_null(r);
	cr_assert_eq(cJSON_GetObjectItem(r, "seq")->valuedouble, 2);
	cJSON *lj = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "stats"), "load");
	cr_assert_eq(cJSON_GetObjectItem(lj, "count")->valuedouble, 2);
	cr_assert_float_eq(cJSON_GetObjectItem(lj, "mean")->valuedouble, 1.0, 1e-12);
	cr_assert_eq(cJSON_GetObjectItem(lj, "min")->valuedouble, 0.5);
	cr_assert_eq(cJSON_GetObjectItem(lj, "max")->valuedouble, 1.5);
	cJSON_Delete(r);
	cr_assert_eq(ig_stats_result(out, 10, s, 2), IG_ERR_RANGE);
}

Test(stats, fields_and_series_are_bounded)
{
	static ig_stats st;
	memset(&st, 0, sizeof st);
	ig_stat_series *s = ig_stats_series(&st, "dev1", "readings");
	char name[16];
	for (int i = 0; i < IG_STATS_MAX_FIELDS; i++) {
		snprintf(name, sizeof name, "f%d", i);
		cr_assert_eq(ig_stats_add(s, name, i), IG_OK);
	}
	cr_assert_eq(ig_stats_add(s, "one_too_many", 1), IG_ERR_RANGE);
	cr_assert_eq(ig_stats_add(s, "f0", 1), IG_OK, "known fields still count when full");

	/* Series are per (collector, stream); the least recently used goes. */
	cr_assert_eq(ig_stats_series(&st, "dev1", "readings"), s);
	cr_assert_neq(ig_stats_series(&st, "dev1", "other"), s);
	cr_assert_neq(ig_stats_series(&st, "dev2", "readings"), s);
	char id[16];
	for (int i = 0; i < IG_STATS_MAX_SERIES - 3; i++) {
		snprintf(id, sizeof id, "d%d", i);
		ig_stats_series(&st, id, "readings");
	}
	cr_assert_eq(ig_stats_series(&st, "dev1", "readings"), s, "all fit: nothing evicted yet");
	cr_assert_eq(s->nfields, IG_STATS_MAX_FIELDS);
	ig_stat_series *n = ig_stats_series(&st, "newcomer", "readings");   /* evicts dev1/other */
	cr_assert_str_eq(n->collector, "newcomer");
	cr_assert_eq(n->nfields, 0);
	cr_assert_eq(ig_stats_series(&st, "dev1", "readings"), s);
	cr_assert_eq(s->nfields, IG_STATS_MAX_FIELDS, "the recently used series survives");
	bool found_other = false;
	for (size_t i = 0; i < IG_STATS_MAX_SERIES; i++)
		found_other |= strcmp(st.s[i].collector, "dev1") == 0 && strcmp(st.s[i].stream, "other") == 0;
	cr_assert(!found_other, "the least recently used series was evicted");
}

/* ---- coin messages end to end ------------------------------------------------- */

static int seal_data(uint8_t *out, size_t cap, const keys *k, const uint8_t coin[IG_COIN_BYTES], const char *payload,
                     uint8_t hh[IG_HASH_BYTES])
{
	int n = ig_coin_data_seal(out, cap, k->ch_pk, coin, ig_suite_preferred(), "dev1", DATA_TOPIC, (const uint8_t *)payload,
	                          strlen(payload), hh);
	cr_assert_gt(n, 0, "ig_coin_data_seal: %d", n);
	return n;
}

static int seal_result(uint8_t *out, size_t cap, const uint8_t coin[IG_COIN_BYTES], const uint8_t hh[IG_HASH_BYTES],
                       const char *topic, const char *text)
{
	uint8_t pk[32], rk[32];
	ig_coin_keys(coin, pk, rk);
	int n = ig_coin_result_seal(out, cap, rk, ig_suite_preferred(), hh, topic, (const uint8_t *)text, strlen(text));
	cr_assert_gt(n, 0, "ig_coin_result_seal: %d", n);
	return n;
}

Test(outstanding, results_match_their_request_only)
{
	keys k;
	make_keys(&k);
	ig_pin_state pin = {.known = true};
	memcpy(pin.pk, k.ch_pk, IG_PK_BYTES);
	static ig_collect_state c;
	cr_assert_eq(ig_collect_init(&c, 5, "readings", 60, &pin), IG_OK);
	uint8_t coins[2 * IG_COIN_BYTES];
	randombytes_buf(coins, sizeof coins);
	cr_assert_eq(ig_wallet_add(&c.wallet, coins, 2, NOW_S + 3600), IG_OK);

	uint8_t data[512], hh1[IG_HASH_BYTES], hh2[IG_HASH_BYTES], res[512];
	ig_wallet_coin *c1 = ig_wallet_take(&c.wallet, NOW_S);
	seal_data(data, sizeof data, &k, c1->coin, "{\"seq\":1}", hh1);
	ig_wallet_mark_sent(c1, hh1, 1, NOW_MS);
	ig_wallet_coin *c2 = ig_wallet_take(&c.wallet, NOW_S);
	cr_assert_neq(c1, c2);
	seal_data(data, sizeof data, &k, c2->coin, "{\"seq\":2}", hh2);
	ig_wallet_mark_sent(c2, hh2, 2, NOW_MS);
	cr_assert(memcmp(hh1, hh2, IG_HASH_BYTES) != 0);
	uint8_t coin2[IG_COIN_BYTES];
	memcpy(coin2, c2->coin, IG_COIN_BYTES);

	char text[256];
	size_t len = 0;
	uint64_t seq = 0;
	/* The result for request 2 under request 1's header hash does not open. */
	int n = seal_result(res, sizeof res, coin2, hh1, RESULTS_TOPIC, "{\"seq\":2}");
	cr_assert(!ig_collect_result(&c, RESULTS_TOPIC, res, (size_t)n, text, sizeof text, &len, &seq));
	/* Sealed for another topic: the AAD differs. */
	n = seal_result(res, sizeof res, coin2, hh2, "iotguard/c1/dev/dev1/results/other", "{\"seq\":2}");
	cr_assert(!ig_collect_result(&c, RESULTS_TOPIC, res, (size_t)n, text, sizeof text, &len, &seq));
	/* The right one, tampered anywhere, does not open and costs nothing. */
	n = seal_result(res, sizeof res, coin2, hh2, RESULTS_TOPIC, "{\"seq\":2,\"stats\":{}}");
	for (int i = 0; i < n; i++) {
		res[i] ^= 0x80;
		cr_assert(!ig_collect_result(&c, RESULTS_TOPIC, res, (size_t)n, text, sizeof text, &len, &seq), "byte %d", i);
		res[i] ^= 0x80;
	}
	for (int cut = 0; cut < n; cut++)
		cr_assert(!ig_collect_result(&c, RESULTS_TOPIC, res, (size_t)cut, text, sizeof text, &len, &seq));
	cr_assert_eq(ig_wallet_count(&c.wallet, IG_WSLOT_OUTSTANDING), 2);
	cr_assert(ig_collect_result(&c, RESULTS_TOPIC, res, (size_t)n, text, sizeof text, &len, &seq));
	cr_assert_eq(seq, 2);
	cr_assert_str_eq(text, "{\"seq\":2,\"stats\":{}}");
	cr_assert_eq(len, strlen(text));
	cr_assert_eq(ig_wallet_count(&c.wallet, IG_WSLOT_OUTSTANDING), 1);
	cr_assert_null(ig_wallet_find(&c.wallet, hh2), "an answered request is forgotten");
	/* A replay of the same result finds nothing. */
	cr_assert(!ig_collect_result(&c, RESULTS_TOPIC, res, (size_t)n, text, sizeof text, &len, &seq));
	/* Too small an output buffer: refused, request kept. */
	n = seal_result(res, sizeof res, c1->coin, hh1, RESULTS_TOPIC, "{\"seq\":1}");
	cr_assert(!ig_collect_result(&c, RESULTS_TOPIC, res, (size_t)n, text, 5, &len, &seq));
	cr_assert_not_null(ig_wallet_find(&c.wallet, hh1));
	/* A late result for a coin already marked for refund still counts. */
	cr_assert_eq(ig_wallet_sweep(&c.wallet, NOW_MS + 61000, 60000), 1);
	cr_assert(ig_collect_result(&c, RESULTS_TOPIC, res, (size_t)n, text, sizeof text, &len, &seq));
	cr_assert_eq(seq, 1);
	cr_assert_eq(ig_wallet_count(&c.wallet, IG_WSLOT_REFUND_DUE), 0, "answered: no refund needed");
	/* Random garbage never matches. */
	for (int i = 0; i < 200; i++) {
		size_t gl = randombytes_uniform(200);
		randombytes_buf(res, gl);
		cr_assert(!ig_collect_result(&c, RESULTS_TOPIC, res, gl, text, sizeof text, &len, &seq));
	}
	ig_wallet_wipe(&c.wallet);
}

/* The bank's side of a redeem, as the design says: open the header, box
 * payload_key || result_key || payload nonce || header_hash to the analyst. */
static cJSON *bank_redeem(const keys *bank_and_analyst, const uint8_t *data, size_t len, const char *nonce)
{
	const uint8_t *header, *pnonce, *ct;
	size_t header_len, ct_len;
	ig_suite suite;
	cr_assert_eq(ig_coin_data_parse(data, len, &header, &header_len, &suite, &pnonce, &ct, &ct_len), IG_OK);
	ig_coin_header h;
	cr_assert_eq(ig_coin_header_open(&h, header, header_len, bank_and_analyst->ch_sk), IG_OK);
	uint8_t pt[IG_REDEEM_BOX_BYTES], hh[IG_HASH_BYTES];
	ig_coin_keys(h.coin, pt, pt + 32);
	memcpy(pt + 64, h.nonce, IG_COIN_NONCE_BYTES);
	crypto_generichash(hh, sizeof hh, header, header_len, NULL, 0);
	memcpy(pt + 64 + IG_COIN_NONCE_BYTES, hh, IG_HASH_BYTES);
	cJSON *j = make_box_msg("redeemed", pt, sizeof pt, &bank_and_analyst->ch_side);
	char hex[2 * IG_HASH_BYTES + 1];
	ig_hex_encode(hex, hh, sizeof hh);
	cJSON_AddStringToObject(j, "nonce", nonce);
	cJSON_AddStringToObject(j, "header_hash", hex);
	cJSON_AddStringToObject(j, "suite", ig_suite_name(suite));
	return j;
}

Test(redeem, table_request_and_accept)
{
	keys k;   /* dev_* plays the analyst here */
	make_keys(&k);
	uint8_t coin[IG_COIN_BYTES], data[512], hh[IG_HASH_BYTES];
	randombytes_buf(coin, sizeof coin);
	int n = seal_data(data, sizeof data, &k, coin, "{\"seq\":9,\"load\":0.5}", hh);

	static ig_redeem_table t;
	memset(&t, 0, sizeof t);
	int err = 0;
	cr_assert_null(ig_redeem_add(&t, DATA_TOPIC, "dev1", "readings", data, 10, NOW_MS, &err));
	cr_assert_eq(err, IG_ERR_INVAL);
	ig_redeem *r = ig_redeem_add(&t, DATA_TOPIC, "dev1", "readings", data, (size_t)n, NOW_MS, &err);
	cr_assert_not_null(r);
	cr_assert_eq(err, IG_OK);
	cr_assert_arr_eq(r->header_hash, hh, IG_HASH_BYTES, "the analyst's header hash is the collector's");
	cr_assert_eq(strlen(r->nonce), IG_BANK_NONCE_HEX);
	cr_assert_eq(ig_redeem_find(&t, r->nonce), r);
	cr_assert_null(ig_redeem_find(&t, "nope"));

	/* The request carries the sealed header, which the bank can open. */
	char req[1024];
	cr_assert_gt(ig_redeem_request(req, sizeof req, r), 0);
	cJSON *j = cJSON_Parse(req);
	cr_assert_not_null(j);
	cr_assert_str_eq(cJSON_GetObjectItem(j, "type")->valuestring, "redeem");
	cr_assert_str_eq(cJSON_GetObjectItem(j, "topic")->valuestring, DATA_TOPIC);
	cr_assert_str_eq(cJSON_GetObjectItem(j, "nonce")->valuestring, r->nonce);
	uint8_t header[512];
	size_t header_len = 0;
	const char *b64 = cJSON_GetObjectItem(j, "header")->valuestring;
	cr_assert_eq(sodium_base642bin(header, sizeof header, b64, strlen(b64), NULL, &header_len, NULL,
	                               sodium_base64_VARIANT_ORIGINAL), 0);
	ig_coin_header h;
	cr_assert_eq(ig_coin_header_open(&h, header, header_len, k.ch_sk), IG_OK);
	cr_assert_arr_eq(h.coin, coin, IG_COIN_BYTES);
	cr_assert_str_eq(h.collector, "dev1");
	cJSON_Delete(j);
	cr_assert_eq(ig_redeem_request(req, 20, r), IG_ERR_RANGE);

	/* The bank's reply opens to the coin's keys. */
	cJSON *reply = bank_redeem(&k, data, (size_t)n, r->nonce);
	uint8_t pk[32], rk[32], want_pk[32], want_rk[32];
	ig_coin_keys(coin, want_pk, want_rk);
	ig_error e = {0};
	cr_assert_eq(ig_redeem_accept(r, reply, &k.dev_side, pk, rk, &e), IG_OK, "%s", e.msg);
	cr_assert_arr_eq(pk, want_pk, 32);
	cr_assert_arr_eq(rk, want_rk, 32);

	/* A reply about another message must not be accepted for this one. */
	uint8_t coin_b[IG_COIN_BYTES], data_b[512], hh_b[IG_HASH_BYTES];
	randombytes_buf(coin_b, sizeof coin_b);
	int nb = seal_data(data_b, sizeof data_b, &k, coin_b, "{\"seq\":10}", hh_b);
	cJSON *other = bank_redeem(&k, data_b, (size_t)nb, r->nonce);
	cr_assert_neq(ig_redeem_accept(r, other, &k.dev_side, pk, rk, &e), IG_OK);
	/* ... not even with our header hash pasted in the clear. */
	cJSON_ReplaceItemInObject(other, "header_hash", cJSON_Duplicate(cJSON_GetObjectItem(reply, "header_hash"), true));
	cr_assert_eq(ig_redeem_accept(r, other, &k.dev_side, pk, rk, &e), IG_ERR_CRYPTO);
	cJSON_Delete(other);
	/* Wrong suite named. */
	cJSON *t2 = cJSON_Duplicate(reply, true);
	ig_suite s_other = r->suite == IG_SUITE_AES256GCM ? IG_SUITE_XCHACHA20POLY1305 : IG_SUITE_AES256GCM;
	cJSON_ReplaceItemInObject(t2, "suite", cJSON_CreateString(ig_suite_name(s_other)));
	cr_assert_eq(ig_redeem_accept(r, t2, &k.dev_side, pk, rk, &e), IG_ERR_INVAL);
	cJSON_Delete(t2);
	/* Every byte of the box. */
	for (size_t i = 0; i < IG_REDEEM_BOX_BYTES + crypto_box_MACBYTES; i++) {
		cJSON *t3 = cJSON_Duplicate(reply, true);
		flip_box_byte(t3, i);
		cr_assert_eq(ig_redeem_accept(r, t3, &k.dev_side, pk, rk, &e), IG_ERR_CRYPTO, "byte %zu", i);
		cJSON_Delete(t3);
	}
	cJSON_Delete(reply);

	/* Bounded, expiring table. */
	for (size_t i = 1; i < IG_REDEEM_MAX_PENDING; i++)
		cr_assert_not_null(ig_redeem_add(&t, DATA_TOPIC, "dev1", "readings", data, (size_t)n, NOW_MS + i, &err));
	cr_assert_null(ig_redeem_add(&t, DATA_TOPIC, "dev1", "readings", data, (size_t)n, NOW_MS, &err));
	cr_assert_eq(err, IG_ERR_RANGE);
	cr_assert_eq(ig_redeem_count(&t), IG_REDEEM_MAX_PENDING);
	cr_assert_eq(ig_redeem_expire(&t, NOW_MS + IG_REDEEM_TIMEOUT_MS + 1, IG_REDEEM_TIMEOUT_MS), 2);
	cr_assert_eq(ig_redeem_count(&t), IG_REDEEM_MAX_PENDING - 2);
	ig_redeem_clear(&t);
	cr_assert_eq(ig_redeem_count(&t), 0);
}

Test(redeem, collector_to_analyst_to_collector)
{
	keys k;   /* one CH; dev_* is the analyst, the collector needs no box key here */
	make_keys(&k);
	ig_pin_state pin = {.known = true};
	memcpy(pin.pk, k.ch_pk, IG_PK_BYTES);
	static ig_collect_state c;
	cr_assert_eq(ig_collect_init(&c, 5, "readings", 60, &pin), IG_OK);
	uint8_t coins[IG_COIN_BYTES];
	randombytes_buf(coins, sizeof coins);
	cr_assert_eq(ig_wallet_add(&c.wallet, coins, 1, NOW_S + 3600), IG_OK);

	/* Collector: a real reading, one coin. */
	ig_reading rd = {.has_load = true, .load = 0.75, .has_mem = true, .mem_kb = 2048};
	char payload[256];
	cr_assert_gt(ig_reading_payload(payload, sizeof payload, 1, NOW_MS, &rd), 0);
	ig_wallet_coin *coin = ig_wallet_take(&c.wallet, NOW_S);
	uint8_t data[512], hh[IG_HASH_BYTES];
	int n = seal_data(data, sizeof data, &k, coin->coin, payload, hh);
	ig_wallet_mark_sent(coin, hh, 1, NOW_MS);

	/* Analyst: redeem, open, compute, seal. */
	static ig_redeem_table t;
	static ig_stats st;
	memset(&t, 0, sizeof t);
	memset(&st, 0, sizeof st);
	int err;
	ig_redeem *r = ig_redeem_add(&t, DATA_TOPIC, "dev1", "readings", data, (size_t)n, NOW_MS, &err);
	cr_assert_not_null(r);
	cJSON *reply = bank_redeem(&k, data, (size_t)n, r->nonce);
	uint8_t pk[32], rk[32];
	ig_error e = {0};
	cr_assert_eq(ig_redeem_accept(r, reply, &k.dev_side, pk, rk, &e), IG_OK, "%s", e.msg);
	cJSON_Delete(reply);
	uint8_t pt[IG_COIN_DATA_MAX_PAYLOAD];
	int ptn = ig_coin_data_open(pt, sizeof pt, r->msg, r->len, r->topic, pk);
	cr_assert_eq(ptn, (int)strlen(payload));
	cr_assert_arr_eq(pt, payload, (size_t)ptn);
	cJSON *pj = cJSON_ParseWithLength((const char *)pt, (size_t)ptn);
	uint8_t scratch[IG_COIN_DATA_MAX_PAYLOAD];
	cr_assert_lt(ig_coin_data_open(scratch, sizeof scratch, r->msg, r->len, "iotguard/c1/dev/dev1/data/other", pk), 0,
	             "a message moved to another topic must not open");
	ig_stat_series *s = ig_stats_series(&st, r->collector, r->stream);
	cr_assert_eq(ig_stats_feed(s, pj), 2);
	cJSON_Delete(pj);
	char result[1024];
	int rl = ig_stats_result(result, sizeof result, s, 1);
	cr_assert_gt(rl, 0);
	uint8_t sealed[2048];
	int sl = ig_coin_result_seal(sealed, sizeof sealed, rk, r->suite, r->header_hash, RESULTS_TOPIC, (const uint8_t *)result,
	                             (size_t)rl);
	cr_assert_gt(sl, 0);
	sodium_memzero(pk, sizeof pk);
	sodium_memzero(rk, sizeof rk);
	ig_redeem_drop(r);

	/* Collector: the result answers seq 1 and holds the statistics. */
	char text[1024];
	size_t len = 0;
	uint64_t seq = 0;
	cr_assert(ig_collect_result(&c, RESULTS_TOPIC, sealed, (size_t)sl, text, sizeof text, &len, &seq));
	cr_assert_eq(seq, 1);
	cr_assert_str_eq(text, result);
	cr_assert_eq(ig_wallet_count(&c.wallet, IG_WSLOT_EMPTY), IG_WALLET_CAP, "the spent coin is gone");
}

/* ---- outcomes the bank does not know ---------------------------------------------- */

static void coin_hash_hex(char out[2 * IG_HASH_BYTES + 1], const uint8_t coin[IG_COIN_BYTES])
{
	uint8_t h[IG_HASH_BYTES];
	ig_coin_hash(h, coin);
	ig_hex_encode(out, h, sizeof h);
}

static size_t held(const ig_wallet *w) { return IG_WALLET_CAP - ig_wallet_count(w, IG_WSLOT_EMPTY); }

Test(refund, refused_coins_are_settled_by_hash_and_code)
{
	cr_assert_eq(ig_init(), IG_OK);
	static ig_wallet w;
	ig_wallet_init(&w);
	uint8_t coins[6 * IG_COIN_BYTES], h[IG_HASH_BYTES];
	coin_bytes(coins, 6, 1);
	cr_assert_eq(ig_wallet_add(&w, coins, 4, NOW_S + 3600), IG_OK);
	cr_assert_eq(ig_wallet_add_uncertain(&w, coins + 4 * IG_COIN_BYTES, 2, NOW_S + 3600), IG_OK);
	cr_assert_eq(ig_wallet_count(&w, IG_WSLOT_UNCERTAIN), 2);
	cr_assert_eq(ig_wallet_sweep(&w, (NOW_S + 7200) * 1000ull, 60000), 4, "uncertain coins wait for a reconnect");
	cr_assert_eq(ig_wallet_release_uncertain(&w), 2);
	cr_assert_eq(ig_wallet_release_uncertain(&w), 0);
	ig_wallet_coin *batch[IG_COINS_PER_REQUEST];
	cr_assert_eq(ig_wallet_refund_batch(&w, batch, IG_COINS_PER_REQUEST), 6);

	ig_refund_tally t = {0};
	uint8_t other[IG_COIN_BYTES];
	memset(other, 0x77, sizeof other);
	ig_coin_hash(h, other);
	cr_assert(!ig_wallet_refund_refused(&w, h, "unknown_coin", &t), "not a coin of ours");
	ig_coin_hash(h, coins);                         /* coin 1: may be recorded */
	cr_assert(ig_wallet_refund_refused(&w, h, "outcome_unknown", &t));
	ig_coin_hash(h, coins + IG_COIN_BYTES);         /* coin 2: certainly not recorded */
	cr_assert(ig_wallet_refund_refused(&w, h, "storage_failed", &t));
	ig_coin_hash(h, coins + 2 * IG_COIN_BYTES);     /* coin 3: the bank says no */
	cr_assert(ig_wallet_refund_refused(&w, h, "already_spent", &t));
	ig_coin_hash(h, coins + 4 * IG_COIN_BYTES);     /* coin 5: its mint was lost */
	cr_assert(ig_wallet_refund_refused(&w, h, "unknown_coin", &t));
	cr_assert(!ig_wallet_refund_refused(&w, h, "unknown_coin", &t), "settled once");
	cr_assert_eq(t.retry, 2);
	cr_assert_eq(t.refused, 1);
	cr_assert_eq(t.mint_lost, 1);
	cr_assert_eq(ig_wallet_count(&w, IG_WSLOT_REFUND_DUE), 2);
	/* Coins 4 and 6 were credited back. */
	cr_assert_eq(ig_wallet_refund_settle(&w, &t), 2);
	cr_assert_eq(t.refunded, 2);
	cr_assert_eq(t.uncertain_back, 1, "coin 6's mint was durable after all");
	cr_assert_eq(held(&w), 2);

	/* Offered again: the one that may have been recorded was. */
	cr_assert_eq(ig_wallet_refund_batch(&w, batch, IG_COINS_PER_REQUEST), 2);
	ig_refund_tally t2 = {0};
	ig_coin_hash(h, coins);
	cr_assert(ig_wallet_refund_refused(&w, h, "already_refunded", &t2));
	ig_coin_hash(h, coins + IG_COIN_BYTES);
	cr_assert(ig_wallet_refund_refused(&w, h, "already_refunded", &t2));
	cr_assert_eq(t2.refunded_before, 1);
	cr_assert_eq(t2.refused, 1, "already_refunded without an unknown refund before is a refusal");
	cr_assert_eq(ig_wallet_refund_settle(&w, &t2), 0);
	cr_assert(tu_all_zero(&w, sizeof w), "every settled coin is wiped");
}

/* A collector duty on a real agent that never connects: requests cannot be
 * sent, so the test takes them from ig_collect_refund_prepare and answers
 * as the bank would. */
struct collect_fixture {
	char dir[64], key[128];
	uint8_t ch_pk[IG_PK_BYTES], ch_sk[IG_SK_BYTES];
	ig_box_key ch_side;
	ig_pin_state pin;
	ig_collect_state c;
	ig_agent *a;
};

static void collect_setup(struct collect_fixture *f)
{
	tu_agent_key(f->dir, sizeof f->dir, f->key, sizeof f->key, "dev1");
	f->a = tu_agent_offline(CLUSTER, "dev1", f->key);
	crypto_sign_keypair(f->ch_pk, f->ch_sk);
	cr_assert_eq(ig_keybox_key_for_device(&f->ch_side, f->ch_sk, ig_agent_public_key(f->a)), IG_OK);
	memset(&f->pin, 0, sizeof f->pin);
	f->pin.known = true;
	memcpy(f->pin.pk, f->ch_pk, IG_PK_BYTES);
	cr_assert_eq(ig_collect_init(&f->c, 5, "readings", 60, &f->pin), IG_OK);
}

static void collect_teardown(struct collect_fixture *f)
{
	ig_duty_collect.on_stop(f->a, &f->c);
	ig_agent_free(f->a);
	sodium_memzero(f->ch_sk, sizeof f->ch_sk);
}

/* Takes the due refund request, checks it is one, and returns its coins. */
static size_t take_refund_request(struct collect_fixture *f, uint64_t now_us, uint8_t coins[][IG_COIN_BYTES],
                                  size_t max)
{
	static char req[IG_COLLECT_REFUND_REQUEST_MAX];
	int n = ig_collect_refund_prepare(&f->c, req, sizeof req, now_us);
	cr_assert_gt(n, 0, "a refund request is due");
	cJSON *j = cJSON_ParseWithLength(req, (size_t)n);
	cr_assert_not_null(j);
	cr_assert_str_eq(cJSON_GetObjectItem(j, "type")->valuestring, "refund");
	cr_assert_str_eq(cJSON_GetObjectItem(j, "nonce")->valuestring, f->c.refund_nonce);
	const cJSON *arr = cJSON_GetObjectItem(j, "coins");
	size_t k = 0;
	const cJSON *item;
	cJSON_ArrayForEach(item, arr) {
		cr_assert_lt(k, max);
		cr_assert_eq(ig_hex_decode(coins[k], IG_COIN_BYTES, item->valuestring, strlen(item->valuestring)), IG_OK);
		k++;
	}
	cJSON_Delete(j);
	sodium_memzero(req, sizeof req);
	return k;
}

static bool listed(uint8_t coins[][IG_COIN_BYTES], size_t n, const uint8_t *coin)
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(coins[i], coin, IG_COIN_BYTES) == 0)
			return true;
	return false;
}

/* {"type":"refunded",...}: refused[i] gets codes[i] for coins[i]. */
static cJSON *refunded_reply(const char *nonce, unsigned refunded, const uint8_t *coins, const char *const *codes,
                             size_t n)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "type", "refunded");
	cJSON_AddStringToObject(j, "nonce", nonce);
	cJSON_AddNumberToObject(j, "refunded", refunded);
	cJSON *arr = cJSON_AddArrayToObject(j, "refused");
	for (size_t i = 0; i < n; i++) {
		char hex[2 * IG_HASH_BYTES + 1];
		coin_hash_hex(hex, coins + i * IG_COIN_BYTES);
		cJSON *r = cJSON_CreateObject();
		cJSON_AddStringToObject(r, "coin_hash", hex);
		cJSON_AddStringToObject(r, "error", codes[i]);
		cJSON_AddItemToArray(arr, r);
	}
	cJSON_AddNumberToObject(j, "balance", 40);
	return j;
}

Test(unknown_outcome, mint_coins_are_kept_unspent_then_refunded_after_a_reconnect)
{
	static struct collect_fixture f;
	collect_setup(&f);
	ig_collect_state *c = &f.c;
	/* Our mint of 4 is in flight... */
	snprintf(c->mint_nonce, sizeof c->mint_nonce, "%s", "00112233445566778899aabbccddeeff");
	c->mint_count = 4;
	/* ... and is answered as the bank service (lib/bank/svc_bank.c) does when the record's batch failed. */
	uint8_t coins[4 * IG_COIN_BYTES];
	randombytes_buf(coins, sizeof coins);
	uint64_t now_s = ig_now_ms() / 1000u;
	cJSON *msg = make_box_msg("error", coins, sizeof coins, &f.ch_side);
	cJSON_AddStringToObject(msg, "error", "outcome_unknown");
	cJSON_AddStringToObject(msg, "nonce", c->mint_nonce);
	cJSON_AddNumberToObject(msg, "index", 12);
	cJSON_AddNumberToObject(msg, "count", 4);
	cJSON_AddNumberToObject(msg, "expires_at", (double)(now_s + 3600));
	cJSON_AddStringToObject(msg, "message", "a disk write failed after the mint record was written");
	cr_assert(ig_duty_collect.on_inbox(f.a, c, "error", msg));
	cJSON_Delete(msg);

	cr_assert_eq(held(&c->wallet), 4, "the coins of a possibly durable mint must be kept");
	cr_assert_eq(ig_wallet_count(&c->wallet, IG_WSLOT_UNCERTAIN), 4);
	cr_assert_eq(c->counters.uncertain_minted, 4);
	cr_assert_eq(c->counters.minted, 0);
	cr_assert_null(ig_wallet_take(&c->wallet, now_s), "they are not spent on readings");
	cr_assert_eq(c->mint_nonce[0], '\0', "the mint is over: fresh coins are asked for as usual");
	cr_assert_gt(c->next_mint_us, 0);
	uint64_t later = ig_mono_us() + 3600ull * 1000000u;
	char req[IG_COLLECT_REFUND_REQUEST_MAX];
	cr_assert_eq(ig_collect_refund_prepare(c, req, sizeof req, later), 0, "not refunded before a reconnect");

	/* Connected again (the broker restarted): they are offered for refund. */
	ig_duty_collect.on_connect(f.a, c);
	cr_assert_eq(ig_wallet_count(&c->wallet, IG_WSLOT_REFUND_DUE), 4);
	uint8_t asked[IG_COINS_PER_REQUEST][IG_COIN_BYTES];
	cr_assert_eq(take_refund_request(&f, ig_mono_us(), asked, IG_COINS_PER_REQUEST), 4);
	for (size_t i = 0; i < 4; i++)
		cr_assert(listed(asked, 4, coins + i * IG_COIN_BYTES), "coin %zu is in the refund request", i);

	/* The mint was lost: the bank knows none of them. Nothing was debited. */
	const char *codes[4] = {"unknown_coin", "unknown_coin", "unknown_coin", "unknown_coin"};
	cJSON *reply = refunded_reply(c->refund_nonce, 0, coins, codes, 4);
	cr_assert(ig_duty_collect.on_inbox(f.a, c, "refunded", reply));
	cJSON_Delete(reply);
	cr_assert_eq(held(&c->wallet), 0);
	cr_assert(tu_all_zero(&c->wallet, sizeof c->wallet), "settled coins are wiped");
	cr_assert_eq(c->counters.mint_lost, 4);
	cr_assert_eq(c->counters.refund_refused, 0, "a lost mint is not a refused refund");
	cr_assert_eq(c->counters.refunded, 0);
	cr_assert_eq(c->refund_nonce[0], '\0');
	sodium_memzero(coins, sizeof coins);
	collect_teardown(&f);
}

Test(unknown_outcome, durable_mint_coins_are_credited_back)
{
	static struct collect_fixture f;
	collect_setup(&f);
	ig_collect_state *c = &f.c;
	snprintf(c->mint_nonce, sizeof c->mint_nonce, "%s", "m2");
	c->mint_count = 2;
	uint8_t coins[2 * IG_COIN_BYTES];
	randombytes_buf(coins, sizeof coins);
	cJSON *msg = make_box_msg("error", coins, sizeof coins, &f.ch_side);
	cJSON_AddStringToObject(msg, "error", "outcome_unknown");
	cJSON_AddStringToObject(msg, "nonce", "m2");
	cJSON_AddNumberToObject(msg, "count", 2);
	cJSON_AddNumberToObject(msg, "expires_at", (double)(ig_now_ms() / 1000u + 600));
	cr_assert(ig_duty_collect.on_inbox(f.a, c, "error", msg));
	cJSON_Delete(msg);
	cr_assert_eq(ig_wallet_count(&c->wallet, IG_WSLOT_UNCERTAIN), 2);
	ig_duty_collect.on_connect(f.a, c);
	uint8_t asked[IG_COINS_PER_REQUEST][IG_COIN_BYTES];
	cr_assert_eq(take_refund_request(&f, ig_mono_us(), asked, IG_COINS_PER_REQUEST), 2);
	cJSON *reply = refunded_reply(c->refund_nonce, 2, coins, NULL, 0);
	cr_assert(ig_duty_collect.on_inbox(f.a, c, "refunded", reply));
	cJSON_Delete(reply);
	cr_assert_eq(held(&c->wallet), 0);
	cr_assert_eq(c->counters.refunded, 2);
	cr_assert_eq(c->counters.mint_lost, 0);
	sodium_memzero(coins, sizeof coins);
	collect_teardown(&f);
}

Test(unknown_outcome, mint_answer_without_coins_keeps_nothing)
{
	static struct collect_fixture f;
	collect_setup(&f);
	ig_collect_state *c = &f.c;
	snprintf(c->mint_nonce, sizeof c->mint_nonce, "%s", "m3");
	c->mint_count = 2;
	/* A collector revoked meanwhile gets no box. */
	cJSON *msg = cJSON_Parse("{\"type\":\"error\",\"error\":\"outcome_unknown\",\"nonce\":\"m3\",\"message\":\"x\"}");
	cr_assert(ig_duty_collect.on_inbox(f.a, c, "error", msg));
	cJSON_Delete(msg);
	cr_assert_eq(held(&c->wallet), 0);
	cr_assert_eq(c->mint_nonce[0], '\0');
	/* A box that is not from the cluster head is refused. */
	snprintf(c->mint_nonce, sizeof c->mint_nonce, "%s", "m4");
	keys other;
	make_keys(&other);
	uint8_t coins[2 * IG_COIN_BYTES];
	randombytes_buf(coins, sizeof coins);
	msg = make_box_msg("error", coins, sizeof coins, &other.ch_side);
	cJSON_AddStringToObject(msg, "error", "outcome_unknown");
	cJSON_AddStringToObject(msg, "nonce", "m4");
	cJSON_AddNumberToObject(msg, "count", 2);
	cJSON_AddNumberToObject(msg, "expires_at", (double)(ig_now_ms() / 1000u + 600));
	cr_assert(ig_duty_collect.on_inbox(f.a, c, "error", msg));
	cJSON_Delete(msg);
	cr_assert_eq(held(&c->wallet), 0);
	cr_assert_eq(c->counters.uncertain_minted, 0);
	collect_teardown(&f);
}

Test(unknown_outcome, refunds_of_unknown_outcome_are_offered_again_and_settle)
{
	static struct collect_fixture f;
	collect_setup(&f);
	ig_collect_state *c = &f.c;
	uint8_t coins[3 * IG_COIN_BYTES];
	randombytes_buf(coins, sizeof coins);
	cr_assert_eq(ig_wallet_add(&c->wallet, coins, 3, ig_now_ms() / 1000u + 3600), IG_OK);
	cr_assert_eq(ig_wallet_cancel(&c->wallet, false), 3);
	uint64_t now = ig_mono_us();
	uint8_t asked[IG_COINS_PER_REQUEST][IG_COIN_BYTES];
	cr_assert_eq(take_refund_request(&f, now, asked, IG_COINS_PER_REQUEST), 3);

	/* Coin 0 refunded; coin 1's record may or may not be durable; coin 2's
	 * was certainly not written. */
	const char *codes[2] = {"outcome_unknown", "storage_failed"};
	cJSON *reply = refunded_reply(c->refund_nonce, 1, coins + IG_COIN_BYTES, codes, 2);
	cr_assert(ig_duty_collect.on_inbox(f.a, c, "refunded", reply));
	cJSON_Delete(reply);
	cr_assert_eq(held(&c->wallet), 2, "coins whose refund is not known to be recorded must be kept");
	cr_assert_eq(ig_wallet_count(&c->wallet, IG_WSLOT_REFUND_DUE), 2);
	cr_assert_eq(c->counters.refunded, 1);
	cr_assert_eq(c->counters.refund_retried, 2);
	cr_assert_eq(c->counters.refund_refused, 0);
	char req[IG_COLLECT_REFUND_REQUEST_MAX];
	cr_assert_eq(ig_collect_refund_prepare(c, req, sizeof req, now), 0, "not at once: the ledger needs time");

	/* Later, once the broker is back, offered again: exactly those two. */
	cr_assert_eq(take_refund_request(&f, c->next_refund_us, asked, IG_COINS_PER_REQUEST), 2);
	cr_assert(listed(asked, 2, coins + IG_COIN_BYTES));
	cr_assert(listed(asked, 2, coins + 2 * IG_COIN_BYTES));
	/* The first refund of coin 1 was recorded after all; coin 2 now is. */
	const char *codes2[1] = {"already_refunded"};
	reply = refunded_reply(c->refund_nonce, 1, coins + IG_COIN_BYTES, codes2, 1);
	cr_assert(ig_duty_collect.on_inbox(f.a, c, "refunded", reply));
	cJSON_Delete(reply);
	cr_assert_eq(held(&c->wallet), 0);
	cr_assert(tu_all_zero(&c->wallet, sizeof c->wallet));
	cr_assert_eq(c->counters.refunded, 3, "every coin's credit came back");
	cr_assert_eq(c->counters.refund_refused, 0);
	cr_assert_eq(c->refund_nonce[0], '\0');
	sodium_memzero(coins, sizeof coins);
	collect_teardown(&f);
}

/* An analyst duty on a real agent that never connects: the redeem is put in
 * its table as analyst_on_message does, and the bank's answers are fed to
 * its inbox handler. */
Test(unknown_outcome, analyst_resends_the_identical_redeem_with_back_off)
{
	static struct collect_fixture f;
	collect_setup(&f);
	static ig_analyst_state an;
	cr_assert_eq(ig_analyst_init(&an, &f.pin), IG_OK);
	keys bank;
	memcpy(bank.ch_pk, f.ch_pk, IG_PK_BYTES);
	memcpy(bank.ch_sk, f.ch_sk, IG_SK_BYTES);
	bank.ch_side = f.ch_side;
	uint8_t coin[IG_COIN_BYTES], data[512], hh[IG_HASH_BYTES];
	randombytes_buf(coin, sizeof coin);
	int n = seal_data(data, sizeof data, &bank, coin, "{\"seq\":3,\"load\":0.25}", hh);
	int err = 0;
	ig_redeem *r = ig_redeem_add(&an.redeems, DATA_TOPIC, "dev1", "readings", data, (size_t)n, ig_now_ms(), &err);
	cr_assert_not_null(r);
	char first[1024], again[1024];
	int first_len = ig_redeem_request(first, sizeof first, r);
	cr_assert_gt(first_len, 0);

	/* The bank's disk failed after the redeem record was handed over. */
	char msg_text[256];
	snprintf(msg_text, sizeof msg_text,
	         "{\"type\":\"error\",\"error\":\"outcome_unknown\",\"request\":\"redeem\",\"nonce\":\"%s\","
	         "\"message\":\"a disk write failed\"}", r->nonce);
	cJSON *msg = cJSON_Parse(msg_text);
	uint64_t before = ig_mono_us();
	cr_assert(ig_duty_analyst.on_inbox(f.a, &an, "error", msg));
	uint64_t after = ig_mono_us();
	cr_assert_eq(ig_redeem_count(&an.redeems), 1, "a redeem of unknown outcome is kept, not given up");
	cr_assert_eq(an.counters.refused, 0, "an unknown outcome is not a refusal");
	cr_assert_geq(r->retry_at_us, before + 800000u, "first retry after 1 s (-20%%)");
	cr_assert_leq(r->retry_at_us, after + 1200000u, "first retry after 1 s (+20%%)");
	ig_redeem *due = NULL;
	cr_assert_eq(ig_analyst_retry_prepare(&an, again, sizeof again, before, &due), 0, "not resent at once");
	cr_assert_eq(ig_redeem_expire(&an.redeems, ig_now_ms() + IG_REDEEM_TIMEOUT_MS, IG_REDEEM_TIMEOUT_MS), 0,
	             "a redeem waiting for its retry does not time out");

	/* Due: the very same request goes out again (same topic, header, nonce). */
	int again_len = ig_analyst_retry_prepare(&an, again, sizeof again, r->retry_at_us, &due);
	cr_assert_eq(due, r);
	cr_assert_eq(again_len, first_len);
	cr_assert_str_eq(again, first, "the retry is the identical redeem");
	ig_analyst_retry_sent(&an, r, ig_now_ms());
	cr_assert_eq(an.counters.retried, 1);
	cr_assert_eq(r->retry_at_us, 0);
	cr_assert_eq(ig_analyst_retry_prepare(&an, again, sizeof again, UINT64_MAX, &due), 0, "sent once per answer");

	/* Still unknown (the broker has not restarted): the back-off doubles... */
	before = ig_mono_us();
	cr_assert(ig_duty_analyst.on_inbox(f.a, &an, "error", msg));
	after = ig_mono_us();
	cr_assert_geq(r->retry_at_us, before + 1600000u);
	cr_assert_leq(r->retry_at_us, after + 2400000u);
	/* ... and a reconnect (the broker is back) makes it due at once. */
	ig_duty_analyst.on_connect(f.a, &an);
	cr_assert_leq(r->retry_at_us, ig_mono_us());
	cr_assert_gt(ig_analyst_retry_prepare(&an, again, sizeof again, ig_mono_us(), &due), 0);
	cr_assert_str_eq(again, first);
	ig_analyst_retry_sent(&an, r, ig_now_ms());

	/* The first redeem had been recorded: the retry gets the keys. */
	cJSON *reply = bank_redeem(&bank, data, (size_t)n, r->nonce);
	cr_assert(ig_duty_analyst.on_inbox(f.a, &an, "redeemed", reply));
	cJSON_Delete(reply);
	cr_assert_eq(an.counters.redeemed, 1, "the coin's keys arrived for the retried redeem");
	cr_assert_eq(ig_redeem_count(&an.redeems), 0);

	/* Bounded: after the last retry, an unknown outcome gives up. */
	r = ig_redeem_add(&an.redeems, DATA_TOPIC, "dev1", "readings", data, (size_t)n, ig_now_ms(), &err);
	cr_assert_not_null(r);
	r->retries = IG_REDEEM_MAX_RETRIES;
	cJSON_ReplaceItemInObject(msg, "nonce", cJSON_CreateString(r->nonce));
	cr_assert(ig_duty_analyst.on_inbox(f.a, &an, "error", msg));
	cr_assert_eq(ig_redeem_count(&an.redeems), 0);
	cr_assert_eq(an.counters.gave_up, 1);
	/* Any other refusal drops the redeem at once, as before. */
	r = ig_redeem_add(&an.redeems, DATA_TOPIC, "dev1", "readings", data, (size_t)n, ig_now_ms(), &err);
	cr_assert_not_null(r);
	cJSON_ReplaceItemInObject(msg, "nonce", cJSON_CreateString(r->nonce));
	cJSON_ReplaceItemInObject(msg, "error", cJSON_CreateString("already_spent"));
	cr_assert(ig_duty_analyst.on_inbox(f.a, &an, "error", msg));
	cr_assert_eq(ig_redeem_count(&an.redeems), 0);
	cr_assert_eq(an.counters.refused, 1);
	cJSON_Delete(msg);

	ig_duty_analyst.on_stop(f.a, &an);
	sodium_memzero(&bank, sizeof bank);
	collect_teardown(&f);
}
