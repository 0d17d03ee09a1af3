/*
 * ig_idtable.h: one bounded hash table keyed by a short byte string.
 *
 * Why this exists: join codes, live sessions, login failures per address
 * and failed-check budgets per identity each need "find the entry for this
 * id, in O(1), in bounded memory", and each used to carry its own table
 * with its own hash, growth and deletion rules (and no memory budget for
 * three of them). This is the one table they share: open addressing with
 * linear probing, keys compared exactly, slots hashed with SipHash under a
 * key drawn at creation (so chosen ids cannot pile up in one run), and
 * backward-shift deletion, so deleting never leaves tombstones and a table
 * that churns for months probes as fast as a fresh one.
 *
 * Keys are 1..key_max bytes (an identity id of up to IG_ID_MAX chars, a
 * 16-byte join-code id, an address key) and are copied into the table.
 * Values are value_size bytes, 8-byte aligned, zeroed when added. A value
 * pointer stays valid until the next put or remove on the table (both may
 * move entries); callers do not keep it across those.
 *
 * Every table has a memory budget, max_entries, fixed at creation. A table
 * made with initial_entries >= max_entries allocates once and never again;
 * one made smaller doubles as it fills, up to the size for max_entries.
 * At the budget, ig_idtable_put refuses; ig_idtable_put_evict lets the
 * caller choose a victim among a few entries near the new key's home slot
 * (a neighbourhood an attacker cannot aim at, since the hash key is secret),
 * or refuse.
 */
#ifndef IG_IDTABLE_H
#define IG_IDTABLE_H

#include "ig_common.h"

#define IG_IDTABLE_KEY_MAX 255       /* longest key any table may be made for */
#define IG_IDTABLE_EVICT_WAYS 8      /* candidates offered to an eviction callback at most */
#define IG_IDTABLE_EVICT_SCAN 32     /* slots looked at to find them */
#define IG_IDTABLE_ENTRIES_MAX ((size_t)1 << 28)

typedef struct ig_idtable ig_idtable;

/* key_max 1..IG_IDTABLE_KEY_MAX; value_size may be 0 (a set); max_entries
 * 1..IG_IDTABLE_ENTRIES_MAX; initial_entries is clamped to max_entries.
 * IG_OK, IG_ERR_INVAL, IG_ERR_CRYPTO (libsodium would not start) or
 * IG_ERR_NOMEM. */
int ig_idtable_new(ig_idtable **out, size_t key_max, size_t value_size, size_t initial_entries,
                   size_t max_entries) IG_NODISCARD;
void ig_idtable_free(ig_idtable *t);

size_t ig_idtable_count(const ig_idtable *t);
size_t ig_idtable_max(const ig_idtable *t);
/* Bytes the table holds now (slots and header): the figure for budgets. */
size_t ig_idtable_bytes(const ig_idtable *t);
/* Bytes one slot takes (key, header and value, aligned). */
size_t ig_idtable_slot_bytes(const ig_idtable *t);

/* The value stored under key, or NULL. A key of the wrong length (0 or
 * above key_max) is simply absent. */
void *ig_idtable_find(const ig_idtable *t, const void *key, size_t key_len);

/* The value under key, adding a zeroed one if absent (*added, may be NULL,
 * says which). IG_OK; IG_ERR_INVAL for a key of the wrong length;
 * IG_ERR_RANGE when the key is absent and the table holds max_entries;
 * IG_ERR_NOMEM when growing failed (the table is unchanged). */
int ig_idtable_put(ig_idtable *t, const void *key, size_t key_len, void **value, bool *added) IG_NODISCARD;

/* Chooses a victim: values[0..n-1] are entries near the new key's home
 * slot (n >= 1). Returns the index of the one to evict, or -1 to refuse. */
typedef int (*ig_idtable_pick_fn)(void *ctx, void *const values[], size_t n);

/* As ig_idtable_put, but at the budget pick chooses an entry to evict in
 * favour of key; if it refuses, IG_ERR_RANGE. */
int ig_idtable_put_evict(ig_idtable *t, const void *key, size_t key_len, ig_idtable_pick_fn pick, void *ctx,
                         void **value, bool *added) IG_NODISCARD;

/* Removes key; true if it was there. */
bool ig_idtable_remove(ig_idtable *t, const void *key, size_t key_len);
/* Removes the entry whose value this is (a pointer from this table). */
void ig_idtable_remove_value(ig_idtable *t, void *value);

/* The key of the entry whose value this is; *key_len gets its length. */
const void *ig_idtable_key(const ig_idtable *t, const void *value, size_t *key_len);

/* Walks every entry: start with *cursor = 0; each call returns the next
 * value and advances *cursor, NULL at the end. The table must not change
 * during the walk (use ig_idtable_sweep to remove while walking). */
void *ig_idtable_next(const ig_idtable *t, size_t *cursor);

/* Returns true to keep the entry, false to remove it. */
typedef bool (*ig_idtable_keep_fn)(void *ctx, const void *key, size_t key_len, void *value);

/* Examines up to `slots` slots from *cursor on (wrapping), calling keep on
 * each entry and removing those it rejects; *cursor is where the next
 * slice starts. Slice after slice, an entry is examined once per lap of the
 * table; one that a removal between slices shifts back past the cursor is
 * examined in the next lap instead. Returns the number removed. */
size_t ig_idtable_sweep(ig_idtable *t, size_t *cursor, size_t slots, ig_idtable_keep_fn keep, void *ctx);

#endif
