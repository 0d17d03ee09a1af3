/*
 * joincodes.c: the join-code table, rebuilt from the ledger (ig_joincodes.h).
 *
 * Why this exists: a join must be refused for a code that was never issued,
 * is used, is expired or is being used right now, in O(1) and by name. The
 * codes themselves (secrets, tokens) are join.c's; this is the ledger's
 * view of them: JOIN_CODE records add codes, JOIN_USED and ENROLL records
 * naming a code consume them.
 *
 * An ig_idtable keyed by the code id (IG_JOIN_CODE_ID_BYTES). Codes are never deleted (a
 * used or expired code stays known, so it can be refused by name), so the
 * table only grows, doubling up to its budget of JOINCODES_MAX codes.
 */
#include "ig_joincodes.h"

#include "ig_idtable.h"
#include "ig_record.h"

#include <stdlib.h>
#include <string.h>

#define INITIAL_CODES 48
#define JOINCODES_MAX ((size_t)1 << 22)
#define CONSUMED_BY_ENROLL 0x01
#define CONSUMED_BY_JOIN_USED 0x02

typedef struct code_entry {
	ig_join_code_entry pub;       /* first: ig_joincodes_find returns &pub */
	char used_by[IG_ID_MAX + 1];
	uint8_t consumed;             /* CONSUMED_BY_* seen in the ledger */
} code_entry;

struct ig_joincodes {
	ig_idtable *t;
	uint64_t counts[2];           /* by ig_code_status */
};

ig_joincodes *ig_joincodes_new(void)
{
	ig_joincodes *jc = calloc(1, sizeof *jc);
	if (!jc)
		return NULL;
	if (ig_idtable_new(&jc->t, IG_JOIN_CODE_ID_BYTES, sizeof(code_entry), INITIAL_CODES, JOINCODES_MAX) != IG_OK) {
		free(jc);
		return NULL;
	}
	return jc;
}

void ig_joincodes_free(ig_joincodes *jc)
{
	if (!jc)
		return;
	ig_idtable_free(jc->t);
	free(jc);
}

static code_entry *find(const ig_joincodes *jc, const uint8_t code_id[IG_JOIN_CODE_ID_BYTES])
{
	return ig_idtable_find(jc->t, code_id, IG_JOIN_CODE_ID_BYTES);
}

ig_join_code_entry *ig_joincodes_find(ig_joincodes *jc, const uint8_t code_id[IG_JOIN_CODE_ID_BYTES])
{
	if (!jc || !code_id)
		return NULL;
	code_entry *e = find(jc, code_id);
	return e ? &e->pub : NULL;
}

uint64_t ig_joincodes_count(const ig_joincodes *jc, ig_code_status st)
{
	if (!jc || (st != IG_CODE_UNUSED && st != IG_CODE_USED))
		return 0;
	return jc->counts[st];
}

/* Each rule below runs in two modes: dry (check only, nothing changes; the
 * cluster state asks before an enroll that names a code touches the
 * registry, so a refused record changes nothing anywhere) and for real. A
 * record a dry run accepts is accepted for real by the same table. */
static int apply_code(ig_joincodes *jc, const ig_record *rec, bool dry, ig_error *err)
{
	ig_join_code_rec j;
	if (ig_record_join_code_decode(rec->body, rec->body_len, &j, err) != IG_OK)
		return IG_ERR_CORRUPT;   /* the decoder set err, naming the field */
	char hex[2 * IG_JOIN_CODE_ID_BYTES + 1];
	ig_hex_encode(hex, j.code_id, IG_JOIN_CODE_ID_BYTES);
	if (j.role <= IG_ROLE_NONE || j.role >= IG_ROLE_COUNT)
		return ig_error_set(err, IG_ERR_CORRUPT, "join code %s: role %d is not a known role", hex, (int)j.role);
	if (find(jc, j.code_id))
		return ig_error_set(err, IG_ERR_CORRUPT, "join code %s is created twice (record %llu)", hex,
		                    (unsigned long long)rec->index);
	if (dry)
		return IG_OK;
	void *v;
	int rc = ig_idtable_put(jc->t, j.code_id, IG_JOIN_CODE_ID_BYTES, &v, NULL);
	if (rc == IG_ERR_RANGE)
		return ig_error_set(err, rc, "join code %s: the code table holds %zu codes, its most; the ledger has "
		                    "more join codes than this build supports", hex, ig_idtable_max(jc->t));
	if (rc != IG_OK)
		return ig_error_set(err, rc, "join code %s: out of memory for the code table", hex);
	code_entry *e = v;
	memcpy(e->pub.code_id, j.code_id, IG_JOIN_CODE_ID_BYTES);
	memcpy(e->pub.hash, j.hash, IG_HASH_BYTES);
	e->pub.expires_at = j.expires_at;
	e->pub.created_index = rec->index;
	e->pub.role = (uint8_t)j.role;
	e->pub.status = IG_CODE_UNUSED;
	jc->counts[IG_CODE_UNUSED]++;
	return IG_OK;
}

/* One consumption of a code by id, from an ENROLL (how = CONSUMED_BY_ENROLL)
 * or a JOIN_USED record. The pair ENROLL + JOIN_USED for the same id is one
 * use, in either order; a second enrolment through the same code, or any
 * use by another id, means the code was used twice. */
static int consume(ig_joincodes *jc, const uint8_t code_id[IG_JOIN_CODE_ID_BYTES], const char *id, uint8_t how,
                   ig_role enroll_role, const ig_record *rec, bool dry, ig_error *err)
{
	char hex[2 * IG_JOIN_CODE_ID_BYTES + 1];
	ig_hex_encode(hex, code_id, IG_JOIN_CODE_ID_BYTES);
	const char *what = how == CONSUMED_BY_ENROLL ? "enroll" : "join-used";
	unsigned long long index = (unsigned long long)rec->index;
	code_entry *e = find(jc, code_id);
	if (!e)
		return ig_error_set(err, IG_ERR_CORRUPT, "%s record %llu for \"%s\" names join code %s, which was never "
		                    "created", what, index, id, hex);
	if (how == CONSUMED_BY_ENROLL && enroll_role != (ig_role)e->pub.role)
		return ig_error_set(err, IG_ERR_CORRUPT, "enroll record %llu gives \"%s\" role %s, but join code %s "
		                    "grants %s", index, id, ig_role_name(enroll_role), hex,
		                    ig_role_name((ig_role)e->pub.role));
	if (e->pub.status == IG_CODE_USED) {
		if (strcmp(e->used_by, id) != 0)
			return ig_error_set(err, IG_ERR_CORRUPT, "%s record %llu: join code %s used by \"%s\" was "
			                    "already used by \"%s\"", what, index, hex, id, e->used_by);
		if (how == CONSUMED_BY_ENROLL && (e->consumed & CONSUMED_BY_ENROLL))
			return ig_error_set(err, IG_ERR_CORRUPT, "enroll record %llu: join code %s enrolls \"%s\" a "
			                    "second time", index, hex, id);
		if (!dry)
			e->consumed |= how;   /* the other half of the same use: idempotent */
		return IG_OK;
	}
	if (dry)
		return IG_OK;
	e->pub.status = IG_CODE_USED;
	e->pub.in_flight = false;
	e->consumed = how;
	memcpy(e->used_by, id, strnlen(id, IG_ID_MAX) + 1);
	e->used_by[IG_ID_MAX] = '\0';
	jc->counts[IG_CODE_UNUSED]--;
	jc->counts[IG_CODE_USED]++;
	return IG_OK;
}

static int apply(ig_joincodes *jc, const ig_record *rec, bool dry, ig_error *err)
{
	if (!jc || !rec)
		return ig_error_set(err, IG_ERR_INVAL, "join codes: no table or record given");
	switch (rec->type) {
	case IG_REC_JOIN_CODE:
		return apply_code(jc, rec, dry, err);
	case IG_REC_JOIN_USED: {
		ig_join_used u;
		if (ig_record_join_used_decode(rec->body, rec->body_len, &u, err) != IG_OK)
			return IG_ERR_CORRUPT;
		if (!ig_id_valid(u.id, strnlen(u.id, sizeof u.id)))
			return ig_error_set(err, IG_ERR_CORRUPT, "join-used record %llu: id is not a valid identity id",
			                    (unsigned long long)rec->index);
		return consume(jc, u.code_id, u.id, CONSUMED_BY_JOIN_USED, IG_ROLE_NONE, rec, dry, err);
	}
	case IG_REC_ENROLL: {
		ig_enroll en;
		if (ig_record_enroll_decode(rec->body, rec->body_len, &en, err) != IG_OK)
			return IG_ERR_CORRUPT;
		if (!en.has_join_code)
			return IG_OK;
		return consume(jc, en.join_code, en.id, CONSUMED_BY_ENROLL, en.role, rec, dry, err);
	}
	default:
		return IG_OK;
	}
}

int ig_joincodes_apply(ig_joincodes *jc, const ig_record *rec, ig_error *err)
{
	return apply(jc, rec, false, err);
}

int ig_joincodes_check(const ig_joincodes *jc, const ig_record *rec, ig_error *err)
{
	/* The dry run writes nothing through the pointer. */
	return apply((ig_joincodes *)jc, rec, true, err);
}
