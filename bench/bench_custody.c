/*
 * bench_custody.c: what device-quorum custody (issue 9) costs in CPU.
 *
 * Why this exists: a deal happens on the cluster head at every rotation
 * (off the event loop, but it delays the epoch), a share check runs on every
 * holder, which may be a small device, and an unseal (k share checks, one
 * combine, one AEAD open) stands between a restart and a working cluster
 * head. These figures say whether k = 22 of n = 64 is cheap enough for all
 * three, and what the sealed key file adds.
 *
 * Each figure is the median of --rounds timed runs (default 200), in µs, of:
 *   deal      ig_vss_deal, n = 64, k = 22 (shares and commitments)
 *   verify    ig_vss_verify of one share against 22 commitments
 *   combine   ig_vss_combine of 22 shares
 *   check     ig_vss_check_secret (S·G == C0)
 *   deal box  ig_custody_deal_seal / _open (precomputed box key)
 *   release   ig_custody_release_seal / _open (two X25519 conversions + box)
 *   seal      ig_custody_seal / ig_custody_unseal of a 92-byte ch.key
 *
 * Usage: bench_custody [--rounds N]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bench.h"
#include "bench_stats.h"
#include "ig_custody.h"
#include "ig_vss.h"

enum { N = 64, K = 22 };

static double *samples;
static size_t rounds;

static double median_us(void)
{
	return bench_stats_median(samples, rounds) * 1e6;
}

#define TIMED(stmt)                                           \
	do {                                                      \
		for (size_t r_ = 0; r_ < rounds; r_++) {              \
			double t0_ = bench_now_s();                       \
			stmt;                                             \
			samples[r_] = bench_now_s() - t0_;                \
		}                                                     \
	} while (0)

int main(int argc, char **argv)
{
	uint64_t nrounds = 200;
	const cli_option opts[] = {
		CLI_NUMBER("rounds", 0, &nrounds, 1, 1000000),
		CLI_HELP_OPTION(0),
		CLI_OPTIONS_END,
	};
	bench_name = "bench_custody";
	bench_parse(argc, argv, NULL, opts, "usage: bench_custody [--rounds N]\n");
	if (ig_init() != IG_OK)
		bench_die("libsodium", "init failed");
	rounds = (size_t)nrounds;
	samples = bench_xrealloc(NULL, rounds * sizeof *samples);

	static uint8_t S[32], shares[N][32], comms[K][32], sub[K][32], out[32];
	uint8_t idx[K];
	if (ig_custody_secret_new(S, NULL, 0) != IG_OK)
		bench_die("secret", "ig_custody_secret_new failed");

	printf("custody: ristretto255 VSS n = %d, k = %d; median of %zu rounds, µs\n", N, K, rounds);
	TIMED(if (ig_vss_deal(shares, comms, S, K, N) != IG_OK) bench_die("deal", "failed"));
	printf("  %-44s %10.1f\n", "deal (64 shares, 22 commitments)", median_us());

	int bad = 0;
	TIMED(bad |= ig_vss_verify(shares[(r_ * 7) % N], (unsigned)((r_ * 7) % N) + 1,
	                           (const uint8_t(*)[32])comms, K));
	if (bad)
		bench_die("verify", "an honest share failed");
	printf("  %-44s %10.1f\n", "verify one share (k = 22, on the holder)", median_us());

	for (unsigned i = 0; i < K; i++) {
		idx[i] = (uint8_t)(3 * i + 1);
		memcpy(sub[i], shares[3 * i], 32);
	}
	TIMED(bad |= ig_vss_combine(out, idx, (const uint8_t(*)[32])sub, K));
	if (bad || sodium_memcmp(out, S, 32) != 0)
		bench_die("combine", "did not rebuild S");
	printf("  %-44s %10.1f\n", "combine 22 shares (Lagrange at 0)", median_us());
	TIMED(bad |= ig_vss_check_secret(out, comms[0]));
	if (bad)
		bench_die("check", "S·G != C0");
	printf("  %-44s %10.1f\n", "check S·G == C0", median_us());
	double unseal_shares = 0;

	/* Boxes: the cluster head and one holder. */
	uint8_t ch_pk[32], ch_sk[64], h_pk[32], h_sk[64], xpk[32], xsk[32];
	crypto_sign_keypair(ch_pk, ch_sk);
	crypto_sign_keypair(h_pk, h_sk);
	crypto_box_keypair(xpk, xsk);
	ig_box_key bk;
	if (ig_keybox_key_for_device(&bk, ch_sk, h_pk) != IG_OK)
		bench_die("box key", "failed");
	ig_custody_deal d = {.epoch = 1, .index = 1, .k = K, .n = N};
	memcpy(d.share, shares[0], 32);
	ig_custody_commitments_hash(d.commitments_hash, 1, (const uint8_t(*)[32])comms, K);
	uint8_t dbox[IG_CUSTODY_DEAL_BOX_BYTES], nonce[24];
	TIMED(bad |= ig_custody_deal_seal(dbox, nonce, &d, &bk));
	printf("  %-44s %10.1f\n", "deal box seal (per holder)", median_us());
	ig_custody_deal back;
	TIMED(bad |= ig_custody_deal_open(&back, dbox, sizeof dbox, nonce, &bk));
	printf("  %-44s %10.1f\n", "deal box open", median_us());

	ig_custody_release rel = {.epoch = 1, .index = 1};
	memcpy(rel.share, shares[0], 32);
	uint8_t rbox[IG_CUSTODY_RELEASE_BOX_BYTES];
	TIMED(bad |= ig_custody_release_seal(rbox, nonce, &rel, xpk, h_sk));
	printf("  %-44s %10.1f\n", "release box seal (on the holder)", median_us());
	ig_custody_release rback;
	TIMED(bad |= ig_custody_release_open(&rback, rbox, sizeof rbox, nonce, h_pk, xsk));
	double rel_open = median_us();
	printf("  %-44s %10.1f\n", "release box open (on the requester)", rel_open);
	if (bad)
		bench_die("boxes", "a box failed");

	char keyfile[128], hex[65];
	sodium_bin2hex(hex, sizeof hex, ch_sk, 32);
	snprintf(keyfile, sizeof keyfile, "iotguard-ed25519-secret-v1 %s\n", hex);
	size_t kl = strlen(keyfile), sl = 0;
	uint8_t sealed[256], sk[64];
	TIMED(bad |= ig_custody_seal(sealed, sizeof sealed, &sl, S, ch_pk, (const uint8_t *)keyfile, kl));
	printf("  %-44s %10.1f\n", "seal ch.key (92 bytes)", median_us());
	TIMED(bad |= ig_custody_unseal(sk, S, ch_pk, sealed, sl, NULL));
	double unseal = median_us();
	printf("  %-44s %10.1f\n", "unseal ch.key.sealed (S·G, AEAD, key check)", unseal);
	if (bad || sodium_memcmp(sk, ch_sk, 64) != 0)
		bench_die("seal", "unseal did not give the key back");

	/* The whole unseal on the cluster head, from k released boxes: open and
	 * verify each, combine, check, unseal. */
	TIMED(
		for (unsigned i = 0; i < K; i++) {
			bad |= ig_custody_release_open(&rback, rbox, sizeof rbox, nonce, h_pk, xsk);
			bad |= ig_vss_verify(sub[i], idx[i], (const uint8_t(*)[32])comms, K);
		} bad |= ig_vss_combine(out, idx, (const uint8_t(*)[32])sub, K);
		bad |= ig_custody_unseal(sk, out, ch_pk, sealed, sl, NULL));
	unseal_shares = median_us();
	if (bad)
		bench_die("unseal", "the full unseal failed");
	printf("  %-44s %10.1f\n", "full unseal: 22 × (open + verify), combine", unseal_shares);
	sodium_memzero(sk, sizeof sk);
	sodium_memzero(S, sizeof S);
	sodium_memzero(shares, sizeof shares);
	sodium_memzero(sub, sizeof sub);
	free(samples);
	return 0;
}
