#!/usr/bin/python3
"""vectors.py: prints the key-ring test vectors (docs/PROTOCOL.md, "Key rings:
byte layouts and test vectors"), computed with kp_ref.py alone.

Why this exists: the C unit tests (tests/unit/test_kp.c) and the docs pin these
values; they are produced here, by code that shares nothing with lib/kp/, from
inputs anyone can re-derive: byte runs written as "xx..yy" (e.g. 00..1f is the
32 bytes 0x00, 0x01, ..., 0x1f). Every nonce is fixed so messages, boxes and
files are byte-for-byte reproducible (real code draws them at random).

Inputs: cluster "demo"; cluster-head Ed25519 seed 00..1f; device "a"'s Ed25519
seed 20..3f; pool epoch 1.
- "ring30": P = 1000, m = 30, q = 1 (the ring ids of "a" and "b", their
  intersection -- empty --, a's ring hash, a's key_ring plaintext and box).
- "ring60": P = 1000, m = 60, q = 1: the same pool and seed with rings of 60,
  because "a" and "b" share no id at m = 30; the pairwise keys, hellos,
  session, data messages and path messages use it.
- The revoked statement: ring30 parameters, serial 3, device "d", ids = d's ring.
- KEYFILE.ring: device "a", P = 1000, m = 4, q = 1, revoked serial 3 with
  d's m = 4 ring compromised, nonce e0..f7.

Usage: /usr/bin/python3 tests/kp/vectors.py   (prints "name = value" lines;
byte strings as lowercase hex, id lists as [i,j,...] in decimal)
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kp_ref as kr  # noqa: E402
import nacl.bindings as nb  # noqa: E402


def run(a, b):
    """The bytes a, a+1, ..., b."""
    return bytes(range(a, b + 1))


CLUSTER = "demo"
CH_SEED = run(0x00, 0x1f)
DEV_SEED = run(0x20, 0x3f)
EPOCH = 1
POOL = 1000
NA = run(0x40, 0x5f)
NB = run(0x60, 0x7f)
KR_NONCE = run(0x60, 0x77)
PATH_NONCE = run(0x80, 0x97)
PATH_KEY = run(0xa0, 0xbf)
PATH_ID = run(0xc0, 0xcf)
REQ_ID = run(0xd0, 0xdf)
FILE_NONCE = run(0xe0, 0xf7)
REVOKED_SERIAL = 3


def topic(to, frm):
    return "iotguard/%s/m2m/%s/%s" % (CLUSTER, to, frm)


def vectors():
    """Ordered (name, value) pairs; value is bytes (hex), int, str or list of ints."""
    v = []
    ps = kr.pool_secret(CH_SEED, EPOCH)
    seed = kr.ring_seed(ps)
    v += [("pool_secret", ps), ("ring_seed", seed), ("pool_key.0", kr.pool_key(ps, 0)),
          ("pool_key.1", kr.pool_key(ps, 1)), ("pool_key.16777215", kr.pool_key(ps, 16777215))]

    # ring30: the rings of a and b, their (empty) intersection, a's ring hash.
    v.append(("ring.a.block0", kr.ring_block(seed, "a", 0)))
    r30 = {d: kr.ring_ids(seed, d, POOL, 30) for d in ("a", "b", "d")}
    v += [("ring30.a", r30["a"]), ("ring30.b", r30["b"]), ("ring30.ab", kr.shared(r30["a"], r30["b"]))]
    keys_a30 = kr.ring_keys(ps, r30["a"])
    v.append(("ring30.a.hash", kr.ring_hash(EPOCH, "a", r30["a"], keys_a30)))

    # ring60: pairwise keys between a, b and c.
    r60 = {d: kr.ring_ids(seed, d, POOL, 60) for d in ("a", "b", "c")}
    v += [("ring60.a", r60["a"]), ("ring60.b", r60["b"]), ("ring60.c", r60["c"])]
    pk = {}
    for x, y in (("a", "b"), ("a", "c"), ("b", "c")):
        ids = kr.shared(r60[x], r60[y])
        pk[x + y] = (ids, kr.pair_key(EPOCH, x, y, ids, kr.ring_keys(ps, ids)))
        v += [("ring60.%s%s" % (x, y), ids), ("pair.%s%s" % (x, y), pk[x + y][1])]
    ids_ab, k_ab = pk["ab"]

    # Hello a -> b (source 0, direct) and its reply b -> a; the session; one data message each way.
    t_ba, t_ab = topic("b", "a"), topic("a", "b")
    v += [("topic.ba", t_ba), ("topic.ab", t_ab)]
    h1 = kr.hello_build(1, EPOCH, k_ab, t_ba, NA, ids=ids_ab)
    h2 = kr.hello_build(2, EPOCH, k_ab, t_ab, NA, NB, ids=ids_ab)
    v += [("hello.direct.kind1", h1), ("hello.direct.kind2", h2)]
    skey, skid = kr.session(k_ab, NA, NB, "a", "b")
    v += [("session.direct.key", skey), ("session.direct.key_id", skid)]
    v.append(("data.direct.dir0", kr.data_seal(skey, skid, 0, 1, t_ba, b"hello")))
    v.append(("data.direct.dir1", kr.data_seal(skey, skid, 1, 1, t_ab, b"hello")))

    # Path key: a asks c for a path to b; c sends the path key to a and to b; a and b say hello under it.
    ids_ac, k_ac = pk["ac"]
    ids_bc, k_bc = pk["bc"]
    v.append(("path.request", kr.path_request_build(EPOCH, ids_ac, "b", REQ_ID, k_ac, topic("c", "a"))))
    v.append(("path.key_to_a", kr.path_key_build(EPOCH, ids_ac, "a", "b", REQ_ID, PATH_ID, PATH_NONCE, k_ac,
                                                 topic("a", "c"), PATH_KEY)))
    v.append(("path.key_to_b", kr.path_key_build(EPOCH, ids_bc, "a", "b", REQ_ID, PATH_ID, PATH_NONCE, k_bc,
                                                 topic("b", "c"), PATH_KEY)))
    v.append(("hello.path.kind1", kr.hello_build(1, EPOCH, PATH_KEY, t_ba, NA, path_id=PATH_ID, via="c")))
    v.append(("hello.path.kind2", kr.hello_build(2, EPOCH, PATH_KEY, t_ab, NA, NB, path_id=PATH_ID, via="c")))
    pkey, pkid = kr.session(PATH_KEY, NA, NB, "a", "b")
    v += [("session.path.key", pkey), ("session.path.key_id", pkid)]

    # The revoked statement.
    ch_pk, ch_sk = nb.crypto_sign_seed_keypair(CH_SEED)
    fields = dict(cluster=CLUSTER, epoch=EPOCH, pool=POOL, ring=30, q=1, seed=seed, serial=REVOKED_SERIAL,
                  ids=r30["d"], devices=["d"])
    v += [("ch.pk", ch_pk), ("ring30.d", r30["d"]), ("revoked.bytes", kr.revoked_bytes(**fields)),
          ("revoked.sig", kr.revoked_sign(ch_sk, **fields)),
          ("revoked.json", kr.revoked_json(ch_sk, **fields).decode())]

    # a's key_ring (ring30) and its box under the session-key box key.
    dev_pk, dev_sk = nb.crypto_sign_seed_keypair(DEV_SEED)
    bk = kr.box_key(ch_sk, dev_pk)
    pt = kr.ring_plain(EPOCH, POOL, 30, 1, seed, "a", r30["a"], keys_a30)
    box = kr.ring_box(bk, KR_NONCE, pt)
    v += [("dev.pk", dev_pk), ("box_key", bk), ("key_ring.plain", pt), ("key_ring.box", box),
          ("key_ring.box_b64", kr.b64(box))]

    # KEYFILE.ring of a small ring.
    ids4 = kr.ring_ids(seed, "a", POOL, 4)
    bad4 = kr.ring_ids(seed, "d", POOL, 4)
    fplain = kr.file_plain(CLUSTER, "a", EPOCH, POOL, 4, 1, seed, ids4, kr.ring_keys(ps, ids4), REVOKED_SERIAL,
                           bad4, ["d"])
    fkey = kr.file_key(DEV_SEED)
    v += [("ring4.a", ids4), ("ring4.d", bad4), ("file.key", fkey), ("file.plain", fplain),
          ("file.bytes", kr.file_seal(fkey, dev_pk, fplain, FILE_NONCE))]
    return v


def fmt(value):
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return "[" + ",".join(str(i) for i in value) + "]"
    return str(value)


if __name__ == "__main__":
    for name, value in vectors():
        print("%s = %s" % (name, fmt(value)))
