/*
 * duties.h: the duties a device agent can take on.
 *
 * Why this exists: main() picks duties from the command line; keeping their
 * declarations together shows at a glance what an agent can do. Each duty
 * lives in its own duty_<name>.c; the pure helpers declared next to a duty
 * are what the unit tests exercise without a broker.
 */
#ifndef IG_DUTIES_H
#define IG_DUTIES_H

#include <limits.h>

#include "agent.h"
#include "ig_custody.h"
#include "ig_custody_approve.h"
#include "ig_entropy.h"
#include "ig_health.h"
#include "ig_join.h"
#include "kp_agent.h"
#include "loghead.h"
#include "m2m_keys.h"

/* Exit status for problems only a human can fix (a refused join code). */
#define IG_EXIT_NEEDS_HUMAN 3

/* ---- ping: after each connect, asks the cluster head for a pong with a
 * fresh random nonce and logs the round trip when the matching pong arrives. */
typedef struct ig_ping_state {
	char nonce[33];       /* 16 random bytes, hex; "" when none outstanding */
	uint64_t sent_us;     /* monotonic time the ping went out */
	uint64_t pongs;       /* matching pongs seen, for tests and logs */
} ig_ping_state;
extern const ig_duty_ops ig_duty_ping;

/* ---- pin: the cluster head's public key, which entropy sealing and
 * session-key boxes depend on. Kept in FILE.ch next to the key file
 * ("<64 hex>\n", mode 0600); learnt from the join welcome or, trusted on
 * first use, from the retained iotguard/C/ledger/head (whose checkpoint must
 * verify under it). A head naming another key is refused and logged. */
typedef struct ig_pin_state {
	char path[PATH_MAX];
	bool known;
	uint8_t pk[IG_PK_BYTES];
	bool mismatch_logged;
	/* Set by the log duty when this cluster head's log was refused (a fork,
	 * a rollback, an enrolment it cannot prove): the key stays pinned, but
	 * no duty accepts new keys (session keys, coins, redeemed keys) boxed
	 * under it until an operator acts (docs/PROTOCOL.md, "Checking the log
	 * on the device"). */
	bool refused;
	char refused_path[PATH_MAX];
} ig_pin_state;
/* Sets path = key_path + ".ch" and loads it if present (known = false if absent). */
int ig_pin_init(ig_pin_state *p, const char *key_path, ig_error *err);
int ig_pin_read(const char *path, uint8_t pk[IG_PK_BYTES], ig_error *err);
/* Writes FILE.ch atomically (temporary file, fsync, rename) with mode 0600. */
int ig_pin_store(ig_pin_state *p, const uint8_t pk[IG_PK_BYTES], ig_error *err);
/* Checks a ledger/head payload and pins or compares its key. Returns IG_OK
 * if the head agrees with (or established) the pin. */
int ig_pin_from_head(ig_pin_state *p, const char *cluster, const uint8_t *payload, size_t len, ig_error *err);
extern const ig_duty_ops ig_duty_pin;
/* True if keys boxed by the pinned cluster head may be accepted: a key is
 * pinned and its log was not refused. */
bool ig_pin_trusted(const ig_pin_state *p);
/* Why not, for log lines: "no cluster-head key pinned (no FILE.ch, no
 * ledger head seen)" or "the cluster head's log was refused (see
 * FILE.head.refused)". */
const char *ig_pin_untrusted_why(const ig_pin_state *p, char *out, size_t cap);
/* The X25519 shared key with the pinned cluster head, which the boxes it
 * sends this device (session keys, key rings, coins, redeemed keys) are
 * opened with: derived once per pinned key, not once per box. */
typedef struct ig_ch_box {
	ig_box_key bk;                    /* secret */
	bool have;
	uint8_t for_pk[IG_PK_BYTES];      /* the pinned key bk was derived for */
} ig_ch_box;
/* False when the pin is not trusted, or when the key cannot be derived
 * (logged); else b->bk is the key for the current pin. */
bool ig_ch_box_ensure(ig_agent *a, ig_ch_box *b, const ig_pin_state *pin);
void ig_ch_box_wipe(ig_ch_box *b);

/* ---- log: checks the cluster head's ledger for this device. At every
 * connect it asks for the inclusion proof of its own enrolment; it keeps
 * the last checkpoint it accepted in FILE.head and accepts a newer one (a
 * ledger head, or a proof's checkpoint) only with a consistency proof from
 * it. The first checkpoint it keeps is one its enrolment was proven in
 * (so a format-1 ledger, which has no proofs, gives none). A fork, a
 * rollback or an enrolment the cluster head cannot prove is
 * written to FILE.head.refused, logged at error level, reported in the
 * status and sets pin->refused, until an operator deletes that file.
 * Optionally requires a quorum of witness cosignatures before it accepts a
 * head. State and helpers in loghead.h. */
typedef struct ig_log_state {
	ig_pin_state *pin;
	ig_loghead_trust trust;
	bool trust_ready;                  /* trust.ch_pk is the pinned key */
	char head_path[PATH_MAX];
	char refused_path[PATH_MAX];
	bool have;                         /* `accepted` holds FILE.head */
	/* Nothing kept yet, but `accepted` holds a checkpoint in which the
	 * enrolment was proven and which lacks the witnesses required: the base
	 * for proofs until a witnessed head is kept. */
	bool provisional;
	ig_loghead accepted;
	char reason[16];                   /* refused: fork, rollback, enrollment */
	char detail[IG_LOGHEAD_DETAIL_MAX];
	bool unavailable;                  /* the cluster head has no tiles (format-1 ledger) */
	bool enrollment_proven;            /* this session */
	uint64_t enrollment_index;
	char incl_nonce[20];               /* "" = no inclusion request in flight */
	uint64_t incl_due_us;              /* when to ask (again); 0 = not needed */
	unsigned incl_failures;
	/* The candidate checkpoint being proven against the accepted one. */
	bool cons_active;
	ig_loghead_relation cons_kind;     /* NEWER or OLDER */
	char cons_nonce[20];               /* "" = not in flight */
	uint64_t cons_due_us;              /* when to ask (again) */
	uint64_t cons_last_us;             /* last request: one per CONS_MIN_GAP at most */
	unsigned cons_failures;
	/* A newer tree proven consistent but short of cosignatures: its
	 * cosigned copy is accepted without another proof while the accepted
	 * size is still proven_from. */
	uint64_t proven_size, proven_from;
	uint8_t proven_root[IG_HASH_BYTES];
	ig_loghead cand;
	bool queued;                       /* a newer candidate waits for the one in flight */
	ig_loghead next;
	ig_loghead scratch;
	uint64_t accepted_count;           /* heads accepted by this run, for tests and logs */
} ig_log_state;
/* Sets the paths (key_path + ".head", ".head.refused"), reads a refusal and,
 * if a key is pinned, the accepted head. vkeys (n, may be 0) are witness
 * vkeys, of which quorum must cosign a head before it is accepted. A
 * damaged FILE.head, or one without FILE.ch, is an error that needs an
 * operator (err says which file to delete). */
int ig_log_init(ig_log_state *l, ig_pin_state *pin, const char *key_path, const char *cluster,
                const ig_cosig_vkey *vkeys, size_t nvkeys, size_t quorum, ig_error *err);
extern const ig_duty_ops ig_duty_log;

/* ---- join: turns a one-time join code into an enrolment. While joining,
 * the agent connects with a join token, asks {"type":"join"} and waits for
 * the welcome; then it stores the cluster head's key and comes back as a
 * normal enrolled device. Any refusal stops the agent with exit status 3. */
typedef struct ig_join_state {
	bool joining;
	char code[IG_JOIN_CODE_TEXT_LEN + 1];  /* canonical text; secret, wiped after the welcome */
	ig_pin_state *pin;
	bool sent_this_session;
	bool sent_before;          /* some session got as far as the join request */
	bool checking_enrolled;    /* join token refused after a request: try a normal token once */
	uint64_t sent_us;
	unsigned timeouts;
} ig_join_state;
/* If key_path does not exist, generates a key there (0600) and copies the
 * public key hex into pk_hex (else pk_hex = ""). */
int ig_join_prepare_key(const char *key_path, char pk_hex[2 * IG_PK_BYTES + 1], ig_error *err);
/* Validates and copies the code. */
int ig_join_init(ig_join_state *j, const char *code, ig_pin_state *pin, ig_error *err);
extern const ig_duty_ops ig_duty_join;

/* ---- entropy: health-tested, debiased, conditioned blocks sealed to the
 * cluster head every interval (+-25%). A tripped health test ends
 * contributions for good. */
#define IG_ENTROPY_SOURCES 3
typedef struct ig_entropy_state {
	unsigned interval_s;
	const ig_pin_state *pin;
	ig_health health[IG_ENTROPY_SOURCES];
	bool failed;
	char failure[160];
	uint64_t seq;              /* last seq sent; starts from the wall clock */
	uint64_t next_us;
	uint64_t sent, skipped;
	bool warned_no_key;
} ig_entropy_state;
typedef struct ig_entropy_counts {
	size_t raw[IG_ENTROPY_SOURCES];
	size_t debiased_bits;
	double credited_bits;      /* raw samples times their claimed min-entropy */
} ig_entropy_counts;
int ig_entropy_duty_init(ig_entropy_state *e, unsigned interval_s, const ig_pin_state *pin);
/* Health-tests each source's raw samples, debiases and conditions them into
 * block. IG_ERR_STATE when a health test trips (e->failed, e->failure set),
 * IG_ERR_RANGE when the samples credit under 256 bits. */
int ig_entropy_block_from(ig_entropy_state *e, const uint8_t *const raw[IG_ENTROPY_SOURCES],
                          const size_t n[IG_ENTROPY_SOURCES], uint8_t block[IG_ENTROPY_BLOCK_BYTES],
                          ig_entropy_counts *counts);
/* Samples the device's sources and calls ig_entropy_block_from. */
int ig_entropy_collect(ig_entropy_state *e, uint8_t block[IG_ENTROPY_BLOCK_BYTES], ig_entropy_counts *counts);
#define IG_ENTROPY_SEALED_BYTES (8 + IG_ENTROPY_BLOCK_BYTES + 48)   /* crypto_box_SEALBYTES = 48 */
/* crypto_box_seal(seq(8, BE) || block) to the X25519 form of ch_pk. */
int ig_entropy_seal(uint8_t out[IG_ENTROPY_SEALED_BYTES], uint64_t seq, const uint8_t block[IG_ENTROPY_BLOCK_BYTES],
                    const uint8_t ch_pk[IG_PK_BYTES]);
/* {"seq":n,"sealed":"<base64>"}; returns the length or IG_ERR_RANGE. */
int ig_entropy_payload(char *out, size_t cap, uint64_t seq, const uint8_t sealed[IG_ENTROPY_SEALED_BYTES]);
uint64_t ig_entropy_delay_us(unsigned interval_s);
uint64_t ig_entropy_next_seq(uint64_t last, uint64_t now_ms);
extern const ig_duty_ops ig_duty_entropy;

/* ---- attest: reports a signed measurement of this program and its
 * configuration at every connect and every 5 minutes. */
#define IG_ATTEST_PERIOD_S 300
#define IG_ATTEST_DOMAIN "iotguard-attest-v1"
typedef struct ig_attest_state {
	uint8_t measurement[IG_HASH_BYTES];
	char measurement_hex[2 * IG_HASH_BYTES + 1];
	uint64_t next_us;
	uint64_t sent;
} ig_attest_state;
/* "cluster=C\nid=ID\nentropy_interval=S\npeer=B\n" (peer empty if none). */
int ig_attest_config(char *out, size_t cap, const char *cluster, const char *id, unsigned entropy_interval_s,
                     const char *peer);
/* BLAKE2b-256(contents of exe_path || config). */
int ig_attest_measure(uint8_t out[IG_HASH_BYTES], const char *exe_path, const char *config, ig_error *err);
int ig_attest_init(ig_attest_state *s, const char *exe_path, const char *config, ig_error *err);
/* The signed bytes: "iotguard-attest-v1" 0x00 id 0x00 measurement ts(8 BE). */
size_t ig_attest_signed_bytes(uint8_t *out, size_t cap, const char *id, const uint8_t m[IG_HASH_BYTES], uint64_t ts_ms);
/* The whole request JSON, signed with sk. Returns its length or IG_ERR_*. */
int ig_attest_request(char *out, size_t cap, const uint8_t sk[IG_SK_BYTES], const char *id,
                      const uint8_t m[IG_HASH_BYTES], uint64_t ts_ms);
extern const ig_duty_ops ig_duty_attest;

/* ---- m2m: session keys with one peer and encrypted messages to it
 * (tables and checks in m2m_keys.h). Keys come from the cluster head;
 * when it refuses a request (any error naming it: sealed, not_allowed,
 * ...; not "revoked", which key rings must not route around) or sends no
 * key within kp_fallback_s of the first request, the duty falls back to a
 * key-ring session (kp duty) with the peer, and a later cluster-head key
 * takes over again. With offline_keys (or on a
 * plain broker) it never asks the cluster head. Messages whose first byte
 * is 2, 3 or 4 belong to the kp duty and are left to it. */
#define IG_M2M_KP_FALLBACK_S 10
typedef struct ig_m2m_state {
	char peer[IG_ID_MAX + 1];          /* "" = receive only */
	unsigned send_interval_s;
	const ig_pin_state *pin;
	ig_keytable keys;
	ig_nonce_set nonces;
	ig_ch_box box;                     /* secret: shared key with the cluster head */
	unsigned request_failures;
	uint64_t next_request_us;
	uint64_t connected_us;
	uint64_t next_send_us;
	uint64_t next_report_us;
	uint64_t messages;                 /* "n" of the next message */
	ig_m2m_counters counters;
	bool warned_no_pin;
	bool warned_refused;               /* this connection */
	/* The key-ring fallback. */
	ig_kpa *kp;                        /* the kp duty's; NULL: no key rings */
	bool offline_keys;                 /* never ask the cluster head */
	unsigned kp_fallback_s;            /* 0 = IG_M2M_KP_FALLBACK_S */
	uint64_t first_request_us;         /* first request still without a key; 0 = none */
	bool kp_fallback;                  /* using key-ring sessions with peer */
	bool revoked_refusal;              /* refused "revoked": no fallback until a key arrives */
	uint64_t next_want_us;             /* when to ask the kp side for a session again */
	uint64_t kp_sent;                  /* messages sent under key-ring sessions */
	bool warned_no_kp;
} ig_m2m_state;
int ig_m2m_init(ig_m2m_state *m, const char *peer, unsigned send_interval_s, const ig_pin_state *pin);
/* Connects the fallback: kp (may be NULL), --offline-keys, --kp-fallback-s. */
void ig_m2m_use_kp(ig_m2m_state *m, ig_kpa *kp, bool offline_keys, unsigned fallback_s);
extern const ig_duty_ops ig_duty_m2m;

/* ---- kp: this device's key ring (docs/PROTOCOL.md, "Key rings on the
 * device"; the logic is kp_agent.c). Asks the cluster head for a ring
 * ({"type":"key_ring","nonce":N}) once per connection when it holds none
 * or the retained revoked statement announced a newer epoch (not_enabled
 * stops asking for that connection), accepts boxed rings (asked or dealt
 * unasked) from the trusted pinned cluster head, follows the signed
 * iotguard/C/kp/revoked statement, answers hellos and path messages
 * (m2m versions 2, 3, 4) and reports "kp" in the status. On a plain broker
 * it asks nothing: the ring in KEY.ring must be there already. */
typedef struct ig_kp_state {
	ig_kpa *kpa;                              /* secret inside: the ring keys and sessions */
	const ig_pin_state *pin;
	char ring_path[PATH_MAX];
	char via[IG_KPA_VIA_MAX][IG_ID_MAX + 1];  /* --kp-via candidates */
	const char *via_ptr[IG_KPA_VIA_MAX];
	size_t n_via;
	ig_ch_box box;                            /* secret: shared key with the cluster head */
	char nonce[IG_M2M_NONCE_HEX + 1];         /* outstanding key_ring request; "" = none */
	bool asked;                               /* this connection */
	bool stop_asking;                         /* this connection: not_enabled, sealed, ... */
	bool want_newer;                          /* the revoked statement announced a newer epoch */
	unsigned failures;                        /* retriable refusals in a row */
	uint64_t next_ask_us;
	uint64_t connected_us;
	bool warned_no_pin, warned_no_ch;
	uint8_t *pending;                         /* a revoked statement that came before the pin */
	size_t pending_len;
	uint64_t rings, received;                 /* rings accepted, v2 messages received (this run) */
} ig_kp_state;
/* Sets ring_path = key_path + ".ring" and loads it (a damaged, foreign or
 * group-readable file is an error naming it; the agent must not start). */
int ig_kp_duty_init(ig_kp_state *k, ig_agent *a, const ig_pin_state *pin, const char *key_path,
                    const char *const *via, size_t n_via, ig_error *err);
extern const ig_duty_ops ig_duty_kp;

/* ---- custody: this device as a holder of a share of the cluster head's
 * custody secret (docs/PROTOCOL.md, "Custody: the holder"). It answers
 * custody_deal (checks the boxed share against the commitments, keeps it
 * in KEY.shares, encrypted under a key derived from the identity key, and
 * only then acknowledges), custody_active (wipes every other epoch's
 * share) and custody_request (releases its share, boxed to the requester;
 * for an epoch dealt in admin unseal mode only against an approval by an
 * admin of the list the cluster-head key signed into the deal, kept in
 * KEY.custody-admins). Shares come only from the trusted pinned cluster
 * head and are never logged. It also reports the device's power in the
 * status. */
#define IG_CUSTODY_POWER_DIR "/sys/class/power_supply"
typedef struct ig_battery {
	bool known;              /* false: say nothing about power */
	bool has_percent;
	unsigned percent;        /* 0..100 */
	bool mains;
} ig_battery;
/* An epoch's admin list as the cluster head signed it at deal time (admin
 * unseal mode): its share is released only against an approval by one of
 * these admins. Public; kept in KEY.custody-admins. */
typedef struct ig_custody_admin_list {
	uint64_t epoch;
	size_t count;
	uint8_t pks[IG_CUSTODY_ADMINS_MAX][32];
	uint8_t sig[IG_CUSTODY_SIG_BYTES];
} ig_custody_admin_list;

typedef struct ig_custody_state {
	const ig_pin_state *pin;
	char path[PATH_MAX];                          /* KEY.shares */
	char admins_path[PATH_MAX];                   /* KEY.custody-admins */
	ig_custody_admin_list admins[IG_CUSTODY_HELD_MAX]; /* of the held epochs dealt in admin mode */
	size_t n_admins;
	ig_custody_admin_list cand_admins;            /* the deal being checked's, when it has one */
	bool cand_has_admins;
	char battery_file[PATH_MAX];                  /* --battery-file; "" = the power_dir */
	char power_dir[PATH_MAX];                     /* IG_CUSTODY_POWER_DIR (tests point it elsewhere) */
	ig_custody_held held[IG_CUSTODY_HELD_MAX];    /* secret: the shares held, as in KEY.shares */
	size_t count;
	ig_custody_held next[IG_CUSTODY_HELD_MAX];    /* secret: the next contents while they are written */
	ig_custody_held cand;                         /* secret: the share of a deal being checked */
	bool dirty;                                   /* held is ahead of KEY.shares (a write failed) */
	uint64_t retry_us;                            /* when to write it again */
	uint64_t dealt, refused, released;            /* this run, for logs and tests */
	int battery_problem;                          /* the last --battery-file problem logged (0: none) */
} ig_custody_state;
/* Sets the paths (key_path + ".shares"; battery_file may be NULL) and reads
 * KEY.shares, decrypting it with the agent's key. A missing file holds no
 * share; a damaged one (or one readable by others) is an error naming the
 * file and what to do, and the agent must not start. */
int ig_custody_duty_init(ig_custody_state *c, ig_agent *a, const ig_pin_state *pin, const char *key_path,
                         const char *battery_file, ig_error *err);
/* Handles one inbox message of type custody_deal, custody_active or
 * custody_request, as the duty does, and writes the request to send back
 * (custody_ack, custody_share) into reply. Returns its length, 0 when
 * there is nothing to send (also for types it does not handle), or
 * IG_ERR_RANGE if cap is too small. A deal is acknowledged only once
 * KEY.shares holds it. */
int ig_custody_handle(ig_custody_state *c, ig_agent *a, const char *type, const struct cJSON *msg, char *reply,
                      size_t cap);
/* --battery-file contents: "mains" or a whole percentage 0..100 (leading
 * and trailing white space allowed). IG_ERR_INVAL otherwise (b unknown). */
int ig_battery_parse(ig_battery *b, const char *text, size_t len);
/* The device's power now: from battery_file if set (unknown when missing or
 * malformed), else from power_dir: a "Mains" supply with online 1 is mains;
 * a "Battery" supply's capacity is the percentage (the lowest of several).
 * Neither (an unplugged supply and no battery) is unknown: a device that
 * runs on something it cannot see must not look like an empty battery. */
int ig_battery_read(ig_battery *b, const char *battery_file, const char *power_dir);
/* The status members: `,"battery":{...}` when known, `,"custody":{...}`
 * when a share of the pinned cluster head is held. Returns the length. */
size_t ig_custody_status(const ig_custody_state *c, const ig_battery *b, char *out, size_t cap);
extern const ig_duty_ops ig_duty_custody;

#endif
