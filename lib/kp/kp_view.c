/*
 * kp_view.c: the key-ring records' state rules (ig_kp_view.h).
 *
 * Why this exists: a key-ring record that breaks the rules (an epoch that
 * skips or repeats, a ring dealt to nobody or twice, a compromised list
 * that is not the revoked device's real ring) would make the revoked
 * statement and every device's choice of usable ids disagree with the
 * ledger. The rules run here, once, for the plugin's live appends and for
 * every replay, so a ledger that breaks them is refused the same way
 * everywhere. Only the current epoch is kept: a new epoch retires every
 * ring and compromised id of the old pool.
 */
#include "ig_kp_view.h"

#include "ig_idmap.h"

#include <stdlib.h>
#include <string.h>

/* What one ring dealt in the current epoch leaves behind. */
typedef struct kp_ring_entry {
	uint8_t ring_hash[32];
	bool compromised;
} kp_ring_entry;

struct ig_kp_view {
	bool has_epoch;
	ig_kp_params params;
	ig_idmap *rings;                          /* id -> kp_ring_entry, this epoch */
	uint32_t *bad;                            /* compromised ids, ascending, distinct */
	size_t n_bad;
	char (*devices)[IG_ID_MAX + 1];           /* compromised devices, record order */
	size_t n_devices, cap_devices;
	uint64_t serial;
};

ig_kp_view *ig_kp_view_new(void)
{
	ig_kp_view *v = calloc(1, sizeof *v);
	if (!v)
		return NULL;
	v->rings = ig_idmap_new(sizeof(kp_ring_entry));
	if (!v->rings) {
		free(v);
		return NULL;
	}
	return v;
}

void ig_kp_view_free(ig_kp_view *v)
{
	if (!v)
		return;
	ig_idmap_free(v->rings, false);
	free(v->bad);
	free(v->devices);
	free(v);
}

/* Active at this point of the log (as custody_view.c): enrolled and not
 * revoked by an earlier record. A revocation the plugin has started but not
 * made durable (revoked_index still 0) comes later in the log. */
static bool active_here(const ig_registry *reg, const char *id)
{
	const ig_identity *who = ig_registry_find(reg, id, strlen(id));
	if (!who)
		return false;
	return who->status == IG_ID_ACTIVE || (who->status == IG_ID_REVOKED && who->revoked_index == 0);
}

/* Revoked by a record before this one. */
static bool revoked_here(const ig_registry *reg, const char *id)
{
	const ig_identity *who = ig_registry_find(reg, id, strlen(id));
	return who && who->status == IG_ID_REVOKED && who->revoked_index != 0;
}

static int apply_epoch(ig_kp_view *v, const ig_record *rec, ig_error *err)
{
	ig_kp_epoch_rec e;
	int rc = ig_record_kp_epoch_decode(rec->body, rec->body_len, &e, err);
	if (rc != IG_OK)
		return rc;
	uint64_t want = v->has_epoch ? v->params.epoch + 1 : 1;
	if (e.epoch != want)
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "kp_epoch record %llu: epoch %llu is not the next epoch (%llu)",
		                    (unsigned long long)rec->index, (unsigned long long)e.epoch, (unsigned long long)want);
	ig_kp_params p = {.epoch = e.epoch, .pool = e.pool, .ring = e.ring, .q = e.q};
	memcpy(p.seed, e.seed, sizeof p.seed);
	ig_error why = {0};
	if (ig_kp_params_check(&p, &why) != IG_OK)
		return ig_error_set(err, IG_ERR_CORRUPT, "kp_epoch record %llu: bad parameters: %s",
		                    (unsigned long long)rec->index, why.msg);
	ig_idmap *fresh = ig_idmap_new(sizeof(kp_ring_entry));
	if (!fresh)
		return ig_error_set(err, IG_ERR_NOMEM, "kp_epoch record %llu: out of memory",
		                    (unsigned long long)rec->index);
	ig_idmap_free(v->rings, false);
	v->rings = fresh;
	free(v->bad);
	v->bad = NULL;
	v->n_bad = 0;
	free(v->devices);
	v->devices = NULL;
	v->n_devices = v->cap_devices = 0;
	v->params = p;
	v->has_epoch = true;
	v->serial = rec->index;
	return IG_OK;
}

static int apply_ring(ig_kp_view *v, const ig_record *rec, const ig_registry *reg, ig_error *err)
{
	ig_kp_ring_rec r;
	int rc = ig_record_kp_ring_decode(rec->body, rec->body_len, &r, err);
	if (rc != IG_OK)
		return rc;
	if (!v->has_epoch || r.epoch != v->params.epoch)
		return ig_error_set(err, IG_ERR_CORRUPT, "kp_ring record %llu: epoch %llu is not the current epoch (%llu)",
		                    (unsigned long long)rec->index, (unsigned long long)r.epoch,
		                    (unsigned long long)(v->has_epoch ? v->params.epoch : 0));
	if (!active_here(reg, r.id))
		return ig_error_set(err, IG_ERR_CORRUPT, "kp_ring record %llu: '%s' is not an active identity",
		                    (unsigned long long)rec->index, r.id);
	if (ig_idmap_get(v->rings, r.id))
		return ig_error_set(err, IG_ERR_CORRUPT, "kp_ring record %llu: '%s' already has a ring in epoch %llu",
		                    (unsigned long long)rec->index, r.id, (unsigned long long)r.epoch);
	kp_ring_entry *ent = ig_idmap_put(v->rings, r.id);
	if (!ent)
		return ig_error_set(err, IG_ERR_NOMEM, "kp_ring record %llu: out of memory", (unsigned long long)rec->index);
	memcpy(ent->ring_hash, r.ring_hash, sizeof ent->ring_hash);
	ent->compromised = false;
	return IG_OK;
}

/* out = a ∪ b (both ascending, distinct); returns the count. */
static size_t merge_ids(uint32_t *out, const uint32_t *a, size_t na, const uint32_t *b, size_t nb)
{
	size_t i = 0, j = 0, n = 0;
	while (i < na || j < nb) {
		if (j == nb || (i < na && a[i] < b[j]))
			out[n++] = a[i++];
		else if (i == na || b[j] < a[i])
			out[n++] = b[j++];
		else {
			out[n++] = a[i++];
			j++;
		}
	}
	return n;
}

static int apply_compromised(ig_kp_view *v, const ig_record *rec, const ig_registry *reg, ig_error *err)
{
	ig_kp_compromised_rec *c = malloc(sizeof *c);
	uint32_t *ring = NULL, *merged = NULL;
	if (!c)
		return ig_error_set(err, IG_ERR_NOMEM, "kp_compromised record: out of memory");
	int rc = ig_record_kp_compromised_decode(rec->body, rec->body_len, c, err);
	if (rc != IG_OK)
		goto out;
	unsigned long long at = (unsigned long long)rec->index;
	if (!v->has_epoch || c->epoch != v->params.epoch) {
		rc = ig_error_set(err, IG_ERR_CORRUPT, "kp_compromised record %llu: epoch %llu is not the current epoch (%llu)",
		                  at, (unsigned long long)c->epoch,
		                  (unsigned long long)(v->has_epoch ? v->params.epoch : 0));
		goto out;
	}
	kp_ring_entry *ent = ig_idmap_get(v->rings, c->id);
	if (!ent) {
		rc = ig_error_set(err, IG_ERR_CORRUPT, "kp_compromised record %llu: '%s' has no ring in epoch %llu", at,
		                  c->id, (unsigned long long)c->epoch);
		goto out;
	}
	if (!revoked_here(reg, c->id)) {
		rc = ig_error_set(err, IG_ERR_CORRUPT,
		                  "kp_compromised record %llu: '%s' is not revoked (append its revoke record first)", at,
		                  c->id);
		goto out;
	}
	if (ent->compromised) {
		rc = ig_error_set(err, IG_ERR_CORRUPT, "kp_compromised record %llu: '%s' is already compromised in epoch %llu",
		                  at, c->id, (unsigned long long)c->epoch);
		goto out;
	}
	ring = malloc((size_t)v->params.ring * sizeof *ring);
	merged = malloc((v->n_bad + v->params.ring) * sizeof *merged);
	if (!ring || !merged) {
		rc = ig_error_set(err, IG_ERR_NOMEM, "kp_compromised record %llu: out of memory", at);
		goto out;
	}
	rc = ig_kp_ring_ids(ring, v->params.seed, c->id, v->params.pool, v->params.ring);
	if (rc != IG_OK) {
		rc = ig_error_set(err, IG_ERR_CORRUPT, "kp_compromised record %llu: cannot compute the ring of '%s'", at,
		                  c->id);
		goto out;
	}
	if (c->id_count != v->params.ring || memcmp(ring, c->ids, (size_t)v->params.ring * sizeof *ring) != 0) {
		rc = ig_error_set(err, IG_ERR_CORRUPT,
		                  "kp_compromised record %llu: ids are not the ring of '%s' in epoch %llu "
		                  "(%u ids recorded, the ring has %u)",
		                  at, c->id, (unsigned long long)c->epoch, c->id_count, v->params.ring);
		goto out;
	}
	if (v->n_devices == v->cap_devices) {
		size_t cap = v->cap_devices ? 2 * v->cap_devices : 8;
		char (*grown)[IG_ID_MAX + 1] = realloc(v->devices, cap * sizeof *grown);
		if (!grown) {
			rc = ig_error_set(err, IG_ERR_NOMEM, "kp_compromised record %llu: out of memory", at);
			goto out;
		}
		v->devices = grown;
		v->cap_devices = cap;
	}
	/* Nothing can fail from here on: the view changes all at once. */
	v->n_bad = merge_ids(merged, v->bad, v->n_bad, ring, v->params.ring);
	free(v->bad);
	v->bad = merged;
	merged = NULL;
	memcpy(v->devices[v->n_devices++], c->id, sizeof v->devices[0]);
	ent->compromised = true;
	v->serial = rec->index;
	rc = IG_OK;
out:
	free(ring);
	free(merged);
	free(c);
	return rc;
}

int ig_kp_view_apply(ig_kp_view *v, const ig_record *rec, const ig_registry *reg, ig_error *err)
{
	if (!v || !rec)
		return IG_ERR_INVAL;
	switch (rec->type) {
	case IG_REC_KP_EPOCH: return apply_epoch(v, rec, err);
	case IG_REC_KP_RING: return reg ? apply_ring(v, rec, reg, err) : IG_ERR_INVAL;
	case IG_REC_KP_COMPROMISED: return reg ? apply_compromised(v, rec, reg, err) : IG_ERR_INVAL;
	default: return IG_OK;
	}
}

bool ig_kp_view_params(const ig_kp_view *v, ig_kp_params *out)
{
	if (!v || !v->has_epoch)
		return false;
	if (out)
		*out = v->params;
	return true;
}

bool ig_kp_view_ring(const ig_kp_view *v, const char *id, uint8_t ring_hash[32])
{
	if (!v || !id)
		return false;
	const kp_ring_entry *ent = ig_idmap_get(v->rings, id);
	if (!ent)
		return false;
	if (ring_hash)
		memcpy(ring_hash, ent->ring_hash, 32);
	return true;
}

size_t ig_kp_view_rings(const ig_kp_view *v)
{
	return v ? ig_idmap_count(v->rings) : 0;
}

bool ig_kp_view_compromised_device(const ig_kp_view *v, const char *id)
{
	if (!v || !id)
		return false;
	const kp_ring_entry *ent = ig_idmap_get(v->rings, id);
	return ent && ent->compromised;
}

const uint32_t *ig_kp_view_compromised(const ig_kp_view *v, size_t *n)
{
	if (n)
		*n = v ? v->n_bad : 0;
	return v ? v->bad : NULL;
}

size_t ig_kp_view_devices(const ig_kp_view *v, const char (**ids)[IG_ID_MAX + 1])
{
	if (ids)
		*ids = v ? (const char (*)[IG_ID_MAX + 1])v->devices : NULL;
	return v ? v->n_devices : 0;
}

uint64_t ig_kp_view_serial(const ig_kp_view *v)
{
	return v ? v->serial : 0;
}
