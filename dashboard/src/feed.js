// feed.js — the ledger's events as they happen (plus custody events), newest first. Events are
// queued as they arrive and turned into list items in one batch per animation frame, so a burst
// of enrolments costs one DOM insertion, not one per message. At most 500 are kept: the feed is a
// window on the present, the ledger itself (iotguard show) is the record.

const KEEP = 500;

function short(hex) {
  return typeof hex === "string" && hex.length > 12 ? hex.slice(0, 8) + "…" : (hex || "");
}

function clock(ts) {
  if (!Number.isFinite(ts)) return "";
  const d = new Date(ts);
  return d.toLocaleTimeString("en-GB", { hour12: false });
}

// One line of plain words per event type: what changed, for whom, by whom.
export function describe(ev) {
  const by = ev.by ? " by " + ev.by : "";
  switch (ev.type) {
    case "enroll": return `${ev.id} enrolled as ${ev.role || "?"}${ev.zone ? " in " + ev.zone : ""}${by}`;
    case "revoke": return `${ev.id} revoked${ev.reason ? " (" + ev.reason + ")" : ""}${by}`;
    case "credit": return `${ev.id} credited ${ev.amount}${by}`;
    case "coin_mint": return `${ev.owner} minted ${ev.count} coin${ev.count === 1 ? "" : "s"}`;
    case "coin_redeem": return `${ev.analyst} redeemed a coin of ${ev.collector} (${short(ev.coin_hash)})`;
    case "coin_refund": return `coin of ${ev.collector} refunded${ev.reason ? " (" + ev.reason + ")" : ""}`;
    case "join_code": return `join code created${ev.role ? " for " + ev.role : ""}${by}`;
    case "join_used": return `${ev.id} joined with a join code`;
    // Where keys flow: which pair got a session key, who got a key ring.
    case "key_issued": return `session key for ${ev.a} ↔ ${ev.b}`;
    case "attest": return `${ev.id} reported measurement ${short(ev.measurement)}` +
      ({ 0: " (NOT on the allow list)", 1: " (allowed)", 2: "" }[ev.allowed] ?? "");
    case "kp_epoch": return `key rings: epoch ${ev.epoch} (pool ${ev.pool}, ring ${ev.ring}, q ${ev.q})`;
    case "kp_ring": return `${ev.id} got its key ring (epoch ${ev.epoch})`;
    case "kp_compromised": return `${ev.id}'s ring ids compromised for epoch ${ev.epoch}`;
    default: {
      if (ev.type && ev.type.startsWith("custody")) {
        const parts = [];
        if (ev.epoch !== undefined) parts.push("epoch " + ev.epoch);
        if (ev.reason) parts.push(ev.reason);
        if (ev.holder) parts.push("holder " + ev.holder);
        if (ev.message) parts.push(ev.message);
        if (ev.event) parts.unshift(ev.event);
        return parts.join(" · ") || ev.type;
      }
      const id = ev.id || ev.owner || ev.collector || "";
      return (id ? id + " " : "") + (ev.type || "event") + by;
    }
  }
}

function kind(type) {
  if (type === "revoke" || type === "kp_compromised") return "bad";
  if (type === "enroll" || type === "join_code" || type === "join_used") return "good";
  if (type && type.startsWith("coin")) return "coin";
  if (type === "credit") return "coin";
  if (type && type.startsWith("custody")) return "custody";
  return "other";
}

export function createFeed({ list, typeSelect, pauseButton, newCount, requestFrame }) {
  const events = [];          // newest first, at most KEEP
  let pending = [];           // arrived since the last render, oldest first
  let paused = false;
  let filter = "";
  let rebuild = false;
  let unseen = 0;
  const types = new Set();

  function item(ev) {
    const li = document.createElement("li");
    li.dataset.type = ev.type || "event";
    li.className = "ev ev-" + kind(ev.type);
    const t = document.createElement("time");
    t.textContent = clock(ev.ts);
    const badge = document.createElement("span");
    badge.className = "ev-type";
    badge.textContent = ev.type || "event";
    const text = document.createElement("span");
    text.className = "ev-text";
    text.textContent = describe(ev);
    const idx = document.createElement("span");
    idx.className = "ev-idx";
    idx.textContent = Number.isInteger(ev.index) ? "#" + ev.index : "";
    if (ev.hash) idx.title = "record hash " + ev.hash;
    li.append(t, badge, text, idx);
    return li;
  }

  function noteType(type) {
    if (!type || types.has(type)) return;
    types.add(type);
    const o = document.createElement("option");
    o.value = type;
    o.textContent = type;
    typeSelect.appendChild(o);
  }

  function push(ev) {
    if (!ev || typeof ev !== "object") return;
    pending.push(ev);
    events.unshift(ev);
    if (events.length > KEEP) events.length = KEEP;
    if (paused) unseen++;
  }

  function render() {
    if (paused && !rebuild) {
      if (pending.length) {
        for (const ev of pending) noteType(ev.type);
        pending = [];
        newCount.textContent = unseen ? unseen + " new" : "";
      }
      return;
    }
    if (rebuild) {
      rebuild = false;
      pending = [];
      const frag = document.createDocumentFragment();
      for (const ev of events) if (!filter || ev.type === filter) frag.appendChild(item(ev));
      list.replaceChildren(frag);
    } else if (pending.length) {
      const frag = document.createDocumentFragment();
      for (let i = pending.length - 1; i >= 0; i--) {
        const ev = pending[i];
        noteType(ev.type);
        if (!filter || ev.type === filter) frag.appendChild(item(ev));
      }
      pending = [];
      list.insertBefore(frag, list.firstChild);
      while (list.childElementCount > KEEP) list.lastElementChild.remove();
    }
    newCount.textContent = "";
  }

  typeSelect.addEventListener("change", () => { filter = typeSelect.value; rebuild = true; requestFrame(); });
  pauseButton.addEventListener("click", () => {
    paused = !paused;
    pauseButton.setAttribute("aria-pressed", String(paused));
    pauseButton.textContent = paused ? "Resume" : "Pause";
    if (!paused) { unseen = 0; rebuild = true; }
    requestFrame();
  });

  return {
    push,
    render,
    get needsFrame() { return pending.length > 0 || rebuild; },
    newest(n = 100) { return events.slice(0, n); },
  };
}
