"""test_nonce_share.py: single-use tokens stay single-use across brokers.

Why this exists: every broker keeps its own replay cache, so before this
change a captured single-use device token could connect once more on every
other broker of a cluster within its lifetime. Now each broker publishes
the nonces of the single-use tokens it accepted on the bridged topic
iotguard/C/bridge/nonces and remembers the ones that arrive there over a
bridge (docs/PROTOCOL.md "Several brokers"). These tests run a hub and a
leaf (real mosquittos with the plugin on one PostgreSQL, igmulti.World):
a token used on one broker is refused as "replayed" on the other once its
nonce has crossed, both ways, and the measured delay is printed. An
observer with a bridge identity subscribed to the topic on the broker
where the replay is tried tells when the nonce has crossed: Mosquitto hands
the plugin a message before it routes it on, so once the observer has it,
that broker's cache has it too; the replay is then tried, and must be
refused. Nobody but a bridge can publish there: a device's forged batch
changes nothing.
"""
import struct
import time

import pytest

import igharness as H
import igmulti as M
import igtoken

IDS = [("mon1", "monitor"), ("br9", "bridge")] + [("dev%d" % i, "device") for i in range(1, 9)]
CROSS_LIMIT_S = 2.0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with M.World(tmp_path_factory.mktemp("nonces"), ids=IDS, nbrokers=2, haproxy=False) as w:
        yield w


def topic(c):
    return c.topic("bridge", "nonces")


def batch_nonces(payload):
    """The (nonce, expires_at) pairs of one batch, checking the layout."""
    assert payload[0] == 1, "version byte"
    (n,) = struct.unpack(">H", payload[1:3])
    assert n >= 1 and len(payload) == 3 + 24 * n, "count %d, %d bytes" % (n, len(payload))
    return [(payload[3 + 24 * i:19 + 24 * i], struct.unpack(">Q", payload[19 + 24 * i:27 + 24 * i])[0])
            for i in range(n)]


def observer(broker, c):
    o = broker.connect("br9")
    o.subscribe_ok(topic(c))
    return o


def used_then_replayed(world, first, second, ident):
    """ident connects to first with a fresh single-use token and leaves; the
    same token is then refused as replayed on second. Returns the delays
    (first use -> nonce crossed, first use -> refused), seconds."""
    c = world.cluster
    obs = observer(second, c)
    try:
        tok = c.token(ident)
        claims = igtoken.parse(tok)
        start = len(obs.messages)
        t0 = time.monotonic()
        d = first.connect(ident, token=tok)
        t_connack = time.monotonic() - t0
        d.close()

        def crossed():
            for m in obs.messages[start:]:
                if m.topic == topic(c) and (claims["nonce"], claims["expires_at"]) in batch_nonces(m.payload):
                    return True
            return False
        deadline = t0 + H.T(CROSS_LIMIT_S)
        while not crossed():
            assert time.monotonic() < deadline, \
                "the nonce of %s's token used on %s never reached %s within %.1f s\n%s\n%s" % (
                    ident, first.name, second.name, H.T(CROSS_LIMIT_S), first.diagnostics(), second.diagnostics())
            time.sleep(0.002)
        t_cross = time.monotonic() - t0
        since = second.mark()
        assert H.try_connect(second, ident, tok) in H.NOT_AUTHORISED_V5, \
            "a single-use token used on %s connected again on %s" % (first.name, second.name)
        assert second.refusal_reason(ident, since) == "replayed"
        t_refused = time.monotonic() - t0
        # and on the broker that accepted it first, as with one broker
        since = first.mark()
        assert H.try_connect(first, ident, tok) in H.NOT_AUTHORISED_V5
        assert first.refusal_reason(ident, since) == "replayed"
        print("%s -> %s: from the first CONNECT: CONNACK %.1f ms, nonce crossed %.1f ms, replay refused %.1f ms" %
              (first.name, second.name, t_connack * 1000, t_cross * 1000, t_refused * 1000))
        return t_cross, t_refused
    finally:
        obs.close()


@pytest.mark.vg
def test_token_used_on_the_leaf_is_a_replay_on_the_hub(world):
    used_then_replayed(world, world.broker(2), world.hub, "dev1")


def test_token_used_on_the_hub_is_a_replay_on_the_leaf(world):
    used_then_replayed(world, world.hub, world.broker(2), "dev2")


def test_stats_count_what_was_shared(world):
    c, hub, leaf = world.cluster, world.hub, world.broker(2)
    used_then_replayed(world, leaf, hub, "dev4")
    for b in (hub, leaf):
        mon = H.watcher(b, c, topics=("stats",))
        s = H.next_stats(mon, c, lambda s: s["shared"]["nonces_shared"]["received"] >= 1 and
                         s["shared"]["nonces_shared"]["sent"] >= 1)
        ns = s["shared"]["nonces_shared"]
        assert ns["malformed"] == 0 and ns["batches_sent"] >= 1, ns
        mon.close()


def test_a_device_cannot_forge_nonces(world):
    """The ACL refuses a device's publish on bridge/nonces and its
    subscription; a forged batch makes no token a replay."""
    c, hub = world.cluster, world.hub
    forged = igtoken.parse(c.token("dev6"))   # never used: its nonce must stay fresh
    d5 = hub.connect("dev5")
    payload = bytes([1, 0, 1]) + forged["nonce"] + struct.pack(">Q", forged["expires_at"])
    d5.publish(topic(c), payload)
    assert d5.subscribe(topic(c))[0] >= 0x80, "a device may subscribe to bridge/nonces"
    d5.close()
    time.sleep(0.3)
    tok = c.mint("dev6", nonce=forged["nonce"])
    assert H.try_connect(hub, "dev6", tok) == 0, "a device's forged nonce made a token a replay"
