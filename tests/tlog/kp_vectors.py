#!/usr/bin/python3
"""Key-ring record vectors of docs/LEDGER.md section 12, computed from the text.

Why this exists: the key-ring records (sections 7.17-7.19) are new byte
layouts, so, like the custody vectors (custody_vectors.py), their vectors come
from an implementation that shares no code with the C one: the TLV tables of
the document and struct.pack. The values in them are real: the ring seed, the
ring hash and the ring ids follow the derivations of the key-ring design
(docs/PROTOCOL.md "Key rings: byte layouts and test vectors": HKDF-SHA256 of
RFC 5869, HMAC-SHA256 ring ids, the SHA-256 ring hash), written here from that
text with hashlib and hmac alone, for the cluster-head seed 00..1f, epoch 1,
P = 1000, m = 30, q = 1 and the device `dev1`. tests/tlog/test_kp_vectors.py
checks that docs/LEDGER.md holds exactly this output; tests/unit/
test_kp_state.c pins the same bytes against the C encoder and applies them
to the state, whose kp_compromised rule recomputes the ring ids in C.

    /usr/bin/python3 tests/tlog/kp_vectors.py
"""
import hashlib
import hmac
import struct
import textwrap

CH_SEED = bytes(range(32))
EPOCH, POOL, RING, Q = 1, 1000, 30, 1
DEVICE = "dev1"


def hkdf(ikm, info, length, salt=b""):
    """RFC 5869 with SHA-256; an absent salt is HashLen zero bytes."""
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


def pool_secret(ch_seed, epoch):
    return hkdf(ch_seed, b"iotguard kp pool secret v1" + struct.pack(">Q", epoch), 32)


def ring_seed(secret):
    return hkdf(secret, b"iotguard kp ring seed v1", 32)


def pool_key(secret, i):
    return hkdf(secret, b"iotguard kp pool v1" + struct.pack(">I", i), 32)


def ring_ids(seed, device, pool, ring):
    """A.1: HMAC blocks of eight big-endian words, rejection-sampled mod P."""
    limit = 2**32 - (2**32 % pool)
    chosen, j = [], 0
    while len(chosen) < ring:
        block = hmac.new(seed, b"iotguard kp ring ids v1\x00" + device.encode() + b"\x00"
                         + struct.pack(">I", j), hashlib.sha256).digest()
        for (x,) in struct.iter_unpack(">I", block):
            if len(chosen) == ring:
                break
            if x >= limit:
                continue
            c = x % pool
            if c not in chosen:
                chosen.append(c)
        j += 1
    return sorted(chosen)


def ring_hash(epoch, device, ids, keys):
    """A.2."""
    h = hashlib.sha256(b"iotguard kp ring v1\x00" + struct.pack(">Q", epoch)
                       + struct.pack(">B", len(device)) + device.encode() + struct.pack(">I", len(ids)))
    for i, k in zip(ids, keys):
        h.update(struct.pack(">I", i) + k)
    return h.digest()


def tlv(tag, value):
    return struct.pack(">BH", tag, len(value)) + value


def values():
    """The seed, ring ids and ring hash the bodies carry."""
    secret = pool_secret(CH_SEED, EPOCH)
    seed = ring_seed(secret)
    ids = ring_ids(seed, DEVICE, POOL, RING)
    rh = ring_hash(EPOCH, DEVICE, ids, [pool_key(secret, i) for i in ids])
    return seed, ids, rh


def bodies():
    seed, ids, rh = values()
    epoch = (tlv(1, struct.pack(">Q", EPOCH)) + tlv(2, struct.pack(">I", POOL)) + tlv(3, struct.pack(">I", RING))
             + tlv(4, struct.pack(">B", Q)) + tlv(5, seed) + tlv(6, b"initial") + tlv(7, b"demo"))
    ring = tlv(1, struct.pack(">Q", EPOCH)) + tlv(2, DEVICE.encode()) + tlv(3, rh)
    comp = (tlv(1, struct.pack(">Q", EPOCH)) + tlv(2, DEVICE.encode())
            + tlv(3, b"".join(struct.pack(">I", i) for i in ids)))
    return [
        ("kp_epoch (7.17) \u2014 epoch 1, pool 1000, ring 30, q 1, seed = the ring seed\n"
         "of epoch 1 for the CH seed above, reason `initial`, by `demo`", epoch),
        ("kp_ring (7.18) \u2014 epoch 1, id `dev1`, ring_hash = the ring hash of\n"
         "`dev1` in that epoch", ring),
        ("kp_compromised (7.19) \u2014 epoch 1, id `dev1`, ids = its 30 ring ids", comp),
    ]


def doc_text():
    """The part of docs/LEDGER.md section 12 that shows these vectors."""
    seed, ids, rh = values()
    listed = textwrap.fill(", ".join(str(i) for i in ids) + ".", 72)
    out = ["The ring seed is\n`%s`.\n`dev1`'s ring ids:\n%s\nIts ring hash is\n`%s`.\n\n"
           % (seed.hex(), listed, rh.hex())]
    for what, body in bodies():
        out.append("%s (%d bytes):\n\n```\n%s\n```\n\n" % (what, len(body), body.hex()))
    return "".join(out)


def main():
    print(doc_text(), end="")


if __name__ == "__main__":
    main()
