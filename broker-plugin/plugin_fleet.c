/*
 * plugin_fleet.c: the fleet listing's row in the service table
 * (lib/cluster/svc_fleet.c decides; docs/PROTOCOL.md, "Fleet listing").
 *
 * Why this exists: the listing answers from the state as it stands, so the
 * glue only supplies what lib/ cannot know: this broker's sessions (the
 * "connected" of each entry, as the admin API computes it) and how many
 * ledger records the state reflects, which it follows through on_record.
 * It needs no key, so it answers while the cluster head is sealed.
 */
#include "plugin_service.h"

#include <cJSON.h>
#include <stdlib.h>

#include "ig_svc_fleet.h"

typedef struct fleet_glue {
	ig_svc_fleet *svc;
	uint64_t height;   /* ledger records applied to pl->state */
} fleet_glue;

static void fleet_free(void *svc)
{
	fleet_glue *g = svc;
	if (!g)
		return;
	ig_svc_fleet_free(g->svc);
	free(g);
}

static void *fleet_init(ig_plugin *pl)
{
	fleet_glue *g = calloc(1, sizeof *g);
	ig_svc_fleet_config cfg = {.requests_per_minute = IG_SVC_FLEET_RATE_DEFAULT};
	if (g)
		g->svc = ig_svc_fleet_new(&cfg);
	if (!g || !g->svc) {
		ig_plugin_log(MOSQ_LOG_ERR, "fleet listing: out of memory");
		fleet_free(g);
		return NULL;
	}
	/* The rows start once the ledger was replayed into the state. */
	g->height = ig_ledger_height(pl->ledger);
	return g;
}

/* The entries' "connected" (ig_admin_connected_fn): a live session on this
 * broker, as list_identities says it. */
static bool fleet_connected(void *ctx, const char *id)
{
	ig_plugin *pl = ctx;
	return ig_sessions_find(&pl->sessions, id) != NULL;
}

static void fleet_request(void *svc, ig_plugin *pl, const char *id, const char *type, const cJSON *req,
                          ig_decision *out)
{
	(void)type;
	fleet_glue *g = svc;
	ig_svc_fleet_view view = {.st = pl->state, .height = g->height, .connected = fleet_connected,
	                          .connected_ctx = pl};
	ig_svc_fleet_request(out, g->svc, id, req, &view, ig_now_ms());
}

static void fleet_on_record(void *svc, ig_plugin *pl, const ig_record *rec)
{
	(void)pl;
	fleet_glue *g = svc;
	if (rec->index + 1 > g->height)
		g->height = rec->index + 1;
}

static void fleet_stats(void *svc, ig_plugin *pl, cJSON *stats)
{
	(void)pl;
	fleet_glue *g = svc;
	ig_svc_fleet_stats(g->svc, stats);
}

static const char *const fleet_requests[] = {"fleet", NULL};
const ig_service ig_service_fleet = {
	.name = "fleet", .requests = fleet_requests,
	.init = fleet_init, .free = fleet_free, .request = fleet_request,
	.on_record = fleet_on_record, .stats = fleet_stats,
};
