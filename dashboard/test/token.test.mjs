// token.test.mjs: the page's tokens are byte for byte the ones the broker
// accepts. Vector: docs/PROTOCOL.md "Connection token" > "Test vector"
// (reproduced there with Python `cryptography`; pinned in tests/unit/test_token.c).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hexDecode, hexEncode } from '../src/bytes.js';
import { checkIdent, mintToken, tokenPayload } from '../src/token.js';
import { defaultIdFor, enrollCommand } from '../src/identity.js';

const PKCS8_ED25519_PREFIX = '302e020100300506032b657004220420';
const SEED = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
const NONCE = hexDecode('a0a1a2a3a4a5a6a7a8a9aaabacadaeaf');
const TOKEN = 'igt1.AQRkZW1vCHNlbnNvci0xAAAAAGlVuQAAAAAAaVW6LKChoqOkpaanqKmqq6ytrq_GUMumf8I4dfjDQhb29s88adarxnmN5eSvIjB3JpUxwbYjN9KFIOvMLyrh2P8xjR0jjvBw_yCU07kdbZNLa6YH';

async function seedKey(seedHex) {
  return crypto.subtle.importKey('pkcs8', hexDecode(PKCS8_ED25519_PREFIX + seedHex), { name: 'Ed25519' }, false, ['sign']);
}

test('payload of the PROTOCOL.md vector', () => {
  const p = tokenPayload('demo', 'sensor-1', 1767225600, 1767225900, NONCE);
  assert.equal(p.length, 47);
  assert.equal(hexEncode(p),
    '010464656d6f0873656e736f722d31000000006955b900000000006955ba2ca0a1a2a3a4a5a6a7a8a9aaabacadaeaf');
});

test('mintToken gives exactly the PROTOCOL.md token', async () => {
  const key = await seedKey(SEED);
  const t = await mintToken(key, 'demo', 'sensor-1', { ttl: 300, now: 1767225600, nonce: NONCE });
  assert.equal(t.length, 153);
  assert.equal(t, TOKEN);
});

test('a fresh token differs (random nonce) and has the right length', async () => {
  const key = await seedKey(SEED);
  const a = await mintToken(key, 'demo', 'sensor-1');
  const b = await mintToken(key, 'demo', 'sensor-1');
  assert.notEqual(a, b);
  assert.equal(a.length, 153);
  assert.match(a, /^igt1\.[A-Za-z0-9_-]+$/);
});

test('idents: alphabet and length', () => {
  assert.ok(checkIdent('a'));
  assert.ok(checkIdent('A-z_0.9'));
  assert.ok(checkIdent('x'.repeat(64)));
  for (const bad of ['', 'x'.repeat(65), 'a/b', 'a b', 'a+', '#', 'é', null, 5]) assert.equal(checkIdent(bad), false);
  assert.throws(() => tokenPayload('de/mo', 'x', 1, 2, NONCE), /cluster/);
  assert.throws(() => tokenPayload('demo', '', 1, 2, NONCE), /id/);
  assert.throws(() => tokenPayload('demo', 'x', 1, 2, new Uint8Array(15)), /nonce/);
  assert.throws(() => tokenPayload('demo', 'x', -1, 2, NONCE), /issued_at/);
});

test('enrol command and default id', () => {
  const pk = '03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8';
  assert.equal(defaultIdFor(pk), 'dash-03a107bf');
  const cmd = enrollCommand({ id: 'dash1', publicKeyHex: pk, cluster: 'demo' });
  const lines = cmd.split('\n');
  assert.equal(lines[0],
    `iotguard enroll --id dash1 --role monitor --pubkey ${pk} --host HOST --port PORT --cluster demo --user ADMIN --key ADMIN.key`);
  assert.equal(lines[2], `iotguard enroll --ledger DIR --id dash1 --role monitor --pubkey ${pk}`);
  assert.match(enrollCommand({ id: 'a1', publicKeyHex: pk, cluster: 'demo', role: 'admin' }), /--role admin/);
  assert.throws(() => enrollCommand({ id: 'a;rm', publicKeyHex: pk, cluster: 'demo' }), /id/);
  assert.throws(() => enrollCommand({ id: 'a', publicKeyHex: pk, cluster: 'demo', role: 'device' }), /monitor or admin/);
  assert.throws(() => enrollCommand({ id: 'a', publicKeyHex: 'zz', cluster: 'demo' }), /public key/);
});
