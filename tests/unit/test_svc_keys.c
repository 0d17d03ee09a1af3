/*
 * test_svc_keys.c: the session-key service without a broker. Every refusal
 * of a request and of its append's fate, the two boxed copies (opened with
 * the devices' keys), the rate window, revocation notices (more than fit
 * one decision) and pruning.
 */
#include <criterion/criterion.h>

#include <cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "ig_svc_keys.h"
#include "svc_fixture.h"
#include "testutil.h"

#define NOW_MS 1767225600000ull
#define TTL_S 600u

extern const char ig_policy_default_json[];

static uint8_t ch_pk[32], ch_sk[64];
static uint8_t pk1[32], sk1[64], pk2[32], sk2[64], pk3[32], sk3[64], pka[32], ska[64], pk4[32], sk4[64];
static ig_state *st;
static ig_pool pool;
static ig_policy *policy;
static ig_svc_keys *svc;
static const char *online_ids[] = {"dev1", "dev2", "dev3", "an1", "gone", NULL};

static bool online(void *ctx, const char *id)
{
	cr_assert_eq(ctx, &online_ids);
	for (const char **p = online_ids; *p; p++)
		if (strcmp(*p, id) == 0)
			return true;
	return false;
}

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	tu_seed_keypair(ch_pk, ch_sk, 0x00);
	tu_seed_keypair(pk1, sk1, 0x20);
	tu_seed_keypair(pk2, sk2, 0x40);
	tu_seed_keypair(pk3, sk3, 0x50);
	tu_seed_keypair(pka, ska, 0x60);
	tu_seed_keypair(pk4, sk4, 0x80);
	st = ig_state_new();
	cr_assert_not_null(st);
	fx_enroll(st, "dev1", IG_ROLE_DEVICE, pk1);
	fx_enroll(st, "dev2", IG_ROLE_DEVICE, pk2);
	fx_enroll(st, "dev3", IG_ROLE_DEVICE, pk3);
	fx_enroll(st, "an1", IG_ROLE_ANALYST, pka);
	fx_enroll(st, "dev4", IG_ROLE_DEVICE, pk4);   /* enrolled, never online */
	fx_enroll(st, "gone", IG_ROLE_DEVICE, pk4);
	fx_revoke(st, "gone");
	uint8_t pool_key[32];
	tu_seq_bytes(pool_key, sizeof pool_key, 0x33);
	ig_pool_init(&pool, pool_key);
	policy = fx_policy(ig_policy_default_json);   /* device <-> device only */
	ig_svc_keys_config cfg = {.session_key_ttl_s = TTL_S, .requests_per_minute = 5};
	svc = ig_svc_keys_new(st, &pool, ch_sk, &cfg, online, &online_ids);
	cr_assert_not_null(svc);
}

static void teardown(void)
{
	ig_svc_keys_free(svc);
	ig_policy_free(policy);
	ig_state_free(st);
}

TestSuite(svc_keys, .init = setup, .fini = teardown);

static void ask(ig_decision *d, const char *from, const char *json, uint64_t now_ms)
{
	cJSON *req = cJSON_Parse(json);
	memset(d, 0, sizeof *d);
	ig_svc_keys_request(d, svc, policy, from, req, now_ms);
	cJSON_Delete(req);
}

static void ask_refused(const char *from, const char *json, const char *error, const char *nonce, const char *part)
{
	ig_decision d;
	ask(&d, from, json, NOW_MS);
	fx_expect_refusal(&d, "session_key", error, nonce, part);
	ig_decision_clear(&d);
}

static ig_svc_keys_counts counts(void)
{
	ig_svc_keys_counts c;
	ig_svc_keys_get_counts(svc, &c);
	return c;
}

/* ---- the decoder ---- */

Test(svc_keys, decoder_takes_a_peer_and_a_printable_nonce)
{
	ig_svc_keys_req r;
	cJSON *ok = cJSON_Parse("{\"type\":\"session_key\",\"peer\":\"dev2\",\"nonce\":\"n-1\"}");
	cr_expect_eq(ig_svc_keys_decode(&r, ok), IG_OK);
	cr_expect_str_eq(r.peer, "dev2");
	cr_expect_str_eq(r.nonce, "n-1");
	cJSON_Delete(ok);

	const char *bad[] = {
		"{\"peer\":\"dev2\"}", "{\"nonce\":\"n\"}", "{\"peer\":\"dev2\",\"nonce\":\"\"}",
		"{\"peer\":\"dev2\",\"nonce\":\"a b\"}", "{\"peer\":\"dev2\",\"nonce\":7}", "{\"peer\":2,\"nonce\":\"n\"}",
		"{\"peer\":\"bad/id\",\"nonce\":\"n\"}", "{\"peer\":\"\",\"nonce\":\"n\"}", "[1,2]", "\"x\"", "null",
		"{\"peer\":\"dev2\",\"nonce\":\"0123456789012345678901234567890123456789012345678901234567890123x\"}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cJSON *j = cJSON_Parse(bad[i]);
		cr_expect_eq(ig_svc_keys_decode(&r, j), IG_ERR_INVAL, "%s", bad[i]);
		cJSON_Delete(j);
	}
	cr_expect_eq(ig_svc_keys_decode(&r, NULL), IG_ERR_INVAL);
	/* a good nonce is kept for the refusal even when the peer is bad */
	cJSON *j = cJSON_Parse("{\"peer\":\"bad/id\",\"nonce\":\"keep-me\"}");
	cr_expect_eq(ig_svc_keys_decode(&r, j), IG_ERR_INVAL);
	cr_expect_str_eq(r.nonce, "keep-me");
	cJSON_Delete(j);
}

/* ---- refusals of the request, in the chain's order ---- */

Test(svc_keys, requester_not_active_is_revoked)
{
	ask_refused("gone", "{\"peer\":\"dev2\",\"nonce\":\"n1\"}", "revoked", "n1", "this identity is not active");
	ask_refused("nobody", "{\"peer\":\"dev2\",\"nonce\":\"n2\"}", "revoked", "n2", "not active");
	cr_expect_eq(counts().refused, 2);
}

Test(svc_keys, malformed_requests)
{
	ask_refused("dev1", "{\"peer\":\"dev2\"}", "malformed", "", "\"peer\" (an id) and \"nonce\"");
	ask_refused("dev1", "{\"peer\":\"no such/id\",\"nonce\":\"n3\"}", "malformed", "n3", NULL);
	ask_refused("dev1", "{\"peer\":\"dev2\",\"nonce\":\"has space\"}", "malformed", "", NULL);
	ask_refused("dev1", "{\"peer\":\"dev1\",\"nonce\":\"self\"}", "malformed", "self", "two different devices");
	cr_expect_eq(counts().refused, 4);
}

Test(svc_keys, rate_limited_within_a_minute_then_allowed_again)
{
	ig_decision d;
	for (int i = 0; i < 5; i++) {
		ask(&d, "dev1", "{\"peer\":\"dev2\",\"nonce\":\"r\"}", NOW_MS + (uint64_t)i);
		cr_expect_eq(d.kind, IG_DECISION_APPEND, "request %d", i);
		ig_decision_clear(&d);   /* completes the append as not written */
	}
	ask(&d, "dev1", "{\"peer\":\"dev2\",\"nonce\":\"r6\"}", NOW_MS + 10);
	fx_expect_refusal(&d, "session_key", "rate_limited", "r6", "slow down");
	ig_decision_clear(&d);
	/* the limit is per device */
	ask(&d, "dev2", "{\"peer\":\"dev1\",\"nonce\":\"other\"}", NOW_MS + 11);
	cr_expect_eq(d.kind, IG_DECISION_APPEND);
	ig_decision_clear(&d);
	/* a new minute opens a new window */
	ask(&d, "dev1", "{\"peer\":\"dev2\",\"nonce\":\"later\"}", NOW_MS + 60000);
	cr_expect_eq(d.kind, IG_DECISION_APPEND);
	ig_decision_clear(&d);
}

Test(svc_keys, peer_unknown_revoked_not_allowed_offline)
{
	ask_refused("dev1", "{\"peer\":\"dev9\",\"nonce\":\"a\"}", "peer_unknown", "a", "not enrolled");
	ask_refused("dev1", "{\"peer\":\"gone\",\"nonce\":\"b\"}", "revoked", "b", "the peer is revoked");
	ask_refused("dev1", "{\"peer\":\"an1\",\"nonce\":\"c\"}", "not_allowed", "c", "policy");
	ask_refused("an1", "{\"peer\":\"dev1\",\"nonce\":\"c2\"}", "not_allowed", "c2", "policy");
	ask_refused("dev1", "{\"peer\":\"dev4\",\"nonce\":\"d\"}", "peer_offline", "d", "not connected");
	cr_expect_eq(counts().refused, 5);
	cr_expect_eq(counts().issued, 0);
}

/* ---- an issued key ---- */

static void open_copy(const cJSON *o, const uint8_t dev_sk[64], ig_session_key *out)
{
	cr_assert_str_eq(cJSON_GetObjectItem(o, "type")->valuestring, "session_key");
	uint8_t nonce[IG_KEYBOX_NONCE_BYTES], box[512];
	size_t box_len = 0;
	cr_assert_eq(ig_hex_decode(nonce, sizeof nonce, cJSON_GetObjectItem(o, "box_nonce")->valuestring,
	                           2 * IG_KEYBOX_NONCE_BYTES), IG_OK);
	const char *b64 = cJSON_GetObjectItem(o, "box")->valuestring;
	cr_assert_eq(sodium_base642bin(box, sizeof box, b64, strlen(b64), NULL, &box_len, NULL,
	                               sodium_base64_VARIANT_ORIGINAL), 0);
	ig_box_key bk;
	cr_assert_eq(ig_keybox_key_for_ch(&bk, dev_sk, ch_pk), IG_OK);
	cr_assert_eq(ig_keybox_open(out, box, box_len, nonce, &bk), IG_OK, "the box opens with the device's key");
}

/* Asks dev1 -> peer, completes the append as durable, returns the reply. */
static void issue(const char *peer, const char *nonce, uint64_t now_ms, ig_decision *out)
{
	char json[128];
	snprintf(json, sizeof json, "{\"type\":\"session_key\",\"peer\":\"%s\",\"nonce\":\"%s\"}", peer, nonce);
	ig_decision d;
	ask(&d, "dev1", json, now_ms);
	cr_assert_eq(d.kind, IG_DECISION_APPEND);
	fx_complete(&d, IG_OK, NULL, out);
}

Test(svc_keys, durable_record_sends_one_box_to_each_device)
{
	ig_decision d;
	ask(&d, "dev1", "{\"type\":\"session_key\",\"peer\":\"dev2\",\"nonce\":\"k-1\"}", NOW_MS);
	cr_assert_eq(d.kind, IG_DECISION_APPEND);
	cr_expect_eq(d.rec_type, IG_REC_KEY_ISSUED);
	ig_key_issued rec;
	ig_error err = {0};
	cr_assert_eq(ig_record_key_issued_decode(d.body, d.body_len, &rec, &err), IG_OK, "%s", err.msg);
	cr_expect_str_eq(rec.a, "dev1");
	cr_expect_str_eq(rec.b, "dev2");
	cr_expect_eq(rec.expires_at, NOW_MS / 1000 + TTL_S);
	cr_expect_eq(counts().issued, 0, "nothing is issued before the record is durable");

	ig_decision out;
	fx_complete(&d, IG_OK, NULL, &out);
	cr_assert_eq(out.kind, IG_DECISION_REPLY);
	cr_assert_eq(out.n_replies, 2);
	cr_expect_str_eq(out.replies[0].to, "dev1");
	cr_expect_str_eq(out.replies[1].to, "dev2");
	ig_session_key ka, kb;
	open_copy(out.replies[0].body, sk1, &ka);
	open_copy(out.replies[1].body, sk2, &kb);
	cr_expect_eq(sodium_memcmp(ka.key, kb.key, sizeof ka.key), 0, "both hold the same key");
	cr_expect_eq(memcmp(ka.key_id, rec.key_id, IG_KEY_ID_BYTES), 0);
	cr_expect_eq(ka.direction, 0);
	cr_expect_eq(kb.direction, 1);
	cr_expect_str_eq(ka.peer, "dev2");
	cr_expect_str_eq(kb.peer, "dev1");
	cr_expect_str_eq(ka.request_nonce, "k-1");
	cr_expect_str_eq(kb.request_nonce, "");
	cr_expect_eq(ka.expires_at, rec.expires_at);
	cr_expect_str_eq(cJSON_GetObjectItem(out.replies[0].body, "peer")->valuestring, "dev2");
	cr_expect_eq(cJSON_GetObjectItem(out.replies[1].body, "direction")->valueint, 1);
	ig_decision_clear(&out);
	cr_expect_eq(counts().issued, 1);
	cr_expect_eq(counts().live, 1);
	cr_expect_eq(counts().refused, 0);
}

Test(svc_keys, outcome_unknown_storage_failed_and_revoked_in_flight)
{
	ig_decision d, out;
	ask(&d, "dev1", "{\"peer\":\"dev2\",\"nonce\":\"u\"}", NOW_MS);
	fx_complete(&d, IG_ERR_UNKNOWN, NULL, &out);
	fx_expect_refusal(&out, "session_key", IG_DECISION_E_OUTCOME_UNKNOWN, "u", "neither device");
	ig_decision_clear(&out);

	ask(&d, "dev1", "{\"peer\":\"dev2\",\"nonce\":\"io\"}", NOW_MS);
	fx_complete(&d, IG_ERR_IO, NULL, &out);
	fx_expect_refusal(&out, "session_key", "storage_failed", "io", "given to neither device");
	ig_decision_clear(&out);

	ask(&d, "dev1", "{\"peer\":\"dev2\",\"nonce\":\"full\"}", NOW_MS);
	fx_complete(&d, IG_ERR_NOSPACE, NULL, &out);
	fx_expect_refusal(&out, "session_key", "storage_failed", "full", "disk is full");
	ig_decision_clear(&out);

	/* the peer is revoked while the record is written: nobody gets the key */
	ask(&d, "dev1", "{\"peer\":\"dev3\",\"nonce\":\"rv\"}", NOW_MS);
	fx_revoke(st, "dev3");
	fx_complete(&d, IG_OK, NULL, &out);
	fx_expect_refusal(&out, "session_key", "revoked", "rv", "the peer was revoked");
	ig_decision_clear(&out);

	/* the requester is revoked meanwhile: nothing to tell anyone */
	ask(&d, "dev1", "{\"peer\":\"dev2\",\"nonce\":\"self\"}", NOW_MS);
	fx_revoke(st, "dev1");
	fx_complete(&d, IG_OK, NULL, &out);
	cr_expect_eq(out.kind, IG_DECISION_NONE);
	cr_expect_eq(counts().refused, 5);
	cr_expect_eq(counts().issued, 0);
	cr_expect_eq(counts().live, 0);
}

Test(svc_keys, revocation_notifies_every_surviving_peer_across_decisions)
{
	/* six live keys for dev1 (more than one decision carries), one expired */
	for (int i = 0; i < 5; i++) {
		ig_decision out;
		issue(i % 2 ? "dev2" : "dev3", "n", NOW_MS + (uint64_t)i, &out);
		ig_decision_clear(&out);
	}
	ig_decision d;
	memset(&d, 0, sizeof d);
	ask(&d, "dev2", "{\"peer\":\"dev3\",\"nonce\":\"x\"}", NOW_MS);
	ig_decision out;
	fx_complete(&d, IG_OK, NULL, &out);
	ig_decision_clear(&out);
	ask(&d, "dev2", "{\"peer\":\"dev1\",\"nonce\":\"y\"}", NOW_MS - (uint64_t)(TTL_S + 5) * 1000);
	fx_complete(&d, IG_OK, NULL, &out);
	ig_decision_clear(&out);
	cr_expect_eq(counts().live, 7);

	int notices = 0, calls = 0, to_dev2 = 0;
	for (;;) {
		memset(&d, 0, sizeof d);
		bool more = ig_svc_keys_on_revoke(&d, svc, "dev1", NOW_MS + 1000);
		calls++;
		cr_assert_leq(d.n_replies, IG_DECISION_REPLIES_MAX);
		for (size_t i = 0; i < d.n_replies; i++) {
			cJSON *o = d.replies[i].body;
			cr_expect_str_eq(cJSON_GetObjectItem(o, "type")->valuestring, "key_revoked");
			cr_expect_str_eq(cJSON_GetObjectItem(o, "peer")->valuestring, "dev1");
			cr_expect_str_eq(cJSON_GetObjectItem(o, "reason")->valuestring, "peer_revoked");
			cr_expect_eq(strlen(cJSON_GetObjectItem(o, "key_id")->valuestring), 2 * IG_KEY_ID_BYTES);
			cr_expect_neq(strcmp(d.replies[i].to, "dev1"), 0, "the revoked device is not told");
			to_dev2 += strcmp(d.replies[i].to, "dev2") == 0;
			notices++;
		}
		ig_decision_clear(&d);
		if (!more)
			break;
		cr_assert_lt(calls, 10);
	}
	cr_expect_eq(notices, 5, "one notice per live key; the expired one is forgotten silently");
	cr_expect_eq(to_dev2, 2);
	cr_expect_geq(calls, 2, "five notices take two decisions");
	cr_expect_eq(counts().revocation_notices, 5);
	cr_expect_eq(counts().live, 1, "only dev2-dev3 is left");
	memset(&d, 0, sizeof d);
	cr_expect_not(ig_svc_keys_on_revoke(&d, svc, "dev1", NOW_MS + 2000), "a second revocation finds nothing");
	cr_expect_eq(d.kind, IG_DECISION_NONE);
}

Test(svc_keys, prune_forgets_expired_keys_every_ten_seconds)
{
	ig_decision out;
	issue("dev2", "p", NOW_MS, &out);
	ig_decision_clear(&out);
	cr_expect_eq(counts().live, 1);
	ig_svc_keys_prune(svc, NOW_MS + 1000);
	cr_expect_eq(counts().live, 1, "not expired");
	uint64_t after = NOW_MS + (uint64_t)TTL_S * 1000 + 1000;
	ig_svc_keys_prune(svc, after);
	cr_expect_eq(counts().live, 0);
}

Test(svc_keys, stats_object)
{
	ig_decision out;
	issue("dev2", "s", NOW_MS, &out);
	ig_decision_clear(&out);
	ask_refused("dev1", "{\"peer\":\"dev9\",\"nonce\":\"z\"}", "peer_unknown", "z", NULL);
	cJSON *stats = cJSON_CreateObject();
	ig_svc_keys_stats(svc, stats);
	char *json = cJSON_PrintUnformatted(stats);
	char want[200];
	snprintf(want, sizeof want, "{\"keys\":{\"issued\":1,\"refused\":1,\"live\":1,\"revocation_notices\":0,\"suite\":\"%s\"}}",
	         ig_suite_name(ig_suite_preferred()));
	cr_expect_str_eq(json, want);
	free(json);
	cJSON_Delete(stats);
}

/* A shared ledger: the database unreachable (retriable), or another
 * broker's record first (final; revoked when that is what it was). */
Test(svc_keys, unreachable_database_and_conflicts_give_no_key_to_anyone)
{
	ig_decision d, out;
	ask(&d, "dev1", "{\"peer\":\"dev2\",\"nonce\":\"db\"}", NOW_MS);
	fx_complete(&d, IG_ERR_UNAVAILABLE, NULL, &out);
	fx_expect_refusal(&out, "session_key", "storage_failed", "db", "unreachable");
	cr_expect(strstr(out.message, "retry"), "%s", out.message);
	ig_decision_clear(&out);

	ask(&d, "dev1", "{\"peer\":\"dev2\",\"nonce\":\"c\"}", NOW_MS);
	fx_complete(&d, IG_ERR_CONFLICT, NULL, &out);
	fx_expect_refusal(&out, "session_key", "conflict", "c", "another broker");
	ig_decision_clear(&out);

	ask(&d, "dev1", "{\"peer\":\"dev3\",\"nonce\":\"rv\"}", NOW_MS);
	fx_revoke(st, "dev3");   /* through another broker, followed before the refusal */
	fx_complete(&d, IG_ERR_CONFLICT, NULL, &out);
	fx_expect_refusal(&out, "session_key", "revoked", "rv", "another broker");
	ig_decision_clear(&out);
	cr_expect_eq(counts().refused, 3);
	cr_expect_eq(counts().issued, 0);
	cr_expect_eq(counts().live, 0);
}
