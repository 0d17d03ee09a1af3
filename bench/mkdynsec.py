#!/usr/bin/env python3
"""mkdynsec.py: a dynamic-security plugin config with N password clients.

Why this exists: bench_connect compares iotguard's token check with
Mosquitto's own dynamic-security plugin, which needs one client entry per
device. Creating 1000 clients through `mosquitto_ctrl` one call at a time is
slow and needs a running broker, so this writes the JSON directly in the
format `mosquitto_ctrl dynsec init` produces: PBKDF2-HMAC-SHA512 with a
12-byte salt and 101 iterations (the plugin's default), base64-encoded.

Usage: mkdynsec.py --out dynsec.json --creds creds.txt --count N
creds.txt gets "id password" lines for bench_connect.
"""
import argparse
import base64
import hashlib
import json
import os
import sys

ITERATIONS = 101


def client(username: str, password: str) -> dict:
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS)
    return {
        "username": username,
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": ITERATIONS,
        "roles": [],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--creds", required=True)
    ap.add_argument("--count", type=int, default=1024)
    args = ap.parse_args()
    if args.count < 1:
        print("mkdynsec.py: --count must be at least 1", file=sys.stderr)
        return 2
    clients, lines = [], []
    for i in range(args.count):
        user = "dev-%07d" % i
        password = "bench-password-%07d" % i   # benchmark only, never a real secret
        clients.append(client(user, password))
        lines.append("%s %s\n" % (user, password))
    config = {
        "clients": clients,
        "groups": [],
        "roles": [],
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": True,
            "subscribe": False,
            "unsubscribe": True,
        },
    }
    with open(args.out, "w") as f:
        json.dump(config, f, indent=1)
    with open(args.creds, "w") as f:
        f.writelines(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
