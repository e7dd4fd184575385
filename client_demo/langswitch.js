// The FR | EN switch of the header and of the sign-in page. Each language is named
// in itself ("Français", "English"), as a reader who does not know the other one
// looks for it; the choice is remembered by i18n.js and the app redraws in place.

import { h } from './dom.js';
import { LANGUAGES, language, register, setLanguage, t } from './i18n.js';

register({
  fr: { 'lang.switch': 'Langue' },
  en: { 'lang.switch': 'Language' },
});

const NAMES = { fr: 'Français', en: 'English' };

/** A small group of two buttons; the current language is pressed. */
export function languageSwitch() {
  const current = language();
  return h('div', { class: 'lang-switch', role: 'group', 'aria-label': t('lang.switch') },
    LANGUAGES.map((lang, i) => [
      i ? h('span', { class: 'lang-sep', 'aria-hidden': 'true' }, '|') : null,
      h('button', {
        type: 'button', class: 'lang-button', lang, title: NAMES[lang], 'aria-label': NAMES[lang],
        'aria-pressed': String(lang === current), dataset: { lang },
        onclick: () => setLanguage(lang),
      }, lang.toUpperCase()),
    ]));
}
