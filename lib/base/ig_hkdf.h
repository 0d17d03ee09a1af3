/*
 * ig_hkdf.h: HKDF-SHA256 (RFC 5869) built from crypto_auth_hmacsha256.
 *
 * Why this exists: libsodium 1.0.18 has no HKDF, and every key the cluster
 * head derives (session keys, coins, join-code secrets) goes through one
 * audited derivation checked against the RFC 5869 test vectors.
 */
#ifndef IG_HKDF_H
#define IG_HKDF_H

#include "ig_common.h"

#define IG_HKDF_PRK_BYTES 32
#define IG_HKDF_MAX_OUT (255 * 32)

/* PRK = HMAC-SHA256(salt, ikm); salt may be NULL/0 (then 32 zero bytes). */
void ig_hkdf_extract(uint8_t prk[IG_HKDF_PRK_BYTES], const uint8_t *salt, size_t salt_len,
                     const uint8_t *ikm, size_t ikm_len);
/* OKM = T(1) || T(2) || ... truncated to out_len; IG_ERR_RANGE if out_len > 8160. */
int ig_hkdf_expand(uint8_t *out, size_t out_len, const uint8_t prk[IG_HKDF_PRK_BYTES],
                   const uint8_t *info, size_t info_len);
/* extract then expand; wipes the PRK. */
int ig_hkdf(uint8_t *out, size_t out_len, const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
            size_t ikm_len, const uint8_t *info, size_t info_len);

#endif
