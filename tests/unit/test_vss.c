/*
 * test_vss.c: Feldman-verifiable Shamir over ristretto255 (lib/custody/vss.c).
 *
 * Why this exists: the custody secret S is only as recoverable as this
 * arithmetic is right, and only as safe as verify is strict. The vectors
 * below were computed by tests/custody/vectors.py (an independent Python
 * implementation: integers mod l, ristretto255 points from libsodium via
 * ctypes) and are also in docs/PROTOCOL.md, "Custody: byte layouts and test
 * vectors". Then: every k of n rebuilds S and no k-1 does; a tampered
 * share, commitment or index fails verify; repeated or zero indices are
 * refused; an identity result is a failed check, never a crash.
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <string.h>

#include "ig_vss.h"
#include "testutil.h"

/* tests/custody/vectors.py: deal A (epoch 7, 3-of-5), its combines, deal B (rotation, 2-of-5). */
#define V_DEAL_A_COEFF0 "dce2b04eadf69a3c24fe2c9e730a2b31635e80146bdb85e2e827b1c9df41910d"
#define V_DEAL_A_COEFF1 "ee06a758d92848781507302931ed1981ece0a2aabec4e28b55b4b382d8980209"
#define V_DEAL_A_COEFF2 "007c7054263b810ee72ddfaa827ef830b8921b00dc32b0a997d13c8e88f6b30f"
#define V_DEAL_A_SHARE1 "f0bddc4178943f1374f94c2c6a827fb907d23ebf05d31818d6ada1da40d14706"
#define V_DEAL_A_SHARE2 "17bdf3807545d4aebbb3336d87fde58e1c6b346a58300ca1f2d60b08b34d660e"
#define V_DEAL_A_SHARE3 "77380a527043345f4ef3f11a0e88a087a129611563f35f7d3ea3ef5136b7ec05"
#define V_DEAL_A_SHARE4 "ead70b6f9d5484d4d8f1767bbb156dcd960dc5c0251c14adb9124db8ca0ddb0c"
#define V_DEAL_A_SHARE5 "96f30c1ec8b29f5eae75d348d2b28d36fc16606ca0aa28306425243b70513103"
#define V_DEAL_A_COMMITMENT0 "982110a0faa00f492137316fe2f01f4ea21972cf01adca3a66dfaa4232870604"
#define V_DEAL_A_COMMITMENT1 "5a841964aadc531c3917285241a5135f8a20d69340ad03e5d7803c6cf808056a"
#define V_DEAL_A_COMMITMENT2 "c0214667e45b8158bde223b1c80ddce6ef0e1d30100241ccad93f94c1a30b200"
#define V_DEAL_A_COMMITMENTS_HASH "af31dfb85981aa2a8ddc812760f5eb90de73ec8ea5efce371dbc13707832a386"
#define V_COMBINE_135_LAMBDA1 "76a4197af07d0bf705c2da252b5c0b0d0000000000000000000000000000000a"
#define V_COMBINE_135_LAMBDA3 "fa743d97c698049635e7bda877be370500000000000000000000000000000004"
#define V_COMBINE_135_LAMBDA5 "7eba9e4b634c02cb9af35ed43bdf9b0200000000000000000000000000000002"
#define V_COMBINE_135_SECRET "dce2b04eadf69a3c24fe2c9e730a2b31635e80146bdb85e2e827b1c9df41910d"
#define V_COMBINE_245_LAMBDA2 "4c8d4e9311420c903913a56c94a694b8aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa0a"
#define V_COMBINE_245_LAMBDA4 "e8d3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010"
#define V_COMBINE_245_LAMBDA5 "a746a7c9082106c89c8952364a534a5c55555555555555555555555555555505"
#define V_COMBINE_245_SECRET "dce2b04eadf69a3c24fe2c9e730a2b31635e80146bdb85e2e827b1c9df41910d"
#define V_DEAL_B_COEFF1 "7f6fd85dbeb8aa48b7d5d4e9eceb5b2d6c1e14b31765658b452c53e074653b00"
#define V_DEAL_B_SHARE2 "dac1610a2a68f0cd92a9d6714de2e28b3b9ba87a9aa550f97380578ac90c080e"
#define V_DEAL_B_COMMITMENT0 "982110a0faa00f492137316fe2f01f4ea21972cf01adca3a66dfaa4232870604"
#define V_DEAL_B_COMMITMENT1 "9eb8febc6f0ba5a1608579475fd1b1378dadb325da102b307ee19ee7a803fb66"
#define V_DEAL_BOX_BOX_KEY "67b85f3c738a1b7a37350cfb9c822adf7742b3fa3b712bee65480c9aadd5246b"
#define V_DEAL_BOX_NONCE "357640282b851ec2b0e01b091c1afcfe9d79e801dced0ff0"
#define V_DEAL_BOX_PLAINTEXT \
#define V_DEAL_BOX_BOX \

typedef uint8_t scalar[IG_VSS_BYTES];

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
}

static void unhex32(uint8_t out[32], const char *hex)
{
	cr_assert_eq(tu_unhex(out, 32, hex), 32);
}

static const char *const A_COEFFS[3] = {V_DEAL_A_COEFF0, V_DEAL_A_COEFF1, V_DEAL_A_COEFF2};
static const char *const A_SHARES[5] = {V_DEAL_A_SHARE1, V_DEAL_A_SHARE2, V_DEAL_A_SHARE3, V_DEAL_A_SHARE4,
                                        V_DEAL_A_SHARE5};
static const char *const A_COMMITS[3] = {V_DEAL_A_COMMITMENT0, V_DEAL_A_COMMITMENT1, V_DEAL_A_COMMITMENT2};

Test(vss, pinned_deal_matches_independent_vectors, .init = setup)
{
	scalar coeffs[3], shares[5], comms[3], want;
	for (int j = 0; j < 3; j++)
		unhex32(coeffs[j], A_COEFFS[j]);
	cr_assert_eq(ig_vss_deal_coeffs(shares, comms, (const scalar *)coeffs, 3, 5), IG_OK);
	for (int i = 0; i < 5; i++) {
		unhex32(want, A_SHARES[i]);
		cr_assert_arr_eq(shares[i], want, 32, "share %d differs from the Python vector", i + 1);
		cr_assert_eq(ig_vss_verify(shares[i], (unsigned)i + 1, (const scalar *)comms, 3), IG_OK);
	}
	for (int j = 0; j < 3; j++) {
		unhex32(want, A_COMMITS[j]);
		cr_assert_arr_eq(comms[j], want, 32, "commitment %d differs from the Python vector", j);
	}
	cr_assert_eq(ig_vss_check_secret(coeffs[0], comms[0]), IG_OK);
}

Test(vss, pinned_rotation_keeps_commitment0, .init = setup)
{
	scalar coeffs[2], shares[5], comms[2], want;
	unhex32(coeffs[0], V_DEAL_A_COEFF0);
	unhex32(coeffs[1], V_DEAL_B_COEFF1);
	cr_assert_eq(ig_vss_deal_coeffs(shares, comms, (const scalar *)coeffs, 2, 5), IG_OK);
	unhex32(want, V_DEAL_B_SHARE2);
	cr_assert_arr_eq(shares[1], want, 32);
	unhex32(want, V_DEAL_B_COMMITMENT0);
	cr_assert_arr_eq(comms[0], want, 32);
	unhex32(want, V_DEAL_A_COMMITMENT0);
	cr_assert_arr_eq(comms[0], want, 32, "a rotation of the same S must keep C0 = S·G");
	unhex32(want, V_DEAL_B_COMMITMENT1);
	cr_assert_arr_eq(comms[1], want, 32);
}

Test(vss, pinned_combines, .init = setup)
{
	static const uint8_t sets[2][3] = {{1, 3, 5}, {2, 4, 5}};
	const char *want_hex[2] = {V_COMBINE_135_SECRET, V_COMBINE_245_SECRET};
	scalar shares[3], S, want;
	for (int s = 0; s < 2; s++) {
		for (int i = 0; i < 3; i++)
			unhex32(shares[i], A_SHARES[sets[s][i] - 1]);
		cr_assert_eq(ig_vss_combine(S, sets[s], (const scalar *)shares, 3), IG_OK);
		unhex32(want, want_hex[s]);
		cr_assert_arr_eq(S, want, 32);
		unhex32(want, V_DEAL_A_COEFF0);
		cr_assert_arr_eq(S, want, 32);
	}
}

/* The Lagrange coefficients, checked through combine: one share 1 and the
 * others 0 gives exactly lambda_i. */
Test(vss, pinned_lagrange_coefficients, .init = setup)
{
	static const uint8_t set[3] = {1, 3, 5};
	const char *lam[3] = {V_COMBINE_135_LAMBDA1, V_COMBINE_135_LAMBDA3, V_COMBINE_135_LAMBDA5};
	static const uint8_t set2[3] = {2, 4, 5};
	const char *lam2[3] = {V_COMBINE_245_LAMBDA2, V_COMBINE_245_LAMBDA4, V_COMBINE_245_LAMBDA5};
	for (int which = 0; which < 2; which++)
		for (int i = 0; i < 3; i++) {
			scalar shares[3] = {{0}}, out, want;
			shares[i][0] = 1;
			cr_assert_eq(ig_vss_combine(out, which ? set2 : set, (const scalar *)shares, 3), IG_OK);
			unhex32(want, which ? lam2[i] : lam[i]);
			cr_assert_arr_eq(out, want, 32);
		}
}

static void random_secret(scalar s)
{
	do
		crypto_core_ristretto255_scalar_random(s);
	while (sodium_is_zero(s, 32));
}

/* Every subset of 1..5 by bitmask: size >= 3 rebuilds S, smaller does not. */
Test(vss, any_k_of_n_rebuild_and_fewer_do_not, .init = setup)
{
	scalar S, shares[5], comms[3];
	random_secret(S);
	cr_assert_eq(ig_vss_deal(shares, comms, S, 3, 5), IG_OK);
	for (unsigned mask = 1; mask < 32; mask++) {
		uint8_t idx[5];
		scalar sub[5], out;
		unsigned m = 0;
		for (unsigned i = 0; i < 5; i++)
			if (mask & (1u << i)) {
				idx[m] = (uint8_t)(i + 1);
				memcpy(sub[m++], shares[i], 32);
			}
		cr_assert_eq(ig_vss_combine(out, idx, (const scalar *)sub, m), IG_OK);
		if (m >= 3) {
			cr_assert_arr_eq(out, S, 32, "subset 0x%x did not rebuild S", mask);
			cr_assert_eq(ig_vss_check_secret(out, comms[0]), IG_OK);
		} else {
			cr_assert_arr_neq(out, S, 32, "%u shares (subset 0x%x) rebuilt S", m, mask);
			cr_assert_eq(ig_vss_check_secret(out, comms[0]), IG_ERR_CRYPTO);
		}
	}
}

Test(vss, large_deal_22_of_64, .init = setup)
{
	enum { K = 22, N = 64 };
	scalar S, shares[N], comms[K], sub[K], out;
	uint8_t idx[K];
	random_secret(S);
	cr_assert_eq(ig_vss_deal(shares, comms, S, K, N), IG_OK);
	for (unsigned i = 0; i < N; i += 9)
		cr_assert_eq(ig_vss_verify(shares[i], i + 1, (const scalar *)comms, K), IG_OK);
	for (int round = 0; round < 3; round++) {
		/* K distinct random indices out of 1..N. */
		bool used[N + 1] = {false};
		for (unsigned m = 0; m < K;) {
			unsigned i = 1 + tu_rand32() % N;
			if (used[i])
				continue;
			used[i] = true;
			idx[m] = (uint8_t)i;
			memcpy(sub[m++], shares[i - 1], 32);
		}
		cr_assert_eq(ig_vss_combine(out, idx, (const scalar *)sub, K), IG_OK);
		cr_assert_arr_eq(out, S, 32);
		cr_assert_eq(ig_vss_combine(out, idx, (const scalar *)sub, K - 1), IG_OK);
		cr_assert_arr_neq(out, S, 32);
	}
}

Test(vss, max_n_255, .init = setup)
{
	static scalar shares[255], comms[3];
	scalar S, out;
	random_secret(S);
	cr_assert_eq(ig_vss_deal(shares, comms, S, 3, 255), IG_OK);
	cr_assert_eq(ig_vss_verify(shares[254], 255, (const scalar *)comms, 3), IG_OK);
	uint8_t idx[3] = {255, 1, 128};
	scalar sub[3];
	memcpy(sub[0], shares[254], 32);
	memcpy(sub[1], shares[0], 32);
	memcpy(sub[2], shares[127], 32);
	cr_assert_eq(ig_vss_combine(out, idx, (const scalar *)sub, 3), IG_OK);
	cr_assert_arr_eq(out, S, 32);
}

Test(vss, tampered_share_fails_verify, .init = setup)
{
	scalar S, shares[5], comms[3];
	random_secret(S);
	cr_assert_eq(ig_vss_deal(shares, comms, S, 3, 5), IG_OK);
	for (unsigned bit = 0; bit < 252; bit += 7) {
		scalar bad;
		memcpy(bad, shares[2], 32);
		bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		cr_assert_eq(ig_vss_verify(bad, 3, (const scalar *)comms, 3), IG_ERR_CRYPTO, "bit %u", bit);
	}
	/* Another holder's share, or this share under another index. */
	cr_assert_eq(ig_vss_verify(shares[1], 3, (const scalar *)comms, 3), IG_ERR_CRYPTO);
	cr_assert_eq(ig_vss_verify(shares[2], 4, (const scalar *)comms, 3), IG_ERR_CRYPTO);
	/* Non-canonical: share + l would be the same number mod l to scalar_mul
	 * but not to scalarmult; refused outright. */
	scalar l = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
	            0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0x10};
	cr_assert_eq(ig_vss_verify(l, 3, (const scalar *)comms, 3), IG_ERR_CRYPTO);
	uint8_t idx1 = 1;
	cr_assert_eq(ig_vss_combine(S, &idx1, (const scalar *)&l, 1), IG_ERR_INVAL);
}

Test(vss, tampered_commitment_fails_verify, .init = setup)
{
	scalar S, shares[5], comms[3], other[3];
	random_secret(S);
	cr_assert_eq(ig_vss_deal(shares, comms, S, 3, 5), IG_OK);
	cr_assert_eq(ig_vss_deal(shares + 0, other, S, 3, 5), IG_OK);   /* fresh polynomial, same S */
	/* shares now belong to "other"; the old commitments no longer match. */
	cr_assert_eq(ig_vss_verify(shares[0], 1, (const scalar *)comms, 3), IG_ERR_CRYPTO);
	cr_assert_eq(ig_vss_verify(shares[0], 1, (const scalar *)other, 3), IG_OK);
	for (int j = 0; j < 3; j++) {
		scalar bad[3];
		memcpy(bad, other, sizeof bad);
		bad[j][5] ^= 0x40;   /* usually not a point; when it is, a different one */
		cr_assert_eq(ig_vss_verify(shares[0], 1, (const scalar *)bad, 3), IG_ERR_CRYPTO, "commitment %d", j);
		memcpy(bad, other, sizeof bad);
		cr_assert_eq(crypto_core_ristretto255_add(bad[j], bad[j], other[0]), 0);
		cr_assert_eq(ig_vss_verify(shares[0], 1, (const scalar *)bad, 3), IG_ERR_CRYPTO, "commitment %d", j);
	}
	/* Too few commitments (a lower-degree claim) fails as well. */
	cr_assert_eq(ig_vss_verify(shares[0], 1, (const scalar *)other, 2), IG_ERR_CRYPTO);
}

/* crypto_scalarmult_ristretto255 returns -1 for an identity result: a zero
 * share, identity commitments, or commitments that cancel mid-Horner must
 * all be failed checks. */
Test(vss, identity_results_fail_cleanly, .init = setup)
{
	scalar zero = {0}, comms[3], S, shares[5];
	random_secret(S);
	cr_assert_eq(ig_vss_deal(shares, comms, S, 3, 5), IG_OK);
	cr_assert_eq(ig_vss_verify(zero, 1, (const scalar *)comms, 3), IG_ERR_CRYPTO);
	/* Identity commitments (all-zero encoding). */
	scalar ident[3] = {{0}};
	memcpy(ident[0], comms[0], 32);
	cr_assert_eq(ig_vss_verify(shares[0], 1, (const scalar *)ident, 3), IG_ERR_CRYPTO);
	/* C1 = -C2, so the first Horner step at index 1 (C2·1 + C1) is the identity. */
	scalar cancel[3];
	uint8_t identity[32];
	cr_assert_eq(crypto_core_ristretto255_sub(identity, comms[1], comms[1]), 0);
	cr_assert_eq(crypto_core_ristretto255_sub(cancel[1], identity, comms[2]), 0);
	memcpy(cancel[2], comms[2], 32);
	memcpy(cancel[0], comms[0], 32);
	cr_assert_eq(ig_vss_verify(shares[0], 1, (const scalar *)cancel, 3), IG_ERR_CRYPTO);
	cr_assert_eq(ig_vss_check_secret(zero, comms[0]), IG_ERR_CRYPTO);
	cr_assert_eq(ig_vss_check_secret(S, identity), IG_ERR_CRYPTO);
}

Test(vss, combine_refuses_repeated_or_zero_index, .init = setup)
{
	scalar S, shares[5], comms[3], sub[3], out;
	random_secret(S);
	cr_assert_eq(ig_vss_deal(shares, comms, S, 3, 5), IG_OK);
	memcpy(sub[0], shares[0], 32);
	memcpy(sub[1], shares[1], 32);
	memcpy(sub[2], shares[1], 32);
	uint8_t rep[3] = {1, 2, 2}, zero[3] = {0, 1, 2};
	memset(out, 0xAA, 32);
	cr_assert_eq(ig_vss_combine(out, rep, (const scalar *)sub, 3), IG_ERR_INVAL);
	cr_assert_eq(ig_vss_combine(out, zero, (const scalar *)sub, 3), IG_ERR_INVAL);
	cr_assert_eq(ig_vss_combine(out, rep, (const scalar *)sub, 0), IG_ERR_INVAL);
	uint8_t still[32];
	memset(still, 0xAA, 32);
	cr_assert_arr_eq(out, still, 32, "a refused combine must not write the output");
}

Test(vss, deal_refuses_bad_parameters, .init = setup)
{
	static scalar shares[256], comms[256], coeffs[256];
	for (int j = 0; j < 256; j++)
		random_secret(coeffs[j]);
	cr_assert_eq(ig_vss_deal_coeffs(shares, comms, (const scalar *)coeffs, 1, 5), IG_ERR_INVAL);
	cr_assert_eq(ig_vss_deal_coeffs(shares, comms, (const scalar *)coeffs, 6, 5), IG_ERR_INVAL);
	cr_assert_eq(ig_vss_deal_coeffs(shares, comms, (const scalar *)coeffs, 3, 256), IG_ERR_INVAL);
	cr_assert_eq(ig_vss_deal_coeffs(shares, comms, (const scalar *)coeffs, 255, 255), IG_OK);
	cr_assert_eq(ig_vss_verify(shares[200], 201, (const scalar *)comms, 255), IG_OK);
	cr_assert_eq(ig_vss_deal(shares, comms, coeffs[0], 2, 1), IG_ERR_INVAL);
	scalar zero = {0};
	cr_assert_eq(ig_vss_deal(shares, comms, zero, 2, 3), IG_ERR_INVAL);
	memset(coeffs[2], 0, 32);
	cr_assert_eq(ig_vss_deal_coeffs(shares, comms, (const scalar *)coeffs, 3, 5), IG_ERR_INVAL);
	memset(coeffs[2], 0xff, 32);   /* >= l: not canonical */
	cr_assert_eq(ig_vss_deal_coeffs(shares, comms, (const scalar *)coeffs, 3, 5), IG_ERR_INVAL);
	cr_assert_eq(ig_vss_verify(shares[0], 0, (const scalar *)comms, 3), IG_ERR_INVAL);
	cr_assert_eq(ig_vss_verify(shares[0], 256, (const scalar *)comms, 3), IG_ERR_INVAL);
	cr_assert_eq(ig_vss_verify(shares[0], 1, (const scalar *)comms, 1), IG_ERR_INVAL);
}
