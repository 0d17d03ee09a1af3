/*
 * test_custody_approve.c: the admin unseal mode's signed statements
 * (lib/custody/approve.c; docs/PROTOCOL.md, "Custody: admin approval").
 *
 * Why this exists: the cluster head signs the admin list, an admin (through
 * the CLI) signs the approval, and a holder checks both; if the C builder
 * drifted from the documented bytes, no holder would ever release (or one
 * would accept what the text says it must not). The V_* values are computed
 * by tests/custody/approve_vectors.py from the text with PyNaCl, not from
 * this code (its --check keeps this file, the docs and itself in step).
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "ig_custody_approve.h"
#include "testutil.h"

#define V_APPROVE_CH_SEED "b40830525fefeed971bc1c0d042bfa7e0e8e93b096ae3f18f4fcb859227b48d9"
#define V_APPROVE_CH_PK "e99957c47b81268709cbde0ffb47b197abcb06425c39fcdba8e8334e3e39e1bd"
#define V_APPROVE_ADMIN1_SEED "baed2a6aceb2a7028bcb8c20f9d2c4488adca206fde28bee1370dfe7703a09a9"
#define V_APPROVE_ADMIN1_PK "a5924b79f0a146d3d29a982bdc414ae4ebcb2f0ff6883d07a1bedcbc342e093b"
#define V_APPROVE_ADMIN2_SEED "ccf35aa9ea40efc9b33960b4c35aa669c7e77a0a11bb42f08e85f08f0b1bca91"
#define V_APPROVE_ADMIN2_PK "03e190601a9be76b40a1a7b3a09e119fad4beb133c0f08b92897e2a510a092a9"
#define V_APPROVE_ADMINS_STATEMENT \
	"696f74677561726420637573746f64792061646d696e732076310a64656d6f0a000000000000000703e190601a9be76b" \
	"40a1a7b3a09e119fad4beb133c0f08b92897e2a510a092a9a5924b79f0a146d3d29a982bdc414ae4ebcb2f0ff6883d07" \
	"a1bedcbc342e093b"
#define V_APPROVE_ADMINS_SIG \
	"cd37fd34ef6bf67d784c1808a816d5cd263fa6d624b8ff814df96bf05047e45eeb6e4ae3eaee8ec411cc06670ffb6f36" \
	"76e5c015b61455e2e30f9cbfd5850a07"
#define V_APPROVE_REQUEST "5cd2441e96a527fba77ec7f4393d8305"
#define V_APPROVE_PK "e9f7abcd6f3e6fddd56f7d2a2571e81c90da2af98da5a6c1adb3389d1821df58"
#define V_APPROVE_SIZE "42"
#define V_APPROVE_ROOT "e36c0830e4d8154d38f12d4ef960ae9527ad36d373b2efadfb8d4b71215a3076"
#define V_APPROVE_STATEMENT \
	"696f74677561726420637573746f647920617070726f76652076310a64656d6f0a5cd2441e96a527fba77ec7f4393d83" \
	"05e9f7abcd6f3e6fddd56f7d2a2571e81c90da2af98da5a6c1adb3389d1821df58000000000000002ae36c0830e4d815" \
	"4d38f12d4ef960ae9527ad36d373b2efadfb8d4b71215a3076"
#define V_APPROVE_SIG \
	"38484004b0a975de31d03278c907dfb34929a55ace5b9c375a1aeeb66ff3aa3267457b5fc7c08d87289bcce03ed82d38" \
	"85212095590db46d314d8dfde6513906"

static size_t unhex(uint8_t *out, size_t cap, const char *hex)
{
	size_t n = strlen(hex) / 2;
	cr_assert_leq(n, cap);
	tu_unhex(out, n, hex);
	return n;
}

static void keypair(uint8_t pk[32], uint8_t sk[64], const char *seed_hex)
{
	uint8_t seed[32];
	unhex(seed, sizeof seed, seed_hex);
	crypto_sign_seed_keypair(pk, sk, seed);
}

Test(custody_approve, admin_list_statement_and_signature_match_the_vectors)
{
	cr_assert_eq(sodium_init() >= 0, 1);
	uint8_t ch_pk[32], ch_sk[64], pks[2][32], sk[64], want[512], got[512], sig[64], want_sig[64];
	keypair(ch_pk, ch_sk, V_APPROVE_CH_SEED);
	keypair(pks[0], sk, V_APPROVE_ADMIN1_SEED);
	keypair(pks[1], sk, V_APPROVE_ADMIN2_SEED);
	uint8_t pk_want[32];
	unhex(pk_want, 32, V_APPROVE_CH_PK);
	cr_assert_eq(memcmp(ch_pk, pk_want, 32), 0);
	unhex(pk_want, 32, V_APPROVE_ADMIN1_PK);
	cr_assert_eq(memcmp(pks[0], pk_want, 32), 0);
	/* Unsorted keys are refused; sorted, the statement is the documented one. */
	uint8_t unsorted[2][32];
	memcpy(unsorted, pks, sizeof unsorted);
	if (memcmp(unsorted[0], unsorted[1], 32) < 0) {
		memcpy(unsorted[0], pks[1], 32);
		memcpy(unsorted[1], pks[0], 32);
	}
	cr_assert_eq(ig_custody_approve_admins_sign(sig, "demo", 7, (const uint8_t(*)[32])unsorted, 2, ch_sk), IG_ERR_INVAL);
	ig_custody_approve_admins_sort(unsorted, 2);
	size_t wlen = unhex(want, sizeof want, V_APPROVE_ADMINS_STATEMENT);
	int len = ig_custody_approve_admins_statement(got, sizeof got, "demo", 7, (const uint8_t(*)[32])unsorted, 2);
	cr_assert_eq(len, (int)wlen);
	cr_assert_eq(memcmp(got, want, wlen), 0);
	cr_assert_eq(ig_custody_approve_admins_sign(sig, "demo", 7, (const uint8_t(*)[32])unsorted, 2, ch_sk), IG_OK);
	unhex(want_sig, 64, V_APPROVE_ADMINS_SIG);
	cr_assert_eq(memcmp(sig, want_sig, 64), 0);
	cr_assert_eq(ig_custody_approve_admins_verify(sig, "demo", 7, (const uint8_t(*)[32])unsorted, 2, ch_pk), IG_OK);
	/* Another epoch, cluster, list or key: refused. */
	cr_assert_eq(ig_custody_approve_admins_verify(sig, "demo", 8, (const uint8_t(*)[32])unsorted, 2, ch_pk), IG_ERR_CRYPTO);
	cr_assert_eq(ig_custody_approve_admins_verify(sig, "demo2", 7, (const uint8_t(*)[32])unsorted, 2, ch_pk), IG_ERR_CRYPTO);
	cr_assert_eq(ig_custody_approve_admins_verify(sig, "demo", 7, (const uint8_t(*)[32])unsorted, 1, ch_pk), IG_ERR_CRYPTO);
	cr_assert_eq(ig_custody_approve_admins_verify(sig, "demo", 7, (const uint8_t(*)[32])unsorted, 2, pks[0]), IG_ERR_CRYPTO);
	cr_assert_eq(ig_custody_approve_admins_statement(got, 40, "demo", 7, (const uint8_t(*)[32])unsorted, 2), IG_ERR_RANGE);
	cr_assert_eq(ig_custody_approve_admins_statement(got, sizeof got, "de\nmo", 7, (const uint8_t(*)[32])unsorted, 2),
	             IG_ERR_INVAL);
}

Test(custody_approve, approval_statement_and_signature_match_the_vectors)
{
	cr_assert_eq(sodium_init() >= 0, 1);
	uint8_t pk[32], sk[64], request[16], xpk[32], root[32], want[256], got[256], sig[64], want_sig[64];
	keypair(pk, sk, V_APPROVE_ADMIN1_SEED);
	unhex(request, 16, V_APPROVE_REQUEST);
	unhex(xpk, 32, V_APPROVE_PK);
	unhex(root, 32, V_APPROVE_ROOT);
	uint64_t size = strtoull(V_APPROVE_SIZE, NULL, 10);
	size_t wlen = unhex(want, sizeof want, V_APPROVE_STATEMENT);
	int len = ig_custody_approve_statement(got, sizeof got, "demo", request, xpk, size, root);
	cr_assert_eq(len, (int)wlen);
	cr_assert_eq(memcmp(got, want, wlen), 0);
	cr_assert_eq(ig_custody_approve_sign(sig, "demo", request, xpk, size, root, sk), IG_OK);
	unhex(want_sig, 64, V_APPROVE_SIG);
	cr_assert_eq(memcmp(sig, want_sig, 64), 0);
	cr_assert_eq(ig_custody_approve_verify(sig, "demo", request, xpk, size, root, pk), IG_OK);
	request[0] ^= 1;
	cr_assert_eq(ig_custody_approve_verify(sig, "demo", request, xpk, size, root, pk), IG_ERR_CRYPTO);
	request[0] ^= 1;
	cr_assert_eq(ig_custody_approve_verify(sig, "demo", request, xpk, size + 1, root, pk), IG_ERR_CRYPTO);
	uint8_t other_pk[32], other_sk[64];
	keypair(other_pk, other_sk, V_APPROVE_ADMIN2_SEED);
	cr_assert_eq(ig_custody_approve_verify(sig, "demo", request, xpk, size, root, other_pk), IG_ERR_CRYPTO);
}
