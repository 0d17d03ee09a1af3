/*
 * ig_policy.h: per-role topic access rules (matching itself: ig_topic.h).
 *
 * Why this exists: the broker asks on every SUBSCRIBE and every delivered
 * message whether an identity may touch a topic. Rules live in a JSON file
 * (config/policy.json) so operators can change them and reload on SIGHUP:
 *
 *   { "version": 1,
 *     "roles": { "device": { "publish":   ["iotguard/{cluster}/ch/{id}", ...],
 *                            "subscribe": [...],
 *                            "retain":    [...] }, ... } }
 *
 * Patterns are MQTT filters (+ and # allowed) whose levels may be exactly
 * "{cluster}" or "{id}", substituted at match time with no allocation.
 * Deny by default. A SUBSCRIBE filter is allowed only if every topic it can
 * match is readable, i.e. it is contained in one subscribe pattern, so
 * `iotguard/C/#` is refused for a device rather than filtered at delivery.
 */
#ifndef IG_POLICY_H
#define IG_POLICY_H

#include "ig_common.h"
#include "ig_cosig.h"

typedef struct ig_policy ig_policy;

typedef enum ig_access {
	IG_ACCESS_PUBLISH = 1,    /* topic must match a publish pattern */
	IG_ACCESS_RETAIN = 2,     /* publish with retain: must also match a retain pattern */
	IG_ACCESS_SUBSCRIBE = 3,  /* filter must be contained in a subscribe pattern */
	IG_ACCESS_READ = 4,       /* delivery of a topic: must match a subscribe pattern */
} ig_access;

/* Loads and validates a policy; errors name the role, list and entry. */
int ig_policy_load(const char *path, ig_policy **out, ig_error *err) IG_NODISCARD;
int ig_policy_parse(const char *json, size_t len, ig_policy **out, ig_error *err) IG_NODISCARD;
void ig_policy_free(ig_policy *p);

/* The policy compiled into the library, identical to config/policy.json. */
extern const char ig_policy_default_json[];

/* A role's "max_token_ttl" (seconds) from the policy file, or 0 when the
 * file does not set it (the plugin's ttl_<role> option applies). Living in
 * the policy file lets it change on SIGHUP: Mosquitto 2.0 passes no plugin
 * options to a reload. */
#define IG_POLICY_MAX_TTL (7u * 86400u)
/* Bridge tokens sit in mosquitto.conf as remote_password and are presented
 * at every reconnect (docs/PROTOCOL.md "Several brokers"), so they may live
 * far longer; revocation, not expiry, is what ends a bridge identity. */
#define IG_POLICY_MAX_TTL_BRIDGE (365u * 86400u)
uint32_t ig_policy_max_ttl(const ig_policy *p, ig_role role);
/* The largest max_token_ttl (or plugin_opt_ttl_<role>) a role may have:
 * IG_POLICY_MAX_TTL_BRIDGE for bridge, IG_POLICY_MAX_TTL otherwise. */
uint32_t ig_policy_ttl_limit(ig_role role);

/* A role's "single_use" (default false): the broker accepts each of the
 * role's tokens for one connection only and refuses a second as "replayed".
 * Never true for bridge: a load refuses it (a bridge reconnects with the
 * same configured token). */
bool ig_policy_single_use(const ig_policy *p, ig_role role);

/* A number no other policy loaded by this process has (never 0): decisions
 * remembered for one policy are recognised as stale under the next. */
uint64_t ig_policy_generation(const ig_policy *p);

bool ig_policy_allows(const ig_policy *p, ig_role role, ig_access access,
                      const char *cluster, const char *id, const char *topic);

/* ---- key service rules (issue 3) ----
 *
 * Two optional top-level sections:
 *   "m2m":         {"device": ["device"], ...}  roles each role may share a
 *                  session key with. Absent = no pairs at all.
 *   "attestation": {"device": ["<64 hex>", ...], ...}  agent measurements
 *                  (BLAKE2b-256) each role may run. A role without a list is
 *                  not checked; an empty list allows nothing.
 */

/* True only if a lists b AND b lists a: a key is shared, so one role's
 * entry alone cannot pull the other into a pairing. */
bool ig_policy_pair_allowed(const ig_policy *p, ig_role a, ig_role b);
/* 1 = listed, 0 = not listed (or bad arguments), 2 = no list for the role. */
int ig_policy_measurement_allowed(const ig_policy *p, ig_role role, const uint8_t m[32]);

/* ---- witnesses (issue 12, docs/PROTOCOL.md "Witnesses") ----
 *
 *   "witnesses": {"keys": ["<vkey>", ...], "quorum": K}
 *
 * Each key is a cosignature/v1 vkey (type 0x04) whose name is the witness's
 * enrolled identity id; 1 <= K <= number of keys <= IG_POLICY_WITNESSES_MAX.
 * The cluster head publishes a head as cosigned once K of them cosigned it.
 */
#define IG_POLICY_WITNESSES_MAX 32
/* Number of witness keys (0: the policy names none); *keys and *quorum (if
 * not NULL) get the parsed keys and the quorum, valid while p lives. */
size_t ig_policy_witnesses(const ig_policy *p, const ig_cosig_vkey **keys, size_t *quorum);

/* ---- custody (issue 9, docs/PROTOCOL.md "Custody: choosing holders") ----
 *
 *   "custody": {"holder_roles": ["device", ...]}
 *
 * The roles whose identities may hold a custody share: a non-empty list of
 * distinct role names (an unknown one is refused at load). Read at each
 * deal, so a SIGHUP reload applies to the next one.
 */
/* Bit (1u << role) set for each allowed role; 1u << IG_ROLE_DEVICE when the
 * policy has no "custody" section (or p is NULL). */
uint32_t ig_policy_custody_holder_roles(const ig_policy *p);

/* ---- key rings (issue 10, docs/PROTOCOL.md "Key rings") ----
 *
 *   "predistribution": {"pool": P, "ring": m, "q": q}
 *
 * 2 <= P <= 2^24, 1 <= m <= 1024, m <= P, 1 <= q <= 16, q <= m; every key
 * is required. Absent: predistribution is off.
 */
/* False when the policy has no "predistribution" (or p is NULL); else the
 * three values (each out pointer may be NULL). */
bool ig_policy_kp(const ig_policy *p, uint32_t *pool, uint32_t *ring, uint8_t *q);

#endif
