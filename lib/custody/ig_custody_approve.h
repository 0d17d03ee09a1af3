/*
 * ig_custody_approve.h: the two signed statements of the admin unseal mode
 * (docs/PROTOCOL.md, "Custody: admin approval").
 *
 * Why this exists: with plugin_opt_custody_unseal admin a holder releases
 * its share only against an admin's signed approval, so a copy of the
 * broker's disk started elsewhere gets nothing without an admin key. Two
 * statements make that work, and the cluster head, the holder and the CLI
 * must build them byte for byte alike:
 *   - the admin list, signed by the cluster-head key at deal time:
 *       "iotguard custody admins v1\n" | cluster | "\n" | epoch (8, BE) |
 *       the admins' Ed25519 public keys, ascending, concatenated;
 *   - an approval, signed by one of those admins:
 *       "iotguard custody approve v1\n" | cluster | "\n" | request (16) |
 *       requester's X25519 pk (32) | ledger size (8, BE) | ledger root (32).
 * Signatures are plain Ed25519 (crypto_sign_detached) over those bytes.
 */
#ifndef IG_CUSTODY_APPROVE_H
#define IG_CUSTODY_APPROVE_H

#include "ig_common.h"

#include <stddef.h>
#include <stdint.h>

#define IG_CUSTODY_ADMINS_MAX 64
#define IG_CUSTODY_SIG_BYTES 64

/* The admin-list statement into out (cap bytes); its length, or
 * IG_ERR_RANGE when it does not fit, IG_ERR_INVAL for a bad cluster or
 * more than IG_CUSTODY_ADMINS_MAX keys. */
int ig_custody_approve_admins_statement(uint8_t *out, size_t cap, const char *cluster, uint64_t epoch,
                                const uint8_t pks[][32], size_t n);
/* Signs it with the cluster-head secret key. IG_ERR_INVAL when the keys are
 * not strictly ascending (sorted, no repeats). */
int ig_custody_approve_admins_sign(uint8_t sig[IG_CUSTODY_SIG_BYTES], const char *cluster, uint64_t epoch,
                           const uint8_t pks[][32], size_t n, const uint8_t ch_sk[IG_SK_BYTES]);
/* IG_OK when sig is ch_pk's over the statement and the keys are strictly
 * ascending; IG_ERR_CRYPTO when not (IG_ERR_INVAL for bad arguments). */
int ig_custody_approve_admins_verify(const uint8_t sig[IG_CUSTODY_SIG_BYTES], const char *cluster, uint64_t epoch,
                             const uint8_t pks[][32], size_t n, const uint8_t ch_pk[IG_PK_BYTES]) IG_NODISCARD;

/* The approval statement (fixed length for a given cluster). */
int ig_custody_approve_statement(uint8_t *out, size_t cap, const char *cluster, const uint8_t request[16],
                                 const uint8_t pk[32], uint64_t size, const uint8_t root[32]);
int ig_custody_approve_sign(uint8_t sig[IG_CUSTODY_SIG_BYTES], const char *cluster, const uint8_t request[16],
                            const uint8_t pk[32], uint64_t size, const uint8_t root[32],
                            const uint8_t admin_sk[IG_SK_BYTES]);
int ig_custody_approve_verify(const uint8_t sig[IG_CUSTODY_SIG_BYTES], const char *cluster, const uint8_t request[16],
                              const uint8_t pk[32], uint64_t size, const uint8_t root[32],
                              const uint8_t admin_pk[IG_PK_BYTES]) IG_NODISCARD;

/* Sorts n keys ascending (bytewise), in place. */
void ig_custody_approve_admins_sort(uint8_t pks[][32], size_t n);

#endif
