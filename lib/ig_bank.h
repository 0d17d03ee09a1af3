/*
 * ig_bank.h: one-use coins (seed 001, "ecoin"): the coin crypto, the bank's
 * records and the coin index the bank rebuilds from the ledger.
 *
 * Why this exists: a coin is both an authorisation token and the key of one
 * payload. The collector seals the coin to the bank in a header next to the
 * payload; an analyst hands the header to the bank, which burns the coin
 * (durably, once) and returns the derived keys. The ledger only ever holds
 * BLAKE2b-256(coin). Formats: docs/PROTOCOL.md "Coins", team design.
 */
#ifndef IG_BANK_H
#define IG_BANK_H

#include "ig_aead.h"
#include "ig_common.h"

#define IG_COIN_BYTES 32
#define IG_COIN_NONCE_BYTES 24
#define IG_COINS_PER_REQUEST 64
#define IG_DATA_MAGIC "IGD1"
#define IG_RESULT_MAGIC "IGS1"
#define IG_DATA_MAX_PAYLOAD 65536

/* ---- record bodies (types 32..35; layouts in docs/LEDGER.md 7.8-7.11) ----
 * Defined here rather than in ig_record.h's enum so the bank can evolve on
 * its own; the numbers are fixed forever. */
#define IG_REC_CREDIT 32          /* an admin credited an identity */
#define IG_REC_COIN_MINT 33       /* coins minted to a collector (hashes only) */
#define IG_REC_COIN_REDEEM 34     /* a coin was spent by an analyst */
#define IG_REC_COIN_REFUND 35     /* an unspent coin was voided, its credit returned */

/* Credit tags */
#define IG_TAG_CREDIT_ID 1            /* id string */
#define IG_TAG_CREDIT_AMOUNT 2        /* u64, > 0 */
#define IG_TAG_CREDIT_BY 3            /* by string (1..80 bytes UTF-8, no controls) */
/* Coin-mint tags */
#define IG_TAG_MINT_OWNER 1           /* id string: the collector */
#define IG_TAG_MINT_EXPIRES 2         /* u64, Unix seconds */
#define IG_TAG_MINT_HASHES 3          /* N * 32 bytes, N = 1..64: BLAKE2b-256 of each coin */
/* Coin-redeem tags */
#define IG_TAG_REDEEM_COIN_HASH 1     /* 32 bytes */
#define IG_TAG_REDEEM_ANALYST 2       /* id string */
#define IG_TAG_REDEEM_COLLECTOR 3     /* id string: the coin's owner */
#define IG_TAG_REDEEM_HEADER_HASH 4   /* 32 bytes, optional: BLAKE2b-256 of the sealed header redeemed */
/* Coin-refund tags */
#define IG_TAG_REFUND_COIN_HASH 1     /* 32 bytes */
#define IG_TAG_REFUND_COLLECTOR 2     /* id string: the coin's owner */
#define IG_TAG_REFUND_REASON 3        /* "expired" | "cancelled" */
typedef struct ig_credit_rec {
	char id[IG_ID_MAX + 1];
	uint64_t amount;
	char by[81];
} ig_credit_rec;

typedef struct ig_mint_rec {
	char owner[IG_ID_MAX + 1];
	uint64_t expires_at;
	uint32_t count;                                     /* 1..64 */
	uint8_t hashes[IG_COINS_PER_REQUEST][IG_HASH_BYTES];
} ig_mint_rec;

typedef struct ig_redeem_rec {
	uint8_t coin_hash[IG_HASH_BYTES];
	char analyst[IG_ID_MAX + 1];
	char collector[IG_ID_MAX + 1];
	/* Absent in records written before redeems were repeatable; then the
	 * coin index cannot tell a retry from its redeemer (docs/LEDGER.md 7.10). */
	bool has_header_hash;
	uint8_t header_hash[IG_HASH_BYTES];
} ig_redeem_rec;

typedef struct ig_refund_rec {
	uint8_t coin_hash[IG_HASH_BYTES];
	char collector[IG_ID_MAX + 1];
	char reason[16];                                    /* "expired" | "cancelled" */
} ig_refund_rec;

int ig_credit_encode(uint8_t *out, size_t cap, const ig_credit_rec *r);
int ig_credit_decode(const uint8_t *body, size_t len, ig_credit_rec *r, ig_error *err);
int ig_mint_encode(uint8_t *out, size_t cap, const ig_mint_rec *r);
int ig_mint_decode(const uint8_t *body, size_t len, ig_mint_rec *r, ig_error *err);
int ig_redeem_encode(uint8_t *out, size_t cap, const ig_redeem_rec *r);
int ig_redeem_decode(const uint8_t *body, size_t len, ig_redeem_rec *r, ig_error *err);
int ig_refund_encode(uint8_t *out, size_t cap, const ig_refund_rec *r);
int ig_refund_decode(const uint8_t *body, size_t len, ig_refund_rec *r, ig_error *err);
/* Encoders return the body length or IG_ERR_INVAL (a field its decoder
 * would refuse) / IG_ERR_RANGE (cap too small). Decoders return IG_OK or
 * IG_ERR_CORRUPT naming the field. */

/* For ig_record_type_name: "credit", "coin_mint", "coin_redeem",
 * "coin_refund"; NULL for any other type. */
const char *ig_bank_record_type_name(uint16_t type);
/* For ig_record_body_check: decodes a bank record body; IG_OK for any
 * non-bank type, IG_ERR_CORRUPT naming the bad field. */
struct ig_record;
int ig_bank_record_check(const struct ig_record *rec, ig_error *err);
/* JSON fields for ig_record_to_json (adds to obj); never a coin:
 *   credit      "id","amount","by"
 *   coin_mint   "owner","expires_at","count","coin_hashes":["<64 hex>",...]
 *   coin_redeem "coin_hash","analyst","collector"[,"header_hash"]
 *   coin_refund "coin_hash","collector","reason"
 * Returns IG_OK; IG_ERR_NOTFOUND if rec is not a bank type; IG_ERR_CORRUPT
 * if the body does not decode (obj untouched); IG_ERR_NOMEM. */
struct cJSON;
int ig_bank_record_json(struct cJSON *obj, const struct ig_record *rec);

/* ---- coin crypto ---- */
#define IG_COIN_HEADER_VERSION 1
/* Header plaintext: 1 version | 32 coin | 24 nonce | 1 suite | 1 collector_len
 * | collector | 32 topic_hash = 91 + collector_len bytes (92..155). */
#define IG_COIN_HEADER_PLAIN_MIN (1 + IG_COIN_BYTES + IG_COIN_NONCE_BYTES + 1 + 1 + 1 + IG_HASH_BYTES)
#define IG_COIN_HEADER_PLAIN_MAX (IG_COIN_HEADER_PLAIN_MIN - 1 + IG_ID_MAX)
/* Sealed header = plaintext + 48 (crypto_box_SEALBYTES): 140..203 bytes. */
#define IG_COIN_HEADER_SEALED_MIN (IG_COIN_HEADER_PLAIN_MIN + 48)
#define IG_COIN_HEADER_SEALED_MAX (IG_COIN_HEADER_PLAIN_MAX + 48)
/* A data message is payload + at most this; a result is payload + exactly
 * IG_RESULT_OVERHEAD. */
#define IG_DATA_OVERHEAD_MAX (4 + 2 + IG_COIN_HEADER_SEALED_MAX + 1 + IG_COIN_NONCE_BYTES + 16)
#define IG_RESULT_OVERHEAD (4 + IG_HASH_BYTES + 1 + IG_COIN_NONCE_BYTES + 16)

void ig_coin_hash(uint8_t out[IG_HASH_BYTES], const uint8_t coin[IG_COIN_BYTES]);
/* BLAKE2b-256 of the full data topic string, as the header carries it. */
void ig_coin_topic_hash(uint8_t out[IG_HASH_BYTES], const char *topic);
/* BLAKE2b-256 of the sealed header bytes: what the result and the redeem
 * reply are bound to. */
void ig_coin_header_hash(uint8_t out[IG_HASH_BYTES], const uint8_t *sealed, size_t len);
/* payload_key / result_key per the design (HKDF-SHA256 of the coin). */
void ig_coin_keys(const uint8_t coin[IG_COIN_BYTES], uint8_t payload_key[32], uint8_t result_key[32]);

typedef struct ig_coin_header {
	uint8_t coin[IG_COIN_BYTES];
	uint8_t nonce[IG_COIN_NONCE_BYTES];
	ig_suite suite;
	char collector[IG_ID_MAX + 1];
	uint8_t topic_hash[IG_HASH_BYTES];
} ig_coin_header;

/* Collector side: seals a data message for topic with one coin. Returns the
 * message length (written to out) or IG_ERR_*. header_hash (BLAKE2b-256 of
 * the sealed header) is what the result will be bound to. */
int ig_data_seal(uint8_t *out, size_t cap, const uint8_t bank_pk[IG_PK_BYTES], const uint8_t coin[IG_COIN_BYTES],
                 ig_suite suite, const char *collector, const char *topic, const uint8_t *payload, size_t len,
                 uint8_t header_hash[IG_HASH_BYTES]);
/* Anyone: splits a data message; header points into msg. */
int ig_data_parse(const uint8_t *msg, size_t len, const uint8_t **header, size_t *header_len, ig_suite *suite,
                  const uint8_t **nonce, const uint8_t **ct, size_t *ct_len) IG_NODISCARD;
/* Header plaintext codec (the layout above), exposed for test vectors.
 * encode returns the length or IG_ERR_INVAL/IG_ERR_RANGE; decode is strict
 * (exact length, version 1, suite 1|2, valid collector id) and returns
 * IG_OK or IG_ERR_INVAL. */
int ig_coin_header_encode(uint8_t *out, size_t cap, const ig_coin_header *h);
int ig_coin_header_decode(ig_coin_header *h, const uint8_t *pt, size_t len);
/* Bank side: opens a sealed header with the bank's key (the cluster head's
 * Ed25519 secret key, converted to X25519). IG_OK; IG_ERR_INVAL for a
 * length outside 140..203 or a malformed plaintext; IG_ERR_CRYPTO if it
 * was not sealed to this bank or was tampered with. On failure h is wiped.
 * The caller wipes h->coin when done. */
int ig_coin_header_open(ig_coin_header *h, const uint8_t *sealed, size_t len, const uint8_t bank_sk[IG_SK_BYTES])
	IG_NODISCARD;
/* Bank side: true iff h->topic_hash is the hash of topic (the topic the
 * analyst says the data came from). */
bool ig_coin_header_matches_topic(const ig_coin_header *h, const char *topic);
/* Analyst side: decrypts a data message with the payload key the bank
 * returned. Returns plaintext length, IG_ERR_INVAL (malformed) or
 * IG_ERR_CRYPTO. With AES-256-GCM the tag covers only the first 12 of the
 * 24 nonce bytes; use ig_data_open_redeemed, which also requires the
 * message's nonce to be the one the bank returned (from the sealed header),
 * so that every byte of the message is authenticated. */
int ig_data_open(uint8_t *out, size_t cap, const uint8_t *msg, size_t len, const char *topic,
                 const uint8_t payload_key[32]) IG_NODISCARD;
int ig_data_open_redeemed(uint8_t *out, size_t cap, const uint8_t *msg, size_t len, const char *topic,
                          const uint8_t payload_key[32], const uint8_t nonce[IG_COIN_NONCE_BYTES]) IG_NODISCARD;
/* Result message (analyst -> collector) and its opening. The collector
 * finds its request by ig_result_parse_hash, then opens with that request's
 * result key and header hash (a result for another request fails). With
 * AES-256-GCM nonce bytes 12..23 must be zero; sealing writes them, parsers
 * refuse anything else, so every transmitted nonce byte is authenticated. */
int ig_result_seal(uint8_t *out, size_t cap, const uint8_t result_key[32], ig_suite suite,
                   const uint8_t header_hash[IG_HASH_BYTES], const char *topic, const uint8_t *payload, size_t len);
int ig_result_parse_hash(const uint8_t *msg, size_t len, uint8_t header_hash[IG_HASH_BYTES]);
int ig_result_open(uint8_t *out, size_t cap, const uint8_t *msg, size_t len, const char *topic,
                   const uint8_t result_key[32], const uint8_t header_hash[IG_HASH_BYTES]) IG_NODISCARD;

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
