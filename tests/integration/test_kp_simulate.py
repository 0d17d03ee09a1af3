"""`iotguard kp simulate`: key-ring figures measured against the theory (issue 10).

Why this exists: docs/KEYRINGS.md recommends pool, ring and q from what this
command prints, and the issue pins its figures: measured within one
percentage point of theory at N = 2000; P = 10000, m = 75 gives p ~ 0.433;
with m = 200 at p ~ 0.33, fifty captures read ~9.5% of links under
Eschenauer-Gligor and ~4.7% with q = 2. The analytical column is checked
against an independent computation here (exact binomials with Python's
integers and fractions), the measured column against the theory, and the
command's options, reproducibility and refusals as an operator meets them.
No broker is involved.
"""
import json
import math
from fractions import Fraction

import igharness as H

SEED = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"


def simulate(*args, check=True):
    return H.cli("kp", "simulate", *args, check=check, timeout=H.T(120))


def run_json(*args):
    p = simulate(*args, "--json")
    return json.loads(p.stdout)


_overlaps = {}


def overlap(P, m):
    """p(i) for i = 0..m from exact integers: C(m,i) C(P-m,m-i) / C(P,m), then as floats."""
    if (P, m) not in _overlaps:
        total = math.comb(P, m)
        _overlaps[P, m] = [float(Fraction(math.comb(m, i) * math.comb(P - m, m - i), total))
                           for i in range(m + 1)]
    return _overlaps[P, m]


def theory(P, m, q, X):
    """(p, c, q-composite compromise): the sums of docs/KEYRINGS.md over the exact law."""
    o = overlap(P, m)
    p = math.fsum(o[q:])
    c = -math.expm1(X * math.log1p(-m / P)) if m < P else float(X > 0)
    comp = math.fsum(c ** min(i, 64) * o[i] for i in range(q, m + 1)) / p
    return p, c, comp


def within_1pp(fig):
    assert abs(fig["measured"] - fig["theory"]) <= 0.01, fig
    assert math.isclose(fig["difference"], fig["measured"] - fig["theory"], abs_tol=1e-12)


def check_table(d):
    P, m, q = d["pool"], d["ring"], d["q"]
    assert [r["captured"] for r in d["table"]] == sorted({min(x, d["nodes"] - 2) for x in
                                                           (0, 1, 5, 10, 25, 50, 100, 200, 500, d["captured"])})
    for r in d["table"]:
        p, c, comp = theory(P, m, q, r["captured"])
        assert math.isclose(r["theory"], comp, rel_tol=1e-9, abs_tol=1e-12), r
        within_1pp(r)
        assert r["readable"] <= r["links"]
        if q == 1:
            assert math.isclose(r["one_key"]["theory"], c, rel_tol=1e-9, abs_tol=1e-12), r
            within_1pp(r["one_key"])
            assert r["readable"] <= r["one_key"]["readable"]
        else:
            assert "one_key" not in r
    assert d["table"][0]["captured"] == 0 and d["table"][0]["readable"] == 0
    assert d["table"][0]["links"] == d["links"] * d["trials"]
    p, _, _ = theory(P, m, q, 0)
    assert math.isclose(d["share"]["theory"], p, rel_tol=1e-9)
    two_hop = 1 - (1 - p) * (1 - p * p) ** (d["nodes"] - 2)
    assert math.isclose(d["two_hop"]["theory"], two_hop, rel_tol=1e-9)
    within_1pp(d["share"])
    within_1pp(d["two_hop"])
    assert d["pairs"] == d["nodes"] * (d["nodes"] - 1) // 2
    assert math.isclose(d["share"]["measured"], d["links"] / d["pairs"], rel_tol=1e-12)
    assert d["ring_bytes"] == 36 * m
    assert d["max_difference"] <= 0.01


def test_eschenauer_gligor_checkpoint_p_0_433():
    d = run_json("--pool", "10000", "--ring", "75", "--nodes", "2000", "--captured", "50", "--seed", SEED)
    assert (d["pool"], d["ring"], d["q"], d["nodes"], d["captured"], d["trials"]) == (10000, 75, 1, 2000, 50, 10)
    assert d["seed"] == SEED
    assert abs(d["share"]["theory"] - 0.433) < 0.001
    assert abs(d["share"]["measured"] - 0.433) < 0.01
    check_table(d)


def test_m200_p033_fifty_captures_read_9_5_percent_with_eg_and_4_7_with_q2():
    eg = run_json("--pool", "100000", "--ring", "200", "--q", "1", "--captured", "50", "--seed", SEED)
    assert abs(eg["share"]["measured"] - 0.33) < 0.01
    assert abs(eg["compromise_one_key"]["measured"] - 0.095) < 0.01, eg["compromise_one_key"]
    within_1pp(eg["compromise_one_key"])
    # Hashing every shared id into the key (A.3) already reads fewer links at q = 1.
    assert eg["compromise"]["measured"] < eg["compromise_one_key"]["measured"] - 0.01
    check_table(eg)

    q2 = run_json("--target-p", "0.33", "--ring", "200", "--q", "2", "--captured", "50", "--seed", SEED)
    P = q2["pool"]
    # The largest pool that keeps p >= 0.33 for q = 2, by the exact law.
    assert theory(P, 200, 2, 0)[0] >= 0.33 > theory(P + 1, 200, 2, 0)[0]
    assert abs(q2["share"]["measured"] - 0.33) < 0.01
    assert abs(q2["compromise"]["measured"] - 0.047) < 0.01, q2["compromise"]
    assert "compromise_one_key" not in q2
    check_table(q2)


def test_same_seed_same_figures_and_the_text_table():
    args = ("--pool", "3000", "--ring", "60", "--q", "2", "--nodes", "300", "--captured", "7", "--trials", "3",
            "--seed", SEED)
    a, b = run_json(*args), run_json(*args)
    a.pop("seconds")
    b.pop("seconds")
    assert a == b
    assert [r["captured"] for r in a["table"]] == [0, 1, 5, 7, 10, 25, 50, 100, 200, 298]

    text = simulate(*args).stdout
    assert "ring seed: " + SEED in text
    assert "per device: 60 x 36 bytes = 2160 bytes of ring" in text
    assert "pairs sharing >= q ids (p)" in text
    assert "links read after 7 captures (key of A.3)" in text
    rows = [line.split() for line in text.splitlines() if line.strip()[:1].isdigit() and "|" in line]
    assert [int(r[0]) for r in rows] == [0, 1, 5, 7, 10, 25, 50, 100, 200, 298]
    assert "largest difference from theory" in text

    # No links at all (rings of one id in the largest pool): nothing is
    # measured, and the command says so instead of printing 0% against theory.
    none = run_json("--pool", "16777216", "--ring", "1", "--nodes", "5", "--captured", "1", "--trials", "1",
                    "--seed", SEED)
    assert none["links"] == 0
    assert none["compromise"]["measured"] is None and none["compromise"]["difference"] is None
    assert all(r["measured"] is None and r["one_key"]["measured"] is None for r in none["table"])
    text = simulate("--pool", "16777216", "--ring", "1", "--nodes", "5", "--captured", "1", "--trials", "1",
                    "--seed", SEED).stdout
    assert "links read after 1 captures (key of A.3)                    -" in text

    # Without --seed the seed is random, and printed so the run can be repeated.
    r1 = run_json("--pool", "3000", "--ring", "60", "--nodes", "50", "--trials", "1", "--captured", "5")
    r2 = run_json("--pool", "3000", "--ring", "60", "--nodes", "50", "--trials", "1", "--captured", "5")
    assert len(r1["seed"]) == 64 and r1["seed"] != r2["seed"]


def test_refusals_say_what_is_wrong():
    cases = [
        (("--ring", "10"), "--pool P (or --target-p p) is required"),
        (("--pool", "100"), "--ring m is required"),
        (("--pool", "100", "--ring", "101"), "--ring 101 is more than --pool 100"),
        (("--pool", "100", "--ring", "5", "--q", "6"), "--q 6 is more than --ring 5"),
        (("--pool", "100", "--ring", "5", "--q", "17"), "--q must be between 1 and 16"),
        (("--pool", "100", "--target-p", "0.5", "--ring", "5"), "--pool or --target-p, not both"),
        (("--pool", "16777217", "--ring", "5"), "--pool must be between 2 and 16777216"),
        (("--pool", "100", "--ring", "5", "--nodes", "10", "--captured", "9"), "at most --nodes - 2 = 8"),
        (("--pool", "100", "--ring", "5", "--seed", "abcd"), "--seed needs 64 hex digits"),
        (("--pool", "100", "--ring", "5", "--trials", "0"), "--trials must be between 1 and 1000"),
        (("--pool", "1024", "--ring", "1024", "--nodes", "20000"), "GiB of link ids"),
    ]
    for args, why in cases:
        p = simulate(*args, check=False)
        assert p.returncode == 1, (args, p.returncode, p.stdout, p.stderr)
        assert why in p.stderr, (args, p.stderr)
        assert p.stdout == "", (args, p.stdout)
    assert "Usage: iotguard kp simulate" in simulate("--help").stdout
