/*
 * plugin_auth.c: CONNECT authentication, as glue.
 *
 * Why this exists: Mosquitto hands us a username, a password (or MQTT v5
 * authentication data), a client id and an address. lib/identity/auth.c decides
 * (ig_auth_connect: bans, join tokens, the token check, the id budget, the
 * replay cache, session admission), on tables lib owns (lib/identity/sessions.c,
 * lib/identity/ban.c, lib/identity/nonces.c). This file reads the client data, makes those
 * tables at start, sweeps the replay cache on ticks, logs the lines the
 * decision returns, counts it for the stats and answers the broker. It
 * also owns the lifetime of the per-client ACL decision cache
 * (lib/identity/aclcache.c): made at start, a client's entries released at its
 * DISCONNECT.
 */
#include "plugin.h"

#include <cJSON.h>
#include <stdio.h>
#include <string.h>

#define IG_AUTH_METHOD "iotguard-ed25519-v1"

/* ---- brute force and replays ------------------------------------------ */

/* 3/4 of a power of two: the tables' slot arrays are then exactly 65536
 * slots (lib/base/idtable.c keeps them at most 3/4 full). */
#define BAN_TABLE_ENTRIES 49152        /* addresses tracked at once (3.7 MB) */
#define BUDGET_TABLE_ENTRIES 49152     /* identities with failed checks tracked at once (2.1 MB) */
#define REPLAY_SWEEP_EVERY_MS 10       /* Mosquitto ticks once per event-loop pass, thousands of times a
                                          second under load; a sweep at each one cost ~1 us per login.
                                          Each sweep examines a share of the table (ig_nonces_sweep_paced);
                                          inserts sweep too, and a full table looks harder itself. */
#define ACL_CACHE_CLIENTS 65536        /* clients whose ACL decisions are remembered (~1.2 KB each) */

/* What only authentication needs, kept here rather than in ig_plugin. One
 * per process: the broker loads the plugin once. */
static struct {
	ig_ban *bans;                  /* failing addresses (lib/identity/ban.c) */
	ig_ban_ids *id_budget;         /* failed signature checks per id */
	ig_nonces *replay;             /* single-use token nonces (lib/identity/nonces.c) */
	uint64_t replay_swept_ms;      /* last sweep of the replay cache */
	uint64_t accepted;
	uint64_t refused[IG_AUTH_RESULT_COUNT];
} g_auth;

int ig_plugin_auth_init(ig_plugin *pl)
{
	memset(&g_auth, 0, sizeof g_auth);
	bool budget_ok = !pl->cfg.auth_id_budget ||
	                 ig_ban_ids_new(&g_auth.id_budget, BUDGET_TABLE_ENTRIES, pl->cfg.auth_id_budget) == IG_OK;
	if (!budget_ok || ig_ban_new(&g_auth.bans, BAN_TABLE_ENTRIES) != IG_OK ||
	    ig_nonces_new(&g_auth.replay, pl->cfg.replay_cache_max) != IG_OK ||
	    ig_aclcache_new(&pl->aclcache, ACL_CACHE_CLIENTS) != IG_OK) {
		ig_plugin_log(MOSQ_LOG_ERR, "could not allocate the login-failure, replay and ACL-decision tables (out of "
		              "memory); refusing to start");
		ig_plugin_auth_free(pl);
		return -1;
	}
	return 0;
}

void ig_plugin_auth_free(ig_plugin *pl)
{
	ig_ban_free(g_auth.bans);
	ig_ban_ids_free(g_auth.id_budget);
	ig_nonces_free(g_auth.replay);
	ig_aclcache_free(pl->aclcache);
	pl->aclcache = NULL;
	memset(&g_auth, 0, sizeof g_auth);
}

void ig_plugin_auth_stats(cJSON *stats)
{
	cJSON *auth = cJSON_AddObjectToObject(stats, "auth");
	cJSON_AddNumberToObject(auth, "accepted", (double)g_auth.accepted);
	uint64_t refused_total = 0;
	cJSON *refused = cJSON_CreateObject();
	for (int r = 1; r < IG_AUTH_RESULT_COUNT; r++) {
		cJSON_AddNumberToObject(refused, ig_auth_result_name((ig_auth_result)r), (double)g_auth.refused[r]);
		refused_total += g_auth.refused[r];
	}
	cJSON_AddNumberToObject(auth, "refused_total", (double)refused_total);
	cJSON_AddItemToObject(auth, "refused", refused);
}

ig_nonces *ig_plugin_auth_replay(void)
{
	return g_auth.replay;
}

void ig_plugin_auth_tick(ig_plugin *pl, uint64_t now_ms)
{
	/* now_ms comes in whole seconds; the sweep's pace needs the real clock. */
	uint64_t clock_ms = ig_mono_us() / 1000;
	(void)pl;
	if (g_auth.replay && clock_ms - g_auth.replay_swept_ms >= REPLAY_SWEEP_EVERY_MS) {
		(void)ig_nonces_sweep_paced(g_auth.replay, now_ms / 1000, clock_ms - g_auth.replay_swept_ms);
		g_auth.replay_swept_ms = clock_ms;
	}
}

typedef struct join_ctx {
	ig_plugin *pl;
	struct mosquitto *client;
} join_ctx;

static ig_auth_result join_check(void *ctx, const char *username, const char *token, size_t token_len,
                                 ig_session *out)
{
	join_ctx *j = ctx;
	return ig_plugin_join_auth(j->pl, j->client, username, token, token_len, out);
}

/* Log lines about refusals are rate-limited across all connections. */
static ig_auth_quiet quiet;

/* On IG_AUTH_OK, accepted_id holds the id the session was opened for. */
static ig_auth_result authenticate(ig_plugin *pl, struct mosquitto *client, const char *username,
                                   const char *token, size_t token_len, char accepted_id[IG_ID_MAX + 1])
{
	join_ctx jctx = {.pl = pl, .client = client};
	ig_auth_env env = {
		.reg = pl->reg, .sessions = &pl->sessions, .bans = g_auth.bans,
		.ban_rules = {.limit = pl->cfg.auth_fail_limit, .window_ms = 60000, .ban_ms = pl->cfg.auth_ban_s * 1000u},
		.replay_cache_max = pl->cfg.replay_cache_max,
		.params = {.cluster = pl->cluster, .skew_s = pl->cfg.clock_skew_s, .budget = g_auth.id_budget,
		           .replay = g_auth.replay},
		.join = join_check, .join_ctx = &jctx, .quiet = &quiet,
	};
	memcpy(env.params.max_ttl_s, pl->max_ttl_s, sizeof env.params.max_ttl_s);
	for (int r = 0; r < IG_ROLE_COUNT; r++)
		env.params.single_use[r] = ig_policy_single_use(pl->policy, (ig_role)r);
	ig_auth_conn conn = {
		.client = client, .client_id = mosquitto_client_id(client), .addr = mosquitto_client_address(client),
		.username = username, .token = token, .token_len = token_len, .now_ms = ig_now_ms(),
	};
	ig_auth_outcome out;
	ig_auth_connect(&out, &env, &conn);
	for (size_t i = 0; i < out.lines; i++)
		ig_plugin_log(out.line[i].level == IG_AUTH_LOG_WARNING ? MOSQ_LOG_WARNING : MOSQ_LOG_NOTICE, "%s",
		              out.line[i].text);
	/* Shared mode: the other brokers learn this single-use token's nonce
	 * (plugin_nonces.c), so it is refused as a replay there too. */
	if (out.result == IG_AUTH_OK && out.nonce_added && ig_plugin_shared(pl))
		ig_plugin_nonces_note(out.nonce, out.nonce_expires_at);
	if (out.counted) {
		if (out.result == IG_AUTH_OK)
			g_auth.accepted++;
		else if (out.result < IG_AUTH_RESULT_COUNT)
			g_auth.refused[out.result]++;
	}
	size_t id_len = strnlen(out.id, IG_ID_MAX);
	memcpy(accepted_id, out.id, id_len);
	accepted_id[id_len] = '\0';
	return out.result;
}

/* Mosquitto 2.0 answers MOSQ_ERR_AUTH from this callback with CONNACK 5
 * (3.1.1) or 0x87 (v5); any other error closes the connection without a
 * CONNACK, so every refusal is MOSQ_ERR_AUTH. The password arrives as a C
 * string: bytes after a NUL are invisible here (docs/PROTOCOL.md). */
int ig_plugin_on_basic_auth(int event, void *event_data, void *userdata)
{
	(void)event;
	ig_plugin *pl = userdata;
	struct mosquitto_evt_basic_auth *ed = event_data;
	const char *pw = ed->password;
	char id[IG_ID_MAX + 1];
	ig_auth_result res = authenticate(pl, ed->client, ed->username, pw, pw ? strlen(pw) : 0, id);
	if (res != IG_AUTH_OK)
		return MOSQ_ERR_AUTH;
	/* MQTT v5 allows a password without a username. ACLs and revocation
	 * work by username, so such a session gets its verified id as one. */
	if (!ed->username && mosquitto_set_username(ed->client, id) != MOSQ_ERR_SUCCESS) {
		ig_plugin_log(MOSQ_LOG_WARNING, "%s: could not set the username (out of memory); refusing the connection", id);
		return MOSQ_ERR_AUTH;
	}
	return MOSQ_ERR_SUCCESS;
}

int ig_plugin_on_ext_auth_start(int event, void *event_data, void *userdata)
{
	(void)event;
	ig_plugin *pl = userdata;
	struct mosquitto_evt_extended_auth *ed = event_data;
	if (!ed->auth_method || strcmp(ed->auth_method, IG_AUTH_METHOD) != 0)
		return MOSQ_ERR_PLUGIN_DEFER;

	const char *username = mosquitto_client_username(ed->client);
	char id[IG_ID_MAX + 1];
	ig_auth_result res = authenticate(pl, ed->client, username, (const char *)ed->data_in, ed->data_in_len, id);
	if (res != IG_AUTH_OK)
		return MOSQ_ERR_AUTH;
	/* ACLs and revocation work by username; a v5 client that authenticated
	 * by method alone gets its verified id as username. */
	if (!username && mosquitto_set_username(ed->client, id) != MOSQ_ERR_SUCCESS)
		return MOSQ_ERR_AUTH;
	return MOSQ_ERR_SUCCESS;
}

int ig_plugin_on_disconnect(int event, void *event_data, void *userdata)
{
	(void)event;
	ig_plugin *pl = userdata;
	struct mosquitto_evt_disconnect *ed = event_data;
	const char *id = mosquitto_client_id(ed->client);
	if (id)
		ig_sessions_close(&pl->sessions, ed->client, id);
	ig_aclcache_forget(pl->aclcache, ed->client);
	return MOSQ_ERR_SUCCESS;
}
