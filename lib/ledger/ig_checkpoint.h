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
 *
 * Witnesses add their cosignature lines (ig_cosig.h) after the cluster
 * head's, so a checkpoint text may carry many signature lines: callers size
 * their buffers with IG_CHECKPOINT_MAX, never with a literal.
 */
#ifndef IG_CHECKPOINT_H
#define IG_CHECKPOINT_H

#include "ig_common.h"

/* The largest checkpoint text iotguard writes or stores: the body, the
 * cluster head's line and IG_CHECKPOINT_COSIGS_MAX cosignature lines whose
 * key names have the longest allowed length (IG_COSIG_NAME_MAX), and a NUL:
 * 141 + 1 + 171 + 32 x 238 = 7929 < 8192. The signed-note spec asks
 * verifiers to accept at least 16 signatures. */
#define IG_CHECKPOINT_MAX 8192
#define IG_CHECKPOINT_COSIGS_MAX 32

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

/* Finds the two parts of a checkpoint note: the body is text[0..*body_len)
 * (the origin, size and root lines with their newlines: what the cluster
 * head signs and what cosignatures cover), the signature lines are
 * text[*sigs_off..len), each ending in "\n", at least one. Structure only:
 * this checks no signature, so call ig_checkpoint_verify first.
 * IG_ERR_NOTFOUND if the note has no signature line at all (unsigned),
 * IG_ERR_CORRUPT if it is malformed. */
int ig_checkpoint_split(const char *text, size_t len, size_t *body_len, size_t *sigs_off,
                        ig_error *err) IG_NODISCARD;

/* Writes text (a signed checkpoint) plus the signature lines in
 * lines[0..lines_len) (each "\u2014 <name> <base64>\n", e.g. a witness's
 * answer) to out, NUL-terminated. A line whose key (name and key id) already
 * signs the note replaces that key's line in place (a witness's newer
 * cosignature of the same checkpoint wins); others are appended in order. It
 * checks no signature: verify lines with ig_cosig_verify_line first. Returns
 * the new length, or IG_ERR_CORRUPT (malformed text or line), IG_ERR_RANGE
 * (more than 100 signature lines, or out too small). out may be text's own
 * buffer (adding in place); on failure out is left empty unless it is. */
int ig_checkpoint_add_signatures(char *out, size_t cap, const char *text, size_t len, const char *lines,
                                 size_t lines_len, ig_error *err) IG_NODISCARD;

#endif
