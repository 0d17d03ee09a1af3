"""test_custody_zones.py: the cluster head spreads custody shares over zones
and prefers powered devices (issue 9, docs/PROTOCOL.md "Custody: choosing
holders"), end to end.

Why this exists: the unit tests of ig_holders_choose show the algorithm; this
shows that the zones given at enrolment (`iotguard enroll --zone`, recorded
in the ledger) and the power the real agents report in their status
(`--battery-file`) are what the real broker's custody service chooses by.
"""
import json
import time

import pytest

import igharness as H

ZONES = {"north": ["n1", "n2", "n3"], "south": ["s1", "s2", "s3"], "west": ["w1", "w2", "w3"]}
LOW = {"n1", "s1", "w1"}   # a battery below the threshold: last choice, though first by uptime and id


@pytest.fixture
def cluster(tmp_path):
    c = H.Cluster(tmp_path / "cluster", "c1")
    c.enroll("admin1", "admin")
    c.enroll("mon1", "monitor")
    for zone, ids in ZONES.items():
        for d in ids:
            key, pk = c.keygen(d)
            H.cli("enroll", "--ledger", c.ledger, "--id", d, "--pubkey", pk, "--role", "device", "--zone", zone)
            c.ids[d] = H.Identity(d, "device", key, pk)
    start = len(H.ALL_BROKERS)
    agents = []
    yield c, agents
    for a in agents:
        a.stop(timeout=H.T(15))
    for b in H.ALL_BROKERS[start:]:
        if b.running:
            b.stop(verify=False)


def test_three_zones_n_six_two_shares_each_and_low_batteries_left_out(cluster, tmp_path):
    c, agents = cluster
    # The first deal happens as soon as 6 devices are online, before every
    # status is in; the rotation below deals with all 9 online and known.
    b = c.broker(custody_threshold=3, custody_shares=6, custody_deal_timeout_s=30).start()
    mon = b.connect("mon1")
    mon.subscribe_ok(c.topic("custody"))
    for zone, ids in ZONES.items():
        for d in ids:
            power = tmp_path / (d + ".power")
            power.write_text("5\n" if d in LOW else "mains\n")
            agents.append(H.start_agent(b, c, d, "--battery-file", power))
    mon.wait_message(c.topic("custody"), pred=lambda m: m.json().get("state") == "active", timeout=H.T(40))

    # Every agent's status (with its power) has reached the cluster head by
    # the next heartbeat; then deal a fresh epoch.
    st = json.loads(H.cli("custody", "status", "--json", "--host", "127.0.0.1", "--port", b.port,
                          "--cluster", c.name, "--user", "admin1", "--key", c.ids["admin1"].key).stdout)
    first = st["epoch"]
    time.sleep(H.T(2.5))
    H.cli("custody", "rotate", "--host", "127.0.0.1", "--port", b.port, "--cluster", c.name,
          "--user", "admin1", "--key", c.ids["admin1"].key)
    m = mon.wait_message(c.topic("custody"), pred=lambda m: m.json().get("state") == "active" and
                         m.json().get("epoch", 0) > first, timeout=H.T(40))
    st = m.json()
    H.schema_validate("custody", st)
    holders = st["holders"]
    assert len(holders) == 6, st
    per_zone = {}
    for h in holders:
        per_zone.setdefault(h["zone"], []).append(h["id"])
    assert {z: len(v) for z, v in per_zone.items()} == {"north": 2, "south": 2, "west": 2}, per_zone
    chosen = {h["id"] for h in holders}
    assert not chosen & LOW, "a device on a low battery was chosen over powered ones in its zone: %s" % sorted(chosen)
    # The ledger's record names the same holders (the state is rebuilt from it).
    mon.close()
    for a in agents:
        H.agent_stopped(a)
    agents.clear()
    b.stop()
    epochs = [e for e in c.show_json() if e["type"] == "custody_epoch"]
    assert set(epochs[-1]["holders"]) == chosen, epochs[-1]
    c.verify()
