"""igkeys.py: an independent implementation of the key service's wire formats.

Why this exists: the integration tests must craft what the agent never
sends (join tokens for confined sessions, forged entropy, replayed and
tampered m2m messages, a join code that expired, a bad attestation), and
must open what only a device can open (its session-key box) to prove the
key never reaches the ledger. Writing it from docs/PROTOCOL.md and
docs/LEDGER.md alone, with PyNaCl, `cryptography` and hashlib, also proves
that those documents are enough to interoperate: test_keyservice.py checks
this module against the documents' test vectors and against the C agent.

Nothing here imports iotguard code. All integers are big-endian.
"""
import base64
import hashlib
import hmac
import json
import os
import struct
import time
from pathlib import Path

import nacl.bindings as sodium
import nacl.signing
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import igtoken

# ---- HKDF-SHA256 (RFC 5869) -------------------------------------------------------


def hkdf_sha256(ikm, info, length, salt=None):
    prk = hmac.new(salt if salt else bytes(32), ikm, hashlib.sha256).digest()
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:length]


def blake2b256(data):
    return hashlib.blake2b(data, digest_size=32).digest()


# ---- keys --------------------------------------------------------------------------


def seed_of(key_path):
    return igtoken.read_seed(str(key_path))


def public_key(seed):
    return nacl.signing.SigningKey(seed).verify_key.encode()


def sign(seed, message):
    return nacl.signing.SigningKey(seed).sign(message).signature


def x25519_public(ed_pk):
    return sodium.crypto_sign_ed25519_pk_to_curve25519(ed_pk)


def x25519_secret(seed):
    return sodium.crypto_sign_ed25519_sk_to_curve25519(seed + public_key(seed))


def write_keyfile(path, seed):
    """An iotguard key file (docs/LEDGER.md section 2), mode 0600."""
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("iotguard-ed25519-secret-v1 %s\n" % seed.hex())


# ---- join codes and join tokens ----------------------------------------------------------

CODE_PREFIX = "igjc1-"
JOIN_PREFIX = "igj1."
JOIN_DOMAIN = b"iotguard-join-v1\x00"


def join_key(ch_seed):
    return hkdf_sha256(ch_seed, b"iotguard join codes v1", 32)


def join_secret(jkey, code_id):
    return hmac.new(jkey, b"iotguard-join-code-v1" + code_id, hashlib.sha256).digest()[:16]


def code_hash(code_id, secret):
    return blake2b256(code_id + secret)


def code_text(code_id, secret):
    return CODE_PREFIX + (code_id + secret).hex()


def parse_code(text):
    text = text.strip().lower()
    assert text.startswith(CODE_PREFIX) and len(text) == 54, text
    raw = bytes.fromhex(text[len(CODE_PREFIX):])
    return raw[:8], raw[8:]


def join_token_bytes(seed, cluster, ident, code, issued_at=None, expires_at=None, nonce=None, ttl=300,
                     mac_secret=None):
    """The binary join token (PROTOCOL.md, "Join token")."""
    code_id, secret = parse_code(code)
    now = int(time.time())
    issued_at = now if issued_at is None else issued_at
    expires_at = issued_at + ttl if expires_at is None else expires_at
    nonce = os.urandom(16) if nonce is None else nonce
    c, i = cluster.encode(), ident.encode()
    body = (bytes([1, len(c)]) + c + bytes([len(i)]) + i + public_key(seed) + code_id +
            struct.pack(">QQ", issued_at, expires_at) + nonce)
    body += hmac.new(mac_secret or secret, JOIN_DOMAIN + body, hashlib.sha256).digest()
    return body + sign(seed, JOIN_DOMAIN + body)


def join_token(seed, cluster, ident, code, **kw):
    return JOIN_PREFIX + igtoken.b64url(join_token_bytes(seed, cluster, ident, code, **kw))


# ---- session-key boxes ---------------------------------------------------------------------

SUITES = {1: "aes256gcm", 2: "xchacha20poly1305"}
SUITE_BYTES = {v: k for k, v in SUITES.items()}


def box_key(dev_seed, ch_pk):
    """k = crypto_box_beforenm(X25519(CH pk), X25519(device sk))."""
    return sodium.crypto_box_beforenm(x25519_public(ch_pk), x25519_secret(dev_seed))


def open_key_box(msg, dev_seed, ch_pk):
    """Opens an inbox session_key message; returns the boxed fields."""
    k = box_key(dev_seed, ch_pk)
    box = base64.b64decode(msg["box"], validate=True)
    pt = sodium.crypto_box_open_afternm(box, bytes.fromhex(msg["box_nonce"]), k)
    key, key_id = pt[:32], pt[32:48]
    expires_at, suite, direction, plen = struct.unpack(">QBBB", pt[48:59])
    peer = pt[59:59 + plen].decode()
    rlen = pt[59 + plen]
    nonce = pt[60 + plen:60 + plen + rlen].decode()
    assert len(pt) == 60 + plen + rlen, "boxed plaintext has trailing bytes"
    return {"key": key, "key_id": key_id, "expires_at": expires_at, "suite": SUITES.get(suite, suite),
            "direction": direction, "peer": peer, "nonce": nonce, "plaintext": pt}


def key_box_plaintext(key, key_id, expires_at, suite, direction, peer, nonce):
    p, r = peer.encode(), nonce.encode()
    return key + key_id + struct.pack(">QBBB", expires_at, SUITE_BYTES[suite], direction, len(p)) + p + \
        bytes([len(r)]) + r


# ---- m2m envelope ------------------------------------------------------------------------------

M2M_DOMAIN = b"iotguard-m2m-v1\x00"


def m2m_nonce(suite, direction, counter):
    zeros = 3 if suite == "aes256gcm" else 15
    return bytes([direction]) + bytes(zeros) + struct.pack(">Q", counter)


def m2m_aad(topic, key_id, counter):
    return M2M_DOMAIN + topic.encode() + b"\x00" + key_id + struct.pack(">Q", counter)


def _aead(suite, encrypt, key, nonce, data, aad):
    if suite == "aes256gcm":
        g = AESGCM(key)
        return g.encrypt(nonce, data, aad) if encrypt else g.decrypt(nonce, data, aad)
    f = (sodium.crypto_aead_xchacha20poly1305_ietf_encrypt if encrypt
         else sodium.crypto_aead_xchacha20poly1305_ietf_decrypt)
    return f(data, aad, nonce, key)


def m2m_seal(suite, key, key_id, direction, counter, topic, plaintext):
    header = bytes([1, SUITE_BYTES[suite]]) + key_id + struct.pack(">Q", counter)
    return header + _aead(suite, True, key, m2m_nonce(suite, direction, counter), plaintext,
                          m2m_aad(topic, key_id, counter))


def m2m_header(msg):
    assert len(msg) >= 42, "m2m message shorter than header + tag"
    return {"version": msg[0], "suite": SUITES.get(msg[1], msg[1]), "key_id": msg[2:18],
            "counter": struct.unpack(">Q", msg[18:26])[0], "ciphertext": msg[26:]}


def m2m_open(key, direction, topic, msg):
    h = m2m_header(msg)
    return _aead(h["suite"], False, key, m2m_nonce(h["suite"], direction, h["counter"]), h["ciphertext"],
                 m2m_aad(topic, h["key_id"], h["counter"]))


def m2m_with_counter(msg, counter):
    return msg[:18] + struct.pack(">Q", counter) + msg[26:]


# ---- entropy and attestation --------------------------------------------------------------------


def entropy_payload(seq, ch_pk, block=None, inner_seq=None):
    """{"seq","sealed"}: crypto_box_seal(seq || block) to the CH's X25519 key."""
    block = os.urandom(32) if block is None else block
    inner = seq if inner_seq is None else inner_seq
    sealed = sodium.crypto_box_seal(struct.pack(">Q", inner) + block, x25519_public(ch_pk))
    return {"seq": seq, "sealed": base64.b64encode(sealed).decode()}


def attest_request(seed, ident, measurement, ts_ms=None):
    ts_ms = int(time.time() * 1000) if ts_ms is None else ts_ms
    msg = b"iotguard-attest-v1\x00" + ident.encode() + b"\x00" + measurement + struct.pack(">Q", ts_ms)
    return {"type": "attest", "measurement": measurement.hex(), "ts": ts_ms, "sig": sign(seed, msg).hex()}


def agent_measurement(exe_path, cluster, ident, entropy_interval=0, peer=""):
    config = "cluster=%s\nid=%s\nentropy_interval=%d\npeer=%s\n" % (cluster, ident, entropy_interval, peer)
    return blake2b256(Path(exe_path).read_bytes() + config.encode())


# ---- the ledger file (docs/LEDGER.md) ----------------------------------------------------------

def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


REC_JOIN_CODE, REC_JOIN_USED, REC_KEY_ISSUED, REC_ATTEST = 16, 17, 18, 19


def tlv(tag, value):
    return struct.pack(">BH", tag, len(value)) + value


def parse_tlvs(body):
    out, pos = [], 0
    while pos < len(body):
        tag, n = struct.unpack(">BH", body[pos:pos + 3])
        assert pos + 3 + n <= len(body), "TLV runs past the body"
        out.append((tag, body[pos + 3:pos + 3 + n]))
        pos += 3 + n
    return out


def frame_offsets(ledger_dir, whole=True):
    """(offset, length) of every frame of ledger.log, from the headers alone
    (so a tampered body or crc still counts). whole: the file must end on a
    frame boundary."""
    data = (Path(ledger_dir) / "ledger.log").read_bytes()
    out = []
    pos = 0
    while pos + 8 <= len(data):
        assert data[pos:pos + 4] == b"IGR1"
        n = struct.unpack(">I", data[pos + 4:pos + 8])[0]
        out.append((pos, n))
        pos += n
    if whole:
        assert pos == len(data), "ledger.log does not end on a frame boundary"
    return out


def read_frames(ledger_dir):
    """Every complete frame of ledger.log, checked (magic, crc, index)."""
    data = (Path(ledger_dir) / "ledger.log").read_bytes()
    frames, pos = [], 0
    while pos + 8 <= len(data):
        assert data[pos:pos + 4] == b"IGR1", "bad magic at byte %d" % pos
        flen = struct.unpack(">I", data[pos + 4:pos + 8])[0]
        if pos + flen > len(data):
            break   # torn tail
        f = data[pos:pos + flen]
        assert struct.unpack(">I", f[-4:])[0] == crc32c(f[:-4]), "crc mismatch at byte %d" % pos
        index, ts, rtype, flags = struct.unpack(">QQHH", f[8:28])
        assert index == len(frames)
        frames.append({"offset": pos, "frame_len": flen, "index": index, "ts": ts, "type": rtype,
                       "flags": flags, "prev": f[28:60], "body": f[60:-4],
                       "hash": blake2b256(b"\x00" + f[:-4])})
        pos += flen
    return frames


def append_record(ledger_dir, rtype, body, ts_ms=None):
    """Appends one well-formed frame after the last record (like a writer
    whose checkpoint did not catch up yet). Only with no broker running."""
    frames = read_frames(ledger_dir)
    last = frames[-1]
    head = (b"IGR1" + struct.pack(">IQQHH", 64 + len(body), last["index"] + 1,
                                  int(time.time() * 1000) if ts_ms is None else ts_ms, rtype, 0) + last["hash"])
    frame = head + body
    frame += struct.pack(">I", crc32c(frame))
    with open(Path(ledger_dir) / "ledger.log", "ab") as f:
        f.write(frame)
        f.flush()
        os.fsync(f.fileno())
    return last["index"] + 1


def join_code_record(ch_seed, role_byte, expires_at, by="test:igkeys", code_id=None):
    """Body of a JOIN_CODE record for a fresh code; returns (body, code text)."""
    code_id = os.urandom(8) if code_id is None else code_id
    secret = join_secret(join_key(ch_seed), code_id)
    body = (tlv(1, code_id) + tlv(2, code_hash(code_id, secret)) + tlv(3, bytes([role_byte])) +
            tlv(4, struct.pack(">Q", expires_at)) + tlv(5, by.encode()))
    return body, code_text(code_id, secret)


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"))
