/*
 * ig_svc_custody.h: the cluster head's custody service (docs/PROTOCOL.md,
 * "Custody").
 *
 * Why this exists: the cluster-head key at rest must be useless without k of
 * n devices. Someone has to choose the holders, deal them verifiable shares
 * of the custody secret S, make an epoch active only once every holder has
 * stored its share durably, rotate the holders, and at a sealed start
 * collect k shares, check each, and rebuild the key. Those are decisions
 * about the cluster state, so they live here, broker-free, like the other
 * services (ig_decision: replies, and appends whose done sends what follows
 * once a record is durable); the plugin only carries them out.
 *
 * Slow work never runs on the caller's thread: checking a share (k scalar
 * multiplications), combining, opening ch.key.sealed, writing it, and
 * wiping ch.key run on the service's own worker thread; the results are
 * collected by ig_svc_custody_tick. S and the per-boot X25519 key live in
 * guarded, locked memory (sodium_malloc) and are wiped on free.
 */
#ifndef IG_SVC_CUSTODY_H
#define IG_SVC_CUSTODY_H

#include "ig_common.h"
#include "ig_decision.h"
#include "ig_pool.h"
#include "ig_state.h"

#include <stdbool.h>
#include <stdint.h>

struct cJSON;

typedef struct ig_svc_custody ig_svc_custody;

typedef struct ig_svc_custody_config {
	unsigned k, n;                 /* 0, 0: custody off; else 2 <= k <= n <= 255 */
	uint32_t rotate_s;             /* a new epoch this long after the active one became active */
	uint32_t holder_timeout_s;     /* a holder offline this long triggers a rotation */
	unsigned min_battery;          /* percent; see ig_holders.h */
	uint32_t deal_timeout_s;       /* a deal not acknowledged by every holder by then is abandoned */
	uint32_t role_mask;            /* roles that may hold (1u << role); 0 = device only */
	bool unseal_admin;             /* plugin_opt_custody_unseal admin: deals carry the signed admin list,
	                                * and no share is asked for until an admin approves */
	char cluster[IG_CLUSTER_MAX + 1]; /* in the signed admin list and approval statements */
	char ledger_dir[4096];         /* ch.key and ch.key.sealed live here */
	uint8_t ch_pk[IG_PK_BYTES];    /* the genesis cluster-head key: the sealed file's AD, checked at unseal */
} ig_svc_custody_config;

/* What the service needs from its host (the plugin). Every callback runs on
 * the host's thread, inside an ig_svc_custody_* call. */
typedef struct ig_svc_custody_env {
	void *ctx;
	/* id has a live, enrolled session now. */
	bool (*online)(void *ctx, const char *id);
	/* The cluster head is sealed (no key in memory, appends refused). */
	bool (*sealed)(void *ctx);
	/* The cluster-head secret key, or NULL while sealed. */
	const uint8_t *(*ch_sk)(void *ctx);
	/* Installs the rebuilt key (the plugin's ig_plugin_unseal). IG_OK, or
	 * an error with err saying why. */
	int (*unseal)(void *ctx, const uint8_t sk[IG_SK_BYTES], ig_error *err);
	/* Carries out a decision made by the tick (no refusals: only replies
	 * and appends). */
	void (*carry_out)(void *ctx, ig_decision *d);
	/* A custody event that no ledger record shows (schema/custody.schema.json
	 * "event"): ack, bad_ack, share, bad_share, unsealed, recovered,
	 * deal_abandoned, sealed_file. Takes ev. */
	void (*event)(void *ctx, struct cJSON *ev);
	/* The retained state changed: publish json (schema/custody.schema.json). */
	void (*publish_state)(void *ctx, const char *json);
	/* The roles that may hold a share now (1u << role), from the policy's
	 * "custody":{"holder_roles":[...]}; asked at each deal, so a reloaded
	 * policy applies to the next one. NULL: cfg.role_mask. */
	uint32_t (*holder_roles)(void *ctx);
	/* The newest signed checkpoint's size and root (what an admin
	 * approves a collection against). False when there is none. */
	bool (*ledger_head)(void *ctx, uint64_t *size, uint8_t root[32]);
} ig_svc_custody_env;

/* Checks cfg (both k and n or neither, 2 <= k <= n <= 255); IG_ERR_INVAL
 * with err saying what to fix. */
int ig_svc_custody_config_check(const ig_svc_custody_config *cfg, ig_error *err) IG_NODISCARD;

/* st and pool are borrowed and must outlive the service. Starts the worker
 * thread. NULL (err says why) when out of memory or the thread would not
 * start. */
ig_svc_custody *ig_svc_custody_new(ig_state *st, ig_pool *pool, const ig_svc_custody_config *cfg,
                                   const ig_svc_custody_env *env, ig_error *err);
/* Stops the worker (waiting for its job in hand), wipes every secret. NULL
 * is ignored. Appends still in flight must have completed. */
void ig_svc_custody_free(ig_svc_custody *c);

/* A custody_ack request from id. Fills out with nothing (accepted), a
 * refusal (malformed, old_epoch, not_holder, not_dealing, revoked) or, when
 * it was the last one, the append of custody_active whose done tells the
 * holders. */
void ig_svc_custody_ack(ig_decision *out, ig_svc_custody *c, const char *id, const struct cJSON *req,
                        uint64_t now_ms);
/* A custody_share request from id: a refusal (malformed, old_epoch,
 * unknown_epoch, not_requested, not_holder) or nothing (the share is
 * checked on the worker; the tick reports the result). */
void ig_svc_custody_share(ig_decision *out, ig_svc_custody *c, const char *id, const struct cJSON *req,
                          uint64_t now_ms);
/* An agent's status message (its battery and uptime rank it as a holder).
 * When its "custody":{"epochs":[...]} names an epoch older than the active
 * one, out gets a custody_active for the active epoch to id (the holder
 * then wipes the void share); else out is left empty. */
void ig_svc_custody_status_message(ig_decision *out, ig_svc_custody *c, const char *id, const void *payload,
                                   size_t len, uint64_t now_ms);
/* id was revoked: if it holds a share of the active epoch, a rotation is
 * due. Harmless to repeat. */
void ig_svc_custody_on_revoke(ig_svc_custody *c, const char *id);

/* Collects worker results and, at most once a second, looks at the holders:
 * requests shares, resends deals, starts deals and rotations, abandons a
 * stalled deal, publishes the retained state when it changed. */
void ig_svc_custody_tick(ig_svc_custody *c, uint64_t now_ms);

/* ---- admin commands ---------------------------------------------------- */

/* Called exactly once when an admin command that answers later is done:
 * error NULL on success, else an error code and a sentence. */
typedef void (*ig_svc_custody_done_fn)(void *ctx, const char *error, const char *message);

/* Adds the custody status to resp (the retained state's fields plus
 * "counters" and "ledger":{"size","root"}, the newest checkpoint's, which
 * an admin signs into a recover's approval). */
void ig_svc_custody_status_json(ig_svc_custody *c, struct cJSON *resp, uint64_t now_ms);

/* custody_seal by `by`: refused (false; error and message filled) unless an
 * epoch is active and ch.key.sealed is durable for S; else out gets the
 * custody_sealed append, and once it is durable ch.key is overwritten,
 * synced, unlinked and its directory synced on the worker; done reports the
 * outcome. done is never called when this returns false. */
bool ig_svc_custody_seal(ig_decision *out, ig_svc_custody *c, const char *by, ig_svc_custody_done_fn done,
                         void *done_ctx, const char **error, char *message, size_t cap);
/* custody_rotate by `by`: a new epoch is dealt at the next tick (false with
 * error and message when custody is off, sealed, or a deal is under way). */
bool ig_svc_custody_rotate(ig_svc_custody *c, const char *by, const char **error, char *message, size_t cap);

/* custody_recover (`iotguard custody recover`): asks every online holder of
 * the active epoch to release its share to pk (the CLI's X25519 key) and
 * passes the boxes on unopened, with what the CLI needs to check and combine
 * them and open ch.key.sealed: done gets result {"epoch","k","n","ch_pk",
 * "request","commitments":[hex],"shares":[{"holder","index","pk","box_nonce",
 * "box"}],"sealed":base64} once k holders answered, or an error at
 * timeout_s. False (error, message) when refused: custody off, no active
 * epoch, a recover already under way. The cluster head never sees S. */
typedef void (*ig_svc_custody_recover_fn)(void *ctx, const char *error, const char *message,
                                          struct cJSON *result);
/* An admin's approval of a recover (admin unseal mode): by signed the
 * approval statement over its own request id, pk, and the ledger size and
 * root it saw (the custody_status answer's "ledger"). */
typedef struct ig_svc_custody_approval {
	const char *by;
	uint8_t request[16];
	uint64_t size;
	uint8_t root[32];
	uint8_t sig[64];
} ig_svc_custody_approval;
/* approval: NULL, or the sender's approval; required in admin unseal mode
 * (refused approval_needed without one, not_admin or bad_signature when it
 * does not check), where it goes to the holders with each request. */
bool ig_svc_custody_recover(ig_svc_custody *c, const uint8_t pk[32], const ig_svc_custody_approval *approval,
                            uint32_t timeout_s,
                            ig_svc_custody_recover_fn done, void *done_ctx, const char **error, char *message,
                            size_t cap);

/* custody_approve by admin `by` (admin unseal mode): sig is by's Ed25519
 * signature over the approval statement (ig_custody_approve.h) of the
 * pending collection (its request id, X25519 pk, ledger size and root, as
 * the status's "pending_approval" shows them). True when accepted: the
 * holders are asked, with the approval, at the next tick. False with error
 * and message: custody_off, not_admin_mode, not_pending (nothing waits for
 * approval), not_admin (by is not an active admin), bad_signature. */
bool ig_svc_custody_approve(ig_svc_custody *c, const char *by, const uint8_t sig[64], const char **error,
                            char *message, size_t cap);

/* Adds "custody":{...counters...} to stats. */
void ig_svc_custody_stats(const ig_svc_custody *c, struct cJSON *stats);

typedef struct ig_svc_custody_counts {
	uint64_t epochs_dealt;         /* custody_epoch records written */
	uint64_t epochs_active;        /* custody_active records written */
	uint64_t deals_abandoned;
	uint64_t acks, bad_acks;
	uint64_t shares_good, shares_bad, shares_refused, no_share;
	uint64_t unseals, recoveries, rotations;
} ig_svc_custody_counts;
void ig_svc_custody_get_counts(const ig_svc_custody *c, ig_svc_custody_counts *out);

#endif
