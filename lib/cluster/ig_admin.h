/*
 * ig_admin.h: the admin API wire format on $CONTROL/iotguard/v1.
 *
 * Why this exists: the plugin answers these commands and the CLI sends them;
 * both must agree byte for byte, so the parsing and building live here.
 * The shape follows Mosquitto's dynamic-security plugin, which operators
 * already know:
 *
 *   request  ($CONTROL/iotguard/v1):
 *     {"commands":[{"command":"enroll","id":"dev1","role":"device",
 *                   "pubkey":"<64 hex>","correlation":"c1"}, ...]}
 *   response ($CONTROL/iotguard/v1/response, to the requesting client only):
 *     {"responses":[{"command":"enroll","correlation":"c1","ok":true,
 *                    "index":7}, ...]}
 *   failures carry "ok":false,"error":"<code>","message":"<sentence>".
 *
 * Commands: enroll {id, role, pubkey, reenroll?, zone?} (a revoked id is enrolled
 * again only with "reenroll":true, and starts with nothing of the old key's:
 * no credit, no coins, no session keys); revoke {id, reason?}, whose
 * response also says what the revocation cancelled at the bank
 * ("cancelled_credit", "cancelled_coins");
 * list_identities {role?, status?, offset?, limit?}; get_identity {id};
 * create_join_codes {role, ttl? (s, default 86400), count? (1..100)} whose
 * response carries "codes":[...] and "expires_at" (Unix s), to the
 * requesting admin only: the codes are secrets, printed once;
 * credit {id, amount (1..1e9)} grants a collector coins, answered with
 * "index", "id" and the new "balance".
 *
 * What a command means is here too (lib/cluster/admin_rules.c), once for the broker
 * and the CLI's offline writer: the admission rule of every change against
 * the cluster state (ig_admin_admit), the record it appends
 * (ig_admin_record), and the JSON views of identities and list pages
 * (ig_admin_read). Two copies of these had drifted apart in their messages
 * and paging.
 */
#ifndef IG_ADMIN_H
#define IG_ADMIN_H

#include "ig_common.h"
#include "ig_record.h"
#include "ig_registry.h"

typedef struct ig_state ig_state;

#define IG_ADMIN_TOPIC "$CONTROL/iotguard/v1"
#define IG_ADMIN_RESPONSE_TOPIC "$CONTROL/iotguard/v1/response"
#define IG_ADMIN_MAX_COMMANDS 64
#define IG_ADMIN_MAX_PAYLOAD 65536
#define IG_ADMIN_CORRELATION_MAX 64
#define IG_ADMIN_LIST_MAX 1000

typedef enum ig_admin_kind {
	IG_ADMIN_ENROLL = 1,
	IG_ADMIN_REVOKE,
	IG_ADMIN_LIST,
	IG_ADMIN_GET,
	IG_ADMIN_JOIN_CODES,       /* create_join_codes {role, ttl?, count?} */
	IG_ADMIN_CREDIT,           /* credit {id, amount} */
} ig_admin_kind;

#define IG_CREDIT_MAX 1000000000u

#define IG_ADMIN_JOIN_CODES_MAX 100
#define IG_JOIN_CODE_TTL_DEFAULT 86400
#define IG_JOIN_CODE_TTL_MAX (30 * 86400)

/* "enroll", "revoke", "list_identities", "get_identity", "create_join_codes", "credit" */
const char *ig_admin_kind_name(ig_admin_kind k);

typedef struct ig_admin_cmd {
	ig_admin_kind kind;
	char command[32];                               /* as sent, echoed back even if unknown */
	char correlation[IG_ADMIN_CORRELATION_MAX + 1]; /* "" if absent */
	char id[IG_ID_MAX + 1];
	ig_role role;                                   /* enroll; list filter (NONE = all) */
	uint8_t pk[IG_PK_BYTES];
	char reason[IG_REASON_MAX + 1];
	int status_filter;                              /* list: -1 = all, else ig_id_status */
	uint32_t offset, limit;                         /* list */
	uint32_t ttl, count;                            /* create_join_codes */
	uint32_t amount;                                /* credit */
	bool reenroll;                                  /* enroll: a revoked id may be enrolled again */
	char zone[IG_ID_MAX + 1];                       /* enroll: its zone (an id), "" for none */
} ig_admin_cmd;

/* Error codes sent in "error". */
#define IG_ADMIN_E_MALFORMED "malformed"
#define IG_ADMIN_E_UNKNOWN_COMMAND "unknown_command"
#define IG_ADMIN_E_FORBIDDEN "forbidden"
#define IG_ADMIN_E_EXISTS "already_enrolled"
#define IG_ADMIN_E_NOT_FOUND "not_found"
#define IG_ADMIN_E_ALREADY_REVOKED "already_revoked"
#define IG_ADMIN_E_STORAGE "storage_failed"
#define IG_ADMIN_E_SEALED "sealed"          /* a change while the cluster head is sealed (no key to append) */
#define IG_ADMIN_E_CONFLICT "conflict"      /* another broker changed the shared ledger first; final */

/* Parses one element of "commands". On failure fills err with a sentence
 * and returns IG_ERR_INVAL; cmd->command and cmd->correlation are still
 * filled when present so the reply can be matched. */
struct cJSON;
int ig_admin_parse_command(const struct cJSON *obj, ig_admin_cmd *cmd, ig_error *err);

/* Builds a request payload with one command (for the CLI). Caller frees. */
char *ig_admin_build_request(const ig_admin_cmd *cmd);

/* True for the roles a join code may enrol (device, analyst): anyone holding
 * a code can use it, so monitors and admins are enrolled by key. */
bool ig_admin_join_role_allowed(ig_role role);

/* ---- what commands mean (lib/cluster/admin_rules.c) ---------------------------- */

/* Why a command was refused: an error code above and a sentence that says
 * what to do. */
typedef struct ig_admin_refusal {
	const char *code;
	char message[320];
} ig_admin_refusal;

/* The admission rule of a parsed command against the cluster state as it
 * stands (docs/PROTOCOL.md "Admin API", Semantics): enroll (already_enrolled,
 * already_revoked without reenroll), revoke (not_found, already_revoked,
 * already_enrolled while the enrolment is not durable), credit (not_found
 * unless an active device, amount 1..IG_CREDIT_MAX) and create_join_codes
 * (malformed role, ttl or count); get_identity refuses an id never enrolled
 * (not_found); list_identities is always admitted. True when the command
 * may go ahead; else why says why. */
bool ig_admin_admit(ig_admin_refusal *why, const ig_state *st, const ig_admin_cmd *cmd);

/* Why an admitted enroll, revoke, credit or create_join_codes changed
 * nothing: its record was certainly not written. status is what
 * ig_ledger_submit returned or the append's completion status (anything
 * but IG_OK and IG_ERR_UNKNOWN). IG_ERR_CONFLICT (another broker's record
 * made this one obsolete on a shared ledger) is "conflict", final: re-read
 * and retry; everything else is "storage_failed", with the reason
 * (ig_decision_ledger_refusal: a full disk, the shared ledger's database
 * unreachable, ...) and what to do. A revoke's message says the revocation
 * stays in force on this broker (fail closed) until it restarts. */
void ig_admin_not_written(ig_admin_refusal *why, ig_admin_kind kind, int status);

/* The body of the record an admitted enroll, revoke or credit appends, with
 * "by" naming who made the change; *type gets its record type. Returns the
 * body length, or a negative IG_ERR_* (another command, or cap too small). */
int ig_admin_record(uint8_t *body, size_t cap, uint16_t *type, const ig_admin_cmd *cmd, const char *by);

/* Whether id has a live connection, for the identity view's "connected". */
typedef bool (*ig_admin_connected_fn)(void *ctx, const char *id);

/* The identity object of docs/PROTOCOL.md "Admin API": id, role, status,
 * pubkey, enrolled_index, enrolled_ts, revoked_index when revoked, and
 * connected when connected is not NULL (the offline CLI cannot know). NULL
 * when out of memory. */
struct cJSON *ig_admin_identity_json(const ig_identity *idn, ig_admin_connected_fn connected, void *ctx);

/* Answers an admitted get_identity ("identity") or list_identities
 * (each identity as ig_admin_identity_json makes it, with "zone" when its
 * enrolment named one)
 * ("total", "offset", "identities": the identities matching the role and
 * status filters, in enrolment order, from offset on, at most limit of
 * them; limit 0 means all) by adding its fields to resp. IG_OK, IG_ERR_INVAL
 * for another command, IG_ERR_NOTFOUND for an id never enrolled, or
 * IG_ERR_NOMEM (resp may then hold some of the fields). */
int ig_admin_read(struct cJSON *resp, const ig_state *st, const ig_admin_cmd *cmd,
                  ig_admin_connected_fn connected, void *ctx);

#endif
