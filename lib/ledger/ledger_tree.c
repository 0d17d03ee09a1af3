/*
 * ledger_tree.c: where a format-2 ledger's Merkle tree comes from when it is
 * opened, and how the writer keeps its tiles.
 *
 * Why this exists: format 2 hashes every frame with SHA-256 (docs/LEDGER.md
 * section 8), which costs about three times format 1's tree; recomputing it
 * on every start of a ten-million-record ledger would double the broker's
 * start. The tree is already on disk, in the tiles (section 14), but tiles
 * are derived, unsynced files nobody signed, so they are believed only once
 * checked against what the cluster head did sign:
 *
 *   - the compact range read from the tiles at the checkpoint's size must
 *     fold to the signed root, so those subtree roots are the signed tree's;
 *   - the last signed record, hashed from the log, must be included under
 *     that root with a path read from the tiles, so that frame is the signed
 *     one; its prev_hash then pins record size-2, and the hash chain the scan
 *     checked pins every record before it.
 *
 * So a start that trusts the tiles accepts exactly the logs a start that
 * re-hashes the whole tree accepts. Anything that does not check out
 * (tiles missing, short, damaged or from another log) falls back to hashing
 * the log, and the writer then rebuilds the tiles. The writer thread appends
 * every durable batch to the tiles (ledger_writer.c).
 */
#include "ig_proof.h"
#include "ig_tiles.h"
#include "ledger_int.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

/* Pushes format 2's leaf of every frame in map[from, to) (frames the scan
 * verified) into acc. */
static void push_leaves(ig_merkle_acc *acc, const uint8_t *map, size_t from, size_t to)
{
	for (size_t off = from; off + 8 <= to;) {
		uint32_t flen = ig_get_u32(map + off + 4);
		uint8_t leaf[IG_HASH_BYTES];
		ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaf, map + off, flen);
		ig_merkle_push(acc, leaf);
		off += flen;
	}
}

int ledger_tree_from_tiles(const char *dir, const ig_checkpoint *cp, const uint8_t *map, size_t cp_last_off,
                           size_t end, ig_merkle_acc *acc, ig_error *err)
{
	if (cp->size == 0)
		return ig_error_set(err, IG_ERR_NOTFOUND, "a checkpoint of size 0 has no tiles");
	ig_tiles_reader *r;
	int rc = ig_tiles_reader_open(&r, dir, cp->size, err);
	if (rc != IG_OK)
		return rc;
	uint8_t nodes[64][IG_HASH_BYTES];
	unsigned count = 0;
	rc = ig_tiles_compact_range(r, nodes, &count, err);
	if (rc == IG_OK) {
		ig_merkle_init_hash(acc, IG_MERKLE_SHA256);
		acc->size = cp->size;
		acc->depth = (int)count;
		memcpy(acc->stack, nodes, (size_t)count * IG_HASH_BYTES);
		uint8_t root[IG_HASH_BYTES];
		ig_merkle_root(acc, root);
		if (count != (unsigned)__builtin_popcountll(cp->size) || sodium_memcmp(root, cp->root, IG_HASH_BYTES) != 0)
			rc = ig_error_set(err, IG_ERR_CORRUPT, "the tiles' tree of size %" PRIu64 " is not the signed one",
			                  cp->size);
	}
	uint8_t path[IG_PROOF_MAX][IG_HASH_BYTES];
	size_t n = 0;
	if (rc == IG_OK)
		rc = ig_proof_inclusion(path, IG_PROOF_MAX, &n, IG_MERKLE_SHA256, cp->size - 1, cp->size,
		                        ig_tiles_reader_node, r, err);
	ig_tiles_reader_close(r);
	if (rc != IG_OK)
		return rc;
	uint8_t leaf[IG_HASH_BYTES];
	ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaf, map + cp_last_off, ig_get_u32(map + cp_last_off + 4));
	if (ig_proof_inclusion_verify(IG_MERKLE_SHA256, leaf, cp->size - 1, cp->size, (const uint8_t(*)[IG_HASH_BYTES])path,
	                              n, cp->root) != IG_OK)
		return ig_error_set(err, IG_ERR_CORRUPT, "record %" PRIu64 " is not the one the checkpoint signed, or "
		                    "the tiles are damaged",
		                    cp->size - 1);
	/* Records past the checkpoint (a crash between a batch's fdatasync and
	 * its checkpoint) are few: hash them from the log. */
	push_leaves(acc, map, cp_last_off + ig_get_u32(map + cp_last_off + 4), end);
	return IG_OK;
}

void ledger_tree_from_log(const uint8_t *map, size_t end, uint64_t cp_size, ig_merkle_acc *acc,
                          uint8_t root_at_cp[IG_HASH_BYTES])
{
	ig_merkle_init_hash(acc, IG_MERKLE_SHA256);
	ig_merkle_root(acc, root_at_cp);
	for (size_t off = 0; off + 8 <= end;) {
		uint32_t flen = ig_get_u32(map + off + 4);
		uint8_t leaf[IG_HASH_BYTES];
		ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaf, map + off, flen);
		ig_merkle_push(acc, leaf);
		if (acc->size == cp_size)
			ig_merkle_root(acc, root_at_cp);
		off += flen;
	}
}

/* Appends format 2's leaves and entries of the frames in map[from, to) to
 * the tiles, in batches. */
static int tiles_append_frames(ig_tiles *t, const uint8_t *map, size_t from, size_t to, ig_error *err)
{
	enum { BATCH = 4096 };
	uint8_t(*leaves)[IG_HASH_BYTES] = malloc(BATCH * sizeof *leaves);
	const uint8_t **entries = malloc(BATCH * sizeof *entries);
	size_t *lens = malloc(BATCH * sizeof *lens);
	int rc = IG_OK;
	if (!leaves || !entries || !lens)
		rc = ig_error_set(err, IG_ERR_NOMEM, "out of memory rebuilding the tiles");
	size_t n = 0;
	for (size_t off = from; rc == IG_OK && off + 8 <= to;) {
		uint32_t flen = ig_get_u32(map + off + 4);
		ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaves[n], map + off, flen);
		entries[n] = map + off;
		lens[n] = flen;
		off += flen;
		if (++n == BATCH || off + 8 > to) {
			rc = ig_tiles_append(t, (const uint8_t(*)[IG_HASH_BYTES])leaves, entries, lens, n, err);
			n = 0;
		}
	}
	free(leaves);
	free(entries);
	free(lens);
	return rc;
}

int ledger_tiles_start(ig_ledger *l, uint64_t cp_last_off, ig_error *err)
{
	if (l->acc.hash != IG_MERKLE_SHA256)
		return IG_OK; /* format 1 has no tiles */
	const uint8_t *map = NULL;
	if (l->log_end > 0) {
		map = mmap(NULL, (size_t)l->log_end, PROT_READ, MAP_SHARED, l->log_fd, 0);
		if (map == MAP_FAILED)
			return ig_error_set(err, IG_ERR_IO, "cannot map %s/%s to write its tiles: %s", l->dir, IG_LEDGER_LOG,
			                    strerror(errno));
	}
	int rc = ledger_tiles_start_map(l, map, l->log_end, cp_last_off, err);
	if (map)
		munmap((void *)map, (size_t)l->log_end);
	return rc;
}

int ledger_tiles_start_map(ig_ledger *l, const uint8_t *map, uint64_t end, uint64_t cp_last_off, ig_error *err)
{
	if (l->acc.hash != IG_MERKLE_SHA256)
		return IG_OK;
	ig_tiles *t = NULL;
	ig_error why = {0};
	uint8_t root[IG_HASH_BYTES];
	/* No tiles yet is not damage: a new shared-mode key directory (its
	 * records are in PostgreSQL) or one whose tiles an operator removed. */
	char sub[4096];
	struct stat sst;
	snprintf(sub, sizeof sub, "%s/%s", l->dir, IG_TILES_SUBDIR);
	bool absent = stat(sub, &sst) != 0 && errno == ENOENT;
	int rc = ig_tiles_open(&t, l->dir, l->cp.size, &why);
	if (rc == IG_OK) {
		ig_tiles_root(t, root);
		if (sodium_memcmp(root, l->cp.root, IG_HASH_BYTES) != 0)
			rc = ig_error_set(&why, IG_ERR_CORRUPT, "their tree of size %" PRIu64 " is not the signed one",
			                  l->cp.size);
	}
	if (rc == IG_OK && l->cp.size > 0) {
		/* The unsigned tail, if a crash left one. */
		rc = tiles_append_frames(t, map, (size_t)cp_last_off + ig_get_u32(map + cp_last_off + 4), (size_t)end,
		                         &why);
	}
	if (rc != IG_OK) {
		if (t || ig_tiles_open(&t, l->dir, 0, err) == IG_OK) {
			if (absent)
				ig_log(IG_LOG_INFO, "ledger %s: no tiles yet (%s/); rebuilding them from the %" PRIu64 " records of the log",
				       l->dir, IG_TILES_SUBDIR, atomic_load(&l->height));
			else
				ig_log(IG_LOG_WARN, "ledger %s: its tiles (%s/) cannot be used (%s); rebuilding them from the %" PRIu64
				       " records of the log",
				       l->dir, IG_TILES_SUBDIR, why.msg, atomic_load(&l->height));
			rc = ig_tiles_reset(t, err);
			if (rc == IG_OK)
				rc = tiles_append_frames(t, map, 0, (size_t)end, err);
		} else {
			rc = err ? err->code : IG_ERR_IO;
		}
	}
	if (rc == IG_OK && ig_tiles_size(t) != atomic_load(&l->height))
		rc = ig_error_set(err, IG_ERR_CORRUPT, "ledger %s: the tiles hold %" PRIu64 " records, the log %" PRIu64,
		                  l->dir, ig_tiles_size(t), atomic_load(&l->height));
	if (rc == IG_OK)
		rc = ig_tiles_publish(t, l->cp_text, l->cp_len, err);
	if (rc != IG_OK) {
		ig_tiles_close(t);
		return rc;
	}
	l->tiles = t;
	return IG_OK;
}
