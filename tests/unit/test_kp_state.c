/*
 * test_kp_state.c: the key-ring records' state rules (ig_kp_view.h) as
 * ig_state_apply runs them, the view ig_state_kp() gives the key-ring
 * service, the records' codec (docs/LEDGER.md 7.17-7.19) and the vectors of
 * docs/LEDGER.md section 12. Every key-ring rule has an accepted case and a
 * refused one here, and each refusal checks that the view did not change.
 */
#include <cJSON.h>
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "ig_kp.h"
#include "ig_ledger.h"
#include "ig_kp_view.h"
#include "ig_record.h"
#include "ig_state.h"
#include "testutil.h"

#define POOL 1000
#define RING 30

static ig_state *st;
static uint64_t next_index;

static void enroll(const char *id)
{
	uint8_t body[512];
	ig_record rec = {.index = next_index, .ts_ms = 1000, .type = IG_REC_ENROLL, .body = body,
	                 .body_len = (uint32_t)tu_device_enroll_body(body, sizeof body, id)};
	ig_error err = {0};
	cr_assert_eq(ig_state_apply(st, &rec, &err), IG_OK, "%s", err.msg);
	next_index++;
}

static void revoke_id(const char *id)
{
	uint8_t body[512];
	ig_record rec = {.index = next_index, .ts_ms = 1000, .type = IG_REC_REVOKE, .body = body,
	                 .body_len = (uint32_t)tu_revoke_body(body, sizeof body, id, "admin")};
	ig_error err = {0};
	cr_assert_eq(ig_state_apply(st, &rec, &err), IG_OK, "%s", err.msg);
	next_index++;
}

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	st = ig_state_new();
	cr_assert_not_null(st);
	next_index = 1;
	enroll("d1");
	enroll("d2");
	enroll("d3");
	enroll("d4");
}

static void teardown(void)
{
	ig_state_free(st);
}

/* Applies a body; an accepted record takes the next index. */
static int apply(uint16_t type, const uint8_t *body, int len, ig_error *err)
{
	cr_assert_gt(len, 0, "the test's record must encode");
	ig_record rec = {.index = next_index, .ts_ms = 2000, .type = type, .body = body, .body_len = (uint32_t)len};
	memset(err, 0, sizeof *err);
	int rc = ig_state_apply(st, &rec, err);
	if (rc == IG_OK)
		next_index++;
	return rc;
}

static void seed_of(uint8_t seed[32], uint64_t epoch)
{
	tu_seq_bytes(seed, 32, (uint8_t)(0x40 + epoch));
}

static int kp_epoch_p(uint64_t epoch, uint32_t pool, uint32_t ring, uint8_t q, const char *reason, ig_error *err)
{
	ig_kp_epoch_rec e = {.epoch = epoch, .pool = pool, .ring = ring, .q = q};
	seed_of(e.seed, epoch);
	snprintf(e.reason, sizeof e.reason, "%s", reason);
	snprintf(e.by, sizeof e.by, "demo");
	uint8_t body[512];
	return apply(IG_REC_KP_EPOCH, body, ig_record_kp_epoch_encode(body, sizeof body, &e), err);
}

static int kp_epoch(uint64_t epoch, ig_error *err)
{
	return kp_epoch_p(epoch, POOL, RING, 2, epoch == 1 ? "initial" : "rotate", err);
}

static int kp_ring(uint64_t epoch, const char *id, uint8_t hash_first, ig_error *err)
{
	ig_kp_ring_rec r = {.epoch = epoch};
	snprintf(r.id, sizeof r.id, "%s", id);
	tu_seq_bytes(r.ring_hash, sizeof r.ring_hash, hash_first);
	uint8_t body[512];
	return apply(IG_REC_KP_RING, body, ig_record_kp_ring_encode(body, sizeof body, &r), err);
}

/* id's real ring ids under the current view's parameters. */
static uint32_t ring_of(uint32_t *ids, const char *id)
{
	ig_kp_params p;
	cr_assert(ig_kp_view_params(ig_state_kp(st), &p));
	cr_assert_eq(ig_kp_ring_ids(ids, p.seed, id, p.pool, p.ring), IG_OK);
	return p.ring;
}

static int kp_compromised_ids(uint64_t epoch, const char *id, const uint32_t *ids, uint32_t n, ig_error *err)
{
	static ig_kp_compromised_rec c;
	memset(&c, 0, sizeof c);
	c.epoch = epoch;
	snprintf(c.id, sizeof c.id, "%s", id);
	c.id_count = n;
	memcpy(c.ids, ids, (size_t)n * sizeof ids[0]);
	static uint8_t body[8192];
	return apply(IG_REC_KP_COMPROMISED, body, ig_record_kp_compromised_encode(body, sizeof body, &c), err);
}

static int kp_compromised(uint64_t epoch, const char *id, ig_error *err)
{
	uint32_t ids[IG_KP_RING_MAX];
	uint32_t n = ring_of(ids, id);
	return kp_compromised_ids(epoch, id, ids, n, err);
}

/* What the view says, to show a refusal changed nothing. */
typedef struct snap {
	bool has;
	ig_kp_params p;
	size_t rings, n_bad, n_dev;
	uint32_t bad[4 * IG_KP_RING_MAX];
	char dev[8][IG_ID_MAX + 1];
	uint64_t serial;
	bool ring_d1, comp_d1;
} snap;

static snap *snapshot(void)
{
	snap *s = calloc(1, sizeof *s);
	cr_assert_not_null(s);
	const ig_kp_view *v = ig_state_kp(st);
	s->has = ig_kp_view_params(v, &s->p);
	s->rings = ig_kp_view_rings(v);
	const uint32_t *bad = ig_kp_view_compromised(v, &s->n_bad);
	cr_assert_leq(s->n_bad, 4 * IG_KP_RING_MAX);
	if (s->n_bad)
		memcpy(s->bad, bad, s->n_bad * sizeof *bad);
	const char(*dev)[IG_ID_MAX + 1];
	s->n_dev = ig_kp_view_devices(v, &dev);
	cr_assert_leq(s->n_dev, 8);
	for (size_t i = 0; i < s->n_dev; i++)
		memcpy(s->dev[i], dev[i], sizeof s->dev[i]);
	s->serial = ig_kp_view_serial(v);
	s->ring_d1 = ig_kp_view_ring(v, "d1", NULL);
	s->comp_d1 = ig_kp_view_compromised_device(v, "d1");
	return s;
}

static void expect_unchanged(snap *before)
{
	snap *now = snapshot();
	cr_expect_eq(memcmp(before, now, sizeof *before), 0, "a refused record changed the view");
	free(now);
	free(before);
}

static void expect_refused(int rc, const ig_error *err, const char *words, snap *before)
{
	cr_expect_eq(rc, IG_ERR_CORRUPT, "expected a refusal naming '%s', got %d: %s", words, rc, err->msg);
	cr_expect(strstr(err->msg, words) != NULL, "message '%s' should say '%s'", err->msg, words);
	expect_unchanged(before);
}

/* ---- kp_epoch ------------------------------------------------------------- */

Test(kp_state, no_epoch_until_a_kp_epoch, .init = setup, .fini = teardown)
{
	const ig_kp_view *v = ig_state_kp(st);
	cr_assert_not_null(v, "ig_state_kp is never NULL");
	ig_kp_params p;
	cr_expect_not(ig_kp_view_params(v, &p));
	cr_expect_eq(ig_kp_view_rings(v), 0);
	size_t n = 99;
	(void)ig_kp_view_compromised(v, &n);
	cr_expect_eq(n, 0);
	cr_expect_eq(ig_kp_view_devices(v, NULL), 0);
	cr_expect_eq(ig_kp_view_serial(v), 0);
}

Test(kp_state, the_first_epoch_is_1, .init = setup, .fini = teardown)
{
	ig_error err;
	snap *before = snapshot();
	expect_refused(kp_epoch(2, &err), &err, "not the next epoch (1)", before);
	uint64_t at = next_index;
	cr_assert_eq(kp_epoch(1, &err), IG_OK, "%s", err.msg);
	ig_kp_params p;
	cr_assert(ig_kp_view_params(ig_state_kp(st), &p));
	cr_expect_eq(p.epoch, 1);
	cr_expect_eq(p.pool, POOL);
	cr_expect_eq(p.ring, RING);
	cr_expect_eq(p.q, 2);
	uint8_t seed[32];
	seed_of(seed, 1);
	cr_expect_eq(memcmp(p.seed, seed, 32), 0);
	cr_expect_eq(ig_kp_view_serial(ig_state_kp(st)), at, "the serial is the kp_epoch's index");
}

Test(kp_state, epochs_go_up_by_exactly_one, .init = setup, .fini = teardown)
{
	ig_error err;
	cr_assert_eq(kp_epoch(1, &err), IG_OK, "%s", err.msg);
	snap *before = snapshot();
	expect_refused(kp_epoch(1, &err), &err, "not the next epoch (2)", before);
	before = snapshot();
	expect_refused(kp_epoch(3, &err), &err, "not the next epoch (2)", before);
	cr_assert_eq(kp_epoch(2, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(kp_epoch(3, &err), IG_OK, "%s", err.msg);
	ig_kp_params p;
	cr_assert(ig_kp_view_params(ig_state_kp(st), &p));
	cr_expect_eq(p.epoch, 3);
}

Test(kp_state, a_new_epoch_retires_rings_and_compromised_ids, .init = setup, .fini = teardown)
{
	ig_error err;
	cr_assert_eq(kp_epoch(1, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(kp_ring(1, "d1", 1, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(kp_ring(1, "d2", 2, &err), IG_OK, "%s", err.msg);
	revoke_id("d1");
	cr_assert_eq(kp_compromised(1, "d1", &err), IG_OK, "%s", err.msg);
	const ig_kp_view *v = ig_state_kp(st);
	size_t n;
	cr_assert_not_null(ig_kp_view_compromised(v, &n));
	cr_assert_eq(n, RING);

	uint64_t at = next_index;
	cr_assert_eq(kp_epoch_p(2, 5000, 100, 3, "policy", &err), IG_OK, "%s", err.msg);
	cr_expect_eq(ig_kp_view_rings(v), 0);
	cr_expect_not(ig_kp_view_ring(v, "d2", NULL));
	cr_expect_not(ig_kp_view_compromised_device(v, "d1"));
	(void)ig_kp_view_compromised(v, &n);
	cr_expect_eq(n, 0);
	cr_expect_eq(ig_kp_view_devices(v, NULL), 0);
	cr_expect_eq(ig_kp_view_serial(v), at);
	ig_kp_params p;
	cr_assert(ig_kp_view_params(v, &p));
	cr_expect_eq(p.pool, 5000);
	cr_expect_eq(p.ring, 100);
	cr_expect_eq(p.q, 3);
	/* d2 may have a ring again in the new epoch */
	cr_expect_eq(kp_ring(2, "d2", 3, &err), IG_OK, "%s", err.msg);
}

Test(kp_state, epoch_parameters_outside_section_0_are_refused, .init = setup, .fini = teardown)
{
	/* The encoder writes no such record ... */
	ig_kp_epoch_rec e = {.epoch = 1, .pool = POOL, .ring = RING, .q = 1};
	snprintf(e.reason, sizeof e.reason, "initial");
	snprintf(e.by, sizeof e.by, "demo");
	uint8_t body[512];
	cr_assert_gt(ig_record_kp_epoch_encode(body, sizeof body, &e), 0);
	struct { uint32_t pool, ring; uint8_t q; } bad[] = {
		{1, 1, 1}, {(1u << 24) + 1, 30, 1}, {1000, 0, 1}, {1000, 1025, 1}, {1000, 30, 0}, {1000, 30, 17},
		{10, 11, 1}, {1000, 4, 5},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		e.pool = bad[i].pool;
		e.ring = bad[i].ring;
		e.q = bad[i].q;
		cr_expect_eq(ig_record_kp_epoch_encode(body, sizeof body, &e), IG_ERR_INVAL, "P=%u m=%u q=%u", e.pool,
		             e.ring, e.q);
	}
	e.pool = POOL;
	e.ring = RING;
	e.q = 1;
	snprintf(e.reason, sizeof e.reason, "timer");
	cr_expect_eq(ig_record_kp_epoch_encode(body, sizeof body, &e), IG_ERR_INVAL, "reason is a fixed word");
	e.epoch = 0;
	snprintf(e.reason, sizeof e.reason, "initial");
	cr_expect_eq(ig_record_kp_epoch_encode(body, sizeof body, &e), IG_ERR_INVAL, "epoch 0");

	/* ... and a ledger that holds one is corrupt: ring 31 > pool 30, written by hand. */
	size_t pos = 0;
	uint8_t e8[8] = {0, 0, 0, 0, 0, 0, 0, 1}, pool[4] = {0, 0, 0, 30}, ring[4] = {0, 0, 0, 31}, q = 1, seed[32] = {0};
	cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 1, e8, 8), IG_OK);
	cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 2, pool, 4), IG_OK);
	cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 3, ring, 4), IG_OK);
	cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 4, &q, 1), IG_OK);
	cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 5, seed, 32), IG_OK);
	cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 6, "initial", 7), IG_OK);
	cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 7, "demo", 4), IG_OK);
	ig_error err;
	snap *before = snapshot();
	expect_refused(apply(IG_REC_KP_EPOCH, body, (int)pos, &err), &err, "ring (31) is larger than pool (30)", before);
	/* the same with ring 30 is fine */
	ring[3] = 30;
	pos = 0;
	cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 1, e8, 8), IG_OK);
	cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 2, pool, 4), IG_OK);
	cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 3, ring, 4), IG_OK);
	cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 4, &q, 1), IG_OK);
	cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 5, seed, 32), IG_OK);
	cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 6, "initial", 7), IG_OK);
	cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 7, "demo", 4), IG_OK);
	cr_expect_eq(apply(IG_REC_KP_EPOCH, body, (int)pos, &err), IG_OK, "%s", err.msg);
}

Test(kp_state, the_largest_parameters_are_accepted, .init = setup, .fini = teardown)
{
	ig_error err;
	cr_assert_eq(kp_epoch_p(1, 1u << 24, IG_KP_RING_MAX, IG_KP_Q_MAX, "initial", &err), IG_OK, "%s", err.msg);
	cr_assert_eq(kp_ring(1, "d1", 1, &err), IG_OK, "%s", err.msg);
	revoke_id("d1");
	cr_assert_eq(kp_compromised(1, "d1", &err), IG_OK, "%s", err.msg);
	size_t n;
	(void)ig_kp_view_compromised(ig_state_kp(st), &n);
	cr_expect_eq(n, IG_KP_RING_MAX);
	cr_assert_eq(kp_epoch_p(2, 2, 1, 1, "rotate", &err), IG_OK, "the smallest too: %s", err.msg);
}

/* ---- kp_ring -------------------------------------------------------------- */

Test(kp_state, a_ring_is_dealt_once_per_epoch_to_an_active_identity, .init = setup, .fini = teardown)
{
	ig_error err;
	snap *before = snapshot();
	expect_refused(kp_ring(1, "d1", 1, &err), &err, "not the current epoch (0)", before);
	cr_assert_eq(kp_epoch(1, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(kp_ring(1, "d1", 0xa0, &err), IG_OK, "%s", err.msg);
	const ig_kp_view *v = ig_state_kp(st);
	uint8_t h[32], want[32];
	tu_seq_bytes(want, 32, 0xa0);
	cr_assert(ig_kp_view_ring(v, "d1", h));
	cr_expect_eq(memcmp(h, want, 32), 0);
	cr_expect_eq(ig_kp_view_rings(v), 1);
	cr_expect_not(ig_kp_view_ring(v, "d2", NULL));
	uint64_t serial = ig_kp_view_serial(v);

	before = snapshot();
	expect_refused(kp_ring(1, "d1", 0xb0, &err), &err, "'d1' already has a ring in epoch 1", before);
	cr_assert(ig_kp_view_ring(v, "d1", h));
	cr_expect_eq(memcmp(h, want, 32), 0, "the first ring hash stays");

	before = snapshot();
	expect_refused(kp_ring(2, "d2", 1, &err), &err, "epoch 2 is not the current epoch (1)", before);
	before = snapshot();
	expect_refused(kp_ring(0 + 1, "ghost", 1, &err), &err, "'ghost' is not an active identity", before);
	revoke_id("d3");
	before = snapshot();
	expect_refused(kp_ring(1, "d3", 1, &err), &err, "'d3' is not an active identity", before);

	cr_assert_eq(kp_ring(1, "d2", 2, &err), IG_OK, "%s", err.msg);
	cr_expect_eq(ig_kp_view_rings(v), 2);
	cr_expect_eq(ig_kp_view_serial(v), serial, "a kp_ring does not move the revoked statement's serial");

	/* An old epoch's ring is refused once a newer epoch starts. */
	cr_assert_eq(kp_epoch(2, &err), IG_OK, "%s", err.msg);
	before = snapshot();
	expect_refused(kp_ring(1, "d4", 1, &err), &err, "epoch 1 is not the current epoch (2)", before);
}

Test(kp_state, a_reenrolled_identity_keeps_its_ring_of_the_epoch, .init = setup, .fini = teardown)
{
	/* The rule is one kp_ring per id and epoch: ring ids depend only on the
	 * seed and the id, so a new key under the same id would get the same ids. */
	ig_error err;
	cr_assert_eq(kp_epoch(1, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(kp_ring(1, "d1", 1, &err), IG_OK, "%s", err.msg);
	revoke_id("d1");
	uint8_t body[512], pk[32], sk[64];
	tu_seed_keypair(pk, sk, 9);
	ig_record rec = {.index = next_index, .ts_ms = 1000, .type = IG_REC_ENROLL, .body = body,
	                 .body_len = (uint32_t)tu_enroll_body(body, sizeof body, "d1", IG_ROLE_DEVICE, pk, "admin")};
	cr_assert_eq(ig_state_apply(st, &rec, &err), IG_OK, "%s", err.msg);
	next_index++;
	snap *before = snapshot();
	expect_refused(kp_ring(1, "d1", 2, &err), &err, "already has a ring", before);
}

/* ---- kp_compromised ------------------------------------------------------- */

Test(kp_state, a_revoked_ring_holder_is_compromised_with_its_exact_ring, .init = setup, .fini = teardown)
{
	ig_error err;
	uint32_t ids[RING];
	snap *before = snapshot();
	for (uint32_t i = 0; i < RING; i++)
		ids[i] = i;
	expect_refused(kp_compromised_ids(1, "d1", ids, RING, &err), &err, "not the current epoch (0)", before);

	cr_assert_eq(kp_epoch(1, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(kp_ring(1, "d1", 1, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(kp_ring(1, "d2", 2, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ring_of(ids, "d1"), RING);

	/* d1 still active */
	before = snapshot();
	expect_refused(kp_compromised_ids(1, "d1", ids, RING, &err), &err, "'d1' is not revoked", before);
	revoke_id("d1");
	revoke_id("d4");
	/* d4 revoked but never dealt a ring */
	uint32_t ids4[RING];
	cr_assert_eq(ring_of(ids4, "d4"), RING);
	before = snapshot();
	expect_refused(kp_compromised_ids(1, "d4", ids4, RING, &err), &err, "'d4' has no ring in epoch 1", before);
	/* the wrong epoch */
	before = snapshot();
	expect_refused(kp_compromised_ids(2, "d1", ids, RING, &err), &err, "epoch 2 is not the current epoch (1)",
	               before);
	/* another device's ring */
	uint32_t ids2[RING];
	cr_assert_eq(ring_of(ids2, "d2"), RING);
	before = snapshot();
	expect_refused(kp_compromised_ids(1, "d1", ids2, RING, &err), &err, "ids are not the ring of 'd1'", before);
	/* one id short, or one id changed (still ascending, still in the pool) */
	before = snapshot();
	expect_refused(kp_compromised_ids(1, "d1", ids, RING - 1, &err), &err, "ids are not the ring of 'd1'", before);
	uint32_t changed[RING];
	memcpy(changed, ids, sizeof changed);
	cr_assert(changed[RING - 1] < POOL - 1);
	changed[RING - 1] = POOL - 1;
	before = snapshot();
	expect_refused(kp_compromised_ids(1, "d1", changed, RING, &err), &err, "ids are not the ring of 'd1'", before);

	uint64_t at = next_index;
	cr_assert_eq(kp_compromised_ids(1, "d1", ids, RING, &err), IG_OK, "%s", err.msg);
	const ig_kp_view *v = ig_state_kp(st);
	cr_expect(ig_kp_view_compromised_device(v, "d1"));
	cr_expect_not(ig_kp_view_compromised_device(v, "d2"));
	cr_expect(ig_kp_view_ring(v, "d1", NULL), "the ring record stays");
	size_t n;
	const uint32_t *bad = ig_kp_view_compromised(v, &n);
	cr_assert_eq(n, RING);
	cr_expect_eq(memcmp(bad, ids, sizeof ids), 0);
	const char(*dev)[IG_ID_MAX + 1];
	cr_assert_eq(ig_kp_view_devices(v, &dev), 1);
	cr_expect_str_eq(dev[0], "d1");
	cr_expect_eq(ig_kp_view_serial(v), at, "the serial is the newest kp_compromised's index");

	/* not twice */
	before = snapshot();
	expect_refused(kp_compromised_ids(1, "d1", ids, RING, &err), &err, "'d1' is already compromised in epoch 1",
	               before);
}

Test(kp_state, compromised_ids_are_the_union_in_order, .init = setup, .fini = teardown)
{
	ig_error err;
	/* a small pool so that rings overlap */
	cr_assert_eq(kp_epoch_p(1, 40, 20, 1, "initial", &err), IG_OK, "%s", err.msg);
	cr_assert_eq(kp_ring(1, "d2", 1, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(kp_ring(1, "d1", 2, &err), IG_OK, "%s", err.msg);
	revoke_id("d2");
	revoke_id("d1");
	cr_assert_eq(kp_compromised(1, "d2", &err), IG_OK, "%s", err.msg);
	cr_assert_eq(kp_compromised(1, "d1", &err), IG_OK, "%s", err.msg);

	uint32_t a[20], b[20];
	ring_of(a, "d1");
	ring_of(b, "d2");
	bool want[40] = {false};
	size_t want_n = 0;
	for (int i = 0; i < 20; i++) {
		want_n += !want[a[i]];
		want[a[i]] = true;
		want_n += !want[b[i]];
		want[b[i]] = true;
	}
	cr_assert_lt(want_n, 40u, "the test wants overlapping rings");
	size_t n;
	const uint32_t *bad = ig_kp_view_compromised(ig_state_kp(st), &n);
	cr_assert_eq(n, want_n, "distinct ids only");
	for (size_t i = 0; i < n; i++) {
		cr_expect(want[bad[i]]);
		if (i > 0)
			cr_expect_gt(bad[i], bad[i - 1], "strictly ascending");
	}
	const char(*dev)[IG_ID_MAX + 1];
	cr_assert_eq(ig_kp_view_devices(ig_state_kp(st), &dev), 2);
	cr_expect_str_eq(dev[0], "d2", "record order");
	cr_expect_str_eq(dev[1], "d1");
}

/* ---- the codec ------------------------------------------------------------ */

Test(kp_records, id_lists_must_be_strictly_ascending_and_bounded)
{
	static ig_kp_compromised_rec c;
	memset(&c, 0, sizeof c);
	c.epoch = 1;
	snprintf(c.id, sizeof c.id, "d1");
	c.id_count = 3;
	c.ids[0] = 5;
	c.ids[1] = 9;
	c.ids[2] = 70000;
	static uint8_t body[8192];
	int n = ig_record_kp_compromised_encode(body, sizeof body, &c);
	cr_assert_eq(n, 11 + 5 + 3 + 12);
	tu_assert_hex(body + 16, 15, "03000c000000050000000900011170");
	static ig_kp_compromised_rec back;
	ig_error err = {0};
	cr_assert_eq(ig_record_kp_compromised_decode(body, (size_t)n, &back, &err), IG_OK, "%s", err.msg);
	cr_expect_eq(back.id_count, 3);
	cr_expect_eq(back.ids[2], 70000);

	c.ids[1] = 5;
	cr_expect_eq(ig_record_kp_compromised_encode(body, sizeof body, &c), IG_ERR_INVAL, "a repeated id");
	c.ids[1] = 4;
	cr_expect_eq(ig_record_kp_compromised_encode(body, sizeof body, &c), IG_ERR_INVAL, "descending");
	c.id_count = 0;
	cr_expect_eq(ig_record_kp_compromised_encode(body, sizeof body, &c), IG_ERR_INVAL, "no ids");
	c.id_count = IG_KP_REC_RING_MAX + 1;
	cr_expect_eq(ig_record_kp_compromised_encode(body, sizeof body, &c), IG_ERR_INVAL, "more than 1024");
	c.id_count = IG_KP_REC_RING_MAX;
	for (uint32_t i = 0; i < IG_KP_REC_RING_MAX; i++)
		c.ids[i] = 3 * i;
	n = ig_record_kp_compromised_encode(body, sizeof body, &c);
	cr_expect_eq(n, 11 + 5 + 3 + 4 * IG_KP_REC_RING_MAX, "1024 ids fit");
	cr_assert_eq(ig_record_kp_compromised_decode(body, (size_t)n, &back, &err), IG_OK, "%s", err.msg);
	cr_expect_eq(back.id_count, IG_KP_REC_RING_MAX);
	cr_expect_eq(back.ids[IG_KP_REC_RING_MAX - 1], 3 * (IG_KP_REC_RING_MAX - 1));

	/* Hand-written bodies the decoder must refuse. */
	const struct { const char *ids_hex; const char *why; } bad[] = {
		{"0000000500000005", "strictly ascending"},
		{"0000000900000005", "strictly ascending"},
		{"00000005000009", "4-byte integers"},
		{"", "4-byte integers"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		uint8_t ids[16];
		size_t ilen = tu_unhex(ids, sizeof ids, bad[i].ids_hex);
		size_t pos = 0;
		uint8_t e8[8] = {0, 0, 0, 0, 0, 0, 0, 1};
		cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 1, e8, 8), IG_OK);
		cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 2, "d1", 2), IG_OK);
		cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 3, ids, ilen), IG_OK);
		memset(&err, 0, sizeof err);
		cr_expect_eq(ig_record_kp_compromised_decode(body, pos, &back, &err), IG_ERR_CORRUPT, "%s", bad[i].ids_hex);
		cr_expect(strstr(err.msg, "'ids'") && strstr(err.msg, bad[i].why), "%s", err.msg);
	}
	/* 1025 ids */
	static uint8_t big[4 * 1025 + 64];
	size_t pos = 0;
	uint8_t e8[8] = {0, 0, 0, 0, 0, 0, 0, 1}, ids[4 * 1025];
	for (uint32_t i = 0; i < 1025; i++)
		ig_put_u32(ids + 4 * i, i);
	cr_assert_eq(ig_record_tlv_put(big, sizeof big, &pos, 1, e8, 8), IG_OK);
	cr_assert_eq(ig_record_tlv_put(big, sizeof big, &pos, 2, "d1", 2), IG_OK);
	cr_assert_eq(ig_record_tlv_put(big, sizeof big, &pos, 3, ids, sizeof ids), IG_OK);
	cr_expect_eq(ig_record_kp_compromised_decode(big, pos, &back, &err), IG_ERR_CORRUPT);
}

Test(kp_records, ring_records_need_every_field)
{
	ig_kp_ring_rec r = {.epoch = 1};
	snprintf(r.id, sizeof r.id, "d1");
	uint8_t body[256];
	int n = ig_record_kp_ring_encode(body, sizeof body, &r);
	cr_assert_eq(n, 11 + 5 + 35);
	ig_kp_ring_rec back;
	ig_error err = {0};
	/* drop the ring hash TLV (the last 35 bytes) */
	cr_expect_eq(ig_record_kp_ring_decode(body, (size_t)n - 35, &back, &err), IG_ERR_CORRUPT);
	cr_expect(strstr(err.msg, "required field 'ring_hash' is missing") != NULL, "%s", err.msg);
	snprintf(r.id, sizeof r.id, "d 1");
	cr_expect_eq(ig_record_kp_ring_encode(body, sizeof body, &r), IG_ERR_INVAL, "ids are ids");
	cr_expect_str_eq(ig_record_type_name(IG_REC_KP_EPOCH), "kp_epoch");
	cr_expect_str_eq(ig_record_type_name(IG_REC_KP_RING), "kp_ring");
	cr_expect_str_eq(ig_record_type_name(IG_REC_KP_COMPROMISED), "kp_compromised");
}

/* ---- the bodies of docs/LEDGER.md section 12 ------------------------------ */

#define SEED_HEX "d75ec5d43db7bcbbb0cf78aaafb1254bd0e4310e35a998f60ac7ab15880bf3da"
#define RING_HASH_HEX "8ab02b3366b20e71cd0021cdf6f9821103fa6d22ed1ce45082517e3c2600ab54"
static const uint32_t dev1_ids[RING] = {16,  31,  84,  114, 118, 167, 240, 248, 263, 363, 392, 410, 421, 435, 475,
                                        483, 510, 538, 621, 638, 639, 724, 744, 814, 829, 843, 857, 876, 891, 995};

Test(kp_vectors, documented_bodies_encode_and_apply, .init = setup, .fini = teardown)
{
	/* The Python derives the seed, ids and ring hash from the text; C agrees. */
	uint8_t ch_seed[32], secret[32], seed[32], want_seed[32];
	tu_seq_bytes(ch_seed, 32, 0);
	ig_kp_pool_secret(secret, ch_seed, 1);
	ig_kp_ring_seed(seed, secret);
	tu_unhex(want_seed, sizeof want_seed, SEED_HEX);
	cr_expect_eq(memcmp(seed, want_seed, 32), 0, "ring seed");
	uint32_t ids[RING];
	cr_assert_eq(ig_kp_ring_ids(ids, seed, "dev1", POOL, RING), IG_OK);
	cr_expect_eq(memcmp(ids, dev1_ids, sizeof ids), 0, "ring ids of dev1");
	static uint8_t keys[RING][32];
	for (int i = 0; i < RING; i++)
		ig_kp_pool_key(keys[i], secret, dev1_ids[i]);
	uint8_t rh[32];
	ig_kp_ring_hash(rh, 1, "dev1", dev1_ids, (const uint8_t(*)[32])keys, RING);
	tu_assert_hex(rh, 32, RING_HASH_HEX);

	uint8_t body[1024];
	ig_kp_epoch_rec e = {.epoch = 1, .pool = POOL, .ring = RING, .q = 1};
	memcpy(e.seed, seed, 32);
	snprintf(e.reason, sizeof e.reason, "initial");
	snprintf(e.by, sizeof e.by, "demo");
	int n = ig_record_kp_epoch_encode(body, sizeof body, &e);
	cr_assert_eq(n, 81);
	tu_assert_hex(body, (size_t)n,
	              "0100080000000000000001020004000003e80300040000001e04000101050020" SEED_HEX
	              "060007696e697469616c07000464656d6f");
	ig_kp_epoch_rec eb;
	ig_error err = {0};
	cr_assert_eq(ig_record_kp_epoch_decode(body, (size_t)n, &eb, &err), IG_OK, "%s", err.msg);
	cr_expect_eq(memcmp(&eb, &e, sizeof e), 0, "decode gives back what was encoded");
	ig_record rec = {.index = 9, .ts_ms = 1, .type = IG_REC_KP_EPOCH, .body = body, .body_len = (uint32_t)n};
	char *json = ig_record_to_json(&rec);
	cr_assert_not_null(json);
	cr_expect(strstr(json, "\"type\":\"kp_epoch\",") != NULL, "%s", json);
	cr_expect(strstr(json, "\"epoch\":1,\"pool\":1000,\"ring\":30,\"q\":1,\"seed\":\"" SEED_HEX
	                       "\",\"reason\":\"initial\",\"by\":\"demo\"}") != NULL,
	          "%s", json);
	free(json);
	enroll("dev1");
	cr_assert_eq(apply(IG_REC_KP_EPOCH, body, n, &err), IG_OK, "%s", err.msg);

	ig_kp_ring_rec r = {.epoch = 1};
	snprintf(r.id, sizeof r.id, "dev1");
	memcpy(r.ring_hash, rh, 32);
	n = ig_record_kp_ring_encode(body, sizeof body, &r);
	cr_assert_eq(n, 53);
	tu_assert_hex(body, (size_t)n, "010008000000000000000102000464657631030020" RING_HASH_HEX);
	rec = (ig_record){.index = 10, .ts_ms = 1, .type = IG_REC_KP_RING, .body = body, .body_len = (uint32_t)n};
	json = ig_record_to_json(&rec);
	cr_assert_not_null(json);
	cr_expect(strstr(json, "\"epoch\":1,\"id\":\"dev1\",\"ring_hash\":\"" RING_HASH_HEX "\"}") != NULL, "%s", json);
	free(json);
	cr_assert_eq(apply(IG_REC_KP_RING, body, n, &err), IG_OK, "%s", err.msg);
	revoke_id("dev1");

	static ig_kp_compromised_rec c;
	memset(&c, 0, sizeof c);
	c.epoch = 1;
	snprintf(c.id, sizeof c.id, "dev1");
	c.id_count = RING;
	memcpy(c.ids, dev1_ids, sizeof dev1_ids);
	n = ig_record_kp_compromised_encode(body, sizeof body, &c);
	cr_assert_eq(n, 141);
	tu_assert_hex(body, (size_t)n,
	              "010008000000000000000102000464657631030078000000100000001f000000540000007200000076000000a7000000f0"
	              "000000f8000001070000016b000001880000019a000001a5000001b3000001db000001e3000001fe0000021a0000026d00"
	              "00027e0000027f000002d4000002e80000032e0000033d0000034b000003590000036c0000037b000003e3");
	rec = (ig_record){.index = 11, .ts_ms = 1, .type = IG_REC_KP_COMPROMISED, .body = body, .body_len = (uint32_t)n};
	json = ig_record_to_json(&rec);
	cr_assert_not_null(json);
	cr_expect(strstr(json, "\"epoch\":1,\"id\":\"dev1\",\"ids\":[16,31,84,114,") != NULL, "%s", json);
	cr_expect(strstr(json, ",891,995]}") != NULL, "%s", json);
	free(json);
	cr_assert_eq(apply(IG_REC_KP_COMPROMISED, body, n, &err), IG_OK, "the C ring ids agree: %s", err.msg);
	cr_expect(ig_kp_view_compromised_device(ig_state_kp(st), "dev1"));
}

/* ---- `iotguard show` and `iotguard verify` on a real ledger ---------------- */

/* A ledger (sound frames, chain, checkpoint) with dev1 enrolled, the vector
 * epoch, dev1's ring, dev1 revoked and a kp_compromised whose ids are ids[0..n). */
static const char *kp_ledger(const char *tag, const uint32_t *ids, uint32_t n)
{
	static char dir[512];
	snprintf(dir, sizeof dir, "%s/ledger", tu_scratch_dir(tag));
	uint8_t pk[IG_PK_BYTES];
	ig_error err = {0};
	cr_assert_eq(ig_ledger_init(dir, "demo", pk, &err), IG_OK, "%s", err.msg);
	ig_ledger *l = NULL;
	ig_ledger_open_opts opts = {.writer = true};
	cr_assert_eq(ig_ledger_open(&l, dir, &opts, &err), IG_OK, "%s", err.msg);
	static uint8_t body[8192];
	ig_record rec;
	size_t len = tu_device_enroll_body(body, sizeof body, "dev1");
	cr_assert_eq(ig_ledger_append(l, IG_REC_ENROLL, body, len, &rec, &err), IG_OK, "%s", err.msg);
	ig_kp_epoch_rec e = {.epoch = 1, .pool = POOL, .ring = RING, .q = 1};
	tu_unhex(e.seed, sizeof e.seed, SEED_HEX);
	snprintf(e.reason, sizeof e.reason, "initial");
	snprintf(e.by, sizeof e.by, "demo");
	int m = ig_record_kp_epoch_encode(body, sizeof body, &e);
	cr_assert_gt(m, 0);
	cr_assert_eq(ig_ledger_append(l, IG_REC_KP_EPOCH, body, (size_t)m, &rec, &err), IG_OK, "%s", err.msg);
	ig_kp_ring_rec r = {.epoch = 1};
	snprintf(r.id, sizeof r.id, "dev1");
	tu_unhex(r.ring_hash, sizeof r.ring_hash, RING_HASH_HEX);
	m = ig_record_kp_ring_encode(body, sizeof body, &r);
	cr_assert_gt(m, 0);
	cr_assert_eq(ig_ledger_append(l, IG_REC_KP_RING, body, (size_t)m, &rec, &err), IG_OK, "%s", err.msg);
	len = tu_revoke_body(body, sizeof body, "dev1", "admin1");
	cr_assert_eq(ig_ledger_append(l, IG_REC_REVOKE, body, len, &rec, &err), IG_OK, "%s", err.msg);
	static ig_kp_compromised_rec c;
	memset(&c, 0, sizeof c);
	c.epoch = 1;
	snprintf(c.id, sizeof c.id, "dev1");
	c.id_count = n;
	memcpy(c.ids, ids, (size_t)n * sizeof ids[0]);
	m = ig_record_kp_compromised_encode(body, sizeof body, &c);
	cr_assert_gt(m, 0);
	cr_assert_eq(ig_ledger_append(l, IG_REC_KP_COMPROMISED, body, (size_t)m, &rec, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(rec.index, 5);
	ig_ledger_close(l);
	return dir;
}

/* Runs the iotguard CLI (IG_IOTGUARD, set by tests/meson.build) with args;
 * returns its exit status, its stdout in out and its stderr in err_out. */
static int run_cli(char *out, size_t out_cap, char *err_out, size_t err_cap, const char *args)
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
	snprintf(out, out_cap, "%s", text);
	free(text);
	text = tu_read_file(errfile, NULL);
	snprintf(err_out, err_cap, "%s", text);
	free(text);
	return WEXITSTATUS(status);
}

Test(kp_cli, show_and_verify_understand_the_records)
{
	cr_assert_eq(ig_init(), IG_OK);
	const char *dir = kp_ledger("kp-good", dev1_ids, RING);
	static char out[65536], err[4096];
	char args[700];
	snprintf(args, sizeof args, "verify --ledger '%s'", dir);
	cr_assert_eq(run_cli(out, sizeof out, err, sizeof err, args), 0, "verify: %s", err);
	cr_expect(strstr(out, "ledger OK: cluster demo, height 6,") != NULL, "%s", out);

	snprintf(args, sizeof args, "show --ledger '%s'", dir);
	cr_assert_eq(run_cli(out, sizeof out, err, sizeof err, args), 0, "show: %s", err);
	cr_expect(strstr(out, "kp_epoch epoch=1 pool=1000 ring=30 q=1 seed=" SEED_HEX " reason=initial by=demo hash=") !=
	              NULL,
	          "%s", out);
	cr_expect(strstr(out, "kp_ring epoch=1 id=dev1 ring_hash=" RING_HASH_HEX " hash=") != NULL, "%s", out);
	cr_expect(strstr(out, "kp_compromised epoch=1 id=dev1 count=30 ids=16,31,84,114,") != NULL, "%s", out);
	cr_expect(strstr(out, ",891,995 hash=") != NULL, "%s", out);

	snprintf(args, sizeof args, "show --json --ledger '%s'", dir);
	cr_assert_eq(run_cli(out, sizeof out, err, sizeof err, args), 0, "show --json: %s", err);
	cr_expect(strstr(out, "\"type\":\"kp_compromised\"") && strstr(out, "\"ids\":[16,31,84,"), "%s", out);
}

Test(kp_cli, verify_refuses_a_compromised_list_that_is_not_the_ring)
{
	cr_assert_eq(ig_init(), IG_OK);
	uint32_t ids[RING];
	memcpy(ids, dev1_ids, sizeof ids);
	ids[0] = 17; /* still ascending, in the pool, one id off */
	const char *dir = kp_ledger("kp-bad", ids, RING);
	static char out[65536], err[4096];
	char args[700];
	snprintf(args, sizeof args, "verify --ledger '%s'", dir);
	cr_expect_eq(run_cli(out, sizeof out, err, sizeof err, args), 2, "verify must refuse it: %s", err);
	cr_expect(strstr(err, "ledger record 5") && strstr(err, "ids are not the ring of 'dev1'"), "%s", err);
}
