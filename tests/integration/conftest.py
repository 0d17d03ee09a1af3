"""conftest.py: fixtures for the iotguard integration tests.

Why this exists: every test needs the same world (a ledger with an admin,
a monitor and some devices; a real mosquitto with the plugin on a free
port) and the same discipline at the end (clients closed, the broker stopped
with SIGTERM and exiting 0, the ledger verifying). Keeping that here means a
test cannot forget the checks that catch crashes, leaks (under valgrind or
ASan) and ledger damage.
"""
import pytest

import igharness as H

STANDARD_IDS = [
    ("admin1", "admin"),
    ("admin2", "admin"),
    ("mon1", "monitor"),
    ("an1", "analyst"),
    ("dev1", "device"),
    ("dev2", "device"),
    ("dev3", "device"),
]


def pytest_configure(config):
    config.addinivalue_line("markers", "vg: part of the representative subset run with the broker under valgrind")


def pytest_report_header(config):
    return ["iotguard build: %s" % H.BUILD,
            "broker wrapper: %s" % (" ".join(H.WRAPPER) or "(none)"),
            "broker preload: %s" % (H.PRELOAD or "(none)"),
            "timeout factor: %.1f" % H.SLOW]


@pytest.fixture(scope="session", autouse=True)
def built():
    missing = [str(p) for p in (H.CLI, H.AGENT, H.PLUGIN) if not p.exists()]
    if missing:
        pytest.fail("not built: %s (run meson compile -C %s)" % (", ".join(missing), H.BUILD))


@pytest.fixture(autouse=True)
def _close_clients():
    """Closes the clients a test made (module fixtures' clients are older)."""
    start = len(H.ALL_CLIENTS)
    yield
    while len(H.ALL_CLIENTS) > start:
        H.ALL_CLIENTS.pop().close()


def make_cluster(root, name="c1"):
    c = H.Cluster(root, name)
    for ident, role in STANDARD_IDS:
        c.enroll(ident, role)
    return c


def stop_all(brokers):
    """Stops every broker still running; the first failure is raised."""
    while H.ALL_CLIENTS:
        H.ALL_CLIENTS.pop().close()
    errors = []
    for b in brokers:
        try:
            b.stop()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def cluster(tmp_path):
    """A fresh ledger with admin1, admin2, mon1, an1, dev1..dev3 enrolled offline."""
    c = make_cluster(tmp_path / "cluster")
    start = len(H.ALL_BROKERS)
    yield c
    stop_all([b for b in H.ALL_BROKERS[start:] if b.cluster is c])


@pytest.fixture
def broker(cluster):
    """A running broker on `cluster` with the harness's default options."""
    return cluster.broker().start()


@pytest.fixture(scope="module")
def mcluster(tmp_path_factory):
    """Like `cluster`, shared by a module's read-mostly tests."""
    c = make_cluster(tmp_path_factory.mktemp("mcluster"))
    start = len(H.ALL_BROKERS)
    yield c
    stop_all([b for b in H.ALL_BROKERS[start:] if b.cluster is c])


@pytest.fixture(scope="module")
def mbroker(mcluster):
    return mcluster.broker().start()
