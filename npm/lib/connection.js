// The IO half of a relay connection: the WebSocket, timers and reconnects.
// The protocol itself (what to send, what a frame means) is the Rust
// `Session` in the .wasm; this file only moves its frames.

import { Session } from '../dist/neuroplex_wasm.js';

const PRESENCE_RENEW_MS = 15000;

class Emitter {
  constructor() {
    this._listeners = new Map();
  }

  on(event, cb) {
    if (typeof cb !== 'function') throw new TypeError('a listener must be a function');
    let set = this._listeners.get(event);
    if (!set) this._listeners.set(event, (set = new Set()));
    const entry = { cb };
    set.add(entry);
    return () => set.delete(entry);
  }

  _emit(event, ...args) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const { cb } of [...set]) {
      try {
        cb(...args);
      } catch (e) {
        // A listener's exception must not break the connection.
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
}

/** Everyone's presence in the room, as Yjs awareness has it. */
class Presence extends Emitter {
  constructor(conn) {
    super();
    this._conn = conn;
    this._states = new Map();
  }

  /** This client's presence id (the document's Yjs client id). */
  get clientId() {
    return this._conn.clientId;
  }

  /** Sets this client's presence (any JSON value; null clears it). */
  set(state) {
    if (this._conn._closed) throw new Error('the connection is closed');
    const json = state === null || state === undefined ? undefined : JSON.stringify(state);
    if (state !== null && state !== undefined && json === undefined) {
      throw new TypeError('presence must be JSON-serialisable');
    }
    this._conn._session.setPresence(json);
    this._apply([[this.clientId, json ?? null]]);
    this._conn._scheduleFlush();
  }

  /** Everyone present, this client included: client id → state. */
  states() {
    return new Map(this._states);
  }

  _apply(changes) {
    const added = [];
    const updated = [];
    const removed = [];
    for (const [client, json] of changes) {
      if (json === null) {
        if (this._states.delete(client)) removed.push(client);
        continue;
      }
      let state;
      try {
        state = JSON.parse(json);
      } catch {
        continue;
      }
      if (this._states.has(client)) updated.push(client);
      else added.push(client);
      this._states.set(client, state);
    }
    if (added.length || updated.length || removed.length) {
      this._emit('change', { added, updated, removed });
    }
  }
}

function withToken(url, token) {
  if (token === undefined || token === null) return String(url);
  const u = new URL(String(url));
  u.searchParams.set('token', token);
  return u.toString();
}

/**
 * A connection of one document to one room of a relay
 * (`ws[s]://host/sync/<room>`). Reconnects by itself with exponential
 * backoff and jitter; edits made meanwhile are sent on reconnect.
 */
export class Connection extends Emitter {
  constructor(WebSocketImpl, doc, url, options = {}) {
    super();
    if (typeof WebSocketImpl !== 'function') {
      throw new TypeError('no WebSocket implementation: pass options.WebSocket');
    }
    this._WS = options.WebSocket ?? WebSocketImpl;
    this._url = withToken(url, options.token);
    this._backoffMin = options.backoffMin ?? 100;
    this._backoffMax = options.backoffMax ?? 10000;
    this._attempt = 0;
    this._ws = null;
    this._timer = null;
    this._renew = null;
    this._closed = false;
    this._stopped = false;
    this._flushQueued = false;
    /** 'connecting' | 'online' | 'offline' */
    this.status = 'connecting';
    /** The last close code / error reason from the relay, if any. */
    this.lastError = undefined;
    this._session = new Session(doc);
    this._clientId = this._session.clientId;
    this._session.setWake(() => this._scheduleFlush());
    this.presence = new Presence(this);
    this._connect();
  }

  /** The relay lets this client write (known once online). */
  get writable() {
    return !this._closed && this._session.writable;
  }

  /**
   * Online with nothing left to send: every local change reached the relay
   * and was reported durable.
   */
  get synced() {
    return !this._closed && this._session.synced;
  }

  /** Stops: closes the socket and never reconnects. */
  close() {
    if (this._closed) return;
    this._closed = true;
    clearTimeout(this._timer);
    this._timer = null;
    this._stopRenew();
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      this._detach(ws);
      try {
        ws.close(1000, 'closed');
      } catch {
        // Closing a socket that never opened can throw; nothing to do.
      }
    }
    this._stopSession();
    this._setStatus('offline');
    this._session.setWake(undefined);
    this._session.free();
  }

  _setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    this._emit('status', status);
  }

  _connect() {
    if (this._closed || this._stopped) return;
    this._setStatus('connecting');
    let ws;
    try {
      ws = new this._WS(this._url);
    } catch (e) {
      this.lastError = { code: 0, reason: String(e?.message ?? e) };
      this._setStatus('offline');
      return; // A malformed URL will not get better.
    }
    this._ws = ws;
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      if (ws !== this._ws) return;
      this._send(ws, this._session.start());
    };
    ws.onmessage = (ev) => {
      if (ws !== this._ws) return;
      const data = ev.data;
      if (typeof data === 'string') return;
      let frames;
      try {
        frames = this._session.receive(new Uint8Array(data));
      } catch (e) {
        this.lastError = { code: e?.code ?? 4400, reason: String(e?.message ?? e) };
        ws.close(4000, 'bad frame');
        this._onClose(ws, e?.code ?? 4400);
        return;
      }
      this._send(ws, frames);
      this._afterReceive();
    };
    ws.onerror = () => {};
    ws.onclose = (ev) => {
      if (ws !== this._ws) return;
      if (ev?.code >= 4000) this.lastError = { code: ev.code, reason: ev.reason ?? '' };
      this._onClose(ws, ev?.code ?? 1006);
    };
    // Node's `ws`: an HTTP refusal (401/403: bad token) will not get better.
    if (typeof ws.on === 'function') {
      ws.on('unexpected-response', (_req, res) => {
        if (ws !== this._ws) return;
        this.lastError = { code: res.statusCode, reason: `HTTP ${res.statusCode}` };
        const fatal = res.statusCode === 401 || res.statusCode === 403;
        try {
          ws.terminate();
        } catch {
          // Already gone.
        }
        this._onClose(ws, fatal ? 4401 : 1006);
      });
    }
  }

  _afterReceive() {
    const s = this._session;
    if (s.online && this.status !== 'online') {
      this._attempt = 0;
      this._setStatus('online');
      this._startRenew();
    }
    const code = s.lastErrorCode;
    if (code !== undefined) this.lastError = { code, reason: s.lastErrorReason };
    this._presenceChanges();
  }

  _presenceChanges() {
    const changes = this._session.takePresenceChanges();
    // Our own entry is what we set, whatever comes back.
    const me = this.clientId;
    this.presence._apply(changes.filter(([client]) => client !== me));
  }

  /** This client's presence id (the document's Yjs client id). */
  get clientId() {
    return this._clientId;
  }

  _send(ws, frames) {
    if (ws.readyState !== 1) return;
    for (const f of frames) ws.send(f);
  }

  _scheduleFlush() {
    if (this._flushQueued || this._closed) return;
    this._flushQueued = true;
    queueMicrotask(() => {
      this._flushQueued = false;
      if (this._closed || !this._ws || this._ws.readyState !== 1) return;
      this._send(this._ws, this._session.flush());
    });
  }

  _detach(ws) {
    ws.onopen = ws.onmessage = ws.onclose = null;
    ws.onerror = () => {};
  }

  _stopSession() {
    this._session.stop();
    const me = this.clientId;
    this.presence._apply(this._session.takePresenceChanges().filter(([c]) => c !== me));
  }

  _onClose(ws, code) {
    if (ws !== this._ws) return;
    this._detach(ws);
    this._ws = null;
    this._stopRenew();
    this._stopSession();
    if (this._closed) return;
    this._setStatus('offline');
    // 4400–4499: the relay refused us for a reason retrying will not fix.
    if (code >= 4400 && code < 4500) {
      this._stopped = true;
      this._emit('error', this.lastError);
      return;
    }
    const base = Math.min(this._backoffMax, this._backoffMin * 2 ** Math.min(this._attempt, 20));
    this._attempt += 1;
    // Jitter in [base/2, base]: clients that lost the same relay do not
    // come back in step.
    const delay = base * (0.5 + Math.random() * 0.5);
    this._timer = setTimeout(() => {
      this._timer = null;
      this._connect();
    }, delay);
  }

  _startRenew() {
    this._stopRenew();
    // Yjs peers drop presence not renewed for 30 s.
    this._renew = setInterval(() => {
      const own = this._session.ownPresence;
      if (own !== undefined && this.status === 'online') {
        this._session.setPresence(own);
        this._scheduleFlush();
      }
    }, PRESENCE_RENEW_MS);
    this._renew.unref?.();
  }

  _stopRenew() {
    clearInterval(this._renew);
    this._renew = null;
  }
}

/** `connect(doc, url, options)` bound to a WebSocket implementation. */
export function makeConnect(WebSocketImpl) {
  return function connect(doc, url, options = {}) {
    return new Connection(WebSocketImpl, doc, url, options);
  };
}
