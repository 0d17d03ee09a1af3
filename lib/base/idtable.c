/*
 * idtable.c: the shared bounded id-keyed table (see ig_idtable.h).
 *
 * Why this exists: four users (join codes, sessions, address bans, id
 * budgets) need the same thing, and a table written once can be tested
 * once: against a reference model, through growth, deletion and sweeps.
 *
 * Layout: one array of fixed-size slots. A slot is a 32-bit hash, a key
 * length (0 = empty), the key, then the value at an 8-byte boundary. The
 * stored hash makes growth and backward-shift deletion free of rehashing
 * and lets a probe skip most key compares. The slot count is a power of
 * two and the load stays at or under 3/4, so probes stay short.
 */
#include "ig_idtable.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define MIN_SLOTS 8
#define HEADER_BYTES 5   /* uint32 hash, uint8 key length */

struct ig_idtable {
	uint8_t *slots;
	size_t cap;           /* slots, a power of two */
	size_t max_cap;       /* slots for max_entries */
	size_t count, max_entries;
	size_t key_max, value_size, value_off, slot_bytes;
	uint8_t hkey[crypto_shorthash_KEYBYTES];
};

static size_t round8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

/* Slots for n entries at a load of at most 3/4. */
static size_t slots_for(size_t n)
{
	size_t want = n + (n + 2) / 3, cap = MIN_SLOTS;
	while (cap < want)
		cap <<= 1;
	return cap;
}

static inline uint8_t *slot_at(const ig_idtable *t, size_t i)
{
	return t->slots + i * t->slot_bytes;
}

static inline uint32_t slot_hash(const uint8_t *s)
{
	uint32_t h;
	memcpy(&h, s, sizeof h);
	return h;
}

static inline uint8_t slot_klen(const uint8_t *s)
{
	return s[4];
}

static uint32_t key_hash(const ig_idtable *t, const void *key, size_t len)
{
	uint8_t h[crypto_shorthash_BYTES];
	crypto_shorthash(h, key, len, t->hkey);
	uint32_t v;
	memcpy(&v, h, sizeof v);
	return v;
}

int ig_idtable_new(ig_idtable **out, size_t key_max, size_t value_size, size_t initial_entries,
                   size_t max_entries)
{
	*out = NULL;
	if (key_max == 0 || key_max > IG_IDTABLE_KEY_MAX || max_entries == 0 ||
	    max_entries > IG_IDTABLE_ENTRIES_MAX || value_size > ((size_t)1 << 20))
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	ig_idtable *t = calloc(1, sizeof *t);
	if (!t)
		return IG_ERR_NOMEM;
	t->key_max = key_max;
	t->value_size = value_size;
	t->value_off = round8(HEADER_BYTES + key_max);
	t->slot_bytes = t->value_off + round8(value_size);
	t->max_entries = max_entries;
	t->max_cap = slots_for(max_entries);
	t->cap = slots_for(initial_entries < max_entries ? initial_entries : max_entries);
	t->slots = calloc(t->cap, t->slot_bytes);
	if (!t->slots) {
		free(t);
		return IG_ERR_NOMEM;
	}
	crypto_shorthash_keygen(t->hkey);
	*out = t;
	return IG_OK;
}

void ig_idtable_free(ig_idtable *t)
{
	if (!t)
		return;
	free(t->slots);
	sodium_memzero(t->hkey, sizeof t->hkey);
	free(t);
}

size_t ig_idtable_count(const ig_idtable *t)
{
	return t ? t->count : 0;
}

size_t ig_idtable_max(const ig_idtable *t)
{
	return t ? t->max_entries : 0;
}

size_t ig_idtable_bytes(const ig_idtable *t)
{
	return t ? sizeof *t + t->cap * t->slot_bytes : 0;
}

size_t ig_idtable_slot_bytes(const ig_idtable *t)
{
	return t ? t->slot_bytes : 0;
}

/* The slot holding key, or (found = false) the empty slot where it would go. */
static size_t probe(const ig_idtable *t, const void *key, size_t len, uint32_t h, bool *found)
{
	size_t mask = t->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		const uint8_t *s = slot_at(t, i);
		uint8_t kl = slot_klen(s);
		if (kl == 0) {
			*found = false;
			return i;
		}
		if (kl == len && slot_hash(s) == h && memcmp(s + HEADER_BYTES, key, len) == 0) {
			*found = true;
			return i;
		}
	}
}

void *ig_idtable_find(const ig_idtable *t, const void *key, size_t key_len)
{
	if (!t || !key || key_len == 0 || key_len > t->key_max)
		return NULL;
	bool found;
	size_t i = probe(t, key, key_len, key_hash(t, key, key_len), &found);
	return found ? slot_at(t, i) + t->value_off : NULL;
}

static int grow(ig_idtable *t)
{
	size_t cap = t->cap * 2;
	uint8_t *ns = calloc(cap, t->slot_bytes);
	if (!ns)
		return IG_ERR_NOMEM;
	size_t mask = cap - 1;
	for (size_t i = 0; i < t->cap; i++) {
		const uint8_t *s = slot_at(t, i);
		if (slot_klen(s) == 0)
			continue;
		size_t j = slot_hash(s) & mask;
		while (ns[j * t->slot_bytes + 4] != 0)
			j = (j + 1) & mask;
		memcpy(ns + j * t->slot_bytes, s, t->slot_bytes);
	}
	free(t->slots);
	t->slots = ns;
	t->cap = cap;
	return IG_OK;
}

/* Empties slot i and shifts the rest of its cluster back, so no probe
 * sequence ever crosses a hole it should not. Returns nothing: the entry
 * that now sits in slot i (if any) is one that was after it. */
static void remove_at(ig_idtable *t, size_t i)
{
	size_t mask = t->cap - 1;
	for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
		uint8_t *s = slot_at(t, j);
		if (slot_klen(s) == 0)
			break;
		size_t home = slot_hash(s) & mask;
		/* Movable into the hole at i if its home is not in (i, j]. */
		bool movable = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
		if (movable) {
			memcpy(slot_at(t, i), s, t->slot_bytes);
			i = j;
		}
	}
	memset(slot_at(t, i), 0, t->slot_bytes);
	t->count--;
}

static void *fill(ig_idtable *t, size_t i, const void *key, size_t len, uint32_t h)
{
	uint8_t *s = slot_at(t, i);
	memset(s, 0, t->slot_bytes);
	memcpy(s, &h, sizeof h);
	s[4] = (uint8_t)len;
	memcpy(s + HEADER_BYTES, key, len);
	t->count++;
	return s + t->value_off;
}

static int put(ig_idtable *t, const void *key, size_t key_len, ig_idtable_pick_fn pick, void *ctx, void **value,
               bool *added)
{
	if (value)
		*value = NULL;
	if (added)
		*added = false;
	if (!t || !key || key_len == 0 || key_len > t->key_max)
		return IG_ERR_INVAL;
	uint32_t h = key_hash(t, key, key_len);
	bool found;
	size_t i = probe(t, key, key_len, h, &found);
	if (found) {
		if (value)
			*value = slot_at(t, i) + t->value_off;
		return IG_OK;
	}
	if (t->count >= t->max_entries) {
		if (!pick)
			return IG_ERR_RANGE;
		/* The first few entries from the key's home slot on: where the
		 * key would live, so its neighbours are the ones it competes with. */
		void *cand[IG_IDTABLE_EVICT_WAYS];
		size_t at[IG_IDTABLE_EVICT_WAYS], n = 0, mask = t->cap - 1;
		size_t scan = t->cap < IG_IDTABLE_EVICT_SCAN ? t->cap : IG_IDTABLE_EVICT_SCAN;
		for (size_t k = 0, j = h & mask; k < scan && n < IG_IDTABLE_EVICT_WAYS; k++, j = (j + 1) & mask) {
			uint8_t *s = slot_at(t, j);
			if (slot_klen(s) != 0) {
				cand[n] = s + t->value_off;
				at[n++] = j;
			}
		}
		int v = n ? pick(ctx, cand, n) : -1;
		if (v < 0 || (size_t)v >= n)
			return IG_ERR_RANGE;
		remove_at(t, at[v]);
		i = probe(t, key, key_len, h, &found);
	} else if ((t->count + 1) * 4 > t->cap * 3 && t->cap < t->max_cap) {
		int rc = grow(t);
		if (rc != IG_OK)
			return rc;
		i = probe(t, key, key_len, h, &found);
	}
	void *v = fill(t, i, key, key_len, h);
	if (value)
		*value = v;
	if (added)
		*added = true;
	return IG_OK;
}

int ig_idtable_put(ig_idtable *t, const void *key, size_t key_len, void **value, bool *added)
{
	return put(t, key, key_len, NULL, NULL, value, added);
}

int ig_idtable_put_evict(ig_idtable *t, const void *key, size_t key_len, ig_idtable_pick_fn pick, void *ctx,
                         void **value, bool *added)
{
	return put(t, key, key_len, pick, ctx, value, added);
}

bool ig_idtable_remove(ig_idtable *t, const void *key, size_t key_len)
{
	if (!t || !key || key_len == 0 || key_len > t->key_max)
		return false;
	bool found;
	size_t i = probe(t, key, key_len, key_hash(t, key, key_len), &found);
	if (found)
		remove_at(t, i);
	return found;
}

static size_t index_of(const ig_idtable *t, const void *value)
{
	return (size_t)((const uint8_t *)value - t->value_off - t->slots) / t->slot_bytes;
}

void ig_idtable_remove_value(ig_idtable *t, void *value)
{
	if (!t || !value)
		return;
	size_t i = index_of(t, value);
	if (i < t->cap && slot_klen(slot_at(t, i)) != 0)
		remove_at(t, i);
}

const void *ig_idtable_key(const ig_idtable *t, const void *value, size_t *key_len)
{
	const uint8_t *s = (const uint8_t *)value - t->value_off;
	if (key_len)
		*key_len = slot_klen(s);
	return s + HEADER_BYTES;
}

void *ig_idtable_next(const ig_idtable *t, size_t *cursor)
{
	if (!t)
		return NULL;
	for (size_t i = *cursor; i < t->cap; i++) {
		uint8_t *s = slot_at(t, i);
		if (slot_klen(s) != 0) {
			*cursor = i + 1;
			return s + t->value_off;
		}
	}
	*cursor = t->cap;
	return NULL;
}

size_t ig_idtable_sweep(ig_idtable *t, size_t *cursor, size_t slots, ig_idtable_keep_fn keep, void *ctx)
{
	if (!t || !keep || t->count == 0)
		return 0;
	size_t removed = 0, i = *cursor & (t->cap - 1);
	for (size_t k = 0; k < slots && t->count > 0; k++) {
		uint8_t *s = slot_at(t, i);
		if (slot_klen(s) != 0 && !keep(ctx, s + HEADER_BYTES, slot_klen(s), s + t->value_off)) {
			remove_at(t, i);
			removed++;
			continue;   /* slot i may now hold an entry shifted back from after it */
		}
		i = (i + 1) & (t->cap - 1);
	}
	*cursor = i;
	return removed;
}
