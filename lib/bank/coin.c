/*
 * coin.c: the coin crypto (seed 001): hashes, keys, the sealed header, and
 * the data and result messages.
 *
 * Why this exists: a coin is one secret that does three jobs. Sealed to the
 * bank in a data message's header it authorises one redeem; through HKDF it
 * is the key of that one payload and of the one result that answers it.
 * Every byte layout those jobs depend on (the header, the data and result
 * messages, their AAD) lives here and nowhere else, so the collector, the
 * bank and the analyst cannot drift apart. The ledger sees only
 * BLAKE2b-256(coin). Layouts: ig_coin.h, docs/PROTOCOL.md "Coins".
 */
#include "ig_coin.h"
#include "ig_aead.h"

#include "ig_hkdf.h"

#include <sodium.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define PAYLOAD_INFO "iotguard coin payload v1"
#define RESULT_INFO "iotguard coin result v1"
#define DATA_AAD_DOMAIN "iotguard-data-v1"
#define RESULT_AAD_DOMAIN "iotguard-result-v1"
#define TOPIC_MAX 65535 /* the MQTT limit for a topic name */

/* ---- coin crypto ------------------------------------------------------------------ */

void ig_coin_hash(uint8_t out[IG_HASH_BYTES], const uint8_t coin[IG_COIN_BYTES])
{
	crypto_generichash(out, IG_HASH_BYTES, coin, IG_COIN_BYTES, NULL, 0);
}

void ig_coin_topic_hash(uint8_t out[IG_HASH_BYTES], const char *topic)
{
	crypto_generichash(out, IG_HASH_BYTES, (const uint8_t *)topic, strlen(topic), NULL, 0);
}

void ig_coin_header_hash(uint8_t out[IG_HASH_BYTES], const uint8_t *sealed, size_t len)
{
	crypto_generichash(out, IG_HASH_BYTES, sealed, len, NULL, 0);
}

void ig_coin_keys(const uint8_t coin[IG_COIN_BYTES], uint8_t payload_key[32], uint8_t result_key[32])
{
	/* Two infos, one coin: the payload key and the result key are
	 * independent, so a result can never be mistaken for the payload. Only
	 * a 32-byte output is asked for, which ig_hkdf cannot refuse. */
	(void)ig_hkdf(payload_key, 32, NULL, 0, coin, IG_COIN_BYTES, (const uint8_t *)PAYLOAD_INFO,
	              sizeof PAYLOAD_INFO - 1);
	(void)ig_hkdf(result_key, 32, NULL, 0, coin, IG_COIN_BYTES, (const uint8_t *)RESULT_INFO,
	              sizeof RESULT_INFO - 1);
}

static bool suite_valid(int s)
{
	return s == IG_SUITE_AES256GCM || s == IG_SUITE_XCHACHA20POLY1305;
}

/* Every coin nonce field is 24 bytes, but AES-256-GCM reads only the first
 * 12, so the tag would not cover the rest: anyone could rewrite them and
 * the message would still open. The canonical GCM nonce therefore ends in
 * 12 zero bytes, sealing writes them and every parser refuses anything
 * else, so each byte on the wire is either authenticated or fixed. */
static size_t nonce_used(ig_suite suite)
{
	return suite == IG_SUITE_AES256GCM ? 12 : IG_COIN_NONCE_BYTES;
}

static void nonce_fresh(uint8_t nonce[IG_COIN_NONCE_BYTES], ig_suite suite)
{
	size_t used = nonce_used(suite);
	randombytes_buf(nonce, used);
	memset(nonce + used, 0, IG_COIN_NONCE_BYTES - used);
}

static bool nonce_canonical(const uint8_t nonce[IG_COIN_NONCE_BYTES], ig_suite suite)
{
	uint8_t spare = 0;
	for (size_t i = nonce_used(suite); i < IG_COIN_NONCE_BYTES; i++)
		spare |= nonce[i];
	return spare == 0;
}

int ig_coin_header_encode(uint8_t *out, size_t cap, const ig_coin_header *h)
{
	if (!out || !h)
		return IG_ERR_INVAL;
	size_t clen = strnlen(h->collector, sizeof h->collector);
	if (!ig_id_valid(h->collector, clen) || !suite_valid((int)h->suite) || !nonce_canonical(h->nonce, h->suite))
		return IG_ERR_INVAL;
	size_t total = IG_COIN_HEADER_PLAIN_MIN - 1 + clen;
	if (cap < total)
		return IG_ERR_RANGE;
	uint8_t *p = out;
	*p++ = IG_COIN_HEADER_VERSION;
	memcpy(p, h->coin, IG_COIN_BYTES);
	p += IG_COIN_BYTES;
	memcpy(p, h->nonce, IG_COIN_NONCE_BYTES);
	p += IG_COIN_NONCE_BYTES;
	*p++ = (uint8_t)h->suite;
	*p++ = (uint8_t)clen;
	memcpy(p, h->collector, clen);
	p += clen;
	memcpy(p, h->topic_hash, IG_HASH_BYTES);
	return (int)total;
}

int ig_coin_header_decode(ig_coin_header *h, const uint8_t *pt, size_t len)
{
	if (!h || !pt)
		return IG_ERR_INVAL;
	memset(h, 0, sizeof *h);
	if (len < IG_COIN_HEADER_PLAIN_MIN || len > IG_COIN_HEADER_PLAIN_MAX)
		return IG_ERR_INVAL;
	const uint8_t *p = pt;
	if (*p++ != IG_COIN_HEADER_VERSION)
		return IG_ERR_INVAL;
	const uint8_t *coin = p;
	p += IG_COIN_BYTES;
	const uint8_t *nonce = p;
	p += IG_COIN_NONCE_BYTES;
	uint8_t suite = *p++;
	uint8_t clen = *p++;
	/* the length must be exactly what collector_len says: no slack bytes */
	if (!suite_valid(suite) || !nonce_canonical(nonce, (ig_suite)suite) ||
	    len != (size_t)IG_COIN_HEADER_PLAIN_MIN - 1 + clen || !ig_id_valid((const char *)p, clen))
		return IG_ERR_INVAL;
	memcpy(h->coin, coin, IG_COIN_BYTES);
	memcpy(h->nonce, nonce, IG_COIN_NONCE_BYTES);
	h->suite = (ig_suite)suite;
	memcpy(h->collector, p, clen);
	h->collector[clen] = '\0';
	p += clen;
	memcpy(h->topic_hash, p, IG_HASH_BYTES);
	return IG_OK;
}

int ig_coin_header_open(ig_coin_header *h, const uint8_t *sealed, size_t len, const uint8_t bank_sk[IG_SK_BYTES])
{
	if (!h || !sealed || !bank_sk)
		return IG_ERR_INVAL;
	sodium_memzero(h, sizeof *h);
	if (len < IG_COIN_HEADER_SEALED_MIN || len > IG_COIN_HEADER_SEALED_MAX)
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;

	uint8_t x_sk[crypto_box_SECRETKEYBYTES], x_pk[crypto_box_PUBLICKEYBYTES];
	uint8_t pt[IG_COIN_HEADER_PLAIN_MAX];
	int rc = IG_OK;
	/* The public half is recomputed from the secret one rather than taken
	 * from bank_sk's trailing 32 bytes, so the two cannot disagree. */
	if (crypto_sign_ed25519_sk_to_curve25519(x_sk, bank_sk) != 0 || crypto_scalarmult_base(x_pk, x_sk) != 0)
		rc = IG_ERR_CRYPTO;
	else if (crypto_box_seal_open(pt, sealed, len, x_pk, x_sk) != 0)
		rc = IG_ERR_CRYPTO;
	else
		rc = ig_coin_header_decode(h, pt, len - crypto_box_SEALBYTES);
	sodium_memzero(x_sk, sizeof x_sk);
	sodium_memzero(pt, sizeof pt);
	if (rc != IG_OK)
		sodium_memzero(h, sizeof *h);
	return rc;
}

bool ig_coin_header_matches_topic(const ig_coin_header *h, const char *topic)
{
	if (!h || !topic)
		return false;
	uint8_t th[IG_HASH_BYTES];
	ig_coin_topic_hash(th, topic);
	return sodium_memcmp(th, h->topic_hash, IG_HASH_BYTES) == 0;
}

/* AAD = domain || 0x00 || topic || 0x00 || hash. Topics are short in
 * practice, so the buffer lives on the stack unless one is not. */
typedef struct aad_buf {
	uint8_t small[512];
	uint8_t *p;
	size_t len;
} aad_buf;

static int aad_build(aad_buf *a, const char *domain, const char *topic, const uint8_t hash[IG_HASH_BYTES])
{
	size_t dlen = strlen(domain), tlen = strlen(topic);
	if (tlen == 0 || tlen > TOPIC_MAX)
		return IG_ERR_INVAL;
	a->len = dlen + 1 + tlen + 1 + IG_HASH_BYTES;
	a->p = a->len <= sizeof a->small ? a->small : malloc(a->len);
	if (!a->p)
		return IG_ERR_NOMEM;
	uint8_t *p = a->p;
	memcpy(p, domain, dlen);
	p += dlen;
	*p++ = 0x00;
	memcpy(p, topic, tlen);
	p += tlen;
	*p++ = 0x00;
	memcpy(p, hash, IG_HASH_BYTES);
	return IG_OK;
}

static void aad_free(aad_buf *a)
{
	if (a->p && a->p != a->small)
		free(a->p);
	a->p = NULL;
}

int ig_coin_data_seal(uint8_t *out, size_t cap, const uint8_t bank_pk[IG_PK_BYTES], const uint8_t coin[IG_COIN_BYTES],
                      ig_suite suite, const char *collector, const char *topic, const uint8_t *payload, size_t len,
                      uint8_t header_hash[IG_HASH_BYTES])
{
	if (!out || !bank_pk || !coin || !collector || !topic || (len > 0 && !payload) || !header_hash)
		return IG_ERR_INVAL;
	if (!suite_valid((int)suite))
		return IG_ERR_INVAL;
	if (len > IG_COIN_DATA_MAX_PAYLOAD)
		return IG_ERR_RANGE;
	size_t clen = strnlen(collector, IG_ID_MAX + 1);
	size_t tlen = strlen(topic);
	if (!ig_id_valid(collector, clen) || tlen == 0 || tlen > TOPIC_MAX)
		return IG_ERR_INVAL;
	if (!ig_suite_available(suite))
		return IG_ERR_STATE;
	size_t pt_len = IG_COIN_HEADER_PLAIN_MIN - 1 + clen;
	size_t sealed_len = pt_len + crypto_box_SEALBYTES;
	size_t total = 4 + 2 + sealed_len + 1 + IG_COIN_NONCE_BYTES + len + IG_AEAD_TAG_BYTES;
	if (cap < total)
		return IG_ERR_RANGE;

	ig_coin_header h;
	uint8_t x_pk[crypto_box_PUBLICKEYBYTES];
	uint8_t pt[IG_COIN_HEADER_PLAIN_MAX];
	uint8_t payload_key[32], result_key[32];
	int rc;

	memset(&h, 0, sizeof h);
	memcpy(h.coin, coin, IG_COIN_BYTES);
	nonce_fresh(h.nonce, suite); /* a coin keys one payload, but never trust that alone */
	h.suite = suite;
	memcpy(h.collector, collector, clen);
	ig_coin_topic_hash(h.topic_hash, topic);

	uint8_t *p = out;
	memcpy(p, IG_COIN_DATA_MAGIC, 4);
	ig_put_u16(p + 4, (uint16_t)sealed_len);
	uint8_t *sealed = p + 6;
	uint8_t *tail = sealed + sealed_len;
	if (crypto_sign_ed25519_pk_to_curve25519(x_pk, bank_pk) != 0) {
		rc = IG_ERR_CRYPTO; /* not a usable public key (small order, off curve) */
		goto done;
	}
	if ((rc = ig_coin_header_encode(pt, sizeof pt, &h)) < 0)
		goto done;
	if (crypto_box_seal(sealed, pt, pt_len, x_pk) != 0) {
		rc = IG_ERR_CRYPTO;
		goto done;
	}
	ig_coin_header_hash(header_hash, sealed, sealed_len);
	tail[0] = (uint8_t)suite;
	memcpy(tail + 1, h.nonce, IG_COIN_NONCE_BYTES);

	aad_buf aad;
	if ((rc = aad_build(&aad, DATA_AAD_DOMAIN, topic, header_hash)) < 0)
		goto done;
	ig_coin_keys(coin, payload_key, result_key);
	rc = ig_aead_seal(suite, tail + 1 + IG_COIN_NONCE_BYTES, len + IG_AEAD_TAG_BYTES, payload, len, aad.p, aad.len,
	                  h.nonce, payload_key);
	aad_free(&aad);
	if (rc >= 0)
		rc = (int)total;
done:
	sodium_memzero(&h, sizeof h);
	sodium_memzero(pt, sizeof pt);
	sodium_memzero(payload_key, sizeof payload_key);
	sodium_memzero(result_key, sizeof result_key);
	if (rc < 0)
		sodium_memzero(out, total); /* never leave half a message behind */
	return rc;
}

int ig_coin_data_parse(const uint8_t *msg, size_t len, const uint8_t **header, size_t *header_len, ig_suite *suite,
                       const uint8_t **nonce, const uint8_t **ct, size_t *ct_len)
{
	if (!msg || !header || !header_len || !suite || !nonce || !ct || !ct_len)
		return IG_ERR_INVAL;
	if (len < 6 || memcmp(msg, IG_COIN_DATA_MAGIC, 4) != 0)
		return IG_ERR_INVAL;
	size_t hlen = ig_get_u16(msg + 4);
	if (hlen < IG_COIN_HEADER_SEALED_MIN || hlen > IG_COIN_HEADER_SEALED_MAX)
		return IG_ERR_INVAL;
	size_t fixed = 6 + hlen + 1 + IG_COIN_NONCE_BYTES;
	if (len < fixed + IG_AEAD_TAG_BYTES || len - fixed - IG_AEAD_TAG_BYTES > IG_COIN_DATA_MAX_PAYLOAD)
		return IG_ERR_INVAL;
	uint8_t s = msg[6 + hlen];
	if (!suite_valid(s) || !nonce_canonical(msg + 6 + hlen + 1, (ig_suite)s))
		return IG_ERR_INVAL;
	*header = msg + 6;
	*header_len = hlen;
	*suite = (ig_suite)s;
	*nonce = msg + 6 + hlen + 1;
	*ct = msg + fixed;
	*ct_len = len - fixed;
	return IG_OK;
}

int ig_coin_data_open(uint8_t *out, size_t cap, const uint8_t *msg, size_t len, const char *topic,
                      const uint8_t payload_key[32])
{
	const uint8_t *header, *nonce, *ct;
	size_t header_len, ct_len;
	ig_suite suite;
	if (!topic || !payload_key)
		return IG_ERR_INVAL;
	int rc = ig_coin_data_parse(msg, len, &header, &header_len, &suite, &nonce, &ct, &ct_len);
	if (rc != IG_OK)
		return rc;
	uint8_t header_hash[IG_HASH_BYTES];
	ig_coin_header_hash(header_hash, header, header_len);
	aad_buf aad;
	if ((rc = aad_build(&aad, DATA_AAD_DOMAIN, topic, header_hash)) < 0)
		return rc;
	/* GCM takes the first 12 of the 24 nonce bytes (ig_coin_data_parse made
	 * sure the other 12 are zero); XChaCha takes all. */
	rc = ig_aead_open(suite, out, cap, ct, ct_len, aad.p, aad.len, nonce, payload_key);
	aad_free(&aad);
	return rc;
}

int ig_coin_data_open_redeemed(uint8_t *out, size_t cap, const uint8_t *msg, size_t len, const char *topic,
                               const uint8_t payload_key[32], const uint8_t nonce[IG_COIN_NONCE_BYTES])
{
	const uint8_t *header, *carried, *ct;
	size_t header_len, ct_len;
	ig_suite suite;
	if (!nonce)
		return IG_ERR_INVAL;
	int rc = ig_coin_data_parse(msg, len, &header, &header_len, &suite, &carried, &ct, &ct_len);
	if (rc != IG_OK)
		return rc;
	/* The bank's nonce came out of the sealed header, which the AAD binds:
	 * the message must carry exactly the nonce its header promised. */
	if (memcmp(carried, nonce, IG_COIN_NONCE_BYTES) != 0)
		return IG_ERR_CRYPTO;
	return ig_coin_data_open(out, cap, msg, len, topic, payload_key);
}

int ig_coin_result_seal(uint8_t *out, size_t cap, const uint8_t result_key[32], ig_suite suite,
                        const uint8_t header_hash[IG_HASH_BYTES], const char *topic, const uint8_t *payload, size_t len)
{
	if (!out || !result_key || !header_hash || !topic || (len > 0 && !payload) || !suite_valid((int)suite))
		return IG_ERR_INVAL;
	if (len > IG_COIN_DATA_MAX_PAYLOAD)
		return IG_ERR_RANGE;
	if (cap < IG_COIN_RESULT_OVERHEAD + len)
		return IG_ERR_RANGE;
	uint8_t *p = out;
	memcpy(p, IG_COIN_RESULT_MAGIC, 4);
	memcpy(p + 4, header_hash, IG_HASH_BYTES);
	p[4 + IG_HASH_BYTES] = (uint8_t)suite;
	uint8_t *nonce = p + 4 + IG_HASH_BYTES + 1;
	nonce_fresh(nonce, suite);
	aad_buf aad;
	int rc = aad_build(&aad, RESULT_AAD_DOMAIN, topic, header_hash);
	if (rc < 0)
		return rc;
	rc = ig_aead_seal(suite, nonce + IG_COIN_NONCE_BYTES, len + IG_AEAD_TAG_BYTES, payload, len, aad.p, aad.len,
	                  nonce, result_key);
	aad_free(&aad);
	if (rc < 0) {
		sodium_memzero(out, IG_COIN_RESULT_OVERHEAD + len);
		return rc;
	}
	return (int)(IG_COIN_RESULT_OVERHEAD + len);
}

int ig_coin_result_parse_hash(const uint8_t *msg, size_t len, uint8_t header_hash[IG_HASH_BYTES])
{
	if (!msg || !header_hash)
		return IG_ERR_INVAL;
	if (len < IG_COIN_RESULT_OVERHEAD || len - IG_COIN_RESULT_OVERHEAD > IG_COIN_DATA_MAX_PAYLOAD ||
	    memcmp(msg, IG_COIN_RESULT_MAGIC, 4) != 0 || !suite_valid(msg[4 + IG_HASH_BYTES]) ||
	    !nonce_canonical(msg + 4 + IG_HASH_BYTES + 1, (ig_suite)msg[4 + IG_HASH_BYTES]))
		return IG_ERR_INVAL;
	memcpy(header_hash, msg + 4, IG_HASH_BYTES);
	return IG_OK;
}

int ig_coin_result_open(uint8_t *out, size_t cap, const uint8_t *msg, size_t len, const char *topic,
                        const uint8_t result_key[32], const uint8_t header_hash[IG_HASH_BYTES])
{
	uint8_t carried[IG_HASH_BYTES];
	if (!topic || !result_key || !header_hash)
		return IG_ERR_INVAL;
	int rc = ig_coin_result_parse_hash(msg, len, carried);
	if (rc != IG_OK)
		return rc;
	/* The AAD takes the hash the caller expects, not the one carried, so a
	 * result for another request fails the tag even if the lookup was
	 * skipped; the early check only gives the clearer answer. */
	if (memcmp(carried, header_hash, IG_HASH_BYTES) != 0)
		return IG_ERR_CRYPTO;
	ig_suite suite = (ig_suite)msg[4 + IG_HASH_BYTES];
	const uint8_t *nonce = msg + 4 + IG_HASH_BYTES + 1;
	const uint8_t *ct = nonce + IG_COIN_NONCE_BYTES;
	size_t ct_len = len - (size_t)(ct - msg);
	aad_buf aad;
	if ((rc = aad_build(&aad, RESULT_AAD_DOMAIN, topic, header_hash)) < 0)
		return rc;
	rc = ig_aead_open(suite, out, cap, ct, ct_len, aad.p, aad.len, nonce, result_key);
	aad_free(&aad);
	return rc;
}
