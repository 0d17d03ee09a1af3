/*
 * ig_coins.h: the coin index, the bank's memory of every coin.
 *
 * Why this exists: the bank must answer "is this coin minted, spent or
 * refunded, and whose is it" for every redeem without reading the ledger,
 * so it keeps an index rebuilt from the bank's records (ig_bank.h) at start
 * and updated as records are written. Implementation: coins.c.
 */
#ifndef IG_COINS_H
#define IG_COINS_H

#include "ig_common.h"

/* ---- coin index (the bank's memory) ---- */
typedef enum ig_coin_state {
	IG_COIN_MINTED = 1,
	IG_COIN_REDEEMED = 2,     /* spent; kept until expiry: "already spent", or the keys again for its redeemer */
	IG_COIN_REFUNDED = 3,
} ig_coin_state;

/* Memory: a 24-byte slot per coin (12-byte hash prefix, u32 redeemer tag,
 * u32 expiry, u32 owner index + state + in-flight bit) in a linear-probing
 * table kept between 53% and 80% full, so 30..45 bytes per coin plus ~150
 * bytes per owner (see bench/bench_coins.c). Expiry is stored as u32 Unix seconds (clamped to
 * 2^32-1, i.e. year 2106). Not thread-safe: the plugin calls it from the
 * broker's thread only. */
typedef struct ig_coins ig_coins;
ig_coins *ig_coins_new(void);
void ig_coins_free(ig_coins *c);
/* Sizes the table for `more` coins beyond those present (a replay passes an
 * upper bound taken from the ledger's coin_mint records), so adding them
 * never grows it. Only makes room; IG_ERR_NOMEM leaves the index as it was. */
int ig_coins_expect(ig_coins *c, uint64_t more);
/* Applies CREDIT/MINT/REDEEM/REFUND records and the state rule of REVOKE
 * (others ignored); inconsistent ones (redeem of an unknown or spent coin,
 * overdraft) are IG_ERR_CORRUPT. A REVOKE of id sets id's balance to zero
 * and turns each of id's MINTED coins into REFUNDED without giving credit
 * back (docs/LEDGER.md "State rules"): a later enrolment of the same id
 * starts with nothing, and a later redeem or refund of such a coin is
 * corrupt. Read ig_coins_balance/ig_coins_outstanding before applying to
 * learn what a revocation cancels. */
struct ig_record;
int ig_coins_apply(ig_coins *c, const struct ig_record *rec, ig_error *err);

typedef struct ig_coin_info {
	ig_coin_state state;
	bool in_flight;            /* a redeem or refund is being written */
	uint64_t expires_at;
	const char *owner;         /* points into the index; valid until the next apply */
} ig_coin_info;
/* Looks a coin up by hash. IG_ERR_NOTFOUND if never minted, or if it was
 * redeemed/refunded and then pruned (ig_coins_prune) after its expiry: such
 * a coin cannot be redeemed anyway, the bank answers "unknown_coin". */
int ig_coins_find(const ig_coins *c, const uint8_t hash[IG_HASH_BYTES], ig_coin_info *info);
/* Marks a MINTED coin as having a redeem/refund being written (on), or
 * clears the mark (off). on: IG_ERR_NOTFOUND, IG_ERR_STATE if the coin is
 * not MINTED or already in flight (so of two racing redeems exactly one
 * gets IG_OK). off: IG_OK unless unknown. Applying the coin's REDEEM or
 * REFUND record clears the mark too. */
int ig_coins_set_in_flight(ig_coins *c, const uint8_t hash[IG_HASH_BYTES], bool on);
/* ig_coins_set_in_flight(on) for a redeem, remembering who asks: the
 * analyst and the sealed header's hash, as the REDEEM record will carry
 * them. Same return values. */
int ig_coins_set_redeeming(ig_coins *c, const uint8_t hash[IG_HASH_BYTES], const char *analyst,
                           const uint8_t header_hash[IG_HASH_BYTES]);
/* True iff the coin is REDEEMED, or MINTED with a redeem in flight, by this
 * analyst for this header: the one redeemer whose retry may be answered
 * with the keys again (docs/PROTOCOL.md "Unknown outcomes"). False for
 * anyone else, for refunds, and for a coin whose REDEEM record predates
 * the header_hash tag. The index keeps only a 32-bit keyed hash of
 * (analyst, header_hash) under a key drawn at ig_coins_new, so a stranger
 * matches with probability 2^-32 per (analyst id, header), and the tag
 * says nothing outside this process. */
bool ig_coins_redeemed_by(const ig_coins *c, const uint8_t hash[IG_HASH_BYTES], const char *analyst,
                          const uint8_t header_hash[IG_HASH_BYTES]);
/* Credit per the records applied (reservations are not subtracted). */
uint64_t ig_coins_balance(const ig_coins *c, const char *id);
/* Credit promised to in-flight mints, so two quick mints cannot overdraw:
 * IG_OK if balance - reserved >= n (then reserved += n), IG_ERR_RANGE if
 * not (no_credit), IG_ERR_INVAL for n = 0. Unreserve after the MINT record
 * was applied, or when writing it failed. */
int ig_coins_reserve(ig_coins *c, const char *id, uint64_t n);
void ig_coins_unreserve(ig_coins *c, const char *id, uint64_t n);
uint64_t ig_coins_reserved(const ig_coins *c, const char *id);
uint64_t ig_coins_outstanding(const ig_coins *c, const char *id);   /* minted, unspent, unexpired-or-not */
uint64_t ig_coins_count(const ig_coins *c, ig_coin_state st);      /* coins in that state in the index */
/* Bytes of heap the index holds: the slot table exactly, the owner table
 * estimated (~150 bytes per owner). */
size_t ig_coins_memory(const ig_coins *c);
/* Drops REDEEMED and REFUNDED coins whose expires_at < now (Unix seconds),
 * so memory tracks outstanding coins; MINTED coins are kept until refunded.
 * Shrinks the table when it becomes mostly empty. Returns how many coins
 * were dropped. Call it now and then (e.g. every few minutes), and during a
 * long replay: only coins in a final state go, and any later REDEEM/REFUND
 * record naming one is corrupt either way (reported as "not in the index"
 * instead of "already spent"). */
size_t ig_coins_prune(ig_coins *c, uint64_t now);
/* The same, a slice at a time, for an event loop that must not stall:
 * scans at most max_slots slots from *cursor and advances it (wrapping).
 * An entry moved past the cursor by a deletion or a rehash is simply
 * pruned on a later sweep. Returns how many coins were dropped. */
size_t ig_coins_prune_step(ig_coins *c, uint64_t now, uint32_t *cursor, uint32_t max_slots);

#endif
