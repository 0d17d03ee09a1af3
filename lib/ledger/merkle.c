/*
 * merkle.c: RFC 6962 Merkle tree hash with BLAKE2b-256 or SHA-256.
 *
 * Why this exists: the signed checkpoint commits to every record through one
 * root. The writer and the verifier fold millions of leaves, so the
 * accumulator keeps only the compact range (one perfect-subtree root per set
 * bit of the size) and hashes one node per push on average. The recursive
 * ig_merkle_root_of is the textbook definition, kept as the reference the
 * tests compare the accumulator against.
 */
#include "ig_merkle.h"

#include <sodium.h>
#include <string.h>

void ig_merkle_hash_node(ig_merkle_hash h, uint8_t out[IG_HASH_BYTES], const uint8_t l[IG_HASH_BYTES],
                         const uint8_t r[IG_HASH_BYTES])
{
	uint8_t buf[1 + 2 * IG_HASH_BYTES];

	(void)ig_init();
	buf[0] = 0x01;
	memcpy(buf + 1, l, IG_HASH_BYTES);
	memcpy(buf + 1 + IG_HASH_BYTES, r, IG_HASH_BYTES);
	if (h == IG_MERKLE_SHA256)
		crypto_hash_sha256(out, buf, sizeof buf);
	else
		crypto_generichash(out, IG_HASH_BYTES, buf, sizeof buf, NULL, 0);
}

void ig_merkle_node(uint8_t out[IG_HASH_BYTES], const uint8_t l[IG_HASH_BYTES], const uint8_t r[IG_HASH_BYTES])
{
	ig_merkle_hash_node(IG_MERKLE_BLAKE2B, out, l, r);
}

void ig_merkle_hash_leaf(ig_merkle_hash h, uint8_t out[IG_HASH_BYTES], const uint8_t *entry, size_t len)
{
	static const uint8_t zero = 0x00;

	(void)ig_init();
	if (h == IG_MERKLE_SHA256) {
		crypto_hash_sha256_state st;
		crypto_hash_sha256_init(&st);
		crypto_hash_sha256_update(&st, &zero, 1);
		crypto_hash_sha256_update(&st, entry, len);
		crypto_hash_sha256_final(&st, out);
	} else {
		crypto_generichash_state st;
		crypto_generichash_init(&st, NULL, 0, IG_HASH_BYTES);
		crypto_generichash_update(&st, &zero, 1);
		crypto_generichash_update(&st, entry, len);
		crypto_generichash_final(&st, out, IG_HASH_BYTES);
	}
}

void ig_merkle_hash_empty(ig_merkle_hash h, uint8_t out[IG_HASH_BYTES])
{
	(void)ig_init();
	if (h == IG_MERKLE_SHA256)
		crypto_hash_sha256(out, NULL, 0);
	else
		crypto_generichash(out, IG_HASH_BYTES, NULL, 0, NULL, 0);
}

void ig_merkle_init_hash(ig_merkle_acc *acc, ig_merkle_hash h)
{
	acc->hash = h;
	acc->size = 0;
	acc->depth = 0;
}

void ig_merkle_init(ig_merkle_acc *acc)
{
	ig_merkle_init_hash(acc, IG_MERKLE_BLAKE2B);
}

void ig_merkle_push(ig_merkle_acc *acc, const uint8_t leaf[IG_HASH_BYTES])
{
	/* The stack holds one perfect subtree per set bit of size, largest first.
	 * Adding a leaf is binary increment: each trailing 1 bit of the old size
	 * is a carry that merges the two smallest subtrees. */
	memcpy(acc->stack[acc->depth], leaf, IG_HASH_BYTES);
	acc->depth++;
	for (uint64_t n = acc->size; n & 1; n >>= 1) {
		acc->depth--;
		ig_merkle_hash_node(acc->hash, acc->stack[acc->depth - 1], acc->stack[acc->depth - 1], acc->stack[acc->depth]);
	}
	acc->size++;
}

void ig_merkle_push_subtree(ig_merkle_acc *acc, const uint8_t root[IG_HASH_BYTES], unsigned height)
{
	/* The same binary increment, of size >> height: the subtree is one
	 * "leaf" at that level. */
	memcpy(acc->stack[acc->depth], root, IG_HASH_BYTES);
	acc->depth++;
	for (uint64_t n = acc->size >> height; n & 1; n >>= 1) {
		acc->depth--;
		ig_merkle_hash_node(acc->hash, acc->stack[acc->depth - 1], acc->stack[acc->depth - 1], acc->stack[acc->depth]);
	}
	acc->size += (uint64_t)1 << height;
}

void ig_merkle_root(const ig_merkle_acc *acc, uint8_t root[IG_HASH_BYTES])
{
	if (acc->size == 0) {
		ig_merkle_hash_empty(acc->hash, root);
		return;
	}
	/* RFC 6962 splits at the largest power of two below n, so the left side
	 * is always the largest remaining perfect subtree: fold right to left. */
	uint8_t r[IG_HASH_BYTES];
	memcpy(r, acc->stack[acc->depth - 1], IG_HASH_BYTES);
	for (int i = acc->depth - 2; i >= 0; i--)
		ig_merkle_hash_node(acc->hash, r, acc->stack[i], r);
	memcpy(root, r, IG_HASH_BYTES);
}

static void root_of(ig_merkle_hash h, const uint8_t (*leaves)[IG_HASH_BYTES], uint64_t n, uint8_t root[IG_HASH_BYTES])
{
	if (n == 1) {
		memcpy(root, leaves[0], IG_HASH_BYTES);
		return;
	}
	uint64_t k = 1;
	while (k * 2 < n)
		k *= 2;
	uint8_t l[IG_HASH_BYTES], r[IG_HASH_BYTES];
	root_of(h, leaves, k, l);
	root_of(h, leaves + k, n - k, r);
	ig_merkle_hash_node(h, root, l, r);
}

void ig_merkle_root_of_hash(ig_merkle_hash h, const uint8_t (*leaves)[IG_HASH_BYTES], uint64_t n,
                            uint8_t root[IG_HASH_BYTES])
{
	if (n == 0) {
		ig_merkle_hash_empty(h, root);
		return;
	}
	root_of(h, leaves, n, root);
}

void ig_merkle_root_of(const uint8_t (*leaves)[IG_HASH_BYTES], uint64_t n, uint8_t root[IG_HASH_BYTES])
{
	ig_merkle_root_of_hash(IG_MERKLE_BLAKE2B, leaves, n, root);
}
