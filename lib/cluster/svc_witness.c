/*
 * svc_witness.c: the cluster head's witness decisions (ig_svc_witness.h).
 *
 * Why this exists: collecting cosignatures is a small state machine per
 * witness (idle, proving, in flight) around one target checkpoint, and each
 * of its edges (a 409 that teaches a size, a 422 fork, a rollback, a late
 * answer for an older checkpoint, a timeout, a policy reload) must do the
 * right thing without the broker. Keeping it here, pure, lets the unit tests
 * walk every edge; the plugin only carries texts.
 */
#include "ig_svc_witness.h"
#include "ig_witness.h"

#include <cJSON.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { W_IDLE, W_PROVING, W_IN_FLIGHT } w_phase;

typedef struct w_slot {
	ig_cosig_vkey key;
	uint64_t known_size;        /* the size this witness last cosigned, as far as we know (0: never) */
	w_phase phase;
	uint64_t since_ms;          /* when the phase began */
	uint64_t retry_at_ms;       /* not asked before this */
	bool refused_target;        /* refused the current target: not asked again for it */
	bool has_line;              /* holds a valid cosignature of the current target */
	char line[IG_COSIG_LINE_MAX];
	size_t line_len;
	uint64_t conflicts;         /* 409s in a row */
	/* figures */
	uint64_t cosigned_size, refusals, conflicts_total;
	int last_status;
} w_slot;

struct ig_svc_witness {
	w_slot w[IG_SVC_WITNESS_MAX];
	size_t n, quorum;
	/* the target: the newest signed checkpoint */
	bool has_target;
	char text[IG_CHECKPOINT_MAX];
	size_t len, body_len;
	ig_checkpoint cp;
	uint64_t target_ms;
	bool quorum_reached;        /* for the target */
	/* figures */
	uint64_t requests, refusals, cosigned_size, quorum_latency_ms;
};

ig_svc_witness *ig_svc_witness_new(void)
{
	return calloc(1, sizeof(ig_svc_witness));
}

void ig_svc_witness_free(ig_svc_witness *s)
{
	free(s);
}

size_t ig_svc_witness_count(const ig_svc_witness *s)
{
	return s ? s->n : 0;
}

static size_t lines_held(const ig_svc_witness *s)
{
	size_t k = 0;
	for (size_t i = 0; i < s->n; i++)
		k += s->w[i].has_line;
	return k;
}

int ig_svc_witness_configure(ig_svc_witness *s, const ig_cosig_vkey *keys, size_t n, size_t quorum)
{
	if (!s || n > IG_SVC_WITNESS_MAX || (n && (!keys || quorum < 1 || quorum > n)))
		return IG_ERR_INVAL;
	for (size_t i = 0; i < n; i++) {
		if (keys[i].type != IG_COSIG_TYPE_COSIG_V1 || !ig_id_valid(keys[i].name, strlen(keys[i].name)))
			return IG_ERR_INVAL;
		for (size_t j = 0; j < i; j++)
			if (strcmp(keys[i].name, keys[j].name) == 0)
				return IG_ERR_INVAL;
	}
	w_slot next[IG_SVC_WITNESS_MAX];
	memset(next, 0, sizeof next);
	for (size_t i = 0; i < n; i++) {
		next[i].key = keys[i];
		for (size_t j = 0; j < s->n; j++)
			if (strcmp(s->w[j].key.name, keys[i].name) == 0 &&
			    memcmp(s->w[j].key.pk, keys[i].pk, IG_PK_BYTES) == 0) {
				next[i] = s->w[j];
				break;
			}
	}
	memcpy(s->w, next, sizeof next);
	s->n = n;
	s->quorum = quorum;
	s->quorum_reached = s->has_target && n && lines_held(s) >= s->quorum && s->quorum_reached;
	return IG_OK;
}

int ig_svc_witness_checkpoint(ig_svc_witness *s, const char *text, size_t len, const ig_checkpoint *cp,
                              uint64_t now_ms)
{
	if (!s || !text || !cp || len == 0 || len >= sizeof s->text)
		return IG_ERR_INVAL;
	if (s->has_target && s->cp.size == cp->size && memcmp(s->cp.root, cp->root, IG_HASH_BYTES) == 0)
		return IG_OK;
	size_t body_len, sigs_off;
	ig_error err = {0};
	if (ig_checkpoint_split(text, len, &body_len, &sigs_off, &err) != IG_OK)
		return IG_ERR_CORRUPT;
	memcpy(s->text, text, len);
	s->text[len] = '\0';
	s->len = len;
	s->body_len = body_len;
	s->cp = *cp;
	s->has_target = true;
	s->target_ms = now_ms;
	s->quorum_reached = false;
	for (size_t i = 0; i < s->n; i++) {
		s->w[i].has_line = false;
		s->w[i].refused_target = false;
		s->w[i].conflicts = 0;
		s->w[i].retry_at_ms = 0;
	}
	return IG_OK;
}

bool ig_svc_witness_next(ig_svc_witness *s, uint64_t now_ms, ig_svc_witness_job *job)
{
	if (!s || !s->has_target || !job)
		return false;
	for (size_t i = 0; i < s->n; i++) {
		w_slot *w = &s->w[i];
		if (w->phase == W_IN_FLIGHT && now_ms - w->since_ms >= IG_SVC_WITNESS_TIMEOUT_MS)
			w->phase = W_IDLE;   /* unanswered (witness offline?): ask again */
		if (w->phase != W_IDLE || w->has_line || w->refused_target || now_ms < w->retry_at_ms)
			continue;
		if (w->known_size > s->cp.size) {
			/* It cosigned a larger tree: this checkpoint is a rollback. */
			w->refused_target = true;
			continue;
		}
		w->phase = W_PROVING;
		w->since_ms = now_ms;
		job->witness = i;
		job->name = w->key.name;
		job->from = w->known_size;
		job->to = s->cp.size;
		job->needs_proof = w->known_size > 0 && w->known_size < s->cp.size;
		return true;
	}
	return false;
}

int ig_svc_witness_request(ig_svc_witness *s, const ig_svc_witness_job *job, const uint8_t (*proof)[IG_HASH_BYTES],
                           size_t proof_len, uint64_t now_ms, char **json)
{
	if (!s || !job || job->witness >= s->n || !json || proof_len > IG_WITNESS_PROOF_MAX || (proof_len && !proof))
		return IG_ERR_INVAL;
	*json = NULL;
	w_slot *w = &s->w[job->witness];
	if (!s->has_target || job->to != s->cp.size || job->from != w->known_size) {
		w->phase = W_IDLE;
		return IG_ERR_NOTFOUND;
	}
	ig_witness_request req = {.old_size = job->from, .proof_len = proof_len, .checkpoint = s->text,
	                          .checkpoint_len = s->len};
	for (size_t i = 0; i < proof_len; i++)
		memcpy(req.proof[i], proof[i], IG_HASH_BYTES);
	char text[IG_CHECKPOINT_MAX + 32 + IG_WITNESS_PROOF_MAX * 48];
	int len = ig_witness_request_encode(text, sizeof text, &req);
	if (len < 0) {
		w->phase = W_IDLE;
		w->retry_at_ms = now_ms + IG_SVC_WITNESS_RETRY_MS;
		return len;
	}
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, "type", "witness_add_checkpoint") ||
	    !cJSON_AddStringToObject(o, "request", text) || !(*json = cJSON_PrintUnformatted(o))) {
		cJSON_Delete(o);
		w->phase = W_IDLE;
		w->retry_at_ms = now_ms + IG_SVC_WITNESS_RETRY_MS;
		return IG_ERR_NOMEM;
	}
	cJSON_Delete(o);
	w->phase = W_IN_FLIGHT;
	w->since_ms = now_ms;
	s->requests++;
	return IG_OK;
}

void ig_svc_witness_later(ig_svc_witness *s, const ig_svc_witness_job *job, uint64_t now_ms)
{
	if (!s || !job || job->witness >= s->n)
		return;
	s->w[job->witness].phase = W_IDLE;
	s->w[job->witness].retry_at_ms = now_ms + IG_SVC_WITNESS_RETRY_MS;
}

static int verdict(ig_svc_witness_verdict *v, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int verdict(ig_svc_witness_verdict *v, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->message, sizeof v->message, fmt, ap);
	va_end(ap);
	return rc;
}

static bool json_size(const cJSON *o, const char *name, uint64_t *out)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, name);
	if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 9007199254740991.0 ||
	    x->valuedouble != (double)(uint64_t)x->valuedouble)
		return false;
	*out = (uint64_t)x->valuedouble;
	return true;
}

static void refuse_target(ig_svc_witness *s, w_slot *w, int status)
{
	w->refused_target = true;
	w->refusals++;
	w->last_status = status;
	s->refusals++;
}

int ig_svc_witness_answer(ig_svc_witness *s, const char *id, const cJSON *msg, uint64_t now_ms,
                          ig_svc_witness_verdict *v)
{
	if (!s || !id || !v)
		return IG_ERR_INVAL;
	memset(v, 0, sizeof *v);
	w_slot *w = NULL;
	for (size_t i = 0; i < s->n && !w; i++)
		if (strcmp(s->w[i].key.name, id) == 0)
			w = &s->w[i];
	if (!w)
		return verdict(v, IG_ERR_NOTFOUND, "'%s' is not a witness the policy names", id);
	uint64_t status;
	if (!cJSON_IsObject(msg) || !json_size(msg, "status", &status) || status < 100 || status > 599)
		return verdict(v, IG_ERR_INVAL, "witness %s: the answer has no \"status\" (an HTTP-style code)", id);
	v->status = (int)status;
	uint64_t size = 0;
	bool has_size = json_size(msg, "size", &size);
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(msg, "error");
	const char *why = cJSON_IsString(error) ? error->valuestring : "no reason given";
	bool for_target = s->has_target && has_size && size == s->cp.size;
	w->phase = W_IDLE;
	w->last_status = (int)status;

	if (status == 200) {
		if (!has_size)
			return verdict(v, IG_ERR_INVAL, "witness %s: a 200 answer without \"size\"", id);
		if (!for_target) {
			/* An older checkpoint it was asked for before the target moved on
			 * (or, after a restart, a request of the cluster head's previous
			 * run): it now holds that size; it is asked for the target next. */
			if (size > w->known_size)
				w->known_size = size;
			if (s->has_target && size > s->cp.size) {
				refuse_target(s, w, 409);
				v->loud = true;
				return verdict(v, IG_OK, "witness %s REFUSED the checkpoint of size %" PRIu64 ": it cosigned size %"
				               PRIu64 " already, so this log was ROLLED BACK; the head is not cosigned by it", id,
				               s->cp.size, size);
			}
			return verdict(v, IG_OK, "witness %s cosigned size %" PRIu64 ", no longer the newest", id, size);
		}
		const cJSON *cos = cJSON_GetObjectItemCaseSensitive(msg, "cosignature");
		if (!cJSON_IsString(cos))
			return verdict(v, IG_ERR_INVAL, "witness %s: a 200 answer without \"cosignature\"", id);
		const char *line = cos->valuestring;
		const char *nl = strchr(line, '\n');
		size_t line_len = nl ? (size_t)(nl - line) + 1 : strlen(line);
		ig_error err = {0};
		uint64_t ts = 0;
		int rc = line_len + 1 <= sizeof w->line
		             ? ig_cosig_verify_line(&ts, line, line_len, &w->key, s->text, s->body_len, &err)
		             : IG_ERR_CORRUPT;
		if (rc != IG_OK) {
			refuse_target(s, w, (int)status);
			v->loud = true;
			return verdict(v, IG_OK, "witness %s sent a cosignature of size %" PRIu64 " that does not verify "
			               "with its key in the policy (%s); is the policy's vkey for %s current?", id, size,
			               err.msg[0] ? err.msg : "another key", id);
		}
		memcpy(w->line, line, line_len);
		if (w->line[line_len - 1] != '\n')
			w->line[line_len++] = '\n';
		w->line[line_len] = '\0';
		w->line_len = line_len;
		w->has_line = true;
		w->known_size = size;
		w->cosigned_size = size;
		w->conflicts = 0;
		v->cosigned = true;
		if (!s->quorum_reached && lines_held(s) >= s->quorum) {
			s->quorum_reached = true;
			s->cosigned_size = size;
			s->quorum_latency_ms = now_ms - s->target_ms;
			v->quorum = true;
		}
		return verdict(v, IG_OK, "witness %s cosigned size %" PRIu64, id, size);
	}
	if (status == 409) {
		uint64_t known;
		if (!json_size(msg, "known_size", &known))
			return verdict(v, IG_ERR_INVAL, "witness %s: a 409 answer without \"known_size\"", id);
		w->known_size = known;
		w->conflicts++;
		w->conflicts_total++;
		if (s->has_target && known > s->cp.size) {
			refuse_target(s, w, 409);
			v->loud = true;
			return verdict(v, IG_OK, "witness %s REFUSED the checkpoint of size %" PRIu64 ": it cosigned size %"
			               PRIu64 " already, so this log was ROLLED BACK; the head is not cosigned by it", id,
			               s->cp.size, known);
		}
		if (w->conflicts >= IG_SVC_WITNESS_CONFLICTS_LOUD) {
			w->retry_at_ms = now_ms + IG_SVC_WITNESS_CONFLICT_BACKOFF_MS;
			v->loud = true;
			return verdict(v, IG_OK, "witness %s answered 409 %" PRIu64 " times in a row (it says it cosigned "
			               "size %" PRIu64 "); asking again in %d s", id, w->conflicts, known,
			               IG_SVC_WITNESS_CONFLICT_BACKOFF_MS / 1000);
		}
		return verdict(v, IG_OK, "witness %s holds size %" PRIu64 "; asking again from there", id, known);
	}
	if (status >= 500) {
		w->retry_at_ms = now_ms + IG_SVC_WITNESS_RETRY_MS;
		return verdict(v, IG_OK, "witness %s could not answer (%d: %s); asking again", id, (int)status, why);
	}
	if (!for_target && has_size)
		return verdict(v, IG_OK, "witness %s refused size %" PRIu64 " (%d: %s), no longer the newest", id, size,
		               (int)status, why);
	refuse_target(s, w, (int)status);
	v->loud = true;
	uint64_t target = s->has_target ? s->cp.size : 0;
	if (status == 422)
		return verdict(v, IG_OK, "witness %s REFUSED the checkpoint of size %" PRIu64 " from its size %" PRIu64
		               " (422: %s): this log FORKED from the one it cosigned; the head is not cosigned by it", id,
		               target, w->known_size, why);
	return verdict(v, IG_OK, "witness %s REFUSED the checkpoint of size %" PRIu64 " (%d: %s)", id, target,
	               (int)status, why);
}

int ig_svc_witness_cosigned(const ig_svc_witness *s, char *out, size_t cap, const char *names[IG_SVC_WITNESS_MAX],
                            size_t *n)
{
	if (!s || !out || !names || !n)
		return IG_ERR_INVAL;
	*n = 0;
	if (!s->has_target || s->n == 0 || lines_held(s) < s->quorum)
		return IG_ERR_NOTFOUND;
	char lines[IG_SVC_WITNESS_MAX * IG_COSIG_LINE_MAX];
	size_t off = 0;
	for (size_t i = 0; i < s->n; i++) {
		if (!s->w[i].has_line)
			continue;
		memcpy(lines + off, s->w[i].line, s->w[i].line_len);
		off += s->w[i].line_len;
		names[(*n)++] = s->w[i].key.name;
	}
	ig_error err = {0};
	return ig_checkpoint_add_signatures(out, cap, s->text, s->len, lines, off, &err);
}

void ig_svc_witness_stats(const ig_svc_witness *s, cJSON *stats)
{
	if (!s || !stats || s->n == 0)
		return;
	cJSON *o = cJSON_AddObjectToObject(stats, "witnesses");
	if (!o)
		return;
	cJSON_AddNumberToObject(o, "quorum", (double)s->quorum);
	cJSON_AddNumberToObject(o, "cosigned_size", (double)s->cosigned_size);
	cJSON_AddNumberToObject(o, "quorum_latency_ms", (double)s->quorum_latency_ms);
	cJSON_AddNumberToObject(o, "requests", (double)s->requests);
	cJSON_AddNumberToObject(o, "refusals", (double)s->refusals);
	cJSON *per = cJSON_AddObjectToObject(o, "per_witness");
	for (size_t i = 0; per && i < s->n; i++) {
		cJSON *w = cJSON_AddObjectToObject(per, s->w[i].key.name);
		if (!w)
			continue;
		cJSON_AddNumberToObject(w, "cosigned_size", (double)s->w[i].cosigned_size);
		cJSON_AddNumberToObject(w, "refusals", (double)s->w[i].refusals);
		cJSON_AddNumberToObject(w, "conflicts", (double)s->w[i].conflicts_total);
		cJSON_AddNumberToObject(w, "last_status", (double)s->w[i].last_status);
	}
}
