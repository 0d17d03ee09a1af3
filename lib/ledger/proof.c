/*
 * proof.c: RFC 6962 inclusion and consistency proofs from perfect-subtree
 * hashes, and their RFC 9162 verification.
 *
 * Why this exists: see ig_proof.h. The builders do not recurse over the
 * leaves as RFC 6962 writes PATH and PROOF: in the RFC tree every node at
 * level l covers leaves [k*2^l, min((k+1)*2^l, size)), a node without a
 * right sibling is carried up unchanged, and so a proof is the list of
 * siblings met on the way from one leaf to the root. That needs O(log n)
 * node reads, which a tile store can answer, instead of O(n) leaves. The
 * tests check every proof for small trees against the recursive definition
 * (tests/tlog/rfc6962.py).
 *
 * The verifiers follow RFC 9162 step by step, and first check the proof's
 * length against the one the sizes imply, so a short or padded proof is
 * refused before any hashing and no hash past n is read.
 */
#include "ig_proof.h"

#include <inttypes.h>
#include <sodium.h>
#include <string.h>

/* Does the node at `level`, index `k`, exist in a tree of `size` leaves,
 * i.e. does its first leaf k << level lie below size? Written without the
 * shift so that it cannot overflow. */
static bool node_exists(unsigned level, uint64_t k, uint64_t size)
{
	return size > 0 && k <= (size - 1) >> level;
}

/* Is that node perfect (all 2^level leaves below size)? */
static bool node_perfect(unsigned level, uint64_t k, uint64_t size)
{
	return k < (size >> level);
}

static int read_node(ig_proof_node_fn node, void *ctx, unsigned level, uint64_t k, uint8_t out[IG_HASH_BYTES],
                     ig_error *err)
{
	if (err) {
		err->code = IG_OK;
		err->msg[0] = '\0';
	}
	int rc = node(ctx, level, k, out, err);
	if (rc != IG_OK) {
		if (rc > 0)
			rc = IG_ERR_IO;
		/* A reader that failed without saying why still gets a message. */
		if (err && (err->code != rc || err->msg[0] == '\0'))
			ig_error_set(err, rc, "Merkle proof: reading the subtree at level %u, index %" PRIu64
			             " failed (code %d); check the log's tiles", level, k, rc);
	}
	return rc;
}

/* MTH of the count leaves starting at begin, where begin is a multiple of a
 * power of two larger than count (or 0): the perfect subtrees of count's set
 * bits, largest first, folded from the right as RFC 6962's split does. */
static int fold_range(uint8_t out[IG_HASH_BYTES], ig_merkle_hash h, uint64_t begin, uint64_t count,
                      ig_proof_node_fn node, void *ctx, ig_error *err)
{
	uint8_t parts[64][IG_HASH_BYTES];
	int np = 0;
	uint64_t off = begin;
	for (int b = 63; b >= 0; b--) {
		if (!(count & (UINT64_C(1) << b)))
			continue;
		int rc = read_node(node, ctx, (unsigned)b, off >> b, parts[np], err);
		if (rc != IG_OK)
			return rc;
		np++;
		off += UINT64_C(1) << b;
	}
	memcpy(out, parts[np - 1], IG_HASH_BYTES);
	for (int i = np - 2; i >= 0; i--)
		ig_merkle_hash_node(h, out, parts[i], out);
	return IG_OK;
}

/* Hash of the (existing) node at level, index k of a tree of size leaves:
 * read if perfect, folded if on the ragged right edge. */
static int node_hash(uint8_t out[IG_HASH_BYTES], ig_merkle_hash h, unsigned level, uint64_t k, uint64_t size,
                     ig_proof_node_fn node, void *ctx, ig_error *err)
{
	if (node_perfect(level, k, size))
		return read_node(node, ctx, level, k, out, err);
	uint64_t begin = k << level;
	return fold_range(out, h, begin, size - begin, node, ctx, err);
}

/* Calls visit for each sibling on the path from the node (from, leaf >>
 * from) to the root of a tree of size leaves, bottom up. Counting and
 * building walk the same way, so they cannot disagree. */
typedef struct walk {
	bool count_only;
	uint8_t (*path)[IG_HASH_BYTES];
	size_t cap, n;
	ig_merkle_hash h;
	ig_proof_node_fn node;
	void *ctx;
	ig_error *err;
} walk;

static int walk_siblings(walk *w, uint64_t leaf, unsigned from, uint64_t size)
{
	for (unsigned l = from; ((size - 1) >> l) > 0; l++) {
		uint64_t sib = (leaf >> l) ^ 1;
		if (!node_exists(l, sib, size))
			continue; /* no right sibling: the node is carried up unchanged */
		if (!w->count_only) {
			if (w->n >= w->cap)
				return ig_error_set(w->err, IG_ERR_RANGE, "Merkle proof needs more than the %zu hashes "
				                    "of room given", w->cap);
			int rc = node_hash(w->path[w->n], w->h, l, sib, size, w->node, w->ctx, w->err);
			if (rc != IG_OK)
				return rc;
		}
		w->n++;
	}
	return IG_OK;
}

static unsigned ctz64(uint64_t v)
{
	return (unsigned)__builtin_ctzll(v);
}

static bool valid_inclusion(uint64_t index, uint64_t size)
{
	return size <= IG_PROOF_SIZE_MAX && index < size;
}

static bool valid_consistency(uint64_t old_size, uint64_t new_size)
{
	return new_size <= IG_PROOF_SIZE_MAX && old_size <= new_size;
}

int ig_proof_inclusion_len(uint64_t index, uint64_t size)
{
	if (!valid_inclusion(index, size))
		return -1;
	walk w = {.count_only = true};
	(void)walk_siblings(&w, index, 0, size);
	return (int)w.n;
}

int ig_proof_consistency_len(uint64_t old_size, uint64_t new_size)
{
	if (!valid_consistency(old_size, new_size))
		return -1;
	if (old_size == 0 || old_size == new_size)
		return 0;
	walk w = {.count_only = true};
	unsigned l = ctz64(old_size);
	/* The old tree's root is the node ending at old_size; it is sent unless
	 * it is the leftmost node (old_size a power of two), which the verifier
	 * already holds as old_root. */
	if ((old_size & (old_size - 1)) != 0)
		w.n++;
	(void)walk_siblings(&w, old_size - 1, l, new_size);
	return (int)w.n;
}

int ig_proof_inclusion(uint8_t (*path)[IG_HASH_BYTES], size_t cap, size_t *n, ig_merkle_hash h,
                       uint64_t index, uint64_t size, ig_proof_node_fn node, void *ctx, ig_error *err)
{
	if ((!path && cap) || !n || !node)
		return ig_error_set(err, IG_ERR_INVAL, "inclusion proof: missing output or node reader");
	*n = 0;
	if (size > IG_PROOF_SIZE_MAX)
		return ig_error_set(err, IG_ERR_INVAL, "inclusion proof: tree size %" PRIu64 " is above 2^63", size);
	if (index >= size)
		return ig_error_set(err, IG_ERR_INVAL, "inclusion proof: index %" PRIu64 " is not below the tree "
		                    "size %" PRIu64 "; ask for a record the tree holds", index, size);
	walk w = {false, path, cap, 0, h, node, ctx, err};
	int rc = walk_siblings(&w, index, 0, size);
	if (rc != IG_OK)
		return rc;
	*n = w.n;
	return IG_OK;
}

int ig_proof_consistency(uint8_t (*path)[IG_HASH_BYTES], size_t cap, size_t *n, ig_merkle_hash h,
                         uint64_t old_size, uint64_t new_size, ig_proof_node_fn node, void *ctx, ig_error *err)
{
	if ((!path && cap) || !n || !node)
		return ig_error_set(err, IG_ERR_INVAL, "consistency proof: missing output or node reader");
	*n = 0;
	if (new_size > IG_PROOF_SIZE_MAX)
		return ig_error_set(err, IG_ERR_INVAL, "consistency proof: tree size %" PRIu64 " is above 2^63",
		                    new_size);
	if (old_size > new_size)
		return ig_error_set(err, IG_ERR_INVAL, "consistency proof: the old size %" PRIu64 " is larger than "
		                    "the new size %" PRIu64 " (a log never shrinks)", old_size, new_size);
	if (old_size == 0 || old_size == new_size)
		return IG_OK;
	walk w = {false, path, cap, 0, h, node, ctx, err};
	unsigned l = ctz64(old_size);
	if ((old_size & (old_size - 1)) != 0) {
		if (cap < 1)
			return ig_error_set(err, IG_ERR_RANGE, "consistency proof needs more than the 0 hashes of room given");
		/* The perfect node [old_size - 2^l, old_size): the old root's last
		 * piece, and the start of both roots' recomputation. */
		int rc = read_node(node, ctx, l, (old_size >> l) - 1, path[0], err);
		if (rc != IG_OK)
			return rc;
		w.n = 1;
	}
	int rc = walk_siblings(&w, old_size - 1, l, new_size);
	if (rc != IG_OK)
		return rc;
	*n = w.n;
	return IG_OK;
}

int ig_proof_root(uint8_t root[IG_HASH_BYTES], ig_merkle_hash h, uint64_t size, ig_proof_node_fn node, void *ctx,
                  ig_error *err)
{
	if (!root || !node)
		return ig_error_set(err, IG_ERR_INVAL, "Merkle root: missing output or node reader");
	if (size == 0) {
		ig_merkle_hash_empty(h, root);
		return IG_OK;
	}
	return fold_range(root, h, 0, size, node, ctx, err);
}

/* ---- verification (RFC 9162) ------------------------------------------- */

/* Right-shifts fn and sn together until fn's lowest bit is set or fn is 0. */
static void shift_while_even(uint64_t *fn, uint64_t *sn)
{
	while (*fn != 0 && (*fn & 1) == 0) {
		*fn >>= 1;
		*sn >>= 1;
	}
}

int ig_proof_inclusion_verify(ig_merkle_hash h, const uint8_t leaf[IG_HASH_BYTES], uint64_t index, uint64_t size,
                              const uint8_t (*path)[IG_HASH_BYTES], size_t n, const uint8_t root[IG_HASH_BYTES])
{
	if (!leaf || !root || (n > 0 && !path))
		return IG_ERR_INVAL;
	if (!valid_inclusion(index, size))
		return IG_ERR_INVAL;
	int want = ig_proof_inclusion_len(index, size);
	if (want < 0 || (size_t)want != n)
		return IG_ERR_CORRUPT;

	uint64_t fn = index, sn = size - 1;
	uint8_t r[IG_HASH_BYTES];
	memcpy(r, leaf, IG_HASH_BYTES);
	for (size_t i = 0; i < n; i++) {
		if (sn == 0)
			return IG_ERR_CORRUPT;
		if ((fn & 1) || fn == sn) {
			ig_merkle_hash_node(h, r, path[i], r);
			if (!(fn & 1))
				shift_while_even(&fn, &sn);
		} else {
			ig_merkle_hash_node(h, r, r, path[i]);
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0 || memcmp(r, root, IG_HASH_BYTES) != 0)
		return IG_ERR_CORRUPT;
	return IG_OK;
}

int ig_proof_consistency_verify(ig_merkle_hash h, uint64_t old_size, const uint8_t old_root[IG_HASH_BYTES],
                                uint64_t new_size, const uint8_t new_root[IG_HASH_BYTES],
                                const uint8_t (*path)[IG_HASH_BYTES], size_t n)
{
	if (!new_root || (n > 0 && !path) || (old_size > 0 && !old_root))
		return IG_ERR_INVAL;
	if (!valid_consistency(old_size, new_size))
		return IG_ERR_INVAL;
	if (old_size == 0)
		return n == 0 ? IG_OK : IG_ERR_CORRUPT;
	if (old_size == new_size)
		return n == 0 && memcmp(old_root, new_root, IG_HASH_BYTES) == 0 ? IG_OK : IG_ERR_CORRUPT;
	int want = ig_proof_consistency_len(old_size, new_size);
	if (want < 1 || (size_t)want != n)
		return IG_ERR_CORRUPT;

	/* RFC 9162 2.1.4.2 step 2: a power-of-two old size means the old root
	 * is itself the first node, so it stands in front of the path. */
	const uint8_t *first;
	size_t next;
	if ((old_size & (old_size - 1)) == 0) {
		first = old_root;
		next = 0;
	} else {
		first = path[0];
		next = 1;
	}
	uint64_t fn = old_size - 1, sn = new_size - 1;
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	uint8_t fr[IG_HASH_BYTES], sr[IG_HASH_BYTES];
	memcpy(fr, first, IG_HASH_BYTES);
	memcpy(sr, first, IG_HASH_BYTES);
	for (size_t i = next; i < n; i++) {
		if (sn == 0)
			return IG_ERR_CORRUPT;
		if ((fn & 1) || fn == sn) {
			ig_merkle_hash_node(h, fr, path[i], fr);
			ig_merkle_hash_node(h, sr, path[i], sr);
			if (!(fn & 1))
				shift_while_even(&fn, &sn);
		} else {
			ig_merkle_hash_node(h, sr, sr, path[i]);
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0 || memcmp(fr, old_root, IG_HASH_BYTES) != 0 || memcmp(sr, new_root, IG_HASH_BYTES) != 0)
		return IG_ERR_CORRUPT;
	return IG_OK;
}

/* ---- in-memory reader ---------------------------------------------------- */

int ig_proof_mem_node(void *ctx, unsigned level, uint64_t index, uint8_t out[IG_HASH_BYTES], ig_error *err)
{
	const ig_proof_mem *m = ctx;
	if (!m || !out || (m->n > 0 && !m->leaves))
		return ig_error_set(err, IG_ERR_INVAL, "in-memory Merkle tree: missing tree or output");
	if (level >= 64 || !node_perfect(level, index, m->n))
		return ig_error_set(err, IG_ERR_RANGE, "in-memory Merkle tree of %" PRIu64 " leaves has no perfect "
		                    "subtree at level %u, index %" PRIu64, m->n, level, index);
	ig_merkle_root_of_hash(m->hash, m->leaves + (index << level), UINT64_C(1) << level, out);
	return IG_OK;
}
