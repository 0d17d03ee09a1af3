/*
 * ig_replay.h: the sliding replay window over 64-bit message counters.
 *
 * Why this exists: an m2m message (ig_m2m.h) is authenticated but could be
 * sent again by anyone who saw it; its receiver accepts each counter once.
 * The window is RFC 4303 style, 1024 wide, and is checked before and moved
 * only after the AEAD tag verified, so a forged message cannot move it.
 */
#ifndef IG_REPLAY_H
#define IG_REPLAY_H

#include "ig_common.h"

#define IG_REPLAY_WINDOW 1024
typedef struct ig_replay_window {
	uint64_t highest;                         /* 0 = nothing seen yet */
	uint64_t bits[IG_REPLAY_WINDOW / 64];     /* bit i: highest - i was seen */
} ig_replay_window;

typedef enum ig_replay_result {
	IG_REPLAY_OK = 0,       /* new: accept (call ig_replay_commit after decrypting) */
	IG_REPLAY_DUPLICATE,    /* seen before */
	IG_REPLAY_TOO_OLD,      /* below the window */
	IG_REPLAY_INVALID,      /* counter 0 */
} ig_replay_result;

void ig_replay_init(ig_replay_window *w);
/* Checks without changing state, so a forged message cannot move the window. */
ig_replay_result ig_replay_check(const ig_replay_window *w, uint64_t counter);
/* Records counter as seen (after the AEAD tag verified). */
void ig_replay_commit(ig_replay_window *w, uint64_t counter);

#endif
