"""docs/LEDGER.md shows exactly the format-2 vectors that the independent
Python implementation (ledger_vectors.py) computes."""
import os

import ledger_vectors

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "LEDGER.md")


def test_doc_holds_the_independently_computed_format_2_vectors():
    with open(DOC, encoding="utf-8") as f:
        doc = f.read()
    assert ledger_vectors.doc_text() in doc


def test_crc32c_check_values_of_section_4():
    assert ledger_vectors.crc32c(b"123456789") == 0xE3069283
    assert ledger_vectors.crc32c(bytes(32)) == 0x8A9136AA
    assert ledger_vectors.crc32c(bytes(range(32))) == 0x46DD794E
