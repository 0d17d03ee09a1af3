/*
 * test_checkpoint.c: signed-note checkpoints, byte-exact and strictly parsed.
 *
 * Why this exists: the checkpoint text is what auditors keep and what other
 * note tools check; a pinned vector holds the exact bytes (the same text as
 * docs/LEDGER.md), and tamper/truncation/fuzz loops hold the strictness.
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_checkpoint.h"
#include "testutil.h"

#define VEC_ROOT_HEX "84706b1b7a1fbbf31865f7949f0b440d814e99bc77c200c9aa4e850f10ab7fcd"
#define VEC_TEXT                                                                                   \
	"iotguard/demo\n"                                                                              \
	"3\n"                                                                                          \
	"hHBrG3ofu/MYZfeUnwtEDYFOmbx3wgDJqk6FDxCrf80=\n"                                               \
	"\n"                                                                                           \
	"\xe2\x80\x94 iotguard/demo "                                                                  \
	"XFh2Ex14Uv3x810ciN9gKSZJQb5SfH9+4AmMi1rH8YMhuOI80z1bFP/Mpoe5mlPCk82nGBC2RKS6bB9scYg0PKaa1Q4=\n"

static uint8_t pk[32], sk[64];

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	tu_seed_keypair(pk, sk, 0x00);
}

static ig_checkpoint vec_cp(void)
{
	ig_checkpoint cp;
	memset(&cp, 0, sizeof cp);
	cr_assert_eq(ig_checkpoint_origin(cp.origin, sizeof cp.origin, "demo"), 13);
	cp.size = 3;
	cr_assert_eq(ig_hex_decode(cp.root, 32, VEC_ROOT_HEX, 64), IG_OK);
	return cp;
}

static int verify(const char *text, size_t len, ig_error *err)
{
	/* Heap copy of exactly len bytes: ASan flags any read past the end. */
	char *p = malloc(len ? len : 1);
	cr_assert_not_null(p);
	memcpy(p, text, len);
	ig_checkpoint cp;
	int rc = ig_checkpoint_verify(p, len, "iotguard/demo", pk, &cp, err);
	free(p);
	return rc;
}

Test(checkpoint, origin)
{
	char out[80];
	cr_assert_eq(ig_checkpoint_origin(out, sizeof out, "demo"), 13);
	cr_assert_str_eq(out, "iotguard/demo");
	cr_assert_eq(ig_checkpoint_origin(out, 13, "demo"), IG_ERR_RANGE);
	cr_assert_eq(ig_checkpoint_origin(out, 14, "demo"), 13);
	cr_assert_eq(ig_checkpoint_origin(out, sizeof out, "bad name"), IG_ERR_INVAL);
	cr_assert_eq(ig_checkpoint_origin(out, sizeof out, ""), IG_ERR_INVAL);
	char longest[IG_CLUSTER_MAX + 1];
	memset(longest, 'x', IG_CLUSTER_MAX);
	longest[IG_CLUSTER_MAX] = '\0';
	cr_assert_eq(ig_checkpoint_origin(out, sizeof out, longest), 9 + IG_CLUSTER_MAX);
	char toolong[IG_CLUSTER_MAX + 2];
	memset(toolong, 'x', IG_CLUSTER_MAX + 1);
	toolong[IG_CLUSTER_MAX + 1] = '\0';
	cr_assert_eq(ig_checkpoint_origin(out, sizeof out, toolong), IG_ERR_INVAL);
}

Test(checkpoint, pinned_vector, .init = setup)
{
	char pkhex[65];
	ig_hex_encode(pkhex, pk, 32);
	cr_assert_str_eq(pkhex, "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8");

	ig_checkpoint cp = vec_cp();
	char text[IG_CHECKPOINT_MAX];
	int n = ig_checkpoint_sign(text, sizeof text, &cp, sk);
	cr_assert_eq(n, (int)strlen(VEC_TEXT));
	cr_assert_str_eq(text, VEC_TEXT);

	ig_checkpoint got;
	ig_error err = {0};
	cr_assert_eq(ig_checkpoint_verify(VEC_TEXT, strlen(VEC_TEXT), "iotguard/demo", pk, &got, &err), IG_OK,
	             "%s", err.msg);
	cr_assert_str_eq(got.origin, "iotguard/demo");
	cr_assert_eq(got.size, 3u);
	cr_assert_arr_eq(got.root, cp.root, 32);
}

Test(checkpoint, key_id_is_sha256_of_name_newline_type_pubkey, .init = setup)
{
	uint8_t in[13 + 2 + 32], digest[32], blob[68];
	memcpy(in, "iotguard/demo\n\x01", 15);
	memcpy(in + 15, pk, 32);
	crypto_hash_sha256(digest, in, sizeof in);
	const char *b64 = strrchr(VEC_TEXT, ' ') + 1;
	size_t blen = 0;
	cr_assert_eq(sodium_base642bin(blob, sizeof blob, b64, strlen(b64) - 1, NULL, &blen, NULL,
	                               sodium_base64_VARIANT_ORIGINAL),
	             0);
	cr_assert_eq(blen, 68u);
	cr_assert_arr_eq(blob, digest, 4);
	/* The signature covers exactly the three body lines. */
	const char *body = "iotguard/demo\n3\nhHBrG3ofu/MYZfeUnwtEDYFOmbx3wgDJqk6FDxCrf80=\n";
	cr_assert_eq(crypto_sign_verify_detached(blob + 4, (const uint8_t *)body, strlen(body), pk), 0);
}

Test(checkpoint, doc_prints_the_pinned_note, .init = setup)
{
	const char *doc = tu_read_doc("LEDGER.md");
	cr_assert_not_null(strstr(doc, "```\n" VEC_TEXT "```"), "docs/LEDGER.md lacks the exact checkpoint text");
	cr_assert_not_null(strstr(doc, VEC_ROOT_HEX));

	/* The note-tool verifier key the document prints. */
	uint8_t typed[33];
	typed[0] = 0x01;
	memcpy(typed + 1, pk, 32);
	char b64[64], vkey[128];
	sodium_bin2base64(b64, sizeof b64, typed, sizeof typed, sodium_base64_VARIANT_ORIGINAL);
	snprintf(vkey, sizeof vkey, "iotguard/demo+5c587613+%s", b64);
	cr_assert_str_eq(vkey, "iotguard/demo+5c587613+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4");
	cr_assert_not_null(strstr(doc, vkey));
}

Test(checkpoint, round_trip_sizes, .init = setup)
{
	const uint64_t sizes[] = {0, 1, 9, 10, 1000000, UINT64_MAX};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		ig_checkpoint cp = vec_cp(), got;
		cp.size = sizes[i];
		cp.root[0] = (uint8_t)i;
		char text[IG_CHECKPOINT_MAX];
		int n = ig_checkpoint_sign(text, sizeof text, &cp, sk);
		cr_assert_gt(n, 0);
		ig_error err = {0};
		cr_assert_eq(ig_checkpoint_verify(text, (size_t)n, "iotguard/demo", pk, &got, &err), IG_OK, "%s",
		             err.msg);
		cr_assert_eq(got.size, sizes[i]);
		cr_assert_arr_eq(got.root, cp.root, 32);
		/* NULL expected origin: accept whatever the note names, still signed. */
		cr_assert_eq(ig_checkpoint_verify(text, (size_t)n, NULL, pk, NULL, &err), IG_OK, "%s", err.msg);
	}
}

Test(checkpoint, longest_origin_fits, .init = setup)
{
	char cluster[IG_CLUSTER_MAX + 1];
	memset(cluster, 'q', IG_CLUSTER_MAX);
	cluster[IG_CLUSTER_MAX] = '\0';
	ig_checkpoint cp = vec_cp(), got;
	cr_assert_gt(ig_checkpoint_origin(cp.origin, sizeof cp.origin, cluster), 0);
	cp.size = UINT64_MAX;
	char text[IG_CHECKPOINT_MAX];
	int n = ig_checkpoint_sign(text, sizeof text, &cp, sk);
	cr_assert_gt(n, 0);
	cr_assert_lt(n, IG_CHECKPOINT_MAX);
	ig_error err = {0};
	cr_assert_eq(ig_checkpoint_verify(text, (size_t)n, cp.origin, pk, &got, &err), IG_OK, "%s", err.msg);
	/* Too small an output buffer, at every size: refused, never overflowed. */
	for (int cap = 0; cap < n + 1; cap++) {
		char *small = malloc((size_t)cap + 1);
		cr_assert_not_null(small);
		cr_assert_lt(ig_checkpoint_sign(small, (size_t)cap, &cp, sk), 0, "cap %d", cap);
		free(small);
	}
}

Test(checkpoint, sign_refuses_bad_origin, .init = setup)
{
	ig_checkpoint cp = vec_cp();
	char text[IG_CHECKPOINT_MAX];
	strcpy(cp.origin, "has space");
	cr_assert_lt(ig_checkpoint_sign(text, sizeof text, &cp, sk), 0);
	strcpy(cp.origin, "a+b");
	cr_assert_lt(ig_checkpoint_sign(text, sizeof text, &cp, sk), 0);
	strcpy(cp.origin, "new\nline");
	cr_assert_lt(ig_checkpoint_sign(text, sizeof text, &cp, sk), 0);
	cp.origin[0] = '\0';
	cr_assert_lt(ig_checkpoint_sign(text, sizeof text, &cp, sk), 0);
}

Test(checkpoint, every_byte_tamper_fails, .init = setup)
{
	char text[IG_CHECKPOINT_MAX];
	size_t n = strlen(VEC_TEXT);
	memcpy(text, VEC_TEXT, n);
	const uint8_t flips[] = {0x01, 0x20, 0x80};
	ig_error err;
	for (size_t i = 0; i < n; i++)
		for (size_t f = 0; f < sizeof flips; f++) {
			text[i] = (char)(text[i] ^ flips[f]);
			int rc = verify(text, n, &err);
			cr_assert_lt(rc, 0, "tamper of byte %zu (^0x%02x) accepted", i, flips[f]);
			cr_assert_gt(strlen(err.msg), 10u);
			text[i] = (char)(text[i] ^ flips[f]);
		}
	cr_assert_eq(verify(text, n, &err), IG_OK, "%s", err.msg);
}

Test(checkpoint, truncation_and_extension_fail, .init = setup)
{
	size_t n = strlen(VEC_TEXT);
	ig_error err;
	for (size_t len = 0; len < n; len++)
		cr_assert_lt(verify(VEC_TEXT, len, &err), 0, "prefix of %zu bytes accepted", len);
	char text[IG_CHECKPOINT_MAX];
	memcpy(text, VEC_TEXT, n);
	memcpy(text + n, "x", 1);
	cr_assert_lt(verify(text, n + 1, &err), 0);
	memcpy(text + n, "\n", 1);
	cr_assert_lt(verify(text, n + 1, &err), 0);
	text[n] = '\0';
	cr_assert_lt(verify(text, n + 1, &err), 0);
	cr_assert_not_null(strstr(err.msg, "NUL"), "%s", err.msg);
}

/* Replaces line `line` (0-based) of the vector with `repl` (no newline). */
static size_t with_line(char *out, size_t cap, int line, const char *repl)
{
	const char *p = VEC_TEXT;
	size_t pos = 0;
	for (int l = 0; *p; l++) {
		const char *nl = strchr(p, '\n');
		cr_assert_not_null(nl);
		const char *src = l == line ? repl : p;
		size_t len = l == line ? strlen(repl) : (size_t)(nl - p);
		cr_assert_lt(pos + len + 1, cap);
		memcpy(out + pos, src, len);
		pos += len;
		out[pos++] = '\n';
		p = nl + 1;
	}
	out[pos] = '\0';
	return pos;
}

Test(checkpoint, malformed_lines_named, .init = setup)
{
	struct {
		int line;
		const char *repl;
		const char *msg;
	} cases[] = {
		{0, "iotguard/other", "origin"},
		{0, "", "line 1"},
		{0, "iotguard/demo ", "line 1"},
		{1, "03", "line 2"},
		{1, "+3", "line 2"},
		{1, "-3", "line 2"},
		{1, " 3", "line 2"},
		{1, "3 ", "line 2"},
		{1, "", "line 2"},
		{1, "0x3", "line 2"},
		{1, "18446744073709551616", "line 2"}, /* 2^64 */
		{1, "4", "signature"},
		{2, "hHBrG3ofu/MYZfeUnwtEDYFOmbx3wgDJqk6FDxCrf81=", "line 3"}, /* non-canonical tail bits */
		{2, "hHBrG3ofu/MYZfeUnwtEDYFOmbx3wgDJqk6FDxCrf80", "line 3"},
		{2, "hHBrG3ofu_MYZfeUnwtEDYFOmbx3wgDJqk6FDxCrf80=", "line 3"},
		{2, "hHBrG3ofu/MYZfeUnwtEDYFOmbx3wgDJqk6FDxCrf80=AAAA", "line 3"},
		{2, "hHBrG3ofu/MYZfeUnwtEDYFOmbx3wgDJqk6FDxCr", "line 3"},
		{2, "iHBrG3ofu/MYZfeUnwtEDYFOmbx3wgDJqk6FDxCrf80=", "signature"},
		{3, "extension line", "line 4"},
		{4, "- iotguard/demo XFh2Ex14Uv3x810ciN9gKSZJQb5SfH9+4AmMi1rH8YMhuOI80z1bFP/Mpoe5mlPCk82nGBC2RKS6bB9scYg0PKaa1Q4=",
		 "em dash"},
		{4, "\xe2\x80\x94 iotguard/demo  XFh2Ex14Uv3x810ciN9gKSZJQb5SfH9+4AmMi1rH8YMhuOI80z1bFP/Mpoe5mlPCk82nGBC2RKS6bB9scYg0PKaa1Q4=",
		 "line 5"},
		{4, "\xe2\x80\x94 iotguard/demo XFh2Ex14Uv3x810ciN9gKSZJQb5SfH9+4AmMi1rH8YMhuOI80z1bFP/Mpoe5mlPCk82nGBC2RKS6bB9scYg0PKaa1Q4",
		 "line 5"},
		{4, "\xe2\x80\x94 iotguard/demo", "line 5"},
		{4, "\xe2\x80\x94 iotguard/other XFh2Ex14Uv3x810ciN9gKSZJQb5SfH9+4AmMi1rH8YMhuOI80z1bFP/Mpoe5mlPCk82nGBC2RKS6bB9scYg0PKaa1Q4=",
		 "no signature"},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		char text[1024];
		size_t n = with_line(text, sizeof text, cases[c].line, cases[c].repl);
		ig_error err = {0};
		cr_assert_lt(verify(text, n, &err), 0, "case %zu accepted", c);
		cr_assert_not_null(strstr(err.msg, cases[c].msg), "case %zu: message '%s' lacks '%s'", c, err.msg,
		                   cases[c].msg);
	}
}

Test(checkpoint, crlf_and_missing_blank_line_fail, .init = setup)
{
	ig_error err;
	const char *crlf = "iotguard/demo\r\n3\r\nhHBrG3ofu/MYZfeUnwtEDYFOmbx3wgDJqk6FDxCrf80=\r\n\r\n";
	cr_assert_lt(verify(crlf, strlen(crlf), &err), 0);
	const char *noblank =
		"iotguard/demo\n3\nhHBrG3ofu/MYZfeUnwtEDYFOmbx3wgDJqk6FDxCrf80=\n"
		"\xe2\x80\x94 iotguard/demo "
		"XFh2Ex14Uv3x810ciN9gKSZJQb5SfH9+4AmMi1rH8YMhuOI80z1bFP/Mpoe5mlPCk82nGBC2RKS6bB9scYg0PKaa1Q4=\n";
	cr_assert_lt(verify(noblank, strlen(noblank), &err), 0);
	cr_assert_not_null(strstr(err.msg, "line 4"), "%s", err.msg);
	const char *nosig = "iotguard/demo\n3\nhHBrG3ofu/MYZfeUnwtEDYFOmbx3wgDJqk6FDxCrf80=\n\n";
	cr_assert_lt(verify(nosig, strlen(nosig), &err), 0);
	cr_assert_not_null(strstr(err.msg, "no signature"), "%s", err.msg);
}

Test(checkpoint, wrong_key_and_wrong_origin_fail, .init = setup)
{
	ig_error err = {0};
	uint8_t other_pk[32], other_sk[64];
	crypto_sign_keypair(other_pk, other_sk);
	int rc = ig_checkpoint_verify(VEC_TEXT, strlen(VEC_TEXT), "iotguard/demo", other_pk, NULL, &err);
	cr_assert_eq(rc, IG_ERR_CRYPTO);
	cr_assert_not_null(strstr(err.msg, "no signature"), "%s", err.msg);

	rc = ig_checkpoint_verify(VEC_TEXT, strlen(VEC_TEXT), "iotguard/prod", pk, NULL, &err);
	cr_assert_lt(rc, 0);
	cr_assert_not_null(strstr(err.msg, "iotguard/prod"), "%s", err.msg);

	/* A checkpoint for another cluster signed by the right key is still refused. */
	ig_checkpoint cp = vec_cp();
	strcpy(cp.origin, "iotguard/prod");
	char text[IG_CHECKPOINT_MAX];
	int n = ig_checkpoint_sign(text, sizeof text, &cp, sk);
	cr_assert_gt(n, 0);
	cr_assert_lt(ig_checkpoint_verify(text, (size_t)n, "iotguard/demo", pk, NULL, &err), 0);

	/* Signed by another key under our name: the key id differs, so ours is missing. */
	cp = vec_cp();
	n = ig_checkpoint_sign(text, sizeof text, &cp, other_sk);
	cr_assert_gt(n, 0);
	rc = ig_checkpoint_verify(text, (size_t)n, "iotguard/demo", pk, NULL, &err);
	cr_assert_eq(rc, IG_ERR_CRYPTO);
	sodium_memzero(other_sk, sizeof other_sk);
}

Test(checkpoint, cosignatures_are_skipped_ours_required, .init = setup)
{
	uint8_t opk[32], osk[64];
	crypto_sign_keypair(opk, osk);
	ig_checkpoint cp = vec_cp();
	/* A cosigner's line: same body, its own name. */
	ig_checkpoint co = cp;
	strcpy(co.origin, "witness.example/w1");
	char wtext[IG_CHECKPOINT_MAX];
	cr_assert_gt(ig_checkpoint_sign(wtext, sizeof wtext, &co, osk), 0);
	const char *wline = strstr(wtext, "\n\n") + 2;

	/* Our note plus the witness line, in both orders. */
	char text[1024];
	ig_error err = {0};
	int n = snprintf(text, sizeof text, "%s%s", VEC_TEXT, wline);
	cr_assert_eq(verify(text, (size_t)n, &err), IG_OK, "%s", err.msg);
	const char *body_end = strstr(VEC_TEXT, "\n\n") + 2;
	n = snprintf(text, sizeof text, "%.*s%s%s", (int)(body_end - VEC_TEXT), VEC_TEXT, wline, body_end);
	cr_assert_eq(verify(text, (size_t)n, &err), IG_OK, "%s", err.msg);

	/* Only the witness: our signature is required. */
	n = snprintf(text, sizeof text, "%.*s%s", (int)(body_end - VEC_TEXT), VEC_TEXT, wline);
	cr_assert_eq(verify(text, (size_t)n, &err), IG_ERR_CRYPTO);
	cr_assert_not_null(strstr(err.msg, "no signature"), "%s", err.msg);

	/* Another key under our name (different key id) is skipped too. */
	char otext[IG_CHECKPOINT_MAX];
	cr_assert_gt(ig_checkpoint_sign(otext, sizeof otext, &cp, osk), 0);
	const char *oline = strstr(otext, "\n\n") + 2;
	n = snprintf(text, sizeof text, "%.*s%s%s", (int)(body_end - VEC_TEXT), VEC_TEXT, oline, body_end);
	cr_assert_eq(verify(text, (size_t)n, &err), IG_OK, "%s", err.msg);

	/* Our key id with a bad signature is a failure even if a good one follows. */
	char bad[256];
	strcpy(bad, body_end);
	char *sig = strrchr(bad, ' ') + 10;
	*sig = *sig == 'A' ? 'B' : 'A';
	n = snprintf(text, sizeof text, "%.*s%s%s", (int)(body_end - VEC_TEXT), VEC_TEXT, bad, body_end);
	cr_assert_eq(verify(text, (size_t)n, &err), IG_ERR_CRYPTO);
	cr_assert_not_null(strstr(err.msg, "does not verify"), "%s", err.msg);

	/* Garbage among signature lines is malformed, not skipped. */
	n = snprintf(text, sizeof text, "%sjunk\n", VEC_TEXT);
	cr_assert_lt(verify(text, (size_t)n, &err), 0);
	sodium_memzero(osk, sizeof osk);
}

Test(checkpoint, too_many_signature_lines, .init = setup)
{
	size_t cap = 200 * 128;
	char *text = malloc(cap);
	cr_assert_not_null(text);
	size_t pos = strlen(VEC_TEXT);
	memcpy(text, VEC_TEXT, pos);
	const char *line = "\xe2\x80\x94 w AAAAAAAA\n";
	for (int i = 0; i < 100; i++) {
		memcpy(text + pos, line, strlen(line));
		pos += strlen(line);
	}
	ig_error err = {0};
	cr_assert_lt(verify(text, pos, &err), 0);
	cr_assert_not_null(strstr(err.msg, "more than"), "%s", err.msg);
	/* 99 foreign lines plus ours is within bounds. */
	pos -= strlen(line);
	cr_assert_eq(verify(text, pos, &err), IG_OK, "%s", err.msg);
	free(text);
}

Test(checkpoint, fuzz_never_crashes_never_accepts, .init = setup)
{
	uint64_t s = 0x1234567887654321ull;
	char text[IG_CHECKPOINT_MAX];
	size_t n = strlen(VEC_TEXT);
	ig_error err;
	for (int iter = 0; iter < 3000; iter++) {
		memcpy(text, VEC_TEXT, n);
		/* Mutate 1..4 bytes of the valid note, or replace it with noise. */
		int edits = 1 + (int)(s % 4);
		for (int e = 0; e < edits; e++) {
			s ^= s << 13;
			s ^= s >> 7;
			s ^= s << 17;
			size_t at = (size_t)(s % n);
			char v = (char)(s >> 32);
			if (v == text[at])
				v = (char)(v + 1);
			text[at] = v;
		}
		size_t len = (iter % 5 == 0) ? (size_t)(s % n) : n;
		if (len == n && memcmp(text, VEC_TEXT, n) == 0)
			continue; /* the edits cancelled out */
		cr_assert_lt(verify(text, len, &err), 0, "mutated note accepted (iter %d)", iter);
	}
}
