/*
 * hkdf.c: HKDF-SHA256 (RFC 5869) on top of libsodium's HMAC-SHA256.
 *
 * Why this exists: libsodium 1.0.18 ships HMAC-SHA256 but no HKDF, and every
 * key the cluster head derives must come from one derivation that is
 * checked against the RFC's own test vectors (tests/unit/test_hkdf.c).
 */
#include "ig_hkdf.h"

#include <sodium.h>
#include <string.h>

void ig_hkdf_extract(uint8_t prk[IG_HKDF_PRK_BYTES], const uint8_t *salt, size_t salt_len,
                     const uint8_t *ikm, size_t ikm_len)
{
	/* RFC 5869 2.2: an absent salt is HashLen zero bytes. */
	static const uint8_t zero_salt[IG_HKDF_PRK_BYTES];
	crypto_auth_hmacsha256_state st;

	if (!salt || salt_len == 0) {
		salt = zero_salt;
		salt_len = sizeof zero_salt;
	}
	crypto_auth_hmacsha256_init(&st, salt, salt_len);
	if (ikm_len > 0)
		crypto_auth_hmacsha256_update(&st, ikm, ikm_len);
	crypto_auth_hmacsha256_final(&st, prk);
	sodium_memzero(&st, sizeof st);
}

int ig_hkdf_expand(uint8_t *out, size_t out_len, const uint8_t prk[IG_HKDF_PRK_BYTES],
                   const uint8_t *info, size_t info_len)
{
	if (out_len > IG_HKDF_MAX_OUT)
		return IG_ERR_RANGE;
	if ((out_len > 0 && !out) || !prk || (info_len > 0 && !info))
		return IG_ERR_INVAL;

	/* The PRK is copied first so a caller may expand into the buffer that
	 * holds it (out == prk) without feeding its own output back in. */
	uint8_t key[IG_HKDF_PRK_BYTES];
	uint8_t t[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;
	size_t done = 0;
	uint8_t counter = 0;

	memcpy(key, prk, sizeof key);
	while (done < out_len) {
		/* T(i) = HMAC(PRK, T(i-1) || info || i), T(0) empty. */
		counter++;
		crypto_auth_hmacsha256_init(&st, key, sizeof key);
		if (counter > 1)
			crypto_auth_hmacsha256_update(&st, t, sizeof t);
		if (info_len > 0)
			crypto_auth_hmacsha256_update(&st, info, info_len);
		crypto_auth_hmacsha256_update(&st, &counter, 1);
		crypto_auth_hmacsha256_final(&st, t);
		size_t take = out_len - done < sizeof t ? out_len - done : sizeof t;
		memcpy(out + done, t, take);
		done += take;
	}
	sodium_memzero(&st, sizeof st);
	sodium_memzero(t, sizeof t);
	sodium_memzero(key, sizeof key);
	return IG_OK;
}

int ig_hkdf(uint8_t *out, size_t out_len, const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
            size_t ikm_len, const uint8_t *info, size_t info_len)
{
	if (out_len > IG_HKDF_MAX_OUT)
		return IG_ERR_RANGE;
	if (ikm_len > 0 && !ikm)
		return IG_ERR_INVAL;
	uint8_t prk[IG_HKDF_PRK_BYTES];
	ig_hkdf_extract(prk, salt, salt_len, ikm, ikm_len);
	int rc = ig_hkdf_expand(out, out_len, prk, info, info_len);
	sodium_memzero(prk, sizeof prk);
	return rc;
}
