// fleet.js — the fleet table. A cluster may hold 10,000 identities and receive hundreds of
// statuses a second, so the table is virtualised: only the rows in view (plus an overscan) exist
// in the DOM, a spacer row above and below gives the scrollbar its true length, and the rows are
// a reused pool whose cells are written only when their text changes. All of it happens in
// render(), which main.js calls at most once per animation frame, and which reads layout
// (scrollTop, clientHeight) before it writes anything, so the browser lays out once per frame.

import { state } from "./store.js";

export const ROW_HEIGHT = 28;
const OVERSCAN = 10;
const COLS = ["id", "role", "zone", "state", "lastSeen", "attest", "wallet", "action"];

export function relativeTime(ms, now) {
  if (!ms) return "—";
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 2) return "just now";
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  return Math.floor(s / 86400) + " d ago";
}

function wallet(r) {
  if (r.balance === null || r.balance === undefined) return "—";
  return r.balance + " / " + (r.outstanding ?? 0);
}

function compareBy(key) {
  switch (key) {
    case "lastSeen": return (a, b) => b.lastSeen - a.lastSeen;
    case "state": return (a, b) => state(a).localeCompare(state(b)) || a.id.localeCompare(b.id);
    case "role": return (a, b) => a.role.localeCompare(b.role) || a.id.localeCompare(b.id);
    case "zone": return (a, b) => a.zone.localeCompare(b.zone) || a.id.localeCompare(b.id);
    case "id": return (a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    default: return null;
  }
}

// A sort is redone at most this often while the model keeps changing: re-sorting 10,000 rows
// on every frame under load would cost more than the rest of the frame together.
const RESORT_MS = 500;

export function createFleetView({ store, scroller, table, search, chips, counts, onRevoke, isAdmin, selfId, requestFrame }) {
  const tbody = table.tBodies[0];
  const top = document.createElement("tr");
  top.className = "spacer";
  const bottom = document.createElement("tr");
  bottom.className = "spacer";
  tbody.append(top, bottom);
  const pool = [];            // <tr> elements currently between the spacers, in order

  let query = "";
  let filter = "all";
  let sortKey = "";
  let view = store.list;      // rows that pass the search and filter, in display order
  let viewVersion = -1;
  let viewStruct = -1;
  let lastSort = 0;
  let dirty = true;
  let adminShown = null;
  let lastCounts = "";
  const countEls = {};
  for (const el of counts.querySelectorAll("[data-k]")) countEls[el.dataset.k] = el;

  function makeRow() {
    const tr = document.createElement("tr");
    tr._v = new Array(COLS.length).fill(null);
    for (let i = 0; i < COLS.length; i++) {
      const td = document.createElement("td");
      td.className = "c-" + COLS[i];
      tr.appendChild(td);
    }
    const pill = document.createElement("span");
    pill.className = "pill";
    tr.cells[3].appendChild(pill);
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = "btn btn-danger btn-xs";
    btn.dataset.action = "revoke";
    btn.textContent = "Revoke";
    btn.hidden = true;
    tr.cells[7].appendChild(btn);
    return tr;
  }

  function setText(tr, i, text) {
    if (tr._v[i] !== text) {
      tr._v[i] = text;
      if (i === 3) {
        const pill = tr.cells[3].firstChild;
        pill.textContent = text;
        pill.className = "pill st-" + text;
      } else if (i === 5) {
        tr.cells[5].textContent = text === "" ? "—" : text;
        tr.cells[5].className = "c-attest at-" + (text || "none");
      } else {
        tr.cells[i].textContent = text;
      }
    }
  }

  function fill(tr, r, now, admin) {
    if (tr.dataset.id !== r.id) {
      tr.dataset.id = r.id;
      tr.cells[7].firstChild.dataset.id = r.id;
    }
    const st = state(r);
    if (tr.dataset.state !== st) tr.dataset.state = st;
    setText(tr, 0, r.id);
    setText(tr, 1, r.role || "—");
    setText(tr, 2, r.zone || "—");
    setText(tr, 3, st);
    setText(tr, 4, relativeTime(r.lastSeen, now));
    setText(tr, 5, r.attest);
    setText(tr, 6, wallet(r));
    // The console never offers to revoke its own identity: that would cut off the operator
    // mid-action (the CLI can still do it).
    const canRevoke = admin && r.status === "active" && r.id !== selfId();
    const btn = tr.cells[7].firstChild;
    if (btn.hidden === canRevoke) btn.hidden = !canRevoke;
  }

  function matches(r) {
    if (filter !== "all" && state(r) !== filter) return false;
    if (!query) return true;
    return r.id.toLowerCase().includes(query) || r.zone.toLowerCase().includes(query) ||
      r.role.includes(query) || state(r).includes(query);
  }

  function rebuildView(now) {
    const unfiltered = filter === "all" && !query;
    if (unfiltered && !sortKey) {
      view = store.list;
    } else if (unfiltered) {
      if (viewStruct !== store.structVersion || view === store.list) view = store.list.slice();
    } else {
      view = store.list.filter(matches);
    }
    const cmp = compareBy(sortKey);
    if (cmp && (view !== store.list)) {
      view.sort(cmp);
      lastSort = now;
    }
    viewVersion = store.version;
    viewStruct = store.structVersion;
  }

  function render(now = Date.now()) {
    const admin = !!isAdmin();
    if (admin !== adminShown) {
      adminShown = admin;
      table.classList.toggle("with-actions", admin);
      dirty = true;
    }
    const filtered = filter !== "all" || !!query;
    // Cells always show the rows' current values; what a model change can alter is which rows
    // match and their order. Without a sort that is re-checked every frame (a filter pass over
    // 10,000 rows is cheap); with one, at most every RESORT_MS.
    const changed = viewVersion !== store.version;
    if (dirty || viewStruct !== store.structVersion ||
        (changed && (sortKey ? now - lastSort >= RESORT_MS : filtered))) {
      rebuildView(now);
    }
    dirty = false;

    // Reads first ...
    const scrollTop = scroller.scrollTop;
    const height = scroller.clientHeight;
    const n = view.length;
    const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(n, Math.ceil((scrollTop + height) / ROW_HEIGHT) + OVERSCAN);
    const want = Math.max(0, last - first);

    // ... then writes.
    while (pool.length < want) {
      const tr = makeRow();
      tbody.insertBefore(tr, bottom);
      pool.push(tr);
    }
    while (pool.length > want) pool.pop().remove();
    const topH = first * ROW_HEIGHT + "px";
    const botH = (n - last) * ROW_HEIGHT + "px";
    if (top.style.height !== topH) top.style.height = topH;
    if (bottom.style.height !== botH) bottom.style.height = botH;
    for (let i = 0; i < want; i++) fill(pool[i], view[first + i], now, admin);

    const c = store.counts();
    const key = c.online + "/" + c.offline + "/" + c.revoked + "/" + c.unknown + "/" + c.total + "/" + n;
    if (key !== lastCounts) {
      lastCounts = key;
      for (const k of ["online", "offline", "revoked", "unknown", "total"]) {
        if (countEls[k]) countEls[k].textContent = c[k].toLocaleString("en-US");
      }
      if (countEls.shown) countEls.shown.textContent = n.toLocaleString("en-US");
    }
    return c;
  }

  function setSearch(text) {
    const q = String(text ?? "").trim().toLowerCase();
    if (search.value !== text) search.value = text;
    if (q === query) return;
    query = q;
    scroller.scrollTop = 0;
    dirty = true;
    requestFrame();
  }

  let debounce = 0;
  search.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => setSearch(search.value), 100);
  });

  chips.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-filter]");
    if (!b) return;
    filter = b.dataset.filter;
    for (const x of chips.querySelectorAll("button[data-filter]")) {
      x.setAttribute("aria-pressed", String(x === b));
    }
    scroller.scrollTop = 0;
    dirty = true;
    requestFrame();
  });

  table.tHead.addEventListener("click", (e) => {
    const th = e.target.closest("th[data-sort]");
    if (!th) return;
    sortKey = sortKey === th.dataset.sort ? "" : th.dataset.sort;
    for (const x of table.tHead.querySelectorAll("th[data-sort]")) {
      x.setAttribute("aria-sort", x.dataset.sort === sortKey ? (sortKey === "lastSeen" ? "descending" : "ascending") : "none");
    }
    dirty = true;
    requestFrame();
  });

  scroller.addEventListener("scroll", requestFrame, { passive: true });

  tbody.addEventListener("click", (e) => {
    const b = e.target.closest('button[data-action="revoke"]');
    if (b && b.dataset.id) onRevoke(b.dataset.id);
  });

  return {
    render,
    setSearch,
    invalidate() { dirty = true; },
  };
}
