/*
 * bench_id.h: the benchmark identities and the ledgers that enroll them.
 *
 * Why this exists: a bench builds a ledger of thousands to millions of
 * identities (bench_scale, bench_bank) and then connects as them from
 * another process (the load generators, bench/run.sh's token files). Both
 * sides derive each key from the id with a fixed string, so nothing has to
 * be stored or passed around, and the builder that writes those ledgers
 * must bound how many records it queues. One copy keeps the two sides
 * agreeing.
 *
 * The keys are public by construction: never use them outside benchmarks.
 */
#ifndef IOTGUARD_BENCH_ID_H
#define IOTGUARD_BENCH_ID_H

#include <stddef.h>
#include <stdint.h>

#include "ig_common.h"
#include "ig_ledger.h"
#include "ig_record.h"

/* "mon-NNN" for prefix "mon", else "<prefix>-NNNNNNN". */
void bench_id_format(char *out, size_t cap, const char *prefix, uint32_t i);
/* The 32-byte seed the keys of id derive from. */
void bench_id_seed(uint8_t seed[IG_SEED_BYTES], const char *id);
void bench_id_keypair(const char *id, uint8_t pk[IG_PK_BYTES], uint8_t sk[IG_SK_BYTES]);
/* A connection token for id, valid for ttl_s seconds from now. */
void bench_id_token(char *tok, size_t cap, const char *cluster, const char *id, uint64_t ttl_s);

/* A ledger being written offline: records are submitted without waiting,
 * with at most `window` queued, so a million records do not pile up. */
typedef struct bench_id_builder {
	ig_ledger *l;
	uint64_t window, submitted, done_ok, done_failed;
	int first_failure;
} bench_id_builder;

/* Creates the ledger directory for cluster and opens it for writing. */
void bench_id_build_begin(bench_id_builder *b, const char *dir, const char *cluster, uint64_t window);
/* Queues one record body of len bytes (len < 0: the encoder failed, dies). */
void bench_id_build_submit(bench_id_builder *b, uint16_t type, const uint8_t *body, int len);
/* Enrolls id with key pk (NULL: the id's derived key). */
void bench_id_build_enroll(bench_id_builder *b, const char *id, ig_role role, const uint8_t *pk);
/* Waits until every record is durable, closes; returns the ledger height. */
uint64_t bench_id_build_end(bench_id_builder *b);

#endif
