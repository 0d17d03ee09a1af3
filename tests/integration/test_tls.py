"""TLS and message size in the documented setup (issue 7, section 3), against
a real broker.

Why this exists: connection tokens and join codes are bearer credentials, so
the README and demo.sh run the broker with a TLS listener whose CA and
server certificate tools/mkcerts.sh makes. These tests run that setup: the
agent connects with --tls-ca, mosquitto_sub with --cafile, a client that
does not trust the CA gets nowhere, and a plaintext listener (still
allowed) is named in a warning in the broker log at start, as is a missing
message_size_limit.
"""
import os
import re
import socket
import stat
import subprocess

import pytest

import igharness as H

MKCERTS = H.ROOT / "tools" / "mkcerts.sh"
SIZE_LIMIT = 131072     # the documented message_size_limit


def mkcerts(d, *names):
    r = subprocess.run([str(MKCERTS), str(d)] + list(names), capture_output=True, text=True, timeout=H.T(60))
    assert r.returncode == 0, "mkcerts.sh failed: %s %s" % (r.stdout, r.stderr)
    return r.stdout


@pytest.fixture
def certs(tmp_path):
    d = tmp_path / "certs"
    mkcerts(d)
    return d


def tls_broker(cluster, certs, plaintext=False, size_limit=True):
    """A broker whose listener on b.port is TLS (and, with plaintext, a
    second, plaintext listener on b.plain_port)."""
    b = cluster.broker()
    b.listener_lines = ["listener %d 127.0.0.1" % b.port, "certfile %s" % (certs / "server.crt"),
                        "keyfile %s" % (certs / "server.key")]
    if plaintext:
        b.plain_port = H.free_port()
        b.listener_lines.append("listener %d 127.0.0.1" % b.plain_port)
    if size_limit:
        b.extra_lines.append("message_size_limit %d" % SIZE_LIMIT)
    return b.start()


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class PlainSide:
    """The broker as seen through its plaintext listener (for H.Mqtt)."""

    def __init__(self, b):
        self.b, self.port = b, b.plain_port

    def diagnostics(self):
        return self.b.diagnostics()


def agent(b, cluster, ident, *extra, port=None):
    return H.Proc([H.AGENT, "--host", "127.0.0.1", "--port", port or b.port, "--cluster", cluster.name,
                   "--id", ident, "--key", cluster.ids[ident].key, "--heartbeat", "1"] + [str(e) for e in extra],
                  name="agent-" + ident)


def test_mkcerts_makes_a_ca_and_a_server_certificate_for_localhost(tmp_path):
    d = tmp_path / "c"
    out = mkcerts(d, "broker.example", "10.1.2.3")
    assert "certfile %s" % (d / "server.crt") in out and "keyfile %s" % (d / "server.key") in out
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    for key in ("ca.key", "server.key"):
        assert stat.S_IMODE(os.stat(d / key).st_mode) == 0o600, key
    text = subprocess.run(["openssl", "x509", "-in", str(d / "server.crt"), "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    for san in ("IP Address:127.0.0.1", "DNS:localhost", "DNS:broker.example", "IP Address:10.1.2.3"):
        assert san in text, "%s missing from the certificate:\n%s" % (san, text)
    assert re.search(r"Subject: CN\s*=\s*127\.0\.0\.1", text)
    v = subprocess.run(["openssl", "verify", "-CAfile", str(d / "ca.crt"), str(d / "server.crt")],
                       capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr
    # Run again: the CA and the certificate are kept, not replaced.
    before = (d / "ca.crt").read_bytes(), (d / "server.crt").read_bytes()
    mkcerts(d)
    assert ((d / "ca.crt").read_bytes(), (d / "server.crt").read_bytes()) == before


def test_agent_and_mosquitto_sub_over_tls(cluster, certs, tmp_path):
    b = tls_broker(cluster, certs)
    log = b.log()
    assert "has no TLS" not in log, log
    assert "message_size_limit" not in re.sub(r"Note: It is recommended.*", "", log), log
    assert "every network listener (1) uses TLS" in log, log

    dev = agent(b, cluster, "dev1", "--tls-ca", certs / "ca.crt", "--ping")
    sub = None
    try:
        dev.wait_line(r"connected to 127\.0\.0\.1:%d" % b.port, timeout=H.T(15))
        dev.wait_line(r"pong received: nonce [0-9a-f]+ matches", timeout=H.T(10))
        assert "(TLS)" in dev.text()
        sub = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(b.port), "--cafile",
                              str(certs / "ca.crt"), "-i", "mon1", "-u", "mon1", "-P", cluster.token("mon1"),
                              "-t", cluster.topic("dev", "dev1", "status"), "-C", "1", "-W", str(int(H.T(10)))],
                             capture_output=True, text=True, timeout=H.T(10) + 10)
    finally:
        rc = dev.stop()
    assert rc == 0, dev.text()[-2000:]
    assert sub.returncode == 0, sub.stderr
    status = H.json.loads(sub.stdout)
    H.schema_validate("status", status)
    assert (status["id"], status["state"]) == ("dev1", "online")

    # A client that does not trust the CA gets no connection, and is told where to look.
    other = tmp_path / "other"
    mkcerts(other)
    stranger = agent(b, cluster, "dev2", "--tls-ca", other / "ca.crt")
    try:
        stranger.wait_line(r"check --tls-ca and the broker's certificate", timeout=H.T(15))
    finally:
        stranger.stop()
    assert "connected to" not in stranger.text()
    plain = agent(b, cluster, "dev3")   # no --tls-ca: plaintext MQTT against the TLS port
    try:
        plain.wait_line(r"(connection lost|connection failed|no CONNACK)", timeout=H.T(20))
    finally:
        plain.stop()
    assert "connected to" not in plain.text()


@pytest.mark.vg
def test_plaintext_listener_is_named_in_a_warning_at_start(cluster, certs):
    b = tls_broker(cluster, certs, plaintext=True)
    warned = b.wait_log(r"iotguard: listener port (\d+) on 127\.0\.0\.1 has no TLS: connection tokens .* "
                        r"Add certfile and keyfile to it")
    assert int(warned.group(1)) == b.plain_port
    assert "listener port %d on 127.0.0.1 has no TLS" % b.port not in b.log()
    # Plaintext still works: a Python client connects on the plaintext listener
    # (which may start a moment after the TLS one that wait_ready saw).
    H.wait_for(lambda: port_open(b.plain_port), H.T(10), what="the plaintext listener")
    c = H.Mqtt(PlainSide(b), "dev1", password=cluster.token("dev1"))
    assert c.connect() == 0


def test_missing_message_size_limit_is_warned_about(cluster):
    b = cluster.broker().start()     # the harness's plain listener, no message_size_limit
    b.wait_log(r"iotguard: listener port %d on 127\.0\.0\.1 has no TLS" % b.port)
    b.wait_log(r"iotguard: no message_size_limit in \S+: any client may publish messages of up to 256 MiB\. "
               r"Set message_size_limit 131072")


def test_documented_message_size_limit_passes_the_largest_iotguard_message(cluster):
    """131072 bytes: above a full data message (65536-byte payload + 250) and
    a 64 KiB admin request, and a larger publish is dropped by the broker."""
    b = cluster.broker()
    b.extra_lines.append("message_size_limit %d" % SIZE_LIMIT)
    b.start()
    mon = b.connect("mon1")
    mon.subscribe_ok(cluster.topic("dev", "dev1", "data", "+"))
    d = b.connect("dev1", v5=False)   # paho 1.6.1's v5 parser chokes on the broker's 0x97 PUBACK
    largest = 6 + 203 + 1 + 24 + 65536 + 16
    topic = cluster.topic("dev", "dev1", "data", "big")
    d.publish(topic, b"IGD1" + bytes(largest - 4))
    got = mon.wait_message(topic)
    assert len(got.payload) == largest
    start = len(mon.messages)
    d.publish_async(topic, bytes(SIZE_LIMIT + 1))
    mon.no_message(topic, within=H.T(1.5), pred=lambda m: len(m.payload) > SIZE_LIMIT)
    assert all(len(m.payload) <= SIZE_LIMIT for m in mon.messages[start:])
