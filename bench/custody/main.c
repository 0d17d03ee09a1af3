/*
 * bench_custody_e2e (main.c): device-quorum custody (issue 9) through the
 * real broker and real agents on this machine.
 *
 * Why this exists: bench_custody times the crypto in a tight loop; what an
 * operator lives with is the cluster head's CPU for a whole deal (choosing,
 * dealing, 2 durable ledger records, n boxed messages out and n acks in),
 * each holder's cost in its own process, how long after the k-th share a
 * sealed broker is working again (the issue asks for under 1 s, without
 * blocking the broker loop), and whether any of that grows with the ledger
 * (1M identities). Each command prints its figures and RESULT lines for
 * bench/run.sh.
 *
 *   bench_custody_e2e fleet  [--holders 64] [--threshold 22] [--rotations 5] [--unseals 10] COMMON
 *     1. broker CPU to deal: mosquitto + plugin (custody_threshold K,
 *        custody_shares N), N real iotguard-agent holders. The first deal
 *        (epoch 1) starts by itself once the N agents are online; then each
 *        rotation (`iotguard custody rotate`) is timed from the command to
 *        the custody_active ledger event, and the broker's CPU (its
 *        CPU-time clock, and utime+stime from /proc/PID/stat) over that
 *        window, less its idle rate with the N agents connected and less
 *        what the admin CLI's own request costs it (measured with
 *        `custody status`).
 *     2. a holder's cost: each agent's CPU over the rotation window (until
 *        1 s after activation, so the custody_active rewrite is in), less
 *        its idle rate; median, p90, max over holders and rotations.
 *     3. k-th share to unsealed: `custody seal`, then --unseals times: a
 *        sealed start (timed to its first authenticated client), K agents
 *        started at once, and from the custody events: the service's own
 *        figure (ms from the arrival of the k-th share to the unseal),
 *        unsealed.ts - ts of the k-th verified "share" event, the agents'
 *        start to unsealed, and the broker's CPU over the unseal.
 *   bench_custody_e2e scale  [--identities 1000000] [--unseals 5] COMMON
 *     4. a ledger of that many enrolled devices (3 with real keys run
 *        agents; offline through lib, as bench_scale builds its ledgers),
 *        custody k = 2, n = 3: the first start (unsealed), the deal, seal;
 *        then --unseals sealed starts: start to ready, VmRSS sealed, the
 *        k-th share to unsealed with 2 agents, VmRSS/VmHWM unsealed; and
 *        plain mosquitto's VmRSS as the floor.
 *   bench_custody_e2e holder [--k 22] [--n 64] [--rounds 200] [--work DIR]
 *     2b. in process: ig_custody_handle of a never-connected agent (holder.c).
 *   bench_custody_e2e all [--quick] COMMON
 *     holder, fleet, scale in a row (--quick: 50 holder rounds, 2 rotations,
 *     5 unseals, 200k identities with 3 unseals); about 70 s here
 *     (--quick: about 40 s).
 *
 * COMMON: [--work DIR] [--port P] [--broker-cpu N] [--client-cpu N]
 *         [--plugin SO] [--cli PATH] [--agent PATH]
 * Binaries default to the build tree this program is in. Agents run with
 * --heartbeat 30 (so their idle cost is a few ticks of the MQTT loop) and no
 * optional duty. Work directory: a fresh /var/tmp/bench_custody_e2e-XXXXXX,
 * removed at the end unless BENCH_CUSTODY_KEEP is set (logs of the broker and
 * every agent are there).
 *
 * Timestamps: the cluster head stamps every custody event and ledger record
 * with its clock in ms; that is the precision of the cluster-head figures.
 * The plugin collects its worker's results on Mosquitto's tick, which
 * Mosquitto 2.0 runs once per loop pass: on an idle broker about every
 * 100 ms, so a result can wait up to that long. The service also looks at
 * its holders once a second and asks those online for their shares then,
 * which is in the agents'-start-to-unsealed time (a rotate command is
 * looked at on the next tick).
 */
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_broker.h"
#include "custody_e2e.h"
#include "fleet.h"
#include "ig_custody.h"
#include "ig_keybox.h"
#include "ig_ledger.h"
#include "ig_vss.h"

typedef struct common_opts {
	const char *work, *plugin, *cli, *agent;
	uint64_t port;
	double broker_cpu, client_cpu;
} common_opts;

#define COMMON_OPTIONS(c)                                                                                    \
	CLI_TEXT("work", 0, &(c)->work), CLI_TEXT("plugin", 0, &(c)->plugin), CLI_TEXT("cli", 0, &(c)->cli),    \
		CLI_TEXT("agent", 0, &(c)->agent), CLI_NUMBER("port", 0, &(c)->port, 0, 65535),                      \
		CLI_REAL("broker-cpu", 0, &(c)->broker_cpu, -1, 4095), CLI_REAL("client-cpu", 0, &(c)->client_cpu, -1, 4095)

/* ---- small statistics ------------------------------------------------------------ */

typedef struct series {
	double v[1024];
	size_t n;
} series;

static void add(series *s, double x)
{
	if (s->n < sizeof s->v / sizeof s->v[0])
		s->v[s->n++] = x;
}

static double med(const series *s)
{
	return s->n ? bench_stats_median(s->v, s->n) : 0;
}

static double max_of(const series *s)
{
	double m = 0;
	for (size_t i = 0; i < s->n; i++)
		m = i == 0 || s->v[i] > m ? s->v[i] : m;
	return m;
}

/* "median M (min a, max b; n values)" */
static void print_dist(const char *label, const series *s, const char *unit)
{
	if (!s->n) {
		printf("  %-56s -\n", label);
		return;
	}
	series t = *s;
	double lo = bench_stats_percentile(t.v, t.n, 0), p90 = bench_stats_percentile(t.v, t.n, 0.9),
	       hi = bench_stats_percentile(t.v, t.n, 1);
	printf("  %-56s %9.2f %-3s (min %.2f, p90 %.2f, max %.2f; %zu values)\n", label, med(s), unit, lo, p90, hi, t.n);
}

static fleet *fleet_new(const common_opts *c, const char *work)
{
	fleet *f = calloc(1, sizeof *f);
	if (!f)
		bench_die("out of memory", NULL);
	f->work = work;
	f->cluster = "bench";
	f->plugin = c->plugin;
	f->cli = c->cli;
	f->agent_bin = c->agent;
	f->port = (int)c->port;
	f->broker_cpu = bench_broker_cli_cpu(c->broker_cpu);
	f->client_cpu = bench_broker_cli_cpu(c->client_cpu);
	fleet_init(f);
	bench_proc_pin(f->client_cpu);
	return f;
}

static void fleet_free(fleet *f)
{
	fleet_release(f);
	free(f->ev);
	free(f->lev);
	free(f);
}

static bool all_online(fleet *f, const void *ctx)
{
	return f->n_online >= *(const int *)ctx;
}

static bool is_sealed(fleet *f, const void *ctx)
{
	(void)ctx;
	return f->custody.have && f->custody.sealed;
}

static void settle(fleet *f, double s)
{
	double t0 = bench_now_s();
	while (bench_now_s() - t0 < s)
		fleet_pump(f, 20);
}

static void custody_opts(char *out, size_t cap, unsigned k, unsigned n)
{
	snprintf(out, cap,
	         "plugin_opt_custody_threshold %u\nplugin_opt_custody_shares %u\nplugin_opt_custody_deal_timeout_s 600\n",
	         k, n);
}

/* One sealed start and unseal with agents 0..k-1; fills the figures. */
typedef struct unseal_reading {
	double ready_s, svc_ms, ts_ms, recv_ms, start_to_unsealed_s, cpu_ms;
	long loaded_ms, rss_sealed_kb, rss_kb, hwm_kb;
	unsigned shares;
} unseal_reading;

static unseal_reading unseal_once(fleet *f, const char *opts, unsigned k, bool read_memory)
{
	unseal_reading r = {0};
	r.ready_s = fleet_broker_start(f, opts);
	fleet_wait(f, is_sealed, NULL, 60, "the retained custody state 'sealed'");
	r.loaded_ms = bench_broker_loaded_ms(f->log);
	if (read_memory) {
		settle(f, 0.3);
		r.rss_sealed_kb = bench_proc_status_kb(f->broker, "VmRSS");
	}
	size_t from = f->n_ev;
	uint64_t b0 = fleet_cpu_ns(f->broker);
	double t0 = bench_now_s();
	for (unsigned i = 0; i < k; i++)
		fleet_agent_start(f, (int)i);
	const fleet_event *u = fleet_wait_event(f, false, "unsealed", 0, from, 180);
	uint64_t b1 = fleet_cpu_ns(f->broker);
	const char *p = strstr(u->message, " ms after the k-th");
	if (!p)
		bench_dief("the unsealed event does not say when the k-th share came: '%s'", u->message);
	while (p > u->message && p[-1] >= '0' && p[-1] <= '9')
		p--;
	r.svc_ms = strtod(p, NULL);
	const fleet_event *kth = NULL;
	for (size_t i = from; i < f->n_ev; i++) {
		const fleet_event *e = &f->ev[i];
		if (!strcmp(e->what, "share") && e->epoch == u->epoch && e->ts_ms <= u->ts_ms) {
			r.shares++;
			if (!kth || e->ts_ms >= kth->ts_ms)
				kth = e;
		}
	}
	if (kth) {
		r.ts_ms = u->ts_ms - kth->ts_ms;
		r.recv_ms = (u->recv_s - kth->recv_s) * 1e3;
	}
	r.start_to_unsealed_s = u->recv_s - t0;
	r.cpu_ms = (double)(b1 - b0) / 1e6;
	if (read_memory) {
		settle(f, 0.3);
		r.rss_kb = bench_proc_status_kb(f->broker, "VmRSS");
		r.hwm_kb = bench_proc_status_kb(f->broker, "VmHWM");
	}
	fleet_agents_stop(f);
	fleet_broker_stop(f);
	return r;
}

/* Deal epoch 1 with agents 0..n-1 and wait for it to be active; returns
 * what the first deal took (printed by the caller). */
typedef struct first_deal {
	double online_s, deal_wall_s, record_ms, cpu_ms;
} first_deal;

static first_deal deal_first(fleet *f, int n)
{
	first_deal d = {0};
	double t0 = bench_now_s();
	for (int i = 0; i < n; i++)
		fleet_agent_start(f, i);
	fleet_wait(f, all_online, &n, 180, "every agent's online status");
	double t1 = bench_now_s();
	uint64_t b1 = fleet_cpu_ns(f->broker);
	const fleet_event *act = fleet_wait_event(f, true, "custody_active", 1, 0, 600);
	const fleet_event *ep = fleet_find(f, true, "custody_epoch", 1, 0);
	d.online_s = t1 - t0;
	d.deal_wall_s = act->recv_s - t1;
	d.record_ms = ep ? act->ts_ms - ep->ts_ms : 0;
	d.cpu_ms = (double)(fleet_cpu_ns(f->broker) - b1) / 1e6;
	return d;
}

static void seal_and_stop(fleet *f)
{
	size_t from = f->n_lev;
	fleet_custody_cli(f, "seal");
	fleet_wait_event(f, true, "custody_sealed", 0, from, 60);
	char key[FLEET_PATH + 16];
	snprintf(key, sizeof key, "%s/ch.key", f->ledger);
	struct stat st;
	if (stat(key, &st) == 0)
		bench_dief("%s is still there after 'custody seal'", key);
	fleet_agents_stop(f);
	fleet_broker_stop(f);
}

/* ---- fleet: benchmarks 1, 2, 3 ----------------------------------------------- */

/* The crypto of one deal as the cluster head does it, in this process
 * (median of 50): ig_vss_deal, then per holder the commitments hash and the
 * deal box (the box keys are cached in the cluster state, so not derived). */
static double deal_crypto_ms(unsigned k, unsigned n)
{
	static uint8_t S[32], shares[255][32], comms[255][32];
	uint8_t ch_pk[IG_PK_BYTES], ch_sk[IG_SK_BYTES], pk[IG_PK_BYTES], sk[IG_SK_BYTES];
	ig_box_key bk;
	crypto_sign_keypair(ch_pk, ch_sk);
	crypto_sign_keypair(pk, sk);
	if (ig_keybox_key_for_device(&bk, ch_sk, pk) != IG_OK || ig_custody_secret_new(S, NULL, 0) != IG_OK)
		bench_die("deal crypto set-up failed", NULL);
	series t = {0};
	for (int r = 0; r < 50; r++) {
		double t0 = bench_now_s();
		if (ig_vss_deal(shares, comms, S, k, n) != IG_OK)
			bench_die("ig_vss_deal failed", NULL);
		for (unsigned i = 0; i < n; i++) {
			ig_custody_deal d = {.epoch = 1, .index = (uint8_t)(i + 1), .k = (uint8_t)k, .n = (uint8_t)n};
			uint8_t box[IG_CUSTODY_DEAL_BOX_BYTES], nonce[24];
			memcpy(d.share, shares[i], 32);
			ig_custody_commitments_hash(d.commitments_hash, 1, (const uint8_t(*)[32])comms, k);
			if (ig_custody_deal_seal(box, nonce, &d, &bk) != IG_OK)
				bench_die("ig_custody_deal_seal failed", NULL);
			sodium_memzero(&d, sizeof d);
		}
		add(&t, (bench_now_s() - t0) * 1e3);
	}
	sodium_memzero(S, sizeof S);
	sodium_memzero(shares, sizeof shares);
	sodium_memzero(ch_sk, sizeof ch_sk);
	sodium_memzero(sk, sizeof sk);
	sodium_memzero(&bk, sizeof bk);
	return med(&t);
}

typedef struct fleet_opts {
	unsigned k, n;
	unsigned rotations, unseals;
} fleet_opts;

static int cmd_fleet(const common_opts *c, const fleet_opts *o)
{
	bool made = false;
	const char *work = bench_work_dir(c->work, &made);
	fleet *f = fleet_new(c, work);
	int n = (int)o->n;
	char opts[512];
	custody_opts(opts, sizeof opts, o->k, o->n);
	printf("== bench_custody_e2e fleet: custody k = %u of n = %u, %d iotguard-agent holders (heartbeat 30 s), "
	       "broker %s, agents %s; work %s ==\n", o->k, o->n, n,
	       f->broker_cpu < 0 ? "unpinned" : "pinned", f->client_cpu < 0 ? "unpinned" : "pinned", work);
	fflush(stdout);
	fleet_build_ledger(f, o->n, n);
	double ready = fleet_broker_start(f, opts);
	first_deal d = deal_first(f, n);
	long agent_kb = 0;
	for (int i = 0; i < n; i++)
		agent_kb += bench_proc_status_kb(f->agent[i], "VmRSS");
	printf("broker ready in %.2f s; %d agents online %.2f s after their start (%.1f MB RSS in all, %.1f MB each)\n",
	       ready, n, d.online_s, (double)agent_kb / 1024, (double)agent_kb / 1024 / n);
	printf("first deal (epoch 1, starts at the service's next 1 s look once %d are online): online -> custody_active "
	       "%.2f s; custody_epoch -> custody_active records %.0f ms; broker CPU in that window %.1f ms\n",
	       n, d.deal_wall_s, d.record_ms, d.cpu_ms);
	fflush(stdout);

	/* Idle rates with every agent connected. */
	settle(f, 2);
	uint64_t *a0 = calloc((size_t)n, sizeof *a0), *a1 = calloc((size_t)n, sizeof *a1);
	double *idle = calloc((size_t)n, sizeof *idle);
	if (!a0 || !a1 || !idle)
		bench_die("out of memory", NULL);
	double ti0 = bench_now_s();
	uint64_t bi0 = fleet_cpu_ns(f->broker);
	for (int i = 0; i < n; i++)
		a0[i] = fleet_cpu_ns(f->agent[i]);
	settle(f, 3);
	double idle_wall = bench_now_s() - ti0;
	double broker_idle = (double)(fleet_cpu_ns(f->broker) - bi0) / idle_wall;   /* ns per s */
	series agent_idle = {0};
	for (int i = 0; i < n; i++) {
		idle[i] = (double)(fleet_cpu_ns(f->agent[i]) - a0[i]) / idle_wall;
		add(&agent_idle, idle[i] / 1e3);
	}

	/* What the admin CLI's request itself costs the broker. */
	series cli_cost = {0};
	for (int i = 0; i < 3; i++) {
		double t0 = bench_now_s();
		uint64_t b0 = fleet_cpu_ns(f->broker);
		fleet_custody_cli(f, "status");
		double w = bench_now_s() - t0;
		add(&cli_cost, ((double)(fleet_cpu_ns(f->broker) - b0) - broker_idle * w) / 1e6);
	}
	double cli_ms = med(&cli_cost);
	printf("idle with %d agents: broker %.2f ms CPU/s, agents median %.3f ms CPU/s; an admin CLI request costs the "
	       "broker %.2f ms (custody status)\n", n, broker_idle / 1e6, med(&agent_idle) / 1e3, cli_ms);
	fflush(stdout);

	/* 1 + 2: rotations. */
	series wall = {0}, rec = {0}, bcpu = {0}, bticks = {0}, bafter = {0}, acpu = {0};
	uint64_t epoch = 1;
	for (unsigned r = 0; r < o->rotations; r++) {
		epoch++;
		size_t from = f->n_lev;
		for (int i = 0; i < n; i++)
			a0[i] = fleet_cpu_ns(f->agent[i]);
		long k0 = fleet_stat_ticks(f->broker);
		uint64_t b0 = fleet_cpu_ns(f->broker);
		double t0 = bench_now_s();
		fleet_custody_cli(f, "rotate");
		const fleet_event *act = fleet_wait_event(f, true, "custody_active", epoch, from, 600);
		uint64_t b1 = fleet_cpu_ns(f->broker);
		long k1 = fleet_stat_ticks(f->broker);
		double t1 = act->recv_s;
		const fleet_event *ep = fleet_find(f, true, "custody_epoch", epoch, from);
		settle(f, 1.0);
		double t2 = bench_now_s();
		uint64_t b2 = fleet_cpu_ns(f->broker);
		for (int i = 0; i < n; i++)
			a1[i] = fleet_cpu_ns(f->agent[i]);
		double deal_ms = ((double)(b1 - b0) - broker_idle * (t1 - t0)) / 1e6 - cli_ms;
		add(&wall, (t1 - t0) * 1e3);
		add(&rec, ep ? act->ts_ms - ep->ts_ms : 0);
		add(&bcpu, deal_ms);
		add(&bticks, (double)(k1 - k0) * 1000.0 / (double)sysconf(_SC_CLK_TCK));
		add(&bafter, ((double)(b2 - b1) - broker_idle * (t2 - t1)) / 1e6);
		for (int i = 0; i < n; i++)
			add(&acpu, ((double)(a1[i] - a0[i]) - idle[i] * (t2 - t0)) / 1e6);
		printf("  rotation to epoch %" PRIu64 ": command -> active %.0f ms, records %.0f ms, broker CPU %.1f ms\n",
		       epoch, (t1 - t0) * 1e3, ep ? act->ts_ms - ep->ts_ms : 0, deal_ms);
		fflush(stdout);
	}
	printf("1. broker CPU to deal n = %u, k = %u (%u rotations; idle and the CLI request subtracted):\n", o->n, o->k,
	       o->rotations);
	print_dist("broker CPU, command -> custody_active (CPU clock)", &bcpu, "ms");
	print_dist("broker utime+stime over the same window (/proc, raw)", &bticks, "ms");
	print_dist("broker CPU in the 1 s after activation", &bafter, "ms");
	print_dist("wall, rotate command -> custody_active received", &wall, "ms");
	print_dist("wall, custody_epoch -> custody_active record (CH clock)", &rec, "ms");
	double crypto = deal_crypto_ms(o->k, o->n);
	printf("  in process, the deal's crypto alone (ig_vss_deal + %u x (commitments hash + deal box)): %.2f ms "
	       "(bench_custody: ig_vss_deal alone)\n", o->n, crypto);
	printf("2. a holder's CPU per deal (agent process: deal + ack + custody_active rewrite, idle subtracted):\n");
	print_dist("per holder per rotation", &acpu, "ms");
	fflush(stdout);

	/* 3: seal, then sealed restarts with k agents. */
	seal_and_stop(f);
	series ready_s = {0}, svc = {0}, tsd = {0}, recvd = {0}, start_u = {0}, ucpu = {0}, loaded = {0};
	for (unsigned u = 0; u < o->unseals; u++) {
		unseal_reading r = unseal_once(f, opts, o->k, false);
		add(&ready_s, r.ready_s * 1e3);
		add(&svc, r.svc_ms);
		add(&tsd, r.ts_ms);
		add(&recvd, r.recv_ms);
		add(&start_u, r.start_to_unsealed_s * 1e3);
		add(&ucpu, r.cpu_ms);
		add(&loaded, (double)r.loaded_ms);
		printf("  sealed start %u: ready %.0f ms, %u good shares, k-th share -> unsealed %.0f ms (service), "
		       "%.0f ms (events), agents' start -> unsealed %.0f ms\n", u + 1, r.ready_s * 1e3, r.shares, r.svc_ms,
		       r.ts_ms, r.start_to_unsealed_s * 1e3);
		fflush(stdout);
	}
	printf("3. k-th share -> unsealed, k = %u (%u sealed starts, %u agents started at once each time):\n", o->k,
	       o->unseals, o->k);
	print_dist("service: k-th share's arrival -> unsealed", &svc, "ms");
	print_dist("events: k-th verified 'share' -> 'unsealed' (CH clock)", &tsd, "ms");
	print_dist("the same at the monitor", &recvd, "ms");
	print_dist("agents started -> unsealed at the monitor", &start_u, "ms");
	print_dist("broker CPU from agents' start to unsealed", &ucpu, "ms");
	print_dist("sealed start: exec -> first authenticated client", &ready_s, "ms");
	printf("RESULT custody.deal_cpu_ms %.2f\nRESULT custody.deal_wall_ms %.0f\nRESULT custody.deal_record_ms %.0f\n"
	       "RESULT custody.agent_deal_cpu_ms %.2f\nRESULT custody.unseal_svc_ms %.0f\nRESULT custody.unseal_events_ms "
	       "%.0f\nRESULT custody.unseal_max_svc_ms %.0f\nRESULT custody.deal_crypto_ms %.2f\n",
	       med(&bcpu), med(&wall), med(&rec), med(&acpu), med(&svc), med(&tsd), max_of(&svc), crypto);
	fflush(stdout);
	free(a0);
	free(a1);
	free(idle);
	fleet_free(f);
	bench_work_dir_done(work, made, "BENCH_CUSTODY_KEEP");
	return 0;
}

/* ---- scale: benchmark 4 -------------------------------------------------------- */

static int cmd_scale(const common_opts *c, uint64_t identities, unsigned unseals)
{
	bool made = false;
	const char *work = bench_work_dir(c->work, &made);
	fleet *f = fleet_new(c, work);
	const unsigned k = 2, n = 3;
	char opts[512];
	custody_opts(opts, sizeof opts, k, n);
	printf("== bench_custody_e2e scale: %" PRIu64 " enrolled devices, custody k = %u of n = %u (3 agents), broker %s; "
	       "work %s ==\n", identities, k, n, f->broker_cpu < 0 ? "unpinned" : "pinned", work);
	fflush(stdout);
	double build_s = fleet_build_ledger(f, identities, (int)n);
	char log_path[FLEET_PATH + 32];
	snprintf(log_path, sizeof log_path, "%s/" IG_LEDGER_LOG, f->ledger);
	printf("ledger of %" PRIu64 " records built through lib in %.1f s (%.0f MB)\n", identities + 3, build_s,
	       (double)bench_proc_file_size(log_path) / 1e6);
	long plain_kb = fleet_plain_rss_kb(f);

	double ready = fleet_broker_start(f, opts);
	long loaded = bench_broker_loaded_ms(f->log);
	settle(f, 0.3);
	long rss_first = bench_proc_status_kb(f->broker, "VmRSS");
	first_deal d = deal_first(f, (int)n);
	printf("first start (key on disk): ready %.2f s (plugin 'loaded in' %ld ms), VmRSS %.1f MB; deal of epoch 1: "
	       "records %.0f ms apart\n", ready, loaded, (double)rss_first / 1024, d.record_ms);
	fflush(stdout);
	seal_and_stop(f);

	series ready_s = {0}, svc = {0}, tsd = {0}, start_u = {0}, rss_s = {0}, rss_u = {0}, hwm = {0}, load = {0};
	for (unsigned u = 0; u < unseals; u++) {
		unseal_reading r = unseal_once(f, opts, k, true);
		add(&ready_s, r.ready_s);
		add(&load, (double)r.loaded_ms);
		add(&svc, r.svc_ms);
		add(&tsd, r.ts_ms);
		add(&start_u, r.start_to_unsealed_s * 1e3);
		add(&rss_s, (double)r.rss_sealed_kb / 1024);
		add(&rss_u, (double)r.rss_kb / 1024);
		add(&hwm, (double)r.hwm_kb / 1024);
		printf("  sealed start %u: ready %.2f s ('loaded in' %ld ms), VmRSS %.1f MB sealed, %.1f MB unsealed "
		       "(VmHWM %.1f MB); k-th share -> unsealed %.0f ms (service), %.0f ms (events)\n", u + 1, r.ready_s,
		       r.loaded_ms, (double)r.rss_sealed_kb / 1024, (double)r.rss_kb / 1024, (double)r.hwm_kb / 1024,
		       r.svc_ms, r.ts_ms);
		fflush(stdout);
	}
	printf("4. unseal with %" PRIu64 " identities (k = 2 of n = 3; %u sealed starts):\n", identities, unseals);
	print_dist("sealed start: exec -> first authenticated client", &ready_s, "s");
	print_dist("sealed start: plugin 'loaded in'", &load, "ms");
	print_dist("service: k-th share's arrival -> unsealed", &svc, "ms");
	print_dist("events: k-th verified 'share' -> 'unsealed' (CH clock)", &tsd, "ms");
	print_dist("2 agents started -> unsealed at the monitor", &start_u, "ms");
	print_dist("broker VmRSS sealed (300 ms after ready)", &rss_s, "MB");
	print_dist("broker VmRSS unsealed (300 ms after)", &rss_u, "MB");
	print_dist("broker VmHWM", &hwm, "MB");
	printf("  first start with the key on disk: ready %.2f s, VmRSS %.1f MB; plain mosquitto (no plugin): VmRSS "
	       "%.1f MB\n", ready, (double)rss_first / 1024, (double)plain_kb / 1024);
	printf("RESULT custody.scale_identities %" PRIu64 "\nRESULT custody.scale_ready_s %.2f\n"
	       "RESULT custody.scale_unseal_svc_ms %.0f\nRESULT custody.scale_rss_mb %.1f\nRESULT custody.scale_rss_sealed_mb "
	       "%.1f\nRESULT custody.scale_plain_rss_mb %.1f\nRESULT custody.scale_first_ready_s %.2f\n",
	       identities, med(&ready_s), med(&svc), med(&rss_u), med(&rss_s), (double)plain_kb / 1024, ready);
	fflush(stdout);
	fleet_free(f);
	bench_work_dir_done(work, made, "BENCH_CUSTODY_KEEP");
	return 0;
}

/* ---- main -------------------------------------------------------------------- */

static const char usage[] =
	"usage:\n"
	"  bench_custody_e2e fleet  [--holders 64] [--threshold 22] [--rotations 5] [--unseals 10] COMMON\n"
	"  bench_custody_e2e scale  [--identities 1000000] [--unseals 5] COMMON\n"
	"  bench_custody_e2e holder [--k 22] [--n 64] [--rounds 200] [--work DIR]\n"
	"  bench_custody_e2e all    [--quick] COMMON\n"
	"COMMON: [--work DIR] [--port P] [--broker-cpu N] [--client-cpu N] [--plugin SO] [--cli PATH] [--agent PATH]\n";

int main(int argc, char **argv)
{
	bench_name = "bench_custody_e2e";
	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	if (ig_init() != IG_OK)
		bench_die("libsodium failed to initialise", NULL);
	const char *cmd = argv[1];
	common_opts c = {.broker_cpu = -1, .client_cpu = -1};
	uint64_t holders = 64, threshold = 22, rotations = 5, unseals = 0, identities = 1000000, rounds = 200;
	bool quick = false;
	if (!strcmp(cmd, "fleet")) {
		const cli_option opts[] = {
			COMMON_OPTIONS(&c),
			CLI_NUMBER("holders", 0, &holders, 2, FLEET_AGENTS_MAX),
			CLI_NUMBER("threshold", 0, &threshold, 2, FLEET_AGENTS_MAX),
			CLI_NUMBER("rotations", 0, &rotations, 1, 100),
			CLI_NUMBER("unseals", 0, &unseals, 1, 100),
			CLI_HELP_OPTION(0),
			CLI_OPTIONS_END,
		};
		bench_parse(argc - 1, argv + 1, cmd, opts, usage);
		if (threshold > holders)
			bench_die("--threshold must be at most --holders", NULL);
		fleet_opts o = {.k = (unsigned)threshold, .n = (unsigned)holders, .rotations = (unsigned)rotations,
		                .unseals = unseals ? (unsigned)unseals : 10};
		return cmd_fleet(&c, &o);
	}
	if (!strcmp(cmd, "scale")) {
		const cli_option opts[] = {
			COMMON_OPTIONS(&c),
			CLI_NUMBER("identities", 0, &identities, 3, 100000000),
			CLI_NUMBER("unseals", 0, &unseals, 1, 100),
			CLI_HELP_OPTION(0),
			CLI_OPTIONS_END,
		};
		bench_parse(argc - 1, argv + 1, cmd, opts, usage);
		return cmd_scale(&c, identities, unseals ? (unsigned)unseals : 5);
	}
	if (!strcmp(cmd, "holder")) {
		uint64_t k = 22, n = 64;
		const cli_option opts[] = {
			CLI_TEXT("work", 0, &c.work),
			CLI_NUMBER("k", 0, &k, 2, 255),
			CLI_NUMBER("n", 0, &n, 2, 255),
			CLI_NUMBER("rounds", 0, &rounds, 1, 100000),
			CLI_HELP_OPTION(0),
			CLI_OPTIONS_END,
		};
		bench_parse(argc - 1, argv + 1, cmd, opts, usage);
		if (k > n)
			bench_die("--k must be at most --n", NULL);
		holder_opts h = {.k = (unsigned)k, .n = (unsigned)n, .rounds = (size_t)rounds, .work = c.work};
		return custody_holder_run(&h);
	}
	if (!strcmp(cmd, "all")) {
		const cli_option opts[] = {
			COMMON_OPTIONS(&c),
			CLI_FLAG("quick", 0, &quick),
			CLI_HELP_OPTION(0),
			CLI_OPTIONS_END,
		};
		bench_parse(argc - 1, argv + 1, cmd, opts, usage);
		double t0 = bench_now_s();
		holder_opts h = {.k = 22, .n = 64, .rounds = quick ? 50 : 200, .work = NULL};
		custody_holder_run(&h);
		fleet_opts o = {.k = 22, .n = 64, .rotations = quick ? 2 : 5, .unseals = quick ? 5 : 10};
		cmd_fleet(&c, &o);
		cmd_scale(&c, quick ? 200000 : 1000000, quick ? 3 : 5);
		printf("bench_custody_e2e all: %.0f s\n", bench_now_s() - t0);
		return 0;
	}
	fputs(usage, stderr);
	return 2;
}
