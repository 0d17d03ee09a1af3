"""Several brokers on one shared ledger (issue 11), against the real pieces:
PostgreSQL 15 (tests/pg/pgctl.sh), three mosquittos with the plugin in
shared mode, the leaves bridged to the hub with bridge-role identities, and
HAProxy in front (igmulti.py). Exactly the issue's list:

- a revocation on broker 1 cuts a device on broker 3 within 1 s;
- two analysts on different brokers race for one coin: exactly one wins;
- two devices race for one join code on different brokers: exactly one joins;
- an m2m conversation and a collector/analyst exchange across brokers;
- kill -9 of a broker under mixed load: devices reconnect through HAProxy
  to another broker, and every acknowledged change is in the ledger;
- a primary with a synchronous streaming standby: kill the primary, promote
  the standby, appends resume, nothing acknowledged is lost, verify passes;
- migrate then export gives back the same bytes.

Each test prints what it measured (latencies, counts) so a run on a loaded
machine shows how close it came to its bounds.
"""
import filecmp
import os
import re
import statistics
import threading
import time

import pytest

import igharness as H
import igkeys as K
import igmulti as M
import igtoken
import test_bank as B
import test_keyservice as KS
from igharness import agent_stopped, start_agent

# The module's world: the standard identities, victims for the revocation
# test, and credit for the collectors (given offline, before the migration).
IDS = M.STANDARD_IDS + [("rv%d" % i, "device") for i in range(1, 6)] + [("col%d" % i, "device") for i in range(1, 4)]
CREDITS = [("col1", 200), ("col2", 200), ("col3", 1000)]
WORLDS = []


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = M.World(tmp_path_factory.mktemp("multi"), ids=IDS, credits=CREDITS)
    WORLDS.append(w)
    w.start()
    yield w
    w.stop()


@pytest.fixture(autouse=True)
def _evidence_on_failure(request):
    """A failed test prints every process's log tail (brokers, HAProxy, PostgreSQL)."""
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed and WORLDS:
        capman = request.config.pluginmanager.getplugin("capturemanager")
        with capman.global_and_fixture_disabled():
            for w in WORLDS:
                print("\n######## evidence: %s ########\n%s" % (w.root, w.diagnostics()))


def shared_stats(world, n, pred=lambda s: True):
    """Broker n's next stats message (schema-checked) with its name and shared figures."""
    b = world.broker(n)
    mon = b.connect("mon1")
    try:
        mon.subscribe_ok(world.cluster.topic("stats"))
        s = H.next_stats(mon, world.cluster, pred)
    finally:
        mon.close()
    assert s.get("broker") == b.name, "broker %d's stats must name it %r: %r" % (n, b.name, s.get("broker"))
    assert "shared" in s, "broker %d's stats carry no shared figures: %r" % (n, sorted(s))
    return s


def refused(b, ident, token):
    """A connection with a valid token for ident is refused; the broker's reason."""
    since = b.mark()
    assert H.try_connect(b, ident, password=token) in H.NOT_AUTHORISED_V5
    return b.refusal_reason(ident, since)


# ---- 1. revocation across brokers ---------------------------------------------------------------------

@pytest.mark.vg
def test_revocation_on_broker1_cuts_a_device_on_broker3_within_1s(world):
    c, b1, b2, b3 = world.cluster, world.broker(1), world.broker(2), world.broker(3)
    admin = H.Admin(b1, "admin1")
    victims = ["rv1", "rv2", "rv3", "rv4", "rv5"]
    on3 = {v: b3.connect(v) for v in victims}
    on2 = b2.connect("rv3")          # one victim is on two brokers at once
    lat, after_ack, t0s = [], [], {}
    for v in victims:
        t0 = t0s[v] = time.monotonic()
        r = admin.one("revoke", id=v, reason="multi")
        t_ack = time.monotonic()
        assert r["ok"], r
        try:
            t_cut = on3[v].wait_disconnect(timeout=H.T(5))
        except AssertionError:
            raise AssertionError("%s on broker 3 was not cut within 5 s of its revocation on broker 1" % v)
        lat.append(t_cut - t0)
        after_ack.append(t_cut - t_ack)
    t_cut2 = on2.wait_disconnect(timeout=H.T(5))
    print("revocation broker 1 -> kicked on broker 3: %s ms (from the request); %s ms after broker 1's answer; "
          "p50 %.0f ms, max %.0f ms; rv3 on broker 2 after %.0f ms" % (
              [round(x * 1000) for x in lat], [round(x * 1000) for x in after_ack], statistics.median(lat) * 1000,
              max(lat) * 1000, (t_cut2 - t0s["rv3"]) * 1000))
    limit = 1.0 * max(1.0, H.SLOW / 2)     # 1 s; more only under valgrind, as test_admin.py allows
    assert max(lat) < limit, "a revocation took %.0f ms to cut the device on another broker (limit %.1f s)" % (
        max(lat) * 1000, limit)
    assert t_cut2 - t0s["rv3"] < limit, "rv3 on broker 2 was cut %.0f ms after its revoke" % (
        (t_cut2 - t0s["rv3"]) * 1000)
    # Following is pushed (LISTEN/NOTIFY), not the 1 s safety-net poll: a poll
    # alone would put the median near 500 ms (the target is p99 <= 200 ms).
    assert statistics.median(lat) < limit / 2, "median revocation latency %.0f ms: is broker 3 only polling?" % (
        statistics.median(lat) * 1000)
    # And it stays out everywhere: every broker refuses a fresh valid token as revoked.
    for b in (b1, b2, b3):
        assert refused(b, "rv1", c.token("rv1")) == "revoked", b.name
    recs = [r for r in world.records("revoke") if r["id"] in victims]
    assert len(recs) == len(victims) and all(r["by"] == "admin1@b1" for r in recs), \
        "one revoke record per victim, whose by names admin1 and broker b1: %r" % recs
    # Broker 3 applied the revocations by following: its stats count them.
    s = shared_stats(world, 3, lambda s: s["shared"]["followed"] >= len(victims))
    print("broker 3 shared figures:", s["shared"])
    assert s["shared"]["connected"] is True


# ---- 2. two analysts race for one coin ---------------------------------------------------------------

@pytest.mark.vg
def test_two_analysts_on_different_brokers_race_for_one_coin(world):
    c, b1, b2, b3 = world.cluster, world.broker(1), world.broker(2), world.broker(3)
    pk = B.ch_pk(c)
    d = B.client(b2, c, "col1")
    a1 = B.client(b1, c, "an1", "dev/+/data/+")
    a2 = B.client(b3, c, "an2", "dev/+/data/+")
    topic = c.topic("dev", "col1", "data", "race")
    rounds = 8
    coins, _ = B.mint(d, c, "col1", rounds)
    winners, crossing = [], []
    for coin in coins:
        s = B.Sealed(pk, coin, "col1", topic, b"race")
        st1, st2 = len(a1.messages), len(a2.messages)
        t0 = time.monotonic()
        d.publish(topic, s.msg)
        # The collector is on broker 2; the analysts on 1 and 3 get its message over the bridges.
        g1 = a1.wait_message(topic, start=st1, pred=lambda m: m.payload == s.msg)
        g2 = a2.wait_message(topic, start=st2, pred=lambda m: m.payload == s.msg)
        crossing.append(max(g1.time, g2.time) - t0)
        r1, r2 = B.Received(g1), B.Received(g2)
        n1, n2 = B.rnonce("race1"), B.rnonce("race2")
        st1, st2 = len(a1.messages), len(a2.messages)
        i1 = a1.publish_async(c.topic("ch", "an1"), r1.redeem_request(n1))
        i2 = a2.publish_async(c.topic("ch", "an2"), r2.redeem_request(n2))
        assert i1.rc == 0 and i2.rc == 0
        rep1 = B.inbox_reply(a1, c, "an1", n1, st1)
        rep2 = B.inbox_reply(a2, c, "an2", n2, st2)
        kinds = sorted([rep1.get("error", rep1["type"]), rep2.get("error", rep2["type"])])
        assert kinds == ["already_spent", "redeemed"], "one coin, two brokers: want one win and one " \
            "already_spent, got %r and %r" % (rep1, rep2)
        who, rep = ("an1", rep1) if rep1["type"] == "redeemed" else ("an2", rep2)
        keys = B.open_redeemed(rep, B.seed(c, who), pk)
        assert keys["payload_key"] == s.payload_key, "the winner got the coin's keys"
        winners.append((B.coin_hash(coin).hex(), who))
    print("data message collector (broker 2) -> both analysts (brokers 1, 3): p50 %.1f ms, max %.1f ms" %
          (statistics.median(crossing) * 1000, max(crossing) * 1000))
    print("race winners: broker 1 (an1) %d, broker 3 (an2) %d" %
          (sum(w == "an1" for _, w in winners), sum(w == "an2" for _, w in winners)))
    recs = [r for r in world.records("coin_redeem") if r["collector"] == "col1"]
    by_hash = {}
    for r in recs:
        by_hash.setdefault(r["coin_hash"], []).append(r["analyst"])
    for h, who in winners:
        assert by_hash.get(h) == [who], "coin %s: the ledger holds redeems %r, the winner was %s" % (
            h[:16], by_hash.get(h), who)
    assert len(recs) == rounds, "exactly one redeem record per coin: %d for %d coins" % (len(recs), rounds)
    conflicts = [shared_stats(world, n)["shared"]["conflicts"] for n in (1, 3)]
    print("re-check refusals (conflicts) so far: broker 1 %d, broker 3 %d" % tuple(conflicts))


# ---- 3. two devices race for one join code ------------------------------------------------------------

@pytest.mark.vg
def test_two_devices_on_different_brokers_race_for_one_join_code(world):
    c, b1, b2, b3 = world.cluster, world.broker(1), world.broker(2), world.broker(3)
    admin = H.Admin(b1, "admin1")
    rounds = 3
    codes = admin.one("create_join_codes", role="device", count=rounds, ttl=300)["codes"]
    assert len(codes) == rounds
    outcomes = []
    for k, code in enumerate(codes):
        ids = ("jA%d" % k, "jB%d" % k)
        seeds = {i: os.urandom(32) for i in ids}
        js = {}
        for i, b in zip(ids, (b2, b3)):
            j = H.Mqtt(b, i, password=K.join_token(seeds[i], c.name, i, code))
            rc = j.connect()
            assert rc == 0, "%s with an unused code refused on %s (%s)\n%s" % (i, b.name, rc, b.diagnostics())
            j.subscribe_ok(c.topic("dev", i, "inbox"))
            js[i] = j
        starts = {i: len(js[i].messages) for i in ids}
        for i in ids:
            assert js[i].publish_async(c.topic("ch", i), {"type": "join"}).rc == 0
        replies = {i: js[i].wait_message(c.topic("dev", i, "inbox"), start=starts[i], timeout=H.T(8),
                                         pred=lambda m: m.json()["type"] in ("welcome", "error")).json()
                   for i in ids}
        for r in replies.values():
            H.schema_validate("inbox", r)
        won = [i for i in ids if replies[i]["type"] == "welcome"]
        assert len(won) == 1, "one code, two brokers: want exactly one welcome, got %r" % replies
        winner, loser = won[0], [i for i in ids if i != won[0]][0]
        assert replies[loser]["error"] == "code_used", "the loser must hear code_used: %r" % replies[loser]
        outcomes.append((code, winner, loser, replies[winner]["index"], seeds))
        for j in js.values():
            j.close()
    print("join races won: on broker 2 %d, on broker 3 %d" %
          (sum(o[1].startswith("jA") for o in outcomes), sum(o[1].startswith("jB") for o in outcomes)))
    enrolls = {r["id"]: r for r in world.records("enroll")}
    used = world.records("join_used")
    for code, winner, loser, index, seeds in outcomes:
        cid = K.parse_code(code)[0].hex()
        assert enrolls[winner]["index"] == index and enrolls[winner].get("join_code") == cid, enrolls[winner]
        assert loser not in enrolls, "the loser %s was enrolled too" % loser
        assert [u["id"] for u in used if u["code_id"] == cid] == [winner], "join_used for %s: %r" % (cid, used)
        # The winner is an identity on every broker now; the loser on none.
        w = b1.connect(winner, token=igtoken.mint(None, c.name, winner, seed=seeds[winner]))
        w.close()
        assert H.try_connect(b1, loser, password=igtoken.mint(None, c.name, loser, seed=seeds[loser])) \
            in H.NOT_AUTHORISED_V5


# ---- 4. m2m and collector/analyst across brokers ------------------------------------------------------------

def test_m2m_and_collector_analyst_exchange_across_brokers(world):
    c, b1, b2, b3 = world.cluster, world.broker(1), world.broker(2), world.broker(3)
    t0 = time.monotonic()
    p1 = start_agent(b1, c, "dev3", "--peer", "dev4", "--send-interval", "1")
    p3 = start_agent(b3, c, "dev4", "--peer", "dev3", "--send-interval", "1")
    analyst = start_agent(b3, c, "an1", "--role", "analyst")
    collector = start_agent(b2, c, "col2", "--collect-interval", "1")
    procs = [p1, p3, analyst, collector]
    try:
        try:
            p1.wait_line(r"m2m from dev4: key", timeout=H.T(25))
            t_m2m13 = time.monotonic() - t0
            p3.wait_line(r"m2m from dev3: key", timeout=H.T(25))
            t_m2m31 = time.monotonic() - t0
            H.wait_for(lambda: len(re.findall(r"result for seq \d+: ", collector.text())) >= 2, H.T(30),
                       what="two analyst results at the collector")
            t_res = time.monotonic() - t0
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, "\n".join("--- %s ---\n%s" % (p.name, p.text()[-2500:])
                                                          for p in procs)))
        time.sleep(1.5)   # a few more messages each way, to see none doubled by the bridges
    finally:
        texts = {p.name: agent_stopped(p) for p in procs}
    print("first m2m message broker 3 -> broker 1 after %.1f s, broker 1 -> broker 3 after %.1f s; "
          "two analyst results (broker 3) at the collector (broker 2) after %.1f s" % (t_m2m13, t_m2m31, t_res))
    for name in ("agent-dev3", "agent-dev4"):
        r = KS.m2m_report(texts[name])
        print("%s m2m counters: %r" % (name, r))
        assert r["received"] >= 1 and r["sent"] >= 1, r
        bad = {k: r[k] for k in ("replayed", "tampered", "malformed") if r[k]}
        assert not bad, "%s dropped messages (a bridge loop shows as replays): %r" % (name, r)
    rep = B.collector_report(texts["agent-col2"])
    seqs = [int(s) for s in re.findall(r"result for seq (\d+)", texts["agent-col2"])]
    print("collector:", rep)
    assert len(seqs) >= 2 and len(set(seqs)) == len(seqs), "each result answers one reading once: %r" % seqs
    assert rep["dropped"] == 0 and rep["results"] == len(seqs), rep
    redeems = [r for r in world.records("coin_redeem") if r["collector"] == "col2"]
    assert len(redeems) >= 2 and {r["analyst"] for r in redeems} == {"an1"}, redeems
    # The pair's session keys are in the shared ledger, each recorded once.
    issued = [r for r in world.records("key_issued") if {r["a"], r["b"]} == {"dev3", "dev4"}]
    print("key_issued records for dev3/dev4: %d" % len(issued))
    assert issued and len({r["key_id"] for r in issued}) == len(issued), issued


# ---- 5. kill -9 of a broker under mixed load ------------------------------------------------------------

class EnrollLoad:
    """An admin enrolling fresh identities on one broker, with up to `window`
    requests unanswered at a time (so a kill finds several in flight, and the
    writer commits them in groups); keeps every answer."""

    def __init__(self, broker, cluster, admin, prefix, window=4):
        self.admin = H.Admin(broker, admin)
        self.cluster = cluster
        self.prefix = prefix
        self.window = window
        self.sent = {}        # correlation -> (id, seed)
        self.stop = threading.Event()
        self.error = None
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        n = 0
        try:
            while not self.stop.is_set() and self.admin.m.connected:
                # The next request once fewer than `window` are unanswered (the broker may be gone: 2 s at most).
                H.wait_for(lambda: len(self.sent) - len(self.answers()) < self.window or self.stop.is_set()
                           or not self.admin.m.connected, H.T(2), interval=0.005, what="an answer")
                if self.stop.is_set() or not self.admin.m.connected:
                    return
                n += 1
                ident = "%s%d" % (self.prefix, n)
                seed = os.urandom(32)
                cor = "%s-%d" % (self.prefix, n)
                self.sent[cor] = (ident, seed)
                self.admin.send({"command": "enroll", "id": ident, "role": "device",
                                 "pubkey": K.public_key(seed).hex(), "correlation": cor})
        except AssertionError as e:
            self.error = e

    def answers(self):
        out = {}
        for m in self.admin.m.take(H.ADMIN_RESPONSE):
            for r in m.json().get("responses", []):
                out[r.get("correlation")] = r
        return out

    def refused(self):
        return [self.sent[k][0] for k, r in self.answers().items() if k in self.sent and not r.get("ok")]

    def acked(self):
        a = self.answers()
        return {self.sent[k][0]: (r["index"], self.sent[k][1]) for k, r in a.items() if k in self.sent and r.get("ok")}


class MintLoad:
    """A collector minting two coins per request on one broker; keeps the coins it got."""

    def __init__(self, broker, cluster, ident):
        self.c = B.client(broker, cluster, ident)
        self.cluster, self.ident = cluster, ident
        self.coins = []
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set() and self.c.connected:
            try:
                coins, _ = B.mint(self.c, self.cluster, self.ident, 2)
            except AssertionError:
                return
            self.coins += coins


def test_kill9_of_a_broker_under_mixed_load(world):
    c, b1, b2, b3, lb = world.cluster, world.broker(1), world.broker(2), world.broker(3), world.lb
    agents_ids = ["dev6", "dev7", "dev8", "dev9", "dev10", "dev11"]
    mon = b1.connect("mon1")
    mon.subscribe_ok(c.topic("dev", "+", "status"))
    since3 = b3.mark()
    agents = {}
    for i in agents_ids:
        extra = []
        if i == "dev10":
            extra = ["--peer", "dev11", "--send-interval", "1"]
        elif i == "dev11":
            extra = ["--peer", "dev10", "--send-interval", "1"]
        agents[i] = start_agent(lb, c, i, *extra)

    def online_after(ident, t):
        return any(m.time >= t and m.json().get("state") == "online"
                   for m in mon.take(c.topic("dev", ident, "status")))
    t_start = time.monotonic()
    loads = []
    try:
        H.wait_for(lambda: all(online_after(i, t_start) for i in agents_ids), H.T(20),
                   what="every agent online through HAProxy (seen on broker 1)")
        rx = re.compile(r"New client connected from \S+ as (dev\d+)")
        placed = {}
        for b in world.brokers:
            for ident in rx.findall(b.log(), since3 if b is b3 else 0):
                if ident in agents_ids:
                    placed[ident] = b.name
        victims = sorted(i for i in agents_ids if placed.get(i) == "b3")
        print("agents placed by HAProxy:", placed)
        assert victims, "HAProxy put no agent on broker 3; nothing to fail over: %r" % placed

        e3 = EnrollLoad(b3, c, "admin1", "k3x")
        e2 = EnrollLoad(b2, c, "admin2", "k2x")
        m3 = MintLoad(b3, c, "col3")
        loads = [e3, e2, m3]
        for ld in loads:
            ld.t.start()
        H.wait_for(lambda: len(e3.acked()) >= 15 and len(m3.coins) >= 6, H.T(20), what="load on broker 3")
        acked3_before = dict(e3.acked())
        marks = {b.name: b.mark() for b in (b1, b2)}
        t_kill = time.monotonic()
        b3.kill9()
        e3.stop.set()
        m3.stop.set()
        # HAProxy sees it down; the victims come back through it on another broker.
        H.wait_for(lambda: lb.states().get("b3") == "DOWN", H.T(5), what="HAProxy to mark b3 down")
        t_down = time.monotonic() - t_kill
        back, now_on = {}, {}

        def reconnected():
            for i in victims:
                rx_i = re.compile(r"New client connected from \S+ as %s \(" % i)
                for b in (b1, b2):
                    if i not in back and rx_i.search(b.log(), marks[b.name]):
                        back[i], now_on[i] = time.monotonic() - t_kill, b.name
            return len(back) == len(victims)
        H.wait_for(reconnected, H.T(15), what="the agents of broker 3 connected to broker 1 or 2 through HAProxy")
        t_back = time.monotonic()
        H.wait_for(lambda: all(online_after(i, t_back) for i in victims), H.T(10),
                   what="the moved agents' status online again (seen on broker 1)")
        # Appends go on from broker 2 after the kill.
        n2 = len(e2.acked())
        H.wait_for(lambda: len(e2.acked()) >= n2 + 5, H.T(10), what="broker 2 enrolling after the kill")
        e2.stop.set()
        for ld in loads:
            ld.t.join(timeout=H.T(5))
        assert e2.error is None, e2.error
        print("kill -9 of broker 3: HAProxy marked it down after %.0f ms; its agents reconnected after %s s "
              "(to %s)" % (t_down * 1000, {k: round(v, 2) for k, v in back.items()}, now_on))
        for i, p in agents.items():
            assert p.p.poll() is None, "%s exited\n%s" % (i, p.text()[-2000:])
    finally:
        for ld in loads:
            ld.stop.set()
        texts = {}
        for i, p in agents.items():
            texts[i] = (p.stop(), p.text())
    for i, (rc, text) in texts.items():
        assert rc == 0, "agent %s exited %s after the failover\n%s" % (i, rc, text[-3000:])
    for i in ("dev10", "dev11"):
        r = KS.m2m_report(texts[i][1])
        print("%s m2m counters after the failover: %r" % (i, r))
        assert r["replayed"] == 0 and r["tampered"] == 0 and r["malformed"] == 0, r

    # Every acknowledged change is in the ledger, at the index it was acknowledged with.
    acked3, acked2 = e3.acked(), e2.acked()
    assert set(acked3_before) <= set(acked3)
    inflight3 = [v[0] for k, v in e3.sent.items() if v[0] not in acked3]
    recs = world.records()
    by_index = {r["index"]: r for r in recs}
    for ident, (index, seed) in list(acked3.items()) + list(acked2.items()):
        r = by_index.get(index)
        assert r and r["type"] == "enroll" and r["id"] == ident and r["pubkey"] == K.public_key(seed).hex(), \
            "acknowledged enroll of %s at index %d: the ledger has %r" % (ident, index, r)
    minted = {h for r in recs if r["type"] == "coin_mint" and r["owner"] == "col3" for h in r["coin_hashes"]}
    lost = [B.coin_hash(x).hex() for x in m3.coins if B.coin_hash(x).hex() not in minted]
    assert not lost, "%d acknowledged coins are not in the ledger" % len(lost)
    enrolled = {r["id"] for r in recs if r["type"] == "enroll"}
    wrongly = [i for i in e3.refused() + e2.refused() if i in enrolled]
    assert not wrongly, "enrolls answered as refused are in the ledger: %r" % wrongly
    landed = [i for i in inflight3 if i in enrolled]
    print("acknowledged: %d enrolls on broker 3, %d on broker 2, %d coins minted on broker 3; "
          "refused: %d; unanswered on broker 3 when killed: %r, of which in the ledger: %r" %
          (len(acked3), len(acked2), len(m3.coins), len(e3.refused() + e2.refused()), inflight3, landed))
    world.cluster.verify()

    # Broker 3 restarts on the shared ledger and knows what broker 2 wrote while it was dead.
    t0 = time.monotonic()
    b3.start()
    world.wait_bridged()
    print("broker 3 restarted and bridged in %.2f s" % (time.monotonic() - t0))
    late = max(acked2.items(), key=lambda kv: kv[1][0])
    w = b3.connect(late[0], token=igtoken.mint(None, c.name, late[0], seed=late[1][1]))
    w.close()


# ---- 6. PostgreSQL failover ----------------------------------------------------------------------------

@pytest.mark.vg
def test_primary_killed_standby_promoted_nothing_acknowledged_lost(tmp_path):
    w = M.World(tmp_path / "failover", ids=M.STANDARD_IDS[:4] + [("dev1", "device")], nbrokers=2,
                standby=True, bridges=False, haproxy=False)
    WORLDS.append(w)
    w.start()
    try:
        c, b1, b2 = w.cluster, w.broker(1), w.broker(2)
        assert "target_session_attrs=read-write" in w.dsn and str(w.standby.port) in w.dsn
        a1, a2 = H.Admin(b1, "admin1"), H.Admin(b2, "admin2")
        acked = {}

        def enroll(admin, ident, timeout=None):
            seed = os.urandom(32)
            r = admin.one("enroll", id=ident, role="device", pubkey=K.public_key(seed).hex(), timeout=timeout)
            if r.get("ok"):
                acked[ident] = (r["index"], seed)
            return r
        for k in range(6):
            assert enroll(a1 if k % 2 else a2, "pre%d" % k)["ok"]
        sync = w.pg.psql("SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'")
        assert sync == "sync", "the standby must be synchronous: %r" % sync

        t_kill = time.monotonic()
        w.pg.kill()
        # No primary: nothing may be acknowledged (the standby is read-only).
        r = enroll(a1, "dead1", timeout=H.T(15))
        assert r["ok"] is False and r["error"] == "storage_failed", "an enroll with no primary: %r" % r
        t_refused = time.monotonic() - t_kill
        # Authentication goes on from memory meanwhile.
        b2.connect("pre0", token=igtoken.mint(None, c.name, "pre0", seed=acked["pre0"][1])).close()

        t_promote = time.monotonic()
        w.standby.promote()
        t_promoted = time.monotonic() - t_promote
        resumed = {}
        for name, admin in (("b1", a1), ("b2", a2)):
            n = 0

            def ok(admin=admin, name=name):
                nonlocal n
                n += 1
                r = enroll(admin, "post-%s-%d" % (name, n), timeout=H.T(10))
                if not r["ok"]:
                    assert r["error"] == "storage_failed", "after the promotion: %r" % r
                    time.sleep(0.1)
                return r["ok"]
            H.wait_for(ok, H.T(30), interval=0, what="%s appending again after the promotion" % name)
            resumed[name] = time.monotonic() - t_promote
        print("failover: storage_failed %.2f s after the kill; promotion took %.2f s; appends resumed "
              "%s s after it" % (t_refused, t_promoted, {k: round(v, 2) for k, v in resumed.items()}))

        # Nothing acknowledged is lost; the ledger on the promoted server verifies.
        recs = {r["index"]: r for r in c.show_json()}
        for ident, (index, seed) in acked.items():
            r = recs.get(index)
            assert r and r["type"] == "enroll" and r["id"] == ident and r["pubkey"] == K.public_key(seed).hex(), \
                "acknowledged enroll of %s at %d: %r" % (ident, index, r)
        assert not [r for r in recs.values() if r.get("id") == "dead1"], "an enroll refused during the outage is in the ledger"
        c.verify()
        # Each broker follows the other's post-failover records.
        for ident in [i for i in acked if i.startswith("post-b1")][:1]:
            b2.connect(ident, token=igtoken.mint(None, c.name, ident, seed=acked[ident][1])).close()
        for ident in [i for i in acked if i.startswith("post-b2")][:1]:
            b1.connect(ident, token=igtoken.mint(None, c.name, ident, seed=acked[ident][1])).close()
        s = None
        mon = b1.connect("mon1")
        mon.subscribe_ok(c.topic("stats"))
        s = H.next_stats(mon, c, lambda s: s.get("shared", {}).get("connected") is True)
        print("broker 1 shared figures after the failover:", s["shared"])
        assert s["shared"]["reconnects"] >= 1
    finally:
        w.stop()


# ---- 7. migrate, then export -----------------------------------------------------------------------------

def test_migrate_then_export_gives_back_the_same_bytes(world, tmp_path):
    # A file ledger with a little of everything, made offline.
    f = H.Cluster(tmp_path / "files", "mig")
    for ident, role in (("adm", "admin"), ("d1", "device"), ("d2", "device"), ("a1", "analyst")):
        f.enroll(ident, role)
    H.cli("credit", "--ledger", f.ledger, "--id", "d1", "--amount", 50)
    H.cli("join-code", "--ledger", f.ledger, "--role", "device", "--count", "2")
    f.revoke_offline("d2", "lost")
    world.pg.psql("CREATE DATABASE iotguard_mig", db="postgres")
    dsn = world.pg.dsn_for("iotguard_mig")
    before = {p: (f.ledger / p).read_bytes() for p in ("ledger.log", "checkpoint")}
    out = H.cli("migrate", "--ledger", f.ledger, "--dsn", dsn, timeout=H.T(60))
    assert "plugin_opt_ledger_dsn" in out.stdout + out.stderr, "migrate must say what to change in mosquitto.conf"
    assert (f.ledger / "ledger.log").read_bytes() == before["ledger.log"], "migrate must leave ledger.log as it was"
    n = int(world.pg.psql("SELECT count(*) FROM iotguard.records", db="iotguard_mig"))
    assert n == len(f.show_json()), "PostgreSQL holds %d records for %d in the file" % (n, len(f.show_json()))
    t0 = time.monotonic()
    exp = tmp_path / "export"
    H.cli("export", "--dsn", dsn, "--to", exp, timeout=H.T(60))
    took = time.monotonic() - t0
    for p in ("ledger.log", "checkpoint"):
        assert filecmp.cmp(f.ledger / p, exp / p, shallow=False), "%s: export differs from the migrated file" % p
    print("migrate + export of %d records: identical bytes (export %.0f ms)" % (n, took * 1000))
    assert H.cli("verify", "--ledger", exp, check=False).returncode == 0
    assert H.cli("verify", "--dsn", dsn, check=False).returncode == 0
    assert H.cli("migrate", "--ledger", f.ledger, "--dsn", dsn, check=False).returncode != 0, \
        "a second migrate into a database that holds a ledger must be refused"

    # The world's ledger, written by three brokers, exports to files that verify
    # and begin with the very bytes the world was migrated from.
    exp2 = tmp_path / "export-world"
    H.cli("export", "--dsn", world.dsn, "--to", exp2, timeout=H.T(60))
    assert H.cli("verify", "--ledger", exp2, check=False).returncode == 0
    orig = (world.cluster.ledger / "ledger.log").read_bytes()
    got = (exp2 / "ledger.log").read_bytes()
    assert got.startswith(orig) and len(got) > len(orig), "the shared ledger must extend the migrated file byte for byte"
    print("world ledger: %d bytes migrated, %d bytes after the tests, exported and verified as files" %
          (len(orig), len(got)))
