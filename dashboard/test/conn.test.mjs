// conn.test.mjs: the reconnect loop and the request/answer matching of
// conn.js, against a scripted stand-in for MQTT.js (injected as
// mqttConnect, so no mqtt package is needed here; the real MQTT.js and
// Mosquitto are exercised by tests/integration/test_dashboard.py).
// What must hold: a fresh token on every connect, MQTT 5 with our own
// reconnect (reconnectPeriod 0), 1 s..10 s back-off after a lost
// connection, state "refused" and a 5 s retry after CONNACK 0x87, filters
// made again on each connect, replies matched by nonce / correlation, and
// the token never in a state detail; requestAll gathers every part of a
// fleet page (in part order, a redelivered part once, an error rejects).
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { Conn } from '../src/conn.js';

class FakeClient extends EventEmitter {
  constructor(url, opts) {
    super();
    this.url = url;
    this.opts = opts;
    this.subs = [];
    this.pubs = [];
    this.ended = false;
    this.subackCodes = null; // function(filters) -> codes
  }
  subscribe(obj, cb) {
    const filters = Object.keys(obj);
    this.subs.push(obj);
    const codes = this.subackCodes ? this.subackCodes(filters) : filters.map((f) => obj[f].qos);
    setImmediate(() => cb(codes.some((c) => c >= 0x80) ? new Error('Subscribe error') : null, [], { granted: codes }));
  }
  publish(topic, text, opts, cb) {
    this.pubs.push({ topic, text, opts });
    setImmediate(() => cb(null));
  }
  end() {
    this.ended = true;
  }
  // helpers for the test
  deliver(topic, obj) {
    this.emit('message', topic, Buffer.from(JSON.stringify(obj)));
  }
  refuse(code = 0x87) {
    const e = new Error('Connection refused: Not authorized');
    e.code = code;
    this.emit('error', e);
    this.emit('close');
  }
}

const tick = () => new Promise((r) => setImmediate(r));
async function settle() {
  for (let i = 0; i < 10; i++) await tick();
}

function harness() {
  const clients = [];
  const states = [];
  const messages = [];
  let n = 0;
  const conn = new Conn({
    url: 'ws://localhost:9001/mqtt', cluster: 'demo', id: 'dash1',
    getToken: async () => `igt1.SECRET${++n}`,
    onState: (s, d) => states.push([s, d]),
    onMessage: (t, p) => messages.push([t, p]),
    mqttConnect: (url, opts) => {
      const c = new FakeClient(url, opts);
      clients.push(c);
      return c;
    },
  });
  return { conn, clients, states, messages };
}

test('connect options: MQTT 5, id as client id and username, fresh token, own reconnect', async () => {
  const { conn, clients, states } = harness();
  conn.start();
  await settle();
  assert.equal(clients.length, 1);
  const o = clients[0].opts;
  assert.equal(clients[0].url, 'ws://localhost:9001/mqtt');
  assert.equal(o.protocolVersion, 5);
  assert.equal(o.clientId, 'dash1');
  assert.equal(o.username, 'dash1');
  assert.equal(o.password, 'igt1.SECRET1');
  assert.equal(o.clean, true);
  assert.equal(o.keepalive, 30);
  assert.equal(o.reconnectPeriod, 0);
  assert.equal(states.at(-1)[0], 'connecting');
  clients[0].emit('connect', {});
  assert.equal(conn.state, 'connected');
  assert.equal(states.at(-1)[0], 'connected');
  conn.stop();
  assert.equal(conn.state, 'closed');
  assert.ok(clients[0].ended);
});

test('refused (CONNACK 0x87): state refused, retry every 5 s with a fresh token', async () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const { conn, clients, states } = harness();
    conn.start();
    await settle();
    clients[0].refuse(0x87);
    assert.equal(conn.state, 'refused');
    assert.match(states.at(-1)[1], /refused dash1 \(CONNACK 0x87/);
    mock.timers.tick(4999);
    await settle();
    assert.equal(clients.length, 1);
    mock.timers.tick(1);
    await settle();
    assert.equal(clients.length, 2);
    assert.equal(clients[1].opts.password, 'igt1.SECRET2');
    clients[1].refuse(0x87);
    mock.timers.tick(5000);
    await settle();
    assert.equal(clients.length, 3, 'refusals do not back off past 5 s');
    clients[2].emit('connect', {});
    assert.equal(conn.state, 'connected');
    for (const [, detail] of states) assert.ok(!String(detail).includes('SECRET'), 'no token in a state detail');
    conn.stop();
  } finally {
    mock.timers.reset();
  }
});

test('lost connection: back-off 1, 2, 4, 8, 10, 10 s; reset after a connect', async () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const { conn, clients } = harness();
    conn.start();
    await settle();
    const waits = [];
    for (let k = 0; k < 6; k++) {
      clients.at(-1).emit('error', new Error('connect ECONNREFUSED'));
      clients.at(-1).emit('close');
      assert.equal(conn.state, 'closed');
      const before = clients.length;
      let waited = 0;
      while (clients.length === before && waited < 20000) {
        mock.timers.tick(500);
        waited += 500;
        await settle();
      }
      waits.push(waited);
    }
    assert.deepEqual(waits, [1000, 2000, 4000, 8000, 10000, 10000]);
    clients.at(-1).emit('connect', {});
    clients.at(-1).emit('close');
    const before = clients.length;
    mock.timers.tick(1000);
    await settle();
    assert.equal(clients.length, before + 1, 'back-off starts again at 1 s after a successful connect');
    conn.stop();
    mock.timers.tick(20000);
    await settle();
    assert.equal(clients.length, before + 1, 'no reconnect after stop()');
  } finally {
    mock.timers.reset();
  }
});

test('subscriptions are remembered and made again on every connect', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { conn, clients } = harness();
  const early = conn.subscribe(['iotguard/demo/stats', 'iotguard/demo/ledger/#']);
  conn.start();
  await settle();
  clients[0].subackCodes = (fs) => fs.map((f) => (f === 'iotguard/demo/ledger/#' ? 0x87 : 0));
  clients[0].emit('connect', {});
  assert.deepEqual(await early, [0, 0x87]);
  assert.deepEqual(await conn.subscribe('iotguard/demo/dev/+/status'), [0]);
  clients[0].emit('close');
  t.mock.timers.tick(1000);
  await settle();
  clients[1].emit('connect', {});
  await settle();
  assert.deepEqual(Object.keys(clients[1].subs[0]).sort(),
    ['iotguard/demo/dev/+/status', 'iotguard/demo/ledger/#', 'iotguard/demo/stats']);
  conn.stop();
});

test('request: nonce added, answer matched by nonce, errors carry their code', async () => {
  const { conn, clients, messages } = harness();
  conn.start();
  await settle();
  const c = clients[0];
  c.emit('connect', {});
  const p = conn.request({ type: 'fleet', offset: 0, limit: 500 });
  await settle();
  assert.deepEqual(Object.keys(c.subs.at(-1)), ['iotguard/demo/dev/dash1/inbox']);
  assert.equal(c.pubs.length, 1);
  assert.equal(c.pubs[0].topic, 'iotguard/demo/ch/dash1');
  assert.equal(c.pubs[0].opts.qos, 1);
  const sent = JSON.parse(c.pubs[0].text);
  assert.equal(sent.type, 'fleet');
  assert.match(sent.nonce, /^[0-9a-f]{32}$/);
  c.deliver('iotguard/demo/dev/dash1/inbox', { type: 'fleet', nonce: 'other', total: 0 });
  c.deliver('iotguard/demo/dev/dash1/inbox', { type: 'fleet', nonce: sent.nonce, total: 7 });
  assert.equal((await p).total, 7);
  assert.equal(messages.length, 2, 'inbox messages still reach onMessage');

  const q = conn.request({ type: 'fleet', limit: 5000 });
  await settle();
  const sent2 = JSON.parse(c.pubs[1].text);
  assert.notEqual(sent2.nonce, sent.nonce);
  c.deliver('iotguard/demo/dev/dash1/inbox', { type: 'error', error: 'malformed', request: 'fleet', nonce: sent2.nonce, message: 'limit' });
  await assert.rejects(q, (e) => e.code === 'malformed' && e.reply.request === 'fleet');

  const lost = conn.request({ type: 'fleet' });
  await settle();
  c.emit('close');
  await assert.rejects(lost, /connection to the broker was lost/);
  conn.stop();
});

test('request timeout and request while not connected', async () => {
  const { conn, clients } = harness();
  await assert.rejects(conn.request({ type: 'ping' }, { timeoutMs: 1000 }), /not connected/);
  conn.start();
  await settle();
  clients[0].emit('connect', {});
  await assert.rejects(conn.request({ type: 'ping' }, { timeoutMs: 20 }), /no answer to the ping request within 0.02 s/);
  conn.stop();
});

test('requestAll: the parts of a fleet page, in part order, once all came', async () => {
  const { conn, clients } = harness();
  conn.start();
  await settle();
  const c = clients[0];
  c.emit('connect', {});
  const inbox = 'iotguard/demo/dev/dash1/inbox';
  const part = (nonce, i, n, ids) => ({ type: 'fleet', nonce, total: 40, offset: i * 10, height: 9, part: i, parts: n, identities: ids });

  let settled = false;
  const p = conn.requestAll({ type: 'fleet', offset: 0, limit: 500 });
  p.then(() => { settled = true; }, () => { settled = true; });
  await settle();
  assert.equal(c.pubs.at(-1).topic, 'iotguard/demo/ch/dash1');
  const { nonce } = JSON.parse(c.pubs.at(-1).text);
  assert.match(nonce, /^[0-9a-f]{32}$/);
  c.deliver(inbox, part(nonce, 0, 3, ['a']));
  c.deliver(inbox, part('other', 2, 3, ['x']));  // another request's part
  c.deliver(inbox, part(nonce, 2, 3, ['c']));
  c.deliver(inbox, part(nonce, 2, 3, ['c']));    // a redelivery counts once
  await settle();
  assert.equal(settled, false, 'two of three parts: still waiting');
  c.deliver(inbox, part(nonce, 1, 3, ['b']));
  const got = await p;
  assert.deepEqual(got.map((m) => m.part), [0, 1, 2]);
  assert.deepEqual(got.flatMap((m) => m.identities), ['a', 'b', 'c']);
  assert.equal(conn.requests.size, 0, 'nothing left pending');

  // A reply without parts is complete alone; one of one part too.
  const q = conn.requestAll({ type: 'ping' });
  await settle();
  c.deliver(inbox, { type: 'pong', nonce: JSON.parse(c.pubs.at(-1).text).nonce });
  assert.deepEqual((await q).map((m) => m.type), ['pong']);
  const one = conn.requestAll({ type: 'fleet', offset: 40 });
  await settle();
  c.deliver(inbox, part(JSON.parse(c.pubs.at(-1).text).nonce, 0, 1, []));
  assert.equal((await one).length, 1);

  // An error reply rejects as request() does, also after some parts.
  const e = conn.requestAll({ type: 'fleet' });
  await settle();
  const en = JSON.parse(c.pubs.at(-1).text).nonce;
  c.deliver(inbox, part(en, 0, 2, ['a']));
  c.deliver(inbox, { type: 'error', error: 'rate_limited', request: 'fleet', nonce: en, message: 'slow down' });
  await assert.rejects(e, (err) => err.code === 'rate_limited' && err.reply.request === 'fleet');

  // Parts that do not add up are refused, not waited on.
  const bad = conn.requestAll({ type: 'fleet' });
  await settle();
  const bn = JSON.parse(c.pubs.at(-1).text).nonce;
  c.deliver(inbox, part(bn, 0, 2, ['a']));
  c.deliver(inbox, part(bn, 1, 3, ['b']));
  await assert.rejects(bad, (err) => err.code === 'malformed_reply');

  // A timeout says how many parts came.
  const slow = conn.requestAll({ type: 'fleet' }, { timeoutMs: 30 });
  await settle();
  c.deliver(inbox, part(JSON.parse(c.pubs.at(-1).text).nonce, 1, 4, ['b']));
  await assert.rejects(slow, /no answer to the fleet request within 0.03 s \(only 1 of its 4 parts came\)/);

  // request() still resolves with the first message alone.
  const r = conn.request({ type: 'fleet' });
  await settle();
  c.deliver(inbox, part(JSON.parse(c.pubs.at(-1).text).nonce, 0, 2, ['a']));
  assert.equal((await r).part, 0);

  const lost = conn.requestAll({ type: 'fleet' });
  await settle();
  c.deliver(inbox, part(JSON.parse(c.pubs.at(-1).text).nonce, 0, 2, ['a']));
  c.emit('close');
  await assert.rejects(lost, /connection to the broker was lost/);
  conn.stop();
});

test('admin: correlations, one request in flight, whole-request refusal', async () => {
  const { conn, clients } = harness();
  conn.start();
  await settle();
  const c = clients[0];
  c.emit('connect', {});
  const a = conn.admin([{ command: 'enroll', id: 'x', role: 'device', pubkey: '00'.repeat(32) }, { command: 'get_identity', id: 'y', correlation: 'mine' }]);
  const b = conn.admin([{ command: 'revoke', id: 'x' }]);
  await settle();
  assert.deepEqual(Object.keys(c.subs.at(-1)), ['$CONTROL/iotguard/v1/response']);
  assert.equal(c.pubs.length, 1, 'the second admin request waits for the first');
  assert.equal(c.pubs[0].topic, '$CONTROL/iotguard/v1');
  const req = JSON.parse(c.pubs[0].text);
  const corr = req.commands.map((x) => x.correlation);
  assert.match(corr[0], /^dash-[0-9a-f]{8}-0$/);
  assert.equal(corr[1], 'mine');
  c.deliver('$CONTROL/iotguard/v1/response', { responses: [{ correlation: 'stale', ok: true }] });
  c.deliver('$CONTROL/iotguard/v1/response', { responses: [{ command: 'enroll', correlation: corr[0], ok: true, index: 3 }, { command: 'get_identity', correlation: 'mine', ok: false, error: 'not_found' }] });
  const ra = await a;
  assert.equal(ra[0].index, 3);
  assert.equal(ra[1].error, 'not_found');
  await settle();
  assert.equal(c.pubs.length, 2);
  c.deliver('$CONTROL/iotguard/v1/response', { responses: [{ command: '', correlation: '', ok: false, error: 'forbidden', message: 'not an admin' }] });
  await assert.rejects(b, (e) => e.code === 'forbidden');
  await assert.rejects(conn.admin([]), /1 to 64/);
  conn.stop();
});

test('admin from a non-admin: the refused response subscription is reported, not hung on', async () => {
  const { conn, clients } = harness();
  conn.start();
  await settle();
  const c = clients[0];
  c.subackCodes = (fs) => fs.map(() => 0x87);
  c.emit('connect', {});
  await assert.rejects(conn.admin([{ command: 'get_identity', id: 'x' }]), /refused the subscription to \$CONTROL\/iotguard\/v1\/response \(reason 0x87\): only an active admin/);
  assert.equal(c.pubs.length, 0, 'nothing published without a way to read the answer');
  // once the role allows it (re-enrolled as admin), the next call subscribes again and works
  c.subackCodes = null;
  const p = conn.admin([{ command: 'get_identity', id: 'x', correlation: 'k' }]);
  await settle();
  c.deliver('$CONTROL/iotguard/v1/response', { responses: [{ command: 'get_identity', correlation: 'k', ok: true }] });
  assert.equal((await p)[0].ok, true);
  conn.stop();
});
