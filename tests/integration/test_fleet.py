"""The fleet listing (issue 13, docs/PROTOCOL.md "Fleet listing") against a real broker.

Why this exists: the operator's dashboard runs as a monitor and learns the
whole fleet, revoked identities and wallets included, from this one request.
These tests enrol devices online (with zones), credit and mint so a wallet
is not zero, revoke one, and then page through the listing as a monitor with
a small limit: every identity exactly once, in list_identities' order, the
totals, the statuses, the wallets and the height right. A page comes in
parts of at most 3,800 bytes (Mosquitto writes big messages to WebSockets
clients slowly): a monitor assembles a page of 500 from its parts, over
plain MQTT and over WebSockets (where the parts arrive in well under the
1.5 s one 64 KiB message takes). They check who may ask, that malformed
limits are refused, the rate limit at the 121st request, the stats
counters, and that a sealed cluster head still answers.
"""
import json
import threading
import time

import nacl.signing
import paho.mqtt.client as mqtt
import pytest

import igharness as H
from test_sealed import seal_by_hand

N_MORE = 30   # devices enrolled online, beyond the fixture's seven identities


PART_MAX = 3800   # IG_SVC_FLEET_PART_MAX
PARTS_MAX = 64


def ask(client, cluster, ident, req):
    """Sends req on ident's ch topic; returns the inbox answer carrying its
    nonce (an error, or the first part of a page), checked against the inbox
    schema."""
    inbox = cluster.topic("dev", ident, "inbox")
    start = len(client.take())
    client.publish(cluster.topic("ch", ident), req)
    m = client.wait_message(inbox, start=start, timeout=H.T(10),
                            pred=lambda m: m.json().get("nonce") == req.get("nonce"))
    msg = m.json()
    H.schema_validate("inbox", msg)
    return msg


def assemble(payloads, req_offset):
    """A page from its parts' payloads (bytes, in arrival order), checked as
    PROTOCOL.md says a client may rely on: each part a complete fleet object
    of at most PART_MAX bytes, part 0..parts-1 in order, the same nonce,
    total, height and parts in each, part 0 at the request's offset and each
    later one where the previous ended. Returns part 0's head with every
    part's identities and the number of parts."""
    parts = [json.loads(p) for p in payloads]
    for p, raw in zip(parts, payloads):
        H.schema_validate("inbox", p)
        assert len(raw) <= PART_MAX, "a part of %d bytes" % len(raw)
    head = parts[0]
    assert head["type"] == "fleet" and 1 <= head["parts"] <= PARTS_MAX, head
    assert len(parts) == head["parts"], "got %d of %d parts" % (len(parts), head["parts"])
    offset = req_offset
    identities = []
    for i, p in enumerate(parts):
        assert p["part"] == i, "parts arrive in order"
        for k in ("nonce", "total", "height", "parts"):
            assert p[k] == head[k], (k, p[k], head[k])
        assert p["offset"] == offset, "part %d at %d, expected %d" % (i, p["offset"], offset)
        assert p["identities"] or head["parts"] == 1, "no empty part in a page of several"
        offset += len(p["identities"])
        identities += p["identities"]
    page = {k: head[k] for k in ("type", "nonce", "total", "offset", "height")}
    page["identities"] = identities
    return page, len(parts)


def ask_page(client, cluster, ident, req, with_parts=False):
    """Sends a fleet request; returns the assembled page (or an error reply
    as it came), and with with_parts also the number of parts."""
    inbox = cluster.topic("dev", ident, "inbox")
    start = len(client.take())
    client.publish(cluster.topic("ch", ident), req)
    nonce = req.get("nonce")

    def mine():
        return [m for m in client.take()[start:]
                if mqtt.topic_matches_sub(inbox, m.topic) and m.json().get("nonce") == nonce]
    H.wait_for(lambda: mine() and (mine()[0].json()["type"] == "error" or
                                   len(mine()) >= mine()[0].json()["parts"]),
               H.T(10), what="every part of the fleet page %s" % nonce)
    got = mine()
    if got[0].json()["type"] == "error":
        assert len(got) == 1, got
        H.schema_validate("inbox", got[0].json())
        return (got[0].json(), 0) if with_parts else got[0].json()
    page, n = assemble([m.payload for m in got], req.get("offset", 0))
    return (page, n) if with_parts else page


def page_all(client, cluster, ident, limit):
    """Pages through the listing as the protocol says (from the last part's
    offset plus its identities); returns (entries, total, pages, heights)."""
    entries, offset, pages, heights = [], 0, 0, set()
    while True:
        req = {"type": "fleet", "nonce": "pg-%d" % pages, "offset": offset, "limit": limit}
        H.schema_validate("ch-request", req)
        r = ask_page(client, cluster, ident, req)
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

        # The default limit (500) takes the whole fleet at once, in parts; an admin may ask too.
        whole, n = ask_page(mon, cluster, "mon1", {"type": "fleet", "nonce": "all"}, with_parts=True)
        assert n >= 2, "37 entries of about 130 bytes: more than one part of 3,800"
        assert [e["id"] for e in whole["identities"]] == ids and whole["total"] == total
        a = adm.m
        a.subscribe_ok(cluster.topic("dev", "admin1", "inbox"))
        by_admin = ask_page(a, cluster, "admin1", {"type": "fleet", "nonce": "adm", "offset": total - 1})
        assert [e["id"] for e in by_admin["identities"]] == ids[-1:]
        past, n = ask_page(mon, cluster, "mon1", {"type": "fleet", "nonce": "past", "offset": total}, with_parts=True)
        assert past["identities"] == [] and past["total"] == total and past["offset"] == total
        assert n == 1, "an empty page is one empty part"

        # A revocation made now shows at once, with the height moved on.
        assert adm.one("revoke", id="s05")["ok"]
        after = ask_page(mon, cluster, "mon1", {"type": "fleet", "nonce": "after"})
        assert {e["id"]: e for e in after["identities"]}["s05"]["status"] == "revoked"
        assert after["height"] == ledger_records(cluster.ledger) > whole["height"]
    finally:
        b.stop()


LONG = 1000   # devices with the longest ids and zones: a page of 1000 needs more than 64 parts


def long_id(i):
    return "%064d" % i


def enroll_long(adm, count):
    """count devices with 64-character ids and 64-character zones: about 14
    entries fill a part."""
    cmds = []
    for i in range(count):
        c = {"command": "enroll", "id": long_id(i), "role": "device",
             "pubkey": nacl.signing.SigningKey.generate().verify_key.encode().hex()}
        c["zone"] = "z%063d" % i
        cmds.append(c)
    for k in range(0, count, 64):
        resp = adm.request(*cmds[k:k + 64], timeout=H.T(30))["responses"]
        assert all(r["ok"] for r in resp), [r for r in resp if not r["ok"]][:1]


def ws_page(broker, ws_port, cluster, ident, req):
    """The way a browser asks: MQTT 5 over WebSockets (paho, transport
    "websockets") on ws_port. Returns the payloads carrying req's nonce, in
    arrival order, once the page is whole, and the seconds from the request
    being acknowledged (PUBACK) to the last part."""
    inbox = cluster.topic("dev", ident, "inbox")
    got, lock, done = [], threading.Lock(), threading.Event()
    c = mqtt.Client(client_id=ident, protocol=mqtt.MQTTv5, transport="websockets")
    c.username_pw_set(ident, cluster.token(ident))
    subscribed, acked = threading.Event(), threading.Event()

    def on_message(client, userdata, m):
        try:
            o = json.loads(m.payload)
        except ValueError:
            return
        if o.get("nonce") != req["nonce"]:
            return
        with lock:
            got.append((time.monotonic(), m.payload))
            if o["type"] == "error" or len(got) >= json.loads(got[0][1]).get("parts", 1):
                done.set()
    c.on_message = on_message
    c.on_subscribe = lambda *a: subscribed.set()
    c.on_publish = lambda *a: acked.set()
    try:
        c.connect("127.0.0.1", ws_port, 30, clean_start=True)
        c.loop_start()
        c.subscribe(inbox, qos=1)
        assert subscribed.wait(H.T(10)), "no SUBACK over websockets"
        c.publish(cluster.topic("ch", ident), json.dumps(req), qos=1)
        assert acked.wait(H.T(10)), "no PUBACK over websockets"
        t0 = time.monotonic()
        assert done.wait(H.T(20)), "got %d parts over websockets\n%s" % (len(got), broker.diagnostics())
        with lock:
            return [p for _, p in got], got[-1][0] - t0
    finally:
        c.disconnect()
        c.loop_stop()


def test_pages_come_in_parts_of_at_most_3800_bytes_cut_after_64(cluster):
    """1007 identities with long ids: the default page of 500 comes in about
    36 parts (a browser over WebSockets gets them all in well under the
    1.5 s one 64 KiB message took), and a page of limit 1000 is cut after 64
    full parts; paging on from the last part's offset plus its identities
    lists every identity once, in order."""
    ws_port = H.free_port()
    b = cluster.broker()
    b.extra_lines += ["listener %d 127.0.0.1" % ws_port, "protocol websockets"]
    b.start()
    try:
        adm = H.Admin(b, "admin1")
        first = [i["id"] for i in adm.one("list_identities", limit=1000)["identities"]]
        assert len(first) == 7
        enroll_long(adm, LONG)
        expected = first + [long_id(i) for i in range(LONG)]
        total = len(expected)

        # Over plain MQTT, limit 1000: 64 parts, cut short of 1000.
        mon = b.connect("mon1")
        mon.subscribe_ok(cluster.topic("dev", "mon1", "inbox"))
        page, n = ask_page(mon, cluster, "mon1", {"type": "fleet", "nonce": "big", "limit": 1000}, with_parts=True)
        assert n == PARTS_MAX, n
        assert page["total"] == total and page["offset"] == 0
        cut = len(page["identities"])
        assert 64 * 12 < cut < 1000, "about 14 long entries a part: %d" % cut
        assert [e["id"] for e in page["identities"]] == expected[:cut]
        rest = ask_page(mon, cluster, "mon1", {"type": "fleet", "nonce": "rest", "offset": cut, "limit": 1000})
        assert rest["offset"] == cut and rest["total"] == total
        assert [e["id"] for e in rest["identities"]] == expected[cut:]
        assert all(e["zone"] == "z%063d" % int(e["id"]) for e in (page["identities"] + rest["identities"])[7:])

        # Over WebSockets, the default page of 500, the way the dashboard asks.
        payloads, secs = ws_page(b, ws_port, cluster, "mon1", {"type": "fleet", "nonce": "ws-1"})
        page, n = assemble(payloads, 0)
        assert 30 <= n <= 40, "500 long entries in about 36 parts: %d" % n
        assert [e["id"] for e in page["identities"]] == expected[:500]
        assert page["total"] == total
        print("fleet page of 500 long entries over websockets: %d parts, %d bytes, %.3f s"
              % (n, sum(len(p) for p in payloads), secs))
        assert secs < H.T(1.0), "%d parts took %.2f s over websockets" % (n, secs)
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
    ok = ask_page(mon, mcluster, "mon1", {"type": "fleet", "nonce": "good", "limit": 1000, "offset": 0})
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
        assert all(r["part"] == 0 and r["parts"] == 1 for r in replies), "one identity: one part"
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
        r = ask_page(mon, cluster, "mon1", {"type": "fleet", "nonce": "sealed"})
        assert r["type"] == "fleet" and r["total"] == 7, r
        assert {e["id"] for e in r["identities"]} == {"admin1", "admin2", "mon1", "an1", "dev1", "dev2", "dev3"}
        assert r["height"] == ledger_records(cluster.ledger)
        d1 = [e for e in r["identities"] if e["id"] == "dev1"][0]
        assert d1["balance"] == 0 and d1["outstanding"] == 0, "the wallet is read from the state, no key needed"
    finally:
        b.stop()
