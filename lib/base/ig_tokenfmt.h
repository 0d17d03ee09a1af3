/*
 * ig_tokenfmt.h: the parts of the wire format that the connection token
 * (ig_token.h) and the join token (ig_join.h) share. Internal to lib/; the
 * token headers remain the contract.
 *
 * Why this exists: both tokens are attacker-controlled input parsed before
 * any authentication, and both have the same text form (prefix ||
 * base64url-no-padding), the same leading fields and the same
 * domain-separated Ed25519 signature. Keeping one strict implementation of
 * those parts means a fix to one parser cannot miss the other.
 */
#ifndef IG_TOKENFMT_H
#define IG_TOKENFMT_H

#include "ig_common.h"

#define IG_TOKENFMT_SIG_BYTES 64
/* Longest domain || 0x00 || message that ig_tokenfmt_sign/verify accept. */
#define IG_TOKENFMT_SIGNED_MAX 512

/* Writes prefix || base64url-no-padding(bin[0..len)) into out, NUL-terminated.
 * Returns the text length, or IG_ERR_RANGE if cap is too small. */
int ig_tokenfmt_text_encode(char *out, size_t cap, const char *prefix, const uint8_t *bin, size_t len);

/* The strict inverse: text[0..len) must be at most text_max characters,
 * start with prefix, and continue with canonical base64url without padding up
 * to its very end: only the characters A-Z a-z 0-9 - _ (checked here, since
 * libsodium 1.0.18 reads bytes 0x80-0xff as '_'), and libsodium refuses
 * non-zero leftover bits, so an accepted token has exactly one text form.
 * Anything keyed on a token must still key on the decoded bytes. Returns the binary
 * length written to bin, or IG_ERR_INVAL. */
int ig_tokenfmt_text_decode(const char *text, size_t len, const char *prefix, size_t text_max, uint8_t *bin,
                            size_t bin_cap);

/* The head both tokens open with: version | cluster_len | cluster | id_len | id.
 * ig_tokenfmt_names measures the NUL-terminated names and checks they are
 * valid (IG_OK or IG_ERR_INVAL); ig_tokenfmt_head_put then writes the head
 * and returns its length. */
int ig_tokenfmt_names(const char *cluster, const char *id, size_t *cluster_len, size_t *id_len);
size_t ig_tokenfmt_head_put(uint8_t *out, uint8_t version, const char *cluster, size_t cluster_len, const char *id,
                            size_t id_len);

/* Parses the head of bin[0..len): the version must match, both names be
 * valid, and len be exactly fixed_bytes (everything but the two names) plus
 * both name lengths, so nothing is missing and nothing trails. Copies the
 * names NUL-terminated. Returns the offset just after the head, or
 * IG_ERR_INVAL. */
int ig_tokenfmt_head_get(const uint8_t *bin, size_t len, uint8_t version, size_t fixed_bytes,
                         char cluster[IG_CLUSTER_MAX + 1], char id[IG_ID_MAX + 1]);

/* Ed25519 over domain || 0x00 || msg[0..len), so a token signature can never
 * be confused with any other signature the same key makes. sign returns
 * IG_OK, IG_ERR_RANGE (message too long) or IG_ERR_CRYPTO; verify returns
 * IG_OK, or IG_ERR_CRYPTO for a bad signature or an over-long message. */
int ig_tokenfmt_sign(uint8_t sig[IG_TOKENFMT_SIG_BYTES], const char *domain, const uint8_t *msg, size_t len,
                     const uint8_t sk[IG_SK_BYTES]);
int ig_tokenfmt_verify(const uint8_t sig[IG_TOKENFMT_SIG_BYTES], const char *domain, const uint8_t *msg, size_t len,
                       const uint8_t pk[IG_PK_BYTES]) IG_NODISCARD;

#endif
