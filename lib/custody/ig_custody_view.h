/*
 * ig_custody_view.h: what the ledger says about custody, rebuilt record by
 * record (docs/LEDGER.md 7.13-7.16).
 *
 * Why this exists: the custody service, `iotguard custody status`, the
 * sealed start and `iotguard verify` must agree on which epoch is dealt,
 * which is active and whether the key is sealed. ig_state keeps one
 * ig_custody_view and feeds it every record (ig_state_apply), so they all
 * read the same answer through ig_state_custody(). The admission rules live
 * here, in one place:
 *   - custody_epoch: its epoch is above every earlier one; its holders are
 *     distinct active identities; once sealed, its commitment 0 is the
 *     sealed c0 (a new polynomial for the same secret);
 *   - custody_active: names the newest dealt epoch, not already active;
 *   - custody_bad_share: names a dealt epoch (the newest or the active one)
 *     and one of its holders;
 *   - custody_sealed: names the active epoch, and c0 is its commitment 0.
 * A record that breaks a rule is IG_ERR_CORRUPT and changes nothing.
 */
#ifndef IG_CUSTODY_VIEW_H
#define IG_CUSTODY_VIEW_H

#include "ig_common.h"
#include "ig_record.h"
#include "ig_registry.h"

#include <stdbool.h>
#include <stdint.h>

/* One dealt epoch, as its custody_epoch record says. epoch == 0: none. */
typedef struct ig_custody_epoch_view {
	uint64_t epoch;
	uint8_t k, n;
	char holders[IG_CUSTODY_N_MAX][IG_ID_MAX + 1];     /* holder i (1..n) is holders[i-1] */
	uint8_t commitments[IG_CUSTODY_N_MAX][IG_HASH_BYTES]; /* k points, C_0 first */
	char reason[IG_CUSTODY_REASON_MAX + 1];           /* initial, timer, revoked, offline, admin */
	uint64_t dealt_index;                             /* ledger index of the custody_epoch record */
	uint64_t dealt_ms;                                /* its timestamp */
	uint64_t active_ms;                               /* the custody_active's timestamp; 0 until active */
} ig_custody_epoch_view;

typedef struct ig_custody_view {
	ig_custody_epoch_view dealt;     /* the newest dealt epoch (may also be the active one) */
	ig_custody_epoch_view active;    /* the active epoch; epoch 0 until one is */
	bool sealed;                     /* a custody_sealed record was written */
	uint64_t sealed_epoch;           /* the epoch it named */
	uint8_t c0[IG_HASH_BYTES];       /* S·G, commitment 0 of every epoch since */
	uint64_t sealed_ms;
	uint64_t bad_shares;             /* custody_bad_share records so far */
} ig_custody_view;

/* A fresh view: nothing dealt, not sealed. NULL when out of memory. */
ig_custody_view *ig_custody_view_new(void);
void ig_custody_view_free(ig_custody_view *v);

/* Applies one record (other types are ignored, IG_OK). reg answers "is this
 * holder an active identity" at this point of the log. IG_ERR_CORRUPT with
 * err naming the rule when the record breaks one (the view is unchanged). */
int ig_custody_view_apply(ig_custody_view *v, const ig_record *rec, const ig_registry *reg,
                          ig_error *err) IG_NODISCARD;

/* The dealt epoch numbered epoch (the newest dealt or the active one), or
 * NULL when the view holds no such epoch. */
const ig_custody_epoch_view *ig_custody_view_epoch(const ig_custody_view *v, uint64_t epoch);
/* The index (1..n) of holder id in epoch, or 0 when epoch is unknown or id
 * holds no share of it. */
unsigned ig_custody_view_index(const ig_custody_view *v, uint64_t epoch, const char *id);

#endif
