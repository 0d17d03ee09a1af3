/*
 * bench_scale.c: how the plugin copes with a million identities, plus the
 * fixtures (ledgers, tokens) that the connect and publish benchmarks share.
 *
 * Why this exists: the registry promises O(1) lookups at <= 300 bytes per
 * identity and the plugin promises to start within seconds on a large
 * ledger. Both are only believable when measured on a real broker with a
 * real ledger, and building that ledger one CLI call per identity would take
 * hours, so this writes it through lib/ with group commit.
 *
 * Identities are "dev-%07u" (devices) and "mon-%03u" (monitors). Their keys
 * are derived from the id (BLAKE2b keyed with a fixed benchmark string), so
 * the ledger builder and the token minter agree without key files. Only the
 * first --real-keys devices get real Ed25519 public keys; the rest get a
 * hash-derived 32-byte key, which costs the registry exactly the same memory
 * and avoids 1M scalar multiplications. Benchmark keys are public by
 * construction: never use them outside a benchmark.
 *
 *   bench_scale mkledger --dir D --cluster C --devices N [--monitors M] [--real-keys K]
 *   bench_scale tokens --cluster C --prefix dev|mon --count N [--lines L] [--ttl S]
 *   bench_scale run --plugin SO --work DIR [--identities N] [--port P] [--broker-cpu N] [--client-cpu N]
 *
 * run leaves the broker unpinned unless --broker-cpu is given: the plugin's
 * start replays the ledger on two threads (lib/ledger/ledger_scan.c), and the
 * builder has finished and the probe sleeps between connects by then.
 */
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench.h"
#include "bench_broker.h"
#include "bench_id.h"
#include "bench_proc.h"
#include "ig_common.h"
#include "ig_ledger.h"
#include "ig_record.h"
#include "ig_token.h"

/* ---- mkledger ----------------------------------------------------------- */

/* Builds a ledger with `devices` devices and `monitors` monitors. Submits
 * without waiting, but keeps at most `window` records queued so memory stays
 * bounded on a million records. Returns seconds taken. */
static double mkledger(const char *dir, const char *cluster, uint32_t devices, uint32_t monitors, uint32_t real_keys,
                       bool quiet)
{
	double t0 = bench_now_s();
	bench_id_builder b;
	bench_id_build_begin(&b, dir, cluster, 200000);
	uint64_t total = (uint64_t)devices + monitors;
	for (uint64_t i = 0; i < total; i++) {
		char id[IG_ID_MAX + 1];
		if (i < monitors) {
			bench_id_format(id, sizeof id, "mon", (uint32_t)i);
			bench_id_build_enroll(&b, id, IG_ROLE_MONITOR, NULL);
		} else {
			uint32_t d = (uint32_t)(i - monitors);
			bench_id_format(id, sizeof id, "dev", d);
			if (d < real_keys) {
				bench_id_build_enroll(&b, id, IG_ROLE_DEVICE, NULL);
			} else {
				uint8_t seed[IG_SEED_BYTES];
				bench_id_seed(seed, id);   /* stands in for a key nobody connects with */
				bench_id_build_enroll(&b, id, IG_ROLE_DEVICE, seed);
			}
		}
		if (!quiet && (b.submitted % 100000) == 0)
			fprintf(stderr, "  ... %" PRIu64 " records submitted, %" PRIu64 " durable\n", b.submitted, b.done_ok);
	}
	uint64_t height = bench_id_build_end(&b);
	if (height != total + 1)
		bench_dief("ledger height %" PRIu64 ", expected %" PRIu64, height, total + 1);
	return bench_now_s() - t0;
}

/* ---- tokens -------------------------------------------------------------- */

/* Writes `lines` lines "id token" cycling over count ids, one fresh token
 * (own nonce) per line, so a connect benchmark never reuses a token. */
static void write_tokens(FILE *out, const char *cluster, const char *prefix, uint32_t count, uint32_t lines,
                         uint32_t ttl)
{
	uint8_t (*sks)[IG_SK_BYTES] = calloc(count, IG_SK_BYTES);
	char (*ids)[IG_ID_MAX + 1] = calloc(count, IG_ID_MAX + 1);
	if (!sks || !ids)
		bench_dief("out of memory");
	for (uint32_t i = 0; i < count; i++) {
		uint8_t pk[IG_PK_BYTES];
		bench_id_format(ids[i], sizeof ids[i], prefix, i);
		bench_id_keypair(ids[i], pk, sks[i]);
	}
	uint64_t now = ig_now_ms() / 1000;
	for (uint32_t j = 0; j < lines; j++) {
		uint32_t i = j % count;
		char tok[IG_TOKEN_TEXT_MAX];
		int n = ig_token_mint(tok, sizeof tok, sks[i], cluster, ids[i], now, now + ttl, NULL);
		if (n < 0)
			bench_dief("minting a token for %s failed (error %d)", ids[i], n);
		fprintf(out, "%s %s\n", ids[i], tok);
	}
	sodium_memzero(sks, (size_t)count * IG_SK_BYTES);
	free(sks);
	free(ids);
}

/* ---- broker start and RSS ----------------------------------------------- */

static int cmd_run(const char *plugin, const char *work, uint32_t identities, int port, int broker_cpu,
                   int client_cpu)
{
	const char *cluster = "bench";
	char big[4096], small[4096], log_path[8192];
	snprintf(big, sizeof big, "%s/ledger-scale-big", work);
	snprintf(small, sizeof small, "%s/ledger-scale-one", work);
	bench_remove_tree(big);
	bench_remove_tree(small);
	bench_proc_pin(client_cpu);

	printf("== bench_scale: plugin start time and memory per identity ==\n");
	if (broker_cpu < 0)
		printf("broker unpinned (the plugin replays on two threads), builder/probe pinned to cpu %d; "
		       "ids dev-NNNNNNN\n",
		       client_cpu);
	else
		printf("broker pinned to cpu %d, builder/probe pinned to cpu %d; ids dev-NNNNNNN\n", broker_cpu, client_cpu);
	fflush(stdout);

	double build_s = mkledger(big, cluster, identities, 0, 16, false);
	snprintf(log_path, sizeof log_path, "%s/" IG_LEDGER_LOG, big);
	long log_bytes = bench_proc_file_size(log_path);
	printf("built a %u-identity ledger in %.2f s (%.0f enrolls/s, ledger.log %.1f MB, %.0f bytes/record)\n",
	       identities, build_s, identities / build_s, log_bytes / 1e6, (double)log_bytes / (identities + 1));
	mkledger(small, cluster, 1, 0, 1, true);
	fflush(stdout);

	char probe_id[IG_ID_MAX + 1];
	bench_id_format(probe_id, sizeof probe_id, "dev", 0);
	bench_broker_opts bo = {.work = work, .prefix = "scale", .tag = "one", .plugin = plugin, .ledger_dir = small,
	                        .cluster = cluster, .id = probe_id, .port = port, .cpu = broker_cpu,
	                        .start_timeout_s = 60};
	bench_broker_reading one = bench_broker_measure(&bo);
	/* The big ledger was just written, so its pages are in the page cache:
	 * this is a warm start (the usual case after a restart). */
	bo.tag = "big";
	bo.ledger_dir = big;
	bench_broker_reading bigr = bench_broker_measure(&bo);

	printf("1-identity ledger:  start %.3f s (port open %.3f s), plugin 'loaded in' %ld ms, VmRSS %ld kB "
	       "(anon %ld, file %ld), VmHWM %ld kB\n",
	       one.start_s, one.first_tcp_s, one.loaded_ms, one.rss_kb, one.rss_anon_kb, one.rss_file_kb, one.hwm_kb);
	printf("%u-identity ledger: start %.3f s (port open %.3f s), plugin 'loaded in' %ld ms, VmRSS %ld kB "
	       "(anon %ld, file %ld), VmHWM %ld kB\n",
	       identities, bigr.start_s, bigr.first_tcp_s, bigr.loaded_ms, bigr.rss_kb, bigr.rss_anon_kb, bigr.rss_file_kb,
	       bigr.hwm_kb);
	double per_id = (double)(bigr.rss_kb - one.rss_kb) * 1024.0 / identities;
	double per_id_anon = (double)(bigr.rss_anon_kb - one.rss_anon_kb) * 1024.0 / identities;
	double per_id_hwm = (double)(bigr.hwm_kb - one.hwm_kb) * 1024.0 / identities;
	printf("RSS per identity: %.1f bytes (VmRSS delta / %u; anon only %.1f bytes; peak VmHWM delta %.1f bytes)\n",
	       per_id, identities, per_id_anon, per_id_hwm);
	printf("RESULT scale.start_s %.3f\n", bigr.start_s);
	printf("RESULT scale.loaded_ms %ld\n", bigr.loaded_ms);
	printf("RESULT scale.rss_per_identity_bytes %.1f\n", per_id);
	printf("RESULT scale.hwm_per_identity_bytes %.1f\n", per_id_hwm);
	printf("RESULT scale.build_s %.2f\n", build_s);
	fflush(stdout);

	bench_remove_tree(big);
	bench_remove_tree(small);
	return 0;
}

static const char usage[] =
	"usage:\n"
	"  bench_scale mkledger --dir D --cluster C --devices N [--monitors M] [--real-keys K]\n"
	"  bench_scale tokens --cluster C [--prefix dev|mon] --count N [--lines L] [--ttl S]   (to stdout)\n"
	"  bench_scale run --plugin SO --work DIR [--identities N] [--port P] [--broker-cpu N] [--client-cpu N]\n";

int main(int argc, char **argv)
{
	bench_name = "bench_scale";
	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	if (ig_init() != IG_OK)
		bench_die("library initialisation failed", NULL);
	const char *cmd = argv[1];
	const char *dir = NULL, *cluster = NULL, *prefix = "dev";
	uint64_t devices = 1000, monitors = 0, real = UINT64_MAX, count = 1000, lines = UINT64_MAX, ttl = 600;
	uint64_t identities = 1000000;
	if (!strcmp(cmd, "mkledger")) {
		const cli_option opts[] = {
			CLI_REQUIRED("dir", 0, &dir, "D"),
			CLI_REQUIRED("cluster", 0, &cluster, "C"),
			CLI_NUMBER("devices", 0, &devices, 0, UINT32_MAX),
			CLI_NUMBER("monitors", 0, &monitors, 0, 999),
			CLI_NUMBER("real-keys", 0, &real, 0, UINT32_MAX),
			CLI_HELP_OPTION(0),
			CLI_OPTIONS_END,
		};
		bench_parse(argc - 1, argv + 1, cmd, opts, usage);
		uint32_t d = (uint32_t)devices, m = (uint32_t)monitors;
		double secs = mkledger(dir, cluster, d, m, real == UINT64_MAX ? d : (uint32_t)real, true);
		fprintf(stderr, "bench_scale: ledger %s: %u devices, %u monitors in %.2f s\n", dir, d, m, secs);
		return 0;
	}
	if (!strcmp(cmd, "tokens")) {
		const cli_option opts[] = {
			CLI_REQUIRED("cluster", 0, &cluster, "C"),
			CLI_TEXT("prefix", 0, &prefix),
			CLI_NUMBER("count", 0, &count, 1, UINT32_MAX),
			CLI_NUMBER("lines", 0, &lines, 0, UINT32_MAX),
			CLI_NUMBER("ttl", 0, &ttl, 1, UINT32_MAX),
			CLI_HELP_OPTION(0),
			CLI_OPTIONS_END,
		};
		bench_parse(argc - 1, argv + 1, cmd, opts, usage);
		write_tokens(stdout, cluster, prefix, (uint32_t)count, lines == UINT64_MAX ? (uint32_t)count : (uint32_t)lines,
		             (uint32_t)ttl);
		return fflush(stdout) == 0 ? 0 : 1;
	}
	if (!strcmp(cmd, "run")) {
		/* The broker is unpinned by default: its start replays the ledger
		 * on two threads, and nothing else runs while it starts. */
		bench_broker_cli bc = {.port = 18890, .broker_cpu = -1, .client_cpu = 0};
		const cli_option opts[] = {
			BENCH_BROKER_CLI_OPTIONS(&bc),
			CLI_NUMBER("identities", 0, &identities, 1, UINT32_MAX),
			CLI_HELP_OPTION(0),
			CLI_OPTIONS_END,
		};
		bench_parse(argc - 1, argv + 1, cmd, opts, usage);
		mkdir(bc.work, 0700);
		return cmd_run(bc.plugin, bc.work, (uint32_t)identities, (int)bc.port, bench_broker_cli_cpu(bc.broker_cpu),
		               bench_broker_cli_cpu(bc.client_cpu));
	}
	fputs(usage, stderr);
	return 2;
}
