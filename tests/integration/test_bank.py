"""The bank (issue 4) against a real broker: credit, one-use coins minted to
collectors, coin-sealed data redeemed by analysts, results only the
collector can read, refunds, every refusal, double spends, and a kill -9 in
the middle of a redeem storm.

The Python side of the coin formats below is written from docs/PROTOCOL.md
("Coins") alone, with PyNaCl, `cryptography` and hashlib; the first test
pins it to the document's vectors, so every other test that talks to the
plugin or the agents through it also shows the document is enough to
interoperate.
"""
import base64
import functools
import hashlib
import os
import re
import shutil
import struct
import subprocess
import time

import jsonschema
import nacl.bindings as sodium
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import igharness as H
import igkeys as K
from igharness import agent_stopped, events, next_stats, start_agent, validate_captured, wait_event

DOC = (H.ROOT / "docs" / "PROTOCOL.md").read_text()
REC_CREDIT, REC_COIN_MINT, REC_COIN_REDEEM, REC_COIN_REFUND = 32, 33, 34, 35
BANK_CODES = ("no_credit", "unknown_coin", "already_spent", "expired", "wrong_collector", "wrong_topic",
              "malformed", "not_allowed", "over_limit", "storage_failed", "outcome_unknown")
SUITES = ("aes256gcm", "xchacha20poly1305")


# ---- the coin formats, from docs/PROTOCOL.md "Coins" -------------------------------------------

def coin_hash(coin):
    return K.blake2b256(coin)


def coin_keys(coin):
    """(payload key, result key): HKDF-SHA256, no salt, IKM = the coin."""
    return (K.hkdf_sha256(coin, b"iotguard coin payload v1", 32),
            K.hkdf_sha256(coin, b"iotguard coin result v1", 32))


def fresh_nonce(suite):
    """24 bytes; AES-256-GCM uses 12 of them and the other 12 must be zero."""
    return os.urandom(12) + bytes(12) if suite == "aes256gcm" else os.urandom(24)


def aead(suite, encrypt, key, nonce, data, aad):
    if suite == "aes256gcm":
        assert nonce[12:] == bytes(12), "a GCM coin nonce ends in 12 zero bytes"
        g = AESGCM(key)
        return g.encrypt(nonce[:12], data, aad) if encrypt else g.decrypt(nonce[:12], data, aad)
    f = (sodium.crypto_aead_xchacha20poly1305_ietf_encrypt if encrypt
         else sodium.crypto_aead_xchacha20poly1305_ietf_decrypt)
    return f(data, aad, nonce, key)


def header_plaintext(coin, nonce, suite, collector, topic):
    c = collector.encode()
    return (bytes([1]) + coin + nonce + bytes([K.SUITE_BYTES[suite], len(c)]) + c +
            K.blake2b256(topic.encode()))


def seal_to_bank(plaintext, ch_pk, eph_sk=None):
    """crypto_box_seal to X25519(CH pk); with eph_sk, the same construction
    spelled out (ephemeral pk || box, nonce = BLAKE2b-192(epk || pk))."""
    bank_x = K.x25519_public(ch_pk)
    if eph_sk is None:
        return sodium.crypto_box_seal(plaintext, bank_x)
    epk = sodium.crypto_scalarmult_base(eph_sk)
    nonce = hashlib.blake2b(epk + bank_x, digest_size=24).digest()
    return epk + sodium.crypto_box(plaintext, nonce, bank_x, eph_sk)


def data_aad(topic, header_hash):
    return b"iotguard-data-v1\x00" + topic.encode() + b"\x00" + header_hash


def result_aad(topic, header_hash):
    return b"iotguard-result-v1\x00" + topic.encode() + b"\x00" + header_hash


class Sealed:
    """A data message and what its collector keeps about it."""

    def __init__(self, ch_pk, coin, collector, topic, payload, suite="aes256gcm", header_collector=None,
                 header_topic=None, nonce=None, eph_sk=None):
        self.coin, self.topic, self.payload, self.suite = coin, topic, payload, suite
        self.nonce = fresh_nonce(suite) if nonce is None else nonce
        pt = header_plaintext(coin, self.nonce, suite, header_collector or collector, header_topic or topic)
        self.header = seal_to_bank(pt, ch_pk, eph_sk)
        self.header_hash = K.blake2b256(self.header)
        self.payload_key, self.result_key = coin_keys(coin)
        ct = aead(suite, True, self.payload_key, self.nonce, payload, data_aad(topic, self.header_hash))
        self.msg = (b"IGD1" + struct.pack(">H", len(self.header)) + self.header + bytes([K.SUITE_BYTES[suite]]) +
                    self.nonce + ct)

    def redeem_request(self, nonce, topic=None, header=None):
        return {"type": "redeem", "topic": topic or self.topic,
                "header": base64.b64encode(header or self.header).decode(), "nonce": nonce}


class Received:
    """A data message as an analyst gets it: all it can redeem with."""

    def __init__(self, m):
        d = parse_data(m.payload)
        self.msg, self.topic, self.header = m.payload, m.topic, d["header"]
        self.suite, self.nonce = d["suite"], d["nonce"]
        self.header_hash = K.blake2b256(self.header)

    redeem_request = Sealed.redeem_request


def parse_data(msg):
    assert msg[:4] == b"IGD1", "not a data message"
    h = struct.unpack(">H", msg[4:6])[0]
    assert 140 <= h <= 203, "sealed header of %d bytes" % h
    suite = K.SUITES[msg[6 + h]]
    nonce = msg[7 + h:31 + h]
    if suite == "aes256gcm":
        assert nonce[12:] == bytes(12), "GCM nonce bytes 12..23 must be zero"
    return {"header": msg[6:6 + h], "suite": suite, "nonce": nonce, "ct": msg[31 + h:]}


def open_data(msg, topic, keys):
    """The analyst's side: keys from the redeemed box; the message must carry
    the boxed nonce and the header whose hash was redeemed."""
    d = parse_data(msg)
    assert K.blake2b256(d["header"]) == keys["header_hash"], "not the header that was redeemed"
    assert d["nonce"] == keys["nonce"], "the message's nonce is not the one in the header"
    return aead(d["suite"], False, keys["payload_key"], d["nonce"], d["ct"], data_aad(topic, keys["header_hash"]))


def seal_result(result_key, suite, header_hash, topic, payload, nonce=None):
    nonce = fresh_nonce(suite) if nonce is None else nonce
    return (b"IGS1" + header_hash + bytes([K.SUITE_BYTES[suite]]) + nonce +
            aead(suite, True, result_key, nonce, payload, result_aad(topic, header_hash)))


def open_result(msg, topic, result_key, header_hash):
    assert msg[:4] == b"IGS1" and len(msg) >= 77
    assert msg[4:36] == header_hash, "a result for another request"
    suite = K.SUITES[msg[36]]
    return aead(suite, False, result_key, msg[37:61], msg[61:], result_aad(topic, header_hash))


def open_box(reply, seed, ch_pk):
    k = K.box_key(seed, ch_pk)
    return sodium.crypto_box_open_afternm(base64.b64decode(reply["box"], validate=True),
                                          bytes.fromhex(reply["box_nonce"]), k)


def open_coins(reply, seed, ch_pk):
    pt = open_box(reply, seed, ch_pk)
    assert len(pt) == 32 * reply["count"], "coins box of %d bytes for %d coins" % (len(pt), reply["count"])
    return [pt[i:i + 32] for i in range(0, len(pt), 32)]


def open_redeemed(reply, seed, ch_pk):
    pt = open_box(reply, seed, ch_pk)
    assert len(pt) == 120, "redeemed box plaintext of %d bytes" % len(pt)
    out = {"payload_key": pt[:32], "result_key": pt[32:64], "nonce": pt[64:88], "header_hash": pt[88:120]}
    assert out["header_hash"].hex() == reply["header_hash"], "boxed and clear header_hash differ"
    return out


def mint_record(owner, expires_at, coins):
    """A COIN_MINT body (docs/LEDGER.md), for writing straight into a ledger."""
    return (K.tlv(1, owner.encode()) + K.tlv(2, struct.pack(">Q", expires_at)) +
            K.tlv(3, b"".join(coin_hash(c) for c in coins)))


# ---- helpers ----------------------------------------------------------------------------------

_nonces = iter(range(1, 1 << 30))


def rnonce(kind="r"):
    return "%s-%d-%s" % (kind, next(_nonces), os.urandom(3).hex())


def ch_pk(cluster):
    return bytes.fromhex(cluster.ch_pubkey)


def seed(cluster, ident):
    return K.seed_of(cluster.ids[ident].key)


watcher = functools.partial(H.watcher, topics=("stats", "ledger/events", "dev/+/status", "dev/+/data/+"))


def client(broker, cluster, ident, *subs):
    """A Python client for ident, subscribed to its inbox and the given topics."""
    c = broker.connect(ident)
    c.subscribe_ok(cluster.topic("dev", ident, "inbox"))
    for t in subs:
        c.subscribe_ok(cluster.topic(*t.split("/")))
    return c


def inbox_reply(c, cluster, ident, nonce, start=0, timeout=None):
    """The inbox message answering the request with this nonce (schema-checked)."""
    m = c.wait_message(cluster.topic("dev", ident, "inbox"), start=start,
                       pred=lambda m: m.json().get("nonce") == nonce, timeout=timeout or H.T(8)).json()
    H.schema_validate("inbox", m)
    return m


def schema_refuses(name, obj):
    try:
        H.schema_validate(name, obj)
    except jsonschema.ValidationError:
        return True
    return False


def request(c, cluster, ident, req, expect=None, timeout=None, valid=True):
    """Publishes a ch request; returns the reply carrying its nonce. expect:
    a reply type, or an error code. valid=False: a request the schema must
    refuse."""
    if not valid:
        assert schema_refuses("ch-request", req), "the schema should refuse %r" % req
    elif expect is None or expect not in BANK_CODES:
        H.schema_validate("ch-request", req)
    start = len(c.messages)
    c.publish(cluster.topic("ch", ident), req)
    reply = inbox_reply(c, cluster, ident, req["nonce"], start, timeout)
    if expect in BANK_CODES or expect == "storage_failed":
        assert reply["type"] == "error" and reply["error"] == expect, "%r: want error %s, got %r" % (req, expect, reply)
    elif expect:
        assert reply["type"] == expect, "%r: want %s, got %r" % (req, expect, reply)
    return reply


def mint(c, cluster, ident, count):
    """Mints count coins as ident; returns (coins, reply)."""
    reply = request(c, cluster, ident, {"type": "mint", "count": count, "nonce": rnonce("m")}, "coins")
    assert reply["count"] == count
    coins = open_coins(reply, seed(cluster, ident), ch_pk(cluster))
    assert len(set(coins)) == count, "coins repeat"
    return coins, reply


def balance(c, cluster, ident):
    r = request(c, cluster, ident, {"type": "balance", "nonce": rnonce("b")}, "balance")
    return r["balance"], r["outstanding"]


def redeem(c, cluster, ident, sealed, expect="redeemed", **kw):
    reply = request(c, cluster, ident, sealed.redeem_request(rnonce("x"), **kw), expect)
    if expect == "redeemed":
        keys = open_redeemed(reply, seed(cluster, ident), ch_pk(cluster))
        assert reply["header_hash"] == sealed.header_hash.hex()
        assert reply["suite"] == sealed.suite
        return keys
    return reply


def credit_offline(cluster, ident, amount):
    out = H.cli("credit", "--ledger", cluster.ledger, "--id", ident, "--amount", amount).stdout
    m = re.search(r"credited %s with %d coin\(s\) at ledger index (\d+); balance (\d+)" % (ident, amount), out)
    assert m, "unexpected credit output: %r" % out
    return int(m.group(1)), int(m.group(2))


def credit_online(broker, cluster, ident, amount, admin="admin1"):
    out = H.cli("credit", "--id", ident, "--amount", amount, "--host", "127.0.0.1", "--port", broker.port,
                "--cluster", cluster.name, "--user", admin, "--key", cluster.ids[admin].key).stdout
    m = re.search(r"credited %s with %d coin\(s\) at ledger index (\d+); balance (\d+)" % (ident, amount), out)
    assert m, "unexpected credit output: %r" % out
    return int(m.group(1)), int(m.group(2))


def ledger_records(cluster, rtype=None):
    recs = cluster.show_json()
    for r in recs:
        H.schema_validate("ledger-event", r)
    return [r for r in recs if rtype is None or r["type"] == rtype]


def collector_report(text):
    """The counters of the collector's last report line."""
    rows = re.findall(r"collector: sent (\d+), results (\d+), dropped results (\d+)", text)
    assert rows, "no collector report in the agent log:\n" + text[-3000:]
    sent, results, dropped = (int(x) for x in rows[-1])
    return {"sent": sent, "results": results, "dropped": dropped}


def receive_data(c, cluster, collector, start=0, count=1, timeout=None):
    """Data messages from collector, in arrival order."""
    topic = cluster.topic("dev", collector, "data", "+")
    H.wait_for(lambda: len([m for m in c.messages[start:] if H.mqtt.topic_matches_sub(topic, m.topic)]) >= count,
               timeout or H.T(15), what="%d data messages from %s" % (count, collector))
    return [m for m in c.messages[start:] if H.mqtt.topic_matches_sub(topic, m.topic)][:count]


# ---- the document's vectors, reproduced from the document ---------------------------------------

def doc_hex_blocks():
    sec = DOC[DOC.index("### Coin test vectors"):DOC.index("## Topics")]
    return sec, set(re.findall(r"[0-9a-f]{64,}", sec))


def test_coin_vectors_reproduced_from_the_document():
    sec, blocks = doc_hex_blocks()
    coin, bank_seed = bytes(range(0x00, 0x20)), bytes(range(0x20, 0x40))
    eph_sk = bytes(range(0x80, 0xa0))
    collector, topic = "sensor-1", "iotguard/demo/dev/sensor-1/data/temp"
    rtopic = "iotguard/demo/dev/sensor-1/results/temp"
    bank_pk = K.public_key(bank_seed)
    pk, rk = coin_keys(coin)
    for label, value in (("coin_hash", coin_hash(coin)), ("payload key", pk), ("result key", rk),
                         ("topic_hash", K.blake2b256(topic.encode())), ("X25519", K.x25519_public(bank_pk)),
                         ("public key", bank_pk)):
        assert value.hex() in sec, "%s %s not in the document" % (label, value.hex())
    assert sodium.crypto_scalarmult_base(eph_sk).hex() in sec
    for suite in SUITES:
        nonce = bytes(range(0x40, 0x58))
        rnonce_ = bytes(range(0x58, 0x70))
        if suite == "aes256gcm":
            nonce, rnonce_ = nonce[:12] + bytes(12), rnonce_[:12] + bytes(12)
        s = Sealed(bank_pk, coin, collector, topic, b"21.5", suite, nonce=nonce, eph_sk=eph_sk)
        plain = header_plaintext(coin, nonce, suite, collector, topic)
        assert len(plain) == 99 and plain.hex() in blocks, "%s header plaintext not in the document" % suite
        assert s.header_hash.hex() in sec, "%s header_hash" % suite
        assert len(s.msg) == 198 and s.msg.hex() in blocks, "%s data message not in the document" % suite
        r = seal_result(rk, suite, s.header_hash, rtopic, b"mean=21.5", nonce=rnonce_)
        assert len(r) == 86 and r.hex() in blocks, "%s result message not in the document" % suite
        # and back: the bank's key opens the header, the keys open the rest
        x_sk = K.x25519_secret(bank_seed)
        assert sodium.crypto_box_seal_open(s.header, K.x25519_public(bank_pk), x_sk) == plain
        keys = {"payload_key": pk, "result_key": rk, "nonce": nonce, "header_hash": s.header_hash}
        assert open_data(s.msg, topic, keys) == b"21.5"
        assert open_result(r, rtopic, rk, s.header_hash) == b"mean=21.5"
    # The document's GCM vectors carry the canonical nonce.
    assert "404142434445464748494a4b000000000000000000000000" in sec


# ---- the whole flow through the real agents ----------------------------------------------------------

def test_agents_credit_collect_redeem_and_answer(cluster):
    index, bal = credit_offline(cluster, "dev1", 30)
    assert bal == 30 and index > 0
    b = cluster.broker().start()
    mon = watcher(b, cluster)
    index2, bal2 = credit_online(b, cluster, "dev1", 20)
    assert (index2, bal2) == (index + 1, 50), "online credit: index %d balance %d" % (index2, bal2)
    e = wait_event(mon, cluster, lambda e: e["type"] == "credit" and e["index"] == index2)
    assert (e["id"], e["amount"], e["by"]) == ("dev1", 20, "admin1")

    analyst = start_agent(b, cluster, "an1", "--role", "analyst")
    collector = start_agent(b, cluster, "dev1", "--collect-interval", "1")
    try:
        try:
            H.wait_for(lambda: len(re.findall(r"result for seq \d+: ", collector.text())) >= 2, H.T(30),
                       what="two results at the collector")
        except AssertionError as e:
            raise AssertionError("%s\n--- collector ---\n%s\n--- analyst ---\n%s\n%s" % (
                e, collector.text()[-2500:], analyst.text()[-2500:], b.diagnostics()))
    finally:
        ctext = agent_stopped(collector)
        atext = agent_stopped(analyst)
    seqs = [int(s) for s in re.findall(r"result for seq (\d+)", ctext)]
    assert len(seqs) >= 2 and len(set(seqs)) == len(seqs), "each result answers one reading: %r" % seqs
    rep = collector_report(ctext)
    assert rep["results"] == len(seqs) and rep["dropped"] == 0, rep
    assert rep["sent"] >= rep["results"]
    assert re.search(r"dev1/readings seq %d: .*result sent" % seqs[0], atext), atext[-2000:]

    # Redeems and mints the agents left in flight settle: two equal bank sections in a row.
    last = []

    def settled(s):
        last.append(s["bank"])
        return len(last) >= 2 and last[-1] == last[-2] and s["bank"]["redeemed"] >= len(seqs)
    bank = next_stats(mon, cluster, settled, timeout=H.T(15))["bank"]
    mints = events(mon, cluster, "coin_mint")
    redeems = events(mon, cluster, "coin_redeem")
    assert mints and all(m["owner"] == "dev1" for m in mints)
    minted = sum(m["count"] for m in mints)
    assert bank["minted"] == minted and bank["redeemed"] == len(redeems) >= len(seqs)
    assert all((r["analyst"], r["collector"]) == ("an1", "dev1") for r in redeems)
    minted_hashes = {h for m in mints for h in m["coin_hashes"]}
    assert {r["coin_hash"] for r in redeems} <= minted_hashes
    assert bank["outstanding"] == minted - len(redeems) - bank["refunded"]
    assert all(v == 0 for v in bank["refused"].values()), bank["refused"]

    # The agents are gone; the ledger's arithmetic shows through a balance query.
    d = client(b, cluster, "dev1")
    assert balance(d, cluster, "dev1") == (50 - minted + bank["refunded"], bank["outstanding"])
    seen = validate_captured(mon, d, cluster=cluster)
    assert seen.get("status:online", 0) >= 1
    data = mon.take(cluster.topic("dev", "dev1", "data", "+"))
    assert len(data) >= rep["sent"] and all(m.payload[:4] == b"IGD1" for m in data), "monitors see ciphertext"


# ---- a client written from the document ---------------------------------------------------------------

def secret_forms(secret):
    return [secret, secret.hex().encode(), secret.hex().upper().encode(), base64.b64encode(secret),
            base64.b64encode(secret).rstrip(b"="), base64.urlsafe_b64encode(secret).rstrip(b"=")]


@pytest.mark.vg
def test_python_client_mints_seals_redeems_and_answers(cluster):
    credit_offline(cluster, "dev1", 10)
    b = cluster.broker().start()
    mon = watcher(b, cluster)
    d = client(b, cluster, "dev1", "dev/dev1/results/+")
    a = client(b, cluster, "an1", "dev/+/data/+")
    pk = ch_pk(cluster)

    coins, reply = mint(d, cluster, "dev1", 3)
    now = int(time.time())
    assert now + 86400 - 30 <= reply["expires_at"] <= now + 86400 + 30, "default coin_ttl is 86400 s"
    e = wait_event(mon, cluster, lambda e: e["type"] == "coin_mint")
    assert (e["owner"], e["count"], e["expires_at"]) == ("dev1", 3, reply["expires_at"])
    assert e["coin_hashes"] == [coin_hash(c).hex() for c in coins], "the ledger holds exactly the coins' hashes"
    assert balance(d, cluster, "dev1") == (7, 3)

    results = {}
    for i, suite in enumerate(SUITES):
        topic = cluster.topic("dev", "dev1", "data", "temp")
        payload = ('{"seq":%d,"t":21.%d}' % (i + 1, i)).encode()
        s = Sealed(pk, coins[i], "dev1", topic, payload, suite)
        start = len(a.messages)
        d.publish(topic, s.msg)
        got = a.wait_message(topic, start=start)
        assert got.payload == s.msg, "the analyst receives the message as sealed"
        keys = redeem(a, cluster, "an1", s)
        assert keys["nonce"] == s.nonce and keys["header_hash"] == s.header_hash
        assert (keys["payload_key"], keys["result_key"]) == (s.payload_key, s.result_key)
        assert open_data(got.payload, topic, keys) == payload
        spent = coin_hash(coins[i]).hex()
        ev = wait_event(mon, cluster, lambda e: e["type"] == "coin_redeem" and e["coin_hash"] == spent)
        assert (ev["analyst"], ev["collector"]) == ("an1", "dev1")

        # the answer, which only the collector reads
        rtopic = cluster.topic("dev", "dev1", "results", "temp")
        answer = ('{"seq":%d,"ok":true}' % (i + 1)).encode()
        start = len(d.messages)
        a.publish(rtopic, seal_result(keys["result_key"], suite, s.header_hash, rtopic, answer))
        r = d.wait_message(rtopic, start=start)
        assert open_result(r.payload, rtopic, s.result_key, s.header_hash) == answer
        results[suite] = r.payload
    assert balance(d, cluster, "dev1") == (7, 1)
    s = next_stats(mon, cluster, lambda s: s["bank"]["redeemed"] == 2)
    assert (s["bank"]["minted"], s["bank"]["refunded"], s["bank"]["outstanding"]) == (3, 0, 1)

    seen = validate_captured(mon, d, a, cluster=cluster)
    assert (seen.get("inbox:coins"), seen.get("inbox:redeemed"), seen.get("inbox:balance")) == (1, 2, 2), seen
    assert (seen.get("ledger-event:coin_mint"), seen.get("ledger-event:coin_redeem")) == (1, 2), seen
    b.stop()

    # No coin, in any spelling, reached the ledger, the broker's log or anything published.
    ledger_bytes = (cluster.ledger / "ledger.log").read_bytes()
    log_bytes = b.logfile.read_bytes() + b.errfile.read_bytes()
    published = b"".join(m.payload for m in mon.take() + a.take() if b"inbox" not in m.topic.encode())
    for c in coins:
        assert coin_hash(c) in ledger_bytes, "sanity: the search sees what the ledger holds"
        for form in secret_forms(c) + secret_forms(coin_keys(c)[0]) + secret_forms(coin_keys(c)[1]):
            assert form not in ledger_bytes, "a coin or coin key in ledger.log"
            assert form not in log_bytes, "a coin or coin key in the broker log"
            assert form not in published, "a coin or coin key on a monitored topic"
    assert ledger_records(cluster, "coin_mint")[0]["coin_hashes"] == [coin_hash(c).hex() for c in coins]


@pytest.mark.vg
def test_double_spend_and_racing_analysts(cluster):
    credit_offline(cluster, "dev1", 20)
    an2 = cluster.enroll("an2", "analyst")
    assert an2.role == "analyst"
    b = cluster.broker().start()
    mon = watcher(b, cluster, topics=("stats", "ledger/events"))
    d = client(b, cluster, "dev1")
    a1 = client(b, cluster, "an1")
    a2 = client(b, cluster, "an2")
    pk = ch_pk(cluster)
    topic = cluster.topic("dev", "dev1", "data", "x")
    coins, _ = mint(d, cluster, "dev1", 9)

    # The same header twice, one after the other: the redeemer gets the same keys again
    # (its answer may have been lost), anyone else already_spent.
    s = Sealed(pk, coins[0], "dev1", topic, b"once")
    k1 = redeem(a1, cluster, "an1", s)
    assert redeem(a1, cluster, "an1", s) == k1
    r = redeem(a2, cluster, "an2", s, "already_spent")
    assert r["nonce"] and "spent" in r["message"]

    # Two analysts, both requests on the wire before either answer: exactly one wins, every time.
    winners = []
    for coin in coins[1:]:
        s = Sealed(pk, coin, "dev1", topic, b"race")
        n1, n2 = rnonce("race1"), rnonce("race2")
        st1, st2 = len(a1.messages), len(a2.messages)
        i1 = a1.publish_async(cluster.topic("ch", "an1"), s.redeem_request(n1))
        i2 = a2.publish_async(cluster.topic("ch", "an2"), s.redeem_request(n2))
        assert i1.rc == 0 and i2.rc == 0
        r1 = inbox_reply(a1, cluster, "an1", n1, st1)
        r2 = inbox_reply(a2, cluster, "an2", n2, st2)
        kinds = sorted([r1.get("error", r1["type"]), r2.get("error", r2["type"])])
        assert kinds == ["already_spent", "redeemed"], (r1, r2)
        won = ("an1", r1, "an1") if r1["type"] == "redeemed" else ("an2", r2, "an2")
        keys = open_redeemed(won[1], seed(cluster, won[0]), pk)
        assert keys["payload_key"] == s.payload_key
        winners.append((coin_hash(coin).hex(), won[0]))

    s = next_stats(mon, cluster, lambda s: s["bank"]["redeemed"] == 9)
    assert s["bank"]["refused"]["already_spent"] == 1 + 8
    b.stop()
    recs = ledger_records(cluster, "coin_redeem")
    assert len(recs) == 9 and len({r["coin_hash"] for r in recs}) == 9, "one redeem record per coin"
    by_hash = {r["coin_hash"]: r["analyst"] for r in recs}
    assert all(by_hash[h] == who for h, who in winners), "the ledger names the analyst that got the keys"
    validate_captured(mon, d, a1, a2, cluster=cluster)


@pytest.mark.vg
def test_redeem_is_repeatable_by_its_redeemer_only(cluster):
    """Issue 7 section 4: a redeem whose answer was lost, or answered outcome_unknown although its record
    was durable, must not burn the coin for nothing. The same analyst repeating the same redeem (same
    header) gets the same keys, before and after a restart (the coin index learns the redeemer from the
    ledger's coin_redeem record); another analyst, or another header sealing the same coin, gets
    already_spent; nothing is written twice."""
    credit_offline(cluster, "dev1", 4)
    cluster.enroll("an2", "analyst")
    b = cluster.broker().start()
    d = client(b, cluster, "dev1")
    a1 = client(b, cluster, "an1")
    a2 = client(b, cluster, "an2")
    pk = ch_pk(cluster)
    topic = cluster.topic("dev", "dev1", "data", "again")
    coins, _ = mint(d, cluster, "dev1", 2)
    s = Sealed(pk, coins[0], "dev1", topic, b"twice", "xchacha20poly1305")
    first = redeem(a1, cluster, "an1", s)
    assert open_data(s.msg, topic, first) == b"twice"
    again = redeem(a1, cluster, "an1", s)
    assert again == first, "the repeat answers with the same keys"
    redeem(a2, cluster, "an2", s, "already_spent")
    # The same coin sealed into another header (another nonce): not the redeem that was paid for.
    other = Sealed(pk, coins[0], "dev1", topic, b"other")
    redeem(a1, cluster, "an1", other, "already_spent")
    # The repeat is checked like a first redeem: the header is still bound to its topic.
    redeem(a1, cluster, "an1", s, "wrong_topic", topic=cluster.topic("dev", "dev1", "data", "elsewhere"))
    b.stop()

    recs = ledger_records(cluster, "coin_redeem")
    assert len(recs) == 1, "a repeat writes no record: %r" % recs
    assert recs[0]["analyst"] == "an1" and recs[0]["header_hash"] == s.header_hash.hex()

    # After a restart the index is rebuilt from the ledger and still knows the redeemer.
    b = cluster.broker().start()
    a1 = client(b, cluster, "an1")
    a2 = client(b, cluster, "an2")
    assert redeem(a1, cluster, "an1", s) == first
    redeem(a2, cluster, "an2", s, "already_spent")
    redeem(a1, cluster, "an1", other, "already_spent")
    # The other coin is untouched: an2 redeems it, then an1 may not.
    s2 = Sealed(pk, coins[1], "dev1", topic, b"second")
    k2 = redeem(a2, cluster, "an2", s2)
    assert redeem(a2, cluster, "an2", s2) == k2
    redeem(a1, cluster, "an1", s2, "already_spent")
    b.stop()
    assert len(ledger_records(cluster, "coin_redeem")) == 2
    validate_captured(d, a1, a2, cluster=cluster)


# ---- unknown outcomes through the real broker (issue 7 section 4) -------------------------------------------
#
# A shim preloaded into the broker makes fdatasync fail (EIO) while a trigger file exists: the ledger
# has then written the batch's frames but cannot say they are durable, completes them as "unknown"
# and takes no records until the broker restarts, exactly as after a real disk error.

FAIL_FDATASYNC_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

int fdatasync(int fd)
{
	const char *trigger = getenv("IG_TEST_FAIL_FDATASYNC");
	if (trigger && access(trigger, F_OK) == 0) {
		errno = EIO;
		return -1;
	}
	int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	return real(fd);
}
"""


@pytest.fixture(scope="module")
def fail_fdatasync(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "no C compiler (cc or gcc) on PATH to build the fdatasync fault shim: install one"
    d = tmp_path_factory.mktemp("shim")
    (d / "fail_fdatasync.c").write_text(FAIL_FDATASYNC_C)
    lib = d / "fail_fdatasync.so"
    p = subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), str(d / "fail_fdatasync.c"), "-ldl"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return lib


def faulty_broker(cluster, lib, trigger, monkeypatch, **opts):
    """A broker whose ledger fdatasync fails while `trigger` exists."""
    b = cluster.broker(**opts)
    b.extra_env["IG_TEST_FAIL_FDATASYNC"] = str(trigger)
    if H.PRELOAD:   # sanitizer runs: the harness sets LD_PRELOAD itself; the runtime must come first
        monkeypatch.setattr(H, "PRELOAD", H.PRELOAD + " " + str(lib))
    else:
        b.extra_env["LD_PRELOAD"] = str(lib)
    return b.start()


@pytest.mark.vg
def test_unknown_redeem_retried_after_restart_gets_the_keys(cluster, fail_fdatasync, monkeypatch, tmp_path):
    """The case of issue 7 section 4: a redeem answered outcome_unknown whose record the next start
    replays. The retry by the same analyst must get the keys (before: already_spent, coin burned for
    nothing); another analyst's already_spent; one record."""
    trigger = tmp_path / "fail-now"
    credit_offline(cluster, "dev1", 2)
    cluster.enroll("an2", "analyst")
    b = faulty_broker(cluster, fail_fdatasync, trigger, monkeypatch)
    d = client(b, cluster, "dev1")
    a1 = client(b, cluster, "an1")
    a2 = client(b, cluster, "an2")
    pk = ch_pk(cluster)
    topic = cluster.topic("dev", "dev1", "data", "u")
    coins, _ = mint(d, cluster, "dev1", 1)
    s = Sealed(pk, coins[0], "dev1", topic, b"unknown")
    trigger.touch()
    r = redeem(a1, cluster, "an1", s, "outcome_unknown")
    assert "may or may not" in r["message"], r
    assert r["request"] == "redeem", r
    H.schema_validate("inbox", r)
    b.wait_log(r"fdatasync of ledger\.log failed")
    # Until the restart tells: the redeemer hears "unknown" again, anyone else "spent".
    redeem(a1, cluster, "an1", s, "outcome_unknown")
    redeem(a2, cluster, "an2", s, "already_spent")
    trigger.unlink()
    b.stop()

    # The frame reached the file before the failed fdatasync, so this start replays it.
    recs = ledger_records(cluster, "coin_redeem")
    assert [(r["analyst"], r["header_hash"]) for r in recs] == [("an1", s.header_hash.hex())], recs
    b = cluster.broker().start()
    a1 = client(b, cluster, "an1")
    a2 = client(b, cluster, "an2")
    keys = redeem(a1, cluster, "an1", s)
    assert keys["payload_key"] == s.payload_key and keys["nonce"] == s.nonce
    assert open_data(s.msg, topic, keys) == b"unknown"
    redeem(a2, cluster, "an2", s, "already_spent")
    b.stop()
    assert len(ledger_records(cluster, "coin_redeem")) == 1, "the retry wrote nothing"


# session_key, attest and create_join_codes whose record may or may not be durable answer
# outcome_unknown (before: storage_failed, or nothing at all for attest), like join, mint and redeem.

def test_unknown_session_key_is_outcome_unknown(cluster, fail_fdatasync, monkeypatch, tmp_path):
    trigger = tmp_path / "fail-now"
    b = faulty_broker(cluster, fail_fdatasync, trigger, monkeypatch)
    d1 = client(b, cluster, "dev1")
    client(b, cluster, "dev2")
    trigger.touch()
    start = len(d1.messages)
    d1.publish(cluster.topic("ch", "dev1"), {"type": "session_key", "peer": "dev2", "nonce": "k-unknown"})
    r = inbox_reply_any(d1, cluster, "dev1", start)
    assert r["type"] == "error" and r["error"] == "outcome_unknown", r
    assert "neither device" in r["message"], r
    # the answer, sent from the ledger's callback, still names its request
    assert r["request"] == "session_key" and r["nonce"] == "k-unknown", r
    H.schema_validate("inbox", r)
    assert not [m for m in d1.messages[start:] if m.json().get("type") == "session_key"], "no key delivered"
    # The ledger is stopped now: a new request is certainly not recorded.
    start = len(d1.messages)
    d1.publish(cluster.topic("ch", "dev1"), {"type": "session_key", "peer": "dev2", "nonce": "k-after"})
    r = inbox_reply_any(d1, cluster, "dev1", start)
    assert r["error"] == "storage_failed", r
    assert r["request"] == "session_key" and r["nonce"] == "k-after", r
    trigger.unlink()
    b.stop()


def test_unknown_attestation_is_outcome_unknown(cluster, fail_fdatasync, monkeypatch, tmp_path):
    # A first report is recorded, so its failure is reported (an accepted report gets no reply).
    trigger = tmp_path / "fail-now"
    b = faulty_broker(cluster, fail_fdatasync, trigger, monkeypatch)
    d1 = client(b, cluster, "dev1")
    trigger.touch()
    start = len(d1.messages)
    d1.publish(cluster.topic("ch", "dev1"), K.attest_request(seed(cluster, "dev1"), "dev1", os.urandom(32)))
    r = inbox_reply_any(d1, cluster, "dev1", start)
    assert r["type"] == "error" and r["error"] == "outcome_unknown", r
    assert "report the measurement again" in r["message"], r
    assert r["request"] == "attest" and "nonce" not in r, r
    H.schema_validate("inbox", r)
    trigger.unlink()
    b.stop()


def test_unknown_join_codes_are_outcome_unknown(cluster, fail_fdatasync, monkeypatch, tmp_path):
    # No code is handed out either way; a recorded one nobody saw is unusable and expires.
    trigger = tmp_path / "fail-now"
    b = faulty_broker(cluster, fail_fdatasync, trigger, monkeypatch)
    admin = H.Admin(b, "admin1")
    trigger.touch()
    r = admin.one("create_join_codes", role="device", count=2, ttl=600)
    assert r["ok"] is False and r["error"] == "outcome_unknown", r
    assert "codes" not in r
    H.schema_validate("admin-response", {"responses": [r]})
    admin.close()
    trigger.unlink()
    b.stop()


def inbox_reply_any(c, cluster, ident, start, timeout=None):
    """The first inbox message after `start` (schema-checked), for replies that carry no nonce."""
    m = c.wait_message(cluster.topic("dev", ident, "inbox"), start=start, timeout=timeout or H.T(8)).json()
    H.schema_validate("inbox", m)
    return m


# ---- refusals ---------------------------------------------------------------------------------------------

def test_refusals(cluster):
    # An expired coin, written straight into the ledger (docs/LEDGER.md): credit, then a mint whose
    # expiry has passed. A short coin_ttl shows on the coins the bank mints itself.
    credit_offline(cluster, "dev1", 10)
    credit_offline(cluster, "dev2", 10)
    old_coins = [os.urandom(32), os.urandom(32)]
    past = int(time.time()) - 30
    K.append_record(cluster.ledger, REC_COIN_MINT, mint_record("dev1", past, old_coins))
    cluster.verify()
    rec = ledger_records(cluster, "coin_mint")[-1]
    assert rec["expires_at"] == past and rec["coin_hashes"] == [coin_hash(c).hex() for c in old_coins]

    b = cluster.broker(coin_ttl=60).start()
    mon = watcher(b, cluster, topics=("stats", "ledger/events"))
    d1 = client(b, cluster, "dev1")
    d2 = client(b, cluster, "dev2")
    a = client(b, cluster, "an1", "dev/+/data/+")
    pk = ch_pk(cluster)
    topic1 = cluster.topic("dev", "dev1", "data", "temp")
    topic2 = cluster.topic("dev", "dev2", "data", "temp")
    assert balance(d1, cluster, "dev1") == (8, 2), "the hand-written mint counts"
    coins1, reply = mint(d1, cluster, "dev1", 6)
    assert abs(reply["expires_at"] - (int(time.time()) + 60)) <= 5, "plugin_opt_coin_ttl 60"
    coins2, _ = mint(d2, cluster, "dev2", 2)
    refused = {c: 0 for c in BANK_CODES}

    def refuse(cl, ident, req, code):
        r = request(cl, cluster, ident, req, code)
        assert r["nonce"] == req["nonce"] and r["message"], r
        refused[code] += 1
        return r

    # expired
    old = Sealed(pk, old_coins[0], "dev1", topic1, b"late")
    refuse(a, "an1", old.redeem_request(rnonce()), "expired")
    # unknown coin
    refuse(a, "an1", Sealed(pk, os.urandom(32), "dev1", topic1, b"?").redeem_request(rnonce()), "unknown_coin")

    # a tampered header: every part of it (ephemeral key, MAC, ciphertext) is covered
    s = Sealed(pk, coins1[0], "dev1", topic1, b"21.5")
    for pos in (0, 31, 32, 47, 48, len(s.header) // 2, len(s.header) - 1):
        bad = bytearray(s.header)
        bad[pos] ^= 0x20
        refuse(a, "an1", s.redeem_request(rnonce(), header=bytes(bad)), "malformed")
    refuse(a, "an1", s.redeem_request(rnonce(), header=s.header[:-1]), "malformed")
    refuse(a, "an1", {"type": "redeem", "topic": topic1, "header": "not base64!", "nonce": rnonce()}, "malformed")
    refuse(a, "an1", {"type": "redeem", "topic": topic1, "nonce": rnonce()}, "malformed")
    # A header sealed to another bank (another cluster-head key).
    other = Sealed(K.public_key(os.urandom(32)), coins1[0], "dev1", topic1, b"x")
    refuse(a, "an1", other.redeem_request(rnonce()), "malformed")
    # A GCM header whose nonce is not canonical: the bank refuses it (the plaintext is malformed).
    gcm_bad = Sealed(pk, coins1[0], "dev1", topic1, b"x", "xchacha20poly1305")
    pt = header_plaintext(coins1[0], os.urandom(24), "aes256gcm", "dev1", topic1)
    refuse(a, "an1", gcm_bad.redeem_request(rnonce(), header=seal_to_bank(pt, pk)), "malformed")

    # the header moved to another topic: another stream, another collector's topic
    refuse(a, "an1", s.redeem_request(rnonce(), topic=cluster.topic("dev", "dev1", "data", "hum")), "wrong_topic")
    refuse(a, "an1", s.redeem_request(rnonce(), topic=topic2), "wrong_topic")
    refuse(a, "an1", s.redeem_request(rnonce(), topic=cluster.topic("dev", "dev1", "results", "temp")), "wrong_topic")
    # a coin of another collector: dev2 pays with dev1's coin on its own topic...
    theft = Sealed(pk, coins1[1], "dev2", topic2, b"stolen")
    d2.publish(topic2, theft.msg)
    refuse(a, "an1", theft.redeem_request(rnonce()), "wrong_collector")
    # ...or names dev1 in the header but publishes on its own topic
    theft2 = Sealed(pk, coins1[1], "dev2", topic2, b"stolen", header_collector="dev1")
    refuse(a, "an1", theft2.redeem_request(rnonce()), "wrong_topic")
    # and cannot publish on dev1's topic at all
    d2.publish(topic1, theft.msg)
    next_stats(mon, cluster, lambda st: st["acl"]["denied_publish"] == 1)
    assert a.take(topic1) == [] and len(a.take(topic2)) == 1, "only dev2's own topic carried its message"

    # wrong roles
    refuse(d1, "dev1", s.redeem_request(rnonce()), "not_allowed")
    refuse(a, "an1", {"type": "mint", "count": 1, "nonce": rnonce()}, "not_allowed")
    refuse(a, "an1", {"type": "refund", "coins": [coins1[2].hex()], "nonce": rnonce()}, "not_allowed")
    refuse(d1, "dev1", {"type": "mint", "count": "1", "nonce": rnonce()}, "malformed")

    # none of that spent anything: the good header still redeems once, and its payload opens...
    keys = redeem(a, cluster, "an1", s)
    assert open_data(s.msg, topic1, keys) == b"21.5"
    # ...but a tampered payload or nonce does not
    for pos in (len(s.msg) - 1, len(s.msg) - 17, 6 + len(s.header) + 1, 6 + len(s.header) + 13,
                6 + len(s.header) + 24):
        bad = bytearray(s.msg)
        bad[pos] ^= 0x01
        with pytest.raises((InvalidTag, AssertionError)):
            open_data(bytes(bad), topic1, keys)
    with pytest.raises(InvalidTag):
        open_data(s.msg, topic2, keys)  # the message republished elsewhere

    # The expired coin is refunded (reason expired), the refused ones are still spendable.
    r = request(d1, cluster, "dev1", {"type": "refund", "coins": [old_coins[1].hex()], "nonce": rnonce("f")},
                "refunded")
    assert (r["refunded"], r["refused"], r["balance"]) == (1, [], 3)
    e = wait_event(mon, cluster, lambda e: e["type"] == "coin_refund")
    assert (e["coin_hash"], e["collector"], e["reason"]) == (coin_hash(old_coins[1]).hex(), "dev1", "expired")
    redeem(a, cluster, "an1", Sealed(pk, coins1[1], "dev1", topic1, b"mine"))

    st = next_stats(mon, cluster, lambda st: st["bank"]["refused"] == refused)
    assert st["bank"]["redeemed"] == 2 and st["bank"]["refunded"] == 1
    seen = validate_captured(mon, d1, d2, a, cluster=cluster)
    for code in BANK_CODES:
        if code != "no_credit":
            assert seen.get("inbox:error:" + code, 0) == refused[code], (code, seen)


def test_collector_drops_replayed_and_moved_results(cluster):
    credit_offline(cluster, "dev1", 40)
    b = cluster.broker().start()
    a = client(b, cluster, "an1", "dev/+/data/+")
    collector = start_agent(b, cluster, "dev1", "--collect-interval", "1", "--result-timeout", "300")
    try:
        msgs = receive_data(a, cluster, "dev1", count=3)
        got = []
        for m in msgs:
            s = Received(m)
            keys = redeem(a, cluster, "an1", s)
            payload = open_data(m.payload, m.topic, keys)
            seq = int(re.search(rb'"seq":(\d+)', payload).group(1))
            got.append((seq, m.topic, s, keys))
        (sx, tx, x, kx), (sy, ty, y, ky), (sz, tz, z, kz) = got
        assert len({sx, sy, sz}) == 3
        rtopic = cluster.topic("dev", "dev1", "results", "readings")

        def publish(msg, topic=rtopic):
            a.publish(topic, msg)

        rx = seal_result(kx["result_key"], x.suite, x.header_hash, rtopic, b'{"answer":"x"}')
        publish(rx)
        collector.wait_line(r"result for seq %d: " % sx)
        bad = 0
        publish(rx)                                           # the same result again
        bad += 1
        moved = rx[:4] + y.header_hash + rx[36:]              # X's result presented as Y's
        publish(moved)
        bad += 1
        publish(seal_result(kx["result_key"], x.suite, y.header_hash, rtopic, b'{"answer":"x as y"}'))
        bad += 1                                              # X's key, bound to Y's hash
        publish(seal_result(ky["result_key"], y.suite, y.header_hash, cluster.topic("dev", "dev1", "results", "other"),
                            b'{"answer":"y"}'), cluster.topic("dev", "dev1", "results", "other"))
        bad += 1                                              # Y's result, sealed for and sent on another stream
        ry_other_aad = seal_result(ky["result_key"], y.suite, y.header_hash,
                                   cluster.topic("dev", "dev1", "results", "b"), b'{"answer":"y"}')
        publish(ry_other_aad)                                 # sealed for another stream, sent on this one
        bad += 1
        ry = bytearray(seal_result(ky["result_key"], y.suite, y.header_hash, rtopic, b'{"answer":"y"}'))
        ry[-1] ^= 1
        publish(bytes(ry))                                    # tampered
        bad += 1
        if y.suite == "aes256gcm":
            ry[-1] ^= 1
            ry[37 + 20] ^= 0x40                               # a GCM nonce byte the tag does not cover
            publish(bytes(ry))
            bad += 1
        publish(b"IGS1" + os.urandom(60))                     # garbage
        bad += 1
        # Y and Z are still answerable, once.
        publish(seal_result(ky["result_key"], y.suite, y.header_hash, rtopic, b'{"answer":"y"}'))
        collector.wait_line(r"result for seq %d: " % sy)
        rz = seal_result(kz["result_key"], z.suite, z.header_hash, rtopic, b'{"answer":"z"}')
        publish(rz)
        collector.wait_line(r"result for seq %d: " % sz)
        publish(rz)
        bad += 1
        H.wait_for(lambda: collector.text().count("dropped result (unknown/tampered)") >= bad, H.T(10),
                   what="%d dropped results" % bad)
    finally:
        text = agent_stopped(collector)
    rep = collector_report(text)
    assert rep["results"] == 3, rep
    assert rep["dropped"] == bad, "want %d dropped results: %r\n%s" % (bad, rep, text[-3000:])
    for seq in (sx, sy, sz):
        assert len(re.findall(r"result for seq %d: " % seq, text)) == 1


# ---- refunds and credit -----------------------------------------------------------------------------

def test_refunds_and_credit_limits(cluster):
    credit_offline(cluster, "dev1", 5)
    b = cluster.broker().start()
    mon = watcher(b, cluster, topics=("stats", "ledger/events"))
    d1 = client(b, cluster, "dev1")
    d2 = client(b, cluster, "dev2")
    a = client(b, cluster, "an1")
    adm = H.Admin(b, "admin1")
    pk = ch_pk(cluster)
    topic = cluster.topic("dev", "dev1", "data", "t")

    coins, _ = mint(d1, cluster, "dev1", 3)
    assert balance(d1, cluster, "dev1") == (2, 3)
    r = request(d1, cluster, "dev1", {"type": "refund", "coins": [coins[0].hex(), coins[1].hex().upper()],
                                      "nonce": rnonce("f")}, "refunded")
    assert (r["refunded"], r["refused"], r["balance"]) == (2, [], 4)
    refunds = [wait_event(mon, cluster, lambda e, h=coin_hash(c).hex(): e["type"] == "coin_refund" and
                          e["coin_hash"] == h) for c in coins[:2]]
    assert all((e["collector"], e["reason"]) == ("dev1", "cancelled") for e in refunds)
    assert balance(d1, cluster, "dev1") == (4, 1)

    # A refunded coin is void; a redeemed one cannot be refunded; nor can another collector's, or nonsense.
    refunded_coin = Sealed(pk, coins[0], "dev1", topic, b"void")
    redeem(a, cluster, "an1", refunded_coin, "unknown_coin")
    redeem(a, cluster, "an1", Sealed(pk, coins[2], "dev1", topic, b"spent"))
    ghost = os.urandom(32)
    mixed = [coins[2].hex(), coins[0].hex(), ghost.hex(), "zz" * 32]
    r = request(d1, cluster, "dev1", {"type": "refund", "coins": mixed, "nonce": rnonce("f")}, "refunded", valid=False)
    assert r["refunded"] == 0 and r["balance"] == 4
    assert r["refused"] == [{"coin_hash": coin_hash(coins[2]).hex(), "error": "already_spent"},
                            {"coin_hash": coin_hash(coins[0]).hex(), "error": "already_refunded"},
                            {"coin_hash": coin_hash(ghost).hex(), "error": "unknown_coin"},
                            {"coin_hash": "0" * 64, "error": "malformed"}]
    theirs, _ = mint(d1, cluster, "dev1", 1)
    r = request(d2, cluster, "dev2", {"type": "refund", "coins": [theirs[0].hex()], "nonce": rnonce("f")}, "refunded")
    assert r["refunded"] == 0 and r["refused"][0]["error"] == "unknown_coin", "dev2 cannot refund dev1's coin"
    assert balance(d1, cluster, "dev1") == (3, 1)
    request(d1, cluster, "dev1", {"type": "refund", "coins": [], "nonce": rnonce("f")}, "malformed", valid=False)

    # Credit exhaustion: a mint beyond the balance takes nothing.
    request(d1, cluster, "dev1", {"type": "mint", "count": 4, "nonce": rnonce("m")}, "no_credit")
    mint(d1, cluster, "dev1", 3)
    request(d1, cluster, "dev1", {"type": "mint", "count": 1, "nonce": rnonce("m")}, "no_credit")
    request(d2, cluster, "dev2", {"type": "mint", "count": 1, "nonce": rnonce("m")}, "no_credit")
    assert balance(d1, cluster, "dev1") == (0, 4)

    # Credit through the admin API; the per-request limit is 64.
    resp = adm.request({"command": "credit", "id": "dev1", "amount": 100})
    H.schema_validate("admin-response", resp)
    one = resp["responses"][0]
    assert one["ok"] and (one["id"], one["balance"]) == ("dev1", 100), one
    e = wait_event(mon, cluster, lambda e: e["type"] == "credit" and e["index"] == one["index"])
    assert (e["id"], e["amount"], e["by"]) == ("dev1", 100, "admin1")
    for bad, code in ((0, "malformed"), (10 ** 9 + 1, "malformed")):
        f = adm.one("credit", id="dev1", amount=bad)
        assert not f["ok"] and f["error"] == code, f
    f = adm.one("credit", id="nobody", amount=5)
    assert not f["ok"] and f["error"] == "not_found", f
    r = request(d1, cluster, "dev1", {"type": "mint", "count": 65, "nonce": rnonce("m")}, "over_limit")
    assert "64" in r["message"]
    request(d1, cluster, "dev1", {"type": "mint", "count": 0, "nonce": rnonce("m")}, "over_limit")
    assert balance(d1, cluster, "dev1") == (100, 4), "refused mints take no credit"
    coins64, _ = mint(d1, cluster, "dev1", 64)
    assert len(coins64) == 64
    # Two mints on the wire at once cannot overdraw: 36 left, 2 x 30 asked.
    n1, n2 = rnonce("m"), rnonce("m")
    st = len(d1.messages)
    d1.publish_async(cluster.topic("ch", "dev1"), {"type": "mint", "count": 30, "nonce": n1})
    d1.publish_async(cluster.topic("ch", "dev1"), {"type": "mint", "count": 30, "nonce": n2})
    r1, r2 = inbox_reply(d1, cluster, "dev1", n1, st), inbox_reply(d1, cluster, "dev1", n2, st)
    assert sorted([r1.get("error", r1["type"]), r2.get("error", r2["type"])]) == ["coins", "no_credit"], (r1, r2)
    assert balance(d1, cluster, "dev1") == (6, 98)
    # A refund of 64 in one go.
    r = request(d1, cluster, "dev1", {"type": "refund", "coins": [c.hex() for c in coins64], "nonce": rnonce("f")},
                "refunded")
    assert (r["refunded"], r["balance"]) == (64, 70)

    st = next_stats(mon, cluster, lambda s: s["bank"]["refunded"] == 66)
    assert st["bank"]["minted"] == 3 + 1 + 3 + 64 + 30
    assert st["bank"]["refused"]["no_credit"] == 4 and st["bank"]["refused"]["over_limit"] == 2
    assert st["bank"]["outstanding"] == 34
    b.stop()
    recs = ledger_records(cluster)
    credits = sum(r["amount"] for r in recs if r["type"] == "credit" and r["id"] == "dev1")
    minted = sum(r["count"] for r in recs if r["type"] == "coin_mint" and r["owner"] == "dev1")
    refunded = len([r for r in recs if r["type"] == "coin_refund" and r["collector"] == "dev1"])
    assert credits - minted + refunded == 70, "the ledger alone gives the balance"
    validate_captured(mon, d1, d2, a, cluster=cluster)
    adm.close()


# ---- crash safety -------------------------------------------------------------------------------------

def replies(c, cluster, ident, nonces, start=0):
    """{nonce: reply} for the inbox replies to the given nonces received so far."""
    want = set(nonces)
    out = {}
    for m in c.take(cluster.topic("dev", ident, "inbox"))[start:]:
        j = m.json()
        if j.get("nonce") in want:
            H.schema_validate("inbox", j)
            assert j.get("nonce") not in out, "two replies to one request: %r" % j
            out[j["nonce"]] = j
    return out


def test_redeem_storm_survives_kill9(cluster):
    credit_offline(cluster, "dev1", 400)
    b = cluster.broker().start()
    d = client(b, cluster, "dev1")
    a = client(b, cluster, "an1")
    pk = ch_pk(cluster)
    topic = cluster.topic("dev", "dev1", "data", "storm")
    coins, acked_mints = [], []
    for _ in range(4):
        got, reply = mint(d, cluster, "dev1", 64)
        coins += got
        acked_mints.append(got)
    sealed = [Sealed(pk, c, "dev1", topic, b"reading %d" % i, SUITES[i % 2]) for i, c in enumerate(coins)]

    # The storm: every redeem on the wire, mints racing it, and kill -9 once answers flow.
    nonces = [rnonce("s") for _ in sealed]
    by_nonce = dict(zip(nonces, sealed))
    mint_nonces = [rnonce("m") for _ in range(6)]
    a_start = len(a.take(cluster.topic("dev", "an1", "inbox")))
    d_start = len(d.take(cluster.topic("dev", "dev1", "inbox")))
    for i, (n, s) in enumerate(zip(nonces, sealed)):
        a.publish_async(cluster.topic("ch", "an1"), s.redeem_request(n))
        if i % 50 == 0:
            d.publish_async(cluster.topic("ch", "dev1"), {"type": "mint", "count": 8, "nonce": mint_nonces[i // 50]})
    first = len(a.messages)
    H.wait_for(lambda: len(a.messages) >= first + 10, H.T(20), what="the first redeem replies")
    b.kill9()
    time.sleep(0.3)   # what the broker wrote to the sockets before it died still arrives
    got = replies(a, cluster, "an1", nonces, a_start)
    assert all(r["type"] == "redeemed" for r in got.values()), [r for r in got.values() if r["type"] != "redeemed"][:3]
    acked = {coin_hash(by_nonce[n].coin).hex(): (n, r) for n, r in got.items()}
    minted_late = replies(d, cluster, "dev1", mint_nonces, d_start)
    for r in minted_late.values():
        assert r["type"] == "coins", r
        acked_mints.append(open_coins(r, seed(cluster, "dev1"), pk))
    a.close()
    d.close()
    print("storm: %d of %d redeems and %d of %d racing mints acknowledged before kill -9"
          % (len(acked), len(sealed), len(minted_late), len(mint_nonces)))
    for n, r in list(got.items())[:5]:
        keys = open_redeemed(r, seed(cluster, "an1"), pk)
        assert open_data(by_nonce[n].msg, topic, keys) == by_nonce[n].payload

    # The ledger after the crash.
    cluster.verify()
    recs = ledger_records(cluster)
    spent = [r["coin_hash"] for r in recs if r["type"] == "coin_redeem"]
    assert len(spent) == len(set(spent)), "a coin redeemed twice in the ledger"
    assert set(acked) <= set(spent), "acknowledged redeems missing from the ledger: %r" % (set(acked) - set(spent))
    minted_hashes = {h for r in recs if r["type"] == "coin_mint" for h in r["coin_hashes"]}
    for batch in acked_mints:
        assert {coin_hash(c).hex() for c in batch} <= minted_hashes, "an acknowledged mint is missing from the ledger"
    credits = sum(r["amount"] for r in recs if r["type"] == "credit")
    minted_count = sum(r["count"] for r in recs if r["type"] == "coin_mint")

    # After a restart: what the ledger says is spent stays spent (one record per coin), but its
    # redeemer's retry of the same header gets the same keys again, whether or not the first answer
    # made it out before the kill; everything else redeems exactly once.
    b2 = cluster.broker().start()
    mon = watcher(b2, cluster, topics=("stats",))
    a = client(b2, cluster, "an1")
    d = client(b2, cluster, "dev1")
    assert balance(d, cluster, "dev1") == (credits - minted_count, minted_count - len(spent))
    again = [rnonce("again") for _ in sealed]
    start = len(a.take(cluster.topic("dev", "an1", "inbox")))
    for n, s in zip(again, sealed):
        a.publish_async(cluster.topic("ch", "an1"), s.redeem_request(n))
    H.wait_for(lambda: len(replies(a, cluster, "an1", again, start)) == len(sealed), H.T(30),
               what="answers to every second redeem")
    second = replies(a, cluster, "an1", again, start)
    for n, s in zip(again, sealed):
        h = coin_hash(s.coin).hex()
        r = second[n]
        assert r["type"] == "redeemed", "coin %s (acknowledged: %s, in the ledger: %s): %r" % (
            h[:16], h in acked, h in spent, r)
        keys = open_redeemed(r, seed(cluster, "an1"), pk)
        assert keys["payload_key"] == s.payload_key and keys["nonce"] == s.nonce
        if h in acked:
            assert keys == open_redeemed(acked[h][1], seed(cluster, "an1"), pk), "the same keys as before the kill"
    s = next_stats(mon, cluster, lambda s: s["bank"]["redeemed"] == len(sealed) - len(spent))
    assert s["bank"]["refused"]["already_spent"] == 0
    assert s["bank"]["outstanding"] == minted_count - len(sealed)
    b2.stop()
    final = [r["coin_hash"] for r in ledger_records(cluster, "coin_redeem")]
    assert sorted(final) == sorted(coin_hash(c).hex() for c in coins), "every coin redeemed exactly once"


# ---- credit the agents must not lose (issue 7, section 5), and their payloads --------------------------

def test_collector_hands_its_coins_back_on_a_clean_exit(cluster):
    """SIGTERM: the collector refunds every coin it holds (ready ones and those
    paid for readings still unanswered) before it leaves, so its balance
    comes back whole but for the coins actually redeemed. Its readings'
    plaintexts match schema/agent-reading."""
    credit_offline(cluster, "dev1", 40)
    b = cluster.broker().start()
    a = client(b, cluster, "an1", "dev/+/data/+")
    collector = start_agent(b, cluster, "dev1", "--collect-interval", "1", "--result-timeout", "300")
    try:
        msgs = receive_data(a, cluster, "dev1", count=3, timeout=H.T(20))
        # An analyst written from the document redeems one reading and reads it.
        keys = redeem(a, cluster, "an1", Received(msgs[0]))
        reading = H.json.loads(open_data(msgs[0].payload, msgs[0].topic, keys))
        H.schema_validate("agent-reading", reading)
        assert reading["seq"] >= 1 and abs(reading["t"] / 1000 - time.time()) < 60, reading
    finally:
        t0 = time.monotonic()
        text = agent_stopped(collector)
    took = time.monotonic() - t0
    assert took < H.T(4), "a clean stop took %.1f s\n%s" % (took, text[-3000:])
    assert re.search(r"stopping: handing \d+ unused coins back to the bank, and the \d+ paid for readings", text), \
        text[-3000:]
    assert "their credit is lost" not in text, text[-3000:]
    d = client(b, cluster, "dev1")
    assert balance(d, cluster, "dev1") == (40 - 1, 0), "every coin but the redeemed one came back"
    refunds = ledger_records(cluster, "coin_refund")
    mints = [e for e in ledger_records(cluster, "coin_mint") if e["owner"] == "dev1"]
    assert len(refunds) == sum(m["count"] for m in mints) - 1
    assert all((e["collector"], e["reason"]) == ("dev1", "cancelled") for e in refunds)
    m = re.findall(r"refunded: (\d+) of (\d+) coins credited back, (\d+) refused", text)
    assert sum(int(x[0]) for x in m) == len(refunds) and sum(int(x[2]) for x in m) == 1, m


def test_collector_stop_is_bounded_when_the_bank_is_silent(cluster):
    """A broker that stops answering cannot make SIGTERM hang: the collector
    waits for its refund a bounded time, says the credit of what is left is
    lost, and exits 0."""
    credit_offline(cluster, "dev1", 20)
    b = cluster.broker().start()
    collector = start_agent(b, cluster, "dev1", "--collect-interval", "1", "--result-timeout", "300")
    try:
        collector.wait_line(r"received \d+ coins from the bank", timeout=H.T(15))
        os.kill(b.proc.pid, H.signal.SIGSTOP)
        t0 = time.monotonic()
        rc = collector.stop(timeout=H.T(20))
        took = time.monotonic() - t0
    finally:
        os.kill(b.proc.pid, H.signal.SIGCONT)
    text = collector.text()
    assert rc == 0, text[-3000:]
    assert took < 12, "stop took %.1f s with a silent broker" % took
    assert "stopping without every answer from the cluster head" in text, text[-3000:]
    assert re.search(r"wiping \d+ coins the bank did not take back .*their credit is lost", text), text[-3000:]


def test_analyst_answers_every_redeemed_reading(cluster):
    """The analyst agent burns a coin for each reading, so it answers each:
    statistics for a JSON reading, an error result for a payload that is not
    a JSON object or does not open with its coin's keys. Every answer is
    sealed to the collector and bound to the reading's header, and matches
    schema/agent-result."""
    credit_offline(cluster, "dev1", 10)
    b = cluster.broker().start()
    mon = watcher(b, cluster, topics=("ledger/events",))
    d = client(b, cluster, "dev1", "dev/dev1/results/+")
    analyst = start_agent(b, cluster, "an1", "--role", "analyst", "--verbose")
    try:
        analyst.wait_line(r"subscribed to %s" % re.escape(cluster.topic("dev", "+", "data", "+")))
        coins, _ = mint(d, cluster, "dev1", 4)
        pk = ch_pk(cluster)
        topic = cluster.topic("dev", "dev1", "data", "readings")
        rtopic = cluster.topic("dev", "dev1", "results", "readings")
        cases = [
            (Sealed(pk, coins[0], "dev1", topic, b'{"seq":7,"t":1716200000123,"load":0.5}'), None),
            (Sealed(pk, coins[1], "dev1", topic, b"21.5 degrees, not JSON"), "not_json"),
            (Sealed(pk, coins[2], "dev1", topic, b'[1,2,3]', "xchacha20poly1305"), "not_json"),
        ]
        broken = Sealed(pk, coins[3], "dev1", topic, b'{"seq":9,"t":1}')
        broken.msg = broken.msg[:-1] + bytes([broken.msg[-1] ^ 1])   # the payload's tag no longer verifies
        cases.append((broken, "undecryptable"))
        for s, want in cases:
            start = len(d.messages)
            d.publish(topic, s.msg)
            r = d.wait_message(rtopic, start=start, timeout=H.T(10),
                               pred=lambda m, h=s.header_hash: m.payload[4:36] == h)
            answer = H.json.loads(open_result(r.payload, rtopic, s.result_key, s.header_hash))
            H.schema_validate("agent-result", answer)
            if want is None:
                assert answer["seq"] == 7 and answer["stats"]["load"] == {"count": 1, "mean": 0.5, "min": 0.5,
                                                                          "max": 0.5}, answer
            else:
                assert answer["error"] == want, answer
        wait_event(mon, cluster, lambda e: e["type"] == "coin_redeem" and e["coin_hash"] == coin_hash(coins[3]).hex())
    finally:
        text = agent_stopped(analyst)
    assert re.search(r"results sent 1, error results sent 3, dropped 0", text), text[-3000:]
