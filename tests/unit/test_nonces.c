/*
 * test_nonces.c: the single-use token cache (lib/identity/nonces.c): a nonce is
 * accepted once until its expiry, expired nonces are swept without any O(n)
 * pass on insert, the table stays bounded, and deletion never loses a live
 * nonce (checked against a naive model under heavy churn).
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "ig_nonces.h"

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
}

TestSuite(nonces, .init = setup);

static void nonce_of(uint8_t n[IG_NONCES_NONCE_BYTES], uint64_t i)
{
	memset(n, 0, IG_NONCES_NONCE_BYTES);
	memcpy(n, &i, sizeof i);
	n[15] = 0x5a;
}

Test(nonces, second_use_is_seen_until_expiry)
{
	ig_nonces *r;
	cr_assert_eq(ig_nonces_new(&r, 1000), IG_OK);
	uint8_t n[16];
	nonce_of(n, 1);
	cr_assert_eq(ig_nonces_check_add(r, n, 1300, 1000), IG_NONCES_FRESH);
	cr_assert_eq(ig_nonces_check_add(r, n, 1300, 1000), IG_NONCES_SEEN);
	cr_assert_eq(ig_nonces_check_add(r, n, 1300, 1299), IG_NONCES_SEEN);
	cr_assert_eq(ig_nonces_count(r), 1);
	/* At expiry the token itself is refused as expired; the slot is reusable. */
	cr_assert_eq(ig_nonces_check_add(r, n, 1600, 1300), IG_NONCES_FRESH);
	cr_assert_eq(ig_nonces_count(r), 1);
	uint8_t m[16];
	nonce_of(m, 2);
	cr_assert_eq(ig_nonces_check_add(r, m, 1300, 1000), IG_NONCES_FRESH);
	cr_assert_eq(ig_nonces_count(r), 2);
	ig_nonces_free(r);
}

Test(nonces, sweep_forgets_expired)
{
	ig_nonces *r;
	cr_assert_eq(ig_nonces_new(&r, 100000), IG_OK);
	uint8_t n[16];
	for (uint64_t i = 0; i < 5000; i++) {
		nonce_of(n, i);
		cr_assert_eq(ig_nonces_check_add(r, n, i % 2 ? 2000 : 3000, 1000), IG_NONCES_FRESH);
	}
	size_t slots = ig_nonces_slots(r);
	cr_assert_leq(5000 * 2, slots, "the table is at most half full");
	ig_nonces_sweep(r, 2000, slots * 2);
	cr_assert_eq(ig_nonces_count(r), 2500);
	for (uint64_t i = 0; i < 5000; i++) {
		nonce_of(n, i);
		if (i % 2 == 0)
			cr_assert_eq(ig_nonces_check_add(r, n, 3000, 2000), IG_NONCES_SEEN, "live nonce %llu lost",
			             (unsigned long long)i);
	}
	ig_nonces_sweep(r, 3000, slots * 2);
	cr_assert_eq(ig_nonces_count(r), 0);
	ig_nonces_free(r);
}

/* Steady state: inserts alone (a few sweep steps each) keep the table at
 * connect rate x lifetime, not at the number of nonces ever seen. */
Test(nonces, steady_churn_stays_bounded)
{
	ig_nonces *r;
	cr_assert_eq(ig_nonces_new(&r, 1 << 20), IG_OK);
	const uint64_t rate = 100, ttl = 60;   /* per second, seconds: 6000 live */
	uint8_t n[16];
	uint64_t id = 0;
	for (uint64_t t = 1000; t < 1000 + 20 * ttl; t++)
		for (uint64_t k = 0; k < rate; k++) {
			nonce_of(n, id++);
			cr_assert_eq(ig_nonces_check_add(r, n, t + ttl, t), IG_NONCES_FRESH);
		}
	cr_assert_leq(ig_nonces_count(r), 2 * rate * ttl, "count %zu", ig_nonces_count(r));
	cr_assert_leq(ig_nonces_slots(r), 8 * rate * ttl, "slots %zu", ig_nonces_slots(r));
	ig_nonces_free(r);
}

Test(nonces, full_table_refuses_to_remember)
{
	ig_nonces *r;
	cr_assert_eq(ig_nonces_new(&r, 16), IG_OK);
	uint8_t n[16];
	for (uint64_t i = 0; i < 16; i++) {
		nonce_of(n, i);
		cr_assert_eq(ig_nonces_check_add(r, n, 500, 100), IG_NONCES_FRESH);
	}
	nonce_of(n, 99);
	cr_assert_eq(ig_nonces_check_add(r, n, 500, 100), IG_NONCES_FULL);
	nonce_of(n, 3);
	cr_assert_eq(ig_nonces_check_add(r, n, 500, 100), IG_NONCES_SEEN, "a full table still answers for its nonces");
	/* Once they expire, there is room again. */
	nonce_of(n, 99);
	cr_assert_eq(ig_nonces_check_add(r, n, 900, 500), IG_NONCES_FRESH);
	ig_nonces_free(r);
}

Test(nonces, bad_arguments)
{
	ig_nonces *r = (ig_nonces *)1;
	cr_assert_eq(ig_nonces_new(&r, 15), IG_ERR_INVAL);
	cr_assert_null(r);
	ig_nonces_free(NULL);
}

/* Random inserts, expiries and sweeps against a plain array model:
 * backward-shift deletion must never make a live nonce unreachable. */
Test(nonces, model_check_under_churn)
{
	ig_nonces *r;
	cr_assert_eq(ig_nonces_new(&r, 4096), IG_OK);
	enum { N = 3000 };
	static uint64_t expires[N];   /* 0 = never inserted */
	uint64_t rng = 88172645463325252ull, now = 1000;
	uint8_t n[16];
	for (int step = 0; step < 200000; step++) {
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		uint64_t i = rng % N;
		if (rng % 97 == 0)
			now++;
		if (rng % 13 == 0)
			ig_nonces_sweep(r, now, 1 + (size_t)(rng % 64));
		nonce_of(n, i);
		ig_nonces_result got = ig_nonces_check_add(r, n, now + 1 + rng % 20, now);
		if (expires[i] > now) {
			cr_assert_eq(got, IG_NONCES_SEEN, "step %d: live nonce %llu not seen", step, (unsigned long long)i);
		} else {
			cr_assert_eq(got, IG_NONCES_FRESH, "step %d: nonce %llu should be fresh", step, (unsigned long long)i);
			expires[i] = now + 1 + rng % 20;
		}
	}
	ig_nonces_free(r);
}

/* The broker's periodic sweep is paced by the table's size: every 10 ms it
 * used to examine 4096 slots whatever the table held, streaming a
 * 131072-slot table (3 MB) through the caches three times a second while
 * connects were being verified. Now a sweep takes about 1/100 of the table per
 * 10 ms, within [IG_NONCES_SWEEP_MIN, IG_NONCES_SWEEP_MAX], and a second of
 * ticks still forgets every expired nonce. */
Test(nonces, periodic_sweep_paced_by_table_size)
{
	ig_nonces *r;
	cr_assert_eq(ig_nonces_new(&r, 100000), IG_OK);
	uint8_t n[16];
	for (uint64_t i = 0; i < 40000; i++) {
		nonce_of(n, i);
		cr_assert_eq(ig_nonces_check_add(r, n, i % 2 ? 2000 : 3000, 1000), IG_NONCES_FRESH);
	}
	size_t slots = ig_nonces_slots(r);
	cr_assert_eq(slots, 131072);
	size_t per_tick = ig_nonces_sweep_paced(r, 1500, 10);
	cr_assert_eq(per_tick, slots / 100, "10 ms of a 131072-slot table: %zu slots", per_tick);
	cr_assert_lt(per_tick, IG_NONCES_SWEEP_MAX);
	cr_assert_eq(ig_nonces_sweep_paced(r, 1500, 0), IG_NONCES_SWEEP_MIN);
	cr_assert_eq(ig_nonces_sweep_paced(r, 1500, 10000), IG_NONCES_SWEEP_MAX, "a long gap is not one long stall");
	/* A second of 10 ms ticks examines the whole table once; with the steps
	 * spent looking again at a slot a deletion refilled, 1.2 s of ticks after
	 * half the nonces expired forgets them all and keeps every live one. */
	size_t examined = 0;
	for (int t = 0; t < 100; t++)
		examined += ig_nonces_sweep_paced(r, 2000, 10);
	cr_assert_geq(examined, slots - 100, "a whole pass per second");
	for (int t = 0; t < 20; t++)
		(void)ig_nonces_sweep_paced(r, 2000, 10);
	cr_assert_eq(ig_nonces_count(r), 20000);
	for (uint64_t i = 0; i < 40000; i += 2) {
		nonce_of(n, i);
		cr_assert_eq(ig_nonces_check_add(r, n, 3000, 2000), IG_NONCES_SEEN, "live nonce %llu lost",
		             (unsigned long long)i);
	}
	ig_nonces_free(r);
	/* A small table is examined whole at every tick. */
	cr_assert_eq(ig_nonces_new(&r, 16), IG_OK);
	nonce_of(n, 1);
	cr_assert_eq(ig_nonces_check_add(r, n, 1001, 1000), IG_NONCES_FRESH);
	cr_assert_geq(ig_nonces_sweep_paced(r, 1001, 10), ig_nonces_slots(r));
	cr_assert_eq(ig_nonces_count(r), 0);
	ig_nonces_free(r);
}
