/*
 * witness.c: the witness's add-checkpoint decision, its state file and the
 * request/answer texts (C2SP tlog-witness).
 *
 * Why this exists: see ig_witness.h. The decision follows the order of
 * checks in tlog-witness (origin, signature, sizes, proof), so each refusal
 * is the status the spec names; the state file is parsed strictly and
 * checksummed, because a witness whose state was reset or rolled back would
 * cosign a fork without noticing.
 */
#include "ig_witness.h"
#include "ig_durable.h"
#include "ig_text.h"

#include "ig_checkpoint.h"
#include "ig_merkle.h"
#include "ig_proof.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_MAGIC "iotguard-witness-state/v1\n"
#define HASH_B64_LEN 44

int ig_witness_state_init(ig_witness_state *st, const char *origin)
{
	if (!st || !origin)
		return IG_ERR_INVAL;
	size_t n = strnlen(origin, IG_COSIG_NAME_MAX + 1);
	if (!ig_cosig_name_valid(origin, n))
		return IG_ERR_INVAL;
	memset(st, 0, sizeof *st);
	memcpy(st->origin, origin, n);
	ig_merkle_hash_empty(IG_MERKLE_SHA256, st->root);
	return IG_OK;
}

/* ---- the decision ---------------------------------------------------------- */

static int refuse(ig_witness_answer *ans, ig_witness_outcome o)
{
	ans->outcome = o;
	return (int)o;
}

int ig_witness_add_checkpoint(ig_witness_answer *ans, const ig_witness_state *st, const ig_witness_request *req,
                              const ig_cosig_vkey *log_key, const char *witness_name,
                              const uint8_t witness_sk[IG_SK_BYTES], uint64_t now, ig_error *err)
{
	if (!ans || !st || !req || !log_key || !witness_name || !witness_sk || (!req->checkpoint && req->checkpoint_len))
		return ig_error_set(err, IG_ERR_INVAL, "witness: missing argument");
	memset(ans, 0, sizeof *ans);
	if (log_key->type != IG_COSIG_TYPE_ED25519)
		return ig_error_set(err, IG_ERR_INVAL, "witness: the log key must be an Ed25519 note key (vkey type 0x01)");
	if (strcmp(st->origin, log_key->name) != 0)
		return ig_error_set(err, IG_ERR_STATE,
		                    "witness state is for log '%s' but the log key is '%s': wrong state file or key",
		                    st->origin, log_key->name);
	if (now == 0 || now > IG_COSIG_TIME_MAX)
		return ig_error_set(err, IG_ERR_INVAL, "witness: the time must be 1 .. 2^63-1 seconds");
	if (req->proof_len > IG_WITNESS_PROOF_MAX)
		return ig_error_set(err, IG_ERR_INVAL, "witness: more than %d proof hashes", IG_WITNESS_PROOF_MAX);

	const char *text = req->checkpoint ? req->checkpoint : "";
	size_t len = req->checkpoint_len;

	/* 404: only the origin line is read before the log is known. */
	const char *nl = memchr(text, '\n', len);
	size_t olen = strlen(log_key->name);
	if (!nl || (size_t)(nl - text) != olen || memcmp(text, log_key->name, olen) != 0) {
		ig_error_set(err, IG_ERR_NOTFOUND, "checkpoint origin is not '%s', the only log this witness follows",
		             log_key->name);
		return refuse(ans, IG_WITNESS_UNKNOWN_ORIGIN);
	}

	/* 403 for an unsigned note or a bad/missing log signature; 400 for a
	 * malformed one. */
	size_t body_len, sigs_off;
	int rc = ig_checkpoint_split(text, len, &body_len, &sigs_off, err);
	if (rc == IG_ERR_NOTFOUND)
		return refuse(ans, IG_WITNESS_FORBIDDEN);
	if (rc != IG_OK)
		return refuse(ans, IG_WITNESS_BAD_REQUEST);
	ig_checkpoint cp;
	rc = ig_checkpoint_verify(text, len, log_key->name, log_key->pk, &cp, err);
	if (rc == IG_ERR_CRYPTO)
		return refuse(ans, IG_WITNESS_FORBIDDEN);
	if (rc != IG_OK)
		return refuse(ans, IG_WITNESS_BAD_REQUEST);

	if (req->old_size > cp.size) {
		ig_error_set(err, IG_ERR_INVAL, "old size %" PRIu64 " is larger than the checkpoint size %" PRIu64,
		             req->old_size, cp.size);
		return refuse(ans, IG_WITNESS_BAD_REQUEST);
	}
	if (req->old_size != st->size) {
		ig_error_set(err, IG_ERR_STATE,
		             "old size %" PRIu64 " is not %" PRIu64 ", the size this witness last cosigned: resend with "
		             "a consistency proof from %" PRIu64,
		             req->old_size, st->size, st->size);
		ans->known_size = st->size;
		return refuse(ans, IG_WITNESS_CONFLICT);
	}
	uint8_t empty[IG_HASH_BYTES];
	ig_merkle_hash_empty(IG_MERKLE_SHA256, empty);
	if (cp.size == 0 && sodium_memcmp(cp.root, empty, IG_HASH_BYTES) != 0) {
		ig_error_set(err, IG_ERR_CORRUPT, "a checkpoint of size 0 must carry the empty tree's root SHA-256(\"\")");
		return refuse(ans, IG_WITNESS_UNPROCESSABLE);
	}
	if (req->old_size == 0) {
		if (req->proof_len != 0) {
			ig_error_set(err, IG_ERR_CORRUPT, "old size 0 needs an empty consistency proof, got %zu hashes",
			             req->proof_len);
			return refuse(ans, IG_WITNESS_UNPROCESSABLE);
		}
	} else if (req->old_size == cp.size) {
		if (sodium_memcmp(cp.root, st->root, IG_HASH_BYTES) != 0) {
			ig_error_set(err, IG_ERR_CORRUPT,
			             "fork: the log signed another root for size %" PRIu64 " than the one this witness "
			             "cosigned; refusing (keep both checkpoints as evidence)",
			             cp.size);
			return refuse(ans, IG_WITNESS_UNPROCESSABLE);
		}
		if (req->proof_len != 0) {
			ig_error_set(err, IG_ERR_CORRUPT, "equal sizes need an empty consistency proof, got %zu hashes",
			             req->proof_len);
			return refuse(ans, IG_WITNESS_UNPROCESSABLE);
		}
	} else if (ig_proof_consistency_verify(IG_MERKLE_SHA256, req->old_size, st->root, cp.size, cp.root,
	                                       (const uint8_t (*)[IG_HASH_BYTES])req->proof, req->proof_len) != IG_OK) {
		ig_error_set(err, IG_ERR_CORRUPT,
		             "the consistency proof from size %" PRIu64 " to %" PRIu64 " does not verify against the "
		             "tree this witness cosigned: a fork or a rewritten history; refusing",
		             req->old_size, cp.size);
		return refuse(ans, IG_WITNESS_UNPROCESSABLE);
	}

	rc = ig_cosig_sign(ans->lines, sizeof ans->lines, witness_name, witness_sk, now, text, body_len);
	if (rc < 0) {
		memset(ans, 0, sizeof *ans);
		return ig_error_set(err, rc, "witness: cannot make the cosignature (bad witness name '%s' or key?)",
		                    witness_name);
	}
	ans->lines_len = (size_t)rc;
	memset(&ans->state, 0, sizeof ans->state);
	memcpy(ans->state.origin, log_key->name, olen);
	ans->state.size = cp.size;
	memcpy(ans->state.root, cp.root, IG_HASH_BYTES);
	ans->outcome = IG_WITNESS_OK;
	return IG_WITNESS_OK;
}

/* ---- request and answer texts --------------------------------------------- */

/* One 32-byte hash in canonical padded base64 (44 characters). */
static bool parse_hash_b64(const char *s, size_t len, uint8_t out[IG_HASH_BYTES])
{
	size_t n = 0;
	return len == HASH_B64_LEN && ig_text_b64(out, IG_HASH_BYTES, &n, s, len) && n == IG_HASH_BYTES;
}

int ig_witness_request_encode(char *out, size_t cap, const ig_witness_request *req)
{
	if (!out || !req || req->proof_len > IG_WITNESS_PROOF_MAX || (!req->checkpoint && req->checkpoint_len))
		return IG_ERR_INVAL;
	int n = snprintf(out, cap, "old %" PRIu64 "\n", req->old_size);
	if (n < 0 || (size_t)n >= cap)
		goto too_small;
	size_t o = (size_t)n;
	for (size_t i = 0; i < req->proof_len; i++) {
		if (cap - o < HASH_B64_LEN + 2)
			goto too_small;
		sodium_bin2base64(out + o, HASH_B64_LEN + 1, req->proof[i], IG_HASH_BYTES, sodium_base64_VARIANT_ORIGINAL);
		o += HASH_B64_LEN;
		out[o++] = '\n';
	}
	if (cap - o < 1 + req->checkpoint_len + 1 || o + 1 + req->checkpoint_len > (size_t)INT32_MAX)
		goto too_small;
	out[o++] = '\n';
	if (req->checkpoint_len)
		memcpy(out + o, req->checkpoint, req->checkpoint_len);
	o += req->checkpoint_len;
	out[o] = '\0';
	return (int)o;
too_small:
	if (cap > 0)
		out[0] = '\0';
	return IG_ERR_RANGE;
}

int ig_witness_request_parse(ig_witness_request *req, const char *text, size_t len, ig_error *err)
{
	if (!req || !text)
		return ig_error_set(err, IG_ERR_INVAL, "witness request: missing text");
	memset(req, 0, sizeof *req);
	const char *p = text, *end = text + len;
	const char *nl = memchr(p, '\n', len);
	uint64_t old;
	if (!nl || nl - p < 5 || memcmp(p, "old ", 4) != 0 || !ig_text_u64(p + 4, (size_t)(nl - p - 4), &old))
		return ig_error_set(err, IG_ERR_INVAL,
		                    "witness request must start with 'old <size>' (decimal, no leading zeros) and a newline");
	p = nl + 1;
	size_t n = 0;
	for (;;) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			return ig_error_set(err, IG_ERR_INVAL,
			                    "witness request ends before the empty line that precedes the checkpoint");
		if (nl == p)
			break;
		if (n == IG_WITNESS_PROOF_MAX)
			return ig_error_set(err, IG_ERR_INVAL, "witness request has more than %d proof lines",
			                    IG_WITNESS_PROOF_MAX);
		if (!parse_hash_b64(p, (size_t)(nl - p), req->proof[n]))
			return ig_error_set(err, IG_ERR_INVAL,
			                    "witness request proof line %zu is not canonical base64 of a 32-byte hash", n + 1);
		n++;
		p = nl + 1;
	}
	p = nl + 1;
	if (p == end)
		return ig_error_set(err, IG_ERR_INVAL, "witness request has no checkpoint after the empty line");
	req->old_size = old;
	req->proof_len = n;
	req->checkpoint = p;
	req->checkpoint_len = (size_t)(end - p);
	return IG_OK;
}

static bool outcome_known(int status)
{
	switch (status) {
	case IG_WITNESS_OK:
	case IG_WITNESS_BAD_REQUEST:
	case IG_WITNESS_FORBIDDEN:
	case IG_WITNESS_UNKNOWN_ORIGIN:
	case IG_WITNESS_CONFLICT:
	case IG_WITNESS_UNPROCESSABLE:
		return true;
	default:
		return false;
	}
}

int ig_witness_answer_encode(char *out, size_t cap, const ig_witness_answer *ans)
{
	if (!out || !ans || !outcome_known((int)ans->outcome) || cap == 0)
		return IG_ERR_INVAL;
	int n;
	if (ans->outcome == IG_WITNESS_OK) {
		if (ans->lines_len == 0 || ans->lines_len >= sizeof ans->lines)
			return IG_ERR_INVAL;
		n = snprintf(out, cap, "%.*s", (int)ans->lines_len, ans->lines);
	} else if (ans->outcome == IG_WITNESS_CONFLICT) {
		n = snprintf(out, cap, "%" PRIu64 "\n", ans->known_size);
	} else {
		n = 0;
		out[0] = '\0';
	}
	if (n < 0 || (size_t)n >= cap) {
		out[0] = '\0';
		return IG_ERR_RANGE;
	}
	return n;
}

int ig_witness_answer_parse(ig_witness_answer *ans, int status, const char *body, size_t len, ig_error *err)
{
	if (!ans || (!body && len))
		return ig_error_set(err, IG_ERR_INVAL, "witness answer: missing argument");
	memset(ans, 0, sizeof *ans);
	if (!outcome_known(status))
		return ig_error_set(err, IG_ERR_INVAL, "witness answered with status %d, which add-checkpoint does not define",
		                    status);
	ans->outcome = (ig_witness_outcome)status;
	if (status == IG_WITNESS_CONFLICT) {
		if (len < 2 || body[len - 1] != '\n' || !ig_text_u64(body, len - 1, &ans->known_size))
			return ig_error_set(err, IG_ERR_INVAL,
			                    "witness conflict answer must be its cosigned size in decimal and a newline");
		return IG_OK;
	}
	if (status != IG_WITNESS_OK)
		return IG_OK; /* no body is defined; whatever came is ignored */
	if (len == 0 || len >= sizeof ans->lines || body[len - 1] != '\n')
		return ig_error_set(err, IG_ERR_INVAL,
		                    "witness answer must be 1 to %d bytes of newline-terminated signature lines",
		                    IG_WITNESS_ANSWER_MAX - 1);
	for (const char *p = body; p < body + len;) {
		const char *nl = memchr(p, '\n', (size_t)(body + len - p));
		const char *name;
		size_t name_len, blob_len;
		uint8_t blob[256];
		int rc = ig_cosig_line_split(&name, &name_len, blob, sizeof blob, &blob_len, p, (size_t)(nl - p) + 1, err);
		if (rc != IG_OK) {
			ig_error_prefix(err, "witness answer: ");
			return IG_ERR_INVAL;
		}
		p = nl + 1;
	}
	memcpy(ans->lines, body, len);
	ans->lines[len] = '\0';
	ans->lines_len = len;
	return IG_OK;
}

/* ---- the state file -------------------------------------------------------- */

/* Writes the four content lines; returns their length or <0. */
static int state_lines(char *out, size_t cap, const ig_witness_state *st)
{
	char root[HASH_B64_LEN + 1];
	sodium_bin2base64(root, sizeof root, st->root, IG_HASH_BYTES, sodium_base64_VARIANT_ORIGINAL);
	int n = snprintf(out, cap, STATE_MAGIC "origin %s\nsize %" PRIu64 "\nroot %s\n", st->origin, st->size, root);
	if (n < 0 || (size_t)n >= cap)
		return IG_ERR_RANGE;
	return n;
}

static void checksum_hex(char hex[2 * crypto_hash_sha256_BYTES + 1], const char *text, size_t len)
{
	uint8_t d[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(d, (const uint8_t *)text, len);
	ig_hex_encode(hex, d, sizeof d);
}

int ig_witness_state_encode(char *out, size_t cap, const ig_witness_state *st)
{
	if (!out || !st || cap == 0)
		return IG_ERR_INVAL;
	out[0] = '\0';
	size_t olen = strnlen(st->origin, sizeof st->origin);
	if (!ig_cosig_name_valid(st->origin, olen))
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	int n = state_lines(out, cap, st);
	if (n < 0)
		return n;
	char hex[2 * crypto_hash_sha256_BYTES + 1];
	checksum_hex(hex, out, (size_t)n);
	int m = snprintf(out + n, cap - (size_t)n, "sha256 %s\n", hex);
	if (m < 0 || (size_t)m >= cap - (size_t)n) {
		out[0] = '\0';
		return IG_ERR_RANGE;
	}
	return n + m;
}

#define STATE_DAMAGED                                                                                              \
	"; the witness state is damaged: restore it from a backup, or find the size this witness last cosigned "     \
	"from the log's published cosigned checkpoints; never start over with a new state, which could cosign a fork"

/* Reads "<key> <value>\n" at *p, checking the key; value is [*v, *vlen). */
static bool field(const char **p, const char *end, const char *key, const char **v, size_t *vlen)
{
	size_t k = strlen(key);
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	if (!nl || (size_t)(nl - *p) <= k + 1 || memcmp(*p, key, k) != 0 || (*p)[k] != ' ')
		return false;
	*v = *p + k + 1;
	*vlen = (size_t)(nl - *v);
	*p = nl + 1;
	return true;
}

int ig_witness_state_parse(ig_witness_state *st, const char *text, size_t len, ig_error *err)
{
	if (!st || !text)
		return ig_error_set(err, IG_ERR_INVAL, "witness state parse: missing text");
	if (ig_init() != IG_OK)
		return ig_error_set(err, IG_ERR_CRYPTO, "witness state parse: libsodium failed to initialise");
	const char *p = text, *end = text + len;
	const size_t mlen = strlen(STATE_MAGIC);
	if (len < mlen || memcmp(text, STATE_MAGIC, mlen) != 0)
		return ig_error_set(err, IG_ERR_CORRUPT, "witness state does not start with 'iotguard-witness-state/v1'"
		                    STATE_DAMAGED);
	p += mlen;
	ig_witness_state s;
	memset(&s, 0, sizeof s);
	const char *v;
	size_t vlen;
	if (!field(&p, end, "origin", &v, &vlen) || !ig_cosig_name_valid(v, vlen))
		return ig_error_set(err, IG_ERR_CORRUPT, "witness state line 2 is not 'origin <log origin>'" STATE_DAMAGED);
	memcpy(s.origin, v, vlen);
	if (!field(&p, end, "size", &v, &vlen) || !ig_text_u64(v, vlen, &s.size))
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "witness state line 3 is not 'size <decimal, no leading zeros>'" STATE_DAMAGED);
	if (!field(&p, end, "root", &v, &vlen) || !parse_hash_b64(v, vlen, s.root))
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "witness state line 4 is not 'root <canonical base64 of 32 bytes>'" STATE_DAMAGED);
	size_t content = (size_t)(p - text);
	char want[2 * crypto_hash_sha256_BYTES + 1];
	checksum_hex(want, text, content);
	if (!field(&p, end, "sha256", &v, &vlen) || vlen != 2 * crypto_hash_sha256_BYTES ||
	    memcmp(v, want, vlen) != 0)
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "witness state line 5 (sha256 of the lines above) is missing or does not match: the "
		                    "file was torn or altered" STATE_DAMAGED);
	if (p != end)
		return ig_error_set(err, IG_ERR_CORRUPT, "witness state has bytes after its sha256 line" STATE_DAMAGED);
	*st = s;
	return IG_OK;
}

int ig_witness_state_save(const char *path, const ig_witness_state *st, ig_error *err)
{
	if (!path || !*path || !st)
		return ig_error_set(err, IG_ERR_INVAL, "witness state save: missing path or state");
	char text[IG_WITNESS_STATE_FILE_MAX];
	int len = ig_witness_state_encode(text, sizeof text, st);
	if (len < 0)
		return ig_error_set(err, len, "witness state save: the state has an invalid origin");
	int rc = ig_durable_replace(path, text, (size_t)len, "witness state", err);
	if (rc != IG_OK)
		ig_error_prefix(err, "the witness must not answer until its state is saved: ");
	return rc;
}

int ig_witness_state_load(ig_witness_state *st, const char *path, ig_error *err)
{
	if (!st || !path || !*path)
		return ig_error_set(err, IG_ERR_INVAL, "witness state load: missing path");
	char text[IG_WITNESS_STATE_FILE_MAX + 1];
	size_t got = 0;
	int rc = ig_durable_read(text, sizeof text, &got, path, "witness state", err);
	if (rc == IG_ERR_NOTFOUND)
		return ig_error_set(err, IG_ERR_NOTFOUND,
		                    "witness state %s does not exist: create it only for a witness that has never "
		                    "cosigned; if this witness did cosign, restore the file from a backup",
		                    path);
	if (rc == IG_ERR_RANGE)
		return ig_error_set(err, IG_ERR_CORRUPT, "witness state %s is larger than %d bytes" STATE_DAMAGED, path,
		                    IG_WITNESS_STATE_FILE_MAX);
	if (rc != IG_OK)
		return rc;
	rc = ig_witness_state_parse(st, text, got, err);
	if (rc != IG_OK)
		ig_error_prefix(err, "%s: ", path);
	return rc;
}
