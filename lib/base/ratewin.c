/*
 * ratewin.c: per-identity request budgets over fixed windows (ig_ratewin.h).
 *
 * Why this exists: see the header. An entry per identity that ever asked
 * (ids are bounded by the registry's roles that may ask).
 */
#include "ig_ratewin.h"

#include "ig_idmap.h"

#include <stdlib.h>

typedef struct window {
	uint64_t start_ms;
	uint32_t count;
} window;

struct ig_ratewin {
	ig_idmap *windows;
	uint32_t per_window, window_ms;
};

ig_ratewin *ig_ratewin_new(uint32_t per_window, uint32_t window_ms)
{
	if (per_window == 0 || window_ms == 0)
		return NULL;
	ig_ratewin *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->windows = ig_idmap_new(sizeof(window));
	if (!r->windows) {
		free(r);
		return NULL;
	}
	r->per_window = per_window;
	r->window_ms = window_ms;
	return r;
}

void ig_ratewin_free(ig_ratewin *r)
{
	if (!r)
		return;
	ig_idmap_free(r->windows, false);
	free(r);
}

bool ig_ratewin_take(ig_ratewin *r, const char *id, uint64_t now_ms)
{
	window *w = ig_idmap_put(r->windows, id);
	if (!w)
		return false;
	/* A new entry is zeroed: its window (start 0) has long ended. A clock
	 * that went back starts a new window rather than refusing for ever. */
	if (now_ms < w->start_ms || now_ms - w->start_ms >= r->window_ms)
		*w = (window){.start_ms = now_ms};
	if (w->count >= r->per_window)
		return false;
	w->count++;
	return true;
}
