/*
 * registry.c: the in-memory identity index.
 *
 * Why this exists: every CONNECT and every ACL check asks about an
 * identity, so lookups must be O(1), allocation-free and cheap in cache
 * misses, and a million identities must fit in a few hundred megabytes at
 * most. The layout:
 *
 *   entries  compact ig_identity records (id stored inline), bump-allocated
 *            from large arena chunks: no per-entry malloc header, and a
 *            released entry goes on a per-size free list for reuse; past
 *            the first few chunks they are bigger and asked for huge pages;
 *   order    array of entry pointers in insertion order (for listing);
 *   slots    open-addressing table (linear probing, backward-shift delete,
 *            so no tombstones), each slot = index into order + 32 bits of
 *            the id's hash, so most probes never touch the entry.
 *
 * The hash is SipHash (crypto_shorthash) with a random key per registry, so
 * an attacker who picks ids cannot force collisions.
 *
 * Each entry carries one private byte after the id's NUL for in-flight
 * state the public struct has no room for.
 *
 * Growing the slot table means holding the old and the new one at once and
 * rehashing every entry; a replay that knows how many ids are coming
 * (ig_registry_expect) sizes it once instead. Big tables and chunks are
 * mapped directly and asked for huge pages: at ten million ids each random
 * probe would otherwise cost a TLB miss, and filling the arena a page fault
 * per 4 kB.
 */
#include "ig_registry.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ARENA_CHUNK (256 * 1024)
/* After this many chunks the registry is big: later chunks are this size,
 * mapped, with huge pages (a partly used last chunk costs at most one huge
 * page of resident memory, since untouched pages are never backed). */
#define ARENA_SMALL_CHUNKS 16
#define ARENA_BIG_CHUNK (8u << 20)
/* Slot tables from this size on are mapped directly (see above). */
#define MAP_THRESHOLD (4u << 20)
#define ENTRY_ALIGN 8
#define MIN_SLOTS 64
#define SIZE_CLASSES 32

/* Private flags, stored at id[id_len + 1]. */
#define F_REVOKE_INFLIGHT 0x01  /* mark_revoked ran; the revoke record is not durable yet */
#define F_SHADOWS_REVOKED 0x02  /* PENDING that replaced a revoked entry; saved copy exists */

typedef struct slot {
	uint32_t pos_plus1;  /* index into order + 1; 0 = empty */
	uint32_t hash;       /* low 32 bits of the keyed hash */
} slot;

typedef struct arena_chunk {
	struct arena_chunk *next;
	size_t used;
	size_t size;             /* of the whole chunk, header included */
	_Alignas(ENTRY_ALIGN) unsigned char data[];
} arena_chunk;

/* What a revoked entry looked like before reserve() turned it PENDING, so
 * release() can put it back if the new enroll never becomes durable. */
typedef struct saved_state {
	ig_identity *e;
	uint8_t pk[IG_PK_BYTES];
	uint64_t enrolled_index, revoked_index, enrolled_ts_ms;
	uint8_t role, status, flags;
} saved_state;

struct ig_registry {
	uint8_t hash_key[crypto_shorthash_KEYBYTES];

	slot *slots;
	size_t slot_cap;         /* power of two */
	size_t live;             /* entries present */

	ig_identity **order;
	size_t order_len, order_cap;
	size_t holes;            /* NULLs in order left by release() */

	arena_chunk *chunks;     /* newest first */
	size_t chunk_count;
	size_t arena_bytes;      /* sum of the chunks' sizes */
	void *free_list[SIZE_CLASSES];

	saved_state *saved;
	size_t saved_len, saved_cap;

	uint64_t counts[3][IG_ROLE_COUNT]; /* [status][role]; [status][0] = all roles */
	uint64_t generation;     /* bumped by every change; see ig_registry_generation */
};

const char *ig_registry_status_name(ig_id_status st)
{
	switch (st) {
	case IG_ID_PENDING: return "pending";
	case IG_ID_ACTIVE: return "active";
	case IG_ID_REVOKED: return "revoked";
	}
	return "unknown";
}

/* ---- big blocks ---------------------------------------------------------- */

/* Zeroed memory: calloc below MAP_THRESHOLD, else an anonymous mapping
 * (zero pages for free) with a huge-page hint. */
static void *big_alloc(size_t bytes)
{
	if (bytes < MAP_THRESHOLD)
		return calloc(1, bytes);
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
#ifdef MADV_HUGEPAGE
	(void)madvise(p, bytes, MADV_HUGEPAGE); /* a hint: without it everything still works */
#endif
	return p;
}

static void big_free(void *p, size_t bytes)
{
	if (!p)
		return;
	if (bytes < MAP_THRESHOLD)
		free(p);
	else
		(void)munmap(p, bytes);
}

/* ---- entries ------------------------------------------------------------- */

static size_t entry_size(size_t id_len)
{
	size_t n = offsetof(ig_identity, id) + id_len + 2; /* NUL + private flags */
	return (n + ENTRY_ALIGN - 1) & ~(size_t)(ENTRY_ALIGN - 1);
}

static uint8_t *entry_flags(const ig_identity *e)
{
	return (uint8_t *)&e->id[e->id_len + 1];
}

static ig_identity *entry_alloc(ig_registry *r, size_t id_len)
{
	size_t size = entry_size(id_len);
	size_t cls = size / ENTRY_ALIGN;
	if (cls < SIZE_CLASSES && r->free_list[cls]) {
		void *p = r->free_list[cls];
		memcpy(&r->free_list[cls], p, sizeof(void *));
		return p;
	}
	if (!r->chunks || r->chunks->used + size > r->chunks->size - sizeof(arena_chunk)) {
		size_t csize = r->chunk_count < ARENA_SMALL_CHUNKS ? ARENA_CHUNK : ARENA_BIG_CHUNK;
		arena_chunk *c = big_alloc(csize);
		if (!c)
			return NULL;
		c->next = r->chunks;
		c->used = 0;
		c->size = csize;
		r->chunks = c;
		r->chunk_count++;
		r->arena_bytes += csize;
	}
	void *p = r->chunks->data + r->chunks->used;
	r->chunks->used += size;
	return p;
}

static void entry_free(ig_registry *r, ig_identity *e)
{
	size_t cls = entry_size(e->id_len) / ENTRY_ALIGN;
	if (cls >= SIZE_CLASSES)
		return; /* cannot happen with ids <= 64 bytes; leak rather than corrupt */
	memcpy(e, &r->free_list[cls], sizeof(void *));
	r->free_list[cls] = e;
}

/* ---- counters ------------------------------------------------------------ */

static void count_add(ig_registry *r, const ig_identity *e, int64_t delta)
{
	if (e->status > IG_ID_REVOKED || e->role >= IG_ROLE_COUNT)
		return;
	r->counts[e->status][e->role] += (uint64_t)delta;
	r->counts[e->status][0] += (uint64_t)delta;
}

uint64_t ig_registry_count(const ig_registry *r, ig_id_status st, ig_role role)
{
	if (!r || (unsigned)st > IG_ID_REVOKED || (unsigned)role >= IG_ROLE_COUNT)
		return 0;
	return r->counts[st][role];
}

/* ---- hash table ---------------------------------------------------------- */

static uint32_t hash_id(const ig_registry *r, const char *id, size_t len)
{
	uint8_t h[crypto_shorthash_BYTES];
	crypto_shorthash(h, (const unsigned char *)id, len, r->hash_key);
	return ig_get_u32(h);
}

/* Returns the slot index holding id, or -1. */
static long find_slot(const ig_registry *r, const char *id, size_t len, uint32_t h)
{
	size_t mask = r->slot_cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		const slot *s = &r->slots[i];
		if (s->pos_plus1 == 0)
			return -1;
		if (s->hash == h) {
			const ig_identity *e = r->order[s->pos_plus1 - 1];
			if (e->id_len == len && memcmp(e->id, id, len) == 0)
				return (long)i;
		}
	}
}

static void slot_place(slot *slots, size_t cap, uint32_t pos_plus1, uint32_t h)
{
	size_t mask = cap - 1;
	size_t i = h & mask;
	while (slots[i].pos_plus1 != 0)
		i = (i + 1) & mask;
	slots[i].pos_plus1 = pos_plus1;
	slots[i].hash = h;
}

static int slots_resize(ig_registry *r, size_t cap)
{
	slot *ns = big_alloc(cap * sizeof *ns);
	if (!ns)
		return IG_ERR_NOMEM;
	for (size_t i = 0; i < r->slot_cap; i++)
		if (r->slots[i].pos_plus1)
			slot_place(ns, cap, r->slots[i].pos_plus1, r->slots[i].hash);
	big_free(r->slots, r->slot_cap * sizeof *r->slots);
	r->slots = ns;
	r->slot_cap = cap;
	return IG_OK;
}

/* Linear-probing delete: pull later members of the cluster back so lookups
 * never need tombstones. */
static void slot_remove(ig_registry *r, size_t i)
{
	size_t mask = r->slot_cap - 1;
	size_t j = i;
	for (;;) {
		j = (j + 1) & mask;
		if (r->slots[j].pos_plus1 == 0)
			break;
		size_t home = r->slots[j].hash & mask;
		/* Move j into the hole at i unless j's home lies cyclically in (i, j]. */
		bool home_between = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
		if (!home_between) {
			r->slots[i] = r->slots[j];
			i = j;
		}
	}
	r->slots[i].pos_plus1 = 0;
	r->slots[i].hash = 0;
}

/* Drops the NULL holes from order and renumbers the slots. */
static void order_compact(ig_registry *r)
{
	uint32_t *remap = malloc(r->order_len * sizeof *remap);
	if (!remap)
		return; /* holes are harmless; try again next time */
	size_t w = 0;
	for (size_t i = 0; i < r->order_len; i++) {
		remap[i] = (uint32_t)(w + 1);
		if (r->order[i])
			r->order[w++] = r->order[i];
	}
	for (size_t i = 0; i < r->slot_cap; i++)
		if (r->slots[i].pos_plus1)
			r->slots[i].pos_plus1 = remap[r->slots[i].pos_plus1 - 1];
	free(remap);
	r->order_len = w;
	r->holes = 0;
}

static ig_identity *insert_new(ig_registry *r, const char *id, size_t len, uint32_t h)
{
	if (r->order_len >= UINT32_MAX - 1)
		return NULL;
	if ((r->live + 1) * 4 > r->slot_cap * 3 && slots_resize(r, r->slot_cap * 2) != IG_OK)
		return NULL;
	if (r->order_len == r->order_cap) {
		size_t cap = r->order_cap ? r->order_cap * 2 : 64;
		ig_identity **no = realloc(r->order, cap * sizeof *no);
		if (!no)
			return NULL;
		r->order = no;
		r->order_cap = cap;
	}
	ig_identity *e = entry_alloc(r, len);
	if (!e)
		return NULL;
	memset(e, 0, entry_size(len));
	e->id_len = (uint8_t)len;
	memcpy(e->id, id, len);
	e->id[len] = '\0';
	r->order[r->order_len++] = e;
	slot_place(r->slots, r->slot_cap, (uint32_t)r->order_len, h);
	r->live++;
	return e;
}

static void remove_entry(ig_registry *r, const char *id, size_t len)
{
	uint32_t h = hash_id(r, id, len);
	long si = find_slot(r, id, len, h);
	if (si < 0)
		return;
	size_t pos = r->slots[si].pos_plus1 - 1;
	ig_identity *e = r->order[pos];
	count_add(r, e, -1);
	slot_remove(r, (size_t)si);
	r->order[pos] = NULL;
	r->holes++;
	while (r->order_len > 0 && r->order[r->order_len - 1] == NULL) {
		r->order_len--;
		r->holes--;
	}
	r->live--;
	entry_free(r, e);
	if (r->holes > 64 && r->holes * 2 > r->order_len)
		order_compact(r);
}

/* ---- public -------------------------------------------------------------- */

ig_registry *ig_registry_new(void)
{
	if (ig_init() != IG_OK)
		return NULL;
	ig_registry *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	crypto_shorthash_keygen(r->hash_key);
	r->slots = big_alloc(MIN_SLOTS * sizeof *r->slots);
	if (!r->slots) {
		free(r);
		return NULL;
	}
	r->slot_cap = MIN_SLOTS;
	r->generation = 1;
	return r;
}

uint64_t ig_registry_generation(const ig_registry *r)
{
	return r->generation;
}

void ig_registry_free(ig_registry *r)
{
	if (!r)
		return;
	for (arena_chunk *c = r->chunks, *next; c; c = next) {
		next = c->next;
		big_free(c, c->size);
	}
	big_free(r->slots, r->slot_cap * sizeof *r->slots);
	free(r->order);
	free(r->saved);
	free(r);
}

static ig_identity *find_mut(const ig_registry *r, const char *id, size_t len)
{
	if (!r || !id || len == 0 || len > IG_ID_MAX)
		return NULL;
	long si = find_slot(r, id, len, hash_id(r, id, len));
	return si < 0 ? NULL : r->order[r->slots[si].pos_plus1 - 1];
}

const ig_identity *ig_registry_find(const ig_registry *r, const char *id, size_t id_len)
{
	return find_mut(r, id, id_len);
}

void ig_registry_prefetch(const ig_registry *r, const char *id, size_t len)
{
	if (!r || !id || len == 0 || len > IG_ID_MAX)
		return;
	__builtin_prefetch(&r->slots[hash_id(r, id, len) & (r->slot_cap - 1)], 1);
}

int ig_registry_expect(ig_registry *r, uint64_t more)
{
	if (!r)
		return IG_ERR_INVAL;
	uint64_t want = more > UINT32_MAX ? UINT32_MAX : (uint64_t)r->live + more;
	if (want > UINT32_MAX - 1)
		want = UINT32_MAX - 1; /* the most order[] can index */
	size_t cap = r->slot_cap;
	while (want * 4 > (uint64_t)cap * 3)
		cap *= 2;
	if (cap > r->slot_cap && slots_resize(r, cap) != IG_OK)
		return IG_ERR_NOMEM;
	/* Untouched pages of a big array cost nothing, so order[] may be sized
	 * for every id the caller expects. */
	size_t order_want = r->order_len + (size_t)(want - r->live);
	if (order_want > r->order_cap) {
		ig_identity **no = realloc(r->order, order_want * sizeof *no);
		if (!no)
			return IG_ERR_NOMEM;
		r->order = no;
		r->order_cap = order_want;
	}
	return IG_OK;
}

static saved_state *saved_find(ig_registry *r, const ig_identity *e)
{
	for (size_t i = 0; i < r->saved_len; i++)
		if (r->saved[i].e == e)
			return &r->saved[i];
	return NULL;
}

static void saved_drop(ig_registry *r, saved_state *s)
{
	*s = r->saved[--r->saved_len];
}

/* Puts a shadowed revoked entry back the way it was. */
static void saved_restore(ig_registry *r, ig_identity *e)
{
	saved_state *s = saved_find(r, e);
	count_add(r, e, -1);
	if (s) {
		memcpy(e->pk, s->pk, IG_PK_BYTES);
		e->enrolled_index = s->enrolled_index;
		e->revoked_index = s->revoked_index;
		e->enrolled_ts_ms = s->enrolled_ts_ms;
		e->role = s->role;
		e->status = s->status;
		*entry_flags(e) = s->flags;
		saved_drop(r, s);
	} else {
		/* Lost the copy (cannot happen); stay unusable. */
		e->status = IG_ID_REVOKED;
		*entry_flags(e) = 0;
	}
	count_add(r, e, +1);
}

static int corrupt(ig_error *err)
{
	if (err)
		err->code = IG_ERR_CORRUPT;
	return IG_ERR_CORRUPT;
}

/* The rules an enroll must pass, checked without changing anything; *found
 * gets the id's entry (NULL if none) and *h its hash, for the apply. */
static int enroll_rules(const ig_registry *r, const ig_record *rec, const ig_enroll *en, ig_identity **found,
                        uint32_t *h_out, ig_error *err)
{
	if (!r || !rec || !en || rec->type != IG_REC_ENROLL)
		return ig_error_set(err, IG_ERR_INVAL, "registry apply: missing registry, enroll record or its body");
	/* The decoder already ran these field checks; they stay because this
	 * entry point trusts its caller for the decode, not for the rules. */
	size_t len = strnlen(en->id, sizeof en->id);
	if (!ig_id_valid(en->id, len))
		return ig_error_set(err, IG_ERR_CORRUPT, "enroll record: field id is not a valid identity id");
	if (en->role <= IG_ROLE_NONE || en->role >= IG_ROLE_COUNT)
		return ig_error_set(err, IG_ERR_CORRUPT, "enroll of \"%s\": field role (%d) is not a known role", en->id,
		                    (int)en->role);

	/* One SipHash for both the lookup and the insert: at a 10M replay the
	 * hash is a visible share of the apply thread. */
	uint32_t h = hash_id(r, en->id, len);
	long si = find_slot(r, en->id, len, h);
	ig_identity *e = si < 0 ? NULL : r->order[r->slots[si].pos_plus1 - 1];
	*found = e;
	*h_out = h;
	if (e && e->status == IG_ID_ACTIVE)
		return ig_error_set(err, IG_ERR_CORRUPT, "enroll of \"%s\", which is already active", en->id);
	/* Only an admin may give a revoked id a new key (docs/LEDGER.md "State
	 * rules"); a join code claims only ids the ledger has never enrolled. */
	if (en->has_join_code && e &&
	    (e->status == IG_ID_REVOKED || (*entry_flags(e) & F_SHADOWS_REVOKED)))
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "enroll record %llu: a join code claims \"%s\", which was enrolled before "
		                    "(ledger index %llu); only an admin may re-enrol a revoked id",
		                    (unsigned long long)rec->index, en->id, (unsigned long long)e->enrolled_index);
	if (e && e->status == IG_ID_REVOKED && (*entry_flags(e) & F_REVOKE_INFLIGHT))
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "enroll of \"%s\" while its revocation is not yet durable", en->id);
	return IG_OK;
}

int ig_registry_check_enroll(const ig_registry *r, const ig_record *rec, const ig_enroll *en, ig_error *err)
{
	ig_identity *e;
	uint32_t h;
	return enroll_rules(r, rec, en, &e, &h, err);
}

int ig_registry_apply_enroll(ig_registry *r, const ig_record *rec, const ig_enroll *en, ig_error *err)
{
	if (r)
		r->generation++;   /* whatever follows, readers re-check */
	ig_identity *e;
	uint32_t h;
	int rc = enroll_rules(r, rec, en, &e, &h, err);
	if (rc != IG_OK)
		return rc;
	size_t len = strnlen(en->id, sizeof en->id);
	if (e && e->status == IG_ID_PENDING) {
		/* Our own reservation has become durable. */
		saved_state *s = saved_find(r, e);
		if (s)
			saved_drop(r, s);
	}
	if (!e) {
		e = insert_new(r, en->id, len, h);
		if (!e)
			return ig_error_set(err, IG_ERR_NOMEM, "out of memory adding identity \"%s\"", en->id);
	} else {
		count_add(r, e, -1);
	}
	memcpy(e->pk, en->pk, IG_PK_BYTES);
	e->role = (uint8_t)en->role;
	e->status = IG_ID_ACTIVE;
	e->enrolled_index = rec->index;
	e->enrolled_ts_ms = rec->ts_ms;
	e->revoked_index = 0;
	*entry_flags(e) = 0;
	count_add(r, e, +1);
	return IG_OK;
}

static int apply_enroll(ig_registry *r, const ig_record *rec, ig_error *err)
{
	ig_enroll en;
	int rc = ig_record_enroll_decode(rec->body, rec->body_len, &en, err);
	if (rc != IG_OK)
		return corrupt(err); /* the decoder's message already names the field */
	return ig_registry_apply_enroll(r, rec, &en, err);
}

static int apply_revoke(ig_registry *r, const ig_record *rec, ig_error *err)
{
	ig_revoke rv;
	int rc = ig_record_revoke_decode(rec->body, rec->body_len, &rv, err);
	if (rc != IG_OK)
		return corrupt(err); /* the decoder's message already names the field */
	size_t len = strnlen(rv.id, sizeof rv.id);
	ig_identity *e = find_mut(r, rv.id, len);
	if (!e)
		return ig_error_set(err, IG_ERR_CORRUPT, "revoke of \"%s\", which was never enrolled", rv.id);
	if (e->status == IG_ID_PENDING)
		return ig_error_set(err, IG_ERR_CORRUPT, "revoke of \"%s\", whose enrollment is not yet durable", rv.id);
	if (e->status == IG_ID_REVOKED && !(*entry_flags(e) & F_REVOKE_INFLIGHT))
		return ig_error_set(err, IG_ERR_CORRUPT, "revoke of \"%s\", which is already revoked", rv.id);
	count_add(r, e, -1);
	e->status = IG_ID_REVOKED;
	e->revoked_index = rec->index;
	*entry_flags(e) = 0;
	count_add(r, e, +1);
	return IG_OK;
}

int ig_registry_apply(ig_registry *r, const ig_record *rec, ig_error *err)
{
	if (r)
		r->generation++;   /* whatever follows, readers re-check */
	if (!r || !rec)
		return ig_error_set(err, IG_ERR_INVAL, "registry apply: missing registry or record");
	switch (rec->type) {
	case IG_REC_ENROLL: return apply_enroll(r, rec, err);
	case IG_REC_REVOKE: return apply_revoke(r, rec, err);
	default: return IG_OK; /* genesis and later types carry no identity state */
	}
}

int ig_registry_reserve(ig_registry *r, const char *id, ig_role role, const uint8_t pk[IG_PK_BYTES])
{
	if (r)
		r->generation++;   /* whatever follows, readers re-check */
	if (!r || !id || !pk || role <= IG_ROLE_NONE || role >= IG_ROLE_COUNT)
		return IG_ERR_INVAL;
	size_t len = strnlen(id, IG_ID_MAX + 1);
	if (!ig_id_valid(id, len))
		return IG_ERR_INVAL;
	ig_identity *e = find_mut(r, id, len);
	if (e && e->status != IG_ID_REVOKED)
		return IG_ERR_EXISTS;
	if (e && (*entry_flags(e) & F_REVOKE_INFLIGHT))
		return IG_ERR_STATE; /* retry once the revocation is durable */
	if (e) {
		if (r->saved_len == r->saved_cap) {
			size_t cap = r->saved_cap ? r->saved_cap * 2 : 8;
			saved_state *ns = realloc(r->saved, cap * sizeof *ns);
			if (!ns)
				return IG_ERR_NOMEM;
			r->saved = ns;
			r->saved_cap = cap;
		}
		saved_state *s = &r->saved[r->saved_len++];
		s->e = e;
		memcpy(s->pk, e->pk, IG_PK_BYTES);
		s->enrolled_index = e->enrolled_index;
		s->revoked_index = e->revoked_index;
		s->enrolled_ts_ms = e->enrolled_ts_ms;
		s->role = e->role;
		s->status = e->status;
		s->flags = *entry_flags(e);
		count_add(r, e, -1);
		*entry_flags(e) = F_SHADOWS_REVOKED;
	} else {
		e = insert_new(r, id, len, hash_id(r, id, len));
		if (!e)
			return IG_ERR_NOMEM;
	}
	memcpy(e->pk, pk, IG_PK_BYTES);
	e->role = (uint8_t)role;
	e->status = IG_ID_PENDING;
	e->enrolled_index = 0;
	e->revoked_index = 0;
	e->enrolled_ts_ms = 0;
	count_add(r, e, +1);
	return IG_OK;
}

void ig_registry_release(ig_registry *r, const char *id)
{
	if (r)
		r->generation++;   /* whatever follows, readers re-check */
	if (!r || !id)
		return;
	size_t len = strnlen(id, IG_ID_MAX + 1);
	ig_identity *e = find_mut(r, id, len);
	if (!e || e->status != IG_ID_PENDING)
		return;
	if (*entry_flags(e) & F_SHADOWS_REVOKED)
		saved_restore(r, e);
	else
		remove_entry(r, id, len);
}

int ig_registry_mark_revoked(ig_registry *r, const char *id, uint64_t index)
{
	if (r)
		r->generation++;   /* whatever follows, readers re-check */
	if (!r || !id)
		return IG_ERR_INVAL;
	size_t len = strnlen(id, IG_ID_MAX + 1);
	ig_identity *e = find_mut(r, id, len);
	if (!e)
		return IG_ERR_NOTFOUND;
	if (e->status == IG_ID_REVOKED && (*entry_flags(e) & F_REVOKE_INFLIGHT)) {
		/* Called again once the revoke record is durable (index != 0): the
		 * same effect as applying that record. */
		if (index != 0) {
			e->revoked_index = index;
			*entry_flags(e) &= (uint8_t)~F_REVOKE_INFLIGHT;
		}
		return IG_OK;
	}
	if (e->status != IG_ID_ACTIVE)
		return IG_ERR_STATE;
	count_add(r, e, -1);
	e->status = IG_ID_REVOKED;
	e->revoked_index = index;
	*entry_flags(e) |= F_REVOKE_INFLIGHT;
	count_add(r, e, +1);
	return IG_OK;
}

void ig_registry_foreach(const ig_registry *r, ig_identity_fn fn, void *ctx)
{
	if (!r || !fn)
		return;
	for (size_t i = 0; i < r->order_len; i++)
		if (r->order[i] && !fn(ctx, r->order[i]))
			return;
}

size_t ig_registry_memory(const ig_registry *r)
{
	if (!r)
		return 0;
	/* Every block we malloc costs its size plus the allocator's header. */
	const size_t overhead = 2 * sizeof(size_t);
	size_t total = sizeof *r + overhead;
	total += r->slot_cap * sizeof(slot) + overhead;
	total += r->order_cap * sizeof(ig_identity *) + overhead;
	total += r->arena_bytes + r->chunk_count * overhead;
	total += r->saved_cap * sizeof(saved_state) + (r->saved_cap ? overhead : 0);
	return total;
}
