/*
 * attest.c: the rate at which attestation reports may cost ledger records.
 *
 * Why this exists: the rule is pure arithmetic on a per-device window, kept
 * apart from the attestation service (svc_attest.c) so it can be tested on
 * its own and the service stays a decision over state. See ig_attest.h.
 */
#include "ig_attest.h"

ig_attest_decision ig_attest_admit(ig_attest_rate *r, bool changed, bool in_flight, uint64_t now_ms,
                                   uint32_t max_per_hour)
{
	if (!r || !changed)
		return IG_ATTEST_UNCHANGED;
	if (in_flight || max_per_hour == 0)
		return IG_ATTEST_REFUSED_RATE;
	/* A clock that stepped back opens a new window rather than stretching
	 * the old one for ever. */
	bool window_over = r->window_start_ms == 0 || now_ms < r->window_start_ms ||
	                   now_ms - r->window_start_ms >= IG_ATTEST_WINDOW_MS;
	uint32_t recorded = window_over ? 0 : r->recorded;
	if (recorded >= max_per_hour)
		return IG_ATTEST_REFUSED_RATE;
	if (window_over)
		r->window_start_ms = now_ms;
	r->recorded = recorded + 1;
	return IG_ATTEST_RECORD;
}
