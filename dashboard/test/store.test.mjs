// store.test.mjs: the fleet model the console draws from (dashboard/src/store.js). The page
// shows what this model says, so its rules are pinned here: the fleet listing against the
// live statuses and ledger events (docs/PROTOCOL.md "Fleet listing", "Status", "Ledger
// events"), revocation winning over a stale "online", and an event the listing already
// covers not being counted twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FleetStore, state } from '../src/store.js';
import { relativeTime } from '../src/fleet.js';
import { describe as describeEvent } from '../src/feed.js';

function listing(store, pages) {
  store.beginListing();
  for (const p of pages) store.applyFleetPage(p);
  store.endListing();
}

test('a listing places identities; statuses and will move them online and offline', () => {
  const s = new FleetStore();
  listing(s, [{ type: 'fleet', total: 3, offset: 0, height: 10, identities: [
    { id: 'dev1', role: 'device', status: 'active', zone: 'b2', connected: true, balance: 40, outstanding: 3 },
    { id: 'dev2', role: 'device', status: 'active', connected: false, balance: 0, outstanding: 0 },
    { id: 'mon1', role: 'monitor', status: 'revoked', connected: false }] }]);
  assert.deepEqual(s.counts(), { online: 1, offline: 1, revoked: 1, unknown: 0, total: 3 });
  const r = s.snapshot('dev1');
  assert.equal(r.state, 'online');
  assert.equal(r.zone, 'b2');
  assert.equal(r.balance, 40);
  assert.equal(r.outstanding, 3);
  assert.equal(s.snapshot('mon1').balance, null, 'only devices have a wallet');
  s.applyStatus('dev2', { id: 'dev2', state: 'online', ts: 1000, measurement: 'ab'.repeat(32) }, 2000);
  assert.equal(s.snapshot('dev2').state, 'online');
  assert.equal(s.snapshot('dev2').lastSeen, 1000);
  assert.equal(s.snapshot('dev2').attest, 'ok');
  s.applyStatus('dev2', { id: 'dev2', state: 'offline' }, 5000);   // the will carries no ts
  assert.equal(s.snapshot('dev2').state, 'offline');
  assert.equal(s.snapshot('dev2').lastSeen, 5000);
});

test('a device clock ahead of ours never moves "last seen" into the future', () => {
  const s = new FleetStore();
  s.applyStatus('dev9', { state: 'online', ts: 99999 }, 1000);
  assert.equal(s.snapshot('dev9').lastSeen, 1000);
  assert.equal(s.snapshot('dev9').state, 'unknown', 'an id no listing named is unknown');
});

test('a status seen before the listing is not overridden by "connected"', () => {
  const s = new FleetStore();
  s.applyStatus('sim1', { state: 'online', ts: 5 }, 10);   // behind a bridge: not connected here
  listing(s, [{ total: 1, height: 4, identities: [{ id: 'sim1', role: 'device', status: 'active', connected: false }] }]);
  assert.equal(s.snapshot('sim1').state, 'online');
});

test('revocation wins, ends the wallet, and a stale status cannot undo it', () => {
  const s = new FleetStore();
  listing(s, [{ total: 1, height: 5, identities: [{ id: 'dev1', role: 'device', status: 'active', connected: true, balance: 7, outstanding: 2 }] }]);
  s.applyEvent({ index: 5, type: 'revoke', id: 'dev1', reason: 'lost', by: 'admin' });
  s.applyStatus('dev1', { state: 'online', ts: 1 }, 2);
  const r = s.snapshot('dev1');
  assert.equal(r.state, 'revoked');
  assert.equal(r.balance, 0);
  assert.equal(r.outstanding, 0);
  assert.equal(s.counts().revoked, 1);
});

test('bank events move the wallet; events the listing covers are not counted twice', () => {
  const s = new FleetStore();
  listing(s, [{ total: 1, height: 20, identities: [{ id: 'c1', role: 'device', status: 'active', connected: true, balance: 100, outstanding: 0 }] }]);
  s.applyEvent({ index: 19, type: 'credit', id: 'c1', amount: 50 });          // already in the listing
  assert.equal(s.snapshot('c1').balance, 100);
  s.applyEvent({ index: 20, type: 'credit', id: 'c1', amount: 50 });
  s.applyEvent({ index: 21, type: 'coin_mint', owner: 'c1', count: 3, coin_hashes: [] });
  s.applyEvent({ index: 22, type: 'coin_redeem', collector: 'c1', analyst: 'a1', coin_hash: '00' });
  s.applyEvent({ index: 23, type: 'coin_refund', collector: 'c1', coin_hash: '01', reason: 'cancelled' });
  assert.equal(s.snapshot('c1').balance, 147);
  assert.equal(s.snapshot('c1').outstanding, 1);
  s.applyEvent({ index: 24, type: 'enroll', id: 'new1', role: 'device', zone: 'lab' });
  assert.deepEqual([s.snapshot('new1').state, s.snapshot('new1').zone, s.snapshot('new1').balance], ['offline', 'lab', 0]);
});

test('a later full listing marks ids it no longer names unknown; stats flag attestation', () => {
  const s = new FleetStore();
  listing(s, [{ total: 2, height: 2, identities: [{ id: 'a', role: 'device', status: 'active' }, { id: 'b', role: 'device', status: 'active' }] }]);
  s.applyStatus('b', { state: 'online', measurement: 'cd'.repeat(32) }, 1);
  s.applyStats({ attestation: { flagged: ['b'] } });
  assert.equal(s.snapshot('b').attest, 'flagged');
  s.applyStats({ attestation: { flagged: [] } });
  assert.equal(s.snapshot('b').attest, 'ok');
  listing(s, [{ total: 1, height: 3, identities: [{ id: 'b', role: 'device', status: 'active' }] }]);
  assert.equal(state(s.get('a')), 'unknown');
  assert.equal(s.counts().unknown, 1);
});

test('the model bumps its version (and calls back) on every change, so views redraw', () => {
  const s = new FleetStore();
  let calls = 0;
  s.onDirty(() => calls++);
  const v = s.version;
  s.applyStatus('x', { state: 'online' }, 1);
  s.applyEvent({ type: 'unrelated' });
  assert.equal(s.version, v + 1);
  assert.equal(calls, 1);
  assert.equal(s.list.length, 1);
});

test('relative times and event sentences', () => {
  assert.equal(relativeTime(0, 1000), '—');
  assert.equal(relativeTime(1000, 1500), 'just now');
  assert.equal(relativeTime(0 + 1, 45001), '45 s ago');
  assert.equal(relativeTime(1, 3 * 3600 * 1000 - 1000), '2 h ago');
  assert.equal(describeEvent({ type: 'revoke', id: 'dev1', reason: 'lost', by: 'admin' }), 'dev1 revoked (lost) by admin');
  assert.equal(describeEvent({ type: 'coin_mint', owner: 'c1', count: 1 }), 'c1 minted 1 coin');
  assert.equal(describeEvent({ type: 'custody_event', event: 'ack', epoch: 3, holder: 'd2' }), 'ack · epoch 3 · holder d2');
});
