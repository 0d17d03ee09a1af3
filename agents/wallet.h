/*
 * wallet.h: what the two sides of the coin economy keep track of, and
 * their duties.
 *
 * Why this exists: a collector pays for every data message with a one-use
 * coin and an analyst burns that coin at the bank to read the message (team
 * design, "Issue 4"). Which coin to spend, which message a result answers,
 * when a coin must go back to the bank, which redeem a bank reply belongs
 * to and what the running statistics are, are all decisions that must be
 * right without a broker in the loop. They live here as plain functions
 * over plain tables; duty_collect.c and duty_analyst.c only move bytes
 * between them and MQTT, as duty_m2m.c does with m2m_keys.h.
 */
#ifndef IG_WALLET_H
#define IG_WALLET_H

#include "duties.h"
#include "ig_bank.h"
#include "ig_coin.h"
#include "ig_keybox.h"

struct cJSON;

#define IG_BANK_NONCE_HEX 32                 /* request nonces: 16 random bytes, hex */
#define IG_BANK_TOPIC_MAX (40 + IG_CLUSTER_MAX + 2 * IG_ID_MAX)

/* ---- the collector's wallet --------------------------------------------------
 * One table of coin slots. A coin moves READY -> OUTSTANDING (it paid for a
 * message) -> wiped (its result came), or to REFUND_DUE -> REFUNDING ->
 * wiped (handed back to the bank). A coin never goes back to READY once it
 * went out in a message: it is one-use. Coins from a mint whose outcome the
 * bank does not know start UNCERTAIN and are never spent: they wait for the
 * next connection and are then refunded (REFUND_DUE), which restores the
 * credit if the mint was durable and costs nothing if it was lost. A refund
 * the bank could not record, or whose outcome it does not know, goes back
 * to REFUND_DUE and is offered again later. */
#define IG_WALLET_CAP 256
#define IG_WALLET_LOW 8            /* mint when fewer ready coins than this */
#define IG_WALLET_MINT_BATCH 16    /* coins per mint request */
#define IG_WALLET_MIN_LIFE_S 10    /* a coin this close to expiry is not spent, but refunded */

typedef enum ig_wallet_slot_state {
	IG_WSLOT_EMPTY = 0,
	IG_WSLOT_READY,          /* minted to us, not used yet */
	IG_WSLOT_OUTSTANDING,    /* paid for a data message; waiting for its result */
	IG_WSLOT_REFUND_DUE,     /* to be handed back to the bank */
	IG_WSLOT_REFUNDING,      /* in the refund request awaiting its reply */
	IG_WSLOT_UNCERTAIN,      /* from a mint of unknown outcome: never spent, refunded after a reconnect */
} ig_wallet_slot_state;

typedef struct ig_wallet_coin {
	ig_wallet_slot_state state;
	uint8_t coin[IG_COIN_BYTES];          /* secret */
	uint64_t expires_at;                  /* Unix s, from the bank */
	bool sealed;                          /* went out in a message: header_hash, seq, sent_ms valid */
	uint8_t header_hash[IG_HASH_BYTES];
	uint64_t seq;
	uint64_t sent_ms;
	bool uncertain_mint;                  /* its mint may have been lost (outcome_unknown) */
	bool refund_unknown;                  /* an earlier refund of it may have been recorded */
} ig_wallet_coin;

typedef struct ig_wallet {
	ig_wallet_coin slot[IG_WALLET_CAP];
} ig_wallet;

void ig_wallet_init(ig_wallet *w);
size_t ig_wallet_count(const ig_wallet *w, ig_wallet_slot_state st);
/* Adds n coins (n * 32 bytes) expiring at expires_at as READY. All or
 * nothing: IG_ERR_RANGE if fewer than n slots are free. */
int ig_wallet_add(ig_wallet *w, const uint8_t *coins, size_t n, uint64_t expires_at);
/* As ig_wallet_add, for coins that came with an outcome_unknown answer to a
 * mint: they are added UNCERTAIN (never spent; see above). */
int ig_wallet_add_uncertain(ig_wallet *w, const uint8_t *coins, size_t n, uint64_t expires_at);
/* Connected again (the broker may have restarted with its ledger back):
 * every UNCERTAIN coin becomes REFUND_DUE. Returns how many. */
size_t ig_wallet_release_uncertain(ig_wallet *w);
/* The READY coin to spend next: the one expiring soonest among those with
 * more than IG_WALLET_MIN_LIFE_S left. NULL if none. It stays READY until
 * ig_wallet_mark_sent. */
ig_wallet_coin *ig_wallet_take(ig_wallet *w, uint64_t now_s);
void ig_wallet_mark_sent(ig_wallet_coin *c, const uint8_t header_hash[IG_HASH_BYTES], uint64_t seq, uint64_t now_ms);
/* The coin that paid for the message with this header hash, whatever its
 * state since (a late result still counts). NULL if none. */
ig_wallet_coin *ig_wallet_find(ig_wallet *w, const uint8_t header_hash[IG_HASH_BYTES]);
/* Wipes the slot. */
void ig_wallet_forget(ig_wallet_coin *c);
/* Marks REFUND_DUE: outstanding coins without a result after
 * result_timeout_ms or past their expiry, and ready coins within
 * IG_WALLET_MIN_LIFE_S of it. UNCERTAIN coins wait for a reconnect (an
 * expired coin can still be refunded). Returns how many it marked. */
size_t ig_wallet_sweep(ig_wallet *w, uint64_t now_ms, uint64_t result_timeout_ms);
/* The collector is stopping: every READY and UNCERTAIN coin, and with
 * outstanding also every OUTSTANDING one, becomes REFUND_DUE (a result that
 * comes for one still counts). Returns how many. */
size_t ig_wallet_cancel(ig_wallet *w, bool outstanding);
/* Moves up to max REFUND_DUE coins to REFUNDING and points out[] at them. */
size_t ig_wallet_refund_batch(ig_wallet *w, ig_wallet_coin **out, size_t max);
/* What one refund reply did to the coins it named. */
typedef struct ig_refund_tally {
	size_t refunded;         /* credited back now (not in "refused") */
	size_t refunded_before;  /* already_refunded after a refund of unknown outcome: credited then */
	size_t mint_lost;        /* unknown_coin for a coin of a mint of unknown outcome: never debited */
	size_t retry;            /* storage_failed or outcome_unknown: REFUND_DUE again, offered later */
	size_t refused;          /* any other refusal: dropped, their credit is not coming back */
	size_t uncertain_back;   /* of refunded and refunded_before, coins of a mint of unknown outcome */
} ig_refund_tally;
/* Applies one "refused" entry of a refund reply (coin_hash is BLAKE2b-256
 * of the coin, code the bank's error) to the REFUNDING coin it names:
 * storage_failed and outcome_unknown put it back to REFUND_DUE (the latter
 * remembering that this refund may have been recorded); anything else
 * wipes it. Returns false, changing nothing, if no REFUNDING coin has that
 * hash. */
bool ig_wallet_refund_refused(ig_wallet *w, const uint8_t coin_hash[IG_HASH_BYTES], const char *code,
                              ig_refund_tally *t);
/* The refund was answered (after ig_wallet_refund_refused for each refused
 * coin): wipes every REFUNDING coin left, which the bank credited back.
 * Returns how many; t, if not NULL, counts them. */
size_t ig_wallet_refund_settle(ig_wallet *w, ig_refund_tally *t);
/* The refund went unanswered: REFUNDING goes back to REFUND_DUE. */
size_t ig_wallet_refund_retry(ig_wallet *w);
void ig_wallet_wipe(ig_wallet *w);

/* {"type":"refund","coins":["<64 hex>",...],"nonce":"..."}; returns the
 * length or IG_ERR_RANGE. The buffer holds coins: wipe it after use. */
int ig_wallet_refund_request(char *out, size_t cap, ig_wallet_coin *const *coins, size_t n, const char *nonce);

/* ---- boxes from the cluster head (coins, redeemed keys) ----------------------- */

/* (The shared key they are opened with, ig_ch_box, is kept next to the pin:
 * duties.h.) */
/* Opens the "box" (base64 std) of msg under "box_nonce" (48 hex). Returns
 * the plaintext length, IG_ERR_INVAL (fields missing or malformed),
 * IG_ERR_RANGE (does not fit) or IG_ERR_CRYPTO (not from the cluster head). */
int ig_ch_box_open(uint8_t *out, size_t cap, const struct cJSON *msg, const ig_box_key *bk);

/* A fresh random request nonce. */
void ig_bank_nonce(char out[IG_BANK_NONCE_HEX + 1]);

/* ---- readings ------------------------------------------------------------------ */

typedef struct ig_reading {
	bool has_load, has_mem, has_temp;
	double load;                      /* 1-minute load average */
	uint64_t mem_kb;                  /* MemAvailable */
	double temp_c;                    /* first thermal zone */
} ig_reading;
/* Reads /proc/loadavg, /proc/meminfo and /sys/class/thermal/thermal_zone0..9;
 * IG_ERR_IO if none of them could be read. */
int ig_reading_take(ig_reading *r);
/* {"seq":n,"t":ms,"load":..,"mem_kb":..,"temp_c":..} (fields present only
 * if read). Returns the length or IG_ERR_RANGE. */
int ig_reading_payload(char *out, size_t cap, uint64_t seq, uint64_t t_ms, const ig_reading *r);

/* ---- topics -------------------------------------------------------------------- */

/* Splits iotguard/<cluster>/dev/<collector>/<kind>/<stream> (kind "data"
 * or "results"); IG_ERR_INVAL unless every part is a valid id. */
int ig_bank_topic_split(const char *topic, const char *cluster, const char *kind, char collector[IG_ID_MAX + 1],
                        char stream[IG_ID_MAX + 1]);

/* ---- the analyst's pending redeems --------------------------------------------- */
#define IG_REDEEM_MAX_PENDING 32
#define IG_REDEEM_TIMEOUT_MS 30000
#define IG_REDEEM_MAX_RETRIES 10         /* resends after outcome_unknown: ~5 min of back-off, for a restart */
#define IG_REDEEM_BOX_BYTES (32 + 32 + IG_COIN_NONCE_BYTES + IG_HASH_BYTES)

typedef struct ig_redeem {
	bool used;
	char nonce[IG_BANK_NONCE_HEX + 1];
	char collector[IG_ID_MAX + 1];
	char stream[IG_ID_MAX + 1];
	char topic[IG_BANK_TOPIC_MAX];
	uint8_t header_hash[IG_HASH_BYTES];
	ig_suite suite;
	uint8_t payload_nonce[IG_COIN_NONCE_BYTES];
	uint8_t *msg;                     /* a copy of the data message */
	size_t len;
	uint64_t sent_ms;
	unsigned retries;                 /* resends after outcome_unknown answers */
	uint64_t retry_at_us;             /* 0 = awaiting an answer; else resend it then (monotonic) */
} ig_redeem;

typedef struct ig_redeem_table {
	ig_redeem r[IG_REDEEM_MAX_PENDING];
} ig_redeem_table;

/* Remembers a data message to redeem: parses it, copies it, hashes its
 * header and picks a fresh nonce. NULL if malformed (*err = IG_ERR_INVAL),
 * the table is full (IG_ERR_RANGE) or out of memory. */
ig_redeem *ig_redeem_add(ig_redeem_table *t, const char *topic, const char *collector, const char *stream,
                         const uint8_t *msg, size_t len, uint64_t now_ms, int *err);
ig_redeem *ig_redeem_find(ig_redeem_table *t, const char *nonce);
void ig_redeem_drop(ig_redeem *r);
/* Drops redeems older than timeout_ms; returns how many. */
size_t ig_redeem_expire(ig_redeem_table *t, uint64_t now_ms, uint64_t timeout_ms);
size_t ig_redeem_count(const ig_redeem_table *t);
void ig_redeem_clear(ig_redeem_table *t);
/* {"type":"redeem","topic":..,"header":"<b64>","nonce":..}. */
int ig_redeem_request(char *out, size_t cap, const ig_redeem *r);

/* Checks a {"type":"redeemed"} reply against r and opens its box: header
 * hash and suite in clear and in the box must match r, and so must the
 * payload nonce. On IG_OK payload_key and result_key are filled (the
 * caller wipes them); else err says why (nothing secret in it). */
int ig_redeem_accept(const ig_redeem *r, const struct cJSON *msg, const ig_box_key *bk, uint8_t payload_key[32],
                     uint8_t result_key[32], ig_error *err);

/* ---- the analyst's running statistics ------------------------------------------ */
#define IG_STATS_MAX_SERIES 64
#define IG_STATS_MAX_FIELDS 8
#define IG_STATS_NAME_MAX 32

typedef struct ig_stat_field {
	char name[IG_STATS_NAME_MAX + 1];
	uint64_t count;
	double mean, min, max;
} ig_stat_field;

typedef struct ig_stat_series {
	bool used;
	char collector[IG_ID_MAX + 1];
	char stream[IG_ID_MAX + 1];
	uint64_t touched;                 /* for evicting the least recently used series */
	uint64_t messages;
	size_t nfields;
	ig_stat_field field[IG_STATS_MAX_FIELDS];
} ig_stat_series;

typedef struct ig_stats {
	ig_stat_series s[IG_STATS_MAX_SERIES];
	uint64_t clock;
} ig_stats;

/* The series for (collector, stream), created if new (evicting the least
 * recently used one when full). */
ig_stat_series *ig_stats_series(ig_stats *st, const char *collector, const char *stream);
/* Adds one value to the named field (a new field if there is room; else
 * IG_ERR_RANGE). Non-finite values are IG_ERR_INVAL. */
int ig_stats_add(ig_stat_series *s, const char *name, double v);
/* Feeds every top-level finite number of a payload object except "seq" and
 * "t" (identifiers, not measurements). Returns how many fields it fed or
 * IG_ERR_INVAL if payload is not an object. */
int ig_stats_feed(ig_stat_series *s, const struct cJSON *payload);
const ig_stat_field *ig_stats_field(const ig_stat_series *s, const char *name);
/* {"seq":n,"stats":{"load":{"count":c,"mean":m,"min":a,"max":b},...}};
 * returns the length or IG_ERR_RANGE / IG_ERR_NOMEM. */
int ig_stats_result(char *out, size_t cap, const ig_stat_series *s, uint64_t seq);

/* ---- the duties ----------------------------------------------------------------- */

/* collect: a sensor reading every interval (+-10%), paid with one coin. */
typedef struct ig_collect_counters {
	uint64_t sent, results, dropped_results, error_results, skipped_no_coin, minted, refunded, refund_refused;
	uint64_t uncertain_minted;   /* coins kept from mints answered outcome_unknown */
	uint64_t mint_lost;          /* of those, refunds answered unknown_coin: the mint was never recorded */
	uint64_t refund_retried;     /* coin refunds answered storage_failed or outcome_unknown, offered again */
} ig_collect_counters;

typedef struct ig_collect_state {
	unsigned interval_s;
	unsigned result_timeout_s;
	char stream[IG_ID_MAX + 1];
	const ig_pin_state *pin;
	ig_wallet wallet;
	ig_ch_box box;
	char mint_nonce[IG_BANK_NONCE_HEX + 1];     /* "" = no mint outstanding */
	unsigned mint_count;
	unsigned mint_want;                         /* halved while the bank says no_credit */
	uint64_t mint_sent_us;
	char refund_nonce[IG_BANK_NONCE_HEX + 1];   /* "" = no refund outstanding */
	uint64_t refund_sent_us;
	uint64_t next_mint_us, next_refund_us;      /* backoff after refusals */
	unsigned mint_failures;
	uint64_t next_reading_us;
	uint64_t next_report_us;
	uint64_t connected_us;
	uint64_t seq;
	ig_collect_counters counters;
	bool warned_no_pin, warned_no_coin;
	bool leaving;                               /* stopping: every coin goes back to the bank */
	uint64_t leave_us;                          /* when the stop began (monotonic) */
} ig_collect_state;
int ig_collect_init(ig_collect_state *c, unsigned interval_s, const char *stream, unsigned result_timeout_s,
                    const ig_pin_state *pin);
/* Handles one message on iotguard/C/dev/ID/results/<stream>; returns true
 * if a matching result was opened. Exposed for the unit test. */
bool ig_collect_result(ig_collect_state *c, const char *topic, const uint8_t *msg, size_t len, char *out,
                       size_t cap, size_t *out_len, uint64_t *seq);
#define IG_COLLECT_REFUND_REQUEST_MAX (64 + IG_COINS_PER_REQUEST * (2 * IG_COIN_BYTES + 3) + IG_BANK_NONCE_HEX)
/* The refund request due at now_us, if any (none while one is in flight or
 * before next_refund_us): moves up to 64 REFUND_DUE coins to REFUNDING,
 * sets refund_nonce and refund_sent_us and writes the request into out (it
 * holds coins: wipe it). Returns its length, 0 if none is due, or IG_ERR_*
 * with nothing changed. If the request cannot be sent, call
 * ig_collect_refund_unsent. Exposed for the unit test. */
int ig_collect_refund_prepare(ig_collect_state *c, char *out, size_t cap, uint64_t now_us);
void ig_collect_refund_unsent(ig_collect_state *c);
extern const ig_duty_ops ig_duty_collect;

/* analyst: redeems every data message it sees and answers with statistics. */
typedef struct ig_analyst_counters {
	uint64_t messages, redeemed, refused, results, error_results, dropped;
	uint64_t retried, gave_up;        /* redeems resent after outcome_unknown; given up after the last retry */
} ig_analyst_counters;

typedef struct ig_analyst_state {
	const ig_pin_state *pin;
	ig_ch_box box;
	ig_redeem_table redeems;
	ig_stats stats;
	ig_analyst_counters counters;
	uint64_t next_report_us;
	bool warned_no_pin;
} ig_analyst_state;
int ig_analyst_init(ig_analyst_state *an, const ig_pin_state *pin);
/* The error result for a redeemed payload the analyst cannot use:
 * {"error":code,"message":message} (both plain ASCII without quotes or
 * backslashes). Returns the length or IG_ERR_RANGE. */
#define IG_RESULT_ERR_NOT_JSON "not_json"              /* the payload is not a JSON object */
#define IG_RESULT_ERR_UNDECRYPTABLE "undecryptable"    /* it does not open with the coin's payload key */
int ig_analyst_error_result(char *out, size_t cap, const char *code, const char *message);
/* A redeem answered outcome_unknown is resent, identical (same topic,
 * header and nonce), after a back-off of 1 s doubling per retry (at once
 * after a reconnect), at most IG_REDEEM_MAX_RETRIES times: the bank answers
 * its redeemer's repeat with the same keys if the first was recorded.
 * ig_analyst_retry_prepare writes the first redeem due at now_us into out
 * and returns its length (*r set), 0 if none is due, or IG_ERR_*; after
 * sending it, call ig_analyst_retry_sent. Exposed for the unit test. */
int ig_analyst_retry_prepare(ig_analyst_state *an, char *out, size_t cap, uint64_t now_us, ig_redeem **r);
void ig_analyst_retry_sent(ig_analyst_state *an, ig_redeem *r, uint64_t now_ms);
extern const ig_duty_ops ig_duty_analyst;

#endif
