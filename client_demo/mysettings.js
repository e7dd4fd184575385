// « Mes réglages » (#/me): every user's own settings, read from GET /api/me/settings
// (docs/api.md "My settings"): whether discussions are on for the school and for their
// profile, the hours, whether they may start discussions, messaging between parents
// and their opt-in, and who may contact them. Read-only; a teacher's and a parent's
// own choices are changed on « Mes préférences » (#/prefs).
//
// Also « Qui peut me contacter » for teachers (contactPreferencesView, #/prefs): the
// `accepts` preference of PATCH /api/me/preferences, group by group, optionally
// limited to some classes.

import { api } from './api.js';
import { h, nextId, replace } from './dom.js';
import { register, t } from './i18n.js';
import { explain } from './text.js';

register({
  fr: {
    'me.nav': 'Mes réglages : ce qui s’applique à moi',
    'me.title': 'Mes réglages',
    'me.loading': 'Chargement…',
    'me.failed': 'Vos réglages n’ont pas pu être chargés.',
    'me.intro': 'Ce qui s’applique à vous, tel que l’établissement et vous l’avez réglé.',
    'me.access': 'Discussions',
    'me.access.on': 'Vous avez accès aux discussions.',
    'me.access.off': 'Vous n’avez pas accès aux discussions en ce moment.',
    'me.school': 'Pour tout l’établissement',
    'me.on': 'activées',
    'me.off': 'désactivées',
    'me.profile': 'Pour votre profil',
    'me.hours': 'Horaires',
    'me.hours.none': 'Aucune restriction horaire.',
    'me.hours.open': 'Discussions ouvertes',
    'me.hours.window': 'De {start} à {end} ({zone}).',
    'me.outside': 'En dehors de ces horaires',
    'me.outside.refuse': 'les messages sont refusés (vous gardez votre texte).',
    'me.outside.defer': 'les messages sont mis en attente et remis à l’ouverture.',
    'me.start': 'Démarrer une discussion',
    'me.start.yes': 'Vous pouvez démarrer des discussions : {hour} par heure et {day} par jour au plus.',
    'me.start.no': 'Vous ne pouvez pas démarrer de discussion ; vous pouvez répondre dans celles où vous êtes.',
    'me.parents': 'Messagerie entre parents',
    'me.parents.school.on': 'Autorisée par l’établissement.',
    'me.parents.school.off': 'Non autorisée par l’établissement.',
    'me.parents.in': 'Vous y participez.',
    'me.parents.out': 'Vous n’y participez pas.',
    'me.contact': 'Qui peut vous contacter',
    'me.contact.students': 'Élèves',
    'me.contact.parents': 'Parents',
    'me.contact.teachers': 'Enseignants',
    'me.contact.staff': 'Personnels',
    'me.contact.all': 'oui',
    'me.contact.none': 'non',
    'me.contact.classes': 'seulement : {classes}',
    'me.contact.rules': 'Selon les règles de l’établissement (rôles, classes, parents de vos enfants).',
    'me.change': 'Changer ces choix',
    'prefs.title': 'Qui peut me contacter',
    'prefs.nav': 'Mes préférences',
    'prefs.intro': 'Choisissez qui peut démarrer une discussion avec vous. Les discussions déjà commencées ne changent pas.',
    'prefs.students': 'Les élèves peuvent me contacter',
    'prefs.parents': 'Les parents peuvent me contacter',
    'prefs.teachers': 'Les autres enseignants peuvent me contacter',
    'prefs.staff': 'Les personnels peuvent me contacter',
    'prefs.every': 'de toutes les classes',
    'prefs.only': 'seulement de ces classes :',
    'prefs.students.legend': 'Élèves',
    'prefs.parents.legend': 'Parents',
    'prefs.others.legend': 'Collègues',
    'prefs.save': 'Enregistrer',
    'prefs.saving': 'Enregistrement…',
    'prefs.saved': 'Enregistré.',
    'prefs.not_saved': 'Non enregistré.',
    'prefs.pick_class': 'Choisissez au moins une classe, ou « de toutes les classes ».',
  },
  en: {
    'me.nav': 'My settings: what applies to me',
    'me.title': 'My settings',
    'me.loading': 'Loading…',
    'me.failed': 'Your settings could not be loaded.',
    'me.intro': 'What applies to you, as the school and you set it.',
    'me.access': 'Discussions',
    'me.access.on': 'You have access to discussions.',
    'me.access.off': 'You have no access to discussions at the moment.',
    'me.school': 'For the whole school',
    'me.on': 'on',
    'me.off': 'off',
    'me.profile': 'For your profile',
    'me.hours': 'Hours',
    'me.hours.none': 'No time restriction.',
    'me.hours.open': 'Discussions open',
    'me.hours.window': 'From {start} to {end} ({zone}).',
    'me.outside': 'Outside these hours',
    'me.outside.refuse': 'messages are refused (you keep your text).',
    'me.outside.defer': 'messages are held and delivered at the opening.',
    'me.start': 'Starting a discussion',
    'me.start.yes': 'You may start discussions: at most {hour} an hour and {day} a day.',
    'me.start.no': 'You may not start a discussion; you may reply in the ones you are in.',
    'me.parents': 'Messaging between parents',
    'me.parents.school.on': 'Allowed by the school.',
    'me.parents.school.off': 'Not allowed by the school.',
    'me.parents.in': 'You take part.',
    'me.parents.out': 'You do not take part.',
    'me.contact': 'Who may contact you',
    'me.contact.students': 'Students',
    'me.contact.parents': 'Parents',
    'me.contact.teachers': 'Teachers',
    'me.contact.staff': 'Staff',
    'me.contact.all': 'yes',
    'me.contact.none': 'no',
    'me.contact.classes': 'only: {classes}',
    'me.contact.rules': 'As the school’s rules say (roles, classes, your children’s parents).',
    'me.change': 'Change these choices',
    'prefs.title': 'Who may contact me',
    'prefs.nav': 'My preferences',
    'prefs.intro': 'Choose who may start a discussion with you. Discussions already started do not change.',
    'prefs.students': 'Students may contact me',
    'prefs.parents': 'Parents may contact me',
    'prefs.teachers': 'Other teachers may contact me',
    'prefs.staff': 'Staff may contact me',
    'prefs.every': 'from every class',
    'prefs.only': 'only from these classes:',
    'prefs.students.legend': 'Students',
    'prefs.parents.legend': 'Parents',
    'prefs.others.legend': 'Colleagues',
    'prefs.save': 'Save',
    'prefs.saving': 'Saving…',
    'prefs.saved': 'Saved.',
    'prefs.not_saved': 'Not saved.',
    'prefs.pick_class': 'Choose at least one class, or “from every class”.',
  },
});

function page(titleKey, dataPage) {
  const headingId = nextId('page-title');
  const heading = h('h2', { id: headingId, tabindex: '-1' }, t(titleKey));
  const body = h('div', { class: 'settings-form' }, h('p', {}, t('me.loading')));
  const element = h('section', { class: `settings ${dataPage}`, 'aria-labelledby': headingId, dataset: { page: dataPage } },
    heading, body);
  return { heading, body, element };
}

function onOff(value) {
  return t(value ? 'me.on' : 'me.off');
}

function className(doc, id) {
  const found = (doc.classes || []).find((c) => c.id === id);
  return found ? found.name : id;
}

function audienceText(doc, audience) {
  if (!audience.enabled) return t('me.contact.none');
  if (audience.classes === null) return t('me.contact.all');
  return t('me.contact.classes', { classes: audience.classes.map((c) => className(doc, c)).join(', ') });
}

function rows(pairs) {
  return h('dl', {}, pairs.filter(Boolean).map(([term, value, key]) => [
    h('dt', {}, term), h('dd', { dataset: { setting: key } }, value)]));
}

/** « Mes réglages »: what applies to `me`, read-only. */
export function mySettingsView({ notify }) {
  const { heading, body, element } = page('me.title', 'my-settings');

  function build(doc) {
    const a = doc.preferences.accepts;
    const sections = [
      h('p', { class: 'hint' }, t('me.intro')),
      h('fieldset', {}, h('legend', {}, t('me.access')),
        h('p', { dataset: { setting: 'access' } }, t(doc.access.allowed ? 'me.access.on' : 'me.access.off')),
        rows([
          [t('me.school'), onOff(doc.school.discussions_enabled), 'school'],
          // The profile's name is the school's word, in the school's language.
          [[t('me.profile'), ' ', h('span', { class: 'profile-name' }, doc.profile.name)],
            onOff(doc.profile.discussions_enabled), 'profile'],
        ])),
      h('fieldset', {}, h('legend', {}, t('me.hours')),
        doc.hours.enabled
          ? rows([
            [t('me.hours.open'), t('me.hours.window', { start: doc.hours.start, end: doc.hours.end, zone: doc.school.timezone }), 'hours'],
            [t('me.outside'), t(`me.outside.${doc.hours.outside}`), 'outside'],
          ])
          : h('p', { dataset: { setting: 'hours' } }, t('me.hours.none'))),
      h('fieldset', {}, h('legend', {}, t('me.start')),
        h('p', { dataset: { setting: 'can_start' } }, doc.can_start
          ? t('me.start.yes', { hour: doc.start_limits.per_hour, day: doc.start_limits.per_day })
          : t('me.start.no'))),
    ];
    if (doc.role === 'parent') {
      sections.push(h('fieldset', {}, h('legend', {}, t('me.parents')),
        h('p', { dataset: { setting: 'parent_messaging' } },
          t(doc.parent_messaging.enabled ? 'me.parents.school.on' : 'me.parents.school.off'), ' ',
          t(doc.parent_messaging.opt_in ? 'me.parents.in' : 'me.parents.out')),
        h('p', {}, h('a', { href: '#/prefs' }, t('me.change')))));
    }
    sections.push(h('fieldset', {}, h('legend', {}, t('me.contact')),
      a ? rows([
        [t('me.contact.students'), audienceText(doc, a.students), 'accepts.students'],
        [t('me.contact.parents'), audienceText(doc, a.parents), 'accepts.parents'],
        [t('me.contact.teachers'), t(a.teachers ? 'me.contact.all' : 'me.contact.none'), 'accepts.teachers'],
        [t('me.contact.staff'), t(a.staff ? 'me.contact.all' : 'me.contact.none'), 'accepts.staff'],
      ]) : h('p', { dataset: { setting: 'accepts' } }, t('me.contact.rules')),
      a ? h('p', {}, h('a', { href: '#/prefs' }, t('me.change'))) : null));
    replace(body, sections);
  }

  api('/api/me/settings').then(build).catch((error) => {
    replace(body, h('p', {}, t('me.failed')));
    notify({ kind: 'error', ...explain(error), code: error.code });
  });
  return { element, focus: () => heading.focus(), destroy() {} };
}

function check(label, checked, data) {
  const id = nextId('check');
  const input = h('input', { id, type: 'checkbox', checked, dataset: data });
  return { input, element: h('div', { class: 'check' }, input, h('label', { for: id }, label)) };
}

/** One group a teacher may limit to some classes: on/off, then every class or a few. */
function audienceField(doc, group, audience) {
  const on = check(t(`prefs.${group}`), audience.enabled, { accepts: group });
  const name = nextId('scope');
  const radio = (value, label, checked) => {
    const id = nextId('radio');
    const input = h('input', { id, type: 'radio', name, value, checked, dataset: { scope: `${group}.${value}` } });
    return { input, element: h('div', { class: 'check' }, input, h('label', { for: id }, label)) };
  };
  const every = radio('every', t('prefs.every'), audience.classes === null);
  const only = radio('only', t('prefs.only'), audience.classes !== null);
  const boxes = (doc.classes || []).map((c) => ({
    id: c.id, ...check(c.name, (audience.classes || []).includes(c.id), { accepts: `${group}.class`, class: c.id }),
  }));
  const scope = h('div', { class: 'scope' }, every.element, only.element,
    h('div', { class: 'classes' }, boxes.map((b) => b.element)));
  const sync = () => {
    scope.hidden = !on.input.checked;
    for (const b of boxes) b.input.disabled = !only.input.checked;
  };
  for (const input of [on.input, every.input, only.input]) input.addEventListener('change', sync);
  sync();
  return {
    element: h('fieldset', {}, h('legend', {}, t(`prefs.${group}.legend`)), on.element, scope),
    value() {
      if (!on.input.checked) return { enabled: false, classes: null };
      if (every.input.checked) return { enabled: true, classes: null };
      return { enabled: true, classes: boxes.filter((b) => b.input.checked).map((b) => b.id) };
    },
  };
}

/** « Qui peut me contacter »: a teacher's `accepts` (PATCH /api/me/preferences). */
export function contactPreferencesView({ notify }) {
  const { heading, body, element } = page('prefs.title', 'contact-prefs');

  function build(doc) {
    const a = doc.preferences.accepts;
    const students = audienceField(doc, 'students', a.students);
    const parents = audienceField(doc, 'parents', a.parents);
    const teachers = check(t('prefs.teachers'), a.teachers, { accepts: 'teachers' });
    const staff = check(t('prefs.staff'), a.staff, { accepts: 'staff' });
    const status = h('p', { class: 'form-status', role: 'status' });
    const save = h('button', { type: 'submit' }, t('prefs.save'));
    const form = h('form', { class: 'contact-prefs' },
      h('p', { class: 'hint' }, t('prefs.intro')),
      students.element, parents.element,
      h('fieldset', {}, h('legend', {}, t('prefs.others.legend')), teachers.element, staff.element),
      h('div', { class: 'row' }, save, status));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const accepts = { students: students.value(), parents: parents.value(),
        teachers: teachers.input.checked, staff: staff.input.checked };
      if ([accepts.students, accepts.parents].some((x) => x.enabled && x.classes && !x.classes.length)) {
        status.textContent = t('prefs.pick_class');
        return;
      }
      save.disabled = true;
      status.textContent = t('prefs.saving');
      try {
        await api('/api/me/preferences', { method: 'PATCH', body: { accepts } });
        status.textContent = t('prefs.saved');
        notify({ kind: 'success', title: t('prefs.saved') });
      } catch (error) {
        status.textContent = t('prefs.not_saved');
        notify({ kind: 'error', ...explain(error), code: error.code });
      } finally {
        save.disabled = false;
      }
    });
    replace(body, form);
  }

  api('/api/me/settings').then(build).catch((error) => {
    replace(body, h('p', {}, t('me.failed')));
    notify({ kind: 'error', ...explain(error), code: error.code });
  });
  return { element, focus: () => heading.focus(), destroy() {} };
}
