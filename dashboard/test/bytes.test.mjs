// bytes.test.mjs: the strict codecs the verifiers rely on. A lenient base64
// decoder would let one signed text have several spellings (docs/PROTOCOL.md
// "Text encoding", docs/LEDGER.md 9: "canonical base64").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { b64Decode, b64Encode, b64urlEncodeNoPad, concatBytes, hexDecode, hexEncode, utf8 } from '../src/bytes.js';

test('hex round trip and refusals', () => {
  const b = Uint8Array.from([0, 1, 0x7f, 0x80, 0xff]);
  assert.equal(hexEncode(b), '00017f80ff');
  assert.deepEqual(hexDecode('00017F80ff'), b);
  for (const bad of ['0', '0g', 'zz', ' 00', '00 ', null, 12])
    assert.throws(() => hexDecode(bad), /hex/);
});

test('base64 matches Node for every length 0..40 and both alphabets', () => {
  for (let n = 0; n <= 40; n++) {
    const b = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n * 11) & 0xff);
    assert.equal(b64Encode(b), Buffer.from(b).toString('base64'));
    assert.equal(b64urlEncodeNoPad(b), Buffer.from(b).toString('base64url'));
    assert.deepEqual(b64Decode(b64Encode(b)), b);
  }
});

test('base64 decode refuses non-canonical and malformed text', () => {
  assert.deepEqual(b64Decode('AAE='), Uint8Array.from([0, 1]));
  assert.throws(() => b64Decode('AAF='), /canonical/);      // unused bits set
  assert.throws(() => b64Decode('AB=='), /canonical/);
  assert.deepEqual(b64Decode('AAF=', { canonical: false }), Uint8Array.from([0, 1]));
  for (const bad of ['AAE', 'AA=E', 'A===', '====', 'AA E', 'AAE=\n', 'AA-_', 'AAé=', 'AAE==='])
    assert.throws(() => b64Decode(bad), /base64/, bad);
});

test('concatBytes and utf8', () => {
  assert.deepEqual(concatBytes(Uint8Array.of(1), new Uint8Array(0), Uint8Array.of(2, 3)), Uint8Array.of(1, 2, 3));
  assert.deepEqual(utf8.encode('\u2014 '), Uint8Array.of(0xe2, 0x80, 0x94, 0x20));
});
