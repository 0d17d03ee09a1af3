"""A sealed cluster head (issue 9, docs/PROTOCOL.md "A sealed cluster head").

Why this exists: once custody seals the cluster-head key, the ledger
directory holds ch.key.sealed and no ch.key. The broker must still start
from it: authenticate enrolled identities (tokens need only public keys),
enforce ACLs, serve log proofs and the retained head, and refuse with error
"sealed" everything that needs the key (session keys, coins, entropy, joins,
attestations, admin changes), so clients retry. The ledger tools that only
read keep working on such a directory. This test seals by hand (moves
ch.key away, puts a placeholder ch.key.sealed): the plugin only checks that
the sealed file is there; unsealing through real shares is the custody
service's test.
"""
import base64

import pytest

import igharness as H
import igkeys as K


def seal_by_hand(cluster):
    """Moves ch.key out of the ledger directory; returns where it went."""
    key = cluster.ledger / "ch.key"
    away = cluster.root / "ch.key.away"
    key.rename(away)
    sealed = cluster.ledger / "ch.key.sealed"
    sealed.write_bytes(b"placeholder: the plugin only checks that this file exists")
    sealed.chmod(0o600)
    return away


def ask(dev, cluster, ident, req):
    """Sends req on ident's ch topic; returns the inbox answer naming its nonce (or its type)."""
    inbox = cluster.topic("dev", ident, "inbox")
    start = len(dev.take())
    dev.publish(cluster.topic("ch", ident), req)

    def mine(m):
        o = m.json()
        if "nonce" in req:
            return o.get("nonce") == req["nonce"]
        return o.get("request") == req["type"]
    msg = dev.wait_message(inbox, start=start, pred=mine, timeout=H.T(10)).json()
    H.schema_validate("inbox", msg)
    return msg


def assert_sealed(msg, request, what):
    assert msg["type"] == "error" and msg["error"] == "sealed", msg
    assert msg["request"] == request, msg
    assert msg["message"].startswith("the cluster head is sealed: "), msg
    assert "custody holders must connect before it can " + what in msg["message"], msg
    assert msg["message"].endswith("; retry later"), msg


@pytest.mark.vg
def test_a_sealed_cluster_head_authenticates_and_proves_but_refuses_what_needs_the_key(cluster):
    # A join code made while the key was there: its join cannot be checked once sealed.
    code = H.cli("join-code", "--ledger", cluster.ledger, "--role", "device").stdout.split()[0]
    # An enrolment made through the running, unsealed broker, then stopped.
    b = cluster.broker().start()
    try:
        admin = H.Admin(b, "admin1")
        dev9 = cluster.new_key("dev9")
        r = admin.one("enroll", id="dev9", role="device", pubkey=dev9.pubkey)
        assert r["ok"], r
        admin.close()
    finally:
        b.stop()
    seal_by_hand(cluster)

    # The tools that only read need no key ...
    cluster.verify()
    shown = cluster.show_json()
    assert any(rec.get("id") == "dev9" for rec in shown), "show reads a sealed ledger"
    got = H.cli("get", "--ledger", cluster.ledger, "--id", "dev9")
    assert "dev9" in got.stdout
    proof = cluster.root / "dev9.proof"
    proof.write_bytes(H.cli("proof", "--ledger", cluster.ledger, "--id", "dev9").stdout.encode())
    out = H.cli("proof", "verify", proof, "--ch-key", cluster.ch_pubkey).stdout
    assert out.startswith("proof OK: ") and '"id":"dev9"' in out, out
    # ... and an offline change says it is sealed and what to do.
    p = H.cli("enroll", "--ledger", cluster.ledger, "--id", "dev10", "--role", "device",
              "--pubkey", cluster.new_key("dev10").pubkey, check=False)
    assert p.returncode != 0
    assert "is sealed" in p.stderr and "custody recover" in p.stderr, p.stderr

    b = cluster.broker(stats_interval=1).start()
    try:
        b.wait_log(r"iotguard: sealed: .* holds no ch\.key, only ch\.key\.sealed")
        b.wait_log(r"ledger .* is sealed \(ch\.key\.sealed, no ch\.key\)")

        # The head is still published, signed as before.
        mon = b.connect("mon1")
        mon.subscribe_ok(cluster.topic("ledger", "head"))
        mon.subscribe_ok(cluster.topic("stats"))
        head = mon.wait_message(cluster.topic("ledger", "head"), timeout=H.T(10)).json()
        H.schema_validate("ledger-head", head)
        assert head["ch_pubkey"] == cluster.ch_pubkey and head["size"] == len(cluster.show_json())

        # Enrolled devices connect with their tokens; ACLs hold.
        d = b.connect("dev9")
        d.subscribe_ok(cluster.topic("dev", "dev9", "inbox"))
        assert ask(d, cluster, "dev9", {"type": "ping", "nonce": "p1"})["type"] == "pong"
        assert d.subscribe(cluster.topic("dev", "dev1", "inbox"))[0] >= 0x80, "ACLs still refuse another's inbox"
        d1 = b.connect("dev1")

        # What needs the key is refused as sealed, naming the request and nonce.
        m = ask(d, cluster, "dev9", {"type": "session_key", "peer": "dev1", "nonce": "k1"})
        assert_sealed(m, "session_key", "issue session keys")
        assert m["nonce"] == "k1"
        assert_sealed(ask(d, cluster, "dev9", {"type": "mint", "count": 2, "nonce": "m1"}), "mint",
                      "serve the bank")
        assert_sealed(ask(d, cluster, "dev9", {"type": "balance", "nonce": "b1"}), "balance", "serve the bank")
        # Entropy is dropped unanswered (and counted below).
        d.publish(cluster.topic("dev", "dev9", "entropy"), K.entropy_payload(1, bytes.fromhex(cluster.ch_pubkey)))

        # Log proofs need no key: the enrolment made before the seal is proven.
        proof = ask(d, cluster, "dev9", {"type": "log_inclusion", "of": "enrollment", "nonce": "inc"})
        assert proof["type"] == "log_inclusion_proof", proof
        assert b"dev9" in base64.b64decode(proof["entry"])

        # Admin changes are refused as sealed; reads are answered.
        admin = H.Admin(b, "admin1")
        r = admin.one("enroll", id="dev11", role="device", pubkey=cluster.new_key("dev11").pubkey)
        assert not r["ok"] and r["error"] == "sealed", r
        assert "before it can record an enrolment" in r["message"], r
        r = admin.one("revoke", id="dev1", reason="test")
        assert not r["ok"] and r["error"] == "sealed", r
        assert d1.connected, "a refused revoke cuts nobody off"
        r = admin.one("create_join_codes", role="device")
        assert not r["ok"] and r["error"] == "sealed", r
        r = admin.one("get_identity", id="dev9")
        assert r["ok"] and r["identity"]["status"] == "active", r

        # A join with a code is refused at CONNECT: there is no join key.
        new = cluster.new_key("newdev")
        tok = K.join_token(K.seed_of(new.key), cluster.name, "newdev", code)
        mark = b.mark()
        assert H.try_connect(b, "newdev", password=tok) in H.refused_code(True)
        assert b.refusal_reason("newdev", since=mark) == "sealed"
        b.wait_log(r"join token for newdev refused: the cluster head is sealed", since=mark)

        # Stats say sealed and count the refusals.
        def settled(m):
            s = m.json()
            return s.get("sealed_refused", {}).get("joins") == 1 and s["sealed_refused"]["dev_messages"] == 1
        s = mon.wait_message(cluster.topic("stats"), pred=settled, timeout=H.T(10)).json()
        H.schema_validate("stats", s)
        assert s["sealed"] is True
        assert s["sealed_refused"] == {"requests": 3, "dev_messages": 1, "admin": 3, "joins": 1}, s
        assert s["auth"]["refused"]["sealed"] == 1
        assert "keys" not in s and "bank" not in s and "proofs" in s
        assert s["ledger"]["pending"] == 0
    finally:
        b.stop()
    # The stop verified the ledger; nothing was appended while sealed.
    assert not (cluster.ledger / "ch.key").exists()


def test_without_ch_key_or_a_sealed_key_the_start_still_fails(cluster):
    (cluster.ledger / "ch.key").rename(cluster.root / "ch.key.away")
    b = cluster.broker()
    b.start(wait=False)
    rc = b.wait_exit()
    assert rc != 0
    log = b.log() + b.stderr()
    assert "open key file" in log and "ch.key" in log and "refusing to start" in log, log[-2000:]
    assert "sealed" not in log.split("open key file")[1].splitlines()[0], "no sealed file, no sealed talk"
    # Tools that read need no key either.
    cluster.verify()
