/*
 * custody_e2e.h: the parts of bench_custody_e2e (main.c says what it
 * measures): the in-process holder figure (holder.c), and the benchmarks
 * through the real broker and agents (main.c, on fleet.h's cluster).
 *
 * Why this exists: main.c parses the options of every command and runs
 * them (also all of them in a row); the holder figure needs the agent's
 * headers and nothing of the fleet, so it has its own file and this is
 * what the two share.
 */
#ifndef IOTGUARD_BENCH_CUSTODY_E2E_H
#define IOTGUARD_BENCH_CUSTODY_E2E_H

#include <stddef.h>

#include "bench.h"
#include "bench_proc.h"
#include "bench_stats.h"

typedef struct holder_opts {
	unsigned k, n;
	size_t rounds;
	const char *work;    /* NULL: a fresh directory under /var/tmp, removed after */
} holder_opts;

/* Prints the holder's per-deal figures; 0 on success (dies otherwise). */
int custody_holder_run(const holder_opts *o);

#endif
