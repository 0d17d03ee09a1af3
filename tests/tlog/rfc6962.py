"""tests/tlog/rfc6962.py: RFC 6962 / RFC 9162 Merkle trees, written from the RFCs only.

Why this exists: the C code builds proofs iteratively from subtree hashes
(lib/ledger/proof.c). A second implementation that follows the RFC text
literally -- MTH, PATH and PROOF as the recursive definitions of RFC 6962
section 2.1, and the verification algorithms of RFC 9162 sections 2.1.3.2 and
2.1.4.2 -- is what the C test vectors and docs/LEDGER.md section 13 are
computed with, so a shared misreading of the RFC cannot make both agree.
Nothing here is derived from iotguard's C code.

Also a strict parser and formatter for C2SP tlog-proof@v1 texts (tlog-proof.md).

Run as a program, it prints the vectors pinned in the C unit tests and the docs:
    /usr/bin/python3 tests/tlog/rfc6962.py
"""
import base64
import hashlib
import re
import sys

SHA256 = "sha256"
BLAKE2B = "blake2b"


def H(alg, data):
    """The tree's hash function: SHA-256 (RFC 6962, C2SP) or BLAKE2b-256."""
    if alg == SHA256:
        return hashlib.sha256(data).digest()
    if alg == BLAKE2B:
        return hashlib.blake2b(data, digest_size=32).digest()
    raise ValueError("unknown hash %r" % alg)


def leaf_hash(alg, entry):
    """RFC 6962 2.1: MTH({d0}) = HASH(0x00 || d0)."""
    return H(alg, b"\x00" + entry)


def node_hash(alg, left, right):
    """RFC 6962 2.1: HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))."""
    return H(alg, b"\x01" + left + right)


def split(n):
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth_hashes(alg, leaves):
    """MTH over leaf hashes (already HASH(0x00 || d)); MTH({}) = HASH()."""
    n = len(leaves)
    if n == 0:
        return H(alg, b"")
    if n == 1:
        return leaves[0]
    k = split(n)
    return node_hash(alg, mth_hashes(alg, leaves[:k]), mth_hashes(alg, leaves[k:]))


def mth(alg, entries):
    """MTH over entries (RFC 6962 2.1)."""
    return mth_hashes(alg, [leaf_hash(alg, d) for d in entries])


def path(alg, m, leaves):
    """RFC 6962 2.1.1 PATH(m, D[n]) over leaf hashes: the audit path of leaf m."""
    n = len(leaves)
    if not 0 <= m < n:
        raise ValueError("index %d is not in a tree of %d leaves" % (m, n))
    if n == 1:
        return []
    k = split(n)
    if m < k:
        return path(alg, m, leaves[:k]) + [mth_hashes(alg, leaves[k:])]
    return path(alg, m - k, leaves[k:]) + [mth_hashes(alg, leaves[:k])]


def _subproof(alg, m, leaves, b):
    """RFC 6962 2.1.2 SUBPROOF(m, D[n], b)."""
    n = len(leaves)
    if m == n:
        return [] if b else [mth_hashes(alg, leaves)]
    k = split(n)
    if m <= k:
        return _subproof(alg, m, leaves[:k], b) + [mth_hashes(alg, leaves[k:])]
    return _subproof(alg, m - k, leaves[k:], False) + [mth_hashes(alg, leaves[:k])]


def proof(alg, m, leaves):
    """RFC 6962 2.1.2 PROOF(m, D[n]) = SUBPROOF(m, D[n], true), for 0 < m < n.
    m = 0 and m = n give the empty proof (RFC 9162: nothing to prove)."""
    n = len(leaves)
    if not 0 <= m <= n:
        raise ValueError("old size %d is not within 0..%d" % (m, n))
    if m == 0 or m == n:
        return []
    return _subproof(alg, m, leaves, True)


def verify_inclusion(alg, leaf, index, size, proof_path, root):
    """RFC 9162 2.1.3.2. True if proof_path binds leaf at index to root."""
    if index >= size:
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in proof_path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(alg, p, r)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(alg, r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(alg, first, first_hash, second, second_hash, proof_path):
    """RFC 9162 2.1.4.2, plus its trivial cases: an empty tree is a prefix of
    every tree, and a tree is consistent with itself (both with an empty proof)."""
    if first > second:
        return False
    if first == 0:
        return proof_path == []
    if first == second:
        return proof_path == [] and first_hash == second_hash
    if not proof_path:
        return False
    proof_path = list(proof_path)
    if first & (first - 1) == 0:
        proof_path = [first_hash] + proof_path
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof_path[0]
    for c in proof_path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(alg, c, fr)
            sr = node_hash(alg, c, sr)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(alg, sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0


# ---- C2SP tlog-proof@v1 ------------------------------------------------------

TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
MAX_HASHES = 63          # a tree of < 2^63 leaves
MAX_EXTRA = 65535        # iotguard's extra is one ledger frame, at most 65535 bytes
MAX_CHECKPOINT = 16384   # iotguard's bound on a checkpoint note
_DECIMAL = re.compile(r"(0|[1-9][0-9]*)\Z")


class ProofError(ValueError):
    pass


def b64decode_canonical(s, what):
    """Standard base64 (RFC 4648 section 4) with padding, in its one canonical spelling."""
    try:
        raw = base64.b64decode(s.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise ProofError("%s is not base64" % what)
    if base64.b64encode(raw).decode("ascii") != s:
        raise ProofError("%s is not canonical base64" % what)
    return raw


def format_tlog_proof(index, hashes, checkpoint, extra=None):
    """The tlog-proof text: header, optional extra, index, hashes, blank line, checkpoint."""
    lines = [TLOG_PROOF_HEADER]
    if extra is not None:
        lines.append("extra " + base64.b64encode(extra).decode("ascii"))
    lines.append("index %d" % index)
    lines += [base64.b64encode(h).decode("ascii") for h in hashes]
    return ("\n".join(lines) + "\n\n").encode("utf-8") + checkpoint


def parse_tlog_proof(text):
    """Parses tlog-proof bytes strictly. Returns (extra or None, index, [hashes], checkpoint bytes).

    Strict as iotguard is: no NUL, no CR before the checkpoint, canonical
    base64, no leading zeros, 32-byte hashes, at most 63 of them, a non-empty
    extra of at most 65535 bytes when present, and a checkpoint of at most
    16384 bytes whose first line is not empty and which ends with a newline.
    The checkpoint's signatures are the caller's to check."""
    if b"\x00" in text:
        raise ProofError("tlog-proof contains a NUL byte")
    sep = text.find(b"\n\n")
    if sep < 0:
        raise ProofError("tlog-proof has no empty line before the checkpoint")
    head, checkpoint = text[:sep + 1], text[sep + 2:]
    try:
        head = head.decode("ascii")
    except UnicodeDecodeError:
        raise ProofError("tlog-proof lines before the checkpoint must be ASCII")
    lines = head.split("\n")[:-1]
    if not lines or lines[0] != TLOG_PROOF_HEADER:
        raise ProofError("tlog-proof line 1 must be %r" % TLOG_PROOF_HEADER)
    i = 1
    extra = None
    if i < len(lines) and lines[i].startswith("extra "):
        data = lines[i][len("extra "):]
        if not data:
            raise ProofError("tlog-proof line %d: extra is empty" % (i + 1))
        extra = b64decode_canonical(data, "tlog-proof line %d (extra)" % (i + 1))
        if len(extra) > MAX_EXTRA:
            raise ProofError("tlog-proof line %d: extra holds %d bytes, more than %d" % (i + 1, len(extra), MAX_EXTRA))
        i += 1
    if i >= len(lines) or not lines[i].startswith("index "):
        raise ProofError("tlog-proof line %d must be 'index N'" % (i + 1))
    num = lines[i][len("index "):]
    if not _DECIMAL.match(num) or int(num) >= 1 << 64:
        raise ProofError("tlog-proof line %d: index is not a decimal without leading zeros" % (i + 1))
    index = int(num)
    i += 1
    hashes = []
    for j in range(i, len(lines)):
        if len(hashes) == MAX_HASHES:
            raise ProofError("tlog-proof has more than %d proof hashes" % MAX_HASHES)
        h = b64decode_canonical(lines[j], "tlog-proof line %d (hash)" % (j + 1))
        if len(h) != 32:
            raise ProofError("tlog-proof line %d: a hash is 32 bytes, not %d" % (j + 1, len(h)))
        hashes.append(h)
    if len(checkpoint) > MAX_CHECKPOINT:
        raise ProofError("tlog-proof checkpoint is %d bytes, more than %d" % (len(checkpoint), MAX_CHECKPOINT))
    if not checkpoint or not checkpoint.endswith(b"\n") or checkpoint.startswith(b"\n"):
        raise ProofError("tlog-proof checkpoint is missing, starts with an empty line or does not end with a newline")
    return extra, index, hashes, checkpoint


def parse_checkpoint_body(checkpoint):
    """Origin, size and root of a checkpoint (C2SP tlog-checkpoint); signatures not checked."""
    lines = checkpoint.split(b"\n")
    if len(lines) < 4:
        raise ProofError("checkpoint has fewer than 3 lines")
    origin = lines[0].decode("utf-8")
    if not _DECIMAL.match(lines[1].decode("ascii", "replace")):
        raise ProofError("checkpoint size is not a decimal without leading zeros")
    root = b64decode_canonical(lines[2].decode("ascii", "replace"), "checkpoint root")
    if len(root) != 32:
        raise ProofError("checkpoint root is not 32 bytes")
    return origin, int(lines[1]), root


# ---- the vectors pinned in the C tests and docs/LEDGER.md section 13 -----------

# RFC 6962's reference inputs (the entries of its test trees, as hex).
REFERENCE_ENTRIES = [bytes.fromhex(x) for x in [
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]]

INCLUSION_VECTORS = [(0, 1), (2, 5), (0, 8), (5, 8), (7, 8), (3, 7)]
CONSISTENCY_VECTORS = [(1, 8), (3, 7), (4, 8), (6, 8), (2, 5), (7, 8)]
# Larger trees: entry i is the 4-byte big-endian number i, i = 0..69.
LARGE_INCLUSION_VECTORS = [(37, 70), (69, 70)]
LARGE_CONSISTENCY_VECTORS = [(23, 70), (64, 70)]


def reference_leaves(alg):
    return [leaf_hash(alg, d) for d in REFERENCE_ENTRIES]


def counter_leaves(alg, n):
    return [leaf_hash(alg, i.to_bytes(4, "big")) for i in range(n)]


def _signed_note_line(body, name, seed):
    """A signed-note (C2SP signed-note.md) Ed25519 signature line over body:
    key ID = SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    import nacl.signing
    sk = nacl.signing.SigningKey(seed)
    pk = bytes(sk.verify_key)
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + pk).digest()[:4]
    sig = sk.sign(body).signature
    return "\u2014 %s %s\n" % (name, base64.b64encode(key_id + sig).decode("ascii"))


def example_tlog_proof():
    """docs/LEDGER.md section 13's example: entry 2 ("10") of the tree of the
    8 reference entries, as a tlog-proof whose checkpoint (origin
    iotguard/demo) is signed with the docs' cluster-head seed 00..1f."""
    leaves = reference_leaves(SHA256)
    body = "iotguard/demo\n8\n%s\n" % base64.b64encode(mth_hashes(SHA256, leaves)).decode("ascii")
    checkpoint = (body + "\n" + _signed_note_line(body.encode(), "iotguard/demo", bytes(range(32)))).encode()
    return format_tlog_proof(2, path(SHA256, 2, leaves), checkpoint, extra=REFERENCE_ENTRIES[2])


def _main():
    for alg in (SHA256, BLAKE2B):
        leaves = reference_leaves(alg)
        print("# %s" % alg)
        for n in range(len(leaves) + 1):
            print("root %d %s" % (n, mth_hashes(alg, leaves[:n]).hex()))
        for i, n in INCLUSION_VECTORS:
            p = path(alg, i, leaves[:n])
            print("inclusion %d %d %s" % (i, n, " ".join(h.hex() for h in p) or "-"))
        for m, n in CONSISTENCY_VECTORS:
            p = proof(alg, m, leaves[:n])
            print("consistency %d %d %s" % (m, n, " ".join(h.hex() for h in p) or "-"))
        big = counter_leaves(alg, 70)
        print("# %s, entry i = be32(i)" % alg)
        print("root 70 %s" % mth_hashes(alg, big).hex())
        for i, n in LARGE_INCLUSION_VECTORS:
            print("inclusion %d %d %s" % (i, n, " ".join(h.hex() for h in path(alg, i, big[:n]))))
        for m, n in LARGE_CONSISTENCY_VECTORS:
            print("consistency %d %d %s" % (m, n, " ".join(h.hex() for h in proof(alg, m, big[:n]))))
    print("# example tlog-proof")
    sys.stdout.write(example_tlog_proof().decode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
