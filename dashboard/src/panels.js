// panels.js: the three status panels of the operator dashboard: the signed
// ledger head, custody of the cluster-head key, and the witnesses.
//
// Why it exists: these are the answers to "can I trust what this cluster
// head says?" and "can it still get its key back?". They must be readable at
// a glance: the head's state is one big word (verified / NOT verified) with
// the reason next to it, custody's state likewise, and every number the
// operator acts on (k of n, holders online, witnesses' cosigned sizes) is in
// plain sight rather than in a tooltip.
//
// All data comes from the broker (and, for the head, from note.verifyHead);
// it is put into the page with textContent only, never parsed as HTML.

import { untilText } from './format.js';
import { el, num } from './dom.js';

const EVENTS_KEPT = 12;


function str(v) {
  return typeof v === 'string' ? v : null;
}

// A field of the verification result or of the head, '' and null meaning
// "not known" (verifyHead leaves what it could not parse empty).
function present(v) {
  return v === '' || v == null ? null : v;
}

function clockTime(ms) {
  return new Date(ms).toLocaleTimeString();
}

// A key's fingerprint as shown next to it: enough to compare by eye with
// what `iotguard init` printed, grouped for reading aloud.
function fingerprint(hex) {
  if (typeof hex !== 'string' || !/^[0-9a-f]{64}$/i.test(hex)) return null;
  return hex.slice(0, 16).toLowerCase().match(/..../g).join(' ') + ' …';
}

// A definition list row; `value` may be a node or text.
function kv(dl, label, value, className) {
  const dt = el('dt', null, label);
  const dd = el('dd', className || null);
  if (value instanceof Node) dd.append(value);
  else dd.textContent = value == null ? '—' : String(value);
  dl.append(dt, dd);
  return dd;
}

function panelTitle(text, extra) {
  const h = el('h2', 'ig-panel-title', text);
  if (extra) h.append(extra);
  return h;
}

function badge(text, tone) {
  return el('span', 'ig-badge ig-badge-' + tone, text);
}

// ---- the signed head ------------------------------------------------------

function renderHead(root, head, result, opts) {
  const verified = !!(result && result.verified === true);
  const box = el('div', 'ig-verify ' + (verified ? 'ig-verify-ok' : 'ig-verify-bad'));
  box.id = 'head-verify';
  box.dataset.verified = verified ? 'true' : 'false';
  box.setAttribute('role', 'status');
  const word = el('div', 'ig-verify-word', verified ? 'verified' : 'NOT verified');
  const mark = el('span', 'ig-verify-mark', verified ? '✓' : '✗');
  mark.setAttribute('aria-hidden', 'true');
  word.prepend(mark);
  box.append(word);
  let reason;
  if (verified) reason = 'checkpoint signed by the pinned cluster-head key; size and root match';
  else if (!result) reason = 'not checked yet';
  else reason = str(result.reason) || 'the signature does not verify';
  box.append(el('div', 'ig-verify-reason', reason));

  if (!verified && head) box.append(el('div', 'ig-verify-note', 'The values below are what the head claims; none of them is verified.'));
  const dl = el('dl', 'ig-kv');
  const size = present(result && result.size) ?? present(head && head.size);
  kv(dl, 'size', size == null ? null : String(size) + ' records', 'ig-mono');
  const root64 = (result && str(result.rootB64)) || (head && str(head.root));
  const rootDd = kv(dl, 'root', root64, 'ig-mono ig-break');
  if (root64) rootDd.title = root64;
  kv(dl, 'origin', (result && str(result.origin)) || (head && str(head.origin)), 'ig-mono');
  const keyLabel = verified ? 'cluster-head key' : 'key the head claims';
  const fp = fingerprint(head && head.ch_pubkey);
  const keyDd = el('span', 'ig-mono', fp || 'missing');
  if (fp) keyDd.title = head.ch_pubkey;
  const keyWrap = el('span');
  keyWrap.append(keyDd);
  if (opts && opts.pinnedOnFirstUse) {
    keyWrap.append(' ', badge('pinned on first use', 'warn'));
    keyWrap.lastChild.title = 'No cluster-head key was configured (config.json): the page trusted the first head it saw. ' +
      'Compare the key with the one `iotguard init` printed.';
  }
  kv(dl, keyLabel, keyWrap);

  const cos = result ? result.cosigned : null;
  if (cos && typeof cos === 'object') {
    const valid = Array.isArray(cos.valid) ? cos.valid : [];
    const wrap = el('span');
    const n = el('strong', cos.met ? 'ig-ok-text' : 'ig-warn-text', valid.length + ' / ' + cos.quorum);
    wrap.append(n, ' ', cos.met ? badge('quorum met', 'ok') : badge('quorum not met', 'warn'));
    if (valid.length) wrap.append(el('div', 'ig-muted ig-small', 'valid: ' + valid.join(', ')));
    else if (head && head.cosigned !== true) wrap.append(el('div', 'ig-muted ig-small', 'awaiting cosignatures for this checkpoint'));
    const claimed = head && Array.isArray(head.witnesses) ? head.witnesses.filter((w) => typeof w === 'string') : [];
    const unproven = claimed.filter((w) => !valid.includes(w));
    if (unproven.length) wrap.append(el('div', 'ig-bad-text ig-small', 'claimed but not valid: ' + unproven.join(', ')));
    kv(dl, 'cosignatures', wrap);
  } else if (verified) {
    kv(dl, 'cosignatures', 'not checked: no witnesses configured (config.json)', 'ig-muted');
  } else {
    kv(dl, 'cosignatures', 'not checked: the head itself did not verify', 'ig-muted');
  }
  kv(dl, 'received', clockTime(Date.now()), 'ig-muted');
  root.replaceChildren(panelTitle('Signed ledger head'), box, dl);
}

// ---- custody ----------------------------------------------------------------

const CUSTODY_TONE = { active: 'ok', dealing: 'warn', unsealing: 'warn', sealed: 'bad', off: 'muted' };
const CUSTODY_TEXT = {
  active: 'active',
  dealing: 'dealing',
  unsealing: 'unsealing',
  sealed: 'SEALED',
  off: 'off',
};
const CUSTODY_MEANING = {
  active: 'the key is shared out and in memory',
  dealing: 'shares are being dealt to the holders',
  unsealing: 'enough shares: opening ch.key.sealed',
  sealed: 'running without its key: asking the holders for shares',
};
const EVENT_TONE = {
  ack: 'ok', share: 'ok', unsealed: 'ok', recovered: 'ok', sealed_file: 'ok', approved: 'ok',
  bad_ack: 'bad', bad_share: 'bad', unseal_failed: 'bad', deal_abandoned: 'warn', no_share: 'warn',
};

function renderCustody(root, c, counters, events) {
  const parts = [panelTitle('Custody of the cluster-head key')];
  if (!c && !counters) {
    parts.push(el('p', 'ig-muted', 'no custody state received yet'));
    root.replaceChildren(...parts, renderEvents(events));
    return;
  }
  const state = str(c ? c.state : counters.state) || 'unknown';
  const tone = CUSTODY_TONE[state] || 'muted';
  const big = el('div', 'ig-state ig-state-' + tone);
  big.id = 'custody-state';
  big.dataset.state = state;
  big.append(el('span', 'ig-state-word', CUSTODY_TEXT[state] || state));
  const epoch = num(c ? c.epoch : counters.epoch);
  if (epoch) big.append(el('span', 'ig-state-sub', 'epoch ' + epoch));
  if (c && num(c.dealing_epoch)) big.append(el('span', 'ig-state-sub', 'dealing epoch ' + c.dealing_epoch));
  if (CUSTODY_MEANING[state]) big.append(el('span', 'ig-state-sub ig-state-meaning', CUSTODY_MEANING[state]));
  parts.push(big);

  if (state === 'off') {
    parts.push(el('p', 'ig-message', 'Custody is off: ch.key stays on the broker\'s disk, and a copy of that disk is the ' +
      'cluster head. plugin_opt_custody_threshold and plugin_opt_custody_shares turn it on.'));
  }
  if (c && str(c.message)) parts.push(el('p', 'ig-message', c.message));
  if (c && str(c.last_bad_holder)) {
    parts.push(el('p', 'ig-alert', 'last bad share came from holder ' + c.last_bad_holder));
  } else if (counters && str(counters.last_bad_holder)) {
    parts.push(el('p', 'ig-alert', 'last bad share came from holder ' + counters.last_bad_holder));
  }

  if (c && state !== 'off') {
    const dl = el('dl', 'ig-kv');
    const k = num(c.k);
    const n = num(c.n);
    kv(dl, 'threshold', k != null && n != null ? k + ' of ' + n : null);
    if (c.sealed === true) kv(dl, 'sealed', 'yes: ch.key only as ch.key.sealed', 'ig-ok-text');
    else kv(dl, 'sealed', 'no', null);
    if (c.key_on_disk === true) kv(dl, 'key on disk', 'yes: ch.key is readable on the broker\'s disk', 'ig-warn-text');
    else kv(dl, 'key on disk', 'no', 'ig-ok-text');
    if (str(c.unseal)) kv(dl, 'unseal', c.unseal === 'admin' ? 'admin approval' : 'automatic');
    const coll = num(c.shares_collected);
    if (state === 'sealed' || state === 'unsealing' || coll) {
      kv(dl, 'shares collected', coll != null && k != null ? coll + ' of ' + k + ' needed' : coll);
    }
    const next = num(c.next_rotation_at);
    kv(dl, 'next rotation', next == null ? 'none scheduled' : untilText(next, Date.now()) + ' (' + new Date(next * 1000).toLocaleString() + ')');
    const pa = c.pending_approval;
    if (pa && typeof pa === 'object') {
      const req = str(pa.request);
      kv(dl, 'awaiting approval', 'epoch ' + (num(pa.epoch) ?? '?') + ', request ' + (req ? req.slice(0, 16) + '…' : '?') +
        ': run `iotguard custody approve`', 'ig-warn-text');
    }
    parts.push(dl);
    parts.push(renderHolders(Array.isArray(c.holders) ? c.holders : [], state));
  }
  const anyCount = counters && Object.values(counters).some((v) => typeof v === 'number' && v > 0);
  if (counters && (state !== 'off' || anyCount)) parts.push(renderCustodyCounters(counters));
  parts.push(renderEvents(events));
  root.replaceChildren(...parts);
}

function renderHolders(holders, state) {
  const wrap = el('div', 'ig-holders');
  if (!holders.length) {
    wrap.append(el('p', 'ig-muted', state === 'dealing' ? 'choosing holders…' : 'no holders'));
    return wrap;
  }
  const online = holders.filter((h) => h && h.online === true).length;
  const acked = holders.filter((h) => h && h.acked === true).length;
  wrap.append(el('div', 'ig-subtitle', 'holders: ' + online + ' of ' + holders.length + ' online, ' + acked + ' acked'));
  const table = el('table', 'ig-table ig-table-compact');
  const hr = el('tr');
  for (const t of ['#', 'holder', 'zone', 'online', 'share']) hr.append(el('th', null, t));
  const thead = el('thead');
  thead.append(hr);
  const tbody = el('tbody');
  for (const h of holders) {
    if (!h || typeof h !== 'object') continue;
    const tr = el('tr');
    if (str(h.id)) tr.dataset.id = h.id;
    tr.append(el('td', 'num', num(h.index) ?? ''));
    tr.append(el('td', 'ig-mono', str(h.id) || '?'));
    tr.append(el('td', str(h.zone) ? null : 'ig-muted', str(h.zone) || '—'));
    const on = el('td');
    on.append(el('span', 'ig-dot ' + (h.online === true ? 'ig-dot-ok' : 'ig-dot-bad')), h.online === true ? 'online' : 'offline');
    tr.append(on);
    tr.append(el('td', h.acked === true ? 'ig-ok-text' : 'ig-warn-text', h.acked === true ? 'acked' : 'waiting for ack'));
    tbody.append(tr);
  }
  table.append(thead, tbody);
  wrap.append(table);
  return wrap;
}

function renderCustodyCounters(k) {
  const items = [
    ['epochs dealt', k.epochs_dealt], ['rotations', k.rotations], ['acks', k.acks], ['bad acks', k.bad_acks, true],
    ['deals abandoned', k.deals_abandoned, true], ['shares good', k.shares_good], ['shares bad', k.shares_bad, true],
    ['shares refused', k.shares_refused, true], ['unseals', k.unseals], ['recoveries', k.recoveries],
  ];
  const ul = el('ul', 'ig-counters');
  for (const [label, v, badIfNonZero] of items) {
    const n = num(v);
    if (n == null) continue;
    const li = el('li', badIfNonZero && n > 0 ? 'ig-bad-text' : null);
    li.append(el('span', 'ig-counter-n', n), ' ', label);
    ul.append(li);
  }
  const wrap = el('div', 'ig-counters-wrap');
  wrap.append(el('div', 'ig-subtitle', 'since the broker started'), ul);
  return wrap;
}

function renderEvents(events) {
  const wrap = el('div', 'ig-events');
  wrap.append(el('div', 'ig-subtitle', 'latest custody events'));
  if (!events.length) {
    wrap.append(el('p', 'ig-muted', 'none since the page opened'));
    return wrap;
  }
  const ol = el('ol', 'ig-event-list');
  for (const e of events) {
    const ev = str(e.event) || '?';
    const li = el('li', 'ig-event ig-event-' + (EVENT_TONE[ev] || 'muted'));
    li.dataset.event = ev;
    li.append(el('time', 'ig-muted', num(e.ts) ? clockTime(e.ts) : ''));
    li.append(el('span', 'ig-event-name', ev));
    const bits = [];
    if (num(e.epoch)) bits.push('epoch ' + e.epoch);
    if (str(e.holder)) bits.push(e.holder);
    if (bits.length) li.append(el('span', 'ig-mono', bits.join(' · ')));
    if (str(e.message)) li.append(el('span', 'ig-event-msg', e.message));
    ol.append(li);
  }
  wrap.append(ol);
  return wrap;
}

// ---- witnesses ------------------------------------------------------------

const STATUS_TEXT = {
  0: ['no answer yet', 'muted'],
  200: ['cosigned', 'ok'],
  400: ['400 malformed request', 'bad'],
  403: ['403 not signed by the log key', 'bad'],
  404: ['404 other origin', 'bad'],
  409: ['409 size conflict', 'warn'],
  422: ['422 proof failed or FORK', 'bad'],
  500: ['500 witness could not save', 'bad'],
};

function renderWitnesses(root, w, ledger) {
  const list = el('div', 'ig-witnesses');
  list.id = 'witnesses';
  const parts = [panelTitle('Witnesses'), list];
  if (!w || typeof w !== 'object') {
    list.dataset.configured = 'false';
    list.append(el('p', 'ig-muted', 'no witnesses in the policy: heads are signed by the cluster head alone'));
    root.replaceChildren(...parts);
    return;
  }
  list.dataset.configured = 'true';
  const per = w.per_witness && typeof w.per_witness === 'object' ? Object.entries(w.per_witness) : [];
  const height = ledger ? num(ledger.checkpoint_size) : null;
  const cosignedSize = num(w.cosigned_size) ?? 0;
  const quorum = num(w.quorum);
  const upToDate = per.filter(([, x]) => num(x.cosigned_size) != null && x.cosigned_size > 0 &&
    (height == null || x.cosigned_size >= cosignedSize)).length;

  const summary = el('div', 'ig-state ig-state-' + (cosignedSize > 0 && quorum != null && upToDate >= quorum ? 'ok' : cosignedSize > 0 ? 'warn' : 'bad'));
  summary.append(el('span', 'ig-state-word', cosignedSize > 0 ? 'cosigned up to ' + cosignedSize : 'nothing cosigned yet'));
  if (height != null && cosignedSize > 0 && height > cosignedSize) summary.append(el('span', 'ig-state-sub', (height - cosignedSize) + ' behind the checkpoint'));
  list.append(summary);
  // A refusal is the witnesses' alarm (a fork, a rollback, a bad proof):
  // named above the numbers, not only as a red cell in the table.
  for (const [name, x] of per) {
    const st = x && typeof x === 'object' ? num(x.last_status) : null;
    if (st != null && st !== 0 && st !== 200 && st !== 409) {
      list.append(el('p', 'ig-alert', 'witness ' + name + ' refused the last checkpoint: ' + (STATUS_TEXT[st] || [String(st)])[0]));
    }
  }

  const dl = el('dl', 'ig-kv');
  kv(dl, 'quorum', quorum == null ? null : quorum + ' of ' + per.length);
  kv(dl, 'quorum latency', num(w.quorum_latency_ms) == null ? null : w.quorum_latency_ms + ' ms');
  kv(dl, 'requests sent', num(w.requests));
  kv(dl, 'refusals', num(w.refusals), num(w.refusals) ? 'ig-bad-text' : null);
  list.append(dl);

  const table = el('table', 'ig-table ig-table-compact');
  const hr = el('tr');
  for (const [t, c] of [['witness', ''], ['cosigned size', 'num'], ['last answer', ''], ['refusals', 'num'], ['409s', 'num']]) hr.append(el('th', c || null, t));
  const thead = el('thead');
  thead.append(hr);
  const tbody = el('tbody');
  for (const [name, x] of per) {
    if (!x || typeof x !== 'object') continue;
    const tr = el('tr');
    tr.dataset.id = name;
    tr.append(el('td', 'ig-mono', name));
    const cs = num(x.cosigned_size) ?? 0;
    tr.append(el('td', 'num' + (cs === 0 ? ' ig-muted' : ''), cs === 0 ? 'none' : cs));
    const st = num(x.last_status) ?? 0;
    const [text, tone] = STATUS_TEXT[st] || [String(st), 'bad'];
    const td = el('td');
    td.append(el('span', 'ig-dot ig-dot-' + tone), text);
    tr.dataset.status = String(st);
    tr.append(td);
    tr.append(el('td', 'num' + (num(x.refusals) ? ' ig-bad-text' : ''), num(x.refusals) ?? 0));
    tr.append(el('td', 'num' + (num(x.conflicts) ? ' ig-warn-text' : ''), num(x.conflicts) ?? 0));
    tbody.append(tr);
  }
  table.append(thead, tbody);
  list.append(table);
  root.replaceChildren(...parts);
}

// ---- the module's interface ------------------------------------------------

export function createPanels({ head, custody, witnesses }) {
  for (const [e, c] of [[head, 'ig-panel-head'], [custody, 'ig-panel-custody'], [witnesses, 'ig-panel-witnesses']]) {
    e.classList.add('ig-panel', c);
  }
  let custodyObj = null;
  let custodyCounters = null;
  const events = [];
  let lastWitnessKey = '';

  head.replaceChildren(panelTitle('Signed ledger head'), waitingVerify());
  renderCustody(custody, null, null, events);
  renderWitnesses(witnesses, null, null);
  witnesses.querySelector('#witnesses').dataset.configured = 'unknown';
  witnesses.querySelector('#witnesses').replaceChildren(el('p', 'ig-muted', 'waiting for the first stats message…'));

  function onHead(headJson, result, opts = {}) {
    renderHead(head, headJson && typeof headJson === 'object' ? headJson : null, result || null, opts);
  }

  function onCustody(obj) {
    if (!obj || typeof obj !== 'object') return;
    custodyObj = obj;
    renderCustody(custody, custodyObj, custodyCounters, events);
  }

  function onCustodyEvent(obj) {
    if (!obj || typeof obj !== 'object' || obj.type !== 'custody_event') return;
    events.unshift(obj);
    if (events.length > EVENTS_KEPT) events.length = EVENTS_KEPT;
    renderCustody(custody, custodyObj, custodyCounters, events);
  }

  function onStats(stats) {
    if (!stats || typeof stats !== 'object') return;
    // Stats come every interval; the panels are only rebuilt when what they
    // show changed.
    const wKey = JSON.stringify([stats.witnesses ?? null, stats.ledger ? stats.ledger.checkpoint_size : null]);
    if (wKey !== lastWitnessKey) {
      lastWitnessKey = wKey;
      renderWitnesses(witnesses, stats.witnesses, stats.ledger);
    }
    const c = stats.custody && typeof stats.custody === 'object' ? stats.custody : null;
    if (JSON.stringify(c) !== JSON.stringify(custodyCounters)) {
      custodyCounters = c;
      renderCustody(custody, custodyObj, custodyCounters, events);
    }
  }

  // "next rotation in 23 h 58 min" is relative to now: keep it true
  // without waiting for the next custody message.
  setInterval(() => {
    if (custodyObj && num(custodyObj.next_rotation_at) != null) renderCustody(custody, custodyObj, custodyCounters, events);
  }, 30000);

  return { onHead, onCustody, onCustodyEvent, onStats };
}

function waitingVerify() {
  const box = el('div', 'ig-verify ig-verify-wait');
  box.id = 'head-verify';
  box.dataset.verified = 'false';
  box.append(el('div', 'ig-verify-word', 'waiting for the head'), el('div', 'ig-verify-reason', 'no signed head received yet'));
  return box;
}
