/*
 * checkpoint.c: C2SP tlog-checkpoint bodies in C2SP signed notes, Ed25519.
 *
 * Why this exists: the checkpoint is the one artefact auditors keep, so it
 * must be byte-exact with the public specs (any note tool can check it) and
 * the parser must be strict: a checkpoint that is accepted in two spellings
 * invites confusion about what was signed. We accept exactly what we
 * produce, plus signature lines from other keys (cosigners), which the
 * signed-note spec says a verifier must skip. Witness cosignature lines are
 * added to a signed checkpoint here (ig_checkpoint_add_signatures) and
 * checked in cosig.c.
 */
#include "ig_checkpoint.h"
#include "ig_text.h"

#include "ig_cosig.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ORIGIN_PREFIX "iotguard/"
#define EM_DASH_SPACE "\xe2\x80\x94 "   /* U+2014 then a space */
#define EM_DASH_SPACE_LEN 4
#define ROOT_B64_LEN 44                   /* base64 of 32 bytes, padded */
#define KEY_ID_BYTES 4
#define SIG_BLOB_BYTES (KEY_ID_BYTES + crypto_sign_BYTES)
#define SIG_BLOB_B64_LEN 92               /* base64 of 68 bytes, padded */
#define MAX_NOTE_BYTES 16384              /* room for cosignatures; far beyond ours */
#define MAX_SIG_LINES 100                 /* the signed-note spec's suggested bound */
#define MAX_FOREIGN_SIG_BYTES 256

int ig_checkpoint_origin(char *out, size_t cap, const char *cluster)
{
	if (!out || !cluster || !ig_id_valid(cluster, strnlen(cluster, IG_CLUSTER_MAX + 1)))
		return IG_ERR_INVAL;
	int n = snprintf(out, cap, ORIGIN_PREFIX "%s", cluster);
	if (n < 0 || (size_t)n >= cap)
		return IG_ERR_RANGE;
	return n;
}

/* Key names may not be empty or contain spaces, '+' or control characters
 * (signed-note spec); our origin doubles as the key name. */
static bool key_name_valid(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c == 0x7f || c == '+')
			return false;
	}
	return true;
}

/* A key name may hold any byte above space, but an error message must not
 * carry raw bytes from a file an attacker may have written (they can be
 * invalid UTF-8 or terminal escapes): anything outside printable ASCII is
 * shown as \xNN. */
static void printable(char *out, size_t cap, const char *s)
{
	size_t o = 0;
	for (; *s && o + 5 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c > 0x20 && c < 0x7f && c != '\\')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
	}
	out[o] = '\0';
}

static void key_id(uint8_t id[KEY_ID_BYTES], const char *name, size_t name_len, const uint8_t pk[IG_PK_BYTES])
{
	static const uint8_t sep_and_alg[2] = {0x0a, 0x01}; /* newline, Ed25519 signature type */
	crypto_hash_sha256_state st;
	uint8_t digest[crypto_hash_sha256_BYTES];

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const uint8_t *)name, name_len);
	crypto_hash_sha256_update(&st, sep_and_alg, sizeof sep_and_alg);
	crypto_hash_sha256_update(&st, pk, IG_PK_BYTES);
	crypto_hash_sha256_final(&st, digest);
	memcpy(id, digest, KEY_ID_BYTES);
}

/* Writes "<origin>\n<size>\n<root b64>\n"; returns its length or <0. */
static int format_body(char *out, size_t cap, const ig_checkpoint *cp)
{
	char root_b64[ROOT_B64_LEN + 1];
	sodium_bin2base64(root_b64, sizeof root_b64, cp->root, IG_HASH_BYTES, sodium_base64_VARIANT_ORIGINAL);
	int n = snprintf(out, cap, "%s\n%" PRIu64 "\n%s\n", cp->origin, cp->size, root_b64);
	if (n < 0 || (size_t)n >= cap)
		return IG_ERR_RANGE;
	return n;
}

int ig_checkpoint_sign(char *out, size_t cap, const ig_checkpoint *cp, const uint8_t sk[IG_SK_BYTES])
{
	if (!out || !cp || !sk)
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	size_t origin_len = strnlen(cp->origin, sizeof cp->origin);
	if (origin_len == sizeof cp->origin || !key_name_valid(cp->origin, origin_len))
		return IG_ERR_INVAL;

	int body_len = format_body(out, cap, cp);
	if (body_len < 0)
		return body_len;

	uint8_t blob[SIG_BLOB_BYTES];
	key_id(blob, cp->origin, origin_len, sk + crypto_sign_SEEDBYTES);
	if (crypto_sign_detached(blob + KEY_ID_BYTES, NULL, (const uint8_t *)out, (size_t)body_len, sk) != 0)
		return IG_ERR_CRYPTO;
	char blob_b64[SIG_BLOB_B64_LEN + 1];
	sodium_bin2base64(blob_b64, sizeof blob_b64, blob, sizeof blob, sodium_base64_VARIANT_ORIGINAL);

	size_t left = cap - (size_t)body_len;
	int n = snprintf(out + body_len, left, "\n" EM_DASH_SPACE "%s %s\n", cp->origin, blob_b64);
	if (n < 0 || (size_t)n >= left) {
		if (cap > 0)
			out[0] = '\0';
		return IG_ERR_RANGE;
	}
	return body_len + n;
}

/* ---- strict parsing ------------------------------------------------------ */

int ig_checkpoint_verify(const char *text, size_t len, const char *expected_origin,
                         const uint8_t pk[IG_PK_BYTES], ig_checkpoint *cp, ig_error *err)
{
	if (!text || !pk)
		return ig_error_set(err, IG_ERR_INVAL, "checkpoint verify: missing text or public key");
	if (ig_init() != IG_OK)
		return ig_error_set(err, IG_ERR_CRYPTO, "checkpoint verify: libsodium failed to initialise");
	if (len > MAX_NOTE_BYTES)
		return ig_error_set(err, IG_ERR_CORRUPT, "checkpoint is %zu bytes, more than the %d allowed",
		                    len, MAX_NOTE_BYTES);
	if (memchr(text, '\0', len))
		return ig_error_set(err, IG_ERR_CORRUPT, "checkpoint contains a NUL byte");

	ig_checkpoint parsed;
	memset(&parsed, 0, sizeof parsed);
	ig_text_reader lr;
	ig_text_reader_init(&lr, text, len);
	const char *line;
	size_t n;

	/* Line 1: origin, which is also the signing key's name. */
	if (!ig_text_line(&lr, &line, &n))
		return ig_error_set(err, IG_ERR_CORRUPT, "checkpoint line 1 (origin) is missing or unterminated");
	if (!key_name_valid(line, n) || n >= sizeof parsed.origin)
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "checkpoint line 1 (origin) is empty, too long or has spaces/'+'/control characters");
	memcpy(parsed.origin, line, n);
	parsed.origin[n] = '\0';
	char shown[4 * sizeof parsed.origin];
	printable(shown, sizeof shown, parsed.origin);
	if (expected_origin && strcmp(parsed.origin, expected_origin) != 0) {
		char want[4 * sizeof parsed.origin];
		printable(want, sizeof want, expected_origin);
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "checkpoint origin is '%s' but this ledger's origin is '%s' (checkpoint of another cluster?)",
		                    shown, want);
	}
	const char *body_start = text;

	/* Line 2: tree size. */
	if (!ig_text_line(&lr, &line, &n))
		return ig_error_set(err, IG_ERR_CORRUPT, "checkpoint line 2 (size) is missing or unterminated");
	if (!ig_text_u64(line, n, &parsed.size))
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "checkpoint line 2 (size) is not a decimal number without leading zeros");

	/* Line 3: root hash. */
	if (!ig_text_line(&lr, &line, &n))
		return ig_error_set(err, IG_ERR_CORRUPT, "checkpoint line 3 (root) is missing or unterminated");
	uint8_t root[MAX_FOREIGN_SIG_BYTES];
	size_t root_len = 0;
	if (n != ROOT_B64_LEN || !ig_text_b64(root, sizeof root, &root_len, line, n) ||
	    root_len != IG_HASH_BYTES)
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "checkpoint line 3 (root) is not canonical base64 of a 32-byte hash");
	memcpy(parsed.root, root, IG_HASH_BYTES);
	size_t body_len = (size_t)(lr.p - body_start);

	/* Line 4: the blank line that ends the body. We write no extension
	 * lines, so any other text here is not ours. */
	if (!ig_text_line(&lr, &line, &n))
		return ig_error_set(err, IG_ERR_CORRUPT, "checkpoint line 4 (blank separator) is missing");
	if (n != 0)
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "checkpoint line 4 must be empty (extension lines are not accepted)");

	/* Signature lines: ours is required, others are skipped. */
	uint8_t want_id[KEY_ID_BYTES];
	size_t origin_len = strlen(parsed.origin);
	key_id(want_id, parsed.origin, origin_len, pk);
	int sig_lines = 0, ours = 0;
	while (lr.p < lr.end) {
		if (!ig_text_line(&lr, &line, &n))
			return ig_error_set(err, IG_ERR_CORRUPT, "checkpoint line %d (signature) is not terminated by a newline",
			                    lr.lineno + 1);
		if (++sig_lines > MAX_SIG_LINES)
			return ig_error_set(err, IG_ERR_CORRUPT, "checkpoint has more than %d signature lines",
			                    MAX_SIG_LINES);
		if (n < EM_DASH_SPACE_LEN || memcmp(line, EM_DASH_SPACE, EM_DASH_SPACE_LEN) != 0)
			return ig_error_set(err, IG_ERR_CORRUPT,
			                    "checkpoint line %d is not a signature line (must start with an em dash and a space)",
			                    lr.lineno);
		const char *name = line + EM_DASH_SPACE_LEN;
		const char *line_end = line + n;
		const char *sp = memchr(name, ' ', (size_t)(line_end - name));
		if (!sp || !key_name_valid(name, (size_t)(sp - name)))
			return ig_error_set(err, IG_ERR_CORRUPT,
			                    "checkpoint line %d: signature line needs '<key name> <base64 signature>'",
			                    lr.lineno);
		size_t name_len = (size_t)(sp - name);
		const char *b64 = sp + 1;
		size_t b64_len = (size_t)(line_end - b64);
		uint8_t blob[MAX_FOREIGN_SIG_BYTES];
		size_t blob_len = 0;
		if (!ig_text_b64(blob, sizeof blob, &blob_len, b64, b64_len) || blob_len <= KEY_ID_BYTES)
			return ig_error_set(err, IG_ERR_CORRUPT,
			                    "checkpoint line %d: signature is not canonical base64 of key id + signature",
			                    lr.lineno);
		if (name_len != origin_len || memcmp(name, parsed.origin, origin_len) != 0 ||
		    memcmp(blob, want_id, KEY_ID_BYTES) != 0)
			continue; /* another key (a cosigner, or an old key of the same name) */
		if (blob_len != SIG_BLOB_BYTES ||
		    crypto_sign_verify_detached(blob + KEY_ID_BYTES, (const uint8_t *)body_start, body_len, pk) != 0)
			return ig_error_set(err, IG_ERR_CRYPTO,
			                    "checkpoint line %d: signature by the cluster-head key does not verify "
			                    "(checkpoint tampered or signed by another key)",
			                    lr.lineno);
		ours++;
	}
	if (sig_lines == 0)
		return ig_error_set(err, IG_ERR_CORRUPT, "checkpoint has no signature lines");
	if (ours == 0) {
		char idhex[2 * KEY_ID_BYTES + 1];
		ig_hex_encode(idhex, want_id, KEY_ID_BYTES);
		return ig_error_set(err, IG_ERR_CRYPTO,
		                    "checkpoint has no signature by the cluster-head key %s+%s (wrong key or replaced checkpoint)",
		                    shown, idhex);
	}
	if (cp)
		*cp = parsed;
	return IG_OK;
}

/* ---- the parts of a note, and adding signature lines --------------------- */

int ig_checkpoint_split(const char *text, size_t len, size_t *body_len, size_t *sigs_off, ig_error *err)
{
	if (!text || !body_len || !sigs_off)
		return ig_error_set(err, IG_ERR_INVAL, "checkpoint split: missing argument");
	if (len > MAX_NOTE_BYTES)
		return ig_error_set(err, IG_ERR_CORRUPT, "checkpoint is %zu bytes, more than the %d allowed", len,
		                    MAX_NOTE_BYTES);
	if (memchr(text, '\0', len))
		return ig_error_set(err, IG_ERR_CORRUPT, "checkpoint contains a NUL byte");
	ig_text_reader lr;
	ig_text_reader_init(&lr, text, len);
	const char *line;
	size_t n;
	for (int i = 1; i <= 3; i++)
		if (!ig_text_line(&lr, &line, &n) || n == 0)
			return ig_error_set(err, IG_ERR_CORRUPT, "checkpoint line %d (%s) is missing, empty or unterminated", i,
			                    i == 1 ? "origin" : i == 2 ? "size" : "root");
	size_t body = (size_t)(lr.p - text);
	if (!ig_text_line(&lr, &line, &n) || n != 0)
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "checkpoint line 4 must be the empty line that ends the body (extension lines are "
		                    "not accepted)");
	size_t off = (size_t)(lr.p - text);
	if (off == len)
		return ig_error_set(err, IG_ERR_NOTFOUND, "checkpoint has no signature lines (it is not signed)");
	if (text[len - 1] != '\n')
		return ig_error_set(err, IG_ERR_CORRUPT, "checkpoint's last signature line is not terminated by a newline");
	*body_len = body;
	*sigs_off = off;
	return IG_OK;
}

/* A signature line's key, as the signed-note spec identifies keys: its name
 * and the key id that starts its signature. */
typedef struct sig_key {
	const char *name;
	size_t name_len;
	uint8_t id[KEY_ID_BYTES];
} sig_key;

typedef struct sig_line {
	const char *p;
	size_t len;        /* with its "\n" */
	sig_key key;
} sig_line;

static int split_sig_lines(sig_line *out, size_t *count, size_t cap, const char *p, size_t len, const char *what,
                           ig_error *err)
{
	const char *end = p + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			return ig_error_set(err, IG_ERR_CORRUPT, "%s: the last signature line has no newline", what);
		if (*count == cap)
			return ig_error_set(err, IG_ERR_RANGE,
			                    "%s: more than %d signature lines; a checkpoint holds at most that many", what,
			                    MAX_SIG_LINES);
		sig_line *s = &out[*count];
		uint8_t blob[MAX_FOREIGN_SIG_BYTES];
		size_t blob_len;
		int rc = ig_cosig_line_split(&s->key.name, &s->key.name_len, blob, sizeof blob, &blob_len, p,
		                             (size_t)(nl - p) + 1, err);
		if (rc != IG_OK) {
			ig_error_prefix(err, "%s: ", what);
			return rc;
		}
		memcpy(s->key.id, blob, KEY_ID_BYTES);
		s->p = p;
		s->len = (size_t)(nl - p) + 1;
		(*count)++;
		p = nl + 1;
	}
	return IG_OK;
}

static bool same_sig_key(const sig_key *a, const sig_key *b)
{
	return a->name_len == b->name_len && memcmp(a->name, b->name, a->name_len) == 0 &&
	       memcmp(a->id, b->id, KEY_ID_BYTES) == 0;
}

static int add_signatures(char *out, size_t cap, const char *text, size_t len, const char *lines, size_t lines_len,
                          ig_error *err)
{
	size_t body_len, off;
	int rc = ig_checkpoint_split(text, len, &body_len, &off, err);
	if (rc != IG_OK)
		return rc;
	if (lines_len > MAX_NOTE_BYTES || memchr(lines, '\0', lines_len))
		return ig_error_set(err, IG_ERR_CORRUPT, "signature lines to add are too long or contain a NUL byte");

	sig_line have[MAX_SIG_LINES], add[MAX_SIG_LINES];
	size_t nhave = 0, nadd = 0;
	rc = split_sig_lines(have, &nhave, MAX_SIG_LINES, text + off, len - off, "checkpoint", err);
	if (rc == IG_OK)
		rc = split_sig_lines(add, &nadd, MAX_SIG_LINES, lines, lines_len, "signature lines to add", err);
	if (rc != IG_OK)
		return rc;

	/* Every existing line stays where it is unless a new line by the same key
	 * replaces it; the last new line of a key wins; the rest are appended. */
	const sig_line *final[2 * MAX_SIG_LINES];
	size_t nfinal = 0;
	for (size_t i = 0; i < nhave; i++) {
		const sig_line *pick = &have[i];
		for (size_t j = 0; j < nadd; j++)
			if (same_sig_key(&add[j].key, &have[i].key))
				pick = &add[j];
		bool dup = false;
		for (size_t k = 0; k < nfinal && !dup; k++)
			dup = same_sig_key(&final[k]->key, &pick->key);
		if (!dup)
			final[nfinal++] = pick;
	}
	for (size_t j = 0; j < nadd; j++) {
		bool placed = false;
		for (size_t k = 0; k < nfinal && !placed; k++)
			placed = same_sig_key(&final[k]->key, &add[j].key);
		if (placed)
			continue;
		const sig_line *pick = &add[j];
		for (size_t j2 = j + 1; j2 < nadd; j2++)
			if (same_sig_key(&add[j2].key, &add[j].key))
				pick = &add[j2];
		final[nfinal++] = pick;
	}
	if (nfinal > MAX_SIG_LINES)
		return ig_error_set(err, IG_ERR_RANGE, "checkpoint would have %zu signature lines, more than the %d allowed",
		                    nfinal, MAX_SIG_LINES);

	size_t total = off;
	for (size_t k = 0; k < nfinal; k++)
		total += final[k]->len;
	if (total >= cap)
		return ig_error_set(err, IG_ERR_RANGE,
		                    "checkpoint with its signature lines is %zu bytes, more than the %zu-byte buffer", total,
		                    cap ? cap - 1 : 0);
	if (total > (size_t)INT32_MAX)
		return ig_error_set(err, IG_ERR_RANGE, "checkpoint too long");
	/* The inputs may overlap out (a caller adding lines to its own buffer),
	 * so the result is assembled in a scratch copy. */
	char *tmp = malloc(total + 1);
	if (!tmp)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory adding checkpoint signatures");
	memcpy(tmp, text, off);
	size_t o = off;
	for (size_t k = 0; k < nfinal; k++) {
		memcpy(tmp + o, final[k]->p, final[k]->len);
		o += final[k]->len;
	}
	memcpy(out, tmp, total);
	out[total] = '\0';
	free(tmp);
	return (int)total;
}

static bool overlaps(const char *a, size_t alen, const char *b, size_t blen)
{
	uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
	return pa < pb + blen && pb < pa + alen;
}

int ig_checkpoint_add_signatures(char *out, size_t cap, const char *text, size_t len, const char *lines,
                                 size_t lines_len, ig_error *err)
{
	if (!out || !text || (!lines && lines_len))
		return ig_error_set(err, IG_ERR_INVAL, "checkpoint add signatures: missing argument");
	int rc = add_signatures(out, cap, text, len, lines, lines_len, err);
	/* A failure leaves out empty, unless out holds an input (in place). */
	if (rc < 0 && cap > 0 && !overlaps(out, cap, text, len) && !(lines_len && overlaps(out, cap, lines, lines_len)))
		out[0] = '\0';
	return rc;
}
