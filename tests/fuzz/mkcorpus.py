#!/usr/bin/env python3
"""tests/fuzz/mkcorpus.py OUTDIR: writes the fuzz seed corpora from the docs.

Why this exists: the test vectors in docs/PROTOCOL.md and docs/LEDGER.md are
inputs that really parse and verify, so starting from them lets a short fuzz
run reach the code after the signature and MAC checks. Taking them from the
docs (not committed copies) keeps the seeds in step with the documented
formats; a vector that can no longer be found is an error, not a silent
empty corpus.
"""
import base64
import json
import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def need(what, found):
    if not found:
        sys.exit("mkcorpus.py: no %s found in the docs; update tests/fuzz/mkcorpus.py" % what)
    return found


def blocks(text):
    return re.findall(r"```[a-z]*\n(.*?)```", text, re.S)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: mkcorpus.py OUTDIR")
    out = sys.argv[1]
    proto, ledger = read("docs/PROTOCOL.md"), read("docs/LEDGER.md")
    seeds = {}

    seeds["fuzz_token"] = [t.encode() for t in need("token (igt1.)", re.findall(r"igt1\.[A-Za-z0-9_-]{100,}", proto))]

    join_tokens = need("join token (igj1.)", re.findall(r"igj1\.[A-Za-z0-9_-]{100,}", proto))
    codes = need("join code (igjc1-)", re.findall(r"igjc1-[0-9a-f]{48}", proto))
    seeds["fuzz_join"] = [t.encode() for t in join_tokens + codes]

    frames = [bytes.fromhex(b.strip()) for b in blocks(ledger) if re.fullmatch(r"49475231[0-9a-f]+\s*", b)]
    need("ledger frame (49475231...)", frames)
    seeds["fuzz_record"] = frames + [b"".join(frames)]

    cps = [b for b in blocks(ledger) if b.startswith("iotguard/") and "\n\u2014 " in b]
    seeds["fuzz_checkpoint"] = [c.encode() for c in need("checkpoint text", cps)]

    # LEDGER.md §13's tlog-proof example (its checkpoint is signed with the
    # vector key, so the fuzzer reaches the inclusion check).
    proofs = [b for b in blocks(ledger) if b.startswith("c2sp.org/tlog-proof@v1\n")]
    seeds["fuzz_tlogproof"] = [p.encode() for p in need("tlog-proof (c2sp.org/tlog-proof@v1)", proofs)]

    # The three frames of LEDGER.md §12 are a whole ledger, and its
    # checkpoint covers them: fuzz_ledger_scan reads a 2-byte checkpoint
    # length, the checkpoint, then the log.
    seeds["fuzz_ledger_scan"] = [len(c.encode()).to_bytes(2, "big") + c.encode() + b"".join(frames) for c in cps]

    # PROTOCOL.md "Log proofs": the enrolment and consistency answers (signed
    # with the example's cluster-head key, which fuzz_loghead trusts).
    answers = re.findall(r'\{"type":"log_(?:inclusion|consistency)_proof".*\}', proto)
    seeds["fuzz_loghead"] = [a.encode() for a in need("log proof answer", answers)]

    m2m = [bytes.fromhex(b.strip()) for b in blocks(proto) if re.fullmatch(r"010[12]4041[0-9a-f]+\s*", b)]
    seeds["fuzz_m2m"] = need("m2m message (0101/0102...)", m2m)

    nonce = need("key box nonce", re.search(r"`box_nonce`\): `([0-9a-f]{48})`", proto))
    box = need("key box", re.search(r"Box \(82 bytes\):\s*```\s*([0-9a-f]{164})\s*```", proto))
    seeds["fuzz_keybox"] = [bytes.fromhex(nonce.group(1) + box.group(1))]

    # The admin request example is an indented block; its "<64 hex>"
    # placeholders become the docs' device public key so enroll parses.
    m = need("admin request ({\"commands\":...)", re.search(r"\n    (\{\"commands\":\[\n(?:    .*\n)+)", proto))
    req = re.sub(r"\n\s*", "", m.group(1)).replace(
        "<64 hex>", "29acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd7")
    cmds = re.findall(r"\{\"command\":[^{}]*\}", req)
    seeds["fuzz_admin"] = [req.encode()] + [c.encode() for c in need("admin command", cmds)]

    seeds["fuzz_policy"] = [read("config/policy.json").encode()]

    seeds["fuzz_json"] = [bytes([i]) + n for i, n in enumerate(
        [b"0", b"42", b"255", b"65536", b"1e10", b"9007199254740991", b"9007199254740992", b"-1", b"1.5", b"1e300"])]

    # Coins (PROTOCOL.md "Coin test vectors"): the header plaintexts, the
    # data messages, the sealed headers inside them (bytes 6..6+h) and the
    # result; every kind goes to every parser in fuzz_coin.
    coin_blocks = [bytes.fromhex(b.strip()) for b in blocks(proto) if re.fullmatch(r"(01000102|49474431|49475331)[0-9a-f]+\s*", b)]
    plains = need("coin header plaintext (01000102...)", [b for b in coin_blocks if b[:4] == bytes.fromhex("01000102")])
    datas = need("coin data message (IGD1...)", [b for b in coin_blocks if b[:4] == b"IGD1"])
    results = need("coin result message (IGS1...)", [b for b in coin_blocks if b[:4] == b"IGS1"])
    sealed = [d[6:6 + int.from_bytes(d[4:6], "big")] for d in datas]
    seeds["fuzz_coin"] = plains + datas + sealed + results

    keyline = need("key file example (iotguard-ed25519-secret-v1 ...)",
                   re.findall(r"^iotguard-ed25519-secret-v1 [0-9a-f]{64}$", proto, re.M))
    seeds["fuzz_keyfile"] = [k.encode() + b"\n" for k in keyline] + [k.encode() for k in keyline]

    # Bank requests (PROTOCOL.md "Requests to the cluster head"), their
    # placeholders filled from "Coin test vectors": coin 00..1f, collector
    # sensor-1, and the sealed header of the first data message (bytes
    # 6..6+h), which opens with the vectors' bank key as fuzz_svc_bank uses.
    rows = need("bank request ({\"type\":\"mint\"...)",
                re.findall(r'`(\{"type":"(?:mint|redeem|refund|balance)".*?\})`', proto))
    data = need("coin data message (49474431...)",
                [bytes.fromhex(b.strip()) for b in blocks(proto) if re.fullmatch(r"49474431[0-9a-f]+\s*", b)])[0]
    header = base64.b64encode(data[6:6 + int.from_bytes(data[4:6], "big")]).decode()
    fill = [("<1..64>", "16"), ("<1..64 chars, optional>", "b-1"), ("<1..64 chars>", "n-1"),
            ("iotguard/C/dev/<collector>/data/<stream>", "iotguard/demo/dev/sensor-1/data/temp"),
            ("<base64 of the sealed header>", header),
            ('"<64 hex coin>", ...1..64', '"' + bytes(range(32)).hex() + '"')]
    bank, seen = [], set()
    for row in rows:
        kind = re.match(r'\{"type":"(\w+)"', row).group(1)
        if kind in seen:
            continue   # the first of each type is the request; a later one is its reply
        seen.add(kind)
        for old, new in fill:
            row = row.replace(old, new)
        json.loads(row)   # every placeholder filled
        bank.append(row.encode())
    seeds["fuzz_svc_bank"] = bank

    # The key, attest and entropy requests (PROTOCOL.md) are templates: their
    # placeholders become values of the documented shape.
    sk_req = need("session_key request", re.search(r'\{"type":"session_key","peer":"<id>","nonce":"[^"]*"\}', proto))
    at_req = need("attest request", re.search(r'\{"type":"attest","measurement":"<64 hex>","ts":<ms>,"sig":"<128 hex>"\}', proto))
    en_msg = need("entropy message", re.search(r'\{"seq": <u64 >= 1>, "sealed": "<[^"]*>"\}', proto))
    seeds["fuzz_svc_keys"] = [
        re.sub(r'"nonce":"[^"]*"', '"nonce":"k-1"', sk_req.group(0).replace("<id>", "sensor-2")).encode(),
        at_req.group(0).replace("<64 hex>", "11" * 32).replace("<ms>", "1767225600000")
        .replace("<128 hex>", "00" * 64).encode(),
        re.sub(r'"<[^"]*>"', '"' + base64.b64encode(bytes(88)).decode() + '"',
               en_msg.group(0).replace("<u64 >= 1>", "1")).encode(),
    ]

    # Custody (PROTOCOL.md "Custody test vectors", name = hex lines): the
    # documented files and boxes as received, their plaintexts (the targets
    # also wrap every input in a valid file or box), and numbers laid out as
    # fuzz_custody_boxes reads them.
    sec = need("custody test vectors section", re.search(r"### Custody test vectors\n(.*?)(?:\n## |\Z)", proto, re.S))
    cv = {k: bytes.fromhex(v) for k, v in re.findall(r"^([a-z0-9_.]+) = ([0-9a-f]+)$", sec.group(1), re.M)}
    for name in ("store.file", "store.plaintext", "sealed.file", "ch.seed", "deal_box.nonce", "deal_box.box",
                 "deal_box.plaintext", "release_box.nonce", "release_box.box", "release_box.plaintext",
                 "deal_a.commitment0", "deal_a.commitment1", "deal_a.commitment2", "deal_a.share1",
                 "deal_a.share2", "deal_a.share3", "deal_a.share5"):
        need("custody vector " + name, cv.get(name))
    seeds["fuzz_custody_store"] = [cv["store.file"], cv["store.plaintext"], b"\x00"]
    ch_key_file = b"iotguard-ed25519-secret-v1 " + cv["ch.seed"].hex().encode() + b"\n"
    seeds["fuzz_custody_sealed"] = [cv["sealed.file"], ch_key_file]
    commits = cv["deal_a.commitment0"] + cv["deal_a.commitment1"] + cv["deal_a.commitment2"]
    seeds["fuzz_custody_boxes"] = [
        cv["deal_box.nonce"] + cv["deal_box.box"], cv["release_box.nonce"] + cv["release_box.box"],
        cv["deal_box.plaintext"], cv["release_box.plaintext"],
        bytes([3, 2 << 1]) + commits + cv["deal_a.share2"],                      # verify share 2 (k = 3)
        bytes([3, 0]) + bytes([1, 3, 5]) + cv["deal_a.share1"] + cv["deal_a.share3"] + cv["deal_a.share5"],
    ]

    # The custody messages of PROTOCOL.md "Custody: the holder", their
    # placeholders filled for the services the targets set up (epoch 1,
    # index 1, k = 2, n = 3); "REQUEST", "BOX", "PK" and "<commitments>" are
    # the targets' own placeholders for values only they know (the request
    # id, a valid box, the requester key, the dealt commitments).
    msgs = need("custody message ({\"type\":\"custody_...)",
                re.findall(r'`(\{"type":"custody_(?:ack|share|deal|active|request)".*?\})`', proto))
    fill = [('"nonce":..', '"nonce":"cus-0123456789ab"'), ('"request":..', '"request":"REQUEST"'),
            ('"message":..', '"message":"m"'), ('\\|"old_epoch"', ""), ('\\|"not_approved"', ""), ('"<same>"', '"REQUEST"'),
            ('"<32 hex>"', '"REQUEST"'), ('"<64 hex>" ×K', '"<commitments>"'), ('"<64 hex>"', '"PK"'),
            ('"<48 hex>"', '"' + "00" * 24 + '"'), ('"<base64>"', '"BOX"'), (":E", ":1"), (":I", ":1"),
            (":K", ":2"), (":N", ":3"), (":<active>", ":1")]
    custody_msgs = {}
    for m in msgs:
        for old, new in fill:
            m = m.replace(old, new)
        json.loads(m)   # every placeholder filled
        kind = custody_msgs.setdefault(json.loads(m)["type"], [])
        if m.encode() not in kind:
            kind.append(m.encode())
    for kind in ("custody_ack", "custody_share", "custody_deal", "custody_active", "custody_request"):
        need("custody message " + kind, custody_msgs.get(kind))
    status = need("status with battery and custody", re.search(r'^ *("battery":\{[^}]*\})\n\s*("custody":\{.*\})$',
                                                               proto, re.M))
    status_msg = ('{"id":"d1","state":"online","uptime_s":120,' + status.group(1) + "," + status.group(2) + "}").encode()
    json.loads(status_msg)
    seeds["fuzz_custody_svc"] = custody_msgs["custody_ack"] + custody_msgs["custody_share"] + [
        b'{"type":"custody_ack","nonce":"n","epoch":1,"index":1,"error":"bad_share","message":"m"}', status_msg]
    # fuzz_custody_agent's holder already holds epoch 7 (active): the
    # messages name epoch 8, and one request asks for epoch 7.
    agent_msgs = custody_msgs["custody_deal"] + custody_msgs["custody_active"] + custody_msgs["custody_request"]
    seeds["fuzz_custody_agent"] = [m.replace(b'"epoch":1', b'"epoch":8') for m in agent_msgs] + [
        m.replace(b'"epoch":1', b'"epoch":7') for m in custody_msgs["custody_request"]]

    # Key rings (PROTOCOL.md "Key rings: byte layouts and test vectors", name
    # = value lines): fuzz_kp's first byte picks the parser (0 hello, 1 hello
    # to be given its mac, 2 path, 3 path to be given its mac or box, 4
    # revoked statement, 5 statement fields, 6 ring plaintext, 7 ring file, 8
    # v2 data); the target's keys are the vectors', so these verify.
    sec = need("key rings test vectors section",
               re.search(r"## Key rings: byte layouts and test vectors\n(.*?)(?:\n## |\Z)", proto, re.S))
    kv = dict(re.findall(r"^([a-z0-9_.]+) = (\S+)$", sec.group(1), re.M))
    for name in ("hello.direct.kind1", "hello.direct.kind2", "hello.path.kind1", "hello.path.kind2",
                 "path.request", "path.key_to_a", "revoked.json", "key_ring.plain", "file.bytes",
                 "data.direct.dir0", "data.direct.dir1"):
        need("key rings vector " + name, kv.get(name))
    hx = {k: bytes.fromhex(v) for k, v in kv.items() if re.fullmatch(r"(?:[0-9a-f]{2})+", v)}
    hellos = [hx[k] for k in ("hello.direct.kind1", "hello.direct.kind2", "hello.path.kind1", "hello.path.kind2")]
    paths = [hx["path.request"], hx["path.key_to_a"]]
    seeds["fuzz_kp"] = ([b"\x00" + h for h in hellos] + [b"\x01" + h[:-32] for h in hellos] +
                        [b"\x02" + m for m in paths] + [b"\x03" + paths[0][:-32], b"\x03" + paths[1][:-48]] +
                        [b"\x04" + kv["revoked.json"].encode(), b"\x05" + bytes(range(16)) + bytes([0, 5, 0, 9]),
                         b"\x06" + hx["key_ring.plain"], b"\x07" + hx["file.bytes"],
                         b"\x08" + hx["data.direct.dir0"], b"\x08" + hx["data.direct.dir1"]])
    # fuzz_kp_agent: byte 0 the sender (0 dev-b, 1 dev-c), byte 1 the mode
    # (0 as is, 1 hello given its mac, 2 v2 sealed from dev-b after an
    # 8-byte counter, 3 path message given its mac or box).
    seeds["fuzz_kp_agent"] = ([bytes([s, 1]) + h for s in (0, 1) for h in hellos] +
                              [bytes([s, 3]) + m for s in (0, 1) for m in paths] +
                              [b"\x00\x02" + (1).to_bytes(8, "big") + b"hello", b"\x00\x00" + hx["data.direct.dir0"]])

    # fuzz_nonce_share: PROTOCOL.md's example batch, and two entries.
    ex = re.search(r"`(010001)` `([0-9a-f]{32})`\s*`([0-9a-f]{16})` \(27 bytes\)", proto)
    need("the nonce batch example", ex)
    one = bytes.fromhex("".join(ex.groups()))
    seeds["fuzz_nonce_share"] = [one, b"\x01\x00\x02" + one[3:] + one[3:][::-1]]

    for target, items in seeds.items():
        d = os.path.join(out, target)
        os.makedirs(d, exist_ok=True)
        for i, data in enumerate(items):
            with open(os.path.join(d, "doc-%02d" % i), "wb") as f:
                f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
