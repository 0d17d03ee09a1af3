/*
 * holders.c: choosing custody holders (ig_holders.h).
 *
 * Why this exists: see ig_holders.h. The choice is three sorts over the
 * eligible candidates, so it costs O(m log m) however many zones there are:
 *   1. by rank (power class, then longest up, then id), giving each its rank;
 *   2. by zone then rank, giving each its place in its zone (0 = the zone's
 *      best) and each zone the rank of its best member;
 *   3. by place in zone, then the zone's best rank: round r of the
 *      round-robin is the run of place r, zones in order of their best.
 * The first n of the last order are the holders, holder 1 first.
 */
#include "ig_holders.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry {
	size_t cand;          /* index into cands */
	ig_holder_power power;
	uint64_t up_ms;
	const char *id;
	const char *zone;     /* "" for no zone */
	size_t rank;          /* place in sort 1 */
	size_t zone_best;     /* rank of the zone's best member */
	size_t place;         /* place within its zone */
} entry;

bool ig_holders_eligible(const ig_holder_candidate *c, const ig_holders_opts *opts)
{
	uint32_t mask = opts && opts->role_mask ? opts->role_mask : 1u << IG_ROLE_DEVICE;
	if (!c || !c->id || !c->active || !c->online || !c->attested)
		return false;
	return c->role < 32 && (mask & (1u << c->role)) != 0;
}

ig_holder_power ig_holders_power(const ig_holder_candidate *c, const ig_holders_opts *opts)
{
	unsigned min = opts ? opts->min_battery : IG_HOLDERS_DEFAULT_MIN_BATTERY;
	if (!c->battery_known)
		return IG_HOLDER_POWER_UNKNOWN;
	if (c->mains || c->battery_percent >= min)
		return IG_HOLDER_POWER_GOOD;
	return IG_HOLDER_POWER_LOW;
}

static int by_rank(const void *pa, const void *pb)
{
	const entry *a = pa, *b = pb;
	if (a->power != b->power)
		return a->power < b->power ? -1 : 1;
	if (a->up_ms != b->up_ms)
		return a->up_ms > b->up_ms ? -1 : 1;   /* longest up first */
	int c = strcmp(a->id, b->id);
	if (c != 0)
		return c;
	return a->cand < b->cand ? -1 : a->cand > b->cand;   /* the same id twice: keep input order */
}

static int by_zone(const void *pa, const void *pb)
{
	const entry *a = pa, *b = pb;
	int c = strcmp(a->zone, b->zone);
	if (c != 0)
		return c;
	return a->rank < b->rank ? -1 : a->rank > b->rank;
}

static int by_round(const void *pa, const void *pb)
{
	const entry *a = pa, *b = pb;
	if (a->place != b->place)
		return a->place < b->place ? -1 : 1;
	return a->zone_best < b->zone_best ? -1 : a->zone_best > b->zone_best;
}

int ig_holders_choose(size_t *chosen, const ig_holder_candidate *cands, size_t count, unsigned n,
                      const ig_holders_opts *opts, ig_error *err)
{
	if (!chosen || (count > 0 && !cands) || n == 0 || n > 255 || count > 65535)
		return ig_error_set(err, IG_ERR_INVAL, "custody holders: n must be 1..255 and candidates at most 65535");
	for (size_t i = 0; i < count; i++)
		if (!cands[i].id)
			return ig_error_set(err, IG_ERR_INVAL, "custody holders: candidate %zu has no id", i);

	entry *e = malloc((count ? count : 1) * sizeof *e);
	if (!e)
		return ig_error_set(err, IG_ERR_NOMEM, "custody holders: out of memory");
	size_t m = 0;
	for (size_t i = 0; i < count; i++) {
		const ig_holder_candidate *c = &cands[i];
		if (!ig_holders_eligible(c, opts))
			continue;
		e[m++] = (entry){.cand = i, .power = ig_holders_power(c, opts), .up_ms = c->up_ms, .id = c->id,
		                 .zone = c->zone ? c->zone : ""};
	}
	if (m < n) {
		free(e);
		return ig_error_set(err, IG_ERR_RANGE,
		                    "custody holders: %zu eligible device%s (active, online, attested, of a holder role) "
		                    "for %u shares; enrol or connect more devices, or lower plugin_opt_custody_shares",
		                    m, m == 1 ? "" : "s", n);
	}

	qsort(e, m, sizeof *e, by_rank);
	for (size_t i = 0; i < m; i++)
		e[i].rank = i;
	qsort(e, m, sizeof *e, by_zone);
	for (size_t i = 0, start = 0; i < m; i++) {
		if (i > 0 && strcmp(e[i].zone, e[i - 1].zone) != 0)
			start = i;
		e[i].zone_best = e[start].rank;
		e[i].place = i - start;
	}
	qsort(e, m, sizeof *e, by_round);
	for (unsigned i = 0; i < n; i++)
		chosen[i] = e[i].cand;
	free(e);
	return IG_OK;
}
