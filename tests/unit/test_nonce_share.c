/*
 * test_nonce_share.c: the batch of single-use token nonces brokers share
 * over the bridges (lib/identity/nonce_share.c), and the policy that lets
 * only bridges carry it.
 *
 * Why this exists: the batch arrives from another broker over a bridge;
 * the parse must accept exactly the documented layout and refuse every
 * truncated, padded, oversized or mislabelled message as a whole, since a
 * half-read batch would remember garbage nonces or miss real ones.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "ig_nonce_share.h"
#include "ig_policy.h"
#include "testutil.h"

static void fill(ig_nonce_share_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		tu_rand_bytes(e[i].nonce, sizeof e[i].nonce);
		e[i].expires_at = tu_rand();
	}
}

static uint8_t msg[IG_NONCE_SHARE_MSG_MAX + 64];
static ig_nonce_share_entry in[IG_NONCE_SHARE_MAX], out[IG_NONCE_SHARE_MAX + 1];

Test(nonce_share, layout_is_the_documented_one)
{
	ig_nonce_share_entry e;
	for (int i = 0; i < 16; i++)
		e.nonce[i] = (uint8_t)(0xa0 + i);
	e.expires_at = 0x0102030405060708ull;
	size_t len = 0;
	cr_assert_eq(ig_nonce_share_encode(msg, sizeof msg, &len, &e, 1), IG_OK);
	cr_assert_eq(len, 27u);
	cr_assert_eq(ig_nonce_share_size(1), 27u);
	tu_assert_hex(msg, len, "010001a0a1a2a3a4a5a6a7a8a9aaabacadaeaf0102030405060708");
}

Test(nonce_share, round_trip_every_size_class)
{
	tu_rng_seed(tu_seed());
	size_t sizes[] = {1, 2, 17, 255, 256, 257, IG_NONCE_SHARE_MAX - 1, IG_NONCE_SHARE_MAX};
	for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
		size_t n = sizes[s], len = 0, got = 0;
		fill(in, n);
		cr_assert_eq(ig_nonce_share_encode(msg, sizeof msg, &len, in, n), IG_OK);
		cr_assert_eq(len, ig_nonce_share_size(n));
		cr_assert_eq(ig_nonce_share_decode(out, IG_NONCE_SHARE_MAX, &got, msg, len), IG_OK);
		cr_assert_eq(got, n);
		for (size_t i = 0; i < n; i++) {
			cr_assert_eq(memcmp(out[i].nonce, in[i].nonce, 16), 0, "entry %zu of %zu", i, n);
			cr_assert_eq(out[i].expires_at, in[i].expires_at, "entry %zu of %zu", i, n);
		}
	}
	cr_assert_eq(ig_nonce_share_size(IG_NONCE_SHARE_MAX), (size_t)IG_NONCE_SHARE_MSG_MAX);
}

Test(nonce_share, encode_refuses_bad_counts_and_small_buffers)
{
	size_t len = 99;
	fill(in, 3);
	cr_assert_eq(ig_nonce_share_encode(msg, sizeof msg, &len, in, 0), IG_ERR_INVAL);
	cr_assert_eq(len, 0u);
	cr_assert_eq(ig_nonce_share_encode(msg, sizeof msg, &len, in, IG_NONCE_SHARE_MAX + 1), IG_ERR_INVAL);
	cr_assert_eq(ig_nonce_share_encode(msg, ig_nonce_share_size(3) - 1, &len, in, 3), IG_ERR_RANGE);
	cr_assert_eq(len, 0u);
}

Test(nonce_share, truncated_padded_and_mislabelled_refused)
{
	size_t len = 0, got = 7;
	fill(in, 5);
	cr_assert_eq(ig_nonce_share_encode(msg, sizeof msg, &len, in, 5), IG_OK);
	/* every truncation, header included */
	for (size_t cut = 0; cut < len; cut++) {
		got = 7;
		cr_assert_eq(ig_nonce_share_decode(out, IG_NONCE_SHARE_MAX, &got, msg, cut), IG_ERR_INVAL, "cut at %zu", cut);
		cr_assert_eq(got, 0u);
	}
	/* trailing bytes */
	msg[len] = 0;
	cr_assert_eq(ig_nonce_share_decode(out, IG_NONCE_SHARE_MAX, &got, msg, len + 1), IG_ERR_INVAL);
	/* a count that does not match the length, either way */
	msg[2] = 4;
	cr_assert_eq(ig_nonce_share_decode(out, IG_NONCE_SHARE_MAX, &got, msg, len), IG_ERR_INVAL);
	msg[2] = 6;
	cr_assert_eq(ig_nonce_share_decode(out, IG_NONCE_SHARE_MAX, &got, msg, len), IG_ERR_INVAL);
	msg[2] = 5;
	cr_assert_eq(ig_nonce_share_decode(out, IG_NONCE_SHARE_MAX, &got, msg, len), IG_OK);
	/* other versions */
	for (int v = 0; v < 256; v++) {
		if (v == IG_NONCE_SHARE_VERSION)
			continue;
		msg[0] = (uint8_t)v;
		cr_assert_eq(ig_nonce_share_decode(out, IG_NONCE_SHARE_MAX, &got, msg, len), IG_ERR_INVAL, "version %d", v);
	}
	msg[0] = IG_NONCE_SHARE_VERSION;
	/* count 0 (a bare header) */
	uint8_t empty[3] = {1, 0, 0};
	cr_assert_eq(ig_nonce_share_decode(out, IG_NONCE_SHARE_MAX, &got, empty, 3), IG_ERR_INVAL);
	cr_assert_eq(ig_nonce_share_decode(out, IG_NONCE_SHARE_MAX, &got, NULL, 0), IG_ERR_INVAL);
	/* too little room for what is well formed */
	cr_assert_eq(ig_nonce_share_decode(out, 4, &got, msg, len), IG_ERR_RANGE);
	cr_assert_eq(got, 0u);
}

/* A count above the maximum is refused even when the length matches it. */
Test(nonce_share, oversized_refused)
{
	static uint8_t big[IG_NONCE_SHARE_HEADER_BYTES + (IG_NONCE_SHARE_MAX + 1) * IG_NONCE_SHARE_ENTRY_BYTES];
	memset(big, 0x5a, sizeof big);
	big[0] = IG_NONCE_SHARE_VERSION;
	big[1] = (uint8_t)((IG_NONCE_SHARE_MAX + 1) >> 8);
	big[2] = (uint8_t)(IG_NONCE_SHARE_MAX + 1);
	size_t got = 1;
	cr_assert_eq(ig_nonce_share_decode(out, IG_NONCE_SHARE_MAX + 1, &got, big, sizeof big), IG_ERR_INVAL);
	cr_assert_eq(got, 0u);
	big[1] = 0xff;
	big[2] = 0xff;
	cr_assert_eq(ig_nonce_share_decode(out, IG_NONCE_SHARE_MAX + 1, &got, big, sizeof big), IG_ERR_INVAL);
}

/* Random bytes and random mutations of good messages: the parse never
 * reads past the message (ASan/valgrind runs), and whatever it accepts
 * encodes back to exactly the bytes it read. */
Test(nonce_share, fuzz_never_accepts_what_it_cannot_reproduce)
{
	uint64_t seed = tu_seed();
	tu_rng_seed(seed);
	static uint8_t again[IG_NONCE_SHARE_MSG_MAX];
	size_t accepted = 0;
	for (int round = 0; round < 20000; round++) {
		size_t len;
		if (round % 2) {
			len = tu_rand32() % 200;
			tu_rand_bytes(msg, len);
			if (len >= 1 && tu_rand32() % 2)
				msg[0] = IG_NONCE_SHARE_VERSION;
		} else {
			size_t n = 1 + tu_rand32() % 8;
			fill(in, n);
			cr_assert_eq(ig_nonce_share_encode(msg, sizeof msg, &len, in, n), IG_OK);
			int flips = (int)(tu_rand32() % 3);
			for (int f = 0; f < flips; f++)
				msg[tu_rand32() % len] ^= (uint8_t)(1u << (tu_rand32() % 8));
			if (tu_rand32() % 4 == 0)
				len = tu_rand32() % (len + 30);
		}
		size_t got = 0, len2 = 0;
		if (ig_nonce_share_decode(out, IG_NONCE_SHARE_MAX, &got, msg, len) != IG_OK) {
			cr_assert_eq(got, 0u);
			continue;
		}
		accepted++;
		cr_assert_eq(ig_nonce_share_encode(again, sizeof again, &len2, out, got), IG_OK);
		cr_assert_eq(len2, len, "seed %llu round %d", (unsigned long long)seed, round);
		cr_assert_eq(memcmp(again, msg, len), 0, "seed %llu round %d", (unsigned long long)seed, round);
	}
	cr_assert_gt(accepted, 1000u, "the fuzz loop should also exercise accepted messages");
}

/* Only bridges publish, subscribe to and read bridge/nonces: a device
 * that could publish there would make others refuse tokens it saw, and
 * reading it is of no use to anyone else. */
Test(nonce_share, only_bridges_may_carry_the_topic)
{
	ig_policy *p = NULL;
	ig_error err = {0};
	cr_assert_eq(ig_policy_parse(ig_policy_default_json, strlen(ig_policy_default_json), &p, &err), IG_OK, "%s",
	             err.msg);
	const char *t = "iotguard/C/bridge/nonces";
	cr_assert(ig_policy_allows(p, IG_ROLE_BRIDGE, IG_ACCESS_PUBLISH, "C", "b1", t));
	cr_assert(ig_policy_allows(p, IG_ROLE_BRIDGE, IG_ACCESS_SUBSCRIBE, "C", "b1", t));
	cr_assert(ig_policy_allows(p, IG_ROLE_BRIDGE, IG_ACCESS_READ, "C", "b1", t));
	cr_assert_not(ig_policy_allows(p, IG_ROLE_BRIDGE, IG_ACCESS_RETAIN, "C", "b1", t));
	cr_assert_not(ig_policy_allows(p, IG_ROLE_BRIDGE, IG_ACCESS_PUBLISH, "D", "b1", "iotguard/C/bridge/nonces"));
	for (int r = 0; r < IG_ROLE_COUNT; r++) {
		if (r == IG_ROLE_BRIDGE)
			continue;
		for (int a = IG_ACCESS_PUBLISH; a <= IG_ACCESS_READ; a++) {
			const char *topics[] = {t, "iotguard/C/bridge/#", "iotguard/C/#", "#"};
			for (size_t k = 0; k < 4; k++)
				cr_assert_not(ig_policy_allows(p, (ig_role)r, (ig_access)a, "C", "x1", topics[k]),
				              "role %d access %d on %s", r, a, topics[k]);
		}
	}
	ig_policy_free(p);
}
