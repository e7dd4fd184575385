// The app's words, French first and English second.
//
// Every sentence shown to people comes from a catalogue: `t('key', {name: …})`.
// A feature keeps its own strings beside its code and registers them once, at import:
//
//     register({
//       fr: { 'search.placeholder': 'Rechercher dans mes discussions' },
//       en: { 'search.placeholder': 'Search my discussions' },
//     });
//
// so that two features never edit the same file to add words. French is the
// reference: a key missing in English falls back to French, and a key missing in
// both shows the key itself (a bug the browser tests catch).

export const LANGUAGES = ['fr', 'en'];
// The conventions of dates and numbers for each language: French of France, and
// British English (24-hour times, day before month), never the US 12-hour clock.
const LOCALES = { fr: 'fr-FR', en: 'en-GB' };
const STORAGE_KEY = 'preau.language';
const catalogues = { fr: {}, en: {} };
const listeners = new Set();

function fromBrowser() {
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    if (LANGUAGES.includes(saved)) return saved;
  } catch (_) { /* storage refused (private mode): fall through */ }
  for (const tag of navigator.languages || [navigator.language || 'fr']) {
    const base = String(tag).toLowerCase().split('-')[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return 'fr';
}

let current = fromBrowser();
document.documentElement.lang = current;

/** The language in use: 'fr' or 'en'. */
export function language() {
  return current;
}

/** The Intl locale of the language in use: 'fr-FR' or 'en-GB'. */
export function locale() {
  return LOCALES[current];
}

/** Switch language (the user's choice is remembered), then tell the listeners to redraw. */
export function setLanguage(lang) {
  if (!LANGUAGES.includes(lang) || lang === current) return;
  current = lang;
  document.documentElement.lang = lang;
  try { localStorage.setItem(STORAGE_KEY, lang); } catch (_) { /* not remembered */ }
  for (const listener of listeners) listener(lang);
}

/** Call `listener(lang)` after each switch; returns a function that stops it. */
export function onLanguage(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Add a feature's words: `{fr: {key: text}, en: {key: text}}`. */
export function register(words) {
  for (const lang of LANGUAGES) Object.assign(catalogues[lang], words[lang] || {});
}

/** Every registered string, for the browser tests (no English word on a French page). */
export function catalogue(lang) {
  return { ...catalogues[lang] };
}

/** The text for `key` in the current language, `{name}` replaced from `params`. */
export function t(key, params = {}) {
  const text = catalogues[current][key] ?? catalogues.fr[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/**
 * A count in words: `tn('people', 3)` reads the key 'people.one' or 'people.other'
 * with `{n}` (French: 0 and 1 are singular, English: only 1).
 */
export function tn(key, n, params = {}) {
  const form = new Intl.PluralRules(LOCALES[current]).select(Number(n) || 0) === 'one' ? 'one' : 'other';
  return t(`${key}.${form}`, { n, ...params });
}
