/*
 * test_entropy.c: the health tests are the only thing standing between a
 * broken device source and the cluster head's pool, so their cutoffs are
 * checked against SP 800-90B's own numbers and their trip points are probed
 * exactly. The pool's framing is attacked for ambiguity, and derivation is
 * checked to never repeat and never expose the state.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "ig_attest.h"
#include "ig_entropy.h"
#include "ig_health.h"
#include "ig_pool.h"
#include "testutil.h"

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
}

TestSuite(entropy, .init = setup);

/* ---- cutoffs ------------------------------------------------------------- */

Test(entropy, apt_cutoffs_match_sp800_90b)
{
	/* W = 512 values from SP 800-90B section 4.4.2; the others were computed
	 * independently with exact binomial sums (Python Decimal, 60 digits). */
	struct { uint32_t w; double h; uint32_t c; } cases[] = {
		{512, 1, 311}, {512, 2, 177}, {512, 4, 62}, {512, 8, 13},
		{512, 3, 103}, {512, 5, 39}, {512, 6, 25}, {512, 7, 18},
		{512, 0.5, 410}, {512, 0.25, 468}, {512, 0.75, 357}, {512, 0.1, 502},
		{1024, 1, 589}, {1024, 0.5, 793}, {1024, 0.25, 915}, {1024, 8, 18},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		cr_expect_eq(ig_health_apt_cutoff(cases[i].w, cases[i].h), cases[i].c, "W=%u H=%g: got %u want %u",
		             cases[i].w, cases[i].h, ig_health_apt_cutoff(cases[i].w, cases[i].h), cases[i].c);
}

Test(entropy, rct_cutoffs_follow_formula)
{
	cr_expect_eq(ig_health_rct_cutoff(1), 21);
	cr_expect_eq(ig_health_rct_cutoff(8), 4);     /* 1 + ceil(2.5) */
	cr_expect_eq(ig_health_rct_cutoff(2), 11);
	cr_expect_eq(ig_health_rct_cutoff(4), 6);
	cr_expect_eq(ig_health_rct_cutoff(0.5), 41);  /* exact division: no extra +1 */
	cr_expect_eq(ig_health_rct_cutoff(0.25), 81);
	cr_expect_eq(ig_health_rct_cutoff(3), 8);     /* 1 + ceil(6.67) */
	cr_expect_eq(ig_health_rct_cutoff(7), 4);     /* 1 + ceil(2.86) */
	/* H = k/8 is exact in binary, so ceil(20 / H) = ceil(160 / k) in integers */
	for (uint32_t k = 1; k <= 64; k++) {
		uint32_t want = 1 + (160 + k - 1) / k;
		cr_expect_eq(ig_health_rct_cutoff(k / 8.0), want, "H=%u/8", k);
	}
}

Test(entropy, invalid_claims_are_refused)
{
	double bad[] = {0.0, -1.0, 8.0001, 100.0, NAN, INFINITY, -INFINITY};
	ig_health t;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cr_expect_eq(ig_health_rct_cutoff(bad[i]), 0, "H=%g", bad[i]);
		cr_expect_eq(ig_health_apt_cutoff(512, bad[i]), 0, "H=%g", bad[i]);
		cr_expect_eq(ig_health_init(&t, bad[i], false), IG_ERR_RANGE, "H=%g", bad[i]);
		cr_expect_not(ig_health_feed(&t, 1), "a refused init never passes samples");
	}
	cr_expect_eq(ig_health_init(&t, 1.5, true), IG_ERR_RANGE, "a bit holds at most one bit");
	cr_expect_eq(ig_health_init(&t, 1.0, true), IG_OK);
	cr_expect_eq(t.apt_window, 1024);
	cr_expect_eq(t.apt_cutoff, 589);
	cr_expect_eq(ig_health_init(NULL, 1.0, false), IG_ERR_INVAL);
	cr_expect_eq(ig_health_apt_cutoff(1, 1.0), 0);
	cr_expect_not(ig_health_feed(NULL, 0));

	ig_health zero;
	memset(&zero, 0, sizeof zero);
	cr_expect_not(ig_health_feed(&zero, 7), "an uninitialised tester fails closed");
	cr_expect(zero.failed);
}

/* ---- repetition count test ------------------------------------------------ */

Test(entropy, stuck_source_trips_rct_exactly_at_cutoff)
{
	for (double h = 0.5; h <= 8.0; h *= 2) {
		ig_health t;
		cr_assert_eq(ig_health_init(&t, h, false), IG_OK);
		uint32_t c = t.rct_cutoff;
		for (uint32_t i = 1; i < c; i++)
			cr_assert(ig_health_feed(&t, 0x42), "H=%g: sample %u of a run is still below cutoff %u", h, i, c);
		cr_assert_not(ig_health_feed(&t, 0x42), "H=%g: run of %u must trip", h, c);
		cr_expect(t.failed);
		cr_expect_not_null(strstr(t.failure, "repetition count test"), "%s", t.failure);
		char want[64];
		snprintf(want, sizeof want, "%u identical samples (cutoff %u)", c, c);
		cr_expect_not_null(strstr(t.failure, want), "'%s' should contain '%s'", t.failure, want);
		/* sticky: good samples do not revive it */
		cr_expect_not(ig_health_feed(&t, 0x01));
		cr_expect_not(ig_health_feed(&t, 0x02));
	}
}

Test(entropy, rct_run_is_reset_by_a_different_sample)
{
	ig_health t;
	cr_assert_eq(ig_health_init(&t, 1, false), IG_OK);
	for (int round = 0; round < 10; round++) {
		for (uint32_t i = 0; i < t.rct_cutoff - 1; i++)
			cr_assert(ig_health_feed(&t, (uint8_t)(round & 1 ? 0xaa : 0x55)));
	}
	cr_expect_not(t.failed, "runs of cutoff-1 with changes between never trip");
}

/* ---- adaptive proportion test --------------------------------------------- */

Test(entropy, biased_source_trips_apt)
{
	/* Every third sample is 0x00 and no two neighbours are equal, so the
	 * repetition count test never fires: only the proportion test can see
	 * that 0x00 takes a third of the window when H = 4 allows at most 61
	 * of 512. */
	ig_health t;
	cr_assert_eq(ig_health_init(&t, 4, false), IG_OK);
	cr_assert_eq(t.apt_cutoff, 62);
	uint8_t last = 0xff;
	bool tripped = false;
	uint64_t at = 0;
	for (int i = 0; i < 512 && !tripped; i++) {
		uint8_t s = (i % 3 == 0) ? 0x00 : (uint8_t)(1 + tu_rand32() % 255);
		if (s == last)
			s = (uint8_t)(s == 0xff ? 1 : s + 1);
		last = s;
		if (!ig_health_feed(&t, s)) {
			tripped = true;
			at = t.samples;
		}
	}
	cr_assert(tripped, "a 33%% value at claimed H=4 must trip the proportion test");
	cr_expect_eq(at, 3 * 61 + 1, "the 62nd zero is sample %d, tripped at %llu", 3 * 61 + 1,
	             (unsigned long long)at);
	cr_expect_not_null(strstr(t.failure, "adaptive proportion test: 62 of 512"), "%s", t.failure);
}

Test(entropy, ninety_percent_source_trips_at_h4)
{
	ig_health t;
	cr_assert_eq(ig_health_init(&t, 4, false), IG_OK);
	bool ok = true;
	for (int i = 0; i < 100000 && ok; i++)
		ok = ig_health_feed(&t, tu_rand32() % 10 ? 0x7e : (uint8_t)tu_rand32());
	cr_expect_not(ok);
	cr_expect(t.failed);
	cr_expect_neq(t.failure[0], '\0');
}

Test(entropy, apt_counts_only_the_window_reference)
{
	/* 0xAA at the window start and then often, but windows restart: a
	 * reference that is rare in a later window does not carry counts over. */
	ig_health t;
	cr_assert_eq(ig_health_init(&t, 4, false), IG_OK);
	uint32_t c = t.apt_cutoff;   /* 62 */
	/* window 1: reference + (c - 2) more matches: B = c - 1, just below */
	uint32_t matches = 1, fed = 1;
	cr_assert(ig_health_feed(&t, 0xaa));
	while (fed < 512) {
		uint8_t s = (matches < c - 1 && fed % 2 == 0) ? 0xaa : (uint8_t)(fed % 100 + 1);
		matches += s == 0xaa;
		cr_assert(ig_health_feed(&t, s), "window 1 sample %u", fed);
		fed++;
	}
	cr_assert_eq(matches, c - 1);
	/* window 2 starts with 0x01: the earlier 0xaa count is gone */
	cr_assert(ig_health_feed(&t, 0x01));
	for (uint32_t i = 1; i < 512; i++)
		cr_assert(ig_health_feed(&t, (uint8_t)(i % 2 ? 0xaa : 0x02 + i % 100)), "window 2 sample %u", i);
	cr_expect_not(t.failed, "%s", t.failure);
	/* window 3: c matches in a row of alternating values trips at exactly c */
	cr_assert(ig_health_feed(&t, 0x33));
	uint32_t b = 1;
	for (uint32_t i = 1; i < 512; i++) {
		uint8_t s = i % 2 ? 0x33 : 0x44;
		bool ok = ig_health_feed(&t, s);
		b += s == 0x33;
		if (b >= c) {
			cr_expect_not(ok, "B reached %u", b);
			break;
		}
		cr_assert(ok, "B=%u", b);
	}
	cr_expect(t.failed);
}

Test(entropy, good_source_passes_100k_samples)
{
	static uint8_t buf[100000];
	uint8_t seed[randombytes_SEEDBYTES] = {7};
	randombytes_buf_deterministic(buf, sizeof buf, seed);
	double claims[] = {0.25, 0.5, 1, 2, 4, 6, 8};
	for (size_t k = 0; k < sizeof claims / sizeof claims[0]; k++) {
		ig_health t;
		cr_assert_eq(ig_health_init(&t, claims[k], false), IG_OK);
		for (size_t i = 0; i < sizeof buf; i++)
			cr_assert(ig_health_feed(&t, buf[i]), "uniform bytes at H=%g failed at %zu: %s", claims[k], i,
			          t.failure);
		cr_expect_eq(t.samples, sizeof buf);
	}
	/* uniform bits at H=1 in binary mode */
	ig_health t;
	cr_assert_eq(ig_health_init(&t, 1, true), IG_OK);
	for (size_t i = 0; i < sizeof buf; i++)
		cr_assert(ig_health_feed(&t, buf[i] & 1), "bit %zu: %s", i, t.failure);
}

/* ---- Von Neumann ----------------------------------------------------------- */

Test(entropy, vn_hand_vectors)
{
	uint8_t out[8];
	/* bits (LSB first) 01 10 00 11 01 -> 0 1 0: three bits, no whole byte */
	const uint8_t three[] = {0xc6, 0x02};
	memset(out, 0xee, sizeof out);
	cr_expect_eq(ig_entropy_debias(out, sizeof out, three, sizeof three), 0);
	cr_expect_eq(out[0], 0xee, "a partial byte is not written");

	/* 0x66 = 0 1 1 0 0 1 1 0 -> 0 1 0 1; 0x99 = 1 0 0 1 1 0 0 1 -> 1 0 1 0;
	 * output bits 0 1 0 1 1 0 1 0 LSB first = 0x5a */
	const uint8_t full[] = {0x66, 0x99};
	cr_expect_eq(ig_entropy_debias(out, sizeof out, full, sizeof full), 8);
	cr_expect_eq(out[0], 0x5a, "got 0x%02x", out[0]);

	/* 0x01: pair (1,0) -> 1 then three 00 pairs; 0x02: (0,1) -> 0 */
	const uint8_t ones[] = {1, 1, 1, 1, 1, 1, 1, 1};
	const uint8_t zeros[] = {2, 2, 2, 2, 2, 2, 2, 2};
	cr_expect_eq(ig_entropy_debias(out, sizeof out, ones, sizeof ones), 8);
	cr_expect_eq(out[0], 0xff);
	cr_expect_eq(ig_entropy_debias(out, sizeof out, zeros, sizeof zeros), 8);
	cr_expect_eq(out[0], 0x00);

	/* 0x40: bits 6,7 = (1,0) -> 1 only; 0x80: (0,1) -> 0 */
	const uint8_t mixed[] = {0x40, 0x80, 0x40, 0x40, 0x80, 0x80, 0x80, 0x40};
	cr_expect_eq(ig_entropy_debias(out, sizeof out, mixed, sizeof mixed), 8);
	cr_expect_eq(out[0], 0x8d, "1 0 1 1 0 0 0 1 LSB first; got 0x%02x", out[0]);

	/* only 00 and 11 pairs: nothing */
	const uint8_t none[] = {0x00, 0xff, 0x33, 0xcc, 0x0f, 0xf0, 0xc3, 0x3c};
	cr_expect_eq(ig_entropy_debias(out, sizeof out, none, sizeof none), 0);
}

Test(entropy, vn_edges)
{
	uint8_t out[4] = {0xee, 0xee, 0xee, 0xee};
	const uint8_t in[] = {0x66, 0x66, 0x66, 0x66, 0x66, 0x66};
	cr_expect_eq(ig_entropy_debias(out, sizeof out, in, 0), 0, "empty input");
	cr_expect_eq(ig_entropy_debias(out, 0, in, sizeof in), 0, "no room");
	cr_expect_eq(ig_entropy_debias(NULL, 4, in, sizeof in), 0);
	cr_expect_eq(ig_entropy_debias(out, 4, NULL, 4), 0);
	cr_expect_eq(out[0], 0xee);
	/* 6 bytes -> 24 bits -> 3 bytes, capacity limits to 1 */
	cr_expect_eq(ig_entropy_debias(out, 1, in, sizeof in), 8);
	cr_expect_eq(out[0], 0xaa, "0 1 0 1 0 1 0 1 LSB first");
	cr_expect_eq(out[1], 0xee, "nothing beyond out_cap");
	cr_expect_eq(ig_entropy_debias(out, 4, in, sizeof in), 24);
	cr_expect_eq(out[2], 0xaa);
	cr_expect_eq(out[3], 0xee);
	/* odd leftover: 0x66 gives 4 bits, 0x01 one more: 5 bits dropped */
	const uint8_t odd[] = {0x66, 0x01};
	cr_expect_eq(ig_entropy_debias(out, 4, odd, sizeof odd), 0);
}

/* Bit-array reference: no shifting tricks. */
static size_t vn_reference(uint8_t *out, size_t cap, const uint8_t *in, size_t len)
{
	static uint8_t bits[4096 * 8];
	size_t nb = 0;
	for (size_t i = 0; i < len; i++)
		for (int b = 0; b < 8; b += 2) {
			int x = (in[i] >> b) & 1, y = (in[i] >> (b + 1)) & 1;
			if (x != y)
				bits[nb++] = (uint8_t)x;
		}
	size_t bytes = nb / 8 < cap ? nb / 8 : cap;
	for (size_t i = 0; i < bytes; i++) {
		out[i] = 0;
		for (int b = 0; b < 8; b++)
			out[i] |= (uint8_t)(bits[i * 8 + b] << b);
	}
	return bytes * 8;
}

Test(entropy, vn_matches_reference_on_random_input)
{
	uint8_t in[512], a[512], b[512];
	for (int round = 0; round < 500; round++) {
		size_t len = tu_rand32() % sizeof in, cap = tu_rand32() % 300;
		for (size_t i = 0; i < len; i++)
			in[i] = (uint8_t)tu_rand32();
		memset(a, 0, sizeof a);
		memset(b, 0, sizeof b);
		size_t na = ig_entropy_debias(a, cap, in, len);
		size_t nb = vn_reference(b, cap, in, len);
		cr_assert_eq(na, nb, "round %d", round);
		cr_assert_eq(na % 8, 0);
		cr_assert_eq(memcmp(a, b, sizeof a), 0, "round %d", round);
	}
}

Test(entropy, vn_output_is_unbiased_for_biased_input)
{
	/* Independent bits with P(1) = 0.8: VN output must be near 50/50. */
	static uint8_t in[20000], out[20000];
	for (size_t i = 0; i < sizeof in; i++) {
		uint8_t v = 0;
		for (int b = 0; b < 8; b++)
			v |= (uint8_t)((tu_rand32() % 10 < 8) << b);
		in[i] = v;
	}
	size_t bits = ig_entropy_debias(out, sizeof out, in, sizeof in);
	/* expected 2 * 0.8 * 0.2 = 0.32 output bits per pair, 80000 pairs */
	cr_assert_gt(bits, 24000);
	cr_assert_lt(bits, 27200);
	size_t ones = 0;
	for (size_t i = 0; i < bits / 8; i++)
		ones += (size_t)__builtin_popcount(out[i]);
	double frac = (double)ones / (double)bits;
	cr_expect(frac > 0.48 && frac < 0.52, "ones fraction %f", frac);
}

/* ---- conditioning ---------------------------------------------------------- */

Test(entropy, condition_is_blake2b_256)
{
	uint8_t block[32], want[32], in[100];
	tu_seq_bytes(in, sizeof in, 0);
	ig_entropy_condition(block, in, sizeof in);
	crypto_generichash(want, 32, in, sizeof in, NULL, 0);
	cr_expect_eq(memcmp(block, want, 32), 0);
	/* BLAKE2b-256 of the empty string */
	uint8_t empty[32];
	ig_hex_decode(want, 32, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8", 64);
	ig_entropy_condition(empty, in, 0);
	cr_expect_eq(memcmp(empty, want, 32), 0);
	ig_entropy_condition(empty, NULL, 0);
	cr_expect_eq(memcmp(empty, want, 32), 0);
}

/* ---- sources --------------------------------------------------------------- */

Test(entropy, jitter_source_works_and_passes_health)
{
	static uint8_t s[4096];
	size_t n = ig_entropy_sample(IG_SRC_JITTER, s, sizeof s);
	cr_assert_eq(n, sizeof s, "jitter must always be available on Linux, got %zu", n);
	ig_health t;
	cr_assert_eq(ig_health_init(&t, 1.0, false), IG_OK);
	for (size_t i = 0; i < n; i++)
		cr_assert(ig_health_feed(&t, s[i]), "jitter at the claimed H=1 failed at %zu: %s", i, t.failure);
	int distinct = 0, seen[256] = {0};
	for (size_t i = 0; i < n; i++)
		distinct += !seen[s[i]]++;
	cr_expect_gt(distinct, 8, "jitter low bytes take %d values", distinct);
}

Test(entropy, counter_and_sensor_sources)
{
	uint8_t s[300];
	size_t n = ig_entropy_sample(IG_SRC_INTERRUPTS, s, 64);
	cr_expect_eq(n, 64, "/proc/interrupts and /proc/net/dev exist here; got %zu", n);
	n = ig_entropy_sample(IG_SRC_SENSORS, s, sizeof s);
	cr_expect_leq(n, 256, "sensors: one reading per sensor per call");
	cr_expect_eq(ig_entropy_sample((ig_entropy_source)99, s, sizeof s), 0);
	cr_expect_eq(ig_entropy_sample(IG_SRC_JITTER, s, 0), 0);
	cr_expect_eq(ig_entropy_sample(IG_SRC_JITTER, NULL, 10), 0);
	cr_expect_eq(ig_entropy_sample(IG_SRC_JITTER, s, 1), 1);
}

/* ---- pool ------------------------------------------------------------------ */

static const uint8_t pool_key[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

static void mixed_pool(ig_pool *p, const char *id, uint64_t seq, const uint8_t *b, size_t len)
{
	ig_pool_init(p, pool_key);
	ig_pool_mix(p, id, seq, b, len);
}

Test(entropy, pool_is_deterministic_and_keyed)
{
	uint8_t block[33];
	tu_seq_bytes(block, 33, 0x30);
	ig_pool a, b;
	mixed_pool(&a, "dev1", 1, block, 32);
	mixed_pool(&b, "dev1", 1, block, 32);
	cr_expect_eq(memcmp(a.state, b.state, 64), 0, "same inputs, same state");
	cr_expect_eq(a.inputs, 1);

	/* the exact framing: BLAKE2b-512(key, state || u8 4 || "dev1" || u64 1 || u32 32 || block) */
	ig_pool init;
	ig_pool_init(&init, pool_key);
	uint8_t msg[64 + 1 + 4 + 8 + 4 + 32], want[64];
	size_t pos = 0;
	memcpy(msg, init.state, 64);
	pos = 64;
	msg[pos++] = 4;
	memcpy(msg + pos, "dev1", 4);
	pos += 4;
	ig_put_u64(msg + pos, 1);
	pos += 8;
	ig_put_u32(msg + pos, 32);
	pos += 4;
	memcpy(msg + pos, block, 32);
	pos += 32;
	crypto_generichash(want, 64, msg, pos, pool_key, 32);
	cr_expect_eq(memcmp(a.state, want, 64), 0, "state follows the documented framing");

	uint8_t other_key[32] = {9};
	ig_pool k;
	ig_pool_init(&k, other_key);
	cr_expect_neq(memcmp(k.state, init.state, 64), 0, "the starting state depends on the key");
	ig_pool_mix(&k, "dev1", 1, block, 32);
	cr_expect_neq(memcmp(k.state, a.state, 64), 0);

	ig_pool_wipe(&a);
	uint8_t zero[sizeof a];
	memset(zero, 0, sizeof zero);
	cr_expect_eq(memcmp(&a, zero, sizeof a), 0, "wipe clears key and state");
}

Test(entropy, pool_framing_has_no_ambiguity)
{
	uint8_t block[40];
	tu_seq_bytes(block, 40, 0);
	uint8_t shifted[41];
	shifted[0] = 'b';
	memcpy(shifted + 1, block, 40);

	ig_pool v[8];
	mixed_pool(&v[0], "ab", 5, block, 40);
	mixed_pool(&v[1], "a", 5, shifted, 41);          /* ("ab", block) vs ("a", "b" || block) */
	mixed_pool(&v[2], "ab", 6, block, 40);           /* seq */
	mixed_pool(&v[3], "ab", 5, block, 39);           /* len */
	mixed_pool(&v[4], "ba", 5, block, 40);           /* id */
	mixed_pool(&v[5], "ab", 5ull << 32, block, 40);  /* high seq bytes */
	mixed_pool(&v[6], "", 5, block, 40);
	ig_pool_init(&v[7], pool_key);                   /* nothing mixed */
	for (int i = 0; i < 8; i++)
		for (int j = i + 1; j < 8; j++)
			cr_expect_neq(memcmp(v[i].state, v[j].state, 64), 0, "inputs %d and %d collide", i, j);

	/* order matters: mixing is a chain, not a set */
	ig_pool x, y;
	ig_pool_init(&x, pool_key);
	ig_pool_init(&y, pool_key);
	ig_pool_mix(&x, "a", 1, block, 32);
	ig_pool_mix(&x, "b", 1, block, 32);
	ig_pool_mix(&y, "b", 1, block, 32);
	ig_pool_mix(&y, "a", 1, block, 32);
	cr_expect_neq(memcmp(x.state, y.state, 64), 0);
	cr_expect_eq(x.inputs, 2);

	/* refused inputs leave the pool alone */
	ig_pool z = x;
	char long_id[300];
	memset(long_id, 'x', sizeof long_id - 1);
	long_id[sizeof long_id - 1] = '\0';
	ig_pool_mix(&z, long_id, 1, block, 32);
	ig_pool_mix(&z, NULL, 1, block, 32);
	ig_pool_mix(&z, "a", 1, NULL, 32);
	cr_expect_eq(memcmp(z.state, x.state, 64), 0);
	cr_expect_eq(z.inputs, 2);
}

Test(entropy, derive_is_fresh_and_never_reveals_state)
{
	uint8_t block[32] = {1};
	ig_pool a;
	mixed_pool(&a, "dev1", 1, block, 32);
	ig_pool b = a;   /* identical state */
	uint8_t before[64];
	memcpy(before, a.state, 64);

	uint8_t o1[64], o2[64];
	cr_assert_eq(ig_pool_derive(&a, o1, sizeof o1, "session-key", (const uint8_t *)"kid", 3), IG_OK);
	cr_assert_eq(ig_pool_derive(&b, o2, sizeof o2, "session-key", (const uint8_t *)"kid", 3), IG_OK);
	cr_expect_neq(memcmp(o1, o2, sizeof o1), 0, "fresh OS salt: identical pools give different keys");
	cr_expect_neq(memcmp(o1, before, 64), 0, "output is not the state");
	cr_expect_neq(memcmp(o1, a.state, 64), 0);
	cr_expect_eq(memcmp(a.state, b.state, 64), 0, "the ratchet is deterministic");

	/* ratchet: state = BLAKE2b-512(key, "ratchet" || old state) */
	uint8_t msg[7 + 64], want[64];
	memcpy(msg, "ratchet", 7);
	memcpy(msg + 7, before, 64);
	crypto_generichash(want, 64, msg, sizeof msg, pool_key, 32);
	cr_expect_eq(memcmp(a.state, want, 64), 0, "state ratcheted forward");

	/* many derivations never repeat and never show the state */
	uint8_t prev[32] = {0};
	for (int i = 0; i < 200; i++) {
		uint8_t o[32];
		uint8_t st[64];
		memcpy(st, a.state, 64);
		cr_assert_eq(ig_pool_derive(&a, o, sizeof o, "coin", NULL, 0), IG_OK);
		cr_assert_neq(memcmp(o, prev, 32), 0);
		cr_assert(memmem(st, 64, o, 16) == NULL && memmem(a.state, 64, o, 16) == NULL);
		memcpy(prev, o, 32);
	}
}

Test(entropy, derive_rejects_bad_arguments)
{
	ig_pool p;
	ig_pool_init(&p, pool_key);
	uint8_t out[16];
	static uint8_t big[8161];
	char purpose[200];
	memset(purpose, 'p', sizeof purpose - 1);
	purpose[sizeof purpose - 1] = '\0';
	uint8_t kid[200] = {0};
	cr_expect_eq(ig_pool_derive(&p, out, 0, "x", NULL, 0), IG_ERR_RANGE);
	cr_expect_eq(ig_pool_derive(&p, big, sizeof big, "x", NULL, 0), IG_ERR_RANGE);
	cr_expect_eq(ig_pool_derive(&p, big, 8160, "x", NULL, 0), IG_OK);
	cr_expect_eq(ig_pool_derive(&p, out, sizeof out, NULL, NULL, 0), IG_ERR_INVAL);
	cr_expect_eq(ig_pool_derive(&p, out, sizeof out, "x", NULL, 3), IG_ERR_INVAL);
	cr_expect_eq(ig_pool_derive(NULL, out, sizeof out, "x", NULL, 0), IG_ERR_INVAL);
	cr_expect_eq(ig_pool_derive(&p, out, sizeof out, purpose, NULL, 0), IG_ERR_RANGE);
	cr_expect_eq(ig_pool_derive(&p, out, sizeof out, "x", kid, sizeof kid), IG_ERR_RANGE);
}

Test(entropy, protocol_doc_table_matches_computed_cutoffs)
{
	const char *doc = tu_read_doc("PROTOCOL.md");
	const char *section = strstr(doc, "## Entropy contributions");
	cr_assert_not_null(section);
	double hs[] = {0.25, 0.5, 1, 2, 4, 8};
	for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
		char row[96];
		snprintf(row, sizeof row, "| %g | %u | %u | %u |", hs[i], ig_health_rct_cutoff(hs[i]),
		         ig_health_apt_cutoff(512, hs[i]), ig_health_apt_cutoff(1024, hs[i]));
		cr_expect_not_null(strstr(section, row), "the cutoff table should contain '%s'", row);
	}
}

/* ---- attestation rate (issue 7: one device wrote 100+ records in 8 s) ---- */

Test(attest_rate, only_changes_count_and_at_most_n_per_hour)
{
	ig_attest_rate r = {0};
	uint64_t t = 1700000000000ull;
	cr_assert_eq(ig_attest_admit(&r, false, false, t, 3), IG_ATTEST_UNCHANGED);
	cr_assert_eq(r.recorded, 0u, "an unchanged report costs nothing");
	for (int i = 0; i < 3; i++)
		cr_assert_eq(ig_attest_admit(&r, true, false, t + (uint64_t)i * 1000, 3), IG_ATTEST_RECORD, "change %d", i);
	for (int i = 0; i < 100; i++)
		cr_assert_eq(ig_attest_admit(&r, true, false, t + 5000 + (uint64_t)i * 80, 3), IG_ATTEST_REFUSED_RATE);
	cr_assert_eq(r.recorded, 3u, "refusals do not count");
	cr_assert_eq(ig_attest_admit(&r, false, false, t + 60000, 3), IG_ATTEST_UNCHANGED,
	             "the same measurement is still accepted while over the rate");
	cr_assert_eq(ig_attest_admit(&r, true, false, t + IG_ATTEST_WINDOW_MS - 1, 3), IG_ATTEST_REFUSED_RATE);
	cr_assert_eq(ig_attest_admit(&r, true, false, t + IG_ATTEST_WINDOW_MS, 3), IG_ATTEST_RECORD,
	             "a new hour opens a new window");
	cr_assert_eq(r.recorded, 1u);
}

Test(attest_rate, one_record_in_flight_at_a_time_and_clock_steps)
{
	ig_attest_rate r = {0};
	uint64_t t = 1700000000000ull;
	cr_assert_eq(ig_attest_admit(&r, true, true, t, 12), IG_ATTEST_REFUSED_RATE);
	cr_assert_eq(r.recorded, 0u);
	cr_assert_eq(ig_attest_admit(&r, false, true, t, 12), IG_ATTEST_UNCHANGED);
	cr_assert_eq(ig_attest_admit(&r, true, false, t, 1), IG_ATTEST_RECORD);
	cr_assert_eq(ig_attest_admit(&r, true, false, t + 10, 1), IG_ATTEST_REFUSED_RATE);
	cr_assert_eq(ig_attest_admit(&r, true, false, t - 5000, 1), IG_ATTEST_RECORD,
	             "a clock stepped back opens a new window instead of stretching the old one");
	cr_assert_eq(ig_attest_admit(&r, true, false, t, 0), IG_ATTEST_REFUSED_RATE, "0 allows nothing");
	cr_assert_eq(ig_attest_admit(NULL, true, false, t, 5), IG_ATTEST_UNCHANGED);
}
