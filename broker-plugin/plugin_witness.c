/*
 * plugin_witness.c: the witness service's row in the service table
 * (lib/cluster/svc_witness.c decides, lib/ledger/prover.c makes the
 * consistency proofs; docs/PROTOCOL.md, "Witnesses").
 *
 * Why this exists: the cluster head must collect witnesses' cosignatures of
 * each new checkpoint without ever waiting on them or on the disk. The tick
 * notices a new head (pl->head_seq), asks lib which witness to send what,
 * hands consistency proofs to this service's own prover thread, sends the
 * finished requests to the witnesses' inboxes, and the witnesses' answers
 * arrive as ch requests of type witness_cosignature. When a quorum of them
 * cosigned the newest checkpoint, the head is published again, cosigned,
 * and the ledger's writer thread puts the cosigned text in DIR/tlog.
 */
#include "plugin_service.h"

#include <cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_prover.h"
#include "ig_svc_witness.h"

#define WITNESS_PROOF_QUEUE 8
#define WITNESS_STEPS_PER_TICK 8

typedef struct witness_glue {
	ig_svc_witness *svc;
	ig_prover *prover;              /* NULL for a format-1 ledger (no tiles: no witnesses) */
	uint64_t policy_generation;
	uint64_t head_seq;
	char text[IG_CHECKPOINT_MAX];   /* the target, as read from the ledger */
	size_t len;
	ig_checkpoint cp;
	bool warned_format;
} witness_glue;

static void witness_free(void *svc)
{
	witness_glue *g = svc;
	if (!g)
		return;
	ig_prover_free(g->prover);
	ig_svc_witness_free(g->svc);
	free(g);
}

static void *witness_init(ig_plugin *pl)
{
	witness_glue *g = calloc(1, sizeof *g);
	if (!g || !(g->svc = ig_svc_witness_new())) {
		ig_plugin_log(MOSQ_LOG_ERR, "witnesses: out of memory");
		free(g);
		return NULL;
	}
	if (ig_ledger_format(pl->ledger) >= 2) {
		ig_error err = {0};
		if (ig_prover_new(&g->prover, pl->cfg.ledger_dir, WITNESS_PROOF_QUEUE, &err) != IG_OK) {
			ig_plugin_log(MOSQ_LOG_ERR, "witnesses: %s", err.msg);
			witness_free(g);
			return NULL;
		}
	}
	return g;
}

/* A policy (re)load: the witnesses it names. */
static void configure(witness_glue *g, ig_plugin *pl)
{
	g->policy_generation = ig_policy_generation(pl->policy);
	const ig_cosig_vkey *keys = NULL;
	size_t quorum = 0;
	size_t n = ig_policy_witnesses(pl->policy, &keys, &quorum);
	if (n && !g->prover) {
		if (!g->warned_format)
			ig_plugin_log(MOSQ_LOG_WARNING, "witnesses: the policy names %zu witnesses but this ledger is format 1 "
			              "(no tiles, no SHA-256 tree to cosign); run 'iotguard upgrade' on it", n);
		g->warned_format = true;
		n = 0;
	}
	if (ig_svc_witness_configure(g->svc, keys, n, quorum) != IG_OK)
		ig_plugin_log(MOSQ_LOG_ERR, "witnesses: the policy's witness set was refused; no witness is asked");
	else if (n)
		ig_plugin_log(MOSQ_LOG_NOTICE, "witnesses: %zu configured, quorum %zu", n, quorum);
}

static void send_request(witness_glue *g, ig_plugin *pl, const ig_svc_witness_job *job,
                         const uint8_t (*proof)[IG_HASH_BYTES], size_t proof_len, uint64_t now_ms)
{
	char *json = NULL;
	int rc = ig_svc_witness_request(g->svc, job, proof, proof_len, now_ms, &json);
	if (rc == IG_OK) {
		char topic[IG_TOPIC_MAX];
		snprintf(topic, sizeof topic, "iotguard/%s/dev/%s/inbox", pl->cluster, job->name);
		ig_plugin_publish(topic, json, false);
	} else if (rc != IG_ERR_NOTFOUND) {
		ig_plugin_log(MOSQ_LOG_ERR, "witnesses: cannot build the request for %s (code %d)", job->name, rc);
	}
	free(json);
}

static void witness_tick(void *svc, ig_plugin *pl, uint64_t now_ms)
{
	witness_glue *g = svc;
	if (g->policy_generation != ig_policy_generation(pl->policy))
		configure(g, pl);
	if (ig_svc_witness_count(g->svc) == 0)
		return;
	if (g->head_seq != pl->head_seq) {
		g->head_seq = pl->head_seq;
		int len = ig_ledger_checkpoint(pl->ledger, g->text, sizeof g->text, &g->cp);
		if (len > 0) {
			g->len = (size_t)len;
			if (ig_svc_witness_checkpoint(g->svc, g->text, g->len, &g->cp, now_ms) != IG_OK)
				ig_plugin_log(MOSQ_LOG_ERR, "witnesses: the ledger's checkpoint could not be read");
		}
	}
	/* Finished proofs become requests. */
	for (int i = 0; i < WITNESS_STEPS_PER_TICK && ig_prover_ready(g->prover); i++) {
		ig_prover_job *pj = ig_prover_take(g->prover);
		if (!pj)
			break;
		ig_svc_witness_job job = {.witness = strtoul(pj->nonce, NULL, 10), .name = pj->requester,
		                          .from = pj->from, .to = pj->to, .needs_proof = true};
		if (pj->status == IG_OK) {
			send_request(g, pl, &job, (const uint8_t (*)[IG_HASH_BYTES])pj->path, pj->path_len, now_ms);
		} else {
			ig_plugin_log(MOSQ_LOG_WARNING, "witnesses: no consistency proof %" PRIu64 " -> %" PRIu64 " for %s: %s",
			              pj->from, pj->to, pj->requester, pj->message);
			ig_svc_witness_later(g->svc, &job, now_ms);
		}
		ig_prover_job_free(pj);
	}
	/* Witnesses due a request. */
	ig_svc_witness_job job;
	for (int i = 0; i < WITNESS_STEPS_PER_TICK && ig_svc_witness_next(g->svc, now_ms, &job); i++) {
		if (!ig_sessions_find(&pl->sessions, job.name)) {
			/* Offline: a request to its inbox would be lost (clean sessions). */
			ig_svc_witness_later(g->svc, &job, now_ms);
			continue;
		}
		if (!job.needs_proof) {
			send_request(g, pl, &job, NULL, 0, now_ms);
			continue;
		}
		ig_prover_job *pj = ig_prover_job_new(IG_PROVER_CONSISTENCY, g->text, g->len, &g->cp);
		if (!pj) {
			ig_svc_witness_later(g->svc, &job, now_ms);
			continue;
		}
		pj->from = job.from;
		pj->to = job.to;
		snprintf(pj->requester, sizeof pj->requester, "%s", job.name);
		snprintf(pj->nonce, sizeof pj->nonce, "%zu", job.witness);
		if (ig_prover_submit(g->prover, pj) != IG_OK) {
			ig_prover_job_free(pj);
			ig_svc_witness_later(g->svc, &job, now_ms);
		}
	}
}

static void witness_request(void *svc, ig_plugin *pl, const char *id, const char *type, const cJSON *req,
                            ig_decision *out)
{
	witness_glue *g = svc;
	uint64_t now = ig_now_ms();
	ig_svc_witness_verdict v;
	int rc = ig_svc_witness_answer(g->svc, id, req, now, &v);
	if (rc == IG_ERR_NOTFOUND) {
		ig_decision_refuse(out, type, NULL, "not_allowed", "%s", v.message);
		return;
	}
	if (rc != IG_OK) {
		ig_plugin_log(MOSQ_LOG_WARNING, "witnesses: %s", v.message);
		ig_decision_refuse(out, type, NULL, "malformed", "%s", v.message);
		return;
	}
	if (v.loud)
		ig_plugin_log(MOSQ_LOG_ERR, "witnesses: %s", v.message);
	else if (v.status != 200)
		ig_plugin_log(MOSQ_LOG_NOTICE, "witnesses: %s", v.message);
	if (!v.quorum)
		return;
	static char cosigned[IG_CHECKPOINT_MAX];
	const char *names[IG_SVC_WITNESS_MAX];
	size_t n = 0;
	int len = ig_svc_witness_cosigned(g->svc, cosigned, sizeof cosigned, names, &n);
	if (len < 0) {
		ig_plugin_log(MOSQ_LOG_ERR, "witnesses: cannot assemble the cosigned checkpoint (code %d)", len);
		return;
	}
	ig_plugin_publish_head(pl, cosigned, &g->cp, names, n);
	/* DIR/tlog/checkpoint too, so proofs (iotguard proof) carry the
	 * cosignatures; written by the ledger's writer thread, never here. */
	rc = ig_ledger_publish_cosigned(pl->ledger, cosigned, (size_t)len, g->cp.size);
	if (rc != IG_OK)
		ig_plugin_log(MOSQ_LOG_WARNING, "witnesses: the cosigned checkpoint of size %" PRIu64 " is not written to "
		              "the tiles (code %d); the head on MQTT carries it", g->cp.size, rc);
	ig_plugin_log(MOSQ_LOG_NOTICE, "witnesses: checkpoint of size %" PRIu64 " cosigned by %zu witnesses; head "
	              "published", g->cp.size, n);
}

static void witness_stats(void *svc, ig_plugin *pl, cJSON *stats)
{
	(void)pl;
	witness_glue *g = svc;
	ig_svc_witness_stats(g->svc, stats);
}

static const char *const witness_requests[] = {"witness_cosignature", NULL};
const ig_service ig_service_witness = {
	.name = "witnesses", .requests = witness_requests,
	.init = witness_init, .free = witness_free, .request = witness_request,
	.tick = witness_tick, .stats = witness_stats,
};
