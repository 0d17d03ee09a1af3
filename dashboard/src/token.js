// token.js: mint iotguard connection tokens in the browser.
//
// Why this exists: the page connects as its own identity, like an agent, so
// it needs the same short-lived token (docs/PROTOCOL.md "Connection token"),
// signed by the page's own non-extractable Ed25519 key. The layout is copied
// byte for byte from that section; the unit test pins its test vector.
// Tokens are bearer credentials until they expire: nothing here logs one.

import { b64urlEncodeNoPad, concatBytes, utf8 } from './bytes.js';

const VERSION = 0x01;
const DOMAIN = utf8.encode('iotguard-token-v1\0'); // the domain string and its 0x00
const NONCE_BYTES = 16;
const U64_MAX = (1n << 64n) - 1n;

// Ids and cluster names: 1..64 of A-Za-z0-9_.- (docs/PROTOCOL.md "Identity
// ids and cluster names").
export function checkIdent(s) {
  return typeof s === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(s);
}

function u64be(value, what) {
  let v;
  try {
    v = BigInt(value);
  } catch {
    throw new Error(`${what} must be a whole number of Unix seconds`);
  }
  if (v < 0n || v > U64_MAX) throw new Error(`${what} is outside 0..2^64-1`);
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, v, false);
  return out;
}

// The payload: version, cluster_len, cluster, id_len, id, issued_at,
// expires_at (u64 big-endian), nonce (16 bytes). The signature covers
// "iotguard-token-v1" || 0x00 || payload.
export function tokenPayload(cluster, id, issuedAt, expiresAt, nonce16) {
  if (!checkIdent(cluster)) throw new Error('cluster name must be 1..64 characters of A-Z a-z 0-9 _ . -');
  if (!checkIdent(id)) throw new Error('identity id must be 1..64 characters of A-Z a-z 0-9 _ . -');
  if (!(nonce16 instanceof Uint8Array) || nonce16.length !== NONCE_BYTES)
    throw new Error('token nonce must be 16 bytes');
  const c = utf8.encode(cluster);
  const i = utf8.encode(id);
  return concatBytes(
    Uint8Array.of(VERSION, c.length), c,
    Uint8Array.of(i.length), i,
    u64be(issuedAt, 'issued_at'), u64be(expiresAt, 'expires_at'),
    nonce16,
  );
}

// ttl: seconds; the broker caps it per role (monitor 86400, admin 300 by
// default), so 300 suits both and limits what a leaked token is worth.
export async function mintToken(privateKey, cluster, id,
  { ttl = 300, now = Math.floor(Date.now() / 1000), nonce } = {}) {
  if (!Number.isInteger(ttl) || ttl < 1) throw new Error('token ttl must be a whole number of seconds >= 1');
  const n = nonce ?? crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
  const payload = tokenPayload(cluster, id, now, BigInt(now) + BigInt(ttl), n);
  const sig = new Uint8Array(
    await crypto.subtle.sign({ name: 'Ed25519' }, privateKey, concatBytes(DOMAIN, payload)));
  return 'igt1.' + b64urlEncodeNoPad(concatBytes(payload, sig));
}
