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
#include <string.h>

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

/* Appends n bytes of s to out (cap, *len so far), truncating quietly. */
static void put(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
	while (n-- && *len + 1 < cap)
		out[(*len)++] = *s++;
	out[*len < cap ? *len : cap - 1] = '\0';
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* libpq's "postgresql://user:password@host/db?password=..." form. */
static void display_uri(char *out, size_t cap, const char *dsn)
{
	size_t len = 0;
	const char *p = strstr(dsn, "://") + 3;
	put(out, cap, &len, dsn, (size_t)(p - dsn));
	const char *end_auth = p + strcspn(p, "/?");
	const char *at = NULL;
	for (const char *q = p; q < end_auth; q++)
		if (*q == '@')
			at = q;   /* the last '@' before the path ends the user info */
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		if (colon) {
			put(out, cap, &len, p, (size_t)(colon - p));
			put(out, cap, &len, ":***", 4);
			p = at;
		}
	}
	/* The rest; in the query, password=... is masked up to the next '&'. */
	const char *query = strchr(p, '?');
	if (!query) {
		put(out, cap, &len, p, strlen(p));
		return;
	}
	put(out, cap, &len, p, (size_t)(query - p) + 1);
	for (const char *q = query + 1; *q;) {
		size_t n = strcspn(q, "&");
		if (n >= 9 && !strncmp(q, "password=", 9)) {
			put(out, cap, &len, "password=***", 12);
		} else {
			put(out, cap, &len, q, n);
		}
		q += n;
		if (*q == '&')
			put(out, cap, &len, q++, 1);
	}
}

void ig_plugin_dsn_display(char *out, size_t cap, const char *dsn)
{
	if (!cap)
		return;
	out[0] = '\0';
	if (!dsn)
		return;
	if (!strncmp(dsn, "postgresql://", 13) || !strncmp(dsn, "postgres://", 11)) {
		display_uri(out, cap, dsn);
		return;
	}
	/* keyword = value pairs; a value is a word or '...' with \' and \\. */
	size_t len = 0;
	const char *p = dsn;
	while (*p) {
		const char *start = p;
		while (is_space(*p))
			p++;
		const char *key = p;
		while (*p && *p != '=' && !is_space(*p))
			p++;
		size_t key_len = (size_t)(p - key);
		while (is_space(*p))
			p++;
		if (*p != '=') {   /* not a pair: copied as it is (libpq refuses it anyway) */
			put(out, cap, &len, start, (size_t)(p - start));
			if (*p && p == start)
				put(out, cap, &len, p++, 1);
			continue;
		}
		p++;
		while (is_space(*p))
			p++;
		const char *value = p;
		if (*p == '\'') {
			for (p++; *p && *p != '\''; p++)
				if (*p == '\\' && p[1])
					p++;
			if (*p == '\'')
				p++;
		} else {
			while (*p && !is_space(*p))
				p++;
		}
		put(out, cap, &len, start, (size_t)(value - start));
		if (key_len == 8 && !strncmp(key, "password", 8))
			put(out, cap, &len, "***", 3);
		else
			put(out, cap, &len, value, (size_t)(p - value));
	}
}
