// The app shell: sign-in, then the header (connection indicator, window state,
// navigation), the banners, and the routed main area:
//   #/              my discussions
//   #/d/<id>        one discussion
//   #/new[?to=ids]  start a discussion
//   #/settings      the administrator's page
//   #/b, #/b/<id>   information messages and polls ("Informations & sondages")
//   #/b/new         write one (when GET /api/broadcasts/audience allows it)
//   #/prefs         a parent's preferences ("Mes préférences")
// Routes live in the hash so that a reload reopens the same screen.

import {
  api, claimTab, clearToken, freshToken, getToken, logout, refreshCredentials,
} from './api.js';
import { Board } from './broadcasts.js';
import { broadcastsView } from './broadcastsview.js';
import { Chat } from './chat.js';
import { conversationView } from './conversation.js';
import { h, reconcile, replace } from './dom.js';
import { newDiscussionView } from './newdiscussion.js';
import { preferencesView } from './preferences.js';
import { Connection } from './protocol.js';
import { settingsView } from './settings.js';
import { finishEnt, signOutOfEnt } from './ent.js';
import { signInView } from './signin.js';
import { setTitle, setUnread } from './tabbadge.js';
import { explain, formatOpening, formatTime, personName } from './text.js';

const root = document.getElementById('app');
const MAX_BANNERS = 4;
const INFO_BANNER_MS = 10_000;

let session = null; // {me, chat, connection, …} while signed in

// ---------------------------------------------------------------------- start

async function boot(message) {
  await claimTab(); // a duplicated tab gives up the refresh token (api.js)
  const failed = await finishEnt();  // back from the ENT: ?code= or ?error=
  if (failed) return showSignIn(failed);
  if (!getToken()) return showSignIn(message);
  let me;
  try {
    me = await api('/api/me');
  } catch (error) {
    if (error.code === 'unauthenticated') {
      clearToken();
      return showSignIn('Your session has ended: sign in again.');
    }
    replace(root, h('section', { class: 'signin' },
      h('h1', {}, 'Préau'),
      h('p', { role: 'alert' }, explain(error).title),
      h('button', { type: 'button', onclick: () => boot() }, 'Try again')));
    return undefined;
  }
  return startSession(me);
}

async function showSignIn(message) {
  setUnread(0);
  setTitle('Sign in · Préau');
  const view = await signInView({ message, onSignedIn: () => boot() });
  replace(root, h('main', { id: 'main', class: 'signin-page' }, view));
  const first = root.querySelector('input, textarea');
  if (first) first.focus();
}

function wsUrl() {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
}

// ---------------------------------------------------------------------- session

function startSession(me) {
  const chat = new Chat({ me: me.user, storageKey: `preau.chat.${me.school.id}.${me.user.id}` });
  chat.window = me.window;
  chat.readOnly = !me.window.open;
  const board = new Board({ me: me.user, storageKey: `preau.broadcasts.${me.school.id}.${me.user.id}` });

  const conn = h('span', { class: 'conn', role: 'status', 'aria-live': 'polite' });
  const windowChip = h('span', { class: 'window-chip', hidden: true });
  const broadcastBadge = h('span', { class: 'unread nav-badge', hidden: true });
  const nav = h('nav', { 'aria-label': 'Main' },
    h('a', { href: '#/', dataset: { route: 'list' } }, 'Discussions'),
    h('a', { href: '#/b', dataset: { route: 'broadcasts' } }, 'Informations & sondages', broadcastBadge),
    me.user.role === 'parent' ? h('a', { href: '#/prefs', dataset: { route: 'prefs' } }, 'Mes préférences') : null,
    me.admin ? h('a', { href: '#/settings', dataset: { route: 'settings' } }, 'Settings') : null);
  const signOut = h('button', { type: 'button', class: 'secondary small' }, 'Sign out');
  const banners = h('div', { class: 'banners', 'aria-live': 'polite' });
  const main = h('main', { id: 'main', tabindex: '-1' });
  const header = h('header', { class: 'topbar' },
    h('div', { class: 'brand' }, h('span', { class: 'logo', 'aria-hidden': 'true' }, 'P'),
      h('span', { class: 'brand-text' }, h('strong', {}, 'Préau'), h('span', { class: 'school' }, me.school.name))),
    nav,
    h('div', { class: 'status-area' }, windowChip, conn),
    h('div', { class: 'me' }, h('span', { class: 'me-name', title: me.user.role }, me.user.name), signOut));
  replace(root, h('a', { href: '#main', class: 'skip' }, 'Skip to content'), header, banners, main);

  const connection = new Connection({
    url: wsUrl(),
    token: () => freshToken(), // refreshed first when about to expire
    refreshToken: () => refreshCredentials(), // on token_expiring
    resume: () => chat.resumePositions(),
    onFrame: (frame) => {
      chat.handleFrame(frame);
      board.handleFrame(frame); // broadcast events, and a fresh GET /api/broadcasts after each welcome
    },
    onStatus: (status) => onStatus(status),
  });
  chat.connection = connection;
  session = { me, chat, board, connection, main, banners, view: null, access: me.access.allowed ? null : me.access };

  // -- banners: every refusal, window change and access loss is said in words.
  function notify({ kind = 'info', title, detail = '', more = '', code = '' }) {
    const banner = h('div', {
      class: `banner banner-${kind}`, role: kind === 'error' ? 'alert' : 'status',
      dataset: { code: code || kind },
    },
    h('div', { class: 'banner-text' },
      h('p', { class: 'banner-title' }, title),
      detail ? h('p', { class: 'banner-detail' }, detail) : null,
      more ? h('p', { class: 'banner-more' }, more) : null),
    h('button', { type: 'button', class: 'banner-close', 'aria-label': 'Dismiss', onclick: () => banner.remove() }, '×'));
    if (kind === 'success') clearErrors(); // a later success makes an earlier refusal moot
    banners.prepend(banner);
    while (banners.children.length > MAX_BANNERS) banners.lastElementChild.remove();
    if (kind !== 'error') setTimeout(() => banner.remove(), INFO_BANNER_MS);
  }
  session.notify = notify;

  // Error banners belong to the action and the screen that caused them: a later
  // success, or going to another screen, takes them away (info banners time out).
  function clearErrors() {
    for (const banner of banners.querySelectorAll('.banner-error')) banner.remove();
  }

  function onStatus(status) {
    const labels = {
      connecting: 'Connecting…',
      open: 'Connected',
      waiting: `Reconnecting in ${Math.max(1, Math.round((status.retryIn || 0) / 1000))} s…`,
      stopped: 'Offline',
    };
    conn.textContent = labels[status.state] || status.state;
    conn.dataset.state = status.state;
    if (status.state === 'stopped' && status.code) {
      if (status.code === 'unauthenticated') {
        endSession('Your session has ended: sign in again.');
      } else if (status.code === 'discussions_disabled' || status.code === 'profile_disabled') {
        lostAccess({ code: status.code, message: status.message });
      } else {
        notify({ kind: 'error', title: 'The connection was closed by the server.', detail: status.message || '', code: status.code });
      }
    }
    if (status.state === 'open' || status.state === 'stopped') renderList();
  }

  function renderWindow(changed) {
    const w = chat.window;
    const closed = w && !w.open;
    windowChip.hidden = !closed;
    windowChip.textContent = closed ? (w.opens_at ? `Closed until ${formatOpening(w.opens_at)}` : 'Closed') : '';
    if (!changed) return;
    if (closed) {
      notify({ kind: 'info', code: 'window', title: w.opens_at
        ? `Discussions are now closed. They open again at ${formatOpening(w.opens_at)}.`
        : 'Discussions are now closed.' });
    } else {
      notify({ kind: 'info', code: 'window', title: 'Discussions are open again: you can send.' });
    }
  }

  function lostAccess(access) {
    // Said once: the `access` event comes first, then the close (4503) says it again.
    if (session.access && session.access.code === access.code) return;
    session.access = access;
    renderRoute();
    notify({ kind: 'error', ...explain(access), code: access.code });
  }

  chat.addEventListener('window', (e) => renderWindow(e.detail.changed));
  chat.addEventListener('access', (e) => lostAccess(e.detail));
  chat.addEventListener('refused', (e) => {
    const { entry, error, dropped, handled } = e.detail;
    if (handled) return; // the new-discussion form shows its own refusal
    const what = explain(error);
    let more = '';
    if (entry && entry.kind === 'send') more = 'Your message was not sent: it is back in the composer.';
    else if (entry && entry.kind === 'start') more = `The discussion “${entry.subject}” was not started.`;
    notify({
      kind: 'error', code: error.code,
      title: dropped ? `A message held for the opening was not delivered. ${what.title}` : what.title,
      detail: what.detail, more,
    });
  });
  chat.addEventListener('sent', clearErrors);
  for (const type of ['discussion', 'list', 'outbox', 'unread']) chat.addEventListener(type, () => renderListSoon());

  // The tab's title and icon: everything unread, discussions and broadcasts together.
  function renderUnread() {
    if (!session || session.chat !== chat) return;
    let n = board.unreadCount();
    for (const d of chat.discussions.values()) n += chat.unread(d);
    setUnread(n);
  }
  for (const type of ['discussion', 'list', 'unread', 'welcome']) chat.addEventListener(type, renderUnread);

  // Information messages and polls: the unread count in the navigation, and what to say.
  function renderBroadcastBadge() {
    const n = board.unreadCount();
    broadcastBadge.hidden = n === 0;
    replace(broadcastBadge, String(n), h('span', { class: 'sr-only' }, ' new'));
  }
  board.addEventListener('change', () => { renderBroadcastBadge(); renderUnread(); });
  board.addEventListener('list', () => { renderBroadcastBadge(); renderUnread(); });
  board.addEventListener('reminder', (e) => {
    const { id, title, author } = e.detail;
    const route = parseRoute();
    if (route.name === 'broadcast' && route.id === id) return; // it is open: the page says it
    notify({ kind: 'info', code: 'broadcast_reminder', title: `Reminder from ${personName(author)}: “${title}”.` });
  });
  board.addEventListener('dropped', (e) => {
    const b = board.get(e.detail.id);
    const what = explain(e.detail);
    notify({
      kind: 'error', code: e.detail.code,
      title: `${b ? `“${b.title}”` : 'A scheduled information or poll'} was not published. ${what.title}`,
      detail: what.detail,
    });
  });

  signOut.addEventListener('click', () => {
    logout(); // ends the session on the server: its other connections close too
    connection.stop();
    chat.forget();
    board.forget();
    endSession();
    signOutOfEnt(); // signed in with the ENT: sign out there too
  });
  // Save positions and outbox as the page goes away: the reload resumes from them.
  const save = () => chat.save();
  const onHashChange = () => { clearErrors(); renderRoute(); };
  window.addEventListener('hashchange', onHashChange);
  window.addEventListener('pagehide', save);
  session.cleanup = () => {
    window.removeEventListener('hashchange', onHashChange);
    window.removeEventListener('pagehide', save);
  };

  renderWindow(false);
  renderRoute();
  renderUnread(); // what was held before a reload counts at once
  if (me.access.allowed) connection.start();
}

function endSession(message) {
  if (session) {
    session.connection.stop();
    session.cleanup();
    if (session.view) session.view.destroy();
    session = null;
  }
  clearToken();
  location.hash = '';
  showSignIn(message);
}

// ---------------------------------------------------------------------- routes

function parseRoute() {
  const [path, query] = location.hash.replace(/^#/, '').split('?');
  const params = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean);
  if (parts[0] === 'd' && /^\d+$/.test(parts[1] || '')) return { name: 'discussion', id: Number(parts[1]) };
  if (parts[0] === 'new') {
    return { name: 'new', to: (params.get('to') || '').split(',').map((s) => s.trim()).filter(Boolean) };
  }
  if (parts[0] === 'settings') return { name: 'settings' };
  if (parts[0] === 'prefs') return { name: 'prefs' };
  if (parts[0] === 'b') {
    if (parts[1] === 'new') return { name: 'compose' };
    if (/^\d+$/.test(parts[1] || '')) return { name: 'broadcast', id: Number(parts[1]) };
    return { name: 'broadcasts' };
  }
  return { name: 'list' };
}

function renderRoute() {
  if (!session) return;
  const { me, chat, main, notify } = session;
  const route = parseRoute();
  if (session.view) session.view.destroy();
  session.view = null;
  const section = { settings: 'settings', prefs: 'prefs', broadcasts: 'broadcasts', broadcast: 'broadcasts', compose: 'broadcasts' }[route.name] || 'list';
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.route === section) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }

  if (route.name === 'settings' && me.admin) {
    setTitle('Settings · Préau');
    session.view = settingsView({ me, notify });
    replace(main, session.view.element);
    return;
  }
  if (route.name === 'prefs') {
    setTitle('Mes préférences · Préau');
    session.view = preferencesView({ me, notify });
    replace(main, session.view.element);
    return;
  }
  if (session.access) {
    setTitle('Préau');
    replace(main, accessView(session.access));
    return;
  }
  if (section === 'broadcasts') {
    const b = route.name === 'broadcast' ? session.board.get(route.id) : null;
    setTitle(`${route.name === 'compose' ? 'New information or poll' : b ? b.title : 'Informations & sondages'} · Préau`);
    session.view = broadcastsView({ board: session.board, me, route, notify });
    replace(main, session.view.element);
    if (route.name !== 'broadcasts') session.view.focus();
    return;
  }

  if (route.name === 'discussion') {
    session.view = conversationView({ chat, id: route.id, notify });
    const d = chat.discussions.get(route.id);
    setTitle(`${d ? d.subject : 'Discussion'} · Préau`);
  } else if (route.name === 'new') {
    session.view = newDiscussionView({
      chat, me, to: route.to, notify, onStarted: (id) => { location.hash = `#/d/${id}`; },
    });
    setTitle('New discussion · Préau');
  } else {
    setTitle('Discussions · Préau');
  }
  const pane = session.view ? session.view.element
    : h('div', { class: 'empty-pane' }, h('p', {}, 'Choose a discussion, or start a new one.'));

  session.list = h('ul', { class: 'discussion-list', 'aria-label': 'My discussions' });
  session.heldList = h('ul', { class: 'held-list', 'aria-label': 'Waiting to be started' });
  const newButton = me.can_start
    ? h('a', { href: '#/new', class: 'button new-button' }, 'New discussion')
    : h('p', { class: 'hint' }, 'You may reply in discussions but not start one.');
  const sidebar = h('aside', { class: 'sidebar', 'aria-label': 'Discussions' },
    h('div', { class: 'sidebar-head' }, h('h2', {}, 'My discussions'), newButton),
    session.heldList, session.list, h('p', { class: 'list-empty', hidden: true }, 'No discussion yet.'),
    session.moreButton = h('button', { type: 'button', class: 'more-discussions', hidden: true }, 'More discussions'));
  session.moreButton.addEventListener('click', () => {
    session.moreButton.disabled = true;
    chat.loadMoreDiscussions().catch(() => {}).finally(() => { session.moreButton.disabled = false; });
  });
  replace(main, h('div', { class: `chat-layout${route.name === 'list' ? '' : ' show-pane'}` }, sidebar,
    h('div', { class: 'pane' }, pane)));
  renderList();
  if (session.view && session.view.focus && route.name !== 'list') session.view.focus();
}

function accessView(access) {
  const check = h('button', { type: 'button' }, 'Check again');
  const status = h('p', { role: 'status' });
  check.addEventListener('click', async () => {
    status.textContent = 'Checking…';
    try {
      const me = await api('/api/me');
      if (me.access.allowed) {
        session.access = null;
        status.textContent = '';
        renderRoute();
        session.connection.start();
        return;
      }
      status.textContent = explain(me.access).title;
    } catch (error) {
      status.textContent = explain(error).title;
    }
  });
  const { title } = explain(access);
  return h('section', { class: 'access', 'aria-labelledby': 'access-title', dataset: { code: access.code || '' } },
    h('h2', { id: 'access-title' }, 'Discussions are not available'),
    h('p', { class: 'access-reason' }, title),
    access.message && access.message !== title ? h('p', { class: 'access-detail' }, access.message) : null,
    h('p', {}, 'The school’s administrator decides this. Nothing you wrote is lost: your discussions come back when access is given again.'),
    h('div', { class: 'row' }, check, status));
}

// ---------------------------------------------------------------------- discussion list

let listFrame = 0;
function renderListSoon() {
  if (listFrame) return;
  listFrame = requestAnimationFrame(() => { listFrame = 0; renderList(); });
}

function renderList() {
  if (!session || !session.list || !session.list.isConnected) return;
  const { chat } = session;
  const route = parseRoute();
  const items = chat.sortedDiscussions().map((d) => {
    const last = chat.lastMessage(d);
    const unread = chat.unread(d);
    const present = chat.isPresent(d);
    const mine = last && chat.me && last.sender === chat.me.id;
    const preview = last ? `${mine ? 'You' : personName(chat.person(last.sender), last.sender)}: ${last.body}` : '';
    const active = route.name === 'discussion' && route.id === d.id;
    const version = [d.subject, preview, unread, present, active, last && last.at].join('|');
    return {
      key: `d${d.id}`,
      version,
      render: () => h('li', { class: `discussion-item${unread ? ' has-unread' : ''}${present ? '' : ' gone'}` },
        h('a', { href: `#/d/${d.id}`, 'aria-current': active ? 'page' : null, dataset: { discussion: String(d.id) } },
          h('span', { class: 'item-top' },
            h('span', { class: 'item-subject' }, d.subject || 'Discussion'),
            last ? h('time', { datetime: last.at }, formatTime(last.at)) : null),
          h('span', { class: 'item-bottom' },
            h('span', { class: 'item-preview' }, present ? preview : `(left) ${preview}`),
            // The count is in the link's name too ("3 unread"), not only a coloured badge.
            unread ? h('span', { class: 'unread' }, String(unread), h('span', { class: 'sr-only' }, ' unread')) : null))),
    };
  });
  reconcile(session.list, items);
  const starts = chat.pendingStarts();
  replace(session.heldList, starts.map((e) => h('li', { class: 'held-item' },
    h('span', { class: 'item-subject' }, e.subject),
    h('span', { class: 'item-preview' }, e.state === 'held'
      ? `Will be delivered at ${formatOpening(e.held_until)}`
      : chat.connection.isOpen ? 'Starting…' : 'Waiting for the connection…'))));
  const empty = session.list.parentElement && session.list.parentElement.querySelector('.list-empty');
  if (empty) empty.hidden = items.length > 0 || starts.length > 0;
  if (session.moreButton) session.moreButton.hidden = !chat.listNext;
}

boot();
