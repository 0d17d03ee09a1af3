"""test_witness.py: witnesses cosign the cluster head's checkpoints over MQTT.

Why this exists: a head signed only by the cluster head lets whoever holds
its key show a forked or rolled-back history. These tests run the real
broker and real `iotguard witness` processes (docs/PROTOCOL.md, "Witnesses")
and check, with the independent Python verifier in tests/tlog, that the
retained head gets a quorum of valid cosignatures; that a fork or a rollback
of the ledger gets none; and that a witness killed between saving its state
and answering never cosigns two different trees of the same size.
"""
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest

import igharness as H

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tlog"))
import note  # noqa: E402

WITNESSES = ("w1", "w2", "w3")


class World:
    def __init__(self, root, quorum=2):
        self.c = H.Cluster(root / "cluster", "c1")
        self.c.enroll("admin1", "admin")
        self.c.enroll("mon1", "monitor")
        self.vkeys = {}
        for w in WITNESSES:
            idn = self.c.enroll(w, "witness")
            self.vkeys[w] = H.cli("witness", "--print-vkey", "--id", w, "--key", idn.key).stdout.strip()
        self.policy = H.write_policy(root / "policy.json", lambda p: p.update(
            witnesses={"keys": [self.vkeys[w] for w in WITNESSES], "quorum": quorum}))
        self.state_dir = root / "witness-state"
        self.state_dir.mkdir()
        self.procs = {}
        self.broker = None
        self.log_key = note.Verifier("iotguard/c1", 0x01, bytes.fromhex(self.c.ch_pubkey))
        self.verifiers = [note.parse_vkey(self.vkeys[w]) for w in WITNESSES]

    def start_broker(self):
        self.broker = self.c.broker(policy=self.policy).start()
        return self.broker

    def start_witness(self, w, env_extra=None):
        env = os.environ.copy()
        env.update(env_extra or {})
        p = H.Proc([H.CLI, "witness", "--host", "127.0.0.1", "--port", self.broker.port, "--cluster", "c1",
                    "--id", w, "--key", self.c.ids[w].key, "--state", self.state(w), "--log-key",
                    self.c.ch_pubkey], env=env, name=w)
        self.procs[w] = p
        p.wait_line(r"waiting on iotguard/c1/dev/%s/inbox" % w, timeout=H.T(15))
        return p

    def state(self, w):
        return self.state_dir / (w + ".state")

    def stop_witnesses(self):
        for w, p in list(self.procs.items()):
            p.stop()
        self.procs.clear()

    def enroll_online(self, admin, ident):
        _, pk = self.c.keygen(ident)
        r = admin.one("enroll", id=ident, role="device", pubkey=pk)
        assert r["ok"], r

    def head(self, mon, pred, timeout=None):
        return mon.wait_message(self.c.topic("ledger", "head"), pred=lambda m: pred(m.json()),
                                timeout=timeout or H.T(20)).json()


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    start = len(H.ALL_BROKERS)
    yield w
    try:
        w.stop_witnesses()
    finally:
        for b in H.ALL_BROKERS[start:]:
            if b.running:
                b.stop(verify=False)


def cosigned_head(world, mon, size_at_least=0):
    return world.head(mon, lambda h: h.get("cosigned") and h["size"] >= size_at_least)


def restart_on(world, b, old):
    """Puts the saved copy `old` back as the ledger and restarts broker b on
    it (the same port: the witnesses reconnect). Returns (broker, log mark)
    and a monitor subscribed to the head."""
    shutil.rmtree(world.c.ledger)
    shutil.copytree(old, world.c.ledger)
    nb = b.start()
    mark = nb.mark()
    mon = nb.connect("mon1")
    mon.subscribe_ok(world.c.topic("ledger", "head"))
    return nb, mark, mon


@pytest.mark.vg
def test_three_witnesses_quorum_two_cosign_the_head(world, tmp_path):
    b = world.start_broker()
    for w in WITNESSES:
        world.start_witness(w)
    admin = H.Admin(b, "admin1")
    mon = b.connect("mon1")
    mon.subscribe_ok(world.c.topic("ledger", "head"))
    mon.subscribe_ok(world.c.topic("stats"))
    s0 = world.head(mon, lambda h: True)["size"]
    for i in range(3):
        world.enroll_online(admin, "dev%d" % i)
    h = cosigned_head(world, mon, size_at_least=s0 + 3)
    H.schema_validate("ledger-head", h)
    assert len(h["witnesses"]) >= 2 and set(h["witnesses"]) <= set(WITNESSES), h
    # The independent verifier agrees: the cluster head's signature and >= 2
    # of the three witnesses' cosignatures over the same checkpoint.
    origin, size, _, cos = note.verify_checkpoint(h["checkpoint"], world.log_key, world.verifiers, quorum=2)
    assert origin == "iotguard/c1" and size == h["size"] and len(cos) >= 2
    with pytest.raises(note.NoteError):
        note.verify_checkpoint(h["checkpoint"], world.log_key, world.verifiers, quorum=4)
    # Every cosigned checkpoint is in a witness's state file.
    for w in h["witnesses"]:
        st = world.state(w).read_text()
        assert re.search(r"^size (\d+)$", st, re.M), st
    # The stats say who cosigned what, and how long the quorum took.
    s = H.next_stats(mon, world.c, pred=lambda s: s.get("witnesses", {}).get("cosigned_size", 0) >= 1)
    ws = s["witnesses"]
    assert ws["quorum"] == 2 and ws["refusals"] == 0
    assert sum(1 for w in WITNESSES if ws["per_witness"][w]["cosigned_size"] >= 1) >= 2
    print("checkpoint-to-quorum latency: %d ms" % ws["quorum_latency_ms"])

    # The ledger's writer put the cosigned text in DIR/tlog/checkpoint, so a
    # tlog-proof of an enrolment carries the cosignatures, and `iotguard
    # proof verify` accepts it with the witness quorum.
    admin.close()
    world.stop_witnesses()
    b.stop()
    assert (world.c.ledger / "tlog" / "checkpoint").read_text() == h["checkpoint"]
    proof = tmp_path / "dev0.tlog-proof"
    H.cli("proof", "--ledger", world.c.ledger, "--id", "dev0", "--out", proof)
    assert proof.read_text().endswith(h["checkpoint"])
    args = ["proof", "verify", proof, "--ch-key", world.c.ch_pubkey]
    for w in WITNESSES:
        args += ["--witness-key", world.vkeys[w]]
    H.cli(*args, "--quorum", "2")
    r = H.cli(*args, "--quorum", "3", check=False)
    assert (r.returncode == 0) == (len(h["witnesses"]) == 3), r.stderr


def test_fork_is_refused_by_the_witnesses(world, tmp_path):
    b = world.start_broker()
    for w in WITNESSES:
        world.start_witness(w)
    admin = H.Admin(b, "admin1")
    mon = b.connect("mon1")
    mon.subscribe_ok(world.c.topic("ledger", "head"))
    world.enroll_online(admin, "a0")
    h1 = cosigned_head(world, mon, size_at_least=1)
    admin.close()
    mon.close()
    b.stop()
    old = tmp_path / "ledger-copy"
    shutil.copytree(world.c.ledger, old)

    # The original goes on: the witnesses cosign a larger tree.
    b2 = b.start()   # the same port: the witnesses reconnect
    admin = H.Admin(b2, "admin1")
    mon = b2.connect("mon1")
    mon.subscribe_ok(world.c.topic("ledger", "head"))
    for i in range(3):
        world.enroll_online(admin, "b%d" % i)
    h2 = cosigned_head(world, mon, size_at_least=h1["size"] + 3)
    admin.close()
    mon.close()
    b2.stop()

    # The old copy comes back with other records: a fork of what was cosigned.
    b3, mark, mon = restart_on(world, b, old)
    admin = H.Admin(b3, "admin1")
    mon.subscribe_ok(world.c.topic("stats"))
    for i in range(4):
        world.enroll_online(admin, "x%d" % i)
    b3.wait_log(r"witness w\d REFUSED the checkpoint of size \d+ .*FORKED", since=mark, timeout=H.T(30))
    s = H.next_stats(mon, world.c, pred=lambda s: s.get("witnesses", {}).get("refusals", 0) >= 2,
                     timeout=H.T(30))
    assert s["witnesses"]["cosigned_size"] == 0, s["witnesses"]
    mon.no_message(world.c.topic("ledger", "head"), within=2.0, pred=lambda m: m.json().get("cosigned"))
    # No witness's state moved to the fork.
    for w in WITNESSES:
        assert state_of(world, w)[0] <= h2["size"]
    admin.close()
    mon.close()


def test_rollback_is_refused_by_the_witnesses(world, tmp_path):
    b = world.start_broker()
    for w in WITNESSES:
        world.start_witness(w)
    admin = H.Admin(b, "admin1")
    mon = b.connect("mon1")
    mon.subscribe_ok(world.c.topic("ledger", "head"))
    world.enroll_online(admin, "r0")
    cosigned_head(world, mon, size_at_least=1)
    admin.close()
    mon.close()
    b.stop()
    old = tmp_path / "ledger-old"
    shutil.copytree(world.c.ledger, old)
    old_size = int((old / "tlog" / "checkpoint").read_text().split("\n")[1])
    b2 = b.start()   # the same port: the witnesses reconnect
    admin = H.Admin(b2, "admin1")
    mon = b2.connect("mon1")
    mon.subscribe_ok(world.c.topic("ledger", "head"))
    for i in range(3):
        world.enroll_online(admin, "r%d" % (i + 1))
    h2 = cosigned_head(world, mon, size_at_least=4)
    admin.close()
    mon.close()
    b2.stop()

    # Back to the older size, nothing appended: the witnesses hold a larger tree.
    b3, mark, mon = restart_on(world, b, old)
    b3.wait_log(r"witness w\d REFUSED the checkpoint of size %d: it cosigned size \d+ already, so this log was "
                r"ROLLED BACK" % old_size, since=mark, timeout=H.T(30))
    for w in WITNESSES:
        assert state_of(world, w)[0] >= h2["size"] > old_size
    mon.no_message(world.c.topic("ledger", "head"), within=2.0, pred=lambda m: m.json().get("cosigned"))
    mon.close()


def state_of(world, w):
    st = world.state(w).read_text()
    return int(re.search(r"^size (\d+)$", st, re.M).group(1)), re.search(r"^root (\S+)$", st, re.M).group(1)


def test_witness_killed_after_saving_never_cosigns_two_trees_of_one_size(world, tmp_path):
    old = tmp_path / "ledger-before"
    shutil.copytree(world.c.ledger, old)
    b = world.start_broker()
    mon = b.connect("mon1")
    mon.subscribe_ok(world.c.topic("ledger", "head"))
    s0 = world.head(mon, lambda h: True)["size"]
    # w1 pauses between making its state durable and answering.
    p1 = world.start_witness("w1", {"IG_WITNESS_TEST_PAUSE_MS": "3000"})
    admin = H.Admin(b, "admin1")
    world.enroll_online(admin, "k0")
    n = world.head(mon, lambda h: h["size"] > s0)["size"]
    H.wait_for(lambda: state_of(world, "w1")[0] == n, H.T(30), what="w1 to save size %d" % n)
    os.killpg(p1.p.pid, 9)   # after the save, before the answer
    p1.p.wait()
    world.procs.pop("w1")
    saved = state_of(world, "w1")
    admin.close()
    mon.close()
    b.stop()

    # Another history of the same length: the same start, another record.
    b2, mark, mon = restart_on(world, b, old)
    admin = H.Admin(b2, "admin1")
    world.enroll_online(admin, "k0-other")
    h = world.head(mon, lambda h: h["size"] > s0)
    assert h["size"] == n
    p1b = world.start_witness("w1")
    # It restarts from the saved state, never from zero, and refuses the
    # other tree of the size it cosigned.
    assert "following iotguard/c1 at size %d" % n in p1b.text(), p1b.text()
    b2.wait_log(r"witness w1 REFUSED the checkpoint of size %d" % n, since=mark, timeout=H.T(30))
    p1b.wait_line(r"REFUSED checkpoint of size %d .*status 422" % n)
    assert state_of(world, "w1") == saved
    admin.close()
    mon.close()


def test_a_damaged_state_file_stops_the_witness_and_the_vkey_is_c2sp(world):
    # The printed vkey parses with the independent code, as type 0x04, named by the id.
    v = note.parse_vkey(world.vkeys["w1"])
    assert v.name == "w1" and v.type == 0x04
    st = world.state("w2")
    st.write_text("iotguard-witness-state/v1\norigin iotguard/c1\nsize 7\nroot " + "A" * 43 + "=\n"
                  "sha256 " + "0" * 64 + "\n")
    before = st.read_text()
    r = H.cli("witness", "--host", "127.0.0.1", "--port", "1", "--cluster", "c1", "--id", "w2",
              "--key", world.c.ids["w2"].key, "--state", st, "--log-key", world.c.ch_pubkey, check=False,
              timeout=H.T(10))
    assert r.returncode == 1, r.stderr
    assert "refusing to start" in r.stderr, r.stderr
    assert st.read_text() == before, "a damaged state file is never replaced"
    # Without --log-key it does not start either: it trusts no key by default.
    r = H.cli("witness", "--host", "127.0.0.1", "--cluster", "c1", "--id", "w3", "--key", world.c.ids["w3"].key,
              "--state", world.state("w3"), check=False)
    assert r.returncode == 1 and "--log-key" in r.stderr, r.stderr
    assert not world.state("w3").exists()
