/*
 * recspec.c: the one table-driven codec for ledger record bodies.
 *
 * Why this exists: every record body follows the same TLV rules (each known
 * tag at most once, required tags present, unknown tags ignored, one check
 * per kind of value). Here they are implemented once, reading the tables in
 * recspecs.c, so the record types of record.c and bank.c cannot drift apart
 * and a new record type is a new table rather than a new copy of the loop.
 *
 * Bodies are validated symmetrically: the encoder and the decoder run the
 * same per-field rule (field_check), so the writer cannot produce a record
 * the verifier later calls corrupt. Decoding sits on the verify hot path, so
 * it allocates nothing; only the JSON rendering allocates.
 */
#include "ig_recspec.h"
#include "ig_record.h"

#include <cJSON.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- TLV (declared in ig_record.h: the body wire format) ------------------ */

void ig_record_tlv_iter_init(ig_tlv_iter *it, const uint8_t *body, size_t len)
{
	it->p = body;
	it->end = body ? body + len : body;
}

int ig_record_tlv_next(ig_tlv_iter *it, uint8_t *tag, const uint8_t **val, uint16_t *vlen)
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

int ig_record_tlv_put(uint8_t *out, size_t cap, size_t *pos, uint8_t tag, const void *val, size_t vlen)
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

/* ---- field rules ---------------------------------------------------------- */

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
		return bad_field(what, f->name, "must be one byte, 1..6 (device, analyst, monitor, admin, witness, bridge)", err);
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
	case IG_FIELD_IDS: {
		size_t count = 0, i = 0;
		while (i < vlen) {
			size_t n = v[i];
			if (n == 0 || n > IG_ID_MAX || vlen - i - 1 < n || !ig_id_valid((const char *)v + i + 1, n))
				return bad_field(what, f->name, "each id must be its length (1 byte) then 1..64 chars of "
				                                "[A-Za-z0-9_.-]", err);
			i += 1 + n;
			count++;
		}
		if (count >= f->min && count <= f->max && count <= f->size / (IG_ID_MAX + 1))
			return IG_OK;
		snprintf(why, sizeof why, "must be %u..%u ids", f->min, f->max);
		return bad_field(what, f->name, why, err);
	}
	case IG_FIELD_U32:
		if (vlen == 4 && ig_get_u32(v) >= f->min && ig_get_u32(v) <= f->max)
			return IG_OK;
		return bad_field(what, f->name, f->why, err);
	case IG_FIELD_U32S: {
		if (vlen % 4 != 0 || vlen / 4 < f->min || vlen / 4 > f->max || vlen / 4 > f->size / 4) {
			snprintf(why, sizeof why, "must be %u..%u 4-byte integers", f->min, f->max);
			return bad_field(what, f->name, why, err);
		}
		/* Ascending and distinct: one way to write a set, so equal sets
		 * have equal bytes and a reader can merge them without sorting. */
		for (size_t i = 4; i < vlen; i += 4)
			if (ig_get_u32(v + i) <= ig_get_u32(v + i - 4))
				return bad_field(what, f->name, "must be strictly ascending", err);
		return IG_OK;
	}
	}
	return bad_field(what, f->name, "unknown kind of field", err);
}

/* The wire form of an IDS field at its largest (255 ids of 64 bytes); a
 * U32S field (at most 1024 integers) is built in the same buffer. */
#define IDS_WIRE_MAX (IG_CUSTODY_N_MAX * (IG_ID_MAX + 1))
_Static_assert(4 * IG_KP_REC_RING_MAX <= IDS_WIRE_MAX, "U32S wire form does not fit the wide buffer");

/* Points *v at the wire bytes of the field stored at member (in the record
 * struct or, for integers, in tmp, for id lists in wide) and returns their
 * length. */
static size_t field_wire(const ig_field_spec *f, const uint8_t *rec, uint8_t tmp[8], uint8_t wide[IDS_WIRE_MAX],
                         const uint8_t **v)
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
	case IG_FIELD_IDS: {
		uint32_t count = *(const uint32_t *)(rec + f->count_off);
		size_t pos = 0;
		*v = wide;
		if (count > f->size / (IG_ID_MAX + 1) || count > IG_CUSTODY_N_MAX) {
			wide[0] = 0; /* an empty id: field_check refuses it */
			return 1;
		}
		for (uint32_t i = 0; i < count; i++) {
			const char *id = (const char *)member + (size_t)i * (IG_ID_MAX + 1);
			size_t n = strnlen(id, IG_ID_MAX + 1);
			if (n > IG_ID_MAX)
				n = 0; /* unterminated: refused as an empty id */
			wide[pos++] = (uint8_t)n;
			memcpy(wide + pos, id, n);
			pos += n;
		}
		return pos;
	}
	case IG_FIELD_U32:
		ig_put_u32(tmp, *(const uint32_t *)member);
		*v = tmp;
		return 4;
	case IG_FIELD_U32S: {
		uint32_t count = *(const uint32_t *)(rec + f->count_off);
		*v = wide;
		if (count > f->size / 4 || count > IDS_WIRE_MAX / 4)
			return 1; /* not a multiple of 4: field_check refuses it */
		for (uint32_t i = 0; i < count; i++)
			ig_put_u32(wide + 4 * (size_t)i, ((const uint32_t *)member)[i]);
		return 4 * (size_t)count;
	}
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
	case IG_FIELD_IDS: {
		uint32_t count = 0;
		for (size_t i = 0; i < vlen; i += 1 + (size_t)v[i], count++) {
			char *id = (char *)member + (size_t)count * (IG_ID_MAX + 1);
			memcpy(id, v + i + 1, v[i]);
			id[v[i]] = '\0';
		}
		*(uint32_t *)(rec + f->count_off) = count;
		break;
	}
	case IG_FIELD_U32:
		*(uint32_t *)member = ig_get_u32(v);
		break;
	case IG_FIELD_U32S:
		for (size_t i = 0; i < vlen / 4; i++)
			((uint32_t *)member)[i] = ig_get_u32(v + 4 * i);
		*(uint32_t *)(rec + f->count_off) = (uint32_t)(vlen / 4);
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
	uint8_t wide[IDS_WIRE_MAX];
	const uint8_t *v;
	size_t vlen;

	/* Refuse the whole body before writing any of it. */
	for (size_t i = 0; i < b->nfields; i++) {
		const ig_field_spec *f = &b->fields[i];
		if (!field_present(f, base))
			continue;
		vlen = field_wire(f, base, tmp, wide, &v);
		if (field_check(b->what, f, v, vlen, NULL) != IG_OK)
			return IG_ERR_INVAL;
	}
	if (b->check && b->check(rec, NULL) != IG_OK)
		return IG_ERR_INVAL;
	size_t pos = 0;
	for (size_t i = 0; i < b->nfields; i++) {
		const ig_field_spec *f = &b->fields[i];
		if (!field_present(f, base))
			continue;
		vlen = field_wire(f, base, tmp, wide, &v);
		int rc = ig_record_tlv_put(out, cap, &pos, f->tag, v, vlen);
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
	ig_record_tlv_iter_init(&it, body, len);
	while ((rc = ig_record_tlv_next(&it, &tag, &v, &vlen)) == 1) {
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
	return b->check ? b->check(rec, err) : IG_OK;
}

/* Any decoded body fits here (recspecs.c asserts it), so checking a body
 * needs no allocation; static storage would not be re-entrant. */
typedef struct any_body {
	alignas(max_align_t) uint8_t bytes[IG_RECSPEC_REC_MAX];
} any_body;

int ig_recspec_check(const ig_body_spec *b, const uint8_t *body, size_t len, ig_error *err)
{
	any_body u;
	if (b->size > sizeof u.bytes)
		return ig_error_set(err, IG_ERR_INVAL, "%s record: struct too large for the checker", b->what);
	return ig_recspec_decode(b, body, len, u.bytes, err);
}

/* ---- JSON view ------------------------------------------------------------ */

bool ig_recspec_json_hex(cJSON *obj, const char *name, const uint8_t *bin, size_t len)
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
		cJSON *list = f->no_count || cJSON_AddNumberToObject(obj, "count", count) ? cJSON_AddArrayToObject(obj, f->name)
		                                                                          : NULL;
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
		return ig_recspec_json_hex(obj, f->name, member, f->size);
	case IG_FIELD_U64:
		return cJSON_AddNumberToObject(obj, f->name, (double)*(const uint64_t *)member) != NULL;
	case IG_FIELD_ROLE:
		return cJSON_AddStringToObject(obj, f->name, ig_role_name(*(const ig_role *)member)) != NULL;
	case IG_FIELD_U8:
		if (!f->value_names)
			return cJSON_AddNumberToObject(obj, f->name, *member) != NULL;
		return cJSON_AddStringToObject(obj, f->name, f->value_names[*member]) != NULL;
	case IG_FIELD_VERSION:
		return cJSON_AddNumberToObject(obj, f->name, *(const uint16_t *)member) != NULL;
	case IG_FIELD_IDS: {
		uint32_t count = *(const uint32_t *)(rec + f->count_off);
		cJSON *list = cJSON_AddArrayToObject(obj, f->name);
		for (uint32_t i = 0; list && i < count; i++) {
			cJSON *s = cJSON_CreateString((const char *)member + (size_t)i * (IG_ID_MAX + 1));
			if (!s || !cJSON_AddItemToArray(list, s)) {
				cJSON_Delete(s);
				return false;
			}
		}
		return list != NULL;
	}
	case IG_FIELD_U32:
		return cJSON_AddNumberToObject(obj, f->name, *(const uint32_t *)member) != NULL;
	case IG_FIELD_U32S: {
		uint32_t count = *(const uint32_t *)(rec + f->count_off);
		cJSON *list = cJSON_AddArrayToObject(obj, f->name);
		for (uint32_t i = 0; list && i < count; i++) {
			cJSON *n = cJSON_CreateNumber(((const uint32_t *)member)[i]);
			if (!n || !cJSON_AddItemToArray(list, n)) {
				cJSON_Delete(n);
				return false;
			}
		}
		return list != NULL;
	}
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

int ig_recspec_body_json(cJSON *obj, const ig_body_spec *b, const uint8_t *body, size_t len)
{
	any_body u;
	if (b->size > sizeof u.bytes || ig_recspec_decode(b, body, len, u.bytes, NULL) != IG_OK)
		return IG_ERR_CORRUPT;
	return ig_recspec_json(obj, b, u.bytes) ? IG_OK : IG_ERR_NOMEM;
}
