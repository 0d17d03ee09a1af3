/*
 * ig_svc_attest.h: the attestation service (docs/PROTOCOL.md, "attest").
 *
 * Why this exists: a device reports a signed measurement (BLAKE2b-256) of
 * the software it runs; a measurement the policy does not allow flags the
 * device, and its entropy is refused from then on. Checking the report
 * (shape, clock, signature with the enrolled key), the verdict, and the
 * rationing of ledger records (lib/entropy/attest.c, ig_attest_admit) are
 * decisions about the cluster state, so they live here and are unit-tested
 * without a broker. An accepted report gets no answer; a first report or a
 * change is appended as an attest record.
 */
#ifndef IG_SVC_ATTEST_H
#define IG_SVC_ATTEST_H

#include "ig_decision.h"
#include "ig_policy.h"
#include "ig_state.h"

struct cJSON;

typedef struct ig_svc_attest ig_svc_attest;

typedef struct ig_svc_attest_config {
	uint32_t max_per_hour;             /* attest records per device per hour */
} ig_svc_attest_config;

/* st is borrowed and must outlive the service. NULL when out of memory. */
ig_svc_attest *ig_svc_attest_new(ig_state *st, const ig_svc_attest_config *cfg);
/* NULL is ignored. Appends still in flight must have completed. */
void ig_svc_attest_free(ig_svc_attest *a);

/* A decoded {"type":"attest","measurement":64 hex,"ts":Unix ms,"sig":string}. */
typedef struct ig_svc_attest_req {
	uint8_t measurement[IG_HASH_BYTES];
	uint64_t ts_ms;
	/* "sig" is a string; whether it is 128 hex is part of the signature
	 * check (a bad one is refused as bad_signature, not malformed). */
	bool sig_hex_ok;
	uint8_t sig[64];
} ig_svc_attest_req;

/* Decodes a request object (any JSON value is accepted as input). IG_OK or
 * IG_ERR_INVAL. */
int ig_svc_attest_decode(ig_svc_attest_req *out, const struct cJSON *req) IG_NODISCARD;

/* True if sig is who's Ed25519 signature over "iotguard-attest-v1" 0x00 id
 * 0x00 measurement u64be(ts_ms) (docs/PROTOCOL.md, "attest"). */
bool ig_svc_attest_verify(const ig_identity *who, const ig_svc_attest_req *r) IG_NODISCARD;

/* One attest report from id: nothing (not active; accepted without a
 * change), a refusal (malformed, stale, bad_signature, over_rate), or an
 * append of the attest record whose done clears the device's in-flight
 * mark and answers only a failure (outcome_unknown, storage_failed).
 * policy is the one in force. Returns true when this report newly flags
 * the device (a changed measurement the policy does not allow), for the
 * caller to log. */
bool ig_svc_attest_request(ig_decision *out, ig_svc_attest *a, const ig_policy *policy, const char *id,
                           const struct cJSON *req, uint64_t now_ms);

typedef struct ig_svc_attest_counts {
	uint64_t reports;                  /* signature verified */
	uint64_t over_rate;
	uint64_t disallowed;               /* changes to a measurement not allowed */
} ig_svc_attest_counts;

void ig_svc_attest_get_counts(const ig_svc_attest *a, ig_svc_attest_counts *out);
/* Adds "attestation":{reports,over_rate,flagged:[ids]} to stats. */
void ig_svc_attest_stats(const ig_svc_attest *a, struct cJSON *stats);

#endif
