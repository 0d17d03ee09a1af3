/*
 * record.c: ledger frame encode/decode, record hash, typed bodies, JSON view.
 *
 * Why this exists: the record layout (ig_record.h, docs/LEDGER.md) must have
 * exactly one implementation so the writer, the verifier, `show` and the
 * event stream can never disagree. Decode and hash sit on the verify hot
 * path, so they allocate nothing; only the JSON rendering allocates.
 *
 * Bodies are not coded here: every body layout is a table in recspecs.c and
 * one codec (recspec.c) reads them all, bank records included, so this file
 * needs nothing from bank.c.
 */
#include "ig_record.h"
#include "ig_recspec.h"

#include "ig_crc32c.h"

#include <cJSON.h>
#include <stddef.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* ---- frames -------------------------------------------------------------- */

const char *ig_record_frame_status_text(ig_frame_status st)
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

/* ---- typed bodies (tables: recspecs.c, codec: recspec.c) ------------------ */

const char *ig_record_type_name(uint16_t type)
{
	const ig_body_spec *b = ig_recspec_for(type);
	return b ? b->what : "unknown";
}

int ig_record_genesis_encode(uint8_t *out, size_t cap, const ig_genesis *g)
{
	return ig_recspec_encode(&ig_recspec_genesis, g, out, cap);
}

int ig_record_genesis_decode(const uint8_t *body, size_t len, ig_genesis *g, ig_error *err)
{
	return ig_recspec_decode(&ig_recspec_genesis, body, len, g, err);
}

int ig_record_format_encode(uint8_t *out, size_t cap, const ig_format_rec *f)
{
	return ig_recspec_encode(&ig_recspec_format, f, out, cap);
}

int ig_record_format_decode(const uint8_t *body, size_t len, ig_format_rec *f, ig_error *err)
{
	return ig_recspec_decode(&ig_recspec_format, body, len, f, err);
}

int ig_record_enroll_encode(uint8_t *out, size_t cap, const ig_enroll *e)
{
	return ig_recspec_encode(&ig_recspec_enroll, e, out, cap);
}

int ig_record_enroll_decode(const uint8_t *body, size_t len, ig_enroll *e, ig_error *err)
{
	return ig_recspec_decode(&ig_recspec_enroll, body, len, e, err);
}

int ig_record_revoke_encode(uint8_t *out, size_t cap, const ig_revoke *r)
{
	return ig_recspec_encode(&ig_recspec_revoke, r, out, cap);
}

int ig_record_revoke_decode(const uint8_t *body, size_t len, ig_revoke *r, ig_error *err)
{
	return ig_recspec_decode(&ig_recspec_revoke, body, len, r, err);
}

int ig_record_join_code_encode(uint8_t *out, size_t cap, const ig_join_code_rec *j)
{
	return ig_recspec_encode(&ig_recspec_join_code, j, out, cap);
}

int ig_record_join_code_decode(const uint8_t *body, size_t len, ig_join_code_rec *j, ig_error *err)
{
	return ig_recspec_decode(&ig_recspec_join_code, body, len, j, err);
}

int ig_record_join_used_encode(uint8_t *out, size_t cap, const ig_join_used *j)
{
	return ig_recspec_encode(&ig_recspec_join_used, j, out, cap);
}

int ig_record_join_used_decode(const uint8_t *body, size_t len, ig_join_used *j, ig_error *err)
{
	return ig_recspec_decode(&ig_recspec_join_used, body, len, j, err);
}

int ig_record_key_issued_encode(uint8_t *out, size_t cap, const ig_key_issued *k)
{
	return ig_recspec_encode(&ig_recspec_key_issued, k, out, cap);
}

int ig_record_key_issued_decode(const uint8_t *body, size_t len, ig_key_issued *k, ig_error *err)
{
	return ig_recspec_decode(&ig_recspec_key_issued, body, len, k, err);
}

int ig_record_attest_encode(uint8_t *out, size_t cap, const ig_attest *a)
{
	return ig_recspec_encode(&ig_recspec_attest, a, out, cap);
}

int ig_record_attest_decode(const uint8_t *body, size_t len, ig_attest *a, ig_error *err)
{
	return ig_recspec_decode(&ig_recspec_attest, body, len, a, err);
}

#define IG_RECORD_CODEC(name, spec, type)                                                    \
	int ig_record_##name##_encode(uint8_t *out, size_t cap, const type *c)                   \
	{                                                                                        \
		return c ? ig_recspec_encode(&spec, c, out, cap) : IG_ERR_INVAL;                     \
	}                                                                                        \
	int ig_record_##name##_decode(const uint8_t *body, size_t len, type *c, ig_error *err)   \
	{                                                                                        \
		return ig_recspec_decode(&spec, body, len, c, err);                                  \
	}

IG_RECORD_CODEC(custody_epoch, ig_recspec_custody_epoch, ig_custody_epoch_rec)
IG_RECORD_CODEC(custody_active, ig_recspec_custody_active, ig_custody_active_rec)
IG_RECORD_CODEC(custody_bad_share, ig_recspec_custody_bad_share, ig_custody_bad_share_rec)
IG_RECORD_CODEC(custody_sealed, ig_recspec_custody_sealed, ig_custody_sealed_rec)
IG_RECORD_CODEC(kp_epoch, ig_recspec_kp_epoch, ig_kp_epoch_rec)
IG_RECORD_CODEC(kp_ring, ig_recspec_kp_ring, ig_kp_ring_rec)
IG_RECORD_CODEC(kp_compromised, ig_recspec_kp_compromised, ig_kp_compromised_rec)

int ig_record_body_check(const ig_record *rec, ig_error *err)
{
	const ig_body_spec *b = ig_recspec_for(rec->type);
	return b ? ig_recspec_check(b, rec->body, rec->body_len, err) : IG_OK;
}

/* ---- JSON view ----------------------------------------------------------- */

/* Adds the typed fields of a known record type. Returns false if the body
 * does not decode, so the caller can fall back to the raw body. */
static bool add_typed_fields(cJSON *obj, const ig_record *rec, bool *oom)
{
	const ig_body_spec *b = ig_recspec_for(rec->type);
	*oom = false;
	if (!b)
		return false;
	int rc = ig_recspec_body_json(obj, b, rec->body, rec->body_len);
	*oom = rc == IG_ERR_NOMEM;
	return rc == IG_OK || rc == IG_ERR_NOMEM;
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
	if (!ig_recspec_json_hex(obj, "hash", rec->hash, IG_HASH_BYTES) ||
	    !ig_recspec_json_hex(obj, "prev", rec->prev_hash, IG_HASH_BYTES))
		goto out;
	if (!add_typed_fields(obj, rec, &oom)) {
		if (known && !cJSON_AddStringToObject(obj, "error", "body does not decode"))
			goto out;
		if (!ig_recspec_json_hex(obj, "body", rec->body, rec->body_len))
			goto out;
	} else if (oom) {
		goto out;
	}
	text = cJSON_PrintUnformatted(obj);
out:
	cJSON_Delete(obj);
	return text;
}
