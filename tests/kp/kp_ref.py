"""kp_ref.py: an independent implementation of every byte layout of iotguard's
key rings (issue 10, "kp": key predistribution), written from the design text
and docs/PROTOCOL.md ("Key rings: byte layouts and test vectors"), not from
lib/kp/*.c or agents/kp_agent.c.

Why this exists: the C code's test vectors must come from somewhere else than
the C code, or a shared misreading of a layout would go unnoticed. Here HMAC,
SHA-256 and HKDF are Python's hmac/hashlib (HKDF written out from RFC 5869),
the rejection sampling of ring ids is plain integers, and only the AEAD,
crypto_box and Ed25519 come from PyNaCl. Integration tests also use it to
reason about rings without the C library (ring_ids, pair_key,
verify_revoked).

Every function raises RefError (a ValueError) on input the layouts refuse.
"""
import base64
import hashlib
import hmac
import json
import re
import struct

import nacl.bindings as nb
import nacl.exceptions

KEY_BYTES = 32
SEED_BYTES = 32
POOL_MAX = 1 << 24
RING_MAX = 1024
Q_MAX = 16
PAIR_MAX_IDS = 64
NONCE_BYTES = 32
PATH_ID_BYTES = 16
REQ_ID_BYTES = 16

HELLO_VERSION = 3
DATA_VERSION = 2
PATH_VERSION = 4
SUITE_XCHACHA = 2
FILE_MAGIC = b"IGKRING1"

_ID_RE = re.compile(rb"[A-Za-z0-9_.-]{1,64}")


class RefError(ValueError):
    """Input that the key-ring layouts refuse (malformed, bad mac, bad signature)."""


# ----------------------------------------------------------------- helpers ---
def u8(x):
    return struct.pack(">B", x)


def u16(x):
    return struct.pack(">H", x)


def u32(x):
    return struct.pack(">I", x)


def u64(x):
    return struct.pack(">Q", x)


def _id_bytes(ident):
    """A device id or cluster name as bytes, checked against [A-Za-z0-9_.-]{1,64}."""
    b = ident.encode("ascii") if isinstance(ident, str) else bytes(ident)
    if not _ID_RE.fullmatch(b):
        raise RefError("bad id %r: 1..64 bytes of [A-Za-z0-9_.-]" % (ident,))
    return b


def lp(ident):
    """len (1) || id."""
    b = _id_bytes(ident)
    return u8(len(b)) + b


def check_params(epoch, pool, ring, q):
    """Section 0 ranges."""
    if not 1 <= epoch < 2**64:
        raise RefError("epoch must be >= 1")
    if not 2 <= pool <= POOL_MAX:
        raise RefError("pool must be 2..2^24")
    if not 1 <= ring <= RING_MAX or ring > pool:
        raise RefError("ring must be 1..1024 and <= pool")
    if not 1 <= q <= Q_MAX or q > ring:
        raise RefError("q must be 1..16 and <= ring")


# -------------------------------------------------------------------- HKDF ---
def hkdf(ikm, info, length, salt=None):
    """RFC 5869 HKDF with SHA-256. salt None = absent = HashLen (32) zero bytes (RFC 5869 2.2)."""
    if salt is None:
        salt = bytes(32)
    if not 0 <= length <= 255 * 32:
        raise RefError("HKDF length out of range")
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()          # 2.2 Extract
    okm, t, i = b"", b"", 1
    while len(okm) < length:                                     # 2.3 Expand
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        okm += t
        i += 1
    return okm[:length]


def hkdf_prk(ikm, salt=None):
    return hmac.new(bytes(32) if salt is None else salt, ikm, hashlib.sha256).digest()


# ------------------------------------------------------------ derivations ---
def pool_secret(ch_seed, epoch):
    """HKDF(ikm = cluster-head Ed25519 seed, info = "iotguard kp pool secret v1" || epoch (8), L = 32)."""
    if len(ch_seed) != 32:
        raise RefError("ch seed must be 32 bytes")
    return hkdf(ch_seed, b"iotguard kp pool secret v1" + u64(epoch), 32)


def ring_seed(psecret):
    return hkdf(psecret, b"iotguard kp ring seed v1", 32)


def pool_key(psecret, i):
    return hkdf(psecret, b"iotguard kp pool v1" + u32(i), 32)


# ---------------------------------------------------------------- ring ids ---
def ring_block(seed, device_id, j):
    """Block j of A.1: HMAC-SHA256(seed, "iotguard kp ring ids v1" 00 id 00 j (4))."""
    return hmac.new(seed, b"iotguard kp ring ids v1\x00" + _id_bytes(device_id) + b"\x00" + u32(j),
                    hashlib.sha256).digest()


def ring_ids(seed: bytes, device_id: str, pool: int, ring: int) -> list:
    """A device's m ring ids, ascending (A.1): words of the HMAC blocks by rejection sampling."""
    if len(seed) != 32:
        raise RefError("ring seed must be 32 bytes")
    if not 2 <= pool <= POOL_MAX or not 1 <= ring <= RING_MAX or ring > pool:
        raise RefError("bad pool/ring")
    return ids_from_words(ring_words(seed, device_id), pool, ring)


def ring_words(seed, device_id):
    """The endless stream of 4-byte big-endian words: block 0's eight, then block 1's, ..."""
    j = 0
    while True:
        block = ring_block(seed, device_id, j)
        for w in range(8):
            yield int.from_bytes(block[4 * w:4 * w + 4], "big")
        j += 1


def ids_from_words(words, pool, ring):
    """A.1's rejection sampling over a word stream: x >= limit is skipped, else x mod P unless
    already chosen; stops at m ids (mid-block is fine); returns them ascending."""
    limit = 2**32 - (2**32 % pool)
    chosen = set()
    for x in words:
        if x >= limit:
            continue
        chosen.add(x % pool)      # an id already chosen adds nothing: "skipped"
        if len(chosen) == ring:
            break
    return sorted(chosen)


def ring_keys(psecret, ids):
    return [pool_key(psecret, i) for i in ids]


def ring_hash(epoch, device_id, ids, keys):
    """A.2: SHA-256 over the label, epoch, the id, m and each (id, pool key) ascending."""
    if len(ids) != len(keys) or list(ids) != sorted(set(ids)):
        raise RefError("ids must be strictly ascending, one key each")
    h = hashlib.sha256(b"iotguard kp ring v1\x00" + u64(epoch) + lp(device_id) + u32(len(ids)))
    for i, k in zip(ids, keys):
        h.update(u32(i) + k)
    return h.digest()


def shared(a, b, bad=(), cap=PAIR_MAX_IDS):
    """(a ∩ b) \\ bad, ascending, the lowest `cap`."""
    return sorted((set(a) & set(b)) - set(bad))[:cap]


def _check_ids(ids):
    """Ids on the wire: strictly ascending pool ids, so each below 2^24 (no pool is larger)."""
    if any(ids[i] >= ids[i + 1] for i in range(len(ids) - 1)):
        raise RefError("ids not strictly ascending")
    if ids and ids[-1] >= POOL_MAX:
        raise RefError("id %d is not a pool id (>= 2^24)" % ids[-1])


# ------------------------------------------------------------ pairwise key ---
def pair_key(epoch, id_a, id_b, ids, keys):
    """K_AB (A.3). ids ascending (1..64), keys[i] = pool key ids[i]; symmetric in (id_a, id_b)."""
    if not 1 <= len(ids) <= PAIR_MAX_IDS or len(keys) != len(ids):
        raise RefError("a pairwise key uses 1..64 ids, one key each")
    if any(ids[i] >= ids[i + 1] for i in range(len(ids) - 1)):
        raise RefError("ids must be strictly ascending")
    a, b = _id_bytes(id_a), _id_bytes(id_b)
    if a == b:
        raise RefError("a pairwise key is between two different devices")
    lo, hi = (a, b) if a < b else (b, a)   # bytes compare as strcmp does on ASCII ids
    info = (b"iotguard kp pair v1\x00" + u64(epoch) + u8(len(lo)) + lo + u8(len(hi)) + hi + u16(len(ids))
            + b"".join(u32(i) for i in ids))
    return hkdf(b"".join(keys), info, 32)


def pair_key_from_seed(ch_seed, epoch, id_a, id_b, pool, ring, bad=(), q=1):
    """Convenience for tests: K_AB from the cluster-head seed alone, or None below q usable ids."""
    ps = pool_secret(ch_seed, epoch)
    seed = ring_seed(ps)
    ids = shared(ring_ids(seed, id_a, pool, ring), ring_ids(seed, id_b, pool, ring), bad)
    if len(ids) < q:
        return None
    return pair_key(epoch, id_a, id_b, ids, ring_keys(ps, ids))


# ---------------------------------------------------------- hello, session ---
def _mac(K, label, topic, body):
    return hmac.new(K, label + b"\x00" + topic.encode() + b"\x00" + body, hashlib.sha256).digest()


def hello_build(kind, epoch, K, topic, na, nb_=None, ids=None, path_id=None, via=None):
    """A.4. source 0 when ids is given, source 1 (path key) when path_id and via are."""
    if kind not in (1, 2):
        raise RefError("kind must be 1 or 2")
    body = u8(HELLO_VERSION) + u8(kind) + u64(epoch)
    if ids is not None:
        if not 1 <= len(ids) <= PAIR_MAX_IDS or any(ids[i] >= ids[i + 1] for i in range(len(ids) - 1)):
            raise RefError("1..64 strictly ascending ids")
        body += u8(0) + u16(len(ids)) + b"".join(u32(i) for i in ids)
    else:
        if len(path_id) != PATH_ID_BYTES:
            raise RefError("path key id is 16 bytes")
        body += u8(1) + path_id + lp(via)
    if len(na) != 32:
        raise RefError("NA is 32 bytes")
    body += na
    if kind == 2:
        if nb_ is None or len(nb_) != 32:
            raise RefError("NB is 32 bytes")
        body += nb_
    return body + _mac(K, b"iotguard kp hello v1", topic, body)


def hello_parse(msg):
    """Fields of a hello without checking its mac; RefError when malformed."""
    def need(n):
        if len(msg) < off + n:
            raise RefError("truncated hello")
    off = 0
    need(11)
    version, kind, epoch, source = struct.unpack(">BBQB", msg[:11])
    if version != HELLO_VERSION or kind not in (1, 2) or source not in (0, 1):
        raise RefError("bad version, kind or source")
    if epoch == 0:
        raise RefError("epoch 0 (epochs start at 1)")
    h = dict(kind=kind, epoch=epoch, source=source)
    off = 11
    if source == 0:
        need(2)
        n = struct.unpack(">H", msg[off:off + 2])[0]
        off += 2
        if not 1 <= n <= PAIR_MAX_IDS:
            raise RefError("n must be 1..64")
        need(4 * n)
        ids = [struct.unpack(">I", msg[off + 4 * i:off + 4 * i + 4])[0] for i in range(n)]
        off += 4 * n
        _check_ids(ids)
        h["ids"] = ids
    else:
        need(17)
        h["path_id"] = msg[off:off + 16]
        c = msg[off + 16]
        off += 17
        need(c)
        via = msg[off:off + c]
        if not _ID_RE.fullmatch(via):
            raise RefError("bad intermediary id")
        h["via"] = via.decode()
        off += c
    want = off + 32 + (32 if kind == 2 else 0) + 32
    if len(msg) != want:
        raise RefError("hello has %d bytes, expected %d" % (len(msg), want))
    h["na"] = msg[off:off + 32]
    off += 32
    if kind == 2:
        h["nb"] = msg[off:off + 32]
        off += 32
    h["mac"] = msg[off:]
    return h


def hello_verify(msg, K, topic):
    hello_parse(msg)
    if not hmac.compare_digest(_mac(K, b"iotguard kp hello v1", topic, msg[:-32]), msg[-32:]):
        raise RefError("hello mac does not verify")
    return True


def session(K, na, nb_, initiator, responder):
    """A.4: (key, key id) = HKDF(salt = NA || NB, ikm = K, "iotguard kp session v1" 00 I 00 R, 48)."""
    okm = hkdf(K, b"iotguard kp session v1\x00" + _id_bytes(initiator) + b"\x00" + _id_bytes(responder), 48,
               salt=na + nb_)
    return okm[:32], okm[32:48]


# ------------------------------------------------------ v2 data messages ---
def m2m_aad(version, topic, key_id, counter):
    return b"iotguard-m2m-v%d\x00" % version + topic.encode() + b"\x00" + key_id + u64(counter)


def m2m_nonce(direction, counter):
    """XChaCha20-Poly1305 nonce: direction || 15 zero bytes || counter (8)."""
    return u8(direction) + bytes(15) + u64(counter)


def data_seal(key, key_id, direction, counter, topic, pt):
    """A.5: version 2, suite 2 only."""
    if counter < 1 or direction not in (0, 1) or len(key_id) != 16 or len(pt) > 65536:
        raise RefError("bad counter, direction, key id or length")
    aad = m2m_aad(DATA_VERSION, topic, key_id, counter)
    ct = nb.crypto_aead_xchacha20poly1305_ietf_encrypt(pt, aad, m2m_nonce(direction, counter), key)
    return u8(DATA_VERSION) + u8(SUITE_XCHACHA) + key_id + u64(counter) + ct


def data_open(key, direction, topic, msg):
    if not 42 <= len(msg) <= 65578 or msg[0] != DATA_VERSION or msg[1] != SUITE_XCHACHA:
        raise RefError("not a version-2 suite-2 m2m message")
    key_id, counter = msg[2:18], struct.unpack(">Q", msg[18:26])[0]
    if counter == 0:
        raise RefError("counter 0")
    try:
        pt = nb.crypto_aead_xchacha20poly1305_ietf_decrypt(msg[26:], m2m_aad(DATA_VERSION, topic, key_id, counter),
                                                           m2m_nonce(direction, counter), key)
    except nacl.exceptions.CryptoError:
        raise RefError("m2m tag does not verify")
    return dict(key_id=key_id, counter=counter, plaintext=pt)


# ----------------------------------------------------------- path messages ---
def _ids_field(ids):
    if not 1 <= len(ids) <= PAIR_MAX_IDS or any(ids[i] >= ids[i + 1] for i in range(len(ids) - 1)):
        raise RefError("1..64 strictly ascending ids")
    return u16(len(ids)) + b"".join(u32(i) for i in ids)


PATH_LABEL = b"iotguard kp path v1"


def path_request_build(epoch, ids, target, req_id, K, topic):
    """A.6 kind 1 (A -> C): mac under K_AC."""
    if len(req_id) != REQ_ID_BYTES:
        raise RefError("request id is 16 bytes")
    body = u8(PATH_VERSION) + u8(1) + u64(epoch) + _ids_field(ids) + lp(target) + req_id
    return body + _mac(K, PATH_LABEL, topic, body)


def path_key_build(epoch, ids, requester, target, req_id, path_id, box_nonce, K, topic, path_key):
    """A.6 kind 2 (C -> X): the path key in an XChaCha20-Poly1305 box under K_CX."""
    if len(req_id) != 16 or len(path_id) != 16 or len(box_nonce) != 24 or len(path_key) != 32:
        raise RefError("bad request id, path id, nonce or key length")
    head = (u8(PATH_VERSION) + u8(2) + u64(epoch) + _ids_field(ids) + lp(requester) + lp(target) + req_id
            + path_id + box_nonce)
    ad = PATH_LABEL + b"\x00" + topic.encode() + b"\x00" + head
    return head + nb.crypto_aead_xchacha20poly1305_ietf_encrypt(path_key, ad, box_nonce, K)


def path_parse(msg):
    off = 0

    def take(n):
        nonlocal off
        if len(msg) < off + n:
            raise RefError("truncated path message")
        b = msg[off:off + n]
        off += n
        return b

    def take_id():
        c = take(1)[0]
        b = take(c)
        if not _ID_RE.fullmatch(b):
            raise RefError("bad id in path message")
        return b.decode()

    version, kind, epoch, n = struct.unpack(">BBQH", take(12))
    if version != PATH_VERSION or kind not in (1, 2) or not 1 <= n <= PAIR_MAX_IDS or epoch == 0:
        raise RefError("bad version, kind, epoch or n")
    ids = list(struct.unpack(">%dI" % n, take(4 * n)))
    _check_ids(ids)
    p = dict(kind=kind, epoch=epoch, ids=ids, a="")
    if kind == 2:
        p["a"] = take_id()
    p["b"] = take_id()
    p["req_id"] = take(16)
    if kind == 1:
        p["mac"] = take(32)
    else:
        p["path_id"] = take(16)
        p["box_nonce"] = take(24)
        p["box"] = take(48)
    if off != len(msg):
        raise RefError("trailing bytes in path message")
    return p


def path_request_verify(msg, K, topic):
    if path_parse(msg)["kind"] != 1:
        raise RefError("not a path request")
    if not hmac.compare_digest(_mac(K, PATH_LABEL, topic, msg[:-32]), msg[-32:]):
        raise RefError("path request mac does not verify")
    return True


def path_key_open(msg, K, topic):
    p = path_parse(msg)
    if p["kind"] != 2:
        raise RefError("not a path key")
    head = msg[:-48]
    try:
        return nb.crypto_aead_xchacha20poly1305_ietf_decrypt(msg[-48:], PATH_LABEL + b"\x00" + topic.encode()
                                                             + b"\x00" + head, p["box_nonce"], K)
    except nacl.exceptions.CryptoError:
        raise RefError("path key box does not open")


# ---------------------------------------------------- revoked statement ---
def revoked_bytes(cluster, epoch, pool, ring, q, seed, serial, ids, devices):
    """A.7: the bytes the cluster head signs."""
    if len(seed) != 32:
        raise RefError("seed is 32 bytes")
    out = (b"iotguard kp revoked v1\x00" + lp(cluster) + u64(epoch) + u32(pool) + u32(ring) + u8(q) + seed
           + u64(serial) + u32(len(ids)) + b"".join(u32(i) for i in ids) + u32(len(devices)))
    for d in devices:
        out += lp(d)
    return out


def revoked_sign(ch_sk64, **fields):
    return nb.crypto_sign(revoked_bytes(**fields), ch_sk64)[:64]


def revoked_json(ch_sk64, cluster, epoch, pool, ring, q, seed, serial, ids, devices):
    """The retained statement as JSON text (member order as in the design; any order parses)."""
    sig = revoked_sign(ch_sk64, cluster=cluster, epoch=epoch, pool=pool, ring=ring, q=q, seed=seed,
                       serial=serial, ids=ids, devices=devices)
    doc = {"type": "kp_revoked", "cluster": cluster, "epoch": epoch, "pool": pool, "ring": ring, "q": q,
           "seed": seed.hex(), "serial": serial, "ids": list(ids), "devices": list(devices), "sig": sig.hex()}
    return json.dumps(doc, separators=(",", ":")).encode()


REVOKED_MEMBERS = {"type", "cluster", "epoch", "pool", "ring", "q", "seed", "serial", "ids", "devices", "sig"}


JSON_INT_MAX = 2**53 - 1   # the largest integer every JSON parser holds exactly (RFC 7493, I-JSON)


def _whole(v):
    """A JSON number with no fractional part (JSON Schema's "integer": 41 and 41.0 alike), as int."""
    if type(v) is int:
        return v
    if type(v) is float and v.is_integer() and abs(v) <= JSON_INT_MAX:
        return int(v)
    return None


def _int(doc, name, lo, hi):
    v = _whole(doc.get(name))
    if v is None or not lo <= v <= hi:
        raise RefError("%s must be an integer in %d..%d" % (name, lo, hi))
    return v


def _no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise RefError("member %r repeated" % k)
        d[k] = v
    return d


def verify_revoked(json_bytes, ch_pk) -> dict:
    """Parses a revoked statement (A.7), checks every rule of the layout and its Ed25519 signature
    under the cluster head's public key; returns the JSON object (seed and sig as hex; epoch, pool,
    ring, q, serial and ids as ints)."""
    try:
        doc = json.loads(json_bytes, object_pairs_hook=_no_duplicates)
    except RefError:
        raise
    except (ValueError, UnicodeDecodeError):
        raise RefError("revoked statement is not JSON")
    if not isinstance(doc, dict) or set(doc) != REVOKED_MEMBERS or doc["type"] != "kp_revoked":
        raise RefError("revoked statement must have exactly the members %s" % sorted(REVOKED_MEMBERS))
    if not isinstance(doc["cluster"], str):
        raise RefError("cluster must be a string")
    _id_bytes(doc["cluster"])
    epoch = _int(doc, "epoch", 1, JSON_INT_MAX)
    pool = _int(doc, "pool", 0, 2**32 - 1)
    ring = _int(doc, "ring", 0, 2**32 - 1)
    q = _int(doc, "q", 0, 255)
    check_params(epoch, pool, ring, q)
    serial = _int(doc, "serial", 0, JSON_INT_MAX)
    for name, n in (("seed", 64), ("sig", 128)):
        if not isinstance(doc[name], str) or not re.fullmatch("[0-9a-f]{%d}" % n, doc[name]):
            raise RefError("%s must be %d lowercase hex digits" % (name, n))
    if not isinstance(doc["ids"], list):
        raise RefError("ids must be a list")
    ids = [_whole(i) for i in doc["ids"]]
    if any(i is None or not 0 <= i < pool for i in ids):
        raise RefError("ids must be integers in [0, pool)")
    if any(ids[i] >= ids[i + 1] for i in range(len(ids) - 1)):
        raise RefError("ids must be strictly ascending")
    devs = doc["devices"]
    if not isinstance(devs, list) or any(not isinstance(d, str) for d in devs):
        raise RefError("devices must be strings")
    for d in devs:
        _id_bytes(d)
    if any(devs[i].encode() >= devs[i + 1].encode() for i in range(len(devs) - 1)):
        raise RefError("devices must be strictly ascending (strcmp)")
    msg = revoked_bytes(doc["cluster"], epoch, pool, ring, q, bytes.fromhex(doc["seed"]), serial, ids, devs)
    doc.update(epoch=epoch, pool=pool, ring=ring, q=q, serial=serial, ids=ids)
    try:
        nb.crypto_sign_open(bytes.fromhex(doc["sig"]) + msg, ch_pk)
    except nacl.exceptions.BadSignatureError:
        raise RefError("revoked statement signature does not verify")
    return doc


# -------------------------------------------------------------- key_ring ---
def box_key(my_ed_sk64, their_ed_pk):
    """crypto_box_beforenm between two Ed25519 identities converted to X25519 (ig_box_key)."""
    return nb.crypto_box_beforenm(nb.crypto_sign_ed25519_pk_to_curve25519(their_ed_pk),
                                  nb.crypto_sign_ed25519_sk_to_curve25519(my_ed_sk64))


def params_bytes(epoch, pool, ring, q, seed):
    """epoch (8) | pool (4) | ring (4) | q (1) | seed (32)."""
    check_params(epoch, pool, ring, q)
    return u64(epoch) + u32(pool) + u32(ring) + u8(q) + seed


def ring_entries(ids, keys):
    return b"".join(u32(i) + k for i, k in zip(ids, keys))


def ring_plain(epoch, pool, ring, q, seed, device_id, ids, keys):
    """A.8 plaintext: params | len(id) | id | m x (id (4) | key (32))."""
    if len(ids) != ring or len(keys) != ring:
        raise RefError("the ring needs m ids and m keys")
    return params_bytes(epoch, pool, ring, q, seed) + lp(device_id) + ring_entries(ids, keys)


def _params_parse(b):
    epoch, pool, ring, q = struct.unpack(">QIIB", b[:17])
    check_params(epoch, pool, ring, q)
    return dict(epoch=epoch, pool=pool, ring=ring, q=q, seed=b[17:49])


def _entries_parse(b, m):
    ids = [struct.unpack(">I", b[36 * k:36 * k + 4])[0] for k in range(m)]
    keys = [b[36 * k + 4:36 * k + 36] for k in range(m)]
    return ids, keys


def ring_plain_parse(pt, device_id):
    """The inverse of ring_plain, with the checks of ig_kp_ring_plain_parse."""
    if len(pt) < 51:
        raise RefError("key_ring plaintext too short")
    p = _params_parse(pt)
    c = pt[49]
    if pt[50:50 + c] != _id_bytes(device_id):
        raise RefError("key_ring is for another device")
    off = 50 + c
    if len(pt) != off + 36 * p["ring"]:
        raise RefError("key_ring plaintext length")
    ids, keys = _entries_parse(pt[off:], p["ring"])
    if ids != ring_ids(p["seed"], device_id, p["pool"], p["ring"]):
        raise RefError("key_ring ids are not the device's ring")
    p.update(ids=ids, keys=keys)
    return p


def ring_box(bk, nonce, pt):
    return nb.crypto_box_afternm(pt, nonce, bk)


def ring_box_open(bk, nonce, box):
    try:
        return nb.crypto_box_open_afternm(box, nonce, bk)
    except nacl.exceptions.CryptoError:
        raise RefError("key_ring box does not open")


def b64(b):
    return base64.b64encode(b).decode()


# ----------------------------------------------------------- KEYFILE.ring ---
def file_key(identity_seed):
    return hkdf(identity_seed, b"iotguard kp ring file v1", 32)


def file_plain(cluster, device_id, epoch, pool, ring, q, seed, ids, keys, serial, bad_ids, devices):
    """A.9 plaintext."""
    if len(ids) != ring or len(keys) != ring:
        raise RefError("the ring needs m ids and m keys")
    out = (lp(cluster) + lp(device_id) + params_bytes(epoch, pool, ring, q, seed) + ring_entries(ids, keys)
           + u64(serial) + u32(len(bad_ids)) + b"".join(u32(i) for i in bad_ids) + u32(len(devices)))
    for d in devices:
        out += lp(d)
    return out


def file_plain_parse(pt):
    off = 0

    def take(n):
        nonlocal off
        if len(pt) < off + n:
            raise RefError("truncated ring file plaintext")
        b = pt[off:off + n]
        off += n
        return b

    def take_id():
        b = take(take(1)[0])
        _id_bytes(b)
        return b.decode()

    r = dict(cluster=take_id(), id=take_id())
    r.update(_params_parse(take(49)))
    ids, keys = _entries_parse(take(36 * r["ring"]), r["ring"])
    r.update(ids=ids, keys=keys)
    r["serial"] = struct.unpack(">Q", take(8))[0]
    n = struct.unpack(">I", take(4))[0]
    r["bad_ids"] = list(struct.unpack(">%dI" % n, take(4 * n)))
    nd = struct.unpack(">I", take(4))[0]
    r["devices"] = [take_id() for _ in range(nd)]
    if off != len(pt):
        raise RefError("trailing bytes in ring file plaintext")
    return r


def file_seal(fkey, pk, plain, nonce):
    return FILE_MAGIC + nonce + nb.crypto_aead_xchacha20poly1305_ietf_encrypt(plain, FILE_MAGIC + pk, nonce, fkey)


def file_open(fkey, pk, buf):
    if len(buf) < 8 + 24 + 16 or buf[:8] != FILE_MAGIC:
        raise RefError("not a key ring file")
    try:
        return nb.crypto_aead_xchacha20poly1305_ietf_decrypt(buf[32:], FILE_MAGIC + pk, buf[8:32], fkey)
    except nacl.exceptions.CryptoError:
        raise RefError("key ring file does not open (damaged, or another identity's)")
