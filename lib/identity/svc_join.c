/*
 * svc_join.c: the join service (ig_svc_join.h; docs/PROTOCOL.md, "Joining
 * the cluster").
 *
 * Why this exists: the join decisions (is this token good for a joining
 * session; may this session join now; what to answer once the records are
 * settled) used to live in the broker plugin, reachable only through a real
 * broker. Here they take the cluster state and return decisions, so every
 * refusal is unit-tested without one.
 *
 * The two records are chained: ENROLL first, JOIN_USED from its done. Only
 * the ENROLL decides whether the join happened (it consumes the code by
 * itself on replay), so JOIN_USED is appended only once the ENROLL is
 * durable, and a JOIN_USED can never reach the ledger without its ENROLL.
 */
#include "ig_svc_join.h"

#include <cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_record.h"
#include "ig_registry.h"

/* One join being written: the done context of both appends, and an entry of
 * the service's list of joins in flight. */
typedef struct join_pending {
	struct join_pending *prev, *next;
	ig_svc_join *svc;                /* NULL once the service is freed */
	ig_state *st;
	char id[IG_ID_MAX + 1];
	uint8_t code_id[IG_JOIN_CODE_ID_BYTES];
	ig_role role;
	bool enrolled;                   /* the ENROLL record is durable: the join happened */
	int enroll_status;               /* the ENROLL's completion status when it is not */
	uint64_t enroll_index;
	uint8_t used_body[256];          /* the JOIN_USED record, appended once the ENROLL is durable */
	size_t used_len;
} join_pending;

struct ig_svc_join {
	char cluster[IG_CLUSTER_MAX + 1];
	uint8_t ch_pk[IG_PK_BYTES];
	uint32_t clock_skew_s;
	ig_svc_join_joined_fn joined;
	void *joined_ctx;
	join_pending *pending;           /* joins in flight: a handful at most, so a list */
	ig_svc_join_counts counts;
};

ig_svc_join *ig_svc_join_new(const ig_svc_join_config *cfg)
{
	if (!cfg || !cfg->cluster || !cfg->ch_pk || !cfg->cluster[0] || strlen(cfg->cluster) > IG_CLUSTER_MAX)
		return NULL;
	ig_svc_join *svc = calloc(1, sizeof *svc);
	if (!svc)
		return NULL;
	memcpy(svc->cluster, cfg->cluster, strlen(cfg->cluster) + 1);
	memcpy(svc->ch_pk, cfg->ch_pk, IG_PK_BYTES);
	svc->clock_skew_s = cfg->clock_skew_s;
	svc->joined = cfg->joined;
	svc->joined_ctx = cfg->joined_ctx;
	return svc;
}

void ig_svc_join_free(ig_svc_join *svc)
{
	if (!svc)
		return;
	for (join_pending *jp = svc->pending; jp; jp = jp->next)
		jp->svc = NULL;
	free(svc);
}

static join_pending *pending_find(const ig_svc_join *svc, const char *id)
{
	for (join_pending *jp = svc->pending; jp; jp = jp->next)
		if (strcmp(jp->id, id) == 0)
			return jp;
	return NULL;
}

bool ig_svc_join_in_flight(const ig_svc_join *svc, const char *id)
{
	return pending_find(svc, id) != NULL;
}

ig_svc_join_counts ig_svc_join_get_counts(const ig_svc_join *svc)
{
	return svc->counts;
}

/* ---- CONNECT --------------------------------------------------------------- */

static ig_auth_result verdict(const char **why, ig_auth_result r, const char *sentence)
{
	if (why)
		*why = sentence;
	return r;
}

ig_auth_result ig_svc_join_auth(ig_svc_join_ticket *out, const char **why, const ig_svc_join *svc, ig_state *st,
                                const ig_join_key *jk, const char *username, const char *client_id,
                                const char *token, size_t token_len, uint64_t now_s)
{
	ig_join_claims c;
	if (!token || ig_join_token_parse(token, token_len, &c) != IG_OK)
		return verdict(why, IG_AUTH_MALFORMED, "the join token does not parse (\"igj1.\" and canonical "
		               "base64url of the layout in docs/PROTOCOL.md, \"Join token\"); mint it again");
	if (!client_id || strcmp(client_id, c.id) != 0 || (username && strcmp(username, c.id) != 0))
		return verdict(why, IG_AUTH_ID_MISMATCH, "the client id and the username must both be the id the "
		               "join token names");
	if (strcmp(c.cluster, svc->cluster) != 0)
		return verdict(why, IG_AUTH_WRONG_CLUSTER, "the join token names another cluster; mint it for this "
		               "cluster head's cluster");

	/* Any id the ledger ever enrolled, revoked ones included: a code must
	 * not inherit what an earlier key of the id held. */
	if (!ig_join_id_claimable(ig_state_registry(st), c.id, strlen(c.id)))
		return verdict(why, IG_AUTH_ID_TAKEN, "the id is enrolled, being enrolled or was enrolled before; "
		               "join with a new id, or ask an admin to re-enrol it");

	const ig_join_code_entry *code = ig_joincodes_find(ig_state_joincodes(st), c.code_id);
	if (!code)
		return verdict(why, IG_AUTH_CODE_UNKNOWN, "the ledger has no join code with the token's code id; "
		               "check the code, or ask an admin for a new one");
	if (code->status == IG_CODE_USED || code->in_flight)
		return verdict(why, IG_AUTH_CODE_USED, "the join code was used, or a join with it is being "
		               "written; ask an admin for a new one");
	if (now_s >= code->expires_at)
		return verdict(why, IG_AUTH_CODE_EXPIRED, "the join code has expired; ask an admin for a new one");

	uint8_t secret[IG_JOIN_SECRET_BYTES], hash[IG_HASH_BYTES];
	ig_join_secret(jk, c.code_id, secret);
	ig_join_code_hash(hash, c.code_id, secret);
	int ok = sodium_memcmp(hash, code->hash, IG_HASH_BYTES) == 0 &&
	         ig_join_token_verify(token, token_len, secret, &c) == IG_OK;
	sodium_memzero(secret, sizeof secret);
	if (!ok)
		return verdict(why, IG_AUTH_BAD_SIGNATURE, "the join token's MAC or signature does not verify (a "
		               "wrong code secret, or a changed token); mint it again from the printed code");

	if (c.expires_at <= c.issued_at || c.expires_at - c.issued_at > IG_JOIN_MAX_TTL)
		return verdict(why, IG_AUTH_TTL_TOO_LONG, "a join token lives at most 600 s and must expire after "
		               "it is issued; mint a shorter one");
	if (c.issued_at > now_s && c.issued_at - now_s > svc->clock_skew_s)
		return verdict(why, IG_AUTH_NOT_YET_VALID, "the join token is issued in the future beyond the "
		               "allowed clock skew; fix the device's clock");
	if (now_s >= c.expires_at)
		return verdict(why, IG_AUTH_EXPIRED, "the join token has expired; mint a new one");

	memset(out, 0, sizeof *out);
	out->role = (ig_role)code->role;
	memcpy(out->pk, c.pk, IG_PK_BYTES);
	memcpy(out->code_id, c.code_id, IG_JOIN_CODE_ID_BYTES);
	memcpy(out->id, c.id, strlen(c.id) + 1);
	return verdict(why, IG_AUTH_OK, "a joining session: it may only ask to join");
}

/* ---- {"type":"join"} ------------------------------------------------------- */

/* The join is settled: answer, count, and forget it. */
static void join_finish(join_pending *jp, ig_decision *out)
{
	ig_svc_join *svc = jp->svc;
	if (!svc) {
		free(jp);   /* the service is gone: nobody to answer, nothing to release */
		return;
	}
	if (jp->prev)
		jp->prev->next = jp->next;
	else
		svc->pending = jp->next;
	if (jp->next)
		jp->next->prev = jp->prev;
	ig_join_code_entry *code = ig_joincodes_find(ig_state_joincodes(jp->st), jp->code_id);
	if (code)
		code->in_flight = false;

	if (!jp->enrolled) {
		svc->counts.failed++;
		ig_registry *reg = ig_state_registry(jp->st);
		ig_registry_release(reg, jp->id);
		if (jp->enroll_status == IG_ERR_CONFLICT) {
			/* Another broker's join came first (the state already holds
			 * its record): final, in the words a join asked now gets. */
			bool code_gone = code && code->status == IG_CODE_USED;
			if (!code_gone && !ig_join_id_claimable(reg, jp->id, strlen(jp->id)))
				ig_decision_refuse(out, "join", NULL, "id_taken",
				                   "this id was enrolled through another broker first; join with a new id");
			else
				ig_decision_refuse(out, "join", NULL, "code_used",
				                   "this join code was used through another broker first; ask an admin for a "
				                   "new one");
		} else if (jp->enroll_status == IG_ERR_UNKNOWN)
			ig_decision_refuse(out, "join", NULL, IG_DECISION_E_OUTCOME_UNKNOWN,
			                   "a disk write failed after the enrolment was written, so it may or may not be "
			                   "durable: once the broker is back, connect with your key; if that is refused, "
			                   "ask for a new join code");
		else
			ig_decision_refuse(out, "join", NULL, "storage_failed", "%s",
			                   ig_decision_ledger_refusal(jp->enroll_status));
		free(jp);
		return;
	}

	svc->counts.completed++;
	char pk[2 * IG_PK_BYTES + 1];
	ig_hex_encode(pk, svc->ch_pk, IG_PK_BYTES);
	cJSON *o = cJSON_CreateObject();
	if (o && (!cJSON_AddStringToObject(o, "type", "welcome") || !cJSON_AddStringToObject(o, "cluster", svc->cluster) ||
	          !cJSON_AddStringToObject(o, "id", jp->id) ||
	          !cJSON_AddStringToObject(o, "role", ig_role_name(jp->role)) ||
	          !cJSON_AddStringToObject(o, "ch_pubkey", pk) ||
	          !cJSON_AddNumberToObject(o, "index", (double)jp->enroll_index))) {
		cJSON_Delete(o);
		o = NULL;
	}
	out->request = "join";
	ig_decision_reply(out, jp->id, o);
	if (svc->joined)
		svc->joined(svc->joined_ctx, jp->id, jp->role, jp->enroll_index);
	free(jp);
}

/* The JOIN_USED record is settled. Whatever its fate the join happened:
 * the durable ENROLL consumed the code. */
static void on_used(void *ctx, int status, const ig_record *rec, ig_decision *out)
{
	(void)status;
	(void)rec;
	join_finish(ctx, out);
}

static void on_enroll(void *ctx, int status, const ig_record *rec, ig_decision *out)
{
	join_pending *jp = ctx;
	if (!jp->svc) {
		free(jp);
		return;
	}
	if (status != IG_OK) {
		jp->enroll_status = status;
		join_finish(jp, out);
		return;
	}
	jp->enrolled = true;
	jp->enroll_index = rec ? rec->index : 0;
	/* Out of memory for the second record: the ENROLL alone is the join. */
	if (!ig_decision_append(out, IG_REC_JOIN_USED, jp->used_body, jp->used_len, on_used, jp))
		join_finish(jp, out);
}

void ig_svc_join_request(ig_decision *out, ig_svc_join *svc, ig_state *st, const char *id,
                         const ig_svc_join_ticket *ticket, uint64_t now_s)
{
	if (!ticket || strcmp(ticket->id, id) != 0) {
		ig_decision_refuse(out, "join", NULL, "not_joining",
		                   "connect with a join token to join; this identity is enrolled");
		return;
	}
	if (pending_find(svc, id))
		return;   /* a repeated request while the first is being written */
	ig_join_code_entry *code = ig_joincodes_find(ig_state_joincodes(st), ticket->code_id);
	if (!code || code->status == IG_CODE_USED || code->in_flight) {
		ig_decision_refuse(out, "join", NULL, "code_used", "this join code has already been used");
		return;
	}
	if (now_s >= code->expires_at) {
		ig_decision_refuse(out, "join", NULL, "code_expired", "this join code has expired; ask an admin for a new one");
		return;
	}
	ig_registry *reg = ig_state_registry(st);
	if (!ig_join_id_claimable(reg, id, strlen(id)) ||
	    ig_registry_reserve(reg, id, (ig_role)code->role, ticket->pk) != IG_OK) {
		ig_decision_refuse(out, "join", NULL, "id_taken",
		                   "this id is enrolled, being enrolled or was enrolled before; join with a new id, or ask "
		                   "an admin to re-enrol it (iotguard enroll --reenroll)");
		return;
	}

	char code_hex[2 * IG_JOIN_CODE_ID_BYTES + 1];
	ig_hex_encode(code_hex, ticket->code_id, IG_JOIN_CODE_ID_BYTES);
	ig_enroll e = {.role = (ig_role)code->role, .has_join_code = true};
	snprintf(e.id, sizeof e.id, "%s", id);
	memcpy(e.pk, ticket->pk, IG_PK_BYTES);
	snprintf(e.by, sizeof e.by, "join:%s", code_hex);
	memcpy(e.join_code, ticket->code_id, IG_JOIN_CODE_ID_BYTES);
	ig_join_used u = {0};
	memcpy(u.code_id, ticket->code_id, IG_JOIN_CODE_ID_BYTES);
	snprintf(u.id, sizeof u.id, "%s", id);

	uint8_t enroll_body[512];
	int elen = ig_record_enroll_encode(enroll_body, sizeof enroll_body, &e);
	join_pending *jp = calloc(1, sizeof *jp);
	int ulen = jp ? ig_record_join_used_encode(jp->used_body, sizeof jp->used_body, &u) : -1;
	if (elen < 0 || ulen < 0 || !jp ||
	    !ig_decision_append(out, IG_REC_ENROLL, enroll_body, (size_t)elen, on_enroll, jp)) {
		free(jp);
		ig_registry_release(reg, id);
		ig_decision_refuse(out, "join", NULL, "internal", "could not build the join records");
		return;
	}
	jp->svc = svc;
	jp->st = st;
	jp->role = (ig_role)code->role;
	jp->used_len = (size_t)ulen;
	snprintf(jp->id, sizeof jp->id, "%s", id);
	memcpy(jp->code_id, ticket->code_id, IG_JOIN_CODE_ID_BYTES);
	jp->next = svc->pending;
	if (svc->pending)
		svc->pending->prev = jp;
	svc->pending = jp;
	code->in_flight = true;
}
