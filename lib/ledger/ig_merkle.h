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
 *
 * Two hash functions: BLAKE2b-256 (ledger format 1, where the leaf is the
 * record hash) and SHA-256 (format 2, the C2SP tlog-* family, where the leaf
 * is SHA-256(0x00 || whole frame)). The tree shape is the same. The plain
 * functions (ig_merkle_init, ig_merkle_node, ig_merkle_root_of) are BLAKE2b;
 * the _hash forms take the function.
 */
#ifndef IG_MERKLE_H
#define IG_MERKLE_H

#include "ig_common.h"

typedef enum ig_merkle_hash {
	IG_MERKLE_BLAKE2B = 0,   /* ledger format 1 */
	IG_MERKLE_SHA256 = 1,    /* ledger format 2: RFC 6962 as C2SP specifies it */
} ig_merkle_hash;

typedef struct ig_merkle_acc {
	ig_merkle_hash hash;
	uint64_t size;                       /* number of leaves */
	uint8_t stack[64][IG_HASH_BYTES];    /* roots of perfect subtrees, largest first */
	int depth;                           /* entries used in stack */
} ig_merkle_acc;

/* BLAKE2b accumulator. */
void ig_merkle_init(ig_merkle_acc *acc);
void ig_merkle_init_hash(ig_merkle_acc *acc, ig_merkle_hash h);
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

/* H(0x01 || l || r) with BLAKE2b. */
void ig_merkle_node(uint8_t out[IG_HASH_BYTES], const uint8_t l[IG_HASH_BYTES], const uint8_t r[IG_HASH_BYTES]);

/* The same with either hash: node H(0x01 || l || r), leaf H(0x00 || entry),
 * the empty tree H(), and the recursive reference root of n leaf hashes. */
void ig_merkle_hash_node(ig_merkle_hash h, uint8_t out[IG_HASH_BYTES], const uint8_t l[IG_HASH_BYTES],
                         const uint8_t r[IG_HASH_BYTES]);
void ig_merkle_hash_leaf(ig_merkle_hash h, uint8_t out[IG_HASH_BYTES], const uint8_t *entry, size_t len);
void ig_merkle_hash_empty(ig_merkle_hash h, uint8_t out[IG_HASH_BYTES]);
void ig_merkle_root_of_hash(ig_merkle_hash h, const uint8_t (*leaves)[IG_HASH_BYTES], uint64_t n,
                            uint8_t root[IG_HASH_BYTES]);

#endif
