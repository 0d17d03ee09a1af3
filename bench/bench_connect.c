/*
 * bench_connect.c: authenticated connect+disconnect rate against one or more
 * brokers, in the same run, with ratios.
 *
 * Why this exists: every device reconnect costs the cluster head a token
 * verification (one Ed25519 verify) on the broker's single thread. The
 * question operators ask is "how much slower than plain Mosquitto, and how
 * does it compare with Mosquitto's own dynamic-security plugin", so this
 * measures the three side by side under the same load and prints ratios.
 *
 * The load: K connections in flight, each doing TCP connect -> CONNECT ->
 * CONNACK -> DISCONNECT -> close, then starting over with the next
 * credential. libmosquitto is driven in non-blocking mode from our own
 * poll() loop (mosquitto_connect_async, mosquitto_socket, loop_read/write/
 * misc) because its own loop uses select(), which breaks past fd 1024.
 *
 * Credentials come from a file of "id password" lines (made before timing,
 * so minting cost is not measured). Slot s uses lines s, s+K, s+2K, ... so
 * with a line count and id count that are multiples of K, no two in-flight
 * connections ever share a client id (no session takeovers). A line is used
 * once unless the run outlasts the file; then the tool says tokens were
 * reused.
 *
 *   bench_connect [--concurrency K] [--duration S] [--rounds R] [--warmup S]
 *                 --target NAME:PORT:anon[:N] | NAME:PORT:file:PATH  (repeatable)
 *                 [--pid NAME=PID] ...   (broker pid: adds broker CPU per connection)
 *                 [--ratio A/B:GOAL] ...
 *
 * A ratio against an anonymous target also prints its ceiling: anonymous
 * broker CPU per connection / (that + one Ed25519 verify, timed here in a
 * tight loop, CPU time), i.e. the best a token-checking broker could do on
 * this CPU.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <mosquitto.h>
#include <sodium.h>

#include "bench.h"
#include "bench_proc.h"
#include "bench_stats.h"

#define MAX_TARGETS 8
#define MAX_ROUNDS 16
#define MAX_RATIOS 8
#define LAT_BUCKETS 4096          /* 50 us each, up to ~200 ms; beyond lands in the last */
#define LAT_BUCKET_US 50

typedef struct cred {
	char *id;
	char *password;   /* NULL for anonymous */
	size_t handle;    /* index of this id's libmosquitto handle */
} cred;

typedef struct target {
	char name[64];
	int port;
	int pid;                   /* broker pid for CPU accounting; 0 = unknown */
	cred *creds;
	size_t ncreds;
	char **ids;                /* distinct ids, one handle each */
	size_t nids;
	uint64_t next_line_round;  /* continues across rounds so lines stay fresh */
	bool reused;
	double rate[MAX_ROUNDS];
	uint64_t refused[MAX_ROUNDS], errors[MAX_ROUNDS];
	double p50_ms[MAX_ROUNDS], p99_ms[MAX_ROUNDS];
	double cpu_us[MAX_ROUNDS];  /* broker CPU per successful connection */
	double self_us[MAX_ROUNDS]; /* load generator CPU per successful connection */
} target;

typedef enum { SLOT_IDLE, SLOT_CONNECTING, SLOT_CLOSING } slot_state;

typedef struct slot {
	struct mosquitto *mosq;    /* the handle of the id in flight, or NULL */
	size_t handle;
	int index;
	slot_state state;
	bool connack;
	int connack_rc;
	double t_start;
	uint64_t conn_no;          /* how many this slot has started in this target */
} slot;

static void wipe_and_free(char *pw)
{
	volatile char *p = pw;
	while (*p)
		*p++ = '\0';
	free(pw);
}

static void load_creds(target *t, const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		bench_die("cannot open the credentials file", path);
	size_t cap = 1024;
	t->creds = calloc(cap, sizeof *t->creds);
	char line[2048];
	while (t->creds && fgets(line, sizeof line, f)) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		char *sp = strchr(line, ' ');
		if (!line[0] || !sp)
			continue;
		*sp = '\0';
		if (t->ncreds == cap) {
			cap *= 2;
			cred *bigger = realloc(t->creds, cap * sizeof *bigger);
			if (!bigger)
				bench_die("out of memory", NULL);
			t->creds = bigger;
		}
		t->creds[t->ncreds].id = strdup(line);
		t->creds[t->ncreds].password = strdup(sp + 1);
		if (!t->creds[t->ncreds].id || !t->creds[t->ncreds].password)
			bench_die("out of memory", NULL);
		t->ncreds++;
	}
	fclose(f);
	if (!t->creds || !t->ncreds)
		bench_die("no 'id password' lines in", path);
}

/* Median microseconds of one crypto_sign_verify_detached over a
 * token-sized message, the one crypto step an authenticated connect needs. */
static double ed25519_verify_us(void)
{
	uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES], sig[crypto_sign_BYTES], msg[130];
	if (sodium_init() < 0)
		bench_die("libsodium failed to initialise", NULL);
	crypto_sign_keypair(pk, sk);
	randombytes_buf(msg, sizeof msg);
	crypto_sign_detached(sig, NULL, msg, sizeof msg, sk);
	double us[5];
	for (int b = 0; b < 5; b++) {
		struct timespec t0, t1;
		/* CPU time, not wall time: the machine may be shared. */
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
		for (int i = 0; i < 100; i++)
			if (crypto_sign_verify_detached(sig, msg, sizeof msg, pk) != 0)
				bench_die("Ed25519 self-check failed", NULL);
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
		us[b] = ((double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3) / 100;
	}
	sodium_memzero(sk, sizeof sk);
	return bench_stats_median(us, 5);
}

static void anon_creds(target *t, size_t n)
{
	t->creds = calloc(n, sizeof *t->creds);
	if (!t->creds)
		bench_die("out of memory", NULL);
	for (size_t i = 0; i < n; i++) {
		char id[32];
		snprintf(id, sizeof id, "dev-%07zu", i);
		t->creds[i].id = strdup(id);
		if (!t->creds[i].id)
			bench_die("out of memory", NULL);
	}
	t->ncreds = n;
}

/* Gives every distinct id one handle index. A handle is reused for each of
 * that id's connections: creating a handle costs a socketpair and several
 * fcntl calls, which would make this process rather than the broker the
 * bottleneck. */
static void index_ids(target *t)
{
	size_t cap = 1;
	while (cap < t->ncreds * 2)
		cap *= 2;
	size_t *table = malloc(cap * sizeof *table);
	t->ids = calloc(t->ncreds, sizeof *t->ids);
	if (!table || !t->ids)
		bench_die("out of memory", NULL);
	for (size_t i = 0; i < cap; i++)
		table[i] = SIZE_MAX;
	for (size_t i = 0; i < t->ncreds; i++) {
		uint64_t h = 1469598103934665603ull;
		for (const char *p = t->creds[i].id; *p; p++)
			h = (h ^ (uint8_t)*p) * 1099511628211ull;
		size_t j = (size_t)h & (cap - 1);
		while (table[j] != SIZE_MAX && strcmp(t->ids[table[j]], t->creds[i].id) != 0)
			j = (j + 1) & (cap - 1);
		if (table[j] == SIZE_MAX) {
			table[j] = t->nids;
			t->ids[t->nids++] = t->creds[i].id;
		}
		t->creds[i].handle = table[j];
	}
	free(table);
}

/* ---- one phase: K slots against one broker for `duration` seconds ------- */

typedef struct phase {
	target *t;
	int k;
	uint64_t round_base;       /* line offset so each round uses new lines */
	bool counting;
	uint64_t ok, refused, errors;
	uint64_t cpu_ns_start, cpu_ns, self_ns_start, self_ns;
	struct mosquitto **handles;   /* one per distinct id of the target */
	bool *busy;
	uint32_t lat[LAT_BUCKETS];
} phase;

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
	(void)mosq;
	slot *s = obj;
	s->connack = true;
	s->connack_rc = rc;
}

static void slot_release(phase *ph, slot *s)
{
	if (s->mosq)
		ph->busy[s->handle] = false;
	s->mosq = NULL;
	s->state = SLOT_IDLE;
}

static void slot_start(phase *ph, slot *s)
{
	target *t = ph->t;
	const cred *c = NULL;
	/* Skip a line whose id is in flight on another slot (only possible when
	 * the id count is not a multiple of K): two connections with one client
	 * id would be a session takeover, not a connect. */
	for (int tries = 0; tries < 64; tries++) {
		uint64_t line_no = ph->round_base + s->conn_no * (uint64_t)ph->k + (uint64_t)s->index;
		s->conn_no++;
		c = &t->creds[line_no % t->ncreds];
		if (line_no >= t->ncreds && c->password)
			t->reused = true;
		if (!ph->busy[c->handle])
			break;
		c = NULL;
	}
	if (!c)
		return;   /* stays idle; tried again next turn */
	s->handle = c->handle;
	s->mosq = ph->handles[c->handle];
	ph->busy[c->handle] = true;
	mosquitto_user_data_set(s->mosq, s);
	if (c->password && mosquitto_username_pw_set(s->mosq, c->id, c->password) != MOSQ_ERR_SUCCESS)
		bench_die("mosquitto_username_pw_set failed", NULL);
	s->connack = false;
	s->t_start = bench_now_s();
	/* On a used handle this first closes the previous socket, if any. */
	int rc = mosquitto_connect_async(s->mosq, "127.0.0.1", t->port, 60);
	if (rc != MOSQ_ERR_SUCCESS) {
		if (ph->counting)
			ph->errors++;
		slot_release(ph, s);   /* retried on the next loop turn */
		return;
	}
	s->state = SLOT_CONNECTING;
}

static void record_latency(phase *ph, double secs)
{
	long us = (long)(secs * 1e6);
	long b = us / LAT_BUCKET_US;
	if (b < 0)
		b = 0;
	if (b >= LAT_BUCKETS)
		b = LAT_BUCKETS - 1;
	ph->lat[b]++;
}

static double lat_percentile(const phase *ph, double p)
{
	uint64_t total = 0;
	for (int i = 0; i < LAT_BUCKETS; i++)
		total += ph->lat[i];
	if (!total)
		return 0;
	uint64_t want = (uint64_t)(p * (double)total), seen = 0;
	for (int i = 0; i < LAT_BUCKETS; i++) {
		seen += ph->lat[i];
		if (seen > want)
			return (i + 0.5) * LAT_BUCKET_US / 1000.0;
	}
	return LAT_BUCKETS * LAT_BUCKET_US / 1000.0;
}

/* After read/write activity: finished handshakes go to DISCONNECT, closed
 * sockets start the next connection. */
static void slot_advance(phase *ph, slot *s, int io_rc)
{
	if (s->state == SLOT_CONNECTING && s->connack) {
		if (s->connack_rc == 0) {
			if (ph->counting) {
				ph->ok++;
				record_latency(ph, bench_now_s() - s->t_start);
			}
			/* Outside a callback, so libmosquitto writes the DISCONNECT now
			 * and closes the socket once it is out. */
			mosquitto_disconnect(s->mosq);
			s->state = SLOT_CLOSING;
		} else {
			if (ph->counting)
				ph->refused++;
			slot_release(ph, s);
			return;
		}
	}
	if (s->state == SLOT_CONNECTING && io_rc != MOSQ_ERR_SUCCESS) {
		if (ph->counting)
			ph->errors++;
		slot_release(ph, s);
		return;
	}
	if (s->state == SLOT_CLOSING && (mosquitto_socket(s->mosq) < 0 || io_rc != MOSQ_ERR_SUCCESS))
		slot_release(ph, s);
}

static void run_phase(phase *ph, slot *slots, double warmup, double duration, int pid)
{
	int k = ph->k;
	struct pollfd *pfd = calloc((size_t)k, sizeof *pfd);
	int *who = calloc((size_t)k, sizeof *who);
	if (!pfd || !who)
		bench_die("out of memory", NULL);
	target *t = ph->t;
	ph->handles = calloc(t->nids, sizeof *ph->handles);
	ph->busy = calloc(t->nids, sizeof *ph->busy);
	if (!ph->handles || !ph->busy)
		bench_die("out of memory", NULL);
	for (size_t i = 0; i < t->nids; i++) {
		ph->handles[i] = mosquitto_new(t->ids[i], true, NULL);
		if (!ph->handles[i])
			bench_die("mosquitto_new failed (too few file descriptors? each handle holds a socketpair)", t->ids[i]);
		mosquitto_connect_callback_set(ph->handles[i], on_connect);
	}
	for (int i = 0; i < k; i++) {
		slots[i].state = SLOT_IDLE;
		slots[i].mosq = NULL;
		slots[i].conn_no = 0;
	}
	double t0 = bench_now_s(), t_count = t0 + warmup, t_end = t_count + duration, last_misc = t0;
	ph->counting = false;
	for (;;) {
		double now = bench_now_s();
		if (!ph->counting && now >= t_count) {
			ph->counting = true;
			ph->cpu_ns_start = pid ? bench_proc_cpu_ns(pid) : 0;
			ph->self_ns_start = bench_proc_self_cpu_ns();
		}
		if (now >= t_end) {
			ph->cpu_ns = pid ? bench_proc_cpu_ns(pid) - ph->cpu_ns_start : 0;
			ph->self_ns = bench_proc_self_cpu_ns() - ph->self_ns_start;
			break;
		}
		int n = 0;
		for (int i = 0; i < k; i++) {
			slot *s = &slots[i];
			if (s->state == SLOT_IDLE)
				slot_start(ph, s);
			int fd = s->state == SLOT_IDLE ? -1 : mosquitto_socket(s->mosq);
			if (fd < 0) {
				if (s->state == SLOT_CLOSING)
					slot_release(ph, s);
				continue;
			}
			pfd[n].fd = fd;
			pfd[n].events = POLLIN | (mosquitto_want_write(s->mosq) ? POLLOUT : 0);
			pfd[n].revents = 0;
			who[n++] = i;
		}
		if (n == 0)
			continue;
		int pr = poll(pfd, (nfds_t)n, 100);
		if (pr < 0 && errno != EINTR)
			bench_die("poll failed", strerror(errno));
		for (int j = 0; j < n && pr > 0; j++) {
			if (!pfd[j].revents)
				continue;
			slot *s = &slots[who[j]];
			int rc = MOSQ_ERR_SUCCESS;
			if (pfd[j].revents & POLLOUT)
				rc = mosquitto_loop_write(s->mosq, 1);
			if (rc == MOSQ_ERR_SUCCESS && (pfd[j].revents & (POLLIN | POLLHUP | POLLERR)))
				rc = mosquitto_loop_read(s->mosq, 1);
			slot_advance(ph, s, rc);
		}
		if (now - last_misc > 1.0) {
			for (int i = 0; i < k; i++)
				if (slots[i].state != SLOT_IDLE)
					mosquitto_loop_misc(slots[i].mosq);
			last_misc = now;
		}
	}
	/* Abandon whatever is still in flight: destroying a handle closes its
	 * socket. */
	for (size_t i = 0; i < t->nids; i++)
		mosquitto_destroy(ph->handles[i]);
	free(ph->handles);
	free(ph->busy);
	free(pfd);
	free(who);
}

/* ---- main ------------------------------------------------------------- */

static target *find_target(target *ts, int nt, const char *name)
{
	for (int i = 0; i < nt; i++)
		if (!strcmp(ts[i].name, name))
			return &ts[i];
	return NULL;
}

int main(int argc, char **argv)
{
	target targets[MAX_TARGETS];
	int nt = 0;
	uint64_t k_o = 64, rounds_o = 3;
	double duration = 3.0, warmup = 0.5;
	const char *ratios[MAX_RATIOS], *specs[MAX_TARGETS], *pids[MAX_TARGETS];
	size_t nratios = 0, nspecs = 0, npids = 0;
	memset(targets, 0, sizeof targets);
	bench_name = "bench_connect";
	const cli_option opts[] = {
		CLI_NUMBER("concurrency", 0, &k_o, 1, 10000),
		CLI_REAL("duration", 0, &duration, 0.001, 3600),
		CLI_REAL("warmup", 0, &warmup, 0, 3600),
		CLI_NUMBER("rounds", 0, &rounds_o, 1, MAX_ROUNDS),
		CLI_LIST("target", 0, specs, &nspecs, MAX_TARGETS),
		CLI_LIST("pid", 0, pids, &npids, MAX_TARGETS),
		CLI_LIST("ratio", 0, ratios, &nratios, MAX_RATIOS),
		CLI_HELP_OPTION(0),
		CLI_OPTIONS_END,
	};
	bench_parse(argc, argv, NULL, opts,
	            "usage: bench_connect [--concurrency K] [--duration S] [--warmup S] [--rounds R]\n"
	            "         --target NAME:PORT:anon[:N] | --target NAME:PORT:file:PATH ... [--pid NAME=PID]\n"
	            "         [--ratio A/B:TARGET]\n");
	int k = (int)k_o, rounds = (int)rounds_o;
	if (!nspecs || nspecs > MAX_TARGETS)   /* the parser caps nspecs; saying so lets the compiler see it */
		bench_die("need at least one --target", NULL);
	for (size_t i = 0; i < nspecs; i++) {
		const char *v = specs[i];
		target *t = &targets[nt++];
		char spec[4096];
		snprintf(spec, sizeof spec, "%s", v);
		char *name = strtok(spec, ":"), *port = strtok(NULL, ":"), *mode = strtok(NULL, ":"),
		     *rest = strtok(NULL, "");
		if (!name || !port || !mode)
			bench_die("--target needs NAME:PORT:anon[:N] or NAME:PORT:file:PATH, got", v);
		snprintf(t->name, sizeof t->name, "%s", name);
		t->port = atoi(port);
		if (!strcmp(mode, "anon"))
			anon_creds(t, rest ? (size_t)atol(rest) : 1024);
		else if (!strcmp(mode, "file") && rest)
			load_creds(t, rest);
		else
			bench_die("unknown --target mode (anon or file:PATH)", mode);
		index_ids(t);
	}
	for (size_t i = 0; i < npids; i++) {
		/* NAME=PID naming a --target */
		char spec[128];
		snprintf(spec, sizeof spec, "%s", pids[i]);
		char *eq = strchr(spec, '=');
		target *t = NULL;
		if (eq) {
			*eq = '\0';
			t = find_target(targets, nt, spec);
		}
		if (!t)
			bench_die("--pid needs NAME=PID naming a --target", pids[i]);
		t->pid = atoi(eq + 1);
	}

	/* Each handle holds a socketpair: 2 fds per distinct id. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	mosquitto_lib_init();
	slot *slots = calloc((size_t)k, sizeof *slots);
	if (!slots)
		bench_die("out of memory", NULL);
	for (int i = 0; i < k; i++)
		slots[i].index = i;

	printf("== bench_connect: connect+CONNACK+disconnect per second, %d in flight, %d rounds x %.1f s "
	       "(+%.1f s warm-up) per broker, rounds interleaved ==\n",
	       k, rounds, duration, warmup);
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < nt; i++) {
			target *t = &targets[i];
			phase *ph = calloc(1, sizeof *ph);
			if (!ph)
				bench_die("out of memory", NULL);
			ph->t = t;
			ph->k = k;
			ph->round_base = t->next_line_round;
			run_phase(ph, slots, warmup, duration, t->pid);
			uint64_t max_conn = 0;
			for (int s = 0; s < k; s++)
				if (slots[s].conn_no > max_conn)
					max_conn = slots[s].conn_no;
			t->next_line_round += max_conn * (uint64_t)k;
			t->rate[r] = (double)ph->ok / duration;
			t->refused[r] = ph->refused;
			t->errors[r] = ph->errors;
			t->p50_ms[r] = lat_percentile(ph, 0.50);
			t->p99_ms[r] = lat_percentile(ph, 0.99);
			t->cpu_us[r] = ph->ok ? (double)ph->cpu_ns / 1e3 / (double)ph->ok : 0;
			t->self_us[r] = ph->ok ? (double)ph->self_ns / 1e3 / (double)ph->ok : 0;
			printf("round %d %-10s %9.0f conn/s  CPU us/conn: broker %6.1f, load gen %5.1f  CONNACK p50 %.2f ms p99 %.2f ms"
			       "  refused %" PRIu64 " errors %" PRIu64 "\n",
			       r + 1, t->name, t->rate[r], t->cpu_us[r], t->self_us[r], t->p50_ms[r], t->p99_ms[r], ph->refused,
			       ph->errors);
			fflush(stdout);
			free(ph);
		}
	}
	printf("-- median of %d rounds --\n", rounds);
	for (int i = 0; i < nt; i++) {
		target *t = &targets[i];
		uint64_t refused = 0, errors = 0;
		for (int r = 0; r < rounds; r++) {
			refused += t->refused[r];
			errors += t->errors[r];
		}
		double m = bench_stats_median(t->rate, (size_t)rounds);
		printf("%-10s %9.0f conn/s  CPU us/conn: broker %6.1f, load gen %5.1f  p50 %.2f ms  p99 %.2f ms  refused %" PRIu64
		       " errors %" PRIu64 "%s\n",
		       t->name, m, bench_stats_median(t->cpu_us, (size_t)rounds), bench_stats_median(t->self_us, (size_t)rounds),
		       bench_stats_median(t->p50_ms, (size_t)rounds), bench_stats_median(t->p99_ms, (size_t)rounds), refused, errors,
		       t->reused ? "  (credential lines reused)" : "");
		printf("RESULT connect.%s.rate %.0f\n", t->name, m);
		if (t->pid)
			printf("RESULT connect.%s.cpu_us %.1f\n", t->name, bench_stats_median(t->cpu_us, (size_t)rounds));
		printf("RESULT connect.%s.refused %" PRIu64 "\n", t->name, refused);
	}
	for (size_t i = 0; i < nratios; i++) {
		char spec[256];
		snprintf(spec, sizeof spec, "%s", ratios[i]);
		char *a = strtok(spec, "/"), *b = strtok(NULL, ":"), *goal = strtok(NULL, "");
		target *ta = a ? find_target(targets, nt, a) : NULL, *tb = b ? find_target(targets, nt, b) : NULL;
		if (!ta || !tb)
			bench_die("--ratio names an unknown target", ratios[i]);
		double ra = bench_stats_median(ta->rate, (size_t)rounds), rb = bench_stats_median(tb->rate, (size_t)rounds);
		double q = rb > 0 ? ra / rb : 0;
		printf("ratio %s/%s = %.3f", a, b, q);
		if (goal)
			printf("  (target >= %s)", goal);
		printf("\n");
		printf("RESULT connect.ratio.%s_%s %.3f\n", a, b, q);
		double ca = bench_stats_median(ta->cpu_us, (size_t)rounds), cb = bench_stats_median(tb->cpu_us, (size_t)rounds);
		if (ca > 0 && cb > 0) {
			/* what the ratio would be on a dedicated broker core */
			printf("capacity ratio %s/%s = %.3f (broker CPU per connection %.1f vs %.1f us)\n", a, b, cb / ca, ca, cb);
			printf("RESULT connect.capacity.%s_%s %.3f\n", a, b, cb / ca);
			bool b_anonymous = tb->ncreds && !tb->creds[0].password;
			if (b_anonymous && ta != tb) {
				double v = ed25519_verify_us();
				printf("ceiling %s/%s = %.3f (anonymous connect %.1f us + one Ed25519 verify %.1f us on this CPU)\n",
				       a, b, cb / (cb + v), cb, v);
				printf("RESULT connect.ceiling.%s_%s %.3f\n", a, b, cb / (cb + v));
				printf("RESULT connect.verify_us %.1f\n", v);
			}
		}
	}
	free(slots);
	for (int i = 0; i < nt; i++) {
		for (size_t j = 0; j < targets[i].ncreds; j++) {
			free(targets[i].creds[j].id);
			if (targets[i].creds[j].password)
				wipe_and_free(targets[i].creds[j].password);
		}
		free(targets[i].creds);
		free(targets[i].ids);   /* points into creds */
	}
	mosquitto_lib_cleanup();
	return 0;
}
