/*
 * cosig.c: C2SP tlog-cosignature (Ed25519 cosignature/v1) lines and
 * signed-note verifier keys.
 *
 * Why this exists: witnesses vouch for a checkpoint by adding these lines;
 * clients count them against the witness keys they trust. Both ends must
 * agree with other implementations to the byte, and the parsers must be
 * strict: a line or vkey accepted in two spellings invites a disagreement
 * about which key signed what. See ig_cosig.h for the formats.
 */
#include "ig_cosig.h"
#include "ig_text.h"

#include "ig_checkpoint.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define EM_DASH_SPACE "\xe2\x80\x94 "   /* U+2014 then a space */
#define EM_DASH_SPACE_LEN 4
#define HEADER "cosignature/v1\n"
#define VKEY_B64_LEN 44                  /* base64 of type byte + 32-byte key */
#define MAX_BLOB 256                     /* longest signature blob we decode (ML-DSA is not supported) */

/* signed-note's rule for key names, of any length. */
static bool name_chars_valid(const char *name, size_t len)
{
	if (!name || len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c <= 0x20 || c == 0x7f || c == '+')
			return false;
	}
	return true;
}

bool ig_cosig_name_valid(const char *name, size_t len)
{
	return len <= IG_COSIG_NAME_MAX && name_chars_valid(name, len);
}

static void key_id(uint8_t id[IG_COSIG_KEY_ID_BYTES], const char *name, size_t name_len, uint8_t type,
                   const uint8_t pk[IG_PK_BYTES])
{
	const uint8_t sep_and_type[2] = {0x0a, type};
	crypto_hash_sha256_state st;
	uint8_t digest[crypto_hash_sha256_BYTES];

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const uint8_t *)name, name_len);
	crypto_hash_sha256_update(&st, sep_and_type, sizeof sep_and_type);
	crypto_hash_sha256_update(&st, pk, IG_PK_BYTES);
	crypto_hash_sha256_final(&st, digest);
	memcpy(id, digest, IG_COSIG_KEY_ID_BYTES);
}

static bool type_known(uint8_t type)
{
	return type == IG_COSIG_TYPE_ED25519 || type == IG_COSIG_TYPE_COSIG_V1;
}

int ig_cosig_vkey_make(ig_cosig_vkey *key, const char *name, uint8_t type, const uint8_t pk[IG_PK_BYTES])
{
	if (!key || !name || !pk || !type_known(type))
		return IG_ERR_INVAL;
	size_t n = strnlen(name, IG_COSIG_NAME_MAX + 1);
	if (!ig_cosig_name_valid(name, n))
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	memset(key, 0, sizeof *key);
	memcpy(key->name, name, n);
	key->type = type;
	memcpy(key->pk, pk, IG_PK_BYTES);
	key_id(key->id, name, n, type, pk);
	return IG_OK;
}

int ig_cosig_vkey_encode(char *out, size_t cap, const ig_cosig_vkey *key)
{
	if (!out || !key || !type_known(key->type))
		return IG_ERR_INVAL;
	uint8_t raw[1 + IG_PK_BYTES];
	raw[0] = key->type;
	memcpy(raw + 1, key->pk, IG_PK_BYTES);
	char b64[VKEY_B64_LEN + 1], idhex[2 * IG_COSIG_KEY_ID_BYTES + 1];
	sodium_bin2base64(b64, sizeof b64, raw, sizeof raw, sodium_base64_VARIANT_ORIGINAL);
	ig_hex_encode(idhex, key->id, IG_COSIG_KEY_ID_BYTES);
	int n = snprintf(out, cap, "%s+%s+%s", key->name, idhex, b64);
	if (n < 0 || (size_t)n >= cap) {
		if (cap > 0)
			out[0] = '\0';
		return IG_ERR_RANGE;
	}
	return n;
}

int ig_cosig_vkey_parse(ig_cosig_vkey *key, const char *text, size_t len, ig_error *err)
{
	if (!key || !text)
		return ig_error_set(err, IG_ERR_INVAL, "vkey parse: missing text");
	if (ig_init() != IG_OK)
		return ig_error_set(err, IG_ERR_CRYPTO, "vkey parse: libsodium failed to initialise");
	const char *p1 = memchr(text, '+', len);
	if (!p1)
		return ig_error_set(err, IG_ERR_INVAL,
		                    "vkey has no '+': expected <name>+<8 hex key id>+<base64 of type and key>");
	size_t name_len = (size_t)(p1 - text);
	if (!ig_cosig_name_valid(text, name_len))
		return ig_error_set(err, IG_ERR_INVAL,
		                    "vkey key name is empty, longer than %d bytes or has spaces/control characters",
		                    IG_COSIG_NAME_MAX);
	const char *idp = p1 + 1, *end = text + len;
	const char *p2 = memchr(idp, '+', (size_t)(end - idp));
	if (!p2 || p2 - idp != 2 * IG_COSIG_KEY_ID_BYTES)
		return ig_error_set(err, IG_ERR_INVAL, "vkey key id must be 8 hex digits between two '+'");
	uint8_t id[IG_COSIG_KEY_ID_BYTES];
	for (const char *c = idp; c < p2; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
			return ig_error_set(err, IG_ERR_INVAL, "vkey key id must be 8 lowercase hex digits");
	if (ig_hex_decode(id, sizeof id, idp, (size_t)(p2 - idp)) != IG_OK)
		return ig_error_set(err, IG_ERR_INVAL, "vkey key id must be 8 lowercase hex digits");
	const char *b64 = p2 + 1;
	size_t b64_len = (size_t)(end - b64);
	uint8_t raw[MAX_BLOB];
	size_t raw_len = 0;
	if (b64_len != VKEY_B64_LEN || !ig_text_b64(raw, sizeof raw, &raw_len, b64, b64_len) ||
	    raw_len != 1 + IG_PK_BYTES)
		return ig_error_set(err, IG_ERR_INVAL,
		                    "vkey key part must be canonical base64 of a type byte and a 32-byte Ed25519 key");
	if (!type_known(raw[0]))
		return ig_error_set(err, IG_ERR_INVAL,
		                    "vkey type 0x%02x is not supported: use 0x04 (Ed25519 cosignature/v1) or 0x01 "
		                    "(Ed25519 note signature)",
		                    raw[0]);
	ig_cosig_vkey k;
	memset(&k, 0, sizeof k);
	memcpy(k.name, text, name_len);
	k.type = raw[0];
	memcpy(k.pk, raw + 1, IG_PK_BYTES);
	key_id(k.id, k.name, name_len, k.type, k.pk);
	if (memcmp(k.id, id, sizeof id) != 0) {
		char want[2 * IG_COSIG_KEY_ID_BYTES + 1];
		ig_hex_encode(want, k.id, IG_COSIG_KEY_ID_BYTES);
		return ig_error_set(err, IG_ERR_INVAL,
		                    "vkey key id %.8s does not match its name, type and key (expected %s): the vkey "
		                    "was altered or copied wrongly",
		                    idp, want);
	}
	*key = k;
	return IG_OK;
}

int ig_cosig_line_split(const char **name, size_t *name_len, uint8_t *blob, size_t blob_cap, size_t *blob_len,
                        const char *line, size_t len, ig_error *err)
{
	if (!name || !name_len || !blob || !blob_len || !line)
		return ig_error_set(err, IG_ERR_INVAL, "signature line split: missing argument");
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (memchr(line, '\n', len) || memchr(line, '\0', len))
		return ig_error_set(err, IG_ERR_CORRUPT, "signature line holds a newline or NUL inside it");
	if (len < EM_DASH_SPACE_LEN || memcmp(line, EM_DASH_SPACE, EM_DASH_SPACE_LEN) != 0)
		return ig_error_set(err, IG_ERR_CORRUPT, "signature line must start with an em dash (U+2014) and a space");
	const char *nm = line + EM_DASH_SPACE_LEN, *end = line + len;
	const char *sp = memchr(nm, ' ', (size_t)(end - nm));
	/* Any name length: another signer's line is skipped, not refused, even
	 * if its name is longer than the names iotguard makes. */
	if (!sp || !name_chars_valid(nm, (size_t)(sp - nm)))
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "signature line needs '<key name> <base64 signature>' with a key name without "
		                    "spaces, '+' or control characters");
	uint8_t tmp[MAX_BLOB];
	size_t n = 0;
	if (!ig_text_b64(tmp, sizeof tmp, &n, sp + 1, (size_t)(end - sp - 1)) || n <= IG_COSIG_KEY_ID_BYTES)
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "signature line's signature is not canonical base64 of a key id and a signature");
	if (n > blob_cap)
		return ig_error_set(err, IG_ERR_CORRUPT, "signature line's signature is longer (%zu bytes) than %zu", n,
		                    blob_cap);
	memcpy(blob, tmp, n);
	*blob_len = n;
	*name = nm;
	*name_len = (size_t)(sp - nm);
	return IG_OK;
}

int ig_cosig_message(uint8_t *out, size_t cap, uint64_t timestamp, const char *body, size_t body_len)
{
	if (!out || (!body && body_len))
		return IG_ERR_INVAL;
	char head[64];
	int h = snprintf(head, sizeof head, HEADER "time %" PRIu64 "\n", timestamp);
	if (h < 0 || (size_t)h >= sizeof head || (size_t)h > cap || body_len > cap - (size_t)h ||
	    body_len > (size_t)INT32_MAX - (size_t)h)
		return IG_ERR_RANGE;
	memcpy(out, head, (size_t)h);
	if (body_len)
		memcpy(out + h, body, body_len);
	return h + (int)body_len;
}

/* The signed message of a cosignature is small (a checkpoint body is a few
 * hundred bytes), so it is built on the stack. */
#define MSG_MAX (64 + IG_CHECKPOINT_MAX)

int ig_cosig_sign(char *out, size_t cap, const char *name, const uint8_t sk[IG_SK_BYTES], uint64_t timestamp,
                  const char *body, size_t body_len)
{
	if (!out || !name || !sk || !body || timestamp == 0 || timestamp > IG_COSIG_TIME_MAX)
		return IG_ERR_INVAL;
	size_t name_len = strnlen(name, IG_COSIG_NAME_MAX + 1);
	if (!ig_cosig_name_valid(name, name_len))
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	uint8_t msg[MSG_MAX];
	int mlen = ig_cosig_message(msg, sizeof msg, timestamp, body, body_len);
	if (mlen < 0)
		return mlen;

	uint8_t blob[IG_COSIG_BLOB_BYTES];
	key_id(blob, name, name_len, IG_COSIG_TYPE_COSIG_V1, sk + crypto_sign_SEEDBYTES);
	ig_put_u64(blob + IG_COSIG_KEY_ID_BYTES, timestamp);
	if (crypto_sign_detached(blob + IG_COSIG_KEY_ID_BYTES + 8, NULL, msg, (size_t)mlen, sk) != 0)
		return IG_ERR_CRYPTO;
	char b64[sodium_base64_ENCODED_LEN(IG_COSIG_BLOB_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	sodium_bin2base64(b64, sizeof b64, blob, sizeof blob, sodium_base64_VARIANT_ORIGINAL);
	int n = snprintf(out, cap, EM_DASH_SPACE "%s %s\n", name, b64);
	if (n < 0 || (size_t)n >= cap) {
		if (cap > 0)
			out[0] = '\0';
		return IG_ERR_RANGE;
	}
	return n;
}

int ig_cosig_verify_line(uint64_t *timestamp, const char *line, size_t len, const ig_cosig_vkey *key,
                         const char *body, size_t body_len, ig_error *err)
{
	if (!line || !key || !body || !type_known(key->type))
		return ig_error_set(err, IG_ERR_INVAL, "cosignature verify: missing line, key or body");
	if (ig_init() != IG_OK)
		return ig_error_set(err, IG_ERR_CRYPTO, "cosignature verify: libsodium failed to initialise");
	const char *name;
	size_t name_len, blob_len;
	uint8_t blob[MAX_BLOB];
	int rc = ig_cosig_line_split(&name, &name_len, blob, sizeof blob, &blob_len, line, len, err);
	if (rc != IG_OK)
		return rc;
	if (name_len != strlen(key->name) || memcmp(name, key->name, name_len) != 0 ||
	    memcmp(blob, key->id, IG_COSIG_KEY_ID_BYTES) != 0)
		return ig_error_set(err, IG_ERR_NOTFOUND, "signature line is by another key than %s", key->name);

	if (key->type == IG_COSIG_TYPE_ED25519) {
		if (blob_len != IG_COSIG_KEY_ID_BYTES + crypto_sign_BYTES ||
		    crypto_sign_verify_detached(blob + IG_COSIG_KEY_ID_BYTES, (const uint8_t *)body, body_len, key->pk) !=
		        0)
			return ig_error_set(err, IG_ERR_CRYPTO,
			                    "the note signature of %s does not verify: the note was altered or signed by "
			                    "another key with the same name and key id",
			                    key->name);
		if (timestamp)
			*timestamp = 0;
		return IG_OK;
	}
	if (blob_len != IG_COSIG_BLOB_BYTES)
		return ig_error_set(err, IG_ERR_CRYPTO,
		                    "the cosignature of %s is %zu bytes, not %d (key id, timestamp, Ed25519 signature)",
		                    key->name, blob_len, IG_COSIG_BLOB_BYTES);
	uint64_t t = ig_get_u64(blob + IG_COSIG_KEY_ID_BYTES);
	if (t > IG_COSIG_TIME_MAX)
		return ig_error_set(err, IG_ERR_CORRUPT, "the cosignature of %s has a timestamp above 2^63-1", key->name);
	uint8_t msg[MSG_MAX];
	int mlen = ig_cosig_message(msg, sizeof msg, t, body, body_len);
	if (mlen < 0)
		return ig_error_set(err, IG_ERR_RANGE, "cosignature verify: note body of %zu bytes is too long", body_len);
	if (crypto_sign_verify_detached(blob + IG_COSIG_KEY_ID_BYTES + 8, msg, (size_t)mlen, key->pk) != 0)
		return ig_error_set(err, IG_ERR_CRYPTO,
		                    "the cosignature of %s (time %" PRIu64 ") does not verify: the checkpoint was "
		                    "altered, or the line was made for another checkpoint",
		                    key->name, t);
	if (timestamp)
		*timestamp = t;
	return IG_OK;
}

static bool same_key(const ig_cosig_vkey *a, const ig_cosig_vkey *b)
{
	return memcmp(a->pk, b->pk, IG_PK_BYTES) == 0 ||
	       (strcmp(a->name, b->name) == 0 && memcmp(a->id, b->id, IG_COSIG_KEY_ID_BYTES) == 0);
}

int ig_cosig_count(size_t *valid, const char *text, size_t len, const ig_cosig_vkey *keys, size_t nkeys,
                   size_t quorum, ig_error *err)
{
	if (valid)
		*valid = 0;
	if (!valid || !text || (!keys && nkeys))
		return ig_error_set(err, IG_ERR_INVAL, "cosignature count: missing argument");
	if (quorum > nkeys)
		return ig_error_set(err, IG_ERR_INVAL,
		                    "witness quorum %zu is larger than the %zu witness keys configured: lower the quorum "
		                    "or add keys",
		                    quorum, nkeys);
	for (size_t i = 0; i < nkeys; i++)
		for (size_t j = 0; j < i; j++)
			if (same_key(&keys[i], &keys[j]))
				return ig_error_set(err, IG_ERR_INVAL,
				                    "witness keys %zu and %zu (%s) are the same key: a quorum counts distinct "
				                    "witnesses, remove the duplicate",
				                    j + 1, i + 1, keys[i].name);
	size_t body_len, off;
	int rc = ig_checkpoint_split(text, len, &body_len, &off, err);
	if (rc != IG_OK)
		return rc;
	size_t count = 0;
	for (size_t k = 0; k < nkeys; k++) {
		bool ok = false;
		for (size_t p = off; p < len;) {
			const char *nl = memchr(text + p, '\n', len - p);
			size_t l = (size_t)(nl - (text + p)) + 1; /* split guarantees every line ends in "\n" */
			uint64_t t;
			ig_error line_err = {0};
			rc = ig_cosig_verify_line(&t, text + p, l, &keys[k], text, body_len, &line_err);
			if (rc == IG_OK) {
				ok = true;
			} else if (rc != IG_ERR_NOTFOUND) {
				/* A known key's line that fails rejects the whole note. */
				if (err)
					*err = line_err;
				return rc;
			}
			p += l;
		}
		if (ok)
			count++;
	}
	*valid = count;
	if (count < quorum)
		return ig_error_set(err, IG_ERR_CRYPTO,
		                    "only %zu of the %zu required witness cosignatures are present and valid: the "
		                    "checkpoint is not (yet) witnessed; wait for the witnesses or check their keys",
		                    count, quorum);
	return IG_OK;
}
