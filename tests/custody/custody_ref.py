"""custody_ref.py: an independent implementation of iotguard's custody layer
(issue 9), written from docs/PROTOCOL.md ("Custody: byte layouts and test
vectors") and the design text, not from lib/custody/*.c.

Why this exists: the C code's test vectors must come from somewhere else than
the C code, or a shared misreading of the layout would go unnoticed. Here the
Shamir polynomial, Feldman check, Lagrange interpolation and HKDF are plain
Python integers and hmac/hashlib; only the ristretto255 group operations
(point encoding, scalar·point, point addition) come from libsodium through
ctypes, since Debian's PyNaCl 1.5 has no ristretto255 bindings. The Feldman
check is computed as a plain sum of powers (not Horner, as the C does), so
the two sides do not share an algorithm either. Boxes and AEADs use PyNaCl.
"""
import ctypes
import hashlib
import hmac
import struct

import nacl.bindings as nb

L = 2**252 + 27742317777372353535851937790883648493  # order of the ristretto255 group

_sodium = ctypes.CDLL("libsodium.so.23")
if _sodium.sodium_init() < 0:
    raise RuntimeError("libsodium failed to initialise")


class GroupError(ValueError):
    """An operation produced the identity or got a non-point."""


# ---------------------------------------------------------------- scalars ---
def sc_enc(x):
    """A scalar as 32 bytes little-endian (canonical: 0 <= x < L)."""
    if not 0 <= x < L:
        raise ValueError("scalar out of range")
    return x.to_bytes(32, "little")


def sc_dec(b):
    if len(b) != 32:
        raise ValueError("scalar must be 32 bytes")
    x = int.from_bytes(b, "little")
    if x >= L:
        raise ValueError("non-canonical scalar")
    return x


# ----------------------------------------------------------------- points ---
def _buf(b):
    return ctypes.create_string_buffer(bytes(b), 32)


def base_mul(x):
    """x·G for a scalar int x; GroupError if the result is the identity."""
    out = ctypes.create_string_buffer(32)
    if _sodium.crypto_scalarmult_ristretto255_base(out, _buf(sc_enc(x % L))) != 0:
        raise GroupError("identity")
    return out.raw


def point_mul(x, p):
    out = ctypes.create_string_buffer(32)
    if _sodium.crypto_scalarmult_ristretto255(out, _buf(sc_enc(x % L)), _buf(p)) != 0:
        raise GroupError("identity or invalid point")
    return out.raw


def point_add(p, q):
    out = ctypes.create_string_buffer(32)
    if _sodium.crypto_core_ristretto255_add(out, _buf(p), _buf(q)) != 0:
        raise GroupError("invalid point")
    return out.raw


def is_point(p):
    return len(p) == 32 and _sodium.crypto_core_ristretto255_is_valid_point(_buf(p)) == 1


# ------------------------------------------------------ Feldman / Shamir ---
def poly_eval(coeffs, x):
    return sum(a * pow(x, j, L) for j, a in enumerate(coeffs)) % L


def deal(coeffs, n):
    """coeffs: k ints (coeffs[0] = S, all non-zero). Returns (shares, commitments):
    shares[i-1] = f(i) for i in 1..n, commitments[j] = coeffs[j]·G, all as bytes."""
    k = len(coeffs)
    if not (2 <= k <= n <= 255) or any(a % L == 0 for a in coeffs):
        raise ValueError("bad k/n or zero coefficient")
    shares = [sc_enc(poly_eval(coeffs, i)) for i in range(1, n + 1)]
    commitments = [base_mul(a) for a in coeffs]
    return shares, commitments


def verify(share, index, commitments):
    """share·G == sum_j index^j·C_j, summed term by term."""
    try:
        lhs = base_mul(sc_dec(share))
        acc = None
        for j, c in enumerate(commitments):
            if not is_point(c):
                return False
            t = point_mul(pow(index, j, L), c)
            acc = t if acc is None else point_add(acc, t)
        return acc == lhs
    except (ValueError, GroupError):
        return False


def lagrange_at_zero(indices):
    if len(set(indices)) != len(indices) or any(not 1 <= i <= 255 for i in indices):
        raise ValueError("indices must be distinct, 1..255")
    lam = {}
    for i in indices:
        num = den = 1
        for j in indices:
            if j != i:
                num = num * j % L
                den = den * (j - i) % L
        lam[i] = num * pow(den, -1, L) % L
    return lam


def combine(indices, shares):
    lam = lagrange_at_zero(indices)
    return sc_enc(sum(lam[i] * sc_dec(s) for i, s in zip(indices, shares)) % L)


# ------------------------------------------------------------------ HKDF ---
def hkdf(ikm, info, length, salt=b""):
    """RFC 5869 HKDF-SHA256."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm, t, i = b"", b"", 1
    while len(okm) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        okm += t
        i += 1
    return okm[:length]


def secret_from(extra, fresh):
    """S = HKDF(ikm = extra || fresh, "iotguard custody secret v1", 64) mod L."""
    return int.from_bytes(hkdf(extra + fresh, b"iotguard custody secret v1", 64), "little") % L


def seal_key(S):
    return hkdf(S, b"iotguard custody v1", 32)


# ------------------------------------------------------- ch.key.sealed ---
SEAL_MAGIC = b"IGCSEAL1"


def keyfile_bytes(seed):
    return b"iotguard-ed25519-secret-v1 " + seed.hex().encode() + b"\n"


def seal(S, ch_pk, plain, nonce):
    c0 = base_mul(sc_dec(S))
    head = SEAL_MAGIC + c0
    ct = nb.crypto_aead_xchacha20poly1305_ietf_encrypt(plain, head + ch_pk, nonce, seal_key(S))
    return head + nonce + ct


def unseal(S, ch_pk, sealed):
    if len(sealed) < 8 + 32 + 24 + 16 + 1 or sealed[:8] != SEAL_MAGIC:
        raise ValueError("not a sealed key")
    if base_mul(sc_dec(S)) != sealed[8:40]:
        raise ValueError("S does not match C0")
    plain = nb.crypto_aead_xchacha20poly1305_ietf_decrypt(sealed[64:], sealed[:40] + ch_pk, sealed[40:64],
                                                          seal_key(S))
    prefix = b"iotguard-ed25519-secret-v1 "
    body = plain[len(prefix):]
    if body.endswith(b"\n"):
        body = body[:-1]
    if not plain.startswith(prefix) or len(body) != 64 or any(c not in b"0123456789abcdef" for c in body):
        raise ValueError("not a key file")
    seed = bytes.fromhex(body.decode())
    pk, _ = nb.crypto_sign_seed_keypair(seed)
    if pk != ch_pk:
        raise ValueError("not the genesis key")
    return plain


# ---------------------------------------------------- commitments hash ---
def commitments_hash(epoch, commitments):
    return hashlib.sha256(b"iotguard custody commitments v1" + struct.pack(">QB", epoch, len(commitments))
                          + b"".join(commitments)).digest()


# ------------------------------------------------------------- deal box ---
def box_key(my_ed_sk, their_ed_pk):
    """The crypto_box precomputed key between two Ed25519 identities (ig_box_key)."""
    return nb.crypto_box_beforenm(nb.crypto_sign_ed25519_pk_to_curve25519(their_ed_pk),
                                  nb.crypto_sign_ed25519_sk_to_curve25519(my_ed_sk))


def deal_plain(epoch, index, k, n, share, chash):
    return b"IGD1" + struct.pack(">QBBB", epoch, index, k, n) + share + chash


def deal_parse(pt):
    if len(pt) != 79 or pt[:4] != b"IGD1":
        raise ValueError("not a deal")
    epoch, index, k, n = struct.unpack(">QBBB", pt[4:15])
    return dict(epoch=epoch, index=index, k=k, n=n, share=pt[15:47], commitments_hash=pt[47:79])


def deal_seal(bk, nonce, pt):
    return nb.crypto_box_afternm(pt, nonce, bk)


def deal_open(bk, nonce, box):
    return deal_parse(nb.crypto_box_open_afternm(box, nonce, bk))


# ----------------------------------------------------------- release box ---
def release_plain(request, epoch, index, share):
    return b"IGR1" + request + struct.pack(">QB", epoch, index) + share


def release_seal(pt, nonce, requester_xpk, holder_ed_sk):
    return nb.crypto_box(pt, nonce, requester_xpk, nb.crypto_sign_ed25519_sk_to_curve25519(holder_ed_sk))


def release_open(box, nonce, holder_ed_pk, requester_xsk):
    pt = nb.crypto_box_open(box, nonce, nb.crypto_sign_ed25519_pk_to_curve25519(holder_ed_pk), requester_xsk)
    if len(pt) != 61 or pt[:4] != b"IGR1":
        raise ValueError("not a release")
    epoch, index = struct.unpack(">QB", pt[20:29])
    return dict(request=pt[4:20], epoch=epoch, index=index, share=pt[29:61])


# ---------------------------------------------------------- store file ---
STORE_MAGIC = b"IGCSTOR1"


def store_key(seed):
    return hkdf(seed, b"iotguard custody store v1", 32)


def store_plain(entries):
    """entries: dicts with ch_pk, epoch, index, k, n, active, share, commitments."""
    out = bytes([len(entries)])
    for e in entries:
        assert len(e["commitments"]) == e["k"]
        out += (e["ch_pk"] + struct.pack(">QBBBB", e["epoch"], e["index"], e["k"], e["n"], 1 if e["active"] else 0)
                + e["share"] + b"".join(e["commitments"]))
    return out


def store_parse(pt):
    count, off, entries = pt[0], 1, []
    if count > 2:
        raise ValueError("too many entries")
    for _ in range(count):
        if len(pt) - off < 76:
            raise ValueError("truncated")
        ch_pk = pt[off:off + 32]
        epoch, index, k, n, flags = struct.unpack(">QBBBB", pt[off + 32:off + 44])
        if flags & ~1 or not (2 <= k <= n and 1 <= index <= n and epoch >= 1):
            raise ValueError("bad entry")
        share = pt[off + 44:off + 76]
        cs = [pt[off + 76 + 32 * j:off + 108 + 32 * j] for j in range(k)]
        if len(pt) < off + 76 + 32 * k:
            raise ValueError("truncated")
        entries.append(dict(ch_pk=ch_pk, epoch=epoch, index=index, k=k, n=n, active=bool(flags & 1),
                            share=share, commitments=cs))
        off += 76 + 32 * k
    if off != len(pt):
        raise ValueError("trailing bytes")
    return entries


def store_encode(entries, seed, ident, nonce):
    ct = nb.crypto_aead_xchacha20poly1305_ietf_encrypt(store_plain(entries), STORE_MAGIC + ident.encode(), nonce,
                                                       store_key(seed))
    return STORE_MAGIC + nonce + ct


def store_decode(buf, seed, ident):
    if len(buf) < 8 + 24 + 16 + 1 or buf[:8] != STORE_MAGIC:
        raise ValueError("not a store file")
    pt = nb.crypto_aead_xchacha20poly1305_ietf_decrypt(buf[32:], STORE_MAGIC + ident.encode(), buf[8:32],
                                                       store_key(seed))
    return store_parse(pt)
