/*
 * plugin_entropy.c: the rows of the entropy and attestation services in the
 * service table (lib/entropy/svc_entropy.c and lib/entropy/svc_attest.c decide;
 * docs/PROTOCOL.md, "Sealed message" and "attest").
 *
 * Why this exists: the services in lib/ know nothing of Mosquitto; this
 * glue hands them the cluster-head key, the pool, the policy in force and
 * the clock, and logs what an operator must see (a flagged device).
 */
#include "plugin_service.h"

#include <cJSON.h>

#include "ig_svc_attest.h"
#include "ig_svc_entropy.h"

/* ---- entropy: iotguard/<cluster>/dev/<id>/entropy ---- */

static void *entropy_init(ig_plugin *pl)
{
	ig_svc_entropy_config cfg = {.min_interval_ms = pl->cfg.entropy_min_interval_ms};
	const uint8_t *ch_sk = ig_ledger_ch_sk(pl->ledger);
	ig_svc_entropy *e = ch_sk ? ig_svc_entropy_new(pl->state, &pl->pool, pl->ch_pk, ch_sk, &cfg) : NULL;
	if (!e)
		ig_plugin_log(MOSQ_LOG_ERR, "could not set up the key pool (out of memory or bad cluster-head key)");
	return e;
}

static void entropy_free(void *svc)
{
	ig_svc_entropy_free(svc);
}

static void entropy_message(void *svc, ig_plugin *pl, const char *id, const void *payload, uint32_t len,
                            ig_decision *out)
{
	(void)pl;
	(void)ig_svc_entropy_message(out, svc, id, payload, len, ig_now_ms());
}

static void entropy_stats(void *svc, ig_plugin *pl, cJSON *stats)
{
	(void)pl;
	ig_svc_entropy_stats(svc, stats);
}

const ig_service ig_service_entropy = {
	.name = "entropy", .dev_topic = "entropy",
	.needs_key = true, .sealed_what = "open device entropy",
	.init = entropy_init, .free = entropy_free, .dev_message = entropy_message, .stats = entropy_stats,
};

/* ---- attestation: {"type":"attest"} on the ch topic ---- */

static void *attest_init(ig_plugin *pl)
{
	ig_svc_attest_config cfg = {.max_per_hour = pl->cfg.attest_max_per_hour};
	ig_svc_attest *a = ig_svc_attest_new(pl->state, &cfg);
	if (!a)
		ig_plugin_log(MOSQ_LOG_ERR, "attestation: out of memory");
	return a;
}

static void attest_free(void *svc)
{
	ig_svc_attest_free(svc);
}

static void attest_request(void *svc, ig_plugin *pl, const char *id, const char *type, const cJSON *req,
                           ig_decision *out)
{
	(void)type;
	if (ig_svc_attest_request(out, svc, pl->policy, id, req, ig_now_ms()))
		ig_plugin_log(MOSQ_LOG_WARNING, "%s reports a measurement the policy does not allow; its entropy is refused",
		              id);
}

static void attest_stats(void *svc, ig_plugin *pl, cJSON *stats)
{
	(void)pl;
	ig_svc_attest_stats(svc, stats);
}

static const char *const attest_requests[] = {"attest", NULL};
const ig_service ig_service_attest = {
	.name = "attest", .requests = attest_requests,
	.needs_key = true, .sealed_what = "record attestations",   /* appends */
	.init = attest_init, .free = attest_free, .request = attest_request, .stats = attest_stats,
};
