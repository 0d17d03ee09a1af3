/*
 * test_token.c: the token parser faces the network before any
 * authentication, so it is attacked here: every byte tampered, every
 * truncation, random garbage, non-canonical encodings. The pinned vector
 * (also in docs/PROTOCOL.md) was cross-checked with an independent Ed25519
 * implementation (Python "cryptography").
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "ig_token.h"
#include "testutil.h"

#define VEC_ISSUED 1767225600ull
#define VEC_EXPIRES 1767225900ull
#define VEC_PK "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
#define VEC_SIGNED                                                                                         \
	"696f7467756172642d746f6b656e2d763100010464656d6f0873656e736f722d31000000006955b900000000006955ba2c" \
	"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
#define VEC_TOKEN                                                                                          \
	"igt1.AQRkZW1vCHNlbnNvci0xAAAAAGlVuQAAAAAAaVW6LKChoqOkpaanqKmqq6ytrq_GUMumf8I4dfjDQhb29s88adarxnmN5eSv" \
	"IjB3JpUxwbYjN9KFIOvMLyrh2P8xjR0jjvBw_yCU07kdbZNLa6YH"

static uint8_t pk[32], sk[64], nonce[16];

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	tu_seq_bytes(nonce, 16, 0xa0);
	tu_seed_keypair(pk, sk, 0x00);
}

TestSuite(token, .init = setup);

static const int b64 = sodium_base64_VARIANT_URLSAFE_NO_PADDING;

static size_t to_bin(const char *tok, uint8_t *bin, size_t cap)
{
	size_t n = 0;
	cr_assert_eq(sodium_base642bin(bin, cap, tok + 5, strlen(tok) - 5, NULL, &n, NULL, b64), 0);
	return n;
}

static void to_text(char *out, size_t cap, const uint8_t *bin, size_t len)
{
	cr_assert(cap >= 5 + sodium_base64_ENCODED_LEN(len, b64));
	memcpy(out, "igt1.", 5);
	sodium_bin2base64(out + 5, cap - 5, bin, len, b64);
}

/* Re-signs a hand-built payload with the vector key, so tests can reach
 * the layout checks behind a valid signature. */
static void sign_payload(char *out, size_t cap, const uint8_t *payload, size_t len)
{
	uint8_t msg[512], bin[512];
	memcpy(msg, "iotguard-token-v1", 18);
	memcpy(msg + 18, payload, len);
	memcpy(bin, payload, len);
	crypto_sign_detached(bin + len, NULL, msg, 18 + len, sk);
	to_text(out, cap, bin, len + 64);
}

Test(token, pinned_vector)
{
	char tok[IG_TOKEN_TEXT_MAX + 1];
	char hex[65];
	ig_hex_encode(hex, pk, 32);
	cr_assert_str_eq(hex, VEC_PK);
	int n = ig_token_mint(tok, sizeof tok, sk, "demo", "sensor-1", VEC_ISSUED, VEC_EXPIRES, nonce);
	cr_assert_eq(n, (int)strlen(VEC_TOKEN));
	cr_assert_str_eq(tok, VEC_TOKEN);

	/* the signed bytes are domain || 0x00 || payload */
	uint8_t bin[IG_TOKEN_BIN_MAX], msg[256];
	size_t blen = to_bin(tok, bin, sizeof bin);
	memcpy(msg, "iotguard-token-v1", 18);
	memcpy(msg + 18, bin, blen - 64);
	char shex[600];
	ig_hex_encode(shex, msg, 18 + blen - 64);
	cr_assert_str_eq(shex, VEC_SIGNED);

	ig_token_claims c;
	cr_assert_eq(ig_token_verify(VEC_TOKEN, strlen(VEC_TOKEN), pk, &c), IG_OK);
	cr_assert_eq(c.version, 1);
	cr_assert_str_eq(c.cluster, "demo");
	cr_assert_str_eq(c.id, "sensor-1");
	cr_assert_eq(c.issued_at, VEC_ISSUED);
	cr_assert_eq(c.expires_at, VEC_EXPIRES);
	cr_assert_eq(memcmp(c.nonce, nonce, 16), 0);
}

Test(token, pinned_vector_in_protocol_doc)
{
	const char *doc = tu_read_doc("PROTOCOL.md");
	cr_assert_not_null(strstr(doc, VEC_TOKEN), "PROTOCOL.md must print the pinned token");
	cr_assert_not_null(strstr(doc, VEC_SIGNED), "PROTOCOL.md must print the signed bytes");
	cr_assert_not_null(strstr(doc, VEC_PK), "PROTOCOL.md must print the public key");
}

Test(token, round_trip_random_nonce)
{
	char a[IG_TOKEN_TEXT_MAX + 1], b[IG_TOKEN_TEXT_MAX + 1];
	int na = ig_token_mint(a, sizeof a, sk, "c", "d", 1, 2, NULL);
	int nb = ig_token_mint(b, sizeof b, sk, "c", "d", 1, 2, NULL);
	cr_assert_gt(na, 0);
	cr_assert_eq(na, nb);
	cr_assert_str_neq(a, b, "random nonces must differ");
	ig_token_claims c;
	cr_assert_eq(ig_token_verify(a, (size_t)na, pk, &c), IG_OK);
	cr_assert_str_eq(c.cluster, "c");
	cr_assert_str_eq(c.id, "d");
	cr_assert_eq(c.issued_at, 1);
	cr_assert_eq(c.expires_at, 2);
}

Test(token, longest_fits_text_max)
{
	char cl[65], id[65];
	memset(cl, 'C', 64);
	cl[64] = '\0';
	memset(id, 'i', 64);
	id[64] = '\0';
	char tok[IG_TOKEN_TEXT_MAX + 1];
	int n = ig_token_mint(tok, sizeof tok, sk, cl, id, UINT64_MAX, UINT64_MAX, NULL);
	cr_assert_gt(n, 0);
	cr_assert_leq(n, IG_TOKEN_TEXT_MAX);
	ig_token_claims c;
	cr_assert_eq(ig_token_verify(tok, (size_t)n, pk, &c), IG_OK);
	cr_assert_str_eq(c.id, id);
	cr_assert_eq(c.expires_at, UINT64_MAX);
}

Test(token, mint_refuses_bad_input)
{
	char tok[IG_TOKEN_TEXT_MAX + 1];
	char long_id[70];
	memset(long_id, 'a', 65);
	long_id[65] = '\0';
	cr_assert_lt(ig_token_mint(tok, sizeof tok, sk, "", "x", 1, 2, NULL), 0);
	cr_assert_lt(ig_token_mint(tok, sizeof tok, sk, "c", "", 1, 2, NULL), 0);
	cr_assert_lt(ig_token_mint(tok, sizeof tok, sk, "c", "a b", 1, 2, NULL), 0);
	cr_assert_lt(ig_token_mint(tok, sizeof tok, sk, "c/x", "a", 1, 2, NULL), 0);
	cr_assert_lt(ig_token_mint(tok, sizeof tok, sk, "c", long_id, 1, 2, NULL), 0);
	cr_assert_lt(ig_token_mint(tok, sizeof tok, sk, NULL, "a", 1, 2, NULL), 0);
	/* too small a buffer: one byte short of the text plus NUL */
	int n = ig_token_mint(tok, sizeof tok, sk, "demo", "sensor-1", 1, 2, nonce);
	cr_assert_gt(n, 0);
	cr_assert_eq(ig_token_mint(tok, (size_t)n, sk, "demo", "sensor-1", 1, 2, nonce), IG_ERR_RANGE);
	cr_assert_eq(ig_token_mint(tok, (size_t)n + 1, sk, "demo", "sensor-1", 1, 2, nonce), n);
}

Test(token, wrong_key_refused)
{
	uint8_t pk2[32], sk2[64];
	crypto_sign_keypair(pk2, sk2);
	ig_token_claims c;
	cr_assert_eq(ig_token_verify(VEC_TOKEN, strlen(VEC_TOKEN), pk2, &c), IG_ERR_CRYPTO);
	/* parse alone does not need the key */
	cr_assert_eq(ig_token_parse(VEC_TOKEN, strlen(VEC_TOKEN), &c), IG_OK);
	cr_assert_str_eq(c.id, "sensor-1");
}

Test(token, every_single_byte_tamper_refused)
{
	uint8_t bin[IG_TOKEN_BIN_MAX], t[IG_TOKEN_BIN_MAX];
	size_t len = to_bin(VEC_TOKEN, bin, sizeof bin);
	cr_assert_eq(len, 47 + 64);
	const uint8_t deltas[] = {0x01, 0x80, 0xff, 0x20};
	for (size_t i = 0; i < len; i++) {
		for (size_t d = 0; d < sizeof deltas; d++) {
			memcpy(t, bin, len);
			t[i] ^= deltas[d];
			char txt[IG_TOKEN_TEXT_MAX + 1];
			to_text(txt, sizeof txt, t, len);
			ig_token_claims c;
			cr_assert_neq(ig_token_verify(txt, strlen(txt), pk, &c), IG_OK, "byte %zu ^ %02x accepted", i,
			              deltas[d]);
		}
	}
}

Test(token, every_text_char_tamper_refused)
{
	const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/. \n";
	size_t len = strlen(VEC_TOKEN);
	char t[IG_TOKEN_TEXT_MAX + 1];
	for (size_t i = 0; i < len; i++) {
		for (const char *a = alphabet; *a; a++) {
			if (*a == VEC_TOKEN[i])
				continue;
			memcpy(t, VEC_TOKEN, len + 1);
			t[i] = *a;
			ig_token_claims c;
			cr_assert_neq(ig_token_verify(t, len, pk, &c), IG_OK, "char %zu -> '%c' accepted", i, *a);
		}
	}
}

Test(token, truncation_at_every_length_refused)
{
	size_t len = strlen(VEC_TOKEN);
	ig_token_claims c;
	for (size_t n = 0; n < len; n++) {
		cr_assert_neq(ig_token_verify(VEC_TOKEN, n, pk, &c), IG_OK, "text cut at %zu accepted", n);
		cr_assert_neq(ig_token_parse(VEC_TOKEN, n, &c), IG_OK, "text cut at %zu parsed", n);
	}
	/* and binary truncations (re-encoded canonically) */
	uint8_t bin[IG_TOKEN_BIN_MAX];
	size_t blen = to_bin(VEC_TOKEN, bin, sizeof bin);
	for (size_t n = 0; n < blen; n++) {
		char txt[IG_TOKEN_TEXT_MAX + 1];
		to_text(txt, sizeof txt, bin, n);
		cr_assert_neq(ig_token_parse(txt, strlen(txt), &c), IG_OK, "binary cut at %zu parsed", n);
	}
}

Test(token, trailing_bytes_refused)
{
	uint8_t bin[IG_TOKEN_BIN_MAX + 8];
	size_t blen = to_bin(VEC_TOKEN, bin, sizeof bin);
	ig_token_claims c;
	for (size_t extra = 1; extra <= 4; extra++) {
		memset(bin + blen, 0, extra);
		char txt[IG_TOKEN_TEXT_MAX + 1];
		to_text(txt, sizeof txt, bin, blen + extra);
		cr_assert_neq(ig_token_parse(txt, strlen(txt), &c), IG_OK, "%zu trailing bytes parsed", extra);
	}
	/* trailing text characters */
	char txt[IG_TOKEN_TEXT_MAX + 8];
	snprintf(txt, sizeof txt, "%s=", VEC_TOKEN);
	cr_assert_neq(ig_token_parse(txt, strlen(txt), &c), IG_OK);
	snprintf(txt, sizeof txt, "%s\n", VEC_TOKEN);
	cr_assert_neq(ig_token_parse(txt, strlen(txt), &c), IG_OK);
	/* an embedded NUL inside the given length */
	snprintf(txt, sizeof txt, "%s", VEC_TOKEN);
	size_t len = strlen(txt);
	txt[len] = '\0';
	cr_assert_neq(ig_token_parse(txt, len + 1, &c), IG_OK);
}

Test(token, non_canonical_base64_refused)
{
	/* The vector binary is 111 bytes: 111 % 3 == 0, so no leftover bits.
	 * Use a 1-byte-shorter id (110 bytes) to get leftover bits and set them. */
	char tok[IG_TOKEN_TEXT_MAX + 1];
	int n = ig_token_mint(tok, sizeof tok, sk, "demo", "sensor1", 1, 2, nonce);
	cr_assert_gt(n, 0);
	ig_token_claims c;
	cr_assert_eq(ig_token_verify(tok, (size_t)n, pk, &c), IG_OK);
	/* 110 bytes -> 147 chars, last char carries 4 data bits + 2 zero bits */
	char last = tok[n - 1];
	const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	int idx = (int)(strchr(alpha, last) - alpha);
	cr_assert_eq(idx & 0x03, 0, "canonical encoding has zero padding bits");
	tok[n - 1] = alpha[idx | 1];
	cr_assert_neq(ig_token_parse(tok, (size_t)n, &c), IG_OK, "non-zero padding bits accepted");
}

Test(token, text_length_cap)
{
	static char big[IG_TOKEN_TEXT_MAX + 100];
	memcpy(big, "igt1.", 5);
	memset(big + 5, 'A', sizeof big - 5);
	ig_token_claims c;
	cr_assert_neq(ig_token_parse(big, sizeof big, &c), IG_OK);
	cr_assert_neq(ig_token_parse(big, IG_TOKEN_TEXT_MAX + 1, &c), IG_OK);
	cr_assert_neq(ig_token_parse(NULL, 10, &c), IG_OK);
	cr_assert_neq(ig_token_parse(VEC_TOKEN, strlen(VEC_TOKEN), NULL), IG_OK);
	cr_assert_neq(ig_token_parse("IGT1.AQRk", 9, &c), IG_OK);
	cr_assert_neq(ig_token_parse("igt1.", 5, &c), IG_OK);
	cr_assert_neq(ig_token_parse("igt2.AQRk", 9, &c), IG_OK);
}

Test(token, layout_checks_behind_valid_signature)
{
	/* Build payloads by hand, each wrong in exactly one way but correctly
	 * signed, so only the layout checks can refuse them. */
	uint8_t p[256];
	char txt[IG_TOKEN_TEXT_MAX + 1];
	ig_token_claims c;
	size_t len;

#define BUILD(ver, clen, cl, ilen, id)                      \
	do {                                                     \
		len = 0;                                             \
		p[len++] = (ver);                                    \
		p[len++] = (clen);                                   \
		memcpy(p + len, cl, strlen(cl));                     \
		len += strlen(cl);                                   \
		p[len++] = (ilen);                                   \
		memcpy(p + len, id, strlen(id));                     \
		len += strlen(id);                                   \
		memset(p + len, 0x11, 32);                           \
		len += 32;                                           \
	} while (0)

	BUILD(1, 4, "demo", 3, "dev");
	sign_payload(txt, sizeof txt, p, len);
	cr_assert_eq(ig_token_verify(txt, strlen(txt), pk, &c), IG_OK, "control case must pass");

	BUILD(2, 4, "demo", 3, "dev");
	sign_payload(txt, sizeof txt, p, len);
	cr_assert_eq(ig_token_verify(txt, strlen(txt), pk, &c), IG_ERR_INVAL, "version 2");
	BUILD(0, 4, "demo", 3, "dev");
	sign_payload(txt, sizeof txt, p, len);
	cr_assert_eq(ig_token_verify(txt, strlen(txt), pk, &c), IG_ERR_INVAL, "version 0");
	BUILD(1, 4, "de/o", 3, "dev");
	sign_payload(txt, sizeof txt, p, len);
	cr_assert_eq(ig_token_verify(txt, strlen(txt), pk, &c), IG_ERR_INVAL, "bad cluster char");
	BUILD(1, 4, "demo", 3, "d+v");
	sign_payload(txt, sizeof txt, p, len);
	cr_assert_eq(ig_token_verify(txt, strlen(txt), pk, &c), IG_ERR_INVAL, "bad id char");
	BUILD(1, 4, "demo", 3, "dxv");
	p[8] = 0; /* NUL inside the id */
	sign_payload(txt, sizeof txt, p, len);
	cr_assert_eq(ig_token_verify(txt, strlen(txt), pk, &c), IG_ERR_INVAL, "short id (length lies)");
	BUILD(1, 0, "", 3, "dev");
	sign_payload(txt, sizeof txt, p, len);
	cr_assert_eq(ig_token_verify(txt, strlen(txt), pk, &c), IG_ERR_INVAL, "empty cluster");
	BUILD(1, 4, "demo", 0, "");
	sign_payload(txt, sizeof txt, p, len);
	cr_assert_eq(ig_token_verify(txt, strlen(txt), pk, &c), IG_ERR_INVAL, "empty id");
	/* length byte says more than is there / less than is there */
	BUILD(1, 5, "demo", 3, "dev");
	sign_payload(txt, sizeof txt, p, len);
	cr_assert_eq(ig_token_verify(txt, strlen(txt), pk, &c), IG_ERR_INVAL, "cluster_len too big");
	BUILD(1, 4, "demo", 2, "dev");
	sign_payload(txt, sizeof txt, p, len);
	cr_assert_eq(ig_token_verify(txt, strlen(txt), pk, &c), IG_ERR_INVAL, "id_len too small");
	/* 65-character id and cluster */
	char s65[66];
	memset(s65, 'a', 65);
	s65[65] = '\0';
	BUILD(1, 4, "demo", 65, s65);
	sign_payload(txt, sizeof txt, p, len);
	cr_assert_eq(ig_token_verify(txt, strlen(txt), pk, &c), IG_ERR_INVAL, "65-byte id");
	BUILD(1, 65, s65, 3, "dev");
	sign_payload(txt, sizeof txt, p, len);
	cr_assert_eq(ig_token_verify(txt, strlen(txt), pk, &c), IG_ERR_INVAL, "65-byte cluster");
	BUILD(1, 255, "demo", 3, "dev");
	sign_payload(txt, sizeof txt, p, len);
	cr_assert_eq(ig_token_verify(txt, strlen(txt), pk, &c), IG_ERR_INVAL, "cluster_len 255");
#undef BUILD
}

Test(token, domain_separation)
{
	/* A signature over the bare payload (no domain string) must not verify. */
	uint8_t bin[IG_TOKEN_BIN_MAX];
	size_t blen = to_bin(VEC_TOKEN, bin, sizeof bin);
	crypto_sign_detached(bin + blen - 64, NULL, bin, blen - 64, sk);
	char txt[IG_TOKEN_TEXT_MAX + 1];
	to_text(txt, sizeof txt, bin, blen);
	ig_token_claims c;
	cr_assert_eq(ig_token_verify(txt, strlen(txt), pk, &c), IG_ERR_CRYPTO);
}

Test(token, random_garbage_fuzz)
{
	char buf[IG_TOKEN_TEXT_MAX + 1];
	uint8_t bin[IG_TOKEN_BIN_MAX];
	ig_token_claims c;
	for (int i = 0; i < 20000; i++) {
		size_t len = randombytes_uniform(IG_TOKEN_TEXT_MAX + 1);
		if (i % 2 == 0) {
			/* raw random bytes */
			randombytes_buf(buf, len);
		} else {
			/* well-formed base64 of random binary: reaches the layout checks */
			size_t blen = randombytes_uniform(sizeof bin);
			randombytes_buf(bin, blen);
			if (blen > 0)
				bin[0] = 1;
			to_text(buf, sizeof buf, bin, blen);
			len = strlen(buf);
		}
		int rp = ig_token_parse(buf, len, &c);
		int rv = ig_token_verify(buf, len, pk, &c);
		cr_assert_neq(rv, IG_OK, "random input verified");
		if (rp == IG_OK) {
			cr_assert(ig_id_valid(c.id, strlen(c.id)));
			cr_assert(ig_id_valid(c.cluster, strlen(c.cluster)));
		}
	}
}

Test(token, structured_fuzz_valid_layout)
{
	/* Random valid layouts must parse and fields must round-trip. */
	const char *alpha = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-";
	for (int i = 0; i < 500; i++) {
		char cl[65], id[65];
		size_t cn = 1 + randombytes_uniform(64), in = 1 + randombytes_uniform(64);
		for (size_t k = 0; k < cn; k++)
			cl[k] = alpha[randombytes_uniform(65)];
		for (size_t k = 0; k < in; k++)
			id[k] = alpha[randombytes_uniform(65)];
		cl[cn] = id[in] = '\0';
		uint64_t ia = ((uint64_t)randombytes_random() << 32) | randombytes_random();
		uint64_t ea = ((uint64_t)randombytes_random() << 32) | randombytes_random();
		char tok[IG_TOKEN_TEXT_MAX + 1];
		int n = ig_token_mint(tok, sizeof tok, sk, cl, id, ia, ea, NULL);
		cr_assert_gt(n, 0);
		ig_token_claims c;
		cr_assert_eq(ig_token_verify(tok, (size_t)n, pk, &c), IG_OK);
		cr_assert_str_eq(c.cluster, cl);
		cr_assert_str_eq(c.id, id);
		cr_assert_eq(c.issued_at, ia);
		cr_assert_eq(c.expires_at, ea);
	}
}

/* The CONNECT path decodes once and verifies the decoded bytes
 * (ig_token_decode + ig_token_verify_decoded); it must agree with
 * ig_token_verify on every tampered byte, and refuse what the parser refuses. */
Test(token, decoded_verify_agrees_with_text_verify)
{
	ig_token_decoded d;
	cr_assert_eq(ig_token_decode(&d, VEC_TOKEN, strlen(VEC_TOKEN)), IG_OK);
	cr_assert_str_eq(d.claims.id, "sensor-1");
	cr_assert_str_eq(d.claims.cluster, "demo");
	cr_assert_eq(d.claims.issued_at, VEC_ISSUED);
	cr_assert_eq(d.claims.expires_at, VEC_EXPIRES);
	cr_assert_eq(ig_token_verify_decoded(&d, pk), IG_OK);
	uint8_t pk2[32], sk2[64];
	crypto_sign_keypair(pk2, sk2);
	cr_assert_eq(ig_token_verify_decoded(&d, pk2), IG_ERR_CRYPTO);

	uint8_t bin[IG_TOKEN_BIN_MAX], t[IG_TOKEN_BIN_MAX];
	size_t len = to_bin(VEC_TOKEN, bin, sizeof bin);
	for (size_t i = 0; i < len; i++) {
		memcpy(t, bin, len);
		t[i] ^= 0x01;
		char txt[IG_TOKEN_TEXT_MAX + 1];
		to_text(txt, sizeof txt, t, len);
		ig_token_claims c;
		int whole = ig_token_verify(txt, strlen(txt), pk, &c);
		int split = ig_token_decode(&d, txt, strlen(txt));
		if (split == IG_OK)
			split = ig_token_verify_decoded(&d, pk);
		cr_assert_neq(split, IG_OK, "byte %zu tampered accepted", i);
		cr_assert_eq(split, whole, "byte %zu: decode+verify %d, verify %d", i, split, whole);
	}
	/* Malformed input leaves nothing behind. */
	cr_assert_eq(ig_token_decode(&d, "igt1.AAAA", 9), IG_ERR_INVAL);
	cr_assert(tu_all_zero(&d, sizeof d));
	cr_assert_eq(ig_token_verify_decoded(&d, pk), IG_ERR_INVAL);
	cr_assert_eq(ig_token_decode(NULL, VEC_TOKEN, strlen(VEC_TOKEN)), IG_ERR_INVAL);
}
