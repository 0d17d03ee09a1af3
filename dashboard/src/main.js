// main.js — boots the operator console and wires its parts together. The page is an iotguard
// identity like any device: it makes (once) and keeps its own Ed25519 key, shows the command that
// enrols it, mints a fresh connection token for every connect, and then reads the cluster's own
// topics (statuses, ledger events and head, stats, custody) over MQTT on the broker's websockets
// listener. Every message only updates a model; one animation-frame callback draws what changed,
// so the page stays smooth however fast the fleet talks.

import { loadOrCreateIdentity, deleteIdentity, defaultIdFor, enrollCommand } from "./identity.js";
import { mintToken, checkIdent } from "./token.js";
import { headProgress, verifyHead } from "./note.js";
import { Conn } from "./conn.js";
import { createCharts } from "./charts.js";
import { createPanels } from "./panels.js";
import { FleetStore } from "./store.js";
import { createFleetView } from "./fleet.js";
import { createFeed } from "./feed.js";
import { createAdmin } from "./admin.js";
import { createFrameSampler } from "./perf.js";
import { refusedTile, uptimeText } from "./format.js";

const SETTINGS_KEY = "iotguard.dashboard.v1";
const FLEET_PAGE = 1000;
const TOKEN_TTL_S = 60;
const $ = (sel) => document.querySelector(sel);

// ---- settings (localStorage; the pasted token is deliberately never stored) ----

function loadSettings() {
  try {
    const v = JSON.parse(localStorage.getItem(SETTINGS_KEY) || "{}");
    return v && typeof v === "object" ? v : {};
  } catch {
    return {};
  }
}

function saveSettings(s) {
  const { id, cluster, url, pinnedChKey } = s;
  localStorage.setItem(SETTINGS_KEY, JSON.stringify({ id, cluster, url, pinnedChKey }));
}

// The largest head verified so far, per pinned cluster-head key (note.js headProgress), kept
// across reloads so that an older head replayed later is still caught. Keyed by the key, so a
// new cluster (a new key) starts afresh.
const HEADS_KEY = "iotguard.dashboard.heads.v1";

function loadSeenHeads() {
  try {
    const v = JSON.parse(localStorage.getItem(HEADS_KEY) || "{}");
    return v && typeof v === "object" ? v : {};
  } catch {
    return {};
  }
}

// config.json is the operator's trust anchor (iotguard dashboard-config): cluster name, the
// cluster-head key to pin, the witnesses. It is optional; without it the page pins on first use.
async function loadConfig() {
  let res;
  try {
    res = await fetch("config.json", { cache: "no-store" });
  } catch {
    return { config: null, problem: "" };
  }
  if (res.status === 404) return { config: null, problem: "" };
  if (!res.ok) return { config: null, problem: `config.json could not be read (HTTP ${res.status}); running without it.` };
  try {
    const c = JSON.parse(await res.text());
    if (!c || typeof c !== "object") throw new Error("not an object");
    if (c.ch_pubkey !== undefined && !/^[0-9a-f]{64}$/.test(c.ch_pubkey)) throw new Error("ch_pubkey is not 64 lowercase hex digits");
    if (c.cluster !== undefined && !checkIdent(c.cluster)) throw new Error("cluster is not a valid cluster name");
    return { config: c, problem: "" };
  } catch (e) {
    return { config: null, problem: `config.json is not valid (${e.message}): regenerate it with "iotguard dashboard-config". Running without it: the cluster-head key is NOT pinned from it.` };
  }
}

function defaultUrl() {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/mqtt";
}

// ---- small formatting helpers ----

const nf = new Intl.NumberFormat("en-US");
function fmt(n) { return Number.isFinite(n) ? nf.format(n) : "—"; }
function fmtMs(us) { return Number.isFinite(us) ? (us / 1000).toFixed(us < 10000 ? 2 : 1) + " ms" : "—"; }

function setText(el, text) { if (el && el.textContent !== text) el.textContent = text; }

// ---- the console ----

function boot() {
  const sampler = createFrameSampler();
  sampler.start();

  const store = new FleetStore();
  let settings = loadSettings();
  let config = null;
  let identity = null;      // {privateKey, publicKeyHex}
  let myId = "";
  let cluster = "";
  let conn = null;
  let connState = "closed";
  let pastedToken = "";     // memory only
  let fleetLoaded = false;
  let lastHead = null;
  let lastCustody = null;
  let lastStats = null;
  let prevStats = null;
  let headSeq = 0;
  let pinnedOnFirstUse = false;

  const hooks = {
    ready: false,
    identity: () => ({ id: myId, publicKeyHex: identity ? identity.publicKeyHex : "", role: myRole() }),
    connState: () => connState,
    fleetLoaded: () => fleetLoaded,
    row: (id) => store.snapshot(id),
    counts: () => store.counts(),
    head: () => lastHead,
    custody: () => lastCustody,
    stats: () => lastStats,
    feed: () => feed.newest(100),
    frameStats: () => sampler.stats(),
    resetFrameStats: () => sampler.reset(),
    setSearch: (text) => { fleetView.setSearch(text); },
  };
  window.iotguardDashboard = hooks;

  // The own role comes from the registry (the fleet listing and later ledger events), never from
  // anything the page claims: the broker decides what this identity may do.
  function myRole() {
    const r = store.get(myId);
    return r && r.status === "active" && r.role ? r.role : null;
  }
  const isAdmin = () => connState === "connected" && myRole() === "admin";

  // ---- one frame draws everything that changed ----
  let frameQueued = false;
  function requestFrame() {
    if (frameQueued) return;
    frameQueued = true;
    requestAnimationFrame(frame);
  }

  const tiles = {};
  for (const el of document.querySelectorAll("[data-tile]")) tiles[el.dataset.tile] = el;
  let tileStats = null;

  function frame() {
    frameQueued = false;
    const now = Date.now();
    const c = fleetView.render(now);
    feed.render();
    admin.setVisible(isAdmin());
    setText(tiles.online, fmt(c.online));
    setText(tiles.offline, fmt(c.offline));
    setText(tiles.revoked, fmt(c.revoked));
    setText(tiles.total, fmt(c.total));
    const role = myRole();
    setText($("#identity-role"), role || (connState === "connected" ? "not in the registry" : "—"));
    setText($("#header-role"), role || "");
    if (tileStats !== lastStats) {
      tileStats = lastStats;
      drawStatTiles(lastStats, prevStats);
    }
  }

  function drawStatTiles(s, prev) {
    if (!s) return;
    const ledger = s.ledger || {};
    setText(tiles.height, fmt(ledger.height));
    setText(tiles.latency, fmtMs(ledger.commit_latency_us?.avg));
    setText($("#tile-latency-sub"), "max " + fmtMs(ledger.commit_latency_us?.max));
    const rt = refusedTile(s, prev);
    setText(tiles.refused, rt.value);
    tiles.refused.closest(".tile").dataset.alert = rt.alert ? "true" : "false";
    setText($("#tile-refused-sub"), rt.sub);
    tiles.refused.closest(".tile").title = rt.title;
    setText(tiles.connected, fmt(s.connected?.total));
    setText(tiles.coins, s.bank ? fmt(s.bank.outstanding) : (s.sealed ? "sealed" : "—"));
    setText($("#tile-coins-sub"), s.bank ? `${fmt(s.bank.minted)} minted · ${fmt(s.bank.redeemed)} redeemed` : "");
    const cl = s.cluster || cluster;
    if (s.broker) setText($("#broker-name"), s.broker);
    setText($("#cluster-name"), cl);
    setText($("#uptime"), s.uptime_s !== undefined ? "up " + uptimeText(s.uptime_s) : "");
  }

  store.onDirty(requestFrame);
  setInterval(requestFrame, 1000);   // "last seen" is relative: it changes with the clock

  // ---- views ----
  const fleetView = createFleetView({
    store,
    scroller: $("#fleet-scroll"),
    table: $("#fleet-table"),
    search: $("#fleet-search"),
    chips: $("#fleet-filter"),
    counts: $("#fleet-counts"),
    onRevoke: (id) => admin.requestRevoke(id),
    isAdmin,
    selfId: () => myId,
    requestFrame,
  });
  const feed = createFeed({
    list: $("#feed"),
    typeSelect: $("#feed-type"),
    pauseButton: $("#feed-pause"),
    newCount: $("#feed-new"),
    requestFrame,
  });
  const admin = createAdmin({
    el: $("#admin-panel"),
    getConn: () => (connState === "connected" ? conn : null),
    getRow: (id) => store.snapshot(id),
    onChanged: requestFrame,
  });
  let charts = null;
  let panels = null;
  try {
    charts = createCharts($("#charts"));
  } catch (e) {
    $("#charts").textContent = "Charts unavailable: " + e.message;
  }
  try {
    panels = createPanels({ head: $("#head-panel"), custody: $("#custody-panel"), witnesses: $("#witnesses-panel") });
  } catch (e) {
    $("#head-panel").append("Panels unavailable: " + e.message);
  }
  if (charts && typeof ResizeObserver !== "undefined") {
    let queued = false;
    new ResizeObserver(() => {
      if (queued) return;
      queued = true;
      requestAnimationFrame(() => { queued = false; charts.resize(); });
    }).observe($("#charts"));
  }

  // ---- connection state ----
  function setConnState(st, detail) {
    connState = st;
    const el = $("#conn");
    el.dataset.state = st;
    document.body.dataset.conn = st;
    const label = { connecting: "Connecting", connected: "Connected", refused: "Not enrolled", closed: "Disconnected" }[st] || st;
    setText($("#conn-label"), label);
    let sentence = detail || "";
    if (!sentence) {
      if (st === "connecting") sentence = `Connecting to ${currentUrl()} as ${myId}…`;
      else if (st === "connected") sentence = `Connected to ${currentUrl()} as ${myId}.`;
      else if (st === "refused") sentence = `The broker refused ${myId}: this browser's key is not enrolled (or was revoked) in cluster ${cluster}. Enrol it with the command shown; the page retries every 5 s.`;
      else sentence = "Not connected.";
    }
    el.title = sentence;
    setText($("#conn-detail"), sentence);
    requestFrame();
  }

  function currentUrl() {
    return (config && config.url) || settings.url || defaultUrl();
  }

  // ---- messages ----
  const decoder = new TextDecoder();
  let prefix = "";

  function onMessage(topic, payload) {
    if (!topic.startsWith(prefix)) return;
    const rest = topic.slice(prefix.length);
    let msg;
    try {
      msg = JSON.parse(decoder.decode(payload));
    } catch {
      return;   // binary or broken payloads have no place in the console
    }
    if (!msg || typeof msg !== "object") return;
    if (rest.startsWith("dev/") && rest.endsWith("/status")) {
      const id = rest.slice(4, -7);
      if (id && !id.includes("/")) store.applyStatus(id, msg);
    } else if (rest === "ledger/events") {
      store.applyEvent(msg);
      feed.push(msg);
      requestFrame();
    } else if (rest === "ledger/head") {
      onHead(msg);
    } else if (rest === "stats") {
      prevStats = lastStats;
      lastStats = msg;
      store.applyStats(msg);
      if (charts) charts.onStats(msg);
      if (panels) panels.onStats(msg);
      requestFrame();
    } else if (rest === "custody") {
      lastCustody = msg;
      if (panels) panels.onCustody(msg);
    } else if (rest === "custody/events") {
      if (panels) panels.onCustodyEvent(msg);
      feed.push(msg);
      requestFrame();
    }
  }

  async function onHead(head) {
    const seq = ++headSeq;
    let pin = config && config.ch_pubkey;
    pinnedOnFirstUse = false;
    if (!pin) {
      pinnedOnFirstUse = true;
      if (!settings.pinnedChKey && typeof head.ch_pubkey === "string" && /^[0-9a-f]{64}$/.test(head.ch_pubkey)) {
        settings.pinnedChKey = head.ch_pubkey;
        saveSettings(settings);
        renderSettings();
      }
      pin = settings.pinnedChKey || "";
    }
    let result;
    try {
      result = await verifyHead(head, { cluster, chPubkeyHex: pin, witnesses: config && config.witnesses });
    } catch (e) {
      result = { verified: false, reason: "the head could not be checked: " + e.message, size: head.size, cosigned: null };
    }
    if (seq !== headSeq) return;   // a newer head arrived while this one was being checked
    if (result.verified) {
      const seen = loadSeenHeads();
      const step = headProgress(seen[pin], result);
      if (!step.ok) {
        result = { ...result, verified: false, reason: step.reason };
      } else {
        seen[pin] = step.seen;
        try { localStorage.setItem(HEADS_KEY, JSON.stringify(seen)); } catch { /* storage full: kept for this check only */ }
      }
    }
    // note.js keeps the size as the signed decimal text; the hook gives a number when it is one.
    const sizeText = result.size ?? head.size;
    const sizeNum = Number(sizeText);
    lastHead = {
      verified: !!result.verified, reason: result.reason || "",
      size: Number.isSafeInteger(sizeNum) ? sizeNum : sizeText, cosigned: result.cosigned ?? null,
    };
    if (panels) panels.onHead(head, result, { pinnedOnFirstUse });
    const tile = tiles.head;
    if (tile) {
      setText(tile, result.verified ? "verified" : "NOT verified");
      tile.closest(".tile").dataset.verified = String(!!result.verified);
      setText($("#tile-head-sub"), result.verified
        ? `size ${fmt(Number(head.size))}${result.cosigned ? ` · cosigned ${result.cosigned.valid.length}/${result.cosigned.quorum}` : ""}`
        : result.reason || "");
    }
  }

  // ---- the fleet listing: paged through the plugin's "fleet" request on every connect ----
  // A page of up to FLEET_PAGE identities comes in parts of at most 3,800 bytes (docs/PROTOCOL.md,
  // "Fleet listing": Mosquitto writes big messages to WebSockets clients slowly); conn's
  // requestAll collects them. The next page starts where the last part ended.
  let listingRun = 0;
  async function loadFleet() {
    const run = ++listingRun;
    store.beginListing();
    let offset = 0;
    try {
      for (;;) {
        const parts = await conn.requestAll({ type: "fleet", offset, limit: FLEET_PAGE });
        if (run !== listingRun) return;
        let got = 0;
        let total = 0;
        for (const part of parts) {
          if (part.type !== "fleet") throw new Error(`unexpected reply ${part.type}: ${part.message || part.error || ""}`);
          store.applyFleetPage(part);
          const n = (part.identities || []).length;
          got += n;
          offset = part.offset + n;
          total = part.total;
        }
        if (got === 0 || offset >= total) break;
      }
      store.endListing();
      fleetLoaded = true;
      setText($("#fleet-status"), "");
    } catch (e) {
      if (run !== listingRun) return;
      const why = e && e.message ? e.message : String(e);
      const text = `The fleet listing failed at offset ${offset} (${why}); the table shows only identities seen since. Reconnect to retry.`;
      setText($("#fleet-status"), text);
      console.warn("iotguard dashboard: " + text);
    }
    requestFrame();
  }

  // ---- identity card and settings ----
  function renderIdentity() {
    setText($("#identity-id"), myId);
    setText($("#header-id"), myId);
    setText($("#identity-pubkey"), identity ? identity.publicKeyHex : "");
    let cmd = "";
    try {
      cmd = enrollCommand({ id: myId, publicKeyHex: identity.publicKeyHex, role: "monitor", cluster: cluster || "CLUSTER" });
    } catch (e) {
      cmd = "cannot build the command: " + e.message;
    }
    setText($("#enroll-command"), cmd);
    setText($("#cluster-name"), cluster || "no cluster set");
    $("#token-state").textContent = pastedToken ? "Using a pasted token (kept in memory only)." : "Tokens are minted by this browser's key for every connect.";
  }

  function renderSettings() {
    const f = $("#settings-form");
    f.elements["set-id"].value = settings.id || myId;
    f.elements["set-cluster"].value = (config && config.cluster) || settings.cluster || "";
    f.elements["set-cluster"].disabled = !!(config && config.cluster);
    f.elements["set-url"].value = settings.url || "";
    f.elements["set-url"].placeholder = (config && config.url) || defaultUrl();
    f.elements["set-pin"].value = (config && config.ch_pubkey) || settings.pinnedChKey || "";
    f.elements["set-pin"].disabled = !!(config && config.ch_pubkey);
    setText($("#pin-source"), config && config.ch_pubkey
      ? "Pinned by config.json (the operator's trust anchor)."
      : settings.pinnedChKey ? "Pinned on first use: check it against `iotguard init`'s output." : "Not pinned yet: the first head will be pinned.");
  }

  $("#settings-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const f = e.target;
    const id = f.elements["set-id"].value.trim();
    const cl = f.elements["set-cluster"].value.trim();
    const url = f.elements["set-url"].value.trim();
    const pin = f.elements["set-pin"].value.trim().toLowerCase();
    const problems = [];
    if (!checkIdent(id)) problems.push("the id must be 1 to 64 of A-Z a-z 0-9 _ . -");
    if (!(config && config.cluster) && cl && !checkIdent(cl)) problems.push("the cluster name must be 1 to 64 of A-Z a-z 0-9 _ . -");
    if (url && !/^wss?:\/\/./.test(url)) problems.push("the URL must start with ws:// or wss://");
    if (!(config && config.ch_pubkey) && pin && !/^[0-9a-f]{64}$/.test(pin)) problems.push("the pinned key must be 64 hex digits");
    if (problems.length) { setText($("#settings-result"), "Not saved: " + problems.join("; ") + "."); return; }
    settings = { id, cluster: cl, url, pinnedChKey: (config && config.ch_pubkey) ? settings.pinnedChKey : pin };
    saveSettings(settings);
    location.reload();
  });

  $("#pin-clear").addEventListener("click", () => {
    settings.pinnedChKey = "";
    saveSettings(settings);
    location.reload();
  });

  $("#new-key").addEventListener("click", async () => {
    if (!window.confirm("Forget this browser's key and make a new one? The old key stays enrolled until an admin revokes it; the new one must be enrolled again.")) return;
    await deleteIdentity();
    location.reload();
  });

  $("#token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    pastedToken = $("#token-paste").value.trim();
    $("#token-paste").value = "";
    renderIdentity();
    restartConn();
  });
  $("#token-clear").addEventListener("click", () => {
    pastedToken = "";
    renderIdentity();
    restartConn();
  });

  for (const b of document.querySelectorAll("[data-copy]")) {
    b.addEventListener("click", async () => {
      const src = document.querySelector(b.dataset.copy);
      try {
        await navigator.clipboard.writeText(src.textContent);
        b.textContent = "Copied";
      } catch {
        getSelection().selectAllChildren(src);
        b.textContent = "Selected";
      }
      setTimeout(() => { b.textContent = "Copy"; }, 1500);
    });
  }

  // ---- connecting ----
  // One connection per identity per browser. Two tabs with the same id would connect with the
  // same MQTT client id and take each other's session over, back and forth, for ever. A Web
  // Lock named after the cluster and id lets one tab connect; another waits, says so, and
  // connects when the first one closes. Returns what releases the lock (or stops waiting).
  let releaseConnLock = null;
  function holdConnLock(name, onAcquired, onWaiting) {
    if (!navigator.locks) {   // older browsers: nothing to coordinate with
      onAcquired();
      return () => {};
    }
    let release;
    const held = new Promise((resolve) => { release = resolve; });
    const waiting = new AbortController();
    const acquired = () => { onAcquired(); return held; };
    navigator.locks.request(name, { ifAvailable: true }, (lock) => {
      if (lock) return acquired();
      onWaiting();
      return navigator.locks.request(name, { signal: waiting.signal }, acquired);
    }).catch(() => { /* aborted: the settings changed, or the page is going */ });
    return () => { waiting.abort(); release(); };
  }

  function startConn() {
    if (!cluster) {
      setConnState("closed", "No cluster name: put config.json (iotguard dashboard-config) next to the page, or set the cluster in Settings.");
      return;
    }
    prefix = `iotguard/${cluster}/`;
    conn = new Conn({
      url: currentUrl(),
      cluster,
      id: myId,
      // 60 s: a token only has to carry one CONNECT, and a short life limits what a copied one
      // is worth (monitor tokens are not single-use). It stays under any sane per-role cap an
      // operator sets (admin: 300 s by default), with twice the broker's 30 s clock skew.
      getToken: async () => pastedToken || mintToken(identity.privateKey, cluster, myId, { ttl: TOKEN_TTL_S }),
      onState: (st, detail) => {
        const was = connState;
        setConnState(st, detail);
        if (st === "connected" && was !== "connected") {
          loadFleet();
        } else if (st !== "connected") {
          listingRun++;   // a listing in flight is void; the next connect starts a new one
        }
      },
      onMessage,
    });
    conn.subscribe([
      `iotguard/${cluster}/dev/+/status`,
      `iotguard/${cluster}/ledger/#`,
      `iotguard/${cluster}/stats`,
      `iotguard/${cluster}/custody/#`,
    ]).catch(() => { /* refused filters are reported by conn's state; nothing to add here */ });
    if (releaseConnLock) releaseConnLock();
    const mine = conn;
    releaseConnLock = holdConnLock(`iotguard-dashboard/${cluster}/${myId}`, () => {
      if (conn !== mine) return;   // replaced while waiting
      setConnState("connecting");
      mine.start();
    }, () => setConnState("closed", `Another tab of this browser is connected as ${myId}: this one ` +
        "waits and connects when that tab closes (two tabs with one id would take each other's session over)."));
  }

  function restartConn() {
    if (conn) conn.stop();
    conn = null;
    if (releaseConnLock) releaseConnLock();
    releaseConnLock = null;
    startConn();
  }

  (async () => {
    const { config: c, problem } = await loadConfig();
    config = c;
    if (problem) {
      const b = $("#banner");
      b.textContent = problem;
      b.hidden = false;
    }
    const q = new URLSearchParams(location.search);
    if (!settings.id && q.get("id") && checkIdent(q.get("id"))) settings.id = q.get("id");
    if (!settings.cluster && q.get("cluster") && checkIdent(q.get("cluster"))) settings.cluster = q.get("cluster");
    try {
      identity = await loadOrCreateIdentity();
    } catch (e) {
      setConnState("closed", "No identity key: " + e.message);
      const b = $("#banner");
      b.textContent = "This browser cannot make or keep the dashboard's key: " + e.message;
      b.hidden = false;
      return;
    }
    myId = settings.id || defaultIdFor(identity.publicKeyHex);
    settings.id = myId;
    cluster = (config && config.cluster) || settings.cluster || "";
    saveSettings(settings);
    renderIdentity();
    renderSettings();
    hooks.ready = true;
    startConn();
    requestFrame();
  })();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
else boot();
