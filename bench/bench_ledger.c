/*
 * bench_ledger.c: how fast the ledger makes records durable, and how fast it
 * checks and replays a large log.
 *
 * Why this exists: the design claims that group commit (one fdatasync per
 * batch) is what makes >= 100k durable appends/s possible, and that a 1M
 * record ledger verifies at >= 1M records/s and replays in a few seconds at
 * broker start. These figures check the claims on the machine at hand; the
 * one-fdatasync-per-record run shows what group commit buys.
 *
 * Usage: bench_ledger [WORKDIR]   (default: a fresh directory under /var/tmp;
 * the run needs about 300 MB of disk and is removed at the end unless
 * BENCH_LEDGER_KEEP is set). BENCH_LEDGER_ONLY=threads,async,per-record,
 * single,big runs a subset.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ig_ledger.h"
#include "ig_record.h"
#include "bench.h"
#include "bench_proc.h"

#define BLOCKING_THREADS 64
#define ASYNC_IN_FLIGHT 4096
#define BIG_RECORDS 1000000u

static double seconds_since(uint64_t start_us)
{
	return (double)(ig_mono_us() - start_us) / 1e6;
}

static void die(const char *what, const ig_error *err)
{
	bench_die(what, err ? err->msg : "failed");
}

/* An enroll body of about 190 bytes: 64-char id, 80-char "by". */
static size_t make_body(uint8_t *out, size_t cap, unsigned thread, uint64_t n)
{
	ig_enroll e;
	memset(&e, 0, sizeof e);
	int len = snprintf(e.id, sizeof e.id, "bench-%02u-%012" PRIu64 "-", thread, n);
	memset(e.id + len, 'x', IG_ID_MAX - (size_t)len);
	e.id[IG_ID_MAX] = '\0';
	e.role = IG_ROLE_DEVICE;
	memcpy(e.pk, &n, sizeof n);
	memset(e.by, 'a', IG_BY_MAX);
	memcpy(e.by, "offline:bench-", 14);
	int blen = ig_record_enroll_encode(out, cap, &e);
	if (blen < 0) {
		fprintf(stderr, "bench_ledger: cannot encode an enroll body\n");
		exit(1);
	}
	return (size_t)blen;
}

static void fresh_ledger_format(const char *dir, unsigned format)
{
	ig_error err = {0};
	uint8_t pk[IG_PK_BYTES];
	bench_remove_tree(dir);
	if (ig_ledger_init_format(dir, "bench", format, pk, &err) != IG_OK)
		die("init", &err);
}

/* A ledger of the default format (2: SHA-256 tree, tiles kept in tlog/). */
static void fresh_ledger(const char *dir)
{
	fresh_ledger_format(dir, IG_FORMAT_VERSION);
}

static ig_ledger *open_writer(const char *dir, uint32_t max_batch)
{
	ig_ledger *l = NULL;
	ig_error err = {0};
	ig_ledger_open_opts opts = {.writer = true, .max_batch = max_batch};
	if (ig_ledger_open(&l, dir, &opts, &err) != IG_OK)
		die("open", &err);
	return l;
}

/* ---- blocking appends from many threads ---- */

typedef struct blocking_run {
	ig_ledger *l;
	atomic_bool stop;
	atomic_uint_fast64_t appended;
} blocking_run;

typedef struct blocking_thread {
	blocking_run *run;
	unsigned id;
} blocking_thread;

static void *blocking_main(void *arg)
{
	blocking_thread *t = arg;
	uint8_t body[512];
	ig_error err = {0};
	uint64_t n = 0;
	while (!atomic_load(&t->run->stop)) {
		size_t len = make_body(body, sizeof body, t->id, n++);
		if (ig_ledger_append(t->run->l, IG_REC_ENROLL, body, len, NULL, &err) != IG_OK)
			die("append", &err);
		atomic_fetch_add(&t->run->appended, 1);
	}
	return NULL;
}

static void bench_blocking(const char *dir, unsigned threads, uint32_t max_batch, double seconds, const char *label)
{
	fresh_ledger(dir);
	blocking_run run = {.l = open_writer(dir, max_batch)};
	pthread_t *th = calloc(threads, sizeof *th);
	blocking_thread *ts = calloc(threads, sizeof *ts);
	uint64_t start = ig_mono_us();
	double cpu0 = bench_proc_self_cpu_s();
	for (unsigned i = 0; i < threads; i++) {
		ts[i] = (blocking_thread){.run = &run, .id = i};
		if (pthread_create(&th[i], NULL, blocking_main, &ts[i]) != 0) {
			fprintf(stderr, "bench_ledger: pthread_create failed\n");
			exit(1);
		}
	}
	usleep((useconds_t)(seconds * 1e6));
	atomic_store(&run.stop, true);
	for (unsigned i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	double secs = seconds_since(start);
	double cpu = bench_proc_self_cpu_s() - cpu0;
	ig_ledger_stats st;
	ig_ledger_get_stats(run.l, &st);
	uint64_t n = atomic_load(&run.appended);
	printf("durable appends: %.0f records/s (%s, %.1f records/fsync avg, commit latency avg %" PRIu64
	       " us, max %" PRIu64 " us, %.1f us CPU/record, %.2f CPUs busy)\n",
	       (double)n / secs, label, st.batches ? (double)st.records_committed / (double)st.batches : 0.0,
	       st.avg_commit_us, st.max_commit_us, n ? cpu * 1e6 / (double)n : 0.0, cpu / secs);
	fflush(stdout);
	ig_ledger_close(run.l);
	free(th);
	free(ts);
}

/* ---- an event-loop submitter keeping many appends in flight ---- */

typedef struct async_run {
	uint64_t in_flight;
	uint64_t done;
} async_run;

static void async_done(void *ctx, int status, const ig_record *rec)
{
	(void)rec;
	async_run *a = ctx;
	if (status != IG_OK) {
		fprintf(stderr, "bench_ledger: async append failed (%d)\n", status);
		exit(1);
	}
	a->in_flight--;
	a->done++;
}

/* Appends until `seconds` pass or `limit` records are durable; returns the
 * rate. */
static double run_async(ig_ledger *l, double seconds, uint64_t limit, uint64_t *out_done, double *cpu_us_per_record)
{
	async_run a = {0};
	uint8_t body[512];
	uint64_t submitted = 0;
	uint64_t start = ig_mono_us();
	uint64_t deadline = start + (uint64_t)(seconds * 1e6);
	int efd = ig_ledger_event_fd(l);
	double cpu0 = bench_proc_self_cpu_s();
	for (;;) {
		bool more = ig_mono_us() < deadline && submitted < limit;
		while (more && a.in_flight < ASYNC_IN_FLIGHT && submitted < limit) {
			size_t len = make_body(body, sizeof body, 99, submitted);
			if (ig_ledger_submit(l, IG_REC_ENROLL, body, len, async_done, &a) != IG_OK) {
				fprintf(stderr, "bench_ledger: submit failed\n");
				exit(1);
			}
			a.in_flight++;
			submitted++;
		}
		if (!more && a.in_flight == 0)
			break;
		struct pollfd pfd = {.fd = efd, .events = POLLIN};
		if (poll(&pfd, 1, 1000) < 0 && errno != EINTR) {
			perror("poll");
			exit(1);
		}
		ig_ledger_poll(l);
	}
	double secs = seconds_since(start);
	*out_done = a.done;
	if (cpu_us_per_record)
		*cpu_us_per_record = a.done ? (bench_proc_self_cpu_s() - cpu0) * 1e6 / (double)a.done : 0.0;
	return (double)a.done / secs;
}

static double async_format_run(const char *dir, unsigned format, double seconds, ig_ledger_stats *st,
                               double *cpu_us)
{
	fresh_ledger_format(dir, format);
	ig_ledger *l = open_writer(dir, 0);
	uint64_t done;
	double rate = run_async(l, seconds, UINT64_MAX, &done, cpu_us);
	ig_ledger_get_stats(l, st);
	ig_ledger_close(l);
	return rate;
}

/* Format 2 (the default: SHA-256 leaves and the C2SP tiles written after
 * every batch) against format 1 (BLAKE2b tree, no tiles) in the same run:
 * what the tiles and the tree cost the append path. */
static void bench_async(const char *dir, double seconds)
{
	ig_ledger_stats st;
	double cpu_us;
	double rate = async_format_run(dir, IG_FORMAT_V2, seconds, &st, &cpu_us);
	printf("durable appends: %.0f records/s (async submit+poll, %d in flight, %.1f records/fsync avg, "
	       "commit latency avg %" PRIu64 " us, %.1f us CPU/record; format 2 with tiles)\n",
	       rate, ASYNC_IN_FLIGHT, st.batches ? (double)st.records_committed / (double)st.batches : 0.0,
	       st.avg_commit_us, cpu_us);
	fflush(stdout);
	double rate1 = async_format_run(dir, IG_FORMAT_V1, seconds, &st, &cpu_us);
	printf("format 1 (no tiles) in the same run: %.0f records/s, commit latency avg %" PRIu64 " us, %.1f us "
	       "CPU/record; ratio format 2 with tiles / format 1 = %.2f\n",
	       rate1, st.avg_commit_us, cpu_us, rate1 > 0 ? rate / rate1 : 0.0);
	fflush(stdout);
}

/* ---- a large ledger: build, verify, replay ---- */

static int count_record(void *ctx, const ig_record *rec, ig_error *err)
{
	(void)rec;
	(void)err;
	(*(uint64_t *)ctx)++;
	return IG_OK;
}

static void bench_big(const char *dir)
{
	fresh_ledger(dir);
	ig_ledger *l = open_writer(dir, 0);
	uint64_t done;
	uint64_t start = ig_mono_us();
	double rate = run_async(l, 1e9, BIG_RECORDS, &done, NULL);
	ig_error err = {0};
	if (ig_ledger_sync(l, &err) != IG_OK)
		die("sync", &err);
	ig_ledger_close(l);
	char path[4300];
	snprintf(path, sizeof path, "%s/%s", dir, IG_LEDGER_LOG);
	struct stat sb;
	stat(path, &sb);
	double mb = (double)sb.st_size / 1e6;
	printf("built a %" PRIu64 "-record ledger (%.0f MB) through the writer in %.1f s (%.0f records/s)\n",
	       done + 1, mb, seconds_since(start), rate);
	fflush(stdout);

	double best = 0;
	for (int run = 0; run < 3; run++) {
		ig_verify_result res;
		start = ig_mono_us();
		double cpu0 = bench_proc_self_cpu_s();
		if (ig_ledger_verify(dir, NULL, NULL, NULL, NULL, &res, &err) != IG_OK)
			die("verify", &err);
		double secs = seconds_since(start);
		double r = (double)res.height / secs;
		if (r > best)
			best = r;
		printf("  verify run %d: %.0f records/s (%" PRIu64 " records, %.0f MB/s, %.2f s, %.2f s CPU)\n",
		       run + 1, r, res.height, mb / secs, secs, bench_proc_self_cpu_s() - cpu0);
		fflush(stdout);
	}
	printf("verify: %.0f records/s (best of 3 runs)\n", best);
	fflush(stdout);

	uint64_t seen = 0;
	ig_ledger_open_opts opts = {.writer = true, .on_record = count_record, .ctx = &seen};
	start = ig_mono_us();
	if (ig_ledger_open(&l, dir, &opts, &err) != IG_OK)
		die("writer open", &err);
	double secs = seconds_since(start);
	printf("writer open (lock, key, full scan and replay of %" PRIu64 " records): %.2f s\n", seen, secs);
	fflush(stdout);
	ig_ledger_close(l);

	opts = (ig_ledger_open_opts){.writer = false};
	start = ig_mono_us();
	if (ig_ledger_open(&l, dir, &opts, &err) != IG_OK)
		die("read-only open", &err);
	printf("read-only open of the same ledger: %.2f s\n", seconds_since(start));
	ig_ledger_close(l);
}

int main(int argc, char **argv)
{
	bench_name = "bench_ledger";
	if (ig_init() != IG_OK) {
		fprintf(stderr, "bench_ledger: libsodium failed to initialise\n");
		return 1;
	}
	char work[4096];
	bool made = false;
	if (argc > 1) {
		snprintf(work, sizeof work, "%s", argv[1]);
		if (mkdir(work, 0700) != 0 && errno != EEXIST) {
			fprintf(stderr, "bench_ledger: cannot create %s: %s\n", work, strerror(errno));
			return 1;
		}
	} else {
		snprintf(work, sizeof work, "/var/tmp/bench-ledger-XXXXXX");
		if (!mkdtemp(work)) {
			perror("mkdtemp");
			return 1;
		}
		made = true;
	}
	char dir[4200];
	snprintf(dir, sizeof dir, "%s/ledger", work);
	printf("bench_ledger: ledger in %s, ~%zu-byte enroll bodies, %ld CPUs\n", dir,
	       make_body((uint8_t[512]){0}, 512, 0, 0), sysconf(_SC_NPROCESSORS_ONLN));
	fflush(stdout);

	/* BENCH_LEDGER_ONLY=threads,async,per-record,single,big runs a subset. */
	const char *only = getenv("BENCH_LEDGER_ONLY");
#define RUN(name) (!only || strstr(only, name))
	uint64_t start = ig_mono_us();
	if (RUN("threads"))
		bench_blocking(dir, BLOCKING_THREADS, 0, 3.0, "64 threads, blocking append");
	if (RUN("async"))
		bench_async(dir, 3.0);
	if (RUN("per-record"))
		bench_blocking(dir, BLOCKING_THREADS, 1, 2.0, "64 threads, max_batch 1 = one fdatasync per record");
	if (RUN("single"))
		bench_blocking(dir, 1, 0, 1.0, "1 thread, blocking append");
	if (RUN("big"))
		bench_big(dir);

	if (getenv("BENCH_LEDGER_KEEP")) {
		printf("kept the ledger in %s\n", dir);
	} else {
		bench_remove_tree(dir);
		if (made)
			rmdir(work);
	}
	printf("total bench time: %.1f s\n", seconds_since(start));
	return 0;
}
