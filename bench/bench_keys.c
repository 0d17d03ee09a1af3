/*
 * bench_keys.c: session keys issued end to end, pairs per second.
 *
 * Why this exists: a session key is only useful once BOTH devices hold it,
 * and the cluster head hands the copies out only after the key's audit
 * record (KEY_ISSUED) is durable in the ledger. So the figure that matters
 * is not "requests handled" but "pairs that can talk": A asks on its ch
 * topic for a key with B, and the pair counts once A and B have each
 * received their session_key inbox message, opened the box with the real
 * crypto a device does (ig_keybox_open with the precomputed X25519 box key)
 * and found the same key inside. Every counted pair therefore implies a
 * KEY_ISSUED record that was fdatasync'd before either copy left the broker:
 * durability is part of what is measured, by construction of the plugin.
 *
 * One process drives all devices (2 x --pairs, e.g. 200 devices = 100
 * pairs) from one poll() loop. Like bench_publish, it speaks MQTT 3.1.1
 * itself, because libmosquitto's one-send-per-packet, byte-by-byte reads
 * would make the load generator, not the broker, the limit. Each pair keeps
 * --window requests in flight; a request is {"type":"session_key",
 * "peer":B,"nonce":N}, QoS 1 like the agent sends it, and inboxes are
 * subscribed at QoS 1 like the agent does.
 *
 * A monitor subscribes iotguard/C/stats (run the broker with
 * plugin_opt_stats_interval 1) so the tool can print the plugin's own view:
 * keys issued per second between two stats messages taken under load, and
 * the ledger's submit-to-durable commit latency.
 *
 *   bench_keys --port P [--cluster C] [--pairs N] [--window W] [--duration S]
 *              [--warmup S] [--pid BROKER_PID] [--qos 0|1] [--goal PAIRS_PER_S] [--probe S]
 *
 * --peer-port P2 connects every B device to another broker of the same
 * cluster (shared ledger, bridged; docs/PROTOCOL.md "Several brokers"):
 * A's broker issues the key and B's copy crosses the bridge, so the figure is
 * session-key pairs across brokers (bench/run.sh --shared runs it next to
 * the one-broker figure). --result-prefix names its RESULT lines.
 *
 * After the throughput run, --probe S (1.5; 0 = off) seconds with one pair
 * and one request in flight show what a single device waits for its key.
 *
 * Identities are the benchmark's: devices dev-0000000.. and monitor mon-000
 * from `bench_scale mkledger` (keys derived from the id with a fixed
 * benchmark string, so they are public: never use them outside a benchmark).
 * The broker needs plugin_opt_key_requests_per_minute raised (run.sh sets
 * it), or the plugin's rate limit is what gets measured.
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

#include "ig_aead.h"
#include "ig_common.h"
#include "ig_keybox.h"
#include "ig_token.h"
#include "bench.h"
#include "bench_conn.h"
#include "bench_id.h"
#include "bench_proc.h"
#include "bench_stats.h"

#define BENCH_NAME "bench_keys"
#define MAX_PAIRS 2048
#define MAX_WINDOW 64
#define REQUEST_TIMEOUT_S 5.0
#define MAX_LATENCIES (4u * 1024u * 1024u)

/* ---- the benchmark ---------------------------------------------------------- */

typedef struct slot {
	bool busy, got_a, got_b;
	uint64_t seq;
	double sent_at;
	uint8_t key_id[IG_KEY_ID_BYTES];
	uint8_t key[IG_AEAD_KEY_BYTES];
} slot;

/* B's copy can arrive before A's (they go out on different sockets). */
typedef struct early {
	bool used;
	double at;
	uint8_t key_id[IG_KEY_ID_BYTES];
	uint8_t key[IG_AEAD_KEY_BYTES];
} early;

typedef struct pair {
	int a, b;
	uint64_t next_seq;
	int outstanding;
	slot slots[MAX_WINDOW];
	early early[2 * MAX_WINDOW];
} pair;

typedef struct device {
	bench_conn c;
	char id[IG_ID_MAX + 1];
	char ch_topic[160];
	int pair;
	bool is_a;
	ig_box_key bk;
} device;

typedef struct stats_snap {
	bench_stats_ledger l;
	double issued, refused;
} stats_snap;

typedef struct bench {
	const char *cluster;
	int qos, window, npairs, ndev;
	device *dev;
	pair *pairs;
	bench_conn mon;
	int mon_subacks;
	bool have_ch_pk;
	uint8_t ch_pk[IG_PK_BYTES];
	int subacks;
	/* counters */
	bool counting;
	uint64_t completed, key_msgs, timeouts, bad, mismatched, early_overflow;
	bench_stats_codes errors;
	bench_stats_lat lat;
	bench_conn_set set;
	stats_snap last_stats;
	int stats_seen;
} bench;

static void send_request(bench *B, pair *p, int s)
{
	device *a = &B->dev[p->a];
	slot *sl = &p->slots[s];
	memset(sl, 0, sizeof *sl);
	sl->busy = true;
	sl->seq = ++p->next_seq;
	sl->sent_at = bench_now_s();
	char json[256];
	int n = snprintf(json, sizeof json, "{\"type\":\"session_key\",\"peer\":\"%s\",\"nonce\":\"p%d.s%d.%" PRIu64 "\"}",
	                 B->dev[p->b].id, (int)(p - B->pairs), s, sl->seq);
	bench_conn_publish(&a->c, a->ch_topic, json, (size_t)n, B->qos);
	p->outstanding++;
}

static void finish(bench *B, pair *p, slot *sl, double now)
{
	B->completed++;
	if (B->counting) {
		bench_stats_lat_add_ms(&B->lat, (now - sl->sent_at) * 1000.0);
	}
	sodium_memzero(sl, sizeof *sl);
	p->outstanding--;
}

/* Opens one session_key inbox message the way a device does and returns
 * the key, or false (counted as bad) if anything does not check out. */
static bool open_key(bench *B, device *d, const cJSON *m, ig_session_key *sk)
{
	const cJSON *kid = cJSON_GetObjectItemCaseSensitive(m, "key_id");
	const cJSON *peer = cJSON_GetObjectItemCaseSensitive(m, "peer");
	const cJSON *suite = cJSON_GetObjectItemCaseSensitive(m, "suite");
	const cJSON *dir = cJSON_GetObjectItemCaseSensitive(m, "direction");
	const cJSON *bn = cJSON_GetObjectItemCaseSensitive(m, "box_nonce");
	const cJSON *box = cJSON_GetObjectItemCaseSensitive(m, "box");
	uint8_t key_id[IG_KEY_ID_BYTES], nonce[IG_KEYBOX_NONCE_BYTES], raw[512];
	size_t raw_len = 0;
	if (!cJSON_IsString(kid) || !cJSON_IsString(peer) || !cJSON_IsString(suite) || !cJSON_IsNumber(dir) ||
	    !cJSON_IsString(bn) || !cJSON_IsString(box) ||
	    ig_hex_decode(key_id, sizeof key_id, kid->valuestring, strlen(kid->valuestring)) != IG_OK ||
	    ig_hex_decode(nonce, sizeof nonce, bn->valuestring, strlen(bn->valuestring)) != IG_OK ||
	    sodium_base642bin(raw, sizeof raw, box->valuestring, strlen(box->valuestring), NULL, &raw_len, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0)
		return false;
	if (ig_keybox_open(sk, raw, raw_len, nonce, &d->bk) != IG_OK)
		return false;
	const char *want_peer = B->dev[d->is_a ? B->pairs[d->pair].b : B->pairs[d->pair].a].id;
	return memcmp(sk->key_id, key_id, sizeof key_id) == 0 && sk->direction == (d->is_a ? 0 : 1) &&
	       (int)dir->valuedouble == sk->direction && strcmp(sk->peer, want_peer) == 0 &&
	       strcmp(peer->valuestring, want_peer) == 0 && ig_suite_parse(suite->valuestring) == sk->suite &&
	       sk->expires_at > ig_now_ms() / 1000;
}

static void on_inbox(bench *B, device *d, const uint8_t *payload, size_t plen)
{
	cJSON *m = cJSON_ParseWithLength((const char *)payload, plen);
	const cJSON *type = m ? cJSON_GetObjectItemCaseSensitive(m, "type") : NULL;
	pair *p = &B->pairs[d->pair];
	double now = bench_now_s();
	if (!cJSON_IsString(type)) {
		B->bad++;
	} else if (!strcmp(type->valuestring, "error")) {
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(m, "error");
		bench_stats_codes_add(&B->errors, cJSON_IsString(code) ? code->valuestring : "?");
		/* Errors carry no nonce: retire the oldest request still waiting. */
		slot *oldest = NULL;
		for (int s = 0; s < B->window; s++)
			if (p->slots[s].busy && !p->slots[s].got_a && (!oldest || p->slots[s].seq < oldest->seq))
				oldest = &p->slots[s];
		if (oldest && d->is_a) {
			sodium_memzero(oldest, sizeof *oldest);
			p->outstanding--;
		}
	} else if (!strcmp(type->valuestring, "session_key")) {
		ig_session_key sk;
		B->key_msgs++;
		if (!open_key(B, d, m, &sk)) {
			B->bad++;
		} else if (d->is_a) {
			int pi = -1, s = -1;
			uint64_t seq = 0;
			if (sscanf(sk.request_nonce, "p%d.s%d.%" SCNu64, &pi, &s, &seq) != 3 || pi != d->pair || s < 0 ||
			    s >= B->window || !p->slots[s].busy || p->slots[s].seq != seq || p->slots[s].got_a) {
				B->bad++;
			} else {
				slot *sl = &p->slots[s];
				sl->got_a = true;
				memcpy(sl->key_id, sk.key_id, IG_KEY_ID_BYTES);
				memcpy(sl->key, sk.key, IG_AEAD_KEY_BYTES);
				for (int e = 0; e < 2 * MAX_WINDOW; e++) {
					early *ea = &p->early[e];
					if (ea->used && memcmp(ea->key_id, sk.key_id, IG_KEY_ID_BYTES) == 0) {
						if (sodium_memcmp(ea->key, sl->key, IG_AEAD_KEY_BYTES) != 0)
							B->mismatched++;
						sodium_memzero(ea, sizeof *ea);
						sl->got_b = true;
						break;
					}
				}
				if (sl->got_b)
					finish(B, p, sl, now);
			}
		} else {
			slot *sl = NULL;
			for (int s = 0; s < B->window && !sl; s++)
				if (p->slots[s].busy && p->slots[s].got_a &&
				    memcmp(p->slots[s].key_id, sk.key_id, IG_KEY_ID_BYTES) == 0)
					sl = &p->slots[s];
			if (sl) {
				if (sodium_memcmp(sk.key, sl->key, IG_AEAD_KEY_BYTES) != 0)
					B->mismatched++;
				sl->got_b = true;
				finish(B, p, sl, now);
			} else {
				early *ea = NULL;
				for (int e = 0; e < 2 * MAX_WINDOW && !ea; e++)
					if (!p->early[e].used)
						ea = &p->early[e];
				if (!ea) {
					B->early_overflow++;
				} else {
					ea->used = true;
					ea->at = now;
					memcpy(ea->key_id, sk.key_id, IG_KEY_ID_BYTES);
					memcpy(ea->key, sk.key, IG_AEAD_KEY_BYTES);
				}
			}
		}
		sodium_memzero(&sk, sizeof sk);
	} else {
		B->bad++;
	}
	cJSON_Delete(m);
}

static void on_device_packet(void *ctx, bench_conn *c, uint8_t type, const uint8_t *body, size_t len)
{
	bench *B = ctx;
	device *d = (device *)((char *)c - offsetof(device, c));
	bench_conn_msg msg;
	if (bench_conn_take_publish(c, type, body, len, d->id, &B->subacks, &msg))
		on_inbox(B, d, msg.payload, msg.plen);
	else if ((type & 0xf0) == 0x30)
		B->bad++;
}

static void on_monitor_packet(void *ctx, bench_conn *c, uint8_t type, const uint8_t *body, size_t len)
{
	bench *B = ctx;
	stats_snap s = {0};
	cJSON *m = bench_conn_monitor_stats(c, type, body, len, &B->mon_subacks, B->ch_pk, &B->have_ch_pk, &s.l);
	if (!m)
		return;
	s.issued = bench_jnum(m, "keys", "issued", NULL);
	s.refused = bench_jnum(m, "keys", "refused", NULL);
	B->last_stats = s;
	B->stats_seen++;
	cJSON_Delete(m);
}

typedef struct phase_result {
	uint64_t counted, unfinished;
	double rate, secs, cpu_us, self_us, busy, p50, p99, max;
	stats_snap s_begin, s_end;
} phase_result;

/* Keeps `window` requests in flight for the first `active` pairs. With
 * want_stats, sending goes on past the timed window until a stats message
 * taken after it arrives, so two stats messages bracket a loaded interval.
 * Ends with a drain, so nothing is left half-delivered. */
static phase_result run_load(bench *B, int active, int window, double warmup, double duration, bool want_stats,
                             int pid)
{
	phase_result res = {0};
	double t0 = bench_now_s(), t_count = t0 + warmup, t_end = t_count + duration, t_counted = 0, t_stopped = 0;
	uint64_t cpu0 = 0, cpu_used = 0, self0 = 0, self_used = 0, done0 = 0;
	int stats_at_count = 0;
	bool ended = false;
	double stop_sending_at = t_end + (want_stats ? 2.5 : 0);
	B->window = window;
	B->lat.n = 0;
	for (;;) {
		double now = bench_now_s();
		if (!B->counting && !ended && now >= t_count) {
			B->counting = true;
			t_counted = now;
			cpu0 = pid ? bench_proc_cpu_ns(pid) : 0;
			self0 = bench_proc_self_cpu_ns();
			done0 = B->completed;
			stats_at_count = B->stats_seen;
		}
		if (B->counting && now >= t_end) {
			B->counting = false;
			ended = true;
			t_stopped = now;
			res.counted = B->completed - done0;
			cpu_used = pid ? bench_proc_cpu_ns(pid) - cpu0 : 0;
			self_used = bench_proc_self_cpu_ns() - self0;
		}
		/* The first stats taken after counting began, and the first after
		 * the window: their difference is the plugin's view of the load. */
		if (want_stats && B->stats_seen > stats_at_count && B->counting && !res.s_begin.l.have)
			res.s_begin = B->last_stats;
		if (ended && want_stats && B->last_stats.l.have && B->last_stats.l.received_at > t_end && res.s_begin.l.have &&
		    B->last_stats.l.ts_ms > res.s_begin.l.ts_ms) {
			res.s_end = B->last_stats;
			break;
		}
		if (ended && now >= stop_sending_at)
			break;
		for (int pi = 0; pi < active; pi++) {
			pair *p = &B->pairs[pi];
			for (int s = 0; s < window && p->outstanding < window; s++) {
				if (!p->slots[s].busy)
					send_request(B, p, s);
			}
			for (int s = 0; s < window; s++) {
				slot *sl = &p->slots[s];
				if (sl->busy && now - sl->sent_at > REQUEST_TIMEOUT_S) {
					B->timeouts++;
					sodium_memzero(sl, sizeof *sl);
					p->outstanding--;
				}
			}
		}
		bench_conn_pump(&B->set, 20);
	}
	double drain_until = bench_now_s() + 3.0;
	for (;;) {
		res.unfinished = 0;
		for (int pi = 0; pi < active; pi++)
			res.unfinished += (uint64_t)B->pairs[pi].outstanding;
		if (!res.unfinished || bench_now_s() > drain_until)
			break;
		bench_conn_pump(&B->set, 20);
	}
	res.secs = t_stopped - t_counted;
	res.rate = res.secs > 0 ? (double)res.counted / res.secs : 0;
	if (res.counted) {
		res.cpu_us = (double)cpu_used / 1e3 / (double)res.counted;
		res.self_us = (double)self_used / 1e3 / (double)res.counted;
		res.busy = (double)cpu_used / 1e9 / res.secs;
	}
	bench_stats_lat_summary(&B->lat, &res.p50, &res.p99, &res.max);
	return res;
}

int main(int argc, char **argv)
{
	bench_name = BENCH_NAME;
	const char *R = "keys"; /* prefix of the RESULT lines: run.sh tells runs apart */
	uint64_t port = 0, pid = 0, pairs = 100, window = 4, qos = 1, peer_port = 0;
	double duration = 5.0, warmup = 1.0, goal = 5000, probe = 1.5;
	bench B = {.cluster = "bench"};
	const cli_option opts[] = {
		BENCH_CONN_CLI_OPTIONS(&port, &B.cluster, &pid),
		CLI_NUMBER("pairs", 0, &pairs, 1, MAX_PAIRS),
		CLI_NUMBER("window", 0, &window, 1, MAX_WINDOW),
		CLI_REAL("duration", 0, &duration, 0.001, 50),
		CLI_REAL("warmup", 0, &warmup, 0, 60),
		CLI_NUMBER("qos", 0, &qos, 0, 1),
		CLI_REAL("goal", 0, &goal, 0, 1e9),
		CLI_REAL("probe", 0, &probe, 0, 10),
		CLI_NUMBER("peer-port", 0, &peer_port, 1, 65535),
		CLI_TEXT("result-prefix", 0, &R),
		CLI_HELP_OPTION(0),
		CLI_OPTIONS_END,
	};
	bench_parse(argc, argv, NULL, opts,
	            "usage: bench_keys --port P [--cluster C] [--pairs N] [--window W] [--duration S]\n"
	            "                  [--warmup S] [--pid BROKER_PID] [--qos 0|1] [--goal PAIRS_PER_S] [--probe S]\n"
	            "                  [--peer-port P2] [--result-prefix keys]\n"
	            "  --peer-port: the B devices connect to another broker of the cluster (shared ledger,\n"
	            "  bridged): pairs across brokers; --pid is then A's broker\n");
	if (!port)
		bench_die("--port is required", NULL);
	B.npairs = (int)pairs;
	B.window = (int)window;
	B.qos = (int)qos;
	if (ig_init() != IG_OK)
		bench_die("libsodium failed to initialise", NULL);

	B.ndev = 2 * B.npairs;
	B.dev = calloc((size_t)B.ndev, sizeof *B.dev);
	B.pairs = calloc((size_t)B.npairs, sizeof *B.pairs);
	bench_stats_lat_init(&B.lat, MAX_LATENCIES);
	struct pollfd *pfd = calloc((size_t)B.ndev + 1, sizeof *pfd);
	if (!B.dev || !B.pairs || !pfd)
		bench_die("out of memory", NULL);
	B.set = (bench_conn_set){.n = B.ndev + 1, .mon = &B.mon, .mon_id = "mon-000", .on_mon = on_monitor_packet,
	                         BENCH_CONN_ARRAY(B.dev, device), .on_dev = on_device_packet,
	                         .closed_why = "(ACL refusal, or a takeover?)", .ctx = &B,
	                         .pfd = pfd};

	/* The monitor learns the cluster-head key the way a device does (the
	 * retained ledger head) and reads the plugin's stats. */
	char tok[IG_TOKEN_TEXT_MAX], topic[256];
	bench_id_token(tok, sizeof tok, B.cluster, "mon-000", 600);
	bench_conn_open(&B.mon, (int)port, "mon-000", tok);
	snprintf(topic, sizeof topic, "iotguard/%s/ledger/head", B.cluster);
	bench_conn_subscribe(&B.mon, topic, 0);
	snprintf(topic, sizeof topic, "iotguard/%s/stats", B.cluster);
	bench_conn_subscribe(&B.mon, topic, 0);
	double t_setup = bench_now_s();
	for (int i = 0; i < B.ndev; i++) {
		device *d = &B.dev[i];
		snprintf(d->id, sizeof d->id, "dev-%07d", i);
		snprintf(d->ch_topic, sizeof d->ch_topic, "iotguard/%s/ch/%s", B.cluster, d->id);
		d->pair = i / 2;
		d->is_a = (i % 2) == 0;
		bench_id_token(tok, sizeof tok, B.cluster, d->id, 600);
		bench_conn_open(&d->c, (int)(d->is_a || !peer_port ? port : peer_port), d->id, tok);
		snprintf(topic, sizeof topic, "iotguard/%s/dev/%s/inbox", B.cluster, d->id);
		bench_conn_subscribe(&d->c, topic, 1);
		if (d->is_a)
			B.pairs[d->pair].a = i;
		else
			B.pairs[d->pair].b = i;
	}
	while ((B.subacks < B.ndev || !B.have_ch_pk || B.mon_subacks < 2) && bench_now_s() - t_setup < 10)
		bench_conn_pump(&B.set, 50);
	if (!B.have_ch_pk)
		bench_die("no retained iotguard/<cluster>/ledger/head with ch_pubkey arrived within 10 s", NULL);
	if (B.subacks < B.ndev)
		bench_die("not every device's inbox subscription was acknowledged within 10 s", NULL);
	if (peer_port) {
		/* Across brokers A's broker sees B only through B's status crossing
		 * the bridge (docs/PROTOCOL.md "Several brokers", presence), as an
		 * agent's heartbeat does: each B says it is online once. */
		for (int i = 0; i < B.ndev; i++) {
			device *d = &B.dev[i];
			if (d->is_a)
				continue;
			char st[256];
			int n = snprintf(st, sizeof st, "{\"id\":\"%s\",\"state\":\"online\",\"ts\":%" PRIu64
			                 ",\"seq\":1,\"uptime_s\":0}", d->id, ig_now_ms());
			snprintf(topic, sizeof topic, "iotguard/%s/dev/%s/status", B.cluster, d->id);
			bench_conn_publish(&d->c, topic, st, (size_t)n, 0);
		}
		double t_status = bench_now_s();
		while (bench_now_s() - t_status < 0.5)
			bench_conn_pump(&B.set, 50);
	}
	for (int i = 0; i < B.ndev; i++) {
		uint8_t pk[IG_PK_BYTES], sk[IG_SK_BYTES];
		bench_id_keypair(B.dev[i].id, pk, sk);
		if (ig_keybox_key_for_ch(&B.dev[i].bk, sk, B.ch_pk) != IG_OK)
			bench_die("X25519 box key for a device failed", B.dev[i].id);
		sodium_memzero(sk, sizeof sk);
	}
	printf("== bench_keys: session keys issued end to end: %d pairs (%d devices, one poll() loop), %d requests in "
	       "flight per pair, QoS %d, %.1f s (+%.1f s warm-up) ==\n",
	       B.npairs, B.ndev, B.window, B.qos, duration, warmup);
	if (peer_port)
		printf("pairs across brokers: A devices on port %" PRIu64 ", B devices on port %" PRIu64 "\n", port,
		       peer_port);
	printf("a pair counts once A and B both opened their session_key box (ig_keybox_open) and found the same key;\n"
	       "the plugin sends those boxes only after the KEY_ISSUED record is fdatasync'd, so every counted pair\n"
	       "is a durable audit record.\n");
	fflush(stdout);

	phase_result main_run = run_load(&B, B.npairs, B.window, warmup, duration, true, (int)pid);
	double rate = main_run.rate;
	printf("pairs done in the timed window: %" PRIu64 " in %.2f s = %.0f pairs/s   (target >= %.0f: %s)\n",
	       main_run.counted, main_run.secs, rate, goal, rate >= goal ? "PASS" : "MISS");
	printf("RESULT %s.pairs_per_s %.0f\n", R, rate);
	if (main_run.counted) {
		printf("request -> both copies opened: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", main_run.p50, main_run.p99,
		       main_run.max);
		printf("RESULT %s.latency_p50_ms %.2f\nRESULT %s.latency_p99_ms %.2f\n", R, main_run.p50, R, main_run.p99);
		if (pid) {
			printf("broker CPU per pair: %.1f us (all broker threads: event loop + ledger writer); ", main_run.cpu_us);
			printf("broker busy %.0f%% of one core\n", main_run.busy * 100);
			printf("RESULT %s.cpu_us %.1f\n", R, main_run.cpu_us);
		}
		printf("load generator CPU per pair: %.1f us (two box opens, JSON, the request)\n", main_run.self_us);
	}
	const stats_snap *sb = &main_run.s_begin, *se = &main_run.s_end;
	if (sb->l.have && se->l.have && se->l.ts_ms > sb->l.ts_ms) {
		double dt = (se->l.ts_ms - sb->l.ts_ms) / 1000.0;
		double issued = se->issued - sb->issued;
		double recs = se->l.height - sb->l.height, batches = se->l.batches - sb->l.batches;
		printf("plugin stats over %.1f s under load: keys issued %.0f/s, refused %.0f, ledger +%.0f records in "
		       "%.0f fdatasyncs (%.1f records/fsync)\n",
		       dt, issued / dt, se->refused - sb->refused, recs, batches, batches > 0 ? recs / batches : 0);
		bench_stats_ledger_print_commit(NULL, &se->l);
		printf("RESULT %s.plugin_issued_per_s %.0f\n", R, issued / dt);
		printf("RESULT %s.commit_avg_us %.0f\nRESULT %s.commit_max_us %.0f\nRESULT %s.commit_last_us %.0f\n",
		       R, se->l.commit_avg, R, se->l.commit_max, R, se->l.commit_last);
	} else {
		printf("plugin stats: none received (run the broker with plugin_opt_stats_interval 1)\n");
	}
	uint64_t inflight = main_run.unfinished;
	if (probe > 0) {
		/* One request at a time from one pair: what a single device waits. */
		phase_result light = run_load(&B, 1, 1, 0.2, probe, false, 0);
		inflight += light.unfinished;
		if (light.counted) {
			printf("light load (1 pair, 1 request in flight, %.1f s): %" PRIu64 " keys, request -> both copies "
			       "p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
			       probe, light.counted, light.p50, light.p99, light.max);
			printf("RESULT %s.light_p50_ms %.2f\nRESULT %s.light_p99_ms %.2f\n", R, light.p50, R, light.p99);
		}
	}
	printf("total: %" PRIu64 " pairs, %" PRIu64 " key messages opened; errors %" PRIu64, B.completed, B.key_msgs,
	       B.errors.total);
	for (int i = 0; i < B.errors.n; i++)
		printf("%s%s=%" PRIu64, i ? ", " : " (", B.errors.code[i], B.errors.count[i]);
	printf("%s; bad/unopenable %" PRIu64 ", key mismatches %" PRIu64 ", timeouts %" PRIu64 ", unfinished %" PRIu64 "\n",
	       B.errors.n ? ")" : "", B.bad, B.mismatched, B.timeouts, inflight);
	printf("RESULT %s.failures %" PRIu64 "\n", R, B.errors.total + B.bad + B.mismatched + B.timeouts + B.early_overflow);
	fflush(stdout);

	for (int i = 0; i < B.ndev; i++)
		bench_conn_close(&B.dev[i].c);
	bench_conn_close(&B.mon);
	sodium_memzero(B.dev, (size_t)B.ndev * sizeof *B.dev);
	sodium_memzero(B.pairs, (size_t)B.npairs * sizeof *B.pairs);
	free(B.dev);
	free(B.pairs);
	bench_stats_lat_free(&B.lat);
	free(pfd);
	return B.mismatched || B.bad ? 1 : 0;
}
