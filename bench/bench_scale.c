/*
 * bench_scale.c: how the plugin copes with a million identities, plus the
 * fixtures (ledgers, tokens) that the connect and publish benchmarks share.
 *
 * Why this exists: the registry promises O(1) lookups at <= 300 bytes per
 * identity and the plugin promises to start within seconds on a large
 * ledger. Both are only believable when measured on a real broker with a
 * real ledger, and building that ledger one CLI call per identity would take
 * hours, so this writes it through lib/ with group commit.
 *
 * Identities are "dev-%07u" (devices) and "mon-%03u" (monitors). Their keys
 * are derived from the id (BLAKE2b keyed with a fixed benchmark string), so
 * the ledger builder and the token minter agree without key files. Only the
 * first --real-keys devices get real Ed25519 public keys; the rest get a
 * hash-derived 32-byte key, which costs the registry exactly the same memory
 * and avoids 1M scalar multiplications. Benchmark keys are public by
 * construction: never use them outside a benchmark.
 *
 *   bench_scale mkledger --dir D --cluster C --devices N [--monitors M] [--real-keys K]
 *   bench_scale tokens --cluster C --prefix dev|mon --count N [--lines L] [--ttl S]
 *   bench_scale run --plugin SO --work DIR [--identities N] [--port P] [--broker-cpu N] [--client-cpu N]
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>

#include "ig_common.h"
#include "ig_ledger.h"
#include "ig_record.h"
#include "ig_token.h"

#define SEED_KEY "iotguard-bench-seed-v1"

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("bench_scale: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static double mono_s(void)
{
	return (double)ig_mono_us() / 1e6;
}

static void bench_id(char *out, size_t cap, const char *prefix, uint32_t i)
{
	if (!strcmp(prefix, "mon"))
		snprintf(out, cap, "mon-%03" PRIu32, i);
	else
		snprintf(out, cap, "%s-%07" PRIu32, prefix, i);
}

static void bench_seed(uint8_t seed[IG_SEED_BYTES], const char *id)
{
	crypto_generichash(seed, IG_SEED_BYTES, (const uint8_t *)id, strlen(id), (const uint8_t *)SEED_KEY,
	                   sizeof SEED_KEY - 1);
}

static void bench_keypair(const char *id, uint8_t pk[IG_PK_BYTES], uint8_t sk[IG_SK_BYTES])
{
	uint8_t seed[IG_SEED_BYTES];
	bench_seed(seed, id);
	crypto_sign_seed_keypair(pk, sk, seed);
}

/* ---- mkledger ----------------------------------------------------------- */

typedef struct build_ctx {
	uint64_t done_ok, done_failed;
	int first_failure;
} build_ctx;

static void on_durable(void *ctx, int status, const ig_record *rec)
{
	(void)rec;
	build_ctx *b = ctx;
	if (status == IG_OK) {
		b->done_ok++;
	} else {
		if (!b->done_failed)
			b->first_failure = status;
		b->done_failed++;
	}
}

static int submit_enroll(ig_ledger *l, build_ctx *b, const char *id, ig_role role, const uint8_t pk[IG_PK_BYTES])
{
	ig_enroll e = {.role = role};
	snprintf(e.id, sizeof e.id, "%s", id);
	memcpy(e.pk, pk, IG_PK_BYTES);
	snprintf(e.by, sizeof e.by, "offline:bench");
	uint8_t body[512];
	int len = ig_enroll_encode(body, sizeof body, &e);
	if (len < 0)
		die("encoding the enroll record for %s failed (error %d)", id, len);
	return ig_ledger_submit(l, IG_REC_ENROLL, body, (size_t)len, on_durable, b);
}

/* Builds a ledger with `devices` devices and `monitors` monitors. Submits
 * without waiting, but keeps at most `window` records queued so memory stays
 * bounded on a million records. Returns seconds taken. */
static double mkledger(const char *dir, const char *cluster, uint32_t devices, uint32_t monitors, uint32_t real_keys,
                       bool quiet)
{
	ig_error err = {0};
	uint8_t ch_pk[IG_PK_BYTES];
	double t0 = mono_s();
	if (ig_ledger_init(dir, cluster, ch_pk, &err) != IG_OK)
		die("ig_ledger_init %s: %s", dir, err.msg);
	ig_ledger *l = NULL;
	ig_ledger_open_opts opts = {.writer = true};
	if (ig_ledger_open(&l, dir, &opts, &err) != IG_OK)
		die("ig_ledger_open %s: %s", dir, err.msg);

	build_ctx b = {0};
	const uint64_t window = 200000;
	uint64_t submitted = 0;
	uint64_t total = (uint64_t)devices + monitors;
	for (uint64_t i = 0; i < total; i++) {
		char id[IG_ID_MAX + 1];
		uint8_t pk[IG_PK_BYTES], sk[IG_SK_BYTES];
		ig_role role;
		if (i < monitors) {
			bench_id(id, sizeof id, "mon", (uint32_t)i);
			bench_keypair(id, pk, sk);
			role = IG_ROLE_MONITOR;
		} else {
			uint32_t d = (uint32_t)(i - monitors);
			bench_id(id, sizeof id, "dev", d);
			if (d < real_keys) {
				bench_keypair(id, pk, sk);
			} else {
				uint8_t seed[IG_SEED_BYTES];
				bench_seed(seed, id);
				memcpy(pk, seed, IG_PK_BYTES);   /* stands in for a key nobody connects with */
			}
			role = IG_ROLE_DEVICE;
		}
		int rc = submit_enroll(l, &b, id, role, pk);
		if (rc != IG_OK)
			die("ig_ledger_submit of enroll %s failed (error %d)", id, rc);
		submitted++;
		if ((submitted & 4095) == 0) {
			ig_ledger_poll(l);
			while (submitted - b.done_ok - b.done_failed > window) {
				usleep(1000);
				ig_ledger_poll(l);
			}
			if (!quiet && (submitted % 100000) == 0)
				fprintf(stderr, "  ... %" PRIu64 " records submitted, %" PRIu64 " durable\n", submitted, b.done_ok);
		}
	}
	if (ig_ledger_sync(l, &err) != IG_OK)
		die("ig_ledger_sync %s: %s", dir, err.msg);
	while (b.done_ok + b.done_failed < submitted)
		if (ig_ledger_poll(l) == 0)
			usleep(1000);
	uint64_t height = ig_ledger_height(l);
	ig_ledger_close(l);
	if (b.done_failed)
		die("%" PRIu64 " enroll records failed (first error %d)", b.done_failed, b.first_failure);
	if (height != total + 1)
		die("ledger height %" PRIu64 ", expected %" PRIu64, height, total + 1);
	return mono_s() - t0;
}

/* ---- tokens -------------------------------------------------------------- */

/* Writes `lines` lines "id token" cycling over count ids, one fresh token
 * (own nonce) per line, so a connect benchmark never reuses a token. */
static void write_tokens(FILE *out, const char *cluster, const char *prefix, uint32_t count, uint32_t lines,
                         uint32_t ttl)
{
	uint8_t (*sks)[IG_SK_BYTES] = calloc(count, IG_SK_BYTES);
	char (*ids)[IG_ID_MAX + 1] = calloc(count, IG_ID_MAX + 1);
	if (!sks || !ids)
		die("out of memory");
	for (uint32_t i = 0; i < count; i++) {
		uint8_t pk[IG_PK_BYTES];
		bench_id(ids[i], sizeof ids[i], prefix, i);
		bench_keypair(ids[i], pk, sks[i]);
	}
	uint64_t now = ig_now_ms() / 1000;
	for (uint32_t j = 0; j < lines; j++) {
		uint32_t i = j % count;
		char tok[IG_TOKEN_TEXT_MAX];
		int n = ig_token_mint(tok, sizeof tok, sks[i], cluster, ids[i], now, now + ttl, NULL);
		if (n < 0)
			die("minting a token for %s failed (error %d)", ids[i], n);
		fprintf(out, "%s %s\n", ids[i], tok);
	}
	sodium_memzero(sks, (size_t)count * IG_SK_BYTES);
	free(sks);
	free(ids);
}

/* ---- broker start and RSS ----------------------------------------------- */

typedef struct start_result {
	double start_s;          /* exec -> first authenticated CONNACK */
	double first_tcp_s;      /* exec -> first accepted TCP connection */
	long loaded_ms;          /* from the plugin's "loaded in N ms" line, -1 if absent */
	long rss_kb, rss_anon_kb, rss_file_kb, hwm_kb;
} start_result;

static void pin_to(int cpu)
{
	if (cpu < 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set) != 0)
		fprintf(stderr, "bench_scale: could not pin to cpu %d: %s (going on unpinned)\n", cpu, strerror(errno));
}

static long status_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long v = -1;
	size_t flen = strlen(field);
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, field, flen) && line[flen] == ':') {
			v = strtol(line + flen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

typedef struct probe {
	bool done;
	int rc;
} probe;

static void probe_on_connect(struct mosquitto *m, void *obj, int rc)
{
	(void)m;
	probe *p = obj;
	p->done = true;
	p->rc = rc;
}

/* One authenticated connect attempt. Returns 0 on CONNACK success, 1 if the
 * TCP connection was refused (port not open yet), -1 on a refused CONNACK or
 * another failure. */
static int try_auth_connect(int port, const char *id, const char *token, bool *tcp_ok)
{
	probe p = {0};
	struct mosquitto *m = mosquitto_new(id, true, &p);
	if (!m)
		die("mosquitto_new failed");
	mosquitto_connect_callback_set(m, probe_on_connect);
	mosquitto_username_pw_set(m, id, token);
	int rc = mosquitto_connect(m, "127.0.0.1", port, 30);
	if (rc != MOSQ_ERR_SUCCESS) {
		mosquitto_destroy(m);
		return 1;
	}
	*tcp_ok = true;
	double deadline = mono_s() + 10;
	while (!p.done && mono_s() < deadline) {
		rc = mosquitto_loop(m, 100, 1);
		if (rc != MOSQ_ERR_SUCCESS && !p.done)
			break;
	}
	int result = (p.done && p.rc == 0) ? 0 : -1;
	if (result == 0) {
		mosquitto_disconnect(m);
		mosquitto_loop(m, 100, 1);
	}
	mosquitto_destroy(m);
	return result;
}

/* Mosquitto started as root switches to the user "mosquitto", which cannot
 * read a ledger this process created with mode 0700: stay the current user. */
static const char *run_as_user(void)
{
	const struct passwd *pw = getpwuid(geteuid());
	return pw ? pw->pw_name : "root";
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		die("writing %s: %s", path, strerror(errno));
}

static long parse_loaded_ms(const char *log_path)
{
	FILE *f = fopen(log_path, "r");
	if (!f)
		return -1;
	char line[2048];
	long ms = -1;
	while (fgets(line, sizeof line, f)) {
		const char *p = strstr(line, "loaded in ");
		if (p && strstr(p, " ms"))
			ms = strtol(p + 10, NULL, 10);
	}
	fclose(f);
	return ms;
}

/* Starts mosquitto with the plugin on ledger_dir, times it to the first
 * authenticated connect of `id`, samples its memory, stops it. */
static start_result measure_start(const char *work, const char *tag, const char *plugin, const char *ledger_dir,
                                  const char *cluster, const char *id, int port, int broker_cpu)
{
	char conf_path[4096], log_path[4096], conf[8192];
	snprintf(conf_path, sizeof conf_path, "%s/scale-%s.conf", work, tag);
	snprintf(log_path, sizeof log_path, "%s/scale-%s.log", work, tag);
	snprintf(conf, sizeof conf,
	         "per_listener_settings false\nallow_anonymous false\nlistener %d 127.0.0.1\n"
	         "persistence false\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
	         "user %s\nplugin %s\nplugin_opt_ledger %s\nplugin_opt_stats_interval 0\n",
	         port, run_as_user(), plugin, ledger_dir);
	write_file(conf_path, conf);

	uint8_t pk[IG_PK_BYTES], sk[IG_SK_BYTES];
	bench_keypair(id, pk, sk);
	char token[IG_TOKEN_TEXT_MAX];
	uint64_t now = ig_now_ms() / 1000;
	if (ig_token_mint(token, sizeof token, sk, cluster, id, now, now + 300, NULL) < 0)
		die("minting a token for %s failed", id);
	sodium_memzero(sk, sizeof sk);

	start_result r = {.loaded_ms = -1};
	double t0 = mono_s();
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		pin_to(broker_cpu);
		FILE *log = freopen(log_path, "w", stderr);
		if (!log)
			_exit(127);
		execlp("mosquitto", "mosquitto", "-c", conf_path, (char *)NULL);
		fprintf(stderr, "exec mosquitto: %s\n", strerror(errno));
		_exit(127);
	}
	bool tcp_ok = false, ok = false;
	while (mono_s() - t0 < 60) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			die("mosquitto exited during start (status %d); see %s", st, log_path);
		bool tcp_before = tcp_ok;
		int rc = try_auth_connect(port, id, token, &tcp_ok);
		if (tcp_ok && !tcp_before)
			r.first_tcp_s = mono_s() - t0;
		if (rc == 0) {
			ok = true;
			break;
		}
		usleep(rc == 1 ? 2000 : 20000);
	}
	r.start_s = mono_s() - t0;
	if (!ok) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		die("no authenticated connect to the %s broker within 60 s; see %s", tag, log_path);
	}
	usleep(300000);   /* let the broker settle after its first client */
	r.rss_kb = status_kb(pid, "VmRSS");
	r.rss_anon_kb = status_kb(pid, "RssAnon");
	r.rss_file_kb = status_kb(pid, "RssFile");
	r.hwm_kb = status_kb(pid, "VmHWM");
	kill(pid, SIGTERM);
	int st;
	double tk = mono_s();
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (mono_s() - tk > 20) {
			fprintf(stderr, "bench_scale: %s broker ignored SIGTERM for 20 s; killing it\n", tag);
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			break;
		}
		usleep(10000);
	}
	r.loaded_ms = parse_loaded_ms(log_path);
	return r;
}

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	char path[8192];
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		if (unlink(path) != 0)
			fprintf(stderr, "bench_scale: could not remove %s: %s\n", path, strerror(errno));
	}
	closedir(d);
	if (rmdir(dir) != 0)
		fprintf(stderr, "bench_scale: could not remove %s: %s\n", dir, strerror(errno));
}

static long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static int cmd_run(const char *plugin, const char *work, uint32_t identities, int port, int broker_cpu,
                   int client_cpu)
{
	const char *cluster = "bench";
	char big[4096], small[4096], log_path[8192];
	snprintf(big, sizeof big, "%s/ledger-scale-big", work);
	snprintf(small, sizeof small, "%s/ledger-scale-one", work);
	remove_dir(big);
	remove_dir(small);
	pin_to(client_cpu);

	printf("== bench_scale: plugin start time and memory per identity ==\n");
	printf("broker pinned to cpu %d, builder/probe pinned to cpu %d; ids dev-NNNNNNN\n", broker_cpu, client_cpu);
	fflush(stdout);

	double build_s = mkledger(big, cluster, identities, 0, 16, false);
	snprintf(log_path, sizeof log_path, "%s/" IG_LEDGER_LOG, big);
	long log_bytes = file_size(log_path);
	printf("built a %u-identity ledger in %.2f s (%.0f enrolls/s, ledger.log %.1f MB, %.0f bytes/record)\n",
	       identities, build_s, identities / build_s, log_bytes / 1e6, (double)log_bytes / (identities + 1));
	mkledger(small, cluster, 1, 0, 1, true);
	fflush(stdout);

	char probe_id[IG_ID_MAX + 1];
	bench_id(probe_id, sizeof probe_id, "dev", 0);
	start_result one = measure_start(work, "one", plugin, small, cluster, probe_id, port, broker_cpu);
	/* The big ledger was just written, so its pages are in the page cache:
	 * this is a warm start (the usual case after a restart). */
	start_result bigr = measure_start(work, "big", plugin, big, cluster, probe_id, port, broker_cpu);

	printf("1-identity ledger:  start %.3f s (port open %.3f s), plugin 'loaded in' %ld ms, VmRSS %ld kB "
	       "(anon %ld, file %ld), VmHWM %ld kB\n",
	       one.start_s, one.first_tcp_s, one.loaded_ms, one.rss_kb, one.rss_anon_kb, one.rss_file_kb, one.hwm_kb);
	printf("%u-identity ledger: start %.3f s (port open %.3f s), plugin 'loaded in' %ld ms, VmRSS %ld kB "
	       "(anon %ld, file %ld), VmHWM %ld kB\n",
	       identities, bigr.start_s, bigr.first_tcp_s, bigr.loaded_ms, bigr.rss_kb, bigr.rss_anon_kb, bigr.rss_file_kb,
	       bigr.hwm_kb);
	double per_id = (double)(bigr.rss_kb - one.rss_kb) * 1024.0 / identities;
	double per_id_anon = (double)(bigr.rss_anon_kb - one.rss_anon_kb) * 1024.0 / identities;
	double per_id_hwm = (double)(bigr.hwm_kb - one.hwm_kb) * 1024.0 / identities;
	printf("RSS per identity: %.1f bytes (VmRSS delta / %u; anon only %.1f bytes; peak VmHWM delta %.1f bytes)\n",
	       per_id, identities, per_id_anon, per_id_hwm);
	printf("RESULT scale.start_s %.3f\n", bigr.start_s);
	printf("RESULT scale.loaded_ms %ld\n", bigr.loaded_ms);
	printf("RESULT scale.rss_per_identity_bytes %.1f\n", per_id);
	printf("RESULT scale.hwm_per_identity_bytes %.1f\n", per_id_hwm);
	printf("RESULT scale.build_s %.2f\n", build_s);
	fflush(stdout);

	remove_dir(big);
	remove_dir(small);
	return 0;
}

/* ---- argument handling -------------------------------------------------- */

static const char *arg_str(int argc, char **argv, const char *name, const char *def)
{
	for (int i = 2; i + 1 < argc; i++)
		if (!strcmp(argv[i], name))
			return argv[i + 1];
	return def;
}

static uint32_t arg_u32(int argc, char **argv, const char *name, uint32_t def)
{
	const char *v = arg_str(argc, argv, name, NULL);
	if (!v)
		return def;
	char *end = NULL;
	unsigned long x = strtoul(v, &end, 10);
	if (!end || *end || x > UINT32_MAX)
		die("%s needs a whole number, got '%s'", name, v);
	return (uint32_t)x;
}

static int arg_int(int argc, char **argv, const char *name, int def)
{
	const char *v = arg_str(argc, argv, name, NULL);
	return v ? atoi(v) : def;
}

static const char usage[] =
	"usage:\n"
	"  bench_scale mkledger --dir D --cluster C --devices N [--monitors M] [--real-keys K]\n"
	"  bench_scale tokens --cluster C [--prefix dev|mon] --count N [--lines L] [--ttl S]   (to stdout)\n"
	"  bench_scale run --plugin SO --work DIR [--identities N] [--port P] [--broker-cpu N] [--client-cpu N]\n";

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	if (ig_init() != IG_OK || mosquitto_lib_init() != MOSQ_ERR_SUCCESS)
		die("library initialisation failed");
	const char *cmd = argv[1];
	if (!strcmp(cmd, "mkledger")) {
		const char *dir = arg_str(argc, argv, "--dir", NULL);
		const char *cluster = arg_str(argc, argv, "--cluster", NULL);
		if (!dir || !cluster)
			die("mkledger needs --dir and --cluster");
		uint32_t devices = arg_u32(argc, argv, "--devices", 1000);
		uint32_t monitors = arg_u32(argc, argv, "--monitors", 0);
		uint32_t real = arg_u32(argc, argv, "--real-keys", devices);
		double s = mkledger(dir, cluster, devices, monitors, real, true);
		fprintf(stderr, "bench_scale: ledger %s: %u devices, %u monitors in %.2f s\n", dir, devices, monitors, s);
		return 0;
	}
	if (!strcmp(cmd, "tokens")) {
		const char *cluster = arg_str(argc, argv, "--cluster", NULL);
		if (!cluster)
			die("tokens needs --cluster");
		const char *prefix = arg_str(argc, argv, "--prefix", "dev");
		uint32_t count = arg_u32(argc, argv, "--count", 1000);
		uint32_t lines = arg_u32(argc, argv, "--lines", count);
		uint32_t ttl = arg_u32(argc, argv, "--ttl", 600);
		if (!count)
			die("--count must be at least 1");
		write_tokens(stdout, cluster, prefix, count, lines, ttl);
		return fflush(stdout) == 0 ? 0 : 1;
	}
	if (!strcmp(cmd, "run")) {
		const char *plugin = arg_str(argc, argv, "--plugin", NULL);
		const char *work = arg_str(argc, argv, "--work", NULL);
		if (!plugin || !work)
			die("run needs --plugin and --work");
		mkdir(work, 0700);
		return cmd_run(plugin, work, arg_u32(argc, argv, "--identities", 1000000), arg_int(argc, argv, "--port", 18890),
		               arg_int(argc, argv, "--broker-cpu", 1), arg_int(argc, argv, "--client-cpu", 0));
	}
	fputs(usage, stderr);
	return 2;
}
