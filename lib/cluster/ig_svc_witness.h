/*
 * ig_svc_witness.h: the cluster head's side of the witness protocol: which
 * checkpoint each witness is asked to cosign, from which size, what its
 * answer means, and when a quorum of cosignatures is in (docs/PROTOCOL.md,
 * "Witnesses").
 *
 * Why this exists: a head signed by the cluster head alone lets whoever holds
 * its key show each device another history. The policy names witnesses and a
 * quorum; the cluster head sends each witness every new checkpoint with a
 * consistency proof from the size that witness last cosigned (C2SP
 * tlog-witness add-checkpoint), and publishes the head as cosigned once
 * `quorum` valid cosignatures of the same checkpoint are in. Every decision
 * here is broker-free and clock-explicit, so each outcome is unit-tested; the
 * plugin glue (broker-plugin/plugin_witness.c) only moves the texts, and the
 * proofs come from an ig_prover worker, never from the broker's thread.
 *
 * Per witness, one request is in flight at a time and only the newest
 * checkpoint matters: a checkpoint that arrives while a witness is busy
 * replaces the target, and the witness is asked for it when its answer (or
 * the timeout) frees it. A 409 teaches the size the witness really holds and
 * the request is made again with the right proof; a witness that holds a
 * size larger than the checkpoint (a rollback), or refuses with 422 (a
 * fork), is not asked again for that checkpoint.
 */
#ifndef IG_SVC_WITNESS_H
#define IG_SVC_WITNESS_H

#include "ig_checkpoint.h"
#include "ig_common.h"
#include "ig_cosig.h"
#include "ig_proof.h"

struct cJSON;

#define IG_SVC_WITNESS_MAX 32                  /* as many as a checkpoint carries cosignatures */
#define IG_SVC_WITNESS_TIMEOUT_MS 5000         /* an unanswered request is sent again after this */
#define IG_SVC_WITNESS_RETRY_MS 1000           /* after a failed proof or a witness's 500 */
#define IG_SVC_WITNESS_CONFLICTS_LOUD 3        /* 409s in a row before the cluster head says so loudly */
#define IG_SVC_WITNESS_CONFLICT_BACKOFF_MS 10000

typedef struct ig_svc_witness ig_svc_witness;

ig_svc_witness *ig_svc_witness_new(void);
void ig_svc_witness_free(ig_svc_witness *s);

/* Takes the policy's witnesses (keys of type 0x04, distinct names, n <=
 * IG_SVC_WITNESS_MAX, 1 <= quorum <= n; n == 0 turns the service off). A
 * witness that keeps its name and key keeps what the service knows of it
 * (its cosigned size); the cosignatures of the current checkpoint are
 * recounted under the new quorum. IG_ERR_INVAL for a bad set. */
int ig_svc_witness_configure(ig_svc_witness *s, const ig_cosig_vkey *keys, size_t n, size_t quorum) IG_NODISCARD;
size_t ig_svc_witness_count(const ig_svc_witness *s);

/* The ledger signed a new checkpoint (text, len bytes; cp parsed from it):
 * it becomes the target. The same tree again is ignored. */
int ig_svc_witness_checkpoint(ig_svc_witness *s, const char *text, size_t len, const ig_checkpoint *cp,
                              uint64_t now_ms) IG_NODISCARD;

/* What to do for one witness next. */
typedef struct ig_svc_witness_job {
	size_t witness;                            /* index in the configured keys */
	const char *name;                          /* its id (the key's name) */
	uint64_t from, to;                         /* the consistency proof needed, when needs_proof */
	bool needs_proof;                          /* false: from is 0 or the target's own size (no proof) */
} ig_svc_witness_job;

/* The next witness to ask for the target, marked busy (a request it answered
 * nothing to for IG_SVC_WITNESS_TIMEOUT_MS is freed first). False when none
 * is due. The caller then makes the proof (job.needs_proof) and calls
 * ig_svc_witness_request, or ig_svc_witness_later. */
bool ig_svc_witness_next(ig_svc_witness *s, uint64_t now_ms, ig_svc_witness_job *job);

/* The inbox message for job's witness with the consistency proof
 * (proof_len hashes, none without needs_proof):
 * {"type":"witness_add_checkpoint","request":"<tlog-witness request text>"},
 * malloc'd into *json. The witness is then in flight. IG_ERR_NOTFOUND (the
 * witness is freed, nothing to send) when the target moved on while the
 * proof was made: the next ig_svc_witness_next asks for the newer one. */
int ig_svc_witness_request(ig_svc_witness *s, const ig_svc_witness_job *job, const uint8_t (*proof)[IG_HASH_BYTES],
                           size_t proof_len, uint64_t now_ms, char **json) IG_NODISCARD;

/* The request for job was not sent (its proof could not be made, or the
 * witness is not connected): the witness is asked again after
 * IG_SVC_WITNESS_RETRY_MS. */
void ig_svc_witness_later(ig_svc_witness *s, const ig_svc_witness_job *job, uint64_t now_ms);

/* What an answer meant. */
typedef struct ig_svc_witness_verdict {
	int status;                                /* the witness's status, or 0 for an unusable answer */
	bool cosigned;                             /* a valid cosignature of the target was taken */
	bool quorum;                               /* ... and it completed the quorum: publish the head */
	bool loud;                                 /* a refusal the operator must see (fork, rollback, bad key) */
	char message[384];                         /* what happened, naming the witness and the sizes */
} ig_svc_witness_verdict;

/* An answer {"type":"witness_cosignature","status":N,...} from id on its ch
 * topic. IG_ERR_NOTFOUND when id is not a configured witness (the caller
 * refuses it), IG_ERR_INVAL for a malformed answer (v->message says why),
 * IG_OK otherwise with *v filled. */
int ig_svc_witness_answer(ig_svc_witness *s, const char *id, const struct cJSON *msg, uint64_t now_ms,
                          ig_svc_witness_verdict *v) IG_NODISCARD;

/* The target checkpoint with every valid cosignature collected for it
 * (NUL-terminated; the length is returned), and the witnesses' names in
 * names[0..*n). IG_ERR_NOTFOUND if fewer than the quorum have cosigned it. */
int ig_svc_witness_cosigned(const ig_svc_witness *s, char *out, size_t cap, const char *names[IG_SVC_WITNESS_MAX],
                            size_t *n) IG_NODISCARD;

/* Adds "witnesses": {quorum, cosigned_size, quorum_latency_ms, requests,
 * refusals, per_witness: {<id>: {cosigned_size, refusals, conflicts,
 * last_status}}} when witnesses are configured. */
void ig_svc_witness_stats(const ig_svc_witness *s, struct cJSON *stats);

#endif
