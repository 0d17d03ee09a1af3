/*
 * ig_tlogproof.h: the C2SP tlog-proof@v1 text (an entry's index, its
 * inclusion proof and the checkpoint it leads to, in one offline file).
 *
 * Why this exists: a device or an auditor should be able to check that a
 * record is in the cluster's log with nothing but a file and the public keys
 * it trusts, in a format other transparency-log tools read too:
 *
 *   c2sp.org/tlog-proof@v1\n
 *   extra <base64>\n            optional; iotguard puts the record's whole frame here
 *   index <decimal>\n
 *   <base64 hash>\n ...         the RFC 6962 audit path, leaf's sibling first (0..63 lines)
 *   \n
 *   <checkpoint, verbatim>      origin, size, root, blank line, signature lines
 *
 * Parsing is strict (only the spelling ig_tlogproof_format produces:
 * canonical base64, no leading zeros, no CR) and bounded, because the text
 * comes from whoever handed the file over. The parser does not check the
 * checkpoint's signatures or the proof: the caller runs ig_checkpoint_verify
 * on the checkpoint part and ig_proof_inclusion_verify on the hashes. The
 * extra data is not authenticated either (the spec says so): it is trusted
 * only once its leaf hash verifies.
 */
#ifndef IG_TLOGPROOF_H
#define IG_TLOGPROOF_H

#include "ig_common.h"

#define IG_TLOGPROOF_HEADER "c2sp.org/tlog-proof@v1"
#define IG_TLOGPROOF_MAX_HASHES 63          /* an audit path in a tree of up to 2^63 leaves */
#define IG_TLOGPROOF_EXTRA_MAX 65535        /* a format-2 frame is at most 65535 bytes */
#define IG_TLOGPROOF_CHECKPOINT_MAX 16384   /* as ig_checkpoint_verify accepts */
/* The longest text: header, extra line, index line, hashes, blank line,
 * checkpoint. */
#define IG_TLOGPROOF_TEXT_MAX \
	(sizeof IG_TLOGPROOF_HEADER + 7 + 4 * ((IG_TLOGPROOF_EXTRA_MAX + 2) / 3) + 27 + \
	 45 * IG_TLOGPROOF_MAX_HASHES + 1 + IG_TLOGPROOF_CHECKPOINT_MAX)

typedef struct ig_tlogproof {
	bool has_extra;
	size_t extra_len;                                     /* bytes written to the caller's extra buffer */
	uint64_t index;
	size_t n;                                             /* hashes in path */
	uint8_t path[IG_TLOGPROOF_MAX_HASHES][IG_HASH_BYTES];
	const char *checkpoint;                               /* points into the parsed text */
	size_t checkpoint_len;
} ig_tlogproof;

/* Writes the proof text into out (NUL-terminated) and returns its length, or
 * a negative IG_ERR_*: IG_ERR_INVAL for an empty extra (pass NULL and 0 for none),
 * more than 63 hashes or a checkpoint that is empty, starts with an empty
 * line, does not end with a newline or holds a NUL; IG_ERR_RANGE if extra or
 * the checkpoint is over its limit or out is too small. */
int ig_tlogproof_format(char *out, size_t cap, const uint8_t *extra, size_t extra_len, uint64_t index,
                        const uint8_t (*path)[IG_HASH_BYTES], size_t n, const char *checkpoint,
                        size_t checkpoint_len);

/* Parses text[0..len) into p. The extra data (if any) is decoded into
 * extra[0..extra_cap); a NULL extra with cap 0 accepts only proofs without
 * one. p->checkpoint points into text. IG_OK; IG_ERR_CORRUPT with the bad
 * line named for anything malformed; IG_ERR_RANGE if the text, the extra
 * data (for extra_cap or IG_TLOGPROOF_EXTRA_MAX) or the checkpoint is too
 * long; IG_ERR_INVAL for NULL arguments. */
int ig_tlogproof_parse(ig_tlogproof *p, uint8_t *extra, size_t extra_cap, const char *text, size_t len,
                       ig_error *err) IG_NODISCARD;

#endif
