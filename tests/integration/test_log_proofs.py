"""Log proofs for devices (issue 12, "Requests"; docs/PROTOCOL.md "Log proofs").

Why this exists: a device asks the cluster head, on its own ch topic, for
an inclusion proof of its enrolment (at connect) and for a consistency
proof from a checkpoint it kept. These tests ask the real broker and check
every answer with the independent Python code written from RFC 6962 and the
C2SP texts (tests/tlog), never with our C: the checkpoint's signature under
the cluster head's key, the inclusion of the returned frame, the
consistency of the old and new roots. They also check each refusal, the
per-identity rate limit, and that the broker keeps answering pings while
hundreds of proofs are being made on the prover's thread.
"""
import base64
import sys
import time
from pathlib import Path

import pytest

import igharness as H

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tlog"))
# The independent implementations, written from the C2SP texts and RFC 6962.
import note  # noqa: E402
import rfc6962  # noqa: E402

SHA = rfc6962.SHA256


def frames(ledger):
    data = (ledger / "ledger.log").read_bytes()
    out, off = [], 0
    while off < len(data):
        n = int.from_bytes(data[off + 4:off + 8], "big")
        out.append(data[off:off + n])
        off += n
    return out


def verify_cp(cluster, text):
    """(size, root) of a checkpoint text, its signature checked with Python."""
    key = note.Verifier("iotguard/" + cluster.name, 0x01, bytes.fromhex(cluster.ch_pubkey))
    _, size, root, _ = note.verify_checkpoint(text.encode(), key)
    return size, root


def ask(dev, cluster, ident, req, pred=None, timeout=None):
    """Sends req on ident's ch topic; returns the first inbox answer naming
    the request's nonce, validated against the inbox schema."""
    inbox = cluster.topic("dev", ident, "inbox")
    start = len(dev.take())
    dev.publish(cluster.topic("ch", ident), req)
    m = dev.wait_message(inbox, start=start, timeout=timeout,
                         pred=pred or (lambda m: m.json().get("nonce") == req.get("nonce")))
    msg = m.json()
    H.schema_validate("inbox", msg)
    return msg


def check_inclusion(cluster, msg):
    """The inclusion proof holds, by the independent code; returns (index, frame, size)."""
    assert msg["type"] == "log_inclusion_proof", msg
    size, root = verify_cp(cluster, msg["checkpoint"])
    entry = base64.b64decode(msg["entry"], validate=True)
    path = [base64.b64decode(h, validate=True) for h in msg["proof"]]
    assert rfc6962.verify_inclusion(SHA, rfc6962.leaf_hash(SHA, entry), msg["index"], size, path, root)
    # And it is the very frame of the ledger on disk.
    assert frames(cluster.ledger)[msg["index"]] == entry
    return msg["index"], entry, size


@pytest.mark.vg
def test_a_device_proves_its_enrolment_and_that_the_log_it_saw_still_stands(cluster):
    old_text = (cluster.ledger / "checkpoint").read_text()
    old_size, old_root = verify_cp(cluster, old_text)
    dev9 = cluster.enroll("dev9")        # the log grows past the kept checkpoint
    cluster.enroll("dev10")
    b = cluster.broker().start()
    try:
        d = b.connect(dev9.id)
        d.subscribe_ok(cluster.topic("dev", dev9.id, "inbox"))
        msg = ask(d, cluster, dev9.id, {"type": "log_inclusion", "of": "enrollment", "nonce": "enr-1"})
        assert msg["nonce"] == "enr-1"
        index, entry, size = check_inclusion(cluster, msg)
        assert b"dev9" in entry and index == old_size, "dev9 was enrolled right after the kept checkpoint"
        assert size == len(frames(cluster.ledger))

        # By index: the genesis record too.
        g = ask(d, cluster, dev9.id, {"type": "log_inclusion", "index": 0, "nonce": "g"})
        assert check_inclusion(cluster, g)[0] == 0

        # Consistency from the kept checkpoint to the published one.
        c = ask(d, cluster, dev9.id, {"type": "log_consistency", "from": old_size, "nonce": "con-1"})
        assert c["type"] == "log_consistency_proof" and c["from"] == old_size
        new_size, new_root = verify_cp(cluster, c["checkpoint"])
        assert c["to"] == new_size == size
        path = [base64.b64decode(h) for h in c["proof"]]
        assert path, "a real proof: the log grew"
        assert rfc6962.verify_consistency(SHA, old_size, old_root, new_size, new_root, path)
        # A tampered path does not verify (the check can fail).
        bad = list(path)
        bad[0] = bytes(32)
        assert not rfc6962.verify_consistency(SHA, old_size, old_root, new_size, new_root, bad)

        # An explicit smaller "to": the proof leads to the root of that size.
        fr = frames(cluster.ledger)
        c2 = ask(d, cluster, dev9.id, {"type": "log_consistency", "from": 2, "to": old_size + 1, "nonce": "c2"})
        p2 = [base64.b64decode(h) for h in c2["proof"]]
        leaves = [rfc6962.leaf_hash(SHA, f) for f in fr]
        assert rfc6962.verify_consistency(SHA, 2, rfc6962.mth_hashes(SHA, leaves[:2]), old_size + 1,
                                          rfc6962.mth_hashes(SHA, leaves[:old_size + 1]), p2)
    finally:
        b.stop()


@pytest.mark.vg
def test_refusals_name_the_request_and_say_why(cluster):
    b = cluster.broker().start()
    try:
        d = b.connect("dev1")
        d.subscribe_ok(cluster.topic("dev", "dev1", "inbox"))
        size = len(frames(cluster.ledger))
        cases = [
            ({"type": "log_inclusion", "index": size, "nonce": "r1"}, "beyond_checkpoint", "not covered"),
            ({"type": "log_inclusion", "index": 10 ** 12, "nonce": "r2"}, "beyond_checkpoint", "not covered"),
            ({"type": "log_consistency", "from": 3, "to": size + 1, "nonce": "r3"}, "beyond_checkpoint", "beyond"),
            ({"type": "log_consistency", "from": 5, "to": 4, "nonce": "r4"}, "bad_range", "only grows"),
            ({"type": "log_consistency", "from": size + 5, "nonce": "r5"}, "bad_range", "only grows"),
            ({"type": "log_inclusion", "nonce": "r6"}, "malformed", "exactly one of"),
            ({"type": "log_inclusion", "index": 1, "of": "enrollment", "nonce": "r7"}, "malformed", None),
            ({"type": "log_inclusion", "index": -2, "nonce": "r8"}, "malformed", None),
            ({"type": "log_consistency", "to": 3, "nonce": "r9"}, "malformed", "\"from\""),
        ]
        for req, code, part in cases:
            err = ask(d, cluster, "dev1", req)
            assert err["type"] == "error" and err["error"] == code, (req, err)
            assert err["request"] == req["type"] and err["nonce"] == req["nonce"]
            if part:
                assert part in err["message"], err
        # The broker still answers a good one after all that.
        check_inclusion(cluster, ask(d, cluster, "dev1", {"type": "log_inclusion", "index": 1, "nonce": "ok"}))
    finally:
        b.stop()


def test_a_format1_ledger_has_no_tiles_and_says_to_upgrade(tmp_path):
    cl = H.Cluster(tmp_path / "c", name="old", ledger_format=1)
    dev = cl.enroll("dev1")
    b = cl.broker().start()
    try:
        d = b.connect(dev.id)
        d.subscribe_ok(cl.topic("dev", dev.id, "inbox"))
        for req in ({"type": "log_inclusion", "of": "enrollment", "nonce": "v1"},
                    {"type": "log_consistency", "from": 1, "nonce": "v2"}):
            err = ask(d, cl, dev.id, req)
            assert err["error"] == "no_tiles" and "iotguard upgrade" in err["message"], err
    finally:
        b.stop()


def test_proof_requests_are_rate_limited_per_identity(cluster):
    b = cluster.broker(proof_requests_per_minute=3).start()
    try:
        d1 = b.connect("dev1")
        d1.subscribe_ok(cluster.topic("dev", "dev1", "inbox"))
        for i in range(3):
            msg = ask(d1, cluster, "dev1", {"type": "log_inclusion", "index": 1, "nonce": "q%d" % i})
            assert msg["type"] == "log_inclusion_proof"
        err = ask(d1, cluster, "dev1", {"type": "log_consistency", "from": 1, "nonce": "q3"})
        assert err["error"] == "rate_limited" and "3 proof requests" in err["message"], err
        # Another device has its own budget.
        d2 = b.connect("dev2")
        d2.subscribe_ok(cluster.topic("dev", "dev2", "inbox"))
        check_inclusion(cluster, ask(d2, cluster, "dev2", {"type": "log_inclusion", "of": "enrollment",
                                                            "nonce": "o"}))
    finally:
        b.stop()


def test_the_broker_answers_pings_while_200_proofs_are_in_flight(cluster):
    b = cluster.broker(proof_requests_per_minute=100000, proof_queue=256).start()
    try:
        d = b.connect("dev1")
        inbox = cluster.topic("dev", "dev1", "inbox")
        d.subscribe_ok(inbox)
        mon = b.connect("mon1")
        mon.subscribe_ok(cluster.topic("stats"))
        size = len(frames(cluster.ledger))
        ch = cluster.topic("ch", "dev1")
        mids = []
        for i in range(200):
            if i % 2:
                req = {"type": "log_consistency", "from": 1 + i % (size - 1), "nonce": "f%d" % i}
            else:
                req = {"type": "log_inclusion", "index": i % size, "nonce": "f%d" % i}
            mids.append(d.publish_async(ch, req, qos=0))
        t0 = time.monotonic()
        pong = ask(d, cluster, "dev1", {"type": "ping", "nonce": "alive"},
                   pred=lambda m: m.json().get("type") == "pong")
        assert pong["nonce"] == "alive"
        ping_s = time.monotonic() - t0

        def answers():
            return [m.json() for m in d.take(inbox) if m.json().get("nonce", "").startswith("f")]
        H.wait_for(lambda: len(answers()) == 200, H.T(30), what="200 proof answers")
        got = answers()
        proofs = [a for a in got if a["type"] in ("log_inclusion_proof", "log_consistency_proof")]
        refused = [a for a in got if a["type"] == "error"]
        assert all(a["error"] == "busy" for a in refused), refused[:3]
        assert len(proofs) >= 150, "the queue of 256 takes them: %d proofs, %d busy" % (len(proofs), len(refused))
        for a in proofs[:20]:
            H.schema_validate("inbox", a)
            if a["type"] == "log_inclusion_proof":
                check_inclusion(cluster, a)
        assert ping_s < H.T(5)

        def settled(m):
            return m.json()["proofs"]["served"] == len(proofs)
        s = mon.wait_message(cluster.topic("stats"), pred=settled, timeout=H.T(5)).json()
        H.schema_validate("stats", s)
        assert s["proofs"]["refused"] == len(refused) and s["proofs"]["queue"] == 0
        assert s["proofs"]["avg_latency_us"] > 0
    finally:
        b.stop()


def test_the_protocol_example_verifies_with_the_independent_code():
    """docs/PROTOCOL.md "Log proofs" gives an exact exchange; a client in
    another language must be able to check it, so we do, with tests/tlog."""
    import json
    import re
    doc = (Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md").read_text()
    sec = doc.split("## Log proofs", 1)[1].split("\n## ", 1)[0]
    key = re.search(r"cluster-head key\s+`([0-9a-f]{64})`", sec).group(1)
    replies = {}
    for line in sec.splitlines():
        line = line.strip()
        if line.startswith('{"type":"log_') and '"checkpoint":"iotguard/demo' in line:
            m = json.loads(line)
            H.schema_validate("inbox", m)
            replies[m["type"]] = m
    inc, con = replies["log_inclusion_proof"], replies["log_consistency_proof"]
    verifier = note.Verifier("iotguard/demo", 0x01, bytes.fromhex(key))
    _, size, root, _ = note.verify_checkpoint(inc["checkpoint"].encode(), verifier)
    entry = base64.b64decode(inc["entry"], validate=True)
    path = [base64.b64decode(h) for h in inc["proof"]]
    assert rfc6962.verify_inclusion(SHA, rfc6962.leaf_hash(SHA, entry), inc["index"], size, path, root)
    assert b"sensor-1" in entry
    # The size-2 root a device kept is the inclusion path's one hash here.
    old_root = path[0]
    cpath = [base64.b64decode(h) for h in con["proof"]]
    assert rfc6962.verify_consistency(SHA, con["from"], old_root, con["to"], root, cpath)
    assert not rfc6962.verify_consistency(SHA, con["from"], bytes(32), con["to"], root, cpath)
