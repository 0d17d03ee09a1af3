/*
 * record.c: ledger frame encode/decode, record hash, TLV bodies, JSON view.
 *
 * Why this exists: the record layout (ig_record.h, docs/LEDGER.md) must have
 * exactly one implementation so the writer, the verifier, `show` and the
 * event stream can never disagree. Decode and hash sit on the verify hot
 * path, so they allocate nothing; only the JSON rendering allocates.
 *
 * Typed bodies are validated symmetrically: an encoder refuses any field its
 * decoder would reject, so the writer cannot produce a record the verifier
 * later calls corrupt.
 */
#include "ig_record.h"

#include "ig_crc32c.h"

#include <cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- frames -------------------------------------------------------------- */

const char *ig_record_type_name(uint16_t type)
{
	switch (type) {
	case IG_REC_GENESIS: return "genesis";
	case IG_REC_ENROLL: return "enroll";
	case IG_REC_REVOKE: return "revoke";
	default: return "unknown";
	}
}

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

/* ---- field rules shared by encoders and decoders ------------------------- */

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

static bool by_valid(const char *s, size_t len)
{
	return len >= 1 && len <= IG_BY_MAX && text_valid((const uint8_t *)s, len);
}

static bool reason_valid(const char *s, size_t len)
{
	return len <= IG_REASON_MAX && text_valid((const uint8_t *)s, len);
}

/* Tracks which required tags were seen, to enforce "exactly once". */
typedef struct seen_set {
	uint32_t bits;
} seen_set;

static int seen_mark(seen_set *s, uint8_t tag, const char *what, const char *field, ig_error *err)
{
	uint32_t bit = 1u << tag;
	if (s->bits & bit)
		return ig_error_set(err, IG_ERR_CORRUPT, "%s record: field '%s' appears twice", what, field);
	s->bits |= bit;
	return IG_OK;
}

static int copy_string(char *dst, size_t dstcap, const uint8_t *v, uint16_t vlen)
{
	if ((size_t)vlen >= dstcap)
		return IG_ERR_RANGE;
	memcpy(dst, v, vlen);
	dst[vlen] = '\0';
	return IG_OK;
}

static int missing(const char *what, const char *field, ig_error *err)
{
	return ig_error_set(err, IG_ERR_CORRUPT, "%s record: required field '%s' is missing", what, field);
}

static int bad_field(const char *what, const char *field, const char *why, ig_error *err)
{
	return ig_error_set(err, IG_ERR_CORRUPT, "%s record: field '%s' is invalid (%s)", what, field, why);
}

static int truncated_tlv(const char *what, ig_error *err)
{
	return ig_error_set(err, IG_ERR_CORRUPT, "%s record: body TLV runs past the end of the body", what);
}

/* ---- genesis ------------------------------------------------------------- */

int ig_genesis_encode(uint8_t *out, size_t cap, const ig_genesis *g)
{
	size_t clen = strnlen(g->cluster, sizeof g->cluster);
	if (!ig_id_valid(g->cluster, clen))
		return IG_ERR_INVAL;
	if (g->version == 0 || g->version > IG_FORMAT_VERSION)
		return IG_ERR_INVAL;
	uint8_t ver[2];
	ig_put_u16(ver, g->version);
	size_t pos = 0;
	int rc;
	if ((rc = ig_tlv_put(out, cap, &pos, IG_TAG_GENESIS_CLUSTER, g->cluster, clen)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_GENESIS_CH_PK, g->ch_pk, IG_PK_BYTES)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_GENESIS_VERSION, ver, 2)) < 0)
		return rc;
	return (int)pos;
}

int ig_genesis_decode(const uint8_t *body, size_t len, ig_genesis *g, ig_error *err)
{
	static const char what[] = "genesis";
	seen_set seen = {0};
	ig_tlv_iter it;
	uint8_t tag;
	const uint8_t *v;
	uint16_t vlen;
	int rc;

	memset(g, 0, sizeof *g);
	ig_tlv_iter_init(&it, body, len);
	while ((rc = ig_tlv_next(&it, &tag, &v, &vlen)) == 1) {
		switch (tag) {
		case IG_TAG_GENESIS_CLUSTER:
			if (seen_mark(&seen, tag, what, "cluster", err) < 0)
				return IG_ERR_CORRUPT;
			if (!ig_id_valid((const char *)v, vlen) ||
			    copy_string(g->cluster, sizeof g->cluster, v, vlen) < 0)
				return bad_field(what, "cluster", "must be 1..64 chars of [A-Za-z0-9_.-]", err);
			break;
		case IG_TAG_GENESIS_CH_PK:
			if (seen_mark(&seen, tag, what, "ch_pubkey", err) < 0)
				return IG_ERR_CORRUPT;
			if (vlen != IG_PK_BYTES)
				return bad_field(what, "ch_pubkey", "must be 32 bytes", err);
			memcpy(g->ch_pk, v, IG_PK_BYTES);
			break;
		case IG_TAG_GENESIS_VERSION:
			if (seen_mark(&seen, tag, what, "version", err) < 0)
				return IG_ERR_CORRUPT;
			if (vlen != 2)
				return bad_field(what, "version", "must be a 2-byte integer", err);
			g->version = ig_get_u16(v);
			if (g->version == 0)
				return bad_field(what, "version", "0 is not a format version", err);
			if (g->version > IG_FORMAT_VERSION)
				return ig_error_set(err, IG_ERR_CORRUPT,
				                    "genesis record: ledger format version %u is newer than this "
				                    "iotguard understands (%u); upgrade iotguard",
				                    g->version, IG_FORMAT_VERSION);
			break;
		default:
			break; /* unknown tags are for later versions */
		}
	}
	if (rc < 0)
		return truncated_tlv(what, err);
	if (!(seen.bits & (1u << IG_TAG_GENESIS_CLUSTER)))
		return missing(what, "cluster", err);
	if (!(seen.bits & (1u << IG_TAG_GENESIS_CH_PK)))
		return missing(what, "ch_pubkey", err);
	if (!(seen.bits & (1u << IG_TAG_GENESIS_VERSION)))
		return missing(what, "version", err);
	return IG_OK;
}

/* ---- enroll -------------------------------------------------------------- */

int ig_enroll_encode(uint8_t *out, size_t cap, const ig_enroll *e)
{
	size_t idlen = strnlen(e->id, sizeof e->id);
	size_t bylen = strnlen(e->by, sizeof e->by);
	if (!ig_id_valid(e->id, idlen) || !by_valid(e->by, bylen))
		return IG_ERR_INVAL;
	if ((int)e->role <= IG_ROLE_NONE || (int)e->role >= IG_ROLE_COUNT)
		return IG_ERR_INVAL;
	uint8_t role = (uint8_t)e->role;
	size_t pos = 0;
	int rc;
	if ((rc = ig_tlv_put(out, cap, &pos, IG_TAG_ENROLL_ID, e->id, idlen)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_ENROLL_ROLE, &role, 1)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_ENROLL_PK, e->pk, IG_PK_BYTES)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_ENROLL_BY, e->by, bylen)) < 0)
		return rc;
	return (int)pos;
}

int ig_enroll_decode(const uint8_t *body, size_t len, ig_enroll *e, ig_error *err)
{
	static const char what[] = "enroll";
	seen_set seen = {0};
	ig_tlv_iter it;
	uint8_t tag;
	const uint8_t *v;
	uint16_t vlen;
	int rc;

	memset(e, 0, sizeof *e);
	ig_tlv_iter_init(&it, body, len);
	while ((rc = ig_tlv_next(&it, &tag, &v, &vlen)) == 1) {
		switch (tag) {
		case IG_TAG_ENROLL_ID:
			if (seen_mark(&seen, tag, what, "id", err) < 0)
				return IG_ERR_CORRUPT;
			if (!ig_id_valid((const char *)v, vlen) || copy_string(e->id, sizeof e->id, v, vlen) < 0)
				return bad_field(what, "id", "must be 1..64 chars of [A-Za-z0-9_.-]", err);
			break;
		case IG_TAG_ENROLL_ROLE:
			if (seen_mark(&seen, tag, what, "role", err) < 0)
				return IG_ERR_CORRUPT;
			if (vlen != 1 || v[0] <= IG_ROLE_NONE || v[0] >= IG_ROLE_COUNT)
				return bad_field(what, "role", "must be one byte, 1..4", err);
			e->role = (ig_role)v[0];
			break;
		case IG_TAG_ENROLL_PK:
			if (seen_mark(&seen, tag, what, "pubkey", err) < 0)
				return IG_ERR_CORRUPT;
			if (vlen != IG_PK_BYTES)
				return bad_field(what, "pubkey", "must be 32 bytes", err);
			memcpy(e->pk, v, IG_PK_BYTES);
			break;
		case IG_TAG_ENROLL_BY:
			if (seen_mark(&seen, tag, what, "by", err) < 0)
				return IG_ERR_CORRUPT;
			if (!by_valid((const char *)v, vlen) || copy_string(e->by, sizeof e->by, v, vlen) < 0)
				return bad_field(what, "by", "must be 1..80 bytes of printable UTF-8", err);
			break;
		default:
			break;
		}
	}
	if (rc < 0)
		return truncated_tlv(what, err);
	if (!(seen.bits & (1u << IG_TAG_ENROLL_ID)))
		return missing(what, "id", err);
	if (!(seen.bits & (1u << IG_TAG_ENROLL_ROLE)))
		return missing(what, "role", err);
	if (!(seen.bits & (1u << IG_TAG_ENROLL_PK)))
		return missing(what, "pubkey", err);
	if (!(seen.bits & (1u << IG_TAG_ENROLL_BY)))
		return missing(what, "by", err);
	return IG_OK;
}

/* ---- revoke -------------------------------------------------------------- */

int ig_revoke_encode(uint8_t *out, size_t cap, const ig_revoke *r)
{
	size_t idlen = strnlen(r->id, sizeof r->id);
	size_t rlen = strnlen(r->reason, sizeof r->reason);
	size_t bylen = strnlen(r->by, sizeof r->by);
	if (!ig_id_valid(r->id, idlen) || !reason_valid(r->reason, rlen) || !by_valid(r->by, bylen))
		return IG_ERR_INVAL;
	size_t pos = 0;
	int rc;
	if ((rc = ig_tlv_put(out, cap, &pos, IG_TAG_REVOKE_ID, r->id, idlen)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_REVOKE_REASON, r->reason, rlen)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_REVOKE_BY, r->by, bylen)) < 0)
		return rc;
	return (int)pos;
}

int ig_revoke_decode(const uint8_t *body, size_t len, ig_revoke *r, ig_error *err)
{
	static const char what[] = "revoke";
	seen_set seen = {0};
	ig_tlv_iter it;
	uint8_t tag;
	const uint8_t *v;
	uint16_t vlen;
	int rc;

	memset(r, 0, sizeof *r);
	ig_tlv_iter_init(&it, body, len);
	while ((rc = ig_tlv_next(&it, &tag, &v, &vlen)) == 1) {
		switch (tag) {
		case IG_TAG_REVOKE_ID:
			if (seen_mark(&seen, tag, what, "id", err) < 0)
				return IG_ERR_CORRUPT;
			if (!ig_id_valid((const char *)v, vlen) || copy_string(r->id, sizeof r->id, v, vlen) < 0)
				return bad_field(what, "id", "must be 1..64 chars of [A-Za-z0-9_.-]", err);
			break;
		case IG_TAG_REVOKE_REASON:
			if (seen_mark(&seen, tag, what, "reason", err) < 0)
				return IG_ERR_CORRUPT;
			if (!reason_valid((const char *)v, vlen) ||
			    copy_string(r->reason, sizeof r->reason, v, vlen) < 0)
				return bad_field(what, "reason", "must be 0..256 bytes of printable UTF-8", err);
			break;
		case IG_TAG_REVOKE_BY:
			if (seen_mark(&seen, tag, what, "by", err) < 0)
				return IG_ERR_CORRUPT;
			if (!by_valid((const char *)v, vlen) || copy_string(r->by, sizeof r->by, v, vlen) < 0)
				return bad_field(what, "by", "must be 1..80 bytes of printable UTF-8", err);
			break;
		default:
			break;
		}
	}
	if (rc < 0)
		return truncated_tlv(what, err);
	if (!(seen.bits & (1u << IG_TAG_REVOKE_ID)))
		return missing(what, "id", err);
	if (!(seen.bits & (1u << IG_TAG_REVOKE_REASON)))
		return missing(what, "reason", err);
	if (!(seen.bits & (1u << IG_TAG_REVOKE_BY)))
		return missing(what, "by", err);
	return IG_OK;
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

/* Adds the typed fields of a known record type. Returns false if the body
 * does not decode, so the caller can fall back to the raw body. */
static bool add_typed_fields(cJSON *obj, const ig_record *rec, bool *oom)
{
	ig_error err;
	*oom = false;
	switch (rec->type) {
	case IG_REC_GENESIS: {
		ig_genesis g;
		if (ig_genesis_decode(rec->body, rec->body_len, &g, &err) != IG_OK)
			return false;
		*oom = !cJSON_AddStringToObject(obj, "cluster", g.cluster) ||
		       !add_hex(obj, "ch_pubkey", g.ch_pk, IG_PK_BYTES) ||
		       !cJSON_AddNumberToObject(obj, "version", g.version);
		return true;
	}
	case IG_REC_ENROLL: {
		ig_enroll e;
		if (ig_enroll_decode(rec->body, rec->body_len, &e, &err) != IG_OK)
			return false;
		*oom = !cJSON_AddStringToObject(obj, "id", e.id) ||
		       !cJSON_AddStringToObject(obj, "role", ig_role_name(e.role)) ||
		       !add_hex(obj, "pubkey", e.pk, IG_PK_BYTES) ||
		       !cJSON_AddStringToObject(obj, "by", e.by);
		return true;
	}
	case IG_REC_REVOKE: {
		ig_revoke r;
		if (ig_revoke_decode(rec->body, rec->body_len, &r, &err) != IG_OK)
			return false;
		*oom = !cJSON_AddStringToObject(obj, "id", r.id) ||
		       !cJSON_AddStringToObject(obj, "reason", r.reason) ||
		       !cJSON_AddStringToObject(obj, "by", r.by);
		return true;
	}
	default:
		return false;
	}
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
