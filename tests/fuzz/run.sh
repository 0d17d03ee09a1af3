#!/usr/bin/env bash
# tests/fuzz/run.sh: builds the libFuzzer targets and fuzzes one or all.
#
# Why this exists: tests/run.sh fuzzes each target for a few seconds as a
# smoke test; finding real bugs takes long runs, started by hand:
#   tests/fuzz/run.sh fuzz_record 3600
# Usage: tests/fuzz/run.sh [-B BUILDDIR] [--list] [TARGET|all] [SECONDS]
#   -B BUILDDIR  clang build directory (default build-fuzz at the repo root);
#                configured with CC=clang meson setup BUILDDIR -Dfuzz=true
#                -Dtests=false when it does not exist
#   --list       print the target names and exit
#   TARGET       one of --list, or all (the default); SECONDS per target (10)
# The corpus grows in BUILDDIR/fuzz-corpus/TARGET, seeded from the docs'
# test vectors by mkcorpus.py; a crash input is saved in
# BUILDDIR/fuzz-artifacts/TARGET/ and reproduced with BUILDDIR/tests/fuzz/TARGET FILE.
# Exit status: 0 clean, 1 a target crashed or broke an invariant, 2 usage or
# build error.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=$ROOT/build-fuzz
# The targets are the fuzz_targets list of meson.build, read from it so the
# two can never disagree (a target missing here would never be smoke-run).
mapfile -t TARGETS < <(sed -n '/^fuzz_targets = \[/,/^\]/p' "$HERE/meson.build" | grep -o "'fuzz_[a-z0-9_]*'" | tr -d "'")
if [ ${#TARGETS[@]} -eq 0 ]; then
	echo "fuzz/run.sh: found no fuzz_targets list in $HERE/meson.build" >&2
	exit 2
fi

while [ $# -gt 0 ]; do
	case "$1" in
	-B) BUILD=$2; shift 2 ;;
	--list) printf '%s\n' "${TARGETS[@]}"; exit 0 ;;
	-h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) break ;;
	esac
done
WHICH=${1:-all}
SECS=${2:-10}
if ! [[ "$SECS" =~ ^[1-9][0-9]*$ ]]; then
	echo "fuzz/run.sh: SECONDS must be a positive whole number, not '$SECS'" >&2
	exit 2
fi
if [ "$WHICH" = all ]; then
	RUN=("${TARGETS[@]}")
elif printf '%s\n' "${TARGETS[@]}" | grep -qx "$WHICH"; then
	RUN=("$WHICH")
else
	echo "fuzz/run.sh: unknown target '$WHICH'; targets: ${TARGETS[*]}" >&2
	exit 2
fi

if ! command -v clang >/dev/null; then
	echo "fuzz/run.sh: clang not found: install the Debian packages clang and libclang-rt-14-dev (libFuzzer)" >&2
	exit 2
fi
if [ ! -e "$(clang -print-file-name=libclang_rt.fuzzer-$(uname -m).a)" ]; then
	echo "fuzz/run.sh: clang has no libFuzzer runtime: install the Debian package libclang-rt-14-dev" >&2
	exit 2
fi
if [ ! -f "$BUILD/build.ninja" ]; then
	if ! (cd "$ROOT" && CC=clang meson setup "$BUILD" -Dfuzz=true -Dtests=false -Ddashboard=disabled) >"$BUILD.setup.log" 2>&1; then
		cat "$BUILD.setup.log" >&2
		echo "fuzz/run.sh: meson setup of $BUILD failed (log above)" >&2
		exit 2
	fi
	rm -f "$BUILD.setup.log"
fi
# Only the fuzz targets: the rest of the tree is built and tested with gcc.
if ! meson compile -C "$BUILD" fuzz >"$BUILD/fuzz-compile.log" 2>&1; then
	grep -E 'error|FAILED' "$BUILD/fuzz-compile.log" | head -40 >&2 || true
	echo "fuzz/run.sh: building the fuzz targets failed (log: $BUILD/fuzz-compile.log)" >&2
	exit 2
fi
if ! /usr/bin/env python3 "$HERE/mkcorpus.py" "$BUILD/fuzz-corpus"; then
	exit 2
fi

rc=0
for t in "${RUN[@]}"; do
	mkdir -p "$BUILD/fuzz-artifacts/$t"
	log="$BUILD/fuzz-artifacts/$t.log"
	# -timeout: one input running 10 s is a hang worth reporting.
	if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		"$BUILD/tests/fuzz/$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$BUILD/fuzz-artifacts/$t/" "$BUILD/fuzz-corpus/$t" >"$log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
		echo "fuzz $t: clean, ${runs:-?} inputs in ${SECS}s"
	else
		grep -E 'ERROR|SUMMARY|runtime error|Test unit written|#[0-9]+ in ' "$log" | head -30 >&2 || true
		echo "fuzz $t: CRASH (full log: $log; input saved in $BUILD/fuzz-artifacts/$t/)" >&2
		rc=1
	fi
done
exit $rc
