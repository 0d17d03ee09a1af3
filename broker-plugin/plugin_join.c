/*
 * plugin_join.c: the join service's row in the service table, and the glue
 * of the join-token check at CONNECT.
 *
 * Why this exists: a device enrols itself with a one-time join code
 * (docs/PROTOCOL.md, "Joining the cluster"). Everything that decides lives
 * in lib/identity/svc_join.c; this file only hands it the broker's view: the client
 * id Mosquitto gives, the session the join token opened, the cluster state
 * and the clock, and turns its tickets into sessions and its joins into log
 * lines.
 */
#include "plugin.h"
#include "plugin_service.h"

#include <cJSON.h>
#include <stdio.h>
#include <string.h>

#include "ig_svc_join.h"

static void log_joined(void *ctx, const char *id, ig_role role, uint64_t enroll_index)
{
	(void)ctx;
	ig_plugin_log(MOSQ_LOG_NOTICE, "%s joined as %s (ledger index %llu)", id, ig_role_name(role),
	              (unsigned long long)enroll_index);
}

static void *join_init(ig_plugin *pl)
{
	ig_svc_join_config cfg = {
		.cluster = pl->cluster, .ch_pk = pl->ch_pk, .clock_skew_s = pl->cfg.clock_skew_s, .joined = log_joined,
	};
	ig_svc_join *svc = ig_svc_join_new(&cfg);
	if (!svc)
		ig_plugin_log(MOSQ_LOG_ERR, "join service: out of memory for its state");
	return svc;
}

static void join_free(void *svc)
{
	ig_svc_join_free(svc);
}

static void join_request(void *svc, ig_plugin *pl, const char *id, const char *type, const cJSON *req,
                         ig_decision *out)
{
	(void)type;
	(void)req;   /* {"type":"join"} carries nothing else */
	const ig_session *s = ig_sessions_find(&pl->sessions, id);
	ig_svc_join_ticket t;
	if (s && s->joining) {
		memset(&t, 0, sizeof t);
		snprintf(t.id, sizeof t.id, "%s", s->id);
		t.role = (ig_role)s->role;
		memcpy(t.pk, s->join_pk, IG_PK_BYTES);
		memcpy(t.code_id, s->join_code_id, IG_JOIN_CODE_ID_BYTES);
	}
	ig_svc_join_request(out, svc, pl->state, id, s && s->joining ? &t : NULL, ig_now_ms() / 1000);
}

static void join_stats(void *svc, ig_plugin *pl, cJSON *stats)
{
	ig_svc_join_counts n = ig_svc_join_get_counts(svc);
	cJSON *j = cJSON_AddObjectToObject(stats, "joins");
	cJSON_AddNumberToObject(j, "completed", (double)n.completed);
	cJSON_AddNumberToObject(j, "failed", (double)n.failed);
	cJSON_AddNumberToObject(j, "codes_unused", (double)ig_joincodes_count(ig_state_joincodes(pl->state),
	                                                                      IG_CODE_UNUSED));
}

static const char *const join_requests[] = {"join", NULL};
const ig_service ig_service_join = {
	.name = "join", .requests = join_requests, .open_to_joining = true,
	.needs_key = true, .sealed_what = "enrol devices that join with a code",
	.init = join_init, .free = join_free, .request = join_request, .stats = join_stats,
};

ig_auth_result ig_plugin_join_auth(ig_plugin *pl, struct mosquitto *client, const char *username,
                                   const char *token, size_t token_len, ig_session *out)
{
	if (pl->sealed) {
		/* A join code is checked with the join key, derived from the
		 * cluster-head key: there is none until the unseal. One line per
		 * second at most, however many devices retry. */
		static uint64_t logged_s;
		uint64_t now_s = ig_now_ms() / 1000;
		pl->sealed_refused_joins++;
		if (now_s != logged_s) {
			logged_s = now_s;
			ig_plugin_log(MOSQ_LOG_NOTICE, "join token for %s refused: the cluster head is sealed, so it has no "
			              "join key to check join codes with; the device must retry after the custody holders "
			              "unseal the key (%llu join(s) refused so far)",
			              username && ig_id_valid(username, strlen(username)) ? username : "-",
			              (unsigned long long)pl->sealed_refused_joins);
		}
		return IG_AUTH_SEALED;
	}
	void *svc = NULL;
	if (!ig_plugin_service_for("join", &svc) || !svc) {
		/* Unreachable: CONNECTs arrive only after every service started. */
		ig_plugin_log(MOSQ_LOG_ERR, "join token refused: the join service is not running");
		return IG_AUTH_MALFORMED;
	}
	ig_svc_join_ticket t;
	const char *why = "";
	ig_auth_result res = ig_svc_join_auth(&t, &why, svc, pl->state, &pl->join_key, username,
	                                      mosquitto_client_id(client), token, token_len, ig_now_ms() / 1000);
	if (res != IG_AUTH_OK) {
		/* The caller logs the refusal's name; this is the longer reason. */
		ig_plugin_log(MOSQ_LOG_DEBUG, "join token refused (%s): %s", ig_auth_result_name(res), why);
		return res;
	}
	memset(out, 0, sizeof *out);
	out->joining = true;
	out->role = (uint8_t)t.role;
	memcpy(out->join_pk, t.pk, IG_PK_BYTES);
	memcpy(out->join_code_id, t.code_id, IG_JOIN_CODE_ID_BYTES);
	snprintf(out->id, sizeof out->id, "%s", t.id);
	return res;
}
