/*
 * bench_stats.c: medians, percentiles and code counts for the benches (see
 * bench_stats.h for why they are shared).
 */
#include "bench_stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "bench.h"

int bench_stats_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double bench_stats_median(const double *v, size_t n)
{
	double *tmp = bench_xrealloc(NULL, n * sizeof *tmp);
	memcpy(tmp, v, n * sizeof *v);
	qsort(tmp, n, sizeof *tmp, bench_stats_cmp_double);
	double m = n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
	free(tmp);
	return m;
}

double bench_stats_percentile(double *v, size_t n, double p)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof *v, bench_stats_cmp_double);
	return v[(size_t)(p * (double)(n - 1) + 0.5)];
}

void bench_stats_lat_init(bench_stats_lat *l, size_t cap)
{
	l->v = bench_xrealloc(NULL, cap * sizeof *l->v);
	l->n = 0;
	l->cap = cap;
}

void bench_stats_lat_free(bench_stats_lat *l)
{
	free(l->v);
	memset(l, 0, sizeof *l);
}

void bench_stats_lat_add_ms(bench_stats_lat *l, double ms)
{
	if (l->n < l->cap)
		l->v[l->n++] = (float)ms;
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return x < y ? -1 : x > y;
}

bool bench_stats_lat_summary(bench_stats_lat *l, double *p50, double *p99, double *max)
{
	if (!l->n)
		return false;
	qsort(l->v, l->n, sizeof *l->v, cmp_float);
	*p50 = l->v[l->n / 2];
	*p99 = l->v[(size_t)((double)l->n * 0.99)];
	*max = l->v[l->n - 1];
	return true;
}

void bench_stats_codes_add(bench_stats_codes *c, const char *code)
{
	c->total++;
	for (int i = 0; i < c->n; i++)
		if (!strcmp(c->code[i], code)) {
			c->count[i]++;
			return;
		}
	if (c->n < BENCH_STATS_CODES_MAX) {
		snprintf(c->code[c->n], sizeof c->code[0], "%s", code);
		c->count[c->n++] = 1;
	}
}

void bench_stats_ledger_read(bench_stats_ledger *l, const cJSON *m)
{
	l->have = true;
	l->received_at = bench_now_s();
	l->ts_ms = bench_jnum(m, "ts", NULL, NULL);
	l->height = bench_jnum(m, "ledger", "height", NULL);
	l->batches = bench_jnum(m, "ledger", "batches", NULL);
	l->pending = bench_jnum(m, "ledger", "pending", NULL);
	l->commit_last = bench_jnum(m, "ledger", "commit_latency_us", "last");
	l->commit_avg = bench_jnum(m, "ledger", "commit_latency_us", "avg");
	l->commit_max = bench_jnum(m, "ledger", "commit_latency_us", "max");
}

void bench_stats_ledger_print_commit(const char *label, const bench_stats_ledger *end)
{
	printf("%s%sledger commit latency (submit -> durable, plugin stats): last %.0f us, avg %.0f us, max %.0f us\n",
	       label ? label : "", label ? ": " : "", end->commit_last, end->commit_avg, end->commit_max);
}
