#!/usr/bin/env bash
# bench/run.sh: builds the benchmarks (release), starts the brokers they
# compare, runs every benchmark and prints one summary table with targets.
#
# Why this exists: the figures only mean something side by side (plugin vs
# plain Mosquitto vs dynamic-security, in the same run, on the same machine),
# so one script owns the brokers' configs, their CPU pinning and their
# lifetimes, and nothing is left running afterwards. All load goes to
# 127.0.0.1, bounded in time; the whole run takes about 4 minutes.
#
# Usage: bench/run.sh [--quick] [--skip-build] [--no-ledger] [--no-scale] [--no-keys] [--no-bank] [--no-flood]
#                     [--custody] [--kp] [--shared] [--dashboard]
#   --custody adds device-quorum custody (issue 9) through the real broker and
#   64 real agents (bench_custody, bench_custody_e2e; about 1 more minute).
#   --kp adds key rings (issue 10): a device's pairwise key and the cluster
#   head's ring dealing for m = 75, 200, 500, 1024 (bench_kp), then the
#   broker's CPU per key_ring answer with 500 devices (bench_kp_e2e; about
#   20 s in all).
#   --shared adds several brokers on one PostgreSQL ledger (issue 11): durable
#   appends/s from three writers on one database against the file ledger
#   (bench_shared, with a throwaway server from tests/pg/pgctl.sh), then
#   bench_multi.py: broker CPU per connect shared vs file vs plain, session-key
#   pairs across brokers vs one broker, cross-broker revocation latency and
#   idle connections held (about 6 more minutes, 4 with --quick).
#   --dashboard adds the operator dashboard (issue 13): the built page in
#   headless Chromium on the broker's websockets listener, 5,000 then 10,000
#   rows, 600 statuses/s (bench_dashboard.py): fleet listing time, frame time
#   idle and loaded, broker CPU per status against plain mosquitto (about 3
#   more minutes; needs node, npm, chromium and chromium-driver).
#   BUILD_DIR (default <repo>/build-bench), BENCH_PORT_BASE (default 18900),
#   BENCH_ROUNDS (default 5), BENCH_SECONDS (per round, default 1.5),
#   BENCH_IDENTITIES (scale benchmark, default 1000000),
#   BENCH_COINS (coins in the bank's memory benchmark, default 10000000).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$repo/build-bench}
port_base=${BENCH_PORT_BASE:-18900}
rounds=${BENCH_ROUNDS:-5}
seconds=${BENCH_SECONDS:-1.5}
identities=${BENCH_IDENTITIES:-1000000}
coins=${BENCH_COINS:-10000000}
do_build=1 do_ledger=1 do_scale=1
do_keys=1 do_bank=1 do_flood=1 do_custody=0 do_kp=0 do_shared=0 do_dashboard=0 quick=0
for a in "$@"; do
	case $a in
	--quick) quick=1 rounds=3 seconds=1 identities=${BENCH_IDENTITIES:-200000} coins=${BENCH_COINS:-1000000} ;;
	--skip-build) do_build=0 ;;
	--no-ledger) do_ledger=0 ;;
	--no-scale) do_scale=0 ;;
	--no-keys) do_keys=0 ;;
	--no-bank) do_bank=0 ;;
	--no-flood) do_flood=0 ;;
	--custody) do_custody=1 ;;
	--kp) do_kp=1 ;;
	--shared) do_shared=1 ;;
	--dashboard) do_dashboard=1 ;;
	*) echo "usage: bench/run.sh [--quick] [--skip-build] [--no-ledger] [--no-scale] [--no-keys] [--no-bank] [--no-flood] [--custody] [--kp] [--shared] [--dashboard]" >&2; exit 2 ;;
	esac
done

for tool in mosquitto meson; do
	command -v "$tool" >/dev/null || { echo "run.sh: '$tool' not found; install it (Debian: apt-get install $tool)" >&2; exit 1; }
done
dynsec_so=/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so
[ -f "$dynsec_so" ] || dynsec_so=$(find /usr/lib -name mosquitto_dynamic_security.so 2>/dev/null | head -1)
python=/usr/bin/python3
[ -x "$python" ] || python=python3

# Pinning: load generator on one core, brokers on another, when there are two.
ncpu=$(nproc)
if [ "$ncpu" -ge 2 ] && command -v taskset >/dev/null; then
	load_cpu=0 broker_cpu=1
	pin_load=(taskset -c $load_cpu) pin_broker=(taskset -c $broker_cpu)
	pin_note="load generator pinned to cpu $load_cpu, brokers pinned to cpu $broker_cpu (taskset)"
else
	load_cpu=-1 broker_cpu=-1
	pin_load=() pin_broker=()
	pin_note="not pinned ($ncpu cpu(s) or no taskset): load generator and broker share cores"
fi

# ---- build -------------------------------------------------------------
if [ $do_build = 1 ]; then
	echo "== building (release) in $build =="
	if [ ! -f "$build/build.ninja" ]; then
		meson setup "$build" "$repo" --buildtype=release -Dtests=false >/dev/null
	else
		# `meson compile TARGET` does not know a bench added since the
		# directory was configured until the build files are regenerated.
		ninja -C "$build" build.ninja >/dev/null
	fi
	targets=(bench_connect bench_publish bench_scale mosquitto_iotguard bench_null_plugin)
	[ $do_flood = 1 ] && targets+=(bench_flood)
	[ $do_ledger = 1 ] && [ -f "$repo/bench/bench_ledger.c" ] && targets+=(bench_ledger)
	[ $do_keys = 1 ] && targets+=(bench_keys bench_m2m bench_entropy)
	[ $do_bank = 1 ] && targets+=(bench_bank bench_coins)
	[ $do_custody = 1 ] && targets+=(bench_custody bench_custody_e2e tools/iotguard iotguard-agent)
	[ $do_kp = 1 ] && targets+=(bench_kp bench_kp_e2e)
	[ $do_shared = 1 ] && targets+=(bench_shared bench_keys tools/iotguard)
	# The page is a custom target that exists only when meson found node and npm.
	if [ $do_dashboard = 1 ]; then
		meson introspect "$build" --targets | grep -q '"name": "dashboard"' || {
			echo "run.sh: --dashboard: $build has no dashboard target (meson found no node >= 18 and npm);" \
				"install Debian nodejs and npm, then run: meson configure $build -Ddashboard=enabled" >&2
			exit 1
		}
		targets+=(dashboard/dashboard tools/iotguard)
	fi
	if ! meson compile -C "$build" "${targets[@]}" >"$build/bench-build.log" 2>&1; then
		# -O3 finds warnings the debug builds do not; figures are still worth
		# having, so say so loudly and build once more without -Werror.
		if grep -q 'Werror=' "$build/bench-build.log"; then
			grep -E 'error: ' "$build/bench-build.log" | sort -u | head -10 >&2
			echo "run.sh: WARNING: the release build fails under -Werror (above); fix those warnings." \
				"Building without -Werror to get figures." >&2
			meson configure "$build" -Dwerror=false >/dev/null
		fi
		meson compile -C "$build" "${targets[@]}" >"$build/bench-build.log" 2>&1 ||
			{ tail -30 "$build/bench-build.log" >&2; echo "run.sh: build failed (log: $build/bench-build.log)" >&2; exit 1; }
	fi
fi
bin=$build/bench
plugin_so=$build/broker-plugin/mosquitto_iotguard.so
null_so=$bin/bench_null_plugin.so
for f in "$bin/bench_connect" "$bin/bench_publish" "$bin/bench_scale" "$plugin_so" "$null_so"; do
	[ -e "$f" ] || { echo "run.sh: $f is missing; run without --skip-build" >&2; exit 1; }
done

# ---- brokers -------------------------------------------------------------
# Under /var/tmp by default: the scale ledger is ~130 MB and /tmp may be RAM.
work=$(mktemp -d "${TMPDIR:-/var/tmp}/iotguard-bench.XXXXXX")
broker_pids=()
pg_dir=
cleanup() {
	for p in "${broker_pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${broker_pids[@]}"; do wait "$p" 2>/dev/null || true; done
	[ -n "$pg_dir" ] && "$repo/tests/pg/pgctl.sh" stop "$pg_dir" immediate 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { ss -ltnH "sport = :$1" 2>/dev/null | grep -q .; }
next_port=$port_base
free_port() {
	while port_in_use $next_port; do next_port=$((next_port + 1)); done
	port=$next_port
	next_port=$((next_port + 1))
}

# Common settings; identical for every broker so only authentication and
# authorisation differ. `user` keeps a root-started broker able to read the
# ledger this script creates (Mosquitto otherwise switches to "mosquitto").
write_conf() { # name port extra-lines...
	local name=$1 port=$2
	shift 2
	{
		echo "per_listener_settings false"
		echo "listener $port 127.0.0.1"
		echo "persistence false"
		echo "connection_messages false"
		echo "user $(id -un)"
		echo "log_dest stderr"
		echo "log_type error"
		echo "log_type warning"
		echo "log_type notice"
		printf '%s\n' "$@"
	} >"$work/$name.conf"
}

# start_broker NAME -> sets $pid; waits until the port accepts.
start_broker() {
	local name=$1 port
	port=$(awk '/^listener/ {print $2}' "$work/$name.conf")
	"${pin_broker[@]}" mosquitto -c "$work/$name.conf" 2>"$work/$name.log" &
	pid=$!
	broker_pids+=("$pid")
	for _ in $(seq 200); do
		port_in_use "$port" && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	echo "run.sh: broker '$name' did not start; its log:" >&2
	cat "$work/$name.log" >&2
	exit 1
}

stop_broker() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

echo "== iotguard benchmarks: $(date -u +%Y-%m-%dT%H:%M:%SZ), $ncpu cpus, $(mosquitto -h 2>/dev/null | head -1) =="
echo "$pin_note"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (the machine may be shared: compare ratios, not absolute rates)"

# ---- fixtures ----------------------------------------------------------
cluster=bench
devices=1024
"${pin_load[@]}" "$bin/bench_scale" mkledger --dir "$work/ledger" --cluster $cluster --devices $devices --monitors 2
"$python" "$repo/bench/mkdynsec.py" --out "$work/dynsec.json" --creds "$work/dynsec.creds" --count $devices
# One fresh token per connection, minted before timing (so minting is not
# measured): enough lines for ~10k connects/s over every round.
token_lines=$((131072))
"${pin_load[@]}" "$bin/bench_scale" tokens --cluster $cluster --prefix dev --count $devices --lines $token_lines \
	--ttl 600 >"$work/connect.tokens"

results=$work/results.txt
: >"$results"

# ---- 1. connect rate ---------------------------------------------------
free_port; p_anon=$port
free_port; p_dynsec=$port
free_port; p_plugin=$port
write_conf anon $p_anon "allow_anonymous true"
write_conf dynsec $p_dynsec "allow_anonymous false" "plugin $dynsec_so" "plugin_opt_config_file $work/dynsec.json"
write_conf plugin $p_plugin "allow_anonymous false" "plugin $plugin_so" "plugin_opt_ledger $work/ledger"
start_broker anon; pid_anon=$pid
start_broker dynsec; pid_dynsec=$pid
start_broker plugin; pid_plugin=$pid
echo
"${pin_load[@]}" "$bin/bench_connect" --concurrency 64 --rounds "$rounds" --duration "$seconds" --warmup 0.5 \
	--target anon:$p_anon:anon:$devices \
	--target dynsec:$p_dynsec:file:"$work/dynsec.creds" \
	--target plugin:$p_plugin:file:"$work/connect.tokens" \
	--pid anon=$pid_anon --pid dynsec=$pid_dynsec --pid plugin=$pid_plugin \
	--ratio plugin/anon:0.65 --ratio plugin/dynsec:1.0 | tee -a "$results" | grep -v '^RESULT'
echo "(anonymous: no credentials; dynsec: $devices username/password clients, PBKDF2-SHA512 x101;" \
	"plugin: ledger with $devices devices, a fresh pre-minted token per connection)"
stop_broker $pid_anon; stop_broker $pid_dynsec; stop_broker $pid_plugin

# ---- 1b. good clients under a flood of bad logins (issue 7) -----------------
# 10k/s well-formed tokens for enrolled ids with bad signatures, from 256
# loopback addresses (127.0.1.x), against the default plugin options; good
# clients connect from 127.0.0.1 with fresh tokens, and the tool alternates
# quiet and flooded phases on the same broker. Not pinned: one core cannot
# both open 10k connections/s and time the good client fairly.
if [ $do_flood = 1 ]; then
	free_port; p_flood=$port
	"${pin_load[@]}" "$bin/bench_scale" mkledger --dir "$work/ledger-flood" --cluster $cluster --devices $devices --monitors 2
	write_conf flood $p_flood "allow_anonymous false" "plugin $plugin_so" "plugin_opt_ledger $work/ledger-flood"
	saved_pin=("${pin_broker[@]}"); pin_broker=()
	start_broker flood; pid_flood=$pid
	pin_broker=("${saved_pin[@]}")
	echo
	"$bin/bench_flood" --port $p_flood --cluster $cluster --devices $devices --rate 10000 --addrs 256 \
		--rounds 3 --quiet 2 --flood 3 --pid $pid_flood | tee -a "$results" | grep -v '^RESULT' || true
	stop_broker $pid_flood
fi

# ---- 2. publish throughput -----------------------------------------------
# Both brokers: no inflight limit and a deep queue, because Mosquitto 2.0.11
# can leave QoS 1 messages queued behind its inflight quota until the next
# message arrives (fixed in 2.0.13); that would measure the quota, not ACLs.
free_port; p_panon=$port
free_port; p_pplugin=$port
free_port; p_pnull=$port
free_port; p_pnullmt=$port
write_conf pub-anon $p_panon "allow_anonymous true" "max_inflight_messages 0" "max_queued_messages 10000"
# The ceiling: a plugin that registers the same events as iotguard (login,
# ACL, message, tick) and decides nothing, with the same credentials, so
# iotguard/null is what iotguard's own checks cost and null/anonymous what
# Mosquitto's plugin interface costs whatever a plugin does.
write_conf pub-null $p_pnull "allow_anonymous false" "max_inflight_messages 0" "max_queued_messages 10000" \
	"plugin $null_so"
# The same plugin after one thread has run in the broker, as iotguard's
# ledger writer runs at open: glibc never leaves its multi-threaded mode
# (locked malloc, cancellable read/write), so null-mt/anonymous is the
# ceiling for a plugin that ever uses a thread, and iotguard/null-mt what
# iotguard's own work costs on top of that.
write_conf pub-nullmt $p_pnullmt "allow_anonymous false" "max_inflight_messages 0" "max_queued_messages 10000" \
	"plugin $null_so" "plugin_opt_thread true"
# bench_publish reconnects its publishers every round with one token each;
# single-use tokens are not what it measures, so this broker's policy is the
# default one with "single_use" off.
sed 's/"single_use": true/"single_use": false/' "$repo/config/policy.json" >"$work/policy-reuse.json"
write_conf pub-plugin $p_pplugin "allow_anonymous false" "max_inflight_messages 0" "max_queued_messages 10000" \
	"plugin $plugin_so" "plugin_opt_ledger $work/ledger" "plugin_opt_policy $work/policy-reuse.json"
"${pin_load[@]}" "$bin/bench_scale" tokens --cluster $cluster --prefix mon --count 1 >"$work/publish.tokens"
"${pin_load[@]}" "$bin/bench_scale" tokens --cluster $cluster --prefix dev --count 8 >>"$work/publish.tokens"
start_broker pub-anon; pid_panon=$pid
start_broker pub-plugin; pid_pplugin=$pid
start_broker pub-null; pid_pnull=$pid
start_broker pub-nullmt; pid_pnullmt=$pid
echo
"${pin_load[@]}" "$bin/bench_publish" --publishers 8 --qos 0,1 --rounds "$rounds" --duration "$seconds" --warmup 0.5 \
	--window 2000 --payload 96 \
	--target anon:$p_panon:$cluster \
	--target plugin:$p_pplugin:$cluster:"$work/publish.tokens" \
	--target null:$p_pnull:$cluster:"$work/publish.tokens" \
	--target nullmt:$p_pnullmt:$cluster:"$work/publish.tokens" \
	--pid anon=$pid_panon --pid plugin=$pid_pplugin --pid null=$pid_pnull --pid nullmt=$pid_pnullmt \
	--ratio plugin/anon:0.97 --ratio null/anon:0.97 --ratio plugin/null:0.97 \
	--ratio nullmt/anon:0.97 --ratio plugin/nullmt:0.97 | tee -a "$results" | grep -v '^RESULT'
stop_broker $pid_panon; stop_broker $pid_pplugin; stop_broker $pid_pnull; stop_broker $pid_pnullmt

# ---- 3. scale ---------------------------------------------------------
if [ $do_scale = 1 ]; then
	free_port
	echo
	# The broker is left unpinned: its start replays the ledger on two threads.
	"$bin/bench_scale" run --plugin "$plugin_so" --work "$work/scale" --identities "$identities" --port "$port" \
		--broker-cpu -1 --client-cpu $load_cpu | tee -a "$results" | grep -v '^RESULT'
fi

# ---- 4. ledger (another benchmark, run as it is) -------------------------
ledger_out=$work/ledger-bench.txt
if [ $do_ledger = 1 ] && [ -x "$bin/bench_ledger" ]; then
	echo
	echo "== bench_ledger =="
	# Its own default work directory (under /var/tmp, a real disk), which it
	# removes at the end.
	"${pin_load[@]}" "$bin/bench_ledger" | tee "$ledger_out"
fi

# ---- 5. key service: session keys, m2m, entropy (issue 3) ---------------
# Each gets its own broker and ledger (1024 devices, 2 monitors), so the
# plugin's stats (commit latency, entropy counts) describe that benchmark
# alone. Stats every second: the tools read them from iotguard/C/stats.
if [ $do_keys = 1 ]; then
	for f in bench_keys bench_m2m bench_entropy; do
		[ -x "$bin/$f" ] || { echo "run.sh: $bin/$f is missing; run without --skip-build" >&2; exit 1; }
	done
	# Short runs (3 rounds or fewer, as --quick makes) get shorter timed windows.
	ks_seconds=5 ent_messages=120000 ent_seconds=3
	[ "$rounds" -le 3 ] && ks_seconds=3 ent_messages=40000 ent_seconds=2
	for l in keys m2m m2mx entropy; do
		"${pin_load[@]}" "$bin/bench_scale" mkledger --dir "$work/ledger-$l" --cluster $cluster --devices $devices --monitors 2
	done
	plugin_base=("allow_anonymous false" "plugin $plugin_so" "plugin_opt_stats_interval 1")

	# Session keys: the plugin's per-device rate limit (600/min by default)
	# would otherwise be the figure.
	free_port; p_keys=$port
	write_conf keys $p_keys "${plugin_base[@]}" "plugin_opt_ledger $work/ledger-keys" \
		"plugin_opt_key_requests_per_minute 10000000"
	start_broker keys; pid_keys=$pid
	echo
	"${pin_load[@]}" "$bin/bench_keys" --port $p_keys --cluster $cluster --pairs 100 --window 4 \
		--duration $ks_seconds --warmup 1 --pid $pid_keys --goal 5000 | tee -a "$results" | grep -v '^RESULT' || true
	stop_broker $pid_keys

	# m2m: encrypted vs plaintext on one broker; then again on a broker that
	# issues XChaCha20-Poly1305 keys (the suite is the cluster head's choice).
	free_port; p_m2m=$port
	write_conf m2m $p_m2m "${plugin_base[@]}" "plugin_opt_ledger $work/ledger-m2m"
	start_broker m2m; pid_m2m=$pid
	echo
	"${pin_load[@]}" "$bin/bench_m2m" --port $p_m2m --cluster $cluster --pairs 8 --payload 64 --window 1000 \
		--slice 0.5 --rounds "$rounds" --duration "$seconds" --warmup 0.5 --pid $pid_m2m --goal 0.9 |
		tee -a "$results" | grep -v '^RESULT' || true
	stop_broker $pid_m2m
	free_port; p_m2mx=$port
	write_conf m2mx $p_m2mx "${plugin_base[@]}" "plugin_opt_ledger $work/ledger-m2mx"
	IOTGUARD_FORCE_XCHACHA=1 start_broker m2mx; pid_m2mx=$pid
	echo
	IOTGUARD_FORCE_XCHACHA=1 "${pin_load[@]}" "$bin/bench_m2m" --port $p_m2mx --cluster $cluster --pairs 8 --payload 64 \
		--window 1000 --slice 0.5 --rounds "$rounds" --duration "$seconds" --warmup 0.5 --pid $pid_m2mx --goal 0.9 |
		tee -a "$results" | grep -v '^RESULT' || true
	stop_broker $pid_m2mx

	# Entropy: no per-device interval, so many contributions per device fit
	# in a few seconds.
	free_port; p_ent=$port
	write_conf entropy $p_ent "${plugin_base[@]}" "plugin_opt_ledger $work/ledger-entropy" \
		"plugin_opt_entropy_min_interval_ms 0"
	start_broker entropy; pid_ent=$pid
	echo
	"${pin_load[@]}" "$bin/bench_entropy" --port $p_ent --cluster $cluster --devices 200 --messages $ent_messages \
		--duration $ent_seconds --warmup 0.5 --pid $pid_ent | tee -a "$results" | grep -v '^RESULT' || true
	stop_broker $pid_ent
fi

# ---- 6. the bank (issue 4): coins end to end, sealed data, memory per coin ---
coins_out=$work/coins-bench.txt
if [ $do_bank = 1 ]; then
	for f in bench_bank bench_coins; do
		[ -x "$bin/$f" ] || { echo "run.sh: $bin/$f is missing; run without --skip-build" >&2; exit 1; }
	done
	bank_seconds=5 route_rounds=$rounds
	[ "$rounds" -le 3 ] && bank_seconds=3
	[ "$route_rounds" -gt 3 ] && route_rounds=3
	"${pin_load[@]}" "$bin/bench_bank" mkledger --dir "$work/ledger-bank" --cluster $cluster --collectors 100 \
		--analysts 4 --monitors 2
	# Stats every second (the tool brackets its window with two), and the
	# same inflight/queue settings as the publish benchmark: Mosquitto 2.0.11
	# can leave the last QoS 1 messages behind its inflight quota until the
	# next message arrives, which would stall the drain of redeems.
	free_port; p_bank=$port
	write_conf bank $p_bank "allow_anonymous false" "plugin $plugin_so" "plugin_opt_stats_interval 1" \
		"plugin_opt_ledger $work/ledger-bank" "max_inflight_messages 0" "max_queued_messages 10000"
	start_broker bank; pid_bank=$pid
	echo
	"${pin_load[@]}" "$bin/bench_bank" run --port $p_bank --cluster $cluster --collectors 100 --analysts 4 \
		--duration $bank_seconds --warmup 1 --rounds "$route_rounds" --route-duration "$seconds" --slice 0.5 \
		--pid $pid_bank --goal 10000 | tee -a "$results" | grep -v '^RESULT' || true
	stop_broker $pid_bank

	echo
	echo "== bench_coins (the coin index alone, 10M coins) =="
	"${pin_load[@]}" "$bin/bench_coins" | tee "$coins_out"

	# The broker itself with $coins outstanding coins in its ledger vs. an
	# empty bank: ~11 s and ~1 GB of peak RSS at 10M (BENCH_COINS).
	free_port
	echo
	"$bin/bench_bank" rss --plugin "$plugin_so" --work "$work/bank-rss" --coins "$coins" --port "$port" \
		--broker-cpu $broker_cpu --client-cpu $load_cpu | tee -a "$results" | grep -v '^RESULT' || true
fi

# ---- custody (issue 9, --custody) ------------------------------------------
# The crypto in a tight loop, one holder's deal handler in process, then the
# real broker with 64 real agents (deal n = 64, k = 22, each holder's CPU,
# k-th share to unsealed over sealed restarts; broker pinned like the others,
# agents on the load generator's CPU) and the 1M-identity unseal (broker
# unpinned: its start replays on two threads, as in the scale run).
if [ $do_custody = 1 ]; then
	quick_e2e=()
	[ $quick = 1 ] && quick_e2e=(--rotations 2 --unseals 5)
	echo
	"${pin_load[@]}" "$bin/bench_custody" | tee -a "$results"
	echo
	"${pin_load[@]}" "$bin/bench_custody_e2e" holder | tee -a "$results" | grep -v '^RESULT'
	free_port
	echo
	"$bin/bench_custody_e2e" fleet --port "$port" --broker-cpu $broker_cpu --client-cpu $load_cpu "${quick_e2e[@]}" |
		tee -a "$results" | grep -v '^RESULT'
	free_port
	echo
	"$bin/bench_custody_e2e" scale --port "$port" --identities "$identities" --client-cpu $load_cpu |
		tee -a "$results" | grep -v '^RESULT'
fi

# ---- key rings (issue 10, --kp) -------------------------------------------
# In process, on the load generator's CPU: the device's side (peer ring ids,
# intersection, pair key) and the cluster head worker's (one ring dealt).
# Then the real broker (pinned like the others) answering key_ring requests.
if [ $do_kp = 1 ]; then
	kp_rounds=()
	[ $quick = 1 ] && kp_rounds=(--rounds 5)
	echo
	"${pin_load[@]}" "$bin/bench_kp" "${kp_rounds[@]}" | tee -a "$results" | grep -v '^RESULT'
	# The broker: a policy with predistribution (the 100-device
	# recommendation of docs/KEYRINGS.md: P = 6000, m = 200, q = 2), 500
	# devices asking once per round (the service allows 10 a minute each).
	"${pin_load[@]}" "$bin/bench_scale" mkledger --dir "$work/ledger-kp" --cluster $cluster --devices 500 --monitors 2
	"$python" - "$repo/config/policy.json" "$work/policy-kp.json" <<'PY'
import json, sys
policy = json.load(open(sys.argv[1]))
policy["predistribution"] = {"pool": 6000, "ring": 200, "q": 2}
json.dump(policy, open(sys.argv[2], "w"), indent=2)
PY
	free_port; p_kp=$port
	write_conf kp $p_kp "allow_anonymous false" "plugin $plugin_so" "plugin_opt_ledger $work/ledger-kp" \
		"plugin_opt_policy $work/policy-kp.json"
	start_broker kp; pid_kp=$pid
	echo
	"${pin_load[@]}" "$bin/bench_kp_e2e" --port $p_kp --cluster $cluster --pid $pid_kp --devices 500 --rounds 4 |
		tee -a "$results" | grep -v '^RESULT' || true
	stop_broker $pid_kp
fi

# ---- several brokers on one PostgreSQL ledger (issue 11, --shared) ---------
# bench_shared: three ig_ledger objects (three brokers' writers) appending
# through one database at once, against the file ledger, interleaved rounds.
# The server is a throwaway one under $work (a real disk, like the file
# ledger's), fsync and synchronous_commit on. Left unpinned: the three
# writers and PostgreSQL share both CPUs, as brokers and a database on one
# machine would. Then bench_multi.py starts its own server and brokers.
if [ $do_shared = 1 ]; then
	[ -x "$bin/bench_shared" ] || { echo "run.sh: $bin/bench_shared is missing; run without --skip-build" >&2; exit 1; }
	sh_rounds=$rounds sh_seconds=3
	[ "$sh_rounds" -gt 3 ] && sh_rounds=3
	[ $quick = 1 ] && sh_seconds=2
	chmod 0711 "$work"
	free_port; p_pg=$port
	pg_dir=$work/pg
	dsn=$("$repo/tests/pg/pgctl.sh" start "$pg_dir" $p_pg | tail -1)
	echo
	"$bin/bench_shared" --dsn "$dsn" --writers 3 --rounds $sh_rounds --seconds $sh_seconds |
		tee -a "$results" | grep -v '^RESULT' || true
	"$repo/tests/pg/pgctl.sh" stop "$pg_dir" fast
	pg_dir=
	multi_quick=()
	[ $quick = 1 ] && multi_quick=(--quick)
	echo
	IG_BUILD=$build "$python" "$repo/bench/bench_multi.py" "${multi_quick[@]}" |
		tee -a "$results" | grep -v '^RESULT' || true
fi

# ---- the operator dashboard in a real browser (issue 13, --dashboard) ------
# bench_dashboard.py starts its own broker (plugin, websockets listener
# serving $build/dashboard), headless Chromium and, last, a plain mosquitto
# for the CPU comparison; unpinned, as the browser needs a core of its own.
if [ $do_dashboard = 1 ]; then
	[ -f "$build/dashboard/index.html" ] || { echo "run.sh: $build/dashboard is missing; run without --skip-build" >&2; exit 1; }
	dash_quick=()
	[ $quick = 1 ] && dash_quick=(--seconds 5 --idle 2)
	echo
	IG_BUILD=$build "$python" "$repo/bench/bench_dashboard.py" "${dash_quick[@]}" |
		tee -a "$results" | grep -v '^RESULT' || true
fi

# ---- summary -------------------------------------------------------------
get() { awk -v k="$1" '$1 == "RESULT" && $2 == k {v = $3} END {print v}' "$results"; }
row() { # label value unit op target
	local label=$1 value=$2 unit=$3 op=${4:-} target=${5:-} verdict=""
	if [ -z "$value" ]; then
		value="-" verdict="n/a"
	elif [ -n "$op" ]; then
		if awk -v v="$value" -v t="$target" -v op="$op" 'BEGIN { exit !((op == ">=" && v >= t) || (op == "<=" && v <= t)) }'; then
			verdict=PASS
		else
			verdict=MISS
		fi
	fi
	printf '%-52s %12s %-9s %-9s %s\n' "$label" "$value" "$unit" "${op:+$op $target}" "$verdict"
}

echo
echo "== summary ($pin_note; medians of $rounds rounds) =="
printf '%-52s %12s %-9s %-9s %s\n' "figure" "value" "unit" "target" "verdict"
row "connect: anonymous mosquitto" "$(get connect.anon.rate)" "conn/s"
row "connect: mosquitto + dynamic-security" "$(get connect.dynsec.rate)" "conn/s"
row "connect: mosquitto + iotguard" "$(get connect.plugin.rate)" "conn/s"
row "connect: broker CPU per connect, anonymous" "$(get connect.anon.cpu_us)" "us"
row "connect: broker CPU per connect, dynsec" "$(get connect.dynsec.cpu_us)" "us"
row "connect: broker CPU per connect, iotguard" "$(get connect.plugin.cpu_us)" "us"
row "connect ratio iotguard/anonymous (conn/s)" "$(get connect.ratio.plugin_anon)" "" ">=" 0.65
row "connect ratio iotguard/anonymous (broker CPU)" "$(get connect.capacity.plugin_anon)" "" ">=" 0.48
# The most any token check can reach: anonymous connect + one Ed25519 verify.
row "connect ceiling iotguard/anonymous (broker CPU)" "$(get connect.ceiling.plugin_anon)" ""
row "connect: one Ed25519 verify, tight loop" "$(get connect.verify_us)" "us"
row "connect ratio iotguard/dynsec (conn/s)" "$(get connect.ratio.plugin_dynsec)" "" ">=" 1.0
row "connect ratio iotguard/dynsec (broker CPU)" "$(get connect.capacity.plugin_dynsec)" "" ">=" 1.0
if [ $do_flood = 1 ]; then
	row "flood: bad logins offered (enrolled ids, bad sigs)" "$(get flood_offered_per_s)" "/s" ">=" 9000
	row "flood: good connect p50, quiet" "$(get flood_quiet_p50_ms)" "ms"
	row "flood: good connect p50, flooded" "$(get flood_flooded_p50_ms)" "ms"
	row "flood: ratio flooded/quiet p50" "$(get flood_ratio)" "" "<=" 2.0
	row "flood: good clients refused" "$(get flood_good_refused)" "" "<=" 0
fi
for q in 0 1; do
	row "publish qos$q: anonymous mosquitto" "$(get publish.qos$q.anon.rate)" "msg/s"
	row "publish qos$q: mosquitto + iotguard ACL" "$(get publish.qos$q.plugin.rate)" "msg/s"
	row "publish qos$q: broker CPU per message, anonymous" "$(get publish.qos$q.anon.cpu_us)" "us"
	row "publish qos$q: broker CPU per message, iotguard" "$(get publish.qos$q.plugin.cpu_us)" "us"
	row "publish qos$q: broker CPU per message, null plugin" "$(get publish.qos$q.null.cpu_us)" "us"
	row "publish qos$q ratio iotguard/anonymous (msg/s)" "$(get publish.qos$q.ratio.plugin_anon)" "" ">=" 0.97
	row "publish qos$q ratio iotguard/anonymous (broker CPU)" "$(get publish.qos$q.capacity.plugin_anon)" "" ">=" 0.97
	# The most any auth/ACL plugin can reach on this Mosquitto: a plugin with
	# iotguard's events that decides nothing; and iotguard against it.
	row "publish qos$q ceiling null-plugin/anonymous (broker CPU)" "$(get publish.qos$q.capacity.null_anon)" ""
	row "publish qos$q ratio iotguard/null-plugin (broker CPU)" "$(get publish.qos$q.capacity.plugin_null)" "" ">=" 0.97
	# The same after a thread has run in the broker (glibc's multi-threaded
	# mode, which iotguard's ledger writer puts the broker in at open).
	row "publish qos$q ceiling null-plugin-mt/anonymous (broker CPU)" "$(get publish.qos$q.capacity.nullmt_anon)" ""
	row "publish qos$q ratio iotguard/null-plugin-mt (broker CPU)" "$(get publish.qos$q.capacity.plugin_nullmt)" ""
done
if [ $do_scale = 1 ]; then
	row "scale: $identities-identity ledger built via lib" "$(get scale.build_s)" "s"
	row "scale: exec -> first authenticated connect" "$(get scale.start_s)" "s" "<=" 3
	row "scale: plugin 'loaded in'" "$(get scale.loaded_ms)" "ms" "<=" 3000
	row "scale: RSS per identity (steady)" "$(get scale.rss_per_identity_bytes)" "bytes" "<=" 300
	row "scale: peak RSS per identity (VmHWM, during load)" "$(get scale.hwm_per_identity_bytes)" "bytes"
fi
if [ -s "$ledger_out" ]; then
	# bench_ledger prints prose; pick its headline figures.
	async=$(awk '/^durable appends:.*async submit/ {print $3}' "$ledger_out" | tail -1)
	blocking=$(awk '/^durable appends:/ && !/async submit/ {print $3}' "$ledger_out" | head -1)
	verify=$(awk '/^verify/ { for (i = 1; i < NF; i++) if ($(i + 1) ~ /^records\/s/ && $i + 0 > v) v = $i + 0 }
		END { if (v) print v }' "$ledger_out")
	reopen=$(awk -F': ' '/^writer open/ {print $NF}' "$ledger_out" | awk '{print $1}')
	row "ledger: durable appends, async submit" "$async" "rec/s" ">=" 100000
	row "ledger: durable appends, first blocking run" "$blocking" "rec/s"
	row "ledger: verify (best of its runs)" "$verify" "rec/s" ">=" 1000000
	row "ledger: writer open + replay of the big ledger" "$reopen" "s"
fi
if [ $do_keys = 1 ]; then
	row "keys: session keys end to end (both copies opened)" "$(get keys.pairs_per_s)" "pairs/s" ">=" 5000
	row "keys: plugin's count of keys issued" "$(get keys.plugin_issued_per_s)" "keys/s"
	row "keys: broker CPU per pair (incl. ledger writer)" "$(get keys.cpu_us)" "us"
	row "keys: request -> both copies, p50 (loaded)" "$(get keys.latency_p50_ms)" "ms"
	row "keys: request -> both copies, p99 (loaded)" "$(get keys.latency_p99_ms)" "ms"
	row "keys: request -> both copies, p50 (1 in flight)" "$(get keys.light_p50_ms)" "ms"
	row "keys: ledger commit latency avg (plugin stats)" "$(get keys.commit_avg_us)" "us"
	row "keys: ledger commit latency max (plugin stats)" "$(get keys.commit_max_us)" "us"
	row "keys: errors, bad boxes, mismatches, timeouts" "$(get keys.failures)" "" "<=" 0
	for su in aes256gcm xchacha20poly1305; do
		short=${su%%20poly1305}
		row "m2m $short: plaintext, same broker" "$(get m2m.$su.plain_rate)" "msg/s"
		row "m2m $short: encrypted (seal, open, replay check)" "$(get m2m.$su.sealed_rate)" "msg/s"
		row "m2m $short: ratio encrypted/plaintext (msg/s)" "$(get m2m.$su.ratio)" "" ">=" 0.9
		row "m2m $short: ratio (broker CPU per message)" "$(get m2m.$su.capacity)" ""
		row "m2m $short: crypto alone per message (load gen)" "$(get m2m.crypto_us.$su)" "us"
		row "m2m $short: messages dropped by receivers" "$(get m2m.$su.dropped)" "" "<=" 0
	done
	row "entropy: contributions accepted (plugin stats)" "$(get entropy.accepted_per_s)" "/s"
	row "entropy: broker CPU per contribution" "$(get entropy.cpu_us)" "us"
	row "entropy: contributions refused" "$(get entropy.refused)" "" "<=" 0
	row "entropy: device cost to seal one (load gen)" "$(get entropy.seal_us)" "us"
fi
if [ $do_bank = 1 ]; then
	row "bank: durable mints + redeems end to end" "$(get bank.coins_per_s)" "coins/s" ">=" 10000
	row "bank: durable mints (coins box opened)" "$(get bank.mints_per_s)" "coins/s"
	row "bank: durable redeems (box opened, data decrypted)" "$(get bank.redeems_per_s)" "coins/s"
	row "bank: broker CPU per coin, mixed (all threads)" "$(get bank.cpu_us_per_coin)" "us"
	row "bank: broker CPU per redeem (mixed minus mints)" "$(get bank.redeem_cpu_us)" "us"
	row "bank: broker CPU per minted coin (mint only)" "$(get bank.mint_cpu_us)" "us"
	row "bank: mints alone, 2 requests in flight/collector" "$(get bank.mint_only_per_s)" "coins/s"
	row "bank: data publish -> redeemed + decrypted, p50" "$(get bank.redeem_p50_ms)" "ms"
	row "bank: ledger commit latency avg (plugin stats)" "$(get bank.commit_avg_us)" "us"
	row "bank: ledger commit latency max (plugin stats)" "$(get bank.commit_max_us)" "us"
	row "bank: errors, bad boxes/data, unmatched, unfinished" "$(get bank.failures)" "" "<=" 0
	row "bank: collector seal per message (ig_coin_data_seal)" "$(get bank.crypto.seal_us)" "us"
	row "bank: analyst open per message (after redeem)" "$(get bank.crypto.open_us)" "us"
	row "bank: client seal + open per message" "$(get bank.crypto.seal_open_us)" "us"
	row "bank: bank's header open per redeem (tight loop)" "$(get bank.crypto.bank_open_us)" "us"
	row "bank data: plaintext to a monitor, same broker" "$(get bank.route.plain_rate)" "msg/s"
	row "bank data: coin-sealed to a monitor" "$(get bank.route.sealed_rate)" "msg/s"
	row "bank data: ratio sealed/plaintext (msg/s)" "$(get bank.route.ratio)" ""
	row "bank data: ratio sealed/plaintext of equal size" "$(get bank.route.ratio_padded)" ""
	row "bank data: ratio (broker CPU per message)" "$(get bank.route.capacity)" ""
	if [ -s "$coins_out" ]; then
		row "coins: index RSS per coin, 10M (bench_coins)" \
			"$(awk '/^coin index rss:/ {print $4}' "$coins_out")" "bytes" "<=" 48
		row "coins: index rebuild, apply coin_mint per coin" \
			"$(awk '/^apply coin_mint:/ {print $3}' "$coins_out")" "ns"
	fi
	row "coins: broker RSS per coin, $(get bank.rss_coins) coins" "$(get bank.rss_per_coin_bytes)" "bytes" "<=" 48
	row "coins: broker peak RSS per coin (VmHWM, at load)" "$(get bank.hwm_per_coin_bytes)" "bytes"
	row "coins: broker start with those coins" "$(get bank.rss_start_s)" "s"
fi
if [ $do_custody = 1 ]; then
	row "custody: broker CPU per deal n=64 k=22 (real agents)" "$(get custody.deal_cpu_ms)" "ms"
	row "custody: the deal's crypto alone, in process" "$(get custody.deal_crypto_ms)" "ms"
	row "custody: rotate command -> epoch active" "$(get custody.deal_wall_ms)" "ms"
	row "custody: holder CPU per deal (agent process)" "$(get custody.agent_deal_cpu_ms)" "ms"
	row "custody: holder deal handler CPU (in process)" "$(get custody.holder_deal_cpu_ms)" "ms"
	row "custody: holder share verify alone (k=22)" "$(get custody.holder_verify_ms)" "ms"
	row "custody: k-th share -> unsealed, median (k=22)" "$(get custody.unseal_svc_ms)" "ms" "<=" 1000
	row "custody: k-th share -> unsealed, worst (k=22)" "$(get custody.unseal_max_svc_ms)" "ms" "<=" 1000
	row "custody: $(get custody.scale_identities) ids: sealed start -> ready" "$(get custody.scale_ready_s)" "s" "<=" 3
	row "custody: $(get custody.scale_identities) ids: k-th share -> unsealed" "$(get custody.scale_unseal_svc_ms)" "ms" "<=" 1000
	row "custody: $(get custody.scale_identities) ids: broker VmRSS unsealed" "$(get custody.scale_rss_mb)" "MB"
	row "custody: plain mosquitto VmRSS (no plugin)" "$(get custody.scale_plain_rss_mb)" "MB"
fi
if [ $do_kp = 1 ]; then
	for m in 75 200 500 1024; do
		row "kp: pairwise key on the device, m=$m" "$(get kp.m$m.pair_us)" "us"
		row "kp: pairwise keys per second, m=$m" "$(get kp.m$m.pairs_per_s)" "/s"
		row "kp: ring dealt (worker, one core), m=$m" "$(get kp.m$m.deal_us)" "us"
		row "kp: rings dealt per second, m=$m" "$(get kp.m$m.deals_per_s)" "/s"
	done
	row "kp: session key from a hello" "$(get kp.session_us)" "us"
	row "kp: box key of a device, first deal (X25519)" "$(get kp.box_key_us)" "us"
	row "kp: broker CPU per key_ring answer, first (m=$(get kp.e2e.ring))" "$(get kp.e2e.first_cpu_us)" "us"
	row "kp: broker CPU per key_ring answer, repeat" "$(get kp.e2e.repeat_cpu_us)" "us"
	row "kp: key_ring answers per second, first rings" "$(get kp.e2e.first_per_s)" "/s"
	row "kp: key_ring answers checked bad or refused" "$(get kp.e2e.failures)" "" "<=" 0
fi
if [ $do_shared = 1 ]; then
	row "shared: durable appends, file ledger (1 writer)" "$(get shared.file.rate)" "rec/s"
	row "shared: durable appends, PostgreSQL, 1 writer" "$(get shared.pg1.rate)" "rec/s"
	row "shared: durable appends, PostgreSQL, $(get shared.writers) writers" "$(get shared.pgN.rate)" "rec/s"
	row "shared: ratio $(get shared.writers) writers on PostgreSQL / file ledger" "$(get shared.ratio.pgN_file)" ""
	row "shared: records per transaction, $(get shared.writers) writers" "$(get shared.pgN.per_commit)" ""
	row "shared: commit latency avg, $(get shared.writers) writers" "$(get shared.pgN.commit_avg_us)" "us"
	row "shared: writers' CPU per record, $(get shared.writers) writers" "$(get shared.pgN.cpu_us)" "us"
	row "shared: PostgreSQL CPU per record, $(get shared.writers) writers" "$(get shared.pgN.server_cpu_us)" "us"
	row "shared: PostgreSQL WAL bytes per record" "$(get shared.pg.wal_bytes_per_record)" "bytes"
	row "shared: PostgreSQL table+index bytes per record" "$(get shared.pg.table_bytes_per_record)" "bytes"
	row "shared: light load, 1 writer 1 in flight, commit" "$(get shared.light.pg1.commit_avg_us)" "us"
	row "shared: light load, $(get shared.writers) writers 1 in flight, commit" "$(get shared.light.pgN.commit_avg_us)" "us"
	row "shared: light load, $(get shared.writers) writers 1 in flight each" "$(get shared.light.pgN.rate)" "rec/s"
	row "shared: SQL alone, 1-row transactions via head row" "$(get shared.sql.batch1.tx_per_s)" "tx/s"
	row "shared: a broker joining, CPU per record read" "$(get shared.open.cpu_us)" "us"
	row "shared: writers consistent (same head, each once)" "$(get shared.consistent)" "" ">=" 1
	row "multi: broker RSS per identity, file mode" "$(get multi.rss.file_per_identity_bytes)" "bytes"
	row "multi: broker RSS per identity, shared (state+shadow)" "$(get multi.rss.shared_per_identity_bytes)" "bytes"
	row "multi: plugin start, file mode ($(get multi.rss.identities) ids)" "$(get multi.start.file_ms)" "ms"
	row "multi: plugin start, shared mode ($(get multi.rss.identities) ids)" "$(get multi.start.shared_ms)" "ms"
	row "multi: broker CPU per connect, plain mosquitto" "$(get multi.connect.anon.cpu_us)" "us"
	row "multi: broker CPU per connect, file mode" "$(get multi.connect.file.cpu_us)" "us"
	row "multi: broker CPU per connect, shared mode" "$(get multi.connect.shared.cpu_us)" "us"
	row "multi: connect ratio shared/file (broker CPU)" "$(get multi.connect.capacity.shared_file)" "" ">=" 0.95
	row "multi: session keys, one broker, file mode" "$(get multi.keys_file.pairs_per_s)" "pairs/s"
	row "multi: session keys, one shared broker" "$(get multi.keys_same.pairs_per_s)" "pairs/s"
	row "multi: session keys, A and B on different brokers" "$(get multi.keys_cross.pairs_per_s)" "pairs/s"
	row "multi: session keys ratio across/same broker" "$(get multi.keys.ratio_cross_same)" ""
	row "multi: revoke -> kicked, other broker, p50" "$(get multi.revoke.cross_p50_ms)" "ms"
	row "multi: revoke -> kicked, other broker, p99" "$(get multi.revoke.cross_p99_ms)" "ms" "<=" 200
	row "multi: revoke -> kicked, other broker busy, p50" "$(get multi.revoke.cross_busy_p50_ms)" "ms"
	row "multi: revoke -> kicked, other broker busy, p99" "$(get multi.revoke.cross_busy_p99_ms)" "ms" "<=" 200
	row "multi: revoke -> kicked, same broker, p50" "$(get multi.revoke.same_p50_ms)" "ms"
	row "multi: revoke -> kicked, same broker, p99" "$(get multi.revoke.same_p99_ms)" "ms"
	row "multi: idle connections held, shared broker" "$(get multi.hold.shared.connections)" ""
	row "multi: broker RSS per held connection, plain" "$(get multi.hold.plain.rss_per_conn_bytes)" "bytes"
	row "multi: broker RSS per held connection, file mode" "$(get multi.hold.file.rss_per_conn_bytes)" "bytes"
	row "multi: broker RSS per held connection, shared" "$(get multi.hold.shared.rss_per_conn_bytes)" "bytes"
	row "multi: iotguard verify --dsn after the run (exit)" "$(get multi.verify_exit)" "" "<=" 0
fi
if [ $do_dashboard = 1 ]; then
	for ph in small large; do
		n=$(get dash.$ph.rows)
		[ -n "$n" ] || continue
		row "dashboard $n rows: page open -> connected" "$(get dash.$ph.connect_s)" "s"
		row "dashboard $n rows: fleet listing -> every row" "$(get dash.$ph.listing_s)" "s"
		row "dashboard $n rows: frame time idle, p95" "$(get dash.$ph.frame_idle_p95_ms)" "ms"
		row "dashboard $n rows: frame time loaded, p95" "$(get dash.$ph.frame_loaded_p95_ms)" "ms"
		row "dashboard $n rows: frame time loaded, max" "$(get dash.$ph.frame_loaded_max_ms)" "ms"
		row "dashboard $n rows: broker CPU per status, page on" "$(get dash.$ph.cpu_us)" "us"
		row "dashboard $n rows: ratio to plain mosquitto (CPU)" "$(get dash.$ph.cpu_ratio)" ""
	done
	row "dashboard: broker CPU per status, plain mosquitto" "$(get dash.plain.cpu_us)" "us"
	row "dashboard $(get dash.traffic.rows) rows: listing while statuses flow" "$(get dash.traffic.listing_s)" "s"
fi
echo "Rates are wall-clock and depend on what else runs on the machine; the broker-CPU ratios"
echo "(schedstat time of the broker per connect/message) are the more stable comparison."
