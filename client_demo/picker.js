// A searchable list of the people I may write to, fed by GET /api/contacts.
//
// The server applies the gatekeeper's rules (G1–G5) to that list, so the app
// never offers someone who would be refused; it does not reimplement the rules.

import { api } from './api.js';
import { debounce, h, nextId, replace } from './dom.js';
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
 */
export function contactPicker({ label, action, exclude, onPick, onError }) {
  const inputId = nextId('contact-q');
  const listId = nextId('contact-results');
  const input = h('input', {
    id: inputId, type: 'search', autocomplete: 'off', 'aria-controls': listId,
    placeholder: t('picker.placeholder'),
  });
  const status = h('p', { class: 'picker-status', role: 'status' });
  const list = h('ul', { id: listId, class: 'picker-results', 'aria-label': t('picker.found') });
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
    if (!append) replace(list);
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
    const shown = list.children.length;
    status.textContent = shown === 0
      ? (q ? t('picker.noMatch', { q }) : t('picker.none'))
      : q ? tn('picker.match', page.total, { q }) : tn('picker.total', page.total);
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
    h('label', { for: inputId }, label), input, status, list, more);
  load(false);
  return {
    element,
    focus: () => input.focus(),
    refresh: () => load(false),
  };
}
