/*
 * test_hkdf.c: HKDF-SHA256 against RFC 5869 Appendix A and its edges.
 *
 * Why this exists: every key the cluster head derives goes through
 * ig_hkdf, so it must reproduce the RFC's published bytes exactly, and its
 * length limit (255 blocks) must hold at the exact boundary.
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "ig_hkdf.h"
#include "testutil.h"

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
}

typedef struct rfc_case {
	const char *name, *ikm, *salt, *info, *prk, *okm;
	size_t len;
} rfc_case;

/* RFC 5869 Appendix A, test cases 1-3 (the SHA-256 ones), byte for byte. */
static const rfc_case rfc_cases[] = {
	{
		"A.1 basic",
		"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
		"000102030405060708090a0b0c",
		"f0f1f2f3f4f5f6f7f8f9",
		"077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
		"3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
		42,
	},
	{
		"A.2 longer inputs and outputs",
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
		"202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
		"404142434445464748494a4b4c4d4e4f",
		"606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
		"808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
		"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
		"b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
		"d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef"
		"f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
		"06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
		"b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
		"59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
		"cc30c58179ec3e87c14c01d5c1f3434f1d87",
		82,
	},
	{
		"A.3 zero-length salt and info",
		"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
		"",
		"",
		"19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
		"8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
		42,
	},
};

Test(hkdf, rfc5869_sha256_vectors, .init = setup)
{
	for (size_t c = 0; c < sizeof rfc_cases / sizeof rfc_cases[0]; c++) {
		const rfc_case *t = &rfc_cases[c];
		uint8_t ikm[128], salt[128], info[128], prk[32], okm[128], okm2[128];
		size_t ikm_len = tu_unhex(ikm, sizeof ikm, t->ikm);
		size_t salt_len = tu_unhex(salt, sizeof salt, t->salt);
		size_t info_len = tu_unhex(info, sizeof info, t->info);
		cr_assert_eq(t->len, strlen(t->okm) / 2);

		ig_hkdf_extract(prk, salt, salt_len, ikm, ikm_len);
		tu_assert_hex(prk, 32, t->prk);
		cr_assert_eq(ig_hkdf_expand(okm, t->len, prk, info, info_len), IG_OK, "%s", t->name);
		tu_assert_hex(okm, t->len, t->okm);
		/* One-shot gives the same bytes. */
		memset(okm2, 0xee, sizeof okm2);
		cr_assert_eq(ig_hkdf(okm2, t->len, salt, salt_len, ikm, ikm_len, info, info_len), IG_OK);
		tu_assert_hex(okm2, t->len, t->okm);
		cr_assert_eq(okm2[t->len], 0xee, "%s: wrote past out_len", t->name);
	}
}

Test(hkdf, absent_salt_equals_zero_salt, .init = setup)
{
	/* RFC 5869 2.2: "if not provided, [salt] is set to a string of HashLen
	 * zeros"; NULL, empty and 32 zero bytes must agree (A.3 pins the value). */
	uint8_t ikm[22], zeros[32] = {0}, a[32], b[32], c[32];
	memset(ikm, 0x0b, sizeof ikm);
	ig_hkdf_extract(a, NULL, 0, ikm, sizeof ikm);
	ig_hkdf_extract(b, zeros, sizeof zeros, ikm, sizeof ikm);
	ig_hkdf_extract(c, zeros, 0, ikm, sizeof ikm);
	cr_assert_arr_eq(a, b, 32);
	cr_assert_arr_eq(a, c, 32);
	tu_assert_hex(a, 32, rfc_cases[2].prk);
	/* A different salt changes the PRK. */
	zeros[31] = 1;
	ig_hkdf_extract(b, zeros, sizeof zeros, ikm, sizeof ikm);
	cr_assert_arr_neq(a, b, 32);
}

Test(hkdf, first_block_is_hmac_of_info_and_one, .init = setup)
{
	/* Cross-check T(1) against a plain HMAC computed without ig_hkdf. */
	uint8_t prk[32], msg[64], expect[32], out[32];
	tu_seq_bytes(prk, 32, 0xa0);
	memcpy(msg, "iotguard test info", 18);
	msg[18] = 0x01;
	cr_assert_eq(crypto_auth_hmacsha256(expect, msg, 19, prk), 0);
	cr_assert_eq(ig_hkdf_expand(out, 32, prk, msg, 18), IG_OK);
	cr_assert_arr_eq(out, expect, 32);
}

Test(hkdf, output_lengths_and_bounds, .init = setup)
{
	static uint8_t big[IG_HKDF_MAX_OUT + 64], big2[IG_HKDF_MAX_OUT + 64];
	uint8_t prk[32];
	tu_seq_bytes(prk, 32, 0);
	const uint8_t info[] = "bounds";

	/* 0 bytes: success, nothing written. */
	memset(big, 0x77, sizeof big);
	cr_assert_eq(ig_hkdf_expand(big, 0, prk, info, 6), IG_OK);
	cr_assert_eq(big[0], 0x77);
	cr_assert_eq(ig_hkdf_expand(NULL, 0, prk, info, 6), IG_OK);
	cr_assert_eq(ig_hkdf(NULL, 0, NULL, 0, prk, 32, NULL, 0), IG_OK);

	/* 8160 = 255 * 32: the largest allowed output, exactly filled. */
	cr_assert_eq(IG_HKDF_MAX_OUT, 8160);
	cr_assert_eq(ig_hkdf_expand(big, IG_HKDF_MAX_OUT, prk, info, 6), IG_OK);
	cr_assert_eq(big[IG_HKDF_MAX_OUT], 0x77, "wrote past 8160 bytes");
	cr_assert_eq(ig_hkdf(big2, IG_HKDF_MAX_OUT, NULL, 0, prk, 32, info, 6), IG_OK);

	/* 8161: refused, nothing written. */
	memset(big2, 0x55, sizeof big2);
	cr_assert_eq(ig_hkdf_expand(big2, IG_HKDF_MAX_OUT + 1, prk, info, 6), IG_ERR_RANGE);
	cr_assert_eq(ig_hkdf(big2, IG_HKDF_MAX_OUT + 1, NULL, 0, prk, 32, info, 6), IG_ERR_RANGE);
	cr_assert_eq(ig_hkdf_expand(big2, SIZE_MAX, prk, info, 6), IG_ERR_RANGE);
	for (size_t i = 0; i < sizeof big2; i++)
		cr_assert_eq(big2[i], 0x55, "refused call wrote byte %zu", i);

	/* Every shorter output is a prefix of the longest one (block boundaries
	 * included), and no block repeats. */
	const size_t lens[] = {1, 31, 32, 33, 63, 64, 65, 1000, 8127, 8128, 8129, 8159};
	for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
		memset(big2, 0x55, sizeof big2);
		cr_assert_eq(ig_hkdf_expand(big2, lens[k], prk, info, 6), IG_OK);
		cr_assert_arr_eq(big2, big, lens[k], "length %zu", lens[k]);
		cr_assert_eq(big2[lens[k]], 0x55, "length %zu overran", lens[k]);
	}
	for (size_t i = 1; i < 255; i++)
		cr_assert_arr_neq(big + 32 * (i - 1), big + 32 * i, 32, "block %zu repeats", i);
}

Test(hkdf, inputs_change_output_and_aliasing_is_safe, .init = setup)
{
	uint8_t prk[32], a[64], b[64];
	for (int i = 0; i < 32; i++)
		prk[i] = (uint8_t)(3 * i);
	cr_assert_eq(ig_hkdf_expand(a, 64, prk, (const uint8_t *)"info-a", 6), IG_OK);
	cr_assert_eq(ig_hkdf_expand(b, 64, prk, (const uint8_t *)"info-b", 6), IG_OK);
	cr_assert_arr_neq(a, b, 32);
	/* NULL info and empty info are the same thing. */
	cr_assert_eq(ig_hkdf_expand(a, 64, prk, NULL, 0), IG_OK);
	cr_assert_eq(ig_hkdf_expand(b, 64, prk, (const uint8_t *)"", 0), IG_OK);
	cr_assert_arr_eq(a, b, 64);
	/* Expanding into the PRK's own buffer gives the same bytes. */
	uint8_t buf[64];
	memcpy(buf, prk, 32);
	cr_assert_eq(ig_hkdf_expand(buf, 64, buf, NULL, 0), IG_OK);
	cr_assert_arr_eq(buf, a, 64);
	/* Bad arguments. */
	cr_assert_eq(ig_hkdf_expand(NULL, 1, prk, NULL, 0), IG_ERR_INVAL);
	cr_assert_eq(ig_hkdf_expand(a, 1, NULL, NULL, 0), IG_ERR_INVAL);
	cr_assert_eq(ig_hkdf_expand(a, 1, prk, NULL, 5), IG_ERR_INVAL);
	cr_assert_eq(ig_hkdf(a, 1, NULL, 0, NULL, 5, NULL, 0), IG_ERR_INVAL);
}
