/* tests/fuzz/fuzz_custody_store.c: fuzzes a holder's share file decoder
 * (ig_custody_store_decode, lib/custody/custody.c; docs/PROTOCOL.md
 * "KEYFILE.shares").
 *
 * Why this exists: the agent reads KEY.shares at every start, and a damaged
 * or planted file must stop it cleanly, never crash it or yield a share the
 * file did not hold. Every input is used twice, as the docs' holder 2
 * (`dev-02`, its documented seed): (1) as the whole file, and (2) as the
 * PLAINTEXT of a well-formed file, sealed here under the documented store
 * key and AD, so the entry parser behind the AEAD is fuzzed too (the seeds
 * are the documented file and its plaintext). Invariants: a decoded store
 * holds only what the layout allows (count <= 2, 2 <= k <= n, 1 <= index
 * <= n, epoch >= 1, flags bit 0 only, a canonical non-zero share, valid
 * commitment points, no (ch_pk, epoch) twice), its plaintext is exactly the
 * input in mode 2, it re-encodes and decodes equal (and the re-encoded
 * plaintext is byte-identical), the same file under another id does not
 * open, and a refused input leaves the output wiped or untouched. */
#include "fuzz_custody_vectors.h"
#include "ig_custody.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEAD (8 + 24)
#define TAG 16

static uint8_t h_pk[32], h_sk[64], store_key[32], store_nonce[24];
static ig_custody_held held[IG_CUSTODY_HELD_MAX], again[IG_CUSTODY_HELD_MAX];

static void ad_for(uint8_t *ad, size_t *len, const char *id)
{
	memcpy(ad, "IGCSTOR1", 8);
	memcpy(ad + 8, id, strlen(id));
	*len = 8 + strlen(id);
}

/* A file holding plaintext pt under the documented key, nonce and AD. */
static uint8_t *seal_store(const uint8_t *pt, size_t pt_len, size_t *len)
{
	uint8_t ad[8 + IG_ID_MAX];
	size_t ad_len;
	ad_for(ad, &ad_len, V_STORE_ID);
	uint8_t *f = malloc(HEAD + pt_len + TAG);
	FUZZ_ASSERT(f);
	memcpy(f, "IGCSTOR1", 8);
	memcpy(f + 8, store_nonce, 24);
	unsigned long long clen = 0;
	crypto_aead_xchacha20poly1305_ietf_encrypt(f + HEAD, &clen, pt, pt_len, ad, ad_len, NULL, store_nonce, store_key);
	*len = HEAD + (size_t)clen;
	return f;
}

/* The plaintext of a file encoded by the code under test (its own nonce). */
static uint8_t *open_store(const uint8_t *f, size_t len, size_t *pt_len)
{
	uint8_t ad[8 + IG_ID_MAX];
	size_t ad_len;
	ad_for(ad, &ad_len, V_STORE_ID);
	FUZZ_ASSERT(len >= HEAD + TAG && memcmp(f, "IGCSTOR1", 8) == 0);
	uint8_t *pt = malloc(len - HEAD - TAG + 1);
	FUZZ_ASSERT(pt);
	unsigned long long mlen = 0;
	FUZZ_ASSERT(crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &mlen, NULL, f + HEAD, len - HEAD, ad, ad_len, f + 8,
	                                                       store_key) == 0);
	*pt_len = (size_t)mlen;
	return pt;
}

static void check_entries(const ig_custody_held *h, size_t count)
{
	FUZZ_ASSERT(count <= IG_CUSTODY_HELD_MAX);
	for (size_t e = 0; e < count; e++) {
		FUZZ_ASSERT(h[e].epoch >= 1 && h[e].k >= 2 && h[e].n >= h[e].k && h[e].index >= 1 && h[e].index <= h[e].n);
		FUZZ_ASSERT(fuzz_scalar_canonical(h[e].share) && !fuzz_is_zero(h[e].share, 32));
		for (unsigned j = 0; j < h[e].k; j++)
			FUZZ_ASSERT(crypto_core_ristretto255_is_valid_point(h[e].commitments[j]));
		for (size_t f = 0; f < e; f++)
			FUZZ_ASSERT(!(h[f].epoch == h[e].epoch && memcmp(h[f].ch_pk, h[e].ch_pk, 32) == 0));
	}
}

static int same_entries(const ig_custody_held *a, const ig_custody_held *b, size_t count)
{
	for (size_t e = 0; e < count; e++)
		if (memcmp(a[e].ch_pk, b[e].ch_pk, 32) || a[e].epoch != b[e].epoch || a[e].index != b[e].index ||
		    a[e].k != b[e].k || a[e].n != b[e].n || a[e].active != b[e].active || memcmp(a[e].share, b[e].share, 32) ||
		    memcmp(a[e].commitments, b[e].commitments, (size_t)a[e].k * 32))
			return 0;
	return 1;
}

/* Decodes buf as dev-02's file; on success checks the invariants and the
 * round trip, and returns the plaintext the code under test re-encoded
 * (malloc'd, *pt_len) so mode 2 can compare it with its input. */
static int decode_and_check(const uint8_t *buf, size_t len, uint8_t **re_pt, size_t *re_pt_len)
{
	size_t count = 99;
	ig_error err;
	memset(&err, 0, sizeof err);
	memset(held, 0xa5, sizeof held);
	int rc = ig_custody_store_decode(held, IG_CUSTODY_HELD_MAX, &count, buf, len, h_sk, V_STORE_ID, &err);
	if (rc != IG_OK) {
		FUZZ_ASSERT(rc == IG_ERR_INVAL || rc == IG_ERR_CRYPTO || rc == IG_ERR_RANGE);
		FUZZ_ASSERT(fuzz_untouched_or_zero((const uint8_t *)held, sizeof held, 0xa5));
		FUZZ_ASSERT(err.msg[0] != '\0');
		return rc;
	}
	check_entries(held, count);
	FUZZ_ASSERT(len >= HEAD + TAG + 1 && memcmp(buf, "IGCSTOR1", 8) == 0);

	/* Bound to the id: the same bytes are not another identity's file. */
	size_t other_count = 0;
	FUZZ_ASSERT(ig_custody_store_decode(again, IG_CUSTODY_HELD_MAX, &other_count, buf, len, h_sk, "dev-03", &err) ==
	            IG_ERR_CRYPTO);
	/* Too little room is refused, not overrun. */
	if (count > 0)
		FUZZ_ASSERT(ig_custody_store_decode(again, count - 1, &other_count, buf, len, h_sk, V_STORE_ID, &err) ==
		            IG_ERR_RANGE);

	/* Round trip: what decodes, re-encodes and decodes equal. */
	uint8_t *out = malloc(IG_CUSTODY_STORE_MAX);
	FUZZ_ASSERT(out);
	size_t out_len = 0, count2 = 0;
	FUZZ_ASSERT(ig_custody_store_encode(out, IG_CUSTODY_STORE_MAX, &out_len, held, count, h_sk, V_STORE_ID) == IG_OK);
	FUZZ_ASSERT(out_len == len);   /* same entries, same size */
	FUZZ_ASSERT(ig_custody_store_decode(again, IG_CUSTODY_HELD_MAX, &count2, out, out_len, h_sk, V_STORE_ID, &err) ==
	            IG_OK);
	FUZZ_ASSERT(count2 == count && same_entries(held, again, count));
	*re_pt = open_store(out, out_len, re_pt_len);
	free(out);
	sodium_memzero(held, sizeof held);
	sodium_memzero(again, sizeof again);
	return IG_OK;
}

static void setup(void)
{
	fuzz_seed_keypair(h_pk, h_sk, V_HOLDER2_SEED);
	fuzz_unhex(store_key, sizeof store_key, V_STORE_KEY);
	fuzz_unhex(store_nonce, sizeof store_nonce, V_STORE_NONCE);
	/* The code under test seals with the documented key and AD (else mode 2
	 * would only ever fuzz the MAC check). */
	uint8_t f[HEAD + 1 + TAG];
	size_t len = 0, pt_len = 0;
	FUZZ_ASSERT(ig_custody_store_encode(f, sizeof f, &len, NULL, 0, h_sk, V_STORE_ID) == IG_OK && len == sizeof f);
	uint8_t *pt = open_store(f, len, &pt_len);
	FUZZ_ASSERT(pt_len == 1 && pt[0] == 0);
	free(pt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		setup();
		ready = 1;
	}
	uint8_t *re_pt = NULL;
	size_t re_len = 0;

	/* (1) The input is the file. A heap copy of exactly size bytes, so
	 * ASan sees any read past it. */
	uint8_t *buf = malloc(size ? size : 1);
	FUZZ_ASSERT(buf);
	memcpy(buf, data, size);
	if (decode_and_check(buf, size, &re_pt, &re_len) == IG_OK) {
		free(re_pt);
		re_pt = NULL;
	}
	free(buf);

	/* (2) The input is the plaintext of a well-formed file. */
	if (size + HEAD + TAG > IG_CUSTODY_STORE_MAX)
		return 0;
	size_t flen = 0;
	uint8_t *f = seal_store(data, size, &flen);
	int rc = decode_and_check(f, flen, &re_pt, &re_len);
	if (rc == IG_OK) {
		/* The encoding is canonical: the decoded entries encode back to
		 * exactly the input. */
		FUZZ_ASSERT(re_len == size && memcmp(re_pt, data, size) == 0);
		free(re_pt);
	} else {
		/* It opened, so only the plaintext can be at fault. */
		FUZZ_ASSERT(rc == IG_ERR_INVAL);
	}
	free(f);
	return 0;
}
