/*
 * ig_kp_view.h: what the ledger says about key rings, rebuilt record by
 * record (docs/LEDGER.md 7.17-7.19).
 *
 * Why this exists: the key-ring service, `iotguard kp status`, the signed
 * revoked statement and `iotguard verify` must agree on the current pool
 * epoch, whose rings were dealt in it and which pool ids are compromised.
 * ig_state keeps one ig_kp_view and feeds it every record (ig_state_apply),
 * so they all read the same answer through ig_state_kp(). The admission
 * rules live here, in one place:
 *   - kp_epoch: its epoch is the current one + 1 (the first is 1) and its
 *     parameters pass ig_kp_params_check; it starts a fresh epoch (no rings,
 *     nothing compromised);
 *   - kp_ring: names the current epoch and an active identity that has no
 *     kp_ring in it yet;
 *   - kp_compromised: names the current epoch and a revoked identity that
 *     has a kp_ring in it and is not compromised yet; its ids are exactly
 *     ig_kp_ring_ids(seed, id, pool, ring).
 * A record that breaks a rule is IG_ERR_CORRUPT and changes nothing.
 */
#ifndef IG_KP_VIEW_H
#define IG_KP_VIEW_H

#include "ig_common.h"
#include "ig_kp.h"
#include "ig_record.h"
#include "ig_registry.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ig_kp_view ig_kp_view;

/* A fresh view: no epoch. NULL when out of memory. */
ig_kp_view *ig_kp_view_new(void);
void ig_kp_view_free(ig_kp_view *v);

/* Applies one record (other types are ignored, IG_OK). reg answers "is this
 * id active / revoked" at this point of the log. IG_ERR_CORRUPT with err
 * naming the rule when the record breaks one (the view is unchanged);
 * IG_ERR_NOMEM when out of memory (the view is unchanged). */
int ig_kp_view_apply(ig_kp_view *v, const ig_record *rec, const ig_registry *reg, ig_error *err) IG_NODISCARD;

/* The current epoch's parameters (epoch, pool, ring, q, seed); false: no epoch yet. */
bool ig_kp_view_params(const ig_kp_view *v, ig_kp_params *out);
/* Was id's ring dealt in the current epoch? Then ring_hash (may be NULL) is its kp_ring's hash. */
bool ig_kp_view_ring(const ig_kp_view *v, const char *id, uint8_t ring_hash[32]);
/* Rings dealt in the current epoch. */
size_t ig_kp_view_rings(const ig_kp_view *v);
/* Is id compromised (a kp_compromised names it) in the current epoch? */
bool ig_kp_view_compromised_device(const ig_kp_view *v, const char *id);
/* Compromised pool ids of the current epoch, ascending and distinct (the
 * union of the compromised devices' rings); valid until the next apply.
 * *n = 0 (and possibly NULL) when none. */
const uint32_t *ig_kp_view_compromised(const ig_kp_view *v, size_t *n);
/* The compromised devices of the current epoch, in record order; *ids valid
 * until the next apply. Returns their number. */
size_t ig_kp_view_devices(const ig_kp_view *v, const char (**ids)[IG_ID_MAX + 1]);
/* Ledger index of the newest kp_epoch or kp_compromised record (0: none):
 * the revoked statement's serial. */
uint64_t ig_kp_view_serial(const ig_kp_view *v);

#endif
