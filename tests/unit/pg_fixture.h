/*
 * pg_fixture.h: one throwaway PostgreSQL server per Criterion test binary.
 *
 * Why this exists: the shared-ledger tests need a real server (the SQL, the
 * row locks and LISTEN/NOTIFY are what is under test), and starting one per
 * test would cost a second each. The runner process starts one server
 * through tests/pg/pgctl.sh before any test (ReportHook PRE_ALL) on a free
 * 127.0.0.1 port in a fresh /tmp directory, hands its DSN to the test
 * processes through the environment, and stops it after the last test
 * (POST_ALL, and atexit should the runner stop early). There is no skip: a
 * server that does not start fails every test that asks for it.
 *
 * Each test takes its own database (pgfx_fresh_db), so tests running in
 * parallel never see each other's tables. Include this from exactly one
 * source file per test binary.
 */
#ifndef IG_PG_FIXTURE_H
#define IG_PG_FIXTURE_H

#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define PGFX_ENV "IG_TEST_PG_DSN"
#define PGFX_ENV_DIR "IG_TEST_PG_DIR"
#define PGFX_ENV_PORT "IG_TEST_PG_PORT"

static char pgfx_dir[256];
static char pgfx_port[16];
static int pgfx_started;
/* The stop command, built before any test runs, so the signal handler
 * below only forks and execs (both async-signal-safe). */
static char pgfx_stop_cmd[700];

/* A port nobody listens on now (the kernel's choice for port 0). */
static int pgfx_free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0)
		return -1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	int port = -1;
	if (bind(s, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(s, (struct sockaddr *)&a, &al) == 0)
		port = ntohs(a.sin_port);
	close(s);
	return port;
}

static void pgfx_stop(void)
{
	if (!pgfx_started)
		return;
	pgfx_started = 0;
	if (system(pgfx_stop_cmd) != 0)
		fprintf(stderr, "pg_fixture: stopping the server in %s failed\n", pgfx_dir);
}

/* meson's timeout ends the runner with SIGTERM (and Ctrl-C with SIGINT):
 * stop the server then too, so no test run leaves one behind. */
static void pgfx_on_signal(int sig)
{
	if (pgfx_stop_cmd[0]) {
		pgfx_started = 0;
		pid_t pid = fork();
		if (pid == 0) {
			char *argv[] = {"/bin/sh", "-c", pgfx_stop_cmd, NULL};
			execv("/bin/sh", argv);
			_exit(127);
		}
		if (pid > 0)
			waitpid(pid, NULL, 0);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	(void)set;
	for (int attempt = 0; attempt < 3 && !pgfx_started; attempt++) {
		snprintf(pgfx_dir, sizeof pgfx_dir, "/tmp/ig-pgfx-XXXXXX");
		if (!mkdtemp(pgfx_dir))
			break;
		int port = pgfx_free_port();
		snprintf(pgfx_port, sizeof pgfx_port, "%d", port);
		snprintf(pgfx_stop_cmd, sizeof pgfx_stop_cmd,
		         "'%s/tests/pg/pgctl.sh' stop '%s/pg' immediate >/dev/null 2>&1; rm -rf '%s'", IG_SOURCE_ROOT,
		         pgfx_dir, pgfx_dir);
		signal(SIGTERM, pgfx_on_signal);
		signal(SIGINT, pgfx_on_signal);
		char cmd[600];
		snprintf(cmd, sizeof cmd, "'%s/tests/pg/pgctl.sh' start '%s/pg' %d", IG_SOURCE_ROOT, pgfx_dir, port);
		FILE *p = popen(cmd, "r");
		char line[256] = "";
		if (p) {
			if (!fgets(line, sizeof line, p))
				line[0] = '\0';
			int st = pclose(p);
			line[strcspn(line, "\n")] = '\0';
			if (st == 0 && line[0]) {
				pgfx_started = 1;
				atexit(pgfx_stop);
				setenv(PGFX_ENV, line, 1);
				setenv(PGFX_ENV_DIR, pgfx_dir, 1);
				setenv(PGFX_ENV_PORT, pgfx_port, 1);
				break;
			}
		}
		fprintf(stderr, "pg_fixture: PostgreSQL did not start on port %d in %s (pgctl.sh says why above)\n", port,
		        pgfx_dir);
		if (system(pgfx_stop_cmd) != 0)
			fprintf(stderr, "pg_fixture: cleanup of %s failed\n", pgfx_dir);
		pgfx_stop_cmd[0] = '\0';
	}
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	(void)stats;
	pgfx_stop();
}

/* The server's DSN (database iotguard); fails the test without one. */
static const char *pgfx_dsn(void)
{
	const char *d = getenv(PGFX_ENV);
	cr_assert(d && *d, "no PostgreSQL for this test: tests/pg/pgctl.sh could not start one (see stderr)");
	return d;
}

/* Runs one SQL command on dsn; fails the test if it fails. */
static void pgfx_sql(const char *dsn, const char *sql)
{
	PGconn *c = PQconnectdb(dsn);
	cr_assert_eq(PQstatus(c), CONNECTION_OK, "connect %s: %s", dsn, PQerrorMessage(c));
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
}

/* A new, empty database for this test; its DSN goes to out. */
static void pgfx_fresh_db(char *out, size_t cap, const char *tag)
{
	static unsigned seq;
	const char *base = pgfx_dsn();
	char name[64], sql[128];
	snprintf(name, sizeof name, "t_%s_%d_%u", tag, (int)getpid(), seq++);
	snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
	char admin[512];
	snprintf(admin, sizeof admin, "%s dbname=postgres", base);
	pgfx_sql(admin, sql);
	snprintf(out, cap, "%s dbname=%s", base, name);
}

#endif
