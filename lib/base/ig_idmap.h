/*
 * ig_idmap.h: a small map from identity id to per-identity state.
 *
 * Why this exists: the cluster head keeps bits of state per device that are
 * not ledger facts (entropy sequence numbers and counters, attestation
 * results, cached box keys). They need O(1) lookup by id on the message
 * path and stable addresses, and nothing else.
 */
#ifndef IG_IDMAP_H
#define IG_IDMAP_H

#include "ig_common.h"

typedef struct ig_idmap ig_idmap;

/* value_size bytes of zeroed state per id. */
ig_idmap *ig_idmap_new(size_t value_size);
/* Frees the map; wipe_values wipes each value first (for cached keys). */
void ig_idmap_free(ig_idmap *m, bool wipe_values);
/* The state for id, or NULL. */
void *ig_idmap_get(const ig_idmap *m, const char *id);
/* The state for id, created zeroed if absent; NULL only when out of memory. */
void *ig_idmap_put(ig_idmap *m, const char *id);
size_t ig_idmap_count(const ig_idmap *m);
/* Visits entries in insertion order; return false to stop. */
typedef bool (*ig_idmap_fn)(void *ctx, const char *id, void *value);
void ig_idmap_foreach(const ig_idmap *m, ig_idmap_fn fn, void *ctx);

#endif
