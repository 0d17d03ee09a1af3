/*
 * ig_state.h: the cluster state, rebuilt from the ledger one record at a time.
 *
 * Why this exists: the broker plugin, the CLI's offline writer and `iotguard
 * verify` must agree on what a ledger means. They did not when each replayed
 * records its own way (the CLI skipped the body checks and the join codes).
 * Now every one of them feeds records to ig_state_apply, and a broker that
 * applies records another broker appended (the multi-broker issue) uses the
 * same function.
 *
 * The state has two parts:
 * - ledger facts: identities (registry) and their zones, join codes, coins
 *   and credit, custody epochs (ig_custody_view.h), key-ring epochs, rings
 *   and compromised ids (ig_kp_view.h). Only ig_state_apply
 *   changes them, from records (the services also mark coins in flight and
 *   reserve ids, which no record makes durable);
 * - what the cluster head remembers beyond the ledger, per identity
 *   (ig_device: entropy sequence, attestation, cached box key, rate
 *   windows). A new enrolment or a revocation of an id wipes its ig_device,
 *   so a new key inherits nothing from an old one.
 */
#ifndef IG_STATE_H
#define IG_STATE_H

#include "ig_coins.h"
#include "ig_common.h"
#include "ig_attest.h"
#include "ig_custody_view.h"
#include "ig_kp_view.h"
#include "ig_join.h"
#include "ig_joincodes.h"
#include "ig_keybox.h"
#include "ig_ledger.h"
#include "ig_record.h"
#include "ig_registry.h"

typedef struct ig_state ig_state;

/* Why an entropy sample was refused (counted per device and in total). */
typedef enum ig_entropy_refusal {
	IG_ENT_MALFORMED = 0,   /* not our JSON, bad base64, box does not open, seq mismatch */
	IG_ENT_REPLAYED,        /* seq not above the last accepted one */
	IG_ENT_OVER_RATE,
	IG_ENT_ATTESTATION,     /* the device's measurement is not allowed */
	IG_ENT_REFUSAL_COUNT
} ig_entropy_refusal;

typedef enum ig_attest_state {
	IG_ATTEST_NONE = 0, IG_ATTEST_ALLOWED, IG_ATTEST_DISALLOWED, IG_ATTEST_UNLISTED,
} ig_attest_state;

/* What the cluster head remembers per identity beyond the ledger. */
typedef struct ig_device {
	uint64_t entropy_last_seq;
	uint64_t entropy_last_ms;
	uint64_t entropy_accepted;
	uint64_t entropy_refused[IG_ENT_REFUSAL_COUNT];
	uint8_t measurement[IG_HASH_BYTES];
	uint8_t attest;                  /* ig_attest_state */
	bool attest_in_flight;
	ig_attest_rate attest_rate;      /* attest records this hour (lib/entropy/attest.c) */
	/* crypto_box key shared with this device, for key and coin delivery;
	 * cached because X25519 costs more than everything else in issuing a
	 * key. */
	bool box_ready;
	uint8_t box_pk[IG_PK_BYTES];     /* the device key the box key was derived for */
	ig_box_key box;
	uint64_t key_window_ms;
	uint32_t key_requests;
} ig_device;

ig_state *ig_state_new(void);
/* Wipes cached keys. NULL is ignored. */
void ig_state_free(ig_state *st);

/* Checks rec's body against its spec (LEDGER.md §7) and applies its state
 * rules to identities, join codes, coins and credit, custody and key
 * rings, in that order. A
 * record that breaks a rule leaves the state exactly as it was (every area
 * checks before anything changes, so a shared ledger's writer can re-check
 * a record against the state and drop it as IG_ERR_CONFLICT when another
 * broker made it obsolete) and returns the error with err saying which
 * rule; a replay treats that as a refusal to load the ledger. Enrol and revoke records also wipe
 * the id's ig_device. Usable as an ig_ledger_open_opts.on_record callback
 * through ig_state_on_record. */
int ig_state_apply(ig_state *st, const ig_record *rec, ig_error *err) IG_NODISCARD;
/* ig_state_apply with the on_record signature (ctx is the ig_state). */
int ig_state_on_record(void *ctx, const ig_record *rec, ig_error *err);
/* Sets opts' on_record (ig_state_on_record), on_census, ahead and ctx so
 * that ig_ledger_open (or ig_ledger_scan_buffer) rebuilds st from a ledger:
 * the tables are sized from the ledger's census before the first record,
 * and each enroll's registry slot is loaded a few records ahead. */
void ig_state_replay_opts(ig_state *st, ig_ledger_open_opts *opts);
/* Sizes the identity and coin tables for what a ledger holds (enroll
 * records, coin hashes in coin_mint bodies), so a replay never grows them.
 * IG_ERR_NOMEM if room could not be made (the tables then grow as records
 * arrive). */
int ig_state_reserve(ig_state *st, const ig_ledger_census *census);

ig_registry *ig_state_registry(ig_state *st);
ig_joincodes *ig_state_joincodes(ig_state *st);
ig_coins *ig_state_coins(ig_state *st);

/* The identity id if it is active and has role (IG_ROLE_NONE: any role),
 * else NULL. */
const ig_identity *ig_state_active(const ig_state *st, const char *id, ig_role role);
/* The identity id whatever its status (pending, active or revoked), or NULL
 * if the ledger never enrolled it. */
const ig_identity *ig_state_identity(const ig_state *st, const char *id);
/* Visits every identity in enrolment order; return false to stop. */
void ig_state_identity_foreach(const ig_state *st, ig_identity_fn fn, void *ctx);

/* The custody part of the ledger (dealt and active epochs, sealed, bad
 * shares; ig_custody_view.h), as of the last record applied. Never NULL. */
const ig_custody_view *ig_state_custody(const ig_state *st);
/* The key-ring part of the ledger (current pool epoch, rings dealt in it,
 * compromised ids and devices; ig_kp_view.h), as of the last record
 * applied. Never NULL. */
const ig_kp_view *ig_state_kp(const ig_state *st);
/* The zone id was enrolled with (the enroll record's optional tag 6), or
 * NULL when its newest enrolment named none or id was never enrolled. */
const char *ig_state_zone(const ig_state *st, const char *id);

/* id's ig_device, created zeroed; NULL only when out of memory. */
ig_device *ig_state_device(ig_state *st, const char *id);
/* id's ig_device if it has one. */
const ig_device *ig_state_device_find(const ig_state *st, const char *id);
/* Wipes id's ig_device (done by ig_state_apply at enrol and revoke). */
void ig_state_device_forget(ig_state *st, const char *id);
/* Number of ig_device entries (for stats). */
size_t ig_state_device_count(const ig_state *st);
/* Visits every ig_device; return false to stop. */
typedef bool (*ig_state_device_fn)(void *ctx, const char *id, ig_device *d);
void ig_state_device_foreach(ig_state *st, ig_state_device_fn fn, void *ctx);

/* The crypto_box key between the cluster head (ch_sk) and who, cached in
 * who's ig_device and re-derived when who's key changed. NULL when out of
 * memory or the key is not a valid point. */
const ig_box_key *ig_state_box_key(ig_state *st, const ig_identity *who, const uint8_t ch_sk[IG_SK_BYTES]);

#endif
