"""test_tiles_py.py: the independent tile reader against the spec's examples,
and against tiles written by the C writer, read from disk and served over
HTTP by a real Mosquitto (http_dir on a websockets listener, the setup
docs/LEDGER.md section 14 documents).

Why this exists: tiles.py is the "independent implementation" the C tests
compare with, so it must itself follow tlog-tiles.md; and the issue asks that
tiles served by a web server verify with it.
Run: IG_BUILD=build /usr/bin/python3 -m pytest -q tests/tlog/test_tiles_py.py
(IG_BUILD: the build directory holding tests/tlog_mktiles; default build/).
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import tiles  # noqa: E402

BUILD = Path(os.environ.get("IG_BUILD", "") or (ROOT / "build"))
if not BUILD.is_absolute():
    BUILD = ROOT / BUILD
MKTILES = BUILD / "tests" / "tlog_mktiles"
MOSQUITTO = os.environ.get("IG_MOSQUITTO", "/usr/sbin/mosquitto")
ROOT_70000 = "1a4cdfcb66374a0c0dcbef49acbd4976d13ee864fb3cb241fc943cad04f02f7e"


def leaves(n):
    return [tiles.h_leaf(str(i).encode()) for i in range(n)]


def test_index_encoding_follows_the_spec():
    assert tiles.encode_index(1234067) == "x001/x234/067"
    assert tiles.encode_index(0) == "000"
    assert tiles.encode_index(999) == "999"
    assert tiles.encode_index(1000) == "x001/000"
    assert tiles.tile_path(0, 273, 112) == "tile/0/273.p/112"
    assert tiles.tile_path("entries", 5) == "tile/entries/005"


def test_widths_of_the_spec_example_of_70000():
    t = tiles.Tiles("/nonexistent", 70000)
    assert [t.width(0, n) for n in (0, 272, 273, 274)] == [256, 256, 112, 0]
    assert [t.width(1, n) for n in (0, 1, 2)] == [256, 17, 0]
    assert [t.width(2, n) for n in (0, 1)] == [1, 0]
    assert t.width(3, 0) == 0
    # "a tree of size 256 will be represented by a full level 0 tile and a
    # partial level 1 tile of width 1"
    t = tiles.Tiles("/nonexistent", 256)
    assert (t.width(0, 0), t.width(0, 1), t.width(1, 0)) == (256, 0, 1)


def test_mth_is_rfc6962():
    # RFC 6962 2.1 by hand for 3 leaves: MTH = H(1 || H(1||l0||l1) || l2).
    l = leaves(3)
    assert tiles.mth(l) == tiles.h_node(tiles.h_node(l[0], l[1]), l[2])
    assert tiles.mth([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def mktiles(ledger, n, maxbatch=1000):
    if not MKTILES.exists():
        pytest.fail("%s is missing: build first (meson compile -C %s)" % (MKTILES, BUILD))
    out = subprocess.run([str(MKTILES), str(ledger), str(n), str(maxbatch)], check=True,
                         capture_output=True, text=True, timeout=120)
    return out.stdout.strip()


def test_reads_c_written_tiles(tmp_path):
    root = mktiles(tmp_path, 70000)
    want = tiles.mth(leaves(70000)).hex()
    assert want == ROOT_70000
    assert root == want
    t = tiles.Tiles(str(tmp_path), 70000)
    t.check()
    assert t.root().hex() == want
    assert t.bundle(273)[0] == b"69888"
    # Older sizes, through full tiles whose partials are gone.
    for n in (1, 255, 256, 257, 65536, 65537):
        assert tiles.Tiles(str(tmp_path), n).root() == tiles.mth(leaves(n)), n


def test_refuses_a_tampered_tile(tmp_path):
    mktiles(tmp_path, 600, 50)
    p = tmp_path / "tlog" / "tile" / "0" / "001"
    data = bytearray(p.read_bytes())
    data[100] ^= 1
    p.write_bytes(bytes(data))
    with pytest.raises(tiles.TileError):
        tiles.Tiles(str(tmp_path), 600).check()
    # The root takes tile 1's hash from level 1, so only the check, or a
    # node inside the tile, shows the change.
    assert tiles.Tiles(str(tmp_path), 600).root() == tiles.mth(leaves(600))
    assert tiles.Tiles(str(tmp_path), 600).subtree(0, 259) != leaves(600)[259]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tiles_served_by_mosquitto_http_dir_verify(tmp_path):
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    (ledger / "ch.key").write_text("secret\n")
    root = mktiles(ledger, 70000)
    mqtt_port, http_port = free_port(), free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        "user root\n"
        "listener %d 127.0.0.1\n"
        "allow_anonymous false\n"
        "listener %d 127.0.0.1\n"
        "protocol websockets\n"
        "http_dir %s\n" % (mqtt_port, http_port, ledger / "tlog"))
    log = open(tmp_path / "mosquitto.log", "wb")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        url = "http://127.0.0.1:%d" % http_port
        for _ in range(100):
            try:
                with urllib.request.urlopen(url + "/checkpoint", timeout=2) as r:
                    checkpoint = r.read().decode()
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "mosquitto.log").read_text()
                time.sleep(0.05)
        else:
            pytest.fail("mosquitto did not serve %s/checkpoint" % url)
        assert checkpoint.split("\n")[1:3] == ["70000", root]
        # Mosquitto answers a request in about 0.3 s here, so the whole
        # check (every tile and bundle) runs on a smaller size of the same
        # log, and the 70000 root (a few tiles) without it.
        for size, flags in (("70000", ["--quick"]), ("1000", [])):
            out = subprocess.run([sys.executable, str(HERE / "tiles.py"), url, size] + flags,
                                 capture_output=True, text=True, timeout=300)
            assert out.returncode == 0, out.stderr
            assert out.stdout.strip() == tiles.mth(leaves(int(size))).hex()
        # The secret key next to tlog/ is not served.
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url + "/../ch.key", timeout=2)
        assert e.value.code in (403, 404)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
