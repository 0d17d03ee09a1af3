/*
 * ig_holders.h: choosing the devices that hold the custody shares.
 *
 * Why this exists: the cluster head deals k-of-n shares of its custody
 * secret to devices, and which devices it picks decides whether k of them
 * can be reached when the key must be rebuilt. The choice is a pure function
 * of what the caller already knows about each candidate (the ledger, the
 * policy, the agents' status messages), so it is tested without a broker and
 * documented as one algorithm (docs/PROTOCOL.md "Custody: choosing holders"):
 *
 * 1. Eligible: active, online, of a role the policy's custody holder_roles
 *    allows (default: device), and attested when the role has an allow list.
 * 2. Ranked: power class first (mains, or battery >= min_battery; then
 *    unknown; then low battery), then longest up, then id (byte order).
 * 3. Spread: candidates are grouped by zone (no zone is its own group ""),
 *    zones are ordered by their best-ranked member, and holders are taken
 *    round-robin, one per zone per round, each zone in rank order, until n.
 */
#ifndef IG_HOLDERS_H
#define IG_HOLDERS_H

#include "ig_common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Power classes, best first. */
typedef enum ig_holder_power {
	IG_HOLDER_POWER_GOOD = 0,      /* on mains, or battery >= min_battery */
	IG_HOLDER_POWER_UNKNOWN = 1,   /* the device reported no battery */
	IG_HOLDER_POWER_LOW = 2,       /* battery below min_battery */
} ig_holder_power;

/* What the caller knows about one candidate. Strings are borrowed. */
typedef struct ig_holder_candidate {
	const char *id;            /* identity id (ranking tie-break: strcmp order) */
	const char *zone;          /* its enrolment zone; NULL or "" = no zone */
	uint8_t role;              /* ig_role */
	bool active;               /* enrolled and not revoked */
	bool online;               /* connected now */
	bool attested;             /* its measurement is allowed, or its role has no allow list */
	bool battery_known;        /* the agent reported "battery" in its status */
	bool mains;                /* ... and is on mains power */
	uint8_t battery_percent;   /* ... else its charge, 0..100 */
	uint64_t up_ms;            /* how long it has been up (larger is preferred) */
} ig_holder_candidate;

typedef struct ig_holders_opts {
	uint32_t role_mask;        /* bit (1u << role) set: the role may hold; 0 = device only */
	unsigned min_battery;      /* percent: a battery at or above it counts as powered (default 30) */
} ig_holders_opts;

#define IG_HOLDERS_DEFAULT_MIN_BATTERY 30

/* The candidate may hold a share under opts (rule 1 above). */
bool ig_holders_eligible(const ig_holder_candidate *c, const ig_holders_opts *opts);
/* Its power class under opts (rule 2 above). */
ig_holder_power ig_holders_power(const ig_holder_candidate *c, const ig_holders_opts *opts);

/* Chooses n holders among cands[0..count). On IG_OK, chosen[0..n) are
 * indexes into cands in holder index order: holder i (1..n) is
 * cands[chosen[i-1]]. IG_ERR_RANGE (err says how many are eligible) when
 * fewer than n candidates are eligible; IG_ERR_INVAL for n == 0, n > 255,
 * a NULL id, or a count above 65535. IG_ERR_NOMEM when out of memory.
 * chosen must have room for n entries. Pure: reads only its arguments. */
int ig_holders_choose(size_t *chosen, const ig_holder_candidate *cands, size_t count, unsigned n,
                      const ig_holders_opts *opts, ig_error *err) IG_NODISCARD;

#endif
