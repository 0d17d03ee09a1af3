#!/usr/bin/env bash
# demo.sh: a whole iotguard cluster on this machine, narrated.
#
# Why this exists: the fastest way to understand iotguard is to watch it:
# a broker with the plugin, three device agents pinging the cluster head, a
# monitor watching status, ledger events and stats, then an enrolment and a
# revocation done live through the broker (the revoked device is cut off at
# once and cannot come back). The key service shows too: two devices get a
# session key and talk end to end (a second monitor sees only ciphertext),
# devices contribute entropy, and a new device joins with a one-time code.
# And the bank: a credited collector pays for each sealed reading with a
# one-use coin, an analyst redeems the coins to read them and answers with a
# sealed result; the monitors see coin_mint/coin_redeem ledger events and
# only ciphertext on the data topics. Everything goes over TLS: the broker's
# one listener uses a CA and server certificate made by tools/mkcerts.sh,
# which every client trusts (--tls-ca, --cafile); tokens never cross in
# plaintext. And when the demo ends, the collector hands its unspent coins
# back to the bank before it exits.
# Custody, too: the cluster head deals 2-of-3 verifiable shares of its key's
# custody secret to three online devices, the key leaves the disk (`iotguard
# custody seal`), the broker restarts sealed, and the agents bring the key
# back by releasing their shares; then a rotation deals a fresh polynomial.
# Every device holds a key ring (predistribution in the policy), and two of
# them finally talk through a plain mosquitto without the plugin.
# And the operator dashboard: Mosquitto itself serves it (http_dir on a
# websockets listener on localhost); open it, enrol the key the page made,
# and watch the fleet, the charts, the events and the verified head live.
# Installs missing Debian packages (as root) and builds first.
#
# Usage: ./demo.sh            (runs for DEMO_SECONDS, default 30; 0 = until Ctrl-C)
#        DEMO_SECONDS=0 ./demo.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT=$(pwd)
DEMO_SECONDS=${DEMO_SECONDS:-30}
CLUSTER=demo

if [ -t 1 ]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD= PLAIN=; fi
say() { printf '%s[demo]%s %s\n' "$BOLD" "$PLAIN" "$*"; }
# Prefixes every line of a process's output with its name.
prefix() { sed -u "s/^/[$1] /"; }

tests/run.sh --install-deps

say "building (meson, ninja) into build/"
[ -f build/build.ninja ] || meson setup build >/dev/null
meson compile -C build >/dev/null
IG="$ROOT/build/tools/iotguard"
AGENT="$ROOT/build/agents/iotguard-agent"
PLUGIN="$ROOT/build/broker-plugin/mosquitto_iotguard.so"

DIR=$(mktemp -d /tmp/iotguard-demo.XXXXXX)
PIDS=()
BROKER_PID=

cleanup() {
	trap - EXIT INT TERM
	say "stopping agents and the monitor (the collector dev3 hands its unspent coins back to the bank first)"
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ -n "$BROKER_PID" ]; then
		say "stopping the broker"
		kill -TERM "$BROKER_PID" 2>/dev/null || true
		wait "$BROKER_PID" 2>/dev/null || true
		say "final audit of the ledger:"
		"$IG" verify --ledger "$DIR/ledger" 2>&1 | prefix verify || true
	fi
	sleep 0.2
	rm -rf "$DIR"
	say "done"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
WS_PORT=$(free_port)

say "1. a new ledger for cluster '$CLUSTER' in $DIR/ledger"
CH_PK=$("$IG" init --ledger "$DIR/ledger" --cluster "$CLUSTER")
say "   cluster-head public key: $CH_PK"

say "2. keys, and offline enrolment of admin, two monitors, 3 devices and an analyst (broker not running yet)"
mkdir -p "$DIR/keys"
declare -A PK
for id in admin mon watch dev1 dev2 dev3 dev4 ana1; do
	PK[$id]=$("$IG" keygen --out "$DIR/keys/$id.key")
done
"$IG" enroll --ledger "$DIR/ledger" --id admin --pubkey "${PK[admin]}" --role admin | prefix iotguard
for id in mon watch; do
	"$IG" enroll --ledger "$DIR/ledger" --id "$id" --pubkey "${PK[$id]}" --role monitor | prefix iotguard
done
for id in dev1 dev2 dev3; do
	"$IG" enroll --ledger "$DIR/ledger" --id "$id" --pubkey "${PK[$id]}" --role device | prefix iotguard
done
"$IG" enroll --ledger "$DIR/ledger" --id ana1 --pubkey "${PK[ana1]}" --role analyst | prefix iotguard
say "   and credit for 100 coins to dev3, which will be a collector (iotguard credit also works online)"
"$IG" credit --ledger "$DIR/ledger" --id dev3 --amount 100 | prefix iotguard

say "3. a CA and a server certificate for 127.0.0.1 (tools/mkcerts.sh; keys mode 0600), and mosquitto.conf"
say "   with the iotguard plugin and one TLS listener on 127.0.0.1:$PORT (tokens are bearer credentials:"
say "   they never cross in plaintext); message_size_limit 131072, twice iotguard's largest message"
tools/mkcerts.sh "$DIR/certs" >/dev/null 2> >(prefix mkcerts >&2)
CA="$DIR/certs/ca.crt"
cat >"$DIR/mosquitto.conf" <<EOF
user $(id -un)
per_listener_settings false
allow_anonymous false
listener $PORT 127.0.0.1
certfile $DIR/certs/server.crt
keyfile $DIR/certs/server.key
message_size_limit 131072
log_dest stderr
log_type error
log_type warning
log_type notice
log_timestamp_format %H:%M:%S
plugin $PLUGIN
plugin_opt_ledger $DIR/ledger
plugin_opt_stats_interval 10
plugin_opt_custody_threshold 2
plugin_opt_custody_shares 3
plugin_opt_policy $DIR/policy.json
EOF
# The dashboard: the built page plus its trust anchor (the cluster-head key),
# served by the broker itself on a websockets listener. Plain ws on
# 127.0.0.1 only: localhost is a secure context for the page's WebCrypto,
# and nothing leaves the machine (beyond it the listener must be wss).
DASH=
if [ -f build/dashboard/index.html ]; then
	DASH="$DIR/dashboard"
	mkdir -p "$DASH"
	cp build/dashboard/* "$DASH/"
	"$IG" dashboard-config --ledger "$DIR/ledger" --out "$DASH/config.json" 2>&1 | prefix iotguard
	say "   and a websockets listener on 127.0.0.1:$WS_PORT serving the dashboard (http_dir) and MQTT over WebSockets"
	cat >>"$DIR/mosquitto.conf" <<EOF
listener $WS_PORT 127.0.0.1
protocol websockets
http_dir $DASH
EOF
fi
# The shipped policy plus key rings: 25 keys each from a pool of 100, q = 1.
sed 's/^  "version": 1,$/&\n  "predistribution": {"pool": 100, "ring": 25, "q": 1},/' config/policy.json >"$DIR/policy.json"
sed 's/^/      /' "$DIR/mosquitto.conf"

start_broker() {
	"${IG_MOSQUITTO:-/usr/sbin/mosquitto}" -c "$DIR/mosquitto.conf" > >(prefix broker) 2>&1 &
	BROKER_PID=$!
	# Ready once the port is listening (/proc/net/tcp, state 0A): a bare TCP
	# probe would make the TLS listener log a failed handshake.
	local listen
	listen=$(printf '0100007F:%04X' "$PORT")
	for _ in $(seq 100); do
		grep -q " $listen 00000000:0000 0A " /proc/net/tcp && return 0
		kill -0 "$BROKER_PID" 2>/dev/null || { say "the broker did not start"; exit 1; }
		sleep 0.1
	done
}
start_broker

if [ -n "$DASH" ]; then
	say "   the dashboard: open http://localhost:$WS_PORT/?id=dash1 (served by this broker). The page makes"
	say "   its own key and shows it; enrol it as an admin (or --role monitor) with:"
	say "     $IG enroll --host 127.0.0.1 --port $PORT --tls-ca $CA --cluster $CLUSTER --user admin \\"
	say "       --key $DIR/keys/admin.key --id dash1 --role admin --pubkey <the key the page shows>"
	say "   and it connects by itself (DEMO_SECONDS=0 keeps the demo running)"
else
	say "   (no dashboard: build/dashboard was not built; it needs node and npm, see README \"Dashboard\")"
fi

say "4. a monitor: mosquitto_sub with a monitor token on status, ledger/# (events such as enroll,"
say "   coin_mint, coin_redeem) and stats; a mint event's list of coin hashes is shortened here"
MON_TOKEN=$("$IG" token --id mon --key "$DIR/keys/mon.key" --cluster "$CLUSTER" --ttl 86400)
mosquitto_sub -h 127.0.0.1 -p "$PORT" --cafile "$CA" -i mon -u mon -P "$MON_TOKEN" -v \
	-t "iotguard/$CLUSTER/dev/+/status" -t "iotguard/$CLUSTER/ledger/#" -t "iotguard/$CLUSTER/stats" \
	> >(sed -u -E 's/"coin_hashes":\["([0-9a-f]{12})[^]]*\]/"coin_hashes":["\1...",...]/' | prefix monitor) 2>&1 &
PIDS+=($!)
unset MON_TOKEN

say "   and a second monitor on iotguard/$CLUSTER/m2m/# and iotguard/$CLUSTER/dev/+/data/+: device-to-device"
say "   messages and collectors' readings, which it sees only encrypted"
WATCH_TOKEN=$("$IG" token --id watch --key "$DIR/keys/watch.key" --cluster "$CLUSTER" --ttl 86400)
mosquitto_sub -h 127.0.0.1 -p "$PORT" --cafile "$CA" -i watch -u watch -P "$WATCH_TOKEN" -t "iotguard/$CLUSTER/m2m/#" \
	-t "iotguard/$CLUSTER/dev/+/data/+" -F '%t %l bytes: %x' \
	> >(sed -u -E 's/^(.* bytes: .{48}).*/\1... (ciphertext)/' | prefix watch) 2>&1 &
PIDS+=($!)
unset WATCH_TOKEN

say "5. three device agents (status heartbeat every 5 s, ping on connect); dev1 and dev2 contribute"
say "   entropy every 5 s and ask the cluster head for a session key to talk to each other every 3 s"
say "   (every agent also has the cluster head prove that its enrolment is in the log, and keeps the"
say "   last checkpoint it accepted in KEY.head: a newer one only with a consistency proof; and once"
say "   three devices are online the cluster head deals them 2-of-3 shares of its key's custody secret,"
say "   which each checks against the commitments and keeps in KEY.shares)"
start_agent() {
	local id=$1
	shift
	"$AGENT" --host 127.0.0.1 --port "$PORT" --tls-ca "$CA" --cluster "$CLUSTER" --id "$id" \
		--key "$DIR/keys/$id.key" --heartbeat 5 "$@" > >(prefix "$id") 2>&1 &
	PIDS+=($!)
}
start_agent dev1 --ping --entropy-interval 5 --peer dev2 --send-interval 3
start_agent dev2 --ping --entropy-interval 5 --peer dev1 --send-interval 3
say "   dev3 is a collector: every 2 s it sends a sensor reading sealed under one coin from the bank"
say "   (minting coins from its credit as needed); ana1 is an analyst: it redeems each reading's coin at"
say "   the bank, reads the data and sends dev3 a sealed result"
start_agent dev3 --ping --collect-interval 2
start_agent ana1 --role analyst
sleep 5

online=(--host 127.0.0.1 --port "$PORT" --tls-ca "$CA" --cluster "$CLUSTER" --user admin --key "$DIR/keys/admin.key")
say "6. enrolling dev4 online, through the broker's admin API"
"$IG" enroll "${online[@]}" --id dev4 --pubkey "${PK[dev4]}" --role device 2>&1 | prefix iotguard
start_agent dev4 --ping
sleep 2

say "   a one-time join code, made online (printed once; the ledger keeps only its hash)"
CODE=$("$IG" join-code "${online[@]}" --role device --ttl 600 2> >(prefix iotguard >&2))
say "   dev5 has no key and is not enrolled: it joins with the code (its key is generated now)"
start_agent dev5 --join-code "$CODE" --entropy-interval 5
unset CODE
sleep 4

say "7. revoking dev2 online: its session is cut at once, its retries are refused, and dev1 is told"
say "   to wipe the session key it shared with dev2"
"$IG" revoke "${online[@]}" --id dev2 --reason "demo: device reported stolen" 2>&1 | prefix iotguard
sleep 3

say "8. identities, as the broker sees them"
"$IG" list "${online[@]}" 2>&1 | prefix iotguard

say "9. auditing the ledger while the broker runs (no lock needed)"
"$IG" verify --ledger "$DIR/ledger" 2>&1 | prefix verify
"$IG" show --ledger "$DIR/ledger" 2>&1 | prefix show

say "10. custody of the cluster-head key: the holders of the active epoch (dev2's revocation dealt a new one)"
"$IG" custody status "${online[@]}" 2>&1 | prefix iotguard
say "    sealing: the key is kept only as ch.key.sealed, and ch.key is overwritten and removed"
"$IG" custody seal "${online[@]}" 2>&1 | prefix iotguard
ls "$DIR/ledger" | tr '\n' ' ' | prefix ledger-dir
echo
say "11. restarting the broker: it comes up sealed (tokens still verify; keys, coins and joins are refused"
say "    \"sealed\") and asks each holder for its share, boxed to a key made for this boot"
kill -TERM "$BROKER_PID" 2>/dev/null || true
wait "$BROKER_PID" 2>/dev/null || true
start_broker
for _ in $(seq 60); do
	"$IG" custody status "${online[@]}" 2>/dev/null | grep -q "(unsealed)" && break
	sleep 0.5
done
say "    two holders answered: the shares verified against the commitments, and the key is back"
"$IG" custody status "${online[@]}" 2>&1 | prefix iotguard
say "12. a rotation: a fresh polynomial for the same secret, dealt to the online devices now; shares of"
say "    the old epoch are wiped by their holders and refused by the cluster head"
"$IG" custody rotate "${online[@]}" 2>&1 | prefix iotguard
sleep 3
"$IG" custody status "${online[@]}" 2>&1 | prefix iotguard
say "13. key rings: each device got 25 keys from a pool of 100 (dev2's are compromised since its revocation);"
say "    dev4 and dev5 now talk through a plain mosquitto without the plugin, under key-ring sessions only"
PLAIN_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\nlog_dest none\n' "$PLAIN_PORT" >"$DIR/plain.conf"
"${IG_MOSQUITTO:-/usr/sbin/mosquitto}" -c "$DIR/plain.conf" > >(prefix plain-broker) 2>&1 &
PIDS+=($!)
sleep 0.5
for pair in dev4:dev5 dev5:dev4; do
	"$AGENT" --host 127.0.0.1 --port "$PLAIN_PORT" --cluster "$CLUSTER" --id "${pair%%:*}" \
		--key "$DIR/keys/${pair%%:*}.key" --plain-broker --peer "${pair##*:}" --send-interval 2 \
		> >(grep --line-buffered -E "predistributed|key ring session|m2m from" | prefix "${pair%%:*}-plain") 2>&1 &
	PIDS+=($!)
done
sleep 5

if [ "$DEMO_SECONDS" -eq 0 ]; then
	say "running until Ctrl-C"
	while kill -0 "$BROKER_PID" 2>/dev/null; do sleep 1; done
else
	say "running for $DEMO_SECONDS more seconds (DEMO_SECONDS=0 runs until Ctrl-C)"
	end=$((SECONDS + DEMO_SECONDS))
	while [ $SECONDS -lt $end ] && kill -0 "$BROKER_PID" 2>/dev/null; do sleep 1; done
fi
