"""tests/tlog/test_rfc6962.py: the independent RFC 6962 implementation checks itself.

Why this exists: rfc6962.py computes the vectors the C unit tests and
docs/LEDGER.md pin, so it must first agree with the RFC's own published
reference roots, and its proofs must verify with the RFC 9162 algorithms
while every tampered proof fails; otherwise a pinned vector proves nothing.
Run: /usr/bin/python3 -m pytest tests/tlog
"""
import base64
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rfc6962 as r  # noqa: E402

# The RFC 6962 reference roots of the first n reference inputs, SHA-256
# (as published with RFC 6962's reference implementation's test data).
REFERENCE_ROOTS = {
    0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}

# RFC 6962 section 2.1.3's example tree of 7 leaves, with its named nodes:
# the audit path of d0 is [b, h, l], of d3 [c, g, l], of d4 [f, j, k], of d6
# [i, k]; the consistency proof 3 -> 7 is [c, d, g, l], 4 -> 7 is [l],
# 6 -> 7 is [i, j, k].
def _rfc_example(alg):
    L = [r.leaf_hash(alg, bytes([i])) for i in range(7)]
    a, b, c, d, e, f, j = L
    N = lambda x, y: r.node_hash(alg, x, y)  # noqa: E731
    g, h, i = N(a, b), N(c, d), N(e, f)
    k, l_ = N(g, h), N(i, j)
    return L, dict(a=a, b=b, c=c, d=d, e=e, f=f, g=g, h=h, i=i, j=j, k=k, l=l_, root=N(k, l_))


def test_reference_roots():
    for n, want in REFERENCE_ROOTS.items():
        assert r.mth(r.SHA256, r.REFERENCE_ENTRIES[:n]).hex() == want, n


def test_empty_tree_is_hash_of_nothing_for_both_hashes():
    assert r.mth(r.SHA256, []).hex() == REFERENCE_ROOTS[0]
    assert r.mth(r.BLAKE2B, []).hex() == "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"


@pytest.mark.parametrize("alg", [r.SHA256, r.BLAKE2B])
def test_rfc_section_2_1_3_example(alg):
    L, n = _rfc_example(alg)
    assert r.mth_hashes(alg, L) == n["root"]
    assert r.path(alg, 0, L) == [n["b"], n["h"], n["l"]]
    assert r.path(alg, 3, L) == [n["c"], n["g"], n["l"]]
    assert r.path(alg, 4, L) == [n["f"], n["j"], n["k"]]
    assert r.path(alg, 6, L) == [n["i"], n["k"]]
    assert r.proof(alg, 3, L) == [n["c"], n["d"], n["g"], n["l"]]
    assert r.proof(alg, 4, L) == [n["l"]]
    assert r.proof(alg, 6, L) == [n["i"], n["j"], n["k"]]


def _leaves(alg, n):
    return [r.leaf_hash(alg, i.to_bytes(4, "big")) for i in range(n)]


@pytest.mark.parametrize("alg", [r.SHA256, r.BLAKE2B])
def test_every_inclusion_proof_verifies_and_tampering_fails(alg):
    for n in range(1, 34):
        L = _leaves(alg, n)
        root = r.mth_hashes(alg, L)
        for i in range(n):
            p = r.path(alg, i, L)
            assert r.verify_inclusion(alg, L[i], i, n, p, root), (i, n)
            for j in range(len(p)):
                bad = list(p)
                bad[j] = bytes([bad[j][0] ^ 1]) + bad[j][1:]
                assert not r.verify_inclusion(alg, L[i], i, n, bad, root)
            assert not r.verify_inclusion(alg, L[i], i, n, p + [root], root)
            if p:
                assert not r.verify_inclusion(alg, L[i], i, n, p[:-1], root)
            # A size whose proof has another length cannot verify. (One of
            # the same shape gives the same hash: the checkpoint's signature,
            # not the proof, binds the size to the root.)
            if len(r.path(alg, i, L + [L[0]])) != len(p):
                assert not r.verify_inclusion(alg, L[i], i, n + 1, p, root)
            if n > 1:
                assert not r.verify_inclusion(alg, L[i], (i + 1) % n, n, p, root)
                assert not r.verify_inclusion(alg, L[(i + 1) % n], i, n, p, root)
            assert not r.verify_inclusion(alg, L[i], n, n, p, root)
            assert not r.verify_inclusion(alg, L[i], i, n, p, bytes(32))


@pytest.mark.parametrize("alg", [r.SHA256, r.BLAKE2B])
def test_every_consistency_proof_verifies_and_tampering_fails(alg):
    for n in range(1, 34):
        L = _leaves(alg, n)
        new_root = r.mth_hashes(alg, L)
        for m in range(0, n + 1):
            old_root = r.mth_hashes(alg, L[:m])
            p = r.proof(alg, m, L)
            assert r.verify_consistency(alg, m, old_root, n, new_root, p), (m, n)
            if 0 < m < n:
                assert p
                for j in range(len(p)):
                    bad = list(p)
                    bad[j] = bytes([bad[j][0] ^ 1]) + bad[j][1:]
                    assert not r.verify_consistency(alg, m, old_root, n, new_root, bad)
                assert not r.verify_consistency(alg, m, old_root, n, new_root, p[:-1])
                assert not r.verify_consistency(alg, m, old_root, n, new_root, p + [new_root])
                assert not r.verify_consistency(alg, m, bytes(32), n, new_root, p)
                assert not r.verify_consistency(alg, m, old_root, n, bytes(32), p)
                if m + 1 < n:
                    assert not r.verify_consistency(alg, m + 1, old_root, n, new_root, p)
            if m == n:
                assert not r.verify_consistency(alg, m, bytes(32), n, new_root, [])
            assert not r.verify_consistency(alg, n, new_root, m, old_root, p) or m == n


def test_path_and_proof_refuse_bad_arguments():
    L = _leaves(r.SHA256, 4)
    with pytest.raises(ValueError):
        r.path(r.SHA256, 4, L)
    with pytest.raises(ValueError):
        r.proof(r.SHA256, 5, L)


CHECKPOINT = b"example.com/log\n8\n" + base64.b64encode(bytes(32)) + b"\n\n\xe2\x80\x94 example.com/log AAAA\n"


def test_tlog_proof_round_trip():
    L = r.reference_leaves(r.SHA256)
    p = r.path(r.SHA256, 2, L)
    text = r.format_tlog_proof(2, p, CHECKPOINT, extra=b"\x10")
    assert text.startswith(b"c2sp.org/tlog-proof@v1\nextra EA==\nindex 2\n")
    assert r.parse_tlog_proof(text) == (b"\x10", 2, p, CHECKPOINT)
    assert r.parse_tlog_proof(r.format_tlog_proof(0, [], CHECKPOINT)) == (None, 0, [], CHECKPOINT)
    assert r.parse_checkpoint_body(CHECKPOINT) == ("example.com/log", 8, bytes(32))
    # The largest extra and checkpoint still parse.
    big = r.format_tlog_proof(0, [], b"x" * 16383 + b"\n", extra=bytes(65535))
    assert r.parse_tlog_proof(big)[0] == bytes(65535)


def test_the_docs_example_verifies():
    extra, index, hashes, checkpoint = r.parse_tlog_proof(r.example_tlog_proof())
    origin, size, root = r.parse_checkpoint_body(checkpoint)
    assert (origin, size, index, extra) == ("iotguard/demo", 8, 2, b"\x10")
    assert root.hex() == REFERENCE_ROOTS[8]
    assert r.verify_inclusion(r.SHA256, r.leaf_hash(r.SHA256, extra), index, size, hashes, root)


@pytest.mark.parametrize("bad", [
    b"c2sp.org/tlog-proof@v2\nindex 0\n\n" + CHECKPOINT,
    b"c2sp.org/tlog-proof@v1\nindex 01\n\n" + CHECKPOINT,
    b"c2sp.org/tlog-proof@v1\nindex -1\n\n" + CHECKPOINT,
    b"c2sp.org/tlog-proof@v1\nindex 18446744073709551616\n\n" + CHECKPOINT,
    b"c2sp.org/tlog-proof@v1\nextra \nindex 0\n\n" + CHECKPOINT,
    b"c2sp.org/tlog-proof@v1\nextra EB==\nindex 0\n\n" + CHECKPOINT,
    b"c2sp.org/tlog-proof@v1\nextra EA\nindex 0\n\n" + CHECKPOINT,
    b"c2sp.org/tlog-proof@v1\nindex 0\nAAAA\n\n" + CHECKPOINT,
    b"c2sp.org/tlog-proof@v1\nindex 0\n" + b"".join([base64.b64encode(bytes(32)) + b"\n"] * 64) + b"\n" + CHECKPOINT,
    b"c2sp.org/tlog-proof@v1\nindex 0\r\n\n" + CHECKPOINT,
    b"c2sp.org/tlog-proof@v1\nindex 0\n\n",
    b"c2sp.org/tlog-proof@v1\nindex 0\n\n" + CHECKPOINT[:-1],
    b"c2sp.org/tlog-proof@v1\nindex 0\n" + CHECKPOINT,
    b"c2sp.org/tlog-proof@v1\nindex 0\n\n\x00" + CHECKPOINT,
    b"c2sp.org/tlog-proof@v1\nindex 0\n\n\n" + CHECKPOINT,
    b"c2sp.org/tlog-proof@v1\nextra " + base64.b64encode(bytes(65536)) + b"\nindex 0\n\n" + CHECKPOINT,
    b"c2sp.org/tlog-proof@v1\nindex 0\n\n" + b"x" * 16384 + b"\n",
])
def test_tlog_proof_refusals(bad):
    with pytest.raises(r.ProofError):
        r.parse_tlog_proof(bad)


SPEC_EXAMPLE = """c2sp.org/tlog-proof@v1
extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ
index 73894
gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=
EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=
RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=
AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=

example.com/fancylog
109482
sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=

\u2014 example.com/fancylog hI2DJw[...]1roloI=
\u2014 witness1.example mJirIklj[...]qY9v2B/5bg==
\u2014 witness2.example TnKKVHLX[...]xwYwrSjgow==
\u2014 witness3.example S4X82uH5[...]3oEcROGLFQ==
""".encode("utf-8")


def test_the_spec_example_parses_and_formats_back():
    """C2SP tlog-proof.md's example, verbatim (signatures abbreviated there)."""
    extra, index, hashes, checkpoint = r.parse_tlog_proof(SPEC_EXAMPLE)
    assert extra.startswith(b"age-v1.2.1-darwin-arm64.tar.gz") and len(extra) == 39
    assert index == 73894 and len(hashes) == 5
    assert checkpoint.startswith(b"example.com/fancylog\n109482\n")
    assert r.parse_checkpoint_body(checkpoint)[:2] == ("example.com/fancylog", 109482)
    assert r.format_tlog_proof(index, hashes, checkpoint, extra) == SPEC_EXAMPLE
