"""test_kp.py: devices keep talking securely when the cluster head cannot help (issue 10).

Why this exists: key rings are only worth anything end to end. These tests run
real iotguard-agent processes against the real mosquitto with the plugin (whose
key service refuses, or is sealed) and against a plain mosquitto without it, and
check from the outside -- logs, retained status, and every m2m message captured
on the broker -- that the agents fall back to predistributed keys, re-key
through an intermediary after a revocation, drop tampered and replayed
messages, and never repeat a nonce across restarts (docs/PROTOCOL.md, "Key
rings on the device"). Device ids are chosen with the independent Python of
tests/kp/kp_ref.py, so which pairs share which pool ids is not the C code's say.

One plugin broker and one plain broker are shared by the module's tests (the
sealed cluster head needs a cluster of its own); intervals are 1-2 s.
"""
import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import igharness as H

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "kp"))
import kp_ref  # noqa: E402  (the independent Python side of the formats)

P, M, Q = 1000, 30, 1
CANDIDATES = ["n%03d" % i for i in range(400)]
REVOKED_TOPIC = "kp/revoked"


def kp_policy(path, pool=P, ring=M, q=Q, m2m=False):
    """config/policy.json with predistribution; without an "m2m" section the
    key service refuses every session key (not_allowed)."""
    def mutate(p):
        p["predistribution"] = {"pool": pool, "ring": ring, "q": q}
        if not m2m:
            p.pop("m2m", None)
    return H.write_policy(path, mutate)


def revoked_statement(mon, c, pred=lambda s: True, timeout=None):
    m = mon.wait_message(c.topic(*REVOKED_TOPIC.split("/")), pred=lambda m: m.payload and pred(m.json()),
                         timeout=timeout or H.T(15))
    return m.json()


def ring_path(c, d):
    return Path(str(c.ids[d].key) + ".ring")


def agent(b, c, d, *extra):
    return H.start_agent(b, c, d, "--send-interval", "1", "--kp-fallback-s", "2", *extra)


def stop(*agents):
    """Stops agents (each must exit 0); returns their outputs."""
    return [H.agent_stopped(a) for a in agents]


def status_kp(mon, c, d, pred, timeout=None):
    """The next retained/heartbeat status of d whose "kp" member satisfies pred (schema-checked)."""
    def ok(m):
        s = m.json()
        return s.get("state") == "online" and "kp" in s and pred(s["kp"])
    s = mon.wait_message(c.topic("dev", d, "status"), pred=ok, timeout=timeout or H.T(15)).json()
    H.schema_validate("status", s)
    return s["kp"]


def drops(kp, reason):
    return kp.get("drops", {}).get(reason, 0)


def m2m_line(peer, how=r"direct"):
    return r"m2m from %s \(key ring session [0-9a-f]{8}\.\.\., %s\): counter \d+, \d+ bytes" % (
        re.escape(peer), how)


# ---- a plain mosquitto (no plugin) ---------------------------------------------


class PlainBroker(H.Broker):
    """mosquitto without the iotguard plugin: anonymous, or one password file."""

    def __init__(self, cluster, name, passwords=None):
        super().__init__(cluster, name=name)
        self.passwords = passwords

    def conf_text(self):
        lines = ["per_listener_settings false", *self.listener_lines, "persistence false",
                 "log_dest file %s" % self.logfile, "log_type all", "log_timestamp true"]
        if os.geteuid() == 0:
            lines.insert(0, "user root")
        if self.passwords:
            pw = self.dir / "passwords"
            if pw.exists():
                pw.unlink()
            for i, (user, password) in enumerate(self.passwords.items()):
                subprocess.run(["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else []) + [str(pw), user, password],
                               check=True, capture_output=True, timeout=H.T(10))
            lines += ["allow_anonymous false", "password_file %s" % pw]
        else:
            lines += ["allow_anonymous true"]
        return "\n".join(lines) + "\n"

    def start(self, wait=True):
        # The harness asserts the plugin is built; a plain broker needs none of it.
        self.write_conf()
        self.finished = False
        self.starts += 1
        self._err = open(self.errfile, "ab")
        self.proc = subprocess.Popen(H.WRAPPER + [H.MOSQUITTO, "-c", str(self.conf)], stdin=subprocess.DEVNULL,
                                     stdout=self._err, stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            self.wait_ready()
        return self

    def stop(self, check=True, verify=False):
        return super().stop(check=check, verify=False)

    def anon(self, name, username=None, password=None):
        cl = H.Mqtt(self, name, username=username, password=password)
        assert cl.connect() == 0, "%s: cannot connect to the plain broker\n%s" % (name, self.diagnostics())
        return cl


def plain_agent(pb, c, d, *extra):
    return agent(pb, c, d, "--plain-broker", *extra)


# ---- the shared world: a cluster whose device ids were chosen from the rings ----


def pick_ids(seed):
    """Device ids (from CANDIDATES, by kp_ref) for the tests: a pair p1, p2
    sharing ids, and for the revocation test A, B whose shared ids all lie in
    D's ring, and C sharing ids outside D's ring with both."""
    rings = {n: set(kp_ref.ring_ids(seed, n, P, M)) for n in CANDIDATES}
    holders = {}
    for n, r in rings.items():
        for i in r:
            holders.setdefault(i, set()).add(n)
    for a, b in itertools.combinations(CANDIDATES, 2):
        ab = rings[a] & rings[b]
        if not ab or len(ab) > 2:
            continue
        for d in sorted(set.intersection(*(holders[i] for i in ab)) - {a, b}):
            for cc in CANDIDATES:
                if cc in (a, b, d):
                    continue
                if (rings[cc] & rings[a]) - rings[d] and (rings[cc] & rings[b]) - rings[d]:
                    used = {a, b, cc, d}
                    pair = next((x, y) for x, y in itertools.combinations(CANDIDATES, 2)
                                if not {x, y} & used and len((rings[x] & rings[y]) - rings[d]) >= 2)
                    return {"A": a, "B": b, "C": cc, "D": d, "p1": pair[0], "p2": pair[1]}, rings
    pytest.fail("no quadruple of candidate ids fits the revocation test (seed %s)" % seed.hex())


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    c = H.Cluster(tmp_path_factory.mktemp("kp") / "cluster", "c1")
    c.enroll("admin1", "admin")
    c.enroll("mon1", "monitor")
    policy = kp_policy(c.root / "policy.json")
    b = c.broker(policy=policy).start()
    plains = []
    mon = None
    try:
        mon = b.connect("mon1")
        mon.subscribe_ok(c.topic(*REVOKED_TOPIC.split("/")))
        mon.subscribe_ok(c.topic("dev", "+", "status"))
        mon.subscribe_ok(c.topic("m2m", "#"))
        st = revoked_statement(mon, c)
        assert st["epoch"] == 1 and (st["pool"], st["ring"], st["q"]) == (P, M, Q), st
        seed = bytes.fromhex(st["seed"])
        names, rings = pick_ids(seed)
        admin = H.Admin(b, "admin1")
        for role, d in names.items():
            idn = c.new_key(d)
            r = admin.one("enroll", id=d, role="device", pubkey=idn.pubkey)
            assert r.get("ok", True) and "error" not in r, r
        admin.close()
        w = {"c": c, "b": b, "mon": mon, "names": names, "rings": rings, "seed": seed, "plains": plains}
        yield w
    finally:
        for cl in list(H.ALL_CLIENTS):
            if cl.broker is b or cl.broker in plains:
                cl.close()
        for pb in plains:
            pb.stop(check=False)
        b.stop()


@pytest.fixture(scope="module")
def rings(world):
    """p1 and p2 hold rings (asked for at their first connect)."""
    c, b, n = world["c"], world["b"], world["names"]
    missing = [n[x] for x in ("p1", "p2") if not ring_path(c, n[x]).exists()]
    if missing:
        procs = [agent(b, c, d) for d in missing]
        try:
            H.wait_for(lambda: all(ring_path(c, d).exists() for d in missing), H.T(15), what="rings for %s" % missing)
        finally:
            stop(*procs)
    for x in ("p1", "p2"):
        assert ring_path(c, n[x]).stat().st_mode & 0o777 == 0o600
    return n["p1"], n["p2"]


@pytest.fixture(scope="module")
def plain(world, rings):
    pb = PlainBroker(world["c"], "plain")
    world["plains"].append(pb)
    return pb.start()


# ---- 1. the cluster head refuses session keys ------------------------------------


def test_refused_session_keys_fall_back_to_key_rings(world, rings):
    c, b, mon = world["c"], world["b"], world["mon"]
    p1, p2 = rings
    a1 = agent(b, c, p1, "--peer", p2)
    a2 = agent(b, c, p2, "--peer", p1)
    try:
        for me, peer, proc in ((p1, p2, a1), (p2, p1, a2)):
            proc.wait_line(r"session key request for %s refused \(not_allowed\)" % peer, timeout=H.T(15))
            proc.wait_line(r"using predistributed keys with %s \(cluster head: not_allowed\)" % peer)
            proc.wait_line(m2m_line(peer), timeout=H.T(20))
        kp = status_kp(mon, c, p2, lambda k: k.get("received", 0) >= 2 and k.get("sent", 0) >= 2)
        assert kp["epoch"] == 1 and kp["ring"] == M, kp
        assert any(p["peer"] == p1 and p["key"] == "direct" for p in kp["peers"]), kp
        # The messages on the wire are version 2 (key-ring sessions); none is version 1.
        versions = {m.payload[0] for m in mon.take(c.topic("m2m", p2, p1))}
        assert 2 in versions and 1 not in versions, versions
    finally:
        out1, out2 = stop(a1, a2)
    for out in (out1, out2):
        assert not re.search(r"session key [0-9a-f]{8}\.\.\. with \S+ accepted", out), out[-2000:]


# ---- 2. a sealed cluster head ------------------------------------------------------


def test_sealed_cluster_head_falls_back_to_key_rings(tmp_path):
    import test_custody as TC   # the custody helpers: deal, seal, restart sealed (admin mode)
    c = H.Cluster(tmp_path / "cluster", "c1")
    c.enroll("admin1", "admin")
    c.enroll("mon1", "monitor")
    for d in TC.DEVICES:
        c.enroll(d)
    # Session keys are allowed here: only the seal stops the key service. The
    # device ids are the custody tests' fixed ones, so the pool is dense: two
    # rings of 32 ids of 64 always share some.
    policy = kp_policy(c.root / "policy.json", pool=64, ring=32, m2m=True)
    agents = {}
    start = len(H.ALL_BROKERS)
    try:
        b, mon, st = TC.deal_and_activate(c, agents, {"custody_unseal": "admin", "policy": policy})
        H.wait_for(lambda: all(ring_path(c, d).exists() for d in TC.DEVICES[:3]), H.T(15), what="rings")
        TC.seal(b, c, mon)
        mon.close()
        TC.stop_agents(agents)
        b.stop()

        b2 = c.broker(policy=policy, **TC.ADMIN_OPTS).start()
        mon = TC.monitor(b2, c)
        mon.subscribe_ok(c.topic("dev", "+", "status"))
        TC.custody_state(mon, c, lambda s: s["state"] == "sealed")
        agents["d1"] = agent(b2, c, "d1", "--peer", "d2")
        agents["d2"] = agent(b2, c, "d2", "--peer", "d1")
        agents["d3"] = agent(b2, c, "d3")
        for me, peer in (("d1", "d2"), ("d2", "d1")):
            agents[me].wait_line(r"using predistributed keys with %s \(cluster head: sealed\)" % peer,
                                 timeout=H.T(20))
            agents[me].wait_line(m2m_line(peer), timeout=H.T(20))
        kp = status_kp(mon, c, "d1", lambda k: k.get("received", 0) >= 1)
        assert any(p["peer"] == "d2" for p in kp["peers"]), kp
        assert TC.status_json(b2, c)["sealed"] is True   # nobody approved: still sealed
        mon.close()
        TC.stop_agents(agents)
    finally:
        for a in list(agents.values()):
            a.stop(timeout=H.T(15))
        for br in H.ALL_BROKERS[start:]:
            if br.running:
                br.stop(verify=False)


# ---- 3. a plain mosquitto without the plugin ----------------------------------------


def test_plain_broker_anonymous_and_with_password(world, rings, plain, tmp_path):
    c = world["c"]
    p1, p2 = rings
    # Without a ring the agent will not start on a plain broker.
    fresh = c.new_key("fresh1")
    p = subprocess.run([str(H.AGENT), "--host", "127.0.0.1", "--port", str(plain.port), "--cluster", c.name,
                        "--id", "fresh1", "--key", str(fresh.key), "--plain-broker"],
                       capture_output=True, text=True, timeout=H.T(15))
    assert p.returncode == 1 and "no key ring in %s.ring" % fresh.key in p.stderr, (p.returncode, p.stderr)

    watch = plain.anon("watch3")
    watch.subscribe_ok(c.topic("dev", "+", "status"))
    a1 = plain_agent(plain, c, p1, "--peer", p2)
    a2 = plain_agent(plain, c, p2, "--peer", p1)
    try:
        a1.wait_line(r"using predistributed keys with %s \(cluster head: none on a plain broker\)" % p2)
        for proc, peer in ((a1, p2), (a2, p1)):
            proc.wait_line(m2m_line(peer), timeout=H.T(20))
        kp = status_kp(watch, c, p1, lambda k: k.get("received", 0) >= 1)
        assert kp["epoch"] == 1, kp
    finally:
        out1, out2 = stop(a1, a2)
    assert "plain broker, anonymous" in out1
    assert "session key requested" not in out1 + out2   # no cluster head to ask
    watch.close()

    # The same with a password file; a wrong password is refused and said so.
    pb = PlainBroker(c, "plainpw", passwords={"u1": "secret-one", "u2": "secret-two"})
    world["plains"].append(pb)
    pb.start()
    pw1, pw2, bad = tmp_path / "pw1", tmp_path / "pw2", tmp_path / "bad"
    for f, text in ((pw1, "secret-one\n"), (pw2, "secret-two\n"), (bad, "wrong\n")):
        f.write_text(text)
        f.chmod(0o600)
    a1 = plain_agent(pb, c, p1, "--peer", p2, "--username", "u1", "--password-file", pw1)
    a2 = plain_agent(pb, c, p2, "--peer", p1, "--username", "u2", "--password-file", pw2)
    try:
        for proc, peer in ((a1, p2), (a2, p1)):
            proc.wait_line(m2m_line(peer), timeout=H.T(20))
    finally:
        out1, _ = stop(a1, a2)
    assert "plain broker, user u1" in out1
    assert "secret-one" not in out1
    a3 = plain_agent(pb, c, p1, "--username", "u1", "--password-file", bad)
    try:
        a3.wait_line(r"connection refused by broker: not authorised: check --username and --password-file")
    finally:
        stop(a3)
    pb.stop()


# ---- 4. revocation: re-keying through an intermediary ------------------------------


def test_revocation_rekeys_through_an_intermediary(world):
    c, b, mon, n, rings_ = world["c"], world["b"], world["mon"], world["names"], world["rings"]
    A, B, C, D = n["A"], n["B"], n["C"], n["D"]
    # The reference says: A and B share only ids of D's ring; C shares ids
    # outside it with both.
    assert rings_[A] & rings_[B] and rings_[A] & rings_[B] <= rings_[D]
    mon.take()
    procs = {D: agent(b, c, D)}
    procs[C] = agent(b, c, C)
    procs[A] = agent(b, c, A, "--peer", B, "--kp-via", C)
    procs[B] = agent(b, c, B, "--peer", A, "--kp-via", C)
    try:
        procs[A].wait_line(m2m_line(B), timeout=H.T(20))
        procs[B].wait_line(m2m_line(A), timeout=H.T(20))
        H.wait_for(lambda: ring_path(c, D).exists(), H.T(10), what="D's ring")
        H.agent_stopped(procs.pop(D))

        admin = H.Admin(b, "admin1")
        r = admin.one("revoke", id=D, reason="captured")
        assert r.get("ok", True) and "error" not in r, r
        admin.close()
        m = mon.wait_message(c.topic(*REVOKED_TOPIC.split("/")), timeout=H.T(15),
                             pred=lambda m: m.payload and D in m.json().get("devices", []))
        st = kp_ref.verify_revoked(m.payload, bytes.fromhex(c.ch_pubkey))   # signed by the cluster head
        assert rings_[D] <= set(st["ids"]) and st["devices"] == [D], st

        for me, peer in ((A, B), (B, A)):
            procs[me].wait_line(r"path key with %s via %s" % (re.escape(peer), re.escape(C)), timeout=H.T(30))
            procs[me].wait_line(m2m_line(peer, r"via %s" % re.escape(C)), timeout=H.T(20))
        procs[C].wait_line(r"relayed a path key between (%s and %s|%s and %s)" % (A, B, B, A))
        for me, peer in ((A, B), (B, A)):
            kp = status_kp(mon, c, me, lambda k: any(p.get("via") == C for p in k.get("peers", [])))
            assert any(p["peer"] == peer and p["key"] == "path" and p["via"] == C for p in kp["peers"]), kp
        kpc = status_kp(mon, c, C, lambda k: k.get("relayed", 0) >= 1)
        assert kpc["relayed"] >= 1, kpc
    finally:
        stop(*procs.values())
    check_unique(mon.take(c.topic("m2m", "#")), want_path=True)


# ---- 5. tampered and replayed messages --------------------------------------------


def test_tampered_and_replayed_messages_are_dropped(world, rings, plain):
    c = world["c"]
    p1, p2 = rings
    spy = plain.anon("spy5")
    spy.subscribe_ok(c.topic("m2m", "#"))
    spy.subscribe_ok(c.topic("dev", "+", "status"))
    to_p2 = c.topic("m2m", p2, p1)
    a2 = plain_agent(plain, c, p2, "--peer", p1, "--send-interval", "0")
    a1 = plain_agent(plain, c, p1, "--peer", p2)
    try:
        a2.wait_line(m2m_line(p1), timeout=H.T(20))
        data = spy.wait_message(to_p2, pred=lambda m: m.payload[0] == 2).payload
        # A first hello (kind 1), whichever side sent it; its receiver is the
        # first level after m2m in the topic.
        hello = next(((m.topic, m.payload) for m in spy.take(c.topic("m2m", "#"))
                      if m.payload[:2] == b"\x03\x01"), None)
        assert hello is not None, "no hello captured (both agents start one)"
        base = status_kp(spy, c, p2, lambda k: True)
        hello_to = hello[0].split("/")[3]
        hbase = status_kp(spy, c, hello_to, lambda k: True)

        spy.publish(to_p2, data)                                   # a replay
        bumped = bytearray(data)
        bumped[24] ^= 0x04                                         # the counter, +1024: fresh but not genuine
        spy.publish(to_p2, bytes(bumped))
        flipped = bytearray(bumped)
        flipped[24] ^= 0x08
        flipped[30] ^= 0x01                                        # and a ciphertext bit
        spy.publish(to_p2, bytes(flipped))
        h = bytearray(hello[1])
        h[-40] ^= 0x01                                             # inside NA: the mac no longer fits
        spy.publish(hello[0], bytes(h))

        status_kp(spy, c, p2, lambda k: drops(k, "replayed") > drops(base, "replayed")
                  and drops(k, "tampered") >= drops(base, "tampered") + 2)
        status_kp(spy, c, hello_to, lambda k: drops(k, "bad_mac") > drops(hbase, "bad_mac"))
        # The genuine messages keep coming and are accepted.
        n = len(re.findall(m2m_line(p1), a2.text()))
        H.wait_for(lambda: len(re.findall(m2m_line(p1), a2.text())) > n + 1, H.T(10), what="more genuine messages")
    finally:
        stop(a1, a2)
        spy.close()


# ---- 6. restarts never repeat a nonce --------------------------------------------------


def check_unique(msgs, want_path=False):
    """Every captured m2m message: (sender topic, key id, counter) unique for
    version 2, NA unique among distinct hellos, NB among distinct replies,
    box nonces among path keys. Returns the counts per version."""
    seen_v2, seen_na, seen_nb, seen_box = set(), {}, {}, set()
    counts = {1: 0, 2: 0, 3: 0, 4: 0}
    for payload in dict.fromkeys(m.payload for m in msgs if m.payload):   # identical retransmissions once
        topic = next(m.topic for m in msgs if m.payload == payload)
        v = payload[0]
        counts[v] = counts.get(v, 0) + 1
        if v == 2:
            k = (topic, payload[2:18], payload[18:26])
            assert k not in seen_v2, "a (key id, counter) pair was used twice by %s" % topic
            seen_v2.add(k)
        elif v == 3:
            h = kp_ref.hello_parse(payload)
            if h["kind"] == 1:
                assert h["na"] not in seen_na, "NA repeated"
                seen_na[h["na"]] = topic
            else:
                assert h["nb"] not in seen_nb, "NB repeated"
                seen_nb[h["nb"]] = topic
        elif v == 4:
            p = kp_ref.path_parse(payload)
            if p["kind"] == 2:
                assert p["box_nonce"] not in seen_box, "a path box nonce repeated"
                seen_box.add(p["box_nonce"])
    assert counts[2] > 0 and counts[3] > 0, counts
    if want_path:
        assert seen_box, "no path key was captured"
    return counts


def test_restarts_never_repeat_a_nonce(world, rings, plain):
    c = world["c"]
    p1, p2 = rings
    spy = plain.anon("spy6")
    spy.subscribe_ok(c.topic("m2m", "#"))
    a1 = plain_agent(plain, c, p1, "--peer", p2)
    a2 = plain_agent(plain, c, p2, "--peer", p1)
    procs = [a1, a2]
    try:
        def v2_from(sender, start):
            return [m for m in spy.messages[start:] if m.topic == c.topic("m2m", *([p2, p1] if sender == p1 else [p1, p2]))
                    and m.payload[0] == 2]

        H.wait_for(lambda: len(v2_from(p1, 0)) >= 2 and len(v2_from(p2, 0)) >= 2, H.T(20), what="messages both ways")
        key_ids = {m.payload[2:18] for m in v2_from(p1, 0)}
        for round_ in range(2):
            # Restart p1, then p2: each comes back with fresh sessions (nothing to resume).
            for i, me in enumerate((p1, p2)):
                other = p2 if me == p1 else p1
                H.agent_stopped(procs[i])
                mark = len(spy.messages)
                heard = len(re.findall(m2m_line(me), procs[1 - i].text()))
                procs[i] = plain_agent(plain, c, me, "--peer", other)
                H.wait_for(lambda: len(v2_from(me, mark)) >= 2, H.T(20), what="%s sending after its restart" % me)
                new = {m.payload[2:18] for m in v2_from(me, mark)}
                assert not new & key_ids, "%s reused a key id after a restart" % me
                key_ids |= new
                # The peer that stayed up accepts the new session's messages.
                H.wait_for(lambda: len(re.findall(m2m_line(me), procs[1 - i].text())) > heard, H.T(10),
                           what="%s hearing %s again" % (other, me))
        counts = check_unique(spy.take(c.topic("m2m", "#")))
        assert counts[1] == 0, counts
        # Sessions are in memory only: next to the key, only the ring and the
        # files of the other duties (pin, log) are kept.
        for d in (p1, p2):
            kept = {p.name[len(d) + 4:] for p in ring_path(c, d).parent.glob(d + ".key*")}
            assert kept <= {"", ".ch", ".ring", ".head"}, kept
    finally:
        stop(*procs)
        spy.close()
