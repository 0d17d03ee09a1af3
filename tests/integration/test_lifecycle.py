"""The plugin's lifecycle: reload on SIGHUP, refusing to start, crash durability."""
import threading
import time

import nacl.signing
import pytest

import igharness as H
import igkeys as K
from igharness import write_policy


# ---- reload -----------------------------------------------------------------

@pytest.mark.vg
def test_sighup_reloads_policy_and_keeps_clients(cluster):
    policy = cluster.root / "policy.json"
    write_policy(policy)
    b = cluster.broker(policy=policy).start()
    mon = b.connect("mon1")
    mon.subscribe_ok(cluster.topic("dev", "+", "status"))
    d = b.connect("dev1")
    d.subscribe_ok(cluster.topic("dev", "dev1", "inbox"))
    status_topic = cluster.topic("dev", "dev1", "status")
    d.publish(status_topic, {"id": "dev1", "state": "online", "ts": 1, "seq": 1, "uptime_s": 0})
    mon.wait_message(status_topic)

    def no_status(pol):
        dev = pol["roles"]["device"]
        dev["publish"] = [p for p in dev["publish"] if not p.endswith("/status")]
        dev["retain"] = []
    write_policy(policy, no_status)
    since = b.mark()
    b.hup()
    b.wait_log(r"reloaded policy", since, timeout=H.T(5))

    assert d.connected and mon.connected, "a reload must not drop clients"
    mon.clear()
    d.publish(status_topic, {"id": "dev1", "state": "online", "ts": 2, "seq": 2, "uptime_s": 1})
    mon.no_message(status_topic, within=1.0)
    # Everything else the device may do still works.
    d.publish(cluster.topic("ch", "dev1"), {"type": "ping", "nonce": "after-reload"})
    assert d.wait_message(cluster.topic("dev", "dev1", "inbox")).json()["nonce"] == "after-reload"
    # And the old rule comes back with the old file.
    write_policy(policy)
    since = b.mark()
    b.hup()
    b.wait_log(r"reloaded policy", since, timeout=H.T(5))
    d.publish(status_topic, {"id": "dev1", "state": "online", "ts": 3, "seq": 3, "uptime_s": 2})
    assert mon.wait_message(status_topic).json()["seq"] == 3
    assert d.connected and mon.connected


@pytest.mark.vg
def test_sighup_with_broken_policy_keeps_the_old_one(cluster):
    policy = cluster.root / "policy.json"
    write_policy(policy)
    b = cluster.broker(policy=policy).start()
    d = b.connect("dev1")
    d.subscribe_ok(cluster.topic("dev", "dev1", "inbox"))
    policy.write_text('{"version": 1, "roles": {"device": {"publish": [')
    since = b.mark()
    b.hup()
    b.wait_log(r"policy rejected|keeping the previous policy", since, timeout=H.T(5))
    d.publish(cluster.topic("ch", "dev1"), {"type": "ping", "nonce": "still"})
    assert d.wait_message(cluster.topic("dev", "dev1", "inbox")).json()["nonce"] == "still"
    assert b.running and d.connected


def test_sighup_new_subscription_rules_apply(cluster):
    policy = cluster.root / "policy.json"
    write_policy(policy)
    b = cluster.broker(policy=policy).start()
    d = b.connect("dev2")
    assert d.subscribe(cluster.topic("stats"))[0] >= 0x80

    def grant_stats(pol):
        pol["roles"]["device"]["subscribe"].append("iotguard/{cluster}/stats")
    write_policy(policy, grant_stats)
    since = b.mark()
    b.hup()
    b.wait_log(r"reloaded policy", since, timeout=H.T(5))
    d.subscribe_ok(cluster.topic("stats"))
    assert "cluster" in d.wait_message(cluster.topic("stats"), timeout=H.T(5)).json()


def test_sighup_read_rule_applies_to_existing_subscriptions(cluster):
    # Deliveries are checked again (READ), so narrowing a role's rights
    # takes effect on subscriptions made before the reload.
    policy = cluster.root / "policy.json"
    write_policy(policy)
    b = cluster.broker(policy=policy).start()
    mon = b.connect("mon1")
    mon.subscribe_ok(cluster.topic("dev", "+", "status"))
    d = b.connect("dev1")
    d.publish(cluster.topic("dev", "dev1", "status"), {"id": "dev1", "state": "online", "ts": 1, "seq": 1,
                                                       "uptime_s": 0})
    mon.wait_message(cluster.topic("dev", "dev1", "status"))

    def monitor_blind(pol):
        pol["roles"]["monitor"]["subscribe"] = [p for p in pol["roles"]["monitor"]["subscribe"]
                                                if "/dev/+/status" not in p]
    write_policy(policy, monitor_blind)
    since = b.mark()
    b.hup()
    b.wait_log(r"reloaded policy", since, timeout=H.T(5))
    mon.clear()
    d.publish(cluster.topic("dev", "dev1", "status"), {"id": "dev1", "state": "online", "ts": 2, "seq": 2,
                                                       "uptime_s": 1})
    mon.no_message(cluster.topic("dev", "+", "status"), within=1.0)
    assert mon.connected


# ---- refusing to start ------------------------------------------------------

@pytest.mark.parametrize("where", ["body", "header-index", "crc"])
def test_refuses_tampered_ledger(cluster, where):
    offs = K.frame_offsets(cluster.ledger, whole=False)
    assert len(offs) == 8
    start, n = offs[3]          # a checkpointed enroll record
    at = {"body": start + 64, "header-index": start + 15, "crc": start + n - 1}[where]
    path = cluster.ledger / "ledger.log"
    data = bytearray(path.read_bytes())
    data[at] ^= 0x20
    path.write_bytes(bytes(data))
    b = cluster.broker()
    b.start(wait=False)
    rc = b.wait_exit(timeout=H.T(15))
    assert rc != 0, "the broker started on a tampered ledger"
    log = b.log() + b.stderr()
    assert "record 3" in log, "the error must name the record:\n" + b.diagnostics()
    assert "refusing to start" in log
    p = H.cli("verify", "--ledger", cluster.ledger, check=False)
    assert p.returncode == 2 and "record 3" in p.stderr


def test_refuses_tampered_checkpoint(cluster):
    cp = cluster.ledger / "checkpoint"
    text = cp.read_text()
    lines = text.split("\n")
    lines[1] = str(int(lines[1]) - 1)      # claim a smaller tree
    cp.write_text("\n".join(lines))
    b = cluster.broker()
    b.start(wait=False)
    assert b.wait_exit(timeout=H.T(15)) != 0
    assert "refusing to start" in b.log() + b.stderr()


def test_refuses_without_ledger_option(cluster):
    b = cluster.broker(ledger=None)
    b.start(wait=False)
    assert b.wait_exit(timeout=H.T(15)) != 0
    assert "plugin_opt_ledger is missing" in b.log() + b.stderr()


@pytest.mark.parametrize("opt,value,needle", [
    ("frobnicate", "1", "unknown option plugin_opt_frobnicate"),
    ("ttl_king", "60", "plugin_opt_ttl_king"),
    ("ttl_device", "soon", "plugin_opt_ttl_device"),
    ("stats_interval", "-1", "plugin_opt_stats_interval"),
])
def test_refuses_bad_options(cluster, opt, value, needle):
    b = cluster.broker(**{opt: value})
    b.start(wait=False)
    assert b.wait_exit(timeout=H.T(15)) != 0
    assert needle in b.log() + b.stderr(), b.diagnostics()


def test_refuses_missing_ledger_dir(cluster):
    b = cluster.broker(ledger=cluster.root / "nope")
    b.start(wait=False)
    assert b.wait_exit(timeout=H.T(15)) != 0
    assert "refusing to start" in b.log() + b.stderr()


def test_refuses_bad_policy_file(cluster):
    bad = cluster.root / "bad-policy.json"
    bad.write_text('{"version": 1, "roles": {"device": {"publish": ["a/#/b"]}}}')
    b = cluster.broker(policy=bad)
    b.start(wait=False)
    assert b.wait_exit(timeout=H.T(15)) != 0
    assert "policy" in b.log() + b.stderr()


def test_second_broker_on_same_ledger_refused(broker, cluster):
    b2 = cluster.broker()
    b2.start(wait=False)
    assert b2.wait_exit(timeout=H.T(15)) != 0
    assert "refusing to start" in b2.log() + b2.stderr()
    assert H.try_connect(broker, "dev1", cluster.token("dev1")) == 0


# ---- crash durability -------------------------------------------------------

def test_acknowledged_enrolls_survive_kill9(cluster):
    b = cluster.broker().start()
    admin = H.Admin(b, "admin1")
    acked = {}
    sent = []
    stop = threading.Event()

    def fire():
        i = 0
        while not stop.is_set() and i < 5000:
            ident = "k%04d" % i
            pk = nacl.signing.SigningKey.generate().verify_key.encode().hex()
            try:
                info = admin.m.publish_async(H.ADMIN_TOPIC, {"commands": [
                    {"command": "enroll", "id": ident, "role": "device", "pubkey": pk, "correlation": ident}]})
            except Exception:
                return
            if info.rc != 0:
                return
            sent.append((ident, pk))
            i += 1
            time.sleep(0.002)

    t = threading.Thread(target=fire, daemon=True)
    t.start()

    def count_acks():
        for m in admin.m.take(H.ADMIN_RESPONSE):
            for r in m.json()["responses"]:
                if r.get("ok") and r.get("command") == "enroll":
                    acked[r["correlation"]] = r["index"]
        return len(acked)
    H.wait_for(lambda: count_acks() >= 60, H.T(30), what="60 acknowledged enrolls")
    b.kill9()
    stop.set()
    t.join(timeout=5)
    count_acks()
    assert len(sent) > len(acked), "kill must land mid-stream (sent %d, acked %d)" % (len(sent), len(acked))
    admin.close()

    # Everything acknowledged is on disk, intact.
    cluster.verify()
    recs = cluster.show_json()
    on_disk = {r["id"]: r for r in recs if r["type"] == "enroll"}
    pks = dict(sent)
    missing = [i for i in acked if i not in on_disk]
    assert not missing, "acknowledged but lost: %s" % missing[:10]
    for ident, index in acked.items():
        assert on_disk[ident]["index"] == index and on_disk[ident]["pubkey"] == pks[ident]
    # Nothing was recorded twice or out of order.
    assert [r["index"] for r in recs] == list(range(len(recs)))

    # The restarted broker knows them all.
    b2 = cluster.broker().start()
    admin = H.Admin(b2, "admin1")
    known = set()
    offset = 0
    while True:
        lst = admin.one("list_identities", offset=offset, limit=500)
        assert lst["ok"], lst
        known |= {i["id"] for i in lst["identities"] if i["status"] == "active"}
        offset += len(lst["identities"])
        if not lst["identities"] or offset >= lst["total"]:
            break
    assert set(acked) <= known
    sample = sorted(acked)[len(acked) // 2]
    g = admin.one("get_identity", id=sample)
    assert g["ok"] and g["identity"]["enrolled_index"] == acked[sample]


def test_kill9_with_live_clients_then_restart(cluster):
    b = cluster.broker().start()
    d = b.connect("dev1")
    b.kill9()
    d.wait_disconnect(timeout=H.T(5))
    cluster.verify()
    b2 = cluster.broker().start()
    assert H.try_connect(b2, "dev1", cluster.token("dev1")) == 0


# ---- rate limiting ----------------------------------------------------------

@pytest.mark.vg
def test_rate_limit_bans_then_expires(cluster):
    b = cluster.broker(auth_fail_limit=5, auth_ban_seconds=2).start()
    bad = cluster.token("dev1", key=cluster.ids["dev2"].key)
    good = cluster.token("dev1")
    for i in range(5):
        since = b.mark()
        assert H.try_connect(b, "dev1", bad) in H.NOT_AUTHORISED_V5
        assert b.refusal_reason("dev1", since) == "bad_signature", "attempt %d" % (i + 1)
    t_ban = time.monotonic()
    # The 6th attempt is refused without looking at the (valid) token.
    since = b.mark()
    assert H.try_connect(b, "dev1", good) in H.NOT_AUTHORISED_V5
    assert b.refusal_reason("dev1", since) == "rate_limited"
    since = b.mark()
    assert H.try_connect(b, "mon1", cluster.token("mon1"), v5=False) in H.NOT_AUTHORISED_V311
    assert b.refusal_reason("mon1", since) == "rate_limited"
    # After the ban the valid token works again.
    H.wait_for(lambda: time.monotonic() - t_ban > 2.2, 5)
    assert H.try_connect(b, "dev1", good) == 0


def test_rate_limit_off_by_default_in_harness(broker, cluster):
    bad = cluster.token("dev1", key=cluster.ids["dev2"].key)
    for _ in range(8):
        H.try_connect(broker, "dev1", bad)
    assert H.try_connect(broker, "dev1", cluster.token("dev1")) == 0
