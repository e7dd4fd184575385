// Search in my discussions: the box above the discussion list, and its results
// (GET /api/search, docs/protocol.md §5.11 and §6.9).
//
// The server finds only what I may read (my discussions, the messages history gives
// me). A result's snippet comes as plain-text pieces, the matched words marked: they
// become text nodes and <mark> elements, never markup (dom.js's safety rule).
//
// The panel outlives the sidebar, which is rebuilt at every route: opening a result
// keeps the results on screen. It belongs to one signed-in user: another user in
// this tab gets a new, empty panel.

import { api } from './api.js';
import { debounce, h, nextId, replace } from './dom.js';
import { onLanguage, register, t } from './i18n.js';
import { explain, formatTime } from './text.js';

register({
  fr: {
    'search.label': 'Rechercher dans mes discussions',
    'search.placeholder': 'Rechercher (sujet, personne, message)',
    'search.clear': 'Effacer la recherche',
    'search.searching': 'Recherche…',
    'search.none': 'Aucun résultat pour « {q} ».',
    'search.count': '{n} résultats pour « {q} »',
    'search.count.one': '1 résultat pour « {q} »',
    'search.more': 'Plus de résultats',
    'search.results': 'Résultats de la recherche',
    'search.short': 'Tapez au moins deux lettres.',
    'search.kind.message': 'Message',
    'search.kind.subject': 'Sujet',
    'search.kind.participant': 'Participant',
    'search.failed': 'La recherche a échoué.',
  },
  en: {
    'search.label': 'Search my discussions',
    'search.placeholder': 'Search (subject, person, message)',
    'search.clear': 'Clear the search',
    'search.searching': 'Searching…',
    'search.none': 'No result for “{q}”.',
    'search.count': '{n} results for “{q}”',
    'search.count.one': '1 result for “{q}”',
    'search.more': 'More results',
    'search.results': 'Search results',
    'search.short': 'Type at least two letters.',
    'search.kind.message': 'Message',
    'search.kind.subject': 'Subject',
    'search.kind.participant': 'Participant',
    'search.failed': 'The search failed.',
  },
});

const MIN_CHARS = 2; // the server's own minimum: a word of two letters or digits
const PAGE = 20;

let panel = null; // {owner, element}

/** The search panel of the signed-in user `me` (GET /api/me's reply). */
export function searchPanel(me) {
  const owner = `${me.school.id}/${me.user.id}`;
  if (!panel || panel.owner !== owner) panel = { owner, element: build() };
  return panel.element;
}

function build() {
  const inputId = nextId('search');
  const input = h('input', {
    id: inputId, type: 'search', class: 'search-input', autocomplete: 'off',
    maxlength: '100', dataset: { search: 'q' },
  });
  const label = h('label', { for: inputId, class: 'sr-only' });
  const clear = h('button', { type: 'button', class: 'secondary small search-clear', hidden: true });
  const status = h('p', { class: 'search-status', role: 'status', 'aria-live': 'polite' });
  const list = h('ul', { class: 'search-results' });
  const more = h('button', { type: 'button', class: 'secondary small search-more', hidden: true });
  const element = h('div', { class: 'search-panel', role: 'search' },
    h('div', { class: 'search-row' }, label, input, clear), status, list, more);

  let query = '';
  let next = null;
  let count = 0;
  let generation = 0; // answers to an older query are dropped

  function words() {
    label.textContent = t('search.label');
    input.placeholder = t('search.placeholder');
    clear.textContent = '×';
    clear.setAttribute('aria-label', t('search.clear'));
    list.setAttribute('aria-label', t('search.results'));
    more.textContent = t('search.more');
    for (const kind of list.querySelectorAll('.search-result')) {
      kind.querySelector('.search-kind').textContent = t(`search.kind.${kind.dataset.kind}`);
    }
  }

  function reset() {
    generation += 1;
    query = '';
    next = null;
    count = 0;
    list.replaceChildren();
    more.hidden = true;
    status.textContent = '';
    clear.hidden = input.value === '';
  }

  async function load(q, cursor) {
    const mine = generation;
    status.textContent = t('search.searching');
    more.disabled = true;
    try {
      const reply = await api('/api/search', { params: { q, cursor, limit: PAGE } });
      if (mine !== generation) return;
      for (const result of reply.results) list.append(item(result));
      count += reply.results.length;
      next = reply.next;
      more.hidden = !next;
      status.textContent = !count ? t('search.none', { q })
        : t(count === 1 ? 'search.count.one' : 'search.count', { n: count, q });
    } catch (error) {
      if (mine !== generation) return;
      status.textContent = `${t('search.failed')} ${explain(error).title}`;
    } finally {
      more.disabled = false;
    }
  }

  const run = debounce(() => {
    const q = input.value.trim();
    if (q === query) return;
    reset();
    if (q.length < MIN_CHARS) {
      if (q) status.textContent = t('search.short');
      return;
    }
    query = q;
    load(q, null);
  }, 250);

  input.addEventListener('input', () => { clear.hidden = input.value === ''; run(); });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') { input.value = ''; reset(); }
  });
  clear.addEventListener('click', () => { input.value = ''; reset(); input.focus(); });
  more.addEventListener('click', () => { if (next) load(query, next); });
  onLanguage(words);
  words();
  return element;
}

// Once the discussion is open, the message a result names is brought into view and
// marked, if it is among those loaded (the newest page): an older one is not hunted.
const TARGET_TRIES = 50;
function showMessage(seq) {
  let tries = 0;
  const timer = setInterval(() => {
    tries += 1;
    const found = document.querySelector(`.messages [data-seq="${seq}"]`);
    if (found) {
      for (const old of document.querySelectorAll('.search-target')) old.classList.remove('search-target');
      found.classList.add('search-target');
      found.scrollIntoView({ block: 'center' });
    }
    if (found || tries >= TARGET_TRIES) clearInterval(timer);
  }, 100);
}

function item(result) {
  const snippet = h('span', { class: 'search-snippet' },
    result.snippet.map((piece) => (piece.match ? h('mark', {}, piece.text) : piece.text)));
  return h('li', { class: 'search-result', dataset: { kind: result.kind } },
    h('a', {
      href: `#/d/${result.discussion}`,
      dataset: { discussion: String(result.discussion), seq: result.seq === null ? '' : String(result.seq) },
      onclick: () => { if (result.seq !== null) showMessage(result.seq); },
    },
    h('span', { class: 'item-top' },
      h('span', { class: 'item-subject' }, result.subject),
      h('time', { datetime: result.at }, formatTime(result.at))),
    h('span', { class: 'item-bottom' },
      h('span', { class: 'search-kind' }, t(`search.kind.${result.kind}`)), ' ', snippet)));
}
