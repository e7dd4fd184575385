// One discussion: its messages (live, with scroll-back), who is in it, who is
// typing, read receipts, the composer, and the invite/leave actions.

import { contactPicker } from './picker.js';
import { h, linkify, nextId, reconcile, replace } from './dom.js';
import { setTitle } from './tabbadge.js';
import { explain, formatOpening, formatTime, personDetail, personName } from './text.js';

const OLDER_THRESHOLD = 40; // px from the top that triggers loading older messages
const MIN_CONTEXT = 20; // fetch older messages on opening when fewer are held

/**
 * @param {object} options
 * @param {Chat} options.chat
 * @param {number} options.id
 * @param {(banner) => void} options.notify  show a banner ({kind, title, detail, code})
 */
export function conversationView({ chat, id, notify }) {
  const d = () => chat.discussions.get(id);
  const titleId = nextId('conv-title');
  const composerId = nextId('composer');
  const me = () => chat.me;

  const title = h('h2', { id: titleId, class: 'conv-subject', tabindex: '-1' }, 'Loading…');
  const people = h('p', { class: 'conv-people' });
  const inviteButton = h('button', { type: 'button', class: 'secondary' }, 'Invite');
  const leaveButton = h('button', { type: 'button', class: 'secondary' }, 'Leave');
  const actions = h('div', { class: 'conv-actions' }, inviteButton, leaveButton);

  // Invite panel: the contacts of the teacher/staff member (G7 = G5 from the inviter).
  const inviteStatus = h('p', { class: 'sr-status', role: 'status' });
  const picker = contactPicker({
    label: 'Invite someone',
    action: 'Invite',
    exclude: () => new Set((d()?.participants || []).filter((p) => p.present).map((p) => p.id)),
    onPick: async (person) => {
      try {
        await chat.invite(id, person.id);
        inviteStatus.textContent = `${person.name} was invited.`;
      } catch (error) {
        notify({ kind: 'error', ...explain(error), code: error.code });
      }
    },
    onError: (error) => notify({ kind: 'error', ...explain(error), code: error.code }),
  });
  const closeInvite = h('button', { type: 'button', class: 'link' }, 'Close');
  const invitePanel = h('div', { class: 'panel invite-panel', hidden: true },
    picker.element, inviteStatus, closeInvite);

  // Leave asks first, inline (a native confirm() would block the page and its socket).
  const confirmLeave = h('button', { type: 'button', class: 'danger' }, 'Leave the discussion');
  const cancelLeave = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
  const leavePanel = h('div', { class: 'panel leave-panel', hidden: true, role: 'group', 'aria-label': 'Confirm leaving' },
    h('p', {}, 'Leave this discussion? You will keep what was said until now, but receive nothing after. Only a teacher or staff member can bring you back.'),
    h('div', { class: 'row' }, confirmLeave, cancelLeave));

  const olderButton = h('button', { type: 'button', class: 'link older' }, 'Load older messages');
  const list = h('ol', { class: 'messages', role: 'log', 'aria-label': 'Messages', 'aria-live': 'polite' });
  const scroller = h('div', { class: 'scroller', tabindex: '0', 'aria-label': 'Conversation' }, olderButton, list);
  const typingLine = h('p', { class: 'typing', 'aria-live': 'polite' });
  const windowNote = h('p', { class: 'window-note', hidden: true });

  const textarea = h('textarea', {
    id: composerId, rows: '2', maxlength: '8000', required: true,
    placeholder: 'Write a message (Enter to send, Shift+Enter for a new line)',
  });
  const sendButton = h('button', { type: 'submit' }, 'Send');
  const composer = h('form', { class: 'composer', 'aria-label': 'Write a message' },
    h('label', { for: composerId, class: 'sr-only' }, 'Message'), textarea, sendButton);
  // Said before typing when a post would be refused (§8.4): the server's reason, in words.
  const postNote = h('p', { class: 'post-note', role: 'status', hidden: true });
  const leftNote = h('p', { class: 'left-note', hidden: true },
    'You left this discussion. You can still read what was said while you were here.');

  const element = h('section', { class: 'conversation', 'aria-labelledby': titleId },
    h('header', { class: 'conv-head' },
      h('a', { href: '#/', class: 'back' }, '‹ Discussions'),
      title, people, actions),
    invitePanel, leavePanel, scroller, typingLine, windowNote, postNote, composer, leftNote);

  // An unknown discussion, or one this user never took part in (a stale or shared
  // link): once the server says so, a clear page replaces the view, without composer.
  const body = [...element.childNodes];
  const missingTitleId = nextId('missing-title');
  const missingTitle = h('h2', { id: missingTitleId, tabindex: '-1' }, 'Discussion introuvable');
  const missing = [
    h('a', { href: '#/', class: 'back' }, '‹ Discussions'),
    missingTitle,
    h('p', { class: 'missing-reason' },
      'Cette discussion n’existe pas, ou vous n’y participez pas. Si quelqu’un vous en a donné le lien, demandez-lui de vous y inviter.'),
    h('p', {}, h('a', { href: '#/', class: 'button missing-back' }, 'Retour à mes discussions')),
  ];
  let shownMissing = false;
  let probing = false;
  function showMissing(on) {
    if (on === shownMissing) return;
    shownMissing = on;
    element.classList.toggle('missing', on);
    element.setAttribute('aria-labelledby', on ? missingTitleId : titleId);
    replace(element, on ? missing : body);
    if (on) setTitle('Discussion introuvable · Préau');
  }
  // Others' read positions (receipts) come with a history reply: ask on opening and after
  // each reconnection, since the live read events before then were not seen here.
  function fetchReads() {
    if (d() && chat.connection && chat.connection.isOpen) chat.refreshReads(id).catch(() => {});
  }
  async function probe() {
    if (d() || probing || shownMissing || !chat.connection || !chat.connection.isOpen) return;
    probing = true;
    try {
      await chat.connection.request({ type: 'history', discussion: id, limit: 1 });
    } catch (error) {
      if (error.code === 'not_participant' && !d()) {
        showMissing(true);
        if (element.contains(document.activeElement) || document.activeElement === document.body) missingTitle.focus();
      }
    } finally {
      probing = false;
    }
  }

  // ------------------------------------------------------------------ rendering

  function renderHead() {
    const disc = d();
    if (!disc) return;
    title.textContent = disc.subject || 'Discussion';
    const others = disc.participants.filter((p) => p.id !== me().id);
    replace(people, 'With ', others.length === 0 ? 'nobody else' : others.map((p, i) => [
      i ? ', ' : '',
      h('span', { class: `participant${p.present ? '' : ' gone'}${chat.online.has(p.id) ? ' online' : ''}`, title: personDetail(p) },
        personName(p), p.present ? '' : ' (left)'),
    ]));
    const present = chat.isPresent(disc);
    const role = me().role;
    inviteButton.hidden = !present || !(role === 'teacher' || role === 'staff');
    leaveButton.hidden = !present;
    if (!present) { invitePanel.hidden = true; leavePanel.hidden = true; }
    composer.hidden = !present;
    leftNote.hidden = present;
  }

  function readers(disc, seq) {
    return disc.participants
      .filter((p) => p.present && p.id !== me().id && (disc.reads.get(p.id) || 0) >= seq)
      .map((p) => personName(p));
  }

  function messageItem(m, lastMine, disc) {
    const mine = m.sender === me().id;
    let status = '';
    if (mine && m.seq === lastMine) {
      const who = readers(disc, m.seq);
      status = who.length ? `Read by ${who.join(', ')}` : 'Sent';
    }
    return {
      key: `s${m.seq}`,
      version: status,
      render: () => h('li', { class: `message${mine ? ' mine' : ''}`, dataset: { seq: String(m.seq) } },
        h('div', { class: 'meta' },
          h('span', { class: 'sender' }, mine ? 'You' : personName(chat.person(m.sender), m.sender)),
          ' ',
          h('time', { datetime: m.at }, formatTime(m.at))),
        h('p', { class: 'body' }, linkify(m.body)),
        status ? h('p', { class: 'status' }, status) : null),
    };
  }

  function pendingItem(entry) {
    const status = entry.state === 'held'
      ? `Will be delivered at ${formatOpening(entry.held_until)}`
      : entry.state === 'acked' ? 'Sent' : chat.connection && chat.connection.isOpen ? 'Sending…' : 'Waiting for the connection…';
    return {
      key: `c${entry.client_id}`,
      version: status,
      render: () => h('li', { class: `message mine pending${entry.state === 'held' ? ' held' : ''}`, dataset: { clientId: entry.client_id } },
        h('div', { class: 'meta' }, h('span', { class: 'sender' }, 'You')),
        h('p', { class: 'body' }, linkify(entry.body)),
        h('p', { class: 'status' }, status)),
    };
  }

  function renderMessages({ keepBottom = false } = {}) {
    const disc = d();
    if (!disc) return;
    const distance = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight;
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    const atBottom = distance < 60;
    const msgs = chat.messages(id);
    const lastMine = Math.max(0, ...msgs.filter((m) => m.sender === me().id).map((m) => m.seq));
    const items = msgs.map((m) => messageItem(m, lastMine, disc));
    for (const entry of chat.pending(id)) {
      if (!disc.msgs.has(entry.seq)) items.push(pendingItem(entry));
    }
    reconcile(list, items);
    olderButton.hidden = !chat.canLoadOlder(disc);
    if (atBottom || keepBottom) scroller.scrollTop = scroller.scrollHeight;
    else scroller.scrollTop = scroller.scrollHeight - fromBottom; // older ones were added above
    if (document.visibilityState === 'visible') chat.markRead(id);
  }

  let typingTimer = null;
  function renderTyping() {
    const disc = d();
    if (!disc) return;
    const who = chat.typingNow(disc).map((u) => personName(chat.person(u), u));
    typingLine.textContent = who.length === 0 ? ''
      : `${who.join(', ')} ${who.length === 1 ? 'is' : 'are'} typing…`;
    clearTimeout(typingTimer);
    if (who.length) typingTimer = setTimeout(renderTyping, 1000);
  }

  function renderWindow() {
    const w = chat.window;
    const closed = w && !w.open;
    windowNote.hidden = !closed;
    if (closed) {
      // The school decides whether a message sent now is refused or held for the
      // opening; a non-administrator cannot know which, so the reply says it.
      const until = w.opens_at ? ` until ${formatOpening(w.opens_at)}` : ' at this hour';
      windowNote.textContent = `Discussions are closed${until}. You can read; a message sent now is refused or held for the opening, as the school chose.`;
    }
  }

  function renderPost() {
    const status = chat.postStatus(id);
    const disc = d();
    // A participant who left sees the left note instead; unknown yet: leave it open.
    const refused = Boolean(status && !status.allowed && disc && chat.isPresent(disc));
    postNote.hidden = !refused;
    postNote.textContent = refused ? explain(status).title : '';
    // Closed hours lift by themselves: the user may still write a draft for the opening
    // (a send then is refused and the text kept). Any other refusal closes the composer.
    const closed = refused && status.code !== 'outside_hours';
    textarea.disabled = closed;
    sendButton.disabled = closed;
    composer.classList.toggle('refused', closed);
    // Closed hours are then said by the post note itself, with the opening.
    if (refused && status.code === 'outside_hours') windowNote.hidden = true;
  }

  // ------------------------------------------------------------------ behaviour

  let loadingOlder = false;
  async function loadOlder() {
    if (loadingOlder || !chat.canLoadOlder(d())) return;
    loadingOlder = true;
    olderButton.disabled = true;
    olderButton.textContent = 'Loading…';
    try {
      await chat.loadOlder(id);
    } catch (error) {
      notify({ kind: 'error', ...explain(error), code: error.code });
    } finally {
      loadingOlder = false;
      olderButton.disabled = false;
      olderButton.textContent = 'Load older messages';
    }
  }

  olderButton.addEventListener('click', loadOlder);
  scroller.addEventListener('scroll', () => {
    if (scroller.scrollTop < OLDER_THRESHOLD) loadOlder();
  });

  inviteButton.addEventListener('click', () => {
    invitePanel.hidden = !invitePanel.hidden;
    leavePanel.hidden = true;
    if (!invitePanel.hidden) { picker.refresh(); picker.focus(); }
  });
  closeInvite.addEventListener('click', () => { invitePanel.hidden = true; inviteButton.focus(); });
  leaveButton.addEventListener('click', () => {
    leavePanel.hidden = !leavePanel.hidden;
    invitePanel.hidden = true;
    if (!leavePanel.hidden) confirmLeave.focus();
  });
  cancelLeave.addEventListener('click', () => { leavePanel.hidden = true; leaveButton.focus(); });
  confirmLeave.addEventListener('click', async () => {
    try {
      await chat.leave(id);
      leavePanel.hidden = true;
      notify({ kind: 'info', title: 'You left the discussion.' });
    } catch (error) {
      notify({ kind: 'error', ...explain(error), code: error.code });
    }
  });

  textarea.value = chat.drafts.get(id) || '';
  textarea.addEventListener('input', () => {
    chat.setDraft(id, textarea.value);
    if (textarea.value.trim()) chat.typing(id);
  });
  textarea.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      composer.requestSubmit();
    }
  });
  composer.addEventListener('submit', (event) => {
    event.preventDefault();
    const body = textarea.value;
    if (!body.trim()) return;
    // The text leaves the composer for the outbox; if the server refuses it,
    // the Chat puts it back in the draft (the 'draft' event below).
    textarea.value = '';
    chat.setDraft(id, '');
    chat.sendMessage(id, body);
    renderMessages({ keepBottom: true });
    textarea.focus();
  });

  // ------------------------------------------------------------------ wiring

  const listeners = {
    discussion: (e) => {
      if (e.detail.id !== id) return;
      showMissing(false); // invited meanwhile
      renderHead();
      renderPost();
      renderMessages();
      if (e.detail.message) renderTyping();
    },
    outbox: () => renderMessages(),
    // Opened before the connection was up (a reload, a link): fetch some context now.
    list: () => { renderHead(); renderMessages(); ensureContext(); probe(); },
    welcome: () => { renderMessages(); probe(); fetchReads(); },
    typing: (e) => { if (e.detail.id === id) renderTyping(); },
    presence: () => renderHead(),
    window: () => { renderWindow(); renderPost(); },
    post: (e) => { if (e.detail.id === id) renderPost(); },
    draft: (e) => {
      if (e.detail.id !== id) return;
      textarea.value = e.detail.text;
      textarea.focus();
    },
  };
  for (const [type, fn] of Object.entries(listeners)) chat.addEventListener(type, fn);
  const onVisible = () => { if (document.visibilityState === 'visible') chat.markRead(id); };
  document.addEventListener('visibilitychange', onVisible);

  renderHead();
  renderWindow();
  renderPost();
  renderMessages({ keepBottom: true });
  renderTyping();
  function ensureContext() {
    const disc = d();
    if (disc && disc.msgs.size < MIN_CONTEXT && chat.canLoadOlder(disc)) loadOlder();
  }
  ensureContext();
  probe();
  fetchReads();

  return {
    element,
    focus: () => (shownMissing ? missingTitle : composer.hidden ? title : textarea).focus(),
    destroy() {
      for (const [type, fn] of Object.entries(listeners)) chat.removeEventListener(type, fn);
      document.removeEventListener('visibilitychange', onVisible);
      clearTimeout(typingTimer);
    },
  };
}
