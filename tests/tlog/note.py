"""note.py: C2SP signed notes, checkpoints, cosignatures and vkeys, in Python.

Why this exists: iotguard's C code makes and checks these bytes; a second
implementation written only from the C2SP texts (signed-note.md,
tlog-checkpoint.md, tlog-cosignature.md, tlog-witness.md), not from our C,
catches a misreading that the C tests would share. The test vectors in
tests/unit/test_cosig.c, test_witness.c and docs/LEDGER.md section 15 are
computed here (python3 note.py prints them).

Uses only hashlib, base64 and PyNaCl (nacl.signing).
"""

import base64
import binascii
import hashlib
import re
import struct

import nacl.exceptions
import nacl.signing

EM_DASH = "\u2014"
TYPE_ED25519 = 0x01          # signed-note Ed25519
TYPE_COSIG_V1 = 0x04         # tlog-cosignature Ed25519 (timestamped)
TIME_MAX = 2**63 - 1


class NoteError(ValueError):
    """The note, checkpoint, line or vkey is malformed or does not verify."""


def b64_strict(text):
    """Standard base64 with padding, canonical spelling only."""
    if not text or len(text) % 4 or not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", text):
        raise NoteError("not base64: %r" % text)
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode() != text:
        raise NoteError("not canonical base64: %r" % text)
    return raw


def key_name_ok(name):
    # signed-note: non-empty, no Unicode spaces, no '+'. No control
    # characters anywhere in a note.
    return bool(name) and "+" not in name and not any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in name)


def key_id(name, sig_type, pk):
    """SHA-256(key name || 0x0A || type || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + pk).digest()[:4]


class Verifier:
    """A verifier key: name, signature type (0x01 or 0x04), Ed25519 public key."""

    def __init__(self, name, sig_type, pk):
        if not key_name_ok(name):
            raise NoteError("bad key name %r" % name)
        if sig_type not in (TYPE_ED25519, TYPE_COSIG_V1) or len(pk) != 32:
            raise NoteError("unsupported key type %#x or key length %d" % (sig_type, len(pk)))
        self.name, self.type, self.pk = name, sig_type, bytes(pk)
        self.id = key_id(name, sig_type, self.pk)

    def vkey(self):
        """<name>+hex(key id)+base64(type || public key)."""
        return "%s+%s+%s" % (self.name, self.id.hex(), base64.b64encode(bytes([self.type]) + self.pk).decode())

    def check(self, sig, text):
        """Verifies sig (the bytes after the key id) over the note text;
        returns the cosignature timestamp (None for type 0x01)."""
        vk = nacl.signing.VerifyKey(self.pk)
        if self.type == TYPE_ED25519:
            msg, ts, signature = text, None, sig
            if len(sig) != 64:
                raise NoteError("signature by %s has %d bytes" % (self.name, len(sig)))
        else:
            if len(sig) != 8 + 64:
                raise NoteError("cosignature by %s has %d bytes" % (self.name, len(sig)))
            (ts,) = struct.unpack(">Q", sig[:8])
            if ts > TIME_MAX:
                raise NoteError("cosignature timestamp above 2^63-1")
            msg, signature = cosignature_message(ts, text), sig[8:]
        try:
            vk.verify(msg, signature)
        except nacl.exceptions.BadSignatureError:
            raise NoteError("signature by %s does not verify" % self.name)
        return ts


def parse_vkey(text):
    """Strict vkey parse; the key id must be the one the key gives."""
    parts = text.split("+", 2)  # base64 may hold "+"; names and hex cannot
    if len(parts) != 3:
        raise NoteError("vkey must have three '+'-separated parts")
    name, idhex, b64 = parts
    if not re.fullmatch(r"[0-9a-f]{8}", idhex):
        raise NoteError("vkey key id must be 8 lowercase hex digits")
    raw = b64_strict(b64)
    if len(raw) != 33:
        raise NoteError("vkey key material has %d bytes" % len(raw))
    v = Verifier(name, raw[0], raw[1:])
    if v.id.hex() != idhex:
        raise NoteError("vkey key id %s does not match its key (%s)" % (idhex, v.id.hex()))
    return v


def cosignature_message(timestamp, body):
    """tlog-cosignature Ed25519: header line, time line, then the note body."""
    return b"cosignature/v1\n" + b"time %d\n" % timestamp + body


def split_note(note):
    """Returns (text, [(name, key id, signature bytes, line)]) of a signed note."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("note is not UTF-8")
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise NoteError("note contains a control character")
    if not note.endswith("\n"):
        raise NoteError("note does not end in a newline")
    sep = note.rfind("\n\n")
    if sep < 0:
        raise NoteError("note has no blank line before its signatures")
    text, sigblock = note[: sep + 1], note[sep + 2:]
    sigs = []
    for line in sigblock.split("\n")[:-1]:
        if not line.startswith(EM_DASH + " "):
            raise NoteError("not a signature line: %r" % line)
        rest = line[2:]
        name, _, b64 = rest.partition(" ")
        if not key_name_ok(name) or not b64 or " " in b64:
            raise NoteError("malformed signature line %r" % line)
        raw = b64_strict(b64)
        if len(raw) < 5:
            raise NoteError("signature too short in %r" % line)
        sigs.append((name, raw[:4], raw[4:], line + "\n"))
    if not sigs:
        raise NoteError("note has no signatures")
    return text, sigs


def verify_note(note, verifiers):
    """signed-note verification: lines of unknown keys are ignored, a known
    key's line must verify, at least one known key must sign. Returns
    (text, {verifier name: timestamp or None})."""
    text, sigs = split_note(note)
    tb = text.encode()
    seen = {}
    for name, kid, sig, _ in sigs:
        for v in verifiers:
            if v.name == name and v.id == kid:
                seen[v.name] = v.check(sig, tb)
    if not seen:
        raise NoteError("no signature by a known key")
    return text, seen


def parse_checkpoint(text):
    """tlog-checkpoint body: origin, size, base64 root (+ extension lines)."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("checkpoint body needs three newline-terminated lines")
    origin, size, root = lines[0], lines[1], lines[2]
    if not origin:
        raise NoteError("empty origin")
    if not re.fullmatch(r"0|[1-9][0-9]*", size) or int(size) >= 2**64:
        raise NoteError("bad tree size %r" % size)
    r = b64_strict(root)
    if len(r) != 32:
        raise NoteError("root is %d bytes" % len(r))
    if any(x == "" for x in lines[3:-1]):
        raise NoteError("empty extension line")
    return origin, int(size), r


def verify_checkpoint(note, log_key, witnesses=(), quorum=0):
    """Verifies a checkpoint under the log's key (its name must be the
    origin) and counts the witnesses (cosignature/v1 keys) that cosigned it.
    Returns (origin, size, root, {witness name: timestamp})."""
    text, seen = verify_note(note, [log_key] + list(witnesses))
    if log_key.name not in seen:
        raise NoteError("no signature by the log key")
    origin, size, root = parse_checkpoint(text)
    if origin != log_key.name:
        raise NoteError("origin %r is not the log key's name" % origin)
    cosigned = {w.name: seen[w.name] for w in witnesses if w.name in seen}
    if len(cosigned) < quorum:
        raise NoteError("only %d of %d required cosignatures" % (len(cosigned), quorum))
    return origin, size, root, cosigned


def cosign(seed, name, timestamp, body):
    """A cosignature/v1 line over the note body (Ed25519 is deterministic)."""
    sk = nacl.signing.SigningKey(seed)
    pk = bytes(sk.verify_key)
    sig = sk.sign(cosignature_message(timestamp, body)).signature
    blob = key_id(name, TYPE_COSIG_V1, pk) + struct.pack(">Q", timestamp) + sig
    return "%s %s %s\n" % (EM_DASH, name, base64.b64encode(blob).decode())


def add_checkpoint_request(old_size, proof, checkpoint):
    """tlog-witness add-checkpoint request body."""
    out = "old %d\n" % old_size
    for h in proof:
        out += base64.b64encode(h).decode() + "\n"
    return out + "\n" + checkpoint


def parse_add_checkpoint_request(body):
    first, _, rest = body.partition("\n")
    m = re.fullmatch(r"old (0|[1-9][0-9]*)", first)
    if not m:
        raise NoteError("bad old size line %r" % first)
    proof = []
    while True:
        line, nl, rest = rest.partition("\n")
        if not nl:
            raise NoteError("request ends before the empty line")
        if line == "":
            break
        h = b64_strict(line)
        if len(h) != 32:
            raise NoteError("proof hash of %d bytes" % len(h))
        proof.append(h)
    if len(proof) > 63:
        raise NoteError("more than 63 proof lines")
    return int(m.group(1)), proof, rest


def seed_of(first):
    """The test suites' fixed seeds: bytes first, first+1, ..., first+31."""
    return bytes((first + i) & 0xFF for i in range(32))


# The fixed inputs of the vectors (docs/LEDGER.md sections 12 and 15).
VEC_CHECKPOINT = (
    "iotguard/demo\n"
    "3\n"
    "hHBrG3ofu/MYZfeUnwtEDYFOmbx3wgDJqk6FDxCrf80=\n"
    "\n"
    "\u2014 iotguard/demo XFh2Ex14Uv3x810ciN9gKSZJQb5SfH9+4AmMi1rH8YMhuOI80z1bFP/Mpoe5mlPCk82nGBC2RKS6bB9scYg0PKaa1Q4=\n"
)
VEC_CH_SEED = 0x00
VEC_WITNESSES = (("iotguard-witness/w1", 0x40), ("iotguard-witness/w2", 0x60))
VEC_TIME = 1700000000


def vectors():
    """Every value the C tests and the docs pin."""
    ch = Verifier("iotguard/demo", TYPE_ED25519, bytes(nacl.signing.SigningKey(seed_of(VEC_CH_SEED)).verify_key))
    text, _ = split_note(VEC_CHECKPOINT)
    out = {"ch_vkey": ch.vkey(), "witnesses": []}
    cosigned = VEC_CHECKPOINT
    for name, first in VEC_WITNESSES:
        pk = bytes(nacl.signing.SigningKey(seed_of(first)).verify_key)
        w = Verifier(name, TYPE_COSIG_V1, pk)
        line = cosign(seed_of(first), name, VEC_TIME, text.encode())
        cosigned += line
        out["witnesses"].append({"name": name, "seed_first": first, "pk": pk.hex(), "key_id": w.id.hex(),
                                 "vkey": w.vkey(), "line": line})
    out["cosigned"] = cosigned
    out["message"] = cosignature_message(VEC_TIME, text.encode()).decode()
    return out


if __name__ == "__main__":
    v = vectors()
    print("CH vkey:", v["ch_vkey"])
    for w in v["witnesses"]:
        print("%s: seed %#04x.. pk %s key id %s" % (w["name"], w["seed_first"], w["pk"], w["key_id"]))
        print("  vkey", w["vkey"])
        print("  line", w["line"], end="")
    print("cosigned message:\n" + v["message"], end="")
    print("cosigned checkpoint:\n" + v["cosigned"], end="")
