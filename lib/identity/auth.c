/*
 * auth.c: the CONNECT decision.
 *
 * Why this exists: the broker plugin must decide quickly, without
 * allocating, and for a stated reason that can be counted and logged
 * (never the token itself). The checks run cheapest-first and the
 * signature check runs only for an id the registry knows as active, so a
 * flood of junk costs a parse, not an Ed25519 verify. The order is part of
 * the protocol (docs/PROTOCOL.md, "Acceptance rules"): tests pin which
 * reason wins when several apply. The token text is decoded once: the id
 * it names picks the key, and the signature is checked over the bytes
 * already decoded.
 *
 * ig_auth_connect wraps that check in the rest of the CONNECT decision
 * (bans, join tokens, sessions, re-checks), so the plugin only translates
 * Mosquitto's callback into a call and the answer back.
 */
#include "ig_auth.h"

#include "ig_join.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const result_names[IG_AUTH_RESULT_COUNT] = {
	[IG_AUTH_OK] = "ok",
	[IG_AUTH_NO_CREDENTIALS] = "no_credentials",
	[IG_AUTH_MALFORMED] = "malformed",
	[IG_AUTH_UNKNOWN_ID] = "unknown_id",
	[IG_AUTH_NOT_ACTIVE] = "not_active",
	[IG_AUTH_REVOKED] = "revoked",
	[IG_AUTH_BAD_SIGNATURE] = "bad_signature",
	[IG_AUTH_WRONG_CLUSTER] = "wrong_cluster",
	[IG_AUTH_NOT_YET_VALID] = "not_yet_valid",
	[IG_AUTH_EXPIRED] = "expired",
	[IG_AUTH_TTL_TOO_LONG] = "ttl_too_long",
	[IG_AUTH_ID_MISMATCH] = "id_mismatch",
	[IG_AUTH_RATE_LIMITED] = "rate_limited",
	[IG_AUTH_CODE_UNKNOWN] = "code_unknown",
	[IG_AUTH_CODE_USED] = "code_used",
	[IG_AUTH_CODE_EXPIRED] = "code_expired",
	[IG_AUTH_ID_TAKEN] = "id_taken",
	[IG_AUTH_REPLAYED] = "replayed",
	[IG_AUTH_SEALED] = "sealed",
};

const char *ig_auth_result_name(ig_auth_result r)
{
	if ((unsigned)r >= IG_AUTH_RESULT_COUNT)
		return "unknown";
	return result_names[r];
}

/* tok is decoded already; on return the caller copies its claims out. */
static ig_auth_result check_decoded(const ig_registry *reg, const ig_auth_params *params,
                                    const char *username, const char *client_id,
                                    const ig_token_decoded *tok, const ig_identity **who)
{
	const ig_token_claims *c = &tok->claims;
	if (!client_id || strcmp(client_id, c->id) != 0)
		return IG_AUTH_ID_MISMATCH;
	if (username && strcmp(username, c->id) != 0)
		return IG_AUTH_ID_MISMATCH;
	if (!reg || !params || !params->cluster)
		return IG_AUTH_UNKNOWN_ID; /* misconfigured caller: fail closed */

	const ig_identity *idn = ig_registry_find(reg, c->id, strlen(c->id));
	if (!idn)
		return IG_AUTH_UNKNOWN_ID;
	if (idn->status == IG_ID_PENDING)
		return IG_AUTH_NOT_ACTIVE;
	if (idn->status != IG_ID_ACTIVE)
		return IG_AUTH_REVOKED;
	uint64_t now_ms = params->now_ms ? params->now_ms : params->now_s * 1000u;
	if (params->budget && params->addr_failed && !params->recheck && !ig_ban_ids_allow(params->budget, idn->id, now_ms))
		return IG_AUTH_RATE_LIMITED;
	if (ig_token_verify_decoded(tok, idn->pk) != IG_OK) {
		ig_ban_ids_charge(params->budget, idn->id, now_ms);
		return IG_AUTH_BAD_SIGNATURE;
	}
	if (strcmp(c->cluster, params->cluster) != 0)
		return IG_AUTH_WRONG_CLUSTER;

	uint32_t max_ttl = idn->role < IG_ROLE_COUNT ? params->max_ttl_s[idn->role] : 0;
	if (c->expires_at <= c->issued_at || c->expires_at - c->issued_at > max_ttl)
		return IG_AUTH_TTL_TOO_LONG;
	if (params->recheck) {
		if (who)
			*who = idn;
		return IG_AUTH_OK;
	}
	/* Written so that huge issued_at values cannot wrap around. */
	if (c->issued_at > params->now_s && c->issued_at - params->now_s > params->skew_s)
		return IG_AUTH_NOT_YET_VALID;
	if (params->now_s >= c->expires_at)
		return IG_AUTH_EXPIRED;
	if (params->replay && idn->role < IG_ROLE_COUNT && params->single_use[idn->role]) {
		ig_nonces_result r = ig_nonces_check_add(params->replay, c->nonce, c->expires_at, params->now_s);
		if (r == IG_NONCES_SEEN)
			return IG_AUTH_REPLAYED;
		if (r != IG_NONCES_FRESH)
			return IG_AUTH_RATE_LIMITED;   /* cannot remember it: refusing keeps the promise */
	}

	if (who)
		*who = idn;
	return IG_AUTH_OK;
}

ig_auth_result ig_auth_check(const ig_registry *reg, const ig_auth_params *params,
                             const char *username, const char *client_id,
                             const char *token, size_t token_len,
                             const ig_identity **who, ig_token_claims *claims)
{
	if (who)
		*who = NULL;
	if (claims)
		memset(claims, 0, sizeof *claims);
	/* A username without a password is as anonymous as no username: only
	 * the token proves anything. */
	if (!token || token_len == 0)
		return IG_AUTH_NO_CREDENTIALS;
	ig_token_decoded tok;
	if (ig_token_decode(&tok, token, token_len) != IG_OK)
		return IG_AUTH_MALFORMED;
	ig_auth_result res = check_decoded(reg, params, username, client_id, &tok, who);
	if (claims)
		*claims = tok.claims;   /* whatever the answer, once the token parses */
	sodium_memzero(&tok, sizeof tok);
	return res;
}

/* ---- the whole CONNECT decision ---------------------------------------- */


static void say(ig_auth_outcome *out, ig_auth_level level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(ig_auth_outcome *out, ig_auth_level level, const char *fmt, ...)
{
	if (out->lines >= IG_AUTH_LINES_MAX)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out->line[out->lines].text, IG_AUTH_LINE_MAX, fmt, ap);
	va_end(ap);
	out->line[out->lines++].level = level;
}

/* A flood from banned addresses must not turn into a flood of log lines
 * (each one is a write on the broker's thread): a few per second, then a
 * count of what was left out. */
static bool quiet_allows(ig_auth_quiet *q, ig_auth_outcome *out, uint64_t now_ms)
{
	if (!q)
		return true;
	uint64_t now = now_ms / 1000;
	if (now != q->second) {
		if (q->suppressed)
			say(out, IG_AUTH_LOG_NOTICE, "refused %llu more connections from banned addresses as rate_limited "
			    "(not logged one by one)", (unsigned long long)q->suppressed);
		q->second = now;
		q->lines = 0;
		q->suppressed = 0;
	}
	if (q->lines < IG_AUTH_QUIET_LINES_PER_S) {
		q->lines++;
		return true;
	}
	q->suppressed++;
	return false;
}

/* A copy, not snprintf: this runs on every accepted connect. */
static void accept_id(ig_auth_outcome *out, const char *id)
{
	out->result = IG_AUTH_OK;
	size_t n = strnlen(id, sizeof out->id - 1);
	memcpy(out->id, id, n);
	out->id[n] = '\0';
}

/* A session Mosquitto re-checks (SIGHUP) is not a new connection: the
 * token's time window and single use held at connect and are not checked
 * again, and a session opened with a join code has used its code already. */
static void recheck_live(ig_auth_outcome *out, ig_auth_env *env, const ig_auth_conn *conn, const ig_session *live)
{
	if (live->joining) {
		accept_id(out, live->id);
		return;
	}
	if (!conn->token || conn->token_len == 0) {
		/* Admitted by v5 enhanced authentication: Mosquitto kept no token to
		 * re-check, so the identity itself must still be active. */
		const ig_identity *idn = ig_registry_find(env->reg, live->id, strlen(live->id));
		if (idn && idn->status == IG_ID_ACTIVE) {
			accept_id(out, live->id);
			return;
		}
		out->result = IG_AUTH_REVOKED;
		say(out, IG_AUTH_LOG_NOTICE, "%s: re-checked live session is no longer active; the broker disconnects it",
		    live->id);
		return;
	}
	ig_auth_params params = env->params;
	params.now_s = conn->now_ms / 1000;
	params.now_ms = conn->now_ms;
	params.addr_failed = false;
	params.recheck = true;
	const ig_identity *who = NULL;
	ig_auth_result res = ig_auth_check(env->reg, &params, conn->username, conn->client_id ? conn->client_id : "",
	                                   conn->token, conn->token_len, &who, NULL);
	if (res == IG_AUTH_OK) {
		accept_id(out, who->id);
		return;
	}
	out->result = res;
	say(out, IG_AUTH_LOG_NOTICE, "%s: the broker re-checked the live session's token and it no longer passes (%s); "
	    "the broker disconnects it", live->id, ig_auth_result_name(res));
}

static bool is_join_token(const ig_auth_conn *conn)
{
	size_t n = strlen(IG_JOIN_TOKEN_PREFIX);
	return conn->token && conn->token_len > n && memcmp(conn->token, IG_JOIN_TOKEN_PREFIX, n) == 0;
}

void ig_auth_connect(ig_auth_outcome *out, ig_auth_env *env, const ig_auth_conn *conn)
{
	out->result = IG_AUTH_RESULT_COUNT;
	out->recheck = false;
	out->counted = false;
	out->id[0] = '\0';
	out->lines = 0;
	out->nonce_added = false;
	out->nonce_expires_at = 0;
	uint64_t now_ms = conn->now_ms;

	const ig_session *live = conn->client_id ? ig_sessions_find(env->sessions, conn->client_id) : NULL;
	if (live && live->client == conn->client) {
		out->recheck = true;
		recheck_live(out, env, conn, live);
		return;
	}

	ig_ban_addr key;
	ig_ban_addr_parse(&key, conn->addr);
	const ig_ban_rules *rules = &env->ban_rules;
	bool banned, addr_failed;
	ig_ban_look(&banned, &addr_failed, env->bans, &key, rules, now_ms);
	banned = banned && rules->limit;
	ig_auth_result res;
	if (banned) {
		res = IG_AUTH_RATE_LIMITED;
	} else if (is_join_token(conn)) {
		ig_session joining;
		memset(&joining, 0, sizeof joining);
		res = env->join ? env->join(env->join_ctx, conn->username, conn->token, conn->token_len, &joining)
		                : IG_AUTH_MALFORMED;
		if (res == IG_AUTH_OK) {
			ig_session *s = ig_sessions_open(env->sessions, conn->client, joining.id, joining.role);
			if (!s)
				return;   /* IG_AUTH_RESULT_COUNT: refuse rather than lose track */
			s->joining = true;
			memcpy(s->join_pk, joining.join_pk, IG_PK_BYTES);
			memcpy(s->join_code_id, joining.join_code_id, IG_JOIN_CODE_ID_BYTES);
			accept_id(out, s->id);
			out->counted = true;
			say(out, IG_AUTH_LOG_NOTICE, "%s connected with a join code; waiting for its join request", s->id);
			return;
		}
	} else {
		ig_auth_params params = env->params;
		params.now_s = now_ms / 1000;
		params.now_ms = now_ms;
		params.addr_failed = addr_failed;
		params.recheck = false;
		const ig_identity *who = NULL;
		ig_token_claims claims;
		res = ig_auth_check(env->reg, &params, conn->username, conn->client_id ? conn->client_id : "",
		                    conn->token, conn->token_len, &who, &claims);
		if (res == IG_AUTH_OK) {
			if (!ig_sessions_open(env->sessions, conn->client, who->id, who->role))
				return;   /* IG_AUTH_RESULT_COUNT: refuse rather than lose track */
			accept_id(out, who->id);
			out->counted = true;
			if (params.replay && who->role < IG_ROLE_COUNT && params.single_use[who->role]) {
				out->nonce_added = true;
				memcpy(out->nonce, claims.nonce, IG_NONCES_NONCE_BYTES);
				out->nonce_expires_at = claims.expires_at;
			}
			return;
		}
		if (res == IG_AUTH_RATE_LIMITED && params.replay &&
		    ig_nonces_count(params.replay) >= env->replay_cache_max &&
		    (!env->quiet || env->quiet->replay_full_logged_s != now_ms / 1000)) {
			if (env->quiet)
				env->quiet->replay_full_logged_s = now_ms / 1000;
			say(out, IG_AUTH_LOG_WARNING, "the single-use token cache holds %u unexpired nonces, its maximum: "
			    "single-use logins are refused as rate_limited until some expire (raise "
			    "plugin_opt_replay_cache_max, or shorten token lifetimes)", env->replay_cache_max);
		}
	}

	out->result = res;
	out->counted = true;
	const char *addr = conn->addr ? conn->addr : "?";
	/* Every failure counts against the address except a refusal because it
	 * is banned already (that would stretch a ban forever) and a join
	 * refused because the cluster head is sealed (the device did nothing
	 * wrong, and retries until the unseal). */
	if (!banned && res != IG_AUTH_SEALED && env->bans && ig_ban_failed(env->bans, &key, rules, now_ms, NULL) == IG_BAN_NOW_BANNED)
		say(out, IG_AUTH_LOG_WARNING, "address %s: %u failed logins within a minute; refusing it for %u s", addr,
		    rules->limit, rules->ban_ms / 1000);
	if (banned && !quiet_allows(env->quiet, out, now_ms))
		return;
	/* One line, with the reason and never the token. The claimed names are
	 * attacker-controlled, so they are printed only when they are valid ids. */
	const char *uname = conn->username && ig_id_valid(conn->username, strlen(conn->username)) ? conn->username : "-";
	const char *cid = conn->client_id && ig_id_valid(conn->client_id, strlen(conn->client_id)) ? conn->client_id : "-";
	say(out, IG_AUTH_LOG_NOTICE, "refused connection from %s (client id %s, username %s): %s", addr, cid, uname,
	    ig_auth_result_name(res));
}
