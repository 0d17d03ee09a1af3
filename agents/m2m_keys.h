/*
 * m2m_keys.h: an agent's session keys, its outstanding key requests and
 * the checks every received m2m message must pass.
 *
 * Why this exists: which key to send with, which keys still open messages,
 * when a key must be replaced or wiped, and why a message was dropped are
 * decisions that must be right without a broker in the loop, so they live
 * here as plain functions over plain tables, and the m2m duty only moves
 * bytes between them and MQTT.
 */
#ifndef IG_M2M_KEYS_H
#define IG_M2M_KEYS_H

#include "ig_aead.h"
#include "ig_common.h"
#include "ig_keybox.h"
#include "ig_m2m.h"
#include "ig_replay.h"

struct cJSON;

#define IG_M2M_MAX_KEYS 8
#define IG_M2M_REKEY_BEFORE_S 60            /* ask for a new key this long before expiry */
#define IG_M2M_REKEY_MESSAGES (1u << 20)    /* ... or after this many messages sent with one */
#define IG_M2M_RETIRE_GRACE_MS 10000        /* old key lives on this long after a new one is used */

typedef enum ig_key_slot_state {
	IG_SLOT_EMPTY = 0,
	IG_SLOT_LIVE,        /* usable */
	IG_SLOT_EXPIRED,     /* tombstone: key bytes wiped, id kept to name the drop reason */
	IG_SLOT_REVOKED,
	IG_SLOT_RETIRED,     /* replaced by a newer key */
} ig_key_slot_state;

typedef struct ig_m2m_key {
	ig_key_slot_state state;
	ig_session_key k;          /* k.direction is the direction WE send with */
	uint64_t added;            /* insertion order, to evict the oldest tombstone */
	uint64_t accepted_s;       /* wall clock at arrival: with expires_at, the key's lifetime */
	uint64_t sent;             /* last counter we used (0 = none yet) */
	uint64_t received;
	ig_replay_window rx;       /* for the peer's direction */
	uint64_t first_use_ms;     /* 0 = not used yet */
	uint64_t retire_at_ms;     /* 0 = not scheduled */
} ig_m2m_key;

typedef struct ig_keytable {
	ig_m2m_key slot[IG_M2M_MAX_KEYS];
	uint64_t next_added;
} ig_keytable;

/* Adds a copy of k as LIVE (the caller wipes its copy). Returns the slot,
 * or NULL if the key id is already known (a duplicate delivery). When the
 * table is full, the oldest tombstone goes first, then the live key that
 * expires soonest (wiped). */
ig_m2m_key *ig_keytable_add(ig_keytable *t, const ig_session_key *k, uint64_t now_s);
/* Any non-empty slot with this id (tombstones included). */
ig_m2m_key *ig_keytable_find(ig_keytable *t, const uint8_t key_id[IG_KEY_ID_BYTES]);
/* The key to send to peer with: live, unexpired, the latest expiry (ties
 * broken by key id, so both ends of a pair pick the same key). */
ig_m2m_key *ig_keytable_newest(ig_keytable *t, const char *peer, uint64_t now_s);
/* Within IG_M2M_REKEY_BEFORE_S of expiry (or in the second half of its
 * life, for keys issued for less than twice that; half as close again for
 * keys the peer requested), or worn out by IG_M2M_REKEY_MESSAGES sent
 * messages. */
bool ig_keytable_needs_rekey(const ig_m2m_key *k, uint64_t now_s);
/* Wipes the key bytes and leaves a tombstone in state st. */
void ig_keytable_wipe(ig_m2m_key *k, ig_key_slot_state st);
/* Records that k was used; the first use of a key schedules the retirement
 * of every older live key with the same peer. */
void ig_keytable_used(ig_keytable *t, ig_m2m_key *k, uint64_t now_ms);
/* Expires and retires what is due; returns how many keys it wiped. Calls
 * report (if non-NULL) for each, for logging. */
size_t ig_keytable_sweep(ig_keytable *t, uint64_t now_ms,
                         void (*report)(void *ctx, const ig_m2m_key *k, ig_key_slot_state why), void *ctx);
size_t ig_keytable_live(const ig_keytable *t);
void ig_keytable_wipe_all(ig_keytable *t);
/* First 8 hex characters of a key id, for logs (an id is not secret). */
void ig_key_id_prefix(char out[9], const uint8_t key_id[IG_KEY_ID_BYTES]);

/* Request nonces we sent and not yet matched. */
#define IG_M2M_MAX_NONCES 4
#define IG_M2M_NONCE_HEX 32
#define IG_M2M_NONCE_TTL_MS 120000
typedef struct ig_nonce_set {
	char nonce[IG_M2M_MAX_NONCES][IG_M2M_NONCE_HEX + 1];
	uint64_t sent_ms[IG_M2M_MAX_NONCES];
} ig_nonce_set;
/* Fills out with a fresh random nonce and remembers it (forgetting the
 * oldest if full). */
void ig_nonce_set_new(ig_nonce_set *s, char out[IG_M2M_NONCE_HEX + 1], uint64_t now_ms);
/* True if nonce was outstanding; it is forgotten either way afterwards. */
bool ig_nonce_set_take(ig_nonce_set *s, const char *nonce);
void ig_nonce_set_forget_oldest(ig_nonce_set *s);
void ig_nonce_set_expire(ig_nonce_set *s, uint64_t now_ms);
size_t ig_nonce_set_count(const ig_nonce_set *s);
/* Time the newest outstanding request went out (0 if none). */
uint64_t ig_nonce_set_newest_ms(const ig_nonce_set *s);
/* Decides whether an inbox {"type":"error"} answers one of our session_key
 * requests, and forgets that request if so. The cluster head names the
 * request an error answers ("request", and "nonce" when the request had a
 * valid one): an error whose nonce is one of ours is ours; one that names
 * "session_key" without a nonce answers the oldest outstanding request; one
 * that names another request (an attest's "malformed", a bank request's
 * "storage_failed") or names none (a cluster head older than this field)
 * answers none of ours, and the unanswered request is retried after its
 * wait instead. */
bool ig_nonce_set_take_error(ig_nonce_set *s, const struct cJSON *msg);

/* Why a received message or key was not accepted. */
typedef enum ig_m2m_drop {
	IG_DROP_MALFORMED = 0,
	IG_DROP_UNKNOWN_KEY,
	IG_DROP_EXPIRED,
	IG_DROP_REVOKED,
	IG_DROP_REPLAYED,
	IG_DROP_TOO_OLD,
	IG_DROP_TAMPERED,
	IG_DROP_COUNT
} ig_m2m_drop;
const char *ig_m2m_drop_name(ig_m2m_drop d);   /* "unknown_key", ... */

typedef struct ig_m2m_counters {
	uint64_t sent, received, keys_received, keys_rejected;
	uint64_t drops[IG_DROP_COUNT];
} ig_m2m_counters;
uint64_t ig_m2m_drops_total(const ig_m2m_counters *c);
/* "sent 5, received 4, dropped 1 (unknown_key=0 expired=0 ...)" */
int ig_m2m_counters_format(char *out, size_t cap, const ig_m2m_counters *c);

/* Receives one message from `from` on `topic`: header, key lookup, peer
 * match, expiry, replay window, AEAD with the sender's direction, commit.
 * Returns the plaintext length (and *key, *counter), or -1 with *why set. */
int ig_m2m_receive(ig_keytable *t, const char *topic, const char *from, const uint8_t *msg, size_t len,
                   uint64_t now_ms, uint8_t *pt, size_t pt_cap, ig_m2m_key **key, uint64_t *counter,
                   ig_m2m_drop *why);

/* Accepts a {"type":"session_key",...} inbox message: opens the box with
 * bk, checks that every cleartext field matches the boxed one, that the key
 * is unexpired and not for ourselves, and for direction 0 that the request
 * nonce is one we sent (then forgets it). Adds it to the table. Returns the
 * slot or NULL with err explaining (nothing secret in it). */
ig_m2m_key *ig_m2m_accept_key(ig_keytable *t, ig_nonce_set *nonces, const struct cJSON *msg, const ig_box_key *bk,
                              const char *self_id, uint64_t now_s, ig_error *err);

#endif
