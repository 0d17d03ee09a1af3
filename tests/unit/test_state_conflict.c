/*
 * test_state_conflict.c: ig_state_apply refuses all or nothing, and two
 * brokers' states agree on who won a race.
 *
 * Why this exists: with a shared ledger (docs/LEDGER.md 16) every broker's
 * writer re-checks each record against a state that includes every other
 * broker's records, and drops one that no longer applies as IG_ERR_CONFLICT.
 * That is only sound if a refused apply leaves the state exactly as it was:
 * an enroll through a join code used to enrol its id and only then fail on
 * the code, leaving an identity no ledger record made. Here every refusable
 * record type is refused against a state and a full description of the
 * state is compared before and after; and two ig_state objects (two
 * brokers) apply the same records in the order their race ended, so the
 * loser is refused and both end in the same state.
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_bank.h"
#include "ig_coins.h"
#include "ig_custody_view.h"
#include "ig_join.h"
#include "ig_joincodes.h"
#include "ig_kp.h"
#include "ig_kp_view.h"
#include "ig_state.h"
#include "testutil.h"

#define POOL 1000
#define RING 30

static ig_state *a, *b;   /* two brokers' states */
static uint64_t next_a, next_b;   /* the index each one's next record takes */

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	a = ig_state_new();
	b = ig_state_new();
	next_a = next_b = 1;
	cr_assert(a && b);
}

static void teardown(void)
{
	ig_state_free(a);
	ig_state_free(b);
}

/* ---- records ---------------------------------------------------------------- */

/* One record body and its type, to apply to one state or several. */
typedef struct rec {
	uint16_t type;
	uint8_t body[8192];
	size_t len;
} rec;

static int apply_to(ig_state *st, uint64_t index, const rec *r, ig_error *err)
{
	ig_record x = {.index = index, .ts_ms = 1767225600000ull + index, .type = r->type, .body = r->body,
	               .body_len = (uint32_t)r->len};
	memset(err, 0, sizeof *err);
	return ig_state_apply(st, &x, err);
}

static uint64_t *next_of(ig_state *st) { return st == a ? &next_a : &next_b; }

/* Applies r as the next record of st's ledger; fails the test if refused. */
static void must(ig_state *st, const rec *r)
{
	ig_error err;
	cr_assert_eq(apply_to(st, *next_of(st), r, &err), IG_OK, "record type %u refused: %s", r->type, err.msg);
	(*next_of(st))++;
}

/* A builder's last step: n is the encoder's answer (the body must fit). */
static rec *encoded(rec *r, uint16_t type, int n)
{
	cr_assert_gt(n, 0, "record type %u does not encode (%d)", type, n);
	r->type = type;
	r->len = (size_t)n;
	return r;
}

static rec *enroll_rec(rec *r, const char *id, ig_role role, uint8_t key, const uint8_t *code, const char *zone)
{
	ig_enroll e = {.role = role};
	uint8_t sk[64];
	snprintf(e.id, sizeof e.id, "%s", id);
	tu_seed_keypair(e.pk, sk, key);
	snprintf(e.by, sizeof e.by, "admin");
	if (code) {
		e.has_join_code = true;
		memcpy(e.join_code, code, sizeof e.join_code);
	}
	if (zone) {
		e.has_zone = true;
		snprintf(e.zone, sizeof e.zone, "%s", zone);
	}
	return encoded(r, IG_REC_ENROLL, ig_record_enroll_encode(r->body, sizeof r->body, &e));
}

static rec *revoke_rec(rec *r, const char *id)
{
	r->type = IG_REC_REVOKE;
	r->len = tu_revoke_body(r->body, sizeof r->body, id, "admin");
	return r;
}

static rec *code_rec(rec *r, uint8_t first, ig_role role)
{
	ig_join_code_rec j = {.role = role, .expires_at = 4000000000ull};
	tu_seq_bytes(j.code_id, sizeof j.code_id, first);
	tu_seq_bytes(j.hash, sizeof j.hash, (uint8_t)(first + 0x80));
	snprintf(j.by, sizeof j.by, "admin");
	return encoded(r, IG_REC_JOIN_CODE, ig_record_join_code_encode(r->body, sizeof r->body, &j));
}

static rec *used_rec(rec *r, uint8_t code_first, const char *id)
{
	ig_join_used u = {0};
	tu_seq_bytes(u.code_id, sizeof u.code_id, code_first);
	snprintf(u.id, sizeof u.id, "%s", id);
	return encoded(r, IG_REC_JOIN_USED, ig_record_join_used_encode(r->body, sizeof r->body, &u));
}

static rec *credit_rec(rec *r, const char *id, uint64_t amount)
{
	ig_credit_rec c = {.amount = amount};
	snprintf(c.id, sizeof c.id, "%s", id);
	snprintf(c.by, sizeof c.by, "admin");
	return encoded(r, IG_REC_CREDIT, ig_bank_credit_encode(r->body, sizeof r->body, &c));
}

static rec *mint_rec(rec *r, const char *owner, uint32_t count, uint8_t first)
{
	static ig_mint_rec m;
	memset(&m, 0, sizeof m);
	snprintf(m.owner, sizeof m.owner, "%s", owner);
	m.expires_at = 4000000000ull;
	m.count = count;
	for (uint32_t i = 0; i < count; i++)
		tu_seq_bytes(m.hashes[i], 32, (uint8_t)(first + i));
	return encoded(r, IG_REC_COIN_MINT, ig_bank_mint_encode(r->body, sizeof r->body, &m));
}

static rec *redeem_rec(rec *r, uint8_t coin_first, const char *collector, const char *analyst)
{
	ig_redeem_rec x;
	memset(&x, 0, sizeof x);
	tu_seq_bytes(x.coin_hash, 32, coin_first);
	snprintf(x.analyst, sizeof x.analyst, "%s", analyst);
	snprintf(x.collector, sizeof x.collector, "%s", collector);
	x.has_header_hash = true;
	tu_seq_bytes(x.header_hash, 32, (uint8_t)(coin_first ^ analyst[0]));
	return encoded(r, IG_REC_COIN_REDEEM, ig_bank_redeem_encode(r->body, sizeof r->body, &x));
}

static rec *refund_rec(rec *r, uint8_t coin_first, const char *collector)
{
	ig_refund_rec x;
	memset(&x, 0, sizeof x);
	tu_seq_bytes(x.coin_hash, 32, coin_first);
	snprintf(x.collector, sizeof x.collector, "%s", collector);
	snprintf(x.reason, sizeof x.reason, "cancelled");
	return encoded(r, IG_REC_COIN_REFUND, ig_bank_refund_encode(r->body, sizeof r->body, &x));
}

static rec *custody_epoch_rec(rec *r, uint64_t epoch, uint8_t c0_first)
{
	static ig_custody_epoch_rec c;
	static const char *const h[] = {"d1", "d2", "d3"};
	memset(&c, 0, sizeof c);
	c.epoch = epoch;
	c.k = 2;
	c.n = 3;
	c.holder_count = 3;
	for (unsigned i = 0; i < 3; i++)
		snprintf(c.holders[i], sizeof c.holders[i], "%s", h[i]);
	c.commitment_count = 2;
	tu_seq_bytes(c.commitments[0], 32, c0_first);
	tu_seq_bytes(c.commitments[1], 32, (uint8_t)(epoch * 16 + 1));
	snprintf(c.reason, sizeof c.reason, "timer");
	snprintf(c.by, sizeof c.by, "cluster-head");
	return encoded(r, IG_REC_CUSTODY_EPOCH, ig_record_custody_epoch_encode(r->body, sizeof r->body, &c));
}

static rec *custody_active_rec(rec *r, uint64_t epoch)
{
	ig_custody_active_rec x = {.epoch = epoch};
	return encoded(r, IG_REC_CUSTODY_ACTIVE, ig_record_custody_active_encode(r->body, sizeof r->body, &x));
}

static rec *custody_bad_rec(rec *r, uint64_t epoch, const char *holder)
{
	ig_custody_bad_share_rec x = {.epoch = epoch};
	snprintf(x.holder, sizeof x.holder, "%s", holder);
	snprintf(x.reason, sizeof x.reason, "the share does not match the commitments");
	return encoded(r, IG_REC_CUSTODY_BAD_SHARE, ig_record_custody_bad_share_encode(r->body, sizeof r->body, &x));
}

static rec *custody_sealed_rec(rec *r, uint64_t epoch, uint8_t c0_first)
{
	ig_custody_sealed_rec x = {.epoch = epoch};
	tu_seq_bytes(x.c0, 32, c0_first);
	snprintf(x.by, sizeof x.by, "admin");
	return encoded(r, IG_REC_CUSTODY_SEALED, ig_record_custody_sealed_encode(r->body, sizeof r->body, &x));
}

static rec *kp_epoch_rec(rec *r, uint64_t epoch)
{
	ig_kp_epoch_rec e = {.epoch = epoch, .pool = POOL, .ring = RING, .q = 2};
	tu_seq_bytes(e.seed, 32, (uint8_t)(0x40 + epoch));
	snprintf(e.reason, sizeof e.reason, "%s", epoch == 1 ? "initial" : "rotate");
	snprintf(e.by, sizeof e.by, "demo");
	return encoded(r, IG_REC_KP_EPOCH, ig_record_kp_epoch_encode(r->body, sizeof r->body, &e));
}

static rec *kp_ring_rec(rec *r, uint64_t epoch, const char *id, uint8_t hash_first)
{
	ig_kp_ring_rec x = {.epoch = epoch};
	snprintf(x.id, sizeof x.id, "%s", id);
	tu_seq_bytes(x.ring_hash, sizeof x.ring_hash, hash_first);
	return encoded(r, IG_REC_KP_RING, ig_record_kp_ring_encode(r->body, sizeof r->body, &x));
}

/* id's real ring under st's current key-ring epoch. */
static rec *kp_compromised_rec(rec *r, ig_state *st, uint64_t epoch, const char *id)
{
	static ig_kp_compromised_rec c;
	memset(&c, 0, sizeof c);
	ig_kp_params p;
	cr_assert(ig_kp_view_params(ig_state_kp(st), &p));
	cr_assert_eq(ig_kp_ring_ids(c.ids, p.seed, id, p.pool, p.ring), IG_OK);
	c.epoch = epoch;
	snprintf(c.id, sizeof c.id, "%s", id);
	c.id_count = p.ring;
	return encoded(r, IG_REC_KP_COMPROMISED, ig_record_kp_compromised_encode(r->body, sizeof r->body, &c));
}

/* ---- the whole state as text ------------------------------------------------ */

typedef struct text {
	char *s;
	size_t len, cap;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	cr_assert(n >= 0 && (size_t)n < sizeof line);
	if (t->len + (size_t)n + 1 > t->cap) {
		t->cap = (t->len + (size_t)n + 1) * 2;
		t->s = realloc(t->s, t->cap);
		cr_assert_not_null(t->s);
	}
	memcpy(t->s + t->len, line, (size_t)n + 1);
	t->len += (size_t)n;
}

static const char *const ids[] = {"d1", "d2", "d3", "d4", "an1", "x", "y", "ghost"};

static bool put_identity(void *ctx, const ig_identity *idn)
{
	char pk[65];
	ig_hex_encode(pk, idn->pk, 32);
	put(ctx, "id %s role %u status %u enrolled %llu revoked %llu ts %llu pk %s\n", idn->id, idn->role, idn->status,
	    (unsigned long long)idn->enrolled_index, (unsigned long long)idn->revoked_index,
	    (unsigned long long)idn->enrolled_ts_ms, pk);
	return true;
}

/* Everything a record can change, as text: identities, zones, join codes,
 * coins and credit, custody, key rings. */
static char *describe(ig_state *st)
{
	text t = {0};
	put(&t, "state\n");
	ig_state_identity_foreach(st, put_identity, &t);
	ig_registry *reg = ig_state_registry(st);
	for (int s = IG_ID_PENDING; s <= IG_ID_REVOKED; s++)
		put(&t, "registry count %d: %llu\n", s, (unsigned long long)ig_registry_count(reg, (ig_id_status)s, IG_ROLE_NONE));
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		const char *z = ig_state_zone(st, ids[i]);
		ig_coins *c = ig_state_coins(st);
		put(&t, "%s zone %s balance %llu outstanding %llu\n", ids[i], z ? z : "-",
		    (unsigned long long)ig_coins_balance(c, ids[i]), (unsigned long long)ig_coins_outstanding(c, ids[i]));
	}
	ig_joincodes *jc = ig_state_joincodes(st);
	put(&t, "codes unused %llu used %llu\n", (unsigned long long)ig_joincodes_count(jc, IG_CODE_UNUSED),
	    (unsigned long long)ig_joincodes_count(jc, IG_CODE_USED));
	for (uint8_t f = 0x10; f < 0x18; f++) {
		uint8_t code[IG_JOIN_CODE_ID_BYTES];
		tu_seq_bytes(code, sizeof code, f);
		const ig_join_code_entry *e = ig_joincodes_find(jc, code);
		if (e)
			put(&t, "code %02x role %u status %u in_flight %d\n", f, e->role, e->status, e->in_flight);
	}
	ig_coins *c = ig_state_coins(st);
	for (int s = IG_COIN_MINTED; s <= IG_COIN_REFUNDED; s++)
		put(&t, "coins %d: %llu\n", s, (unsigned long long)ig_coins_count(c, (ig_coin_state)s));
	for (unsigned f = 0x40; f < 0x50; f++) {
		uint8_t h[32];
		tu_seq_bytes(h, 32, (uint8_t)f);
		ig_coin_info info;
		if (ig_coins_find(c, h, &info) == IG_OK)
			put(&t, "coin %02x state %d in_flight %d owner %s\n", f, info.state, info.in_flight, info.owner);
	}
	const ig_custody_view *cv = ig_state_custody(st);
	put(&t, "custody dealt %llu active %llu sealed %d/%llu bad %llu\n", (unsigned long long)cv->dealt.epoch,
	    (unsigned long long)cv->active.epoch, cv->sealed, (unsigned long long)cv->sealed_epoch,
	    (unsigned long long)cv->bad_shares);
	const ig_kp_view *kv = ig_state_kp(st);
	ig_kp_params p = {0};
	bool has = ig_kp_view_params(kv, &p);
	size_t n_bad;
	(void)ig_kp_view_compromised(kv, &n_bad);
	put(&t, "kp %d epoch %llu rings %zu bad %zu devices %zu serial %llu\n", has, (unsigned long long)p.epoch,
	    ig_kp_view_rings(kv), n_bad, ig_kp_view_devices(kv, NULL), (unsigned long long)ig_kp_view_serial(kv));
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
		if (ig_kp_view_ring(kv, ids[i], NULL))
			put(&t, "ring %s compromised %d\n", ids[i], ig_kp_view_compromised_device(kv, ids[i]));
	return t.s;
}

/* r is refused by st (the error names words), and st is exactly as before. */
static void refused(ig_state *st, const rec *r, const char *words)
{
	char *before = describe(st);
	ig_error err;
	int rc = apply_to(st, *next_of(st), r, &err);
	char *after = describe(st);
	cr_expect_neq(rc, IG_OK, "record type %u was accepted", r->type);
	if (words)
		cr_expect(strstr(err.msg, words), "record type %u: \"%s\" not in \"%s\"", r->type, words, err.msg);
	cr_expect_str_eq(after, before, "record type %u changed the state although refused (%s)", r->type, err.msg);
	free(before);
	free(after);
}

static void enroll_devices(ig_state *st)
{
	rec r;
	must(st, enroll_rec(&r, "d1", IG_ROLE_DEVICE, 1, NULL, NULL));
	must(st, enroll_rec(&r, "d2", IG_ROLE_DEVICE, 2, NULL, NULL));
	must(st, enroll_rec(&r, "d3", IG_ROLE_DEVICE, 3, NULL, NULL));
	must(st, enroll_rec(&r, "an1", IG_ROLE_ANALYST, 4, NULL, NULL));
}

/* ---- a refused record changes nothing ---------------------------------------- */

Test(state_atomic, an_enroll_through_a_used_code_enrols_nobody, .init = setup, .fini = teardown)
{
	enroll_devices(a);
	rec r;
	uint8_t code[IG_JOIN_CODE_ID_BYTES];
	tu_seq_bytes(code, sizeof code, 0x10);
	must(a, code_rec(&r, 0x10, IG_ROLE_DEVICE));
	must(a, enroll_rec(&r, "x", IG_ROLE_DEVICE, 9, code, NULL));
	/* The second claim of the code: before, "y" was enrolled and only then
	 * refused on the code. */
	refused(a, enroll_rec(&r, "y", IG_ROLE_DEVICE, 10, code, "zone1"), "already used");
	cr_expect_null(ig_state_identity(a, "y"), "a refused enroll enrolled its id");
	cr_expect_null(ig_state_zone(a, "y"));
}

Test(state_atomic, every_refusable_enroll_changes_nothing, .init = setup, .fini = teardown)
{
	enroll_devices(a);
	rec r;
	uint8_t code[IG_JOIN_CODE_ID_BYTES], stranger[IG_JOIN_CODE_ID_BYTES];
	tu_seq_bytes(code, sizeof code, 0x10);
	tu_seq_bytes(stranger, sizeof stranger, 0x17);
	must(a, code_rec(&r, 0x10, IG_ROLE_ANALYST));
	refused(a, enroll_rec(&r, "d1", IG_ROLE_DEVICE, 9, NULL, "z"), "already active");
	refused(a, enroll_rec(&r, "x", IG_ROLE_DEVICE, 9, stranger, "z"), "never created");
	refused(a, enroll_rec(&r, "x", IG_ROLE_DEVICE, 9, code, "z"), "grants");   /* the code is for analysts */
	must(a, revoke_rec(&r, "d3"));
	refused(a, enroll_rec(&r, "d3", IG_ROLE_ANALYST, 9, code, "z"), "only an admin may re-enrol");
	cr_expect_eq(ig_joincodes_find(ig_state_joincodes(a), code)->status, IG_CODE_UNUSED, "the code is still usable");
	must(a, enroll_rec(&r, "x", IG_ROLE_ANALYST, 9, code, "z"));
	cr_expect_str_eq(ig_state_zone(a, "x"), "z");
}

Test(state_atomic, every_refusable_identity_and_code_record_changes_nothing, .init = setup, .fini = teardown)
{
	enroll_devices(a);
	rec r;
	refused(a, revoke_rec(&r, "ghost"), "never enrolled");
	must(a, revoke_rec(&r, "d2"));
	refused(a, revoke_rec(&r, "d2"), "already revoked");
	must(a, code_rec(&r, 0x11, IG_ROLE_DEVICE));
	refused(a, code_rec(&r, 0x11, IG_ROLE_DEVICE), "created twice");
	refused(a, used_rec(&r, 0x12, "x"), "never created");
	uint8_t code[IG_JOIN_CODE_ID_BYTES];
	tu_seq_bytes(code, sizeof code, 0x11);
	must(a, enroll_rec(&r, "x", IG_ROLE_DEVICE, 9, code, NULL));
	refused(a, used_rec(&r, 0x11, "y"), "already used");
	must(a, used_rec(&r, 0x11, "x"));
}

Test(state_atomic, every_refusable_bank_record_changes_nothing, .init = setup, .fini = teardown)
{
	enroll_devices(a);
	rec r;
	must(a, credit_rec(&r, "d1", 3));
	refused(a, credit_rec(&r, "d1", UINT64_MAX), "overflows");
	refused(a, mint_rec(&r, "d1", 4, 0x40), "overdraft");
	must(a, mint_rec(&r, "d1", 2, 0x40));
	refused(a, mint_rec(&r, "d1", 1, 0x41), "minted twice");
	refused(a, redeem_rec(&r, 0x4f, "d1", "an1"), "not in the coin index");
	refused(a, redeem_rec(&r, 0x40, "d2", "an1"), "another collector");
	must(a, redeem_rec(&r, 0x40, "d1", "an1"));
	refused(a, redeem_rec(&r, 0x40, "d1", "an1"), "already redeemed");
	refused(a, refund_rec(&r, 0x40, "d1"), "already redeemed");
	must(a, refund_rec(&r, 0x41, "d1"));
	refused(a, refund_rec(&r, 0x41, "d1"), "already refunded");
	refused(a, redeem_rec(&r, 0x41, "d1", "an1"), "already refunded");
}

Test(state_atomic, every_refusable_custody_record_changes_nothing, .init = setup, .fini = teardown)
{
	enroll_devices(a);
	rec r;
	refused(a, custody_active_rec(&r, 1), "newest dealt");
	must(a, custody_epoch_rec(&r, 1, 0xc0));
	refused(a, custody_epoch_rec(&r, 1, 0xc0), "not above");
	refused(a, custody_sealed_rec(&r, 1, 0xc0), "not the active epoch");
	must(a, custody_active_rec(&r, 1));
	refused(a, custody_active_rec(&r, 1), "already active");
	refused(a, custody_bad_rec(&r, 1, "an1"), "holds no share");
	refused(a, custody_sealed_rec(&r, 1, 0xc1), "not commitment 0");
	must(a, custody_sealed_rec(&r, 1, 0xc0));
	refused(a, custody_epoch_rec(&r, 2, 0xc1), "sealed key's c0");
}

Test(state_atomic, every_refusable_key_ring_record_changes_nothing, .init = setup, .fini = teardown)
{
	enroll_devices(a);
	rec r;
	refused(a, kp_ring_rec(&r, 1, "d1", 0x01), "not the current epoch");
	must(a, kp_epoch_rec(&r, 1));
	refused(a, kp_epoch_rec(&r, 1), "not the next epoch");
	must(a, kp_ring_rec(&r, 1, "d1", 0x01));
	refused(a, kp_ring_rec(&r, 1, "d1", 0x01), "already has a ring");
	refused(a, kp_ring_rec(&r, 1, "ghost", 0x02), "not an active identity");
	refused(a, kp_compromised_rec(&r, a, 1, "d1"), "not revoked");
	must(a, revoke_rec(&r, "d1"));
	must(a, kp_compromised_rec(&r, a, 1, "d1"));
	refused(a, kp_compromised_rec(&r, a, 1, "d1"), "already compromised");
}

/* ---- two brokers race: the ledger's order decides, the loser is refused ------ */

/* Both states hold the same history. */
static void both(const rec *r)
{
	must(a, r);
	must(b, r);
}

static void same_state(void)
{
	char *sa = describe(a), *sb = describe(b);
	cr_expect_str_eq(sa, sb, "the two brokers disagree");
	free(sa);
	free(sb);
}

Test(state_race, two_joins_with_one_code_the_second_is_refused, .init = setup, .fini = teardown)
{
	rec r, ja, jb;
	enroll_devices(a);
	enroll_devices(b);
	both(code_rec(&r, 0x10, IG_ROLE_DEVICE));
	uint8_t code[IG_JOIN_CODE_ID_BYTES];
	tu_seq_bytes(code, sizeof code, 0x10);
	enroll_rec(&ja, "x", IG_ROLE_DEVICE, 9, code, NULL);    /* broker a's join */
	enroll_rec(&jb, "y", IG_ROLE_DEVICE, 10, code, NULL);   /* broker b's join, committed first */
	must(b, &jb);
	/* a follows b's record, then re-checks its own: refused, nothing enrolled. */
	must(a, &jb);
	refused(a, &ja, "already used");
	cr_expect_null(ig_state_identity(a, "x"));
	cr_expect_not_null(ig_state_active(a, "y", IG_ROLE_DEVICE));
	same_state();
}

Test(state_race, one_id_enrolled_on_two_brokers_the_second_is_refused, .init = setup, .fini = teardown)
{
	rec ra, rb;
	enroll_rec(&ra, "x", IG_ROLE_DEVICE, 9, NULL, NULL);
	enroll_rec(&rb, "x", IG_ROLE_ANALYST, 10, NULL, "zb");
	must(a, &ra);
	must(b, &ra);
	refused(b, &rb, "already active");
	cr_expect_eq(ig_state_identity(b, "x")->role, IG_ROLE_DEVICE, "the first enrolment stands");
	cr_expect_null(ig_state_zone(b, "x"));
	same_state();
}

Test(state_race, one_id_joined_on_two_brokers_with_two_codes_the_second_is_refused, .init = setup, .fini = teardown)
{
	rec r, ja, jb;
	both(code_rec(&r, 0x10, IG_ROLE_DEVICE));
	both(code_rec(&r, 0x11, IG_ROLE_DEVICE));
	uint8_t c1[IG_JOIN_CODE_ID_BYTES], c2[IG_JOIN_CODE_ID_BYTES];
	tu_seq_bytes(c1, sizeof c1, 0x10);
	tu_seq_bytes(c2, sizeof c2, 0x11);
	enroll_rec(&ja, "x", IG_ROLE_DEVICE, 9, c1, NULL);
	enroll_rec(&jb, "x", IG_ROLE_DEVICE, 10, c2, NULL);
	both(&ja);
	refused(b, &jb, "already active");
	cr_expect_eq(ig_joincodes_find(ig_state_joincodes(b), c2)->status, IG_CODE_UNUSED,
	             "the losing join's code stays usable");
	same_state();
}

Test(state_race, a_coin_redeemed_on_two_brokers_the_second_is_refused, .init = setup, .fini = teardown)
{
	rec r, ra, rb;
	enroll_devices(a);
	enroll_devices(b);
	both(enroll_rec(&r, "an2", IG_ROLE_ANALYST, 5, NULL, NULL));
	both(credit_rec(&r, "d1", 5));
	both(mint_rec(&r, "d1", 1, 0x40));
	redeem_rec(&ra, 0x40, "d1", "an1");
	redeem_rec(&rb, 0x40, "d1", "an2");
	/* a marked the coin in flight for its own redeem when b's record arrived. */
	uint8_t h[32];
	tu_seq_bytes(h, 32, 0x40);
	cr_assert_eq(ig_coins_set_in_flight(ig_state_coins(a), h, true), IG_OK);
	must(b, &rb);
	must(a, &rb);   /* the follower's record wins over the in-flight mark */
	refused(a, &ra, "already redeemed");
	ig_coin_info info;
	cr_assert_eq(ig_coins_find(ig_state_coins(a), h, &info), IG_OK);
	cr_expect_eq(info.state, IG_COIN_REDEEMED);
	cr_expect_not(info.in_flight, "applying the winner's redeem cleared the loser's mark");
	same_state();
}

Test(state_race, a_revocation_on_two_brokers_the_second_is_refused, .init = setup, .fini = teardown)
{
	rec r;
	enroll_devices(a);
	enroll_devices(b);
	both(credit_rec(&r, "d1", 5));
	both(mint_rec(&r, "d1", 2, 0x40));
	/* a put its revocation in force before b's record arrived. */
	cr_assert_eq(ig_registry_mark_revoked(ig_state_registry(a), "d1", 0), IG_OK);
	both(revoke_rec(&r, "d1"));
	refused(a, revoke_rec(&r, "d1"), "already revoked");
	refused(b, &r, "already revoked");
	cr_expect_neq(ig_state_identity(a, "d1")->revoked_index, 0, "the followed record made the revocation durable");
	same_state();
}

Test(state_race, custody_and_key_ring_epochs_reused_by_a_second_broker_are_refused, .init = setup, .fini = teardown)
{
	rec r;
	enroll_devices(a);
	enroll_devices(b);
	both(custody_epoch_rec(&r, 1, 0xc0));
	refused(a, custody_epoch_rec(&r, 1, 0xc1), "not above");
	both(custody_active_rec(&r, 1));
	refused(b, custody_active_rec(&r, 1), "already active");
	both(kp_epoch_rec(&r, 1));
	refused(a, kp_epoch_rec(&r, 1), "not the next epoch");
	both(kp_ring_rec(&r, 1, "d2", 0x07));
	refused(b, kp_ring_rec(&r, 1, "d2", 0x07), "already has a ring");
	both(revoke_rec(&r, "d2"));
	rec c;
	both(kp_compromised_rec(&c, a, 1, "d2"));
	refused(a, &c, "already compromised");
	same_state();
}
