/*
 * rss.c: the broker's RAM per outstanding coin: a ledger with --coins minted
 * coins and one with the same identities and credit but no coins, a broker
 * started on each, and (VmRSS difference) / coins (target <= 48 bytes).
 *
 * Why this exists: the coin index promises a memory budget per coin, and
 * only a real broker that replayed a real ledger shows what it costs with
 * everything else the plugin holds.
 */
#include <inttypes.h>
#include <stdio.h>

#include "bank.h"
#include "bench_broker.h"
#include "bench_proc.h"
#include "ig_ledger.h"

int bank_rss_run(const char *plugin, const char *work, uint64_t coins, int port, int broker_cpu, int client_cpu)
{
	const char *cluster = "bench";
	char big[4096], empty[4096], log_path[4200];
	snprintf(big, sizeof big, "%s/ledger-bank-big", work);
	snprintf(empty, sizeof empty, "%s/ledger-bank-empty", work);
	bench_remove_tree(big);
	bench_remove_tree(empty);
	bench_proc_pin(client_cpu);
	printf("== bench_bank rss: broker memory per outstanding coin, %" PRIu64 " coins ==\n", coins);
	fflush(stdout);
	double build_s = bank_build_coin_ledger(big, cluster, coins);
	snprintf(log_path, sizeof log_path, "%s/" IG_LEDGER_LOG, big);
	long bytes = bench_proc_file_size(log_path);
	printf("built a ledger with %" PRIu64 " minted coins (%" PRIu64 " coin_mint records of 64, %d collectors) through "
	       "lib in %.1f s; ledger.log %.0f MB\n", coins, (coins + 63) / 64, RSS_COLLECTORS, build_s, (double)bytes / 1e6);
	bank_build_coin_ledger(empty, cluster, 0);
	fflush(stdout);
	bench_broker_opts bo = {.work = work, .prefix = "bank", .tag = "empty", .plugin = plugin, .ledger_dir = empty,
	                        .cluster = cluster, .id = "dev-0000000", .port = port, .cpu = broker_cpu,
	                        .start_timeout_s = 120};
	bench_broker_reading e = bench_broker_measure(&bo);
	bo.tag = "big";
	bo.ledger_dir = big;
	bench_broker_reading b = bench_broker_measure(&bo);
	printf("empty bank:      start %.2f s, plugin 'loaded in' %ld ms, VmRSS %ld kB (anon %ld), VmHWM %ld kB\n",
	       e.start_s, e.loaded_ms, e.rss_kb, e.rss_anon_kb, e.hwm_kb);
	printf("%" PRIu64 " coins: start %.2f s, plugin 'loaded in' %ld ms, VmRSS %ld kB (anon %ld), VmHWM %ld kB\n", coins,
	       b.start_s, b.loaded_ms, b.rss_kb, b.rss_anon_kb, b.hwm_kb);
	double per = (double)(b.rss_kb - e.rss_kb) * 1024.0 / (double)coins;
	double per_anon = (double)(b.rss_anon_kb - e.rss_anon_kb) * 1024.0 / (double)coins;
	double per_hwm = (double)(b.hwm_kb - e.hwm_kb) * 1024.0 / (double)coins;
	printf("broker RSS per outstanding coin: %.1f bytes (VmRSS difference / coins; anon only %.1f; peak VmHWM %.1f)   "
	       "(target <= 48: %s)\n", per, per_anon, per_hwm, per <= 48 ? "PASS" : "MISS");
	printf("RESULT bank.rss_per_coin_bytes %.1f\nRESULT bank.hwm_per_coin_bytes %.1f\nRESULT bank.rss_start_s %.2f\n"
	       "RESULT bank.rss_loaded_ms %ld\nRESULT bank.rss_build_s %.1f\nRESULT bank.rss_coins %" PRIu64 "\n",
	       per, per_hwm, b.start_s, b.loaded_ms, build_s, coins);
	fflush(stdout);
	bench_remove_tree(big);
	bench_remove_tree(empty);
	return 0;
}
