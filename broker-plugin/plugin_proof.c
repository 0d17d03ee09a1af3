/*
 * plugin_proof.c: the log-proof service's row in the service table
 * (lib/cluster/svc_proof.c decides, lib/ledger/prover.c makes the proofs;
 * docs/PROTOCOL.md, "Log proofs").
 *
 * Why this exists: proofs read tiles from disk and hash, so they are made on
 * the prover's thread; this glue hands each accepted request to it with the
 * ledger's current checkpoint, and the tick carries out the answers of the
 * jobs that finished, so the broker never waits for a proof.
 */
#include "plugin_service.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "ig_prover.h"
#include "ig_svc_proof.h"

typedef struct proof_glue {
	ig_prover *prover;
	ig_svc_proof *svc;
} proof_glue;

static void proof_free(void *svc)
{
	proof_glue *g = svc;
	if (!g)
		return;
	ig_svc_proof_free(g->svc);
	ig_prover_free(g->prover);   /* stops the worker; drops the jobs nobody will answer */
	free(g);
}

static void *proof_init(ig_plugin *pl)
{
	proof_glue *g = calloc(1, sizeof *g);
	if (!g) {
		ig_plugin_log(MOSQ_LOG_ERR, "log proofs: out of memory");
		return NULL;
	}
	ig_error err = {0};
	if (ig_prover_new(&g->prover, pl->cfg.ledger_dir, pl->cfg.proof_queue, &err) != IG_OK) {
		ig_plugin_log(MOSQ_LOG_ERR, "log proofs: %s", err.msg);
		free(g);
		return NULL;
	}
	ig_svc_proof_config cfg = {.requests_per_minute = pl->cfg.proof_requests_per_minute};
	g->svc = ig_svc_proof_new(pl->reg, g->prover, &cfg);
	if (!g->svc) {
		ig_plugin_log(MOSQ_LOG_ERR, "log proofs: out of memory");
		proof_free(g);
		return NULL;
	}
	return g;
}

static void proof_request(void *svc, ig_plugin *pl, const char *id, const char *type, const cJSON *req,
                          ig_decision *out)
{
	proof_glue *g = svc;
	static char text[IG_CHECKPOINT_MAX + 1];   /* the broker's thread only */
	ig_svc_proof_log log = {.format = ig_ledger_format(pl->ledger), .checkpoint = text};
	int len = ig_ledger_checkpoint(pl->ledger, text, sizeof text, &log.cp);
	if (len < 0) {
		ig_decision_refuse(out, type, NULL, "internal", "the ledger's checkpoint could not be read");
		return;
	}
	log.checkpoint_len = (size_t)len;
	ig_svc_proof_request(out, g->svc, id, type, req, &log, ig_now_ms());
}

/* At most this many answers per tick, so a burst of finished proofs does
 * not hold the loop; the rest go out on the next passes. */
#define PROOF_ANSWERS_PER_TICK 64

static void proof_tick(void *svc, ig_plugin *pl, uint64_t now_ms)
{
	(void)now_ms;
	proof_glue *g = svc;
	char requester[IG_ID_MAX + 1];
	for (int i = 0; i < PROOF_ANSWERS_PER_TICK; i++) {
		ig_decision d;
		memset(&d, 0, sizeof d);
		if (!ig_svc_proof_collect(&d, g->svc, requester))
			break;
		if (d.kind == IG_DECISION_REFUSE && d.error && !strcmp(d.error, "proof_unavailable"))
			ig_plugin_log(MOSQ_LOG_WARNING, "log proofs: %s asked for a %s proof: %s", requester, d.request,
			              d.message);
		ig_plugin_carry_out(pl, requester, &d);
	}
}

static void proof_stats(void *svc, ig_plugin *pl, cJSON *stats)
{
	(void)pl;
	proof_glue *g = svc;
	ig_svc_proof_stats(g->svc, stats);
}

static const char *const proof_requests[] = {"log_inclusion", "log_consistency", NULL};
const ig_service ig_service_proof = {
	.name = "proofs", .requests = proof_requests,
	.init = proof_init, .free = proof_free, .request = proof_request,
	.tick = proof_tick, .stats = proof_stats,
};
