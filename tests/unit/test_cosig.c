/*
 * test_cosig.c: witness cosignatures (tlog-cosignature v1), vkeys, and
 * cosignature lines on checkpoints.
 *
 * Why this exists: cosignatures must be byte-exact with C2SP so witnesses
 * and verifiers of other projects interoperate. The pinned vectors were
 * computed by tests/tlog/note.py, written from the C2SP texts alone (run
 * `python3 tests/tlog/note.py`), and docs/LEDGER.md section 15 prints them;
 * the signed-note spec's own example vkey and note anchor both. The rest
 * holds the strictness: a known key's bad line rejects the note, duplicate
 * keys cannot fake a quorum, and a checkpoint has room for 16+ cosigners.
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_checkpoint.h"
#include "ig_cosig.h"
#include "testutil.h"

#define EM "\xe2\x80\x94"
#define VEC_BODY "iotguard/demo\n3\nhHBrG3ofu/MYZfeUnwtEDYFOmbx3wgDJqk6FDxCrf80=\n"
#define VEC_CH_LINE                                                                                   \
	EM " iotguard/demo "                                                                          \
	   "XFh2Ex14Uv3x810ciN9gKSZJQb5SfH9+4AmMi1rH8YMhuOI80z1bFP/Mpoe5mlPCk82nGBC2RKS6bB9scYg0PKaa1Q4=\n"
#define VEC_TEXT VEC_BODY "\n" VEC_CH_LINE
#define VEC_TIME 1700000000u
/* Witnesses: seeds 0x40.. and 0x60.. (bytes first, first+1, ..., first+31). */
#define W1_NAME "iotguard-witness/w1"
#define W1_PK "2543b92ff1095511476adc8369db6ddc933665a11978dda1404ee1066ca9559d"
#define W1_ID "9dbffde6"
#define W1_VKEY "iotguard-witness/w1+9dbffde6+BCVDuS/xCVURR2rcg2nbbdyTNmWhGXjdoUBO4QZsqVWd"
#define W1_LINE                                                                                         \
	EM " iotguard-witness/w1 "                                                                      \
	   "nb/95gAAAABlU/EAEVq2yrIezuQJ5trbJe1BnF0MKAhfu5Gl3amTLspZe/P6Dnl09Etezr+XtX8hupHZ/VqK2mDBlAd/l+3DcKHmDg==\n"
#define W2_NAME "iotguard-witness/w2"
#define W2_ID "5562bac5"
#define W2_VKEY "iotguard-witness/w2+5562bac5+BBdFU7RW3d/GkI7KscEB/mqyHiuqBhd5W31DpjSCmT/V"
#define W2_LINE                                                                                         \
	EM " iotguard-witness/w2 "                                                                      \
	   "VWK6xQAAAABlU/EAJ6KqItxiljkS2t/Q3gmIX4ZikwcX1s8I+cCOXzkY3QA65EfKtPR7/PkCQ9U24Gc+2EipAdT6i6sLIX1aO+thBA==\n"
#define CH_VKEY "iotguard/demo+5c587613+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
/* signed-note.md's example. */
#define SPEC_VKEY "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
#define SPEC_LINE                                                                                       \
	EM " example.com/foo "                                                                          \
	   "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"

static uint8_t ch_pk[32], ch_sk[64], w1_pk[32], w1_sk[64], w2_pk[32], w2_sk[64];
static ig_cosig_vkey w1, w2, ch;

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	tu_seed_keypair(ch_pk, ch_sk, 0x00);
	tu_seed_keypair(w1_pk, w1_sk, 0x40);
	tu_seed_keypair(w2_pk, w2_sk, 0x60);
	cr_assert_eq(ig_cosig_vkey_make(&w1, W1_NAME, IG_COSIG_TYPE_COSIG_V1, w1_pk), IG_OK);
	cr_assert_eq(ig_cosig_vkey_make(&w2, W2_NAME, IG_COSIG_TYPE_COSIG_V1, w2_pk), IG_OK);
	cr_assert_eq(ig_cosig_vkey_make(&ch, "iotguard/demo", IG_COSIG_TYPE_ED25519, ch_pk), IG_OK);
}

TestSuite(cosig, .init = setup);

Test(cosig, key_ids_and_vkeys_match_the_independent_vectors)
{
	tu_assert_hex(w1_pk, 32, W1_PK);
	tu_assert_hex(w1.id, 4, W1_ID);
	tu_assert_hex(w2.id, 4, W2_ID);
	tu_assert_hex(ch.id, 4, "5c587613");
	char out[IG_COSIG_VKEY_MAX];
	cr_assert_eq(ig_cosig_vkey_encode(out, sizeof out, &w1), (int)strlen(W1_VKEY));
	cr_assert_str_eq(out, W1_VKEY);
	cr_assert_eq(ig_cosig_vkey_encode(out, sizeof out, &w2), (int)strlen(W2_VKEY));
	cr_assert_str_eq(out, W2_VKEY);
	cr_assert_eq(ig_cosig_vkey_encode(out, sizeof out, &ch), (int)strlen(CH_VKEY));
	cr_assert_str_eq(out, CH_VKEY);
	/* Key id = SHA-256(name || "\n" || 0x04 || pk)[:4], spelled out. */
	uint8_t in[sizeof W1_NAME + 1 + 32], d[32];
	memcpy(in, W1_NAME "\n\x04", sizeof W1_NAME + 1);
	memcpy(in + sizeof W1_NAME + 1, w1_pk, 32);
	crypto_hash_sha256(d, in, sizeof in);
	cr_assert_arr_eq(d, w1.id, 4);
	/* Too small a buffer, at every size. */
	for (size_t cap = 0; cap <= strlen(W1_VKEY); cap++)
		cr_assert_eq(ig_cosig_vkey_encode(out, cap, &w1), IG_ERR_RANGE);
}

Test(cosig, vkey_parse_round_trips_and_is_strict)
{
	ig_cosig_vkey k;
	ig_error err = {0};
	cr_assert_eq(ig_cosig_vkey_parse(&k, W1_VKEY, strlen(W1_VKEY), &err), IG_OK, "%s", err.msg);
	cr_assert_str_eq(k.name, W1_NAME);
	cr_assert_eq(k.type, IG_COSIG_TYPE_COSIG_V1);
	cr_assert_arr_eq(k.pk, w1_pk, 32);
	cr_assert_arr_eq(k.id, w1.id, 4);
	cr_assert_eq(ig_cosig_vkey_parse(&k, CH_VKEY, strlen(CH_VKEY), &err), IG_OK, "%s", err.msg);
	cr_assert_eq(k.type, IG_COSIG_TYPE_ED25519);
	cr_assert_arr_eq(k.pk, ch_pk, 32);
	cr_assert_eq(ig_cosig_vkey_parse(&k, SPEC_VKEY, strlen(SPEC_VKEY), &err), IG_OK, "%s", err.msg);

	const char *bad[] = {
		"",
		"iotguard-witness/w1",
		"iotguard-witness/w1+9dbffde6",
		"iotguard-witness/w1+9DBFFDE6+BCVDuS/xCVURR2rcg2nbbdyTNmWhGXjdoUBO4QZsqVWd",  /* upper-case hex */
		"iotguard-witness/w1+9dbffde7+BCVDuS/xCVURR2rcg2nbbdyTNmWhGXjdoUBO4QZsqVWd",  /* id of another key */
		"iotguard-witness/w2+9dbffde6+BCVDuS/xCVURR2rcg2nbbdyTNmWhGXjdoUBO4QZsqVWd",  /* name of another key */
		"iotguard-witness/w1+9dbffde+BCVDuS/xCVURR2rcg2nbbdyTNmWhGXjdoUBO4QZsqVWd",   /* 7 hex */
		"iotguard-witness/w1+9dbffde6+BCVDuS/xCVURR2rcg2nbbdyTNmWhGXjdoUBO4QZsqVW",   /* 43 chars */
		"iotguard-witness/w1+9dbffde6+BCVDuS/xCVURR2rcg2nbbdyTNmWhGXjdoUBO4QZsqVWd=", /* 45 chars */
		"iotguard-witness/w1+9dbffde6+AiVDuS/xCVURR2rcg2nbbdyTNmWhGXjdoUBO4QZsqVWd",  /* type 0x02 */
		"iotguard witness/w1+9dbffde6+BCVDuS/xCVURR2rcg2nbbdyTNmWhGXjdoUBO4QZsqVWd",  /* space in name */
		"+9dbffde6+BCVDuS/xCVURR2rcg2nbbdyTNmWhGXjdoUBO4QZsqVWd",                     /* empty name */
		"iotguard-witness/w1+9dbffde6+BCVDuS/xCVURR2rcg2nbbdyTNmWhGXjdoUBO4QZsqVWd\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err.msg[0] = '\0';
		cr_assert_eq(ig_cosig_vkey_parse(&k, bad[i], strlen(bad[i]), &err), IG_ERR_INVAL, "accepted [%s]", bad[i]);
		cr_assert_neq(err.msg[0], '\0');
	}
	/* Every truncation of a good vkey is refused (heap copy: ASan sees overreads). */
	for (size_t n = 0; n < strlen(W1_VKEY); n++) {
		char *p = malloc(n + 1);
		memcpy(p, W1_VKEY, n);
		cr_assert_neq(ig_cosig_vkey_parse(&k, p, n, NULL), IG_OK, "prefix of %zu accepted", n);
		free(p);
	}
	/* A name of IG_COSIG_NAME_MAX bytes round-trips; one byte more does not. */
	char name[IG_COSIG_NAME_MAX + 2], text[IG_COSIG_VKEY_MAX + 1];
	memset(name, 'n', IG_COSIG_NAME_MAX);
	name[IG_COSIG_NAME_MAX] = '\0';
	ig_cosig_vkey big;
	cr_assert_eq(ig_cosig_vkey_make(&big, name, IG_COSIG_TYPE_COSIG_V1, w1_pk), IG_OK);
	int n = ig_cosig_vkey_encode(text, IG_COSIG_VKEY_MAX, &big);
	cr_assert_eq(n, IG_COSIG_VKEY_MAX - 1);
	cr_assert_eq(ig_cosig_vkey_parse(&k, text, (size_t)n, &err), IG_OK, "%s", err.msg);
	name[IG_COSIG_NAME_MAX] = 'n';
	name[IG_COSIG_NAME_MAX + 1] = '\0';
	cr_assert_eq(ig_cosig_vkey_make(&big, name, IG_COSIG_TYPE_COSIG_V1, w1_pk), IG_ERR_INVAL);
	cr_assert_eq(ig_cosig_vkey_make(&big, "w", 0x02, w1_pk), IG_ERR_INVAL);
}

Test(cosig, the_signed_note_spec_example_verifies)
{
	ig_cosig_vkey k;
	cr_assert_eq(ig_cosig_vkey_parse(&k, SPEC_VKEY, strlen(SPEC_VKEY), NULL), IG_OK);
	const char *body = "This is an example message.\n";
	uint64_t t = 99;
	ig_error err = {0};
	cr_assert_eq(ig_cosig_verify_line(&t, SPEC_LINE, strlen(SPEC_LINE), &k, body, strlen(body), &err), IG_OK, "%s",
	             err.msg);
	cr_assert_eq(t, 0u);
	cr_assert_eq(ig_cosig_verify_line(&t, SPEC_LINE, strlen(SPEC_LINE), &k, "This is an example massage.\n",
	                                  strlen(body), &err),
	             IG_ERR_CRYPTO);
}

Test(cosig, sign_gives_the_pinned_cosignature_lines)
{
	char line[IG_COSIG_LINE_MAX];
	int n = ig_cosig_sign(line, sizeof line, W1_NAME, w1_sk, VEC_TIME, VEC_BODY, strlen(VEC_BODY));
	cr_assert_eq(n, (int)strlen(W1_LINE));
	cr_assert_str_eq(line, W1_LINE);
	n = ig_cosig_sign(line, sizeof line, W2_NAME, w2_sk, VEC_TIME, VEC_BODY, strlen(VEC_BODY));
	cr_assert_str_eq(line, W2_LINE);
	/* The message: header, time line, body. */
	uint8_t msg[256];
	int m = ig_cosig_message(msg, sizeof msg, VEC_TIME, VEC_BODY, strlen(VEC_BODY));
	const char *want = "cosignature/v1\ntime 1700000000\n" VEC_BODY;
	cr_assert_eq(m, (int)strlen(want));
	cr_assert_arr_eq(msg, want, (size_t)m);
	cr_assert_eq(ig_cosig_message(msg, (size_t)m - 1, VEC_TIME, VEC_BODY, strlen(VEC_BODY)), IG_ERR_RANGE);
	cr_assert_eq(ig_cosig_message(msg, 10, VEC_TIME, VEC_BODY, strlen(VEC_BODY)), IG_ERR_RANGE);
	/* Timestamps 0 (forbidden by tlog-witness) and above 2^63-1 are refused. */
	cr_assert_eq(ig_cosig_sign(line, sizeof line, W1_NAME, w1_sk, 0, VEC_BODY, strlen(VEC_BODY)), IG_ERR_INVAL);
	cr_assert_eq(ig_cosig_sign(line, sizeof line, W1_NAME, w1_sk, (uint64_t)INT64_MAX + 1, VEC_BODY,
	                           strlen(VEC_BODY)),
	             IG_ERR_INVAL);
	cr_assert_gt(ig_cosig_sign(line, sizeof line, W1_NAME, w1_sk, (uint64_t)INT64_MAX, VEC_BODY, strlen(VEC_BODY)),
	             0);
	cr_assert_eq(ig_cosig_sign(line, sizeof line, "bad name", w1_sk, 1, VEC_BODY, strlen(VEC_BODY)), IG_ERR_INVAL);
	for (size_t cap = 0; cap <= strlen(W1_LINE); cap++)
		cr_assert_eq(ig_cosig_sign(line, cap, W1_NAME, w1_sk, VEC_TIME, VEC_BODY, strlen(VEC_BODY)), IG_ERR_RANGE);
}

Test(cosig, verify_line_outcomes)
{
	uint64_t t = 0;
	ig_error err = {0};
	const size_t bl = strlen(VEC_BODY);
	cr_assert_eq(ig_cosig_verify_line(&t, W1_LINE, strlen(W1_LINE), &w1, VEC_BODY, bl, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(t, VEC_TIME);
	/* Without the final newline too. */
	cr_assert_eq(ig_cosig_verify_line(&t, W1_LINE, strlen(W1_LINE) - 1, &w1, VEC_BODY, bl, &err), IG_OK);
	/* Another key's line: skip. The CH's line checks under the CH vkey. */
	cr_assert_eq(ig_cosig_verify_line(&t, W1_LINE, strlen(W1_LINE), &w2, VEC_BODY, bl, &err), IG_ERR_NOTFOUND);
	cr_assert_eq(ig_cosig_verify_line(&t, VEC_CH_LINE, strlen(VEC_CH_LINE), &w1, VEC_BODY, bl, &err),
	             IG_ERR_NOTFOUND);
	cr_assert_eq(ig_cosig_verify_line(&t, VEC_CH_LINE, strlen(VEC_CH_LINE), &ch, VEC_BODY, bl, &err), IG_OK);
	/* Same name, another key (so another id): skip, as signed-note says. */
	ig_cosig_vkey other;
	cr_assert_eq(ig_cosig_vkey_make(&other, W1_NAME, IG_COSIG_TYPE_COSIG_V1, w2_pk), IG_OK);
	cr_assert_eq(ig_cosig_verify_line(&t, W1_LINE, strlen(W1_LINE), &other, VEC_BODY, bl, &err), IG_ERR_NOTFOUND);
	/* Another checkpoint (size 4): the line does not verify. */
	const char *body4 = "iotguard/demo\n4\nhHBrG3ofu/MYZfeUnwtEDYFOmbx3wgDJqk6FDxCrf80=\n";
	cr_assert_eq(ig_cosig_verify_line(&t, W1_LINE, strlen(W1_LINE), &w1, body4, strlen(body4), &err), IG_ERR_CRYPTO);

	/* Any change to the blob (key id, time or signature) is refused. */
	const char *b64 = strrchr(W1_LINE, ' ') + 1;
	uint8_t blob[IG_COSIG_BLOB_BYTES];
	size_t blen = 0;
	cr_assert_eq(sodium_base642bin(blob, sizeof blob, b64, strlen(b64) - 1, NULL, &blen, NULL,
	                               sodium_base64_VARIANT_ORIGINAL),
	             0);
	cr_assert_eq(blen, sizeof blob);
	cr_assert_eq(ig_get_u64(blob + 4), VEC_TIME);
	for (size_t i = 0; i < sizeof blob; i++) {
		uint8_t x[sizeof blob];
		memcpy(x, blob, sizeof x);
		x[i] ^= 0x01;
		char enc[128], line[IG_COSIG_LINE_MAX];
		sodium_bin2base64(enc, sizeof enc, x, sizeof x, sodium_base64_VARIANT_ORIGINAL);
		snprintf(line, sizeof line, EM " " W1_NAME " %s\n", enc);
		int rc = ig_cosig_verify_line(&t, line, strlen(line), &w1, VEC_BODY, bl, &err);
		cr_assert(i < 4 ? rc == IG_ERR_NOTFOUND : rc == IG_ERR_CRYPTO, "byte %zu flipped: rc %d", i, rc);
	}
	/* A timestamp above 2^63-1 is malformed, before any signature check. */
	uint8_t x[sizeof blob];
	memcpy(x, blob, sizeof x);
	x[4] |= 0x80;
	char enc[128], line[IG_COSIG_LINE_MAX];
	sodium_bin2base64(enc, sizeof enc, x, sizeof x, sodium_base64_VARIANT_ORIGINAL);
	snprintf(line, sizeof line, EM " " W1_NAME " %s\n", enc);
	cr_assert_eq(ig_cosig_verify_line(&t, line, strlen(line), &w1, VEC_BODY, bl, &err), IG_ERR_CORRUPT);
	/* Wrong blob length under the right key id. */
	sodium_bin2base64(enc, sizeof enc, blob, 68, sodium_base64_VARIANT_ORIGINAL);
	snprintf(line, sizeof line, EM " " W1_NAME " %s\n", enc);
	cr_assert_eq(ig_cosig_verify_line(&t, line, strlen(line), &w1, VEC_BODY, bl, &err), IG_ERR_CRYPTO);

	const char *malformed[] = {
		"- iotguard-witness/w1 nb/95gAAAABlU/EAEVq2yrIezuQJ5trbJe1BnF0MKAhfu5Gl3amTLspZe/P6Dnl09Etezr+XtX8hupHZ/VqK2mDBlAd/l+3DcKHmDg==\n",
		EM "iotguard-witness/w1 nb/95gAAAABlU/EAEVq2yrIezuQJ5trbJe1BnF0MKAhfu5Gl3amTLspZe/P6Dnl09Etezr+XtX8hupHZ/VqK2mDBlAd/l+3DcKHmDg==\n",
		EM " iotguard-witness/w1  nb/95gAAAABlU/EAEVq2yrIezuQJ5trbJe1BnF0MKAhfu5Gl3amTLspZe/P6Dnl09Etezr+XtX8hupHZ/VqK2mDBlAd/l+3DcKHmDg==\n",
		EM " iotguard-witness/w1 nb/95gAAAABlU/EAEVq2yrIezuQJ5trbJe1BnF0MKAhfu5Gl3amTLspZe/P6Dnl09Etezr+XtX8hupHZ/VqK2mDBlAd/l+3DcKHmDg=\n",
		EM " iotguard-witness/w1 nb/95gAAAABlU/EAEVq2yrIezuQJ5trbJe1BnF0MKAhfu5Gl3amTLspZe/P6Dnl09Etezr+XtX8hupHZ/VqK2mDBlAd/l+3DcKHmDh==\n",
		EM " iotguard-witness/w1 nb/95gAAAABlU/EAEVq2yrIezuQJ5trbJe1BnF0MKAhfu5Gl3amTLspZe/P6Dnl09Etezr+XtX8hupHZ/VqK2mDBlAd/l+3DcKHmDg==\r\n",
		EM " iotguard-witness/w1\n",
		EM " AAAAAA==\n",
	};
	for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++)
		cr_assert_eq(ig_cosig_verify_line(&t, malformed[i], strlen(malformed[i]), &w1, VEC_BODY, bl, &err),
		             IG_ERR_CORRUPT, "malformed line %zu accepted", i);
}

Test(cosig, count_needs_a_quorum_of_distinct_valid_witnesses)
{
	const char *text = VEC_TEXT W1_LINE W2_LINE;
	const size_t len = strlen(text);
	ig_cosig_vkey keys[3] = {w1, w2};
	size_t valid = 99;
	ig_error err = {0};
	cr_assert_eq(ig_cosig_count(&valid, text, len, keys, 2, 2, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(valid, 2u);
	/* The CH key counts as a note key too (type 0x01). */
	keys[2] = ch;
	cr_assert_eq(ig_cosig_count(&valid, text, len, keys, 3, 3, &err), IG_OK, "%s", err.msg);
	/* Only the CH's line: 0 cosignatures, quorum 1 fails, quorum 0 counts. */
	cr_assert_eq(ig_cosig_count(&valid, VEC_TEXT, strlen(VEC_TEXT), keys, 2, 1, &err), IG_ERR_CRYPTO);
	cr_assert_eq(valid, 0u);
	cr_assert(strstr(err.msg, "only 0 of the 1") != NULL, "%s", err.msg);
	cr_assert_eq(ig_cosig_count(&valid, VEC_TEXT, strlen(VEC_TEXT), keys, 2, 0, &err), IG_OK);
	/* An untrusted witness's line is skipped. */
	cr_assert_eq(ig_cosig_count(&valid, text, len, &keys[1], 1, 1, &err), IG_OK);
	cr_assert_eq(valid, 1u);
	/* The same witness twice cannot make a quorum of two. */
	ig_cosig_vkey dup[2] = {w1, w1};
	cr_assert_eq(ig_cosig_count(&valid, text, len, dup, 2, 2, &err), IG_ERR_INVAL);
	ig_cosig_vkey renamed;
	cr_assert_eq(ig_cosig_vkey_make(&renamed, "another/name", IG_COSIG_TYPE_COSIG_V1, w1_pk), IG_OK);
	dup[1] = renamed;
	cr_assert_eq(ig_cosig_count(&valid, text, len, dup, 2, 1, &err), IG_ERR_INVAL);
	/* A line twice counts once. */
	const char *twice = VEC_TEXT W1_LINE W1_LINE;
	cr_assert_eq(ig_cosig_count(&valid, twice, strlen(twice), keys, 2, 2, &err), IG_ERR_CRYPTO);
	cr_assert_eq(valid, 1u);
	/* Quorum above the key count is a configuration error. */
	cr_assert_eq(ig_cosig_count(&valid, text, len, keys, 2, 3, &err), IG_ERR_INVAL);
	/* A trusted witness's bad line rejects the note, even with quorum 0. */
	char bad[1024];
	snprintf(bad, sizeof bad, "%s", text);
	char *w2line = strstr(bad, W2_NAME);
	cr_assert_not_null(w2line);
	w2line[strlen(W2_NAME) + 20] = w2line[strlen(W2_NAME) + 20] == 'A' ? 'B' : 'A';
	cr_assert_eq(ig_cosig_count(&valid, bad, strlen(bad), keys, 2, 0, &err), IG_ERR_CRYPTO);
	cr_assert(strstr(err.msg, W2_NAME) != NULL, "%s", err.msg);
	/* A cosignature made for another checkpoint does not count. */
	char moved[1024];
	snprintf(moved, sizeof moved, "iotguard/demo\n4\nhHBrG3ofu/MYZfeUnwtEDYFOmbx3wgDJqk6FDxCrf80=\n\n%s%s",
	         VEC_CH_LINE, W1_LINE);
	cr_assert_eq(ig_cosig_count(&valid, moved, strlen(moved), keys, 2, 0, &err), IG_ERR_CRYPTO);
	/* Another signer's line with a name longer than ours may be is skipped,
	 * like any unknown key's, and can be carried along. */
	char longname[300], foreign[1024], with[2048];
	memset(longname, 'f', 200);
	longname[200] = '\0';
	snprintf(foreign, sizeof foreign, EM " %s AAAAAAAAAAAAAAAA\n", longname);
	snprintf(with, sizeof with, "%s%s", text, foreign);
	cr_assert_eq(ig_cosig_count(&valid, with, strlen(with), keys, 2, 2, &err), IG_OK, "%s", err.msg);
	char out[IG_CHECKPOINT_MAX];
	cr_assert_eq(ig_checkpoint_add_signatures(out, sizeof out, text, len, foreign, strlen(foreign), &err),
	             (int)strlen(with), "%s", err.msg);
	cr_assert_str_eq(out, with);
	/* Not a note. */
	cr_assert_eq(ig_cosig_count(&valid, VEC_BODY, strlen(VEC_BODY), keys, 2, 0, &err), IG_ERR_CORRUPT);
}

Test(cosig, split_finds_body_and_signature_lines)
{
	size_t body = 0, off = 0;
	ig_error err = {0};
	cr_assert_eq(ig_checkpoint_split(VEC_TEXT, strlen(VEC_TEXT), &body, &off, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(body, strlen(VEC_BODY));
	cr_assert_eq(off, strlen(VEC_BODY) + 1);
	cr_assert_eq(ig_checkpoint_split(VEC_BODY "\n", strlen(VEC_BODY) + 1, &body, &off, &err), IG_ERR_NOTFOUND);
	const char *ext = "iotguard/demo\n3\nhHBrG3ofu/MYZfeUnwtEDYFOmbx3wgDJqk6FDxCrf80=\next\n\n" VEC_CH_LINE;
	cr_assert_eq(ig_checkpoint_split(ext, strlen(ext), &body, &off, &err), IG_ERR_CORRUPT);
	cr_assert_eq(ig_checkpoint_split(VEC_TEXT, strlen(VEC_TEXT) - 1, &body, &off, &err), IG_ERR_CORRUPT);
	for (size_t n = 0; n < strlen(VEC_BODY) + 1; n++)
		cr_assert_neq(ig_checkpoint_split(VEC_TEXT, n, &body, &off, NULL), IG_OK, "prefix %zu", n);
}

Test(cosig, add_signatures_appends_and_dedupes_by_key)
{
	char out[IG_CHECKPOINT_MAX];
	ig_error err = {0};
	const char *both = VEC_TEXT W1_LINE W2_LINE;
	int n = ig_checkpoint_add_signatures(out, sizeof out, VEC_TEXT, strlen(VEC_TEXT), W1_LINE W2_LINE,
	                                     strlen(W1_LINE W2_LINE), &err);
	cr_assert_eq(n, (int)strlen(both), "%s", err.msg);
	cr_assert_str_eq(out, both);
	/* Still a valid checkpoint under the CH key, now with a quorum of 2. */
	ig_checkpoint cp;
	cr_assert_eq(ig_checkpoint_verify(out, (size_t)n, "iotguard/demo", ch_pk, &cp, &err), IG_OK, "%s", err.msg);
	ig_cosig_vkey keys[2] = {w1, w2};
	size_t valid;
	cr_assert_eq(ig_cosig_count(&valid, out, (size_t)n, keys, 2, 2, &err), IG_OK, "%s", err.msg);

	/* w1 cosigns again later: its line is replaced in place, not added. */
	char later[IG_COSIG_LINE_MAX];
	cr_assert_gt(ig_cosig_sign(later, sizeof later, W1_NAME, w1_sk, VEC_TIME + 60, VEC_BODY, strlen(VEC_BODY)), 0);
	char again[IG_CHECKPOINT_MAX];
	int m = ig_checkpoint_add_signatures(again, sizeof again, out, (size_t)n, later, strlen(later), &err);
	cr_assert_eq(m, n, "%s", err.msg);
	char want[IG_CHECKPOINT_MAX];
	snprintf(want, sizeof want, "%s%s%s", VEC_TEXT, later, W2_LINE);
	cr_assert_str_eq(again, want);
	/* In place (output over the input), and the same line twice in one call. */
	char twice[2 * IG_COSIG_LINE_MAX];
	snprintf(twice, sizeof twice, "%s%s", W1_LINE, later);
	m = ig_checkpoint_add_signatures(out, sizeof out, out, (size_t)n, twice, strlen(twice), &err);
	cr_assert_eq(m, n, "%s", err.msg);
	cr_assert_str_eq(out, want);
	/* Adding what is there changes nothing. */
	m = ig_checkpoint_add_signatures(again, sizeof again, out, (size_t)n, W2_LINE, strlen(W2_LINE), &err);
	cr_assert_str_eq(again, want);
	/* Too small an output, malformed lines, a malformed checkpoint. */
	cr_assert_eq(ig_checkpoint_add_signatures(again, (size_t)n, out, (size_t)n, W2_LINE, strlen(W2_LINE), &err),
	             IG_ERR_RANGE);
	cr_assert_eq(again[0], '\0');
	const char *notline = "not a signature\n";
	cr_assert_eq(ig_checkpoint_add_signatures(again, sizeof again, VEC_TEXT, strlen(VEC_TEXT), notline,
	                                          strlen(notline), &err),
	             IG_ERR_CORRUPT);
	cr_assert_eq(ig_checkpoint_add_signatures(again, sizeof again, VEC_TEXT, strlen(VEC_TEXT), W1_LINE,
	                                          strlen(W1_LINE) - 1, &err),
	             IG_ERR_CORRUPT);
	cr_assert_lt(ig_checkpoint_add_signatures(again, sizeof again, VEC_BODY, strlen(VEC_BODY), W1_LINE,
	                                          strlen(W1_LINE), &err),
	             0);
}

/* The old IG_CHECKPOINT_MAX (512) held the CH line and at most one
 * cosignature with a short name. */
Test(cosig, sixteen_cosigners_with_longest_names_fit_the_checkpoint_limit)
{
	/* The longest checkpoint the cluster head signs. */
	ig_checkpoint cp;
	memset(&cp, 0, sizeof cp);
	char cluster[IG_CLUSTER_MAX + 1];
	memset(cluster, 'c', IG_CLUSTER_MAX);
	cluster[IG_CLUSTER_MAX] = '\0';
	cr_assert_gt(ig_checkpoint_origin(cp.origin, sizeof cp.origin, cluster), 0);
	cp.size = UINT64_MAX;
	char text[IG_CHECKPOINT_MAX];
	int n = ig_checkpoint_sign(text, sizeof text, &cp, ch_sk);
	cr_assert_gt(n, 0);
	size_t body, off;
	cr_assert_eq(ig_checkpoint_split(text, (size_t)n, &body, &off, NULL), IG_OK);

	ig_cosig_vkey keys[IG_CHECKPOINT_COSIGS_MAX];
	cr_assert_geq(IG_CHECKPOINT_COSIGS_MAX, 16);
	for (int i = 0; i < IG_CHECKPOINT_COSIGS_MAX; i++) {
		char name[IG_COSIG_NAME_MAX + 1], line[IG_COSIG_LINE_MAX];
		memset(name, 'w', IG_COSIG_NAME_MAX);
		snprintf(name + IG_COSIG_NAME_MAX - 3, 4, "%03d", i);
		uint8_t pk[32], sk[64];
		tu_seed_keypair(pk, sk, (uint8_t)(0x80 + i));
		cr_assert_eq(ig_cosig_vkey_make(&keys[i], name, IG_COSIG_TYPE_COSIG_V1, pk), IG_OK);
		int l = ig_cosig_sign(line, sizeof line, name, sk, 1700000000 + (uint64_t)i, text, body);
		cr_assert_eq(l, IG_COSIG_LINE_MAX - 1, "line %d is %d bytes", i, l);
		ig_error err = {0};
		int m = ig_checkpoint_add_signatures(text, sizeof text, text, (size_t)n, line, (size_t)l, &err);
		cr_assert_gt(m, n, "cosignature %d does not fit: %s", i, err.msg);
		n = m;
		sodium_memzero(sk, sizeof sk);
	}
	cr_assert_lt(n, IG_CHECKPOINT_MAX);
	ig_error err = {0};
	cr_assert_eq(ig_checkpoint_verify(text, (size_t)n, cp.origin, ch_pk, NULL, &err), IG_OK, "%s", err.msg);
	size_t valid;
	cr_assert_eq(ig_cosig_count(&valid, text, (size_t)n, keys, IG_CHECKPOINT_COSIGS_MAX, 16, &err), IG_OK, "%s",
	             err.msg);
	cr_assert_eq(valid, (size_t)IG_CHECKPOINT_COSIGS_MAX);
}

Test(cosig, docs_print_the_vectors)
{
	const char *doc = tu_read_doc("LEDGER.md");
	cr_assert_not_null(strstr(doc, "## 15. Witness cosignatures"));
	cr_assert_not_null(strstr(doc, W1_VKEY));
	cr_assert_not_null(strstr(doc, W2_VKEY));
	cr_assert_not_null(strstr(doc, "```\n" VEC_TEXT W1_LINE W2_LINE "```"), "docs/LEDGER.md lacks the cosigned checkpoint");
	cr_assert_not_null(strstr(doc, "cosignature/v1\ntime 1700000000\n" VEC_BODY));
}
