/*
 * bench_stats.h: the few statistics the benches print: medians of rounds,
 * latency percentiles, and counts of refusal codes.
 *
 * Why this exists: every bench computed these itself, with two different
 * percentile rules between them. The rules are kept as they were (so figures
 * stay comparable with earlier runs) but each lives once, under a name that
 * says which rule it is.
 */
#ifndef IOTGUARD_BENCH_STATS_H
#define IOTGUARD_BENCH_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* qsort comparator for doubles, ascending. */
int bench_stats_cmp_double(const void *a, const void *b);

/* Median of n values (n >= 1); v itself is left as it was. */
double bench_stats_median(const double *v, size_t n);

/* Nearest-rank percentile (p in [0, 1]) of n values; sorts v in place. 0 if
 * n is 0. */
double bench_stats_percentile(double *v, size_t n, double p);

/* Latencies in ms, kept as floats so millions fit; beyond cap they are not
 * recorded (the summary then describes the first cap). */
typedef struct bench_stats_lat {
	float *v;
	size_t n, cap;
} bench_stats_lat;

void bench_stats_lat_init(bench_stats_lat *l, size_t cap);
void bench_stats_lat_free(bench_stats_lat *l);
void bench_stats_lat_add_ms(bench_stats_lat *l, double ms);
/* p50 (v[n/2]), p99 (v[n*0.99]) and max in ms; sorts; false if empty. */
bool bench_stats_lat_summary(bench_stats_lat *l, double *p50, double *p99, double *max);

/* Error codes the broker answered, counted per code (the first 8 codes). */
#define BENCH_STATS_CODES_MAX 8
typedef struct bench_stats_codes {
	uint64_t total;
	int n;
	char code[BENCH_STATS_CODES_MAX][40];
	uint64_t count[BENCH_STATS_CODES_MAX];
} bench_stats_codes;

void bench_stats_codes_add(bench_stats_codes *c, const char *code);

/* What a stats message of the plugin (iotguard/C/stats, every
 * plugin_opt_stats_interval seconds) says about the ledger, and when it came. */
struct cJSON;
typedef struct bench_stats_ledger {
	bool have;
	double ts_ms, received_at;
	double height, batches, pending, commit_last, commit_avg, commit_max;
} bench_stats_ledger;

void bench_stats_ledger_read(bench_stats_ledger *l, const struct cJSON *m);
/* "<label>: ledger commit latency ..." from the last of two messages. */
void bench_stats_ledger_print_commit(const char *label, const bench_stats_ledger *end);

#endif
