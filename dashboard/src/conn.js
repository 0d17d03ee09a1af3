// conn.js: the page's one MQTT 5 connection (MQTT.js over WebSockets).
//
// Why this exists: the dashboard is an iotguard identity, so every connect
// carries a FRESH token (tokens expire, and a monitor may be single-use), and
// MQTT.js's own reconnect would resend the old password. We therefore run
// the reconnect loop here: back-off from 1 s doubling to 10 s after a lost
// connection; after a refusal (CONNACK 0x87, "not authorized": the page is
// not enrolled yet, or was revoked) a steady retry every 5 s, so that an
// operator's enrolment is picked up without a reload. Subscriptions are
// remembered and made again on every connect (clean start). Requests to the
// cluster head and to the admin API are matched to their replies here, by
// nonce and by correlation, so callers just await an answer (for the fleet
// listing, whose pages come in several parts, the whole answer).
// The token is the MQTT password: it never appears in a state detail,
// an error or a log line.

// Refusals worth waiting out: v5 0x86 bad user name or password, 0x87 not
// authorized (what iotguard sends), 0x8C bad authentication method; v3 4, 5.
const REFUSED_CODES = new Map([
  [0x87, 'not authorized'], [5, 'not authorized'],
  [0x86, 'bad user name or password'], [4, 'bad user name or password'],
  [0x8c, 'bad authentication method'],
]);
const BACKOFF_FIRST_MS = 1000;
const BACKOFF_MAX_MS = 10000;
const REFUSED_RETRY_MS = 5000;
const ADMIN_TOPIC = '$CONTROL/iotguard/v1';
const ADMIN_RESPONSE_TOPIC = '$CONTROL/iotguard/v1/response';

function randomHex(bytes) {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function asBytes(payload) {
  if (payload instanceof Uint8Array) return new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
  if (typeof payload === 'string') return new TextEncoder().encode(payload);
  return new Uint8Array(0);
}

function parseJson(u8) {
  try {
    const v = JSON.parse(new TextDecoder().decode(u8));
    return v && typeof v === 'object' ? v : null;
  } catch {
    return null;
  }
}

// MQTT.js, loaded on first connect: esbuild bundles this literal import into
// the page, and the node unit tests can load this module (with an injected
// connect function) without MQTT.js installed.
async function loadMqttConnect() {
  const mod = await import('mqtt');
  const mqtt = mod.default ?? mod;
  return mqtt.connect.bind(mqtt);
}

export class Conn {
  // mqttConnect: optional stand-in for mqtt.connect(url, options) (tests).
  constructor({ url, cluster, id, getToken, onState, onMessage, mqttConnect } = {}) {
    if (!url || !cluster || !id || typeof getToken !== 'function')
      throw new Error('Conn needs url, cluster, id and getToken');
    this.url = url;
    this.cluster = cluster;
    this.id = id;
    this.getToken = getToken;
    this.onState = onState ?? (() => {});
    this.onMessage = onMessage ?? (() => {});
    this.mqttConnect = mqttConnect ?? null;
    this.inboxTopic = `iotguard/${cluster}/dev/${id}/inbox`;
    this.chTopic = `iotguard/${cluster}/ch/${id}`;

    this.state = 'closed';
    this.running = false;
    this.client = null;
    this.generation = 0;
    this.timer = null;
    this.backoff = BACKOFF_FIRST_MS;
    this.filters = new Map();        // filter -> qos, made again on every connect
    this.granted = new Map();        // filter -> reason code of the last SUBACK
    this.subscribed = null;          // Promise: this connection's subscriptions are made
    this.subWaiters = [];            // subscribe() calls waiting for a connection
    this.requests = new Map();       // nonce -> {resolve, reject, timer}
    this.adminQueue = [];            // admin requests run one at a time
    this.adminActive = null;         // {correlations, resolve, reject, timer}
  }

  _setState(state, detail) {
    this.state = state;
    try {
      this.onState(state, detail);
    } catch (e) {
      console.error('iotguard dashboard: onState handler failed:', e);
    }
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.backoff = BACKOFF_FIRST_MS;
    this._connect();
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = null;
    this._dropClient();
    this._failPending(new Error('the connection was stopped'));
    for (const w of this.subWaiters.splice(0)) w.reject(new Error('the connection was stopped'));
    this._setState('closed', 'stopped');
  }

  _dropClient() {
    this.generation++;
    const c = this.client;
    this.client = null;
    this.subscribed = null;
    if (c) {
      try {
        c.end(true);
      } catch {
        // already closed: nothing to release
      }
    }
  }

  _schedule(ms) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.running) this._connect();
    }, ms);
  }

  async _connect() {
    const gen = ++this.generation;
    this._setState('connecting', `connecting to ${this.url} as ${this.id}`);
    let password;
    let connect;
    try {
      password = await this.getToken();
      connect = this.mqttConnect ?? (this.mqttConnect = await loadMqttConnect());
    } catch (e) {
      if (!this.running || gen !== this.generation) return;
      const wait = this.backoff;
      this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
      this._setState('closed', `could not prepare the connection (${e.message}); retrying in ${Math.round(wait / 1000)} s`);
      this._schedule(wait);
      return;
    }
    if (!this.running || gen !== this.generation) return;

    let refusedCode = null;
    let lastError = '';
    const client = connect(this.url, {
      protocolVersion: 5,
      clientId: this.id,
      username: this.id,
      password,
      clean: true,
      keepalive: 30,
      reconnectPeriod: 0,
      connectTimeout: 10000,
      resubscribe: false,
    });
    password = null;
    this.client = client;

    client.on('connect', () => {
      if (gen !== this.generation) return;
      this.backoff = BACKOFF_FIRST_MS;
      this.subscribed = this._subscribeAll(client);
      this.subscribed.catch(() => {}); // failures reach the waiters; not an unhandled rejection
      this._setState('connected', `connected to ${this.url} as ${this.id}`);
    });
    client.on('error', (err) => {
      if (gen !== this.generation) return;
      if (REFUSED_CODES.has(err?.code)) refusedCode = err.code;
      else lastError = err?.message ?? String(err);
    });
    client.on('message', (topic, payload) => {
      if (gen !== this.generation) return;
      this._onMessage(topic, asBytes(payload));
    });
    client.on('close', () => {
      if (gen !== this.generation) return;
      this._dropClient();
      this._failPending(new Error('the connection to the broker was lost before the answer came; ask again'));
      if (!this.running) return;
      if (refusedCode !== null) {
        this._setState('refused',
          `the broker refused ${this.id} (CONNACK 0x${refusedCode.toString(16).padStart(2, '0')}, ${REFUSED_CODES.get(refusedCode)}): ` +
          'enrol this identity (or check it is not revoked and that its clock is right); retrying every 5 s');
        this._schedule(REFUSED_RETRY_MS);
      } else {
        const wait = this.backoff;
        this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
        this._setState('closed', `${lastError ? lastError + '; ' : ''}not connected to ${this.url}; reconnecting in ${Math.round(wait / 1000)} s`);
        this._schedule(wait);
      }
    });
  }

  _subscribeCall(client, list) {
    return new Promise((resolve, reject) => {
      if (list.length === 0) {
        resolve([]);
        return;
      }
      const obj = {};
      for (const f of list) obj[f] = { qos: this.filters.get(f) ?? 0 };
      client.subscribe(obj, (err, _subs, packet) => {
        const codes = packet?.granted;
        if (!Array.isArray(codes) || codes.length !== list.length) {
          reject(new Error(`subscribe failed: ${err?.message ?? 'no SUBACK'}`));
          return;
        }
        list.forEach((f, i) => this.granted.set(f, codes[i]));
        resolve(codes);
      });
    });
  }

  async _subscribeAll(client) {
    const list = [...this.filters.keys()];
    try {
      await this._subscribeCall(client, list);
    } catch (e) {
      for (const w of this.subWaiters.splice(0)) w.reject(e);
      throw e;
    }
    for (const w of this.subWaiters.splice(0)) w.resolve(w.filters.map((f) => this.granted.get(f)));
  }

  // Remembered for every later connect. Resolves with the SUBACK reason
  // codes, one per filter (0..2 granted QoS; 0x80 and up refused, e.g. 0x87
  // when the policy does not let this role read the filter).
  subscribe(filters, { qos = 0 } = {}) {
    const list = Array.isArray(filters) ? filters : [filters];
    for (const f of list) this.filters.set(f, qos);
    if (this.state === 'connected' && this.client) {
      const client = this.client;
      return (this.subscribed ?? Promise.resolve()).catch(() => {}).then(() => this._subscribeCall(client, list));
    }
    return new Promise((resolve, reject) => this.subWaiters.push({ filters: list, resolve, reject }));
  }

  async _ensureSubscribed(topic) {
    if (this.state !== 'connected' || !this.client)
      throw new Error('not connected to the broker; try again once connected');
    let code;
    if (this.filters.has(topic)) {
      await this.subscribed;
      code = this.granted.get(topic);
    }
    // Not subscribed yet, or refused before: ask (again: the identity may
    // have been re-enrolled with another role since).
    if (code === undefined || code >= 0x80) [code] = await this.subscribe([topic], { qos: 1 });
    if (code >= 0x80) {
      this.filters.delete(topic);
      throw new Error(`the broker refused the subscription to ${topic} (reason 0x${code.toString(16)}): ` +
        (topic === ADMIN_RESPONSE_TOPIC ? 'only an active admin may use the admin API' : 'this identity may not read it'));
    }
    if (this.state !== 'connected' || !this.client)
      throw new Error('not connected to the broker; try again once connected');
    return this.client;
  }

  _publish(client, topic, text) {
    return new Promise((resolve, reject) => {
      client.publish(topic, text, { qos: 1 }, (err) => (err ? reject(new Error(`publish to ${topic} failed: ${err.message}`)) : resolve()));
    });
  }

  // A request to the cluster head on iotguard/C/ch/<id>. Adds a fresh nonce;
  // resolves with the inbox message carrying it, rejects with an Error whose
  // .code is the reply's error code (and .reply the reply) for an error
  // reply, or on timeout.
  request(obj, { timeoutMs = 10000 } = {}) {
    return this._ask(obj, timeoutMs, false);
  }

  // Like request(), for an answer that may come in several messages (a
  // fleet page comes in parts of at most 3,800 bytes, because Mosquitto
  // writes big messages to WebSockets clients slowly: docs/PROTOCOL.md,
  // "Fleet listing"). Resolves with every reply carrying the nonce, in
  // `part` order, once `parts` of them arrived; a reply without `parts` is
  // complete alone. An error reply rejects as in request().
  requestAll(obj, { timeoutMs = 15000 } = {}) {
    return this._ask(obj, timeoutMs, true);
  }

  _ask(obj, timeoutMs, all) {
    const nonce = randomHex(16);
    return new Promise((resolve, reject) => {
      const p = { resolve, reject, timer: null, parts: all ? new Map() : null, expected: 0 };
      p.timer = setTimeout(() => {
        this.requests.delete(nonce);
        const got = p.parts && p.parts.size > 0 ? ` (only ${p.parts.size} of its ${p.expected} parts came)` : '';
        reject(new Error(`no answer to the ${obj?.type ?? ''} request within ${timeoutMs / 1000} s${got}`));
      }, timeoutMs);
      this.requests.set(nonce, p);
      const fail = (e) => {
        if (this.requests.get(nonce) === p) {
          clearTimeout(p.timer);
          this.requests.delete(nonce);
          reject(e);
        }
      };
      this._ensureSubscribed(this.inboxTopic)
        .then((client) => this._publish(client, this.chTopic, JSON.stringify({ ...obj, nonce })))
        .catch(fail);
    });
  }

  // One inbox reply for the pending request p: true when p is settled.
  _answer(p, msg) {
    if (msg.type === 'error') {
      const e = new Error(`${msg.error}: ${msg.message ?? ''}`);
      e.code = msg.error;
      e.reply = msg;
      p.reject(e);
      return true;
    }
    if (!p.parts) {
      p.resolve(msg);
      return true;
    }
    if (msg.parts === undefined) {
      p.resolve([msg]);
      return true;
    }
    const n = msg.parts;
    const i = msg.part;
    if (!Number.isInteger(n) || n < 1 || !Number.isInteger(i) || i < 0 || i >= n || (p.expected && n !== p.expected)) {
      const e = new Error(`the answer to a request came in malformed parts (part ${i} of ${n}); ask again`);
      e.code = 'malformed_reply';
      e.reply = msg;
      p.reject(e);
      return true;
    }
    p.expected = n;
    p.parts.set(i, msg); // a repeated part (a QoS 1 redelivery) replaces itself
    if (p.parts.size < n) return false;
    p.resolve([...p.parts.keys()].sort((a, b) => a - b).map((k) => p.parts.get(k)));
    return true;
  }

  // Admin API commands (one request, 1..64 commands). Each command gets a
  // correlation unless it has one; resolves with the `responses` array (a
  // failed command is an element with ok:false). One admin request is in
  // flight at a time, so a whole-request refusal (correlation "") can only
  // answer the one in flight.
  admin(commands, { timeoutMs = 15000 } = {}) {
    if (!Array.isArray(commands) || commands.length < 1 || commands.length > 64)
      return Promise.reject(new Error('an admin request holds 1 to 64 commands'));
    return new Promise((resolve, reject) => {
      this.adminQueue.push({ commands, timeoutMs, resolve, reject });
      if (!this.adminActive) this._nextAdmin();
    });
  }

  async _nextAdmin() {
    const job = this.adminQueue.shift();
    if (!job) return;
    const tag = randomHex(4);
    const commands = job.commands.map((c, i) => ({ ...c, correlation: c.correlation ?? `dash-${tag}-${i}` }));
    const active = { correlations: commands.map((c) => c.correlation), resolve: job.resolve, reject: job.reject, timer: null };
    this.adminActive = active;
    const finish = () => {
      clearTimeout(active.timer);
      if (this.adminActive === active) {
        this.adminActive = null;
        this._nextAdmin();
      }
    };
    active.finish = finish;
    active.timer = setTimeout(() => {
      finish();
      job.reject(new Error(`no admin response within ${job.timeoutMs / 1000} s`));
    }, job.timeoutMs);
    try {
      const client = await this._ensureSubscribed(ADMIN_RESPONSE_TOPIC);
      if (this.adminActive !== active) return; // timed out or failed meanwhile
      await this._publish(client, ADMIN_TOPIC, JSON.stringify({ commands }));
    } catch (e) {
      finish();
      job.reject(e);
    }
  }

  _onMessage(topic, bytes) {
    if (topic === this.inboxTopic) {
      const msg = parseJson(bytes);
      const p = msg && typeof msg.nonce === 'string' ? this.requests.get(msg.nonce) : undefined;
      if (p && this._answer(p, msg)) {
        clearTimeout(p.timer);
        this.requests.delete(msg.nonce);
      }
    } else if (topic === ADMIN_RESPONSE_TOPIC && this.adminActive) {
      const msg = parseJson(bytes);
      const rs = msg?.responses;
      const a = this.adminActive;
      if (Array.isArray(rs) && rs.length > 0) {
        if (rs.length === a.correlations.length && rs.every((r, i) => r?.correlation === a.correlations[i])) {
          a.finish();
          a.resolve(rs);
        } else if (rs.length === 1 && rs[0]?.correlation === '' && rs[0]?.ok === false) {
          a.finish();
          const e = new Error(`${rs[0].error}: ${rs[0].message ?? ''}`);
          e.code = rs[0].error;
          e.reply = msg;
          a.reject(e);
        }
      }
    }
    try {
      this.onMessage(topic, bytes);
    } catch (e) {
      console.error('iotguard dashboard: onMessage handler failed:', e);
    }
  }

  _failPending(err) {
    for (const [nonce, p] of this.requests) {
      clearTimeout(p.timer);
      this.requests.delete(nonce);
      p.reject(err);
    }
    const queued = this.adminQueue.splice(0);
    const a = this.adminActive;
    if (a) {
      a.finish();
      a.reject(err);
    }
    for (const job of queued) job.reject(err);
  }
}
