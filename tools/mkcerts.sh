#!/usr/bin/env bash
# tools/mkcerts.sh: a private CA and a server certificate for the broker's
# TLS listener.
#
# Why this exists: connection tokens and join codes are bearer credentials,
# so the documented setup (README quick start, demo.sh) runs the broker with
# TLS only. This makes what a TLS listener needs in one step: a CA (the
# file clients trust: iotguard-agent --tls-ca, mosquitto_sub --cafile) and a
# server certificate signed by it, for 127.0.0.1 and localhost plus any
# names given. ECDSA P-256 keys, created under umask 077 (mode 0600). The
# CA key never needs to leave this directory; keep it offline in production.
#
# Usage: tools/mkcerts.sh DIR [NAME...]
#   DIR    where ca.crt, ca.key, server.crt and server.key go (created 0700)
#   NAME   extra DNS names or IP addresses for the server certificate
# An existing CA in DIR is reused; an existing server certificate is kept.
# Prints the lines for mosquitto.conf (and, as a comment, what clients trust).
set -euo pipefail

if [ $# -lt 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	exit 2
fi
command -v openssl >/dev/null || { echo "mkcerts.sh: openssl not found: apt-get install openssl" >&2; exit 1; }

DIR=$1
shift
umask 077
mkdir -p "$DIR"
chmod 0700 "$DIR"

SAN="IP:127.0.0.1,DNS:localhost"
for name in "$@"; do
	if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then SAN+=",IP:$name"; else SAN+=",DNS:$name"; fi
done

if [ ! -f "$DIR/ca.crt" ] || [ ! -f "$DIR/ca.key" ]; then
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 3650 \
		-keyout "$DIR/ca.key" -out "$DIR/ca.crt" -subj "/CN=iotguard cluster CA" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	echo "mkcerts.sh: new CA $DIR/ca.crt (key $DIR/ca.key, mode 0600)" >&2
fi

if [ -f "$DIR/server.crt" ] && [ -f "$DIR/server.key" ]; then
	echo "mkcerts.sh: keeping the existing $DIR/server.crt (delete it to make a new one)" >&2
else
	ext=$(mktemp "$DIR/ext.XXXXXX")
	trap 'rm -f "$ext" "$DIR/server.csr"' EXIT
	printf '%s\n' "subjectAltName=$SAN" "basicConstraints=critical,CA:FALSE" \
		"keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$ext"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
		-keyout "$DIR/server.key" -out "$DIR/server.csr" -subj "/CN=127.0.0.1" 2>/dev/null
	openssl x509 -req -in "$DIR/server.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" \
		-set_serial "0x$(openssl rand -hex 16)" -sha256 -days 825 -extfile "$ext" -out "$DIR/server.crt" 2>/dev/null
	echo "mkcerts.sh: new server certificate $DIR/server.crt for $SAN (key $DIR/server.key, mode 0600)" >&2
fi
chmod 0600 "$DIR/ca.key" "$DIR/server.key"
chmod 0644 "$DIR/ca.crt" "$DIR/server.crt"

echo "# under the TLS listener in mosquitto.conf:"
echo "certfile $DIR/server.crt"
echo "keyfile $DIR/server.key"
echo "# clients trust the CA: iotguard-agent --tls-ca $DIR/ca.crt, mosquitto_sub --cafile $DIR/ca.crt"
