#!/usr/bin/python3
"""Format-2 test vectors of docs/LEDGER.md section 12, computed from the text.

Why this exists: the ledger's byte layouts are the one thing iotguard
invents, so its vectors must come from an implementation that did not share
code with the C one. This builds the three records of section 12 (genesis,
enroll, revoke) in ledger format 2 from the layout tables alone, with
Python's own hashlib (BLAKE2b record hashes, SHA-256 tree), a CRC-32C
written from its definition (section 4) and PyNaCl for the signature, and
prints what the document must contain. tests/tlog/test_ledger_vectors.py
checks that docs/LEDGER.md holds exactly this output; the C unit tests pin
the same bytes (test_record.c, test_ledger.c).

    /usr/bin/python3 tests/tlog/ledger_vectors.py
"""
import base64
import hashlib
import struct

import nacl.signing


def crc32c(data):
    # Reflected CRC-32C, polynomial 0x82F63B78, init and final xor 0xFFFFFFFF.
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def tlv(tag, value):
    return struct.pack(">BH", tag, len(value)) + value


def frame(index, ts, rtype, prev, body):
    head = b"IGR1" + struct.pack(">IQQHH", 64 + len(body), index, ts, rtype, 0) + prev
    data = head + body
    return data + struct.pack(">I", crc32c(data))


def record_hash(fr):
    return hashlib.blake2b(b"\x00" + fr[:-4], digest_size=32).digest()


def leaf(fr):
    return hashlib.sha256(b"\x00" + fr).digest()


def node(l, r):
    return hashlib.sha256(b"\x01" + l + r).digest()


def mth(leaves):
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node(mth(leaves[:k]), mth(leaves[k:]))


def vectors():
    ch = nacl.signing.SigningKey(bytes(range(32)))
    dev = nacl.signing.SigningKey(bytes(range(32, 64)))
    ch_pk = bytes(ch.verify_key)
    dev_pk = bytes(dev.verify_key)
    t0 = 1700000000000
    g = frame(0, t0, 1, bytes(32), tlv(1, b"demo") + tlv(2, ch_pk) + tlv(3, struct.pack(">H", 2)))
    e = frame(1, t0 + 1, 2, record_hash(g),
              tlv(1, b"dev1") + tlv(2, b"\x01") + tlv(3, dev_pk) + tlv(4, b"offline:root"))
    r = frame(2, t0 + 2, 3, record_hash(e), tlv(1, b"dev1") + tlv(2, b"lost") + tlv(3, b"offline:root"))
    frames = [g, e, r]
    root = mth([leaf(f) for f in frames])
    body = "iotguard/demo\n3\n%s\n" % base64.b64encode(root).decode()
    key_id = hashlib.sha256(b"iotguard/demo\n\x01" + ch_pk).digest()[:4]
    sig = ch.sign(body.encode()).signature
    checkpoint = body + "\n\u2014 iotguard/demo %s\n" % base64.b64encode(key_id + sig).decode()
    return frames, root, checkpoint


def doc_text():
    """The part of docs/LEDGER.md section 12 that shows these vectors."""
    frames, root, checkpoint = vectors()
    names = ["genesis, version 2", "enroll", "revoke"]
    out = []
    for i, f in enumerate(frames):
        out.append("Record %d, %s, %d bytes:\n\n```\n%s\n```\n\n" % (i, names[i], len(f), f.hex()))
        out.append("Record hash `%s`;\nMerkle leaf SHA-256(0x00 || frame) `%s`.\n\n"
                   % (record_hash(f).hex(), leaf(f).hex()))
    out.append("Merkle root (SHA-256, `N(N(L0, L1), L2)`):\n`%s`\n(base64 `%s`). "
               "The checkpoint of size 3, signed with the same CH key:\n\n```\n%s```\n"
               % (root.hex(), base64.b64encode(root).decode(), checkpoint))
    return "".join(out)


def main():
    print(doc_text(), end="")


if __name__ == "__main__":
    main()
