"""test_dashboard_config.py: `iotguard dashboard-config` writes the page's trust anchor.

Why this exists: the dashboard verifies every signed head against the key in
its config.json (docs/DASHBOARD.md). A wrong key there makes the page either
trust a forger or distrust the real cluster head, so the file must carry
exactly the key `iotguard init` printed and exactly the policy's witnesses;
must never be cut from a tampered ledger; must be readable by the broker's
user (0644, whatever the umask) and replaced whole; and a mistake (no ledger,
a bad URL) must say what to do. The key it writes is checked against the
ledger's own signed checkpoint with the independent verifier in tests/tlog.
"""
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import igharness as H

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tlog"))
import note  # noqa: E402


def run(*args, umask=None):
    """The CLI with a chosen umask (the mode written must not depend on it)."""
    old = os.umask(umask) if umask is not None else None
    try:
        return subprocess.run([str(H.CLI), "dashboard-config", *[str(a) for a in args]], capture_output=True,
                              text=True, timeout=H.T(30), stdin=subprocess.DEVNULL)
    finally:
        if old is not None:
            os.umask(old)


@pytest.fixture
def world(tmp_path):
    c = H.Cluster(tmp_path / "cluster", "demo")
    c.enroll("admin1", "admin")
    vkeys = []
    for w in ("w1", "w2", "w3"):
        idn = c.enroll(w, "witness")
        vkeys.append(H.cli("witness", "--print-vkey", "--id", w, "--key", idn.key).stdout.strip())
    policy = H.write_policy(tmp_path / "policy.json",
                            lambda p: p.update(witnesses={"keys": vkeys, "quorum": 2}))
    return c, vkeys, policy


def test_stdout_carries_the_genesis_key_and_nothing_else(world):
    c, _, _ = world
    p = run("--ledger", c.ledger)
    assert p.returncode == 0, p.stderr
    cfg = json.loads(p.stdout)
    assert cfg == {"cluster": "demo", "ch_pubkey": c.ch_pubkey}, cfg
    H.schema_validate("dashboard-config", cfg)
    # The pinned key is the one the ledger's signed checkpoint verifies under.
    text = (c.ledger / "checkpoint").read_text()
    log_key = note.Verifier("iotguard/" + cfg["cluster"], 0x01, bytes.fromhex(cfg["ch_pubkey"]))
    origin, size, _, _ = note.verify_checkpoint(text, log_key)
    assert origin == "iotguard/demo" and size >= 1


def test_policy_witnesses_url_and_out_file_0644(world, tmp_path):
    c, vkeys, policy = world
    out = tmp_path / "http" / "config.json"
    out.parent.mkdir()
    out.write_text("old contents")
    out.chmod(0o600)
    p = run("--ledger", c.ledger, "--policy", policy, "--url", "wss://broker.example.org:8081/", "--out", out,
            umask=0o077)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "", "with --out nothing goes to stdout"
    assert "wrote %s" % out in p.stderr
    cfg = json.loads(out.read_text())
    assert cfg == {"cluster": "demo", "ch_pubkey": c.ch_pubkey, "witnesses": {"keys": vkeys, "quorum": 2},
                   "url": "wss://broker.example.org:8081/"}, cfg
    H.schema_validate("dashboard-config", cfg)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644, oct(out.stat().st_mode)
    assert sorted(x.name for x in out.parent.iterdir()) == ["config.json"], "no temporary file left behind"
    # The vkeys written are the witnesses' keys as the independent parser reads them.
    assert [note.parse_vkey(v).name for v in cfg["witnesses"]["keys"]] == ["w1", "w2", "w3"]


def test_policy_without_witnesses_adds_none(world):
    c, _, _ = world
    p = run("--ledger", c.ledger, "--policy", H.ROOT / "config" / "policy.json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"cluster": "demo", "ch_pubkey": c.ch_pubkey}


def test_works_while_the_broker_runs(world, tmp_path):
    c, vkeys, policy = world
    b = c.broker(policy=policy).start()
    try:
        admin = H.Admin(b, "admin1")
        r = admin.one("enroll", id="dev9", role="device", pubkey=c.keygen("dev9")[1])
        assert r["ok"], r
        admin.close()
        p = run("--ledger", c.ledger, "--policy", policy)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["ch_pubkey"] == c.ch_pubkey
    finally:
        b.stop()


def test_refuses_a_missing_ledger_clearly(tmp_path):
    out = tmp_path / "config.json"
    p = run("--ledger", tmp_path / "nope", "--out", out)
    assert p.returncode == 1
    assert "iotguard init --ledger" in p.stderr and "nope" in p.stderr, p.stderr
    (tmp_path / "empty").mkdir()
    p = run("--ledger", tmp_path / "empty", "--out", out)
    assert p.returncode == 1
    assert "holds no ledger" in p.stderr and "ledger.log" in p.stderr, p.stderr
    p = run("--out", out)
    assert p.returncode == 1 and "--ledger DIR (or --dsn DSN) is required" in p.stderr, p.stderr
    assert not out.exists()


def test_refuses_a_tampered_ledger_and_writes_nothing(world, tmp_path):
    c, _, policy = world
    log = c.ledger / "ledger.log"
    data = bytearray(log.read_bytes())
    data[len(data) // 2] ^= 0x01
    log.write_bytes(bytes(data))
    out = tmp_path / "config.json"
    p = run("--ledger", c.ledger, "--policy", policy, "--out", out)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "record" in p.stderr, p.stderr
    assert not out.exists()


def test_refuses_bad_urls_and_policies(world, tmp_path):
    c, _, _ = world
    for url in ("http://x/", "wss://", "wss:///path", "wss://a b/", 'wss://a"b/', "ws://h/" + "x" * 600):
        p = run("--ledger", c.ledger, "--url", url)
        assert p.returncode == 1, url
        assert p.stdout == ""
        assert "--url" in p.stderr, p.stderr
    p = run("--ledger", c.ledger, "--url", "ws://192.0.2.1:8080/")
    assert p.returncode == 0
    assert "in clear" in p.stderr and "wss://" in p.stderr, p.stderr
    p = run("--ledger", c.ledger, "--url", "ws://localhost:8080/")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "roles": {}, "witnesses": {"keys": ["nope"], "quorum": 1}}')
    p = run("--ledger", c.ledger, "--policy", bad)
    assert p.returncode == 1 and "--policy" in p.stderr, p.stderr
    p = run("--ledger", c.ledger, "--policy", tmp_path / "missing.json")
    assert p.returncode == 1 and "missing.json" in p.stderr, p.stderr


def test_shared_ledger_in_postgresql(world, tmp_path):
    """--dsn reads the shared ledger (docs/LEDGER.md 16) with the same checks."""
    import igmulti as M
    c, _, _ = world
    pg = M.PgServer("dashcfg")
    try:
        pg.start()
        pg.psql("CREATE DATABASE t_dashcfg", db="postgres")
        dsn = pg.dsn_for("t_dashcfg")
        m = H.cli("migrate", "--ledger", c.ledger, "--dsn", dsn, check=False, timeout=H.T(60))
        assert m.returncode == 0, m.stderr
        for args in (("--dsn", dsn), ("--dsn", dsn, "--ledger", c.ledger)):
            p = run(*args)
            assert p.returncode == 0, p.stderr
            assert json.loads(p.stdout) == {"cluster": "demo", "ch_pubkey": c.ch_pubkey}
        # A key directory whose ch.key is not the ledger's is refused.
        other = H.Cluster(tmp_path / "other", "demo")
        p = run("--dsn", dsn, "--ledger", other.ledger)
        assert p.returncode == 1 and p.stdout == "", p.stdout
        assert "is not the cluster-head key of the shared ledger" in p.stderr, p.stderr
    finally:
        pg.stop()
