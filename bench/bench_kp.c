/*
 * bench_kp.c: what key rings (issue 10) cost in CPU, on the device and on
 * the cluster head.
 *
 * Why this exists: a device derives a pairwise key with no help, so the cost
 * lands on the smallest machine in the cluster: it computes the peer's ring
 * ids from the public seed (m / 8 HMAC-SHA256 blocks at least, plus keeping
 * them sorted), intersects them with its own ring, and runs one HKDF over
 * the shared keys. The cluster head deals a ring at every enrolment, join
 * and request, and after `iotguard kp rotate` to every device that asks: m
 * HKDFs for the pool keys, the ring hash and the key_ring box. These
 * figures say how large m can be before either side notices, and how long
 * a rotation takes to re-deal a large fleet (docs/KEYRINGS.md).
 *
 * For each m in 75, 200, 500, 1024 (pools of 10000, 6000, 36000 and 150000:
 * the Eschenauer-Gligor checkpoint, then docs/KEYRINGS.md's recommendations
 * for 100, 10,000 and 1,000,000 devices), each figure is the median over
 * --rounds of the mean over --peers different peers (or devices), in µs:
 *   ring ids     ig_kp_ring_ids of a peer (the HMAC blocks and the sorted insert)
 *   intersect    ig_kp_shared of the two rings
 *   pair key     gathering the shared keys from the own ring + ig_kp_pair_key
 *   pairwise     the three together: what a device spends per new peer
 *   deal         pool secret, ring ids, m pool keys, ring hash, the A.8
 *                plaintext, crypto_box_easy_afternm and base64: what the
 *                cluster head's worker does per key_ring answer
 * plus the two fixed costs: ig_kp_session (per hello) and the X25519 box
 * key of a device the cluster head has not boxed anything for yet.
 *
 * Usage: bench_kp [--rounds N] [--peers N]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bench.h"
#include "bench_stats.h"
#include "ig_keybox.h"
#include "ig_kp.h"

static double *samples;
static size_t rounds, npeers;

static double median_us(void)
{
	return bench_stats_median(samples, rounds) * 1e6;
}

/* Each sample is one pass over the peers, divided by their number. */
#define TIMED_EACH(stmt)                                        \
	do {                                                        \
		for (size_t r_ = 0; r_ < rounds; r_++) {                \
			double t0_ = bench_now_s();                         \
			for (size_t k = 0; k < npeers; k++) {               \
				stmt;                                           \
			}                                                   \
			samples[r_] = (bench_now_s() - t0_) / (double)npeers; \
		}                                                       \
	} while (0)

typedef struct setting {
	uint32_t ring, pool;
} setting;

static const setting settings[] = {{75, 10000}, {200, 6000}, {500, 36000}, {1024, 150000}};

static void bench_ring(const setting *st, const uint8_t pool_secret[32], const uint8_t seed[32],
                       const uint8_t ch_seed[32], const ig_box_key *bk)
{
	const uint32_t m = st->ring, P = st->pool;
	uint32_t *own = bench_xrealloc(NULL, m * sizeof *own);
	uint8_t(*own_keys)[32] = bench_xrealloc(NULL, (size_t)m * 32);
	if (ig_kp_ring_ids(own, seed, "dev-self", P, m) != IG_OK)
		bench_die("ring ids", "failed for dev-self");
	for (uint32_t i = 0; i < m; i++)
		ig_kp_pool_key(own_keys[i], pool_secret, own[i]);

	/* Peers that share at least one id with dev-self: a device derives a
	 * key only with those (the others go through a path). */
	char(*peer)[IG_ID_MAX + 1] = bench_xrealloc(NULL, npeers * sizeof *peer);
	uint32_t *rings = bench_xrealloc(NULL, npeers * m * sizeof *rings);
	uint32_t shared[IG_KP_PAIR_MAX_IDS];
	uint64_t total_shared = 0;
	size_t found = 0;
	for (uint32_t c = 0; found < npeers; c++) {
		if (c > 100 * npeers + 10000)
			bench_dief("m = %u, P = %u: too few peers share an id with dev-self", m, P);
		snprintf(peer[found], sizeof peer[found], "peer-%u", c);
		uint32_t *r = rings + found * m;
		if (ig_kp_ring_ids(r, seed, peer[found], P, m) != IG_OK)
			bench_die("ring ids", peer[found]);
		size_t n = ig_kp_shared(shared, IG_KP_PAIR_MAX_IDS, own, m, r, m, NULL, 0);
		if (n >= 1) {
			total_shared += n;
			found++;
		}
	}

	uint32_t *scratch = bench_xrealloc(NULL, m * sizeof *scratch);
	uint8_t keys[IG_KP_PAIR_MAX_IDS][32], K[32];
	int bad = 0;
	TIMED_EACH(bad |= ig_kp_ring_ids(scratch, seed, peer[k], P, m));
	double t_ids = median_us();
	volatile size_t sink = 0;
	TIMED_EACH(sink += ig_kp_shared(shared, IG_KP_PAIR_MAX_IDS, own, m, rings + k * m, m, NULL, 0));
	double t_shared = median_us();
	/* The pair key from precomputed intersections: gather, then HKDF. */
	uint32_t(*sh)[IG_KP_PAIR_MAX_IDS] = bench_xrealloc(NULL, npeers * sizeof *sh);
	size_t *nsh = bench_xrealloc(NULL, npeers * sizeof *nsh);
	for (size_t k = 0; k < npeers; k++)
		nsh[k] = ig_kp_shared(sh[k], IG_KP_PAIR_MAX_IDS, own, m, rings + k * m, m, NULL, 0);
	TIMED_EACH({
		size_t j = 0;
		for (size_t i = 0; i < nsh[k]; i++) {
			while (own[j] != sh[k][i])
				j++;
			memcpy(keys[i], own_keys[j], 32);
		}
		bad |= ig_kp_pair_key(K, 1, "dev-self", peer[k], sh[k], (const uint8_t(*)[32])keys, nsh[k]);
	});
	double t_key = median_us();
	TIMED_EACH({
		bad |= ig_kp_ring_ids(scratch, seed, peer[k], P, m);
		size_t n = ig_kp_shared(shared, IG_KP_PAIR_MAX_IDS, own, m, scratch, m, NULL, 0);
		size_t j = 0;
		for (size_t i = 0; i < n; i++) {
			while (own[j] != shared[i])
				j++;
			memcpy(keys[i], own_keys[j], 32);
		}
		bad |= ig_kp_pair_key(K, 1, "dev-self", peer[k], shared, (const uint8_t(*)[32])keys, n);
	});
	double t_pair = median_us();
	if (bad)
		bench_dief("m = %u: a derivation failed", m);

	/* Dealing: what svc_kp.c's worker does per ring (run_ring), with the
	 * pool secret derived each time rather than cached per epoch. */
	ig_kp_params params = {.epoch = 1, .pool = P, .ring = m, .q = 1};
	memcpy(params.seed, seed, 32);
	size_t cap = 8 + 4 + 4 + 1 + 32 + 1 + IG_ID_MAX + (size_t)m * 36;
	uint8_t *plain = bench_xrealloc(NULL, cap), *box = bench_xrealloc(NULL, cap + crypto_box_MACBYTES);
	size_t b64cap = sodium_base64_ENCODED_LEN(cap + crypto_box_MACBYTES, sodium_base64_VARIANT_ORIGINAL);
	char *b64 = bench_xrealloc(NULL, b64cap);
	uint8_t(*dkeys)[32] = bench_xrealloc(NULL, (size_t)m * 32);
	uint8_t ps[32], hash[32], nonce[24];
	TIMED_EACH({
		char dev[IG_ID_MAX + 1];
		snprintf(dev, sizeof dev, "dev-%zu", k);
		ig_kp_pool_secret(ps, ch_seed, 1);
		bad |= ig_kp_ring_ids(scratch, seed, dev, P, m);
		ig_kp_pool_keys(dkeys, ps, scratch, m);   /* as the service's worker does */
		ig_kp_ring_hash(hash, 1, dev, scratch, (const uint8_t(*)[32])dkeys, m);
		int n = ig_kp_ring_plain(plain, cap, &params, dev, scratch, (const uint8_t(*)[32])dkeys);
		if (n < 0)
			bench_die("deal", "ig_kp_ring_plain failed");
		randombytes_buf(nonce, sizeof nonce);
		bad |= crypto_box_easy_afternm(box, plain, (unsigned long long)n, nonce, bk->k);
		sodium_bin2base64(b64, b64cap, box, (size_t)n + crypto_box_MACBYTES, sodium_base64_VARIANT_ORIGINAL);
		sodium_memzero(dkeys, (size_t)m * 32);
		sodium_memzero(plain, (size_t)n);
	});
	double t_deal = median_us();
	if (bad)
		bench_dief("m = %u: dealing failed", m);

	printf("m = %u, P = %u (%u bytes of ring per device; the %zu peers share %.1f ids on average)\n", m, P,
	       m * 36, npeers, (double)total_shared / (double)npeers);
	printf("  %-52s %10.1f\n", "peer ring ids (ig_kp_ring_ids)", t_ids);
	printf("  %-52s %10.1f\n", "intersection (ig_kp_shared)", t_shared);
	printf("  %-52s %10.1f\n", "pair key (gather + ig_kp_pair_key)", t_key);
	printf("  %-52s %10.1f   %8.0f /s\n", "pairwise key, all three (on the device)", t_pair, 1e6 / t_pair);
	printf("  %-52s %10.1f   %8.0f /s\n", "deal one ring (cluster head's worker, one core)", t_deal, 1e6 / t_deal);
	printf("RESULT kp.m%u.pair_us %.1f\n", m, t_pair);
	printf("RESULT kp.m%u.pairs_per_s %.0f\n", m, 1e6 / t_pair);
	printf("RESULT kp.m%u.ring_ids_us %.1f\n", m, t_ids);
	printf("RESULT kp.m%u.deal_us %.1f\n", m, t_deal);
	printf("RESULT kp.m%u.deals_per_s %.0f\n", m, 1e6 / t_deal);
	(void)sink;
	free(own);
	sodium_memzero(own_keys, (size_t)m * 32);
	free(own_keys);
	free(peer);
	free(rings);
	free(scratch);
	free(sh);
	free(nsh);
	free(plain);
	free(box);
	free(b64);
	free(dkeys);
	sodium_memzero(keys, sizeof keys);
	sodium_memzero(K, sizeof K);
	sodium_memzero(ps, sizeof ps);
}

int main(int argc, char **argv)
{
	uint64_t nrounds = 20, peers = 200;
	const cli_option opts[] = {
		CLI_NUMBER("rounds", 0, &nrounds, 1, 100000),
		CLI_NUMBER("peers", 0, &peers, 1, 100000),
		CLI_HELP_OPTION(0),
		CLI_OPTIONS_END,
	};
	bench_name = "bench_kp";
	bench_parse(argc, argv, NULL, opts, "usage: bench_kp [--rounds N] [--peers N]\n");
	if (ig_init() != IG_OK)
		bench_die("libsodium", "init failed");
	rounds = (size_t)nrounds;
	npeers = (size_t)peers;
	samples = bench_xrealloc(NULL, rounds * sizeof *samples);

	uint8_t ch_pk[32], ch_sk[64], dev_pk[32], dev_sk[64], pool_secret[32], seed[32];
	crypto_sign_keypair(ch_pk, ch_sk);
	crypto_sign_keypair(dev_pk, dev_sk);
	ig_kp_pool_secret(pool_secret, ch_sk, 1);   /* the first 32 bytes of the secret key: its seed */
	ig_kp_ring_seed(seed, pool_secret);
	ig_box_key bk;
	int bad = 0;
	for (size_t r = 0; r < rounds; r++) {
		double t0 = bench_now_s();
		bad |= ig_keybox_key_for_device(&bk, ch_sk, dev_pk);
		samples[r] = bench_now_s() - t0;
	}
	if (bad)
		bench_die("box key", "ig_keybox_key_for_device failed");
	double t_bk = median_us();
	uint8_t na[32], nb[32], skey[32], kid[16];
	randombytes_buf(na, sizeof na);
	randombytes_buf(nb, sizeof nb);
	for (size_t r = 0; r < rounds; r++) {
		double t0 = bench_now_s();
		ig_kp_session(skey, kid, pool_secret, na, nb, "dev-a", "dev-b");
		samples[r] = bench_now_s() - t0;
	}
	double t_session = median_us();

	printf("key rings: median over %zu rounds of the mean over %zu peers, µs\n", rounds, npeers);
	for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
		bench_ring(&settings[i], pool_secret, seed, ch_sk, &bk);
	printf("fixed costs\n");
	printf("  %-52s %10.1f\n", "session key from a hello (ig_kp_session)", t_session);
	printf("  %-52s %10.1f\n", "box key of a device, first deal (X25519)", t_bk);
	printf("RESULT kp.session_us %.1f\n", t_session);
	printf("RESULT kp.box_key_us %.1f\n", t_bk);
	sodium_memzero(ch_sk, sizeof ch_sk);
	sodium_memzero(dev_sk, sizeof dev_sk);
	sodium_memzero(pool_secret, sizeof pool_secret);
	sodium_memzero(&bk, sizeof bk);
	sodium_memzero(skey, sizeof skey);
	free(samples);
	return 0;
}
