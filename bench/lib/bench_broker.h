/*
 * bench_broker.h: starting mosquitto with the plugin on a ledger, timing it
 * to its first authenticated client, reading its memory, and stopping it.
 *
 * Why this exists: the memory figures (bytes per identity, per outstanding
 * coin) are differences between two brokers started the same way on two
 * ledgers, so the start, the moment of the reading and the stop must be the
 * same for every bench that reports one (bench_scale, bench_bank rss).
 */
#ifndef IOTGUARD_BENCH_BROKER_H
#define IOTGUARD_BENCH_BROKER_H

#include <stdint.h>

#include "cli.h"

typedef struct bench_broker_reading {
	double start_s;          /* exec -> first authenticated CONNACK */
	double first_tcp_s;      /* exec -> first accepted TCP connection */
	long loaded_ms;          /* from the plugin's "loaded in N ms" line, -1 if absent */
	long rss_kb, rss_anon_kb, rss_file_kb, hwm_kb;
} bench_broker_reading;

typedef struct bench_broker_opts {
	const char *work;        /* config and log go here: <work>/<prefix>-<tag>.conf/.log */
	const char *prefix;      /* "scale", "bank" */
	const char *tag;         /* "one", "big", ... */
	const char *plugin;      /* the plugin .so */
	const char *ledger_dir;
	const char *cluster;
	const char *id;          /* the identity whose connect is timed (a benchmark id) */
	int port;
	int cpu;                 /* pin the broker here; < 0: unpinned */
	double start_timeout_s;  /* give up (and kill it) after this long */
} bench_broker_opts;

/* The options of a command that starts brokers itself (bench_scale run,
 * bench_bank rss), read into a bench_broker_cli by BENCH_BROKER_CLI_OPTIONS.
 * A cpu of -1 leaves that process unpinned (run.sh passes -1 on one core). */
typedef struct bench_broker_cli {
	const char *plugin, *work;
	uint64_t port;
	double broker_cpu, client_cpu;
} bench_broker_cli;

#define BENCH_BROKER_CLI_OPTIONS(b) \
	CLI_REQUIRED("plugin", 0, &(b)->plugin, "SO"), CLI_REQUIRED("work", 0, &(b)->work, "DIR"), \
	CLI_NUMBER("port", 0, &(b)->port, 1, 65535), CLI_REAL("broker-cpu", 0, &(b)->broker_cpu, -1, 4095), \
	CLI_REAL("client-cpu", 0, &(b)->client_cpu, -1, 4095)

/* A cpu option as bench_proc_pin takes it. */
int bench_broker_cli_cpu(double cpu);

/* The user mosquitto should stay (see bench_broker.c). */
const char *bench_broker_user(void);
/* N from the last "loaded in N ms" line of a broker log, -1 if none. */
long bench_broker_loaded_ms(const char *log_path);
/* Starts, times, reads 300 ms after the first client, stops (SIGTERM, then
 * SIGKILL after 30 s). Dies if the broker exits or never accepts the id. */
bench_broker_reading bench_broker_measure(const bench_broker_opts *o);

#endif
