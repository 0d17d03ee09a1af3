"""test_agent_log.py: device agents check the cluster head's log themselves.

Why this exists: proofs and witnesses help only if devices use them. These
tests run the real iotguard-agent against the real broker and plugin
(docs/PROTOCOL.md, "Checking the log on the device") and check that an
agent proves its own enrolment at connect, keeps the head it accepted in
KEY.head (checked here with the independent verifier in tests/tlog), takes
a newer head only with a consistency proof, and that an agent which saw a
newer head refuses a forked or rolled-back log: it says so in its log and
its status, keeps the evidence in KEY.head.refused across restarts, asks for
no new keys, and resumes only after an operator deletes that file.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import igharness as H

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tlog"))
import note  # noqa: E402


def head_file(c, ident):
    return Path(str(c.ids[ident].key) + ".head")


def refused_file(c, ident):
    return Path(str(c.ids[ident].key) + ".head.refused")


def head_size(c, ident):
    return int(head_file(c, ident).read_text().split("\n")[1])


def status_log(mon, c, ident, pred, timeout=None):
    """The next status of ident whose "log" member satisfies pred."""
    m = mon.wait_message(c.topic("dev", ident, "status"),
                         pred=lambda m: m.json().get("state") == "online" and "log" in m.json()
                         and pred(m.json()["log"]), timeout=timeout or H.T(20))
    st = m.json()
    H.schema_validate("status", st)
    return st["log"]


def enroll_online(c, admin, ident):
    _, pk = c.keygen(ident)
    r = admin.one("enroll", id=ident, role="device", pubkey=pk)
    assert r["ok"], r


@pytest.fixture
def cluster(tmp_path):
    c = H.Cluster(tmp_path / "cluster", "c1")
    c.enroll("admin1", "admin")
    c.enroll("mon1", "monitor")
    c.enroll("dev1")
    start = len(H.ALL_BROKERS)
    procs = []
    yield c, procs
    for p in procs:
        p.stop(timeout=H.T(15))
    for b in H.ALL_BROKERS[start:]:
        if b.running:
            b.stop(verify=False)


def test_agent_proves_its_enrolment_and_keeps_each_consistent_head(cluster):
    c, procs = cluster
    b = c.broker().start()
    mon = b.connect("mon1")
    mon.subscribe_ok(c.topic("ledger", "head"))
    mon.subscribe_ok(c.topic("dev", "dev1", "status"))
    agent = H.start_agent(b, c, "dev1", "--verbose")   # each accepted head is a debug line
    procs.append(agent)
    # Genesis, admin1, mon1, dev1: dev1's enrolment is record 3 (its
    # attestation record follows once it connects).
    agent.wait_line(r"enrolment proven: record 3 is in the cluster head's log of size [45]", timeout=H.T(20))
    agent.wait_line(r"accepted the log head of size [45] \(", timeout=H.T(10))
    log = status_log(mon, c, "dev1", lambda s: s["state"] == "ok" and s["size"] == 5)
    assert log == {"state": "ok", "size": 5, "enrollment": 3}, log

    # KEY.head is the accepted checkpoint, verbatim, private, and it verifies
    # with the independent C2SP code.
    hf = head_file(c, "dev1")
    assert hf.stat().st_mode & 0o777 == 0o600
    text = hf.read_text()
    log_key = note.Verifier("iotguard/c1", 0x01, bytes.fromhex(c.ch_pubkey))
    origin, size, _, _ = note.verify_checkpoint(text, log_key)
    assert (origin, size) == ("iotguard/c1", 5)

    # The log grows: each newer head is taken with a consistency proof.
    admin = H.Admin(b, "admin1")
    for i in range(3):
        enroll_online(c, admin, "n%d" % i)
    h = mon.wait_message(c.topic("ledger", "head"), pred=lambda m: m.json()["size"] >= 8).json()
    agent.wait_line(r"accepted the log head of size 8 \(consistent with size [5-7]\)", timeout=H.T(20))
    H.wait_for(lambda: head_size(c, "dev1") == 8, H.T(10), what="KEY.head at size 8")
    assert hf.read_text() == h["checkpoint"]
    status_log(mon, c, "dev1", lambda s: s.get("size") == 8)
    admin.close()

    # A restart keeps the head and proves the enrolment again.
    H.agent_stopped(agent)
    procs.remove(agent)
    agent = H.start_agent(b, c, "dev1")
    procs.append(agent)
    agent.wait_line(r"enrolment proven: record 3 is in the cluster head's log of size 8", timeout=H.T(20))
    assert "accepted the log head" not in agent.text()   # the same head, nothing new to accept
    assert "REFUSED" not in agent.text()
    mon.close()


def grow_then_restore(c, procs, tmp_path, *, fork):
    """The agent sees the log at size 5 (with its attestation), then at 8;
    then the ledger is put back to its size-5 copy (and, for a fork, 4 other
    records are appended offline: size 9) and the broker restarted. Returns
    (agent, broker, monitor, the accepted checkpoint text)."""
    b = c.broker().start()
    agent = H.start_agent(b, c, "dev1", "--peer", "dev2", "--verbose")
    procs.append(agent)
    H.wait_for(lambda: head_file(c, "dev1").exists() and head_size(c, "dev1") == 5, H.T(20),
               what="KEY.head at size 5")
    b.stop()
    old = tmp_path / "ledger-copy"
    shutil.copytree(c.ledger, old)

    b = b.start()   # the same port: the agent reconnects
    admin = H.Admin(b, "admin1")
    for i in range(3):
        enroll_online(c, admin, "a%d" % i)
    admin.close()
    agent.wait_line(r"accepted the log head of size 8 \(consistent with size", timeout=H.T(30))
    accepted = head_file(c, "dev1").read_text()
    b.stop()

    shutil.rmtree(c.ledger)
    shutil.copytree(old, c.ledger)
    if fork:
        for i in range(4):
            c.enroll("x%d" % i)
    b = b.start()
    mon = b.connect("mon1")
    mon.subscribe_ok(c.topic("dev", "dev1", "status"))
    return agent, b, mon, accepted


def check_refused(c, agent, mon, accepted, reason):
    agent.wait_line(r"LOG REFUSED \(%s\)" % reason, timeout=H.T(30))
    log = status_log(mon, c, "dev1", lambda s: s["state"] == "refused")
    assert log["reason"] == reason, log
    # The evidence: the refusal names the reason, and holds the checkpoint
    # the agent had accepted; KEY.head did not move.
    rf = refused_file(c, "dev1")
    text = rf.read_text()
    assert text.startswith("iotguard-agent log refusal v1\nreason %s\n" % reason), text[:200]
    assert rf.stat().st_mode & 0o777 == 0o600
    assert accepted in text
    assert head_file(c, "dev1").read_text() == accepted
    # No new keys from this cluster head: the m2m duty does not even ask.
    agent.wait_line(r"cannot ask for session keys: this cluster head's log was refused", timeout=H.T(30))


def test_agent_refuses_a_forked_log_until_an_operator_acts(cluster, tmp_path):
    c, procs = cluster
    agent, b, mon, accepted = grow_then_restore(c, procs, tmp_path, fork=True)
    check_refused(c, agent, mon, accepted, "fork")
    # The forked checkpoint (size 9, another history) is in the evidence and
    # verifies: it is the cluster head's own signature on a contradiction.
    text = refused_file(c, "dev1").read_text()
    offending = text.split("offending:\n", 1)[1]
    log_key = note.Verifier("iotguard/c1", 0x01, bytes.fromhex(c.ch_pubkey))
    assert note.verify_checkpoint(offending, log_key)[1] == 9

    # The refusal survives a restart of the agent.
    H.agent_stopped(agent)
    procs.remove(agent)
    agent = H.start_agent(b, c, "dev1", "--peer", "dev2")
    procs.append(agent)
    agent.wait_line(r"LOG REFUSED \(fork\)", timeout=H.T(20))
    status_log(mon, c, "dev1", lambda s: s["state"] == "refused")
    assert "accepted the log head" not in agent.text()
    H.agent_stopped(agent)
    procs.remove(agent)

    # The operator looked and accepts the cluster head's current log.
    refused_file(c, "dev1").unlink()
    head_file(c, "dev1").unlink()
    agent = H.start_agent(b, c, "dev1")
    procs.append(agent)
    # (Its attestation changed without --peer: the log is past 9 by now.)
    agent.wait_line(r"accepted the log head of size (9|1\d) ", timeout=H.T(20))
    status_log(mon, c, "dev1", lambda s: s["state"] == "ok" and s["size"] >= 9)
    assert "REFUSED" not in agent.text()
    mon.close()


def test_agent_refuses_a_rolled_back_log(cluster, tmp_path):
    c, procs = cluster
    agent, b, mon, accepted = grow_then_restore(c, procs, tmp_path, fork=False)
    check_refused(c, agent, mon, accepted, "rollback")
    # Deleting only the refusal makes the agent check again: the log is
    # still rolled back, so it refuses again.
    refused_file(c, "dev1").unlink()
    H.agent_stopped(agent)
    procs.remove(agent)
    agent = H.start_agent(b, c, "dev1")
    procs.append(agent)
    agent.wait_line(r"LOG REFUSED \(rollback\)", timeout=H.T(30))
    assert refused_file(c, "dev1").exists()
    mon.close()


def test_agent_takes_only_witnessed_heads_when_it_requires_a_quorum(tmp_path):
    from test_witness import WITNESSES, World
    world = World(tmp_path)
    dev = world.c.enroll("dev1")
    start = len(H.ALL_BROKERS)
    agent = None
    try:
        b = world.start_broker()
        args = []
        for w in WITNESSES:
            args += ["--witness-key", world.vkeys[w]]
        agent = H.start_agent(b, world.c, "dev1", *args, "--witness-quorum", "2")
        # No witness runs yet: the agent proves its enrolment but accepts no head.
        agent.wait_line(r"enrolment proven", timeout=H.T(20))
        time.sleep(1.5)
        assert not head_file(world.c, "dev1").exists()
        for w in WITNESSES:
            world.start_witness(w)
        admin = H.Admin(b, "admin1")
        enroll_online(world.c, admin, "late1")
        admin.close()
        agent.wait_line(r"accepted the log head of size \d+ \(.*witnessed\)", timeout=H.T(30))
        text = head_file(world.c, "dev1").read_text()
        _, size, _, cos = note.verify_checkpoint(text, world.log_key, world.verifiers, quorum=2)
        assert size >= 1 and len(cos) >= 2
        assert "REFUSED" not in agent.text()
    finally:
        if agent:
            agent.stop()
        world.stop_witnesses()
        for b in H.ALL_BROKERS[start:]:
            if b.running:
                b.stop(verify=False)


def test_agent_options_for_witnesses_are_checked(cluster):
    c, _ = cluster
    base = [H.AGENT, "--host", "127.0.0.1", "--port", "1", "--cluster", "c1", "--id", "dev1",
            "--key", c.ids["dev1"].key]
    r = subprocess.run([str(a) for a in base + ["--witness-key", "w1+00000000+AAAA"]], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 2 and "not a C2SP vkey" in r.stderr, r.stderr
    vkey = H.cli("witness", "--print-vkey", "--id", "w1", "--key", c.ids["dev1"].key).stdout.strip()
    r = subprocess.run([str(a) for a in base + ["--witness-key", vkey, "--witness-quorum", "2"]],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "--witness-quorum 2 needs at least that many" in r.stderr, r.stderr
    # A damaged KEY.head stops the agent with what to do.
    head_file(c, "dev1").write_text("not a checkpoint\n")
    Path(str(c.ids["dev1"].key) + ".ch").write_text(c.ch_pubkey + "\n")
    r = subprocess.run([str(a) for a in base], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "delete it to accept the cluster head's log afresh" in r.stderr, r.stderr
