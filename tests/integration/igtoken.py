"""igtoken.py: an independent minter of iotguard connection tokens.

Why this exists: the integration tests must be able to craft tokens the CLI
refuses to make (expired, issued in the future, a lifetime beyond the role's
limit, a foreign cluster, a wrong id, a bad signature), and a second
implementation written from the specification (lib/identity/ig_token.h and
docs/PROTOCOL.md) proves the layout is documented well enough for anyone
to mint tokens with an ordinary Ed25519 library.

Layout (all integers big-endian):
    1  version = 1
    1  cluster_len, cluster bytes
    1  id_len, id bytes
    8  issued_at (Unix seconds)
    8  expires_at (Unix seconds)
    16 nonce
    64 Ed25519 signature over b"iotguard-token-v1" + b"\\x00" + all bytes above
Text form: "igt1." + base64url without padding.
"""
import base64
import os
import struct
import time

import nacl.signing

PREFIX = "igt1."
DOMAIN = b"iotguard-token-v1\x00"
KEYFILE_PREFIX = "iotguard-ed25519-secret-v1 "


def read_seed(key_path):
    """Returns the 32-byte seed stored in an iotguard key file."""
    with open(key_path, "r", encoding="ascii") as f:
        line = f.read()
    if not line.startswith(KEYFILE_PREFIX):
        raise ValueError("%s is not an iotguard key file" % key_path)
    seed = bytes.fromhex(line[len(KEYFILE_PREFIX):].strip())
    if len(seed) != 32:
        raise ValueError("%s: seed is not 32 bytes" % key_path)
    return seed


def public_key_hex(key_path):
    return nacl.signing.SigningKey(read_seed(key_path)).verify_key.encode().hex()


def b64url(data):
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def payload(cluster, ident, issued_at, expires_at, nonce=None, version=1):
    c = cluster.encode()
    i = ident.encode()
    if nonce is None:
        nonce = os.urandom(16)
    return (bytes([version, len(c)]) + c + bytes([len(i)]) + i +
            struct.pack(">QQ", issued_at, expires_at) + nonce)


def mint(key_path, cluster, ident, issued_at=None, expires_at=None, ttl=300,
         nonce=None, version=1, seed=None):
    """Mints a token. issued_at defaults to now, expires_at to issued_at+ttl."""
    now = int(time.time())
    if issued_at is None:
        issued_at = now
    if expires_at is None:
        expires_at = issued_at + ttl
    body = payload(cluster, ident, issued_at, expires_at, nonce, version)
    sk = nacl.signing.SigningKey(seed if seed is not None else read_seed(key_path))
    sig = sk.sign(DOMAIN + body).signature
    return PREFIX + b64url(body + sig)


def parse(token):
    """Splits a token into its claims (no signature check)."""
    assert token.startswith(PREFIX)
    raw = unb64url(token[len(PREFIX):])
    pos = 0
    version = raw[pos]
    pos += 1
    clen = raw[pos]
    pos += 1
    cluster = raw[pos:pos + clen].decode()
    pos += clen
    ilen = raw[pos]
    pos += 1
    ident = raw[pos:pos + ilen].decode()
    pos += ilen
    issued_at, expires_at = struct.unpack(">QQ", raw[pos:pos + 16])
    pos += 16
    nonce = raw[pos:pos + 16]
    pos += 16
    sig = raw[pos:]
    return {"version": version, "cluster": cluster, "id": ident, "issued_at": issued_at,
            "expires_at": expires_at, "nonce": nonce, "signature": sig,
            "signed": raw[:pos]}


def verify(token, pubkey_hex):
    """True if the token's signature checks against the public key."""
    claims = parse(token)
    vk = nacl.signing.VerifyKey(bytes.fromhex(pubkey_hex))
    try:
        vk.verify(DOMAIN + claims["signed"], claims["signature"])
        return True
    except Exception:  # nacl.exceptions.BadSignatureError
        return False
