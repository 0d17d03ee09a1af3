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

#include "ig_idmap.h"
#include "ig_json.h"

#include <cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RATE_WINDOW_MS 60000u

/* The bytes a reply needs besides its entries: every top-level field with a
 * 64-character nonce and numbers of the widest form cJSON prints. */
#define REPLY_HEAD_MAX 256
/* An entry's bytes besides its values: {"id":"","role":"","status":"",
 * "enrolled_ts":,"connected":} and the comma before the next entry; a zone
 * adds ,"zone":"" and a device ,"balance":,"outstanding":. Ids and zones
 * need no escaping (their alphabet is [A-Za-z0-9_.-]). */
#define ENTRY_FIXED 60
#define ENTRY_ZONE 10
#define ENTRY_WALLET 26

typedef struct rate {
	uint64_t window_ms;
	uint32_t count;
} rate;

struct ig_svc_fleet {
	ig_svc_fleet_config cfg;
	ig_idmap *rates;   /* per requester; only monitors and admins get an entry */
	uint64_t served, refused;
};

ig_svc_fleet *ig_svc_fleet_new(const ig_svc_fleet_config *cfg)
{
	if (!cfg || cfg->requests_per_minute == 0)
		return NULL;
	ig_svc_fleet *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->rates = ig_idmap_new(sizeof(rate));
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
	ig_idmap_free(s->rates, false);
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

/* A fixed one-minute window per requester, counted as the other services
 * count theirs; out of memory refuses (as rate_limited). */
static bool rate_ok(ig_svc_fleet *s, const char *id, uint64_t now_ms)
{
	rate *r = ig_idmap_put(s->rates, id);
	if (r && now_ms - r->window_ms >= RATE_WINDOW_MS)
		*r = (rate){.window_ms = now_ms};
	return r && ++r->count <= s->cfg.requests_per_minute;
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

typedef struct page {
	const ig_svc_fleet_view *view;
	uint64_t offset, limit;
	uint64_t total;      /* identities walked: all of them */
	size_t bytes;        /* bound on the reply's length so far */
	bool full;           /* the byte budget ended the page */
	bool nomem;
	cJSON *items;
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

static bool page_one(void *ctx, const ig_identity *idn)
{
	page *p = ctx;
	uint64_t pos = p->total++;
	/* Past the page the walk goes on, to count "total". */
	if (p->full || pos < p->offset || pos - p->offset >= p->limit)
		return true;
	size_t len;
	cJSON *o = entry_json(p->view, idn, &len);
	if (!o) {
		p->nomem = true;
		return false;
	}
	if (p->bytes + len > IG_SVC_FLEET_REPLY_MAX) {
		/* Never empty: one entry is far below the budget. */
		cJSON_Delete(o);
		p->full = true;
		return true;
	}
	if (!cJSON_AddItemToArray(p->items, o)) {
		cJSON_Delete(o);
		p->nomem = true;
		return false;
	}
	p->bytes += len;
	return true;
}

static cJSON *page_json(const ig_svc_fleet_view *v, const char *nonce, uint64_t offset, uint64_t limit)
{
	page p = {.view = v, .offset = offset, .limit = limit, .bytes = REPLY_HEAD_MAX, .items = cJSON_CreateArray()};
	cJSON *o = cJSON_CreateObject();
	if (!o || !p.items) {
		cJSON_Delete(o);
		cJSON_Delete(p.items);
		return NULL;
	}
	ig_state_identity_foreach(v->st, page_one, &p);
	bool ok = !p.nomem && cJSON_AddStringToObject(o, "type", "fleet") && cJSON_AddStringToObject(o, "nonce", nonce) &&
	          cJSON_AddNumberToObject(o, "total", (double)p.total) &&
	          cJSON_AddNumberToObject(o, "offset", (double)offset) &&
	          cJSON_AddNumberToObject(o, "height", (double)v->height);
	if (!ok || !cJSON_AddItemToObject(o, "identities", p.items)) {
		cJSON_Delete(p.items);
		cJSON_Delete(o);
		return NULL;
	}
	return o;
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
	} else if (!rate_ok(s, id, now_ms)) {
		err = "rate_limited";
		snprintf(msg, sizeof msg, "more than %" PRIu32 " fleet requests this minute; slow down",
		         s->cfg.requests_per_minute);
	}
	if (err) {
		s->refused++;
		ig_decision_refuse(out, "fleet", nonce, err, "%s", msg);
		return;
	}
	cJSON *o = page_json(view, nonce, offset, limit);
	if (!o) {
		s->refused++;
		ig_decision_refuse(out, "fleet", nonce, "internal", "out of memory for the fleet listing; retry later");
		return;
	}
	s->served++;
	ig_decision_reply(out, id, o);
}

void ig_svc_fleet_stats(const ig_svc_fleet *s, cJSON *stats)
{
	cJSON *o = cJSON_AddObjectToObject(stats, "fleet");
	if (!o)
		return;
	cJSON_AddNumberToObject(o, "served", (double)s->served);
	cJSON_AddNumberToObject(o, "refused", (double)s->refused);
}
