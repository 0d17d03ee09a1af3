/*
 * admin.c: parsing and building admin API commands.
 *
 * Why this exists: the plugin trusts nothing in a $CONTROL request until it
 * has passed through ig_admin_parse_command, and the CLI builds requests with
 * ig_admin_build_request, so the two sides cannot disagree about the format.
 * Parsing is strict (unknown or duplicate fields are errors) because a typo
 * in an admin command ("reson") should be reported, not silently ignored.
 */
#include "ig_admin.h"
#include "ig_json.h"
#include "ig_registry.h"

#include <cJSON.h>
#include <stdio.h>
#include <string.h>

#define LIST_DEFAULT_LIMIT 100

static const char *const kind_names[] = {
	[IG_ADMIN_ENROLL] = "enroll",
	[IG_ADMIN_REVOKE] = "revoke",
	[IG_ADMIN_LIST] = "list_identities",
	[IG_ADMIN_GET] = "get_identity",
	[IG_ADMIN_JOIN_CODES] = "create_join_codes",
	[IG_ADMIN_CREDIT] = "credit",
};

/* Fields each command accepts besides "command" and "correlation". */
static const char *const kind_fields[][6] = {
	[IG_ADMIN_ENROLL] = {"id", "role", "pubkey", "reenroll", "zone", NULL},
	[IG_ADMIN_REVOKE] = {"id", "reason", NULL},
	[IG_ADMIN_LIST] = {"role", "status", "offset", "limit", NULL},
	[IG_ADMIN_GET] = {"id", NULL},
	[IG_ADMIN_JOIN_CODES] = {"role", "ttl", "count", NULL},
	[IG_ADMIN_CREDIT] = {"id", "amount", NULL},
};

static const char *const status_names[] = {
	[IG_ID_PENDING] = "pending",
	[IG_ID_ACTIVE] = "active",
	[IG_ID_REVOKED] = "revoked",
};

const char *ig_admin_kind_name(ig_admin_kind k)
{
	if ((int)k < IG_ADMIN_ENROLL || (int)k > IG_ADMIN_CREDIT)
		return "unknown";
	return kind_names[k];
}

static ig_admin_kind kind_parse(const char *name)
{
	for (int k = IG_ADMIN_ENROLL; k <= IG_ADMIN_CREDIT; k++)
		if (strcmp(name, kind_names[k]) == 0)
			return (ig_admin_kind)k;
	return 0;
}

static bool field_allowed(ig_admin_kind k, const char *name)
{
	if (strcmp(name, "command") == 0 || strcmp(name, "correlation") == 0)
		return true;
	for (const char *const *f = kind_fields[k]; *f; f++)
		if (strcmp(name, *f) == 0)
			return true;
	return false;
}

static const cJSON *field(const cJSON *obj, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(obj, name);
}

/* The string value of an optional field: NULL if absent, or an error if it is
 * present but not a string. */
static int optional_string(const cJSON *obj, const char *name, const char *cmd_name, const char **out, ig_error *err)
{
	const cJSON *f = field(obj, name);
	*out = NULL;
	if (!f)
		return IG_OK;
	if (!cJSON_IsString(f) || !f->valuestring)
		return ig_error_set(err, IG_ERR_INVAL, "%s: \"%s\" must be a string", cmd_name, name);
	*out = f->valuestring;
	return IG_OK;
}

static int parse_id(const cJSON *obj, const char *cmd_name, char *out, ig_error *err)
{
	const char *s;
	int rc = optional_string(obj, "id", cmd_name, &s, err);
	if (rc != IG_OK)
		return rc;
	if (!s)
		return ig_error_set(err, IG_ERR_INVAL, "%s: \"id\" is missing; give the identity id", cmd_name);
	size_t len = strlen(s);
	if (!ig_id_valid(s, len))
		return ig_error_set(err, IG_ERR_INVAL, "%s: \"id\" must be 1 to %d characters of A-Z a-z 0-9 _ . -",
		                    cmd_name, IG_ID_MAX);
	memcpy(out, s, len + 1);
	return IG_OK;
}

static int parse_role(const cJSON *obj, const char *cmd_name, bool required, ig_role *out, ig_error *err)
{
	const char *s;
	int rc = optional_string(obj, "role", cmd_name, &s, err);
	if (rc != IG_OK)
		return rc;
	if (!s) {
		if (required)
			return ig_error_set(err, IG_ERR_INVAL, "%s: \"role\" is missing; use device, analyst, monitor, "
			                    "admin, witness or bridge", cmd_name);
		return IG_OK;
	}
	*out = ig_role_parse(s);
	if (*out == IG_ROLE_NONE)
		return ig_error_set(err, IG_ERR_INVAL, "%s: unknown role \"%.32s\"; use device, analyst, monitor, "
		                    "admin, witness or bridge", cmd_name, s);
	return IG_OK;
}

/* A JSON number that is a whole number in [min, max] (max <= UINT32_MAX). */
static int parse_uint(const cJSON *obj, const char *name, const char *cmd_name, uint32_t min, uint32_t max,
                      uint32_t *out, ig_error *err)
{
	const cJSON *f = field(obj, name);
	if (!f)
		return IG_OK;
	uint64_t v;
	if (ig_json_uint(&v, f, min, max) != IG_OK)
		return ig_error_set(err, IG_ERR_INVAL, "%s: \"%s\" must be a whole number from %u to %u",
		                    cmd_name, name, min, max);
	*out = (uint32_t)v;
	return IG_OK;
}

static int parse_enroll(const cJSON *obj, ig_admin_cmd *cmd, ig_error *err)
{
	int rc = parse_id(obj, "enroll", cmd->id, err);
	if (rc == IG_OK)
		rc = parse_role(obj, "enroll", true, &cmd->role, err);
	if (rc != IG_OK)
		return rc;
	const char *hex;
	rc = optional_string(obj, "pubkey", "enroll", &hex, err);
	if (rc != IG_OK)
		return rc;
	if (!hex)
		return ig_error_set(err, IG_ERR_INVAL, "enroll: \"pubkey\" is missing; give the 64-hex public key "
		                    "printed by `iotguard keygen`");
	if (ig_hex_decode(cmd->pk, IG_PK_BYTES, hex, strlen(hex)) != IG_OK)
		return ig_error_set(err, IG_ERR_INVAL, "enroll: \"pubkey\" must be exactly 64 hex characters (an "
		                    "Ed25519 public key as printed by `iotguard keygen`)");
	const cJSON *re = field(obj, "reenroll");
	if (re && !cJSON_IsBool(re))
		return ig_error_set(err, IG_ERR_INVAL, "enroll: \"reenroll\" must be true or false");
	cmd->reenroll = cJSON_IsTrue(re);
	const char *zone;
	rc = optional_string(obj, "zone", "enroll", &zone, err);
	if (rc != IG_OK || !zone)
		return rc;
	if (!ig_id_valid(zone, strlen(zone)))
		return ig_error_set(err, IG_ERR_INVAL, "enroll: \"zone\" must be 1..64 characters of A-Z a-z 0-9 _ . - "
		                    "(a name for where the device stands, e.g. \"building-2\")");
	snprintf(cmd->zone, sizeof cmd->zone, "%s", zone);
	return IG_OK;
}

static int parse_revoke(const cJSON *obj, ig_admin_cmd *cmd, ig_error *err)
{
	int rc = parse_id(obj, "revoke", cmd->id, err);
	if (rc != IG_OK)
		return rc;
	const char *reason;
	rc = optional_string(obj, "reason", "revoke", &reason, err);
	if (rc != IG_OK || !reason)
		return rc;
	size_t len = strlen(reason);
	if (len > IG_REASON_MAX)
		return ig_error_set(err, IG_ERR_INVAL, "revoke: \"reason\" is %zu bytes; keep it to %d", len,
		                    IG_REASON_MAX);
	/* It is written into the ledger and shown by `iotguard show`, so no
	 * control characters that could forge lines on a terminal. */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)reason[i] < 0x20 || (unsigned char)reason[i] > 0x7e)
			return ig_error_set(err, IG_ERR_INVAL, "revoke: \"reason\" must be printable ASCII "
			                    "(byte %zu is not)", i);
	memcpy(cmd->reason, reason, len + 1);
	return IG_OK;
}

static int parse_list(const cJSON *obj, ig_admin_cmd *cmd, ig_error *err)
{
	const char *name = "list_identities";
	int rc = parse_role(obj, name, false, &cmd->role, err);
	if (rc != IG_OK)
		return rc;
	const char *status;
	rc = optional_string(obj, "status", name, &status, err);
	if (rc != IG_OK)
		return rc;
	if (status) {
		cmd->status_filter = -1;
		for (int s = IG_ID_PENDING; s <= IG_ID_REVOKED; s++)
			if (strcmp(status, status_names[s]) == 0)
				cmd->status_filter = s;
		if (cmd->status_filter < 0)
			return ig_error_set(err, IG_ERR_INVAL, "%s: \"status\" must be \"active\", \"revoked\" or "
			                    "\"pending\"", name);
	}
	rc = parse_uint(obj, "offset", name, 0, UINT32_MAX, &cmd->offset, err);
	if (rc == IG_OK)
		rc = parse_uint(obj, "limit", name, 1, IG_ADMIN_LIST_MAX, &cmd->limit, err);
	return rc;
}

bool ig_admin_join_role_allowed(ig_role role)
{
	return role == IG_ROLE_DEVICE || role == IG_ROLE_ANALYST;
}

static int parse_join_codes(const cJSON *obj, ig_admin_cmd *cmd, ig_error *err)
{
	const char *name = cmd->command;
	cmd->ttl = IG_JOIN_CODE_TTL_DEFAULT;
	cmd->count = 1;
	int rc = parse_role(obj, name, true, &cmd->role, err);
	if (rc == IG_OK && !ig_admin_join_role_allowed(cmd->role))
		rc = ig_error_set(err, IG_ERR_INVAL, "%s: join codes are only for roles device and analyst; "
		                  "enroll %ss by public key", name, ig_role_name(cmd->role));
	if (rc == IG_OK)
		rc = parse_uint(obj, "ttl", name, 60, IG_JOIN_CODE_TTL_MAX, &cmd->ttl, err);
	if (rc == IG_OK)
		rc = parse_uint(obj, "count", name, 1, IG_ADMIN_JOIN_CODES_MAX, &cmd->count, err);
	return rc;
}

static int parse_credit(const cJSON *obj, ig_admin_cmd *cmd, ig_error *err)
{
	int rc = parse_id(obj, cmd->command, cmd->id, err);
	if (rc != IG_OK)
		return rc;
	if (!field(obj, "amount"))
		return ig_error_set(err, IG_ERR_INVAL, "%s: \"amount\" is required", cmd->command);
	return parse_uint(obj, "amount", cmd->command, 1, IG_CREDIT_MAX, &cmd->amount, err);
}

int ig_admin_parse_command(const cJSON *obj, ig_admin_cmd *cmd, ig_error *err)
{
	memset(cmd, 0, sizeof *cmd);
	cmd->role = IG_ROLE_NONE;
	cmd->status_filter = -1;
	cmd->limit = LIST_DEFAULT_LIMIT;

	if (!cJSON_IsObject(obj))
		return ig_error_set(err, IG_ERR_INVAL, "each element of \"commands\" must be a JSON object "
		                    "{\"command\":...}");

	/* Echo what we can first, so even a rejected command can be matched
	 * to its reply. */
	const cJSON *command = field(obj, "command");
	const cJSON *correlation = field(obj, "correlation");
	if (cJSON_IsString(command) && command->valuestring)
		snprintf(cmd->command, sizeof cmd->command, "%s", command->valuestring);
	bool correlation_ok = !correlation ||
	                      (cJSON_IsString(correlation) && correlation->valuestring &&
	                       strlen(correlation->valuestring) <= IG_ADMIN_CORRELATION_MAX);
	if (correlation && correlation_ok)
		memcpy(cmd->correlation, correlation->valuestring, strlen(correlation->valuestring) + 1);

	if (!command)
		return ig_error_set(err, IG_ERR_INVAL, "\"command\" is missing; use enroll, revoke, get_identity or "
		                    "list_identities");
	if (!cJSON_IsString(command) || !command->valuestring)
		return ig_error_set(err, IG_ERR_INVAL, "\"command\" must be a string");
	cmd->kind = kind_parse(command->valuestring);
	if (!cmd->kind)
		return ig_error_set(err, IG_ERR_INVAL, "unknown command \"%.31s\"; use enroll, revoke, get_identity "
		                    "or list_identities", command->valuestring);
	const char *name = kind_names[cmd->kind];
	if (!correlation_ok)
		return ig_error_set(err, IG_ERR_INVAL, "%s: \"correlation\" must be a string of at most %d bytes",
		                    name, IG_ADMIN_CORRELATION_MAX);

	for (const cJSON *a = obj->child; a; a = a->next) {
		if (!field_allowed(cmd->kind, a->string))
			return ig_error_set(err, IG_ERR_INVAL, "%s: unknown field \"%.32s\"; remove it", name, a->string);
		for (const cJSON *b = a->next; b; b = b->next)
			if (strcmp(a->string, b->string) == 0)
				return ig_error_set(err, IG_ERR_INVAL, "%s: field \"%.32s\" appears twice; keep one",
				                    name, a->string);
	}

	switch (cmd->kind) {
	case IG_ADMIN_ENROLL: return parse_enroll(obj, cmd, err);
	case IG_ADMIN_REVOKE: return parse_revoke(obj, cmd, err);
	case IG_ADMIN_LIST: return parse_list(obj, cmd, err);
	case IG_ADMIN_GET: return parse_id(obj, name, cmd->id, err);
	case IG_ADMIN_JOIN_CODES: return parse_join_codes(obj, cmd, err);
	case IG_ADMIN_CREDIT: return parse_credit(obj, cmd, err);
	}
	return IG_ERR_INVAL;
}

/* ---- building (CLI side) ------------------------------------------------ */

static bool add_fields(cJSON *o, const ig_admin_cmd *cmd)
{
	bool needs_id = cmd->kind != IG_ADMIN_LIST && cmd->kind != IG_ADMIN_JOIN_CODES;
	if (needs_id) {
		if (!ig_id_valid(cmd->id, strnlen(cmd->id, sizeof cmd->id)) || !cJSON_AddStringToObject(o, "id", cmd->id))
			return false;
	}
	switch (cmd->kind) {
	case IG_ADMIN_ENROLL: {
		if (cmd->role == IG_ROLE_NONE || strcmp(ig_role_name(cmd->role), "none") == 0)
			return false;
		char hex[2 * IG_PK_BYTES + 1];
		ig_hex_encode(hex, cmd->pk, IG_PK_BYTES);
		return cJSON_AddStringToObject(o, "role", ig_role_name(cmd->role)) &&
		       cJSON_AddStringToObject(o, "pubkey", hex) &&
		       (!cmd->reenroll || cJSON_AddTrueToObject(o, "reenroll")) &&
		       (!cmd->zone[0] || cJSON_AddStringToObject(o, "zone", cmd->zone));
	}
	case IG_ADMIN_REVOKE:
		return !cmd->reason[0] || cJSON_AddStringToObject(o, "reason", cmd->reason);
	case IG_ADMIN_LIST:
		if (cmd->role != IG_ROLE_NONE && !cJSON_AddStringToObject(o, "role", ig_role_name(cmd->role)))
			return false;
		if (cmd->status_filter >= IG_ID_PENDING && cmd->status_filter <= IG_ID_REVOKED &&
		    !cJSON_AddStringToObject(o, "status", status_names[cmd->status_filter]))
			return false;
		if (cmd->offset && !cJSON_AddNumberToObject(o, "offset", cmd->offset))
			return false;
		return !cmd->limit || cJSON_AddNumberToObject(o, "limit", cmd->limit);
	case IG_ADMIN_GET:
		return true;
	case IG_ADMIN_CREDIT:
		return cmd->amount > 0 && cJSON_AddNumberToObject(o, "amount", cmd->amount);
	case IG_ADMIN_JOIN_CODES:
		return cmd->role != IG_ROLE_NONE && cJSON_AddStringToObject(o, "role", ig_role_name(cmd->role)) &&
		       (!cmd->ttl || cJSON_AddNumberToObject(o, "ttl", cmd->ttl)) &&
		       (!cmd->count || cJSON_AddNumberToObject(o, "count", cmd->count));
	}
	return false;
}

char *ig_admin_build_request(const ig_admin_cmd *cmd)
{
	if (!cmd || (int)cmd->kind < IG_ADMIN_ENROLL || (int)cmd->kind > IG_ADMIN_CREDIT)
		return NULL;
	cJSON *root = cJSON_CreateObject();
	cJSON *cmds = root ? cJSON_AddArrayToObject(root, "commands") : NULL;
	cJSON *o = cJSON_CreateObject();
	char *out = NULL;
	if (!cmds || !o) {
		cJSON_Delete(o);
		goto done;
	}
	cJSON_AddItemToArray(cmds, o);
	if (!cJSON_AddStringToObject(o, "command", kind_names[cmd->kind]) || !add_fields(o, cmd))
		goto done;
	size_t clen = strnlen(cmd->correlation, sizeof cmd->correlation);
	if (clen > IG_ADMIN_CORRELATION_MAX)
		goto done;
	if (clen && !cJSON_AddStringToObject(o, "correlation", cmd->correlation))
		goto done;
	out = cJSON_PrintUnformatted(root);
done:
	cJSON_Delete(root);
	return out;
}
