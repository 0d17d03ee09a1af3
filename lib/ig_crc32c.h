/*
 * ig_crc32c.h: CRC-32C (Castagnoli), the ledger's framing checksum.
 *
 * Why this exists: a crash can leave a half-written record at the end of the
 * log. A cheap checksum over each frame tells a torn write from a complete
 * one; the BLAKE2b chain (not this) is what detects deliberate tampering.
 */
#ifndef IG_CRC32C_H
#define IG_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* crc32c("123456789") == 0xE3069283. Pass 0 to start; chain by passing the
 * previous result. */
uint32_t ig_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
