/*
 * ig_ban.h: what brute force at CONNECT may cost the broker.
 *
 * Why this exists: every token for an enrolled id costs the broker an
 * Ed25519 verify, and an attacker can send thousands per second from many
 * addresses. Two bounded tables, both broker-free so they can be unit
 * tested, turn that into cheap refusals:
 *
 *  - ig_ban: failures per source address (IPv6 counted per /64). An address
 *    with `limit` failures within a window is banned for a while. Keyed by
 *    the exact address, never by a lossy slot, and a banned entry is never
 *    evicted before its ban ends (docs/PROTOCOL.md, "Brute force").
 *  - ig_ban_ids: a token bucket of failed signature checks per identity, so
 *    many addresses guessing at one id cost a bounded amount of CPU. While
 *    an id is over its budget, only addresses with no recent failure get a
 *    signature check; the id's real owner, connecting from its own address,
 *    is therefore never locked out by someone else's guesses.
 *
 * Both are ig_idtables (ig_idtable.h) allocated whole at creation: neither
 * allocates afterwards, and at its budget an insert displaces one of the
 * few entries near its home slot or is not recorded.
 */
#ifndef IG_BAN_H
#define IG_BAN_H

#include "ig_common.h"

#define IG_BAN_WAYS 8   /* capacities are rounded up to a multiple of this */

/* A source address as a table key: IPv4 (also IPv4-mapped IPv6) exactly,
 * IPv6 by its /64 (one host usually owns a whole /64), anything else by a
 * hash of its text. */
typedef struct ig_ban_addr {
	uint8_t kind;        /* 4, 6, or 0 for an address that did not parse */
	uint8_t bytes[16];
} ig_ban_addr;

/* Fills key from Mosquitto's textual address (NULL counts as "", one key). */
void ig_ban_addr_parse(ig_ban_addr *key, const char *text);

typedef struct ig_ban ig_ban;

typedef struct ig_ban_rules {
	uint32_t limit;        /* failures within window_ms that ban; 0 = count, never ban */
	uint32_t window_ms;    /* failures older than this are forgotten */
	uint32_t ban_ms;       /* how long a ban lasts */
} ig_ban_rules;

/* capacity is rounded up to a multiple of IG_BAN_WAYS entries; the table
 * takes about 75 bytes per entry, allocated at once. IG_OK, IG_ERR_INVAL (capacity 0) or IG_ERR_NOMEM. */
int ig_ban_new(ig_ban **out, size_t capacity) __attribute__((warn_unused_result));
void ig_ban_free(ig_ban *b);
size_t ig_ban_capacity(const ig_ban *b);

/* True while the address is banned. */
bool ig_ban_banned(const ig_ban *b, const ig_ban_addr *key, uint64_t now_ms);

/* True if the address failed at least once within the window (or is banned). */
bool ig_ban_has_failed(const ig_ban *b, const ig_ban_addr *key, const ig_ban_rules *rules, uint64_t now_ms);

/* Both answers above from one lookup, for the CONNECT path (every connect
 * asks both; a second lookup hashed the address again). */
void ig_ban_look(bool *banned, bool *has_failed, const ig_ban *b, const ig_ban_addr *key, const ig_ban_rules *rules,
                 uint64_t now_ms);

typedef enum ig_ban_outcome {
	IG_BAN_COUNTED = 0,    /* failure recorded, no ban (yet) */
	IG_BAN_NOW_BANNED,     /* this failure started a ban */
	IG_BAN_UNTRACKED,      /* the table is full and the entries near the address's slot are all
	                          live bans: not recorded */
} ig_ban_outcome;

/* Records one failure. *failures (may be NULL) gets the count within the
 * current window. When the table is full, one of the entries near the
 * address's slot is replaced, never a banned one: first a forgotten one,
 * else the one whose last failure is oldest. */
ig_ban_outcome ig_ban_failed(ig_ban *b, const ig_ban_addr *key, const ig_ban_rules *rules, uint64_t now_ms,
                             uint32_t *failures);

/* Entries currently banned (a scan; for stats only). */
size_t ig_ban_count_banned(const ig_ban *b, uint64_t now_ms);

/* ---- per-identity budget of failed signature checks ---- */

typedef struct ig_ban_ids ig_ban_ids;

/* per_minute failed signature checks per identity, with a burst of the same
 * size; the bucket refills continuously. capacity as for ig_ban_new. */
int ig_ban_ids_new(ig_ban_ids **out, size_t capacity, uint32_t per_minute) __attribute__((warn_unused_result));
void ig_ban_ids_free(ig_ban_ids *t);
/* Changes the budget (a reload); entries keep their current balance, capped. */
void ig_ban_ids_set_budget(ig_ban_ids *t, uint32_t per_minute);

/* True if id has budget left for one more signature check. An id that has
 * never failed always has. */
bool ig_ban_ids_allow(const ig_ban_ids *t, const char *id, uint64_t now_ms);
/* Charges one failed signature check to id. */
void ig_ban_ids_charge(ig_ban_ids *t, const char *id, uint64_t now_ms);

#endif
