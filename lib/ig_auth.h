/*
 * ig_auth.h: the connection decision, independent of the broker.
 *
 * Why this exists: the plugin's CONNECT handling must be testable without a
 * broker, and every refusal must carry a reason we can count and log (never
 * the token). The plugin passes what Mosquitto gives it; this decides.
 */
#ifndef IG_AUTH_H
#define IG_AUTH_H

#include "ig_ban.h"
#include "ig_common.h"
#include "ig_registry.h"
#include "ig_nonces.h"
#include "ig_token.h"

typedef enum ig_auth_result {
	IG_AUTH_OK = 0,
	IG_AUTH_NO_CREDENTIALS,     /* anonymous: no username or no token */
	IG_AUTH_MALFORMED,          /* token does not parse */
	IG_AUTH_UNKNOWN_ID,         /* not enrolled */
	IG_AUTH_NOT_ACTIVE,         /* enroll not yet durable */
	IG_AUTH_REVOKED,
	IG_AUTH_BAD_SIGNATURE,
	IG_AUTH_WRONG_CLUSTER,
	IG_AUTH_NOT_YET_VALID,      /* issued_at beyond now + skew */
	IG_AUTH_EXPIRED,            /* now >= expires_at */
	IG_AUTH_TTL_TOO_LONG,       /* expires_at - issued_at > role max, or expires <= issued */
	IG_AUTH_ID_MISMATCH,        /* username or token id differs from the client id */
	IG_AUTH_RATE_LIMITED,       /* too many recent failures from this address, or for this id
	                               from addresses that failed too; or the replay cache is full */
	/* Join tokens (ig_join.h): */
	IG_AUTH_CODE_UNKNOWN,       /* no join code with this id */
	IG_AUTH_CODE_USED,          /* already consumed, or a join with it is in flight */
	IG_AUTH_CODE_EXPIRED,
	IG_AUTH_ID_TAKEN,           /* the joining id is already enrolled and active */
	IG_AUTH_REPLAYED,           /* a single-use token that already connected once */
	IG_AUTH_RESULT_COUNT
} ig_auth_result;

/* Stable snake_case names used in logs and stats: "bad_signature", ... */
const char *ig_auth_result_name(ig_auth_result r);

typedef struct ig_auth_params {
	const char *cluster;
	uint64_t now_s;
	uint32_t skew_s;                   /* issued_at may be this far in the future */
	uint32_t max_ttl_s[IG_ROLE_COUNT]; /* indexed by ig_role */
	/* Per-identity budget of failed signature checks (ig_ban.h); NULL =
	 * none. While the token's id is over budget, the signature is checked
	 * only if addr_failed is false (the caller's address has no recent
	 * failure), else the answer is IG_AUTH_RATE_LIMITED at no crypto cost.
	 * A bad signature is charged to the id. */
	ig_ban_ids *budget;
	bool addr_failed;
	uint64_t now_ms;                   /* for the budget; 0 = now_s * 1000 */
	/* Single-use tokens: roles marked true have each accepted token's
	 * nonce remembered in replay until it expires; NULL = off. */
	ig_nonces *replay;
	bool single_use[IG_ROLE_COUNT];
	/* A re-check of a session admitted earlier with this token (Mosquitto
	 * 2.0 re-runs the password check of every client on SIGHUP): identity,
	 * signature, cluster and lifetime are checked again, but not the
	 * token's time window nor single use, which held at connect. */
	bool recheck;
} ig_auth_params;

/* username may be NULL (MQTT v5 extended auth carries no username); when
 * given it must equal the token id. client_id must equal the token id.
 * On IG_AUTH_OK *who points at the registry entry and claims is filled.
 * The replay check runs last, so only an otherwise acceptable token's
 * nonce is ever remembered. */
ig_auth_result ig_auth_check(const ig_registry *reg, const ig_auth_params *params,
                             const char *username, const char *client_id,
                             const char *token, size_t token_len,
                             const ig_identity **who, ig_token_claims *claims);

#endif
