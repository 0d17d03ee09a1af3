// identity.test.mjs: the page's key is made once, non-extractable, kept,
// and two tabs opening at once end with ONE key (the operator enrols one).
// Node has no IndexedDB, so this runs identity.js against a small in-memory
// stand-in with IndexedDB's rules that matter here: requests complete
// asynchronously, a transaction completes after its last request, and
// readwrite transactions on a store run one at a time. The real browser
// store is exercised by tests/integration/test_dashboard.py (same key
// after a reload).
import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { loadOrCreateIdentity, deleteIdentity } from '../src/identity.js';

function fakeIndexedDB() {
  const dbs = new Map(); // name -> Map(store -> Map(key -> value))
  let rwChain = Promise.resolve();
  const later = (f) => setImmediate(f);

  function makeTx(data, mode) {
    const tx = { oncomplete: null, onerror: null, onabort: null, error: null };
    let pending = 0;
    let started = false;
    let release;
    const queue = [];
    const maybeComplete = () => later(() => {
      if (pending === 0) {
        tx.oncomplete?.();
        release?.();
      }
    });
    const run = (op) => {
      pending++;
      later(() => {
        op();
        pending--;
        maybeComplete();
      });
    };
    const request = (fn) => {
      const req = { result: undefined, onsuccess: null, onerror: null };
      const op = () => {
        req.result = fn();
        req.onsuccess?.();
      };
      if (started) run(op);
      else queue.push(op);
      return req;
    };
    tx.objectStore = () => ({
      get: (k) => request(() => data.get(k)),
      put: (v, k) => request(() => { if (mode !== 'readwrite') throw new Error('readonly'); data.set(k, v); }),
      delete: (k) => request(() => { data.delete(k); }),
    });
    const start = () => {
      started = true;
      for (const op of queue.splice(0)) run(op);
      maybeComplete();
    };
    if (mode === 'readwrite') {
      const prev = rwChain;
      rwChain = new Promise((r) => (release = r));
      prev.then(start);
    } else {
      later(start);
    }
    return tx;
  }

  return {
    open(name) {
      const req = { result: null, error: null, onsuccess: null, onerror: null, onupgradeneeded: null, onblocked: null };
      later(() => {
        let stores = dbs.get(name);
        const fresh = !stores;
        if (fresh) dbs.set(name, (stores = new Map()));
        req.result = {
          objectStoreNames: { contains: (s) => stores.has(s) },
          createObjectStore: (s) => stores.set(s, new Map()),
          transaction: (s, mode) => makeTx(stores.get(s), mode),
          close() {},
        };
        if (fresh) req.onupgradeneeded?.();
        req.onsuccess?.();
      });
      return req;
    },
    dump: (name) => dbs.get(name),
  };
}

beforeEach(() => {
  globalThis.indexedDB = fakeIndexedDB();
});

test('first use makes a non-extractable Ed25519 key; later loads return the same key', async () => {
  const a = await loadOrCreateIdentity();
  assert.equal(a.created, true);
  assert.match(a.publicKeyHex, /^[0-9a-f]{64}$/);
  assert.equal(a.privateKey.extractable, false);
  assert.equal(a.privateKey.algorithm.name, 'Ed25519');
  assert.deepEqual(a.privateKey.usages, ['sign']);
  await assert.rejects(crypto.subtle.exportKey('pkcs8', a.privateKey));
  const stored = globalThis.indexedDB.dump('iotguard-dashboard').get('keys').get('identity');
  assert.deepEqual(Object.keys(stored).sort(), ['privateKey', 'publicKeyHex']);
  const b = await loadOrCreateIdentity();
  assert.equal(b.created, false);
  assert.equal(b.publicKeyHex, a.publicKeyHex);
  assert.equal(b.privateKey, a.privateKey);
  // the stored private key signs for the stored public key
  const msg = new TextEncoder().encode('x');
  const sig = await crypto.subtle.sign({ name: 'Ed25519' }, b.privateKey, msg);
  const pub = await crypto.subtle.importKey('raw', Buffer.from(b.publicKeyHex, 'hex'), { name: 'Ed25519' }, false, ['verify']);
  assert.ok(await crypto.subtle.verify({ name: 'Ed25519' }, pub, sig, msg));
});

test('two tabs at once end with one key', async () => {
  const all = await Promise.all([loadOrCreateIdentity(), loadOrCreateIdentity(), loadOrCreateIdentity()]);
  assert.equal(new Set(all.map((x) => x.publicKeyHex)).size, 1);
  assert.equal(all.filter((x) => x.created).length, 1);
  assert.equal((await loadOrCreateIdentity()).publicKeyHex, all[0].publicKeyHex);
});

test('deleteIdentity forgets the key: the next load makes a new one', async () => {
  const a = await loadOrCreateIdentity();
  await deleteIdentity();
  const b = await loadOrCreateIdentity();
  assert.equal(b.created, true);
  assert.notEqual(b.publicKeyHex, a.publicKeyHex);
});

test('without IndexedDB the error says why', async () => {
  delete globalThis.indexedDB;
  await assert.rejects(loadOrCreateIdentity(), /no IndexedDB/);
});
