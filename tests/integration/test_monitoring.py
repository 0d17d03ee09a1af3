"""What a monitor sees: ledger events, the signed head, stats, device status.

Every captured message is validated against the JSON schemas in schema/.
"""
import base64
import hashlib
import re
import time

import nacl.signing
import pytest

import igharness as H


def new_pk():
    return nacl.signing.SigningKey.generate().verify_key.encode().hex()


def check_signed_note(text, origin, ch_pubkey_hex):
    """Verifies a C2SP checkpoint note with the cluster-head key."""
    body, sep, sigs = text.partition("\n\n")
    assert sep, "checkpoint has no blank line before the signatures"
    lines = body.split("\n")
    assert lines[0] == origin
    size = int(lines[1])
    root = base64.b64decode(lines[2], validate=True)
    assert len(root) == 32
    sig_line = sigs.split("\n")[0]
    m = re.fullmatch("\u2014 (\\S+) (\\S+)", sig_line)
    assert m, "bad signature line %r" % sig_line
    assert m.group(1) == origin
    blob = base64.b64decode(m.group(2))
    pk = bytes.fromhex(ch_pubkey_hex)
    key_id = hashlib.sha256(origin.encode() + b"\n" + b"\x01" + pk).digest()[:4]
    assert blob[:4] == key_id, "key id does not match the cluster-head key"
    nacl.signing.VerifyKey(pk).verify((body + "\n").encode(), blob[4:])
    return size, root


@pytest.mark.vg
def test_events_one_per_record(broker, cluster):
    mon = broker.connect("mon1")
    mon.subscribe_ok(cluster.topic("ledger", "events"))
    admin = H.Admin(broker, "admin1")
    pks = {}
    for i in range(3):
        pks["ev%d" % i] = new_pk()
        assert admin.one("enroll", id="ev%d" % i, role="device", pubkey=pks["ev%d" % i])["ok"]
    assert admin.one("revoke", id="ev1", reason="because")["ok"]
    # a refused command appends nothing
    assert not admin.one("revoke", id="ev1")["ok"]
    H.wait_for(lambda: len(mon.take(cluster.topic("ledger", "events"))) >= 4, H.T(5), what="4 events")
    time.sleep(0.5)   # nothing more may follow
    evs = [m.json() for m in mon.take(cluster.topic("ledger", "events"))]
    assert len(evs) == 4, evs
    for e in evs:
        H.schema_validate("ledger-event", e)
        assert re.fullmatch(r"[0-9a-f]{64}", e["hash"]) and re.fullmatch(r"[0-9a-f]{64}", e["prev"])
    assert [e["index"] for e in evs] == [8, 9, 10, 11]
    assert [e["type"] for e in evs] == ["enroll", "enroll", "enroll", "revoke"]
    assert [e["id"] for e in evs] == ["ev0", "ev1", "ev2", "ev1"]
    assert evs[0]["pubkey"] == pks["ev0"] and evs[0]["role"] == "device" and evs[0]["by"] == "admin1"
    assert evs[3]["reason"] == "because"
    for a, b in zip(evs, evs[1:]):
        assert b["prev"] == a["hash"], "events must chain"
    # The events are exactly the ledger's records.
    recs = {r["index"]: r for r in cluster.show_json()}
    for e in evs:
        assert recs[e["index"]] == e
    assert recs[8]["prev"] == recs[7]["hash"]


@pytest.mark.vg
def test_head_is_signed_and_tracks_the_ledger(broker, cluster):
    mon = broker.connect("mon1")
    mon.subscribe_ok(cluster.topic("ledger", "head"))
    head = mon.wait_message(cluster.topic("ledger", "head")).json()
    H.schema_validate("ledger-head", head)
    origin = "iotguard/" + cluster.name
    assert head["origin"] == origin and head["ch_pubkey"] == cluster.ch_pubkey
    size, root = check_signed_note(head["checkpoint"], origin, cluster.ch_pubkey)
    assert size == head["size"] == 8
    assert base64.b64decode(head["root"]) == root
    # After an enrolment the head moves on.
    admin = H.Admin(broker, "admin1")
    assert admin.one("enroll", id="h1", role="device", pubkey=new_pk())["ok"]
    newer = mon.wait_message(cluster.topic("ledger", "head"), pred=lambda m: m.json()["size"] == 9,
                             timeout=H.T(5)).json()
    H.schema_validate("ledger-head", newer)
    size2, root2 = check_signed_note(newer["checkpoint"], origin, cluster.ch_pubkey)
    assert size2 == 9 and root2 != root
    # It matches what the offline verifier computes.
    out = cluster.verify()
    assert "height 9" in out


@pytest.mark.vg
def test_stats(broker, cluster):
    mon = broker.connect("mon1")
    d = broker.connect("dev1")
    mon.subscribe_ok(cluster.topic("stats"))
    H.try_connect(broker, "dev2", cluster.token("dev2", key=cluster.ids["dev3"].key))   # bad_signature
    H.try_connect(broker, "dev2", "garbage")                                           # malformed

    def settled(m):
        s = m.json()
        return s["auth"]["refused"].get("bad_signature", 0) >= 1 and s["auth"]["refused"].get("malformed", 0) >= 1

    s = mon.wait_message(cluster.topic("stats"), pred=settled, timeout=H.T(5)).json()
    H.schema_validate("stats", s)
    assert s["cluster"] == cluster.name
    assert s["connected"]["monitor"] == 1 and s["connected"]["device"] == 1
    assert s["connected"]["total"] == 2
    assert s["auth"]["accepted"] >= 2 and s["auth"]["refused_total"] >= 2
    assert s["identities"] == {"active": 7, "revoked": 0}
    assert s["ledger"]["height"] == 8 and s["ledger"]["pending"] == 0
    # stats_interval 1: they keep coming, about once a second
    n = len(mon.take(cluster.topic("stats")))
    H.wait_for(lambda: len(mon.take(cluster.topic("stats"))) >= n + 2, H.T(4), what="two more stats")
    d.close()
    s2 = mon.wait_message(cluster.topic("stats"), start=len(mon.messages),
                          pred=lambda m: m.json()["connected"]["device"] == 0, timeout=H.T(5)).json()
    assert s2["connected"]["total"] == 1
    assert s2["uptime_s"] >= s["uptime_s"]


def test_stats_off(cluster):
    b = cluster.broker(stats_interval=0).start()
    mon = b.connect("mon1")
    mon.subscribe_ok(cluster.topic("stats"))
    mon.no_message(cluster.topic("stats"), within=2.5)


@pytest.mark.vg
def test_agents_status_and_ping(broker, cluster):
    mon = broker.connect("mon1")
    mon.subscribe_ok(cluster.topic("dev", "+", "status"))
    agents = []
    for ident in ("dev1", "dev2"):
        agents.append(H.Proc([H.AGENT, "--host", "127.0.0.1", "--port", broker.port, "--cluster", cluster.name,
                              "--id", ident, "--key", cluster.ids[ident].key, "--heartbeat", "1", "--ping"],
                             name="agent-" + ident))
    try:
        for ident in ("dev1", "dev2"):
            st = mon.wait_message(cluster.topic("dev", ident, "status"),
                                  pred=lambda m: m.json()["state"] == "online", timeout=H.T(10)).json()
            H.schema_validate("status", st)
            assert st["id"] == ident
        # heartbeats: seq grows
        seqs = lambda ident: [m.json().get("seq") for m in mon.take(cluster.topic("dev", ident, "status"))
                              if m.json().get("state") == "online"]
        H.wait_for(lambda: len(seqs("dev1")) >= 3, H.T(6), what="3 heartbeats of dev1")
        s = seqs("dev1")
        assert s == sorted(s) and len(set(s)) == len(s), s
        for a in agents:
            a.wait_line(r"pong", timeout=H.T(10))
        # A clean stop announces offline.
        assert agents[0].stop() == 0, agents[0].text()
        off = mon.wait_message(cluster.topic("dev", "dev1", "status"),
                               pred=lambda m: m.json()["state"] == "offline", timeout=H.T(5)).json()
        H.schema_validate("status", off)
        # The last status is retained as offline for late subscribers.
        late = broker.connect("admin1")
        late.subscribe_ok(cluster.topic("dev", "dev1", "status"))
        r = late.wait_message(cluster.topic("dev", "dev1", "status"))
        assert r.retain and r.json()["state"] == "offline"
    finally:
        for a in agents:
            a.stop()


def test_agent_will_on_kill(broker, cluster):
    mon = broker.connect("mon1")
    mon.subscribe_ok(cluster.topic("dev", "+", "status"))
    a = H.Proc([H.AGENT, "--host", "127.0.0.1", "--port", broker.port, "--cluster", cluster.name,
                "--id", "dev3", "--key", cluster.ids["dev3"].key, "--heartbeat", "1"], name="agent-dev3")
    try:
        mon.wait_message(cluster.topic("dev", "dev3", "status"), pred=lambda m: m.json()["state"] == "online",
                         timeout=H.T(10))
        a.stop(sig=9)
        will = mon.wait_message(cluster.topic("dev", "dev3", "status"),
                                pred=lambda m: m.json()["state"] == "offline", timeout=H.T(10))
        assert will.json() == {"id": "dev3", "state": "offline"}
        H.schema_validate("status", will.json())
    finally:
        a.stop()


def test_agent_kicked_on_revoke_and_refused(broker, cluster):
    mon = broker.connect("mon1")
    mon.subscribe_ok(cluster.topic("dev", "+", "status"))
    a = H.Proc([H.AGENT, "--host", "127.0.0.1", "--port", broker.port, "--cluster", cluster.name,
                "--id", "dev2", "--key", cluster.ids["dev2"].key, "--heartbeat", "1"], name="agent-dev2")
    try:
        mon.wait_message(cluster.topic("dev", "dev2", "status"), pred=lambda m: m.json()["state"] == "online",
                         timeout=H.T(10))
        admin = H.Admin(broker, "admin1")
        since = broker.mark()
        assert admin.one("revoke", id="dev2")["ok"]
        # the will is published when the session is cut, then the revocation
        will = mon.wait_message(cluster.topic("dev", "dev2", "status"),
                                pred=lambda m: m.json()["state"] == "offline", timeout=H.T(5))
        H.schema_validate("status", will.json())
        rv = mon.wait_message(cluster.topic("dev", "dev2", "status"),
                              pred=lambda m: m.json()["state"] == "revoked", timeout=H.T(5))
        H.schema_validate("status", rv.json())
        # a late subscriber learns it from the retained status
        late = broker.connect("admin2")
        late.subscribe_ok(cluster.topic("dev", "dev2", "status"))
        assert late.wait_message(cluster.topic("dev", "dev2", "status")).json()["state"] == "revoked"
        # the agent retries and is refused as revoked
        assert broker.refusal_reason("dev2", since, timeout=H.T(10)) == "revoked"
    finally:
        a.stop()


def test_session_takeover_and_kick_keep_counts_right(broker, cluster):
    mon = broker.connect("mon1")
    mon.subscribe_ok(cluster.topic("stats"))

    def stats_where(pred):
        start = len(mon.messages)
        return mon.wait_message(cluster.topic("stats"), start=start, pred=lambda m: pred(m.json()),
                                timeout=H.T(5)).json()

    first = broker.connect("dev1")
    second = broker.connect("dev1")          # takes the session over
    first.wait_disconnect()
    s = stats_where(lambda s: True)
    assert s["connected"]["device"] == 1 and s["connected"]["total"] == 2, s["connected"]
    d2 = broker.connect("dev2")
    stats_where(lambda s: s["connected"]["device"] == 2)
    second.close()
    s = stats_where(lambda s: s["connected"]["device"] == 1)
    assert s["connected"]["total"] == 2
    # a revocation's kick is counted as a disconnect, and in identities
    admin = H.Admin(broker, "admin1")
    assert admin.one("revoke", id="dev2")["ok"]
    d2.wait_disconnect()
    s = stats_where(lambda s: s["connected"]["device"] == 0)
    assert s["identities"] == {"active": 6, "revoked": 1}
    assert s["connected"]["admin"] == 1 and s["connected"]["monitor"] == 1
