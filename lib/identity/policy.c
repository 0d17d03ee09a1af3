/*
 * policy.c: role policy loading and the per-role access decision.
 *
 * Why this exists: the broker asks "may this identity touch this topic" for
 * every SUBSCRIBE and every delivered message. So all the expensive work
 * (JSON parsing, validation, splitting patterns into levels) happens once at
 * load time, and a check is only the topic matcher (topic.c) walking the
 * compiled levels: no allocation, no copies, no repeated strlen.
 *
 * The same file carries the key service's two role rules ("m2m": who may
 * share a session key with whom; "attestation": which agent measurements a
 * role may run), compiled to a bit mask and byte arrays at load time;
 * and the witnesses whose cosignatures the cluster head collects.
 */
#include "ig_policy.h"
#include "ig_cosig.h"
#include "ig_json.h"
#include "ig_topic.h"

#include <cJSON.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLICY_FILE_MAX (1u << 20)

/* The two placeholder slots a compiled pattern level may name. */
enum { SLOT_CLUSTER, SLOT_ID };

typedef struct pattern {
	ig_topic_level *levels;
	uint32_t count;
	char *text;           /* owns the bytes level.text points into */
} pattern;

enum { LIST_PUBLISH, LIST_SUBSCRIBE, LIST_RETAIN, LIST_COUNT };
static const char *const list_names[LIST_COUNT] = {"publish", "subscribe", "retain"};

typedef struct pattern_list {
	pattern *items;
	size_t count;
} pattern_list;

/* Allowed agent measurements for one role; present = the policy has a
 * list for the role (possibly empty, which allows nothing). */
typedef struct measurement_list {
	uint8_t (*items)[32];
	size_t count;
	bool present;
} measurement_list;

struct ig_policy {
	pattern_list lists[IG_ROLE_COUNT][LIST_COUNT];
	uint8_t m2m[IG_ROLE_COUNT];                 /* bit r: this role lists role r */
	measurement_list attestation[IG_ROLE_COUNT];
	uint32_t max_token_ttl[IG_ROLE_COUNT];      /* 0: not set, the plugin option applies */
	bool single_use[IG_ROLE_COUNT];             /* a token connects once (docs/PROTOCOL.md) */
	uint64_t generation;                        /* unique per loaded policy (ig_policy_generation) */
	ig_cosig_vkey *witness_keys;                /* "witnesses".keys, parsed; NULL when none */
	size_t witness_count;
	size_t witness_quorum;
	uint32_t custody_roles;                     /* "custody".holder_roles as 1u << role; 0: not set */
	bool kp;                                    /* "predistribution" present */
	uint32_t kp_pool, kp_ring;                  /* P, m */
	uint8_t kp_q;
};

/* ---- the access decision (hot path) -------------------------------------- */

static void placeholders_init(ig_topic_slot ph[IG_TOPIC_SLOTS], const char *cluster, const char *id)
{
	size_t clen = cluster ? strnlen(cluster, IG_CLUSTER_MAX + 1) : 0;
	size_t ilen = id ? strnlen(id, IG_ID_MAX + 1) : 0;
	ph[SLOT_CLUSTER] = (ig_topic_slot){cluster ? cluster : "", (uint32_t)clen,
	                                   clen <= IG_CLUSTER_MAX && ig_id_valid(cluster, clen)};
	ph[SLOT_ID] = (ig_topic_slot){id ? id : "", (uint32_t)ilen,
	                              ilen <= IG_ID_MAX && ig_id_valid(id, ilen)};
}

bool ig_policy_allows(const ig_policy *p, ig_role role, ig_access access,
                      const char *cluster, const char *id, const char *topic)
{
	if (!p || (int)role <= IG_ROLE_NONE || (int)role >= IG_ROLE_COUNT)
		return false;

	int list;
	bool subscribe = false;
	switch (access) {
	case IG_ACCESS_PUBLISH: list = LIST_PUBLISH; break;
	case IG_ACCESS_RETAIN: list = LIST_RETAIN; break;
	case IG_ACCESS_READ: list = LIST_SUBSCRIBE; break;
	case IG_ACCESS_SUBSCRIBE: list = LIST_SUBSCRIBE; subscribe = true; break;
	default: return false;
	}
	const pattern_list *pl = &p->lists[role][list];
	if (pl->count == 0)
		return false;

	size_t len = subscribe ? ig_topic_filter_length(topic) : ig_topic_length(topic);
	if (len == 0)
		return false;

	ig_topic_slot ph[IG_TOPIC_SLOTS];
	placeholders_init(ph, cluster, id);
	for (size_t k = 0; k < pl->count; k++) {
		ig_topic_cursor rule, subject;
		ig_topic_cursor_levels(&rule, pl->items[k].levels, pl->items[k].count, ph);
		ig_topic_cursor_text(&subject, topic, len);
		if (subscribe ? ig_topic_cursor_contains(&rule, &subject)
		              : ig_topic_cursor_matches(&rule, &subject))
			return true;
	}
	return false;
}

/* ---- key service: pairs and measurements ---------------------------------- */

static bool role_valid(ig_role role)
{
	return (int)role > IG_ROLE_NONE && (int)role < IG_ROLE_COUNT;
}

/* Both sides must list each other: a key is shared, so neither role's
 * policy alone may force the other into a pairing it did not allow. */
uint32_t ig_policy_max_ttl(const ig_policy *p, ig_role role)
{
	if (!p || (int)role <= IG_ROLE_NONE || (int)role >= IG_ROLE_COUNT)
		return 0;
	return p->max_token_ttl[role];
}

uint32_t ig_policy_ttl_limit(ig_role role)
{
	return role == IG_ROLE_BRIDGE ? IG_POLICY_MAX_TTL_BRIDGE : IG_POLICY_MAX_TTL;
}

bool ig_policy_single_use(const ig_policy *p, ig_role role)
{
	if (!p || (int)role <= IG_ROLE_NONE || (int)role >= IG_ROLE_COUNT)
		return false;
	return p->single_use[role];
}

bool ig_policy_pair_allowed(const ig_policy *p, ig_role a, ig_role b)
{
	if (!p || !role_valid(a) || !role_valid(b))
		return false;
	return (p->m2m[a] & (1u << b)) && (p->m2m[b] & (1u << a));
}

int ig_policy_measurement_allowed(const ig_policy *p, ig_role role, const uint8_t m[32])
{
	if (!p || !role_valid(role) || !m)
		return 0;
	const measurement_list *ml = &p->attestation[role];
	if (!ml->present)
		return 2;
	for (size_t i = 0; i < ml->count; i++)
		if (memcmp(ml->items[i], m, 32) == 0)
			return 1;
	return 0;
}

uint32_t ig_policy_custody_holder_roles(const ig_policy *p)
{
	return p && p->custody_roles ? p->custody_roles : 1u << IG_ROLE_DEVICE;
}

bool ig_policy_kp(const ig_policy *p, uint32_t *pool, uint32_t *ring, uint8_t *q)
{
	if (!p || !p->kp)
		return false;
	if (pool)
		*pool = p->kp_pool;
	if (ring)
		*ring = p->kp_ring;
	if (q)
		*q = p->kp_q;
	return true;
}

size_t ig_policy_witnesses(const ig_policy *p, const ig_cosig_vkey **keys, size_t *quorum)
{
	if (keys)
		*keys = p ? p->witness_keys : NULL;
	if (quorum)
		*quorum = p ? p->witness_quorum : 0;
	return p ? p->witness_count : 0;
}

/* ---- loading ------------------------------------------------------------- */

static void pattern_list_free(pattern_list *pl)
{
	for (size_t i = 0; i < pl->count; i++) {
		free(pl->items[i].levels);
		free(pl->items[i].text);
	}
	free(pl->items);
	pl->items = NULL;
	pl->count = 0;
}

void ig_policy_free(ig_policy *p)
{
	if (!p)
		return;
	for (int r = 0; r < IG_ROLE_COUNT; r++) {
		for (int l = 0; l < LIST_COUNT; l++)
			pattern_list_free(&p->lists[r][l]);
		free(p->attestation[r].items);
	}
	free(p->witness_keys);
	free(p);
}

/* Validates one pattern string and splits it into levels. `where` names the
 * entry for messages, e.g. "roles.device.publish[2]". */
static int pattern_compile(const char *src, const char *where, pattern *out, ig_error *err)
{
	size_t len = strlen(src);
	if (len == 0)
		return ig_error_set(err, IG_ERR_INVAL, "%s: empty pattern; write an MQTT topic filter such as "
		                    "\"iotguard/{cluster}/dev/{id}/status\"", where);
	if (len > IG_TOPIC_LEN_MAX)
		return ig_error_set(err, IG_ERR_INVAL, "%s: pattern is %zu bytes; MQTT filters are at most %u bytes",
		                    where, len, IG_TOPIC_LEN_MAX);
	if (ig_topic_filter_length(src) != len)
		return ig_error_set(err, IG_ERR_INVAL, "%s: '%.80s' is not a valid MQTT filter; '+' and '#' must "
		                    "each fill a whole level and '#' must be the last level", where, src);

	uint32_t count = 1;
	for (size_t i = 0; i < len; i++)
		count += src[i] == '/';

	out->text = malloc(len + 1);
	out->levels = calloc(count, sizeof *out->levels);
	out->count = count;
	if (!out->text || !out->levels) {
		free(out->text);
		free(out->levels);
		memset(out, 0, sizeof *out);
		return ig_error_set(err, IG_ERR_NOMEM, "%s: out of memory compiling pattern", where);
	}
	memcpy(out->text, src, len + 1);

	ig_topic_cursor c;
	ig_topic_cursor_text(&c, out->text, len);
	ig_topic_level l;
	for (uint32_t n = 0; ig_topic_cursor_next(&c, &l); n++) {
		if (l.kind == IG_TOPIC_LEVEL_LITERAL && l.len == 9 && memcmp(l.text, "{cluster}", 9) == 0) {
			l.kind = IG_TOPIC_LEVEL_SLOT;
			l.slot = SLOT_CLUSTER;
		} else if (l.kind == IG_TOPIC_LEVEL_LITERAL && l.len == 4 && memcmp(l.text, "{id}", 4) == 0) {
			l.kind = IG_TOPIC_LEVEL_SLOT;
			l.slot = SLOT_ID;
		} else if (l.kind == IG_TOPIC_LEVEL_LITERAL && (memchr(l.text, '{', l.len) || memchr(l.text, '}', l.len))) {
			const char *name = memmem(l.text, l.len, "{cluster}", 9) ? "{cluster}"
			                 : memmem(l.text, l.len, "{id}", 4) ? "{id}" : NULL;
			int lvl_len = l.len > 80 ? 80 : (int)l.len;
			if (name)
				ig_error_set(err, IG_ERR_INVAL, "%s: '%s' must be a whole topic level (found '%.*s'); "
				             "write it between slashes", where, name, lvl_len, l.text);
			else
				ig_error_set(err, IG_ERR_INVAL, "%s: level '%.*s' has a brace but is not a placeholder; "
				             "only {cluster} and {id} are allowed, each as a whole level",
				             where, lvl_len, l.text);
			free(out->text);
			free(out->levels);
			memset(out, 0, sizeof *out);
			return IG_ERR_INVAL;
		}
		out->levels[n] = l;
	}
	return IG_OK;
}

/* Objects from cJSON may carry the same key twice; the second would be
 * silently ignored, so a policy with duplicates is refused. */
static int check_duplicates(const cJSON *obj, const char *where, ig_error *err)
{
	for (const cJSON *a = obj->child; a; a = a->next)
		for (const cJSON *b = a->next; b; b = b->next)
			if (strcmp(a->string, b->string) == 0)
				return ig_error_set(err, IG_ERR_INVAL, "%s: key \"%.64s\" appears twice; keep one",
				                    where, a->string);
	return IG_OK;
}

static int parse_list(const cJSON *arr, ig_role role, int list, pattern_list *out, ig_error *err)
{
	char where[96];
	snprintf(where, sizeof where, "roles.%s.%s", ig_role_name(role), list_names[list]);
	if (!cJSON_IsArray(arr))
		return ig_error_set(err, IG_ERR_INVAL, "%s: must be an array of topic filter strings", where);
	int n = cJSON_GetArraySize(arr);
	if (n == 0)
		return IG_OK;
	out->items = calloc((size_t)n, sizeof *out->items);
	if (!out->items)
		return ig_error_set(err, IG_ERR_NOMEM, "%s: out of memory", where);
	int i = 0;
	for (const cJSON *e = arr->child; e; e = e->next, i++) {
		char entry[112];
		snprintf(entry, sizeof entry, "%s[%d]", where, i);
		if (!cJSON_IsString(e) || !e->valuestring)
			return ig_error_set(err, IG_ERR_INVAL, "%s: must be a string (an MQTT topic filter)", entry);
		int rc = pattern_compile(e->valuestring, entry, &out->items[i], err);
		if (rc != IG_OK)
			return rc;
		out->count++;
	}
	return IG_OK;
}

static int parse_role(const cJSON *obj, ig_role role, ig_policy *p, ig_error *err)
{
	char where[64];
	snprintf(where, sizeof where, "roles.%s", ig_role_name(role));
	if (!cJSON_IsObject(obj))
		return ig_error_set(err, IG_ERR_INVAL, "%s: must be an object with \"publish\", \"subscribe\" "
		                    "and \"retain\" arrays", where);
	int rc = check_duplicates(obj, where, err);
	if (rc != IG_OK)
		return rc;
	for (const cJSON *item = obj->child; item; item = item->next) {
		if (strcmp(item->string, "max_token_ttl") == 0) {
			uint64_t v;
			uint32_t limit = ig_policy_ttl_limit(role);
			if (ig_json_uint(&v, item, 1, limit) != IG_OK)
				return ig_error_set(err, IG_ERR_INVAL, "%s.max_token_ttl: must be a whole number of seconds "
				                    "from 1 to %u", where, (unsigned)limit);
			p->max_token_ttl[role] = (uint32_t)v;
			continue;
		}
		if (strcmp(item->string, "single_use") == 0) {
			if (!cJSON_IsBool(item))
				return ig_error_set(err, IG_ERR_INVAL, "%s.single_use: must be true or false", where);
			if (role == IG_ROLE_BRIDGE && cJSON_IsTrue(item))
				return ig_error_set(err, IG_ERR_INVAL, "%s.single_use: must be false: a bridge presents the "
				                    "same token (remote_password in mosquitto.conf) at every reconnect; "
				                    "revoke the bridge identity to end it", where);
			p->single_use[role] = cJSON_IsTrue(item);
			continue;
		}
		int list = -1;
		for (int l = 0; l < LIST_COUNT; l++)
			if (strcmp(item->string, list_names[l]) == 0)
				list = l;
		if (list < 0)
			return ig_error_set(err, IG_ERR_INVAL, "%s: unknown key \"%.64s\"; allowed keys are "
			                    "\"publish\", \"subscribe\", \"retain\", \"max_token_ttl\" and \"single_use\"", where,
			                    item->string);
		rc = parse_list(item, role, list, &p->lists[role][list], err);
		if (rc != IG_OK)
			return rc;
	}
	return IG_OK;
}

/* "m2m": {"device": ["device"], ...}: which roles each role may share a
 * session key with. */
static int parse_m2m(const cJSON *obj, ig_policy *p, ig_error *err)
{
	if (!cJSON_IsObject(obj))
		return ig_error_set(err, IG_ERR_INVAL, "m2m: must be an object mapping a role to the roles it may "
		                    "key with, e.g. {\"device\": [\"device\"]}");
	int rc = check_duplicates(obj, "m2m", err);
	if (rc != IG_OK)
		return rc;
	for (const cJSON *item = obj->child; item; item = item->next) {
		ig_role role = ig_role_parse(item->string);
		if (role == IG_ROLE_NONE)
			return ig_error_set(err, IG_ERR_INVAL, "m2m: unknown role \"%.64s\"; roles are device, analyst, "
			                    "monitor, admin, witness and bridge", item->string);
		if (!cJSON_IsArray(item))
			return ig_error_set(err, IG_ERR_INVAL, "m2m.%s: must be an array of role names", ig_role_name(role));
		int i = 0;
		for (const cJSON *e = item->child; e; e = e->next, i++) {
			if (!cJSON_IsString(e) || !e->valuestring)
				return ig_error_set(err, IG_ERR_INVAL, "m2m.%s[%d]: must be a role name string",
				                    ig_role_name(role), i);
			ig_role peer = ig_role_parse(e->valuestring);
			if (peer == IG_ROLE_NONE)
				return ig_error_set(err, IG_ERR_INVAL, "m2m.%s[%d]: unknown role \"%.64s\"; roles are device, "
				                    "analyst, monitor, admin, witness and bridge", ig_role_name(role), i, e->valuestring);
			if (p->m2m[role] & (1u << peer))
				return ig_error_set(err, IG_ERR_INVAL, "m2m.%s[%d]: \"%s\" is listed twice; keep one",
				                    ig_role_name(role), i, ig_role_name(peer));
			p->m2m[role] |= (uint8_t)(1u << peer);
		}
	}
	return IG_OK;
}

/* "attestation": {"device": ["<64 hex>", ...], ...}: the agent
 * measurements each role may run. */
static int parse_attestation(const cJSON *obj, ig_policy *p, ig_error *err)
{
	if (!cJSON_IsObject(obj))
		return ig_error_set(err, IG_ERR_INVAL, "attestation: must be an object mapping a role to a list of "
		                    "allowed measurements (64 hex characters each)");
	int rc = check_duplicates(obj, "attestation", err);
	if (rc != IG_OK)
		return rc;
	for (const cJSON *item = obj->child; item; item = item->next) {
		ig_role role = ig_role_parse(item->string);
		if (role == IG_ROLE_NONE)
			return ig_error_set(err, IG_ERR_INVAL, "attestation: unknown role \"%.64s\"; roles are device, "
			                    "analyst, monitor, admin, witness and bridge", item->string);
		if (!cJSON_IsArray(item))
			return ig_error_set(err, IG_ERR_INVAL, "attestation.%s: must be an array of measurements "
			                    "(64 hex characters each)", ig_role_name(role));
		measurement_list *ml = &p->attestation[role];
		ml->present = true;
		int n = cJSON_GetArraySize(item);
		if (n == 0)
			continue;
		ml->items = calloc((size_t)n, sizeof *ml->items);
		if (!ml->items)
			return ig_error_set(err, IG_ERR_NOMEM, "attestation.%s: out of memory", ig_role_name(role));
		int i = 0;
		for (const cJSON *e = item->child; e; e = e->next, i++) {
			if (!cJSON_IsString(e) || !e->valuestring)
				return ig_error_set(err, IG_ERR_INVAL, "attestation.%s[%d]: must be a string of 64 hex "
				                    "characters", ig_role_name(role), i);
			size_t len = strlen(e->valuestring);
			if (len != 64 || ig_hex_decode(ml->items[ml->count], 32, e->valuestring, len) != IG_OK)
				return ig_error_set(err, IG_ERR_INVAL, "attestation.%s[%d]: '%.80s' is not 64 hex characters "
				                    "(the BLAKE2b-256 measurement the agent reports)", ig_role_name(role), i,
				                    e->valuestring);
			for (size_t k = 0; k < ml->count; k++)
				if (memcmp(ml->items[k], ml->items[ml->count], 32) == 0)
					return ig_error_set(err, IG_ERR_INVAL, "attestation.%s[%d]: measurement is listed twice; "
					                    "keep one", ig_role_name(role), i);
			ml->count++;
		}
	}
	return IG_OK;
}

/* "witnesses": {"keys": ["<vkey>", ...], "quorum": K}. A key's name is the
 * witness's enrolled identity id: the cluster head sends each witness its
 * requests at iotguard/C/dev/<name>/inbox and takes its answers only from
 * iotguard/C/ch/<name>, so a name outside the id alphabet could never be
 * reached and is refused here rather than at the first checkpoint. */
static int parse_witnesses(const cJSON *obj, ig_policy *p, ig_error *err)
{
	if (!cJSON_IsObject(obj))
		return ig_error_set(err, IG_ERR_INVAL, "witnesses: must be an object {\"keys\": [\"<vkey>\", ...], "
		                    "\"quorum\": K}");
	int rc = check_duplicates(obj, "witnesses", err);
	if (rc != IG_OK)
		return rc;
	const cJSON *keys = NULL, *quorum = NULL;
	for (const cJSON *item = obj->child; item; item = item->next) {
		if (strcmp(item->string, "keys") == 0)
			keys = item;
		else if (strcmp(item->string, "quorum") == 0)
			quorum = item;
		else
			return ig_error_set(err, IG_ERR_INVAL, "witnesses: unknown key \"%.64s\"; allowed keys are "
			                    "\"keys\" and \"quorum\"", item->string);
	}
	if (!keys || !cJSON_IsArray(keys))
		return ig_error_set(err, IG_ERR_INVAL, "witnesses.keys: must be an array of witness vkeys (print one "
		                    "with 'iotguard witness --print-vkey --id W --key FILE')");
	int n = cJSON_GetArraySize(keys);
	if (n < 1 || n > IG_POLICY_WITNESSES_MAX)
		return ig_error_set(err, IG_ERR_INVAL, "witnesses.keys: lists %d keys; list 1 to %d (a checkpoint "
		                    "carries at most %d cosignatures), or remove \"witnesses\"", n,
		                    IG_POLICY_WITNESSES_MAX, IG_POLICY_WITNESSES_MAX);
	p->witness_keys = calloc((size_t)n, sizeof *p->witness_keys);
	if (!p->witness_keys)
		return ig_error_set(err, IG_ERR_NOMEM, "witnesses.keys: out of memory");
	int i = 0;
	for (const cJSON *e = keys->child; e; e = e->next, i++) {
		ig_cosig_vkey *k = &p->witness_keys[p->witness_count];
		if (!cJSON_IsString(e) || !e->valuestring)
			return ig_error_set(err, IG_ERR_INVAL, "witnesses.keys[%d]: must be a vkey string "
			                    "\"<id>+<8 hex>+<base64>\"", i);
		ig_error perr = {0};
		if (ig_cosig_vkey_parse(k, e->valuestring, strlen(e->valuestring), &perr) != IG_OK)
			return ig_error_set(err, IG_ERR_INVAL, "witnesses.keys[%d]: '%.80s' is not a vkey (%s); copy the "
			                    "line 'iotguard witness --print-vkey' prints", i, e->valuestring, perr.msg);
		if (k->type != IG_COSIG_TYPE_COSIG_V1)
			return ig_error_set(err, IG_ERR_INVAL, "witnesses.keys[%d]: key '%.64s' has type 0x%02x; a witness "
			                    "signs cosignature/v1 (type 0x04, as 'iotguard witness --print-vkey' prints)",
			                    i, k->name, k->type);
		if (!ig_id_valid(k->name, strlen(k->name)))
			return ig_error_set(err, IG_ERR_INVAL, "witnesses.keys[%d]: name '%.64s' is not an identity id "
			                    "(1-%d of A-Z a-z 0-9 . _ -); the name must be the witness's enrolled id", i,
			                    k->name, IG_ID_MAX);
		for (size_t j = 0; j < p->witness_count; j++)
			if (strcmp(p->witness_keys[j].name, k->name) == 0)
				return ig_error_set(err, IG_ERR_INVAL, "witnesses.keys[%d]: witness '%s' is listed twice; "
				                    "keep one key per witness", i, k->name);
		p->witness_count++;
	}
	uint64_t q;
	if (!quorum || ig_json_uint(&q, quorum, 1, p->witness_count) != IG_OK)
		return ig_error_set(err, IG_ERR_INVAL, "witnesses.quorum: must be a whole number from 1 to %zu (the "
		                    "number of keys): how many witnesses must cosign a checkpoint", p->witness_count);
	p->witness_quorum = (size_t)q;
	return IG_OK;
}

/* "custody": {"holder_roles": ["device", ...]}: the roles whose identities
 * may hold a custody share. */
static int parse_custody(const cJSON *obj, ig_policy *p, ig_error *err)
{
	if (!cJSON_IsObject(obj))
		return ig_error_set(err, IG_ERR_INVAL, "custody: must be an object, e.g. {\"holder_roles\": [\"device\"]}");
	int rc = check_duplicates(obj, "custody", err);
	if (rc != IG_OK)
		return rc;
	const cJSON *roles = NULL;
	for (const cJSON *item = obj->child; item; item = item->next) {
		if (strcmp(item->string, "holder_roles") != 0)
			return ig_error_set(err, IG_ERR_INVAL, "custody: unknown key \"%.64s\"; the only key is "
			                    "\"holder_roles\"", item->string);
		roles = item;
	}
	if (!roles)
		return IG_OK;
	if (!cJSON_IsArray(roles) || !roles->child)
		return ig_error_set(err, IG_ERR_INVAL, "custody.holder_roles: must be a non-empty array of role names "
		                    "(device, analyst, monitor, admin, witness, bridge), e.g. [\"device\"]");
	int i = 0;
	for (const cJSON *e = roles->child; e; e = e->next, i++) {
		if (!cJSON_IsString(e) || !e->valuestring)
			return ig_error_set(err, IG_ERR_INVAL, "custody.holder_roles[%d]: must be a role name string", i);
		ig_role role = ig_role_parse(e->valuestring);
		if (role == IG_ROLE_NONE)
			return ig_error_set(err, IG_ERR_INVAL, "custody.holder_roles[%d]: unknown role \"%.64s\"; roles are "
			                    "device, analyst, monitor, admin, witness and bridge", i, e->valuestring);
		if (p->custody_roles & (1u << role))
			return ig_error_set(err, IG_ERR_INVAL, "custody.holder_roles[%d]: \"%s\" is listed twice; keep one",
			                    i, ig_role_name(role));
		p->custody_roles |= 1u << role;
	}
	return IG_OK;
}

/* One whole-number field of "predistribution" in [lo, hi]. */
static int kp_number(const cJSON *obj, const char *name, uint32_t lo, uint32_t hi, const char *meaning,
                     uint32_t *out, ig_error *err)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (!f)
		return ig_error_set(err, IG_ERR_INVAL, "predistribution.%s is missing: %s, a whole number from %u to %u",
		                    name, meaning, lo, hi);
	if (!cJSON_IsNumber(f) || f->valuedouble < (double)lo || f->valuedouble > (double)hi ||
	    f->valuedouble != (double)(uint32_t)f->valuedouble)
		return ig_error_set(err, IG_ERR_INVAL, "predistribution.%s: must be a whole number from %u to %u (%s)",
		                    name, lo, hi, meaning);
	*out = (uint32_t)f->valuedouble;
	return IG_OK;
}

/* "predistribution": {"pool": P, "ring": m, "q": q}: key rings (docs/PROTOCOL.md
 * "Key rings"); the ranges are ig_kp.h's, repeated here so the policy loads
 * without the key-ring code. */
static int parse_predistribution(const cJSON *obj, ig_policy *p, ig_error *err)
{
	if (!cJSON_IsObject(obj))
		return ig_error_set(err, IG_ERR_INVAL, "predistribution: must be an object, e.g. {\"pool\": 10000, "
		                    "\"ring\": 75, \"q\": 1}");
	int rc = check_duplicates(obj, "predistribution", err);
	if (rc != IG_OK)
		return rc;
	for (const cJSON *item = obj->child; item; item = item->next)
		if (strcmp(item->string, "pool") != 0 && strcmp(item->string, "ring") != 0 && strcmp(item->string, "q") != 0)
			return ig_error_set(err, IG_ERR_INVAL, "predistribution: unknown key \"%.64s\"; the keys are \"pool\", "
			                    "\"ring\" and \"q\"", item->string);
	uint32_t pool, ring, q;
	if ((rc = kp_number(obj, "pool", 2, 1u << 24, "P, the number of keys in the pool", &pool, err)) != IG_OK ||
	    (rc = kp_number(obj, "ring", 1, 1024, "m, the keys each device holds", &ring, err)) != IG_OK ||
	    (rc = kp_number(obj, "q", 1, 16, "the shared keys a pairwise key needs: 1 is Eschenauer-Gligor, 2 or "
	                    "more q-composite", &q, err)) != IG_OK)
		return rc;
	if (ring > pool)
		return ig_error_set(err, IG_ERR_INVAL, "predistribution.ring: %u is more than the pool (%u); a ring holds at "
		                    "most every pool key", ring, pool);
	if (q > ring)
		return ig_error_set(err, IG_ERR_INVAL, "predistribution.q: %u is more than the ring (%u); two devices can "
		                    "share at most m keys", q, ring);
	p->kp = true;
	p->kp_pool = pool;
	p->kp_ring = ring;
	p->kp_q = (uint8_t)q;
	return IG_OK;
}

static int parse_tree(const cJSON *root, ig_policy *p, ig_error *err)
{
	if (!cJSON_IsObject(root))
		return ig_error_set(err, IG_ERR_INVAL, "top level must be an object {\"version\":1,\"roles\":{...}}");
	int rc = check_duplicates(root, "top level", err);
	if (rc != IG_OK)
		return rc;
	const cJSON *version = NULL, *roles = NULL, *m2m = NULL, *attestation = NULL, *witnesses = NULL,
	            *custody = NULL, *predistribution = NULL;
	for (const cJSON *item = root->child; item; item = item->next) {
		if (strcmp(item->string, "version") == 0)
			version = item;
		else if (strcmp(item->string, "roles") == 0)
			roles = item;
		else if (strcmp(item->string, "m2m") == 0)
			m2m = item;
		else if (strcmp(item->string, "attestation") == 0)
			attestation = item;
		else if (strcmp(item->string, "witnesses") == 0)
			witnesses = item;
		else if (strcmp(item->string, "custody") == 0)
			custody = item;
		else if (strcmp(item->string, "predistribution") == 0)
			predistribution = item;
		else
			return ig_error_set(err, IG_ERR_INVAL, "unknown top-level key \"%.64s\"; allowed keys are "
			                    "\"version\", \"roles\", \"m2m\", \"attestation\", \"witnesses\", "
			                    "\"custody\" and \"predistribution\"", item->string);
	}
	if (!version)
		return ig_error_set(err, IG_ERR_INVAL, "\"version\" is missing; add \"version\": 1");
	if (!cJSON_IsNumber(version) || version->valuedouble != 1.0)
		return ig_error_set(err, IG_ERR_INVAL, "\"version\" must be the number 1 (the only policy format "
		                    "this build understands)");
	if (!roles)
		return ig_error_set(err, IG_ERR_INVAL, "\"roles\" is missing; add an object keyed by role name");
	if (!cJSON_IsObject(roles))
		return ig_error_set(err, IG_ERR_INVAL, "roles: must be an object keyed by role name");
	rc = check_duplicates(roles, "roles", err);
	if (rc != IG_OK)
		return rc;
	for (const cJSON *item = roles->child; item; item = item->next) {
		ig_role role = ig_role_parse(item->string);
		if (role == IG_ROLE_NONE)
			return ig_error_set(err, IG_ERR_INVAL, "roles: unknown role \"%.64s\"; roles are device, "
			                    "analyst, monitor, admin, witness and bridge", item->string);
		rc = parse_role(item, role, p, err);
		if (rc != IG_OK)
			return rc;
	}
	if (m2m && (rc = parse_m2m(m2m, p, err)) != IG_OK)
		return rc;
	if (attestation && (rc = parse_attestation(attestation, p, err)) != IG_OK)
		return rc;
	if (witnesses && (rc = parse_witnesses(witnesses, p, err)) != IG_OK)
		return rc;
	if (custody && (rc = parse_custody(custody, p, err)) != IG_OK)
		return rc;
	if (predistribution && (rc = parse_predistribution(predistribution, p, err)) != IG_OK)
		return rc;
	return IG_OK;
}

/* 1-based line and column of byte offset `off`, for JSON syntax errors. */
static void position_of(const char *json, size_t off, size_t *line, size_t *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off; i++) {
		if (json[i] == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

/* cJSON turns "\u0000" into a NUL that silently cuts the string short, so
 * "a/\u0000#" would load as "a/". Refuse the escape instead. */
static bool has_nul_escape(const char *json, size_t len, size_t *at)
{
	bool in_string = false;
	for (size_t i = 0; i < len; i++) {
		if (!in_string) {
			in_string = json[i] == '"';
		} else if (json[i] == '"') {
			in_string = false;
		} else if (json[i] == '\\') {
			if (i + 6 <= len && memcmp(json + i + 1, "u0000", 5) == 0) {
				*at = i;
				return true;
			}
			i++;
		}
	}
	return false;
}

static int parse_named(const char *json, size_t len, const char *name, ig_policy **out, ig_error *err)
{
	*out = NULL;
	if (!json)
		return ig_error_set(err, IG_ERR_INVAL, "%s: no policy text given", name);
	if (memchr(json, '\0', len))
		return ig_error_set(err, IG_ERR_INVAL, "%s: contains a NUL byte; the policy must be UTF-8 JSON text",
		                    name);
	size_t nul_at;
	if (has_nul_escape(json, len, &nul_at)) {
		size_t line, col;
		position_of(json, nul_at, &line, &col);
		return ig_error_set(err, IG_ERR_INVAL, "%s: \"\\u0000\" at line %zu column %zu; topic filters "
		                    "cannot contain NUL, remove it", name, line, col);
	}
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, false);
	size_t off = end && end >= json && end <= json + len ? (size_t)(end - json) : len;
	if (root) {
		while (off < len && (json[off] == ' ' || json[off] == '\t' || json[off] == '\n' || json[off] == '\r'))
			off++;
	}
	if (!root || off != len) {
		size_t line, col;
		position_of(json, off, &line, &col);
		cJSON_Delete(root);
		return ig_error_set(err, IG_ERR_INVAL, "%s: %s at line %zu column %zu; fix the JSON syntax", name,
		                    root ? "unexpected text after the policy object" : "invalid JSON", line, col);
	}

	ig_policy *p = calloc(1, sizeof *p);
	if (!p) {
		cJSON_Delete(root);
		return ig_error_set(err, IG_ERR_NOMEM, "%s: out of memory", name);
	}
	int rc = parse_tree(root, p, err);
	cJSON_Delete(root);
	if (rc != IG_OK) {
		ig_policy_free(p);
		ig_error_prefix(err, "%s: ", name);
		return rc;
	}
	/* Never reused, even if a reload's policy lands at the freed address of
	 * the old one: caches keyed by it (ig_aclcache.h) must not survive. */
	static atomic_uint_fast64_t generations;
	p->generation = (uint64_t)atomic_fetch_add(&generations, 1) + 1;
	*out = p;
	return IG_OK;
}

uint64_t ig_policy_generation(const ig_policy *p)
{
	return p ? p->generation : 0;
}

int ig_policy_parse(const char *json, size_t len, ig_policy **out, ig_error *err)
{
	return parse_named(json, len, "policy.json", out, err);
}

int ig_policy_load(const char *path, ig_policy **out, ig_error *err)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f)
		return ig_error_set(err, IG_ERR_IO, "open policy %s: %s; check plugin_opt_policy", path, strerror(errno));
	char *buf = malloc(POLICY_FILE_MAX + 1);
	if (!buf) {
		fclose(f);
		return ig_error_set(err, IG_ERR_NOMEM, "policy %s: out of memory", path);
	}
	size_t n = fread(buf, 1, POLICY_FILE_MAX + 1, f);
	int read_failed = ferror(f);
	int read_errno = errno;
	fclose(f);
	int rc;
	if (read_failed)
		rc = ig_error_set(err, IG_ERR_IO, "read policy %s: %s; check plugin_opt_policy names a readable file",
		                  path, strerror(read_errno));
	else if (n > POLICY_FILE_MAX)
		rc = ig_error_set(err, IG_ERR_RANGE, "policy %s is larger than %u bytes; shorten it", path,
		                  POLICY_FILE_MAX);
	else
		rc = parse_named(buf, n, path, out, err);
	free(buf);
	return rc;
}
