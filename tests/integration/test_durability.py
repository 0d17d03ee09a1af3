"""An acknowledged record is never silently lost (issue 7, section 4).

Why this exists: the broker acknowledges a change only once a signed
checkpoint covering its ledger record is durable, so removing or altering
anything it ever acknowledged is refused as tampering, by the broker at start
and by `iotguard verify`. A full disk is waited out without a restart. These
tests drive the real broker; the fault cases that need injected I/O errors
(a failed fsync, an unknown outcome) are unit tests in tests/unit/test_ledger.c.
"""
import re
import shutil
import struct
import subprocess
import threading

import nacl.signing
import pytest

import igharness as H
import igkeys


def checkpoint_size(ledger):
    return int((ledger / "checkpoint").read_text().split("\n")[1])


def enroll_cmd(ident):
    pk = nacl.signing.SigningKey.generate().verify_key.encode().hex()
    return {"command": "enroll", "id": ident, "role": "device", "pubkey": pk}


def acked_under_load_then_killed(cluster, want=80):
    """Streams enrolments through the broker with no pause (so its ledger
    writer is never idle), then kills the broker with SIGKILL the moment
    `want` are acknowledged: no idle or clean-shutdown checkpoint can cover
    a late one. Returns {id: acknowledged index}."""
    b = cluster.broker().start()
    admin = H.Admin(b, "admin1")
    acked = {}
    stop = threading.Event()

    def fire():
        i = 0
        while not stop.is_set() and i < 20000:
            cmds = [dict(enroll_cmd("late%05d" % (i + k)), correlation="late%05d" % (i + k)) for k in range(4)]
            try:
                info = admin.m.publish_async(H.ADMIN_TOPIC, {"commands": cmds})
            except Exception:
                return
            if info.rc != 0:
                return
            i += 4

    def count():
        for m in admin.m.take(H.ADMIN_RESPONSE):
            for r in m.json()["responses"]:
                if r.get("ok"):
                    acked[r["correlation"]] = r["index"]
        return len(acked)

    t = threading.Thread(target=fire, daemon=True)
    t.start()
    try:
        H.wait_for(lambda: count() >= want, H.T(30), interval=0.001, what="%d acknowledged enrolls" % want)
        b.kill9()
    finally:
        stop.set()
        t.join(timeout=5)
    count()
    admin.close()
    return acked


def refused_start(cluster):
    b = cluster.broker()
    b.start(wait=False)
    rc = b.wait_exit(timeout=H.T(15))
    assert rc != 0, "the broker started on a damaged ledger\n" + b.diagnostics()
    return b.log() + b.stderr()


def test_acknowledged_enrolls_are_covered_by_the_checkpoint(cluster):
    acked = acked_under_load_then_killed(cluster)
    size = checkpoint_size(cluster.ledger)
    late = sorted(i for i in acked.values() if i >= size)
    assert not late, "acknowledged but not covered by the checkpoint on disk (size %d): %s" % (size, late[:10])
    cluster.verify()
    on_disk = {r["id"]: r["index"] for r in cluster.show_json() if r["type"] == "enroll"}
    assert all(on_disk.get(ident) == index for ident, index in acked.items())


def test_log_cut_at_a_record_boundary_is_refused(cluster):
    last = max(acked_under_load_then_killed(cluster).values())
    # SIGKILL can cut the writer's pwrite of a later batch short (Linux stops
    # a write to a regular file when a fatal signal is pending), so the log
    # may end in a torn, never-acknowledged tail: the frames up to `last`
    # are whole either way.
    offs = igkeys.frame_offsets(cluster.ledger, whole=False)
    # Drop the last acknowledged record (and anything after it), cutting
    # exactly at its start: every remaining frame is intact, so only the
    # checkpoint can tell.
    cut = offs[last][0]
    with open(cluster.ledger / "ledger.log", "r+b") as f:
        f.truncate(cut)
    p = H.cli("verify", "--ledger", cluster.ledger, check=False)
    assert p.returncode != 0, "verify accepted a log shorter than its checkpoint: %s" % p.stdout
    assert "shorter than its signed checkpoint" in p.stderr, p.stderr
    log = refused_start(cluster)
    assert "shorter than its signed checkpoint" in log, log[-3000:]
    # Said once, not "refusing to start; refusing to start".
    lines = [line for line in log.splitlines() if "shorter than its signed checkpoint" in line]
    assert lines and all(line.count("refusing to start") == 1 for line in lines), lines
    # A refused start changes nothing.
    assert (cluster.ledger / "ledger.log").stat().st_size == cut


@pytest.mark.parametrize("fix_crc", [False, True])
def test_bit_flip_in_the_last_acknowledged_record_is_refused(cluster, fix_crc):
    last = max(acked_under_load_then_killed(cluster).values())
    start, n = igkeys.frame_offsets(cluster.ledger, whole=False)[last]   # a torn tail may follow (above)
    path = cluster.ledger / "ledger.log"
    # Make it the last record in the log (as if nothing later was written),
    # then alter it: an acknowledged record must never pass as a torn tail.
    data = bytearray(path.read_bytes()[:start + n])
    data[start + n - 40] ^= 0x04            # inside the body
    if fix_crc:
        # A deliberate edit that keeps the frame's checksum valid.
        struct.pack_into(">I", data, start + n - 4, igkeys.crc32c(bytes(data[start:start + n - 4])))
    path.write_bytes(bytes(data))
    p = H.cli("verify", "--ledger", cluster.ledger, check=False)
    assert p.returncode != 0, "a flipped bit passed verify: %s %s" % (p.stdout, p.stderr)
    assert "tampered or corrupt" in p.stderr, p.stderr
    log = refused_start(cluster)
    assert "tampered or corrupt" in log and "refusing to start" in log, log[-3000:]
    assert path.stat().st_size == len(data), "a writer open cut an acknowledged record"


def test_verify_success_output_is_as_documented(cluster):
    out = cluster.verify()
    m = re.fullmatch(r"ledger OK: cluster c1, height (\d+), head [0-9a-f]{64}, checkpoint size (\d+)\n", out)
    assert m, out
    assert m.group(1) == m.group(2) == str(len(igkeys.frame_offsets(cluster.ledger)))


# ---- a full disk ----------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs; skipped where mounting is not permitted."""
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (%s); the unit tests inject ENOSPC instead" % p.stderr.strip())
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(mnt):
    """Fills the filesystem to the last byte; returns the filler path."""
    path = mnt / "filler"
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        for size in (65536, 4096, 512, 1):
            while True:
                try:
                    f.write(chunk[:size])
                except OSError:
                    break
    return path


@pytest.mark.vg
def test_full_disk_is_refused_by_name_and_waited_out_without_restart(small_disk, cluster):
    # The ledger lives on the small filesystem; everything else does not.
    ledger = small_disk / "ledger"
    shutil.copytree(cluster.ledger, ledger)
    cluster.ledger = ledger
    b = cluster.broker().start()
    admin = H.Admin(b, "admin1")
    assert admin.one("enroll", **{k: v for k, v in enroll_cmd("roomy").items() if k != "command"})["ok"]
    filler = fill(small_disk)

    # Whatever still fits into the log's last page is written; the first
    # enrolment that does not fit is held, unanswered, until there is room.
    held = None
    for i in range(40):
        cors = admin.send(enroll_cmd("held%d" % i))
        try:
            r = admin.m.wait_message(H.ADMIN_RESPONSE, timeout=2.0,
                                     pred=lambda m: m.json()["responses"][0]["correlation"] == cors[0])
        except AssertionError:
            held = ("held%d" % i, cors[0])
            break
        assert r.json()["responses"][0]["ok"], r.json()
    assert held, "the disk never filled up"
    b.wait_log(r"the disk is full \(ENOSPC\)", timeout=H.T(5))

    # Meanwhile new changes are refused, and the refusal says why.
    r = admin.one("credit", id="dev1", amount=5)
    assert not r["ok"] and r["error"] == "storage_failed", r
    assert "disk is full" in r["message"] and "ENOSPC" in r["message"], r

    # Room again: the held enrolment is acknowledged with no restart, and
    # the broker takes changes again.
    filler.unlink()
    r = admin.m.wait_message(H.ADMIN_RESPONSE, timeout=H.T(10),
                             pred=lambda m: m.json()["responses"][0]["correlation"] == held[1])
    first = r.json()["responses"][0]
    assert first["ok"] and first["id"] == held[0], first
    assert checkpoint_size(ledger) >= first["index"] + 1
    r = admin.one("credit", id="dev1", amount=5)
    assert r["ok"], r
    assert b.running
    admin.close()
    b.stop()
    ids = {rec.get("id") for rec in cluster.show_json() if rec["type"] == "enroll"}
    assert held[0] in ids
