/*
 * kp_agent.h: the device's side of predistributed key rings (docs/PROTOCOL.md,
 * "Key rings on the device"), without a broker.
 *
 * Why this exists: when the cluster head cannot hand out session keys (it is
 * sealed, refuses, or there is no plugin at all), two devices still need a
 * key. Which ids a pair may use, whether a hello or a path key is genuine,
 * when a session must be dropped or replaced, and that a restart never
 * repeats a (key, nonce) pair are decisions that must be right without MQTT,
 * so they live here as plain state and functions; the kp duty (duty_kp.c)
 * only moves bytes between them and the broker, through the publish callback.
 */
#ifndef IG_KP_AGENT_H
#define IG_KP_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ig_common.h"
#include "ig_keybox.h"
#include "m2m_keys.h"

struct cJSON;

typedef struct ig_kpa ig_kpa;
typedef void (*ig_kpa_publish_fn)(void *ctx, const char *topic, const uint8_t *msg, size_t len);
typedef struct ig_kpa_config {
	const char *cluster, *self_id, *ring_path;   /* ring_path = key_path + ".ring" */
	const char *const *via; size_t n_via;        /* --kp-via candidates, in order */
	ig_kpa_publish_fn publish; void *publish_ctx;
} ig_kpa_config;

/* Limits of the rules (docs/PROTOCOL.md, "Key rings on the device"). */
#define IG_KPA_SESSIONS_MAX 32          /* live sessions in total; the oldest is evicted (wiped) */
#define IG_KPA_SESSIONS_PER_PEER 4
#define IG_KPA_VIA_MAX 8                /* --kp-via candidates kept */
#define IG_KPA_HELLO_RETRY_MS 5000      /* a hello unanswered this long is sent again ... */
#define IG_KPA_HELLO_TRIES 3            /* ... this many times in all, then backs off */
#define IG_KPA_BACKOFF_MS 60000         /* wait after the last unanswered try */
#define IG_KPA_PATH_RETRY_MS 5000       /* next --kp-via candidate after this long */
#define IG_KPA_SESSION_MAX_MS 3600000u  /* re-hello after an hour ... */
#define IG_KPA_SESSION_MAX_MSGS (1u << 20) /* ... or this many messages sent */
#define IG_KPA_REHELLO_MIN_MS 10000     /* unknown key id: at most one hello per peer per 10 s */
#define IG_KPA_RELAYS_PER_MIN 10        /* path keys relayed per requester per minute */

/* Why ig_kpa_on_message dropped a message: the ig_m2m_drop reasons
 * (m2m_keys.h, same numbers) and these. */
enum {
	IG_KPA_DROP_NO_RING = IG_DROP_COUNT, /* "no_ring": we hold no ring */
	IG_KPA_DROP_WRONG_EPOCH,             /* "wrong_epoch": another pool epoch than our ring's */
	IG_KPA_DROP_COMPROMISED,             /* "compromised": a compromised id or a revoked device */
	IG_KPA_DROP_BAD_MAC,                 /* "bad_mac": hello / path mac or path box did not verify */
	IG_KPA_DROP_NO_KEY,                  /* "no_key": ids not shared, fewer than q, unknown path key */
	IG_KPA_DROP_UNEXPECTED,              /* "unexpected": a reply / path key we did not ask for */
	IG_KPA_DROP_REFUSED,                 /* "refused": a relay we will not do (rate, self, revoked) */
	IG_KPA_DROP_COUNT
};
/* "unknown_key", ..., "no_ring", "wrong_epoch", ...; "?" out of range. */
const char *ig_kpa_drop_name(int why);

/* file_key = ig_kp_file_key(identity seed), pk = identity public key; loads the ring file if present. */
int ig_kpa_new(ig_kpa **out, const ig_kpa_config *cfg, const uint8_t file_key[32], const uint8_t pk[32], ig_error *err);
void ig_kpa_free(ig_kpa *k);                      /* wipes everything */
bool ig_kpa_has_ring(const ig_kpa *k);
uint64_t ig_kpa_epoch(const ig_kpa *k);           /* 0: no ring */

/* The nonce of the duty's outstanding {"type":"key_ring","nonce":N} request
 * ("" or NULL: none). ig_kpa_accept_ring refuses a message carrying a nonce
 * that is not this one (an unasked ring, without a nonce, is accepted). */
void ig_kpa_set_ring_nonce(ig_kpa *k, const char *nonce);

/* An inbox key_ring message: opens the box (bk = box key with the pinned cluster head), checks the
 * cleartext fields against the boxed ones, the ids against ig_kp_ring_ids, the ring hash; then the
 * nonce: expect_nonce (may be "", set by ig_kpa_set_ring_nonce) must match when the message carries one.
 * Stores the ring durably (wiping an older epoch's ring and its sessions) before returning IG_OK. Same
 * ring again: IG_ERR_EXISTS; an older epoch, another ring for the held epoch or a nonce not ours:
 * IG_ERR_STATE; a box that does not open: IG_ERR_CRYPTO; malformed or contradicting fields: IG_ERR_INVAL. */
int ig_kpa_accept_ring(ig_kpa *k, const struct cJSON *msg, const ig_box_key *bk, ig_error *err) IG_NODISCARD;
/* A retained revoked statement: verify under ch_pk, refuse an older epoch or a lower serial,
 * store it (file) and drop every session/path key that used a now-compromised id or a revoked
 * device (those peers are re-keyed on demand). *newer_epoch set when it announces an epoch above
 * the ring's (the duty then asks for a new ring). The same serial again (a retained statement
 * delivered at every connect): IG_ERR_EXISTS, nothing changed. Older epoch / lower serial:
 * IG_ERR_STATE; another cluster or parameters contradicting the ring's: IG_ERR_INVAL. */
int ig_kpa_accept_revoked(ig_kpa *k, const uint8_t *json, size_t len, const uint8_t ch_pk[32],
                          bool *newer_epoch, uint64_t now_ms, ig_error *err) IG_NODISCARD;
/* Wants a session with peer: direct hello when >= q usable shared ids, else a path request to the
 * first --kp-via candidate sharing >= q usable ids with both (others tried on timeout), else logs
 * why not and returns IG_ERR_NOTFOUND (retried later by the tick). No-op while one is pending/live. */
int ig_kpa_want(ig_kpa *k, const char *peer, uint64_t now_ms);
/* True when a live session with peer exists (the sender may use ig_kpa_send). */
bool ig_kpa_ready(const ig_kpa *k, const char *peer);
/* Seals pt (v2) under the newest live session with peer and publishes it on m2m/<peer>/<self>. */
int ig_kpa_send(ig_kpa *k, const char *peer, const uint8_t *pt, size_t len, uint64_t now_ms);
/* A message on iotguard/<cluster>/m2m/<self>/<from> whose first byte is 2, 3 or 4. Returns the
 * plaintext length for a v2 data message (pt filled), 0 for a handled control message, -1 dropped
 * (*why set: the m2m_keys.h ig_m2m_drop reasons plus the IG_KPA_DROP_* above). */
int ig_kpa_on_message(ig_kpa *k, const char *topic, const char *from, const uint8_t *msg, size_t len,
                      uint64_t now_ms, uint8_t *pt, size_t pt_cap, int *why);

/* What the last v2 message ig_kpa_on_message accepted came under, for the
 * duty's log line ("key ring session KEYID..., direct|via C"). */
typedef struct ig_kpa_rx_info {
	uint8_t key_id[16];
	uint64_t counter;
	bool path;                      /* false: direct (ring keys) */
	char via[IG_ID_MAX + 1];        /* the intermediary when path */
} ig_kpa_rx_info;
/* False when no v2 message was accepted yet. */
bool ig_kpa_last_rx(const ig_kpa *k, ig_kpa_rx_info *out);

/* Retries hellos (5 s, 3 times, then back off), path requests (next candidate after 5 s), expires
 * sessions (re-hello after 1 hour or 2^20 messages), forgets stale pending state. */
void ig_kpa_tick(ig_kpa *k, uint64_t now_ms);
/* `,"kp":{...}` for the status heartbeat: epoch, ring (m), sessions, peers [{"peer","key":"direct"|
 * "path","via"}], relayed, sent, received, drops {reason: n}. Returns the length written, or cap
 * (or more) when it does not fit (then nothing usable was written). */
size_t ig_kpa_status(const ig_kpa *k, char *out, size_t cap);

#endif
