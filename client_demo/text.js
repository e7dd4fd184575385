// Words shown to people: times in the reader's local time; refusals are explained
// by errors.js (a sentence for every code of docs/protocol.md §9, from its params).

// 24-hour times, as a French school expects; the reader's own time zone
// ("local time"), so a parent abroad sees when it opens for them.
const TIME = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit' });
const DAY = new Intl.DateTimeFormat('en-GB', { weekday: 'short', day: 'numeric', month: 'short' });
const FULL = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeStyle: 'short' });

/** "09:41" for today, "Tue 24 Nov, 09:41" otherwise. */
export function formatTime(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  const today = new Date();
  if (date.toDateString() === today.toDateString()) return TIME.format(date);
  return `${DAY.format(date)}, ${TIME.format(date)}`;
}

/** "07:00 on Wed 25 Nov" (always with the day: openings are usually tomorrow). */
export function formatOpening(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return `${TIME.format(date)} on ${DAY.format(date)}`;
}

/** "24 Nov 2026, 10:02", for the audit log. */
export function formatFull(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : FULL.format(date);
}

/** A person's display name, or their id when they left the directory (§8.1). */
export function personName(person, fallbackId) {
  if (person && person.name) return person.name;
  return (person && person.id) || fallbackId || 'someone';
}

/** "teacher", "student, Seconde A"… */
export function personDetail(person) {
  if (!person) return '';
  const parts = [person.role];
  if (person.class && person.class.name) parts.push(person.class.name);
  return parts.filter(Boolean).join(', ');
}

/** Roles as groups of people, for audiences. */
export const ROLE_LABELS = { student: 'Students', parent: 'Parents', teacher: 'Teachers', staff: 'Staff' };

// Refusals in words: the catalogue lives in errors.js (French and English, from each
// code's params); explain(error) → {title, detail} is re-exported for the callers here.
export { explain } from './errors.js';
