/*
 * duty_log.c: the device checks the cluster head's ledger for itself.
 *
 * Why this exists: the cluster head signs the log's checkpoints, but a
 * signature alone lets it (or a thief of its key) show this device a
 * history in which it was never enrolled, fork the log for different
 * devices, or roll it back past a revocation. So at every connect the
 * device asks for the inclusion proof of its own enrolment, keeps the last
 * checkpoint it accepted (FILE.head), and takes a newer one (from the
 * retained ledger head or a proof) only with a consistency proof from the
 * one it kept. What cannot be reconciled is written down with the signed
 * checkpoints as evidence (FILE.head.refused), logged at error level,
 * reported in every status, and the device accepts no new keys from that
 * cluster head until an operator has looked (docs/PROTOCOL.md, "Checking
 * the log on the device"). The checks themselves are in loghead.c.
 */
#include "duties.h"

#include <cJSON.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ANSWER_TIMEOUT_US 15000000u      /* no answer: ask again */
#define RETRY_BASE_US 1000000u
#define RETRY_MAX_US 60000000u
#define CONS_MIN_GAP_US 1000000u         /* heads can change every loop pass; proofs are rate-limited */
#define NEWER_BEYOND_TRIES 3             /* a head newer than the proofs: wait this often before giving up */

static const char *head_topic(char *out, size_t cap, const ig_agent *a)
{
	snprintf(out, cap, "iotguard/%s/ledger/head", ig_agent_cluster(a));
	return out;
}

static uint64_t retry_delay_us(unsigned failures)
{
	uint64_t d = RETRY_BASE_US;
	for (unsigned i = 0; i < failures && d < RETRY_MAX_US; i++)
		d *= 2;
	return d < RETRY_MAX_US ? d : RETRY_MAX_US;
}

static bool join_path(char *out, size_t cap, const char *key_path, const char *suffix)
{
	int n = snprintf(out, cap, "%s%s", key_path, suffix);
	return n >= 0 && (size_t)n < cap;
}

/* The trust anchors follow the pin: the key may be learnt after start. */
static bool ensure_trust(ig_log_state *l)
{
	if (l->trust_ready)
		return true;
	if (!l->pin->known)
		return false;
	memcpy(l->trust.ch_pk, l->pin->pk, IG_PK_BYTES);
	l->trust_ready = true;
	return true;
}

int ig_log_init(ig_log_state *l, ig_pin_state *pin, const char *key_path, const char *cluster,
                const ig_cosig_vkey *vkeys, size_t nvkeys, size_t quorum, ig_error *err)
{
	static const uint8_t no_key[IG_PK_BYTES];
	memset(l, 0, sizeof *l);
	l->pin = pin;
	if (!join_path(l->head_path, sizeof l->head_path, key_path, IG_LOGHEAD_SUFFIX) ||
	    !join_path(l->refused_path, sizeof l->refused_path, key_path, IG_LOGHEAD_REFUSED_SUFFIX))
		return ig_error_set(err, IG_ERR_RANGE, "key file path %s is too long", key_path);
	if (nvkeys > IG_CHECKPOINT_COSIGS_MAX || quorum > nvkeys)
		return ig_error_set(err, IG_ERR_INVAL, "a witness quorum of %zu out of %zu keys (at most %d keys)", quorum,
		                    nvkeys, IG_CHECKPOINT_COSIGS_MAX);
	if (ig_loghead_trust_init(&l->trust, cluster, no_key) != IG_OK)
		return ig_error_set(err, IG_ERR_INVAL, "invalid cluster name %s", cluster);
	if (nvkeys > 0)   /* vkeys may be NULL then, and memcpy's may not */
		memcpy(l->trust.witnesses, vkeys, nvkeys * sizeof *vkeys);
	l->trust.nwitnesses = nvkeys;
	l->trust.quorum = quorum;
	memcpy(pin->refused_path, l->refused_path, sizeof pin->refused_path);

	int rc = ig_loghead_refusal_read(l->refused_path, l->reason, l->detail, err);
	if (rc == IG_OK || rc == IG_ERR_CORRUPT) {
		pin->refused = true;
		if (rc == IG_ERR_CORRUPT)
			snprintf(l->detail, sizeof l->detail, "the refusal file is not in the format this agent writes");
	} else if (rc != IG_ERR_NOTFOUND) {
		return rc;
	}
	memset(err, 0, sizeof *err);

	if (!ensure_trust(l)) {
		if (access(l->head_path, F_OK) == 0)
			return ig_error_set(err, IG_ERR_STATE,
			                    "%s exists but %s does not: that head was accepted under a cluster-head key that is no "
			                    "longer pinned; delete %s to check this cluster head's log afresh",
			                    l->head_path, pin->path, l->head_path);
		return IG_OK;
	}
	rc = ig_loghead_load(&l->accepted, l->head_path, &l->trust, err);
	if (rc == IG_ERR_NOTFOUND) {
		memset(err, 0, sizeof *err);
		return IG_OK;
	}
	if (rc != IG_OK) {
		/* Never reset silently: that would undo the point of keeping it. */
		size_t n = strlen(err->msg);
		snprintf(err->msg + n, sizeof err->msg - n, "; delete it to accept the cluster head's log afresh");
		return rc;
	}
	l->have = true;
	return IG_OK;
}

/* ---- outcomes ---------------------------------------------------------------- */

static void say_refused(const ig_log_state *l)
{
	ig_log(IG_LOG_ERR,
	       "LOG REFUSED (%s): %s. This device accepts no new keys from this cluster head. The evidence is in %s; after "
	       "investigating, delete it to check the log again (and delete %s too to accept the cluster head's current "
	       "log as it is)",
	       l->reason, l->detail, l->refused_path, l->head_path);
}

static void clear_pending(ig_log_state *l)
{
	l->cons_active = false;
	l->cons_nonce[0] = '\0';
	l->queued = false;
	l->cons_failures = 0;
}

static void refuse(ig_log_state *l, const char *reason, const char *offending, size_t offending_len, const char *fmt,
                   ...)
{
	ig_error err = {0};
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(l->detail, sizeof l->detail, fmt, ap);
	va_end(ap);
	snprintf(l->reason, sizeof l->reason, "%s", reason);
	l->pin->refused = true;
	clear_pending(l);
	if (ig_loghead_refusal_write(l->refused_path, reason, l->detail, l->have || l->provisional ? &l->accepted : NULL,
	                             offending,
	                             offending_len, ig_now_ms(), &err) != IG_OK)
		ig_log(IG_LOG_ERR, "%s (the refusal holds for this run only)", err.msg);
	say_refused(l);
}

static void accept_head(ig_log_state *l, const ig_loghead *h, const char *how)
{
	ig_error err = {0};
	if (ig_loghead_store(h, l->head_path, &err) != IG_OK) {
		/* Not durable, not accepted: the next head tries again. */
		ig_log(IG_LOG_ERR, "cannot keep the log head of size %" PRIu64 ": %s", h->cp.size, err.msg);
		return;
	}
	uint64_t old = l->have ? l->accepted.cp.size : 0;
	bool grew = !l->have || h->cp.size != old;
	if (h != &l->accepted)
		memcpy(&l->accepted, h, sizeof *h);
	l->have = true;
	l->provisional = false;
	/* A busy cluster moves its head many times a minute: say it once a
	 * run, then only in debug logs (the status carries the size). */
	if (grew)
		ig_log(l->accepted_count == 0 ? IG_LOG_INFO : IG_LOG_DEBUG,
		       "accepted the log head of size %" PRIu64 " (%s%s); kept in %s", h->cp.size, how,
		       l->trust.quorum ? ", witnessed" : "", l->head_path);
	else
		ig_log(IG_LOG_DEBUG, "kept the log head of size %" PRIu64 " with %zu cosignatures", h->cp.size, h->cosigned);
	l->accepted_count++;
}

/* ---- requests ---------------------------------------------------------------- */

static void new_nonce(char out[20], const char *prefix)
{
	uint8_t r[6];
	char hex[13];
	randombytes_buf(r, sizeof r);
	ig_hex_encode(hex, r, sizeof r);
	snprintf(out, 20, "%s-%s", prefix, hex);
}

static void ask_inclusion(ig_agent *a, ig_log_state *l, uint64_t now_us)
{
	char req[96];
	new_nonce(l->incl_nonce, "enr");
	int n = snprintf(req, sizeof req, "{\"type\":\"log_inclusion\",\"of\":\"enrollment\",\"nonce\":\"%s\"}",
	                 l->incl_nonce);
	l->incl_due_us = now_us + ANSWER_TIMEOUT_US;   /* asked again if nothing comes back */
	if (ig_agent_request(a, req, (size_t)n) != IG_OK)
		l->incl_nonce[0] = '\0';
}

static void ask_consistency(ig_agent *a, ig_log_state *l, uint64_t now_us)
{
	char req[160];
	bool newer = l->cons_kind == IG_LOGHEAD_NEWER;
	uint64_t from = newer ? l->accepted.cp.size : l->cand.cp.size;
	uint64_t to = newer ? l->cand.cp.size : l->accepted.cp.size;
	new_nonce(l->cons_nonce, "con");
	int n = snprintf(req, sizeof req,
	                 "{\"type\":\"log_consistency\",\"from\":%" PRIu64 ",\"to\":%" PRIu64 ",\"nonce\":\"%s\"}", from, to,
	                 l->cons_nonce);
	l->cons_last_us = now_us;
	l->cons_due_us = now_us + ANSWER_TIMEOUT_US;
	if (ig_agent_request(a, req, (size_t)n) != IG_OK)
		l->cons_nonce[0] = '\0';
	else
		ig_log(IG_LOG_DEBUG, "asked for the consistency proof from size %" PRIu64 " to %" PRIu64, from, to);
}

/* The next try of the request in flight, after the failures so far. */
static void retry_consistency(ig_log_state *l, uint64_t now_us)
{
	l->cons_nonce[0] = '\0';
	l->cons_failures++;
	l->cons_due_us = now_us + retry_delay_us(l->cons_failures);
}

/* A checkpoint whose cluster-head signature verified: does it agree with
 * the accepted one? */
static void consider(ig_log_state *l, const ig_loghead *c, const char *source)
{
	if (l->pin->refused)
		return;
	if (!l->have && !l->provisional) {
		/* The first base is a tree the enrolment was proven in (on_inclusion),
		 * so it is known to be the SHA-256 tree proofs are about. The newest
		 * head seen meanwhile waits for it (a retained head comes once). */
		ig_log(IG_LOG_DEBUG, "log head of size %" PRIu64 " set aside until the enrolment is proven", c->cp.size);
		if ((!l->queued || c->cp.size >= l->next.cp.size) && c != &l->next) {
			memcpy(&l->next, c, sizeof *c);
			l->queued = true;
		}
		return;
	}
	ig_loghead_relation rel = ig_loghead_compare(&l->accepted, c);
	switch (rel) {
	case IG_LOGHEAD_FIRST:   /* not with a base */
		return;
	case IG_LOGHEAD_SAME:
		/* The same tree, perhaps with more cosignatures: keep the best text,
		 * and keep it at all once it has the witnesses required. */
		if ((l->have && c->cosigned > l->accepted.cosigned) ||
		    (l->provisional && ig_loghead_witnessed(c, &l->trust)))
			accept_head(l, c, source);
		return;
	case IG_LOGHEAD_FORK:
		refuse(l, "fork", c->text, c->len,
		       "the cluster head signed two different trees of size %" PRIu64 ": the one this device accepted and "
		       "another in %s, so it is showing a forked log",
		       c->cp.size, source);
		return;
	case IG_LOGHEAD_NEWER:
		if (c->cp.size == l->proven_size && l->accepted.cp.size == l->proven_from &&
		    !sodium_memcmp(c->cp.root, l->proven_root, IG_HASH_BYTES)) {
			if (ig_loghead_witnessed(c, &l->trust))
				accept_head(l, c, "proven before");
			return;
		}
		break;
	case IG_LOGHEAD_OLDER:
		break;
	}
	if (l->cons_active) {
		/* The tree being proven, now with its cosignatures: keep the better
		 * text. Any other waits its turn (the newest one only). */
		if (c->cp.size == l->cand.cp.size && !sodium_memcmp(c->cp.root, l->cand.cp.root, IG_HASH_BYTES)) {
			if (c->cosigned > l->cand.cosigned)
				memcpy(&l->cand, c, sizeof *c);
		} else if (!l->queued || c->cp.size >= l->next.cp.size) {
			if (c != &l->next)
				memcpy(&l->next, c, sizeof *c);
			l->queued = true;
		}
		return;
	}
	memcpy(&l->cand, c, sizeof *c);
	l->cons_active = true;
	l->cons_kind = rel;
	l->cons_failures = 0;
	l->cons_nonce[0] = '\0';
	l->cons_due_us = 0;   /* on_tick sends it, at most one per CONS_MIN_GAP_US */
}

static void next_candidate(ig_log_state *l)
{
	l->cons_active = false;
	l->cons_nonce[0] = '\0';
	if (!l->queued)
		return;
	l->queued = false;
	memcpy(&l->scratch, &l->next, sizeof l->scratch);
	consider(l, &l->scratch, "a later ledger head");
}

/* ---- answers ----------------------------------------------------------------- */

static bool nonce_is(const cJSON *msg, const char *want)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(msg, "nonce");
	return want[0] && cJSON_IsString(n) && strcmp(n->valuestring, want) == 0;
}

static void on_inclusion(ig_agent *a, ig_log_state *l, const cJSON *msg)
{
	ig_error err = {0};
	uint64_t index = 0;
	uint64_t now = ig_mono_us();
	l->incl_nonce[0] = '\0';
	int rc = ig_loghead_check_enrollment(&l->scratch, &index, msg, &l->trust, ig_agent_id(a), ig_agent_public_key(a),
	                                     &err);
	if (rc == IG_OK) {
		l->enrollment_proven = true;
		l->enrollment_index = index;
		l->incl_failures = 0;
		l->incl_due_us = 0;
		ig_log(IG_LOG_INFO, "enrolment proven: record %" PRIu64 " is in the cluster head's log of size %" PRIu64, index,
		       l->scratch.cp.size);
		if (!l->have && !l->provisional) {
			/* The first tree: trusted because it holds this device's own
			 * enrolment, kept once it has the witnesses required. */
			if (ig_loghead_witnessed(&l->scratch, &l->trust)) {
				accept_head(l, &l->scratch, "the enrolment proof");
			} else {
				memcpy(&l->accepted, &l->scratch, sizeof l->accepted);
				l->provisional = true;
				ig_log(IG_LOG_DEBUG, "log head of size %" PRIu64 " has %zu of the %zu cosignatures required; "
				                     "proving later heads from it",
				       l->scratch.cp.size, l->scratch.cosigned, l->trust.quorum);
			}
			next_candidate(l);   /* a head set aside before this proof */
			return;
		}
		consider(l, &l->scratch, "the enrolment proof");
		return;
	}
	if (rc == IG_ERR_CORRUPT) {
		const cJSON *note = cJSON_GetObjectItemCaseSensitive(msg, "checkpoint");
		refuse(l, "enrollment", note->valuestring, strlen(note->valuestring),
		       "the cluster head cannot show this device's enrolment in the log it signed: %s", err.msg);
		return;
	}
	l->incl_failures++;
	l->incl_due_us = now + retry_delay_us(l->incl_failures);
	ig_log(IG_LOG_WARN, "enrolment proof not usable (%s); asking again", err.msg);
}

static void on_consistency(ig_log_state *l, const cJSON *msg)
{
	ig_error err = {0};
	bool newer = l->cons_kind == IG_LOGHEAD_NEWER;
	const ig_loghead *lo = newer ? &l->accepted : &l->cand, *hi = newer ? &l->cand : &l->accepted;
	int rc = ig_loghead_check_consistency(msg, lo->cp.size, lo->cp.root, hi->cp.size, hi->cp.root, &err);
	if (rc == IG_ERR_INVAL) {
		ig_log(IG_LOG_WARN, "consistency proof not usable (%s); asking again", err.msg);
		retry_consistency(l, ig_mono_us());
		return;
	}
	if (rc != IG_OK) {
		refuse(l, "fork", l->cand.text, l->cand.len,
		       "the cluster head's checkpoint of size %" PRIu64 " does not extend the one of size %" PRIu64
		       " (%s), so it is showing a forked log",
		       hi->cp.size, lo->cp.size, err.msg);
		return;
	}
	if (!newer) {
		ig_log(IG_LOG_DEBUG, "an older log head (size %" PRIu64 ") is a prefix of the accepted one (size %" PRIu64 ")",
		       l->cand.cp.size, l->accepted.cp.size);
	} else if (ig_loghead_witnessed(&l->cand, &l->trust)) {
		char how[64];
		snprintf(how, sizeof how, "consistent with size %" PRIu64, l->accepted.cp.size);
		accept_head(l, &l->cand, how);
	} else {
		/* Proven, so a cosigned copy of this same tree is accepted without
		 * asking again (consider() compares it with cand). */
		ig_log(IG_LOG_DEBUG, "log head of size %" PRIu64 " is consistent; waiting for %zu witness cosignatures",
		       l->cand.cp.size, l->trust.quorum);
		l->proven_size = l->cand.cp.size;
		l->proven_from = l->accepted.cp.size;
		memcpy(l->proven_root, l->cand.cp.root, IG_HASH_BYTES);
	}
	next_candidate(l);
}

static void on_error(ig_log_state *l, const cJSON *msg)
{
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(msg, "error");
	const char *c = cJSON_IsString(code) ? code->valuestring : "";
	uint64_t now = ig_mono_us();
	if (strcmp(c, "no_tiles") == 0) {
		if (!l->unavailable)
			ig_log(IG_LOG_WARN, "this cluster's ledger has no tiles (format 1), so this device cannot check it; the "
			                    "operator should run iotguard upgrade");
		l->unavailable = true;
		l->incl_nonce[0] = '\0';
		l->incl_due_us = 0;
		clear_pending(l);
		return;
	}
	if (nonce_is(msg, l->incl_nonce)) {
		/* E.g. beyond_checkpoint right after a join: the next checkpoint covers it. */
		l->incl_nonce[0] = '\0';
		l->incl_failures++;
		l->incl_due_us = now + retry_delay_us(l->incl_failures);
		return;
	}
	if (strcmp(c, "beyond_checkpoint") == 0 && l->cons_kind == IG_LOGHEAD_OLDER) {
		refuse(l, "rollback", l->cand.text, l->cand.len,
		       "the cluster head now signs a log of size %" PRIu64 " and cannot prove the size-%" PRIu64
		       " log this device accepted from it, so its log was rolled back",
		       l->cand.cp.size, l->accepted.cp.size);
		return;
	}
	if ((strcmp(c, "beyond_checkpoint") == 0 && l->cons_failures + 1 >= NEWER_BEYOND_TRIES) ||
	    strcmp(c, "bad_range") == 0) {
		ig_log(IG_LOG_WARN, "the cluster head cannot prove its log head of size %" PRIu64 " (%s); dropping it",
		       l->cand.cp.size, c);
		next_candidate(l);
		return;
	}
	retry_consistency(l, now);
}

/* ---- the duty ------------------------------------------------------------------ */

static void log_on_connect(ig_agent *a, void *state)
{
	ig_log_state *l = state;
	(void)a;
	l->enrollment_proven = false;
	l->unavailable = false;
	l->incl_failures = 0;
	l->incl_nonce[0] = '\0';
	l->incl_due_us = 1;                /* on the first tick (trust may come later) */
	if (l->cons_active) {
		l->cons_nonce[0] = '\0';       /* its answer went with the old session: ask again */
		l->cons_due_us = 0;
	}
	if (l->pin->refused)
		say_refused(l);
	/* The head topic is the pin duty's subscription; the core hands its
	 * messages to every duty. */
}

static bool log_on_message(ig_agent *a, void *state, const char *topic, const uint8_t *payload, size_t len)
{
	ig_log_state *l = state;
	char want[IG_CLUSTER_MAX + 32];
	if (strcmp(topic, head_topic(want, sizeof want, a)) != 0)
		return false;
	if (l->pin->refused || !ensure_trust(l))
		return true;
	cJSON *head = cJSON_ParseWithLength((const char *)payload, len);
	const cJSON *note = cJSON_GetObjectItemCaseSensitive(head, "checkpoint");
	ig_error err = {0};
	if (!cJSON_IsString(note))
		ig_log(IG_LOG_DEBUG, "ledger head without a checkpoint ignored");
	else if (ig_loghead_parse(&l->scratch, &l->trust, note->valuestring, strlen(note->valuestring), &err) != IG_OK)
		ig_log(IG_LOG_DEBUG, "ledger head ignored by the log check: %s", err.msg);   /* the pin duty says why */
	else
		consider(l, &l->scratch, "the ledger head");
	cJSON_Delete(head);
	return true;
}

static bool log_on_inbox(ig_agent *a, void *state, const char *type, const cJSON *msg)
{
	ig_log_state *l = state;
	if (l->pin->refused || !l->trust_ready)
		return false;
	if (strcmp(type, "log_inclusion_proof") == 0 && nonce_is(msg, l->incl_nonce)) {
		on_inclusion(a, l, msg);
		return true;
	}
	if (strcmp(type, "log_consistency_proof") == 0 && nonce_is(msg, l->cons_nonce)) {
		on_consistency(l, msg);
		return true;
	}
	if (strcmp(type, "error") == 0 && (nonce_is(msg, l->incl_nonce) || nonce_is(msg, l->cons_nonce))) {
		on_error(l, msg);
		return true;
	}
	return false;
}

static void log_on_tick(ig_agent *a, void *state, uint64_t now_us)
{
	ig_log_state *l = state;
	if (l->pin->refused || l->unavailable || !ensure_trust(l))
		return;
	/* Not asked yet, no answer in time, or a retry that is due. */
	if (!l->enrollment_proven && l->incl_due_us && now_us >= l->incl_due_us) {
		if (l->incl_nonce[0])
			ig_log(IG_LOG_WARN, "no answer to the enrolment proof request within %u s; asking again",
			       ANSWER_TIMEOUT_US / 1000000u);
		ask_inclusion(a, l, now_us);
	}
	if (l->cons_active && now_us >= l->cons_due_us && now_us >= l->cons_last_us + CONS_MIN_GAP_US)
		ask_consistency(a, l, now_us);
}

static size_t log_status_fields(ig_agent *a, void *state, char *out, size_t cap)
{
	ig_log_state *l = state;
	(void)a;
	int n;
	if (l->pin->refused) {
		char safe[IG_LOGHEAD_DETAIL_MAX];
		size_t k = 0;
		for (const char *p = l->detail; *p && k + 1 < sizeof safe; p++)
			safe[k++] = (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) ? '\'' : *p;
		safe[k] = '\0';
		n = snprintf(out, cap, ",\"log\":{\"state\":\"refused\",\"reason\":\"%s\",\"detail\":\"%s\"}", l->reason, safe);
	} else {
		const char *st = l->unavailable ? "unavailable" : (l->have && l->enrollment_proven) ? "ok" : "checking";
		n = snprintf(out, cap, ",\"log\":{\"state\":\"%s\"", st);
		if (n > 0 && (size_t)n < cap && l->have)
			n += snprintf(out + n, cap - (size_t)n, ",\"size\":%" PRIu64, l->accepted.cp.size);
		if (n > 0 && (size_t)n < cap && l->enrollment_proven)
			n += snprintf(out + n, cap - (size_t)n, ",\"enrollment\":%" PRIu64, l->enrollment_index);
		if (n > 0 && (size_t)n < cap)
			n += snprintf(out + n, cap - (size_t)n, "}");
	}
	return n < 0 || (size_t)n >= cap ? cap : (size_t)n;
}

const ig_duty_ops ig_duty_log = {
	.name = "log",
	.on_connect = log_on_connect,
	.on_message = log_on_message,
	.on_inbox = log_on_inbox,
	.on_tick = log_on_tick,
	.status_fields = log_status_fields,
};
