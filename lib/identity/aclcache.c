/*
 * aclcache.c: remembered access decisions, per connected client.
 *
 * Why this exists: see ig_aclcache.h. The layout keeps a hit to one hash of
 * the client handle, one short id compare and a scan of eight small entries
 * with a 32-bit topic hash in front of each memcmp: less work than walking
 * a role's patterns, and no allocation except when a client first appears.
 * A client's generation, role, id and the eight entries' hashes, lengths
 * and access codes sit together at the front of its cache, apart from the
 * topics, so a hit reads two cache lines there and one topic: this runs
 * twice for every relayed message (the publish and each delivery).
 * Clients are located by an open-addressing table with backward-shift
 * deletion (no tombstones to pile up as clients come and go).
 */
#include "ig_aclcache.h"

#include <stdlib.h>
#include <string.h>

/* Entry i is hash[i], len[i], access[i], bit i of allowed and topic[i]. */
_Static_assert(IG_ACLCACHE_WAYS <= 8, "client_cache.allowed has one bit per entry");
_Static_assert(IG_ACLCACHE_TOPIC_MAX <= 255, "client_cache.len is a byte");
typedef struct client_cache {
	uint64_t generation;
	uint64_t who_generation;            /* registry generation id was seen active at; 0 = not known */
	uint32_t hash[IG_ACLCACHE_WAYS];
	uint8_t len[IG_ACLCACHE_WAYS];      /* 0 = empty; topics are never empty */
	uint8_t access[IG_ACLCACHE_WAYS];
	uint8_t allowed;                    /* one bit per entry */
	uint8_t role;
	uint8_t next;                       /* round-robin victim */
	char id[IG_ID_MAX + 1];
	char topic[IG_ACLCACHE_WAYS][IG_ACLCACHE_TOPIC_MAX];
} client_cache;

typedef struct slot {
	const void *client;          /* NULL = free */
	client_cache *cc;
} slot;

struct ig_aclcache {
	slot *slots;
	size_t cap, count, max_clients;
};

static size_t ptr_hash(const void *p)
{
	uint64_t x = (uint64_t)(uintptr_t)p;
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return (size_t)x;
}

/* A filter in front of memcmp, not a defence (a collision costs one
 * memcmp): eight bytes per step, since topics are tens of bytes long. */
static uint32_t topic_hash(const char *s, size_t len)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ len;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, s + i, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	if (i < len) {
		uint64_t w = 0;
		memcpy(&w, s + i, len - i);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	return (uint32_t)(h ^ (h >> 29));
}

int ig_aclcache_new(ig_aclcache **out, size_t max_clients)
{
	if (!out || max_clients == 0)
		return IG_ERR_INVAL;
	*out = NULL;
	ig_aclcache *c = calloc(1, sizeof *c);
	if (!c)
		return IG_ERR_NOMEM;
	c->cap = 256;
	c->max_clients = max_clients;
	c->slots = calloc(c->cap, sizeof *c->slots);
	if (!c->slots) {
		free(c);
		return IG_ERR_NOMEM;
	}
	*out = c;
	return IG_OK;
}

void ig_aclcache_free(ig_aclcache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->cap; i++)
		free(c->slots[i].cc);
	free(c->slots);
	free(c);
}

static size_t find_index(const ig_aclcache *c, const void *client)
{
	size_t mask = c->cap - 1, i = ptr_hash(client) & mask;
	while (c->slots[i].client && c->slots[i].client != client)
		i = (i + 1) & mask;
	return i;
}

static bool grow(ig_aclcache *c)
{
	size_t cap = c->cap * 2;
	slot *bigger = calloc(cap, sizeof *bigger);
	if (!bigger)
		return false;
	slot *old = c->slots;
	size_t old_cap = c->cap;
	c->slots = bigger;
	c->cap = cap;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].client)
			c->slots[find_index(c, old[i].client)] = old[i];
	free(old);
	return true;
}

/* A client's entries start over when it is new or its identity, role or
 * policy generation changed: none of its old decisions can apply. */
static void cc_reset(client_cache *cc, const ig_aclcache_key *k, size_t id_len)
{
	/* The tags are compared on every lookup, so all are defined; topics
	 * are read only behind a matching length. */
	memset(cc->hash, 0, sizeof cc->hash);
	memset(cc->len, 0, sizeof cc->len);
	memset(cc->access, 0, sizeof cc->access);
	cc->allowed = 0;
	memcpy(cc->id, k->id, id_len + 1);
	cc->role = k->role;
	cc->next = 0;
	cc->generation = k->generation;
	cc->who_generation = 0;
}

/* strcmp(a, b) == 0, inlined: ids are a few bytes, and this runs on every
 * hit. */
static bool same_id(const char *a, const char *b)
{
	for (;; a++, b++) {
		if (*a != *b)
			return false;
		if (*a == '\0')
			return true;
	}
}

/* The entry holding exactly k's question, or -1. */
static int entry_find(const client_cache *cc, const ig_aclcache_key *k, uint32_t h)
{
	for (int i = 0; i < IG_ACLCACHE_WAYS; i++)
		if (cc->len[i] == k->topic_len && cc->hash[i] == h && cc->access[i] == k->access &&
		    memcmp(cc->topic[i], k->topic, k->topic_len) == 0)
			return i;
	return -1;
}

/* The client's cache, valid for (id, role, generation); emptied if it was
 * filled for anything else. NULL when there is none and create is false,
 * or when it cannot be made. */
static client_cache *client_for(ig_aclcache *c, const ig_aclcache_key *k, bool create)
{
	slot *s = &c->slots[find_index(c, k->client)];
	if (!s->client && !create)
		return NULL;
	/* A lookup only compares the id with one that fitted (strcmp stops at
	 * the shorter); its length matters only for storing it. */
	size_t id_len = create ? strnlen(k->id, IG_ID_MAX + 1) : 0;
	if (id_len > IG_ID_MAX)
		return NULL;
	if (!s->client) {
		if (c->count >= c->max_clients)
			return NULL;
		if ((c->count + 1) * 4 > c->cap * 3) {
			if (!grow(c))
				return NULL;
			s = &c->slots[find_index(c, k->client)];
		}
		client_cache *cc = malloc(sizeof *cc);
		if (!cc)
			return NULL;
		cc_reset(cc, k, id_len);
		s->client = k->client;
		s->cc = cc;
		c->count++;
		return cc;
	}
	client_cache *cc = s->cc;
	if (cc->generation != k->generation || cc->role != k->role || !same_id(cc->id, k->id)) {
		if (!create)
			return NULL;
		cc_reset(cc, k, id_len);
	}
	return cc;
}

ig_aclcache_result ig_aclcache_get(ig_aclcache *c, const ig_aclcache_key *k)
{
	if (!c || !k || !k->client || !k->id || !k->topic || k->topic_len == 0 || k->topic_len > IG_ACLCACHE_TOPIC_MAX)
		return IG_ACLCACHE_MISS;
	client_cache *cc = client_for(c, k, false);
	if (!cc)
		return IG_ACLCACHE_MISS;
	/* cc holds decisions for k's id and role: the caller's fresh registry
	 * look-up renews what ig_aclcache_who may answer. */
	if (k->registry_generation)
		cc->who_generation = k->registry_generation;
	int i = entry_find(cc, k, topic_hash(k->topic, k->topic_len));
	if (i < 0)
		return IG_ACLCACHE_MISS;
	return (cc->allowed >> i) & 1 ? IG_ACLCACHE_ALLOW : IG_ACLCACHE_DENY;
}

void ig_aclcache_put(ig_aclcache *c, const ig_aclcache_key *k, bool allowed)
{
	if (!c || !k || !k->client || !k->id || !k->topic || k->topic_len == 0 || k->topic_len > IG_ACLCACHE_TOPIC_MAX)
		return;
	client_cache *cc = client_for(c, k, true);
	if (!cc)
		return;
	uint32_t h = topic_hash(k->topic, k->topic_len);
	int i = entry_find(cc, k, h);   /* the same question again: overwrite, never hold two answers */
	if (i < 0) {
		i = cc->next;
		cc->next = (uint8_t)((cc->next + 1) % IG_ACLCACHE_WAYS);
	}
	cc->hash[i] = h;
	cc->access[i] = k->access;
	cc->allowed = (uint8_t)((cc->allowed & ~(1u << i)) | (allowed ? 1u << i : 0u));
	cc->len[i] = (uint8_t)k->topic_len;
	memcpy(cc->topic[i], k->topic, k->topic_len);
	if (k->registry_generation)
		cc->who_generation = k->registry_generation;
}

bool ig_aclcache_who(const ig_aclcache *c, const void *client, const char *username, uint64_t registry_generation,
                     uint8_t *role)
{
	if (!c || !client || !username || !registry_generation)
		return false;
	const slot *s = &c->slots[find_index(c, client)];
	if (!s->client || s->cc->who_generation != registry_generation || !same_id(s->cc->id, username))
		return false;
	*role = s->cc->role;
	return true;
}

ig_aclcache_result ig_aclcache_get_known(ig_aclcache *c, const ig_aclcache_key *k, uint8_t *role)
{
	if (!c || !k || !k->client || !k->id || !k->registry_generation || !role)
		return IG_ACLCACHE_UNKNOWN;
	const slot *s = &c->slots[find_index(c, k->client)];
	if (!s->client)
		return IG_ACLCACHE_UNKNOWN;
	client_cache *cc = s->cc;
	/* As ig_aclcache_who; the id then also matches for the get below. */
	if (cc->who_generation != k->registry_generation || !same_id(cc->id, k->id))
		return IG_ACLCACHE_UNKNOWN;
	*role = cc->role;
	/* As ig_aclcache_get with role = cc->role: only the policy generation
	 * and the question are left to compare (who_generation already equals
	 * the registry's, so the get's refresh of it has nothing to do). */
	if (cc->generation != k->generation || !k->topic || k->topic_len == 0 || k->topic_len > IG_ACLCACHE_TOPIC_MAX)
		return IG_ACLCACHE_MISS;
	int i = entry_find(cc, k, topic_hash(k->topic, k->topic_len));
	if (i < 0)
		return IG_ACLCACHE_MISS;
	return (cc->allowed >> i) & 1 ? IG_ACLCACHE_ALLOW : IG_ACLCACHE_DENY;
}

void ig_aclcache_forget(ig_aclcache *c, const void *client)
{
	if (!c || !client)
		return;
	size_t mask = c->cap - 1, i = find_index(c, client);
	if (!c->slots[i].client)
		return;
	free(c->slots[i].cc);
	c->slots[i].client = NULL;
	c->slots[i].cc = NULL;
	c->count--;
	for (size_t j = (i + 1) & mask; c->slots[j].client; j = (j + 1) & mask) {
		size_t home = ptr_hash(c->slots[j].client) & mask;
		bool movable = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
		if (movable) {
			c->slots[i] = c->slots[j];
			c->slots[j].client = NULL;
			c->slots[j].cc = NULL;
			i = j;
		}
	}
}

size_t ig_aclcache_clients(const ig_aclcache *c)
{
	return c ? c->count : 0;
}

size_t ig_aclcache_client_bytes(void)
{
	return sizeof(client_cache) + sizeof(slot) * 3;   /* the table is kept 3/8 to 3/4 full */
}
