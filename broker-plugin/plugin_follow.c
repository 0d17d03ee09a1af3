/*
 * plugin_follow.c: records that reach the broker durable, whoever appended
 * them.
 *
 * Why this exists: with a shared ledger (plugin_opt_ledger_dsn, docs/PROTOCOL.md
 * "Several brokers") other brokers append records too, and this broker must
 * act on theirs exactly as on its own: a revocation made on broker A cuts
 * the device off on broker B, an enrolment made on A lets the device in on
 * B, a coin redeemed on A is spent on B. So one function takes a durable
 * record into the broker (the state, the services' hooks, the event), for
 * this broker's completions (the admin API, the services) and for the
 * records the shared ledger follows (ig_ledger_shared_opts.on_follow) alike.
 * A followed revoke first cuts the connection, as the admin command does
 * on the broker that took it (plugin_admin.c, ig_plugin_revoke_cut).
 *
 * The ACL needs nothing more: every enrol or revoke applied to the registry
 * changes its generation, which is part of every remembered ACL decision
 * (plugin_acl.c), so a followed record invalidates them as a local one does.
 *
 * It also keeps the shadow state the shared ledger's writer thread re-checks
 * each batch against (step 3 of an append, docs/LEDGER.md 16): a second
 * ig_state, touched only by that thread once the ledger is open.
 */
#include "plugin.h"
#include "plugin_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_pg.h"

void ig_plugin_record_durable(ig_plugin *pl, const ig_record *rec)
{
	ig_error err = {0};
	if (ig_state_apply(pl->state, rec, &err) != IG_OK)
		ig_plugin_log(MOSQ_LOG_ERR, "ledger record %llu is durable but the cluster state refused it: %s",
		              (unsigned long long)rec->index, err.msg);
	if (rec->type == IG_REC_REVOKE) {
		/* The services' hooks ran when a local revocation took effect; they
		 * run again now that its record is durable and applied, which is
		 * all a broker applying another broker's revoke sees, so a hook
		 * must be harmless to repeat (plugin_service.h). */
		ig_revoke rv;
		ig_error ignored = {0};
		if (ig_record_revoke_decode(rec->body, rec->body_len, &rv, &ignored) == IG_OK)
			ig_plugin_services_on_revoke(pl, rv.id);
	}
	ig_plugin_publish_event(pl, rec);
	ig_plugin_services_on_record(pl, rec);
}

int ig_plugin_on_follow(void *ctx, const ig_record *rec, ig_error *err)
{
	(void)err;
	ig_plugin *pl = ctx;
	if (rec->type == IG_REC_REVOKE && !pl->closing) {
		ig_revoke rv;
		ig_error ignored = {0};
		if (ig_record_revoke_decode(rec->body, rec->body_len, &rv, &ignored) == IG_OK) {
			bool cut = ig_plugin_revoke_cut(pl, rv.id, NULL);
			ig_plugin_log(MOSQ_LOG_NOTICE, "revoked %s by %s on another broker (ledger index %llu)%s", rv.id, rv.by,
			              (unsigned long long)rec->index, cut ? "; its connection here was cut" : "");
		}
	}
	ig_plugin_record_durable(pl, rec);
	return IG_OK;
}

/* ---- the shadow state -------------------------------------------------- */

/* Like ig_state_apply (which changes nothing when it refuses). After a
 * reset the state is made again here, empty, and the thread re-applies
 * every record from genesis. */
static int shadow_apply(void *ctx, const ig_record *rec, ig_error *err)
{
	ig_plugin *pl = ctx;
	if (!pl->shadow && !(pl->shadow = ig_state_new()))
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory for the state the shared ledger re-checks "
		                    "appends against; nothing was appended, retry later");
	return ig_state_apply(pl->shadow, rec, err);
}

static void shadow_reset(void *ctx)
{
	ig_plugin *pl = ctx;
	ig_state_free(pl->shadow);
	pl->shadow = NULL;
}

void ig_plugin_shared_opts(ig_plugin *pl, ig_ledger_shared_opts *so)
{
	memset(so, 0, sizeof *so);
	so->dsn = pl->cfg.ledger_dsn;
	so->broker = pl->cfg.broker_name;
	so->on_follow = ig_plugin_on_follow;
	so->follow_ctx = pl;
	so->shadow_apply = shadow_apply;
	so->shadow_reset = shadow_reset;
	so->shadow_ctx = pl;
}

/* ---- the DSN in logs ------------------------------------------------------ */

/* libpq parses the DSN and the ledger masks it (ig_pg_dsn_mask), so the
 * plugin's messages show exactly what the ledger's own errors show. */
void ig_plugin_dsn_display(char *out, size_t cap, const char *dsn)
{
	if (!cap)
		return;
	char *shown = ig_pg_dsn_mask(dsn);
	snprintf(out, cap, "%s", shown ? shown : "(DSN not shown: out of memory)");
	free(shown);
}
