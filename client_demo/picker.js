// A searchable list of the people I may write to, fed by GET /api/contacts.
//
// The server applies the gatekeeper's rules (G1–G5) to that list, so the app
// never offers someone who would be refused; it does not reimplement the rules.

import { api } from './api.js';
import { debounce, h, nextId, replace } from './dom.js';
import { groupCounts, groupKey, groupLabel } from './groups.js';
import { personDetail } from './text.js';
import { register, t, tn } from './i18n.js';

register({
  fr: {
    'picker.placeholder': 'Nom, rôle ou classe',
    'picker.found': 'Personnes trouvées',
    'picker.more': 'Afficher plus',
    'picker.searching': 'Recherche…',
    'picker.noMatch': 'Personne à qui vous pouvez écrire ne correspond à « {q} ».',
    'picker.none': 'Personne à proposer.',
    'picker.total.one': '{n} personne à qui vous pouvez écrire.',
    'picker.total.other': '{n} personnes à qui vous pouvez écrire.',
    'picker.match.one': '{n} personne à qui vous pouvez écrire correspond à « {q} ».',
    'picker.match.other': '{n} personnes à qui vous pouvez écrire correspondent à « {q} ».',
  },
  en: {
    'picker.placeholder': 'Name, role or class',
    'picker.found': 'People found',
    'picker.more': 'Show more',
    'picker.searching': 'Searching…',
    'picker.noMatch': 'No one you may write to matches “{q}”.',
    'picker.none': 'No one to offer.',
    'picker.total.one': '{n} person you may write to.',
    'picker.total.other': '{n} people you may write to.',
    'picker.match.one': '{n} person you may write to matches “{q}”.',
    'picker.match.other': '{n} people you may write to match “{q}”.',
  },
});

const PAGE = 20;

/**
 * @param {object} options
 * @param {string} options.label            the search field's label
 * @param {string} options.action           verb on each button: "Add", "Invite"
 * @param {() => Set<string>} options.exclude  ids not to offer (already chosen, present)
 * @param {(person) => void} options.onPick
 * @param {(error) => void} options.onError  a refusal of /api/contacts (cannot_initiate…)
 * @param {(group) => void} [options.onPickGroup]  offer the groups of classes too (a start)
 * @param {() => Set<string>} [options.excludeGroups]  group keys not to offer (chosen)
 */
export function contactPicker({ label, action, exclude, onPick, onError, onPickGroup, excludeGroups }) {
  const inputId = nextId('contact-q');
  const listId = nextId('contact-results');
  const input = h('input', {
    id: inputId, type: 'search', autocomplete: 'off', 'aria-controls': listId,
    placeholder: t('picker.placeholder'),
  });
  const status = h('p', { class: 'picker-status', role: 'status' });
  const list = h('ul', { id: listId, class: 'picker-results', 'aria-label': t('picker.found') });
  const groupList = h('ul', { class: 'picker-results picker-groups', 'aria-label': t('group.heading'), hidden: true });
  const more = h('button', { type: 'button', class: 'link', hidden: true }, t('picker.more'));
  let cursor = null;
  let generation = 0; // answers to an older query are ignored

  async function load(append) {
    const mine = ++generation;
    const q = input.value.trim();
    status.textContent = t('picker.searching');
    let page;
    try {
      page = await api('/api/contacts', { params: { q, limit: PAGE, cursor: append ? cursor : null } });
    } catch (error) {
      if (mine !== generation) return;
      status.textContent = '';
      replace(list);
      more.hidden = true;
      onError(error);
      return;
    }
    if (mine !== generation) return;
    cursor = page.next_cursor;
    const skip = exclude();
    const people = page.items.filter((p) => !skip.has(p.id));
    if (!append) {
      replace(list);
      renderGroups(page.groups || []);
    }
    for (const person of people) {
      const detail = personDetail(person);
      list.append(h('li', {},
        h('button', {
          type: 'button', class: 'person-button', dataset: { user: person.id },
          'aria-label': `${action} ${person.name}${detail ? `, ${detail}` : ''}`,
          onclick: () => { onPick(person); load(false); },
        }, h('span', { class: 'person-name' }, person.name), h('span', { class: 'person-detail' }, detail))));
    }
    more.hidden = !cursor;
    const shown = list.children.length + groupList.children.length;
    status.textContent = shown === 0
      ? (q ? t('picker.noMatch', { q }) : t('picker.none'))
      : q ? tn('picker.match', page.total, { q }) : tn('picker.total', page.total);
  }

  // « Parents de 6e A — 27 inclus, 1 exclu (messagerie désactivée) »: what naming the
  // group would reach if the discussion started now (the start expands it again).
  function renderGroups(groups) {
    const skip = excludeGroups ? excludeGroups() : new Set();
    const shown = onPickGroup ? groups.filter((g) => !skip.has(groupKey(g))) : [];
    replace(groupList, shown.map((group) => {
      const name = groupLabel(group);
      const counts = groupCounts(group);
      return h('li', {},
        h('button', {
          type: 'button', class: 'person-button group-button', dataset: { group: groupKey(group) },
          'aria-label': `${t('group.add', { group: name })}, ${counts}`,
          onclick: () => { onPickGroup(group); load(false); },
        }, h('span', { class: 'person-name' }, name), h('span', { class: 'person-detail' }, counts)));
    }));
    groupList.hidden = shown.length === 0;
  }

  const search = debounce(() => load(false), 200);
  input.addEventListener('input', search);
  input.addEventListener('keydown', (event) => {
    // Enter in the search field picks the only result instead of submitting the form.
    if (event.key === 'Enter') {
      event.preventDefault();
      const buttons = list.querySelectorAll('button');
      if (buttons.length === 1) buttons[0].click();
    }
  });
  more.addEventListener('click', () => load(true));

  const element = h('div', { class: 'picker' },
    h('label', { for: inputId }, label), input, status, groupList, list, more);
  load(false);
  return {
    element,
    focus: () => input.focus(),
    refresh: () => load(false),
  };
}
