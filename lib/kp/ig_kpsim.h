/*
 * ig_kpsim.h: how well key rings connect and resist capture, in theory and
 * measured over rings dealt by the real code.
 *
 * Why this exists: choosing the pool size P, the ring size m and q is a
 * trade between memory on the device (m keys), how many pairs can talk
 * directly (p), and how much of the network an attacker reads after
 * capturing X devices. The literature gives closed forms (Eschenauer-Gligor
 * 2002, Chan-Perrig-Song 2003); this code computes them and, next to them,
 * measures the same figures over rings from ig_kp_ring_ids, so a mistake in
 * either the derivation or the formulas shows as a gap between the two
 * columns (`iotguard kp simulate`, docs/KEYRINGS.md).
 *
 * A link is a pair of devices sharing at least q ring ids. Its key is built
 * from the lowest min(shared, IG_KP_PAIR_MAX_IDS) shared ids (A.3), so an
 * attacker reads it when every one of those ids is in a captured ring.
 * Eschenauer-Gligor's basic scheme keys a link with one shared key; the
 * "one key" figures measure that (the lowest shared id) for comparison.
 */
#ifndef IG_KPSIM_H
#define IG_KPSIM_H

#include "ig_common.h"
#include "ig_kp.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The analytical side for one (P, m, q). */
typedef struct ig_kpsim_theory {
	uint32_t pool, ring;
	uint8_t q;
	/* overlap[i] = probability that two rings share exactly i ids
	 * (hypergeometric: C(m,i) C(P-m,m-i) / C(P,m)), i = 0..ring. */
	double overlap[IG_KP_RING_MAX + 1];
	double share;         /* p = sum over i >= q of overlap[i] */
	double mean_shared;   /* expected shared ids of a pair, m^2 / P */
} ig_kpsim_theory;

/* Fills t for (pool, ring, q) in the ranges of ig_kp_params_check; IG_ERR_INVAL naming the field. */
int ig_kpsim_theory_init(ig_kpsim_theory *t, uint32_t pool, uint32_t ring, uint8_t q, ig_error *err) IG_NODISCARD;
/* Probability that one given pool id is in at least one of X captured rings: 1 - (1 - m/P)^X.
 * It is Eschenauer-Gligor's compromised fraction (a link keyed by one shared id). */
double ig_kpsim_eg_compromise(const ig_kpsim_theory *t, uint32_t captured);
/* Chan-Perrig-Song's q-composite compromised fraction with the cap of A.3:
 * sum over i >= q of c^min(i, 64) * overlap[i] / share, c = ig_kpsim_eg_compromise.
 * (Their formula has c^i; the two differ only when pairs share more than 64 ids.) 0 when share is 0. */
double ig_kpsim_compromise(const ig_kpsim_theory *t, uint32_t captured);
/* Probability that two of N nodes are linked directly or through one of the other N - 2:
 * 1 - (1 - p)(1 - p^2)^(N - 2), taking links as independent. */
double ig_kpsim_two_hop(double p, uint32_t nodes);
/* The largest pool P (ring <= P <= IG_KP_POOL_MAX) with share >= p for this ring and q; 0 when
 * even P = ring gives less (or the arguments are out of range). */
uint32_t ig_kpsim_pool_for(uint32_t ring, uint8_t q, double p);

/* ---- measurements ------------------------------------------------------ */

#define IG_KPSIM_NODES_MAX 20000u     /* pairs and the adjacency matrix grow as N^2 */
#define IG_KPSIM_TRIALS_MAX 1000u

typedef struct ig_kpsim ig_kpsim;

/* Deals rings to nodes "node-0" ... "node-<N-1>" with ig_kp_ring_ids(seed, ...), finds every link
 * (its shared ids, computed once) and the adjacency matrix. 2 <= nodes <= IG_KPSIM_NODES_MAX.
 * IG_ERR_INVAL on bad parameters, IG_ERR_NOMEM (naming what) when the links do not fit. */
int ig_kpsim_new(ig_kpsim **out, uint32_t pool, uint32_t ring, uint8_t q, uint32_t nodes,
                 const uint8_t seed[IG_KP_SEED_BYTES], ig_error *err) IG_NODISCARD;
void ig_kpsim_free(ig_kpsim *s);

/* Writes node i's device id ("node-<i>"); out holds IG_ID_MAX + 1 bytes. */
void ig_kpsim_node_id(char *out, uint32_t node);
/* Node i's ring ids, ascending (ring of them). */
const uint32_t *ig_kpsim_ring(const ig_kpsim *s, uint32_t node);
/* Attack number `trial`: the order in which it captures nodes (a permutation of 0..N-1 into order,
 * N entries, drawn from the seed and trial so a run is reproducible). Its first X entries are the
 * captured set for X, so a larger X captures a superset. IG_ERR_NOMEM when out of memory. */
int ig_kpsim_capture_order(uint32_t *order, const ig_kpsim *s, uint32_t trial) IG_NODISCARD;
/* Pairs N(N-1)/2 and links (pairs sharing >= q ids). */
uint64_t ig_kpsim_pairs(const ig_kpsim *s);
uint64_t ig_kpsim_links(const ig_kpsim *s);
/* links / pairs. */
double ig_kpsim_measured_share(const ig_kpsim *s);
/* The fraction of pairs linked directly or through one other node. */
double ig_kpsim_measured_two_hop(const ig_kpsim *s);
/* For a < b: how many ids nodes a and b share (0 when they are no link: fewer than q), and in *ids
 * the lowest min(that, 64) of them, ascending (the ids their key uses). */
size_t ig_kpsim_link(const ig_kpsim *s, uint32_t a, uint32_t b, const uint32_t **ids);

/* Counts summed over the attacks: the fraction an attacker reads depends on how many pool ids its
 * X rings happen to cover, which varies by about sqrt(P c (1 - c)) ids from one attack to the next
 * (c = 1 - (1 - m/P)^X); averaging independent attacks measures the expectation the theory gives. */
typedef struct ig_kpsim_capture {
	uint32_t captured;       /* X */
	uint32_t trials;         /* attacks summed */
	uint64_t links;          /* links between two uncaptured nodes */
	uint64_t readable;       /* of those, links whose every key id is in a captured ring */
	uint64_t readable_one;   /* of those, links whose lowest shared id is in a captured ring */
	double fraction;         /* readable / links (0 when there are no links) */
	double fraction_one;     /* readable_one / links: Eschenauer-Gligor's one-key link */
} ig_kpsim_capture;
/* Runs attacks 0..trials-1, each capturing the first X nodes of its capture order, and sums their
 * counts. X <= nodes - 2 and 1 <= trials <= IG_KPSIM_TRIALS_MAX (IG_ERR_INVAL otherwise). */
int ig_kpsim_capture_run(ig_kpsim_capture *out, const ig_kpsim *s, uint32_t captured, uint32_t trials,
                         ig_error *err) IG_NODISCARD;

#endif
