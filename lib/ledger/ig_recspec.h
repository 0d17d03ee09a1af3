/*
 * ig_recspec.h: the table-driven TLV body codec, shared inside lib/ only.
 *
 * Why this exists: every ledger record body follows the same TLV rules
 * (each known tag at most once, required tags present, unknown tags
 * ignored, one check per kind of value). recspec.c is the one encoder,
 * decoder and JSON renderer; recspecs.c holds every body's table, in the
 * order of docs/LEDGER.md section 7. record.c and bank.c only call in, so
 * neither needs the other. Not a public contract: only the C files in lib/
 * include it, and the unit test that holds the tables to the document.
 */
#ifndef IG_RECSPEC_H
#define IG_RECSPEC_H

#include "ig_common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;

typedef enum ig_field_kind {
	IG_FIELD_ID,       /* char[]: identity id or cluster name, 1..64 of [A-Za-z0-9_.-] */
	IG_FIELD_TEXT,     /* char[]: printable UTF-8 of min..max bytes */
	IG_FIELD_BYTES,    /* uint8_t[size]: exactly size bytes, any value */
	IG_FIELD_U64,      /* uint64_t: 8 bytes; at least min (then why says so) */
	IG_FIELD_ROLE,     /* ig_role: one byte, 1..5 */
	IG_FIELD_U8,       /* uint8_t: one byte, min..max, shown in JSON by name */
	IG_FIELD_VERSION,  /* uint16_t: ledger format version, 1..IG_FORMAT_VERSION */
	IG_FIELD_WORD,     /* char[]: exactly one of the NULL-terminated value_names; why says which */
	IG_FIELD_HASHES,   /* uint8_t[][IG_HASH_BYTES]: min..max hashes, their number in the
	                    * uint32_t at count_off; JSON: "count" (unless no_count) then an array of hex */
	IG_FIELD_IDS,      /* char[][IG_ID_MAX + 1]: min..max ids, each on the wire as its length
	                    * (u8) then its bytes; their number in the uint32_t at count_off;
	                    * JSON: an array of strings */
	IG_FIELD_U32,      /* uint32_t: 4 bytes, min..max (then why says so) */
	IG_FIELD_U32S,     /* uint32_t[]: min..max 4-byte integers, strictly ascending; their
	                    * number in the uint32_t at count_off; JSON: an array of numbers */
} ig_field_kind;

typedef struct ig_field_spec {
	uint8_t tag;
	ig_field_kind kind;
	const char *name;                 /* named in error messages; the JSON key */
	size_t off, size;                 /* the member in the record struct */
	unsigned min, max;                /* TEXT: length bounds; U8, U32: value bounds; HASHES, IDS, U32S: count bounds */
	const char *why;                  /* U8, WORD, U64 with min: what a valid value is */
	const char *const *value_names;   /* U8: JSON name of each value (NULL: a number); WORD: the allowed words */
	bool optional;                    /* may be absent (still at most once); */
	size_t present_off;               /* then this bool member says if it was there */
	size_t count_off;                 /* HASHES, IDS, U32S: the uint32_t count member */
	bool no_count;                    /* HASHES: no "count" key in JSON (another field says it) */
} ig_field_spec;

typedef struct ig_body_spec {
	uint16_t type;
	const char *what;                 /* the type's name; opens every error message */
	const ig_field_spec *fields;
	size_t nfields;                   /* at most 32: the decoder keeps one bit per field */
	size_t size;                      /* sizeof the record struct */
	/* Rules across fields (e.g. a count that another field fixes), run on a
	 * struct whose every field passed its own rule: by the encoder before it
	 * writes and by the decoder after it reads. NULL: none. IG_OK or
	 * IG_ERR_CORRUPT naming the rule. */
	int (*check)(const void *rec, ig_error *err);
} ig_body_spec;

#define IG_SPEC_AT(rec_struct, member) \
	.off = offsetof(rec_struct, member), .size = sizeof(((rec_struct *)0)->member)
#define IG_SPEC_BODY(type_code, type_name, table, rec_struct)                                      \
	{ .type = type_code, .what = type_name, .fields = table, .nfields = sizeof table / sizeof table[0], \
	  .size = sizeof(rec_struct) }

/* Table order is encoding order, JSON key order and the order in which
 * missing fields are reported. */

/* Encodes rec (the struct b describes); IG_ERR_INVAL if any field breaks
 * its rule (nothing is written then), IG_ERR_RANGE if cap is too small,
 * else the body length. */
int ig_recspec_encode(const ig_body_spec *b, const void *rec, uint8_t *out, size_t cap);
/* Decodes into rec (zeroed first); IG_ERR_CORRUPT naming the field. */
int ig_recspec_decode(const ig_body_spec *b, const uint8_t *body, size_t len, void *rec, ig_error *err);
/* Adds the fields of a decoded rec to obj; false only when out of memory. */
bool ig_recspec_json(struct cJSON *obj, const ig_body_spec *b, const void *rec);

/* Every record struct is at most this many bytes (recspecs.c asserts it), so
 * a body can be checked or rendered with no allocation. */
#define IG_RECSPEC_REC_MAX 25600

/* Decodes a body into scratch space only to check it: IG_OK, or
 * IG_ERR_CORRUPT naming the field. */
int ig_recspec_check(const ig_body_spec *b, const uint8_t *body, size_t len, ig_error *err);
/* Decodes a body and adds its fields to obj: IG_OK, IG_ERR_CORRUPT (body
 * does not decode; obj untouched) or IG_ERR_NOMEM. */
int ig_recspec_body_json(struct cJSON *obj, const ig_body_spec *b, const uint8_t *body, size_t len);
/* Adds "name": hex of bin[0..len) to obj; false only when out of memory. */
bool ig_recspec_json_hex(struct cJSON *obj, const char *name, const uint8_t *bin, size_t len);

/* ---- the tables (recspecs.c), docs/LEDGER.md section 7 -------------------- */

extern const ig_body_spec ig_recspec_genesis;     /* 7.1 */
extern const ig_body_spec ig_recspec_enroll;      /* 7.2 */
extern const ig_body_spec ig_recspec_revoke;      /* 7.3 */
extern const ig_body_spec ig_recspec_format;      /* 7.12 */
extern const ig_body_spec ig_recspec_join_code;   /* 7.4 */
extern const ig_body_spec ig_recspec_join_used;   /* 7.5 */
extern const ig_body_spec ig_recspec_key_issued;  /* 7.6 */
extern const ig_body_spec ig_recspec_attest;      /* 7.7 */
extern const ig_body_spec ig_recspec_credit;      /* 7.8 */
extern const ig_body_spec ig_recspec_mint;        /* 7.9 */
extern const ig_body_spec ig_recspec_redeem;      /* 7.10 */
extern const ig_body_spec ig_recspec_refund;      /* 7.11 */
extern const ig_body_spec ig_recspec_custody_epoch;     /* 7.13 */
extern const ig_body_spec ig_recspec_custody_active;    /* 7.14 */
extern const ig_body_spec ig_recspec_custody_bad_share; /* 7.15 */
extern const ig_body_spec ig_recspec_custody_sealed;    /* 7.16 */
extern const ig_body_spec ig_recspec_kp_epoch;          /* 7.17 */
extern const ig_body_spec ig_recspec_kp_ring;           /* 7.18 */
extern const ig_body_spec ig_recspec_kp_compromised;    /* 7.19 */

/* The table for a record type, or NULL for a type with no typed body. */
const ig_body_spec *ig_recspec_for(uint16_t type);

#endif
