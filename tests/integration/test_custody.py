"""test_custody.py: device-quorum custody of the cluster-head key (issue 9).

Why this exists: custody is only worth anything end to end: the real broker
deals verifiable shares to real agents, the key leaves the disk, a restart
comes up sealed, and k agents bring it back. These tests run the real
mosquitto with the plugin and real iotguard-agent processes
(docs/PROTOCOL.md, "Custody"), and play a dishonest holder in Python (PyNaCl
boxes made with a real holder's key) to show that a tampered share is caught
and its holder named, and that a share of an older epoch is refused.
"""
import base64
import json
import os
import re
import secrets
import signal
import sys
import time
from pathlib import Path

import nacl.bindings as nb
import pytest

import igharness as H
import igkeys

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "custody"))
import custody_ref  # noqa: E402  (the independent Python side of the formats)

K, N = 2, 3
DEVICES = ["d1", "d2", "d3", "d4"]
CUSTODY_OPTS = {"custody_threshold": K, "custody_shares": N, "custody_deal_timeout_s": 20}


@pytest.fixture
def cluster(tmp_path):
    c = H.Cluster(tmp_path / "cluster", "c1")
    c.enroll("admin1", "admin")
    c.enroll("mon1", "monitor")
    for d in DEVICES:
        c.enroll(d)
    start = len(H.ALL_BROKERS)
    agents = {}
    yield c, agents
    for a in list(agents.values()):
        a.stop(timeout=H.T(15))
    for b in H.ALL_BROKERS[start:]:
        if b.running:
            b.stop(verify=False)


def start_agents(b, c, agents, ids):
    for d in ids:
        agents[d] = H.start_agent(b, c, d)


def stop_agents(agents, ids=None):
    for d in list(ids or agents.keys()):
        H.agent_stopped(agents.pop(d))


def monitor(b, c):
    mon = b.connect("mon1")
    mon.subscribe_ok(c.topic("custody"))
    mon.subscribe_ok(c.topic("custody", "events"))
    mon.subscribe_ok(c.topic("ledger", "events"))
    mon.subscribe_ok(c.topic("stats"))
    return mon


def custody_state(mon, c, pred, timeout=None, what="custody state"):
    """The next retained custody state satisfying pred (validated)."""
    m = mon.wait_message(c.topic("custody"), pred=lambda m: pred(m.json()), timeout=timeout or H.T(30))
    st = m.json()
    H.schema_validate("custody", st)
    return st


def event(mon, c, pred, timeout=None):
    m = mon.wait_message(c.topic("custody", "events"), pred=lambda m: pred(m.json()), timeout=timeout or H.T(20))
    ev = m.json()
    H.schema_validate("custody", ev)
    return ev


def ledger_event(mon, c, pred, timeout=None):
    return mon.wait_message(c.topic("ledger", "events"), pred=lambda m: pred(m.json()),
                            timeout=timeout or H.T(20)).json()


def custody_cli(b, c, *args, check=True):
    return H.cli("custody", *args, "--host", "127.0.0.1", "--port", b.port, "--cluster", c.name,
                 "--user", "admin1", "--key", c.ids["admin1"].key, "--timeout", "20", check=check)


def status_json(b, c):
    s = json.loads(custody_cli(b, c, "status", "--json").stdout)
    H.schema_validate("admin-response", {"responses": [dict(s, correlation="")]})
    return s


def deal_and_activate(c, agents, opts=None):
    """A broker with custody on and 3 agents: waits for epoch 1 active."""
    b = c.broker(**dict(CUSTODY_OPTS, **(opts or {}))).start()
    mon = monitor(b, c)
    start_agents(b, c, agents, DEVICES[:3])
    st = custody_state(mon, c, lambda s: s["state"] == "active", timeout=H.T(40))
    return b, mon, st


def session_key_works(b, c, a="d1", peer="d2", timeout=None):
    """A session_key request from a test client as device a (a must not
    also be running as an agent): answered with a key, not an error."""
    cl = b.connect(a)
    try:
        inbox = c.topic("dev", a, "inbox")
        cl.subscribe_ok(inbox)
        nonce = "n-%s" % secrets.token_hex(4)
        cl.publish(c.topic("ch", a), json.dumps({"type": "session_key", "peer": peer, "nonce": nonce}))
        return cl.wait_message(inbox, pred=lambda m: m.json().get("nonce") == nonce or
                               m.json().get("type") == "session_key", timeout=timeout or H.T(10)).json()
    finally:
        cl.close()


def mint_reply(b, c, a="d4"):
    """The answer to a mint of one coin from a test client as device a (which
    has credit): "coins", or an error such as "sealed"."""
    cl = b.connect(a)
    try:
        inbox = c.topic("dev", a, "inbox")
        cl.subscribe_ok(inbox)
        nonce = "m-%s" % secrets.token_hex(4)
        cl.publish(c.topic("ch", a), json.dumps({"type": "mint", "count": 1, "nonce": nonce}))
        reply = cl.wait_message(inbox, pred=lambda m: m.json().get("nonce") == nonce, timeout=H.T(10)).json()
        H.schema_validate("inbox", reply)
        return reply
    finally:
        cl.close()


def seal(b, c, mon):
    out = custody_cli(b, c, "seal").stdout
    assert "removed" in out, out
    assert not (c.ledger / "ch.key").exists()
    sealed = c.ledger / "ch.key.sealed"
    assert sealed.exists() and sealed.stat().st_mode & 0o777 == 0o600
    ledger_event(mon, c, lambda e: e["type"] == "custody_sealed")


# ---- the tests ---------------------------------------------------------------


def test_deal_makes_an_active_epoch_held_by_three_agents(cluster):
    c, agents = cluster
    b, mon, st = deal_and_activate(c, agents)
    assert st["epoch"] == 1 and st["k"] == K and st["n"] == N, st
    holders = sorted(h["id"] for h in st["holders"])
    assert holders == ["d1", "d2", "d3"], st
    assert all(h["online"] and h["acked"] for h in st["holders"]), st
    for d in holders:
        shares = c.ledger.parent / "keys" / (d + ".key.shares")
        assert shares.exists(), "%s holds no share file" % d
        assert shares.stat().st_mode & 0o777 == 0o600
    s = status_json(b, c)
    assert s["ok"] and s["state"] == "active" and s["sealed"] is False and s["key_on_disk"] is True, s
    assert s["next_rotation_at"] > time.time(), s
    out = custody_cli(b, c, "status").stdout
    assert "unsealed" in out and "d1" in out and "online" in out, out
    # Who holds shares is for monitors and admins, not a target list for devices.
    dev = b.connect("d4")
    assert dev.subscribe(c.topic("custody"))[0] >= 0x80, "a device may read the custody holders"
    dev.close()
    stats = mon.wait_message(c.topic("stats"), pred=lambda m: m.json().get("custody", {}).get("epochs_active") == 1,
                             timeout=H.T(5)).json()
    H.schema_validate("stats", stats)
    assert stats["custody"]["acks"] == 3 and stats["custody"]["state"] == "active", stats["custody"]
    mon.close()
    stop_agents(agents)
    b.stop()
    types = [e["type"] for e in c.show_json()]
    assert types.count("custody_epoch") == 1 and types.count("custody_active") == 1, types
    c.verify()


def test_seal_restart_sealed_then_two_agents_unseal(cluster):
    c, agents = cluster
    H.cli("credit", "--ledger", c.ledger, "--id", "d4", "--amount", "5")   # d4 mints coins below
    b, mon, st = deal_and_activate(c, agents)
    assert mint_reply(b, c)["type"] == "coins"
    # Refused until ... nothing: an epoch is active, so seal goes ahead.
    seal(b, c, mon)
    mon.close()
    stop_agents(agents)
    b.stop()
    c.verify()   # verify needs no private key

    # Restart: sealed. A session key is refused "sealed"; no share is asked
    # of anyone while no holder is online.
    b2 = c.broker(**CUSTODY_OPTS).start()
    b2.wait_log(r"sealed", timeout=H.T(10))
    mon = monitor(b2, c)
    custody_state(mon, c, lambda s: s["state"] == "sealed" and s["sealed"] is True)
    r = session_key_works(b2, c, "d4", "d1")
    assert r.get("error") == "sealed", r
    r = mint_reply(b2, c)
    assert r["type"] == "error" and r["error"] == "sealed" and r["request"] == "mint", r

    # One agent: stays sealed.
    start_agents(b2, c, agents, ["d1"])
    custody_state(mon, c, lambda s: s["shares_collected"] == 1)
    time.sleep(H.T(2))
    assert status_json(b2, c)["sealed"] is True

    # A second agent: unsealed within seconds, and keys are served again.
    t0 = time.monotonic()
    start_agents(b2, c, agents, ["d2"])
    ev = event(mon, c, lambda e: e["event"] == "unsealed", timeout=H.T(20))
    assert time.monotonic() - t0 < H.T(15), ev
    # Unsealed within 1 s of the k-th share's arrival (the cluster head's clock).
    ms = int(re.search(r"(\d+) ms after the k-th", ev["message"]).group(1))
    assert ms < 1000, ev
    custody_state(mon, c, lambda s: s["sealed"] is False)
    r = session_key_works(b2, c, "d4", "d1")
    assert r.get("type") == "session_key", r
    r = mint_reply(b2, c)
    assert r["type"] == "coins" and r["count"] == 1, r
    assert status_json(b2, c)["sealed"] is False
    mon.close()


def test_rotate_then_old_epoch_share_refused(cluster):
    c, agents = cluster
    b, mon, st = deal_and_activate(c, agents)
    out = custody_cli(b, c, "rotate").stdout
    assert "new epoch" in out, out
    st = custody_state(mon, c, lambda s: s["state"] == "active" and s["epoch"] == 2, timeout=H.T(40))
    ev = ledger_event(mon, c, lambda e: e["type"] == "custody_epoch" and e["epoch"] == 2)
    assert ev["reason"] == "admin", ev
    seal(b, c, mon)
    mon.close()
    stop_agents(agents)
    b.stop()

    # Sealed restart; d1 is played by the test: it gets a request for
    # epoch 2 and answers with an epoch-1 share: refused "old_epoch".
    b2 = c.broker(**CUSTODY_OPTS).start()
    mon = monitor(b2, c)
    holder = next(h for h in st["holders"] if h["id"] in ("d1", "d2", "d3"))["id"]
    cl = b2.connect(holder)
    inbox = c.topic("dev", holder, "inbox")
    cl.subscribe_ok(inbox)
    req = cl.wait_message(inbox, pred=lambda m: m.json().get("type") == "custody_request", timeout=H.T(10)).json()
    H.schema_validate("inbox", req)
    assert req["epoch"] == 2, req
    send_share(cl, c, holder, req, epoch=1, index=1, share=bytes(32))
    err = cl.wait_message(inbox, pred=lambda m: m.json().get("type") == "error", timeout=H.T(10)).json()
    H.schema_validate("inbox", err)
    assert err["error"] == "old_epoch" and err["request"] == "custody_share", err
    cl.close()
    mon.close()


def send_share(cl, c, holder, req, epoch, index, share):
    """A custody_share from holder's real key, boxed as a holder boxes it
    (docs/PROTOCOL.md, "Custody": release box), with any share."""
    xsk = igkeys.x25519_secret(igkeys.seed_of(str(c.ids[holder].key)))
    plain = b"IGR1" + bytes.fromhex(req["request"]) + epoch.to_bytes(8, "big") + bytes([index]) + share
    nonce = os.urandom(24)
    box = nb.crypto_box(plain, nonce, bytes.fromhex(req["pk"]), xsk)
    cl.publish(c.topic("ch", holder), json.dumps({
        "type": "custody_share", "nonce": "s-" + secrets.token_hex(4), "epoch": epoch, "index": index,
        "request": req["request"], "box_nonce": nonce.hex(), "box": base64.b64encode(box).decode()}))


def test_tampered_share_is_refused_and_its_holder_named(cluster):
    c, agents = cluster
    b, mon, st = deal_and_activate(c, agents)
    seal(b, c, mon)
    mon.close()
    stop_agents(agents)
    b.stop()

    b2 = c.broker(**CUSTODY_OPTS).start()
    mon = monitor(b2, c)
    liar = "d1"
    index = next(h["index"] for h in st["holders"] if h["id"] == liar)
    cl = b2.connect(liar)
    inbox = c.topic("dev", liar, "inbox")
    cl.subscribe_ok(inbox)
    req = cl.wait_message(inbox, pred=lambda m: m.json().get("type") == "custody_request", timeout=H.T(10)).json()
    send_share(cl, c, liar, req, epoch=req["epoch"], index=index, share=(7).to_bytes(32, "little"))
    ev = event(mon, c, lambda e: e["event"] == "bad_share")
    assert ev["holder"] == liar and "commitments" in ev["message"], ev
    stats = mon.wait_message(c.topic("stats"), pred=lambda m: m.json().get("custody", {}).get("shares_bad") == 1,
                             timeout=H.T(10)).json()
    assert stats["custody"]["last_bad_holder"] == liar, stats["custody"]
    cl.close()
    # Still sealed; the other two holders unseal it, and the bad share's
    # record is written once there is a key to write it with.
    assert status_json(b2, c)["sealed"] is True
    start_agents(b2, c, agents, [h["id"] for h in st["holders"] if h["id"] != liar])
    event(mon, c, lambda e: e["event"] == "unsealed", timeout=H.T(20))
    rec = ledger_event(mon, c, lambda e: e["type"] == "custody_bad_share")
    assert rec["holder"] == liar and rec["epoch"] == req["epoch"], rec
    mon.close()


def test_revoking_a_holder_deals_a_new_epoch_without_it(cluster):
    c, agents = cluster
    b, mon, st = deal_and_activate(c, agents)
    start_agents(b, c, agents, ["d4"])
    # d4 must have reported its status before the rotation chooses.
    time.sleep(H.T(2))
    admin = H.Admin(b, "admin1")
    r = admin.one("revoke", id="d2", reason="lost")
    assert r["ok"], r
    admin.close()
    agents.pop("d2").stop(timeout=H.T(10))
    ev = ledger_event(mon, c, lambda e: e["type"] == "custody_epoch" and e["epoch"] >= 2, timeout=H.T(30))
    assert ev["reason"] == "revoked" and "d2" not in ev["holders"], ev
    st = custody_state(mon, c, lambda s: s["state"] == "active" and s["epoch"] == ev["epoch"], timeout=H.T(40))
    assert sorted(h["id"] for h in st["holders"]) == ["d1", "d3", "d4"], st
    mon.close()


def test_a_deal_cut_short_by_kill9_leaves_the_old_epoch_usable(cluster):
    c, agents = cluster
    b, mon, st = deal_and_activate(c, agents)
    # d1 is frozen (still connected, so still chosen): epoch 2 is dealt but
    # can never be fully acknowledged; the broker is killed mid-deal.
    agents["d1"].p.send_signal(signal.SIGSTOP)
    try:
        custody_cli(b, c, "rotate")
        ev = ledger_event(mon, c, lambda e: e["type"] == "custody_epoch" and e["epoch"] == 2)
        assert "d1" in ev["holders"], ev
        mon.no_message(c.topic("ledger", "events"), within=H.T(1),
                       pred=lambda m: m.json()["type"] == "custody_active" and m.json()["epoch"] == 2)
        b.kill9()
    finally:
        agents["d1"].p.send_signal(signal.SIGCONT)
    mon.close()
    stop_agents(agents)
    types = [(e["type"], e.get("epoch")) for e in c.show_json()]
    assert ("custody_epoch", 2) in types and ("custody_active", 2) not in types, types

    # The restart recovers S from epoch 1's shares (the holders keep them
    # while epoch 2 is not active), then seals; a sealed restart unseals
    # with two holders' epoch-1 shares.
    b2 = c.broker(**CUSTODY_OPTS).start()
    mon = monitor(b2, c)
    start_agents(b2, c, agents, DEVICES[:3])
    ev = event(mon, c, lambda e: e["event"] == "recovered", timeout=H.T(20))
    assert ev["epoch"] == 1, ev
    st = custody_state(mon, c, lambda s: s["state"] == "active" and s["epoch"] == 1)
    seal(b2, c, mon)
    mon.close()
    stop_agents(agents)
    b2.stop()
    b3 = c.broker(**CUSTODY_OPTS).start()
    mon = monitor(b3, c)
    start_agents(b3, c, agents, ["d2", "d3"])
    ev = event(mon, c, lambda e: e["event"] == "unsealed", timeout=H.T(20))
    assert ev["epoch"] == 1, ev
    r = session_key_works(b3, c, "d4", "d2")
    assert r.get("type") == "session_key", r
    mon.close()


def test_seal_is_refused_until_an_epoch_is_active(cluster):
    c, agents = cluster
    b = c.broker(**CUSTODY_OPTS).start()
    mon = monitor(b, c)
    start_agents(b, c, agents, ["d1", "d2"])   # two of the three holders needed
    st = custody_state(mon, c, lambda s: "2 eligible" in s.get("message", ""))
    assert st["state"] == "dealing" and st["epoch"] == 0 and st["holders"] == [], st
    p = custody_cli(b, c, "seal", check=False)
    assert p.returncode == 1 and "no_epoch" in p.stderr, (p.stdout, p.stderr)
    assert (c.ledger / "ch.key").exists() and not (c.ledger / "ch.key.sealed").exists()
    p = custody_cli(b, c, "rotate", check=False)
    assert p.returncode == 1 and "no_epoch" in p.stderr, (p.stdout, p.stderr)
    # The third holder arrives: the first epoch is dealt without being asked.
    start_agents(b, c, agents, ["d3"])
    st = custody_state(mon, c, lambda s: s["state"] == "active")
    assert st["epoch"] == 1 and (c.ledger / "ch.key.sealed").exists(), st
    mon.close()


def test_recover_writes_a_key_file_byte_identical_to_the_original(cluster, tmp_path):
    c, agents = cluster
    original = (c.ledger / "ch.key").read_bytes()
    b, mon, st = deal_and_activate(c, agents)
    seal(b, c, mon)
    out = tmp_path / "recovered.key"
    p = custody_cli(b, c, "recover", "--out", out, "--ch-key", c.ch_pubkey)
    assert "recovered the cluster-head key of epoch 1" in p.stdout, (p.stdout, p.stderr)
    assert out.read_bytes() == original
    assert out.stat().st_mode & 0o777 == 0o600
    # The shares went to the CLI's one-time key: the events name the
    # holders that released them; the broker's log never shows a share.
    ev = event(mon, c, lambda e: e["event"] == "share" and "recover" in e.get("message", ""))
    assert ev["holder"] in ("d1", "d2", "d3"), ev
    # An existing file is never overwritten, and a wrong pinned key is refused.
    p = custody_cli(b, c, "recover", "--out", out, check=False)
    assert p.returncode == 1 and "exists" in p.stderr, p.stderr
    p = custody_cli(b, c, "recover", "--out", tmp_path / "other.key", "--ch-key", "11" * 32, check=False)
    assert p.returncode == 1 and "another cluster-head public key" in p.stderr and not (tmp_path / "other.key").exists(), p.stderr
    assert out.read_bytes() == original
    mon.close()


def held_epochs(c, d):
    """The epochs d's KEY.shares holds, decoded with the documented layout
    (docs/PROTOCOL.md, "Custody: the holder") by tests/custody's Python."""
    path = Path(str(c.ids[d].key) + ".shares")
    entries = custody_ref.store_decode(path.read_bytes(), igkeys.seed_of(c.ids[d].key), d)
    return sorted(e["epoch"] for e in entries)


def test_a_holder_left_out_of_a_rotation_while_offline_wipes_its_share_when_back(cluster):
    c, agents = cluster
    b, mon, st = deal_and_activate(c, agents, {"custody_holder_timeout_s": 3})
    assert sorted(h["id"] for h in st["holders"]) == ["d1", "d2", "d3"], st
    assert held_epochs(c, "d1") == [1]
    start_agents(b, c, agents, ["d4"])
    time.sleep(H.T(2))   # d4's status is in before the rotation chooses
    # d1 goes away; 3 s later epoch 2 is dealt to d2, d3 and d4.
    stop_agents(agents, ["d1"])
    ev = ledger_event(mon, c, lambda e: e["type"] == "custody_epoch" and e["epoch"] == 2, timeout=H.T(30))
    assert ev["reason"] == "offline" and "d1" not in ev["holders"], ev
    custody_state(mon, c, lambda s: s["state"] == "active" and s["epoch"] == 2, timeout=H.T(40))
    # Until it is back, d1's disk still holds its share of the same S.
    assert held_epochs(c, "d1") == [1]

    # Back: its status shows epoch 1, the cluster head tells it epoch 2 is
    # active, and it wipes the share, on disk too.
    start_agents(b, c, agents, ["d1"])
    agents["d1"].wait_line(r"epoch 2 is active; this device holds no share of it; wiped the shares of epochs 1",
                           timeout=H.T(15))
    b.wait_log(r"d1 still holds a share of epoch 1; told it epoch 2 is active", timeout=H.T(5))
    H.wait_for(lambda: held_epochs(c, "d1") == [], H.T(5), what="d1's KEY.shares without epoch 1")
    for d in ("d2", "d3", "d4"):
        assert held_epochs(c, d) == [2], d
    # d1's status no longer names any epoch (so nothing is sent again).
    st_topic = c.topic("dev", "d1", "status")
    mon.subscribe_ok(st_topic)
    mon.wait_message(st_topic, pred=lambda m: m.json().get("state") == "online" and "custody" not in m.json(),
                     timeout=H.T(5))
    mon.close()


def test_policy_holder_roles_decide_who_may_hold(cluster):
    c, agents = cluster
    c.enroll("an1", "analyst")
    policy = H.write_policy(c.root / "policy.json", lambda p: p.update({"custody": {"holder_roles": ["device"]}}))
    b = c.broker(policy=policy, **CUSTODY_OPTS).start()
    mon = monitor(b, c)
    # Two devices and an analyst online: with devices only, two are eligible
    # and nothing is dealt.
    start_agents(b, c, agents, ["d1", "d2", "an1"])
    st = custody_state(mon, c, lambda s: "2 eligible" in s.get("message", ""))
    assert st["state"] == "dealing" and st["epoch"] == 0, st
    time.sleep(H.T(2))
    assert status_json(b, c)["epoch"] == 0
    # An unknown role name is refused at reload, and the old policy stays.
    H.write_policy(policy, lambda p: p.update({"custody": {"holder_roles": ["device", "robot"]}}))
    b.hup()
    b.wait_log(r'custody\.holder_roles\[1\]: unknown role \\?"robot\\?"', timeout=H.T(10))
    time.sleep(H.T(2))
    assert status_json(b, c)["epoch"] == 0
    # The analyst role allowed: the next look deals to d1, d2 and an1.
    H.write_policy(policy, lambda p: p.update({"custody": {"holder_roles": ["device", "analyst"]}}))
    b.hup()
    st = custody_state(mon, c, lambda s: s["state"] == "active", timeout=H.T(40))
    assert sorted(h["id"] for h in st["holders"]) == ["an1", "d1", "d2"], st
    mon.close()


def test_a_policy_naming_an_unknown_holder_role_stops_the_start(cluster):
    c, agents = cluster
    policy = H.write_policy(c.root / "policy.json", lambda p: p.update({"custody": {"holder_roles": ["sensor"]}}))
    b = c.broker(policy=policy, **CUSTODY_OPTS)
    with pytest.raises(Exception):
        b.start()
    assert re.search(r'custody\.holder_roles\[0\]: unknown role \\?"sensor\\?"', b.log()), b.log()[-2000:]


# ---- admin unseal mode ---------------------------------------------------------

ADMIN_OPTS = dict(CUSTODY_OPTS, custody_unseal="admin")


def admins_statement(c, epoch, pks):
    """docs/PROTOCOL.md, "Custody: admin approval", built here from the text."""
    return b"iotguard custody admins v1\n" + c.name.encode() + b"\n" + epoch.to_bytes(8, "big") + b"".join(pks)


def kept_admin_lists(c, d):
    path = Path(str(c.ids[d].key) + ".custody-admins")
    assert path.stat().st_mode & 0o777 == 0o600
    return json.loads(path.read_text())


def test_admin_mode_unseals_only_after_an_admin_approves(cluster):
    c, agents = cluster
    b, mon, st = deal_and_activate(c, agents, {"custody_unseal": "admin"})
    # Each holder keeps the admin list the cluster-head key signed for epoch 1.
    admin_pk = bytes.fromhex(c.ids["admin1"].pubkey)
    for d in ("d1", "d2", "d3"):
        lists = kept_admin_lists(c, d)
        assert [l["epoch"] for l in lists] == [1] and lists[0]["admins"] == [admin_pk.hex()], lists
        nacl_verify(bytes.fromhex(c.ch_pubkey), admins_statement(c, 1, [admin_pk]), base64.b64decode(lists[0]["sig"]))
    seal(b, c, mon)
    mon.close()
    stop_agents(agents)
    b.stop()

    # Sealed start with every holder online: no share is asked for.
    b2 = c.broker(**ADMIN_OPTS).start()
    mon = monitor(b2, c)
    start_agents(b2, c, agents, DEVICES[:3])
    st = custody_state(mon, c, lambda s: s["state"] == "sealed" and "pending_approval" in s)
    pending = st["pending_approval"]
    assert pending["epoch"] == 1 and pending["size"] >= 1, pending
    time.sleep(H.T(4))
    s = status_json(b2, c)
    assert s["sealed"] is True and s["shares_collected"] == 0 and s["pending_approval"] == pending, s
    for d in DEVICES[:3]:
        assert "released share" not in agents[d].text(), agents[d].text()[-2000:]
    out = custody_cli(b2, c, "status").stdout
    assert "waits for approval" in out and pending["request"] in out, out

    # A signature that is not admin1's over the pending request is refused.
    admin = H.Admin(b2, "admin1")
    r = admin.one("custody_approve", sig=base64.b64encode(os.urandom(64)).decode())
    H.schema_validate("admin-response", {"responses": [r]})
    assert r["ok"] is False and r["error"] == "bad_signature", r
    admin.close()
    assert status_json(b2, c)["sealed"] is True

    # The admin approves: the holders release and the cluster head unseals.
    p = custody_cli(b2, c, "approve")
    assert "approved" in p.stdout and pending["request"] in p.stdout, p.stdout
    ev = event(mon, c, lambda e: e["event"] == "unsealed", timeout=H.T(20))
    assert ev["epoch"] == 1, ev
    approved = [l for l in b2.log().splitlines() if "approved request" in l]
    assert approved and "admin1" in approved[0], approved
    # The approval went out with the requests, and the statement the admin
    # signed is the documented one (checked with PyNaCl below).
    r = session_key_works(b2, c, "d4", "d1")
    assert r.get("type") == "session_key", r
    # This start did not deal epoch 1, so it re-deals with the current list.
    ev = ledger_event(mon, c, lambda e: e["type"] == "custody_epoch" and e["epoch"] == 2, timeout=H.T(30))
    assert ev["reason"] == "admin", ev
    custody_state(mon, c, lambda s: s["state"] == "active" and s["epoch"] == 2, timeout=H.T(40))
    assert custody_cli(b2, c, "approve", check=False).returncode == 1
    mon.close()


def nacl_verify(pk, message, sig):
    import nacl.signing
    nacl.signing.VerifyKey(pk).verify(message, sig)


def test_admin_mode_enrolling_an_admin_redeals_with_the_new_list(cluster):
    c, agents = cluster
    b, mon, st = deal_and_activate(c, agents, {"custody_unseal": "admin"})
    admin = H.Admin(b, "admin1")
    new = c.new_key("admin2", "admin")
    r = admin.one("enroll", id="admin2", role="admin", pubkey=new.pubkey)
    assert r["ok"], r
    ev = ledger_event(mon, c, lambda e: e["type"] == "custody_epoch" and e["epoch"] == 2, timeout=H.T(30))
    assert ev["reason"] == "admin", ev
    custody_state(mon, c, lambda s: s["state"] == "active" and s["epoch"] == 2, timeout=H.T(40))
    want = sorted([c.ids["admin1"].pubkey, new.pubkey])
    for d in ("d1", "d2", "d3"):
        lists = H.wait_for(lambda: (lambda l: l if [x["epoch"] for x in l] == [2] else None)(kept_admin_lists(c, d)),
                           H.T(10), what="%s keeps only epoch 2's list" % d)
        assert lists[0]["admins"] == want, lists
        nacl_verify(bytes.fromhex(c.ch_pubkey), admins_statement(c, 2, [bytes.fromhex(k) for k in want]),
                    base64.b64decode(lists[0]["sig"]))
    admin.close()
    mon.close()


def test_admin_mode_recover_signs_its_own_approval(cluster, tmp_path):
    c, agents = cluster
    original = (c.ledger / "ch.key").read_bytes()
    b, mon, st = deal_and_activate(c, agents, {"custody_unseal": "admin"})
    # Without an approval the broker refuses at once (the holders would).
    admin = H.Admin(b, "admin1")
    r = admin.one("custody_recover", pk="11" * 32)
    H.schema_validate("admin-response", {"responses": [r]})
    assert r["ok"] is False and r["error"] == "approval_needed", r
    s = admin.one("custody_status")
    H.schema_validate("admin-response", {"responses": [s]})
    assert s["unseal"] == "admin" and s["ledger"]["size"] >= 1, s
    admin.close()
    out = tmp_path / "recovered.key"
    p = custody_cli(b, c, "recover", "--out", out, "--ch-key", c.ch_pubkey)
    assert "recovered the cluster-head key of epoch 1" in p.stdout, (p.stdout, p.stderr)
    assert out.read_bytes() == original
    released = sum("released share of epoch 1" in agents[d].text() for d in DEVICES[:3])
    assert released >= K, released
    mon.close()
