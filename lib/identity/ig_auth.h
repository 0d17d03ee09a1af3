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
#include "ig_sessions.h"
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
	IG_AUTH_SEALED,             /* a join token while the cluster head is sealed: no join key to check it */
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

/* ---- the whole CONNECT decision -------------------------------------------
 *
 * Everything the plugin used to decide inline at CONNECT: the re-check of a
 * live session (Mosquitto 2.0 re-runs the password check of every client
 * on SIGHUP), the address ban, the join-token path, the token check above
 * with the id budget and the replay cache, session admission or takeover,
 * and the count of failures that bans an address. The plugin reads
 * Mosquitto's client data into an ig_auth_conn, calls ig_auth_connect, logs
 * the lines it returns and answers the broker. Nothing here allocates.
 */

#define IG_AUTH_LINES_MAX 3
#define IG_AUTH_LINE_MAX 320
#define IG_AUTH_QUIET_LINES_PER_S 10   /* refusal lines for banned addresses, then a summary */

typedef enum ig_auth_level { IG_AUTH_LOG_NOTICE = 0, IG_AUTH_LOG_WARNING } ig_auth_level;

/* Checks a join token (ig_join.h); on IG_AUTH_OK fills out's id, role and
 * joining fields. The plugin's join service provides it. */
typedef ig_auth_result (*ig_auth_join_fn)(void *ctx, const char *username, const char *token, size_t token_len,
                                          ig_session *out);

/* Which log lines were written lately, so a flood of refusals from banned
 * addresses, or of a full replay cache, costs a few lines a second. Zeroed
 * at start; owned by the caller and passed to every ig_auth_connect. */
typedef struct ig_auth_quiet {
	uint64_t second, lines, suppressed;
	uint64_t replay_full_logged_s;
} ig_auth_quiet;

typedef struct ig_auth_env {
	const ig_registry *reg;
	ig_sessions *sessions;
	ig_ban *bans;                     /* may be NULL: no per-address counting */
	ig_ban_rules ban_rules;           /* limit 0 = never ban */
	uint32_t replay_cache_max;        /* for the "replay cache full" warning */
	/* The token checks: cluster, skew, max_ttl_s, budget, replay and
	 * single_use are the caller's; now_s, now_ms, addr_failed and recheck
	 * are set by ig_auth_connect. */
	ig_auth_params params;
	ig_auth_join_fn join;             /* NULL: join tokens are refused as malformed */
	void *join_ctx;
	ig_auth_quiet *quiet;
} ig_auth_env;

/* One CONNECT (or re-check) as Mosquitto reports it. client is the
 * connection's opaque handle; any pointer may be NULL. */
typedef struct ig_auth_conn {
	const void *client;
	const char *client_id;
	const char *addr;
	const char *username;
	const char *token;                /* the password, or v5 authentication data */
	size_t token_len;
	uint64_t now_ms;                  /* wall clock */
} ig_auth_conn;

typedef struct ig_auth_outcome {
	/* IG_AUTH_OK, a refusal, or IG_AUTH_RESULT_COUNT when the session
	 * table could not take the session (refuse rather than lose track). */
	ig_auth_result result;
	bool recheck;                     /* a re-check of a live session, not a new connection */
	bool counted;                     /* counts in the stats: accepted (OK) or refused[result] */
	char id[IG_ID_MAX + 1];           /* on IG_AUTH_OK: the id the session is open for */
	/* On IG_AUTH_OK of a new connection with a single-use token: its nonce
	 * was just remembered in params.replay until nonce_expires_at. Shared
	 * mode passes it to the other brokers (broker-plugin/plugin_nonces.c). */
	bool nonce_added;
	uint8_t nonce[IG_NONCES_NONCE_BYTES];
	uint64_t nonce_expires_at;
	size_t lines;                     /* log lines to write, in order (never a token) */
	struct {
		ig_auth_level level;
		char text[IG_AUTH_LINE_MAX];
	} line[IG_AUTH_LINES_MAX];
} ig_auth_outcome;

void ig_auth_connect(ig_auth_outcome *out, ig_auth_env *env, const ig_auth_conn *conn);

#endif
