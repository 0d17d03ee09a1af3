/*
 * plugin_bank.c: the bank's row in the service table (plugin_service.h).
 *
 * Why this exists: the bank decides in lib/bank/svc_bank.c; this file only hands
 * it what it needs from the plugin (the cluster state, the cluster head's
 * key, the key pool and the clock) and registers its requests, its coin
 * prune tick and its stats. The carrier (ig_plugin_carry_out) applies and
 * publishes its records and sends its answers.
 */
#include "plugin.h"
#include "plugin_service.h"

#include <cJSON.h>

#include "ig_svc_bank.h"

static void *bank_init(ig_plugin *pl)
{
	ig_svc_bank_config cfg = {.coin_ttl_s = pl->cfg.coin_ttl_s, .cluster = pl->cluster};
	ig_svc_bank *b = ig_svc_bank_new(&cfg);
	if (!b)
		ig_plugin_log(MOSQ_LOG_ERR, "bank: could not start (out of memory, or cluster name '%s' is not valid)",
		              pl->cluster);
	return b;
}

static void bank_free(void *svc)
{
	ig_svc_bank_free(svc);
}

static void bank_request(void *svc, ig_plugin *pl, const char *id, const char *type, const cJSON *req,
                         ig_decision *out)
{
	ig_svc_bank_env env = {
		.state = pl->state, .ch_sk = ig_ledger_ch_sk(pl->ledger), .pool = &pl->pool, .now_s = ig_now_ms() / 1000,
	};
	ig_svc_bank_request(svc, &env, id, type, req, out);
}

static void bank_tick(void *svc, ig_plugin *pl, uint64_t now_ms)
{
	(void)ig_svc_bank_tick(svc, pl->state, now_ms);
}

static void bank_stats(void *svc, ig_plugin *pl, cJSON *stats)
{
	ig_svc_bank_stats(svc, pl->state, stats);
}

static const char *const bank_requests[] = {"mint", "redeem", "refund", "balance", NULL};

/* No on_revoke: the revoke record's state rule (applied by the carrier)
 * cancels the collector's coins and credit, and the bank refuses requests
 * of a revoked id from the moment the revocation is requested. */
const ig_service ig_service_bank = {
	.name = "bank", .requests = bank_requests, .open_to_joining = false,
	.needs_key = true, .sealed_what = "serve the bank (mint, redeem, refund, balance)",
	.init = bank_init, .free = bank_free, .request = bank_request, .tick = bank_tick, .stats = bank_stats,
};
