/*
 * ig_tiles.h: the C2SP tlog-tiles of a format-2 ledger, written and read.
 *
 * Why this exists: a format-2 ledger's Merkle tree (RFC 6962, SHA-256) is
 * published as static files in DIR/tlog/ (docs/LEDGER.md section 14), so any
 * web server, or Mosquitto's own http_dir, can serve the log, and proofs can
 * be computed from a handful of tiles instead of re-hashing the log. The
 * tiles are derived data: the writer never fsyncs them, and the ledger's open
 * either restores the writer's right edge from them (checked by folding it
 * against the signed checkpoint root) or rebuilds them from leaf 0.
 *
 * Layout under DIR/tlog/ (C2SP tlog-tiles): `checkpoint`,
 * `tile/<L>/<N>[.p/<W>]` (hashes, 32 bytes each, 256 in a full tile) and
 * `tile/entries/<N>[.p/<W>]` (uint16 big-endian length-prefixed entries).
 * Nothing under DIR/tlog/ is reached through a symbolic link: every path is
 * walked one directory at a time with O_NOFOLLOW.
 *
 * Not thread-safe per handle: one writer (the ledger's writer thread) owns an
 * ig_tiles; each reader thread owns its ig_tiles_reader. Readers and the
 * writer may run at once (files are replaced by rename, and a reader whose
 * partial tile was just deleted falls back to the full tile).
 */
#ifndef IG_TILES_H
#define IG_TILES_H

#include "ig_common.h"

#define IG_TILES_SUBDIR "tlog"            /* DIR/tlog: DIR itself holds ch.key */
#define IG_TILES_WIDTH 256                /* hashes in a full tile */
#define IG_TILES_LEVELS 8                 /* levels 0..7 hold any tree below 2^64 leaves */
#define IG_TILES_ENTRY_MAX 65535          /* an entry bundle's length prefix is a uint16 */
#define IG_TILES_PATH_MAX 96              /* longest relative tile path, with its NUL */
#define IG_TILES_ENTRIES (-1)             /* ig_tiles_path's level for entry bundles */

/* The path of a tile relative to DIR/tlog/, as C2SP spells it:
 * `tile/<level>/<N>` or `tile/entries/<N>` (level IG_TILES_ENTRIES), N in
 * 3-digit groups with all but the last prefixed by `x` (1234067 ->
 * `x001/x234/067`), and `.p/<width>` for a partial tile (width 1..255; 0
 * means full). IG_ERR_RANGE if level is not -1..63, width > 255, or out is
 * too small. */
int ig_tiles_path(char *out, size_t cap, int level, uint64_t n, unsigned width);

/* ---- Writer ---- */

typedef struct ig_tiles ig_tiles;

/* Opens the tiles of ledger_dir for a tree of exactly size leaves, creating
 * DIR/tlog/ (0755 less umask) if needed, and restores the right edge (the
 * partial tile of every level and the partial entry bundle) from the files.
 * It checks what it reads: IG_ERR_CORRUPT, with a message naming the tile,
 * when a tile the size needs is missing, short or garbled, or the last full
 * tile of a level is missing (the tiles cover fewer than size leaves): the
 * caller then rebuilds with ig_tiles_reset and appends every leaf again.
 * Tiles beyond size (the log was rolled back) are deleted. Size 0 starts a
 * fresh set, deleting any old tiles. The restored edge is only as good as the
 * files: fold it (ig_tiles_root) and compare it with the signed root. */
IG_NODISCARD int ig_tiles_open(ig_tiles **out, const char *ledger_dir, uint64_t size, ig_error *err);

/* Deletes every tile and starts again at size 0 (a rebuild from leaf 0).
 * Also clears the failed state an earlier write error left. */
IG_NODISCARD int ig_tiles_reset(ig_tiles *t, ig_error *err);

/* Appends n leaves: leaf[i] = SHA-256(0x00 || entry[i]) (the caller's hash,
 * not checked here) and the entry bytes. Writes every tile that changed:
 * the new full tiles of every level and entry bundles, then the partial tile
 * of the new size at every level that has one; a completed tile's partials
 * are deleted once the full tile is in place. Each file is written to a
 * temporary name and renamed, never fsynced. IG_ERR_RANGE (nothing appended)
 * if an entry is over 65535 bytes. After a write error (IG_ERR_IO,
 * IG_ERR_NOSPACE) the handle is failed: later appends return IG_ERR_STATE
 * until ig_tiles_reset, because the files on disk miss leaves. */
IG_NODISCARD int ig_tiles_append(ig_tiles *t, const uint8_t (*leaf)[IG_HASH_BYTES], const uint8_t *const *entry,
                                 const size_t *entry_len, size_t n, ig_error *err);

/* Replaces DIR/tlog/checkpoint with the text (temporary name + rename, no
 * fsync). Publish after the append that reached the checkpoint's size:
 * IG_ERR_STATE if its size (second line) is over the tiles' size or the
 * handle failed, so a published checkpoint never names a missing tile. */
IG_NODISCARD int ig_tiles_publish(ig_tiles *t, const char *checkpoint_text, size_t len, ig_error *err);

/* Leaves in the tree the writer holds. */
uint64_t ig_tiles_size(const ig_tiles *t);

/* RFC 6962 root of the writer's tree, folded from its in-memory right edge
 * (SHA-256 of nothing for size 0). */
void ig_tiles_root(const ig_tiles *t, uint8_t root[IG_HASH_BYTES]);

void ig_tiles_close(ig_tiles *t);

/* ---- Reader (proofs, the compact range at open) ---- */

typedef struct ig_tiles_reader ig_tiles_reader;

/* A reader of the tiles of ledger_dir for a tree of size leaves (it picks
 * the partial tiles of that size). Keeps the last few tiles read. */
IG_NODISCARD int ig_tiles_reader_open(ig_tiles_reader **out, const char *ledger_dir, uint64_t size, ig_error *err);
/* Reads for another tree size from now on (drops the cache). */
void ig_tiles_reader_set_size(ig_tiles_reader *r, uint64_t size);
uint64_t ig_tiles_reader_size(const ig_tiles_reader *r);
void ig_tiles_reader_close(ig_tiles_reader *r);

/* The hash of the perfect subtree of 2^level leaves starting at leaf
 * index << level, in the tree of the reader's size (a leaf hash at level
 * 0). Shaped as ig_proof_node_fn (ctx is the ig_tiles_reader). IG_ERR_RANGE
 * if that subtree is not wholly inside the tree, IG_ERR_NOTFOUND if a tile
 * is missing, IG_ERR_CORRUPT if one has the wrong length. */
IG_NODISCARD int ig_tiles_reader_node(void *reader, unsigned level, uint64_t index, uint8_t out[IG_HASH_BYTES],
                                      ig_error *err);

/* Entry index (< size) from the entry bundles into buf, its length in *len.
 * The entry is checked against its leaf hash in the level-0 tile
 * (IG_ERR_CORRUPT if they differ). IG_ERR_RANGE, with *len set, if it does
 * not fit cap. */
IG_NODISCARD int ig_tiles_reader_entry(ig_tiles_reader *r, uint64_t index, uint8_t *buf, size_t cap, size_t *len,
                                       ig_error *err);

/* The right edge of the reader's tree: one perfect-subtree root per set bit
 * of size, largest first (at most 64), in nodes; their number in *count.
 * Folding them right to left (r = H(0x01 || node[i] || r)) gives the root. */
IG_NODISCARD int ig_tiles_compact_range(ig_tiles_reader *r, uint8_t (*nodes)[IG_HASH_BYTES], unsigned *count,
                                        ig_error *err);

/* One node without keeping a reader: opens one, reads, closes it. */
IG_NODISCARD int ig_tiles_node(const char *ledger_dir, uint64_t size, unsigned level, uint64_t index,
                               uint8_t out[IG_HASH_BYTES], ig_error *err);

#endif
