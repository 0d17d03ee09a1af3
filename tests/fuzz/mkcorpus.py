#!/usr/bin/env python3
"""tests/fuzz/mkcorpus.py OUTDIR: writes the fuzz seed corpora from the docs.

Why this exists: the test vectors in docs/PROTOCOL.md and docs/LEDGER.md are
inputs that really parse and verify, so starting from them lets a short fuzz
run reach the code after the signature and MAC checks. Taking them from the
docs (not committed copies) keeps the seeds in step with the documented
formats; a vector that can no longer be found is an error, not a silent
empty corpus.
"""
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

    for target, items in seeds.items():
        d = os.path.join(out, target)
        os.makedirs(d, exist_ok=True)
        for i, data in enumerate(items):
            with open(os.path.join(d, "doc-%02d" % i), "wb") as f:
                f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
