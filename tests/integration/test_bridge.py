"""test_bridge.py: a hub and a leaf on one shared ledger, bridged as docs/PROTOCOL.md says.

Why this exists: issue 11 lets a device connect to any broker of a cluster,
so whatever the plugin sends a device (session-key boxes, answers) must
reach it wherever it is, its m2m traffic must cross brokers, and the bridge
that carries it must be a revocable identity of role "bridge" that can do
nothing but carry the bridged device topics. These tests run two real
mosquittos with the plugin on one PostgreSQL 15 (igmulti.World, through
tests/pg/pgctl.sh); the leaf's bridge lines are taken from
config/bridge-leaf.conf itself (names substituted), over TLS to the hub, so
the example is known to work. Mosquitto 2.0.11 skips the ACL for a broker's
own bridge connection but raises MOSQ_EVT_MESSAGE for what arrives on it,
and on the hub the leaf is an ordinary client: the tests pin that such
messages are never taken as a device's request.
"""
import json
import re
import secrets
import subprocess
import time

import pytest

import igharness as H
import igmulti as M

LEAF_EXAMPLE = H.ROOT / "config" / "bridge-leaf.conf"
HAPROXY_EXAMPLE = H.ROOT / "config" / "haproxy.cfg"
MKCERTS = H.ROOT / "tools" / "mkcerts.sh"
BRIDGE_TTL = 30 * 86400          # the plugin's default ttl_bridge

IDS = [("admin1", "admin"), ("mon1", "monitor"), ("br9", "bridge")] + [("dev%d" % i, "device") for i in range(1, 10)]


def example_lines():
    """The bridge block of config/bridge-leaf.conf, as written."""
    text = LEAF_EXAMPLE.read_text()
    block = text[text.index("\nconnection hub\n") + 1:]
    return [l for l in block.splitlines() if l.strip() and not l.lstrip().startswith("#")]


def example_bridge_lines(hub_port, ident, token, cafile, cluster):
    """The bridge block of config/bridge-leaf.conf, for this hub and cluster.
    Every placeholder must be found, so the example cannot drift from what
    is tested."""
    subs = {"hub.example.net:8883": "127.0.0.1:%d" % hub_port, "bridge-leaf1": ident,
            "igt1.REPLACE-WITH-THE-BRIDGE-TOKEN": token, "/etc/iotguard/tls/ca.crt": str(cafile),
            "iotguard/demo/": "iotguard/%s/" % cluster}
    used, out = set(), []
    for line in example_lines():
        for k, v in subs.items():
            if k in line:
                line = line.replace(k, v)
                used.add(k)
        out.append(line)
    assert used == set(subs), "config/bridge-leaf.conf lacks %s" % sorted(set(subs) - used)
    return out


class BridgeWorld(M.World):
    """igmulti's world with one hub and one leaf, no load balancer; the hub
    has a second, TLS listener for the bridge."""

    def __init__(self, root, certs):
        super().__init__(root, ids=IDS, nbrokers=2, haproxy=False)
        self.certs = certs

    def _make_broker(self, i):
        b = super()._make_broker(i)
        if i == 1:
            b.tls_port = H.free_port()
            b.listener_lines = b.listener_lines + [
                "listener %d 127.0.0.1" % b.tls_port, "certfile %s" % (self.certs / "server.crt"),
                "keyfile %s" % (self.certs / "server.key")]
        return b

    def bridge_lines(self, ident):
        tok = self.cluster.token(ident, ttl=BRIDGE_TTL)
        return example_bridge_lines(self.brokers[0].tls_port, ident, tok, self.certs / "ca.crt", self.cluster.name)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("bridge")
    certs = root / "tls"
    r = subprocess.run(["bash", str(MKCERTS), str(certs)], capture_output=True, text=True, timeout=H.T(60))
    assert r.returncode == 0, "mkcerts.sh failed: %s %s" % (r.stdout, r.stderr)
    with BridgeWorld(root / "w", certs) as w:
        yield w


def inbox(client, cluster, ident, pred, start=0, timeout=None):
    m = client.wait_message(cluster.topic("dev", ident, "inbox"), pred=lambda m: pred(m.json()), start=start,
                            timeout=timeout or H.T(5)).json()
    H.schema_validate("inbox", m)
    return m


def online(client, cluster, ident, state="online"):
    client.publish(cluster.topic("dev", ident, "status"),
                   {"id": ident, "state": state, "ts": int(time.time() * 1000), "seq": 1, "uptime_s": 1},
                   retain=True)


def ask_key(client, cluster, ident, peer, timeout=None):
    """A session_key request for peer, repeated while the answer is
    peer_offline (the peer's status may still be crossing the bridge);
    returns the last answer."""
    deadline = time.monotonic() + (timeout or H.T(10))
    while True:
        nonce = "n-" + secrets.token_hex(6)
        start = len(client.messages)
        client.publish(cluster.topic("ch", ident), {"type": "session_key", "peer": peer, "nonce": nonce})
        a = inbox(client, cluster, ident, lambda j: (j["type"] == "session_key" and j["peer"] == peer and
                                                     j["direction"] == 0) or
                  (j["type"] == "error" and j.get("nonce") == nonce), start=start)
        if a.get("error") != "peer_offline" or time.monotonic() >= deadline:
            return a
        time.sleep(0.2)


def test_the_examples_are_what_the_protocol_says():
    r = subprocess.run(["haproxy", "-c", "-f", str(HAPROXY_EXAMPLE)], capture_output=True, text=True,
                       timeout=H.T(20))
    assert r.returncode == 0, "config/haproxy.cfg is not valid: %s%s" % (r.stdout, r.stderr)
    lines = example_bridge_lines(8883, "b", "t", "/ca", "demo")
    topics = [l.split()[1] for l in lines if l.startswith("topic ")]
    assert topics == [t.format(c="demo") for t in M.BRIDGED_TOPICS]
    assert all(l.endswith(" both 1") for l in lines if l.startswith("topic "))
    for must in ("try_private true", "notifications false", "bridge_insecure false", "cleansession true"):
        assert must in lines, must
    proto = (H.ROOT / "docs" / "PROTOCOL.md").read_text()
    section = proto[proto.index("\n## Several brokers\n"):]
    section = section[:section.index("\n## ", 5)]
    for l in example_lines():
        if not l.startswith("remote_password"):
            assert ("    " + l + "\n") in section, "PROTOCOL.md's leaf lines lack %r" % l
    pol = json.loads(H.POLICY.read_text())["roles"]["bridge"]
    want = [t.format(c="{cluster}") for t in M.BRIDGED_TOPICS]
    assert pol["publish"] == want and pol["subscribe"] == want
    assert pol["retain"] == ["iotguard/{cluster}/dev/+/status"] and not pol.get("single_use")


def test_the_leaf_bridges_with_a_bridge_token(world):
    hub = world.hub
    m = hub.wait_log(r"New bridge connected from 127\.0\.0\.1:\d+ as br2 \(")
    assert m
    mon = H.watcher(hub, world.cluster, topics=("stats",))
    s = H.next_stats(mon, world.cluster, lambda s: s["connected"]["bridge"] == 1)
    assert s["connected"]["bridge"] == 1
    mon.close()


@pytest.mark.vg
def test_inbox_and_m2m_cross_the_bridge_both_ways(world):
    c, hub, leaf = world.cluster, world.hub, world.broker(2)
    d1, d3 = leaf.connect("dev1"), leaf.connect("dev3")
    d2, d4 = hub.connect("dev2"), hub.connect("dev4")
    pairs = ((d1, "dev1"), (d3, "dev3"), (d2, "dev2"), (d4, "dev4"))
    for cl, ident in pairs:
        cl.subscribe_ok(c.topic("dev", ident, "inbox"))
        cl.subscribe_ok(c.topic("m2m", ident, "+"))
        online(cl, c, ident)

    # Triggered on the hub, delivered on the leaf: dev2 asks for a key with dev1.
    ka = ask_key(d2, c, "dev2", "dev1")
    assert ka["type"] == "session_key", ka
    kb = inbox(d1, c, "dev1", lambda j: j["type"] == "session_key" and j["key_id"] == ka["key_id"])
    assert (ka["peer"], ka["direction"], kb["peer"], kb["direction"]) == ("dev1", 0, "dev2", 1)
    # Triggered on the leaf, delivered on the hub.
    kc = ask_key(d3, c, "dev3", "dev4")
    assert kc["type"] == "session_key", kc
    kd = inbox(d4, c, "dev4", lambda j: j["type"] == "session_key" and j["key_id"] == kc["key_id"])
    assert (kd["peer"], kd["direction"]) == ("dev3", 1)
    # Each box arrives once, and nowhere else.
    time.sleep(0.5)
    assert len([m for m in d1.take(c.topic("dev", "dev1", "inbox")) if m.json().get("key_id") == ka["key_id"]]) == 1
    assert not [m for m in d3.take(c.topic("dev", "dev3", "inbox")) if m.json().get("key_id") == ka["key_id"]]

    # m2m both ways.
    d2.publish(c.topic("m2m", "dev1", "dev2"), b"\x01from-hub")
    assert d1.wait_message(c.topic("m2m", "dev1", "dev2")).payload == b"\x01from-hub"
    d1.publish(c.topic("m2m", "dev2", "dev1"), b"\x01from-leaf")
    assert d2.wait_message(c.topic("m2m", "dev2", "dev1")).payload == b"\x01from-leaf"

    # Presence is only what the statuses say: an identity never seen online
    # is offline, and a device that says offline elsewhere is offline here.
    assert ask_key(d2, c, "dev2", "dev9", timeout=0)["error"] == "peer_offline"
    online(d3, c, "dev3", state="offline")
    deadline = time.monotonic() + H.T(5)
    while ask_key(d4, c, "dev4", "dev3", timeout=0).get("error") != "peer_offline":
        assert time.monotonic() < deadline, "dev3's offline status never reached the hub"
        time.sleep(0.2)
    for cl, _ in pairs:
        cl.close()


def test_a_request_is_answered_once_by_the_broker_it_reached(world):
    c, leaf = world.cluster, world.broker(2)
    d5 = leaf.connect("dev5")
    d5.subscribe_ok(c.topic("dev", "dev5", "inbox"))
    d5.publish(c.topic("ch", "dev5"), {"type": "ping", "nonce": "once"})
    inbox(d5, c, "dev5", lambda j: j["type"] == "pong")
    time.sleep(1.0)
    pongs = [m for m in d5.take(c.topic("dev", "dev5", "inbox")) if m.json()["type"] == "pong"]
    assert len(pongs) == 1, pongs
    d5.close()


def test_the_bridge_role_reaches_only_the_bridged_topics(world):
    c, hub = world.cluster, world.hub
    tok = c.token("br9", ttl=BRIDGE_TTL)
    mon = H.watcher(hub, c, topics=("stats",))
    d6 = hub.connect("dev6")
    d6.subscribe_ok(c.topic("dev", "dev6", "inbox"))
    b = hub.connect("br9", token=tok)
    for t in ("iotguard/%s/ch/#" % c.name, c.topic("ch", "dev6"), c.topic("ledger", "head"), c.topic("stats"),
              c.topic("custody"), c.topic("kp", "revoked"), c.topic("dev", "dev6", "entropy"),
              "$CONTROL/iotguard/v1/response", "iotguard/%s/#" % c.name, "#"):
        assert b.subscribe(t)[0] >= 0x80, "the bridge role may not subscribe %s" % t
    for t in M.BRIDGED_TOPICS:
        b.subscribe_ok(t.format(c=c.name))
    before = H.next_stats(mon, c)["acl"]["denied_publish"]
    # Requests and contributions in a device's name are refused, and not taken.
    b.publish(c.topic("ch", "dev6"), {"type": "ping", "nonce": "from-bridge"})
    b.publish(c.topic("ch", "br9"), {"type": "ping", "nonce": "own"})
    b.publish(c.topic("dev", "dev6", "entropy"), b"x" * 64)
    b.publish(c.topic("ledger", "head"), b"{}")
    H.next_stats(mon, c, lambda s: s["acl"]["denied_publish"] >= before + 4)
    d6.no_message(c.topic("dev", "dev6", "inbox"), within=1.0)
    # The bridged topics pass (this is how a leaf hands the hub its traffic).
    d6.subscribe_ok(c.topic("dev", "dev6", "results", "+"))
    b.publish(c.topic("dev", "dev6", "results", "r"), b"result")
    assert d6.wait_message(c.topic("dev", "dev6", "results", "+")).payload == b"result"
    # The same token opens the bridge's connection again: not single-use.
    b.close()
    assert H.try_connect(hub, "br9", tok) == 0
    assert H.try_connect(hub, "br9", tok) == 0
    # A bridge enrolled through the admin API on the hub logs in on the leaf.
    br7 = c.new_key("br7", "bridge")
    admin = H.Admin(hub, "admin1")
    r = admin.one("enroll", id="br7", role="bridge", pubkey=br7.pubkey)
    assert r["ok"], r
    got = admin.one("get_identity", id="br7")
    assert got["ok"] and got["identity"]["role"] == "bridge", got
    leaf_tok = c.token("br7", ttl=BRIDGE_TTL)
    H.wait_for(lambda: H.try_connect(world.broker(2), "br7", leaf_tok) == 0, H.T(5),
               what="the leaf to accept the bridge the hub enrolled")
    for cl in (mon, d6, admin):
        cl.close()


def test_a_device_cannot_pass_for_a_bridge(world):
    c, hub = world.cluster, world.hub
    # A device's token names the device: refused for the bridge's client id
    # and username, whichever it claims.
    mark = hub.mark()
    assert H.try_connect(hub, "br9", c.token("dev7"), username="br9") in H.refused_code(True)
    assert hub.refusal_reason("br9", since=mark) == "id_mismatch"
    # A device's token may not live as long as a bridge's.
    mark = hub.mark()
    assert H.try_connect(hub, "dev7", c.token("dev7", ttl=BRIDGE_TTL)) in H.refused_code(True)
    assert hub.refusal_reason("dev7", since=mark) == "ttl_too_long"
    # Nor a bridge's beyond ttl_bridge.
    mark = hub.mark()
    assert H.try_connect(hub, "br9", c.token("br9", ttl=BRIDGE_TTL + 1)) in H.refused_code(True)
    assert hub.refusal_reason("br9", since=mark) == "ttl_too_long"
    # A connected device gets none of the bridge's rights.
    d = hub.connect("dev7")
    for t in M.BRIDGED_TOPICS:
        assert d.subscribe(t.format(c=c.name))[0] >= 0x80, t
    d.close()


def test_a_revoked_bridge_is_cut_off(world):
    """Last: it takes the leaf's bridge down for good."""
    c, hub, leaf = world.cluster, world.hub, world.broker(2)
    mon = hub.connect("mon1")
    mon.subscribe_ok(c.topic("dev", "+", "data", "+"))
    d8 = leaf.connect("dev8")
    d8.publish(c.topic("dev", "dev8", "data", "s"), b"before")
    assert mon.wait_message(c.topic("dev", "dev8", "data", "s")).payload == b"before"

    # Revoked on the leaf (its own bridge identity): the hub follows the
    # record and cuts the bridge; its reconnects are refused.
    admin = H.Admin(leaf, "admin1")
    mark = hub.mark()
    t0 = time.monotonic()
    assert admin.one("revoke", id="br2", reason="leaf retired")["ok"]
    assert hub.refusal_reason("br2", since=mark, timeout=H.T(10)) == "revoked"
    print("bridge cut and refused %.0f ms after the revoke's answer" % ((time.monotonic() - t0) * 1000))
    mon.clear()
    d8.publish(c.topic("dev", "dev8", "data", "s"), b"after")
    mon.no_message(c.topic("dev", "dev8", "data", "s"), within=1.5)

    # A bridge connected straight to the hub is kicked by a revoke too.
    b = hub.connect("br9", token=c.token("br9", ttl=BRIDGE_TTL))
    assert H.Admin(hub, "admin1").one("revoke", id="br9", reason="test")["ok"]
    b.wait_disconnect(timeout=H.T(5))
    assert H.try_connect(hub, "br9", c.token("br9", ttl=BRIDGE_TTL)) in H.refused_code(True)
    for cl in (mon, d8):
        cl.close()
    admin.close()


class MisbridgedWorld(M.World):
    """A leaf whose operator got the bridge wrong: it also carries the hub's
    ch topics in, and names the bridge connection locally as a device
    (local_username), under a policy that lets bridges read ch topics."""

    def bridge_lines(self, ident):
        return super().bridge_lines(ident) + ["local_username dev5",
                                              "topic iotguard/%s/ch/+ in 1" % self.cluster.name]


def test_a_request_that_crossed_a_bridge_is_not_taken_again(tmp_path):
    """The leaf receives the device's request over its bridge, from a
    connection whose username is the device's id; only the broker that holds
    the device's session may answer it, so the device gets one answer."""
    def let_bridges_read_ch(pol):
        pol["roles"]["bridge"]["subscribe"].append("iotguard/{cluster}/ch/+")
    policy = H.write_policy(tmp_path / "policy.json", let_bridges_read_ch)
    with MisbridgedWorld(tmp_path / "w", ids=IDS, nbrokers=2, haproxy=False,
                         broker_opts={"policy": str(policy)}) as w:
        c, hub, leaf = w.cluster, w.hub, w.broker(2)
        hub.wait_log(r"br2 1 iotguard/%s/ch/\+" % c.name)
        d5 = hub.connect("dev5")
        d5.subscribe_ok(c.topic("dev", "dev5", "inbox"))
        mark = leaf.mark()
        for n in range(3):
            d5.publish(c.topic("ch", "dev5"), {"type": "ping", "nonce": "p%d" % n})
        leaf.wait_log(r"Received PUBLISH from local\.br2 \(d0, q1, r0, m\d+, 'iotguard/%s/ch/dev5'" % c.name,
                      since=mark)
        for n in range(3):
            inbox(d5, c, "dev5", lambda j, n=n: j["type"] == "pong" and j.get("nonce") == "p%d" % n)
        time.sleep(1.0)
        pongs = [m.json()["nonce"] for m in d5.take(c.topic("dev", "dev5", "inbox")) if m.json()["type"] == "pong"]
        assert sorted(pongs) == ["p0", "p1", "p2"], "answered more than once: %s" % pongs
        d5.close()
