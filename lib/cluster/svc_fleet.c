/*
 * svc_fleet.c: the fleet listing (ig_svc_fleet.h; docs/PROTOCOL.md, "Fleet
 * listing").
 *
 * Why this exists: the decision (who may list, the request's shape, the
 * per-identity rate, which identities a page holds and what each entry
 * says) is kept here, away from the broker, so the unit test drives it with
 * a state built from records.
 */
#include "ig_svc_fleet.h"

#include "ig_ratewin.h"
#include "ig_json.h"

#include <cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RATE_WINDOW_MS 60000u

/* A part's bytes besides its entries and its values: the field names and
 * punctuation of every top-level field. */
#define PART_HEAD_FIXED (sizeof "{\"type\":\"fleet\",\"nonce\":\"\",\"total\":,\"offset\":,\"height\":," \
                               "\"part\":,\"parts\":,\"identities\":[]}" - 1)
/* "total" is known only once the walk ends: its widest form. "part" and
 * "parts" are at most 64: two digits. */
#define PART_TOTAL_MAX 24
#define PART_INDEX_MAX 2
_Static_assert(IG_SVC_FLEET_PARTS_MAX <= 99, "part and parts are bounded as two digits");
/* An entry's bytes besides its values: {"id":"","role":"","status":"",
 * "enrolled_ts":,"connected":} and the comma before the next entry; a zone
 * adds ,"zone":"" and a device ,"balance":,"outstanding":. Ids and zones
 * need no escaping (their alphabet is [A-Za-z0-9_.-]). */
#define ENTRY_FIXED 60
#define ENTRY_ZONE 10
#define ENTRY_WALLET 26

struct ig_svc_fleet {
	ig_svc_fleet_config cfg;
	ig_ratewin *rates;   /* per requester; only monitors and admins get an entry */
	uint64_t served, refused;
};

ig_svc_fleet *ig_svc_fleet_new(const ig_svc_fleet_config *cfg)
{
	if (!cfg || cfg->requests_per_minute == 0)
		return NULL;
	ig_svc_fleet *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->rates = ig_ratewin_new(cfg->requests_per_minute, RATE_WINDOW_MS);
	if (!s->rates) {
		free(s);
		return NULL;
	}
	s->cfg = *cfg;
	return s;
}

void ig_svc_fleet_free(ig_svc_fleet *s)
{
	if (!s)
		return;
	ig_ratewin_free(s->rates);
	free(s);
}

/* ---- the request ------------------------------------------------------------ */

static const char *const fields[] = {"type", "nonce", "offset", "limit"};

/* NULL when req's fields are the known ones, each once; else why not. */
static const char *bad_field(const cJSON *req, char *msg, size_t cap)
{
	for (const cJSON *a = req->child; a; a = a->next) {
		bool known = false;
		for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
			known = known || strcmp(a->string, fields[i]) == 0;
		if (!known) {
			snprintf(msg, cap, "unknown field \"%.32s\"; a fleet request has only type, nonce, offset and limit",
			         a->string);
			return msg;
		}
		for (const cJSON *b = a->next; b; b = b->next)
			if (strcmp(a->string, b->string) == 0) {
				snprintf(msg, cap, "field \"%.32s\" appears twice; keep one", a->string);
				return msg;
			}
	}
	return NULL;
}

/* An optional whole number in [min, max] (absent: def). False when bad. */
static bool get_uint(const cJSON *req, const char *name, uint64_t min, uint64_t max, uint64_t def, uint64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, name);
	*out = def;
	return !v || ig_json_uint(out, v, min, max) == IG_OK;
}

/* ---- the page --------------------------------------------------------------- */

/* At most the characters cJSON prints for v: %1.15g of an integer below
 * 10^15 is its digits; above, a mantissa and an exponent. */
static size_t num_len(uint64_t v)
{
	if (v >= 1000000000000000ull)
		return 24;
	size_t n = 1;
	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

/* The walk's state: the parts made so far, the last one being filled. */
typedef struct page {
	const ig_svc_fleet_view *view;
	uint64_t offset, limit;
	size_t head_fixed;   /* a part's head bound without its "offset" value */
	uint64_t total;      /* identities walked: all of them */
	cJSON *parts[IG_SVC_FLEET_PARTS_MAX];
	uint64_t part_offset[IG_SVC_FLEET_PARTS_MAX];
	size_t n_parts;
	size_t bytes;        /* bound on the last part's length so far */
	bool cut;            /* the parts ran out before limit */
	bool nomem;
} page;

/* One entry: its JSON and its printed length (an upper bound only for
 * numbers of 10^15 and more). */
static cJSON *entry_json(const ig_svc_fleet_view *v, const ig_identity *idn, size_t *len)
{
	const char *role = ig_role_name((ig_role)idn->role);
	const char *status = ig_registry_status_name((ig_id_status)idn->status);
	const char *zone = ig_state_zone(v->st, idn->id);
	bool device = idn->role == IG_ROLE_DEVICE;
	/* ig_state_coins hands out the index the bank also writes; here it is
	 * only read. */
	const ig_coins *coins = device ? ig_state_coins((ig_state *)v->st) : NULL;
	uint64_t balance = device ? ig_coins_balance(coins, idn->id) : 0;
	uint64_t outstanding = device ? ig_coins_outstanding(coins, idn->id) : 0;
	bool connected = v->connected && v->connected(v->connected_ctx, idn->id);

	*len = ENTRY_FIXED + idn->id_len + strlen(role) + strlen(status) + num_len(idn->enrolled_ts_ms) +
	       (connected ? 4 : 5) + (zone ? ENTRY_ZONE + strlen(zone) : 0) +
	       (device ? ENTRY_WALLET + num_len(balance) + num_len(outstanding) : 0);
	cJSON *o = cJSON_CreateObject();
	bool ok = o && cJSON_AddStringToObject(o, "id", idn->id) && cJSON_AddStringToObject(o, "role", role) &&
	          cJSON_AddStringToObject(o, "status", status) && (!zone || cJSON_AddStringToObject(o, "zone", zone)) &&
	          cJSON_AddNumberToObject(o, "enrolled_ts", (double)idn->enrolled_ts_ms) &&
	          cJSON_AddBoolToObject(o, "connected", connected) &&
	          (!device || (cJSON_AddNumberToObject(o, "balance", (double)balance) &&
	                       cJSON_AddNumberToObject(o, "outstanding", (double)outstanding)));
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* Starts part n_parts at position pos; false when out of memory. */
static bool part_start(page *p, uint64_t pos)
{
	cJSON *items = cJSON_CreateArray();
	if (!items)
		return false;
	p->parts[p->n_parts] = items;
	p->part_offset[p->n_parts] = pos;
	p->n_parts++;
	p->bytes = p->head_fixed + num_len(pos);
	return true;
}

static bool page_one(void *ctx, const ig_identity *idn)
{
	page *p = ctx;
	uint64_t pos = p->total++;
	/* Past the page the walk goes on, to count "total". */
	if (p->cut || pos < p->offset || pos - p->offset >= p->limit)
		return true;
	size_t len;
	cJSON *o = entry_json(p->view, idn, &len);
	if (!o) {
		p->nomem = true;
		return false;
	}
	/* A part never ends empty: one entry (a few hundred bytes at most) is far
	 * below the budget. */
	if (p->n_parts == 0 || p->bytes + len > IG_SVC_FLEET_PART_MAX) {
		if (p->n_parts == IG_SVC_FLEET_PARTS_MAX) {
			cJSON_Delete(o);
			p->cut = true;
			return true;
		}
		if (!part_start(p, pos)) {
			cJSON_Delete(o);
			p->nomem = true;
			return false;
		}
	}
	if (!cJSON_AddItemToArray(p->parts[p->n_parts - 1], o)) {
		cJSON_Delete(o);
		p->nomem = true;
		return false;
	}
	p->bytes += len;
	return true;
}

/* The characters cJSON prints for s inside its quotes: a nonce is 0x21..0x7e,
 * so only '"' and '\' grow (to two). */
static size_t json_str_len(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += (*s == '"' || *s == '\\') ? 2 : 1;
	return n;
}

/* Part i with its head, taking its items; NULL when out of memory (the
 * items stay p's). */
static cJSON *part_json(page *p, size_t i, const char *nonce)
{
	cJSON *o = cJSON_CreateObject();
	bool ok = o && cJSON_AddStringToObject(o, "type", "fleet") && cJSON_AddStringToObject(o, "nonce", nonce) &&
	          cJSON_AddNumberToObject(o, "total", (double)p->total) &&
	          cJSON_AddNumberToObject(o, "offset", (double)p->part_offset[i]) &&
	          cJSON_AddNumberToObject(o, "height", (double)p->view->height) &&
	          cJSON_AddNumberToObject(o, "part", (double)i) &&
	          cJSON_AddNumberToObject(o, "parts", (double)p->n_parts) &&
	          cJSON_AddItemToObject(o, "identities", p->parts[i]);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	p->parts[i] = NULL;
	return o;
}

/* The page as parts replied to id on out's chain; false when out of memory
 * (out then holds whatever was added: the caller clears it). */
static bool page_reply(ig_decision *out, const ig_svc_fleet_view *v, const char *id, const char *nonce,
                       uint64_t offset, uint64_t limit)
{
	page p = {.view = v, .offset = offset, .limit = limit};
	p.head_fixed = PART_HEAD_FIXED + json_str_len(nonce) + PART_TOTAL_MAX + num_len(v->height) + 2 * PART_INDEX_MAX;
	ig_state_identity_foreach(v->st, page_one, &p);
	/* Nothing from offset on: one part, empty. */
	bool ok = !p.nomem && (p.n_parts > 0 || part_start(&p, offset));
	for (size_t i = 0; ok && i < p.n_parts; i++) {
		cJSON *o = part_json(&p, i, nonce);
		ok = o && ig_decision_reply_chained(out, id, o);   /* takes o */
	}
	for (size_t i = 0; i < p.n_parts; i++)
		cJSON_Delete(p.parts[i]);   /* those not handed over */
	return ok;
}

void ig_svc_fleet_request(ig_decision *out, ig_svc_fleet *s, const char *id, const cJSON *req,
                          const ig_svc_fleet_view *view, uint64_t now_ms)
{
	const cJSON *jn = cJSON_GetObjectItemCaseSensitive(req, "nonce");
	const char *nonce = cJSON_IsString(jn) && ig_decision_nonce_ok(jn->valuestring) ? jn->valuestring : NULL;
	char msg[IG_DECISION_MESSAGE_MAX];
	const char *err = NULL;
	uint64_t offset = 0, limit = IG_SVC_FLEET_LIMIT_DEFAULT;

	if (!nonce) {
		err = "malformed";
		snprintf(msg, sizeof msg, "\"nonce\" is required: 1..64 printable ASCII characters without spaces");
	} else if (bad_field(req, msg, sizeof msg)) {
		err = "malformed";
	} else if (!get_uint(req, "offset", 0, UINT32_MAX, 0, &offset) ||
	           !get_uint(req, "limit", 1, IG_SVC_FLEET_LIMIT_MAX, IG_SVC_FLEET_LIMIT_DEFAULT, &limit)) {
		err = "malformed";
		snprintf(msg, sizeof msg, "\"offset\" must be a whole number from 0 and \"limit\" one from 1 to %d",
		         IG_SVC_FLEET_LIMIT_MAX);
	} else if (!ig_state_active(view->st, id, IG_ROLE_MONITOR) && !ig_state_active(view->st, id, IG_ROLE_ADMIN)) {
		err = "not_allowed";
		snprintf(msg, sizeof msg, "only active monitors and admins may list the fleet");
	} else if (!ig_ratewin_take(s->rates, id, now_ms)) {
		err = "rate_limited";
		snprintf(msg, sizeof msg, "more than %" PRIu32 " fleet requests this minute; slow down",
		         s->cfg.requests_per_minute);
	}
	if (err) {
		s->refused++;
		ig_decision_refuse(out, "fleet", nonce, err, "%s", msg);
		return;
	}
	if (!page_reply(out, view, id, nonce, offset, limit)) {
		ig_decision_clear(out);
		s->refused++;
		ig_decision_refuse(out, "fleet", nonce, "internal", "out of memory for the fleet listing; retry later");
		return;
	}
	s->served++;
}

void ig_svc_fleet_stats(const ig_svc_fleet *s, cJSON *stats)
{
	cJSON *o = cJSON_AddObjectToObject(stats, "fleet");
	if (!o)
		return;
	cJSON_AddNumberToObject(o, "served", (double)s->served);
	cJSON_AddNumberToObject(o, "refused", (double)s->refused);
}
