// The administrator's page (staff with admin: true): the school's settings,
// students' right to start discussions, and the audit log. Everything goes
// through the REST API (docs/api.md, "Administration"); the server validates,
// records each change and applies it at once to every connection.

import { api } from './api.js';
import { auditWords } from './auditwords.js';
import { debounce, h, nextId, replace } from './dom.js';
import { explain, formatFull } from './text.js';
import { register, t, tn } from './i18n.js';

register({
  fr: {
    'settings.on': 'activée',
    'settings.off': 'désactivée',
    'settings.form': 'Réglages de l’établissement',
    'settings.loading': 'Chargement…',
    'settings.title': 'Réglages de {school}',
    'settings.enabled': 'Les discussions sont ouvertes pour tout l’établissement',
    'settings.parents': 'Les parents peuvent s’écrire (délégués et parents qui l’ont choisi)',
    'settings.hoursOn': 'Seulement entre ces heures',
    'settings.refuse': 'Les refuser (l’auteur garde son message)',
    'settings.defer': 'Les garder et les remettre à l’ouverture',
    'settings.profile': 'Profil « {id} » : discussions ouvertes',
    'settings.save': 'Enregistrer les réglages',
    'settings.undo': 'Annuler mes modifications',
    'settings.discussions': 'Discussions',
    'settings.hours': 'Heures autorisées',
    'settings.from': 'De',
    'settings.until': 'À',
    'settings.timeHint': 'Sur 24 heures, par exemple 07:30.',
    'settings.badTime': 'Écrivez les heures sur 24 heures, par exemple 07:30.',
    'settings.outside': 'Messages écrits en dehors de ces heures',
    'settings.zone': 'Fuseau horaire des heures',
    'settings.profiles': 'Profils',
    'settings.profilesHint': 'Un profil désactivé ne peut ni se connecter ni rien recevoir.',
    'settings.nothing': 'Rien à enregistrer.',
    'settings.saving': 'Enregistrement…',
    'settings.saved.one': 'Enregistré ({n} modification).',
    'settings.saved.other': 'Enregistré ({n} modifications).',
    'settings.savedBanner.one': 'Réglages enregistrés : {n} modification, effective immédiatement.',
    'settings.savedBanner.other': 'Réglages enregistrés : {n} modifications, effectives immédiatement.',
    'settings.notSaved': 'Non enregistré.',
    'settings.loadFailed': 'Les réglages n’ont pas pu être chargés.',
    'settings.studentSearch': 'Nom ou classe',
    'settings.searching': 'Recherche…',
    'settings.students.one': '{n} élève',
    'settings.students.other': '{n} élèves',
    'settings.firstShown': ', les {shown} premiers affichés',
    'settings.mayStart': 'peut commencer des discussions',
    'settings.mayStartLabel': '{name} peut commencer des discussions',
    'settings.savedShort': 'Enregistré.',
    'settings.studentsTitle': 'Élèves qui peuvent commencer des discussions',
    'settings.studentsHint': 'Un élève qui ne peut pas commencer de discussion peut toujours répondre là où il est inclus.',
    'settings.findStudent': 'Trouver un élève',
    'settings.older': 'Entrées plus anciennes',
    'settings.noAudit': 'Aucune modification enregistrée pour l’instant.',
    'settings.audit': 'Journal des modifications',
    'settings.auditCaption': 'Chaque modification des réglages, la plus récente d’abord',
    'settings.col.when': 'Quand',
    'settings.col.who': 'Qui',
    'settings.col.field': 'Réglage',
    'settings.col.before': 'Avant',
    'settings.col.after': 'Après',
    'settings.field.discussions_enabled': 'Discussions dans l’établissement',
    'settings.field.parent_messaging_enabled': 'Messagerie entre parents',
    'settings.field.hours.enabled': 'Heures autorisées',
    'settings.field.hours.start': 'Heure d’ouverture',
    'settings.field.hours.end': 'Heure de fermeture',
    'settings.field.hours.outside': 'Messages hors des heures',
    'settings.field.timezone': 'Fuseau horaire',
    'settings.field.can_initiate': '{user} peut commencer des discussions',
    'settings.field.profile': 'Discussions du profil « {id} »',
    'settings.value.refuse': 'refusés',
    'settings.profileName.students': 'élèves',
    'settings.profileName.teachers': 'enseignants',
    'settings.profileName.parents': 'parents',
    'settings.profileName.staff': 'personnel',
    'settings.value.defer': 'remis à l’ouverture',
  },
  en: {
    'settings.on': 'on',
    'settings.off': 'off',
    'settings.form': 'School settings',
    'settings.loading': 'Loading…',
    'settings.title': 'Settings of {school}',
    'settings.enabled': 'Discussions are on for the whole school',
    'settings.parents': 'Parents may write to each other (delegates and parents who opted in)',
    'settings.hoursOn': 'Only between these hours',
    'settings.refuse': 'Refuse them (the writer keeps the message)',
    'settings.defer': 'Hold them and deliver at the opening',
    'settings.profile': 'Profile “{id}”: discussions on',
    'settings.save': 'Save the settings',
    'settings.undo': 'Undo my changes',
    'settings.discussions': 'Discussions',
    'settings.hours': 'Allowed hours',
    'settings.from': 'From',
    'settings.until': 'Until',
    'settings.timeHint': '24-hour clock, for example 07:30.',
    'settings.badTime': 'Write the hours on the 24-hour clock, for example 07:30.',
    'settings.outside': 'Messages written outside the hours',
    'settings.zone': 'Time zone of the hours',
    'settings.profiles': 'Profiles',
    'settings.profilesHint': 'A profile switched off can neither connect nor receive anything.',
    'settings.nothing': 'Nothing to save.',
    'settings.saving': 'Saving…',
    'settings.saved.one': 'Saved ({n} change).',
    'settings.saved.other': 'Saved ({n} changes).',
    'settings.savedBanner.one': 'Settings saved: {n} change, effective at once.',
    'settings.savedBanner.other': 'Settings saved: {n} changes, effective at once.',
    'settings.notSaved': 'Not saved.',
    'settings.loadFailed': 'The settings could not be loaded.',
    'settings.studentSearch': 'Name or class',
    'settings.searching': 'Searching…',
    'settings.students.one': '{n} student',
    'settings.students.other': '{n} students',
    'settings.firstShown': ', the first {shown} shown',
    'settings.mayStart': 'may start discussions',
    'settings.mayStartLabel': '{name} may start discussions',
    'settings.savedShort': 'Saved.',
    'settings.studentsTitle': 'Students who may start discussions',
    'settings.studentsHint': 'A student who may not start discussions can still reply where included.',
    'settings.findStudent': 'Find a student',
    'settings.older': 'Older entries',
    'settings.noAudit': 'No change recorded yet.',
    'settings.audit': 'Audit log',
    'settings.auditCaption': 'Every settings change, newest first',
    'settings.col.when': 'When',
    'settings.col.who': 'Who',
    'settings.col.field': 'Setting',
    'settings.col.before': 'Before',
    'settings.col.after': 'After',
    'settings.field.discussions_enabled': 'Discussions in the school',
    'settings.field.parent_messaging_enabled': 'Messaging between parents',
    'settings.field.hours.enabled': 'Allowed hours',
    'settings.field.hours.start': 'Opening time',
    'settings.field.hours.end': 'Closing time',
    'settings.field.hours.outside': 'Messages outside the hours',
    'settings.field.timezone': 'Time zone',
    'settings.field.can_initiate': '{user} may start discussions',
    'settings.field.profile': 'Discussions of the profile “{id}”',
    'settings.value.refuse': 'refused',
    'settings.profileName.students': 'students',
    'settings.profileName.teachers': 'teachers',
    'settings.profileName.parents': 'parents',
    'settings.profileName.staff': 'staff',
    'settings.value.defer': 'held for the opening',
  },
});

/** A profile's name in words when it is one of the usual ones, else its id ("students-lycee"). */
function profileName(id) {
  const key = `settings.profileName.${id}`;
  const text = t(key);
  return text === key ? id : text;
}

/** "07:30", "7h30", "7.30" → "07:30" (24-hour clock); null when not a time. */
function hhmm(text) {
  const m = /^([01]?\d|2[0-3])\s*[:hH.]\s*([0-5]\d)$/.exec(String(text).trim());
  return m ? `${m[1].padStart(2, '0')}:${m[2]}` : null;
}

/** A 24-hour time field: text, not <input type=time>, which shows "08:00 PM" in some locales. */
function timeInput(value) {
  return h('input', {
    type: 'text', inputmode: 'numeric', autocomplete: 'off', maxlength: '5', size: '5', value,
    placeholder: 'hh:mm', pattern: '([01]?[0-9]|2[0-3])[:hH.][0-5][0-9]', required: true,
  });
}

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
  const form = h('form', { class: 'settings-form', 'aria-label': t('settings.form') }, h('p', {}, t('settings.loading')));
  const audit = auditSection(notify);
  const students = studentsSection(notify, () => audit.reload());
  let current = null;

  const element = h('section', { class: 'settings', 'aria-labelledby': headingId },
    h('h2', { id: headingId, tabindex: '-1' }, t('settings.title', { school: me.school.name })),
    form, students.element, audit.element);

  function build(settings) {
    current = settings;
    const enabled = checkbox(t('settings.enabled'), settings.discussions_enabled);
    const parents = checkbox(t('settings.parents'), settings.parent_messaging_enabled);
    const hoursOn = checkbox(t('settings.hoursOn'), settings.hours.enabled);
    const start = timeInput(settings.hours.start);
    start.dataset.hours = 'start';
    const end = timeInput(settings.hours.end);
    end.dataset.hours = 'end';
    const outside = h('select', {},
      h('option', { value: 'refuse', selected: settings.hours.outside === 'refuse' }, t('settings.refuse')),
      h('option', { value: 'defer', selected: settings.hours.outside === 'defer' }, t('settings.defer')));
    const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
    const zoneList = nextId('zones');
    const timezone = h('input', { type: 'text', value: settings.timezone, list: zoneList, required: true, autocomplete: 'off' });
    const profiles = Object.entries(settings.profiles).sort(([a], [b]) => a.localeCompare(b))
      .map(([id, p]) => ({ id, ...checkbox(t('settings.profile', { id: profileName(id) }), p.discussions_enabled, { dataset: { profile: id } }) }));
    const save = h('button', { type: 'submit' }, t('settings.save'));
    const reset = h('button', { type: 'button', class: 'secondary', onclick: () => build(current) }, t('settings.undo'));

    replace(form,
      h('fieldset', {}, h('legend', {}, t('settings.discussions')), enabled.element, parents.element),
      h('fieldset', {}, h('legend', {}, t('settings.hours')),
        hoursOn.element,
        h('div', { class: 'row' }, field(t('settings.from'), start), field(t('settings.until'), end)),
        h('p', { class: 'hint' }, t('settings.timeHint')),
        field(t('settings.outside'), outside),
        field(t('settings.zone'), timezone),
        h('datalist', { id: zoneList }, zones.map((z) => h('option', { value: z })))),
      h('fieldset', {}, h('legend', {}, t('settings.profiles')),
        h('p', { class: 'hint' }, t('settings.profilesHint')),
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
      const from = hhmm(start.value);
      const until = hhmm(end.value);
      if (!from || !until) {
        status.textContent = t('settings.badTime');
        (from ? end : start).focus();
        return;
      }
      if (from !== settings.hours.start) hours.start = from;
      if (until !== settings.hours.end) hours.end = until;
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
        status.textContent = t('settings.nothing');
        return;
      }
      save.disabled = true;
      status.textContent = t('settings.saving');
      try {
        const reply = await api('/api/settings', { method: 'PATCH', body: patch });
        const n = reply.changes.length;
        build(reply.settings);
        status.textContent = tn('settings.saved', n);
        notify({ kind: 'success', title: tn('settings.savedBanner', n) });
        audit.reload();
      } catch (error) {
        status.textContent = t('settings.notSaved');
        save.disabled = false;
        notify({ kind: 'error', ...explain(error), code: error.code });
      }
    };
  }

  api('/api/settings').then((reply) => build(reply.settings)).catch((error) => {
    replace(form, h('p', {}, t('settings.loadFailed')));
    notify({ kind: 'error', ...explain(error), code: error.code });
  });

  return { element, focus: () => element.querySelector('h2').focus(), destroy() {} };
}

/** Search students and switch their right to start discussions (G4). */
function studentsSection(notify, onSaved) {
  const headingId = nextId('students-title');
  const search = h('input', { type: 'search', autocomplete: 'off', placeholder: t('settings.studentSearch') });
  const status = h('p', { class: 'picker-status', role: 'status' });
  const list = h('ul', { class: 'student-list' });
  let generation = 0;

  async function load() {
    const mine = ++generation;
    status.textContent = t('settings.searching');
    let reply;
    try {
      reply = await api('/api/users', { params: { role: 'student', q: search.value.trim(), limit: 20 } });
    } catch (error) {
      if (mine === generation) notify({ kind: 'error', ...explain(error), code: error.code });
      return;
    }
    if (mine !== generation) return;
    status.textContent = `${tn('settings.students', reply.total)}${reply.total > reply.items.length ? t('settings.firstShown', { shown: reply.items.length }) : ''}.`;
    replace(list, reply.items.map((student) => {
      const box = checkbox(t('settings.mayStart'), student.preferences.can_initiate !== false,
        { dataset: { user: student.id } });
      box.input.setAttribute('aria-label', t('settings.mayStartLabel', { name: student.name }));
      const note = h('span', { class: 'saved', 'aria-live': 'polite' });
      box.input.addEventListener('change', async () => {
        const value = box.input.checked;
        box.input.disabled = true;
        try {
          await api(`/api/users/${encodeURIComponent(student.id)}/preferences`, {
            method: 'PATCH', body: { can_initiate: value },
          });
          note.textContent = t('settings.savedShort');
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
      h('h3', { id: headingId }, t('settings.studentsTitle')),
      h('p', { class: 'hint' }, t('settings.studentsHint')),
      field(t('settings.findStudent'), search), status, list),
  };
}

/** The audit log: every recorded change, newest first, paged with `before`. */
function auditSection(notify) {
  const headingId = nextId('audit-title');
  const body = h('tbody');
  const more = h('button', { type: 'button', class: 'link', hidden: true }, t('settings.older'));
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
        h('td', { dataset: { field: e.field } }, words.setting),
        h('td', {}, words.before),
        h('td', {}, words.after)));
    }
    if (!append && reply.items.length === 0) body.append(h('tr', {}, h('td', { colspan: '5' }, t('settings.noAudit'))));
    before = reply.next_before;
    more.hidden = before === null;
  }

  more.addEventListener('click', () => load(true));
  load(false);
  return {
    reload: () => load(false),
    element: h('section', { class: 'panel', 'aria-labelledby': headingId },
      h('h3', { id: headingId }, t('settings.audit')),
      h('div', { class: 'table-wrap' },
        h('table', { class: 'audit' },
          h('caption', { class: 'sr-only' }, t('settings.auditCaption')),
          h('thead', {}, h('tr', {}, ['when', 'who', 'field', 'before', 'after'].map((c) => h('th', { scope: 'col' }, t(`settings.col.${c}`))))),
          body)),
      more),
  };
}
