/*
 * fleet.h: a custody cluster on this machine for bench_custody_e2e: a real
 * mosquitto with the plugin, real iotguard-agent holders, the admin CLI, and
 * one monitor connection that records what the cluster head says.
 *
 * Why this exists: the custody figures of issue 9 (broker CPU per deal, a
 * holder's cost per share, k-th share to unsealed, an unseal with 1M
 * identities) only mean something through the real processes, and the four
 * of them need the same set-up: a ledger with benchmark identities and key
 * files, a broker started on it and timed to its first authenticated client,
 * agents started and stopped by pid, `iotguard custody rotate|seal`, and the
 * retained custody state, custody events and ledger events as they arrive
 * with the cluster head's own millisecond timestamps. One copy of that here;
 * the benchmarks are in main.c, the in-process holder figure in holder.c.
 *
 * Identities (keys derived from the id, lib/bench_id.c: public,
 * benchmark-only): devices dev-NNNNNNN (the first `real` get real keys and
 * key files and can run agents), mon-000 (monitor), adm-0000000 (admin).
 */
#ifndef IOTGUARD_BENCH_CUSTODY_FLEET_H
#define IOTGUARD_BENCH_CUSTODY_FLEET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "bench_conn.h"

#define FLEET_AGENTS_MAX 255
#define FLEET_EVENTS_MAX 4096
#define FLEET_PATH 4096

/* A custody event (iotguard/C/custody/events) or a ledger event
 * (iotguard/C/ledger/events) as the monitor received it. */
typedef struct fleet_event {
	char what[32];           /* custody: "event"; ledger: the record "type" */
	char holder[72];
	char message[240];
	uint64_t epoch;
	double ts_ms;            /* the cluster head's timestamp (wall clock, ms) */
	double recv_s;           /* bench_now_s() when the monitor read it */
} fleet_event;

typedef struct fleet_custody {
	bool have;
	char state[16];
	uint64_t epoch;
	unsigned k, n, shares_collected;
	bool sealed;
	double recv_s;
} fleet_custody;

typedef struct fleet {
	/* set by the caller before fleet_init */
	const char *work, *cluster;
	const char *plugin, *cli, *agent_bin;   /* NULL: next to this program in the build tree */
	int port;                               /* 0: a free one */
	int broker_cpu, client_cpu;             /* < 0: unpinned */

	char ledger[FLEET_PATH], keys[FLEET_PATH];
	char conf[FLEET_PATH], log[FLEET_PATH];
	char plugin_path[FLEET_PATH], cli_path[FLEET_PATH], agent_path[FLEET_PATH];
	char admin_key[FLEET_PATH + 32];
	pid_t broker;
	int starts;

	int n_agents;                           /* agents dev-0000000 .. with key files */
	pid_t agent[FLEET_AGENTS_MAX];

	bench_conn mon;
	bool mon_open;
	int subacks;
	fleet_custody custody;
	fleet_event *ev;                        /* custody events */
	size_t n_ev;
	fleet_event *lev;                       /* ledger events */
	size_t n_lev;
	bool online[FLEET_AGENTS_MAX];
	int n_online;
} fleet;

/* Paths, a free port, the work directories. Until fleet_release, the
 * broker and agents of f are stopped when the program exits or gets SIGINT
 * or SIGTERM. */
void fleet_init(fleet *f);
/* Stops the agents and the broker. */
void fleet_release(fleet *f);
/* A fresh ledger: `devices` devices (the first `real` with real keys and
 * key files, so agents can run as them), mon-000 and adm-0000000. Returns
 * the seconds it took (through lib, bench_id.h's builder). */
double fleet_build_ledger(fleet *f, uint64_t devices, int real);

/* Starts mosquitto with the plugin on the ledger; `opts` are extra
 * "plugin_opt_..." lines (NULL: none). Returns exec -> first authenticated
 * CONNACK of the monitor in seconds; the monitor then subscribes to the
 * custody state and events, the ledger events and the devices' status. */
double fleet_broker_start(fleet *f, const char *opts);
/* SIGTERM, wait (SIGKILL after 30 s). */
void fleet_broker_stop(fleet *f);
/* Plain mosquitto (no plugin, anonymous) on the same port, for a baseline:
 * its VmRSS in kB 300 ms after a first client, then stopped. */
long fleet_plain_rss_kb(fleet *f);

void fleet_agent_start(fleet *f, int i);
/* Stops every running agent (SIGTERM, wait; SIGKILL after 15 s). */
void fleet_agents_stop(fleet *f);

/* Reads what the monitor has for up to timeout_ms. */
void fleet_pump(fleet *f, int timeout_ms);
/* Pumps until pred(f, ctx) holds; dies naming `what` after timeout_s (or if
 * the broker exits). */
typedef bool (*fleet_pred)(fleet *f, const void *ctx);
void fleet_wait(fleet *f, fleet_pred pred, const void *ctx, double timeout_s, const char *what);
/* The latest event of that kind for that epoch (0: any) seen at or after
 * index `from`, or NULL. */
const fleet_event *fleet_find(const fleet *f, bool ledger, const char *what, uint64_t epoch, size_t from);
/* Waits for such an event; returns it. */
const fleet_event *fleet_wait_event(fleet *f, bool ledger, const char *what, uint64_t epoch, size_t from,
                                    double timeout_s);

/* Runs `iotguard custody CMD` as adm-0000000 against the broker; dies with
 * its output when it fails. */
void fleet_custody_cli(fleet *f, const char *cmd);

/* CPU readings of a process: its CPU-time clock (ns), and utime + stime
 * from /proc/PID/stat (clock ticks, for a cross-check). */
uint64_t fleet_cpu_ns(pid_t pid);
long fleet_stat_ticks(pid_t pid);

#endif
