// One discussion: its messages (live, with scroll-back), who is in it, who is
// typing, read receipts, the composer, and the invite/leave actions.

import { contactPicker } from './picker.js';
import { h, linkify, nextId, reconcile, replace } from './dom.js';
import { setTitle } from './tabbadge.js';
import { personLabel } from './people.js';
import { explain, formatOpening, formatTime, personDetail, personName } from './text.js';
import { register, t } from './i18n.js';

register({
  fr: {
    'conv.loading': 'Chargement…',
    'conv.invite': 'Inviter',
    'conv.leave': 'Quitter',
    'conv.inviteLabel': 'Inviter quelqu’un',
    'conv.invited': '{name} a été invité(e).',
    'conv.close': 'Fermer',
    'conv.leaveConfirm': 'Quitter la discussion',
    'conv.cancel': 'Annuler',
    'conv.leaveGroup': 'Confirmer le départ',
    'conv.leaveQuestion': 'Quitter cette discussion ? Vous garderez ce qui a été dit jusqu’ici, mais ne recevrez plus rien ensuite. Seul un enseignant ou un membre du personnel peut vous y ramener.',
    'conv.older': 'Charger les messages précédents',
    'conv.messages': 'Messages',
    'conv.conversation': 'Conversation',
    'conv.placeholder': 'Écrire un message (Entrée pour envoyer, Maj+Entrée pour aller à la ligne)',
    'conv.send': 'Envoyer',
    'conv.write': 'Écrire un message',
    'conv.message': 'Message',
    'conv.leftNote': 'Vous avez quitté cette discussion. Vous pouvez toujours lire ce qui a été dit pendant que vous y étiez.',
    'conv.back': '‹ Discussions',
    'conv.missing': 'Discussion introuvable',
    'conv.missingTitle': 'Discussion introuvable · Préau',
    'conv.missingReason': 'Cette discussion n’existe pas, ou vous n’y participez pas. Si quelqu’un vous en a donné le lien, demandez-lui de vous y inviter.',
    'conv.missingBack': 'Retour à mes discussions',
    'conv.discussion': 'Discussion',
    'conv.with': 'Avec ',
    'conv.nobody': 'personne d’autre',
    'conv.left': ' (parti)',
    'conv.readBy': 'Lu par {names}',
    'conv.sent': 'Envoyé',
    'conv.you': 'Vous',
    'conv.heldUntil': 'Sera remis {when}',
    'conv.sending': 'Envoi…',
    'conv.waiting': 'En attente de la connexion…',
    'conv.typing.one': '{names} écrit…',
    'conv.typing.other': '{names} écrivent…',
    'conv.closedUntil': 'Les discussions sont fermées jusqu’à {when}. Vous pouvez lire ; un message envoyé maintenant est refusé ou mis en attente jusqu’à l’ouverture, selon le choix de l’établissement.',
    'conv.closedNow': 'Les discussions sont fermées à cette heure. Vous pouvez lire ; un message envoyé maintenant est refusé ou mis en attente jusqu’à l’ouverture, selon le choix de l’établissement.',
    'conv.youLeft': 'Vous avez quitté la discussion.',
  },
  en: {
    'conv.loading': 'Loading…',
    'conv.invite': 'Invite',
    'conv.leave': 'Leave',
    'conv.inviteLabel': 'Invite someone',
    'conv.invited': '{name} was invited.',
    'conv.close': 'Close',
    'conv.leaveConfirm': 'Leave the discussion',
    'conv.cancel': 'Cancel',
    'conv.leaveGroup': 'Confirm leaving',
    'conv.leaveQuestion': 'Leave this discussion? You will keep what was said until now, but receive nothing after. Only a teacher or staff member can bring you back.',
    'conv.older': 'Load older messages',
    'conv.messages': 'Messages',
    'conv.conversation': 'Conversation',
    'conv.placeholder': 'Write a message (Enter to send, Shift+Enter for a new line)',
    'conv.send': 'Send',
    'conv.write': 'Write a message',
    'conv.message': 'Message',
    'conv.leftNote': 'You left this discussion. You can still read what was said while you were here.',
    'conv.back': '‹ Discussions',
    'conv.missing': 'Discussion not found',
    'conv.missingTitle': 'Discussion not found · Préau',
    'conv.missingReason': 'This discussion does not exist, or you are not in it. If someone gave you its link, ask them to invite you.',
    'conv.missingBack': 'Back to my discussions',
    'conv.discussion': 'Discussion',
    'conv.with': 'With ',
    'conv.nobody': 'nobody else',
    'conv.left': ' (left)',
    'conv.readBy': 'Read by {names}',
    'conv.sent': 'Sent',
    'conv.you': 'You',
    'conv.heldUntil': 'Will be delivered at {when}',
    'conv.sending': 'Sending…',
    'conv.waiting': 'Waiting for the connection…',
    'conv.typing.one': '{names} is typing…',
    'conv.typing.other': '{names} are typing…',
    'conv.closedUntil': 'Discussions are closed until {when}. You can read; a message sent now is refused or held for the opening, as the school chose.',
    'conv.closedNow': 'Discussions are closed at this hour. You can read; a message sent now is refused or held for the opening, as the school chose.',
    'conv.youLeft': 'You left the discussion.',
  },
});

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

  const title = h('h2', { id: titleId, class: 'conv-subject', tabindex: '-1' }, t('conv.loading'));
  const people = h('p', { class: 'conv-people' });
  const inviteButton = h('button', { type: 'button', class: 'secondary', dataset: { action: 'invite' } }, t('conv.invite'));
  const leaveButton = h('button', { type: 'button', class: 'secondary', dataset: { action: 'leave' } }, t('conv.leave'));
  const actions = h('div', { class: 'conv-actions' }, inviteButton, leaveButton);

  // Invite panel: the contacts of the teacher/staff member (G7 = G5 from the inviter).
  const inviteStatus = h('p', { class: 'sr-status', role: 'status' });
  const picker = contactPicker({
    label: t('conv.inviteLabel'),
    action: t('conv.invite'),
    exclude: () => new Set((d()?.participants || []).filter((p) => p.present).map((p) => p.id)),
    onPick: async (person) => {
      try {
        await chat.invite(id, person.id);
        inviteStatus.textContent = t('conv.invited', { name: person.name });
      } catch (error) {
        notify({ kind: 'error', ...explain(error), code: error.code });
      }
    },
    onError: (error) => notify({ kind: 'error', ...explain(error), code: error.code }),
  });
  const closeInvite = h('button', { type: 'button', class: 'link' }, t('conv.close'));
  const invitePanel = h('div', { class: 'panel invite-panel', hidden: true },
    picker.element, inviteStatus, closeInvite);

  // Leave asks first, inline (a native confirm() would block the page and its socket).
  const confirmLeave = h('button', { type: 'button', class: 'danger', dataset: { action: 'leave-confirm' } }, t('conv.leaveConfirm'));
  const cancelLeave = h('button', { type: 'button', class: 'secondary' }, t('conv.cancel'));
  const leavePanel = h('div', { class: 'panel leave-panel', hidden: true, role: 'group', 'aria-label': t('conv.leaveGroup') },
    h('p', {}, t('conv.leaveQuestion')),
    h('div', { class: 'row' }, confirmLeave, cancelLeave));

  const olderButton = h('button', { type: 'button', class: 'link older' }, t('conv.older'));
  const list = h('ol', { class: 'messages', role: 'log', 'aria-label': t('conv.messages'), 'aria-live': 'polite' });
  const scroller = h('div', { class: 'scroller', tabindex: '0', 'aria-label': t('conv.conversation') }, olderButton, list);
  const typingLine = h('p', { class: 'typing', 'aria-live': 'polite' });
  const windowNote = h('p', { class: 'window-note', hidden: true });

  const textarea = h('textarea', {
    id: composerId, rows: '2', maxlength: '8000', required: true,
    placeholder: t('conv.placeholder'),
  });
  const sendButton = h('button', { type: 'submit' }, t('conv.send'));
  const composer = h('form', { class: 'composer', 'aria-label': t('conv.write') },
    h('label', { for: composerId, class: 'sr-only' }, t('conv.message')), textarea, sendButton);
  // Said before typing when a post would be refused (§8.4): the server's reason, in words.
  const postNote = h('p', { class: 'post-note', role: 'status', hidden: true });
  const leftNote = h('p', { class: 'left-note', hidden: true }, t('conv.leftNote'));

  const element = h('section', { class: 'conversation', 'aria-labelledby': titleId },
    h('header', { class: 'conv-head' },
      h('a', { href: '#/', class: 'back' }, t('conv.back')),
      title, people, actions),
    invitePanel, leavePanel, scroller, typingLine, windowNote, postNote, composer, leftNote);

  // An unknown discussion, or one this user never took part in (a stale or shared
  // link): once the server says so, a clear page replaces the view, without composer.
  const body = [...element.childNodes];
  const missingTitleId = nextId('missing-title');
  const missingTitle = h('h2', { id: missingTitleId, tabindex: '-1' }, t('conv.missing'));
  const missing = [
    h('a', { href: '#/', class: 'back' }, t('conv.back')),
    missingTitle,
    h('p', { class: 'missing-reason' }, t('conv.missingReason')),
    h('p', {}, h('a', { href: '#/', class: 'button missing-back' }, t('conv.missingBack'))),
  ];
  let shownMissing = false;
  let probing = false;
  function showMissing(on) {
    if (on === shownMissing) return;
    shownMissing = on;
    element.classList.toggle('missing', on);
    element.setAttribute('aria-labelledby', on ? missingTitleId : titleId);
    replace(element, on ? missing : body);
    if (on) setTitle(t('conv.missingTitle'));
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
    title.textContent = disc.subject || t('conv.discussion');
    const others = disc.participants.filter((p) => p.id !== me().id);
    // A parent is named with their children (« Claire André, mère de Léa André (6e A) »):
    // then the names are set apart with semicolons, the commas being inside the names.
    const labels = others.map((p) => personLabel(p));
    const separator = labels.some((l) => l.includes(',')) ? '; ' : ', ';
    replace(people, t('conv.with'), others.length === 0 ? t('conv.nobody') : others.map((p, i) => [
      i ? separator : '',
      h('span', { class: `participant${p.present ? '' : ' gone'}${chat.online.has(p.id) ? ' online' : ''}`, title: personDetail(p) },
        labels[i], p.present ? '' : t('conv.left')),
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
      status = who.length ? t('conv.readBy', { names: who.join(', ') }) : t('conv.sent');
    }
    return {
      key: `s${m.seq}`,
      version: status,
      render: () => h('li', { class: `message${mine ? ' mine' : ''}`, dataset: { seq: String(m.seq) } },
        h('div', { class: 'meta' },
          h('span', { class: 'sender' }, mine ? t('conv.you') : personName(chat.person(m.sender), m.sender)),
          ' ',
          h('time', { datetime: m.at }, formatTime(m.at))),
        h('p', { class: 'body' }, linkify(m.body)),
        status ? h('p', { class: 'status' }, status) : null),
    };
  }

  function pendingItem(entry) {
    const status = entry.state === 'held'
      ? t('conv.heldUntil', { when: formatOpening(entry.held_until) })
      : entry.state === 'acked' ? t('conv.sent') : chat.connection && chat.connection.isOpen ? t('conv.sending') : t('conv.waiting');
    return {
      key: `c${entry.client_id}`,
      version: status,
      render: () => h('li', { class: `message mine pending${entry.state === 'held' ? ' held' : ''}`, dataset: { clientId: entry.client_id } },
        h('div', { class: 'meta' }, h('span', { class: 'sender' }, t('conv.you'))),
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
      : t(who.length === 1 ? 'conv.typing.one' : 'conv.typing.other', { names: who.join(', ') });
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
      windowNote.textContent = w.opens_at ? t('conv.closedUntil', { when: formatOpening(w.opens_at) }) : t('conv.closedNow');
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
    olderButton.textContent = t('conv.loading');
    try {
      await chat.loadOlder(id);
    } catch (error) {
      notify({ kind: 'error', ...explain(error), code: error.code });
    } finally {
      loadingOlder = false;
      olderButton.disabled = false;
      olderButton.textContent = t('conv.older');
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
      notify({ kind: 'info', title: t('conv.youLeft') });
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
