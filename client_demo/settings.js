// The administrator's page (staff with admin: true): the school's settings,
// students' right to start discussions, and the audit log. Everything goes
// through the REST API (docs/api.md, "Administration"); the server validates,
// records each change and applies it at once to every connection.

import { api } from './api.js';
import { auditWords } from './auditwords.js';
import { debounce, h, nextId, replace } from './dom.js';
import { explain, formatFull } from './text.js';

function checkbox(label, checked, extra = {}) {
  const id = nextId('check');
  const input = h('input', { id, type: 'checkbox', checked, ...extra });
  return { input, element: h('div', { class: 'check' }, input, h('label', { for: id }, label)) };
}

function field(label, input) {
  const id = input.id || nextId('field');
  input.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), input);
}

export function settingsView({ me, notify }) {
  const headingId = nextId('settings-title');
  const status = h('p', { class: 'form-status', role: 'status' });
  const form = h('form', { class: 'settings-form', 'aria-label': 'School settings' }, h('p', {}, 'Loading…'));
  const audit = auditSection(notify);
  const students = studentsSection(notify, () => audit.reload());
  let current = null;

  const element = h('section', { class: 'settings', 'aria-labelledby': headingId },
    h('h2', { id: headingId, tabindex: '-1' }, `Settings of ${me.school.name}`),
    form, students.element, audit.element);

  function build(settings) {
    current = settings;
    const enabled = checkbox('Discussions are on for the whole school', settings.discussions_enabled);
    const parents = checkbox('Parents may write to each other (delegates and parents who opted in)', settings.parent_messaging_enabled);
    const hoursOn = checkbox('Only between these hours', settings.hours.enabled);
    const start = h('input', { type: 'time', value: settings.hours.start, required: true });
    const end = h('input', { type: 'time', value: settings.hours.end, required: true });
    const outside = h('select', {},
      h('option', { value: 'refuse', selected: settings.hours.outside === 'refuse' }, 'Refuse them (the writer keeps the message)'),
      h('option', { value: 'defer', selected: settings.hours.outside === 'defer' }, 'Hold them and deliver at the opening'));
    const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
    const zoneList = nextId('zones');
    const timezone = h('input', { type: 'text', value: settings.timezone, list: zoneList, required: true, autocomplete: 'off' });
    const profiles = Object.entries(settings.profiles).sort(([a], [b]) => a.localeCompare(b))
      .map(([id, p]) => ({ id, ...checkbox(`Profile “${id}”: discussions on`, p.discussions_enabled, { dataset: { profile: id } }) }));
    const save = h('button', { type: 'submit' }, 'Save the settings');
    const reset = h('button', { type: 'button', class: 'secondary', onclick: () => build(current) }, 'Undo my changes');

    replace(form,
      h('fieldset', {}, h('legend', {}, 'Discussions'), enabled.element, parents.element),
      h('fieldset', {}, h('legend', {}, 'Allowed hours'),
        hoursOn.element,
        h('div', { class: 'row' }, field('From', start), field('Until', end)),
        field('Messages written outside the hours', outside),
        field('Time zone of the hours', timezone),
        h('datalist', { id: zoneList }, zones.map((z) => h('option', { value: z })))),
      h('fieldset', {}, h('legend', {}, 'Profiles'),
        h('p', { class: 'hint' }, 'A profile switched off can neither connect nor receive anything.'),
        profiles.map((p) => p.element)),
      h('div', { class: 'row' }, save, reset, status));

    form.onsubmit = async (event) => {
      event.preventDefault();
      // Send only what changed: each change is an audit entry.
      const patch = {};
      if (enabled.input.checked !== settings.discussions_enabled) patch.discussions_enabled = enabled.input.checked;
      if (parents.input.checked !== settings.parent_messaging_enabled) patch.parent_messaging_enabled = parents.input.checked;
      const hours = {};
      if (hoursOn.input.checked !== settings.hours.enabled) hours.enabled = hoursOn.input.checked;
      if (start.value !== settings.hours.start) hours.start = start.value;
      if (end.value !== settings.hours.end) hours.end = end.value;
      if (outside.value !== settings.hours.outside) hours.outside = outside.value;
      if (Object.keys(hours).length) patch.hours = hours;
      if (timezone.value.trim() !== settings.timezone) patch.timezone = timezone.value.trim();
      const changedProfiles = {};
      for (const p of profiles) {
        if (p.input.checked !== settings.profiles[p.id].discussions_enabled) {
          changedProfiles[p.id] = { discussions_enabled: p.input.checked };
        }
      }
      if (Object.keys(changedProfiles).length) patch.profiles = changedProfiles;
      if (Object.keys(patch).length === 0) {
        status.textContent = 'Nothing to save.';
        return;
      }
      save.disabled = true;
      status.textContent = 'Saving…';
      try {
        const reply = await api('/api/settings', { method: 'PATCH', body: patch });
        const n = reply.changes.length;
        build(reply.settings);
        status.textContent = `Saved (${n} ${n === 1 ? 'change' : 'changes'}).`;
        notify({ kind: 'success', title: `Settings saved: ${n} ${n === 1 ? 'change' : 'changes'}, effective at once.` });
        audit.reload();
      } catch (error) {
        status.textContent = 'Not saved.';
        save.disabled = false;
        notify({ kind: 'error', ...explain(error), code: error.code });
      }
    };
  }

  api('/api/settings').then((reply) => build(reply.settings)).catch((error) => {
    replace(form, h('p', {}, 'The settings could not be loaded.'));
    notify({ kind: 'error', ...explain(error), code: error.code });
  });

  return { element, focus: () => element.querySelector('h2').focus(), destroy() {} };
}

/** Search students and switch their right to start discussions (G4). */
function studentsSection(notify, onSaved) {
  const headingId = nextId('students-title');
  const search = h('input', { type: 'search', autocomplete: 'off', placeholder: 'Name or class' });
  const status = h('p', { class: 'picker-status', role: 'status' });
  const list = h('ul', { class: 'student-list' });
  let generation = 0;

  async function load() {
    const mine = ++generation;
    status.textContent = 'Searching…';
    let reply;
    try {
      reply = await api('/api/users', { params: { role: 'student', q: search.value.trim(), limit: 20 } });
    } catch (error) {
      if (mine === generation) notify({ kind: 'error', ...explain(error), code: error.code });
      return;
    }
    if (mine !== generation) return;
    status.textContent = `${reply.total} ${reply.total === 1 ? 'student' : 'students'}${reply.total > reply.items.length ? `, the first ${reply.items.length} shown` : ''}.`;
    replace(list, reply.items.map((student) => {
      const box = checkbox('may start discussions', student.preferences.can_initiate !== false,
        { dataset: { user: student.id } });
      box.input.setAttribute('aria-label', `${student.name} may start discussions`);
      const note = h('span', { class: 'saved', 'aria-live': 'polite' });
      box.input.addEventListener('change', async () => {
        const value = box.input.checked;
        box.input.disabled = true;
        try {
          await api(`/api/users/${encodeURIComponent(student.id)}/preferences`, {
            method: 'PATCH', body: { can_initiate: value },
          });
          note.textContent = 'Saved.';
          onSaved();
        } catch (error) {
          box.input.checked = !value;
          notify({ kind: 'error', ...explain(error), code: error.code });
        } finally {
          box.input.disabled = false;
        }
      });
      return h('li', {},
        h('span', { class: 'person-name' }, student.name),
        h('span', { class: 'person-detail' }, student.class ? student.class.name : ''),
        box.element, note);
    }));
  }

  search.addEventListener('input', debounce(load, 250));
  load();
  return {
    element: h('section', { class: 'panel', 'aria-labelledby': headingId },
      h('h3', { id: headingId }, 'Students who may start discussions'),
      h('p', { class: 'hint' }, 'A student who may not start discussions can still reply where included.'),
      field('Find a student', search), status, list),
  };
}

/** The audit log: every recorded change, newest first, paged with `before`. */
function auditSection(notify) {
  const headingId = nextId('audit-title');
  const body = h('tbody');
  const more = h('button', { type: 'button', class: 'link', hidden: true }, 'Older entries');
  let before = null;

  async function load(append) {
    let reply;
    try {
      reply = await api('/api/audit', { params: { limit: 20, before: append ? before : null } });
    } catch (error) {
      notify({ kind: 'error', ...explain(error), code: error.code });
      return;
    }
    if (!append) replace(body);
    for (const e of reply.items) {
      const words = auditWords(e);
      body.append(h('tr', { dataset: { field: e.field } },
        h('td', {}, h('time', { datetime: e.at }, formatFull(e.at))),
        h('td', {}, words.who),
        h('td', { title: e.field }, words.setting),
        h('td', {}, words.before),
        h('td', {}, words.after)));
    }
    if (!append && reply.items.length === 0) body.append(h('tr', {}, h('td', { colspan: '5' }, 'No change recorded yet.')));
    before = reply.next_before;
    more.hidden = before === null;
  }

  more.addEventListener('click', () => load(true));
  load(false);
  return {
    reload: () => load(false),
    element: h('section', { class: 'panel', 'aria-labelledby': headingId },
      h('h3', { id: headingId }, 'Audit log'),
      h('div', { class: 'table-wrap' },
        h('table', { class: 'audit' },
          h('caption', { class: 'sr-only' }, 'Every settings change, newest first'),
          h('thead', {}, h('tr', {}, ['When', 'Who', 'Setting', 'Before', 'After'].map((t) => h('th', { scope: 'col' }, t)))),
          body)),
      more),
  };
}
