/*
 * bench_m2m.c: encrypted device-to-device throughput against plaintext, on
 * the same broker with the plugin, in the same run.
 *
 * Why this exists: m2m messages are sealed end to end with a session key
 * (ig_m2m.h), so the broker only routes them; what encryption costs is the
 * sender's seal, the receiver's open and replay check, and 42 more bytes
 * per message (26-byte header, 16-byte tag). The question is whether that
 * costs throughput, so this measures both modes against the same broker:
 * N sender/receiver pairs, sender S publishes on iotguard/C/m2m/<R>/<S>,
 * receiver R holds iotguard/C/m2m/<R>/+, QoS 0, small payloads (64 bytes).
 *   plain:  the 64 bytes as they are;
 *   sealed: ig_m2m_seal with the pair's session key, counter per message;
 *           R checks the key id, ig_replay_check, ig_m2m_open (topic in the
 *           AAD), then ig_replay_commit, as the agent does.
 * The session keys are real: each S asks the cluster head for a key with
 * its R ({"type":"session_key"}), both open their boxes, so the suite is
 * the one the cluster head picked (AES-256-GCM with AES-NI, or
 * XChaCha20-Poly1305 when the broker runs with IOTGUARD_FORCE_XCHACHA=1).
 *
 * Publishing is windowed per pair: at most --window / N messages sent and
 * not yet received, so the broker never has to drop QoS 0 messages for a
 * slow reader and the rate is what the receivers keep up with. Within each
 * round the senders switch between the two modes every --slice seconds
 * (0.5), so load from elsewhere on a shared machine hits both alike; the
 * figures are medians over the rounds.
 *
 *   bench_m2m --port P [--cluster C] [--pairs N] [--payload BYTES] [--window W]
 *             [--duration S] [--warmup S] [--rounds R] [--slice S] [--pid BROKER_PID]
 *             [--goal RATIO]
 * --duration is the timed load per mode and round.
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

#include "ig_aead.h"
#include "ig_m2m.h"
#include "ig_replay.h"
#include "ig_common.h"
#include "ig_keybox.h"
#include "ig_token.h"
#include "bench.h"
#include "bench_conn.h"
#include "bench_id.h"
#include "bench_proc.h"
#include "bench_stats.h"

#define BENCH_NAME "bench_m2m"
#define MAX_PAIRS 256
#define MAX_ROUNDS 16
#define MAX_PAYLOAD 1024
#define BATCH 32                             /* messages appended per sender turn */

/* ---- the benchmark ---------------------------------------------------------- */

typedef enum mode { MODE_PLAIN = 0, MODE_SEALED = 1 } mode;

typedef struct device {
	bench_conn c;
	char id[IG_ID_MAX + 1];
	int pair;
	bool is_sender;
	bool subscribed[2];
	ig_box_key bk;
} device;

typedef struct pair {
	int s, r;
	char topic[200];                    /* iotguard/C/m2m/<r>/<s> */
	size_t topic_len;
	bool s_has_key, r_has_key;
	ig_session_key s_key, r_key;        /* the same key, as S and R hold it */
	ig_replay_window rx;
	uint64_t counter;                   /* last counter S used */
	uint64_t sent, received;            /* this phase */
	uint64_t written_off;
} pair;

typedef struct bench {
	const char *cluster;
	int npairs, ndev;
	size_t payload_len;
	uint64_t wpair;
	device *dev;
	pair *pairs;
	bench_conn mon;
	bool have_ch_pk;
	int mon_subacks;
	uint8_t ch_pk[IG_PK_BYTES];
	int subacks;
	mode send_mode;                     /* what senders produce right now */
	uint8_t pt[MAX_PAYLOAD];
	/* per round; received by mode, told apart by length (payload vs payload + 42) */
	uint64_t received, received_mode[2], bad_len, dropped[4];   /* replayed/too_old, tampered, unknown key, malformed */
	uint64_t key_errors;
	ig_suite suite;
	bench_conn_set set;
} bench;

/* A session_key inbox message, opened and checked as a device does. */
static void on_key(bench *B, device *d, const cJSON *m)
{
	pair *p = &B->pairs[d->pair];
	const cJSON *bn = cJSON_GetObjectItemCaseSensitive(m, "box_nonce");
	const cJSON *box = cJSON_GetObjectItemCaseSensitive(m, "box");
	const cJSON *kid = cJSON_GetObjectItemCaseSensitive(m, "key_id");
	uint8_t nonce[IG_KEYBOX_NONCE_BYTES], raw[512], key_id[IG_KEY_ID_BYTES];
	size_t raw_len = 0;
	ig_session_key sk;
	if (!cJSON_IsString(bn) || !cJSON_IsString(box) || !cJSON_IsString(kid) ||
	    ig_hex_decode(nonce, sizeof nonce, bn->valuestring, strlen(bn->valuestring)) != IG_OK ||
	    ig_hex_decode(key_id, sizeof key_id, kid->valuestring, strlen(kid->valuestring)) != IG_OK ||
	    sodium_base642bin(raw, sizeof raw, box->valuestring, strlen(box->valuestring), NULL, &raw_len, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    ig_keybox_open(&sk, raw, raw_len, nonce, &d->bk) != IG_OK || memcmp(sk.key_id, key_id, sizeof key_id) != 0 ||
	    sk.direction != (d->is_sender ? 0 : 1) || !ig_suite_available(sk.suite)) {
		B->key_errors++;
		return;
	}
	if (d->is_sender) {
		p->s_key = sk;
		p->s_has_key = true;
	} else {
		p->r_key = sk;
		p->r_has_key = true;
	}
	sodium_memzero(&sk, sizeof sk);
}

static void on_m2m(bench *B, pair *p, const char *topic, size_t tlen, const uint8_t *msg, size_t len)
{
	if (tlen != p->topic_len || memcmp(topic, p->topic, tlen) != 0) {
		B->dropped[3]++;
		return;
	}
	if (len == B->payload_len) {
		p->received++;
		B->received++;
		B->received_mode[MODE_PLAIN]++;
		return;
	}
	ig_m2m_header h;
	uint8_t out[MAX_PAYLOAD];
	if (ig_m2m_parse_header(msg, len, &h) != IG_OK) {
		B->dropped[3]++;
		return;
	}
	if (memcmp(h.key_id, p->r_key.key_id, IG_KEY_ID_BYTES) != 0 || h.suite != p->r_key.suite) {
		B->dropped[2]++;
		return;
	}
	if (ig_replay_check(&p->rx, h.counter) != IG_REPLAY_OK) {
		B->dropped[0]++;
		return;
	}
	/* The receiver opens what the requester (direction 0) sealed. */
	int n = ig_m2m_open(out, sizeof out, msg, len, p->r_key.key, 0, p->topic, &h);
	if (n < 0) {
		B->dropped[1]++;
		return;
	}
	ig_replay_commit(&p->rx, h.counter);
	if ((size_t)n != B->payload_len)
		B->bad_len++;
	p->received++;
	B->received++;
	B->received_mode[MODE_SEALED]++;
}

static void on_packet(void *ctx, bench_conn *c, uint8_t type, const uint8_t *body, size_t len)
{
	bench *B = ctx;
	device *d = (device *)((char *)c - offsetof(device, c));
	bench_conn_msg msg;
	if (!bench_conn_take_publish(c, type, body, len, d->id, &B->subacks, &msg))
		return;
	if (msg.tlen > 6 && memcmp(msg.topic + msg.tlen - 6, "/inbox", 6) == 0) {
		cJSON *m = cJSON_ParseWithLength((const char *)msg.payload, msg.plen);
		const cJSON *t = m ? cJSON_GetObjectItemCaseSensitive(m, "type") : NULL;
		if (cJSON_IsString(t) && !strcmp(t->valuestring, "session_key"))
			on_key(B, d, m);
		else {
			const cJSON *e = m ? cJSON_GetObjectItemCaseSensitive(m, "error") : NULL;
			fprintf(stderr, BENCH_NAME ": %s got an inbox message that is not a key: %s\n", d->id,
			        cJSON_IsString(e) ? e->valuestring : "(unparsable)");
			B->key_errors++;
		}
		cJSON_Delete(m);
		return;
	}
	if (!d->is_sender)
		on_m2m(B, &B->pairs[d->pair], msg.topic, msg.tlen, msg.payload, msg.plen);
}

static void on_monitor_packet(void *ctx, bench_conn *c, uint8_t type, const uint8_t *body, size_t len)
{
	bench *B = ctx;
	cJSON_Delete(bench_conn_monitor_packet(c, type, body, len, &B->mon_subacks, B->ch_pk, &B->have_ch_pk));
}

static uint64_t outstanding(const pair *p)
{
	return p->sent > p->received + p->written_off ? p->sent - p->received - p->written_off : 0;
}

/* Appends up to n messages from p's sender in the current mode. */
static void fill(bench *B, pair *p, uint64_t n)
{
	bench_conn *c = &B->dev[p->s].c;
	size_t wire = B->send_mode == MODE_SEALED ? IG_M2M_HEADER_BYTES + B->payload_len + IG_AEAD_TAG_BYTES
	                                           : B->payload_len;
	for (uint64_t k = 0; k < n; k++) {
		uint8_t *dst = bench_conn_publish_begin(c, p->topic, p->topic_len, wire, 0);
		if (B->send_mode == MODE_SEALED) {
			p->counter++;
			ig_put_u64(B->pt, p->counter);    /* a little variety in the plaintext */
			int rc = ig_m2m_seal(dst, wire, p->s_key.suite, p->s_key.key, p->s_key.key_id, 0, p->counter, p->topic,
			                     B->pt, B->payload_len);
			if (rc != (int)wire)
				bench_die("ig_m2m_seal failed", NULL);
		} else {
			memcpy(dst, B->pt, B->payload_len);
		}
		p->sent++;
	}
}

typedef struct result {
	double rate[2], cpu_us[2], self_us[2];
	uint64_t sent, received, lost, dropped;
} result;

/* One round: 2 x duration of timed load (after a warm-up) in which the
 * senders switch between plaintext and sealed every `slice` seconds, so a
 * burst of load from elsewhere on the machine hits both modes alike.
 * Messages are counted by their kind (told apart by length), time and CPU
 * by the slice they fall in. The broker works on the previous slice's
 * messages for the first window/rate seconds of a slice (about 50 ms), which
 * dilutes a difference between the modes by that fraction of a slice. */
static result run_round(bench *B, double warmup, double duration, double slice, mode first, int broker_pid)
{
	B->received = 0;
	memset(B->received_mode, 0, sizeof B->received_mode);
	memset(B->dropped, 0, sizeof B->dropped);
	for (int i = 0; i < B->npairs; i++)
		B->pairs[i].sent = B->pairs[i].received = B->pairs[i].written_off = 0;
	double t0 = bench_now_s(), last_progress = t0;
	bench_proc_rotation rot;
	bench_proc_rotation_start(&rot, broker_pid, 2, (int)first, warmup, duration, slice);
	uint64_t recv_start[2] = {0, 0}, recv_end[2] = {0, 0}, last_received = 0;
	for (;;) {
		double now = bench_now_s();
		if (bench_proc_rotation_tick(&rot, now))
			memcpy(recv_start, B->received_mode, sizeof recv_start);
		B->send_mode = (mode)rot.mode;
		bool stopping = rot.stopping;
		bool all_in = true;
		for (int i = 0; i < B->npairs; i++)
			all_in = all_in && outstanding(&B->pairs[i]) == 0;
		if (stopping && (all_in || now >= rot.stop_deadline))
			break;
		if (B->received != last_received) {
			last_received = B->received;
			last_progress = now;
		} else if (!stopping && now - last_progress > 0.5) {
			/* QoS 0 messages the broker dropped would close the window for
			 * good: write them off as lost and go on. */
			for (int i = 0; i < B->npairs; i++)
				B->pairs[i].written_off += outstanding(&B->pairs[i]);
			last_progress = now;
		}
		bool can_send = false;
		if (!stopping) {
			for (int i = 0; i < B->npairs; i++) {
				pair *p = &B->pairs[i];
				if (outstanding(p) >= B->wpair)
					continue;
				uint64_t room = B->wpair - outstanding(p);
				fill(B, p, room < BATCH ? room : BATCH);
				if (!bench_conn_flush(&B->dev[p->s].c))
					bench_die("a sender's connection broke (refused by the ACL?)", B->dev[p->s].id);
				can_send = can_send || outstanding(p) < B->wpair;
			}
		}
		bench_conn_pump(&B->set, can_send ? 0 : 20);
	}
	/* Messages of both kinds sent during the timed window arrive up to the
	 * end of the drain; count those sent while counting. */
	memcpy(recv_end, B->received_mode, sizeof recv_end);
	result r = {0};
	for (int i = 0; i < B->npairs; i++) {
		r.sent += B->pairs[i].sent;
		r.received += B->pairs[i].received;
	}
	r.lost = r.sent > r.received ? r.sent - r.received : 0;
	for (int i = 0; i < 4; i++)
		r.dropped += B->dropped[i];
	for (int m = 0; m < 2; m++) {
		bench_proc_meter_rates(&rot.mt, m, recv_end[m] - recv_start[m], &r.rate[m], &r.cpu_us[m], &r.self_us[m]);
	}
	return r;
}

/* Seal + open + replay check of one message in a tight loop, per suite:
 * what the crypto alone costs on the load generator's core. */
static void crypto_cost(size_t payload_len, ig_suite in_use)
{
	static const ig_suite suites[2] = {IG_SUITE_AES256GCM, IG_SUITE_XCHACHA20POLY1305};
	uint8_t key[IG_AEAD_KEY_BYTES], key_id[IG_KEY_ID_BYTES], pt[MAX_PAYLOAD] = {0}, msg[MAX_PAYLOAD + 64],
	        out[MAX_PAYLOAD];
	const char *topic = "iotguard/bench/m2m/dev-0000001/dev-0000000";
	randombytes_buf(key, sizeof key);
	randombytes_buf(key_id, sizeof key_id);
	for (int s = 0; s < 2; s++) {
		if (!ig_suite_available(suites[s]))
			continue;
		ig_replay_window w;
		ig_replay_init(&w);
		const int n = 100000;
		double t0 = bench_now_s();
		for (int i = 1; i <= n; i++) {
			int len = ig_m2m_seal(msg, sizeof msg, suites[s], key, key_id, 0, (uint64_t)i, topic, pt, payload_len);
			ig_m2m_header h;
			if (len < 0 || ig_m2m_parse_header(msg, (size_t)len, &h) != IG_OK ||
			    ig_replay_check(&w, h.counter) != IG_REPLAY_OK ||
			    ig_m2m_open(out, sizeof out, msg, (size_t)len, key, 0, topic, &h) != (int)payload_len)
				bench_die("seal/open self-check failed", ig_suite_name(suites[s]));
			ig_replay_commit(&w, h.counter);
		}
		double us = (bench_now_s() - t0) / n * 1e6;
		printf("crypto alone, %s: %.2f us per %zu-byte message (seal + parse + replay check + open)\n",
		       ig_suite_name(suites[s]), us, payload_len);
		if (suites[s] == in_use)
			printf("RESULT m2m.crypto_us.%s %.2f\n", ig_suite_name(suites[s]), us);
	}
	sodium_memzero(key, sizeof key);
}

int main(int argc, char **argv)
{
	bench_name = BENCH_NAME;
	uint64_t port = 0, pid = 0, nrounds = 3, pairs = 8, payload = 64, window = 2000;
	double duration = 2.0, warmup = 0.5, goal = 0.9, slice = 0.5;
	bench B = {.cluster = "bench"};
	const cli_option opts[] = {
		BENCH_CONN_CLI_OPTIONS(&port, &B.cluster, &pid),
		CLI_NUMBER("pairs", 0, &pairs, 1, MAX_PAIRS),
		CLI_NUMBER("payload", 0, &payload, 1, MAX_PAYLOAD),
		CLI_NUMBER("window", 0, &window, 1, UINT32_MAX),
		CLI_REAL("duration", 0, &duration, 0.001, 20),
		CLI_REAL("warmup", 0, &warmup, 0, 60),
		CLI_NUMBER("rounds", 0, &nrounds, 1, MAX_ROUNDS),
		CLI_REAL("goal", 0, &goal, 0, 1e9),
		CLI_REAL("slice", 0, &slice, 0.05, 20),
		CLI_HELP_OPTION(0),
		CLI_OPTIONS_END,
	};
	bench_parse(argc, argv, NULL, opts,
	            "usage: bench_m2m --port P [--cluster C] [--pairs N] [--payload BYTES] [--window W]\n"
	            "                 [--duration S] [--warmup S] [--rounds R] [--slice S] [--pid BROKER_PID]\n"
	            "                 [--goal RATIO]\n");
	B.npairs = (int)pairs;
	B.payload_len = (size_t)payload;
	int rounds = (int)nrounds;
	if (!port || window < pairs || slice > duration)
		bench_die("need --port; window >= pairs, slice <= duration", NULL);
	if (ig_init() != IG_OK)
		bench_die("libsodium failed to initialise", NULL);
	B.wpair = window / (uint64_t)B.npairs;
	B.ndev = 2 * B.npairs;
	B.dev = calloc((size_t)B.ndev, sizeof *B.dev);
	B.pairs = calloc((size_t)B.npairs, sizeof *B.pairs);
	struct pollfd *pfd = calloc((size_t)B.ndev + 1, sizeof *pfd);
	if (!B.dev || !B.pairs || !pfd)
		bench_die("out of memory", NULL);
	B.set = (bench_conn_set){.n = B.ndev + 1, .mon = &B.mon, .mon_id = "mon-000", .on_mon = on_monitor_packet,
	                         BENCH_CONN_ARRAY(B.dev, device), .on_dev = on_packet, .closed_why = "(ACL refusal?)",
	                         .ctx = &B, .pfd = pfd};
	randombytes_buf(B.pt, sizeof B.pt);

	char tok[IG_TOKEN_TEXT_MAX], topic[256];
	bench_id_token(tok, sizeof tok, B.cluster, "mon-000", 600);
	bench_conn_open(&B.mon, (int)port, "mon-000", tok);
	snprintf(topic, sizeof topic, "iotguard/%s/ledger/head", B.cluster);
	bench_conn_subscribe(&B.mon, topic, 0);
	int want_subacks = 0;
	for (int i = 0; i < B.ndev; i++) {
		device *d = &B.dev[i];
		snprintf(d->id, sizeof d->id, "dev-%07d", i);
		d->pair = i / 2;
		d->is_sender = (i % 2) == 0;
		bench_id_token(tok, sizeof tok, B.cluster, d->id, 600);
		bench_conn_open(&d->c, (int)port, d->id, tok);
		snprintf(topic, sizeof topic, "iotguard/%s/dev/%s/inbox", B.cluster, d->id);
		bench_conn_subscribe(&d->c, topic, 1);
		want_subacks++;
		if (!d->is_sender) {
			snprintf(topic, sizeof topic, "iotguard/%s/m2m/%s/+", B.cluster, d->id);
			bench_conn_subscribe(&d->c, topic, 0);
			want_subacks++;
		}
	}
	for (int i = 0; i < B.npairs; i++) {
		pair *p = &B.pairs[i];
		p->s = 2 * i;
		p->r = 2 * i + 1;
		int n = snprintf(p->topic, sizeof p->topic, "iotguard/%s/m2m/%s/%s", B.cluster, B.dev[p->r].id, B.dev[p->s].id);
		p->topic_len = (size_t)n;
		ig_replay_init(&p->rx);
	}
	double t_setup = bench_now_s();
	while ((B.subacks < want_subacks || !B.have_ch_pk) && bench_now_s() - t_setup < 10)
		bench_conn_pump(&B.set, 50);
	if (!B.have_ch_pk || B.subacks < want_subacks)
		bench_die("subscriptions or the retained ledger head (ch_pubkey) did not arrive within 10 s", NULL);
	for (int i = 0; i < B.ndev; i++) {
		uint8_t pk[IG_PK_BYTES], sk[IG_SK_BYTES];
		bench_id_keypair(B.dev[i].id, pk, sk);
		if (ig_keybox_key_for_ch(&B.dev[i].bk, sk, B.ch_pk) != IG_OK)
			bench_die("X25519 box key for a device failed", B.dev[i].id);
		sodium_memzero(sk, sizeof sk);
	}
	/* Real session keys from the cluster head, one per pair. */
	for (int i = 0; i < B.npairs; i++) {
		pair *p = &B.pairs[i];
		char json[200];
		int n = snprintf(json, sizeof json, "{\"type\":\"session_key\",\"peer\":\"%s\",\"nonce\":\"m2m-bench-%d\"}",
		                 B.dev[p->r].id, i);
		snprintf(topic, sizeof topic, "iotguard/%s/ch/%s", B.cluster, B.dev[p->s].id);
		bench_conn_publish(&B.dev[p->s].c, topic, json, (size_t)n, 1);
	}
	bool all_keys = false;
	while (!all_keys && !B.key_errors && bench_now_s() - t_setup < 15) {
		bench_conn_pump(&B.set, 20);
		all_keys = true;
		for (int i = 0; i < B.npairs; i++)
			all_keys = all_keys && B.pairs[i].s_has_key && B.pairs[i].r_has_key;
	}
	if (!all_keys)
		bench_die("not every pair got its session key (see above; is the key-request rate limit too low?)", NULL);
	B.suite = B.pairs[0].s_key.suite;
	for (int i = 0; i < B.npairs; i++)
		if (sodium_memcmp(B.pairs[i].s_key.key, B.pairs[i].r_key.key, IG_AEAD_KEY_BYTES) != 0)
			bench_die("a pair's two copies of its session key differ", NULL);
	const char *force = getenv("IOTGUARD_FORCE_XCHACHA");
	if (force && !strcmp(force, "1") && B.suite != IG_SUITE_XCHACHA20POLY1305)
		fprintf(stderr, BENCH_NAME ": warning: IOTGUARD_FORCE_XCHACHA=1 is set here, but the cluster head issued %s "
		                "keys: the suite is the broker's choice, so start the broker with that variable\n",
		        ig_suite_name(B.suite));

	const char *sn = ig_suite_name(B.suite);
	printf("== bench_m2m: %d sender/receiver pairs, %zu-byte payloads, QoS 0, window %" PRIu64 " per pair, "
	       "%d rounds x %.1f s per mode (modes alternate every %.2f s; +%.1f s warm-up), suite %s (issued by the "
	       "cluster head) ==\n",
	       B.npairs, B.payload_len, B.wpair, rounds, duration, slice, warmup, sn);
	crypto_cost(B.payload_len, B.suite);
	double rate[2][MAX_ROUNDS], cpu[2][MAX_ROUNDS], self[2][MAX_ROUNDS], round_ratio[MAX_ROUNDS];
	uint64_t lost = 0, dropped = 0;
	for (int r = 0; r < rounds; r++) {
		result res = run_round(&B, warmup, duration, slice, (mode)(r % 2), (int)pid);
		for (int m = 0; m < 2; m++) {
			rate[m][r] = res.rate[m];
			cpu[m][r] = res.cpu_us[m];
			self[m][r] = res.self_us[m];
		}
		round_ratio[r] = res.rate[MODE_PLAIN] > 0 ? res.rate[MODE_SEALED] / res.rate[MODE_PLAIN] : 0;
		lost += res.lost;
		dropped += res.dropped;
		printf("round %d  plaintext %8.0f msg/s, encrypted %8.0f msg/s (ratio %.3f)  broker CPU us/msg %5.2f / %5.2f, "
		       "load gen %5.2f / %5.2f  (sent %" PRIu64 ", received %" PRIu64 ", lost %" PRIu64 ", dropped %" PRIu64 ")\n",
		       r + 1, res.rate[MODE_PLAIN], res.rate[MODE_SEALED], round_ratio[r], res.cpu_us[MODE_PLAIN],
		       res.cpu_us[MODE_SEALED], res.self_us[MODE_PLAIN], res.self_us[MODE_SEALED], res.sent, res.received,
		       res.lost, res.dropped);
		fflush(stdout);
	}
	size_t nr = (size_t)rounds;
	double mp = bench_stats_median(rate[MODE_PLAIN], nr), ms = bench_stats_median(rate[MODE_SEALED], nr);
	double cp = bench_stats_median(cpu[MODE_PLAIN], nr), cs = bench_stats_median(cpu[MODE_SEALED], nr);
	/* Both modes share each round's machine conditions, so the per-round
	 * ratio is a paired comparison; its median is the headline. */
	double ratio = bench_stats_median(round_ratio, nr);
	printf("-- median of %d rounds, suite %s --\n", rounds, sn);
	printf("plaintext %8.0f msg/s  broker CPU %5.2f us/msg  load gen %5.2f us/msg\n", mp, cp,
	       bench_stats_median(self[MODE_PLAIN], nr));
	printf("encrypted %8.0f msg/s  broker CPU %5.2f us/msg  load gen %5.2f us/msg\n", ms, cs,
	       bench_stats_median(self[MODE_SEALED], nr));
	printf("lost (QoS 0, both modes) %" PRIu64 "; dropped by receivers %" PRIu64 " (replayed/tampered/unknown key: "
	       "must be 0)\n", lost, dropped);
	printf("ratio encrypted/plaintext = %.3f (median of the per-round ratios; ratio of the medians %.3f)  "
	       "(target >= %.2f: %s)\n", ratio, mp > 0 ? ms / mp : 0, goal, ratio >= goal ? "PASS" : "MISS");
	if (cp > 0 && cs > 0)
		printf("capacity ratio (broker CPU per message) = %.3f\n", cp / cs);
	printf("RESULT m2m.%s.plain_rate %.0f\nRESULT m2m.%s.sealed_rate %.0f\nRESULT m2m.%s.ratio %.3f\n", sn, mp, sn, ms,
	       sn, ratio);
	if (cp > 0 && cs > 0)
		printf("RESULT m2m.%s.capacity %.3f\n", sn, cp / cs);
	printf("RESULT m2m.%s.dropped %" PRIu64 "\n", sn, dropped + B.bad_len);

	for (int i = 0; i < B.ndev; i++)
		bench_conn_close(&B.dev[i].c);
	bench_conn_close(&B.mon);
	sodium_memzero(B.pairs, (size_t)B.npairs * sizeof *B.pairs);
	sodium_memzero(B.dev, (size_t)B.ndev * sizeof *B.dev);
	free(B.pairs);
	free(B.dev);
	free(pfd);
	return dropped || B.bad_len ? 1 : 0;
}
