/*
 * plugin_admin.c: the admin API on $CONTROL/iotguard/v1.
 *
 * Why this exists: operators change the cluster (enroll, revoke) through
 * the broker they already run, with the same shape as Mosquitto's
 * dynamic-security API. A request may hold several commands; the reply goes
 * to the requesting client only, in one message, and is sent only when every
 * state change in it is durable. Reads answer at once.
 *
 * While the cluster head is sealed (no key, so nothing can be appended and
 * signed) every command that would append is refused as "sealed"; reads
 * are answered as usual.
 *
 * What a command means (its admission rule, its record, the identity and
 * list views) is lib's (ig_admin_admit, ig_admin_record, ig_admin_read), the
 * same for the CLI's offline writer; a durable record is applied with
 * ig_state_apply, exactly as a replay applies it. This file is the glue:
 * batching, the disk's answer, kicks and events.
 */
#include "plugin.h"

#include "ig_decision.h"
#include "ig_json.h"
#include "ig_svc_custody.h"
#include "plugin_service.h"

#include <cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One request message; freed when its last command has an answer. */
typedef struct admin_batch {
	ig_plugin *pl;
	char client_id[IG_ID_MAX + 1];
	char by[IG_BY_MAX + 1];  /* the `by` of the records it makes (record_by) */
	cJSON *responses;        /* array, one slot per command, in request order */
	int outstanding;         /* commands waiting for the disk */
} admin_batch;

/* One state-changing command waiting for its record to be durable. */
typedef struct admin_pending {
	admin_batch *batch;
	cJSON *slot;
	ig_admin_kind kind;
	char id[IG_ID_MAX + 1];
	bool disconnected;
} admin_pending;

static cJSON *new_response(const ig_admin_cmd *cmd)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "command", cmd->command);
	cJSON_AddStringToObject(r, "correlation", cmd->correlation);
	return r;
}

static void fail(cJSON *r, const char *code, const char *message)
{
	cJSON_AddFalseToObject(r, "ok");
	cJSON_AddStringToObject(r, "error", code);
	cJSON_AddStringToObject(r, "message", message);
}

static void fail_refused(cJSON *slot, const ig_admin_refusal *why)
{
	fail(slot, why->code, why->message);
}

static void batch_send_if_done(admin_batch *b)
{
	if (b->outstanding > 0)
		return;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "responses", b->responses);
	char *json = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	ig_plugin_send_to(b->client_id, IG_ADMIN_RESPONSE_TOPIC, json);
	free(json);
	free(b);
}

/* The identity view's "connected" (ig_admin_connected_fn). */
static bool is_connected(void *ctx, const char *id)
{
	ig_plugin *pl = ctx;
	return ig_sessions_find(&pl->sessions, id) != NULL;
}

/* Retained, so a monitor that subscribes later still sees why the device is
 * gone. */
static void publish_revoked_status(ig_plugin *pl, const char *id)
{
	char topic[IG_TOPIC_MAX];
	snprintf(topic, sizeof topic, "iotguard/%s/dev/%s/status", pl->cluster, id);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", id);
	cJSON_AddStringToObject(o, "state", "revoked");
	cJSON_AddNumberToObject(o, "ts", (double)ig_now_ms());
	char *json = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	ig_plugin_publish(topic, json, true);
	free(json);
}

bool ig_plugin_disconnect_identity(ig_plugin *pl, const char *id)
{
	bool was_connected = ig_sessions_find(&pl->sessions, id) != NULL;
	/* Client id == username == id, so the O(1) lookup by client id finds
	 * it; with_will so monitors see the device go offline. */
	mosquitto_kick_client_by_clientid(id, true);
	return was_connected;
}

/* An admin revoking itself is still inside its own PUBLISH; cutting that
 * connection under Mosquitto's feet loses the PUBACK and the reply, so that
 * one kick waits for the next tick. (It can no longer authenticate or pass
 * an ACL check meanwhile.) */
#define KICKS_MAX 64
static char kicks[KICKS_MAX][IG_ID_MAX + 1];
static uint32_t kicks_pending;

static void disconnect_later(ig_plugin *pl, const char *id)
{
	(void)pl;
	if (kicks_pending == KICKS_MAX) {
		mosquitto_kick_client_by_clientid(id, true);
		return;
	}
	snprintf(kicks[kicks_pending++], IG_ID_MAX + 1, "%s", id);
}

void ig_plugin_run_pending_kicks(ig_plugin *pl)
{
	(void)pl;
	for (uint32_t i = 0; i < kicks_pending; i++)
		mosquitto_kick_client_by_clientid(kicks[i], false);
	kicks_pending = 0;
}

bool ig_plugin_revoke_cut(ig_plugin *pl, const char *id, const char *by_client)
{
	bool self = by_client && strcmp(id, by_client) == 0;
	bool disconnected = self ? true : ig_plugin_disconnect_identity(pl, id);
	if (self)
		disconnect_later(pl, id);
	publish_revoked_status(pl, id);
	return disconnected;
}

/* Who made a record, for its `by`: the admin's id, and with a shared ledger
 * "<id>@<broker name>" so the record says which broker took the command
 * (docs/LEDGER.md, the by string), when that fits in IG_BY_MAX bytes; a
 * longer pair keeps the id alone rather than a cut name. */
static void record_by(char out[IG_BY_MAX + 1], const ig_plugin *pl, const char *client_id)
{
	size_t id_len = strnlen(client_id, IG_ID_MAX), name_len = strlen(pl->cfg.broker_name);
	memcpy(out, client_id, id_len);
	out[id_len] = '\0';
	if (name_len && id_len + 1 + name_len <= IG_BY_MAX) {
		out[id_len] = '@';
		memcpy(out + id_len + 1, pl->cfg.broker_name, name_len + 1);
	}
}

/* ---- durable commands ---- */

static void on_durable(void *ctx, int status, const ig_record *rec)
{
	admin_pending *p = ctx;
	admin_batch *b = p->batch;
	ig_plugin *pl = b->pl;

	if (status == IG_ERR_UNKNOWN) {
		/* The record reached the kernel before its batch failed: the next
		 * start may or may not replay it, so say exactly that. */
		if (p->kind == IG_ADMIN_ENROLL)
			ig_registry_release(pl->reg, p->id);
		fail(p->slot, IG_DECISION_E_OUTCOME_UNKNOWN,
		     p->kind == IG_ADMIN_REVOKE
		         ? "a disk write failed after the revocation was written, so it may or may not be durable; it "
		           "is in force until the broker restarts: fix the disk (see the broker log), restart the "
		           "broker, check with 'iotguard get' and revoke again if it is still active"
		         : "a disk write failed after the enrolment was written, so it may or may not be durable: fix "
		           "the disk (see the broker log), restart the broker and check with 'iotguard get' before "
		           "retrying");
	} else if (status != IG_OK) {
		if (p->kind == IG_ADMIN_ENROLL)
			ig_registry_release(pl->reg, p->id);
		/* A revoke that failed to reach the disk stays in force in memory:
		 * failing closed is safer, and the admin is told to retry. A
		 * conflict (another broker's record came first, and following
		 * has applied it) is final: "conflict". */
		ig_admin_refusal why;
		ig_admin_not_written(&why, p->kind, status);
		fail(p->slot, why.code, why.message);
	} else {
		/* What the revoke record's state rule (lib/bank/coins.c, docs/LEDGER.md)
		 * ends: the id's credit and unspent coins, read before it runs. */
		uint64_t cancelled_credit = ig_coins_balance(pl->coins, p->id);
		uint64_t cancelled_coins = ig_coins_outstanding(pl->coins, p->id);
		/* As on replay: the registry (the revocation in force since the
		 * command becomes the durable one), the coins, and a wiped
		 * ig_device, so a new key starts with none of the old one's state;
		 * then what every broker that follows the record does too. */
		ig_plugin_record_durable(pl, rec);
		cJSON_AddTrueToObject(p->slot, "ok");
		cJSON_AddNumberToObject(p->slot, "index", (double)rec->index);
		cJSON_AddStringToObject(p->slot, "id", p->id);
		if (p->kind == IG_ADMIN_REVOKE) {
			cJSON_AddBoolToObject(p->slot, "disconnected", p->disconnected);
			cJSON_AddNumberToObject(p->slot, "cancelled_credit", (double)cancelled_credit);
			cJSON_AddNumberToObject(p->slot, "cancelled_coins", (double)cancelled_coins);
		}
		ig_plugin_log(MOSQ_LOG_NOTICE, "%s %s by %s (ledger index %llu)",
		              p->kind == IG_ADMIN_ENROLL ? "enrolled" : "revoked", p->id, b->client_id,
		              (unsigned long long)rec->index);
	}
	b->outstanding--;
	free(p);
	batch_send_if_done(b);
}

static void submit(admin_batch *b, cJSON *slot, ig_admin_kind kind, const char *id, const uint8_t *body,
                   int body_len, bool disconnected)
{
	ig_plugin *pl = b->pl;
	admin_pending *p = calloc(1, sizeof *p);
	if (!p || body_len < 0) {
		free(p);
		if (kind == IG_ADMIN_ENROLL)
			ig_registry_release(pl->reg, id);
		fail(slot, IG_ADMIN_E_STORAGE, "could not build the ledger record");
		return;
	}
	*p = (admin_pending){.batch = b, .slot = slot, .kind = kind, .disconnected = disconnected};
	snprintf(p->id, sizeof p->id, "%s", id);
	uint16_t type = kind == IG_ADMIN_ENROLL ? IG_REC_ENROLL : IG_REC_REVOKE;
	int rc = ig_ledger_submit(pl->ledger, type, body, (size_t)body_len, on_durable, p);
	if (rc != IG_OK) {
		free(p);
		if (kind == IG_ADMIN_ENROLL)
			ig_registry_release(pl->reg, id);
		fail(slot, IG_ADMIN_E_STORAGE, ig_decision_ledger_refusal(rc));
		return;
	}
	b->outstanding++;
}

static void do_enroll(admin_batch *b, cJSON *slot, const ig_admin_cmd *cmd)
{
	ig_plugin *pl = b->pl;
	ig_admin_refusal why;
	if (!ig_admin_admit(&why, pl->state, cmd)) {
		fail_refused(slot, &why);
		return;
	}
	/* Holds the id while the record is in flight, so a second enroll of it
	 * is refused by the rule above. */
	int rc = ig_registry_reserve(pl->reg, cmd->id, cmd->role, cmd->pk);
	if (rc != IG_OK) {
		char msg[200];
		snprintf(msg, sizeof msg, rc == IG_ERR_NOMEM ? "out of memory holding %s; nothing was enrolled, retry later"
		                                             : "%s has an enrolment or revocation in flight; retry in a moment",
		         cmd->id);
		fail(slot, rc == IG_ERR_NOMEM ? IG_ADMIN_E_STORAGE : IG_ADMIN_E_EXISTS, msg);
		return;
	}
	uint8_t body[512];
	uint16_t type;
	submit(b, slot, IG_ADMIN_ENROLL, cmd->id, body, ig_admin_record(body, sizeof body, &type, cmd, b->by),
	       false);
}

static void do_revoke(admin_batch *b, cJSON *slot, const ig_admin_cmd *cmd)
{
	ig_plugin *pl = b->pl;
	ig_admin_refusal why;
	if (!ig_admin_admit(&why, pl->state, cmd)) {
		fail_refused(slot, &why);
		return;
	}
	/* The identity is cut off and unusable now; only the reply waits for
	 * the record to be durable. The kick comes first because Mosquitto
	 * checks the will against the ACL as it sends it, and monitors should
	 * see the device go offline. */
	bool disconnected = ig_plugin_revoke_cut(pl, cmd->id, b->client_id);
	ig_registry_mark_revoked(pl->reg, cmd->id, 0);
	ig_plugin_services_on_revoke(pl, cmd->id);
	ig_state_device_forget(pl->state, cmd->id);
	uint8_t body[1024];
	uint16_t type;
	submit(b, slot, IG_ADMIN_REVOKE, cmd->id, body, ig_admin_record(body, sizeof body, &type, cmd, b->by),
	       disconnected);
}

/* The codes of one create_join_codes command; they are secrets, held only
 * until every JOIN_CODE record is durable and then sent to the admin. */
typedef struct codes_pending {
	admin_batch *batch;
	cJSON *slot;
	uint32_t count, remaining, failed, unknown;   /* unknown: of the failed, how many may be durable */
	int fail_status;                              /* the first failure that was certainly not written */
	uint64_t expires_at;
	ig_role role;
	char text[IG_ADMIN_JOIN_CODES_MAX][IG_JOIN_CODE_TEXT_LEN + 1];
} codes_pending;

static void codes_step(codes_pending *cp);

static void on_code_durable(void *ctx, int status, const ig_record *rec)
{
	codes_pending *cp = ctx;
	admin_batch *b = cp->batch;
	ig_plugin *pl = b->pl;
	if (status == IG_OK) {
		ig_plugin_record_durable(pl, rec);
	} else {
		cp->failed++;
		if (status == IG_ERR_UNKNOWN)
			cp->unknown++;
		else if (!cp->fail_status)
			cp->fail_status = status;
	}
	codes_step(cp);
}

/* One record (or the submitter's hold) is done; the last one answers. */
static void codes_step(codes_pending *cp)
{
	admin_batch *b = cp->batch;
	if (--cp->remaining > 0)
		return;
	if (cp->unknown) {
		/* Some codes may be replayed at the next start, but none is handed
		 * out: nobody can use a code whose text was never shown, and it
		 * expires unused; so creating new codes later is always safe. */
		fail(cp->slot, IG_DECISION_E_OUTCOME_UNKNOWN,
		     "a disk write failed after join code records were written, so some may or may not be durable; none "
		     "were handed out (any that were recorded stay unusable and expire): create new codes once the "
		     "broker is back");
	} else if (cp->failed && (cp->fail_status == IG_ERR_CONFLICT || cp->fail_status == IG_ERR_UNAVAILABLE)) {
		ig_admin_refusal why;
		ig_admin_not_written(&why, IG_ADMIN_JOIN_CODES, cp->fail_status);
		fail(cp->slot, why.code, why.message);
	} else if (cp->failed) {
		/* Some codes may exist in the ledger, but none is handed out: an
		 * admin cannot tell which, and unknown codes are harmless. */
		fail(cp->slot, IG_ADMIN_E_STORAGE, "the ledger could not record the join codes; none were issued");
	} else {
		cJSON_AddTrueToObject(cp->slot, "ok");
		cJSON_AddStringToObject(cp->slot, "role", ig_role_name(cp->role));
		cJSON_AddNumberToObject(cp->slot, "expires_at", (double)cp->expires_at);
		cJSON *codes = cJSON_AddArrayToObject(cp->slot, "codes");
		for (uint32_t i = 0; i < cp->count; i++)
			cJSON_AddItemToArray(codes, cJSON_CreateString(cp->text[i]));
		ig_plugin_log(MOSQ_LOG_NOTICE, "%u join code(s) for role %s created by %s", cp->count, ig_role_name(cp->role),
		              b->client_id);
	}
	sodium_memzero(cp, sizeof *cp);
	free(cp);
	b->outstanding--;
	batch_send_if_done(b);
}

static void do_join_codes(admin_batch *b, cJSON *slot, const ig_admin_cmd *cmd)
{
	ig_plugin *pl = b->pl;
	ig_admin_refusal why;
	if (!ig_admin_admit(&why, pl->state, cmd)) {
		fail_refused(slot, &why);
		return;
	}
	codes_pending *cp = calloc(1, sizeof *cp);
	if (!cp) {
		fail(slot, IG_ADMIN_E_STORAGE, "out of memory");
		return;
	}
	*cp = (codes_pending){.batch = b, .slot = slot, .count = cmd->count, .role = cmd->role,
	                      .expires_at = ig_now_ms() / 1000 + cmd->ttl};
	b->outstanding++;
	cp->remaining = 1;   /* held until all are submitted */
	for (uint32_t i = 0; i < cmd->count; i++) {
		ig_join_code_rec r = {.role = cmd->role, .expires_at = cp->expires_at};
		ig_join_code_new(&pl->join_key, r.code_id, r.hash, cp->text[i]);
		snprintf(r.by, sizeof r.by, "%s", b->by);
		uint8_t body[256];
		int n = ig_record_join_code_encode(body, sizeof body, &r);
		int rc = n < 0 ? n : ig_ledger_submit(pl->ledger, IG_REC_JOIN_CODE, body, (size_t)n, on_code_durable, cp);
		if (rc != IG_OK) {
			cp->failed++;
			cp->fail_status = rc;
			break;
		}
		cp->remaining++;
	}
	codes_step(cp);   /* releases the hold */
}

typedef struct credit_pending {
	admin_batch *batch;
	cJSON *slot;
	char id[IG_ID_MAX + 1];
} credit_pending;

static void on_credit_durable(void *ctx, int status, const ig_record *rec)
{
	credit_pending *cp = ctx;
	admin_batch *b = cp->batch;
	ig_plugin *pl = b->pl;
	if (status == IG_ERR_UNKNOWN) {
		fail(cp->slot, IG_DECISION_E_OUTCOME_UNKNOWN,
		     "a disk write failed after the credit was written, so it may or may not be durable: fix the disk "
		     "(see the broker log), restart the broker and check the balance with 'iotguard get' before "
		     "crediting again");
	} else if (status != IG_OK) {
		ig_admin_refusal why;
		ig_admin_not_written(&why, IG_ADMIN_CREDIT, status);
		fail(cp->slot, why.code, why.message);
	} else {
		ig_plugin_record_durable(pl, rec);
		cJSON_AddTrueToObject(cp->slot, "ok");
		cJSON_AddNumberToObject(cp->slot, "index", (double)rec->index);
		cJSON_AddStringToObject(cp->slot, "id", cp->id);
		cJSON_AddNumberToObject(cp->slot, "balance", (double)ig_coins_balance(pl->coins, cp->id));
	}
	free(cp);
	b->outstanding--;
	batch_send_if_done(b);
}

static void do_credit(admin_batch *b, cJSON *slot, const ig_admin_cmd *cmd)
{
	ig_plugin *pl = b->pl;
	ig_admin_refusal why;
	if (!ig_admin_admit(&why, pl->state, cmd)) {
		fail_refused(slot, &why);
		return;
	}
	uint8_t body[256];
	uint16_t type;
	int n = ig_admin_record(body, sizeof body, &type, cmd, b->by);
	credit_pending *cp = calloc(1, sizeof *cp);
	if (cp) {
		cp->batch = b;
		cp->slot = slot;
		snprintf(cp->id, sizeof cp->id, "%s", cmd->id);
	}
	int rc = !cp ? IG_ERR_NOMEM : n < 0 ? n : ig_ledger_submit(pl->ledger, IG_REC_CREDIT, body, (size_t)n, on_credit_durable, cp);
	if (rc != IG_OK) {
		free(cp);
		fail(slot, IG_ADMIN_E_STORAGE, !cp || n < 0 ? "could not build the credit record; nothing was granted"
		                                            : ig_decision_ledger_refusal(rc));
		return;
	}
	b->outstanding++;
}

/* get_identity and list_identities answer at once, from the state as it
 * stands. */
static void do_read(admin_batch *b, cJSON *slot, const ig_admin_cmd *cmd)
{
	ig_admin_refusal why;
	if (!ig_admin_admit(&why, b->pl->state, cmd)) {
		fail_refused(slot, &why);
		return;
	}
	cJSON_AddTrueToObject(slot, "ok");
	if (ig_admin_read(slot, b->pl->state, cmd, is_connected, b->pl) != IG_OK) {
		/* Out of memory: the slot says so instead of a partial answer. */
		cJSON *fresh = new_response(cmd);
		if (fresh) {
			fail(fresh, IG_ADMIN_E_STORAGE, "the broker ran out of memory building the answer; retry later");
			cJSON_ReplaceItemViaPointer(b->responses, slot, fresh);
		}
	}
}

/* What a command that appends does, for the sealed refusal; NULL for the
 * reads, which need no key. */
static const char *sealed_what(ig_admin_kind kind)
{
	switch (kind) {
	case IG_ADMIN_ENROLL: return "record an enrolment";
	case IG_ADMIN_REVOKE: return "record a revocation (the identity stays active until then)";
	case IG_ADMIN_JOIN_CODES: return "create join codes";
	case IG_ADMIN_CREDIT: return "record a credit";
	default: return NULL;
	}
}

/* ---- commands answered in their own slot ---------------------------------- */

/* The name of item's command when it starts with prefix (custody_, kp_),
 * else NULL: the command is not this family's. */
static const char *family_command(const cJSON *item, const char *prefix)
{
	const cJSON *command = cJSON_GetObjectItemCaseSensitive(item, "command");
	if (!cJSON_IsString(command) || strncmp(command->valuestring, prefix, strlen(prefix)) != 0)
		return NULL;
	return command->valuestring;
}

static bool field_in(const char *field, const char *const *fields)
{
	for (size_t i = 0; fields && fields[i]; i++)
		if (!strcmp(field, fields[i]))
			return true;
	return false;
}

/* Adds command name's response slot to the batch, with its "command" (the
 * prefix alone when the name is too long to echo) and "correlation", and
 * refuses in it a field other than those two and extra (NULL-terminated;
 * NULL: none), so a misspelt field is not silently ignored. *slot is the
 * slot to answer in when true; false: nothing more to do (refused, or out
 * of memory). */
static bool open_slot(cJSON **slot, admin_batch *b, const cJSON *item, const char *name, const char *prefix,
                      const char *const *extra)
{
	const cJSON *corr = cJSON_GetObjectItemCaseSensitive(item, "correlation");
	*slot = cJSON_CreateObject();
	if (!*slot)
		return false;
	cJSON_AddStringToObject(*slot, "command", strlen(name) < 32 ? name : prefix);
	cJSON_AddStringToObject(*slot, "correlation", cJSON_IsString(corr) &&
	                        strlen(corr->valuestring) <= IG_ADMIN_CORRELATION_MAX ? corr->valuestring : "");
	cJSON_AddItemToArray(b->responses, *slot);
	for (const cJSON *f = item->child; f; f = f->next)
		if (strcmp(f->string, "command") != 0 && strcmp(f->string, "correlation") != 0 &&
		    !field_in(f->string, extra)) {
			char msg[128];
			snprintf(msg, sizeof msg, "%.31s: unknown field \"%.32s\"; remove it", name, f->string);
			fail(*slot, IG_ADMIN_E_MALFORMED, msg);
			return false;
		}
	return true;
}

/* ---- custody_status, custody_seal, custody_rotate (plugin_custody.c) ------ */

typedef struct custody_pending {
	admin_batch *batch;
	cJSON *slot;
} custody_pending;

static void on_custody_done(void *ctx, const char *error, const char *message)
{
	custody_pending *cp = ctx;
	admin_batch *b = cp->batch;
	if (error) {
		fail(cp->slot, error, message);
	} else {
		cJSON_AddTrueToObject(cp->slot, "ok");
		cJSON_AddStringToObject(cp->slot, "message", message);
	}
	free(cp);
	b->outstanding--;
	batch_send_if_done(b);
}

static void on_recover_done(void *ctx, const char *error, const char *message, cJSON *result)
{
	custody_pending *cp = ctx;
	admin_batch *b = cp->batch;
	if (error) {
		fail(cp->slot, error, message);
	} else {
		cJSON_AddTrueToObject(cp->slot, "ok");
		while (result && result->child) {
			cJSON *f = cJSON_DetachItemViaPointer(result, result->child);
			cJSON_AddItemToObject(cp->slot, f->string, f);
		}
	}
	cJSON_Delete(result);
	free(cp);
	b->outstanding--;
	batch_send_if_done(b);
}

/* A custody_* command (they take no fields but "command" and "correlation",
 * custody_recover "pk", "request" and "approval", custody_approve "sig"):
 * true when item is one, answered in its own slot. */
static bool do_custody(admin_batch *b, const cJSON *item)
{
	static const char *const recover_fields[] = {"pk", "request", "approval", NULL};
	static const char *const approve_fields[] = {"sig", NULL};
	const char *name = family_command(item, "custody_");
	if (!name)
		return false;
	bool recover = !strcmp(name, "custody_recover"), approve = !strcmp(name, "custody_approve");
	cJSON *slot;
	if (!open_slot(&slot, b, item, name, "custody_", recover ? recover_fields : approve ? approve_fields : NULL))
		return true;
	const char *error = NULL;
	char msg[IG_DECISION_MESSAGE_MAX];
	if (!strcmp(name, "custody_status")) {
		ig_plugin_custody_admin_status(slot);
	} else if (!strcmp(name, "custody_rotate")) {
		if (ig_plugin_custody_admin_rotate(b->by, &error, msg, sizeof msg)) {
			cJSON_AddTrueToObject(slot, "ok");
			cJSON_AddStringToObject(slot, "message", msg);
		} else {
			fail(slot, error, msg);
		}
	} else if (!strcmp(name, "custody_seal")) {
		custody_pending *cp = calloc(1, sizeof *cp);
		if (!cp) {
			fail(slot, IG_ADMIN_E_STORAGE, "the broker is out of memory; retry later");
			return true;
		}
		*cp = (custody_pending){.batch = b, .slot = slot};
		b->outstanding++;
		if (!ig_plugin_custody_admin_seal(b->by, on_custody_done, cp, &error, msg, sizeof msg)) {
			b->outstanding--;
			free(cp);
			fail(slot, error, msg);
		}
	} else if (recover) {
		const cJSON *pk_hex = cJSON_GetObjectItemCaseSensitive(item, "pk");
		uint8_t pk[32];
		if (!cJSON_IsString(pk_hex) || ig_hex_decode(pk, sizeof pk, pk_hex->valuestring,
		                                             strlen(pk_hex->valuestring)) != IG_OK) {
			fail(slot, IG_ADMIN_E_MALFORMED, "custody_recover needs \"pk\": the requester's X25519 public key, 64 hex");
			return true;
		}
		/* Admin unseal mode: the sender's approval of its own request id. */
		const cJSON *req_hex = cJSON_GetObjectItemCaseSensitive(item, "request");
		const cJSON *ap = cJSON_GetObjectItemCaseSensitive(item, "approval");
		ig_svc_custody_approval approval = {.by = b->client_id};
		if (req_hex || ap) {
			const cJSON *sig = cJSON_GetObjectItemCaseSensitive(ap, "sig");
			const cJSON *root = cJSON_GetObjectItemCaseSensitive(ap, "root");
			size_t sig_len = 0, root_len = 0;
			if (!cJSON_IsString(req_hex) || !cJSON_IsObject(ap) || cJSON_GetArraySize(ap) != 3 ||
			    ig_hex_decode(approval.request, 16, req_hex->valuestring, strlen(req_hex->valuestring)) != IG_OK ||
			    ig_json_uint_field(&approval.size, ap, "size", 0, IG_JSON_UINT_MAX) != IG_OK ||
			    !cJSON_IsString(sig) || !cJSON_IsString(root) ||
			    sodium_base642bin(approval.sig, 64, sig->valuestring, strlen(sig->valuestring), NULL, &sig_len, NULL,
			                      sodium_base64_VARIANT_ORIGINAL) != 0 || sig_len != 64 ||
			    sodium_base642bin(approval.root, 32, root->valuestring, strlen(root->valuestring), NULL, &root_len,
			                      NULL, sodium_base64_VARIANT_ORIGINAL) != 0 || root_len != 32) {
				fail(slot, IG_ADMIN_E_MALFORMED, "custody_recover's approval needs \"request\" (32 hex) and "
				     "\"approval\": {\"sig\" (base64, 64 bytes), \"size\", \"root\" (base64, 32 bytes)}");
				return true;
			}
		}
		custody_pending *cp = calloc(1, sizeof *cp);
		if (!cp) {
			fail(slot, IG_ADMIN_E_STORAGE, "the broker is out of memory; retry later");
			return true;
		}
		*cp = (custody_pending){.batch = b, .slot = slot};
		b->outstanding++;
		if (!ig_plugin_custody_admin_recover(pk, req_hex ? &approval : NULL, on_recover_done, cp, &error, msg,
		                                     sizeof msg)) {
			b->outstanding--;
			free(cp);
			fail(slot, error, msg);
		}
	} else if (approve) {
		const cJSON *sig_b64 = cJSON_GetObjectItemCaseSensitive(item, "sig");
		uint8_t sig[64];
		size_t sig_len = 0;
		if (!cJSON_IsString(sig_b64) ||
		    sodium_base642bin(sig, sizeof sig, sig_b64->valuestring, strlen(sig_b64->valuestring), NULL, &sig_len,
		                      NULL, sodium_base64_VARIANT_ORIGINAL) != 0 || sig_len != sizeof sig) {
			fail(slot, IG_ADMIN_E_MALFORMED, "custody_approve needs \"sig\": the base64 of your 64-byte Ed25519 "
			     "signature over the pending request (iotguard custody approve makes it)");
			return true;
		}
		if (ig_plugin_custody_admin_approve(b->client_id, sig, &error, msg, sizeof msg)) {
			cJSON_AddTrueToObject(slot, "ok");
			cJSON_AddStringToObject(slot, "message", msg);
		} else {
			fail(slot, error, msg);
		}
	} else {
		fail(slot, IG_ADMIN_E_UNKNOWN_COMMAND, "unknown custody command; use custody_status, custody_seal, "
		     "custody_rotate, custody_recover or custody_approve");
	}
	return true;
}

/* ---- kp_status, kp_rotate (plugin_kp.c) ---------------------------------- */

/* A kp_* command (they take no fields but "command" and "correlation"):
 * true when item is one, answered in its own slot. kp_rotate answers once
 * the new epoch's record is durable. */
static bool do_kp(admin_batch *b, const cJSON *item)
{
	const char *name = family_command(item, "kp_");
	if (!name)
		return false;
	cJSON *slot;
	if (!open_slot(&slot, b, item, name, "kp_", NULL))
		return true;
	const char *error = NULL;
	char msg[IG_DECISION_MESSAGE_MAX];
	if (!strcmp(name, "kp_status")) {
		ig_plugin_kp_admin_status(b->pl, slot);
	} else if (!strcmp(name, "kp_rotate")) {
		custody_pending *cp = calloc(1, sizeof *cp);
		if (!cp) {
			fail(slot, IG_ADMIN_E_STORAGE, "the broker is out of memory; retry later");
			return true;
		}
		*cp = (custody_pending){.batch = b, .slot = slot};
		b->outstanding++;
		if (!ig_plugin_kp_admin_rotate(b->pl, b->by, on_custody_done, cp, &error, msg, sizeof msg)) {
			b->outstanding--;
			free(cp);
			fail(slot, error, msg);
			if (!strcmp(error, "sealed"))
				b->pl->sealed_refused_admin++;
		}
	} else {
		fail(slot, IG_ADMIN_E_UNKNOWN_COMMAND, "unknown key-ring command; use kp_status or kp_rotate");
	}
	return true;
}

static void reply_error(const char *client_id, const char *code, const char *message)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(o, "responses");
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "command", "");
	cJSON_AddStringToObject(r, "correlation", "");
	fail(r, code, message);
	cJSON_AddItemToArray(arr, r);
	char *json = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	ig_plugin_send_to(client_id, IG_ADMIN_RESPONSE_TOPIC, json);
	free(json);
}

int ig_plugin_on_control(int event, void *event_data, void *userdata)
{
	(void)event;
	ig_plugin *pl = userdata;
	struct mosquitto_evt_control *ed = event_data;
	const char *client_id = mosquitto_client_id(ed->client);
	const char *username = mosquitto_client_username(ed->client);
	if (!client_id)
		return MOSQ_ERR_SUCCESS;

	/* The write ACL already limits this topic to admins; checking the role
	 * again here keeps a permissive custom policy from opening the API. */
	const ig_identity *who = username ? ig_registry_find(pl->reg, username, strlen(username)) : NULL;
	if (!who || who->status != IG_ID_ACTIVE || who->role != IG_ROLE_ADMIN) {
		reply_error(client_id, IG_ADMIN_E_FORBIDDEN, "only identities with role admin may use the admin API");
		return MOSQ_ERR_SUCCESS;
	}
	if (ed->payloadlen > IG_ADMIN_MAX_PAYLOAD) {
		reply_error(client_id, IG_ADMIN_E_MALFORMED, "request larger than 64 KiB; split it into several requests");
		return MOSQ_ERR_SUCCESS;
	}
	cJSON *root = cJSON_ParseWithLength(ed->payload, ed->payloadlen);
	cJSON *cmds = root ? cJSON_GetObjectItemCaseSensitive(root, "commands") : NULL;
	int n = cJSON_IsArray(cmds) ? cJSON_GetArraySize(cmds) : -1;
	if (n <= 0 || n > IG_ADMIN_MAX_COMMANDS) {
		cJSON_Delete(root);
		reply_error(client_id, IG_ADMIN_E_MALFORMED,
		            "expected JSON {\"commands\":[...]} with 1 to 64 commands; see docs/PROTOCOL.md");
		return MOSQ_ERR_SUCCESS;
	}

	admin_batch *b = calloc(1, sizeof *b);
	if (!b) {
		cJSON_Delete(root);
		return MOSQ_ERR_SUCCESS;
	}
	b->pl = pl;
	b->responses = cJSON_CreateArray();
	snprintf(b->client_id, sizeof b->client_id, "%s", client_id);
	record_by(b->by, pl, b->client_id);
	b->outstanding = 1;   /* held until every command has been dispatched */

	const cJSON *item;
	cJSON_ArrayForEach(item, cmds) {
		if (do_custody(b, item) || do_kp(b, item))
			continue;
		ig_admin_cmd cmd = {0};
		ig_error err = {0};
		int rc = ig_admin_parse_command(item, &cmd, &err);
		cJSON *slot = new_response(&cmd);
		cJSON_AddItemToArray(b->responses, slot);
		if (rc != IG_OK) {
			fail(slot, (cmd.kind || !cmd.command[0]) ? IG_ADMIN_E_MALFORMED : IG_ADMIN_E_UNKNOWN_COMMAND, err.msg);
			continue;
		}
		const char *what = pl->sealed ? sealed_what(cmd.kind) : NULL;
		if (what) {
			char msg[IG_DECISION_MESSAGE_MAX];
			ig_plugin_sealed_message(pl, msg, sizeof msg, what);
			fail(slot, IG_ADMIN_E_SEALED, msg);
			pl->sealed_refused_admin++;
			continue;
		}
		switch (cmd.kind) {
		case IG_ADMIN_ENROLL: do_enroll(b, slot, &cmd); break;
		case IG_ADMIN_REVOKE: do_revoke(b, slot, &cmd); break;
		case IG_ADMIN_GET:
		case IG_ADMIN_LIST: do_read(b, slot, &cmd); break;
		case IG_ADMIN_JOIN_CODES: do_join_codes(b, slot, &cmd); break;
		case IG_ADMIN_CREDIT: do_credit(b, slot, &cmd); break;
		}
	}
	cJSON_Delete(root);
	b->outstanding--;
	batch_send_if_done(b);
	return MOSQ_ERR_SUCCESS;
}
