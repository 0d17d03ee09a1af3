/*
 * plugin_join.c: a new device joins the cluster with a one-time code.
 *
 * Why this exists (seed 003): a device must be able to enrol itself with a
 * code an admin printed, without an operator per device. It cannot be done
 * inside CONNECT, because the enrolment must be durable before anything is
 * acknowledged and Mosquitto 2.0 cannot hold a CONNACK. So CONNECT with a
 * join token only opens a "joining" session (its own ch topic and inbox, no
 * more); {"type":"join"} on the ch topic writes ENROLL + JOIN_USED, and the
 * welcome goes out once both are durable.
 */
#include "plugin.h"

#include <cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ig_auth_result ig_plugin_join_auth(ig_plugin *pl, struct mosquitto *client, const char *username,
                                   const char *token, size_t token_len, ig_session *out)
{
	ig_join_claims c;
	if (ig_join_token_parse(token, token_len, &c) != IG_OK)
		return IG_AUTH_MALFORMED;
	const char *client_id = mosquitto_client_id(client);
	if (!client_id || strcmp(client_id, c.id) != 0 || (username && strcmp(username, c.id) != 0))
		return IG_AUTH_ID_MISMATCH;
	if (strcmp(c.cluster, pl->cluster) != 0)
		return IG_AUTH_WRONG_CLUSTER;

	/* Any id the ledger ever enrolled, revoked ones included: a code must
	 * not inherit what an earlier key of the id held. */
	if (!ig_join_id_claimable(pl->reg, c.id, strlen(c.id)))
		return IG_AUTH_ID_TAKEN;

	ig_join_code_entry *code = ig_joincodes_find(pl->codes, c.code_id);
	if (!code)
		return IG_AUTH_CODE_UNKNOWN;
	if (code->status == IG_CODE_USED || code->in_flight)
		return IG_AUTH_CODE_USED;

	uint64_t now = ig_now_ms() / 1000;
	if (now >= code->expires_at)
		return IG_AUTH_CODE_EXPIRED;

	uint8_t secret[IG_JOIN_SECRET_BYTES], hash[IG_HASH_BYTES];
	ig_join_secret(&pl->join_key, c.code_id, secret);
	ig_join_code_hash(hash, c.code_id, secret);
	int ok = sodium_memcmp(hash, code->hash, IG_HASH_BYTES) == 0 &&
	         ig_join_token_verify(token, token_len, secret, &c) == IG_OK;
	sodium_memzero(secret, sizeof secret);
	if (!ok)
		return IG_AUTH_BAD_SIGNATURE;

	if (c.expires_at <= c.issued_at || c.expires_at - c.issued_at > IG_JOIN_MAX_TTL)
		return IG_AUTH_TTL_TOO_LONG;
	if (c.issued_at > now && c.issued_at - now > pl->cfg.clock_skew_s)
		return IG_AUTH_NOT_YET_VALID;
	if (now >= c.expires_at)
		return IG_AUTH_EXPIRED;

	memset(out, 0, sizeof *out);
	out->joining = true;
	out->role = code->role;
	memcpy(out->join_pk, c.pk, IG_PK_BYTES);
	memcpy(out->join_code_id, c.code_id, IG_JOIN_CODE_ID_BYTES);
	snprintf(out->id, sizeof out->id, "%s", c.id);
	return IG_AUTH_OK;
}

/* Both records of one join, answered when the second is durable. */
typedef struct join_pending {
	ig_plugin *pl;
	char id[IG_ID_MAX + 1];
	uint8_t code_id[IG_JOIN_CODE_ID_BYTES];
	uint8_t role;
	int remaining;
	bool enrolled;           /* the ENROLL record is durable: the join happened */
	bool enroll_unknown;     /* its batch failed after it was written: may have happened */
	uint64_t enroll_index;
} join_pending;

static void join_finish(join_pending *jp)
{
	ig_plugin *pl = jp->pl;
	ig_session *s = ig_sessions_find_mut(&pl->sessions, jp->id);
	if (s)
		s->join_in_flight = false;
	ig_join_code_entry *code = ig_joincodes_find(pl->codes, jp->code_id);
	if (code)
		code->in_flight = false;

	/* Only the ENROLL decides: it consumes the code by itself, and
	 * JOIN_USED is the audit trail's explicit note of that. */
	if (!jp->enrolled) {
		pl->joins_failed++;
		ig_registry_release(pl->reg, jp->id);
		if (jp->enroll_unknown)
			ig_plugin_reply_error(pl, jp->id, "join", NULL, IG_PLUGIN_E_OUTCOME_UNKNOWN,
			                      "a disk write failed after the enrolment was written, so it may or may not be "
			                      "durable: once the broker is back, connect with your key; if that is refused, "
			                      "ask for a new join code");
		else
			ig_plugin_reply_error(pl, jp->id, "join", NULL, "storage_failed",
			                      "the cluster head could not record the join; try again later");
	} else {
		pl->joins_completed++;
		char pk[2 * IG_PK_BYTES + 1];
		ig_hex_encode(pk, pl->ch_pk, IG_PK_BYTES);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "type", "welcome");
		cJSON_AddStringToObject(o, "cluster", pl->cluster);
		cJSON_AddStringToObject(o, "id", jp->id);
		cJSON_AddStringToObject(o, "role", ig_role_name((ig_role)jp->role));
		cJSON_AddStringToObject(o, "ch_pubkey", pk);
		cJSON_AddNumberToObject(o, "index", (double)jp->enroll_index);
		ig_plugin_reply(pl, jp->id, o);
		ig_plugin_log(MOSQ_LOG_NOTICE, "%s joined as %s (ledger index %llu)", jp->id,
		              ig_role_name((ig_role)jp->role), (unsigned long long)jp->enroll_index);
	}
	free(jp);
}

static void on_join_record(void *ctx, int status, const ig_record *rec)
{
	join_pending *jp = ctx;
	ig_plugin *pl = jp->pl;
	if (status == IG_OK) {
		ig_error err = {0};
		if ((rec->type == IG_REC_ENROLL && ig_registry_apply(pl->reg, rec, &err) != IG_OK) ||
		    ig_joincodes_apply(pl->codes, rec, &err) != IG_OK)
			ig_plugin_log(MOSQ_LOG_ERR, "ledger record %llu is durable but the index refused it: %s",
			              (unsigned long long)rec->index, err.msg);
		if (rec->type == IG_REC_ENROLL) {
			jp->enrolled = true;
			jp->enroll_index = rec->index;
		}
		ig_plugin_publish_event(pl, rec);
	} else if (status == IG_ERR_UNKNOWN && rec && rec->type == IG_REC_ENROLL) {
		jp->enroll_unknown = true;
	}
	if (--jp->remaining == 0)
		join_finish(jp);
}

void ig_plugin_join_request(ig_plugin *pl, const char *id)
{
	ig_session *s = ig_sessions_find_mut(&pl->sessions, id);
	if (!s || !s->joining) {
		ig_plugin_reply_error(pl, id, "join", NULL, "not_joining", "connect with a join token to join; this identity is enrolled");
		return;
	}
	if (s->join_in_flight)
		return;   /* a repeated request while the first is being written */
	ig_join_code_entry *code = ig_joincodes_find(pl->codes, s->join_code_id);
	if (!code || code->status == IG_CODE_USED || code->in_flight) {
		ig_plugin_reply_error(pl, id, "join", NULL, "code_used", "this join code has already been used");
		return;
	}
	if (ig_now_ms() / 1000 >= code->expires_at) {
		ig_plugin_reply_error(pl, id, "join", NULL, "code_expired", "this join code has expired; ask an admin for a new one");
		return;
	}
	if (!ig_join_id_claimable(pl->reg, id, strlen(id)) ||
	    ig_registry_reserve(pl->reg, id, (ig_role)code->role, s->join_pk) != IG_OK) {
		ig_plugin_reply_error(pl, id, "join", NULL, "id_taken", "this id is enrolled, being enrolled or was enrolled before; "
		                      "join with a new id, or ask an admin to re-enrol it (iotguard enroll --reenroll)");
		return;
	}

	char code_hex[2 * IG_JOIN_CODE_ID_BYTES + 1];
	ig_hex_encode(code_hex, s->join_code_id, IG_JOIN_CODE_ID_BYTES);
	ig_enroll e = {.role = (ig_role)code->role, .has_join_code = true};
	snprintf(e.id, sizeof e.id, "%s", id);
	memcpy(e.pk, s->join_pk, IG_PK_BYTES);
	snprintf(e.by, sizeof e.by, "join:%s", code_hex);
	memcpy(e.join_code, s->join_code_id, IG_JOIN_CODE_ID_BYTES);
	ig_join_used u = {0};
	memcpy(u.code_id, s->join_code_id, IG_JOIN_CODE_ID_BYTES);
	snprintf(u.id, sizeof u.id, "%s", id);

	uint8_t enroll_body[512], used_body[256];
	int elen = ig_enroll_encode(enroll_body, sizeof enroll_body, &e);
	int ulen = ig_rec_join_used_encode(used_body, sizeof used_body, &u);
	join_pending *jp = calloc(1, sizeof *jp);
	if (elen < 0 || ulen < 0 || !jp) {
		free(jp);
		ig_registry_release(pl->reg, id);
		ig_plugin_reply_error(pl, id, "join", NULL, "internal", "could not build the join records");
		return;
	}
	*jp = (join_pending){.pl = pl, .role = code->role, .remaining = 2};
	snprintf(jp->id, sizeof jp->id, "%s", id);
	memcpy(jp->code_id, s->join_code_id, IG_JOIN_CODE_ID_BYTES);

	/* Both go in the same batch in order; an enroll that names the code
	 * consumes it on replay even if JOIN_USED was torn off by a crash. */
	if (ig_ledger_submit(pl->ledger, IG_REC_ENROLL, enroll_body, (size_t)elen, on_join_record, jp) != IG_OK) {
		free(jp);
		ig_registry_release(pl->reg, id);
		ig_plugin_reply_error(pl, id, "join", NULL, "storage_failed", "the ledger is not accepting records; try again later");
		return;
	}
	code->in_flight = true;
	s->join_in_flight = true;
	if (ig_ledger_submit(pl->ledger, IG_REC_JOIN_USED, used_body, (size_t)ulen, on_join_record, jp) != IG_OK) {
		/* The enroll alone still consumes the code once durable. */
		jp->remaining--;
	}
}
