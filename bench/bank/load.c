/*
 * load.c: bench_bank's headline: durable coin mints + redeems per second.
 *
 * Why this exists: a coin is worth something only once the bank minted it
 * durably and, later, burned it durably for one analyst, so what is counted
 * is acknowledged coins (clients.c checks each reply). Sealing is too slow
 * for the one load-generator core to keep up with the broker, so the stock
 * of coins is minted and sealed before timing (phase 1); then collectors
 * publish and refill while analysts redeem (phase 2), and a short mint-only
 * run (phase 3) says what minting alone costs the broker.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bank.h"
#include "bench_proc.h"
#include "ig_record.h"

/* ---- phase 1: stock -------------------------------------------------------------- */

static void stock_mint(bench *B, size_t per_collector)
{
	B->ph = PH_STOCK;
	size_t requests = (per_collector + IG_COINS_PER_REQUEST - 1) / IG_COINS_PER_REQUEST;
	double t0 = bench_now_s();
	for (;;) {
		bool all = true;
		for (int i = 0; i < B->ncol; i++) {
			collector *c = &B->col[i];
			while (c->mint_seq < requests && c->mints_in_flight < 4)
				bank_send_mint(B, c);
			all = all && c->mint_seq == requests && c->mints_in_flight == 0;
		}
		if (all)
			break;
		if (bench_now_s() - t0 > 60)
			bench_die("minting the stock of coins took more than 60 s (see errors above)", NULL);
		if (B->errors.total)
			bench_die("the bank refused a mint while making the stock (credit? see above)", NULL);
		bank_pump(B, 20);
	}
	for (int i = 0; i < B->ncol; i++)
		if (B->col[i].ncoins != requests * IG_COINS_PER_REQUEST)
			bench_die("a collector did not get all its stock coins", B->col[i].id);
	double s = bench_now_s() - t0;
	printf("stock: %d collectors minted %zu coins each in %.2f s (%zu requests of 64; not timed)\n", B->ncol,
	       requests * IG_COINS_PER_REQUEST, s, requests);
}

static void make_payload(uint8_t *pt, size_t len, uint32_t collector, uint32_t msg)
{
	randombytes_buf(pt, len);
	ig_put_u32(pt, collector);
	ig_put_u32(pt + 4, msg);
}

/* Seals the stock: the routing pool first (collectors < route_pairs), then
 * one message per coin round-robin over the collectors until the coins or
 * the time budget run out. Returns us per seal. */
static double stock_seal(bench *B, double budget_s)
{
	uint8_t pt[MAX_PAYLOAD], hh[IG_HASH_BYTES];
	size_t per = 0;
	for (int i = 0; i < B->ncol; i++) {
		collector *c = &B->col[i];
		size_t reserve = i < B->route_pairs ? ROUTE_POOL : 0;
		if (c->ncoins <= reserve)
			bench_die("--stock is too small to leave coins after the routing pool", NULL);
		size_t n = c->ncoins - reserve;
		c->msgs = malloc(n * B->msg_len);
		c->sent_at = calloc(n, sizeof *c->sent_at);
		if (reserve)
			c->route_msgs = malloc(reserve * B->msg_len);
		if (!c->msgs || !c->sent_at || (reserve && !c->route_msgs))
			bench_die("out of memory for the sealed messages", NULL);
		per = per > n ? per : n;
	}
	double t0 = bench_now_s();
	uint64_t sealed = 0;
	for (int i = 0; i < B->route_pairs; i++) {
		collector *c = &B->col[i];
		for (size_t k = 0; k < ROUTE_POOL; k++) {
			make_payload(pt, B->payload_len, (uint32_t)c->idx, (uint32_t)k);
			int n = ig_coin_data_seal(c->route_msgs + k * B->msg_len, B->msg_len, B->ch_pk,
			                          c->coins[c->ncoins - 1 - k], B->suite, c->id, c->route_topic, pt,
			                          B->payload_len, hh);
			if (n != (int)B->msg_len)
				bench_die("ig_coin_data_seal failed (routing pool)", NULL);
			sealed++;
		}
		c->nroute = ROUTE_POOL;
	}
	bool out_of_time = false;
	for (size_t k = 0; k < per && !out_of_time; k++) {
		for (int i = 0; i < B->ncol; i++) {
			collector *c = &B->col[i];
			size_t reserve = i < B->route_pairs ? ROUTE_POOL : 0;
			if (k >= c->ncoins - reserve)
				continue;
			make_payload(pt, B->payload_len, (uint32_t)c->idx, (uint32_t)k);
			int n = ig_coin_data_seal(c->msgs + k * B->msg_len, B->msg_len, B->ch_pk, c->coins[k], B->suite,
			                          c->id, c->topic, pt, B->payload_len, hh);
			if (n != (int)B->msg_len)
				bench_die("ig_coin_data_seal failed", NULL);
			c->nmsgs = k + 1;
			sealed++;
		}
		if ((k & 3) == 3 && bench_now_s() - t0 > budget_s)
			out_of_time = true;
	}
	double s = bench_now_s() - t0;
	bool all_sealed = true;
	for (int i = 0; i < B->ncol; i++) {
		collector *c = &B->col[i];
		all_sealed = all_sealed && c->nmsgs == c->ncoins - (i < B->route_pairs ? ROUTE_POOL : 0);
		sodium_memzero(c->coins, c->ncoins * IG_COIN_BYTES);   /* sealed or left unspent: never reused */
		c->ncoins = 0;
	}
	double us = s / (double)sealed * 1e6;
	printf("stock: sealed %" PRIu64 " data messages (%zu-byte payload -> %zu bytes, suite %s) in %.2f s = %.1f us each "
	       "on the load generator%s\n", sealed, B->payload_len, B->msg_len, ig_suite_name(B->suite), s, us,
	       all_sealed ? "" : " (time budget reached: --seal-seconds; the other coins stay unspent)");
	printf("RESULT bank.seal_us %.1f\n", us);
	return us;
}

/* ---- phase 2/3: bank load ----------------------------------------------------- */

typedef struct bank_result {
	double secs, mint_rate, redeem_rate;
	uint64_t minted, redeemed;
	double cpu_us_per_coin, self_us_per_coin, busy;
	uint64_t cpu_ns;
	stats_snap s_begin, s_end;
	bool exhausted;
	uint64_t unfinished;
} bank_result;

static bank_result run_bank(bench *B, double warmup, double duration, bool data_on, bool mints_on, bool pace,
                            int mint_window, int broker_pid)
{
	bank_result res = {0};
	B->ph = PH_BANK;
	B->minted_counted = B->redeemed_counted = 0;
	B->redeem_lat.n = B->mint_lat.n = 0;
	/* Each collector refills at its own point of its 64-coin cycle; in step,
	 * they would all cross a refill together and the count of mints in the
	 * window would jump by 64 per collector with the window's phase. */
	for (int i = 0; i < B->ncol; i++) {
		B->col[i].coins_asked = B->col[i].published = 0;
		B->col[i].mint_lead = randombytes_uniform(IG_COINS_PER_REQUEST);
	}
	double t0 = bench_now_s(), t_count = t0 + warmup, t_end = t_count + duration, t_counted = 0, t_stopped = 0;
	double stop_at = t_end + 2.5;
	uint64_t cpu0 = 0, self0 = 0, cpu_used = 0, self_used = 0, seen_at_count = 0;
	bool ended = false;
	for (;;) {
		double now = bench_now_s();
		if (!B->counting && !ended && now >= t_count) {
			B->counting = true;
			t_counted = now;
			cpu0 = broker_pid ? bench_proc_cpu_ns(broker_pid) : 0;
			self0 = bench_proc_self_cpu_ns();
			seen_at_count = B->stats_seen;
		}
		if (B->counting && now >= t_end) {
			B->counting = false;
			ended = true;
			t_stopped = now;
			cpu_used = broker_pid ? bench_proc_cpu_ns(broker_pid) - cpu0 : 0;
			self_used = bench_proc_self_cpu_ns() - self0;
		}
		/* Two stats messages bracketing the loaded interval. */
		if (B->counting && !res.s_begin.l.have && B->stats_seen > seen_at_count)
			res.s_begin = B->last_stats;
		if (ended && res.s_begin.l.have && B->last_stats.l.received_at > t_end &&
		    B->last_stats.l.ts_ms > res.s_begin.l.ts_ms) {
			res.s_end = B->last_stats;
			break;
		}
		if (ended && now >= stop_at)
			break;
		bool more = false, any_left = false;
		for (int i = 0; i < B->ncol; i++) {
			collector *c = &B->col[i];
			if (data_on) {
				while (c->data_out < (uint64_t)B->window && c->next_msg < c->nmsgs) {
					size_t k = c->next_msg++;
					bench_conn_publish(&c->c, c->topic, c->msgs + k * B->msg_len, B->msg_len, B->qos);
					c->sent_at[k] = now;
					c->data_out++;
					c->published++;
					more = true;
				}
				any_left = any_left || c->next_msg < c->nmsgs;
			}
			if (mints_on)
				while (c->mints_in_flight < mint_window &&
				       (!pace || c->coins_asked <= c->published + c->mint_lead))
					bank_send_mint(B, c);
		}
		if (data_on && !any_left && !ended) {
			/* Out of sealed messages: the window ends here. */
			if (!B->counting)
				bench_die("the pre-sealed messages ran out during the warm-up; raise --stock or --seal-seconds", NULL);
			res.exhausted = true;
			B->counting = false;
			ended = true;
			t_stopped = now;
			t_end = now;
			stop_at = now + 2.5;
			cpu_used = broker_pid ? bench_proc_cpu_ns(broker_pid) - cpu0 : 0;
			self_used = bench_proc_self_cpu_ns() - self0;
		}
		bank_pump(B, more ? 0 : 5);
	}
	/* Drain: everything asked for is answered (or given up after 5 s). */
	double drain_until = bench_now_s() + 5.0;
	for (;;) {
		res.unfinished = 0;
		for (int i = 0; i < B->ncol; i++)
			res.unfinished += B->col[i].data_out + (uint64_t)B->col[i].mints_in_flight;
		if (!res.unfinished || bench_now_s() > drain_until)
			break;
		bank_pump(B, 10);
	}
	res.secs = t_stopped - t_counted;
	res.minted = B->minted_counted;
	res.redeemed = B->redeemed_counted;
	if (res.secs > 0) {
		res.mint_rate = (double)res.minted / res.secs;
		res.redeem_rate = (double)res.redeemed / res.secs;
		res.busy = (double)cpu_used / 1e9 / res.secs;
	}
	res.cpu_ns = cpu_used;
	if (res.minted + res.redeemed) {
		res.cpu_us_per_coin = (double)cpu_used / 1e3 / (double)(res.minted + res.redeemed);
		res.self_us_per_coin = (double)self_used / 1e3 / (double)(res.minted + res.redeemed);
	}
	return res;
}

static void print_stats_window(const char *label, const stats_snap *sb, const stats_snap *se)
{
	if (!sb->l.have || !se->l.have || se->l.ts_ms <= sb->l.ts_ms || sb->minted < 0) {
		printf("%s: plugin stats: none bracketing the window (run the broker with plugin_opt_stats_interval 1)\n",
		       label);
		return;
	}
	double dt = (se->l.ts_ms - sb->l.ts_ms) / 1000.0;
	double recs = se->l.height - sb->l.height, batches = se->l.batches - sb->l.batches;
	printf("%s: plugin stats over %.1f s: minted %.0f coins/s, redeemed %.0f/s, refused %.0f; ledger +%.0f records in "
	       "%.0f fdatasyncs (%.1f records/fsync)\n",
	       label, dt, (se->minted - sb->minted) / dt, (se->redeemed - sb->redeemed) / dt,
	       se->refused_total - sb->refused_total, recs, batches, batches > 0 ? recs / batches : 0);
	bench_stats_ledger_print_commit(label, &se->l);
}

uint64_t bank_load_run(bench *B, const run_opts *o)
{
	/* 1. stock */
	stock_mint(B, o->stock);
	double seal_us = stock_seal(B, o->seal_budget);
	fflush(stdout);

	/* 2. bank: mints paced by spending + redeems of every message */
	bank_result r = run_bank(B, o->warmup, o->duration, true, true, true, 2, o->pid);
	double total = r.mint_rate + r.redeem_rate;
	printf("-- bank, mints paced by spending (a wallet refill of 64 whenever 64 were spent) --\n");
	printf("mints: %" PRIu64 " coins in %.2f s = %.0f coins/s; redeems: %" PRIu64 " = %.0f coins/s\n", r.minted, r.secs,
	       r.mint_rate, r.redeemed, r.redeem_rate);
	printf("durable mints + redeems: %.0f coins/s   (target >= %.0f: %s)\n", total, o->goal,
	       total >= o->goal ? "PASS" : "MISS");
	if (r.exhausted)
		printf("note: the pre-sealed messages ran out before the end of the window; the window was cut to %.2f s "
		       "(raise --stock / --seal-seconds)\n", r.secs);
	double p50, p99, mx;
	if (bench_stats_lat_summary(&B->redeem_lat, &p50, &p99, &mx))
		printf("data publish -> redeemed and decrypted: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", p50, p99, mx);
	printf("RESULT bank.redeem_p50_ms %.2f\n", B->redeem_lat.n ? p50 : 0.0);
	if (bench_stats_lat_summary(&B->mint_lat, &p50, &p99, &mx))
		printf("mint request -> coins box opened: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", p50, p99, mx);
	if (o->pid && r.minted + r.redeemed)
		printf("broker CPU per coin (mint or redeem, all broker threads): %.1f us; broker busy %.0f%% of one core\n",
		       r.cpu_us_per_coin, r.busy * 100);
	printf("load generator CPU per coin: %.1f us (sealing excluded: %.1f us per message before timing)\n",
	       r.self_us_per_coin, seal_us);
	print_stats_window("bank", &r.s_begin, &r.s_end);
	printf("RESULT bank.mints_per_s %.0f\nRESULT bank.redeems_per_s %.0f\nRESULT bank.coins_per_s %.0f\n", r.mint_rate,
	       r.redeem_rate, total);
	if (o->pid)
		printf("RESULT bank.cpu_us_per_coin %.1f\nRESULT bank.busy %.2f\n", r.cpu_us_per_coin, r.busy);
	if (r.s_begin.l.have && r.s_end.l.have && r.s_end.l.ts_ms > r.s_begin.l.ts_ms)
		printf("RESULT bank.commit_avg_us %.0f\nRESULT bank.commit_max_us %.0f\nRESULT bank.commit_last_us %.0f\n",
		       r.s_end.l.commit_avg, r.s_end.l.commit_max, r.s_end.l.commit_last);
	fflush(stdout);

	/* 3. mint only */
	if (o->mint_probe > 0) {
		bank_result mo = run_bank(B, 0.3, o->mint_probe, false, true, false, 2, o->pid);
		printf("-- mint only (2 requests of 64 in flight per collector, %.1f s) --\n", o->mint_probe);
		printf("mints: %.0f coins/s", mo.mint_rate);
		if (o->pid && mo.minted)
			printf("; broker CPU %.2f us per minted coin (%.0f us per request of 64); broker busy %.0f%%",
			       mo.cpu_us_per_coin, mo.cpu_us_per_coin * IG_COINS_PER_REQUEST, mo.busy * 100);
		printf("\n");
		printf("RESULT bank.mint_only_per_s %.0f\n", mo.mint_rate);
		if (o->pid && mo.minted) {
			printf("RESULT bank.mint_cpu_us %.2f\n", mo.cpu_us_per_coin);
			/* What is left of the mixed run's broker CPU, per redeem. */
			if (r.redeemed) {
				double redeem_us = ((double)r.cpu_ns / 1e3 - mo.cpu_us_per_coin * (double)r.minted) / (double)r.redeemed;
				printf("so a redeem costs the broker about %.0f us (mixed run's CPU minus its mints at the mint-only "
				       "cost), i.e. at most %.0f redeems/s on one full core\n", redeem_us, 1e6 / redeem_us);
				printf("RESULT bank.redeem_cpu_us %.0f\n", redeem_us);
			}
		}
		fflush(stdout);
	}
	return r.unfinished;
}
