/*
 * route.c: what sealing data with coins costs the broker: collectors publish
 * to one monitor, rotating between plaintext, plaintext padded to the sealed
 * size, and coin-sealed messages; messages/s and broker CPU per mode, and
 * the client-side crypto per message in a tight loop.
 *
 * Why this exists: the broker only routes sealed data (it opens nothing
 * until a redeem), so the difference should be the bytes alone; this shows
 * whether it is. Modes rotate every --slice seconds so that load from
 * elsewhere on the machine hits them alike.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bank.h"
#include "bench_proc.h"

static const char *const mode_names[MODES] = {"plaintext", "plaintext padded", "coin-sealed"};

/* ---- phase 4: routing, plaintext vs sealed --------------------------------------- */

typedef struct route_result {
	double rate[MODES], cpu_us[MODES], self_us[MODES];
	uint64_t sent, received, lost;
} route_result;

static uint64_t r_outstanding(const collector *c)
{
	return c->r_sent > c->r_received + c->r_written_off ? c->r_sent - c->r_received - c->r_written_off : 0;
}

static void route_fill(bench *B, collector *c, uint64_t n)
{
	for (uint64_t k = 0; k < n; k++) {
		const uint8_t *src;
		size_t len;
		switch (B->send_mode) {
		case MODE_PLAIN:
			src = B->plain_pt, len = B->payload_len;
			break;
		case MODE_PADDED:
			src = B->padded_pt, len = B->msg_len;
			break;
		default:
			src = c->route_msgs + (c->route_next++ % c->nroute) * B->msg_len, len = B->msg_len;
			break;
		}
		bench_conn_publish(&c->c, c->route_topic, src, len, B->qos);
		c->r_sent++;
	}
}

/* One round: MODES x duration of timed load in which the senders rotate
 * through the modes every `slice` seconds (a burst of load from elsewhere
 * hits every mode alike); received messages are counted by kind, time and
 * CPU by the slice they fall in. */
static route_result run_route_round(bench *B, double warmup, double duration, double slice, uint64_t wpc, int first,
                                    int pid)
{
	B->ph = PH_ROUTE;
	memset(B->r_received_mode, 0, sizeof B->r_received_mode);
	for (int i = 0; i < B->route_pairs; i++)
		B->col[i].r_sent = B->col[i].r_received = B->col[i].r_written_off = 0;
	double last_progress = bench_now_s();
	bench_proc_rotation rot;
	bench_proc_rotation_start(&rot, pid, MODES, first, warmup, duration, slice);
	uint64_t start[MODES] = {0}, last_total = 0;
	for (;;) {
		double now = bench_now_s();
		if (bench_proc_rotation_tick(&rot, now))
			memcpy(start, B->r_received_mode, sizeof start);
		B->send_mode = (mode)rot.mode;
		bool stopping = rot.stopping;
		bool all_in = true;
		uint64_t total = 0;
		for (int i = 0; i < B->route_pairs; i++) {
			all_in = all_in && r_outstanding(&B->col[i]) == 0;
			total += B->col[i].r_received;
		}
		if (stopping && (all_in || now >= rot.stop_deadline))
			break;
		if (total != last_total) {
			last_total = total;
			last_progress = now;
		} else if (!stopping && now - last_progress > 0.5) {
			for (int i = 0; i < B->route_pairs; i++)
				B->col[i].r_written_off += r_outstanding(&B->col[i]);
			last_progress = now;
		}
		bool can_send = false;
		if (!stopping)
			for (int i = 0; i < B->route_pairs; i++) {
				collector *c = &B->col[i];
				uint64_t out = r_outstanding(c);
				if (out >= wpc)
					continue;
				uint64_t room = wpc - out;
				route_fill(B, c, room < 32 ? room : 32);
				can_send = can_send || r_outstanding(c) < wpc;
			}
		bank_pump(B, can_send ? 0 : 20);
	}
	route_result r = {0};
	for (int i = 0; i < B->route_pairs; i++) {
		r.sent += B->col[i].r_sent;
		r.received += B->col[i].r_received;
	}
	r.lost = r.sent > r.received ? r.sent - r.received : 0;
	for (int m = 0; m < MODES; m++) {
		bench_proc_meter_rates(&rot.mt, m, B->r_received_mode[m] - start[m], &r.rate[m], &r.cpu_us[m], &r.self_us[m]);
	}
	return r;
}

/* What the coin crypto costs the clients (and the bank) per message, in a
 * tight loop on the load generator's core, with a throwaway bank key. */
static void crypto_cost(const bench *B)
{
	uint8_t bank_pk[IG_PK_BYTES], bank_sk[IG_SK_BYTES], coin[IG_COIN_BYTES], hh[IG_HASH_BYTES];
	uint8_t pt[MAX_PAYLOAD], msg[MSG_MAX], out[MAX_PAYLOAD], keys[64];
	const char *topic = "iotguard/bench/dev/dev-0000000/data/bank";
	crypto_sign_keypair(bank_pk, bank_sk);
	randombytes_buf(pt, sizeof pt);
	const int nseal = 400, nopen = 20000;
	int len = 0;
	double t0 = bench_now_s();
	for (int i = 0; i < nseal; i++) {
		randombytes_buf(coin, sizeof coin);
		len = ig_coin_data_seal(msg, sizeof msg, bank_pk, coin, B->suite, "dev-0000000", topic, pt,
		                        B->payload_len, hh);
		if (len <= 0)
			bench_die("ig_coin_data_seal failed", NULL);
	}
	double seal_us = (bench_now_s() - t0) / nseal * 1e6;
	/* The bank's side of a redeem: open the header (X25519), derive the keys. */
	const uint8_t *hdr, *nonce, *ct;
	size_t hlen, ctlen;
	ig_suite suite;
	if (ig_coin_data_parse(msg, (size_t)len, &hdr, &hlen, &suite, &nonce, &ct, &ctlen) != IG_OK)
		bench_die("ig_coin_data_parse failed on our own message", NULL);
	ig_coin_header h;
	t0 = bench_now_s();
	for (int i = 0; i < nseal; i++) {
		if (ig_coin_header_open(&h, hdr, hlen, bank_sk) != IG_OK)
			bench_die("ig_coin_header_open failed on our own header", NULL);
		ig_coin_keys(h.coin, keys, keys + 32);
	}
	double bank_us = (bench_now_s() - t0) / nseal * 1e6;
	/* The analyst's side once the bank answered: open the message. */
	t0 = bench_now_s();
	for (int i = 0; i < nopen; i++)
		if (ig_coin_data_open_redeemed(out, sizeof out, msg, (size_t)len, topic, keys, h.nonce) !=
		    (int)B->payload_len)
			bench_die("ig_coin_data_open_redeemed failed on our own message", NULL);
	double open_us = (bench_now_s() - t0) / nopen * 1e6;
	printf("client crypto per message (%zu-byte payload, %s, tight loop on the load generator): collector seal "
	       "(ig_coin_data_seal) %.1f us, analyst open (ig_coin_data_open_redeemed) %.2f us, seal + open %.1f us; "
	       "the bank's header open + key derivation %.1f us (broker side, per redeem)\n",
	       B->payload_len, ig_suite_name(B->suite), seal_us, open_us, seal_us + open_us, bank_us);
	printf("RESULT bank.crypto.seal_us %.1f\nRESULT bank.crypto.open_us %.2f\nRESULT bank.crypto.seal_open_us %.1f\n"
	       "RESULT bank.crypto.bank_open_us %.1f\n", seal_us, open_us, seal_us + open_us, bank_us);
	sodium_memzero(bank_sk, sizeof bank_sk);
	sodium_memzero(&h, sizeof h);
	sodium_memzero(keys, sizeof keys);
}

void bank_route_run(bench *B, const run_opts *o)
{
	if (o->rounds > 0 && B->route_pairs > 0) {
		bank_router_open(B);
		randombytes_buf(B->plain_pt, sizeof B->plain_pt);
		randombytes_buf(B->padded_pt, sizeof B->padded_pt);
		B->plain_pt[0] = B->padded_pt[0] = 'p';    /* never the data magic */
		uint64_t wpc = o->route_window / (uint64_t)B->route_pairs;
		printf("-- routing: %d collectors -> 1 monitor on iotguard/%s/dev/+/data/+, QoS %d, window %" PRIu64
		       " per collector, %d rounds x %.1f s per mode (modes rotate every %.2f s) --\n",
		       B->route_pairs, B->cluster, B->qos, wpc, o->rounds, o->route_duration, o->slice);
		crypto_cost(B);
		double rate[MODES][MAX_ROUNDS], cpu[MODES][MAX_ROUNDS], ratio[MAX_ROUNDS], ratio_pad[MAX_ROUNDS];
		uint64_t lost = 0;
		for (int rd = 0; rd < o->rounds; rd++) {
			route_result rr = run_route_round(B, 0.3, o->route_duration, o->slice, wpc, rd % MODES, o->pid);
			for (int m = 0; m < MODES; m++) {
				rate[m][rd] = rr.rate[m];
				cpu[m][rd] = rr.cpu_us[m];
			}
			ratio[rd] = rr.rate[MODE_PLAIN] > 0 ? rr.rate[MODE_SEALED] / rr.rate[MODE_PLAIN] : 0;
			ratio_pad[rd] = rr.rate[MODE_PADDED] > 0 ? rr.rate[MODE_SEALED] / rr.rate[MODE_PADDED] : 0;
			lost += rr.lost;
			printf("round %d  plaintext %7.0f msg/s, padded %7.0f, sealed %7.0f (ratio %.3f)  broker CPU us/msg "
			       "%5.1f / %5.1f / %5.1f  (sent %" PRIu64 ", received %" PRIu64 ")\n",
			       rd + 1, rr.rate[MODE_PLAIN], rr.rate[MODE_PADDED], rr.rate[MODE_SEALED], ratio[rd],
			       rr.cpu_us[MODE_PLAIN], rr.cpu_us[MODE_PADDED], rr.cpu_us[MODE_SEALED], rr.sent, rr.received);
			fflush(stdout);
		}
		printf("-- median of %d rounds --\n", o->rounds);
		size_t nr = (size_t)o->rounds;
		for (int m = 0; m < MODES; m++)
			printf("%-17s %8.0f msg/s  broker CPU %5.1f us/msg  (%zu bytes)\n", mode_names[m],
			       bench_stats_median(rate[m], nr),
			       bench_stats_median(cpu[m], nr), m == MODE_PLAIN ? B->payload_len : B->msg_len);
		double rt = bench_stats_median(ratio, nr), rp = bench_stats_median(ratio_pad, nr);
		double cp = bench_stats_median(cpu[MODE_PLAIN], nr), cs = bench_stats_median(cpu[MODE_SEALED], nr);
		printf("ratio coin-sealed/plaintext = %.3f msg/s (median of per-round ratios); against plaintext of the same "
		       "wire size %.3f; broker CPU ratio %.3f; lost %" PRIu64 "\n", rt, rp, cs > 0 ? cp / cs : 0, lost);
		printf("RESULT bank.route.plain_rate %.0f\nRESULT bank.route.sealed_rate %.0f\nRESULT bank.route.padded_rate %.0f\n"
		       "RESULT bank.route.ratio %.3f\nRESULT bank.route.ratio_padded %.3f\n",
		       bench_stats_median(rate[MODE_PLAIN], nr), bench_stats_median(rate[MODE_SEALED], nr),
		       bench_stats_median(rate[MODE_PADDED], nr), rt, rp);
		if (cs > 0)
			printf("RESULT bank.route.capacity %.3f\n", cp / cs);
		bank_router_close(B);
	}
}
