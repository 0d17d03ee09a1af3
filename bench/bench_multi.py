#!/usr/bin/env python3
"""bench_multi.py: several brokers on one shared ledger, against one broker.

Why this exists: issue 11 promises that a cluster of brokers on one
PostgreSQL ledger (docs/LEDGER.md 16) behaves like one broker where it
matters: a revocation on one broker kicks the device on another within a
second (target p99 <= 200 ms), session keys flow between devices on
different brokers, and a connect costs a broker the same CPU as before. Only
measurements against the real processes say so, and each figure is printed
next to its one-broker counterpart from the same run:

1. broker CPU per authenticated connect: plain mosquitto (anonymous), the
   plugin in file mode, the plugin in shared mode (bench_connect's method:
   the broker's schedstat time per connect, a fresh token per connect);
2. session-key pairs per second (bench_keys): one broker in file mode, A and
   B on one shared broker, A on broker 1 and B on broker 3 (B's copy crosses
   the bridge);
3. revocation latency, admin revoke published on broker 1 -> the device's
   connection closed: device on broker 3 (the record travels through
   PostgreSQL: commit, NOTIFY, broker 3 follows, verifies and kicks) against
   device on broker 1.

What it starts (all on 127.0.0.1, free ports, stopped at the end even on
failure): a throwaway PostgreSQL (tests/pg/pgctl.sh), three mosquittos with
the plugin in shared mode (broker 1 the hub, brokers 2 and 3 leaves bridged
to it as docs/PROTOCOL.md "Several brokers" describes, with bridge-role
tokens), one mosquitto with the plugin in file mode and one plain
mosquitto. Identities are bench_scale's (dev-0000000.., mon-000; keys
derived from the id, benchmark-only) plus an admin and two bridges enrolled
with the CLI; the ledger goes into PostgreSQL with `iotguard migrate`.

The brokers with the plugin get max_inflight_messages 0 and
max_queued_messages 100000 (--broker-queue; 0 keeps Mosquitto's defaults of
20 and 1000): a bridge is one client connection carrying every
cross-broker message, and with the defaults its queue overflows and QoS 1
inbox messages are dropped under load (docs/SCALING.md, "The bridges").

Usage: IG_BUILD=BUILD /usr/bin/python3 bench/bench_multi.py [--revocations N] [--rounds R] [--quick]
RESULT lines (for bench/run.sh --shared): multi.connect.*, multi.keys_*, multi.revoke.*.
"""
import argparse
import os
import re
import resource
import select
import socket
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import igharness as H  # noqa: E402

BENCH = H.BUILD / "bench"
PGCTL = ROOT / "tests" / "pg" / "pgctl.sh"
CLUSTER = "bench"
DEVICES = 16384   # --identities
# Bridged topics (docs/PROTOCOL.md "Several brokers"), as the test harness bridges them.
from igmulti import BRIDGED_TOPICS  # noqa: E402
BRIDGED = [t.format(c=CLUSTER) for t in BRIDGED_TOPICS]


def say(*a):
    print(*a, flush=True)


def result(key, value):
    print("RESULT %s %s" % (key, value), flush=True)


def run(argv, **kw):
    p = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if p.returncode != 0:
        raise SystemExit("bench_multi: %s failed (%d):\n%s%s" % (" ".join(map(str, argv)), p.returncode,
                                                                 p.stdout[-2000:], p.stderr[-2000:]))
    return p.stdout


def percentile(xs, q):
    s = sorted(xs)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, int(round(q / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def cpu_ns(pid):
    """On-CPU time of every thread of pid (as bench_proc_cpu_ns: schedstat per task)."""
    total = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def mqtt_connect_packet(client_id, password):
    """MQTT 3.1.1 CONNECT, clean session, keepalive 600 s; username = client id."""
    def s(x):
        b = x.encode()
        return len(b).to_bytes(2, "big") + b
    flags = 0x02 | ((0x80 | 0x40) if password is not None else 0)
    var = s("MQTT") + bytes([4, flags]) + (600).to_bytes(2, "big")
    payload = s(client_id) + ((s(client_id) + s(password)) if password is not None else b"")
    body = var + payload
    n, rl = len(body), b""
    while True:
        d, n = n % 128, n // 128
        rl += bytes([d | (0x80 if n else 0)])
        if not n:
            break
    return b"\x10" + rl + body


def hold_connections(port, creds, use_creds, k, window=256):
    """Opens k connections, each CONNECT -> CONNACK 0, at most `window`
    handshakes at a time; returns (open sockets, refused count)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < k + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, k + 1024), hard))
    ep = select.epoll()
    pending, held, refused, nxt = {}, [], 0, 0
    deadline = time.monotonic() + 120
    while (nxt < k or pending) and time.monotonic() < deadline:
        while nxt < k and len(pending) < window:
            cid, tok = creds[nxt] if use_creds else ("anon-%07d" % nxt, None)
            sk = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sk.setblocking(False)
            sk.connect_ex(("127.0.0.1", port))
            pending[sk.fileno()] = [sk, mqtt_connect_packet(cid, tok), b""]
            ep.register(sk.fileno(), select.EPOLLOUT)
            nxt += 1
        for fd, ev in ep.poll(1.0):
            st = pending.get(fd)
            if st is None:
                continue
            sk = st[0]
            if ev & select.EPOLLOUT and st[1]:
                try:
                    sent = sk.send(st[1])
                    st[1] = st[1][sent:]
                except OSError:
                    ev |= select.EPOLLERR
                if not st[1]:
                    ep.modify(fd, select.EPOLLIN)
                continue
            try:
                st[2] += sk.recv(4 - len(st[2]))
            except BlockingIOError:
                continue
            except OSError:
                st[2] = b""
            if len(st[2]) >= 4 or ev & (select.EPOLLERR | select.EPOLLHUP) or not st[2]:
                ep.unregister(fd)
                del pending[fd]
                if len(st[2]) == 4 and st[2][0] == 0x20 and st[2][3] == 0:
                    held.append(sk)
                else:
                    refused += 1
                    sk.close()
    for fd, st in pending.items():
        st[0].close()
    ep.close()
    return held, refused


class Ledger:
    """What igharness.Broker needs of a cluster: a root, a name, tokens for
    the CLI-enrolled identities. The ledger's records live in PostgreSQL
    (shared brokers) or in `ledger` (the file-mode broker)."""

    def __init__(self, root):
        self.root = Path(root)
        self.name = CLUSTER
        self.ledger = self.root / "ledger"
        self.keys = {}

    def enroll(self, ident, role):
        key = self.root / (ident + ".key")
        pk = run([H.CLI, "keygen", "--out", key]).strip()
        run([H.CLI, "enroll", "--ledger", self.ledger, "--id", ident, "--pubkey", pk, "--role", role])
        self.keys[ident] = key

    def token(self, ident, ttl=None):
        ttl_arg = ["--ttl", str(ttl)] if ttl else []
        return run([H.CLI, "token", "--id", ident, "--key", self.keys[ident], "--cluster", CLUSTER]
                   + ttl_arg).strip()

    def verify(self):   # igharness.Broker.stop(verify=True) calls it; the shared ledger is checked below
        pass

    def topic(self, *levels):
        return "/".join(("iotguard", CLUSTER) + tuple(levels))


class BenchBroker(H.Broker):
    """igharness's broker with the log of the benchmarks (no per-packet debug
    lines, which would be most of what a broker does per message)."""

    def conf_text(self):
        return H.Broker.conf_text(self).replace(
            "log_type all\n", "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n")


class PlainBroker:
    """Mosquitto without a plugin (anonymous), with the same log settings."""

    def __init__(self, root):
        self.dir = Path(root) / "plain"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = H.free_port()
        conf = self.dir / "mosquitto.conf"
        lines = ["per_listener_settings false", "allow_anonymous true", "listener %d 127.0.0.1" % self.port,
                 "persistence false", "log_dest file %s" % (self.dir / "mosquitto.log"),
                 "log_type error", "log_type warning", "log_type notice", "log_type information",
                 "log_timestamp true", "log_timestamp_format %Y-%m-%dT%H:%M:%S"]
        if os.geteuid() == 0:
            lines.insert(0, "user root")
        conf.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([H.MOSQUITTO, "-c", str(conf)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        H.wait_for(lambda: self._accepts(), 10, what="plain mosquitto on port %d" % self.port)

    def _accepts(self):
        import socket
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Multi:
    def __init__(self, args):
        self.args = args
        self.root = Path(tempfile.mkdtemp(prefix="bench-multi-", dir=os.environ.get("TMPDIR", "/var/tmp")))
        self.pg_dir = self.root / "pg"
        self.brokers = []
        self.plain = None
        self.pg_started = False

    # ---- setup ----
    def setup(self):
        os.chmod(self.root, 0o711)   # the PostgreSQL server (user postgres) walks into pg/
        self.L = Ledger(self.root)
        run([BENCH / "bench_scale", "mkledger", "--dir", self.L.ledger, "--cluster", CLUSTER, "--devices", DEVICES,
             "--monitors", 2])
        t0 = time.monotonic()
        self.L.enroll("adm-000", "admin")
        for n in (2, 3):
            self.L.enroll("bridge-%d" % n, "bridge")
        port = H.free_port()
        self.pg_started = True
        self.dsn = run([PGCTL, "start", self.pg_dir, port]).strip().splitlines()[-1]
        say("PostgreSQL: %s (data in %s)" % (self.dsn, self.pg_dir))
        run([H.CLI, "migrate", "--ledger", self.L.ledger, "--dsn", self.dsn])
        say("iotguard migrate of %d identities into PostgreSQL: %.1f s" % (DEVICES, time.monotonic() - t0))
        opts_common = {"key_requests_per_minute": "10000000", "stats_interval": "1"}
        # broker 1: the hub; 2 and 3: leaves with a bridge to it
        for n in (1, 2, 3):
            keydir = self.root / ("keys-b%d" % n)
            keydir.mkdir(mode=0o700)
            shutil.copy2(self.L.ledger / "ch.key", keydir / "ch.key")
            os.chmod(keydir / "ch.key", 0o600)
            opts = dict(opts_common, ledger=str(keydir), ledger_dsn=self.dsn, broker_name="b%d" % n)
            b = BenchBroker(self.L, opts, name="b%d" % n)
            if self.args.broker_queue:
                # Mosquitto's per-client windows (max_inflight_messages 20,
                # max_queued_messages 1000 by default) also bound a bridge
                # connection, which carries every cross-broker message.
                b.extra_lines = ["max_inflight_messages 0", "max_queued_messages %d" % self.args.broker_queue]
            self.brokers.append(b)
        hub = self.brokers[0]
        hub.start()
        for n, b in ((2, self.brokers[1]), (3, self.brokers[2])):
            ident = "bridge-%d" % n
            b.extra_lines = b.extra_lines + ["connection to-hub", "address 127.0.0.1:%d" % hub.port,
                             "remote_clientid %s" % ident, "remote_username %s" % ident,
                             "remote_password %s" % self.L.token(ident, ttl=86400),
                             "cleansession true", "try_private true", "notifications false",
                             "bridge_protocol_version mqttv311"]
            b.extra_lines += ["topic %s both 1" % t for t in BRIDGED]
            b.start()
        for n in (2, 3):
            hub.wait_log(r"as bridge-%d\b" % n, timeout=15)
        self.file_broker = BenchBroker(self.L, dict(opts_common, ledger=str(self.L.ledger)), name="file")
        if self.args.broker_queue:
            self.file_broker.extra_lines = ["max_inflight_messages 0",
                                            "max_queued_messages %d" % self.args.broker_queue]
        self.file_broker.start()
        self.plain = PlainBroker(self.root)
        say("brokers: shared b1 (hub) :%d, b2 :%d, b3 :%d (bridged to b1); file-mode :%d; plain mosquitto :%d; %s"
            % (self.brokers[0].port, self.brokers[1].port, self.brokers[2].port, self.file_broker.port,
               self.plain.port, ("max_inflight_messages 0, max_queued_messages %d" % self.args.broker_queue)
               if self.args.broker_queue else "Mosquitto's default message windows"))
        # Memory of the state: every broker holds all of it; a shared one
        # also the writer thread's shadow copy for the re-check.
        time.sleep(0.5)
        rss = {"plain": status_kb(self.plain.proc.pid, "VmRSS"),
               "file": status_kb(self.file_broker.proc.pid, "VmRSS"),
               "shared": status_kb(self.brokers[1].proc.pid, "VmRSS")}
        say("broker VmRSS after start with %d identities: plain %d kB, file mode %d kB, shared mode (leaf b2) %d kB; "
            "per identity above plain: file %.0f bytes, shared %.0f bytes"
            % (DEVICES, rss["plain"], rss["file"], rss["shared"], (rss["file"] - rss["plain"]) * 1024.0 / DEVICES,
               (rss["shared"] - rss["plain"]) * 1024.0 / DEVICES))
        starts = {}
        for name, b in (("file", self.file_broker), ("shared", self.brokers[1])):
            m = b.wait_log(r"loaded in (\d+) ms", timeout=5)
            starts[name] = int(m.group(1))
        say("plugin start (its 'loaded in'): file mode %d ms, shared mode %d ms (reads every record from PostgreSQL)"
            % (starts["file"], starts["shared"]))
        result("multi.start.file_ms", starts["file"])
        result("multi.start.shared_ms", starts["shared"])
        result("multi.rss.identities", DEVICES)
        for k, v in rss.items():
            result("multi.rss.%s_kb" % k, v)
        result("multi.rss.file_per_identity_bytes", "%.0f" % ((rss["file"] - rss["plain"]) * 1024.0 / DEVICES))
        result("multi.rss.shared_per_identity_bytes", "%.0f" % ((rss["shared"] - rss["plain"]) * 1024.0 / DEVICES))

    def teardown(self):
        for b in self.brokers + [getattr(self, "file_broker", None)]:
            if b is not None and b.proc is not None and b.running:
                try:
                    b.stop(check=False, verify=False)
                except AssertionError as e:
                    say("bench_multi: %s" % e)
        if self.plain:
            self.plain.stop()
        if self.pg_started:
            subprocess.run([str(PGCTL), "stop", str(self.pg_dir), "immediate"], stdout=subprocess.DEVNULL)
        if os.environ.get("BENCH_MULTI_KEEP"):
            say("kept %s" % self.root)
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    # ---- 1. connect CPU ----
    def connect_cpu(self):
        rounds = self.args.rounds
        tokfiles = {}
        for name in ("file", "shared"):
            path = self.root / ("connect-%s.tokens" % name)
            with open(path, "w") as f:
                subprocess.run([str(BENCH / "bench_scale"), "tokens", "--cluster", CLUSTER, "--prefix", "dev",
                                "--count", "512", "--lines", str(self.args.token_lines), "--ttl", "600"],
                               stdout=f, check=True)
            tokfiles[name] = path
        shared = self.brokers[1]   # a leaf: it follows and bridges, like most brokers of a cluster
        argv = [BENCH / "bench_connect", "--concurrency", 64, "--rounds", rounds, "--duration",
                self.args.seconds, "--warmup", 0.5,
                "--target", "anon:%d:anon:512" % self.plain.port,
                "--target", "file:%d:file:%s" % (self.file_broker.port, tokfiles["file"]),
                "--target", "shared:%d:file:%s" % (shared.port, tokfiles["shared"]),
                "--pid", "anon=%d" % self.plain.proc.pid, "--pid", "file=%d" % self.file_broker.proc.pid,
                "--pid", "shared=%d" % shared.proc.pid,
                "--ratio", "shared/file:1.0", "--ratio", "file/anon:0.48", "--ratio", "shared/anon:0.48"]
        say("\n== connect: broker CPU per authenticated connect, plain / file mode / shared mode ==")
        out = run(argv)
        for line in out.splitlines():
            m = re.match(r"RESULT connect\.(\S+) (\S+)", line)
            if m:
                result("multi.connect." + m.group(1), m.group(2))
            else:
                print(line)
        sys.stdout.flush()

    # ---- 2. session keys ----
    def keys(self):
        b1, b3 = self.brokers[0], self.brokers[2]
        runs = [("keys_file", self.file_broker, None, "one broker, file mode"),
                ("keys_same", b1, None, "A and B on shared broker b1"),
                ("keys_cross", b1, b3, "A on b1, B on b3 (through the bridge)")]
        rates = {}
        for prefix, a, b, what in runs:
            say("\n== session keys: %s ==" % what)
            argv = [BENCH / "bench_keys", "--port", a.port, "--cluster", CLUSTER, "--pairs", self.args.pairs,
                    "--window", 4, "--duration", self.args.keys_seconds, "--warmup", 1, "--pid", a.proc.pid,
                    "--goal", 0, "--probe", 1.5, "--result-prefix", "multi." + prefix]
            if b is not None:
                argv += ["--peer-port", b.port]
            p = subprocess.run([str(x) for x in argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            sys.stdout.write(p.stdout)
            sys.stdout.flush()
            m = re.search(r"^RESULT multi\.%s\.pairs_per_s (\S+)" % prefix, p.stdout, re.M)
            rates[prefix] = float(m.group(1)) if m else 0.0
            if p.returncode != 0:
                say("bench_multi: bench_keys (%s) exited %d" % (what, p.returncode))
        if not rates.get("keys_cross"):
            say("session-key pairs across brokers: none (see bench_keys' errors above: the key service of A's broker "
                "refuses a peer it does not see connected)")
        elif rates.get("keys_same"):
            r = rates["keys_cross"] / rates["keys_same"]
            say("session-key pairs: across brokers / one shared broker = %.2f" % r)
            result("multi.keys.ratio_cross_same", "%.3f" % r)
        if rates.get("keys_file"):
            r = rates["keys_same"] / rates["keys_file"]
            say("session-key pairs: one shared broker / one file-mode broker = %.2f" % r)
            result("multi.keys.ratio_same_file", "%.3f" % r)

    # ---- 3. revocation latency ----
    def revocations(self):
        """Idle brokers first (cross and same interleaved), then the same with
        b3 busy: a device on b3 publishing status every 2 ms, as a broker
        with traffic has. Mosquitto 2.0.11 sleeps up to 100 ms in epoll_wait
        when no client sends anything, and the plugin follows the ledger from
        its tick, so on an idle broker that wait is most of the latency."""
        n = self.args.revocations
        b1, b3 = self.brokers[0], self.brokers[2]
        first = DEVICES - 3 * n - 1   # ids far from bench_keys' and hold's; revoked for good
        toks = run([BENCH / "bench_scale", "tokens", "--cluster", CLUSTER, "--prefix", "dev", "--count", DEVICES,
                    "--ttl", 600]).splitlines()
        tok = dict(line.split(" ", 1) for line in toks)
        mtok = run([BENCH / "bench_scale", "tokens", "--cluster", CLUSTER, "--prefix", "mon", "--count", 1,
                    "--ttl", 600]).split(" ", 1)[1].strip()
        mon = H.Mqtt(b3, "mon-000", password=mtok)
        if mon.connect() != 0:
            raise SystemExit("bench_multi: mon-000 could not connect to b3")
        mon.subscribe_ok(self.L.topic("stats"), qos=0)
        admin = H.Admin(b1, "adm-000")
        lat = {"cross": [], "same": [], "cross_busy": []}
        plan = [("cross" if i % 2 == 0 else "same") for i in range(2 * n)] + ["cross_busy"] * n
        say("\n== revocation: admin revoke on b1 -> device's connection closed (%d each; idle brokers, then b3 busy) =="
            % n)
        busy, stop_busy = None, threading.Event()
        try:
            for i, kind in enumerate(plan):
                if kind == "cross_busy" and busy is None:
                    bid = "dev-%07d" % (first + len(plan))
                    bc = H.Mqtt(b3, bid, password=tok[bid])
                    if bc.connect() != 0:
                        raise SystemExit("bench_multi: %s could not connect to b3" % bid)
                    topic = self.L.topic("dev", bid, "status")

                    def pump(bc=bc, topic=topic):
                        while not stop_busy.wait(0.002):
                            bc.c.publish(topic, b"x" * 96, qos=0)
                    busy = (bc, threading.Thread(target=pump, daemon=True))
                    busy[1].start()
                    time.sleep(0.3)
                dev = "dev-%07d" % (first + i)
                where = b1 if kind == "same" else b3
                c = H.Mqtt(where, dev, password=tok[dev])
                rc = c.connect()
                if rc != 0:
                    raise SystemExit("bench_multi: %s could not connect to %s: CONNACK %s" % (dev, where.name, rc))
                time.sleep(0.05)
                t0 = time.monotonic()
                (cor,) = admin.send({"command": "revoke", "id": dev, "reason": "bench"})
                c._wait(lambda: c.disconnected_at is not None, 5.0, "the revoke to close the connection")
                lat[kind].append((c.disconnected_at - t0) * 1000.0)
                c.close()
                admin.m.wait_message(H.ADMIN_RESPONSE, pred=lambda m: any(
                    r.get("correlation") == cor for r in m.json().get("responses", [])), timeout=5)
                admin.m.clear()
        finally:
            stop_busy.set()
            if busy:
                busy[1].join(timeout=2)
                busy[0].close()
            admin.close()
        lags = [m.json().get("shared", {}).get("follow_lag_ms") for m in mon.take(self.L.topic("stats"))]
        lags = [x for x in lags if isinstance(x, (int, float))]
        mon.close()
        for kind, label in (("cross", "device on b3, brokers idle (through PostgreSQL)"),
                            ("cross_busy", "device on b3, b3 busy (2 ms traffic)"),
                            ("same", "device on b1 (same broker)")):
            xs = lat[kind]
            say("revoke -> kicked, %s: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d)"
                % (label, percentile(xs, 50), percentile(xs, 99), max(xs), len(xs)))
            result("multi.revoke.%s_p50_ms" % kind, "%.1f" % percentile(xs, 50))
            result("multi.revoke.%s_p99_ms" % kind, "%.1f" % percentile(xs, 99))
            result("multi.revoke.%s_max_ms" % kind, "%.1f" % max(xs))
        if lags:
            say("b3's stats, shared.follow_lag_ms (another broker's COMMIT -> applied here), over the run: "
                "median %.1f ms, max %.1f ms (%d stats messages)" % (percentile(lags, 50), max(lags), len(lags)))
            result("multi.revoke.follow_lag_p50_ms", "%.1f" % percentile(lags, 50))
        worst = max(percentile(lat["cross"], 99), percentile(lat["cross_busy"], 99))
        say("target p99 <= 200 ms across brokers: %s" % ("PASS" if worst <= 200 else "MISS"))

    # ---- 4. idle connections held ----
    def hold(self):
        """K authenticated idle connections (keepalive 600 s) on one broker:
        the broker's RSS and CPU per connection, plain / file / shared."""
        k = self.args.hold
        say("\n== held connections: %d idle authenticated clients per broker, RSS and CPU per connection ==" % k)
        toks = run([BENCH / "bench_scale", "tokens", "--cluster", CLUSTER, "--prefix", "dev", "--count", k,
                    "--ttl", 600]).splitlines()
        creds = [line.split(" ", 1) for line in toks]
        per = {}
        for name, port, pid, use_creds in (("plain", self.plain.port, self.plain.proc.pid, False),
                                           ("file", self.file_broker.port, self.file_broker.proc.pid, True),
                                           ("shared", self.brokers[1].port, self.brokers[1].proc.pid, True)):
            rss0 = status_kb(pid, "VmRSS")
            cpu0 = cpu_ns(pid)
            t0 = time.monotonic()
            socks, refused = hold_connections(port, creds, use_creds, k)
            dt = time.monotonic() - t0
            time.sleep(1.0)
            rss1 = status_kb(pid, "VmRSS")
            cpu1 = cpu_ns(pid)
            for sk in socks:
                sk.close()
            n = len(socks)
            rss_per = (rss1 - rss0) * 1024.0 / n if n else 0.0
            cpu_per = (cpu1 - cpu0) / 1e3 / n if n else 0.0
            per[name] = rss_per
            say("%-6s: %d held (%d refused) in %.1f s; broker VmRSS %d -> %d kB = %.0f bytes/connection; "
                "broker CPU %.0f us/connection (connect + auth)" % (name, n, refused, dt, rss0, rss1, rss_per, cpu_per))
            result("multi.hold.%s.connections" % name, n)
            result("multi.hold.%s.rss_per_conn_bytes" % name, "%.0f" % rss_per)
            result("multi.hold.%s.cpu_us" % name, "%.1f" % cpu_per)
            time.sleep(1.0)   # let the broker reap the closed sessions before the next one counts

    def check_ledger(self):
        p = subprocess.run([str(H.CLI), "verify", "--dsn", self.dsn], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        say("\niotguard verify --dsn after the run: exit %d%s" % (p.returncode, "" if p.returncode == 0 else
                                                                    "\n" + p.stdout[-1500:]))
        result("multi.verify_exit", p.returncode)


def main():
    global DEVICES
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--revocations", type=int, default=40, help="revocations per kind (cross, same)")
    ap.add_argument("--rounds", type=int, default=5, help="connect rounds")
    ap.add_argument("--seconds", type=float, default=1.5, help="seconds per connect round")
    ap.add_argument("--pairs", type=int, default=100, help="session-key pairs")
    ap.add_argument("--keys-seconds", type=float, default=4.0, help="session-key timed window")
    ap.add_argument("--token-lines", type=int, default=65536, help="tokens per connect target")
    ap.add_argument("--hold", type=int, default=15000, help="idle connections held per broker")
    ap.add_argument("--broker-queue", type=int, default=100000,
                    help="give the brokers with the plugin max_inflight_messages 0 and max_queued_messages N "
                         "(0: Mosquitto's defaults, 20 and 1000, which bound what a bridge carries)")
    ap.add_argument("--identities", type=int, default=DEVICES, help="devices in the ledger (>= 16384)")
    ap.add_argument("--quick", action="store_true", help="3 rounds of 1 s, 20 revocations each, 3 s of keys")
    ap.add_argument("--only", default="connect,keys,revoke,hold", help="subset: connect,keys,revoke,hold")
    args = ap.parse_args()
    if args.identities < 16384:
        ap.error("--identities must be at least 16384")
    DEVICES = args.identities
    if args.quick:
        args.rounds, args.seconds, args.revocations, args.keys_seconds = 3, 1.0, 20, 3.0
    if not 1 <= args.revocations <= 200:
        ap.error("--revocations must be in 1..200")
    if not 100 <= args.hold <= DEVICES - 3 * args.revocations - 2:
        ap.error("--hold must be in 100..%d (ids above are the revocations')" % (DEVICES - 3 * args.revocations - 2))
    for f in (BENCH / "bench_connect", BENCH / "bench_keys", BENCH / "bench_scale", H.CLI, H.PLUGIN):
        if not Path(f).exists():
            raise SystemExit("bench_multi: %s is missing: build first (IG_BUILD=%s)" % (f, H.BUILD))
    m = Multi(args)
    say("== bench_multi: %s, %d cpus, load average %s ==" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                                             os.cpu_count(), open("/proc/loadavg").read().split()[:3]))
    try:
        m.setup()
        only = set(args.only.split(","))
        if "connect" in only:
            m.connect_cpu()
        if "keys" in only:
            m.keys()
        if "revoke" in only:
            m.revocations()
        if "hold" in only:
            m.hold()
        m.check_ledger()
    finally:
        m.teardown()


if __name__ == "__main__":
    main()
