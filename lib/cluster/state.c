/*
 * state.c: the cluster state (ig_state.h), one ig_state_apply for everyone.
 *
 * Why this exists: see ig_state.h. The rules themselves stay in the files of
 * their concepts (registry.c, join.c, coins.c, recspecs.c); this file fixes
 * the order they run in and owns the per-identity memory that is not a
 * ledger fact.
 */
#include "ig_state.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_bank.h"
#include "ig_idmap.h"

struct ig_state {
	ig_registry *reg;
	ig_joincodes *codes;
	ig_coins *coins;
	ig_idmap *devices;   /* id -> ig_device */
	ig_idmap *zones;     /* id -> char[IG_ID_MAX + 1], "" when its newest enrolment named none */
	ig_custody_view *custody;
	ig_kp_view *kp;
};

ig_state *ig_state_new(void)
{
	ig_state *st = calloc(1, sizeof *st);
	if (!st)
		return NULL;
	st->reg = ig_registry_new();
	st->codes = ig_joincodes_new();
	st->coins = ig_coins_new();
	st->devices = ig_idmap_new(sizeof(ig_device));
	st->zones = ig_idmap_new(IG_ID_MAX + 1);
	st->custody = ig_custody_view_new();
	st->kp = ig_kp_view_new();
	if (!st->reg || !st->codes || !st->coins || !st->devices || !st->zones || !st->custody || !st->kp) {
		ig_state_free(st);
		return NULL;
	}
	return st;
}

void ig_state_free(ig_state *st)
{
	if (!st)
		return;
	ig_registry_free(st->reg);
	ig_joincodes_free(st->codes);
	ig_coins_free(st->coins);
	if (st->devices)
		ig_idmap_free(st->devices, true);   /* cached box keys */
	if (st->zones)
		ig_idmap_free(st->zones, false);
	ig_custody_view_free(st->custody);
	ig_kp_view_free(st->kp);
	free(st);
}

/* The id a revoke record names, or "" if its body does not decode. (An
 * enroll's id comes from its one decode in apply_enroll.) */
static void revoked_identity(const ig_record *rec, char id[IG_ID_MAX + 1])
{
	id[0] = '\0';
	ig_error ignored = {0};
	ig_revoke r;
	if (ig_record_revoke_decode(rec->body, rec->body_len, &r, &ignored) == IG_OK)
		memcpy(id, r.id, IG_ID_MAX + 1);
}

/* Only ids that ever had a zone get an entry, so a ledger without zones
 * costs nothing; a re-enrolment without one clears the old zone. */
static int set_zone(ig_state *st, const char *id, const char *zone, ig_error *err)
{
	char *z = zone ? ig_idmap_put(st->zones, id) : ig_idmap_get(st->zones, id);
	if (!z)
		return zone ? ig_error_set(err, IG_ERR_NOMEM, "enroll of '%s': out of memory for its zone", id) : IG_OK;
	if (zone)
		snprintf(z, IG_ID_MAX + 1, "%s", zone);
	else
		z[0] = '\0';
	return IG_OK;
}

/* An enroll, most of every big ledger, decoded once: ig_record_enroll_decode is the
 * body check ig_record_body_check would run (the same spec, the same
 * messages), and its result goes to the registry. Join codes only look at an
 * enroll that carries one, and the coin index not at all.
 *
 * All or nothing: a shared ledger's writer re-checks every record against
 * the state and drops the ones another broker made obsolete (a join code it
 * used first), so a refusal must change nothing. Every rule runs before
 * anything changes, in the order of the passes (the registry's, then the
 * code's: so the message is the same), and the zone's memory is made; only
 * then are the registry and the code changed, which the checks guarantee
 * (the registry's apply can still run out of memory, before it writes).
 * An enroll without a code (nearly all of a big replay) needs no separate
 * check: the registry's apply checks before it writes, with one lookup. */
static int apply_enroll(ig_state *st, const ig_record *rec, ig_error *err)
{
	ig_enroll en;
	int rc = ig_record_enroll_decode(rec->body, rec->body_len, &en, err);
	if (rc == IG_OK && en.has_join_code) {
		rc = ig_registry_check_enroll(st->reg, rec, &en, err);
		if (rc == IG_OK)
			rc = ig_joincodes_check(st->codes, rec, err);
	}
	/* An empty zone entry reads as "no zone", so making room first is
	 * invisible if the registry then refuses. */
	if (rc == IG_OK && en.has_zone && !ig_idmap_put(st->zones, en.id))
		rc = ig_error_set(err, IG_ERR_NOMEM, "enroll of '%s': out of memory for its zone", en.id);
	if (rc == IG_OK)
		rc = ig_registry_apply_enroll(st->reg, rec, &en, err);
	if (rc != IG_OK)
		return rc;
	if (en.has_join_code && (rc = ig_joincodes_apply(st->codes, rec, err)) != IG_OK)
		return rc;   /* cannot happen: the dry run accepted it against the same table */
	if (ig_idmap_count(st->devices) > 0)
		ig_state_device_forget(st, en.id);
	return set_zone(st, en.id, en.has_zone ? en.zone : NULL, err);
}

int ig_state_apply(ig_state *st, const ig_record *rec, ig_error *err)
{
	if (rec->type == IG_REC_ENROLL)
		return apply_enroll(st, rec, err);
	int rc = ig_record_body_check(rec, err);
	if (rc == IG_OK)
		rc = ig_registry_apply(st->reg, rec, err);
	if (rc == IG_OK)
		rc = ig_joincodes_apply(st->codes, rec, err);
	if (rc == IG_OK)
		rc = ig_coins_apply(st->coins, rec, err);
	if (rc == IG_OK && rec->type >= IG_REC_CUSTODY_EPOCH && rec->type <= IG_REC_CUSTODY_SEALED)
		rc = ig_custody_view_apply(st->custody, rec, st->reg, err);
	if (rc == IG_OK && rec->type >= IG_REC_KP_EPOCH && rec->type <= IG_REC_KP_COMPROMISED)
		rc = ig_kp_view_apply(st->kp, rec, st->reg, err);
	if (rc == IG_OK && rec->type == IG_REC_REVOKE && ig_idmap_count(st->devices) > 0) {
		char id[IG_ID_MAX + 1];
		revoked_identity(rec, id);
		if (id[0])
			ig_state_device_forget(st, id);
	}
	return rc;
}

int ig_state_on_record(void *ctx, const ig_record *rec, ig_error *err)
{
	return ig_state_apply(ctx, rec, err);
}

int ig_state_reserve(ig_state *st, const ig_ledger_census *census)
{
	/* Every enroll adds at most one id; a mint of N coins carries N 32-byte
	 * hashes in its body. */
	int rc = ig_registry_expect(st->reg, census->of_type[IG_REC_ENROLL]);
	int rc2 = ig_coins_expect(st->coins, census->body_bytes[IG_REC_COIN_MINT] / IG_HASH_BYTES);
	return rc != IG_OK ? rc : rc2;
}

/* An enroll or revoke names its id in tag 1 (LEDGER.md §7.2, §7.3): start
 * loading its registry slot. A body that does not parse is left to the
 * checks. */
static void ahead(void *ctx, const ig_record *rec)
{
	ig_state *st = ctx;
	if (rec->type != IG_REC_ENROLL && rec->type != IG_REC_REVOKE)
		return;
	ig_tlv_iter it;
	uint8_t tag;
	const uint8_t *val;
	uint16_t vlen;
	ig_record_tlv_iter_init(&it, rec->body, rec->body_len);
	while (ig_record_tlv_next(&it, &tag, &val, &vlen) == 1) {
		if (tag == 1) {
			ig_registry_prefetch(st->reg, (const char *)val, vlen);
			return;
		}
	}
}

static void on_census(void *ctx, const ig_ledger_census *census)
{
	(void)ig_state_reserve(ctx, census); /* without room the tables grow as records arrive */
}

void ig_state_replay_opts(ig_state *st, ig_ledger_open_opts *opts)
{
	opts->on_record = ig_state_on_record;
	opts->on_census = on_census;
	opts->ahead = ahead;
	opts->ctx = st;
}

ig_registry *ig_state_registry(ig_state *st) { return st->reg; }
ig_joincodes *ig_state_joincodes(ig_state *st) { return st->codes; }
ig_coins *ig_state_coins(ig_state *st) { return st->coins; }
const ig_custody_view *ig_state_custody(const ig_state *st) { return st->custody; }
const ig_kp_view *ig_state_kp(const ig_state *st) { return st->kp; }

const char *ig_state_zone(const ig_state *st, const char *id)
{
	const char *z = ig_idmap_get(st->zones, id);
	return z && z[0] ? z : NULL;
}

const ig_identity *ig_state_active(const ig_state *st, const char *id, ig_role role)
{
	const ig_identity *who = ig_registry_find(st->reg, id, strlen(id));
	if (!who || who->status != IG_ID_ACTIVE)
		return NULL;
	return role == IG_ROLE_NONE || who->role == role ? who : NULL;
}

const ig_identity *ig_state_identity(const ig_state *st, const char *id)
{
	return ig_registry_find(st->reg, id, strlen(id));
}

void ig_state_identity_foreach(const ig_state *st, ig_identity_fn fn, void *ctx)
{
	ig_registry_foreach(st->reg, fn, ctx);
}

ig_device *ig_state_device(ig_state *st, const char *id)
{
	return ig_idmap_put(st->devices, id);
}

const ig_device *ig_state_device_find(const ig_state *st, const char *id)
{
	return ig_idmap_get(st->devices, id);
}

void ig_state_device_forget(ig_state *st, const char *id)
{
	ig_device *d = ig_idmap_get(st->devices, id);
	if (d)
		sodium_memzero(d, sizeof *d);   /* holds a cached box key */
}

size_t ig_state_device_count(const ig_state *st)
{
	return ig_idmap_count(st->devices);
}

typedef struct foreach_ctx {
	ig_state_device_fn fn;
	void *ctx;
} foreach_ctx;

static bool visit(void *ctx, const char *id, void *value)
{
	foreach_ctx *fc = ctx;
	return fc->fn(fc->ctx, id, value);
}

void ig_state_device_foreach(ig_state *st, ig_state_device_fn fn, void *ctx)
{
	foreach_ctx fc = {fn, ctx};
	ig_idmap_foreach(st->devices, visit, &fc);
}

const ig_box_key *ig_state_box_key(ig_state *st, const ig_identity *who, const uint8_t ch_sk[IG_SK_BYTES])
{
	ig_device *d = ig_state_device(st, who->id);
	if (!d)
		return NULL;
	if (!d->box_ready || sodium_memcmp(d->box_pk, who->pk, IG_PK_BYTES) != 0) {
		if (ig_keybox_key_for_device(&d->box, ch_sk, who->pk) != IG_OK)
			return NULL;
		memcpy(d->box_pk, who->pk, IG_PK_BYTES);
		d->box_ready = true;
	}
	return &d->box;
}
