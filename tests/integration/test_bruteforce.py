"""Brute force at CONNECT must not buy an attacker anything (issue 7, section 2).

Against the real broker: the per-address ban holds for two addresses that
shared a slot in the old 256-slot table (alternating between them never
triggered a ban), and the per-identity budget stops many failing addresses
from costing a signature check each while the identity's owner, from its
own address, still gets in.
"""
import pytest

import igharness as H


def _old_slot(addr):
    """The slot the old plugin chose for an address: FNV-1a 64 mod 256."""
    h = 1469598103934665603
    for b in addr.encode():
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h % 256


def _colliding_pair():
    seen = {}
    for i in range(2, 255):
        a = "127.0.0.%d" % i
        s = _old_slot(a)
        if s in seen:
            return seen[s], a
        seen[s] = a
    raise AssertionError("no two loopback addresses share an old slot")


def _try(broker, ident, password, bind):
    c = H.Mqtt(broker, ident, password=password, bind_address=bind)
    try:
        return c.connect()
    finally:
        c.close()


def test_alternating_two_addresses_gets_both_banned(cluster):
    b = cluster.broker(auth_fail_limit=4, auth_ban_seconds=600).start()
    x, y = _colliding_pair()
    forged = cluster.token("dev1", key=cluster.ids["dev2"].key)
    for _ in range(4):
        for addr in (x, y):
            since = b.mark()
            assert _try(b, "dev1", forged, addr) in H.NOT_AUTHORISED_V5
            assert b.refusal_reason("dev1", since) == "bad_signature"
    for addr in (x, y):
        b.wait_log(r"address %s: 4 failed logins within a minute" % addr.replace(".", r"\."))
        # Banned: even a valid token from that address is refused, unchecked.
        since = b.mark()
        assert _try(b, "dev1", cluster.token("dev1"), addr) in H.NOT_AUTHORISED_V5
        assert b.refusal_reason("dev1", since) == "rate_limited"
    # Another address is not affected.
    assert _try(b, "dev1", cluster.token("dev1"), "127.0.0.1") == 0


def test_identity_budget_spares_the_owner(cluster):
    b = cluster.broker(auth_id_budget=3).start()
    forged = cluster.token("dev1", key=cluster.ids["dev2"].key)
    attackers = ["127.0.1.%d" % i for i in range(1, 5)]
    # Each attacker address fails once (a fresh address always gets its check)...
    for addr in attackers:
        since = b.mark()
        assert _try(b, "dev1", forged, addr) in H.NOT_AUTHORISED_V5
        assert b.refusal_reason("dev1", since) == "bad_signature"
    # ...and now dev1 is over its budget of 3: addresses that failed get no
    # signature check, whatever they send.
    for addr in attackers:
        for tok in (forged, cluster.token("dev1")):
            since = b.mark()
            assert _try(b, "dev1", tok, addr) in H.NOT_AUTHORISED_V5
            assert b.refusal_reason("dev1", since) == "rate_limited"
    # Other identities keep their own budget.
    assert _try(b, "dev2", cluster.token("dev2"), attackers[0]) == 0
    # The owner, from an address with no failure, gets in at once.
    assert _try(b, "dev1", cluster.token("dev1"), "127.0.2.1") == 0
