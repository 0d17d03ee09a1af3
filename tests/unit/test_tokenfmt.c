/*
 * test_tokenfmt.c: the format parts the connection token and the join token
 * share (lib/base/tokenfmt.c). Both parsers run before any authentication, so
 * the helpers are attacked directly: every prefix, length and byte boundary,
 * non-canonical base64, and random input that must never be accepted in a
 * second form.
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <string.h>

#include "ig_join.h"
#include "ig_token.h"
#include "ig_tokenfmt.h"
#include "testutil.h"

static uint8_t pk[32], sk[64];

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	tu_seed_keypair(pk, sk, 0x00);
}

TestSuite(tokenfmt, .init = setup);

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

Test(tokenfmt, text_round_trip_matches_libsodium)
{
	uint8_t bin[200], back[200];
	char text[400], want[400];
	for (size_t len = 1; len <= sizeof bin; len++) {
		for (size_t i = 0; i < len; i++)
			bin[i] = (uint8_t)next();
		int n = ig_tokenfmt_text_encode(text, sizeof text, "pfx.", bin, len);
		cr_assert_gt(n, 4);
		cr_assert_eq((size_t)n, strlen(text));
		memcpy(want, "pfx.", 4);
		sodium_bin2base64(want + 4, sizeof want - 4, bin, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		cr_assert_str_eq(text, want);
		cr_assert_null(strchr(text, '='), "no padding: %s", text);
		int m = ig_tokenfmt_text_decode(text, (size_t)n, "pfx.", sizeof text, back, sizeof back);
		cr_assert_eq(m, (int)len);
		cr_assert_eq(memcmp(back, bin, len), 0);
	}
}

Test(tokenfmt, text_encode_capacity_boundary)
{
	uint8_t bin[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
	char text[64];
	size_t need = 4 + sodium_base64_ENCODED_LEN(sizeof bin, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	cr_assert_eq(ig_tokenfmt_text_encode(text, need - 1, "pfx.", bin, sizeof bin), IG_ERR_RANGE);
	cr_assert_eq(ig_tokenfmt_text_encode(text, need, "pfx.", bin, sizeof bin), (int)(need - 1));
	cr_assert_eq(ig_tokenfmt_text_encode(text, 0, "pfx.", bin, sizeof bin), IG_ERR_RANGE);
}

Test(tokenfmt, text_decode_refuses_every_other_form)
{
	uint8_t bin[64];
	/* "AQID" is 01 02 03. */
	cr_assert_eq(ig_tokenfmt_text_decode("pfx.AQID", 8, "pfx.", 100, bin, sizeof bin), 3);
	static const char *const bad[] = {
		"pfx.",          /* nothing after the prefix */
		"pfx",           /* shorter than the prefix */
		"pfy.AQID",      /* wrong prefix */
		"PFX.AQID",      /* prefix is case-sensitive */
		"AQID",          /* no prefix */
		"pfx.AQID=",     /* padding */
		"pfx.AQ==",      /* padding */
		"pfx.AQ+D",      /* standard alphabet, not url-safe */
		"pfx.AQ/D",
		"pfx.AQ D",      /* space */
		"pfx.AQID\n",    /* trailing newline */
		"pfx.AR",        /* non-zero leftover bits (canonical form is AQ) */
		"pfx.AQF",       /* non-zero leftover bits (canonical form is AQE) */
		"pfx.A",         /* a lone sextet is no byte */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_eq(ig_tokenfmt_text_decode(bad[i], strlen(bad[i]), "pfx.", 100, bin, sizeof bin), IG_ERR_INVAL,
		             "accepted \"%s\"", bad[i]);
	cr_assert_eq(ig_tokenfmt_text_decode(NULL, 8, "pfx.", 100, bin, sizeof bin), IG_ERR_INVAL);
	/* an embedded NUL within len is a stray character, not an end */
	cr_assert_eq(ig_tokenfmt_text_decode("pfx.AQID\0AA", 11, "pfx.", 100, bin, sizeof bin), IG_ERR_INVAL);
	/* text_max is inclusive; bin_cap bounds the output */
	cr_assert_eq(ig_tokenfmt_text_decode("pfx.AQID", 8, "pfx.", 8, bin, sizeof bin), 3);
	cr_assert_eq(ig_tokenfmt_text_decode("pfx.AQID", 8, "pfx.", 7, bin, sizeof bin), IG_ERR_INVAL);
	cr_assert_eq(ig_tokenfmt_text_decode("pfx.AQID", 8, "pfx.", 100, bin, 3), 3);
	cr_assert_eq(ig_tokenfmt_text_decode("pfx.AQID", 8, "pfx.", 100, bin, 2), IG_ERR_INVAL);
}

Test(tokenfmt, random_text_is_never_accepted_in_a_second_form)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ .";
	char text[80], again[200];
	uint8_t bin[64];
	for (int iter = 0; iter < 20000; iter++) {
		size_t len = 4 + next() % 60;
		memcpy(text, "pfx.", 4);
		for (size_t i = 4; i < len; i++)
			text[i] = alphabet[next() % (sizeof alphabet - 1)];
		int n = ig_tokenfmt_text_decode(text, len, "pfx.", sizeof text, bin, sizeof bin);
		if (n < 0) {
			cr_assert_eq(n, IG_ERR_INVAL);
			continue;
		}
		int m = ig_tokenfmt_text_encode(again, sizeof again, "pfx.", bin, (size_t)n);
		cr_assert_eq((size_t)m, len);
		cr_assert_eq(memcmp(again, text, len), 0, "accepted a non-canonical form: %.*s", (int)len, text);
	}
}

Test(tokenfmt, names)
{
	char max[IG_ID_MAX + 2];
	size_t cl = 99, il = 99;
	memset(max, 'a', sizeof max);
	max[IG_ID_MAX] = '\0';
	cr_assert_eq(ig_tokenfmt_names("demo", "sensor-1", &cl, &il), IG_OK);
	cr_assert_eq(cl, 4);
	cr_assert_eq(il, 8);
	cr_assert_eq(ig_tokenfmt_names(max, max, &cl, &il), IG_OK);
	cr_assert_eq(cl, IG_ID_MAX);
	max[IG_ID_MAX] = 'a';
	max[IG_ID_MAX + 1] = '\0';
	cr_assert_eq(ig_tokenfmt_names(max, "x", &cl, &il), IG_ERR_INVAL);
	cr_assert_eq(ig_tokenfmt_names("x", max, &cl, &il), IG_ERR_INVAL);
	cr_assert_eq(ig_tokenfmt_names("", "x", &cl, &il), IG_ERR_INVAL);
	cr_assert_eq(ig_tokenfmt_names("x", "", &cl, &il), IG_ERR_INVAL);
	cr_assert_eq(ig_tokenfmt_names("a/b", "x", &cl, &il), IG_ERR_INVAL);
	cr_assert_eq(ig_tokenfmt_names("x", "a+b", &cl, &il), IG_ERR_INVAL);
}

#define FIXED 10 /* a made-up layout: head + 7 more bytes */

Test(tokenfmt, head_round_trip_and_exact_length)
{
	uint8_t bin[3 + 64 + 64 + 8];
	char cluster[IG_CLUSTER_MAX + 1], id[IG_ID_MAX + 1];
	size_t n = ig_tokenfmt_head_put(bin, 7, "demo", 4, "sensor-1", 8);
	cr_assert_eq(n, 3 + 4 + 8);
	static const uint8_t want[] = {7, 4, 'd', 'e', 'm', 'o', 8, 's', 'e', 'n', 's', 'o', 'r', '-', '1'};
	cr_assert_eq(memcmp(bin, want, sizeof want), 0);
	memset(bin + n, 0xee, 7);
	size_t total = n + 7;
	cr_assert_eq(ig_tokenfmt_head_get(bin, total, 7, FIXED, cluster, id), (int)n);
	cr_assert_str_eq(cluster, "demo");
	cr_assert_str_eq(id, "sensor-1");
	/* nothing missing, nothing trailing */
	for (size_t len = 0; len < total; len++)
		cr_assert_eq(ig_tokenfmt_head_get(bin, len, 7, FIXED, cluster, id), IG_ERR_INVAL, "len %zu", len);
	bin[total] = 0;
	cr_assert_eq(ig_tokenfmt_head_get(bin, total + 1, 7, FIXED, cluster, id), IG_ERR_INVAL);
	/* the version must match */
	cr_assert_eq(ig_tokenfmt_head_get(bin, total, 1, FIXED, cluster, id), IG_ERR_INVAL);
}

Test(tokenfmt, head_every_byte_tampered)
{
	uint8_t bin[64], t[64];
	char cluster[IG_CLUSTER_MAX + 1], id[IG_ID_MAX + 1];
	size_t n = ig_tokenfmt_head_put(bin, 1, "c1", 2, "dev9", 4);
	memset(bin + n, 0, 7);
	size_t total = n + 7;
	for (size_t i = 0; i < n; i++) {
		for (int bit = 0; bit < 8; bit++) {
			memcpy(t, bin, total);
			t[i] ^= (uint8_t)(1u << bit);
			int rc = ig_tokenfmt_head_get(t, total, 1, FIXED, cluster, id);
			if (rc < 0)
				continue;
			/* a flip inside a name may give another valid name, never the same one */
			cr_assert_eq(rc, (int)n);
			cr_assert(strcmp(cluster, "c1") != 0 || strcmp(id, "dev9") != 0, "byte %zu bit %d", i, bit);
			cr_assert(ig_id_valid(cluster, strlen(cluster)) && ig_id_valid(id, strlen(id)));
		}
	}
	/* name lengths 0 and 65 are out of range even when the total adds up */
	uint8_t z[3 + 65 + 1 + FIXED];
	memset(z, 'a', sizeof z);
	z[0] = 1;
	z[1] = 0;
	cr_assert_eq(ig_tokenfmt_head_get(z, FIXED + 1, 1, FIXED, cluster, id), IG_ERR_INVAL);
	z[1] = 65;
	z[2 + 65] = 1;
	cr_assert_eq(ig_tokenfmt_head_get(z, FIXED + 66, 1, FIXED, cluster, id), IG_ERR_INVAL);
	z[1] = 1;
	z[3] = 0;
	cr_assert_eq(ig_tokenfmt_head_get(z, FIXED + 1, 1, FIXED, cluster, id), IG_ERR_INVAL);
}

Test(tokenfmt, sign_is_ed25519_over_domain_nul_message)
{
	const uint8_t msg[] = "payload bytes";
	uint8_t sig[64], want[64], joined[64];
	cr_assert_eq(ig_tokenfmt_sign(sig, "dom-v1", msg, sizeof msg - 1, sk), IG_OK);
	memcpy(joined, "dom-v1", 7); /* with its NUL */
	memcpy(joined + 7, msg, sizeof msg - 1);
	crypto_sign_detached(want, NULL, joined, 7 + sizeof msg - 1, sk);
	cr_assert_eq(memcmp(sig, want, 64), 0);
	cr_assert_eq(ig_tokenfmt_verify(sig, "dom-v1", msg, sizeof msg - 1, pk), IG_OK);
	/* another domain, a moved separator, or any flipped bit fails */
	cr_assert_eq(ig_tokenfmt_verify(sig, "dom-v2", msg, sizeof msg - 1, pk), IG_ERR_CRYPTO);
	cr_assert_eq(ig_tokenfmt_verify(sig, "dom-v1p", msg + 1, sizeof msg - 2, pk), IG_ERR_CRYPTO);
	uint8_t t[sizeof msg];
	for (size_t i = 0; i < sizeof msg - 1; i++) {
		memcpy(t, msg, sizeof msg);
		t[i] ^= 0x01;
		cr_assert_eq(ig_tokenfmt_verify(sig, "dom-v1", t, sizeof msg - 1, pk), IG_ERR_CRYPTO, "byte %zu", i);
	}
	for (size_t i = 0; i < 64; i++) {
		uint8_t s2[64];
		memcpy(s2, sig, 64);
		s2[i] ^= 0x80;
		cr_assert_eq(ig_tokenfmt_verify(s2, "dom-v1", msg, sizeof msg - 1, pk), IG_ERR_CRYPTO, "sig byte %zu", i);
	}
}

Test(tokenfmt, sign_length_bound)
{
	static uint8_t big[IG_TOKENFMT_SIGNED_MAX];
	uint8_t sig[64];
	size_t fits = IG_TOKENFMT_SIGNED_MAX - 4; /* "abc" + NUL */
	cr_assert_eq(ig_tokenfmt_sign(sig, "abc", big, fits, sk), IG_OK);
	cr_assert_eq(ig_tokenfmt_verify(sig, "abc", big, fits, pk), IG_OK);
	cr_assert_eq(ig_tokenfmt_sign(sig, "abc", big, fits + 1, sk), IG_ERR_RANGE);
	cr_assert_eq(ig_tokenfmt_verify(sig, "abc", big, fits + 1, pk), IG_ERR_CRYPTO);
}

/* Both tokens are built from these parts: their signatures verify with the
 * helper over the bytes before the signature, under their own domain only. */
Test(tokenfmt, both_tokens_use_the_shared_parts)
{
	uint8_t nonce[16] = {0}, bin[512];
	char tok[IG_TOKEN_TEXT_MAX + 1];
	int n = ig_token_mint(tok, sizeof tok, sk, "demo", "sensor-1", 100, 400, nonce);
	cr_assert_gt(n, 0);
	int len = ig_tokenfmt_text_decode(tok, (size_t)n, IG_TOKEN_PREFIX, IG_TOKEN_TEXT_MAX, bin, sizeof bin);
	cr_assert_gt(len, 64);
	char cluster[IG_CLUSTER_MAX + 1], id[IG_ID_MAX + 1];
	cr_assert_eq(ig_tokenfmt_head_get(bin, (size_t)len, IG_TOKEN_VERSION, (size_t)len - 12, cluster, id), 15);
	cr_assert_str_eq(cluster, "demo");
	cr_assert_str_eq(id, "sensor-1");
	size_t body = (size_t)len - 64;
	cr_assert_eq(ig_tokenfmt_verify(bin + body, IG_TOKEN_DOMAIN, bin, body, pk), IG_OK);
	cr_assert_eq(ig_tokenfmt_verify(bin + body, IG_JOIN_DOMAIN, bin, body, pk), IG_ERR_CRYPTO);

	ig_join_key jk;
	uint8_t code_id[8], hash[32];
	char code[IG_JOIN_CODE_TEXT_LEN + 1], jt[IG_JOIN_TOKEN_TEXT_MAX + 1];
	ig_join_key_derive(&jk, sk);
	ig_join_code_new(&jk, code_id, hash, code);
	n = ig_join_token_mint(jt, sizeof jt, sk, "demo", "dev9", code, 100, 400, nonce);
	cr_assert_gt(n, 0);
	len = ig_tokenfmt_text_decode(jt, (size_t)n, IG_JOIN_TOKEN_PREFIX, IG_JOIN_TOKEN_TEXT_MAX, bin, sizeof bin);
	cr_assert_gt(len, 64);
	body = (size_t)len - 64;
	cr_assert_eq(ig_tokenfmt_verify(bin + body, IG_JOIN_DOMAIN, bin, body, pk), IG_OK);
	cr_assert_eq(ig_tokenfmt_verify(bin + body, IG_TOKEN_DOMAIN, bin, body, pk), IG_ERR_CRYPTO);
	/* each parser refuses the other's text */
	ig_token_claims tc;
	ig_join_claims jc;
	cr_assert_eq(ig_token_parse(jt, strlen(jt), &tc), IG_ERR_INVAL);
	cr_assert_eq(ig_join_token_parse(tok, strlen(tok), &jc), IG_ERR_INVAL);
}

static bool in_alphabet(int ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
	       ch == '_';
}

/* libsodium 1.0.18 decodes bytes 0x80-0xff as the value of '_'. A token with
 * its '_' replaced by such a byte must not be a second spelling of it, for
 * either token; neither may any other byte outside the alphabet. */
Test(tokenfmt, bytes_outside_the_alphabet_are_refused)
{
	char tok[IG_TOKEN_TEXT_MAX + 1], jt[IG_JOIN_TOKEN_TEXT_MAX + 1];
	int n = 0, jn = 0;
	size_t at = 0, jat = 0;
	uint8_t nonce[16] = {0};
	/* Find tokens whose text has a '_' after the prefix. */
	for (int i = 0; i < 256 && !at; i++) {
		nonce[0] = (uint8_t)i;
		n = ig_token_mint(tok, sizeof tok, sk, "demo", "sensor-1", 100, 400, nonce);
		cr_assert_gt(n, 0);
		const char *u = strchr(tok + strlen(IG_TOKEN_PREFIX), '_');
		at = u ? (size_t)(u - tok) : 0;
	}
	cr_assert_gt(at, 0);
	ig_join_key jk;
	uint8_t code_id[8], hash[32];
	char code[IG_JOIN_CODE_TEXT_LEN + 1];
	ig_join_key_derive(&jk, sk);
	ig_join_code_new(&jk, code_id, hash, code);
	for (int i = 0; i < 256 && !jat; i++) {
		nonce[0] = (uint8_t)i;
		jn = ig_join_token_mint(jt, sizeof jt, sk, "demo", "dev9", code, 100, 400, nonce);
		cr_assert_gt(jn, 0);
		const char *u = strchr(jt + strlen(IG_JOIN_TOKEN_PREFIX), '_');
		jat = u ? (size_t)(u - jt) : 0;
	}
	cr_assert_gt(jat, 0);

	ig_token_claims tc;
	ig_join_claims jc;
	cr_assert_eq(ig_token_verify(tok, (size_t)n, pk, &tc), IG_OK);
	cr_assert_eq(ig_join_token_parse(jt, (size_t)jn, &jc), IG_OK);
	for (int ch = 0; ch < 256; ch++) {
		if (in_alphabet(ch))
			continue;
		char t2[sizeof tok], j2[sizeof jt];
		memcpy(t2, tok, sizeof tok);
		memcpy(j2, jt, sizeof jt);
		t2[at] = (char)ch;
		j2[jat] = (char)ch;
		cr_assert_lt(ig_token_parse(t2, (size_t)n, &tc), 0, "byte 0x%02x accepted in a connection token", ch);
		cr_assert_lt(ig_token_verify(t2, (size_t)n, pk, &tc), 0, "byte 0x%02x verified in a connection token", ch);
		cr_assert_lt(ig_join_token_parse(j2, (size_t)jn, &jc), 0, "byte 0x%02x accepted in a join token", ch);
		uint8_t bin[512];
		cr_assert_lt(ig_tokenfmt_text_decode(t2, (size_t)n, IG_TOKEN_PREFIX, IG_TOKEN_TEXT_MAX, bin, sizeof bin), 0);
	}
}
