// feed.test.mjs — the feed's one-line descriptions (feed.js describe) for the ledger event
// types of docs/PROTOCOL.md "Ledger events" and docs/LEDGER.md 7: who, what, and where keys
// and coins flow, with nothing undefined shown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describe } from '../src/feed.js';

test('every event type reads as a sentence about who and what', () => {
  const cases = [
    [{ type: 'enroll', id: 'dev1', role: 'device', zone: 'b2', by: 'admin1' }, 'dev1 enrolled as device in b2 by admin1'],
    [{ type: 'revoke', id: 'dev2', reason: 'stolen', by: 'admin1@b1' }, 'dev2 revoked (stolen) by admin1@b1'],
    [{ type: 'key_issued', a: 'dev1', b: 'dev3', key_id: 'ab', expires_at: 1 }, 'session key for dev1 ↔ dev3'],
    [{ type: 'join_used', id: 'dev5', code_id: '00' }, 'dev5 joined with a join code'],
    [{ type: 'attest', id: 'dev1', measurement: 'aa'.repeat(32), allowed: 0 }, 'dev1 reported measurement aaaaaaaa… (NOT on the allow list)'],
    [{ type: 'attest', id: 'dev1', measurement: 'bb'.repeat(32), allowed: 2 }, 'dev1 reported measurement bbbbbbbb…'],
    [{ type: 'kp_epoch', epoch: 2, pool: 100, ring: 25, q: 1 }, 'key rings: epoch 2 (pool 100, ring 25, q 1)'],
    [{ type: 'kp_ring', epoch: 2, id: 'dev4', ring_hash: '00' }, 'dev4 got its key ring (epoch 2)'],
    [{ type: 'kp_compromised', epoch: 2, id: 'dev2', ids: [1, 2] }, "dev2's ring ids compromised for epoch 2"],
    [{ type: 'coin_redeem', analyst: 'an1', collector: 'dev3', coin_hash: 'cd'.repeat(32) }, 'an1 redeemed a coin of dev3 (cdcdcdcd…)'],
  ];
  for (const [ev, want] of cases) {
    const got = describe(ev);
    assert.equal(got, want, ev.type);
    assert.doesNotMatch(got, /undefined|null/, ev.type);
  }
});
