/*
 * ig_registry.h: the in-memory identity index rebuilt from the ledger.
 *
 * Why this exists: authentication and every ACL check ask "is id X active,
 * what is its key and role" on the broker's hot path. The answer must be
 * O(1) and small enough for a million identities (<= 300 bytes each), and it
 * must be derived only from ledger records so it can always be rebuilt.
 *
 * An open-addressing hash table (BLAKE2b-keyed hash of the id, so a hostile
 * enrolment pattern cannot degrade it) over compact variable-length entries.
 */
#ifndef IG_REGISTRY_H
#define IG_REGISTRY_H

#include "ig_common.h"
#include "ig_record.h"

typedef enum ig_id_status {
	IG_ID_PENDING = 0,    /* enroll submitted, not yet durable: not usable */
	IG_ID_ACTIVE = 1,
	IG_ID_REVOKED = 2,
} ig_id_status;
const char *ig_registry_status_name(ig_id_status st);

typedef struct ig_identity {
	uint8_t pk[IG_PK_BYTES];
	uint64_t enrolled_index;   /* ledger index of the enroll record */
	uint64_t revoked_index;    /* 0 unless revoked */
	uint64_t enrolled_ts_ms;
	uint8_t role;              /* ig_role */
	uint8_t status;            /* ig_id_status */
	uint8_t id_len;
	char id[];                 /* NUL-terminated */
} ig_identity;

typedef struct ig_registry ig_registry;

ig_registry *ig_registry_new(void);
void ig_registry_free(ig_registry *r);

/* Changes with every call that may change an identity (apply, reserve,
 * release, mark_revoked), never otherwise: a reader that saw an identity
 * active at generation g may rely on that while the generation is still g
 * (the ACL decision cache does, to skip the lookup on every message). */
uint64_t ig_registry_generation(const ig_registry *r);
const ig_identity *ig_registry_find(const ig_registry *r, const char *id, size_t id_len);

/* Sizes the tables for `more` ids beyond those present (a replay passes the
 * ledger's count of enroll records), so adding them never grows a table:
 * no rehash, and no moment with an old and a new table both in memory.
 * Only makes room; IG_ERR_NOMEM leaves the registry as it was (it then
 * grows as ids arrive, as without the call). */
int ig_registry_expect(ig_registry *r, uint64_t more);

/* Starts loading the slot where id would be, so that a find or apply of id
 * a little later does not wait for memory (a replay calls it a few records
 * ahead). Changes nothing. */
void ig_registry_prefetch(const ig_registry *r, const char *id, size_t id_len);

/* Applies a durable record. Enroll of an id that is active or pending, an
 * enroll through a join code of an id that was ever enrolled, or revoke of
 * an unknown or already-revoked id, is IG_ERR_CORRUPT (the ledger never
 * holds such records); unknown record types are ignored. A revoked entry
 * stays in the registry for good, so "was this id ever enrolled" is
 * ig_registry_find(...) != NULL once records are durable. */
int ig_registry_apply(ig_registry *r, const ig_record *rec, ig_error *err);

/* ig_registry_apply for an enroll record whose body the caller has already
 * decoded into *en (ig_record_enroll_decode of rec->body), so a replay decodes each
 * enroll once: the same rules, results and messages as ig_registry_apply on
 * rec. rec->type must be IG_REC_ENROLL (IG_ERR_INVAL otherwise). */
int ig_registry_apply_enroll(ig_registry *r, const ig_record *rec, const ig_enroll *en, ig_error *err);
/* Whether ig_registry_apply_enroll would accept it (the same verdict and
 * message), changing nothing: the cluster state checks every area before it
 * changes any, so a refused record changes nothing (ig_state.h). */
int ig_registry_check_enroll(const ig_registry *r, const ig_record *rec, const ig_enroll *en, ig_error *err);

/* For the plugin's not-yet-durable changes (so a second enroll of the same id
 * is refused while the first is in flight):
 *   reserve: adds or replaces (if revoked) id as PENDING; IG_ERR_EXISTS if active/pending.
 *   release: drops a PENDING reservation whose append failed.
 *   mark_revoked: immediately makes an active id unusable (fail closed),
 *     before the revoke record is durable. */
int ig_registry_reserve(ig_registry *r, const char *id, ig_role role, const uint8_t pk[IG_PK_BYTES]);
void ig_registry_release(ig_registry *r, const char *id);
int ig_registry_mark_revoked(ig_registry *r, const char *id, uint64_t index);

/* Counts by status and role. */
uint64_t ig_registry_count(const ig_registry *r, ig_id_status st, ig_role role /* IG_ROLE_NONE = all */);

/* Iterates in insertion order. Stop early by returning false. */
typedef bool (*ig_identity_fn)(void *ctx, const ig_identity *idn);
void ig_registry_foreach(const ig_registry *r, ig_identity_fn fn, void *ctx);

/* Bytes of heap the registry uses, for the scale benchmark. */
size_t ig_registry_memory(const ig_registry *r);

#endif
