#!/usr/bin/python3
"""bench_dashboard.py: the operator dashboard under a fleet's status traffic.

Why this exists: the issue asks that the page stay smooth with 10,000 rows
and with 5,000 devices publishing statuses, and that serving it costs the
broker little. This runs the real broker + plugin with the page served from
its websockets listener (tests/integration/igdash.py) in headless Chromium,
enrols the simulated devices through the admin API (64 commands a request),
and publishes their statuses as one bridge identity at --rate messages/s.
It prints, measured in the browser (requestAnimationFrame deltas, the page's
perf.js): frame time p50/p95/p99/max idle and under load, for 5,000 and then
10,000 rows; the time for the page to load the fleet listing; and the
broker's CPU per status message (schedstat of every broker thread) with the
page attached, against a plain mosquitto (no plugin, anonymous, one plain
subscriber to the same topics) given the same messages in the same run.
The fleet listing is timed in two steps, page open -> connected (loading
the page, the key from IndexedDB, a token, the MQTT connect) and connected
-> every row (the `fleet` requests, pages of 1000 in parts of at most 3,800
bytes: docs/PROTOCOL.md "Fleet listing"), on an idle broker and again while
the statuses flow (the parts then share the page's connection with them).
Lines starting "RESULT key value" are for bench/run.sh's summary.

Run: IG_BUILD=build /usr/bin/python3 bench/bench_dashboard.py [--rate 600] [--seconds 10]
     [--devices 5000] [--rows 10000] [--screenshot [PATH]]   (PATH default docs/dashboard.png)
"""
import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))
sys.path.insert(0, str(HERE))
import igdash as D  # noqa: E402
import igharness as H  # noqa: E402
from bench_multi import PlainBroker, cpu_ns  # noqa: E402
from test_dashboard import STD, StatusLoad, enroll_many  # noqa: E402
from test_dashboard import World as DashWorld  # noqa: E402


class Enroller:
    """Enrols sim-NNNNN in order, remembering how many exist."""

    def __init__(self, admin):
        self.admin, self.n = admin, 0

    def up_to(self, n):
        if n > self.n:
            t = time.monotonic()
            enroll_many(self.admin, n, start=self.n)
            print("enrolled sim-%05d..sim-%05d through the admin API in %.1f s" % (self.n, n - 1, time.monotonic() - t))
            self.n = n


def run_load(client, cluster, devices, rate, seconds):
    load = StatusLoad(client, cluster, devices, rate, seconds)
    load.start()
    load.join(timeout=seconds + H.T(60))
    if load.is_alive() or load.error:
        raise SystemExit("the status load failed: %s" % (load.error or "did not finish"))
    return load


SIM_STATE = {}   # sim id -> the state its last (retained) status said
# Besides the page's STD identities: the bridge that publishes the simulated
# statuses, and two real agents that run only for the screenshot.
EXTRA = [("br1", "bridge"), ("dev-a", "device"), ("dev-b", "device")]
OTHERS = [x for x, _ in STD + EXTRA] + ["dash1"]


def open_page(d, total, timeout):
    """(Re)opens the page; returns (page open -> connected, connected ->
    all `total` rows in the table's model) in seconds, polled every 50 ms."""
    t = time.monotonic()
    d.driver.get(d.url("dash1"))
    d.wait_ready()
    d.wait_connected(H.T(30))
    t1 = time.monotonic()
    d.wait_fleet(timeout)
    d.wait("window.iotguardDashboard.counts().total === %d" % total, H.T(30), "%d rows" % total)
    return t1 - t, time.monotonic() - t1


def page_phase(w, enr, br, rows, devices, args, label):
    """Enrols up to `rows`, reopens the page, times the fleet load, then
    frame time idle and under the status load."""
    d = w.dash
    enr.up_to(rows)
    total = rows + len(OTHERS)
    conn_s, fleet_s = open_page(d, total, H.T(60))
    d.hook("resetFrameStats")
    time.sleep(args.idle)
    idle = d.hook("frameStats")
    d.hook("resetFrameStats")
    pid = w.broker.proc.pid
    c0 = cpu_ns(pid)
    load = run_load(br, w.c, devices, args.rate, args.seconds)
    # Statuses are retained, so a device keeps what an earlier phase said of it.
    SIM_STATE.update({k: v for k, v in load.last.items() if SIM_STATE.get(k) != "revoked"})
    online = sum(1 for s in SIM_STATE.values() if s == "online")
    online += sum(1 for i in OTHERS if d.row(i)["state"] == "online")
    d.wait("window.iotguardDashboard.counts().online === %d" % online, H.T(30),
           "the page to count %d online" % online)
    c1 = cpu_ns(pid)
    loaded = d.hook("frameStats")
    per_msg_us = (c1 - c0) / 1000.0 / load.sent
    print("%s: %d rows; page open -> connected %.2f s, then the fleet listing -> every row %.2f s"
          % (label, total, conn_s, fleet_s))
    print("%s: frame time idle   (%.0f s): %s" % (label, args.idle, D.frame_stats_text(idle)))
    print("%s: frame time loaded (%d statuses from %d devices in %.1f s = %.0f msg/s): %s"
          % (label, load.sent, devices, load.elapsed, load.sent / load.elapsed, D.frame_stats_text(loaded)))
    return {"rows": total, "connect_s": conn_s, "listing_s": fleet_s, "idle": idle, "loaded": loaded,
            "cpu_us": per_msg_us}


def liven_up(w, admin):
    """Before the screenshot: what an operator would see on a working day
    (a few revocations and credits in the feed, refused logins in the chart,
    and real agents contributing entropy, exchanging session keys and paying
    for sensor readings with coins an analyst redeems, so every chart has a
    line that moves). The agents are stopped again by calm_down(), before
    anything else is measured."""
    assert admin.one("credit", id="dev-a", amount=200)["ok"]
    w.start_agent("an1", "--role", "analyst")
    w.start_agent("dev-a", "--entropy-interval", "2", "--peer", "dev-b", "--send-interval", "1",
                  "--collect-interval", "1")
    w.start_agent("dev-b", "--entropy-interval", "2", "--peer", "dev-a", "--send-interval", "1")
    for i, why in ((7, "lost"), (42, "stolen"), (123, "decommissioned")):
        r = admin.one("revoke", id="sim-%05d" % i, reason=why)
        assert r["ok"], r
        SIM_STATE["sim-%05d" % i] = "revoked"
    for i in (1, 2, 3):
        assert admin.one("credit", id="sim-%05d" % i, amount=100 * i)["ok"]
    for k in range(6):   # refused logins: an unknown id, and a known id with a token signed by the wrong key
        H.try_connect(w.broker, "intruder%d" % k, password=w.c.mint("intruder%d" % k, key=w.c.ids["admin1"].key))
        H.try_connect(w.broker, "sim-00010", password=w.c.mint("sim-00010", key=w.c.ids["admin1"].key))
    time.sleep(8.0)   # a few stats intervals (1 s here) for the charts


def calm_down(w):
    """Stops the screenshot's agents (each must exit 0)."""
    for ident in ("dev-a", "dev-b", "an1"):
        H.agent_stopped(w.agents.pop(ident))


def fleet_under_traffic(w, br, rows, total, args):
    """Reopens the page while statuses flow and times the fleet listing: the
    listing's parts then share the page's connection (and the broker's loop)
    with --rate statuses a second."""
    d = w.dash
    load = StatusLoad(br, w.c, rows, args.rate, 120.0)
    load.start()
    try:
        time.sleep(1.0)
        conn_s, fleet_s = open_page(d, total, H.T(120))
    finally:
        load.halt.set()
        load.join(timeout=H.T(30))
    SIM_STATE.update({k: v for k, v in load.last.items() if SIM_STATE.get(k) != "revoked"})
    print("%d rows under %d status msg/s: page open -> connected %.2f s, then the fleet listing -> every row %.2f s"
          % (total, args.rate, conn_s, fleet_s))
    return {"rows": total, "connect_s": conn_s, "listing_s": fleet_s}


def plain_cpu(root, cluster, devices, rate, seconds):
    """Broker CPU per status message on a plain mosquitto with a plain subscriber."""
    pb = PlainBroker(root)
    sub = pub = None
    try:
        fake = type("B", (), {"port": pb.port, "diagnostics": lambda self: "(plain mosquitto)"})()
        sub = H.Mqtt(fake, "plain-sub", username=None)
        assert sub.connect() == 0, "plain subscriber could not connect"
        sub.subscribe_ok(cluster.topic("dev", "+", "status"))
        pub = H.Mqtt(fake, "plain-pub", username=None)
        assert pub.connect() == 0, "plain publisher could not connect"
        pub.c.max_inflight_messages_set(200)
        c0 = cpu_ns(pb.proc.pid)
        load = run_load(pub, cluster, devices, rate, seconds)
        H.wait_for(lambda: len(sub.messages) >= load.sent, H.T(30), what="the plain subscriber to get every status")
        c1 = cpu_ns(pb.proc.pid)
        return (c1 - c0) / 1000.0 / load.sent
    finally:
        for c in (sub, pub):
            if c is not None:
                c.close()
        pb.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=int, default=600, help="status messages per second (default 600)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each load (default 10)")
    ap.add_argument("--devices", type=int, default=5000, help="devices publishing statuses (default 5000)")
    ap.add_argument("--rows", type=int, default=10000, help="rows for the second phase (default 10000)")
    ap.add_argument("--idle", type=float, default=3.0, help="seconds of idle frame sampling (default 3)")
    ap.add_argument("--screenshot", nargs="?", const=str(H.ROOT / "docs" / "dashboard.png"), default=None,
                    help="write a PNG of the whole page after the --devices phase, with a few real agents "
                         "running (default path docs/dashboard.png)")
    args = ap.parse_args()
    D.require_browser()
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        root = Path(tmp)
        w = DashWorld(root, STD + EXTRA)
        try:
            b, d = w.start()
            d.open("dash1")
            d.enroll_self(w.c.ids["admin1"], timeout=H.T(60))
            # After the CLI's enrolment: it connects as admin1 too, which would take this session over.
            admin = H.Admin(b, "admin1")
            enr = Enroller(admin)
            br = b.connect("br1", token=w.c.token("br1"))
            br.c.max_inflight_messages_set(200)
            res = {}
            res["small"] = page_phase(w, enr, br, args.devices, args.devices, args, "%d devices" % args.devices)
            if args.screenshot:
                liven_up(w, admin)
                # What the picture must show: every row, the head verified, charts with points.
                d.wait("window.iotguardDashboard.counts().total === %d" % res["small"]["rows"], H.T(10), "every row")
                d.wait("document.querySelectorAll('#fleet-table tbody tr[data-id]').length > 10", H.T(5), "rows")
                d.wait("(window.iotguardDashboard.head() || {}).verified === true", H.T(10), "the head verified")
                time.sleep(1.5)
                shot = d.screenshot(root / "dashboard.png", full_page=True)
                Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shot, args.screenshot)
                print("screenshot (the whole page, 1600 px wide) written to %s" % args.screenshot)
                calm_down(w)
            last = res["small"]
            if args.rows > args.devices:
                res["large"] = last = page_phase(w, enr, br, args.rows, args.rows, args, "%d rows" % args.rows)
            res["traffic"] = fleet_under_traffic(w, br, max(args.rows, args.devices), last["rows"], args)
            br.close()
            admin.close()
            plain = plain_cpu(root, w.c, args.devices, args.rate, args.seconds)
        finally:
            w.close()
    small = res["small"]
    print("broker CPU per status message: iotguard with the page attached %.1f us (%d rows), plain mosquitto "
          "%.1f us (ratio %.2f)" % (small["cpu_us"], small["rows"], plain, small["cpu_us"] / plain))
    if "large" in res:
        print("broker CPU per status message: iotguard with the page attached %.1f us (%d rows; ratio %.2f)"
              % (res["large"]["cpu_us"], res["large"]["rows"], res["large"]["cpu_us"] / plain))
    # For bench/run.sh's summary: "small" is the --devices phase, "large" the --rows one.
    print("RESULT dash.plain.cpu_us %.1f" % plain)
    for name, r in res.items():
        for k in ("connect_s", "listing_s"):
            print("RESULT dash.%s.%s %.2f" % (name, k, r[k]))
        print("RESULT dash.%s.rows %d" % (name, r["rows"]))
        if "cpu_us" in r:
            print("RESULT dash.%s.cpu_us %.1f" % (name, r["cpu_us"]))
            print("RESULT dash.%s.cpu_ratio %.2f" % (name, r["cpu_us"] / plain))
            for phase in ("idle", "loaded"):
                for q in ("p50", "p95", "p99", "max"):
                    print("RESULT dash.%s.frame_%s_%s_ms %.1f" % (name, phase, q, r[phase].get(q) or float("nan")))


if __name__ == "__main__":
    main()
