#!/usr/bin/python3
"""approve_vectors.py: the admin unseal mode's two signed statements
(docs/PROTOCOL.md, "Custody: admin approval"), built from the documented
layout with PyNaCl alone, and the check that docs/PROTOCOL.md ("Custody
approval test vectors") and tests/unit/test_custody_approve.c pin exactly
these values.

Why this exists: the cluster head, the holder and `iotguard custody approve`
must build the statements byte for byte alike; values computed here, without
the C code, catch a C builder that drifted from the text.

Inputs: fixed(label, n) = SHA-256("iotguard custody vector " + label)[:n].
Ed25519 signatures are deterministic, so the signatures are vectors too.

Usage: /usr/bin/python3 tests/custody/approve_vectors.py          (prints name = value)
       /usr/bin/python3 tests/custody/approve_vectors.py --check  (exit 0 = docs and C agree)
"""
import hashlib
import os
import re
import sys

import nacl.signing

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PREFIX = b"iotguard custody vector "
CLUSTER = b"demo"


def fixed(label, n):
    return hashlib.sha256(PREFIX + label.encode()).digest()[:n]


def admins_statement(cluster, epoch, pks):
    return b"iotguard custody admins v1\n" + cluster + b"\n" + epoch.to_bytes(8, "big") + b"".join(sorted(pks))


def approve_statement(cluster, request, pk, size, root):
    return (b"iotguard custody approve v1\n" + cluster + b"\n" + request + pk + size.to_bytes(8, "big") + root)


def vectors():
    ch = nacl.signing.SigningKey(fixed("approve ch seed", 32))
    admins = [nacl.signing.SigningKey(fixed("approve admin %d seed" % i, 32)) for i in (1, 2)]
    pks = [a.verify_key.encode() for a in admins]
    v = [("approve.ch_seed", fixed("approve ch seed", 32)), ("approve.ch_pk", ch.verify_key.encode())]
    for i, a in enumerate(admins, 1):
        v.append(("approve.admin%d_seed" % i, fixed("approve admin %d seed" % i, 32)))
        v.append(("approve.admin%d_pk" % i, a.verify_key.encode()))
    st = admins_statement(CLUSTER, 7, pks)
    v.append(("approve.admins_statement", st))
    v.append(("approve.admins_sig", ch.sign(st).signature))
    request, xpk, root = fixed("approve request", 16), fixed("approve requester pk", 32), fixed("approve root", 32)
    v += [("approve.request", request), ("approve.pk", xpk), ("approve.size", 42), ("approve.root", root)]
    ap = approve_statement(CLUSTER, request, xpk, 42, root)
    v.append(("approve.statement", ap))
    v.append(("approve.sig", admins[0].sign(ap).signature))
    return v


def fmt(value):
    return value.hex() if isinstance(value, bytes) else str(value)


def check():
    want = {n: fmt(v) for n, v in vectors()}
    bad = []
    text = open(os.path.join(ROOT, "docs", "PROTOCOL.md"), encoding="utf-8").read()
    at = text.find("### Custody approval test vectors")
    body = text[at:] if at >= 0 else ""
    start = body.find("```\n")
    block = body[start + 4:body.find("```", start + 4)] if start >= 0 else ""
    doc = dict(m.groups() for m in re.finditer(r"^(approve\.[a-z0-9_]+) = (\S+)$", block, re.M))
    if doc != want:
        bad.append("docs/PROTOCOL.md 'Custody approval test vectors' differ: %s" %
                   sorted(k for k in set(doc) | set(want) if doc.get(k) != want.get(k)))
    csrc = open(os.path.join(ROOT, "tests", "unit", "test_custody_approve.c"), encoding="utf-8").read()
    cdefs = {m.group(1): "".join(re.findall(r"\"([^\"]*)\"", m.group(2)))
             for m in re.finditer(r"#define (V_[A-Z0-9_]+)((?:\s*\\?\s*\"[^\"]*\")+)", csrc)}
    cwant = {"V_" + n.upper().replace(".", "_"): v for n, v in want.items()}
    if cdefs != cwant:
        bad.append("tests/unit/test_custody_approve.c differs: %s" %
                   sorted(k for k in set(cdefs) | set(cwant) if cdefs.get(k) != cwant.get(k)))
    for b in bad:
        print("FAIL:", b)
    print("custody approval vectors: %d values, %d failures" % (len(want), len(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    if "--check" in sys.argv[1:]:
        sys.exit(check())
    for name, value in vectors():
        print("%s = %s" % (name, fmt(value)))
