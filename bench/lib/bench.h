/*
 * bench.h: what every benchmark program does the same way: how it dies, how
 * it tells time, how it allocates, and how it reads its options.
 *
 * Why this exists: each bench used to carry its own die(), clock and argv
 * loop, and they had drifted (different prefixes, some accepting unknown
 * options silently). A benchmark has nothing to recover from, so every
 * failure here ends the process with the program's name and what failed.
 * Options are read by the admin CLI's table parser (tools/cli_options.c), so
 * a bench rejects a misspelt or out-of-range option the way `iotguard` does.
 */
#ifndef IOTGUARD_BENCH_H
#define IOTGUARD_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli.h"

/* Printed before every message; main() sets it before anything can fail. */
extern const char *bench_name;

/* "<bench_name>: msg[: detail]" on stderr, exit 1. */
void bench_die(const char *msg, const char *detail) __attribute__((noreturn));
/* The same with a printf format. */
void bench_dief(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* CLOCK_MONOTONIC, seconds. */
double bench_now_s(void);
void *bench_xrealloc(void *p, size_t n);
char *bench_xstrdup(const char *s);
/* Removes a directory and everything under it (a ledger with its tiles);
 * what cannot be removed is reported and left. Symbolic links are removed,
 * not followed. */
void bench_remove_tree(const char *dir);
/* The directory a benchmark works in: dir when the caller names one, else a
 * fresh /var/tmp/<bench_name>-XXXXXX (*made is set), which
 * bench_work_dir_done removes unless the environment variable keep_env is
 * set. */
const char *bench_work_dir(const char *dir, bool *made);
void bench_work_dir_done(const char *dir, bool made, const char *keep_env);

/* SplitMix64: reproducible pseudo-random values (coin hashes that need not
 * be stored), not for secrets. */
uint64_t bench_splitmix64(uint64_t x);

/* Number in o.a[.b[.c]] of a JSON object, -1 if absent or not a number (the
 * plugin's stats messages, read by the monitors). */
struct cJSON;
double bench_jnum(const struct cJSON *o, const char *a, const char *b, const char *c);

/* Parses argv with the CLI's option table. cmd is the subcommand the
 * options belong to ("run"), or NULL for a program without subcommands
 * (argv[0] is then the program). On --help prints usage to stdout and exits
 * 0; on a bad option prints why (and the help hint) and exits 2, as the
 * benches always have for usage errors. */
void bench_parse(int argc, char **argv, const char *cmd, const cli_option *opts, const char *usage);

#endif
