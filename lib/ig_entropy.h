/*
 * ig_entropy.h: device entropy, from raw samples to the cluster head's pool.
 *
 * Why this exists (seed 002): cheap devices see timing jitter, interrupt and
 * network counters and sensors the cluster head cannot. Their samples are
 * health-tested (NIST SP 800-90B continuous tests), debiased and
 * conditioned on the device, sealed to the cluster head, and mixed into a
 * keyed pool there. Device entropy is never trusted alone: every key the
 * cluster head derives also takes fresh OS randomness (ig_pool_derive).
 *
 * Health-test cutoffs, alpha = 2^-20, H = claimed min-entropy per sample:
 *   RCT: C = 1 + ceil(20 / H)
 *   APT: window W = 512 (1024 for binary samples),
 *        C = 1 + CRITBINOM(W, 2^-H, 1 - alpha), computed, not tabled
 *        (W = 512: 311 at H = 1, 177 at H = 2, 62 at H = 4, 13 at H = 8).
 */
#ifndef IG_ENTROPY_H
#define IG_ENTROPY_H

#include "ig_common.h"

/* ---- continuous health tests (on raw 8-bit samples) ---- */

typedef struct ig_health {
	double h;                 /* claimed min-entropy per sample, bits (0 < h <= 8) */
	uint32_t rct_cutoff;
	uint32_t apt_window;
	uint32_t apt_cutoff;
	/* state */
	uint8_t rct_last;
	uint32_t rct_run;
	uint8_t apt_first;
	uint32_t apt_count, apt_seen;
	bool have_first;
	bool failed;              /* sticky once a test trips */
	char failure[96];         /* "repetition count test: 41 identical samples (cutoff 21)" */
	uint64_t samples;
} ig_health;

/* binary = samples are single bits (APT window 1024). */
int ig_health_init(ig_health *t, double h, bool binary);
/* Feeds one raw sample; returns false (and sets failed) when a test trips. */
bool ig_health_feed(ig_health *t, uint8_t sample);
uint32_t ig_health_rct_cutoff(double h);
uint32_t ig_health_apt_cutoff(uint32_t window, double h);

/* ---- Von Neumann debiasing ---- */
/* Reads bits of in (LSB first within each byte), pairs them: 01 -> 0,
 * 10 -> 1, 00/11 -> nothing. Writes whole output bytes (LSB first) to out
 * and returns the number of output BITS produced (leftover bits that do
 * not fill a byte are dropped). */
size_t ig_vn_debias(uint8_t *out, size_t out_cap, const uint8_t *in, size_t in_len);

/* ---- conditioning ---- */
/* BLAKE2b-256 over debiased bytes -> one 32-byte contribution block. */
#define IG_ENTROPY_BLOCK_BYTES 32
void ig_entropy_condition(uint8_t block[IG_ENTROPY_BLOCK_BYTES], const uint8_t *in, size_t len);

/* ---- raw sources on a Linux device ---- */
typedef enum ig_entropy_source {
	IG_SRC_JITTER = 1,     /* CPU timing jitter around memory work */
	IG_SRC_INTERRUPTS,     /* /proc/interrupts and /proc/net/dev counters */
	IG_SRC_SENSORS,        /* /sys/class/hwmon, /sys/class/thermal where present */
} ig_entropy_source;

/* Collects up to cap raw samples from one source (each sample = the low
 * byte of a delta); returns how many, 0 if the source is absent. */
size_t ig_entropy_sample(ig_entropy_source src, uint8_t *out, size_t cap);

/* ---- cluster-head pool ---- */
typedef struct ig_pool {
	uint8_t key[32];          /* cluster-head secret, from ch.key via HKDF */
	uint8_t state[64];
	uint64_t inputs;
} ig_pool;

void ig_pool_init(ig_pool *p, const uint8_t key[32]);
/* state = BLAKE2b-512(key = pool key, state || u8 id_len || id || u64 seq ||
 * u32 len || block). */
void ig_pool_mix(ig_pool *p, const char *id, uint64_t seq, const uint8_t *block, size_t len);
/* out = HKDF-SHA256(salt = 32 bytes of fresh OS randomness, ikm = state,
 * info = purpose || 0x00 || key_id). Also ratchets state forward so an
 * output never reveals the state. */
int ig_pool_derive(ig_pool *p, uint8_t *out, size_t out_len, const char *purpose, const uint8_t *key_id,
                   size_t key_id_len);
void ig_pool_wipe(ig_pool *p);

/* ---- attestation reports (cluster head) ----
 * Each signed report whose measurement (or verdict) changed costs a ledger
 * record, so a device that keeps sending new measurements could fill the
 * ledger. A report that changes nothing costs nothing; a change is recorded
 * at most max_per_hour times per device per window of one hour (the window
 * opens at the first recorded change after the previous one ran out), and
 * only one at a time (while a record is being written, the next change
 * waits). Beyond that the report is refused as over_rate and nothing
 * changes: the device keeps the measurement last recorded. */
#define IG_ATTEST_WINDOW_MS 3600000u
typedef struct ig_attest_rate {
	uint64_t window_start_ms;    /* 0 = no window open */
	uint32_t recorded;           /* records in the open window */
} ig_attest_rate;

typedef enum ig_attest_decision {
	IG_ATTEST_UNCHANGED = 0,     /* nothing to record; accepted */
	IG_ATTEST_RECORD,            /* accepted: write one attest record (counted) */
	IG_ATTEST_REFUSED_RATE,      /* refused: over_rate, nothing changes */
} ig_attest_decision;

/* changed: the report's measurement or verdict differs from the last one
 * accepted; in_flight: this device's previous attest record is still being
 * written. Updates r only when it returns IG_ATTEST_RECORD. */
ig_attest_decision ig_attest_admit(ig_attest_rate *r, bool changed, bool in_flight, uint64_t now_ms,
                                   uint32_t max_per_hour);

#endif
