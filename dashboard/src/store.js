// store.js — the page's model of the fleet. Messages arrive far faster than a person can read
// (thousands of statuses per second with a large fleet), so every message only updates this
// model and raises a dirty flag; the views read the model at most once per animation frame.
// Nothing here touches the DOM.

function blankRow(id) {
  return {
    id, role: "", zone: "", status: "unknown", online: false, lastSeen: 0,
    attest: "", measurement: "", balance: null, outstanding: null, battery: null, log: null,
    asOf: 0,   // ledger height of the fleet page that last set this row
    statusSeen: false,  // a status message placed it online/offline
  };
}

// "revoked" beats everything (a revoked device's retained status may still say online for a
// moment); ids the registry never named are "unknown" (a status from a device we cannot place).
export function state(row) {
  if (row.status === "revoked") return "revoked";
  if (row.status === "unknown") return "unknown";
  return row.online ? "online" : "offline";
}

export class FleetStore {
  constructor() {
    this.rows = new Map();         // id -> row
    this.list = [];                // the same rows in registry order (new ids appended)
    this.version = 0;              // bumped on every change; views compare it
    this.structVersion = 0;        // bumped only when a row is added (the unfiltered order changed)
    this.flagged = new Set();      // ids the last stats message flagged for attestation
    this._listing = null;          // ids seen during a full fleet listing in progress
    this._onDirty = null;
  }

  onDirty(fn) { this._onDirty = fn; }

  _touch() {
    this.version++;
    if (this._onDirty) this._onDirty();
  }

  _row(id) {
    let r = this.rows.get(id);
    if (!r) {
      r = blankRow(id);
      this.rows.set(id, r);
      this.list.push(r);
      this.structVersion++;
    }
    return r;
  }

  get(id) { return this.rows.get(id) || null; }

  // -- the fleet listing (the plugin's "fleet" request, paged) --

  beginListing() { this._listing = new Set(); }

  applyFleetPage(reply) {
    for (const e of reply.identities || []) {
      const r = this._row(e.id);
      r.role = e.role || "";
      r.zone = e.zone || "";
      r.status = e.status === "revoked" ? "revoked" : "active";
      // A device's own status (retained, with the broker publishing its will when it drops)
      // says more than "connected": it also covers devices behind a bridge, which this broker
      // does not see connected. "connected" places only ids that never published a status.
      if (!r.statusSeen) r.online = !!e.connected;
      if (r.status === "revoked") r.online = false;
      if (r.role === "device") {
        r.balance = Number.isInteger(e.balance) ? e.balance : 0;
        r.outstanding = Number.isInteger(e.outstanding) ? e.outstanding : 0;
      } else {
        r.balance = null;
        r.outstanding = null;
      }
      this._attest(r);
      // The page reflects records 0..height-1; an event of one of those that arrives later
      // (the listing and the event stream are not ordered against each other) is already in.
      r.asOf = Number.isInteger(reply.height) ? reply.height : 0;
      if (this._listing) this._listing.add(e.id);
    }
    this._touch();
  }

  // A full listing replaces the registry view: an id it did not name is not (or no longer)
  // enrolled as far as the cluster head knows, so only its statuses place it.
  endListing() {
    const seen = this._listing;
    this._listing = null;
    if (!seen) return;
    for (const r of this.rows.values()) {
      if (!seen.has(r.id)) r.status = "unknown";
    }
    this._touch();
  }

  // -- iotguard/C/dev/<id>/status --

  applyStatus(id, msg, arrival = Date.now()) {
    const r = this._row(id);
    r.online = msg.state === "online";
    r.statusSeen = true;
    // A device's clock may run ahead of ours; a status never moves "last seen" into the future.
    const ts = Number.isFinite(msg.ts) ? Math.min(msg.ts, arrival) : arrival;
    if (ts > r.lastSeen) r.lastSeen = ts;
    if (typeof msg.measurement === "string") r.measurement = msg.measurement;
    if (msg.battery && typeof msg.battery === "object") r.battery = msg.battery;
    if (msg.log && typeof msg.log === "object") r.log = msg.log;
    this._attest(r);
    this._touch();
  }

  // -- iotguard/C/ledger/events --

  _stale(r, ev) {
    return r && Number.isInteger(ev.index) && ev.index < r.asOf;
  }

  applyEvent(ev) {
    const subject = this.rows.get(ev.id ?? ev.owner ?? ev.collector);
    if (this._stale(subject, ev)) return;
    switch (ev.type) {
      case "enroll": {
        const r = this._row(ev.id);
        r.role = ev.role || r.role;
        r.zone = ev.zone || "";
        r.status = "active";
        if (r.role === "device") { r.balance = 0; r.outstanding = 0; }
        break;
      }
      case "revoke": {
        const r = this._row(ev.id);
        r.status = "revoked";
        r.online = false;
        // The revoke record ends the identity's credit and its unspent coins (LEDGER.md 6).
        if (r.balance !== null) r.balance = 0;
        if (r.outstanding !== null) r.outstanding = 0;
        break;
      }
      case "credit": {
        const r = this.rows.get(ev.id);
        if (r && Number.isInteger(ev.amount)) r.balance = (r.balance || 0) + ev.amount;
        break;
      }
      case "coin_mint": {
        const r = this.rows.get(ev.owner);
        const n = Number.isInteger(ev.count) ? ev.count : 0;
        if (r) {
          r.balance = (r.balance || 0) - n;
          r.outstanding = (r.outstanding || 0) + n;
        }
        break;
      }
      case "coin_redeem":
      case "coin_refund": {
        const r = this.rows.get(ev.collector);
        if (r && r.outstanding > 0) r.outstanding -= 1;
        break;
      }
      default:
        return;
    }
    this._touch();
  }

  // -- iotguard/C/stats --

  applyStats(stats) {
    const flagged = new Set(stats?.attestation?.flagged || []);
    let changed = flagged.size !== this.flagged.size;
    if (!changed) for (const id of flagged) if (!this.flagged.has(id)) { changed = true; break; }
    if (!changed) return;
    const before = this.flagged;
    this.flagged = flagged;
    for (const id of new Set([...before, ...flagged])) {
      const r = this.rows.get(id);
      if (r) this._attest(r);
    }
    this._touch();
  }

  _attest(r) {
    r.attest = this.flagged.has(r.id) ? "flagged" : (r.measurement ? "ok" : "");
  }

  // -- reading --

  counts() {
    const c = { online: 0, offline: 0, revoked: 0, unknown: 0, total: 0 };
    for (const r of this.rows.values()) {
      c[state(r)]++;
      c.total++;
    }
    return c;
  }

  // What the test hooks expose for one id (a copy: callers cannot change the model).
  snapshot(id) {
    const r = this.rows.get(id);
    if (!r) return null;
    return {
      id: r.id, role: r.role || null, zone: r.zone || null, state: state(r), lastSeen: r.lastSeen,
      attest: r.attest, balance: r.balance, outstanding: r.outstanding,
    };
  }
}
