"""Topic access: the default role policy, enforced by the real broker.

Subscriptions the policy does not contain are refused in the SUBACK (0x80
for v3.1.1, 0x87 for v5); publishes it does not allow are never delivered.
"""
import json
import time

import pytest

import igharness as H

pytestmark = pytest.mark.vg

V5_NOT_AUTHORIZED = 0x87
V311_FAILURE = 0x80


@pytest.fixture(scope="module")
def watcher(mbroker):
    """admin2 (no other test here uses it), subscribed to every device's status."""
    m = mbroker.connect("admin2")
    m.subscribe_ok(mbroker.cluster.topic("dev", "+", "status"))
    yield m
    m.close()


@pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])
def test_device_cannot_subscribe_other_inbox_or_wildcards(mbroker, mcluster, v5):
    c = mbroker.connect("dev1", v5=v5)
    refused = V5_NOT_AUTHORIZED if v5 else V311_FAILURE
    for filt in [
        mcluster.topic("dev", "dev2", "inbox"),
        mcluster.topic("dev", "+", "inbox"),
        mcluster.topic("#"),
        "iotguard/#",
        "#",
        mcluster.topic("dev", "+", "status"),
        mcluster.topic("ledger", "#"),
        mcluster.topic("ledger", "events"),
        mcluster.topic("stats"),
        H.ADMIN_RESPONSE,
        "$CONTROL/#",
        "$SYS/#",
        "$share/g/" + mcluster.topic("#"),
        "$share/g/" + mcluster.topic("dev", "dev2", "inbox"),
    ]:
        codes = c.subscribe(filt)
        assert codes == [refused], "dev1 subscribe %s: got %r, want [0x%02x]" % (filt, codes, refused)
    # ... while its own topics work.
    assert c.subscribe(mcluster.topic("dev", "dev1", "inbox"))[0] == 1
    assert c.subscribe(mcluster.topic("ledger", "head"))[0] == 1
    assert c.subscribe("$share/g/" + mcluster.topic("dev", "dev1", "inbox"))[0] == 1


def test_denied_subscriptions_are_counted(mbroker, mcluster):
    c = mbroker.connect("mon1")
    c.subscribe_ok(mcluster.topic("stats"))
    first = c.wait_message(mcluster.topic("stats"), timeout=H.T(5)).json()
    d = mbroker.connect("dev2")
    assert d.subscribe(mcluster.topic("#"))[0] >= 0x80
    start = len(c.messages)
    later = c.wait_message(mcluster.topic("stats"), start=start, timeout=H.T(5),
                           pred=lambda m: m.json()["acl"]["denied_subscribe"] > first["acl"]["denied_subscribe"])
    assert later.json()["acl"]["denied_subscribe"] >= first["acl"]["denied_subscribe"] + 1


def test_device_cannot_publish_for_another_device(mbroker, mcluster, watcher):
    other = mbroker.connect("dev2")
    other.subscribe_ok(mcluster.topic("dev", "dev2", "inbox"))
    c = mbroker.connect("dev1")
    watcher.clear()
    forged = {"id": "dev2", "state": "offline", "ts": int(time.time() * 1000), "seq": 1, "uptime_s": 0}
    c.publish(mcluster.topic("dev", "dev2", "status"), forged, qos=1)
    c.publish(mcluster.topic("dev", "dev2", "status"), forged, qos=0)
    c.publish(mcluster.topic("dev", "dev2", "status"), forged, qos=1, retain=True)
    # requests on dev2's channel are not answered to anyone
    c.publish(mcluster.topic("ch", "dev2"), {"type": "ping", "nonce": "forged"})
    # nor may it write into an inbox or on plugin topics
    c.publish(mcluster.topic("dev", "dev2", "inbox"), {"type": "pong", "nonce": "x", "ts": 1})
    c.publish(mcluster.topic("dev", "dev1", "inbox"), {"type": "pong", "nonce": "x", "ts": 1})
    c.publish(mcluster.topic("ledger", "head"), {"origin": "forged"}, retain=True)
    watcher.no_message(mcluster.topic("dev", "dev2", "status"), within=1.0)
    assert other.take() == [], "dev2 received messages it must not: %r" % other.take()
    assert c.connected, "an ACL denial must not cost the session"
    # The retained head was not replaced by the forgery.
    d = mbroker.connect("dev3")
    d.subscribe_ok(mcluster.topic("ledger", "head"))
    assert d.wait_message(mcluster.topic("ledger", "head")).json()["origin"] == "iotguard/" + mcluster.name


def test_device_publishes_own_status_retained(mbroker, mcluster, watcher):
    c = mbroker.connect("dev3")
    status = {"id": "dev3", "state": "online", "ts": int(time.time() * 1000), "seq": 7, "uptime_s": 3}
    start = len(watcher.messages)
    c.publish(mcluster.topic("dev", "dev3", "status"), status, retain=True)
    got = watcher.wait_message(mcluster.topic("dev", "dev3", "status"), start=start)
    assert got.json() == status
    H.schema_validate("status", got.json())
    # A monitor that subscribes later gets it retained.
    late = mbroker.connect("admin1")
    late.subscribe_ok(mcluster.topic("dev", "dev3", "status"))
    r = late.wait_message(mcluster.topic("dev", "dev3", "status"))
    assert r.retain and r.json()["seq"] == 7


def test_device_cannot_retain_on_channel(mbroker, mcluster):
    # ch is publishable but not retainable: a retained request is dropped,
    # so the plugin never answers it.
    c = mbroker.connect("dev1")
    c.subscribe_ok(mcluster.topic("dev", "dev1", "inbox"))
    c.publish(mcluster.topic("ch", "dev1"), {"type": "ping", "nonce": "retained"}, retain=True)
    c.no_message(within=1.0)
    c.publish(mcluster.topic("ch", "dev1"), {"type": "ping", "nonce": "plain"})
    assert c.wait_message(mcluster.topic("dev", "dev1", "inbox")).json()["nonce"] == "plain"


@pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])
def test_monitor_subscriptions(mbroker, mcluster, v5):
    m = mbroker.connect("mon1", v5=v5)
    for filt in [mcluster.topic("dev", "+", "status"), mcluster.topic("dev", "dev1", "status"),
                 mcluster.topic("ledger", "#"), mcluster.topic("ledger", "events"),
                 mcluster.topic("ledger", "head"), mcluster.topic("stats"),
                 mcluster.topic("dev", "mon1", "inbox"),
                 "$share/g/" + mcluster.topic("dev", "+", "status")]:
        codes = m.subscribe(filt)
        assert codes[0] < 0x80, "mon1 subscribe %s refused: %r" % (filt, codes)
    refused = V5_NOT_AUTHORIZED if v5 else V311_FAILURE
    for filt in [mcluster.topic("#"), "iotguard/+/stats", mcluster.topic("dev", "#"),
                 mcluster.topic("dev", "+", "inbox"), mcluster.topic("dev", "dev1", "inbox"),
                 mcluster.topic("ch", "dev1"), H.ADMIN_RESPONSE, "$CONTROL/iotguard/#",
                 "$share/g/" + mcluster.topic("#"), "#", "iotguard/other/stats"]:
        assert m.subscribe(filt) == [refused], "mon1 subscribe %s must be refused" % filt


def test_monitor_cannot_use_admin_api(mbroker, mcluster):
    m = mbroker.connect("mon1")
    m.publish(H.ADMIN_TOPIC, {"commands": [{"command": "list_identities", "correlation": "m1"}]})
    m.no_message(within=1.0)


def test_analyst_is_like_a_device(mbroker, mcluster):
    a = mbroker.connect("an1")
    assert a.subscribe(mcluster.topic("dev", "+", "status"))[0] >= 0x80
    a.subscribe_ok(mcluster.topic("ledger", "head"))
    a.subscribe_ok(mcluster.topic("dev", "an1", "inbox"))
    a.publish(mcluster.topic("ch", "an1"), {"type": "ping", "nonce": "an"})
    assert a.wait_message(mcluster.topic("dev", "an1", "inbox")).json()["nonce"] == "an"


def test_admin_subscriptions(mbroker, mcluster):
    a = mbroker.connect("admin1")
    for filt in [H.ADMIN_RESPONSE, mcluster.topic("ledger", "#"), mcluster.topic("stats"),
                 mcluster.topic("dev", "+", "status")]:
        a.subscribe_ok(filt)
    assert a.subscribe(mcluster.topic("#"))[0] >= 0x80
    assert a.subscribe(mcluster.topic("dev", "dev1", "inbox"))[0] >= 0x80


def test_acl_denials_in_stats(mbroker, mcluster):
    d = mbroker.connect("dev2")
    assert d.subscribe(mcluster.topic("stats"))[0] >= 0x80
    d.publish(mcluster.topic("dev", "dev1", "status"), {"id": "dev1", "state": "online"})
    m = mbroker.connect("mon1")
    m.subscribe_ok(mcluster.topic("stats"))
    s = m.wait_message(mcluster.topic("stats"), timeout=H.T(5),
                       pred=lambda x: x.json()["acl"]["denied_subscribe"] > 0 and
                       x.json()["acl"]["denied_publish"] > 0).json()
    H.schema_validate("stats", s)
    assert "igt1." not in json.dumps(s)


def test_revoke_drops_a_publish_right_already_used(broker, cluster):
    # The ACL remembers recent decisions per client (lib/identity/aclcache.c); a
    # revocation must end them at once. An admin revoking itself stays
    # connected until the broker's next tick, so a status message it sends
    # right behind its own revoke must not pass, though the same publish
    # passed a moment earlier.
    mon = broker.connect("mon1")
    status_topic = cluster.topic("dev", "admin2", "status")
    mon.subscribe_ok(status_topic)
    a = broker.connect("admin2")
    a.subscribe_ok(H.ADMIN_RESPONSE)
    for seq in (1, 2):
        a.publish(status_topic, {"id": "admin2", "state": "online", "ts": 1, "seq": seq, "uptime_s": 0})
        assert mon.wait_message(status_topic, pred=lambda m, s=seq: m.json()["seq"] == s)
    a.publish_async(H.ADMIN_TOPIC, {"commands": [{"command": "revoke", "id": "admin2", "correlation": "self"}]}, qos=0)
    for seq in range(3, 40):
        a.publish_async(status_topic, {"id": "admin2", "state": "online", "ts": 1, "seq": seq, "uptime_s": 0}, qos=0)
    a.wait_disconnect(timeout=H.T(3))
    late = [m.json()["seq"] for m in mon.take(status_topic) if m.json().get("seq", 0) >= 3]
    assert late == [], "a revoked client still published %r" % late
    admin = H.Admin(broker, "admin1")
    assert admin.one("get_identity", id="admin2")["identity"]["status"] == "revoked"
