/*
 * ig_token.h: the signed connection token used as the MQTT password.
 *
 * Why this exists: devices prove their identity at CONNECT with a token the
 * cluster head can check in one Ed25519 verify, with no round trip. The
 * exact bytes are specified in docs/PROTOCOL.md so any Ed25519 library can
 * mint one.
 *
 * Binary layout (big-endian):
 *   1   version = 1
 *   1   cluster_len (1..64)      cluster_len bytes cluster
 *   1   id_len (1..64)           id_len bytes id
 *   8   issued_at, Unix seconds
 *   8   expires_at, Unix seconds
 *   16  nonce (random)
 *   64  Ed25519 signature over  "iotguard-token-v1" || 0x00 || all bytes above
 * Text form (the password): "igt1." || base64url-without-padding(binary).
 */
#ifndef IG_TOKEN_H
#define IG_TOKEN_H

#include "ig_common.h"

#define IG_TOKEN_VERSION 1
#define IG_TOKEN_PREFIX "igt1."
#define IG_TOKEN_DOMAIN "iotguard-token-v1"
#define IG_TOKEN_NONCE_BYTES 16
#define IG_TOKEN_SIG_BYTES 64
#define IG_TOKEN_BIN_MAX (3 + IG_CLUSTER_MAX + IG_ID_MAX + 16 + IG_TOKEN_NONCE_BYTES + IG_TOKEN_SIG_BYTES)
#define IG_TOKEN_TEXT_MAX 400          /* prefix + base64url of IG_TOKEN_BIN_MAX, with room */

typedef struct ig_token_claims {
	uint8_t version;
	char cluster[IG_CLUSTER_MAX + 1];
	char id[IG_ID_MAX + 1];
	uint64_t issued_at;
	uint64_t expires_at;
	uint8_t nonce[IG_TOKEN_NONCE_BYTES];
} ig_token_claims;

/* Mints a token into out (NUL-terminated text form). nonce may be NULL for a
 * random one (a fixed nonce is for test vectors). Returns the text length or
 * a negative IG_ERR_*. */
int ig_token_mint(char *out, size_t cap, const uint8_t sk[IG_SK_BYTES], const char *cluster,
                  const char *id, uint64_t issued_at, uint64_t expires_at,
                  const uint8_t nonce[IG_TOKEN_NONCE_BYTES]);

/* Parses the text form without checking the signature (the verifier needs
 * the id first, to look up the key). Use ig_token_verify for the full check. */
int ig_token_parse(const char *text, size_t len, ig_token_claims *claims) IG_NODISCARD;

/* Parses and verifies the signature against pk. IG_ERR_INVAL for malformed
 * input, IG_ERR_CRYPTO for a bad signature. Time and cluster are policy and
 * are checked by ig_auth_check. */
int ig_token_verify(const char *text, size_t len, const uint8_t pk[IG_PK_BYTES], ig_token_claims *claims) IG_NODISCARD;

/* The same two steps with one decode, for the CONNECT path: decode, look up
 * the key by claims.id, then verify the bytes already decoded. The struct
 * holds a bearer credential's bytes: sodium_memzero it after use. */
typedef struct ig_token_decoded {
	ig_token_claims claims;
	size_t len;                       /* binary length, signature included */
	uint8_t bin[IG_TOKEN_BIN_MAX];
} ig_token_decoded;

/* As ig_token_parse (IG_ERR_INVAL, and *out wiped, for anything malformed). */
int ig_token_decode(ig_token_decoded *out, const char *text, size_t len) IG_NODISCARD;
/* As ig_token_verify, on a token ig_token_decode accepted. */
int ig_token_verify_decoded(const ig_token_decoded *t, const uint8_t pk[IG_PK_BYTES]) IG_NODISCARD;

#endif
