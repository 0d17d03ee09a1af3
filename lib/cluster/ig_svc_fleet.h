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
/* A reply is cut short (fewer identities than limit) rather than grow past
 * this many bytes of JSON, so it always fits a 64 KiB message; the client
 * pages on from offset + the identities it got. */
#define IG_SVC_FLEET_REPLY_MAX 65536

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

/* One {"type":"fleet","nonce","offset"?,"limit"?} from id: the page as a
 * reply to id, or a refusal (malformed, not_allowed unless id is an active
 * monitor or admin, rate_limited), which carries the nonce when it was
 * valid. */
void ig_svc_fleet_request(ig_decision *out, ig_svc_fleet *s, const char *id, const struct cJSON *req,
                          const ig_svc_fleet_view *view, uint64_t now_ms);

/* Adds "fleet": {served, refused}. */
void ig_svc_fleet_stats(const ig_svc_fleet *s, struct cJSON *stats);

#endif
