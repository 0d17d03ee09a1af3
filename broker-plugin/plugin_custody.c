/*
 * plugin_custody.c: the custody service's row in the service table, its
 * options, its retained topic and events, and its admin commands
 * (lib/custody/svc_custody.c decides; docs/PROTOCOL.md, "Custody").
 *
 * Why this exists: the service in lib/ knows nothing of Mosquitto; this glue
 * gives it who is online, whether the cluster head is sealed, the key when
 * it is not, and a way to install the rebuilt key (ig_plugin_unseal), and
 * publishes what it reports: iotguard/<cluster>/custody (retained state) and
 * iotguard/<cluster>/custody/events (what no ledger record shows). The row
 * runs while sealed (it is what unseals).
 */
#include "plugin.h"
#include "plugin_service.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_svc_custody.h"

/* ---- options ------------------------------------------------------------- */

static int opt_u32(const char *name, const char *value, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end = NULL;
	errno = 0;
	unsigned long long v = strtoull(value, &end, 10);
	if (errno || !end || *end || end == value || value[0] == '-' || v < min || v > max) {
		ig_plugin_log(MOSQ_LOG_ERR, "plugin_opt_%s '%s' is not a number in %u..%u; fix mosquitto.conf", name, value,
		              min, max);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

int ig_plugin_custody_option(ig_plugin_config *cfg, const char *key, const char *value)
{
	ig_plugin_custody_config *c = &cfg->custody;
	if (!strcmp(key, "custody_threshold"))
		return opt_u32(key, value, 2, 255, &c->k);
	if (!strcmp(key, "custody_shares"))
		return opt_u32(key, value, 2, 255, &c->n);
	if (!strcmp(key, "custody_rotate_s"))
		return opt_u32(key, value, 0, 365u * 86400u, &c->rotate_s);
	if (!strcmp(key, "custody_holder_timeout_s"))
		return opt_u32(key, value, 1, 365u * 86400u, &c->holder_timeout_s);
	if (!strcmp(key, "custody_min_battery"))
		return opt_u32(key, value, 0, 100, &c->min_battery);
	if (!strcmp(key, "custody_deal_timeout_s"))
		return opt_u32(key, value, 5, 86400, &c->deal_timeout_s);
	if (!strcmp(key, "custody_unseal")) {
		if (!strcmp(value, "auto") || !strcmp(value, "admin")) {
			c->unseal_admin = !strcmp(value, "admin");
			return 0;
		}
		ig_plugin_log(MOSQ_LOG_ERR, "plugin_opt_custody_unseal '%s': use auto (holders release their shares when "
		                            "asked) or admin (only against an admin's approval)", value);
		return -1;
	}
	ig_plugin_log(MOSQ_LOG_ERR, "unknown option plugin_opt_%s; custody options: custody_threshold, custody_shares, "
	              "custody_unseal, custody_rotate_s, custody_holder_timeout_s, custody_min_battery, "
	              "custody_deal_timeout_s", key);
	return -1;
}

void ig_plugin_custody_defaults(ig_plugin_config *cfg)
{
	cfg->custody.rotate_s = 86400;
	cfg->custody.holder_timeout_s = 3600;
	cfg->custody.min_battery = 30;
	cfg->custody.deal_timeout_s = 120;
}

/* ---- what the service asks of the broker ---------------------------------- */

typedef struct custody_glue {
	ig_plugin *pl;
	ig_svc_custody *svc;
	char topic_state[IG_TOPIC_MAX];
	char topic_events[IG_TOPIC_MAX];
} custody_glue;

/* Module-level: the broker loads the plugin once, and the admin API reaches
 * the service through it. */
static custody_glue *g_glue;

static bool env_online(void *ctx, const char *id)
{
	const custody_glue *g = ctx;
	const ig_session *s = ig_sessions_find(&g->pl->sessions, id);
	return s && !s->joining;
}

static bool env_sealed(void *ctx)
{
	const custody_glue *g = ctx;
	return ig_plugin_sealed(g->pl);
}

static const uint8_t *env_ch_sk(void *ctx)
{
	const custody_glue *g = ctx;
	return ig_plugin_sealed(g->pl) ? NULL : ig_ledger_ch_sk(g->pl->ledger);
}

static int env_unseal(void *ctx, const uint8_t sk[IG_SK_BYTES], ig_error *err)
{
	custody_glue *g = ctx;
	return ig_plugin_unseal(g->pl, sk, err);
}

static void env_carry_out(void *ctx, ig_decision *d)
{
	custody_glue *g = ctx;
	ig_plugin_carry_out(g->pl, "", d);
}

static void env_event(void *ctx, cJSON *ev)
{
	custody_glue *g = ctx;
	char *json = cJSON_PrintUnformatted(ev);
	cJSON_Delete(ev);
	ig_plugin_publish(g->topic_events, json, false);
	free(json);
}

static void env_publish_state(void *ctx, const char *json)
{
	custody_glue *g = ctx;
	ig_plugin_publish(g->topic_state, json, true);
}

static uint32_t env_holder_roles(void *ctx)
{
	const custody_glue *g = ctx;
	return ig_policy_custody_holder_roles(g->pl->policy);
}

static bool env_ledger_head(void *ctx, uint64_t *size, uint8_t root[32])
{
	custody_glue *g = ctx;
	char text[1024];
	ig_checkpoint cp;
	if (ig_ledger_checkpoint(g->pl->ledger, text, sizeof text, &cp) < 0)
		return false;
	*size = cp.size;
	memcpy(root, cp.root, 32);
	return true;
}

/* ---- the row ------------------------------------------------------------- */

static void *custody_init(ig_plugin *pl)
{
	const ig_plugin_custody_config *pc = &pl->cfg.custody;
	ig_svc_custody_config cfg = {
		.k = pc->k, .n = pc->n, .rotate_s = pc->rotate_s, .holder_timeout_s = pc->holder_timeout_s,
		.min_battery = pc->min_battery, .deal_timeout_s = pc->deal_timeout_s, .unseal_admin = pc->unseal_admin,
	};
	snprintf(cfg.cluster, sizeof cfg.cluster, "%s", pl->cluster);
	snprintf(cfg.ledger_dir, sizeof cfg.ledger_dir, "%s", pl->cfg.ledger_dir);
	memcpy(cfg.ch_pk, pl->ch_pk, IG_PK_BYTES);
	custody_glue *g = calloc(1, sizeof *g);
	if (!g) {
		ig_plugin_log(MOSQ_LOG_ERR, "custody: out of memory");
		return NULL;
	}
	g->pl = pl;
	snprintf(g->topic_state, sizeof g->topic_state, "iotguard/%s/custody", pl->cluster);
	snprintf(g->topic_events, sizeof g->topic_events, "iotguard/%s/custody/events", pl->cluster);
	ig_svc_custody_env env = {
		.ctx = g, .online = env_online, .sealed = env_sealed, .ch_sk = env_ch_sk, .unseal = env_unseal,
		.carry_out = env_carry_out, .event = env_event, .publish_state = env_publish_state,
		.holder_roles = env_holder_roles, .ledger_head = env_ledger_head,
	};
	ig_error err = {0};
	g->svc = ig_svc_custody_new(pl->state, &pl->pool, &cfg, &env, &err);
	if (!g->svc) {
		ig_plugin_log(MOSQ_LOG_ERR, "custody: %s", err.msg);
		free(g);
		return NULL;
	}
	if (cfg.k)
		ig_plugin_log(MOSQ_LOG_NOTICE, "custody: %u-of-%u, rotation every %u s, holders offline %u s are replaced, "
		              "unseal %s", cfg.k, cfg.n, cfg.rotate_s, cfg.holder_timeout_s,
		              cfg.unseal_admin ? "after an admin's approval" : "automatic");
	else if (ig_plugin_sealed(pl))
		ig_plugin_log(MOSQ_LOG_ERR, "custody: the cluster head is sealed but custody is off in mosquitto.conf, so "
		                            "no holder is asked for a share: set plugin_opt_custody_threshold and "
		                            "plugin_opt_custody_shares as before");
	g_glue = g;
	return g;
}

static void custody_free(void *svc)
{
	custody_glue *g = svc;
	if (g_glue == g)
		g_glue = NULL;
	ig_svc_custody_free(g->svc);
	free(g);
}

static void custody_request(void *svc, ig_plugin *pl, const char *id, const char *type, const cJSON *req,
                            ig_decision *out)
{
	(void)pl;
	custody_glue *g = svc;
	if (strcmp(type, "custody_ack") == 0)
		ig_svc_custody_ack(out, g->svc, id, req, ig_now_ms());
	else
		ig_svc_custody_share(out, g->svc, id, req, ig_now_ms());
}

static void custody_dev_message(void *svc, ig_plugin *pl, const char *id, const void *payload, uint32_t len,
                                ig_decision *out)
{
	(void)pl;
	custody_glue *g = svc;
	ig_svc_custody_status_message(out, g->svc, id, payload, len, ig_now_ms());
}

static void custody_tick(void *svc, ig_plugin *pl, uint64_t now_ms)
{
	(void)pl;
	custody_glue *g = svc;
	ig_svc_custody_tick(g->svc, now_ms);
}

static void custody_on_revoke(void *svc, ig_plugin *pl, const char *id)
{
	(void)pl;
	custody_glue *g = svc;
	ig_svc_custody_on_revoke(g->svc, id);
}

static void custody_stats(void *svc, ig_plugin *pl, cJSON *stats)
{
	(void)pl;
	custody_glue *g = svc;
	ig_svc_custody_stats(g->svc, stats);
}

static const char *const custody_requests[] = {"custody_ack", "custody_share", NULL};
const ig_service ig_service_custody = {
	.name = "custody", .requests = custody_requests, .dev_topic = "status",
	.init = custody_init, .free = custody_free, .request = custody_request, .dev_message = custody_dev_message,
	.tick = custody_tick, .on_revoke = custody_on_revoke, .stats = custody_stats,
};

/* ---- admin commands ------------------------------------------------------- */

void ig_plugin_custody_admin_status(cJSON *slot)
{
	if (!g_glue) {
		cJSON_AddFalseToObject(slot, "ok");
		cJSON_AddStringToObject(slot, "error", "custody_off");
		cJSON_AddStringToObject(slot, "message", "the custody service is not running");
		return;
	}
	cJSON_AddTrueToObject(slot, "ok");
	ig_svc_custody_status_json(g_glue->svc, slot, ig_now_ms());
}

bool ig_plugin_custody_admin_rotate(const char *by, const char **error, char *message, size_t cap)
{
	if (!g_glue) {
		*error = "custody_off";
		snprintf(message, cap, "the custody service is not running");
		return false;
	}
	return ig_svc_custody_rotate(g_glue->svc, by, error, message, cap);
}

bool ig_plugin_custody_admin_seal(const char *by, ig_plugin_custody_done_fn done, void *done_ctx, const char **error,
                                  char *message, size_t cap)
{
	if (!g_glue) {
		*error = "custody_off";
		snprintf(message, cap, "the custody service is not running");
		return false;
	}
	ig_decision d;
	memset(&d, 0, sizeof d);
	if (!ig_svc_custody_seal(&d, g_glue->svc, by, done, done_ctx, error, message, cap))
		return false;
	ig_plugin_carry_out(g_glue->pl, "", &d);
	return true;
}

bool ig_plugin_custody_admin_recover(const uint8_t pk[32], const struct ig_svc_custody_approval *approval,
                                     ig_plugin_custody_recover_fn done, void *done_ctx, const char **error,
                                     char *message, size_t cap)
{
	if (!g_glue) {
		*error = "custody_off";
		snprintf(message, cap, "the custody service is not running");
		return false;
	}
	return ig_svc_custody_recover(g_glue->svc, pk, approval, 30, done, done_ctx, error, message, cap);
}

bool ig_plugin_custody_admin_approve(const char *by, const uint8_t sig[64], const char **error, char *message,
                                     size_t cap)
{
	if (!g_glue) {
		*error = "custody_off";
		snprintf(message, cap, "the custody service is not running");
		return false;
	}
	return ig_svc_custody_approve(g_glue->svc, by, sig, error, message, cap);
}
