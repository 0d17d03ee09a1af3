"""test_dashboard.py: the operator dashboard (issue 13) in a real Chromium.

Why this exists: the page is only useful if, served by mosquitto itself
(http_dir on a websockets listener) and talking to the real plugin, it does
what the operator relies on: it makes its own key and connects once the CLI
enrolled it; agents show online, and a revoked row turns revoked, within 2 s
of the event; the head it calls verified is one whose signature it checked
with the pinned key (a forged one says NOT verified); an admin's revoke from
the page really cuts the device off; custody and witnesses show; and 5,000
devices publishing statuses leave the page responsive. Each test runs the
real broker + plugin, real `iotguard-agent`s and the real CLI; the browser
is driven through chromedriver (igdash.py). Latencies asserted here are
measured from the event to the page showing it (watchers inside the page).
"""
import base64
import hashlib
import json
import os
import re
import shutil
import threading
import time

import nacl.signing
import pytest

import igdash as D
import igharness as H

EM_DASH = "\u2014"


class World:
    """A cluster, its broker with the dashboard listener, and everything a
    test started (stopped in close(), whatever happened)."""

    def __init__(self, root, ids, policy_mutate=None, name="c1"):
        self.root = root
        self.c = H.Cluster(root / "cluster", name)
        for ident, role in ids:
            self.c.enroll(ident, role)
        self.policy = H.write_policy(root / "policy.json", policy_mutate) if policy_mutate else None
        self.agents = {}
        self.procs = []
        self.broker = None
        self.dash = None
        self._brokers = len(H.ALL_BROKERS)
        self._dashes = len(D.ALL_DASHBOARDS)

    def start(self, name="dash", **opts):
        """The dashboard's files and config, then the broker serving them."""
        self.dash = D.Dashboard(self.c, self.root, policy=self.policy, name=name)
        if self.policy:
            opts["policy"] = self.policy
        self.broker = self.dash.attach(self.c.broker(**opts)).start()
        self.dash.wait_http()
        return self.broker, self.dash

    def admin_identity(self, ident="admin1"):
        return self.c.ids[ident]

    def start_agent(self, ident, *extra):
        a = H.start_agent(self.broker, self.c, ident, *extra)
        self.agents[ident] = a
        return a

    def close(self):
        errors = D.quit_all(self._dashes)
        for a in list(self.agents.values()):
            try:
                a.stop(timeout=H.T(15))
            except AssertionError as e:
                errors.append(str(e))
        for p in self.procs:
            try:
                p.stop(timeout=H.T(15))
            except AssertionError as e:
                errors.append(str(e))
        while H.ALL_CLIENTS:
            H.ALL_CLIENTS.pop().close()
        for b in H.ALL_BROKERS[self._brokers:]:
            if b.running:
                try:
                    b.stop()
                except AssertionError as e:
                    errors.append(str(e))
        if errors:
            pytest.fail("\n\n".join(errors), pytrace=False)


STD = [("admin1", "admin"), ("mon1", "monitor"), ("an1", "analyst")]


@pytest.fixture
def make_world(tmp_path):
    made = []

    def make(ids=STD, **kw):
        w = World(tmp_path, ids, **kw)
        made.append(w)
        return w
    yield make
    for w in made:
        w.close()


def status_times(mon, c):
    """{id: ts (s) of its first online status} from a monitor's capture."""
    out = {}
    for m in mon.take(c.topic("dev", "+", "status")):
        j = m.json()
        if j.get("state") == "online" and j["id"] not in out:
            out[j["id"]] = j["ts"] / 1000.0
    return out


def dom_state_is(ident, state):
    return "(document.querySelector(%s) || {dataset: {}}).dataset.state === %s" % (
        json.dumps(D.row_selector(ident)), json.dumps(state))


# ---- 1. identity made in the browser, enrolled by the CLI -------------------

def test_page_makes_its_key_keeps_it_and_connects_once_enrolled(make_world):
    w = make_world()
    b, d = w.start()
    d.open("dash1")
    me = d.identity()
    assert me["id"] == "dash1", me
    pk = me["publicKeyHex"]
    assert re.fullmatch(r"[0-9a-f]{64}", pk), "the page's public key must be 64 hex: %r" % pk
    assert me["role"] is None, "not enrolled yet, so no role: %r" % me
    assert pk in d.text("#identity-pubkey"), d.text("#identity-pubkey")
    assert d.text("#identity-id").strip() == "dash1", d.text("#identity-id")
    cmd = d.text("#enroll-command")
    for part in ("iotguard enroll", "--id dash1", "--role monitor", "--pubkey " + pk):
        assert part in cmd, "the enrol command lacks %r: %r" % (part, cmd)

    # Not enrolled: the broker refuses the page's token, and the page says so.
    d.wait("window.iotguardDashboard.connState() === 'refused' && "
           "document.querySelector('#conn').dataset.state === 'refused'", H.T(20),
           "the page to show its connection refused before enrolment")
    assert b.refusal_reason("dash1", timeout=H.T(5)) == "unknown_id"

    # The key is kept (IndexedDB): the same after a reload, and not extractable.
    d.reload()
    assert d.identity()["publicKeyHex"] == pk, "the page made a new key on reload"
    extractable = d.driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const rq = indexedDB.open('iotguard-dashboard');
        rq.onerror = () => done('open failed');
        rq.onsuccess = () => {
            const tx = rq.result.transaction('keys', 'readonly');
            const g = tx.objectStore('keys').get('identity');
            g.onsuccess = () => { const v = g.result;
                done(v ? {ext: v.privateKey.extractable, type: v.privateKey.type,
                          alg: v.privateKey.algorithm.name, pk: v.publicKeyHex} : 'no key'); };
            g.onerror = () => done('get failed');
        };""")
    assert extractable == {"ext": False, "type": "private", "alg": "Ed25519", "pk": pk}, extractable

    # Enrolled with the CLI while the page waits: it connects with no reload.
    t0 = time.time()
    d.enroll_self(w.c.ids["admin1"], role="monitor")
    print("page connected %.1f s after the CLI enrolment started" % (time.time() - t0))
    m = b.wait_log(r"New client connected from \S+ as dash1 ", timeout=H.T(5))
    assert m
    row = d.row("dash1")
    assert row and row["role"] == "monitor" and row["state"] != "revoked", row
    assert d.hook("counts")["total"] == len(STD) + 1, d.hook("counts")
    d.screenshot(w.root / "identity.png")
    # The refused connects before enrolment are the only errors the browser may report.
    d.assert_no_console_errors(allow=(r"WebSocket connection to .* failed",))

    # A second tab of the same browser is the same identity (one key, one id): it must not
    # connect too, or the two would take each other's MQTT session over for ever. It waits,
    # says why, and connects once the first tab is gone.
    first = d.driver.current_window_handle
    connects = len(re.findall(r"New client connected from \S+ as dash1 ", b.log()))
    d.driver.switch_to.new_window("tab")
    d.driver.get(d.url("dash1"))
    d.wait_ready()
    d.wait("window.iotguardDashboard.connState() === 'closed' && "
           "document.querySelector('#conn-detail').textContent.includes('Another tab')", H.T(10),
           "the second tab to wait for the first one's connection")
    time.sleep(H.T(1))
    assert len(re.findall(r"New client connected from \S+ as dash1 ", b.log())) == connects, \
        "the second tab connected while the first one was connected"
    d.driver.switch_to.window(first)
    assert d.conn_state() == "connected", "the first tab lost its connection to the second"
    d.driver.close()
    d.driver.switch_to.window(d.driver.window_handles[0])
    d.wait_connected(H.T(15))


# ---- 2. agents online and a CLI revoke, within 2 s ---------------------------

N_AGENTS = 5


def test_agents_online_and_cli_revoke_within_two_seconds(make_world):
    ids = STD + [("dev%d" % i, "device") for i in range(1, N_AGENTS + 1)]
    w = make_world(ids)
    b, d = w.start()
    d.open("dash1")
    d.enroll_self(w.c.ids["admin1"])
    mon = H.watcher(b, w.c, "mon1", topics=("dev/+/status", "ledger/events"))
    devs = ["dev%d" % i for i in range(1, N_AGENTS + 1)]
    for dev in devs:
        assert d.row(dev)["state"] == "offline", d.row(dev)
        d.watch("online-" + dev, dom_state_is(dev, "online"))
    for dev in devs:
        w.start_agent(dev)
    seen = {}
    for dev in devs:
        seen[dev], _ = d.watched("online-" + dev, H.T(20), "%s's row to show online" % dev)
    ts = H.wait_for(lambda: (lambda t: t if set(devs) <= set(t) else None)(status_times(mon, w.c)), H.T(5),
                    what="every agent's online status at the monitor")
    lat = {dev: seen[dev] - ts[dev] for dev in devs}
    print("online: status -> row shows online: " + ", ".join("%s %.0f ms" % (k, v * 1000) for k, v in lat.items()))
    for dev, v in lat.items():
        assert v <= 2.0, "%s showed online %.2f s after its status (must be within 2 s)" % (dev, v)
        assert d.row(dev)["state"] == "online"
    # The page's own identity is connected, so the fleet listing shows it online too.
    me_online = d.row("dash1")["state"] == "online"
    assert d.hook("counts")["online"] == N_AGENTS + me_online, d.hook("counts")

    # A revoke from the CLI turns the row revoked within 2 s.
    victim = "dev3"
    d.watch("revoked", dom_state_is(victim, "revoked"))
    t_cli = time.time()
    H.cli("revoke", "--host", "127.0.0.1", "--port", b.port, "--cluster", w.c.name, "--user", "admin1",
          "--key", w.c.ids["admin1"].key, "--id", victim, "--reason", "stolen")
    t_page, _ = d.watched("revoked", H.T(10), "%s's row to show revoked" % victim)
    ev = H.wait_event(mon, w.c, lambda e: e["type"] == "revoke" and e["id"] == victim)
    from_record = t_page - ev["ts"] / 1000.0
    from_cli = t_page - t_cli
    print("revoke: record -> row revoked %.0f ms; CLI start -> row revoked %.0f ms" % (from_record * 1000, from_cli * 1000))
    assert from_record <= 2.0, "the row showed revoked %.2f s after the revoke record" % from_record
    assert from_cli <= H.T(2.0) + 1.0, "the row showed revoked %.2f s after `iotguard revoke` started" % from_cli
    assert d.row(victim)["state"] == "revoked"
    c = d.hook("counts")
    assert c["revoked"] == 1 and c["online"] == N_AGENTS - 1 + me_online, c
    # The feed shows the revoke, newest first.
    d.wait("document.querySelector('#feed li[data-type=\"revoke\"]') !== null", H.T(5), "the revoke in #feed")
    newest = d.hook("feed")[0]
    assert newest["type"] == "revoke" and newest["id"] == victim and newest["reason"] == "stolen", newest
    d.screenshot(w.root / "agents.png")
    d.assert_no_console_errors(allow=(r"WebSocket connection to .* failed",))


# ---- 3. the head: verified, and forged heads NOT verified --------------------

def _allow_analyst_head(pol):
    a = pol["roles"]["analyst"]
    a["publish"].append("iotguard/{cluster}/ledger/head")
    a.setdefault("retain", []).append("iotguard/{cluster}/ledger/head")


def _sig_line(seed, name, body):
    sk = nacl.signing.SigningKey(seed)
    pk = bytes(sk.verify_key)
    kid = hashlib.sha256(name.encode() + b"\n\x01" + pk).digest()[:4]
    return "%s %s %s\n" % (EM_DASH, name, base64.b64encode(kid + sk.sign(body.encode()).signature).decode()), pk


def test_head_verified_and_forged_heads_not_verified(make_world):
    w = make_world(policy_mutate=_allow_analyst_head)
    b, d = w.start()
    mon = H.watcher(b, w.c, "mon1", topics=("ledger/head",))
    d.open("dash1")
    d.enroll_self(w.c.ids["admin1"])
    assert d.config["ch_pubkey"] == w.c.ch_pubkey, d.config
    real = mon.wait_message(w.c.topic("ledger", "head"), pred=lambda m: m.json()["size"] >= 1, timeout=H.T(10))
    # Wait for the newest head the broker published (the page's enrolment appended one).
    time.sleep(0.3)
    real = mon.take(w.c.topic("ledger", "head"))[-1].json()
    d.wait("(h => h && h.verified === true && String(h.size) === '%d')(window.iotguardDashboard.head())" % real["size"],
           H.T(10), "the page to verify the real head of size %d" % real["size"])
    d.wait("document.querySelector('#head-verify').dataset.verified === 'true'", H.T(5), "#head-verify verified")
    assert "NOT" not in d.text("#head-verify") and "verified" in d.text("#head-verify"), d.text("#head-verify")
    d.screenshot(w.root / "head-verified.png")

    an = b.connect("an1")
    topic = w.c.topic("ledger", "head")
    body = real["checkpoint"][:real["checkpoint"].index("\n\n") + 1]

    # (a) a checkpoint signed by another key (which the head also claims).
    line, other_pk = _sig_line(bytes(range(100, 132)), "iotguard/%s" % w.c.name, body)
    forged_a = dict(real, checkpoint=body + "\n" + line, ch_pubkey=other_pk.hex())
    # (a') the same checkpoint, the head claiming the pinned key: only the signature check catches it.
    forged_a2 = dict(real, checkpoint=body + "\n" + line)
    # (b) the right key claimed, one signature byte flipped.
    sig_lines = real["checkpoint"][len(body) + 1:].split("\n")
    name, b64 = sig_lines[0][2:].split(" ")
    blob = bytearray(base64.b64decode(b64))
    blob[4 + 17] ^= 0x01
    forged_b = dict(real, checkpoint=body + "\n" + "%s %s %s\n" % (EM_DASH, name, base64.b64encode(bytes(blob)).decode()))

    for label, forged in (("signed by another key", forged_a), ("signed by another key, pinned key claimed", forged_a2),
                          ("a flipped signature byte", forged_b)):
        d.watch("forged", "(h => h && h.verified === false)(window.iotguardDashboard.head()) && "
                "document.querySelector('#head-verify').dataset.verified === 'false'")
        t0 = time.time()
        an.publish(topic, json.dumps(forged), retain=True)
        t1, _ = d.watched("forged", H.T(10), "the page to call the head %s NOT verified" % label)
        h = d.hook("head")
        assert h["verified"] is False and h["reason"], h
        assert "NOT verified" in d.text("#head-verify"), d.text("#head-verify")
        print("forged head (%s): NOT verified after %.0f ms; reason: %s" % (label, (t1 - t0) * 1000, h["reason"]))
        d.screenshot(w.root / ("head-forged-%s.png" % re.sub(r"\W+", "-", label)))
        # The genuine head, republished, is verified again (the page does not stick).
        d.watch("genuine", "(h => h && h.verified === true)(window.iotguardDashboard.head())")
        an.publish(topic, json.dumps(real), retain=True)
        d.watched("genuine", H.T(10), "the page to verify the genuine head again")

    # Genuine signatures that must still not pass: a head older than one the page verified (a
    # replay, the view going back in time), and a second root for a size it verified, signed by
    # the real cluster-head key (a fork; the test holds ch.key, as a compromised head would).
    adm = H.Admin(b, "admin1")
    resp = adm.one("enroll", id="late1", role="device", pubkey="%064x" % 7)
    assert resp.get("ok"), resp
    adm.close()
    newer = mon.wait_message(topic, pred=lambda m: m.json()["size"] > real["size"], timeout=H.T(10)).json()
    d.wait("(h => h && h.verified === true && String(h.size) === '%d')(window.iotguardDashboard.head())"
           % newer["size"], H.T(10), "the page to verify the newer head of size %d" % newer["size"])
    ch_seed = bytes.fromhex((w.c.ledger / "ch.key").read_text().split()[1])
    origin = "iotguard/%s" % w.c.name
    fork_root = base64.b64encode(hashlib.sha256(b"another history").digest()).decode()
    fork_body = "%s\n%d\n%s\n" % (origin, newer["size"], fork_root)
    fork_line, fork_pk = _sig_line(ch_seed, origin, fork_body)
    assert fork_pk.hex() == w.c.ch_pubkey
    forked = dict(newer, root=fork_root, checkpoint=fork_body + "\n" + fork_line)
    for label, bad, why in (("an older genuine head", real, "older than one this page already verified"),
                            ("a second root for the same size", forked, "forked")):
        d.watch("forged", "(h => h && h.verified === false)(window.iotguardDashboard.head())")
        an.publish(topic, json.dumps(bad), retain=True)
        d.watched("forged", H.T(10), "the page to call %s NOT verified" % label)
        h = d.hook("head")
        assert why in h["reason"], h
        print("%s: NOT verified; reason: %s" % (label, h["reason"]))
        d.watch("genuine", "(h => h && h.verified === true)(window.iotguardDashboard.head())")
        an.publish(topic, json.dumps(newer), retain=True)
        d.watched("genuine", H.T(10), "the page to verify the newest genuine head again")
    an.close()
    d.assert_no_console_errors(allow=(r"WebSocket connection to .* failed",))


# ---- 4. an admin page revokes, enrols and makes join codes -------------------

def test_admin_revokes_from_the_page_and_the_agent_is_cut_off(make_world):
    ids = STD + [("dev1", "device"), ("dev2", "device")]
    w = make_world(ids)
    b, d = w.start()
    d.open("dashadm")
    d.enroll_self(w.c.ids["admin1"], role="admin")
    mon = H.watcher(b, w.c, "mon1", topics=("dev/+/status", "ledger/events"))
    for dev in ("dev1", "dev2"):
        w.start_agent(dev)
        d.wait(dom_state_is(dev, "online"), H.T(20), "%s online on the page" % dev)

    # Cancel changes nothing.
    d.click('button[data-action="revoke"][data-id="dev2"]')
    d.wait("document.querySelector('#confirm-dialog').open === true", H.T(5), "the confirmation dialog")
    assert "dev2" in d.text("#confirm-dialog"), d.text("#confirm-dialog")
    d.click("#confirm-cancel")
    d.wait("document.querySelector('#confirm-dialog').open === false", H.T(5), "the dialog to close")
    time.sleep(1.0)
    assert d.row("dev2")["state"] == "online", d.row("dev2")
    assert not H.events(mon, w.c, "revoke"), "cancel must revoke nothing"

    # Revoke dev1 from its row, with a reason, confirmed.
    mark = b.mark()
    d.type_into("#revoke-reason", "stolen from the page")
    d.click('button[data-action="revoke"][data-id="dev1"]')
    d.wait("document.querySelector('#confirm-dialog').open === true", H.T(5), "the confirmation dialog")
    text = d.text("#confirm-dialog")
    assert "dev1" in text and "revoke" in text.lower() and "stolen from the page" in text, \
        "the dialog must say what will happen: %r" % text
    d.watch("revoked", dom_state_is("dev1", "revoked"))
    t0 = time.time()
    d.click("#confirm-ok")
    t1, _ = d.watched("revoked", H.T(10), "dev1's row to show revoked")
    ev = H.wait_event(mon, w.c, lambda e: e["type"] == "revoke" and e["id"] == "dev1")
    assert ev["by"] == "dashadm" and ev["reason"] == "stolen from the page", ev
    print("page revoke: click -> row revoked %.0f ms" % ((t1 - t0) * 1000))
    d.wait("/Revoked dev1/.test(document.querySelector('#admin-result').textContent)", H.T(5),
           "the admin result to report dev1 revoked")
    assert "connection was cut" in d.text("#admin-result"), d.text("#admin-result")
    # The agent is cut off: its will (offline) arrives, its reconnects are refused.
    mon.wait_message(w.c.topic("dev", "dev1", "status"), pred=lambda m: m.json()["state"] == "offline",
                     timeout=H.T(10))
    assert b.refusal_reason("dev1", since=mark, timeout=H.T(20)) == "revoked"
    assert d.row("dev2")["state"] == "online", "only dev1 is revoked"
    d.screenshot(w.root / "admin-revoked.png")
    w.agents.pop("dev1").stop(timeout=H.T(15))

    # Enrol from the page (a key made here, as an operator would paste it).
    sk = nacl.signing.SigningKey.generate()
    pk = bytes(sk.verify_key).hex()
    form = "#enroll-form "
    d.type_into(form + '[name="enroll-id"]', "dev9")
    d.js("const s = document.querySelector('#enroll-form [name=\"enroll-role\"]'); s.value = 'device';"
         "s.dispatchEvent(new Event('change', {bubbles: true}));")
    d.type_into(form + '[name="enroll-pubkey"]', pk)
    d.type_into(form + '[name="enroll-zone"]', "b2")
    d.click(form + '[type="submit"]')
    d.wait("document.querySelector('#confirm-dialog').open === true", H.T(5), "the enrol confirmation")
    assert "dev9" in d.text("#confirm-dialog") and pk in d.text("#confirm-dialog"), d.text("#confirm-dialog")
    d.click("#confirm-ok")
    ev = H.wait_event(mon, w.c, lambda e: e["type"] == "enroll" and e["id"] == "dev9")
    assert ev["pubkey"] == pk and ev["role"] == "device" and ev["by"] == "dashadm", ev
    d.wait("(r => r && r.role === 'device' && r.zone === 'b2' && r.state === 'offline')"
           "(window.iotguardDashboard.row('dev9'))", H.T(5), "dev9's row")
    d.wait("/Enrolled dev9/.test(document.querySelector('#admin-result').textContent)", H.T(5),
           "the admin result to report dev9 enrolled")

    # Join codes from the page: shown once, and one really joins (a real agent).
    form = "#join-form "
    d.js("const s = document.querySelector('#join-form [name=\"join-role\"]'); s.value = 'device';"
         "s.dispatchEvent(new Event('change', {bubbles: true}));")
    d.type_into(form + '[name="join-count"]', "2")
    d.click(form + '[type="submit"]')
    d.wait("document.querySelector('#confirm-dialog').open === true", H.T(5), "the join-code confirmation")
    assert "2 one-time join codes" in d.text("#confirm-dialog"), d.text("#confirm-dialog")
    d.click("#confirm-ok")
    codes = d.wait("(t => (t.match(/igjc1-[0-9a-f]{48}/g) || []).length === 2 && t.match(/igjc1-[0-9a-f]{48}/g))"
                   "(document.querySelector('#join-codes').textContent)", H.T(10), "two join codes shown")
    assert len(set(codes)) == 2, codes
    d.screenshot(w.root / "admin-join-codes.png")
    d.watch("joined", dom_state_is("joined1", "online"))
    w.agents["joined1"] = H.Proc([H.AGENT, "--host", "127.0.0.1", "--port", b.port, "--cluster", w.c.name,
                                  "--id", "joined1", "--key", w.c.keys / "joined1.key", "--join-code", codes[0],
                                  "--heartbeat", "1"], name="agent-joined1")
    d.watched("joined", H.T(20), "the device that joined with a code from the page to show online")
    assert d.row("joined1")["role"] == "device"
    d.assert_no_console_errors(allow=(r"WebSocket connection to .* failed",))


# ---- 5. custody and witnesses -------------------------------------------------

def test_custody_and_witness_panels(make_world):
    vkeys = {}

    def pol(p):
        p["witnesses"] = {"keys": [vkeys["w1"]], "quorum": 1}
    ids = STD + [("d1", "device"), ("d2", "device"), ("d3", "device"), ("w1", "witness")]
    w = make_world(ids)
    vkeys["w1"] = H.cli("witness", "--print-vkey", "--id", "w1", "--key", w.c.ids["w1"].key).stdout.strip()
    w.policy = H.write_policy(w.root / "policy.json", pol)
    b, d = w.start(custody_threshold=2, custody_shares=3, custody_deal_timeout_s=20)
    assert d.config.get("witnesses") == {"keys": [vkeys["w1"]], "quorum": 1}, d.config
    state = w.root / "w1.state"
    wp = H.Proc([H.CLI, "witness", "--host", "127.0.0.1", "--port", b.port, "--cluster", w.c.name, "--id", "w1",
                 "--key", w.c.ids["w1"].key, "--state", state, "--log-key", w.c.ch_pubkey], name="w1")
    w.procs.append(wp)
    d.open("dash1")
    d.enroll_self(w.c.ids["admin1"])
    for dev in ("d1", "d2", "d3"):
        w.start_agent(dev)
    cst = d.wait("(c => c && c.state === 'active' && c.holders && c.holders.length === 3 && c)"
                 "(window.iotguardDashboard.custody())", H.T(60), "custody active with 3 holders on the page")
    assert cst["k"] == 2 and cst["n"] == 3 and cst["epoch"] >= 1, cst
    d.wait("/active/i.test(document.querySelector('#custody-state').textContent)", H.T(5), "#custody-state active")
    panel = d.text("#custody-panel")
    for h in ("d1", "d2", "d3"):
        assert h in panel, "the custody panel must list holder %s: %r" % (h, panel)
    assert "2" in panel and "3" in panel, panel

    # Enrolling makes a new checkpoint, which w1 cosigns (quorum 1).
    admin = H.Admin(b, "admin1")
    assert admin.one("enroll", id="d9", role="device",
                     pubkey=bytes(nacl.signing.SigningKey.generate().verify_key).hex())["ok"]
    h = d.wait("(h => h && h.verified === true && h.cosigned && h.cosigned.met === true && h)"
               "(window.iotguardDashboard.head())", H.T(30), "the head verified and cosigned by w1")
    assert h["cosigned"]["valid"] == ["w1"] and h["cosigned"]["quorum"] == 1, h
    d.wait("/w1/.test(document.querySelector('#witnesses').textContent)", H.T(15), "#witnesses naming w1")
    assert re.search(r"1\s*/\s*1", d.text("#head-panel")), "head panel shows cosigned 1/1: %r" % d.text("#head-panel")
    d.screenshot(w.root / "custody-witness.png")
    d.assert_no_console_errors(allow=(r"WebSocket connection to .* failed",))


# ---- 6. 5,000 devices publishing statuses -----------------------------------

N_SIM = 5000
RATE = 600           # status messages per second (the issue asks >= 500)
LOAD_S = 10.0


def sim_id(i):
    return "sim-%05d" % i


def sim_pubkey(i):
    seed = hashlib.sha256(b"dash-sim-%d" % i).digest()
    return bytes(nacl.signing.SigningKey(seed).verify_key).hex()


def enroll_many(admin, n, zones=10, batch=64, start=0, window=8):
    """Enrols sim-<start>..sim-<n-1> through the admin API, `batch` commands
    a request, up to `window` requests in flight (the writer batches them)."""
    pending = []

    def settle(cors):
        rs = admin.m.wait_message(H.ADMIN_RESPONSE, timeout=H.T(60), pred=lambda m: [
            r.get("correlation") for r in m.json().get("responses", [])] == cors).json()["responses"]
        bad = [x for x in rs if not x.get("ok")]
        assert not bad, bad[:3]
    for first in range(start, n, batch):
        cmds = [{"command": "enroll", "id": sim_id(i), "role": "device", "pubkey": sim_pubkey(i),
                 "zone": "z%d" % (i % zones)} for i in range(first, min(n, first + batch))]
        pending.append(admin.send(*cmds))
        if len(pending) >= window:
            settle(pending.pop(0))
    while pending:
        settle(pending.pop(0))
    admin.m.clear()


class StatusLoad(threading.Thread):
    """Publishes statuses for the simulated devices as one bridge identity,
    at `rate` messages/s for `seconds`: every device once online (in order),
    then every fifth one offline. Records each device's last state."""

    def __init__(self, client, c, n, rate, seconds):
        super().__init__(daemon=True)
        self.m, self.c, self.n, self.rate, self.seconds = client, c, n, rate, seconds
        self.last = {}
        self.sent = 0
        self.elapsed = 0.0
        self.error = None
        self.halt = threading.Event()   # stop early (the bench's background traffic)
        total = int(rate * seconds)
        plan = [(i % n, "online") for i in range(min(n, total))]
        i = 0
        while len(plan) < total:
            plan.append(((i * 5) % n, "offline" if (i // (n // 5 or 1)) % 2 == 0 else "online"))
            i += 1
        self.plan = plan

    def run(self):
        try:
            t0 = time.monotonic()
            seqs = {}
            for k, (i, st) in enumerate(self.plan):
                if self.halt.is_set():
                    break
                due = t0 + k / self.rate
                now = time.monotonic()
                if due > now:
                    time.sleep(due - now)
                ident = sim_id(i)
                seqs[ident] = seqs.get(ident, 0) + 1
                payload = {"id": ident, "state": st, "ts": int(time.time() * 1000), "seq": seqs[ident]}
                if st == "online":
                    payload["uptime_s"] = seqs[ident]
                self.m.publish_async(self.c.topic("dev", ident, "status"), json.dumps(payload), qos=1)
                self.last[ident] = st
                self.sent += 1
            self.elapsed = time.monotonic() - t0
        except Exception as e:   # reported by the test
            self.error = e


def test_five_thousand_devices_page_stays_responsive(make_world):
    ids = STD + [("br1", "bridge")]
    w = make_world(ids)
    b, d = w.start()
    admin = H.Admin(b, "admin1")
    t = time.monotonic()
    enroll_many(admin, N_SIM)
    print("enrolled %d devices through the admin API in %.1f s" % (N_SIM, time.monotonic() - t))
    d.open("dash1")
    t = time.monotonic()
    d.enroll_self(w.c.ids["admin1"], timeout=H.T(60))
    total = N_SIM + len(ids) + 1
    d.wait("window.iotguardDashboard.counts().total === %d" % total, H.T(20), "%d rows" % total)
    print("fleet of %d rows loaded %.1f s after the CLI enrolment started (connected after %.1f s, "
          "then the listing in %.1f s)" % (total, time.monotonic() - t, d.timings["enrolled_to_connected_s"],
                                          d.timings["connected_to_fleet_s"]))

    br = b.connect("br1", token=w.c.token("br1"))
    br.c.max_inflight_messages_set(200)
    load = StatusLoad(br, w.c, N_SIM, RATE, LOAD_S)
    d.hook("resetFrameStats")
    idle_ms = 2000
    time.sleep(idle_ms / 1000.0)
    idle = d.hook("frameStats")
    d.hook("resetFrameStats")
    load.start()

    # Mid-load: a search finds a device that is already online, within 1 s.
    time.sleep(LOAD_S * 0.5)
    target = sim_id(1234)
    d.watch("search", "(rows => rows.length === 1 && rows[0].dataset.id === %s)"
            "(document.querySelectorAll('#fleet-table tbody tr[data-id]'))" % json.dumps(target))
    d.mark_typed("#fleet-search", target)
    t0 = time.time()
    d.type_into("#fleet-search", target)
    t1, _ = d.watched("search", H.T(10), "the search to show only %s" % target)
    typing_s = d.typed_at() - t0
    search_s = t1 - d.typed_at()
    load.join(timeout=LOAD_S + H.T(30))
    assert not load.is_alive(), "the status load did not finish"
    assert load.error is None, load.error
    loaded = d.hook("frameStats")
    rate = load.sent / load.elapsed
    print("status load: %d messages in %.1f s (%.0f msg/s)" % (load.sent, load.elapsed, rate))
    print("frame time idle:   " + D.frame_stats_text(idle))
    print("frame time loaded: " + D.frame_stats_text(loaded))
    print("search under load: %s alone in the table %.0f ms after the last keystroke (typing it through "
          "WebDriver took %.0f ms more)" % (target, search_s * 1000, typing_s * 1000))
    assert rate >= 500, "the load must reach 500 msg/s (got %.0f)" % rate
    assert search_s <= 1.0, "search took %.2f s under load (must be within 1 s)" % search_s

    # Identities other than the simulated ones count as the listing showed them
    # (connected ones, such as the page itself, are online).
    others = [i for i, _ in ids] + ["dash1"]
    online = sum(1 for s in load.last.values() if s == "online")
    online += sum(1 for i in others if d.row(i)["state"] == "online")
    want = {"online": online, "offline": total - online, "revoked": 0, "total": total}
    d.wait("(c => c.online === %d && c.offline === %d && c.revoked === 0 && c.total === %d)"
           "(window.iotguardDashboard.counts())" % (want["online"], want["offline"], want["total"]), H.T(20),
           "the counts to settle at %s" % want)
    assert d.row(target)["state"] == load.last[target], d.row(target)
    counts_text = d.text("#fleet-counts")
    assert "{:,} online".format(online) in counts_text and "{:,} total".format(total) in counts_text, counts_text
    # Responsive: frames kept coming while 500+ statuses a second arrived.
    assert loaded["count"] >= LOAD_S * 10, "only %d frames in %.0f s of load" % (loaded["count"], LOAD_S)
    assert loaded["p95"] <= 200, "p95 frame time %.0f ms under load" % loaded["p95"]

    d.hook("setSearch", "")
    d.wait("document.querySelectorAll('#fleet-table tbody tr[data-id]').length > 10", H.T(5), "the full table again")
    # Virtualised: a screenful of rows in the DOM, not 5,000.
    in_dom = d.value("document.querySelectorAll('#fleet-table tbody tr[data-id]').length")
    assert 10 < in_dom < 200, "%d rows in the DOM for %d identities" % (in_dom, total)
    st = d.hook("stats")
    assert st and st["cluster"] == w.c.name and st["connected"]["bridge"] == 1, st
    assert d.value("document.querySelectorAll('#charts canvas').length") >= 6, "six charts drawn in #charts"
    time.sleep(1.5)   # a stats tick or two for the charts
    d.screenshot(w.root / "dashboard-5000-viewport.png")
    shot = d.screenshot(w.root / "dashboard-5000.png", full_page=True)
    out = os.environ.get("IG_DASH_SCREENSHOT")
    if out:
        shutil.copyfile(shot, out)
        print("screenshot written to %s" % out)
    d.assert_no_console_errors(allow=(r"WebSocket connection to .* failed",))
    br.close()
    admin.close()
