/*
 * kp_simulate.c: `iotguard kp simulate`, key-ring parameters measured
 * against the theory (docs/KEYRINGS.md).
 *
 * Why this exists: an operator chooses the pool P, the ring m and q before
 * turning predistribution on, and cannot change a device's memory or the
 * fleet's exposure afterwards without a rotation. This command deals rings
 * to N simulated devices with the library's own ig_kp_ring_ids, and prints
 * each measured figure (share probability, two-hop connectivity, links an
 * attacker reads after X captures) next to the analytical one, so both the
 * choice and the ring derivation can be checked on the spot. It needs no
 * broker and no ledger; the ring seed is random unless given, and printed,
 * so a run can be repeated exactly.
 */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "cli.h"
#include "ig_kp.h"
#include "ig_kpsim.h"

enum { OPT_POOL = 256, OPT_RING, OPT_Q, OPT_NODES, OPT_CAPTURED, OPT_SEED, OPT_TARGET_P, OPT_TRIALS, OPT_JSON, OPT_HELP };

/* Bytes a device keeps per ring entry: the id (4) and its pool key (32). */
#define RING_ENTRY_BYTES 36u

static const uint32_t table_x[] = {0, 1, 5, 10, 25, 50, 100, 200, 500};

static int simulate_help(void)
{
	printf("Usage: iotguard kp simulate --pool P | --target-p p  --ring m [--q q] [--nodes N] [--captured X]\n"
	       "                            [--trials T] [--seed HEX] [--json]\n"
	       "Deals key rings to N simulated devices with the real ring derivation (ig_kp_ring_ids) and prints\n"
	       "each measured figure next to the analytical one (docs/KEYRINGS.md). No broker needed.\n\n"
	       "  --pool P       pool size, 2..16777216 (the policy's \"pool\")\n"
	       "  --target-p p   instead of --pool: the largest pool in which two rings still share >= q ids\n"
	       "                 with probability >= p (0 < p <= 1)\n"
	       "  --ring m       ring size, 1..1024 and <= P (the policy's \"ring\"); a device keeps m x 36 bytes\n"
	       "  --q q          shared ids a pair needs, 1..16 and <= m (1 = Eschenauer-Gligor; default 1)\n"
	       "  --nodes N      simulated devices, 2..%u (default 2000); the work grows as N^2\n"
	       "  --captured X   captured devices for the headline figure, 0..N-2 (default 50); the table also\n"
	       "                 shows X = 0, 1, 5, 10, 25, 50, 100, 200, 500 (capped at N-2)\n"
	       "  --trials T     independent attacks averaged for each X, 1..%u (default 10)\n"
	       "  --seed HEX     the 32-byte ring seed (64 hex digits); random if absent, printed either way.\n"
	       "                 It also fixes the order in which each attack captures devices\n"
	       "  --json         one JSON object instead of the tables\n\n"
	       "Measured: the fraction of all pairs sharing >= q ids (p); of pairs linked directly or through one\n"
	       "other device; and, after capturing X devices (each attack in its own random order, so a larger X\n"
	       "captures a superset), the fraction of links between uncaptured devices whose key the captured rings\n"
	       "rebuild: every one of the link's key ids (the lowest 64 shared) is in a captured ring, summed over\n"
	       "the attacks (one attack alone varies with how many pool ids its X rings happen to cover, by about\n"
	       "half a point at P = 10000). For q = 1 the table adds\n"
	       "Eschenauer-Gligor's basic link, keyed by one shared id (the lowest).\n"
	       "Theory: hypergeometric p; 1 - (1 - p)(1 - p^2)^(N-2); 1 - (1 - m/P)^X for one id; the\n"
	       "q-composite sum over i >= q of (1 - (1 - m/P)^X)^min(i,64) p(i) / p (Chan-Perrig-Song).\n",
	       (unsigned)IG_KPSIM_NODES_MAX, (unsigned)IG_KPSIM_TRIALS_MAX);
	return CLI_EXIT_OK;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct row {
	ig_kpsim_capture c;
	double theory, theory_one;
} row;

/* {measured, theory, difference}; measured and difference are null when
 * nothing was measured (every link had a captured end). */
static cJSON *figure(double measured, double theory, bool have)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	if (have)
		cJSON_AddNumberToObject(o, "measured", measured);
	else
		cJSON_AddNullToObject(o, "measured");
	cJSON_AddNumberToObject(o, "theory", theory);
	if (have)
		cJSON_AddNumberToObject(o, "difference", measured - theory);
	else
		cJSON_AddNullToObject(o, "difference");
	return o;
}

static void add_row_json(cJSON *arr, const row *r, bool one_key)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return;
	cJSON_AddNumberToObject(o, "captured", r->c.captured);
	cJSON_AddNumberToObject(o, "links", (double)r->c.links);   /* summed over the attacks */
	cJSON_AddNumberToObject(o, "readable", (double)r->c.readable);
	if (r->c.links) {
		cJSON_AddNumberToObject(o, "measured", r->c.fraction);
		cJSON_AddNumberToObject(o, "theory", r->theory);
		cJSON_AddNumberToObject(o, "difference", r->c.fraction - r->theory);
	} else {
		cJSON_AddNullToObject(o, "measured");
		cJSON_AddNumberToObject(o, "theory", r->theory);
		cJSON_AddNullToObject(o, "difference");
	}
	if (one_key) {
		cJSON *e = figure(r->c.fraction_one, r->theory_one, r->c.links > 0);
		if (e) {
			cJSON_AddNumberToObject(e, "readable", (double)r->c.readable_one);
			cJSON_AddItemToObject(o, "one_key", e);
		}
	}
	cJSON_AddItemToArray(arr, o);
}

static double pct(double f)
{
	return 100.0 * f;
}

/* " measured%  theory%  diff pp", or dashes where nothing was measured. */
static void print_cells(double measured, double theory, bool have, int width)
{
	if (have)
		printf(" %*.2f%% %*.2f%% %+6.2f pp", width, pct(measured), width, pct(theory), pct(measured - theory));
	else
		printf(" %*s  %*.2f%% %9s", width, "-", width, pct(theory), "-");
}

int ig_cmd_kp_simulate(int argc, char **argv)
{
	cli_cmd = "kp simulate";
	uint64_t pool = 0, ring = 0, q = 1, nodes = 2000, captured = 50, trials = 10;
	double target_p = -1;
	const char *seed_hex = NULL;
	bool as_json = false;
	const cli_option opts[] = {
		CLI_NUMBER("pool", OPT_POOL, &pool, 2, IG_KP_POOL_MAX),
		CLI_REAL("target-p", OPT_TARGET_P, &target_p, 1e-12, 1),
		CLI_NUMBER("ring", OPT_RING, &ring, 1, IG_KP_RING_MAX),
		CLI_NUMBER("q", OPT_Q, &q, 1, IG_KP_Q_MAX),
		CLI_NUMBER("nodes", OPT_NODES, &nodes, 2, IG_KPSIM_NODES_MAX),
		CLI_NUMBER("captured", OPT_CAPTURED, &captured, 0, IG_KPSIM_NODES_MAX - 2),
		CLI_NUMBER("trials", OPT_TRIALS, &trials, 1, IG_KPSIM_TRIALS_MAX),
		CLI_TEXT("seed", OPT_SEED, &seed_hex),
		CLI_FLAG("json", OPT_JSON, &as_json),
		CLI_HELP_OPTION(OPT_HELP),
		CLI_OPTIONS_END,
	};
	int parsed = cli_parse(argc, argv, opts);
	if (parsed != CLI_PARSED)
		return parsed == CLI_HELP ? simulate_help() : parsed;
	if (ring == 0)
		return cli_missing("--ring m");
	if (pool == 0 && target_p < 0)
		return cli_missing("--pool P (or --target-p p)");
	if (pool != 0 && target_p >= 0) {
		cli_error("give --pool or --target-p, not both");
		return cli_usage_hint();
	}
	if (q > ring) {
		cli_error("--q %llu is more than --ring %llu: two rings could never share q ids", (unsigned long long)q,
		          (unsigned long long)ring);
		return cli_usage_hint();
	}
	if (captured > nodes - 2) {
		cli_error("--captured must be at most --nodes - 2 = %llu (two uncaptured devices make a link)",
		          (unsigned long long)(nodes - 2));
		return cli_usage_hint();
	}
	if (target_p >= 0) {
		pool = ig_kpsim_pool_for((uint32_t)ring, (uint8_t)q, target_p);
		if (pool == 0) {
			cli_error("no pool of %llu..%u ids gives p >= %g with m = %llu, q = %llu", (unsigned long long)ring,
			          IG_KP_POOL_MAX, target_p, (unsigned long long)ring, (unsigned long long)q);
			return CLI_EXIT_ERR;
		}
	}
	if (ring > pool) {
		cli_error("--ring %llu is more than --pool %llu: a ring holds distinct pool ids", (unsigned long long)ring,
		          (unsigned long long)pool);
		return cli_usage_hint();
	}
	if (ig_init() != IG_OK) {
		cli_error("libsodium failed to initialise");
		return CLI_EXIT_ERR;
	}
	uint8_t seed[IG_KP_SEED_BYTES];
	if (seed_hex) {
		if (ig_hex_decode(seed, sizeof seed, seed_hex, strlen(seed_hex)) != IG_OK) {
			cli_error("--seed needs 64 hex digits (32 bytes), got '%s'", seed_hex);
			return cli_usage_hint();
		}
	} else {
		randombytes_buf(seed, sizeof seed);
	}
	char seed_text[2 * IG_KP_SEED_BYTES + 1];
	ig_hex_encode(seed_text, seed, sizeof seed);

	ig_error err = {0};
	ig_kpsim_theory t;
	if (ig_kpsim_theory_init(&t, (uint32_t)pool, (uint32_t)ring, (uint8_t)q, &err) != IG_OK) {
		cli_error("%s", err.msg);
		return CLI_EXIT_ERR;
	}
	double t0 = now_s();
	ig_kpsim *s = NULL;
	if (ig_kpsim_new(&s, (uint32_t)pool, (uint32_t)ring, (uint8_t)q, (uint32_t)nodes, seed, &err) != IG_OK) {
		cli_error("%s", err.msg);
		return CLI_EXIT_ERR;
	}

	/* The table's X values capped at N - 2, plus --captured, ascending, once each. */
	uint32_t xs[sizeof table_x / sizeof table_x[0] + 1];
	size_t nx = 0;
	for (size_t i = 0; i <= sizeof table_x / sizeof table_x[0]; i++) {
		uint32_t x = i < sizeof table_x / sizeof table_x[0] ? table_x[i] : (uint32_t)captured;
		if (x > nodes - 2)
			x = (uint32_t)(nodes - 2);
		size_t at = 0;
		while (at < nx && xs[at] < x)
			at++;
		if (at < nx && xs[at] == x)
			continue;
		memmove(xs + at + 1, xs + at, (nx - at) * sizeof *xs);
		xs[at] = x;
		nx++;
	}
	row rows[sizeof xs / sizeof xs[0]];
	size_t headline = 0;
	for (size_t i = 0; i < nx; i++) {
		if (ig_kpsim_capture_run(&rows[i].c, s, xs[i], (uint32_t)trials, &err) != IG_OK) {
			cli_error("%s", err.msg);
			ig_kpsim_free(s);
			return CLI_EXIT_ERR;
		}
		rows[i].theory = ig_kpsim_compromise(&t, xs[i]);
		rows[i].theory_one = ig_kpsim_eg_compromise(&t, xs[i]);
		if (xs[i] == captured)
			headline = i;
	}
	double seconds = now_s() - t0;

	bool one_key = q == 1;
	double share = ig_kpsim_measured_share(s), share_t = t.share;
	double hop = ig_kpsim_measured_two_hop(s), hop_t = ig_kpsim_two_hop(t.share, (uint32_t)nodes);
	double worst = fmax(fabs(share - share_t), fabs(hop - hop_t));
	for (size_t i = 0; i < nx; i++) {
		if (!rows[i].c.links)
			continue;   /* every link had a captured end: nothing measured */
		worst = fmax(worst, fabs(rows[i].c.fraction - rows[i].theory));
		if (one_key)
			worst = fmax(worst, fabs(rows[i].c.fraction_one - rows[i].theory_one));
	}
	const row *h = &rows[headline];

	if (as_json) {
		cJSON *o = cJSON_CreateObject(), *table = cJSON_CreateArray();
		if (!o || !table) {
			cJSON_Delete(o);
			cJSON_Delete(table);
			ig_kpsim_free(s);
			cli_error("out of memory");
			return CLI_EXIT_ERR;
		}
		cJSON_AddNumberToObject(o, "pool", (double)pool);
		cJSON_AddNumberToObject(o, "ring", (double)ring);
		cJSON_AddNumberToObject(o, "q", (double)q);
		cJSON_AddNumberToObject(o, "nodes", (double)nodes);
		cJSON_AddStringToObject(o, "seed", seed_text);
		cJSON_AddNumberToObject(o, "ring_bytes", (double)(ring * RING_ENTRY_BYTES));
		cJSON_AddNumberToObject(o, "mean_shared", t.mean_shared);
		cJSON_AddNumberToObject(o, "pairs", (double)ig_kpsim_pairs(s));
		cJSON_AddNumberToObject(o, "links", (double)ig_kpsim_links(s));
		cJSON_AddItemToObject(o, "share", figure(share, share_t, true));
		cJSON_AddItemToObject(o, "two_hop", figure(hop, hop_t, true));
		cJSON_AddNumberToObject(o, "captured", (double)captured);
		cJSON_AddNumberToObject(o, "trials", (double)trials);
		cJSON_AddItemToObject(o, "compromise", figure(h->c.fraction, h->theory, h->c.links > 0));
		if (one_key)
			cJSON_AddItemToObject(o, "compromise_one_key",
			                      figure(h->c.fraction_one, h->theory_one, h->c.links > 0));
		for (size_t i = 0; i < nx; i++)
			add_row_json(table, &rows[i], one_key);
		cJSON_AddItemToObject(o, "table", table);
		cJSON_AddNumberToObject(o, "max_difference", worst);
		cJSON_AddNumberToObject(o, "seconds", seconds);
		char *text = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
		ig_kpsim_free(s);
		if (!text) {
			cli_error("out of memory");
			return CLI_EXIT_ERR;
		}
		printf("%s\n", text);
		free(text);
		return CLI_EXIT_OK;
	}

	printf("key rings: P = %llu, m = %llu, q = %llu; N = %llu devices (%llu pairs, %llu links)\n",
	       (unsigned long long)pool, (unsigned long long)ring, (unsigned long long)q, (unsigned long long)nodes,
	       (unsigned long long)ig_kpsim_pairs(s), (unsigned long long)ig_kpsim_links(s));
	if (target_p >= 0)
		printf("pool:      the largest with p >= %g\n", target_p);
	printf("ring seed: %s\n", seed_text);
	printf("per device: %llu x %u bytes = %llu bytes of ring; a pair shares %.3g ids on average (m^2/P)\n\n",
	       (unsigned long long)ring, RING_ENTRY_BYTES, (unsigned long long)(ring * RING_ENTRY_BYTES), t.mean_shared);
	printf("%-52s %9s %9s %9s\n", "figure", "measured", "theory", "diff");
	printf("%-52s %8.2f%% %8.2f%% %+6.2f pp\n", "pairs sharing >= q ids (p)", pct(share), pct(share_t),
	       pct(share - share_t));
	printf("%-52s %8.2f%% %8.2f%% %+6.2f pp\n", "pairs linked directly or via one device", pct(hop), pct(hop_t),
	       pct(hop - hop_t));
	char label[96];
	snprintf(label, sizeof label, "links read after %llu captures (key of A.3)", (unsigned long long)captured);
	printf("%-52s", label);
	print_cells(h->c.fraction, h->theory, h->c.links > 0, 8);
	printf("\n");
	if (one_key) {
		snprintf(label, sizeof label, "links read after %llu captures (EG, one shared id)",
		         (unsigned long long)captured);
		printf("%-52s", label);
		print_cells(h->c.fraction_one, h->theory_one, h->c.links > 0, 8);
		printf("\n");
	}

	printf("\nlinks between uncaptured devices that X captured rings read (%llu attacks per X; links per attack):\n",
	       (unsigned long long)trials);
	if (one_key) {
		printf("%6s %10s | %-29s | %s\n", "", "", "key of A.3 (all shared ids)", "Eschenauer-Gligor (one id)");
		printf("%6s %10s | %8s %8s %9s | %8s %8s %9s\n", "X", "links", "measured", "theory", "diff", "measured",
		       "theory", "diff");
	} else {
		printf("%6s %10s | %-29s\n", "", "", "q-composite key (A.3)");
		printf("%6s %10s | %8s %8s %9s\n", "X", "links", "measured", "theory", "diff");
	}
	for (size_t i = 0; i < nx; i++) {
		const row *r = &rows[i];
		printf("%6u %10llu |", (unsigned)r->c.captured, (unsigned long long)((r->c.links + trials / 2) / trials));
		print_cells(r->c.fraction, r->theory, r->c.links > 0, 7);
		if (one_key) {
			printf(" |");
			print_cells(r->c.fraction_one, r->theory_one, r->c.links > 0, 7);
		}
		printf("\n");
	}
	printf("\nlargest difference from theory: %.2f percentage points; simulated in %.2f s\n", pct(worst), seconds);
	ig_kpsim_free(s);
	return CLI_EXIT_OK;
}
