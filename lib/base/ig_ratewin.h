/*
 * ig_ratewin.h: a per-identity request budget over fixed windows (a minute,
 * for the services that use it).
 *
 * Why this exists: more than one service lets each identity make at most N
 * requests a minute (log proofs, the fleet listing). One implementation
 * keeps the rule the same everywhere: a window starts with the first request
 * after the previous window ended, a request past the budget is refused and
 * not counted, and running out of memory refuses (the safe side for a rate
 * limit).
 */
#ifndef IG_RATEWIN_H
#define IG_RATEWIN_H

#include "ig_common.h"

typedef struct ig_ratewin ig_ratewin;

/* per_window >= 1 and window_ms >= 1; NULL otherwise or out of memory. */
ig_ratewin *ig_ratewin_new(uint32_t per_window, uint32_t window_ms);
void ig_ratewin_free(ig_ratewin *r);

/* True when id may make one more request at now_ms, and counts it. */
bool ig_ratewin_take(ig_ratewin *r, const char *id, uint64_t now_ms);

#endif
