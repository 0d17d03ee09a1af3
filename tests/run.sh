#!/usr/bin/env bash
# tests/run.sh: every test iotguard has, in the configurations that catch
# different bugs, with one verdict at the end.
#
# Why this exists: a C plugin inside someone else's broker can pass its tests
# and still corrupt memory, leak, or misbehave only under the real broker.
# So the same tests run three ways: (a) a normal build: unit tests, schema
# self-test, integration tests against a real mosquitto; (b) an ASan+UBSan
# build: unit tests and integration tests with the sanitized plugin loaded
# into mosquitto; (c) the broker under valgrind memcheck for a representative
# integration subset (auth, ACL, admin revoke, reload, requests, monitoring);
# (d) every libFuzzer target in tests/fuzz for a few seconds (clang build).
# The dashboard's node tests and its real-browser tests (Chromium) run in
# (a) only: the page adds no plugin code paths that (b) and (c) do not cover.
#
# Usage: tests/run.sh [--install-deps] [--quick]
#   --install-deps  only install missing Debian packages (used by demo.sh)
#   --quick         stage (a) only
#   IG_FUZZ_SECONDS how long stage (d) fuzzes each target (default 5)
# Installs missing Debian packages itself when run as root. The last line of
# output is exactly "N passed, N failed"; the exit status is non-zero if
# anything failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
PY=/usr/bin/python3

PACKAGES=(build-essential meson ninja-build pkg-config mosquitto mosquitto-clients mosquitto-dev
          libmosquitto-dev libcjson-dev libsodium-dev libcriterion-dev python3-paho-mqtt
          python3-jsonschema python3-pytest python3-nacl valgrind openssl clang libclang-rt-14-dev
          postgresql libpq-dev haproxy chromium chromium-driver python3-selenium)

install_deps() {
	local missing=() p
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
	done
	# Node.js and npm build the dashboard and run its tests. Any node >= 18
	# with its npm will do (NodeSource's nodejs brings its own npm); Debian's
	# npm only goes with Debian's nodejs, so it is installed only when there
	# is no node at all.
	if ! command -v npm >/dev/null 2>&1; then
		if command -v node >/dev/null 2>&1; then
			echo "run.sh: node is installed ($(command -v node), $(node --version)) but npm is not:" \
				"install the npm that goes with that node (Debian's npm needs Debian's nodejs)" >&2
			exit 1
		fi
		missing+=(nodejs npm)
	fi
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "run.sh: missing Debian packages: ${missing[*]}" >&2
		echo "run.sh: install them with: sudo apt-get install ${missing[*]}  (or run this script as root)" >&2
		exit 1
	fi
	echo "run.sh: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# apt-get update only when the package lists cannot satisfy the install.
	if ! apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/iotguard-apt.log 2>&1; then
		apt-get update >>/tmp/iotguard-apt.log 2>&1
		if ! apt-get install -y --no-install-recommends "${missing[@]}" >>/tmp/iotguard-apt.log 2>&1; then
			tail -20 /tmp/iotguard-apt.log >&2
			echo "run.sh: could not install ${missing[*]} (log: /tmp/iotguard-apt.log)" >&2
			exit 1
		fi
	fi
}

QUICK=0
for arg in "$@"; do
	case "$arg" in
	--install-deps) install_deps; exit 0 ;;
	--quick) QUICK=1 ;;
	-h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
	esac
done

install_deps

export PYTHONDONTWRITEBYTECODE=1
JOBS=$(nproc 2>/dev/null || echo 2)
WORK=$(mktemp -d /tmp/iotguard-tests.XXXXXX)
T0=$(date +%s)
PASSED=0
FAILED=0
SUMMARY=()

# Records one stage's counts. The per-stage line is deliberately not in the
# "N passed, N failed" shape: only the final line is.
record() {   # stage passed failed seconds [note]
	PASSED=$((PASSED + $2))
	FAILED=$((FAILED + $3))
	local line
	line=$(printf '[%-20s] passed %4d  failed %3d  %4ds%s' "$1" "$2" "$3" "$4" "${5:+  ($5)}")
	SUMMARY+=("$line")
	echo "$line"
}

banner() { printf '\n==== %s ====\n' "$*"; }

# build DIR [meson options...]
build() {
	local dir=$1 t=$SECONDS
	shift
	banner "build $dir"
	if [ ! -f "$dir/build.ninja" ]; then
		if ! meson setup "$dir" "$@" >"$WORK/setup-$dir.log" 2>&1; then
			cat "$WORK/setup-$dir.log"
			record "build $dir" 0 1 $((SECONDS - t)) "meson setup failed"
			return 1
		fi
	elif [ $# -gt 0 ]; then
		# An existing directory gets this run's options too (one configured
		# before an option existed, such as -Ddashboard=disabled, would
		# otherwise keep its default).
		if ! meson setup --reconfigure "$dir" "$@" >"$WORK/setup-$dir.log" 2>&1; then
			cat "$WORK/setup-$dir.log"
			record "build $dir" 0 1 $((SECONDS - t)) "meson setup --reconfigure failed"
			return 1
		fi
	fi
	if ! meson compile -C "$dir" -j "$JOBS" >"$WORK/compile-$dir.log" 2>&1; then
		grep -E 'error|FAILED' "$WORK/compile-$dir.log" | head -40 || true
		record "build $dir" 0 1 $((SECONDS - t)) "compile failed"
		# Still build what the integration tests need, so one broken unit
		# test file does not hide the state of everything else.
		if meson compile -C "$dir" -j "$JOBS" mosquitto_iotguard:shared_module iotguard:executable \
			iotguard-agent:executable >>"$WORK/compile-$dir.log" 2>&1; then
			echo "(plugin, CLI and agent built: running the integration tests anyway)"
			return 2
		fi
		return 1
	fi
	tail -1 "$WORK/compile-$dir.log"
	record "build $dir" 1 0 $((SECONDS - t))
}

# Counts Criterion tests per executable from meson's testlog.json; an
# executable that failed without a failing Criterion test (a crash, a leak
# report at exit) counts as one failure.
count_unit() {
	"$PY" - "$1" <<'EOF'
import json, re, sys
passed = failed = 0
for line in open(sys.argv[1]):
    if not line.strip():
        continue
    t = json.loads(line)
    out = (t.get("stdout") or "") + (t.get("stderr") or "")
    ok = t.get("result") in ("OK", "EXPECTEDFAIL", "SKIP")
    m = re.findall(r"Tested: (\d+) \| Passing: (\d+) \| Failing: (\d+) \| Crashing: (\d+)", out)
    if m:
        tested, p, f, c = map(int, m[-1])
        passed += p
        failed += f + c
        if not ok and f + c == 0:
            failed += 1
    elif ok:
        passed += 1
    else:
        failed += 1
    if not ok:
        print("  FAILED unit test %s (%s)" % (t.get("name"), t.get("result")), file=sys.stderr)
print(passed, failed)
EOF
}

# unit DIR LABEL
unit() {
	local dir=$1 label=$2 t=$SECONDS counts
	banner "$label"
	# A private log name, so a concurrent `meson test` in the same build
	# directory cannot interleave with ours.
	local base="run-$label-$$" json
	json="$dir/meson-logs/$base.json"
	rm -f "$json"
	meson test -C "$dir" --suite unit --print-errorlogs --num-processes "$JOBS" --logbase "$base" \
		>"$WORK/$label.log" 2>&1 || true
	grep -E '^ *[0-9]+/[0-9]+ ' "$WORK/$label.log" | awk '!seen[$0]++' || true
	if [ ! -s "$json" ]; then
		tail -30 "$WORK/$label.log"
		record "$label" 0 1 $((SECONDS - t)) "no test log"
		return
	fi
	if grep -qE '^ *[0-9]+/[0-9]+ .*(FAIL|TIMEOUT|ERROR)' "$WORK/$label.log"; then
		grep -E '^\[(----|FAIL)\]|Synthesis|ERROR: |AddressSanitizer|LeakSanitizer|runtime error|SUMMARY' \
			"$WORK/$label.log" | head -80 || true
	fi
	if ! counts=$(count_unit "$json"); then
		record "$label" 0 1 $((SECONDS - t)) "unreadable test log $json"
		return
	fi
	rm -f "$json" "$dir/meson-logs/$base.txt"
	record "$label" ${counts% *} ${counts#* } $((SECONDS - t))
}

schema_selftest() {
	local t=$SECONDS
	banner "schema selftest"
	if "$PY" schema/selftest.py; then
		record "schema selftest" 1 0 $((SECONDS - t))
	else
		record "schema selftest" 0 1 $((SECONDS - t))
	fi
}

# The independent custody implementation (issue 9) and the vectors pinned
# from it in docs/PROTOCOL.md and the C unit tests (approve_vectors.py: the
# admin unseal mode's signed statements).
custody_selftest() {
	local t=$SECONDS
	banner "custody selftest"
	if "$PY" tests/custody/selftest.py && "$PY" tests/custody/approve_vectors.py --check; then
		record "custody selftest" 1 0 $((SECONDS - t))
	else
		record "custody selftest" 0 1 $((SECONDS - t))
	fi
}

# The independent key-ring implementation (issue 10) and the vectors pinned
# from it in docs/PROTOCOL.md and tests/unit/test_kp.c.
kp_selftest() {
	local t=$SECONDS
	banner "kp selftest"
	if "$PY" tests/kp/selftest.py; then
		record "kp selftest" 1 0 $((SECONDS - t))
	else
		record "kp selftest" 0 1 $((SECONDS - t))
	fi
}

# The dashboard's own tests (dashboard/test/*.test.mjs, node:test): the
# page's modules that need no browser, against the vectors in docs/. They
# need no packages from npm, so they run without a build. The files are listed here
# rather than given as a directory, which node versions treat differently;
# no test file at all is a failure, not a pass.
dashboard_js() {
	local t=$SECONDS rc=0 files=() counts
	banner "dashboard-js"
	if ! command -v node >/dev/null 2>&1; then
		record "dashboard-js" 0 1 0 "node not found: install nodejs (Debian) or run as root to install it"
		return
	fi
	shopt -s nullglob
	files=(dashboard/test/*.test.mjs dashboard/test/*.test.js)
	shopt -u nullglob
	if [ ${#files[@]} -eq 0 ]; then
		echo "run.sh: no test files (*.test.mjs) in dashboard/test: the dashboard's node tests are missing" >&2
		record "dashboard-js" 0 1 $((SECONDS - t)) "no test files in dashboard/test"
		return
	fi
	node --test --test-reporter=tap "${files[@]}" >"$WORK/dashboard-js.tap" 2>&1 || rc=$?
	grep -E '^ *not ok ' "$WORK/dashboard-js.tap" | head -40 || true
	counts=$(awk '/^# pass /{p=$3} /^# fail /{f=$3} /^# cancelled /{c=$3}
	              END{if (p == "" || f == "") exit 1; print p, f + c}' "$WORK/dashboard-js.tap") || {
		tail -30 "$WORK/dashboard-js.tap"
		record "dashboard-js" 0 1 $((SECONDS - t)) "node --test exit $rc, no counts"
		return
	}
	set -- $counts
	if [ "$1" -eq 0 ] && [ "$2" -eq 0 ]; then
		record "dashboard-js" 0 1 $((SECONDS - t)) "no test ran"
		return
	fi
	if [ "$2" -eq 0 ] && [ $rc -ne 0 ]; then
		tail -30 "$WORK/dashboard-js.tap"
		record "dashboard-js" "$1" 1 $((SECONDS - t)) "node --test exit $rc"
		return
	fi
	record "dashboard-js" "$1" "$2" $((SECONDS - t)) "${#files[@]} files"
}

# Counts a pytest junit file: a test that failed or errored (also in
# setup/teardown) is one failure; skipped tests are not counted.
count_junit() {
	"$PY" - "$1" <<'EOF'
import sys
import xml.etree.ElementTree as ET
passed = failed = skipped = 0
for tc in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    kids = {c.tag for c in tc}
    if kids & {"failure", "error"}:
        failed += 1
    elif "skipped" in kids:
        skipped += 1
    else:
        passed += 1
print(passed, failed, skipped)
EOF
}

# pytest_stage LABEL DIR [pytest args...]: one pytest run, counted.
pytest_stage() {
	local label=$1 dir=$2 t=$SECONDS counts rc=0
	shift 2
	banner "$label"
	(cd "$dir" && "$PY" -m pytest -q --basetemp "$WORK/$label" \
		--junitxml "$WORK/$label.xml" "$@") || rc=$?
	if [ ! -s "$WORK/$label.xml" ]; then
		record "$label" 0 1 $((SECONDS - t)) "pytest exit $rc, no report"
		return
	fi
	if ! counts=$(count_junit "$WORK/$label.xml"); then
		record "$label" 0 1 $((SECONDS - t)) "unreadable report"
		return
	fi
	set -- $counts
	if [ "$1" -eq 0 ] && [ "$2" -eq 0 ]; then
		record "$label" 0 1 $((SECONDS - t)) "no test ran"
		return
	fi
	record "$label" "$1" "$2" $((SECONDS - t)) "$3 skipped"
}

# integration LABEL [pytest args...]  (environment chooses build/wrapper)
integration() {
	local label=$1
	shift
	pytest_stage "$label" tests/integration "$@"
}

# One fuzz target after another (tests/fuzz/run.sh builds build-fuzz with
# clang first); passed = targets that ran clean, failed = targets that
# crashed or broke an invariant, or 1 if the targets could not be built.
fuzz_stage() {
	local t=$SECONDS ok=0 bad=0 tg rc targets
	banner "fuzz"
	targets=$(tests/fuzz/run.sh --list)
	for tg in $targets; do
		rc=0
		tests/fuzz/run.sh -B "$ROOT/build-fuzz" "$tg" "${IG_FUZZ_SECONDS:-5}" || rc=$?
		case $rc in
		0) ok=$((ok + 1)) ;;
		1) bad=$((bad + 1)) ;;
		*) record "fuzz" "$ok" $((bad + 1)) $((SECONDS - t)) "fuzz targets not built"; return ;;
		esac
	done
	record "fuzz" "$ok" "$bad" $((SECONDS - t))
}

# ---- (a) normal build -------------------------------------------------------
rc=0; build build || rc=$?
if [ $rc -eq 0 ]; then unit build "unit"; else record "unit" 0 1 0 "not built"; fi
schema_selftest
# The independent implementations the C is checked against (RFC 6962, C2SP
# notes and tiles, the ledger's vectors), against published vectors and the docs.
pytest_stage "tlog selftest" tests/tlog
custody_selftest
kp_selftest
dashboard_js
if [ $rc -ne 1 ]; then
	IG_BUILD="$ROOT/build" integration "integration"
else
	record "integration" 0 1 0 "not built"
fi
BUILD_RC=$rc

if [ "$QUICK" -eq 0 ]; then
	# ---- (b) ASan + UBSan ---------------------------------------------------
	export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
	rc=0; build build-asan -Db_sanitize=address,undefined -Db_lundef=false -Ddashboard=disabled || rc=$?
	if [ $rc -eq 0 ]; then
		ASAN_OPTIONS=detect_leaks=1 unit build-asan "unit-asan"
	else
		record "unit-asan" 0 1 0 "not built"
	fi
	if [ $rc -ne 1 ]; then
		# Our executables (CLI, agent) check leaks; the broker process gets
		# detect_leaks=0 from the harness since mosquitto is not instrumented.
		ASAN_OPTIONS=detect_leaks=1 IG_BUILD="$ROOT/build-asan" \
			IG_BROKER_PRELOAD="$(gcc -print-file-name=libasan.so)" integration "integration-asan" \
			--ignore=test_dashboard.py
	else
		record "integration-asan" 0 1 0 "not built"
	fi
	unset UBSAN_OPTIONS

	# ---- (c) the broker under valgrind --------------------------------------
	if [ "$BUILD_RC" -ne 1 ]; then
		IG_BUILD="$ROOT/build" IG_BROKER_WRAPPER="valgrind --quiet --error-exitcode=99 --leak-check=full \
--errors-for-leak-kinds=definite --show-leak-kinds=definite --num-callers=30 \
--suppressions=$ROOT/tests/valgrind.supp" integration "integration-valgrind" -m vg \
			--ignore=test_dashboard.py
	else
		record "integration-valgrind" 0 1 0 "not built"
	fi

	# ---- (d) fuzz smoke test ------------------------------------------------
	# A few seconds per target catches a parser change that crashes on the
	# docs' vectors or their near neighbours; long runs are tests/fuzz/run.sh.
	fuzz_stage
fi

banner "summary ($(( $(date +%s) - T0 ))s total)"
printf '%s\n' "${SUMMARY[@]}"
if [ "$FAILED" -eq 0 ]; then
	rm -rf "$WORK"
else
	echo "logs and test directories kept in $WORK"
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]
