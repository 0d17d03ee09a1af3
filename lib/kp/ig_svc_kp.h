/*
 * ig_svc_kp.h: the cluster head's key-ring service (docs/PROTOCOL.md, "Key
 * rings").
 *
 * Why this exists: someone has to start pool epochs when the policy turns
 * predistribution on or changes it (and when an admin retires the pool),
 * deal each device its ring, record the dealing in the ledger (device,
 * epoch, ring hash; never a key), retire a revoked device's ring ids, and
 * publish the signed list of retired ids. Those are decisions about the
 * cluster state, so they live here, broker-free, like the other services
 * (ig_decision: refusals, replies, and appends whose done answers once the
 * record is durable); the plugin only carries them out.
 *
 * A ring is m pool keys derived from the cluster-head key: up to 1024 HKDFs,
 * a hash and a box per device. That never runs on the caller's (the
 * broker's) thread: the service's worker thread computes rings, the tick
 * collects them, and every state change happens on the caller's thread.
 */
#ifndef IG_SVC_KP_H
#define IG_SVC_KP_H

#include "ig_common.h"
#include "ig_decision.h"
#include "ig_kp.h"
#include "ig_policy.h"
#include "ig_state.h"

#include <stdbool.h>
#include <stdint.h>

struct cJSON;

typedef struct ig_svc_kp ig_svc_kp;

#define IG_SVC_KP_REQUESTS_PER_MINUTE 10

typedef struct ig_svc_kp_config {
	char cluster[IG_CLUSTER_MAX + 1];   /* in the revoked statement; "by" of automatic epochs */
	uint32_t requests_per_minute;       /* key_ring requests per device; 0: IG_SVC_KP_REQUESTS_PER_MINUTE */
} ig_svc_kp_config;

/* What the service needs from its host (the plugin). Every callback runs on
 * the host's thread, inside an ig_svc_kp_* call. */
typedef struct ig_svc_kp_env {
	void *ctx;
	/* id has a live, enrolled session now (an unasked ring is pushed only then). */
	bool (*online)(void *ctx, const char *id);
	/* The cluster-head secret key, or NULL while sealed. */
	const uint8_t *(*ch_sk)(void *ctx);
	/* The policy in force (re-read at every use: SIGHUP reloads it). */
	const ig_policy *(*policy)(void *ctx);
	/* Carries out a decision made outside a request (replies and appends;
	 * refusals are sent as replies to the device they concern). */
	void (*carry_out)(void *ctx, ig_decision *d);
	/* Publishes the signed revoked statement (A.7), retained. */
	void (*publish_revoked)(void *ctx, const char *json);
} ig_svc_kp_env;

/* st is borrowed and must outlive the service. Starts the worker thread and
 * looks for revoked ring holders whose ids were not retired yet (a revoke
 * recorded while the service was not running). NULL (err says why) when out
 * of memory or the thread would not start. */
ig_svc_kp *ig_svc_kp_new(ig_state *st, const ig_svc_kp_config *cfg, const ig_svc_kp_env *env, ig_error *err);
/* Stops the worker (waiting for its job in hand), wipes every secret. NULL
 * is ignored. Appends still in flight must have completed. */
void ig_svc_kp_free(ig_svc_kp *k);

/* A {"type":"key_ring","nonce":N} request from id. Fills out with a refusal
 * (revoked, malformed, not_enabled, not_allowed, rate_limited,
 * epoch_pending, internal) or nothing: the ring is computed on the worker
 * and a later tick answers (at once when the ledger already has id's
 * kp_ring for the epoch, else once the kp_ring it appends is durable; or
 * storage_failed, outcome_unknown, revoked, epoch_pending). */
void ig_svc_kp_request(ig_decision *out, ig_svc_kp *k, const char *id, const struct cJSON *req, uint64_t now_ms);

/* A record that is durable and applied to the state. An enroll or join_used
 * of a device while predistribution is on deals its ring unasked (kp_ring
 * appended, key_ring pushed if it is online); a revoke retires the ring
 * (see on_revoke). */
void ig_svc_kp_on_record(ig_svc_kp *k, const ig_record *rec);
/* id is revoked. Once the revocation is durable (the second call), when id
 * has a ring in the current epoch that is not compromised yet, a
 * kp_compromised record is appended at the next tick and the revoked
 * statement republished once it is durable. Harmless to repeat. */
void ig_svc_kp_on_revoke(ig_svc_kp *k, const char *id);

/* Collects worker results; at most once a second starts the epoch the
 * policy asks for (none yet, or other P/m/q: kp_epoch "initial"/"policy"),
 * retires revoked rings, and republishes the revoked statement when its
 * serial changed. */
void ig_svc_kp_tick(ig_svc_kp *k, uint64_t now_ms);

/* ---- admin commands ---------------------------------------------------- */

/* Called exactly once when kp_rotate is settled: error NULL on success
 * (message names the new epoch), else an error code and a sentence. */
typedef void (*ig_svc_kp_done_fn)(void *ctx, const char *error, const char *message);

/* kp_rotate by `by`: refused (false; error and message filled: not_enabled
 * when the policy has no predistribution, busy while an epoch append is in
 * flight, storage_failed after an unknown outcome) or out gets the kp_epoch
 * append (reason "rotate"), whose done reports the outcome to done once the
 * record is durable. done is never called when this returns false. */
bool ig_svc_kp_rotate(ig_decision *out, ig_svc_kp *k, const char *by, ig_svc_kp_done_fn done, void *done_ctx,
                      const char **error, char *message, size_t cap);

/* kp_status fields into resp: "enabled", "epoch", "pool", "ring", "q",
 * "seed", "rings", "compromised_ids" (count), "compromised_devices" (ids),
 * "serial", "counters" and, when something waits, "pending" (a sentence). */
void ig_svc_kp_status_json(ig_svc_kp *k, struct cJSON *resp);

typedef struct ig_svc_kp_counts {
	uint64_t requests;         /* key_ring requests received */
	uint64_t dealt;            /* key_ring messages sent (asked or pushed) */
	uint64_t refused;          /* key_ring requests refused */
	uint64_t rings_recorded;   /* kp_ring records written */
	uint64_t epochs;           /* kp_epoch records written */
	uint64_t compromised;      /* kp_compromised records written */
	uint64_t statements;       /* revoked statements published */
} ig_svc_kp_counts;
void ig_svc_kp_get_counts(const ig_svc_kp *k, ig_svc_kp_counts *out);
/* Adds "kp":{"epoch","rings","compromised_ids","dealt","refused","requests"} to stats. */
void ig_svc_kp_stats(const ig_svc_kp *k, struct cJSON *stats);

#endif
