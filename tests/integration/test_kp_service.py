"""test_kp_service.py: the cluster head's key-ring service against a real broker (issue 10).

Why this exists: dealing rings is only right if what reaches a device opens
with its key alone and holds exactly the ring the public seed gives it, if
the ledger records the dealing (never a key), and if a revocation retires
the ring's ids in a statement anyone can check. These tests talk to the real
mosquitto with the plugin and check from the outside, with code that shares
nothing with the C library: the key_ring box is opened with PyNaCl, its ids
and keys are recomputed with tests/kp/kp_ref.py (the independent reference),
and the retained revoked statement's signature is checked with PyNaCl over
signed bytes built here from the design's byte layout (docs/PROTOCOL.md "Key
rings: byte layouts and test vectors", A.7). Real agents receive rings too
(FILE.ring, mode 0600).
"""
import base64
import json
import re
import struct
import sys
import time
from pathlib import Path

import nacl.bindings as sodium
import nacl.exceptions
import nacl.signing
import pytest

import igharness as H
import igkeys as K
from igharness import events, next_stats, wait_event, watcher

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "kp"))
import kp_ref  # noqa: E402  (the independent Python side of the formats)

P, M, Q = 1000, 30, 1
REVOKED = ("kp", "revoked")


def kp_policy(path, pool=P, ring=M, q=Q):
    def mutate(p):
        p["predistribution"] = {"pool": pool, "ring": ring, "q": q}
    return H.write_policy(path, mutate)


@pytest.fixture
def world(tmp_path):
    c = H.Cluster(tmp_path / "c")
    for d in ("admin1",):
        c.enroll(d, role="admin")
    c.enroll("mon1", role="monitor")
    c.enroll("an1", role="analyst")
    for d in ("d1", "d2", "d3"):
        c.enroll(d)
    b = c.broker(policy=kp_policy(tmp_path / "policy.json")).start()
    yield c, b
    b.stop()


def online_args(b, c):
    return ["--host", "127.0.0.1", "--port", b.port, "--cluster", c.name, "--user", "admin1",
            "--key", c.ids["admin1"].key]


def kp_cli(b, c, what, *extra, check=True):
    return H.cli("kp", what, *online_args(b, c), *extra, check=check)


def ch_seed(c):
    return K.seed_of(c.ledger / "ch.key")


# ---- the signed statement, checked independently (A.7) -----------------------------------

def statement_bytes(s):
    """The A.7 signed bytes, built here from the design text."""
    cl = s["cluster"].encode()
    out = b"iotguard kp revoked v1\x00" + bytes([len(cl)]) + cl
    out += struct.pack(">QIIB", s["epoch"], s["pool"], s["ring"], s["q"]) + bytes.fromhex(s["seed"])
    out += struct.pack(">QI", s["serial"], len(s["ids"])) + b"".join(struct.pack(">I", i) for i in s["ids"])
    out += struct.pack(">I", len(s["devices"]))
    for d in s["devices"]:
        out += bytes([len(d)]) + d.encode()
    return out


def check_statement(c, s):
    """Schema, signature under the genesis key (PyNaCl), and the shape rules."""
    H.schema_validate("kp-revoked", s)
    vk = nacl.signing.VerifyKey(bytes.fromhex(c.ch_pubkey))
    vk.verify(statement_bytes(s), bytes.fromhex(s["sig"]))   # raises BadSignatureError
    bad = dict(s, serial=s["serial"] + 1)
    with pytest.raises(nacl.exceptions.BadSignatureError):
        vk.verify(statement_bytes(bad), bytes.fromhex(s["sig"]))
    assert s["ids"] == sorted(set(s["ids"])) and all(0 <= i < s["pool"] for i in s["ids"])
    assert s["devices"] == sorted(s["devices"], key=lambda d: d.encode())
    assert s["cluster"] == c.name
    # The reference's own checker agrees.
    kp_ref.verify_revoked(json.dumps(s).encode(), bytes.fromhex(c.ch_pubkey))
    return s


def statement(mon, c, pred, timeout=None):
    m = mon.wait_message(c.topic(*REVOKED), pred=lambda m: m.payload and pred(m.json()), timeout=timeout or H.T(15))
    return check_statement(c, m.json())


# ---- the key_ring answer, opened with PyNaCl and the reference -------------------------------

def ask_ring(cl, c, ident, nonce, expect_error=None, timeout=None):
    start = len(cl.messages)
    cl.publish(c.topic("ch", ident), {"type": "key_ring", "nonce": nonce})

    def pred(m):
        j = m.json()
        return j.get("nonce") == nonce and (j["type"] == "error") == bool(expect_error)
    r = cl.wait_message(c.topic("dev", ident, "inbox"), pred=pred, start=start, timeout=timeout or H.T(10)).json()
    H.schema_validate("inbox", r)
    if expect_error:
        assert r["error"] == expect_error and r["request"] == "key_ring", r
    return r


def open_ring(c, ident, msg):
    """Opens a key_ring message as the device would, and checks it against
    the reference: the ids the seed gives ident, the pool keys of the
    epoch's pool secret (from ch.key), the ring hash."""
    bk = K.box_key(K.seed_of(c.ids[ident].key), bytes.fromhex(c.ch_pubkey))
    pt = sodium.crypto_box_open_afternm(base64.b64decode(msg["box"], validate=True),
                                        bytes.fromhex(msg["box_nonce"]), bk)
    epoch, pool, ring, q = struct.unpack(">QIIB", pt[:17])
    seed = pt[17:49]
    n = pt[49]
    assert pt[50:50 + n] == ident.encode()
    body = pt[50 + n:]
    assert len(body) == 36 * ring, "the plaintext holds exactly m entries"
    ids = [struct.unpack(">I", body[36 * i:36 * i + 4])[0] for i in range(ring)]
    keys = [body[36 * i + 4:36 * i + 36] for i in range(ring)]
    assert (epoch, pool, ring, q, seed.hex()) == (msg["epoch"], msg["pool"], msg["ring"], msg["q"], msg["seed"])
    psecret = kp_ref.pool_secret(ch_seed(c), epoch)
    assert kp_ref.ring_seed(psecret) == seed, "the seed is the epoch's"
    assert ids == kp_ref.ring_ids(seed, ident, pool, ring), "the ids are the ones the public seed gives"
    assert keys == [kp_ref.pool_key(psecret, i) for i in ids], "each key is its pool key"
    assert kp_ref.ring_hash(epoch, ident, ids, keys).hex() == msg["ring_hash"]
    # The reference's own parser agrees on the whole plaintext.
    kp_ref.ring_plain_parse(pt, ident)
    return {"epoch": epoch, "ids": ids, "keys": keys, "seed": seed}


def device(b, c, ident):
    cl = b.connect(ident)
    cl.subscribe_ok(c.topic("dev", ident, "inbox"))
    return cl


def shown(c, pred):
    """The ledger's records (iotguard show, which reads while the broker runs) for which pred holds."""
    return [r for r in c.show_json() if pred(r)]


def ledger_records(mon, c, rtype, pred=lambda e: True):
    return [e for e in events(mon, c, rtype) if pred(e)]


# ---- tests ---------------------------------------------------------------------------------------

def test_ring_dealt_recorded_and_opened_independently(world):
    c, b = world
    mon = watcher(b, c, topics=("stats", "ledger/events", "kp/revoked"))
    s1 = statement(mon, c, lambda s: s["epoch"] == 1)
    assert s1["ids"] == [] and s1["devices"] == [] and (s1["pool"], s1["ring"], s1["q"]) == (P, M, Q)
    # Recorded before the monitor subscribed: read it from the ledger.
    (ep,) = shown(c, lambda r: r["type"] == "kp_epoch")
    assert ep["epoch"] == 1 and ep["reason"] == "initial" and ep["by"] == c.name and s1["serial"] == ep["index"]
    assert ep["seed"] == s1["seed"]

    d1 = device(b, c, "d1")
    r = ask_ring(d1, c, "d1", "ring-1")
    assert r["type"] == "key_ring" and r["nonce"] == "ring-1"
    ring = open_ring(c, "d1", r)
    assert ring["epoch"] == 1
    rec = wait_event(mon, c, lambda e: e["type"] == "kp_ring" and e["id"] == "d1")
    assert rec["epoch"] == 1 and rec["ring_hash"] == r["ring_hash"]
    # Asked again: the same ring (a fresh box), no second record.
    r2 = ask_ring(d1, c, "d1", "ring-2")
    assert open_ring(c, "d1", r2)["keys"] == ring["keys"] and r2["box_nonce"] != r["box_nonce"]

    # Refusals, each naming the request and its nonce.
    an = device(b, c, "an1")
    ask_ring(an, c, "an1", "x1", expect_error="not_allowed")
    d1.publish(c.topic("ch", "d1"), {"type": "key_ring"})
    e = d1.wait_message(c.topic("dev", "d1", "inbox"),
                        pred=lambda m: m.json().get("error") == "malformed" and m.json().get("request") == "key_ring",
                        timeout=H.T(5)).json()
    assert "nonce" not in e

    s = next_stats(mon, c, lambda s: s.get("kp", {}).get("dealt", 0) >= 2)
    assert s["kp"]["epoch"] == 1 and s["kp"]["rings"] == 1 and s["kp"]["refused"] >= 2

    st = json.loads(kp_cli(b, c, "status", "--json").stdout)
    H.schema_validate("admin-response", {"responses": [dict(st, correlation="x")]})
    assert st["enabled"] is True and st["epoch"] == 1 and st["rings"] == 1 and st["seed"] == s1["seed"]
    text = kp_cli(b, c, "status").stdout
    assert re.search(r"rings dealt:\s+1", text) and re.search(r"epoch:\s+1", text)

    # A subscriber that comes later gets the retained statement.
    late = b.connect("d3")
    late.subscribe_ok(c.topic(*REVOKED))
    m = late.wait_message(c.topic(*REVOKED), timeout=H.T(5))
    assert m.retain
    check_statement(c, m.json())
    H.validate_captured(mon, cluster=c)

    for cl in (d1, an, late, mon):
        cl.close()
    b.stop()
    c.verify()
    text = H.cli("show", "--ledger", c.ledger, "--json").stdout
    for k in ring["keys"]:
        assert k.hex() not in text, "no ring key in the ledger"


@pytest.mark.vg
def test_revoking_a_ring_holder_retires_its_ids(world):
    c, b = world
    mon = watcher(b, c, topics=("ledger/events", "kp/revoked"))
    statement(mon, c, lambda s: s["epoch"] == 1)
    d2 = device(b, c, "d2")
    ring = open_ring(c, "d2", ask_ring(d2, c, "d2", "r"))
    d3 = device(b, c, "d3")
    open_ring(c, "d3", ask_ring(d3, c, "d3", "r"))
    d2.close()
    adm = H.Admin(b, "admin1")
    assert adm.one("revoke", id="d2")["ok"]
    comp = wait_event(mon, c, lambda e: e["type"] == "kp_compromised")
    assert comp["id"] == "d2" and comp["epoch"] == 1 and comp["ids"] == ring["ids"]
    s = statement(mon, c, lambda s: s["devices"] == ["d2"])
    assert s["ids"] == ring["ids"] and s["serial"] == comp["index"] and s["epoch"] == 1
    # A ring holder revoked without a ring, or twice: nothing more.
    assert adm.one("revoke", id="d1")["ok"]
    time.sleep(1.5)
    assert len(ledger_records(mon, c, "kp_compromised")) == 1
    st = adm.one("kp_status")
    assert st["ok"] and st["compromised_ids"] == M and st["compromised_devices"] == ["d2"]
    assert st["serial"] == comp["index"]
    adm.close()
    d3.close()
    mon.close()
    b.stop()
    c.verify()


def test_rotate_starts_a_new_epoch(world):
    c, b = world
    mon = watcher(b, c, topics=("ledger/events", "kp/revoked"))
    s1 = statement(mon, c, lambda s: s["epoch"] == 1)
    d1 = device(b, c, "d1")
    old = open_ring(c, "d1", ask_ring(d1, c, "d1", "e1"))
    p = kp_cli(b, c, "rotate")
    assert "epoch 2" in p.stdout, p.stdout
    ep = wait_event(mon, c, lambda e: e["type"] == "kp_epoch" and e["epoch"] == 2)
    assert ep["reason"] == "rotate" and ep["by"] == "admin1"
    s2 = statement(mon, c, lambda s: s["epoch"] == 2)
    assert s2["seed"] != s1["seed"] and s2["ids"] == [] and s2["serial"] == ep["index"]
    new = open_ring(c, "d1", ask_ring(d1, c, "d1", "e2"))
    assert new["epoch"] == 2 and not set(new["keys"]) & set(old["keys"]), "a new pool: no key carries over"
    st = json.loads(kp_cli(b, c, "status", "--json").stdout)
    assert st["epoch"] == 2 and st["rings"] == 1
    d1.close()
    mon.close()
    b.stop()
    c.verify()


def test_rings_dealt_unasked_at_enrolment_and_join(world):
    c, b = world
    mon = watcher(b, c, topics=("ledger/events", "kp/revoked"))
    statement(mon, c, lambda s: s["epoch"] == 1)
    # Enrolled online while it is offline: its ring is recorded, sent later on request.
    key, pk = c.keygen("d5")
    c.ids["d5"] = H.Identity("d5", "device", key, pk)
    adm = H.Admin(b, "admin1")
    assert adm.one("enroll", id="d5", role="device", pubkey=pk)["ok"]
    rec = wait_event(mon, c, lambda e: e["type"] == "kp_ring" and e["id"] == "d5")
    assert rec["epoch"] == 1
    # An analyst's enrolment deals nothing.
    akey, apk = c.keygen("an9")
    assert adm.one("enroll", id="an9", role="analyst", pubkey=apk)["ok"]
    d5 = device(b, c, "d5")
    r = ask_ring(d5, c, "d5", "later")
    assert open_ring(c, "d5", r)["epoch"] == 1 and r["ring_hash"] == rec["ring_hash"]
    assert not ledger_records(mon, c, "kp_ring", lambda e: e["id"] == "an9")

    # A device that joins with a code gets a ring without asking.
    code = H.cli("join-code", *online_args(b, c), "--role", "device").stdout.split()[0]
    newkey = c.keys / "joiner.key"
    a = H.start_agent(b, c, "joiner", "--join-code", code, key=newkey)
    try:
        a.wait_line(r"joined cluster c1 as joiner", timeout=H.T(15))
        rec = wait_event(mon, c, lambda e: e["type"] == "kp_ring" and e["id"] == "joiner", timeout=H.T(10))
        assert rec["epoch"] == 1
    finally:
        a.stop()
    assert len(ledger_records(mon, c, "kp_ring", lambda e: e["id"] == "joiner")) == 1
    adm.close()
    d5.close()
    mon.close()
    b.stop()
    c.verify()


def test_off_without_predistribution(tmp_path):
    c = H.Cluster(tmp_path / "c")
    c.enroll("admin1", role="admin")
    c.enroll("d1")
    c.enroll("d2")
    b = c.broker().start()   # the default policy: no predistribution
    try:
        # A real agent on a cluster without key rings asks for none: it
        # asks only when a signed revoked statement announces an epoch.
        agent = H.start_agent(b, c, "d2")
        try:
            agent.wait_line(r"pinned cluster-head key", timeout=10)
            d1 = device(b, c, "d1")
            ask_ring(d1, c, "d1", "n", expect_error="not_enabled")
            d1.subscribe_ok(c.topic(*REVOKED))
            d1.no_message(c.topic(*REVOKED), within=1.0)
        finally:
            out = H.agent_stopped(agent)
        assert "key ring requested" not in out and "not_enabled" not in out, out[-3000:]
        st = json.loads(kp_cli(b, c, "status", "--json").stdout)
        assert st["enabled"] is False and st["epoch"] == 0 and st["seed"] == ""
        p = kp_cli(b, c, "rotate", check=False)
        assert p.returncode == 1 and "not_enabled" in p.stderr, p.stderr
        d1.close()
    finally:
        b.stop()
    assert not [r for r in c.show_json() if r.get("type", "").startswith("kp_")]


def read_ring_file(c, ident):
    """KEYFILE.ring opened and parsed with the reference (A.9)."""
    path = Path(str(c.ids[ident].key) + ".ring")
    assert (path.stat().st_mode & 0o777) == 0o600, "%s must be mode 0600" % path
    seed = K.seed_of(c.ids[ident].key)
    plain = kp_ref.file_open(kp_ref.file_key(seed), K.public_key(seed), path.read_bytes())
    return kp_ref.file_plain_parse(plain)


def test_real_agents_receive_and_store_their_rings(world):
    c, b = world
    mon = watcher(b, c, topics=("ledger/events", "kp/revoked"))
    statement(mon, c, lambda s: s["epoch"] == 1)
    agents = [H.start_agent(b, c, d) for d in ("d1", "d2")]
    try:
        for d in ("d1", "d2"):
            rec = wait_event(mon, c, lambda e, d=d: e["type"] == "kp_ring" and e["id"] == d, timeout=H.T(15))
            H.wait_for(lambda d=d: Path(str(c.ids[d].key) + ".ring").exists(), H.T(10), what=d + ".key.ring")
            f = H.wait_for(lambda d=d: read_ring_file(c, d), H.T(5), what="a readable ring file")
            assert f["cluster"] == c.name and f["id"] == d and f["epoch"] == 1
            assert f["ids"] == kp_ref.ring_ids(f["seed"], d, P, M)
            psecret = kp_ref.pool_secret(ch_seed(c), 1)
            assert f["keys"] == [kp_ref.pool_key(psecret, i) for i in f["ids"]]
            assert kp_ref.ring_hash(1, d, f["ids"], f["keys"]).hex() == rec["ring_hash"]
        # A new epoch: the agents learn it from the statement and ask again.
        kp_cli(b, c, "rotate")
        for d in ("d1", "d2"):
            wait_event(mon, c, lambda e, d=d: e["type"] == "kp_ring" and e["id"] == d and e["epoch"] == 2,
                       timeout=H.T(20))
            H.wait_for(lambda d=d: read_ring_file(c, d)["epoch"] == 2, H.T(10), what=d + "'s epoch-2 ring file")
    finally:
        for a in agents:
            H.agent_stopped(a)
    mon.close()
