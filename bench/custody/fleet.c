/*
 * fleet.c: the custody cluster bench_custody_e2e runs on (see fleet.h for
 * why it is shared by its benchmarks).
 */
#include "fleet.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "bench_broker.h"
#include "bench_id.h"
#include "bench_proc.h"
#include "ig_keyfile.h"
#include "ig_token.h"

#define ADMIN_ID "adm-0000000"
#define MONITOR_ID "mon-000"

/* ---- set-up ------------------------------------------------------------------ */

static void sibling(char *out, const char *given, const char *root, const char *rel)
{
	if (given)
		snprintf(out, FLEET_PATH, "%s", given);
	else
		snprintf(out, FLEET_PATH, "%s/%s", root, rel);
	if (access(out, R_OK) != 0)
		bench_dief("%s is missing (%s): build the project first (meson compile -C BUILD), or name it with an option",
		           out, strerror(errno));
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof sa;
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
		bench_die("finding a free port", strerror(errno));
	close(fd);
	return ntohs(sa.sin_port);
}

/* The fleet whose processes must not outlive this program: a bench that
 * dies (bench_die exits) or is interrupted stops its broker and agents. */
static fleet *g_current;

static void stop_children_at_exit(void)
{
	if (!g_current)
		return;
	fleet *f = g_current;
	g_current = NULL;
	fleet_agents_stop(f);
	fleet_broker_stop(f);
}

static void on_signal(int sig)
{
	/* Only async-signal-safe calls: SIGTERM to every child, then leave. */
	if (g_current) {
		for (int i = 0; i < g_current->n_agents; i++)
			if (g_current->agent[i] > 0)
				kill(g_current->agent[i], SIGTERM);
		if (g_current->broker > 0)
			kill(g_current->broker, SIGTERM);
	}
	_exit(128 + sig);
}

void fleet_release(fleet *f)
{
	fleet_agents_stop(f);
	fleet_broker_stop(f);
	if (g_current == f)
		g_current = NULL;
}

void fleet_init(fleet *f)
{
	static bool hooked;
	if (!hooked) {
		hooked = true;
		atexit(stop_children_at_exit);
		signal(SIGINT, on_signal);
		signal(SIGTERM, on_signal);
	}
	g_current = f;
	char exe[FLEET_PATH] = "";
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		bench_die("readlink /proc/self/exe", strerror(errno));
	exe[n] = '\0';
	for (int up = 0; up < 2; up++) {   /* BUILD/bench/bench_custody_e2e -> BUILD/bench -> BUILD */
		char *slash = strrchr(exe, '/');
		if (slash)
			*slash = '\0';
	}
	sibling(f->plugin_path, f->plugin, exe, "broker-plugin/mosquitto_iotguard.so");
	sibling(f->cli_path, f->cli, exe, "tools/iotguard");
	sibling(f->agent_path, f->agent_bin, exe, "agents/iotguard-agent");
	if (!f->port)
		f->port = free_port();
	if (mkdir(f->work, 0700) != 0 && errno != EEXIST)
		bench_dief("mkdir %s: %s", f->work, strerror(errno));
	snprintf(f->ledger, sizeof f->ledger, "%s/ledger", f->work);
	snprintf(f->keys, sizeof f->keys, "%s/keys", f->work);
	snprintf(f->conf, sizeof f->conf, "%s/mosquitto.conf", f->work);
	snprintf(f->admin_key, sizeof f->admin_key, "%s/%s.key", f->keys, ADMIN_ID);
	f->ev = bench_xrealloc(NULL, FLEET_EVENTS_MAX * sizeof *f->ev);
	f->lev = bench_xrealloc(NULL, FLEET_EVENTS_MAX * sizeof *f->lev);
	f->broker = 0;
}

static void write_key(const fleet *f, const char *id)
{
	uint8_t pk[IG_PK_BYTES], sk[IG_SK_BYTES];
	char path[FLEET_PATH + 80];
	ig_error err = {0};
	bench_id_keypair(id, pk, sk);
	snprintf(path, sizeof path, "%s/%s.key", f->keys, id);
	int rc = ig_keyfile_write(path, sk, true, &err);
	sodium_memzero(sk, sizeof sk);
	if (rc != IG_OK)
		bench_dief("writing the key file of %s: %s", id, err.msg);
}

double fleet_build_ledger(fleet *f, uint64_t devices, int real)
{
	if (real > FLEET_AGENTS_MAX || (uint64_t)real > devices)
		bench_dief("at most %d agents, and no more than the devices", FLEET_AGENTS_MAX);
	bench_remove_tree(f->ledger);
	bench_remove_tree(f->keys);   /* agents' pins, heads and share files of an earlier run */
	if (mkdir(f->keys, 0700) != 0)
		bench_dief("mkdir %s: %s", f->keys, strerror(errno));
	double t0 = bench_now_s();
	bench_id_builder b;
	bench_id_build_begin(&b, f->ledger, f->cluster, 200000);
	bench_id_build_enroll(&b, MONITOR_ID, IG_ROLE_MONITOR, NULL);
	bench_id_build_enroll(&b, ADMIN_ID, IG_ROLE_ADMIN, NULL);
	write_key(f, ADMIN_ID);
	for (uint64_t i = 0; i < devices; i++) {
		char id[IG_ID_MAX + 1];
		bench_id_format(id, sizeof id, "dev", (uint32_t)i);
		if (i < (uint64_t)real) {
			bench_id_build_enroll(&b, id, IG_ROLE_DEVICE, NULL);
			write_key(f, id);
		} else {
			uint8_t seed[IG_SEED_BYTES];
			bench_id_seed(seed, id);   /* a key nobody connects with: saves 1M scalar multiplications */
			bench_id_build_enroll(&b, id, IG_ROLE_DEVICE, seed);
		}
	}
	uint64_t height = bench_id_build_end(&b);
	if (height != devices + 3)
		bench_dief("ledger height %llu, expected %llu", (unsigned long long)height,
		           (unsigned long long)(devices + 3));
	f->n_agents = real;
	return bench_now_s() - t0;
}

/* ---- processes ------------------------------------------------------------ */

/* In a child before exec: only stdin/stdout/stderr stay open (the monitor's
 * socket must not outlive it in an agent). */
static void child_fds(const char *log_path)
{
	int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd < 0)
		_exit(127);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	int devnull = open("/dev/null", O_RDONLY);
	if (devnull >= 0)
		dup2(devnull, STDIN_FILENO);
	for (int i = 3; i < 1024; i++)
		close(i);
}

static void child_cpu(int cpu)
{
	if (cpu < 0)
		bench_proc_unpin();
	else
		bench_proc_pin(cpu);
}

static void stop_pid(pid_t pid, const char *what, double grace_s)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	double t0 = bench_now_s();
	int st;
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (bench_now_s() - t0 > grace_s) {
			fprintf(stderr, "%s: %s (pid %d) ignored SIGTERM for %.0f s; killing it\n", bench_name, what, (int)pid,
			        grace_s);
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			break;
		}
		usleep(5000);
	}
}

static void write_text(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");
	if (!fp || fputs(text, fp) < 0 || fclose(fp) != 0)
		bench_dief("writing %s: %s", path, strerror(errno));
}

static pid_t spawn_mosquitto(fleet *f)
{
	f->starts++;
	snprintf(f->log, sizeof f->log, "%s/broker-%d.log", f->work, f->starts);
	pid_t pid = fork();
	if (pid < 0)
		bench_die("fork", strerror(errno));
	if (pid == 0) {
		child_cpu(f->broker_cpu);
		child_fds(f->log);
		execlp("mosquitto", "mosquitto", "-c", f->conf, (char *)NULL);
		fprintf(stderr, "exec mosquitto: %s\n", strerror(errno));
		_exit(127);
	}
	return pid;
}

static void reset_observations(fleet *f)
{
	memset(&f->custody, 0, sizeof f->custody);
	f->n_ev = f->n_lev = 0;
	memset(f->online, 0, sizeof f->online);
	f->n_online = 0;
	f->subacks = 0;
}

static bool subscribed(fleet *f, const void *ctx)
{
	return f->subacks >= *(const int *)ctx;
}

double fleet_broker_start(fleet *f, const char *opts)
{
	char conf[4 * FLEET_PATH + 1024];
	snprintf(conf, sizeof conf,
	         "per_listener_settings false\nallow_anonymous false\nlistener %d 127.0.0.1\npersistence false\n"
	         "connection_messages false\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
	         "log_type information\nlog_timestamp true\nuser %s\nplugin %s\nplugin_opt_ledger %s\n"
	         "plugin_opt_stats_interval 0\n%s",
	         f->port, bench_broker_user(), f->plugin_path, f->ledger, opts ? opts : "");
	write_text(f->conf, conf);
	reset_observations(f);
	double t0 = bench_now_s();
	f->broker = spawn_mosquitto(f);
	for (;;) {
		int st;
		if (waitpid(f->broker, &st, WNOHANG) == f->broker) {
			f->broker = 0;
			bench_dief("mosquitto exited during start (status %d); see %s", st, f->log);
		}
		if (bench_now_s() - t0 > 300)
			bench_dief("no authenticated connect within 300 s; see %s", f->log);
		char token[IG_TOKEN_TEXT_MAX];
		bench_id_token(token, sizeof token, f->cluster, MONITOR_ID, 3600);
		int connack = -1, rc = bench_conn_try_open(&f->mon, f->port, MONITOR_ID, token, &connack);
		if (rc == 0)
			break;
		usleep(rc == 1 ? 2000 : 20000);
	}
	double ready = bench_now_s() - t0;
	f->mon_open = true;
	char filter[256];
	const char *topics[] = {"custody", "custody/events", "ledger/events", "dev/+/status"};
	for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++) {
		snprintf(filter, sizeof filter, "iotguard/%s/%s", f->cluster, topics[i]);
		bench_conn_subscribe(&f->mon, filter, 1);
	}
	int want = 4;
	fleet_wait(f, subscribed, &want, 30, "the monitor's subscriptions");
	return ready;
}

void fleet_broker_stop(fleet *f)
{
	if (f->mon_open) {
		bench_conn_close(&f->mon);
		f->mon_open = false;
	}
	stop_pid(f->broker, "mosquitto", 30);
	f->broker = 0;
}

long fleet_plain_rss_kb(fleet *f)
{
	char conf[2048];
	snprintf(conf, sizeof conf,
	         "per_listener_settings false\nallow_anonymous true\nlistener %d 127.0.0.1\npersistence false\n"
	         "log_dest stderr\nlog_type error\nlog_type warning\nuser %s\n",
	         f->port, bench_broker_user());
	write_text(f->conf, conf);
	pid_t pid = spawn_mosquitto(f);
	double t0 = bench_now_s();
	bench_conn c;
	int connack = -1;
	while (bench_conn_try_open(&c, f->port, "plain-probe", NULL, &connack) != 0) {
		if (bench_now_s() - t0 > 30)
			bench_dief("plain mosquitto did not accept a client within 30 s; see %s", f->log);
		usleep(5000);
	}
	usleep(300000);
	long kb = bench_proc_status_kb(pid, "VmRSS");
	bench_conn_close(&c);
	stop_pid(pid, "plain mosquitto", 30);
	return kb;
}

void fleet_agent_start(fleet *f, int i)
{
	if (i < 0 || i >= f->n_agents)
		bench_dief("no key file for agent %d (the ledger has %d)", i, f->n_agents);
	if (f->agent[i] > 0)
		return;
	char id[IG_ID_MAX + 1], key[FLEET_PATH + 80], log[FLEET_PATH + 80], port[16];
	bench_id_format(id, sizeof id, "dev", (uint32_t)i);
	snprintf(key, sizeof key, "%s/%s.key", f->keys, id);
	snprintf(log, sizeof log, "%s/agent-%s.log", f->work, id);
	snprintf(port, sizeof port, "%d", f->port);
	pid_t pid = fork();
	if (pid < 0)
		bench_die("fork", strerror(errno));
	if (pid == 0) {
		child_cpu(f->client_cpu);
		child_fds(log);
		execl(f->agent_path, f->agent_path, "--host", "127.0.0.1", "--port", port, "--cluster", f->cluster, "--id",
		      id, "--key", key, "--heartbeat", "30", (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", f->agent_path, strerror(errno));
		_exit(127);
	}
	f->agent[i] = pid;
}

void fleet_agents_stop(fleet *f)
{
	for (int i = 0; i < f->n_agents; i++)
		if (f->agent[i] > 0)
			kill(f->agent[i], SIGTERM);
	for (int i = 0; i < f->n_agents; i++) {
		stop_pid(f->agent[i], "an agent", 15);
		f->agent[i] = 0;
	}
}

/* ---- the monitor ------------------------------------------------------------ */

static double jnum(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void jstr(char *out, size_t cap, const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	snprintf(out, cap, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

static void add_event(fleet_event *list, size_t *n, const cJSON *m, const char *what_field)
{
	if (*n >= FLEET_EVENTS_MAX) {   /* keep the newer half */
		memmove(list, list + FLEET_EVENTS_MAX / 2, (FLEET_EVENTS_MAX / 2) * sizeof *list);
		*n -= FLEET_EVENTS_MAX / 2;
	}
	fleet_event *e = &list[(*n)++];
	jstr(e->what, sizeof e->what, m, what_field);
	jstr(e->holder, sizeof e->holder, m, "holder");
	jstr(e->message, sizeof e->message, m, "message");
	e->epoch = (uint64_t)jnum(m, "epoch");
	e->ts_ms = jnum(m, "ts");
	e->recv_s = bench_now_s();
}

static void on_packet(void *ctx, bench_conn *c, uint8_t type, const uint8_t *body, size_t len)
{
	fleet *f = ctx;
	bench_conn_msg msg;
	if (!bench_conn_take_publish(c, type, body, len, MONITOR_ID, &f->subacks, &msg))
		return;
	char prefix[128];
	int pl = snprintf(prefix, sizeof prefix, "iotguard/%s/", f->cluster);
	if (msg.tlen <= (size_t)pl || memcmp(msg.topic, prefix, (size_t)pl) != 0)
		return;
	char rest[256];
	snprintf(rest, sizeof rest, "%.*s", (int)(msg.tlen - (size_t)pl), msg.topic + pl);
	cJSON *m = cJSON_ParseWithLength((const char *)msg.payload, msg.plen);
	if (!cJSON_IsObject(m)) {
		cJSON_Delete(m);
		return;
	}
	if (!strcmp(rest, "custody")) {
		fleet_custody *s = &f->custody;
		s->have = true;
		jstr(s->state, sizeof s->state, m, "state");
		s->epoch = (uint64_t)jnum(m, "epoch");
		s->k = (unsigned)jnum(m, "k");
		s->n = (unsigned)jnum(m, "n");
		s->shares_collected = (unsigned)jnum(m, "shares_collected");
		s->sealed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "sealed"));
		s->recv_s = bench_now_s();
	} else if (!strcmp(rest, "custody/events")) {
		add_event(f->ev, &f->n_ev, m, "event");
	} else if (!strcmp(rest, "ledger/events")) {
		add_event(f->lev, &f->n_lev, m, "type");
	} else if (!strncmp(rest, "dev/dev-", 8)) {
		char *end = NULL;
		unsigned long i = strtoul(rest + 8, &end, 10);
		char state[32];
		jstr(state, sizeof state, m, "state");
		if (end && !strcmp(end, "/status") && i < FLEET_AGENTS_MAX) {
			bool on = !strcmp(state, "online");
			if (on != f->online[i])
				f->n_online += on ? 1 : -1;
			f->online[i] = on;
		}
	}
	cJSON_Delete(m);
}

void fleet_pump(fleet *f, int timeout_ms)
{
	if (!f->mon_open) {
		usleep((useconds_t)timeout_ms * 1000u);
		return;
	}
	if (bench_conn_wants_write(&f->mon) && !bench_conn_flush(&f->mon))
		bench_dief("the monitor's connection broke; see %s", f->log);
	struct pollfd p = {.fd = f->mon.fd, .events = POLLIN | (bench_conn_wants_write(&f->mon) ? POLLOUT : 0)};
	int pr = poll(&p, 1, timeout_ms);
	if (pr < 0 && errno != EINTR)
		bench_die("poll", strerror(errno));
	if (pr > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) && !bench_conn_read(&f->mon, on_packet, f))
		bench_dief("the broker closed the monitor's connection; see %s", f->log);
	if (bench_conn_wants_write(&f->mon) && !bench_conn_flush(&f->mon))
		bench_dief("the monitor's connection broke; see %s", f->log);
}

void fleet_wait(fleet *f, fleet_pred pred, const void *ctx, double timeout_s, const char *what)
{
	double t0 = bench_now_s();
	while (!pred(f, ctx)) {
		int st;
		if (f->broker > 0 && waitpid(f->broker, &st, WNOHANG) == f->broker) {
			f->broker = 0;
			bench_dief("mosquitto exited (status %d) while waiting for %s; see %s", st, what, f->log);
		}
		if (bench_now_s() - t0 > timeout_s)
			bench_dief("no %s within %.0f s (custody state '%s', epoch %llu; %d agents online); see %s and "
			           "%s/agent-*.log", what, timeout_s, f->custody.state, (unsigned long long)f->custody.epoch,
			           f->n_online, f->log, f->work);
		fleet_pump(f, 20);
	}
}

const fleet_event *fleet_find(const fleet *f, bool ledger, const char *what, uint64_t epoch, size_t from)
{
	const fleet_event *list = ledger ? f->lev : f->ev;
	size_t n = ledger ? f->n_lev : f->n_ev;
	for (size_t i = n; i-- > from;)
		if (!strcmp(list[i].what, what) && (!epoch || list[i].epoch == epoch))
			return &list[i];
	return NULL;
}

typedef struct event_query {
	bool ledger;
	const char *what;
	uint64_t epoch;
	size_t from;
} event_query;

static bool has_event(fleet *f, const void *ctx)
{
	const event_query *q = ctx;
	return fleet_find(f, q->ledger, q->what, q->epoch, q->from) != NULL;
}

const fleet_event *fleet_wait_event(fleet *f, bool ledger, const char *what, uint64_t epoch, size_t from,
                                    double timeout_s)
{
	event_query q = {.ledger = ledger, .what = what, .epoch = epoch, .from = from};
	char desc[96];
	snprintf(desc, sizeof desc, "%s event '%s'", ledger ? "ledger" : "custody", what);
	fleet_wait(f, has_event, &q, timeout_s, desc);
	return fleet_find(f, ledger, what, epoch, from);
}

/* ---- the admin CLI ------------------------------------------------------------ */

void fleet_custody_cli(fleet *f, const char *cmd)
{
	char out[FLEET_PATH + 32], port[16];
	snprintf(out, sizeof out, "%s/cli.out", f->work);
	snprintf(port, sizeof port, "%d", f->port);
	unlink(out);
	pid_t pid = fork();
	if (pid < 0)
		bench_die("fork", strerror(errno));
	if (pid == 0) {
		child_cpu(f->client_cpu);
		child_fds(out);
		execl(f->cli_path, f->cli_path, "custody", cmd, "--host", "127.0.0.1", "--port", port, "--cluster",
		      f->cluster, "--user", ADMIN_ID, "--key", f->admin_key, "--timeout", "60", (char *)NULL);
		_exit(127);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char text[4096] = "";
		FILE *fp = fopen(out, "r");
		if (fp) {
			size_t n = fread(text, 1, sizeof text - 1, fp);
			text[n] = '\0';
			fclose(fp);
		}
		bench_dief("iotguard custody %s failed (status %d): %s", cmd, st, text);
	}
}

/* ---- readings ------------------------------------------------------------------ */

uint64_t fleet_cpu_ns(pid_t pid)
{
	return bench_proc_cpu_ns((int)pid);
}

long fleet_stat_ticks(pid_t pid)
{
	char path[64], buf[2048];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *fp = fopen(path, "r");
	if (!fp)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');   /* the command name may hold spaces */
	if (!p)
		return -1;
	unsigned long utime = 0, stime = 0;
	/* after ")": state (field 3) ... utime is field 14, stime 15 */
	if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
		return -1;
	return (long)(utime + stime);
}
