/*
 * ig_proof.h: Merkle inclusion and consistency proofs (RFC 6962 section
 * 2.1.1/2.1.2, verified as RFC 9162 sections 2.1.3.2/2.1.4.2 say).
 *
 * Why this exists: a signed checkpoint only helps a device that cannot hold
 * the whole log if the cluster head can show, in O(log n) hashes, that a
 * record is in the tree (inclusion) and that a newer tree extends the one
 * the device already accepted (consistency). A fork or a rollback then
 * cannot be hidden from anyone who kept an old checkpoint.
 *
 * Proofs are built from hashes of perfect subtrees read through a callback,
 * so the same code serves C2SP tiles on disk, a ledger in memory and the
 * tests. A node on the ragged right edge of the tree (fewer than 2^level
 * leaves) is never asked for: it is folded from the perfect subtrees it is
 * made of. Either hash function works (ig_merkle_hash); C2SP and ledger
 * format 2 use SHA-256.
 *
 * Sizes are limited to 2^63 leaves (IG_PROOF_SIZE_MAX), which bounds every
 * proof to IG_PROOF_MAX hashes.
 */
#ifndef IG_PROOF_H
#define IG_PROOF_H

#include "ig_common.h"
#include "ig_merkle.h"

/* Hash of the perfect subtree of 2^level leaves whose first leaf is
 * index << level. Returns IG_OK or an IG_ERR_* (e.g. a tile could not be
 * read), with err set. */
typedef int (*ig_proof_node_fn)(void *ctx, unsigned level, uint64_t index, uint8_t out[IG_HASH_BYTES], ig_error *err);

#define IG_PROOF_MAX 64                        /* hashes in any proof of a tree of <= 2^63 leaves */
#define IG_PROOF_SIZE_MAX (UINT64_C(1) << 63)  /* largest tree size accepted */

/* The inclusion proof (RFC 6962 PATH) of leaf `index` in the tree of the
 * first `size` leaves: the leaf's sibling first, the root's child last.
 * path holds cap hashes; *n gets the count. IG_ERR_INVAL if index >= size
 * or size > IG_PROOF_SIZE_MAX, IG_ERR_RANGE if cap is too small, or the
 * reader's error. */
int ig_proof_inclusion(uint8_t (*path)[IG_HASH_BYTES], size_t cap, size_t *n, ig_merkle_hash h,
                       uint64_t index, uint64_t size, ig_proof_node_fn node, void *ctx, ig_error *err);

/* The consistency proof (RFC 6962 PROOF) from the tree of old_size leaves to
 * the tree of new_size leaves. Empty when old_size is 0 or equal to
 * new_size. IG_ERR_INVAL if old_size > new_size or new_size >
 * IG_PROOF_SIZE_MAX; otherwise as ig_proof_inclusion. */
int ig_proof_consistency(uint8_t (*path)[IG_HASH_BYTES], size_t cap, size_t *n, ig_merkle_hash h,
                         uint64_t old_size, uint64_t new_size, ig_proof_node_fn node, void *ctx, ig_error *err);

/* Root of the first `size` leaves from the same callback (O(log size) node
 * reads and hashes); size 0 gives H() of nothing. */
int ig_proof_root(uint8_t root[IG_HASH_BYTES], ig_merkle_hash h, uint64_t size, ig_proof_node_fn node, void *ctx,
                  ig_error *err);

/* Number of hashes in the inclusion proof of index in size, and in the
 * consistency proof from old_size to new_size; -1 if the arguments are
 * invalid (as the builders above refuse them). */
int ig_proof_inclusion_len(uint64_t index, uint64_t size);
int ig_proof_consistency_len(uint64_t old_size, uint64_t new_size);

/* Checks that the leaf hash `leaf` is at `index` in the tree of `size`
 * leaves whose root is `root`, with the n hashes of path (RFC 9162
 * 2.1.3.2). Reads path[0..n) only. IG_OK, IG_ERR_INVAL for an index or size
 * out of range or NULL arguments, IG_ERR_CORRUPT for a proof of the wrong
 * length or one that does not lead to root. */
int ig_proof_inclusion_verify(ig_merkle_hash h, const uint8_t leaf[IG_HASH_BYTES], uint64_t index, uint64_t size,
                              const uint8_t (*path)[IG_HASH_BYTES], size_t n,
                              const uint8_t root[IG_HASH_BYTES]) IG_NODISCARD;

/* Checks that the tree of new_size leaves with root new_root extends the
 * tree of old_size leaves with root old_root (RFC 9162 2.1.4.2). Reads
 * path[0..n) only. An empty tree is a prefix of every tree: old_size 0
 * needs an empty proof and old_root is not looked at (it may be NULL).
 * Equal sizes need an empty proof and equal roots. IG_OK, IG_ERR_INVAL for
 * old_size > new_size, new_size > IG_PROOF_SIZE_MAX or NULL arguments,
 * IG_ERR_CORRUPT for a proof of the wrong length or one that does not lead
 * to both roots (a fork or a rewritten history). */
int ig_proof_consistency_verify(ig_merkle_hash h, uint64_t old_size, const uint8_t old_root[IG_HASH_BYTES],
                                uint64_t new_size, const uint8_t new_root[IG_HASH_BYTES],
                                const uint8_t (*path)[IG_HASH_BYTES], size_t n) IG_NODISCARD;

/* A node reader over leaf hashes in memory, for tests and small callers:
 * pass ig_proof_mem_node as the callback and an ig_proof_mem as its ctx.
 * Each read hashes the 2^level leaves under the node (no cache), so it
 * suits small trees. A node outside the n leaves is IG_ERR_RANGE. */
typedef struct ig_proof_mem {
	ig_merkle_hash hash;
	const uint8_t (*leaves)[IG_HASH_BYTES];
	uint64_t n;
} ig_proof_mem;

int ig_proof_mem_node(void *ctx, unsigned level, uint64_t index, uint8_t out[IG_HASH_BYTES], ig_error *err);

#endif
