/*
 * ig_entropy.h: a device's entropy, from raw samples to one contribution
 * block.
 *
 * Why this exists (seed 002): cheap devices see timing jitter, interrupt and
 * network counters and sensors the cluster head cannot. Their raw samples
 * are health-tested (ig_health.h), then debiased and conditioned here on
 * the device, sealed to the cluster head and mixed into its keyed pool
 * (ig_pool.h).
 */
#ifndef IG_ENTROPY_H
#define IG_ENTROPY_H

#include "ig_common.h"

/* ---- Von Neumann debiasing ---- */
/* Reads bits of in (LSB first within each byte), pairs them: 01 -> 0,
 * 10 -> 1, 00/11 -> nothing. Writes whole output bytes (LSB first) to out
 * and returns the number of output BITS produced (leftover bits that do
 * not fill a byte are dropped). */
size_t ig_entropy_debias(uint8_t *out, size_t out_cap, const uint8_t *in, size_t in_len);

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

#endif
