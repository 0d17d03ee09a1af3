/*
 * svc_proof.c: the log-proof service (ig_svc_proof.h; docs/PROTOCOL.md,
 * "Log proofs").
 */
#include "ig_svc_proof.h"

#include "ig_ratewin.h"

#include <cJSON.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define RATE_WINDOW_MS 60000u
#define NONCE_MAX IG_DECISION_REQUEST_NONCE_MAX
#define JSON_INT_MAX 9007199254740991.0   /* 2^53 - 1: the largest integer JSON carries exactly */

struct ig_svc_proof {
	const ig_registry *reg;
	ig_prover *prover;
	ig_svc_proof_config cfg;
	ig_ratewin *rates;   /* requests per identity per minute */
	uint64_t served, refused, failed;
	uint64_t latency_sum_us;
};

ig_svc_proof *ig_svc_proof_new(const ig_registry *reg, ig_prover *prover, const ig_svc_proof_config *cfg)
{
	if (!reg || !prover || !cfg || cfg->requests_per_minute == 0)
		return NULL;
	ig_svc_proof *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->rates = ig_ratewin_new(cfg->requests_per_minute, RATE_WINDOW_MS);
	if (!s->rates) {
		free(s);
		return NULL;
	}
	s->reg = reg;
	s->prover = prover;
	s->cfg = *cfg;
	return s;
}

void ig_svc_proof_free(ig_svc_proof *s)
{
	if (!s)
		return;
	ig_ratewin_free(s->rates);
	free(s);
}

/* ---- requests ---------------------------------------------------------------- */


/* A whole number 0..2^53-1 in field name of req: 1 found, 0 absent, -1 bad. */
static int get_size(const cJSON *req, const char *name, uint64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, name);
	if (!v)
		return 0;
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > JSON_INT_MAX ||
	    v->valuedouble != (double)(uint64_t)v->valuedouble)
		return -1;
	*out = (uint64_t)v->valuedouble;
	return 1;
}

void ig_svc_proof_request(ig_decision *out, ig_svc_proof *s, const char *id, const char *type, const cJSON *req,
                          const ig_svc_proof_log *log, uint64_t now_ms)
{
	bool inclusion = strcmp(type, "log_inclusion") == 0;
	char nonce[NONCE_MAX + 1] = "";
	const cJSON *jn = cJSON_GetObjectItemCaseSensitive(req, "nonce");
	if (jn && !(cJSON_IsString(jn) && ig_decision_nonce_ok(jn->valuestring))) {
		s->refused++;
		ig_decision_refuse(out, type, NULL, "malformed", "\"nonce\" must be 1..64 printable ASCII characters");
		return;
	}
	if (jn)
		memcpy(nonce, jn->valuestring, strlen(jn->valuestring) + 1);

	const char *err = NULL;
	char msg[IG_DECISION_MESSAGE_MAX] = "";
	ig_prover_kind kind = inclusion ? IG_PROVER_INCLUSION : IG_PROVER_CONSISTENCY;
	uint64_t index = 0, from = 0, to = 0;
	const uint64_t size = log->cp.size;

	if (inclusion) {
		const cJSON *of = cJSON_GetObjectItemCaseSensitive(req, "of");
		int has_index = get_size(req, "index", &index);
		if (has_index < 0 || (has_index == 1) == (of != NULL) ||
		    (of && !(cJSON_IsString(of) && strcmp(of->valuestring, "enrollment") == 0))) {
			err = "malformed";
			snprintf(msg, sizeof msg, "log_inclusion needs exactly one of \"index\" (a record index, 0..2^53-1) "
			                          "and \"of\":\"enrollment\"");
		} else if (of) {
			const ig_identity *idn = ig_registry_find(s->reg, id, strlen(id));
			if (!idn || idn->status != IG_ID_ACTIVE) {
				err = "not_enrolled";
				snprintf(msg, sizeof msg, "'%s' has no active enrolment to prove", id);
			} else {
				index = idn->enrolled_index;
			}
		}
	} else {
		int has_from = get_size(req, "from", &from);
		int has_to = get_size(req, "to", &to);
		if (has_from != 1 || has_to < 0) {
			err = "malformed";
			snprintf(msg, sizeof msg, "log_consistency needs \"from\" and may have \"to\": log sizes, whole "
			                          "numbers 0..2^53-1");
		} else if (!has_to) {
			to = size;
		}
	}
	if (!err && !ig_ratewin_take(s->rates, id, now_ms)) {
		err = "rate_limited";
		snprintf(msg, sizeof msg, "more than %" PRIu32 " proof requests this minute; slow down",
		         s->cfg.requests_per_minute);
	}
	if (!err && log->format < 2) {
		err = "no_tiles";
		snprintf(msg, sizeof msg, "this cluster's ledger is format 1 and has no tiles to prove from: its "
		                          "operator must run iotguard upgrade");
	}
	if (!err && inclusion && index >= size) {
		err = "beyond_checkpoint";
		snprintf(msg, sizeof msg, "record %" PRIu64 " is not covered by the published checkpoint (size %" PRIu64
		         "); ask again once a checkpoint covers it", index, size);
	}
	if (!err && !inclusion && to > size) {
		err = "beyond_checkpoint";
		snprintf(msg, sizeof msg, "\"to\" %" PRIu64 " is beyond the published checkpoint (size %" PRIu64 ")", to,
		         size);
	}
	if (!err && !inclusion && from > to) {
		err = "bad_range";
		snprintf(msg, sizeof msg, "\"from\" %" PRIu64 " is larger than \"to\" %" PRIu64 ": a log only grows", from,
		         to);
	}
	if (err) {
		s->refused++;
		ig_decision_refuse(out, type, nonce, err, "%s", msg);
		return;
	}

	ig_prover_job *job = ig_prover_job_new(kind, log->checkpoint, log->checkpoint_len, &log->cp);
	if (!job) {
		s->refused++;
		ig_decision_refuse(out, type, nonce, "internal", "out of memory for the proof");
		return;
	}
	job->index = index;
	job->from = from;
	job->to = to;
	memcpy(job->requester, id, strnlen(id, IG_ID_MAX));
	memcpy(job->nonce, nonce, sizeof nonce);
	if (ig_prover_submit(s->prover, job) != IG_OK) {
		ig_prover_job_free(job);
		s->refused++;
		ig_decision_refuse(out, type, nonce, "busy", "the cluster head has too many proofs to make; retry in a "
		                                             "few seconds");
		return;
	}
	out->kind = IG_DECISION_NONE;
}

/* ---- answers ----------------------------------------------------------------- */

static bool add_b64(cJSON *to, const char *name, const uint8_t *bin, size_t len)
{
	size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *b64 = malloc(cap);
	if (!b64)
		return false;
	sodium_bin2base64(b64, cap, bin, len, sodium_base64_VARIANT_ORIGINAL);
	cJSON *v = name ? cJSON_AddStringToObject(to, name, b64) : cJSON_CreateString(b64);
	free(b64);
	if (!name && v && !cJSON_AddItemToArray(to, v)) {
		cJSON_Delete(v);
		return false;
	}
	return v != NULL;
}

static cJSON *proof_json(const ig_prover_job *job)
{
	bool inclusion = job->kind == IG_PROVER_INCLUSION;
	cJSON *o = cJSON_CreateObject();
	bool ok = o && cJSON_AddStringToObject(o, "type", inclusion ? "log_inclusion_proof" : "log_consistency_proof");
	if (ok && job->nonce[0])
		ok = cJSON_AddStringToObject(o, "nonce", job->nonce) != NULL;
	if (ok && inclusion)
		ok = cJSON_AddNumberToObject(o, "index", (double)job->index) &&
		     add_b64(o, "entry", job->entry, job->entry_len);
	if (ok && !inclusion)
		ok = cJSON_AddNumberToObject(o, "from", (double)job->from) &&
		     cJSON_AddNumberToObject(o, "to", (double)job->to);
	cJSON *path = ok ? cJSON_AddArrayToObject(o, "proof") : NULL;
	ok = path != NULL;
	for (size_t i = 0; ok && i < job->path_len; i++)
		ok = add_b64(path, NULL, job->path[i], IG_HASH_BYTES);
	if (ok)
		ok = cJSON_AddStringToObject(o, "checkpoint", job->checkpoint) != NULL;
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

bool ig_svc_proof_collect(ig_decision *out, ig_svc_proof *s, char requester[IG_ID_MAX + 1])
{
	if (!ig_prover_ready(s->prover))
		return false;
	ig_prover_job *job = ig_prover_take(s->prover);
	if (!job)
		return false;
	memcpy(requester, job->requester, IG_ID_MAX + 1);
	const char *type = job->kind == IG_PROVER_INCLUSION ? "log_inclusion" : "log_consistency";
	s->latency_sum_us += job->done_us - job->queued_us;
	if (job->status == IG_OK) {
		cJSON *o = proof_json(job);
		if (o) {
			s->served++;
			ig_decision_reply(out, requester, o);
		} else {
			s->failed++;
			ig_decision_refuse(out, type, job->nonce, "internal", "out of memory for the proof's reply");
		}
	} else if (job->status == IG_ERR_NOMEM) {
		s->failed++;
		ig_decision_refuse(out, type, job->nonce, "internal", "out of memory while making the proof");
	} else if (job->status == IG_ERR_INVAL) {
		/* The service checked the sizes; the prover agrees or this is a bug. */
		s->failed++;
		ig_decision_refuse(out, type, job->nonce, "internal", "%s", job->message);
	} else {
		s->failed++;
		ig_decision_refuse(out, type, job->nonce, "proof_unavailable",
		                   "%s; retry in a minute (a restarted cluster head rebuilds damaged tiles)", job->message);
	}
	ig_prover_job_free(job);
	return true;
}

void ig_svc_proof_stats(ig_svc_proof *s, cJSON *stats)
{
	cJSON *o = cJSON_AddObjectToObject(stats, "proofs");
	if (!o)
		return;
	uint64_t done = s->served + s->failed;
	cJSON_AddNumberToObject(o, "served", (double)s->served);
	cJSON_AddNumberToObject(o, "refused", (double)s->refused);
	cJSON_AddNumberToObject(o, "failed", (double)s->failed);
	cJSON_AddNumberToObject(o, "queue", (double)ig_prover_depth(s->prover));
	cJSON_AddNumberToObject(o, "avg_latency_us", done ? (double)(s->latency_sum_us / done) : 0.0);
}
