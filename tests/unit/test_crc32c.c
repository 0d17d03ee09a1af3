/*
 * test_crc32c.c: CRC-32C against published vectors and a bitwise model.
 *
 * Why this exists: the frame checksum is part of the on-disk format; a table
 * or slicing bug would make every other implementation disagree with ours.
 * ig_crc32c picks the CPU's CRC instruction or the portable code at run
 * time, so both implementations (ig_crc32c_sw, ig_crc32c_hw) are held to
 * the same vectors here, as well as the dispatching entry point.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "ig_crc32c.h"
#include "testutil.h"

/* The definition, one bit at a time: slow but obviously right. */
static uint32_t crc_bitwise(const uint8_t *p, size_t len)
{
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < len; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
	}
	return ~c;
}

Test(crc32c, check_value)
{
	cr_assert_eq(ig_crc32c(0, "123456789", 9), 0xE3069283u);
}

Test(crc32c, empty_is_zero)
{
	cr_assert_eq(ig_crc32c(0, "", 0), 0u);
	cr_assert_eq(ig_crc32c(0x12345678u, NULL, 0), 0x12345678u);
}

Test(crc32c, rfc3720_vectors)
{
	uint8_t buf[32];

	memset(buf, 0, sizeof buf);
	cr_assert_eq(ig_crc32c(0, buf, 32), 0x8A9136AAu);
	memset(buf, 0xff, sizeof buf);
	cr_assert_eq(ig_crc32c(0, buf, 32), 0x62A8AB43u);
	tu_seq_bytes(buf, 32, 0);
	cr_assert_eq(ig_crc32c(0, buf, 32), 0x46DD794Eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	cr_assert_eq(ig_crc32c(0, buf, 32), 0x113FDB5Cu);
}

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

static const struct {
	const char *name;
	crc_fn fn;
} impls[] = {
	{"ig_crc32c", ig_crc32c},
	{"ig_crc32c_sw", ig_crc32c_sw},
	{"ig_crc32c_hw", ig_crc32c_hw},
};
#define NIMPLS (sizeof impls / sizeof impls[0])

Test(crc32c, every_implementation_meets_the_vectors)
{
	uint8_t buf[32];
	for (size_t k = 0; k < NIMPLS; k++) {
		crc_fn f = impls[k].fn;
		const char *n = impls[k].name;
		cr_assert_eq(f(0, "123456789", 9), 0xE3069283u, "%s check value", n);
		cr_assert_eq(f(0, "", 0), 0u, "%s empty", n);
		cr_assert_eq(f(0x12345678u, NULL, 0), 0x12345678u, "%s empty chained", n);
		/* RFC 3720 B.4 (iSCSI) */
		memset(buf, 0, sizeof buf);
		cr_assert_eq(f(0, buf, 32), 0x8A9136AAu, "%s 32 zeros", n);
		memset(buf, 0xff, sizeof buf);
		cr_assert_eq(f(0, buf, 32), 0x62A8AB43u, "%s 32 x 0xff", n);
		tu_seq_bytes(buf, 32, 0);
		cr_assert_eq(f(0, buf, 32), 0x46DD794Eu, "%s 0..31", n);
		for (int i = 0; i < 32; i++)
			buf[i] = (uint8_t)(31 - i);
		cr_assert_eq(f(0, buf, 32), 0x113FDB5Cu, "%s 31..0", n);
	}
}

/* Random buffers at every alignment 0..15 and every length 0..300 (the
 * 8-byte loop, the 4-byte step and the byte tail of the instruction path,
 * and the slicing loop's tail), and chained at every cut of one of them:
 * each implementation must agree with the one-bit-at-a-time definition. */
Test(crc32c, implementations_agree_on_random_buffers)
{
	enum { MAXLEN = 300, ALIGNS = 16 };
	static uint8_t buf[MAXLEN + ALIGNS];
	srand(20261204);
	for (int round = 0; round < 4; round++) {
		for (size_t i = 0; i < sizeof buf; i++)
			buf[i] = (uint8_t)rand();
		for (size_t off = 0; off < ALIGNS; off++)
			for (size_t len = 0; len <= MAXLEN; len++) {
				uint32_t want = crc_bitwise(buf + off, len);
				for (size_t k = 0; k < NIMPLS; k++)
					cr_assert_eq(impls[k].fn(0, buf + off, len), want, "%s round %d off %zu len %zu",
					             impls[k].name, round, off, len);
			}
		uint32_t whole = crc_bitwise(buf + round, MAXLEN);
		for (size_t cut = 0; cut <= MAXLEN; cut++)
			for (size_t k = 0; k < NIMPLS; k++) {
				uint32_t c = impls[k].fn(0, buf + round, cut);
				cr_assert_eq(impls[k].fn(c, buf + round + cut, MAXLEN - cut), whole, "%s chained at %zu",
				             impls[k].name, cut);
			}
	}
}

/* Where the CPU has the instruction, ig_crc32c must be using it: on x86-64
 * every CPU this project targets has SSE4.2, so a missing probe (falling
 * back to the tables everywhere) is a failure there. */
Test(crc32c, instruction_path_is_chosen_where_available)
{
#if defined(__x86_64__)
	__builtin_cpu_init();
	cr_assert_eq(ig_crc32c_hw_available(), (bool)__builtin_cpu_supports("sse4.2"));
#else
	cr_assert(!ig_crc32c_hw_available());
#endif
}

Test(crc32c, matches_bitwise_at_every_length_and_offset)
{
	uint8_t buf[300];
	srand(12345);
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (uint8_t)rand();
	/* Every length 0..64 from every alignment 0..7 exercises the 8-byte
	 * loop, the tail loop and unaligned starts. */
	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; len <= 64; len++)
			cr_assert_eq(ig_crc32c(0, buf + off, len), crc_bitwise(buf + off, len),
			             "off %zu len %zu", off, len);
	cr_assert_eq(ig_crc32c(0, buf, sizeof buf), crc_bitwise(buf, sizeof buf));
}

Test(crc32c, chaining_equals_one_shot)
{
	uint8_t buf[200];
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	uint32_t whole = ig_crc32c(0, buf, sizeof buf);
	for (size_t cut = 0; cut <= sizeof buf; cut++) {
		uint32_t c = ig_crc32c(0, buf, cut);
		c = ig_crc32c(c, buf + cut, sizeof buf - cut);
		cr_assert_eq(c, whole, "cut at %zu", cut);
	}
}

Test(crc32c, detects_every_single_bit_flip)
{
	uint8_t buf[64];
	tu_seq_bytes(buf, sizeof buf, 0);
	uint32_t good = ig_crc32c(0, buf, sizeof buf);
	for (size_t i = 0; i < sizeof buf; i++)
		for (int b = 0; b < 8; b++) {
			buf[i] ^= (uint8_t)(1u << b);
			cr_assert_neq(ig_crc32c(0, buf, sizeof buf), good);
			buf[i] ^= (uint8_t)(1u << b);
		}
}
