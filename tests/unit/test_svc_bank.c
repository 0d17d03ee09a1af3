/*
 * test_svc_bank.c: the bank service (lib/bank/svc_bank.c) without a broker.
 *
 * Why this exists: the bank's refusals and its durable flows used to be
 * reachable only through a real broker. Here a cluster state is built by
 * applying records, the service's decisions are read directly, and the
 * carrier is played by hand: a durable record is applied to the state first,
 * then done is called with IG_OK, IG_ERR_UNKNOWN or IG_ERR_IO, exactly as
 * ig_plugin_carry_out does. Every refusal code is covered, and a mint ->
 * redeem -> refund flow runs through the done callbacks.
 */
#include <criterion/criterion.h>

#include <cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "ig_bank.h"
#include "ig_coin.h"
#include "ig_keybox.h"
#include "ig_record.h"
#include "ig_svc_bank.h"
#include "testutil.h"

#define NOW 1767225600ull    /* 2026-01-01 */
#define TTL 3600u

static ig_state *st;
static ig_svc_bank *bank;
static ig_pool pool;
static uint8_t ch_pk[32], ch_sk[64];
static uint8_t dev1_pk[32], dev1_sk[64], dev2_pk[32], dev2_sk[64], an1_pk[32], an1_sk[64], an2_pk[32], an2_sk[64];
static uint64_t next_index = 1;

static void apply(uint16_t type, const uint8_t *body, size_t len)
{
	ig_record rec = {.index = next_index++, .ts_ms = NOW * 1000, .type = type, .body = body, .body_len = (uint32_t)len};
	ig_error err = {0};
	cr_assert_eq(ig_state_apply(st, &rec, &err), IG_OK, "record type %u refused: %s", type, err.msg);
}

static void enroll(const char *id, ig_role role, const uint8_t pk[32])
{
	uint8_t body[512];
	apply(IG_REC_ENROLL, body, tu_enroll_body(body, sizeof body, id, role, pk, "admin"));
}

static void credit(const char *id, uint64_t amount)
{
	ig_credit_rec c = {.amount = amount};
	snprintf(c.id, sizeof c.id, "%s", id);
	snprintf(c.by, sizeof c.by, "admin");
	uint8_t body[256];
	int n = ig_bank_credit_encode(body, sizeof body, &c);
	cr_assert_gt(n, 0);
	apply(IG_REC_CREDIT, body, (size_t)n);
}

static void setup(void)
{
	cr_assert_geq(sodium_init(), 0);
	tu_seed_keypair(ch_pk, ch_sk, 0x00);
	tu_seed_keypair(dev1_pk, dev1_sk, 0x20);
	tu_seed_keypair(dev2_pk, dev2_sk, 0x40);
	tu_seed_keypair(an1_pk, an1_sk, 0x60);
	tu_seed_keypair(an2_pk, an2_sk, 0x80);
	uint8_t pool_key[32];
	tu_seq_bytes(pool_key, sizeof pool_key, 0xa0);
	ig_pool_init(&pool, pool_key);
	st = ig_state_new();
	cr_assert_not_null(st);
	ig_svc_bank_config cfg = {.coin_ttl_s = TTL, .cluster = "demo"};
	bank = ig_svc_bank_new(&cfg);
	cr_assert_not_null(bank);
	next_index = 1;
	enroll("dev1", IG_ROLE_DEVICE, dev1_pk);
	enroll("dev2", IG_ROLE_DEVICE, dev2_pk);
	enroll("an1", IG_ROLE_ANALYST, an1_pk);
	enroll("an2", IG_ROLE_ANALYST, an2_pk);
	credit("dev1", 10);
	credit("dev2", 3);
}

static void teardown(void)
{
	ig_svc_bank_free(bank);
	ig_state_free(st);
	ig_pool_wipe(&pool);
}

TestSuite(svc_bank, .init = setup, .fini = teardown);

/* ---- helpers: ask, carry out, read ---- */

static ig_svc_bank_env env_at(uint64_t now_s)
{
	return (ig_svc_bank_env){.state = st, .ch_sk = ch_sk, .pool = &pool, .now_s = now_s};
}

static void ask_at(ig_decision *d, const char *id, const char *json, uint64_t now_s)
{
	cJSON *req = cJSON_Parse(json);
	cr_assert_not_null(req, "test JSON does not parse: %s", json);
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(req, "type");
	cr_assert(cJSON_IsString(type));
	memset(d, 0, sizeof *d);
	ig_svc_bank_env env = env_at(now_s);
	ig_svc_bank_request(bank, &env, id, type->valuestring, req, d);
	cJSON_Delete(req);   /* the decision must not point into the request */
}

static void ask(ig_decision *d, const char *id, const char *json)
{
	ask_at(d, id, json, NOW);
}

/* Plays the carrier for the APPEND in d: a durable (IG_OK) record is
 * applied to the state before done runs; d becomes done's output. The
 * record's body is copied to *body_out (if given) before it is freed. */
static void carry(ig_decision *d, int status, uint8_t *body_out, size_t *len_out)
{
	cr_assert_eq(d->kind, IG_DECISION_APPEND, "expected an append, got kind %d (%s: %s)", d->kind,
	             d->error ? d->error : "-", d->message);
	cr_assert_null(d->next, "a chain of appends: use carry_chain");
	ig_record rec = {.index = next_index, .ts_ms = NOW * 1000, .type = d->rec_type, .body = d->body,
	                 .body_len = (uint32_t)d->body_len};
	if (body_out) {
		memcpy(body_out, d->body, d->body_len);
		*len_out = d->body_len;
	}
	if (status == IG_OK) {
		ig_error err = {0};
		cr_assert_eq(ig_state_apply(st, &rec, &err), IG_OK, "the durable record is refused: %s", err.msg);
	}
	if (status == IG_OK || status == IG_ERR_UNKNOWN)
		next_index++;
	ig_decision out;
	memset(&out, 0, sizeof out);
	ig_decision_done_fn done = d->done;
	d->done = NULL;
	done(d->done_ctx, status, status == IG_OK || status == IG_ERR_UNKNOWN ? &rec : NULL, &out);
	ig_decision_clear(d);
	*d = out;
}

/* Plays the carrier for a chain of n appends (d, d->next, ...), handed to
 * the ledger at once and completed in order with statuses[i]; the record
 * bodies are checked by check(i, body, len). d becomes the one output that
 * is not empty (the answer). */
static void carry_chain(ig_decision *d, const int *statuses, size_t n,
                        void (*check)(size_t i, const uint8_t *body, size_t len))
{
	ig_decision *links[IG_COINS_PER_REQUEST];
	size_t k = 0;
	links[k] = malloc(sizeof **links);
	cr_assert_not_null(links[k]);
	*links[k] = *d;
	memset(d, 0, sizeof *d);
	while (links[k]->next) {
		cr_assert_lt(k + 1, IG_COINS_PER_REQUEST);
		links[k + 1] = links[k]->next;
		links[k]->next = NULL;
		k++;
	}
	cr_assert_eq(k + 1, n, "%zu appends, expected %zu", k + 1, n);
	for (size_t i = 0; i < n; i++) {
		uint8_t body[1024];
		size_t len;
		carry(links[i], statuses[i], body, &len);
		check(i, body, len);
		if (links[i]->kind != IG_DECISION_NONE) {
			cr_assert_eq(d->kind, IG_DECISION_NONE, "only the last done answers");
			*d = *links[i];
		}
		free(links[i]);
	}
}

static void assert_refusal(const ig_decision *d, const char *request, const char *code, const char *nonce)
{
	cr_assert_eq(d->kind, IG_DECISION_REFUSE, "expected refusal %s, got kind %d", code, d->kind);
	cr_assert_str_eq(d->error, code, "message: %s", d->message);
	cr_assert_str_eq(d->request, request);
	cr_assert_str_eq(d->nonce, nonce ? nonce : "");
	cr_assert_gt(strlen(d->message), 10, "a refusal says what to do");
}

/* The single reply of d, to `to`, of type `type`. */
static const cJSON *reply(const ig_decision *d, const char *to, const char *type)
{
	cr_assert_eq(d->kind, IG_DECISION_REPLY, "expected a reply, got kind %d (%s: %s)", d->kind,
	             d->error ? d->error : "-", d->message);
	cr_assert_eq(d->n_replies, 1);
	cr_assert_str_eq(d->replies[0].to, to);
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(d->replies[0].body, "type");
	cr_assert(cJSON_IsString(t));
	cr_assert_str_eq(t->valuestring, type);
	return d->replies[0].body;
}

static double num(const cJSON *o, const char *name)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, name);
	cr_assert(cJSON_IsNumber(n), "no number \"%s\"", name);
	return n->valuedouble;
}

static const char *str(const cJSON *o, const char *name)
{
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, name);
	cr_assert(cJSON_IsString(s), "no string \"%s\"", name);
	return s->valuestring;
}

/* Opens the box of reply o as its addressee (device key dev_pk) would. */
static size_t open_box(const cJSON *o, const uint8_t dev_pk[32], uint8_t *plain, size_t cap)
{
	ig_box_key bk;
	cr_assert_eq(ig_keybox_key_for_device(&bk, ch_sk, dev_pk), IG_OK);
	uint8_t nonce[crypto_box_NONCEBYTES], box[4096];
	size_t box_len = 0;
	cr_assert_eq(ig_hex_decode(nonce, sizeof nonce, str(o, "box_nonce"), strlen(str(o, "box_nonce"))), IG_OK);
	cr_assert_eq(sodium_base642bin(box, sizeof box, str(o, "box"), strlen(str(o, "box")), NULL, &box_len, NULL,
	                               sodium_base64_VARIANT_ORIGINAL), 0);
	cr_assert_geq(box_len, crypto_box_MACBYTES);
	cr_assert_leq(box_len - crypto_box_MACBYTES, cap);
	cr_assert_eq(crypto_box_open_easy_afternm(plain, box, box_len, nonce, bk.k), 0, "the box does not open");
	return box_len - crypto_box_MACBYTES;
}

static double stat_of(const char *path1, const char *path2)
{
	cJSON *s = cJSON_CreateObject();
	ig_svc_bank_stats(bank, st, s);
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(s, "bank");
	cr_assert_not_null(b);
	const cJSON *o = path2 ? cJSON_GetObjectItemCaseSensitive(b, path1) : b;
	double v = num(o, path2 ? path2 : path1);
	cJSON_Delete(s);
	return v;
}

static double refused(const char *code)
{
	return stat_of("refused", code);
}

/* Mints n coins for id, durably, and returns them in coins. */
static void mint(const char *id, const uint8_t pk[32], uint32_t n, uint8_t coins[][IG_COIN_BYTES])
{
	char json[128];
	snprintf(json, sizeof json, "{\"type\":\"mint\",\"count\":%u,\"nonce\":\"m-%s\"}", n, id);
	ig_decision d;
	ask(&d, id, json);
	carry(&d, IG_OK, NULL, NULL);
	const cJSON *o = reply(&d, id, "coins");
	cr_assert_eq(num(o, "count"), n);
	uint8_t plain[IG_COINS_PER_REQUEST * IG_COIN_BYTES];
	cr_assert_eq(open_box(o, pk, plain, sizeof plain), (size_t)n * IG_COIN_BYTES);
	memcpy(coins, plain, (size_t)n * IG_COIN_BYTES);
	ig_decision_clear(&d);
}

/* A redeem request for coin, sealed by collector for topic. */
static void redeem_json(char *out, size_t cap, const uint8_t coin[IG_COIN_BYTES], const char *collector,
                        const char *sealed_topic, const char *topic, const char *nonce, uint8_t header_hash[32])
{
	uint8_t msg[1024], hh[32];
	int n = ig_coin_data_seal(msg, sizeof msg, ch_pk, coin, IG_SUITE_AES256GCM, collector, sealed_topic,
	                          (const uint8_t *)"reading", 7, hh);
	cr_assert_gt(n, 0);
	const uint8_t *header, *dnonce, *ct;
	size_t header_len, ct_len;
	ig_suite suite;
	cr_assert_eq(ig_coin_data_parse(msg, (size_t)n, &header, &header_len, &suite, &dnonce, &ct, &ct_len), IG_OK);
	char b64[512];
	sodium_bin2base64(b64, sizeof b64, header, header_len, sodium_base64_VARIANT_ORIGINAL);
	snprintf(out, cap, "{\"type\":\"redeem\",\"topic\":\"%s\",\"header\":\"%s\",\"nonce\":\"%s\"}", topic, b64, nonce);
	if (header_hash)
		memcpy(header_hash, hh, 32);
}

#define T1 "iotguard/demo/dev/dev1/data/temp"

static void coin_hex(char out[65], const uint8_t coin[IG_COIN_BYTES])
{
	ig_hex_encode(out, coin, IG_COIN_BYTES);
}

static const cJSON *refused_entry(const cJSON *o, size_t i, const uint8_t hash[32], const char *error)
{
	const cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "refused"), (int)i);
	cr_assert_not_null(r, "no refused[%zu]", i);
	char hex[65];
	ig_hex_encode(hex, hash, 32);
	cr_assert_str_eq(str(r, "coin_hash"), hex);
	cr_assert_str_eq(str(r, "error"), error);
	return r;
}

/* ---- mint ---- */

Test(svc_bank, mint_refusals_carry_the_nonce_and_are_counted)
{
	ig_decision d;
	ask(&d, "an1", "{\"type\":\"mint\",\"count\":1,\"nonce\":\"n-1\"}");
	assert_refusal(&d, "mint", "not_allowed", "n-1");
	ig_decision_clear(&d);
	ask(&d, "ghost", "{\"type\":\"mint\",\"count\":1,\"nonce\":\"n-1\"}");
	assert_refusal(&d, "mint", "not_allowed", "n-1");
	ig_decision_clear(&d);

	ask(&d, "dev1", "{\"type\":\"mint\",\"count\":1}");
	assert_refusal(&d, "mint", "malformed", NULL);
	ig_decision_clear(&d);
	ask(&d, "dev1", "{\"type\":\"mint\",\"count\":1.5,\"nonce\":\"n-2\"}");
	assert_refusal(&d, "mint", "malformed", "n-2");
	ig_decision_clear(&d);
	ask(&d, "dev1", "{\"type\":\"mint\",\"count\":\"3\",\"nonce\":\"n-3\"}");
	assert_refusal(&d, "mint", "malformed", "n-3");
	ig_decision_clear(&d);
	ask(&d, "dev1", "{\"type\":\"mint\",\"count\":2,\"nonce\":\"has space\"}");
	assert_refusal(&d, "mint", "malformed", NULL);
	ig_decision_clear(&d);

	const char *over[] = {"0", "65", "1e10", "-1"};
	for (size_t i = 0; i < 4; i++) {
		char json[96];
		snprintf(json, sizeof json, "{\"type\":\"mint\",\"count\":%s,\"nonce\":\"o\"}", over[i]);
		ask(&d, "dev1", json);
		assert_refusal(&d, "mint", "over_limit", "o");
		ig_decision_clear(&d);
	}

	ask(&d, "dev2", "{\"type\":\"mint\",\"count\":4,\"nonce\":\"c\"}");
	assert_refusal(&d, "mint", "no_credit", "c");
	ig_decision_clear(&d);

	cr_assert_eq(refused("not_allowed"), 2);
	cr_assert_eq(refused("malformed"), 4);
	cr_assert_eq(refused("over_limit"), 4);
	cr_assert_eq(refused("no_credit"), 1);
	cr_assert_eq(ig_coins_balance(ig_state_coins(st), "dev2"), 3, "a refused mint takes no credit");
}

Test(svc_bank, durable_mint_debits_credit_and_boxes_the_recorded_coins)
{
	ig_decision d;
	ask(&d, "dev1", "{\"type\":\"mint\",\"count\":3,\"nonce\":\"m-1\"}");
	cr_assert_eq(d.kind, IG_DECISION_APPEND);
	cr_assert_eq(d.rec_type, IG_REC_COIN_MINT);
	cr_assert_eq(ig_coins_reserved(ig_state_coins(st), "dev1"), 3, "credit is promised while the mint is written");
	uint8_t body[4096];
	size_t len;
	carry(&d, IG_OK, body, &len);
	ig_mint_rec rec;
	ig_error err = {0};
	cr_assert_eq(ig_bank_mint_decode(body, len, &rec, &err), IG_OK);
	cr_assert_str_eq(rec.owner, "dev1");
	cr_assert_eq(rec.count, 3);
	cr_assert_eq(rec.expires_at, NOW + TTL);

	const cJSON *o = reply(&d, "dev1", "coins");
	cr_assert_str_eq(str(o, "nonce"), "m-1");
	cr_assert_eq(num(o, "count"), 3);
	cr_assert_eq(num(o, "expires_at"), (double)(NOW + TTL));
	uint8_t coins[3 * IG_COIN_BYTES];
	cr_assert_eq(open_box(o, dev1_pk, coins, sizeof coins), sizeof coins);
	for (int i = 0; i < 3; i++) {
		uint8_t h[32];
		ig_coin_hash(h, coins + i * IG_COIN_BYTES);
		cr_assert_eq(memcmp(h, rec.hashes[i], 32), 0, "coin %d is not the one recorded", i);
	}
	ig_decision_clear(&d);
	cr_assert_eq(ig_coins_balance(ig_state_coins(st), "dev1"), 7);
	cr_assert_eq(ig_coins_reserved(ig_state_coins(st), "dev1"), 0);
	cr_assert_eq(stat_of("minted", NULL), 3);
	cr_assert_eq(stat_of("outstanding", NULL), 3);
}

Test(svc_bank, mints_in_flight_cannot_overdraw)
{
	ig_decision a, b;
	ask(&a, "dev2", "{\"type\":\"mint\",\"count\":2,\"nonce\":\"a\"}");
	cr_assert_eq(a.kind, IG_DECISION_APPEND);
	ask(&b, "dev2", "{\"type\":\"mint\",\"count\":2,\"nonce\":\"b\"}");
	assert_refusal(&b, "mint", "no_credit", "b");
	ig_decision_clear(&b);
	carry(&a, IG_OK, NULL, NULL);
	ig_decision_clear(&a);
	ask(&b, "dev2", "{\"type\":\"mint\",\"count\":1,\"nonce\":\"c\"}");
	cr_assert_eq(b.kind, IG_DECISION_APPEND, "the last credit is free once the first mint is applied");
	ig_decision_clear(&b);
	cr_assert_eq(ig_coins_reserved(ig_state_coins(st), "dev2"), 0, "an append never carried out releases its credit");
}

Test(svc_bank, mint_not_written_is_storage_failed_and_takes_nothing)
{
	ig_decision d;
	ask(&d, "dev1", "{\"type\":\"mint\",\"count\":5,\"nonce\":\"m-2\"}");
	carry(&d, IG_ERR_IO, NULL, NULL);
	assert_refusal(&d, "mint", "storage_failed", "m-2");
	cr_assert(strstr(d.message, "no coins were issued"), "%s", d.message);
	ig_decision_clear(&d);
	ask(&d, "dev1", "{\"type\":\"mint\",\"count\":1,\"nonce\":\"m-3\"}");
	carry(&d, IG_ERR_NOSPACE, NULL, NULL);
	assert_refusal(&d, "mint", "storage_failed", "m-3");
	cr_assert(strstr(d.message, "ENOSPC"), "a full disk is named: %s", d.message);
	ig_decision_clear(&d);
	cr_assert_eq(ig_coins_balance(ig_state_coins(st), "dev1"), 10);
	cr_assert_eq(ig_coins_reserved(ig_state_coins(st), "dev1"), 0);
	cr_assert_eq(refused("storage_failed"), 2);
	cr_assert_eq(stat_of("minted", NULL), 0);
}

Test(svc_bank, mint_of_unknown_outcome_still_delivers_the_coins)
{
	ig_decision d;
	ask(&d, "dev1", "{\"type\":\"mint\",\"count\":2,\"nonce\":\"m-4\"}");
	uint64_t index = next_index;
	carry(&d, IG_ERR_UNKNOWN, NULL, NULL);
	const cJSON *o = reply(&d, "dev1", "error");
	cr_assert_str_eq(str(o, "error"), "outcome_unknown");
	cr_assert_str_eq(str(o, "request"), "mint");
	cr_assert_str_eq(str(o, "nonce"), "m-4");
	cr_assert_eq(num(o, "index"), (double)index);
	cr_assert_eq(num(o, "count"), 2);
	cr_assert_eq(num(o, "expires_at"), (double)(NOW + TTL));
	uint8_t coins[2 * IG_COIN_BYTES];
	cr_assert_eq(open_box(o, dev1_pk, coins, sizeof coins), sizeof coins);
	cr_assert(strstr(str(o, "message"), "keep the boxed coins"));
	ig_decision_clear(&d);
	cr_assert_eq(refused("outcome_unknown"), 1);
	cr_assert_eq(ig_coins_reserved(ig_state_coins(st), "dev1"), 0);
}

/* ---- redeem ---- */

Test(svc_bank, redeem_refusals)
{
	uint8_t coins[3][IG_COIN_BYTES], stranger[IG_COIN_BYTES];
	mint("dev1", dev1_pk, 3, coins);
	tu_seq_bytes(stranger, sizeof stranger, 0x11);
	char json[1024];
	ig_decision d;

	redeem_json(json, sizeof json, coins[0], "dev1", T1, T1, "r-1", NULL);
	ask(&d, "dev1", json);
	assert_refusal(&d, "redeem", "not_allowed", "r-1");
	ig_decision_clear(&d);

	ask(&d, "an1", "{\"type\":\"redeem\",\"topic\":\"" T1 "\",\"header\":\"AAAA\"}");
	assert_refusal(&d, "redeem", "malformed", NULL);
	ig_decision_clear(&d);
	ask(&d, "an1", "{\"type\":\"redeem\",\"topic\":\"" T1 "\",\"header\":\"not base64!\",\"nonce\":\"r-2\"}");
	assert_refusal(&d, "redeem", "malformed", "r-2");
	ig_decision_clear(&d);
	ask(&d, "an1", "{\"type\":\"redeem\",\"topic\":\"" T1 "\",\"header\":\"AAAAAAAA\",\"nonce\":\"r-3\"}");
	assert_refusal(&d, "redeem", "malformed", "r-3");
	cr_assert(strstr(d.message, "does not open"), "%s", d.message);
	ig_decision_clear(&d);

	redeem_json(json, sizeof json, stranger, "dev1", T1, T1, "r-4", NULL);
	ask(&d, "an1", json);
	assert_refusal(&d, "redeem", "unknown_coin", "r-4");
	ig_decision_clear(&d);

	/* Sealed for one topic, cited for another; and a stream that is not an id. */
	redeem_json(json, sizeof json, coins[0], "dev1", T1, "iotguard/demo/dev/dev1/data/hum", "r-5", NULL);
	ask(&d, "an1", json);
	assert_refusal(&d, "redeem", "wrong_topic", "r-5");
	ig_decision_clear(&d);
	redeem_json(json, sizeof json, coins[0], "dev1", "iotguard/demo/dev/dev1/data/a+b", "iotguard/demo/dev/dev1/data/a+b",
	            "r-6", NULL);
	ask(&d, "an1", json);
	assert_refusal(&d, "redeem", "wrong_topic", "r-6");
	ig_decision_clear(&d);

	/* dev2 seals dev1's coin as its own. */
	redeem_json(json, sizeof json, coins[0], "dev2", "iotguard/demo/dev/dev2/data/t", "iotguard/demo/dev/dev2/data/t",
	            "r-7", NULL);
	ask(&d, "an1", json);
	assert_refusal(&d, "redeem", "wrong_collector", "r-7");
	ig_decision_clear(&d);

	redeem_json(json, sizeof json, coins[0], "dev1", T1, T1, "r-8", NULL);
	ask_at(&d, "an1", json, NOW + TTL);
	assert_refusal(&d, "redeem", "expired", "r-8");
	ig_decision_clear(&d);

	cr_assert_eq(refused("not_allowed"), 1);
	cr_assert_eq(refused("malformed"), 3);
	cr_assert_eq(refused("unknown_coin"), 1);
	cr_assert_eq(refused("wrong_topic"), 2);
	cr_assert_eq(refused("wrong_collector"), 1);
	cr_assert_eq(refused("expired"), 1);
	cr_assert_eq(stat_of("outstanding", NULL), 3, "a refused redeem spends nothing");
}

Test(svc_bank, redeem_races_and_repeats)
{
	uint8_t coins[1][IG_COIN_BYTES];
	mint("dev1", dev1_pk, 1, coins);
	char json[1024], other[1024];
	uint8_t hh[32];
	redeem_json(json, sizeof json, coins[0], "dev1", T1, T1, "r-1", hh);
	redeem_json(other, sizeof other, coins[0], "dev1", T1, T1, "r-2", NULL);   /* another header, same coin */

	ig_decision first, d;
	ask(&first, "an1", json);
	cr_assert_eq(first.kind, IG_DECISION_APPEND);
	cr_assert_eq(first.rec_type, IG_REC_COIN_REDEEM);
	/* While it is written: anyone else is already_spent, the redeemer itself outcome_unknown. */
	ask(&d, "an2", json);
	assert_refusal(&d, "redeem", "already_spent", "r-1");
	ig_decision_clear(&d);
	ask(&d, "an1", other);
	assert_refusal(&d, "redeem", "already_spent", "r-2");
	ig_decision_clear(&d);
	ask(&d, "an1", json);
	assert_refusal(&d, "redeem", "outcome_unknown", "r-1");
	ig_decision_clear(&d);

	uint8_t body[512];
	size_t len;
	carry(&first, IG_OK, body, &len);
	ig_redeem_rec rr;
	ig_error err = {0};
	cr_assert_eq(ig_bank_redeem_decode(body, len, &rr, &err), IG_OK);
	cr_assert_str_eq(rr.analyst, "an1");
	cr_assert_str_eq(rr.collector, "dev1");
	cr_assert(rr.has_header_hash);
	cr_assert_eq(memcmp(rr.header_hash, hh, 32), 0);

	const cJSON *o = reply(&first, "an1", "redeemed");
	char hex[65];
	ig_hex_encode(hex, hh, 32);
	cr_assert_str_eq(str(o, "header_hash"), hex);
	cr_assert_str_eq(str(o, "suite"), "aes256gcm");
	cr_assert_str_eq(str(o, "nonce"), "r-1");
	uint8_t plain[120], pk_[32], rk[32];
	cr_assert_eq(open_box(o, an1_pk, plain, sizeof plain), 120);
	ig_coin_keys(coins[0], pk_, rk);
	cr_assert_eq(memcmp(plain, pk_, 32), 0);
	cr_assert_eq(memcmp(plain + 32, rk, 32), 0);
	cr_assert_eq(memcmp(plain + 64 + IG_COIN_NONCE_BYTES, hh, 32), 0);
	ig_decision_clear(&first);
	cr_assert_eq(stat_of("redeemed", NULL), 1);

	/* The redeemer repeats: the same keys, no new record. */
	ask(&d, "an1", json);
	o = reply(&d, "an1", "redeemed");
	uint8_t again[120];
	cr_assert_eq(open_box(o, an1_pk, again, sizeof again), 120);
	cr_assert_eq(memcmp(again, plain, sizeof plain), 0);
	ig_decision_clear(&d);
	/* Anyone else, or the same analyst with another header: spent. */
	ask(&d, "an2", json);
	assert_refusal(&d, "redeem", "already_spent", "r-1");
	ig_decision_clear(&d);
	ask(&d, "an1", other);
	assert_refusal(&d, "redeem", "already_spent", "r-2");
	ig_decision_clear(&d);
	cr_assert_eq(stat_of("redeemed", NULL), 1);
	cr_assert_eq(refused("already_spent"), 4);
	cr_assert_eq(refused("outcome_unknown"), 1);
}

Test(svc_bank, redeem_not_written_frees_the_coin_and_unknown_keeps_it)
{
	uint8_t coins[2][IG_COIN_BYTES];
	mint("dev1", dev1_pk, 2, coins);
	char json[1024];
	ig_decision d;

	redeem_json(json, sizeof json, coins[0], "dev1", T1, T1, "r-1", NULL);
	ask(&d, "an1", json);
	carry(&d, IG_ERR_IO, NULL, NULL);
	assert_refusal(&d, "redeem", "storage_failed", "r-1");
	ig_decision_clear(&d);
	ask(&d, "an2", json);
	cr_assert_eq(d.kind, IG_DECISION_APPEND, "a redeem certainly not written spends nothing");
	/* Never carried out: clearing completes it as not written (IG_ERR_CLOSED,
	 * a second storage_failed), and the coin is free again. */
	ig_decision_clear(&d);
	ask(&d, "an2", json);
	cr_assert_eq(d.kind, IG_DECISION_APPEND);
	ig_decision_clear(&d);

	redeem_json(json, sizeof json, coins[1], "dev1", T1, T1, "r-2", NULL);
	ask(&d, "an1", json);
	carry(&d, IG_ERR_UNKNOWN, NULL, NULL);
	assert_refusal(&d, "redeem", "outcome_unknown", "r-2");
	cr_assert(strstr(d.message, "retry the same redeem"), "%s", d.message);
	ig_decision_clear(&d);
	ask(&d, "an1", json);
	assert_refusal(&d, "redeem", "outcome_unknown", "r-2");
	ig_decision_clear(&d);
	ask(&d, "an2", json);
	assert_refusal(&d, "redeem", "already_spent", "r-2");
	ig_decision_clear(&d);
	cr_assert_eq(refused("storage_failed"), 3);
	cr_assert_eq(refused("outcome_unknown"), 2);
}

Test(svc_bank, a_revoked_collectors_coins_are_unknown)
{
	uint8_t coins[1][IG_COIN_BYTES];
	mint("dev1", dev1_pk, 1, coins);
	uint8_t body[512];
	apply(IG_REC_REVOKE, body, tu_revoke_body(body, sizeof body, "dev1", "admin"));
	char json[1024];
	redeem_json(json, sizeof json, coins[0], "dev1", T1, T1, "r-1", NULL);
	ig_decision d;
	ask(&d, "an1", json);
	assert_refusal(&d, "redeem", "unknown_coin", "r-1");
	ig_decision_clear(&d);
}

/* ---- refund ---- */

Test(svc_bank, refund_refusals)
{
	uint8_t coins[4][IG_COIN_BYTES], theirs[1][IG_COIN_BYTES], stranger[IG_COIN_BYTES];
	mint("dev1", dev1_pk, 4, coins);
	mint("dev2", dev2_pk, 1, theirs);
	tu_seq_bytes(stranger, sizeof stranger, 0x33);
	ig_decision d;
	char json[2048], c0[65], c1[65], c2[65], t0[65], s0[65];
	coin_hex(c0, coins[0]), coin_hex(c1, coins[1]), coin_hex(c2, coins[2]);
	coin_hex(t0, theirs[0]), coin_hex(s0, stranger);

	snprintf(json, sizeof json, "{\"type\":\"refund\",\"coins\":[\"%s\"],\"nonce\":\"f-1\"}", c0);
	ask(&d, "an1", json);
	assert_refusal(&d, "refund", "not_allowed", "f-1");
	ig_decision_clear(&d);
	ask(&d, "dev1", "{\"type\":\"refund\",\"coins\":[],\"nonce\":\"f-2\"}");
	assert_refusal(&d, "refund", "malformed", "f-2");
	ig_decision_clear(&d);
	snprintf(json, sizeof json, "{\"type\":\"refund\",\"coins\":[\"%s\"]}", c0);
	ask(&d, "dev1", json);
	assert_refusal(&d, "refund", "malformed", NULL);
	ig_decision_clear(&d);
	ask(&d, "dev1", "{\"type\":\"refund\",\"coins\":\"all\",\"nonce\":\"f-3\"}");
	assert_refusal(&d, "refund", "malformed", "f-3");
	ig_decision_clear(&d);
	char many[512];
	int n = snprintf(many, sizeof many, "{\"type\":\"refund\",\"nonce\":\"f-4\",\"coins\":[");
	for (int i = 0; i < IG_COINS_PER_REQUEST + 1; i++)
		n += snprintf(many + n, sizeof many - (size_t)n, "%s1", i ? "," : "");
	snprintf(many + n, sizeof many - (size_t)n, "]}");
	ask(&d, "dev1", many);
	assert_refusal(&d, "refund", "malformed", "f-4");
	ig_decision_clear(&d);
	cr_assert_eq(refused("not_allowed"), 1);
	cr_assert_eq(refused("malformed"), 4);

	/* Redeem coin 1, refund coin 2, then ask for all of it at once. */
	char rj[1024];
	redeem_json(rj, sizeof rj, coins[1], "dev1", T1, T1, "r-1", NULL);
	ask(&d, "an1", rj);
	carry(&d, IG_OK, NULL, NULL);
	ig_decision_clear(&d);
	snprintf(json, sizeof json, "{\"type\":\"refund\",\"coins\":[\"%s\"],\"nonce\":\"f-5\"}", c2);
	ask(&d, "dev1", json);
	carry(&d, IG_OK, NULL, NULL);
	ig_decision_clear(&d);

	snprintf(json, sizeof json,
	         "{\"type\":\"refund\",\"coins\":[\"zz\",\"%s\",\"%s\",\"%s\",\"%s\",\"%s\",\"%s\",7],\"nonce\":\"f-6\"}",
	         s0, t0, c1, c2, c0, c0);
	ask(&d, "dev1", json);
	carry(&d, IG_OK, NULL, NULL);   /* c0, the only one accepted */
	const cJSON *o = reply(&d, "dev1", "refunded");
	cr_assert_str_eq(str(o, "nonce"), "f-6");
	cr_assert_eq(num(o, "refunded"), 1);
	uint8_t zero[32] = {0}, h[32];
	refused_entry(o, 0, zero, "malformed");
	ig_coin_hash(h, stranger);
	refused_entry(o, 1, h, "unknown_coin");
	ig_coin_hash(h, theirs[0]);
	refused_entry(o, 2, h, "unknown_coin");
	ig_coin_hash(h, coins[1]);
	refused_entry(o, 3, h, "already_spent");
	ig_coin_hash(h, coins[2]);
	refused_entry(o, 4, h, "already_refunded");
	ig_coin_hash(h, coins[0]);
	refused_entry(o, 5, h, "already_spent");   /* the same coin twice: the second is in flight */
	refused_entry(o, 6, zero, "malformed");
	cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "refused")), 7);
	cr_assert_eq(num(o, "balance"), 10 - 4 + 2);
	ig_decision_clear(&d);
	cr_assert_eq(stat_of("refunded", NULL), 2);
	cr_assert_eq(ig_coins_outstanding(ig_state_coins(st), "dev1"), 1, "coin 3 was never asked for");
}

static uint8_t several[4][IG_COIN_BYTES];

static void check_refund_record(size_t i, const uint8_t *body, size_t len)
{
	ig_refund_rec rec;
	ig_error err = {0};
	uint8_t h[32];
	cr_assert_eq(ig_bank_refund_decode(body, len, &rec, &err), IG_OK);
	ig_coin_hash(h, several[i]);
	cr_assert_eq(memcmp(rec.coin_hash, h, 32), 0, "record %zu is for coin %zu", i, i);
	cr_assert_str_eq(rec.collector, "dev1");
	cr_assert_str_eq(rec.reason, "expired");
}

Test(svc_bank, refund_of_several_coins_appends_one_record_each_at_once_in_order)
{
	mint("dev1", dev1_pk, 4, several);
	char json[1024], c[4][65];
	for (int i = 0; i < 4; i++)
		coin_hex(c[i], several[i]);
	snprintf(json, sizeof json, "{\"type\":\"refund\",\"coins\":[\"%s\",\"%s\",\"%s\",\"%s\"],\"nonce\":\"f-1\"}",
	         c[0], c[1], c[2], c[3]);
	ig_decision d;
	ask_at(&d, "dev1", json, NOW + TTL);   /* expired by now: reason "expired" */
	/* Every accepted coin is in flight from the start: a redeem is refused. */
	char rj[1024];
	redeem_json(rj, sizeof rj, several[3], "dev1", T1, T1, "r-1", NULL);
	ig_decision r;
	ask(&r, "an1", rj);
	assert_refusal(&r, "redeem", "already_spent", "r-1");
	ig_decision_clear(&r);

	static const int statuses[4] = {IG_OK, IG_ERR_IO, IG_OK, IG_ERR_UNKNOWN};
	carry_chain(&d, statuses, 4, check_refund_record);
	const cJSON *o = reply(&d, "dev1", "refunded");
	cr_assert_str_eq(str(o, "nonce"), "f-1");
	cr_assert_eq(num(o, "refunded"), 2);
	uint8_t h[32];
	ig_coin_hash(h, several[1]);
	refused_entry(o, 0, h, "storage_failed");
	ig_coin_hash(h, several[3]);
	refused_entry(o, 1, h, "outcome_unknown");
	cr_assert_eq(num(o, "balance"), 10 - 4 + 2);
	ig_decision_clear(&d);
	cr_assert_eq(stat_of("refunded", NULL), 2);
	ig_coin_info info;
	ig_coin_hash(h, several[1]);
	cr_assert_eq(ig_coins_find(ig_state_coins(st), h, &info), IG_OK);
	cr_assert(info.state == IG_COIN_MINTED && !info.in_flight, "a refund not written leaves the coin spendable");
}

Test(svc_bank, a_dropped_refund_releases_every_coin)
{
	uint8_t coins[3][IG_COIN_BYTES];
	mint("dev1", dev1_pk, 3, coins);
	char json[1024], c[3][65];
	for (int i = 0; i < 3; i++)
		coin_hex(c[i], coins[i]);
	snprintf(json, sizeof json, "{\"type\":\"refund\",\"coins\":[\"%s\",\"%s\",\"%s\"],\"nonce\":\"f-1\"}", c[0], c[1],
	         c[2]);
	ig_decision d;
	ask(&d, "dev1", json);
	cr_assert_not_null(d.next);
	ig_decision_clear(&d);   /* each done runs with IG_ERR_CLOSED; the answer is discarded */
	for (int i = 0; i < 3; i++) {
		uint8_t h[32];
		ig_coin_info info;
		ig_coin_hash(h, coins[i]);
		cr_assert_eq(ig_coins_find(ig_state_coins(st), h, &info), IG_OK);
		cr_assert(info.state == IG_COIN_MINTED && !info.in_flight, "coin %d", i);
	}
	cr_assert_eq(ig_coins_balance(ig_state_coins(st), "dev1"), 7);
}

/* ---- balance, tick, stats, the whole flow ---- */

Test(svc_bank, balance_is_answered_at_once_with_or_without_a_nonce)
{
	uint8_t coins[2][IG_COIN_BYTES];
	mint("dev1", dev1_pk, 2, coins);
	ig_decision d;
	ask(&d, "dev1", "{\"type\":\"balance\",\"nonce\":\"b-1\"}");
	const cJSON *o = reply(&d, "dev1", "balance");
	cr_assert_str_eq(str(o, "nonce"), "b-1");
	cr_assert_eq(num(o, "balance"), 8);
	cr_assert_eq(num(o, "outstanding"), 2);
	ig_decision_clear(&d);
	ask(&d, "an1", "{\"type\":\"balance\",\"nonce\":\"bad nonce\"}");
	o = reply(&d, "an1", "balance");
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(o, "nonce"));
	cr_assert_eq(num(o, "balance"), 0);
	char *text = cJSON_PrintUnformatted(o);
	cr_assert_str_eq(text, "{\"type\":\"balance\",\"balance\":0,\"outstanding\":0}");
	free(text);
	ig_decision_clear(&d);
}

Test(svc_bank, tick_prunes_spent_expired_coins_at_most_every_10_ms)
{
	uint8_t coins[1][IG_COIN_BYTES];
	mint("dev1", dev1_pk, 1, coins);
	char json[1024];
	redeem_json(json, sizeof json, coins[0], "dev1", T1, T1, "r-1", NULL);
	ig_decision d;
	ask(&d, "an1", json);
	carry(&d, IG_OK, NULL, NULL);
	ig_decision_clear(&d);
	uint64_t later_ms = (NOW + TTL + 1) * 1000;
	cr_assert_eq(ig_svc_bank_tick(bank, st, later_ms - 5), 0, "not expired yet");
	cr_assert_eq(ig_svc_bank_tick(bank, st, later_ms), 0, "within 10 ms of the last slice");
	cr_assert_eq(ig_svc_bank_tick(bank, st, later_ms + 10), 1);
	uint8_t h[32];
	ig_coin_info info;
	ig_coin_hash(h, coins[0]);
	cr_assert_eq(ig_coins_find(ig_state_coins(st), h, &info), IG_ERR_NOTFOUND);
}

Test(svc_bank, stats_object_names_every_refusal_code)
{
	cJSON *s = cJSON_CreateObject();
	ig_svc_bank_stats(bank, st, s);
	char *text = cJSON_PrintUnformatted(s);
	cr_assert_str_eq(text, "{\"bank\":{\"minted\":0,\"redeemed\":0,\"refunded\":0,\"outstanding\":0,\"refused\":{"
	                       "\"no_credit\":0,\"unknown_coin\":0,\"already_spent\":0,\"expired\":0,"
	                       "\"wrong_collector\":0,\"wrong_topic\":0,\"malformed\":0,\"not_allowed\":0,"
	                       "\"over_limit\":0,\"storage_failed\":0,\"outcome_unknown\":0}}}");
	free(text);
	cJSON_Delete(s);
	for (int i = 0; i < IG_SVC_BANK_REFUSAL_COUNT; i++)
		cr_assert_not_null(ig_svc_bank_refusal_name((ig_svc_bank_refusal)i));
	cr_assert_null(ig_svc_bank_refusal_name(IG_SVC_BANK_REFUSAL_COUNT));
}

Test(svc_bank, mint_redeem_refund_flow_through_done_callbacks)
{
	uint8_t coins[2][IG_COIN_BYTES];
	mint("dev1", dev1_pk, 2, coins);
	char json[1024];
	redeem_json(json, sizeof json, coins[0], "dev1", T1, T1, "r-1", NULL);
	ig_decision d;
	ask(&d, "an1", json);
	carry(&d, IG_OK, NULL, NULL);
	reply(&d, "an1", "redeemed");
	ig_decision_clear(&d);
	char c[2][65];
	coin_hex(c[0], coins[0]), coin_hex(c[1], coins[1]);
	snprintf(json, sizeof json, "{\"type\":\"refund\",\"coins\":[\"%s\",\"%s\"],\"nonce\":\"f-1\"}", c[0], c[1]);
	ask(&d, "dev1", json);
	carry(&d, IG_OK, NULL, NULL);
	const cJSON *o = reply(&d, "dev1", "refunded");
	cr_assert_eq(num(o, "refunded"), 1);
	cr_assert_eq(num(o, "balance"), 9);
	uint8_t h[32];
	ig_coin_hash(h, coins[0]);
	refused_entry(o, 0, h, "already_spent");
	ig_decision_clear(&d);
	cr_assert_eq(stat_of("minted", NULL), 2);
	cr_assert_eq(stat_of("redeemed", NULL), 1);
	cr_assert_eq(stat_of("refunded", NULL), 1);
	cr_assert_eq(stat_of("outstanding", NULL), 0);
	ask(&d, "dev1", "{\"type\":\"balance\"}");
	o = reply(&d, "dev1", "balance");
	cr_assert_eq(num(o, "balance"), 9);
	cr_assert_eq(num(o, "outstanding"), 0);
	ig_decision_clear(&d);
}

/* ---- decoders ---- */

Test(svc_bank, decoders_validate_every_field)
{
	ig_svc_bank_mint_req m;
	cJSON *j = cJSON_Parse("{\"count\":64,\"nonce\":\"~\"}");
	cr_assert_eq(ig_svc_bank_decode_mint(&m, j), IG_OK);
	cr_assert_eq(m.count, 64);
	cr_assert_str_eq(m.nonce, "~");
	cJSON_Delete(j);
	cr_assert_eq(ig_svc_bank_decode_mint(&m, NULL), IG_ERR_INVAL);
	j = cJSON_Parse("[1,2]");
	cr_assert_eq(ig_svc_bank_decode_mint(&m, j), IG_ERR_INVAL);
	ig_svc_bank_refund_req f;
	cr_assert_eq(ig_svc_bank_decode_refund(&f, j), IG_ERR_INVAL);
	cJSON_Delete(j);
	char nonce65[80];
	memset(nonce65, 'a', 65);
	nonce65[65] = '\0';
	char text[160];
	snprintf(text, sizeof text, "{\"nonce\":\"%s\"}", nonce65);
	j = cJSON_Parse(text);
	ig_svc_bank_balance_req b;
	cr_assert_eq(ig_svc_bank_decode_balance(&b, j), IG_OK);
	cr_assert_str_eq(b.nonce, "", "a 65-character nonce is not a nonce");
	cJSON_Delete(j);

	/* A header longer than 512 bytes is malformed, not truncated. */
	char big[1024] = "{\"topic\":\"t\",\"nonce\":\"n\",\"header\":\"";
	size_t at = strlen(big);
	memset(big + at, 'A', 700);
	strcpy(big + at + 700, "\"}");
	j = cJSON_Parse(big);
	ig_svc_bank_redeem_req r;
	cr_assert_eq(ig_svc_bank_decode_redeem(&r, j), IG_ERR_INVAL);
	cr_assert_eq(r.header_len, 0);
	cJSON_Delete(j);

	j = cJSON_Parse("{\"coins\":[\"" "00000000000000000000000000000000000000000000000000000000000000" "\",\"00\"],"
	                "\"nonce\":\"n\"}");
	cr_assert_eq(ig_svc_bank_decode_refund(&f, j), IG_OK);
	cr_assert_eq(f.n, 2);
	cr_assert(f.coins[0].malformed, "62 hex digits are not a coin");
	cr_assert(f.coins[1].malformed);
	cJSON_Delete(j);
}

/* ---- a shared ledger: another broker's record came first ---- */

/* Another broker's redeem of coin by analyst with the header of `json`
 * (redeem_json's header hash hh), as following applies it to this state. */
static void follow_redeem(const uint8_t coin[IG_COIN_BYTES], const char *analyst, const uint8_t hh[32])
{
	ig_redeem_rec rr = {0};
	ig_coin_hash(rr.coin_hash, coin);
	snprintf(rr.analyst, sizeof rr.analyst, "%s", analyst);
	snprintf(rr.collector, sizeof rr.collector, "dev1");
	rr.has_header_hash = true;
	memcpy(rr.header_hash, hh, 32);
	uint8_t body[256];
	int n = ig_bank_redeem_encode(body, sizeof body, &rr);
	cr_assert_gt(n, 0);
	apply(IG_REC_COIN_REDEEM, body, (size_t)n);
}

static void expect_free_of_marks(const uint8_t coin[IG_COIN_BYTES], ig_coin_state state)
{
	uint8_t h[32];
	ig_coin_info info;
	ig_coin_hash(h, coin);
	cr_assert_eq(ig_coins_find(ig_state_coins(st), h, &info), IG_OK);
	cr_expect_eq(info.state, state);
	cr_expect_not(info.in_flight, "the lost redeem's in-flight mark leaked");
}

Test(svc_bank, a_redeem_that_lost_the_race_on_another_broker_is_already_spent)
{
	uint8_t coins[1][IG_COIN_BYTES];
	mint("dev1", dev1_pk, 1, coins);
	char mine[1024], theirs[1024];
	uint8_t hh_mine[32], hh_theirs[32];
	redeem_json(mine, sizeof mine, coins[0], "dev1", T1, T1, "r-1", hh_mine);
	redeem_json(theirs, sizeof theirs, coins[0], "dev1", T1, T1, "r-9", hh_theirs);
	ig_decision d;
	ask(&d, "an1", mine);
	cr_assert_eq(d.kind, IG_DECISION_APPEND);
	/* an2 redeemed it through another broker, whose record came first. */
	follow_redeem(coins[0], "an2", hh_theirs);
	carry(&d, IG_ERR_CONFLICT, NULL, NULL);
	assert_refusal(&d, "redeem", "already_spent", "r-1");
	ig_decision_clear(&d);
	expect_free_of_marks(coins[0], IG_COIN_REDEEMED);
	/* The same words a second redeem on one broker gets, and the winner's
	 * repeat here gets its keys. */
	ask(&d, "an1", mine);
	assert_refusal(&d, "redeem", "already_spent", "r-1");
	ig_decision_clear(&d);
	ask(&d, "an2", theirs);
	reply(&d, "an2", "redeemed");
	ig_decision_clear(&d);
	cr_assert_eq(refused("already_spent"), 2);
	cr_assert_eq(refused("storage_failed"), 0);
}

Test(svc_bank, a_redeem_repeated_through_another_broker_that_won_gets_the_keys)
{
	uint8_t coins[1][IG_COIN_BYTES];
	mint("dev1", dev1_pk, 1, coins);
	char json[1024];
	uint8_t hh[32];
	redeem_json(json, sizeof json, coins[0], "dev1", T1, T1, "r-1", hh);
	ig_decision d;
	ask(&d, "an1", json);
	follow_redeem(coins[0], "an1", hh);   /* an1's own retry, through another broker */
	carry(&d, IG_ERR_CONFLICT, NULL, NULL);
	const cJSON *o = reply(&d, "an1", "redeemed");
	uint8_t plain[120], pk_[32], rk[32];
	cr_assert_eq(open_box(o, an1_pk, plain, sizeof plain), 120);
	ig_coin_keys(coins[0], pk_, rk);
	cr_assert_eq(memcmp(plain, pk_, 32), 0);
	ig_decision_clear(&d);
	expect_free_of_marks(coins[0], IG_COIN_REDEEMED);
}

Test(svc_bank, a_redeem_that_lost_to_a_refund_or_to_nothing_yet_followed_frees_the_coin)
{
	uint8_t coins[2][IG_COIN_BYTES];
	mint("dev1", dev1_pk, 2, coins);
	char json[1024];
	ig_decision d;
	redeem_json(json, sizeof json, coins[0], "dev1", T1, T1, "r-1", NULL);
	ask(&d, "an1", json);
	ig_refund_rec rf = {0};
	ig_coin_hash(rf.coin_hash, coins[0]);
	snprintf(rf.collector, sizeof rf.collector, "dev1");
	snprintf(rf.reason, sizeof rf.reason, "cancelled");
	uint8_t body[256];
	int n = ig_bank_refund_encode(body, sizeof body, &rf);
	cr_assert_gt(n, 0);
	apply(IG_REC_COIN_REFUND, body, (size_t)n);
	carry(&d, IG_ERR_CONFLICT, NULL, NULL);
	assert_refusal(&d, "redeem", "unknown_coin", "r-1");
	ig_decision_clear(&d);
	expect_free_of_marks(coins[0], IG_COIN_REFUNDED);

	/* Refused, but the winning record is not in this state yet: final all
	 * the same, and no mark is left behind. */
	redeem_json(json, sizeof json, coins[1], "dev1", T1, T1, "r-2", NULL);
	ask(&d, "an1", json);
	carry(&d, IG_ERR_CONFLICT, NULL, NULL);
	assert_refusal(&d, "redeem", "already_spent", "r-2");
	ig_decision_clear(&d);
	expect_free_of_marks(coins[1], IG_COIN_MINTED);
}

Test(svc_bank, a_mint_that_lost_its_credit_to_another_broker_is_no_credit)
{
	ig_decision d;
	ask(&d, "dev1", "{\"type\":\"mint\",\"count\":5,\"nonce\":\"m-1\"}");
	/* dev1 minted 8 through another broker meanwhile: 2 left. */
	static ig_mint_rec m;
	memset(&m, 0, sizeof m);
	snprintf(m.owner, sizeof m.owner, "dev1");
	m.expires_at = NOW + TTL;
	m.count = 8;
	for (uint32_t i = 0; i < m.count; i++)
		tu_seq_bytes(m.hashes[i], 32, (uint8_t)(0x30 + i));
	uint8_t body[1024];
	int n = ig_bank_mint_encode(body, sizeof body, &m);
	cr_assert_gt(n, 0);
	apply(IG_REC_COIN_MINT, body, (size_t)n);
	carry(&d, IG_ERR_CONFLICT, NULL, NULL);
	assert_refusal(&d, "mint", "no_credit", "m-1");
	cr_assert(strstr(d.message, "another broker"), "%s", d.message);
	ig_decision_clear(&d);
	cr_assert_eq(ig_coins_reserved(ig_state_coins(st), "dev1"), 0, "the reservation is released");
	cr_assert_eq(ig_coins_balance(ig_state_coins(st), "dev1"), 2);

	/* Revoked through another broker meanwhile. */
	ask(&d, "dev2", "{\"type\":\"mint\",\"count\":1,\"nonce\":\"m-2\"}");
	uint8_t rb[512];
	apply(IG_REC_REVOKE, rb, tu_revoke_body(rb, sizeof rb, "dev2", "admin"));
	carry(&d, IG_ERR_CONFLICT, NULL, NULL);
	assert_refusal(&d, "mint", "not_allowed", "m-2");
	ig_decision_clear(&d);
	cr_assert_eq(refused("storage_failed"), 0);
}

static uint8_t raced[2][IG_COIN_BYTES];

static void check_raced_refund(size_t i, const uint8_t *body, size_t len)
{
	ig_refund_rec rec;
	ig_error err = {0};
	uint8_t h[32];
	cr_assert_eq(ig_bank_refund_decode(body, len, &rec, &err), IG_OK);
	ig_coin_hash(h, raced[i]);
	cr_assert_eq(memcmp(rec.coin_hash, h, 32), 0);
}

Test(svc_bank, a_refund_that_lost_a_coin_to_another_broker_refuses_that_coin_as_spent)
{
	mint("dev1", dev1_pk, 2, raced);
	char json[512], c[2][65];
	coin_hex(c[0], raced[0]), coin_hex(c[1], raced[1]);
	snprintf(json, sizeof json, "{\"type\":\"refund\",\"coins\":[\"%s\",\"%s\"],\"nonce\":\"f-1\"}", c[0], c[1]);
	ig_decision d;
	ask(&d, "dev1", json);
	uint8_t hh[32];
	tu_seq_bytes(hh, sizeof hh, 0x5a);
	follow_redeem(raced[0], "an2", hh);
	static const int statuses[2] = {IG_ERR_CONFLICT, IG_OK};
	carry_chain(&d, statuses, 2, check_raced_refund);
	const cJSON *o = reply(&d, "dev1", "refunded");
	cr_assert_eq(num(o, "refunded"), 1);
	uint8_t h[32];
	ig_coin_hash(h, raced[0]);
	refused_entry(o, 0, h, "already_spent");
	ig_decision_clear(&d);
	expect_free_of_marks(raced[0], IG_COIN_REDEEMED);
}

Test(svc_bank, an_unreachable_database_is_storage_failed_and_says_retry)
{
	uint8_t coins[1][IG_COIN_BYTES];
	mint("dev1", dev1_pk, 1, coins);
	ig_decision d;
	ask(&d, "dev1", "{\"type\":\"mint\",\"count\":1,\"nonce\":\"m-1\"}");
	carry(&d, IG_ERR_UNAVAILABLE, NULL, NULL);
	assert_refusal(&d, "mint", "storage_failed", "m-1");
	cr_assert(strstr(d.message, "database") && strstr(d.message, "unreachable") && strstr(d.message, "retry"), "%s",
	          d.message);
	ig_decision_clear(&d);
	cr_assert_eq(ig_coins_reserved(ig_state_coins(st), "dev1"), 0);

	char json[1024];
	redeem_json(json, sizeof json, coins[0], "dev1", T1, T1, "r-1", NULL);
	ask(&d, "an1", json);
	carry(&d, IG_ERR_UNAVAILABLE, NULL, NULL);
	assert_refusal(&d, "redeem", "storage_failed", "r-1");
	cr_assert(strstr(d.message, "unreachable"), "%s", d.message);
	ig_decision_clear(&d);
	expect_free_of_marks(coins[0], IG_COIN_MINTED);
	ask(&d, "an1", json);
	cr_assert_eq(d.kind, IG_DECISION_APPEND, "the retry redeems");
	ig_decision_clear(&d);
}
