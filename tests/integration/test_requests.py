"""Requests to the cluster head on iotguard/C/ch/<id>, answered on the inbox."""
import pytest

import igharness as H

pytestmark = pytest.mark.vg


@pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])
def test_ping_pong_only_to_the_asker(mbroker, mcluster, v5):
    d1 = mbroker.connect("dev1", v5=v5)
    d2 = mbroker.connect("dev2", v5=v5)
    d1.subscribe_ok(mcluster.topic("dev", "dev1", "inbox"))
    d2.subscribe_ok(mcluster.topic("dev", "dev2", "inbox"))
    d1.publish(mcluster.topic("ch", "dev1"), {"type": "ping", "nonce": "n-123"})
    pong = d1.wait_message(mcluster.topic("dev", "dev1", "inbox")).json()
    assert pong["type"] == "pong" and pong["nonce"] == "n-123"
    assert isinstance(pong["ts"], int) and pong["ts"] > 1_600_000_000_000
    H.schema_validate("inbox", pong)
    d2.no_message(within=1.0)
    # only one answer for one request
    assert len(d1.take(mcluster.topic("dev", "dev1", "inbox"))) == 1


def test_ping_without_nonce(mbroker, mcluster):
    d = mbroker.connect("dev3")
    d.subscribe_ok(mcluster.topic("dev", "dev3", "inbox"))
    d.publish(mcluster.topic("ch", "dev3"), {"type": "ping"})
    pong = d.wait_message(mcluster.topic("dev", "dev3", "inbox")).json()
    assert pong["type"] == "pong"
    H.schema_validate("inbox", pong)


@pytest.mark.parametrize("payload,code", [
    (b"not json", "malformed"),
    (b"[]", "malformed"),
    (b'{"type":7}', "malformed"),
    (b'{"nonce":"x"}', "malformed"),
    (b'{"type":"ping","nonce":5}', "malformed"),
    (b'{"type":"ping","nonce":"' + b"x" * 200 + b'"}', "malformed"),
    (b'{"type":"teleport"}', "unknown_type"),
    (b"", "malformed"),
])
def test_bad_requests_get_an_error(mbroker, mcluster, payload, code):
    d = mbroker.connect("dev1")
    d.subscribe_ok(mcluster.topic("dev", "dev1", "inbox"))
    d.publish(mcluster.topic("ch", "dev1"), payload)
    err = d.wait_message(mcluster.topic("dev", "dev1", "inbox")).json()
    assert err["type"] == "error" and err["error"] == code, err
    assert isinstance(err["message"], str) and len(err["message"]) > 10
    H.schema_validate("inbox", err)
    assert d.connected


def test_errors_name_the_request_they_answer(mbroker, mcluster):
    """A device with an attest and a session_key in flight must tell their
    errors apart: each error names its request's type, and its nonce when
    the request had one (docs/PROTOCOL.md "Which request an error answers")."""
    d = mbroker.connect("dev1")
    inbox = mcluster.topic("dev", "dev1", "inbox")
    d.subscribe_ok(inbox)
    ch = mcluster.topic("ch", "dev1")
    cases = [
        ({"type": "attest", "measurement": "zz"}, "malformed", "attest", None),
        ({"type": "session_key", "peer": "nobody", "nonce": "k-1"}, "peer_unknown", "session_key", "k-1"),
        ({"type": "session_key", "peer": "dev1", "nonce": "k-2"}, "malformed", "session_key", "k-2"),
        ({"type": "session_key", "peer": "dev2", "nonce": "bad nonce"}, "malformed", "session_key", None),
        ({"type": "mint", "count": 0, "nonce": "m-1"}, "over_limit", "mint", "m-1"),
        ({"type": "redeem", "nonce": "r-1"}, "not_allowed", "redeem", "r-1"),
        ({"type": "refund", "coins": [], "nonce": "f-1"}, "malformed", "refund", "f-1"),
        ({"type": "ping", "nonce": 5}, "malformed", "ping", None),
        ({"type": "join"}, "not_joining", "join", None),
        ({"type": "teleport"}, "unknown_type", None, None),
        (b"not json", "malformed", None, None),
    ]
    for req, code, request, nonce in cases:
        d.clear()
        d.publish(ch, req)
        err = d.wait_message(inbox).json()
        assert err["type"] == "error" and err["error"] == code, (req, err)
        assert err.get("request") == request, (req, err)
        assert err.get("nonce") == nonce, (req, err)
        H.schema_validate("inbox", err)
    assert d.connected


def test_oversized_request(mbroker, mcluster):
    d = mbroker.connect("dev2")
    d.subscribe_ok(mcluster.topic("dev", "dev2", "inbox"))
    big = b'{"type":"ping","pad":"' + b"a" * 10000 + b'"}'
    d.publish(mcluster.topic("ch", "dev2"), big)
    err = d.wait_message(mcluster.topic("dev", "dev2", "inbox")).json()
    assert err["type"] == "error" and err["error"] == "too_large"
    assert "request" not in err, "an unread request names no type"
    H.schema_validate("inbox", err)


def test_inbox_delivered_without_subscription_only_to_owner(mbroker, mcluster):
    # The plugin sends to the client directly; nobody else sees it even
    # with a matching subscription (which the ACL refuses anyway).
    d1 = mbroker.connect("dev1")
    mon = mbroker.connect("mon1")
    assert mon.subscribe(mcluster.topic("dev", "dev1", "inbox"))[0] >= 0x80
    d1.publish(mcluster.topic("ch", "dev1"), {"type": "ping", "nonce": "direct"})
    got = d1.wait_message(mcluster.topic("dev", "dev1", "inbox"))
    assert got.json()["nonce"] == "direct"
    mon.no_message(within=0.5)


def test_many_pings_all_answered(mbroker, mcluster):
    d = mbroker.connect("dev3")
    d.subscribe_ok(mcluster.topic("dev", "dev3", "inbox"))
    for i in range(50):
        d.publish_async(mcluster.topic("ch", "dev3"), {"type": "ping", "nonce": "p%d" % i})
    H.wait_for(lambda: len(d.take(mcluster.topic("dev", "dev3", "inbox"))) >= 50, H.T(10), what="50 pongs")
    nonces = sorted(m.json()["nonce"] for m in d.take(mcluster.topic("dev", "dev3", "inbox")))
    assert nonces == sorted("p%d" % i for i in range(50))
