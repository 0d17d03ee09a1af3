/*
 * ig_crc32c.h: CRC-32C (Castagnoli), the ledger's framing checksum.
 *
 * Why this exists: a crash can leave a half-written record at the end of the
 * log. A cheap checksum over each frame tells a torn write from a complete
 * one; the BLAKE2b chain (not this) is what detects deliberate tampering.
 */
#ifndef IG_CRC32C_H
#define IG_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* crc32c("123456789") == 0xE3069283. Pass 0 to start; chain by passing the
 * previous result. Uses the CPU's CRC32 instruction (SSE4.2 on x86-64) when
 * it has one, else ig_crc32c_sw; both give the same value. */
uint32_t ig_crc32c(uint32_t crc, const void *buf, size_t len);

/* The two implementations behind ig_crc32c, public so each can be checked
 * against the same vectors on a CPU that has both:
 *   sw: portable slicing-by-8, any CPU;
 *   hw: the CRC32 instruction if ig_crc32c_hw_available(), otherwise it
 *       falls back to sw (so it is always safe to call). */
uint32_t ig_crc32c_sw(uint32_t crc, const void *buf, size_t len);
uint32_t ig_crc32c_hw(uint32_t crc, const void *buf, size_t len);
bool ig_crc32c_hw_available(void);

#endif
