// Words shown to people: times on the school's clock, in the language of the app;
// refusals are explained by errors.js (a sentence for every code of
// docs/protocol.md §9, written from its params).

import { parentDetail } from './people.js';
import { locale, register, t } from './i18n.js';

register({
  fr: {
    'time.day': '{day}, {time}',
    'time.opening': '{day} à {time}',
    'person.someone': 'quelqu’un',
    'role.student': 'élève',
    'role.parent': 'parent',
    'role.teacher': 'enseignant',
    'role.staff': 'personnel',
    'roles.student': 'Élèves',
    'roles.parent': 'Parents',
    'roles.teacher': 'Enseignants',
    'roles.staff': 'Personnel',
  },
  en: {
    'time.day': '{day}, {time}',
    'time.opening': '{time} on {day}',
    'person.someone': 'someone',
    'role.student': 'student',
    'role.parent': 'parent',
    'role.teacher': 'teacher',
    'role.staff': 'staff',
    'roles.student': 'Students',
    'roles.parent': 'Parents',
    'roles.teacher': 'Teachers',
    'roles.staff': 'Staff',
  },
});

// Times are on the school's clock (its time zone, from GET /api/me), as the school's
// hours and deadlines are: a parent abroad reads the same "08:00" as the teacher.
// Before sign-in (or if unknown), the reader's own zone.
let zone;

/** The school's IANA time zone ("Europe/Paris"), given once /api/me is known. */
export function setTimeZone(timeZone) {
  try {
    new Intl.DateTimeFormat('fr-FR', { timeZone }); // throws on an unknown zone
    zone = timeZone || undefined;
  } catch (_) {
    zone = undefined;
  }
}

/** The time zone the app shows times in (undefined: the reader's own). */
export function timeZone() {
  return zone;
}

const formats = new Map();
function format(kind) {
  const key = `${kind}|${locale()}|${zone}`;
  if (!formats.has(key)) {
    const options = {
      // hourCycle h23: 24-hour times in both languages ("20:00", never "8:00 PM").
      time: { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' },
      day: { weekday: 'short', day: 'numeric', month: 'short' },
      date: { year: 'numeric', month: '2-digit', day: '2-digit' },
      full: { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' },
    }[kind];
    formats.set(key, new Intl.DateTimeFormat(locale(), { ...options, timeZone: zone }));
  }
  return formats.get(key);
}

function parse(iso) {
  if (!iso) return null;
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** "10:02" for today, "mar. 24 nov., 10:02" ("Tue 24 Nov, 10:02") otherwise. */
export function formatTime(iso) {
  const date = parse(iso);
  if (!date) return '';
  const time = format('time').format(date);
  if (format('date').format(date) === format('date').format(new Date())) return time;
  return t('time.day', { day: format('day').format(date), time });
}

/** "mer. 25 nov. à 07:00" ("07:00 on Wed 25 Nov"): always with the day, openings are usually tomorrow. */
export function formatOpening(iso) {
  const date = parse(iso);
  if (!date) return iso || '';
  return t('time.opening', { day: format('day').format(date), time: format('time').format(date) });
}

/** "24 nov. 2026, 10:02", for the audit log. */
export function formatFull(iso) {
  const date = parse(iso);
  return date ? format('full').format(date) : String(iso);
}

/** A person's display name, or their id when they left the directory (§8.1). */
export function personName(person, fallbackId) {
  if (person && person.name) return person.name;
  return (person && person.id) || fallbackId || t('person.someone');
}

/** « mère de Léa André (6e A) » for a parent (people.js); "enseignant", "élève, Seconde A"… (the words of SPEC.md's table) */
export function personDetail(person) {
  if (!person) return '';
  const parent = parentDetail(person);
  if (parent) return parent;
  const parts = [person.role ? t(`role.${person.role}`) : ''];
  if (person.class && person.class.name) parts.push(person.class.name);
  return parts.filter(Boolean).join(', ');
}

/** Roles as groups of people, for audiences (read in the language of the moment). */
export const ROLE_LABELS = Object.freeze({
  get student() { return t('roles.student'); },
  get parent() { return t('roles.parent'); },
  get teacher() { return t('roles.teacher'); },
  get staff() { return t('roles.staff'); },
});

// Refusals in words: the catalogue lives in errors.js (French and English, from each
// code's params); explain(error) → {title, detail} is re-exported for the callers here.
export { explain } from './errors.js';
