// Words shown to people: times in the reader's local time, and a sentence for
// every refusal code of docs/protocol.md §9 (the server's own message, in
// English, is shown under it as the precise reason).

import { parentDetail } from './people.js';

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

/** "teacher", "student, Seconde A"… and for a parent « mère de Léa André (6e A) » (people.js). */
export function personDetail(person) {
  if (!person) return '';
  const parent = parentDetail(person);
  if (parent) return parent;
  const parts = [person.role];
  if (person.class && person.class.name) parts.push(person.class.name);
  return parts.filter(Boolean).join(', ');
}

/** Roles as groups of people, for audiences. */
export const ROLE_LABELS = { student: 'Students', parent: 'Parents', teacher: 'Teachers', staff: 'Staff' };

const LEADS = {
  unauthenticated: 'Your session is no longer valid: sign in again.',
  discussions_disabled: 'Discussions are switched off in the school.',
  profile_disabled: 'Discussions are switched off for your profile.',
  cannot_initiate: 'You may not start discussions. You can still reply where you are included.',
  recipient_not_allowed: 'You may not start a discussion with this person.',
  parent_messaging_disabled: 'Messaging between parents is switched off by the school.',
  not_opted_in: 'Both parents must have switched on messaging between parents.',
  not_participant: 'You are no longer in this discussion.',
  not_invited_by_supervisor:
    'Someone here may talk with you only while the teacher or staff member who brought you in is present.',
  cannot_invite: 'Only a teacher or a staff member present may invite.',
  already_participant: 'This person is already in the discussion.',
  broadcast_not_allowed: 'You may not send information or polls to these people.',
  poll_closed: 'This poll is closed: answers are no longer accepted.',
  conflict: 'This changed meanwhile: look again and retry.',
  rate_limited: 'Too fast: wait a second and try again.',
  too_large: 'This message is too long (8,000 characters at most).',
  bad_request: 'The app sent something the server did not understand.',
  internal: 'The server failed: try again in a moment.',
  disconnected: 'The connection was lost before the server answered.',
  timeout: 'The server did not answer in time.',
  forbidden: 'Only an administrator of the school may do this.',
  not_found: 'Not found.',
  network: 'The server cannot be reached.',
};

/**
 * {title, detail} for an error frame or REST error ({code, message, retry_at}).
 * For outside_hours the opening is given in local time; the server's sentence
 * names the school's time zone, which may not be the reader's.
 */
export function explain(error) {
  const code = (error && error.code) || 'internal';
  if (code === 'outside_hours') {
    const when = error.retry_at ? ` They open again at ${formatOpening(error.retry_at)}.` : '';
    return { title: `Discussions are closed at this hour.${when}`, detail: '' };
  }
  const title = LEADS[code] || 'The server refused this.';
  const detail = error && error.message && error.message !== title ? error.message : '';
  return { title, detail };
}
