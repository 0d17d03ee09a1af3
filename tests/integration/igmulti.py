"""igmulti.py: several real brokers on one shared ledger, for the integration tests.

Why this exists: issue 11's promises (a revocation on one broker cuts a
device on another, a coin or a join code is won exactly once whichever
brokers race for it, devices survive the loss of their broker, nothing
acknowledged is lost when the database fails over) only mean something
with the real pieces together: a PostgreSQL 15 primary (and a synchronous
standby) from tests/pg/pgctl.sh, three mosquittos with the plugin in
shared mode, the leaves bridged to a hub with bridge-role identities
(docs/PROTOCOL.md, "Several brokers") and Debian's HAProxy in front.
igharness.py starts one broker and its clients; this module adds the
database, the bridges and the load balancer around it, on free 127.0.0.1
ports, and stops every process it started, also when a test or the start
itself fails (and at interpreter exit, as a last resort).

Environment, besides igharness.py's:
    IG_HAPROXY   the haproxy binary (default /usr/sbin/haproxy)
"""
import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

import igharness as H

PGCTL = H.ROOT / "tests" / "pg" / "pgctl.sh"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
HAPROXY = os.environ.get("IG_HAPROXY", "/usr/sbin/haproxy")

# Every server this module started and has not stopped yet: the atexit
# hook stops them if a fixture could not (an interrupted run).
_LIVE = []


def _stop_leftovers():
    for thing in list(_LIVE):
        try:
            thing.stop()
        except Exception:
            pass


atexit.register(_stop_leftovers)


def _tail(path, lines=40):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no %s)" % path


# ---- PostgreSQL --------------------------------------------------------------------------------

class PgServer:
    """One throwaway PostgreSQL 15 server (tests/pg/pgctl.sh) on a free port.

    Its directory is under /tmp, not under pytest's tmp_path: the server runs
    as the 'postgres' user, which cannot traverse pytest's 0700 directories."""

    def __init__(self, name="pg", keep_log=None):
        self.root = Path(tempfile.mkdtemp(prefix="igmulti-%s-" % name))
        os.chmod(self.root, 0o755)
        self.dir = self.root / "data"
        self.keep_log = Path(keep_log) if keep_log else None   # server.log is copied here on stop
        self.port = H.free_port()
        self.dsn = None
        self.running = False

    def _pgctl(self, *args, timeout=60):
        p = subprocess.run(["bash", str(PGCTL)] + [str(a) for a in args], capture_output=True, text=True,
                           timeout=H.T(timeout), stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise AssertionError("pgctl.sh %s exited %d\nstdout: %s\nstderr: %s\n--- server log ---\n%s" % (
                " ".join(str(a) for a in args), p.returncode, p.stdout, p.stderr, self.log()))
        return p.stdout.strip()

    def start(self):
        _LIVE.append(self)
        self.dsn = self._pgctl("start", self.dir, self.port)
        self.running = True
        return self

    def start_standby(self, primary):
        """A streaming standby of primary; the primary then commits synchronously."""
        _LIVE.append(self)
        self.dsn = self._pgctl("standby", self.dir, self.port, primary.port)
        self.running = True
        return self

    def promote(self):
        self._pgctl("promote", self.dir)

    def kill(self):
        """SIGKILL the postmaster: a crash, as far as the clients can tell."""
        self._pgctl("kill", self.dir)
        self.running = False

    def stop(self, mode="immediate"):
        if self in _LIVE:
            _LIVE.remove(self)
        try:
            if self.dir.exists():
                self._pgctl("stop", self.dir, mode)
        finally:
            self.running = False
            if self.keep_log and (self.dir / "server.log").exists():
                shutil.copyfile(self.dir / "server.log", self.keep_log)
            shutil.rmtree(self.root, ignore_errors=True)

    def dsn_for(self, dbname):
        return "host=127.0.0.1 port=%d dbname=%s user=postgres" % (self.port, dbname)

    def psql(self, sql, db="iotguard"):
        """Runs sql over TCP (trust auth) and returns psql's unaligned output."""
        p = subprocess.run([str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                            "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql, db],
                           capture_output=True, text=True, timeout=H.T(30), stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise AssertionError("psql %r on port %d exited %d: %s" % (sql, self.port, p.returncode, p.stderr))
        return p.stdout.strip()

    def log(self, lines=30):
        if not (self.dir / "server.log").exists() and self.keep_log:
            return _tail(self.keep_log, lines)
        return _tail(self.dir / "server.log", lines)


def multi_host_dsn(*servers):
    """libpq's multi-host form: the first server that accepts writes wins."""
    return ("host=%s port=%s dbname=iotguard user=postgres target_session_attrs=read-write connect_timeout=2" %
            (",".join("127.0.0.1" for _ in servers), ",".join(str(s.port) for s in servers)))


# ---- HAProxy -------------------------------------------------------------------------------------

class HAProxy:
    """Debian's HAProxy in TCP mode in front of the brokers (docs/PROTOCOL.md,
    "Several brokers"): health checks every 200 ms, a dead broker is marked
    down at its first failed check and its sessions shut, and a connection
    that fails is redispatched to another broker.

    It stands in for a Broker wherever a test hands one to a client
    (port, cluster, diagnostics(), connect(), client()), so a client or an
    agent connects through it exactly as it would to a broker."""

    connect = H.Broker.connect
    client = H.Broker.client

    def __init__(self, root, brokers, cluster):
        self.dir = Path(root)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cfg = self.dir / "haproxy.cfg"
        self.logfile = self.dir / "haproxy.log"
        self.sock = self.dir / "haproxy.sock"
        self.brokers = list(brokers)
        self.cluster = cluster
        self.port = H.free_port()
        self.proc = None

    def conf_text(self):
        servers = ["    server %s 127.0.0.1:%d check" % (b.opts.get("broker_name", "b%d" % i), b.port)
                   for i, b in enumerate(self.brokers, 1)]
        return "\n".join([
            "global",
            "    log stdout format raw local0 info",
            "    stats socket %s mode 600 level admin" % self.sock,
            "    maxconn 4096",
            "",
            "defaults",
            "    mode tcp",
            "    log global",
            "    option tcplog",
            "    option redispatch",
            "    retries 3",
            "    timeout connect 1s",
            "    timeout client 10m",
            "    timeout server 10m",
            "",
            "frontend mqtt",
            "    bind 127.0.0.1:%d" % self.port,
            "    default_backend brokers",
            "",
            "backend brokers",
            "    balance leastconn",
            "    default-server inter 200ms fastinter 100ms downinter 200ms fall 1 rise 2 "
            "on-marked-down shutdown-sessions",
            *servers,
            ""])

    def start(self):
        self.cfg.write_text(self.conf_text())
        chk = subprocess.run([HAPROXY, "-c", "-f", str(self.cfg)], capture_output=True, text=True,
                             timeout=H.T(10))
        assert chk.returncode == 0, "haproxy refuses its configuration:\n%s%s" % (chk.stdout, chk.stderr)
        self._out = open(self.logfile, "ab")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(self.cfg)], stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True)
        _LIVE.append(self)
        H.wait_for(lambda: self._accepts() or self.proc.poll() is not None, H.T(10), what="haproxy to listen")
        assert self.proc.poll() is None, "haproxy exited %s\n%s" % (self.proc.returncode, self.diagnostics())
        H.wait_for(lambda: (lambda st: len(st) == len(self.brokers) and all(v == "UP" for v in st.values()))(
            self.states()), H.T(10),
                   what="haproxy to see every broker up")
        return self

    def _accepts(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def command(self, cmd):
        """One command on the stats socket; returns its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(H.T(5))
            s.connect(str(self.sock))
            s.sendall(cmd.encode() + b"\n")
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        return out.decode(errors="replace")

    def states(self):
        """{server name: 'UP' | 'DOWN' | ...} as HAProxy's checks see them
        ({} while its stats socket is not there yet)."""
        try:
            lines = self.command("show stat").splitlines()
        except (FileNotFoundError, ConnectionRefusedError):
            return {}
        if not lines or not lines[0].startswith("# "):
            return {}
        head = lines[0][2:].split(",")
        out = {}
        for line in lines[1:]:
            row = dict(zip(head, line.split(",")))
            if row.get("pxname") == "brokers" and row.get("svname") not in ("BACKEND", "FRONTEND", None):
                out[row["svname"]] = row.get("status", "").split(" ")[0]
        return out

    def stop(self):
        if self in _LIVE:
            _LIVE.remove(self)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=H.T(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_out", None):
            self._out.close()
            self._out = None

    def diagnostics(self, lines=30):
        return "--- haproxy log (tail) ---\n%s" % _tail(self.logfile, lines)


# ---- the world: database, brokers, bridges, load balancer ------------------------------------------

# Identities most tests need; the bridge identities are added when there are leaves.
STANDARD_IDS = [("admin1", "admin"), ("admin2", "admin"), ("mon1", "monitor"), ("an1", "analyst"),
                ("an2", "analyst")] + [("dev%d" % i, "device") for i in range(1, 13)]

# The device traffic a leaf bridges to the hub, all both ways at QoS 1
# (docs/PROTOCOL.md, "Several brokers"); {c} is the cluster name.
BRIDGED_TOPICS = ("iotguard/{c}/dev/+/inbox", "iotguard/{c}/dev/+/status", "iotguard/{c}/dev/+/data/#",
                  "iotguard/{c}/dev/+/results/#", "iotguard/{c}/m2m/#", "iotguard/{c}/bridge/nonces")

BRIDGE_TOKEN_TTL = 86400
BRIDGE_EXAMPLE = H.ROOT / "config" / "bridge-leaf.conf"
# The example's TLS lines for the hub's listener; the test hub listens in plaintext.
BRIDGE_TLS_OPTIONS = {"bridge_cafile", "bridge_capath", "bridge_certfile", "bridge_keyfile", "bridge_insecure",
                      "bridge_tls_version", "bridge_alpn", "bridge_identity", "bridge_psk"}


class SharedCluster(H.Cluster):
    """A cluster whose ledger was made as files (igharness), then migrated
    into PostgreSQL; from then on the CLI reads it with --dsn and offline
    writes to the old files are refused here, since no broker would see them."""

    def __init__(self, root, name="c1"):
        super().__init__(root, name)
        self.dsn = None

    def migrate(self, dsn):
        out = H.cli("migrate", "--ledger", self.ledger, "--dsn", dsn, timeout=H.T(60)).stdout
        self.dsn = dsn
        return out

    def source(self):
        return ["--dsn", self.dsn] if self.dsn else ["--ledger", self.ledger]

    def enroll(self, ident, role="device"):
        assert self.dsn is None, "offline enrolment after the migration: use the admin API"
        return super().enroll(ident, role)

    def revoke_offline(self, ident, reason="test"):
        assert self.dsn is None, "offline revocation after the migration: use the admin API"
        return super().revoke_offline(ident, reason)

    def verify(self):
        p = H.cli("verify", *self.source(), check=False, timeout=H.T(60))
        assert p.returncode == 0, "iotguard verify %s failed (%d): %s %s" % (
            " ".join(self.source()), p.returncode, p.stdout, p.stderr)
        return p.stdout

    def show_json(self):
        out = H.cli("show", *self.source(), "--json", timeout=H.T(60)).stdout
        return [H.json.loads(line) for line in out.splitlines() if line.strip()]

    def key_dir(self, where):
        """A broker's copy of the key directory: ch.key only (docs/LEDGER.md 16)."""
        d = Path(where)
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
        shutil.copy2(self.ledger / "ch.key", d / "ch.key")
        os.chmod(d / "ch.key", 0o600)
        return d


class World:
    """PostgreSQL (+ optional synchronous standby), n brokers in shared mode
    (b1 the hub; b2.. leaves bridged to it as br2..), HAProxy in front.

    start() brings everything up and waits until a device message crosses
    every bridge; stop() stops everything it started, then raises what failed."""

    def __init__(self, root, name="c1", ids=STANDARD_IDS, nbrokers=3, standby=False, bridges=True,
                 haproxy=True, credits=(), broker_opts=None, shared=True):
        self.root = Path(root)
        self.name = name
        self.ids = list(ids)
        self.nbrokers = nbrokers
        self.want_standby = standby
        self.want_bridges = bridges and nbrokers > 1
        self.want_haproxy = haproxy
        self.credits = list(credits)
        self.broker_opts = dict(broker_opts or {})
        self.shared = shared            # False: every broker on its own file ledger (plumbing checks)
        self.pg = None
        self.standby = None
        self.cluster = None
        self.brokers = []
        self.lb = None
        self.dsn = None
        self.bridge_ids = []

    # -- start --
    def start(self):
        if self.shared and H.PRELOAD:
            # Seen on Debian 12 (glibc 2.36, gcc 12): any uninstrumented program
            # that loads libpq with libasan preloaded hangs on glibc's locale
            # locks (bindtextdomain in PQconnectdb, freelocale at exit), with
            # or without the plugin; google/sanitizers#1270. The ASan-linked
            # unit tests (test_pg, test_ledger_pg) run that code under ASan.
            pytest.skip("shared mode cannot run with IG_BROKER_PRELOAD: libpq in a broker with libasan "
                        "preloaded deadlocks in glibc's locale locks (google/sanitizers#1270)")
        _LIVE.append(self)
        try:
            self._start()
        except BaseException:
            print(self.diagnostics())
            self.stop(check=False)
            raise
        return self

    def _start(self):
        t0 = time.monotonic()
        # The database starts (initdb: seconds on a busy machine) while the
        # CLI writes the file ledger that is then migrated into it.
        db_error = []
        db = threading.Thread(target=self._start_db, args=(db_error,), daemon=True)
        if self.shared:
            self.root.mkdir(parents=True, exist_ok=True)
            self.pg = PgServer("pg1", keep_log=self.root / "pg1-server.log")
            if self.want_standby:
                self.standby = PgServer("pg2", keep_log=self.root / "pg2-server.log")
            db.start()
        try:
            c = self.cluster = SharedCluster(self.root / "cluster", self.name)
            for ident, role in self.ids:
                c.enroll(ident, role)
            if self.want_bridges:
                for i in range(2, self.nbrokers + 1):
                    c.enroll("br%d" % i, "bridge")
                    self.bridge_ids.append("br%d" % i)
            for ident, amount in self.credits:
                H.cli("credit", "--ledger", c.ledger, "--id", ident, "--amount", amount)
        finally:
            if self.shared:
                db.join()
        if db_error:
            raise db_error[0]
        if self.shared:
            self.dsn = multi_host_dsn(self.pg, self.standby) if self.standby else self.pg.dsn
            c.migrate(self.dsn)
        t_db = time.monotonic()
        for i in range(1, self.nbrokers + 1):
            self.brokers.append(self._make_broker(i))
        for b in self.brokers:
            b.start(wait=False)
        for b in self.brokers:
            b.wait_ready()
        if self.want_haproxy:
            self.lb = HAProxy(self.root / "haproxy", self.brokers, c).start()
        if self.want_bridges:
            self.wait_bridged()
        self.startup = {"ledger": t_db - t0, "brokers": time.monotonic() - t_db}
        print("world up: database + ledger %.2f s, brokers + bridges + haproxy %.2f s" %
              (self.startup["ledger"], self.startup["brokers"]))

    def _start_db(self, errors):
        try:
            self.pg.start()
            if self.standby:
                self.standby.start_standby(self.pg)
        except BaseException as e:
            errors.append(e)

    def _make_broker(self, i):
        c = self.cluster
        name = "b%d" % i
        opts = {"stats_interval": "1"}
        if self.shared:
            opts.update({"ledger": str(c.key_dir(c.root / name / "keys")), "ledger_dsn": self.dsn,
                         "broker_name": name})
        else:
            d = self.root / name / "ledger"
            shutil.copytree(c.ledger, d)
            opts["ledger"] = str(d)
        opts.update(self.broker_opts)
        b = H.Broker(c, opts, name=name)
        b.name = name
        if self.shared:
            b.cluster = c
        if self.want_bridges:
            # As config/bridge-leaf.conf says for every broker of a cluster:
            # small bridged messages (nonce batches) are not held by Nagle.
            b.extra_lines = ["set_tcp_nodelay true"]
            if i > 1:
                b.extra_lines += self.bridge_lines("br%d" % i)
        return b

    def bridge_lines(self, ident):
        """The leaf's bridge to the hub: the documented config/bridge-leaf.conf's
        bridge section, with this cluster's names, the hub's plaintext test
        listener (no bridge_ TLS lines) and a fresh bridge token."""
        hub = self.brokers[0]
        tok = self.cluster.token(ident, ttl=BRIDGE_TOKEN_TTL)
        text = BRIDGE_EXAMPLE.read_text()
        assert "\nconnection hub\n" in text, "config/bridge-leaf.conf has no 'connection hub' section"
        lines = []
        for line in text[text.index("\nconnection hub\n") + 1:].splitlines():
            line = line.strip()
            if not line or line.startswith("#") or line.split()[0] in BRIDGE_TLS_OPTIONS:
                continue
            key = line.split()[0]
            if key == "address":
                line = "address 127.0.0.1:%d" % hub.port
            elif key in ("remote_clientid", "remote_username"):
                line = "%s %s" % (key, ident)
            elif key == "remote_password":
                line = "remote_password %s" % tok
            elif key == "topic":
                line = line.replace("iotguard/demo/", "iotguard/%s/" % self.cluster.name)
            lines.append(line)
        topics = sorted(ln.split()[1] for ln in lines if ln.startswith("topic "))
        want = sorted(t.format(c=self.cluster.name) for t in BRIDGED_TOPICS)
        assert topics == want, "config/bridge-leaf.conf bridges %r, docs/PROTOCOL.md says %r" % (topics, want)
        return lines

    @property
    def hub(self):
        return self.brokers[0]

    def broker(self, n):
        """Broker n, counting from 1 as the issue does."""
        return self.brokers[n - 1]

    def wait_bridged(self, timeout=None, brokers=None):
        """Until a data message published on each broker reaches a monitor on
        every other one: the bridges are up and subscribed both ways."""
        c = self.cluster
        brokers = [b for b in (brokers or self.brokers) if b.running]
        topic = c.topic("dev", "+", "data", "+")
        mons, probes = [], []
        try:
            for b in brokers:
                m = b.connect("mon1")
                m.subscribe_ok(topic)
                mons.append(m)
            for i, b in enumerate(brokers):
                probes.append(b.connect("dev%d" % (i + 1)))
            want = {("probe-%s" % b.name).encode() for b in brokers}

            def crossed():
                for i, p in enumerate(probes):
                    p.publish_async(c.topic("dev", "dev%d" % (i + 1), "data", "probe"),
                                    ("probe-%s" % brokers[i].name).encode())
                got = [{msg.payload for msg in m.take(topic)} for m in mons]
                return all(want <= g for g in got)
            H.wait_for(crossed, timeout or H.T(20), interval=0.25, what="device messages to cross every bridge")
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, self.diagnostics()))
        finally:
            for cl in mons + probes:
                cl.close()

    # -- ledger --
    def records(self, rtype=None):
        recs = self.cluster.show_json()
        return [r for r in recs if rtype is None or r["type"] == rtype]

    # -- evidence and teardown --
    def diagnostics(self):
        parts = []
        for b in self.brokers:
            parts.append("===== broker %s (port %d) =====\n%s" % (getattr(b, "name", "?"), b.port, b.diagnostics()))
        if self.lb:
            parts.append("===== haproxy (port %d) =====\n%s" % (self.lb.port, self.lb.diagnostics()))
        for pg, what in ((self.pg, "primary"), (self.standby, "standby")):
            if pg:
                parts.append("===== PostgreSQL %s (port %d) =====\n%s" % (what, pg.port, pg.log()))
        return "\n".join(parts)

    # `with World(...) as w:` (a module fixture yields w inside it): starts
    # the world, prints every process's log tail if the block fails, and
    # always stops it.
    def __enter__(self):
        return self.start()

    def __exit__(self, etype, exc, tb):
        if etype is not None:
            print(self.diagnostics())
        self.stop()

    def stop(self, check=True):
        """Stops the brokers (SIGTERM: each must exit 0), HAProxy and the
        database; the ledger is verified while the database still runs."""
        if self in _LIVE:
            _LIVE.remove(self)
        while H.ALL_CLIENTS:
            H.ALL_CLIENTS.pop().close()
        errors = []
        for b in self.brokers:
            if b.proc is None or b.finished:
                continue
            try:
                b.stop(check=check, verify=False)
            except AssertionError as e:
                errors.append(str(e))
            except Exception as e:
                errors.append("broker %s: %r" % (b.name, e))
        if self.lb:
            self.lb.stop()
        if check and not errors and self.cluster is not None and (self.cluster.dsn or not self.shared):
            try:
                if self.shared:
                    self.cluster.verify()
            except AssertionError as e:
                errors.append(str(e))
        for pg in (self.standby, self.pg):
            if pg:
                try:
                    pg.stop("immediate")
                except AssertionError as e:
                    errors.append(str(e))
        if errors and check:
            raise AssertionError("\n\n".join(errors))
