/*
 * idmap.c: see ig_idmap.h. Entries live in one growing array of pointers
 * (insertion order, stable addresses) indexed by an open-addressing table
 * keyed with SipHash under a per-map random key, so ids chosen by an
 * attacker cannot pile up in one bucket.
 */
#include "ig_idmap.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
	uint64_t hash;
	void *value;
	char id[IG_ID_MAX + 1];
} entry;

struct ig_idmap {
	size_t value_size;
	entry **entries;        /* insertion order */
	size_t count, entries_cap;
	uint32_t *slots;        /* index + 1 into entries; 0 = empty */
	size_t slots_cap;       /* power of two */
	uint8_t key[crypto_shorthash_KEYBYTES];
};

static uint64_t hash_id(const ig_idmap *m, const char *id)
{
	uint8_t h[crypto_shorthash_BYTES];
	crypto_shorthash(h, (const uint8_t *)id, strlen(id), m->key);
	uint64_t v;
	memcpy(&v, h, sizeof v);
	return v;
}

ig_idmap *ig_idmap_new(size_t value_size)
{
	if (ig_init() != IG_OK)
		return NULL;
	ig_idmap *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	m->value_size = value_size;
	m->slots_cap = 64;
	m->slots = calloc(m->slots_cap, sizeof *m->slots);
	if (!m->slots) {
		free(m);
		return NULL;
	}
	randombytes_buf(m->key, sizeof m->key);
	return m;
}

void ig_idmap_free(ig_idmap *m, bool wipe_values)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->count; i++) {
		if (wipe_values)
			sodium_memzero(m->entries[i]->value, m->value_size);
		free(m->entries[i]);
	}
	free(m->entries);
	free(m->slots);
	free(m);
}

/* Slot holding id, or the empty slot where it would go. */
static size_t probe(const ig_idmap *m, const char *id, uint64_t h)
{
	size_t mask = m->slots_cap - 1, i = (size_t)h & mask;
	while (m->slots[i]) {
		const entry *e = m->entries[m->slots[i] - 1];
		if (e->hash == h && strcmp(e->id, id) == 0)
			break;
		i = (i + 1) & mask;
	}
	return i;
}

void *ig_idmap_get(const ig_idmap *m, const char *id)
{
	uint64_t h = hash_id(m, id);
	size_t i = probe(m, id, h);
	return m->slots[i] ? m->entries[m->slots[i] - 1]->value : NULL;
}

static bool grow_slots(ig_idmap *m)
{
	size_t cap = m->slots_cap * 2;
	uint32_t *slots = calloc(cap, sizeof *slots);
	if (!slots)
		return false;
	for (size_t k = 0; k < m->count; k++) {
		size_t i = (size_t)m->entries[k]->hash & (cap - 1);
		while (slots[i])
			i = (i + 1) & (cap - 1);
		slots[i] = (uint32_t)(k + 1);
	}
	free(m->slots);
	m->slots = slots;
	m->slots_cap = cap;
	return true;
}

void *ig_idmap_put(ig_idmap *m, const char *id)
{
	size_t len = strlen(id);
	if (len == 0 || len > IG_ID_MAX)
		return NULL;
	uint64_t h = hash_id(m, id);
	size_t i = probe(m, id, h);
	if (m->slots[i])
		return m->entries[m->slots[i] - 1]->value;
	if ((m->count + 1) * 4 > m->slots_cap * 3) {
		if (!grow_slots(m))
			return NULL;
		i = probe(m, id, h);
	}
	if (m->count == m->entries_cap) {
		size_t cap = m->entries_cap ? m->entries_cap * 2 : 64;
		entry **grown = realloc(m->entries, cap * sizeof *grown);
		if (!grown)
			return NULL;
		m->entries = grown;
		m->entries_cap = cap;
	}
	/* The value follows the entry header, aligned for any type. */
	size_t head = (sizeof(entry) + 15) & ~(size_t)15;
	entry *e = calloc(1, head + m->value_size);
	if (!e)
		return NULL;
	e->hash = h;
	e->value = (uint8_t *)e + head;
	memcpy(e->id, id, len + 1);
	m->entries[m->count++] = e;
	m->slots[i] = (uint32_t)m->count;
	return e->value;
}

size_t ig_idmap_count(const ig_idmap *m)
{
	return m->count;
}

void ig_idmap_foreach(const ig_idmap *m, ig_idmap_fn fn, void *ctx)
{
	for (size_t i = 0; i < m->count; i++)
		if (!fn(ctx, m->entries[i]->id, m->entries[i]->value))
			return;
}
