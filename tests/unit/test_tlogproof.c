/*
 * test_tlogproof.c: the C2SP tlog-proof@v1 text (lib/ledger/tlogproof.c).
 *
 * Why this exists: a proof file is handed around offline and read by
 * devices, auditors and other tools, so it must be byte-exact with the spec
 * and the parser must accept exactly one spelling and nothing malformed.
 * The docs' example (docs/LEDGER.md section 13) was made by the independent
 * implementation (tests/tlog/rfc6962.py); it must be what we format, parse
 * and verify with our own checkpoint and proof code.
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_checkpoint.h"
#include "ig_merkle.h"
#include "ig_proof.h"
#include "ig_tlogproof.h"
#include "testutil.h"

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
}

/* Entry 2 ("10") of RFC 6962's eight reference entries, in their tree of 8,
 * the checkpoint signed with the docs' CH seed 00..1f. */
static const char example[] =
	"c2sp.org/tlog-proof@v1\n"
	"extra EA==\n"
	"index 2\n"
	"B1Bqhf2d0vEg62lPhgEeW7RmLlxBWmKRcDPUqWJEh+c=\n"
	"+sVCA+fMaWzw38tCySodnbr3CtnmIfS9jZhmLwDjwSU=\n"
	"a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ=\n"
	"\n"
	"iotguard/demo\n"
	"8\n"
	"XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"
	"\n"
	"\xe2\x80\x94" " iotguard/demo XFh2E3f9UQCiV/yVpDBxs0titaGK+pZTwBYl4u48l9FpDVSEvdUCixeWJQkXWxWzaVnoBbMTa0EsSgMGaHdPBDa8yAM=\n";

static const char *const reference_entries[8] = {
	"", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
};

static void reference_leaves(uint8_t leaves[8][IG_HASH_BYTES])
{
	for (int i = 0; i < 8; i++) {
		uint8_t entry[16];
		size_t len = tu_unhex(entry, sizeof entry, reference_entries[i]);
		ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaves[i], entry, len);
	}
}

#define CP(p) ((const uint8_t (*)[IG_HASH_BYTES])(p))

Test(tlogproof, the_docs_example_parses_verifies_and_is_what_we_format, .init = setup)
{
	uint8_t pk[32], sk[64];
	tu_seed_keypair(pk, sk, 0x00);
	ig_tlogproof p;
	uint8_t extra[16];
	ig_error err;
	cr_assert_eq(ig_tlogproof_parse(&p, extra, sizeof extra, example, strlen(example), &err), IG_OK, "%s", err.msg);
	cr_assert(p.has_extra);
	cr_assert_eq(p.extra_len, 1);
	cr_assert_eq(extra[0], 0x10);
	cr_assert_eq(p.index, 2);
	cr_assert_eq(p.n, 3);

	/* The checkpoint part verifies with the CH key; the proof binds the
	 * entry in extra to its root. */
	ig_checkpoint cp;
	cr_assert_eq(ig_checkpoint_verify(p.checkpoint, p.checkpoint_len, "iotguard/demo", pk, &cp, &err), IG_OK,
	             "%s", err.msg);
	cr_assert_eq(cp.size, 8);
	uint8_t leaf[IG_HASH_BYTES];
	ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaf, extra, p.extra_len);
	cr_assert_eq(ig_proof_inclusion_verify(IG_MERKLE_SHA256, leaf, p.index, cp.size, CP(p.path), p.n, cp.root), IG_OK);
	tu_assert_hex(cp.root, 32, "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328");

	/* Our proof and our checkpoint, formatted, are the same bytes. */
	uint8_t leaves[8][IG_HASH_BYTES];
	reference_leaves(leaves);
	ig_proof_mem mem = {IG_MERKLE_SHA256, CP(leaves), 8};
	uint8_t path[IG_PROOF_MAX][IG_HASH_BYTES];
	size_t n;
	cr_assert_eq(ig_proof_inclusion(path, IG_PROOF_MAX, &n, IG_MERKLE_SHA256, 2, 8, ig_proof_mem_node, &mem, &err),
	             IG_OK);
	ig_checkpoint mine;
	memset(&mine, 0, sizeof mine);
	cr_assert_geq(ig_checkpoint_origin(mine.origin, sizeof mine.origin, "demo"), 0);
	mine.size = 8;
	cr_assert_eq(ig_proof_root(mine.root, IG_MERKLE_SHA256, 8, ig_proof_mem_node, &mem, &err), IG_OK);
	char cptext[IG_CHECKPOINT_MAX];
	int cplen = ig_checkpoint_sign(cptext, sizeof cptext, &mine, sk);
	cr_assert_gt(cplen, 0);
	char out[1024];
	const uint8_t entry = 0x10;
	int len = ig_tlogproof_format(out, sizeof out, &entry, 1, 2, CP(path), n, cptext, (size_t)cplen);
	cr_assert_eq(len, (int)strlen(example));
	cr_assert_str_eq(out, example);

	/* docs/LEDGER.md section 13.1 shows exactly this file. */
	const char *doc = tu_read_doc("LEDGER.md");
	char block[sizeof example + 16];
	snprintf(block, sizeof block, "```\n%s```\n", example);
	cr_assert_not_null(strstr(doc, block), "docs/LEDGER.md lacks the exact tlog-proof example");
}

Test(tlogproof, round_trip_with_a_whole_frame_and_cosignature_lines, .init = setup)
{
	uint8_t pk[32], sk[64];
	tu_seed_keypair(pk, sk, 0x00);
	/* A 70-entry tree of "frames" of various lengths; prove each. */
	enum { N = 70 };
	static uint8_t frames[N][300];
	uint8_t leaves[N][IG_HASH_BYTES];
	for (int i = 0; i < N; i++) {
		tu_rand_bytes(frames[i], 1 + (size_t)i * 4);
		ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaves[i], frames[i], 1 + (size_t)i * 4);
	}
	ig_proof_mem mem = {IG_MERKLE_SHA256, CP(leaves), N};
	ig_checkpoint cp;
	memset(&cp, 0, sizeof cp);
	cr_assert_geq(ig_checkpoint_origin(cp.origin, sizeof cp.origin, "demo"), 0);
	cp.size = N;
	cr_assert_eq(ig_proof_root(cp.root, IG_MERKLE_SHA256, N, ig_proof_mem_node, &mem, NULL), IG_OK);
	char cptext[IG_CHECKPOINT_MAX + 400];
	int cplen = ig_checkpoint_sign(cptext, sizeof cptext, &cp, sk);
	cr_assert_gt(cplen, 0);
	/* Witness cosignature lines after ours ride along verbatim. */
	cplen += snprintf(cptext + cplen, sizeof cptext - (size_t)cplen,
	                  "\xe2\x80\x94 witness1.example mJirIkljAAAA\n\xe2\x80\x94 witness2.example TnKKVHLXAAAA\n");

	for (uint64_t i = 0; i < N; i++) {
		uint8_t path[IG_PROOF_MAX][IG_HASH_BYTES];
		size_t n;
		cr_assert_eq(ig_proof_inclusion(path, IG_PROOF_MAX, &n, IG_MERKLE_SHA256, i, N, ig_proof_mem_node, &mem, NULL),
		             IG_OK);
		char text[4096];
		size_t flen = 1 + (size_t)i * 4;
		int len = ig_tlogproof_format(text, sizeof text, frames[i], flen, i, CP(path), n, cptext, (size_t)cplen);
		cr_assert_gt(len, 0);
		cr_assert_eq(strlen(text), (size_t)len);

		ig_tlogproof p;
		uint8_t extra[IG_TLOGPROOF_EXTRA_MAX];
		ig_error err;
		cr_assert_eq(ig_tlogproof_parse(&p, extra, sizeof extra, text, (size_t)len, &err), IG_OK, "%s", err.msg);
		cr_assert(p.has_extra);
		cr_assert_eq(p.extra_len, flen);
		cr_assert_arr_eq(extra, frames[i], flen);
		cr_assert_eq(p.index, i);
		cr_assert_eq(p.n, n);
		cr_assert_arr_eq(p.path, path, n * IG_HASH_BYTES);
		cr_assert_eq(p.checkpoint_len, (size_t)cplen);
		cr_assert_arr_eq(p.checkpoint, cptext, (size_t)cplen);
		ig_checkpoint got;
		cr_assert_eq(ig_checkpoint_verify(p.checkpoint, p.checkpoint_len, "iotguard/demo", pk, &got, &err), IG_OK,
		             "%s", err.msg);
		uint8_t leaf[IG_HASH_BYTES];
		ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaf, extra, p.extra_len);
		cr_assert_eq(ig_proof_inclusion_verify(IG_MERKLE_SHA256, leaf, p.index, got.size, CP(p.path), p.n, got.root),
		             IG_OK);
	}

	/* Without extra: no extra line, and the parser says so. */
	char text[4096];
	int len = ig_tlogproof_format(text, sizeof text, NULL, 0, 0, NULL, 0, cptext, (size_t)cplen);
	cr_assert_gt(len, 0);
	cr_assert_eq(strncmp(text, "c2sp.org/tlog-proof@v1\nindex 0\n\n", 32), 0);
	ig_tlogproof p;
	cr_assert_eq(ig_tlogproof_parse(&p, NULL, 0, text, (size_t)len, NULL), IG_OK);
	cr_assert(!p.has_extra);
	cr_assert_eq(p.n, 0);
}

Test(tlogproof, the_largest_proof_round_trips, .init = setup)
{
	static uint8_t frame[IG_TLOGPROOF_EXTRA_MAX + 1];
	static uint8_t got[IG_TLOGPROOF_EXTRA_MAX];
	static char text[IG_TLOGPROOF_TEXT_MAX + 1000];
	static char cptext[IG_TLOGPROOF_CHECKPOINT_MAX];
	uint8_t path[IG_TLOGPROOF_MAX_HASHES + 1][IG_HASH_BYTES];
	tu_rand_bytes(frame, sizeof frame);
	tu_rand_bytes(&path[0][0], sizeof path);
	/* A checkpoint of the longest length (the parser does not read it). */
	memset(cptext, 'x', sizeof cptext);
	cptext[sizeof cptext - 1] = '\n';
	int len = ig_tlogproof_format(text, sizeof text, frame, IG_TLOGPROOF_EXTRA_MAX, UINT64_MAX, CP(path),
	                              IG_TLOGPROOF_MAX_HASHES, cptext, sizeof cptext);
	cr_assert_gt(len, 0);
	cr_assert_leq((size_t)len, IG_TLOGPROOF_TEXT_MAX);
	ig_tlogproof p;
	ig_error err;
	cr_assert_eq(ig_tlogproof_parse(&p, got, sizeof got, text, (size_t)len, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(p.extra_len, IG_TLOGPROOF_EXTRA_MAX);
	cr_assert_arr_eq(got, frame, IG_TLOGPROOF_EXTRA_MAX);
	cr_assert_eq(p.index, UINT64_MAX);
	cr_assert_eq(p.n, IG_TLOGPROOF_MAX_HASHES);
	cr_assert_arr_eq(p.path, path, sizeof p.path);

	/* The extra buffer given is too small: a range error naming the line. */
	cr_assert_eq(ig_tlogproof_parse(&p, got, 100, text, (size_t)len, &err), IG_ERR_RANGE);
	cr_assert_not_null(strstr(err.msg, "line 2 (extra)"), "%s", err.msg);
	cr_assert_eq(ig_tlogproof_parse(&p, NULL, 0, text, (size_t)len, &err), IG_ERR_RANGE);

	/* One more byte of extra, one more hash, one more checkpoint byte: refused by format. */
	char small[64];
	cr_assert_eq(ig_tlogproof_format(text, sizeof text, frame, IG_TLOGPROOF_EXTRA_MAX + 1, 0, CP(path), 0, cptext,
	                                 sizeof cptext), IG_ERR_RANGE);
	cr_assert_eq(ig_tlogproof_format(text, sizeof text, frame, 1, 0, CP(path), IG_TLOGPROOF_MAX_HASHES + 1, cptext,
	                                 sizeof cptext), IG_ERR_INVAL);
	cr_assert_eq(ig_tlogproof_format(small, sizeof small, frame, 1, 0, CP(path), 0, "a\n", 2), IG_ERR_RANGE);
	cr_assert_eq(small[0], '\0');
	cr_assert_eq(ig_tlogproof_format(text, sizeof text, frame, 0, 0, CP(path), 0, "a\n", 2), IG_ERR_INVAL);
	cr_assert_eq(ig_tlogproof_format(text, sizeof text, NULL, 5, 0, CP(path), 0, "a\n", 2), IG_ERR_INVAL);
	cr_assert_eq(ig_tlogproof_format(text, sizeof text, NULL, 0, 0, CP(path), 0, "a", 1), IG_ERR_INVAL);
	cr_assert_eq(ig_tlogproof_format(text, sizeof text, NULL, 0, 0, CP(path), 0, "\na\n", 3), IG_ERR_INVAL);
	cr_assert_eq(ig_tlogproof_format(text, sizeof text, NULL, 0, 0, CP(path), 0, "", 0), IG_ERR_INVAL);

	/* And parse refuses them when someone else wrote them. */
	uint8_t b[IG_TLOGPROOF_EXTRA_MAX + 1];
	memcpy(b, frame, sizeof b);
	static char b64[4 * ((IG_TLOGPROOF_EXTRA_MAX + 3) / 3) + 1];
	sodium_bin2base64(b64, sizeof b64, b, sizeof b, sodium_base64_VARIANT_ORIGINAL);
	len = snprintf(text, sizeof text, "c2sp.org/tlog-proof@v1\nextra %s\nindex 0\n\na\n", b64);
	cr_assert_eq(ig_tlogproof_parse(&p, got, sizeof got, text, (size_t)len, &err), IG_ERR_RANGE);
	cr_assert_not_null(strstr(err.msg, "line 2 (extra) holds 65536 bytes"), "%s", err.msg);
	size_t o = (size_t)snprintf(text, sizeof text, "c2sp.org/tlog-proof@v1\nindex 0\n");
	for (int i = 0; i < IG_TLOGPROOF_MAX_HASHES + 1; i++)
		o += (size_t)snprintf(text + o, sizeof text - o, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n");
	o += (size_t)snprintf(text + o, sizeof text - o, "\na\n");
	cr_assert_eq(ig_tlogproof_parse(&p, got, sizeof got, text, o, &err), IG_ERR_CORRUPT);
	cr_assert_not_null(strstr(err.msg, "line 66: more than 63 proof hashes"), "%s", err.msg);
	o = (size_t)snprintf(text, sizeof text, "c2sp.org/tlog-proof@v1\nindex 0\n\n");
	memset(text + o, 'x', IG_TLOGPROOF_CHECKPOINT_MAX);
	text[o + IG_TLOGPROOF_CHECKPOINT_MAX] = '\n';
	cr_assert_eq(ig_tlogproof_parse(&p, got, sizeof got, text, o + IG_TLOGPROOF_CHECKPOINT_MAX + 1, &err),
	             IG_ERR_RANGE);
	cr_assert_not_null(strstr(err.msg, "checkpoint (from line 4)"), "%s", err.msg);
	cr_assert_eq(ig_tlogproof_parse(&p, got, sizeof got, text, IG_TLOGPROOF_TEXT_MAX + 1, &err), IG_ERR_RANGE);
}

/* The example of C2SP tlog-proof.md, verbatim (its signatures are
 * abbreviated with "[...]", which only the checkpoint check would see). */
static const char spec_example[] =
	"c2sp.org/tlog-proof@v1\n"
	"extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ\n"
	"index 73894\n"
	"gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=\n"
	"B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=\n"
	"EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=\n"
	"RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=\n"
	"AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=\n"
	"\n"
	"example.com/fancylog\n"
	"109482\n"
	"sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=\n"
	"\n"
	"\xe2\x80\x94" " example.com/fancylog hI2DJw[...]1roloI=\n"
	"\xe2\x80\x94" " witness1.example mJirIklj[...]qY9v2B/5bg==\n"
	"\xe2\x80\x94" " witness2.example TnKKVHLX[...]xwYwrSjgow==\n"
	"\xe2\x80\x94" " witness3.example S4X82uH5[...]3oEcROGLFQ==\n";

Test(tlogproof, the_spec_example_parses_and_formats_back, .init = setup)
{
	ig_tlogproof p;
	uint8_t extra[64];
	ig_error err;
	cr_assert_eq(ig_tlogproof_parse(&p, extra, sizeof extra, spec_example, strlen(spec_example), &err), IG_OK,
	             "%s", err.msg);
	cr_assert(p.has_extra);
	cr_assert_eq(p.extra_len, 39);
	cr_assert_eq(memcmp(extra, "age-v1.2.1-darwin-arm64.tar.gz", 30), 0);
	cr_assert_eq(p.index, 73894);
	cr_assert_eq(p.n, 5);
	uint8_t first[32];
	cr_assert_eq(sodium_base642bin(first, sizeof first, "gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=", 44, NULL, NULL,
	                               NULL, sodium_base64_VARIANT_ORIGINAL), 0);
	cr_assert_arr_eq(p.path[0], first, 32);
	const char *cp = strstr(spec_example, "example.com/fancylog\n");
	cr_assert_eq(p.checkpoint, cp);
	cr_assert_eq(p.checkpoint_len, strlen(cp));

	char out[2048];
	int len = ig_tlogproof_format(out, sizeof out, extra, p.extra_len, p.index, CP(p.path), p.n, p.checkpoint,
	                              p.checkpoint_len);
	cr_assert_str_eq(out, spec_example);
	cr_assert_eq(len, (int)strlen(spec_example));
}

static const char CPT[] = "iotguard/demo\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n\xe2\x80\x94 iotguard/demo x\n";
#define H0 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"

Test(tlogproof, malformed_texts_are_refused_with_the_line_named, .init = setup)
{
	static const struct {
		const char *text;
		const char *msg;  /* part of the error message */
	} bad[] = {
		{"", "line 1 must be 'c2sp.org/tlog-proof@v1'"},
		{"c2sp.org/tlog-proof@v1", "line 1 must be"},
		{"c2sp.org/tlog-proof@v2\nindex 0\n\n", "line 1 must be"},
		{"c2sp.org/tlog-proof@v1 \nindex 0\n\n", "line 1 must be"},
		{"C2SP.org/tlog-proof@v1\nindex 0\n\n", "line 1 must be"},
		{"c2sp.org/tlog-proof@v1\r\nindex 0\n\n", "line 1 must be"},
		{"c2sp.org/tlog-proof@v1\n", "line 2 ('extra' or 'index') is missing"},
		{"c2sp.org/tlog-proof@v1\nindex 0", "line 2 ('extra' or 'index') is missing"},
		{"c2sp.org/tlog-proof@v1\nindex 01\n\n", "line 2 must be 'index N'"},
		{"c2sp.org/tlog-proof@v1\nindex -1\n\n", "line 2 must be 'index N'"},
		{"c2sp.org/tlog-proof@v1\nindex +1\n\n", "line 2 must be 'index N'"},
		{"c2sp.org/tlog-proof@v1\nindex \n\n", "line 2 must be 'index N'"},
		{"c2sp.org/tlog-proof@v1\nindex  1\n\n", "line 2 must be 'index N'"},
		{"c2sp.org/tlog-proof@v1\nindex 1 \n\n", "line 2 must be 'index N'"},
		{"c2sp.org/tlog-proof@v1\nindex 0x1\n\n", "line 2 must be 'index N'"},
		{"c2sp.org/tlog-proof@v1\nindex 18446744073709551616\n\n", "line 2 must be 'index N'"},
		{"c2sp.org/tlog-proof@v1\nindex 0\r\n\n", "line 2 must be 'index N'"},
		{"c2sp.org/tlog-proof@v1\nIndex 0\n\n", "line 2 must be 'index N'"},
		{"c2sp.org/tlog-proof@v1\n\nindex 0\n\n", "line 2 must be 'index N'"},
		{"c2sp.org/tlog-proof@v1\nextra \nindex 0\n\n", "line 2 (extra) is not padded base64"},
		{"c2sp.org/tlog-proof@v1\nextra EA\nindex 0\n\n", "line 2 (extra) is not padded base64"},
		{"c2sp.org/tlog-proof@v1\nextra EB==\nindex 0\n\n", "line 2 (extra) is not canonical"},
		{"c2sp.org/tlog-proof@v1\nextra E A=\nindex 0\n\n", "line 2 (extra) is not canonical"},
		{"c2sp.org/tlog-proof@v1\nextra EA==\nextra EA==\nindex 0\n\n", "line 3 must be 'index N'"},
		{"c2sp.org/tlog-proof@v1\nextra EA==\n", "line 3 (index) is missing"},
		{"c2sp.org/tlog-proof@v1\nindex 0\nextra EA==\n\n", "line 3 is not canonical base64"},
		{"c2sp.org/tlog-proof@v1\nindex 0\nAAAA\n\n", "line 3 is not canonical base64 of a 32-byte hash"},
		{"c2sp.org/tlog-proof@v1\nindex 0\n" H0 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n\n",
		 "line 4 is not canonical"},
		{"c2sp.org/tlog-proof@v1\nindex 0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n\n", "line 3 is not canonical"},
		{"c2sp.org/tlog-proof@v1\nindex 0\n AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n", "line 3 is not canonical"},
		{"c2sp.org/tlog-proof@v1\nindex 0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\n", "line 3 is not canonical"},
		{"c2sp.org/tlog-proof@v1\nindex 0\n" H0, "ends at line 4 without the empty line"},
		{"c2sp.org/tlog-proof@v1\nindex 0\n\n", "checkpoint (from line 4) is missing"},
		{"c2sp.org/tlog-proof@v1\nindex 0\n\n\n", "checkpoint (from line 4) is missing, starts with an empty line"},
		{"c2sp.org/tlog-proof@v1\nindex 0\n\niotguard/demo", "does not end with a newline"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ig_tlogproof p;
		uint8_t extra[64];
		ig_error err;
		memset(&err, 0, sizeof err);
		char text[512];
		/* Texts ending at the blank line get the checkpoint appended. */
		size_t len = strlen(bad[i].text);
		snprintf(text, sizeof text, "%s%s", bad[i].text,
		         len >= 2 && strcmp(bad[i].text + len - 2, "\n\n") == 0 && !strstr(bad[i].msg, "checkpoint") ? CPT : "");
		int rc = ig_tlogproof_parse(&p, extra, sizeof extra, text, strlen(text), &err);
		cr_expect_eq(rc, IG_ERR_CORRUPT, "case %zu (%s): rc %d", i, bad[i].text, rc);
		cr_expect_not_null(strstr(err.msg, bad[i].msg), "case %zu: '%s' lacks '%s'", i, err.msg, bad[i].msg);
	}

	/* A NUL anywhere, even in the checkpoint. */
	char text[512];
	int len = snprintf(text, sizeof text, "c2sp.org/tlog-proof@v1\nindex 0\n\n%s", CPT);
	ig_tlogproof p;
	ig_error err;
	cr_assert_eq(ig_tlogproof_parse(&p, NULL, 0, text, (size_t)len, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(p.checkpoint_len, strlen(CPT));
	text[len - 3] = '\0';
	cr_assert_eq(ig_tlogproof_parse(&p, NULL, 0, text, (size_t)len, &err), IG_ERR_CORRUPT);
	cr_assert_not_null(strstr(err.msg, "NUL"), "%s", err.msg);
	/* Index limits: the largest uint64 parses, as does 0. */
	len = snprintf(text, sizeof text, "c2sp.org/tlog-proof@v1\nindex 18446744073709551615\n\n%s", CPT);
	cr_assert_eq(ig_tlogproof_parse(&p, NULL, 0, text, (size_t)len, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(p.index, UINT64_MAX);
	/* Missing arguments. */
	cr_assert_eq(ig_tlogproof_parse(NULL, NULL, 0, text, (size_t)len, &err), IG_ERR_INVAL);
	cr_assert_eq(ig_tlogproof_parse(&p, NULL, 0, NULL, 0, &err), IG_ERR_INVAL);
	cr_assert_eq(ig_tlogproof_parse(&p, NULL, 5, text, (size_t)len, &err), IG_ERR_INVAL);
}

/* Every prefix of a good proof (a truncated download) is refused, and
 * never read past its end (ASan checks the exact-size copy). */
Test(tlogproof, every_truncation_is_refused, .init = setup)
{
	size_t full = strlen(example);
	for (size_t cut = 0; cut < full; cut++) {
		char *copy = malloc(cut ? cut : 1);
		cr_assert_not_null(copy);
		memcpy(copy, example, cut);
		ig_tlogproof p;
		uint8_t extra[16];
		int rc = ig_tlogproof_parse(&p, extra, sizeof extra, copy, cut, NULL);
		free(copy);
		/* Cutting right after a complete signature line leaves a proof
		 * with a shorter checkpoint: the parser accepts the shape, and the
		 * checkpoint check is the caller's. Only whole lines can do that. */
		if (rc == IG_OK)
			cr_assert(cut > 0 && example[cut - 1] == '\n' && cut > strstr(example, "\n\n") - example + 2,
			          "accepted the first %zu bytes", cut);
		else
			cr_assert_eq(rc, IG_ERR_CORRUPT, "cut %zu: rc %d", cut, rc);
	}
}
