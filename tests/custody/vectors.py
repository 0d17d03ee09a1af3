#!/usr/bin/python3
"""vectors.py: prints the custody test vectors (docs/PROTOCOL.md, "Custody:
byte layouts and test vectors"), computed with custody_ref.py alone.

Why this exists: the C unit tests (tests/unit/test_vss.c, test_custody.c)
and the docs pin these values; they are produced here, by code that does not
share the C implementation, from inputs anyone can re-derive:
  scalar(label) = int.from_bytes(SHA-512(label), "little") mod l
  bytes(label, n) = SHA-256(label)[:n]
with labels "iotguard custody vector <name>". Every nonce is fixed so boxes and
files are byte-for-byte reproducible (real code draws them at random).

Usage: /usr/bin/python3 tests/custody/vectors.py   (prints "name = value" lines)
"""
import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import custody_ref as cr  # noqa: E402
import nacl.bindings as nb  # noqa: E402

PREFIX = b"iotguard custody vector "


def scalar(label):
    return int.from_bytes(hashlib.sha512(PREFIX + label.encode()).digest(), "little") % cr.L


def fixed(label, n):
    return hashlib.sha256(PREFIX + label.encode()).digest()[:n]


def vectors():
    """Ordered (name, value) pairs; value is bytes (printed as hex) or int."""
    v = []
    # Deal A: epoch 7, 3-of-5.
    coeffs = [scalar("coeff %d" % j) for j in range(3)]
    shares, comms = cr.deal(coeffs, 5)
    S = cr.sc_enc(coeffs[0])
    for j, a in enumerate(coeffs):
        v.append(("deal_a.coeff%d" % j, cr.sc_enc(a)))
    for i, s in enumerate(shares, 1):
        v.append(("deal_a.share%d" % i, s))
    for j, c in enumerate(comms):
        v.append(("deal_a.commitment%d" % j, c))
    v.append(("deal_a.commitments_hash", cr.commitments_hash(7, comms)))
    for idx in ((1, 3, 5), (2, 4, 5)):
        lam = cr.lagrange_at_zero(idx)
        name = "combine_%d%d%d" % idx
        for i in idx:
            v.append(("%s.lambda%d" % (name, i), cr.sc_enc(lam[i])))
        v.append(("%s.secret" % name, cr.combine(list(idx), [shares[i - 1] for i in idx])))
    # Deal B: the rotation of the same S, epoch 8, 2-of-5.
    coeffs_b = [coeffs[0], scalar("rotate coeff 1")]
    shares_b, comms_b = cr.deal(coeffs_b, 5)
    v.append(("deal_b.coeff1", cr.sc_enc(coeffs_b[1])))
    v.append(("deal_b.share2", shares_b[1]))
    for j, c in enumerate(comms_b):
        v.append(("deal_b.commitment%d" % j, c))
    # The seal key and ch.key.sealed.
    v.append(("seal_key", cr.seal_key(S)))
    ch_seed = fixed("ch seed", 32)
    ch_pk, ch_sk = nb.crypto_sign_seed_keypair(ch_seed)
    v.append(("ch.seed", ch_seed))
    v.append(("ch.pk", ch_pk))
    seal_nonce = fixed("seal nonce", 24)
    v.append(("sealed.nonce", seal_nonce))
    v.append(("sealed.file", cr.seal(S, ch_pk, cr.keyfile_bytes(ch_seed), seal_nonce)))
    # Holder 2 ("dev-02") and its deal box from the cluster head.
    h_seed = fixed("holder 2 seed", 32)
    h_pk, h_sk = nb.crypto_sign_seed_keypair(h_seed)
    v.append(("holder2.seed", h_seed))
    v.append(("holder2.pk", h_pk))
    bk = cr.box_key(ch_sk, h_pk)
    assert bk == cr.box_key(h_sk, ch_pk)
    v.append(("deal_box.box_key", bk))
    deal_nonce = fixed("deal nonce", 24)
    deal_pt = cr.deal_plain(7, 2, 3, 5, shares[1], cr.commitments_hash(7, comms))
    v.append(("deal_box.nonce", deal_nonce))
    v.append(("deal_box.plaintext", deal_pt))
    v.append(("deal_box.box", cr.deal_seal(bk, deal_nonce, deal_pt)))
    # Holder 2 releases its epoch-7 share to a requester.
    r_xsk = fixed("requester xsk", 32)
    v.append(("release_box.requester_xsk", r_xsk))
    v.append(("release_box.requester_xpk", nb.crypto_scalarmult_base(r_xsk)))
    request = fixed("request", 16)
    rel_nonce = fixed("release nonce", 24)
    rel_pt = cr.release_plain(request, 7, 2, shares[1])
    v.append(("release_box.request", request))
    v.append(("release_box.nonce", rel_nonce))
    v.append(("release_box.plaintext", rel_pt))
    v.append(("release_box.box", cr.release_seal(rel_pt, rel_nonce, nb.crypto_scalarmult_base(r_xsk), h_sk)))
    # Holder 2's KEYFILE.shares: epoch 7 active, epoch 8 being dealt.
    entries = [
        dict(ch_pk=ch_pk, epoch=7, index=2, k=3, n=5, active=True, share=shares[1], commitments=comms),
        dict(ch_pk=ch_pk, epoch=8, index=2, k=2, n=5, active=False, share=shares_b[1], commitments=comms_b),
    ]
    store_nonce = fixed("store nonce", 24)
    v.append(("store.id", "dev-02"))
    v.append(("store.key", cr.store_key(h_seed)))
    v.append(("store.nonce", store_nonce))
    v.append(("store.plaintext", cr.store_plain(entries)))
    v.append(("store.file", cr.store_encode(entries, h_seed, "dev-02", store_nonce)))
    return v


def fmt(value):
    return value.hex() if isinstance(value, bytes) else str(value)


if __name__ == "__main__":
    for name, value in vectors():
        print("%s = %s" % (name, fmt(value)))
