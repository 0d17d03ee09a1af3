/*
 * plugin_auth.c: CONNECT authentication and the table of live sessions.
 *
 * Why this exists: Mosquitto hands us a username, a password (or MQTT v5
 * authentication data) and a client id; lib/auth.c decides. This file adds
 * what only the broker side knows: which clients are connected (for stats,
 * the admin API and revocation) and which addresses keep failing (so brute
 * force gets cheap refusals instead of an Ed25519 verify each).
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

/* ---- per-address failure limit --------------------------------------- */

static ig_ban_entry *ban_slot(ig_plugin *pl, const char *addr)
{
	size_t n = sizeof pl->bans / sizeof pl->bans[0];
	return &pl->bans[id_hash(addr) % n];
}

static bool addr_banned(ig_plugin *pl, const char *addr, uint64_t now_ms)
{
	if (!pl->cfg.auth_fail_limit || !addr)
		return false;
	ig_ban_entry *b = ban_slot(pl, addr);
	return strcmp(b->addr, addr) == 0 && b->banned_until_ms > now_ms;
}

static void addr_failed(ig_plugin *pl, const char *addr, uint64_t now_ms)
{
	if (!pl->cfg.auth_fail_limit || !addr)
		return;
	ig_ban_entry *b = ban_slot(pl, addr);
	if (strcmp(b->addr, addr) != 0 || now_ms - b->window_start_ms > 60000) {
		/* New address in this slot, or the minute is over: start counting again. */
		if (strcmp(b->addr, addr) != 0 || b->banned_until_ms <= now_ms) {
			snprintf(b->addr, sizeof b->addr, "%s", addr);
			b->banned_until_ms = 0;
		}
		b->failures = 0;
		b->window_start_ms = now_ms;
	}
	if (++b->failures >= pl->cfg.auth_fail_limit && b->banned_until_ms <= now_ms) {
		b->banned_until_ms = now_ms + (uint64_t)pl->cfg.auth_ban_s * 1000u;
		ig_plugin_log(MOSQ_LOG_WARNING, "address %s: %u failed logins within a minute; refusing it for %u s",
		              addr, b->failures, pl->cfg.auth_ban_s);
	}
}

/* ---- the decision --------------------------------------------------- */

static ig_auth_result authenticate(ig_plugin *pl, struct mosquitto *client, const char *username,
                                   const char *token, size_t token_len, const ig_identity **who)
{
	const char *client_id = mosquitto_client_id(client);
	const char *addr = mosquitto_client_address(client);
	uint64_t now_ms = ig_now_ms();
	ig_auth_result res;

	ig_session joining;
	bool is_join = token && token_len > strlen(IG_JOIN_TOKEN_PREFIX) &&
	               memcmp(token, IG_JOIN_TOKEN_PREFIX, strlen(IG_JOIN_TOKEN_PREFIX)) == 0;
	if (addr_banned(pl, addr, now_ms)) {
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
			ig_plugin_log(MOSQ_LOG_NOTICE, "%s connected with a join code; waiting for its join request", joining.id);
			return res;
		}
	} else {
		ig_auth_params params = {.cluster = pl->cluster, .now_s = now_ms / 1000, .skew_s = pl->cfg.clock_skew_s};
		memcpy(params.max_ttl_s, pl->max_ttl_s, sizeof params.max_ttl_s);
		ig_token_claims claims;
		res = ig_auth_check(pl->reg, &params, username, client_id ? client_id : "", token, token_len, who, &claims);
		sodium_memzero(&claims, sizeof claims);
	}

	if (res == IG_AUTH_OK) {
		if (!sessions_put(&pl->sessions, client, (*who)->id, (*who)->role))
			return IG_AUTH_RESULT_COUNT;   /* out of memory: refuse rather than lose track */
		pl->auth_accepted++;
		return res;
	}
	pl->auth_refused[res]++;
	if (res != IG_AUTH_RATE_LIMITED)
		addr_failed(pl, addr, now_ms);
	/* One line, with the reason and never the token. The claimed names are
	 * attacker-controlled, so they are printed only when they are valid ids. */
	const char *uname = username && ig_id_valid(username, strlen(username)) ? username : "-";
	const char *cid = client_id && ig_id_valid(client_id, strlen(client_id)) ? client_id : "-";
	ig_plugin_log(MOSQ_LOG_NOTICE, "refused connection from %s (client id %s, username %s): %s",
	              addr ? addr : "?", cid, uname, ig_auth_result_name(res));
	return res;
}

int ig_plugin_on_basic_auth(int event, void *event_data, void *userdata)
{
	(void)event;
	ig_plugin *pl = userdata;
	struct mosquitto_evt_basic_auth *ed = event_data;
	const ig_identity *who = NULL;
	const char *pw = ed->password;
	ig_auth_result res = authenticate(pl, ed->client, ed->username, pw, pw ? strlen(pw) : 0, &who);
	return res == IG_AUTH_OK ? MOSQ_ERR_SUCCESS : MOSQ_ERR_AUTH;
}

int ig_plugin_on_ext_auth_start(int event, void *event_data, void *userdata)
{
	(void)event;
	ig_plugin *pl = userdata;
	struct mosquitto_evt_extended_auth *ed = event_data;
	if (!ed->auth_method || strcmp(ed->auth_method, IG_AUTH_METHOD) != 0)
		return MOSQ_ERR_PLUGIN_DEFER;

	const ig_identity *who = NULL;
	const char *username = mosquitto_client_username(ed->client);
	ig_auth_result res = authenticate(pl, ed->client, username, (const char *)ed->data_in, ed->data_in_len, &who);
	if (res != IG_AUTH_OK)
		return MOSQ_ERR_AUTH;
	/* ACLs and revocation work by username; a v5 client that authenticated
	 * by method alone gets its verified id as username. */
	if (!username && mosquitto_set_username(ed->client, mosquitto_client_id(ed->client)) != MOSQ_ERR_SUCCESS)
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
	return MOSQ_ERR_SUCCESS;
}
