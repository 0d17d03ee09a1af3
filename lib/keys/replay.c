/*
 * replay.c: the sliding replay window over message counters.
 *
 * Why this exists: an authenticated message can still be resent by anyone
 * who saw it; the window remembers the last 1024 counters in 128 bytes per
 * peer, and is only moved after the tag verified ("authenticate first,
 * then move the window"), so a forgery cannot push real messages out.
 */
#include "ig_replay.h"

#include <string.h>

#define WINDOW_WORDS (IG_REPLAY_WINDOW / 64)

void ig_replay_init(ig_replay_window *w)
{
	memset(w, 0, sizeof *w);
}

static bool window_bit(const ig_replay_window *w, uint64_t age)
{
	return (w->bits[age / 64] >> (age % 64)) & 1u;
}

ig_replay_result ig_replay_check(const ig_replay_window *w, uint64_t counter)
{
	if (counter == 0)
		return IG_REPLAY_INVALID;
	if (w->highest == 0 || counter > w->highest)
		return IG_REPLAY_OK;
	uint64_t age = w->highest - counter;
	if (age >= IG_REPLAY_WINDOW)
		return IG_REPLAY_TOO_OLD;
	return window_bit(w, age) ? IG_REPLAY_DUPLICATE : IG_REPLAY_OK;
}

/* Ages every remembered counter by shift (bit i moves to bit i + shift);
 * bits that leave the window are forgotten. */
static void window_shift(ig_replay_window *w, uint64_t shift)
{
	if (shift >= IG_REPLAY_WINDOW) {
		memset(w->bits, 0, sizeof w->bits);
		return;
	}
	size_t words = (size_t)(shift / 64);
	unsigned bits = (unsigned)(shift % 64);
	for (size_t j = WINDOW_WORDS; j-- > 0;) {
		uint64_t v = 0;
		if (j >= words) {
			v = w->bits[j - words] << bits;
			if (bits != 0 && j >= words + 1)
				v |= w->bits[j - words - 1] >> (64 - bits);
		}
		w->bits[j] = v;
	}
}

void ig_replay_commit(ig_replay_window *w, uint64_t counter)
{
	if (counter == 0)
		return;
	if (w->highest == 0) {
		memset(w->bits, 0, sizeof w->bits);
		w->highest = counter;
	} else if (counter > w->highest) {
		window_shift(w, counter - w->highest);
		w->highest = counter;
	}
	uint64_t age = w->highest - counter;
	if (age < IG_REPLAY_WINDOW)
		w->bits[age / 64] |= (uint64_t)1 << (age % 64);
}
