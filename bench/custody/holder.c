/*
 * holder.c: bench_custody_e2e holder: what one custody_deal costs a holder,
 * in process, through the agent's own handler.
 *
 * Why this exists: the agent-process figure (main.c, fleet) is the CPU an
 * iotguard-agent spends around a whole rotation, read from outside with its
 * heartbeats and MQTT loop in it; bench_custody has the bare share check
 * (ig_vss_verify). Between the two is what the holder's code does per deal:
 * parse the message, derive the box key from its identity key and the pinned
 * cluster-head key, open the box, hash and verify against the k commitments,
 * encrypt KEY.shares and replace it durably (fsync), and write the ack. This
 * drives ig_custody_handle of a real, never-connected agent
 * (agents/duty_custody.c) with real deals made as the cluster head makes
 * them, one new epoch per round, then the custody_active that follows
 * (which rewrites KEY.shares once more).
 */
#include <cJSON.h>
#include <inttypes.h>
#include <mosquitto.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "custody_e2e.h"
#include "duties.h"
#include "ig_custody.h"
#include "ig_keybox.h"
#include "ig_keyfile.h"
#include "ig_vss.h"

/* The handler's own warnings and errors still show; its info line per deal
 * would be 2 x rounds lines. */
static void quiet_log(void *ctx, ig_log_level level, const char *msg)
{
	(void)ctx;
	if (level <= IG_LOG_WARN)
		fprintf(stderr, "%s: %s\n", bench_name, msg);
}

static double process_cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The custody_deal text the cluster head sends holder `index` (svc_custody.c
 * deal_message, docs/PROTOCOL.md "Custody"). */
static char *deal_text(const uint8_t ch_sk[IG_SK_BYTES], const uint8_t dev_pk[IG_PK_BYTES], uint64_t epoch,
                       unsigned k, unsigned n, unsigned index, const uint8_t share[32],
                       const uint8_t commitments[][32])
{
	ig_box_key bk;
	ig_custody_deal d = {.epoch = epoch, .index = (uint8_t)index, .k = (uint8_t)k, .n = (uint8_t)n};
	memcpy(d.share, share, 32);
	ig_custody_commitments_hash(d.commitments_hash, epoch, commitments, k);
	uint8_t box[IG_CUSTODY_DEAL_BOX_BYTES], nonce[24];
	if (ig_keybox_key_for_device(&bk, ch_sk, dev_pk) != IG_OK || ig_custody_deal_seal(box, nonce, &d, &bk) != IG_OK)
		bench_die("sealing a deal box failed", NULL);
	sodium_memzero(&bk, sizeof bk);
	sodium_memzero(&d, sizeof d);
	char hex[65], nhex[49], b64[sodium_base64_ENCODED_LEN(sizeof box, sodium_base64_VARIANT_ORIGINAL)];
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "type", "custody_deal");
	cJSON_AddNumberToObject(m, "epoch", (double)epoch);
	cJSON_AddNumberToObject(m, "k", k);
	cJSON_AddNumberToObject(m, "n", n);
	cJSON_AddNumberToObject(m, "index", index);
	cJSON *cm = cJSON_AddArrayToObject(m, "commitments");
	for (unsigned j = 0; j < k; j++) {
		ig_hex_encode(hex, commitments[j], 32);
		cJSON_AddItemToArray(cm, cJSON_CreateString(hex));
	}
	ig_hex_encode(nhex, nonce, sizeof nonce);
	cJSON_AddStringToObject(m, "box_nonce", nhex);
	sodium_bin2base64(b64, sizeof b64, box, sizeof box, sodium_base64_VARIANT_ORIGINAL);
	cJSON_AddStringToObject(m, "box", b64);
	char *text = cJSON_PrintUnformatted(m);
	cJSON_Delete(m);
	return text;
}

/* Parses text (as the agent's inbox does) and hands it to the handler;
 * returns the reply's length and leaves the reply in reply. */
static int handle(ig_custody_state *cs, ig_agent *a, const char *text, char *reply, size_t cap)
{
	cJSON *m = cJSON_Parse(text);
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(m, "type");
	if (!cJSON_IsString(t))
		bench_die("a message the bench made does not parse", NULL);
	int n = ig_custody_handle(cs, a, t->valuestring, m, reply, cap);
	cJSON_Delete(m);
	return n;
}

static void summary(const char *label, double *v, size_t n)
{
	double med = bench_stats_median(v, n);
	double p90 = bench_stats_percentile(v, n, 0.9);
	double max = bench_stats_percentile(v, n, 1.0);
	printf("  %-58s %8.2f ms  (p90 %.2f, max %.2f)\n", label, med * 1e3, p90 * 1e3, max * 1e3);
}

int custody_holder_run(const holder_opts *o)
{
	ig_log_set(quiet_log, NULL);
	if (mosquitto_lib_init() != MOSQ_ERR_SUCCESS)
		bench_die("mosquitto_lib_init failed", NULL);
	unsigned k = o->k, n = o->n;
	size_t rounds = o->rounds;
	bool made = false;
	const char *dir = bench_work_dir(o->work, &made);
	char key[4000];
	if (snprintf(key, sizeof key, "%s/dev-0000000.key", dir) >= (int)sizeof key)
		bench_dief("the work directory's path is too long: %s", dir);
	remove(key);
	char shares_path[4100];
	snprintf(shares_path, sizeof shares_path, "%s.shares", key);
	remove(shares_path);

	uint8_t dev_pk[IG_PK_BYTES], dev_sk[IG_SK_BYTES], ch_pk[IG_PK_BYTES], ch_sk[IG_SK_BYTES];
	ig_error err = {0};
	if (ig_keyfile_generate(dev_pk, dev_sk) != IG_OK || ig_keyfile_write(key, dev_sk, true, &err) != IG_OK ||
	    ig_keyfile_generate(ch_pk, ch_sk) != IG_OK)
		bench_dief("holder key: %s", err.msg);
	ig_agent_config cfg = {.host = "127.0.0.1", .port = 1, .cluster = "bench", .id = "dev-0000000",
	                       .key_path = key, .heartbeat_s = 30, .ttl_s = 300};
	ig_agent *a = NULL;
	if (ig_agent_new(&a, &cfg, &err) != IG_OK)
		bench_dief("ig_agent_new: %s", err.msg);
	static ig_pin_state pin;
	memset(&pin, 0, sizeof pin);
	snprintf(pin.path, sizeof pin.path, "%s.ch", key);
	pin.known = true;
	memcpy(pin.pk, ch_pk, IG_PK_BYTES);
	ig_custody_state *cs = calloc(1, sizeof *cs);
	if (!cs)
		bench_die("out of memory", NULL);
	if (ig_custody_duty_init(cs, a, &pin, key, NULL, &err) != IG_OK)
		bench_dief("ig_custody_duty_init: %s", err.msg);

	printf("== bench_custody_e2e holder: one holder's custody_deal through ig_custody_handle (agents/duty_custody.c), "
	       "k = %u, n = %u, %zu rounds, KEY.shares in %s ==\n", k, n, rounds, dir);
	fflush(stdout);
	uint8_t S[32];
	crypto_core_ristretto255_scalar_random(S);
	uint8_t (*shares)[32] = calloc(n, 32), (*comms)[32] = calloc(k, 32);
	double *deal_wall = calloc(rounds, sizeof(double)), *deal_cpu = calloc(rounds, sizeof(double));
	double *act_wall = calloc(rounds, sizeof(double)), *act_cpu = calloc(rounds, sizeof(double));
	double *verify = calloc(rounds, sizeof(double)), *boxkey = calloc(rounds, sizeof(double));
	if (!shares || !comms || !deal_wall || !deal_cpu || !act_wall || !act_cpu || !verify || !boxkey)
		bench_die("out of memory", NULL);
	char reply[2048], active[96];
	for (size_t r = 0; r < rounds; r++) {
		uint64_t epoch = r + 1;
		unsigned index = (unsigned)(r % n) + 1;
		if (ig_vss_deal(shares, comms, S, k, n) != IG_OK)
			bench_die("ig_vss_deal failed", NULL);
		char *text = deal_text(ch_sk, dev_pk, epoch, k, n, index, shares[index - 1], (const uint8_t(*)[32])comms);

		double t0 = bench_now_s(), c0 = process_cpu_s();
		int len = handle(cs, a, text, reply, sizeof reply);
		deal_cpu[r] = process_cpu_s() - c0;
		deal_wall[r] = bench_now_s() - t0;
		free(text);
		if (len <= 0 || !strstr(reply, "\"custody_ack\"") || strstr(reply, "\"error\""))
			bench_dief("the holder did not acknowledge round %zu: %.*s", r, len > 0 ? len : 0, reply);

		snprintf(active, sizeof active, "{\"type\":\"custody_active\",\"epoch\":%" PRIu64 "}", epoch);
		t0 = bench_now_s();
		c0 = process_cpu_s();
		handle(cs, a, active, reply, sizeof reply);
		act_cpu[r] = process_cpu_s() - c0;
		act_wall[r] = bench_now_s() - t0;

		/* The parts, on the same share, in the same process. */
		t0 = bench_now_s();
		if (ig_vss_verify(shares[index - 1], index, (const uint8_t(*)[32])comms, k) != IG_OK)
			bench_die("an honest share failed to verify", NULL);
		verify[r] = bench_now_s() - t0;
		ig_box_key bk;
		t0 = bench_now_s();
		if (ig_keybox_key_for_ch(&bk, dev_sk, ch_pk) != IG_OK)
			bench_die("ig_keybox_key_for_ch failed", NULL);
		boxkey[r] = bench_now_s() - t0;
		sodium_memzero(&bk, sizeof bk);
	}
	if (cs->dealt != rounds)
		bench_dief("the holder kept %" PRIu64 " deals of %zu", cs->dealt, rounds);
	long store = bench_proc_file_size(shares_path);
	summary("custody_deal, wall (parse, box, verify, KEY.shares + fsync, ack)", deal_wall, rounds);
	summary("custody_deal, CPU of the process", deal_cpu, rounds);
	summary("custody_active, wall (wipe older epoch, KEY.shares + fsync)", act_wall, rounds);
	summary("custody_active, CPU of the process", act_cpu, rounds);
	summary("  of which: ig_vss_verify alone (k commitments)", verify, rounds);
	summary("  of which: box key from identity key + pinned key", boxkey, rounds);
	printf("  KEY.shares holds %ld bytes after the last round\n", store);
	printf("RESULT custody.holder_deal_wall_ms %.3f\nRESULT custody.holder_deal_cpu_ms %.3f\n"
	       "RESULT custody.holder_active_wall_ms %.3f\nRESULT custody.holder_verify_ms %.3f\n",
	       bench_stats_median(deal_wall, rounds) * 1e3, bench_stats_median(deal_cpu, rounds) * 1e3,
	       bench_stats_median(act_wall, rounds) * 1e3, bench_stats_median(verify, rounds) * 1e3);
	fflush(stdout);

	ig_duty_custody.on_stop(a, cs);
	ig_agent_free(a);
	sodium_memzero(S, sizeof S);
	sodium_memzero(dev_sk, sizeof dev_sk);
	sodium_memzero(ch_sk, sizeof ch_sk);
	sodium_memzero(shares, (size_t)n * 32);
	free(shares);
	free(comms);
	free(cs);
	free(deal_wall);
	free(deal_cpu);
	free(act_wall);
	free(act_cpu);
	free(verify);
	free(boxkey);
	bench_work_dir_done(dir, made, "BENCH_CUSTODY_KEEP");
	mosquitto_lib_cleanup();
	ig_log_set(NULL, NULL);
	return 0;
}
