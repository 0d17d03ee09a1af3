/*
 * ig_bank.h: the bank's ledger records (credit, coin mint, redeem, refund).
 *
 * Why this exists: the bank's state is rebuilt from the ledger, so its four
 * record types are part of the ledger format (docs/LEDGER.md 7.8-7.11). The
 * ledger only ever holds BLAKE2b-256(coin), never a coin. The coin crypto
 * is ig_coin.h, the index rebuilt from these records ig_coins.h.
 */
#ifndef IG_BANK_H
#define IG_BANK_H

#include "ig_common.h"

#define IG_COINS_PER_REQUEST 64   /* coins per mint: the bound of a MINT record */

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

int ig_bank_credit_encode(uint8_t *out, size_t cap, const ig_credit_rec *r);
int ig_bank_credit_decode(const uint8_t *body, size_t len, ig_credit_rec *r, ig_error *err);
int ig_bank_mint_encode(uint8_t *out, size_t cap, const ig_mint_rec *r);
int ig_bank_mint_decode(const uint8_t *body, size_t len, ig_mint_rec *r, ig_error *err);
int ig_bank_redeem_encode(uint8_t *out, size_t cap, const ig_redeem_rec *r);
int ig_bank_redeem_decode(const uint8_t *body, size_t len, ig_redeem_rec *r, ig_error *err);
int ig_bank_refund_encode(uint8_t *out, size_t cap, const ig_refund_rec *r);
int ig_bank_refund_decode(const uint8_t *body, size_t len, ig_refund_rec *r, ig_error *err);
/* Encoders return the body length or IG_ERR_INVAL (a field its decoder
 * would refuse) / IG_ERR_RANGE (cap too small). Decoders return IG_OK or
 * IG_ERR_CORRUPT naming the field. */

/* Bank-only views of the generic record functions (ig_record.h), for code
 * that must tell a bank record from any other: */
/* "credit", "coin_mint", "coin_redeem", "coin_refund"; NULL for any other
 * type. */
const char *ig_bank_record_type_name(uint16_t type);
/* Decodes a bank record body; IG_OK for any non-bank type, IG_ERR_CORRUPT
 * naming the bad field. */
struct ig_record;
int ig_bank_record_check(const struct ig_record *rec, ig_error *err);
/* JSON fields of a bank record, as ig_record_to_json shows them (adds to
 * obj); never a coin:
 *   credit      "id","amount","by"
 *   coin_mint   "owner","expires_at","count","coin_hashes":["<64 hex>",...]
 *   coin_redeem "coin_hash","analyst","collector"[,"header_hash"]
 *   coin_refund "coin_hash","collector","reason"
 * Returns IG_OK; IG_ERR_NOTFOUND if rec is not a bank type; IG_ERR_CORRUPT
 * if the body does not decode (obj untouched); IG_ERR_NOMEM. */
struct cJSON;
int ig_bank_record_json(struct cJSON *obj, const struct ig_record *rec);

#endif
