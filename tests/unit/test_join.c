/*
 * test_join.c: the join token is checked before the device has any
 * identity, so it gets the connection token's treatment: a pinned vector
 * (cross-checked with Python's hmac/hashlib and the "cryptography" Ed25519
 * implementation), every-byte tamper, every truncation, garbage, and
 * hand-built tokens that are valid except for one thing. The code table is
 * driven with record sequences a crash or a bug could leave in a ledger.
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "ig_join.h"
#include "ig_joincodes.h"
#include "ig_record.h"
#include "ig_registry.h"
#include "testutil.h"

#define VEC_JOIN_KEY "47b4302c4420826cd4232feacdc2ea9f8ec06fa664ecdd29d10c585af52f8337"
#define VEC_SECRET "7bb48d06c7b9b1d0c36847ee7e7196bd"
#define VEC_CODE "igjc1-10111213141516177bb48d06c7b9b1d0c36847ee7e7196bd"
#define VEC_HASH "4d460a7268ecd33ba6bd41b0aef35cad26f17481cfe0f86473b44dc37bc2575e"
#define VEC_DEV_PK "29acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd7"
#define VEC_MAC "f053f1dc2bef8666eca012fa2bc4f51ec61b567fc3bd20eb8f320e1788bcb4b7"
#define VEC_ISSUED 1767225600ull
#define VEC_EXPIRES 1767225900ull
#define VEC_TOKEN                                                                                          \
	"igj1.AQRkZW1vCHNlbnNvci05Kay64UG8yvCyLhqU000LxzYeUm0L_hLIl5S8kyKWbdcQERITFBUWFwAAAABpVbkAAAAAAGlVuiyg" \
	"oaKjpKWmp6ipqqusra6v8FPx3CvvhmbsoBL6K8T1HsYbVn_DvSDrjzIOF4i8tLcE3lA4sAWWOhj-I2gMxvuMzMHY-x7il-T9bvae" \
	"7YRdJkecteikaB3eYVbISuFvxOkcsogCbPwsq44B1TqkKBkN"

static uint8_t ch_pk[32], ch_sk[64], dev_pk[32], dev_sk[64], other_pk[32], other_sk[64];
static uint8_t code_id[8], nonce[16];
static ig_join_key jk;
static const int b64 = sodium_base64_VARIANT_URLSAFE_NO_PADDING;

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	tu_seed_keypair(ch_pk, ch_sk, 0x00);
	tu_seed_keypair(dev_pk, dev_sk, 0x20);
	tu_seed_keypair(other_pk, other_sk, 0x80);
	tu_seq_bytes(code_id, sizeof code_id, 0x10);
	tu_seq_bytes(nonce, 16, 0xa0);
	ig_join_key_derive(&jk, ch_sk);
}

TestSuite(join, .init = setup);

static void hex_eq(const uint8_t *b, size_t n, const char *want)
{
	char hex[200];
	ig_hex_encode(hex, b, n);
	cr_assert_str_eq(hex, want);
}

static void vec_secret(uint8_t secret[16])
{
	ig_join_secret(&jk, code_id, secret);
}

static int mint_vec(char *out, size_t cap)
{
	return ig_join_token_mint(out, cap, dev_sk, "demo", "sensor-9", VEC_CODE, VEC_ISSUED, VEC_EXPIRES, nonce);
}

/* ---- codes ---------------------------------------------------------------- */

Test(join, pinned_code_vector)
{
	hex_eq(jk.k, 32, VEC_JOIN_KEY);
	uint8_t secret[16], hash[32];
	vec_secret(secret);
	hex_eq(secret, 16, VEC_SECRET);
	ig_join_code_hash(hash, code_id, secret);
	hex_eq(hash, 32, VEC_HASH);

	uint8_t id2[8], secret2[16];
	cr_assert_eq(ig_join_code_parse(VEC_CODE, id2, secret2), IG_OK);
	cr_expect_eq(memcmp(id2, code_id, 8), 0);
	cr_expect_eq(memcmp(secret2, secret, 16), 0);
	cr_expect_eq(strlen(VEC_CODE), IG_JOIN_CODE_TEXT_LEN);
}

Test(join, new_codes_round_trip)
{
	char seen[20][IG_JOIN_CODE_TEXT_LEN + 1];
	for (int i = 0; i < 20; i++) {
		uint8_t id[8], hash[32], pid[8], psecret[16], secret[16], h2[32];
		char text[IG_JOIN_CODE_TEXT_LEN + 1];
		memset(text, 'x', sizeof text);
		ig_join_code_new(&jk, id, hash, text);
		cr_assert_eq(strlen(text), 54);
		cr_assert_eq(strncmp(text, "igjc1-", 6), 0);
		cr_assert_eq(ig_join_code_parse(text, pid, psecret), IG_OK);
		cr_assert_eq(memcmp(pid, id, 8), 0);
		ig_join_secret(&jk, id, secret);
		cr_assert_eq(memcmp(psecret, secret, 16), 0, "the cluster head re-derives the secret from code_id");
		ig_join_code_hash(h2, id, secret);
		cr_assert_eq(memcmp(h2, hash, 32), 0);
		for (int j = 0; j < i; j++)
			cr_assert_str_neq(seen[j], text);
		strcpy(seen[i], text);
	}
	/* a different cluster-head key gives different secrets for the same id */
	ig_join_key other;
	ig_join_key_derive(&other, other_sk);
	uint8_t s1[16], s2[16];
	ig_join_secret(&jk, code_id, s1);
	ig_join_secret(&other, code_id, s2);
	cr_expect_neq(memcmp(s1, s2, 16), 0);
}

Test(join, code_parse_is_lenient_only_about_case_and_spaces)
{
	uint8_t id[8], secret[16];
	const char *ok[] = {
		VEC_CODE,
		"IGJC1-10111213141516177BB48D06C7B9B1D0C36847EE7E7196BD",
		"  " VEC_CODE "\n",
		"\t" VEC_CODE "\r\n",
		"igjc1-10111213141516177bB48D06c7b9b1d0c36847ee7e7196Bd",
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		memset(id, 0, 8);
		cr_expect_eq(ig_join_code_parse(ok[i], id, secret), IG_OK, "'%s'", ok[i]);
		cr_expect_eq(memcmp(id, code_id, 8), 0);
		hex_eq(secret, 16, VEC_SECRET);
	}
	const char *bad[] = {
		"",
		"   ",
		"igjc1-",
		"igjc2-10111213141516177bb48d06c7b9b1d0c36847ee7e7196bd",
		"igjc1_10111213141516177bb48d06c7b9b1d0c36847ee7e7196bd",
		"igj1.10111213141516177bb48d06c7b9b1d0c36847ee7e7196bd",
		"10111213141516177bb48d06c7b9b1d0c36847ee7e7196bd",
		"igjc1-10111213141516177bb48d06c7b9b1d0c36847ee7e7196b",     /* 47 hex */
		"igjc1-10111213141516177bb48d06c7b9b1d0c36847ee7e7196bd0",   /* 49 hex */
		"igjc1-10111213141516177bb48d06c7b9b1d0c36847ee7e7196bd00",  /* 50 hex */
		"igjc1-1011121314151617 bb48d06c7b9b1d0c36847ee7e7196bd",
		"igjc1-10111213141516177bb48d06c7b9b1d0c36847ee7e7196bg",
		"igjc1-10111213141516177bb48d06c7b9b1d0c36847ee7e7196b:",
		"igjc1-x0111213141516177bb48d06c7b9b1d0c36847ee7e7196bd",
		"igjc1--0111213141516177bb48d06c7b9b1d0c36847ee7e7196bd",
		"xigjc1-10111213141516177bb48d06c7b9b1d0c36847ee7e7196bd",
		VEC_CODE " x",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_expect_eq(ig_join_code_parse(bad[i], id, secret), IG_ERR_INVAL, "'%s' must be refused", bad[i]);
	cr_expect_eq(ig_join_code_parse(NULL, id, secret), IG_ERR_INVAL);
	cr_expect_eq(ig_join_code_parse(VEC_CODE, NULL, secret), IG_ERR_INVAL);
	cr_expect_eq(ig_join_code_parse(VEC_CODE, id, NULL), IG_ERR_INVAL);
	/* every single-character corruption of the hex part */
	char buf[IG_JOIN_CODE_TEXT_LEN + 1];
	for (size_t i = 0; i < IG_JOIN_CODE_TEXT_LEN; i++) {
		strcpy(buf, VEC_CODE);
		buf[i] = (i < 6) ? 'z' : 'g';
		cr_expect_eq(ig_join_code_parse(buf, id, secret), IG_ERR_INVAL, "corrupt at %zu", i);
	}
}

/* ---- token ---------------------------------------------------------------- */

Test(join, pinned_token_vector)
{
	char tok[IG_JOIN_TOKEN_TEXT_MAX + 1];
	int n = mint_vec(tok, sizeof tok);
	cr_assert_eq(n, (int)strlen(VEC_TOKEN), "length %d", n);
	cr_assert_str_eq(tok, VEC_TOKEN);

	ig_join_claims c;
	cr_assert_eq(ig_join_token_parse(tok, (size_t)n, &c), IG_OK);
	cr_expect_str_eq(c.cluster, "demo");
	cr_expect_str_eq(c.id, "sensor-9");
	hex_eq(c.pk, 32, VEC_DEV_PK);
	cr_expect_eq(memcmp(c.code_id, code_id, 8), 0);
	cr_expect_eq(c.issued_at, VEC_ISSUED);
	cr_expect_eq(c.expires_at, VEC_EXPIRES);
	cr_expect_eq(memcmp(c.nonce, nonce, 16), 0);

	uint8_t secret[16];
	vec_secret(secret);
	memset(&c, 0, sizeof c);
	cr_assert_eq(ig_join_token_verify(tok, (size_t)n, secret, &c), IG_OK);
	cr_expect_str_eq(c.id, "sensor-9");

	/* the documented layout: mac sits before the 64-byte signature */
	uint8_t bin[400];
	size_t bl = 0;
	cr_assert_eq(sodium_base642bin(bin, sizeof bin, tok + 5, strlen(tok) - 5, NULL, &bl, NULL, b64), 0);
	cr_assert_eq(bl, 1 + 1 + 4 + 1 + 8 + 32 + 8 + 8 + 8 + 16 + 32 + 64);
	hex_eq(bin + bl - 96, 32, VEC_MAC);
}

/* Builds a token by hand from its fields, with the mac keyed by mac_secret
 * and the signature by sign_sk, so one property at a time can be wrong. */
static void build(char *out, size_t cap, uint8_t version, const char *cluster, size_t cluster_len, const char *id,
                  size_t id_len, const uint8_t pk[32], const uint8_t *mac_secret, const uint8_t *sign_sk,
                  size_t extra)
{
	uint8_t bin[600], msg[700];
	size_t pos = 0;
	bin[pos++] = version;
	bin[pos++] = (uint8_t)cluster_len;
	memcpy(bin + pos, cluster, cluster_len);
	pos += cluster_len;
	bin[pos++] = (uint8_t)id_len;
	memcpy(bin + pos, id, id_len);
	pos += id_len;
	memcpy(bin + pos, pk, 32);
	pos += 32;
	memcpy(bin + pos, code_id, 8);
	pos += 8;
	ig_put_u64(bin + pos, VEC_ISSUED);
	pos += 8;
	ig_put_u64(bin + pos, VEC_EXPIRES);
	pos += 8;
	memcpy(bin + pos, nonce, 16);
	pos += 16;
	memset(bin + pos, 0, extra);   /* stray bytes inside the signed part */
	pos += extra;
	memcpy(msg, "iotguard-join-v1", 17);
	memcpy(msg + 17, bin, pos);
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, mac_secret, 16);
	crypto_auth_hmacsha256_update(&st, msg, 17 + pos);
	crypto_auth_hmacsha256_final(&st, bin + pos);
	pos += 32;
	memcpy(msg + 17, bin, pos);
	crypto_sign_detached(bin + pos, NULL, msg, 17 + pos, sign_sk);
	pos += 64;
	cr_assert(cap >= 5 + sodium_base64_ENCODED_LEN(pos, b64));
	memcpy(out, "igj1.", 5);
	sodium_bin2base64(out + 5, cap - 5, bin, pos, b64);
}

Test(join, hand_built_token_equals_minted)
{
	uint8_t secret[16];
	vec_secret(secret);
	char a[600];
	build(a, sizeof a, 1, "demo", 4, "sensor-9", 8, dev_pk, secret, dev_sk, 0);
	cr_expect_str_eq(a, VEC_TOKEN, "the layout in ig_join.h is what the code writes");
}

Test(join, wrong_secret_or_key_fails_crypto)
{
	uint8_t secret[16], wrong[16];
	vec_secret(secret);
	memcpy(wrong, secret, 16);
	wrong[15] ^= 1;
	char t[600];
	ig_join_claims c;

	cr_expect_eq(ig_join_token_verify(VEC_TOKEN, strlen(VEC_TOKEN), wrong, &c), IG_ERR_CRYPTO, "mac: wrong secret");
	cr_expect_eq(c.id[0], '\0', "claims cleared on failure");

	/* valid mac, signature by a key other than the embedded one */
	build(t, sizeof t, 1, "demo", 4, "sensor-9", 8, dev_pk, secret, other_sk, 0);
	cr_expect_eq(ig_join_token_parse(t, strlen(t), &c), IG_OK);
	cr_expect_eq(ig_join_token_verify(t, strlen(t), secret, &c), IG_ERR_CRYPTO, "sig: wrong device key");

	/* valid signature, mac by a different code's secret */
	build(t, sizeof t, 1, "demo", 4, "sensor-9", 8, dev_pk, wrong, dev_sk, 0);
	cr_expect_eq(ig_join_token_verify(t, strlen(t), secret, &c), IG_ERR_CRYPTO, "mac of another code");

	/* a consistent token for another key verifies, naming that key */
	build(t, sizeof t, 1, "demo", 4, "sensor-9", 8, other_pk, secret, other_sk, 0);
	cr_expect_eq(ig_join_token_verify(t, strlen(t), secret, &c), IG_OK);
	cr_expect_eq(memcmp(c.pk, other_pk, 32), 0);

	/* a token minted from a different code does not verify with this one */
	ig_join_key other;
	ig_join_key_derive(&other, other_sk);
	uint8_t osecret[16], id2[8] = {0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17};
	ig_join_secret(&other, id2, osecret);
	char code[IG_JOIN_CODE_TEXT_LEN + 1], raw_hex[49];
	uint8_t raw[24];
	memcpy(raw, id2, 8);
	memcpy(raw + 8, osecret, 16);
	ig_hex_encode(raw_hex, raw, 24);
	snprintf(code, sizeof code, "igjc1-%s", raw_hex);
	cr_assert_eq(ig_join_token_mint(t, sizeof t, dev_sk, "demo", "sensor-9", code, 10, 20, NULL) > 0, 1);
	cr_expect_eq(ig_join_token_verify(t, strlen(t), secret, &c), IG_ERR_CRYPTO, "another cluster's code");
	cr_expect_eq(ig_join_token_verify(t, strlen(t), osecret, &c), IG_OK);
}

Test(join, every_byte_tamper_fails)
{
	uint8_t secret[16];
	vec_secret(secret);
	uint8_t bin[400];
	size_t bl = 0;
	cr_assert_eq(sodium_base642bin(bin, sizeof bin, VEC_TOKEN + 5, strlen(VEC_TOKEN) - 5, NULL, &bl, NULL, b64), 0);
	char t[600];
	ig_join_claims c;
	for (size_t i = 0; i < bl; i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			bin[i] ^= (uint8_t)(1u << bit);
			memcpy(t, "igj1.", 5);
			sodium_bin2base64(t + 5, sizeof t - 5, bin, bl, b64);
			int rc = ig_join_token_verify(t, strlen(t), secret, &c);
			cr_assert(rc == IG_ERR_CRYPTO || rc == IG_ERR_INVAL, "byte %zu bit %d accepted (rc %d)", i, bit, rc);
			bin[i] ^= (uint8_t)(1u << bit);
		}
	}
	/* every text character replaced */
	size_t n = strlen(VEC_TOKEN);
	for (size_t i = 0; i < n; i++) {
		strcpy(t, VEC_TOKEN);
		t[i] = t[i] == 'A' ? 'B' : 'A';
		cr_assert_neq(ig_join_token_verify(t, n, secret, &c), IG_OK, "char %zu", i);
	}
}

Test(join, truncation_and_garbage_fail)
{
	uint8_t secret[16];
	vec_secret(secret);
	ig_join_claims c;
	size_t n = strlen(VEC_TOKEN);
	for (size_t len = 0; len < n; len++) {
		cr_assert_eq(ig_join_token_parse(VEC_TOKEN, len, &c), IG_ERR_INVAL, "prefix of %zu", len);
		cr_assert_neq(ig_join_token_verify(VEC_TOKEN, len, secret, &c), IG_OK);
	}
	char t[1200];
	snprintf(t, sizeof t, "%sA", VEC_TOKEN);
	cr_expect_eq(ig_join_token_parse(t, strlen(t), &c), IG_ERR_INVAL, "trailing character");
	snprintf(t, sizeof t, "%sAA", VEC_TOKEN);
	cr_expect_eq(ig_join_token_parse(t, strlen(t), &c), IG_ERR_INVAL, "trailing byte");
	snprintf(t, sizeof t, "%s=", VEC_TOKEN);
	cr_expect_eq(ig_join_token_parse(t, strlen(t), &c), IG_ERR_INVAL, "padding");
	snprintf(t, sizeof t, "igt1.%s", VEC_TOKEN + 5);
	cr_expect_eq(ig_join_token_parse(t, strlen(t), &c), IG_ERR_INVAL, "connection-token prefix");
	snprintf(t, sizeof t, "IGJ1.%s", VEC_TOKEN + 5);
	cr_expect_eq(ig_join_token_parse(t, strlen(t), &c), IG_ERR_INVAL);
	cr_expect_eq(ig_join_token_parse(NULL, 10, &c), IG_ERR_INVAL);
	cr_expect_eq(ig_join_token_parse(VEC_TOKEN, n, NULL), IG_ERR_INVAL);
	cr_expect_eq(ig_join_token_verify(VEC_TOKEN, n, NULL, &c), IG_ERR_INVAL);
	/* 184 bytes leave 4 unused bits in the last character; setting one
	 * gives a second spelling of the same bytes, which is refused */
	int tn = ig_join_token_mint(t, sizeof t, dev_sk, "demo", "sensor-10", VEC_CODE, VEC_ISSUED, VEC_EXPIRES, nonce);
	cr_assert_gt(tn, 0);
	cr_assert_eq(ig_join_token_parse(t, (size_t)tn, &c), IG_OK);
	const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const char *at = strchr(alpha, t[tn - 1]);
	cr_assert_not_null(at);
	cr_assert_eq((at - alpha) & 0xf, 0, "canonical: unused bits are zero");
	t[tn - 1] = alpha[(at - alpha) | 1];
	cr_expect_eq(ig_join_token_parse(t, (size_t)tn, &c), IG_ERR_INVAL, "non-canonical base64");
	/* a NUL inside the stated length */
	strcpy(t, VEC_TOKEN);
	t[40] = '\0';
	cr_expect_eq(ig_join_token_parse(t, n, &c), IG_ERR_INVAL);
	/* oversized */
	memset(t, 'A', sizeof t);
	memcpy(t, "igj1.", 5);
	cr_expect_eq(ig_join_token_parse(t, sizeof t, &c), IG_ERR_INVAL);
	cr_expect_eq(ig_join_token_parse(t, IG_JOIN_TOKEN_TEXT_MAX, &c), IG_ERR_INVAL);

	/* random garbage with the right prefix */
	uint8_t rnd[300];
	for (int i = 0; i < 3000; i++) {
		size_t len = randombytes_uniform(sizeof rnd);
		randombytes_buf(rnd, len);
		memcpy(t, "igj1.", 5);
		sodium_bin2base64(t + 5, sizeof t - 5, rnd, len, b64);
		cr_assert_neq(ig_join_token_verify(t, strlen(t), secret, &c), IG_OK);
		/* raw bytes, not even base64 */
		randombytes_buf(t, 64);
		cr_assert_eq(ig_join_token_parse(t, 64, &c), IG_ERR_INVAL);
	}
}

Test(join, layout_violations_behind_valid_crypto_fail)
{
	uint8_t secret[16];
	vec_secret(secret);
	char t[700];
	ig_join_claims c;
	char long_id[70];
	memset(long_id, 'a', sizeof long_id);

	build(t, sizeof t, 2, "demo", 4, "sensor-9", 8, dev_pk, secret, dev_sk, 0);
	cr_expect_eq(ig_join_token_verify(t, strlen(t), secret, &c), IG_ERR_INVAL, "version 2");
	build(t, sizeof t, 0, "demo", 4, "sensor-9", 8, dev_pk, secret, dev_sk, 0);
	cr_expect_eq(ig_join_token_verify(t, strlen(t), secret, &c), IG_ERR_INVAL, "version 0");
	build(t, sizeof t, 1, "demo", 0, "sensor-9", 8, dev_pk, secret, dev_sk, 0);
	cr_expect_eq(ig_join_token_verify(t, strlen(t), secret, &c), IG_ERR_INVAL, "empty cluster");
	build(t, sizeof t, 1, "demo", 4, "sensor-9", 0, dev_pk, secret, dev_sk, 0);
	cr_expect_eq(ig_join_token_verify(t, strlen(t), secret, &c), IG_ERR_INVAL, "empty id");
	build(t, sizeof t, 1, "demo", 4, long_id, 65, dev_pk, secret, dev_sk, 0);
	cr_expect_eq(ig_join_token_verify(t, strlen(t), secret, &c), IG_ERR_INVAL, "65-char id");
	build(t, sizeof t, 1, long_id, 65, "sensor-9", 8, dev_pk, secret, dev_sk, 0);
	cr_expect_eq(ig_join_token_verify(t, strlen(t), secret, &c), IG_ERR_INVAL, "65-char cluster");
	build(t, sizeof t, 1, "demo", 4, long_id, 64, dev_pk, secret, dev_sk, 0);
	cr_expect_eq(ig_join_token_verify(t, strlen(t), secret, &c), IG_OK, "64-char id is fine");
	build(t, sizeof t, 1, "demo", 4, "sens/r-9", 8, dev_pk, secret, dev_sk, 0);
	cr_expect_eq(ig_join_token_verify(t, strlen(t), secret, &c), IG_ERR_INVAL, "slash in id");
	build(t, sizeof t, 1, "de+o", 4, "sensor-9", 8, dev_pk, secret, dev_sk, 0);
	cr_expect_eq(ig_join_token_verify(t, strlen(t), secret, &c), IG_ERR_INVAL, "wildcard in cluster");
	build(t, sizeof t, 1, "demo", 4, "sensor-9", 8, dev_pk, secret, dev_sk, 1);
	cr_expect_eq(ig_join_token_verify(t, strlen(t), secret, &c), IG_ERR_INVAL, "one stray byte");
	/* id length byte pointing past the end */
	build(t, sizeof t, 1, "demo", 4, "sensor-9", 8, dev_pk, secret, dev_sk, 0);
	uint8_t bin[400];
	size_t bl;
	cr_assert_eq(sodium_base642bin(bin, sizeof bin, t + 5, strlen(t) - 5, NULL, &bl, NULL, b64), 0);
	bin[1] = 200;
	memcpy(t, "igj1.", 5);
	sodium_bin2base64(t + 5, sizeof t - 5, bin, bl, b64);
	cr_expect_eq(ig_join_token_parse(t, strlen(t), &c), IG_ERR_INVAL);
}

Test(join, mint_checks_its_inputs)
{
	char t[IG_JOIN_TOKEN_TEXT_MAX + 1];
	cr_expect_eq(ig_join_token_mint(t, sizeof t, dev_sk, "demo", "d", VEC_CODE, 100, 100 + IG_JOIN_MAX_TTL + 1, NULL),
	             IG_ERR_RANGE, "longer than 10 minutes");
	cr_expect_gt(ig_join_token_mint(t, sizeof t, dev_sk, "demo", "d", VEC_CODE, 100, 100 + IG_JOIN_MAX_TTL, NULL), 0);
	cr_expect_eq(ig_join_token_mint(t, sizeof t, dev_sk, "demo", "d", VEC_CODE, 100, 100, NULL), IG_ERR_RANGE);
	cr_expect_eq(ig_join_token_mint(t, sizeof t, dev_sk, "demo", "d", VEC_CODE, 100, 99, NULL), IG_ERR_RANGE);
	cr_expect_eq(ig_join_token_mint(t, sizeof t, dev_sk, "demo", "d", "igjc1-zz", 1, 2, NULL), IG_ERR_INVAL);
	cr_expect_eq(ig_join_token_mint(t, sizeof t, dev_sk, "demo", "a/b", VEC_CODE, 1, 2, NULL), IG_ERR_INVAL);
	cr_expect_eq(ig_join_token_mint(t, sizeof t, dev_sk, "", "d", VEC_CODE, 1, 2, NULL), IG_ERR_INVAL);
	cr_expect_eq(ig_join_token_mint(t, sizeof t, dev_sk, "demo", "d", NULL, 1, 2, NULL), IG_ERR_INVAL);
	cr_expect_eq(ig_join_token_mint(NULL, 10, dev_sk, "demo", "d", VEC_CODE, 1, 2, NULL), IG_ERR_INVAL);
	cr_expect_eq(mint_vec(t, strlen(VEC_TOKEN)), IG_ERR_RANGE, "no room for the NUL");
	cr_expect_eq(mint_vec(t, strlen(VEC_TOKEN) + 1), (int)strlen(VEC_TOKEN));

	/* the longest token fits the documented maximum */
	char cl[65], id[65];
	memset(cl, 'c', 64);
	cl[64] = '\0';
	memset(id, 'i', 64);
	id[64] = '\0';
	int n = ig_join_token_mint(t, sizeof t, dev_sk, cl, id, VEC_CODE, 1, 2, NULL);
	cr_expect_gt(n, 0);
	cr_expect_leq(n, IG_JOIN_TOKEN_TEXT_MAX);
	ig_join_claims c;
	uint8_t secret[16];
	vec_secret(secret);
	cr_expect_eq(ig_join_token_verify(t, (size_t)n, secret, &c), IG_OK);
	cr_expect_str_eq(c.id, id);

	/* random nonces differ */
	char a[IG_JOIN_TOKEN_TEXT_MAX + 1], b[IG_JOIN_TOKEN_TEXT_MAX + 1];
	ig_join_token_mint(a, sizeof a, dev_sk, "demo", "d", VEC_CODE, 1, 2, NULL);
	ig_join_token_mint(b, sizeof b, dev_sk, "demo", "d", VEC_CODE, 1, 2, NULL);
	cr_expect_str_neq(a, b);
}

/* ---- join-code table -------------------------------------------------------- */

static uint8_t bodies[64][1024];
static int body_next;

static ig_record rec_of(uint16_t type, const uint8_t *body, int len, uint64_t index)
{
	cr_assert_gt(len, 0, "encoder failed: %d", len);
	ig_record r;
	memset(&r, 0, sizeof r);
	r.type = type;
	r.index = index;
	r.ts_ms = 1000 * index;
	r.body = body;
	r.body_len = (uint32_t)len;
	return r;
}

static ig_record code_rec(const uint8_t id[8], ig_role role, uint64_t index)
{
	ig_join_code_rec j;
	memset(&j, 0, sizeof j);
	memcpy(j.code_id, id, 8);
	memset(j.hash, 0x5a, 32);
	j.role = role;
	j.expires_at = 2000000000;
	strcpy(j.by, "admin1");
	uint8_t *b = bodies[body_next++ % 64];
	return rec_of(IG_REC_JOIN_CODE, b, ig_record_join_code_encode(b, 1024, &j), index);
}

static ig_record used_rec(const uint8_t id[8], const char *who, uint64_t index)
{
	ig_join_used u;
	memset(&u, 0, sizeof u);
	memcpy(u.code_id, id, 8);
	strcpy(u.id, who);
	uint8_t *b = bodies[body_next++ % 64];
	return rec_of(IG_REC_JOIN_USED, b, ig_record_join_used_encode(b, 1024, &u), index);
}

static ig_record enroll_rec(const char *who, ig_role role, const uint8_t *code, uint64_t index)
{
	ig_enroll e;
	memset(&e, 0, sizeof e);
	strcpy(e.id, who);
	e.role = role;
	memcpy(e.pk, dev_pk, 32);
	if (code) {
		e.has_join_code = true;
		memcpy(e.join_code, code, 8);
		snprintf(e.by, sizeof e.by, "join:%02x%02x%02x%02x%02x%02x%02x%02x", code[0], code[1], code[2], code[3],
		         code[4], code[5], code[6], code[7]);
	} else {
		strcpy(e.by, "admin1");
	}
	uint8_t *b = bodies[body_next++ % 64];
	return rec_of(IG_REC_ENROLL, b, ig_record_enroll_encode(b, 1024, &e), index);
}

static int apply(ig_joincodes *jc, ig_record r, ig_error *err)
{
	memset(err, 0, sizeof *err);
	return ig_joincodes_apply(jc, &r, err);
}

Test(join, table_normal_join)
{
	ig_joincodes *jc = ig_joincodes_new();
	cr_assert_not_null(jc);
	ig_error err;
	cr_assert_eq(apply(jc, code_rec(code_id, IG_ROLE_DEVICE, 3), &err), IG_OK, "%s", err.msg);
	ig_join_code_entry *e = ig_joincodes_find(jc, code_id);
	cr_assert_not_null(e);
	cr_expect_eq(e->status, IG_CODE_UNUSED);
	cr_expect_eq(e->role, IG_ROLE_DEVICE);
	cr_expect_eq(e->expires_at, 2000000000);
	cr_expect_eq(e->created_index, 3);
	cr_expect_eq(e->hash[0], 0x5a);
	cr_expect_eq(ig_joincodes_count(jc, IG_CODE_UNUSED), 1);
	cr_expect_eq(ig_joincodes_count(jc, IG_CODE_USED), 0);

	e->in_flight = true;   /* the plugin marks a join in progress */
	cr_assert_eq(apply(jc, enroll_rec("dev9", IG_ROLE_DEVICE, code_id, 4), &err), IG_OK, "%s", err.msg);
	cr_expect_eq(e->status, IG_CODE_USED, "the enroll alone consumes the code (crash between the records)");
	cr_expect_not(e->in_flight);
	cr_expect_eq(ig_joincodes_count(jc, IG_CODE_UNUSED), 0);
	cr_expect_eq(ig_joincodes_count(jc, IG_CODE_USED), 1);
	cr_assert_eq(apply(jc, used_rec(code_id, "dev9", 5), &err), IG_OK, "%s", err.msg);
	cr_expect_eq(ig_joincodes_count(jc, IG_CODE_USED), 1, "enroll + join-used is one use");
	cr_expect_eq(apply(jc, used_rec(code_id, "dev9", 6), &err), IG_OK, "repeating join-used is idempotent");

	cr_expect_eq(apply(jc, used_rec(code_id, "dev10", 7), &err), IG_ERR_CORRUPT, "another id");
	cr_expect_not_null(strstr(err.msg, "already used by \"dev9\""), "%s", err.msg);
	cr_expect_eq(apply(jc, enroll_rec("dev10", IG_ROLE_DEVICE, code_id, 8), &err), IG_ERR_CORRUPT);
	cr_expect_eq(apply(jc, enroll_rec("dev9", IG_ROLE_DEVICE, code_id, 9), &err), IG_ERR_CORRUPT,
	             "a second enrolment through one code");
	cr_expect_not_null(strstr(err.msg, "second time"), "%s", err.msg);
	ig_joincodes_free(jc);
}

Test(join, table_used_before_enroll_and_errors)
{
	ig_joincodes *jc = ig_joincodes_new();
	cr_assert_not_null(jc);
	ig_error err;
	uint8_t c2[8] = {9, 9, 9, 9, 9, 9, 9, 9}, unknown[8] = {1};
	cr_assert_eq(apply(jc, code_rec(code_id, IG_ROLE_DEVICE, 1), &err), IG_OK, "%s", err.msg);
	cr_assert_eq(apply(jc, code_rec(c2, IG_ROLE_ANALYST, 2), &err), IG_OK, "%s", err.msg);
	cr_expect_eq(apply(jc, code_rec(code_id, IG_ROLE_DEVICE, 3), &err), IG_ERR_CORRUPT, "duplicate code");
	cr_expect_not_null(strstr(err.msg, "1011121314151617"), "message names the code: %s", err.msg);
	cr_expect_eq(ig_joincodes_count(jc, IG_CODE_UNUSED), 2);

	cr_expect_eq(apply(jc, used_rec(unknown, "dev1", 4), &err), IG_ERR_CORRUPT, "unknown code");
	cr_expect_not_null(strstr(err.msg, "never created"), "%s", err.msg);
	cr_expect_eq(apply(jc, enroll_rec("dev1", IG_ROLE_DEVICE, unknown, 5), &err), IG_ERR_CORRUPT);
	cr_expect_eq(apply(jc, enroll_rec("dev1", IG_ROLE_DEVICE, c2, 6), &err), IG_ERR_CORRUPT, "role differs");
	cr_expect_not_null(strstr(err.msg, "grants analyst"), "%s", err.msg);
	cr_expect_eq(ig_joincodes_find(jc, c2)->status, IG_CODE_UNUSED);

	/* JOIN_USED first, then the enroll: still one use */
	cr_assert_eq(apply(jc, used_rec(c2, "ana1", 7), &err), IG_OK, "%s", err.msg);
	cr_assert_eq(apply(jc, enroll_rec("ana1", IG_ROLE_ANALYST, c2, 8), &err), IG_OK, "%s", err.msg);
	cr_expect_eq(apply(jc, enroll_rec("ana1", IG_ROLE_ANALYST, c2, 9), &err), IG_ERR_CORRUPT);

	/* records that do not concern codes are ignored */
	cr_expect_eq(apply(jc, enroll_rec("dev2", IG_ROLE_DEVICE, NULL, 10), &err), IG_OK);
	ig_revoke rv;
	memset(&rv, 0, sizeof rv);
	strcpy(rv.id, "dev2");
	strcpy(rv.by, "admin1");
	uint8_t b[256];
	cr_expect_eq(apply(jc, rec_of(IG_REC_REVOKE, b, ig_record_revoke_encode(b, sizeof b, &rv), 11), &err), IG_OK);
	cr_expect_eq(apply(jc, rec_of(IG_REC_KEY_ISSUED, b, 3, 12), &err), IG_OK);
	cr_expect_eq(ig_joincodes_count(jc, IG_CODE_UNUSED), 1);
	cr_expect_eq(ig_joincodes_count(jc, IG_CODE_USED), 1);

	/* malformed bodies are corruption */
	uint8_t junk[3] = {1, 0, 9};
	cr_expect_eq(apply(jc, rec_of(IG_REC_JOIN_CODE, junk, 3, 13), &err), IG_ERR_CORRUPT);
	cr_expect_eq(apply(jc, rec_of(IG_REC_JOIN_USED, junk, 3, 14), &err), IG_ERR_CORRUPT);
	cr_expect_eq(apply(jc, rec_of(IG_REC_ENROLL, junk, 3, 15), &err), IG_ERR_CORRUPT);
	/* a role byte of 0 */
	size_t pos = 0;
	uint8_t role0 = 0, exp[8];
	ig_put_u64(exp, 5);
	uint8_t hash[32] = {0}, id3[8] = {3};
	cr_assert_eq(ig_record_tlv_put(b, sizeof b, &pos, IG_TAG_JOIN_CODE_ID, id3, 8), IG_OK);
	cr_assert_eq(ig_record_tlv_put(b, sizeof b, &pos, IG_TAG_JOIN_CODE_HASH, hash, 32), IG_OK);
	cr_assert_eq(ig_record_tlv_put(b, sizeof b, &pos, IG_TAG_JOIN_CODE_ROLE, &role0, 1), IG_OK);
	cr_assert_eq(ig_record_tlv_put(b, sizeof b, &pos, IG_TAG_JOIN_CODE_EXPIRES, exp, 8), IG_OK);
	cr_assert_eq(ig_record_tlv_put(b, sizeof b, &pos, IG_TAG_JOIN_CODE_BY, "x", 1), IG_OK);
	cr_expect_eq(apply(jc, rec_of(IG_REC_JOIN_CODE, b, (int)pos, 16), &err), IG_ERR_CORRUPT);
	cr_expect_null(ig_joincodes_find(jc, id3));

	cr_expect_eq(ig_joincodes_apply(NULL, NULL, &err), IG_ERR_INVAL);
	cr_expect_null(ig_joincodes_find(NULL, code_id));
	cr_expect_null(ig_joincodes_find(jc, NULL));
	cr_expect_eq(ig_joincodes_count(NULL, IG_CODE_USED), 0);
	cr_expect_eq(ig_joincodes_count(jc, (ig_code_status)7), 0);
	ig_joincodes_free(jc);
	ig_joincodes_free(NULL);
}

Test(join, table_scales)
{
	ig_joincodes *jc = ig_joincodes_new();
	cr_assert_not_null(jc);
	ig_error err;
	enum { N = 20000 };
	for (uint32_t i = 0; i < N; i++) {
		uint8_t id[8] = {0};
		ig_put_u32(id + 4, i * 2654435761u);
		cr_assert_eq(apply(jc, code_rec(id, IG_ROLE_DEVICE, i + 1), &err), IG_OK, "%s", err.msg);
	}
	for (uint32_t i = 0; i < N; i++) {
		uint8_t id[8] = {0};
		ig_put_u32(id + 4, i * 2654435761u);
		ig_join_code_entry *e = ig_joincodes_find(jc, id);
		cr_assert_not_null(e, "code %u", i);
		cr_assert_eq(e->created_index, i + 1);
		if (i % 2) {
			char who[16];
			snprintf(who, sizeof who, "d%u", i);
			cr_assert_eq(apply(jc, used_rec(id, who, N + i), &err), IG_OK, "%s", err.msg);
		}
	}
	cr_expect_eq(ig_joincodes_count(jc, IG_CODE_UNUSED), N / 2);
	cr_expect_eq(ig_joincodes_count(jc, IG_CODE_USED), N / 2);
	uint8_t absent[8] = {0xff, 0xff};
	cr_expect_null(ig_joincodes_find(jc, absent));
	ig_joincodes_free(jc);
}

Test(join, protocol_doc_prints_the_vector)
{
	const char *doc = tu_read_doc("PROTOCOL.md");
	const char *want[] = {VEC_TOKEN, VEC_CODE, VEC_MAC, VEC_HASH, VEC_JOIN_KEY, VEC_SECRET, VEC_DEV_PK,
	                      "## Joining the cluster"};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		cr_expect_not_null(strstr(doc, want[i]), "docs/PROTOCOL.md should contain %s", want[i]);
}

/* ---- admission of the claimed id (issue 7) ---- */

static void reg_enroll(ig_registry *r, const char *id, uint64_t index)
{
	uint8_t body[512];
	size_t n = tu_enroll_body(body, sizeof body, id, IG_ROLE_DEVICE, dev_pk, "admin1");
	ig_record rec = {.index = index, .ts_ms = 1, .type = IG_REC_ENROLL, .body = body, .body_len = (uint32_t)n};
	cr_assert_eq(ig_registry_apply(r, &rec, NULL), IG_OK);
}

static void reg_revoke(ig_registry *r, const char *id, uint64_t index)
{
	uint8_t body[512];
	size_t n = tu_revoke_body(body, sizeof body, id, "admin1");
	ig_record rec = {.index = index, .ts_ms = 2, .type = IG_REC_REVOKE, .body = body, .body_len = (uint32_t)n};
	cr_assert_eq(ig_registry_apply(r, &rec, NULL), IG_OK);
}

Test(join, a_code_claims_only_ids_never_enrolled)
{
	ig_registry *r = ig_registry_new();
	cr_assert(ig_join_id_claimable(r, "new-dev", 7));
	reg_enroll(r, "active", 2);
	cr_assert_not(ig_join_id_claimable(r, "active", 6));
	reg_enroll(r, "gone", 3);
	reg_revoke(r, "gone", 4);
	cr_assert_not(ig_join_id_claimable(r, "gone", 4), "a revoked id is never claimable by a code");
	cr_assert_eq(ig_registry_reserve(r, "pending", IG_ROLE_DEVICE, dev_pk), IG_OK);
	cr_assert_not(ig_join_id_claimable(r, "pending", 7));
	ig_registry_release(r, "pending");
	cr_assert(ig_join_id_claimable(r, "pending", 7), "a reservation that never became durable leaves no trace");
	cr_assert_not(ig_join_id_claimable(r, "bad id", 6));
	cr_assert_not(ig_join_id_claimable(NULL, "x", 1));
	ig_registry_free(r);
}
