/*
 * bench_entropy.c: entropy contributions the cluster head accepts per
 * second.
 *
 * Why this exists: every device may feed the cluster head's pool, and each
 * contribution costs the broker a sealed-box open (one X25519 scalar
 * multiplication), a JSON parse, a base64 decode and a pool mix on its one
 * event-loop thread. This measures how many of those it absorbs per second
 * when many devices send at once, using the plugin's own count
 * ("entropy.accepted" in iotguard/C/stats) so only contributions that
 * passed every check are counted, and reports the refusals (which must be
 * 0: every contribution here is well formed, in sequence and, with
 * plugin_opt_entropy_min_interval_ms 0, within the rate limit).
 *
 * Each contribution is what the agent sends: {"seq":N,"sealed":B64} on
 * iotguard/C/dev/<id>/entropy, QoS 1, with B64 = crypto_box_seal(seq(8, BE)
 * || block(32)) to the cluster head's X25519 key (from the retained ledger
 * head) and block an ig_entropy_condition output. crypto_box_seal costs the
 * sender an X25519 key generation and a scalar multiplication (60-100 us on
 * the development VM), more than the cluster head spends opening it, so a
 * single load-generator core sealing live would be the bottleneck: the
 * contributions are sealed before timing (each with its own ephemeral key
 * and sequence number, exactly as devices would), and the sealing cost per
 * contribution is printed separately.
 *
 * Run the broker with plugin_opt_stats_interval 1 and
 * plugin_opt_entropy_min_interval_ms 0 (run.sh does). The rate is taken
 * between two stats messages received while contributions were still being
 * sent, so the window is fully loaded.
 *
 *   bench_entropy --port P [--cluster C] [--devices N] [--messages M] [--seal-seconds S]
 *                 [--window W] [--duration S] [--warmup S] [--pid BROKER_PID]
 *
 * QoS 1 only: the PUBACK says the broker has run the plugin on the message,
 * which is what windows the load (QoS 0 would only fill socket buffers).
 *
 * Identities: devices dev-0000000.. and monitor mon-000 from `bench_scale
 * mkledger` (keys derived from the id: benchmark-only, public).
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

#include <cJSON.h>
#include <sodium.h>

#include "ig_common.h"
#include "ig_entropy.h"
#include "ig_token.h"
#include "bench.h"
#include "bench_conn.h"
#include "bench_id.h"
#include "bench_mqtt.h"
#include "bench_proc.h"
#include "bench_stats.h"

#define BENCH_NAME "bench_entropy"
#define MAX_DEVICES 4096
#define SEALED_BYTES (crypto_box_SEALBYTES + 8 + IG_ENTROPY_BLOCK_BYTES)
#define REFUSAL_KINDS 4

/* ---- the benchmark ---------------------------------------------------------- */

typedef struct device {
	bench_conn c;
	char id[IG_ID_MAX + 1];
	uint8_t *pkts;          /* pre-encoded PUBLISH packets, back to back */
	size_t pkts_cap, pkts_len, pkts_off;
	uint64_t queued, sent, acked;
} device;

typedef struct stats_snap {
	bench_stats_ledger l;   /* only have, ts_ms and received_at are used */
	double accepted, refused[REFUSAL_KINDS], pool_inputs;
} stats_snap;

static const char *const refusal_names[REFUSAL_KINDS] = {"malformed", "replayed", "over_rate", "attestation"};

typedef struct bench {
	const char *cluster;
	int ndev, qos;
	device *dev;
	bench_conn mon;
	bool have_ch_pk;
	uint8_t ch_pk[IG_PK_BYTES];
	int mon_subacks;
	uint64_t acked;
	stats_snap last;
	uint64_t stats_seen;
	bench_conn_set set;
} bench;

static void on_device_packet(void *ctx, bench_conn *c, uint8_t type, const uint8_t *body, size_t len)
{
	bench *B = ctx;
	device *d = (device *)((char *)c - offsetof(device, c));
	(void)body;
	(void)len;
	if ((type & 0xf0) == 0x40) {      /* PUBACK: the broker has run the plugin on it */
		d->acked++;
		B->acked++;
	}
}

static void on_monitor_packet(void *ctx, bench_conn *c, uint8_t type, const uint8_t *body, size_t len)
{
	bench *B = ctx;
	stats_snap s = {0};
	cJSON *m = bench_conn_monitor_stats(c, type, body, len, &B->mon_subacks, B->ch_pk, &B->have_ch_pk, &s.l);
	if (!m)
		return;
	s.accepted = bench_jnum(m, "entropy", "accepted", NULL);
	s.pool_inputs = bench_jnum(m, "entropy", "pool_inputs", NULL);
	for (int i = 0; i < REFUSAL_KINDS; i++)
		s.refused[i] = bench_jnum(m, "entropy", "refused", refusal_names[i]);
	if (s.accepted >= 0) {
		B->last = s;
		B->stats_seen++;
	}
	cJSON_Delete(m);
}

/* Seals contributions round-robin over the devices until `messages` are
 * done or `budget_s` has passed; returns seconds spent. */
static double preseal(bench *B, uint64_t messages, double budget_s, uint64_t *made)
{
	uint8_t x_pk[crypto_box_PUBLICKEYBYTES];
	if (crypto_sign_ed25519_pk_to_curve25519(x_pk, B->ch_pk) != 0)
		bench_die("the cluster-head key from the ledger head is not a valid Ed25519 key", NULL);
	uint64_t base = ig_now_ms() * 1000u;   /* above any earlier run's sequence numbers */
	char topic[IG_ID_MAX + IG_CLUSTER_MAX + 32], json[256];
	char b64[sodium_base64_ENCODED_LEN(SEALED_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	uint8_t raw[64], m[8 + IG_ENTROPY_BLOCK_BYTES], sealed[SEALED_BYTES];
	uint16_t *pid = calloc((size_t)B->ndev, sizeof *pid);
	if (!pid)
		bench_die("out of memory", NULL);
	size_t per_device = (size_t)(messages / (uint64_t)B->ndev + 1) * 256;
	for (int i = 0; i < B->ndev; i++) {
		B->dev[i].pkts_cap = per_device;
		B->dev[i].pkts = malloc(per_device);
		if (!B->dev[i].pkts)
			bench_die("out of memory", NULL);
	}
	double t0 = bench_now_s();
	uint64_t n = 0;
	for (; n < messages; n++) {
		if ((n & 255) == 0 && bench_now_s() - t0 > budget_s)
			break;
		int di = (int)(n % (uint64_t)B->ndev);
		device *d = &B->dev[di];
		uint64_t seq = base + d->queued + 1;
		randombytes_buf(raw, sizeof raw);
		ig_put_u64(m, seq);
		ig_entropy_condition(m + 8, raw, sizeof raw);
		if (crypto_box_seal(sealed, m, sizeof m, x_pk) != 0)
			bench_die("crypto_box_seal failed", NULL);
		sodium_bin2base64(b64, sizeof b64, sealed, sizeof sealed, sodium_base64_VARIANT_ORIGINAL);
		int jl = snprintf(json, sizeof json, "{\"seq\":%" PRIu64 ",\"sealed\":\"%s\"}", seq, b64);
		snprintf(topic, sizeof topic, "iotguard/%s/dev/%s/entropy", B->cluster, d->id);
		/* Encoded with the connection writer into the device's own packet
		 * store, which was sized up front (no copying while sealing). */
		bench_conn store = {.w = d->pkts, .wcap = d->pkts_cap, .wlen = d->pkts_len, .next_pid = pid[di]};
		bench_conn_publish(&store, topic, json, (size_t)jl, B->qos);
		d->pkts = store.w;
		d->pkts_cap = store.wcap;
		d->pkts_len = store.wlen;
		pid[di] = store.next_pid;
		d->queued++;
	}
	sodium_memzero(m, sizeof m);
	sodium_memzero(raw, sizeof raw);
	free(pid);
	*made = n;
	return bench_now_s() - t0;
}

int main(int argc, char **argv)
{
	bench_name = BENCH_NAME;
	uint64_t port = 0, pid = 0, devices = 200, messages = 120000, window = 2000;
	double seal_budget = 10.0, duration = 3.0, warmup = 0.5;
	bench B = {.cluster = "bench", .qos = 1};   /* QoS 1, as the agent sends */
	const cli_option opts[] = {
		BENCH_CONN_CLI_OPTIONS(&port, &B.cluster, &pid),
		CLI_NUMBER("devices", 0, &devices, 1, MAX_DEVICES),
		CLI_NUMBER("messages", 0, &messages, 1, UINT32_MAX),
		CLI_REAL("seal-seconds", 0, &seal_budget, 0.001, 30),
		CLI_NUMBER("window", 0, &window, 1, UINT32_MAX),
		CLI_REAL("duration", 0, &duration, 0.001, 30),
		CLI_REAL("warmup", 0, &warmup, 0, 60),
		CLI_HELP_OPTION(0),
		CLI_OPTIONS_END,
	};
	bench_parse(argc, argv, NULL, opts,
	            "usage: bench_entropy --port P [--cluster C] [--devices N] [--messages M] [--seal-seconds S]\n"
	            "                     [--window W] [--duration S] [--warmup S] [--pid BROKER_PID]\n");
	B.ndev = (int)devices;
	if (!port || messages < devices)
		bench_die("need --port, and --messages at least --devices", NULL);
	if (ig_init() != IG_OK)
		bench_die("libsodium failed to initialise", NULL);
	B.dev = calloc((size_t)B.ndev, sizeof *B.dev);
	struct pollfd *pfd = calloc((size_t)B.ndev + 1, sizeof *pfd);
	if (!B.dev || !pfd)
		bench_die("out of memory", NULL);
	B.set = (bench_conn_set){.n = B.ndev + 1, .mon = &B.mon, .mon_id = "mon-000", .on_mon = on_monitor_packet,
	                         BENCH_CONN_ARRAY(B.dev, device), .on_dev = on_device_packet,
	                         .closed_why = "(entropy topic refused by the ACL?)",
	                         .ctx = &B, .pfd = pfd};
	uint64_t wdev = window / (uint64_t)B.ndev ? window / (uint64_t)B.ndev : 1;

	char tok[IG_TOKEN_TEXT_MAX], topic[256];
	bench_id_token(tok, sizeof tok, B.cluster, "mon-000", 600);
	bench_conn_open(&B.mon, (int)port, "mon-000", tok);
	snprintf(topic, sizeof topic, "iotguard/%s/ledger/head", B.cluster);
	bench_conn_subscribe(&B.mon, topic, 0);
	snprintf(topic, sizeof topic, "iotguard/%s/stats", B.cluster);
	bench_conn_subscribe(&B.mon, topic, 0);
	for (int i = 0; i < B.ndev; i++) {
		device *d = &B.dev[i];
		snprintf(d->id, sizeof d->id, "dev-%07d", i);
		bench_id_token(tok, sizeof tok, B.cluster, d->id, 600);
		bench_conn_open(&d->c, (int)port, d->id, tok);
	}
	double t_setup = bench_now_s();
	while ((!B.have_ch_pk || B.mon_subacks < 2) && bench_now_s() - t_setup < 10)
		bench_conn_pump(&B.set, 50);
	if (!B.have_ch_pk)
		bench_die("no retained iotguard/<cluster>/ledger/head with ch_pubkey arrived within 10 s", NULL);

	uint64_t made = 0;
	double seal_s = preseal(&B, messages, seal_budget, &made);
	printf("== bench_entropy: %d devices, %" PRIu64 " sealed contributions (QoS %d, window %" PRIu64
	       " per device), %.1f s (+%.1f s warm-up) ==\n",
	       B.ndev, made, B.qos, wdev, duration, warmup);
	printf("sealing on the load generator (before timing): %.1f us per contribution (conditioning, crypto_box_seal, "
	       "base64, JSON)\n", seal_s / (double)made * 1e6);
	printf("RESULT entropy.seal_us %.1f\n", seal_s / (double)made * 1e6);
	fflush(stdout);

	/* Baseline: a stats message before any contribution. */
	uint64_t seen0 = B.stats_seen;
	double wait_until = bench_now_s() + 2.5;
	while (B.stats_seen == seen0 && bench_now_s() < wait_until)
		bench_conn_pump(&B.set, 50);
	if (B.stats_seen == seen0)
		bench_die("no iotguard/<cluster>/stats message within 2.5 s: run the broker with plugin_opt_stats_interval 1", NULL);
	stats_snap s_base = B.last, s0 = {0}, s1 = {0};
	uint64_t acked_s0 = 0, acked_s1 = 0, cpu_s0 = 0, cpu_s1 = 0, self_s0 = 0, self_s1 = 0;
	uint64_t sent = 0, seen_mark = B.stats_seen;
	double t0 = bench_now_s(), t_count = t0 + warmup, exhausted_at = 0;
	for (;;) {
		double now = bench_now_s();
		bool left = false;
		for (int i = 0; i < B.ndev; i++) {
			device *d = &B.dev[i];
			uint64_t inflight = d->sent - d->acked;
			while (d->pkts_off < d->pkts_len && inflight < wdev && d->c.wlen < 64 * 1024) {
				size_t n = bench_mqtt_packet_len(d->pkts + d->pkts_off);
				bench_conn_reserve(&d->c, n);
				memcpy(d->c.w + d->c.wlen, d->pkts + d->pkts_off, n);
				d->c.wlen += n;
				d->pkts_off += n;
				d->sent++;
				sent++;
				inflight++;
			}
			if (bench_conn_wants_write(&d->c) && !bench_conn_flush(&d->c))
				bench_die("a device's connection broke", d->id);
			left = left || d->pkts_off < d->pkts_len || bench_conn_wants_write(&d->c);
		}
		if (!left && !exhausted_at)
			exhausted_at = now;
		/* Stats taken while contributions were still queued at the client
		 * cover a fully loaded interval. */
		if (B.stats_seen != seen_mark) {
			seen_mark = B.stats_seen;
			if (!exhausted_at && B.last.l.received_at >= t_count) {
				if (!s0.l.have) {
					s0 = B.last;
					acked_s0 = B.acked;
					cpu_s0 = pid ? bench_proc_cpu_ns(pid) : 0;
					self_s0 = bench_proc_self_cpu_ns();
				} else {
					s1 = B.last;
					acked_s1 = B.acked;
					cpu_s1 = pid ? bench_proc_cpu_ns(pid) : 0;
					self_s1 = bench_proc_self_cpu_ns();
				}
			}
		}
		if (s1.l.have && s1.l.ts_ms - s0.l.ts_ms >= duration * 1000.0)
			break;
		if (exhausted_at)
			break;
		bench_conn_pump(&B.set, 5);
	}
	if (exhausted_at && !(s1.l.have && s1.l.ts_ms - s0.l.ts_ms >= duration * 1000.0))
		fprintf(stderr, BENCH_NAME ": the %" PRIu64 " pre-sealed contributions ran out before %.1f s of stats had "
		                "passed; the figure covers less (raise --messages or --seal-seconds)\n", made, duration);
	/* Let the rest drain, then take a final stats message for the totals. */
	double drain_until = bench_now_s() + 10.0;
	for (;;) {
		bool left = false;
		for (int i = 0; i < B.ndev; i++) {
			device *d = &B.dev[i];
			left = left || bench_conn_wants_write(&d->c) || d->acked < d->sent;
		}
		if (!left || bench_now_s() > drain_until)
			break;
		bench_conn_pump(&B.set, 20);
	}
	double final_from = bench_now_s();
	uint64_t seen_final = B.stats_seen;
	while (bench_now_s() - final_from < 2.5) {
		bench_conn_pump(&B.set, 50);
		if (B.stats_seen != seen_final && B.last.l.received_at > final_from)
			break;
	}
	stats_snap s_fin = B.last;

	if (!s0.l.have || !s1.l.have) {
		printf("accepted/s: n/a (fewer than two stats messages under load; raise --messages)\n");
	} else {
		double dt = (s1.l.ts_ms - s0.l.ts_ms) / 1000.0, acc = s1.accepted - s0.accepted;
		double refused = 0;
		for (int i = 0; i < REFUSAL_KINDS; i++)
			refused += s1.refused[i] - s0.refused[i];
		printf("plugin stats over %.2f s under load: %.0f contributions accepted = %.0f accepted/s, %.0f refused\n", dt,
		       acc, acc / dt, refused);
		printf("client side over the same stats window: %.0f PUBACKs/s\n",
		       (double)(acked_s1 - acked_s0) / (s1.l.received_at - s0.l.received_at));
		printf("RESULT entropy.accepted_per_s %.0f\n", acc / dt);
		if (pid && acc > 0) {
			double us = (double)(cpu_s1 - cpu_s0) / 1e3 / acc;
			printf("broker CPU per accepted contribution: %.1f us (broker busy %.0f%% of one core)\n", us,
			       (double)(cpu_s1 - cpu_s0) / 1e9 / (s1.l.received_at - s0.l.received_at) * 100);
			printf("RESULT entropy.cpu_us %.1f\n", us);
		}
		if (acc > 0)
			printf("load generator CPU per contribution: %.1f us (sending pre-sealed packets, reading PUBACKs)\n",
			       (double)(self_s1 - self_s0) / 1e3 / acc);
	}
	double total_refused = 0, total_acc = s_fin.accepted - s_base.accepted;
	printf("whole run: sent %" PRIu64 ", acknowledged %" PRIu64 ", accepted %.0f, refused", sent, B.acked, total_acc);
	for (int i = 0; i < REFUSAL_KINDS; i++) {
		double r = s_fin.refused[i] - s_base.refused[i];
		total_refused += r;
		printf(" %s=%.0f", refusal_names[i], r);
	}
	printf(" (total %.0f; must be 0); pool inputs +%.0f\n", total_refused, s_fin.pool_inputs - s_base.pool_inputs);
	printf("RESULT entropy.refused %.0f\n", total_refused);
	if ((double)sent != total_acc + total_refused)
		printf("note: %.0f contributions sent are in neither count (final stats taken too early?)\n",
		       (double)sent - total_acc - total_refused);
	fflush(stdout);

	for (int i = 0; i < B.ndev; i++) {
		bench_conn_close(&B.dev[i].c);
		free(B.dev[i].pkts);
	}
	bench_conn_close(&B.mon);
	free(B.dev);
	free(pfd);
	return total_refused > 0 ? 1 : 0;
}
