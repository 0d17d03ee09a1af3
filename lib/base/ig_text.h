/*
 * ig_text.h: the strict reading of the line-based texts of the C2SP family
 * (checkpoints, signed notes, cosignatures, tlog-proofs, witness requests).
 *
 * Why this exists: every one of those formats spells a number in decimal
 * without leading zeros and a blob in padded standard base64, and is read
 * line by line; a verifier must accept exactly one spelling of each, or two
 * texts that differ would mean the same thing (and a fuzzer finds the
 * difference). One copy of those rules, used by every parser.
 */
#ifndef IG_TEXT_H
#define IG_TEXT_H

#include "ig_common.h"

/* A decimal number as C2SP writes it: ASCII digits, no sign, no leading
 * zero ("0" alone for zero), at most 2^64-1. */
bool ig_text_u64(const char *s, size_t len, uint64_t *out);

/* Padded standard base64 (RFC 4648 section 4) that is the one canonical
 * spelling of its bytes: decodes into out[0..cap), *outlen bytes. False for
 * anything else (bad characters, missing or extra padding, nonzero unused
 * bits, more than cap bytes). Needs no buffer as large as the input. */
bool ig_text_b64(uint8_t *out, size_t cap, size_t *outlen, const char *b64, size_t len);

/* Reads a text one '\n'-terminated line at a time. */
typedef struct ig_text_reader {
	const char *p, *end;
	int lineno;                  /* of the line last returned, from 1 */
} ig_text_reader;

void ig_text_reader_init(ig_text_reader *r, const char *text, size_t len);
/* The next line without its '\n'; false at the end of the text, or when
 * what is left has no '\n'. */
bool ig_text_line(ig_text_reader *r, const char **line, size_t *len);

#endif
