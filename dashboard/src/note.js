// note.js: check the cluster head's signed checkpoint in the browser.
//
// Why this exists: the dashboard shows the ledger head, and an operator must
// be able to trust it: a broker or a client with publish rights on the head
// topic could put any JSON there. The page therefore verifies the checkpoint
// text itself (C2SP signed note, docs/LEDGER.md section 9) against the
// cluster-head key it PINNED (from config.json, or on first use), and counts
// witness cosignatures (section 15) against the configured witness keys.
// The parser is as strict as the C one (ig_checkpoint_verify): a checkpoint
// that parses in two spellings invites confusion about what was signed.

import { b64Decode, b64Encode, concatBytes, hexDecode, hexEncode, utf8 } from './bytes.js';

const EM_DASH_SPACE = '\u2014 ';
const MAX_NOTE_BYTES = 16384; // lib/ledger/checkpoint.c MAX_NOTE_BYTES
const MAX_SIG_LINES = 100;
const TYPE_ED25519 = 0x01;
const TYPE_COSIG_V1 = 0x04;
const U64_MAX = (1n << 64n) - 1n;
const TS_MAX = (1n << 63n) - 1n;

// SHA-256 (FIPS 180-4) in plain JS: parseVkey must check a key id while
// staying synchronous, and WebCrypto's digest is async only. Inputs here are
// a name and a key (under 200 bytes), so speed does not matter.
const K256 = Uint32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

function sha256(msg) {
  const h = Uint32Array.from([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const blocks = Math.ceil((msg.length + 9) / 64);
  const buf = new Uint8Array(blocks * 64);
  buf.set(msg);
  buf[msg.length] = 0x80;
  const dv = new DataView(buf.buffer);
  dv.setUint32(buf.length - 8, Math.floor(msg.length / 0x20000000), false);
  dv.setUint32(buf.length - 4, (msg.length * 8) >>> 0, false);
  const w = new Uint32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let b = 0; b < blocks; b++) {
    for (let t = 0; t < 16; t++) w[t] = dv.getUint32(b * 64 + t * 4, false);
    for (let t = 16; t < 64; t++) {
      const s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >>> 3);
      const s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >>> 10);
      w[t] = (w[t - 16] + s0 + w[t - 7] + s1) >>> 0;
    }
    let [a, bb, c, d, e, f, g, hh] = h;
    for (let t = 0; t < 64; t++) {
      const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K256[t] + w[t]) >>> 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & bb) ^ (a & c) ^ (bb & c))) >>> 0;
      hh = g; g = f; f = e; e = (d + t1) >>> 0;
      d = c; c = bb; bb = a; a = (t1 + t2) >>> 0;
    }
    h[0] += a; h[1] += bb; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
  const out = new Uint8Array(32);
  const odv = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) odv.setUint32(i * 4, h[i], false);
  return out;
}

function keyIdSync(name, type, pubkey32) {
  return sha256(concatBytes(utf8.encode(name), Uint8Array.of(0x0a, type), pubkey32)).slice(0, 4);
}

// SHA-256(name || 0x0A || type || pubkey)[0:4]: the signed-note key id.
// WebCrypto computes it; the tests check it equals the synchronous one.
export async function keyId(name, type, pubkey32) {
  const digest = await crypto.subtle.digest('SHA-256',
    concatBytes(utf8.encode(name), Uint8Array.of(0x0a, type), pubkey32));
  return new Uint8Array(digest).slice(0, 4);
}

// Key names: not empty, no spaces, '+' or control characters (signed-note).
function keyNameValid(s) {
  if (s.length === 0) return false;
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (c <= 0x20 || c === 0x7f || c === 0x2b) return false;
  }
  return true;
}

// Quote text from the checkpoint in an error without letting it inject
// markup or control characters into what the page shows.
function shown(s) {
  return JSON.stringify(s.length > 80 ? s.slice(0, 80) + '…' : s);
}

export function parseCheckpoint(text) {
  if (typeof text !== 'string') throw new Error('checkpoint is not a text');
  const bytes = utf8.encode(text);
  if (bytes.length > MAX_NOTE_BYTES)
    throw new Error(`checkpoint is ${bytes.length} bytes, more than the ${MAX_NOTE_BYTES} allowed`);
  if (text.includes('\0')) throw new Error('checkpoint contains a NUL byte');
  if (text.includes('\r')) throw new Error('checkpoint has a carriage return: lines must end in \\n only');
  if (!text.endsWith('\n')) throw new Error('checkpoint does not end with a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 4) throw new Error('checkpoint is missing lines (origin, size, root, blank line, signatures)');
  const [origin, size, rootB64, blank] = lines;
  if (!keyNameValid(origin))
    throw new Error('checkpoint line 1 (origin) is empty or has spaces/\'+\'/control characters');
  if (!/^(0|[1-9][0-9]*)$/.test(size) || BigInt(size) > U64_MAX)
    throw new Error('checkpoint line 2 (size) is not a decimal number without leading zeros');
  let root;
  try {
    if (rootB64.length !== 44) throw new Error('length');
    root = b64Decode(rootB64);
    if (root.length !== 32) throw new Error('length');
  } catch {
    throw new Error('checkpoint line 3 (root) is not canonical base64 of a 32-byte hash');
  }
  if (blank !== '')
    throw new Error('checkpoint line 4 must be empty (a blank line ends the body; extension lines are not accepted)');
  const sigLines = lines.slice(4);
  if (sigLines.length === 0) throw new Error('checkpoint has no signature lines');
  if (sigLines.length > MAX_SIG_LINES) throw new Error(`checkpoint has more than ${MAX_SIG_LINES} signature lines`);
  const sigs = sigLines.map((line, k) => {
    const no = k + 5;
    if (!line.startsWith(EM_DASH_SPACE))
      throw new Error(`checkpoint line ${no} is not a signature line (must start with an em dash and a space)`);
    const rest = line.slice(EM_DASH_SPACE.length);
    const sp = rest.indexOf(' ');
    const name = sp < 0 ? '' : rest.slice(0, sp);
    if (sp < 0 || !keyNameValid(name))
      throw new Error(`checkpoint line ${no}: a signature line needs '<key name> <base64 signature>'`);
    let sig;
    try {
      sig = b64Decode(rest.slice(sp + 1));
    } catch {
      sig = null;
    }
    if (!sig || sig.length <= 4)
      throw new Error(`checkpoint line ${no}: the signature is not canonical base64 of key id + signature`);
    return { name, bytes: sig };
  });
  return { origin, size, root, body: `${origin}\n${size}\n${rootB64}\n`, sigs };
}

// <name>+<key id, 8 lowercase hex>+<base64(type || pubkey)>. Only types 0x01
// (a note key such as the cluster head's) and 0x04 (a cosignature/v1
// witness). The key id must be the one computed from the name, type and
// key (LEDGER.md 15.2), so a vkey cannot carry a misleading id.
export function parseVkey(vkey) {
  if (typeof vkey !== 'string') throw new Error('a verifier key must be a text');
  // The name holds no '+', but base64 may: split at the first '+' only.
  const plus = vkey.indexOf('+');
  if (plus < 0 || vkey[plus + 9] !== '+')
    throw new Error(`verifier key ${shown(vkey)} is not <name>+<key id>+<base64 key>`);
  const name = vkey.slice(0, plus);
  const idHex = vkey.slice(plus + 1, plus + 9);
  const keyB64 = vkey.slice(plus + 10);
  if (!keyNameValid(name)) throw new Error(`verifier key ${shown(vkey)}: the name is empty or has spaces or control characters`);
  if (utf8.encode(name).length > 128) throw new Error(`verifier key ${shown(vkey)}: the name is longer than 128 bytes`);
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw new Error(`verifier key ${shown(vkey)}: the key id must be 8 lowercase hex digits`);
  let raw;
  try {
    if (keyB64.length !== 44) throw new Error('length');
    raw = b64Decode(keyB64);
    if (raw.length !== 33) throw new Error('length');
  } catch {
    throw new Error(`verifier key ${shown(vkey)}: the key must be 44 characters of canonical base64 of 33 bytes`);
  }
  const type = raw[0];
  if (type !== TYPE_ED25519 && type !== TYPE_COSIG_V1)
    throw new Error(`verifier key ${shown(vkey)}: key type 0x${type.toString(16).padStart(2, '0')} is not supported (0x01 or 0x04)`);
  const pubkey = raw.slice(1);
  if (hexEncode(keyIdSync(name, type, pubkey)) !== idHex)
    throw new Error(`verifier key ${shown(vkey)}: the key id does not match the name and key`);
  return { name, type, keyId: hexDecode(idHex), pubkey };
}

async function ed25519Verify(pubkey32, sig64, message) {
  try {
    const key = await crypto.subtle.importKey('raw', pubkey32, { name: 'Ed25519' }, false, ['verify']);
    return await crypto.subtle.verify({ name: 'Ed25519' }, key, sig64, message);
  } catch {
    return false; // a key WebCrypto refuses (not a curve point) verifies nothing
  }
}

function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

// Counts the configured witnesses whose cosignature verifies. A line that
// matches a configured key (name and key id) but does not verify rejects the
// whole note, as the signed-note spec says (LEDGER.md 15.1); it is returned
// as `bad` so verifyHead can say so.
async function countCosignatures(parsed, witnesses) {
  const quorum = witnesses.quorum;
  const keys = [];
  for (const v of witnesses.keys ?? []) {
    const k = parseVkey(v);
    if (k.type !== TYPE_COSIG_V1) throw new Error(`witness key ${shown(v)} is not a cosignature/v1 key (type 0x04)`);
    if (keys.some((o) => o.name === k.name && sameBytes(o.keyId, k.keyId)))
      throw new Error(`witness key ${shown(v)} is configured twice`);
    keys.push(k);
  }
  if (!Number.isInteger(quorum) || quorum < 1 || quorum > keys.length)
    throw new Error(`witness quorum ${quorum} must be a whole number from 1 to the number of witness keys (${keys.length})`);
  const valid = new Set();
  for (const s of parsed.sigs) {
    const k = keys.find((o) => o.name === s.name && sameBytes(o.keyId, s.bytes.subarray(0, 4)));
    if (!k) continue;
    const b = s.bytes;
    let ok = b.length === 76;
    let ts = 0n;
    if (ok) {
      ts = new DataView(b.buffer, b.byteOffset).getBigUint64(4, false);
      ok = ts >= 1n && ts <= TS_MAX;
    }
    if (ok) {
      const msg = utf8.encode(`cosignature/v1\ntime ${ts}\n${parsed.body}`);
      ok = await ed25519Verify(k.pubkey, b.subarray(12, 76), msg);
    }
    if (!ok) return { quorum, valid: [...valid], met: false, bad: k.name };
    valid.add(k.name);
  }
  return { quorum, valid: [...valid], met: valid.size >= quorum, bad: null };
}

// head: the JSON object from iotguard/<cluster>/ledger/head. The pin
// (chPubkeyHex) decides, never the head's own ch_pubkey: a head that names
// another key is refused, however well it is signed by that key.
export async function verifyHead(head, { cluster, chPubkeyHex, witnesses } = {}) {
  const result = { verified: false, reason: '', origin: '', size: '', rootB64: '', cosigned: null };
  const fail = (reason) => Object.assign(result, { verified: false, reason });
  if (!head || typeof head !== 'object' || typeof head.checkpoint !== 'string')
    return fail('the head message has no checkpoint text');
  let parsed;
  try {
    parsed = parseCheckpoint(head.checkpoint);
  } catch (e) {
    return fail(`the checkpoint is malformed: ${e.message}`);
  }
  result.origin = parsed.origin;
  result.size = parsed.size;
  result.rootB64 = b64Encode(parsed.root);

  let pin;
  try {
    pin = hexDecode(chPubkeyHex ?? '');
    if (pin.length !== 32) throw new Error('length');
  } catch {
    return fail('no cluster-head key is pinned (set ch_pubkey in config.json or in the settings)');
  }
  if (typeof cluster !== 'string' || cluster === '')
    return fail('no cluster name is configured, so the origin cannot be checked');
  if (parsed.origin !== `iotguard/${cluster}`)
    return fail(`the checkpoint's origin ${shown(parsed.origin)} is not iotguard/${cluster} (a checkpoint of another cluster)`);
  if (typeof head.ch_pubkey !== 'string' || head.ch_pubkey.toLowerCase() !== hexEncode(pin))
    return fail('the head names a cluster-head key other than the pinned one');
  if (head.origin !== parsed.origin || String(head.size) !== parsed.size || head.root !== result.rootB64)
    return fail('the head\'s origin, size or root differ from its signed checkpoint');

  const want = await keyId(parsed.origin, TYPE_ED25519, pin);
  let ours = 0;
  for (const s of parsed.sigs) {
    if (s.name !== parsed.origin || !sameBytes(s.bytes.subarray(0, 4), want)) continue;
    if (s.bytes.length !== 68 || !(await ed25519Verify(pin, s.bytes.subarray(4), utf8.encode(parsed.body))))
      return fail('the signature does not verify with the pinned cluster-head key (checkpoint tampered with)');
    ours++;
  }
  if (ours === 0)
    return fail('the checkpoint is not signed by the pinned cluster-head key (signed by another key?)');

  if (witnesses) {
    let c;
    try {
      c = await countCosignatures(parsed, witnesses);
    } catch (e) {
      result.cosigned = { quorum: witnesses.quorum ?? 0, valid: [], met: false, error: e.message };
      result.verified = true;
      return result;
    }
    result.cosigned = { quorum: c.quorum, valid: c.valid, met: c.met };
    if (c.bad) return fail(`the cosignature by witness ${shown(c.bad)} does not verify (checkpoint tampered with)`);
  }
  result.verified = true;
  return result;
}

// A verified head must also move forward. The page keeps, per pinned key, the largest head it
// verified (its size and root); a head signed by that key that is smaller is an older head
// replayed (a rollback: the view would go back in time), and one of the same size with another
// root is a fork (the cluster head signed two histories). The page cannot prove that a larger
// head extends the one it kept (that needs a consistency proof), but it refuses these two, which
// a valid signature alone would let through. seen: {size, root} (size as decimal text) or null.
// Returns {ok, reason, seen}: seen is what to keep next.
export function headProgress(seen, result) {
  const size = BigInt(result.size);
  if (seen && typeof seen.size === 'string' && /^(0|[1-9][0-9]*)$/.test(seen.size)) {
    const before = BigInt(seen.size);
    if (size < before)
      return { ok: false, seen, reason: `the head is older than one this page already verified (size ${result.size} < ${seen.size}): a rollback, or a broker that has not caught up yet` };
    if (size === before && result.rootB64 !== seen.root)
      return { ok: false, seen, reason: `a second root for size ${result.size}, signed by the pinned key: the cluster head forked its log` };
  }
  return { ok: true, reason: '', seen: { size: result.size, root: result.rootB64 } };
}
