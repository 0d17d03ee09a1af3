"""The ledger as a C2SP transparency log (issue 12), through the real broker.

Why this exists: format 2 hashes the ledger's Merkle tree as RFC 6962 with
SHA-256, so that tiles, proofs and witnesses speak the C2SP tlog
specifications; a format-1 ledger moves over in place with `iotguard
upgrade`. These tests check that a broker runs on both formats, that the
upgrade keeps every identity and every signed checkpoint valid, and that it
is refused while the broker holds the ledger.
"""
import base64
import hashlib
import re
import sys
from pathlib import Path

import igharness as H

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tlog"))
import ledger_vectors  # noqa: E402  (the independent format-2 implementation)


def frames(ledger):
    data = (ledger / "ledger.log").read_bytes()
    out, off = [], 0
    while off < len(data):
        n = int.from_bytes(data[off + 4:off + 8], "big")
        out.append(data[off:off + n])
        off += n
    return out


def checkpoint(ledger):
    lines = (ledger / "checkpoint").read_text().split("\n")
    return int(lines[1]), base64.b64decode(lines[2])


def blake2b_root(fr):
    def leaf(f):
        return hashlib.blake2b(b"\x00" + f[:-4], digest_size=32).digest()

    def mth(ls):
        if len(ls) == 1:
            return ls[0]
        k = 1
        while k * 2 < len(ls):
            k *= 2
        return hashlib.blake2b(b"\x01" + mth(ls[:k]) + mth(ls[k:]), digest_size=32).digest()
    return mth([leaf(f) for f in fr])


def sha256_root(fr):
    return ledger_vectors.mth([ledger_vectors.leaf(f) for f in fr])


def test_a_new_ledger_is_format_2_and_its_checkpoint_is_the_rfc6962_sha256_root(cluster):
    dev = cluster.ids["dev1"]
    b = cluster.broker().start()
    c = b.connect(dev.id)
    c.close()
    b.stop()
    fr = frames(cluster.ledger)
    assert fr[0][-9:-4] == bytes.fromhex("0300020002"), "genesis version 2 (the last TLV before the crc)"
    size, root = checkpoint(cluster.ledger)
    assert size == len(fr)
    assert root == sha256_root(fr), "the signed root is RFC 6962 SHA-256 over whole frames"


def test_upgrade_moves_a_format_1_ledger_in_place_and_devices_keep_working(tmp_path):
    cl = H.Cluster(tmp_path / "c", name="old", ledger_format=1)
    dev = cl.enroll("dev1")
    b = cl.broker().start()
    b.connect(dev.id).close()
    # While the broker holds the ledger the upgrade is refused, and nothing changes.
    p = H.cli("upgrade", "--ledger", cl.ledger, check=False)
    assert p.returncode != 0 and "in use" in p.stderr, p.stderr
    b.stop()
    fr = frames(cl.ledger)
    size, root = checkpoint(cl.ledger)
    assert root == blake2b_root(fr[:size]), "format 1 signs the BLAKE2b tree"
    old_checkpoint = (cl.ledger / "checkpoint").read_bytes()

    out = H.cli("upgrade", "--ledger", cl.ledger).stdout
    m = re.fullmatch(r"ledger upgraded: cluster old, format 2 from record (\d+), checkpoint size (\d+), "
                     r"root ([0-9a-f]{64})\n", out)
    assert m, out
    at = int(m.group(1))
    assert at == len(fr)
    fr2 = frames(cl.ledger)
    assert fr2[:at] == fr, "nothing already written changed"
    size2, root2 = checkpoint(cl.ledger)
    assert size2 == at + 1 and root2 == sha256_root(fr2), "format 2's tree over every frame"
    assert root2.hex() == m.group(3)

    # The broker starts on the upgraded ledger: old devices connect, new ones enrol.
    b = cl.broker().start()
    b.connect(dev.id).close()
    b.stop()
    new = cl.enroll("dev2")
    b = cl.broker().start()
    b.connect(new.id).close()
    b.stop()
    fr3 = frames(cl.ledger)
    size3, root3 = checkpoint(cl.ledger)
    assert size3 == len(fr3) and root3 == sha256_root(fr3)
    cl.verify()

    # The checkpoint signed before the upgrade still verifies against the grown log.
    (cl.ledger / "checkpoint").write_bytes(old_checkpoint)
    assert "checkpoint size %d" % size in cl.verify()

    # A second upgrade has nothing to do.
    p = H.cli("upgrade", "--ledger", cl.ledger, check=False)
    assert p.returncode == 1 and "already format 2" in p.stderr, p.stderr
