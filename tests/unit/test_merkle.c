/*
 * test_merkle.c: the compact-range accumulator against the RFC 6962 definition.
 *
 * Why this exists: the checkpoint root must be exactly RFC 6962's MTH with
 * BLAKE2b-256, or third-party verifiers will disagree with us. Small trees
 * are checked against hashes written out by hand; larger ones against the
 * recursive reference.
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <string.h>

#include "ig_merkle.h"

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
}

static void H(uint8_t out[32], const uint8_t *in, size_t len)
{
	crypto_generichash(out, 32, in, len, NULL, 0);
}

static void leaf(uint8_t out[32], uint32_t i)
{
	/* Leaf hash of a made-up entry: H(0x00 || be32(i)). */
	uint8_t in[5] = {0x00, (uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
	H(out, in, sizeof in);
}

/* Written out independently of ig_merkle_node. */
static void node(uint8_t out[32], const uint8_t l[32], const uint8_t r[32])
{
	uint8_t in[65];
	in[0] = 0x01;
	memcpy(in + 1, l, 32);
	memcpy(in + 33, r, 32);
	H(out, in, sizeof in);
}

Test(merkle, empty_tree_is_hash_of_nothing, .init = setup)
{
	uint8_t expect[32], got[32];
	H(expect, NULL, 0);
	ig_merkle_acc acc;
	ig_merkle_init(&acc);
	ig_merkle_root(&acc, got);
	cr_assert_arr_eq(got, expect, 32);
	memset(got, 0, 32);
	ig_merkle_root_of(NULL, 0, got);
	cr_assert_arr_eq(got, expect, 32);
	char hex[65];
	ig_hex_encode(hex, got, 32);
	cr_assert_str_eq(hex, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
}

Test(merkle, node_hash_definition, .init = setup)
{
	uint8_t a[32], b[32], want[32], got[32];
	leaf(a, 1);
	leaf(b, 2);
	node(want, a, b);
	ig_merkle_node(got, a, b);
	cr_assert_arr_eq(got, want, 32);
	/* Order matters. */
	ig_merkle_node(got, b, a);
	cr_assert_arr_neq(got, want, 32);
	/* Output may alias an input. */
	memcpy(got, a, 32);
	ig_merkle_node(got, got, b);
	cr_assert_arr_eq(got, want, 32);
}

Test(merkle, hand_built_small_trees, .init = setup)
{
	uint8_t l[3][32], want[32], got[32], ab[32];
	for (uint32_t i = 0; i < 3; i++)
		leaf(l[i], i);
	ig_merkle_acc acc;
	ig_merkle_init(&acc);

	/* n = 1: the root is the leaf hash itself. */
	ig_merkle_push(&acc, l[0]);
	ig_merkle_root(&acc, got);
	cr_assert_arr_eq(got, l[0], 32);
	ig_merkle_root_of(l, 1, got);
	cr_assert_arr_eq(got, l[0], 32);

	/* n = 2: H(1 || l0 || l1). */
	ig_merkle_push(&acc, l[1]);
	node(ab, l[0], l[1]);
	ig_merkle_root(&acc, got);
	cr_assert_arr_eq(got, ab, 32);
	ig_merkle_root_of(l, 2, got);
	cr_assert_arr_eq(got, ab, 32);

	/* n = 3: split at 2, so H(1 || H(1||l0||l1) || l2), not l0 with (l1,l2). */
	ig_merkle_push(&acc, l[2]);
	node(want, ab, l[2]);
	ig_merkle_root(&acc, got);
	cr_assert_arr_eq(got, want, 32);
	ig_merkle_root_of(l, 3, got);
	cr_assert_arr_eq(got, want, 32);
	uint8_t bc[32], wrong[32];
	node(bc, l[1], l[2]);
	node(wrong, l[0], bc);
	cr_assert_arr_neq(got, wrong, 32);
	cr_assert_eq(acc.size, 3u);
}

Test(merkle, hand_built_five_and_seven, .init = setup)
{
	uint8_t l[7][32];
	for (uint32_t i = 0; i < 7; i++)
		leaf(l[i], i);
	uint8_t n01[32], n23[32], n45[32], n0123[32], n456[32], want[32], got[32];
	node(n01, l[0], l[1]);
	node(n23, l[2], l[3]);
	node(n45, l[4], l[5]);
	node(n0123, n01, n23);

	node(want, n0123, l[4]);
	ig_merkle_root_of(l, 5, got);
	cr_assert_arr_eq(got, want, 32);

	node(n456, n45, l[6]);
	node(want, n0123, n456);
	ig_merkle_acc acc;
	ig_merkle_init(&acc);
	for (int i = 0; i < 7; i++)
		ig_merkle_push(&acc, l[i]);
	ig_merkle_root(&acc, got);
	cr_assert_arr_eq(got, want, 32);
	cr_assert_eq(acc.depth, 3); /* 7 = 4 + 2 + 1 */
}

Test(merkle, incremental_equals_recursive_0_to_300, .init = setup)
{
	static uint8_t leaves[301][32];
	for (uint32_t i = 0; i <= 300; i++)
		leaf(leaves[i], i);
	ig_merkle_acc acc;
	ig_merkle_init(&acc);
	uint8_t a[32], b[32], prev[32];
	memset(prev, 0, 32);
	for (uint64_t n = 0; n <= 300; n++) {
		ig_merkle_root(&acc, a);
		ig_merkle_root_of(leaves, n, b);
		cr_assert_arr_eq(a, b, 32, "n = %llu", (unsigned long long)n);
		cr_assert_arr_neq(a, prev, 32, "root did not change at n = %llu", (unsigned long long)n);
		cr_assert_eq(acc.size, n);
		cr_assert_eq(acc.depth, __builtin_popcountll(n));
		memcpy(prev, a, 32);
		/* Taking a root must not disturb the accumulator. */
		ig_merkle_root(&acc, b);
		cr_assert_arr_eq(a, b, 32);
		if (n < 300)
			ig_merkle_push(&acc, leaves[n]);
	}
}

Test(merkle, root_depends_on_every_leaf_and_order, .init = setup)
{
	uint8_t l[13][32], base[32], got[32];
	for (uint32_t i = 0; i < 13; i++)
		leaf(l[i], i);
	ig_merkle_root_of(l, 13, base);
	for (int i = 0; i < 13; i++) {
		l[i][5] ^= 1;
		ig_merkle_root_of(l, 13, got);
		cr_assert_arr_neq(got, base, 32, "leaf %d", i);
		l[i][5] ^= 1;
	}
	uint8_t tmp[32];
	memcpy(tmp, l[11], 32);
	memcpy(l[11], l[12], 32);
	memcpy(l[12], tmp, 32);
	ig_merkle_root_of(l, 13, got);
	cr_assert_arr_neq(got, base, 32);
}

Test(merkle, pinned_three_record_root, .init = setup)
{
	/* The record hashes of the docs/LEDGER.md genesis, enroll and revoke
	 * vectors, and the root the doc's checkpoint signs. */
	const char *hex[3] = {
		"e44cbb0b28b71766c42876512933bc82d687259597f4bc32400ed8552298adf8",
		"1f164dffd39f541c6e9720ea830ec1e16d15d48db7bcc55956f395b0b322e7a4",
		"2ca6674db2b56f69cfad8bcc8d37d3df48c9431f90e172bc0185f0169bcb4d70",
	};
	uint8_t l[3][32], root[32];
	for (int i = 0; i < 3; i++)
		cr_assert_eq(ig_hex_decode(l[i], 32, hex[i], 64), IG_OK);
	ig_merkle_acc acc;
	ig_merkle_init(&acc);
	for (int i = 0; i < 3; i++)
		ig_merkle_push(&acc, l[i]);
	ig_merkle_root(&acc, root);
	char out[65];
	ig_hex_encode(out, root, 32);
	cr_assert_str_eq(out, "84706b1b7a1fbbf31865f7949f0b440d814e99bc77c200c9aa4e850f10ab7fcd");
	ig_merkle_root_of(l, 3, root);
	ig_hex_encode(out, root, 32);
	cr_assert_str_eq(out, "84706b1b7a1fbbf31865f7949f0b440d814e99bc77c200c9aa4e850f10ab7fcd");
}

/* Ledger format 2 hashes the tree with SHA-256, as RFC 6962 and C2SP do.
 * These roots are the published RFC 6962 reference vectors (the eight
 * inputs of certificate-transparency's merkle_tree_test), so they were not
 * computed by this code. */
Test(merkle, sha256_matches_the_rfc6962_reference_vectors, .init = setup)
{
	static const char *inputs[8] = {"", "00", "10", "2021", "3031", "40414243", "5051525354555657",
	                                "606162636465666768696a6b6c6d6e6f"};
	static const char *roots[8] = {
		"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
		"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
		"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
		"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
		"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
	};
	uint8_t leaves[8][32];
	ig_merkle_acc acc;
	ig_merkle_init_hash(&acc, IG_MERKLE_SHA256);
	for (int i = 0; i < 8; i++) {
		uint8_t entry[16];
		size_t n = strlen(inputs[i]) / 2;
		cr_assert_eq(ig_hex_decode(entry, n, inputs[i], strlen(inputs[i])), IG_OK);
		ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaves[i], entry, n);
		ig_merkle_push(&acc, leaves[i]);
		uint8_t got[32], ref[32];
		char hex[65];
		ig_merkle_root(&acc, got);
		ig_hex_encode(hex, got, 32);
		cr_assert_str_eq(hex, roots[i], "root of %d leaves", i + 1);
		ig_merkle_root_of_hash(IG_MERKLE_SHA256, (const uint8_t(*)[32])leaves, (uint64_t)i + 1, ref);
		cr_assert_arr_eq(ref, got, 32);
	}
	uint8_t empty[32];
	char hex[65];
	ig_merkle_hash_empty(IG_MERKLE_SHA256, empty);
	ig_hex_encode(hex, empty, 32);
	cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}
