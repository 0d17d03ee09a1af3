#!/usr/bin/python3
"""bench_witness.py: checkpoint-to-quorum latency with 3 witnesses (quorum 2).

Why this exists: a head is only as useful to a device that requires witnesses
as it is quick to get cosigned. This runs the real broker and three real
`iotguard witness` processes on this machine (the integration harness,
tests/integration/igharness.py), enrols devices one at a time through the
admin API, and for each new checkpoint measures the time from the plain head
reaching a monitor to the cosigned head of the same size reaching it: the
request, the consistency proof on the prover thread, each witness's verify +
fsync'd state + cosignature, and the republished head. It also prints the
cluster head's own figure (stats "witnesses.quorum_latency_ms").

Run: IG_BUILD=build /usr/bin/python3 bench/bench_witness.py [--rounds N]
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
import igharness as H  # noqa: E402
from test_witness import WITNESSES, World  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=40, help="checkpoints to time (1..1000)")
    args = ap.parse_args()
    rounds = max(1, min(args.rounds, 1000))
    with tempfile.TemporaryDirectory(prefix="bench-witness-") as tmp:
        world = World(Path(tmp), quorum=2)
        try:
            b = world.start_broker()
            for w in WITNESSES:
                world.start_witness(w)
            admin = H.Admin(b, "admin1")
            mon = b.connect("mon1")
            mon.subscribe_ok(world.c.topic("ledger", "head"))
            mon.subscribe_ok(world.c.topic("stats"))
            head = world.c.topic("ledger", "head")
            size = world.head(mon, lambda h: True)["size"]
            lat_ms, ch_ms = [], []
            for i in range(rounds):
                start = len(mon.messages)
                world.enroll_online(admin, "bench%d" % i)
                size += 1
                plain = mon.wait_message(head, start=start, timeout=H.T(10),
                                         pred=lambda m: m.json()["size"] == size and not m.json().get("cosigned"))
                cos = mon.wait_message(head, start=start, timeout=H.T(20),
                                       pred=lambda m: m.json()["size"] == size and m.json().get("cosigned"))
                lat_ms.append((cos.time - plain.time) * 1000.0)
            s = H.next_stats(mon, world.c, pred=lambda s: s.get("witnesses", {}).get("cosigned_size", 0) == size)
            ch_ms.append(s["witnesses"]["quorum_latency_ms"])
            admin.close()
            mon.close()
        finally:
            world.stop_witnesses()
            if world.broker and world.broker.running:
                world.broker.stop(verify=False)
    lat_ms.sort()
    p95 = lat_ms[min(len(lat_ms) - 1, int(round(0.95 * (len(lat_ms) - 1))))]
    print("checkpoint-to-quorum latency, 3 witnesses, quorum 2, %d checkpoints (monitor's view, ms): "
          "median %.1f  p95 %.1f  max %.1f" % (len(lat_ms), statistics.median(lat_ms), p95, lat_ms[-1]))
    print("cluster head's own figure for the last checkpoint (stats witnesses.quorum_latency_ms): %d ms"
          % ch_ms[-1])


if __name__ == "__main__":
    main()
