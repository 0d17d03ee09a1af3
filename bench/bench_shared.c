/*
 * bench_shared.c: durable appends per second through PostgreSQL from several
 * brokers at once, against the file ledger on the same machine in the same
 * run.
 *
 * Why this exists: in shared mode (docs/LEDGER.md 16) every broker of a
 * cluster appends through one head row in one PostgreSQL primary, so that
 * row's lock is the serialization point of the whole cluster, and the append
 * rate one primary gives is what sizes a cluster (docs/SCALING.md). This
 * program measures it the way brokers append: each writer is an ig_ledger
 * opened with ig_ledger_open_shared on one database, with its own event-loop
 * thread keeping many submits in flight (ig_ledger_submit + ig_ledger_poll,
 * as the plugin does), its own state fed by its own completions and by
 * on_follow (every other writer's records), and the shadow state the
 * re-check of step 3 needs. Interleaved rounds: the file ledger (one
 * writer, the embedded default), one shared writer while the others only
 * follow, and all writers appending at once. Also printed: records per
 * transaction, commit latency, this process's and the PostgreSQL server's
 * CPU per record, and the WAL and table bytes each record costs PostgreSQL.
 * Then, once: light load (--light appends in flight per writer: the head
 * row's queue seen as commit latency), the same SQL without the ledger in
 * 1-, 64- and 1024-row transactions (the bound one head row sets), and a
 * fourth broker joining (reading, checking and replaying every record: per
 * record, about what following costs each broker).
 *
 * It works in a scratch database it creates next to the DSN's
 * (iotguard_bench_<pid>) and drops at the end, so it never touches a ledger
 * that is there. Enroll records of about 190-byte bodies, as bench_ledger.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ig_ledger.h"
#include "ig_pg.h"
#include "ig_record.h"
#include "ig_state.h"
#include "bench.h"
#include "bench_proc.h"
#include "bench_stats.h"

#define MAX_WRITERS 8

/* An enroll body of about 190 bytes (64-char id, 80-char "by"), unique per
 * writer and sequence number so the state's re-check accepts every one. */
static size_t make_body(uint8_t *out, size_t cap, unsigned writer, uint64_t n)
{
	ig_enroll e;
	memset(&e, 0, sizeof e);
	int len = snprintf(e.id, sizeof e.id, "bench-%02u-%012" PRIu64 "-", writer, n);
	memset(e.id + len, 'x', IG_ID_MAX - (size_t)len);
	e.id[IG_ID_MAX] = '\0';
	e.role = IG_ROLE_DEVICE;
	uint8_t seed[16];
	memcpy(seed, &n, sizeof n);
	memcpy(seed + 8, &(uint64_t){writer}, sizeof(uint64_t));
	crypto_generichash(e.pk, sizeof e.pk, seed, sizeof seed, NULL, 0);
	memset(e.by, 'a', IG_BY_MAX);
	memcpy(e.by, "offline:bench-", 14);
	int blen = ig_record_enroll_encode(out, cap, &e);
	if (blen < 0)
		bench_die("cannot encode an enroll body", NULL);
	return (size_t)blen;
}

/* ---- one writer: a ledger, its states and its event-loop thread ---- */

typedef struct shadow {
	ig_state *st;
} shadow;

static int shadow_apply(void *ctx, const ig_record *rec, ig_error *err)
{
	return ig_state_apply(((shadow *)ctx)->st, rec, err);
}

static void shadow_reset(void *ctx)
{
	shadow *s = ctx;
	ig_state_free(s->st);
	s->st = ig_state_new();
	if (!s->st)
		bench_die("out of memory (shadow state)", NULL);
}

typedef struct writer {
	unsigned index;
	const char *name;
	ig_ledger *l;
	ig_state *state;         /* the broker's state: own completions and followed records */
	shadow sh;               /* the writer thread's copy for the re-check */
	pthread_t thread;
	_Atomic uint32_t in_flight_max;  /* set by main between phases */
	/* owned by the thread */
	uint64_t in_flight, seq;
	/* read by main */
	_Atomic uint64_t done_ok, followed, failed, conflicts, unavailable;
	_Atomic int active;      /* submit while set */
	_Atomic int stop;
} writer;

static int on_follow(void *ctx, const ig_record *rec, ig_error *err)
{
	writer *w = ctx;
	int rc = ig_state_apply(w->state, rec, err);
	if (rc != IG_OK)
		bench_dief("%s: a followed record (index %" PRIu64 ") was refused by the state: %s", w->name,
		           rec->index, err->msg);
	atomic_fetch_add(&w->followed, 1);
	return IG_OK;
}

static void on_done(void *ctx, int status, const ig_record *rec)
{
	writer *w = ctx;
	w->in_flight--;
	if (status == IG_OK) {
		ig_error err = {0};
		if (ig_state_apply(w->state, rec, &err) != IG_OK)
			bench_dief("%s: own durable record %" PRIu64 " refused by the state: %s", w->name, rec->index,
			           err.msg);
		atomic_fetch_add(&w->done_ok, 1);
	} else if (status == IG_ERR_CONFLICT) {
		atomic_fetch_add(&w->conflicts, 1);
	} else if (status == IG_ERR_UNAVAILABLE) {
		atomic_fetch_add(&w->unavailable, 1);
	} else {
		atomic_fetch_add(&w->failed, 1);
	}
}

static void *writer_main(void *arg)
{
	writer *w = arg;
	uint8_t body[512];
	int efd = ig_ledger_event_fd(w->l);
	while (!atomic_load(&w->stop)) {
		if (atomic_load(&w->active)) {
			while (w->in_flight < atomic_load(&w->in_flight_max)) {
				size_t len = make_body(body, sizeof body, w->index, w->seq);
				int rc = ig_ledger_submit(w->l, IG_REC_ENROLL, body, len, on_done, w);
				if (rc != IG_OK)
					bench_dief("%s: submit failed (%d)", w->name, rc);
				w->seq++;
				w->in_flight++;
			}
		}
		struct pollfd pfd = {.fd = efd, .events = POLLIN};
		if (poll(&pfd, 1, 20) < 0 && errno != EINTR)
			bench_dief("poll: %s", strerror(errno));
		ig_ledger_poll(w->l);
	}
	/* drain what is still in flight, so close finds nothing pending */
	uint64_t deadline = ig_mono_us() + 30 * 1000000ull;
	while (w->in_flight > 0 && ig_mono_us() < deadline) {
		struct pollfd pfd = {.fd = efd, .events = POLLIN};
		(void)poll(&pfd, 1, 20);
		ig_ledger_poll(w->l);
	}
	return NULL;
}

/* ---- PostgreSQL: the scratch database and the server's figures ---- */

static PGconn *pg_admin(const char *dsn)
{
	PGconn *c = PQconnectdb(dsn);
	if (PQstatus(c) != CONNECTION_OK)
		bench_dief("cannot connect to PostgreSQL (%s): %s", dsn, PQerrorMessage(c));
	return c;
}

static void pg_exec(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_dief("PostgreSQL: %s: %s", sql, PQerrorMessage(c));
	PQclear(r);
}

/* One text value of a one-row query; "" when NULL. Caller frees. */
static char *pg_value(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		bench_dief("PostgreSQL: %s: %s", sql, PQerrorMessage(c));
	char *v = bench_xstrdup(PQgetisnull(r, 0, 0) ? "" : PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

static double pg_number(PGconn *c, const char *sql)
{
	char *v = pg_value(c, sql);
	double d = strtod(v, NULL);
	free(v);
	return d;
}

/* The postmaster's pid from DATA_DIR/postmaster.pid, when the server is on
 * this machine and the file readable (we run as root or as postgres);
 * 0 otherwise: the server's CPU is then not reported. */
static int pg_postmaster_pid(PGconn *c)
{
	PGresult *r = PQexec(c, "SHOW data_directory");
	int pid = 0;
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
		char path[4200];
		int pn = snprintf(path, sizeof path, "%s/postmaster.pid", PQgetvalue(r, 0, 0));
		FILE *f = pn > 0 && (size_t)pn < sizeof path ? fopen(path, "r") : NULL;
		if (f) {
			if (fscanf(f, "%d", &pid) != 1)
				pid = 0;
			fclose(f);
		}
	}
	PQclear(r);
	return pid;
}

/* On-CPU ns of the postmaster and every process it started (backends,
 * WAL writer, checkpointer), from /proc/PID/schedstat. Backends that exit
 * between two readings take their time with them, so readings bracket a
 * window in which the writers' connections stay open. */
static uint64_t pg_cpu_ns(int postmaster)
{
	if (postmaster <= 0)
		return 0;
	uint64_t sum = 0;
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		char path[64], buf[512];
		snprintf(path, sizeof path, "/proc/%ld/stat", pid);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[n] = '\0';
		/* "pid (comm) state ppid ..."; comm may hold spaces: read after the last ')' */
		char *rp = strrchr(buf, ')');
		int ppid = 0;
		if (!rp || sscanf(rp + 1, " %*c %d", &ppid) != 1)
			continue;
		if (pid != postmaster && ppid != postmaster)
			continue;
		snprintf(path, sizeof path, "/proc/%ld/schedstat", pid);
		f = fopen(path, "r");
		if (!f)
			continue;
		unsigned long long ns = 0;
		if (fscanf(f, "%llu", &ns) == 1)
			sum += ns;
		fclose(f);
	}
	closedir(d);
	return sum;
}

/* ---- the SQL alone: what one head row allows, whatever the ledger does ---- */

/* Every append is one transaction that locks the head row, inserts its
 * batch, moves the head, notifies and commits; the lock is held through
 * COMMIT (the WAL flush), so transactions of all brokers run one after the
 * other. This measures that bound with the same tables and statements but
 * no ledger (rows made by the server: no framing, signing or network
 * transfer of the frames), so the ledger's figure can be read against it. */
typedef struct ceiling_run {
	const char *dsn;
	unsigned batch;
	_Atomic int stop;
	_Atomic uint64_t tx;
	pthread_t thread;
} ceiling_run;

static void *ceiling_main(void *arg)
{
	ceiling_run *c = arg;
	PGconn *db = pg_admin(c->dsn);
	char sql[1024];
	while (!atomic_load(&c->stop)) {
		pg_exec(db, "BEGIN");
		char *h = pg_value(db, "SELECT height FROM bench_ceiling.head FOR UPDATE");
		unsigned long long height = strtoull(h, NULL, 10);
		free(h);
		snprintf(sql, sizeof sql,
		         "INSERT INTO bench_ceiling.records (idx, type, hash, frame, broker) "
		         "SELECT %llu + g, 1, sha256(int8send(%llu + g)), convert_to(repeat('x', 253), 'UTF8'), 'ceiling' "
		         "FROM generate_series(0, %u) g",
		         height, height, c->batch - 1);
		pg_exec(db, sql);
		snprintf(sql, sizeof sql,
		         "UPDATE bench_ceiling.head SET height = %llu, head = sha256(int8send(%llu)), updated = now()",
		         height + c->batch, height + c->batch);
		pg_exec(db, sql);
		pg_exec(db, "SELECT pg_notify('bench_ceiling', 'x')");
		pg_exec(db, "COMMIT");
		atomic_fetch_add(&c->tx, 1);
	}
	PQfinish(db);
	return NULL;
}

static void sql_ceiling(PGconn *db, const char *dsn, unsigned writers, double seconds)
{
	pg_exec(db, "CREATE SCHEMA bench_ceiling;"
	            "CREATE TABLE bench_ceiling.records (idx bigint PRIMARY KEY CHECK (idx >= 0), type integer NOT NULL,"
	            " hash bytea NOT NULL UNIQUE, frame bytea NOT NULL, broker text NOT NULL,"
	            " appended timestamptz NOT NULL DEFAULT now());"
	            "CREATE TABLE bench_ceiling.head (one boolean PRIMARY KEY DEFAULT true CHECK (one),"
	            " height bigint NOT NULL, head bytea NOT NULL, updated timestamptz NOT NULL DEFAULT now());"
	            "INSERT INTO bench_ceiling.head (height, head) VALUES (0, '\\x00')");
	static const unsigned batches[] = {1, 64, 1024};
	for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
		ceiling_run runs[MAX_WRITERS];
		memset(runs, 0, sizeof runs);
		for (unsigned i = 0; i < writers; i++) {
			runs[i].dsn = dsn;
			runs[i].batch = batches[b];
			if (pthread_create(&runs[i].thread, NULL, ceiling_main, &runs[i]) != 0)
				bench_die("cannot start a thread", NULL);
		}
		usleep(300000);
		uint64_t tx0 = 0, tx1 = 0;
		for (unsigned i = 0; i < writers; i++)
			tx0 += atomic_load(&runs[i].tx);
		double t0 = bench_now_s();
		while (bench_now_s() - t0 < seconds)
			usleep(10000);
		for (unsigned i = 0; i < writers; i++)
			tx1 += atomic_load(&runs[i].tx);
		double dt = bench_now_s() - t0;
		for (unsigned i = 0; i < writers; i++)
			atomic_store(&runs[i].stop, 1);
		for (unsigned i = 0; i < writers; i++)
			pthread_join(runs[i].thread, NULL);
		double txs = (double)(tx1 - tx0) / dt;
		printf("SQL alone, %u connections, %u-row transactions (lock head, insert, update, notify, commit): "
		       "%.0f transactions/s = %.0f rows/s, %.2f ms per transaction\n",
		       writers, batches[b], txs, txs * batches[b], txs > 0 ? 1e3 / txs : 0);
		printf("RESULT shared.sql.batch%u.tx_per_s %.0f\n", batches[b], txs);
		fflush(stdout);
	}
}

/* ---- setup ---- */

/* dir/name into out, or the run ends: a path that does not fit is a usage error. */
static void path_join(char *out, size_t cap, const char *dir, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= cap)
		bench_dief("path too long: %s/%s", dir, name);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		bench_dief("cannot read %s: %s", path, strerror(errno));
	size_t cap = 1 << 16, n = 0;
	char *buf = bench_xrealloc(NULL, cap + 1);
	size_t got;
	while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap) {
			cap *= 2;
			buf = bench_xrealloc(buf, cap + 1);
		}
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

static void copy_key(const char *from_dir, const char *to_dir)
{
	char src[4200], dst[4200];
	if (mkdir(to_dir, 0700) != 0 && errno != EEXIST)
		bench_dief("cannot create %s: %s", to_dir, strerror(errno));
	path_join(src, sizeof src, from_dir, IG_LEDGER_KEY);
	path_join(dst, sizeof dst, to_dir, IG_LEDGER_KEY);
	size_t len;
	char *key = read_file(src, &len);
	FILE *f = fopen(dst, "wb");
	if (!f || chmod(dst, 0600) != 0 || fwrite(key, 1, len, f) != len || fclose(f) != 0)
		bench_dief("cannot write %s: %s", dst, strerror(errno));
	sodium_memzero(key, len);
	free(key);
}

/* A fresh file ledger in init_dir, imported into the scratch database; every
 * writer's key directory then gets a copy of ch.key (docs/LEDGER.md 16: one
 * key for the whole cluster) and nothing else. */
static void make_shared_ledger(const char *dsn, const char *init_dir, unsigned format)
{
	ig_error err = {0};
	uint8_t pk[IG_PK_BYTES];
	bench_remove_tree(init_dir);
	if (ig_ledger_init_format(init_dir, "bench", format, pk, &err) != IG_OK)
		bench_die("init", err.msg);
	char path[4200];
	size_t log_len, cp_len;
	path_join(path, sizeof path, init_dir, IG_LEDGER_LOG);
	char *log = read_file(path, &log_len);
	path_join(path, sizeof path, init_dir, IG_LEDGER_CHECKPOINT);
	char *cp = read_file(path, &cp_len);
	ig_pg *pg;
	if (ig_pg_connect(&pg, dsn, &err) != IG_OK)
		bench_die("connect to the scratch database", err.msg);
	if (ig_pg_create_schema(pg, &err) != IG_OK)
		bench_die("create the schema", err.msg);
	if (ig_pg_import(pg, (const uint8_t *)log, log_len, cp, cp_len, "bench", &err) != IG_OK)
		bench_die("import the genesis ledger", err.msg);
	ig_pg_close(pg);
	free(log);
	free(cp);
}

static void open_file_writer(writer *w, const char *dir, unsigned format)
{
	ig_error err = {0};
	uint8_t pk[IG_PK_BYTES];
	bench_remove_tree(dir);
	if (ig_ledger_init_format(dir, "bench", format, pk, &err) != IG_OK)
		bench_die("init the file ledger", err.msg);
	w->state = ig_state_new();
	if (!w->state)
		bench_die("out of memory", NULL);
	ig_ledger_open_opts o = {.writer = true};
	ig_state_replay_opts(w->state, &o);
	if (ig_ledger_open(&w->l, dir, &o, &err) != IG_OK)
		bench_die("open the file ledger", err.msg);
}

static void open_shared_writer(writer *w, const char *keydir, const char *dsn)
{
	ig_error err = {0};
	w->state = ig_state_new();
	w->sh.st = ig_state_new();
	if (!w->state || !w->sh.st)
		bench_die("out of memory", NULL);
	ig_ledger_open_opts o = {.writer = true};
	ig_state_replay_opts(w->state, &o);
	ig_ledger_shared_opts so = {
		.dsn = dsn,
		.broker = w->name,
		.on_follow = on_follow,
		.follow_ctx = w,
		.shadow_apply = shadow_apply,
		.shadow_reset = shadow_reset,
		.shadow_ctx = &w->sh,
	};
	if (ig_ledger_open_shared(&w->l, keydir, &o, &so, &err) != IG_OK)
		bench_die("ig_ledger_open_shared", err.msg);
}

static void start_writer(writer *w)
{
	if (pthread_create(&w->thread, NULL, writer_main, w) != 0)
		bench_die("cannot start a writer thread", NULL);
}

static void stop_writer(writer *w)
{
	atomic_store(&w->active, 0);
	atomic_store(&w->stop, 1);
	pthread_join(w->thread, NULL);
	ig_ledger_close(w->l);
	ig_state_free(w->state);
	if (w->sh.st)
		ig_state_free(w->sh.st);
}

/* ---- one timed phase ---- */

typedef struct phase_result {
	double rate;             /* own durable records per second, all appending writers */
	double self_cpu_us;      /* this process (all writers, their ledgers' threads, follow, states) per record */
	double pg_cpu_us;        /* PostgreSQL server per record; 0 when not readable */
	double per_commit;       /* records per transaction / per fdatasync */
	double commit_avg_us;    /* submit -> durable, mean over the phase's commits */
} phase_result;

static uint64_t sum_done(writer **ws, unsigned n)
{
	uint64_t s = 0;
	for (unsigned i = 0; i < n; i++)
		s += atomic_load(&ws[i]->done_ok);
	return s;
}

/* Lets `n_active` of the writers append for `seconds` (after `warmup`),
 * counting completions in the timed window only; then stops them and waits
 * until nothing is in flight, so the next phase starts clean. */
static phase_result run_phase(writer **ws, unsigned n_all, unsigned n_active, double warmup, double seconds,
                              int pg_pid)
{
	phase_result res = {0};
	ig_ledger_stats st0[MAX_WRITERS], st1[MAX_WRITERS];
	for (unsigned i = 0; i < n_active; i++)
		atomic_store(&ws[i]->active, 1);
	double t_warm = bench_now_s();
	while (bench_now_s() - t_warm < warmup)
		usleep(10000);
	for (unsigned i = 0; i < n_all; i++)
		ig_ledger_get_stats(ws[i]->l, &st0[i]);
	uint64_t d0 = sum_done(ws, n_all);
	uint64_t cpu0 = bench_proc_self_cpu_ns(), pg0 = pg_cpu_ns(pg_pid);
	double t0 = bench_now_s();
	while (bench_now_s() - t0 < seconds)
		usleep(10000);
	uint64_t d1 = sum_done(ws, n_all);
	uint64_t cpu1 = bench_proc_self_cpu_ns(), pg1 = pg_cpu_ns(pg_pid);
	double t1 = bench_now_s();
	for (unsigned i = 0; i < n_all; i++)
		ig_ledger_get_stats(ws[i]->l, &st1[i]);
	for (unsigned i = 0; i < n_active; i++)
		atomic_store(&ws[i]->active, 0);
	/* wait for the tail to drain (every writer: ledger stats say pending) */
	for (int tries = 0; tries < 3000; tries++) {
		uint64_t pending = 0;
		for (unsigned i = 0; i < n_all; i++) {
			ig_ledger_stats s;
			ig_ledger_get_stats(ws[i]->l, &s);
			pending += s.pending;
		}
		if (pending == 0)
			break;
		usleep(10000);
	}
	uint64_t d = d1 - d0;
	res.rate = (double)d / (t1 - t0);
	res.self_cpu_us = d ? (double)(cpu1 - cpu0) / 1e3 / (double)d : 0;
	res.pg_cpu_us = (d && pg_pid > 0) ? (double)(pg1 - pg0) / 1e3 / (double)d : 0;
	uint64_t batches = 0, recs = 0;
	double lat_weighted = 0;
	for (unsigned i = 0; i < n_all; i++) {
		uint64_t b = st1[i].batches - st0[i].batches;
		uint64_t r = st1[i].records_committed - st0[i].records_committed;
		batches += b;
		recs += r;
		/* avg_commit_us is a mean over the open's lifetime: recover the
		 * phase's mean from the two running sums */
		double s1 = (double)st1[i].avg_commit_us * (double)st1[i].records_committed;
		double s0 = (double)st0[i].avg_commit_us * (double)st0[i].records_committed;
		lat_weighted += s1 - s0;
	}
	res.per_commit = batches ? (double)recs / (double)batches : 0;
	res.commit_avg_us = recs ? lat_weighted / (double)recs : 0;
	return res;
}

static void print_phase(const char *label, const phase_result *r)
{
	printf("%s: %.0f records/s (%.1f records/commit, commit latency avg %.0f us, %.1f us CPU/record in the "
	       "writers' process",
	       label, r->rate, r->per_commit, r->commit_avg_us, r->self_cpu_us);
	if (r->pg_cpu_us > 0)
		printf(", %.1f us CPU/record in PostgreSQL", r->pg_cpu_us);
	printf(")\n");
	fflush(stdout);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof *v, cmp_double);
	return n == 0 ? 0 : (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2);
}

int main(int argc, char **argv)
{
	bench_name = "bench_shared";
	const char *dsn = NULL, *work_opt = NULL;
	uint64_t writers_n = 3, in_flight = 4096, rounds = 3, format = IG_FORMAT_VERSION, light = 1;
	double seconds = 3, warmup = 0.5;
	const cli_option opts[] = {
		CLI_TEXT("dsn", 0, &dsn),
		CLI_TEXT("work", 0, &work_opt),
		CLI_NUMBER("writers", 0, &writers_n, 1, MAX_WRITERS),
		CLI_NUMBER("in-flight", 0, &in_flight, 1, 1000000),
		CLI_NUMBER("light", 0, &light, 0, 64),
		CLI_NUMBER("rounds", 0, &rounds, 1, 50),
		CLI_NUMBER("format", 0, &format, 1, 2),
		CLI_REAL("seconds", 0, &seconds, 0.1, 600),
		CLI_REAL("warmup", 0, &warmup, 0, 60),
		CLI_HELP_OPTION(0),
		CLI_OPTIONS_END,
	};
	bench_parse(argc, argv, NULL, opts,
	            "usage: bench_shared --dsn DSN [--writers 3] [--in-flight 4096] [--rounds 3] [--seconds 3]\n"
	            "                    [--warmup 0.5] [--format 1|2] [--light 1] [--work DIR]\n"
	            "  --light N: then each writer with N appends in flight (0: skip)\n"
	            "  DSN: a libpq keyword=value string of a server where this user may CREATE DATABASE\n"
	            "  (bench/run.sh --shared starts a throwaway one with tests/pg/pgctl.sh)\n");
	if (!dsn)
		bench_die("--dsn is required", "give a libpq keyword=value DSN (bench/run.sh --shared makes one)");
	if (sodium_init() < 0)
		bench_die("sodium_init failed", NULL);
	unsigned nw = (unsigned)writers_n;

	/* the scratch database, next to the DSN's (a later dbname= wins in libpq) */
	PGconn *admin = pg_admin(dsn);
	char dbname[64], sql[256];
	snprintf(dbname, sizeof dbname, "iotguard_bench_%d", (int)getpid());
	snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", dbname);
	pg_exec(admin, sql);
	snprintf(sql, sizeof sql, "CREATE DATABASE %s", dbname);
	pg_exec(admin, sql);
	size_t dsn2_len = strlen(dsn) + 96;
	char *dsn2 = bench_xrealloc(NULL, dsn2_len);
	snprintf(dsn2, dsn2_len, "%s dbname=%s", dsn, dbname);
	PGconn *db = pg_admin(dsn2);
	int pg_pid = pg_postmaster_pid(db);
	char *version = pg_value(db, "SHOW server_version");
	char *sync_commit = pg_value(db, "SHOW synchronous_commit");
	char *fsync_on = pg_value(db, "SHOW fsync");

	bool made;
	const char *work = bench_work_dir(work_opt, &made);
	char init_dir[4200], file_dir[4200], keydir[MAX_WRITERS][4200];
	path_join(init_dir, sizeof init_dir, work, "init");
	path_join(file_dir, sizeof file_dir, work, "file-ledger");
	make_shared_ledger(dsn2, init_dir, (unsigned)format);
	for (unsigned i = 0; i < nw; i++) {
		char leaf[32];
		snprintf(leaf, sizeof leaf, "broker-%u", i + 1);
		path_join(keydir[i], sizeof keydir[i], work, leaf);
		bench_remove_tree(keydir[i]);
		copy_key(init_dir, keydir[i]);
	}
	bench_remove_tree(init_dir);

	printf("bench_shared: %u writers (ig_ledger_open_shared, one database), %" PRIu64
	       " appends in flight per writer, format %" PRIu64 ", ~%zu-byte enroll bodies; PostgreSQL %s "
	       "(fsync %s, synchronous_commit %s)%s; file ledger in %s; %ld CPUs\n",
	       nw, in_flight, format, make_body((uint8_t[512]){0}, 512, 0, 0), version, fsync_on, sync_commit,
	       pg_pid > 0 ? "" : " (server CPU not readable: not local or no access to its data directory)",
	       file_dir, sysconf(_SC_NPROCESSORS_ONLN));
	fflush(stdout);

	/* the file ledger: one writer, the embedded default */
	writer fw = {.index = 99, .name = "file"};
	atomic_store(&fw.in_flight_max, (uint32_t)in_flight);
	open_file_writer(&fw, file_dir, (unsigned)format);
	start_writer(&fw);
	writer *fws[1] = {&fw};

	/* the shared writers, all open (and following) for the whole run */
	static writer sw[MAX_WRITERS];
	writer *sws[MAX_WRITERS];
	char names[MAX_WRITERS][32];
	for (unsigned i = 0; i < nw; i++) {
		snprintf(names[i], sizeof names[i], "bench-broker-%u", i + 1);
		sw[i].index = i + 1;
		sw[i].name = names[i];
		atomic_store(&sw[i].in_flight_max, (uint32_t)in_flight);
		open_shared_writer(&sw[i], keydir[i], dsn2);
		sws[i] = &sw[i];
	}
	uint64_t height_open = ig_ledger_height(sw[0].l);
	for (unsigned i = 0; i < nw; i++)
		start_writer(&sw[i]);

	double wal0 = pg_number(db, "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn");
	double r_file[50], r_one[50], r_all[50];
	phase_result last_file = {0}, last_one = {0}, last_all = {0};
	double c_file[50], c_one[50], c_all[50], pc_one[50], pc_all[50];
	char label[128];
	for (unsigned r = 0; r < rounds; r++) {
		printf("-- round %u of %" PRIu64 "\n", r + 1, rounds);
		last_file = run_phase(fws, 1, 1, warmup, seconds, 0);
		print_phase("durable appends, file ledger, 1 writer", &last_file);
		last_one = run_phase(sws, nw, 1, warmup, seconds, pg_pid);
		snprintf(label, sizeof label, "durable appends, PostgreSQL, 1 writer (%u following)", nw - 1);
		print_phase(label, &last_one);
		last_all = run_phase(sws, nw, nw, warmup, seconds, pg_pid);
		snprintf(label, sizeof label, "durable appends, PostgreSQL, %u writers at once", nw);
		print_phase(label, &last_all);
		r_file[r] = last_file.rate, r_one[r] = last_one.rate, r_all[r] = last_all.rate;
		c_file[r] = last_file.self_cpu_us, c_one[r] = last_one.self_cpu_us, c_all[r] = last_all.self_cpu_us;
		pc_one[r] = last_one.pg_cpu_us, pc_all[r] = last_all.pg_cpu_us;
	}
	double wal1 = pg_number(db, "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn");

	/* Light load: each writer with `light` appends in flight, as a broker
	 * whose clients ask for one record at a time. The file ledger then makes
	 * one batch of the same total in flight; the shared writers cannot
	 * batch each other's records, so their transactions queue on the head
	 * row one after the other: this is the serialization point, seen from
	 * a broker as commit latency. */
	if (light > 0) {
		atomic_store(&fw.in_flight_max, (uint32_t)(light * nw));
		for (unsigned i = 0; i < nw; i++)
			atomic_store(&sw[i].in_flight_max, (uint32_t)light);
		phase_result lf = run_phase(fws, 1, 1, warmup, seconds, 0);
		snprintf(label, sizeof label, "light load, file ledger, 1 writer with %" PRIu64 " in flight", light * nw);
		print_phase(label, &lf);
		phase_result l1 = run_phase(sws, nw, 1, warmup, seconds, pg_pid);
		snprintf(label, sizeof label, "light load, PostgreSQL, 1 writer with %" PRIu64 " in flight", light);
		print_phase(label, &l1);
		phase_result ln = run_phase(sws, nw, nw, warmup, seconds, pg_pid);
		snprintf(label, sizeof label, "light load, PostgreSQL, %u writers with %" PRIu64 " in flight each", nw, light);
		print_phase(label, &ln);
		printf("RESULT shared.light.file.commit_avg_us %.0f\nRESULT shared.light.pg1.commit_avg_us %.0f\n"
		       "RESULT shared.light.pgN.commit_avg_us %.0f\nRESULT shared.light.pgN.rate %.0f\n"
		       "RESULT shared.light.pg1.rate %.0f\nRESULT shared.light.file.rate %.0f\n",
		       lf.commit_avg_us, l1.commit_avg_us, ln.commit_avg_us, ln.rate, l1.rate, lf.rate);
		fflush(stdout);
	}

	sql_ceiling(db, dsn2, nw, seconds > 2 ? 2 : seconds);

	/* every writer must end at the same head, having followed every record
	 * the others appended (each reaches the caller exactly once) */
	uint64_t target = 0;
	{
		char *h = pg_value(db, "SELECT height FROM iotguard.head");
		target = strtoull(h, NULL, 10);
		free(h);
	}
	uint64_t deadline = ig_mono_us() + 20 * 1000000ull;
	for (;;) {
		bool all = true;
		for (unsigned i = 0; i < nw; i++)
			if (ig_ledger_height(sw[i].l) != target ||
			    atomic_load(&sw[i].done_ok) + atomic_load(&sw[i].followed) != target - height_open)
				all = false;
		if (all || ig_mono_us() > deadline)
			break;
		usleep(20000);
	}
	bool consistent = true;
	uint64_t conflicts = 0, failed = 0;
	for (unsigned i = 0; i < nw; i++) {
		uint64_t own = atomic_load(&sw[i].done_ok), fol = atomic_load(&sw[i].followed);
		conflicts += atomic_load(&sw[i].conflicts);
		failed += atomic_load(&sw[i].failed) + atomic_load(&sw[i].unavailable);
		ig_ledger_shared_stats ss;
		ig_ledger_get_shared_stats(sw[i].l, &ss);
		printf("%s: %" PRIu64 " own records, %" PRIu64 " followed (stats: %" PRIu64 " followed, %" PRIu64
		       " conflicts, %" PRIu64 " reconnects), height %" PRIu64 "\n",
		       sw[i].name, own, fol, ss.followed, ss.conflicts, ss.reconnects, ig_ledger_height(sw[i].l));
		if (ig_ledger_height(sw[i].l) != target || own + fol != target - height_open)
			consistent = false;
	}
	/* What a broker joining (or restarting into) the cluster pays: export
	 * every record, the full check, replay into its state and the shadow;
	 * per record that is also about what following costs each broker. */
	{
		char joindir[4200];
		path_join(joindir, sizeof joindir, work, "broker-join");
		bench_remove_tree(joindir);
		copy_key(keydir[0], joindir);
		writer jw = {.index = 98, .name = "bench-broker-join"};
		uint64_t c0 = bench_proc_self_cpu_ns();
		double t0 = bench_now_s();
		open_shared_writer(&jw, joindir, dsn2);
		double dt = bench_now_s() - t0;
		double cpu = (double)(bench_proc_self_cpu_ns() - c0) / 1e9;
		uint64_t h = ig_ledger_height(jw.l);
		printf("a broker joining: ig_ledger_open_shared of %" PRIu64 " records (export, full check, replay into "
		       "state and shadow) %.2f s, %.2f s CPU in this process = %.1f us CPU/record\n",
		       h, dt, cpu, h ? cpu * 1e6 / (double)h : 0);
		printf("RESULT shared.open.records %" PRIu64 "\nRESULT shared.open.s %.2f\nRESULT shared.open.cpu_us %.1f\n", h,
		       dt, h ? cpu * 1e6 / (double)h : 0);
		fflush(stdout);
		ig_ledger_close(jw.l);
		ig_state_free(jw.state);
		ig_state_free(jw.sh.st);
		bench_remove_tree(joindir);
	}
	double records = pg_number(db, "SELECT count(*) FROM iotguard.records");
	double table_bytes = pg_number(db, "SELECT pg_total_relation_size('iotguard.records')");
	double heap_bytes = pg_number(db, "SELECT pg_relation_size('iotguard.records')");
	uint64_t appended = target - height_open;
	double wal_per = appended ? (wal1 - wal0) / (double)appended : 0;
	printf("PostgreSQL holds %.0f records, head at %" PRIu64 "; every writer at that head and each record "
	       "reached each writer once: %s; conflicts %" PRIu64 ", failed %" PRIu64 "\n",
	       records, target, consistent ? "yes" : "NO", conflicts, failed);
	printf("PostgreSQL bytes per record: %.0f WAL, %.0f table + indexes (%.0f heap), for %zu-byte frames\n",
	       wal_per, records > 0 ? table_bytes / records : 0, records > 0 ? heap_bytes / records : 0,
	       make_body((uint8_t[512]){0}, 512, 0, 0) + 63);

	double m_file = median(r_file, (unsigned)rounds), m_one = median(r_one, (unsigned)rounds),
	       m_all = median(r_all, (unsigned)rounds);
	double mc_file = median(c_file, (unsigned)rounds), mc_one = median(c_one, (unsigned)rounds),
	       mc_all = median(c_all, (unsigned)rounds);
	double mp_one = median(pc_one, (unsigned)rounds), mp_all = median(pc_all, (unsigned)rounds);
	printf("medians of %" PRIu64 " rounds: file %.0f, PostgreSQL 1 writer %.0f, %u writers %.0f records/s; "
	       "ratio %u writers/file %.2f, 1 writer/file %.2f, %u writers/1 writer %.2f\n",
	       rounds, m_file, m_one, nw, m_all, nw, m_file > 0 ? m_all / m_file : 0, m_file > 0 ? m_one / m_file : 0,
	       nw, m_one > 0 ? m_all / m_one : 0);
	printf("RESULT shared.file.rate %.0f\n", m_file);
	printf("RESULT shared.pg1.rate %.0f\n", m_one);
	printf("RESULT shared.pgN.rate %.0f\n", m_all);
	printf("RESULT shared.writers %u\n", nw);
	printf("RESULT shared.ratio.pgN_file %.3f\n", m_file > 0 ? m_all / m_file : 0);
	printf("RESULT shared.ratio.pg1_file %.3f\n", m_file > 0 ? m_one / m_file : 0);
	printf("RESULT shared.file.cpu_us %.1f\n", mc_file);
	printf("RESULT shared.pg1.cpu_us %.1f\n", mc_one);
	printf("RESULT shared.pgN.cpu_us %.1f\n", mc_all);
	if (pg_pid > 0) {
		printf("RESULT shared.pg1.server_cpu_us %.1f\n", mp_one);
		printf("RESULT shared.pgN.server_cpu_us %.1f\n", mp_all);
	}
	printf("RESULT shared.pgN.per_commit %.1f\n", last_all.per_commit);
	printf("RESULT shared.pgN.commit_avg_us %.0f\n", last_all.commit_avg_us);
	printf("RESULT shared.pg.wal_bytes_per_record %.0f\n", wal_per);
	printf("RESULT shared.pg.table_bytes_per_record %.0f\n", records > 0 ? table_bytes / records : 0);
	printf("RESULT shared.consistent %d\n", consistent ? 1 : 0);
	printf("RESULT shared.conflicts %" PRIu64 "\n", conflicts);
	fflush(stdout);

	for (unsigned i = 0; i < nw; i++)
		stop_writer(&sw[i]);
	stop_writer(&fw);
	bench_remove_tree(file_dir);
	for (unsigned i = 0; i < nw; i++)
		bench_remove_tree(keydir[i]);
	bench_work_dir_done(work, made, "BENCH_SHARED_KEEP");
	PQfinish(db);
	snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
	pg_exec(admin, sql);
	PQfinish(admin);
	free(version);
	free(sync_commit);
	free(fsync_on);
	free(dsn2);
	return consistent && conflicts == 0 && failed == 0 ? 0 : 1;
}
