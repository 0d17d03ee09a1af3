#!/usr/bin/python3
"""Custody record vectors of docs/LEDGER.md section 12, computed from the text.

Why this exists: the custody records (sections 7.2 tag 6 and 7.13-7.16) are
new byte layouts, so, like the format-2 vectors (ledger_vectors.py), their
vectors come from an implementation that shares no code with the C one: the
TLV tables of the document, struct.pack, and the ristretto255 multiples
1·G and 2·G as RFC 9496 (appendix A.1) publishes them. The commitments are
those of the polynomial f(x) = 1 + 2x. tests/tlog/test_custody_vectors.py
checks that docs/LEDGER.md holds exactly this output; tests/unit/
test_custody_state.c pins the same bytes against the C encoder, and checks
1·G and 2·G with libsodium.

    /usr/bin/python3 tests/tlog/custody_vectors.py
"""
import struct

# RFC 9496, A.1 "Multiples of the Generator": B and 2B.
G1 = bytes.fromhex("e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76")
G2 = bytes.fromhex("6a493210f7499cd17fecb510ae0cea23a110e8d5b901f8acadd3095c73a3b919")
DEV1_PK = bytes.fromhex("29acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd7")


def tlv(tag, value):
    return struct.pack(">BH", tag, len(value)) + value


def ids(names):
    return b"".join(struct.pack(">B", len(n)) + n.encode() for n in names)


def bodies():
    enroll = (tlv(1, b"dev4") + tlv(2, b"\x01") + tlv(3, DEV1_PK) + tlv(4, b"offline:root")
              + tlv(6, b"north"))
    epoch = (tlv(1, struct.pack(">Q", 1)) + tlv(2, b"\x02") + tlv(3, b"\x03")
             + tlv(4, ids(["dev1", "dev2", "dev3"])) + tlv(5, G1 + G2) + tlv(6, b"initial")
             + tlv(7, b"cluster-head"))
    active = tlv(1, struct.pack(">Q", 1))
    bad = (tlv(1, struct.pack(">Q", 1)) + tlv(2, b"dev2")
           + tlv(3, b"share does not match the commitments"))
    sealed = tlv(1, struct.pack(">Q", 1)) + tlv(2, G1) + tlv(3, b"admin1")
    return [
        ("enroll with a zone (7.2 tag 6) \u2014 id `dev4`, role device, pubkey = the\n"
         "`dev1` key, by `offline:root`, zone `north`", enroll),
        ("custody_epoch (7.13) \u2014 epoch 1, k 2, n 3, holders `dev1` `dev2`\n"
         "`dev3`, commitments 1\u00b7G and 2\u00b7G (f(x) = 1 + 2x), reason `initial`,\n"
         "by `cluster-head`", epoch),
        ("custody_active (7.14) \u2014 epoch 1", active),
        ("custody_bad_share (7.15) \u2014 epoch 1, holder `dev2`, reason\n"
         "`share does not match the commitments`", bad),
        ("custody_sealed (7.16) \u2014 epoch 1, c0 = 1\u00b7G, by `admin1`", sealed),
    ]


def doc_text():
    """The part of docs/LEDGER.md section 12 that shows these vectors."""
    out = []
    for what, body in bodies():
        out.append("%s (%d bytes):\n\n```\n%s\n```\n\n" % (what, len(body), body.hex()))
    return "".join(out)


def main():
    print(doc_text(), end="")


if __name__ == "__main__":
    main()
