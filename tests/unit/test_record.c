/*
 * test_record.c: frames, record hashes, TLV bodies and the JSON view.
 *
 * Why this exists: the frame layout is the on-disk contract. These tests pin
 * the exact bytes (the same vectors docs/LEDGER.md prints), and try to break
 * the decoder: every-byte tamper, truncation at every length, random input.
 */
#include <criterion/criterion.h>

#include <cJSON.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ig_crc32c.h"
#include "ig_ledger.h"
#include "ig_record.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------- */

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
}

/* Builds a frame with an arbitrary body. Returns its length. */
static size_t make_frame(uint8_t *out, size_t cap, uint64_t index, uint16_t type, const uint8_t *body,
                         uint32_t body_len, ig_record *rec)
{
	memset(rec, 0, sizeof *rec);
	rec->index = index;
	rec->ts_ms = 1700000000000ull + index;
	rec->type = type;
	for (int i = 0; i < IG_HASH_BYTES; i++)
		rec->prev_hash[i] = (uint8_t)(index + (uint64_t)i);
	rec->body = body;
	rec->body_len = body_len;
	int n = ig_record_encode(out, cap, rec);
	cr_assert_gt(n, 0);
	return (size_t)n;
}

/* Rewrites the crc after a deliberate edit, to reach checks behind it. */
static void refresh_crc(uint8_t *frame, size_t frame_len)
{
	ig_put_u32(frame + frame_len - 4, ig_crc32c(0, frame, frame_len - 4));
}

/* ---- pinned vectors (the same bytes as docs/LEDGER.md) -------------------- */

#define VEC_CH_PK "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
#define VEC_DEV_PK "29acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd7"
#define VEC_GENESIS_FRAME                                                                          \
	"494752310000006f00000000000000000000018bcfe56800000100000000000000000000000000000000000000" \
	"00000000000000000000000000000001000464656d6f02002003a107bff3ce10be1d70dd18e74bc09967e4d630" \
	"9ba50d5f1ddc8664125531b803000200015bf3375d"
#define VEC_GENESIS_HASH "e44cbb0b28b71766c42876512933bc82d687259597f4bc32400ed8552298adf8"
#define VEC_ENROLL_FRAME                                                                           \
	"494752310000007d00000000000000010000018bcfe5680100020000e44cbb0b28b71766c42876512933bc82d6" \
	"87259597f4bc32400ed8552298adf8010004646576310200010103002029acbae141bccaf0b22e1a94d34d0bc7" \
	"361e526d0bfe12c89794bc9322966dd704000c6f66666c696e653a726f6f74b55fb7a5"
#define VEC_ENROLL_HASH "1f164dffd39f541c6e9720ea830ec1e16d15d48db7bcc55956f395b0b322e7a4"
#define VEC_REVOKE_FRAME                                                                           \
	"494752310000005d00000000000000020000018bcfe56802000300001f164dffd39f541c6e9720ea830ec1e16d" \
	"15d48db7bcc55956f395b0b322e7a4010004646576310200046c6f737403000c6f66666c696e653a726f6f74bc" \
	"ed44a1"
#define VEC_REVOKE_HASH "2ca6674db2b56f69cfad8bcc8d37d3df48c9431f90e172bc0185f0169bcb4d70"

static void vec_keys(uint8_t ch_pk[32], uint8_t dev_pk[32])
{
	uint8_t sk[64];
	tu_seed_keypair(ch_pk, sk, 0x00);
	tu_seed_keypair(dev_pk, sk, 0x20);
	sodium_memzero(sk, sizeof sk);
}

Test(record, vector_keys, .init = setup)
{
	uint8_t ch_pk[32], dev_pk[32];
	vec_keys(ch_pk, dev_pk);
	tu_assert_hex(ch_pk, 32, VEC_CH_PK);
	tu_assert_hex(dev_pk, 32, VEC_DEV_PK);
}

Test(record, vector_chain_encodes_exactly, .init = setup)
{
	uint8_t ch_pk[32], dev_pk[32], body[256], frame[512];
	vec_keys(ch_pk, dev_pk);

	ig_genesis g = {.version = 1};
	strcpy(g.cluster, "demo");
	memcpy(g.ch_pk, ch_pk, 32);
	int bl = ig_record_genesis_encode(body, sizeof body, &g);
	cr_assert_gt(bl, 0);
	ig_record r = {.index = 0, .ts_ms = 1700000000000ull, .type = IG_REC_GENESIS, .body = body,
	               .body_len = (uint32_t)bl};
	int n = ig_record_encode(frame, sizeof frame, &r);
	cr_assert_eq(n, 111);
	tu_assert_hex(frame, (size_t)n, VEC_GENESIS_FRAME);
	tu_assert_hex(r.hash, 32, VEC_GENESIS_HASH);
	uint8_t prev[32];
	memcpy(prev, r.hash, 32);

	ig_enroll e = {.role = IG_ROLE_DEVICE};
	strcpy(e.id, "dev1");
	memcpy(e.pk, dev_pk, 32);
	strcpy(e.by, "offline:root");
	bl = ig_record_enroll_encode(body, sizeof body, &e);
	cr_assert_gt(bl, 0);
	r = (ig_record){.index = 1, .ts_ms = 1700000000001ull, .type = IG_REC_ENROLL, .body = body,
	                .body_len = (uint32_t)bl};
	memcpy(r.prev_hash, prev, 32);
	n = ig_record_encode(frame, sizeof frame, &r);
	tu_assert_hex(frame, (size_t)n, VEC_ENROLL_FRAME);
	tu_assert_hex(r.hash, 32, VEC_ENROLL_HASH);
	memcpy(prev, r.hash, 32);

	ig_revoke rv = {0};
	strcpy(rv.id, "dev1");
	strcpy(rv.reason, "lost");
	strcpy(rv.by, "offline:root");
	bl = ig_record_revoke_encode(body, sizeof body, &rv);
	cr_assert_gt(bl, 0);
	r = (ig_record){.index = 2, .ts_ms = 1700000000002ull, .type = IG_REC_REVOKE, .body = body,
	                .body_len = (uint32_t)bl};
	memcpy(r.prev_hash, prev, 32);
	n = ig_record_encode(frame, sizeof frame, &r);
	tu_assert_hex(frame, (size_t)n, VEC_REVOKE_FRAME);
	tu_assert_hex(r.hash, 32, VEC_REVOKE_HASH);
}

Test(record, vector_frames_decode, .init = setup)
{
	uint8_t frame[512];
	ig_record r;
	ig_error err = {0};

	size_t n = tu_unhex(frame, sizeof frame, VEC_GENESIS_FRAME);
	cr_assert_eq(ig_record_decode(frame, n, &r), IG_FRAME_OK);
	cr_assert_eq(r.index, 0u);
	cr_assert_eq(r.type, IG_REC_GENESIS);
	tu_assert_hex(r.hash, 32, VEC_GENESIS_HASH);
	ig_genesis g;
	cr_assert_eq(ig_record_genesis_decode(r.body, r.body_len, &g, &err), IG_OK, "%s", err.msg);
	cr_assert_str_eq(g.cluster, "demo");
	cr_assert_eq(g.version, 1);
	tu_assert_hex(g.ch_pk, 32, VEC_CH_PK);

	n = tu_unhex(frame, sizeof frame, VEC_ENROLL_FRAME);
	cr_assert_eq(ig_record_decode(frame, n, &r), IG_FRAME_OK);
	cr_assert_eq(r.index, 1u);
	cr_assert_eq(r.ts_ms, 1700000000001ull);
	tu_assert_hex(r.prev_hash, 32, VEC_GENESIS_HASH);
	tu_assert_hex(r.hash, 32, VEC_ENROLL_HASH);
	ig_enroll e;
	cr_assert_eq(ig_record_enroll_decode(r.body, r.body_len, &e, &err), IG_OK, "%s", err.msg);
	cr_assert_str_eq(e.id, "dev1");
	cr_assert_eq(e.role, IG_ROLE_DEVICE);
	cr_assert_str_eq(e.by, "offline:root");
	tu_assert_hex(e.pk, 32, VEC_DEV_PK);

	n = tu_unhex(frame, sizeof frame, VEC_REVOKE_FRAME);
	cr_assert_eq(ig_record_decode(frame, n, &r), IG_FRAME_OK);
	tu_assert_hex(r.prev_hash, 32, VEC_ENROLL_HASH);
	tu_assert_hex(r.hash, 32, VEC_REVOKE_HASH);
	ig_revoke rv;
	cr_assert_eq(ig_record_revoke_decode(r.body, r.body_len, &rv, &err), IG_OK, "%s", err.msg);
	cr_assert_str_eq(rv.reason, "lost");
}

Test(record, doc_prints_the_pinned_vectors)
{
	const char *doc = tu_read_doc("LEDGER.md");
	const char *vecs[] = {VEC_CH_PK,       VEC_DEV_PK,       VEC_GENESIS_FRAME, VEC_GENESIS_HASH,
	                      VEC_ENROLL_FRAME, VEC_ENROLL_HASH, VEC_REVOKE_FRAME,  VEC_REVOKE_HASH};
	for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++)
		cr_assert_not_null(strstr(doc, vecs[i]), "docs/LEDGER.md lacks vector %zu (%.16s...)", i, vecs[i]);
}

/* The three doc frames plus the doc checkpoint are a complete ledger that the
 * real verifier accepts: the document describes a working format. */
Test(record, doc_vectors_form_a_verifiable_ledger, .init = setup)
{
	char dir[200];
	tu_tempdir(dir, sizeof dir, "record", 1);
	char path[256];
	uint8_t frame[512];
	snprintf(path, sizeof path, "%s/ledger.log", dir);
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	const char *vecs[] = {VEC_GENESIS_FRAME, VEC_ENROLL_FRAME, VEC_REVOKE_FRAME};
	for (int i = 0; i < 3; i++) {
		size_t n = tu_unhex(frame, sizeof frame, vecs[i]);
		cr_assert_eq(fwrite(frame, 1, n, f), n);
	}
	cr_assert_eq(fclose(f), 0);

	/* The checkpoint is taken from the document itself. */
	const char *doc = tu_read_doc("LEDGER.md");
	const char *cp = strstr(doc, "```\niotguard/demo\n");
	cr_assert_not_null(cp);
	cp += 4;
	const char *end = strstr(cp, "```");
	cr_assert_not_null(end);
	snprintf(path, sizeof path, "%s/checkpoint", dir);
	f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(cp, 1, (size_t)(end - cp), f), (size_t)(end - cp));
	cr_assert_eq(fclose(f), 0);

	ig_verify_result res;
	ig_error err = {0};
	int rc = ig_ledger_verify(dir, NULL, NULL, NULL, NULL, &res, &err);
	cr_assert_eq(rc, IG_OK, "%s", err.msg);
	cr_assert_eq(res.height, 3u);
	cr_assert_eq(res.checkpoint_size, 3u);
	cr_assert_str_eq(res.cluster, "demo");
	tu_assert_hex(res.head, 32, VEC_REVOKE_HASH);

}

/* ---- frames -------------------------------------------------------------- */

Test(record, hash_is_leaf_hash_of_frame_without_crc, .init = setup)
{
	uint8_t body[40], frame[200], expect[32];
	tu_seq_bytes(body, sizeof body, 0);
	ig_record r;
	size_t n = make_frame(frame, sizeof frame, 9, 77, body, sizeof body, &r);

	uint8_t pre[1 + 200];
	pre[0] = 0x00;
	memcpy(pre + 1, frame, n - 4);
	crypto_generichash(expect, 32, pre, 1 + n - 4, NULL, 0);
	cr_assert_arr_eq(r.hash, expect, 32);
	uint8_t h[32];
	ig_record_hash(h, frame, n);
	cr_assert_arr_eq(h, expect, 32);
	/* The crc is not part of the hash. */
	frame[n - 1] ^= 1;
	ig_record_hash(h, frame, n);
	cr_assert_arr_eq(h, expect, 32);
}

Test(record, round_trip_all_body_sizes, .init = setup)
{
	static uint8_t body[IG_REC_MAX_BODY], frame[IG_REC_MAX_BODY + IG_REC_OVERHEAD + 16];
	for (size_t i = 0; i < sizeof body; i++)
		body[i] = (uint8_t)tu_rand();
	const uint32_t sizes[] = {0, 1, 3, 59, 60, 61, 255, 256, 4096, IG_REC_MAX_BODY - 1, IG_REC_MAX_BODY};
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		ig_record w, r;
		size_t n = make_frame(frame, sizeof frame, k, (uint16_t)(k + 1), body, sizes[k], &w);
		cr_assert_eq(n, sizes[k] + 64u);
		cr_assert_eq(w.frame_len, n);
		cr_assert_eq(ig_record_decode(frame, n, &r), IG_FRAME_OK, "size %u", sizes[k]);
		cr_assert_eq(r.index, w.index);
		cr_assert_eq(r.ts_ms, w.ts_ms);
		cr_assert_eq(r.type, w.type);
		cr_assert_eq(r.flags, 0);
		cr_assert_eq(r.body_len, sizes[k]);
		cr_assert_eq(r.frame_len, n);
		cr_assert_eq(r.body, frame + 60);
		cr_assert_arr_eq(r.prev_hash, w.prev_hash, 32);
		cr_assert_arr_eq(r.hash, w.hash, 32);
		if (sizes[k])
			cr_assert_arr_eq(r.body, body, sizes[k]);
		/* Trailing bytes (the next frame) do not disturb the decode. */
		cr_assert_eq(ig_record_decode(frame, sizeof frame, &r), IG_FRAME_OK);
		cr_assert_eq(r.frame_len, n);
	}
}

Test(record, encode_refuses_bad_input, .init = setup)
{
	static uint8_t body[IG_REC_MAX_BODY + 1], frame[IG_REC_MAX_BODY + 200];
	ig_record r = {.index = 1, .type = 2, .body = body, .body_len = IG_REC_MAX_BODY + 1};
	cr_assert_eq(ig_record_encode(frame, sizeof frame, &r), IG_ERR_RANGE);
	r.body_len = 10;
	cr_assert_eq(ig_record_encode(frame, 73, &r), IG_ERR_RANGE);
	cr_assert_eq(ig_record_encode(frame, 74, &r), 74);
	r.flags = 1;
	cr_assert_eq(ig_record_encode(frame, sizeof frame, &r), IG_ERR_INVAL);
	r.flags = 0;
	r.body = NULL;
	cr_assert_eq(ig_record_encode(frame, sizeof frame, &r), IG_ERR_INVAL);
	r.body_len = 0;
	cr_assert_eq(ig_record_encode(frame, sizeof frame, &r), 64);
}

Test(record, encode_body_in_place, .init = setup)
{
	uint8_t frame[128], copy[128];
	for (int i = 0; i < 20; i++)
		frame[60 + i] = (uint8_t)(0xA0 + i);
	memcpy(copy, frame + 60, 20);
	ig_record r = {.index = 5, .type = 3, .body = frame + 60, .body_len = 20};
	cr_assert_eq(ig_record_encode(frame, sizeof frame, &r), 84);
	ig_record d;
	cr_assert_eq(ig_record_decode(frame, 84, &d), IG_FRAME_OK);
	cr_assert_arr_eq(d.body, copy, 20);
}

Test(record, every_byte_tamper_is_detected, .init = setup)
{
	uint8_t frame[512];
	size_t n = tu_unhex(frame, sizeof frame, VEC_ENROLL_FRAME);
	ig_record good, r;
	cr_assert_eq(ig_record_decode(frame, n, &good), IG_FRAME_OK);
	const uint8_t flips[] = {0x01, 0x80, 0xff, 0x5a};
	for (size_t i = 0; i < n; i++) {
		for (size_t f = 0; f < sizeof flips; f++) {
			frame[i] ^= flips[f];
			ig_frame_status st = ig_record_decode(frame, n, &r);
			cr_assert(st != IG_FRAME_OK || memcmp(r.hash, good.hash, 32) != 0,
			          "tamper of byte %zu (^0x%02x) went unnoticed", i, flips[f]);
			/* With the crc present, a one-byte change never passes framing. */
			cr_assert_neq(st, IG_FRAME_OK, "byte %zu ^0x%02x", i, flips[f]);
			frame[i] ^= flips[f];
		}
	}
	cr_assert_eq(ig_record_decode(frame, n, &r), IG_FRAME_OK);
}

Test(record, tamper_with_fixed_crc_changes_hash, .init = setup)
{
	/* An attacker who recomputes the crc passes framing, but every byte the
	 * hash covers changes the record hash (and so breaks the chain). */
	uint8_t frame[512];
	size_t n = tu_unhex(frame, sizeof frame, VEC_ENROLL_FRAME);
	ig_record good, r;
	cr_assert_eq(ig_record_decode(frame, n, &good), IG_FRAME_OK);
	for (size_t i = 0; i < n - 4; i++) {
		frame[i] ^= 0x10;
		refresh_crc(frame, n);
		ig_frame_status st = ig_record_decode(frame, n, &r);
		cr_assert(st != IG_FRAME_OK || memcmp(r.hash, good.hash, 32) != 0, "byte %zu", i);
		frame[i] ^= 0x10;
		refresh_crc(frame, n);
	}
}

Test(record, truncation_at_every_length_is_short, .init = setup)
{
	uint8_t frame[512];
	const char *vecs[] = {VEC_GENESIS_FRAME, VEC_ENROLL_FRAME, VEC_REVOKE_FRAME};
	for (size_t v = 0; v < 3; v++) {
		size_t n = tu_unhex(frame, sizeof frame, vecs[v]);
		ig_record r;
		for (size_t len = 0; len < n; len++) {
			/* Copy to an exact-size heap block so ASan catches any over-read. */
			uint8_t *p = malloc(len ? len : 1);
			cr_assert_not_null(p);
			memcpy(p, frame, len);
			cr_assert_eq(ig_record_decode(p, len, &r), IG_FRAME_SHORT, "vector %zu len %zu", v, len);
			free(p);
		}
		cr_assert_eq(ig_record_decode(frame, n, &r), IG_FRAME_OK);
	}
}

Test(record, bad_magic_length_flags, .init = setup)
{
	uint8_t frame[512];
	size_t n = tu_unhex(frame, sizeof frame, VEC_REVOKE_FRAME);
	ig_record r;

	frame[0] = 'X';
	cr_assert_eq(ig_record_decode(frame, n, &r), IG_FRAME_BAD_MAGIC);
	cr_assert_eq(ig_record_decode(frame, 1, &r), IG_FRAME_BAD_MAGIC);
	frame[0] = 'I';
	frame[3] = '2';
	cr_assert_eq(ig_record_decode(frame, 3, &r), IG_FRAME_SHORT);
	cr_assert_eq(ig_record_decode(frame, 4, &r), IG_FRAME_BAD_MAGIC);
	frame[3] = '1';

	ig_put_u32(frame + 4, 63);
	cr_assert_eq(ig_record_decode(frame, n, &r), IG_FRAME_BAD_LENGTH);
	ig_put_u32(frame + 4, 0);
	cr_assert_eq(ig_record_decode(frame, n, &r), IG_FRAME_BAD_LENGTH);
	ig_put_u32(frame + 4, IG_REC_MAX_BODY + 65);
	cr_assert_eq(ig_record_decode(frame, n, &r), IG_FRAME_BAD_LENGTH);
	ig_put_u32(frame + 4, 0xffffffffu);
	cr_assert_eq(ig_record_decode(frame, n, &r), IG_FRAME_BAD_LENGTH);
	ig_put_u32(frame + 4, IG_REC_MAX_BODY + 64);
	cr_assert_eq(ig_record_decode(frame, n, &r), IG_FRAME_SHORT);
	ig_put_u32(frame + 4, (uint32_t)n);

	ig_put_u16(frame + 26, 0x0001);
	cr_assert_eq(ig_record_decode(frame, n, &r), IG_FRAME_BAD_CRC);
	refresh_crc(frame, n);
	cr_assert_eq(ig_record_decode(frame, n, &r), IG_FRAME_BAD_FLAGS);
	ig_put_u16(frame + 26, 0x8000);
	refresh_crc(frame, n);
	cr_assert_eq(ig_record_decode(frame, n, &r), IG_FRAME_BAD_FLAGS);
	ig_put_u16(frame + 26, 0);
	refresh_crc(frame, n);
	cr_assert_eq(ig_record_decode(frame, n, &r), IG_FRAME_OK);
}

Test(record, status_texts_and_type_names)
{
	for (int st = IG_FRAME_OK; st <= IG_FRAME_BAD_FLAGS; st++) {
		const char *t = ig_record_frame_status_text((ig_frame_status)st);
		cr_assert_not_null(t);
		cr_assert_gt(strlen(t), 1u);
	}
	cr_assert_str_eq(ig_record_frame_status_text(IG_FRAME_OK), "ok");
	cr_assert_str_eq(ig_record_type_name(IG_REC_GENESIS), "genesis");
	cr_assert_str_eq(ig_record_type_name(IG_REC_ENROLL), "enroll");
	cr_assert_str_eq(ig_record_type_name(IG_REC_REVOKE), "revoke");
	cr_assert_str_eq(ig_record_type_name(IG_REC_JOIN_CODE), "join_code");
	cr_assert_str_eq(ig_record_type_name(IG_REC_JOIN_USED), "join_used");
	cr_assert_str_eq(ig_record_type_name(IG_REC_KEY_ISSUED), "key_issued");
	cr_assert_str_eq(ig_record_type_name(IG_REC_ATTEST), "attest");
	cr_assert_str_eq(ig_record_type_name(0), "unknown");
	cr_assert_str_eq(ig_record_type_name(20), "unknown");
	cr_assert_str_eq(ig_record_type_name(0xffff), "unknown");
}

Test(record, fuzz_random_bytes_never_crash, .init = setup)
{
	uint8_t buf[400];
	ig_record r;
	int ok = 0;
	for (int iter = 0; iter < 20000; iter++) {
		size_t len = (size_t)(tu_rand() % sizeof buf);
		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)tu_rand();
		/* Half the time make it look like a frame so the deeper checks run. */
		if ((iter & 1) && len >= 8) {
			memcpy(buf, IG_REC_MAGIC, 4);
			ig_put_u32(buf + 4, (uint32_t)(64 + tu_rand() % 340));
			if ((iter & 3) == 1 && ig_get_u32(buf + 4) <= len) {
				ig_put_u16(buf + 26, 0);
				refresh_crc(buf, ig_get_u32(buf + 4));
			}
		}
		uint8_t *p = malloc(len ? len : 1);
		cr_assert_not_null(p);
		memcpy(p, buf, len);
		ig_frame_status st = ig_record_decode(p, len, &r);
		cr_assert(st >= IG_FRAME_OK && st <= IG_FRAME_BAD_FLAGS);
		if (st == IG_FRAME_OK) {
			ok++;
			cr_assert_leq(r.frame_len, len);
			cr_assert_eq(r.body_len + 64u, r.frame_len);
			/* Typed decoders and the JSON view must survive any body. */
			ig_genesis g;
			ig_enroll e;
			ig_revoke rv;
			(void)ig_record_genesis_decode(r.body, r.body_len, &g, NULL);
			(void)ig_record_enroll_decode(r.body, r.body_len, &e, NULL);
			(void)ig_record_revoke_decode(r.body, r.body_len, &rv, NULL);
			r.type = (uint16_t)(1 + tu_rand() % 4);
			char *j = ig_record_to_json(&r);
			cr_assert_not_null(j);
			cJSON *o = cJSON_Parse(j);
			cr_assert_not_null(o, "invalid JSON: %s", j);
			cJSON_Delete(o);
			free(j);
		}
		free(p);
	}
	cr_assert_gt(ok, 100, "fuzz never reached a valid frame (%d)", ok);
}

/* ---- TLV ----------------------------------------------------------------- */

Test(tlv, empty_body)
{
	ig_tlv_iter it;
	uint8_t tag;
	const uint8_t *v;
	uint16_t vlen;
	ig_record_tlv_iter_init(&it, NULL, 0);
	cr_assert_eq(ig_record_tlv_next(&it, &tag, &v, &vlen), 0);
	uint8_t b[1];
	ig_record_tlv_iter_init(&it, b, 0);
	cr_assert_eq(ig_record_tlv_next(&it, &tag, &v, &vlen), 0);
	cr_assert_eq(ig_record_tlv_next(&it, &tag, &v, &vlen), 0);
}

Test(tlv, put_and_walk)
{
	uint8_t buf[64];
	size_t pos = 0;
	cr_assert_eq(ig_record_tlv_put(buf, sizeof buf, &pos, 7, "abc", 3), IG_OK);
	cr_assert_eq(ig_record_tlv_put(buf, sizeof buf, &pos, 0, NULL, 0), IG_OK);
	cr_assert_eq(ig_record_tlv_put(buf, sizeof buf, &pos, 255, "z", 1), IG_OK);
	cr_assert_eq(pos, 6u + 3u + 4u);
	const uint8_t expect[] = {7, 0, 3, 'a', 'b', 'c', 0, 0, 0, 255, 0, 1, 'z'};
	cr_assert_arr_eq(buf, expect, sizeof expect);

	ig_tlv_iter it;
	uint8_t tag;
	const uint8_t *v;
	uint16_t vlen;
	ig_record_tlv_iter_init(&it, buf, pos);
	cr_assert_eq(ig_record_tlv_next(&it, &tag, &v, &vlen), 1);
	cr_assert_eq(tag, 7);
	cr_assert_eq(vlen, 3);
	cr_assert_arr_eq(v, "abc", 3);
	cr_assert_eq(ig_record_tlv_next(&it, &tag, &v, &vlen), 1);
	cr_assert_eq(tag, 0);
	cr_assert_eq(vlen, 0);
	cr_assert_eq(ig_record_tlv_next(&it, &tag, &v, &vlen), 1);
	cr_assert_eq(tag, 255);
	cr_assert_eq(ig_record_tlv_next(&it, &tag, &v, &vlen), 0);
}

Test(tlv, put_bounds)
{
	static uint8_t big[65535 + 3], src[65536];
	size_t pos = 0;
	memset(src, 0x5a, sizeof src);
	cr_assert_eq(ig_record_tlv_put(big, sizeof big, &pos, 1, src, 65535), IG_OK);
	cr_assert_eq(big[3], 0x5a);
	cr_assert_eq(big[sizeof big - 1], 0x5a);
	cr_assert_eq(pos, sizeof big);
	cr_assert_eq(ig_record_tlv_put(big, sizeof big, &pos, 1, NULL, 0), IG_ERR_RANGE);
	pos = 0;
	cr_assert_eq(ig_record_tlv_put(big, sizeof big, &pos, 1, src, 65536), IG_ERR_RANGE);
	cr_assert_eq(pos, 0u);

	uint8_t small[5];
	pos = 0;
	cr_assert_eq(ig_record_tlv_put(small, sizeof small, &pos, 1, "ab", 2), IG_OK);
	cr_assert_eq(pos, 5u);
	pos = 0;
	cr_assert_eq(ig_record_tlv_put(small, sizeof small, &pos, 1, "abc", 3), IG_ERR_RANGE);
	cr_assert_eq(pos, 0u);
	pos = 3;
	cr_assert_eq(ig_record_tlv_put(small, sizeof small, &pos, 1, NULL, 0), IG_ERR_RANGE);
	pos = 99; /* a position past the buffer must not wrap around */
	cr_assert_eq(ig_record_tlv_put(small, sizeof small, &pos, 1, NULL, 0), IG_ERR_RANGE);
}

Test(tlv, overruns_are_corrupt)
{
	ig_tlv_iter it;
	uint8_t tag;
	const uint8_t *v;
	uint16_t vlen;
	const uint8_t one[] = {1};
	const uint8_t two[] = {1, 0};
	const uint8_t over[] = {1, 0, 3, 'a', 'b'};
	const uint8_t huge[] = {1, 0xff, 0xff, 'a'};
	const uint8_t tail[] = {1, 0, 1, 'a', 2, 0};

	ig_record_tlv_iter_init(&it, one, sizeof one);
	cr_assert_eq(ig_record_tlv_next(&it, &tag, &v, &vlen), IG_ERR_CORRUPT);
	ig_record_tlv_iter_init(&it, two, sizeof two);
	cr_assert_eq(ig_record_tlv_next(&it, &tag, &v, &vlen), IG_ERR_CORRUPT);
	ig_record_tlv_iter_init(&it, over, sizeof over);
	cr_assert_eq(ig_record_tlv_next(&it, &tag, &v, &vlen), IG_ERR_CORRUPT);
	ig_record_tlv_iter_init(&it, huge, sizeof huge);
	cr_assert_eq(ig_record_tlv_next(&it, &tag, &v, &vlen), IG_ERR_CORRUPT);
	ig_record_tlv_iter_init(&it, tail, sizeof tail);
	cr_assert_eq(ig_record_tlv_next(&it, &tag, &v, &vlen), 1);
	cr_assert_eq(ig_record_tlv_next(&it, &tag, &v, &vlen), IG_ERR_CORRUPT);
}

/* ---- typed bodies -------------------------------------------------------- */

static ig_enroll sample_enroll(void)
{
	ig_enroll e = {.role = IG_ROLE_ADMIN};
	strcpy(e.id, "admin-1.x_Y");
	for (int i = 0; i < 32; i++)
		e.pk[i] = (uint8_t)(200 - i);
	strcpy(e.by, "offline:root");
	return e;
}

Test(body, genesis_round_trip, .init = setup)
{
	ig_genesis g = {.version = IG_FORMAT_VERSION}, d;
	memset(g.cluster, 'c', IG_CLUSTER_MAX); /* longest allowed name */
	tu_seq_bytes(g.ch_pk, 32, 0);
	uint8_t body[256];
	int n = ig_record_genesis_encode(body, sizeof body, &g);
	cr_assert_gt(n, 0);
	ig_error err = {0};
	cr_assert_eq(ig_record_genesis_decode(body, (size_t)n, &d, &err), IG_OK, "%s", err.msg);
	cr_assert_str_eq(d.cluster, g.cluster);
	cr_assert_arr_eq(d.ch_pk, g.ch_pk, 32);
	cr_assert_eq(d.version, IG_FORMAT_VERSION);
	/* Too small a buffer at every size. */
	for (int cap = 0; cap < n; cap++)
		cr_assert_lt(ig_record_genesis_encode(body, (size_t)cap, &g), 0, "cap %d", cap);
}

Test(body, enroll_round_trip_every_role, .init = setup)
{
	for (int role = IG_ROLE_DEVICE; role <= IG_ROLE_ADMIN; role++) {
		ig_enroll e = sample_enroll(), d;
		e.role = (ig_role)role;
		uint8_t body[256];
		int n = ig_record_enroll_encode(body, sizeof body, &e);
		cr_assert_gt(n, 0);
		ig_error err = {0};
		cr_assert_eq(ig_record_enroll_decode(body, (size_t)n, &d, &err), IG_OK, "%s", err.msg);
		cr_assert_str_eq(d.id, e.id);
		cr_assert_eq(d.role, e.role);
		cr_assert_arr_eq(d.pk, e.pk, 32);
		cr_assert_str_eq(d.by, e.by);
	}
}

Test(body, revoke_round_trip, .init = setup)
{
	ig_revoke r = {0}, d;
	strcpy(r.id, "dev9");
	strcpy(r.reason, "");
	strcpy(r.by, "admin1");
	uint8_t body[512];
	ig_error err = {0};
	int n = ig_record_revoke_encode(body, sizeof body, &r);
	cr_assert_gt(n, 0);
	cr_assert_eq(ig_record_revoke_decode(body, (size_t)n, &d, &err), IG_OK, "%s", err.msg);
	cr_assert_str_eq(d.reason, "");
	/* Longest reason, with multi-byte UTF-8. */
	memset(r.reason, 'r', IG_REASON_MAX);
	memcpy(r.reason, "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91", 14);
	r.reason[IG_REASON_MAX] = '\0';
	n = ig_record_revoke_encode(body, sizeof body, &r);
	cr_assert_gt(n, 0);
	cr_assert_eq(ig_record_revoke_decode(body, (size_t)n, &d, &err), IG_OK, "%s", err.msg);
	cr_assert_str_eq(d.reason, r.reason);
	cr_assert_str_eq(d.id, "dev9");
	cr_assert_str_eq(d.by, "admin1");
}

Test(body, encoders_refuse_bad_fields, .init = setup)
{
	uint8_t body[512];
	ig_enroll e = sample_enroll();
	e.role = IG_ROLE_NONE;
	cr_assert_lt(ig_record_enroll_encode(body, sizeof body, &e), 0);
	e.role = (ig_role)IG_ROLE_COUNT;
	cr_assert_lt(ig_record_enroll_encode(body, sizeof body, &e), 0);
	e = sample_enroll();
	strcpy(e.id, "bad id");
	cr_assert_lt(ig_record_enroll_encode(body, sizeof body, &e), 0);
	e.id[0] = '\0';
	cr_assert_lt(ig_record_enroll_encode(body, sizeof body, &e), 0);
	e = sample_enroll();
	memset(e.id, 'a', sizeof e.id); /* 65 chars, unterminated */
	cr_assert_lt(ig_record_enroll_encode(body, sizeof body, &e), 0);
	e = sample_enroll();
	e.by[0] = '\0';
	cr_assert_lt(ig_record_enroll_encode(body, sizeof body, &e), 0);
	strcpy(e.by, "line\nbreak");
	cr_assert_lt(ig_record_enroll_encode(body, sizeof body, &e), 0);

	ig_revoke r = {0};
	strcpy(r.id, "dev1");
	strcpy(r.by, "a");
	strcpy(r.reason, "bad \xff utf8");
	cr_assert_lt(ig_record_revoke_encode(body, sizeof body, &r), 0);
	strcpy(r.reason, "overlong \xc0\xaf");
	cr_assert_lt(ig_record_revoke_encode(body, sizeof body, &r), 0);
	strcpy(r.reason, "surrogate \xed\xa0\x80");
	cr_assert_lt(ig_record_revoke_encode(body, sizeof body, &r), 0);
	strcpy(r.reason, "cut \xe2\x82");
	cr_assert_lt(ig_record_revoke_encode(body, sizeof body, &r), 0);
	strcpy(r.reason, "tab\there");
	cr_assert_lt(ig_record_revoke_encode(body, sizeof body, &r), 0);

	ig_genesis g = {.version = 1};
	strcpy(g.cluster, "a/b");
	cr_assert_lt(ig_record_genesis_encode(body, sizeof body, &g), 0);
	strcpy(g.cluster, "ok");
	g.version = 0;
	cr_assert_lt(ig_record_genesis_encode(body, sizeof body, &g), 0);
	g.version = IG_FORMAT_VERSION + 1;
	cr_assert_lt(ig_record_genesis_encode(body, sizeof body, &g), 0);
}

/* Builds an enroll body from the given TLVs (tag 0 ends the list). */
typedef struct tlv_spec {
	uint8_t tag;
	const void *val;
	size_t len;
} tlv_spec;

static size_t build(uint8_t *out, size_t cap, const tlv_spec *spec, size_t count)
{
	size_t pos = 0;
	for (size_t i = 0; i < count; i++)
		cr_assert_eq(ig_record_tlv_put(out, cap, &pos, spec[i].tag, spec[i].val, spec[i].len), IG_OK);
	return pos;
}

Test(body, enroll_missing_duplicate_and_unknown_tags, .init = setup)
{
	uint8_t pk[32] = {1}, role = IG_ROLE_DEVICE, body[512];
	const tlv_spec full[] = {
		{IG_TAG_ENROLL_ID, "dev1", 4},
		{IG_TAG_ENROLL_ROLE, &role, 1},
		{IG_TAG_ENROLL_PK, pk, 32},
		{IG_TAG_ENROLL_BY, "admin", 5},
	};
	const char *names[] = {"'id'", "'role'", "'pubkey'", "'by'"};
	ig_enroll e;
	ig_error err = {0};

	/* Each required tag missing: fails naming the field. */
	for (size_t skip = 0; skip < 4; skip++) {
		tlv_spec s[4];
		size_t k = 0;
		for (size_t i = 0; i < 4; i++)
			if (i != skip)
				s[k++] = full[i];
		size_t n = build(body, sizeof body, s, k);
		cr_assert_eq(ig_record_enroll_decode(body, n, &e, &err), IG_ERR_CORRUPT);
		cr_assert_not_null(strstr(err.msg, names[skip]), "%s", err.msg);
		cr_assert_not_null(strstr(err.msg, "missing"), "%s", err.msg);
	}
	/* Each required tag twice: fails naming the field. */
	for (size_t dup = 0; dup < 4; dup++) {
		tlv_spec s[5];
		memcpy(s, full, sizeof full);
		s[4] = full[dup];
		size_t n = build(body, sizeof body, s, 5);
		cr_assert_eq(ig_record_enroll_decode(body, n, &e, &err), IG_ERR_CORRUPT);
		cr_assert_not_null(strstr(err.msg, names[dup]), "%s", err.msg);
		cr_assert_not_null(strstr(err.msg, "twice"), "%s", err.msg);
	}
	/* Unknown tags anywhere (even repeated) are ignored; order is free. */
	const tlv_spec mixed[] = {
		{99, "future", 6},   full[3], {0, NULL, 0}, full[1], {99, "again", 5},
		full[0],             full[2], {255, pk, 32},
	};
	size_t n = build(body, sizeof body, mixed, sizeof mixed / sizeof mixed[0]);
	cr_assert_eq(ig_record_enroll_decode(body, n, &e, &err), IG_OK, "%s", err.msg);
	cr_assert_str_eq(e.id, "dev1");
	cr_assert_str_eq(e.by, "admin");
	/* A truncated body is corrupt, not "missing". */
	n = build(body, sizeof body, full, 4);
	for (size_t cut = 1; cut < n; cut++) {
		int rc = ig_record_enroll_decode(body, n - cut, &e, &err);
		cr_assert_eq(rc, IG_ERR_CORRUPT, "cut %zu", cut);
	}
}

Test(body, enroll_bad_field_values, .init = setup)
{
	uint8_t pk[33] = {0}, body[512];
	uint8_t roles[] = {0, IG_ROLE_COUNT, 255};
	ig_enroll e;
	ig_error err = {0};
	uint8_t good_role = 1;
	for (size_t i = 0; i < sizeof roles; i++) {
		const tlv_spec s[] = {{1, "dev1", 4}, {2, &roles[i], 1}, {3, pk, 32}, {4, "a", 1}};
		size_t n = build(body, sizeof body, s, 4);
		cr_assert_eq(ig_record_enroll_decode(body, n, &e, &err), IG_ERR_CORRUPT);
		cr_assert_not_null(strstr(err.msg, "'role'"), "%s", err.msg);
	}
	const uint8_t role2[2] = {1, 0};
	const tlv_spec cases[][4] = {
		{{1, "dev1", 4}, {2, role2, 2}, {3, pk, 32}, {4, "a", 1}},
		{{1, "dev1", 4}, {2, &good_role, 1}, {3, pk, 31}, {4, "a", 1}},
		{{1, "dev1", 4}, {2, &good_role, 1}, {3, pk, 33}, {4, "a", 1}},
		{{1, "dev 1", 5}, {2, &good_role, 1}, {3, pk, 32}, {4, "a", 1}},
		{{1, "", 0}, {2, &good_role, 1}, {3, pk, 32}, {4, "a", 1}},
		{{1, "dev\0", 4}, {2, &good_role, 1}, {3, pk, 32}, {4, "a", 1}},
		{{1, "dev1", 4}, {2, &good_role, 1}, {3, pk, 32}, {4, "", 0}},
		{{1, "dev1", 4}, {2, &good_role, 1}, {3, pk, 32}, {4, "a\0b", 3}},
	};
	const char *field[] = {"'role'", "'pubkey'", "'pubkey'", "'id'", "'id'", "'id'", "'by'", "'by'"};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		size_t n = build(body, sizeof body, cases[c], 4);
		cr_assert_eq(ig_record_enroll_decode(body, n, &e, &err), IG_ERR_CORRUPT, "case %zu", c);
		cr_assert_not_null(strstr(err.msg, field[c]), "case %zu: %s", c, err.msg);
	}
	/* 65-char id and 81-char by. */
	char longs[100];
	memset(longs, 'a', sizeof longs);
	const tlv_spec lid[] = {{1, longs, 65}, {2, &good_role, 1}, {3, pk, 32}, {4, "a", 1}};
	size_t n = build(body, sizeof body, lid, 4);
	cr_assert_eq(ig_record_enroll_decode(body, n, &e, &err), IG_ERR_CORRUPT);
	const tlv_spec lby[] = {{1, longs, 64}, {2, &good_role, 1}, {3, pk, 32}, {4, longs, 81}};
	n = build(body, sizeof body, lby, 4);
	cr_assert_eq(ig_record_enroll_decode(body, n, &e, &err), IG_ERR_CORRUPT);
	const tlv_spec okl[] = {{1, longs, 64}, {2, &good_role, 1}, {3, pk, 32}, {4, longs, 80}};
	n = build(body, sizeof body, okl, 4);
	cr_assert_eq(ig_record_enroll_decode(body, n, &e, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(strlen(e.id), 64u);
	cr_assert_eq(strlen(e.by), 80u);
}

Test(body, genesis_and_revoke_missing_duplicate, .init = setup)
{
	uint8_t pk[32] = {0}, ver[2] = {0, 1}, body[512];
	ig_genesis g;
	ig_revoke r;
	ig_error err = {0};
	const tlv_spec gfull[] = {{1, "demo", 4}, {2, pk, 32}, {3, ver, 2}};
	for (size_t skip = 0; skip < 3; skip++) {
		tlv_spec s[3];
		size_t k = 0;
		for (size_t i = 0; i < 3; i++)
			if (i != skip)
				s[k++] = gfull[i];
		size_t n = build(body, sizeof body, s, k);
		cr_assert_eq(ig_record_genesis_decode(body, n, &g, &err), IG_ERR_CORRUPT);
		cr_assert_not_null(strstr(err.msg, "missing"), "%s", err.msg);
		tlv_spec d[4];
		memcpy(d, gfull, sizeof gfull);
		d[3] = gfull[skip];
		n = build(body, sizeof body, d, 4);
		cr_assert_eq(ig_record_genesis_decode(body, n, &g, &err), IG_ERR_CORRUPT);
		cr_assert_not_null(strstr(err.msg, "twice"), "%s", err.msg);
	}
	uint8_t v2[2] = {0, IG_FORMAT_VERSION + 1}, v0[2] = {0, 0};
	const tlv_spec newer[] = {{1, "demo", 4}, {2, pk, 32}, {3, v2, 2}};
	size_t n = build(body, sizeof body, newer, 3);
	cr_assert_eq(ig_record_genesis_decode(body, n, &g, &err), IG_ERR_CORRUPT);
	cr_assert_not_null(strstr(err.msg, "upgrade"), "%s", err.msg);
	const tlv_spec zero[] = {{1, "demo", 4}, {2, pk, 32}, {3, v0, 2}};
	n = build(body, sizeof body, zero, 3);
	cr_assert_eq(ig_record_genesis_decode(body, n, &g, &err), IG_ERR_CORRUPT);

	const tlv_spec rfull[] = {{1, "dev1", 4}, {2, "why", 3}, {3, "adm", 3}};
	const char *names[] = {"'id'", "'reason'", "'by'"};
	for (size_t skip = 0; skip < 3; skip++) {
		tlv_spec s[3];
		size_t k = 0;
		for (size_t i = 0; i < 3; i++)
			if (i != skip)
				s[k++] = rfull[i];
		n = build(body, sizeof body, s, k);
		cr_assert_eq(ig_record_revoke_decode(body, n, &r, &err), IG_ERR_CORRUPT);
		cr_assert_not_null(strstr(err.msg, names[skip]), "%s", err.msg);
		tlv_spec d[4];
		memcpy(d, rfull, sizeof rfull);
		d[3] = rfull[skip];
		n = build(body, sizeof body, d, 4);
		cr_assert_eq(ig_record_revoke_decode(body, n, &r, &err), IG_ERR_CORRUPT);
		cr_assert_not_null(strstr(err.msg, names[skip]), "%s", err.msg);
	}
	char longr[300];
	memset(longr, 'x', sizeof longr);
	const tlv_spec lr[] = {{1, "dev1", 4}, {2, longr, 257}, {3, "adm", 3}};
	n = build(body, sizeof body, lr, 3);
	cr_assert_eq(ig_record_revoke_decode(body, n, &r, &err), IG_ERR_CORRUPT);
	cr_assert_not_null(strstr(err.msg, "'reason'"), "%s", err.msg);
}

Test(body, fuzz_typed_decoders, .init = setup)
{
	/* Random TLV soups built from the real tags, to hit accept paths too. */
	uint8_t body[600], val[80];
	int accepted = 0;
	for (int iter = 0; iter < 5000; iter++) {
		size_t pos = 0;
		int count = (int)(tu_rand() % 7);
		for (int k = 0; k < count; k++) {
			uint8_t tag = (uint8_t)(tu_rand() % 6);
			size_t len = (size_t)(tu_rand() % 3 == 0 ? 32 : tu_rand() % 8);
			for (size_t i = 0; i < len; i++)
				val[i] = (uint8_t)("abc1-_.\x01\x02\x03"[tu_rand() % 10]);
			(void)ig_record_tlv_put(body, sizeof body, &pos, tag, val, len);
		}
		if (tu_rand() % 4 == 0 && pos > 0)
			pos -= (size_t)(tu_rand() % pos); /* truncate */
		uint8_t *p = malloc(pos ? pos : 1);
		cr_assert_not_null(p);
		memcpy(p, body, pos);
		ig_genesis g;
		ig_enroll e;
		ig_revoke r;
		ig_error err;
		if (ig_record_genesis_decode(p, pos, &g, &err) == IG_OK)
			accepted++;
		if (ig_record_enroll_decode(p, pos, &e, &err) == IG_OK) {
			accepted++;
			cr_assert(ig_id_valid(e.id, strlen(e.id)));
			cr_assert(e.role >= IG_ROLE_DEVICE && e.role <= IG_ROLE_ADMIN);
		}
		if (ig_record_revoke_decode(p, pos, &r, &err) == IG_OK)
			accepted++;
		free(p);
	}
	cr_assert_geq(accepted, 0);
}

/* ---- JSON ---------------------------------------------------------------- */

static cJSON *json_of(const ig_record *r)
{
	char *text = ig_record_to_json(r);
	cr_assert_not_null(text);
	cr_assert_null(strchr(text, '\n'));
	cJSON *o = cJSON_Parse(text);
	cr_assert_not_null(o, "bad JSON: %s", text);
	free(text);
	return o;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	cr_assert(cJSON_IsString(v), "field %s", k);
	return v->valuestring;
}

static double jnum(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	cr_assert(cJSON_IsNumber(v), "field %s", k);
	return v->valuedouble;
}

Test(json, typed_records, .init = setup)
{
	uint8_t frame[512];
	ig_record r;

	size_t n = tu_unhex(frame, sizeof frame, VEC_GENESIS_FRAME);
	cr_assert_eq(ig_record_decode(frame, n, &r), IG_FRAME_OK);
	cJSON *o = json_of(&r);
	cr_assert_eq(jnum(o, "index"), 0);
	cr_assert_eq(jnum(o, "ts"), 1700000000000.0);
	cr_assert_str_eq(jstr(o, "type"), "genesis");
	cr_assert_str_eq(jstr(o, "hash"), VEC_GENESIS_HASH);
	cr_assert_str_eq(jstr(o, "prev"), "0000000000000000000000000000000000000000000000000000000000000000");
	cr_assert_str_eq(jstr(o, "cluster"), "demo");
	cr_assert_str_eq(jstr(o, "ch_pubkey"), VEC_CH_PK);
	cr_assert_eq(jnum(o, "version"), 1);
	cJSON_Delete(o);

	n = tu_unhex(frame, sizeof frame, VEC_ENROLL_FRAME);
	cr_assert_eq(ig_record_decode(frame, n, &r), IG_FRAME_OK);
	char *text = ig_record_to_json(&r);
	cr_assert_str_eq(text,
	                 "{\"index\":1,\"ts\":1700000000001,\"type\":\"enroll\",\"hash\":\"" VEC_ENROLL_HASH
	                 "\",\"prev\":\"" VEC_GENESIS_HASH "\",\"id\":\"dev1\",\"role\":\"device\",\"pubkey\":\"" VEC_DEV_PK
	                 "\",\"by\":\"offline:root\"}");
	free(text);

	n = tu_unhex(frame, sizeof frame, VEC_REVOKE_FRAME);
	cr_assert_eq(ig_record_decode(frame, n, &r), IG_FRAME_OK);
	o = json_of(&r);
	cr_assert_str_eq(jstr(o, "type"), "revoke");
	cr_assert_str_eq(jstr(o, "id"), "dev1");
	cr_assert_str_eq(jstr(o, "reason"), "lost");
	cr_assert_str_eq(jstr(o, "by"), "offline:root");
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(o, "body"));
	cJSON_Delete(o);
}

Test(json, unknown_and_undecodable_types, .init = setup)
{
	const uint8_t body[] = {0xde, 0xad, 0xbe, 0xef};
	uint8_t frame[128];
	ig_record r;
	make_frame(frame, sizeof frame, 3, 1000, body, sizeof body, &r);
	cJSON *o = json_of(&r);
	cr_assert_str_eq(jstr(o, "type"), "unknown");
	cr_assert_eq(jnum(o, "type_code"), 1000);
	cr_assert_str_eq(jstr(o, "body"), "deadbeef");
	cJSON_Delete(o);

	/* A known type whose body is broken is still rendered, with its bytes. */
	make_frame(frame, sizeof frame, 4, IG_REC_ENROLL, body, sizeof body, &r);
	o = json_of(&r);
	cr_assert_str_eq(jstr(o, "type"), "enroll");
	cr_assert_str_eq(jstr(o, "body"), "deadbeef");
	cr_assert_not_null(cJSON_GetObjectItemCaseSensitive(o, "error"));
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(o, "type_code"));
	cJSON_Delete(o);

	make_frame(frame, sizeof frame, 5, 0, NULL, 0, &r);
	o = json_of(&r);
	cr_assert_eq(jnum(o, "type_code"), 0);
	cr_assert_str_eq(jstr(o, "body"), "");
	cJSON_Delete(o);
}

Test(json, utf8_reason_survives, .init = setup)
{
	ig_revoke rv = {0};
	strcpy(rv.id, "d");
	strcpy(rv.reason, "caf\xc3\xa9 \"quoted\" \\ slash");
	strcpy(rv.by, "admin");
	uint8_t body[512], frame[600];
	int bl = ig_record_revoke_encode(body, sizeof body, &rv);
	cr_assert_gt(bl, 0);
	ig_record r;
	make_frame(frame, sizeof frame, 1, IG_REC_REVOKE, body, (uint32_t)bl, &r);
	cJSON *o = json_of(&r);
	cr_assert_str_eq(jstr(o, "reason"), rv.reason);
	cJSON_Delete(o);
}

/* ---- key-service records (join codes, session keys, attestation) -------- */

/* Bodies pinned here and printed in docs/LEDGER.md (section 12); computed
 * independently (Python, hashlib) from the documented TLV layout. */
#define VEC_CODE_HASH "ecbd279cae1730819119a4681232f876fd6aab5e1abcc50c532e49e909315234"
#define VEC_JOIN_CODE_BODY                                                                       \
	"0100080102030405060708020020ecbd279cae1730819119a4681232f876fd6aab5e1abcc50c532e49e90931" \
	"523403000101040008000000006555428005000661646d696e31"
#define VEC_JOIN_USED_BODY "010008010203040506070802000464657639"
#define VEC_ENROLL_JOIN_BODY                                                                     \
	"010004646576390200010103002029acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc932296" \
	"6dd70400156a6f696e3a303130323033303430353036303730380500080102030405060708"
#define VEC_KEY_ISSUED_BODY "010010404142434445464748494a4b4c4d4e4f0200016103000162040008000000006553ff1005000102"
#define VEC_MEASUREMENT "5cb0645e6260cd1c687dcdcbf6f82b8533b4a5ca2cf33f7cd02964d1dfdd4fa2"
#define VEC_ATTEST_BODY "010001610200205cb0645e6260cd1c687dcdcbf6f82b8533b4a5ca2cf33f7cd02964d1dfdd4fa203000101"

static ig_join_code_rec sample_join_code(void)
{
	ig_join_code_rec j;
	memset(&j, 0, sizeof j);
	tu_seq_bytes(j.code_id, 8, 1);
	cr_assert_eq(ig_hex_decode(j.hash, 32, VEC_CODE_HASH, 64), IG_OK);
	j.role = IG_ROLE_DEVICE;
	j.expires_at = 1700086400;
	strcpy(j.by, "admin1");
	return j;
}

static ig_join_used sample_join_used(void)
{
	ig_join_used j;
	memset(&j, 0, sizeof j);
	tu_seq_bytes(j.code_id, 8, 1);
	strcpy(j.id, "dev9");
	return j;
}

static ig_enroll sample_join_enroll(void)
{
	ig_enroll e;
	memset(&e, 0, sizeof e);
	strcpy(e.id, "dev9");
	e.role = IG_ROLE_DEVICE;
	cr_assert_eq(ig_hex_decode(e.pk, 32, VEC_DEV_PK, 64), IG_OK);
	strcpy(e.by, "join:0102030405060708");
	e.has_join_code = true;
	tu_seq_bytes(e.join_code, 8, 1);
	return e;
}

static ig_key_issued sample_key_issued(void)
{
	ig_key_issued k;
	memset(&k, 0, sizeof k);
	tu_seq_bytes(k.key_id, 16, 0x40);
	strcpy(k.a, "a");
	strcpy(k.b, "b");
	k.expires_at = 1700003600;
	k.suite = 2;
	return k;
}

static ig_attest sample_attest(void)
{
	ig_attest a;
	memset(&a, 0, sizeof a);
	strcpy(a.id, "a");
	cr_assert_eq(ig_hex_decode(a.measurement, 32, VEC_MEASUREMENT, 64), IG_OK);
	a.allowed = 1;
	return a;
}

Test(keyservice, pinned_bodies_encode_and_decode, .init = setup)
{
	uint8_t body[512];
	ig_error err = {0};
	int n;

	ig_join_code_rec jc = sample_join_code(), jc2;
	n = ig_record_join_code_encode(body, sizeof body, &jc);
	cr_assert_eq(n, 70);
	tu_assert_hex(body, (size_t)n, VEC_JOIN_CODE_BODY);
	cr_assert_eq(ig_record_join_code_decode(body, (size_t)n, &jc2, &err), IG_OK, "%s", err.msg);
	cr_assert_arr_eq(jc2.code_id, jc.code_id, 8);
	cr_assert_arr_eq(jc2.hash, jc.hash, 32);
	cr_assert_eq(jc2.role, IG_ROLE_DEVICE);
	cr_assert_eq(jc2.expires_at, 1700086400u);
	cr_assert_str_eq(jc2.by, "admin1");

	ig_join_used ju = sample_join_used(), ju2;
	n = ig_record_join_used_encode(body, sizeof body, &ju);
	tu_assert_hex(body, (size_t)n, VEC_JOIN_USED_BODY);
	cr_assert_eq(ig_record_join_used_decode(body, (size_t)n, &ju2, &err), IG_OK, "%s", err.msg);
	cr_assert_arr_eq(ju2.code_id, ju.code_id, 8);
	cr_assert_str_eq(ju2.id, "dev9");

	ig_enroll en = sample_join_enroll(), en2;
	n = ig_record_enroll_encode(body, sizeof body, &en);
	tu_assert_hex(body, (size_t)n, VEC_ENROLL_JOIN_BODY);
	cr_assert_eq(ig_record_enroll_decode(body, (size_t)n, &en2, &err), IG_OK, "%s", err.msg);
	cr_assert(en2.has_join_code);
	cr_assert_arr_eq(en2.join_code, en.join_code, 8);
	cr_assert_str_eq(en2.by, "join:0102030405060708");

	ig_key_issued ki = sample_key_issued(), ki2;
	n = ig_record_key_issued_encode(body, sizeof body, &ki);
	tu_assert_hex(body, (size_t)n, VEC_KEY_ISSUED_BODY);
	cr_assert_eq(ig_record_key_issued_decode(body, (size_t)n, &ki2, &err), IG_OK, "%s", err.msg);
	cr_assert_arr_eq(ki2.key_id, ki.key_id, 16);
	cr_assert_str_eq(ki2.a, "a");
	cr_assert_str_eq(ki2.b, "b");
	cr_assert_eq(ki2.expires_at, 1700003600u);
	cr_assert_eq(ki2.suite, 2);

	ig_attest at = sample_attest(), at2;
	n = ig_record_attest_encode(body, sizeof body, &at);
	tu_assert_hex(body, (size_t)n, VEC_ATTEST_BODY);
	cr_assert_eq(ig_record_attest_decode(body, (size_t)n, &at2, &err), IG_OK, "%s", err.msg);
	cr_assert_str_eq(at2.id, "a");
	cr_assert_arr_eq(at2.measurement, at.measurement, 32);
	cr_assert_eq(at2.allowed, 1);
}

Test(keyservice, doc_prints_the_bodies)
{
	const char *doc = tu_read_doc("LEDGER.md");
	const char *vecs[] = {VEC_CODE_HASH,       VEC_JOIN_CODE_BODY, VEC_JOIN_USED_BODY, VEC_ENROLL_JOIN_BODY,
	                      VEC_KEY_ISSUED_BODY, VEC_MEASUREMENT,    VEC_ATTEST_BODY};
	for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++)
		cr_assert_not_null(strstr(doc, vecs[i]), "docs/LEDGER.md lacks key-service vector %zu (%.16s...)", i,
		                   vecs[i]);
}

Test(keyservice, enroll_without_code_keeps_old_bytes, .init = setup)
{
	/* has_join_code false: no tag 5, the body is byte-identical to the
	 * issue-1 layout (the doc vector). */
	uint8_t ch_pk[32], dev_pk[32], body[256];
	vec_keys(ch_pk, dev_pk);
	ig_enroll e = {.role = IG_ROLE_DEVICE};
	strcpy(e.id, "dev1");
	memcpy(e.pk, dev_pk, 32);
	strcpy(e.by, "offline:root");
	memset(e.join_code, 0xab, 8); /* ignored without has_join_code */
	int n = ig_record_enroll_encode(body, sizeof body, &e);
	cr_assert_eq(n, 61);
	uint8_t frame[512];
	size_t fl = tu_unhex(frame, sizeof frame, VEC_ENROLL_FRAME);
	cr_assert_arr_eq(body, frame + 60, fl - 64);
	ig_enroll d;
	ig_error err = {0};
	cr_assert_eq(ig_record_enroll_decode(body, (size_t)n, &d, &err), IG_OK);
	cr_assert_not(d.has_join_code);
}

Test(keyservice, enroll_join_code_tag_rules, .init = setup)
{
	uint8_t pk[32] = {1}, role = IG_ROLE_DEVICE, code[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, body[512];
	ig_enroll e;
	ig_error err = {0};
	const tlv_spec base[] = {
		{IG_TAG_ENROLL_ID, "dev1", 4}, {IG_TAG_ENROLL_ROLE, &role, 1},
		{IG_TAG_ENROLL_PK, pk, 32},    {IG_TAG_ENROLL_BY, "join:x", 6},
	};
	tlv_spec s[6];
	memcpy(s, base, sizeof base);
	/* Wrong lengths. */
	const size_t bad_lens[] = {0, 7, 9};
	for (size_t i = 0; i < 3; i++) {
		s[4] = (tlv_spec){IG_TAG_ENROLL_JOIN_CODE, code, bad_lens[i]};
		size_t n = build(body, sizeof body, s, 5);
		cr_assert_eq(ig_record_enroll_decode(body, n, &e, &err), IG_ERR_CORRUPT, "len %zu", bad_lens[i]);
		cr_assert_not_null(strstr(err.msg, "'join_code'"), "%s", err.msg);
	}
	/* Twice. */
	s[4] = (tlv_spec){IG_TAG_ENROLL_JOIN_CODE, code, 8};
	s[5] = s[4];
	size_t n = build(body, sizeof body, s, 6);
	cr_assert_eq(ig_record_enroll_decode(body, n, &e, &err), IG_ERR_CORRUPT);
	cr_assert_not_null(strstr(err.msg, "twice"), "%s", err.msg);
	/* Once, anywhere. */
	tlv_spec first[5] = {s[4], base[0], base[1], base[2], base[3]};
	n = build(body, sizeof body, first, 5);
	cr_assert_eq(ig_record_enroll_decode(body, n, &e, &err), IG_OK, "%s", err.msg);
	cr_assert(e.has_join_code);
	cr_assert_arr_eq(e.join_code, code, 8);
}

/* Each required tag missing and each twice, for one typed decoder. */
typedef int (*decode_fn)(const uint8_t *, size_t, void *, ig_error *);

static void check_required(const char *what, decode_fn decode, void *out, const tlv_spec *full, size_t count,
                           const char *const *names)
{
	uint8_t body[512];
	ig_error err = {0};
	size_t n = build(body, sizeof body, full, count);
	cr_assert_eq(decode(body, n, out, &err), IG_OK, "%s: %s", what, err.msg);
	for (size_t skip = 0; skip < count; skip++) {
		tlv_spec s[8];
		size_t k = 0;
		for (size_t i = 0; i < count; i++)
			if (i != skip)
				s[k++] = full[i];
		n = build(body, sizeof body, s, k);
		cr_assert_eq(decode(body, n, out, &err), IG_ERR_CORRUPT, "%s without %s", what, names[skip]);
		cr_assert_not_null(strstr(err.msg, names[skip]), "%s: %s", what, err.msg);
		cr_assert_not_null(strstr(err.msg, "missing"), "%s: %s", what, err.msg);
		cr_assert_not_null(strstr(err.msg, what), "%s: %s", what, err.msg);

		tlv_spec d[9];
		memcpy(d, full, count * sizeof *full);
		d[count] = full[skip];
		n = build(body, sizeof body, d, count + 1);
		cr_assert_eq(decode(body, n, out, &err), IG_ERR_CORRUPT, "%s with %s twice", what, names[skip]);
		cr_assert_not_null(strstr(err.msg, "twice"), "%s: %s", what, err.msg);
	}
	/* Unknown tags ignored; truncation is corrupt. */
	tlv_spec u[9];
	memcpy(u, full, count * sizeof *full);
	u[count] = (tlv_spec){200, "future", 6};
	n = build(body, sizeof body, u, count + 1);
	cr_assert_eq(decode(body, n, out, &err), IG_OK, "%s: %s", what, err.msg);
	n = build(body, sizeof body, full, count);
	for (size_t cut = 1; cut < n; cut++)
		cr_assert_eq(decode(body, n - cut, out, &err), IG_ERR_CORRUPT, "%s cut %zu", what, cut);
}

static int dec_join_code(const uint8_t *b, size_t n, void *o, ig_error *e) { return ig_record_join_code_decode(b, n, o, e); }
static int dec_join_used(const uint8_t *b, size_t n, void *o, ig_error *e) { return ig_record_join_used_decode(b, n, o, e); }
static int dec_key_issued(const uint8_t *b, size_t n, void *o, ig_error *e) { return ig_record_key_issued_decode(b, n, o, e); }
static int dec_attest(const uint8_t *b, size_t n, void *o, ig_error *e) { return ig_record_attest_decode(b, n, o, e); }

Test(keyservice, missing_duplicate_unknown_truncated, .init = setup)
{
	uint8_t id8[8] = {1, 2, 3, 4, 5, 6, 7, 8}, h32[32] = {9}, id16[16] = {4}, exp[8] = {0, 0, 0, 0, 1, 2, 3, 4};
	uint8_t role = 1, suite = 1, allowed = 2;

	ig_join_code_rec jc;
	const tlv_spec jcs[] = {{1, id8, 8}, {2, h32, 32}, {3, &role, 1}, {4, exp, 8}, {5, "admin", 5}};
	const char *const jcn[] = {"'code_id'", "'code_hash'", "'role'", "'expires_at'", "'by'"};
	check_required("join_code", dec_join_code, &jc, jcs, 5, jcn);

	ig_join_used ju;
	const tlv_spec jus[] = {{1, id8, 8}, {2, "dev9", 4}};
	const char *const jun[] = {"'code_id'", "'id'"};
	check_required("join_used", dec_join_used, &ju, jus, 2, jun);

	ig_key_issued ki;
	const tlv_spec kis[] = {{1, id16, 16}, {2, "a", 1}, {3, "b", 1}, {4, exp, 8}, {5, &suite, 1}};
	const char *const kin[] = {"'key_id'", "'a'", "'b'", "'expires_at'", "'suite'"};
	check_required("key_issued", dec_key_issued, &ki, kis, 5, kin);
	uint8_t body[256];
	size_t n = build(body, sizeof body, kis, 5);
	cr_assert_eq(ig_record_key_issued_decode(body, n, &ki, NULL), IG_OK);
	cr_assert_eq(ki.expires_at, 0x01020304u);
	cr_assert_eq(ki.suite, 1);

	ig_attest at;
	const tlv_spec ats[] = {{1, "dev1", 4}, {2, h32, 32}, {3, &allowed, 1}};
	const char *const atn[] = {"'id'", "'measurement'", "'allowed'"};
	check_required("attest", dec_attest, &at, ats, 3, atn);
	n = build(body, sizeof body, ats, 3);
	cr_assert_eq(ig_record_attest_decode(body, n, &at, NULL), IG_OK);
	cr_assert_eq(at.allowed, 2);
	cr_assert_str_eq(at.id, "dev1");
}

Test(keyservice, bad_field_values, .init = setup)
{
	uint8_t body[512], id8[9] = {0}, h33[33] = {0}, exp9[9] = {0}, id17[17] = {0};
	ig_error err = {0};
	uint8_t r0 = 0, r5 = IG_ROLE_COUNT, r1 = 1, s0 = 0, s1 = 1, s3 = 3, a3 = 3, a0 = 0;
	const uint8_t two[2] = {1, 1};
	struct {
		decode_fn fn;
		void *out;
		tlv_spec t[5];
		size_t n;
		const char *field;
	} cases[] = {
		{dec_join_code, NULL, {{1, id8, 7}, {2, h33, 32}, {3, &r1, 1}, {4, exp9, 8}, {5, "a", 1}}, 5, "'code_id'"},
		{dec_join_code, NULL, {{1, id8, 8}, {2, h33, 33}, {3, &r1, 1}, {4, exp9, 8}, {5, "a", 1}}, 5, "'code_hash'"},
		{dec_join_code, NULL, {{1, id8, 8}, {2, h33, 32}, {3, &r0, 1}, {4, exp9, 8}, {5, "a", 1}}, 5, "'role'"},
		{dec_join_code, NULL, {{1, id8, 8}, {2, h33, 32}, {3, &r5, 1}, {4, exp9, 8}, {5, "a", 1}}, 5, "'role'"},
		{dec_join_code, NULL, {{1, id8, 8}, {2, h33, 32}, {3, two, 2}, {4, exp9, 8}, {5, "a", 1}}, 5, "'role'"},
		{dec_join_code, NULL, {{1, id8, 8}, {2, h33, 32}, {3, &r1, 1}, {4, exp9, 9}, {5, "a", 1}}, 5, "'expires_at'"},
		{dec_join_code, NULL, {{1, id8, 8}, {2, h33, 32}, {3, &r1, 1}, {4, exp9, 8}, {5, "", 0}}, 5, "'by'"},
		{dec_join_code, NULL, {{1, id8, 8}, {2, h33, 32}, {3, &r1, 1}, {4, exp9, 8}, {5, "a\nb", 3}}, 5, "'by'"},
		{dec_join_used, NULL, {{1, id8, 9}, {2, "dev9", 4}}, 2, "'code_id'"},
		{dec_join_used, NULL, {{1, id8, 8}, {2, "dev 9", 5}}, 2, "'id'"},
		{dec_join_used, NULL, {{1, id8, 8}, {2, "", 0}}, 2, "'id'"},
		{dec_key_issued, NULL, {{1, id17, 15}, {2, "a", 1}, {3, "b", 1}, {4, exp9, 8}, {5, &s1, 1}}, 5, "'key_id'"},
		{dec_key_issued, NULL, {{1, id17, 17}, {2, "a", 1}, {3, "b", 1}, {4, exp9, 8}, {5, &s1, 1}}, 5, "'key_id'"},
		{dec_key_issued, NULL, {{1, id17, 16}, {2, "a/", 2}, {3, "b", 1}, {4, exp9, 8}, {5, &s1, 1}}, 5, "'a'"},
		{dec_key_issued, NULL, {{1, id17, 16}, {2, "a", 1}, {3, "", 0}, {4, exp9, 8}, {5, &s1, 1}}, 5, "'b'"},
		{dec_key_issued, NULL, {{1, id17, 16}, {2, "a", 1}, {3, "b", 1}, {4, exp9, 4}, {5, &s1, 1}}, 5, "'expires_at'"},
		{dec_key_issued, NULL, {{1, id17, 16}, {2, "a", 1}, {3, "b", 1}, {4, exp9, 8}, {5, &s0, 1}}, 5, "'suite'"},
		{dec_key_issued, NULL, {{1, id17, 16}, {2, "a", 1}, {3, "b", 1}, {4, exp9, 8}, {5, &s3, 1}}, 5, "'suite'"},
		{dec_key_issued, NULL, {{1, id17, 16}, {2, "a", 1}, {3, "b", 1}, {4, exp9, 8}, {5, two, 2}}, 5, "'suite'"},
		{dec_attest, NULL, {{1, "a+b", 3}, {2, h33, 32}, {3, &a0, 1}}, 3, "'id'"},
		{dec_attest, NULL, {{1, "a", 1}, {2, h33, 31}, {3, &a0, 1}}, 3, "'measurement'"},
		{dec_attest, NULL, {{1, "a", 1}, {2, h33, 32}, {3, &a3, 1}}, 3, "'allowed'"},
		{dec_attest, NULL, {{1, "a", 1}, {2, h33, 32}, {3, two, 2}}, 3, "'allowed'"},
	};
	union {
		ig_join_code_rec jc;
		ig_join_used ju;
		ig_key_issued ki;
		ig_attest at;
	} out;
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		size_t n = build(body, sizeof body, cases[c].t, cases[c].n);
		cr_assert_eq(cases[c].fn(body, n, &out, &err), IG_ERR_CORRUPT, "case %zu accepted", c);
		cr_assert_not_null(strstr(err.msg, cases[c].field), "case %zu: %s", c, err.msg);
	}
}

Test(keyservice, encoders_refuse_bad_fields, .init = setup)
{
	uint8_t body[512];
	ig_join_code_rec jc = sample_join_code();
	jc.role = IG_ROLE_NONE;
	cr_assert_eq(ig_record_join_code_encode(body, sizeof body, &jc), IG_ERR_INVAL);
	jc = sample_join_code();
	jc.by[0] = '\0';
	cr_assert_eq(ig_record_join_code_encode(body, sizeof body, &jc), IG_ERR_INVAL);
	jc = sample_join_code();
	for (int cap = 0; cap < 70; cap++)
		cr_assert_lt(ig_record_join_code_encode(body, (size_t)cap, &jc), 0, "cap %d", cap);

	ig_join_used ju = sample_join_used();
	strcpy(ju.id, "bad id");
	cr_assert_eq(ig_record_join_used_encode(body, sizeof body, &ju), IG_ERR_INVAL);

	ig_key_issued ki = sample_key_issued();
	ki.suite = 0;
	cr_assert_eq(ig_record_key_issued_encode(body, sizeof body, &ki), IG_ERR_INVAL);
	ki.suite = 3;
	cr_assert_eq(ig_record_key_issued_encode(body, sizeof body, &ki), IG_ERR_INVAL);
	ki = sample_key_issued();
	ki.b[0] = '\0';
	cr_assert_eq(ig_record_key_issued_encode(body, sizeof body, &ki), IG_ERR_INVAL);
	ki = sample_key_issued();
	memset(ki.a, 'a', sizeof ki.a); /* unterminated */
	cr_assert_eq(ig_record_key_issued_encode(body, sizeof body, &ki), IG_ERR_INVAL);

	ig_attest at = sample_attest();
	at.allowed = 3;
	cr_assert_eq(ig_record_attest_encode(body, sizeof body, &at), IG_ERR_INVAL);
	at = sample_attest();
	strcpy(at.id, "");
	cr_assert_eq(ig_record_attest_encode(body, sizeof body, &at), IG_ERR_INVAL);
}

/* Parses and frees a rendered record. */
static cJSON *json_of_text(char *text)
{
	cr_assert_null(strchr(text, '\n'));
	cJSON *o = cJSON_Parse(text);
	cr_assert_not_null(o, "bad JSON: %s", text);
	free(text);
	return o;
}

/* Frames a body and renders it. */
static char *render(uint16_t type, const uint8_t *body, int len)
{
	static uint8_t frame[1024];
	cr_assert_gt(len, 0);
	ig_record r;
	/* index 200: the fixture's prev_hash bytes (c8..e7) cannot look like a
	 * vector value. */
	make_frame(frame, sizeof frame, 200, type, body, (uint32_t)len, &r);
	char *text = ig_record_to_json(&r);
	cr_assert_not_null(text);
	return text;
}

/* The object has exactly these typed keys besides index/ts/type/hash/prev. */
static void assert_keys(const cJSON *o, const char *const *keys, size_t count)
{
	size_t seen = 0;
	for (const cJSON *c = o->child; c; c = c->next) {
		if (!strcmp(c->string, "index") || !strcmp(c->string, "ts") || !strcmp(c->string, "type") ||
		    !strcmp(c->string, "hash") || !strcmp(c->string, "prev"))
			continue;
		bool known = false;
		for (size_t i = 0; i < count; i++)
			known = known || !strcmp(c->string, keys[i]);
		cr_assert(known, "unexpected JSON field \"%s\"", c->string);
		seen++;
	}
	cr_assert_eq(seen, count);
}

Test(keyservice, json_views, .init = setup)
{
	uint8_t body[512];
	cJSON *o;
	char *text;

	ig_join_code_rec jc = sample_join_code();
	text = render(IG_REC_JOIN_CODE, body, ig_record_join_code_encode(body, sizeof body, &jc));
	/* The code's secret half (10..1f in the vector) never appears: only the
	 * id and the hash are recorded. */
	cr_assert_null(strstr(text, "101112131415161718191a1b1c1d1e1f"), "%s", text);
	o = json_of_text(text);
	cr_assert_str_eq(jstr(o, "type"), "join_code");
	cr_assert_str_eq(jstr(o, "code_id"), "0102030405060708");
	cr_assert_str_eq(jstr(o, "code_hash"), VEC_CODE_HASH);
	cr_assert_str_eq(jstr(o, "role"), "device");
	cr_assert_eq(jnum(o, "expires_at"), 1700086400.0);
	cr_assert_str_eq(jstr(o, "by"), "admin1");
	const char *const jck[] = {"code_id", "code_hash", "role", "expires_at", "by"};
	assert_keys(o, jck, 5);
	cJSON_Delete(o);

	ig_join_used ju = sample_join_used();
	o = json_of_text(render(IG_REC_JOIN_USED, body, ig_record_join_used_encode(body, sizeof body, &ju)));
	cr_assert_str_eq(jstr(o, "type"), "join_used");
	cr_assert_str_eq(jstr(o, "code_id"), "0102030405060708");
	cr_assert_str_eq(jstr(o, "id"), "dev9");
	const char *const juk[] = {"code_id", "id"};
	assert_keys(o, juk, 2);
	cJSON_Delete(o);

	ig_enroll en = sample_join_enroll();
	o = json_of_text(render(IG_REC_ENROLL, body, ig_record_enroll_encode(body, sizeof body, &en)));
	cr_assert_str_eq(jstr(o, "join_code"), "0102030405060708");
	cr_assert_str_eq(jstr(o, "by"), "join:0102030405060708");
	const char *const enk[] = {"id", "role", "pubkey", "by", "join_code"};
	assert_keys(o, enk, 5);
	cJSON_Delete(o);
	en.has_join_code = false;
	o = json_of_text(render(IG_REC_ENROLL, body, ig_record_enroll_encode(body, sizeof body, &en)));
	assert_keys(o, enk, 4);
	cr_assert_null(cJSON_GetObjectItemCaseSensitive(o, "join_code"));
	cJSON_Delete(o);

	ig_key_issued ki = sample_key_issued();
	o = json_of_text(render(IG_REC_KEY_ISSUED, body, ig_record_key_issued_encode(body, sizeof body, &ki)));
	cr_assert_str_eq(jstr(o, "type"), "key_issued");
	cr_assert_str_eq(jstr(o, "key_id"), "404142434445464748494a4b4c4d4e4f");
	cr_assert_str_eq(jstr(o, "a"), "a");
	cr_assert_str_eq(jstr(o, "b"), "b");
	cr_assert_eq(jnum(o, "expires_at"), 1700003600.0);
	cr_assert_str_eq(jstr(o, "suite"), "xchacha20poly1305");
	const char *const kik[] = {"key_id", "a", "b", "expires_at", "suite"};
	assert_keys(o, kik, 5);
	cJSON_Delete(o);
	ki.suite = 1;
	o = json_of_text(render(IG_REC_KEY_ISSUED, body, ig_record_key_issued_encode(body, sizeof body, &ki)));
	cr_assert_str_eq(jstr(o, "suite"), "aes256gcm");
	cJSON_Delete(o);

	ig_attest at = sample_attest();
	const char *allowed[] = {"no", "yes", "unlisted"};
	for (uint8_t v = 0; v <= 2; v++) {
		at.allowed = v;
		o = json_of_text(render(IG_REC_ATTEST, body, ig_record_attest_encode(body, sizeof body, &at)));
		cr_assert_str_eq(jstr(o, "type"), "attest");
		cr_assert_str_eq(jstr(o, "id"), "a");
		cr_assert_str_eq(jstr(o, "measurement"), VEC_MEASUREMENT);
		cr_assert_str_eq(jstr(o, "allowed"), allowed[v]);
		const char *const atk[] = {"id", "measurement", "allowed"};
		assert_keys(o, atk, 3);
		cJSON_Delete(o);
	}
}

Test(keyservice, json_of_broken_bodies_falls_back, .init = setup)
{
	const uint8_t junk[] = {0x01, 0x00, 0x01, 0x00};
	const uint16_t types[] = {IG_REC_JOIN_CODE, IG_REC_JOIN_USED, IG_REC_KEY_ISSUED, IG_REC_ATTEST};
	for (size_t i = 0; i < 4; i++) {
		cJSON *o = json_of_text(render(types[i], junk, sizeof junk));
		cr_assert_str_eq(jstr(o, "type"), ig_record_type_name(types[i]));
		cr_assert_str_eq(jstr(o, "error"), "body does not decode");
		cr_assert_str_eq(jstr(o, "body"), "01000100");
		cJSON_Delete(o);
	}
}

Test(keyservice, fuzz_decoders, .init = setup)
{
	uint8_t body[600], val[80];
	int accepted = 0;
	for (int iter = 0; iter < 4000; iter++) {
		size_t pos = 0;
		int count = (int)(tu_rand() % 8);
		for (int k = 0; k < count; k++) {
			uint8_t tag = (uint8_t)(1 + tu_rand() % 5);
			static const size_t lens[] = {1, 8, 16, 32, 4, 0, 2};
			size_t len = lens[tu_rand() % 7];
			for (size_t i = 0; i < len; i++)
				val[i] = (uint8_t)("ab1\x01\x02\x00-"[tu_rand() % 7]);
			(void)ig_record_tlv_put(body, sizeof body, &pos, tag, val, len);
		}
		if (tu_rand() % 4 == 0 && pos > 0)
			pos -= (size_t)(tu_rand() % pos);
		uint8_t *p = malloc(pos ? pos : 1);
		cr_assert_not_null(p);
		memcpy(p, body, pos);
		ig_join_code_rec jc;
		ig_join_used ju;
		ig_key_issued ki;
		ig_attest at;
		ig_enroll en;
		if (ig_record_join_code_decode(p, pos, &jc, NULL) == IG_OK) {
			accepted++;
			cr_assert(jc.role >= IG_ROLE_DEVICE && jc.role <= IG_ROLE_ADMIN);
		}
		if (ig_record_join_used_decode(p, pos, &ju, NULL) == IG_OK) {
			accepted++;
			cr_assert(ig_id_valid(ju.id, strlen(ju.id)));
		}
		if (ig_record_key_issued_decode(p, pos, &ki, NULL) == IG_OK) {
			accepted++;
			cr_assert(ki.suite == 1 || ki.suite == 2);
		}
		if (ig_record_attest_decode(p, pos, &at, NULL) == IG_OK) {
			accepted++;
			cr_assert_leq(at.allowed, 2);
		}
		(void)ig_record_enroll_decode(p, pos, &en, NULL);
		/* JSON never fails, whatever the body. */
		for (uint16_t t = IG_REC_JOIN_CODE; t <= IG_REC_ATTEST; t++) {
			ig_record r = {.index = 1, .type = t, .body = p, .body_len = (uint32_t)pos};
			char *j = ig_record_to_json(&r);
			cr_assert_not_null(j);
			cJSON *o = cJSON_Parse(j);
			cr_assert_not_null(o, "invalid JSON: %s", j);
			cJSON_Delete(o);
			free(j);
		}
		free(p);
	}
	cr_assert_gt(accepted, 0, "fuzz never produced a valid key-service body");
}
