/*
 * ig_svc_entropy.h: the entropy service (docs/PROTOCOL.md, "Sealed
 * message"; seed 002).
 *
 * Why this exists: devices contribute health-tested, conditioned entropy
 * sealed to the cluster head on iotguard/<cluster>/dev/<id>/entropy. Whether
 * a sample is mixed into the key pool (it opens, its sequence is new, the
 * device is not sending too fast, its software is not flagged) is a
 * decision about the cluster state, so it lives here and is unit-tested
 * without a broker. Device entropy is never trusted alone: every key the
 * pool gives out also takes fresh OS randomness (ig_pool_derive). Each
 * refusal is counted by reason and by device; nothing is ever answered.
 */
#ifndef IG_SVC_ENTROPY_H
#define IG_SVC_ENTROPY_H

#include "ig_decision.h"
#include "ig_entropy.h"
#include "ig_pool.h"
#include "ig_state.h"

struct cJSON;

typedef struct ig_svc_entropy ig_svc_entropy;

typedef struct ig_svc_entropy_config {
	uint32_t min_interval_ms;          /* between two accepted samples of one device */
} ig_svc_entropy_config;

/* Keys and seeds pool from the cluster head's key (ch_sk, Ed25519, with
 * ch_pk) and OS randomness, so the pool is never weaker than the cluster
 * head's own randomness whatever devices send. st and pool are borrowed
 * (the pool is also drawn from by the key and coin services) and must
 * outlive the service. NULL when out of memory or the key is unusable. */
ig_svc_entropy *ig_svc_entropy_new(ig_state *st, ig_pool *pool, const uint8_t ch_pk[IG_PK_BYTES],
                                   const uint8_t ch_sk[IG_SK_BYTES], const ig_svc_entropy_config *cfg);
/* Wipes the service's copy of the cluster head's X25519 key. NULL is ignored. */
void ig_svc_entropy_free(ig_svc_entropy *e);

/* Decodes and opens {"seq":n,"sealed":base64(crypto_box_seal(u64 seq ||
 * 32-byte block))} of at most 1024 bytes, sealed to the X25519 form of the
 * cluster-head key (ch_x_pk, ch_x_sk). IG_OK fills seq and block; else
 * IG_ERR_INVAL (block wiped): not our JSON, bad base64, a box that does not
 * open, or an inner sequence other than the outer one. */
int ig_svc_entropy_decode(uint64_t *seq, uint8_t block[IG_ENTROPY_BLOCK_BYTES], const void *payload, size_t len,
                          const uint8_t ch_x_pk[32], const uint8_t ch_x_sk[32]) IG_NODISCARD;

/* What became of one sample. */
#define IG_SVC_ENTROPY_ACCEPTED (-1)
#define IG_SVC_ENTROPY_IGNORED (-2)   /* no memory for the device's counters */

/* One message on id's entropy topic. out is always NONE (samples are never
 * answered). Returns IG_SVC_ENTROPY_ACCEPTED, IG_SVC_ENTROPY_IGNORED, or the
 * ig_entropy_refusal it was counted as. */
int ig_svc_entropy_message(ig_decision *out, ig_svc_entropy *e, const char *id, const void *payload, size_t len,
                           uint64_t now_ms);

typedef struct ig_svc_entropy_counts {
	uint64_t accepted;
	uint64_t refused[IG_ENT_REFUSAL_COUNT];
} ig_svc_entropy_counts;

void ig_svc_entropy_get_counts(const ig_svc_entropy *e, ig_svc_entropy_counts *out);
/* Adds "entropy":{accepted,refused{by reason},pool_inputs,devices{<=1000}}. */
void ig_svc_entropy_stats(const ig_svc_entropy *e, struct cJSON *stats);

#endif
