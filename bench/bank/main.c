/*
 * bench_bank (main.c): the bank end to end: durable coins per second, what sealing
 * data with coins costs against plaintext, and the broker's RAM per
 * outstanding coin.
 *
 * Why this exists: a coin is worth something only once the bank has minted
 * it durably and, later, burned it durably for one analyst. So the figure
 * that matters is acknowledged coins: a mint counts (64 coins) when the
 * collector has received its "coins" box and opened it; a redeem counts when
 * the analyst has received its "redeemed" box, opened it, and decrypted the
 * data message with the key inside. The plugin sends either box only from
 * the ledger completion of the COIN_MINT / COIN_REDEEM record, i.e. after
 * its fdatasync: every counted coin is a durable ledger record, by
 * construction of the plugin.
 *
 *   bench_bank mkledger --dir D --cluster C [--collectors 100] [--analysts 4]
 *                       [--monitors 2] [--credit 100000000]
 *   bench_bank run --port P [--cluster C] [--collectors 100] [--analysts 4]
 *                  [--stock 512] [--seal-seconds 12] [--window 8] [--duration 5]
 *                  [--warmup 1] [--mint-probe 1.5] [--payload 64] [--qos 1]
 *                  [--route-pairs 8] [--route-window 2000] [--rounds 3]
 *                  [--route-duration 1.5] [--slice 0.5] [--pid BROKER_PID] [--goal 10000]
 *   bench_bank rss --plugin SO --work DIR [--coins 10000000] [--port P]
 *                  [--broker-cpu N] [--client-cpu N]
 *
 * run, in order (one poll() loop drives every client, MQTT spoken by
 * lib/bench_conn.c; bank.h says which file holds which part):
 *  1. Stock (not timed): every collector mints --stock coins (requests of
 *     64) and seals one data message per coin with ig_coin_data_seal.
 *     Sealing is crypto_box_seal to the bank (an X25519 key generation plus a scalar
 *     multiplication, ~70-100 us here), which on the one load-generator core
 *     would cap the run below the broker's rate, so it happens before timing
 *     and its cost is printed.
 *  2. Bank (timed): collectors publish their sealed messages on
 *     iotguard/C/dev/<id>/data/bank (QoS --qos, at most --window per
 *     collector not yet redeemed) and keep minting as they spend, like a
 *     wallet refill: a collector asks for 64 more coins whenever it has
 *     published as many coins as it has asked for in this phase (each at its
 *     own random point of that 64-coin cycle, so the collectors refill out of
 *     step), so mints/s follows the rate at which messages are published
 *     and redeemed.
 *     Analysts (ana-NNN, collectors split between them) subscribe to their
 *     collectors' data topics, send {"type":"redeem",...} for every header,
 *     open the redeemed box and decrypt the message with
 *     ig_coin_data_open_redeemed. Printed: mints/s, redeems/s, their sum
 *     (target --goal), latencies, broker CPU per coin, and from the plugin's stats
 *     (run the broker with plugin_opt_stats_interval 1) its coin counts and
 *     ledger commit latency.
 *  3. Mint only (--mint-probe seconds): what minting alone costs the broker
 *     per coin, and how fast it goes with 2 requests in flight per collector.
 *  4. Routing: --route-pairs collectors publish on .../data/route to one
 *     monitor (mon-001 subscribed to iotguard/C/dev/+/data/+), switching every
 *     --slice seconds between plaintext payloads (same payload size),
 *     plaintext padded to the sealed message's size, and coin-sealed
 *     messages (a pool of 64 real sealed messages per collector, sent again
 *     and again: the broker only routes data, so repeated bytes cost it the
 *     same). Messages/s and broker CPU per mode, ratio sealed/plaintext; and
 *     the client-side crypto per message in a tight loop.
 * rss: writes a ledger with --coins minted coins through lib (COIN_MINT
 *     records of 64 coins) and one with the same identities and credit but no
 *     coins, starts mosquitto with the plugin on each, and prints (VmRSS
 *     difference) / coins (target <= 48 bytes per outstanding coin).
 *
 * Identities (mkledger): collectors dev-NNNNNNN (devices), analysts ana-NNN,
 * monitors mon-NNN, each collector credited --credit coins. Keys are derived
 * from the id (lib/bench_id.c, as bench_scale uses): public, benchmark-only.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "bank.h"
#include "bench_broker.h"
#include "ig_token.h"

static int cmd_run(bench *B, const run_opts *o)
{
	bank_clients_open(B);
	printf("== bench_bank: %d collectors, %d analysts, %zu-byte payloads (%zu bytes sealed, %s), data QoS %d, "
	       "%d data messages in flight per collector, %.1f s (+%.1f s warm-up) ==\n",
	       B->ncol, B->nana, B->payload_len, B->msg_len, ig_suite_name(B->suite), B->qos, B->window, o->duration,
	       o->warmup);
	printf("a mint counts 64 coins once the collector opened its coins box; a redeem counts once the analyst opened\n"
	       "the redeemed box and decrypted the data message with it. The plugin sends both boxes only after the\n"
	       "COIN_MINT / COIN_REDEEM record is fdatasync'd, so every counted coin is durable.\n");
	fflush(stdout);

	uint64_t total_unfinished = bank_load_run(B, o);
	if (o->rounds > 0 && B->route_pairs > 0)
		bank_route_run(B, o);

	printf("total: %" PRIu64 " coins minted, %" PRIu64 " redeemed and decrypted, %" PRIu64 " redeem requests; errors %"
	       PRIu64, B->coins_received, B->redeems_done, B->redeems_sent, B->errors.total);
	for (int i = 0; i < B->errors.n; i++)
		printf("%s%s=%" PRIu64, i ? ", " : " (", B->errors.code[i], B->errors.count[i]);
	printf("%s; bad boxes %" PRIu64 ", bad data %" PRIu64 ", unmatched replies %" PRIu64 ", unfinished %" PRIu64 "\n",
	       B->errors.n ? ")" : "", B->bad_boxes, B->bad_data, B->unmatched, total_unfinished);
	uint64_t failures = B->errors.total + B->bad_boxes + B->bad_data + B->unmatched + total_unfinished;
	printf("RESULT bank.failures %" PRIu64 "\n", failures);
	fflush(stdout);

	bank_clients_close(B);
	return B->bad_boxes || B->bad_data ? 1 : 0;
}

static const char usage[] =
	"usage:\n"
	"  bench_bank mkledger --dir D --cluster C [--collectors 100] [--analysts 4] [--monitors 2] [--credit 100000000]\n"
	"  bench_bank run --port P [--cluster C] [--collectors 100] [--analysts 4] [--stock 512] [--seal-seconds 12]\n"
	"                 [--window 8] [--duration 5] [--warmup 1] [--mint-probe 1.5] [--payload 64] [--qos 0|1]\n"
	"                 [--route-pairs 8] [--route-window 2000] [--rounds 3] [--route-duration 1.5] [--slice 0.5]\n"
	"                 [--pid BROKER_PID] [--goal 10000]\n"
	"  bench_bank rss --plugin SO --work DIR [--coins 10000000] [--port P] [--broker-cpu N] [--client-cpu N]\n";

int main(int argc, char **argv)
{
	bench_name = BENCH_NAME;
	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	if (ig_init() != IG_OK)
		bench_die("libsodium failed to initialise", NULL);
	const char *cmd = argv[1];
	const char *dir = NULL, *cluster = NULL;
	uint64_t ncol = 100, nana = 4, nmon = 2, credit = 100000000, coins = 10000000, port = 0;
	if (!strcmp(cmd, "mkledger")) {
		const cli_option opts[] = {
			CLI_REQUIRED("dir", 0, &dir, "D"),
			CLI_REQUIRED("cluster", 0, &cluster, "C"),
			CLI_NUMBER("collectors", 0, &ncol, 1, MAX_COLLECTORS),
			CLI_NUMBER("analysts", 0, &nana, 0, MAX_ANALYSTS),
			CLI_NUMBER("monitors", 0, &nmon, 0, 999),
			CLI_NUMBER("credit", 0, &credit, 1, UINT64_MAX / 2),
			CLI_HELP_OPTION(0),
			CLI_OPTIONS_END,
		};
		bench_parse(argc - 1, argv + 1, cmd, opts, usage);
		double t0 = bench_now_s();
		bench_id_builder b;
		bench_id_build_begin(&b, dir, cluster, 16384);
		bank_build_identities(&b, (int)ncol, (int)nana, (int)nmon, credit);
		bench_id_build_end(&b);
		fprintf(stderr, BENCH_NAME ": ledger %s: %d collectors with %" PRIu64 " credit each, %d analysts, %d monitors "
		        "in %.2f s\n", dir, (int)ncol, credit, (int)nana, (int)nmon, bench_now_s() - t0);
		return 0;
	}
	if (!strcmp(cmd, "rss")) {
		bench_broker_cli bc = {.port = 18899, .broker_cpu = -1, .client_cpu = -1};
		const cli_option opts[] = {
			BENCH_BROKER_CLI_OPTIONS(&bc),
			CLI_NUMBER("coins", 0, &coins, 64, 1000000000),
			CLI_HELP_OPTION(0),
			CLI_OPTIONS_END,
		};
		bench_parse(argc - 1, argv + 1, cmd, opts, usage);
		mkdir(bc.work, 0700);
		return bank_rss_run(bc.plugin, bc.work, coins, (int)bc.port, bench_broker_cli_cpu(bc.broker_cpu),
		                    bench_broker_cli_cpu(bc.client_cpu));
	}
	if (!strcmp(cmd, "run")) {
		bench B = {.cluster = "bench"};
		run_opts o = {.seal_budget = 12, .duration = 5, .warmup = 1, .mint_probe = 1.5, .route_duration = 1.5,
		              .slice = 0.5, .goal = 10000};
		uint64_t window = 8, qos = 1, payload = 64, route_pairs = 8, stock = 512, route_window = 2000, rounds = 3;
		uint64_t pid = 0;
		const cli_option opts[] = {
			BENCH_CONN_CLI_OPTIONS(&port, &B.cluster, &pid),
			CLI_NUMBER("collectors", 0, &ncol, 1, MAX_COLLECTORS),
			CLI_NUMBER("analysts", 0, &nana, 1, MAX_ANALYSTS),
			CLI_NUMBER("stock", 0, &stock, 64, 100000),
			CLI_REAL("seal-seconds", 0, &o.seal_budget, 0.001, 3600),
			CLI_NUMBER("window", 0, &window, 1, 256),
			CLI_REAL("duration", 0, &o.duration, 0.001, 60),
			CLI_REAL("warmup", 0, &o.warmup, 0, 60),
			CLI_REAL("mint-probe", 0, &o.mint_probe, 0, 60),
			CLI_NUMBER("payload", 0, &payload, 8, MAX_PAYLOAD),
			CLI_NUMBER("qos", 0, &qos, 0, 1),
			CLI_NUMBER("route-pairs", 0, &route_pairs, 0, MAX_COLLECTORS),
			CLI_NUMBER("route-window", 0, &route_window, 1, UINT32_MAX),
			CLI_NUMBER("rounds", 0, &rounds, 0, MAX_ROUNDS),
			CLI_REAL("route-duration", 0, &o.route_duration, 0.001, 60),
			CLI_REAL("slice", 0, &o.slice, 0.05, 60),
			CLI_REAL("goal", 0, &o.goal, 0, 1e9),
			CLI_HELP_OPTION(0),
			CLI_OPTIONS_END,
		};
		bench_parse(argc - 1, argv + 1, cmd, opts, usage);
		B.port = (int)port;
		B.ncol = (int)ncol;
		B.nana = (int)nana;
		B.window = (int)window;
		B.qos = (int)qos;
		B.payload_len = (size_t)payload;
		B.route_pairs = (int)route_pairs;
		o.stock = (size_t)stock;
		o.route_window = route_window;
		o.rounds = (int)rounds;
		o.pid = (int)pid;
		if (!port)
			bench_die("run needs --port", NULL);
		if (B.route_pairs > B.ncol || (B.route_pairs && o.route_window < (uint64_t)B.route_pairs))
			bench_die("--route-pairs must be at most --collectors, and --route-window at least --route-pairs", NULL);
		if (B.route_pairs && o.stock < ROUTE_POOL + 64)
			bench_die("--stock must be at least 128 when --route-pairs > 0 (64 coins go to the routing pool)", NULL);
		return cmd_run(&B, &o);
	}
	fputs(usage, stderr);
	return 2;
}
