/*
 * bench_coins.c: what ten million outstanding coins cost the bank.
 *
 * Why this exists: the design promises an O(1) coin index at no more than
 * 48 bytes of RAM per outstanding coin, rebuilt from the ledger at broker
 * start. This fills an index with 10M coins through the same path a ledger
 * replay takes (ig_coins_apply on coin_mint records of 64 coins), then
 * prints the resident memory it added per coin (VmRSS before/after, and the
 * index's own count), the cost per coin of applying mint and redeem records,
 * lookups of present and absent coins, and one prune.
 *
 * Usage: bench_coins [COINS]   (default 10000000; needs about 0.5 GB)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "ig_bank.h"
#include "ig_coins.h"
#include "ig_record.h"
#include "bench.h"
#include "bench_proc.h"

#define OWNERS 1000u
#define EXPIRES 2000000000u /* far in the future: nothing expires during the run */

static void die(const char *what, const ig_error *err)
{
	bench_die(what, err ? err->msg : "failed");
}

/* Coin hash number i, reproducible so lookups need not keep 320 MB of
 * hashes around (which would distort the RSS figure). */
static void coin_hash(uint8_t out[IG_HASH_BYTES], uint64_t i)
{
	for (int k = 0; k < 4; k++) {
		uint64_t v = bench_splitmix64(i * 4 + (uint64_t)k);
		memcpy(out + 8 * k, &v, 8);
	}
}

static void owner_id(char *out, size_t cap, uint64_t n)
{
	snprintf(out, cap, "collector-%05" PRIu64, n % OWNERS);
}

static void apply(ig_coins *c, uint16_t type, const uint8_t *body, int len, uint64_t index)
{
	ig_error err;
	if (len <= 0)
		die("encoding a record", NULL);
	ig_record rec;
	memset(&rec, 0, sizeof rec);
	rec.type = type;
	rec.body = body;
	rec.body_len = (uint32_t)len;
	rec.index = index;
	if (ig_coins_apply(c, &rec, &err) != IG_OK)
		die("applying a record", &err);
}

int main(int argc, char **argv)
{
	bench_name = "bench_coins";
	uint64_t coins = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000ull;
	if (coins < 64 || ig_init() != IG_OK) {
		fprintf(stderr, "usage: bench_coins [COINS >= 64]\n");
		return 2;
	}
	static uint8_t body[4096];
	static ig_mint_rec mint;
	uint64_t index = 1;

	long rss0 = bench_proc_status_kb(0, "VmRSS");
	ig_coins *c = ig_coins_new();
	if (!c)
		die("ig_coins_new", NULL);

	for (uint64_t o = 0; o < OWNERS; o++) {
		ig_credit_rec cr = {.amount = coins};
		owner_id(cr.id, sizeof cr.id, o);
		strcpy(cr.by, "bench");
		apply(c, IG_REC_CREDIT, body, ig_bank_credit_encode(body, sizeof body, &cr), index++);
	}

	/* mint: 64 coins per record, owners in turn */
	uint64_t t0 = ig_mono_us();
	double c0 = bench_proc_self_cpu_s();
	for (uint64_t i = 0; i < coins; i += IG_COINS_PER_REQUEST) {
		memset(&mint, 0, sizeof mint);
		owner_id(mint.owner, sizeof mint.owner, i / IG_COINS_PER_REQUEST);
		mint.expires_at = EXPIRES;
		mint.count = (uint32_t)(coins - i < IG_COINS_PER_REQUEST ? coins - i : IG_COINS_PER_REQUEST);
		for (uint32_t k = 0; k < mint.count; k++)
			coin_hash(mint.hashes[k], i + k);
		apply(c, IG_REC_COIN_MINT, body, ig_bank_mint_encode(body, sizeof body, &mint), index++);
	}
	double mint_s = (double)(ig_mono_us() - t0) / 1e6, mint_cpu = bench_proc_self_cpu_s() - c0;
	long rss1 = bench_proc_status_kb(0, "VmRSS");
	size_t mem = ig_coins_memory(c);

	printf("coin index: %" PRIu64 " outstanding coins, %u owners\n", coins, OWNERS);
	printf("coin index memory: %.1f bytes/coin (ig_coins_memory %.1f MB)\n", (double)mem / (double)coins,
	       (double)mem / 1e6);
	printf("coin index rss: %.1f bytes/coin (VmRSS %ld -> %ld kB, peak VmHWM %ld kB during growth)\n",
	       (double)(rss1 - rss0) * 1024.0 / (double)coins, rss0, rss1, bench_proc_status_kb(0, "VmHWM"));
	printf("apply coin_mint: %.0f ns/coin wall, %.0f ns/coin cpu (decode + insert, 64 coins per record; %.2f s)\n",
	       mint_s * 1e9 / (double)coins, mint_cpu * 1e9 / (double)coins, mint_s);

	/* lookups of present coins in random order, and of absent ones */
	const uint64_t lookups = 2000000;
	uint8_t h[IG_HASH_BYTES];
	ig_coin_info info;
	uint64_t hits = 0;
	t0 = ig_mono_us();
	c0 = bench_proc_self_cpu_s();
	for (uint64_t n = 0; n < lookups; n++) {
		coin_hash(h, bench_splitmix64(n ^ 0x5555) % coins);
		hits += ig_coins_find(c, h, &info) == IG_OK;
	}
	double find_s = (double)(ig_mono_us() - t0) / 1e6, find_cpu = bench_proc_self_cpu_s() - c0;
	if (hits != lookups)
		die("a minted coin was not found", NULL);
	uint64_t misses = 0;
	t0 = ig_mono_us();
	c0 = bench_proc_self_cpu_s();
	for (uint64_t n = 0; n < lookups; n++) {
		coin_hash(h, coins + n); /* never minted */
		misses += ig_coins_find(c, h, NULL) == IG_ERR_NOTFOUND;
	}
	double miss_s = (double)(ig_mono_us() - t0) / 1e6, miss_cpu = bench_proc_self_cpu_s() - c0;
	if (misses != lookups)
		die("an unminted coin was found", NULL);
	/* the cost of making a hash is in both figures; measure it alone */
	volatile uint8_t sink = 0;
	t0 = ig_mono_us();
	c0 = bench_proc_self_cpu_s();
	for (uint64_t n = 0; n < lookups; n++) {
		coin_hash(h, bench_splitmix64(n ^ 0x5555) % coins);
		sink ^= h[0];
	}
	double gen_s = (double)(ig_mono_us() - t0) / 1e6, gen_cpu = bench_proc_self_cpu_s() - c0;
	(void)sink;
	printf("find (present, random order): %.0f ns/op wall, %.0f ns/op cpu\n", (find_s - gen_s) * 1e9 / (double)lookups,
	       (find_cpu - gen_cpu) * 1e9 / (double)lookups);
	printf("find (absent): %.0f ns/op wall, %.0f ns/op cpu\n", (miss_s - gen_s) * 1e9 / (double)lookups,
	       (miss_cpu - gen_cpu) * 1e9 / (double)lookups);

	/* redeem a tenth of the coins through coin_redeem records */
	uint64_t redeems = coins / 10;
	t0 = ig_mono_us();
	c0 = bench_proc_self_cpu_s();
	for (uint64_t i = 0; i < redeems; i++) {
		ig_redeem_rec r;
		memset(&r, 0, sizeof r);
		uint64_t coin = i * 10;
		coin_hash(r.coin_hash, coin);
		strcpy(r.analyst, "analyst-1");
		owner_id(r.collector, sizeof r.collector, coin / IG_COINS_PER_REQUEST);
		/* As the plugin writes them: with the header hash, which the index
		 * turns into the redeemer's tag (any 32 bytes will do here). */
		r.has_header_hash = true;
		memcpy(r.header_hash, r.coin_hash, IG_HASH_BYTES);
		apply(c, IG_REC_COIN_REDEEM, body, ig_bank_redeem_encode(body, sizeof body, &r), index++);
	}
	double redeem_s = (double)(ig_mono_us() - t0) / 1e6, redeem_cpu = bench_proc_self_cpu_s() - c0;
	printf("apply coin_redeem: %.0f ns/coin wall, %.0f ns/coin cpu (%" PRIu64 " records, encode included)\n",
	       redeem_s * 1e9 / (double)redeems, redeem_cpu * 1e9 / (double)redeems, redeems);

	/* prune them all (their expiry is passed as "now") */
	t0 = ig_mono_us();
	size_t dropped = ig_coins_prune(c, (uint64_t)EXPIRES + 1);
	double prune_s = (double)(ig_mono_us() - t0) / 1e6;
	printf("prune: %zu spent coins dropped in %.2f s; index now %.1f bytes/outstanding coin\n", dropped, prune_s,
	       (double)ig_coins_memory(c) / (double)ig_coins_count(c, IG_COIN_MINTED));

	ig_coins_free(c);
	return 0;
}
