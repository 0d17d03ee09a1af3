/*
 * record.c: ledger frame encode/decode, record hash, TLV bodies, JSON view.
 *
 * Why this exists: the record layout (ig_record.h, docs/LEDGER.md) must have
 * exactly one implementation so the writer, the verifier, `show` and the
 * event stream can never disagree. Decode and hash sit on the verify hot
 * path, so they allocate nothing; only the JSON rendering allocates.
 *
 * Typed bodies are validated symmetrically: the encoder and the decoder run
 * the same per-field rule (field_check), so the writer cannot produce a
 * record the verifier later calls corrupt.
 */
#include "ig_record.h"
#include "ig_bank.h"
#include "ig_recspec.h"

#include "ig_crc32c.h"

#include <cJSON.h>
#include <stddef.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- frames -------------------------------------------------------------- */

const char *ig_frame_status_text(ig_frame_status st)
{
	switch (st) {
	case IG_FRAME_OK: return "ok";
	case IG_FRAME_SHORT: return "frame truncated (fewer bytes than its length says)";
	case IG_FRAME_BAD_MAGIC: return "bad frame magic (not the start of a record)";
	case IG_FRAME_BAD_LENGTH: return "frame length out of range";
	case IG_FRAME_BAD_CRC: return "frame checksum mismatch";
	case IG_FRAME_BAD_FLAGS: return "unknown frame flags";
	}
	return "unknown frame status";
}

void ig_record_hash(uint8_t out[IG_HASH_BYTES], const uint8_t *frame, size_t frame_len)
{
	static const uint8_t leaf_prefix = 0x00;
	crypto_generichash_state st;

	(void)ig_init(); /* selects libsodium's fastest BLAKE2b; cheap after the first call */
	crypto_generichash_init(&st, NULL, 0, IG_HASH_BYTES);
	crypto_generichash_update(&st, &leaf_prefix, 1);
	if (frame_len > 4)
		crypto_generichash_update(&st, frame, frame_len - 4);
	crypto_generichash_final(&st, out, IG_HASH_BYTES);
}

int ig_record_encode(uint8_t *out, size_t cap, ig_record *rec)
{
	if (!out || !rec || (rec->body_len > 0 && !rec->body))
		return IG_ERR_INVAL;
	if (rec->flags != 0)
		return IG_ERR_INVAL; /* no flags are defined; readers would reject the frame */
	if (rec->body_len > IG_REC_MAX_BODY)
		return IG_ERR_RANGE;
	size_t frame_len = (size_t)rec->body_len + IG_REC_OVERHEAD;
	if (cap < frame_len)
		return IG_ERR_RANGE;

	/* memmove: callers may build the body in place at out + 60. */
	if (rec->body_len > 0)
		memmove(out + IG_REC_HEADER_BYTES, rec->body, rec->body_len);
	memcpy(out, IG_REC_MAGIC, 4);
	ig_put_u32(out + 4, (uint32_t)frame_len);
	ig_put_u64(out + 8, rec->index);
	ig_put_u64(out + 16, rec->ts_ms);
	ig_put_u16(out + 24, rec->type);
	ig_put_u16(out + 26, rec->flags);
	memcpy(out + 28, rec->prev_hash, IG_HASH_BYTES);
	size_t crc_at = frame_len - 4;
	ig_put_u32(out + crc_at, ig_crc32c(0, out, crc_at));

	rec->frame_len = (uint32_t)frame_len;
	ig_record_hash(rec->hash, out, frame_len);
	return (int)frame_len;
}

ig_frame_status ig_record_decode(const uint8_t *buf, size_t len, ig_record *rec)
{
	/* A torn tail can end anywhere, so a prefix of the magic is "short", not
	 * "bad magic": only bytes that are present can disagree. */
	if (len == 0)
		return IG_FRAME_SHORT;
	size_t have = len < 4 ? len : 4;
	if (memcmp(buf, IG_REC_MAGIC, have) != 0)
		return IG_FRAME_BAD_MAGIC;
	if (len < 8)
		return IG_FRAME_SHORT;
	uint32_t frame_len = ig_get_u32(buf + 4);
	if (frame_len < IG_REC_OVERHEAD || frame_len > IG_REC_MAX_BODY + IG_REC_OVERHEAD)
		return IG_FRAME_BAD_LENGTH;
	if (len < frame_len)
		return IG_FRAME_SHORT;
	uint32_t crc_at = frame_len - 4;
	if (ig_crc32c(0, buf, crc_at) != ig_get_u32(buf + crc_at))
		return IG_FRAME_BAD_CRC;
	uint16_t flags = ig_get_u16(buf + 26);
	if (flags != 0)
		return IG_FRAME_BAD_FLAGS;

	rec->index = ig_get_u64(buf + 8);
	rec->ts_ms = ig_get_u64(buf + 16);
	rec->type = ig_get_u16(buf + 24);
	rec->flags = flags;
	memcpy(rec->prev_hash, buf + 28, IG_HASH_BYTES);
	rec->body = buf + IG_REC_HEADER_BYTES;
	rec->body_len = frame_len - IG_REC_OVERHEAD;
	rec->frame_len = frame_len;
	ig_record_hash(rec->hash, buf, frame_len);
	return IG_FRAME_OK;
}

/* ---- TLV ----------------------------------------------------------------- */

void ig_tlv_iter_init(ig_tlv_iter *it, const uint8_t *body, size_t len)
{
	it->p = body;
	it->end = body ? body + len : body;
}

int ig_tlv_next(ig_tlv_iter *it, uint8_t *tag, const uint8_t **val, uint16_t *vlen)
{
	if (it->p == it->end)
		return 0;
	size_t left = (size_t)(it->end - it->p);
	if (left < 3)
		return IG_ERR_CORRUPT;
	uint16_t n = ig_get_u16(it->p + 1);
	if (left - 3 < n)
		return IG_ERR_CORRUPT;
	*tag = it->p[0];
	*val = it->p + 3;
	*vlen = n;
	it->p += 3 + (size_t)n;
	return 1;
}

int ig_tlv_put(uint8_t *out, size_t cap, size_t *pos, uint8_t tag, const void *val, size_t vlen)
{
	if (vlen > UINT16_MAX || *pos > cap || cap - *pos < 3 + vlen)
		return IG_ERR_RANGE;
	if (vlen > 0 && !val)
		return IG_ERR_INVAL;
	uint8_t *p = out + *pos;
	p[0] = tag;
	ig_put_u16(p + 1, (uint16_t)vlen);
	if (vlen > 0)
		memmove(p + 3, val, vlen); /* val may already sit in out (re-framing in place) */
	*pos += 3 + vlen;
	return IG_OK;
}

/* ---- typed bodies ---------------------------------------------------------
 *
 * Every record type follows the same TLV rules: each known tag at most once,
 * required tags present, unknown tags ignored, and one set of checks per kind
 * of value. Each body is therefore described by a table of its fields, read by
 * one encoder, one decoder and one JSON renderer, so the rules live in one
 * place and a new record type is a new table rather than a new copy of the
 * loop. The tables' types are in ig_recspec.h, so bank.c describes its
 * records (32..35) the same way.
 */

static const ig_field_spec genesis_fields[] = {
	{.tag = IG_TAG_GENESIS_CLUSTER, .kind = IG_FIELD_ID, .name = "cluster", IG_SPEC_AT(ig_genesis, cluster)},
	{.tag = IG_TAG_GENESIS_CH_PK, .kind = IG_FIELD_BYTES, .name = "ch_pubkey", IG_SPEC_AT(ig_genesis, ch_pk)},
	{.tag = IG_TAG_GENESIS_VERSION, .kind = IG_FIELD_VERSION, .name = "version", IG_SPEC_AT(ig_genesis, version)},
};

static const ig_field_spec enroll_fields[] = {
	{.tag = IG_TAG_ENROLL_ID, .kind = IG_FIELD_ID, .name = "id", IG_SPEC_AT(ig_enroll, id)},
	{.tag = IG_TAG_ENROLL_ROLE, .kind = IG_FIELD_ROLE, .name = "role", IG_SPEC_AT(ig_enroll, role)},
	{.tag = IG_TAG_ENROLL_PK, .kind = IG_FIELD_BYTES, .name = "pubkey", IG_SPEC_AT(ig_enroll, pk)},
	{.tag = IG_TAG_ENROLL_BY, .kind = IG_FIELD_TEXT, .name = "by", IG_SPEC_AT(ig_enroll, by), .min = 1, .max = IG_BY_MAX},
	/* Only enrolments made through a join code carry this tag, so records
	 * written before join codes existed keep their exact bytes. At most
	 * once: a second code would make "which code did this consume"
	 * ambiguous. */
	{.tag = IG_TAG_ENROLL_JOIN_CODE, .kind = IG_FIELD_BYTES, .name = "join_code", IG_SPEC_AT(ig_enroll, join_code),
	 .optional = true, .present_off = offsetof(ig_enroll, has_join_code)},
};

static const ig_field_spec revoke_fields[] = {
	{.tag = IG_TAG_REVOKE_ID, .kind = IG_FIELD_ID, .name = "id", IG_SPEC_AT(ig_revoke, id)},
	{.tag = IG_TAG_REVOKE_REASON, .kind = IG_FIELD_TEXT, .name = "reason", IG_SPEC_AT(ig_revoke, reason), .min = 0,
	 .max = IG_REASON_MAX},
	{.tag = IG_TAG_REVOKE_BY, .kind = IG_FIELD_TEXT, .name = "by", IG_SPEC_AT(ig_revoke, by), .min = 1, .max = IG_BY_MAX},
};

/* The key-service records hold no secrets (the code hash, never the code;
 * the key id, never the key), so every field is shown in JSON. */
static const ig_field_spec join_code_fields[] = {
	{.tag = IG_TAG_JOIN_CODE_ID, .kind = IG_FIELD_BYTES, .name = "code_id", IG_SPEC_AT(ig_join_code_rec, code_id)},
	{.tag = IG_TAG_JOIN_CODE_HASH, .kind = IG_FIELD_BYTES, .name = "code_hash", IG_SPEC_AT(ig_join_code_rec, hash)},
	{.tag = IG_TAG_JOIN_CODE_ROLE, .kind = IG_FIELD_ROLE, .name = "role", IG_SPEC_AT(ig_join_code_rec, role)},
	{.tag = IG_TAG_JOIN_CODE_EXPIRES, .kind = IG_FIELD_U64, .name = "expires_at", IG_SPEC_AT(ig_join_code_rec, expires_at)},
	{.tag = IG_TAG_JOIN_CODE_BY, .kind = IG_FIELD_TEXT, .name = "by", IG_SPEC_AT(ig_join_code_rec, by), .min = 1,
	 .max = IG_BY_MAX},
};

static const ig_field_spec join_used_fields[] = {
	{.tag = IG_TAG_JOIN_USED_CODE_ID, .kind = IG_FIELD_BYTES, .name = "code_id", IG_SPEC_AT(ig_join_used, code_id)},
	{.tag = IG_TAG_JOIN_USED_ID, .kind = IG_FIELD_ID, .name = "id", IG_SPEC_AT(ig_join_used, id)},
};

/* Values 1 and 2 are IG_SUITE_AES256GCM and IG_SUITE_XCHACHA20POLY1305 (ig_aead.h). */
static const char *const suite_names[] = {"none", "aes256gcm", "xchacha20poly1305"};

static const ig_field_spec key_issued_fields[] = {
	{.tag = IG_TAG_KEY_ID, .kind = IG_FIELD_BYTES, .name = "key_id", IG_SPEC_AT(ig_key_issued, key_id)},
	{.tag = IG_TAG_KEY_A, .kind = IG_FIELD_ID, .name = "a", IG_SPEC_AT(ig_key_issued, a)},
	{.tag = IG_TAG_KEY_B, .kind = IG_FIELD_ID, .name = "b", IG_SPEC_AT(ig_key_issued, b)},
	{.tag = IG_TAG_KEY_EXPIRES, .kind = IG_FIELD_U64, .name = "expires_at", IG_SPEC_AT(ig_key_issued, expires_at)},
	{.tag = IG_TAG_KEY_SUITE, .kind = IG_FIELD_U8, .name = "suite", IG_SPEC_AT(ig_key_issued, suite), .min = 1, .max = 2,
	 .why = "must be one byte, 1 (aes256gcm) or 2 (xchacha20poly1305)", .value_names = suite_names},
};

static const char *const allowed_names[] = {"no", "yes", "unlisted"};

static const ig_field_spec attest_fields[] = {
	{.tag = IG_TAG_ATTEST_ID, .kind = IG_FIELD_ID, .name = "id", IG_SPEC_AT(ig_attest, id)},
	{.tag = IG_TAG_ATTEST_MEASUREMENT, .kind = IG_FIELD_BYTES, .name = "measurement", IG_SPEC_AT(ig_attest, measurement)},
	{.tag = IG_TAG_ATTEST_ALLOWED, .kind = IG_FIELD_U8, .name = "allowed", IG_SPEC_AT(ig_attest, allowed), .min = 0, .max = 2,
	 .why = "must be one byte, 0 (no), 1 (yes) or 2 (no list)", .value_names = allowed_names},
};

static const ig_body_spec genesis_body = IG_SPEC_BODY(IG_REC_GENESIS, "genesis", genesis_fields, ig_genesis);
static const ig_body_spec enroll_body = IG_SPEC_BODY(IG_REC_ENROLL, "enroll", enroll_fields, ig_enroll);
static const ig_body_spec revoke_body = IG_SPEC_BODY(IG_REC_REVOKE, "revoke", revoke_fields, ig_revoke);
static const ig_body_spec join_code_body = IG_SPEC_BODY(IG_REC_JOIN_CODE, "join_code", join_code_fields, ig_join_code_rec);
static const ig_body_spec join_used_body = IG_SPEC_BODY(IG_REC_JOIN_USED, "join_used", join_used_fields, ig_join_used);
static const ig_body_spec key_issued_body = IG_SPEC_BODY(IG_REC_KEY_ISSUED, "key_issued", key_issued_fields, ig_key_issued);
static const ig_body_spec attest_body = IG_SPEC_BODY(IG_REC_ATTEST, "attest", attest_fields, ig_attest);

static const ig_body_spec *const bodies[] = {
	&genesis_body, &enroll_body, &revoke_body, &join_code_body, &join_used_body, &key_issued_body, &attest_body,
};

/* Any decoded body fits here, so callers that only check need no allocation. */
typedef union any_body {
	ig_genesis genesis;
	ig_enroll enroll;
	ig_revoke revoke;
	ig_join_code_rec join_code;
	ig_join_used join_used;
	ig_key_issued key_issued;
	ig_attest attest;
} any_body;

static const ig_body_spec *body_for(uint16_t type)
{
	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
		if (bodies[i]->type == type)
			return bodies[i];
	return NULL;
}

/* The bank's record types (32..35) live in bank.c, next to the coin code
 * they serve; this file dispatches to it. */
const char *ig_record_type_name(uint16_t type)
{
	const ig_body_spec *b = body_for(type);
	const char *bank = b ? NULL : ig_bank_record_type_name(type);
	return b ? b->what : bank ? bank : "unknown";
}

/* Free text (reason, by) is shown in JSON and terminals: it must be valid
 * UTF-8 (shortest form, no surrogates) with no control characters. */
static bool text_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint8_t c = s[i];
		if (c < 0x20 || c == 0x7f)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t n;
		uint32_t cp, min;
		if ((c & 0xe0) == 0xc0) { n = 2; cp = c & 0x1f; min = 0x80; }
		else if ((c & 0xf0) == 0xe0) { n = 3; cp = c & 0x0f; min = 0x800; }
		else if ((c & 0xf8) == 0xf0) { n = 4; cp = c & 0x07; min = 0x10000; }
		else return false;
		if (len - i < n)
			return false;
		for (size_t k = 1; k < n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		if (cp >= 0x80 && cp < 0xa0)
			return false; /* C1 controls */
		i += n;
	}
	return true;
}

static int bad_field(const char *what, const char *field, const char *why, ig_error *err)
{
	return ig_error_set(err, IG_ERR_CORRUPT, "%s record: field '%s' is invalid (%s)", what, field, why);
}

/* The one rule per kind of field, applied to the value's wire bytes: the
 * decoder runs it on what it read and the encoder on what it is about to
 * write, so the writer cannot produce a body the verifier calls corrupt.
 * Returns IG_OK, or IG_ERR_CORRUPT with a message naming the field. */
static int field_check(const char *what, const ig_field_spec *f, const uint8_t *v, size_t vlen, ig_error *err)
{
	char why[64];
	switch (f->kind) {
	case IG_FIELD_ID:
		if (vlen < f->size && ig_id_valid((const char *)v, vlen))
			return IG_OK;
		return bad_field(what, f->name, "must be 1..64 chars of [A-Za-z0-9_.-]", err);
	case IG_FIELD_TEXT:
		if (vlen >= f->min && vlen <= f->max && vlen < f->size && text_valid(v, vlen))
			return IG_OK;
		snprintf(why, sizeof why, "must be %u..%u bytes of printable UTF-8", f->min, f->max);
		return bad_field(what, f->name, why, err);
	case IG_FIELD_BYTES:
	case IG_FIELD_U64:
		if (vlen != f->size) {
			snprintf(why, sizeof why, "must be %zu bytes", f->size);
			return bad_field(what, f->name, why, err);
		}
		if (f->kind == IG_FIELD_U64 && ig_get_u64(v) < f->min)
			return bad_field(what, f->name, f->why, err);
		return IG_OK;
	case IG_FIELD_ROLE:
		if (vlen == 1 && v[0] > IG_ROLE_NONE && v[0] < IG_ROLE_COUNT)
			return IG_OK;
		return bad_field(what, f->name, "must be one byte, 1..4", err);
	case IG_FIELD_U8:
		if (vlen == 1 && v[0] >= f->min && v[0] <= f->max)
			return IG_OK;
		return bad_field(what, f->name, f->why, err);
	case IG_FIELD_VERSION: {
		if (vlen != 2)
			return bad_field(what, f->name, "must be a 2-byte integer", err);
		unsigned version = ig_get_u16(v);
		if (version == 0)
			return bad_field(what, f->name, "0 is not a format version", err);
		if (version > IG_FORMAT_VERSION)
			return ig_error_set(err, IG_ERR_CORRUPT,
			                    "%s record: ledger format version %u is newer than this iotguard "
			                    "understands (%u); upgrade iotguard",
			                    what, version, IG_FORMAT_VERSION);
		return IG_OK;
	}
	case IG_FIELD_WORD:
		for (const char *const *w = f->value_names; *w; w++)
			if (strlen(*w) == vlen && memcmp(*w, v, vlen) == 0)
				return IG_OK;
		return bad_field(what, f->name, f->why, err);
	case IG_FIELD_HASHES:
		if (vlen % IG_HASH_BYTES == 0 && vlen / IG_HASH_BYTES >= f->min && vlen / IG_HASH_BYTES <= f->max &&
		    vlen <= f->size)
			return IG_OK;
		snprintf(why, sizeof why, "must be %u..%u hashes of %d bytes", f->min, f->max, IG_HASH_BYTES);
		return bad_field(what, f->name, why, err);
	}
	return bad_field(what, f->name, "unknown kind of field", err);
}

/* Points *v at the wire bytes of the field stored at member (in the record
 * struct or, for integers, in tmp) and returns their length. */
static size_t field_wire(const ig_field_spec *f, const uint8_t *rec, uint8_t tmp[8], const uint8_t **v)
{
	const uint8_t *member = rec + f->off;
	*v = member;
	switch (f->kind) {
	case IG_FIELD_ID:
	case IG_FIELD_TEXT:
	case IG_FIELD_WORD:
		return strnlen((const char *)member, f->size);
	case IG_FIELD_HASHES:
		/* a count past the array gives a length field_check refuses */
		return (size_t)*(const uint32_t *)(rec + f->count_off) * IG_HASH_BYTES;
	case IG_FIELD_BYTES:
		return f->size;
	case IG_FIELD_U64:
		ig_put_u64(tmp, *(const uint64_t *)member);
		*v = tmp;
		return 8;
	case IG_FIELD_ROLE: {
		/* An enum holds more than a byte: an out-of-range role becomes
		 * NONE here, so field_check refuses it instead of truncating it. */
		int role = (int)*(const ig_role *)member;
		tmp[0] = (role > IG_ROLE_NONE && role < IG_ROLE_COUNT) ? (uint8_t)role : (uint8_t)IG_ROLE_NONE;
		*v = tmp;
		return 1;
	}
	case IG_FIELD_U8:
		return 1;
	case IG_FIELD_VERSION:
		ig_put_u16(tmp, *(const uint16_t *)member);
		*v = tmp;
		return 2;
	}
	return 0;
}

/* Stores wire bytes that passed field_check into the member. */
static void field_store(const ig_field_spec *f, const uint8_t *v, size_t vlen, uint8_t *rec)
{
	uint8_t *member = rec + f->off;
	switch (f->kind) {
	case IG_FIELD_ID:
	case IG_FIELD_TEXT:
	case IG_FIELD_WORD:
		memcpy(member, v, vlen);
		member[vlen] = '\0';
		break;
	case IG_FIELD_HASHES:
		memcpy(member, v, vlen);
		*(uint32_t *)(rec + f->count_off) = (uint32_t)(vlen / IG_HASH_BYTES);
		break;
	case IG_FIELD_BYTES:
		memcpy(member, v, f->size);
		break;
	case IG_FIELD_U64:
		*(uint64_t *)member = ig_get_u64(v);
		break;
	case IG_FIELD_ROLE:
		*(ig_role *)member = (ig_role)v[0];
		break;
	case IG_FIELD_U8:
		*member = v[0];
		break;
	case IG_FIELD_VERSION:
		*(uint16_t *)member = ig_get_u16(v);
		break;
	}
}

static bool field_present(const ig_field_spec *f, const uint8_t *rec)
{
	return !f->optional || *(const bool *)(rec + f->present_off);
}

int ig_recspec_encode(const ig_body_spec *b, const void *rec, uint8_t *out, size_t cap)
{
	const uint8_t *base = rec;
	uint8_t tmp[8];
	const uint8_t *v;
	size_t vlen;

	/* Refuse the whole body before writing any of it. */
	for (size_t i = 0; i < b->nfields; i++) {
		const ig_field_spec *f = &b->fields[i];
		if (!field_present(f, base))
			continue;
		vlen = field_wire(f, base, tmp, &v);
		if (field_check(b->what, f, v, vlen, NULL) != IG_OK)
			return IG_ERR_INVAL;
	}
	size_t pos = 0;
	for (size_t i = 0; i < b->nfields; i++) {
		const ig_field_spec *f = &b->fields[i];
		if (!field_present(f, base))
			continue;
		vlen = field_wire(f, base, tmp, &v);
		int rc = ig_tlv_put(out, cap, &pos, f->tag, v, vlen);
		if (rc < 0)
			return rc;
	}
	return (int)pos;
}

int ig_recspec_decode(const ig_body_spec *b, const uint8_t *body, size_t len, void *rec, ig_error *err)
{
	uint8_t *base = rec;
	uint32_t seen = 0; /* bit i: fields[i] was present */
	ig_tlv_iter it;
	uint8_t tag;
	const uint8_t *v;
	uint16_t vlen;
	int rc;

	memset(rec, 0, b->size);
	ig_tlv_iter_init(&it, body, len);
	while ((rc = ig_tlv_next(&it, &tag, &v, &vlen)) == 1) {
		size_t i = 0;
		while (i < b->nfields && b->fields[i].tag != tag)
			i++;
		if (i == b->nfields)
			continue; /* unknown tags are for later versions */
		const ig_field_spec *f = &b->fields[i];
		if (seen & (1u << i))
			return ig_error_set(err, IG_ERR_CORRUPT, "%s record: field '%s' appears twice", b->what, f->name);
		seen |= 1u << i;
		if (field_check(b->what, f, v, vlen, err) != IG_OK)
			return IG_ERR_CORRUPT;
		field_store(f, v, vlen, base);
		if (f->optional)
			*(bool *)(base + f->present_off) = true;
	}
	if (rc < 0)
		return ig_error_set(err, IG_ERR_CORRUPT, "%s record: body TLV runs past the end of the body", b->what);
	for (size_t i = 0; i < b->nfields; i++)
		if (!b->fields[i].optional && !(seen & (1u << i)))
			return ig_error_set(err, IG_ERR_CORRUPT, "%s record: required field '%s' is missing", b->what,
			                    b->fields[i].name);
	return IG_OK;
}

int ig_genesis_encode(uint8_t *out, size_t cap, const ig_genesis *g)
{
	return ig_recspec_encode(&genesis_body, g, out, cap);
}

int ig_genesis_decode(const uint8_t *body, size_t len, ig_genesis *g, ig_error *err)
{
	return ig_recspec_decode(&genesis_body, body, len, g, err);
}

int ig_enroll_encode(uint8_t *out, size_t cap, const ig_enroll *e)
{
	return ig_recspec_encode(&enroll_body, e, out, cap);
}

int ig_enroll_decode(const uint8_t *body, size_t len, ig_enroll *e, ig_error *err)
{
	return ig_recspec_decode(&enroll_body, body, len, e, err);
}

int ig_revoke_encode(uint8_t *out, size_t cap, const ig_revoke *r)
{
	return ig_recspec_encode(&revoke_body, r, out, cap);
}

int ig_revoke_decode(const uint8_t *body, size_t len, ig_revoke *r, ig_error *err)
{
	return ig_recspec_decode(&revoke_body, body, len, r, err);
}

int ig_join_code_encode(uint8_t *out, size_t cap, const ig_join_code_rec *j)
{
	return ig_recspec_encode(&join_code_body, j, out, cap);
}

int ig_join_code_decode(const uint8_t *body, size_t len, ig_join_code_rec *j, ig_error *err)
{
	return ig_recspec_decode(&join_code_body, body, len, j, err);
}

int ig_join_used_encode(uint8_t *out, size_t cap, const ig_join_used *j)
{
	return ig_recspec_encode(&join_used_body, j, out, cap);
}

int ig_join_used_decode(const uint8_t *body, size_t len, ig_join_used *j, ig_error *err)
{
	return ig_recspec_decode(&join_used_body, body, len, j, err);
}

int ig_key_issued_encode(uint8_t *out, size_t cap, const ig_key_issued *k)
{
	return ig_recspec_encode(&key_issued_body, k, out, cap);
}

int ig_key_issued_decode(const uint8_t *body, size_t len, ig_key_issued *k, ig_error *err)
{
	return ig_recspec_decode(&key_issued_body, body, len, k, err);
}

int ig_attest_encode(uint8_t *out, size_t cap, const ig_attest *a)
{
	return ig_recspec_encode(&attest_body, a, out, cap);
}

int ig_attest_decode(const uint8_t *body, size_t len, ig_attest *a, ig_error *err)
{
	return ig_recspec_decode(&attest_body, body, len, a, err);
}

int ig_record_body_check(const ig_record *rec, ig_error *err)
{
	const ig_body_spec *b = body_for(rec->type);
	any_body u;
	return b ? ig_recspec_decode(b, rec->body, rec->body_len, &u, err) : ig_bank_record_check(rec, err);
}

/* ---- JSON view ----------------------------------------------------------- */

static bool add_hex(cJSON *obj, const char *name, const uint8_t *bin, size_t len)
{
	char *hex = malloc(2 * len + 1);
	if (!hex)
		return false;
	ig_hex_encode(hex, bin, len);
	bool ok = cJSON_AddStringToObject(obj, name, hex) != NULL;
	free(hex);
	return ok;
}

/* Adds one decoded field; false only when out of memory. */
static bool add_field(cJSON *obj, const ig_field_spec *f, const uint8_t *rec)
{
	const uint8_t *member = rec + f->off;
	switch (f->kind) {
	case IG_FIELD_ID:
	case IG_FIELD_TEXT:
	case IG_FIELD_WORD:
		return cJSON_AddStringToObject(obj, f->name, (const char *)member) != NULL;
	case IG_FIELD_HASHES: {
		uint32_t count = *(const uint32_t *)(rec + f->count_off);
		cJSON *list = cJSON_AddNumberToObject(obj, "count", count) ? cJSON_AddArrayToObject(obj, f->name) : NULL;
		for (uint32_t i = 0; list && i < count; i++) {
			char hex[2 * IG_HASH_BYTES + 1];
			ig_hex_encode(hex, member + (size_t)i * IG_HASH_BYTES, IG_HASH_BYTES);
			cJSON *s = cJSON_CreateString(hex);
			if (!s || !cJSON_AddItemToArray(list, s)) {
				cJSON_Delete(s);
				return false;
			}
		}
		return list != NULL;
	}
	case IG_FIELD_BYTES:
		return add_hex(obj, f->name, member, f->size);
	case IG_FIELD_U64:
		return cJSON_AddNumberToObject(obj, f->name, (double)*(const uint64_t *)member) != NULL;
	case IG_FIELD_ROLE:
		return cJSON_AddStringToObject(obj, f->name, ig_role_name(*(const ig_role *)member)) != NULL;
	case IG_FIELD_U8:
		return cJSON_AddStringToObject(obj, f->name, f->value_names[*member]) != NULL;
	case IG_FIELD_VERSION:
		return cJSON_AddNumberToObject(obj, f->name, *(const uint16_t *)member) != NULL;
	}
	return false;
}

bool ig_recspec_json(cJSON *obj, const ig_body_spec *b, const void *rec)
{
	const uint8_t *base = rec;
	for (size_t i = 0; i < b->nfields; i++) {
		const ig_field_spec *f = &b->fields[i];
		if (field_present(f, base) && !add_field(obj, f, base))
			return false;
	}
	return true;
}

/* Adds the typed fields of a known record type. Returns false if the body
 * does not decode, so the caller can fall back to the raw body. */
static bool add_typed_fields(cJSON *obj, const ig_record *rec, bool *oom)
{
	const ig_body_spec *b = body_for(rec->type);
	any_body u;
	*oom = false;
	if (!b) {
		int rc = ig_bank_record_json(obj, rec);
		*oom = rc == IG_ERR_NOMEM;
		return rc == IG_OK || rc == IG_ERR_NOMEM;
	}
	if (ig_recspec_decode(b, rec->body, rec->body_len, &u, NULL) != IG_OK)
		return false;
	*oom = !ig_recspec_json(obj, b, &u);
	return true;
}

char *ig_record_to_json(const ig_record *rec)
{
	if (!rec || (rec->body_len > 0 && !rec->body))
		return NULL;
	cJSON *obj = cJSON_CreateObject();
	if (!obj)
		return NULL;
	char *text = NULL;
	bool known = strcmp(ig_record_type_name(rec->type), "unknown") != 0;
	bool oom = false;

	/* Numbers are doubles in cJSON; indexes and millisecond timestamps stay
	 * far below 2^53, so they print exactly. */
	if (!cJSON_AddNumberToObject(obj, "index", (double)rec->index) ||
	    !cJSON_AddNumberToObject(obj, "ts", (double)rec->ts_ms) ||
	    !cJSON_AddStringToObject(obj, "type", ig_record_type_name(rec->type)))
		goto out;
	if (!known && !cJSON_AddNumberToObject(obj, "type_code", rec->type))
		goto out;
	if (!add_hex(obj, "hash", rec->hash, IG_HASH_BYTES) ||
	    !add_hex(obj, "prev", rec->prev_hash, IG_HASH_BYTES))
		goto out;
	if (!add_typed_fields(obj, rec, &oom)) {
		if (known && !cJSON_AddStringToObject(obj, "error", "body does not decode"))
			goto out;
		if (!add_hex(obj, "body", rec->body, rec->body_len))
			goto out;
	} else if (oom) {
		goto out;
	}
	text = cJSON_PrintUnformatted(obj);
out:
	cJSON_Delete(obj);
	return text;
}
