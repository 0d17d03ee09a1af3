"""igharness.py: real processes for the integration tests.

Why this exists: iotguard's promises (who may connect, who may read what,
that an acknowledged enrolment survives a crash) only mean something
against the real broker, the real plugin, the real CLI and real MQTT
clients. This module starts and stops those processes, waits for them
properly (no fixed sleeps where a condition can be awaited), and keeps the
evidence (broker log, stderr) so a failing test says why. Nothing here
mocks the broker.

Environment:
    IG_BUILD            build directory (default <repo>/build)
    IG_BROKER_WRAPPER   command prefix for the broker, e.g. "valgrind ..."
    IG_BROKER_PRELOAD   library to LD_PRELOAD into the broker (libasan.so)
    IG_SLOW             1 = slow mode (timeouts x5), N > 1 = timeouts xN
"""
import json
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import igtoken

ROOT = Path(__file__).resolve().parents[2]


def _build_dir():
    b = Path(os.environ.get("IG_BUILD", "") or (ROOT / "build"))
    return b if b.is_absolute() else (ROOT / b)


BUILD = _build_dir()
CLI = BUILD / "tools" / "iotguard"
AGENT = BUILD / "agents" / "iotguard-agent"
PLUGIN = BUILD / "broker-plugin" / "mosquitto_iotguard.so"
MOSQUITTO = os.environ.get("IG_MOSQUITTO", "/usr/sbin/mosquitto")
WRAPPER = shlex.split(os.environ.get("IG_BROKER_WRAPPER", ""))
PRELOAD = os.environ.get("IG_BROKER_PRELOAD", "")


def _slow_factor():
    raw = os.environ.get("IG_SLOW", "").strip()
    try:
        v = float(raw) if raw else 0.0
    except ValueError:
        v = 1.0
    f = 1.0 if v <= 0 else (5.0 if v == 1 else v)
    if WRAPPER:
        f = max(f, 6.0)
    elif PRELOAD:
        f = max(f, 2.0)
    return f


SLOW = _slow_factor()


def T(seconds):
    """A timeout scaled for slow (sanitizer / valgrind) runs."""
    return seconds * SLOW


def wait_for(cond, timeout, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def id_valid(s):
    """The identity alphabet: 1..64 of [A-Za-z0-9_.-]."""
    return bool(s) and len(s) <= 64 and all(ch.isascii() and (ch.isalnum() or ch in "_.-") for ch in s)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- the CLI ---------------------------------------------------------------

class CliError(AssertionError):
    pass


def cli(*args, check=True, timeout=None, env=None):
    """Runs `iotguard ARGS`; returns the CompletedProcess (text)."""
    argv = [str(CLI)] + [str(a) for a in args]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout or T(30),
                       env=env, stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise CliError("%s exited %d\nstdout: %s\nstderr: %s" %
                       (" ".join(argv), p.returncode, p.stdout, p.stderr))
    return p


class Identity:
    def __init__(self, ident, role, key, pubkey):
        self.id = ident
        self.role = role
        self.key = key
        self.pubkey = pubkey

    def __repr__(self):
        return "Identity(%s, %s)" % (self.id, self.role)


class Cluster:
    """A ledger directory plus the identities' key files."""

    def __init__(self, root, name="c1", ledger_format=None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.ledger = self.root / "ledger"
        self.keys = self.root / "keys"
        self.keys.mkdir(exist_ok=True)
        fmt = ["--format", str(ledger_format)] if ledger_format else []
        out = cli("init", "--ledger", self.ledger, "--cluster", name, *fmt).stdout.strip()
        assert re.fullmatch(r"[0-9a-f]{64}", out), "init must print only the CH public key: %r" % out
        self.ch_pubkey = out
        self.ids = {}
        self._brokers = 0

    def keygen(self, ident):
        path = self.keys / (ident + ".key")
        if path.exists():
            path.unlink()
        pk = cli("keygen", "--out", path).stdout.strip()
        assert re.fullmatch(r"[0-9a-f]{64}", pk), "keygen must print only the public key: %r" % pk
        assert (path.stat().st_mode & 0o077) == 0, "key file must be mode 0600"
        return path, pk

    def enroll(self, ident, role="device"):
        """Offline enrolment (broker stopped)."""
        key, pk = self.keygen(ident)
        cli("enroll", "--ledger", self.ledger, "--id", ident, "--pubkey", pk, "--role", role)
        idn = Identity(ident, role, key, pk)
        self.ids[ident] = idn
        return idn

    def new_key(self, ident, role="device"):
        """A key for an identity that is not (yet) enrolled."""
        key, pk = self.keygen(ident)
        idn = Identity(ident, role, key, pk)
        self.ids[ident] = idn
        return idn

    def revoke_offline(self, ident, reason="test"):
        cli("revoke", "--ledger", self.ledger, "--id", ident, "--reason", reason)

    def token(self, ident, ttl=None, key=None, cluster=None):
        args = ["token", "--id", ident, "--key", key or self.ids[ident].key,
                "--cluster", cluster or self.name]
        if ttl is not None:
            args += ["--ttl", ttl]
        tok = cli(*args).stdout.strip()
        assert tok.startswith("igt1.") and "\n" not in tok, "token must print only the token"
        return tok

    def mint(self, ident, key=None, cluster=None, **kw):
        """A token crafted in Python (igtoken), any claims allowed."""
        return igtoken.mint(str(key or self.ids[ident].key), cluster or self.name, ident, **kw)

    def verify(self):
        p = cli("verify", "--ledger", self.ledger, check=False)
        assert p.returncode == 0, "iotguard verify failed (%d): %s %s" % (p.returncode, p.stdout, p.stderr)
        return p.stdout

    def show_json(self):
        out = cli("show", "--ledger", self.ledger, "--json").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def broker(self, **opts):
        self._brokers += 1
        return Broker(self, opts, name="broker%d" % self._brokers)

    def topic(self, *levels):
        return "/".join(("iotguard", self.name) + tuple(levels))


# ---- the broker ------------------------------------------------------------

ALL_BROKERS = []
ALL_CLIENTS = []


class BrokerExited(AssertionError):
    pass


class Broker:
    """A real mosquitto with the iotguard plugin, on a free local port."""

    def __init__(self, cluster, opts=None, name="broker", extra_lines=()):
        self.cluster = cluster
        self.dir = cluster.root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "mosquitto.conf"
        self.logfile = self.dir / "mosquitto.log"
        self.errfile = self.dir / "stderr.log"
        self.port = free_port()
        self.opts = {"ledger": str(cluster.ledger), "stats_interval": "1", "auth_fail_limit": "0"}
        for k, v in (opts or {}).items():
            if v is None:
                self.opts.pop(k, None)
            else:
                self.opts[k] = str(v)
        self.extra_lines = list(extra_lines)
        # The listener block; a test may replace it (e.g. a TLS listener on
        # self.port: wait_ready only needs the TCP port to accept).
        self.listener_lines = ["listener %d 127.0.0.1" % self.port]
        self.extra_env = {}   # e.g. {"IOTGUARD_FORCE_XCHACHA": "1"}, applied at start()
        self.proc = None
        self.finished = False
        self.starts = 0
        ALL_BROKERS.append(self)

    # -- configuration --
    def conf_text(self):
        lines = [
            "per_listener_settings false",
            "allow_anonymous false",
            *self.listener_lines,
            "persistence false",
            "log_dest file %s" % self.logfile,
            "log_type all",
            "log_timestamp true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            "plugin %s" % PLUGIN,
        ]
        if os.geteuid() == 0:
            # Stay root: the ledger and log files belong to the test user.
            lines.insert(0, "user root")
        lines += ["plugin_opt_%s %s" % (k, v) for k, v in self.opts.items()]
        lines += self.extra_lines
        return "\n".join(lines) + "\n"

    def write_conf(self):
        self.conf.write_text(self.conf_text())

    # -- lifecycle --
    def env(self):
        env = os.environ.copy()
        env.update(self.extra_env)
        if PRELOAD:
            env["LD_PRELOAD"] = PRELOAD
            # mosquitto itself is not instrumented: its own allocations at
            # exit are not ours to judge, so leak checking is off for it.
            env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=0:exitcode=86"
            env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        return env

    def start(self, wait=True):
        assert PLUGIN.exists(), "plugin not built: %s" % PLUGIN
        self.write_conf()
        self.finished = False
        self.starts += 1
        self._err = open(self.errfile, "ab")
        self._err.write(("--- start %d ---\n" % self.starts).encode())
        self._err.flush()
        argv = WRAPPER + [MOSQUITTO, "-c", str(self.conf)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._err,
                                     stderr=subprocess.STDOUT, env=self.env(), start_new_session=True)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=None):
        deadline = time.monotonic() + (timeout or T(15))
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerExited("broker exited %s during start\n%s" % (self.proc.returncode, self.diagnostics()))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("broker did not accept connections on port %d\n%s" % (self.port, self.diagnostics()))

    def wait_exit(self, timeout=None):
        """For a broker expected to exit on its own (a refused start)."""
        try:
            return self.proc.wait(timeout=timeout or T(15))
        finally:
            self._close_err()
            self.finished = True

    def _close_err(self):
        if getattr(self, "_err", None):
            self._err.close()
            self._err = None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def hup(self):
        self.proc.send_signal(signal.SIGHUP)

    def kill9(self):
        self.proc.kill()
        self.proc.wait(timeout=T(10))
        self._close_err()
        self.finished = True

    def stop(self, check=True, verify=True):
        """SIGTERM; asserts a clean exit (0) and, after it, an intact ledger."""
        if self.proc is None or self.finished:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=T(20))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._close_err()
                raise AssertionError("broker ignored SIGTERM for %.0fs\n%s" % (T(20), self.diagnostics()))
        self._close_err()
        rc = self.proc.returncode
        if check:
            assert rc == 0, "broker exited %d after SIGTERM (want 0)\n%s" % (rc, self.diagnostics())
        if verify:
            self.cluster.verify()
        return rc

    # -- evidence --
    def log(self):
        try:
            return self.logfile.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stderr(self):
        try:
            return self.errfile.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def diagnostics(self, lines=40):
        log = self.log().splitlines()[-lines:]
        err = self.stderr().splitlines()[-lines:]
        return "--- broker log (tail) ---\n%s\n--- broker stderr (tail) ---\n%s" % ("\n".join(log), "\n".join(err))

    def mark(self):
        return len(self.log())

    def wait_log(self, pattern, since=0, timeout=None):
        rx = re.compile(pattern)
        deadline = time.monotonic() + (timeout or T(5))
        while True:
            m = rx.search(self.log(), since)
            if m:
                return m
            if time.monotonic() >= deadline:
                raise AssertionError("broker log has no match for %r\n%s" % (pattern, self.diagnostics()))
            time.sleep(0.03)

    def refusal_reason(self, client_id, since=0, timeout=None):
        """The reason on the plugin's refusal line for client_id."""
        m = self.wait_log(r"refused connection from \S+ \(client id %s, username [^)]*\): (\w+)"
                          % re.escape(client_id), since, timeout)
        return m.group(1)

    # -- clients --
    def client(self, ident, **kw):
        return Mqtt(self, ident, **kw)

    def connect(self, ident, token=None, v5=True, **kw):
        """A connected client for an enrolled identity (asserts success)."""
        c = Mqtt(self, ident, password=token or self.cluster.token(ident), v5=v5, **kw)
        rc = c.connect()
        assert rc == 0, "%s could not connect: CONNACK %s\n%s" % (ident, rc, self.diagnostics())
        return c


# ---- MQTT clients (paho 1.6.1) ---------------------------------------------

NOT_AUTHORISED_V5 = {0x86, 0x87}   # bad user name or password / not authorized
NOT_AUTHORISED_V311 = {4, 5}


def _rc_value(rc):
    return rc.value if hasattr(rc, "value") else int(rc)


class Message:
    def __init__(self, m):
        self.topic = m.topic
        self.payload = m.payload
        self.retain = bool(m.retain)
        self.qos = m.qos
        self.time = time.monotonic()

    def json(self):
        return json.loads(self.payload.decode())

    def __repr__(self):
        return "Message(%s, %r%s)" % (self.topic, self.payload[:200], ", retained" if self.retain else "")


class Mqtt:
    """A paho client with blocking helpers. Never reconnects on its own."""

    def __init__(self, broker, client_id, username="__same__", password=None, v5=True,
                 auth_method=None, auth_data=None, will=None, keepalive=30, bind_address=""):
        self.broker = broker
        self.bind_address = bind_address   # a loopback source address, e.g. "127.0.0.2"
        self.client_id = client_id
        self.v5 = v5
        self.c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
        if username == "__same__":
            username = client_id if password is not None else None
        if username is not None or password is not None:
            self.c.username_pw_set(username, password)
        self.props = None
        if auth_method is not None:
            self.props = Properties(PacketTypes.CONNECT)
            self.props.AuthenticationMethod = auth_method
            if auth_data is not None:
                self.props.AuthenticationData = auth_data.encode() if isinstance(auth_data, str) else auth_data
        if will:
            self.c.will_set(*will)
        self.keepalive = keepalive
        self.connack = None
        self.disconnected_at = None
        self.disconnect_rc = None
        self.messages = []
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._subacks = {}
        self._pubacks = set()
        self._looping = False
        ALL_CLIENTS.append(self)
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_publish = self._on_publish
        # Reconnects would blur what a test observes; no automatic retries.
        self.c.reconnect_delay_set(min_delay=3600, max_delay=3600)

    # callbacks run on paho's thread
    def _on_connect(self, client, userdata, flags, rc, properties=None):
        with self._cv:
            self.connack = _rc_value(rc)
            self._cv.notify_all()

    def _on_disconnect(self, client, userdata, rc, properties=None):
        with self._cv:
            self.disconnected_at = time.monotonic()
            self.disconnect_rc = _rc_value(rc)
            self._cv.notify_all()

    def _on_message(self, client, userdata, m):
        with self._cv:
            self.messages.append(Message(m))
            self._cv.notify_all()

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        with self._cv:
            self._subacks[mid] = [_rc_value(g) for g in granted]
            self._cv.notify_all()

    def _on_publish(self, client, userdata, mid):
        with self._cv:
            self._pubacks.add(mid)
            self._cv.notify_all()

    def _wait(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        with self._cv:
            while not cond():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s: timed out after %.1fs waiting for %s" % (self.client_id, timeout, what))
                self._cv.wait(left)

    def connect(self, timeout=None):
        """Sends CONNECT and returns the CONNACK code (0 = accepted).
        On success the network loop keeps running in a thread."""
        timeout = timeout or T(10)
        if self.v5:
            self.c.connect("127.0.0.1", self.broker.port, self.keepalive, clean_start=True, properties=self.props,
                           bind_address=self.bind_address)
        else:
            self.c.connect("127.0.0.1", self.broker.port, self.keepalive, bind_address=self.bind_address)
        deadline = time.monotonic() + timeout
        while self.connack is None and self.disconnected_at is None:
            if time.monotonic() > deadline:
                raise AssertionError("%s: no CONNACK within %.1fs\n%s" % (self.client_id, timeout, self.broker.diagnostics()))
            rc = self.c.loop(timeout=0.05)
            if rc not in (mqtt.MQTT_ERR_SUCCESS,) and self.connack is None and self.disconnected_at is None:
                # Connection dropped without CONNACK.
                if rc in (mqtt.MQTT_ERR_CONN_LOST, mqtt.MQTT_ERR_NO_CONN):
                    break
        if self.connack is None:
            return -1
        if self.connack == 0:
            self.c.loop_start()
            self._looping = True
        else:
            # Let paho notice the close; never retry.
            try:
                self.c.disconnect()
            except Exception:
                pass
        return self.connack

    @property
    def connected(self):
        return self.connack == 0 and self.disconnected_at is None

    def subscribe(self, topic, qos=1, timeout=None):
        """Returns the SUBACK codes (v5 reason codes, or v3 granted QoS / 0x80)."""
        rc, mid = self.c.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS, "subscribe could not be sent: %d" % rc
        self._wait(lambda: mid in self._subacks, timeout or T(5), "SUBACK for %s" % topic)
        return self._subacks[mid]

    def subscribe_ok(self, topic, qos=1):
        codes = self.subscribe(topic, qos)
        assert codes[0] < 0x80, "%s: subscribe %s refused (0x%02x)\n%s" % (
            self.client_id, topic, codes[0], self.broker.diagnostics())
        return codes

    def publish(self, topic, payload, qos=1, retain=False, timeout=None):
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload)
        info = self.c.publish(topic, payload, qos=qos, retain=retain)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, "publish could not be sent: %d" % info.rc
        if qos > 0:
            self._wait(lambda: info.mid in self._pubacks, timeout or T(5), "PUBACK for %s" % topic)
        return info.mid

    def publish_async(self, topic, payload, qos=1):
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload)
        return self.c.publish(topic, payload, qos=qos)

    def acked(self, mid):
        with self._lock:
            return mid in self._pubacks

    def take(self, topic=None):
        with self._lock:
            return [m for m in self.messages if topic is None or mqtt.topic_matches_sub(topic, m.topic)]

    def clear(self):
        with self._lock:
            self.messages.clear()

    def wait_message(self, topic=None, pred=None, timeout=None, start=0):
        """The first message (index >= start) matching topic filter and pred."""
        found = []

        def cond():
            for m in self.messages[start:]:
                if topic is not None and not mqtt.topic_matches_sub(topic, m.topic):
                    continue
                if pred is not None:
                    try:
                        if not pred(m):
                            continue
                    except Exception:
                        continue
                found.append(m)
                return True
            return False
        self._wait(cond, timeout or T(5), "a message on %s" % (topic or "any topic"))
        return found[0]

    def no_message(self, topic=None, within=1.0, pred=None):
        """Asserts that no matching message arrives for `within` seconds."""
        time.sleep(within)
        got = [m for m in self.take(topic) if pred is None or pred(m)]
        assert not got, "%s: unexpected message(s): %r" % (self.client_id, got)

    def wait_disconnect(self, timeout=None):
        self._wait(lambda: self.disconnected_at is not None, timeout or T(5), "disconnect")
        return self.disconnected_at

    def close(self):
        try:
            if self.connected:
                self.c.disconnect()
        except Exception:
            pass
        if self._looping:
            self.c.loop_stop()
            self._looping = False


def try_connect(broker, client_id, password=None, username="__same__", v5=True, **kw):
    """Connects once and closes; returns the CONNACK code."""
    c = Mqtt(broker, client_id, username=username, password=password, v5=v5, **kw)
    try:
        return c.connect()
    finally:
        c.close()


def refused_code(v5):
    return NOT_AUTHORISED_V5 if v5 else NOT_AUTHORISED_V311


# ---- admin API over raw MQTT ----------------------------------------------

ADMIN_TOPIC = "$CONTROL/iotguard/v1"
ADMIN_RESPONSE = "$CONTROL/iotguard/v1/response"


class Admin:
    """An admin speaking the $CONTROL/iotguard/v1 API directly."""

    def __init__(self, broker, ident):
        self.m = broker.connect(ident)
        self.m.subscribe_ok(ADMIN_RESPONSE)
        self._n = 0

    def send(self, *commands):
        """Publishes one request; returns the correlation ids used."""
        cors = []
        cmds = []
        for c in commands:
            c = dict(c)
            if "correlation" not in c:
                self._n += 1
                c["correlation"] = "c%d-%f" % (self._n, time.time())
            cors.append(c["correlation"])
            cmds.append(c)
        self.m.publish(ADMIN_TOPIC, {"commands": cmds})
        return cors

    def request(self, *commands, timeout=None):
        """Sends commands; returns the parsed response message {"responses": [...]}."""
        cors = self.send(*commands)

        def match(m):
            rs = m.json().get("responses", [])
            return [r.get("correlation") for r in rs] == cors
        return self.m.wait_message(ADMIN_RESPONSE, pred=match, timeout=timeout or T(10)).json()

    def one(self, command, timeout=None, **fields):
        d = {"command": command}
        d.update(fields)
        return self.request(d, timeout=timeout)["responses"][0]

    def close(self):
        self.m.close()


# ---- other processes ------------------------------------------------------

class Proc:
    """A background process whose output lines are collected."""

    def __init__(self, argv, env=None, name="proc"):
        self.name = name
        self.lines = []
        self._lock = threading.Lock()
        self.p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        for line in self.p.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def text(self):
        with self._lock:
            return "\n".join(self.lines)

    def wait_line(self, pattern, timeout=None):
        rx = re.compile(pattern)
        return wait_for(lambda: rx.search(self.text()), timeout or T(10), what="%s output %r; got:\n%s"
                        % (self.name, pattern, self.text()[-2000:]))

    def stop(self, sig=signal.SIGTERM, timeout=None):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout=timeout or T(10))
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                raise AssertionError("%s ignored signal %d\n%s" % (self.name, sig, self.text()[-2000:]))
        self._t.join(timeout=2)
        return self.p.returncode


def mosquitto_sub_argv(broker, ident, token, topics, extra=()):
    argv = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-i", ident, "-u", ident, "-P", token]
    for t in topics:
        argv += ["-t", t]
    return argv + list(extra)


def mosquitto_sub_once(broker, ident, token, topic, extra=(), timeout=10, password_arg=True):
    argv = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-i", ident, "-t", topic,
            "-C", "1", "-W", str(int(T(timeout)))]
    if password_arg:
        argv += ["-u", ident, "-P", token]
    argv += list(extra)
    return subprocess.run(argv, capture_output=True, text=True, timeout=T(timeout) + 10)


def schema_validate(name, obj):
    """Validates obj with schema/validate.py's validate(name, obj)."""
    import importlib.util
    path = ROOT / "schema" / "validate.py"
    assert path.exists(), "schema/validate.py is missing"
    mod = _schema_mod.get("m")
    if mod is None:
        spec = importlib.util.spec_from_file_location("ig_schema_validate", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _schema_mod["m"] = mod
    mod.validate(name, obj)


_schema_mod = {}


def drain(q):
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


# ---- helpers the test modules share ---------------------------------------------------------

POLICY = ROOT / "config" / "policy.json"


def write_policy(path, mutate=None):
    """Writes config/policy.json to path, after mutate(policy) if given."""
    pol = json.loads(POLICY.read_text())
    if mutate:
        mutate(pol)
    path.write_text(json.dumps(pol, indent=2))
    return path


def watcher(broker, cluster, ident="mon1", topics=("stats", "ledger/events")):
    """A monitor subscribed to the given topics (relative to iotguard/C/)."""
    m = broker.connect(ident)
    for t in topics:
        m.subscribe_ok(cluster.topic(*t.split("/")))
    return m


def next_stats(mon, cluster, pred=lambda s: True, timeout=None):
    """The next stats message (after now) for which pred holds, schema-checked."""
    start = len(mon.messages)
    s = mon.wait_message(cluster.topic("stats"), start=start, pred=lambda m: pred(m.json()),
                         timeout=timeout or T(8)).json()
    schema_validate("stats", s)
    return s


def events(mon, cluster, rtype=None):
    """The ledger events mon captured (and takes them), of type rtype if given."""
    out = [m.json() for m in mon.take(cluster.topic("ledger", "events"))]
    return [e for e in out if rtype is None or e["type"] == rtype]


def wait_event(mon, cluster, pred, timeout=None):
    """The first captured ledger event for which pred holds, schema-checked."""
    e = mon.wait_message(cluster.topic("ledger", "events"), pred=lambda m: pred(m.json()),
                         timeout=timeout or T(5)).json()
    schema_validate("ledger-event", e)
    return e


def validate_captured(*clients, cluster):
    """Every JSON message the clients captured, against its schema; returns
    how many messages of each schema:type (:error code) were among them."""
    names = [("stats", "stats"), ("ledger/events", "ledger-event"), ("ledger/head", "ledger-head"),
             ("dev/+/status", "status"), ("dev/+/inbox", "inbox")]
    seen = {}
    for c in clients:
        for m in c.take():
            for rel, schema in names:
                if mqtt.topic_matches_sub(cluster.topic(*rel.split("/")), m.topic):
                    j = m.json()
                    schema_validate(schema, j)
                    key = "%s:%s" % (schema, j.get("type", j.get("state", "")))
                    if j.get("type") == "error":
                        key += ":" + j["error"]
                    seen[key] = seen.get(key, 0) + 1
    return seen


def start_agent(broker, cluster, ident, *extra, key=None):
    """The real iotguard-agent for ident (its enrolled key unless key is
    given), heartbeat 1 s, with extra arguments appended."""
    key = cluster.ids[ident].key if key is None else key
    return Proc([AGENT, "--host", "127.0.0.1", "--port", broker.port, "--cluster", cluster.name,
                 "--id", ident, "--key", key, "--heartbeat", "1"] + [str(e) for e in extra],
                name="agent-" + ident)


def agent_stopped(proc):
    """Stops an agent, asserts it exited 0, and returns its output."""
    rc = proc.stop()
    assert rc == 0, "%s exited %s\n%s" % (proc.name, rc, proc.text()[-3000:])
    return proc.text()
