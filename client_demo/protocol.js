// One WebSocket speaking `preau.json` (docs/protocol.md), kept alive.
//
// This module knows nothing of discussions or of the DOM. The caller gives it
// the token and a function returning the resume positions, and receives every
// frame that is not a reply. Requests get a fresh `ref` and a Promise that
// settles with the reply carrying that ref (§5.1: one reply per request).
//
// Reconnection follows §10: 4000/1012 (server restarting) → at once plus up to
// 1 s of jitter; 1006/1011/4008/4001/4429 (too many
// connections for this account) → random backoff from 0.5 s doubling to
// 30 s, reset after a connection that lasted a minute; 4501 (token refused) and
// 4503 (access revoked) → stop, the caller shows why; 1002/1009 → stop (a bug
// here, retrying would loop).

import { register, t } from './i18n.js';

// The sentences of the errors made here (not by the server), shown under a refusal's lead.
register({
  fr: {
    'protocol.notConnected': 'Pas de connexion.',
    'protocol.noAnswer': 'Le serveur n’a pas répondu.',
    'protocol.lost': 'La connexion a été perdue.',
    'protocol.error': 'Erreur de protocole.',
  },
  en: {
    'protocol.notConnected': 'Not connected.',
    'protocol.noAnswer': 'No answer from the server.',
    'protocol.lost': 'The connection was lost.',
    'protocol.error': 'Protocol error.',
  },
});

export const PROTOCOL = 'preau.json';
const PING_EVERY = 25_000; // §3.5: our own ping, to notice a dead connection
const PONG_WITHIN = 20_000;
const REQUEST_TIMEOUT = 15_000;
const BACKOFF_START = 500;
const BACKOFF_MAX = 30_000;
const STABLE_AFTER = 60_000; // a connection this old resets the backoff

/** A refusal or failure of a request: `code` is the protocol's code (§9). */
export class ProtocolError extends Error {
  constructor(frame) {
    super(frame.message || frame.code);
    this.code = frame.code;
    this.retry_at = frame.retry_at || null;
    this.frame = frame;
  }
}

export class Connection {
  /**
   * @param {object} options
   * @param {string} options.url          ws:// or wss:// URL of /ws
   * @param {() => string} options.token  the token for the next hello
   * @param {() => (Array|null)} options.resume  hello.resume: null for a fresh client
   * @param {(frame: object) => void} options.onFrame  events and unsolicited errors
   * @param {(status: object) => void} options.onStatus
   *   {state: 'connecting'|'open'|'waiting'|'stopped', retryIn?, code?, message?}
   */
  constructor({ url, token, resume, onFrame, onStatus }) {
    this.url = url;
    this.token = token;
    this.resume = resume;
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.ws = null;
    this.pending = new Map(); // ref → {resolve, reject, timer}
    this.refs = 0;
    this.backoff = BACKOFF_START;
    this.stopped = true;
    this.retryTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.welcomedAt = 0;
    this.lastRefusal = null; // the error/access frame that explains the coming close
    this.status = { state: 'stopped' };
    this._online = () => { if (this.status.state === 'waiting') this._connectNow(); };
  }

  get isOpen() {
    return this.status.state === 'open';
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener('online', this._online);
    this._connectNow();
  }

  /** Close for good (sign-out, access revoked): no reconnection. */
  stop(status = { state: 'stopped' }) {
    this.stopped = true;
    window.removeEventListener('online', this._online);
    clearTimeout(this.retryTimer);
    this._teardown();
    this._setStatus(status);
  }

  /** Send a request and wait for its reply (rejects with ProtocolError). */
  request(frame, timeout = REQUEST_TIMEOUT) {
    if (!this.isOpen) {
      return Promise.reject(new ProtocolError({ code: 'disconnected', message: t('protocol.notConnected') }));
    }
    this.refs += 1;
    const ref = `r${this.refs}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        reject(new ProtocolError({ code: 'timeout', message: t('protocol.noAnswer') }));
      }, timeout);
      this.pending.set(ref, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ ...frame, ref }));
    });
  }

  /** Send a frame that gets no reply on success (`typing`). Its errors are ignored. */
  notify(frame) {
    if (!this.isOpen) return;
    this.refs += 1;
    // A ref starting with "n" marks errors we do not wait for (a typing over the rate limit).
    this.ws.send(JSON.stringify({ ...frame, ref: `n${this.refs}` }));
  }

  // ------------------------------------------------------------------ internals

  _setStatus(status) {
    this.status = status;
    this.onStatus(status);
  }

  _connectNow() {
    clearTimeout(this.retryTimer);
    if (this.stopped) return;
    this._teardown();
    this._setStatus({ state: 'connecting' });
    this.lastRefusal = null;
    let ws;
    try {
      ws = new WebSocket(this.url, [PROTOCOL]);
    } catch {
      this._closed(1006);
      return;
    }
    this.ws = ws;
    let welcomed = false;
    ws.onopen = () => {
      // §3.1: the hello must come within 5 s; the token travels here, never in the URL.
      const hello = { type: 'hello', token: this.token() };
      const resume = this.resume();
      if (resume !== null) hello.resume = resume;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (event) => {
      if (typeof event.data !== 'string') return; // preau.json is text frames only
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!frame || typeof frame.type !== 'string') return;
      if (!welcomed) {
        if (frame.type === 'welcome') {
          welcomed = true;
          this.welcomedAt = Date.now();
          this._setStatus({ state: 'open' });
          this._schedulePing();
        } else if (frame.type === 'error') {
          this.lastRefusal = frame; // a refused hello: the close follows (§3.1)
        }
        this.onFrame(frame);
        return;
      }
      this._onFrame(frame);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this._closed(event.code, event.reason);
    };
  }

  _onFrame(frame) {
    const ref = frame.ref;
    if (typeof ref === 'string' && ref.startsWith('n')) return; // a notify's error
    if (typeof ref === 'string' && this.pending.has(ref)) {
      const { resolve, reject, timer } = this.pending.get(ref);
      clearTimeout(timer);
      this.pending.delete(ref);
      if (frame.type === 'error') reject(new ProtocolError(frame));
      else resolve(frame);
      return;
    }
    if (frame.type === 'pong') {
      clearTimeout(this.pongTimer);
      return;
    }
    if (frame.type === 'access' || (frame.type === 'error' && !ref)) this.lastRefusal = frame;
    this.onFrame(frame);
  }

  _schedulePing() {
    clearTimeout(this.pingTimer);
    this.pingTimer = setTimeout(() => {
      if (!this.isOpen) return;
      this.refs += 1;
      this.ws.send(JSON.stringify({ type: 'ping', ref: `p${this.refs}` }));
      // No pong in time: the connection is dead even if the browser has not noticed.
      this.pongTimer = setTimeout(() => this._closed(1006, 'no pong'), PONG_WITHIN);
      this._schedulePing();
    }, PING_EVERY);
  }

  /** Forget the current socket and fail the requests in flight. */
  _teardown() {
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      try {
        ws.close(1000);
      } catch { /* already closed */ }
    }
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(new ProtocolError({ code: 'disconnected', message: t('protocol.lost') }));
    }
    this.pending.clear();
  }

  _closed(code, reason = '') {
    const lived = this.welcomedAt ? Date.now() - this.welcomedAt : 0;
    this.welcomedAt = 0;
    this._teardown();
    if (this.stopped) return;
    const refusal = this.lastRefusal;
    if (code === 4501 || code === 4503) {
      // Never loop on a refused token or a revoked access (§10).
      this.stop({
        state: 'stopped', code: (refusal && refusal.code) || (code === 4501 ? 'unauthenticated' : 'profile_disabled'),
        message: (refusal && refusal.message) || reason,
      });
      return;
    }
    if (code === 1002 || code === 1009) {
      this.stop({ state: 'stopped', code: 'bad_request', message: reason || t('protocol.error') });
      return;
    }
    let delay;
    if (code === 4000 || code === 1012) {
      delay = Math.random() * 1000; // a deploy: another process answers at once
    } else {
      if (lived >= STABLE_AFTER) this.backoff = BACKOFF_START;
      delay = Math.random() * this.backoff;
      this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX);
    }
    this._setStatus({ state: 'waiting', retryIn: delay, code });
    this.retryTimer = setTimeout(() => this._connectNow(), delay);
  }
}
