/*
 * plugin_service.c: the service table, its dispatcher, and the one function
 * that carries out every service's decisions (plugin_service.h).
 *
 * Why this exists: routing a request, ticking, revoking and reporting stats
 * loop over one table, so no file of the plugin names every feature; and a
 * decision is carried out in one place, so "answer only once the record is
 * durable" is written once, not once per service.
 */
#include "plugin_service.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_svc_ping.h"

/* ---- ping: the smallest service ------------------------------------------ */

static void ping_request(void *svc, ig_plugin *pl, const char *id, const char *type, const cJSON *req,
                         ig_decision *out)
{
	(void)svc;
	(void)pl;
	(void)type;
	ig_svc_ping_request(out, id, req, ig_now_ms());
}

static void *no_state(ig_plugin *pl)
{
	(void)pl;
	static int none;
	return &none;
}

static const char *const ping_requests[] = {"ping", NULL};
static const ig_service ig_service_ping = {
	.name = "ping", .requests = ping_requests, .open_to_joining = true,
	.init = no_state, .request = ping_request,
};

/* ---- the table ------------------------------------------------------------ */

/* In dispatch order; a request type belongs to exactly one row. */
static const ig_service *const services[] = {
	&ig_service_ping,
	&ig_service_entropy,
	&ig_service_attest,
	&ig_service_keys,
	&ig_service_bank,
	&ig_service_join,
	&ig_service_proof,
	&ig_service_witness,
	&ig_service_custody,
	&ig_service_kp,
	&ig_service_fleet,
};
#define N_SERVICES (sizeof services / sizeof services[0])

/* Each row's state, made by its init, and whether it runs (false: not
 * started, or deferred while the cluster head is sealed). Module-level
 * because the broker loads the plugin once per process. */
static void *states[N_SERVICES];
static bool running[N_SERVICES];

static void free_rows(void)
{
	for (size_t i = N_SERVICES; i-- > 0;)
		if (running[i] && services[i]->free && states[i])
			services[i]->free(states[i]);
	memset(states, 0, sizeof states);
	memset(running, 0, sizeof running);
}

/* Starts row i; false (after logging) when its init failed. */
static bool start_row(ig_plugin *pl, size_t i)
{
	states[i] = services[i]->init ? services[i]->init(pl) : NULL;
	if (services[i]->init && !states[i])
		return false;
	running[i] = true;
	return true;
}

int ig_plugin_services_init(ig_plugin *pl)
{
	for (size_t i = 0; i < N_SERVICES; i++) {
		if (pl->sealed && services[i]->needs_key)
			continue;
		if (!start_row(pl, i)) {
			ig_plugin_log(MOSQ_LOG_ERR, "service %s could not start (see above); refusing to start",
			              services[i]->name);
			free_rows();
			return -1;
		}
	}
	return 0;
}

int ig_plugin_services_unseal(ig_plugin *pl)
{
	int rc = 0;
	for (size_t i = 0; i < N_SERVICES; i++) {
		if (running[i])
			continue;
		if (!start_row(pl, i)) {
			ig_plugin_log(MOSQ_LOG_ERR, "service %s could not start after the unseal (see above); its requests "
			              "are still refused as sealed", services[i]->name);
			rc = -1;
		}
	}
	return rc;
}

size_t ig_plugin_services_deferred(void)
{
	size_t n = 0;
	for (size_t i = 0; i < N_SERVICES; i++)
		n += !running[i];
	return n;
}

void ig_plugin_services_free(ig_plugin *pl)
{
	(void)pl;
	free_rows();
}

static const ig_service *find(const char *type, size_t *row, const char **name)
{
	for (size_t i = 0; i < N_SERVICES; i++)
		for (const char *const *t = services[i]->requests; t && *t; t++)
			if (strcmp(*t, type) == 0) {
				*row = i;
				*name = *t;
				return services[i];
			}
	return NULL;
}

const ig_service *ig_plugin_service_for(const char *type, void **svc)
{
	size_t row;
	const char *name;
	const ig_service *s = find(type, &row, &name);
	if (s && svc)
		*svc = running[row] ? states[row] : NULL;
	return s;
}

const char *ig_plugin_service_request_name(const char *type)
{
	size_t row;
	const char *name = NULL;
	return find(type, &row, &name) ? name : NULL;
}

const char *ig_plugin_services_request_list(void)
{
	static char list[512];
	if (!list[0]) {
		size_t n = 0;
		for (size_t i = 0; i < N_SERVICES; i++)
			for (const char *const *t = services[i]->requests; t && *t; t++)
				n += (size_t)snprintf(list + n, n < sizeof list ? sizeof list - n : 0, "%s%s", n ? ", " : "", *t);
	}
	return list;
}

/* A request nonce the refusal may carry back: what every service accepts
 * (1..64 printable characters), never whatever a client sent. */
static const char *valid_nonce(const cJSON *req)
{
	const cJSON *n = cJSON_IsObject(req) ? cJSON_GetObjectItemCaseSensitive(req, "nonce") : NULL;
	return cJSON_IsString(n) && ig_decision_nonce_ok(n->valuestring) ? n->valuestring : NULL;
}

bool ig_plugin_services_request(ig_plugin *pl, const char *id, const char *type, const cJSON *req)
{
	size_t row;
	const char *name;
	const ig_service *s = find(type, &row, &name);
	if (!s || !s->request)
		return false;
	ig_decision d;
	memset(&d, 0, sizeof d);
	if (!running[row]) {
		/* Deferred until the unseal: the client retries later. */
		char msg[IG_DECISION_MESSAGE_MAX];
		ig_plugin_sealed_message(pl, msg, sizeof msg, s->sealed_what);
		ig_decision_refuse(&d, name, valid_nonce(req), "sealed", "%s", msg);
		pl->sealed_refused_requests++;
		ig_plugin_carry_out(pl, id, &d);
		return true;
	}
	s->request(states[row], pl, id, name, req, &d);
	ig_plugin_carry_out(pl, id, &d);
	return true;
}

bool ig_plugin_services_consume(const char *suffix)
{
	for (size_t i = 0; i < N_SERVICES; i++)
		if (services[i]->dev_topic && strcmp(services[i]->dev_topic, suffix) == 0)
			return true;
	return false;
}

bool ig_plugin_services_dev_message(ig_plugin *pl, const char *id, const char *suffix, const void *payload,
                                    uint32_t len)
{
	for (size_t i = 0; i < N_SERVICES; i++) {
		if (!services[i]->dev_topic || strcmp(services[i]->dev_topic, suffix) != 0)
			continue;
		if (!running[i]) {
			/* Nobody to hear it while sealed; the device sends more later. */
			pl->sealed_dropped_dev_messages++;
			return true;
		}
		ig_decision d;
		memset(&d, 0, sizeof d);
		services[i]->dev_message(states[i], pl, id, payload, len, &d);
		ig_plugin_carry_out(pl, id, &d);
		return true;
	}
	return false;
}

void ig_plugin_services_tick(ig_plugin *pl, uint64_t now_ms)
{
	for (size_t i = 0; i < N_SERVICES; i++)
		if (running[i] && services[i]->tick)
			services[i]->tick(states[i], pl, now_ms);
}

void ig_plugin_services_on_revoke(ig_plugin *pl, const char *id)
{
	for (size_t i = 0; i < N_SERVICES; i++)
		if (running[i] && services[i]->on_revoke)
			services[i]->on_revoke(states[i], pl, id);
}

void ig_plugin_services_on_record(ig_plugin *pl, const ig_record *rec)
{
	for (size_t i = 0; i < N_SERVICES; i++)
		if (running[i] && services[i]->on_record)
			services[i]->on_record(states[i], pl, rec);
}

void ig_plugin_services_stats(ig_plugin *pl, cJSON *stats)
{
	for (size_t i = 0; i < N_SERVICES; i++)
		if (running[i] && services[i]->stats)
			services[i]->stats(states[i], pl, stats);
}

/* ---- carrying out --------------------------------------------------------- */

typedef struct pending_append {
	ig_plugin *pl;
	char requester[IG_ID_MAX + 1];
	ig_decision_done_fn done;
	void *done_ctx;
} pending_append;

static void on_append_done(void *ctx, int status, const ig_record *rec)
{
	pending_append *pa = ctx;
	ig_plugin *pl = pa->pl;
	if (status == IG_OK && rec)
		ig_plugin_record_durable(pl, rec);   /* plugin_follow.c: as for a followed record */
	ig_decision out;
	memset(&out, 0, sizeof out);
	pa->done(pa->done_ctx, status, rec, &out);
	ig_plugin_carry_out(pl, pa->requester, &out);
	free(pa);
}

static void send_reply(ig_plugin *pl, const char *to, cJSON *o)
{
	ig_plugin_reply(pl, to, o);   /* consumes o */
}

void ig_plugin_carry_out(ig_plugin *pl, const char *requester, ig_decision *d)
{
	ig_decision *then = d->next;   /* carried out after d, in order */
	d->next = NULL;
	switch (d->kind) {
	case IG_DECISION_NONE:
		break;
	case IG_DECISION_REFUSE: {
		cJSON *o = ig_decision_error_json(d);
		if (o)
			send_reply(pl, requester, o);
		break;
	}
	case IG_DECISION_REPLY:
		for (size_t i = 0; i < d->n_replies; i++) {
			send_reply(pl, d->replies[i].to, d->replies[i].body);
			d->replies[i].body = NULL;
		}
		d->n_replies = 0;
		break;
	case IG_DECISION_APPEND: {
		pending_append *pa = calloc(1, sizeof *pa);
		int rc = IG_ERR_NOMEM;
		if (pa) {
			pa->pl = pl;
			snprintf(pa->requester, sizeof pa->requester, "%s", requester);
			pa->done = d->done;
			pa->done_ctx = d->done_ctx;
			rc = ig_ledger_submit(pl->ledger, d->rec_type, d->body, d->body_len, on_append_done, pa);
		}
		if (rc != IG_OK) {
			/* Not queued: certainly not written. The service answers. */
			free(pa);
			ig_decision out;
			memset(&out, 0, sizeof out);
			d->done(d->done_ctx, rc, NULL, &out);
			ig_plugin_carry_out(pl, requester, &out);
		}
		d->done = NULL;   /* handed over: clearing must not complete it again */
		break;
	}
	}
	ig_decision_clear(d);
	while (then) {
		ig_decision *after = then->next;
		then->next = NULL;
		ig_plugin_carry_out(pl, requester, then);
		free(then);
		then = after;
	}
}
