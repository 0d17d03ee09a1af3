#!/usr/bin/python3
"""tiles.py: an independent reader of C2SP tlog-tiles (written from tlog-tiles.md).

Why this exists: the ledger's C writer (lib/ledger/tiles.c) must produce tiles
that any C2SP client reads. This reader was written from the specification's
text and RFC 6962 section 2.1 alone, with hashlib, not from our C code, so a
shared misreading of the spec is the only way the two could agree on a wrong
answer. The C unit test (tests/unit/test_tiles.c) runs it on the trees it
writes and compares the root it prints.

Usage: tiles.py DIR|URL SIZE [--quick]
  DIR is the tlog directory itself (the one holding `tile/` and `checkpoint`),
  or a ledger directory with a `tlog/` subdirectory; URL is the log's http(s)
  prefix (a web server, or Mosquitto's http_dir, serving that directory).
  Prints the RFC 6962 root of the first SIZE entries as lowercase hex. Unless
  --quick, it also checks every tile the tree of SIZE leaves has: each full
  tile hashes to its hash one level up, and each entry bundle holds exactly
  the entries whose leaf hashes the level-0 tiles list. Exit 1 on any
  mismatch or missing tile, with the reason on stderr.
"""
import hashlib
import os
import sys
import urllib.error
import urllib.request

WIDTH = 256
HASH = 32


class TileError(Exception):
    pass


def h_leaf(entry):
    return hashlib.sha256(b"\x00" + entry).digest()


def h_node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def encode_index(n):
    """Tile index N as zero-padded 3-digit elements, all but the last with an x."""
    groups = []
    while True:
        groups.append("%03d" % (n % 1000))
        n //= 1000
        if n == 0:
            break
    groups.reverse()
    return "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])


def tile_path(level, n, width=0):
    """level is an int or the string "entries"; width 0 means a full tile."""
    p = "tile/%s/%s" % (level, encode_index(n))
    if width:
        p += ".p/%d" % width
    return p


def mth(hashes):
    """RFC 6962 Merkle Tree Hash over already-hashed leaves."""
    n = len(hashes)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashes[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return h_node(mth(hashes[:k]), mth(hashes[k:]))


class Tiles:
    def __init__(self, root, size):
        if not root.startswith(("http://", "https://")) and \
                os.path.isdir(os.path.join(root, "tlog")) and not os.path.isdir(os.path.join(root, "tile")):
            root = os.path.join(root, "tlog")
        self.base = root
        self.size = size
        self.cache = {}

    def _read(self, rel):
        if self.base.startswith(("http://", "https://")):
            try:
                with urllib.request.urlopen(self.base.rstrip("/") + "/" + rel, timeout=10) as r:
                    return r.read()
            except urllib.error.HTTPError as e:
                if e.code == 404:
                    raise FileNotFoundError(rel)
                raise
        path = os.path.join(self.base, rel)
        with open(path, "rb") as f:
            return f.read()

    def width(self, level, n):
        """Hashes in tile n of level `level` for this tree: 256, a partial width, or 0."""
        count = self.size // (WIDTH ** level)  # hashes at this level
        if n < count // WIDTH:
            return WIDTH
        if n == count // WIDTH:
            return count % WIDTH
        return 0

    def tile(self, level, n):
        key = (level, n)
        if key in self.cache:
            return self.cache[key]
        w = self.width(level, n)
        if w == 0:
            raise TileError("tile %d/%d is outside a tree of %d" % (level, n, self.size))
        try:
            data = self._read(tile_path(level, n, 0 if w == WIDTH else w))
        except FileNotFoundError:
            if w == WIDTH:
                raise TileError("missing full tile %s" % tile_path(level, n))
            # The spec lets a log delete a partial once the full tile exists.
            try:
                data = self._read(tile_path(level, n))[: w * HASH]
            except FileNotFoundError:
                raise TileError("missing %s (and its full tile)" % tile_path(level, n, w))
        if len(data) != w * HASH:
            raise TileError("%s has %d bytes, want %d" % (tile_path(level, n, 0 if w == WIDTH else w),
                                                           len(data), w * HASH))
        hashes = [data[i * HASH:(i + 1) * HASH] for i in range(w)]
        self.cache[key] = hashes
        return hashes

    def level_hash(self, level, i):
        """The i-th Merkle Tree Hash at tile level `level` (a subtree of 256**level leaves)."""
        return self.tile(level, i // WIDTH)[i % WIDTH]

    def subtree(self, height, index):
        """MTH of the perfect subtree of 2**height leaves starting at leaf index * 2**height."""
        level, k = divmod(height, 8)
        first = index << k
        return mth([self.level_hash(level, first + j) for j in range(1 << k)])

    def range_hash(self, lo, hi):
        """MTH(D[lo:hi]) by RFC 6962's recursion, taking aligned perfect subtrees from tiles."""
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:
            return self.subtree(n.bit_length() - 1, lo // n)
        k = 1
        while k * 2 < n:
            k *= 2
        return h_node(self.range_hash(lo, lo + k), self.range_hash(lo + k, hi))

    def root(self):
        if self.size == 0:
            return hashlib.sha256(b"").digest()
        return self.range_hash(0, self.size)

    def bundle(self, n):
        w = self.width(0, n)
        rel = tile_path("entries", n, 0 if w == WIDTH else w)
        try:
            data = self._read(rel)
            exact = True
        except FileNotFoundError:
            if w == WIDTH:
                raise TileError("missing entry bundle %s" % rel)
            data = self._read(tile_path("entries", n))
            exact = False
        entries, p = [], 0
        while p < len(data) and (len(entries) < w or exact):
            if p + 2 > len(data):
                raise TileError("%s: truncated length prefix" % rel)
            ln = int.from_bytes(data[p:p + 2], "big")
            if p + 2 + ln > len(data):
                raise TileError("%s: entry %d runs past the end" % (rel, len(entries)))
            entries.append(data[p + 2:p + 2 + ln])
            p += 2 + ln
        if len(entries) != w:
            raise TileError("%s holds %d entries, want %d" % (rel, len(entries), w))
        return entries

    def check(self):
        """Every tile of the tree: entries hash to level-0 hashes, full tiles to the level above."""
        level = 0
        while self.size // (WIDTH ** level) > 0:
            count = self.size // (WIDTH ** level)
            for n in range((count + WIDTH - 1) // WIDTH):
                hashes = self.tile(level, n)
                if level == 0:
                    entries = self.bundle(n)
                    for i, e in enumerate(entries):
                        if h_leaf(e) != hashes[i]:
                            raise TileError("entry %d does not hash to its level-0 tile hash" % (n * WIDTH + i))
                if len(hashes) == WIDTH and mth(hashes) != self.level_hash(level + 1, n):
                    raise TileError("full tile %s does not hash to level %d hash %d"
                                    % (tile_path(level, n), level + 1, n))
            level += 1


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    t = Tiles(args[0], int(args[1]))
    try:
        if "--quick" not in argv:
            t.check()
        print(t.root().hex())
    except (TileError, OSError) as e:
        print("tiles.py: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
