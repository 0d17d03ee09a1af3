/*
 * ig_cosig.h: witness cosignatures (C2SP tlog-cosignature, Ed25519
 * "cosignature/v1", signed-note type 0x04) and verifier keys (vkeys).
 *
 * Why this exists: one signature on a checkpoint lets whoever holds the
 * cluster-head key show different histories to different devices. A witness
 * that checked consistency adds a timestamped cosignature line to the same
 * note; a client that requires a quorum of them cannot be shown a fork
 * unless that many witnesses collude. The bytes must match the public spec
 * so witnesses and verifiers from other projects interoperate:
 *
 *   line    = "\u2014 " <name> " " base64(key_id[4] || timestamp u64 BE || sig[64]) "\n"
 *   message = "cosignature/v1\n" "time " <timestamp decimal> "\n" <note body>
 *   key_id  = SHA-256(name || "\n" || 0x04 || pk)[:4]
 *   vkey    = <name> "+" hex(key_id) "+" base64(type || pk)
 *
 * The note body is the checkpoint's text lines up to (not including) the
 * blank line that separates the signatures, each with its newline.
 *
 * A vkey of type 0x01 (plain signed-note Ed25519) is accepted too, so the
 * cluster head's own key can be written and checked in the same notation;
 * ig_cosig_verify_line handles both types.
 */
#ifndef IG_COSIG_H
#define IG_COSIG_H

#include "ig_common.h"

#define IG_COSIG_TYPE_ED25519 0x01    /* signed-note Ed25519 (the cluster head's checkpoint key) */
#define IG_COSIG_TYPE_COSIG_V1 0x04   /* tlog-cosignature Ed25519 cosignature/v1 */

#define IG_COSIG_NAME_MAX 128         /* a key name, bytes (our limit; the spec sets none) */
#define IG_COSIG_KEY_ID_BYTES 4
#define IG_COSIG_BLOB_BYTES 76        /* key id 4 + timestamp 8 + Ed25519 signature 64 */
/* One cosignature line with its "\n" and a NUL: em dash (3) + space + name +
 * space + base64 of 76 bytes (104) + "\n" + NUL. */
#define IG_COSIG_LINE_MAX (4 + IG_COSIG_NAME_MAX + 1 + 104 + 1 + 1)
/* A vkey and its NUL: name + '+' + 8 hex + '+' + base64 of 33 bytes (44). */
#define IG_COSIG_VKEY_MAX (IG_COSIG_NAME_MAX + 1 + 8 + 1 + 44 + 1)
/* The spec's bound on timestamps (2^63 - 1). */
#define IG_COSIG_TIME_MAX ((uint64_t)INT64_MAX)

/* A verifier key: who signs (name), how (type) and with what (pk). */
typedef struct ig_cosig_vkey {
	char name[IG_COSIG_NAME_MAX + 1];
	uint8_t type;                             /* IG_COSIG_TYPE_ED25519 or IG_COSIG_TYPE_COSIG_V1 */
	uint8_t pk[IG_PK_BYTES];
	uint8_t id[IG_COSIG_KEY_ID_BYTES];        /* SHA-256(name || "\n" || type || pk)[:4] */
} ig_cosig_vkey;

/* True if name[0..len) is a signed-note key name: 1..IG_COSIG_NAME_MAX
 * bytes, no spaces, '+' or control characters (any byte <= 0x20, 0x7f). */
bool ig_cosig_name_valid(const char *name, size_t len);

/* Fills key (name, type, pk and the computed key id). IG_ERR_INVAL for a bad
 * name or a type other than the two above. */
int ig_cosig_vkey_make(ig_cosig_vkey *key, const char *name, uint8_t type, const uint8_t pk[IG_PK_BYTES]);

/* Writes the vkey text (NUL-terminated); returns its length or IG_ERR_*. */
int ig_cosig_vkey_encode(char *out, size_t cap, const ig_cosig_vkey *key);

/* Strict parse of "<name>+<8 lowercase hex>+<canonical base64 of 33 bytes>":
 * the type byte must be 0x01 or 0x04 and the key id must be the one the
 * name, type and key give (a vkey whose id does not match is refused, as it
 * would never match a signature line). */
int ig_cosig_vkey_parse(ig_cosig_vkey *key, const char *text, size_t len, ig_error *err) IG_NODISCARD;

/* Splits one signature line (with or without its final "\n") into its key
 * name and its decoded signature blob: "\u2014 <name> <canonical base64>".
 * blob must hold blob_cap bytes; IG_ERR_CORRUPT with a reason otherwise. */
int ig_cosig_line_split(const char **name, size_t *name_len, uint8_t *blob, size_t blob_cap, size_t *blob_len,
                        const char *line, size_t len, ig_error *err) IG_NODISCARD;

/* The message a cosignature/v1 signature covers, written to out:
 * "cosignature/v1\ntime <timestamp>\n" || body. Returns its length or
 * IG_ERR_RANGE. */
int ig_cosig_message(uint8_t *out, size_t cap, uint64_t timestamp, const char *body, size_t body_len);

/* Makes a cosignature line (with "\n", NUL-terminated) by key name over the
 * note body at timestamp (1 .. IG_COSIG_TIME_MAX: the witness protocol
 * forbids 0). sk is the witness's Ed25519 secret key (libsodium layout,
 * seed || pk); nothing derived from it outlives the call. Returns the line
 * length or IG_ERR_*. */
int ig_cosig_sign(char *out, size_t cap, const char *name, const uint8_t sk[IG_SK_BYTES], uint64_t timestamp,
                  const char *body, size_t body_len);

/* Checks one signature line against key and the note body.
 *   IG_OK           the line is key's and verifies; *timestamp (if not NULL)
 *                   gets its time (0 for a type 0x01 key, which has none)
 *   IG_ERR_NOTFOUND the line is another key's (name or key id differ): skip it
 *   IG_ERR_CRYPTO   the line claims key's name and id but does not verify
 *                   (the signed-note spec says: reject the whole note)
 *   IG_ERR_CORRUPT  the line is malformed, or its timestamp exceeds 2^63-1 */
int ig_cosig_verify_line(uint64_t *timestamp, const char *line, size_t len, const ig_cosig_vkey *key,
                         const char *body, size_t body_len, ig_error *err) IG_NODISCARD;

/* Counts the keys (of nkeys, which must be distinct) with a valid signature
 * line in a signed checkpoint text, into *valid. The note body is found with
 * ig_checkpoint_split; lines of unknown keys are skipped; a line that claims
 * a listed key but fails fails the whole call (IG_ERR_CRYPTO). Returns
 * IG_OK only if *valid >= quorum; IG_ERR_CRYPTO "only N of the K required"
 * otherwise. quorum 0 always passes (counting only). This does not check
 * the cluster head's signature: ig_checkpoint_verify does. */
int ig_cosig_count(size_t *valid, const char *text, size_t len, const ig_cosig_vkey *keys, size_t nkeys,
                   size_t quorum, ig_error *err) IG_NODISCARD;

#endif
