/*
 * test_aead.c: AEAD suites, the m2m envelope and the replay window.
 *
 * Why this exists: a session key protects every device-to-device message.
 * These tests pin the envelope bytes for both suites (vectors computed
 * independently, with OpenSSL's AES-GCM and ChaCha20-Poly1305 plus a
 * hand-written HChaCha20; also printed in docs/PROTOCOL.md), then try to
 * break it: every-byte tamper, truncation, wrong topic / direction / key,
 * and the replay window at its exact edges.
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_aead.h"
#include "ig_m2m.h"
#include "ig_replay.h"
#include "testutil.h"

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	ig_suite_force_fallback(false);
	unsetenv("IOTGUARD_FORCE_XCHACHA");
}

static const ig_suite both[] = {IG_SUITE_AES256GCM, IG_SUITE_XCHACHA20POLY1305};

/* AES-256-GCM needs AES-NI: on a CPU without it the AES half is skipped. */
static bool usable(ig_suite s)
{
	return ig_suite_available(s);
}

/* ---- pinned vectors ------------------------------------------------------ */

#define VEC_TOPIC "iotguard/demo/m2m/b/a"
#define VEC_AAD                                                                                  \
	"696f7467756172642d6d326d2d763100696f7467756172642f64656d6f2f6d326d2f622f6100404142434445" \
	"464748494a4b4c4d4e4f0000000000000001"
#define VEC_M2M_AES                                                                              \
	"0101404142434445464748494a4b4c4d4e4f00000000000000017db3d3902b52eccf2eb29d18a45889c491f3ac" \
	"4652"
#define VEC_M2M_XCHACHA                                                                          \
	"0102404142434445464748494a4b4c4d4e4f00000000000000012d11b1dd8fd5688fead5449995879d02d72549" \
	"8517"

static void vec_key(uint8_t key[32], uint8_t key_id[16])
{
	tu_seq_bytes(key, 32, 0);
	tu_seq_bytes(key_id, 16, 0x40);
}

Test(m2m, pinned_vectors, .init = setup)
{
	uint8_t key[32], kid[16], msg[128], pt[64];
	vec_key(key, kid);
	const char *vecs[] = {VEC_M2M_AES, VEC_M2M_XCHACHA};
	for (size_t i = 0; i < 2; i++) {
		if (!usable(both[i])) {
			cr_log_warn("AES-NI unavailable: AES-256-GCM vector not checked");
			continue;
		}
		int n = ig_m2m_seal(msg, sizeof msg, both[i], key, kid, 0, 1, VEC_TOPIC, (const uint8_t *)"hello", 5);
		cr_assert_eq(n, 47);
		tu_assert_hex(msg, (size_t)n, vecs[i]);

		uint8_t in[128];
		size_t len = tu_unhex(in, sizeof in, vecs[i]);
		ig_m2m_header h;
		int m = ig_m2m_open(pt, sizeof pt, in, len, key, 0, VEC_TOPIC, &h);
		cr_assert_eq(m, 5);
		cr_assert_arr_eq(pt, "hello", 5);
		cr_assert_eq(h.version, 1);
		cr_assert_eq(h.suite, both[i]);
		cr_assert_eq(h.counter, 1u);
		cr_assert_arr_eq(h.key_id, kid, 16);
	}
}

Test(m2m, vector_via_generic_aead, .init = setup)
{
	/* The envelope is nothing more than the documented nonce and AAD fed to
	 * the generic AEAD: rebuild it from the pieces. */
	uint8_t key[32], kid[16], aad[128], ct[64], nonce[24] = {0};
	vec_key(key, kid);
	size_t aad_len = tu_unhex(aad, sizeof aad, VEC_AAD);
	cr_assert_eq(aad_len, 16 + strlen(VEC_TOPIC) + 1 + 16 + 8);
	nonce[23] = 1;
	int n = ig_aead_seal(IG_SUITE_XCHACHA20POLY1305, ct, sizeof ct, (const uint8_t *)"hello", 5, aad, aad_len,
	                     nonce, key);
	cr_assert_eq(n, 21);
	tu_assert_hex(ct, 21, VEC_M2M_XCHACHA + 2 * IG_M2M_HEADER_BYTES);
	if (usable(IG_SUITE_AES256GCM)) {
		uint8_t n12[12] = {0};
		n12[11] = 1;
		n = ig_aead_seal(IG_SUITE_AES256GCM, ct, sizeof ct, (const uint8_t *)"hello", 5, aad, aad_len, n12, key);
		cr_assert_eq(n, 21);
		tu_assert_hex(ct, 21, VEC_M2M_AES + 2 * IG_M2M_HEADER_BYTES);
	}
}

Test(m2m, doc_prints_the_vectors)
{
	const char *doc = tu_read_doc("PROTOCOL.md");
	const char *vecs[] = {VEC_AAD, VEC_M2M_AES, VEC_M2M_XCHACHA};
	for (size_t i = 0; i < 3; i++)
		cr_assert_not_null(strstr(doc, vecs[i]), "docs/PROTOCOL.md lacks m2m vector %zu", i);
}

/* ---- suites -------------------------------------------------------------- */

Test(suite, names_and_nonce_sizes, .init = setup)
{
	cr_assert_str_eq(ig_suite_name(IG_SUITE_AES256GCM), "aes256gcm");
	cr_assert_str_eq(ig_suite_name(IG_SUITE_XCHACHA20POLY1305), "xchacha20poly1305");
	cr_assert_str_eq(ig_suite_name(IG_SUITE_NONE), "none");
	cr_assert_str_eq(ig_suite_name((ig_suite)7), "none");
	cr_assert_eq(ig_suite_parse("aes256gcm"), IG_SUITE_AES256GCM);
	cr_assert_eq(ig_suite_parse("xchacha20poly1305"), IG_SUITE_XCHACHA20POLY1305);
	cr_assert_eq(ig_suite_parse("AES256GCM"), IG_SUITE_NONE);
	cr_assert_eq(ig_suite_parse("aes256gcm "), IG_SUITE_NONE);
	cr_assert_eq(ig_suite_parse(""), IG_SUITE_NONE);
	cr_assert_eq(ig_suite_parse("none"), IG_SUITE_NONE);
	cr_assert_eq(ig_suite_parse(NULL), IG_SUITE_NONE);
	cr_assert_eq(ig_suite_nonce_bytes(IG_SUITE_AES256GCM), 12u);
	cr_assert_eq(ig_suite_nonce_bytes(IG_SUITE_XCHACHA20POLY1305), 24u);
	cr_assert_eq(ig_suite_nonce_bytes(IG_SUITE_NONE), 0u);
	cr_assert(ig_suite_available(IG_SUITE_XCHACHA20POLY1305));
	cr_assert_not(ig_suite_available(IG_SUITE_NONE));
	cr_assert_eq(ig_suite_available(IG_SUITE_AES256GCM), crypto_aead_aes256gcm_is_available() == 1);
	cr_assert_eq(IG_M2M_HEADER_BYTES, 26);
}

Test(suite, preferred_honours_hardware_and_forcing, .init = setup)
{
	ig_suite expect = crypto_aead_aes256gcm_is_available() ? IG_SUITE_AES256GCM : IG_SUITE_XCHACHA20POLY1305;
	cr_assert_eq(ig_suite_preferred(), expect);

	ig_suite_force_fallback(true);
	cr_assert_eq(ig_suite_preferred(), IG_SUITE_XCHACHA20POLY1305);
	ig_suite_force_fallback(false);
	cr_assert_eq(ig_suite_preferred(), expect);

	cr_assert_eq(setenv("IOTGUARD_FORCE_XCHACHA", "1", 1), 0);
	cr_assert_eq(ig_suite_preferred(), IG_SUITE_XCHACHA20POLY1305);
	cr_assert_eq(setenv("IOTGUARD_FORCE_XCHACHA", "0", 1), 0);
	cr_assert_eq(ig_suite_preferred(), expect);
	cr_assert_eq(setenv("IOTGUARD_FORCE_XCHACHA", "", 1), 0);
	cr_assert_eq(ig_suite_preferred(), expect);
	unsetenv("IOTGUARD_FORCE_XCHACHA");
	cr_assert_eq(ig_suite_preferred(), expect);
}

Test(suite, forced_fallback_round_trip, .init = setup)
{
	/* The path a host without AES-NI takes: the preferred suite is XChaCha,
	 * and a full m2m exchange works with it. */
	ig_suite_force_fallback(true);
	ig_suite s = ig_suite_preferred();
	cr_assert_eq(s, IG_SUITE_XCHACHA20POLY1305);
	uint8_t key[32], kid[16], msg[256], pt[256];
	randombytes_buf(key, sizeof key);
	randombytes_buf(kid, sizeof kid);
	int n = ig_m2m_seal(msg, sizeof msg, s, key, kid, 1, 42, "iotguard/c/m2m/a/b", (const uint8_t *)"fallback", 8);
	cr_assert_gt(n, 0);
	cr_assert_eq(msg[1], IG_SUITE_XCHACHA20POLY1305);
	ig_m2m_header h;
	cr_assert_eq(ig_m2m_open(pt, sizeof pt, msg, (size_t)n, key, 1, "iotguard/c/m2m/a/b", &h), 8);
	cr_assert_arr_eq(pt, "fallback", 8);
	cr_assert_eq(h.suite, IG_SUITE_XCHACHA20POLY1305);
}

/* ---- generic AEAD ------------------------------------------------------------ */

Test(aead, round_trip_both_suites_many_sizes, .init = setup)
{
	static uint8_t pt[4096], ct[4096 + 16], back[4096];
	uint8_t key[32], nonce[24], aad[40];
	randombytes_buf(key, sizeof key);
	randombytes_buf(nonce, sizeof nonce);
	randombytes_buf(aad, sizeof aad);
	randombytes_buf(pt, sizeof pt);
	const size_t sizes[] = {0, 1, 15, 16, 17, 255, 4096};
	for (size_t s = 0; s < 2; s++) {
		if (!usable(both[s]))
			continue;
		for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
			size_t len = sizes[k];
			int n = ig_aead_seal(both[s], ct, sizeof ct, pt, len, aad, sizeof aad, nonce, key);
			cr_assert_eq(n, (int)(len + 16));
			memset(back, 0, sizeof back);
			int m = ig_aead_open(both[s], back, sizeof back, ct, (size_t)n, aad, sizeof aad, nonce, key);
			cr_assert_eq(m, (int)len, "suite %d len %zu", both[s], len);
			if (len)
				cr_assert_arr_eq(back, pt, len);
			/* Wrong AAD, wrong nonce, wrong key: refused and plaintext wiped. */
			aad[0] ^= 1;
			memset(back, 0xaa, sizeof back);
			cr_assert_eq(ig_aead_open(both[s], back, sizeof back, ct, (size_t)n, aad, sizeof aad, nonce, key),
			             IG_ERR_CRYPTO);
			for (size_t i = 0; i < len; i++)
				cr_assert_eq(back[i], 0, "unauthenticated plaintext left at %zu", i);
			aad[0] ^= 1;
			nonce[5] ^= 1;
			cr_assert_eq(ig_aead_open(both[s], back, sizeof back, ct, (size_t)n, aad, sizeof aad, nonce, key),
			             IG_ERR_CRYPTO);
			nonce[5] ^= 1;
			key[31] ^= 1;
			cr_assert_eq(ig_aead_open(both[s], back, sizeof back, ct, (size_t)n, aad, sizeof aad, nonce, key),
			             IG_ERR_CRYPTO);
			key[31] ^= 1;
			/* The other suite cannot open it. */
			ig_suite other = both[1 - s];
			if (usable(other))
				cr_assert_lt(ig_aead_open(other, back, sizeof back, ct, (size_t)n, aad, sizeof aad, nonce, key),
				             0);
		}
		/* No AAD at all is allowed. */
		int n = ig_aead_seal(both[s], ct, sizeof ct, pt, 10, NULL, 0, nonce, key);
		cr_assert_eq(n, 26);
		cr_assert_eq(ig_aead_open(both[s], back, sizeof back, ct, 26, NULL, 0, nonce, key), 10);
	}
}

Test(aead, argument_and_capacity_checks, .init = setup)
{
	uint8_t key[32] = {1}, nonce[24] = {2}, pt[32] = {3}, ct[64], back[64];
	ig_suite s = IG_SUITE_XCHACHA20POLY1305;
	cr_assert_eq(ig_aead_seal(s, ct, 47, pt, 32, NULL, 0, nonce, key), IG_ERR_RANGE);
	cr_assert_eq(ig_aead_seal(s, ct, 48, pt, 32, NULL, 0, nonce, key), 48);
	cr_assert_eq(ig_aead_open(s, back, 31, ct, 48, NULL, 0, nonce, key), IG_ERR_RANGE);
	cr_assert_eq(ig_aead_open(s, back, 32, ct, 48, NULL, 0, nonce, key), 32);
	cr_assert_eq(ig_aead_open(s, back, 64, ct, 15, NULL, 0, nonce, key), IG_ERR_INVAL);
	cr_assert_eq(ig_aead_open(s, back, 64, ct, 0, NULL, 0, nonce, key), IG_ERR_INVAL);
	cr_assert_eq(ig_aead_seal(IG_SUITE_NONE, ct, 64, pt, 32, NULL, 0, nonce, key), IG_ERR_INVAL);
	cr_assert_eq(ig_aead_seal((ig_suite)3, ct, 64, pt, 32, NULL, 0, nonce, key), IG_ERR_INVAL);
	cr_assert_eq(ig_aead_open(IG_SUITE_NONE, back, 64, ct, 48, NULL, 0, nonce, key), IG_ERR_INVAL);
	cr_assert_eq(ig_aead_seal(s, ct, 64, NULL, 32, NULL, 0, nonce, key), IG_ERR_INVAL);
	cr_assert_eq(ig_aead_seal(s, ct, 64, pt, 32, NULL, 4, nonce, key), IG_ERR_INVAL);
	cr_assert_eq(ig_aead_seal(s, ct, 64, pt, 32, NULL, 0, NULL, key), IG_ERR_INVAL);
	cr_assert_eq(ig_aead_seal(s, ct, 64, pt, 32, NULL, 0, nonce, NULL), IG_ERR_INVAL);
	cr_assert_eq(ig_aead_seal(s, NULL, 64, pt, 32, NULL, 0, nonce, key), IG_ERR_RANGE);
	/* An empty message: only a tag; opens to 0 bytes even with out NULL. */
	cr_assert_eq(ig_aead_seal(s, ct, 16, NULL, 0, NULL, 0, nonce, key), 16);
	cr_assert_eq(ig_aead_open(s, NULL, 0, ct, 16, NULL, 0, nonce, key), 0);
	ct[0] ^= 1;
	cr_assert_eq(ig_aead_open(s, NULL, 0, ct, 16, NULL, 0, nonce, key), IG_ERR_CRYPTO);
}

/* ---- m2m envelope ------------------------------------------------------------ */

#define TOPIC_AB "iotguard/c1/m2m/b/a" /* a -> b */
#define TOPIC_BA "iotguard/c1/m2m/a/b" /* b -> a */

typedef struct fixture {
	uint8_t key[32], kid[16], msg[256];
	size_t len;
	const char *text;
} fixture;

static void make_msg(fixture *f, ig_suite s, uint8_t direction, uint64_t counter)
{
	randombytes_buf(f->key, sizeof f->key);
	randombytes_buf(f->kid, sizeof f->kid);
	f->text = "temperature=21.5";
	int n = ig_m2m_seal(f->msg, sizeof f->msg, s, f->key, f->kid, direction, counter, TOPIC_AB,
	                    (const uint8_t *)f->text, strlen(f->text));
	cr_assert_eq(n, (int)(IG_M2M_HEADER_BYTES + strlen(f->text) + 16));
	f->len = (size_t)n;
}

Test(m2m, round_trip_both_suites_and_header, .init = setup)
{
	for (size_t s = 0; s < 2; s++) {
		if (!usable(both[s]))
			continue;
		fixture f;
		make_msg(&f, both[s], 0, 7);
		ig_m2m_header h;
		cr_assert_eq(ig_m2m_parse_header(f.msg, f.len, &h), IG_OK);
		cr_assert_eq(h.version, 1);
		cr_assert_eq(h.suite, both[s]);
		cr_assert_eq(h.counter, 7u);
		cr_assert_arr_eq(h.key_id, f.kid, 16);
		uint8_t pt[256];
		memset(&h, 0, sizeof h);
		cr_assert_eq(ig_m2m_open(pt, sizeof pt, f.msg, f.len, f.key, 0, TOPIC_AB, &h), (int)strlen(f.text));
		cr_assert_arr_eq(pt, f.text, strlen(f.text));
		cr_assert_eq(h.counter, 7u);
		/* h may be NULL. */
		cr_assert_eq(ig_m2m_open(pt, sizeof pt, f.msg, f.len, f.key, 0, TOPIC_AB, NULL), (int)strlen(f.text));
		/* Empty and maximum-size plaintexts. */
		static uint8_t big[IG_M2M_HEADER_BYTES + IG_M2M_MAX_PLAINTEXT + 16], bigpt[IG_M2M_MAX_PLAINTEXT + 1];
		int n = ig_m2m_seal(big, sizeof big, both[s], f.key, f.kid, 1, 1, TOPIC_BA, NULL, 0);
		cr_assert_eq(n, IG_M2M_HEADER_BYTES + 16);
		cr_assert_eq(ig_m2m_open(NULL, 0, big, (size_t)n, f.key, 1, TOPIC_BA, NULL), 0);
		memset(bigpt, 'x', sizeof bigpt);
		n = ig_m2m_seal(big, sizeof big, both[s], f.key, f.kid, 1, 2, TOPIC_BA, bigpt, IG_M2M_MAX_PLAINTEXT);
		cr_assert_eq(n, (int)sizeof big);
		cr_assert_eq(ig_m2m_open(bigpt, sizeof bigpt, big, (size_t)n, f.key, 1, TOPIC_BA, NULL),
		             IG_M2M_MAX_PLAINTEXT);
		cr_assert_eq(ig_m2m_seal(big, sizeof big, both[s], f.key, f.kid, 1, 3, TOPIC_BA, bigpt,
		                         IG_M2M_MAX_PLAINTEXT + 1),
		             IG_ERR_RANGE);
	}
}

Test(m2m, every_byte_tamper_fails, .init = setup)
{
	for (size_t s = 0; s < 2; s++) {
		if (!usable(both[s]))
			continue;
		fixture f;
		make_msg(&f, both[s], 0, 1000);
		uint8_t pt[256];
		const uint8_t flips[] = {0x01, 0x80, 0xff};
		for (size_t i = 0; i < f.len; i++) {
			for (size_t k = 0; k < sizeof flips; k++) {
				f.msg[i] ^= flips[k];
				int rc = ig_m2m_open(pt, sizeof pt, f.msg, f.len, f.key, 0, TOPIC_AB, NULL);
				cr_assert_lt(rc, 0, "suite %d: byte %zu ^0x%02x accepted", both[s], i, flips[k]);
				cr_assert(rc == IG_ERR_CRYPTO || rc == IG_ERR_INVAL || rc == IG_ERR_STATE, "rc %d", rc);
				f.msg[i] ^= flips[k];
			}
		}
		cr_assert_gt(ig_m2m_open(pt, sizeof pt, f.msg, f.len, f.key, 0, TOPIC_AB, NULL), 0);
	}
}

Test(m2m, wrong_topic_direction_key_fail, .init = setup)
{
	for (size_t s = 0; s < 2; s++) {
		if (!usable(both[s]))
			continue;
		fixture f;
		make_msg(&f, both[s], 0, 5);
		uint8_t pt[256], other[32];
		const char *topics[] = {TOPIC_BA, "iotguard/c1/m2m/b/a/", "iotguard/c1/m2m/b/x", "iotguard/c2/m2m/b/a",
		                        "iotguard/c1/m2m/b/"};
		for (size_t t = 0; t < sizeof topics / sizeof topics[0]; t++)
			cr_assert_eq(ig_m2m_open(pt, sizeof pt, f.msg, f.len, f.key, 0, topics[t], NULL), IG_ERR_CRYPTO,
			             "topic %s", topics[t]);
		/* Reflected back to its sender as if the peer had sent it. */
		cr_assert_eq(ig_m2m_open(pt, sizeof pt, f.msg, f.len, f.key, 1, TOPIC_AB, NULL), IG_ERR_CRYPTO);
		memcpy(other, f.key, 32);
		for (int b = 0; b < 32; b += 7) {
			other[b] ^= 0x10;
			cr_assert_eq(ig_m2m_open(pt, sizeof pt, f.msg, f.len, other, 0, TOPIC_AB, NULL), IG_ERR_CRYPTO);
			other[b] ^= 0x10;
		}
		randombytes_buf(other, sizeof other);
		cr_assert_eq(ig_m2m_open(pt, sizeof pt, f.msg, f.len, other, 0, TOPIC_AB, NULL), IG_ERR_CRYPTO);
		/* Bad arguments. */
		cr_assert_eq(ig_m2m_open(pt, sizeof pt, f.msg, f.len, f.key, 2, TOPIC_AB, NULL), IG_ERR_INVAL);
		cr_assert_eq(ig_m2m_open(pt, sizeof pt, f.msg, f.len, f.key, 0, "", NULL), IG_ERR_INVAL);
		cr_assert_eq(ig_m2m_open(pt, sizeof pt, f.msg, f.len, f.key, 0, NULL, NULL), IG_ERR_INVAL);
		cr_assert_eq(ig_m2m_open(pt, 15, f.msg, f.len, f.key, 0, TOPIC_AB, NULL), IG_ERR_RANGE);
	}
}

Test(m2m, truncated_and_malformed_messages_fail, .init = setup)
{
	for (size_t s = 0; s < 2; s++) {
		if (!usable(both[s]))
			continue;
		fixture f;
		make_msg(&f, both[s], 1, 9);
		uint8_t pt[256];
		ig_m2m_header h;
		for (size_t len = 0; len < f.len; len++) {
			uint8_t *p = malloc(len ? len : 1); /* exact size: ASan sees over-reads */
			cr_assert_not_null(p);
			memcpy(p, f.msg, len);
			int rc = ig_m2m_open(pt, sizeof pt, p, len, f.key, 1, TOPIC_AB, &h);
			cr_assert_lt(rc, 0, "truncated to %zu accepted", len);
			if (len < IG_M2M_HEADER_BYTES + 16)
				cr_assert_eq(ig_m2m_parse_header(p, len, &h), IG_ERR_INVAL, "len %zu", len);
			free(p);
		}
		/* Version, suite and counter rules in the header. */
		uint8_t m[256];
		memcpy(m, f.msg, f.len);
		const uint8_t versions[] = {0, 2, 255};
		for (size_t i = 0; i < sizeof versions; i++) {
			m[0] = versions[i];
			cr_assert_eq(ig_m2m_parse_header(m, f.len, &h), IG_ERR_INVAL);
			cr_assert_eq(ig_m2m_open(pt, sizeof pt, m, f.len, f.key, 1, TOPIC_AB, NULL), IG_ERR_INVAL);
		}
		m[0] = 1;
		const uint8_t suites[] = {0, 3, 255};
		for (size_t i = 0; i < sizeof suites; i++) {
			m[1] = suites[i];
			cr_assert_eq(ig_m2m_parse_header(m, f.len, &h), IG_ERR_INVAL);
		}
		m[1] = (uint8_t)both[s];
		memset(m + 18, 0, 8);
		cr_assert_eq(ig_m2m_parse_header(m, f.len, &h), IG_ERR_INVAL, "counter 0 accepted");
		/* Trailing garbage is part of the ciphertext, so it fails the tag. */
		memcpy(m, f.msg, f.len);
		m[f.len] = 0;
		cr_assert_eq(ig_m2m_open(pt, sizeof pt, m, f.len + 1, f.key, 1, TOPIC_AB, NULL), IG_ERR_CRYPTO);
		/* Oversized message. */
		cr_assert_eq(ig_m2m_parse_header(m, IG_M2M_HEADER_BYTES + IG_M2M_MAX_PLAINTEXT + 17, &h), IG_ERR_INVAL);
	}
}

Test(m2m, seal_refuses_bad_arguments, .init = setup)
{
	uint8_t key[32] = {0}, kid[16] = {0}, out[128];
	const uint8_t *pt = (const uint8_t *)"x";
	ig_suite s = IG_SUITE_XCHACHA20POLY1305;
	cr_assert_eq(ig_m2m_seal(out, sizeof out, s, key, kid, 0, 0, TOPIC_AB, pt, 1), IG_ERR_INVAL);
	cr_assert_eq(ig_m2m_seal(out, sizeof out, s, key, kid, 2, 1, TOPIC_AB, pt, 1), IG_ERR_INVAL);
	cr_assert_eq(ig_m2m_seal(out, sizeof out, IG_SUITE_NONE, key, kid, 0, 1, TOPIC_AB, pt, 1), IG_ERR_INVAL);
	cr_assert_eq(ig_m2m_seal(out, sizeof out, s, key, kid, 0, 1, "", pt, 1), IG_ERR_INVAL);
	cr_assert_eq(ig_m2m_seal(out, sizeof out, s, key, kid, 0, 1, NULL, pt, 1), IG_ERR_INVAL);
	cr_assert_eq(ig_m2m_seal(out, sizeof out, s, NULL, kid, 0, 1, TOPIC_AB, pt, 1), IG_ERR_INVAL);
	cr_assert_eq(ig_m2m_seal(out, sizeof out, s, key, NULL, 0, 1, TOPIC_AB, pt, 1), IG_ERR_INVAL);
	cr_assert_eq(ig_m2m_seal(out, sizeof out, s, key, kid, 0, 1, TOPIC_AB, NULL, 1), IG_ERR_INVAL);
	cr_assert_eq(ig_m2m_seal(out, 26 + 1 + 15, s, key, kid, 0, 1, TOPIC_AB, pt, 1), IG_ERR_RANGE);
	cr_assert_eq(ig_m2m_seal(out, 26 + 1 + 16, s, key, kid, 0, 1, TOPIC_AB, pt, 1), 43);
	/* UINT64_MAX is a valid (last) counter. */
	cr_assert_eq(ig_m2m_seal(out, sizeof out, s, key, kid, 0, UINT64_MAX, TOPIC_AB, pt, 1), 43);
	ig_m2m_header h;
	cr_assert_eq(ig_m2m_parse_header(out, 43, &h), IG_OK);
	cr_assert_eq(h.counter, UINT64_MAX);
	uint8_t back[8];
	cr_assert_eq(ig_m2m_open(back, sizeof back, out, 43, key, 0, TOPIC_AB, NULL), 1);
}

Test(m2m, long_topic_uses_heap_aad, .init = setup)
{
	/* Topics longer than the on-stack AAD buffer (and up to the MQTT limit)
	 * still bind; one character changed at the far end still fails. */
	static char topic[65536];
	memset(topic, 'x', 65535);
	topic[65535] = '\0';
	uint8_t key[32] = {9}, kid[16] = {8}, msg[128], pt[16];
	int n = ig_m2m_seal(msg, sizeof msg, IG_SUITE_XCHACHA20POLY1305, key, kid, 0, 3, topic,
	                    (const uint8_t *)"hi", 2);
	cr_assert_eq(n, 26 + 2 + 16);
	cr_assert_eq(ig_m2m_open(pt, sizeof pt, msg, (size_t)n, key, 0, topic, NULL), 2);
	topic[65534] = 'y';
	cr_assert_eq(ig_m2m_open(pt, sizeof pt, msg, (size_t)n, key, 0, topic, NULL), IG_ERR_CRYPTO);
	/* Longer than an MQTT topic can be: refused. */
	static char huge[65537];
	memset(huge, 'x', 65536);
	huge[65536] = '\0';
	cr_assert_eq(ig_m2m_seal(msg, sizeof msg, IG_SUITE_XCHACHA20POLY1305, key, kid, 0, 3, huge,
	                         (const uint8_t *)"hi", 2),
	             IG_ERR_INVAL);
}

Test(m2m, directions_use_distinct_nonces, .init = setup)
{
	/* Same key, same counter, same plaintext, both directions: the
	 * ciphertexts differ (different nonces), and each opens only as sent. */
	uint8_t key[32], kid[16], a[64], b[64], pt[16];
	randombytes_buf(key, sizeof key);
	randombytes_buf(kid, sizeof kid);
	for (size_t s = 0; s < 2; s++) {
		if (!usable(both[s]))
			continue;
		int na = ig_m2m_seal(a, sizeof a, both[s], key, kid, 0, 1, TOPIC_AB, (const uint8_t *)"same", 4);
		int nb = ig_m2m_seal(b, sizeof b, both[s], key, kid, 1, 1, TOPIC_AB, (const uint8_t *)"same", 4);
		cr_assert_eq(na, nb);
		cr_assert_arr_neq(a + 26, b + 26, 4 + 16);
		cr_assert_eq(ig_m2m_open(pt, sizeof pt, a, (size_t)na, key, 0, TOPIC_AB, NULL), 4);
		cr_assert_eq(ig_m2m_open(pt, sizeof pt, b, (size_t)nb, key, 1, TOPIC_AB, NULL), 4);
		cr_assert_eq(ig_m2m_open(pt, sizeof pt, b, (size_t)nb, key, 0, TOPIC_AB, NULL), IG_ERR_CRYPTO);
	}
}

Test(m2m, fuzz_random_messages_never_open, .init = setup)
{
	uint8_t key[32], msg[200], pt[200];
	randombytes_buf(key, sizeof key);
	for (int iter = 0; iter < 3000; iter++) {
		size_t len = (size_t)(tu_rand() % sizeof msg);
		for (size_t i = 0; i < len; i++)
			msg[i] = (uint8_t)tu_rand();
		if (len >= 2 && (iter & 1)) {
			msg[0] = 1;
			msg[1] = (uint8_t)(1 + tu_rand() % 2);
		}
		uint8_t *p = malloc(len ? len : 1);
		cr_assert_not_null(p);
		memcpy(p, msg, len);
		ig_m2m_header h;
		int rc = ig_m2m_open(pt, sizeof pt, p, len, key, (uint8_t)(iter & 1), TOPIC_AB, &h);
		cr_assert_lt(rc, 0, "random message of %zu bytes opened", len);
		free(p);
	}
}

/* ---- replay window ------------------------------------------------------------ */

static void accept(ig_replay_window *w, uint64_t c)
{
	cr_assert_eq(ig_replay_check(w, c), IG_REPLAY_OK, "counter %llu not accepted", (unsigned long long)c);
	ig_replay_commit(w, c);
	cr_assert_eq(ig_replay_check(w, c), IG_REPLAY_DUPLICATE, "counter %llu not remembered",
	             (unsigned long long)c);
}

Test(replay, first_message_and_duplicates)
{
	ig_replay_window w;
	ig_replay_init(&w);
	cr_assert_eq(w.highest, 0u);
	cr_assert_eq(ig_replay_check(&w, 0), IG_REPLAY_INVALID);
	/* Before anything is seen every non-zero counter is new, even a big one. */
	cr_assert_eq(ig_replay_check(&w, 1), IG_REPLAY_OK);
	cr_assert_eq(ig_replay_check(&w, 5000), IG_REPLAY_OK);
	cr_assert_eq(ig_replay_check(&w, UINT64_MAX), IG_REPLAY_OK);
	accept(&w, 1);
	cr_assert_eq(w.highest, 1u);
	cr_assert_eq(ig_replay_check(&w, 0), IG_REPLAY_INVALID);
	accept(&w, 2);
	accept(&w, 4);
	cr_assert_eq(ig_replay_check(&w, 3), IG_REPLAY_OK); /* out of order, still new */
	accept(&w, 3);
	for (uint64_t c = 1; c <= 4; c++)
		cr_assert_eq(ig_replay_check(&w, c), IG_REPLAY_DUPLICATE);
	cr_assert_eq(ig_replay_check(&w, 5), IG_REPLAY_OK);
	/* Committing counter 0 or a duplicate changes nothing. */
	ig_replay_window before = w;
	ig_replay_commit(&w, 0);
	ig_replay_commit(&w, 3);
	cr_assert_arr_eq(&w, &before, sizeof w);
}

Test(replay, check_never_mutates)
{
	ig_replay_window w, copy;
	ig_replay_init(&w);
	accept(&w, 100);
	copy = w;
	const uint64_t probes[] = {0, 1, 99, 100, 101, 5000, UINT64_MAX};
	for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++)
		(void)ig_replay_check(&w, probes[i]);
	cr_assert_arr_eq(&w, &copy, sizeof w);
}

Test(replay, exact_window_edge)
{
	ig_replay_window w;
	ig_replay_init(&w);
	const uint64_t top = 5000;
	accept(&w, top);
	/* window-1 behind: inside, accepted once. */
	cr_assert_eq(ig_replay_check(&w, top - (IG_REPLAY_WINDOW - 1)), IG_REPLAY_OK);
	accept(&w, top - (IG_REPLAY_WINDOW - 1));
	/* exactly window behind: outside. */
	cr_assert_eq(ig_replay_check(&w, top - IG_REPLAY_WINDOW), IG_REPLAY_TOO_OLD);
	cr_assert_eq(ig_replay_check(&w, top - IG_REPLAY_WINDOW - 1), IG_REPLAY_TOO_OLD);
	cr_assert_eq(ig_replay_check(&w, 1), IG_REPLAY_TOO_OLD);
	/* Committing a too-old counter does not disturb anything. */
	ig_replay_window before = w;
	ig_replay_commit(&w, top - IG_REPLAY_WINDOW);
	cr_assert_arr_eq(&w, &before, sizeof w);

	/* Advancing by one pushes the oldest remembered counter out. */
	accept(&w, top + 1);
	cr_assert_eq(ig_replay_check(&w, top - (IG_REPLAY_WINDOW - 1)), IG_REPLAY_TOO_OLD);
	cr_assert_eq(ig_replay_check(&w, top - (IG_REPLAY_WINDOW - 2)), IG_REPLAY_OK);
	cr_assert_eq(ig_replay_check(&w, top), IG_REPLAY_DUPLICATE);

	/* Small counters near the start: window behind 1024 with highest 1024. */
	ig_replay_init(&w);
	accept(&w, IG_REPLAY_WINDOW);
	cr_assert_eq(ig_replay_check(&w, 1), IG_REPLAY_OK); /* 1023 behind */
	accept(&w, 1);
	accept(&w, IG_REPLAY_WINDOW + 1);
	cr_assert_eq(ig_replay_check(&w, 1), IG_REPLAY_TOO_OLD);
}

Test(replay, shifts_keep_the_right_bits)
{
	/* Against a naive model (set of seen counters), over random walks that
	 * mix small steps, word-sized steps and big jumps. */
	static uint8_t seen[1 << 19]; /* 2000 steps of at most 200 fit */
	for (int round = 0; round < 20; round++) {
		ig_replay_window w;
		ig_replay_init(&w);
		memset(seen, 0, sizeof seen);
		uint64_t highest = 0;
		for (int i = 0; i < 2000; i++) {
			uint64_t c;
			switch (tu_rand() % 4) {
			case 0: c = highest + 1 + tu_rand() % 3; break;
			case 1: c = highest + 1 + tu_rand() % 200; break;
			case 2: c = highest > 1100 ? highest - tu_rand() % 1100 : 1 + tu_rand() % 1100; break;
			default: c = highest + (tu_rand() % 2 ? 64 : 63); break;
			}
			if (c == 0 || c >= sizeof seen)
				continue;
			ig_replay_result expect;
			if (highest == 0 || c > highest)
				expect = IG_REPLAY_OK;
			else if (highest - c >= IG_REPLAY_WINDOW)
				expect = IG_REPLAY_TOO_OLD;
			else
				expect = seen[c] ? IG_REPLAY_DUPLICATE : IG_REPLAY_OK;
			cr_assert_eq(ig_replay_check(&w, c), expect, "round %d step %d counter %llu highest %llu", round,
			             i, (unsigned long long)c, (unsigned long long)highest);
			if (expect == IG_REPLAY_OK && tu_rand() % 8 != 0) { /* some fail authentication: never committed */
				ig_replay_commit(&w, c);
				seen[c] = 1;
				if (c > highest)
					highest = c;
			}
		}
		cr_assert_eq(w.highest, highest);
	}
}

Test(replay, huge_jumps_and_uint64_max)
{
	ig_replay_window w;
	ig_replay_init(&w);
	accept(&w, 1);
	accept(&w, 2);
	/* A jump far beyond the window forgets everything before it. */
	accept(&w, 1ull << 40);
	cr_assert_eq(ig_replay_check(&w, 2), IG_REPLAY_TOO_OLD);
	cr_assert_eq(ig_replay_check(&w, (1ull << 40) - 1), IG_REPLAY_OK);
	cr_assert_eq(ig_replay_check(&w, (1ull << 40) - 1023), IG_REPLAY_OK);
	cr_assert_eq(ig_replay_check(&w, (1ull << 40) - 1024), IG_REPLAY_TOO_OLD);
	/* A jump of exactly the window width: the old top falls out. */
	uint64_t t = (1ull << 40) + IG_REPLAY_WINDOW;
	accept(&w, t);
	cr_assert_eq(ig_replay_check(&w, 1ull << 40), IG_REPLAY_TOO_OLD);
	/* A jump of window-1: the old top is the oldest remembered one. */
	accept(&w, t + IG_REPLAY_WINDOW - 1);
	cr_assert_eq(ig_replay_check(&w, t), IG_REPLAY_DUPLICATE);
	cr_assert_eq(ig_replay_check(&w, t + 1), IG_REPLAY_OK);

	/* The very last counter. Afterwards nothing is ahead, and the window
	 * behind still works. */
	accept(&w, UINT64_MAX);
	cr_assert_eq(w.highest, UINT64_MAX);
	cr_assert_eq(ig_replay_check(&w, UINT64_MAX - 1), IG_REPLAY_OK);
	accept(&w, UINT64_MAX - 1023);
	cr_assert_eq(ig_replay_check(&w, UINT64_MAX - 1024), IG_REPLAY_TOO_OLD);
	cr_assert_eq(ig_replay_check(&w, 1), IG_REPLAY_TOO_OLD);
	cr_assert_eq(ig_replay_check(&w, 0), IG_REPLAY_INVALID);

	/* First message at UINT64_MAX. */
	ig_replay_init(&w);
	accept(&w, UINT64_MAX);
	cr_assert_eq(ig_replay_check(&w, 1), IG_REPLAY_TOO_OLD);
}

Test(replay, forged_message_cannot_move_window, .init = setup)
{
	/* The receive path: parse, check, open, and only then commit. A forged
	 * message with a huge counter fails the tag and leaves the window alone,
	 * so genuine traffic keeps flowing. */
	uint8_t key[32], kid[16], msg[128], pt[64];
	randombytes_buf(key, sizeof key);
	randombytes_buf(kid, sizeof kid);
	ig_replay_window w;
	ig_replay_init(&w);
	for (uint64_t c = 1; c <= 3; c++) {
		int n = ig_m2m_seal(msg, sizeof msg, IG_SUITE_XCHACHA20POLY1305, key, kid, 0, c, TOPIC_AB,
		                    (const uint8_t *)"ok", 2);
		ig_m2m_header h;
		cr_assert_eq(ig_m2m_parse_header(msg, (size_t)n, &h), IG_OK);
		cr_assert_eq(ig_replay_check(&w, h.counter), IG_REPLAY_OK);
		cr_assert_eq(ig_m2m_open(pt, sizeof pt, msg, (size_t)n, key, 0, TOPIC_AB, &h), 2);
		ig_replay_commit(&w, h.counter);
	}
	/* Forgery: counter set to 10^12 in an otherwise valid message. */
	int n = ig_m2m_seal(msg, sizeof msg, IG_SUITE_XCHACHA20POLY1305, key, kid, 0, 4, TOPIC_AB,
	                    (const uint8_t *)"ok", 2);
	ig_put_u64(msg + 18, 1000000000000ull);
	ig_m2m_header h;
	cr_assert_eq(ig_m2m_parse_header(msg, (size_t)n, &h), IG_OK);
	cr_assert_eq(ig_replay_check(&w, h.counter), IG_REPLAY_OK);
	cr_assert_eq(ig_m2m_open(pt, sizeof pt, msg, (size_t)n, key, 0, TOPIC_AB, &h), IG_ERR_CRYPTO);
	cr_assert_eq(w.highest, 3u);
	ig_put_u64(msg + 18, 4);
	cr_assert_eq(ig_replay_check(&w, 4), IG_REPLAY_OK);
	cr_assert_eq(ig_m2m_open(pt, sizeof pt, msg, (size_t)n, key, 0, TOPIC_AB, NULL), 2);
	/* And a replay of an old one is caught by the window, not the AEAD. */
	n = ig_m2m_seal(msg, sizeof msg, IG_SUITE_XCHACHA20POLY1305, key, kid, 0, 2, TOPIC_AB, (const uint8_t *)"ok",
	                2);
	cr_assert_eq(ig_m2m_parse_header(msg, (size_t)n, &h), IG_OK);
	cr_assert_eq(ig_replay_check(&w, h.counter), IG_REPLAY_DUPLICATE);
}
