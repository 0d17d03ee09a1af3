// charts.js: the live charts of the operator dashboard, drawn with uPlot from
// the broker's periodic stats (docs/PROTOCOL.md "Stats").
//
// Why it exists: the stats message is a snapshot of counters since the broker
// started. A person reads trends, not counters, so every counter is turned
// into a per-interval delta (refusals, denials, mints...) and every gauge
// (connections, live keys, outstanding coins, ledger height) is plotted as is.
//
// Why it is built this way: stats arrive every stats_interval seconds for as
// long as the page is open, so each update must cost little. The charts are
// created once; every metric keeps one array (the last MAX_POINTS samples)
// shared by reference with the uPlot data of the charts that show it, and an
// update pushes one value per array and calls setData at most once per
// animation frame. Series for refusal reasons, roles and entropy refusals are
// added the first time they occur (uPlot.addSeries), with their history,
// because all of them are always counted but usually zero.
//
// Everything shown that comes from the broker is set with textContent.

import uPlot from 'uplot';
import { el, num } from './dom.js';

const MAX_POINTS = 360;

// Colours for the dark background; green and red are never the only cue:
// the legend names every series.
const GOOD = '#3fb950';
const BAD = '#f85149';
const NEUTRAL = '#58a6ff';
const AXIS = '#8b949e';
const GRID = 'rgba(240, 246, 252, 0.07)';
const ROLES = ['device', 'analyst', 'monitor', 'admin', 'witness', 'bridge'];
const ROLE_COLOURS = { device: '#58a6ff', analyst: '#bc8cff', monitor: '#39c5cf', admin: '#f0883e',
  witness: '#e3b341', bridge: '#ff7b72' };
// Refusal reasons keep one colour each across charts and reloads, chosen so
// that reasons that tend to come together (bad_signature, expired,
// malformed, unknown_id...) are far apart, and none of them is the green of
// "accepted".
const REASON_COLOURS = {
  no_credentials: '#8b949e', malformed: '#f0883e', id_mismatch: '#db61a2', unknown_id: '#bc8cff',
  not_active: '#56d4dd', revoked: '#ffa198', bad_signature: '#f85149', wrong_cluster: '#e3b341',
  ttl_too_long: '#a5d6ff', not_yet_valid: '#d2a8ff', expired: '#58a6ff', rate_limited: '#ffdf5d',
  code_unknown: '#b392f0', code_used: '#f778ba', code_expired: '#79c0ff', id_taken: '#ffa657',
  replayed: '#ff9bce', sealed: '#c9d1d9',
  // entropy refusals
  over_rate: '#e3b341', attestation: '#f85149',
};
const SPARE_COLOURS = ['#f0883e', '#bc8cff', '#56d4dd', '#db61a2', '#e3b341', '#a5d6ff', '#ffa198', '#d2a8ff'];

function reasonColour(name) {
  if (Object.hasOwn(REASON_COLOURS, name)) return REASON_COLOURS[name];
  // A reason newer than this page: a colour from its name, stable too.
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return SPARE_COLOURS[h % SPARE_COLOURS.length];
}

const fmtCount = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1, notation: 'compact' });
const fmtExact = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

function compact(v) {
  return v == null || Number.isNaN(v) ? '—' : fmtCount.format(v);
}

function exact(v) {
  return v == null || Number.isNaN(v) ? '—' : fmtExact.format(v);
}

// Integer tick steps for count axes (no "0.5 refusals"); latency axes keep
// uPlot's default increments.
const COUNT_INCRS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1e3, 2e3, 2500, 5e3, 1e4, 2e4, 5e4,
  1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12];

function zeroBased(u, dmin, dmax) {
  const hi = dmax == null || dmax <= 0 ? 1 : dmax;
  return uPlot.rangeNum(0, hi, 0.1, true);
}

// The six charts. Each series names the metric key it reads (see extract()).
// `dynamic` describes the series added when one of a family of metrics first
// becomes non-zero.
const CHARTS = [
  {
    id: 'auth',
    title: 'Logins',
    note: 'per stats interval',
    scales: { l: { label: 'accepted', counts: true }, r: { label: 'refused', counts: true } },
    series: [{ key: 'auth.accepted', label: 'accepted', scale: 'l', color: GOOD, fill: true, step: true }],
    dynamic: { prefix: 'auth.refused.', label: (r) => 'refused: ' + r, scale: 'r', step: true,
      colour: reasonColour },
  },
  {
    id: 'conn',
    title: 'Connections and ACL denials',
    note: 'connected now by role · denials per interval',
    scales: { l: { label: 'connected', counts: true }, r: { label: 'denied', counts: true } },
    series: [
      { key: 'conn.total', label: 'connected (all)', scale: 'l', color: '#c9d1d9', width: 2 },
      { key: 'acl.denied_publish', label: 'denied publish', scale: 'r', color: BAD, dash: [4, 3], step: true },
      { key: 'acl.denied_subscribe', label: 'denied subscribe', scale: 'r', color: '#ff7b72', dash: [4, 3], step: true },
      { key: 'acl.denied_read', label: 'denied read', scale: 'r', color: '#d29922', dash: [4, 3], step: true },
    ],
    dynamic: { prefix: 'conn.role.', label: (r) => r, scale: 'l', colour: (r) => ROLE_COLOURS[r] || '#8b949e' },
  },
  {
    id: 'ledger',
    title: 'Ledger',
    note: 'height · commit latency (ms)',
    scales: { l: { label: 'records', counts: true }, r: { label: 'ms' } },
    series: [
      { key: 'ledger.height', label: 'height', scale: 'l', color: NEUTRAL, fill: true, width: 2 },
      { key: 'ledger.latency_avg_ms', label: 'commit avg', scale: 'r', color: '#3fb950' },
      { key: 'ledger.latency_max_ms', label: 'commit max', scale: 'r', color: '#f0883e', dash: [4, 3] },
    ],
  },
  {
    id: 'entropy',
    title: 'Entropy',
    note: 'blocks per interval',
    scales: { l: { label: 'accepted', counts: true }, r: { label: 'refused', counts: true } },
    series: [{ key: 'entropy.accepted', label: 'accepted', scale: 'l', color: GOOD, fill: true, step: true }],
    dynamic: { prefix: 'entropy.refused.', label: (r) => 'refused: ' + r, scale: 'r', step: true,
      colour: reasonColour },
    table: true,
  },
  {
    id: 'keys',
    title: 'Session keys',
    note: 'live now · issued and refused per interval',
    scales: { l: { label: 'live', counts: true }, r: { label: 'per interval', counts: true } },
    series: [
      { key: 'keys.live', label: 'live', scale: 'l', color: NEUTRAL, fill: true, width: 2 },
      { key: 'keys.issued', label: 'issued', scale: 'r', color: GOOD, step: true },
      { key: 'keys.refused', label: 'refused', scale: 'r', color: BAD, step: true },
    ],
  },
  {
    id: 'coins',
    title: 'Coins',
    note: 'outstanding now · minted, redeemed, refunded per interval',
    scales: { l: { label: 'outstanding', counts: true }, r: { label: 'per interval', counts: true } },
    series: [
      { key: 'bank.outstanding', label: 'outstanding', scale: 'l', color: '#d29922', fill: true, width: 2 },
      { key: 'bank.minted', label: 'minted', scale: 'r', color: NEUTRAL, step: true },
      { key: 'bank.redeemed', label: 'redeemed', scale: 'r', color: GOOD, step: true },
      { key: 'bank.refunded', label: 'refunded', scale: 'r', color: '#bc8cff', step: true },
    ],
  },
];

// The counters of a "refused" object. Reason names become series labels and
// metric keys, so only snake_case names are taken, and at most 64 of them.
function reasons(obj) {
  if (!obj || typeof obj !== 'object') return [];
  return Object.entries(obj).filter(([r]) => /^[a-z0-9_]{1,40}$/.test(r)).slice(0, 64);
}

// Cumulative counters charted as per-interval deltas, by metric key; the
// rest of extract()'s keys are gauges.
function extract(s) {
  const counters = {};
  const gauges = {};
  const a = s.auth;
  if (a) {
    counters['auth.accepted'] = num(a.accepted);
    counters['auth.refused_total'] = num(a.refused_total);
    for (const [r, v] of reasons(a.refused)) counters['auth.refused.' + r] = num(v);
  }
  const c = s.connected;
  if (c) {
    gauges['conn.total'] = num(c.total);
    for (const r of ROLES) if (r in c) gauges['conn.role.' + r] = num(c[r]);
  }
  const acl = s.acl;
  if (acl) {
    for (const k of ['denied_publish', 'denied_subscribe', 'denied_read']) counters['acl.' + k] = num(acl[k]);
  }
  const l = s.ledger;
  if (l) {
    gauges['ledger.height'] = num(l.height);
    gauges['ledger.pending'] = num(l.pending);
    const lat = l.commit_latency_us || {};
    for (const k of ['last', 'avg', 'max']) {
      const v = num(lat[k]);
      gauges['ledger.latency_' + k + '_ms'] = v == null ? null : v / 1000;
    }
  }
  const e = s.entropy;
  if (e) {
    counters['entropy.accepted'] = num(e.accepted);
    for (const [r, v] of reasons(e.refused)) counters['entropy.refused.' + r] = num(v);
  }
  const k = s.keys;
  if (k) {
    counters['keys.issued'] = num(k.issued);
    counters['keys.refused'] = num(k.refused);
    gauges['keys.live'] = num(k.live);
  }
  const b = s.bank;
  if (b) {
    for (const n of ['minted', 'redeemed', 'refunded']) counters['bank.' + n] = num(b[n]);
    gauges['bank.outstanding'] = num(b.outstanding);
  }
  return { counters, gauges };
}

export function createCharts(container) {
  container.classList.add('ig-charts');
  const head = el('div', 'ig-charts-head');
  const status = el('span', 'ig-charts-status', 'waiting for the first stats message…');
  const banner = el('span', 'ig-charts-banner');
  banner.hidden = true;
  head.append(status, banner);
  const grid = el('div', 'ig-charts-grid');
  container.append(head, grid);

  const times = [];                 // x: unix seconds, shared by every chart
  const hist = new Map();           // metric key -> values aligned with times
  const prevCum = new Map();        // metric key -> last cumulative value seen
  const seenNonZero = new Set();    // keys of dynamic families that occurred
  let prevUptime = null;
  let broker = null;                // the broker whose stats are charted ('' = unnamed)
  const otherBrokers = new Set();
  let prevDevices = null;           // entropy.devices of the previous stats
  let frame = 0;

  function track(key) {
    let a = hist.get(key);
    if (!a) {
      a = new Array(times.length).fill(null);
      hist.set(key, a);
    }
    return a;
  }

  function legendToLast(u) {
    // uPlot blanks the legend when the cursor leaves the plot; an operator
    // glancing at the page wants the newest values there instead.
    if (u.cursor.idx == null && u.data[0].length > 0) u.setLegend({ idx: u.data[0].length - 1 }, false);
  }

  const charts = CHARTS.map((def) => {
    const card = el('div', 'ig-chart-card');
    card.dataset.chart = def.id;
    const h = el('div', 'ig-chart-title');
    h.append(el('span', 'ig-chart-name', def.title), el('span', 'ig-chart-note', def.note));
    const plot = el('div', 'ig-chart-plot');
    card.append(h, plot);
    let table = null;
    if (def.table) {
      table = createEntropyTable();
      card.append(table.root);
    }
    grid.append(card);

    const data = [times];
    const seriesOpts = [{ value: (u, v) => (v == null ? '—' : new Date(v * 1000).toLocaleTimeString()) }];
    const keys = [];
    const mkSeries = (s) => {
      const c = s.color || AXIS;
      const o = {
        label: s.label,
        scale: s.scale,
        stroke: c,
        width: s.width || 1.5,
        points: { show: false },
        spanGaps: false,
        value: (u, v) => exact(v),
      };
      if (s.dash) o.dash = s.dash;
      if (s.fill) o.fill = c + '22';
      if (s.step) o.paths = uPlot.paths.stepped({ align: 1 });
      return o;
    };
    for (const s of def.series) {
      seriesOpts.push(mkSeries(s));
      data.push(track(s.key));
      keys.push(s.key);
    }
    const scaleOpts = { x: { time: true } };
    const axes = [{
      stroke: AXIS,
      grid: { stroke: GRID, width: 1 },
      ticks: { stroke: GRID, width: 1 },
      font: '11px system-ui, sans-serif',
    }];
    for (const [name, sc] of Object.entries(def.scales)) {
      scaleOpts[name] = { range: zeroBased };
      const ax = {
        scale: name,
        label: sc.label,
        labelFont: '11px system-ui, sans-serif',
        labelSize: 16,
        font: '11px system-ui, sans-serif',
        size: 46,
        stroke: AXIS,
        grid: name === 'l' ? { stroke: GRID, width: 1 } : { show: false },
        ticks: { stroke: GRID, width: 1 },
        values: (u, splits) => splits.map(compact),
      };
      if (sc.counts) ax.incrs = COUNT_INCRS;
      if (name === 'r') ax.side = 1;
      axes.push(ax);
    }
    const u = new uPlot({
      width: Math.max(plot.clientWidth, 280),
      height: 190,
      series: seriesOpts,
      scales: scaleOpts,
      axes,
      legend: { live: true },
      cursor: { drag: { x: false, y: false }, points: { size: 6 } },
      hooks: { setCursor: [legendToLast] },
    }, data, plot);
    return {
      def, u, data, keys, table, plot,
      dirty: false,
      addDynamic(key) {
        const name = key.slice(def.dynamic.prefix.length);
        keys.push(key);
        data.push(track(key));
        const d = def.dynamic;
        u.addSeries(mkSeries({ label: d.label(name), scale: d.scale, step: d.step, color: d.colour(name) }));
      },
    };
  });

  function push(metrics) {
    times.push(metrics.t);
    for (const [key, a] of hist) a.push(key in metrics.v ? metrics.v[key] : null);
    for (const [key, v] of Object.entries(metrics.v)) {
      if (hist.has(key)) continue;
      // First seen now: null for the samples before this one.
      const a = new Array(times.length - 1).fill(null);
      a.push(v);
      hist.set(key, a);
    }
    if (times.length > MAX_POINTS) {
      const drop = times.length - MAX_POINTS;
      times.splice(0, drop);
      for (const a of hist.values()) a.splice(0, drop);
    }
  }

  function schedule() {
    for (const c of charts) c.dirty = true;
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      for (const c of charts) {
        if (!c.dirty) continue;
        c.dirty = false;
        c.u.setData(c.data);
        legendToLast(c.u);
      }
    });
  }

  function updateStatus(s) {
    const when = new Date(num(s.ts) ?? Date.now()).toLocaleTimeString();
    let text = 'stats ' + when;
    if (broker) text += ' · broker ' + broker;
    if (otherBrokers.size) text += ' (' + otherBrokers.size + ' other broker' + (otherBrokers.size > 1 ? 's' : '') + ' not charted)';
    if (num(s.uptime_s) != null) text += ' · up ' + duration(s.uptime_s);
    status.textContent = text;
    if (s.sealed === true) {
      banner.hidden = false;
      banner.textContent = 'SEALED: the cluster head runs without its key; entropy, keys, joins and coins wait for the unseal';
    } else {
      banner.hidden = true;
    }
  }

  function onStats(s) {
    if (!s || typeof s !== 'object') return;
    // In shared mode every broker publishes its own counters on the same
    // topic: deltas across brokers would be meaningless, so one broker (the
    // first heard) is charted.
    const name = typeof s.broker === 'string' ? s.broker : '';
    if (broker == null) broker = name;
    if (name !== broker) {
      otherBrokers.add(name || '(unnamed)');
      return;
    }
    const t = (num(s.ts) ?? Date.now()) / 1000;
    if (times.length && t <= times[times.length - 1]) return; // duplicate or out of order
    const uptime = num(s.uptime_s);
    // A restarted broker counts from zero again: its counters are then the
    // delta since the restart.
    const restarted = prevUptime != null && uptime != null && uptime < prevUptime;
    if (uptime != null) prevUptime = uptime;
    const { counters, gauges } = extract(s);
    const v = {};
    for (const [key, cur] of Object.entries(counters)) {
      if (cur == null) {
        v[key] = null;
        continue;
      }
      const prev = prevCum.get(key);
      prevCum.set(key, cur);
      if (restarted || (prev != null && cur < prev)) v[key] = cur;
      else v[key] = prev == null ? null : cur - prev;
      if (cur > 0) seenNonZero.add(key);
    }
    for (const [key, g] of Object.entries(gauges)) {
      v[key] = g;
      if (g != null && g > 0) seenNonZero.add(key);
    }
    push({ t, v });
    for (const c of charts) {
      const dyn = c.def.dynamic;
      if (!dyn) continue;
      for (const key of seenNonZero) {
        if (key.startsWith(dyn.prefix) && !c.keys.includes(key)) c.addDynamic(key);
      }
    }
    const ent = charts.find((c) => c.table);
    ent.table.update(s.entropy, s.attestation, prevDevices);
    prevDevices = s.entropy && s.entropy.devices ? s.entropy.devices : prevDevices;
    updateStatus(s);
    schedule();
  }

  function series() {
    const out = {};
    for (const [key, a] of hist) out[key] = a.length ? a[a.length - 1] : null;
    return out;
  }

  function resize() {
    for (const c of charts) {
      const w = Math.max(Math.floor(c.plot.clientWidth), 200);
      if (w !== c.u.width) c.u.setSize({ width: w, height: 190 });
    }
  }

  if (typeof ResizeObserver === 'function') {
    const ro = new ResizeObserver(() => resize());
    for (const c of charts) ro.observe(c.plot);
  }
  window.addEventListener('resize', resize);

  return { onStats, series, resize };
}

function duration(s) {
  s = Math.floor(s);
  if (s < 120) return s + ' s';
  if (s < 7200) return Math.floor(s / 60) + ' min';
  if (s < 172800) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  return Math.floor(s / 86400) + ' d';
}

// The ten devices that contributed the most entropy. Rows are created once
// and refilled, so an update touches at most 10 × 5 text nodes.
function createEntropyTable() {
  const root = el('div', 'ig-entropy-top');
  const table = el('table', 'ig-table ig-table-compact');
  const cap = el('caption', null, 'Top 10 devices by entropy accepted');
  const thead = el('thead');
  const hr = el('tr');
  for (const [t, cls] of [['device', ''], ['accepted', 'num'], ['refused', 'num'], ['Δ last', 'num'], ['attestation', '']]) {
    hr.append(el('th', cls || null, t));
  }
  thead.append(hr);
  const tbody = el('tbody');
  table.append(cap, thead, tbody);
  const empty = el('div', 'ig-muted', 'no entropy contributions yet');
  root.append(table, empty);
  const rows = [];
  for (let i = 0; i < 10; i++) {
    const tr = el('tr');
    const cells = [el('td', 'ig-mono'), el('td', 'num'), el('td', 'num'), el('td', 'num'), el('td')];
    tr.append(...cells);
    tr.hidden = true;
    tbody.append(tr);
    rows.push({ tr, cells });
  }
  table.hidden = true;

  function update(entropy, attestation, prevDevices) {
    const devs = entropy && entropy.devices && typeof entropy.devices === 'object' ? entropy.devices : null;
    const list = devs ? Object.entries(devs) : [];
    list.sort((a, b) => (num(b[1].accepted) ?? 0) - (num(a[1].accepted) ?? 0) ||
      (num(b[1].refused) ?? 0) - (num(a[1].refused) ?? 0) || (a[0] < b[0] ? -1 : 1));
    const flagged = new Set(attestation && Array.isArray(attestation.flagged) ? attestation.flagged : []);
    table.hidden = list.length === 0;
    empty.hidden = list.length !== 0;
    if (!entropy) empty.textContent = 'no entropy section in the stats (sealed, or the service is not running)';
    else empty.textContent = 'no entropy contributions yet';
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i];
      const item = list[i];
      if (!item) {
        r.tr.hidden = true;
        continue;
      }
      const [id, d] = item;
      r.tr.hidden = false;
      r.tr.dataset.id = id;
      const acc = num(d.accepted) ?? 0;
      const ref = num(d.refused) ?? 0;
      const prev = prevDevices && prevDevices[id] ? num(prevDevices[id].accepted) : null;
      r.cells[0].textContent = id;
      r.cells[1].textContent = exact(acc);
      r.cells[2].textContent = exact(ref);
      r.cells[2].classList.toggle('ig-bad-text', ref > 0);
      r.cells[3].textContent = prev == null || acc < prev ? '—' : '+' + exact(acc - prev);
      const isFlagged = flagged.has(id);
      r.cells[4].textContent = isFlagged ? 'FLAGGED' : '—';
      r.cells[4].className = isFlagged ? 'ig-bad-text' : 'ig-muted';
    }
  }
  return { root, update };
}
