#!/usr/bin/python3
"""selftest.py: checks the independent custody implementation (custody_ref.py)
and that the vectors pinned in docs/PROTOCOL.md and the C unit tests are the
ones it computes.

Why this exists: pinned vectors are only worth something if the code that
made them is right and the copies have not drifted. So: (1) the reference
implementation is checked against published answers it did not make (RFC 5869
HKDF, RFC 9496 ristretto255 base point) and against its own algebra (any k of
n shares rebuild S, k-1 do not, tampering fails); (2) every `name = value` in
docs/PROTOCOL.md, "Custody test vectors", and every V_* in
tests/unit/test_vss.c and test_custody.c must equal what vectors.py computes.

Usage: /usr/bin/python3 tests/custody/selftest.py   (exit status 0 = all good)
"""
import itertools
import os
import random
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import custody_ref as cr  # noqa: E402
import nacl.bindings as nb  # noqa: E402
import nacl.exceptions  # noqa: E402
import vectors  # noqa: E402

failures = []
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def refused(fn, what):
    try:
        fn()
    except (ValueError, cr.GroupError, nacl.exceptions.CryptoError):
        check(True, what)
        return
    check(False, what + " (accepted)")


def published_answers():
    # RFC 5869 A.1 (HKDF-SHA256, with salt) and A.3 (empty salt and info).
    ikm = bytes([0x0b] * 22)
    check(cr.hkdf(ikm, bytes(range(0xf0, 0xfa)), 42, salt=bytes(range(13))).hex() ==
          "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865", "RFC 5869 A.1")
    check(cr.hkdf(ikm, b"", 42).hex() ==
          "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8", "RFC 5869 A.3")
    # RFC 9496 A.1: multiples of the generator.
    check(cr.base_mul(1).hex() == "e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76", "B = 1·G")
    check(cr.base_mul(2).hex() == "6a493210f7499cd17fecb510ae0cea23a110e8d5b901f8acadd3095c73a3b919", "2·G")
    check(cr.point_add(cr.base_mul(cr.L - 1), cr.base_mul(1)) == bytes(32), "(l-1)·G + G is the identity")
    refused(lambda: cr.base_mul(0), "0·G is refused (identity)")


def algebra():
    rng = random.Random(9)
    for k, n in ((2, 2), (3, 5), (5, 9)):
        coeffs = [rng.randrange(1, cr.L) for _ in range(k)]
        shares, comms = cr.deal(coeffs, n)
        S = cr.sc_enc(coeffs[0])
        for i, s in enumerate(shares, 1):
            check(cr.verify(s, i, comms), "share %d of %d-of-%d verifies" % (i, k, n))
        for m in range(1, n + 1):
            for idx in itertools.combinations(range(1, n + 1), m):
                got = cr.combine(list(idx), [shares[i - 1] for i in idx])
                if m >= k:
                    check(got == S, "%s rebuilds S (%d-of-%d)" % (idx, k, n))
                else:
                    check(got != S, "%s does not rebuild S (%d-of-%d)" % (idx, k, n))
        bad = bytearray(shares[0])
        bad[3] ^= 1
        check(not cr.verify(bytes(bad), 1, comms), "tampered share fails (%d-of-%d)" % (k, n))
        check(not cr.verify(shares[0], 2, comms), "share under another index fails")
        bc = list(comms)
        bc[-1] = cr.point_add(bc[-1], comms[0])
        check(not cr.verify(shares[0], 1, bc), "tampered commitment fails")
        check(not cr.verify(bytes(32), 1, comms), "zero share fails")
    refused(lambda: cr.combine([1, 1], [bytes(32), bytes(32)]), "repeated index refused")
    refused(lambda: cr.combine([0, 1], [bytes(32), bytes(32)]), "zero index refused")
    refused(lambda: cr.deal([1, 0], 3), "zero coefficient refused")
    refused(lambda: cr.sc_dec(cr.L.to_bytes(32, "little")), "non-canonical scalar refused")


def boxes_and_files():
    rng = random.Random(5)
    rb = lambda n: bytes(rng.randrange(256) for _ in range(n))  # noqa: E731
    S = cr.sc_enc(cr.secret_from(b"pool", rb(32)))
    ch_pk, ch_sk = nb.crypto_sign_seed_keypair(rb(32))
    plain = cr.keyfile_bytes(ch_sk[:32])
    sealed = cr.seal(S, ch_pk, plain, rb(24))
    check(cr.unseal(S, ch_pk, sealed) == plain, "seal/unseal round trip")
    for i in range(len(sealed)):
        b = bytearray(sealed)
        b[i] ^= 0x10
        refused(lambda: cr.unseal(S, ch_pk, bytes(b)), "sealed byte %d flipped" % i)
    other_pk, other_sk = nb.crypto_sign_seed_keypair(rb(32))
    refused(lambda: cr.unseal(S, ch_pk, cr.seal(S, ch_pk, cr.keyfile_bytes(other_sk[:32]), rb(24))),
            "unseal refuses a key that is not the genesis key")
    refused(lambda: cr.unseal(S, other_pk, sealed), "unseal refuses another ch_pk")
    h_pk, h_sk = nb.crypto_sign_seed_keypair(rb(32))
    bk = cr.box_key(ch_sk, h_pk)
    check(bk == cr.box_key(h_sk, ch_pk), "box key is symmetric")
    pt = cr.deal_plain(3, 4, 3, 5, rb(32), rb(32))
    nonce = rb(24)
    box = cr.deal_seal(bk, nonce, pt)
    check(len(box) == 95 and cr.deal_open(bk, nonce, box)["index"] == 4, "deal box round trip")
    for i in range(len(box)):
        b = bytearray(box)
        b[i] ^= 1
        refused(lambda: cr.deal_open(bk, nonce, bytes(b)), "deal box byte %d flipped" % i)
    r_xpk, r_xsk = nb.crypto_box_keypair()
    rpt = cr.release_plain(rb(16), 3, 4, rb(32))
    rbox = cr.release_seal(rpt, nonce, r_xpk, h_sk)
    check(len(rbox) == 77 and cr.release_open(rbox, nonce, h_pk, r_xsk)["epoch"] == 3, "release round trip")
    refused(lambda: cr.release_open(rbox, nonce, ch_pk, r_xsk), "release claimed by another holder refused")
    coeffs = [rng.randrange(1, cr.L) for _ in range(4)]
    shares, comms = cr.deal(coeffs, 6)
    entries = [dict(ch_pk=ch_pk, epoch=5, index=6, k=4, n=6, active=True, share=shares[5], commitments=comms)]
    f = cr.store_encode(entries, h_sk[:32], "dev-9", rb(24))
    check(cr.store_decode(f, h_sk[:32], "dev-9") == entries, "store round trip")
    check(len(f) == 8 + 24 + 1 + 76 + 4 * 32 + 16, "store size")
    refused(lambda: cr.store_decode(f, h_sk[:32], "dev-8"), "store under another id refused")
    for i in range(0, len(f), 3):
        b = bytearray(f)
        b[i] ^= 2
        refused(lambda: cr.store_decode(bytes(b), h_sk[:32], "dev-9"), "store byte %d flipped" % i)


def parse_doc():
    text = open(os.path.join(ROOT, "docs", "PROTOCOL.md"), encoding="utf-8").read()
    at = text.find("### Custody test vectors")
    if at < 0:
        return None
    body = text[at:]
    start = body.find("```\n")
    end = body.find("```", start + 4)
    out = {}
    for line in body[start + 4:end].splitlines():
        m = re.fullmatch(r"([a-z0-9_.]+) = (\S+)", line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


def parse_c(path):
    text = open(path, encoding="utf-8").read()
    out = {}
    for m in re.finditer(r"#define (V_[A-Z0-9_]+)((?:\s*\\?\s*\"[^\"]*\")+)", text):
        out[m.group(1)] = "".join(re.findall(r"\"([^\"]*)\"", m.group(2)))
    return out


def pinned():
    want = [(name, vectors.fmt(v)) for name, v in vectors.vectors()]
    doc = parse_doc()
    check(doc is not None, "docs/PROTOCOL.md has a 'Custody test vectors' section")
    doc = doc or {}
    check(set(doc) == {n for n, _ in want}, "docs list exactly the vectors vectors.py makes")
    cdefs = {}
    for f in ("test_vss.c", "test_custody.c"):
        for k, v in parse_c(os.path.join(ROOT, "tests", "unit", f)).items():
            check(cdefs.get(k, v) == v, "%s pinned twice with different values" % k)
            cdefs[k] = v
    for name, value in want:
        check(doc.get(name) == value, "docs/PROTOCOL.md %s" % name)
        cname = "V_" + name.upper().replace(".", "_")
        check(cdefs.get(cname) == value, "C unit tests %s" % cname)
    check(len(cdefs) == len(want), "the C tests pin no value vectors.py does not make")


if __name__ == "__main__":
    published_answers()
    algebra()
    boxes_and_files()
    pinned()
    print("custody selftest: %d checks, %d failed" % (checks, len(failures)))
    sys.exit(1 if failures else 0)
