/*
 * test_text.c: the one spelling of numbers and blobs that every C2SP text
 * parser accepts (ig_text.h).
 *
 * Why this exists: checkpoints, cosignatures, tlog-proofs and witness
 * requests all rely on these rules to have exactly one spelling per value;
 * a looser rule in one place would let two different texts mean the same
 * thing.
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <string.h>

#include "ig_text.h"

Test(text, decimals_have_one_spelling)
{
	uint64_t v = 7;
	cr_assert(ig_text_u64("0", 1, &v) && v == 0);
	cr_assert(ig_text_u64("18446744073709551615", 20, &v) && v == UINT64_MAX);
	cr_assert(ig_text_u64("1234567", 7, &v) && v == 1234567);
	const char *bad[] = {"", "00", "01", "18446744073709551616", "99999999999999999999", "-1", "+1", " 1", "1 ",
	                     "1a", "123456789012345678901"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		v = 42;
		cr_assert_not(ig_text_u64(bad[i], strlen(bad[i]), &v), "'%s' accepted", bad[i]);
		cr_assert_eq(v, 42, "'%s' wrote the output", bad[i]);
	}
}

Test(text, base64_is_canonical_padded_standard)
{
	uint8_t out[64];
	size_t n = 0;
	cr_assert(ig_text_b64(out, sizeof out, &n, "AAEC", 4) && n == 3 && out[2] == 2);
	cr_assert(ig_text_b64(out, sizeof out, &n, "AA==", 4) && n == 1 && out[0] == 0);
	cr_assert(ig_text_b64(out, sizeof out, &n, "+/8=", 4) && n == 2 && out[0] == 0xfb && out[1] == 0xff);
	const char *bad[] = {
		"",        /* nothing */
		"AB==",    /* unused bits set: "AA==" is the spelling of 0x00 */
		"AAE",     /* no padding */
		"AA=",     /* short */
		"AA==AA==", /* padding inside */
		"-_8=",    /* URL alphabet */
		"AA== ",   /* trailing space */
		"A\nA=",   /* a newline */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_not(ig_text_b64(out, sizeof out, &n, bad[i], strlen(bad[i])), "'%s' accepted", bad[i]);
	/* The output is bounded by cap, never overrun. */
	cr_assert_not(ig_text_b64(out, 2, &n, "AAEC", 4));
	/* Long inputs are re-encoded a chunk at a time. */
	uint8_t big[1000], back[1000];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)(i * 7);
	char b64[1400];
	sodium_bin2base64(b64, sizeof b64, big, sizeof big, sodium_base64_VARIANT_ORIGINAL);
	cr_assert(ig_text_b64(back, sizeof back, &n, b64, strlen(b64)) && n == sizeof big);
	cr_assert_arr_eq(back, big, sizeof big);
	/* 1000 = 3 * 333 + 1: the last group is "XY==", and Y's low 4 bits
	 * are unused; setting one is a second spelling of the same bytes. */
	size_t y = strlen(b64) - 3;
	cr_assert_eq(b64[y + 1], '=');
	const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	b64[y] = alpha[(strchr(alpha, b64[y]) - alpha) | 1];
	cr_assert_not(ig_text_b64(back, sizeof back, &n, b64, strlen(b64)));
}

Test(text, lines_need_their_newline)
{
	const char *t = "one\n\nthree\nfour";
	ig_text_reader r;
	ig_text_reader_init(&r, t, strlen(t));
	const char *line;
	size_t n;
	cr_assert(ig_text_line(&r, &line, &n) && n == 3 && !memcmp(line, "one", 3) && r.lineno == 1);
	cr_assert(ig_text_line(&r, &line, &n) && n == 0 && r.lineno == 2);
	cr_assert(ig_text_line(&r, &line, &n) && n == 5 && r.lineno == 3);
	cr_assert_not(ig_text_line(&r, &line, &n), "'four' has no newline");
	cr_assert_eq(r.end - r.p, 4);
}
