/*
 * test_keys.c: session-key boxes from the cluster head to devices.
 *
 * Why this exists: the box is what makes a session key the cluster head's
 * and only A's and B's. These tests pin the exact bytes (vector also in
 * docs/PROTOCOL.md, computed independently with PyNaCl), check that both
 * holders get the same key, and try to break the box: other senders, other
 * recipients, every-byte tamper, and authenticated but malformed contents.
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_keybox.h"
#include "testutil.h"

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
}

typedef struct party {
	uint8_t pk[32], sk[64];
} party;

static void seeded(party *p, uint8_t first)
{
	tu_seed_keypair(p->pk, p->sk, first);
}

static void fresh(party *p)
{
	cr_assert_eq(crypto_sign_keypair(p->pk, p->sk), 0);
}

static ig_session_key sample_key(uint8_t direction, const char *peer, const char *nonce)
{
	ig_session_key k;
	memset(&k, 0, sizeof k);
	randombytes_buf(k.key, sizeof k.key);
	randombytes_buf(k.key_id, sizeof k.key_id);
	k.expires_at = 1700003600;
	k.suite = IG_SUITE_XCHACHA20POLY1305;
	k.direction = direction;
	strcpy(k.peer, peer);
	strcpy(k.request_nonce, nonce);
	return k;
}

static void assert_same_key(const ig_session_key *a, const ig_session_key *b)
{
	cr_assert_arr_eq(a->key, b->key, 32);
	cr_assert_arr_eq(a->key_id, b->key_id, 16);
	cr_assert_eq(a->expires_at, b->expires_at);
	cr_assert_eq(a->suite, b->suite);
	cr_assert_eq(a->direction, b->direction);
	cr_assert_str_eq(a->peer, b->peer);
	cr_assert_str_eq(a->request_nonce, b->request_nonce);
}

/* ---- pinned vector ---------------------------------------------------------- */

/* CH seed 00..1f, device ("a") seed 20..3f; the boxed key is the m2m test
 * vector key 00..1f with key id 40..4f, so the two vectors chain. */
#define VEC_CH_PK "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
#define VEC_DEV_PK "29acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd7"
#define VEC_CH_X25519_PK "4701d08488451f545a409fb58ae3e58581ca40ac3f7f114698cd71deac73ca01"
#define VEC_DEV_X25519_PK "5730800ab340fcb18ce5111eda9d705f91388b41e4544cbd103ba5942db2233e"
#define VEC_BOX_KEY "7b91597e6a0dbe2acd34f13f7fe345f782c93b043f275a80e5f810b60fa6ba12"
#define VEC_PLAINTEXT                                                                            \
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f404142434445464748494a4b" \
	"4c4d4e4f000000006553ff1002000162057265712d31"
#define VEC_BOX_NONCE "606162636465666768696a6b6c6d6e6f7071727374757677"
#define VEC_BOX                                                                                  \
	"72b53d36abfd04cc0c5d4a1eb6421aa496765d46f0aa8fd0c0a86cf3b11531e9866898add88602d847eea1eb" \
	"b1eb0a6b04ee4387d21bbef968751bf5bcc9deb1ed84293e7c46bddd8bf9e01b888064a90752"

Test(keybox, pinned_vector, .init = setup)
{
	party ch, dev;
	seeded(&ch, 0x00);
	seeded(&dev, 0x20);
	tu_assert_hex(ch.pk, 32, VEC_CH_PK);
	tu_assert_hex(dev.pk, 32, VEC_DEV_PK);
	uint8_t x[32];
	cr_assert_eq(crypto_sign_ed25519_pk_to_curve25519(x, ch.pk), 0);
	tu_assert_hex(x, 32, VEC_CH_X25519_PK);
	cr_assert_eq(crypto_sign_ed25519_pk_to_curve25519(x, dev.pk), 0);
	tu_assert_hex(x, 32, VEC_DEV_X25519_PK);

	ig_box_key at_ch, at_dev;
	cr_assert_eq(ig_keybox_key_for_device(&at_ch, ch.sk, dev.pk), IG_OK);
	cr_assert_eq(ig_keybox_key_for_ch(&at_dev, dev.sk, ch.pk), IG_OK);
	tu_assert_hex(at_ch.k, 32, VEC_BOX_KEY);
	tu_assert_hex(at_dev.k, 32, VEC_BOX_KEY);

	uint8_t nonce[24], box[256], pt[256];
	tu_unhex(nonce, sizeof nonce, VEC_BOX_NONCE);
	size_t box_len = tu_unhex(box, sizeof box, VEC_BOX);
	size_t pt_len = tu_unhex(pt, sizeof pt, VEC_PLAINTEXT);
	cr_assert_eq(box_len, pt_len + 16);

	/* The vector box is crypto_box_easy of the vector plaintext. */
	uint8_t again[256];
	cr_assert_eq(crypto_box_easy_afternm(again, pt, pt_len, nonce, at_ch.k), 0);
	cr_assert_arr_eq(again, box, box_len);

	ig_session_key got;
	cr_assert_eq(ig_keybox_open(&got, box, box_len, nonce, &at_dev), IG_OK);
	for (int i = 0; i < 32; i++)
		cr_assert_eq(got.key[i], i);
	for (int i = 0; i < 16; i++)
		cr_assert_eq(got.key_id[i], 0x40 + i);
	cr_assert_eq(got.expires_at, 1700003600u);
	cr_assert_eq(got.suite, IG_SUITE_XCHACHA20POLY1305);
	cr_assert_eq(got.direction, 0);
	cr_assert_str_eq(got.peer, "b");
	cr_assert_str_eq(got.request_nonce, "req-1");

	/* ig_keybox_seal lays out exactly the vector plaintext. */
	uint8_t sealed[256], n2[24];
	int n = ig_keybox_seal(sealed, sizeof sealed, n2, &got, &at_ch);
	cr_assert_eq(n, (int)box_len);
	uint8_t opened[256];
	cr_assert_eq(crypto_box_open_easy_afternm(opened, sealed, (size_t)n, n2, at_dev.k), 0);
	cr_assert_arr_eq(opened, pt, pt_len);
}

Test(keybox, doc_prints_the_vector)
{
	const char *doc = tu_read_doc("PROTOCOL.md");
	const char *vecs[] = {VEC_CH_X25519_PK, VEC_DEV_X25519_PK, VEC_BOX_KEY, VEC_PLAINTEXT, VEC_BOX_NONCE, VEC_BOX};
	for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++)
		cr_assert_not_null(strstr(doc, vecs[i]), "docs/PROTOCOL.md lacks keybox vector %zu", i);
}

/* ---- behaviour -------------------------------------------------------------- */

Test(keybox, round_trip_and_both_holders_agree, .init = setup)
{
	party ch, a, b;
	fresh(&ch);
	fresh(&a);
	fresh(&b);
	ig_box_key ch_a, ch_b, a_side, b_side;
	cr_assert_eq(ig_keybox_key_for_device(&ch_a, ch.sk, a.pk), IG_OK);
	cr_assert_eq(ig_keybox_key_for_device(&ch_b, ch.sk, b.pk), IG_OK);
	cr_assert_eq(ig_keybox_key_for_ch(&a_side, a.sk, ch.pk), IG_OK);
	cr_assert_eq(ig_keybox_key_for_ch(&b_side, b.sk, ch.pk), IG_OK);
	cr_assert_arr_eq(ch_a.k, a_side.k, 32);
	cr_assert_arr_eq(ch_b.k, b_side.k, 32);
	cr_assert_arr_neq(ch_a.k, ch_b.k, 32);

	/* One issued key, two copies: A (requester) and B (peer). */
	ig_session_key for_a = sample_key(0, "devB", "n0nce-42");
	ig_session_key for_b = for_a;
	for_b.direction = 1;
	strcpy(for_b.peer, "devA");
	for_b.request_nonce[0] = '\0';
	uint8_t box_a[256], box_b[256], nonce_a[24], nonce_b[24];
	int na = ig_keybox_seal(box_a, sizeof box_a, nonce_a, &for_a, &ch_a);
	int nb = ig_keybox_seal(box_b, sizeof box_b, nonce_b, &for_b, &ch_b);
	cr_assert_eq(na, 60 + 4 + 8 + 16);
	cr_assert_eq(nb, 60 + 4 + 0 + 16);
	cr_assert_arr_neq(nonce_a, nonce_b, 24); /* random nonces */

	ig_session_key got_a, got_b;
	cr_assert_eq(ig_keybox_open(&got_a, box_a, (size_t)na, nonce_a, &a_side), IG_OK);
	cr_assert_eq(ig_keybox_open(&got_b, box_b, (size_t)nb, nonce_b, &b_side), IG_OK);
	assert_same_key(&got_a, &for_a);
	assert_same_key(&got_b, &for_b);
	cr_assert_arr_eq(got_a.key, got_b.key, 32);
	cr_assert_arr_eq(got_a.key_id, got_b.key_id, 16);
	cr_assert_eq(got_a.expires_at, got_b.expires_at);
	cr_assert_eq(got_a.suite, got_b.suite);
	cr_assert_eq(got_a.direction, 0);
	cr_assert_eq(got_b.direction, 1);
	cr_assert_str_eq(got_a.peer, "devB");
	cr_assert_str_eq(got_b.peer, "devA");

	/* A's box is not B's: B cannot open it, and vice versa. */
	ig_session_key x;
	cr_assert_eq(ig_keybox_open(&x, box_a, (size_t)na, nonce_a, &b_side), IG_ERR_CRYPTO);
	cr_assert_eq(ig_keybox_open(&x, box_b, (size_t)nb, nonce_b, &a_side), IG_ERR_CRYPTO);
	/* A failed open leaves nothing behind. */
	uint8_t zero[sizeof x];
	memset(zero, 0, sizeof zero);
	cr_assert_arr_eq(&x, zero, sizeof x);
}

Test(keybox, extremes_round_trip, .init = setup)
{
	party ch, d;
	fresh(&ch);
	fresh(&d);
	ig_box_key at_ch, at_d;
	cr_assert_eq(ig_keybox_key_for_device(&at_ch, ch.sk, d.pk), IG_OK);
	cr_assert_eq(ig_keybox_key_for_ch(&at_d, d.sk, ch.pk), IG_OK);
	char peer[65], rn[65];
	memset(peer, 'P', 64);
	peer[64] = '\0';
	for (int i = 0; i < 64; i++)
		rn[i] = (char)(0x20 + (i * 3) % 95); /* every kind of printable, space included */
	rn[64] = '\0';
	ig_session_key k = sample_key(0, peer, rn);
	k.expires_at = UINT64_MAX;
	k.suite = IG_SUITE_AES256GCM;
	uint8_t box[512], nonce[24];
	int n = ig_keybox_seal(box, sizeof box, nonce, &k, &at_ch);
	cr_assert_eq(n, 60 + 64 + 64 + 16);
	cr_assert_eq(ig_keybox_seal(box, (size_t)n - 1, nonce, &k, &at_ch), IG_ERR_RANGE);
	ig_session_key got;
	cr_assert_eq(ig_keybox_open(&got, box, (size_t)n, nonce, &at_d), IG_OK);
	assert_same_key(&got, &k);
	k.expires_at = 0;
	k.request_nonce[0] = '\0';
	n = ig_keybox_seal(box, sizeof box, nonce, &k, &at_ch);
	cr_assert_eq(ig_keybox_open(&got, box, (size_t)n, nonce, &at_d), IG_OK);
	assert_same_key(&got, &k);
}

Test(keybox, box_from_another_key_fails, .init = setup)
{
	party ch, impostor, d;
	fresh(&ch);
	fresh(&impostor);
	fresh(&d);
	ig_box_key fake, at_d;
	/* The impostor knows the device's public key and boxes a key to it. */
	cr_assert_eq(ig_keybox_key_for_device(&fake, impostor.sk, d.pk), IG_OK);
	cr_assert_eq(ig_keybox_key_for_ch(&at_d, d.sk, ch.pk), IG_OK);
	ig_session_key k = sample_key(1, "a", "");
	uint8_t box[256], nonce[24];
	int n = ig_keybox_seal(box, sizeof box, nonce, &k, &fake);
	cr_assert_gt(n, 0);
	ig_session_key got;
	cr_assert_eq(ig_keybox_open(&got, box, (size_t)n, nonce, &at_d), IG_ERR_CRYPTO);
	/* A raw crypto_box with a random key is refused too. */
	ig_box_key random_key;
	randombytes_buf(random_key.k, sizeof random_key.k);
	n = ig_keybox_seal(box, sizeof box, nonce, &k, &random_key);
	cr_assert_eq(ig_keybox_open(&got, box, (size_t)n, nonce, &at_d), IG_ERR_CRYPTO);
}

Test(keybox, every_byte_tamper_fails, .init = setup)
{
	party ch, d;
	fresh(&ch);
	fresh(&d);
	ig_box_key at_ch, at_d;
	cr_assert_eq(ig_keybox_key_for_device(&at_ch, ch.sk, d.pk), IG_OK);
	cr_assert_eq(ig_keybox_key_for_ch(&at_d, d.sk, ch.pk), IG_OK);
	ig_session_key k = sample_key(0, "peer-1", "abc"), got;
	uint8_t box[256], nonce[24];
	int n = ig_keybox_seal(box, sizeof box, nonce, &k, &at_ch);
	cr_assert_gt(n, 0);
	for (int i = 0; i < n; i++) {
		box[i] ^= 0x01;
		cr_assert_eq(ig_keybox_open(&got, box, (size_t)n, nonce, &at_d), IG_ERR_CRYPTO, "box byte %d", i);
		box[i] ^= 0x01;
	}
	for (int i = 0; i < 24; i++) {
		nonce[i] ^= 0x80;
		cr_assert_eq(ig_keybox_open(&got, box, (size_t)n, nonce, &at_d), IG_ERR_CRYPTO, "nonce byte %d", i);
		nonce[i] ^= 0x80;
	}
	/* Truncated at every length. */
	for (int len = 0; len < n; len++) {
		uint8_t *p = malloc(len ? (size_t)len : 1);
		cr_assert_not_null(p);
		memcpy(p, box, (size_t)len);
		cr_assert_lt(ig_keybox_open(&got, p, (size_t)len, nonce, &at_d), 0, "len %d", len);
		free(p);
	}
	cr_assert_eq(ig_keybox_open(&got, box, (size_t)n, nonce, &at_d), IG_OK);
	assert_same_key(&got, &k);
}

/* Boxes an arbitrary plaintext with the real key, to reach the strict
 * parser behind authentication. */
static int open_raw(const uint8_t *pt, size_t len, ig_session_key *out)
{
	party ch, d;
	seeded(&ch, 0x00);
	seeded(&d, 0x20);
	ig_box_key at_ch, at_d;
	cr_assert_eq(ig_keybox_key_for_device(&at_ch, ch.sk, d.pk), IG_OK);
	cr_assert_eq(ig_keybox_key_for_ch(&at_d, d.sk, ch.pk), IG_OK);
	uint8_t box[512], nonce[24] = {7};
	cr_assert_leq(len + 16, sizeof box);
	cr_assert_eq(crypto_box_easy_afternm(box, pt, len, nonce, at_ch.k), 0);
	return ig_keybox_open(out, box, len + 16, nonce, &at_d);
}

Test(keybox, strict_parse_of_authenticated_contents, .init = setup)
{
	uint8_t good[256];
	size_t glen = tu_unhex(good, sizeof good, VEC_PLAINTEXT);
	ig_session_key got;
	cr_assert_eq(open_raw(good, glen, &got), IG_OK);

	/* Offsets in the vector plaintext: 56 suite, 57 direction, 58 peer_len,
	 * 59 peer "b", 60 nonce_len, 61.. nonce "req-1". */
	uint8_t m[300];
	struct {
		size_t at;
		uint8_t val;
		const char *why;
	} edits[] = {
		{56, 0, "suite none"}, {56, 3, "suite 3"}, {57, 2, "direction 2"}, {57, 255, "direction 255"},
		{58, 0, "empty peer"}, {58, 2, "peer_len past nonce_len"}, {59, ' ', "space in peer"},
		{59, '/', "slash in peer"}, {60, 4, "nonce shorter than the rest"}, {60, 6, "nonce longer than the rest"},
		{61, 0x1f, "control char in nonce"}, {61, 0x7f, "DEL in nonce"}, {61, 0xc3, "non-ASCII in nonce"},
	};
	for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
		memcpy(m, good, glen);
		m[edits[i].at] = edits[i].val;
		cr_assert_eq(open_raw(m, glen, &got), IG_ERR_INVAL, "%s accepted", edits[i].why);
		uint8_t zero[sizeof got];
		memset(zero, 0, sizeof zero);
		cr_assert_arr_eq(&got, zero, sizeof got, "%s left fields behind", edits[i].why);
	}
	/* Trailing byte, missing byte. */
	memcpy(m, good, glen);
	m[glen] = 'x';
	cr_assert_eq(open_raw(m, glen + 1, &got), IG_ERR_INVAL);
	cr_assert_eq(open_raw(good, glen - 1, &got), IG_ERR_INVAL);
	/* Shortest possible with an empty nonce works; without the nonce_len
	 * byte it does not. */
	memcpy(m, good, 61);
	m[60] = 0;
	cr_assert_eq(open_raw(m, 61, &got), IG_OK);
	cr_assert_str_eq(got.request_nonce, "");
	cr_assert_lt(open_raw(m, 60, &got), 0);
	/* 65-char peer and 65-char nonce. */
	size_t pos = 58;
	memcpy(m, good, 58);
	m[pos++] = 65;
	memset(m + pos, 'p', 65);
	pos += 65;
	m[pos++] = 0;
	cr_assert_lt(open_raw(m, pos, &got), 0);
	pos = 58;
	m[pos++] = 1;
	m[pos++] = 'b';
	m[pos++] = 65;
	memset(m + pos, 'n', 65);
	pos += 65;
	cr_assert_lt(open_raw(m, pos, &got), 0);
	m[60] = 64;
	cr_assert_eq(open_raw(m, pos - 1, &got), IG_OK);
	cr_assert_eq(strlen(got.request_nonce), 64u);
	/* Fuzz the contents behind authentication: never crashes, and anything
	 * accepted is well-formed. */
	for (int iter = 0; iter < 2000; iter++) {
		memcpy(m, good, glen);
		size_t len = glen;
		int edits_n = 1 + (int)randombytes_uniform(3);
		for (int e = 0; e < edits_n; e++)
			m[48 + randombytes_uniform((uint32_t)(glen - 48))] = (uint8_t)randombytes_uniform(256);
		if (randombytes_uniform(4) == 0)
			len = 60 + randombytes_uniform((uint32_t)(glen - 59));
		if (open_raw(m, len, &got) == IG_OK) {
			cr_assert(got.suite == IG_SUITE_AES256GCM || got.suite == IG_SUITE_XCHACHA20POLY1305);
			cr_assert_leq(got.direction, 1);
			cr_assert(ig_id_valid(got.peer, strlen(got.peer)));
			cr_assert_leq(strlen(got.request_nonce), 64u);
		}
	}
}

Test(keybox, seal_refuses_bad_fields, .init = setup)
{
	ig_box_key bk;
	randombytes_buf(bk.k, sizeof bk.k);
	uint8_t box[512], nonce[24];
	ig_session_key k = sample_key(0, "b", "ok");
	cr_assert_gt(ig_keybox_seal(box, sizeof box, nonce, &k, &bk), 0);

	ig_session_key bad = k;
	bad.suite = IG_SUITE_NONE;
	cr_assert_eq(ig_keybox_seal(box, sizeof box, nonce, &bad, &bk), IG_ERR_INVAL);
	bad = k;
	bad.suite = (ig_suite)3;
	cr_assert_eq(ig_keybox_seal(box, sizeof box, nonce, &bad, &bk), IG_ERR_INVAL);
	bad = k;
	bad.direction = 2;
	cr_assert_eq(ig_keybox_seal(box, sizeof box, nonce, &bad, &bk), IG_ERR_INVAL);
	bad = k;
	bad.peer[0] = '\0';
	cr_assert_eq(ig_keybox_seal(box, sizeof box, nonce, &bad, &bk), IG_ERR_INVAL);
	strcpy(bad.peer, "a b");
	cr_assert_eq(ig_keybox_seal(box, sizeof box, nonce, &bad, &bk), IG_ERR_INVAL);
	memset(bad.peer, 'a', sizeof bad.peer); /* 65 chars, no terminator */
	cr_assert_eq(ig_keybox_seal(box, sizeof box, nonce, &bad, &bk), IG_ERR_INVAL);
	bad = k;
	memset(bad.request_nonce, 'n', sizeof bad.request_nonce); /* 65 chars, no terminator */
	cr_assert_eq(ig_keybox_seal(box, sizeof box, nonce, &bad, &bk), IG_ERR_INVAL);
	strcpy(bad.request_nonce, "tab\there");
	cr_assert_eq(ig_keybox_seal(box, sizeof box, nonce, &bad, &bk), IG_ERR_INVAL);
	strcpy(bad.request_nonce, "caf\xc3\xa9");
	cr_assert_eq(ig_keybox_seal(box, sizeof box, nonce, &bad, &bk), IG_ERR_INVAL);
	cr_assert_eq(ig_keybox_seal(NULL, sizeof box, nonce, &k, &bk), IG_ERR_INVAL);
	cr_assert_eq(ig_keybox_seal(box, sizeof box, NULL, &k, &bk), IG_ERR_INVAL);
	cr_assert_eq(ig_keybox_seal(box, sizeof box, nonce, &k, NULL), IG_ERR_INVAL);
	cr_assert_eq(ig_keybox_seal(box, 60 + 1 + 2 + 15, nonce, &k, &bk), IG_ERR_RANGE);
	cr_assert_eq(ig_keybox_seal(box, 60 + 1 + 2 + 16, nonce, &k, &bk), 79);
	ig_session_key got;
	cr_assert_eq(ig_keybox_open(&got, box, 3000, nonce, &bk), IG_ERR_INVAL);
	cr_assert_eq(ig_keybox_open(NULL, box, 79, nonce, &bk), IG_ERR_INVAL);
}

Test(keybox, box_keys_refuse_bad_points, .init = setup)
{
	party ch;
	fresh(&ch);
	ig_box_key bk;
	/* Small-order Ed25519 points (identity, order 4): X25519 with them would
	 * give a shared secret an attacker knows. */
	uint8_t identity[32] = {1}, order4[32] = {0};
	cr_assert_eq(ig_keybox_key_for_device(&bk, ch.sk, identity), IG_ERR_CRYPTO);
	cr_assert_eq(ig_keybox_key_for_device(&bk, ch.sk, order4), IG_ERR_CRYPTO);
	cr_assert_eq(ig_keybox_key_for_ch(&bk, ch.sk, identity), IG_ERR_CRYPTO);
	uint8_t zero[32] = {0};
	cr_assert_arr_eq(bk.k, zero, 32);
	cr_assert_eq(ig_keybox_key_for_device(NULL, ch.sk, ch.pk), IG_ERR_INVAL);
	cr_assert_eq(ig_keybox_key_for_device(&bk, NULL, ch.pk), IG_ERR_INVAL);
	cr_assert_eq(ig_keybox_key_for_ch(&bk, ch.sk, NULL), IG_ERR_INVAL);
}
