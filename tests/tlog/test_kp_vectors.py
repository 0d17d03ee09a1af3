"""docs/LEDGER.md shows exactly the key-ring record vectors that the
independent Python encoding (kp_vectors.py) computes."""
import os

import kp_vectors

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "LEDGER.md")


def test_doc_holds_the_independently_computed_kp_vectors():
    with open(DOC, encoding="utf-8") as f:
        doc = f.read()
    assert kp_vectors.doc_text() in doc


def test_ring_ids_are_distinct_ascending_and_in_the_pool():
    seed, ids, _ = kp_vectors.values()
    assert len(ids) == kp_vectors.RING
    assert ids == sorted(set(ids))
    assert all(0 <= i < kp_vectors.POOL for i in ids)


def test_ring_ids_skip_words_at_or_above_the_limit():
    # P = 3: limit = 2^32 - (2^32 mod 3) = 2^32 - 1, so only 0xffffffff is skipped;
    # a full pool draws every id exactly once whatever the words.
    assert kp_vectors.ring_ids(b"\x01" * 32, "x", 3, 3) == [0, 1, 2]


def test_hkdf_matches_rfc5869_case_1():
    ikm = bytes([0x0b] * 22)
    salt = bytes(range(13))
    info = bytes(range(0xf0, 0xfa))
    okm = kp_vectors.hkdf(ikm, info, 42, salt)
    assert okm.hex() == ("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
                         "34007208d5b887185865")
