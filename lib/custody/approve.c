/*
 * approve.c: the admin-list and approval statements of the admin unseal
 * mode (ig_custody_approve.h; docs/PROTOCOL.md, "Custody: admin approval").
 *
 * Why this exists: the cluster head signs the first, an admin (through the
 * CLI) the second, and the holder checks both; one builder keeps the three
 * byte-identical.
 */
#include "ig_custody_approve.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static const char ADMINS_TAG[] = "iotguard custody admins v1\n";
static const char APPROVE_TAG[] = "iotguard custody approve v1\n";

#define STATEMENT_MAX (64 + IG_CLUSTER_MAX + 8 + IG_CUSTODY_ADMINS_MAX * 32)

static void be64(uint8_t out[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		out[i] = (uint8_t)v;
		v >>= 8;
	}
}

/* tag | cluster | "\n" into out; the offset after it, or a negative error. */
static int head(uint8_t *out, size_t cap, const char *tag, const char *cluster)
{
	size_t tl = strlen(tag), cl = cluster ? strlen(cluster) : 0;
	if (!cl || cl > IG_CLUSTER_MAX || memchr(cluster, '\n', cl))
		return IG_ERR_INVAL;
	if (tl + cl + 1 > cap)
		return IG_ERR_RANGE;
	memcpy(out, tag, tl);
	memcpy(out + tl, cluster, cl);
	out[tl + cl] = '\n';
	return (int)(tl + cl + 1);
}

static bool ascending(const uint8_t pks[][32], size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (memcmp(pks[i - 1], pks[i], 32) >= 0)
			return false;
	return true;
}

int ig_custody_approve_admins_statement(uint8_t *out, size_t cap, const char *cluster, uint64_t epoch,
                                const uint8_t pks[][32], size_t n)
{
	if (n > IG_CUSTODY_ADMINS_MAX || (n && !pks))
		return IG_ERR_INVAL;
	int off = head(out, cap, ADMINS_TAG, cluster);
	if (off < 0)
		return off;
	size_t need = (size_t)off + 8 + n * 32;
	if (need > cap)
		return IG_ERR_RANGE;
	be64(out + off, epoch);
	if (n)
		memcpy(out + off + 8, pks, n * 32);
	return (int)need;
}

int ig_custody_approve_admins_sign(uint8_t sig[IG_CUSTODY_SIG_BYTES], const char *cluster, uint64_t epoch,
                           const uint8_t pks[][32], size_t n, const uint8_t ch_sk[IG_SK_BYTES])
{
	uint8_t m[STATEMENT_MAX];
	if (!ascending(pks, n))
		return IG_ERR_INVAL;
	int len = ig_custody_approve_admins_statement(m, sizeof m, cluster, epoch, pks, n);
	if (len < 0)
		return len;
	crypto_sign_detached(sig, NULL, m, (unsigned long long)len, ch_sk);
	return IG_OK;
}

int ig_custody_approve_admins_verify(const uint8_t sig[IG_CUSTODY_SIG_BYTES], const char *cluster, uint64_t epoch,
                             const uint8_t pks[][32], size_t n, const uint8_t ch_pk[IG_PK_BYTES])
{
	uint8_t m[STATEMENT_MAX];
	int len = ig_custody_approve_admins_statement(m, sizeof m, cluster, epoch, pks, n);
	if (len < 0)
		return len;
	if (!ascending(pks, n) || crypto_sign_verify_detached(sig, m, (unsigned long long)len, ch_pk) != 0)
		return IG_ERR_CRYPTO;
	return IG_OK;
}

int ig_custody_approve_statement(uint8_t *out, size_t cap, const char *cluster, const uint8_t request[16],
                                 const uint8_t pk[32], uint64_t size, const uint8_t root[32])
{
	int off = head(out, cap, APPROVE_TAG, cluster);
	if (off < 0)
		return off;
	size_t need = (size_t)off + 16 + 32 + 8 + 32;
	if (need > cap)
		return IG_ERR_RANGE;
	memcpy(out + off, request, 16);
	memcpy(out + off + 16, pk, 32);
	be64(out + off + 48, size);
	memcpy(out + off + 56, root, 32);
	return (int)need;
}

int ig_custody_approve_sign(uint8_t sig[IG_CUSTODY_SIG_BYTES], const char *cluster, const uint8_t request[16],
                            const uint8_t pk[32], uint64_t size, const uint8_t root[32],
                            const uint8_t admin_sk[IG_SK_BYTES])
{
	uint8_t m[STATEMENT_MAX];
	int len = ig_custody_approve_statement(m, sizeof m, cluster, request, pk, size, root);
	if (len < 0)
		return len;
	crypto_sign_detached(sig, NULL, m, (unsigned long long)len, admin_sk);
	return IG_OK;
}

int ig_custody_approve_verify(const uint8_t sig[IG_CUSTODY_SIG_BYTES], const char *cluster, const uint8_t request[16],
                              const uint8_t pk[32], uint64_t size, const uint8_t root[32],
                              const uint8_t admin_pk[IG_PK_BYTES])
{
	uint8_t m[STATEMENT_MAX];
	int len = ig_custody_approve_statement(m, sizeof m, cluster, request, pk, size, root);
	if (len < 0)
		return len;
	return crypto_sign_verify_detached(sig, m, (unsigned long long)len, admin_pk) == 0 ? IG_OK : IG_ERR_CRYPTO;
}

static int cmp32(const void *a, const void *b)
{
	return memcmp(a, b, 32);
}

void ig_custody_approve_admins_sort(uint8_t pks[][32], size_t n)
{
	if (n > 1)
		qsort(pks, n, 32, cmp32);
}
