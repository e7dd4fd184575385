// "Mes préférences": a parent's choice to take part in messaging between
// parents (`parent_messaging_opt_in`, GET/PATCH /api/me/preferences, see
// docs/api.md "My preferences"). A class delegate's information messages and
// polls reach only the parents who opted in.

import { api } from './api.js';
import { h, nextId, replace } from './dom.js';
import { explain } from './text.js';
import { register, t } from './i18n.js';

register({
  fr: {
    'prefs.title': 'Mes préférences',
    'prefs.loading': 'Chargement…',
    'prefs.nothing': 'Rien à régler ici pour votre profil.',
    'prefs.saving': 'Enregistrement…',
    'prefs.savedOn': 'Enregistré : vous participez à la messagerie entre parents.',
    'prefs.savedOff': 'Enregistré : vous ne participez pas à la messagerie entre parents.',
    'prefs.notSaved': 'Non enregistré.',
    'prefs.legend': 'Messagerie entre parents',
    'prefs.optIn': 'Je participe à la messagerie entre parents',
    'prefs.hint': 'Si l’établissement le permet, les délégués des parents des classes de vos enfants peuvent alors vous envoyer des informations et des sondages, et les autres parents qui y participent peuvent vous écrire. Sinon, vous ne recevez rien des autres parents.',
    'prefs.loadFailed': 'Vos préférences n’ont pas pu être chargées.',
  },
  en: {
    'prefs.title': 'My preferences',
    'prefs.loading': 'Loading…',
    'prefs.nothing': 'Nothing to set here for your profile.',
    'prefs.saving': 'Saving…',
    'prefs.savedOn': 'Saved: you take part in messaging between parents.',
    'prefs.savedOff': 'Saved: you do not take part in messaging between parents.',
    'prefs.notSaved': 'Not saved.',
    'prefs.legend': 'Messaging between parents',
    'prefs.optIn': 'I take part in messaging between parents',
    'prefs.hint': 'When the school allows it, the parents’ delegates of your children’s classes can then send you information messages and polls, and other parents who take part can write to you. Without it, you receive nothing from other parents.',
    'prefs.loadFailed': 'Your preferences could not be loaded.',
  },
});

export function preferencesView({ me, notify }) {
  const headingId = nextId('prefs-title');
  const heading = h('h2', { id: headingId, tabindex: '-1' }, t('prefs.title'));
  const body = h('div', { class: 'settings-form prefs-form' }, h('p', {}, t('prefs.loading')));
  const element = h('section', { class: 'settings preferences', 'aria-labelledby': headingId }, heading, body);

  function build(preferences) {
    if (me.user.role !== 'parent' || !('parent_messaging_opt_in' in preferences)) {
      replace(body, h('p', {}, t('prefs.nothing')));
      return;
    }
    const id = nextId('pref');
    const input = h('input', { id, type: 'checkbox', checked: preferences.parent_messaging_opt_in, dataset: { pref: 'parent_messaging_opt_in' } });
    const saved = h('p', { class: 'saved', role: 'status' });
    input.addEventListener('change', async () => {
      const value = input.checked;
      input.disabled = true;
      saved.textContent = t('prefs.saving');
      try {
        const reply = await api('/api/me/preferences', { method: 'PATCH', body: { parent_messaging_opt_in: value } });
        input.checked = Boolean(reply.preferences.parent_messaging_opt_in);
        saved.textContent = input.checked ? t('prefs.savedOn') : t('prefs.savedOff');
      } catch (error) {
        input.checked = !value;
        saved.textContent = t('prefs.notSaved');
        notify({ kind: 'error', ...explain(error), code: error.code });
      } finally {
        input.disabled = false;
      }
    });
    replace(body,
      h('fieldset', {}, h('legend', {}, t('prefs.legend')),
        h('div', { class: 'check' }, input, h('label', { for: id }, t('prefs.optIn'))),
        h('p', { class: 'hint' }, t('prefs.hint')),
        saved));
  }

  api('/api/me/preferences').then((reply) => build(reply.preferences)).catch((error) => {
    replace(body, h('p', {}, t('prefs.loadFailed')));
    notify({ kind: 'error', ...explain(error), code: error.code });
  });

  return { element, focus: () => heading.focus(), destroy() {} };
}
