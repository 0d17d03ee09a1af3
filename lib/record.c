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
	case IG_REC_JOIN_CODE: return "join_code";
	case IG_REC_JOIN_USED: return "join_used";
	case IG_REC_KEY_ISSUED: return "key_issued";
	case IG_REC_ATTEST: return "attest";
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
	/* Only enrolments made through a join code carry the tag, so records
	 * written before join codes existed keep their exact bytes. */
	if (e->has_join_code &&
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_ENROLL_JOIN_CODE, e->join_code, sizeof e->join_code)) < 0)
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
		case IG_TAG_ENROLL_JOIN_CODE:
			/* Optional, but at most once: a second code would make "which
			 * code did this consume" ambiguous. */
			if (seen_mark(&seen, tag, what, "join_code", err) < 0)
				return IG_ERR_CORRUPT;
			if (vlen != sizeof e->join_code)
				return bad_field(what, "join_code", "must be 8 bytes", err);
			memcpy(e->join_code, v, sizeof e->join_code);
			e->has_join_code = true;
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

/* ---- key service: join codes, session keys, attestation ------------------ */

/* Shared by the decoders below: fixed-size fields and the small integers. */
static int fixed_field(const char *what, const char *field, const uint8_t *v, uint16_t vlen, void *dst,
                       size_t size, ig_error *err)
{
	if (vlen != size) {
		char why[32];
		snprintf(why, sizeof why, "must be %zu bytes", size);
		return bad_field(what, field, why, err);
	}
	memcpy(dst, v, size);
	return IG_OK;
}

static bool role_valid(int role)
{
	return role > IG_ROLE_NONE && role < IG_ROLE_COUNT;
}

static bool suite_valid(int suite)
{
	return suite == 1 || suite == 2; /* IG_SUITE_AES256GCM, IG_SUITE_XCHACHA20POLY1305 (ig_aead.h) */
}

static int need(const seen_set *seen, uint8_t tag, const char *what, const char *field, ig_error *err)
{
	return (seen->bits & (1u << tag)) ? IG_OK : missing(what, field, err);
}

int ig_join_code_encode(uint8_t *out, size_t cap, const ig_join_code_rec *j)
{
	size_t bylen = strnlen(j->by, sizeof j->by);
	if (!by_valid(j->by, bylen) || !role_valid((int)j->role))
		return IG_ERR_INVAL;
	uint8_t role = (uint8_t)j->role, exp[8];
	ig_put_u64(exp, j->expires_at);
	size_t pos = 0;
	int rc;
	if ((rc = ig_tlv_put(out, cap, &pos, IG_TAG_JOIN_CODE_ID, j->code_id, sizeof j->code_id)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_JOIN_CODE_HASH, j->hash, IG_HASH_BYTES)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_JOIN_CODE_ROLE, &role, 1)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_JOIN_CODE_EXPIRES, exp, 8)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_JOIN_CODE_BY, j->by, bylen)) < 0)
		return rc;
	return (int)pos;
}

int ig_join_code_decode(const uint8_t *body, size_t len, ig_join_code_rec *j, ig_error *err)
{
	static const char what[] = "join_code";
	seen_set seen = {0};
	ig_tlv_iter it;
	uint8_t tag, exp[8];
	const uint8_t *v;
	uint16_t vlen;
	int rc;

	memset(j, 0, sizeof *j);
	ig_tlv_iter_init(&it, body, len);
	while ((rc = ig_tlv_next(&it, &tag, &v, &vlen)) == 1) {
		switch (tag) {
		case IG_TAG_JOIN_CODE_ID:
			if (seen_mark(&seen, tag, what, "code_id", err) < 0 ||
			    fixed_field(what, "code_id", v, vlen, j->code_id, sizeof j->code_id, err) < 0)
				return IG_ERR_CORRUPT;
			break;
		case IG_TAG_JOIN_CODE_HASH:
			if (seen_mark(&seen, tag, what, "code_hash", err) < 0 ||
			    fixed_field(what, "code_hash", v, vlen, j->hash, IG_HASH_BYTES, err) < 0)
				return IG_ERR_CORRUPT;
			break;
		case IG_TAG_JOIN_CODE_ROLE:
			if (seen_mark(&seen, tag, what, "role", err) < 0)
				return IG_ERR_CORRUPT;
			if (vlen != 1 || !role_valid(v[0]))
				return bad_field(what, "role", "must be one byte, 1..4", err);
			j->role = (ig_role)v[0];
			break;
		case IG_TAG_JOIN_CODE_EXPIRES:
			if (seen_mark(&seen, tag, what, "expires_at", err) < 0 ||
			    fixed_field(what, "expires_at", v, vlen, exp, 8, err) < 0)
				return IG_ERR_CORRUPT;
			j->expires_at = ig_get_u64(exp);
			break;
		case IG_TAG_JOIN_CODE_BY:
			if (seen_mark(&seen, tag, what, "by", err) < 0)
				return IG_ERR_CORRUPT;
			if (!by_valid((const char *)v, vlen) || copy_string(j->by, sizeof j->by, v, vlen) < 0)
				return bad_field(what, "by", "must be 1..80 bytes of printable UTF-8", err);
			break;
		default:
			break;
		}
	}
	if (rc < 0)
		return truncated_tlv(what, err);
	if (need(&seen, IG_TAG_JOIN_CODE_ID, what, "code_id", err) < 0 ||
	    need(&seen, IG_TAG_JOIN_CODE_HASH, what, "code_hash", err) < 0 ||
	    need(&seen, IG_TAG_JOIN_CODE_ROLE, what, "role", err) < 0 ||
	    need(&seen, IG_TAG_JOIN_CODE_EXPIRES, what, "expires_at", err) < 0 ||
	    need(&seen, IG_TAG_JOIN_CODE_BY, what, "by", err) < 0)
		return IG_ERR_CORRUPT;
	return IG_OK;
}

int ig_join_used_encode(uint8_t *out, size_t cap, const ig_join_used *j)
{
	size_t idlen = strnlen(j->id, sizeof j->id);
	if (!ig_id_valid(j->id, idlen))
		return IG_ERR_INVAL;
	size_t pos = 0;
	int rc;
	if ((rc = ig_tlv_put(out, cap, &pos, IG_TAG_JOIN_USED_CODE_ID, j->code_id, sizeof j->code_id)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_JOIN_USED_ID, j->id, idlen)) < 0)
		return rc;
	return (int)pos;
}

int ig_join_used_decode(const uint8_t *body, size_t len, ig_join_used *j, ig_error *err)
{
	static const char what[] = "join_used";
	seen_set seen = {0};
	ig_tlv_iter it;
	uint8_t tag;
	const uint8_t *v;
	uint16_t vlen;
	int rc;

	memset(j, 0, sizeof *j);
	ig_tlv_iter_init(&it, body, len);
	while ((rc = ig_tlv_next(&it, &tag, &v, &vlen)) == 1) {
		switch (tag) {
		case IG_TAG_JOIN_USED_CODE_ID:
			if (seen_mark(&seen, tag, what, "code_id", err) < 0 ||
			    fixed_field(what, "code_id", v, vlen, j->code_id, sizeof j->code_id, err) < 0)
				return IG_ERR_CORRUPT;
			break;
		case IG_TAG_JOIN_USED_ID:
			if (seen_mark(&seen, tag, what, "id", err) < 0)
				return IG_ERR_CORRUPT;
			if (!ig_id_valid((const char *)v, vlen) || copy_string(j->id, sizeof j->id, v, vlen) < 0)
				return bad_field(what, "id", "must be 1..64 chars of [A-Za-z0-9_.-]", err);
			break;
		default:
			break;
		}
	}
	if (rc < 0)
		return truncated_tlv(what, err);
	if (need(&seen, IG_TAG_JOIN_USED_CODE_ID, what, "code_id", err) < 0 ||
	    need(&seen, IG_TAG_JOIN_USED_ID, what, "id", err) < 0)
		return IG_ERR_CORRUPT;
	return IG_OK;
}

int ig_key_issued_encode(uint8_t *out, size_t cap, const ig_key_issued *k)
{
	size_t alen = strnlen(k->a, sizeof k->a);
	size_t blen = strnlen(k->b, sizeof k->b);
	if (!ig_id_valid(k->a, alen) || !ig_id_valid(k->b, blen) || !suite_valid(k->suite))
		return IG_ERR_INVAL;
	uint8_t exp[8];
	ig_put_u64(exp, k->expires_at);
	size_t pos = 0;
	int rc;
	if ((rc = ig_tlv_put(out, cap, &pos, IG_TAG_KEY_ID, k->key_id, sizeof k->key_id)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_KEY_A, k->a, alen)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_KEY_B, k->b, blen)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_KEY_EXPIRES, exp, 8)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_KEY_SUITE, &k->suite, 1)) < 0)
		return rc;
	return (int)pos;
}

int ig_key_issued_decode(const uint8_t *body, size_t len, ig_key_issued *k, ig_error *err)
{
	static const char what[] = "key_issued";
	seen_set seen = {0};
	ig_tlv_iter it;
	uint8_t tag, exp[8];
	const uint8_t *v;
	uint16_t vlen;
	int rc;

	memset(k, 0, sizeof *k);
	ig_tlv_iter_init(&it, body, len);
	while ((rc = ig_tlv_next(&it, &tag, &v, &vlen)) == 1) {
		switch (tag) {
		case IG_TAG_KEY_ID:
			if (seen_mark(&seen, tag, what, "key_id", err) < 0 ||
			    fixed_field(what, "key_id", v, vlen, k->key_id, sizeof k->key_id, err) < 0)
				return IG_ERR_CORRUPT;
			break;
		case IG_TAG_KEY_A:
			if (seen_mark(&seen, tag, what, "a", err) < 0)
				return IG_ERR_CORRUPT;
			if (!ig_id_valid((const char *)v, vlen) || copy_string(k->a, sizeof k->a, v, vlen) < 0)
				return bad_field(what, "a", "must be 1..64 chars of [A-Za-z0-9_.-]", err);
			break;
		case IG_TAG_KEY_B:
			if (seen_mark(&seen, tag, what, "b", err) < 0)
				return IG_ERR_CORRUPT;
			if (!ig_id_valid((const char *)v, vlen) || copy_string(k->b, sizeof k->b, v, vlen) < 0)
				return bad_field(what, "b", "must be 1..64 chars of [A-Za-z0-9_.-]", err);
			break;
		case IG_TAG_KEY_EXPIRES:
			if (seen_mark(&seen, tag, what, "expires_at", err) < 0 ||
			    fixed_field(what, "expires_at", v, vlen, exp, 8, err) < 0)
				return IG_ERR_CORRUPT;
			k->expires_at = ig_get_u64(exp);
			break;
		case IG_TAG_KEY_SUITE:
			if (seen_mark(&seen, tag, what, "suite", err) < 0)
				return IG_ERR_CORRUPT;
			if (vlen != 1 || !suite_valid(v[0]))
				return bad_field(what, "suite", "must be one byte, 1 (aes256gcm) or 2 (xchacha20poly1305)",
				                 err);
			k->suite = v[0];
			break;
		default:
			break;
		}
	}
	if (rc < 0)
		return truncated_tlv(what, err);
	if (need(&seen, IG_TAG_KEY_ID, what, "key_id", err) < 0 || need(&seen, IG_TAG_KEY_A, what, "a", err) < 0 ||
	    need(&seen, IG_TAG_KEY_B, what, "b", err) < 0 ||
	    need(&seen, IG_TAG_KEY_EXPIRES, what, "expires_at", err) < 0 ||
	    need(&seen, IG_TAG_KEY_SUITE, what, "suite", err) < 0)
		return IG_ERR_CORRUPT;
	return IG_OK;
}

int ig_attest_encode(uint8_t *out, size_t cap, const ig_attest *a)
{
	size_t idlen = strnlen(a->id, sizeof a->id);
	if (!ig_id_valid(a->id, idlen) || a->allowed > 2)
		return IG_ERR_INVAL;
	size_t pos = 0;
	int rc;
	if ((rc = ig_tlv_put(out, cap, &pos, IG_TAG_ATTEST_ID, a->id, idlen)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_ATTEST_MEASUREMENT, a->measurement, IG_HASH_BYTES)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_ATTEST_ALLOWED, &a->allowed, 1)) < 0)
		return rc;
	return (int)pos;
}

int ig_attest_decode(const uint8_t *body, size_t len, ig_attest *a, ig_error *err)
{
	static const char what[] = "attest";
	seen_set seen = {0};
	ig_tlv_iter it;
	uint8_t tag;
	const uint8_t *v;
	uint16_t vlen;
	int rc;

	memset(a, 0, sizeof *a);
	ig_tlv_iter_init(&it, body, len);
	while ((rc = ig_tlv_next(&it, &tag, &v, &vlen)) == 1) {
		switch (tag) {
		case IG_TAG_ATTEST_ID:
			if (seen_mark(&seen, tag, what, "id", err) < 0)
				return IG_ERR_CORRUPT;
			if (!ig_id_valid((const char *)v, vlen) || copy_string(a->id, sizeof a->id, v, vlen) < 0)
				return bad_field(what, "id", "must be 1..64 chars of [A-Za-z0-9_.-]", err);
			break;
		case IG_TAG_ATTEST_MEASUREMENT:
			if (seen_mark(&seen, tag, what, "measurement", err) < 0 ||
			    fixed_field(what, "measurement", v, vlen, a->measurement, IG_HASH_BYTES, err) < 0)
				return IG_ERR_CORRUPT;
			break;
		case IG_TAG_ATTEST_ALLOWED:
			if (seen_mark(&seen, tag, what, "allowed", err) < 0)
				return IG_ERR_CORRUPT;
			if (vlen != 1 || v[0] > 2)
				return bad_field(what, "allowed", "must be one byte, 0 (no), 1 (yes) or 2 (no list)", err);
			a->allowed = v[0];
			break;
		default:
			break;
		}
	}
	if (rc < 0)
		return truncated_tlv(what, err);
	if (need(&seen, IG_TAG_ATTEST_ID, what, "id", err) < 0 ||
	    need(&seen, IG_TAG_ATTEST_MEASUREMENT, what, "measurement", err) < 0 ||
	    need(&seen, IG_TAG_ATTEST_ALLOWED, what, "allowed", err) < 0)
		return IG_ERR_CORRUPT;
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
		       !cJSON_AddStringToObject(obj, "by", e.by) ||
		       (e.has_join_code && !add_hex(obj, "join_code", e.join_code, sizeof e.join_code));
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
	/* The key-service records hold no secrets (the code hash, never the
	 * code; the key id, never the key), so everything is shown. */
	case IG_REC_JOIN_CODE: {
		ig_join_code_rec j;
		if (ig_join_code_decode(rec->body, rec->body_len, &j, &err) != IG_OK)
			return false;
		*oom = !add_hex(obj, "code_id", j.code_id, sizeof j.code_id) ||
		       !add_hex(obj, "code_hash", j.hash, IG_HASH_BYTES) ||
		       !cJSON_AddStringToObject(obj, "role", ig_role_name(j.role)) ||
		       !cJSON_AddNumberToObject(obj, "expires_at", (double)j.expires_at) ||
		       !cJSON_AddStringToObject(obj, "by", j.by);
		return true;
	}
	case IG_REC_JOIN_USED: {
		ig_join_used j;
		if (ig_join_used_decode(rec->body, rec->body_len, &j, &err) != IG_OK)
			return false;
		*oom = !add_hex(obj, "code_id", j.code_id, sizeof j.code_id) ||
		       !cJSON_AddStringToObject(obj, "id", j.id);
		return true;
	}
	case IG_REC_KEY_ISSUED: {
		ig_key_issued k;
		if (ig_key_issued_decode(rec->body, rec->body_len, &k, &err) != IG_OK)
			return false;
		*oom = !add_hex(obj, "key_id", k.key_id, sizeof k.key_id) ||
		       !cJSON_AddStringToObject(obj, "a", k.a) || !cJSON_AddStringToObject(obj, "b", k.b) ||
		       !cJSON_AddNumberToObject(obj, "expires_at", (double)k.expires_at) ||
		       !cJSON_AddStringToObject(obj, "suite", k.suite == 1 ? "aes256gcm" : "xchacha20poly1305");
		return true;
	}
	case IG_REC_ATTEST: {
		ig_attest a;
		if (ig_attest_decode(rec->body, rec->body_len, &a, &err) != IG_OK)
			return false;
		static const char *const allowed[] = {"no", "yes", "unlisted"};
		*oom = !cJSON_AddStringToObject(obj, "id", a.id) ||
		       !add_hex(obj, "measurement", a.measurement, IG_HASH_BYTES) ||
		       !cJSON_AddStringToObject(obj, "allowed", allowed[a.allowed]);
		return true;
	}
	default:
		return false;
	}
}

int ig_record_body_check(const ig_record *rec, ig_error *err)
{
	union {
		ig_genesis g;
		ig_enroll e;
		ig_revoke r;
		ig_join_code_rec jc;
		ig_join_used ju;
		ig_key_issued k;
		ig_attest a;
	} u;
	switch (rec->type) {
	case IG_REC_GENESIS: return ig_genesis_decode(rec->body, rec->body_len, &u.g, err);
	case IG_REC_ENROLL: return ig_enroll_decode(rec->body, rec->body_len, &u.e, err);
	case IG_REC_REVOKE: return ig_revoke_decode(rec->body, rec->body_len, &u.r, err);
	case IG_REC_JOIN_CODE: return ig_join_code_decode(rec->body, rec->body_len, &u.jc, err);
	case IG_REC_JOIN_USED: return ig_join_used_decode(rec->body, rec->body_len, &u.ju, err);
	case IG_REC_KEY_ISSUED: return ig_key_issued_decode(rec->body, rec->body_len, &u.k, err);
	case IG_REC_ATTEST: return ig_attest_decode(rec->body, rec->body_len, &u.a, err);
	default: return IG_OK;
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
