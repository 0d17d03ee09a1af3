/*
 * bench_publish.c: device message throughput through the plugin's ACL
 * versus plain Mosquitto, in the same run, with the ratio.
 *
 * Why this exists: once connected, a device's cost to the cluster head is
 * the ACL check on every PUBLISH it sends and on every delivery to each
 * subscriber. This measures that cost where it matters: messages per second
 * a monitor receives while P devices publish status messages to their own
 * iotguard/C/dev/<id>/status topic and the monitor holds
 * iotguard/C/dev/+/status, so every message is WRITE-checked once and
 * READ-checked once.
 *
 * The load generator speaks MQTT 3.1.1 itself instead of using libmosquitto:
 * libmosquitto writes one packet per send() and reads byte by byte, which
 * would make this process, not the broker, the bottleneck and hide the
 * plugin's cost. Here publishers write batches of pre-encoded PUBLISH
 * packets and the monitor reads 256 KiB at a time.
 *
 * Publishing is windowed: at most --window messages may be sent and not yet
 * received by the monitor, so the broker is always busy but never has to
 * drop QoS 0 messages for a slow reader (Mosquitto drops them once a
 * client's queue is full). Messages lost anyway are reported.
 *
 *   bench_publish [--publishers P] [--qos 0|1|0,1] [--duration S] [--rounds R]
 *                 [--window W] [--payload BYTES]
 *                 --target NAME:PORT:CLUSTER[:CREDFILE] ...  (repeatable)
 *                 [--pid NAME=PID] ...   (broker pid: adds broker CPU per message)
 *                 [--ratio A/B:GOAL] ...
 * CREDFILE holds "id password" lines: publishers are the first P "dev-" ids,
 * the monitor the first "mon-" id. Without it clients are anonymous.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "bench_conn.h"
#include "bench_mqtt.h"
#include "bench_proc.h"
#include "bench_stats.h"

#define MAX_TARGETS 4
#define MAX_PUB 256
#define MAX_ROUNDS 16
#define MAX_RATIOS 8
#define RBUF (256 * 1024)
#define WBUF (64 * 1024)
#define BATCH 64                  /* packets encoded per publisher turn */

typedef struct target {
	char name[64];
	int port;
	int pid;                      /* broker pid for CPU accounting; 0 = unknown */
	char cluster[65];
	char *pub_id[MAX_PUB], *pub_pw[MAX_PUB];
	char *mon_id, *mon_pw;
	double rate[2][MAX_ROUNDS];   /* [qos][round] */
	uint64_t lost[2][MAX_ROUNDS];
	double cpu_us[2][MAX_ROUNDS]; /* broker CPU per delivered message */
} target;

/* ---- one phase ---------------------------------------------------------- */

typedef struct pub {
	bench_conn c;
	uint8_t pkt[512];
	size_t pkt_len, pid_off;
	uint16_t next_pid;
	uint64_t sent;
} pub;

typedef struct result {
	double rate, cpu_us, self_us;
	uint64_t received, sent, lost;
} result;

/* Messages sent and neither received nor written off as dropped. */
static uint64_t outstanding(uint64_t sent, uint64_t received, uint64_t written_off)
{
	return sent > received + written_off ? sent - received - written_off : 0;
}

/* The monitor's packets: counts PUBLISHes (queueing PUBACKs at QoS 1) and
 * checks its one SUBACK. */
typedef struct monitor {
	uint64_t received;
	int subacks;
} monitor;

static void on_monitor_packet(void *ctx, bench_conn *c, uint8_t type, const uint8_t *body, size_t len)
{
	monitor *m = ctx;
	bench_conn_msg msg;
	if (bench_conn_take_publish(c, type, body, len, "the monitor", &m->subacks, &msg))
		m->received++;
}

static void open_as(bench_conn *c, int port, const char *id, const char *pw, const char *what)
{
	int connack, rc = bench_conn_try_open(c, port, id, pw, &connack);
	if (rc == 1)
		bench_die("connect to the broker failed", strerror(errno));
	if (rc != 0)
		bench_dief("%s %s: CONNACK missing or refused (return code %d)", what, id, connack);
}

static void monitor_open(bench_conn *mon, monitor *m, const target *t, int qos)
{
	open_as(mon, t->port, t->mon_id, t->mon_pw, "monitor");
	/* The monitor reads everything the publishers send: big reads keep this
	 * process from being the limit. */
	mon->rcap = RBUF;
	mon->r = bench_xrealloc(mon->r, mon->rcap);
	char filter[256];
	snprintf(filter, sizeof filter, "iotguard/%s/dev/+/status", t->cluster);
	bench_conn_subscribe(mon, filter, qos);
	struct pollfd pfd = {.fd = mon->fd, .events = POLLIN};
	double deadline = bench_now_s() + 10;
	while (m->subacks < 1 && bench_now_s() < deadline) {
		if (!bench_conn_flush(mon))
			bench_die("monitor connection broke", NULL);
		if (poll(&pfd, 1, 50) < 0 && errno != EINTR)
			bench_die("poll", strerror(errno));
		if (!bench_conn_read(mon, on_monitor_packet, m))
			bench_die("the broker closed the monitor's connection", NULL);
	}
	if (m->subacks < 1)
		bench_die("the monitor's SUBSCRIBE was not acknowledged within 10 s", filter);
}

static result run_phase(target *t, int npub, int qos, double warmup, double duration, uint64_t window,
                        size_t payload_len)
{
	pub *pubs = calloc((size_t)npub, sizeof *pubs);
	struct pollfd *pfd = calloc((size_t)npub + 1, sizeof *pfd);
	if (!pubs || !pfd)
		bench_die("out of memory", NULL);
	bench_conn mon;
	monitor mstate = {0};
	monitor_open(&mon, &mstate, t, qos);

	uint8_t payload[1024];
	for (int i = 0; i < npub; i++) {
		pub *p = &pubs[i];
		open_as(&p->c, t->port, t->pub_id[i], t->pub_pw[i], "publisher");
		char topic[256];
		snprintf(topic, sizeof topic, "iotguard/%s/dev/%s/status", t->cluster, t->pub_id[i]);
		int pl = snprintf((char *)payload, sizeof payload,
		                  "{\"id\":\"%s\",\"state\":\"online\",\"ts\":1700000000000,\"seq\":0,\"uptime_s\":0}",
		                  t->pub_id[i]);
		size_t plen = (size_t)pl;
		while (plen < payload_len && plen < sizeof payload)
			payload[plen++] = ' ';
		size_t h = bench_mqtt_publish_header(p->pkt, topic, strlen(topic), plen, qos, 1, &p->pid_off);
		memcpy(p->pkt + h, payload, plen);
		p->pkt_len = h + plen;
		p->next_pid = 1;
	}

	uint64_t received_at_start = 0, received_at_end = 0, sent = 0;
	double t0 = bench_now_s(), t_count = t0 + warmup, t_end = t_count + duration, t_counted = t_count, t_stopped = t_end;
	bool counting = false, stopping = false;
	double stop_deadline = 0, last_progress = t0;
	uint64_t last_received = 0, written_off = 0, cpu_start = 0, cpu_used = 0;
	uint64_t self_start = 0, self_used = 0;
	int turn = 0;
	for (;;) {
		double now = bench_now_s();
		if (!counting && now >= t_count) {
			counting = true;
			received_at_start = mstate.received;
			t_counted = now;
			cpu_start = t->pid ? bench_proc_cpu_ns(t->pid) : 0;
			self_start = bench_proc_self_cpu_ns();
		}
		if (!stopping && now >= t_end) {
			stopping = true;
			stop_deadline = now + 2.0;
			received_at_end = mstate.received;
			t_stopped = now;
			cpu_used = t->pid ? bench_proc_cpu_ns(t->pid) - cpu_start : 0;
			self_used = bench_proc_self_cpu_ns() - self_start;
		}
		if (stopping && (mstate.received + written_off >= sent || now >= stop_deadline))
			break;
		if (mstate.received != last_received) {
			last_received = mstate.received;
			last_progress = now;
		} else if (!stopping && now - last_progress > 0.5) {
			/* The broker dropped messages (a queue limit), so the window would
			 * never reopen: write them off as lost and go on. */
			if (getenv("BENCH_DEBUG"))
				fprintf(stderr, "stall at %.2f s: sent %" PRIu64 " received %" PRIu64 " mon wbuf %zu/%zu\n", now - t0, sent,
				        mstate.received, mon.woff, mon.wlen);
			written_off = sent - mstate.received;
			last_progress = now;
		}
		if (!stopping) {
			/* Fill publishers round-robin while the window allows. */
			for (int k = 0; k < npub && outstanding(sent, mstate.received, written_off) < window; k++) {
				pub *p = &pubs[(turn + k) % npub];
				int batch = 0;
				while (batch < BATCH && outstanding(sent, mstate.received, written_off) < window &&
				       p->c.wlen - p->c.woff + p->pkt_len <= WBUF) {
					bench_conn_reserve(&p->c, p->pkt_len);
					uint8_t *dst = p->c.w + p->c.wlen;
					memcpy(dst, p->pkt, p->pkt_len);
					if (p->pid_off) {
						dst[p->pid_off] = (uint8_t)(p->next_pid >> 8);
						dst[p->pid_off + 1] = (uint8_t)p->next_pid;
						if (++p->next_pid == 0)
							p->next_pid = 1;
					}
					p->c.wlen += p->pkt_len;
					p->sent++;
					sent++;
					batch++;
				}
				if (!bench_conn_flush(&p->c))
					bench_die("a publisher's connection broke (was it refused by the ACL?)", t->pub_id[(turn + k) % npub]);
			}
			turn = (turn + 1) % npub;
		}
		int nf = 0;
		pfd[nf].fd = mon.fd;
		pfd[nf].events = POLLIN | (mon.wlen > mon.woff ? POLLOUT : 0);
		nf++;
		for (int i = 0; i < npub; i++) {
			pfd[nf].fd = pubs[i].c.fd;
			pfd[nf].events = POLLIN | (pubs[i].c.wlen > pubs[i].c.woff ? POLLOUT : 0);
			nf++;
		}
		int pr = poll(pfd, (nfds_t)nf, outstanding(sent, mstate.received, written_off) < window && !stopping ? 0 : 50);
		if (pr < 0 && errno != EINTR)
			bench_die("poll", strerror(errno));
		if ((pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) && !bench_conn_read(&mon, on_monitor_packet, &mstate))
			bench_die("the broker closed the monitor's connection", NULL);
		if (mon.wlen > mon.woff && !bench_conn_flush(&mon))
			bench_die("monitor connection broke", NULL);
		for (int i = 0; i < npub; i++) {
			short re = pfd[i + 1].revents;
			if (re & (POLLIN | POLLHUP | POLLERR)) {
				uint8_t sink[16384];   /* PUBACKs for qos 1; nothing else is expected */
				ssize_t r = read(pubs[i].c.fd, sink, sizeof sink);
				if (r == 0)
					bench_die("the broker closed a publisher's connection (ACL refusal?)", t->pub_id[i]);
			}
			if ((re & POLLOUT) && !bench_conn_flush(&pubs[i].c))
				bench_die("a publisher's connection broke", t->pub_id[i]);
		}
	}
	if (getenv("BENCH_DEBUG")) {
		fprintf(stderr, "end: sent %" PRIu64 " received %" PRIu64 " mon rlen %zu w %zu/%zu\n", sent, mstate.received,
		        mon.rlen, mon.woff, mon.wlen);
		for (int i = 0; i < npub; i++)
			fprintf(stderr, "  pub %d sent %" PRIu64 " w %zu/%zu\n", i, pubs[i].sent, pubs[i].c.woff, pubs[i].c.wlen);
	}
	result res = {0};
	res.sent = sent;
	res.received = mstate.received;
	res.lost = sent > mstate.received ? sent - mstate.received : 0;   /* includes written_off */
	res.rate = (double)(received_at_end - received_at_start) / (t_stopped - t_counted);
	if (received_at_end > received_at_start) {
		res.cpu_us = (double)cpu_used / 1e3 / (double)(received_at_end - received_at_start);
		res.self_us = (double)self_used / 1e3 / (double)(received_at_end - received_at_start);
	}
	for (int i = 0; i < npub; i++)
		bench_conn_close(&pubs[i].c);
	bench_conn_close(&mon);
	free(pubs);
	free(pfd);
	return res;
}

/* ---- main ------------------------------------------------------------- */

static void load_target_creds(target *t, const char *path, int npub)
{
	FILE *f = fopen(path, "r");
	if (!f)
		bench_die("cannot open credentials file", path);
	char line[2048];
	int np = 0;
	while (fgets(line, sizeof line, f)) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		char *sp = strchr(line, ' ');
		if (!sp)
			continue;
		*sp = '\0';
		if (!strncmp(line, "mon-", 4) && !t->mon_id) {
			t->mon_id = bench_xstrdup(line);
			t->mon_pw = bench_xstrdup(sp + 1);
		} else if (!strncmp(line, "dev-", 4) && np < npub) {
			bool dup = false;
			for (int i = 0; i < np; i++)
				dup = dup || !strcmp(t->pub_id[i], line);
			if (!dup) {
				t->pub_id[np] = bench_xstrdup(line);
				t->pub_pw[np] = bench_xstrdup(sp + 1);
				np++;
			}
		}
	}
	fclose(f);
	if (!t->mon_id || np < npub)
		bench_die("credentials file needs one mon- line and enough distinct dev- lines", path);
}

int main(int argc, char **argv)
{
	target targets[MAX_TARGETS];
	const char *specs[MAX_TARGETS];
	const char *ratios[MAX_RATIOS];
	const char *pid_specs[MAX_TARGETS];
	size_t nt = 0, nratios = 0, npids = 0;
	uint64_t npub_o = 8, rounds_o = 3, window = 2000, payload_o = 0;
	double duration = 3.0, warmup = 0.5;
	const char *qos_text = "0,1";
	bench_name = "bench_publish";
	memset(targets, 0, sizeof targets);
	const cli_option opts[] = {
		CLI_NUMBER("publishers", 0, &npub_o, 1, MAX_PUB),
		CLI_REAL("duration", 0, &duration, 0.001, 3600),
		CLI_REAL("warmup", 0, &warmup, 0, 3600),
		CLI_NUMBER("rounds", 0, &rounds_o, 1, MAX_ROUNDS),
		CLI_NUMBER("window", 0, &window, 1, UINT32_MAX),
		CLI_NUMBER("payload", 0, &payload_o, 0, 400),
		CLI_TEXT("qos", 0, &qos_text),
		CLI_LIST("target", 0, specs, &nt, MAX_TARGETS),
		CLI_LIST("pid", 0, pid_specs, &npids, MAX_TARGETS),
		CLI_LIST("ratio", 0, ratios, &nratios, MAX_RATIOS),
		CLI_HELP_OPTION(0),
		CLI_OPTIONS_END,
	};
	bench_parse(argc, argv, NULL, opts,
	            "usage: bench_publish [--publishers P] [--qos 0|1|0,1] [--duration S] [--rounds R]\n"
	            "         [--window W] [--payload BYTES] --target NAME:PORT:CLUSTER[:CREDFILE] ...\n"
	            "         [--ratio A/B:GOAL] [--pid NAME=PID]\n");
	int npub = (int)npub_o, rounds = (int)rounds_o;
	size_t payload = (size_t)payload_o;
	bool want_qos[2] = {strchr(qos_text, '0') != NULL, strchr(qos_text, '1') != NULL};
	if (!nt || nt > MAX_TARGETS)   /* the parser caps nt; saying so lets the compiler see it too */
		bench_die("need a --target", NULL);

	for (size_t i = 0; i < nt; i++) {
		target *t = &targets[i];
		char spec[4096];
		snprintf(spec, sizeof spec, "%s", specs[i]);
		char *name = strtok(spec, ":"), *port = strtok(NULL, ":"), *cluster = strtok(NULL, ":"),
		     *file = strtok(NULL, "");
		if (!name || !port || !cluster)
			bench_die("--target needs NAME:PORT:CLUSTER[:CREDFILE]", specs[i]);
		snprintf(t->name, sizeof t->name, "%s", name);
		snprintf(t->cluster, sizeof t->cluster, "%s", cluster);
		t->port = atoi(port);
		if (file) {
			load_target_creds(t, file, npub);
		} else {
			for (int p = 0; p < npub; p++) {
				char id[32];
				snprintf(id, sizeof id, "dev-%07d", p);
				t->pub_id[p] = bench_xstrdup(id);
			}
			t->mon_id = bench_xstrdup("mon-000");
		}
	}

	for (size_t i = 0; i < npids; i++) {
		char spec[128];
		snprintf(spec, sizeof spec, "%s", pid_specs[i]);
		char *eq = strchr(spec, '=');
		bool found = false;
		if (eq) {
			*eq = '\0';
			for (size_t j = 0; j < nt && j < MAX_TARGETS; j++)
				if (!strcmp(targets[j].name, spec)) {
					targets[j].pid = atoi(eq + 1);
					found = true;
				}
		}
		if (!found)
			bench_die("--pid needs NAME=PID naming a --target", pid_specs[i]);
	}
	printf("== bench_publish: messages/s received by one monitor on iotguard/C/dev/+/status from %d publishers, "
	       "window %" PRIu64 ", %d rounds x %.1f s (+%.1f s warm-up), rounds interleaved ==\n",
	       npub, window, rounds, duration, warmup);
	for (int qos = 0; qos <= 1; qos++) {
		if (!want_qos[qos])
			continue;
		for (int r = 0; r < rounds; r++) {
			for (size_t i = 0; i < nt; i++) {
				target *t = &targets[i];
				result res = run_phase(t, npub, qos, warmup, duration, window, payload);
				t->rate[qos][r] = res.rate;
				t->lost[qos][r] = res.lost;
				t->cpu_us[qos][r] = res.cpu_us;
				printf("qos %d round %d %-10s %9.0f msg/s  CPU us/msg: broker %5.2f, load gen %5.2f  (sent %" PRIu64
				       ", received %" PRIu64 ", lost %" PRIu64 ")\n",
				       qos, r + 1, t->name, res.rate, res.cpu_us, res.self_us, res.sent, res.received, res.lost);
				fflush(stdout);
			}
		}
		printf("-- qos %d, median of %d rounds --\n", qos, rounds);
		for (size_t i = 0; i < nt; i++) {
			target *t = &targets[i];
			uint64_t lost = 0;
			for (int r = 0; r < rounds; r++)
				lost += t->lost[qos][r];
			double m = bench_stats_median(t->rate[qos], (size_t)rounds);
			printf("%-10s %9.0f msg/s  broker CPU %5.2f us/msg  lost %" PRIu64 "\n", t->name, m,
			       bench_stats_median(t->cpu_us[qos], (size_t)rounds), lost);
			printf("RESULT publish.qos%d.%s.rate %.0f\n", qos, t->name, m);
			if (t->pid)
				printf("RESULT publish.qos%d.%s.cpu_us %.2f\n", qos, t->name, bench_stats_median(t->cpu_us[qos], (size_t)rounds));
			printf("RESULT publish.qos%d.%s.lost %" PRIu64 "\n", qos, t->name, lost);
		}
		for (size_t i = 0; i < nratios; i++) {
			char spec[256];
			snprintf(spec, sizeof spec, "%s", ratios[i]);
			char *a = strtok(spec, "/"), *b = strtok(NULL, ":"), *goal = strtok(NULL, "");
			target *ta = NULL, *tb = NULL;
			for (size_t j = 0; j < nt && j < MAX_TARGETS; j++) {
				if (a && !strcmp(targets[j].name, a))
					ta = &targets[j];
				if (b && !strcmp(targets[j].name, b))
					tb = &targets[j];
			}
			if (!ta || !tb)
				bench_die("--ratio names an unknown target", ratios[i]);
			double ra = bench_stats_median(ta->rate[qos], (size_t)rounds), rb = bench_stats_median(tb->rate[qos], (size_t)rounds);
			double q = rb > 0 ? ra / rb : 0;
			printf("qos %d ratio %s/%s = %.3f", qos, a, b, q);
			if (goal)
				printf("  (target >= %s)", goal);
			printf("\n");
			printf("RESULT publish.qos%d.ratio.%s_%s %.3f\n", qos, a, b, q);
			double ca = bench_stats_median(ta->cpu_us[qos], (size_t)rounds), cb = bench_stats_median(tb->cpu_us[qos], (size_t)rounds);
			if (ca > 0 && cb > 0) {
				printf("qos %d capacity ratio %s/%s = %.3f (broker CPU per message %.2f vs %.2f us)\n", qos, a, b, cb / ca,
				       ca, cb);
				printf("RESULT publish.qos%d.capacity.%s_%s %.3f\n", qos, a, b, cb / ca);
			}
		}
	}
	for (size_t i = 0; i < nt; i++) {
		for (int p = 0; p < npub; p++) {
			free(targets[i].pub_id[p]);
			free(targets[i].pub_pw[p]);
		}
		free(targets[i].mon_id);
		free(targets[i].mon_pw);
	}
	return 0;
}
