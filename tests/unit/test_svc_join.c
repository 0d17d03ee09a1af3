/*
 * test_svc_join.c: the join service (lib/identity/svc_join.c) without a broker.
 *
 * Why this exists: a device that joins is a stranger until its ENROLL is
 * durable, so every refusal of the join token at CONNECT and of the join
 * request is pinned here, in the order docs/PROTOCOL.md ("Joining the
 * cluster", "Flow") gives; and a join is driven through the ledger's
 * verdicts by hand, as the plugin's carrier does it: ENROLL, then JOIN_USED
 * chained from its done, then the welcome.
 */
#include <criterion/criterion.h>

#include <cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "ig_auth.h"
#include "ig_decision.h"
#include "ig_join.h"
#include "ig_record.h"
#include "ig_registry.h"
#include "ig_state.h"
#include "ig_svc_join.h"
#include "svc_fixture.h"
#include "testutil.h"

#define NOW 1767225600ull
#define SKEW 30

static uint8_t ch_pk[32], ch_sk[64], dev_pk[32], dev_sk[64];
static ig_join_key jk;
static ig_state *st;
static ig_svc_join *svc;
static char joined_id[IG_ID_MAX + 1];
static ig_role joined_role;
static uint64_t joined_index;
static int joined_calls;

static void on_joined(void *ctx, const char *id, ig_role role, uint64_t index)
{
	cr_assert_eq(ctx, &joined_calls);
	snprintf(joined_id, sizeof joined_id, "%s", id);
	joined_role = role;
	joined_index = index;
	joined_calls++;
}

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	tu_seed_keypair(ch_pk, ch_sk, 0x00);
	tu_seed_keypair(dev_pk, dev_sk, 0x20);
	ig_join_key_derive(&jk, ch_sk);
	st = ig_state_new();
	cr_assert_not_null(st);
	ig_svc_join_config cfg = {.cluster = "demo", .ch_pk = ch_pk, .clock_skew_s = SKEW, .joined = on_joined,
	                          .joined_ctx = &joined_calls};
	svc = ig_svc_join_new(&cfg);
	cr_assert_not_null(svc);
}

static void teardown(void)
{
	ig_svc_join_free(svc);
	ig_state_free(st);
}

TestSuite(svc_join, .init = setup, .fini = teardown);

/* A join code for role, expiring at expires_at, written to the ledger (or
 * only printed, when record is false). */
static void new_code(char text[IG_JOIN_CODE_TEXT_LEN + 1], uint8_t code_id[IG_JOIN_CODE_ID_BYTES], ig_role role,
                     uint64_t expires_at, bool record)
{
	ig_join_code_rec r = {.role = role, .expires_at = expires_at};
	ig_join_code_new(&jk, r.code_id, r.hash, text);
	snprintf(r.by, sizeof r.by, "admin");
	memcpy(code_id, r.code_id, IG_JOIN_CODE_ID_BYTES);
	if (record) {
		uint8_t body[256];
		int n = ig_record_join_code_encode(body, sizeof body, &r);
		cr_assert_gt(n, 0);
		fx_apply(st, IG_REC_JOIN_CODE, body, (size_t)n);
	}
}

/* A join token by hand (the layout of docs/PROTOCOL.md, "Join token"), so
 * its times may break the rules ig_join_token_mint enforces. */
static void mint(char tok[IG_JOIN_TOKEN_TEXT_MAX + 1], const char *cluster, const char *id, const char *code,
                 uint64_t issued, uint64_t expires)
{
	uint8_t code_id[8], secret[16], bin[400], msg[420];
	cr_assert_eq(ig_join_code_parse(code, code_id, secret), IG_OK);
	size_t pos = 0;
	bin[pos++] = 1;
	bin[pos++] = (uint8_t)strlen(cluster);
	memcpy(bin + pos, cluster, strlen(cluster));
	pos += strlen(cluster);
	bin[pos++] = (uint8_t)strlen(id);
	memcpy(bin + pos, id, strlen(id));
	pos += strlen(id);
	memcpy(bin + pos, dev_pk, 32);
	pos += 32;
	memcpy(bin + pos, code_id, 8);
	pos += 8;
	ig_put_u64(bin + pos, issued);
	pos += 8;
	ig_put_u64(bin + pos, expires);
	pos += 8;
	tu_rand_bytes(bin + pos, 16);
	pos += 16;
	memcpy(msg, IG_JOIN_DOMAIN, 17);   /* with its NUL: the domain separator */
	memcpy(msg + 17, bin, pos);
	crypto_auth_hmacsha256_state h;
	crypto_auth_hmacsha256_init(&h, secret, 16);
	crypto_auth_hmacsha256_update(&h, msg, 17 + pos);
	crypto_auth_hmacsha256_final(&h, bin + pos);
	pos += 32;
	memcpy(msg + 17, bin, pos);
	crypto_sign_detached(bin + pos, NULL, msg, 17 + pos, dev_sk);
	pos += 64;
	memcpy(tok, IG_JOIN_TOKEN_PREFIX, 5);
	sodium_bin2base64(tok + 5, IG_JOIN_TOKEN_TEXT_MAX + 1 - 5, bin, pos, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* ig_svc_join_auth with client id = username = cid, at NOW. */
static ig_auth_result auth(ig_svc_join_ticket *t, const char *cid, const char *tok)
{
	const char *why = NULL;
	ig_auth_result r = ig_svc_join_auth(t, &why, svc, st, &jk, cid, cid, tok, strlen(tok), NOW);
	cr_assert_not_null(why, "every verdict says why");
	cr_assert_gt(strlen(why), 10);
	return r;
}

static void ticket_for(ig_svc_join_ticket *t, const char *id, const uint8_t code_id[IG_JOIN_CODE_ID_BYTES])
{
	memset(t, 0, sizeof *t);
	snprintf(t->id, sizeof t->id, "%s", id);
	t->role = IG_ROLE_DEVICE;
	memcpy(t->pk, dev_pk, 32);
	memcpy(t->code_id, code_id, IG_JOIN_CODE_ID_BYTES);
}

/* ---- CONNECT ----------------------------------------------------------------- */

Test(svc_join, a_good_token_opens_a_joining_session)
{
	char code[IG_JOIN_CODE_TEXT_LEN + 1], tok[IG_JOIN_TOKEN_TEXT_MAX + 1];
	uint8_t cid[8];
	new_code(code, cid, IG_ROLE_ANALYST, NOW + 600, true);
	mint(tok, "demo", "newdev", code, NOW, NOW + 300);
	ig_svc_join_ticket t;
	memset(&t, 0xAA, sizeof t);
	cr_assert_eq(auth(&t, "newdev", tok), IG_AUTH_OK);
	cr_expect_str_eq(t.id, "newdev");
	cr_expect_eq(t.role, IG_ROLE_ANALYST, "the code's role, not the device's wish");
	cr_expect_eq(memcmp(t.pk, dev_pk, 32), 0);
	cr_expect_eq(memcmp(t.code_id, cid, 8), 0);
	/* username may be absent (MQTT v5 without one); the client id may not */
	cr_expect_eq(ig_svc_join_auth(&t, NULL, svc, st, &jk, NULL, "newdev", tok, strlen(tok), NOW), IG_AUTH_OK);
	cr_expect_eq(ig_svc_join_auth(&t, NULL, svc, st, &jk, NULL, NULL, tok, strlen(tok), NOW), IG_AUTH_ID_MISMATCH);
	/* clock skew: issued 30 s ahead passes, 31 s does not */
	mint(tok, "demo", "newdev", code, NOW + SKEW, NOW + SKEW + 60);
	cr_expect_eq(auth(&t, "newdev", tok), IG_AUTH_OK);
}

Test(svc_join, every_connect_refusal_in_order)
{
	char code[IG_JOIN_CODE_TEXT_LEN + 1], tok[IG_JOIN_TOKEN_TEXT_MAX + 1];
	uint8_t cid[8];
	ig_svc_join_ticket t;
	new_code(code, cid, IG_ROLE_DEVICE, NOW + 600, true);

	cr_expect_eq(auth(&t, "newdev", "igj1.AAAA"), IG_AUTH_MALFORMED);
	cr_expect_eq(auth(&t, "newdev", "v1.not-a-join-token"), IG_AUTH_MALFORMED);
	cr_expect_eq(ig_svc_join_auth(&t, NULL, svc, st, &jk, "newdev", "newdev", NULL, 0, NOW), IG_AUTH_MALFORMED);

	mint(tok, "demo", "newdev", code, NOW, NOW + 300);
	cr_expect_eq(auth(&t, "other", tok), IG_AUTH_ID_MISMATCH);
	cr_expect_eq(ig_svc_join_auth(&t, NULL, svc, st, &jk, "other", "newdev", tok, strlen(tok), NOW),
	             IG_AUTH_ID_MISMATCH, "the username too must be the token's id");

	/* wrong cluster beats everything the ledger could say */
	mint(tok, "elsewhere", "newdev", code, NOW, NOW + 300);
	cr_expect_eq(auth(&t, "newdev", tok), IG_AUTH_WRONG_CLUSTER);

	/* the ledger checks: id, then the code */
	fx_enroll(st, "taken", IG_ROLE_DEVICE, ch_pk);
	mint(tok, "demo", "taken", code, NOW, NOW + 300);
	cr_expect_eq(auth(&t, "taken", tok), IG_AUTH_ID_TAKEN);
	fx_enroll(st, "gone", IG_ROLE_DEVICE, ch_pk);
	fx_revoke(st, "gone");
	mint(tok, "demo", "gone", code, NOW, NOW + 300);
	cr_expect_eq(auth(&t, "gone", tok), IG_AUTH_ID_TAKEN, "a code never claims a revoked id");
	cr_assert_eq(ig_registry_reserve(ig_state_registry(st), "pending1", IG_ROLE_DEVICE, dev_pk), IG_OK);
	mint(tok, "demo", "pending1", code, NOW, NOW + 300);
	cr_expect_eq(auth(&t, "pending1", tok), IG_AUTH_ID_TAKEN, "nor one being enrolled");

	char unknown[IG_JOIN_CODE_TEXT_LEN + 1];
	uint8_t unknown_id[8];
	new_code(unknown, unknown_id, IG_ROLE_DEVICE, NOW + 600, false);
	mint(tok, "demo", "newdev", unknown, NOW, NOW + 300);
	cr_expect_eq(auth(&t, "newdev", tok), IG_AUTH_CODE_UNKNOWN);

	char expired[IG_JOIN_CODE_TEXT_LEN + 1];
	uint8_t expired_id[8];
	new_code(expired, expired_id, IG_ROLE_DEVICE, NOW, true);
	mint(tok, "demo", "newdev", expired, NOW - 10, NOW + 300);
	cr_expect_eq(auth(&t, "newdev", tok), IG_AUTH_CODE_EXPIRED, "expiry is checked at now >= expires_at");

	/* the right code id with another secret: the hash does not match */
	char forged[IG_JOIN_CODE_TEXT_LEN + 1], hex[49];
	uint8_t idsec[24];
	memcpy(idsec, cid, 8);
	tu_rand_bytes(idsec + 8, 16);
	ig_hex_encode(hex, idsec, 24);
	snprintf(forged, sizeof forged, "igjc1-%s", hex);
	mint(tok, "demo", "newdev", forged, NOW, NOW + 300);
	cr_expect_eq(auth(&t, "newdev", tok), IG_AUTH_BAD_SIGNATURE);
	/* a changed byte of a good token: the MAC and signature fail */
	mint(tok, "demo", "newdev", code, NOW, NOW + 300);
	size_t n = strlen(tok);
	tok[n - 3] = tok[n - 3] == 'A' ? 'B' : 'A';
	cr_expect_eq(auth(&t, "newdev", tok), IG_AUTH_BAD_SIGNATURE);
	/* a join key of another cluster head re-derives another secret */
	ig_join_key other;
	uint8_t opk[32], osk[64];
	tu_seed_keypair(opk, osk, 0x80);
	ig_join_key_derive(&other, osk);
	mint(tok, "demo", "newdev", code, NOW, NOW + 300);
	cr_expect_eq(ig_svc_join_auth(&t, NULL, svc, st, &other, "newdev", "newdev", tok, strlen(tok), NOW),
	             IG_AUTH_BAD_SIGNATURE);

	/* the token's own times */
	mint(tok, "demo", "newdev", code, NOW, NOW + 601);
	cr_expect_eq(auth(&t, "newdev", tok), IG_AUTH_TTL_TOO_LONG);
	mint(tok, "demo", "newdev", code, NOW, NOW);
	cr_expect_eq(auth(&t, "newdev", tok), IG_AUTH_TTL_TOO_LONG, "expires must come after issued");
	mint(tok, "demo", "newdev", code, NOW + SKEW + 1, NOW + SKEW + 60);
	cr_expect_eq(auth(&t, "newdev", tok), IG_AUTH_NOT_YET_VALID);
	mint(tok, "demo", "newdev", code, NOW - 300, NOW);
	cr_expect_eq(auth(&t, "newdev", tok), IG_AUTH_EXPIRED);

	/* the code consumed (a JOIN_USED by another id) */
	ig_join_used u = {0};
	memcpy(u.code_id, cid, 8);
	snprintf(u.id, sizeof u.id, "someone");
	uint8_t body[256];
	int len = ig_record_join_used_encode(body, sizeof body, &u);
	cr_assert_gt(len, 0);
	fx_apply(st, IG_REC_JOIN_USED, body, (size_t)len);
	mint(tok, "demo", "newdev", code, NOW, NOW + 300);
	cr_expect_eq(auth(&t, "newdev", tok), IG_AUTH_CODE_USED);
}

Test(svc_join, a_code_being_used_refuses_a_second_connect)
{
	char code[IG_JOIN_CODE_TEXT_LEN + 1], tok[IG_JOIN_TOKEN_TEXT_MAX + 1];
	uint8_t cid[8];
	new_code(code, cid, IG_ROLE_DEVICE, NOW + 600, true);
	mint(tok, "demo", "second", code, NOW, NOW + 300);
	ig_svc_join_ticket t, first;
	cr_assert_eq(auth(&t, "second", tok), IG_AUTH_OK, "two sessions may hold one code until one joins");
	ticket_for(&first, "first", cid);
	ig_decision d = {0};
	ig_svc_join_request(&d, svc, st, "first", &first, NOW);
	cr_assert_eq(d.kind, IG_DECISION_APPEND);
	cr_expect_eq(auth(&t, "second", tok), IG_AUTH_CODE_USED, "a join with the code is being written");
	ig_decision_clear(&d);   /* never carried out: completed as not written */
	cr_expect_eq(auth(&t, "second", tok), IG_AUTH_OK, "the code is usable again");
}

/* ---- {"type":"join"} --------------------------------------------------------- */

/* Carries out the append in d as the plugin does: with status IG_OK the
 * record gets index and is applied to the state before done runs. */
static void carry(ig_decision *d, int status, uint64_t index, uint16_t want_type, ig_decision *out)
{
	cr_assert_eq(d->kind, IG_DECISION_APPEND);
	cr_assert_eq(d->rec_type, want_type);
	uint8_t body[512];
	cr_assert_leq(d->body_len, sizeof body);
	memcpy(body, d->body, d->body_len);
	ig_record rec;
	memset(&rec, 0, sizeof rec);
	rec.index = index;
	rec.type = d->rec_type;
	rec.body = body;
	rec.body_len = (uint32_t)d->body_len;
	if (status == IG_OK) {
		ig_error err = {0};
		cr_assert_eq(ig_state_apply(st, &rec, &err), IG_OK, "%s", err.msg);
	}
	fx_complete(d, status, status == IG_OK || status == IG_ERR_UNKNOWN ? &rec : NULL, out);
}

static void expect_welcome(const ig_decision *d, const char *id, const char *role, uint64_t index)
{
	cr_assert_eq(d->kind, IG_DECISION_REPLY, "kind %d (%s)", d->kind, d->message);
	cr_assert_eq(d->n_replies, 1);
	cr_expect_str_eq(d->replies[0].to, id);
	char *got = cJSON_PrintUnformatted(d->replies[0].body);
	char want[512], pk[65];
	ig_hex_encode(pk, ch_pk, 32);
	snprintf(want, sizeof want,
	         "{\"type\":\"welcome\",\"cluster\":\"demo\",\"id\":\"%s\",\"role\":\"%s\",\"ch_pubkey\":\"%s\","
	         "\"index\":%llu}", id, role, pk, (unsigned long long)index);
	cr_expect_str_eq(got, want);
	free(got);
}

Test(svc_join, a_durable_join_is_welcomed_after_both_records)
{
	char code[IG_JOIN_CODE_TEXT_LEN + 1];
	uint8_t cid[8];
	new_code(code, cid, IG_ROLE_DEVICE, NOW + 600, true);
	ig_svc_join_ticket t;
	ticket_for(&t, "newdev", cid);

	ig_decision d = {0}, d2 = {0}, d3 = {0};
	ig_svc_join_request(&d, svc, st, "newdev", &t, NOW);
	cr_assert_eq(d.kind, IG_DECISION_APPEND);
	cr_assert_eq(d.rec_type, IG_REC_ENROLL, "the ENROLL first: it alone decides the join");
	ig_enroll e;
	ig_error err = {0};
	cr_assert_eq(ig_record_enroll_decode(d.body, d.body_len, &e, &err), IG_OK, "%s", err.msg);
	char by[64], hex[17];
	ig_hex_encode(hex, cid, 8);
	snprintf(by, sizeof by, "join:%s", hex);
	cr_expect_str_eq(e.id, "newdev");
	cr_expect_eq(e.role, IG_ROLE_DEVICE);
	cr_expect_eq(memcmp(e.pk, dev_pk, 32), 0);
	cr_expect_str_eq(e.by, by);
	cr_expect(e.has_join_code);
	cr_expect_eq(memcmp(e.join_code, cid, 8), 0);

	/* while it is written: the id is reserved, the code in flight, a
	 * repeated request is ignored and another holder of the code refused */
	cr_expect(ig_svc_join_in_flight(svc, "newdev"));
	const ig_identity *idn = ig_registry_find(ig_state_registry(st), "newdev", 6);
	cr_assert_not_null(idn);
	cr_expect_eq(idn->status, IG_ID_PENDING);
	cr_expect(ig_joincodes_find(ig_state_joincodes(st), cid)->in_flight);
	ig_decision again = {0};
	ig_svc_join_request(&again, svc, st, "newdev", &t, NOW);
	cr_expect_eq(again.kind, IG_DECISION_NONE);
	ig_svc_join_ticket t2;
	ticket_for(&t2, "rival", cid);
	ig_svc_join_request(&again, svc, st, "rival", &t2, NOW);
	fx_expect_refusal(&again, "join", "code_used", "", "already been used");
	ig_decision_clear(&again);

	/* the ENROLL is durable: nothing is answered yet, JOIN_USED follows */
	carry(&d, IG_OK, 7, IG_REC_ENROLL, &d2);
	cr_assert_eq(d2.kind, IG_DECISION_APPEND, "JOIN_USED is chained from the ENROLL's done");
	cr_assert_eq(d2.rec_type, IG_REC_JOIN_USED);
	ig_join_used u;
	cr_assert_eq(ig_record_join_used_decode(d2.body, d2.body_len, &u, &err), IG_OK, "%s", err.msg);
	cr_expect_str_eq(u.id, "newdev");
	cr_expect_eq(memcmp(u.code_id, cid, 8), 0);
	cr_expect_eq(joined_calls, 0);
	cr_expect_eq(ig_svc_join_get_counts(svc).completed, 0);

	carry(&d2, IG_OK, 8, IG_REC_JOIN_USED, &d3);
	expect_welcome(&d3, "newdev", "device", 7);
	ig_decision_clear(&d3);
	cr_expect_eq(joined_calls, 1);
	cr_expect_str_eq(joined_id, "newdev");
	cr_expect_eq(joined_role, IG_ROLE_DEVICE);
	cr_expect_eq(joined_index, 7);
	ig_svc_join_counts n = ig_svc_join_get_counts(svc);
	cr_expect_eq(n.completed, 1);
	cr_expect_eq(n.failed, 0);
	cr_expect_not(ig_svc_join_in_flight(svc, "newdev"));
	cr_expect_not_null(ig_state_active(st, "newdev", IG_ROLE_DEVICE));
	const ig_join_code_entry *c = ig_joincodes_find(ig_state_joincodes(st), cid);
	cr_expect_eq(c->status, IG_CODE_USED);
	cr_expect_not(c->in_flight);

	/* the code is spent, also for the very session that used it */
	ig_decision after = {0};
	ig_svc_join_request(&after, svc, st, "newdev", &t, NOW);
	fx_expect_refusal(&after, "join", "code_used", "", NULL);
	ig_decision_clear(&after);
}

Test(svc_join, a_lost_join_used_still_welcomes)
{
	char code[IG_JOIN_CODE_TEXT_LEN + 1];
	uint8_t cid[8];
	new_code(code, cid, IG_ROLE_DEVICE, NOW + 600, true);
	ig_svc_join_ticket t;
	ticket_for(&t, "newdev", cid);
	ig_decision d = {0}, d2 = {0}, d3 = {0};
	ig_svc_join_request(&d, svc, st, "newdev", &t, NOW);
	carry(&d, IG_OK, 3, IG_REC_ENROLL, &d2);
	carry(&d2, IG_ERR_IO, 0, IG_REC_JOIN_USED, &d3);
	expect_welcome(&d3, "newdev", "device", 3);
	ig_decision_clear(&d3);
	cr_expect_eq(ig_svc_join_get_counts(svc).completed, 1);
	cr_expect_eq(ig_joincodes_find(ig_state_joincodes(st), cid)->status, IG_CODE_USED,
	             "the durable ENROLL consumed the code by itself");
}

/* An ENROLL that is not durable: the reservation goes, the code is usable
 * again, and the answer says whether it may have happened. */
static void enroll_fails(int status, const char *error, const char *part)
{
	char code[IG_JOIN_CODE_TEXT_LEN + 1];
	uint8_t cid[8];
	new_code(code, cid, IG_ROLE_DEVICE, NOW + 600, true);
	ig_svc_join_ticket t;
	ticket_for(&t, "newdev", cid);
	ig_decision d = {0}, d2 = {0};
	ig_svc_join_request(&d, svc, st, "newdev", &t, NOW);
	carry(&d, status, 4, IG_REC_ENROLL, &d2);
	fx_expect_refusal(&d2, "join", error, "", part);
	ig_decision_clear(&d2);
	ig_svc_join_counts n = ig_svc_join_get_counts(svc);
	cr_expect_eq(n.completed, 0);
	cr_expect_eq(n.failed, 1);
	cr_expect_eq(joined_calls, 0);
	cr_expect_not(ig_svc_join_in_flight(svc, "newdev"));
	cr_expect_null(ig_registry_find(ig_state_registry(st), "newdev", 6), "the reservation is released");
	const ig_join_code_entry *c = ig_joincodes_find(ig_state_joincodes(st), cid);
	cr_expect_eq(c->status, IG_CODE_UNUSED);
	cr_expect_not(c->in_flight);
	/* and the same session may try again */
	ig_svc_join_request(&d, svc, st, "newdev", &t, NOW);
	cr_expect_eq(d.kind, IG_DECISION_APPEND);
	ig_decision_clear(&d);
}

Test(svc_join, an_enroll_of_unknown_fate_is_outcome_unknown)
{
	enroll_fails(IG_ERR_UNKNOWN, "outcome_unknown", "connect with your key");
}

Test(svc_join, an_enroll_not_written_is_storage_failed)
{
	enroll_fails(IG_ERR_IO, "storage_failed", "nothing was recorded");
}

Test(svc_join, an_enroll_refused_for_a_full_disk_says_so)
{
	enroll_fails(IG_ERR_NOSPACE, "storage_failed", "disk is full");
}

Test(svc_join, every_request_refusal)
{
	char code[IG_JOIN_CODE_TEXT_LEN + 1];
	uint8_t cid[8];
	new_code(code, cid, IG_ROLE_DEVICE, NOW + 600, true);
	ig_svc_join_ticket t;
	ticket_for(&t, "newdev", cid);
	ig_decision d = {0};

	ig_svc_join_request(&d, svc, st, "dev1", NULL, NOW);
	fx_expect_refusal(&d, "join", "not_joining", "", "join token");
	ig_decision_clear(&d);
	ig_svc_join_request(&d, svc, st, "dev1", &t, NOW);
	fx_expect_refusal(&d, "join", "not_joining", "", NULL);   /* another session's ticket */
	ig_decision_clear(&d);

	/* the code expired since the session opened */
	ig_svc_join_request(&d, svc, st, "newdev", &t, NOW + 600);
	fx_expect_refusal(&d, "join", "code_expired", "", "ask an admin");
	ig_decision_clear(&d);

	/* an unknown code (the ledger lost nothing, but a ticket could be stale) */
	ig_svc_join_ticket stale;
	uint8_t nocode[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	ticket_for(&stale, "newdev", nocode);
	ig_svc_join_request(&d, svc, st, "newdev", &stale, NOW);
	fx_expect_refusal(&d, "join", "code_used", "", NULL);
	ig_decision_clear(&d);

	/* an admin enrolled the id since the session opened */
	fx_enroll(st, "newdev", IG_ROLE_DEVICE, ch_pk);
	ig_svc_join_request(&d, svc, st, "newdev", &t, NOW);
	fx_expect_refusal(&d, "join", "id_taken", "", "--reenroll");
	ig_decision_clear(&d);
	cr_expect_not(ig_joincodes_find(ig_state_joincodes(st), cid)->in_flight, "a refusal leaves the code alone");
	/* and revoked it: still never a code's to claim */
	fx_revoke(st, "newdev");
	ig_svc_join_request(&d, svc, st, "newdev", &t, NOW);
	fx_expect_refusal(&d, "join", "id_taken", "", NULL);
	ig_decision_clear(&d);

	/* the code used by another id */
	ig_join_used u = {0};
	memcpy(u.code_id, cid, 8);
	snprintf(u.id, sizeof u.id, "someone");
	uint8_t body[256];
	int len = ig_record_join_used_encode(body, sizeof body, &u);
	fx_apply(st, IG_REC_JOIN_USED, body, (size_t)len);
	ticket_for(&t, "fresh", cid);
	ig_svc_join_request(&d, svc, st, "fresh", &t, NOW);
	fx_expect_refusal(&d, "join", "code_used", "", NULL);
	ig_decision_clear(&d);
	cr_expect_null(ig_registry_find(ig_state_registry(st), "fresh", 5), "a refusal reserves nothing");
	cr_expect_eq(ig_svc_join_get_counts(svc).failed, 0, "refusals are not failed joins");
}

Test(svc_join, a_join_outliving_the_service_answers_nothing)
{
	char code[IG_JOIN_CODE_TEXT_LEN + 1];
	uint8_t cid[8];
	new_code(code, cid, IG_ROLE_DEVICE, NOW + 600, true);
	ig_svc_join_ticket t;
	ticket_for(&t, "newdev", cid);
	ig_decision d = {0}, out = {0};
	ig_svc_join_request(&d, svc, st, "newdev", &t, NOW);
	ig_svc_join_free(svc);
	svc = NULL;
	carry(&d, IG_ERR_CLOSED, 0, IG_REC_ENROLL, &out);
	cr_expect_eq(out.kind, IG_DECISION_NONE);
}

/* ---- a shared ledger: another broker's join came first ----------------------- */

Test(svc_join, an_unreachable_database_is_storage_failed_and_the_code_stays_usable)
{
	enroll_fails(IG_ERR_UNAVAILABLE, "storage_failed", "unreachable");
}

/* Another broker's enroll of id (through code, when given), as following
 * applies it to this state before our own record's refusal comes back. */
static void follow_enroll(const char *id, const uint8_t *code, uint64_t index)
{
	ig_enroll e = {.role = IG_ROLE_DEVICE};
	uint8_t sk[64];
	snprintf(e.id, sizeof e.id, "%s", id);
	tu_seed_keypair(e.pk, sk, 0x77);
	snprintf(e.by, sizeof e.by, "elsewhere");
	if (code) {
		e.has_join_code = true;
		memcpy(e.join_code, code, 8);
	}
	uint8_t body[512];
	int n = ig_record_enroll_encode(body, sizeof body, &e);
	cr_assert_gt(n, 0);
	ig_record rec = {.index = index, .type = IG_REC_ENROLL, .body = body, .body_len = (uint32_t)n};
	ig_error err = {0};
	cr_assert_eq(ig_state_apply(st, &rec, &err), IG_OK, "%s", err.msg);
}

Test(svc_join, a_code_used_first_through_another_broker_is_code_used)
{
	char code[IG_JOIN_CODE_TEXT_LEN + 1];
	uint8_t cid[8];
	new_code(code, cid, IG_ROLE_DEVICE, NOW + 600, true);
	ig_svc_join_ticket t;
	ticket_for(&t, "newdev", cid);
	ig_decision d = {0}, d2 = {0};
	ig_svc_join_request(&d, svc, st, "newdev", &t, NOW);
	follow_enroll("rival", cid, 5);
	carry(&d, IG_ERR_CONFLICT, 0, IG_REC_ENROLL, &d2);
	fx_expect_refusal(&d2, "join", "code_used", "", "another broker");
	ig_decision_clear(&d2);
	cr_expect_null(ig_registry_find(ig_state_registry(st), "newdev", 6), "the reservation is released");
	cr_expect_not_null(ig_state_active(st, "rival", IG_ROLE_DEVICE));
	const ig_join_code_entry *c = ig_joincodes_find(ig_state_joincodes(st), cid);
	cr_expect_eq(c->status, IG_CODE_USED);
	cr_expect_not(c->in_flight);
	cr_expect_eq(ig_svc_join_get_counts(svc).failed, 1);
	cr_expect_eq(joined_calls, 0);
	cr_expect_not(ig_svc_join_in_flight(svc, "newdev"));
	/* final: the same session asking again gets the same word */
	ig_svc_join_request(&d, svc, st, "newdev", &t, NOW);
	fx_expect_refusal(&d, "join", "code_used", "", NULL);
	ig_decision_clear(&d);
}

Test(svc_join, an_id_enrolled_first_through_another_broker_is_id_taken_and_keeps_the_code)
{
	char code[IG_JOIN_CODE_TEXT_LEN + 1];
	uint8_t cid[8];
	new_code(code, cid, IG_ROLE_DEVICE, NOW + 600, true);
	ig_svc_join_ticket t;
	ticket_for(&t, "newdev", cid);
	ig_decision d = {0}, d2 = {0};
	ig_svc_join_request(&d, svc, st, "newdev", &t, NOW);
	follow_enroll("newdev", NULL, 5);   /* an admin enrolled the id by key elsewhere */
	carry(&d, IG_ERR_CONFLICT, 0, IG_REC_ENROLL, &d2);
	fx_expect_refusal(&d2, "join", "id_taken", "", "another broker");
	ig_decision_clear(&d2);
	const ig_identity *idn = ig_state_active(st, "newdev", IG_ROLE_DEVICE);
	cr_assert_not_null(idn, "the other broker's enrolment stands");
	cr_expect_neq(memcmp(idn->pk, dev_pk, 32), 0, "with the other broker's key");
	const ig_join_code_entry *c = ig_joincodes_find(ig_state_joincodes(st), cid);
	cr_expect_eq(c->status, IG_CODE_UNUSED, "the code was not used: a join with another id may use it");
	cr_expect_not(c->in_flight);
}
