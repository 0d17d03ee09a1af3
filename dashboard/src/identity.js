// identity.js: the page's own Ed25519 identity key.
//
// Why this exists: the dashboard is an iotguard identity (a monitor, or an
// admin), enrolled by public key like any other. The private key is made by
// WebCrypto as a NON-extractable CryptoKey and kept in IndexedDB (a
// structured clone of a CryptoKey keeps it non-extractable), so page
// scripts can sign tokens with it but nothing, not even this code, can read
// its bytes out. Only the public key is shown, for the operator to enrol.

import { hexEncode } from './bytes.js';
import { checkIdent } from './token.js';

const DB_NAME = 'iotguard-dashboard';
const STORE = 'keys';
const KEY = 'identity';

function openDb() {
  return new Promise((resolve, reject) => {
    if (typeof indexedDB === 'undefined') {
      reject(new Error('this browser has no IndexedDB (private mode?): the dashboard cannot keep its key'));
      return;
    }
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => {
      if (!req.result.objectStoreNames.contains(STORE)) req.result.createObjectStore(STORE);
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(new Error(`cannot open IndexedDB "${DB_NAME}": ${req.error?.message ?? 'unknown error'}`));
    req.onblocked = () => reject(new Error(`IndexedDB "${DB_NAME}" is blocked by another tab: close it and reload`));
  });
}

function txDone(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error ?? new Error('IndexedDB transaction failed'));
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
  });
}

async function readIdentity(db) {
  const tx = db.transaction(STORE, 'readonly');
  const req = tx.objectStore(STORE).get(KEY);
  await txDone(tx);
  return req.result;
}

function usable(v) {
  return v && typeof v === 'object' && v.privateKey && typeof v.publicKeyHex === 'string' &&
    /^[0-9a-f]{64}$/.test(v.publicKeyHex);
}

// Returns the stored identity, or makes one. Two tabs opening at once must
// end with ONE key (the operator enrols one): the new key is added only if
// the slot is still empty, inside a single readwrite transaction, and the
// loser uses the winner's key.
export async function loadOrCreateIdentity() {
  if (!globalThis.crypto?.subtle)
    throw new Error('WebCrypto is unavailable: open the dashboard over https:// or http://localhost');
  const db = await openDb();
  try {
    const existing = await readIdentity(db);
    if (usable(existing)) return { privateKey: existing.privateKey, publicKeyHex: existing.publicKeyHex, created: false };

    let pair;
    try {
      pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    } catch (e) {
      throw new Error(`this browser cannot make Ed25519 keys (WebCrypto): use a current Chrome, Firefox or Safari (${e.message})`);
    }
    const publicKeyHex = hexEncode(new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey)));
    const tx = db.transaction(STORE, 'readwrite');
    const store = tx.objectStore(STORE);
    let result = null;
    const get = store.get(KEY);
    get.onsuccess = () => {
      if (usable(get.result)) {
        result = { privateKey: get.result.privateKey, publicKeyHex: get.result.publicKeyHex, created: false };
      } else {
        store.put({ privateKey: pair.privateKey, publicKeyHex }, KEY);
        result = { privateKey: pair.privateKey, publicKeyHex, created: true };
      }
    };
    await txDone(tx);
    // Ask the browser not to evict the key under storage pressure; losing it
    // means enrolling a new one. Best effort: refusal changes nothing else.
    if (result.created) globalThis.navigator?.storage?.persist?.().catch(() => {});
    return result;
  } finally {
    db.close();
  }
}

// Forget the key (the operator should revoke the old identity: the key is
// gone, but its enrolment is not).
export async function deleteIdentity() {
  const db = await openDb();
  try {
    const tx = db.transaction(STORE, 'readwrite');
    tx.objectStore(STORE).delete(KEY);
    await txDone(tx);
  } finally {
    db.close();
  }
}

export function defaultIdFor(publicKeyHex) {
  return 'dash-' + String(publicKeyHex).slice(0, 8);
}

// What the operator runs to enrol the page. HOST, PORT, ADMIN and DIR are
// literal placeholders the operator replaces (the page cannot know the MQTT
// listener or which admin will run it). Two lines: the online form (through
// a running broker, as an admin) and, after a comment, the offline form
// (on the ledger directory, broker stopped: the ledger has one writer).
export function enrollCommand({ id, publicKeyHex, role = 'monitor', cluster }) {
  if (!checkIdent(id)) throw new Error('identity id must be 1..64 characters of A-Z a-z 0-9 _ . -');
  if (!checkIdent(cluster)) throw new Error('cluster name must be 1..64 characters of A-Z a-z 0-9 _ . -');
  if (role !== 'monitor' && role !== 'admin') throw new Error('the dashboard enrols as role monitor or admin');
  if (typeof publicKeyHex !== 'string' || !/^[0-9a-f]{64}$/.test(publicKeyHex))
    throw new Error('public key must be 64 lowercase hex digits');
  return `iotguard enroll --id ${id} --role ${role} --pubkey ${publicKeyHex} --host HOST --port PORT --cluster ${cluster} --user ADMIN --key ADMIN.key\n` +
    '# or offline, on the ledger directory with the broker stopped:\n' +
    `iotguard enroll --ledger DIR --id ${id} --role ${role} --pubkey ${publicKeyHex}`;
}
