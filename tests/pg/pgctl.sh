#!/usr/bin/env bash
# tests/pg/pgctl.sh: a throwaway PostgreSQL 15 server for tests and benchmarks.
#
# Why this exists: the shared-ledger tests (Criterion and pytest alike) need a
# real PostgreSQL primary, sometimes with a streaming standby, in a temporary
# directory, on a 127.0.0.1 port of their choosing, and gone afterwards. The
# Debian package's own cluster is left alone. initdb and postgres refuse to
# run as root, so when run as root the server runs as the 'postgres' user.
#
#   pgctl.sh start   DIR PORT            initdb DIR (once), start, wait until ready,
#                                        create database 'iotguard'; prints the DSN
#   pgctl.sh standby DIR PORT PRIMARY    base backup of the primary on 127.0.0.1:PRIMARY
#                                        into DIR, start it streaming (synchronous)
#   pgctl.sh promote DIR                 promote a standby to primary
#   pgctl.sh stop    DIR [fast|immediate] stop the server (immediate: like a crash)
#   pgctl.sh kill    DIR                 SIGKILL the postmaster (and so every backend)
#
# The primary requires synchronous replication once a standby named 'standby'
# is attached (synchronous_standby_names), so a COMMIT the writer saw return
# is on the standby too: promoting it loses nothing acknowledged.
set -euo pipefail

BIN=/usr/lib/postgresql/15/bin
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { sed -n '2,20p' "$0" >&2; exit 2; }

as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

wait_ready() {   # DIR: postmaster.pid's status line says "ready" (or "standby")
	for _ in $(seq 1 300); do
		if [ -f "$1/postmaster.pid" ] && sed -n 8p "$1/postmaster.pid" | grep -qE 'ready|standby'; then
			return 0
		fi
		sleep 0.05
	done
	echo "pgctl: server in $1 did not become ready in 15 s; see $1/server.log" >&2
	tail -20 "$1/server.log" >&2 || true
	return 1
}

prepare_dir() {
	mkdir -p "$1"
	if [ "$(id -u)" = 0 ]; then chown postgres: "$1"; fi
	chmod 0700 "$1"
	# the parent must be traversable by postgres
	if [ "$(id -u)" = 0 ]; then chmod o+x "$(dirname "$1")" 2>/dev/null || true; fi
}

start_server() {   # DIR
	as_pg "$BIN/pg_ctl" -D "$1" -l "$1/server.log" -w -t 30 start >/dev/null
	wait_ready "$1"
}

case "$cmd" in
start)
	port=${3:?port}
	if [ ! -f "$dir/PG_VERSION" ]; then
		prepare_dir "$dir"
		as_pg "$BIN/initdb" -D "$dir" --locale=C -E UTF8 -U postgres --auth=trust >"$dir.initdb.log" 2>&1 ||
			{ cat "$dir.initdb.log" >&2; exit 1; }
		cat >>"$dir/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = on
synchronous_commit = on
wal_level = replica
max_wal_senders = 4
synchronous_standby_names = ''
shared_buffers = 32MB
max_connections = 60
log_min_messages = warning
CONF
		echo "host replication postgres 127.0.0.1/32 trust" >>"$dir/pg_hba.conf"
		start_server "$dir"
		as_pg "$BIN/psql" -h "$dir" -p "$port" -U postgres -qAt -c "CREATE DATABASE iotguard" postgres >/dev/null
	else
		start_server "$dir"
	fi
	echo "host=127.0.0.1 port=$port dbname=iotguard user=postgres"
	;;
standby)
	port=${3:?port}; primary=${4:?primary port}
	prepare_dir "$dir"
	as_pg "$BIN/pg_basebackup" -h 127.0.0.1 -p "$primary" -U postgres -D "$dir" -R -X stream -c fast \
		-d "host=127.0.0.1 port=$primary user=postgres application_name=standby" >/dev/null
	sed -i -e "s/^port = .*/port = $port/" -e "s|^unix_socket_directories = .*|unix_socket_directories = '$dir'|" \
		"$dir/postgresql.conf"
	start_server "$dir"
	# Now that it streams, make the primary wait for it on every COMMIT.
	pdir=$(as_pg "$BIN/psql" -h 127.0.0.1 -p "$primary" -U postgres -qAt -c "SHOW data_directory" postgres)
	as_pg "$BIN/psql" -h 127.0.0.1 -p "$primary" -U postgres -qAt \
		-c "ALTER SYSTEM SET synchronous_standby_names = 'standby'" -c "SELECT pg_reload_conf()" postgres >/dev/null
	: "$pdir"
	for _ in $(seq 1 200); do
		s=$(as_pg "$BIN/psql" -h 127.0.0.1 -p "$primary" -U postgres -qAt \
			-c "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'" postgres)
		[ "$s" = sync ] && break
		sleep 0.05
	done
	[ "$s" = sync ] || { echo "pgctl: the standby did not become synchronous" >&2; exit 1; }
	echo "host=127.0.0.1 port=$port dbname=iotguard user=postgres"
	;;
promote)
	as_pg "$BIN/pg_ctl" -D "$dir" -w -t 30 promote >/dev/null
	# ready (not standby) once promoted
	for _ in $(seq 1 300); do
		sed -n 8p "$dir/postmaster.pid" 2>/dev/null | grep -q ready && exit 0
		sleep 0.05
	done
	echo "pgctl: $dir did not finish promotion" >&2; exit 1
	;;
stop)
	mode=${3:-fast}
	[ -f "$dir/postmaster.pid" ] || exit 0
	as_pg "$BIN/pg_ctl" -D "$dir" -m "$mode" -w -t 30 stop >/dev/null || true
	;;
kill)
	[ -f "$dir/postmaster.pid" ] || exit 0
	kill -9 "$(head -1 "$dir/postmaster.pid")" 2>/dev/null || true
	;;
*)
	echo "pgctl: unknown command '$cmd'" >&2; exit 2 ;;
esac
