/* tests/fuzz/fuzz_custody_sealed.c: fuzzes the sealed cluster-head key
 * (ig_custody_sealed_c0, ig_custody_unseal_file, ig_custody_unseal;
 * lib/custody/custody.c; docs/PROTOCOL.md "ch.key.sealed").
 *
 * Why this exists: ch.key.sealed sits on a disk an attacker may have
 * copied or replaced, and a sealed cluster head reads it when k holders
 * bring S back; it must never crash on it, and must install no key but the
 * genesis one. Every input is used twice, with the docs' S (deal A's a_0)
 * and cluster-head key: (1) as the whole file, and (2) as the PLAINTEXT of
 * a well-formed file (IGCSEAL1 | C0 | the documented nonce | AEAD under the
 * seal key, AD = magic | C0 | ch_pk) so the key-file parser and the
 * genesis-key check behind the AEAD are fuzzed too (seeds: the documented
 * file, and the ch.key file it holds). Invariants: the C0 of a file is its
 * bytes 8..40; a file unseals only with C0 = S·G and then yields exactly a
 * key file of the genesis key; in mode 2 it unseals exactly when the input
 * is a key file (ig_keyfile_parse) of ch_pk of 1..4096 bytes, and yields the
 * input byte for byte; ig_custody_unseal agrees and returns the genesis
 * secret key; the same file never opens for another ch_pk or S; whatever
 * seals, unseals to itself; a refusal leaves the outputs wiped or untouched. */
#include "fuzz_custody_vectors.h"
#include "ig_custody.h"
#include "ig_keyfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PLAIN_MAX 4096
#define OVER IG_CUSTODY_SEALED_OVERHEAD

static uint8_t S[32], other_S[32], C0[32], ch_pk[32], ch_sk[64], other_pk[32], seal_key[32], seal_nonce[24];

static void setup(void)
{
	fuzz_seed_keypair(ch_pk, ch_sk, V_CH_SEED);
	fuzz_unhex(S, sizeof S, V_COEFF0);
	fuzz_unhex(other_S, sizeof other_S, V_SHARE1);
	fuzz_unhex(C0, sizeof C0, V_COMMIT0);
	fuzz_unhex(seal_key, sizeof seal_key, V_SEAL_KEY);
	fuzz_unhex(seal_nonce, sizeof seal_nonce, V_SEAL_NONCE);
	fuzz_unhex(other_pk, sizeof other_pk, V_HOLDER2_PK);
	uint8_t k[32];
	ig_custody_seal_key(k, S);
	FUZZ_ASSERT(memcmp(k, seal_key, 32) == 0);   /* the documented key, so mode 2 reaches the parser */
}

/* Unseals f (len) with S and ch_pk and checks every invariant; returns rc. */
static int unseal_and_check(const uint8_t *f, size_t len, const uint8_t *expect_plain, size_t expect_len,
                            int expect_ok)
{
	uint8_t c0[32];
	int crc = ig_custody_sealed_c0(c0, f, len);
	if (crc == IG_OK)
		FUZZ_ASSERT(len >= OVER && memcmp(f, "IGCSEAL1", 8) == 0 && memcmp(c0, f + 8, 32) == 0);
	else
		FUZZ_ASSERT(crc == IG_ERR_INVAL && (len < OVER || memcmp(f, "IGCSEAL1", 8) != 0));

	static uint8_t plain[PLAIN_MAX + OVER + 64];
	size_t plain_len = 12345;
	ig_error err;
	memset(&err, 0, sizeof err);
	memset(plain, 0xa5, sizeof plain);
	int rc = ig_custody_unseal_file(plain, sizeof plain, &plain_len, S, ch_pk, f, len, &err);
	uint8_t sk[IG_SK_BYTES];
	memset(sk, 0xa5, sizeof sk);
	ig_error err2;
	memset(&err2, 0, sizeof err2);
	int rc2 = ig_custody_unseal(sk, S, ch_pk, f, len, &err2);
	FUZZ_ASSERT(rc == rc2);
	if (rc == IG_OK) {
		FUZZ_ASSERT(crc == IG_OK && memcmp(c0, C0, 32) == 0);
		FUZZ_ASSERT(plain_len == len - OVER);
		uint8_t psk[IG_SK_BYTES], ppk[IG_PK_BYTES];
		FUZZ_ASSERT(ig_keyfile_parse(psk, ppk, plain, plain_len, "fuzz", &err) == IG_OK);
		FUZZ_ASSERT(memcmp(ppk, ch_pk, 32) == 0 && memcmp(psk, ch_sk, 64) == 0 && memcmp(sk, ch_sk, 64) == 0);
		sodium_memzero(psk, sizeof psk);
		/* Bound to the genesis key and to S. */
		FUZZ_ASSERT(ig_custody_unseal_file(plain, sizeof plain, &plain_len, S, other_pk, f, len, &err) ==
		            IG_ERR_CRYPTO);
		FUZZ_ASSERT(ig_custody_unseal_file(plain, sizeof plain, &plain_len, other_S, ch_pk, f, len, &err) ==
		            IG_ERR_CRYPTO);
		/* Too small an output buffer is refused, not overrun. */
		FUZZ_ASSERT(ig_custody_unseal_file(plain, len - OVER - 1, &plain_len, S, ch_pk, f, len, &err) ==
		            IG_ERR_RANGE);
		plain_len = len - OVER;
		FUZZ_ASSERT(ig_custody_unseal_file(plain, sizeof plain, &plain_len, S, ch_pk, f, len, &err) == IG_OK);
	} else {
		FUZZ_ASSERT(rc == IG_ERR_INVAL || rc == IG_ERR_CRYPTO);
		FUZZ_ASSERT(err.msg[0] != '\0' && err2.msg[0] != '\0');
		FUZZ_ASSERT(fuzz_untouched_or_zero(sk, sizeof sk, 0xa5));
		/* What was decrypted is wiped again (the bytes after the
		 * ciphertext's length were never written). */
		if (len >= OVER && len - OVER <= sizeof plain)
			FUZZ_ASSERT(fuzz_is_zero(plain, len - OVER) || plain[0] == 0xa5);
	}
	if (expect_plain) {
		FUZZ_ASSERT((rc == IG_OK) == expect_ok);
		if (rc == IG_OK)
			FUZZ_ASSERT(plain_len == expect_len && memcmp(plain, expect_plain, expect_len) == 0);
		else
			FUZZ_ASSERT(rc == IG_ERR_CRYPTO || expect_len == 0 || expect_len > PLAIN_MAX);
	}
	sodium_memzero(sk, sizeof sk);
	sodium_memzero(plain, sizeof plain);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		setup();
		ready = 1;
	}

	/* (1) The input is the file (a heap copy of exactly size bytes). */
	uint8_t *buf = malloc(size ? size : 1);
	FUZZ_ASSERT(buf);
	memcpy(buf, data, size);
	(void)unseal_and_check(buf, size, NULL, 0, 0);
	free(buf);

	/* (2) The input is the plaintext of a well-formed file. */
	if (size > PLAIN_MAX + 1)
		return 0;
	size_t len = OVER + size;
	uint8_t *f = malloc(len);
	FUZZ_ASSERT(f);
	uint8_t ad[8 + 32 + 32];
	memcpy(ad, "IGCSEAL1", 8);
	memcpy(ad + 8, C0, 32);
	memcpy(ad + 40, ch_pk, 32);
	memcpy(f, ad, 40);
	memcpy(f + 40, seal_nonce, 24);
	unsigned long long clen = 0;
	crypto_aead_xchacha20poly1305_ietf_encrypt(f + 64, &clen, data, size, ad, sizeof ad, NULL, seal_nonce, seal_key);
	FUZZ_ASSERT(clen == size + 16);
	/* The oracle: a key file of the genesis key, 1..4096 bytes. */
	uint8_t psk[IG_SK_BYTES], ppk[IG_PK_BYTES];
	ig_error err;
	int ok = size >= 1 && size <= PLAIN_MAX && ig_keyfile_parse(psk, ppk, data, size, "fuzz", &err) == IG_OK &&
	         memcmp(ppk, ch_pk, 32) == 0;
	sodium_memzero(psk, sizeof psk);
	int rc = unseal_and_check(f, len, data, size, ok);
	if (rc != IG_OK && size >= 1 && size <= PLAIN_MAX)
		FUZZ_ASSERT(rc == IG_ERR_CRYPTO);   /* it opened: only the key inside can be refused */
	free(f);

	/* Whatever seals, unseals to itself (with a fresh nonce). */
	uint8_t *out = malloc(OVER + size + 1);
	FUZZ_ASSERT(out);
	size_t out_len = 0;
	int src = ig_custody_seal(out, OVER + size, &out_len, S, ch_pk, data, size);
	if (src == IG_OK) {
		FUZZ_ASSERT(size >= 1 && size <= PLAIN_MAX && out_len == OVER + size);
		FUZZ_ASSERT(memcmp(out, "IGCSEAL1", 8) == 0 && memcmp(out + 8, C0, 32) == 0);
		unseal_and_check(out, out_len, data, size, ok);
	} else {
		FUZZ_ASSERT(src == IG_ERR_INVAL ? size == 0 : (src == IG_ERR_RANGE && size > PLAIN_MAX));
	}
	free(out);
	return 0;
}
