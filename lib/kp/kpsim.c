/*
 * kpsim.c: the analytics of key rings and their measurement over rings
 * dealt by ig_kp_ring_ids (ig_kpsim.h).
 *
 * Why this exists: `iotguard kp simulate` and docs/KEYRINGS.md must show,
 * for the parameters an operator picks, what the literature predicts and
 * what the real ring derivation gives, side by side. The measurement has to
 * be fast enough for N = 2000 with m = 200 (two million pairs), so each
 * link's shared ids are found once, through an index from pool id to the
 * nodes holding it (a node meets only the few nodes sharing each of its
 * ids, not all N), and every capture count afterwards only walks the links.
 */
#include "ig_kpsim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

/* ---- theory ---------------------------------------------------------------- */

int ig_kpsim_theory_init(ig_kpsim_theory *t, uint32_t pool, uint32_t ring, uint8_t q, ig_error *err)
{
	ig_kp_params p = {.epoch = 1, .pool = pool, .ring = ring, .q = q};
	int rc = ig_kp_params_check(&p, err);
	if (rc != IG_OK)
		return rc;
	memset(t, 0, sizeof *t);
	t->pool = pool;
	t->ring = ring;
	t->q = q;
	t->mean_shared = (double)ring * (double)ring / (double)pool;

	/* The hypergeometric law in logs from its exact term ratio
	 *   p(i+1) / p(i) = (m - i)^2 / ((i + 1)(P - 2m + i + 1)),
	 * then normalised. Absolute lgamma values near P = 2^24 are ~2.6e8, so
	 * C(P, m) from lgamma loses about 1e-7 of relative precision; the ratio
	 * never forms those large numbers, and normalising removes the unknown
	 * constant. Below i0 = max(0, 2m - P) two rings cannot meet fewer times. */
	double lp[IG_KP_RING_MAX + 1];
	uint32_t i0 = 2 * ring > pool ? 2 * ring - pool : 0;
	double m = ring, P = pool, top = 0;
	lp[i0] = 0;
	for (uint32_t i = i0; i < ring; i++) {
		double r = log((m - i) * (m - i)) - log((double)(i + 1) * (P - 2 * m + i + 1));
		lp[i + 1] = lp[i] + r;
		if (lp[i + 1] > top)
			top = lp[i + 1];
	}
	double sum = 0;
	for (uint32_t i = i0; i <= ring; i++) {
		t->overlap[i] = exp(lp[i] - top);
		sum += t->overlap[i];
	}
	for (uint32_t i = i0; i <= ring; i++)
		t->overlap[i] /= sum;
	/* p from whichever tail is smaller, so a tiny p keeps its digits. */
	double below = 0, above = 0;
	for (uint32_t i = 0; i <= ring; i++) {
		if (i < q)
			below += t->overlap[i];
		else
			above += t->overlap[i];
	}
	t->share = above < below ? above : 1.0 - below;
	if (t->share < 0)
		t->share = 0;
	return IG_OK;
}

double ig_kpsim_eg_compromise(const ig_kpsim_theory *t, uint32_t captured)
{
	if (captured == 0)
		return 0;
	if (t->ring >= t->pool)
		return 1;
	return -expm1((double)captured * log1p(-(double)t->ring / (double)t->pool));
}

double ig_kpsim_compromise(const ig_kpsim_theory *t, uint32_t captured)
{
	double c = ig_kpsim_eg_compromise(t, captured), num = 0, den = 0;
	for (uint32_t i = t->q; i <= t->ring; i++) {
		if (t->overlap[i] == 0)
			continue;
		uint32_t used = i < IG_KP_PAIR_MAX_IDS ? i : IG_KP_PAIR_MAX_IDS;
		num += pow(c, (double)used) * t->overlap[i];
		den += t->overlap[i];
	}
	return den > 0 ? num / den : 0;
}

double ig_kpsim_two_hop(double p, uint32_t nodes)
{
	if (nodes < 2)
		return 0;
	return 1.0 - (1.0 - p) * pow(1.0 - p * p, (double)(nodes - 2));
}

uint32_t ig_kpsim_pool_for(uint32_t ring, uint8_t q, double p)
{
	ig_kpsim_theory t;
	if (ig_kpsim_theory_init(&t, ring < 2 ? 2 : ring, ring, q, NULL) != IG_OK || t.share < p)
		return 0;
	uint32_t lo = ring < 2 ? 2 : ring, hi = IG_KP_POOL_MAX;
	if (ig_kpsim_theory_init(&t, hi, ring, q, NULL) == IG_OK && t.share >= p)
		return hi;
	/* share falls as the pool grows: lo passes, hi fails. */
	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (ig_kpsim_theory_init(&t, mid, ring, q, NULL) == IG_OK && t.share >= p)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* ---- measurements ---------------------------------------------------------- */

typedef struct kpsim_link {
	uint32_t a, b;
	uint32_t off;      /* first of its ids in s->ids */
	uint16_t shared;   /* ids the two rings share (<= IG_KP_RING_MAX) */
	uint8_t used;      /* min(shared, IG_KP_PAIR_MAX_IDS): the ids its key uses */
} kpsim_link;

struct ig_kpsim {
	uint32_t pool, ring, nodes;
	uint8_t q;
	uint8_t seed[IG_KP_SEED_BYTES];
	uint32_t *rings;        /* nodes x ring, each ascending */
	kpsim_link *links;      /* ordered by (a, b) */
	size_t n_links;
	uint32_t *ids;          /* the links' used ids */
	size_t n_ids;
	size_t *first;          /* links of node a: [first[a], first[a + 1]) */
	uint64_t *adj;          /* nodes x words bits */
	size_t words;
	double two_hop;
};

void ig_kpsim_node_id(char *out, uint32_t node)
{
	snprintf(out, IG_ID_MAX + 1, "node-%u", (unsigned)node);
}

const uint32_t *ig_kpsim_ring(const ig_kpsim *s, uint32_t node)
{
	return s->rings + (size_t)node * s->ring;
}

uint64_t ig_kpsim_pairs(const ig_kpsim *s)
{
	return (uint64_t)s->nodes * (s->nodes - 1) / 2;
}

uint64_t ig_kpsim_links(const ig_kpsim *s)
{
	return s->n_links;
}

double ig_kpsim_measured_share(const ig_kpsim *s)
{
	return (double)s->n_links / (double)ig_kpsim_pairs(s);
}

double ig_kpsim_measured_two_hop(const ig_kpsim *s)
{
	return s->two_hop;
}

void ig_kpsim_free(ig_kpsim *s)
{
	if (!s)
		return;
	free(s->rings);
	free(s->links);
	free(s->ids);
	free(s->first);
	free(s->adj);
	free(s);
}

/* A permutation of the nodes from the seed and the attack number:
 * reproducible captures, and the set for X is a subset of the one for any
 * larger X, so a table over X reads as each attacker capturing more. */
int ig_kpsim_capture_order(uint32_t *order, const ig_kpsim *s, uint32_t trial)
{
	static const char label[] = "iotguard kpsim captures v1";
	uint8_t key[crypto_hash_sha256_BYTES], t[4];
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const uint8_t *)label, sizeof label);   /* with its NUL */
	crypto_hash_sha256_update(&st, s->seed, IG_KP_SEED_BYTES);
	ig_put_u32(t, trial);
	crypto_hash_sha256_update(&st, t, sizeof t);
	crypto_hash_sha256_final(&st, key);
	uint64_t *r = malloc((size_t)s->nodes * sizeof *r);
	if (!r)
		return IG_ERR_NOMEM;
	randombytes_buf_deterministic(r, (size_t)s->nodes * sizeof *r, key);
	for (uint32_t i = 0; i < s->nodes; i++)
		order[i] = i;
	/* Fisher-Yates; a 64-bit draw mod at most 20000 is biased by < 1e-15. */
	for (uint32_t i = s->nodes - 1; i > 0; i--) {
		uint32_t j = (uint32_t)(r[i] % ((uint64_t)i + 1));
		uint32_t tmp = order[i];
		order[i] = order[j];
		order[j] = tmp;
	}
	free(r);
	return IG_OK;
}

static int push_link(ig_kpsim *s, size_t *cap_links, size_t *cap_ids, uint32_t a, uint32_t b,
                     uint32_t shared, const uint32_t *ids, uint32_t used)
{
	if (s->n_links == *cap_links) {
		size_t nc = *cap_links ? *cap_links * 2 : 4096;
		kpsim_link *nl = realloc(s->links, nc * sizeof *nl);
		if (!nl)
			return IG_ERR_NOMEM;
		s->links = nl;
		*cap_links = nc;
	}
	if (s->n_ids + used > *cap_ids) {
		size_t nc = *cap_ids ? *cap_ids * 2 : 16384;
		while (nc < s->n_ids + used)
			nc *= 2;
		if (nc > UINT32_MAX)
			return IG_ERR_NOMEM;
		uint32_t *ni = realloc(s->ids, nc * sizeof *ni);
		if (!ni)
			return IG_ERR_NOMEM;
		s->ids = ni;
		*cap_ids = nc;
	}
	kpsim_link *l = &s->links[s->n_links++];
	l->a = a;
	l->b = b;
	l->off = (uint32_t)s->n_ids;
	l->shared = (uint16_t)shared;
	l->used = (uint8_t)used;
	memcpy(s->ids + s->n_ids, ids, used * sizeof *ids);
	s->n_ids += used;
	return IG_OK;
}

/* Every link with its ids, through the index pool id -> holders (CSR,
 * holders ascending because nodes are added in order). Walking a's ring in
 * ascending order gives each pair's shared ids ascending, so the first 64
 * kept are exactly the ids A.3 uses. */
static int find_links(ig_kpsim *s, ig_error *err)
{
	size_t total = (size_t)s->nodes * s->ring;
	uint32_t *start = calloc((size_t)s->pool + 1, sizeof *start);
	uint32_t *holders = malloc(total * sizeof *holders);
	uint16_t *cnt = calloc(s->nodes, sizeof *cnt);
	uint32_t *tmp = malloc((size_t)s->nodes * IG_KP_PAIR_MAX_IDS * sizeof *tmp);
	s->first = malloc(((size_t)s->nodes + 1) * sizeof *s->first);
	int rc = IG_ERR_NOMEM;
	if (!start || !holders || !cnt || !tmp || !s->first) {
		ig_error_set(err, IG_ERR_NOMEM, "out of memory indexing %u rings of %u ids",
		             (unsigned)s->nodes, (unsigned)s->ring);
		goto out;
	}
	for (size_t k = 0; k < total; k++)
		start[s->rings[k] + 1]++;
	for (uint32_t i = 0; i < s->pool; i++)
		start[i + 1] += start[i];
	for (uint32_t n = 0; n < s->nodes; n++) {
		const uint32_t *r = ig_kpsim_ring(s, n);
		for (uint32_t k = 0; k < s->ring; k++)
			holders[start[r[k]]++] = n;
	}
	/* start[id] now points at the end of id's list: shift back. */
	for (uint32_t i = s->pool; i > 0; i--)
		start[i] = start[i - 1];
	start[0] = 0;

	size_t cap_links = 0, cap_ids = 0;
	for (uint32_t a = 0; a < s->nodes; a++) {
		s->first[a] = s->n_links;
		const uint32_t *r = ig_kpsim_ring(s, a);
		for (uint32_t k = 0; k < s->ring; k++) {
			uint32_t id = r[k];
			for (uint32_t h = start[id]; h < start[id + 1]; h++) {
				uint32_t b = holders[h];
				if (b <= a)
					continue;
				uint16_t c = cnt[b];
				if (c < IG_KP_PAIR_MAX_IDS)
					tmp[(size_t)b * IG_KP_PAIR_MAX_IDS + c] = id;
				cnt[b] = (uint16_t)(c + 1);
			}
		}
		uint64_t *row = s->adj + (size_t)a * s->words;
		for (uint32_t b = a + 1; b < s->nodes; b++) {
			uint32_t c = cnt[b];
			if (c == 0)
				continue;
			cnt[b] = 0;
			if (c < s->q)
				continue;
			uint32_t used = c < IG_KP_PAIR_MAX_IDS ? c : IG_KP_PAIR_MAX_IDS;
			if (push_link(s, &cap_links, &cap_ids, a, b, c, tmp + (size_t)b * IG_KP_PAIR_MAX_IDS, used) != IG_OK) {
				rc = ig_error_set(err, IG_ERR_NOMEM,
				                  "out of memory for the links of %u nodes (%zu links, %zu ids "
				                  "so far): use fewer nodes or a larger pool",
				                  (unsigned)s->nodes, s->n_links, s->n_ids);
				goto out;
			}
			row[b / 64] |= (uint64_t)1 << (b % 64);
			s->adj[(size_t)b * s->words + a / 64] |= (uint64_t)1 << (a % 64);
		}
	}
	s->first[s->nodes] = s->n_links;
	rc = IG_OK;
out:
	free(start);
	free(holders);
	free(cnt);
	free(tmp);
	return rc;
}

/* Pairs linked directly, or through a third node linked to both: one AND
 * of two adjacency rows, stopping at the first common neighbour. */
static void measure_two_hop(ig_kpsim *s)
{
	uint64_t reach = 0;
	for (uint32_t a = 0; a < s->nodes; a++) {
		const uint64_t *ra = s->adj + (size_t)a * s->words;
		for (uint32_t b = a + 1; b < s->nodes; b++) {
			if (ra[b / 64] >> (b % 64) & 1) {
				reach++;
				continue;
			}
			const uint64_t *rb = s->adj + (size_t)b * s->words;
			for (size_t w = 0; w < s->words; w++) {
				if (ra[w] & rb[w]) {
					reach++;
					break;
				}
			}
		}
	}
	s->two_hop = (double)reach / (double)ig_kpsim_pairs(s);
}

int ig_kpsim_new(ig_kpsim **out, uint32_t pool, uint32_t ring, uint8_t q, uint32_t nodes,
                 const uint8_t seed[IG_KP_SEED_BYTES], ig_error *err)
{
	*out = NULL;
	ig_kpsim_theory t;
	int rc = ig_kpsim_theory_init(&t, pool, ring, q, err);
	if (rc != IG_OK)
		return rc;
	if (nodes < 2 || nodes > IG_KPSIM_NODES_MAX)
		return ig_error_set(err, IG_ERR_INVAL, "nodes must be 2..%u (got %u)",
		                    (unsigned)IG_KPSIM_NODES_MAX, (unsigned)nodes);
	/* The links' ids are what can outgrow memory: pairs x min(m^2/P, 64) ids. */
	double pairs = (double)nodes * (nodes - 1) / 2;
	double est = pairs * t.share * sizeof(kpsim_link) +
	             pairs * fmin(t.mean_shared, IG_KP_PAIR_MAX_IDS) * sizeof(uint32_t);
	if (est > 4.0 * 1024 * 1024 * 1024)
		return ig_error_set(err, IG_ERR_RANGE,
		                    "%u nodes with P = %u, m = %u would keep about %.1f GiB of link ids "
		                    "(pairs share %.0f ids on average, up to 64 kept): use fewer nodes",
		                    (unsigned)nodes, (unsigned)pool, (unsigned)ring, est / (1024.0 * 1024 * 1024),
		                    t.mean_shared);

	ig_kpsim *s = calloc(1, sizeof *s);
	if (!s)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory");
	s->pool = pool;
	s->ring = ring;
	s->q = q;
	s->nodes = nodes;
	s->words = ((size_t)nodes + 63) / 64;
	memcpy(s->seed, seed, IG_KP_SEED_BYTES);
	s->rings = malloc((size_t)nodes * ring * sizeof *s->rings);
	s->adj = calloc((size_t)nodes * s->words, sizeof *s->adj);
	if (!s->rings || !s->adj) {
		ig_kpsim_free(s);
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory for %u rings of %u ids",
		                    (unsigned)nodes, (unsigned)ring);
	}
	char id[IG_ID_MAX + 1];
	for (uint32_t n = 0; n < nodes; n++) {
		ig_kpsim_node_id(id, n);
		rc = ig_kp_ring_ids(s->rings + (size_t)n * ring, seed, id, pool, ring);
		if (rc != IG_OK) {
			ig_kpsim_free(s);
			return ig_error_set(err, rc, "ig_kp_ring_ids failed for %s (P = %u, m = %u)", id,
			                    (unsigned)pool, (unsigned)ring);
		}
	}
	rc = find_links(s, err);
	if (rc != IG_OK) {
		ig_kpsim_free(s);
		return rc;
	}
	measure_two_hop(s);
	*out = s;
	return IG_OK;
}

size_t ig_kpsim_link(const ig_kpsim *s, uint32_t a, uint32_t b, const uint32_t **ids)
{
	*ids = NULL;
	if (a >= b || b >= s->nodes)
		return 0;
	size_t lo = s->first[a], hi = s->first[a + 1];
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->links[mid].b < b)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == s->first[a + 1] || s->links[lo].b != b)
		return 0;
	*ids = s->ids + s->links[lo].off;
	return s->links[lo].shared;
}

int ig_kpsim_capture_run(ig_kpsim_capture *out, const ig_kpsim *s, uint32_t captured, uint32_t trials,
                         ig_error *err)
{
	memset(out, 0, sizeof *out);
	if (captured > s->nodes - 2)
		return ig_error_set(err, IG_ERR_INVAL, "at most nodes - 2 = %u captures (got %u)",
		                    (unsigned)(s->nodes - 2), (unsigned)captured);
	if (trials < 1 || trials > IG_KPSIM_TRIALS_MAX)
		return ig_error_set(err, IG_ERR_INVAL, "trials must be 1..%u (got %u)",
		                    (unsigned)IG_KPSIM_TRIALS_MAX, (unsigned)trials);
	size_t words = ((size_t)s->pool + 63) / 64;
	uint8_t *taken = malloc(s->nodes);
	uint64_t *known = malloc(words * sizeof *known);
	uint32_t *order = malloc((size_t)s->nodes * sizeof *order);
	int rc = IG_OK;
	if (!taken || !known || !order) {
		rc = ig_error_set(err, IG_ERR_NOMEM, "out of memory");
		goto out;
	}
	out->captured = captured;
	out->trials = trials;
	for (uint32_t t = 0; t < trials; t++) {
		if (ig_kpsim_capture_order(order, s, t) != IG_OK) {
			rc = ig_error_set(err, IG_ERR_NOMEM, "out of memory");
			goto out;
		}
		memset(taken, 0, s->nodes);
		memset(known, 0, words * sizeof *known);
		for (uint32_t k = 0; k < captured; k++) {
			uint32_t n = order[k];
			taken[n] = 1;
			const uint32_t *r = ig_kpsim_ring(s, n);
			for (uint32_t i = 0; i < s->ring; i++)
				known[r[i] / 64] |= (uint64_t)1 << (r[i] % 64);
		}
		for (size_t k = 0; k < s->n_links; k++) {
			const kpsim_link *l = &s->links[k];
			if (taken[l->a] || taken[l->b])
				continue;
			out->links++;
			const uint32_t *ids = s->ids + l->off;
			if (!(known[ids[0] / 64] >> (ids[0] % 64) & 1))
				continue;
			out->readable_one++;
			uint32_t i = 1;
			while (i < l->used && (known[ids[i] / 64] >> (ids[i] % 64) & 1))
				i++;
			if (i == l->used)
				out->readable++;
		}
	}
	if (out->links) {
		out->fraction = (double)out->readable / (double)out->links;
		out->fraction_one = (double)out->readable_one / (double)out->links;
	}
out:
	free(taken);
	free(known);
	free(order);
	return rc;
}
