/*
 * ig_joincodes.h: the join-code table, the ledger's view of the one-time
 * codes (lib/identity/joincodes.c).
 *
 * Why this exists: the cluster state (ig_state) needs to know which codes
 * were issued, when they expire, and which are used, to refuse a join with
 * a code that is unknown, used, expired or being used. The codes'
 * secrets and the join token are ig_join.h's.
 */
#ifndef IG_JOINCODES_H
#define IG_JOINCODES_H

#include "ig_common.h"
#include "ig_join.h"

typedef enum ig_code_status { IG_CODE_UNUSED = 0, IG_CODE_USED = 1 } ig_code_status;
typedef struct ig_join_code_entry {
	uint8_t code_id[IG_JOIN_CODE_ID_BYTES];
	uint8_t hash[IG_HASH_BYTES];
	uint64_t expires_at;        /* Unix seconds */
	uint64_t created_index;
	uint8_t role;
	uint8_t status;             /* ig_code_status */
	bool in_flight;             /* a join using it is being written */
} ig_join_code_entry;

typedef struct ig_joincodes ig_joincodes;
ig_joincodes *ig_joincodes_new(void);
void ig_joincodes_free(ig_joincodes *jc);
/* Applies JOIN_CODE, JOIN_USED and ENROLL-with-join-code records (an enroll
 * that names a code consumes it too, so a crash between the two records
 * cannot leave a code usable twice). Other types are ignored. */
struct ig_record;
int ig_joincodes_apply(ig_joincodes *jc, const struct ig_record *rec, ig_error *err);
/* Whether ig_joincodes_apply would accept rec (the same verdict and
 * message), changing nothing: the cluster state asks before an enroll that
 * names a code changes the registry, so that a refused record (a code
 * another broker used first) leaves every table as it was. */
int ig_joincodes_check(const ig_joincodes *jc, const struct ig_record *rec, ig_error *err);
ig_join_code_entry *ig_joincodes_find(ig_joincodes *jc, const uint8_t code_id[IG_JOIN_CODE_ID_BYTES]);
uint64_t ig_joincodes_count(const ig_joincodes *jc, ig_code_status st);

#endif
