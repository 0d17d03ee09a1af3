/*
 * ig_svc_bank.h: the bank service, deciding mint, redeem, refund and balance
 * requests (docs/PROTOCOL.md "Coins", "Requests to the cluster head").
 *
 * Why this exists: the bank's rules (who may mint, which redeem wins, what a
 * refund returns, what an unknown outcome tells the client) used to live in
 * the broker plugin and could be exercised only through a real broker. Here
 * they take a request and the cluster state and return an ig_decision, so
 * every refusal is unit-tested without a broker and the plugin only carries
 * the decision out.
 *
 * Durability: a mint, redeem or refund is answered only from the done
 * callback of its APPEND, once the ledger knows the record's fate. The
 * carrier has then already applied a durable record to the ig_state and
 * published its event; done only releases the service's marks (credit
 * reserved for a mint, a coin in flight) and builds the replies. A refund of
 * several coins writes one record per coin, all handed to the ledger at
 * once (ig_decision_then), in the order of the request's "coins", so they
 * share a group commit; the last record's done answers.
 *
 * The request decoders (ig_svc_bank_decode_*) are plain functions of a
 * parsed JSON object, with every field check, so they are fuzzed on their
 * own (tests/fuzz/fuzz_svc_bank.c).
 */
#ifndef IG_SVC_BANK_H
#define IG_SVC_BANK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ig_bank.h"
#include "ig_common.h"
#include "ig_decision.h"
#include "ig_pool.h"
#include "ig_state.h"

struct cJSON;

#define IG_SVC_BANK_NONCE_MAX 64     /* a request nonce: 1..64 characters 0x21..0x7e */
#define IG_SVC_BANK_HEADER_MAX 512   /* decoded "header" bytes accepted (a sealed header is 140..203) */

/* Why a bank request was refused; counted in the stats' "bank.refused"
 * under ig_svc_bank_refusal_name. */
typedef enum ig_svc_bank_refusal {
	IG_SVC_BANK_NO_CREDIT = 0,
	IG_SVC_BANK_UNKNOWN_COIN,
	IG_SVC_BANK_ALREADY_SPENT,
	IG_SVC_BANK_EXPIRED,
	IG_SVC_BANK_WRONG_COLLECTOR,
	IG_SVC_BANK_WRONG_TOPIC,
	IG_SVC_BANK_MALFORMED,
	IG_SVC_BANK_NOT_ALLOWED,
	IG_SVC_BANK_OVER_LIMIT,
	IG_SVC_BANK_STORAGE_FAILED,
	IG_SVC_BANK_OUTCOME_UNKNOWN,     /* the record may or may not be durable */
	IG_SVC_BANK_REFUSAL_COUNT
} ig_svc_bank_refusal;

/* The wire code ("no_credit", ...); NULL outside the enum. */
const char *ig_svc_bank_refusal_name(ig_svc_bank_refusal why);

/* ---- request decoders ----------------------------------------------------
 * Each fills out from a parsed request object and returns IG_OK, or
 * IG_ERR_INVAL (malformed) or IG_ERR_RANGE (mint only: over_limit). out's
 * nonce is the request's valid nonce or "" whatever the result, so a
 * refusal can carry it back. req may be any JSON value, or NULL. */

typedef struct ig_svc_bank_mint_req {
	char nonce[IG_SVC_BANK_NONCE_MAX + 1];
	uint32_t count;                              /* 1..IG_COINS_PER_REQUEST */
} ig_svc_bank_mint_req;

typedef struct ig_svc_bank_redeem_req {
	char nonce[IG_SVC_BANK_NONCE_MAX + 1];
	const char *topic;                           /* points into req: valid while req lives */
	uint8_t header[IG_SVC_BANK_HEADER_MAX];      /* the sealed header, decoded from base64 */
	size_t header_len;
} ig_svc_bank_redeem_req;

/* One coin of a refund: its hash, or malformed (not 64 hex). The coin
 * itself is wiped inside the decoder: only its hash is needed. */
typedef struct ig_svc_bank_refund_coin {
	bool malformed;
	uint8_t hash[IG_HASH_BYTES];                 /* all zero when malformed */
} ig_svc_bank_refund_coin;

typedef struct ig_svc_bank_refund_req {
	char nonce[IG_SVC_BANK_NONCE_MAX + 1];
	uint32_t n;                                  /* 1..IG_COINS_PER_REQUEST */
	ig_svc_bank_refund_coin coins[IG_COINS_PER_REQUEST];
} ig_svc_bank_refund_req;

typedef struct ig_svc_bank_balance_req {
	char nonce[IG_SVC_BANK_NONCE_MAX + 1];       /* optional: "" when absent or invalid */
} ig_svc_bank_balance_req;

/* {"count":<whole number 1..64>,"nonce":"<1..64 printable>"}: IG_ERR_INVAL
 * for a missing nonce or a count that is not a whole number, IG_ERR_RANGE
 * for a whole number outside 1..64. */
int ig_svc_bank_decode_mint(ig_svc_bank_mint_req *out, const struct cJSON *req) IG_NODISCARD;
/* {"topic":string,"header":base64 (at most 512 bytes),"nonce":...}. */
int ig_svc_bank_decode_redeem(ig_svc_bank_redeem_req *out, const struct cJSON *req) IG_NODISCARD;
/* {"coins":[1..64 items],"nonce":...}; an item that is not a 64-hex string
 * is a malformed coin, not a malformed request. */
int ig_svc_bank_decode_refund(ig_svc_bank_refund_req *out, const struct cJSON *req) IG_NODISCARD;
/* {"nonce"?:...}: always IG_OK. */
int ig_svc_bank_decode_balance(ig_svc_bank_balance_req *out, const struct cJSON *req);

/* ---- the service --------------------------------------------------------- */

typedef struct ig_svc_bank_config {
	uint32_t coin_ttl_s;        /* a minted coin's lifetime (plugin_opt_coin_ttl) */
	const char *cluster;        /* names the data topics a redeem may cite */
} ig_svc_bank_config;

typedef struct ig_svc_bank ig_svc_bank;

/* NULL when out of memory or when cluster is not a valid cluster name. */
ig_svc_bank *ig_svc_bank_new(const ig_svc_bank_config *cfg);
/* NULL is ignored. Completions still pending must have run (the ledger is
 * closed first): they point at the service. */
void ig_svc_bank_free(ig_svc_bank *b);

/* What a request needs besides the service. The pointers are kept by the
 * pending records' done callbacks, so they must outlive every append. */
typedef struct ig_svc_bank_env {
	ig_state *state;
	const uint8_t *ch_sk;       /* IG_SK_BYTES: the cluster head's key, opens headers and boxes answers */
	ig_pool *pool;              /* the key pool coins are derived from */
	uint64_t now_s;             /* Unix seconds */
} ig_svc_bank_env;

/* Decides one request of type "mint", "redeem", "refund" or "balance" from
 * id (any other type: a refusal "malformed"). out must be cleared. */
void ig_svc_bank_request(ig_svc_bank *b, const ig_svc_bank_env *env, const char *id, const char *type,
                         const struct cJSON *req, ig_decision *out);

/* Forgets a slice of spent, expired coins, at most every 10 ms: cheap enough
 * for every pass of the broker's loop. Returns how many were dropped. */
size_t ig_svc_bank_tick(ig_svc_bank *b, ig_state *st, uint64_t now_ms);

/* Adds "bank":{"minted","redeemed","refunded","outstanding","refused":{<code>:n,...}}
 * to stats (docs/PROTOCOL.md "Stats"). */
void ig_svc_bank_stats(const ig_svc_bank *b, ig_state *st, struct cJSON *stats);

#endif
