"""The fleet listing (issue 13, docs/PROTOCOL.md "Fleet listing") against a real broker.

Why this exists: the operator's dashboard runs as a monitor and learns the
whole fleet, revoked identities and wallets included, from this one request.
These tests enrol devices online (with zones), credit and mint so a wallet
is not zero, revoke one, and then page through the listing as a monitor with
a small limit: every identity exactly once, in list_identities' order, the
totals, the statuses, the wallets and the height right. They check who may
ask, that malformed limits are refused, the rate limit at the 121st request,
the stats counters, and that a sealed cluster head still answers.
"""
import nacl.signing
import pytest

import igharness as H
from test_sealed import seal_by_hand

N_MORE = 30   # devices enrolled online, beyond the fixture's seven identities


def ask(client, cluster, ident, req):
    """Sends req on ident's ch topic; returns the inbox answer carrying its
    nonce, checked against the inbox schema."""
    inbox = cluster.topic("dev", ident, "inbox")
    start = len(client.take())
    client.publish(cluster.topic("ch", ident), req)
    m = client.wait_message(inbox, start=start, timeout=H.T(10),
                            pred=lambda m: m.json().get("nonce") == req.get("nonce"))
    msg = m.json()
    H.schema_validate("inbox", msg)
    return msg


def page_all(client, cluster, ident, limit):
    """Pages through the listing as the protocol says (from offset plus what
    came); returns (entries, total, pages, heights)."""
    entries, offset, pages, heights = [], 0, 0, set()
    while True:
        req = {"type": "fleet", "nonce": "pg-%d" % pages, "offset": offset, "limit": limit}
        H.schema_validate("ch-request", req)
        r = ask(client, cluster, ident, req)
        assert r["type"] == "fleet" and r["offset"] == offset, r
        assert 0 < len(r["identities"]) <= limit, r
        entries += r["identities"]
        heights.add(r["height"])
        offset += len(r["identities"])
        pages += 1
        if offset >= r["total"]:
            return entries, r["total"], pages, heights


def ledger_records(ledger):
    """Records in the file ledger (frames of ledger.log), genesis included."""
    data = (ledger / "ledger.log").read_bytes()
    n, off = 0, 0
    while off < len(data):
        off += int.from_bytes(data[off + 4:off + 8], "big")
        n += 1
    return n


def enroll_online(adm, count):
    cmds = [{"command": "enroll", "id": "s%02d" % i, "role": "device",
             "pubkey": nacl.signing.SigningKey.generate().verify_key.encode().hex()}
            for i in range(count)]
    for i, c in enumerate(cmds):
        if i % 3:
            c["zone"] = "zone-%d" % (i % 3)
    resp = adm.request(*cmds)["responses"]
    assert all(r["ok"] for r in resp), resp


@pytest.mark.vg
def test_a_monitor_pages_through_the_whole_fleet(cluster):
    b = cluster.broker().start()
    try:
        adm = H.Admin(b, "admin1")
        enroll_online(adm, N_MORE)
        assert adm.one("credit", id="dev1", amount=50)["ok"]
        assert adm.one("revoke", id="dev2", reason="stolen")["ok"]

        # dev1 mints 3 coins: 47 credit left, 3 outstanding.
        d1 = b.connect("dev1")
        d1.subscribe_ok(cluster.topic("dev", "dev1", "inbox"))
        coins = ask(d1, cluster, "dev1", {"type": "mint", "count": 3, "nonce": "m-1"})
        assert coins["type"] == "coins" and coins["count"] == 3, coins

        mon = b.connect("mon1")
        mon.subscribe_ok(cluster.topic("dev", "mon1", "inbox"))
        entries, total, pages, heights = page_all(mon, cluster, "mon1", limit=7)
        assert total == 7 + N_MORE and len(entries) == total
        assert pages == (total + 6) // 7, "pages of 7 through 37 identities"
        ids = [e["id"] for e in entries]
        assert len(set(ids)) == total, "every identity exactly once"

        # The order and the statuses are list_identities' (without filters).
        listed = adm.one("list_identities", limit=1000)
        assert listed["total"] == total
        assert ids == [i["id"] for i in listed["identities"]]
        assert [e["status"] for e in entries] == [i["status"] for i in listed["identities"]]
        assert [e["enrolled_ts"] for e in entries] == [i["enrolled_ts"] for i in listed["identities"]]

        by = {e["id"]: e for e in entries}
        assert all("pubkey" not in e for e in entries), "no public keys in the listing"
        assert by["dev1"]["balance"] == 47 and by["dev1"]["outstanding"] == 3, by["dev1"]
        assert by["dev1"]["connected"] is True and by["mon1"]["connected"] is True
        assert by["dev2"]["status"] == "revoked" and by["dev2"]["connected"] is False
        assert by["dev2"]["balance"] == 0 and by["dev2"]["outstanding"] == 0
        assert by["dev3"]["status"] == "active" and "zone" not in by["dev3"]
        assert by["s01"]["zone"] == "zone-1" and by["s02"]["zone"] == "zone-2" and "zone" not in by["s00"]
        for ident, role in (("mon1", "monitor"), ("admin1", "admin"), ("an1", "analyst")):
            assert by[ident]["role"] == role
            assert "balance" not in by[ident] and "outstanding" not in by[ident], by[ident]
        assert all(by["s%02d" % i]["role"] == "device" and by["s%02d" % i]["balance"] == 0 for i in range(N_MORE))

        # Every record is applied: the height is the ledger's size.
        assert heights == {ledger_records(cluster.ledger)}, heights

        # The default limit (500) takes the whole fleet at once; an admin may ask too.
        whole = ask(mon, cluster, "mon1", {"type": "fleet", "nonce": "all"})
        assert [e["id"] for e in whole["identities"]] == ids and whole["total"] == total
        a = adm.m
        a.subscribe_ok(cluster.topic("dev", "admin1", "inbox"))
        by_admin = ask(a, cluster, "admin1", {"type": "fleet", "nonce": "adm", "offset": total - 1})
        assert [e["id"] for e in by_admin["identities"]] == ids[-1:]
        past = ask(mon, cluster, "mon1", {"type": "fleet", "nonce": "past", "offset": total})
        assert past["identities"] == [] and past["total"] == total

        # A revocation made now shows at once, with the height moved on.
        assert adm.one("revoke", id="s05")["ok"]
        after = ask(mon, cluster, "mon1", {"type": "fleet", "nonce": "after"})
        assert {e["id"]: e for e in after["identities"]}["s05"]["status"] == "revoked"
        assert after["height"] == ledger_records(cluster.ledger) > whole["height"]
    finally:
        b.stop()


def test_only_monitors_and_admins_and_well_formed_requests(mbroker, mcluster):
    for ident in ("dev1", "an1"):
        c = mbroker.connect(ident)
        c.subscribe_ok(mcluster.topic("dev", ident, "inbox"))
        err = ask(c, mcluster, ident, {"type": "fleet", "nonce": "no-%s" % ident})
        assert err["type"] == "error" and err["error"] == "not_allowed", err
        assert err["request"] == "fleet" and err["nonce"] == "no-%s" % ident
        assert "monitors and admins" in err["message"]

    mon = mbroker.connect("mon1")
    mon.subscribe_ok(mcluster.topic("dev", "mon1", "inbox"))
    bad = [{"limit": 0}, {"limit": 1001}, {"limit": -1}, {"limit": 2.5}, {"limit": "5"}, {"limit": 1e300},
           {"offset": -1}, {"offset": 0.5}, {"offset": 4294967296}, {"role": "device"}]
    for i, extra in enumerate(bad):
        req = dict({"type": "fleet", "nonce": "bad-%d" % i}, **extra)
        err = ask(mon, mcluster, "mon1", req)
        assert err["type"] == "error" and err["error"] == "malformed", (req, err)
        assert err["request"] == "fleet", err
    # Without a nonce: malformed, carrying none.
    inbox = mcluster.topic("dev", "mon1", "inbox")
    start = len(mon.take())
    mon.publish(mcluster.topic("ch", "mon1"), {"type": "fleet", "limit": 5})
    err = mon.wait_message(inbox, start=start, pred=lambda m: m.json().get("type") == "error").json()
    assert err["error"] == "malformed" and err["request"] == "fleet" and "nonce" not in err, err
    H.schema_validate("inbox", err)
    # Well-formed after all that: a page.
    ok = ask(mon, mcluster, "mon1", {"type": "fleet", "nonce": "good", "limit": 1000, "offset": 0})
    assert ok["type"] == "fleet" and ok["total"] == len(ok["identities"]) == 7


def test_the_121st_request_in_a_minute_is_rate_limited(cluster):
    b = cluster.broker().start()
    try:
        watcher = H.watcher(b, cluster, ident="admin2", topics=("stats",))
        mon = b.connect("mon1")
        inbox = cluster.topic("dev", "mon1", "inbox")
        mon.subscribe_ok(inbox)
        for i in range(120):
            mon.publish_async(cluster.topic("ch", "mon1"), {"type": "fleet", "nonce": "r-%d" % i, "limit": 1})
        H.wait_for(lambda: len(mon.take(inbox)) >= 120, H.T(20), what="120 fleet replies")
        replies = [m.json() for m in mon.take(inbox)]
        assert sorted(r["nonce"] for r in replies) == sorted("r-%d" % i for i in range(120))
        assert all(r["type"] == "fleet" for r in replies), [r for r in replies if r["type"] != "fleet"][:1]
        err = ask(mon, cluster, "mon1", {"type": "fleet", "nonce": "r-121"})
        assert err["type"] == "error" and err["error"] == "rate_limited", err
        assert err["request"] == "fleet" and err["nonce"] == "r-121" and "120" in err["message"]
        # Per identity: another monitor's allowance is whole.
        adm = b.connect("admin1")
        adm.subscribe_ok(cluster.topic("dev", "admin1", "inbox"))
        assert ask(adm, cluster, "admin1", {"type": "fleet", "nonce": "a-1", "limit": 1})["type"] == "fleet"

        stats = H.next_stats(watcher, cluster, pred=lambda s: s["fleet"]["refused"] >= 1)
        assert stats["fleet"] == {"served": 121, "refused": 1}, stats["fleet"]
    finally:
        b.stop()


def test_a_sealed_cluster_head_still_lists_the_fleet(cluster):
    seal_by_hand(cluster)
    b = cluster.broker().start()
    try:
        mon = b.connect("mon1")
        mon.subscribe_ok(cluster.topic("dev", "mon1", "inbox"))
        r = ask(mon, cluster, "mon1", {"type": "fleet", "nonce": "sealed"})
        assert r["type"] == "fleet" and r["total"] == 7, r
        assert {e["id"] for e in r["identities"]} == {"admin1", "admin2", "mon1", "an1", "dev1", "dev2", "dev3"}
        assert r["height"] == ledger_records(cluster.ledger)
        d1 = [e for e in r["identities"] if e["id"] == "dev1"][0]
        assert d1["balance"] == 0 and d1["outstanding"] == 0, "the wallet is read from the state, no key needed"
    finally:
        b.stop()
