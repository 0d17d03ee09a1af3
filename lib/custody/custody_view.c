/*
 * custody_view.c: the custody records' state rules (ig_custody_view.h).
 *
 * Why this exists: a custody record that breaks the rules (an epoch that
 * goes backwards, a holder nobody enrolled, an activation of an epoch that
 * was never dealt, a seal whose c0 is not the active secret's) would leave
 * the cluster head unable to say which shares rebuild its key. The rules
 * run here, once, for the plugin's live appends and for every replay, so a
 * ledger that breaks them is refused the same way everywhere.
 */
#include "ig_custody_view.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

ig_custody_view *ig_custody_view_new(void)
{
	return calloc(1, sizeof(ig_custody_view));
}

void ig_custody_view_free(ig_custody_view *v)
{
	free(v);
}

/* Active at this point of the log: enrolled and not revoked by a record
 * before this one. A revocation the plugin has started but not yet made
 * durable (status revoked, revoked_index still 0) comes later in the log,
 * so its id still counts as active here, as it will on replay. */
static bool active_here(const ig_registry *reg, const char *id)
{
	const ig_identity *who = ig_registry_find(reg, id, strlen(id));
	if (!who)
		return false;
	return who->status == IG_ID_ACTIVE || (who->status == IG_ID_REVOKED && who->revoked_index == 0);
}

static int apply_epoch(ig_custody_view *v, const ig_record *rec, const ig_registry *reg, ig_error *err)
{
	ig_custody_epoch_rec *c = malloc(sizeof *c);
	if (!c)
		return ig_error_set(err, IG_ERR_NOMEM, "custody_epoch record: out of memory");
	int rc = ig_record_custody_epoch_decode(rec->body, rec->body_len, c, err);
	if (rc != IG_OK)
		goto out;
	if (c->epoch <= v->dealt.epoch) {
		rc = ig_error_set(err, IG_ERR_CORRUPT,
		                  "custody_epoch record %llu: epoch %llu is not above the newest dealt epoch %llu",
		                  (unsigned long long)rec->index, (unsigned long long)c->epoch,
		                  (unsigned long long)v->dealt.epoch);
		goto out;
	}
	for (unsigned i = 0; i < c->n; i++) {
		for (unsigned j = 0; j < i; j++) {
			if (strcmp(c->holders[i], c->holders[j]) == 0) {
				rc = ig_error_set(err, IG_ERR_CORRUPT,
				                  "custody_epoch record %llu: holder '%s' is listed twice (holders %u and %u)",
				                  (unsigned long long)rec->index, c->holders[i], j + 1, i + 1);
				goto out;
			}
		}
		if (!active_here(reg, c->holders[i])) {
			rc = ig_error_set(err, IG_ERR_CORRUPT,
			                  "custody_epoch record %llu: holder %u '%s' is not an active identity",
			                  (unsigned long long)rec->index, i + 1, c->holders[i]);
			goto out;
		}
	}
	/* A sealed key opens only with the secret whose commitment is c0: an
	 * epoch for another secret could never unseal it. */
	if (v->sealed && sodium_memcmp(c->commitments[0], v->c0, IG_HASH_BYTES) != 0) {
		rc = ig_error_set(err, IG_ERR_CORRUPT,
		                  "custody_epoch record %llu: commitment 0 is not the sealed key's c0 "
		                  "(a new epoch must share the same custody secret)",
		                  (unsigned long long)rec->index);
		goto out;
	}
	ig_custody_epoch_view *d = &v->dealt;
	memset(d, 0, sizeof *d);
	d->epoch = c->epoch;
	d->k = c->k;
	d->n = c->n;
	memcpy(d->holders, c->holders, (size_t)c->n * sizeof c->holders[0]);
	memcpy(d->commitments, c->commitments, (size_t)c->k * sizeof c->commitments[0]);
	memcpy(d->reason, c->reason, sizeof d->reason);
	d->dealt_index = rec->index;
	d->dealt_ms = rec->ts_ms;
out:
	free(c);
	return rc;
}

static int apply_active(ig_custody_view *v, const ig_record *rec, ig_error *err)
{
	ig_custody_active_rec a;
	int rc = ig_record_custody_active_decode(rec->body, rec->body_len, &a, err);
	if (rc != IG_OK)
		return rc;
	if (a.epoch != v->dealt.epoch)
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "custody_active record %llu: epoch %llu is not the newest dealt epoch (%llu)",
		                    (unsigned long long)rec->index, (unsigned long long)a.epoch,
		                    (unsigned long long)v->dealt.epoch);
	if (a.epoch == v->active.epoch)
		return ig_error_set(err, IG_ERR_CORRUPT, "custody_active record %llu: epoch %llu is already active",
		                    (unsigned long long)rec->index, (unsigned long long)a.epoch);
	v->dealt.active_ms = rec->ts_ms;
	v->active = v->dealt;
	return IG_OK;
}

static int apply_bad_share(ig_custody_view *v, const ig_record *rec, ig_error *err)
{
	ig_custody_bad_share_rec b;
	int rc = ig_record_custody_bad_share_decode(rec->body, rec->body_len, &b, err);
	if (rc != IG_OK)
		return rc;
	if (!ig_custody_view_epoch(v, b.epoch))
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "custody_bad_share record %llu: epoch %llu is neither the newest dealt nor the active one",
		                    (unsigned long long)rec->index, (unsigned long long)b.epoch);
	if (ig_custody_view_index(v, b.epoch, b.holder) == 0)
		return ig_error_set(err, IG_ERR_CORRUPT, "custody_bad_share record %llu: '%s' holds no share of epoch %llu",
		                    (unsigned long long)rec->index, b.holder, (unsigned long long)b.epoch);
	v->bad_shares++;
	return IG_OK;
}

static int apply_sealed(ig_custody_view *v, const ig_record *rec, ig_error *err)
{
	ig_custody_sealed_rec s;
	int rc = ig_record_custody_sealed_decode(rec->body, rec->body_len, &s, err);
	if (rc != IG_OK)
		return rc;
	if (v->active.epoch == 0 || s.epoch != v->active.epoch)
		return ig_error_set(err, IG_ERR_CORRUPT, "custody_sealed record %llu: epoch %llu is not the active epoch (%llu)",
		                    (unsigned long long)rec->index, (unsigned long long)s.epoch,
		                    (unsigned long long)v->active.epoch);
	if (sodium_memcmp(s.c0, v->active.commitments[0], IG_HASH_BYTES) != 0)
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "custody_sealed record %llu: c0 is not commitment 0 of epoch %llu",
		                    (unsigned long long)rec->index, (unsigned long long)s.epoch);
	v->sealed = true;
	v->sealed_epoch = s.epoch;
	memcpy(v->c0, s.c0, IG_HASH_BYTES);
	v->sealed_ms = rec->ts_ms;
	return IG_OK;
}

int ig_custody_view_apply(ig_custody_view *v, const ig_record *rec, const ig_registry *reg, ig_error *err)
{
	if (!v || !rec)
		return IG_ERR_INVAL;
	switch (rec->type) {
	case IG_REC_CUSTODY_EPOCH: return reg ? apply_epoch(v, rec, reg, err) : IG_ERR_INVAL;
	case IG_REC_CUSTODY_ACTIVE: return apply_active(v, rec, err);
	case IG_REC_CUSTODY_BAD_SHARE: return apply_bad_share(v, rec, err);
	case IG_REC_CUSTODY_SEALED: return apply_sealed(v, rec, err);
	default: return IG_OK;
	}
}

const ig_custody_epoch_view *ig_custody_view_epoch(const ig_custody_view *v, uint64_t epoch)
{
	if (!v || epoch == 0)
		return NULL;
	if (v->dealt.epoch == epoch)
		return &v->dealt;
	if (v->active.epoch == epoch)
		return &v->active;
	return NULL;
}

unsigned ig_custody_view_index(const ig_custody_view *v, uint64_t epoch, const char *id)
{
	const ig_custody_epoch_view *e = ig_custody_view_epoch(v, epoch);
	if (!e || !id)
		return 0;
	for (unsigned i = 0; i < e->n; i++)
		if (strcmp(e->holders[i], id) == 0)
			return i + 1;
	return 0;
}
