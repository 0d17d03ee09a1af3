/*
 * custody.c: the custody secret, ch.key.sealed, the deal and release boxes,
 * and a holder's KEYFILE.shares.
 *
 * Why this exists: these are the bytes a copied disk, a captured MQTT
 * message or a stolen device can reveal, so each one is authenticated and
 * bound to its context (the sealed file to C0 and the genesis public key,
 * a deal to its epoch and commitments, a release to its request and to the
 * holder's identity, the share file to the identity id). Every parser takes
 * an explicit length, checks it before reading, and refuses anything it did
 * not write; every buffer that held S, a share or a key is wiped.
 */
#include "ig_custody.h"

#include "ig_hkdf.h"
#include "ig_keyfile.h"
#include "ig_vss.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define SEAL_MAGIC "IGCSEAL1"
#define STORE_MAGIC "IGCSTOR1"
#define MAGIC_LEN 8
#define NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES
#define SEAL_PLAIN_MAX 4096
#define SEAL_AD_LEN (MAGIC_LEN + 32 + 32)
#define DEAL_PT 79
#define RELEASE_PT 61
#define ENTRY_FIXED (32 + 8 + 1 + 1 + 1 + 1 + 32)
#define STORE_HEAD (MAGIC_LEN + NONCE_LEN)

static const char INFO_SECRET[] = "iotguard custody secret v1";
static const char INFO_SEAL[] = "iotguard custody v1";
static const char INFO_STORE[] = "iotguard custody store v1";
static const char COMMIT_DOMAIN[] = "iotguard custody commitments v1";

static bool scalar_ok(const uint8_t s[32])
{
	uint8_t wide[crypto_core_ristretto255_NONREDUCEDSCALARBYTES] = {0}, red[32];
	memcpy(wide, s, 32);
	crypto_core_ristretto255_scalar_reduce(red, wide);
	bool ok = sodium_memcmp(red, s, 32) == 0 && !sodium_is_zero(s, 32);
	sodium_memzero(wide, sizeof wide);
	sodium_memzero(red, sizeof red);
	return ok;
}

int ig_custody_secret_new(uint8_t S[32], const uint8_t *extra, size_t extra_len)
{
	if (!S || (!extra && extra_len))
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	/* HKDF-Extract streams the ikm (extra || fresh), so extra of any size
	 * needs no copy; 64 output bytes make the reduction mod l uniform. */
	static const uint8_t no_salt[1] = {0};
	uint8_t fresh[32], prk[IG_HKDF_PRK_BYTES], okm[64];
	int rc = IG_OK;
	do {
		crypto_auth_hmacsha256_state st;
		randombytes_buf(fresh, sizeof fresh);
		crypto_auth_hmacsha256_init(&st, no_salt, 0);
		if (extra_len)
			crypto_auth_hmacsha256_update(&st, extra, extra_len);
		crypto_auth_hmacsha256_update(&st, fresh, sizeof fresh);
		crypto_auth_hmacsha256_final(&st, prk);
		sodium_memzero(&st, sizeof st);
		rc = ig_hkdf_expand(okm, sizeof okm, prk, (const uint8_t *)INFO_SECRET, sizeof INFO_SECRET - 1);
		if (rc != IG_OK)
			break;
		crypto_core_ristretto255_scalar_reduce(S, okm);
	} while (sodium_is_zero(S, 32));
	sodium_memzero(fresh, sizeof fresh);
	sodium_memzero(prk, sizeof prk);
	sodium_memzero(okm, sizeof okm);
	if (rc != IG_OK)
		sodium_memzero(S, 32);
	return rc;
}

void ig_custody_seal_key(uint8_t key[32], const uint8_t S[32])
{
	/* 32 bytes of output never exceeds the HKDF limit. */
	(void)ig_hkdf(key, 32, NULL, 0, S, 32, (const uint8_t *)INFO_SEAL, sizeof INFO_SEAL - 1);
}

int ig_custody_seal(uint8_t *out, size_t cap, size_t *out_len, const uint8_t S[32], const uint8_t ch_pk[32],
                    const uint8_t *plain, size_t plain_len)
{
	if (!out || !out_len || !S || !ch_pk || !plain || plain_len == 0)
		return IG_ERR_INVAL;
	if (plain_len > SEAL_PLAIN_MAX || cap < plain_len + IG_CUSTODY_SEALED_OVERHEAD)
		return IG_ERR_RANGE;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	if (!scalar_ok(S))
		return IG_ERR_INVAL;
	uint8_t ad[SEAL_AD_LEN], key[32];
	memcpy(ad, SEAL_MAGIC, MAGIC_LEN);
	if (crypto_scalarmult_ristretto255_base(ad + MAGIC_LEN, S) != 0)
		return IG_ERR_CRYPTO;
	memcpy(ad + MAGIC_LEN + 32, ch_pk, 32);
	memcpy(out, ad, MAGIC_LEN + 32);
	uint8_t *nonce = out + MAGIC_LEN + 32;
	randombytes_buf(nonce, NONCE_LEN);
	ig_custody_seal_key(key, S);
	unsigned long long clen = 0;
	crypto_aead_xchacha20poly1305_ietf_encrypt(nonce + NONCE_LEN, &clen, plain, plain_len, ad, sizeof ad, NULL,
	                                           nonce, key);
	sodium_memzero(key, sizeof key);
	*out_len = MAGIC_LEN + 32 + NONCE_LEN + (size_t)clen;
	return IG_OK;
}

int ig_custody_sealed_c0(uint8_t C0[32], const uint8_t *sealed, size_t len)
{
	if (!C0 || !sealed || len < IG_CUSTODY_SEALED_OVERHEAD || memcmp(sealed, SEAL_MAGIC, MAGIC_LEN) != 0)
		return IG_ERR_INVAL;
	memcpy(C0, sealed + MAGIC_LEN, 32);
	return IG_OK;
}

int ig_custody_unseal_file(uint8_t *plain, size_t cap, size_t *plain_len, const uint8_t S[32],
                           const uint8_t ch_pk[32], const uint8_t *sealed, size_t len, ig_error *err)
{
	if (!plain || !plain_len || !S || !ch_pk || !sealed)
		return ig_error_set(err, IG_ERR_INVAL, "unseal: missing argument");
	if (len < IG_CUSTODY_SEALED_OVERHEAD + 1 || len > IG_CUSTODY_SEALED_OVERHEAD + SEAL_PLAIN_MAX ||
	    memcmp(sealed, SEAL_MAGIC, MAGIC_LEN) != 0)
		return ig_error_set(err, IG_ERR_INVAL,
		                    "%s is not a sealed cluster-head key (bad magic or %zu bytes); "
		                    "restore the file from a backup",
		                    IG_CUSTODY_SEALED_FILE, len);
	size_t pt_len = len - IG_CUSTODY_SEALED_OVERHEAD;
	if (cap < pt_len)
		return ig_error_set(err, IG_ERR_RANGE, "unseal: output buffer too small (%zu < %zu bytes)", cap, pt_len);
	if (ig_init() != IG_OK)
		return ig_error_set(err, IG_ERR_CRYPTO, "unseal: libsodium failed to initialise");
	if (ig_vss_check_secret(S, sealed + MAGIC_LEN) != IG_OK)
		return ig_error_set(err, IG_ERR_CRYPTO,
		                    "the rebuilt custody secret does not match %s (S·G != C0): the shares are from "
		                    "another custody secret; collect shares of the epoch that sealed this file",
		                    IG_CUSTODY_SEALED_FILE);
	uint8_t ad[SEAL_AD_LEN], key[32];
	memcpy(ad, sealed, MAGIC_LEN + 32);
	memcpy(ad + MAGIC_LEN + 32, ch_pk, 32);
	const uint8_t *nonce = sealed + MAGIC_LEN + 32;
	ig_custody_seal_key(key, S);
	unsigned long long mlen = 0;
	int ok = crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &mlen, NULL, nonce + NONCE_LEN,
	                                                    len - MAGIC_LEN - 32 - NONCE_LEN, ad, sizeof ad, nonce, key);
	sodium_memzero(key, sizeof key);
	if (ok != 0) {
		sodium_memzero(plain, pt_len);
		return ig_error_set(err, IG_ERR_CRYPTO,
		                    "%s failed authentication: it was modified or sealed for another cluster-head "
		                    "public key; restore it from a backup",
		                    IG_CUSTODY_SEALED_FILE);
	}
	uint8_t sk[IG_SK_BYTES], pk[IG_PK_BYTES];
	ig_error perr;
	if (ig_keyfile_parse(sk, pk, plain, (size_t)mlen, IG_CUSTODY_SEALED_FILE, &perr) != IG_OK) {
		sodium_memzero(plain, pt_len);
		return ig_error_set(err, IG_ERR_CRYPTO, "the unsealed key is not a key file: %s", perr.msg);
	}
	bool same = sodium_memcmp(pk, ch_pk, IG_PK_BYTES) == 0;
	sodium_memzero(sk, sizeof sk);
	if (!same) {
		sodium_memzero(plain, pt_len);
		return ig_error_set(err, IG_ERR_CRYPTO,
		                    "the unsealed key is not the genesis key (its public key differs from the "
		                    "ledger's cluster-head key); refusing to use it");
	}
	*plain_len = (size_t)mlen;
	return IG_OK;
}

int ig_custody_unseal(uint8_t sk[IG_SK_BYTES], const uint8_t S[32], const uint8_t ch_pk[32],
                      const uint8_t *sealed, size_t len, ig_error *err)
{
	if (!sk)
		return ig_error_set(err, IG_ERR_INVAL, "unseal: missing argument");
	uint8_t plain[SEAL_PLAIN_MAX], pk[IG_PK_BYTES];
	size_t plain_len = 0;
	int rc = ig_custody_unseal_file(plain, sizeof plain, &plain_len, S, ch_pk, sealed, len, err);
	if (rc == IG_OK) {
		rc = ig_keyfile_parse(sk, pk, plain, plain_len, IG_CUSTODY_SEALED_FILE, err);
		if (rc == IG_OK && sodium_memcmp(pk, ch_pk, IG_PK_BYTES) != 0)
			rc = ig_error_set(err, IG_ERR_CRYPTO, "the unsealed key is not the genesis key");
		if (rc != IG_OK)
			sodium_memzero(sk, IG_SK_BYTES);
	}
	sodium_memzero(plain, sizeof plain);
	return rc;
}

void ig_custody_commitments_hash(uint8_t out[32], uint64_t epoch, const uint8_t commitments[][32], unsigned k)
{
	crypto_hash_sha256_state st;
	uint8_t head[9];
	ig_put_u64(head, epoch);
	head[8] = (uint8_t)k;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const uint8_t *)COMMIT_DOMAIN, sizeof COMMIT_DOMAIN - 1);
	crypto_hash_sha256_update(&st, head, sizeof head);
	if (commitments && k)
		crypto_hash_sha256_update(&st, &commitments[0][0], (unsigned long long)k * 32);
	crypto_hash_sha256_final(&st, out);
}

static bool deal_fields_ok(uint64_t epoch, unsigned index, unsigned k, unsigned n)
{
	return epoch >= 1 && k >= 2 && n >= k && n <= IG_VSS_MAX && index >= 1 && index <= n;
}

int ig_custody_deal_seal(uint8_t out[IG_CUSTODY_DEAL_BOX_BYTES], uint8_t nonce[24], const ig_custody_deal *d,
                         const ig_box_key *bk)
{
	if (!out || !nonce || !d || !bk || !deal_fields_ok(d->epoch, d->index, d->k, d->n) || !scalar_ok(d->share))
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	uint8_t pt[DEAL_PT];
	memcpy(pt, "IGD1", 4);
	ig_put_u64(pt + 4, d->epoch);
	pt[12] = d->index;
	pt[13] = d->k;
	pt[14] = d->n;
	memcpy(pt + 15, d->share, 32);
	memcpy(pt + 47, d->commitments_hash, 32);
	randombytes_buf(nonce, crypto_box_NONCEBYTES);
	int rc = crypto_box_easy_afternm(out, pt, sizeof pt, nonce, bk->k) == 0 ? IG_OK : IG_ERR_CRYPTO;
	sodium_memzero(pt, sizeof pt);
	return rc;
}

int ig_custody_deal_open(ig_custody_deal *d, const uint8_t *box, size_t len, const uint8_t nonce[24],
                         const ig_box_key *bk)
{
	if (!d || !box || !nonce || !bk || len != IG_CUSTODY_DEAL_BOX_BYTES)
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	uint8_t pt[DEAL_PT];
	if (crypto_box_open_easy_afternm(pt, box, len, nonce, bk->k) != 0)
		return IG_ERR_CRYPTO;
	int rc = IG_ERR_INVAL;
	uint64_t epoch = ig_get_u64(pt + 4);
	if (memcmp(pt, "IGD1", 4) == 0 && deal_fields_ok(epoch, pt[12], pt[13], pt[14]) && scalar_ok(pt + 15)) {
		d->epoch = epoch;
		d->index = pt[12];
		d->k = pt[13];
		d->n = pt[14];
		memcpy(d->share, pt + 15, 32);
		memcpy(d->commitments_hash, pt + 47, 32);
		rc = IG_OK;
	}
	sodium_memzero(pt, sizeof pt);
	return rc;
}

int ig_custody_release_seal(uint8_t out[IG_CUSTODY_RELEASE_BOX_BYTES], uint8_t nonce[24],
                            const ig_custody_release *r, const uint8_t requester_xpk[32],
                            const uint8_t holder_sk[IG_SK_BYTES])
{
	if (!out || !nonce || !r || !requester_xpk || !holder_sk || r->epoch < 1 || r->index < 1 ||
	    !scalar_ok(r->share))
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	uint8_t pt[RELEASE_PT], xsk[crypto_box_SECRETKEYBYTES];
	memcpy(pt, "IGR1", 4);
	memcpy(pt + 4, r->request, 16);
	ig_put_u64(pt + 20, r->epoch);
	pt[28] = r->index;
	memcpy(pt + 29, r->share, 32);
	randombytes_buf(nonce, crypto_box_NONCEBYTES);
	int rc = IG_OK;
	/* crypto_box_easy refuses a small-order requester key (all-zero shared secret). */
	if (crypto_sign_ed25519_sk_to_curve25519(xsk, holder_sk) != 0 ||
	    crypto_box_easy(out, pt, sizeof pt, nonce, requester_xpk, xsk) != 0)
		rc = IG_ERR_CRYPTO;
	sodium_memzero(pt, sizeof pt);
	sodium_memzero(xsk, sizeof xsk);
	return rc;
}

int ig_custody_release_open(ig_custody_release *r, const uint8_t *box, size_t len, const uint8_t nonce[24],
                            const uint8_t holder_pk[IG_PK_BYTES], const uint8_t requester_xsk[32])
{
	if (!r || !box || !nonce || !holder_pk || !requester_xsk || len != IG_CUSTODY_RELEASE_BOX_BYTES)
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	uint8_t xpk[crypto_box_PUBLICKEYBYTES], pt[RELEASE_PT];
	if (crypto_sign_ed25519_pk_to_curve25519(xpk, holder_pk) != 0 ||
	    crypto_box_open_easy(pt, box, len, nonce, xpk, requester_xsk) != 0)
		return IG_ERR_CRYPTO;
	int rc = IG_ERR_INVAL;
	uint64_t epoch = ig_get_u64(pt + 20);
	if (memcmp(pt, "IGR1", 4) == 0 && epoch >= 1 && pt[28] >= 1 && scalar_ok(pt + 29)) {
		memcpy(r->request, pt + 4, 16);
		r->epoch = epoch;
		r->index = pt[28];
		memcpy(r->share, pt + 29, 32);
		rc = IG_OK;
	}
	sodium_memzero(pt, sizeof pt);
	return rc;
}

static int store_key(uint8_t key[32], const uint8_t id_sk[IG_SK_BYTES])
{
	/* The seed (first 32 bytes of libsodium's sk) is the identity's root
	 * secret; the domain string keeps this key apart from every other use. */
	return ig_hkdf(key, 32, NULL, 0, id_sk, IG_SEED_BYTES, (const uint8_t *)INFO_STORE, sizeof INFO_STORE - 1);
}

static size_t entry_len(unsigned k)
{
	return ENTRY_FIXED + (size_t)k * 32;
}

int ig_custody_store_encode(uint8_t *out, size_t cap, size_t *len, const ig_custody_held *h, size_t count,
                            const uint8_t id_sk[IG_SK_BYTES], const char *id)
{
	if (!out || !len || (!h && count) || !id_sk || !id || count > IG_CUSTODY_HELD_MAX)
		return IG_ERR_INVAL;
	size_t id_len = strnlen(id, IG_ID_MAX + 1);
	if (!ig_id_valid(id, id_len))
		return IG_ERR_INVAL;
	size_t pt_len = 1;
	for (size_t e = 0; e < count; e++) {
		if (!deal_fields_ok(h[e].epoch, h[e].index, h[e].k, h[e].n) || !scalar_ok(h[e].share))
			return IG_ERR_INVAL;
		pt_len += entry_len(h[e].k);
	}
	if (cap < STORE_HEAD + pt_len + TAG_LEN)
		return IG_ERR_RANGE;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	uint8_t *pt = malloc(pt_len);
	uint8_t *ad = malloc(MAGIC_LEN + id_len);
	if (!pt || !ad) {
		free(pt);
		free(ad);
		return IG_ERR_NOMEM;
	}
	uint8_t *p = pt;
	*p++ = (uint8_t)count;
	for (size_t e = 0; e < count; e++) {
		memcpy(p, h[e].ch_pk, 32);
		ig_put_u64(p + 32, h[e].epoch);
		p[40] = h[e].index;
		p[41] = h[e].k;
		p[42] = h[e].n;
		p[43] = h[e].active ? 1 : 0;
		memcpy(p + 44, h[e].share, 32);
		memcpy(p + ENTRY_FIXED, h[e].commitments, (size_t)h[e].k * 32);
		p += entry_len(h[e].k);
	}
	memcpy(ad, STORE_MAGIC, MAGIC_LEN);
	memcpy(ad + MAGIC_LEN, id, id_len);
	memcpy(out, STORE_MAGIC, MAGIC_LEN);
	randombytes_buf(out + MAGIC_LEN, NONCE_LEN);
	uint8_t key[32];
	int rc = store_key(key, id_sk);
	if (rc == IG_OK) {
		unsigned long long clen = 0;
		crypto_aead_xchacha20poly1305_ietf_encrypt(out + STORE_HEAD, &clen, pt, pt_len, ad, MAGIC_LEN + id_len,
		                                           NULL, out + MAGIC_LEN, key);
		*len = STORE_HEAD + (size_t)clen;
	}
	sodium_memzero(key, sizeof key);
	sodium_memzero(pt, pt_len);
	free(pt);
	free(ad);
	return rc;
}

static int parse_entries(ig_custody_held *h, size_t cap_count, size_t *count, const uint8_t *pt, size_t pt_len,
                         ig_error *err)
{
	if (pt_len < 1)
		return ig_error_set(err, IG_ERR_INVAL, "custody share file: empty plaintext");
	size_t n_ent = pt[0];
	if (n_ent > IG_CUSTODY_HELD_MAX)
		return ig_error_set(err, IG_ERR_INVAL, "custody share file: %zu entries (at most %d)", n_ent,
		                    IG_CUSTODY_HELD_MAX);
	if (n_ent > cap_count)
		return ig_error_set(err, IG_ERR_RANGE, "custody share file: %zu entries, room for %zu", n_ent,
		                    cap_count);
	size_t off = 1;
	for (size_t e = 0; e < n_ent; e++) {
		if (pt_len - off < ENTRY_FIXED)
			return ig_error_set(err, IG_ERR_INVAL, "custody share file: entry %zu truncated", e);
		const uint8_t *p = pt + off;
		uint64_t epoch = ig_get_u64(p + 32);
		unsigned k = p[41];
		if (!deal_fields_ok(epoch, p[40], k, p[42]))
			return ig_error_set(err, IG_ERR_INVAL,
			                    "custody share file: entry %zu has epoch %llu index %u k %u n %u (invalid)", e,
			                    (unsigned long long)epoch, p[40], k, p[42]);
		if (p[43] & ~1u)
			return ig_error_set(err, IG_ERR_INVAL, "custody share file: entry %zu has unknown flags 0x%02x", e,
			                    p[43]);
		if (!scalar_ok(p + 44))
			return ig_error_set(err, IG_ERR_INVAL, "custody share file: entry %zu holds an invalid share", e);
		if (pt_len - off - ENTRY_FIXED < (size_t)k * 32)
			return ig_error_set(err, IG_ERR_INVAL, "custody share file: entry %zu commitments truncated", e);
		for (unsigned j = 0; j < k; j++)
			if (!crypto_core_ristretto255_is_valid_point(p + ENTRY_FIXED + (size_t)j * 32))
				return ig_error_set(err, IG_ERR_INVAL,
				                    "custody share file: entry %zu commitment %u is not a ristretto255 point",
				                    e, j);
		for (size_t f = 0; f < e; f++)
			if (h[f].epoch == epoch && memcmp(h[f].ch_pk, p, 32) == 0)
				return ig_error_set(err, IG_ERR_INVAL,
				                    "custody share file: epoch %llu appears twice for the same cluster head",
				                    (unsigned long long)epoch);
		memset(&h[e], 0, sizeof h[e]);
		memcpy(h[e].ch_pk, p, 32);
		h[e].epoch = epoch;
		h[e].index = p[40];
		h[e].k = (uint8_t)k;
		h[e].n = p[42];
		h[e].active = p[43] & 1;
		memcpy(h[e].share, p + 44, 32);
		memcpy(h[e].commitments, p + ENTRY_FIXED, (size_t)k * 32);
		off += entry_len(k);
	}
	if (off != pt_len)
		return ig_error_set(err, IG_ERR_INVAL, "custody share file: %zu trailing bytes", pt_len - off);
	*count = n_ent;
	return IG_OK;
}

int ig_custody_store_decode(ig_custody_held *h, size_t cap_count, size_t *count, const uint8_t *buf, size_t len,
                            const uint8_t id_sk[IG_SK_BYTES], const char *id, ig_error *err)
{
	if (!count || (!h && cap_count) || !buf || !id_sk || !id)
		return ig_error_set(err, IG_ERR_INVAL, "custody share file: missing argument");
	size_t id_len = strnlen(id, IG_ID_MAX + 1);
	if (!ig_id_valid(id, id_len))
		return ig_error_set(err, IG_ERR_INVAL, "custody share file: invalid identity id");
	if (len < STORE_HEAD + TAG_LEN + 1 || len > IG_CUSTODY_STORE_MAX || memcmp(buf, STORE_MAGIC, MAGIC_LEN) != 0)
		return ig_error_set(err, IG_ERR_INVAL,
		                    "not a custody share file (bad magic or %zu bytes); remove it and let the cluster "
		                    "head deal a new epoch",
		                    len);
	if (ig_init() != IG_OK)
		return ig_error_set(err, IG_ERR_CRYPTO, "custody share file: libsodium failed to initialise");
	size_t pt_len = len - STORE_HEAD - TAG_LEN;
	uint8_t *pt = malloc(pt_len);
	uint8_t *ad = malloc(MAGIC_LEN + id_len);
	if (!pt || !ad) {
		free(pt);
		free(ad);
		return ig_error_set(err, IG_ERR_NOMEM, "custody share file: out of memory");
	}
	memcpy(ad, STORE_MAGIC, MAGIC_LEN);
	memcpy(ad + MAGIC_LEN, id, id_len);
	uint8_t key[32];
	int rc = store_key(key, id_sk);
	if (rc == IG_OK) {
		unsigned long long mlen = 0;
		if (crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &mlen, NULL, buf + STORE_HEAD, len - STORE_HEAD, ad,
		                                               MAGIC_LEN + id_len, buf + MAGIC_LEN, key) != 0)
			rc = ig_error_set(err, IG_ERR_CRYPTO,
			                  "custody share file failed authentication: it was modified, or belongs to "
			                  "another identity key or id than '%s'",
			                  id);
		else
			rc = parse_entries(h, cap_count, count, pt, (size_t)mlen, err);
	} else {
		rc = ig_error_set(err, rc, "custody share file: key derivation failed");
	}
	if (rc != IG_OK && h)
		sodium_memzero(h, cap_count * sizeof *h);
	sodium_memzero(key, sizeof key);
	sodium_memzero(pt, pt_len);
	free(pt);
	free(ad);
	return rc;
}
