/*
 * ig_health.h: the continuous health tests on a device's raw entropy
 * samples (NIST SP 800-90B 4.4).
 *
 * Why this exists: a broken source (a stuck sensor, a jitter loop the
 * compiler optimised away) must be noticed on the device before it
 * contributes anything to the cluster head's pool (ig_pool.h). The tests
 * run on raw 8-bit samples, before debiasing and conditioning
 * (ig_entropy.h).
 *
 * Cutoffs, alpha = 2^-20, H = claimed min-entropy per sample:
 *   RCT: C = 1 + ceil(20 / H)
 *   APT: window W = 512 (1024 for binary samples),
 *        C = 1 + CRITBINOM(W, 2^-H, 1 - alpha), computed, not tabled
 *        (W = 512: 311 at H = 1, 177 at H = 2, 62 at H = 4, 13 at H = 8).
 */
#ifndef IG_HEALTH_H
#define IG_HEALTH_H

#include "ig_common.h"

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

#endif
