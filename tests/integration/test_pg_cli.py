"""test_pg_cli.py: the CLI's shared-ledger commands against a real PostgreSQL.

Why this exists: `init --dsn`, `verify --dsn`, `show --dsn`, `migrate` and
`export` are how an operator creates, moves, audits and backs up the
ledger several brokers share (docs/LEDGER.md 16). Their promises are
checked end to end here: a migrated ledger comes back out byte for byte,
the database is audited exactly as strictly as a directory (same output,
exit 2 on any tampered row, naming the record), an unreachable database is
exit 1 and never shows the password. One server per module
(tests/pg/pgctl.sh through igmulti.PgServer), one database per test.
"""
import itertools
import os
import re
import stat

import pytest

import igharness as H
import igmulti as M

_seq = itertools.count()


@pytest.fixture(scope="module")
def pg():
    server = M.PgServer("pgcli")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def dsn(pg):
    name = "t_cli_%d_%d" % (os.getpid(), next(_seq))
    pg.psql("CREATE DATABASE %s" % name, db="postgres")
    return pg.dsn_for(name)


def run(*args, **kw):
    return H.cli(*args, check=False, timeout=H.T(60), **kw)


def file_cluster(tmp_path, fmt=None):
    """A file ledger holding every kind of record the CLI can make offline:
    enrolments, a revocation, join codes and a credit grant."""
    c = H.Cluster(tmp_path / "c", ledger_format=fmt)
    for i in (1, 2, 3):
        c.enroll("dev%d" % i)
    c.enroll("adm1", role="admin")
    c.revoke_offline("dev2", reason="lost")
    H.cli("join-code", "--ledger", c.ledger, "--role", "device", "--count", "2")
    H.cli("credit", "--ledger", c.ledger, "--id", "dev1", "--amount", "5")
    types = [r["type"] for r in c.show_json()]
    assert {"genesis", "enroll", "revoke", "join_code", "credit"} <= set(types), types
    return c


def test_init_dsn_puts_only_the_key_in_the_directory(tmp_path, dsn):
    keys = tmp_path / "keys"
    p = run("init", "--ledger", keys, "--dsn", dsn, "--cluster", "shared1")
    assert p.returncode == 0, p.stderr
    pk = p.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", pk), "init must print only the CH public key: %r" % p.stdout
    assert sorted(os.listdir(keys)) == ["ch.key"], os.listdir(keys)
    assert stat.S_IMODE(os.stat(keys).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(keys / "ch.key").st_mode) == 0o600
    assert "plugin_opt_ledger_dsn" in p.stderr

    v = run("verify", "--dsn", dsn, "--ledger", keys)
    assert v.returncode == 0, v.stderr
    assert re.fullmatch(r"ledger OK: cluster shared1, height 1, head [0-9a-f]{64}, checkpoint size 1\n", v.stdout)
    recs = [H.json.loads(line) for line in run("show", "--dsn", dsn, "--json").stdout.splitlines()]
    assert len(recs) == 1 and recs[0]["type"] == "genesis" and recs[0]["ch_pubkey"] == pk

    again = run("init", "--ledger", tmp_path / "keys2", "--dsn", dsn, "--cluster", "other")
    assert again.returncode == 1
    assert "already holds ledger of cluster shared1" in again.stderr, again.stderr
    assert not (tmp_path / "keys2" / "ch.key").exists()


@pytest.mark.parametrize("fmt", [2, 1])
def test_migrate_then_export_gives_back_the_same_bytes(tmp_path, dsn, fmt):
    c = file_cluster(tmp_path, fmt)
    file_verify = c.verify()
    file_show = H.cli("show", "--ledger", c.ledger).stdout

    m = run("migrate", "--ledger", c.ledger, "--dsn", dsn)
    assert m.returncode == 0, m.stderr
    assert "ledger migrated: cluster c1" in m.stdout
    assert "plugin_opt_ledger_dsn" in m.stdout and "left in place" in m.stdout
    assert (c.ledger / "ledger.log").exists(), "migrate must leave the file ledger in place"

    # The database is audited with the file verifier's own output.
    v = run("verify", "--dsn", dsn, "--ledger", c.ledger)
    assert v.returncode == 0, v.stderr
    assert v.stdout == file_verify
    s = run("show", "--dsn", dsn)
    assert s.returncode == 0, s.stderr
    assert s.stdout == file_show
    part = run("show", "--dsn", dsn, "--from", "2", "--limit", "3")
    assert part.stdout.splitlines() == file_show.splitlines()[2:5]

    out = tmp_path / "exported"
    e = run("export", "--dsn", dsn, "--to", out)
    assert e.returncode == 0, e.stderr
    assert (out / "ledger.log").read_bytes() == (c.ledger / "ledger.log").read_bytes()
    assert (out / "checkpoint").read_bytes() == (c.ledger / "checkpoint").read_bytes()
    assert run("verify", "--ledger", out).stdout == file_verify

    # Neither a second migration nor an export over files is allowed.
    again = run("migrate", "--ledger", c.ledger, "--dsn", dsn)
    assert again.returncode == 1 and "already holds ledger of cluster c1" in again.stderr, again.stderr
    busy = run("export", "--dsn", dsn, "--to", out)
    assert busy.returncode == 1 and "not empty" in busy.stderr, busy.stderr


def test_migrate_refuses_a_ledger_a_broker_holds(tmp_path, dsn):
    c = file_cluster(tmp_path)
    b = c.broker()
    b.start()
    try:
        m = run("migrate", "--ledger", c.ledger, "--dsn", dsn)
        assert m.returncode == 1, m.stdout + m.stderr
        assert "Stop the broker" in m.stderr, m.stderr
    finally:
        b.stop()
    v = run("verify", "--dsn", dsn)
    assert v.returncode == 1 and "holds no iotguard ledger" in v.stderr, v.stderr


@pytest.mark.parametrize("sql,index,words", [
    ("UPDATE iotguard.records SET type = 2 WHERE idx = 5", 5, "column type"),
    ("UPDATE iotguard.records SET frame = set_byte(frame, 70, get_byte(frame, 70) # 1) WHERE idx = 3", 3,
     "damaged"),
    ("UPDATE iotguard.records SET hash = sha256(hash) WHERE idx = 4", 4, "column hash"),
    ("DELETE FROM iotguard.records WHERE idx = 2", 2, "missing"),
])
def test_tampered_row_is_exit_2_naming_the_record(tmp_path, pg, dsn, sql, index, words):
    c = file_cluster(tmp_path)
    assert run("migrate", "--ledger", c.ledger, "--dsn", dsn).returncode == 0
    assert run("verify", "--dsn", dsn).returncode == 0
    pg.psql(sql, db=dsn.split("dbname=")[1].split()[0])
    for cmd in (["verify"], ["show"]):
        p = run(*cmd, "--dsn", dsn)
        assert p.returncode == 2, "%s: %d %s" % (cmd, p.returncode, p.stderr)
        assert "ledger record %d:" % index in p.stderr and words in p.stderr, p.stderr
    out = tmp_path / "exp"
    e = run("export", "--dsn", dsn, "--to", out)
    assert e.returncode == 2, e.stderr
    assert not out.exists(), "a failed export must write nothing"


def test_tampered_head_and_meta_are_exit_2(tmp_path, pg, dsn):
    c = file_cluster(tmp_path)
    assert run("migrate", "--ledger", c.ledger, "--dsn", dsn).returncode == 0
    db = dsn.split("dbname=")[1].split()[0]
    pg.psql("UPDATE iotguard.meta SET cluster = 'evil'", db=db)
    p = run("verify", "--dsn", dsn)
    assert p.returncode == 2 and "meta.cluster" in p.stderr, p.stderr
    pg.psql("UPDATE iotguard.meta SET cluster = 'c1'", db=db)
    assert run("verify", "--dsn", dsn).returncode == 0
    pg.psql("UPDATE iotguard.head SET height = height - 1", db=db)
    p = run("verify", "--dsn", dsn)
    assert p.returncode == 2 and "past the head" in p.stderr, p.stderr


def test_unreachable_database_is_exit_1_without_the_password(tmp_path):
    port = H.free_port()
    bad = "host=127.0.0.1 port=%d dbname=iotguard user=u password=hunter2secret connect_timeout=3" % port
    for args in (["verify", "--dsn", bad], ["show", "--dsn", bad], ["export", "--dsn", bad, "--to", tmp_path / "x"],
                 ["init", "--ledger", tmp_path / "k", "--dsn", bad, "--cluster", "c1"]):
        p = run(*args)
        assert p.returncode == 1, "%s: %d %s" % (args[0], p.returncode, p.stderr)
        assert "cannot be reached" in p.stderr and "password=***" in p.stderr, p.stderr
        assert "hunter2secret" not in p.stderr + p.stdout
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "k" / "ch.key").exists()


def test_verify_with_another_clusters_key_dir_fails(tmp_path, dsn):
    c = file_cluster(tmp_path)
    assert run("migrate", "--ledger", c.ledger, "--dsn", dsn).returncode == 0
    other = H.Cluster(tmp_path / "other")
    p = run("verify", "--dsn", dsn, "--ledger", other.ledger)
    assert p.returncode == 1 and "not the cluster-head key" in p.stderr, p.stderr
