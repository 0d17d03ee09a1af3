/*
 * plugin_kp.c: the key-ring service's row in the service table, its
 * retained revoked statement, and its admin commands (lib/kp/svc_kp.c
 * decides; docs/PROTOCOL.md, "Key rings").
 *
 * Why this exists: the service in lib/ knows nothing of Mosquitto; this glue
 * gives it who is online, the cluster-head key, the policy in force and a
 * way to carry out what it decides, and publishes the signed statement of
 * retired ring ids on iotguard/<cluster>/kp/revoked (retained). The row
 * needs the key (every ring derives from it and its records are signed):
 * while the cluster head is sealed the dispatcher refuses key_ring
 * "sealed", and devices keep using the rings they hold.
 */
#include "plugin.h"
#include "plugin_service.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_svc_kp.h"

typedef struct kp_glue {
	ig_plugin *pl;
	ig_svc_kp *svc;
	char topic_revoked[IG_TOPIC_MAX];
} kp_glue;

/* Module-level: the broker loads the plugin once, and the admin API reaches
 * the service through it. */
static kp_glue *g_glue;

static bool env_online(void *ctx, const char *id)
{
	const kp_glue *g = ctx;
	const ig_session *s = ig_sessions_find(&g->pl->sessions, id);
	return s && !s->joining;
}

static const uint8_t *env_ch_sk(void *ctx)
{
	const kp_glue *g = ctx;
	return ig_plugin_sealed(g->pl) ? NULL : ig_ledger_ch_sk(g->pl->ledger);
}

static const ig_policy *env_policy(void *ctx)
{
	const kp_glue *g = ctx;
	return g->pl->policy;
}

static void env_carry_out(void *ctx, ig_decision *d)
{
	kp_glue *g = ctx;
	ig_plugin_carry_out(g->pl, "", d);
}

static void env_publish_revoked(void *ctx, const char *json)
{
	kp_glue *g = ctx;
	ig_plugin_publish(g->topic_revoked, json, true);
}

static void *kp_init(ig_plugin *pl)
{
	kp_glue *g = calloc(1, sizeof *g);
	if (!g) {
		ig_plugin_log(MOSQ_LOG_ERR, "key rings: out of memory");
		return NULL;
	}
	g->pl = pl;
	snprintf(g->topic_revoked, sizeof g->topic_revoked, "iotguard/%s/kp/revoked", pl->cluster);
	ig_svc_kp_config cfg = {0};
	snprintf(cfg.cluster, sizeof cfg.cluster, "%s", pl->cluster);
	ig_svc_kp_env env = {
		.ctx = g, .online = env_online, .ch_sk = env_ch_sk, .policy = env_policy, .carry_out = env_carry_out,
		.publish_revoked = env_publish_revoked,
	};
	ig_error err = {0};
	g->svc = ig_svc_kp_new(pl->state, &cfg, &env, &err);
	if (!g->svc) {
		ig_plugin_log(MOSQ_LOG_ERR, "%s", err.msg);
		free(g);
		return NULL;
	}
	uint32_t P, m;
	uint8_t q;
	if (ig_policy_kp(pl->policy, &P, &m, &q))
		ig_plugin_log(MOSQ_LOG_NOTICE, "key rings: pool %u, ring %u, q %u", P, m, q);
	g_glue = g;
	return g;
}

static void kp_free(void *svc)
{
	kp_glue *g = svc;
	if (g_glue == g)
		g_glue = NULL;
	ig_svc_kp_free(g->svc);
	free(g);
}

static void kp_request(void *svc, ig_plugin *pl, const char *id, const char *type, const cJSON *req,
                       ig_decision *out)
{
	(void)pl;
	(void)type;
	kp_glue *g = svc;
	ig_svc_kp_request(out, g->svc, id, req, ig_now_ms());
}

static void kp_tick(void *svc, ig_plugin *pl, uint64_t now_ms)
{
	(void)pl;
	kp_glue *g = svc;
	ig_svc_kp_tick(g->svc, now_ms);
}

static void kp_on_revoke(void *svc, ig_plugin *pl, const char *id)
{
	(void)pl;
	kp_glue *g = svc;
	ig_svc_kp_on_revoke(g->svc, id);
}

static void kp_on_record(void *svc, ig_plugin *pl, const ig_record *rec)
{
	(void)pl;
	kp_glue *g = svc;
	ig_svc_kp_on_record(g->svc, rec);
}

static void kp_stats(void *svc, ig_plugin *pl, cJSON *stats)
{
	(void)pl;
	kp_glue *g = svc;
	ig_svc_kp_stats(g->svc, stats);
}

static const char *const kp_requests[] = {"key_ring", NULL};
const ig_service ig_service_kp = {
	.name = "kp", .requests = kp_requests, .needs_key = true, .sealed_what = "deal key rings",
	.init = kp_init, .free = kp_free, .request = kp_request, .tick = kp_tick, .on_revoke = kp_on_revoke,
	.stats = kp_stats, .on_record = kp_on_record,
};

/* ---- admin commands ------------------------------------------------------- */

/* Why the service cannot answer: sealed (the row waits for the key) or not running. */
static void not_running(const char **error, char *message, size_t cap, ig_plugin *pl)
{
	if (pl && ig_plugin_sealed(pl)) {
		*error = "sealed";
		ig_plugin_sealed_message(pl, message, cap, "deal key rings");
	} else {
		*error = "not_running";
		snprintf(message, cap, "the key-ring service is not running (see the broker log)");
	}
}

void ig_plugin_kp_admin_status(ig_plugin *pl, cJSON *slot)
{
	if (!g_glue) {
		const char *error;
		char msg[IG_DECISION_MESSAGE_MAX];
		not_running(&error, msg, sizeof msg, pl);
		cJSON_AddFalseToObject(slot, "ok");
		cJSON_AddStringToObject(slot, "error", error);
		cJSON_AddStringToObject(slot, "message", msg);
		return;
	}
	cJSON_AddTrueToObject(slot, "ok");
	ig_svc_kp_status_json(g_glue->svc, slot);
}

bool ig_plugin_kp_admin_rotate(ig_plugin *pl, const char *by, ig_plugin_kp_done_fn done, void *done_ctx,
                               const char **error, char *message, size_t cap)
{
	if (!g_glue) {
		not_running(error, message, cap, pl);
		return false;
	}
	ig_decision d;
	memset(&d, 0, sizeof d);
	if (!ig_svc_kp_rotate(&d, g_glue->svc, by, done, done_ctx, error, message, cap))
		return false;
	ig_plugin_carry_out(g_glue->pl, "", &d);
	return true;
}
