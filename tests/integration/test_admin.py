"""The admin API on $CONTROL/iotguard/v1, raw and through the CLI."""
import json
import time

import nacl.signing
import pytest

import igharness as H


def new_pk():
    return nacl.signing.SigningKey.generate().verify_key.encode().hex()


def online(broker, *args, user="admin1", check=True):
    c = broker.cluster
    return H.cli(*args, "--host", "127.0.0.1", "--port", broker.port, "--cluster", c.name,
                 "--user", user, "--key", c.ids[user].key, check=check)


@pytest.mark.vg
def test_raw_enroll_get_list_revoke(broker, cluster):
    admin = H.Admin(broker, "admin1")
    new = cluster.new_key("dev9")
    r = admin.one("enroll", id="dev9", role="device", pubkey=new.pubkey)
    H.schema_validate("admin-response", {"responses": [r]})
    assert r["ok"] is True and r["command"] == "enroll" and r["id"] == "dev9"
    assert isinstance(r["index"], int) and r["index"] == 8  # genesis + 7 offline enrolls, then this
    # The new identity can connect at once.
    d = broker.connect("dev9")

    g = admin.one("get_identity", id="dev9")
    H.schema_validate("admin-response", {"responses": [g]})
    idn = g["identity"]
    assert g["ok"] is True
    assert idn["id"] == "dev9" and idn["role"] == "device" and idn["status"] == "active"
    assert idn["pubkey"] == new.pubkey and idn["enrolled_index"] == r["index"]
    assert idn["connected"] is True and "revoked_index" not in idn

    lst = admin.one("list_identities")
    H.schema_validate("admin-response", {"responses": [lst]})
    ids = {i["id"]: i for i in lst["identities"]}
    assert lst["ok"] is True and lst["total"] == len(ids) == 8
    assert set(ids) == {"admin1", "admin2", "mon1", "an1", "dev1", "dev2", "dev3", "dev9"}
    assert ids["admin1"]["connected"] is True and ids["dev1"]["connected"] is False

    lst = admin.one("list_identities", role="device", offset=1, limit=2)
    assert lst["total"] == 4 and lst["offset"] == 1 and len(lst["identities"]) == 2
    assert all(i["role"] == "device" for i in lst["identities"])

    rv = admin.one("revoke", id="dev9", reason="stolen")
    H.schema_validate("admin-response", {"responses": [rv]})
    assert rv["ok"] is True and rv["id"] == "dev9" and rv["disconnected"] is True
    assert rv["index"] == r["index"] + 1
    d.wait_disconnect()
    g = admin.one("get_identity", id="dev9")
    assert g["identity"]["status"] == "revoked" and g["identity"]["revoked_index"] == rv["index"]
    assert g["identity"]["connected"] is False

    lst = admin.one("list_identities", status="revoked")
    assert [i["id"] for i in lst["identities"]] == ["dev9"]


@pytest.mark.vg
def test_raw_errors(broker, cluster):
    admin = H.Admin(broker, "admin1")
    cases = [
        ({"command": "enroll", "id": "dev1", "role": "device", "pubkey": new_pk()}, "already_enrolled"),
        ({"command": "revoke", "id": "nobody"}, "not_found"),
        ({"command": "get_identity", "id": "nobody"}, "not_found"),
        ({"command": "frobnicate"}, "unknown_command"),
        ({"command": "enroll", "id": "bad id!", "role": "device", "pubkey": new_pk()}, "malformed"),
        ({"command": "enroll", "id": "x1", "role": "king", "pubkey": new_pk()}, "malformed"),
        ({"command": "enroll", "id": "x1", "role": "device", "pubkey": "abcd"}, "malformed"),
        ({"command": "enroll", "id": "x1", "role": "device"}, "malformed"),
    ]
    res = admin.request(*[c for c, _ in cases])
    H.schema_validate("admin-response", res)
    assert len(res["responses"]) == len(cases)
    for (cmd, code), r in zip(cases, res["responses"]):
        assert r["ok"] is False and r["error"] == code, (cmd, r)
        assert isinstance(r["message"], str) and r["message"]
    # revoking twice
    assert admin.one("revoke", id="dev3")["ok"] is True
    r = admin.one("revoke", id="dev3")
    assert r["ok"] is False and r["error"] == "already_revoked"
    # a request that is not a command list
    admin.m.publish(H.ADMIN_TOPIC, b"this is not json")
    bad = admin.m.wait_message(H.ADMIN_RESPONSE, pred=lambda m: m.json()["responses"][0]["error"] == "malformed")
    H.schema_validate("admin-response", bad.json())
    start = len(admin.m.messages)
    admin.m.publish(H.ADMIN_TOPIC, {"commands": []})
    admin.m.wait_message(H.ADMIN_RESPONSE, start=start,
                         pred=lambda m: m.json()["responses"][0]["error"] == "malformed")


def test_batch_in_one_request(broker, cluster):
    admin = H.Admin(broker, "admin1")
    cmds = [{"command": "enroll", "id": "b%d" % i, "role": "device", "pubkey": new_pk()} for i in range(10)]
    cmds.append({"command": "get_identity", "id": "dev1"})
    res = admin.request(*cmds)
    rs = res["responses"]
    assert [r["command"] for r in rs] == ["enroll"] * 10 + ["get_identity"]
    assert all(r["ok"] for r in rs)
    idx = [r["index"] for r in rs[:10]]
    assert idx == sorted(idx) and len(set(idx)) == 10
    # a duplicate id inside one request: the second is refused
    pk = new_pk()
    rs = admin.request({"command": "enroll", "id": "dupe", "role": "device", "pubkey": pk},
                       {"command": "enroll", "id": "dupe", "role": "device", "pubkey": pk})["responses"]
    assert rs[0]["ok"] is True and rs[1]["ok"] is False and rs[1]["error"] == "already_enrolled"


@pytest.mark.vg
def test_responses_only_to_the_requester(broker, cluster):
    a1 = H.Admin(broker, "admin1")
    a2 = H.Admin(broker, "admin2")
    mon = broker.connect("mon1")
    r = a1.one("get_identity", id="dev1")
    assert r["ok"] is True
    a2.m.no_message(H.ADMIN_RESPONSE, within=1.0)
    assert mon.take() == []


@pytest.mark.vg
@pytest.mark.parametrize("ident", ["dev1", "mon1", "an1"])
def test_non_admin_cannot_use_the_api(broker, cluster, ident):
    c = broker.connect(ident)
    # Their subscription to the response topic is refused ...
    assert c.subscribe(H.ADMIN_RESPONSE)[0] >= 0x80
    pk = new_pk()
    c.publish(H.ADMIN_TOPIC, {"commands": [{"command": "enroll", "id": "evil", "role": "admin",
                                             "pubkey": pk, "correlation": "x"}]})
    c.publish(H.ADMIN_TOPIC, {"commands": [{"command": "revoke", "id": "admin1", "correlation": "y"}]})
    time.sleep(1.0)
    # ... whatever came back (nothing, or a refusal), nothing changed.
    for m in c.take(H.ADMIN_RESPONSE):
        for r in m.json()["responses"]:
            assert r["ok"] is False and r["error"] == "forbidden"
    admin = H.Admin(broker, "admin1")
    assert admin.one("get_identity", id="evil")["error"] == "not_found"
    assert admin.one("get_identity", id="admin1")["identity"]["status"] == "active"


@pytest.mark.vg
def test_online_revoke_kicks_within_a_second(broker, cluster):
    d = broker.connect("dev2")
    d.subscribe_ok(cluster.topic("dev", "dev2", "inbox"))
    watcher = broker.connect("mon1")
    watcher.subscribe_ok(cluster.topic("ledger", "events"))
    admin = H.Admin(broker, "admin1")
    t0 = time.monotonic()
    cors = admin.send({"command": "revoke", "id": "dev2", "reason": "compromised"})
    t_kick = d.wait_disconnect(timeout=H.T(2))
    elapsed = t_kick - t0
    print("revoke -> disconnect: %.1f ms" % (elapsed * 1000))
    limit = 1.0 * max(1.0, H.SLOW / 2)
    assert elapsed < limit, "revoked client was cut after %.3f s (limit %.1f s)" % (elapsed, limit)
    resp = admin.m.wait_message(H.ADMIN_RESPONSE, pred=lambda m: m.json()["responses"][0]["correlation"] == cors[0])
    r = resp.json()["responses"][0]
    assert r["ok"] is True and r["disconnected"] is True
    ev = watcher.wait_message(cluster.topic("ledger", "events"), pred=lambda m: m.json()["type"] == "revoke").json()
    assert ev["id"] == "dev2" and ev["reason"] == "compromised" and ev["by"] == "admin1"
    H.schema_validate("ledger-event", ev)
    # New attempts are refused, with the reason logged.
    since = broker.mark()
    assert H.try_connect(broker, "dev2", cluster.token("dev2")) in H.NOT_AUTHORISED_V5
    assert broker.refusal_reason("dev2", since) == "revoked"
    assert H.try_connect(broker, "dev2", cluster.token("dev2"), v5=False) in H.NOT_AUTHORISED_V311


def test_revoked_then_reenrolled_with_new_key(broker, cluster):
    admin = H.Admin(broker, "admin1")
    old_tok = cluster.token("dev1")
    assert admin.one("revoke", id="dev1")["ok"] is True
    fresh = cluster.new_key("dev1")
    # A revoked id comes back only when the admin says so (issue 7).
    r = admin.one("enroll", id="dev1", role="device", pubkey=fresh.pubkey)
    assert r["ok"] is False and r["error"] == "already_revoked" and "reenroll" in r["message"], r
    assert H.try_connect(broker, "dev1", cluster.token("dev1")) in H.NOT_AUTHORISED_V5
    r = admin.one("enroll", id="dev1", role="device", pubkey=fresh.pubkey, reenroll=True)
    assert r["ok"] is True
    assert H.try_connect(broker, "dev1", cluster.token("dev1")) == 0
    since = broker.mark()
    assert H.try_connect(broker, "dev1", old_tok) in H.NOT_AUTHORISED_V5
    assert broker.refusal_reason("dev1", since) == "bad_signature"


@pytest.mark.vg
def test_cli_online_enroll_get_list_revoke(broker, cluster):
    new = cluster.new_key("cli1")
    p = online(broker, "enroll", "--id", "cli1", "--pubkey", new.pubkey, "--role", "device")
    assert "enrolled cli1" in p.stdout
    d = broker.connect("cli1")

    p = online(broker, "get", "--id", "cli1", "--json")
    g = json.loads(p.stdout)
    assert g["ok"] is True and g["identity"]["status"] == "active" and g["identity"]["connected"] is True
    H.schema_validate("admin-response", {"responses": [g]})

    p = online(broker, "list", "--json")
    lst = json.loads(p.stdout)
    assert lst["total"] == 8 and "cli1" in [i["id"] for i in lst["identities"]]

    p = online(broker, "list", "--role", "admin")
    assert "admin1" in p.stdout and "admin2" in p.stdout and "dev1" not in p.stdout

    p = online(broker, "revoke", "--id", "cli1", "--reason", "test")
    assert "revoked cli1" in p.stdout and "disconnected" in p.stdout
    d.wait_disconnect()

    p = online(broker, "revoke", "--id", "cli1", check=False)
    assert p.returncode == 1 and "already revoked" in p.stderr

    # The broker wrote it all to the ledger (readable while it runs).
    recs = cluster.show_json()
    assert [r["type"] for r in recs[-2:]] == ["enroll", "revoke"]
    assert recs[-2]["id"] == "cli1" and recs[-2]["by"] == "admin1"
    assert recs[-1]["id"] == "cli1" and recs[-1]["reason"] == "test"


def test_cli_online_refused_for_non_admin_and_bad_key(broker, cluster):
    p = online(broker, "list", user="mon1", check=False)
    assert p.returncode != 0
    # key of another identity: the broker refuses the connection
    c = broker.cluster
    p = H.cli("list", "--host", "127.0.0.1", "--port", broker.port, "--cluster", c.name, "--user", "admin1",
              "--key", c.ids["dev1"].key, "--timeout", "5", check=False)
    assert p.returncode != 0
    assert p.stderr.strip(), "a failure must say why"


def test_offline_enroll_refused_while_broker_runs(broker, cluster):
    new = cluster.new_key("off1")
    p = H.cli("enroll", "--ledger", cluster.ledger, "--id", "off1", "--pubkey", new.pubkey, "--role", "device",
              check=False)
    assert p.returncode != 0
    assert "--host" in p.stderr, "the message should say how to enroll through the broker: %s" % p.stderr
    p = H.cli("revoke", "--ledger", cluster.ledger, "--id", "dev1", check=False)
    assert p.returncode != 0
    # reads still work while the broker holds the ledger
    p = H.cli("get", "--ledger", cluster.ledger, "--id", "dev1", "--json")
    assert json.loads(p.stdout)["identity"]["status"] == "active"
    H.cli("verify", "--ledger", cluster.ledger)


def test_changes_survive_restart(broker, cluster):
    admin = H.Admin(broker, "admin1")
    new = cluster.new_key("keep1")
    assert admin.one("enroll", id="keep1", role="monitor", pubkey=new.pubkey)["ok"]
    assert admin.one("revoke", id="dev3")["ok"]
    admin.close()
    broker.stop()
    b2 = cluster.broker().start()
    assert H.try_connect(b2, "keep1", cluster.token("keep1")) == 0
    assert H.try_connect(b2, "dev3", cluster.token("dev3")) in H.NOT_AUTHORISED_V5
    p = H.cli("get", "--ledger", cluster.ledger, "--id", "keep1", "--json")
    assert json.loads(p.stdout)["identity"]["role"] == "monitor"


def test_oversized_and_overfull_requests(broker, cluster):
    admin = H.Admin(broker, "admin1")
    start = len(admin.m.messages)
    admin.m.publish(H.ADMIN_TOPIC, {"commands": [{"command": "get_identity", "id": "dev1",
                                                  "pad": "x" * 70000}]})
    r = admin.m.wait_message(H.ADMIN_RESPONSE, start=start).json()["responses"]
    assert len(r) == 1 and r[0]["ok"] is False and r[0]["error"] == "malformed"
    start = len(admin.m.messages)
    admin.m.publish(H.ADMIN_TOPIC, {"commands": [{"command": "get_identity", "id": "dev1"}] * 65})
    r = admin.m.wait_message(H.ADMIN_RESPONSE, start=start).json()["responses"]
    assert r[0]["ok"] is False and r[0]["error"] == "malformed"
    # 64 is allowed
    res = admin.request(*[{"command": "get_identity", "id": "dev1"}] * 64)
    assert len(res["responses"]) == 64 and all(x["ok"] for x in res["responses"])


@pytest.mark.vg
def test_admin_revoking_itself(broker, cluster):
    # The admin is cut off by its own revoke (inside the broker's handling of
    # its PUBLISH); the change is still durable and the broker stays sound.
    admin = H.Admin(broker, "admin2")
    admin.m.publish_async(H.ADMIN_TOPIC, {"commands": [{"command": "revoke", "id": "admin2", "reason": "leaving"}]})
    admin.m.wait_disconnect()
    a1 = H.Admin(broker, "admin1")
    g = a1.one("get_identity", id="admin2")
    assert g["identity"]["status"] == "revoked"


def test_enroll_zone_offline_and_online(cluster):
    # Offline (broker stopped): --zone lands in the enroll record as tag 6.
    off = cluster.new_key("zoff")
    H.cli("enroll", "--ledger", cluster.ledger, "--id", "zoff", "--pubkey", off.pubkey, "--role", "device",
          "--zone", "north-1")
    p = H.cli("enroll", "--ledger", cluster.ledger, "--id", "zbad", "--pubkey", off.pubkey, "--role", "device",
              "--zone", "north wing", check=False)
    assert p.returncode != 0 and "--zone" in p.stderr, p.stderr
    p = H.cli("get", "--ledger", cluster.ledger, "--id", "zoff", "--json")
    assert json.loads(p.stdout)["identity"]["zone"] == "north-1"
    assert "zone:           north-1" in H.cli("get", "--ledger", cluster.ledger, "--id", "zoff").stdout
    assert "zone" not in json.loads(H.cli("get", "--ledger", cluster.ledger, "--id", "dev1",
                                          "--json").stdout)["identity"]
    assert "zone=north-1" in H.cli("show", "--ledger", cluster.ledger).stdout

    # Online: the admin API's "zone", through the CLI and raw.
    broker = cluster.broker().start()
    on = cluster.new_key("zon")
    online(broker, "enroll", "--id", "zon", "--pubkey", on.pubkey, "--role", "device", "--zone", "south.2")
    admin = H.Admin(broker, "admin1")
    raw = cluster.new_key("zraw")
    r = admin.one("enroll", id="zraw", role="device", pubkey=raw.pubkey, zone="east")
    assert r["ok"] is True, r
    r = admin.one("enroll", id="zbad", role="device", pubkey=raw.pubkey, zone="")
    assert r["ok"] is False and r["error"] == "malformed" and "zone" in r["message"], r
    g = admin.one("get_identity", id="zon")
    H.schema_validate("admin-response", {"responses": [g]})
    assert g["identity"]["zone"] == "south.2"
    lst = admin.one("list_identities", role="device")
    H.schema_validate("admin-response", {"responses": [lst]})
    zones = {i["id"]: i.get("zone") for i in lst["identities"]}
    assert zones["zoff"] == "north-1" and zones["zon"] == "south.2" and zones["zraw"] == "east"
    assert zones["dev1"] is None
    admin.close()
    broker.stop()

    # The ledger says the same after a restart, and its events validate.
    events = cluster.show_json()
    for ev in events:
        H.schema_validate("ledger-event", ev)
    assert {e["id"]: e.get("zone") for e in events if e["type"] == "enroll"}["zon"] == "south.2"
    cluster.verify()
    b2 = cluster.broker().start()
    g = H.Admin(b2, "admin1").one("get_identity", id="zraw")
    assert g["identity"]["zone"] == "east"
