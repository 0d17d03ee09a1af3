/*
 * test_registry.c: the identity index must follow exactly the ledger's
 * enroll/revoke semantics, refuse impossible sequences as corruption, keep
 * its counters right through every transition, and stay small and fast at
 * scale.
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "ig_registry.h"
#include "testutil.h"

static uint64_t next_index;

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	next_index = 1;
}

TestSuite(registry, .init = setup);

static void fake_pk(uint8_t pk[32], uint32_t n)
{
	memset(pk, 0, 32);
	ig_put_u32(pk, n);
	pk[31] = 0x5a;
}

static int apply_enroll(ig_registry *r, const char *id, ig_role role, uint32_t keyno, ig_error *err)
{
	ig_enroll e = {0};
	snprintf(e.id, sizeof e.id, "%s", id);
	snprintf(e.by, sizeof e.by, "admin1");
	e.role = role;
	fake_pk(e.pk, keyno);
	uint8_t body[256];
	int n = ig_record_enroll_encode(body, sizeof body, &e);
	cr_assert_gt(n, 0, "encode enroll %s", id);
	ig_record rec = {.index = next_index++, .ts_ms = 1000 * next_index, .type = IG_REC_ENROLL,
	                 .body = body, .body_len = (uint32_t)n};
	return ig_registry_apply(r, &rec, err);
}

static int apply_revoke(ig_registry *r, const char *id, ig_error *err)
{
	ig_revoke v = {0};
	snprintf(v.id, sizeof v.id, "%s", id);
	snprintf(v.reason, sizeof v.reason, "lost");
	snprintf(v.by, sizeof v.by, "admin1");
	uint8_t body[512];
	int n = ig_record_revoke_encode(body, sizeof body, &v);
	cr_assert_gt(n, 0);
	ig_record rec = {.index = next_index++, .ts_ms = 5, .type = IG_REC_REVOKE, .body = body,
	                 .body_len = (uint32_t)n};
	return ig_registry_apply(r, &rec, err);
}

Test(registry, status_names)
{
	cr_assert_str_eq(ig_registry_status_name(IG_ID_PENDING), "pending");
	cr_assert_str_eq(ig_registry_status_name(IG_ID_ACTIVE), "active");
	cr_assert_str_eq(ig_registry_status_name(IG_ID_REVOKED), "revoked");
	cr_assert_str_eq(ig_registry_status_name((ig_id_status)9), "unknown");
}

/* The ACL skips its registry lookup while the generation is unchanged, so
 * every call that can change an identity must move it. */
Test(registry, every_change_moves_the_generation)
{
	ig_registry *r = ig_registry_new();
	ig_error err = {0};
	cr_assert_not_null(r);
	uint8_t pk[32];
	fake_pk(pk, 7);
	uint64_t g = ig_registry_generation(r);
	cr_assert_gt(g, 0, "0 means 'unknown' to the ACL cache");
	cr_assert_eq(apply_enroll(r, "dev1", IG_ROLE_DEVICE, 1, &err), IG_OK, "%s", err.msg);
	cr_assert_gt(ig_registry_generation(r), g, "enrol");
	g = ig_registry_generation(r);
	cr_assert_eq(ig_registry_reserve(r, "dev2", IG_ROLE_DEVICE, pk), IG_OK);
	cr_assert_gt(ig_registry_generation(r), g, "reserve");
	g = ig_registry_generation(r);
	ig_registry_release(r, "dev2");
	cr_assert_gt(ig_registry_generation(r), g, "release");
	g = ig_registry_generation(r);
	cr_assert_eq(ig_registry_mark_revoked(r, "dev1", 0), IG_OK);
	cr_assert_gt(ig_registry_generation(r), g, "mark_revoked");
	g = ig_registry_generation(r);
	cr_assert_eq(apply_revoke(r, "dev1", &err), IG_OK, "%s", err.msg);
	cr_assert_gt(ig_registry_generation(r), g, "revoke record");
	g = ig_registry_generation(r);
	cr_assert_not_null(ig_registry_find(r, "dev1", 4));
	cr_assert_eq(ig_registry_generation(r), g, "a lookup changes nothing");
	ig_registry_free(r);
}

Test(registry, enroll_revoke_reenroll)
{
	ig_registry *r = ig_registry_new();
	ig_error err = {0};
	cr_assert_not_null(r);
	cr_assert_null(ig_registry_find(r, "dev1", 4));

	cr_assert_eq(apply_enroll(r, "dev1", IG_ROLE_DEVICE, 1, &err), IG_OK, "%s", err.msg);
	const ig_identity *e = ig_registry_find(r, "dev1", 4);
	cr_assert_not_null(e);
	uint8_t pk[32];
	fake_pk(pk, 1);
	cr_assert_eq(memcmp(e->pk, pk, 32), 0);
	cr_assert_eq(e->status, IG_ID_ACTIVE);
	cr_assert_eq(e->role, IG_ROLE_DEVICE);
	cr_assert_eq(e->enrolled_index, 1);
	cr_assert_eq(e->enrolled_ts_ms, 2000);
	cr_assert_eq(e->revoked_index, 0);
	cr_assert_eq(e->id_len, 4);
	cr_assert_str_eq(e->id, "dev1");

	cr_assert_eq(apply_revoke(r, "dev1", &err), IG_OK, "%s", err.msg);
	e = ig_registry_find(r, "dev1", 4);
	cr_assert_eq(e->status, IG_ID_REVOKED);
	cr_assert_eq(e->revoked_index, 2);
	cr_assert_eq(ig_registry_count(r, IG_ID_REVOKED, IG_ROLE_DEVICE), 1);
	cr_assert_eq(ig_registry_count(r, IG_ID_ACTIVE, IG_ROLE_NONE), 0);

	/* re-enroll with a new key and role */
	cr_assert_eq(apply_enroll(r, "dev1", IG_ROLE_MONITOR, 2, &err), IG_OK, "%s", err.msg);
	e = ig_registry_find(r, "dev1", 4);
	fake_pk(pk, 2);
	cr_assert_eq(memcmp(e->pk, pk, 32), 0);
	cr_assert_eq(e->status, IG_ID_ACTIVE);
	cr_assert_eq(e->role, IG_ROLE_MONITOR);
	cr_assert_eq(e->enrolled_index, 3);
	cr_assert_eq(e->revoked_index, 0);
	cr_assert_eq(ig_registry_count(r, IG_ID_REVOKED, IG_ROLE_NONE), 0);
	cr_assert_eq(ig_registry_count(r, IG_ID_ACTIVE, IG_ROLE_MONITOR), 1);
	cr_assert_eq(ig_registry_count(r, IG_ID_ACTIVE, IG_ROLE_DEVICE), 0);
	ig_registry_free(r);
}

Test(registry, invalid_sequences_are_corrupt)
{
	ig_registry *r = ig_registry_new();
	ig_error err = {0};
	cr_assert_eq(apply_revoke(r, "ghost", &err), IG_ERR_CORRUPT);
	cr_assert_not_null(strstr(err.msg, "ghost"), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "never enrolled"), "%s", err.msg);

	cr_assert_eq(apply_enroll(r, "a", IG_ROLE_DEVICE, 1, NULL), IG_OK);
	cr_assert_eq(apply_enroll(r, "a", IG_ROLE_DEVICE, 2, &err), IG_ERR_CORRUPT);
	cr_assert_not_null(strstr(err.msg, "already active"), "%s", err.msg);
	/* the failed apply changed nothing */
	uint8_t pk[32];
	fake_pk(pk, 1);
	cr_assert_eq(memcmp(ig_registry_find(r, "a", 1)->pk, pk, 32), 0);

	cr_assert_eq(apply_revoke(r, "a", NULL), IG_OK);
	cr_assert_eq(apply_revoke(r, "a", &err), IG_ERR_CORRUPT);
	cr_assert_not_null(strstr(err.msg, "already revoked"), "%s", err.msg);
	cr_assert_eq(ig_registry_count(r, IG_ID_REVOKED, IG_ROLE_NONE), 1);
	ig_registry_free(r);
}

Test(registry, decode_errors_name_the_field)
{
	ig_registry *r = ig_registry_new();
	ig_error err = {0};
	/* enroll body missing the pubkey */
	uint8_t body[128];
	size_t pos = 0;
	uint8_t role = IG_ROLE_DEVICE;
	cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, IG_TAG_ENROLL_ID, "x", 1), IG_OK);
	cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, IG_TAG_ENROLL_ROLE, &role, 1), IG_OK);
	cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, IG_TAG_ENROLL_BY, "a", 1), IG_OK);
	ig_record rec = {.index = 1, .type = IG_REC_ENROLL, .body = body, .body_len = (uint32_t)pos};
	cr_assert_eq(ig_registry_apply(r, &rec, &err), IG_ERR_CORRUPT);
	cr_assert_eq(err.code, IG_ERR_CORRUPT);
	cr_assert_not_null(strstr(err.msg, "pubkey"), "%s", err.msg);

	/* bad role byte */
	pos = 0;
	uint8_t pk[32] = {0};
	role = 9;
	ig_record_tlv_put(body, sizeof body, &pos, IG_TAG_ENROLL_ID, "x", 1);
	ig_record_tlv_put(body, sizeof body, &pos, IG_TAG_ENROLL_ROLE, &role, 1);
	ig_record_tlv_put(body, sizeof body, &pos, IG_TAG_ENROLL_PK, pk, 32);
	ig_record_tlv_put(body, sizeof body, &pos, IG_TAG_ENROLL_BY, "a", 1);
	rec.body_len = (uint32_t)pos;
	cr_assert_eq(ig_registry_apply(r, &rec, &err), IG_ERR_CORRUPT);
	cr_assert_not_null(strstr(err.msg, "role"), "%s", err.msg);

	/* truncated revoke body */
	uint8_t junk[] = {IG_TAG_REVOKE_ID, 0x00, 0x10, 'a'};
	ig_record rv = {.index = 2, .type = IG_REC_REVOKE, .body = junk, .body_len = sizeof junk};
	cr_assert_eq(ig_registry_apply(r, &rv, &err), IG_ERR_CORRUPT);
	cr_assert_eq(ig_registry_count(r, IG_ID_ACTIVE, IG_ROLE_NONE), 0);
	cr_assert_null(ig_registry_find(r, "x", 1));
	ig_registry_free(r);
}

Test(registry, unknown_types_and_genesis_ignored)
{
	ig_registry *r = ig_registry_new();
	uint8_t junk[3] = {1, 2, 3};
	ig_record rec = {.index = 0, .type = IG_REC_GENESIS, .body = junk, .body_len = 3};
	cr_assert_eq(ig_registry_apply(r, &rec, NULL), IG_OK);
	rec.type = 17;
	cr_assert_eq(ig_registry_apply(r, &rec, NULL), IG_OK);
	rec.type = 999;
	cr_assert_eq(ig_registry_apply(r, &rec, NULL), IG_OK);
	cr_assert_eq(ig_registry_count(r, IG_ID_ACTIVE, IG_ROLE_NONE), 0);
	ig_registry_free(r);
}

Test(registry, find_edge_cases)
{
	ig_registry *r = ig_registry_new();
	cr_assert_eq(apply_enroll(r, "abc", IG_ROLE_DEVICE, 1, NULL), IG_OK);
	cr_assert_null(ig_registry_find(r, "ab", 2));
	cr_assert_null(ig_registry_find(r, "abcd", 4));
	cr_assert_not_null(ig_registry_find(r, "abcd", 3), "length, not NUL, delimits the id");
	cr_assert_null(ig_registry_find(r, "", 0));
	cr_assert_null(ig_registry_find(r, NULL, 3));
	cr_assert_null(ig_registry_find(NULL, "abc", 3));
	char longid[200];
	memset(longid, 'a', sizeof longid);
	cr_assert_null(ig_registry_find(r, longid, sizeof longid));
	ig_registry_free(r);
}

Test(registry, reserve_release)
{
	ig_registry *r = ig_registry_new();
	uint8_t pk[32];
	fake_pk(pk, 7);
	cr_assert_eq(ig_registry_reserve(r, "p1", IG_ROLE_ANALYST, pk), IG_OK);
	const ig_identity *e = ig_registry_find(r, "p1", 2);
	cr_assert_not_null(e);
	cr_assert_eq(e->status, IG_ID_PENDING);
	cr_assert_eq(e->role, IG_ROLE_ANALYST);
	cr_assert_eq(ig_registry_count(r, IG_ID_PENDING, IG_ROLE_ANALYST), 1);
	cr_assert_eq(ig_registry_reserve(r, "p1", IG_ROLE_ANALYST, pk), IG_ERR_EXISTS);

	ig_registry_release(r, "p1");
	cr_assert_null(ig_registry_find(r, "p1", 2));
	cr_assert_eq(ig_registry_count(r, IG_ID_PENDING, IG_ROLE_NONE), 0);

	/* reserve then the durable record arrives */
	cr_assert_eq(ig_registry_reserve(r, "p1", IG_ROLE_ANALYST, pk), IG_OK);
	cr_assert_eq(apply_enroll(r, "p1", IG_ROLE_ANALYST, 7, NULL), IG_OK);
	e = ig_registry_find(r, "p1", 2);
	cr_assert_eq(e->status, IG_ID_ACTIVE);
	cr_assert_eq(ig_registry_count(r, IG_ID_PENDING, IG_ROLE_NONE), 0);
	cr_assert_eq(ig_registry_count(r, IG_ID_ACTIVE, IG_ROLE_ANALYST), 1);
	/* release of an active id does nothing */
	ig_registry_release(r, "p1");
	cr_assert_not_null(ig_registry_find(r, "p1", 2));
	cr_assert_eq(ig_registry_reserve(r, "p1", IG_ROLE_ANALYST, pk), IG_ERR_EXISTS);

	/* bad arguments */
	cr_assert_eq(ig_registry_reserve(r, "bad id", IG_ROLE_DEVICE, pk), IG_ERR_INVAL);
	cr_assert_eq(ig_registry_reserve(r, "ok", IG_ROLE_NONE, pk), IG_ERR_INVAL);
	cr_assert_eq(ig_registry_reserve(r, "ok", (ig_role)IG_ROLE_COUNT, pk), IG_ERR_INVAL);
	ig_registry_free(r);
}

Test(registry, reserve_over_revoked_and_release_restores)
{
	ig_registry *r = ig_registry_new();
	cr_assert_eq(apply_enroll(r, "d", IG_ROLE_DEVICE, 1, NULL), IG_OK);
	cr_assert_eq(apply_revoke(r, "d", NULL), IG_OK);
	uint8_t pk2[32], pk1[32];
	fake_pk(pk1, 1);
	fake_pk(pk2, 2);
	cr_assert_eq(ig_registry_reserve(r, "d", IG_ROLE_ADMIN, pk2), IG_OK);
	const ig_identity *e = ig_registry_find(r, "d", 1);
	cr_assert_eq(e->status, IG_ID_PENDING);
	cr_assert_eq(ig_registry_count(r, IG_ID_REVOKED, IG_ROLE_NONE), 0);
	cr_assert_eq(ig_registry_count(r, IG_ID_PENDING, IG_ROLE_ADMIN), 1);

	ig_registry_release(r, "d");
	e = ig_registry_find(r, "d", 1);
	cr_assert_not_null(e, "release must restore the revoked entry, not drop it");
	cr_assert_eq(e->status, IG_ID_REVOKED);
	cr_assert_eq(e->role, IG_ROLE_DEVICE);
	cr_assert_eq(e->revoked_index, 2);
	cr_assert_eq(memcmp(e->pk, pk1, 32), 0);
	cr_assert_eq(ig_registry_count(r, IG_ID_REVOKED, IG_ROLE_DEVICE), 1);
	cr_assert_eq(ig_registry_count(r, IG_ID_PENDING, IG_ROLE_NONE), 0);

	/* this time it becomes durable */
	cr_assert_eq(ig_registry_reserve(r, "d", IG_ROLE_ADMIN, pk2), IG_OK);
	cr_assert_eq(apply_enroll(r, "d", IG_ROLE_ADMIN, 2, NULL), IG_OK);
	e = ig_registry_find(r, "d", 1);
	cr_assert_eq(e->status, IG_ID_ACTIVE);
	cr_assert_eq(e->revoked_index, 0);
	cr_assert_eq(memcmp(e->pk, pk2, 32), 0);
	ig_registry_release(r, "d"); /* late release after success: no effect */
	cr_assert_eq(ig_registry_find(r, "d", 1)->status, IG_ID_ACTIVE);
	cr_assert_eq(ig_registry_count(r, IG_ID_ACTIVE, IG_ROLE_ADMIN), 1);
	cr_assert_eq(ig_registry_count(r, IG_ID_REVOKED, IG_ROLE_NONE), 0);
	ig_registry_free(r);
}

Test(registry, mark_revoked)
{
	ig_registry *r = ig_registry_new();
	ig_error err = {0};
	uint8_t pk[32];
	fake_pk(pk, 1);
	cr_assert_eq(ig_registry_mark_revoked(r, "nobody", 5), IG_ERR_NOTFOUND);
	cr_assert_eq(apply_enroll(r, "m", IG_ROLE_DEVICE, 1, NULL), IG_OK);
	cr_assert_eq(ig_registry_mark_revoked(r, "m", 0), IG_OK);
	const ig_identity *e = ig_registry_find(r, "m", 1);
	cr_assert_eq(e->status, IG_ID_REVOKED, "fail closed at once");
	cr_assert_eq(ig_registry_count(r, IG_ID_REVOKED, IG_ROLE_DEVICE), 1);
	cr_assert_eq(ig_registry_count(r, IG_ID_ACTIVE, IG_ROLE_NONE), 0);
	cr_assert_eq(ig_registry_mark_revoked(r, "m", 0), IG_OK, "repeating while in flight is harmless");
	cr_assert_eq(e->revoked_index, 0);
	/* no re-enroll while the revocation is in flight */
	cr_assert_eq(ig_registry_reserve(r, "m", IG_ROLE_DEVICE, pk), IG_ERR_STATE);
	/* the durable revoke record lands */
	cr_assert_eq(apply_revoke(r, "m", &err), IG_OK, "%s", err.msg);
	cr_assert_eq(e->revoked_index, 2);
	/* a second one would be corruption */
	cr_assert_eq(apply_revoke(r, "m", &err), IG_ERR_CORRUPT);
	/* now re-enroll is allowed */
	cr_assert_eq(ig_registry_reserve(r, "m", IG_ROLE_DEVICE, pk), IG_OK);

	/* the other way to confirm: mark_revoked again with the durable index */
	cr_assert_eq(apply_enroll(r, "n", IG_ROLE_DEVICE, 3, NULL), IG_OK);
	cr_assert_eq(ig_registry_mark_revoked(r, "n", 0), IG_OK);
	cr_assert_eq(ig_registry_reserve(r, "n", IG_ROLE_DEVICE, pk), IG_ERR_STATE);
	cr_assert_eq(ig_registry_mark_revoked(r, "n", 42), IG_OK);
	const ig_identity *n = ig_registry_find(r, "n", 1);
	cr_assert_eq(n->status, IG_ID_REVOKED);
	cr_assert_eq(n->revoked_index, 42);
	cr_assert_eq(ig_registry_mark_revoked(r, "n", 43), IG_ERR_STATE, "durably revoked: nothing to confirm");
	cr_assert_eq(n->revoked_index, 42);
	cr_assert_eq(apply_revoke(r, "n", NULL), IG_ERR_CORRUPT, "already durable");
	cr_assert_eq(ig_registry_reserve(r, "n", IG_ROLE_DEVICE, pk), IG_OK);

	/* pending ids cannot be marked revoked */
	cr_assert_eq(ig_registry_reserve(r, "q", IG_ROLE_DEVICE, pk), IG_OK);
	cr_assert_eq(ig_registry_mark_revoked(r, "q", 0), IG_ERR_STATE);
	ig_registry_free(r);
}

static bool count_fn(void *ctx, const ig_identity *idn)
{
	(void)idn;
	(*(size_t *)ctx)++;
	return true;
}

typedef struct collect {
	char ids[64][8];
	int n;
	int stop_after;
} collect;

static bool collect_fn(void *ctx, const ig_identity *idn)
{
	collect *c = ctx;
	snprintf(c->ids[c->n++], 8, "%s", idn->id);
	return c->n != c->stop_after;
}

Test(registry, insertion_order_iteration)
{
	ig_registry *r = ig_registry_new();
	uint8_t pk[32] = {0};
	const char *ids[] = {"zeta", "alpha", "mid", "beta", "omega"};
	for (int i = 0; i < 5; i++)
		cr_assert_eq(apply_enroll(r, ids[i], IG_ROLE_DEVICE, (uint32_t)i, NULL), IG_OK);
	/* revoke + re-enroll keeps the original position */
	cr_assert_eq(apply_revoke(r, "alpha", NULL), IG_OK);
	cr_assert_eq(apply_enroll(r, "alpha", IG_ROLE_DEVICE, 9, NULL), IG_OK);
	/* a released reservation in the middle leaves no trace */
	cr_assert_eq(ig_registry_reserve(r, "gone", IG_ROLE_DEVICE, pk), IG_OK);
	cr_assert_eq(apply_enroll(r, "last", IG_ROLE_DEVICE, 10, NULL), IG_OK);
	ig_registry_release(r, "gone");

	collect c = {.stop_after = -1};
	ig_registry_foreach(r, collect_fn, &c);
	cr_assert_eq(c.n, 6);
	const char *want[] = {"zeta", "alpha", "mid", "beta", "omega", "last"};
	for (int i = 0; i < 6; i++)
		cr_assert_str_eq(c.ids[i], want[i]);

	collect s = {.stop_after = 2};
	ig_registry_foreach(r, collect_fn, &s);
	cr_assert_eq(s.n, 2, "returning false stops the walk");
	ig_registry_free(r);
}

Test(registry, many_reserve_release_cycles)
{
	/* Exercises free-list reuse, hole compaction and backward-shift delete. */
	ig_registry *r = ig_registry_new();
	uint8_t pk[32] = {0};
	char id[32];
	for (int i = 0; i < 2000; i++) {
		snprintf(id, sizeof id, "keep-%d", i);
		cr_assert_eq(apply_enroll(r, id, IG_ROLE_DEVICE, (uint32_t)i, NULL), IG_OK);
		snprintf(id, sizeof id, "tmp-%d", i);
		cr_assert_eq(ig_registry_reserve(r, id, IG_ROLE_DEVICE, pk), IG_OK);
	}
	for (int i = 0; i < 2000; i += 1) {
		snprintf(id, sizeof id, "tmp-%d", i);
		ig_registry_release(r, id);
		cr_assert_null(ig_registry_find(r, id, strlen(id)));
	}
	for (int i = 0; i < 2000; i++) {
		snprintf(id, sizeof id, "keep-%d", i);
		const ig_identity *e = ig_registry_find(r, id, strlen(id));
		cr_assert_not_null(e, "%s lost after deletes", id);
		cr_assert_eq(ig_get_u32(e->pk), (uint32_t)i);
	}
	cr_assert_eq(ig_registry_count(r, IG_ID_PENDING, IG_ROLE_NONE), 0);
	cr_assert_eq(ig_registry_count(r, IG_ID_ACTIVE, IG_ROLE_NONE), 2000);
	size_t walked = 0;
	ig_registry_foreach(r, count_fn, &walked);
	cr_assert_eq(walked, 2000);
	ig_registry_free(r);
}

Test(registry, scale_100k_and_memory_budget)
{
	const int n = 100000;
	ig_registry *r = ig_registry_new();
	size_t empty = ig_registry_memory(r);
	cr_assert_gt(empty, 0);
	char id[40];
	for (int i = 0; i < n; i++) {
		/* realistic ids: 16 characters */
		snprintf(id, sizeof id, "sensor-%09d", i);
		cr_assert_eq(apply_enroll(r, id, (ig_role)(1 + i % 4), (uint32_t)i, NULL), IG_OK);
	}
	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof id, "sensor-%09d", i);
		const ig_identity *e = ig_registry_find(r, id, strlen(id));
		cr_assert_not_null(e);
		cr_assert_eq(ig_get_u32(e->pk), (uint32_t)i);
	}
	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof id, "sensor-%09d", n + i);
		cr_assert_null(ig_registry_find(r, id, strlen(id)));
	}
	cr_assert_eq(ig_registry_count(r, IG_ID_ACTIVE, IG_ROLE_NONE), (uint64_t)n);
	for (int role = 1; role <= 4; role++)
		cr_assert_eq(ig_registry_count(r, IG_ID_ACTIVE, (ig_role)role), (uint64_t)n / 4);
	size_t mem = ig_registry_memory(r);
	double per = (double)mem / n;
	cr_log_info("registry: %zu bytes for %d identities = %.1f bytes each", mem, n, per);
	cr_assert_lt(per, 300.0, "%.1f bytes per identity", per);

	/* longest ids stay within budget too */
	ig_registry *r2 = ig_registry_new();
	char lid[IG_ID_MAX + 1];
	for (int i = 0; i < 20000; i++) {
		snprintf(lid, sizeof lid, "%064d", i);
		cr_assert_eq(apply_enroll(r2, lid, IG_ROLE_DEVICE, (uint32_t)i, NULL), IG_OK);
	}
	per = (double)ig_registry_memory(r2) / 20000;
	cr_assert_lt(per, 300.0, "64-char ids: %.1f bytes per identity", per);
	ig_registry_free(r2);
	ig_registry_free(r);
}

/* A random walk of operations, checked against a plain array model. */
Test(registry, random_ops_match_model)
{
	enum { N = 300 };
	struct { int status; int role; uint32_t key; bool inflight; bool shadow; int prev_status; } m[N];
	for (int i = 0; i < N; i++)
		m[i].status = -1;
	ig_registry *r = ig_registry_new();
	char id[16];
	uint8_t pk[32];
	for (int step = 0; step < 20000; step++) {
		int i = (int)randombytes_uniform(N);
		snprintf(id, sizeof id, "id%d", i);
		int op = (int)randombytes_uniform(5);
		int role = 1 + (int)randombytes_uniform(4);
		uint32_t key = randombytes_random();
		int rc;
		switch (op) {
		case 0: /* durable enroll */
			rc = apply_enroll(r, id, (ig_role)role, key, NULL);
			if (m[i].status == IG_ID_ACTIVE || (m[i].status == IG_ID_REVOKED && m[i].inflight)) {
				cr_assert_eq(rc, IG_ERR_CORRUPT);
			} else {
				cr_assert_eq(rc, IG_OK);
				m[i].status = IG_ID_ACTIVE, m[i].role = role, m[i].key = key, m[i].inflight = false;
			}
			break;
		case 1: /* durable revoke */
			rc = apply_revoke(r, id, NULL);
			if (m[i].status == IG_ID_ACTIVE || (m[i].status == IG_ID_REVOKED && m[i].inflight)) {
				cr_assert_eq(rc, IG_OK);
				m[i].status = IG_ID_REVOKED, m[i].inflight = false;
			} else {
				cr_assert_eq(rc, IG_ERR_CORRUPT);
			}
			break;
		case 2: /* reserve */
			fake_pk(pk, key);
			rc = ig_registry_reserve(r, id, (ig_role)role, pk);
			if (m[i].status == IG_ID_ACTIVE || m[i].status == IG_ID_PENDING) {
				cr_assert_eq(rc, IG_ERR_EXISTS);
			} else if (m[i].status == IG_ID_REVOKED && m[i].inflight) {
				cr_assert_eq(rc, IG_ERR_STATE);
			} else {
				cr_assert_eq(rc, IG_OK);
				m[i].shadow = m[i].status == IG_ID_REVOKED;
				m[i].prev_status = m[i].status;
				m[i].status = IG_ID_PENDING;
				m[i].role = role;
				m[i].key = key;
			}
			break;
		case 3: /* release */
			ig_registry_release(r, id);
			if (m[i].status == IG_ID_PENDING) {
				if (m[i].shadow) {
					m[i].status = IG_ID_REVOKED;
					m[i].role = -1; /* restored; role/key checked below only if known */
				} else {
					m[i].status = -1;
				}
			}
			break;
		case 4: { /* mark revoked; index 0 = fail closed now, else durable confirmation */
			uint64_t idx = randombytes_uniform(2);
			rc = ig_registry_mark_revoked(r, id, idx);
			if (m[i].status == IG_ID_ACTIVE) {
				cr_assert_eq(rc, IG_OK);
				m[i].status = IG_ID_REVOKED, m[i].inflight = true;
			} else if (m[i].status == IG_ID_REVOKED && m[i].inflight) {
				cr_assert_eq(rc, IG_OK);
				if (idx)
					m[i].inflight = false;
			} else {
				cr_assert_neq(rc, IG_OK);
			}
			break;
		}
		}
		if (m[i].status == IG_ID_PENDING && op == 0)
			m[i].shadow = false;
	}
	uint64_t want[3] = {0};
	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof id, "id%d", i);
		const ig_identity *e = ig_registry_find(r, id, strlen(id));
		if (m[i].status < 0) {
			cr_assert_null(e, "%s should be absent", id);
			continue;
		}
		cr_assert_not_null(e, "%s missing", id);
		cr_assert_eq(e->status, m[i].status, "%s status", id);
		if (m[i].role > 0) {
			cr_assert_eq(e->role, m[i].role, "%s role", id);
			cr_assert_eq(ig_get_u32(e->pk), m[i].key, "%s key", id);
		}
		want[m[i].status]++;
	}
	for (int st = 0; st < 3; st++)
		cr_assert_eq(ig_registry_count(r, (ig_id_status)st, IG_ROLE_NONE), want[st], "count status %d", st);
	ig_registry_free(r);
}

/* Issue 7: a join code never claims an id the ledger ever enrolled. */
static int apply_join_enroll(ig_registry *r, const char *id, uint32_t keyno, ig_error *err)
{
	ig_enroll e = {0};
	snprintf(e.id, sizeof e.id, "%s", id);
	snprintf(e.by, sizeof e.by, "join:1011121314151617");
	e.role = IG_ROLE_DEVICE;
	e.has_join_code = true;
	tu_seq_bytes(e.join_code, 8, 0x10);
	fake_pk(e.pk, keyno);
	uint8_t body[512];
	int n = ig_record_enroll_encode(body, sizeof body, &e);
	cr_assert_gt(n, 0);
	ig_record rec = {.index = next_index++, .ts_ms = 7, .type = IG_REC_ENROLL, .body = body,
	                 .body_len = (uint32_t)n};
	return ig_registry_apply(r, &rec, err);
}

Test(registry, join_enroll_of_a_revoked_id_is_corrupt)
{
	ig_registry *r = ig_registry_new();
	ig_error err = {0};
	cr_assert_eq(apply_join_enroll(r, "fresh", 1, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(apply_enroll(r, "old", IG_ROLE_DEVICE, 2, &err), IG_OK);
	cr_assert_eq(apply_revoke(r, "old", &err), IG_OK);
	cr_assert_eq(apply_join_enroll(r, "old", 3, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "join code") && strstr(err.msg, "old"), "%s", err.msg);
	const ig_identity *idn = ig_registry_find(r, "old", 3);
	cr_assert_eq(idn->status, IG_ID_REVOKED, "the refused record changes nothing");
	/* an admin's enroll (no code) of the revoked id is still allowed */
	cr_assert_eq(apply_enroll(r, "old", IG_ROLE_DEVICE, 4, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_registry_find(r, "old", 3)->status, IG_ID_ACTIVE);
	ig_registry_free(r);
}

/* A replay that knows how many enrolls are coming sizes the tables once:
 * adding that many ids then grows no table (no rehash, no moment with two
 * slot tables), and the layout stays within its budget. */
Test(registry, expect_sizes_the_tables_once)
{
	const int n = 100000;
	ig_registry *r = ig_registry_new();
	cr_assert_eq(ig_registry_expect(r, (uint64_t)n), IG_OK);
	size_t sized = ig_registry_memory(r);
	/* slots for n at <= 3/4 load (a power of two) and order[] for n */
	cr_assert_geq(sized, (size_t)n * 4 / 3 * 8 + (size_t)n * sizeof(void *));
	cr_assert_eq(ig_registry_expect(r, (uint64_t)n), IG_OK);
	cr_assert_eq(ig_registry_memory(r), sized, "a second expect of the same ids must not grow anything");
	char id[40];
	size_t arena_before_ids = sized;
	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof id, "sensor-%09d", i);
		cr_assert_eq(apply_enroll(r, id, IG_ROLE_DEVICE, (uint32_t)i, NULL), IG_OK);
	}
	size_t mem = ig_registry_memory(r);
	/* Only the entry arena grew: 16-char ids take 80-byte entries. */
	size_t arena = mem - arena_before_ids;
	cr_assert_leq(arena, (size_t)n * 80 + (8u << 20), "%zu bytes beyond the sized tables", arena);
	cr_assert_lt((double)mem / n, 300.0);
	for (int i = 0; i < n; i += 997) {
		snprintf(id, sizeof id, "sensor-%09d", i);
		const ig_identity *e = ig_registry_find(r, id, strlen(id));
		cr_assert_not_null(e);
		cr_assert_eq(ig_get_u32(e->pk), (uint32_t)i);
		ig_registry_prefetch(r, id, strlen(id));   /* a hint: changes nothing */
	}
	ig_registry_prefetch(r, "", 0);
	ig_registry_prefetch(NULL, "x", 1);
	cr_assert_eq(ig_registry_count(r, IG_ID_ACTIVE, IG_ROLE_NONE), (uint64_t)n);
	/* expect(0) and an absurd count are harmless */
	cr_assert_eq(ig_registry_expect(r, 0), IG_OK);
	cr_assert_eq(ig_registry_memory(r), mem);
	cr_assert_eq(ig_registry_expect(NULL, 5), IG_ERR_INVAL);
	ig_registry_free(r);
}

/* ig_registry_apply_enroll takes a body already decoded (the state's replay
 * decodes each enroll once): it keeps every rule of ig_registry_apply,
 * including the field rules for a struct its caller filled in by hand. */
Test(registry, apply_enroll_of_a_decoded_body_keeps_every_rule)
{
	ig_registry *r = ig_registry_new();
	ig_error err = {0};
	ig_enroll e = {0};
	snprintf(e.id, sizeof e.id, "dev1");
	snprintf(e.by, sizeof e.by, "admin1");
	e.role = IG_ROLE_DEVICE;
	fake_pk(e.pk, 1);
	ig_record rec = {.index = 5, .ts_ms = 77, .type = IG_REC_ENROLL};

	cr_assert_eq(ig_registry_apply_enroll(r, &rec, &e, &err), IG_OK, "%s", err.msg);
	const ig_identity *idn = ig_registry_find(r, "dev1", 4);
	cr_assert_not_null(idn);
	cr_assert_eq(idn->status, IG_ID_ACTIVE);
	cr_assert_eq(idn->enrolled_index, 5);
	cr_assert_eq(idn->enrolled_ts_ms, 77);
	cr_assert_eq(memcmp(idn->pk, e.pk, 32), 0);

	rec.index = 6;
	cr_assert_eq(ig_registry_apply_enroll(r, &rec, &e, &err), IG_ERR_CORRUPT);
	cr_assert_str_eq(err.msg, "enroll of \"dev1\", which is already active");

	ig_enroll bad = e;
	snprintf(bad.id, sizeof bad.id, "de v2");
	cr_assert_eq(ig_registry_apply_enroll(r, &rec, &bad, &err), IG_ERR_CORRUPT);
	cr_assert_str_eq(err.msg, "enroll record: field id is not a valid identity id");
	bad = e;
	snprintf(bad.id, sizeof bad.id, "dev2");
	bad.role = IG_ROLE_COUNT;
	cr_assert_eq(ig_registry_apply_enroll(r, &rec, &bad, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "is not a known role"), "%s", err.msg);
	cr_assert_null(ig_registry_find(r, "dev2", 4), "a refused enroll adds nothing");

	ig_record other = rec;
	other.type = IG_REC_REVOKE;
	cr_assert_eq(ig_registry_apply_enroll(r, &other, &e, &err), IG_ERR_INVAL);
	cr_assert_eq(ig_registry_apply_enroll(r, &rec, NULL, &err), IG_ERR_INVAL);

	/* The join-code rule: a code never claims an id enrolled before. */
	cr_assert_eq(apply_revoke(r, "dev1", &err), IG_OK, "%s", err.msg);
	ig_enroll join = e;
	join.has_join_code = true;
	tu_seq_bytes(join.join_code, 8, 0x10);
	cr_assert_eq(ig_registry_apply_enroll(r, &rec, &join, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "join code") && strstr(err.msg, "dev1"), "%s", err.msg);
	cr_assert_eq(ig_registry_count(r, IG_ID_ACTIVE, IG_ROLE_NONE), 0);
	ig_registry_free(r);
}
