/*
 * tlogproof.c: format and strict parse of C2SP tlog-proof@v1 texts.
 *
 * Why this exists: see ig_tlogproof.h. The parser accepts exactly one
 * spelling of each proof, so that two files that say the same thing are the
 * same bytes, and reads hostile input without trusting any length in it:
 * every line is found with memchr inside the given length, every decode is
 * bounded by the output it has room for.
 */
#include "ig_tlogproof.h"
#include "ig_text.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define HASH_B64_LEN 44   /* base64 of 32 bytes, padded */

/* Bytes that b64len characters of padded standard base64 decode to, or
 * SIZE_MAX if b64len cannot be such a text. */
static size_t b64_decoded_len(const char *b64, size_t b64len)
{
	if (b64len == 0 || b64len % 4 != 0)
		return SIZE_MAX;
	size_t pad = (b64[b64len - 1] == '=') + (b64len >= 2 && b64[b64len - 2] == '=');
	return b64len / 4 * 3 - pad;
}

/* A checkpoint we can place after the blank line: non-empty, a non-empty
 * first line (else the blank line would be ambiguous), newline-terminated,
 * no NUL. */
static bool checkpoint_shape_ok(const char *cp, size_t len)
{
	return len > 0 && cp[0] != '\n' && cp[len - 1] == '\n' && !memchr(cp, '\0', len);
}

int ig_tlogproof_format(char *out, size_t cap, const uint8_t *extra, size_t extra_len, uint64_t index,
                        const uint8_t (*path)[IG_HASH_BYTES], size_t n, const char *checkpoint,
                        size_t checkpoint_len)
{
	if (!out || !checkpoint || (n > 0 && !path))
		return IG_ERR_INVAL;
	if (cap > 0)
		out[0] = '\0';
	if ((extra != NULL) != (extra_len > 0))
		return IG_ERR_INVAL; /* an empty extra, or a length without data */
	if (n > IG_TLOGPROOF_MAX_HASHES)
		return IG_ERR_INVAL;
	if (extra_len > IG_TLOGPROOF_EXTRA_MAX || checkpoint_len > IG_TLOGPROOF_CHECKPOINT_MAX)
		return IG_ERR_RANGE;
	if (!checkpoint_shape_ok(checkpoint, checkpoint_len))
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;

	size_t need = sizeof IG_TLOGPROOF_HEADER + 27 + 45 * n + 1 + checkpoint_len + 1;
	if (extra)
		need += 7 + 4 * ((extra_len + 2) / 3);
	if (need > cap)
		return IG_ERR_RANGE;

	size_t o = 0;
	memcpy(out, IG_TLOGPROOF_HEADER "\n", sizeof IG_TLOGPROOF_HEADER);
	o += sizeof IG_TLOGPROOF_HEADER;
	if (extra) {
		memcpy(out + o, "extra ", 6);
		o += 6;
		sodium_bin2base64(out + o, cap - o, extra, extra_len, sodium_base64_VARIANT_ORIGINAL);
		o += strlen(out + o);
		out[o++] = '\n';
	}
	o += (size_t)snprintf(out + o, cap - o, "index %" PRIu64 "\n", index);
	for (size_t i = 0; i < n; i++) {
		sodium_bin2base64(out + o, cap - o, path[i], IG_HASH_BYTES, sodium_base64_VARIANT_ORIGINAL);
		o += HASH_B64_LEN;
		out[o++] = '\n';
	}
	out[o++] = '\n';
	memcpy(out + o, checkpoint, checkpoint_len);
	o += checkpoint_len;
	out[o] = '\0';
	return (int)o;
}

/* ---- strict parsing ------------------------------------------------------ */

static bool starts_with(const char *line, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);
	return len >= n && memcmp(line, prefix, n) == 0;
}

/* Exactly want bytes, in the one canonical base64 spelling of them. */
static bool b64_exactly(uint8_t *out, size_t want, const char *b64, size_t len)
{
	size_t got = 0;
	return ig_text_b64(out, want, &got, b64, len) && got == want;
}

int ig_tlogproof_parse(ig_tlogproof *p, uint8_t *extra, size_t extra_cap, const char *text, size_t len,
                       ig_error *err)
{
	if (!p || !text || (extra_cap > 0 && !extra))
		return ig_error_set(err, IG_ERR_INVAL, "tlog-proof parse: missing text or output");
	memset(p, 0, sizeof *p);
	if (ig_init() != IG_OK)
		return ig_error_set(err, IG_ERR_CRYPTO, "tlog-proof parse: libsodium failed to initialise");
	if (len > IG_TLOGPROOF_TEXT_MAX)
		return ig_error_set(err, IG_ERR_RANGE, "tlog-proof is %zu bytes, more than the %zu a proof can be",
		                    len, (size_t)IG_TLOGPROOF_TEXT_MAX);
	if (memchr(text, '\0', len))
		return ig_error_set(err, IG_ERR_CORRUPT, "tlog-proof contains a NUL byte (not a proof text)");

	ig_text_reader r;
	ig_text_reader_init(&r, text, len);
	const char *line;
	size_t n;
	if (!ig_text_line(&r, &line, &n) || n != strlen(IG_TLOGPROOF_HEADER) ||
	    memcmp(line, IG_TLOGPROOF_HEADER, n) != 0)
		return ig_error_set(err, IG_ERR_CORRUPT, "tlog-proof line 1 must be '" IG_TLOGPROOF_HEADER
		                    "' (not a tlog proof, or another version)");

	if (!ig_text_line(&r, &line, &n))
		return ig_error_set(err, IG_ERR_CORRUPT, "tlog-proof line 2 ('extra' or 'index') is missing or "
		                    "unterminated");
	if (starts_with(line, n, "extra ")) {
		const char *b64 = line + 6;
		size_t b64len = n - 6;
		size_t want = b64_decoded_len(b64, b64len);
		if (b64len == 0 || want == SIZE_MAX || want == 0)
			return ig_error_set(err, IG_ERR_CORRUPT, "tlog-proof line %d (extra) is not padded base64 of "
			                    "at least one byte", r.lineno);
		if (want > IG_TLOGPROOF_EXTRA_MAX || want > extra_cap)
			return ig_error_set(err, IG_ERR_RANGE, "tlog-proof line %d (extra) holds %zu bytes, more than "
			                    "the %zu expected here", r.lineno, want,
			                    extra_cap < IG_TLOGPROOF_EXTRA_MAX ? extra_cap : (size_t)IG_TLOGPROOF_EXTRA_MAX);
		if (!b64_exactly(extra, want, b64, b64len))
			return ig_error_set(err, IG_ERR_CORRUPT, "tlog-proof line %d (extra) is not canonical standard "
			                    "base64", r.lineno);
		p->has_extra = true;
		p->extra_len = want;
		if (!ig_text_line(&r, &line, &n))
			return ig_error_set(err, IG_ERR_CORRUPT, "tlog-proof line %d (index) is missing or unterminated",
			                    r.lineno + 1);
	}

	if (!starts_with(line, n, "index ") || !ig_text_u64(line + 6, n - 6, &p->index))
		return ig_error_set(err, IG_ERR_CORRUPT, "tlog-proof line %d must be 'index N' with N a decimal "
		                    "number without leading zeros", r.lineno);

	for (;;) {
		if (!ig_text_line(&r, &line, &n))
			return ig_error_set(err, IG_ERR_CORRUPT, "tlog-proof ends at line %d without the empty line "
			                    "that comes before the checkpoint", r.lineno + 1);
		if (n == 0)
			break;
		if (p->n == IG_TLOGPROOF_MAX_HASHES)
			return ig_error_set(err, IG_ERR_CORRUPT, "tlog-proof line %d: more than %d proof hashes (no "
			                    "tree of up to 2^63 entries needs that many)", r.lineno, IG_TLOGPROOF_MAX_HASHES);
		if (n != HASH_B64_LEN || !b64_exactly(p->path[p->n], IG_HASH_BYTES, line, n))
			return ig_error_set(err, IG_ERR_CORRUPT, "tlog-proof line %d is not canonical base64 of a "
			                    "32-byte hash", r.lineno);
		p->n++;
	}

	size_t cp_len = (size_t)(r.end - r.p);
	if (cp_len > IG_TLOGPROOF_CHECKPOINT_MAX)
		return ig_error_set(err, IG_ERR_RANGE, "tlog-proof checkpoint (from line %d) is %zu bytes, more than "
		                    "the %d allowed", r.lineno + 1, cp_len, IG_TLOGPROOF_CHECKPOINT_MAX);
	if (!checkpoint_shape_ok(r.p, cp_len))
		return ig_error_set(err, IG_ERR_CORRUPT, "tlog-proof checkpoint (from line %d) is missing, starts "
		                    "with an empty line or does not end with a newline", r.lineno + 1);
	p->checkpoint = r.p;
	p->checkpoint_len = cp_len;
	return IG_OK;
}
