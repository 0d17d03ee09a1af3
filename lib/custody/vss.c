/*
 * vss.c: Feldman-verifiable Shamir secret sharing over ristretto255.
 *
 * Why this exists: the custody secret S is split among devices, and a
 * single corrupt or forged share must be caught where it appears (at the
 * holder when dealt, at the requester when released), not discovered later
 * as a wrong key. All arithmetic is libsodium's: scalars mod l with
 * crypto_core_ristretto255_scalar_*, points with crypto_scalarmult_ristretto255
 * (which returns -1 for an identity result; here that is a failed check,
 * never an accepted one). Inputs that libsodium would silently reinterpret
 * (non-canonical scalars: scalarmult ignores bit 255, scalar_mul reduces)
 * are refused, so verify and combine always see the same number.
 */
#include "ig_vss.h"

#include <sodium.h>
#include <string.h>

/* A scalar is canonical when reducing it mod l leaves it unchanged. */
static bool scalar_canonical(const uint8_t s[IG_VSS_BYTES])
{
	uint8_t wide[crypto_core_ristretto255_NONREDUCEDSCALARBYTES] = {0};
	uint8_t red[IG_VSS_BYTES];
	memcpy(wide, s, IG_VSS_BYTES);
	crypto_core_ristretto255_scalar_reduce(red, wide);
	bool ok = sodium_memcmp(red, s, IG_VSS_BYTES) == 0;
	sodium_memzero(wide, sizeof wide);
	sodium_memzero(red, sizeof red);
	return ok;
}

static void scalar_small(uint8_t out[IG_VSS_BYTES], unsigned v)
{
	memset(out, 0, IG_VSS_BYTES);
	out[0] = (uint8_t)v;
}

int ig_vss_deal_coeffs(uint8_t shares[][IG_VSS_BYTES], uint8_t commitments[][IG_VSS_BYTES],
                       const uint8_t coeffs[][IG_VSS_BYTES], unsigned k, unsigned n)
{
	if (!shares || !commitments || !coeffs || k < 2 || n < k || n > IG_VSS_MAX)
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	/* A zero a_{k-1} would lower the degree (fewer than k shares would
	 * suffice); a zero a_0 is no secret at all; the others are refused so
	 * every commitment is a real point. */
	for (unsigned j = 0; j < k; j++)
		if (sodium_is_zero(coeffs[j], IG_VSS_BYTES) || !scalar_canonical(coeffs[j]))
			return IG_ERR_INVAL;
	for (unsigned j = 0; j < k; j++)
		if (crypto_scalarmult_ristretto255_base(commitments[j], coeffs[j]) != 0)
			return IG_ERR_CRYPTO;
	uint8_t x[IG_VSS_BYTES], acc[IG_VSS_BYTES];
	for (unsigned i = 1; i <= n; i++) {
		scalar_small(x, i);
		memcpy(acc, coeffs[k - 1], IG_VSS_BYTES);
		for (unsigned j = k - 1; j-- > 0;) {
			crypto_core_ristretto255_scalar_mul(acc, acc, x);
			crypto_core_ristretto255_scalar_add(acc, acc, coeffs[j]);
		}
		memcpy(shares[i - 1], acc, IG_VSS_BYTES);
	}
	sodium_memzero(acc, sizeof acc);
	return IG_OK;
}

int ig_vss_deal(uint8_t shares[][IG_VSS_BYTES], uint8_t commitments[][IG_VSS_BYTES],
                const uint8_t secret[IG_VSS_BYTES], unsigned k, unsigned n)
{
	if (!shares || !commitments || !secret || k < 2 || n < k || n > IG_VSS_MAX)
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	uint8_t coeffs[IG_VSS_MAX][IG_VSS_BYTES];
	memcpy(coeffs[0], secret, IG_VSS_BYTES);
	for (unsigned j = 1; j < k; j++)
		do
			crypto_core_ristretto255_scalar_random(coeffs[j]);
		while (sodium_is_zero(coeffs[j], IG_VSS_BYTES));
	int rc = ig_vss_deal_coeffs(shares, commitments, (const uint8_t(*)[IG_VSS_BYTES])coeffs, k, n);
	sodium_memzero(coeffs, (size_t)k * IG_VSS_BYTES);
	if (rc != IG_OK)
		sodium_memzero(shares, (size_t)n * IG_VSS_BYTES);
	return rc;
}

int ig_vss_verify(const uint8_t share[IG_VSS_BYTES], unsigned index, const uint8_t commitments[][IG_VSS_BYTES],
                  unsigned k)
{
	if (!share || !commitments || index < 1 || index > IG_VSS_MAX || k < 2 || k > IG_VSS_MAX)
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	if (!scalar_canonical(share))
		return IG_ERR_CRYPTO;
	uint8_t lhs[IG_VSS_BYTES], acc[IG_VSS_BYTES], x[IG_VSS_BYTES];
	/* An identity on either side (a zero share, or commitments that cancel)
	 * makes libsodium return -1: no honest deal produces that, so it fails. */
	if (crypto_scalarmult_ristretto255_base(lhs, share) != 0)
		return IG_ERR_CRYPTO;
	scalar_small(x, index);
	if (!crypto_core_ristretto255_is_valid_point(commitments[k - 1]))
		return IG_ERR_CRYPTO;
	memcpy(acc, commitments[k - 1], IG_VSS_BYTES);
	for (unsigned j = k - 1; j-- > 0;) {
		if (crypto_scalarmult_ristretto255(acc, x, acc) != 0 ||
		    crypto_core_ristretto255_add(acc, acc, commitments[j]) != 0)
			return IG_ERR_CRYPTO;
	}
	return sodium_memcmp(lhs, acc, IG_VSS_BYTES) == 0 ? IG_OK : IG_ERR_CRYPTO;
}

int ig_vss_combine(uint8_t secret[IG_VSS_BYTES], const uint8_t indices[], const uint8_t shares[][IG_VSS_BYTES],
                   unsigned m)
{
	if (!secret || !indices || !shares || m < 1 || m > IG_VSS_MAX)
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	bool seen[256] = {false};
	for (unsigned i = 0; i < m; i++) {
		if (indices[i] == 0 || seen[indices[i]] || !scalar_canonical(shares[i]))
			return IG_ERR_INVAL;
		seen[indices[i]] = true;
	}
	/* S = sum_i s_i * prod_{j != i} x_j / (x_j - x_i). The denominators
	 * are non-zero because the indices differ; they are inverted together
	 * (Montgomery's trick: one inversion and 3(m-1) products instead of m
	 * inversions, which dominate the cost). */
	uint8_t num[IG_VSS_MAX][IG_VSS_BYTES], den[IG_VSS_MAX][IG_VSS_BYTES], pre[IG_VSS_MAX][IG_VSS_BYTES];
	uint8_t xi[IG_VSS_BYTES], xj[IG_VSS_BYTES], t[IG_VSS_BYTES], inv[IG_VSS_BYTES], sum[IG_VSS_BYTES] = {0};
	for (unsigned i = 0; i < m; i++) {
		scalar_small(num[i], 1);
		scalar_small(den[i], 1);
		scalar_small(xi, indices[i]);
		for (unsigned j = 0; j < m; j++) {
			if (j == i)
				continue;
			scalar_small(xj, indices[j]);
			crypto_core_ristretto255_scalar_mul(num[i], num[i], xj);
			crypto_core_ristretto255_scalar_sub(t, xj, xi);
			crypto_core_ristretto255_scalar_mul(den[i], den[i], t);
		}
		if (i == 0)
			memcpy(pre[0], den[0], IG_VSS_BYTES);
		else
			crypto_core_ristretto255_scalar_mul(pre[i], pre[i - 1], den[i]);
	}
	if (crypto_core_ristretto255_scalar_invert(inv, pre[m - 1]) != 0)
		return IG_ERR_CRYPTO;
	for (unsigned i = m; i-- > 0;) {
		/* inv = 1 / (den_0 ... den_i) here. */
		if (i > 0) {
			crypto_core_ristretto255_scalar_mul(t, inv, pre[i - 1]);   /* 1 / den_i */
			crypto_core_ristretto255_scalar_mul(inv, inv, den[i]);
		} else {
			memcpy(t, inv, IG_VSS_BYTES);
		}
		crypto_core_ristretto255_scalar_mul(t, t, num[i]);
		crypto_core_ristretto255_scalar_mul(t, t, shares[i]);
		crypto_core_ristretto255_scalar_add(sum, sum, t);
	}
	memcpy(secret, sum, IG_VSS_BYTES);
	sodium_memzero(sum, sizeof sum);
	sodium_memzero(t, sizeof t);
	return IG_OK;
}

int ig_vss_check_secret(const uint8_t secret[IG_VSS_BYTES], const uint8_t commitment0[IG_VSS_BYTES])
{
	if (!secret || !commitment0)
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	if (!scalar_canonical(secret))
		return IG_ERR_CRYPTO;
	uint8_t p[IG_VSS_BYTES];
	if (crypto_scalarmult_ristretto255_base(p, secret) != 0)
		return IG_ERR_CRYPTO;
	return sodium_memcmp(p, commitment0, IG_VSS_BYTES) == 0 ? IG_OK : IG_ERR_CRYPTO;
}
