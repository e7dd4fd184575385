// The audit log in words: each entry's `setting` (docs/api.md, "Audit log") named
// in the reader's language, and its values as words ("activée", "08:00", class
// names) instead of raw keys and JSON.

import { register, t } from './i18n.js';

register({
  fr: {
    'audit.setting.discussions_enabled': 'Discussions dans l’établissement',
    'audit.setting.parent_messaging_enabled': 'Messagerie entre parents',
    'audit.setting.hours.enabled': 'Horaires d’envoi',
    'audit.setting.hours.start': 'Horaires : début',
    'audit.setting.hours.end': 'Horaires : fin',
    'audit.setting.hours.outside': 'En dehors des horaires',
    'audit.setting.timezone': 'Fuseau horaire',
    'audit.setting.limits.starts_per_hour': 'Discussions commencées par heure (au plus)',
    'audit.setting.limits.starts_per_day': 'Discussions commencées par jour (au plus)',
    'audit.setting.profile.discussions_enabled': 'Discussions pour le profil {profile}',
    'audit.setting.user.can_initiate': '{user} peut commencer des discussions',
    'audit.setting.user.parent_messaging_opt_in': 'Messagerie entre parents pour {user}',
    'audit.setting.user.accepts.students.enabled': '{user} accepte les messages des élèves',
    'audit.setting.user.accepts.students.classes': '{user} accepte les élèves des classes',
    'audit.setting.user.accepts.parents.enabled': '{user} accepte les messages des parents',
    'audit.setting.user.accepts.parents.classes': '{user} accepte les parents des classes',
    'audit.setting.user.accepts.teachers': '{user} accepte les messages des professeurs',
    'audit.setting.user.accepts.staff': '{user} accepte les messages du personnel',
    'audit.on.f': 'activée',
    'audit.off.f': 'désactivée',
    'audit.on.fp': 'activées',
    'audit.off.fp': 'désactivées',
    'audit.on.mp': 'activés',
    'audit.off.mp': 'désactivés',
    'audit.yes': 'oui',
    'audit.no': 'non',
    'audit.outside.refuse': 'messages refusés',
    'audit.outside.defer': 'messages retenus jusqu’à l’ouverture',
    'audit.all_classes': 'toutes les classes',
    'audit.none': '—',
    'audit.import': 'import de l’annuaire',
  },
  en: {
    'audit.setting.discussions_enabled': 'Discussions in the school',
    'audit.setting.parent_messaging_enabled': 'Messaging between parents',
    'audit.setting.hours.enabled': 'Sending hours',
    'audit.setting.hours.start': 'Hours: start',
    'audit.setting.hours.end': 'Hours: end',
    'audit.setting.hours.outside': 'Outside the hours',
    'audit.setting.timezone': 'Time zone',
    'audit.setting.limits.starts_per_hour': 'Discussions started per hour (at most)',
    'audit.setting.limits.starts_per_day': 'Discussions started per day (at most)',
    'audit.setting.profile.discussions_enabled': 'Discussions for the profile {profile}',
    'audit.setting.user.can_initiate': '{user} may start discussions',
    'audit.setting.user.parent_messaging_opt_in': 'Messaging between parents for {user}',
    'audit.setting.user.accepts.students.enabled': '{user} accepts messages from students',
    'audit.setting.user.accepts.students.classes': '{user} accepts students of the classes',
    'audit.setting.user.accepts.parents.enabled': '{user} accepts messages from parents',
    'audit.setting.user.accepts.parents.classes': '{user} accepts parents of the classes',
    'audit.setting.user.accepts.teachers': '{user} accepts messages from teachers',
    'audit.setting.user.accepts.staff': '{user} accepts messages from staff',
    'audit.on.f': 'on',
    'audit.off.f': 'off',
    'audit.on.fp': 'on',
    'audit.off.fp': 'off',
    'audit.on.mp': 'on',
    'audit.off.mp': 'off',
    'audit.yes': 'yes',
    'audit.no': 'no',
    'audit.outside.refuse': 'messages refused',
    'audit.outside.defer': 'messages held until the opening',
    'audit.all_classes': 'all classes',
    'audit.none': '—',
    'audit.import': 'directory import',
  },
});

// How a boolean reads for each setting: French agrees with the noun it describes
// ("messagerie … activée", "discussions … activées", "horaires … activés").
const SWITCHES = {
  discussions_enabled: 'fp',
  parent_messaging_enabled: 'f',
  'hours.enabled': 'mp',
  'profile.discussions_enabled': 'fp',
  'user.parent_messaging_opt_in': 'f',
};

function value(item, v) {
  if (v === null || v === undefined) {
    return item.setting.endsWith('.classes') ? t('audit.all_classes') : t('audit.none');
  }
  if (typeof v === 'boolean') {
    const form = SWITCHES[item.setting];
    if (form) return t(`audit.${v ? 'on' : 'off'}.${form}`);
    return t(v ? 'audit.yes' : 'audit.no');
  }
  if (item.setting === 'hours.outside' && (v === 'refuse' || v === 'defer')) return t(`audit.outside.${v}`);
  if (Array.isArray(v)) {
    const names = item.classes || {};
    return v.map((c) => names[c] || c).join(', ') || t('audit.none');
  }
  return typeof v === 'string' || typeof v === 'number' ? String(v) : JSON.stringify(v);
}

/** The usual profiles in the reader's language (settings.js's words), others by the
 * name the school's directory gives them. */
function profileWord(profile) {
  if (!profile) return '';
  const key = `settings.profileName.${profile.id}`;
  const word = t(key);
  return word !== key ? word : profile.name || profile.id;
}

/** {who, setting, before, after} of an audit item, in words. */
export function auditWords(item) {
  const known = item.setting && item.setting !== 'other';
  const params = {
    profile: profileWord(item.profile),
    user: (item.user && (item.user.name || item.user.id)) || '',
  };
  const who = item.actor === 'import' ? t('audit.import') : item.actor_name || item.actor;
  return {
    who,
    setting: known ? t(`audit.setting.${item.setting}`, params) : item.field,
    before: value(known ? item : { setting: '' }, item.old),
    after: value(known ? item : { setting: '' }, item.new),
  };
}
