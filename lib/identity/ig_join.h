/*
 * ig_join.h: one-time join codes and the join token a new device connects
 * with (seed 003: "the device joins the cluster").
 *
 * Why this exists: enrolling each device by hand does not scale. An admin
 * prints one-time codes; a device proves it holds both a code and its own
 * new key in a single CONNECT, then asks to join on its ch topic.
 *
 * Code:    code_id = 8 random bytes;
 *          secret  = first 16 bytes of HMAC-SHA256(join_key, "iotguard-join-code-v1" || code_id)
 *          join_key = HKDF-SHA256(salt = none, ikm = cluster-head seed,
 *                                 info = "iotguard join codes v1")
 *          text    = "igjc1-" || hex(code_id || secret)   (54 characters)
 *          The ledger stores code_id, BLAKE2b-256(code_id || secret), role
 *          and expiry; never the secret. The cluster head re-derives the
 *          secret from code_id when a device uses it.
 * Token:   "igj1." || base64url-no-padding(
 *            1 version = 1 | 1 cluster_len | cluster | 1 id_len | id |
 *            32 device Ed25519 public key | 8 code_id | 8 issued_at |
 *            8 expires_at | 16 nonce | 32 mac | 64 sig)
 *          mac = HMAC-SHA256(secret, "iotguard-join-v1" || 0x00 || bytes before mac)
 *          sig = Ed25519(device key, "iotguard-join-v1" || 0x00 || bytes before sig)
 */
#ifndef IG_JOIN_H
#define IG_JOIN_H

#include "ig_common.h"

#define IG_JOIN_CODE_ID_BYTES 8
#define IG_JOIN_SECRET_BYTES 16
#define IG_JOIN_CODE_PREFIX "igjc1-"
#define IG_JOIN_CODE_TEXT_LEN (6 + 2 * (IG_JOIN_CODE_ID_BYTES + IG_JOIN_SECRET_BYTES))
#define IG_JOIN_TOKEN_PREFIX "igj1."
#define IG_JOIN_DOMAIN "iotguard-join-v1"
#define IG_JOIN_TOKEN_TEXT_MAX 512
#define IG_JOIN_MAX_TTL 600              /* a join token lives at most 10 minutes */

typedef struct ig_join_key { uint8_t k[32]; } ig_join_key;

/* join_key from the cluster-head secret key (its 32-byte seed part). */
void ig_join_key_derive(ig_join_key *jk, const uint8_t ch_sk[IG_SK_BYTES]);
/* New code: random code_id, derived secret, text and hash. */
void ig_join_code_new(const ig_join_key *jk, uint8_t code_id[IG_JOIN_CODE_ID_BYTES],
                      uint8_t hash[IG_HASH_BYTES], char text[IG_JOIN_CODE_TEXT_LEN + 1]);
void ig_join_secret(const ig_join_key *jk, const uint8_t code_id[IG_JOIN_CODE_ID_BYTES],
                    uint8_t secret[IG_JOIN_SECRET_BYTES]);
void ig_join_code_hash(uint8_t hash[IG_HASH_BYTES], const uint8_t code_id[IG_JOIN_CODE_ID_BYTES],
                       const uint8_t secret[IG_JOIN_SECRET_BYTES]);
/* Parses "igjc1-<48 hex>" (case-insensitive, surrounding spaces ignored). */
int ig_join_code_parse(const char *text, uint8_t code_id[IG_JOIN_CODE_ID_BYTES],
                       uint8_t secret[IG_JOIN_SECRET_BYTES]) IG_NODISCARD;

typedef struct ig_join_claims {
	char cluster[IG_CLUSTER_MAX + 1];
	char id[IG_ID_MAX + 1];
	uint8_t pk[IG_PK_BYTES];
	uint8_t code_id[IG_JOIN_CODE_ID_BYTES];
	uint64_t issued_at, expires_at;
	uint8_t nonce[16];
} ig_join_claims;

/* Device side. nonce may be NULL (random). Returns text length or IG_ERR_*. */
int ig_join_token_mint(char *out, size_t cap, const uint8_t sk[IG_SK_BYTES], const char *cluster, const char *id,
                       const char *code_text, uint64_t issued_at, uint64_t expires_at, const uint8_t nonce[16]);
/* Cluster-head side, step 1: parse (to find code_id) without any check. */
int ig_join_token_parse(const char *text, size_t len, ig_join_claims *c) IG_NODISCARD;
/* Step 2: verify mac with the re-derived secret and sig with the embedded
 * key. IG_ERR_CRYPTO if either fails. Times and code state are the
 * caller's (ig_joincodes). */
int ig_join_token_verify(const char *text, size_t len, const uint8_t secret[IG_JOIN_SECRET_BYTES],
                         ig_join_claims *c) IG_NODISCARD;

/* Admission of the id a join token names: a join code only claims an id
 * the registry has never seen (not active, not pending, not revoked).
 * Re-enrolling a revoked id is an admin's explicit act (enroll with
 * "reenroll"), never a code's. */
struct ig_registry;
bool ig_join_id_claimable(const struct ig_registry *reg, const char *id, size_t id_len);

#endif
