/*
 * aclcache.c: remembered access decisions, per connected client.
 *
 * Why this exists: see ig_aclcache.h. The layout keeps a hit to one hash of
 * the client handle, one short id compare and a scan of eight small entries
 * with a 32-bit topic hash in front of each memcmp: less work than walking
 * a role's patterns, and no allocation except when a client first appears.
 * Clients are located by an open-addressing table with backward-shift
 * deletion (no tombstones to pile up as clients come and go).
 */
#include "ig_aclcache.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry {
	uint32_t hash;
	uint8_t access;
	uint8_t allowed;
	uint8_t len;                 /* 0 = empty; topics are never empty */
	char topic[IG_ACLCACHE_TOPIC_MAX];
} entry;

typedef struct client_cache {
	char id[IG_ID_MAX + 1];
	uint8_t role;
	uint8_t next;                /* round-robin victim */
	uint64_t generation;
	entry e[IG_ACLCACHE_WAYS];
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
	memset(cc->e, 0, sizeof cc->e);
	memcpy(cc->id, k->id, id_len + 1);
	cc->role = k->role;
	cc->next = 0;
	cc->generation = k->generation;
}

/* The client's cache, valid for (id, role, generation); emptied if it was
 * filled for anything else. NULL when there is none and create is false,
 * or when it cannot be made. */
static client_cache *client_for(ig_aclcache *c, const ig_aclcache_key *k, bool create)
{
	size_t id_len = strnlen(k->id, IG_ID_MAX + 1);
	if (id_len > IG_ID_MAX)
		return NULL;
	slot *s = &c->slots[find_index(c, k->client)];
	if (!s->client) {
		if (!create || c->count >= c->max_clients)
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
	if (cc->generation != k->generation || cc->role != k->role || strcmp(cc->id, k->id) != 0) {
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
	uint32_t h = topic_hash(k->topic, k->topic_len);
	for (size_t i = 0; i < IG_ACLCACHE_WAYS; i++) {
		const entry *e = &cc->e[i];
		if (e->hash == h && e->len == k->topic_len && e->access == k->access &&
		    memcmp(e->topic, k->topic, k->topic_len) == 0)
			return e->allowed ? IG_ACLCACHE_ALLOW : IG_ACLCACHE_DENY;
	}
	return IG_ACLCACHE_MISS;
}

void ig_aclcache_put(ig_aclcache *c, const ig_aclcache_key *k, bool allowed)
{
	if (!c || !k || !k->client || !k->id || !k->topic || k->topic_len == 0 || k->topic_len > IG_ACLCACHE_TOPIC_MAX)
		return;
	client_cache *cc = client_for(c, k, true);
	if (!cc)
		return;
	uint32_t h = topic_hash(k->topic, k->topic_len);
	entry *e = NULL;
	for (size_t i = 0; i < IG_ACLCACHE_WAYS && !e; i++)
		if (cc->e[i].len == k->topic_len && cc->e[i].hash == h && cc->e[i].access == k->access &&
		    memcmp(cc->e[i].topic, k->topic, k->topic_len) == 0)
			e = &cc->e[i];   /* the same question again: overwrite, never hold two answers */
	if (!e) {
		e = &cc->e[cc->next];
		cc->next = (uint8_t)((cc->next + 1) % IG_ACLCACHE_WAYS);
	}
	e->hash = h;
	e->access = k->access;
	e->allowed = allowed ? 1 : 0;
	e->len = (uint8_t)k->topic_len;
	memcpy(e->topic, k->topic, k->topic_len);
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
