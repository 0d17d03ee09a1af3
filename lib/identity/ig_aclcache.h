/*
 * ig_aclcache.h: remembered access decisions, per connected client.
 *
 * Why this exists: Mosquitto asks the plugin on every PUBLISH it receives
 * and again for every subscriber it delivers to, and a client keeps using
 * the same few topics. Walking the role's patterns each time is the ACL's
 * main cost, so the last decisions of each client are kept here and reused
 * while nothing they depend on has changed.
 *
 * A decision depends only on (identity, role, policy, access, topic), and
 * that is exactly what a lookup compares: the caller passes the identity id
 * and role it has just read from the registry (so a revoked identity, which
 * the caller no longer treats as active, never reaches the cache) and the
 * policy's generation (ig_policy_generation, new for every loaded policy,
 * so a SIGHUP reload invalidates every client at once). A client slot found
 * with another id, role or generation is emptied before use. The client
 * handle only locates the slot; ig_aclcache_forget releases it when the
 * client goes away.
 *
 * Memory is bounded: IG_ACLCACHE_WAYS decisions per client (replaced round
 * robin), topics up to IG_ACLCACHE_TOPIC_MAX bytes (longer ones are decided
 * every time), and at most max_clients client slots (beyond that, clients
 * are simply not cached). Single-threaded: the broker's event loop owns it.
 */
#ifndef IG_ACLCACHE_H
#define IG_ACLCACHE_H

#include "ig_common.h"

#define IG_ACLCACHE_WAYS 8
#define IG_ACLCACHE_TOPIC_MAX 128

typedef struct ig_aclcache ig_aclcache;

typedef enum ig_aclcache_result {
	IG_ACLCACHE_UNKNOWN = -2,   /* ig_aclcache_get_known only: look the identity up */
	IG_ACLCACHE_MISS = -1,
	IG_ACLCACHE_DENY = 0,
	IG_ACLCACHE_ALLOW = 1,
} ig_aclcache_result;

/* What a decision was taken for; `access` is the caller's code for the kind
 * of check (e.g. publish, retained publish, subscribe, read) and is only
 * compared, never interpreted. */
typedef struct ig_aclcache_key {
	const void *client;      /* the connection; never dereferenced */
	const char *id;          /* the identity the registry knows it as */
	uint8_t role;
	uint64_t generation;     /* ig_policy_generation of the policy used */
	uint8_t access;
	const char *topic;
	size_t topic_len;
	/* ig_registry_generation when the caller found id active with role in
	 * the registry; 0 if it did not look (then ig_aclcache_who learns
	 * nothing from this decision). */
	uint64_t registry_generation;
} ig_aclcache_key;

int ig_aclcache_new(ig_aclcache **out, size_t max_clients) IG_NODISCARD;
void ig_aclcache_free(ig_aclcache *c);

ig_aclcache_result ig_aclcache_get(ig_aclcache *c, const ig_aclcache_key *k);
/* Remembers a decision just taken for k; quietly does nothing when the
 * topic is too long, the id invalid, or max_clients slots are in use. */
void ig_aclcache_put(ig_aclcache *c, const ig_aclcache_key *k, bool allowed);
/* True, with *role, when client's decisions were last stored for the
 * identity username, seen active with that role at registry_generation,
 * and the registry has not changed since: the caller may then skip the
 * registry lookup. Any change to the registry (an enrol or revoke of
 * anyone) makes it false until the next stored decision. */
bool ig_aclcache_who(const ig_aclcache *c, const void *client, const char *username, uint64_t registry_generation,
                     uint8_t *role);
/* ig_aclcache_who and ig_aclcache_get in one probe of the client table,
 * for the check that runs twice per relayed message. k->id is the client's
 * username and k->registry_generation the registry's current generation
 * (k->role is ignored). IG_ACLCACHE_UNKNOWN when ig_aclcache_who would be
 * false (the caller then reads the registry and asks ig_aclcache_get);
 * otherwise *role is the identity's remembered role and the result is what
 * ig_aclcache_get would answer for k with that role: the decision, or
 * IG_ACLCACHE_MISS when there is none (the caller decides and stores it). */
ig_aclcache_result ig_aclcache_get_known(ig_aclcache *c, const ig_aclcache_key *k, uint8_t *role);
/* The client disconnected: its slot and decisions are released. */
void ig_aclcache_forget(ig_aclcache *c, const void *client);

/* Client slots in use, and the most memory one can take (for the docs). */
size_t ig_aclcache_clients(const ig_aclcache *c);
size_t ig_aclcache_client_bytes(void);

#endif
