/*
 * ig_merkle.h: RFC 6962 / RFC 9162 Merkle tree hashing over record hashes.
 *
 * Why this exists: a signed checkpoint commits to the whole log through one
 * root, so an auditor holding any checkpoint can detect rewritten history.
 * H is BLAKE2b-256; leaf = H(0x00 || entry) is the record hash itself (see
 * ig_record.h), node = H(0x01 || left || right), and the tree shape is
 * RFC 6962 section 2.1 (split at the largest power of two < n).
 *
 * ig_merkle_acc keeps only the O(log n) "compact range" of perfect-subtree
 * roots, so appending is O(1) amortised and the root is O(log n).
 */
#ifndef IG_MERKLE_H
#define IG_MERKLE_H

#include "ig_common.h"

typedef struct ig_merkle_acc {
	uint64_t size;                       /* number of leaves */
	uint8_t stack[64][IG_HASH_BYTES];    /* roots of perfect subtrees, largest first */
	int depth;                           /* entries used in stack */
} ig_merkle_acc;

void ig_merkle_init(ig_merkle_acc *acc);
/* Adds a leaf hash (already H(0x00 || entry)). */
void ig_merkle_push(ig_merkle_acc *acc, const uint8_t leaf[IG_HASH_BYTES]);
/* Adds the root of a perfect subtree of 2^height leaves (height <= 30), as
 * if its leaves were pushed one by one: the accumulator ends up exactly the
 * same. Lets another thread hash the subtree. The accumulator's size must be
 * a multiple of 2^height (a subtree never straddles a larger one). */
void ig_merkle_push_subtree(ig_merkle_acc *acc, const uint8_t root[IG_HASH_BYTES], unsigned height);
/* Root of the leaves pushed so far. The empty tree's root is H() (BLAKE2b-256
 * of the empty string), as RFC 6962 defines MTH({}) = HASH(). */
void ig_merkle_root(const ig_merkle_acc *acc, uint8_t root[IG_HASH_BYTES]);

/* Root of n leaf hashes in one call (reference implementation, recursive). */
void ig_merkle_root_of(const uint8_t (*leaves)[IG_HASH_BYTES], uint64_t n, uint8_t root[IG_HASH_BYTES]);

/* H(0x01 || l || r) */
void ig_merkle_node(uint8_t out[IG_HASH_BYTES], const uint8_t l[IG_HASH_BYTES], const uint8_t r[IG_HASH_BYTES]);

#endif
