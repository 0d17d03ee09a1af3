/*
 * ig_vss.h: Feldman-verifiable Shamir secret sharing over the ristretto255
 * scalar field (issue 9, device-quorum custody).
 *
 * Why this exists: the cluster head's key at rest is sealed under a custody
 * secret S that only k of n devices can rebuild. Plain Shamir lets a bad or
 * corrupted share poison the rebuild silently (Vault's weakness); Feldman
 * commitments C_j = a_j·G let every holder check its own share when it is
 * dealt, and let the requester check every share it collects, before
 * interpolating. ristretto255 gives a prime-order group with canonical
 * encodings, so there are no cofactor or malleability cases to reason about.
 *
 * Encodings: scalars and points are 32 bytes (libsodium's canonical
 * ristretto255 encodings; scalars little-endian, reduced mod
 * l = 2^252 + 27742317777372353535851937790883648493). Holder index i is
 * 1..n; as a scalar it is byte 0 = i, the other 31 bytes 0.
 *   f(x) = a_0 + a_1 x + ... + a_{k-1} x^{k-1} mod l, a_0 = S
 *   share_i = f(i),  C_j = a_j·G,  check: share_i·G == sum_j i^j·C_j
 *   S = sum_i share_i · prod_{j != i} j / (j - i) mod l   (Lagrange at 0)
 */
#ifndef IG_VSS_H
#define IG_VSS_H

#include "ig_common.h"

#define IG_VSS_BYTES 32          /* a scalar or a point */
#define IG_VSS_MAX 255           /* 2 <= k <= n <= 255 */

/* coeffs[0] is the secret (non-zero); shares[i-1] = f(i) for i = 1..n; commitments[j] = coeffs[j]·G.
 * IG_ERR_INVAL for bad k/n or a zero coefficient. */
int ig_vss_deal_coeffs(uint8_t shares[][IG_VSS_BYTES], uint8_t commitments[][IG_VSS_BYTES],
                       const uint8_t coeffs[][IG_VSS_BYTES], unsigned k, unsigned n);
/* Same with coeffs[1..k-1] from crypto_core_ristretto255_scalar_random (wiped after). */
int ig_vss_deal(uint8_t shares[][IG_VSS_BYTES], uint8_t commitments[][IG_VSS_BYTES],
                const uint8_t secret[IG_VSS_BYTES], unsigned k, unsigned n);
/* share·G == sum_j index^j · commitments[j] (Horner). IG_ERR_CRYPTO when not. */
int ig_vss_verify(const uint8_t share[IG_VSS_BYTES], unsigned index,
                  const uint8_t commitments[][IG_VSS_BYTES], unsigned k) IG_NODISCARD;
/* Lagrange interpolation at 0 over m (>= 1) distinct indices 1..255. IG_ERR_INVAL on a repeated or zero index. */
int ig_vss_combine(uint8_t secret[IG_VSS_BYTES], const uint8_t indices[], const uint8_t shares[][IG_VSS_BYTES],
                   unsigned m) IG_NODISCARD;
/* secret·G == commitment0 (constant time compare). */
int ig_vss_check_secret(const uint8_t secret[IG_VSS_BYTES], const uint8_t commitment0[IG_VSS_BYTES]) IG_NODISCARD;

#endif
