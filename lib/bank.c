/*
 * bank.c: the bank's ledger records and the coin crypto (seed 001).
 *
 * Why this exists: a coin is one secret that does three jobs. Sealed to the
 * bank in a data message's header it authorises one redeem; through HKDF it
 * is the key of that one payload and of the one result that answers it.
 * Every byte layout those jobs depend on (records 32..35, the header, the
 * data and result messages, their AAD) lives here and nowhere else, so the
 * collector, the bank and the analyst cannot drift apart. The ledger sees
 * only BLAKE2b-256(coin). Layouts: ig_bank.h, docs/PROTOCOL.md "Coins",
 * docs/LEDGER.md 7.8-7.11. The coin index is coins.c.
 */
#include "ig_bank.h"

#include "ig_hkdf.h"
#include "ig_record.h"

#include <cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAYLOAD_INFO "iotguard coin payload v1"
#define RESULT_INFO "iotguard coin result v1"
#define DATA_AAD_DOMAIN "iotguard-data-v1"
#define RESULT_AAD_DOMAIN "iotguard-result-v1"
#define TOPIC_MAX 65535 /* the MQTT limit for a topic name */
#define BY_MAX 80       /* ig_credit_rec.by holds 80 bytes + NUL, as IG_BY_MAX */

_Static_assert(crypto_box_SEALBYTES == IG_COIN_HEADER_SEALED_MIN - IG_COIN_HEADER_PLAIN_MIN,
               "the sealed-header sizes in ig_bank.h assume 48 bytes of crypto_box_seal overhead");

/* ---- field rules ---------------------------------------------------------- */

/* "by" is shown in JSON and on terminals: valid shortest-form UTF-8 without
 * surrogates or control characters (C0, DEL, C1), as docs/LEDGER.md says for
 * every *by* string. */
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
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0))
			return false;
		i += n;
	}
	return true;
}

static bool by_valid(const char *s, size_t len)
{
	return len >= 1 && len <= BY_MAX && text_valid((const uint8_t *)s, len);
}

static bool refund_reason_valid(const char *s, size_t len)
{
	return (len == 7 && memcmp(s, "expired", 7) == 0) || (len == 9 && memcmp(s, "cancelled", 9) == 0);
}

/* ---- decoder helpers: "required tags exactly once, unknown tags ignored" -- */

typedef struct seen_set {
	uint32_t bits;
} seen_set;

static int seen_mark(seen_set *s, uint8_t tag, const char *what, const char *field, ig_error *err)
{
	uint32_t bit = 1u << tag; /* only called for known tags, all < 32 */
	if (s->bits & bit)
		return ig_error_set(err, IG_ERR_CORRUPT, "%s record: field '%s' appears twice", what, field);
	s->bits |= bit;
	return IG_OK;
}

static int need(const seen_set *s, uint8_t tag, const char *what, const char *field, ig_error *err)
{
	if (s->bits & (1u << tag))
		return IG_OK;
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

/* An id-class string into dst[IG_ID_MAX + 1]. */
static int id_field(const char *what, const char *field, const uint8_t *v, uint16_t vlen, char *dst, ig_error *err)
{
	if (vlen > IG_ID_MAX || !ig_id_valid((const char *)v, vlen))
		return bad_field(what, field, "must be 1..64 chars of [A-Za-z0-9_.-]", err);
	memcpy(dst, v, vlen);
	dst[vlen] = '\0';
	return IG_OK;
}

static int hash_field(const char *what, const char *field, const uint8_t *v, uint16_t vlen,
                      uint8_t dst[IG_HASH_BYTES], ig_error *err)
{
	if (vlen != IG_HASH_BYTES)
		return bad_field(what, field, "must be 32 bytes", err);
	memcpy(dst, v, IG_HASH_BYTES);
	return IG_OK;
}

static int u64_field(const char *what, const char *field, const uint8_t *v, uint16_t vlen, uint64_t *dst,
                     ig_error *err)
{
	if (vlen != 8)
		return bad_field(what, field, "must be 8 bytes", err);
	*dst = ig_get_u64(v);
	return IG_OK;
}

/* ---- credit (32) ------------------------------------------------------------ */

int ig_credit_encode(uint8_t *out, size_t cap, const ig_credit_rec *r)
{
	if (!r)
		return IG_ERR_INVAL;
	size_t idlen = strnlen(r->id, sizeof r->id);
	size_t bylen = strnlen(r->by, sizeof r->by);
	if (!ig_id_valid(r->id, idlen) || !by_valid(r->by, bylen) || r->amount == 0)
		return IG_ERR_INVAL;
	uint8_t amount[8];
	ig_put_u64(amount, r->amount);
	size_t pos = 0;
	int rc;
	if ((rc = ig_tlv_put(out, cap, &pos, IG_TAG_CREDIT_ID, r->id, idlen)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_CREDIT_AMOUNT, amount, 8)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_CREDIT_BY, r->by, bylen)) < 0)
		return rc;
	return (int)pos;
}

int ig_credit_decode(const uint8_t *body, size_t len, ig_credit_rec *r, ig_error *err)
{
	static const char what[] = "credit";
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
		case IG_TAG_CREDIT_ID:
			if (seen_mark(&seen, tag, what, "id", err) < 0 || id_field(what, "id", v, vlen, r->id, err) < 0)
				return IG_ERR_CORRUPT;
			break;
		case IG_TAG_CREDIT_AMOUNT:
			if (seen_mark(&seen, tag, what, "amount", err) < 0 ||
			    u64_field(what, "amount", v, vlen, &r->amount, err) < 0)
				return IG_ERR_CORRUPT;
			if (r->amount == 0)
				return bad_field(what, "amount", "must be greater than 0", err);
			break;
		case IG_TAG_CREDIT_BY:
			if (seen_mark(&seen, tag, what, "by", err) < 0)
				return IG_ERR_CORRUPT;
			if (!by_valid((const char *)v, vlen))
				return bad_field(what, "by", "must be 1..80 bytes of UTF-8 without control characters", err);
			memcpy(r->by, v, vlen);
			r->by[vlen] = '\0';
			break;
		default:
			break; /* a later version's field */
		}
	}
	if (rc < 0)
		return truncated_tlv(what, err);
	if (need(&seen, IG_TAG_CREDIT_ID, what, "id", err) < 0 || need(&seen, IG_TAG_CREDIT_AMOUNT, what, "amount", err) < 0 ||
	    need(&seen, IG_TAG_CREDIT_BY, what, "by", err) < 0)
		return IG_ERR_CORRUPT;
	return IG_OK;
}

/* ---- coin mint (33) ----------------------------------------------------------- */

int ig_mint_encode(uint8_t *out, size_t cap, const ig_mint_rec *r)
{
	if (!r)
		return IG_ERR_INVAL;
	size_t olen = strnlen(r->owner, sizeof r->owner);
	if (!ig_id_valid(r->owner, olen) || r->count < 1 || r->count > IG_COINS_PER_REQUEST)
		return IG_ERR_INVAL;
	uint8_t exp[8];
	ig_put_u64(exp, r->expires_at);
	size_t pos = 0;
	int rc;
	if ((rc = ig_tlv_put(out, cap, &pos, IG_TAG_MINT_OWNER, r->owner, olen)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_MINT_EXPIRES, exp, 8)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_MINT_HASHES, r->hashes, (size_t)r->count * IG_HASH_BYTES)) < 0)
		return rc;
	return (int)pos;
}

int ig_mint_decode(const uint8_t *body, size_t len, ig_mint_rec *r, ig_error *err)
{
	static const char what[] = "coin_mint";
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
		case IG_TAG_MINT_OWNER:
			if (seen_mark(&seen, tag, what, "owner", err) < 0 ||
			    id_field(what, "owner", v, vlen, r->owner, err) < 0)
				return IG_ERR_CORRUPT;
			break;
		case IG_TAG_MINT_EXPIRES:
			if (seen_mark(&seen, tag, what, "expires_at", err) < 0 ||
			    u64_field(what, "expires_at", v, vlen, &r->expires_at, err) < 0)
				return IG_ERR_CORRUPT;
			break;
		case IG_TAG_MINT_HASHES:
			if (seen_mark(&seen, tag, what, "coin_hashes", err) < 0)
				return IG_ERR_CORRUPT;
			if (vlen == 0 || vlen % IG_HASH_BYTES != 0 || vlen / IG_HASH_BYTES > IG_COINS_PER_REQUEST)
				return bad_field(what, "coin_hashes", "must be 1..64 hashes of 32 bytes", err);
			r->count = vlen / IG_HASH_BYTES;
			memcpy(r->hashes, v, vlen);
			break;
		default:
			break;
		}
	}
	if (rc < 0)
		return truncated_tlv(what, err);
	if (need(&seen, IG_TAG_MINT_OWNER, what, "owner", err) < 0 ||
	    need(&seen, IG_TAG_MINT_EXPIRES, what, "expires_at", err) < 0 ||
	    need(&seen, IG_TAG_MINT_HASHES, what, "coin_hashes", err) < 0)
		return IG_ERR_CORRUPT;
	return IG_OK;
}

/* ---- coin redeem (34) --------------------------------------------------------- */

int ig_redeem_encode(uint8_t *out, size_t cap, const ig_redeem_rec *r)
{
	if (!r)
		return IG_ERR_INVAL;
	size_t alen = strnlen(r->analyst, sizeof r->analyst);
	size_t clen = strnlen(r->collector, sizeof r->collector);
	if (!ig_id_valid(r->analyst, alen) || !ig_id_valid(r->collector, clen))
		return IG_ERR_INVAL;
	size_t pos = 0;
	int rc;
	if ((rc = ig_tlv_put(out, cap, &pos, IG_TAG_REDEEM_COIN_HASH, r->coin_hash, IG_HASH_BYTES)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_REDEEM_ANALYST, r->analyst, alen)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_REDEEM_COLLECTOR, r->collector, clen)) < 0)
		return rc;
	return (int)pos;
}

int ig_redeem_decode(const uint8_t *body, size_t len, ig_redeem_rec *r, ig_error *err)
{
	static const char what[] = "coin_redeem";
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
		case IG_TAG_REDEEM_COIN_HASH:
			if (seen_mark(&seen, tag, what, "coin_hash", err) < 0 ||
			    hash_field(what, "coin_hash", v, vlen, r->coin_hash, err) < 0)
				return IG_ERR_CORRUPT;
			break;
		case IG_TAG_REDEEM_ANALYST:
			if (seen_mark(&seen, tag, what, "analyst", err) < 0 ||
			    id_field(what, "analyst", v, vlen, r->analyst, err) < 0)
				return IG_ERR_CORRUPT;
			break;
		case IG_TAG_REDEEM_COLLECTOR:
			if (seen_mark(&seen, tag, what, "collector", err) < 0 ||
			    id_field(what, "collector", v, vlen, r->collector, err) < 0)
				return IG_ERR_CORRUPT;
			break;
		default:
			break;
		}
	}
	if (rc < 0)
		return truncated_tlv(what, err);
	if (need(&seen, IG_TAG_REDEEM_COIN_HASH, what, "coin_hash", err) < 0 ||
	    need(&seen, IG_TAG_REDEEM_ANALYST, what, "analyst", err) < 0 ||
	    need(&seen, IG_TAG_REDEEM_COLLECTOR, what, "collector", err) < 0)
		return IG_ERR_CORRUPT;
	return IG_OK;
}

/* ---- coin refund (35) --------------------------------------------------------- */

int ig_refund_encode(uint8_t *out, size_t cap, const ig_refund_rec *r)
{
	if (!r)
		return IG_ERR_INVAL;
	size_t clen = strnlen(r->collector, sizeof r->collector);
	size_t rlen = strnlen(r->reason, sizeof r->reason);
	if (!ig_id_valid(r->collector, clen) || !refund_reason_valid(r->reason, rlen))
		return IG_ERR_INVAL;
	size_t pos = 0;
	int rc;
	if ((rc = ig_tlv_put(out, cap, &pos, IG_TAG_REFUND_COIN_HASH, r->coin_hash, IG_HASH_BYTES)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_REFUND_COLLECTOR, r->collector, clen)) < 0 ||
	    (rc = ig_tlv_put(out, cap, &pos, IG_TAG_REFUND_REASON, r->reason, rlen)) < 0)
		return rc;
	return (int)pos;
}

int ig_refund_decode(const uint8_t *body, size_t len, ig_refund_rec *r, ig_error *err)
{
	static const char what[] = "coin_refund";
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
		case IG_TAG_REFUND_COIN_HASH:
			if (seen_mark(&seen, tag, what, "coin_hash", err) < 0 ||
			    hash_field(what, "coin_hash", v, vlen, r->coin_hash, err) < 0)
				return IG_ERR_CORRUPT;
			break;
		case IG_TAG_REFUND_COLLECTOR:
			if (seen_mark(&seen, tag, what, "collector", err) < 0 ||
			    id_field(what, "collector", v, vlen, r->collector, err) < 0)
				return IG_ERR_CORRUPT;
			break;
		case IG_TAG_REFUND_REASON:
			if (seen_mark(&seen, tag, what, "reason", err) < 0)
				return IG_ERR_CORRUPT;
			if (!refund_reason_valid((const char *)v, vlen))
				return bad_field(what, "reason", "must be \"expired\" or \"cancelled\"", err);
			memcpy(r->reason, v, vlen);
			r->reason[vlen] = '\0';
			break;
		default:
			break;
		}
	}
	if (rc < 0)
		return truncated_tlv(what, err);
	if (need(&seen, IG_TAG_REFUND_COIN_HASH, what, "coin_hash", err) < 0 ||
	    need(&seen, IG_TAG_REFUND_COLLECTOR, what, "collector", err) < 0 ||
	    need(&seen, IG_TAG_REFUND_REASON, what, "reason", err) < 0)
		return IG_ERR_CORRUPT;
	return IG_OK;
}

/* ---- hooks for record.c --------------------------------------------------------- */

const char *ig_bank_record_type_name(uint16_t type)
{
	switch (type) {
	case IG_REC_CREDIT: return "credit";
	case IG_REC_COIN_MINT: return "coin_mint";
	case IG_REC_COIN_REDEEM: return "coin_redeem";
	case IG_REC_COIN_REFUND: return "coin_refund";
	default: return NULL;
	}
}

int ig_bank_record_check(const ig_record *rec, ig_error *err)
{
	if (!rec)
		return IG_ERR_INVAL;
	/* ig_mint_rec is 2 KiB; static storage would not be re-entrant, so
	 * each type decodes into its own stack object. */
	switch (rec->type) {
	case IG_REC_CREDIT: {
		ig_credit_rec r;
		return ig_credit_decode(rec->body, rec->body_len, &r, err);
	}
	case IG_REC_COIN_MINT: {
		ig_mint_rec r;
		return ig_mint_decode(rec->body, rec->body_len, &r, err);
	}
	case IG_REC_COIN_REDEEM: {
		ig_redeem_rec r;
		return ig_redeem_decode(rec->body, rec->body_len, &r, err);
	}
	case IG_REC_COIN_REFUND: {
		ig_refund_rec r;
		return ig_refund_decode(rec->body, rec->body_len, &r, err);
	}
	default:
		return IG_OK;
	}
}

static bool add_hex(cJSON *obj, const char *name, const uint8_t *bin, size_t len)
{
	char hex[2 * IG_HASH_BYTES + 1];
	if (len > IG_HASH_BYTES)
		return false;
	ig_hex_encode(hex, bin, len);
	return cJSON_AddStringToObject(obj, name, hex) != NULL;
}

int ig_bank_record_json(cJSON *obj, const ig_record *rec)
{
	if (!obj || !rec)
		return IG_ERR_INVAL;
	bool ok;
	switch (rec->type) {
	case IG_REC_CREDIT: {
		ig_credit_rec r;
		if (ig_credit_decode(rec->body, rec->body_len, &r, NULL) != IG_OK)
			return IG_ERR_CORRUPT;
		ok = cJSON_AddStringToObject(obj, "id", r.id) && cJSON_AddNumberToObject(obj, "amount", (double)r.amount) &&
		     cJSON_AddStringToObject(obj, "by", r.by);
		break;
	}
	case IG_REC_COIN_MINT: {
		ig_mint_rec r;
		if (ig_mint_decode(rec->body, rec->body_len, &r, NULL) != IG_OK)
			return IG_ERR_CORRUPT;
		ok = cJSON_AddStringToObject(obj, "owner", r.owner) &&
		     cJSON_AddNumberToObject(obj, "expires_at", (double)r.expires_at) &&
		     cJSON_AddNumberToObject(obj, "count", r.count);
		cJSON *list = ok ? cJSON_AddArrayToObject(obj, "coin_hashes") : NULL;
		ok = list != NULL;
		for (uint32_t i = 0; ok && i < r.count; i++) {
			char hex[2 * IG_HASH_BYTES + 1];
			ig_hex_encode(hex, r.hashes[i], IG_HASH_BYTES);
			cJSON *s = cJSON_CreateString(hex);
			ok = s && cJSON_AddItemToArray(list, s);
			if (!ok)
				cJSON_Delete(s);
		}
		break;
	}
	case IG_REC_COIN_REDEEM: {
		ig_redeem_rec r;
		if (ig_redeem_decode(rec->body, rec->body_len, &r, NULL) != IG_OK)
			return IG_ERR_CORRUPT;
		ok = add_hex(obj, "coin_hash", r.coin_hash, IG_HASH_BYTES) &&
		     cJSON_AddStringToObject(obj, "analyst", r.analyst) &&
		     cJSON_AddStringToObject(obj, "collector", r.collector);
		break;
	}
	case IG_REC_COIN_REFUND: {
		ig_refund_rec r;
		if (ig_refund_decode(rec->body, rec->body_len, &r, NULL) != IG_OK)
			return IG_ERR_CORRUPT;
		ok = add_hex(obj, "coin_hash", r.coin_hash, IG_HASH_BYTES) &&
		     cJSON_AddStringToObject(obj, "collector", r.collector) &&
		     cJSON_AddStringToObject(obj, "reason", r.reason);
		break;
	}
	default:
		return IG_ERR_NOTFOUND;
	}
	return ok ? IG_OK : IG_ERR_NOMEM;
}

/* ---- coin crypto ------------------------------------------------------------------ */

void ig_coin_hash(uint8_t out[IG_HASH_BYTES], const uint8_t coin[IG_COIN_BYTES])
{
	crypto_generichash(out, IG_HASH_BYTES, coin, IG_COIN_BYTES, NULL, 0);
}

void ig_coin_topic_hash(uint8_t out[IG_HASH_BYTES], const char *topic)
{
	crypto_generichash(out, IG_HASH_BYTES, (const uint8_t *)topic, strlen(topic), NULL, 0);
}

void ig_coin_header_hash(uint8_t out[IG_HASH_BYTES], const uint8_t *sealed, size_t len)
{
	crypto_generichash(out, IG_HASH_BYTES, sealed, len, NULL, 0);
}

void ig_coin_keys(const uint8_t coin[IG_COIN_BYTES], uint8_t payload_key[32], uint8_t result_key[32])
{
	/* Two infos, one coin: the payload key and the result key are
	 * independent, so a result can never be mistaken for the payload. Only
	 * a 32-byte output is asked for, which ig_hkdf cannot refuse. */
	(void)ig_hkdf(payload_key, 32, NULL, 0, coin, IG_COIN_BYTES, (const uint8_t *)PAYLOAD_INFO,
	              sizeof PAYLOAD_INFO - 1);
	(void)ig_hkdf(result_key, 32, NULL, 0, coin, IG_COIN_BYTES, (const uint8_t *)RESULT_INFO,
	              sizeof RESULT_INFO - 1);
}

static bool suite_valid(int s)
{
	return s == IG_SUITE_AES256GCM || s == IG_SUITE_XCHACHA20POLY1305;
}

/* Every coin nonce field is 24 bytes, but AES-256-GCM reads only the first
 * 12, so the tag would not cover the rest: anyone could rewrite them and
 * the message would still open. The canonical GCM nonce therefore ends in
 * 12 zero bytes, sealing writes them and every parser refuses anything
 * else, so each byte on the wire is either authenticated or fixed. */
static size_t nonce_used(ig_suite suite)
{
	return suite == IG_SUITE_AES256GCM ? 12 : IG_COIN_NONCE_BYTES;
}

static void nonce_fresh(uint8_t nonce[IG_COIN_NONCE_BYTES], ig_suite suite)
{
	size_t used = nonce_used(suite);
	randombytes_buf(nonce, used);
	memset(nonce + used, 0, IG_COIN_NONCE_BYTES - used);
}

static bool nonce_canonical(const uint8_t nonce[IG_COIN_NONCE_BYTES], ig_suite suite)
{
	uint8_t spare = 0;
	for (size_t i = nonce_used(suite); i < IG_COIN_NONCE_BYTES; i++)
		spare |= nonce[i];
	return spare == 0;
}

int ig_coin_header_encode(uint8_t *out, size_t cap, const ig_coin_header *h)
{
	if (!out || !h)
		return IG_ERR_INVAL;
	size_t clen = strnlen(h->collector, sizeof h->collector);
	if (!ig_id_valid(h->collector, clen) || !suite_valid((int)h->suite) || !nonce_canonical(h->nonce, h->suite))
		return IG_ERR_INVAL;
	size_t total = IG_COIN_HEADER_PLAIN_MIN - 1 + clen;
	if (cap < total)
		return IG_ERR_RANGE;
	uint8_t *p = out;
	*p++ = IG_COIN_HEADER_VERSION;
	memcpy(p, h->coin, IG_COIN_BYTES);
	p += IG_COIN_BYTES;
	memcpy(p, h->nonce, IG_COIN_NONCE_BYTES);
	p += IG_COIN_NONCE_BYTES;
	*p++ = (uint8_t)h->suite;
	*p++ = (uint8_t)clen;
	memcpy(p, h->collector, clen);
	p += clen;
	memcpy(p, h->topic_hash, IG_HASH_BYTES);
	return (int)total;
}

int ig_coin_header_decode(ig_coin_header *h, const uint8_t *pt, size_t len)
{
	if (!h || !pt)
		return IG_ERR_INVAL;
	memset(h, 0, sizeof *h);
	if (len < IG_COIN_HEADER_PLAIN_MIN || len > IG_COIN_HEADER_PLAIN_MAX)
		return IG_ERR_INVAL;
	const uint8_t *p = pt;
	if (*p++ != IG_COIN_HEADER_VERSION)
		return IG_ERR_INVAL;
	const uint8_t *coin = p;
	p += IG_COIN_BYTES;
	const uint8_t *nonce = p;
	p += IG_COIN_NONCE_BYTES;
	uint8_t suite = *p++;
	uint8_t clen = *p++;
	/* the length must be exactly what collector_len says: no slack bytes */
	if (!suite_valid(suite) || !nonce_canonical(nonce, (ig_suite)suite) ||
	    len != (size_t)IG_COIN_HEADER_PLAIN_MIN - 1 + clen || !ig_id_valid((const char *)p, clen))
		return IG_ERR_INVAL;
	memcpy(h->coin, coin, IG_COIN_BYTES);
	memcpy(h->nonce, nonce, IG_COIN_NONCE_BYTES);
	h->suite = (ig_suite)suite;
	memcpy(h->collector, p, clen);
	h->collector[clen] = '\0';
	p += clen;
	memcpy(h->topic_hash, p, IG_HASH_BYTES);
	return IG_OK;
}

int ig_coin_header_open(ig_coin_header *h, const uint8_t *sealed, size_t len, const uint8_t bank_sk[IG_SK_BYTES])
{
	if (!h || !sealed || !bank_sk)
		return IG_ERR_INVAL;
	sodium_memzero(h, sizeof *h);
	if (len < IG_COIN_HEADER_SEALED_MIN || len > IG_COIN_HEADER_SEALED_MAX)
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;

	uint8_t x_sk[crypto_box_SECRETKEYBYTES], x_pk[crypto_box_PUBLICKEYBYTES];
	uint8_t pt[IG_COIN_HEADER_PLAIN_MAX];
	int rc = IG_OK;
	/* The public half is recomputed from the secret one rather than taken
	 * from bank_sk's trailing 32 bytes, so the two cannot disagree. */
	if (crypto_sign_ed25519_sk_to_curve25519(x_sk, bank_sk) != 0 || crypto_scalarmult_base(x_pk, x_sk) != 0)
		rc = IG_ERR_CRYPTO;
	else if (crypto_box_seal_open(pt, sealed, len, x_pk, x_sk) != 0)
		rc = IG_ERR_CRYPTO;
	else
		rc = ig_coin_header_decode(h, pt, len - crypto_box_SEALBYTES);
	sodium_memzero(x_sk, sizeof x_sk);
	sodium_memzero(pt, sizeof pt);
	if (rc != IG_OK)
		sodium_memzero(h, sizeof *h);
	return rc;
}

bool ig_coin_header_matches_topic(const ig_coin_header *h, const char *topic)
{
	if (!h || !topic)
		return false;
	uint8_t th[IG_HASH_BYTES];
	ig_coin_topic_hash(th, topic);
	return sodium_memcmp(th, h->topic_hash, IG_HASH_BYTES) == 0;
}

/* AAD = domain || 0x00 || topic || 0x00 || hash. Topics are short in
 * practice, so the buffer lives on the stack unless one is not. */
typedef struct aad_buf {
	uint8_t small[512];
	uint8_t *p;
	size_t len;
} aad_buf;

static int aad_build(aad_buf *a, const char *domain, const char *topic, const uint8_t hash[IG_HASH_BYTES])
{
	size_t dlen = strlen(domain), tlen = strlen(topic);
	if (tlen == 0 || tlen > TOPIC_MAX)
		return IG_ERR_INVAL;
	a->len = dlen + 1 + tlen + 1 + IG_HASH_BYTES;
	a->p = a->len <= sizeof a->small ? a->small : malloc(a->len);
	if (!a->p)
		return IG_ERR_NOMEM;
	uint8_t *p = a->p;
	memcpy(p, domain, dlen);
	p += dlen;
	*p++ = 0x00;
	memcpy(p, topic, tlen);
	p += tlen;
	*p++ = 0x00;
	memcpy(p, hash, IG_HASH_BYTES);
	return IG_OK;
}

static void aad_free(aad_buf *a)
{
	if (a->p && a->p != a->small)
		free(a->p);
	a->p = NULL;
}

int ig_data_seal(uint8_t *out, size_t cap, const uint8_t bank_pk[IG_PK_BYTES], const uint8_t coin[IG_COIN_BYTES],
                 ig_suite suite, const char *collector, const char *topic, const uint8_t *payload, size_t len,
                 uint8_t header_hash[IG_HASH_BYTES])
{
	if (!out || !bank_pk || !coin || !collector || !topic || (len > 0 && !payload) || !header_hash)
		return IG_ERR_INVAL;
	if (!suite_valid((int)suite))
		return IG_ERR_INVAL;
	if (len > IG_DATA_MAX_PAYLOAD)
		return IG_ERR_RANGE;
	size_t clen = strnlen(collector, IG_ID_MAX + 1);
	size_t tlen = strlen(topic);
	if (!ig_id_valid(collector, clen) || tlen == 0 || tlen > TOPIC_MAX)
		return IG_ERR_INVAL;
	if (!ig_suite_available(suite))
		return IG_ERR_STATE;
	size_t pt_len = IG_COIN_HEADER_PLAIN_MIN - 1 + clen;
	size_t sealed_len = pt_len + crypto_box_SEALBYTES;
	size_t total = 4 + 2 + sealed_len + 1 + IG_COIN_NONCE_BYTES + len + IG_AEAD_TAG_BYTES;
	if (cap < total)
		return IG_ERR_RANGE;

	ig_coin_header h;
	uint8_t x_pk[crypto_box_PUBLICKEYBYTES];
	uint8_t pt[IG_COIN_HEADER_PLAIN_MAX];
	uint8_t payload_key[32], result_key[32];
	int rc;

	memset(&h, 0, sizeof h);
	memcpy(h.coin, coin, IG_COIN_BYTES);
	nonce_fresh(h.nonce, suite); /* a coin keys one payload, but never trust that alone */
	h.suite = suite;
	memcpy(h.collector, collector, clen);
	ig_coin_topic_hash(h.topic_hash, topic);

	uint8_t *p = out;
	memcpy(p, IG_DATA_MAGIC, 4);
	ig_put_u16(p + 4, (uint16_t)sealed_len);
	uint8_t *sealed = p + 6;
	uint8_t *tail = sealed + sealed_len;
	if (crypto_sign_ed25519_pk_to_curve25519(x_pk, bank_pk) != 0) {
		rc = IG_ERR_CRYPTO; /* not a usable public key (small order, off curve) */
		goto done;
	}
	if ((rc = ig_coin_header_encode(pt, sizeof pt, &h)) < 0)
		goto done;
	if (crypto_box_seal(sealed, pt, pt_len, x_pk) != 0) {
		rc = IG_ERR_CRYPTO;
		goto done;
	}
	ig_coin_header_hash(header_hash, sealed, sealed_len);
	tail[0] = (uint8_t)suite;
	memcpy(tail + 1, h.nonce, IG_COIN_NONCE_BYTES);

	aad_buf aad;
	if ((rc = aad_build(&aad, DATA_AAD_DOMAIN, topic, header_hash)) < 0)
		goto done;
	ig_coin_keys(coin, payload_key, result_key);
	rc = ig_aead_seal(suite, tail + 1 + IG_COIN_NONCE_BYTES, len + IG_AEAD_TAG_BYTES, payload, len, aad.p, aad.len,
	                  h.nonce, payload_key);
	aad_free(&aad);
	if (rc >= 0)
		rc = (int)total;
done:
	sodium_memzero(&h, sizeof h);
	sodium_memzero(pt, sizeof pt);
	sodium_memzero(payload_key, sizeof payload_key);
	sodium_memzero(result_key, sizeof result_key);
	if (rc < 0)
		sodium_memzero(out, total); /* never leave half a message behind */
	return rc;
}

int ig_data_parse(const uint8_t *msg, size_t len, const uint8_t **header, size_t *header_len, ig_suite *suite,
                  const uint8_t **nonce, const uint8_t **ct, size_t *ct_len)
{
	if (!msg || !header || !header_len || !suite || !nonce || !ct || !ct_len)
		return IG_ERR_INVAL;
	if (len < 6 || memcmp(msg, IG_DATA_MAGIC, 4) != 0)
		return IG_ERR_INVAL;
	size_t hlen = ig_get_u16(msg + 4);
	if (hlen < IG_COIN_HEADER_SEALED_MIN || hlen > IG_COIN_HEADER_SEALED_MAX)
		return IG_ERR_INVAL;
	size_t fixed = 6 + hlen + 1 + IG_COIN_NONCE_BYTES;
	if (len < fixed + IG_AEAD_TAG_BYTES || len - fixed - IG_AEAD_TAG_BYTES > IG_DATA_MAX_PAYLOAD)
		return IG_ERR_INVAL;
	uint8_t s = msg[6 + hlen];
	if (!suite_valid(s) || !nonce_canonical(msg + 6 + hlen + 1, (ig_suite)s))
		return IG_ERR_INVAL;
	*header = msg + 6;
	*header_len = hlen;
	*suite = (ig_suite)s;
	*nonce = msg + 6 + hlen + 1;
	*ct = msg + fixed;
	*ct_len = len - fixed;
	return IG_OK;
}

int ig_data_open(uint8_t *out, size_t cap, const uint8_t *msg, size_t len, const char *topic,
                 const uint8_t payload_key[32])
{
	const uint8_t *header, *nonce, *ct;
	size_t header_len, ct_len;
	ig_suite suite;
	if (!topic || !payload_key)
		return IG_ERR_INVAL;
	int rc = ig_data_parse(msg, len, &header, &header_len, &suite, &nonce, &ct, &ct_len);
	if (rc != IG_OK)
		return rc;
	uint8_t header_hash[IG_HASH_BYTES];
	ig_coin_header_hash(header_hash, header, header_len);
	aad_buf aad;
	if ((rc = aad_build(&aad, DATA_AAD_DOMAIN, topic, header_hash)) < 0)
		return rc;
	/* GCM takes the first 12 of the 24 nonce bytes (ig_data_parse made sure
	 * the other 12 are zero); XChaCha takes all. */
	rc = ig_aead_open(suite, out, cap, ct, ct_len, aad.p, aad.len, nonce, payload_key);
	aad_free(&aad);
	return rc;
}

int ig_data_open_redeemed(uint8_t *out, size_t cap, const uint8_t *msg, size_t len, const char *topic,
                          const uint8_t payload_key[32], const uint8_t nonce[IG_COIN_NONCE_BYTES])
{
	const uint8_t *header, *carried, *ct;
	size_t header_len, ct_len;
	ig_suite suite;
	if (!nonce)
		return IG_ERR_INVAL;
	int rc = ig_data_parse(msg, len, &header, &header_len, &suite, &carried, &ct, &ct_len);
	if (rc != IG_OK)
		return rc;
	/* The bank's nonce came out of the sealed header, which the AAD binds:
	 * the message must carry exactly the nonce its header promised. */
	if (memcmp(carried, nonce, IG_COIN_NONCE_BYTES) != 0)
		return IG_ERR_CRYPTO;
	return ig_data_open(out, cap, msg, len, topic, payload_key);
}

int ig_result_seal(uint8_t *out, size_t cap, const uint8_t result_key[32], ig_suite suite,
                   const uint8_t header_hash[IG_HASH_BYTES], const char *topic, const uint8_t *payload, size_t len)
{
	if (!out || !result_key || !header_hash || !topic || (len > 0 && !payload) || !suite_valid((int)suite))
		return IG_ERR_INVAL;
	if (len > IG_DATA_MAX_PAYLOAD)
		return IG_ERR_RANGE;
	if (cap < IG_RESULT_OVERHEAD + len)
		return IG_ERR_RANGE;
	uint8_t *p = out;
	memcpy(p, IG_RESULT_MAGIC, 4);
	memcpy(p + 4, header_hash, IG_HASH_BYTES);
	p[4 + IG_HASH_BYTES] = (uint8_t)suite;
	uint8_t *nonce = p + 4 + IG_HASH_BYTES + 1;
	nonce_fresh(nonce, suite);
	aad_buf aad;
	int rc = aad_build(&aad, RESULT_AAD_DOMAIN, topic, header_hash);
	if (rc < 0)
		return rc;
	rc = ig_aead_seal(suite, nonce + IG_COIN_NONCE_BYTES, len + IG_AEAD_TAG_BYTES, payload, len, aad.p, aad.len,
	                  nonce, result_key);
	aad_free(&aad);
	if (rc < 0) {
		sodium_memzero(out, IG_RESULT_OVERHEAD + len);
		return rc;
	}
	return (int)(IG_RESULT_OVERHEAD + len);
}

int ig_result_parse_hash(const uint8_t *msg, size_t len, uint8_t header_hash[IG_HASH_BYTES])
{
	if (!msg || !header_hash)
		return IG_ERR_INVAL;
	if (len < IG_RESULT_OVERHEAD || len - IG_RESULT_OVERHEAD > IG_DATA_MAX_PAYLOAD ||
	    memcmp(msg, IG_RESULT_MAGIC, 4) != 0 || !suite_valid(msg[4 + IG_HASH_BYTES]) ||
	    !nonce_canonical(msg + 4 + IG_HASH_BYTES + 1, (ig_suite)msg[4 + IG_HASH_BYTES]))
		return IG_ERR_INVAL;
	memcpy(header_hash, msg + 4, IG_HASH_BYTES);
	return IG_OK;
}

int ig_result_open(uint8_t *out, size_t cap, const uint8_t *msg, size_t len, const char *topic,
                   const uint8_t result_key[32], const uint8_t header_hash[IG_HASH_BYTES])
{
	uint8_t carried[IG_HASH_BYTES];
	if (!topic || !result_key || !header_hash)
		return IG_ERR_INVAL;
	int rc = ig_result_parse_hash(msg, len, carried);
	if (rc != IG_OK)
		return rc;
	/* The AAD takes the hash the caller expects, not the one carried, so a
	 * result for another request fails the tag even if the lookup was
	 * skipped; the early check only gives the clearer answer. */
	if (memcmp(carried, header_hash, IG_HASH_BYTES) != 0)
		return IG_ERR_CRYPTO;
	ig_suite suite = (ig_suite)msg[4 + IG_HASH_BYTES];
	const uint8_t *nonce = msg + 4 + IG_HASH_BYTES + 1;
	const uint8_t *ct = nonce + IG_COIN_NONCE_BYTES;
	size_t ct_len = len - (size_t)(ct - msg);
	aad_buf aad;
	if ((rc = aad_build(&aad, RESULT_AAD_DOMAIN, topic, header_hash)) < 0)
		return rc;
	rc = ig_aead_open(suite, out, cap, ct, ct_len, aad.p, aad.len, nonce, result_key);
	aad_free(&aad);
	return rc;
}
