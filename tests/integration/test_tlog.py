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
import urllib.error
import urllib.request
from pathlib import Path

import igharness as H

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tlog"))
# The independent implementations, written from the C2SP texts and RFC 6962.
import ledger_vectors  # noqa: E402
import note  # noqa: E402
import rfc6962  # noqa: E402
import tiles  # noqa: E402


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


def python_verify_proof(text, ch_pubkey_hex):
    """Checks a tlog-proof with the independent Python code only. Returns
    (index, frame, size)."""
    extra, index, hashes, cp = rfc6962.parse_tlog_proof(text)
    origin = cp.split(b"\n", 1)[0].decode()
    log_key = note.Verifier(origin, 0x01, bytes.fromhex(ch_pubkey_hex))
    _, size, root, _ = note.verify_checkpoint(cp, log_key)
    leaf = rfc6962.leaf_hash(rfc6962.SHA256, extra)
    assert rfc6962.verify_inclusion(rfc6962.SHA256, leaf, index, size, hashes, root)
    return index, extra, size


def frame_id(frame):
    """The id (tag 1) of an enroll or revoke frame's body."""
    body = frame[60:-4]
    assert body[0] == 1
    n = int.from_bytes(body[1:3], "big")
    return body[3:3 + n].decode()


def test_proofs_made_while_the_broker_runs_verify_independently(cluster, tmp_path):
    b = cluster.broker().start()
    b.connect("dev1").close()
    H.cli("revoke", "--host", "127.0.0.1", "--port", b.port, "--cluster", cluster.name, "--user", "admin1",
          "--key", cluster.ids["admin1"].key, "--id", "dev3", "--reason", "lost")
    # No lock: the proof is read from the tiles the broker keeps.
    text = H.cli("proof", "--ledger", cluster.ledger, "--id", "dev2").stdout.encode()
    index, frame, size = python_verify_proof(text, cluster.ch_pubkey)
    assert frame_id(frame) == "dev2" and frame[24:26] == b"\x00\x02", "dev2's enroll record"
    assert frame == frames(cluster.ledger)[index]
    rev = H.cli("proof", "--ledger", cluster.ledger, "--id", "dev3", "--record", "revoke").stdout.encode()
    index, frame, size = python_verify_proof(rev, cluster.ch_pubkey)
    assert frame_id(frame) == "dev3" and frame[24:26] == b"\x00\x03", "dev3's revoke record"
    assert size == index + 1, "the revoke is the newest record, and the checkpoint covers it"

    path = tmp_path / "dev2.tlog-proof"
    path.write_bytes(text)
    out = H.cli("proof", "verify", path, "--ch-key", cluster.ch_pubkey).stdout
    dev2_index = int(text.split(b"\nindex ")[1].split(b"\n")[0])
    assert out.startswith("proof OK: record %d is in iotguard/%s at size " % (dev2_index, cluster.name)), out
    assert '"id":"dev2"' in out

    # Any altered byte of the proof is refused by both verifiers.
    lines = text.split(b"\n")
    hash_line = lines.index(b"", 3) - 1
    bad = list(lines)
    bad[hash_line] = base64.b64encode(bytes(32)).rstrip(b"\n")
    bad = b"\n".join(bad)
    path.write_bytes(bad)
    p = H.cli("proof", "verify", path, "--ch-key", cluster.ch_pubkey, check=False)
    assert p.returncode == 2 and "NOT included" in p.stderr, p.stderr
    try:
        python_verify_proof(bad, cluster.ch_pubkey)
        raise AssertionError("the Python verifier accepted an altered proof")
    except (AssertionError, rfc6962.ProofError) as e:
        assert "accepted" not in str(e)
    other = note.Verifier("x", 0x01, bytes(32)).pk.hex()
    path.write_bytes(text)
    p = H.cli("proof", "verify", path, "--ch-key", other, check=False)
    assert p.returncode == 2, p.stderr
    b.stop()


def test_tiles_served_by_mosquitto_itself_verify_with_an_independent_client(cluster):
    """Mosquitto's own http_dir on a websockets listener serves DIR/tlog."""
    ws_port = H.free_port()
    b = cluster.broker()
    b.extra_lines += ["listener %d 127.0.0.1" % ws_port, "protocol websockets",
                      "http_dir %s" % (cluster.ledger / "tlog")]
    b.start()
    admin = H.Admin(b, "admin1")
    for start in range(0, 300, 50):  # past one full tile of 256 leaves
        cmds = [{"command": "enroll", "id": "w%03d" % i, "role": "device", "pubkey": "%064x" % (i + 1)}
                for i in range(start, start + 50)]
        resp = admin.request(*cmds)
        assert all(r.get("ok") for r in resp["responses"]), resp
    admin.close()
    base = "http://127.0.0.1:%d" % ws_port
    with urllib.request.urlopen(base + "/checkpoint", timeout=10) as r:
        cp = r.read()
    log_key = note.Verifier("iotguard/" + cluster.name, 0x01, bytes.fromhex(cluster.ch_pubkey))
    _, size, root, _ = note.verify_checkpoint(cp, log_key)
    t = tiles.Tiles(base, size)
    assert t.root() == root, "the tiles served over HTTP hash to the signed root"
    t.check()
    assert t.bundle(0)[0] == frames(cluster.ledger)[0], "entry 0 is the genesis frame"
    # ch.key is never reachable: the served directory is DIR/tlog.
    try:
        urllib.request.urlopen(base + "/../ch.key", timeout=10)
        raise AssertionError("ch.key was served")
    except urllib.error.HTTPError as e:
        assert e.code in (400, 403, 404)
    b.stop()
