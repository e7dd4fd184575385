// The local model: discussions, their messages, the resume positions, the
// outbox and the drafts. No DOM here; views listen to the events it emits.
//
// The promises of docs/protocol.md §4, and how they are kept:
// - No duplicate: messages are stored by (discussion, seq); a seq at or below
//   the discussion's position is already held and is dropped.
// - No gap: each discussion keeps `pos`, the highest seq such that every
//   message from `lo` (where the held history starts) up to `pos` is held. A
//   message above pos + 1 is kept aside and the hole is filled with `history`.
//   Older messages (below `lo`) are fetched on demand ("Load older").
// - Resume: `hello.resume` lists [id, pos] for every discussion held. The
//   state is saved in sessionStorage, so a reload resumes instead of starting
//   fresh, and what was said during the reload is replayed.
// - Idempotent sends: each message composed gets a fresh client_id, kept with
//   it in the outbox (also saved) until its own `message` comes back. After a
//   reconnection or a reload it is resent with the same client_id, and the
//   server answers the original ack instead of storing it twice (§4.7).

import { currentPost, deliversNow, takePost } from './poststatus.js';

const STATE_VERSION = 1;
const SAVE_MESSAGES = 100; // per discussion, newest first; older ones come back via history
const HISTORY_PAGE = 50;
const GAP_PAGES = 3; // a hole larger than 3 × 100 restarts the held window at the newest messages
const TYPING_SHOWN = 6000; // §5.6: no "stopped typing", show it a few seconds
const TYPING_THROTTLE = 3000;
const LIST_PAGE = 50; // `list` is paged (protocol §6): more pages on demand

/** A UUID v4 from getRandomValues (crypto.randomUUID needs a secure context). */
export function newClientId() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function blank(id) {
  return {
    id,
    subject: '',
    created_by: null,
    created_at: null,
    participants: [],
    read_seq: 0,
    last_seq: 0,
    lastMessage: null,
    msgs: new Map(), // seq → message
    skips: new Set(), // seqs above pos that the server said are not for us (§4.5 `skipped`)
    pos: null, // null: nothing held yet (the first message received sets the window)
    lo: null,
    historyEnd: false, // history said there is nothing older
    reads: new Map(), // user → read seq (others' receipts, §7.5)
    typing: new Map(), // user → time until which to show "is typing"
    filling: false,
    readSent: 0,
    postOpen: null, // may I post here (§8.4), while the window is open / closed
    postClosed: null,
  };
}

export class Chat extends EventTarget {
  constructor({ me, storageKey }) {
    super();
    this.me = me;
    this.storageKey = storageKey;
    this.discussions = new Map();
    this.outbox = new Map(); // client_id → entry
    this.drafts = new Map(); // discussion id → unsent text
    this.persons = new Map(); // user id → person, for names
    this.online = new Set();
    this.window = null;
    this.readOnly = false;
    this.connection = null;
    this.welcomed = false;
    this.typingSent = new Map();
    this.listNext = null; // the cursor of the list's next page, if there is one
    this.saveTimer = null;
    this.restored = this._restore();
    if (me) this.persons.set(me.id, me);
  }

  // ------------------------------------------------------------------ reading

  /** Discussions, most recently active first. */
  sortedDiscussions() {
    return [...this.discussions.values()].sort((a, b) => {
      const diff = activity(b).localeCompare(activity(a));
      return diff || b.id - a.id;
    });
  }

  /** Held messages of a discussion, in seq order (contiguous from lo, then any kept aside). */
  messages(id) {
    const d = this.discussions.get(id);
    if (!d) return [];
    return [...d.msgs.values()].sort((a, b) => a.seq - b.seq);
  }

  /** Own messages not yet back from the server (sending, queued, held). */
  pending(id) {
    return [...this.outbox.values()].filter((e) => e.kind === 'send' && e.discussion === id);
  }

  /** Held starts (defer mode) and starts waiting for the connection. */
  pendingStarts() {
    return [...this.outbox.values()].filter((e) => e.kind === 'start');
  }

  lastMessage(d) {
    let last = d.lastMessage;
    for (const m of d.msgs.values()) if (!last || m.seq > last.seq) last = m;
    return last;
  }

  lastSeq(d) {
    const last = this.lastMessage(d);
    return Math.max(d.last_seq, last ? last.seq : 0);
  }

  unread(d) {
    return Math.max(0, this.lastSeq(d) - d.read_seq);
  }

  isPresent(d, userId = this.me && this.me.id) {
    const p = d.participants.find((x) => x.id === userId);
    return Boolean(p && p.present);
  }

  canLoadOlder(d) {
    return !d.historyEnd && d.lo !== null && d.lo > 1;
  }

  typingNow(d) {
    const now = Date.now();
    return [...d.typing.entries()].filter(([, until]) => until > now).map(([user]) => user);
  }

  person(id) {
    return this.persons.get(id) || { id };
  }

  /** hello.resume (§4.2): null for a fresh client, else [[id, pos], …] of what is held. */
  resumePositions() {
    if (!this.restored && !this.welcomed) return null;
    return this.sortedDiscussions()
      .filter((d) => d.pos !== null)
      .slice(0, 1000)
      .map((d) => [d.id, d.pos]);
  }

  // ------------------------------------------------------------------ frames

  handleFrame(frame) {
    switch (frame.type) {
      case 'welcome': return this._welcome(frame);
      case 'message': return this._message(frame);
      case 'skipped': return this._skipped(frame);
      case 'discussion': return this._upsert(frame.discussion, 'event');
      case 'joined': return this._joined(frame);
      case 'left': return this._left(frame);
      case 'read': return this._read(frame);
      case 'typing': return this._typing(frame);
      case 'presence':
        if (frame.online) this.online.add(frame.user); else this.online.delete(frame.user);
        return this._emit('presence', { user: frame.user });
      case 'window':
        this.window = { open: frame.open, opens_at: frame.opens_at, closes_at: frame.closes_at };
        this.readOnly = !frame.open;
        return this._emit('window', { window: this.window, changed: true });
      case 'held_dropped': return this._heldDropped(frame);
      case 'post': {
        const d = this.discussions.get(frame.discussion);
        if (takePost(d, frame.post)) this._emit('post', { id: frame.discussion });
        return undefined;
      }
      case 'access': return this._emit('access', frame);
      case 'error': return this._emit('server-error', frame); // unsolicited: a close follows
      default: return undefined; // reconnect (a close follows), and types of later versions
    }
  }

  _welcome(frame) {
    this.welcomed = true;
    this.me = frame.user;
    this.persons.set(frame.user.id, frame.user);
    this.school = frame.school;
    this.window = frame.window;
    this.readOnly = frame.read_only;
    this._emit('window', { window: this.window, changed: false });
    this._emit('welcome', frame);
    // §10 "after reconnecting": resend what has no reply, then refresh with list.
    for (const entry of this.outbox.values()) {
      if (entry.state === 'queued' || entry.state === 'sending') this._flush(entry);
    }
    this.refreshList().catch(() => {});
    for (const d of this.discussions.values()) d.readSent = 0;
  }

  _message(m) {
    let d = this.discussions.get(m.discussion);
    if (!d) {
      // A message of a discussion not announced yet: hold it, and learn the rest from list.
      d = blank(m.discussion);
      this.discussions.set(d.id, d);
      this.refreshList().catch(() => {});
    }
    if (d.pos === null) {
      // Nothing held: the held history starts here.
      d.pos = m.seq - 1;
      d.lo = m.seq;
    }
    this._matchOutbox(m);
    if (m.seq <= d.pos || d.msgs.has(m.seq)) return; // already held: no duplicate
    d.msgs.set(m.seq, m);
    if (d.lo === null || m.seq < d.lo) d.lo = m.seq;
    this._advance(d);
    d.last_seq = Math.max(d.last_seq, m.seq);
    d.typing.delete(m.sender);
    if (this._hasGap(d)) this._fillGap(d);
    // One's own message is read by oneself, unless older ones are still unread.
    if (this.me && m.sender === this.me.id && d.read_seq >= m.seq - 1) this.markRead(d.id);
    this._dirty();
    this._emit('discussion', { id: d.id, message: m });
  }

  /** A seq hidden from us (§4.5): it closes its place in the sequence, and shows nothing. */
  _skipped(frame) {
    const d = this.discussions.get(frame.discussion);
    if (!d || d.pos === null || frame.seq <= d.pos) return;
    d.skips.add(frame.seq);
    this._advance(d);
    if (this._hasGap(d)) this._fillGap(d);
  }

  _upsert(meta, source) {
    let d = this.discussions.get(meta.id);
    const isNew = !d;
    if (!d) {
      d = blank(meta.id);
      this.discussions.set(d.id, d);
    }
    d.subject = meta.subject;
    d.created_by = meta.created_by;
    d.created_at = meta.created_at;
    d.participants = meta.participants || [];
    for (const p of d.participants) if (p.name || !this.persons.has(p.id)) this.persons.set(p.id, p);
    d.read_seq = Math.max(d.read_seq, meta.read_seq || 0);
    d.last_seq = Math.max(d.last_seq, meta.last_seq || 0);
    const last = meta.last_message;
    if (last && (!d.lastMessage || last.seq > d.lastMessage.seq)) d.lastMessage = last;
    takePost(d, meta.post);
    if (source === 'event' || source === 'started') {
      // Its messages follow from seq 1 (§7.2).
      if (d.pos === null) { d.pos = 0; d.lo = 1; }
    } else if (source === 'list') {
      if (d.pos === null) {
        // Known from the list only: hold its last message; older ones come via history.
        if (last) {
          d.msgs.set(last.seq, last);
          d.pos = last.seq;
          d.lo = last.seq;
        } else {
          d.pos = meta.last_seq || 0;
        }
      } else if (last && last.seq > d.pos && !d.msgs.has(last.seq)) {
        // The list knows more than we hold: a gap to fill.
        d.msgs.set(last.seq, last);
        this._fillGap(d);
      }
    }
    this._dirty();
    this._emit('discussion', { id: d.id, isNew });
    return d;
  }

  _joined(frame) {
    const d = this.discussions.get(frame.discussion);
    if (!d) return;
    const person = { ...frame.user, present: true, invited_by: frame.invited_by };
    this.persons.set(person.id, frame.user);
    const i = d.participants.findIndex((p) => p.id === person.id);
    if (i >= 0) d.participants[i] = person; else d.participants.push(person);
    this._dirty();
    this._emit('discussion', { id: d.id, joined: person });
  }

  _left(frame) {
    const d = this.discussions.get(frame.discussion);
    if (!d) return;
    const p = d.participants.find((x) => x.id === frame.user);
    if (p) p.present = false;
    this._dirty();
    this._emit('discussion', { id: d.id, left: frame.user });
  }

  /** The others' read positions a history reply carries (§6.5): receipts after a reload. */
  _takeReads(d, reply) {
    let changed = false;
    for (const [user, seq] of Object.entries(reply.reads || {})) {
      if (user === (this.me && this.me.id) || seq <= (d.reads.get(user) || 0)) continue;
      d.reads.set(user, seq);
      changed = true;
    }
    return changed;
  }

  /** Ask for the others' read positions in `id` (opening it, or after a reconnection). */
  async refreshReads(id) {
    const d = this.discussions.get(id);
    if (!d || !this.connection || !this.connection.isOpen) return;
    const reply = await this.connection.request({ type: 'history', discussion: id, limit: 1 });
    const now = this.discussions.get(id);
    if (now && takePost(now, reply.post)) this._emit('post', { id });
    if (now && this._takeReads(now, reply)) this._emit('discussion', { id, read: true });
  }

  _read(frame) {
    const d = this.discussions.get(frame.discussion);
    if (!d) return;
    d.reads.set(frame.user, Math.max(d.reads.get(frame.user) || 0, frame.seq));
    if (this.me && frame.user === this.me.id) d.read_seq = Math.max(d.read_seq, frame.seq);
    this._emit('discussion', { id: d.id, read: frame.user });
    this._emit('unread', {});
  }

  _typing(frame) {
    const d = this.discussions.get(frame.discussion);
    if (!d) return;
    d.typing.set(frame.user, Date.now() + TYPING_SHOWN);
    this._emit('typing', { id: d.id, user: frame.user });
  }

  _heldDropped(frame) {
    const entry = this.outbox.get(frame.client_id);
    if (entry) {
      this.outbox.delete(frame.client_id);
      if (entry.kind === 'send') this._restoreDraft(entry);
      this._saveNow();
    }
    this._emit('refused', { entry: entry || null, error: frame, dropped: true });
    this._emit('outbox', {});
  }

  // ------------------------------------------------------------------ positions

  _advance(d) {
    while (d.msgs.has(d.pos + 1) || d.skips.has(d.pos + 1)) {
      d.pos += 1;
      d.skips.delete(d.pos);
    }
  }

  _hasGap(d) {
    for (const seq of d.msgs.keys()) if (seq > d.pos) return true;
    for (const seq of d.skips) if (seq > d.pos) return true;
    return false;
  }

  /** Page backwards with history until the hole above `pos` is filled (§4.5). */
  async _fillGap(d) {
    if (d.filling || !this.connection || !this.connection.isOpen) return;
    d.filling = true;
    try {
      for (let page = 0; page < GAP_PAGES; page += 1) {
        const above = Math.min(...[...d.msgs.keys(), ...d.skips].filter((s) => s > d.pos));
        if (!Number.isFinite(above)) return; // no hole any more
        const reply = await this.connection.request({
          type: 'history', discussion: d.id, before: above, limit: 100,
        });
        this._takeReads(d, reply);
        for (const m of reply.messages) if (m.seq > d.pos) d.msgs.set(m.seq, m);
        const lowest = Math.min(...reply.messages.map((m) => m.seq));
        if (lowest <= d.pos + 1 || !reply.more) {
          // The page covers the whole hole: a seq it did not return is not for us (§4.5).
          for (let seq = d.pos + 1; seq < above; seq += 1) if (!d.msgs.has(seq)) d.skips.add(seq);
        }
        this._advance(d);
        if (!this._hasGap(d)) return;
        if (!reply.more) break;
      }
      if (this._hasGap(d)) {
        // Too large a hole: keep the newest contiguous run; older ones come back via history.
        const held = (seq) => d.msgs.has(seq) || d.skips.has(seq);
        let start = Math.max(...d.msgs.keys(), ...d.skips);
        while (held(start - 1) && start - 1 > d.pos) start -= 1;
        for (const seq of [...d.msgs.keys()]) if (seq < start) d.msgs.delete(seq);
        for (const seq of [...d.skips]) if (seq < start) d.skips.delete(seq);
        d.lo = start;
        d.pos = start - 1;
        d.historyEnd = false;
        this._advance(d);
      }
    } catch {
      // Disconnected: the resume at the next welcome replays the missing messages.
    } finally {
      d.filling = false;
      this._dirty();
      this._emit('discussion', { id: d.id });
    }
  }

  // ------------------------------------------------------------------ requests

  async refreshList() {
    if (!this.connection || !this.connection.isOpen) return;
    // Only what was known before asking may be forgotten: a discussion announced
    // while the list was on its way is newer than the list.
    const known = new Set(this.discussions.keys());
    const reply = await this.connection.request({ type: 'list', limit: LIST_PAGE });
    const listed = new Set();
    for (const meta of reply.items) {
      listed.add(meta.id);
      this._upsert(meta, 'list');
    }
    // Older pages come with loadMoreDiscussions (a flood of new discussions pushes
    // older ones down the list, never out of reach).
    this.listNext = reply.more ? reply.next : null;
    if (!reply.more) {
      // The whole list in one page: what it lacks is gone from the server (or another
      // server's data): forget it.
      for (const id of known) if (!listed.has(id)) this.discussions.delete(id);
    }
    this._dirty();
    this._emit('list', {});
  }

  /** The next page of the list, after refreshList; resolves to how many came. */
  async loadMoreDiscussions() {
    if (!this.listNext || !this.connection || !this.connection.isOpen) return 0;
    const reply = await this.connection.request({ type: 'list', limit: LIST_PAGE, before: this.listNext });
    for (const meta of reply.items) this._upsert(meta, 'list');
    this.listNext = reply.more ? reply.next : null;
    this._dirty();
    this._emit('list', {});
    return reply.items.length;
  }

  /** Fetch the page of messages before the oldest held one; resolves to how many came. */
  async loadOlder(id) {
    const d = this.discussions.get(id);
    if (!d || !this.connection || !this.connection.isOpen) return 0;
    const frame = { type: 'history', discussion: id, limit: HISTORY_PAGE };
    if (d.lo !== null) {
      if (d.lo <= 1) return 0;
      frame.before = d.lo;
    }
    const reply = await this.connection.request(frame);
    this._takeReads(d, reply);
    let added = 0;
    for (const m of reply.messages) {
      if (d.msgs.has(m.seq)) continue;
      if (d.pos !== null && m.seq > d.pos) continue; // above pos: the live path brings them
      d.msgs.set(m.seq, m);
      added += 1;
    }
    const seqs = reply.messages.map((m) => m.seq);
    if (seqs.length) {
      const min = Math.min(...seqs);
      if (d.pos === null) d.pos = min - 1;
      d.lo = d.lo === null ? min : Math.min(d.lo, min);
      this._advance(d);
    }
    if (!reply.more) d.historyEnd = true;
    this._dirty();
    this._emit('discussion', { id, older: added });
    return added;
  }

  /** Queue a message; it is sent now if connected, else at the next welcome. */
  sendMessage(id, body) {
    const entry = {
      client_id: newClientId(), kind: 'send', discussion: id, body, state: 'queued', created: Date.now(),
    };
    this.outbox.set(entry.client_id, entry);
    this._saveNow();
    this._emit('outbox', { id });
    this._flush(entry);
    return entry;
  }

  /**
   * Start a discussion. Resolves with the `started` or `held` reply, rejects
   * with the refusal (ProtocolError); while disconnected it waits for the
   * connection, as the outbox entry is resent at the next welcome.
   */
  startDiscussion({ subject, to, body, groups = [] }) {
    const entry = {
      client_id: newClientId(), kind: 'start', subject, to, groups, body, state: 'queued', created: Date.now(),
    };
    const done = new Promise((resolve, reject) => { entry.settle = { resolve, reject }; });
    this.outbox.set(entry.client_id, entry);
    this._saveNow();
    this._emit('outbox', {});
    this._flush(entry);
    return { entry, done };
  }

  async _flush(entry) {
    if (!this.connection || !this.connection.isOpen || entry.state === 'sending') return;
    entry.state = 'sending';
    const frame = entry.kind === 'send'
      ? { type: 'send', discussion: entry.discussion, body: entry.body, client_id: entry.client_id }
      : { type: 'start', subject: entry.subject, to: entry.to, body: entry.body, client_id: entry.client_id,
        ...(entry.groups && entry.groups.length ? { groups: entry.groups } : {}) };
    let reply;
    try {
      reply = await this.connection.request(frame);
    } catch (error) {
      if (!this.outbox.has(entry.client_id)) return;
      if (error.code === 'disconnected') {
        entry.state = 'queued'; // resent with the same client_id at the next welcome
      } else if (error.code === 'timeout' || error.code === 'rate_limited') {
        entry.state = 'queued'; // may have been stored: the same client_id makes a retry safe
        setTimeout(() => this._flush(entry), error.code === 'rate_limited' ? 1000 : 3000);
      } else {
        this._refuse(entry, error);
      }
      this._emit('outbox', { id: entry.discussion });
      return;
    }
    if (!this.outbox.has(entry.client_id)) { // its message already came back
      this._emit('sent', { entry, reply });
      return;
    }
    if (reply.type === 'held') {
      entry.state = 'held';
      entry.held_until = reply.held_until;
    } else {
      const ack = reply.type === 'started' ? reply.ack : reply;
      if (reply.type === 'started') {
        this._upsert(reply.discussion, 'started');
        entry.discussion = reply.discussion.id;
      }
      entry.state = 'acked';
      entry.seq = ack.seq;
      const d = this.discussions.get(ack.discussion);
      if (d && (d.msgs.has(ack.seq) || (d.pos !== null && d.pos >= ack.seq))) {
        this.outbox.delete(entry.client_id);
      }
    }
    if (entry.settle) entry.settle.resolve(reply);
    this._saveNow();
    this._emit('outbox', { id: entry.discussion });
    this._emit('sent', { entry, reply }); // accepted (stored or held): earlier refusals are moot
  }

  _refuse(entry, error) {
    this.outbox.delete(entry.client_id);
    if (entry.kind === 'send') this._restoreDraft(entry);
    this._saveNow();
    if (entry.settle) entry.settle.reject(error);
    this._emit('refused', { entry, error, handled: Boolean(entry.settle) });
  }

  /** A refused message goes back to the composer: nothing the user wrote is lost. */
  _restoreDraft(entry) {
    const current = this.drafts.get(entry.discussion) || '';
    const text = current.trim() ? `${entry.body}\n${current}` : entry.body;
    this.drafts.set(entry.discussion, text);
    this._emit('draft', { id: entry.discussion, text });
  }

  _matchOutbox(m) {
    if (!this.me || m.sender !== this.me.id || !m.client_id) return;
    if (this.outbox.delete(m.client_id)) {
      this._saveNow();
      this._emit('outbox', { id: m.discussion });
    }
  }

  markRead(id) {
    const d = this.discussions.get(id);
    if (!d || !this.connection || !this.connection.isOpen || !d.pos) return;
    if (d.pos <= d.read_seq || d.pos <= d.readSent) return;
    d.readSent = d.pos;
    this.connection.request({ type: 'read', discussion: id, seq: d.pos }).catch(() => {
      d.readSent = 0;
    });
  }

  /** Say "I am typing", at most once every 3 s per discussion (§5.6: it costs rate tokens). */
  typing(id) {
    // What could not be posted now is typed for nobody (§5.6): do not say it.
    if (!deliversNow(this.postStatus(id))) return;
    const now = Date.now();
    if ((this.typingSent.get(id) || 0) + TYPING_THROTTLE > now) return;
    this.typingSent.set(id, now);
    if (this.connection) this.connection.notify({ type: 'typing', discussion: id });
  }

  /** May the user post in `id` now? The server's status (§8.4), or null if not known yet. */
  postStatus(id) {
    return currentPost(this.discussions.get(id), this.window);
  }

  invite(id, user) {
    return this.connection.request({ type: 'invite', discussion: id, user });
  }

  leave(id) {
    return this.connection.request({ type: 'leave', discussion: id });
  }

  setDraft(id, text) {
    if (text) this.drafts.set(id, text); else this.drafts.delete(id);
    this._dirty();
  }

  // ------------------------------------------------------------------ storage

  _dirty() {
    clearTimeout(this.saveTimer);
    this.saveTimer = setTimeout(() => this._saveNow(), 250);
  }

  /** Save to sessionStorage (also called on pagehide, so a reload resumes from here). */
  _saveNow() {
    clearTimeout(this.saveTimer);
    if (!this.storageKey) return;
    const state = (withMessages) => JSON.stringify({
      v: STATE_VERSION,
      discussions: [...this.discussions.values()].filter((d) => d.pos !== null).map((d) => {
        // Only the contiguous run up to pos is saved: what is above it was not resumed from.
        const from = Math.max(d.lo || 1, d.pos - (withMessages ? SAVE_MESSAGES : 1) + 1);
        const msgs = [];
        for (let seq = from; seq <= d.pos; seq += 1) if (d.msgs.has(seq)) msgs.push(d.msgs.get(seq));
        return {
          id: d.id, subject: d.subject, created_by: d.created_by, created_at: d.created_at,
          participants: d.participants, read_seq: d.read_seq, last_seq: d.last_seq,
          lastMessage: d.lastMessage, pos: d.pos, lo: msgs.length ? msgs[0].seq : null,
          historyEnd: d.historyEnd && msgs.length > 0 && msgs[0].seq === d.lo, msgs,
        };
      }),
      outbox: [...this.outbox.values()].map(({ settle, ...entry }) => ({
        ...entry, state: entry.state === 'sending' ? 'queued' : entry.state,
      })),
      drafts: [...this.drafts.entries()],
    });
    try {
      sessionStorage.setItem(this.storageKey, state(true));
    } catch {
      try {
        sessionStorage.setItem(this.storageKey, state(false)); // over quota: positions only
      } catch { /* storage unavailable: a reload starts fresh, which loses nothing either */ }
    }
  }

  save() {
    this._saveNow();
  }

  forget() {
    if (this.storageKey) sessionStorage.removeItem(this.storageKey);
  }

  _restore() {
    if (!this.storageKey) return false;
    let data;
    try {
      data = JSON.parse(sessionStorage.getItem(this.storageKey) || 'null');
    } catch {
      return false;
    }
    if (!data || data.v !== STATE_VERSION) return false;
    for (const saved of data.discussions || []) {
      const d = blank(saved.id);
      Object.assign(d, {
        subject: saved.subject, created_by: saved.created_by, created_at: saved.created_at,
        participants: saved.participants || [], read_seq: saved.read_seq || 0,
        last_seq: saved.last_seq || 0, lastMessage: saved.lastMessage || null,
        pos: saved.pos, lo: saved.lo, historyEnd: Boolean(saved.historyEnd),
      });
      for (const m of saved.msgs || []) d.msgs.set(m.seq, m);
      if (d.lo === null) d.lo = d.pos + 1; // nothing held below: older ones come via history
      for (const p of d.participants) this.persons.set(p.id, p);
      this.discussions.set(d.id, d);
    }
    for (const entry of data.outbox || []) {
      // Acked and already held (saved just before its copy was matched): nothing to wait for.
      const d = this.discussions.get(entry.discussion);
      if (entry.state === 'acked' && d && d.pos >= entry.seq) continue;
      this.outbox.set(entry.client_id, entry);
    }
    for (const [id, text] of data.drafts || []) this.drafts.set(id, text);
    return true;
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

function activity(d) {
  let last = d.lastMessage;
  for (const m of d.msgs.values()) if (!last || m.seq > last.seq) last = m;
  return (last && last.at) || d.created_at || '';
}
