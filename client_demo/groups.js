// Groups of a class as recipients of a new discussion (« Parents de 6e A »), with what
// they would reach now: GET /api/contacts gives each group's counts, the `start` frame
// takes `groups`, and its answer says how many were included and left out, and why
// (docs/protocol.md, docs/api.md).

import { register, t } from './i18n.js';

register({
  fr: {
    'group.students': 'Élèves de {class}',
    'group.parents': 'Parents de {class}',
    'group.team': 'Équipe pédagogique de {class}',
    'group.included': '{n} inclus',
    'group.included_one': '{n} inclus',
    'group.left_out': '{n} exclu ({reasons})',
    'group.left_out_many': '{n} exclus ({reasons})',
    'group.counts': '{included}, {left_out}',
    'group.reason.profile_disabled': 'messagerie désactivée',
    'group.reason.recipient_not_allowed': 'n’accepte pas vos messages',
    'group.reason.other': 'autre raison',
    'group.add': 'Ajouter le groupe {group}',
    'group.remove': 'Retirer le groupe {group}',
    'group.heading': 'Groupes',
    'group.started': 'Discussion envoyée à {included} personnes des groupes ; {left_out}.',
    'group.started_all': 'Discussion envoyée à {included} personnes des groupes.',
    'group.started_one': 'Discussion envoyée à 1 personne des groupes ; {left_out}.',
    'group.started_all_one': 'Discussion envoyée à 1 personne des groupes.',
  },
  en: {
    'group.students': 'Students of {class}',
    'group.parents': 'Parents of {class}',
    'group.team': 'Teaching team of {class}',
    'group.included': '{n} included',
    'group.included_one': '{n} included',
    'group.left_out': '{n} left out ({reasons})',
    'group.left_out_many': '{n} left out ({reasons})',
    'group.counts': '{included}, {left_out}',
    'group.reason.profile_disabled': 'messaging switched off',
    'group.reason.recipient_not_allowed': 'does not accept your messages',
    'group.reason.other': 'other reason',
    'group.add': 'Add the group {group}',
    'group.remove': 'Remove the group {group}',
    'group.heading': 'Groups',
    'group.started': 'Discussion sent to {included} people of the groups; {left_out}.',
    'group.started_all': 'Discussion sent to {included} people of the groups.',
    'group.started_one': 'Discussion sent to 1 person of the groups; {left_out}.',
    'group.started_all_one': 'Discussion sent to 1 person of the groups.',
  },
});

/** The key a group is known by: "parents:6A". */
export function groupKey(group) {
  const id = group.class && typeof group.class === 'object' ? group.class.id : group.class;
  return `${group.kind}:${id}`;
}

/** What the `start` frame takes: {kind, class: id}. */
export function groupFrame(group) {
  return { kind: group.kind, class: group.class.id };
}

/** « Parents de 6e A ». */
export function groupLabel(group) {
  const name = (group.class && (group.class.name || group.class.id)) || '';
  return t(`group.${group.kind}`, { class: name });
}

function reasons(leftOut) {
  return Object.entries(leftOut || {})
    .filter(([, n]) => n > 0)
    .map(([code, n]) => {
      const key = `group.reason.${code}`;
      const word = t(key) === key ? t('group.reason.other') : t(key);
      return Object.keys(leftOut).length > 1 ? `${n} ${word}` : word;
    }).join(', ');
}

/** « 1 exclu (messagerie désactivée) », or '' when nobody is left out. */
export function leftOutText(leftOut) {
  const n = Object.values(leftOut || {}).reduce((a, b) => a + b, 0);
  if (!n) return '';
  return t(n === 1 ? 'group.left_out' : 'group.left_out_many', { n, reasons: reasons(leftOut) });
}

/** « 27 inclus, 1 exclu (messagerie désactivée) ». */
export function groupCounts(group) {
  const included = t(group.included === 1 ? 'group.included_one' : 'group.included', { n: group.included });
  const leftOut = leftOutText(group.left_out);
  return leftOut ? t('group.counts', { included, left_out: leftOut }) : included;
}

/** What the answer to a start with groups says, for a banner. */
export function startedText(told) {
  const leftOut = leftOutText(told.left_out);
  const included = (told.included || []).length;
  const one = included === 1 ? '_one' : '';
  return leftOut ? t(`group.started${one}`, { included, left_out: leftOut })
    : t(`group.started_all${one}`, { included });
}
