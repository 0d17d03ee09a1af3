/*
 * crc32c.c: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
 *
 * Why this exists: every ledger frame ends with this checksum so recovery can
 * tell a torn write from a complete frame without hashing. The verifier and
 * the start-up replay run it over every record (10M records at a big start),
 * so there are two implementations of the same function:
 *   - the SSE4.2 CRC32 instruction, which computes exactly this polynomial,
 *     eight bytes per instruction, on x86-64 CPUs that have it;
 *   - slicing-by-8 (eight table lookups per eight input bytes) everywhere
 *     else; its tables are built once, under pthread_once, so concurrent
 *     first callers are safe.
 * The choice is made at run time (__builtin_cpu_supports), not at build
 * time, so one binary still runs on a CPU without SSE4.2. Both are public
 * so the unit test can hold each to the same vectors.
 */
#include "ig_crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define IG_CRC32C_X86 1
#include <nmmintrin.h>
#endif

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc_table[8][256];
static pthread_once_t crc_table_once = PTHREAD_ONCE_INIT;

static void crc_table_build(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		crc_table[0][n] = c;
	}
	/* Table k advances a byte through k further zero bytes, which lets eight
	 * input bytes be folded in with independent lookups. */
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = crc_table[0][n];
		for (int k = 1; k < 8; k++) {
			c = crc_table[0][c & 0xff] ^ (c >> 8);
			crc_table[k][n] = c;
		}
	}
}

uint32_t ig_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	pthread_once(&crc_table_once, crc_table_build);
	crc = ~crc;
	while (len >= 8) {
		/* Assembled bytewise so the code is endian- and alignment-neutral. */
		uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		                     (uint32_t)p[3] << 24);
		uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
		              (uint32_t)p[7] << 24;
		crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
		      crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
		      crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
		      crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

#ifdef IG_CRC32C_X86

/* Compiled for SSE4.2 whatever the build's -march; only called after the
 * CPU said it has the instruction. x86-64 is little-endian and allows
 * unaligned loads, so memcpy into a uint64_t is one plain load. */
__attribute__((target("sse4.2"))) static uint32_t crc_sse42(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c = ~crc;
	while (len >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = _mm_crc32_u64(c, v);
		p += 8;
		len -= 8;
	}
	uint32_t c32 = (uint32_t)c;
	if (len >= 4) {
		uint32_t v;
		memcpy(&v, p, 4);
		c32 = _mm_crc32_u32(c32, v);
		p += 4;
		len -= 4;
	}
	while (len--)
		c32 = _mm_crc32_u8(c32, *p++);
	return ~c32;
}

static bool have_sse42;
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

static void cpu_probe(void)
{
	__builtin_cpu_init();
	have_sse42 = __builtin_cpu_supports("sse4.2");
}

bool ig_crc32c_hw_available(void)
{
	pthread_once(&cpu_once, cpu_probe);
	return have_sse42;
}

uint32_t ig_crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
	if (!ig_crc32c_hw_available())
		return ig_crc32c_sw(crc, buf, len);
	return crc_sse42(crc, buf, len);
}

uint32_t ig_crc32c(uint32_t crc, const void *buf, size_t len)
{
	return ig_crc32c_hw(crc, buf, len);
}

#else /* no CRC instruction known to this file */

bool ig_crc32c_hw_available(void)
{
	return false;
}

uint32_t ig_crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
	return ig_crc32c_sw(crc, buf, len);
}

uint32_t ig_crc32c(uint32_t crc, const void *buf, size_t len)
{
	return ig_crc32c_sw(crc, buf, len);
}

#endif
