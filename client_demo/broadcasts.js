// The model of information messages and polls (docs/protocol.md §14): what I
// received, what I sent, and the calls that change them. No DOM here; views
// listen to the events it emits ('change' with {id}, 'reminder', 'dropped').
//
// Actions are REST calls (§14.5); what follows them arrives as WebSocket events
// (§14.7) through the same connection as messages. Those events are not
// replayed: after every `welcome` the lists are fetched again and merged by id
// (§14.8), keeping the higher `stats.version` and the latest of each `mine`
// time, so that an event that came while the list was on its way is not undone.

import { api } from './api.js';
import { newClientId } from './chat.js';


function time(iso) {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? -Infinity : t;
}

/** The later of two times (ISO strings or null). */
function later(a, b) {
  if (!a) return b || null;
  if (!b) return a;
  return time(b) > time(a) ? b : a;
}

/** My state on a received broadcast: times only move forward; answers go with the latest answered_at. */
export function mergeMine(old, fresh) {
  if (!old) return fresh || null;
  if (!fresh) return old;
  const merged = { ...old, ...fresh };
  for (const key of ['received_at', 'read_at', 'acknowledged_at', 'answered_at', 'reminded_at']) {
    merged[key] = later(old[key], fresh[key]);
  }
  merged.answers = time(fresh.answered_at) >= time(old.answered_at) ? fresh.answers : old.answers;
  if (merged.answers === undefined) merged.answers = old.answers ?? null;
  return merged;
}

/** The stats with the higher version (§14.6: events may come out of order). */
export function newerStats(old, fresh) {
  if (!old) return fresh || null;
  if (!fresh) return old;
  return (fresh.version || 0) >= (old.version || 0) ? fresh : old;
}

export class Board extends EventTarget {
  constructor({ me, storageKey }) {
    super();
    this.me = me;
    this.received = new Map(); // id → broadcast (recipient's view)
    this.sent = new Map(); // id → broadcast (author's view)
    this.loaded = false;
    // Paging (§14.5): whether older ones follow each list, and the `before` that asks for them.
    this.more = { received: false, sent: false };
    this.next = { received: null, sent: null };
    this.paged = { received: false, sent: false }; // an older page was loaded: keep its `next`
    this.audience = null; // GET /api/broadcasts/audience, once per session
    this.storageKey = storageKey;
    this.seenReminders = this._restore(); // id → reminded_at already looked at
    this.refreshing = null;
    this.refreshAgain = false;
  }

  // ------------------------------------------------------------------ reading

  get(id) {
    return this.sent.get(id) || this.received.get(id) || null;
  }

  isMine(b) {
    return Boolean(b && b.author && this.me && b.author.id === this.me.id);
  }

  /** Newest first (published, or created for the scheduled ones). */
  sorted(map) {
    return [...map.values()].sort((a, b) => {
      const diff = time(b.published_at || b.publish_at) - time(a.published_at || a.publish_at);
      return diff || b.id - a.id;
    });
  }

  /** A reminder came that I have not looked at yet. */
  reminded(b) {
    const at = b.mine && b.mine.reminded_at;
    return Boolean(at && this.seenReminders.get(b.id) !== at);
  }

  /** Unread, or reminded since I last opened it. */
  needsAttention(b) {
    return Boolean(b.mine && (!b.mine.read_at || this.reminded(b)));
  }

  unreadCount() {
    let n = 0;
    for (const b of this.received.values()) if (this.needsAttention(b)) n += 1;
    return n;
  }

  /** A poll whose deadline has passed, as the server said (`closed`) or found (`poll_closed`). */
  static closed(b) {
    return Boolean(b && b.poll && b.poll.closed);
  }

  // ------------------------------------------------------------------ merging

  /** Put a broadcast (either view) in its list; returns the merged object. */
  upsert(fresh) {
    if (!fresh || typeof fresh.id !== 'number') return null;
    const mine = this.isMine(fresh);
    const map = mine ? this.sent : this.received;
    const old = map.get(fresh.id);
    let merged = fresh;
    if (old) {
      merged = { ...old, ...fresh };
      if (mine) merged.stats = newerStats(old.stats, fresh.stats);
      else merged.mine = mergeMine(old.mine, fresh.mine);
      if (old.poll && fresh.poll && old.poll.closed) merged.poll = { ...fresh.poll, closed: true };
      if (old.status === 'dropped' && fresh.status === 'scheduled') {
        merged.status = 'dropped';
        merged.dropped = old.dropped;
      }
    }
    map.set(fresh.id, merged);
    this._emit('change', { id: fresh.id });
    return merged;
  }

  handleFrame(frame) {
    switch (frame.type) {
      case 'welcome': this.refresh().catch(() => {}); return;
      case 'broadcast': this.upsert(frame.broadcast); return;
      case 'broadcast_stats': {
        const b = this.sent.get(frame.id);
        if (!b) { this.refresh().catch(() => {}); return; } // created elsewhere: the list has it
        b.stats = newerStats(b.stats, frame.stats);
        this._emit('change', { id: frame.id, stats: true });
        return;
      }
      case 'broadcast_mine': {
        const b = this.received.get(frame.id);
        if (!b) { this.refresh().catch(() => {}); return; }
        b.mine = mergeMine(b.mine, frame.mine);
        this._emit('change', { id: frame.id });
        return;
      }
      case 'broadcast_reminder': {
        const b = this.received.get(frame.id);
        if (b) {
          b.mine = mergeMine(b.mine, { reminded_at: frame.at });
          this._emit('change', { id: frame.id });
        } else {
          this.refresh().catch(() => {});
        }
        this._emit('reminder', frame);
        return;
      }
      case 'broadcast_dropped': {
        const b = this.sent.get(frame.id);
        if (b) {
          b.status = 'dropped';
          b.dropped = { code: frame.code, message: frame.message };
          this._emit('change', { id: frame.id });
        } else {
          this.refresh().catch(() => {});
        }
        this._emit('dropped', frame);
        return;
      }
      default:
    }
  }

  /** GET /api/broadcasts and merge by id (§14.8). One at a time; a call during one runs again after it. */
  refresh() {
    if (this.refreshing) {
      this.refreshAgain = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      try {
        do {
          this.refreshAgain = false;
          const known = { received: new Set(this.received.keys()), sent: new Set(this.sent.keys()) };
          const reply = await api('/api/broadcasts');
          for (const [name, list] of [['received', reply.received || []], ['sent', reply.sent || []]]) {
            const listed = new Set();
            for (const b of list) {
              listed.add(b.id);
              this.upsert(b);
            }
            const more = Boolean(reply.more && reply.more[name]);
            // Expired (or gone) while we were away: only what was known before asking may go.
            if (!more && !this.paged[name]) {
              for (const id of known[name]) if (!listed.has(id)) this[name].delete(id);
            }
            if (!this.paged[name]) {
              this.more[name] = more;
              this.next[name] = (reply.next && reply.next[name]) || null;
            }
          }
          this.loaded = true;
          this._emit('list', {});
        } while (this.refreshAgain);
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  /** The next page of `received` or `sent` (GET /api/broadcasts/{name}?before=…). */
  async loadMore(name, limit) {
    if (!this.more[name] || !this.next[name]) return;
    const params = { before: this.next[name] };
    if (limit) params.limit = limit;
    const reply = await api(`/api/broadcasts/${name}`, { params });
    for (const b of reply.items || []) this.upsert(b);
    this.paged[name] = true;
    this.more[name] = Boolean(reply.more);
    this.next[name] = reply.next || null;
    this._emit('list', {});
  }

  // ------------------------------------------------------------------ actions

  async loadAudience(q) {
    const reply = await api('/api/broadcasts/audience', { params: { q } });
    if (!q) this.audience = reply;
    return reply;
  }

  preview(to) {
    return api('/api/broadcasts/preview', { method: 'POST', body: { to } });
  }

  /** POST /api/broadcasts; `draft.client_id` makes a retry safe (the original comes back). */
  async create(draft) {
    const reply = await api('/api/broadcasts', { method: 'POST', body: draft });
    return this.upsert(reply.broadcast);
  }

  async fetch(id) {
    const reply = await api(`/api/broadcasts/${id}`);
    return this.upsert(reply.broadcast);
  }

  async read(id) {
    const reply = await api(`/api/broadcasts/${id}/read`, { method: 'POST' });
    return this.upsert(reply.broadcast);
  }

  async acknowledge(id) {
    const reply = await api(`/api/broadcasts/${id}/acknowledge`, { method: 'POST' });
    return this.upsert(reply.broadcast);
  }

  async answer(id, answers) {
    try {
      const reply = await api(`/api/broadcasts/${id}/answers`, { method: 'PUT', body: { answers } });
      return this.upsert(reply.broadcast);
    } catch (error) {
      if (error.code === 'poll_closed') this.markClosed(id);
      throw error;
    }
  }

  results(id) {
    return api(`/api/broadcasts/${id}/results`);
  }

  async remind(id) {
    return api(`/api/broadcasts/${id}/remind`, { method: 'POST' });
  }

  markClosed(id) {
    const b = this.get(id);
    if (b && b.poll && !b.poll.closed) {
      b.poll = { ...b.poll, closed: true };
      this._emit('change', { id });
    }
  }

  /** The reminder was seen (the broadcast was opened after it). */
  seeReminder(id) {
    const b = this.received.get(id);
    const at = b && b.mine && b.mine.reminded_at;
    if (!at || this.seenReminders.get(id) === at) return;
    this.seenReminders.set(id, at);
    this._save();
    this._emit('change', { id });
  }

  newClientId() {
    return `b-${newClientId()}`;
  }

  // ------------------------------------------------------------------ storage

  forget() {
    if (this.storageKey) sessionStorage.removeItem(this.storageKey);
  }

  _save() {
    if (!this.storageKey) return;
    try {
      sessionStorage.setItem(this.storageKey, JSON.stringify([...this.seenReminders.entries()]));
    } catch { /* storage unavailable: a reminder shows again after a reload, nothing worse */ }
  }

  _restore() {
    try {
      return new Map(JSON.parse(sessionStorage.getItem(this.storageKey) || '[]'));
    } catch {
      return new Map();
    }
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
