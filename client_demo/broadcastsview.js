// "Informations & sondages": the lists of received and sent broadcasts, one
// broadcast (a recipient's reading, acknowledgement and answers; an author's
// live figures, results and reminder), and the compose form (compose.js).
//
// Routes: #/b (the lists), #/b/<id> (one), #/b/new (write one). Phone width
// shows one pane at a time, as the discussions do.

import { Board, newerStats } from './broadcasts.js';
import { composeView } from './compose.js';
import { debounce, h, linkify, nextId, reconcile, replace } from './dom.js';
import { personLabel } from './people.js';
import { ROLE_LABELS, explain, formatFull, formatOpening, formatTime, personDetail, personName } from './text.js';
import { register, t, tn } from './i18n.js';

register({
  fr: {
    'b.kind.information': 'Information',
    'b.kind.poll': 'Sondage',
    'b.status.published': 'Publié',
    'b.status.scheduled': 'Programmé',
    'b.status.dropped': 'Non publié',
    'b.ofTotal': '{n} sur {total}',
    'b.wholeSchool': 'tout l’établissement',
    'b.noClass': 'aucune classe',
    'b.rolesOf': '{roles} de {where}',
    'b.chosen.one': '{n} personne choisie',
    'b.chosen.other': '{n} personnes choisies',
    'b.received': 'Reçus',
    'b.sent': 'Envoyés',
    'b.receivedEmpty': 'Rien reçu pour l’instant.',
    'b.loading': 'Chargement…',
    'b.new': 'Nouveau',
    'b.sentEmpty': 'Rien envoyé pour l’instant.',
    'b.more': 'Voir plus',
    'b.sentByMe': 'Envoyés par moi',
    'b.title': 'Informations & sondages',
    'b.choose': 'Choisissez une information ou un sondage.',
    'b.badge.new': 'Nouveau',
    'b.badge.reminded': 'Rappel',
    'b.badge.acknowledged': 'Lu et confirmé',
    'b.badge.ack': 'Accusé de lecture demandé',
    'b.badge.closed': 'Clos',
    'b.badge.answered': 'Répondu',
    'b.badge.answerBy': 'Répondre avant {when}',
    'b.badge.toAnswer': 'À répondre',
    'b.figure.answered': 'Réponses : {of}',
    'b.figure.acknowledged': 'Confirmations : {of}',
    'b.figure.read': 'Lectures : {of}',
    'b.back': '‹ Informations & sondages',
    'b.published': 'publié {when}',
    'b.toBePublished': 'à publier {when}',
    'b.byYou': 'par vous',
    'b.from': 'de ',
    'b.notAvailable': 'Non disponible',
    'b.notFound': 'Cette information ou ce sondage n’existe pas, ou ne vous est pas adressé.',
    'b.ackButton': 'J’ai pris connaissance',
    'b.reminderAt': '{name} a envoyé un rappel à {time}.',
    'b.acknowledged': 'Vous avez confirmé en avoir pris connaissance ({time}).',
    'b.askAck': '{name} vous demande de confirmer que vous l’avez lu.',
    'b.sendAnswers': 'Envoyer mes réponses',
    'b.changeAnswers': 'Modifier mes réponses',
    'b.yourAnswers': 'Vos réponses',
    'b.optional': 'Réponse facultative.',
    'b.answerTo': 'Réponse à la question {n}',
    'b.upTo': 'Choisissez-en jusqu’à {max}.',
    'b.oneOrMore': 'Choisissez-en un ou plusieurs.',
    'b.pleaseAnswer': 'Merci de répondre à la question {n}.',
    'b.sending': 'Envoi…',
    'b.answersSaved': 'Vos réponses ont été enregistrées.',
    'b.answersNotSaved': 'Non enregistrées : vos réponses sont toujours là.',
    'b.anonymousInfo': 'Anonyme : l’auteur ne voit que les totaux, jamais qui a répondu quoi.',
    'b.namedInfo': 'Nominatif : {name} voit vos réponses.',
    'b.canAnswerUntil': 'Vous pouvez répondre, et modifier vos réponses, jusqu’à {when}.',
    'b.canChange': 'Vous pouvez modifier vos réponses jusqu’à la clôture du sondage.',
    'b.closedSince': 'Ce sondage est clos depuis {when}.',
    'b.closed': 'Ce sondage est clos.',
    'b.yourAnswersBelow': 'Vos réponses sont affichées ci-dessous.',
    'b.didNotAnswer': 'Vous n’avez pas répondu.',
    'b.answeredAt': 'Répondu {when}.',
    'b.liveFigures': 'Chiffres en direct',
    'b.results': 'Résultats',
    'b.hideResults': 'Masquer les résultats',
    'b.remind': 'Relancer',
    'b.stat.recipients': 'Destinataires',
    'b.stat.received': 'Reçu',
    'b.stat.read': 'Lu',
    'b.stat.acknowledged': 'Confirmé',
    'b.stat.answered': 'Répondu',
    'b.nobody': 'Personne.',
    'b.answeredOf': '{of} destinataires ont répondu.',
    'b.noAnswer': 'Pas encore de réponse.',
    'b.anonymousPoll': 'Sondage anonyme : personne, vous compris, ne peut voir qui a répondu quoi, ni qui a répondu.',
    'b.pending.not_received': 'Pas encore reçu',
    'b.pending.not_read': 'Reçu, pas encore lu',
    'b.pending.not_acknowledged': 'Lu, sans accusé de lecture',
    'b.pending.not_answered': 'Lu, sans réponse',
    'b.byPerson': 'Réponses par personne',
    'b.person': 'Personne',
    'b.reminding': 'Envoi du rappel…',
    'b.reminded.one': '{n} personne relancée',
    'b.reminded.other': '{n} personnes relancées',
    'b.remindAt': 'Un rappel a été envoyé récemment : le prochain est possible {when}.',
    'b.remindWait': 'Un rappel a été envoyé récemment : attendez 10 minutes.',
    'b.noReminder': 'Aucun rappel envoyé.',
    'b.willPublish': ' Sera publié {when}.',
    'b.closedShort': 'Clos.',
    'b.answersUntil': 'Réponses jusqu’à {when}.',
    'b.anonymousShort': ' Anonyme.',
    'b.expires': ' Fin de publication : {when}.',
    'b.to': 'À : {audience}',
    'b.droppedWhy': 'Non publié : {reason}',
    'b.dropped': 'Non publié.',
  },
  en: {
    'b.kind.information': 'Information',
    'b.kind.poll': 'Poll',
    'b.status.published': 'Published',
    'b.status.scheduled': 'Scheduled',
    'b.status.dropped': 'Not published',
    'b.ofTotal': '{n} of {total}',
    'b.wholeSchool': 'the whole school',
    'b.noClass': 'no class',
    'b.rolesOf': '{roles} of {where}',
    'b.chosen.one': '{n} chosen person',
    'b.chosen.other': '{n} chosen people',
    'b.received': 'Received',
    'b.sent': 'Sent',
    'b.receivedEmpty': 'Nothing received yet.',
    'b.loading': 'Loading…',
    'b.new': 'New',
    'b.sentEmpty': 'Nothing sent yet.',
    'b.more': 'Show more',
    'b.sentByMe': 'Sent by me',
    'b.title': 'Information & polls',
    'b.choose': 'Choose an information message or a poll.',
    'b.badge.new': 'New',
    'b.badge.reminded': 'Reminder',
    'b.badge.acknowledged': 'Acknowledged',
    'b.badge.ack': 'Acknowledgement requested',
    'b.badge.closed': 'Closed',
    'b.badge.answered': 'Answered',
    'b.badge.answerBy': 'Answer by {when}',
    'b.badge.toAnswer': 'To answer',
    'b.figure.answered': '{of} answered',
    'b.figure.acknowledged': '{of} acknowledged',
    'b.figure.read': '{of} read',
    'b.back': '‹ Information & polls',
    'b.published': 'published {when}',
    'b.toBePublished': 'to be published {when}',
    'b.byYou': 'by you',
    'b.from': 'from ',
    'b.notAvailable': 'Not available',
    'b.notFound': 'This information message or poll does not exist, or is not addressed to you.',
    'b.ackButton': 'I have read it',
    'b.reminderAt': '{name} sent a reminder at {time}.',
    'b.acknowledged': 'You acknowledged it ({time}).',
    'b.askAck': '{name} asks you to confirm that you have read it.',
    'b.sendAnswers': 'Send my answers',
    'b.changeAnswers': 'Change my answers',
    'b.yourAnswers': 'Your answers',
    'b.optional': 'Optional answer.',
    'b.answerTo': 'Answer to question {n}',
    'b.upTo': 'Choose up to {max}.',
    'b.oneOrMore': 'Choose one or more.',
    'b.pleaseAnswer': 'Please answer question {n}.',
    'b.sending': 'Sending…',
    'b.answersSaved': 'Your answers were saved.',
    'b.answersNotSaved': 'Not saved: your answers are still here.',
    'b.anonymousInfo': 'Anonymous: the author sees only the totals, never who answered what.',
    'b.namedInfo': 'Named: {name} sees your answers.',
    'b.canAnswerUntil': 'You can answer, and change your answers, until {when}.',
    'b.canChange': 'You can change your answers until the poll closes.',
    'b.closedSince': 'This poll is closed since {when}.',
    'b.closed': 'This poll is closed.',
    'b.yourAnswersBelow': 'Your answers are shown below.',
    'b.didNotAnswer': 'You did not answer.',
    'b.answeredAt': 'Answered {when}.',
    'b.liveFigures': 'Live figures',
    'b.results': 'Results',
    'b.hideResults': 'Hide the results',
    'b.remind': 'Remind',
    'b.stat.recipients': 'Recipients',
    'b.stat.received': 'Received',
    'b.stat.read': 'Read',
    'b.stat.acknowledged': 'Acknowledged',
    'b.stat.answered': 'Answered',
    'b.nobody': 'Nobody.',
    'b.answeredOf': '{of} recipients answered.',
    'b.noAnswer': 'No answer yet.',
    'b.anonymousPoll': 'Anonymous poll: nobody, you included, can see who answered what, nor who answered.',
    'b.pending.not_received': 'Not received yet',
    'b.pending.not_read': 'Received, not read yet',
    'b.pending.not_acknowledged': 'Read, not acknowledged',
    'b.pending.not_answered': 'Read, not answered',
    'b.byPerson': 'Answers by person',
    'b.person': 'Person',
    'b.reminding': 'Sending the reminder…',
    'b.reminded.one': '{n} reminded',
    'b.reminded.other': '{n} reminded',
    'b.remindAt': 'A reminder was sent recently: the next one is possible at {when}.',
    'b.remindWait': 'A reminder was sent recently: wait 10 minutes.',
    'b.noReminder': 'No reminder sent.',
    'b.willPublish': ' Will be published at {when}.',
    'b.closedShort': 'Closed.',
    'b.answersUntil': 'Answers until {when}.',
    'b.anonymousShort': ' Anonymous.',
    'b.expires': ' End of publication: {when}.',
    'b.to': 'To: {audience}',
    'b.droppedWhy': 'Not published: {reason}',
    'b.dropped': 'Not published.',
  },
});

// Read in the language of the moment (other modules import them).
export const KIND_LABELS = Object.freeze({
  get information() { return t('b.kind.information'); },
  get poll() { return t('b.kind.poll'); },
});
const STATUS_LABELS = Object.freeze({
  get published() { return t('b.status.published'); },
  get scheduled() { return t('b.status.scheduled'); },
  get dropped() { return t('b.status.dropped'); },
});

/** "12 sur 28" */
function ofTotal(n, total) {
  return t('b.ofTotal', { n: n ?? 0, total: total ?? 0 });
}

/** The audience as given, in words: "Parents · Seconde A · 2 chosen people". */
export function describeAudience(to, classNames = new Map()) {
  if (!to) return '';
  const parts = [];
  const roles = (to.roles || []).map((r) => ROLE_LABELS[r] || r);
  if (roles.length) {
    const where = to.classes === null ? t('b.wholeSchool')
      : (to.classes || []).map((c) => classNames.get(c) || c).join(', ');
    parts.push(t('b.rolesOf', { roles: roles.join(', '), where: where || t('b.noClass') }));
  }
  const users = to.users || [];
  if (users.length) parts.push(tn('b.chosen', users.length));
  return parts.join(' · ');
}

/**
 * The whole area for a route: {name: 'broadcasts'|'broadcast'|'compose', id}.
 * @param {object} options
 * @param {Board} options.board
 * @param {object} options.me      /api/me
 * @param {object} options.route
 * @param {(banner) => void} options.notify
 */
export function broadcastsView({ board, me, route, notify }) {
  const headingId = nextId('b-title');
  const received = h('ul', { class: 'broadcast-list received-list', 'aria-label': t('b.received') });
  const sent = h('ul', { class: 'broadcast-list sent-list', 'aria-label': t('b.sent') });
  const receivedEmpty = h('p', { class: 'list-empty', hidden: true }, t('b.receivedEmpty'));
  const loading = h('p', { class: 'list-empty', hidden: board.loaded }, t('b.loading'));
  const newButton = h('a', { href: '#/b/new', class: 'button new-button', hidden: true }, t('b.new'));
  const sentEmpty = h('p', { class: 'list-empty', hidden: true }, t('b.sentEmpty'));
  const moreButton = (name) => {
    const button = h('button', { type: 'button', class: `more-button more-${name}`, hidden: true }, t('b.more'));
    button.addEventListener('click', () => {
      button.disabled = true;
      board.loadMore(name).catch((error) => notify({ kind: 'error', ...explain(error), code: error.code }))
        .finally(() => { button.disabled = false; });
    });
    return button;
  };
  const receivedMore = moreButton('received');
  const sentMore = moreButton('sent');
  const sentSection = h('section', { class: 'broadcast-section', 'aria-label': t('b.sentByMe'), hidden: true },
    h('h3', { class: 'list-title' }, t('b.sentByMe')), sent, sentEmpty, sentMore);
  const sidebar = h('aside', { class: 'sidebar', 'aria-labelledby': headingId },
    h('div', { class: 'sidebar-head' }, h('h2', { id: headingId }, t('b.title')), newButton),
    loading,
    h('section', { class: 'broadcast-section', 'aria-label': t('b.received') },
      h('h3', { class: 'list-title' }, t('b.received')), received, receivedEmpty, receivedMore),
    sentSection);

  let pane = null;
  if (route.name === 'compose') {
    pane = composeView({ board, me, notify, onSent: (b) => { location.hash = `#/b/${b.id}`; } });
  } else if (route.name === 'broadcast') {
    pane = broadcastDetail({ board, id: route.id, notify });
  }
  const element = h('div', { class: `chat-layout broadcasts${pane ? ' show-pane' : ''}` }, sidebar,
    h('div', { class: 'pane' }, pane ? pane.element
      : h('div', { class: 'empty-pane' }, h('p', {}, t('b.choose')))));

  function receivedItem(b) {
    const unread = !b.mine || !b.mine.read_at;
    const reminded = board.reminded(b);
    const active = route.name === 'broadcast' && route.id === b.id;
    const badges = [];
    if (unread) badges.push(['new', t('b.badge.new')]);
    if (reminded) badges.push(['reminded', t('b.badge.reminded')]);
    if (b.ack_requested) {
      badges.push(b.mine && b.mine.acknowledged_at ? ['done', t('b.badge.acknowledged')] : ['ack', t('b.badge.ack')]);
    }
    if (b.poll) {
      if (Board.closed(b)) badges.push(['closed', t('b.badge.closed')]);
      else if (b.mine && b.mine.answered_at) badges.push(['done', t('b.badge.answered')]);
      else badges.push(['todo', b.poll.deadline ? t('b.badge.answerBy', { when: formatOpening(b.poll.deadline) }) : t('b.badge.toAnswer')]);
    }
    const version = JSON.stringify([b.title, b.mine, b.poll && b.poll.closed, reminded, active]);
    return {
      key: `b${b.id}`,
      version,
      render: () => h('li', { class: `broadcast-item${unread || reminded ? ' has-unread' : ''}` },
        h('a', { href: `#/b/${b.id}`, 'aria-current': active ? 'page' : null, dataset: { broadcast: String(b.id) } },
          h('span', { class: 'item-top' },
            h('span', { class: 'item-subject' }, b.title),
            b.published_at ? h('time', { datetime: b.published_at }, formatTime(b.published_at)) : null),
          h('span', { class: 'item-bottom' },
            h('span', { class: 'item-preview' },
              h('span', { class: 'kind' }, KIND_LABELS[b.kind] || b.kind), ' · ', personName(b.author))),
          h('span', { class: 'badges' }, badges.map(([kind, text]) => h('span', { class: `badge badge-${kind}` }, text))))),
    };
  }

  function sentItem(b) {
    const active = route.name === 'broadcast' && route.id === b.id;
    const s = b.stats;
    let figure = '';
    if (s) figure = b.kind === 'poll' ? t('b.figure.answered', { of: ofTotal(s.answered, s.recipients) })
      : b.ack_requested ? t('b.figure.acknowledged', { of: ofTotal(s.acknowledged, s.recipients) })
        : t('b.figure.read', { of: ofTotal(s.read, s.recipients) });
    const version = JSON.stringify([b.title, b.status, figure, active]);
    return {
      key: `b${b.id}`,
      version,
      render: () => h('li', { class: `broadcast-item status-${b.status || 'published'}` },
        h('a', { href: `#/b/${b.id}`, 'aria-current': active ? 'page' : null, dataset: { broadcast: String(b.id) } },
          h('span', { class: 'item-top' },
            h('span', { class: 'item-subject' }, b.title),
            b.published_at ? h('time', { datetime: b.published_at }, formatTime(b.published_at)) : null),
          h('span', { class: 'item-bottom' },
            h('span', { class: 'item-preview' }, h('span', { class: 'kind' }, KIND_LABELS[b.kind] || b.kind),
              ' · ', STATUS_LABELS[b.status] || b.status || ''),
            figure ? h('span', { class: 'figure' }, figure) : null))),
    };
  }

  function render() {
    loading.hidden = board.loaded;
    const r = board.sorted(board.received);
    reconcile(received, r.map(receivedItem));
    receivedEmpty.hidden = !board.loaded || r.length > 0;
    const s = board.sorted(board.sent);
    reconcile(sent, s.map(sentItem));
    const allowed = Boolean(board.audience && board.audience.allowed);
    sentSection.hidden = s.length === 0 && !allowed;
    sentEmpty.hidden = s.length > 0;
    newButton.hidden = !allowed;
    receivedMore.hidden = !board.more.received;
    sentMore.hidden = !board.more.sent;
  }
  const renderSoon = debounce(render, 30);

  const listeners = { change: renderSoon, list: renderSoon, audience: renderSoon };
  for (const [type, fn] of Object.entries(listeners)) board.addEventListener(type, fn);
  render();
  // What I may address can change (settings, my opt-in): asked again on each visit; the
  // compose form asks for itself.
  if (route.name !== 'compose') {
    board.loadAudience().then(() => board.dispatchEvent(new CustomEvent('audience'))).catch(() => {});
  }

  return {
    element,
    focus: () => (pane && pane.focus ? pane.focus() : element.querySelector('h2').focus()),
    destroy() {
      for (const [type, fn] of Object.entries(listeners)) board.removeEventListener(type, fn);
      if (pane) pane.destroy();
    },
  };
}

// ---------------------------------------------------------------------- one broadcast

function broadcastDetail({ board, id, notify }) {
  const titleId = nextId('bd-title');
  const title = h('h2', { id: titleId, tabindex: '-1' }, t('b.loading'));
  const meta = h('p', { class: 'conv-people' });
  const content = h('div', { class: 'broadcast-content' });
  const element = h('section', { class: 'broadcast-detail', 'aria-labelledby': titleId },
    h('header', { class: 'conv-head' },
      h('a', { href: '#/b', class: 'back' }, t('b.back')), title, meta),
    content);

  let part = null; // the recipient's or the author's part, once the broadcast is known
  let missing = false;

  function renderHead(b) {
    title.textContent = b.title;
    const when = b.published_at ? t('b.published', { when: formatFull(b.published_at) })
      : b.publish_at ? t('b.toBePublished', { when: formatFull(b.publish_at) }) : '';
    replace(meta, h('span', { class: 'kind' }, KIND_LABELS[b.kind] || b.kind), ' · ',
      board.isMine(b) ? t('b.byYou') : [t('b.from'), h('span', { class: 'author', title: personDetail(b.author) }, personName(b.author))],
      when ? ` · ${when}` : '');
  }

  function render() {
    const b = board.get(id);
    if (!b) {
      if (board.loaded && !missing) {
        missing = true;
        // Not in the lists (older than the 100 listed, or not mine to see): ask for it.
        board.fetch(id).catch((error) => {
          title.textContent = t('b.notAvailable');
          replace(content, h('p', { class: 'notice' }, error.code === 'not_found'
            ? t('b.notFound')
            : explain(error).title));
        });
      }
      return;
    }
    renderHead(b);
    if (!part) {
      part = board.isMine(b) ? authorPart({ board, id, notify }) : recipientPart({ board, id, notify });
      replace(content, part.element);
    }
    part.update(board.get(id));
  }

  const onChange = (e) => { if (!e.detail || e.detail.id === undefined || e.detail.id === id) render(); };
  board.addEventListener('change', onChange);
  board.addEventListener('list', onChange);
  board.addEventListener('audience', onChange);
  render();

  return {
    element,
    focus: () => title.focus(),
    destroy() {
      board.removeEventListener('change', onChange);
      board.removeEventListener('list', onChange);
      board.removeEventListener('audience', onChange);
      if (part) part.destroy();
    },
  };
}

/** Body text: plain text, line breaks kept, http(s) addresses as links (never HTML). */
function bodyText(b) {
  return b.body ? h('p', { class: 'body broadcast-body' }, linkify(b.body)) : null;
}

// ---------------------------------------------------------------------- recipient

function recipientPart({ board, id, notify }) {
  const b0 = board.get(id);
  const reminder = h('p', { class: 'notice reminder-note', hidden: true });
  const ackBlock = h('div', { class: 'ack-block', hidden: !b0.ack_requested });
  const ackButton = h('button', { type: 'button', class: 'ack-button' }, t('b.ackButton'));
  const ackStatus = h('p', { class: 'ack-status', role: 'status' });
  replace(ackBlock, ackButton, ackStatus);
  const poll = b0.poll ? pollForm({ board, id, notify }) : null;
  const element = h('div', { class: 'broadcast-scroll' }, reminder, bodyText(b0), ackBlock, poll ? poll.element : null);

  // Opening it is reading it (and looking at the reminder, if one came).
  let readSent = false;
  function markRead(b) {
    if (b.mine && !b.mine.read_at && !readSent) {
      readSent = true;
      board.read(id).catch((error) => {
        readSent = false;
        if (error.code !== 'network') notify({ kind: 'error', ...explain(error), code: error.code });
      });
    }
  }

  ackButton.addEventListener('click', async () => {
    ackButton.disabled = true;
    try {
      await board.acknowledge(id);
    } catch (error) {
      ackButton.disabled = false;
      notify({ kind: 'error', ...explain(error), code: error.code });
    }
  });

  return {
    element,
    update(b) {
      markRead(b);
      const at = b.mine && b.mine.reminded_at;
      if (at && board.reminded(b)) {
        reminder.hidden = false;
        reminder.textContent = t('b.reminderAt', { name: personName(b.author), time: formatTime(at) });
        board.seeReminder(id); // seen now; the note stays while the page is open
      }
      if (b.ack_requested) {
        const done = b.mine && b.mine.acknowledged_at;
        ackButton.hidden = Boolean(done);
        ackStatus.textContent = done
          ? t('b.acknowledged', { time: formatTime(done) })
          : t('b.askAck', { name: personName(b.author) });
      }
      if (poll) poll.update(b);
    },
    destroy() {},
  };
}

/** The answers of a poll: radios, checkboxes (up to max) and text, prefilled with mine. */
function pollForm({ board, id, notify }) {
  const headingId = nextId('poll-title');
  const info = h('p', { class: 'hint poll-info' });
  const questions = h('div', { class: 'questions' });
  const submit = h('button', { type: 'submit', class: 'send-answers' }, t('b.sendAnswers'));
  const status = h('p', { class: 'form-status', role: 'status' });
  const closedNote = h('p', { class: 'notice poll-closed', hidden: true });
  const form = h('form', { class: 'poll-form', 'aria-labelledby': headingId, novalidate: true },
    h('h3', { id: headingId }, t('b.yourAnswers')), info, closedNote, questions, h('div', { class: 'row' }, submit, status));

  let inputs = []; // per question: {kind, els, max}
  let shown = null; // what the inputs show: JSON of [answers, closed]
  let dirty = false; // the user changed something not yet sent

  function build(b) {
    const closed = Board.closed(b);
    const answers = (b.mine && b.mine.answers) || [];
    inputs = [];
    replace(questions, b.poll.questions.map((q, i) => {
      const mine = answers[i] || null;
      const legendId = nextId('q');
      const group = h('fieldset', { class: 'question', dataset: { question: String(i) }, 'aria-labelledby': legendId },
        h('legend', { id: legendId }, `${i + 1}. ${q.text}`));
      // A stored poll from before `required` existed has it set by the server.
      const optional = q.kind === 'text' && q.required === false;
      if (optional) group.append(h('p', { class: 'hint' }, t('b.optional')));
      if (q.kind === 'text') {
        const areaId = nextId('answer');
        const area = h('textarea', { id: areaId, rows: '3', maxlength: '2000', disabled: closed });
        area.value = (mine && mine.text) || '';
        group.append(h('label', { for: areaId, class: 'sr-only' }, t('b.answerTo', { n: i + 1 })), area);
        inputs.push({ kind: 'text', els: [area], optional });
      } else {
        const multiple = q.kind === 'multiple';
        const max = multiple ? (q.max || q.choices.length) : 1;
        if (multiple) {
          group.append(h('p', { class: 'hint' }, max < q.choices.length
            ? t('b.upTo', { max }) : t('b.oneOrMore')));
        }
        const name = nextId('choice');
        const chosen = new Set((mine && mine.choices) || []);
        const els = q.choices.map((choice, c) => {
          const inputId = nextId('opt');
          const input = h('input', {
            id: inputId, type: multiple ? 'checkbox' : 'radio', name, value: String(c),
            checked: chosen.has(c), disabled: closed,
          });
          group.append(h('div', { class: 'check' }, input, h('label', { for: inputId }, choice)));
          return input;
        });
        inputs.push({ kind: q.kind, els, max });
        if (multiple) {
          const limit = () => {
            const n = els.filter((x) => x.checked).length;
            for (const x of els) x.disabled = closed || (!x.checked && n >= max);
          };
          for (const x of els) x.addEventListener('change', limit);
          limit();
        }
      }
      return group;
    }));
    shown = JSON.stringify([b.mine && b.mine.answers, closed]);
    dirty = false;
  }

  function collect() {
    const answers = [];
    for (const [i, q] of inputs.entries()) {
      if (q.kind === 'text') {
        const text = q.els[0].value.trim();
        if (!text && !q.optional) return { missing: i };
        answers.push({ text });
      } else {
        const choices = q.els.filter((x) => x.checked).map((x) => Number(x.value));
        if (choices.length === 0) return { missing: i };
        answers.push({ choices });
      }
    }
    return { answers };
  }

  form.addEventListener('input', () => { dirty = true; status.textContent = ''; });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const { answers, missing } = collect();
    if (missing !== undefined) {
      status.textContent = t('b.pleaseAnswer', { n: missing + 1 });
      const first = questions.children[missing].querySelector('input, textarea');
      if (first) first.focus();
      return;
    }
    submit.disabled = true;
    status.textContent = t('b.sending');
    try {
      await board.answer(id, answers);
      dirty = false;
      status.textContent = t('b.answersSaved');
    } catch (error) {
      status.textContent = t('b.answersNotSaved');
      notify({ kind: 'error', ...explain(error), code: error.code });
    } finally {
      submit.disabled = false;
    }
  });

  return {
    element: form,
    update(b) {
      const closed = Board.closed(b);
      const next = JSON.stringify([b.mine && b.mine.answers, closed]);
      // Answers saved elsewhere (another tab) replace the form unless something is being typed here.
      if (shown === null || (next !== shown && (!dirty || closed))) build(b);
      const answered = b.mine && b.mine.answered_at;
      const who = b.poll.anonymous ? t('b.anonymousInfo') : t('b.namedInfo', { name: personName(b.author) });
      info.textContent = closed ? who
        : `${b.poll.deadline ? t('b.canAnswerUntil', { when: formatOpening(b.poll.deadline) }) : t('b.canChange')} ${who}`;
      closedNote.hidden = !closed;
      closedNote.textContent = `${b.poll.deadline ? t('b.closedSince', { when: formatOpening(b.poll.deadline) }) : t('b.closed')} ${answered ? t('b.yourAnswersBelow') : t('b.didNotAnswer')}`;
      submit.hidden = closed;
      submit.textContent = answered ? t('b.changeAnswers') : t('b.sendAnswers');
      if (answered && !dirty && !status.textContent) status.textContent = t('b.answeredAt', { when: formatTime(answered) });
    },
  };
}

// ---------------------------------------------------------------------- author

/** One question's per-choice counts as bars (text, not only colour: each bar says its count). */
function questionBars(q, i, row, total) {
  const counts = row || [];
  const scale = Math.max(1, total || 0, ...counts);
  return h('div', { class: 'question-stats', dataset: { question: String(i) } },
    h('p', { class: 'question-text' }, `${i + 1}. ${q.text}`),
    h('ul', { class: 'bars' }, q.choices.map((choice, c) => {
      const n = counts[c] || 0;
      const fill = h('span', { class: 'bar-fill' });
      fill.style.width = `${Math.round((100 * n) / scale)}%`;
      return h('li', { class: 'bar-row', dataset: { choice: String(c) } },
        h('span', { class: 'bar-label' }, choice),
        h('span', { class: 'bar', 'aria-hidden': 'true' }, fill),
        h('span', { class: 'bar-count' }, String(n)));
    })));
}

/** The bars of every choice question of a poll. */
function countBars(questions, counts, total) {
  return questions.map((q, i) => (q.kind === 'text' ? null : questionBars(q, i, counts && counts[i], total)));
}

function authorPart({ board, id, notify }) {
  const b0 = board.get(id);
  const dropped = h('p', { class: 'notice dropped-note', role: 'alert', hidden: true });
  const status = h('p', { class: 'broadcast-status' });
  const audience = h('p', { class: 'hint audience' });
  const figures = h('dl', { class: 'figures' });
  const bars = h('div', { class: 'live-bars' });
  const statsId = nextId('stats');
  const stats = h('section', { class: 'stats panel-card', 'aria-labelledby': statsId },
    h('h3', { id: statsId }, t('b.liveFigures')), figures, bars);
  const resultsButton = h('button', { type: 'button', class: 'secondary results-button', 'aria-expanded': 'false' }, t('b.results'));
  const remindButton = h('button', { type: 'button', class: 'secondary remind-button' }, t('b.remind'));
  const actionStatus = h('p', { class: 'form-status remind-status', role: 'status' });
  const results = h('section', { class: 'results panel-card', 'aria-label': t('b.results'), hidden: true });
  const element = h('div', { class: 'broadcast-scroll' }, dropped, status, audience, bodyText(b0), stats,
    h('div', { class: 'row actions' }, resultsButton, remindButton, actionStatus), results);

  let lastVersion = -1; // the stats version the results were last asked for
  // The classes' names come with the audience, which may arrive after this page (a
  // reload): asked at each render, and the page renders again when it comes.
  const classNames = () => new Map(((board.audience && board.audience.classes) || []).map((c) => [c.id, c.name]));

  function renderStats(b) {
    const s = b.stats;
    const rows = [['recipients', s ? s.recipients : 0]];
    if (s) {
      rows.push(['received', s.received], ['read', s.read]);
      if (b.ack_requested) rows.push(['acknowledged', s.acknowledged]);
      if (b.poll) rows.push(['answered', s.answered]);
    }
    replace(figures, rows.map(([key, n]) => h('div', { class: 'figure', dataset: { stat: key } },
      h('dt', {}, t(`b.stat.${key}`)), h('dd', {}, String(n ?? 0)))));
    replace(bars, b.poll && s ? countBars(b.poll.questions, s.counts, s.answered) : null);
    stats.hidden = !s && b.status !== 'published';
  }

  // Results: loaded on demand, then kept fresh while shown (the stats events say when).
  let resultsShown = false;
  let generation = 0;
  async function loadResults() {
    const mine = ++generation;
    let reply;
    try {
      reply = await board.results(id);
    } catch (error) {
      if (mine !== generation) return;
      replace(results, h('p', { class: 'notice' }, explain(error).title));
      return;
    }
    if (mine !== generation || !resultsShown) return;
    renderResults(board.get(id), reply);
  }
  const reloadResults = debounce(loadResults, 250);

  function personList(key, people) {
    if (!people) return null;
    return h('div', { class: 'pending', dataset: { pending: key } },
      h('h4', {}, `${t(`b.pending.${key}`)} (${people.length})`),
      people.length ? h('ul', { class: 'names' }, people.map((p) => h('li', { title: personDetail(p) }, personLabel(p))))
        : h('p', { class: 'hint' }, t('b.nobody')));
  }

  function renderResults(b, reply) {
    // The results are exact at their version; the live figures keep the highest one.
    const s = reply.stats || b.stats;
    const newer = newerStats(b.stats, reply.stats);
    if (newer !== b.stats) {
      b.stats = newer;
      lastVersion = newer.version;
      renderStats(b);
    }
    const parts = [h('h3', {}, t('b.results'))];
    if (b.poll) {
      parts.push(h('p', { class: 'hint' }, t('b.answeredOf', { of: ofTotal(s && s.answered, s && s.recipients) })));
      b.poll.questions.forEach((q, i) => {
        if (q.kind === 'text') {
          const texts = (reply.texts && reply.texts[i]) || [];
          parts.push(h('div', { class: 'question-stats texts', dataset: { question: String(i) } },
            h('p', { class: 'question-text' }, `${i + 1}. ${q.text}`),
            texts.length ? h('ul', { class: 'free-texts' }, texts.map((t) => h('li', { class: 'body' }, t)))
              : h('p', { class: 'hint' }, t('b.noAnswer'))));
        } else {
          parts.push(questionBars(q, i, s && s.counts && s.counts[i], s && s.answered));
        }
      });
    }
    if (b.poll && b.poll.anonymous) {
      parts.push(h('p', { class: 'notice' }, t('b.anonymousPoll')));
    }
    const pending = reply.pending;
    if (pending) {
      // The server's sets are nested (whoever has not received it has not read it, nor
      // answered): each person is listed once, at the step where they stopped.
      const ids = (people) => new Set((people || []).map((p) => p.id));
      const notReceived = ids(pending.not_received);
      const notRead = ids(pending.not_read);
      const only = (people, before) => (people ? people.filter((p) => !before.has(p.id)) : people);
      parts.push(h('div', { class: 'pending-lists' },
        personList('not_received', pending.not_received),
        personList('not_read', only(pending.not_read, notReceived)),
        b.ack_requested ? personList('not_acknowledged',
          only(only(pending.not_acknowledged, notReceived), notRead)) : null,
        b.poll ? personList('not_answered',
          only(only(pending.not_answered, notReceived), notRead)) : null));
    }
    if (b.poll && reply.responses) {
      const qs = b.poll.questions;
      parts.push(h('div', { class: 'table-wrap' }, h('table', { class: 'responses' },
        h('caption', {}, t('b.byPerson')),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, t('b.person')),
          qs.map((q, i) => h('th', { scope: 'col', title: q.text }, `${i + 1}. ${q.text}`)))),
        h('tbody', {}, reply.responses.length === 0
          ? h('tr', {}, h('td', { colspan: String(qs.length + 1) }, t('b.noAnswer')))
          : reply.responses.map((r) => h('tr', { dataset: { user: r.user.id } },
            h('th', { scope: 'row' }, personLabel(r.user)),
            qs.map((q, i) => h('td', { class: 'body' }, answerText(q, r.answers && r.answers[i])))))))));
    }
    replace(results, parts);
    results.hidden = false;
  }

  resultsButton.addEventListener('click', () => {
    resultsShown = !resultsShown;
    resultsButton.setAttribute('aria-expanded', String(resultsShown));
    resultsButton.textContent = resultsShown ? t('b.hideResults') : t('b.results');
    if (resultsShown) {
      replace(results, h('p', {}, t('b.loading')));
      results.hidden = false;
      loadResults();
    } else {
      results.hidden = true;
    }
  });

  remindButton.addEventListener('click', async () => {
    remindButton.disabled = true;
    actionStatus.textContent = t('b.reminding');
    try {
      const reply = await board.remind(id);
      const n = reply.reminded || 0;
      actionStatus.textContent = tn('b.reminded', n);
    } catch (error) {
      if (error.code === 'rate_limited') {
        actionStatus.textContent = error.retry_at
          ? t('b.remindAt', { when: formatOpening(error.retry_at) })
          : t('b.remindWait');
      } else {
        actionStatus.textContent = t('b.noReminder');
        notify({ kind: 'error', ...explain(error), code: error.code });
      }
    } finally {
      remindButton.disabled = false;
    }
  });

  return {
    element,
    update(b) {
      const state = b.status || 'published';
      status.replaceChildren(h('span', { class: `badge badge-status status-${state}` }, STATUS_LABELS[state] || state),
        state === 'scheduled' && b.publish_at ? t('b.willPublish', { when: formatOpening(b.publish_at) }) : '',
        b.poll ? ` ${b.poll.closed ? t('b.closedShort') : b.poll.deadline ? t('b.answersUntil', { when: formatOpening(b.poll.deadline) }) : ''}` : '',
        b.poll && b.poll.anonymous ? t('b.anonymousShort') : '',
        b.expires_at ? h('span', { class: 'expires' }, t('b.expires', { when: formatOpening(b.expires_at) })) : '');
      audience.textContent = b.to ? t('b.to', { audience: describeAudience(b.to, classNames()) }) : '';
      dropped.hidden = !b.dropped && state !== 'dropped';
      dropped.textContent = b.dropped
        ? t('b.droppedWhy', { reason: `${explain(b.dropped).title}${b.dropped.message ? ` (${b.dropped.message})` : ''}` })
        : t('b.dropped');
      remindButton.hidden = state !== 'published';
      resultsButton.hidden = state !== 'published';
      renderStats(b);
      const version = b.stats ? b.stats.version : -1;
      if (resultsShown && version !== lastVersion) reloadResults();
      lastVersion = version;
    },
    destroy() { generation += 1; resultsShown = false; },
  };
}

/** One answer, in words: the chosen choices, or the text. */
function answerText(q, a) {
  if (!a) return '—';
  if (q.kind === 'text') return a.text || '—';
  return (a.choices || []).map((c) => q.choices[c] ?? String(c)).join(', ') || '—';
}
