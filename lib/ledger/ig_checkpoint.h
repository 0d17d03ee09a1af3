/*
 * ig_checkpoint.h: signed checkpoints in the C2SP signed-note format.
 *
 * Why this exists: the checkpoint is what the cluster head publishes and
 * what auditors keep. It must be byte-exact with the C2SP tlog-checkpoint
 * and signed-note specs so ordinary note tooling can check it:
 *
 *   <origin>\n                 origin = "iotguard/<cluster>"
 *   <size>\n                   decimal number of records
 *   <base64 root>\n            standard base64 with padding, 32 bytes
 *   \n
 *   \u2014 <key name> <base64(key_id[4] || ed25519_sig[64])>\n
 *
 * key name = origin; key_id = first 4 bytes of
 * SHA-256(key name || 0x0A || 0x01 || pubkey) per the signed-note spec; the
 * signature covers the three body lines including their newlines.
 */
#ifndef IG_CHECKPOINT_H
#define IG_CHECKPOINT_H

#include "ig_common.h"

#define IG_CHECKPOINT_MAX 512

typedef struct ig_checkpoint {
	char origin[IG_CLUSTER_MAX + 16];
	uint64_t size;
	uint8_t root[IG_HASH_BYTES];
} ig_checkpoint;

/* "iotguard/<cluster>" */
int ig_checkpoint_origin(char *out, size_t cap, const char *cluster);

/* Formats and signs cp into out (NUL-terminated). Returns text length or a
 * negative IG_ERR_*. sk is the cluster-head Ed25519 secret key. */
int ig_checkpoint_sign(char *out, size_t cap, const ig_checkpoint *cp, const uint8_t sk[IG_SK_BYTES]);

/* Parses and verifies text against pk and the expected origin. On success
 * fills cp. Errors say which line is bad or that the signature fails. */
int ig_checkpoint_verify(const char *text, size_t len, const char *expected_origin,
                         const uint8_t pk[IG_PK_BYTES], ig_checkpoint *cp, ig_error *err) IG_NODISCARD;

#endif
