"""docs/LEDGER.md shows exactly the custody record vectors that the
independent Python encoding (custody_vectors.py) computes."""
import os

import custody_vectors

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "LEDGER.md")


def test_doc_holds_the_independently_computed_custody_vectors():
    with open(DOC, encoding="utf-8") as f:
        doc = f.read()
    assert custody_vectors.doc_text() in doc


def test_holder_list_is_length_prefixed_ids():
    assert custody_vectors.ids(["a", "bc"]) == b"\x01a\x02bc"
