/*
 * decision.c: building and freeing ig_decision values (ig_decision.h).
 *
 * Why this exists: every service builds decisions the same way, and a
 * refusal's JSON is rendered in one place, so an error looks alike whichever
 * service sent it (docs/PROTOCOL.md, "Errors").
 */
#include "ig_decision.h"

#include <cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ig_decision_kind ig_decision_refuse(ig_decision *d, const char *request, const char *nonce, const char *error,
                                    const char *fmt, ...)
{
	for (size_t i = 0; i < d->n_replies; i++)
		cJSON_Delete(d->replies[i].body);
	d->n_replies = 0;
	d->kind = IG_DECISION_REFUSE;
	d->request = request;
	d->error = error;
	snprintf(d->nonce, sizeof d->nonce, "%s", nonce ? nonce : "");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->message, sizeof d->message, fmt, ap);
	va_end(ap);
	return d->kind;
}

bool ig_decision_reply(ig_decision *d, const char *to, cJSON *body)
{
	if (!body || d->n_replies >= IG_DECISION_REPLIES_MAX || strlen(to) > IG_ID_MAX) {
		cJSON_Delete(body);
		ig_decision_refuse(d, d->request, d->nonce, "internal",
		                   "the cluster head could not build its answer (out of memory); retry");
		return false;
	}
	ig_reply *r = &d->replies[d->n_replies++];
	memcpy(r->to, to, strlen(to) + 1);
	r->body = body;
	d->kind = IG_DECISION_REPLY;
	return true;
}

bool ig_decision_append(ig_decision *d, uint16_t type, const uint8_t *body, size_t len, ig_decision_done_fn done,
                        void *done_ctx)
{
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy)
		return false;
	if (len)
		memcpy(copy, body, len);
	d->kind = IG_DECISION_APPEND;
	d->rec_type = type;
	d->body = copy;
	d->body_len = len;
	d->done = done;
	d->done_ctx = done_ctx;
	return true;
}

ig_decision *ig_decision_then(ig_decision *d)
{
	while (d->next)
		d = d->next;
	d->next = calloc(1, sizeof *d->next);
	return d->next;
}

bool ig_decision_reply_chained(ig_decision *d, const char *to, cJSON *body)
{
	if (!body)
		return false;   /* out of memory building it: nothing to send */
	ig_decision *last = d;
	while (last->next)
		last = last->next;
	if (!(last->kind == IG_DECISION_NONE ||
	      (last->kind == IG_DECISION_REPLY && last->n_replies < IG_DECISION_REPLIES_MAX))) {
		last = ig_decision_then(d);
		if (!last) {
			cJSON_Delete(body);
			return false;
		}
	}
	return ig_decision_reply(last, to, body);
}

cJSON *ig_decision_error_json(const ig_decision *d)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "type", "error");
	cJSON_AddStringToObject(o, "error", d->error ? d->error : "internal");
	if (d->request)
		cJSON_AddStringToObject(o, "request", d->request);
	if (d->nonce[0])
		cJSON_AddStringToObject(o, "nonce", d->nonce);
	cJSON_AddStringToObject(o, "message", d->message);
	return o;
}

void ig_decision_clear(ig_decision *d)
{
	if (d->kind == IG_DECISION_APPEND && d->done) {
		ig_decision discard;
		memset(&discard, 0, sizeof discard);
		ig_decision_done_fn done = d->done;
		d->done = NULL;
		done(d->done_ctx, IG_ERR_CLOSED, NULL, &discard);
		ig_decision_clear(&discard);
	}
	for (size_t i = 0; i < d->n_replies; i++)
		cJSON_Delete(d->replies[i].body);
	free(d->body);
	ig_decision *next = d->next;
	memset(d, 0, sizeof *d);
	while (next) {
		ig_decision *after = next->next;
		next->next = NULL;
		ig_decision_clear(next);
		free(next);
		next = after;
	}
}

const char *ig_decision_ledger_refusal(int status)
{
	switch (status) {
	case IG_ERR_NOSPACE:
		return "the cluster head's disk is full (ENOSPC), so nothing was recorded; retry later (the operator "
		       "must free disk space; the broker resumes by itself)";
	case IG_ERR_CLOSED:
		return "the broker is shutting down, so nothing was recorded; retry once it is back";
	case IG_ERR_SEALED:
		return "the cluster head is sealed (its key waits for the custody holders), so nothing was recorded; "
		       "retry later";
	case IG_ERR_UNAVAILABLE:
		return "the shared ledger's database (PostgreSQL) is unreachable, so nothing was recorded; retry in a few "
		       "seconds (the broker reconnects by itself)";
	case IG_ERR_CONFLICT:
		return "another broker changed the shared ledger first and this change no longer applies, so nothing "
		       "was recorded; look again at the current state before retrying";
	default:
		return "the ledger is not accepting records (a disk write failed; see the broker log), so nothing was "
		       "recorded; retry after the operator has fixed the disk and restarted the broker";
	}
}

bool ig_decision_nonce_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > IG_DECISION_REQUEST_NONCE_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return false;
	return true;
}
