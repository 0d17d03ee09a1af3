/*
 * test_custody_state.c: the custody records' state rules (ig_custody_view.h)
 * as ig_state_apply runs them, the view ig_state_custody() gives the
 * custody service, and the zone an enroll record gives an identity.
 * Every custody rule of docs/LEDGER.md (after 7.16) has its own refusal
 * test here, and each one checks that the refused record changed nothing.
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "ig_ledger.h"

#include "ig_custody_view.h"
#include "ig_state.h"
#include "svc_fixture.h"
#include "testutil.h"

static ig_state *st;
static uint64_t next_index;

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	st = ig_state_new();
	cr_assert_not_null(st);
	next_index = 1;
	uint8_t pk[32], sk[64];
	const char *ids[] = {"d1", "d2", "d3", "d4"};
	for (int i = 0; i < 4; i++) {
		tu_seed_keypair(pk, sk, (uint8_t)(i + 1));
		uint8_t body[512];
		ig_record rec = {.index = next_index++, .ts_ms = 1000, .type = IG_REC_ENROLL, .body = body,
		                 .body_len = (uint32_t)tu_enroll_body(body, sizeof body, ids[i], IG_ROLE_DEVICE, pk, "admin")};
		ig_error err = {0};
		cr_assert_eq(ig_state_apply(st, &rec, &err), IG_OK, "%s", err.msg);
	}
}

static void teardown(void)
{
	ig_state_free(st);
}

/* Applies a body; an accepted record takes the next index, at time ts. */
static int apply_at(uint16_t type, const uint8_t *body, int len, uint64_t ts, ig_error *err)
{
	cr_assert_gt(len, 0, "the test's record must encode");
	ig_record rec = {.index = next_index, .ts_ms = ts, .type = type, .body = body, .body_len = (uint32_t)len};
	int rc = ig_state_apply(st, &rec, err);
	if (rc == IG_OK)
		next_index++;
	return rc;
}

static ig_custody_epoch_rec *epoch_rec(uint64_t epoch, unsigned k, const char *const *holders, unsigned n,
                                       uint8_t c0_first)
{
	static ig_custody_epoch_rec c;
	memset(&c, 0, sizeof c);
	c.epoch = epoch;
	c.k = (uint8_t)k;
	c.n = (uint8_t)n;
	c.holder_count = n;
	for (unsigned i = 0; i < n; i++)
		snprintf(c.holders[i], sizeof c.holders[i], "%s", holders[i]);
	c.commitment_count = k;
	for (unsigned j = 0; j < k; j++)
		tu_seq_bytes(c.commitments[j], 32, (uint8_t)(j == 0 ? c0_first : (uint8_t)(epoch * 16 + j)));
	snprintf(c.reason, sizeof c.reason, "timer");
	snprintf(c.by, sizeof c.by, "cluster-head");
	return &c;
}

static int deal(const ig_custody_epoch_rec *c, uint64_t ts, ig_error *err)
{
	static uint8_t body[32768];
	return apply_at(IG_REC_CUSTODY_EPOCH, body, ig_record_custody_epoch_encode(body, sizeof body, c), ts, err);
}

static int deal3(uint64_t epoch, ig_error *err)
{
	static const char *const h[] = {"d1", "d2", "d3"};
	return deal(epoch_rec(epoch, 2, h, 3, 0xc0), 2000 + epoch, err);
}

static int activate(uint64_t epoch, uint64_t ts, ig_error *err)
{
	uint8_t body[64];
	ig_custody_active_rec a = {.epoch = epoch};
	return apply_at(IG_REC_CUSTODY_ACTIVE, body, ig_record_custody_active_encode(body, sizeof body, &a), ts, err);
}

static int bad_share(uint64_t epoch, const char *holder, ig_error *err)
{
	uint8_t body[512];
	ig_custody_bad_share_rec b = {.epoch = epoch};
	snprintf(b.holder, sizeof b.holder, "%s", holder);
	snprintf(b.reason, sizeof b.reason, "the share does not match the commitments");
	return apply_at(IG_REC_CUSTODY_BAD_SHARE, body, ig_record_custody_bad_share_encode(body, sizeof body, &b), 5000,
	                err);
}

static int seal(uint64_t epoch, uint8_t c0_first, ig_error *err)
{
	uint8_t body[256];
	ig_custody_sealed_rec s = {.epoch = epoch};
	tu_seq_bytes(s.c0, 32, c0_first);
	snprintf(s.by, sizeof s.by, "admin1");
	return apply_at(IG_REC_CUSTODY_SEALED, body, ig_record_custody_sealed_encode(body, sizeof body, &s), 6000, err);
}

/* A copy of the view, to show a refusal changed nothing. */
static ig_custody_view *snapshot(void)
{
	ig_custody_view *v = malloc(sizeof *v);
	cr_assert_not_null(v);
	memcpy(v, ig_state_custody(st), sizeof *v);
	return v;
}

static void expect_unchanged(ig_custody_view *before)
{
	cr_expect_eq(memcmp(before, ig_state_custody(st), sizeof *before), 0, "a refused record changed the view");
	free(before);
}

Test(custody_state, starts_empty, .init = setup, .fini = teardown)
{
	const ig_custody_view *v = ig_state_custody(st);
	cr_assert_not_null(v);
	cr_expect_eq(v->dealt.epoch, 0);
	cr_expect_eq(v->active.epoch, 0);
	cr_expect_not(v->sealed);
	cr_expect_eq(v->bad_shares, 0);
	cr_expect_eq(ig_custody_view_index(v, 1, "d1"), 0);
	cr_expect_null(ig_custody_view_epoch(v, 0));
}

Test(custody_state, deal_activate_seal_and_read_back, .init = setup, .fini = teardown)
{
	ig_error err = {0};
	cr_assert_eq(deal3(1, &err), IG_OK, "%s", err.msg);
	const ig_custody_view *v = ig_state_custody(st);
	cr_expect_eq(v->dealt.epoch, 1);
	cr_expect_eq(v->dealt.k, 2);
	cr_expect_eq(v->dealt.n, 3);
	cr_expect_str_eq(v->dealt.holders[2], "d3");
	cr_expect_str_eq(v->dealt.reason, "timer");
	cr_expect_eq(v->dealt.dealt_ms, 2001);
	cr_expect_eq(v->dealt.dealt_index, 5);
	cr_expect_eq(v->active.epoch, 0, "dealt is not active until custody_active");
	cr_expect_eq(ig_custody_view_index(v, 1, "d2"), 2);
	cr_expect_eq(ig_custody_view_index(v, 1, "d4"), 0, "d4 holds no share");
	cr_expect_eq(ig_custody_view_index(v, 2, "d2"), 0, "epoch 2 was never dealt");

	cr_assert_eq(activate(1, 3000, &err), IG_OK, "%s", err.msg);
	cr_expect_eq(v->active.epoch, 1);
	cr_expect_eq(v->active.active_ms, 3000);
	uint8_t c0[32];
	tu_seq_bytes(c0, 32, 0xc0);
	cr_expect_eq(memcmp(v->active.commitments[0], c0, 32), 0);

	cr_assert_eq(bad_share(1, "d3", &err), IG_OK, "%s", err.msg);
	cr_expect_eq(v->bad_shares, 1);

	cr_assert_eq(seal(1, 0xc0, &err), IG_OK, "%s", err.msg);
	cr_expect(v->sealed);
	cr_expect_eq(v->sealed_epoch, 1);
	cr_expect_eq(memcmp(v->c0, c0, 32), 0);
	cr_expect_eq(v->sealed_ms, 6000);

	/* A rotation: epoch 2 is dealt while 1 stays active until 2 is. */
	static const char *const h2[] = {"d2", "d3", "d4"};
	cr_assert_eq(deal(epoch_rec(2, 3, h2, 3, 0xc0), 7000, &err), IG_OK, "%s", err.msg);
	cr_expect_eq(v->dealt.epoch, 2);
	cr_expect_eq(v->active.epoch, 1);
	cr_expect_eq(ig_custody_view_index(v, 1, "d1"), 1, "the active epoch stays readable");
	cr_expect_eq(ig_custody_view_index(v, 2, "d4"), 3);
	cr_assert_eq(activate(2, 8000, &err), IG_OK, "%s", err.msg);
	cr_expect_eq(v->active.epoch, 2);
	cr_expect_eq(ig_custody_view_index(v, 1, "d1"), 0, "an older epoch is void once a newer one is active");
	cr_expect(v->sealed, "sealed stays sealed across rotations");
}

Test(custody_state, refuses_an_epoch_not_above_the_newest, .init = setup, .fini = teardown)
{
	ig_error err = {0};
	cr_assert_eq(deal3(3, &err), IG_OK, "%s", err.msg);
	ig_custody_view *before = snapshot();
	cr_expect_eq(deal3(3, &err), IG_ERR_CORRUPT, "the same epoch again");
	cr_expect(strstr(err.msg, "not above the newest dealt epoch 3") != NULL, "%s", err.msg);
	cr_expect_eq(deal3(2, &err), IG_ERR_CORRUPT, "an older epoch");
	expect_unchanged(before);
}

Test(custody_state, refuses_a_holder_listed_twice, .init = setup, .fini = teardown)
{
	static const char *const h[] = {"d1", "d2", "d1"};
	ig_error err = {0};
	ig_custody_view *before = snapshot();
	cr_expect_eq(deal(epoch_rec(1, 2, h, 3, 0xc0), 2000, &err), IG_ERR_CORRUPT);
	cr_expect(strstr(err.msg, "'d1' is listed twice") != NULL, "%s", err.msg);
	expect_unchanged(before);
}

Test(custody_state, refuses_a_holder_never_enrolled, .init = setup, .fini = teardown)
{
	static const char *const h[] = {"d1", "ghost", "d2"};
	ig_error err = {0};
	ig_custody_view *before = snapshot();
	cr_expect_eq(deal(epoch_rec(1, 2, h, 3, 0xc0), 2000, &err), IG_ERR_CORRUPT);
	cr_expect(strstr(err.msg, "holder 2 'ghost' is not an active identity") != NULL, "%s", err.msg);
	expect_unchanged(before);
}

Test(custody_state, refuses_a_revoked_holder, .init = setup, .fini = teardown)
{
	uint8_t body[512];
	ig_error err = {0};
	cr_assert_eq(apply_at(IG_REC_REVOKE, body, (int)tu_revoke_body(body, sizeof body, "d3", "admin"), 1500, &err), IG_OK,
	             "%s", err.msg);
	ig_custody_view *before = snapshot();
	cr_expect_eq(deal3(1, &err), IG_ERR_CORRUPT);
	cr_expect(strstr(err.msg, "'d3' is not an active identity") != NULL, "%s", err.msg);
	expect_unchanged(before);
}

Test(custody_state, a_revocation_still_in_flight_is_later_in_the_log, .init = setup, .fini = teardown)
{
	/* The plugin marks an id revoked before its revoke record is durable;
	 * an epoch record appended before that revoke names a holder that is
	 * still active at its place in the log, and a replay agrees. */
	cr_assert_eq(ig_registry_mark_revoked(ig_state_registry(st), "d3", 0), IG_OK);
	ig_error err = {0};
	cr_expect_eq(deal3(1, &err), IG_OK, "%s", err.msg);
}

Test(custody_state, refuses_activating_anything_but_the_newest_dealt, .init = setup, .fini = teardown)
{
	ig_error err = {0};
	ig_custody_view *before = snapshot();
	cr_expect_eq(activate(1, 3000, &err), IG_ERR_CORRUPT, "nothing was dealt");
	cr_expect(strstr(err.msg, "not the newest dealt epoch (0)") != NULL, "%s", err.msg);
	expect_unchanged(before);

	cr_assert_eq(deal3(1, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(deal3(2, &err), IG_OK, "%s", err.msg);
	before = snapshot();
	cr_expect_eq(activate(1, 3000, &err), IG_ERR_CORRUPT, "epoch 1 was superseded by 2");
	cr_expect_eq(activate(3, 3000, &err), IG_ERR_CORRUPT, "epoch 3 was never dealt");
	expect_unchanged(before);
}

Test(custody_state, refuses_activating_twice, .init = setup, .fini = teardown)
{
	ig_error err = {0};
	cr_assert_eq(deal3(1, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(activate(1, 3000, &err), IG_OK, "%s", err.msg);
	ig_custody_view *before = snapshot();
	cr_expect_eq(activate(1, 3100, &err), IG_ERR_CORRUPT);
	cr_expect(strstr(err.msg, "already active") != NULL, "%s", err.msg);
	expect_unchanged(before);
}

Test(custody_state, refuses_a_bad_share_of_an_unknown_epoch_or_holder, .init = setup, .fini = teardown)
{
	ig_error err = {0};
	ig_custody_view *before = snapshot();
	cr_expect_eq(bad_share(1, "d1", &err), IG_ERR_CORRUPT, "nothing dealt");
	expect_unchanged(before);
	cr_assert_eq(deal3(1, &err), IG_OK, "%s", err.msg);
	before = snapshot();
	cr_expect_eq(bad_share(1, "d4", &err), IG_ERR_CORRUPT, "d4 holds no share of epoch 1");
	cr_expect(strstr(err.msg, "'d4' holds no share of epoch 1") != NULL, "%s", err.msg);
	cr_expect_eq(bad_share(2, "d1", &err), IG_ERR_CORRUPT, "epoch 2 was never dealt");
	expect_unchanged(before);
}

Test(custody_state, refuses_sealing_without_an_active_epoch, .init = setup, .fini = teardown)
{
	ig_error err = {0};
	cr_assert_eq(deal3(1, &err), IG_OK, "%s", err.msg);
	ig_custody_view *before = snapshot();
	cr_expect_eq(seal(1, 0xc0, &err), IG_ERR_CORRUPT, "epoch 1 is dealt, not active");
	cr_expect(strstr(err.msg, "not the active epoch (0)") != NULL, "%s", err.msg);
	expect_unchanged(before);
}

Test(custody_state, refuses_sealing_another_epoch, .init = setup, .fini = teardown)
{
	ig_error err = {0};
	cr_assert_eq(deal3(1, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(activate(1, 3000, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(deal3(2, &err), IG_OK, "%s", err.msg);
	ig_custody_view *before = snapshot();
	cr_expect_eq(seal(2, 0xc0, &err), IG_ERR_CORRUPT, "epoch 2 is dealt but 1 is the active one");
	expect_unchanged(before);
}

Test(custody_state, refuses_sealing_with_another_c0, .init = setup, .fini = teardown)
{
	ig_error err = {0};
	cr_assert_eq(deal3(1, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(activate(1, 3000, &err), IG_OK, "%s", err.msg);
	ig_custody_view *before = snapshot();
	cr_expect_eq(seal(1, 0xc1, &err), IG_ERR_CORRUPT);
	cr_expect(strstr(err.msg, "c0 is not commitment 0 of epoch 1") != NULL, "%s", err.msg);
	expect_unchanged(before);
}

Test(custody_state, once_sealed_refuses_an_epoch_for_another_secret, .init = setup, .fini = teardown)
{
	ig_error err = {0};
	cr_assert_eq(deal3(1, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(activate(1, 3000, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(seal(1, 0xc0, &err), IG_OK, "%s", err.msg);
	static const char *const h[] = {"d1", "d2", "d3"};
	ig_custody_view *before = snapshot();
	cr_expect_eq(deal(epoch_rec(2, 2, h, 3, 0xc1), 7000, &err), IG_ERR_CORRUPT);
	cr_expect(strstr(err.msg, "not the sealed key's c0") != NULL, "%s", err.msg);
	expect_unchanged(before);
}

Test(custody_state, refuses_bodies_whose_counts_disagree, .init = setup, .fini = teardown)
{
	static const char *const h[] = {"d1", "d2", "d3"};
	uint8_t body[32768];
	ig_custody_epoch_rec *c = epoch_rec(1, 2, h, 3, 0xc0);
	c->n = 4; /* three holders named */
	cr_expect_eq(ig_record_custody_epoch_encode(body, sizeof body, c), IG_ERR_INVAL, "the writer refuses it too");
	c = epoch_rec(1, 3, h, 3, 0xc0);
	c->commitment_count = 2;
	cr_expect_eq(ig_record_custody_epoch_encode(body, sizeof body, c), IG_ERR_INVAL);
	c = epoch_rec(1, 3, h, 2, 0xc0); /* k = 3 > n = 2 */
	cr_expect_eq(ig_record_custody_epoch_encode(body, sizeof body, c), IG_ERR_INVAL);

	/* Hand-made: a valid body, then n changed on the wire from 3 to 4. */
	c = epoch_rec(1, 2, h, 3, 0xc0);
	int len = ig_record_custody_epoch_encode(body, sizeof body, c);
	cr_assert_gt(len, 0);
	ig_tlv_iter it;
	uint8_t tag;
	const uint8_t *val;
	uint16_t vlen;
	ig_record_tlv_iter_init(&it, body, (size_t)len);
	while (ig_record_tlv_next(&it, &tag, &val, &vlen) == 1)
		if (tag == IG_TAG_CUSTODY_N)
			body[val - body] = 4;
	ig_error err = {0};
	ig_custody_view *before = snapshot();
	cr_expect_eq(apply_at(IG_REC_CUSTODY_EPOCH, body, len, 2000, &err), IG_ERR_CORRUPT);
	cr_expect(strstr(err.msg, "3 holders for n = 4") != NULL, "%s", err.msg);
	expect_unchanged(before);
}

/* ---- zones ----------------------------------------------------------------- */

static int enroll_zone(const char *id, const char *zone, uint8_t key, ig_error *err)
{
	uint8_t body[512];
	ig_enroll e;
	memset(&e, 0, sizeof e);
	snprintf(e.id, sizeof e.id, "%s", id);
	e.role = IG_ROLE_DEVICE;
	uint8_t sk[64];
	tu_seed_keypair(e.pk, sk, key);
	snprintf(e.by, sizeof e.by, "admin");
	if (zone) {
		e.has_zone = true;
		snprintf(e.zone, sizeof e.zone, "%s", zone);
	}
	return apply_at(IG_REC_ENROLL, body, ig_record_enroll_encode(body, sizeof body, &e), 1000, err);
}

Test(custody_state, an_enrolment_zone_is_reachable_and_a_reenrolment_replaces_it, .init = setup, .fini = teardown)
{
	ig_error err = {0};
	cr_assert_eq(enroll_zone("z1", "north-1", 9, &err), IG_OK, "%s", err.msg);
	cr_expect_str_eq(ig_state_zone(st, "z1"), "north-1");
	cr_expect_null(ig_state_zone(st, "d1"), "enrolled without a zone");
	cr_expect_null(ig_state_zone(st, "nobody"));

	uint8_t body[512];
	cr_assert_eq(apply_at(IG_REC_REVOKE, body, (int)tu_revoke_body(body, sizeof body, "z1", "admin"), 1500, &err), IG_OK,
	             "%s", err.msg);
	cr_assert_eq(enroll_zone("z1", NULL, 10, &err), IG_OK, "%s", err.msg);
	cr_expect_null(ig_state_zone(st, "z1"), "the new enrolment named no zone");
}

Test(custody_state, an_enroll_without_a_zone_keeps_its_bytes, .init = setup, .fini = teardown)
{
	/* The optional tag is absent unless set: an enroll body is exactly the
	 * bytes it was before zones existed. */
	uint8_t pk[32], sk[64], with[512], without[512];
	tu_seed_keypair(pk, sk, 7);
	size_t n = tu_enroll_body(without, sizeof without, "x1", IG_ROLE_DEVICE, pk, "admin");
	ig_enroll e;
	ig_error err = {0};
	cr_assert_eq(ig_record_enroll_decode(without, n, &e, &err), IG_OK, "%s", err.msg);
	cr_expect_not(e.has_zone);
	cr_assert_eq(ig_record_enroll_encode(with, sizeof with, &e), (int)n);
	cr_expect_eq(memcmp(with, without, n), 0);
	e.has_zone = true;
	snprintf(e.zone, sizeof e.zone, "bad zone");
	cr_expect_eq(ig_record_enroll_encode(with, sizeof with, &e), IG_ERR_INVAL, "a zone is an id: no spaces");
	snprintf(e.zone, sizeof e.zone, "rack-7");
	int m = ig_record_enroll_encode(with, sizeof with, &e);
	cr_assert_eq(m, (int)n + 3 + 6, "one more TLV: tag 6, length 6, \"rack-7\"");
	cr_expect_eq(memcmp(with, without, n), 0);
	cr_expect_eq(with[n], 6);
	cr_expect_eq(memcmp(with + n + 3, "rack-7", 6), 0);
}

/* ---- the bodies of docs/LEDGER.md section 12 ------------------------------ */

#define G1_HEX "e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76"
#define G2_HEX "6a493210f7499cd17fecb510ae0cea23a110e8d5b901f8acadd3095c73a3b919"

Test(custody_vectors, documented_bodies, .init = setup, .fini = teardown)
{
	/* The Python vectors take 1·G and 2·G from RFC 9496; libsodium agrees. */
	uint8_t s[32] = {1}, p[32], g1[32], g2[32];
	tu_unhex(g1, sizeof g1, G1_HEX);
	tu_unhex(g2, sizeof g2, G2_HEX);
	cr_assert_eq(crypto_scalarmult_ristretto255_base(p, s), 0);
	cr_expect_eq(memcmp(p, g1, 32), 0);
	s[0] = 2;
	cr_assert_eq(crypto_scalarmult_ristretto255_base(p, s), 0);
	cr_expect_eq(memcmp(p, g2, 32), 0);

	static uint8_t body[32768];
	ig_enroll e;
	memset(&e, 0, sizeof e);
	snprintf(e.id, sizeof e.id, "dev4");
	e.role = IG_ROLE_DEVICE;
	tu_unhex(e.pk, sizeof e.pk, "29acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd7");
	snprintf(e.by, sizeof e.by, "offline:root");
	e.has_zone = true;
	snprintf(e.zone, sizeof e.zone, "north");
	int n = ig_record_enroll_encode(body, sizeof body, &e);
	cr_assert_eq(n, 69);
	tu_assert_hex(body, (size_t)n,
	              "010004646576340200010103002029acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd704"
	              "000c6f66666c696e653a726f6f740600056e6f727468");

	static const char *const h[] = {"dev1", "dev2", "dev3"};
	ig_custody_epoch_rec *c = epoch_rec(1, 2, h, 3, 0);
	memcpy(c->commitments[0], g1, 32);
	memcpy(c->commitments[1], g2, 32);
	snprintf(c->reason, sizeof c->reason, "initial");
	snprintf(c->by, sizeof c->by, "cluster-head");
	n = ig_record_custody_epoch_encode(body, sizeof body, c);
	cr_assert_eq(n, 129);
	tu_assert_hex(body, (size_t)n,
	              "0100080000000000000001020001020300010304000f046465763104646576320464657633050040" G1_HEX G2_HEX
	              "060007696e697469616c07000c636c75737465722d68656164");
	ig_custody_epoch_rec *back = malloc(sizeof *back);
	ig_error err = {0};
	cr_assert_eq(ig_record_custody_epoch_decode(body, (size_t)n, back, &err), IG_OK, "%s", err.msg);
	cr_expect_eq(memcmp(back, c, sizeof *back), 0, "decode gives back what was encoded");
	free(back);

	/* The JSON view (events, `iotguard show`): numbers for k and n, the
	 * holders as a list, the commitments with no "count". */
	ig_record rec = {.index = 7, .ts_ms = 1, .type = IG_REC_CUSTODY_EPOCH, .body = body, .body_len = (uint32_t)n};
	char *json = ig_record_to_json(&rec);
	cr_assert_not_null(json);
	cr_expect(strstr(json, "\"type\":\"custody_epoch\",") != NULL, "%s", json);
	cr_expect(strstr(json, "\"epoch\":1,\"k\":2,\"n\":3,\"holders\":[\"dev1\",\"dev2\",\"dev3\"],\"commitments\":[\"" G1_HEX
	                       "\",\"" G2_HEX "\"],\"reason\":\"initial\",\"by\":\"cluster-head\"}") != NULL,
	          "%s", json);
	free(json);

	ig_custody_active_rec a = {.epoch = 1};
	n = ig_record_custody_active_encode(body, sizeof body, &a);
	cr_assert_eq(n, 11);
	tu_assert_hex(body, (size_t)n, "0100080000000000000001");

	ig_custody_bad_share_rec b = {.epoch = 1};
	snprintf(b.holder, sizeof b.holder, "dev2");
	snprintf(b.reason, sizeof b.reason, "share does not match the commitments");
	n = ig_record_custody_bad_share_encode(body, sizeof body, &b);
	cr_assert_eq(n, 57);
	tu_assert_hex(body, (size_t)n,
	              "010008000000000000000102000464657632030024736861726520646f6573206e6f74206d617463682074686520636f6d"
	              "6d69746d656e7473");

	ig_custody_sealed_rec sl = {.epoch = 1};
	memcpy(sl.c0, g1, 32);
	snprintf(sl.by, sizeof sl.by, "admin1");
	n = ig_record_custody_sealed_encode(body, sizeof body, &sl);
	cr_assert_eq(n, 55);
	tu_assert_hex(body, (size_t)n, "0100080000000000000001020020" G1_HEX "03000661646d696e31");
}

Test(custody_vectors, holder_lists_that_do_not_parse_are_corrupt, .init = setup, .fini = teardown)
{
	/* epoch 1, k 2, n 2, a holders TLV, 2 commitments, reason, by */
	uint8_t body[512];
	size_t pos = 0;
	uint8_t e8[8] = {0, 0, 0, 0, 0, 0, 0, 1}, two = 2, c[64];
	memset(c, 0x11, sizeof c);
	const char *ids_ok = "\x04" "dev1" "\x04" "dev2";
	const char *ids_short = "\x04" "dev1" "\x05" "dev2";       /* the second runs past the field */
	const char *ids_empty = "\x04" "dev1" "\x00";               /* an empty id */
	const char *ids_bad = "\x04" "dev1" "\x04" "de v";          /* not an id */
	const char *lists[] = {ids_ok, ids_short, ids_empty, ids_bad};
	size_t lens[] = {10, 10, 6, 10};
	for (int i = 0; i < 4; i++) {
		pos = 0;
		cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 1, e8, 8), IG_OK);
		cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 2, &two, 1), IG_OK);
		cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 3, &two, 1), IG_OK);
		cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 4, lists[i], lens[i]), IG_OK);
		cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 5, c, 64), IG_OK);
		cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 6, "admin", 5), IG_OK);
		cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 7, "a", 1), IG_OK);
		ig_record rec = {.type = IG_REC_CUSTODY_EPOCH, .body = body, .body_len = (uint32_t)pos};
		ig_error err = {0};
		int rc = ig_record_body_check(&rec, &err);
		if (i == 0) {
			cr_expect_eq(rc, IG_OK, "%s", err.msg);
		} else {
			cr_expect_eq(rc, IG_ERR_CORRUPT, "list %d", i);
			cr_expect(strstr(err.msg, "'holders'") != NULL, "%s", err.msg);
		}
	}
}

/* ---- the CLI reads custody records through ig_state ------------------------ */

/* A ledger (sound chain and checkpoint) with d1..d3 enrolled, then epoch 1
 * dealt to them, then `last` (a custody_active of last_epoch). */
static const char *custody_ledger(const char *tag, uint64_t last_epoch)
{
	static char dir[512];
	snprintf(dir, sizeof dir, "%s/ledger", tu_scratch_dir(tag));
	uint8_t pk[IG_PK_BYTES], sk[64];
	ig_error err = {0};
	cr_assert_eq(ig_ledger_init(dir, "c1", pk, &err), IG_OK, "%s", err.msg);
	ig_ledger *l = NULL;
	ig_ledger_open_opts opts = {.writer = true};
	cr_assert_eq(ig_ledger_open(&l, dir, &opts, &err), IG_OK, "%s", err.msg);
	static uint8_t body[32768];
	ig_record rec;
	const char *ids[] = {"d1", "d2", "d3"};
	for (int i = 0; i < 3; i++) {
		tu_seed_keypair(pk, sk, (uint8_t)(i + 1));
		size_t n = tu_enroll_body(body, sizeof body, ids[i], IG_ROLE_DEVICE, pk, "admin");
		cr_assert_eq(ig_ledger_append(l, IG_REC_ENROLL, body, n, &rec, &err), IG_OK, "%s", err.msg);
	}
	int n = ig_record_custody_epoch_encode(body, sizeof body, epoch_rec(1, 2, ids, 3, 0xc0));
	cr_assert_gt(n, 0);
	cr_assert_eq(ig_ledger_append(l, IG_REC_CUSTODY_EPOCH, body, (size_t)n, &rec, &err), IG_OK, "%s", err.msg);
	ig_custody_active_rec a = {.epoch = last_epoch};
	n = ig_record_custody_active_encode(body, sizeof body, &a);
	cr_assert_eq(ig_ledger_append(l, IG_REC_CUSTODY_ACTIVE, body, (size_t)n, &rec, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(rec.index, 5);
	ig_ledger_close(l);
	return dir;
}

/* Runs the iotguard CLI with args; its exit status, stdout and stderr. */
static int run_cli(char *out, char *errtext, size_t cap, const char *args)
{
	const char *cli = getenv("IG_IOTGUARD");
	cr_assert_not_null(cli, "IG_IOTGUARD must name the iotguard binary (set by tests/meson.build)");
	char outfile[600], errfile[600], cmd[2048];
	snprintf(outfile, sizeof outfile, "%s/stdout", tu_scratch_dir("cli"));
	snprintf(errfile, sizeof errfile, "%s/stderr", tu_scratch_dir("cli"));
	snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>'%s'", cli, args, outfile, errfile);
	int status = system(cmd);
	cr_assert(status != -1 && WIFEXITED(status), "could not run %s", cmd);
	char *text = tu_read_file(outfile, NULL);
	snprintf(out, cap, "%s", text);
	free(text);
	text = tu_read_file(errfile, NULL);
	snprintf(errtext, cap, "%s", text);
	free(text);
	return WEXITSTATUS(status);
}

Test(custody_cli, verify_and_show_read_custody_records, .init = setup, .fini = teardown)
{
	const char *dir = custody_ledger("custody_ok", 1);
	static char out[16384], err[16384];
	char args[700];
	snprintf(args, sizeof args, "verify --ledger '%s'", dir);
	cr_expect_eq(run_cli(out, err, sizeof out, args), 0, "%s", err);
	snprintf(args, sizeof args, "show --ledger '%s'", dir);
	cr_assert_eq(run_cli(out, err, sizeof out, args), 0, "%s", err);
	cr_expect(strstr(out, "custody_epoch epoch=1 k=2 n=3 holders=d1,d2,d3 reason=timer by=cluster-head"), "%s", out);
	cr_expect(strstr(out, "custody_active epoch=1"), "%s", out);
}

Test(custody_cli, verify_refuses_activating_an_epoch_never_dealt, .init = setup, .fini = teardown)
{
	const char *dir = custody_ledger("custody_bad", 2);
	static char out[16384], err[16384];
	char args[700];
	snprintf(args, sizeof args, "verify --ledger '%s'", dir);
	cr_expect_eq(run_cli(out, err, sizeof out, args), 2, "verify must refuse it: %s", err);
	cr_expect(strstr(err, "custody_active record 5: epoch 2 is not the newest dealt epoch (1)"), "%s", err);
}
