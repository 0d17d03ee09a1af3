/*
 * ig_svc_fleet.h: the fleet listing, a page of every identity with its role,
 * zone, status, connection and wallet, for monitors and admins on the ch
 * topic (docs/PROTOCOL.md, "Fleet listing").
 *
 * Why this exists: an operator's dashboard runs as a monitor, not only as
 * an admin, and must see the whole fleet, revoked identities included, even
 * when it opens long after the revocations were published as events. The
 * admin API's list_identities is admin-only and has no wallets, so this
 * service answers the same walk over the state in the registry's order,
 * smaller (no public keys) and with each device's credit and outstanding
 * coins. It reads only the state: no record, no disk, no key (it runs while
 * the cluster head is sealed).
 */
#ifndef IG_SVC_FLEET_H
#define IG_SVC_FLEET_H

#include "ig_admin.h"
#include "ig_decision.h"
#include "ig_state.h"

struct cJSON;

#define IG_SVC_FLEET_LIMIT_DEFAULT 500
#define IG_SVC_FLEET_LIMIT_MAX 1000
#define IG_SVC_FLEET_RATE_DEFAULT 120   /* fleet requests per identity per minute */
/* One request is answered with one or more messages ("parts"), each at
 * most this many bytes of JSON. Why so small: Mosquitto 2.0.11 writes at
 * most about 4 KB of a message to a WebSockets client per pass of its event
 * loop, and an idle broker passes every 100 ms, so one 64 KiB reply takes a
 * browser 1.5 s while 16 messages of 4000 bytes take 0.04 s (docs/
 * PROTOCOL.md, "Fleet listing"). */
#define IG_SVC_FLEET_PART_MAX 3800
/* At most this many parts per request; a page that would need more is cut
 * (fewer identities than limit) and the client pages on from the last
 * part's offset plus its identities. */
#define IG_SVC_FLEET_PARTS_MAX 64

typedef struct ig_svc_fleet ig_svc_fleet;

typedef struct ig_svc_fleet_config {
	uint32_t requests_per_minute;   /* per identity; >= 1 */
} ig_svc_fleet_config;

/* NULL when out of memory or cfg is invalid. */
ig_svc_fleet *ig_svc_fleet_new(const ig_svc_fleet_config *cfg);
void ig_svc_fleet_free(ig_svc_fleet *s);

/* What the answer reflects besides the state. */
typedef struct ig_svc_fleet_view {
	const ig_state *st;
	uint64_t height;                  /* ledger records applied to st */
	ig_admin_connected_fn connected;  /* "connected" per identity, as the admin API says it */
	void *connected_ctx;
} ig_svc_fleet_view;

/* One {"type":"fleet","nonce","offset"?,"limit"?} from id: the page as
 * replies to id, or a refusal (malformed, not_allowed unless id is an active
 * monitor or admin, rate_limited), which carries the nonce when it was
 * valid. The page's parts (1..IG_SVC_FLEET_PARTS_MAX, in order) are replies
 * on out and the decisions chained after it (ig_decision_reply_chained), so
 * carrying out the chain in order sends them in order; nothing else is in
 * the chain. */
void ig_svc_fleet_request(ig_decision *out, ig_svc_fleet *s, const char *id, const struct cJSON *req,
                          const ig_svc_fleet_view *view, uint64_t now_ms);

/* Adds "fleet": {served, refused}. */
void ig_svc_fleet_stats(const ig_svc_fleet *s, struct cJSON *stats);

#endif
