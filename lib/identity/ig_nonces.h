/*
 * ig_nonces.h: the nonces of accepted single-use tokens, until they expire.
 *
 * Why this exists: a connection token is a bearer credential; for roles
 * whose policy says "single_use", the broker refuses a second connection
 * with the same token (docs/PROTOCOL.md, "Single-use tokens"). Keyed on the
 * token's decoded 16-byte nonce, never on its text, so no second spelling of
 * one token can slip past. Bounded: the table grows with connect rate x
 * token lifetime up to a fixed maximum, and expired nonces are swept a few
 * slots per insert and per broker tick, never in one O(n) pass on a connect.
 */
#ifndef IG_NONCES_H
#define IG_NONCES_H

#include "ig_common.h"

#define IG_NONCES_NONCE_BYTES 16
/* Memory per slot; the table doubles before more than half its slots are
 * used, so it costs at most 4 x IG_NONCES_SLOT_BYTES per remembered nonce
 * (2 x at steady state, plus the old table while it doubles). */
#define IG_NONCES_SLOT_BYTES 24

typedef struct ig_nonces ig_nonces;

/* max_entries: nonces remembered at most (at least 16). IG_OK,
 * IG_ERR_INVAL or IG_ERR_NOMEM. */
int ig_nonces_new(ig_nonces **out, size_t max_entries) __attribute__((warn_unused_result));
void ig_nonces_free(ig_nonces *r);

typedef enum ig_nonces_result {
	IG_NONCES_FRESH = 0,   /* not seen: now remembered until expires_at */
	IG_NONCES_SEEN,        /* remembered and not expired: a replay */
	IG_NONCES_FULL,        /* max_entries live nonces, or out of memory: not remembered */
} ig_nonces_result;

/* Checks nonce and, if fresh, remembers it until expires_at (Unix seconds;
 * it is forgotten once now_s >= expires_at, when the token is refused as
 * expired anyway). */
ig_nonces_result ig_nonces_check_add(ig_nonces *r, const uint8_t nonce[IG_NONCES_NONCE_BYTES], uint64_t expires_at,
                                     uint64_t now_s) __attribute__((warn_unused_result));

/* Examines the next `slots` slots (round robin) and forgets expired nonces. */
void ig_nonces_sweep(ig_nonces *r, uint64_t now_s, size_t slots);

/* The periodic sweep's pace: the whole table about once per
 * IG_NONCES_SWEEP_PASS_MS, examining at least IG_NONCES_SWEEP_MIN and at most
 * IG_NONCES_SWEEP_MAX slots per call. Called elapsed_ms after the previous
 * call (a broker tick), it sweeps and returns the slots examined. Pacing by
 * the table's size rather than a fixed count keeps a busy broker from
 * streaming megabytes of slots through its caches between connects. */
#define IG_NONCES_SWEEP_PASS_MS 1000
#define IG_NONCES_SWEEP_MIN 64
#define IG_NONCES_SWEEP_MAX 4096
size_t ig_nonces_sweep_paced(ig_nonces *r, uint64_t now_s, uint64_t elapsed_ms);

size_t ig_nonces_count(const ig_nonces *r);
size_t ig_nonces_slots(const ig_nonces *r);

#endif
