// Signing in. In demo mode (GET /api/demo/users answers) anyone of the demo
// school can be picked, grouped by role and class and searchable; otherwise
// the user pastes a token (`preau token USER_ID` prints one).

import { api, demoToken, demoUsers, setToken } from './api.js';
import { h, nextId } from './dom.js';
import { register, t, tn } from './i18n.js';
import { explain } from './text.js';

register({
  fr: {
    'signin.title': 'Connexion à Préau',
    'signin.loading': 'Chargement…',
    'signin.admin': 'administrateur',
    'signin.teaches': 'enseigne en {classes}',
    'signin.parentOf': 'parent de {children}',
    'signin.search': 'Nom, rôle, classe, identifiant',
    'signin.noClass': 'Sans classe',
    'signin.shown.one': '{n} personne sur {total}.',
    'signin.shown.other': '{n} personnes sur {total}.',
    'signin.count.one': '{n} personne.',
    'signin.count.other': '{n} personnes.',
    'signin.demo': 'Démonstration de {school} : choisissez qui vous êtes. Chaque onglet peut être quelqu’un d’autre.',
    'signin.find': 'Trouver une personne',
    'signin.token': 'Votre jeton d’accès',
    'signin.tokenHint': 'Votre établissement vous donne un jeton. Il reste dans cet onglet seulement.',
    'signin.submit': 'Se connecter',
    'signin.checking': 'Vérification…',
    'signin.refused': 'Ce jeton a été refusé : {message}',
  },
  en: {
    'signin.title': 'Sign in to Préau',
    'signin.loading': 'Loading…',
    'signin.admin': 'administrator',
    'signin.teaches': 'teaches {classes}',
    'signin.parentOf': 'parent of {children}',
    'signin.search': 'Name, role, class, id',
    'signin.noClass': 'No class',
    'signin.shown.one': '{n} of {total} people.',
    'signin.shown.other': '{n} of {total} people.',
    'signin.count.one': '{n} person.',
    'signin.count.other': '{n} people.',
    'signin.demo': 'Demo of {school}: choose whom to be. Each tab can be someone else.',
    'signin.find': 'Find a person',
    'signin.token': 'Your access token',
    'signin.tokenHint': 'Your school gives you a token. It stays in this tab only.',
    'signin.submit': 'Sign in',
    'signin.checking': 'Checking…',
    'signin.refused': 'This token was refused: {message}',
  },
});

// The roles in the order a school thinks of them; their names are those of text.js.
const ROLES = [
  ['teacher', 'roles.teacher'],
  ['staff', 'roles.staff'],
  ['student', 'roles.student'],
  ['parent', 'roles.parent'],
];

/** Lower case, accents removed: "Hélène" is found with "helene". */
function fold(text) {
  return text.normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase();
}

/**
 * @param {object} options
 * @param {string} [options.message]      why we are here (session ended…)
 * @param {() => void} options.onSignedIn  called once a token is stored
 */
export async function signInView({ message, onSignedIn }) {
  const headingId = nextId('signin-title');
  const banner = h('p', { class: 'signin-message', role: 'alert', hidden: !message }, message || '');
  const section = h('section', { class: 'signin', 'aria-labelledby': headingId },
    h('h1', { id: headingId }, t('signin.title')), banner, h('p', {}, t('signin.loading')));

  let demo = null;
  try {
    demo = await demoUsers();
  } catch {
    demo = null; // not in demo mode (404), or several schools without ?school=
  }
  section.lastChild.remove();
  section.append(demo ? demoPicker(demo, banner, onSignedIn) : tokenForm(banner, onSignedIn));
  return section;
}

function describe(user, byId) {
  const parts = [];
  if (user.admin) parts.push(t('signin.admin'));
  if (user.role === 'teacher' && user.teaches.length) parts.push(t('signin.teaches', { classes: user.teaches.join(', ') }));
  if (user.role === 'parent' && user.children.length) {
    parts.push(t('signin.parentOf', { children: user.children.map((c) => (byId.get(c) || { name: c }).name).join(', ') }));
  }
  return parts.join(' · ');
}

function demoPicker(demo, banner, onSignedIn) {
  const byId = new Map(demo.users.map((u) => [u.id, u]));
  const searchId = nextId('who');
  const search = h('input', { id: searchId, type: 'search', autocomplete: 'off', placeholder: t('signin.search') });
  const count = h('p', { class: 'picker-status', role: 'status' });
  const rows = []; // [li, folded text, group elements]

  async function pick(user, button) {
    button.disabled = true;
    try {
      const { token } = await demoToken(user.id);
      setToken(token);
      onSignedIn();
    } catch (error) {
      button.disabled = false;
      banner.hidden = false;
      banner.textContent = explain(error).title;
    }
  }

  function personItem(user, groups) {
    const detail = describe(user, byId);
    const li = h('li', {},
      h('button', {
        type: 'button', class: 'person-button', dataset: { user: user.id },
        onclick: (event) => pick(user, event.currentTarget),
      },
      h('span', { class: 'person-name' }, user.name),
      h('span', { class: 'person-detail' }, [user.id, detail].filter(Boolean).join(' · '))));
    const text = fold([user.name, user.id, user.role, t(`role.${user.role}`), user.class ? user.class.name : '', user.class ? user.class.id : '', detail].join(' '));
    rows.push([li, text, groups]);
    return li;
  }

  const groupsEl = h('div', { class: 'groups' });
  for (const [role, label] of ROLES) {
    const users = demo.users.filter((u) => u.role === role);
    if (!users.length) continue;
    const group = h('details', { class: 'group', open: users.length <= 60 },
      h('summary', {}, `${t(label)} (${users.length})`));
    if (role === 'student') {
      // Students by class, as a school thinks of them.
      const classes = new Map();
      for (const u of users) {
        const key = u.class ? u.class.name : t('signin.noClass');
        if (!classes.has(key)) classes.set(key, []);
        classes.get(key).push(u);
      }
      for (const [name, members] of [...classes.entries()].sort(([a], [b]) => a.localeCompare(b))) {
        const sub = h('div', { class: 'class-group' }, h('h3', {}, name));
        const ul = h('ul', { class: 'people' });
        for (const u of members) ul.append(personItem(u, [group, sub]));
        sub.append(ul);
        group.append(sub);
      }
    } else {
      const ul = h('ul', { class: 'people' });
      for (const u of users) ul.append(personItem(u, [group]));
      group.append(ul);
    }
    groupsEl.append(group);
  }

  function filter() {
    const terms = fold(search.value.trim()).split(/\s+/).filter(Boolean);
    const visible = new Set();
    let shown = 0;
    for (const [li, text, groups] of rows) {
      const match = terms.every((t) => text.includes(t));
      li.hidden = !match;
      if (match) {
        shown += 1;
        for (const g of groups) visible.add(g);
      }
    }
    for (const [, , groups] of rows) {
      for (const g of groups) {
        g.hidden = !visible.has(g);
        if (terms.length && g.tagName === 'DETAILS' && visible.has(g)) g.open = true;
      }
    }
    count.textContent = terms.length ? tn('signin.shown', shown, { total: rows.length }) : tn('signin.count', rows.length);
  }
  search.addEventListener('input', filter);
  filter();

  return h('div', { class: 'demo-picker' },
    h('p', {}, t('signin.demo', { school: demo.school.name })),
    h('div', { class: 'field' }, h('label', { for: searchId }, t('signin.find')), search),
    count, groupsEl);
}

function tokenForm(banner, onSignedIn) {
  const id = nextId('token');
  const input = h('textarea', { id, rows: '4', required: true, spellcheck: 'false', autocomplete: 'off' });
  const status = h('p', { class: 'form-status', role: 'status' });
  const form = h('form', { class: 'token-form' },
    h('div', { class: 'field' }, h('label', { for: id }, t('signin.token')), input),
    h('p', { class: 'hint' }, t('signin.tokenHint')),
    h('div', { class: 'row' }, h('button', { type: 'submit' }, t('signin.submit')), status));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    status.textContent = t('signin.checking');
    try {
      await api('/api/me', { token });
    } catch (error) {
      status.textContent = '';
      if (error.code !== 'discussions_disabled' && error.code !== 'profile_disabled') {
        banner.hidden = false;
        banner.textContent = error.code === 'unauthenticated'
          ? t('signin.refused', { message: error.message })
          : explain(error).title;
        return;
      }
    }
    setToken(token);
    onSignedIn();
  });
  return form;
}
