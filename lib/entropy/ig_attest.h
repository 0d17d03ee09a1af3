/*
 * ig_attest.h: how often a device's attestation reports may cost a ledger
 * record.
 *
 * Why this exists: each signed report whose measurement (or verdict)
 * changed costs a ledger record, so a device that keeps sending new
 * measurements could fill the ledger. A report that changes nothing costs
 * nothing; a change is recorded at most max_per_hour times per device per
 * window of one hour (the window opens at the first recorded change after
 * the previous one ran out), and only one at a time (while a record is
 * being written, the next change waits). Beyond that the report is refused
 * as over_rate and nothing changes: the device keeps the measurement last
 * recorded. The attestation service is ig_svc_attest.h.
 */
#ifndef IG_ATTEST_H
#define IG_ATTEST_H

#include "ig_common.h"

#define IG_ATTEST_WINDOW_MS 3600000u
typedef struct ig_attest_rate {
	uint64_t window_start_ms;    /* 0 = no window open */
	uint32_t recorded;           /* records in the open window */
} ig_attest_rate;

typedef enum ig_attest_decision {
	IG_ATTEST_UNCHANGED = 0,     /* nothing to record; accepted */
	IG_ATTEST_RECORD,            /* accepted: write one attest record (counted) */
	IG_ATTEST_REFUSED_RATE,      /* refused: over_rate, nothing changes */
} ig_attest_decision;

/* changed: the report's measurement or verdict differs from the last one
 * accepted; in_flight: this device's previous attest record is still being
 * written. Updates r only when it returns IG_ATTEST_RECORD. */
ig_attest_decision ig_attest_admit(ig_attest_rate *r, bool changed, bool in_flight, uint64_t now_ms,
                                   uint32_t max_per_hour);

#endif
