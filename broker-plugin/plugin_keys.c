/*
 * plugin_keys.c: the session-key service's row in the service table
 * (lib/keys/svc_keys.c decides; docs/PROTOCOL.md, "session_key").
 *
 * Why this exists: the service in lib/ knows nothing of Mosquitto; this
 * glue gives it the broker's view of who is online, the policy in force and
 * the clock, and carries out the revocation notices it returns.
 */
#include "plugin_service.h"

#include <cJSON.h>

#include "ig_svc_keys.h"

/* A peer is online when it has a session that is not a joining one, here
 * or (shared mode) on another broker: its box then travels over a bridge. */
static bool peer_online(void *ctx, const char *id)
{
	const ig_plugin *pl = ctx;
	const ig_session *s = ig_sessions_find(&pl->sessions, id);
	return s ? !s->joining : ig_plugin_remote_online(pl, id);
}

static void *keys_init(ig_plugin *pl)
{
	ig_svc_keys_config cfg = {
		.session_key_ttl_s = pl->cfg.session_key_ttl_s,
		.requests_per_minute = pl->cfg.key_requests_per_minute,
	};
	const uint8_t *ch_sk = ig_ledger_ch_sk(pl->ledger);
	ig_svc_keys *k = ch_sk ? ig_svc_keys_new(pl->state, &pl->pool, ch_sk, &cfg, peer_online, pl) : NULL;
	if (!k)
		ig_plugin_log(MOSQ_LOG_ERR, "session keys: out of memory, or the ledger holds no cluster-head key");
	return k;
}

static void keys_free(void *svc)
{
	ig_svc_keys_free(svc);
}

static void keys_request(void *svc, ig_plugin *pl, const char *id, const char *type, const cJSON *req,
                         ig_decision *out)
{
	(void)type;
	ig_svc_keys_request(out, svc, pl->policy, id, req, ig_now_ms());
}

static void keys_tick(void *svc, ig_plugin *pl, uint64_t now_ms)
{
	(void)pl;
	ig_svc_keys_prune(svc, now_ms);
}

static void keys_on_revoke(void *svc, ig_plugin *pl, const char *id)
{
	uint64_t now_ms = ig_now_ms();
	for (;;) {
		ig_decision d = {0};
		bool more = ig_svc_keys_on_revoke(&d, svc, id, now_ms);
		ig_plugin_carry_out(pl, id, &d);
		if (!more)
			break;
	}
}

static void keys_stats(void *svc, ig_plugin *pl, cJSON *stats)
{
	(void)pl;
	ig_svc_keys_stats(svc, stats);
}

static const char *const keys_requests[] = {"session_key", NULL};
const ig_service ig_service_keys = {
	.name = "keys", .requests = keys_requests,
	.needs_key = true, .sealed_what = "issue session keys",
	.init = keys_init, .free = keys_free, .request = keys_request,
	.tick = keys_tick, .on_revoke = keys_on_revoke, .stats = keys_stats,
};
