/*
 * ig_svc_keys.h: the session-key service (docs/PROTOCOL.md, "session_key").
 *
 * Why this exists: device A asks for a one-time key to talk to device B end
 * to end. Whether it gets one (both identities active, the pair allowed by
 * the policy, B online, A under its rate) is a decision about the cluster
 * state, so it lives here, where it is unit-tested without a broker; the
 * plugin only carries the decision out. The key is derived from the pool,
 * its audit record (without the key) is appended, and only once that is
 * durable is one boxed copy sent to each device. The service remembers who
 * shares which key (never the key) until expiry, so revoking either device
 * can tell the other at once.
 */
#ifndef IG_SVC_KEYS_H
#define IG_SVC_KEYS_H

#include "ig_decision.h"
#include "ig_keybox.h"
#include "ig_policy.h"
#include "ig_pool.h"
#include "ig_state.h"

struct cJSON;

typedef struct ig_svc_keys ig_svc_keys;

typedef struct ig_svc_keys_config {
	uint32_t session_key_ttl_s;        /* lifetime of an issued key */
	uint32_t requests_per_minute;      /* per requesting device */
} ig_svc_keys_config;

/* True when id has a live session that is not a joining one: a key is
 * issued only for a peer that can receive its copy now. */
typedef bool (*ig_svc_keys_online_fn)(void *ctx, const char *id);

/* st, pool and ch_sk (the cluster head's Ed25519 secret key, for the boxes)
 * are borrowed and must outlive the service. NULL when out of memory. */
ig_svc_keys *ig_svc_keys_new(ig_state *st, ig_pool *pool, const uint8_t ch_sk[IG_SK_BYTES],
                             const ig_svc_keys_config *cfg, ig_svc_keys_online_fn online, void *online_ctx);
/* NULL is ignored. Appends still in flight must have completed. */
void ig_svc_keys_free(ig_svc_keys *k);

/* A decoded {"type":"session_key","peer":id,"nonce":1..64 printable}. */
typedef struct ig_svc_keys_req {
	char peer[IG_ID_MAX + 1];
	/* The request's nonce when it is well formed, else "": every answer
	 * names the request it answers, even a refusal of a malformed one. */
	char nonce[IG_REQUEST_NONCE_MAX + 1];
} ig_svc_keys_req;

/* Decodes a request object (any JSON value is accepted as input). Returns
 * IG_OK, or IG_ERR_INVAL when "peer" or "nonce" is missing or malformed
 * (out->nonce is still filled when the nonce alone is good). */
int ig_svc_keys_decode(ig_svc_keys_req *out, const struct cJSON *req) IG_NODISCARD;

/* One session_key request from id: a refusal (revoked, malformed,
 * rate_limited, peer_unknown, not_allowed, peer_offline, internal,
 * storage_failed) or an append of the key_issued record whose done sends a
 * session_key message to both devices (or outcome_unknown, storage_failed,
 * revoked to the requester). policy is the one in force. */
void ig_svc_keys_request(ig_decision *out, ig_svc_keys *k, const ig_policy *policy, const char *id,
                         const struct cJSON *req, uint64_t now_ms);

/* id was revoked: forgets the keys id shared and fills out with
 * {"type":"key_revoked"} notices for the surviving peers of those not
 * expired, at most IG_DECISION_REPLIES_MAX per call. Returns true when out
 * holds notices: carry them out and call again until it returns false. */
bool ig_svc_keys_on_revoke(ig_decision *out, ig_svc_keys *k, const char *id, uint64_t now_ms);

/* Forgets expired keys; runs at most every 10 s, so it is cheap per tick. */
void ig_svc_keys_prune(ig_svc_keys *k, uint64_t now_ms);

typedef struct ig_svc_keys_counts {
	uint64_t issued;                   /* delivered to both holders */
	uint64_t refused;
	uint64_t live;                     /* remembered, not yet pruned */
	uint64_t revocation_notices;
} ig_svc_keys_counts;

void ig_svc_keys_get_counts(const ig_svc_keys *k, ig_svc_keys_counts *out);
/* Adds "keys":{issued,refused,live,revocation_notices,suite} to stats. */
void ig_svc_keys_stats(const ig_svc_keys *k, struct cJSON *stats);

#endif
