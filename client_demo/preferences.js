// "Mes préférences": a parent's choice to take part in messaging between
// parents (`parent_messaging_opt_in`, GET/PATCH /api/me/preferences, see
// docs/api.md "My preferences"). A class delegate's information messages and
// polls reach only the parents who opted in.

import { api } from './api.js';
import { h, nextId, replace } from './dom.js';
import { explain } from './text.js';

export function preferencesView({ me, notify }) {
  const headingId = nextId('prefs-title');
  const heading = h('h2', { id: headingId, tabindex: '-1' }, 'Mes préférences');
  const body = h('div', { class: 'settings-form prefs-form' }, h('p', {}, 'Loading…'));
  const element = h('section', { class: 'settings preferences', 'aria-labelledby': headingId }, heading, body);

  function build(preferences) {
    if (me.user.role !== 'parent' || !('parent_messaging_opt_in' in preferences)) {
      replace(body, h('p', {}, 'Nothing to set here for your profile.'));
      return;
    }
    const id = nextId('pref');
    const input = h('input', { id, type: 'checkbox', checked: preferences.parent_messaging_opt_in, dataset: { pref: 'parent_messaging_opt_in' } });
    const saved = h('p', { class: 'saved', role: 'status' });
    input.addEventListener('change', async () => {
      const value = input.checked;
      input.disabled = true;
      saved.textContent = 'Saving…';
      try {
        const reply = await api('/api/me/preferences', { method: 'PATCH', body: { parent_messaging_opt_in: value } });
        input.checked = Boolean(reply.preferences.parent_messaging_opt_in);
        saved.textContent = input.checked ? 'Saved: you take part in messaging between parents.'
          : 'Saved: you do not take part in messaging between parents.';
      } catch (error) {
        input.checked = !value;
        saved.textContent = 'Not saved.';
        notify({ kind: 'error', ...explain(error), code: error.code });
      } finally {
        input.disabled = false;
      }
    });
    replace(body,
      h('fieldset', {}, h('legend', {}, 'Messaging between parents'),
        h('div', { class: 'check' }, input, h('label', { for: id }, 'I take part in messaging between parents')),
        h('p', { class: 'hint' },
          'When the school allows it, the parents’ delegates of your children’s classes can then send you information messages and polls, and other parents who take part can write to you. Without it, you receive nothing from other parents.'),
        saved));
  }

  api('/api/me/preferences').then((reply) => build(reply.preferences)).catch((error) => {
    replace(body, h('p', {}, 'Your preferences could not be loaded.'));
    notify({ kind: 'error', ...explain(error), code: error.code });
  });

  return { element, focus: () => heading.focus(), destroy() {} };
}
