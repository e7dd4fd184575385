// Refusals in words: a sentence for each error code of docs/protocol.md §9, written
// here from the code and its `params` (§9.1), in the reader's language. The
// server's own `message` is French: it is shown only where no sentence here fits
// (an unknown code, or a malformed request, where it names the field).

import { language, register, t } from './i18n.js';

register({
  fr: {
    'error.unauthenticated': 'Votre session n’est plus valide : reconnectez-vous.',
    'error.unauthenticated.expired': 'Votre session a expiré : reconnectez-vous.',
    'error.token_expired': 'Votre session a expiré : reconnectez-vous.',
    'error.unauthenticated.not_in_directory': 'Votre compte n’est plus dans l’annuaire de l’établissement.',
    'error.discussions_disabled': 'Les discussions sont désactivées dans l’établissement.',
    'error.profile_disabled': 'Les discussions sont désactivées pour votre profil.',
    'error.outside_hours': 'Les discussions sont fermées à cette heure.',
    'error.outside_hours.when': 'Les discussions sont fermées à cette heure. Elles rouvrent à {time} le {day}.',
    'error.cannot_initiate': 'Vous ne pouvez pas commencer de discussion. Vous pouvez toujours répondre là où vous êtes invité.',
    'error.recipient_not_allowed': 'Vous ne pouvez pas commencer de discussion avec cette personne.',
    'error.parent_messaging_disabled': 'La messagerie entre parents est désactivée par l’établissement.',
    'error.parent_messaging_disabled.with': 'La messagerie entre parents est désactivée : vous ne pouvez pas écrire ici en présence de {names}.',
    'error.not_opted_in': 'Les deux parents doivent avoir activé la messagerie entre parents.',
    'error.not_opted_in.with': 'Activez la messagerie entre parents pour écrire ici en présence de {names}.',
    'error.not_participant': 'Vous ne participez plus à cette discussion.',
    'error.not_invited_by_supervisor': 'Vous ne pouvez pas écrire ici : {names} et vous ne pouvez échanger qu’en présence du professeur ou du personnel qui vous a invités.',
    'error.not_invited_by_supervisor.teacher_left': 'Le professeur qui vous a invité ({name}) a quitté la discussion : vous ne pouvez plus écrire ici.',
    'error.not_invited_by_supervisor.staff_left': 'Le membre du personnel qui vous a invité ({name}) a quitté la discussion : vous ne pouvez plus écrire ici.',
    'error.cannot_invite': 'Seul un professeur ou un personnel présent peut inviter.',
    'error.already_participant': 'Cette personne participe déjà à la discussion.',
    'error.already_participant.named': '{name} participe déjà à la discussion.',
    'error.broadcast_not_allowed': 'Vous ne pouvez pas envoyer d’informations ni de sondages à ces personnes.',
    'error.broadcast_not_allowed.teacher_scope': 'Un professeur n’envoie d’informations ou de sondages qu’aux élèves et aux parents de ses classes.',
    'error.broadcast_not_allowed.delegate_scope': 'Un parent délégué n’envoie d’informations ou de sondages qu’aux parents des classes qu’il représente.',
    'error.poll_closed': 'Ce sondage est clos : les réponses ne sont plus acceptées.',
    'error.conflict': 'Cela a changé entre-temps : regardez de nouveau puis réessayez.',
    'error.rate_limited': 'Trop rapide : attendez un instant puis réessayez.',
    'error.rate_limited.starts': 'Vous avez commencé le nombre maximal de discussions pour le moment ({per_hour} par heure, {per_day} par jour).',
    'error.rate_limited.connections': 'Trop de connexions pour ce compte (au plus {max}) : fermez un autre onglet ou appareil.',
    'error.rate_limited.reminders': 'Une relance toutes les {minutes} minutes au plus.',
    'error.too_large': 'Ce message est trop long ({max} caractères au plus).',
    'error.bad_request': 'L’application a envoyé quelque chose que le serveur n’a pas compris.',
    'error.internal': 'Le serveur a échoué : réessayez dans un instant.',
    'error.unavailable': 'Le serveur ne peut pas enregistrer cela pour le moment : réessayez dans un instant.',
    'error.disconnected': 'La connexion a été perdue avant la réponse du serveur.',
    'error.timeout': 'Le serveur n’a pas répondu à temps.',
    'error.forbidden': 'Seul un administrateur de l’établissement peut faire cela.',
    'error.not_found': 'Introuvable.',
    'error.network': 'Le serveur est injoignable.',
    'error.refused': 'Le serveur a refusé.',
    'error.others': '{count} autres',
    'error.someone': 'quelqu’un',
  },
  en: {
    'error.unauthenticated': 'Your session is no longer valid: sign in again.',
    'error.unauthenticated.expired': 'Your session has expired: sign in again.',
    'error.token_expired': 'Your session has expired: sign in again.',
    'error.unauthenticated.not_in_directory': 'Your account is no longer in the school’s directory.',
    'error.discussions_disabled': 'Discussions are switched off in the school.',
    'error.profile_disabled': 'Discussions are switched off for your profile.',
    'error.outside_hours': 'Discussions are closed at this hour.',
    'error.outside_hours.when': 'Discussions are closed at this hour. They open again at {time} on {day}.',
    'error.cannot_initiate': 'You may not start discussions. You can still reply where you are included.',
    'error.recipient_not_allowed': 'You may not start a discussion with this person.',
    'error.parent_messaging_disabled': 'Messaging between parents is switched off by the school.',
    'error.parent_messaging_disabled.with': 'Messaging between parents is switched off: you cannot write here while {names} are present.',
    'error.not_opted_in': 'Both parents must have switched on messaging between parents.',
    'error.not_opted_in.with': 'Switch on messaging between parents to write here while {names} are present.',
    'error.not_participant': 'You are no longer in this discussion.',
    'error.not_invited_by_supervisor': 'You cannot write here: you and {names} may talk only while the teacher or staff member who brought you in is present.',
    'error.not_invited_by_supervisor.teacher_left': 'The teacher who brought you in ({name}) left the discussion: you can no longer write here.',
    'error.not_invited_by_supervisor.staff_left': 'The staff member who brought you in ({name}) left the discussion: you can no longer write here.',
    'error.cannot_invite': 'Only a teacher or a staff member present may invite.',
    'error.already_participant': 'This person is already in the discussion.',
    'error.already_participant.named': '{name} is already in the discussion.',
    'error.broadcast_not_allowed': 'You may not send information or polls to these people.',
    'error.broadcast_not_allowed.teacher_scope': 'Teachers send information or polls only to the students and parents of the classes they teach.',
    'error.broadcast_not_allowed.delegate_scope': 'A delegate parent sends information or polls only to the parents of the classes they represent.',
    'error.poll_closed': 'This poll is closed: answers are no longer accepted.',
    'error.conflict': 'This changed meanwhile: look again and retry.',
    'error.rate_limited': 'Too fast: wait a second and try again.',
    'error.rate_limited.starts': 'You have started the most discussions allowed for now ({per_hour} an hour, {per_day} a day).',
    'error.rate_limited.connections': 'Too many connections for this account (at most {max}): close another tab or device.',
    'error.rate_limited.reminders': 'One reminder every {minutes} minutes at most.',
    'error.too_large': 'This message is too long ({max} characters at most).',
    'error.bad_request': 'The app sent something the server did not understand.',
    'error.internal': 'The server failed: try again in a moment.',
    'error.unavailable': 'The server cannot store this right now: try again in a moment.',
    'error.disconnected': 'The connection was lost before the server answered.',
    'error.timeout': 'The server did not answer in time.',
    'error.forbidden': 'Only an administrator of the school may do this.',
    'error.not_found': 'Not found.',
    'error.network': 'The server cannot be reached.',
    'error.refused': 'The server refused this.',
    'error.others': '{count} others',
    'error.someone': 'someone',
  },
});

const LOCALES = { fr: 'fr-FR', en: 'en-GB' };

function locale() {
  return LOCALES[language()] || 'fr-FR';
}

/** "07:00" and "mer. 25 nov." of an instant, in `timeZone` (the school's) when given. */
function when(iso, timeZone) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return null;
  const zone = timeZone ? { timeZone } : {};
  try {
    return {
      time: new Intl.DateTimeFormat(locale(), { hour: '2-digit', minute: '2-digit', hourCycle: 'h23', ...zone }).format(date),
      day: new Intl.DateTimeFormat(locale(), { weekday: 'short', day: 'numeric', month: 'short', ...zone }).format(date),
    };
  } catch (_) {
    return timeZone ? when(iso, null) : null; // a zone this browser does not know
  }
}

/** "Hugo Moreau", "Hugo Moreau et Inès Fournier", "A, B et 3 autres". */
function names(people, others) {
  const list = (people || []).map((p) => p.name || p.id);
  if (others > 0) list.push(t('error.others', { count: others }));
  if (list.length === 0) return t('error.someone');
  try {
    return new Intl.ListFormat(locale(), { style: 'long', type: 'conjunction' }).format(list);
  } catch (_) {
    return list.join(', ');
  }
}

// Codes whose sentence is built from params; the others are a plain lookup.
const BUILDERS = {
  unauthenticated: (p) => (p.reason === 'expired' || p.reason === 'not_in_directory'
    ? t(`error.unauthenticated.${p.reason}`) : t('error.unauthenticated')),
  outside_hours: (p, error) => {
    const at = when(p.opens_at || error.retry_at, p.timezone);
    return at ? t('error.outside_hours.when', at) : t('error.outside_hours');
  },
  not_invited_by_supervisor: (p) => {
    const left = p.supervisor_left;
    if (left && (left.role === 'teacher' || left.role === 'staff')) {
      return t(`error.not_invited_by_supervisor.${left.role}_left`, { name: left.name || left.id });
    }
    return t('error.not_invited_by_supervisor', { names: names(p.users, p.others) });
  },
  parent_messaging_disabled: (p) => (p.users && p.users.length
    ? t('error.parent_messaging_disabled.with', { names: names(p.users, p.others) })
    : t('error.parent_messaging_disabled')),
  not_opted_in: (p) => (p.users && p.users.length
    ? t('error.not_opted_in.with', { names: names(p.users, p.others) }) : t('error.not_opted_in')),
  already_participant: (p) => (p.user && p.user.name
    ? t('error.already_participant.named', { name: p.user.name }) : t('error.already_participant')),
  broadcast_not_allowed: (p) => (p.reason === 'teacher_scope' || p.reason === 'delegate_scope'
    ? t(`error.broadcast_not_allowed.${p.reason}`) : t('error.broadcast_not_allowed')),
  rate_limited: (p) => {
    if (p.limit === 'starts' && p.per_hour) return t('error.rate_limited.starts', p);
    if (p.limit === 'connections' && p.max) return t('error.rate_limited.connections', p);
    if (p.limit === 'reminders' && p.minutes) return t('error.rate_limited.reminders', p);
    return t('error.rate_limited');
  },
  too_large: (p) => t('error.too_large', { max: (p.max_chars || 8000).toLocaleString(locale()) }),
};

// Client-side codes (no server behind them) and server codes with a fixed sentence.
const PLAIN = new Set([
  'discussions_disabled', 'profile_disabled', 'cannot_initiate', 'token_expired', 'recipient_not_allowed', 'not_participant',
  'cannot_invite', 'poll_closed', 'conflict', 'bad_request', 'internal', 'unavailable',
  'disconnected', 'timeout', 'forbidden', 'not_found', 'network',
]);

/**
 * {title, detail} for an error frame, a REST error, an `access` event or a `post`
 * status ({code, message, params, retry_at}). `title` is written here from the code
 * and params, in the reader's language; `detail` is the server's sentence when it
 * says more than the title can (a malformed request names its field), else ''.
 */
export function explain(error) {
  const code = (error && error.code) || 'internal';
  const params = (error && error.params) || {};
  let title;
  if (BUILDERS[code]) title = BUILDERS[code](params, error || {});
  else if (PLAIN.has(code)) title = t(`error.${code}`);
  const known = title !== undefined;
  if (!known) title = t('error.refused');
  const message = error && error.message;
  const detail = message && message !== title && (!known || code === 'bad_request') ? message : '';
  return { title, detail };
}
