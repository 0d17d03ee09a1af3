/* tests/fuzz/fuzz_coin.c: fuzzes the coin header and the coin-sealed data
 * and result messages (lib/bank/coin.c, docs/PROTOCOL.md "Coins").
 *
 * Why this exists: a data message arrives from any collector and a redeem
 * hands the bank a sealed header from any analyst; the bank parses and
 * opens them before it knows who sealed them, and the analyst and the
 * collector parse what the other sent. Every input goes through each
 * parser, so a seed of one kind (from the docs' vectors) also explores the
 * others. Invariants, with the docs' bank key (seed 0x20..0x3f):
 * - a header plaintext that decodes re-encodes to the same bytes;
 * - a sealed header that opens is one of the docs' (coin 0x00..0x1f,
 *   collector sensor-1, the docs' topic); one that does not is wiped;
 * - a data message that parses splits into parts that tile it exactly, and
 *   opens (with its coin's payload key) only to the docs' payload;
 * - a result opens (with the docs' result key) only to the docs' result. */
#include "fuzz_common.h"
#include "ig_coin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DATA_TOPIC "iotguard/demo/dev/sensor-1/data/temp"
#define RESULTS_TOPIC "iotguard/demo/dev/sensor-1/results/temp"

static uint8_t bank_sk[crypto_sign_SECRETKEYBYTES];
static uint8_t doc_payload_key[32], doc_result_key[32];

static void setup_once(void)
{
	static int ready;
	if (ready)
		return;
	uint8_t seed[crypto_sign_SEEDBYTES], pk[crypto_sign_PUBLICKEYBYTES], coin[IG_COIN_BYTES];
	for (size_t i = 0; i < sizeof seed; i++)
		seed[i] = (uint8_t)(0x20 + i);
	for (size_t i = 0; i < sizeof coin; i++)
		coin[i] = (uint8_t)i;
	if (sodium_init() < 0)
		abort();
	crypto_sign_seed_keypair(pk, bank_sk, seed);
	ig_coin_keys(coin, doc_payload_key, doc_result_key);
	ready = 1;
}

static int all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

/* The bank's side: open a sealed header; check what may come out. */
static int open_header(ig_coin_header *h, const uint8_t *sealed, size_t len)
{
	memset(h, 0xa5, sizeof *h);
	if (ig_coin_header_open(h, sealed, len, bank_sk) != IG_OK) {
		FUZZ_ASSERT(all_zero(h, sizeof *h));
		return 0;
	}
	for (size_t i = 0; i < IG_COIN_BYTES; i++)
		FUZZ_ASSERT(h->coin[i] == i);
	FUZZ_ASSERT(strcmp(h->collector, "sensor-1") == 0);
	FUZZ_ASSERT(ig_coin_header_matches_topic(h, DATA_TOPIC));
	FUZZ_ASSERT(!ig_coin_header_matches_topic(h, RESULTS_TOPIC));
	FUZZ_ASSERT(h->suite == IG_SUITE_AES256GCM || h->suite == IG_SUITE_XCHACHA20POLY1305);
	return 1;
}

static void header_plaintext(const uint8_t *data, size_t size)
{
	ig_coin_header h;
	if (ig_coin_header_decode(&h, data, size) != IG_OK)
		return;
	uint8_t again[IG_COIN_HEADER_PLAIN_MAX];
	int n = ig_coin_header_encode(again, sizeof again, &h);
	FUZZ_ASSERT(n >= 0 && (size_t)n == size && memcmp(again, data, size) == 0);
	sodium_memzero(&h, sizeof h);
}

static void data_message(const uint8_t *data, size_t size)
{
	const uint8_t *header, *nonce, *ct;
	size_t header_len, ct_len;
	ig_suite suite;
	if (ig_coin_data_parse(data, size, &header, &header_len, &suite, &nonce, &ct, &ct_len) != IG_OK)
		return;
	FUZZ_ASSERT(header == data + 6 && header_len >= IG_COIN_HEADER_SEALED_MIN &&
	            header_len <= IG_COIN_HEADER_SEALED_MAX);
	FUZZ_ASSERT(nonce == header + header_len + 1 && ct == nonce + IG_COIN_NONCE_BYTES);
	FUZZ_ASSERT(ct + ct_len == data + size && ct_len >= 16 && ct_len - 16 <= IG_COIN_DATA_MAX_PAYLOAD);
	FUZZ_ASSERT(suite == IG_SUITE_AES256GCM || suite == IG_SUITE_XCHACHA20POLY1305);

	uint8_t *out = malloc(ct_len);
	if (!out)
		abort();
	/* The analyst before redeeming cannot open anything; with the docs'
	 * payload key only the docs' message opens. */
	int n = ig_coin_data_open(out, ct_len, data, size, DATA_TOPIC, doc_payload_key);
	if (n >= 0)
		FUZZ_ASSERT(n == 4 && memcmp(out, "21.5", 4) == 0);
	else
		FUZZ_ASSERT(n == IG_ERR_INVAL || n == IG_ERR_CRYPTO);
	FUZZ_ASSERT(ig_coin_data_open(out, ct_len, data, size, RESULTS_TOPIC, doc_payload_key) < 0);

	ig_coin_header h;
	if (open_header(&h, header, header_len)) {
		uint8_t payload_key[32], result_key[32];
		ig_coin_keys(h.coin, payload_key, result_key);
		n = ig_coin_data_open_redeemed(out, ct_len, data, size, DATA_TOPIC, payload_key, h.nonce);
		if (n >= 0)
			FUZZ_ASSERT(n == 4 && memcmp(out, "21.5", 4) == 0);
		sodium_memzero(payload_key, sizeof payload_key);
		sodium_memzero(result_key, sizeof result_key);
		sodium_memzero(&h, sizeof h);
	}
	free(out);
}

static void result_message(const uint8_t *data, size_t size)
{
	uint8_t header_hash[IG_HASH_BYTES];
	if (ig_coin_result_parse_hash(data, size, header_hash) != IG_OK)
		return;
	FUZZ_ASSERT(size >= IG_COIN_RESULT_OVERHEAD && memcmp(header_hash, data + 4, IG_HASH_BYTES) == 0);
	size_t cap = size - IG_COIN_RESULT_OVERHEAD;
	uint8_t *out = malloc(cap + 1);
	if (!out)
		abort();
	int n = ig_coin_result_open(out, cap + 1, data, size, RESULTS_TOPIC, doc_result_key, header_hash);
	if (n >= 0)
		FUZZ_ASSERT((size_t)n == cap && n == 9 && memcmp(out, "mean=21.5", 9) == 0);
	FUZZ_ASSERT(ig_coin_result_open(out, cap + 1, data, size, DATA_TOPIC, doc_result_key, header_hash) < 0);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup_once();
	header_plaintext(data, size);
	ig_coin_header h;
	if (open_header(&h, data, size))
		sodium_memzero(&h, sizeof h);
	data_message(data, size);
	result_message(data, size);
	return 0;
}
