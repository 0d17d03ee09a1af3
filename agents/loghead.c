/*
 * loghead.c: the device's accepted checkpoint, its refusal record and the
 * checks of the cluster head's proofs (loghead.h says why).
 */
#include "loghead.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ig_durable.h"
#include "ig_json.h"
#include "ig_merkle.h"
#include "ig_proof.h"
#include "ig_record.h"
#include "ig_text.h"

#define REFUSAL_MAX (256 + IG_LOGHEAD_DETAIL_MAX + 2 * IG_CHECKPOINT_MAX)

int ig_loghead_trust_init(ig_loghead_trust *trust, const char *cluster, const uint8_t ch_pk[IG_PK_BYTES])
{
	memset(trust, 0, sizeof *trust);
	if (ig_checkpoint_origin(trust->origin, sizeof trust->origin, cluster) < 0)
		return IG_ERR_INVAL;
	memcpy(trust->ch_pk, ch_pk, IG_PK_BYTES);
	return IG_OK;
}

int ig_loghead_parse(ig_loghead *out, const ig_loghead_trust *trust, const char *text, size_t len, ig_error *err)
{
	if (len >= sizeof out->text)
		return ig_error_set(err, IG_ERR_RANGE, "checkpoint of %zu bytes is longer than the %d this device keeps", len,
		                    IG_CHECKPOINT_MAX - 1);
	int rc = ig_checkpoint_verify(text, len, trust->origin, trust->ch_pk, &out->cp, err);
	if (rc != IG_OK)
		return rc;
	out->cosigned = 0;
	if (trust->nwitnesses > 0) {
		rc = ig_cosig_count(&out->cosigned, text, len, trust->witnesses, trust->nwitnesses, 0, err);
		if (rc != IG_OK)
			return rc;
	}
	memcpy(out->text, text, len);
	out->text[len] = '\0';
	out->len = len;
	return IG_OK;
}

bool ig_loghead_witnessed(const ig_loghead *h, const ig_loghead_trust *trust)
{
	return h->cosigned >= trust->quorum;
}

ig_loghead_relation ig_loghead_compare(const ig_loghead *accepted, const ig_loghead *cand)
{
	if (!accepted)
		return IG_LOGHEAD_FIRST;
	if (cand->cp.size > accepted->cp.size)
		return IG_LOGHEAD_NEWER;
	if (cand->cp.size < accepted->cp.size)
		return IG_LOGHEAD_OLDER;
	/* Roots are public: no constant-time compare needed, but it costs nothing. */
	return sodium_memcmp(cand->cp.root, accepted->cp.root, IG_HASH_BYTES) == 0 ? IG_LOGHEAD_SAME : IG_LOGHEAD_FORK;
}

/* The "proof" array: 0..IG_PROOF_MAX standard-base64 32-byte hashes. */
static int read_path(uint8_t (*path)[IG_HASH_BYTES], size_t *n, const cJSON *answer, ig_error *err)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(answer, "proof");
	if (!cJSON_IsArray(arr))
		return ig_error_set(err, IG_ERR_INVAL, "the answer has no \"proof\" array");
	int count = cJSON_GetArraySize(arr);
	if (count < 0 || count > IG_PROOF_MAX)
		return ig_error_set(err, IG_ERR_INVAL, "the answer's proof has %d hashes (at most %d)", count, IG_PROOF_MAX);
	size_t i = 0;
	const cJSON *h;
	cJSON_ArrayForEach(h, arr) {
		size_t got = 0;
		if (!cJSON_IsString(h) || !ig_text_b64(path[i], IG_HASH_BYTES, &got, h->valuestring, strlen(h->valuestring)) ||
		    got != IG_HASH_BYTES)
			return ig_error_set(err, IG_ERR_INVAL, "proof hash %zu is not 32 bytes of standard base64", i);
		i++;
	}
	*n = i;
	return IG_OK;
}

/* The frame in "entry" must be an enroll record of id with pk, numbered index. */
static int check_entry(const uint8_t *frame, size_t len, uint64_t index, const char *id, const uint8_t pk[IG_PK_BYTES],
                       ig_error *err)
{
	ig_record rec;
	ig_enroll en;
	ig_error ignored = {0};
	if (ig_record_decode(frame, len, &rec) != IG_FRAME_OK || rec.frame_len != len)
		return ig_error_set(err, IG_ERR_CORRUPT, "the entry is not one whole ledger record");
	if (rec.index != index)
		return ig_error_set(err, IG_ERR_CORRUPT, "the entry is record %" PRIu64 ", not %" PRIu64, rec.index, index);
	if (rec.type != IG_REC_ENROLL || ig_record_enroll_decode(rec.body, rec.body_len, &en, &ignored) != IG_OK)
		return ig_error_set(err, IG_ERR_CORRUPT, "record %" PRIu64 " is a %s record, not an enrolment", index,
		                    ig_record_type_name(rec.type));
	if (strcmp(en.id, id) != 0)
		return ig_error_set(err, IG_ERR_CORRUPT, "record %" PRIu64 " enrols another identity", index);
	if (sodium_memcmp(en.pk, pk, IG_PK_BYTES) != 0)
		return ig_error_set(err, IG_ERR_CORRUPT, "record %" PRIu64 " enrols %s with another public key", index, id);
	return IG_OK;
}

int ig_loghead_check_enrollment(ig_loghead *cp_out, uint64_t *index, const cJSON *answer,
                                const ig_loghead_trust *trust, const char *id, const uint8_t pk[IG_PK_BYTES],
                                ig_error *err)
{
	const cJSON *entry = cJSON_GetObjectItemCaseSensitive(answer, "entry");
	const cJSON *note = cJSON_GetObjectItemCaseSensitive(answer, "checkpoint");
	uint64_t idx = 0;
	if (ig_json_uint_field(&idx, answer, "index", 0, UINT64_C(9007199254740991)) != IG_OK || !cJSON_IsString(entry) ||
	    !cJSON_IsString(note))
		return ig_error_set(err, IG_ERR_INVAL, "the answer lacks a valid \"index\", \"entry\" or \"checkpoint\"");
	uint8_t path[IG_PROOF_MAX][IG_HASH_BYTES];
	size_t n = 0;
	int rc = read_path(path, &n, answer, err);
	if (rc != IG_OK)
		return rc;
	rc = ig_loghead_parse(cp_out, trust, note->valuestring, strlen(note->valuestring), err);
	if (rc != IG_OK) {
		ig_error_prefix(err, "the answer's checkpoint: ");
		return rc == IG_ERR_CRYPTO ? IG_ERR_CRYPTO : IG_ERR_INVAL;
	}

	uint8_t *frame = malloc(IG_FORMAT_V2_MAX_FRAME);
	if (!frame)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory for the entry");
	size_t flen = 0;
	if (!ig_text_b64(frame, IG_FORMAT_V2_MAX_FRAME, &flen, entry->valuestring, strlen(entry->valuestring)) || flen == 0) {
		free(frame);
		return ig_error_set(err, IG_ERR_INVAL, "the entry is not a frame in standard base64");
	}
	rc = check_entry(frame, flen, idx, id, pk, err);
	uint8_t leaf[IG_HASH_BYTES];
	ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaf, frame, flen);
	free(frame);
	if (rc != IG_OK)
		return rc;
	if (idx >= cp_out->cp.size)
		return ig_error_set(err, IG_ERR_CORRUPT, "record %" PRIu64 " is beyond the checkpoint's size %" PRIu64, idx,
		                    cp_out->cp.size);
	if (ig_proof_inclusion_verify(IG_MERKLE_SHA256, leaf, idx, cp_out->cp.size, (const uint8_t(*)[IG_HASH_BYTES])path,
	                              n, cp_out->cp.root) != IG_OK)
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "the inclusion proof of record %" PRIu64 " does not lead to the root the cluster head "
		                    "signed for size %" PRIu64,
		                    idx, cp_out->cp.size);
	*index = idx;
	return IG_OK;
}

int ig_loghead_check_consistency(const cJSON *answer, uint64_t from, const uint8_t from_root[IG_HASH_BYTES],
                                 uint64_t to, const uint8_t to_root[IG_HASH_BYTES], ig_error *err)
{
	uint64_t a_from = 0, a_to = 0;
	if (ig_json_uint_field(&a_from, answer, "from", 0, UINT64_C(9007199254740991)) != IG_OK ||
	    ig_json_uint_field(&a_to, answer, "to", 0, UINT64_C(9007199254740991)) != IG_OK)
		return ig_error_set(err, IG_ERR_INVAL, "the answer lacks a valid \"from\" or \"to\"");
	if (a_from != from || a_to != to)
		return ig_error_set(err, IG_ERR_INVAL,
		                    "the answer is for sizes %" PRIu64 " to %" PRIu64 ", not the %" PRIu64 " to %" PRIu64
		                    " asked for",
		                    a_from, a_to, from, to);
	uint8_t path[IG_PROOF_MAX][IG_HASH_BYTES];
	size_t n = 0;
	int rc = read_path(path, &n, answer, err);
	if (rc != IG_OK)
		return rc;
	if (ig_proof_consistency_verify(IG_MERKLE_SHA256, from, from_root, to, to_root,
	                                (const uint8_t(*)[IG_HASH_BYTES])path, n) != IG_OK)
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "the consistency proof does not lead from the size-%" PRIu64 " root to the size-%" PRIu64
		                    " root",
		                    from, to);
	return IG_OK;
}

int ig_loghead_load(ig_loghead *out, const char *path, const ig_loghead_trust *trust, ig_error *err)
{
	char *text = malloc(IG_CHECKPOINT_MAX);
	if (!text)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory");
	size_t len = 0;
	int rc = ig_durable_read(text, IG_CHECKPOINT_MAX, &len, path, "accepted log head", err);
	if (rc == IG_OK) {
		rc = ig_loghead_parse(out, trust, text, len, err);
		if (rc != IG_OK)
			ig_error_prefix(err, "the accepted log head %s is damaged or signed by another key: ", path);
	}
	free(text);
	return rc;
}

int ig_loghead_store(const ig_loghead *h, const char *path, ig_error *err)
{
	return ig_durable_replace(path, h->text, h->len, "accepted log head", err);
}

int ig_loghead_refusal_write(const char *path, const char *reason, const char *detail, const ig_loghead *accepted,
                             const char *offending, size_t offending_len, uint64_t now_ms, ig_error *err)
{
	char *buf = malloc(REFUSAL_MAX);
	if (!buf)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory");
	/* One line of detail, whatever the caller passed. */
	char line[IG_LOGHEAD_DETAIL_MAX];
	size_t k = 0;
	for (const char *p = detail; *p && k + 1 < sizeof line; p++)
		line[k++] = (*p == '\n' || *p == '\r') ? ' ' : *p;
	line[k] = '\0';
	int n = snprintf(buf, REFUSAL_MAX, IG_LOGHEAD_REFUSED_MAGIC "\nreason %s\ntime %" PRIu64 "\ndetail %s\n\naccepted:\n%s"
	                 "offending:\n%.*s",
	                 reason, now_ms, line, accepted ? accepted->text : "", (int)offending_len, offending ? offending : "");
	int rc = (n < 0 || n >= REFUSAL_MAX)
	             ? ig_error_set(err, IG_ERR_RANGE, "the refusal record does not fit in %d bytes", REFUSAL_MAX)
	             : ig_durable_replace(path, buf, (size_t)n, "log refusal", err);
	free(buf);
	return rc;
}

int ig_loghead_refusal_read(const char *path, char reason[16], char detail[IG_LOGHEAD_DETAIL_MAX], ig_error *err)
{
	char buf[64 + 16 + 40 + IG_LOGHEAD_DETAIL_MAX];
	reason[0] = '\0';
	detail[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return ig_error_set(err, errno == ENOENT ? IG_ERR_NOTFOUND : IG_ERR_IO, "cannot read the log refusal %s: %s",
		                    path, strerror(errno));
	ssize_t r = read(fd, buf, sizeof buf - 1);   /* only the head of the file matters */
	close(fd);
	if (r < 0)
		r = 0;
	buf[r] = '\0';
	char *magic_end = strchr(buf, '\n');
	char *reason_p = magic_end ? magic_end + 1 : NULL;
	if (!magic_end || (size_t)(magic_end - buf) != strlen(IG_LOGHEAD_REFUSED_MAGIC) ||
	    memcmp(buf, IG_LOGHEAD_REFUSED_MAGIC, strlen(IG_LOGHEAD_REFUSED_MAGIC)) != 0 ||
	    strncmp(reason_p, "reason ", 7) != 0) {
		snprintf(reason, 16, "unknown");
		return ig_error_set(err, IG_ERR_CORRUPT, "%s is not a log refusal this agent wrote", path);
	}
	reason_p += 7;
	size_t rl = strcspn(reason_p, "\n");
	snprintf(reason, 16, "%.*s", (int)(rl < 15 ? rl : 15), reason_p);
	char *d = strstr(reason_p, "\ndetail ");
	if (d) {
		d += 8;
		size_t dl = strcspn(d, "\n");
		snprintf(detail, IG_LOGHEAD_DETAIL_MAX, "%.*s", (int)dl, d);
	}
	return IG_OK;
}
