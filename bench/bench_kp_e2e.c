/*
 * bench_kp_e2e.c: the broker's CPU per key_ring answer (issue 10), against
 * a real mosquitto with the plugin.
 *
 * Why this exists: bench_kp times the crypto of dealing a ring in process;
 * what an operator pays is the whole answer on the broker: the request
 * through the ACL and the plugin, the ring on the key-ring worker thread,
 * for a device's first ring in an epoch the kp_ring record made durable by
 * the ledger writer before the answer leaves, and the ~10 KB (m = 200)
 * inbox message. This reads the broker's on-CPU time (every thread, from
 * schedstat) around rounds of requests and divides by the answers.
 *
 * N devices (dev-0000000.., from `bench_scale mkledger`; the broker's policy
 * must have "predistribution") each ask {"type":"key_ring","nonce":N} on
 * their ch topic, QoS 1, once per round. Round 1 is every device's first
 * ring of the epoch (a kp_ring record each); later rounds are repeats (the
 * ring is computed again, no record). Every answer is checked the way the
 * agent checks it: the box opened with the device's X25519 box key, the
 * plaintext parsed (ig_kp_ring_plain_parse recomputes the ring ids) and the
 * ring hash recomputed. The service allows 10 requests a minute per device,
 * so --rounds is at most 9.
 *
 *   bench_kp_e2e --port P [--cluster C] [--pid BROKER_PID] [--devices N] [--rounds R]
 *
 * A monitor (mon-000) pins the cluster-head key from the retained ledger
 * head and waits for the retained iotguard/<cluster>/kp/revoked statement,
 * which the plugin publishes once the epoch's kp_epoch record is durable.
 */
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <sodium.h>

#include "bench.h"
#include "bench_conn.h"
#include "bench_id.h"
#include "bench_proc.h"
#include "bench_stats.h"
#include "ig_keybox.h"
#include "ig_kp.h"
#include "ig_token.h"

#define MAX_DEVICES 2000
#define ROUND_TIMEOUT_S 120.0

typedef struct device {
	bench_conn c;
	char id[IG_ID_MAX + 1];
	char ch_topic[160];
	ig_box_key bk;
	bool answered;
} device;

typedef struct bench {
	const char *cluster;
	device *dev;
	int ndev, round;
	bench_conn mon;
	bench_conn_set set;
	int subacks, mon_subacks;
	bool have_ch_pk, have_epoch;
	uint8_t ch_pk[IG_PK_BYTES];
	uint64_t answered, bad;
	uint32_t ring;
	bench_stats_codes errors;
} bench;

/* The answer checked as the agent checks it; false when anything is off. */
static bool check_ring(device *d, const cJSON *m)
{
	const cJSON *bn = cJSON_GetObjectItemCaseSensitive(m, "box_nonce");
	const cJSON *box = cJSON_GetObjectItemCaseSensitive(m, "box");
	const cJSON *rh = cJSON_GetObjectItemCaseSensitive(m, "ring_hash");
	const cJSON *ring = cJSON_GetObjectItemCaseSensitive(m, "ring");
	if (!cJSON_IsString(bn) || !cJSON_IsString(box) || !cJSON_IsString(rh) || !cJSON_IsNumber(ring) ||
	    ring->valuedouble < 1 || ring->valuedouble > IG_KP_RING_MAX)
		return false;
	uint32_t mring = (uint32_t)ring->valuedouble;
	size_t cap = strlen(box->valuestring), raw_len = 0;
	uint8_t nonce[24], want_hash[32], hash[32];
	uint8_t *raw = malloc(cap + 1), *plain = malloc(cap + 1);
	uint32_t *ids = malloc(mring * sizeof *ids);
	uint8_t(*keys)[32] = malloc((size_t)mring * 32);
	bool ok = false;
	ig_kp_params p;
	if (raw && plain && ids && keys && ig_hex_decode(nonce, sizeof nonce, bn->valuestring, strlen(bn->valuestring)) == IG_OK &&
	    ig_hex_decode(want_hash, sizeof want_hash, rh->valuestring, strlen(rh->valuestring)) == IG_OK &&
	    sodium_base642bin(raw, cap, box->valuestring, cap, NULL, &raw_len, NULL, sodium_base64_VARIANT_ORIGINAL) == 0 &&
	    raw_len > crypto_box_MACBYTES &&
	    crypto_box_open_easy_afternm(plain, raw, raw_len, nonce, d->bk.k) == 0 &&
	    ig_kp_ring_plain_parse(&p, ids, keys, plain, raw_len - crypto_box_MACBYTES, d->id) == IG_OK &&
	    p.ring == mring) {
		ig_kp_ring_hash(hash, p.epoch, d->id, ids, (const uint8_t(*)[32])keys, p.ring);
		ok = sodium_memcmp(hash, want_hash, 32) == 0;
	}
	if (plain)
		sodium_memzero(plain, cap + 1);
	if (keys)
		sodium_memzero(keys, (size_t)mring * 32);
	free(raw);
	free(plain);
	free(ids);
	free(keys);
	return ok;
}

static void on_inbox(bench *B, device *d, const uint8_t *payload, size_t plen)
{
	cJSON *m = cJSON_ParseWithLength((const char *)payload, plen);
	const cJSON *type = m ? cJSON_GetObjectItemCaseSensitive(m, "type") : NULL;
	const cJSON *nonce = m ? cJSON_GetObjectItemCaseSensitive(m, "nonce") : NULL;
	char want[32];
	snprintf(want, sizeof want, "r%d", B->round);
	if (!cJSON_IsString(type)) {
		B->bad++;
	} else if (!strcmp(type->valuestring, "error")) {
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(m, "error");
		bench_stats_codes_add(&B->errors, cJSON_IsString(code) ? code->valuestring : "?");
		d->answered = true;   /* refused: counted, not waited for */
	} else if (!strcmp(type->valuestring, "key_ring")) {
		if (!cJSON_IsString(nonce)) {
			/* An unasked deal (pushed at enrolment): not this round's answer. */
		} else if (strcmp(nonce->valuestring, want) != 0 || d->answered || !check_ring(d, m)) {
			B->bad++;
		} else {
			d->answered = true;
			B->answered++;
			B->ring = (uint32_t)cJSON_GetObjectItemCaseSensitive(m, "ring")->valuedouble;
		}
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
	cJSON *m = bench_conn_monitor_packet(c, type, body, len, &B->mon_subacks, B->ch_pk, &B->have_ch_pk);
	const cJSON *t = m ? cJSON_GetObjectItemCaseSensitive(m, "type") : NULL;
	if (cJSON_IsString(t) && !strcmp(t->valuestring, "kp_revoked"))
		B->have_epoch = true;
	cJSON_Delete(m);
}

typedef struct round_result {
	uint64_t answers, refused;
	double secs, cpu_us;
} round_result;

static round_result run_round(bench *B, int pid)
{
	round_result r = {0};
	uint64_t answered0 = B->answered, refused0 = B->errors.total;
	char req[64];
	snprintf(req, sizeof req, "{\"type\":\"key_ring\",\"nonce\":\"r%d\"}", B->round);
	for (int i = 0; i < B->ndev; i++)
		B->dev[i].answered = false;
	uint64_t cpu0 = pid ? bench_proc_cpu_ns(pid) : 0;
	double t0 = bench_now_s();
	for (int i = 0; i < B->ndev; i++)
		bench_conn_publish(&B->dev[i].c, B->dev[i].ch_topic, req, strlen(req), 1);
	int done = 0;
	while (done < B->ndev && bench_now_s() - t0 < ROUND_TIMEOUT_S) {
		bench_conn_pump(&B->set, 20);
		done = 0;
		for (int i = 0; i < B->ndev; i++)
			done += B->dev[i].answered;
	}
	r.secs = bench_now_s() - t0;
	uint64_t cpu1 = pid ? bench_proc_cpu_ns(pid) : 0;
	r.answers = B->answered - answered0;
	r.refused = B->errors.total - refused0;
	if (r.answers && pid)
		r.cpu_us = (double)(cpu1 - cpu0) / 1e3 / (double)r.answers;
	if (done < B->ndev)
		fprintf(stderr, "bench_kp_e2e: round %d: %d of %d devices unanswered after %.0f s\n", B->round,
		        B->ndev - done, B->ndev, ROUND_TIMEOUT_S);
	return r;
}

int main(int argc, char **argv)
{
	uint64_t port = 0, pid = 0, ndev = 500, rounds = 4;
	bench B = {.cluster = "bench"};
	const cli_option opts[] = {
		BENCH_CONN_CLI_OPTIONS(&port, &B.cluster, &pid),
		CLI_NUMBER("devices", 0, &ndev, 1, MAX_DEVICES),
		CLI_NUMBER("rounds", 0, &rounds, 1, 9),
		CLI_HELP_OPTION(0),
		CLI_OPTIONS_END,
	};
	bench_name = "bench_kp_e2e";
	bench_parse(argc, argv, NULL, opts,
	            "usage: bench_kp_e2e --port P [--cluster C] [--pid BROKER_PID] [--devices N] [--rounds R]\n");
	if (!port)
		bench_die("--port is required", NULL);
	if (ig_init() != IG_OK)
		bench_die("libsodium failed to initialise", NULL);
	B.ndev = (int)ndev;
	B.dev = calloc((size_t)B.ndev, sizeof *B.dev);
	struct pollfd *pfd = calloc((size_t)B.ndev + 1, sizeof *pfd);
	if (!B.dev || !pfd)
		bench_die("out of memory", NULL);
	B.set = (bench_conn_set){.n = B.ndev + 1, .mon = &B.mon, .mon_id = "mon-000", .on_mon = on_monitor_packet,
	                         BENCH_CONN_ARRAY(B.dev, device), .on_dev = on_device_packet,
	                         .closed_why = "(ACL refusal, or a takeover?)", .ctx = &B, .pfd = pfd};

	char tok[IG_TOKEN_TEXT_MAX], topic[256];
	bench_id_token(tok, sizeof tok, B.cluster, "mon-000", 600);
	bench_conn_open(&B.mon, (int)port, "mon-000", tok);
	snprintf(topic, sizeof topic, "iotguard/%s/ledger/head", B.cluster);
	bench_conn_subscribe(&B.mon, topic, 0);
	snprintf(topic, sizeof topic, "iotguard/%s/kp/revoked", B.cluster);
	bench_conn_subscribe(&B.mon, topic, 0);
	double t_setup = bench_now_s();
	for (int i = 0; i < B.ndev; i++) {
		device *d = &B.dev[i];
		snprintf(d->id, sizeof d->id, "dev-%07d", i);
		snprintf(d->ch_topic, sizeof d->ch_topic, "iotguard/%s/ch/%s", B.cluster, d->id);
		bench_id_token(tok, sizeof tok, B.cluster, d->id, 600);
		bench_conn_open(&d->c, (int)port, d->id, tok);
		snprintf(topic, sizeof topic, "iotguard/%s/dev/%s/inbox", B.cluster, d->id);
		bench_conn_subscribe(&d->c, topic, 1);
	}
	while ((B.subacks < B.ndev || !B.have_ch_pk || !B.have_epoch || B.mon_subacks < 2) &&
	       bench_now_s() - t_setup < 20)
		bench_conn_pump(&B.set, 50);
	if (!B.have_ch_pk)
		bench_die("no retained iotguard/<cluster>/ledger/head with ch_pubkey arrived within 20 s", NULL);
	if (!B.have_epoch)
		bench_die("no retained iotguard/<cluster>/kp/revoked within 20 s: does the broker's policy have "
		          "\"predistribution\"?", NULL);
	if (B.subacks < B.ndev)
		bench_die("not every device's inbox subscription was acknowledged within 20 s", NULL);
	for (int i = 0; i < B.ndev; i++) {
		uint8_t pk[IG_PK_BYTES], sk[IG_SK_BYTES];
		bench_id_keypair(B.dev[i].id, pk, sk);
		if (ig_keybox_key_for_ch(&B.dev[i].bk, sk, B.ch_pk) != IG_OK)
			bench_die("X25519 box key for a device failed", B.dev[i].id);
		sodium_memzero(sk, sizeof sk);
	}
	printf("== bench_kp_e2e: key_ring answers through the broker: %d devices, one request each per round, %d rounds "
	       "==\n", B.ndev, (int)rounds);
	printf("every answer is opened and checked as the agent does (box, ring ids, ring hash); round 1 appends one\n"
	       "kp_ring record per device before answering, later rounds recompute the ring only.\n");
	fflush(stdout);

	double first_cpu = 0, first_rate = 0, rep_cpu = 0, rep_rate = 0;
	uint64_t rep_answers = 0;
	double rep_secs = 0, rep_cpu_total = 0;
	for (int r = 1; r <= (int)rounds; r++) {
		B.round = r;
		round_result res = run_round(&B, (int)pid);
		double rate = res.secs > 0 ? (double)res.answers / res.secs : 0;
		printf("round %d (%s): %" PRIu64 " answers in %.2f s = %.0f /s", r, r == 1 ? "first rings, kp_ring appended" : "repeats",
		       res.answers, res.secs, rate);
		if (pid)
			printf(", broker CPU %.0f us per answer (all threads)", res.cpu_us);
		if (res.refused)
			printf(", %" PRIu64 " refused", res.refused);
		printf("\n");
		fflush(stdout);
		if (r == 1) {
			first_cpu = res.cpu_us;
			first_rate = rate;
		} else {
			rep_answers += res.answers;
			rep_secs += res.secs;
			rep_cpu_total += res.cpu_us * (double)res.answers;
		}
	}
	if (rep_answers) {
		rep_rate = (double)rep_answers / rep_secs;
		rep_cpu = rep_cpu_total / (double)rep_answers;
	}
	printf("ring m = %u; answers checked %" PRIu64 ", refused %" PRIu64, B.ring, B.answered, B.errors.total);
	for (int i = 0; i < B.errors.n; i++)
		printf("%s%s=%" PRIu64, i ? ", " : " (", B.errors.code[i], B.errors.count[i]);
	printf("%s, bad %" PRIu64 "\n", B.errors.n ? ")" : "", B.bad);
	printf("RESULT kp.e2e.ring %u\n", B.ring);
	printf("RESULT kp.e2e.first_per_s %.0f\n", first_rate);
	if (rounds > 1)
		printf("RESULT kp.e2e.repeat_per_s %.0f\n", rep_rate);
	if (pid) {
		printf("RESULT kp.e2e.first_cpu_us %.0f\n", first_cpu);
		if (rounds > 1)
			printf("RESULT kp.e2e.repeat_cpu_us %.0f\n", rep_cpu);
	}
	printf("RESULT kp.e2e.failures %" PRIu64 "\n", B.bad + B.errors.total);
	for (int i = 0; i < B.ndev; i++)
		bench_conn_close(&B.dev[i].c);
	bench_conn_close(&B.mon);
	sodium_memzero(B.dev, (size_t)B.ndev * sizeof *B.dev);
	free(B.dev);
	free(pfd);
	return B.bad || B.errors.total ? 1 : 0;
}
