/*
 * test_auth.c: every refusal reason must be reachable, the checks must run
 * in the documented order (docs/PROTOCOL.md, "Acceptance rules"), and the
 * time boundaries must sit exactly where the protocol says.
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "ig_auth.h"
#include "ig_policy.h"
#include "testutil.h"

#define NOW 1767225600ull

static ig_registry *reg;
static uint8_t dev_pk[32], dev_sk[64], adm_pk[32], adm_sk[64], other_pk[32], other_sk[64];
static ig_auth_params params;
static uint64_t next_index = 1;

static void enroll(const char *id, ig_role role, const uint8_t pk[32])
{
	uint8_t body[256];
	size_t n = tu_enroll_body(body, sizeof body, id, role, pk, "test");
	ig_record rec = {.index = next_index++, .type = IG_REC_ENROLL, .body = body, .body_len = (uint32_t)n};
	ig_error err = {0};
	cr_assert_eq(ig_registry_apply(reg, &rec, &err), IG_OK, "%s", err.msg);
}

static void revoke(const char *id)
{
	uint8_t body[512];
	size_t n = tu_revoke_body(body, sizeof body, id, "test");
	ig_record rec = {.index = next_index++, .type = IG_REC_REVOKE, .body = body, .body_len = (uint32_t)n};
	cr_assert_eq(ig_registry_apply(reg, &rec, NULL), IG_OK);
}

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	reg = ig_registry_new();
	cr_assert_not_null(reg);
	crypto_sign_keypair(dev_pk, dev_sk);
	crypto_sign_keypair(adm_pk, adm_sk);
	crypto_sign_keypair(other_pk, other_sk);
	enroll("dev1", IG_ROLE_DEVICE, dev_pk);
	enroll("adm1", IG_ROLE_ADMIN, adm_pk);
	enroll("gone", IG_ROLE_DEVICE, other_pk);
	revoke("gone");
	cr_assert_eq(ig_registry_reserve(reg, "wait", IG_ROLE_DEVICE, other_pk), IG_OK);
	params = (ig_auth_params){
		.cluster = "demo",
		.now_s = NOW,
		.skew_s = 30,
		.max_ttl_s = {[IG_ROLE_DEVICE] = 600, [IG_ROLE_ANALYST] = 3600, [IG_ROLE_MONITOR] = 86400,
		              [IG_ROLE_ADMIN] = 86400},
	};
}

static void teardown(void)
{
	ig_registry_free(reg);
}

TestSuite(auth, .init = setup, .fini = teardown);

static char tok[IG_TOKEN_TEXT_MAX + 1];

static const char *mint(const uint8_t *sk, const char *cluster, const char *id, uint64_t ia, uint64_t ea)
{
	int n = ig_token_mint(tok, sizeof tok, sk, cluster, id, ia, ea, NULL);
	cr_assert_gt(n, 0);
	return tok;
}

static ig_auth_result check(const char *user, const char *client, const char *t)
{
	const ig_identity *who = (const ig_identity *)1;
	ig_token_claims c;
	ig_auth_result r = ig_auth_check(reg, &params, user, client, t, t ? strlen(t) : 0, &who, &c);
	if (r == IG_AUTH_OK) {
		cr_assert_not_null(who);
		cr_assert_str_eq(who->id, client);
		cr_assert_str_eq(c.id, client);
	} else {
		cr_assert_null(who, "who must be NULL on refusal");
	}
	return r;
}

#define EXPECT(res, user, client, t) \
	cr_assert_eq(check(user, client, t), res, "want %s, got %s", ig_auth_result_name(res), \
	             ig_auth_result_name(check(user, client, t)))

Test(auth, names)
{
	const char *want[] = {"ok", "no_credentials", "malformed", "unknown_id", "not_active", "revoked",
	                      "bad_signature", "wrong_cluster", "not_yet_valid", "expired", "ttl_too_long",
	                      "id_mismatch", "rate_limited", "code_unknown", "code_used", "code_expired", "id_taken",
	                      "replayed", "sealed"};
	cr_assert_eq(sizeof want / sizeof want[0], IG_AUTH_RESULT_COUNT);
	for (int i = 0; i < IG_AUTH_RESULT_COUNT; i++)
		cr_assert_str_eq(ig_auth_result_name((ig_auth_result)i), want[i]);
	cr_assert_str_eq(ig_auth_result_name(IG_AUTH_RESULT_COUNT), "unknown");
	cr_assert_str_eq(ig_auth_result_name((ig_auth_result)-1), "unknown");
}

Test(auth, accepts_good_token)
{
	EXPECT(IG_AUTH_OK, "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW, NOW + 300));
	/* MQTT v5 extended auth: no username */
	EXPECT(IG_AUTH_OK, NULL, "dev1", mint(dev_sk, "demo", "dev1", NOW, NOW + 300));
	EXPECT(IG_AUTH_OK, "adm1", "adm1", mint(adm_sk, "demo", "adm1", NOW - 100, NOW + 86300));
	/* who/claims may be NULL */
	mint(dev_sk, "demo", "dev1", NOW, NOW + 300);
	cr_assert_eq(ig_auth_check(reg, &params, "dev1", "dev1", tok, strlen(tok), NULL, NULL), IG_AUTH_OK);
}

Test(auth, no_credentials)
{
	EXPECT(IG_AUTH_NO_CREDENTIALS, NULL, "dev1", NULL);
	EXPECT(IG_AUTH_NO_CREDENTIALS, NULL, "dev1", "");
	/* a username alone proves nothing */
	EXPECT(IG_AUTH_NO_CREDENTIALS, "dev1", "dev1", NULL);
}

Test(auth, malformed)
{
	EXPECT(IG_AUTH_MALFORMED, "dev1", "dev1", "hunter2");
	EXPECT(IG_AUTH_MALFORMED, "dev1", "dev1", "igt1.");
	char t[IG_TOKEN_TEXT_MAX + 1];
	snprintf(t, sizeof t, "%s", mint(dev_sk, "demo", "dev1", NOW, NOW + 300));
	t[strlen(t) - 3] = '\0';
	EXPECT(IG_AUTH_MALFORMED, "dev1", "dev1", t);
}

Test(auth, id_mismatch)
{
	mint(dev_sk, "demo", "dev1", NOW, NOW + 300);
	EXPECT(IG_AUTH_ID_MISMATCH, "dev1", "dev2", tok);
	EXPECT(IG_AUTH_ID_MISMATCH, "adm1", "dev1", tok);
	EXPECT(IG_AUTH_ID_MISMATCH, "", "dev1", tok);
	EXPECT(IG_AUTH_ID_MISMATCH, "dev1", NULL, tok);
	EXPECT(IG_AUTH_ID_MISMATCH, "DEV1", "dev1", tok);
	EXPECT(IG_AUTH_ID_MISMATCH, "dev1", "dev1 ", tok);
	/* a stolen token for another id, with matching username/client id, is
	 * a signature failure, not a mismatch */
	mint(other_sk, "demo", "dev1", NOW, NOW + 300);
	EXPECT(IG_AUTH_BAD_SIGNATURE, "dev1", "dev1", tok);
}

Test(auth, registry_states)
{
	EXPECT(IG_AUTH_UNKNOWN_ID, "nobody", "nobody", mint(dev_sk, "demo", "nobody", NOW, NOW + 300));
	EXPECT(IG_AUTH_NOT_ACTIVE, "wait", "wait", mint(other_sk, "demo", "wait", NOW, NOW + 300));
	EXPECT(IG_AUTH_REVOKED, "gone", "gone", mint(other_sk, "demo", "gone", NOW, NOW + 300));
	/* mark_revoked takes effect before the record is durable */
	mint(dev_sk, "demo", "dev1", NOW, NOW + 300);
	EXPECT(IG_AUTH_OK, "dev1", "dev1", tok);
	cr_assert_eq(ig_registry_mark_revoked(reg, "dev1", 0), IG_OK);
	EXPECT(IG_AUTH_REVOKED, "dev1", "dev1", tok);
}

Test(auth, bad_signature)
{
	EXPECT(IG_AUTH_BAD_SIGNATURE, "dev1", "dev1", mint(adm_sk, "demo", "dev1", NOW, NOW + 300));
	/* flip one signature byte of a good token, re-encoded canonically */
	mint(dev_sk, "demo", "dev1", NOW, NOW + 300);
	uint8_t bin[IG_TOKEN_BIN_MAX];
	size_t blen;
	cr_assert_eq(sodium_base642bin(bin, sizeof bin, tok + 5, strlen(tok) - 5, NULL, &blen, NULL,
	                               sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
	bin[blen - 1] ^= 1;
	sodium_bin2base64(tok + 5, sizeof tok - 5, bin, blen, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	EXPECT(IG_AUTH_BAD_SIGNATURE, "dev1", "dev1", tok);
}

Test(auth, wrong_cluster)
{
	EXPECT(IG_AUTH_WRONG_CLUSTER, "dev1", "dev1", mint(dev_sk, "other", "dev1", NOW, NOW + 300));
	EXPECT(IG_AUTH_WRONG_CLUSTER, "dev1", "dev1", mint(dev_sk, "demo2", "dev1", NOW, NOW + 300));
	EXPECT(IG_AUTH_WRONG_CLUSTER, "dev1", "dev1", mint(dev_sk, "Demo", "dev1", NOW, NOW + 300));
}

Test(auth, ttl_boundaries)
{
	/* device max 600 s */
	EXPECT(IG_AUTH_OK, "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW, NOW + 600));
	EXPECT(IG_AUTH_TTL_TOO_LONG, "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW, NOW + 601));
	/* admin max 86400 s */
	EXPECT(IG_AUTH_OK, "adm1", "adm1", mint(adm_sk, "demo", "adm1", NOW, NOW + 86400));
	EXPECT(IG_AUTH_TTL_TOO_LONG, "adm1", "adm1", mint(adm_sk, "demo", "adm1", NOW, NOW + 86401));
	/* expires <= issued */
	EXPECT(IG_AUTH_TTL_TOO_LONG, "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW, NOW));
	EXPECT(IG_AUTH_TTL_TOO_LONG, "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW + 10, NOW));
	EXPECT(IG_AUTH_TTL_TOO_LONG, "dev1", "dev1", mint(dev_sk, "demo", "dev1", 0, UINT64_MAX));
	EXPECT(IG_AUTH_OK, "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW, NOW + 1));
	/* the limit comes from params, per role */
	params.max_ttl_s[IG_ROLE_DEVICE] = 10;
	EXPECT(IG_AUTH_TTL_TOO_LONG, "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW, NOW + 11));
	EXPECT(IG_AUTH_OK, "adm1", "adm1", mint(adm_sk, "demo", "adm1", NOW, NOW + 11));
}

Test(auth, not_yet_valid_boundaries)
{
	/* issued_at == now + skew: accepted; one more second: refused */
	EXPECT(IG_AUTH_OK, "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW + 30, NOW + 330));
	EXPECT(IG_AUTH_NOT_YET_VALID, "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW + 31, NOW + 331));
	/* no skew */
	params.skew_s = 0;
	EXPECT(IG_AUTH_OK, "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW, NOW + 300));
	EXPECT(IG_AUTH_NOT_YET_VALID, "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW + 1, NOW + 300));
	/* far future must not wrap around */
	params.skew_s = 30;
	EXPECT(IG_AUTH_NOT_YET_VALID, "dev1", "dev1",
	       mint(dev_sk, "demo", "dev1", UINT64_MAX - 100, UINT64_MAX - 1));
}

Test(auth, expiry_boundaries)
{
	/* strict: now == expires_at is expired */
	EXPECT(IG_AUTH_EXPIRED, "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW - 300, NOW));
	EXPECT(IG_AUTH_OK, "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW - 300, NOW + 1));
	EXPECT(IG_AUTH_EXPIRED, "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW - 600, NOW - 1));
	/* no grace for expiry: skew only applies to issued_at */
	EXPECT(IG_AUTH_EXPIRED, "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW - 310, NOW - 10));
}

Test(auth, check_order)
{
	/* Each pair: a token with two faults; the earlier check must win. */
	/* malformed beats everything about ids */
	EXPECT(IG_AUTH_MALFORMED, "x", "y", "igt1.garbage");
	/* id mismatch beats unknown id */
	EXPECT(IG_AUTH_ID_MISMATCH, "nobody", "other", mint(dev_sk, "demo", "nobody", NOW, NOW + 300));
	/* unknown id beats bad signature and cluster */
	EXPECT(IG_AUTH_UNKNOWN_ID, "nobody", "nobody", mint(dev_sk, "zzz", "nobody", NOW, NOW));
	/* revoked beats bad signature */
	EXPECT(IG_AUTH_REVOKED, "gone", "gone", mint(dev_sk, "demo", "gone", NOW, NOW + 300));
	/* pending beats bad signature */
	EXPECT(IG_AUTH_NOT_ACTIVE, "wait", "wait", mint(dev_sk, "demo", "wait", NOW, NOW + 300));
	/* bad signature beats wrong cluster and times */
	EXPECT(IG_AUTH_BAD_SIGNATURE, "dev1", "dev1", mint(adm_sk, "zzz", "dev1", 0, 1));
	/* wrong cluster beats ttl and expiry */
	EXPECT(IG_AUTH_WRONG_CLUSTER, "dev1", "dev1", mint(dev_sk, "zzz", "dev1", 0, 100000));
	/* ttl beats not-yet-valid and expired */
	EXPECT(IG_AUTH_TTL_TOO_LONG, "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW + 1000, NOW + 5000));
	EXPECT(IG_AUTH_TTL_TOO_LONG, "dev1", "dev1", mint(dev_sk, "demo", "dev1", 0, 5000));
	/* not-yet-valid is checked before expiry (both cannot hold with a
	 * positive ttl, but the order is pinned anyway) */
	EXPECT(IG_AUTH_NOT_YET_VALID, "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW + 100, NOW + 200));
}

Test(auth, claims_filled_for_logging)
{
	/* On refusal after parsing, claims carry the (unverified) id so the
	 * plugin can log who tried. */
	ig_token_claims c;
	const ig_identity *who;
	mint(dev_sk, "demo", "nobody", NOW, NOW + 300);
	cr_assert_eq(ig_auth_check(reg, &params, "nobody", "nobody", tok, strlen(tok), &who, &c), IG_AUTH_UNKNOWN_ID);
	cr_assert_str_eq(c.id, "nobody");
	cr_assert_null(who);
	cr_assert_eq(ig_auth_check(reg, &params, "x", "x", "bad", 3, &who, &c), IG_AUTH_MALFORMED);
	cr_assert_str_eq(c.id, "");
}

Test(auth, fuzz_never_accepts_garbage)
{
	char buf[IG_TOKEN_TEXT_MAX + 1];
	for (int i = 0; i < 5000; i++) {
		size_t len = randombytes_uniform(sizeof buf);
		randombytes_buf(buf, len);
		if (len > 5 && (i & 1))
			memcpy(buf, "igt1.", 5);
		cr_assert_neq(ig_auth_check(reg, &params, "dev1", "dev1", buf, len, NULL, NULL), IG_AUTH_OK);
	}
}

/* ---- single-use tokens and the per-identity budget (issue 7) ---------- */

Test(auth, single_use_token_connects_once)
{
	ig_nonces *cache;
	cr_assert_eq(ig_nonces_new(&cache, 1000), IG_OK);
	params.replay = cache;
	params.single_use[IG_ROLE_DEVICE] = true;
	char first[sizeof tok];
	snprintf(first, sizeof first, "%s", mint(dev_sk, "demo", "dev1", NOW, NOW + 300));
	EXPECT(IG_AUTH_OK, "dev1", "dev1", first);
	EXPECT(IG_AUTH_REPLAYED, "dev1", "dev1", first);
	EXPECT(IG_AUTH_REPLAYED, NULL, "dev1", first);
	/* A fresh token is fine; a refused token is never remembered. */
	EXPECT(IG_AUTH_OK, "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW, NOW + 300));
	char bad[sizeof tok];
	snprintf(bad, sizeof bad, "%s", mint(dev_sk, "other", "dev1", NOW, NOW + 300));
	EXPECT(IG_AUTH_WRONG_CLUSTER, "dev1", "dev1", bad);
	cr_assert_eq(ig_nonces_count(cache), 2);
	/* Roles without single_use may reuse a token. */
	char adm[sizeof tok];
	snprintf(adm, sizeof adm, "%s", mint(adm_sk, "demo", "adm1", NOW, NOW + 300));
	EXPECT(IG_AUTH_OK, "adm1", "adm1", adm);
	EXPECT(IG_AUTH_OK, "adm1", "adm1", adm);
	/* After expiry the token is refused as expired, not as replayed. */
	params.now_s = NOW + 300;
	EXPECT(IG_AUTH_EXPIRED, "dev1", "dev1", first);
	params.replay = NULL;
	ig_nonces_free(cache);
}

Test(auth, id_budget_limits_checks_from_failing_addresses_only)
{
	ig_ban_ids *budget;
	cr_assert_eq(ig_ban_ids_new(&budget, 64, 3), IG_OK);
	params.budget = budget;
	params.addr_failed = true;
	char forged[sizeof tok];
	snprintf(forged, sizeof forged, "%s", mint(other_sk, "demo", "dev1", NOW, NOW + 300));
	for (int i = 0; i < 3; i++)
		EXPECT(IG_AUTH_BAD_SIGNATURE, "dev1", "dev1", forged);
	/* Over budget: no signature check for an address that failed before. */
	EXPECT(IG_AUTH_RATE_LIMITED, "dev1", "dev1", forged);
	EXPECT(IG_AUTH_RATE_LIMITED, "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW, NOW + 300));
	/* The real device from an address with no failure still gets in. */
	params.addr_failed = false;
	EXPECT(IG_AUTH_OK, "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW, NOW + 300));
	/* Other ids are unaffected, and the budget comes back with time. */
	params.addr_failed = true;
	EXPECT(IG_AUTH_OK, "adm1", "adm1", mint(adm_sk, "demo", "adm1", NOW, NOW + 300));
	params.now_ms = NOW * 1000 + 20000;   /* 3 per minute: one every 20 s */
	EXPECT(IG_AUTH_OK, "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW, NOW + 300));
	params.budget = NULL;
	ig_ban_ids_free(budget);
}

/* ---- the whole CONNECT decision (ig_auth_connect) ----
 *
 * What the plugin used to decide inline, reachable only through a broker:
 * bans, the join path, session admission and takeover, SIGHUP re-checks,
 * what is counted and what is logged. */

static int conn_a, conn_b, conn_c;   /* stand-ins for Mosquitto's client handles */

typedef struct fixture {
	ig_sessions sessions;
	ig_ban *bans;
	ig_nonces *replay;
	ig_auth_quiet quiet;
	ig_auth_env env;
	int join_calls;
	ig_auth_result join_answer;
} fixture;

static ig_auth_result fake_join(void *ctx, const char *username, const char *token, size_t token_len,
                                ig_session *out)
{
	fixture *f = ctx;
	(void)username;
	(void)token;
	(void)token_len;
	f->join_calls++;
	if (f->join_answer != IG_AUTH_OK)
		return f->join_answer;
	out->joining = true;
	out->role = IG_ROLE_DEVICE;
	snprintf(out->id, sizeof out->id, "newdev");
	memset(out->join_pk, 0x11, sizeof out->join_pk);
	memset(out->join_code_id, 0x22, sizeof out->join_code_id);
	return IG_AUTH_OK;
}

static void fixture_init(fixture *f)
{
	memset(f, 0, sizeof *f);
	cr_assert(ig_sessions_init(&f->sessions));
	cr_assert_eq(ig_ban_new(&f->bans, 64), IG_OK);
	cr_assert_eq(ig_nonces_new(&f->replay, 100), IG_OK);
	f->env = (ig_auth_env){
		.reg = reg, .sessions = &f->sessions, .bans = f->bans,
		.ban_rules = {.limit = 3, .window_ms = 60000, .ban_ms = 30000},
		.replay_cache_max = 100, .params = params,
		.join = fake_join, .join_ctx = f, .quiet = &f->quiet,
	};
	f->env.params.replay = f->replay;
	f->env.params.single_use[IG_ROLE_DEVICE] = true;
	f->join_answer = IG_AUTH_OK;
}

static void fixture_free(fixture *f)
{
	ig_sessions_free(&f->sessions);
	ig_ban_free(f->bans);
	ig_nonces_free(f->replay);
}

static ig_auth_outcome out;

static ig_auth_result connect_as(fixture *f, const void *client, const char *addr, const char *user,
                                 const char *client_id, const char *t, uint64_t now_s)
{
	ig_auth_conn c = {.client = client, .client_id = client_id, .addr = addr, .username = user, .token = t,
	                  .token_len = t ? strlen(t) : 0, .now_ms = now_s * 1000};
	memset(&out, 0xa5, sizeof out);   /* nothing may be read that connect did not write */
	ig_auth_connect(&out, &f->env, &c);
	cr_assert_leq(out.lines, IG_AUTH_LINES_MAX);
	return out.result;
}

static bool said(const char *needle, ig_auth_level level)
{
	for (size_t i = 0; i < out.lines; i++)
		if (out.line[i].level == level && strstr(out.line[i].text, needle))
			return true;
	return false;
}

Test(auth, connect_accepts_opens_a_session_and_takes_over)
{
	fixture f;
	fixture_init(&f);
	cr_assert_eq(connect_as(&f, &conn_a, "10.0.0.1", "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW, NOW + 300),
	                        NOW), IG_AUTH_OK);
	cr_assert(out.counted);
	cr_assert_not(out.recheck);
	cr_assert_str_eq(out.id, "dev1");
	cr_assert_eq(out.lines, 0, "an accepted login is not logged here");
	const ig_session *s = ig_sessions_find(&f.sessions, "dev1");
	cr_assert_not_null(s);
	cr_assert_eq(s->client, &conn_a);
	cr_assert_eq(s->role, IG_ROLE_DEVICE);
	/* A second connection for the same id takes the session over. */
	cr_assert_eq(connect_as(&f, &conn_b, "10.0.0.2", NULL, "dev1", mint(dev_sk, "demo", "dev1", NOW, NOW + 300),
	                        NOW), IG_AUTH_OK);
	cr_assert_eq(ig_sessions_find(&f.sessions, "dev1")->client, &conn_b);
	cr_assert_eq(f.sessions.count, 1);
	cr_assert_eq(f.sessions.by_role[IG_ROLE_DEVICE], 1);
	fixture_free(&f);
}

Test(auth, connect_refusals_count_against_the_address_and_ban_it)
{
	fixture f;
	fixture_init(&f);
	char forged[sizeof tok];
	snprintf(forged, sizeof forged, "%s", mint(other_sk, "demo", "dev1", NOW, NOW + 300));
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(connect_as(&f, &conn_a, "192.0.2.9", "dev1", "dev1", forged, NOW), IG_AUTH_BAD_SIGNATURE);
		cr_assert(out.counted);
		cr_assert_str_eq(out.id, "");
		cr_assert(said("refused connection from 192.0.2.9 (client id dev1, username dev1): bad_signature",
		               IG_AUTH_LOG_NOTICE));
		cr_assert_not(said(forged, IG_AUTH_LOG_NOTICE), "a token is never logged");
	}
	cr_assert_null(ig_sessions_find(&f.sessions, "dev1"));
	/* Attacker-chosen names that are not ids are not printed. */
	cr_assert_eq(connect_as(&f, &conn_a, "192.0.2.9", "bad name\n", "x y", "junk", NOW), IG_AUTH_MALFORMED);
	cr_assert(said("(client id -, username -): malformed", IG_AUTH_LOG_NOTICE));
	cr_assert(said("address 192.0.2.9: 3 failed logins within a minute; refusing it for 30 s", IG_AUTH_LOG_WARNING),
	          "the third failure bans the address");
	/* Banned: even a good token is refused, at no signature cost, and the
	 * refusal does not stretch the ban. */
	cr_assert_eq(connect_as(&f, &conn_a, "192.0.2.9", "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW, NOW + 300),
	                        NOW + 1), IG_AUTH_RATE_LIMITED);
	cr_assert(out.counted);
	cr_assert_not(said("failed logins", IG_AUTH_LOG_WARNING));
	cr_assert_eq(connect_as(&f, &conn_a, "192.0.2.9", "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW, NOW + 300),
	                        NOW + 30), IG_AUTH_OK, "the ban ends 30 s after it began");
	/* Another address was never affected. */
	cr_assert_eq(connect_as(&f, &conn_b, "192.0.2.10", "adm1", "adm1", mint(adm_sk, "demo", "adm1", NOW, NOW + 300),
	                        NOW + 1), IG_AUTH_OK);
	fixture_free(&f);
}

Test(auth, connect_refusals_from_banned_addresses_are_logged_sparingly)
{
	fixture f;
	fixture_init(&f);
	for (int i = 0; i < 3; i++)
		connect_as(&f, &conn_a, "198.51.100.4", "dev1", "dev1", "junk", NOW);
	size_t logged = 0;
	for (int i = 0; i < 50; i++) {
		cr_assert_eq(connect_as(&f, &conn_a, "198.51.100.4", "dev1", "dev1", "junk", NOW + 1), IG_AUTH_RATE_LIMITED);
		cr_assert(out.counted, "every refusal is counted, logged or not");
		logged += out.lines;
	}
	cr_assert_eq(logged, IG_AUTH_QUIET_LINES_PER_S);
	cr_assert_eq(connect_as(&f, &conn_a, "198.51.100.4", "dev1", "dev1", "junk", NOW + 2), IG_AUTH_RATE_LIMITED);
	cr_assert(said("refused 40 more connections from banned addresses as rate_limited", IG_AUTH_LOG_NOTICE));
	cr_assert(said("rate_limited", IG_AUTH_LOG_NOTICE));
	fixture_free(&f);
}

/* Mosquitto 2.0 re-runs the password check of every client on SIGHUP. */
Test(auth, connect_recheck_of_a_live_session)
{
	fixture f;
	fixture_init(&f);
	char first[sizeof tok];
	snprintf(first, sizeof first, "%s", mint(dev_sk, "demo", "dev1", NOW, NOW + 300));
	cr_assert_eq(connect_as(&f, &conn_a, "10.0.0.1", "dev1", "dev1", first, NOW), IG_AUTH_OK);
	/* The same connection, the same single-use token, after it expired:
	 * not a new connection, so neither replay nor time window apply. */
	cr_assert_eq(connect_as(&f, &conn_a, "10.0.0.1", "dev1", "dev1", first, NOW + 1000), IG_AUTH_OK);
	cr_assert(out.recheck);
	cr_assert_not(out.counted, "a re-check is not a login");
	cr_assert_str_eq(out.id, "dev1");
	/* Another connection with that token is a replay. */
	cr_assert_eq(connect_as(&f, &conn_b, "10.0.0.5", "dev1", "dev1", first, NOW + 1), IG_AUTH_REPLAYED);
	cr_assert_not(out.recheck);
	/* v5 enhanced authentication leaves no token to re-check: the identity
	 * must still be active. */
	cr_assert_eq(connect_as(&f, &conn_a, "10.0.0.1", NULL, "dev1", NULL, NOW + 2), IG_AUTH_OK);
	cr_assert(out.recheck);
	revoke("dev1");
	cr_assert_eq(connect_as(&f, &conn_a, "10.0.0.1", NULL, "dev1", NULL, NOW + 3), IG_AUTH_REVOKED);
	cr_assert(said("dev1: re-checked live session is no longer active", IG_AUTH_LOG_NOTICE));
	cr_assert_not(out.counted);
	cr_assert_eq(connect_as(&f, &conn_a, "10.0.0.1", "dev1", "dev1", first, NOW + 3), IG_AUTH_REVOKED);
	cr_assert(said("re-checked the live session's token and it no longer passes (revoked)", IG_AUTH_LOG_NOTICE));
	cr_assert_not(out.counted);
	ig_ban_addr k;
	ig_ban_addr_parse(&k, "10.0.0.1");
	cr_assert_not(ig_ban_has_failed(f.bans, &k, &f.env.ban_rules, NOW * 1000 + 3000),
	              "a failed re-check is not a failed login of the address");
	fixture_free(&f);
}

Test(auth, connect_with_a_join_token)
{
	fixture f;
	fixture_init(&f);
	const char *jt = IG_JOIN_TOKEN_PREFIX "anything";
	cr_assert_eq(connect_as(&f, &conn_a, "10.0.0.7", NULL, "newdev", jt, NOW), IG_AUTH_OK);
	cr_assert_eq(f.join_calls, 1);
	cr_assert(out.counted);
	cr_assert_str_eq(out.id, "newdev");
	cr_assert(said("newdev connected with a join code; waiting for its join request", IG_AUTH_LOG_NOTICE));
	const ig_session *s = ig_sessions_find(&f.sessions, "newdev");
	cr_assert_not_null(s);
	cr_assert(s->joining);
	cr_assert_eq(s->join_pk[0], 0x11);
	cr_assert_eq(s->join_code_id[IG_JOIN_CODE_ID_BYTES - 1], 0x22);
	/* Its re-check passes without looking at the code again. */
	cr_assert_eq(connect_as(&f, &conn_a, "10.0.0.7", NULL, "newdev", jt, NOW + 5), IG_AUTH_OK);
	cr_assert(out.recheck);
	cr_assert_eq(f.join_calls, 1);
	/* A refused join counts against the address like any failure. */
	f.join_answer = IG_AUTH_CODE_USED;
	cr_assert_eq(connect_as(&f, &conn_b, "10.0.0.8", NULL, "other", jt, NOW), IG_AUTH_CODE_USED);
	cr_assert(out.counted);
	cr_assert(said("code_used", IG_AUTH_LOG_NOTICE));
	ig_ban_addr k;
	ig_ban_addr_parse(&k, "10.0.0.8");
	cr_assert(ig_ban_has_failed(f.bans, &k, &f.env.ban_rules, NOW * 1000));
	/* Without a join service, a join token is malformed. */
	f.env.join = NULL;
	cr_assert_eq(connect_as(&f, &conn_c, "10.0.0.9", NULL, "x", jt, NOW), IG_AUTH_MALFORMED);
	fixture_free(&f);
}

Test(auth, connect_refuses_what_it_cannot_track)
{
	fixture f;
	fixture_init(&f);
	ig_sessions_free(&f.sessions);   /* a session table that takes nothing */
	cr_assert_eq(connect_as(&f, &conn_a, "10.0.0.1", "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW, NOW + 300),
	                        NOW), IG_AUTH_RESULT_COUNT);
	cr_assert_not(out.counted);
	cr_assert_str_eq(out.id, "");
	fixture_free(&f);
}

Test(auth, connect_warns_once_a_second_when_the_replay_cache_is_full)
{
	fixture f;
	fixture_init(&f);
	ig_nonces_free(f.replay);
	cr_assert_eq(ig_nonces_new(&f.replay, 16), IG_OK);
	f.env.params.replay = f.replay;
	f.env.replay_cache_max = 16;
	static int conns[18];
	for (int i = 0; i < 16; i++)
		cr_assert_eq(connect_as(&f, &conns[i], "10.0.0.1", "dev1", "dev1",
		                        mint(dev_sk, "demo", "dev1", NOW, NOW + 300), NOW), IG_AUTH_OK);
	cr_assert_eq(connect_as(&f, &conns[16], "10.0.0.2", "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW, NOW + 300),
	                        NOW), IG_AUTH_RATE_LIMITED);
	cr_assert(said("the single-use token cache holds 16 unexpired nonces, its maximum", IG_AUTH_LOG_WARNING));
	cr_assert_eq(connect_as(&f, &conns[17], "10.0.0.3", "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW, NOW + 300),
	                        NOW), IG_AUTH_RATE_LIMITED);
	cr_assert_not(said("single-use token cache", IG_AUTH_LOG_WARNING), "once a second, not per refusal");
	fixture_free(&f);
}

/* An accepted new login of a single-use role hands back the nonce it
 * remembered (shared mode passes it to the other brokers); nothing else
 * does: another role, a refusal, a re-check of a live session. */
Test(auth, connect_reports_the_single_use_nonce_it_remembered)
{
	fixture f;
	fixture_init(&f);
	uint8_t nonce[IG_TOKEN_NONCE_BYTES];
	memset(nonce, 0x4e, sizeof nonce);
	char t[IG_TOKEN_TEXT_MAX + 1];
	cr_assert_gt(ig_token_mint(t, sizeof t, dev_sk, "demo", "dev1", NOW, NOW + 300, nonce), 0);
	cr_assert_eq(connect_as(&f, &conn_a, "10.0.0.1", "dev1", "dev1", t, NOW), IG_AUTH_OK);
	cr_assert(out.nonce_added);
	cr_assert_eq(memcmp(out.nonce, nonce, sizeof nonce), 0);
	cr_assert_eq(out.nonce_expires_at, NOW + 300);
	cr_assert_eq(connect_as(&f, &conn_a, "10.0.0.1", "dev1", "dev1", t, NOW + 1), IG_AUTH_OK);
	cr_assert(out.recheck);
	cr_assert_not(out.nonce_added, "a re-check remembers nothing new");
	cr_assert_eq(connect_as(&f, &conn_b, "10.0.0.2", "dev1", "dev1", t, NOW + 1), IG_AUTH_REPLAYED);
	cr_assert_not(out.nonce_added);
	/* admin is not single-use in this fixture */
	cr_assert_eq(connect_as(&f, &conn_c, "10.0.0.3", "adm1", "adm1", mint(adm_sk, "demo", "adm1", NOW, NOW + 300), NOW),
	             IG_AUTH_OK);
	cr_assert_not(out.nonce_added);
	fixture_free(&f);
}

/* A bridge (docs/PROTOCOL.md "Several brokers") reconnects with the one
 * token in its mosquitto.conf: under the built-in policy it is accepted
 * again and again, for up to the plugin's default 30 days; a device's token
 * or key never opens a bridge's connection; revocation ends it. */
Test(auth, bridge_token_is_reusable_long_lived_and_only_the_bridges)
{
	uint8_t br_pk[32], br_sk[64];
	crypto_sign_keypair(br_pk, br_sk);
	enroll("b1", IG_ROLE_BRIDGE, br_pk);
	ig_policy *pol = NULL;
	ig_error err = {0};
	cr_assert_eq(ig_policy_parse(ig_policy_default_json, strlen(ig_policy_default_json), &pol, &err), IG_OK, "%s",
	             err.msg);
	ig_nonces *cache;
	cr_assert_eq(ig_nonces_new(&cache, 1000), IG_OK);
	params.replay = cache;
	for (int r = 0; r < IG_ROLE_COUNT; r++)
		params.single_use[r] = ig_policy_single_use(pol, (ig_role)r);
	params.max_ttl_s[IG_ROLE_BRIDGE] = 30u * 86400u;   /* the plugin's default ttl_bridge */
	cr_assert(params.single_use[IG_ROLE_DEVICE], "the built-in policy makes device tokens single-use");

	char bt[sizeof tok];
	snprintf(bt, sizeof bt, "%s", mint(br_sk, "demo", "b1", NOW, NOW + 30u * 86400u));
	for (int i = 0; i < 3; i++)
		EXPECT(IG_AUTH_OK, "b1", "b1", bt);
	cr_assert_eq(ig_nonces_count(cache), 0, "a bridge token's nonce is never remembered");
	params.now_s = NOW + 29u * 86400u;
	EXPECT(IG_AUTH_OK, "b1", "b1", bt);
	params.now_s = NOW;
	EXPECT(IG_AUTH_TTL_TOO_LONG, "b1", "b1", mint(br_sk, "demo", "b1", NOW, NOW + 30u * 86400u + 1));
	/* The same lifetime is far too long for a device. */
	EXPECT(IG_AUTH_TTL_TOO_LONG, "dev1", "dev1", mint(dev_sk, "demo", "dev1", NOW, NOW + 30u * 86400u));

	/* A device's token cannot open the bridge's connection, nor can its key
	 * sign for the bridge. */
	char dt[sizeof tok];
	snprintf(dt, sizeof dt, "%s", mint(dev_sk, "demo", "dev1", NOW, NOW + 300));
	EXPECT(IG_AUTH_ID_MISMATCH, "b1", "b1", dt);
	EXPECT(IG_AUTH_ID_MISMATCH, "dev1", "b1", dt);
	EXPECT(IG_AUTH_BAD_SIGNATURE, "b1", "b1", mint(dev_sk, "demo", "b1", NOW, NOW + 300));

	revoke("b1");
	EXPECT(IG_AUTH_REVOKED, "b1", "b1", bt);
	params.replay = NULL;
	ig_nonces_free(cache);
	ig_policy_free(pol);
}
