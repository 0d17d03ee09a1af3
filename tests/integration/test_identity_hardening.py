"""Issue 7, "Identity and credit" and "Brute force must not buy an attacker
anything", against a real broker: what an old key of an id held never
survives into a new enrolment, a join code never claims an id the ledger
ever enrolled, a joining session may use a shared subscription to its own
inbox, attestation reports are rationed, and JSON numbers that do not fit
an integer are refused instead of converted (UB under UBSan).

Run under the sanitized build too:
    IG_BUILD=/tmp/build-asan IG_BROKER_PRELOAD=$(gcc -print-file-name=libasan.so) \\
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 /usr/bin/python3 -m pytest -q test_identity_hardening.py
"""
import base64
import json
import os
import re
import time

import nacl.bindings as sodium
import pytest

import igharness as H
import igkeys as K
from igharness import next_stats, watcher

REFUSED = H.NOT_AUTHORISED_V5


# ---- helpers -------------------------------------------------------------------------------------

def client(broker, cluster, ident, token=None):
    c = broker.connect(ident, token=token)
    c.subscribe_ok(cluster.topic("dev", ident, "inbox"))
    return c


def ask(c, cluster, ident, payload, pred, timeout=None):
    """Publishes payload (dict or raw text) on ident's ch topic; returns the
    first inbox reply (schema-checked) for which pred holds."""
    start = len(c.messages)
    c.publish(cluster.topic("ch", ident), payload)
    m = c.wait_message(cluster.topic("dev", ident, "inbox"), start=start, pred=lambda m: pred(m.json()),
                       timeout=timeout or H.T(8)).json()
    H.schema_validate("inbox", m)
    return m


def by_nonce(nonce):
    return lambda j: j.get("nonce") == nonce


def error_reply(code):
    return lambda j: j.get("type") == "error" and j.get("error") == code


def balance(c, cluster, ident):
    r = ask(c, cluster, ident, {"type": "balance", "nonce": "bal-%s" % os.urandom(3).hex()},
            lambda j: j.get("type") == "balance")
    return r["balance"], r["outstanding"]


def mint(c, cluster, ident, count):
    nonce = "mint-%s" % os.urandom(3).hex()
    return ask(c, cluster, ident, {"type": "mint", "count": count, "nonce": nonce}, by_nonce(nonce))


def coins_of(reply, cluster, ident):
    k = K.box_key(K.seed_of(cluster.ids[ident].key), bytes.fromhex(cluster.ch_pubkey))
    pt = sodium.crypto_box_open_afternm(base64.b64decode(reply["box"]), bytes.fromhex(reply["box_nonce"]), k)
    return [pt[i:i + 32] for i in range(0, len(pt), 32)]


def online(broker, cluster, admin="admin2"):
    return ["--host", "127.0.0.1", "--port", broker.port, "--cluster", cluster.name, "--user", admin,
            "--key", cluster.ids[admin].key]


def records(cluster, rtype, ident=None):
    return [r for r in cluster.show_json()
            if r["type"] == rtype and (ident is None or r.get("id") == ident)]


# ---- revocation ends the old key's credit; re-enrolment is explicit and clean --------------------

@pytest.mark.vg
def test_revoke_cancels_credit_and_reenroll_is_explicit_and_clean(cluster):
    b = cluster.broker().start()
    admin = H.Admin(b, "admin1")
    mon = watcher(b, cluster)
    r = admin.one("credit", id="dev1", amount=20)
    assert r["ok"] and r["balance"] == 20, r
    d1 = client(b, cluster, "dev1")
    old_coins = coins_of(mint(d1, cluster, "dev1", 5), cluster, "dev1")
    assert len(old_coins) == 5
    assert balance(d1, cluster, "dev1") == (15, 5)
    # dev1 contributes entropy with a high sequence number under its old key.
    ch_pk = bytes.fromhex(cluster.ch_pubkey)
    d1.publish(cluster.topic("dev", "dev1", "entropy"), K.entropy_payload(1000, ch_pk))
    next_stats(mon, cluster, lambda s: s["entropy"]["devices"].get("dev1", {}).get("accepted") == 1)

    resp = admin.request({"command": "revoke", "id": "dev1", "reason": "stolen"})
    H.schema_validate("admin-response", resp)
    rv = resp["responses"][0]
    assert rv["ok"] and rv["cancelled_credit"] == 15 and rv["cancelled_coins"] == 5, rv

    # Without --reenroll, enrolling the revoked id is refused, online and via the API.
    key, pk = cluster.keygen("dev1-new")
    p = H.cli("enroll", *online(b, cluster), "--id", "dev1", "--role", "device", "--pubkey", pk, check=False)
    assert p.returncode == 1 and "--reenroll" in p.stderr, (p.returncode, p.stderr)
    r = admin.one("enroll", id="dev1", role="device", pubkey=pk)
    assert not r["ok"] and r["error"] == "already_revoked" and "reenroll" in r["message"], r
    r = admin.one("enroll", id="dev1", role="device", pubkey=pk, reenroll="yes")
    assert not r["ok"] and r["error"] == "malformed", r

    # With it, the id comes back with the new key and nothing of the old one's.
    out = H.cli("enroll", *online(b, cluster), "--id", "dev1", "--role", "device", "--pubkey", pk,
                "--reenroll").stdout
    assert re.search(r"enrolled dev1 as device at ledger index \d+", out), out
    cluster.ids["dev1"] = H.Identity("dev1", "device", key, pk)
    d1 = client(b, cluster, "dev1")
    assert balance(d1, cluster, "dev1") == (0, 0)
    assert mint(d1, cluster, "dev1", 1)["error"] == "no_credit"
    # The old key's entropy sequence does not carry over: seq 1 is accepted.
    d1.publish(cluster.topic("dev", "dev1", "entropy"), K.entropy_payload(1, ch_pk))
    s = next_stats(mon, cluster, lambda s: s["entropy"]["devices"].get("dev1", {}).get("accepted") == 1)
    assert s["entropy"]["refused"]["replayed"] == 0, s["entropy"]
    # The old coins are gone: an analyst cannot redeem one (the header is
    # sealed to the bank exactly as docs/PROTOCOL.md "Coins" says).
    import test_bank as TB
    an = client(b, cluster, "an1")
    topic = cluster.topic("dev", "dev1", "data", "s")
    sealed = TB.Sealed(ch_pk, old_coins[0], "dev1", topic, b"{}")
    rr = ask(an, cluster, "an1", sealed.redeem_request("x1"), by_nonce("x1"))
    assert rr["type"] == "error" and rr["error"] == "unknown_coin", rr

    # A restart replays the ledger by the same rule: still nothing.
    b.stop()
    b = cluster.broker().start()
    d1 = client(b, cluster, "dev1")
    assert balance(d1, cluster, "dev1") == (0, 0)
    b.stop()
    cluster.verify()
    revokes = records(cluster, "revoke", "dev1")
    assert len(revokes) == 1 and revokes[0]["reason"] == "stolen"
    assert len(records(cluster, "enroll", "dev1")) == 2


def test_offline_revoke_and_reenroll(cluster):
    H.cli("credit", "--ledger", cluster.ledger, "--id", "dev3", "--amount", "7")
    p = H.cli("revoke", "--ledger", cluster.ledger, "--id", "dev3", "--reason", "lost", "--json")
    resp = json.loads(p.stdout)
    assert resp["ok"] and resp["cancelled_credit"] == 7 and resp["cancelled_coins"] == 0, resp
    key, pk = cluster.keygen("dev3-new")
    p = H.cli("enroll", "--ledger", cluster.ledger, "--id", "dev3", "--role", "device", "--pubkey", pk, check=False)
    assert p.returncode == 1 and "--reenroll" in p.stderr and "revoked" in p.stderr, p.stderr
    H.cli("enroll", "--ledger", cluster.ledger, "--id", "dev3", "--role", "device", "--pubkey", pk, "--reenroll")
    # Offline credit goes on from zero: the revoke cancelled the 7.
    out = H.cli("credit", "--ledger", cluster.ledger, "--id", "dev3", "--amount", "2").stdout
    assert re.search(r"balance 2$", out.strip()), out
    cluster.ids["dev3"] = H.Identity("dev3", "device", key, pk)
    b = cluster.broker().start()
    d3 = client(b, cluster, "dev3")
    assert balance(d3, cluster, "dev3") == (2, 0)
    b.stop()
    cluster.verify()


# ---- join codes never claim an id the ledger ever enrolled ---------------------------------------

def test_join_code_cannot_claim_a_revoked_id(cluster):
    H.cli("credit", "--ledger", cluster.ledger, "--id", "dev2", "--amount", "9")
    cluster.revoke_offline("dev2")
    codes = H.cli("join-code", "--ledger", cluster.ledger, "--role", "device", "--count", "2").stdout.split()
    b = cluster.broker().start()
    mark = b.mark()
    j = H.Mqtt(b, "dev2", password=K.join_token(os.urandom(32), cluster.name, "dev2", codes[0]))
    assert j.connect() in REFUSED, "a join code claimed the revoked id dev2\n" + b.diagnostics()
    assert b.refusal_reason("dev2", since=mark) == "id_taken"
    # The same code still works for an id nobody ever had, and the new id
    # starts with no credit.
    seed = os.urandom(32)
    j = H.Mqtt(b, "brand-new", password=K.join_token(seed, cluster.name, "brand-new", codes[0]))
    assert j.connect() == 0, b.diagnostics()
    j.subscribe_ok(cluster.topic("dev", "brand-new", "inbox"))
    w = ask(j, cluster, "brand-new", {"type": "join"}, lambda m: m["type"] in ("welcome", "error"))
    assert w["type"] == "welcome", w
    # The agent, as a user would run it: refused with exit status 3.
    key = cluster.keys / "dev2-join.key"
    mark = b.mark()
    a = H.Proc([H.AGENT, "--host", "127.0.0.1", "--port", b.port, "--cluster", cluster.name, "--id", "dev2",
                "--key", key, "--join-code", codes[1]], name="agent-dev2")
    assert a.p.wait(timeout=H.T(20)) == 3, a.text()
    assert b.refusal_reason("dev2", since=mark) == "id_taken"
    b.stop()
    enrolls = records(cluster, "enroll", "dev2")
    assert len(enrolls) == 1 and "join_code" not in enrolls[0], enrolls
    cluster.verify()


# ---- a joining session may share-subscribe its own inbox -----------------------------------------

def test_joining_session_may_share_subscribe_its_inbox(cluster):
    codes = H.cli("join-code", "--ledger", cluster.ledger, "--role", "device").stdout.split()
    b = cluster.broker().start()
    jid = "sharer"
    j = H.Mqtt(b, jid, password=K.join_token(os.urandom(32), cluster.name, jid, codes[0]))
    assert j.connect() == 0, b.diagnostics()
    j.subscribe_ok("$share/g/" + cluster.topic("dev", jid, "inbox"))
    for f in ("$share/g/" + cluster.topic("dev", "dev1", "inbox"), "$share/g/" + cluster.topic("stats"),
              "$share/g/#", "$share/" + cluster.topic("dev", jid, "inbox")):
        assert j.subscribe(f)[0] >= 0x80, "a joining session share-subscribed %s" % f
    # The shared subscription delivers the inbox: ping is answered there.
    start = len(j.messages)
    j.publish(cluster.topic("ch", jid), {"type": "ping", "nonce": "p"})
    m = j.wait_message(cluster.topic("dev", jid, "inbox"), start=start, timeout=H.T(5)).json()
    assert m["type"] == "pong" and m["nonce"] == "p", m
    # The same for an enrolled device, as before.
    d = b.connect("dev1")
    d.subscribe_ok("$share/g/" + cluster.topic("dev", "dev1", "inbox"))
    b.stop()


# ---- attestation reports are rationed -----------------------------------------------------------

def test_attestation_changes_are_rate_limited(cluster):
    b = cluster.broker(attest_max_per_hour=3).start()
    mon = watcher(b, cluster)
    d1 = client(b, cluster, "dev1")
    sd = K.seed_of(cluster.ids["dev1"].key)
    t = cluster.topic("ch", "dev1")
    recorded = []
    for i in range(3):
        m = os.urandom(32)
        d1.publish(t, K.attest_request(sd, "dev1", m))
        mon.wait_message(cluster.topic("ledger", "events"),
                         pred=lambda x, m=m: x.json().get("type") == "attest" and x.json()["measurement"] == m.hex(),
                         timeout=H.T(5))
        recorded.append(m)
    # A burst of new measurements: every one refused as over_rate.
    start = len(d1.messages)
    for i in range(40):
        d1.publish_async(t, json.dumps(K.attest_request(sd, "dev1", os.urandom(32))))
    H.wait_for(lambda: len([m for m in d1.messages[start:] if m.json().get("error") == "over_rate"]) >= 40,
               H.T(10), what="40 over_rate replies")
    refusals = [m.json() for m in d1.messages[start:]]
    for r in refusals:
        H.schema_validate("inbox", r)
    assert all(r["type"] == "error" and r["error"] == "over_rate" for r in refusals), refusals[:3]
    # The last recorded measurement again costs nothing and is not refused.
    start = len(d1.messages)
    d1.publish(t, K.attest_request(sd, "dev1", recorded[-1]))
    ask(d1, cluster, "dev1", {"type": "ping", "nonce": "after"}, by_nonce("after"))
    late = [m.json() for m in d1.messages[start:] if m.json().get("type") != "pong"]
    assert late == [], late
    s = next_stats(mon, cluster, lambda s: s["attestation"]["over_rate"] >= 40)
    assert s["attestation"]["over_rate"] == 40 and s["attestation"]["reports"] == 44, s["attestation"]
    assert b.running
    b.stop()
    assert [r["measurement"] for r in records(cluster, "attest", "dev1")] == [m.hex() for m in recorded]


def test_attest_max_per_hour_option_is_checked(cluster):
    b = cluster.broker(attest_max_per_hour=0)
    b.start(wait=False)
    b.wait_exit()
    assert "plugin_opt_attest_max_per_hour" in b.log() + b.stderr(), b.diagnostics()


# ---- numbers that do not fit are refused, not converted ------------------------------------------

@pytest.mark.vg
def test_huge_json_numbers_are_refused_and_the_broker_lives(cluster):
    b = cluster.broker().start()
    mon = watcher(b, cluster)
    admin = H.Admin(b, "admin1")
    assert admin.one("credit", id="dev1", amount=10)["ok"]
    d1 = client(b, cluster, "dev1")
    t = cluster.topic("ch", "dev1")
    # Raw text, so the numbers reach the broker exactly as written.
    r = ask(d1, cluster, "dev1", '{"type":"mint","count":1e10,"nonce":"big"}', by_nonce("big"))
    assert r["type"] == "error" and r["error"] == "over_limit", r
    r = ask(d1, cluster, "dev1", '{"type":"mint","count":1e308,"nonce":"bigger"}', by_nonce("bigger"))
    assert r["type"] == "error" and r["error"] == "over_limit", r
    r = ask(d1, cluster, "dev1", '{"type":"mint","count":2.5,"nonce":"frac"}', by_nonce("frac"))
    assert r["type"] == "error" and r["error"] == "malformed", r
    sd = K.seed_of(cluster.ids["dev1"].key)
    req = K.attest_request(sd, "dev1", os.urandom(32))
    for ts in ("1e300", "-1e300", "1e400", "18446744073709551616"):
        text = json.dumps(dict(req, ts=0)).replace('"ts": 0', '"ts": ' + ts)
        r = ask(d1, cluster, "dev1", text, error_reply("malformed"))
        assert "ts" in r["message"], r
    ch_pk = bytes.fromhex(cluster.ch_pubkey)
    e = K.entropy_payload(1, ch_pk)
    d1.publish(cluster.topic("dev", "dev1", "entropy"), json.dumps(e).replace('"seq": 1', '"seq": 1e300'))
    s = next_stats(mon, cluster, lambda s: s["entropy"]["refused"]["malformed"] >= 1)
    assert s["entropy"]["accepted"] == 0
    for cmd in ('{"command":"credit","id":"dev1","amount":1e10,"correlation":"a"}',
                '{"command":"list_identities","offset":1e300,"correlation":"a"}',
                '{"command":"create_join_codes","role":"device","count":1e19,"correlation":"a"}'):
        start = len(admin.m.messages)
        admin.m.publish(H.ADMIN_TOPIC, '{"commands":[%s]}' % cmd)
        resp = admin.m.wait_message(H.ADMIN_RESPONSE, start=start, timeout=H.T(5)).json()
        H.schema_validate("admin-response", resp)
        assert resp["responses"][0]["error"] == "malformed", resp
    # The schema names the same code for a count out of range as the broker does.
    ch = json.loads((H.ROOT / "schema" / "ch-request.schema.json").read_text())
    mint_desc = [v["description"] for v in ch["oneOf"] if v.get("title") == "mint"][0]
    assert re.search(r"over_limit \(count[^)]*1\.\.64", mint_desc), mint_desc
    assert not re.search(r"not_allowed \([^)]*count", mint_desc), mint_desc
    # Still alive and serving.
    assert ask(d1, cluster, "dev1", {"type": "ping", "nonce": "alive"}, by_nonce("alive"))["type"] == "pong"
    assert balance(d1, cluster, "dev1") == (10, 0)
    assert b.running
    b.stop()


# ---- the offline "by" field names the real user, as documented ---------------------------------

def test_offline_by_is_the_real_users_name_not_USER(cluster):
    import pwd
    want = "offline:" + pwd.getpwuid(os.getuid()).pw_name
    env = dict(os.environ, USER="mallory")
    env.pop("LOGNAME", None)
    key, pk = cluster.keygen("byuser")
    H.cli("enroll", "--ledger", cluster.ledger, "--id", "byuser", "--role", "device", "--pubkey", pk, env=env)
    H.cli("credit", "--ledger", cluster.ledger, "--id", "byuser", "--amount", "1", env=dict(env, USER=""))
    H.cli("revoke", "--ledger", cluster.ledger, "--id", "byuser", env=dict(env, USER="x y"))
    bys = [r["by"] for r in cluster.show_json() if r.get("id") == "byuser"]
    assert bys == [want] * 3, bys
    doc = (H.ROOT / "docs" / "LEDGER.md").read_text()
    assert "offline:<unix user>" not in doc and "offline:<user name>" in doc


# ---- stream names: one alphabet, enforced by the bank too -----------------------------------------

def test_redeem_refuses_a_stream_name_outside_the_id_alphabet(cluster):
    import test_bank as TB
    b = cluster.broker().start()
    admin = H.Admin(b, "admin1")
    assert admin.one("credit", id="dev1", amount=2)["ok"]
    d1 = client(b, cluster, "dev1")
    coins = coins_of(mint(d1, cluster, "dev1", 2), cluster, "dev1")
    an = client(b, cluster, "an1")
    ch_pk = bytes.fromhex(cluster.ch_pubkey)
    odd = cluster.topic("dev", "dev1", "data", "t~x")
    s = TB.Sealed(ch_pk, coins[0], "dev1", odd, b"{}")
    r = ask(an, cluster, "an1", s.redeem_request("odd"), by_nonce("odd"))
    assert r["type"] == "error" and r["error"] == "wrong_topic", r
    good = TB.Sealed(ch_pk, coins[1], "dev1", cluster.topic("dev", "dev1", "data", "t.x-1_A"), b"{}")
    r = ask(an, cluster, "an1", good.redeem_request("good"), by_nonce("good"))
    assert r["type"] == "redeemed", r
    b.stop()


# ---- an unattested device may contribute entropy even with an allow list ------------------------

def test_unattested_device_contributes_entropy_under_an_allow_list(cluster, tmp_path):
    pol = json.loads((H.ROOT / "config" / "policy.json").read_text())
    listed = os.urandom(32)
    pol["attestation"] = {"device": [listed.hex()]}
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(pol))
    b = cluster.broker(policy=path).start()
    mon = watcher(b, cluster)
    ch_pk = bytes.fromhex(cluster.ch_pubkey)
    d3 = client(b, cluster, "dev3")
    d3.publish(cluster.topic("dev", "dev3", "entropy"), K.entropy_payload(1, ch_pk))
    s = next_stats(mon, cluster, lambda s: s["entropy"]["devices"].get("dev3", {}).get("accepted") == 1)
    assert s["entropy"]["refused"]["attestation"] == 0
    # Once it reports a measurement that is not listed, its entropy is refused.
    sd = K.seed_of(cluster.ids["dev3"].key)
    d3.publish(cluster.topic("ch", "dev3"), K.attest_request(sd, "dev3", os.urandom(32)))
    next_stats(mon, cluster, lambda s: "dev3" in s["attestation"]["flagged"])
    time.sleep(1.1)   # past plugin_opt_entropy_min_interval_ms
    d3.publish(cluster.topic("dev", "dev3", "entropy"), K.entropy_payload(2, ch_pk))
    s = next_stats(mon, cluster, lambda s: s["entropy"]["refused"]["attestation"] == 1)
    assert s["entropy"]["devices"]["dev3"] == {"accepted": 1, "refused": 1}, s["entropy"]
    b.stop()


# ---- what a client written from the documents relies on ------------------------------------------

def _section(text, heading):
    start = text.index(heading)
    nxt = re.search(r"^#{1,3} ", text[start + len(heading):], re.M)
    return text[start:start + len(heading) + (nxt.start() if nxt else len(text))]


def test_documents_state_the_rules_once():
    proto = (H.ROOT / "docs" / "PROTOCOL.md").read_text()
    ledger = (H.ROOT / "docs" / "LEDGER.md").read_text()
    readme = (H.ROOT / "README.md").read_text()
    # Each error code of the ch requests has one row, so one meaning.
    reqs = _section(proto, "## Requests to the cluster head")
    codes = re.findall(r"^\| `([a-z_]+)`(?:, `[a-z_]+`)* \|", reqs, re.M)
    dup = sorted({c for c in codes if codes.count(c) > 1})
    assert codes and not dup, "codes listed twice: %s" % dup
    # The README's options table has every option the plugin takes from the key service and bank.
    opts = _section(readme, "## Plugin options")
    for o in ("plugin_opt_coin_ttl", "plugin_opt_attest_max_per_hour"):
        assert "| `%s " % o in opts, o
    # Join codes: only device and analyst, in the admin API and in LEDGER.md 7.4.
    admin = _section(proto, "## Admin API")
    assert re.search(r"`create_join_codes` makes.{0,120}?must be `device` or `analyst`", admin, re.S)
    assert "only for roles `device` (1) and `analyst` (2)" in _section(ledger, "### 7.4 Join code")
    # credit to an active identity of another role is not_found, and says why.
    assert re.search(r"active identity of another role[^.]*is\s+`not_found`", admin)
    # The revoke state rule, and re-enrolment only with reenroll.
    assert "State rule of revoke" in ledger and "balance\nbecomes 0" in ledger
    assert '"reenroll":true' in admin and "already_revoked" in admin
    # Stream names and unattested entropy.
    assert "A stream name is 1–64 characters of `[A-Za-z0-9_.-]`" in proto
    assert "**Entropy of an unattested device.**" in proto
