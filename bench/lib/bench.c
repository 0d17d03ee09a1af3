/*
 * bench.c: the benches' common exit, clock, allocation and option reading
 * (see bench.h for why they are shared).
 */
#include "bench.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

const char *bench_name = "bench";

void bench_die(const char *msg, const char *detail)
{
	fprintf(stderr, "%s: %s%s%s\n", bench_name, msg, detail ? ": " : "", detail ? detail : "");
	exit(1);
}

void bench_dief(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", bench_name);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

double bench_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void *bench_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (!q)
		bench_die("out of memory", NULL);
	return q;
}

char *bench_xstrdup(const char *s)
{
	char *d = strdup(s);
	if (!d)
		bench_die("out of memory", NULL);
	return d;
}

uint64_t bench_splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

double bench_jnum(const cJSON *o, const char *a, const char *b, const char *c)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
	if (b)
		v = cJSON_GetObjectItemCaseSensitive(v, b);
	if (c)
		v = cJSON_GetObjectItemCaseSensitive(v, c);
	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

void bench_parse(int argc, char **argv, const char *cmd, const cli_option *opts, const char *usage)
{
	cli_program = bench_name;
	cli_commands = cmd != NULL;
	cli_cmd = cmd ? cmd : "";
	int rc = cli_parse(argc, argv, opts);
	if (rc == CLI_HELP) {
		fputs(usage, stdout);
		exit(0);
	}
	if (rc != CLI_PARSED)
		exit(2);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	if (remove(path) != 0)
		fprintf(stderr, "%s: could not remove %s: %s\n", bench_name, path, strerror(errno));
	return 0;
}

void bench_remove_tree(const char *dir)
{
	(void)nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *bench_work_dir(const char *dir, bool *made)
{
	*made = dir == NULL;
	if (dir)
		return dir;
	static char tmpl[256];
	snprintf(tmpl, sizeof tmpl, "/var/tmp/%s-XXXXXX", bench_name);
	if (!mkdtemp(tmpl))
		bench_die("mkdtemp /var/tmp", strerror(errno));
	return tmpl;
}

void bench_work_dir_done(const char *dir, bool made, const char *keep_env)
{
	if (made && getenv(keep_env) == NULL)
		bench_remove_tree(dir);
}
