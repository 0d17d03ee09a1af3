/*
 * test_bank.c: the bank's records, the coin crypto and the coin index.
 *
 * Why this exists: a coin must open exactly one payload, for exactly one
 * analyst, exactly once. These tests pin every byte layout against vectors
 * computed independently (Python: hashlib BLAKE2b, hmac HKDF, OpenSSL
 * AES-GCM and ChaCha20-Poly1305 with a hand-written HChaCha20, PyNaCl
 * crypto_box with a fixed ephemeral key; also printed in docs/PROTOCOL.md
 * and docs/LEDGER.md), then try to break them: missing and repeated tags,
 * fuzzed bodies, every-byte tamper, truncation, headers moved to another
 * topic, results replayed onto another request, wrong keys, double spends,
 * overdrafts, and the index's memory budget.
 */
#include <criterion/criterion.h>

#include <cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_aead.h"
#include "ig_bank.h"
#include "ig_coin.h"
#include "ig_coins.h"
#include "ig_record.h"
#include "testutil.h"

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
}

static ig_record make_rec(uint16_t type, const uint8_t *body, size_t len, uint64_t index)
{
	ig_record r;
	memset(&r, 0, sizeof r);
	r.type = type;
	r.body = body;
	r.body_len = (uint32_t)len;
	r.index = index;
	return r;
}

/* ---- pinned vectors ------------------------------------------------------------ */

#define V_COLLECTOR "sensor-1"
#define V_TOPIC "iotguard/demo/dev/sensor-1/data/temp"
#define V_RTOPIC "iotguard/demo/dev/sensor-1/results/temp"
#define V_COIN_HASH "cb2f5160fc1f7e05a55ef49d340b48da2e5a78099d53393351cd579dd42503d6"
#define V_COIN2_HASH "441edc56cebc8e285d02267aa650819f15add7b06ef9b41b2690128dce655924"
#define V_PAYLOAD_KEY "8207dcc71e784e841affdd2935747fcb84b90afce36d87d097af744df2e7da97"
#define V_RESULT_KEY "3958147789594d0dd55698968e82f2939ee62cb733dd752a71afc88ff7853267"
#define V_BANK_PK "29acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd7"
#define V_BANK_X25519 "5730800ab340fcb18ce5111eda9d705f91388b41e4544cbd103ba5942db2233e"
#define V_TOPIC_HASH "b598971eb681fda081915d992bd04a60c0b5ef3bcbfbf52d4d7fd8bf37ee3d17"

typedef struct suite_vec {
	ig_suite suite;
	const char *header_plain, *header_hash, *data_aad, *data_msg, *result_msg;
} suite_vec;

static const suite_vec vecs[] = {
	{IG_SUITE_AES256GCM,
	 "01000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f404142434445464748494a4b000000000000000000"
	 "000000010873656e736f722d31b598971eb681fda081915d992bd04a60c0b5ef3bcbfbf52d4d7fd8bf37ee3d17",
	 "0d1b471463336f1513ee63befb16cc7b659a3f91b15c0b44786ba7442f418bdc",
	 "696f7467756172642d646174612d763100696f7467756172642f64656d6f2f6465762f73656e736f722d312f646174612f74656d7000"
	 "0d1b471463336f1513ee63befb16cc7b659a3f91b15c0b44786ba7442f418bdc",
	 "494744310093493e82fc74464a59268817623d2053c5eb8e2cc4a988b4fee179ec6b010d531d2251e7a666bd3029a8067221c7b55d9a"
	 "640e8bf591ae5b878602e9838c26e631fe36cf293f240f252d03ca00775579a2c8adbef7563400633feee41759da88fc406007ccf2be"
	 "50deab89cce72fc62218ddacb53d348668faadf63e7acf28f17c77d62c9c339200f317d6d76f7975df7015a17c014041424344454647"
	 "48494a4b0000000000000000000000006d300e22ba6c7d503ade84313e233691b0df66bc",
	 "494753310d1b471463336f1513ee63befb16cc7b659a3f91b15c0b44786ba7442f418bdc0158595a5b5c5d5e5f606162630000000000"
	 "00000000000000ab887f418c5adc079304e4951c226f7a79001d3a08e987103e"},
	{IG_SUITE_XCHACHA20POLY1305,
	 "01000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f404142434445464748494a4b4c4d4e4f5051525354"
	 "555657020873656e736f722d31b598971eb681fda081915d992bd04a60c0b5ef3bcbfbf52d4d7fd8bf37ee3d17",
	 "4bca78bc7b97e0e6f36160738833abf4ceb05491ee9c48dfd8c171db8c9705a2",
	 "696f7467756172642d646174612d763100696f7467756172642f64656d6f2f6465762f73656e736f722d312f646174612f74656d7000"
	 "4bca78bc7b97e0e6f36160738833abf4ceb05491ee9c48dfd8c171db8c9705a2",
	 "494744310093493e82fc74464a59268817623d2053c5eb8e2cc4a988b4fee179ec6b010d531da5a2ee732c696ed6f798a5e19fd984a6"
	 "640e8bf591ae5b878602e9838c26e631fe36cf293f240f252d03ca00775579a2c8adbef7563400633feee4175996c5b20f30569ea1ea"
	 "0588fc8acce72fc62218ddacb53d348668faadf63e7acf28f17c77d62c9c339200f317d6d76f7975df7015a17c02404142434445464748"
	 "494a4b4c4d4e4f5051525354555657a59cad519cd0199adfd953dc8e560a9f69720f96",
	 "494753314bca78bc7b97e0e6f36160738833abf4ceb05491ee9c48dfd8c171db8c9705a20258595a5b5c5d5e5f606162636465666768"
	 "696a6b6c6d6e6fb9c9bf59df19ec2bc86c241cd84aafc23b6772e011f41cc52d"},
};

#define V_CREDIT_BODY "01000873656e736f722d31020008000000000000006403000661646d696e31"
#define V_MINT_BODY                                                                                                    \
	"01000873656e736f722d310200080000000065554280030040cb2f5160fc1f7e05a55ef49d340b48da2e5a78099d53393351cd579dd42" \
	"503d6441edc56cebc8e285d02267aa650819f15add7b06ef9b41b2690128dce655924"
#define V_REDEEM_BODY                                                                                                  \
	"010020cb2f5160fc1f7e05a55ef49d340b48da2e5a78099d53393351cd579dd42503d6020009616e616c7973742d3103000873656e736f" \
	"722d31"
/* The same with tag 4, header_hash = bytes 40 41 .. 5f (docs/LEDGER.md 7.10). */
#define V_REDEEM_HH_TAIL "040020404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
#define V_REDEEM_HH_BODY V_REDEEM_BODY V_REDEEM_HH_TAIL
#define V_REFUND_BODY                                                                                                  \
	"010020441edc56cebc8e285d02267aa650819f15add7b06ef9b41b2690128dce65592402000873656e736f722d3103000765787069726564"

static void bank_keys(uint8_t pk[IG_PK_BYTES], uint8_t sk[IG_SK_BYTES])
{
	uint8_t seed[32];
	tu_seq_bytes(seed, sizeof seed, 0x20);
	cr_assert_eq(crypto_sign_seed_keypair(pk, sk, seed), 0);
}

static void vec_coin(uint8_t coin[IG_COIN_BYTES])
{
	tu_seq_bytes(coin, IG_COIN_BYTES, 0x00);
}

/* The vector nonces count up from first; AES-256-GCM reads 12 bytes, so
 * its canonical 24-byte nonce field ends in 12 zero bytes. */
static void vec_nonce(uint8_t nonce[IG_COIN_NONCE_BYTES], ig_suite suite, uint8_t first)
{
	tu_seq_bytes(nonce, IG_COIN_NONCE_BYTES, first);
	if (suite == IG_SUITE_AES256GCM)
		memset(nonce + 12, 0, IG_COIN_NONCE_BYTES - 12);
}

Test(bank_vectors, coin_hash_and_keys, .init = setup)
{
	uint8_t coin[IG_COIN_BYTES], h[IG_HASH_BYTES], pk[32], rk[32];
	vec_coin(coin);
	ig_coin_hash(h, coin);
	tu_assert_hex(h, sizeof h, V_COIN_HASH);
	ig_coin_keys(coin, pk, rk);
	tu_assert_hex(pk, 32, V_PAYLOAD_KEY);
	tu_assert_hex(rk, 32, V_RESULT_KEY);
	ig_coin_topic_hash(h, V_TOPIC);
	tu_assert_hex(h, sizeof h, V_TOPIC_HASH);
}

Test(bank_vectors, bank_key, .init = setup)
{
	uint8_t pk[IG_PK_BYTES], sk[IG_SK_BYTES], x[32];
	bank_keys(pk, sk);
	tu_assert_hex(pk, sizeof pk, V_BANK_PK);
	cr_assert_eq(crypto_sign_ed25519_pk_to_curve25519(x, pk), 0);
	tu_assert_hex(x, sizeof x, V_BANK_X25519);
}

Test(bank_vectors, header_plaintext, .init = setup)
{
	for (size_t v = 0; v < sizeof vecs / sizeof vecs[0]; v++) {
		ig_coin_header h, back;
		memset(&h, 0, sizeof h);
		vec_coin(h.coin);
		vec_nonce(h.nonce, vecs[v].suite, 0x40);
		h.suite = vecs[v].suite;
		strcpy(h.collector, V_COLLECTOR);
		ig_coin_topic_hash(h.topic_hash, V_TOPIC);
		uint8_t pt[IG_COIN_HEADER_PLAIN_MAX];
		int n = ig_coin_header_encode(pt, sizeof pt, &h);
		cr_assert_eq(n, 99);
		tu_assert_hex(pt, (size_t)n, vecs[v].header_plain);
		cr_assert_eq(ig_coin_header_decode(&back, pt, (size_t)n), IG_OK);
		cr_assert_eq(memcmp(&back, &h, sizeof h), 0);
	}
}

/* The pinned sealed headers were made in Python with a fixed ephemeral
 * key: they open with the bank key, and the whole message with the keys. */
Test(bank_vectors, pinned_messages_open, .init = setup)
{
	uint8_t bpk[IG_PK_BYTES], bsk[IG_SK_BYTES];
	bank_keys(bpk, bsk);
	for (size_t v = 0; v < sizeof vecs / sizeof vecs[0]; v++) {
		uint8_t msg[512], rmsg[256], out[64], pk[32], rk[32], hh[32];
		size_t len = tu_unhex(msg, sizeof msg, vecs[v].data_msg);
		size_t rlen = tu_unhex(rmsg, sizeof rmsg, vecs[v].result_msg);
		cr_assert_eq(len, 198u);
		cr_assert_eq(rlen, 86u);

		const uint8_t *header, *nonce, *ct;
		size_t header_len, ct_len;
		ig_suite suite;
		cr_assert_eq(ig_coin_data_parse(msg, len, &header, &header_len, &suite, &nonce, &ct, &ct_len), IG_OK);
		cr_assert_eq(header_len, 147u);
		cr_assert_eq(suite, vecs[v].suite);
		cr_assert_eq(nonce[0], 0x40);
		cr_assert_eq(ct_len, 20u);
		ig_coin_header_hash(hh, header, header_len);
		tu_assert_hex(hh, 32, vecs[v].header_hash);

		ig_coin_header h;
		cr_assert_eq(ig_coin_header_open(&h, header, header_len, bsk), IG_OK);
		uint8_t coin[32];
		vec_coin(coin);
		cr_assert_eq(memcmp(h.coin, coin, 32), 0);
		cr_assert_eq(h.suite, vecs[v].suite);
		cr_assert_str_eq(h.collector, V_COLLECTOR);
		cr_assert_eq(memcmp(h.nonce, nonce, IG_COIN_NONCE_BYTES), 0);
		cr_assert(ig_coin_header_matches_topic(&h, V_TOPIC));
		cr_assert_not(ig_coin_header_matches_topic(&h, "iotguard/demo/dev/sensor-1/data/humidity"));

		if (!ig_suite_available(vecs[v].suite))
			continue; /* AES-GCM needs AES-NI */
		ig_coin_keys(h.coin, pk, rk);
		int n = ig_coin_data_open(out, sizeof out, msg, len, V_TOPIC, pk);
		cr_assert_eq(n, 4);
		cr_assert_eq(memcmp(out, "21.5", 4), 0);
		memset(out, 0, sizeof out);
		cr_assert_eq(ig_coin_data_open_redeemed(out, sizeof out, msg, len, V_TOPIC, pk, h.nonce), 4);
		cr_assert_eq(memcmp(out, "21.5", 4), 0);
		uint8_t other_nonce[24];
		memcpy(other_nonce, h.nonce, 24);
		other_nonce[23] ^= 1;
		cr_assert_eq(ig_coin_data_open_redeemed(out, sizeof out, msg, len, V_TOPIC, pk, other_nonce), IG_ERR_CRYPTO);

		uint8_t carried[32];
		cr_assert_eq(ig_coin_result_parse_hash(rmsg, rlen, carried), IG_OK);
		cr_assert_eq(memcmp(carried, hh, 32), 0);
		n = ig_coin_result_open(out, sizeof out, rmsg, rlen, V_RTOPIC, rk, hh);
		cr_assert_eq(n, 9);
		cr_assert_eq(memcmp(out, "mean=21.5", 9), 0);
	}
}

/* Our own sealing, with the pinned nonce, reproduces the pinned
 * ciphertext: same AAD, same layout. */
Test(bank_vectors, data_and_result_ciphertext, .init = setup)
{
	for (size_t v = 0; v < sizeof vecs / sizeof vecs[0]; v++) {
		if (!ig_suite_available(vecs[v].suite))
			continue;
		uint8_t coin[32], pk[32], rk[32], nonce[24], hh[32], aad[256], ct[64], msg[512];
		vec_coin(coin);
		ig_coin_keys(coin, pk, rk);
		vec_nonce(nonce, vecs[v].suite, 0x40);
		tu_unhex(hh, sizeof hh, vecs[v].header_hash);
		size_t aad_len = tu_unhex(aad, sizeof aad, vecs[v].data_aad);
		int n = ig_aead_seal(vecs[v].suite, ct, sizeof ct, (const uint8_t *)"21.5", 4, aad, aad_len, nonce, pk);
		cr_assert_eq(n, 20);
		size_t len = tu_unhex(msg, sizeof msg, vecs[v].data_msg);
		cr_assert_eq(memcmp(msg + len - 20, ct, 20), 0);
		cr_assert_eq(memcmp(msg + 6 + 147 + 1, nonce, 24), 0, "the message carries the canonical nonce");

		uint8_t rnonce[24], raad[256], rct[64], rmsg[256];
		vec_nonce(rnonce, vecs[v].suite, 0x58);
		size_t raad_len = 0;
		memcpy(raad, "iotguard-result-v1", 18);
		raad_len = 18;
		raad[raad_len++] = 0;
		memcpy(raad + raad_len, V_RTOPIC, strlen(V_RTOPIC));
		raad_len += strlen(V_RTOPIC);
		raad[raad_len++] = 0;
		memcpy(raad + raad_len, hh, 32);
		raad_len += 32;
		n = ig_aead_seal(vecs[v].suite, rct, sizeof rct, (const uint8_t *)"mean=21.5", 9, raad, raad_len, rnonce, rk);
		cr_assert_eq(n, 25);
		size_t rlen = tu_unhex(rmsg, sizeof rmsg, vecs[v].result_msg);
		cr_assert_eq(memcmp(rmsg + 37, rnonce, 24), 0);
		cr_assert_eq(memcmp(rmsg + rlen - 25, rct, 25), 0);
	}
}

/* ---- records ---------------------------------------------------------------- */

Test(bank_records, vectors_round_trip, .init = setup)
{
	uint8_t buf[4096], expect[4096];
	ig_error err;
	int n;

	ig_credit_rec c = {.amount = 100}, c2;
	strcpy(c.id, "sensor-1");
	strcpy(c.by, "admin1");
	n = ig_bank_credit_encode(buf, sizeof buf, &c);
	cr_assert_gt(n, 0);
	tu_assert_hex(buf, (size_t)n, V_CREDIT_BODY);
	cr_assert_eq(ig_bank_credit_decode(buf, (size_t)n, &c2, &err), IG_OK, "%s", err.msg);
	cr_assert_str_eq(c2.id, "sensor-1");
	cr_assert_eq(c2.amount, 100u);
	cr_assert_str_eq(c2.by, "admin1");

	static ig_mint_rec m, m2;
	memset(&m, 0, sizeof m);
	strcpy(m.owner, "sensor-1");
	m.expires_at = 1700086400;
	m.count = 2;
	uint8_t coin[32];
	vec_coin(coin);
	ig_coin_hash(m.hashes[0], coin);
	tu_seq_bytes(coin, 32, 0x01);
	ig_coin_hash(m.hashes[1], coin);
	tu_assert_hex(m.hashes[1], 32, V_COIN2_HASH);
	n = ig_bank_mint_encode(buf, sizeof buf, &m);
	cr_assert_gt(n, 0);
	tu_assert_hex(buf, (size_t)n, V_MINT_BODY);
	cr_assert_eq(ig_bank_mint_decode(buf, (size_t)n, &m2, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(memcmp(&m, &m2, sizeof m), 0);

	ig_redeem_rec r, r2;
	memset(&r, 0, sizeof r);
	tu_unhex(r.coin_hash, 32, V_COIN_HASH);
	strcpy(r.analyst, "analyst-1");
	strcpy(r.collector, "sensor-1");
	n = ig_bank_redeem_encode(buf, sizeof buf, &r);
	cr_assert_gt(n, 0);
	tu_assert_hex(buf, (size_t)n, V_REDEEM_BODY);
	cr_assert_eq(ig_bank_redeem_decode(buf, (size_t)n, &r2, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(memcmp(&r, &r2, sizeof r), 0);
	cr_assert_not(r2.has_header_hash, "a redeem record without tag 4 has no header hash");

	/* With the redeemer's header hash (tag 4, optional). */
	r.has_header_hash = true;
	tu_seq_bytes(r.header_hash, 32, 0x40);
	n = ig_bank_redeem_encode(buf, sizeof buf, &r);
	cr_assert_eq(n, 93);
	tu_assert_hex(buf, (size_t)n, V_REDEEM_HH_BODY);
	cr_assert_eq(ig_bank_redeem_decode(buf, (size_t)n, &r2, &err), IG_OK, "%s", err.msg);
	cr_assert(r2.has_header_hash);
	cr_assert_eq(memcmp(&r, &r2, sizeof r), 0);
	{
		/* At most once, and exactly 32 bytes. */
		uint8_t twice[256];
		memcpy(twice, buf, (size_t)n);
		memcpy(twice + n, buf + 58, 35);
		cr_assert_eq(ig_bank_redeem_decode(twice, (size_t)n + 35, &r2, &err), IG_ERR_CORRUPT);
		cr_assert_eq(ig_bank_redeem_decode(buf, (size_t)n - 1, &r2, &err), IG_ERR_CORRUPT);
	}

	ig_refund_rec f, f2;
	memset(&f, 0, sizeof f);
	tu_unhex(f.coin_hash, 32, V_COIN2_HASH);
	strcpy(f.collector, "sensor-1");
	strcpy(f.reason, "expired");
	n = ig_bank_refund_encode(buf, sizeof buf, &f);
	cr_assert_gt(n, 0);
	tu_assert_hex(buf, (size_t)n, V_REFUND_BODY);
	cr_assert_eq(ig_bank_refund_decode(buf, (size_t)n, &f2, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(memcmp(&f, &f2, sizeof f), 0);
	strcpy(f.reason, "cancelled");
	n = ig_bank_refund_encode(buf, sizeof buf, &f);
	cr_assert_gt(n, 0);
	cr_assert_eq(ig_bank_refund_decode(buf, (size_t)n, &f2, &err), IG_OK);
	cr_assert_str_eq(f2.reason, "cancelled");

	/* cap too small */
	n = ig_bank_credit_encode(buf, 10, &c);
	cr_assert_eq(n, IG_ERR_RANGE);
	(void)expect;
}

Test(bank_records, encoders_refuse_what_decoders_refuse, .init = setup)
{
	uint8_t buf[4096];
	ig_credit_rec c = {.amount = 0};
	strcpy(c.id, "sensor-1");
	strcpy(c.by, "admin1");
	cr_assert_eq(ig_bank_credit_encode(buf, sizeof buf, &c), IG_ERR_INVAL);
	c.amount = 1;
	strcpy(c.id, "bad id");
	cr_assert_eq(ig_bank_credit_encode(buf, sizeof buf, &c), IG_ERR_INVAL);
	strcpy(c.id, "ok");
	c.by[0] = '\0';
	cr_assert_eq(ig_bank_credit_encode(buf, sizeof buf, &c), IG_ERR_INVAL);
	strcpy(c.by, "tab\there");
	cr_assert_eq(ig_bank_credit_encode(buf, sizeof buf, &c), IG_ERR_INVAL);
	strcpy(c.by, "caf\xc3\xa9");
	cr_assert_gt(ig_bank_credit_encode(buf, sizeof buf, &c), 0);
	strcpy(c.by, "bad\xc3");
	cr_assert_eq(ig_bank_credit_encode(buf, sizeof buf, &c), IG_ERR_INVAL);

	static ig_mint_rec m;
	memset(&m, 0, sizeof m);
	strcpy(m.owner, "sensor-1");
	m.count = 0;
	cr_assert_eq(ig_bank_mint_encode(buf, sizeof buf, &m), IG_ERR_INVAL);
	m.count = 65;
	cr_assert_eq(ig_bank_mint_encode(buf, sizeof buf, &m), IG_ERR_INVAL);
	m.count = 64;
	cr_assert_gt(ig_bank_mint_encode(buf, sizeof buf, &m), 0);

	ig_redeem_rec r;
	memset(&r, 0, sizeof r);
	strcpy(r.analyst, "a");
	cr_assert_eq(ig_bank_redeem_encode(buf, sizeof buf, &r), IG_ERR_INVAL); /* no collector */

	ig_refund_rec f;
	memset(&f, 0, sizeof f);
	strcpy(f.collector, "c");
	strcpy(f.reason, "lost");
	cr_assert_eq(ig_bank_refund_encode(buf, sizeof buf, &f), IG_ERR_INVAL);
	strcpy(f.reason, "Expired");
	cr_assert_eq(ig_bank_refund_encode(buf, sizeof buf, &f), IG_ERR_INVAL);
}

/* A body built from (tag, value) parts, so each test can drop, repeat or
 * spoil one field. */
typedef struct part {
	uint8_t tag;
	const uint8_t *v;
	size_t len;
} part;

static size_t build(uint8_t *out, size_t cap, const part *parts, size_t n, int skip, int twice)
{
	size_t pos = 0;
	for (size_t i = 0; i < n; i++) {
		if ((int)i == skip)
			continue;
		cr_assert_eq(ig_record_tlv_put(out, cap, &pos, parts[i].tag, parts[i].v, parts[i].len), IG_OK);
		if ((int)i == twice)
			cr_assert_eq(ig_record_tlv_put(out, cap, &pos, parts[i].tag, parts[i].v, parts[i].len), IG_OK);
	}
	return pos;
}

static int decode_type(uint16_t type, const uint8_t *body, size_t len, ig_error *err)
{
	ig_record rec = make_rec(type, body, len, 0);
	return ig_bank_record_check(&rec, err);
}

Test(bank_records, missing_duplicate_unknown_tags, .init = setup)
{
	uint8_t hash[32], amount[8], exp[8], hashes[64];
	tu_rand_bytes(hash, sizeof hash);
	tu_rand_bytes(hashes, sizeof hashes);
	ig_put_u64(amount, 5);
	ig_put_u64(exp, 1700000000);
	const part credit[] = {{1, (const uint8_t *)"dev1", 4}, {2, amount, 8}, {3, (const uint8_t *)"admin", 5}};
	const part mint[] = {{1, (const uint8_t *)"dev1", 4}, {2, exp, 8}, {3, hashes, 64}};
	const part redeem[] = {{1, hash, 32}, {2, (const uint8_t *)"an1", 3}, {3, (const uint8_t *)"dev1", 4}};
	const part refund[] = {{1, hash, 32}, {2, (const uint8_t *)"dev1", 4}, {3, (const uint8_t *)"cancelled", 9}};
	const struct {
		uint16_t type;
		const part *p;
	} kinds[] = {{IG_REC_CREDIT, credit}, {IG_REC_COIN_MINT, mint}, {IG_REC_COIN_REDEEM, redeem},
	             {IG_REC_COIN_REFUND, refund}};

	for (size_t k = 0; k < 4; k++) {
		uint8_t body[512];
		ig_error err;
		size_t len = build(body, sizeof body, kinds[k].p, 3, -1, -1);
		cr_assert_eq(decode_type(kinds[k].type, body, len, &err), IG_OK, "%s", err.msg);
		for (int i = 0; i < 3; i++) {
			len = build(body, sizeof body, kinds[k].p, 3, i, -1);
			cr_assert_eq(decode_type(kinds[k].type, body, len, &err), IG_ERR_CORRUPT);
			cr_assert(strstr(err.msg, "missing"), "%s", err.msg);
			len = build(body, sizeof body, kinds[k].p, 3, -1, i);
			cr_assert_eq(decode_type(kinds[k].type, body, len, &err), IG_ERR_CORRUPT);
			cr_assert(strstr(err.msg, "twice"), "%s", err.msg);
		}
		/* unknown tags, anywhere and repeated, are ignored */
		size_t pos = 0;
		cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 9, "x", 1), IG_OK);
		len = build(body + pos, sizeof body - pos, kinds[k].p, 3, -1, -1);
		pos += len;
		cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 9, "yy", 2), IG_OK);
		cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 0, NULL, 0), IG_OK);
		cr_assert_eq(ig_record_tlv_put(body, sizeof body, &pos, 255, "z", 1), IG_OK);
		cr_assert_eq(decode_type(kinds[k].type, body, pos, &err), IG_OK, "%s", err.msg);
		/* a truncated TLV */
		len = build(body, sizeof body, kinds[k].p, 3, -1, -1);
		for (size_t cut = 1; cut < len; cut++) {
			int rc = decode_type(kinds[k].type, body, len - cut, &err);
			cr_assert_eq(rc, IG_ERR_CORRUPT, "type %u cut %zu", kinds[k].type, cut);
		}
	}
	/* a non-bank type is not the bank's business */
	cr_assert_eq(decode_type(IG_REC_ENROLL, (const uint8_t *)"\xff", 1, NULL), IG_OK);
}

Test(bank_records, bad_values, .init = setup)
{
	uint8_t body[4096], v8[8], hashes[65 * 32];
	size_t pos;
	ig_error err;
	tu_rand_bytes(hashes, sizeof hashes);

	/* credit amount 0, amount of 7 bytes, bad id, control char in by, 81-byte by */
	ig_put_u64(v8, 0);
	part credit[] = {{1, (const uint8_t *)"dev1", 4}, {2, v8, 8}, {3, (const uint8_t *)"admin", 5}};
	pos = build(body, sizeof body, credit, 3, -1, -1);
	cr_assert_eq(decode_type(IG_REC_CREDIT, body, pos, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "amount"), "%s", err.msg);
	ig_put_u64(v8, 1);
	credit[1].len = 7;
	pos = build(body, sizeof body, credit, 3, -1, -1);
	cr_assert_eq(decode_type(IG_REC_CREDIT, body, pos, &err), IG_ERR_CORRUPT);
	credit[1].len = 8;
	credit[0].v = (const uint8_t *)"dev/1";
	credit[0].len = 5;
	pos = build(body, sizeof body, credit, 3, -1, -1);
	cr_assert_eq(decode_type(IG_REC_CREDIT, body, pos, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "'id'"), "%s", err.msg);
	credit[0].v = (const uint8_t *)"dev1";
	credit[0].len = 4;
	credit[2].v = (const uint8_t *)"ad\x01min";
	credit[2].len = 6;
	pos = build(body, sizeof body, credit, 3, -1, -1);
	cr_assert_eq(decode_type(IG_REC_CREDIT, body, pos, &err), IG_ERR_CORRUPT);
	char longby[82];
	memset(longby, 'b', 81);
	credit[2].v = (const uint8_t *)longby;
	credit[2].len = 81;
	pos = build(body, sizeof body, credit, 3, -1, -1);
	cr_assert_eq(decode_type(IG_REC_CREDIT, body, pos, &err), IG_ERR_CORRUPT);
	credit[2].len = 80;
	pos = build(body, sizeof body, credit, 3, -1, -1);
	cr_assert_eq(decode_type(IG_REC_CREDIT, body, pos, &err), IG_OK);

	/* mint: 0, 65 hashes, 33 bytes */
	ig_put_u64(v8, 1700000000);
	part mint[] = {{1, (const uint8_t *)"dev1", 4}, {2, v8, 8}, {3, hashes, 0}};
	const size_t bad_lens[] = {0, 65 * 32, 33, 31, 64 * 32 + 1};
	for (size_t i = 0; i < sizeof bad_lens / sizeof bad_lens[0]; i++) {
		mint[2].len = bad_lens[i];
		pos = build(body, sizeof body, mint, 3, -1, -1);
		cr_assert_eq(decode_type(IG_REC_COIN_MINT, body, pos, &err), IG_ERR_CORRUPT, "len %zu", bad_lens[i]);
	}
	mint[2].len = 64 * 32;
	pos = build(body, sizeof body, mint, 3, -1, -1);
	cr_assert_eq(decode_type(IG_REC_COIN_MINT, body, pos, &err), IG_OK);

	/* redeem: 31-byte hash, 65-char analyst */
	char id65[66];
	memset(id65, 'a', 65);
	part redeem[] = {{1, hashes, 31}, {2, (const uint8_t *)"an1", 3}, {3, (const uint8_t *)"dev1", 4}};
	pos = build(body, sizeof body, redeem, 3, -1, -1);
	cr_assert_eq(decode_type(IG_REC_COIN_REDEEM, body, pos, &err), IG_ERR_CORRUPT);
	redeem[0].len = 32;
	redeem[1].v = (const uint8_t *)id65;
	redeem[1].len = 65;
	pos = build(body, sizeof body, redeem, 3, -1, -1);
	cr_assert_eq(decode_type(IG_REC_COIN_REDEEM, body, pos, &err), IG_ERR_CORRUPT);
	redeem[1].len = 64;
	pos = build(body, sizeof body, redeem, 3, -1, -1);
	cr_assert_eq(decode_type(IG_REC_COIN_REDEEM, body, pos, &err), IG_OK);

	/* refund reasons */
	const char *reasons[] = {"", "expire", "expired ", "Cancelled", "cancel", "expiredx"};
	part refund[] = {{1, hashes, 32}, {2, (const uint8_t *)"dev1", 4}, {3, NULL, 0}};
	for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++) {
		refund[2].v = (const uint8_t *)reasons[i];
		refund[2].len = strlen(reasons[i]);
		pos = build(body, sizeof body, refund, 3, -1, -1);
		cr_assert_eq(decode_type(IG_REC_COIN_REFUND, body, pos, &err), IG_ERR_CORRUPT, "%s", reasons[i]);
	}
}

/* Random bodies and mutations of valid ones: never crash, and whatever
 * decodes re-encodes to something that decodes to the same value. */
Test(bank_records, fuzz, .init = setup)
{
	static uint8_t body[8192], again[8192];
	static ig_mint_rec m, m2;
	uint8_t seedbody[4][512];
	size_t seedlen[4];
	seedlen[0] = tu_unhex(seedbody[0], 512, V_CREDIT_BODY);
	seedlen[1] = tu_unhex(seedbody[1], 512, V_MINT_BODY);
	seedlen[2] = tu_unhex(seedbody[2], 512, V_REDEEM_BODY);
	seedlen[3] = tu_unhex(seedbody[3], 512, V_REFUND_BODY);
	const uint16_t types[4] = {IG_REC_CREDIT, IG_REC_COIN_MINT, IG_REC_COIN_REDEEM, IG_REC_COIN_REFUND};
	int ok = 0;

	for (int iter = 0; iter < 20000; iter++) {
		int k = (int)(tu_rand() % 4);
		size_t len;
		if (iter % 2 == 0) {
			/* random TLVs with known tags */
			size_t pos = 0;
			int n = (int)(tu_rand() % 6);
			for (int i = 0; i < n; i++) {
				uint8_t tag = (uint8_t)(tu_rand() % 5);
				size_t vlen = tu_rand() % 4 == 0 ? 32 * (1 + tu_rand() % 3) : tu_rand() % 12;
				uint8_t val[96];
				tu_rand_bytes(val, vlen);
				if (tu_rand() % 2)
					for (size_t j = 0; j < vlen; j++)
						val[j] = (uint8_t)("abcdefgh-1"[val[j] % 10]);
				if (ig_record_tlv_put(body, sizeof body, &pos, tag, val, vlen) != IG_OK)
					break;
			}
			len = pos;
		} else {
			len = seedlen[k];
			memcpy(body, seedbody[k], len);
			int flips = 1 + (int)(tu_rand() % 3);
			for (int f = 0; f < flips; f++)
				body[tu_rand() % len] ^= (uint8_t)(1u << (tu_rand() % 8));
			if (tu_rand() % 4 == 0)
				len -= tu_rand() % len;
		}
		ig_error err;
		switch (types[k]) {
		case IG_REC_CREDIT: {
			ig_credit_rec c, c2;
			if (ig_bank_credit_decode(body, len, &c, &err) == IG_OK) {
				ok++;
				int n = ig_bank_credit_encode(again, sizeof again, &c);
				cr_assert_gt(n, 0);
				cr_assert_eq(ig_bank_credit_decode(again, (size_t)n, &c2, &err), IG_OK);
				cr_assert_eq(memcmp(&c, &c2, sizeof c), 0);
			}
			break;
		}
		case IG_REC_COIN_MINT:
			if (ig_bank_mint_decode(body, len, &m, &err) == IG_OK) {
				ok++;
				int n = ig_bank_mint_encode(again, sizeof again, &m);
				cr_assert_gt(n, 0);
				cr_assert_eq(ig_bank_mint_decode(again, (size_t)n, &m2, &err), IG_OK);
				cr_assert_eq(memcmp(&m, &m2, sizeof m), 0);
			}
			break;
		case IG_REC_COIN_REDEEM: {
			ig_redeem_rec r, r2;
			if (ig_bank_redeem_decode(body, len, &r, &err) == IG_OK) {
				ok++;
				int n = ig_bank_redeem_encode(again, sizeof again, &r);
				cr_assert_gt(n, 0);
				cr_assert_eq(ig_bank_redeem_decode(again, (size_t)n, &r2, &err), IG_OK);
				cr_assert_eq(memcmp(&r, &r2, sizeof r), 0);
			}
			break;
		}
		default: {
			ig_refund_rec f, f2;
			if (ig_bank_refund_decode(body, len, &f, &err) == IG_OK) {
				ok++;
				int n = ig_bank_refund_encode(again, sizeof again, &f);
				cr_assert_gt(n, 0);
				cr_assert_eq(ig_bank_refund_decode(again, (size_t)n, &f2, &err), IG_OK);
				cr_assert_eq(memcmp(&f, &f2, sizeof f), 0);
			}
			break;
		}
		}
		/* the JSON view never crashes on anything */
		cJSON *obj = cJSON_CreateObject();
		ig_record rec = make_rec(types[k], body, len, 1);
		int rc = ig_bank_record_json(obj, &rec);
		cr_assert(rc == IG_OK || rc == IG_ERR_CORRUPT);
		if (rc == IG_ERR_CORRUPT)
			cr_assert_null(obj->child, "a corrupt body must leave the object untouched");
		cJSON_Delete(obj);
	}
	cr_assert_gt(ok, 100, "the fuzzer should also produce valid bodies (%d)", ok);
}

Test(bank_records, json_and_names, .init = setup)
{
	uint8_t body[1024];
	size_t len;
	cJSON *obj;
	ig_record rec;

	cr_assert_str_eq(ig_bank_record_type_name(IG_REC_CREDIT), "credit");
	cr_assert_str_eq(ig_bank_record_type_name(IG_REC_COIN_MINT), "coin_mint");
	cr_assert_str_eq(ig_bank_record_type_name(IG_REC_COIN_REDEEM), "coin_redeem");
	cr_assert_str_eq(ig_bank_record_type_name(IG_REC_COIN_REFUND), "coin_refund");
	cr_assert_null(ig_bank_record_type_name(IG_REC_ENROLL));
	cr_assert_null(ig_bank_record_type_name(36));

	len = tu_unhex(body, sizeof body, V_CREDIT_BODY);
	rec = make_rec(IG_REC_CREDIT, body, len, 3);
	obj = cJSON_CreateObject();
	cr_assert_eq(ig_bank_record_json(obj, &rec), IG_OK);
	cr_assert_str_eq(cJSON_GetObjectItem(obj, "id")->valuestring, "sensor-1");
	cr_assert_eq(cJSON_GetObjectItem(obj, "amount")->valuedouble, 100.0);
	cr_assert_str_eq(cJSON_GetObjectItem(obj, "by")->valuestring, "admin1");
	cJSON_Delete(obj);

	len = tu_unhex(body, sizeof body, V_MINT_BODY);
	rec = make_rec(IG_REC_COIN_MINT, body, len, 4);
	obj = cJSON_CreateObject();
	cr_assert_eq(ig_bank_record_json(obj, &rec), IG_OK);
	cr_assert_str_eq(cJSON_GetObjectItem(obj, "owner")->valuestring, "sensor-1");
	cr_assert_eq(cJSON_GetObjectItem(obj, "expires_at")->valuedouble, 1700086400.0);
	cr_assert_eq(cJSON_GetObjectItem(obj, "count")->valuedouble, 2.0);
	cJSON *list = cJSON_GetObjectItem(obj, "coin_hashes");
	cr_assert(cJSON_IsArray(list));
	cr_assert_eq(cJSON_GetArraySize(list), 2);
	cr_assert_str_eq(cJSON_GetArrayItem(list, 0)->valuestring, V_COIN_HASH);
	cr_assert_str_eq(cJSON_GetArrayItem(list, 1)->valuestring, V_COIN2_HASH);
	/* never a coin: the text holds no bytes of the coin (00..1f) in hex */
	char *text = cJSON_PrintUnformatted(obj);
	cr_assert_null(strstr(text, "000102030405060708090a0b0c0d0e0f"));
	free(text);
	cJSON_Delete(obj);

	len = tu_unhex(body, sizeof body, V_REDEEM_BODY);
	rec = make_rec(IG_REC_COIN_REDEEM, body, len, 5);
	obj = cJSON_CreateObject();
	cr_assert_eq(ig_bank_record_json(obj, &rec), IG_OK);
	cr_assert_str_eq(cJSON_GetObjectItem(obj, "coin_hash")->valuestring, V_COIN_HASH);
	cr_assert_str_eq(cJSON_GetObjectItem(obj, "analyst")->valuestring, "analyst-1");
	cr_assert_str_eq(cJSON_GetObjectItem(obj, "collector")->valuestring, "sensor-1");
	cJSON_Delete(obj);

	len = tu_unhex(body, sizeof body, V_REFUND_BODY);
	rec = make_rec(IG_REC_COIN_REFUND, body, len, 6);
	obj = cJSON_CreateObject();
	cr_assert_eq(ig_bank_record_json(obj, &rec), IG_OK);
	cr_assert_str_eq(cJSON_GetObjectItem(obj, "coin_hash")->valuestring, V_COIN2_HASH);
	cr_assert_str_eq(cJSON_GetObjectItem(obj, "collector")->valuestring, "sensor-1");
	cr_assert_str_eq(cJSON_GetObjectItem(obj, "reason")->valuestring, "expired");
	cJSON_Delete(obj);

	obj = cJSON_CreateObject();
	rec = make_rec(IG_REC_ENROLL, body, len, 6);
	cr_assert_eq(ig_bank_record_json(obj, &rec), IG_ERR_NOTFOUND);
	rec = make_rec(IG_REC_COIN_REFUND, body, len - 1, 6);
	cr_assert_eq(ig_bank_record_json(obj, &rec), IG_ERR_CORRUPT);
	cr_assert_null(obj->child);
	cJSON_Delete(obj);
}

/* ---- coin crypto ------------------------------------------------------------- */

static const ig_suite both[] = {IG_SUITE_AES256GCM, IG_SUITE_XCHACHA20POLY1305};

/* The collector's whole path and the bank's and analyst's answers. */
Test(bank_crypto, round_trip_both_suites, .init = setup)
{
	uint8_t bpk[IG_PK_BYTES], bsk[IG_SK_BYTES];
	bank_keys(bpk, bsk);
	for (size_t s = 0; s < 2; s++) {
		if (!ig_suite_available(both[s]))
			continue;
		const size_t sizes[] = {0, 1, 4, 1000, IG_COIN_DATA_MAX_PAYLOAD};
		for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
			size_t plen = sizes[z];
			uint8_t *payload = malloc(plen + 1), *out = malloc(plen + 1);
			uint8_t *msg = malloc(plen + IG_COIN_DATA_OVERHEAD_MAX);
			uint8_t coin[32], hh[32], hh2[32];
			tu_rand_bytes(payload, plen);
			randombytes_buf(coin, sizeof coin);
			int n = ig_coin_data_seal(msg, plen + IG_COIN_DATA_OVERHEAD_MAX, bpk, coin, both[s], V_COLLECTOR, V_TOPIC,
			                          payload, plen, hh);
			cr_assert_eq(n, (int)(plen + 4 + 2 + 147 + 1 + 24 + 16), "suite %d len %zu: %d", both[s], plen, n);

			const uint8_t *header, *nonce, *ct;
			size_t header_len, ct_len;
			ig_suite suite;
			cr_assert_eq(ig_coin_data_parse(msg, (size_t)n, &header, &header_len, &suite, &nonce, &ct, &ct_len), IG_OK);
			cr_assert_eq(suite, both[s]);
			cr_assert_eq(ct_len, plen + 16);
			ig_coin_header_hash(hh2, header, header_len);
			cr_assert_eq(memcmp(hh, hh2, 32), 0);

			ig_coin_header h;
			cr_assert_eq(ig_coin_header_open(&h, header, header_len, bsk), IG_OK);
			cr_assert_eq(memcmp(h.coin, coin, 32), 0);
			cr_assert_eq(memcmp(h.nonce, nonce, 24), 0);
			cr_assert_eq(h.suite, both[s]);
			cr_assert_str_eq(h.collector, V_COLLECTOR);
			cr_assert(ig_coin_header_matches_topic(&h, V_TOPIC));

			uint8_t pk[32], rk[32];
			ig_coin_keys(h.coin, pk, rk);
			int m = ig_coin_data_open(out, plen, msg, (size_t)n, V_TOPIC, pk);
			cr_assert_eq(m, (int)plen);
			cr_assert_eq(memcmp(out, payload, plen), 0);
			if (plen > 0)
				cr_assert_eq(ig_coin_data_open(out, plen - 1, msg, (size_t)n, V_TOPIC, pk), IG_ERR_RANGE);

			/* result back */
			uint8_t *res = malloc(plen + IG_COIN_RESULT_OVERHEAD);
			int r = ig_coin_result_seal(res, plen + IG_COIN_RESULT_OVERHEAD, rk, both[s], hh, V_RTOPIC, payload, plen);
			cr_assert_eq(r, (int)(plen + IG_COIN_RESULT_OVERHEAD));
			uint8_t carried[32];
			cr_assert_eq(ig_coin_result_parse_hash(res, (size_t)r, carried), IG_OK);
			cr_assert_eq(memcmp(carried, hh, 32), 0);
			memset(out, 0, plen + 1);
			cr_assert_eq(ig_coin_result_open(out, plen, res, (size_t)r, V_RTOPIC, rk, hh), (int)plen);
			cr_assert_eq(memcmp(out, payload, plen), 0);
			free(res);
			free(payload);
			free(out);
			free(msg);
		}
	}
}

Test(bank_crypto, seal_argument_checks, .init = setup)
{
	uint8_t bpk[IG_PK_BYTES], bsk[IG_SK_BYTES], coin[32], hh[32], msg[512];
	uint8_t *big = calloc(1, IG_COIN_DATA_MAX_PAYLOAD + 1);
	bank_keys(bpk, bsk);
	tu_rand_bytes(coin, 32);
	ig_suite s = IG_SUITE_XCHACHA20POLY1305;
	cr_assert_eq(ig_coin_data_seal(msg, sizeof msg, bpk, coin, s, V_COLLECTOR, V_TOPIC, big, IG_COIN_DATA_MAX_PAYLOAD + 1, hh),
	             IG_ERR_RANGE);
	cr_assert_eq(ig_coin_data_seal(msg, 197, bpk, coin, s, V_COLLECTOR, V_TOPIC, (const uint8_t *)"21.5", 4, hh),
	             IG_ERR_RANGE);
	cr_assert_eq(ig_coin_data_seal(msg, 198, bpk, coin, s, V_COLLECTOR, V_TOPIC, (const uint8_t *)"21.5", 4, hh), 198);
	cr_assert_eq(ig_coin_data_seal(msg, sizeof msg, bpk, coin, s, "sensor 1", V_TOPIC, (const uint8_t *)"x", 1, hh),
	             IG_ERR_INVAL);
	cr_assert_eq(ig_coin_data_seal(msg, sizeof msg, bpk, coin, s, V_COLLECTOR, "", (const uint8_t *)"x", 1, hh),
	             IG_ERR_INVAL);
	cr_assert_eq(ig_coin_data_seal(msg, sizeof msg, bpk, coin, IG_SUITE_NONE, V_COLLECTOR, V_TOPIC,
	                               (const uint8_t *)"x", 1, hh),
	             IG_ERR_INVAL);
	uint8_t zero_pk[32] = {0}; /* small order: no usable X25519 key */
	cr_assert_eq(ig_coin_data_seal(msg, sizeof msg, zero_pk, coin, s, V_COLLECTOR, V_TOPIC, (const uint8_t *)"x", 1, hh),
	             IG_ERR_CRYPTO);
	/* the longest collector id makes the longest header */
	char id64[65];
	memset(id64, 'c', 64);
	id64[64] = '\0';
	int n = ig_coin_data_seal(msg, sizeof msg, bpk, coin, s, id64, V_TOPIC, (const uint8_t *)"x", 1, hh);
	cr_assert_eq(n, (int)(IG_COIN_DATA_OVERHEAD_MAX + 1));
	ig_coin_header h;
	cr_assert_eq(ig_coin_header_open(&h, msg + 6, IG_COIN_HEADER_SEALED_MAX, bsk), IG_OK);
	cr_assert_str_eq(h.collector, id64);
	/* a topic longer than the stack buffer of the AAD */
	char *topic = malloc(3000);
	memset(topic, 't', 2999);
	topic[2999] = '\0';
	uint8_t pk[32], rk[32], out[8];
	n = ig_coin_data_seal(msg, sizeof msg, bpk, coin, s, V_COLLECTOR, topic, (const uint8_t *)"abc", 3, hh);
	cr_assert_gt(n, 0);
	ig_coin_keys(coin, pk, rk);
	cr_assert_eq(ig_coin_data_open(out, sizeof out, msg, (size_t)n, topic, pk), 3);
	topic[5] = 'u';
	cr_assert_eq(ig_coin_data_open(out, sizeof out, msg, (size_t)n, topic, pk), IG_ERR_CRYPTO);
	free(topic);
	free(big);
}

Test(bank_crypto, every_byte_tamper_and_truncation, .init = setup)
{
	uint8_t bpk[IG_PK_BYTES], bsk[IG_SK_BYTES], coin[32], hh[32], msg[512], out[64], pk[32], rk[32];
	bank_keys(bpk, bsk);
	tu_rand_bytes(coin, 32);
	ig_coin_keys(coin, pk, rk);
	for (size_t s = 0; s < 2; s++) {
		if (!ig_suite_available(both[s]))
			continue;
		int n = ig_coin_data_seal(msg, sizeof msg, bpk, coin, both[s], V_COLLECTOR, V_TOPIC, (const uint8_t *)"21.5", 4,
		                          hh);
		cr_assert_gt(n, 0);
		/* what the bank returns to the analyst: the nonce from the header */
		ig_coin_header bank_view;
		cr_assert_eq(ig_coin_header_open(&bank_view, msg + 6, 147, bsk), IG_OK);
		const uint8_t *nonce = bank_view.nonce;
		cr_assert_eq(ig_coin_data_open_redeemed(out, sizeof out, msg, (size_t)n, V_TOPIC, pk, nonce), 4);
		for (int i = 0; i < n; i++) {
			for (int bit = 0; bit < 8; bit += 3) {
				msg[i] ^= (uint8_t)(1u << bit);
				cr_assert_lt(ig_coin_data_open_redeemed(out, sizeof out, msg, (size_t)n, V_TOPIC, pk, nonce), 0,
				             "byte %d", i);
				/* even without the bank's nonce: GCM's unused nonce bytes
				 * must be zero, so they cannot be rewritten either */
				cr_assert_lt(ig_coin_data_open(out, sizeof out, msg, (size_t)n, V_TOPIC, pk), 0, "byte %d", i);
				/* the header itself refuses tampering too */
				if (i >= 6 && i < 6 + 147) {
					ig_coin_header h;
					cr_assert_eq(ig_coin_header_open(&h, msg + 6, 147, bsk), IG_ERR_CRYPTO, "byte %d", i);
				}
				msg[i] ^= (uint8_t)(1u << bit);
			}
		}
		for (int cut = 1; cut <= n; cut++) {
			cr_assert_lt(ig_coin_data_open(out, sizeof out, msg, (size_t)(n - cut), V_TOPIC, pk), 0);
			cr_assert_lt(ig_coin_data_open_redeemed(out, sizeof out, msg, (size_t)(n - cut), V_TOPIC, pk, nonce), 0);
		}
		uint8_t longer[600];
		memcpy(longer, msg, (size_t)n);
		longer[n] = 0;
		cr_assert_lt(ig_coin_data_open(out, sizeof out, longer, (size_t)n + 1, V_TOPIC, pk), 0);
		sodium_memzero(&bank_view, sizeof bank_view);

		/* results too */
		uint8_t res[128];
		int r = ig_coin_result_seal(res, sizeof res, rk, both[s], hh, V_RTOPIC, (const uint8_t *)"ok", 2);
		cr_assert_eq(r, IG_COIN_RESULT_OVERHEAD + 2);
		for (int i = 0; i < r; i++) {
			res[i] ^= 0x01;
			cr_assert_lt(ig_coin_result_open(out, sizeof out, res, (size_t)r, V_RTOPIC, rk, hh), 0, "byte %d", i);
			res[i] ^= 0x01;
		}
		for (int cut = 1; cut <= r; cut++)
			cr_assert_lt(ig_coin_result_open(out, sizeof out, res, (size_t)(r - cut), V_RTOPIC, rk, hh), 0);
		cr_assert_eq(ig_coin_result_open(out, sizeof out, res, (size_t)r, V_RTOPIC, rk, hh), 2);
	}
}

/* AES-256-GCM reads only 12 of the 24 nonce bytes, so the other 12 must be
 * zero wherever they travel (data message, result, sealed header): a flip
 * of any nonce bit, in either suite, is refused. The parsers need no
 * AES-NI, so those checks run on the pinned vectors everywhere. */
Test(bank_crypto, every_nonce_bit_is_covered, .init = setup)
{
	uint8_t bpk[IG_PK_BYTES], bsk[IG_SK_BYTES];
	bank_keys(bpk, bsk);
	const size_t data_nonce = 6 + 147 + 1, result_nonce = 4 + 32 + 1;
	for (size_t v = 0; v < sizeof vecs / sizeof vecs[0]; v++) {
		uint8_t msg[512], rmsg[256], out[64], pk[32], rk[32], coin[32], hh[32], carried[32];
		size_t len = tu_unhex(msg, sizeof msg, vecs[v].data_msg);
		size_t rlen = tu_unhex(rmsg, sizeof rmsg, vecs[v].result_msg);
		tu_unhex(hh, sizeof hh, vecs[v].header_hash);
		vec_coin(coin);
		ig_coin_keys(coin, pk, rk);
		bool gcm = vecs[v].suite == IG_SUITE_AES256GCM;
		bool can_open = ig_suite_available(vecs[v].suite);
		for (size_t i = 0; i < IG_COIN_NONCE_BYTES; i++) {
			bool spare = gcm && i >= 12;
			for (int bit = 0; bit < 8; bit++) {
				const uint8_t *header, *nonce, *ct;
				size_t header_len, ct_len;
				ig_suite suite;
				msg[data_nonce + i] ^= (uint8_t)(1u << bit);
				int rc = ig_coin_data_parse(msg, len, &header, &header_len, &suite, &nonce, &ct, &ct_len);
				cr_assert_eq(rc, spare ? IG_ERR_INVAL : IG_OK, "suite %d data nonce byte %zu bit %d", suite, i, bit);
				if (can_open)
					cr_assert_lt(ig_coin_data_open(out, sizeof out, msg, len, V_TOPIC, pk), 0, "byte %zu bit %d", i,
					             bit);
				msg[data_nonce + i] ^= (uint8_t)(1u << bit);

				rmsg[result_nonce + i] ^= (uint8_t)(1u << bit);
				rc = ig_coin_result_parse_hash(rmsg, rlen, carried);
				cr_assert_eq(rc, spare ? IG_ERR_INVAL : IG_OK, "result nonce byte %zu bit %d", i, bit);
				if (can_open)
					cr_assert_lt(ig_coin_result_open(out, sizeof out, rmsg, rlen, V_RTOPIC, rk, hh), 0,
					             "byte %zu bit %d", i, bit);
				rmsg[result_nonce + i] ^= (uint8_t)(1u << bit);
			}
		}
		/* untouched, both still open */
		if (can_open) {
			cr_assert_eq(ig_coin_data_open(out, sizeof out, msg, len, V_TOPIC, pk), 4);
			cr_assert_eq(ig_coin_result_open(out, sizeof out, rmsg, rlen, V_RTOPIC, rk, hh), 9);
		}
	}

	/* The header plaintext: a GCM header with a non-zero spare byte is
	 * refused by encode, decode and open; XChaCha uses all 24 bytes. */
	uint8_t x_pk[32], pt[256], sealed[300];
	cr_assert_eq(crypto_sign_ed25519_pk_to_curve25519(x_pk, bpk), 0);
	ig_coin_header h, back;
	memset(&h, 0, sizeof h);
	vec_coin(h.coin);
	h.suite = IG_SUITE_AES256GCM;
	strcpy(h.collector, V_COLLECTOR);
	ig_coin_topic_hash(h.topic_hash, V_TOPIC);
	vec_nonce(h.nonce, IG_SUITE_AES256GCM, 0x40);
	int n = ig_coin_header_encode(pt, sizeof pt, &h);
	cr_assert_eq(n, 99);
	for (size_t i = 12; i < IG_COIN_NONCE_BYTES; i++) {
		h.nonce[i] = 0x80;
		cr_assert_eq(ig_coin_header_encode(pt, sizeof pt, &h), IG_ERR_INVAL, "byte %zu", i);
		h.suite = IG_SUITE_XCHACHA20POLY1305;
		cr_assert_eq(ig_coin_header_encode(pt, sizeof pt, &h), 99, "byte %zu", i);
		h.suite = IG_SUITE_AES256GCM;
		h.nonce[i] = 0;
		cr_assert_eq(ig_coin_header_encode(pt, sizeof pt, &h), 99);
		pt[1 + 32 + i] = 0x01; /* the same spare byte in the plaintext */
		cr_assert_eq(ig_coin_header_decode(&back, pt, 99), IG_ERR_INVAL, "byte %zu", i);
		cr_assert_eq(crypto_box_seal(sealed, pt, 99, x_pk), 0);
		cr_assert_eq(ig_coin_header_open(&back, sealed, 99 + 48, bsk), IG_ERR_INVAL, "byte %zu", i);
		pt[1 + 32 + 12 + 12] = IG_SUITE_XCHACHA20POLY1305; /* the suite byte: XChaCha may use it */
		cr_assert_eq(ig_coin_header_decode(&back, pt, 99), IG_OK, "byte %zu", i);
	}

	/* Our own sealing always writes the canonical nonce (fresh in the
	 * first 12 bytes), in the data message and inside its header. */
	if (ig_suite_available(IG_SUITE_AES256GCM)) {
		uint8_t coin[32], hh[32], msg[512], first[12], res[128], rk[32], pk[32];
		tu_rand_bytes(coin, sizeof coin);
		ig_coin_keys(coin, pk, rk);
		for (int k = 0; k < 8; k++) {
			int m = ig_coin_data_seal(msg, sizeof msg, bpk, coin, IG_SUITE_AES256GCM, V_COLLECTOR, V_TOPIC,
			                          (const uint8_t *)"21.5", 4, hh);
			cr_assert_eq(m, 198);
			const uint8_t *nonce = msg + data_nonce;
			for (size_t i = 12; i < 24; i++)
				cr_assert_eq(nonce[i], 0, "seal %d byte %zu", k, i);
			if (k > 0)
				cr_assert_neq(memcmp(first, nonce, 12), 0, "the first 12 bytes are fresh");
			memcpy(first, nonce, 12);
			cr_assert_eq(ig_coin_header_open(&back, msg + 6, 147, bsk), IG_OK);
			cr_assert_eq(memcmp(back.nonce, nonce, 24), 0);
			uint8_t out[8];
			cr_assert_eq(ig_coin_data_open_redeemed(out, sizeof out, msg, 198, V_TOPIC, pk, back.nonce), 4);

			int r = ig_coin_result_seal(res, sizeof res, rk, IG_SUITE_AES256GCM, hh, V_RTOPIC, (const uint8_t *)"ok", 2);
			cr_assert_eq(r, IG_COIN_RESULT_OVERHEAD + 2);
			for (size_t i = 12; i < 24; i++)
				cr_assert_eq(res[result_nonce + i], 0, "result seal %d byte %zu", k, i);
			cr_assert_eq(ig_coin_result_open(out, sizeof out, res, (size_t)r, V_RTOPIC, rk, hh), 2);
		}
		sodium_memzero(&back, sizeof back);
	}
}

/* A header (with or without its ciphertext) moved to another topic. */
Test(bank_crypto, header_moved_to_another_topic, .init = setup)
{
	uint8_t bpk[IG_PK_BYTES], bsk[IG_SK_BYTES], coin[32], coin2[32], hh[32], hh2[32];
	uint8_t msg[512], msg2[512], out[64], pk[32], rk[32];
	const char *other = "iotguard/demo/dev/sensor-2/data/temp";
	bank_keys(bpk, bsk);
	tu_rand_bytes(coin, 32);
	tu_rand_bytes(coin2, 32);
	ig_coin_keys(coin, pk, rk);
	ig_suite s = IG_SUITE_XCHACHA20POLY1305;
	int n = ig_coin_data_seal(msg, sizeof msg, bpk, coin, s, V_COLLECTOR, V_TOPIC, (const uint8_t *)"21.5", 4, hh);
	cr_assert_gt(n, 0);

	/* the whole message republished on another topic: the analyst refuses it */
	cr_assert_eq(ig_coin_data_open(out, sizeof out, msg, (size_t)n, other, pk), IG_ERR_CRYPTO);
	cr_assert_eq(ig_coin_data_open(out, sizeof out, msg, (size_t)n, V_TOPIC "x", pk), IG_ERR_CRYPTO);
	/* and the bank refuses to redeem its header for that topic */
	ig_coin_header h;
	cr_assert_eq(ig_coin_header_open(&h, msg + 6, 147, bsk), IG_OK);
	cr_assert(ig_coin_header_matches_topic(&h, V_TOPIC));
	cr_assert_not(ig_coin_header_matches_topic(&h, other));
	cr_assert_not(ig_coin_header_matches_topic(&h, ""));

	/* the header grafted onto another message (another coin's ciphertext) */
	int n2 = ig_coin_data_seal(msg2, sizeof msg2, bpk, coin2, s, V_COLLECTOR, V_TOPIC, (const uint8_t *)"99.9", 4, hh2);
	cr_assert_eq(n2, n);
	uint8_t graft[512];
	memcpy(graft, msg, 6 + 147);                      /* header of coin 1 */
	memcpy(graft + 6 + 147, msg2 + 6 + 147, (size_t)n - 6 - 147); /* payload of coin 2 */
	uint8_t pk2[32], rk2[32];
	ig_coin_keys(coin2, pk2, rk2);
	cr_assert_eq(ig_coin_data_open(out, sizeof out, graft, (size_t)n, V_TOPIC, pk), IG_ERR_CRYPTO);
	cr_assert_eq(ig_coin_data_open(out, sizeof out, graft, (size_t)n, V_TOPIC, pk2), IG_ERR_CRYPTO);
}

/* A result for request X cannot be opened as the result for request Y. */
Test(bank_crypto, result_bound_to_header_hash, .init = setup)
{
	uint8_t bpk[IG_PK_BYTES], bsk[IG_SK_BYTES], coinx[32], coiny[32], hx[32], hy[32], msg[512], res[128], out[64];
	uint8_t pkx[32], rkx[32], pky[32], rky[32];
	bank_keys(bpk, bsk);
	tu_rand_bytes(coinx, 32);
	tu_rand_bytes(coiny, 32);
	ig_coin_keys(coinx, pkx, rkx);
	ig_coin_keys(coiny, pky, rky);
	ig_suite s = IG_SUITE_XCHACHA20POLY1305;
	cr_assert_gt(ig_coin_data_seal(msg, sizeof msg, bpk, coinx, s, V_COLLECTOR, V_TOPIC, (const uint8_t *)"1", 1, hx), 0);
	cr_assert_gt(ig_coin_data_seal(msg, sizeof msg, bpk, coiny, s, V_COLLECTOR, V_TOPIC, (const uint8_t *)"2", 1, hy), 0);

	int r = ig_coin_result_seal(res, sizeof res, rkx, s, hx, V_RTOPIC, (const uint8_t *)"for-x", 5);
	cr_assert_gt(r, 0);
	cr_assert_eq(ig_coin_result_open(out, sizeof out, res, (size_t)r, V_RTOPIC, rkx, hx), 5);
	/* the collector looks up the carried hash: it is X's, so Y cannot match */
	cr_assert_eq(ig_coin_result_open(out, sizeof out, res, (size_t)r, V_RTOPIC, rky, hy), IG_ERR_CRYPTO);
	cr_assert_eq(ig_coin_result_open(out, sizeof out, res, (size_t)r, V_RTOPIC, rkx, hy), IG_ERR_CRYPTO);
	/* rewriting the carried hash to Y's: the tag (AAD) still says X */
	memcpy(res + 4, hy, 32);
	cr_assert_eq(ig_coin_result_open(out, sizeof out, res, (size_t)r, V_RTOPIC, rky, hy), IG_ERR_CRYPTO);
	cr_assert_eq(ig_coin_result_open(out, sizeof out, res, (size_t)r, V_RTOPIC, rkx, hy), IG_ERR_CRYPTO);
	memcpy(res + 4, hx, 32);
	/* another results topic */
	cr_assert_eq(ig_coin_result_open(out, sizeof out, res, (size_t)r, "iotguard/demo/dev/sensor-1/results/hum", rkx, hx),
	             IG_ERR_CRYPTO);
	/* the payload key is not the result key */
	cr_assert_eq(ig_coin_result_open(out, sizeof out, res, (size_t)r, V_RTOPIC, pkx, hx), IG_ERR_CRYPTO);
	cr_assert_eq(ig_coin_result_open(out, sizeof out, res, (size_t)r, V_RTOPIC, rkx, hx), 5);
	cr_assert_eq(memcmp(out, "for-x", 5), 0);
	(void)pky;
}

Test(bank_crypto, wrong_keys, .init = setup)
{
	uint8_t bpk[IG_PK_BYTES], bsk[IG_SK_BYTES], opk[IG_PK_BYTES], osk[IG_SK_BYTES];
	uint8_t coin[32], hh[32], msg[512], out[64], pk[32], rk[32], random_key[32];
	bank_keys(bpk, bsk);
	crypto_sign_keypair(opk, osk);
	tu_rand_bytes(coin, 32);
	tu_rand_bytes(random_key, 32);
	ig_coin_keys(coin, pk, rk);
	int n = ig_coin_data_seal(msg, sizeof msg, bpk, coin, IG_SUITE_XCHACHA20POLY1305, V_COLLECTOR, V_TOPIC,
	                          (const uint8_t *)"21.5", 4, hh);
	cr_assert_gt(n, 0);
	cr_assert_eq(ig_coin_data_open(out, sizeof out, msg, (size_t)n, V_TOPIC, rk), IG_ERR_CRYPTO);
	cr_assert_eq(ig_coin_data_open(out, sizeof out, msg, (size_t)n, V_TOPIC, random_key), IG_ERR_CRYPTO);
	cr_assert_eq(ig_coin_data_open(out, sizeof out, msg, (size_t)n, V_TOPIC, pk), 4);
	/* another bank cannot open the header */
	ig_coin_header h;
	memset(&h, 0xAA, sizeof h);
	cr_assert_eq(ig_coin_header_open(&h, msg + 6, 147, osk), IG_ERR_CRYPTO);
	uint8_t zero[sizeof h];
	memset(zero, 0, sizeof zero);
	cr_assert_eq(memcmp(&h, zero, sizeof h), 0, "a failed open wipes the header");
	cr_assert_eq(ig_coin_header_open(&h, msg + 6, 146, bsk), IG_ERR_CRYPTO);
	cr_assert_eq(ig_coin_header_open(&h, msg + 6, 139, bsk), IG_ERR_INVAL);
	cr_assert_eq(ig_coin_header_open(&h, msg + 6, 204, bsk), IG_ERR_INVAL);
	/* the suite byte selects another algorithm: an XChaCha nonce is not a
	 * canonical GCM nonce (malformed); with one that is, the tag fails */
	msg[6 + 147] = IG_SUITE_AES256GCM;
	cr_assert_eq(ig_coin_data_open(out, sizeof out, msg, (size_t)n, V_TOPIC, pk), IG_ERR_INVAL);
	if (ig_suite_available(IG_SUITE_AES256GCM)) {
		memset(msg + 6 + 147 + 1 + 12, 0, 12);
		cr_assert_eq(ig_coin_data_open(out, sizeof out, msg, (size_t)n, V_TOPIC, pk), IG_ERR_CRYPTO);
	}
}

/* Headers sealed properly but with a plaintext outside the rules. */
Test(bank_crypto, strict_header_plaintext, .init = setup)
{
	uint8_t bpk[IG_PK_BYTES], bsk[IG_SK_BYTES], x_pk[32], pt[256], sealed[300];
	bank_keys(bpk, bsk);
	cr_assert_eq(crypto_sign_ed25519_pk_to_curve25519(x_pk, bpk), 0);
	ig_coin_header h, back;
	memset(&h, 0, sizeof h);
	tu_rand_bytes(h.coin, 32);
	tu_rand_bytes(h.nonce, 24);
	h.suite = IG_SUITE_XCHACHA20POLY1305;
	strcpy(h.collector, "dev1");
	int n = ig_coin_header_encode(pt, sizeof pt, &h);
	cr_assert_eq(n, 95);
	cr_assert_eq(ig_coin_header_encode(pt, 94, &h), IG_ERR_RANGE);

	struct {
		size_t off;
		uint8_t val;
	} spoil[] = {{0, 0}, {0, 2}, {57, 0}, {57, 3}, {58, 3}, {58, 5}, {58, 0}, {59, '/'}};
	for (size_t i = 0; i < sizeof spoil / sizeof spoil[0]; i++) {
		uint8_t bad[256];
		memcpy(bad, pt, (size_t)n);
		bad[spoil[i].off] = spoil[i].val;
		cr_assert_eq(ig_coin_header_decode(&back, bad, (size_t)n), IG_ERR_INVAL, "case %zu", i);
		cr_assert_eq(crypto_box_seal(sealed, bad, (size_t)n, x_pk), 0);
		cr_assert_eq(ig_coin_header_open(&back, sealed, (size_t)n + 48, bsk), IG_ERR_INVAL, "case %zu", i);
	}
	/* trailing slack byte */
	pt[n] = 0;
	cr_assert_eq(ig_coin_header_decode(&back, pt, (size_t)n + 1), IG_ERR_INVAL);
	cr_assert_eq(ig_coin_header_decode(&back, pt, (size_t)n - 1), IG_ERR_INVAL);
	cr_assert_eq(ig_coin_header_decode(&back, pt, (size_t)n), IG_OK);
	cr_assert_eq(crypto_box_seal(sealed, pt, (size_t)n, x_pk), 0);
	cr_assert_eq(ig_coin_header_open(&back, sealed, (size_t)n + 48, bsk), IG_OK);
	cr_assert_eq(memcmp(&back, &h, sizeof h), 0);
	/* encode refuses what decode refuses */
	h.suite = IG_SUITE_NONE;
	cr_assert_eq(ig_coin_header_encode(pt, sizeof pt, &h), IG_ERR_INVAL);
	h.suite = IG_SUITE_AES256GCM;
	strcpy(h.collector, "a b");
	cr_assert_eq(ig_coin_header_encode(pt, sizeof pt, &h), IG_ERR_INVAL);
}

Test(bank_crypto, parse_rejects_malformed, .init = setup)
{
	uint8_t msg[512], hh[32], bpk[32], bsk[64], coin[32];
	const uint8_t *header, *nonce, *ct;
	size_t header_len, ct_len;
	ig_suite suite;
	bank_keys(bpk, bsk);
	tu_rand_bytes(coin, 32);
	int n = ig_coin_data_seal(msg, sizeof msg, bpk, coin, IG_SUITE_XCHACHA20POLY1305, V_COLLECTOR, V_TOPIC,
	                          (const uint8_t *)"21.5", 4, hh);
	cr_assert_eq(ig_coin_data_parse(msg, (size_t)n, &header, &header_len, &suite, &nonce, &ct, &ct_len), IG_OK);
	msg[0] = 'X';
	cr_assert_eq(ig_coin_data_parse(msg, (size_t)n, &header, &header_len, &suite, &nonce, &ct, &ct_len), IG_ERR_INVAL);
	msg[0] = 'I';
	ig_put_u16(msg + 4, 139);
	cr_assert_eq(ig_coin_data_parse(msg, (size_t)n, &header, &header_len, &suite, &nonce, &ct, &ct_len), IG_ERR_INVAL);
	ig_put_u16(msg + 4, 204);
	cr_assert_eq(ig_coin_data_parse(msg, (size_t)n, &header, &header_len, &suite, &nonce, &ct, &ct_len), IG_ERR_INVAL);
	ig_put_u16(msg + 4, 147);
	msg[6 + 147] = 0;
	cr_assert_eq(ig_coin_data_parse(msg, (size_t)n, &header, &header_len, &suite, &nonce, &ct, &ct_len), IG_ERR_INVAL);
	msg[6 + 147] = 3;
	cr_assert_eq(ig_coin_data_parse(msg, (size_t)n, &header, &header_len, &suite, &nonce, &ct, &ct_len), IG_ERR_INVAL);
	msg[6 + 147] = 2;
	/* an empty payload is 16 bytes of tag; less is malformed */
	cr_assert_eq(ig_coin_data_parse(msg, 6 + 147 + 1 + 24 + 16, &header, &header_len, &suite, &nonce, &ct, &ct_len),
	             IG_OK);
	cr_assert_eq(ig_coin_data_parse(msg, 6 + 147 + 1 + 24 + 15, &header, &header_len, &suite, &nonce, &ct, &ct_len),
	             IG_ERR_INVAL);
	/* random garbage never parses into something out of bounds */
	for (int i = 0; i < 5000; i++) {
		size_t len = tu_rand() % sizeof msg;
		tu_rand_bytes(msg, len);
		if (tu_rand() % 2 && len >= 6) {
			memcpy(msg, "IGD1", 4);
			ig_put_u16(msg + 4, (uint16_t)(140 + tu_rand() % 64));
		}
		if (ig_coin_data_parse(msg, len, &header, &header_len, &suite, &nonce, &ct, &ct_len) == IG_OK) {
			cr_assert_leq((size_t)(ct - msg) + ct_len, len);
			cr_assert_geq(ct_len, 16u);
		}
		uint8_t carried[32];
		if (ig_coin_result_parse_hash(msg, len, carried) == IG_OK)
			cr_assert_geq(len, (size_t)IG_COIN_RESULT_OVERHEAD);
	}
}

/* ---- coin index --------------------------------------------------------------- */

static uint64_t rec_index = 1;

static int apply_body(ig_coins *c, uint16_t type, const uint8_t *body, int len, ig_error *err)
{
	cr_assert_gt(len, 0);
	ig_record rec = make_rec(type, body, (size_t)len, rec_index++);
	return ig_coins_apply(c, &rec, err);
}

static int credit(ig_coins *c, const char *id, uint64_t amount)
{
	uint8_t body[256];
	ig_credit_rec r = {.amount = amount};
	strcpy(r.id, id);
	strcpy(r.by, "admin1");
	ig_error err;
	int rc = apply_body(c, IG_REC_CREDIT, body, ig_bank_credit_encode(body, sizeof body, &r), &err);
	return rc;
}

static int mint(ig_coins *c, const char *owner, uint64_t expires, uint8_t (*hashes)[32], uint32_t count,
                ig_error *err)
{
	static uint8_t body[4096];
	static ig_mint_rec r;
	memset(&r, 0, sizeof r);
	strcpy(r.owner, owner);
	r.expires_at = expires;
	r.count = count;
	memcpy(r.hashes, hashes, (size_t)count * 32);
	return apply_body(c, IG_REC_COIN_MINT, body, ig_bank_mint_encode(body, sizeof body, &r), err);
}

static int redeem(ig_coins *c, const uint8_t hash[32], const char *collector, ig_error *err)
{
	uint8_t body[256];
	ig_redeem_rec r;
	memset(&r, 0, sizeof r);
	memcpy(r.coin_hash, hash, 32);
	strcpy(r.analyst, "analyst-1");
	strcpy(r.collector, collector);
	return apply_body(c, IG_REC_COIN_REDEEM, body, ig_bank_redeem_encode(body, sizeof body, &r), err);
}

static int refund(ig_coins *c, const uint8_t hash[32], const char *collector, ig_error *err)
{
	uint8_t body[256];
	ig_refund_rec r;
	memset(&r, 0, sizeof r);
	memcpy(r.coin_hash, hash, 32);
	strcpy(r.collector, collector);
	strcpy(r.reason, "cancelled");
	return apply_body(c, IG_REC_COIN_REFUND, body, ig_bank_refund_encode(body, sizeof body, &r), err);
}

Test(bank_index, mint_redeem_refund, .init = setup)
{
	ig_coins *c = ig_coins_new();
	cr_assert_not_null(c);
	ig_error err;
	uint8_t h[8][32];
	tu_rand_bytes(&h[0][0], sizeof h);

	cr_assert_eq(credit(c, "dev1", 5), IG_OK);
	cr_assert_eq(credit(c, "dev1", 2), IG_OK);
	cr_assert_eq(ig_coins_balance(c, "dev1"), 7u);
	cr_assert_eq(ig_coins_balance(c, "nobody"), 0u);

	cr_assert_eq(mint(c, "dev1", 2000, h, 4, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_coins_balance(c, "dev1"), 3u);
	cr_assert_eq(ig_coins_outstanding(c, "dev1"), 4u);
	cr_assert_eq(ig_coins_count(c, IG_COIN_MINTED), 4u);

	ig_coin_info info;
	cr_assert_eq(ig_coins_find(c, h[2], &info), IG_OK);
	cr_assert_eq(info.state, IG_COIN_MINTED);
	cr_assert_eq(info.expires_at, 2000u);
	cr_assert_str_eq(info.owner, "dev1");
	cr_assert_not(info.in_flight);
	cr_assert_eq(ig_coins_find(c, h[5], &info), IG_ERR_NOTFOUND);

	/* redeem h0 */
	cr_assert_eq(ig_coins_set_in_flight(c, h[0], true), IG_OK);
	cr_assert_eq(ig_coins_set_in_flight(c, h[0], true), IG_ERR_STATE, "two racing redeems: one wins");
	cr_assert_eq(ig_coins_find(c, h[0], &info), IG_OK);
	cr_assert(info.in_flight);
	cr_assert_eq(redeem(c, h[0], "dev1", &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_coins_find(c, h[0], &info), IG_OK);
	cr_assert_eq(info.state, IG_COIN_REDEEMED);
	cr_assert_not(info.in_flight, "applying the record clears in-flight");
	cr_assert_eq(ig_coins_set_in_flight(c, h[0], true), IG_ERR_STATE);
	cr_assert_eq(ig_coins_set_in_flight(c, h[0], false), IG_OK);
	cr_assert_eq(ig_coins_set_in_flight(c, h[5], true), IG_ERR_NOTFOUND);
	cr_assert_eq(ig_coins_outstanding(c, "dev1"), 3u);
	cr_assert_eq(ig_coins_balance(c, "dev1"), 3u, "redeeming does not refund");

	/* double redeem, refund after redeem */
	cr_assert_eq(redeem(c, h[0], "dev1", &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "already redeemed"), "%s", err.msg);
	cr_assert(strstr(err.msg, "ledger record"), "%s", err.msg);
	cr_assert_eq(refund(c, h[0], "dev1", &err), IG_ERR_CORRUPT);

	/* refund h1: balance back */
	cr_assert_eq(refund(c, h[1], "dev1", &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_coins_balance(c, "dev1"), 4u);
	cr_assert_eq(ig_coins_outstanding(c, "dev1"), 2u);
	cr_assert_eq(refund(c, h[1], "dev1", &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "already refunded"), "%s", err.msg);
	cr_assert_eq(redeem(c, h[1], "dev1", &err), IG_ERR_CORRUPT);

	/* wrong collector, unknown coin */
	cr_assert_eq(credit(c, "dev2", 1), IG_OK);
	cr_assert_eq(redeem(c, h[2], "dev2", &err), IG_ERR_CORRUPT);
	cr_assert_eq(refund(c, h[2], "dev2", &err), IG_ERR_CORRUPT);
	cr_assert_eq(redeem(c, h[6], "dev1", &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "not in the coin index"), "%s", err.msg);
	cr_assert_eq(ig_coins_find(c, h[2], &info), IG_OK);
	cr_assert_eq(info.state, IG_COIN_MINTED, "refused records change nothing");

	cr_assert_eq(ig_coins_count(c, IG_COIN_MINTED), 2u);
	cr_assert_eq(ig_coins_count(c, IG_COIN_REDEEMED), 1u);
	cr_assert_eq(ig_coins_count(c, IG_COIN_REFUNDED), 1u);
	cr_assert_gt(ig_coins_memory(c), 0u);

	/* other record types are ignored; a corrupt bank body is not */
	ig_record other = make_rec(IG_REC_ENROLL, (const uint8_t *)"junk", 4, 99);
	cr_assert_eq(ig_coins_apply(c, &other, &err), IG_OK);
	ig_record bad = make_rec(IG_REC_COIN_MINT, (const uint8_t *)"junk", 4, 99);
	cr_assert_eq(ig_coins_apply(c, &bad, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "ledger record 99"), "%s", err.msg);
	cr_assert_eq(ig_coins_apply(c, &bad, NULL), IG_ERR_CORRUPT);
	ig_coins_free(c);
}

Test(bank_index, overdraft_and_duplicates_are_atomic, .init = setup)
{
	ig_coins *c = ig_coins_new();
	ig_error err;
	uint8_t h[64][32];
	tu_rand_bytes(&h[0][0], sizeof h);

	cr_assert_eq(mint(c, "dev1", 100, h, 1, &err), IG_ERR_CORRUPT, "no credit at all");
	cr_assert(strstr(err.msg, "overdraft"), "%s", err.msg);
	cr_assert_eq(credit(c, "dev1", 3), IG_OK);
	cr_assert_eq(mint(c, "dev1", 100, h, 4, &err), IG_ERR_CORRUPT);
	cr_assert_eq(ig_coins_balance(c, "dev1"), 3u);
	cr_assert_eq(ig_coins_find(c, h[0], NULL), IG_ERR_NOTFOUND);

	cr_assert_eq(mint(c, "dev1", 100, h, 2, &err), IG_OK);
	/* h1 again, inside a new mint: nothing of it is applied */
	cr_assert_eq(mint(c, "dev1", 100, &h[1], 1, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "minted twice"), "%s", err.msg);
	memcpy(h[3], h[2], 32);
	cr_assert_eq(mint(c, "dev1", 100, &h[2], 2, &err), IG_ERR_CORRUPT, "duplicate inside one record");
	cr_assert_eq(ig_coins_find(c, h[2], NULL), IG_ERR_NOTFOUND);
	cr_assert_eq(ig_coins_balance(c, "dev1"), 1u);
	cr_assert_eq(ig_coins_count(c, IG_COIN_MINTED), 2u);

	/* credit overflow */
	cr_assert_eq(credit(c, "rich", UINT64_MAX), IG_OK);
	cr_assert_eq(credit(c, "rich", 1), IG_ERR_CORRUPT);
	cr_assert_eq(ig_coins_balance(c, "rich"), UINT64_MAX);
	ig_coins_free(c);
}

Test(bank_index, reservations, .init = setup)
{
	ig_coins *c = ig_coins_new();
	cr_assert_eq(ig_coins_reserve(c, "dev1", 1), IG_ERR_RANGE, "unknown id has no credit");
	cr_assert_eq(credit(c, "dev1", 10), IG_OK);
	cr_assert_eq(ig_coins_reserve(c, "dev1", 0), IG_ERR_INVAL);
	cr_assert_eq(ig_coins_reserve(c, "dev1", 6), IG_OK);
	cr_assert_eq(ig_coins_reserve(c, "dev1", 5), IG_ERR_RANGE, "two quick mints cannot overdraw");
	cr_assert_eq(ig_coins_reserve(c, "dev1", 4), IG_OK);
	cr_assert_eq(ig_coins_reserved(c, "dev1"), 10u);
	cr_assert_eq(ig_coins_balance(c, "dev1"), 10u);
	/* the first mint becomes durable */
	ig_error err;
	uint8_t h[6][32];
	tu_rand_bytes(&h[0][0], sizeof h);
	cr_assert_eq(mint(c, "dev1", 100, h, 6, &err), IG_OK, "%s", err.msg);
	ig_coins_unreserve(c, "dev1", 6);
	cr_assert_eq(ig_coins_balance(c, "dev1"), 4u);
	cr_assert_eq(ig_coins_reserved(c, "dev1"), 4u);
	cr_assert_eq(ig_coins_reserve(c, "dev1", 1), IG_ERR_RANGE);
	ig_coins_unreserve(c, "dev1", 100); /* clamps at 0 */
	cr_assert_eq(ig_coins_reserved(c, "dev1"), 0u);
	cr_assert_eq(ig_coins_reserve(c, "dev1", 4), IG_OK);
	ig_coins_free(c);
}

/* Many coins, random redeems/refunds, prune, and a model to compare with:
 * backward-shift deletion must keep every survivor reachable. */
Test(bank_index, prune_keeps_survivors_reachable, .init = setup)
{
	enum { N = 20000 };
	ig_coins *c = ig_coins_new();
	ig_error err;
	static uint8_t h[N][32];
	static uint8_t state[N];
	static uint32_t exp[N];
	tu_rand_bytes(&h[0][0], sizeof h);
	cr_assert_eq(credit(c, "dev1", N), IG_OK);
	for (int i = 0; i < N; i += 50) {
		uint32_t e = 1000 + (uint32_t)(tu_rand() % 1000);
		cr_assert_eq(mint(c, "dev1", e, &h[i], 50, &err), IG_OK, "%s", err.msg);
		for (int k = 0; k < 50; k++) {
			exp[i + k] = e;
			state[i + k] = IG_COIN_MINTED;
		}
	}
	size_t mem_full = ig_coins_memory(c);
	for (int i = 0; i < N; i++) {
		unsigned r = (unsigned)(tu_rand() % 10);
		if (r < 8) {
			cr_assert_eq(redeem(c, h[i], "dev1", &err), IG_OK, "%s", err.msg);
			state[i] = IG_COIN_REDEEMED;
		} else if (r == 8) {
			cr_assert_eq(refund(c, h[i], "dev1", &err), IG_OK, "%s", err.msg);
			state[i] = IG_COIN_REFUNDED;
		}
	}
	uint64_t now = 1500;
	size_t expect_dropped = 0;
	for (int i = 0; i < N; i++)
		expect_dropped += state[i] != IG_COIN_MINTED && exp[i] < now;
	cr_assert_eq(ig_coins_prune(c, now), expect_dropped);
	cr_assert_eq(ig_coins_prune(c, now), 0u, "prune is idempotent");
	for (int i = 0; i < N; i++) {
		ig_coin_info info;
		bool gone = state[i] != IG_COIN_MINTED && exp[i] < now;
		int rc = ig_coins_find(c, h[i], &info);
		if (gone) {
			cr_assert_eq(rc, IG_ERR_NOTFOUND, "coin %d should be pruned", i);
			/* an expired, spent coin is refused, as unknown */
			cr_assert_eq(redeem(c, h[i], "dev1", &err), IG_ERR_CORRUPT);
		} else {
			cr_assert_eq(rc, IG_OK, "coin %d lost by prune", i);
			cr_assert_eq(info.state, state[i]);
			cr_assert_eq(info.expires_at, exp[i]);
		}
	}
	/* everything final goes at a late enough time; the table shrinks */
	size_t minted = 0;
	for (int i = 0; i < N; i++)
		minted += state[i] == IG_COIN_MINTED;
	ig_coins_prune(c, 5000);
	cr_assert_eq(ig_coins_count(c, IG_COIN_REDEEMED), 0u);
	cr_assert_eq(ig_coins_count(c, IG_COIN_REFUNDED), 0u);
	cr_assert_eq(ig_coins_count(c, IG_COIN_MINTED), minted);
	cr_assert_lt(ig_coins_memory(c), mem_full / 2, "memory tracks outstanding coins");
	for (int i = 0; i < N; i++)
		if (state[i] == IG_COIN_MINTED)
			cr_assert_eq(ig_coins_find(c, h[i], NULL), IG_OK, "coin %d lost by shrink", i);
	ig_coins_free(c);
}

/* The budget: <= 48 bytes of RAM per outstanding coin, owners included. */
Test(bank_index, memory_per_coin, .init = setup, .timeout = 60)
{
	enum { N = 1000000, OWNERS = 100 };
	ig_coins *c = ig_coins_new();
	ig_error err;
	char id[16];
	for (int o = 0; o < OWNERS; o++) {
		snprintf(id, sizeof id, "dev%d", o);
		cr_assert_eq(credit(c, id, N), IG_OK);
	}
	static uint8_t h[64][32];
	uint64_t t0 = ig_mono_us();
	for (int i = 0; i < N; i += 64) {
		tu_rand_bytes(&h[0][0], sizeof h);
		snprintf(id, sizeof id, "dev%d", (i / 64) % OWNERS);
		uint32_t n = N - i < 64 ? (uint32_t)(N - i) : 64;
		cr_assert_eq(mint(c, id, 4000000000u, h, n, &err), IG_OK, "%s", err.msg);
	}
	double secs = (double)(ig_mono_us() - t0) / 1e6;
	cr_assert_eq(ig_coins_count(c, IG_COIN_MINTED), (uint64_t)N);
	double per_coin = (double)ig_coins_memory(c) / N;
	cr_log_info("coin index: %.1f bytes/coin at %d coins, built in %.2f s", per_coin, N, secs);
	cr_assert_leq(per_coin, 48.0, "%.1f bytes per coin", per_coin);
	/* the last batch is findable */
	ig_coin_info info;
	cr_assert_eq(ig_coins_find(c, h[0], &info), IG_OK);
	cr_assert_eq(info.expires_at, 4000000000u);
	ig_coins_free(c);
}

/* The document prints the vectors this file pins. */
Test(bank_vectors, documented, .init = setup)
{
	const char *files[] = {"PROTOCOL.md", "LEDGER.md"};
	const char *need[2][9] = {
		{V_COIN_HASH, V_PAYLOAD_KEY, V_RESULT_KEY, V_TOPIC_HASH, "0d1b471463336f1513ee63befb16cc7b659a3f91b15c0b44",
		 "9cad519cd0199adfd953dc8e560a9f69720f96", "494a4b0000000000000000000000006d300e22ba6c7d503ade84313e233691b0df66bc",
		 "60616263000000000000000000000000ab887f418c5adc079304e4951c226f7a79001d3a08e987103e"},
		{V_CREDIT_BODY, "cb2f5160fc1f7e05a55ef49d340b48da2e5a78099d53393351cd579dd42", "020009616e616c7973742d31",
		 "02000873656e736f722d3103000765787069726564", V_REDEEM_HH_TAIL, NULL},
	};
	for (int f = 0; f < 2; f++) {
		const char *text = tu_read_doc(files[f]);
		for (int i = 0; need[f][i]; i++)
			cr_assert_not_null(strstr(text, need[f][i]), "%s does not print %s", files[f], need[f][i]);
	}
}

/* ---- revocation ends what the id held (issue 7) ----------------------------- */

static int revoke_rec(ig_coins *c, const char *id, ig_error *err)
{
	uint8_t body[512];
	ig_revoke v;
	memset(&v, 0, sizeof v);
	snprintf(v.id, sizeof v.id, "%s", id);
	snprintf(v.reason, sizeof v.reason, "lost");
	snprintf(v.by, sizeof v.by, "admin1");
	return apply_body(c, IG_REC_REVOKE, body, ig_record_revoke_encode(body, sizeof body, &v), err);
}

Test(bank_index, revoke_cancels_balance_and_unspent_coins, .init = setup)
{
	ig_coins *c = ig_coins_new();
	cr_assert_not_null(c);
	ig_error err = {0};
	uint8_t h[6][32], other[2][32], fresh[1][32];
	tu_rand_bytes(&h[0][0], sizeof h);
	tu_rand_bytes(&other[0][0], sizeof other);
	tu_rand_bytes(&fresh[0][0], sizeof fresh);

	cr_assert_eq(credit(c, "col1", 10), IG_OK);
	cr_assert_eq(credit(c, "col2", 3), IG_OK);
	cr_assert_eq(mint(c, "col1", 5000, h, 6, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(mint(c, "col2", 5000, other, 2, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(redeem(c, h[0], "col1", &err), IG_OK, "%s", err.msg);
	cr_assert_eq(refund(c, h[1], "col1", &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_coins_balance(c, "col1"), 5u);
	cr_assert_eq(ig_coins_outstanding(c, "col1"), 4u);

	cr_assert_eq(revoke_rec(c, "col1", &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_coins_balance(c, "col1"), 0u, "the revoked id's credit is gone");
	cr_assert_eq(ig_coins_outstanding(c, "col1"), 0u, "and its unspent coins");
	ig_coin_info info;
	for (int i = 2; i < 6; i++) {
		cr_assert_eq(ig_coins_find(c, h[i], &info), IG_OK);
		cr_assert_eq(info.state, IG_COIN_REFUNDED, "coin %d is cancelled", i);
	}
	cr_assert_eq(ig_coins_find(c, h[0], &info), IG_OK);
	cr_assert_eq(info.state, IG_COIN_REDEEMED, "a spent coin stays spent");
	cr_assert_eq(ig_coins_count(c, IG_COIN_MINTED), 2u, "only col2's coins remain");

	/* a cancelled coin can be neither redeemed nor refunded afterwards */
	cr_assert_eq(redeem(c, h[3], "col1", &err), IG_ERR_CORRUPT);
	cr_assert_eq(refund(c, h[4], "col1", &err), IG_ERR_CORRUPT);
	cr_assert_eq(ig_coins_balance(c, "col1"), 0u, "a refused refund gives nothing back");

	/* others are untouched */
	cr_assert_eq(ig_coins_balance(c, "col2"), 1u);
	cr_assert_eq(ig_coins_outstanding(c, "col2"), 2u);

	/* a re-enrolment of col1 starts from zero: minting is an overdraft */
	cr_assert_eq(mint(c, "col1", 5000, fresh, 1, &err), IG_ERR_CORRUPT);
	cr_assert(strstr(err.msg, "overdraft"), "%s", err.msg);
	cr_assert_eq(ig_coins_reserve(c, "col1", 1), IG_ERR_RANGE, "no credit to reserve");
	cr_assert_eq(credit(c, "col1", 1), IG_OK);
	cr_assert_eq(ig_coins_balance(c, "col1"), 1u, "new credit counts from zero");

	/* revoking an id the bank never saw, or one with nothing left, is fine */
	cr_assert_eq(revoke_rec(c, "stranger", &err), IG_OK, "%s", err.msg);
	cr_assert_eq(revoke_rec(c, "col1", &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_coins_balance(c, "col1"), 0u);

	/* a broken revoke body is corrupt, as for any record */
	ig_record bad = make_rec(IG_REC_REVOKE, (const uint8_t *)"junk", 4, 77);
	cr_assert_eq(ig_coins_apply(c, &bad, &err), IG_ERR_CORRUPT);
	ig_coins_free(c);
}

Test(bank_index, revoke_with_many_coins_after_growth, .init = setup)
{
	/* The cancellation scans the table: it must find coins in any slot,
	 * after rehashes, and leave every other owner's coins reachable. */
	ig_coins *c = ig_coins_new();
	ig_error err = {0};
	static uint8_t a[64][32], b[64][32];
	cr_assert_eq(credit(c, "a", 64 * 40), IG_OK);
	cr_assert_eq(credit(c, "b", 64 * 40), IG_OK);
	for (int round = 0; round < 40; round++) {
		tu_rand_bytes(&a[0][0], sizeof a);
		tu_rand_bytes(&b[0][0], sizeof b);
		cr_assert_eq(mint(c, "a", 9000, a, 64, &err), IG_OK, "%s", err.msg);
		cr_assert_eq(mint(c, "b", 9000, b, 64, &err), IG_OK, "%s", err.msg);
	}
	cr_assert_eq(revoke_rec(c, "a", &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_coins_outstanding(c, "a"), 0u);
	cr_assert_eq(ig_coins_count(c, IG_COIN_MINTED), 64u * 40u);
	cr_assert_eq(ig_coins_count(c, IG_COIN_REFUNDED), 64u * 40u);
	ig_coin_info info;
	for (int i = 0; i < 64; i++) {
		cr_assert_eq(ig_coins_find(c, b[i], &info), IG_OK);
		cr_assert_eq(info.state, IG_COIN_MINTED);
		cr_assert_eq(ig_coins_find(c, a[i], &info), IG_OK);
		cr_assert_eq(info.state, IG_COIN_REFUNDED);
	}
	ig_coins_free(c);
}

/* ---- a redeem is repeatable by its redeemer (issue 7 section 4) -------------- */

/* The records of one test, kept so that a second index can replay them as
 * the plugin does at its next start. */
typedef struct rec_log {
	uint16_t type[16];
	uint8_t body[16][256];
	int len[16];
	int n;
} rec_log;

static int logged(ig_coins *c, rec_log *log, uint16_t type, const uint8_t *body, int len, ig_error *err)
{
	cr_assert_lt(log->n, 16);
	cr_assert_gt(len, 0);
	log->type[log->n] = type;
	memcpy(log->body[log->n], body, (size_t)len);
	log->len[log->n++] = len;
	return apply_body(c, type, body, len, err);
}

static int redeem_as(ig_coins *c, rec_log *log, const uint8_t hash[32], const char *analyst, const uint8_t *header_hash,
                     ig_error *err)
{
	uint8_t body[256];
	ig_redeem_rec r;
	memset(&r, 0, sizeof r);
	memcpy(r.coin_hash, hash, 32);
	strcpy(r.analyst, analyst);
	strcpy(r.collector, "dev1");
	if (header_hash) {
		r.has_header_hash = true;
		memcpy(r.header_hash, header_hash, 32);
	}
	return logged(c, log, IG_REC_COIN_REDEEM, body, ig_bank_redeem_encode(body, sizeof body, &r), err);
}

static void check_redeemers(const ig_coins *c, uint8_t (*h)[32], uint8_t (*hh)[32])
{
	/* h0: redeemed by analyst-1 for header hh0 */
	cr_assert(ig_coins_redeemed_by(c, h[0], "analyst-1", hh[0]), "the redeemer's retry gets the keys again");
	cr_assert_not(ig_coins_redeemed_by(c, h[0], "analyst-2", hh[0]), "another analyst: already_spent");
	cr_assert_not(ig_coins_redeemed_by(c, h[0], "analyst-1", hh[1]), "another header: already_spent");
	cr_assert_not(ig_coins_redeemed_by(c, h[0], "analyst-", hh[0]));
	/* h1: redeemed by a record without a header hash (an older writer) */
	cr_assert_not(ig_coins_redeemed_by(c, h[1], "analyst-1", hh[1]));
	/* h2: refunded; h3: still minted; h5: never minted */
	cr_assert_not(ig_coins_redeemed_by(c, h[2], "analyst-1", hh[2]));
	cr_assert_not(ig_coins_redeemed_by(c, h[3], "analyst-1", hh[3]));
	cr_assert_not(ig_coins_redeemed_by(c, h[5], "analyst-1", hh[5]));
	ig_coin_info info;
	cr_assert_eq(ig_coins_find(c, h[0], &info), IG_OK);
	cr_assert_eq(info.state, IG_COIN_REDEEMED);
	cr_assert_not(info.in_flight);
}

Test(bank_index, redeem_repeatable_by_its_redeemer, .init = setup)
{
	ig_coins *c = ig_coins_new();
	rec_log *log = calloc(1, sizeof *log);
	cr_assert(c && log);
	ig_error err;
	uint8_t h[6][32], hh[6][32];
	tu_rand_bytes(&h[0][0], sizeof h);
	tu_rand_bytes(&hh[0][0], sizeof hh);

	{
		uint8_t body[256];
		ig_credit_rec r = {.amount = 4};
		strcpy(r.id, "dev1");
		strcpy(r.by, "admin1");
		cr_assert_eq(logged(c, log, IG_REC_CREDIT, body, ig_bank_credit_encode(body, sizeof body, &r), &err), IG_OK);
		static ig_mint_rec m;
		static uint8_t mbody[4096];
		memset(&m, 0, sizeof m);
		strcpy(m.owner, "dev1");
		m.expires_at = 2000000000u;
		m.count = 4;
		memcpy(m.hashes, h, 4 * 32);
		int n = ig_bank_mint_encode(mbody, sizeof mbody, &m);
		cr_assert_lt(n, 256);
		cr_assert_eq(logged(c, log, IG_REC_COIN_MINT, mbody, n, &err), IG_OK, "%s", err.msg);
	}

	/* In flight: the redeemer's repeat is recognised (outcome not known
	 * yet), anyone else's is not. */
	cr_assert_eq(ig_coins_set_redeeming(c, h[0], "analyst-1", hh[0]), IG_OK);
	cr_assert_eq(ig_coins_set_redeeming(c, h[0], "analyst-1", hh[0]), IG_ERR_STATE, "one redeem at a time");
	cr_assert(ig_coins_redeemed_by(c, h[0], "analyst-1", hh[0]));
	cr_assert_not(ig_coins_redeemed_by(c, h[0], "analyst-2", hh[0]));
	/* A write that certainly failed forgets the redeemer. */
	cr_assert_eq(ig_coins_set_redeeming(c, h[3], "analyst-1", hh[3]), IG_OK);
	cr_assert_eq(ig_coins_set_in_flight(c, h[3], false), IG_OK);
	cr_assert_not(ig_coins_redeemed_by(c, h[3], "analyst-1", hh[3]));
	/* A refund in flight has no redeemer. */
	cr_assert_eq(ig_coins_set_in_flight(c, h[2], true), IG_OK);
	cr_assert_not(ig_coins_redeemed_by(c, h[2], "analyst-1", hh[2]));

	cr_assert_eq(redeem_as(c, log, h[0], "analyst-1", hh[0], &err), IG_OK, "%s", err.msg);
	cr_assert_eq(redeem_as(c, log, h[1], "analyst-1", NULL, &err), IG_OK, "%s", err.msg);
	{
		uint8_t body[256];
		ig_refund_rec r;
		memset(&r, 0, sizeof r);
		memcpy(r.coin_hash, h[2], 32);
		strcpy(r.collector, "dev1");
		strcpy(r.reason, "cancelled");
		cr_assert_eq(logged(c, log, IG_REC_COIN_REFUND, body, ig_bank_refund_encode(body, sizeof body, &r), &err), IG_OK);
	}
	check_redeemers(c, h, hh);
	/* Clearing in-flight after the record (as the plugin does) keeps the tag. */
	cr_assert_eq(ig_coins_set_in_flight(c, h[0], false), IG_OK);
	cr_assert(ig_coins_redeemed_by(c, h[0], "analyst-1", hh[0]));
	/* Still spent for the ledger: a second redeem record is corrupt. */
	cr_assert_eq(redeem_as(c, log, h[0], "analyst-1", hh[0], &err), IG_ERR_CORRUPT);
	log->n--;

	/* The next start: a new index (a new tag key) replays the same records
	 * and knows the same redeemers. */
	ig_coins *again = ig_coins_new();
	cr_assert_not_null(again);
	for (int i = 0; i < log->n; i++)
		cr_assert_eq(apply_body(again, log->type[i], log->body[i], log->len[i], &err), IG_OK, "%s", err.msg);
	check_redeemers(again, h, hh);
	cr_assert_eq(ig_coins_count(again, IG_COIN_REDEEMED), 2u);

	/* Growth and pruning move slots: the tag moves with its coin. */
	uint8_t (*more)[32] = malloc(64 * 32);
	cr_assert_not_null(more);
	for (int round = 0; round < 40; round++) {
		tu_rand_bytes(&more[0][0], 64 * 32);
		cr_assert_eq(credit(again, "dev1", 64), IG_OK);
		cr_assert_eq(mint(again, "dev1", 2000000000u, more, 64, &err), IG_OK, "%s", err.msg);
	}
	check_redeemers(again, h, hh);
	cr_assert_eq(ig_coins_prune(again, 2000000001u), 2u + 1u, "the spent coins expire");
	cr_assert_not(ig_coins_redeemed_by(again, h[0], "analyst-1", hh[0]), "pruned: forgotten");
	free(more);
	ig_coins_free(again);
	ig_coins_free(c);
	free(log);
}

/* ---- sizing from a ledger's census (issue 8) ---------------------------------- */

/* A replay sizes the coin table once for the coins it will read: minting
 * them then never grows (rehashes) it. */
Test(bank_index, expect_sizes_the_table_once, .init = setup, .timeout = 60)
{
	enum { N = 200000 };
	ig_coins *c = ig_coins_new();
	cr_assert_eq(credit(c, "dev1", N), IG_OK);
	cr_assert_eq(ig_coins_expect(c, N), IG_OK);
	size_t sized = ig_coins_memory(c);
	cr_assert_geq(sized, (size_t)N * 24 * 5 / 4, "the table must hold N coins at <= 4/5 load");
	cr_assert_leq(sized, (size_t)N * 48);
	static uint8_t h[64][32];
	ig_error err;
	for (int i = 0; i < N; i += 64) {
		tu_rand_bytes(&h[0][0], sizeof h);
		uint32_t n = N - i < 64 ? (uint32_t)(N - i) : 64;
		cr_assert_eq(mint(c, "dev1", 4000000000u, h, n, &err), IG_OK, "%s", err.msg);
	}
	cr_assert_eq(ig_coins_count(c, IG_COIN_MINTED), (uint64_t)N);
	cr_assert_eq(ig_coins_memory(c), sized, "minting the expected coins grew the table");
	ig_coin_info info;
	cr_assert_eq(ig_coins_find(c, h[0], &info), IG_OK);
	cr_assert_eq(ig_coins_expect(c, 0), IG_OK);
	cr_assert_eq(ig_coins_memory(c), sized);
	cr_assert_eq(ig_coins_expect(NULL, 1), IG_ERR_INVAL);
	ig_coins_free(c);
}
