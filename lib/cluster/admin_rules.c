/*
 * admin_rules.c: what an admin command means against the cluster state.
 *
 * Why this exists: the broker (plugin_admin.c) and the CLI's offline writer
 * (tools/cmd_ledger.c) both decide whether an enroll, revoke, credit or
 * create_join_codes may go ahead, build the record it appends, and render
 * identities and list pages. They used to do it each in their own copy, and
 * the copies drifted (different messages, different paging). Here it is
 * once, over an ig_state, so both sides give the same answer to the same
 * ledger and the rules are unit-tested without a broker.
 */
#include "ig_admin.h"

#include <cJSON.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ig_bank.h"
#include "ig_decision.h"
#include "ig_state.h"

static bool refuse(ig_admin_refusal *why, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static bool refuse(ig_admin_refusal *why, const char *code, const char *fmt, ...)
{
	why->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why->message, sizeof why->message, fmt, ap);
	va_end(ap);
	return false;
}

/* " (ledger index N)", or "" while the record is not yet durable (index 0:
 * no record but the genesis has index 0). */
static void index_note(char *out, size_t cap, uint64_t index)
{
	if (index)
		snprintf(out, cap, " (ledger index %" PRIu64 ")", index);
	else
		out[0] = '\0';
}

static bool admit_enroll(ig_admin_refusal *why, const ig_identity *cur, const ig_admin_cmd *cmd)
{
	if (cmd->role <= IG_ROLE_NONE || cmd->role >= IG_ROLE_COUNT)
		return refuse(why, IG_ADMIN_E_MALFORMED, "enroll: unknown role; use device, analyst, monitor, admin, witness or bridge");
	if (cur && cur->status == IG_ID_ACTIVE)
		return refuse(why, IG_ADMIN_E_EXISTS, "%s is already enrolled (active, ledger index %" PRIu64 "); "
		              "revoke it first to enroll a new key", cmd->id, cur->enrolled_index);
	if (cur && cur->status == IG_ID_PENDING)
		return refuse(why, IG_ADMIN_E_EXISTS, "%s is already enrolled (pending: its enrolment is not yet "
		              "durable); revoke it first to enroll a new key", cmd->id);
	if (!cur)
		return true;
	char note[48];
	index_note(note, sizeof note, cur->revoked_index);
	if (!cmd->reenroll)
		return refuse(why, IG_ADMIN_E_ALREADY_REVOKED, "%s was revoked%s; to give this id a new key, enroll "
		              "it again with --reenroll (admin API: \"reenroll\":true). It starts with no credit, "
		              "coins or session keys", cmd->id, note);
	/* A revocation the broker has put in force but not yet written: the
	 * new enrolment must follow its record, not race it. */
	if (cur->revoked_index == 0)
		return refuse(why, IG_ADMIN_E_EXISTS, "%s has a revocation in flight; retry in a moment", cmd->id);
	return true;
}

static bool admit_revoke(ig_admin_refusal *why, const ig_identity *cur, const ig_admin_cmd *cmd)
{
	if (!cur)
		return refuse(why, IG_ADMIN_E_NOT_FOUND, "%s is not enrolled; nothing to revoke", cmd->id);
	if (cur->status == IG_ID_REVOKED) {
		char note[48];
		index_note(note, sizeof note, cur->revoked_index);
		return refuse(why, IG_ADMIN_E_ALREADY_REVOKED, "%s is already revoked%s", cmd->id, note);
	}
	if (cur->status == IG_ID_PENDING)
		return refuse(why, IG_ADMIN_E_EXISTS, "%s is still being enrolled; retry in a moment", cmd->id);
	return true;
}

static bool admit_credit(ig_admin_refusal *why, const ig_identity *cur, const ig_admin_cmd *cmd)
{
	if (cmd->amount < 1 || cmd->amount > IG_CREDIT_MAX)
		return refuse(why, IG_ADMIN_E_MALFORMED, "credit: \"amount\" must be a whole number from 1 to %u",
		              IG_CREDIT_MAX);
	if (!cur || cur->status != IG_ID_ACTIVE || cur->role != IG_ROLE_DEVICE)
		return refuse(why, IG_ADMIN_E_NOT_FOUND, "%s is not an active device; only collectors (devices) get "
		              "credit", cmd->id);
	return true;
}

static bool admit_join_codes(ig_admin_refusal *why, const ig_admin_cmd *cmd)
{
	const char *name = ig_admin_kind_name(IG_ADMIN_JOIN_CODES);
	if (!ig_admin_join_role_allowed(cmd->role))
		return refuse(why, IG_ADMIN_E_MALFORMED, "%s: join codes are only for roles device and analyst; "
		              "enroll %ss by public key", name, ig_role_name(cmd->role));
	if (cmd->ttl < 60 || cmd->ttl > IG_JOIN_CODE_TTL_MAX)
		return refuse(why, IG_ADMIN_E_MALFORMED, "%s: \"ttl\" must be a whole number from 60 to %u", name,
		              (unsigned)IG_JOIN_CODE_TTL_MAX);
	if (cmd->count < 1 || cmd->count > IG_ADMIN_JOIN_CODES_MAX)
		return refuse(why, IG_ADMIN_E_MALFORMED, "%s: \"count\" must be a whole number from 1 to %u", name,
		              (unsigned)IG_ADMIN_JOIN_CODES_MAX);
	return true;
}

bool ig_admin_admit(ig_admin_refusal *why, const ig_state *st, const ig_admin_cmd *cmd)
{
	why->code = NULL;
	why->message[0] = '\0';
	bool needs_id = cmd->kind != IG_ADMIN_LIST && cmd->kind != IG_ADMIN_JOIN_CODES;
	if (needs_id && !ig_id_valid(cmd->id, strnlen(cmd->id, sizeof cmd->id)))
		return refuse(why, IG_ADMIN_E_MALFORMED, "%s: \"id\" must be 1 to %d characters of A-Z a-z 0-9 _ . -",
		              ig_admin_kind_name(cmd->kind), IG_ID_MAX);
	const ig_identity *cur = needs_id ? ig_state_identity(st, cmd->id) : NULL;
	switch (cmd->kind) {
	case IG_ADMIN_ENROLL: return admit_enroll(why, cur, cmd);
	case IG_ADMIN_REVOKE: return admit_revoke(why, cur, cmd);
	case IG_ADMIN_CREDIT: return admit_credit(why, cur, cmd);
	case IG_ADMIN_JOIN_CODES: return admit_join_codes(why, cmd);
	case IG_ADMIN_GET:
		return cur ? true : refuse(why, IG_ADMIN_E_NOT_FOUND, "%s is not enrolled", cmd->id);
	case IG_ADMIN_LIST: return true;
	}
	return refuse(why, IG_ADMIN_E_UNKNOWN_COMMAND, "unknown command; use enroll, revoke, get_identity or "
	              "list_identities");
}

void ig_admin_not_written(ig_admin_refusal *why, ig_admin_kind kind, int status)
{
	const char *what;
	switch (kind) {
	case IG_ADMIN_ENROLL: what = "nothing was enrolled"; break;
	case IG_ADMIN_REVOKE:
		what = status == IG_ERR_CONFLICT ? "the revocation was not recorded by this broker"
		                                 : "the revocation was not recorded (it is in force until the broker "
		                                   "restarts; revoke again)";
		break;
	case IG_ADMIN_CREDIT: what = "nothing was granted"; break;
	case IG_ADMIN_JOIN_CODES: what = "no join codes were issued"; break;
	default: what = "nothing changed"; break;
	}
	if (status == IG_ERR_CONFLICT) {
		/* On a shared ledger the other broker's record is already in this
		 * broker's state: a re-read shows what it did. */
		const char *whom = kind == IG_ADMIN_JOIN_CODES ? "the shared ledger"
		                   : kind == IG_ADMIN_CREDIT   ? "this collector"
		                                               : "this identity";
		refuse(why, IG_ADMIN_E_CONFLICT, "%s: another broker changed %s first; re-read and retry", what, whom);
		return;
	}
	refuse(why, IG_ADMIN_E_STORAGE, "%s: %s", what, ig_decision_ledger_refusal(status));
}

int ig_admin_record(uint8_t *body, size_t cap, uint16_t *type, const ig_admin_cmd *cmd, const char *by)
{
	switch (cmd->kind) {
	case IG_ADMIN_ENROLL: {
		ig_enroll e;
		memset(&e, 0, sizeof e);
		snprintf(e.id, sizeof e.id, "%s", cmd->id);
		e.role = cmd->role;
		memcpy(e.pk, cmd->pk, IG_PK_BYTES);
		snprintf(e.by, sizeof e.by, "%s", by);
		e.has_zone = cmd->zone[0] != '\0';
		snprintf(e.zone, sizeof e.zone, "%s", cmd->zone);
		*type = IG_REC_ENROLL;
		return ig_record_enroll_encode(body, cap, &e);
	}
	case IG_ADMIN_REVOKE: {
		ig_revoke r;
		memset(&r, 0, sizeof r);
		snprintf(r.id, sizeof r.id, "%s", cmd->id);
		snprintf(r.reason, sizeof r.reason, "%s", cmd->reason);
		snprintf(r.by, sizeof r.by, "%s", by);
		*type = IG_REC_REVOKE;
		return ig_record_revoke_encode(body, cap, &r);
	}
	case IG_ADMIN_CREDIT: {
		ig_credit_rec c;
		memset(&c, 0, sizeof c);
		snprintf(c.id, sizeof c.id, "%s", cmd->id);
		c.amount = cmd->amount;
		snprintf(c.by, sizeof c.by, "%s", by);
		*type = IG_REC_CREDIT;
		return ig_bank_credit_encode(body, cap, &c);
	}
	default:
		return IG_ERR_INVAL;
	}
}

cJSON *ig_admin_identity_json(const ig_identity *idn, ig_admin_connected_fn connected, void *ctx)
{
	char pk[2 * IG_PK_BYTES + 1];
	ig_hex_encode(pk, idn->pk, IG_PK_BYTES);
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	bool ok = cJSON_AddStringToObject(o, "id", idn->id) &&
	          cJSON_AddStringToObject(o, "role", ig_role_name((ig_role)idn->role)) &&
	          cJSON_AddStringToObject(o, "status", ig_registry_status_name((ig_id_status)idn->status)) &&
	          cJSON_AddStringToObject(o, "pubkey", pk) &&
	          cJSON_AddNumberToObject(o, "enrolled_index", (double)idn->enrolled_index) &&
	          cJSON_AddNumberToObject(o, "enrolled_ts", (double)idn->enrolled_ts_ms) &&
	          (idn->status != IG_ID_REVOKED ||
	           cJSON_AddNumberToObject(o, "revoked_index", (double)idn->revoked_index)) &&
	          (!connected || cJSON_AddBoolToObject(o, "connected", connected(ctx, idn->id)));
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* ig_admin_identity_json plus the zone, which the state keeps beside the
 * registry (ig_state_zone). */
static cJSON *identity_view(const ig_state *st, const ig_identity *idn, ig_admin_connected_fn connected, void *ctx)
{
	cJSON *o = ig_admin_identity_json(idn, connected, ctx);
	const char *zone = o ? ig_state_zone(st, idn->id) : NULL;
	if (zone && !cJSON_AddStringToObject(o, "zone", zone)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

typedef struct list_ctx {
	const ig_state *st;
	const ig_admin_cmd *cmd;
	ig_admin_connected_fn connected;
	void *connected_ctx;
	cJSON *items;
	uint64_t matched;
	bool nomem;
} list_ctx;

static bool list_one(void *ctx, const ig_identity *idn)
{
	list_ctx *lc = ctx;
	const ig_admin_cmd *cmd = lc->cmd;
	if (cmd->role != IG_ROLE_NONE && idn->role != cmd->role)
		return true;
	if (cmd->status_filter >= 0 && idn->status != cmd->status_filter)
		return true;
	uint64_t pos = lc->matched++;
	/* Past the page the walk goes on, to count "total". */
	if (pos < cmd->offset || (cmd->limit && pos - cmd->offset >= cmd->limit))
		return true;
	cJSON *o = identity_view(lc->st, idn, lc->connected, lc->connected_ctx);
	if (!o || !cJSON_AddItemToArray(lc->items, o)) {
		cJSON_Delete(o);
		lc->nomem = true;
		return false;
	}
	return true;
}

int ig_admin_read(cJSON *resp, const ig_state *st, const ig_admin_cmd *cmd, ig_admin_connected_fn connected,
                  void *ctx)
{
	if (cmd->kind == IG_ADMIN_GET) {
		const ig_identity *idn = ig_state_identity(st, cmd->id);
		if (!idn)
			return IG_ERR_NOTFOUND;
		cJSON *o = identity_view(st, idn, connected, ctx);
		if (!o || !cJSON_AddItemToObject(resp, "identity", o)) {
			cJSON_Delete(o);
			return IG_ERR_NOMEM;
		}
		return IG_OK;
	}
	if (cmd->kind != IG_ADMIN_LIST)
		return IG_ERR_INVAL;
	list_ctx lc = {.st = st, .cmd = cmd, .connected = connected, .connected_ctx = ctx, .items = cJSON_CreateArray()};
	if (!lc.items)
		return IG_ERR_NOMEM;
	ig_state_identity_foreach(st, list_one, &lc);
	if (lc.nomem || !cJSON_AddNumberToObject(resp, "total", (double)lc.matched) ||
	    !cJSON_AddNumberToObject(resp, "offset", (double)cmd->offset) ||
	    !cJSON_AddItemToObject(resp, "identities", lc.items)) {
		cJSON_Delete(lc.items);
		return IG_ERR_NOMEM;
	}
	return IG_OK;
}
