// bytes.js: hex and base64 codecs for the dashboard.
//
// Why this exists: the page checks signatures over exact bytes (tokens,
// checkpoints, cosignatures), and iotguard's formats refuse every spelling
// but the canonical one (docs/PROTOCOL.md "Text encoding", docs/LEDGER.md 9
// and 15.2). atob() is lenient (it ignores whitespace and accepts missing
// padding and non-zero unused bits), so a verifier built on it would accept
// texts the broker and `iotguard verify` refuse. These codecs are strict and
// work the same in browsers and in Node (the unit tests run them there).

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64_VALUE = (() => {
  const t = new Int16Array(128).fill(-1);
  for (let i = 0; i < 64; i++) t[B64.charCodeAt(i)] = i;
  return t;
})();

export const utf8 = new TextEncoder();

export function hexEncode(u8) {
  let s = '';
  for (const b of u8) s += b.toString(16).padStart(2, '0');
  return s;
}

// Accepts upper or lower case; refuses odd lengths and anything that is not a
// hex digit (parseInt would quietly read "0g" as 0).
export function hexDecode(str) {
  if (typeof str !== 'string' || str.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(str))
    throw new Error('not an even-length hex string');
  const out = new Uint8Array(str.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(str.substr(2 * i, 2), 16);
  return out;
}

function encodeWith(alphabet, u8, pad) {
  let s = '';
  let i = 0;
  for (; i + 2 < u8.length; i += 3) {
    const n = (u8[i] << 16) | (u8[i + 1] << 8) | u8[i + 2];
    s += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63] + alphabet[n & 63];
  }
  const rest = u8.length - i;
  if (rest === 1) {
    const n = u8[i] << 16;
    s += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + (pad ? '==' : '');
  } else if (rest === 2) {
    const n = (u8[i] << 16) | (u8[i + 1] << 8);
    s += alphabet[n >> 18] + alphabet[(n >> 12) & 63] + alphabet[(n >> 6) & 63] + (pad ? '=' : '');
  }
  return s;
}

// Standard alphabet, padded (RFC 4648 section 4).
export function b64Encode(u8) {
  return encodeWith(B64, u8, true);
}

// URL-safe alphabet without padding (RFC 4648 section 5): the token text.
export function b64urlEncodeNoPad(u8) {
  return encodeWith(B64URL, u8, false);
}

// Standard, padded base64. Refuses: a length that is not a multiple of 4,
// any character outside the alphabet (whitespace included), '=' anywhere but
// the last one or two places, and, with canonical (the default), non-zero
// unused low bits in the last character, which would give the same bytes a
// second spelling.
export function b64Decode(str, { canonical = true } = {}) {
  if (typeof str !== 'string' || str.length % 4 !== 0)
    throw new Error('base64 text must be a string whose length is a multiple of 4');
  let pad = 0;
  if (str.endsWith('==')) pad = 2;
  else if (str.endsWith('=')) pad = 1;
  const n = str.length - pad;
  const out = new Uint8Array((str.length / 4) * 3 - pad);
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < n; i++) {
    const c = str.charCodeAt(i);
    const v = c < 128 ? B64_VALUE[c] : -1;
    if (v < 0) throw new Error(`base64 text has a character outside the alphabet at position ${i}`);
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
    acc &= (1 << bits) - 1;
  }
  if (canonical && acc !== 0) throw new Error('base64 text is not canonical (unused bits are not zero)');
  return out;
}

export function concatBytes(...arrays) {
  let len = 0;
  for (const a of arrays) len += a.length;
  const out = new Uint8Array(len);
  let off = 0;
  for (const a of arrays) {
    out.set(a, off);
    off += a.length;
  }
  return out;
}
