// The app shell: sign-in, then the header (connection indicator, window state,
// navigation), the banners, and the routed main area:
//   #/              my discussions
//   #/d/<id>        one discussion
//   #/new[?to=ids]  start a discussion
//   #/settings      the administrator's page
//   #/b, #/b/<id>   information messages and polls ("Informations & sondages")
//   #/b/new         write one (when GET /api/broadcasts/audience allows it)
//   #/prefs         a parent's preferences, a teacher's « Qui peut me contacter »
//   #/me            everyone's own settings (« Mes réglages », mysettings.js: the name
//                   in the header leads there)
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
import { personLabel } from './people.js';
import { preferencesView } from './preferences.js';
import { Connection } from './protocol.js';
import { settingsView } from './settings.js';
import { finishEnt, signOutOfEnt } from './ent.js';
import { contactPreferencesView, mySettingsView } from './mysettings.js';
import { searchPanel } from './search.js';
import { signInView } from './signin.js';
import { setTitle, setUnread } from './tabbadge.js';
import { explain, formatOpening, formatTime, personName, setTimeZone } from './text.js';
import { language, onLanguage, register, t } from './i18n.js';
import { languageSwitch } from './langswitch.js';

register({
  fr: {
    'app.sessionEnded': 'Votre session a pris fin : reconnectez-vous.',
    'app.retry': 'Réessayer',
    'app.signInTitle': 'Connexion · Préau',
    'app.nav': 'Navigation principale',
    'app.nav.discussions': 'Discussions',
    'app.nav.broadcasts': 'Informations & sondages',
    'app.nav.prefs': 'Mes préférences',
    'app.nav.settings': 'Réglages',
    'app.signOut': 'Se déconnecter',
    'app.skip': 'Aller au contenu',
    'app.dismiss': 'Fermer',
    'app.conn.connecting': 'Connexion…',
    'app.conn.open': 'Connecté',
    'app.conn.waiting': 'Reconnexion dans {s} s…',
    'app.conn.stopped': 'Hors ligne',
    'app.closedByServer': 'Le serveur a fermé la connexion.',
    'app.window.closedUntil': 'Fermé jusqu’à {when}',
    'app.window.closed': 'Fermé',
    'app.window.nowClosedUntil': 'Les discussions sont maintenant fermées. Elles rouvrent {when}.',
    'app.window.nowClosed': 'Les discussions sont maintenant fermées.',
    'app.window.open': 'Les discussions sont rouvertes : vous pouvez écrire.',
    'app.refused.send': 'Votre message n’a pas été envoyé : il est revenu dans la zone de saisie.',
    'app.refused.start': 'La discussion « {subject} » n’a pas été créée.',
    'app.refused.dropped': 'Un message mis en attente jusqu’à l’ouverture n’a pas été remis. {title}',
    'app.newBadge': ' nouveau(x)',
    'app.reminder': 'Rappel de {name} : « {title} ».',
    'app.notPublished': '« {title} » n’a pas été publié. {reason}',
    'app.notPublishedUntitled': 'Une information ou un sondage programmé n’a pas été publié. {reason}',
    'app.title.settings': 'Réglages · Préau',
    'app.title.prefs': 'Mes préférences · Préau',
    'app.title.compose': 'Nouvelle information ou nouveau sondage',
    'app.title.broadcasts': 'Informations & sondages',
    'app.title.discussion': 'Discussion',
    'app.title.new': 'Nouvelle discussion · Préau',
    'app.title.list': 'Discussions · Préau',
    'app.choose': 'Choisissez une discussion, ou commencez-en une nouvelle.',
    'app.myDiscussions': 'Mes discussions',
    'app.held': 'En attente de création',
    'app.newDiscussion': 'Nouvelle discussion',
    'app.cannotStart': 'Vous pouvez répondre dans les discussions, mais pas en commencer une.',
    'app.sidebar': 'Discussions',
    'app.empty': 'Aucune discussion pour l’instant.',
    'app.more': 'Plus de discussions',
    'app.access.check': 'Vérifier à nouveau',
    'app.access.checking': 'Vérification…',
    'app.access.title': 'Les discussions ne sont pas disponibles',
    'app.access.explain': 'C’est l’administrateur de l’établissement qui en décide. Rien de ce que vous avez écrit n’est perdu : vos discussions reviennent quand l’accès est rétabli.',
    'app.you': 'Vous',
    // French puts a (no-break) space before the colon.
    'app.preview': '{who}\u00a0: {body}',
    'app.left': '(parti) {preview}',
    'app.unread': ' non lu(s)',
    'app.heldUntil': 'Sera remis {when}',
    'app.starting': 'Création…',
    'app.waiting': 'En attente de la connexion…',
  },
  en: {
    'app.sessionEnded': 'Your session has ended: sign in again.',
    'app.retry': 'Try again',
    'app.signInTitle': 'Sign in · Préau',
    'app.nav': 'Main',
    'app.nav.discussions': 'Discussions',
    'app.nav.broadcasts': 'Information & polls',
    'app.nav.prefs': 'My preferences',
    'app.nav.settings': 'Settings',
    'app.signOut': 'Sign out',
    'app.skip': 'Skip to content',
    'app.dismiss': 'Dismiss',
    'app.conn.connecting': 'Connecting…',
    'app.conn.open': 'Connected',
    'app.conn.waiting': 'Reconnecting in {s} s…',
    'app.conn.stopped': 'Offline',
    'app.closedByServer': 'The connection was closed by the server.',
    'app.window.closedUntil': 'Closed until {when}',
    'app.window.closed': 'Closed',
    'app.window.nowClosedUntil': 'Discussions are now closed. They open again at {when}.',
    'app.window.nowClosed': 'Discussions are now closed.',
    'app.window.open': 'Discussions are open again: you can send.',
    'app.refused.send': 'Your message was not sent: it is back in the composer.',
    'app.refused.start': 'The discussion “{subject}” was not started.',
    'app.refused.dropped': 'A message held for the opening was not delivered. {title}',
    'app.newBadge': ' new',
    'app.reminder': 'Reminder from {name}: “{title}”.',
    'app.notPublished': '“{title}” was not published. {reason}',
    'app.notPublishedUntitled': 'A scheduled information or poll was not published. {reason}',
    'app.title.settings': 'Settings · Préau',
    'app.title.prefs': 'My preferences · Préau',
    'app.title.compose': 'New information or poll',
    'app.title.broadcasts': 'Information & polls',
    'app.title.discussion': 'Discussion',
    'app.title.new': 'New discussion · Préau',
    'app.title.list': 'Discussions · Préau',
    'app.choose': 'Choose a discussion, or start a new one.',
    'app.myDiscussions': 'My discussions',
    'app.held': 'Waiting to be started',
    'app.newDiscussion': 'New discussion',
    'app.cannotStart': 'You may reply in discussions but not start one.',
    'app.sidebar': 'Discussions',
    'app.empty': 'No discussion yet.',
    'app.more': 'More discussions',
    'app.access.check': 'Check again',
    'app.access.checking': 'Checking…',
    'app.access.title': 'Discussions are not available',
    'app.access.explain': 'The school’s administrator decides this. Nothing you wrote is lost: your discussions come back when access is given again.',
    'app.you': 'You',
    'app.preview': '{who}: {body}',
    'app.left': '(left) {preview}',
    'app.unread': ' unread',
    'app.heldUntil': 'Will be delivered at {when}',
    'app.starting': 'Starting…',
    'app.waiting': 'Waiting for the connection…',
  },
});

const root = document.getElementById('app');
const MAX_BANNERS = 4;
const INFO_BANNER_MS = 10_000;

let session = null; // {me, chat, connection, …} while signed in
let signInMessage = ''; // the catalogue key of why the sign-in page is shown

// A switch of language redraws what is on screen, in place: the header and the
// current screen (drafts live in the Chat and the Board, so nothing typed is lost
// in a discussion or a broadcast being written).
onLanguage(() => {
  if (session) session.redraw();
  else if (!getToken()) showSignIn(signInMessage);
  else boot(signInMessage);
});

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
      return showSignIn('app.sessionEnded');
    }
    replace(root, h('section', { class: 'signin' },
      h('h1', {}, 'Préau'),
      h('p', { role: 'alert' }, explain(error).title),
      h('button', { type: 'button', onclick: () => boot() }, t('app.retry'))));
    return undefined;
  }
  return startSession(me);
}

/** The sign-in page; `message` is the catalogue key of why (session ended…), or ''. */
async function showSignIn(message) {
  signInMessage = message || '';
  setUnread(0);
  setTitle(t('app.signInTitle'));
  const view = await signInView({ message: message ? t(message) : '', onSignedIn: () => boot() });
  replace(root, h('main', { id: 'main', class: 'signin-page' }, h('div', { class: 'signin-lang' }, languageSwitch()), view));
  const first = root.querySelector('input, textarea');
  if (first) first.focus();
}

function wsUrl() {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
}

// ---------------------------------------------------------------------- session

function startSession(me) {
  setTimeZone(me.school && me.school.timezone);
  const chat = new Chat({ me: me.user, storageKey: `preau.chat.${me.school.id}.${me.user.id}` });
  chat.window = me.window;
  chat.readOnly = !me.window.open;
  const board = new Board({ me: me.user, storageKey: `preau.broadcasts.${me.school.id}.${me.user.id}` });

  const conn = h('span', { class: 'conn', role: 'status', 'aria-live': 'polite' });
  const windowChip = h('span', { class: 'window-chip', hidden: true });
  const broadcastBadge = h('span', { class: 'unread nav-badge', hidden: true });
  const nav = h('nav');
  const signOut = h('button', { type: 'button', class: 'secondary small sign-out' });
  const skip = h('a', { href: '#main', class: 'skip' });
  const switchBox = h('span', { class: 'lang-box' });
  // One's name leads to « Mes réglages » (mysettings.js): what applies to me.
  const meLink = h('a', { class: 'me-name', href: '#/me', dataset: { route: 'me' } }, me.user.name);
  // The words of the header, drawn again on a switch of language.
  function renderShell() {
    nav.setAttribute('aria-label', t('app.nav'));
    replace(nav,
      h('a', { href: '#/', dataset: { route: 'list' } }, t('app.nav.discussions')),
      h('a', { href: '#/b', dataset: { route: 'broadcasts' } }, t('app.nav.broadcasts'), broadcastBadge),
      me.user.role === 'parent' ? h('a', { href: '#/prefs', dataset: { route: 'prefs' } }, t('app.nav.prefs')) : null,
      me.user.role === 'teacher' ? h('a', { href: '#/prefs', dataset: { route: 'prefs' } }, t('prefs.nav')) : null,
      me.admin ? h('a', { href: '#/settings', dataset: { route: 'settings' } }, t('app.nav.settings')) : null);
    signOut.textContent = t('app.signOut');
    meLink.title = t('me.nav');
    skip.textContent = t('app.skip');
    replace(switchBox, languageSwitch());
  }
  renderShell();
  const banners = h('div', { class: 'banners', 'aria-live': 'polite' });
  const main = h('main', { id: 'main', tabindex: '-1' });
  const header = h('header', { class: 'topbar' },
    h('div', { class: 'brand' }, h('span', { class: 'logo', 'aria-hidden': 'true' }, 'P'),
      h('span', { class: 'brand-text' }, h('strong', {}, 'Préau'), h('span', { class: 'school' }, me.school.name))),
    nav,
    h('div', { class: 'status-area' }, windowChip, conn),
    h('div', { class: 'me' }, meLink, switchBox, signOut));
  replace(root, skip, header, banners, main);

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
    h('button', { type: 'button', class: 'banner-close', 'aria-label': t('app.dismiss'), onclick: () => banner.remove() }, '×'));
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

  let lastStatus = { state: 'connecting' };
  function renderConn() {
    const status = lastStatus;
    const labels = {
      connecting: t('app.conn.connecting'),
      open: t('app.conn.open'),
      waiting: t('app.conn.waiting', { s: Math.max(1, Math.round((status.retryIn || 0) / 1000)) }),
      stopped: t('app.conn.stopped'),
    };
    conn.textContent = labels[status.state] || status.state;
    conn.dataset.state = status.state;
  }
  function onStatus(status) {
    lastStatus = status;
    renderConn();
    if (status.state === 'stopped' && status.code) {
      if (status.code === 'unauthenticated') {
        endSession('app.sessionEnded');
      } else if (status.code === 'discussions_disabled' || status.code === 'profile_disabled') {
        lostAccess({ code: status.code, message: status.message });
      } else {
        notify({ kind: 'error', title: t('app.closedByServer'), detail: status.message || '', code: status.code });
      }
    }
    if (status.state === 'open' || status.state === 'stopped') renderList();
  }

  function renderWindow(changed) {
    const w = chat.window;
    const closed = w && !w.open;
    windowChip.hidden = !closed;
    windowChip.textContent = closed ? (w.opens_at ? t('app.window.closedUntil', { when: formatOpening(w.opens_at) }) : t('app.window.closed')) : '';
    if (!changed) return;
    if (closed) {
      notify({ kind: 'info', code: 'window', title: w.opens_at
        ? t('app.window.nowClosedUntil', { when: formatOpening(w.opens_at) })
        : t('app.window.nowClosed') });
    } else {
      notify({ kind: 'info', code: 'window', title: t('app.window.open') });
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
    if (entry && entry.kind === 'send') more = t('app.refused.send');
    else if (entry && entry.kind === 'start') more = t('app.refused.start', { subject: entry.subject });
    notify({
      kind: 'error', code: error.code,
      title: dropped ? t('app.refused.dropped', { title: what.title }) : what.title,
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
    replace(broadcastBadge, String(n), h('span', { class: 'sr-only' }, t('app.newBadge')));
  }
  board.addEventListener('change', () => { renderBroadcastBadge(); renderUnread(); });
  board.addEventListener('list', () => { renderBroadcastBadge(); renderUnread(); });
  board.addEventListener('reminder', (e) => {
    const { id, title, author } = e.detail;
    const route = parseRoute();
    if (route.name === 'broadcast' && route.id === id) return; // it is open: the page says it
    notify({ kind: 'info', code: 'broadcast_reminder', title: t('app.reminder', { name: personName(author), title }) });
  });
  board.addEventListener('dropped', (e) => {
    const b = board.get(e.detail.id);
    const what = explain(e.detail);
    notify({
      kind: 'error', code: e.detail.code,
      title: b ? t('app.notPublished', { title: b.title, reason: what.title })
        : t('app.notPublishedUntitled', { reason: what.title }),
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

  session.redraw = () => {
    renderShell();
    renderConn();
    renderWindow(false);
    renderBroadcastBadge();
    renderRoute();
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
  if (parts[0] === 'me') return { name: 'me' };
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
  const section = { settings: 'settings', prefs: 'prefs', me: 'me', broadcasts: 'broadcasts', broadcast: 'broadcasts', compose: 'broadcasts' }[route.name] || 'list';
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.route === section) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }

  if (route.name === 'settings' && me.admin) {
    setTitle(t('app.title.settings'));
    session.view = settingsView({ me, notify });
    replace(main, session.view.element);
    return;
  }
  if (route.name === 'me' || (route.name === 'prefs' && me.user.role === 'teacher')) {
    setTitle(`${t(route.name === 'me' ? 'me.title' : 'prefs.title')} · Préau`);
    session.view = (route.name === 'me' ? mySettingsView : contactPreferencesView)({ me, notify });
    replace(main, session.view.element);
    return;
  }
  if (route.name === 'prefs') {
    setTitle(t('app.title.prefs'));
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
    setTitle(`${route.name === 'compose' ? t('app.title.compose') : b ? b.title : t('app.title.broadcasts')} · Préau`);
    session.view = broadcastsView({ board: session.board, me, route, notify });
    replace(main, session.view.element);
    if (route.name !== 'broadcasts') session.view.focus();
    return;
  }

  if (route.name === 'discussion') {
    session.view = conversationView({ chat, id: route.id, notify });
    const d = chat.discussions.get(route.id);
    setTitle(`${d ? d.subject : t('app.title.discussion')} · Préau`);
  } else if (route.name === 'new') {
    session.view = newDiscussionView({
      chat, me, to: route.to, notify, onStarted: (id) => { location.hash = `#/d/${id}`; },
    });
    setTitle(t('app.title.new'));
  } else {
    setTitle(t('app.title.list'));
  }
  const pane = session.view ? session.view.element
    : h('div', { class: 'empty-pane' }, h('p', {}, t('app.choose')));

  session.list = h('ul', { class: 'discussion-list', 'aria-label': t('app.myDiscussions') });
  session.heldList = h('ul', { class: 'held-list', 'aria-label': t('app.held') });
  const newButton = me.can_start
    ? h('a', { href: '#/new', class: 'button new-button' }, t('app.newDiscussion'))
    : h('p', { class: 'hint' }, t('app.cannotStart'));
  const sidebar = h('aside', { class: 'sidebar', 'aria-label': t('app.sidebar') },
    h('div', { class: 'sidebar-head' }, h('h2', {}, t('app.myDiscussions')), newButton),
    searchPanel(me),
    session.heldList, session.list, h('p', { class: 'list-empty', hidden: true }, t('app.empty')),
    session.moreButton = h('button', { type: 'button', class: 'more-discussions', hidden: true }, t('app.more')));
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
  const check = h('button', { type: 'button' }, t('app.access.check'));
  const status = h('p', { role: 'status' });
  check.addEventListener('click', async () => {
    status.textContent = t('app.access.checking');
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
    h('h2', { id: 'access-title' }, t('app.access.title')),
    h('p', { class: 'access-reason' }, title),
    access.message && access.message !== title ? h('p', { class: 'access-detail' }, access.message) : null,
    h('p', {}, t('app.access.explain')),
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
    const preview = last ? t('app.preview', { who: mine ? t('app.you') : personLabel(chat.person(last.sender), last.sender), body: last.body }) : '';
    const active = route.name === 'discussion' && route.id === d.id;
    const version = [d.subject, preview, unread, present, active, last && last.at, language()].join('|');
    return {
      key: `d${d.id}`,
      version,
      render: () => h('li', { class: `discussion-item${unread ? ' has-unread' : ''}${present ? '' : ' gone'}` },
        h('a', { href: `#/d/${d.id}`, 'aria-current': active ? 'page' : null, dataset: { discussion: String(d.id) } },
          h('span', { class: 'item-top' },
            h('span', { class: 'item-subject' }, d.subject || t('app.title.discussion')),
            last ? h('time', { datetime: last.at }, formatTime(last.at)) : null),
          h('span', { class: 'item-bottom' },
            h('span', { class: 'item-preview' }, present ? preview : t('app.left', { preview })),
            // The count is in the link's name too ("3 unread"), not only a coloured badge.
            unread ? h('span', { class: 'unread' }, String(unread), h('span', { class: 'sr-only' }, t('app.unread'))) : null))),
    };
  });
  reconcile(session.list, items);
  const starts = chat.pendingStarts();
  replace(session.heldList, starts.map((e) => h('li', { class: 'held-item' },
    h('span', { class: 'item-subject' }, e.subject),
    h('span', { class: 'item-preview' }, e.state === 'held'
      ? t('app.heldUntil', { when: formatOpening(e.held_until) })
      : chat.connection.isOpen ? t('app.starting') : t('app.waiting')))));
  const empty = session.list.parentElement && session.list.parentElement.querySelector('.list-empty');
  if (empty) empty.hidden = items.length > 0 || starts.length > 0;
  if (session.moreButton) session.moreButton.hidden = !chat.listNext;
}

boot();
