/*
 * test_crc32c.c: CRC-32C against published vectors and a bitwise model.
 *
 * Why this exists: the frame checksum is part of the on-disk format; a table
 * or slicing bug would make every other implementation disagree with ours.
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
