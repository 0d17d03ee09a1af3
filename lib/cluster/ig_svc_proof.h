/*
 * ig_svc_proof.h: the log-proof service: devices ask the cluster head for
 * an inclusion proof of a record (their own enrolment, at connect) or a
 * consistency proof between two sizes of the log (docs/PROTOCOL.md, "Log
 * proofs").
 *
 * Why this exists: a device that cannot hold the ledger still wants to know
 * that the cluster head's word is in the public log, and that the log it
 * saw before was not rewritten. The proofs are made by an ig_prover on its
 * worker thread; this service decides on the broker's thread only what is
 * cheap (the request's shape, the sizes against the published checkpoint,
 * the per-identity rate, a full queue) and turns finished jobs into replies.
 */
#ifndef IG_SVC_PROOF_H
#define IG_SVC_PROOF_H

#include "ig_decision.h"
#include "ig_checkpoint.h"
#include "ig_prover.h"
#include "ig_registry.h"

struct cJSON;

typedef struct ig_svc_proof ig_svc_proof;

typedef struct ig_svc_proof_config {
	uint32_t requests_per_minute;   /* per identity, both request types together; >= 1 */
} ig_svc_proof_config;

/* The service over the registry (for "of":"enrollment") and a prover it
 * does not own. NULL when out of memory. */
ig_svc_proof *ig_svc_proof_new(const ig_registry *reg, ig_prover *prover, const ig_svc_proof_config *cfg);
void ig_svc_proof_free(ig_svc_proof *s);

/* What the ledger says now, read by the caller for each request. */
typedef struct ig_svc_proof_log {
	unsigned format;                /* ledger format: 1 has no tiles */
	const char *checkpoint;         /* the newest signed checkpoint's text */
	size_t checkpoint_len;
	ig_checkpoint cp;               /* and its parsed form */
} ig_svc_proof_log;

/* One log_inclusion or log_consistency request from id: a refusal, or
 * nothing (IG_DECISION_NONE) when the job was queued; its answer comes out
 * of ig_svc_proof_collect. */
void ig_svc_proof_request(ig_decision *out, ig_svc_proof *s, const char *id, const char *type, const struct cJSON *req,
                          const ig_svc_proof_log *log, uint64_t now_ms);

/* One finished job as a decision for its requester (copied to requester):
 * the proof, or a refusal saying why it could not be made. False (out
 * untouched) when none is ready; cheap enough for every tick. */
bool ig_svc_proof_collect(ig_decision *out, ig_svc_proof *s, char requester[IG_ID_MAX + 1]);

/* Adds "proofs": {served, refused, failed, queue, avg_latency_us}. */
void ig_svc_proof_stats(ig_svc_proof *s, struct cJSON *stats);

#endif
