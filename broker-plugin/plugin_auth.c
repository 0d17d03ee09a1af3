/*
 * plugin_auth.c: CONNECT authentication and the table of live sessions.
 *
 * Why this exists: Mosquitto hands us a username, a password (or MQTT v5
 * authentication data) and a client id; lib/auth.c decides. This file adds
 * what only the broker side knows: which clients are connected (for stats,
 * the admin API and revocation), which addresses and identities keep failing
 * (so brute force gets cheap refusals instead of an Ed25519 verify each;
 * lib/ban.c holds the tables) and which single-use tokens were already used
 * (lib/nonces.c). It also owns the lifetime of the per-client ACL
 * decision cache (lib/aclcache.c): made at start, a client's entries
 * released at its DISCONNECT.
 */
#include "plugin.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IG_AUTH_METHOD "iotguard-ed25519-v1"

/* ---- sessions: open addressing keyed by id, backward-shift deletion ---- */

static uint64_t id_hash(const char *id)
{
	uint64_t h = 1469598103934665603ull;   /* FNV-1a: ids are already authenticated here */
	for (; *id; id++)
		h = (h ^ (uint8_t)*id) * 1099511628211ull;
	return h;
}

bool ig_sessions_init(ig_sessions *s)
{
	memset(s, 0, sizeof *s);
	s->cap = 1024;
	s->slots = calloc(s->cap, sizeof *s->slots);
	return s->slots != NULL;
}

void ig_sessions_free(ig_sessions *s)
{
	free(s->slots);
	memset(s, 0, sizeof *s);
}

static size_t find_slot(const ig_sessions *s, const char *id)
{
	size_t mask = s->cap - 1, i = (size_t)id_hash(id) & mask;
	while (s->slots[i].used && strcmp(s->slots[i].id, id) != 0)
		i = (i + 1) & mask;
	return i;
}

ig_session *ig_sessions_find_mut(ig_sessions *s, const char *id)
{
	if (!s->slots)
		return NULL;
	ig_session *e = &s->slots[find_slot(s, id)];
	return e->used ? e : NULL;
}

const ig_session *ig_sessions_find(const ig_sessions *s, const char *id)
{
	return ig_sessions_find_mut((ig_sessions *)s, id);
}

static bool sessions_grow(ig_sessions *s)
{
	ig_sessions bigger = {.cap = s->cap * 2, .count = s->count};
	memcpy(bigger.by_role, s->by_role, sizeof bigger.by_role);
	bigger.slots = calloc(bigger.cap, sizeof *bigger.slots);
	if (!bigger.slots)
		return false;
	for (size_t i = 0; i < s->cap; i++)
		if (s->slots[i].used)
			bigger.slots[find_slot(&bigger, s->slots[i].id)] = s->slots[i];
	free(s->slots);
	*s = bigger;
	return true;
}

static ig_session *sessions_put(ig_sessions *s, const struct mosquitto *client, const char *id, uint8_t role)
{
	if ((s->count + 1) * 4 > s->cap * 3 && !sessions_grow(s))
		return NULL;
	ig_session *e = &s->slots[find_slot(s, id)];
	if (e->used) {
		s->by_role[e->role]--;   /* takeover: the old connection's entry is replaced */
	} else {
		s->count++;
		e->used = true;
		snprintf(e->id, sizeof e->id, "%s", id);
	}
	e->client = client;
	e->role = role;
	e->joining = false;
	e->join_in_flight = false;
	s->by_role[role]++;
	return e;
}

static void sessions_remove(ig_sessions *s, const struct mosquitto *client, const char *id)
{
	size_t mask = s->cap - 1, i = find_slot(s, id);
	if (!s->slots[i].used || s->slots[i].client != client)
		return;   /* a refused attempt, or the loser of a takeover */
	s->by_role[s->slots[i].role]--;
	s->count--;
	s->slots[i].used = false;
	for (size_t j = (i + 1) & mask; s->slots[j].used; j = (j + 1) & mask) {
		size_t home = (size_t)id_hash(s->slots[j].id) & mask;
		bool movable = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
		if (movable) {
			s->slots[i] = s->slots[j];
			s->slots[j].used = false;
			i = j;
		}
	}
}

/* ---- brute force and replays ------------------------------------------ */

#define BAN_TABLE_ENTRIES 65536        /* addresses tracked at once (~3 MB) */
#define BUDGET_TABLE_ENTRIES 65536     /* identities with failed checks tracked at once (~1.5 MB) */
#define REPLAY_SWEEP_PER_TICK 4096     /* replay-cache slots examined per sweep on a broker tick */
#define RATE_LIMITED_LOG_PER_S 10      /* refusal lines for banned addresses, then a summary */
#define REPLAY_SWEEP_EVERY_MS 10       /* Mosquitto ticks once per event-loop pass, thousands of times a
                                          second under load; a sweep at each one cost ~1 us per login.
                                          Inserts sweep too, and a full table looks harder itself. */
#define ACL_CACHE_CLIENTS 65536        /* clients whose ACL decisions are remembered (~1.2 KB each) */

int ig_plugin_auth_init(ig_plugin *pl)
{
	bool budget_ok = !pl->cfg.auth_id_budget ||
	                 ig_ban_ids_new(&pl->id_budget, BUDGET_TABLE_ENTRIES, pl->cfg.auth_id_budget) == IG_OK;
	if (!budget_ok || ig_ban_new(&pl->bans, BAN_TABLE_ENTRIES) != IG_OK ||
	    ig_nonces_new(&pl->replay, pl->cfg.replay_cache_max) != IG_OK ||
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
	ig_ban_free(pl->bans);
	ig_ban_ids_free(pl->id_budget);
	ig_nonces_free(pl->replay);
	ig_aclcache_free(pl->aclcache);
	pl->aclcache = NULL;
	pl->bans = NULL;
	pl->id_budget = NULL;
	pl->replay = NULL;
}

void ig_plugin_auth_tick(ig_plugin *pl, uint64_t now_ms)
{
	/* now_ms comes in whole seconds; the sweep's pace needs the real clock. */
	uint64_t clock_ms = ig_mono_us() / 1000;
	if (pl->replay && clock_ms - pl->replay_swept_ms >= REPLAY_SWEEP_EVERY_MS) {
		pl->replay_swept_ms = clock_ms;
		ig_nonces_sweep(pl->replay, now_ms / 1000, REPLAY_SWEEP_PER_TICK);
	}
}

static ig_ban_rules ban_rules(const ig_plugin *pl)
{
	return (ig_ban_rules){.limit = pl->cfg.auth_fail_limit, .window_ms = 60000,
	                      .ban_ms = pl->cfg.auth_ban_s * 1000u};
}

/* A flood from banned addresses must not turn into a flood of log lines
 * (each one is a write on the broker's thread): a few per second, then a
 * count of what was left out. */
static bool log_rate_limited(void)
{
	static uint64_t second, lines, suppressed;
	uint64_t now = ig_now_ms() / 1000;
	if (now != second) {
		if (suppressed)
			ig_plugin_log(MOSQ_LOG_NOTICE, "refused %llu more connections from banned addresses as rate_limited "
			              "(not logged one by one)", (unsigned long long)suppressed);
		second = now;
		lines = 0;
		suppressed = 0;
	}
	if (lines < RATE_LIMITED_LOG_PER_S) {
		lines++;
		return true;
	}
	suppressed++;
	return false;
}

/* ---- the decision --------------------------------------------------- */

/* On IG_AUTH_OK, accepted_id holds the id the session was opened for. */
static ig_auth_result authenticate(ig_plugin *pl, struct mosquitto *client, const char *username,
                                   const char *token, size_t token_len, char accepted_id[IG_ID_MAX + 1])
{
	const char *client_id = mosquitto_client_id(client);
	const char *addr = mosquitto_client_address(client);
	uint64_t now_ms = ig_now_ms();
	ig_auth_result res;
	const ig_identity *who = NULL;
	ig_ban_addr key;
	ig_ban_addr_parse(&key, addr);
	ig_ban_rules rules = ban_rules(pl);
	accepted_id[0] = '\0';

	/* Mosquitto 2.0 re-runs the password check of every connected client on
	 * SIGHUP. That is not a new connection: the token's time window and
	 * single use held at connect and are not checked again, and a session
	 * opened with a join code has used its code already. */
	const ig_session *live = client_id ? ig_sessions_find(&pl->sessions, client_id) : NULL;
	bool recheck = live && live->client == client;
	if (recheck && live->joining) {
		snprintf(accepted_id, IG_ID_MAX + 1, "%s", live->id);
		return IG_AUTH_OK;
	}
	if (recheck && (!token || token_len == 0)) {
		/* Admitted by v5 enhanced authentication: Mosquitto kept no token to
		 * re-check, so the identity itself must still be active. */
		const ig_identity *idn = ig_registry_find(pl->reg, live->id, strlen(live->id));
		if (idn && idn->status == IG_ID_ACTIVE) {
			snprintf(accepted_id, IG_ID_MAX + 1, "%s", live->id);
			return IG_AUTH_OK;
		}
		ig_plugin_log(MOSQ_LOG_NOTICE, "%s: re-checked live session is no longer active; the broker disconnects it",
		              live->id);
		return IG_AUTH_REVOKED;
	}

	ig_session joining;
	bool is_join = !recheck && token && token_len > strlen(IG_JOIN_TOKEN_PREFIX) &&
	               memcmp(token, IG_JOIN_TOKEN_PREFIX, strlen(IG_JOIN_TOKEN_PREFIX)) == 0;
	bool banned = !recheck && rules.limit && ig_ban_banned(pl->bans, &key, now_ms);
	if (banned) {
		res = IG_AUTH_RATE_LIMITED;
	} else if (is_join) {
		res = ig_plugin_join_auth(pl, client, username, token, token_len, &joining);
		if (res == IG_AUTH_OK) {
			ig_session *s = sessions_put(&pl->sessions, client, joining.id, joining.role);
			if (!s)
				return IG_AUTH_RESULT_COUNT;   /* out of memory: refuse rather than lose track */
			pl->auth_accepted++;
			s->joining = true;
			memcpy(s->join_pk, joining.join_pk, IG_PK_BYTES);
			memcpy(s->join_code_id, joining.join_code_id, IG_JOIN_CODE_ID_BYTES);
			snprintf(accepted_id, IG_ID_MAX + 1, "%s", joining.id);
			ig_plugin_log(MOSQ_LOG_NOTICE, "%s connected with a join code; waiting for its join request", joining.id);
			return res;
		}
	} else {
		ig_auth_params params = {
			.cluster = pl->cluster, .now_s = now_ms / 1000, .skew_s = pl->cfg.clock_skew_s,
			.budget = pl->id_budget, .addr_failed = ig_ban_has_failed(pl->bans, &key, &rules, now_ms),
			.now_ms = now_ms, .replay = pl->replay, .recheck = recheck,
		};
		memcpy(params.max_ttl_s, pl->max_ttl_s, sizeof params.max_ttl_s);
		for (int r = 0; r < IG_ROLE_COUNT; r++)
			params.single_use[r] = ig_policy_single_use(pl->policy, (ig_role)r);
		ig_token_claims claims;
		res = ig_auth_check(pl->reg, &params, username, client_id ? client_id : "", token, token_len, &who, &claims);
		sodium_memzero(&claims, sizeof claims);
		static uint64_t full_logged_s;
		if (res == IG_AUTH_RATE_LIMITED && ig_nonces_count(pl->replay) >= pl->cfg.replay_cache_max &&
		    full_logged_s != now_ms / 1000) {
			full_logged_s = now_ms / 1000;
			ig_plugin_log(MOSQ_LOG_WARNING, "the single-use token cache holds %u unexpired nonces, its maximum: "
			              "single-use logins are refused as rate_limited until some expire (raise "
			              "plugin_opt_replay_cache_max, or shorten token lifetimes)", pl->cfg.replay_cache_max);
		}
	}

	if (res == IG_AUTH_OK && recheck) {
		snprintf(accepted_id, IG_ID_MAX + 1, "%s", who->id);
		return res;
	}
	if (res == IG_AUTH_OK) {
		if (!sessions_put(&pl->sessions, client, who->id, who->role))
			return IG_AUTH_RESULT_COUNT;   /* out of memory: refuse rather than lose track */
		pl->auth_accepted++;
		snprintf(accepted_id, IG_ID_MAX + 1, "%s", who->id);
		return res;
	}
	if (recheck) {
		ig_plugin_log(MOSQ_LOG_NOTICE, "%s: the broker re-checked the live session's token and it no longer "
		              "passes (%s); the broker disconnects it", live->id, ig_auth_result_name(res));
		return res;
	}
	pl->auth_refused[res]++;
	/* Every failure counts against the address except a refusal because it
	 * is banned already (that would stretch a ban forever). */
	if (!banned && ig_ban_failed(pl->bans, &key, &rules, now_ms, NULL) == IG_BAN_NOW_BANNED)
		ig_plugin_log(MOSQ_LOG_WARNING, "address %s: %u failed logins within a minute; refusing it for %u s",
		              addr ? addr : "?", rules.limit, pl->cfg.auth_ban_s);
	if (banned && !log_rate_limited())
		return res;
	/* One line, with the reason and never the token. The claimed names are
	 * attacker-controlled, so they are printed only when they are valid ids. */
	const char *uname = username && ig_id_valid(username, strlen(username)) ? username : "-";
	const char *cid = client_id && ig_id_valid(client_id, strlen(client_id)) ? client_id : "-";
	ig_plugin_log(MOSQ_LOG_NOTICE, "refused connection from %s (client id %s, username %s): %s",
	              addr ? addr : "?", cid, uname, ig_auth_result_name(res));
	return res;
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
		sessions_remove(&pl->sessions, ed->client, id);
	ig_aclcache_forget(pl->aclcache, ed->client);
	return MOSQ_ERR_SUCCESS;
}
