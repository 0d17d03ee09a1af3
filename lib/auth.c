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
 */
#include "ig_auth.h"

#include <sodium.h>
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
