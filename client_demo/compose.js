// Write an information message or a poll (docs/protocol.md §14.5, POST
// /api/broadcasts). The audience picker offers only what GET
// /api/broadcasts/audience says the author may address; the recipients are
// counted live with POST /api/broadcasts/preview, which also gives the refusal
// the creation would get. The server decides: a refusal is shown in words and
// everything written stays in the form.
//
// The draft lives in the Board (memory), with its client_id: leaving the page
// and coming back keeps it, and a retry after a lost answer carries the same
// client_id, so the server returns the original instead of sending it twice.

import { debounce, h, nextId, replace } from './dom.js';
import { ROLE_LABELS, explain, formatOpening, personDetail, personName } from './text.js';
import { register, t as translate, tn } from './i18n.js';

register({
  fr: {
    'compose.kind.single': 'Un seul choix',
    'compose.kind.multiple': 'Plusieurs choix',
    'compose.kind.text': 'Texte libre',
    'compose.title': 'Nouvelle information ou nouveau sondage',
    'compose.loading': 'Chargement…',
    'compose.back': '‹ Informations & sondages',
    'compose.notAllowed': 'Vous ne pouvez pas envoyer d’informations ni de sondages.',
    'compose.information': 'Information',
    'compose.poll': 'Sondage',
    'compose.wholeSchool': 'Tout l’établissement',
    'compose.peopleChosen': 'Personnes choisies',
    'compose.name': 'Nom',
    'compose.found': 'Personnes trouvées',
    'compose.ack': 'Demander « J’ai pris connaissance »',
    'compose.anonymous': 'Sondage anonyme (vous ne verrez que les totaux)',
    'compose.deadlineDate': 'Date limite des réponses (facultatif)',
    'compose.deadlineTime': 'Heure limite',
    'compose.deadlineHint': 'Proposée : la fin de la journée scolaire dans 15 jours. Sans date, le sondage se clôt à la fin de la journée scolaire, 15 jours après sa publication.',
    'compose.zoneHint': 'Heure de l’établissement{zone}, sur 24 heures (par exemple 08:30) ; dates en jj/mm/aaaa.',
    'compose.datePlaceholder': 'jj/mm/aaaa',
    'compose.badDate': 'La date {what} n’est pas valide : écrivez-la en jj/mm/aaaa, par exemple 25/11/2026.',
    'compose.publishDate': 'Publier plus tard, le (facultatif)',
    'compose.publishTime': 'Publier à',
    'compose.expiresDate': 'Fin de publication, le (facultatif)',
    'compose.expiresTime': 'Fin de publication à',
    'compose.publication': 'Publication',
    'compose.addQuestion': 'Ajouter une question',
    'compose.questions': 'Questions',
    'compose.send': 'Envoyer',
    'compose.clear': 'Vider le formulaire',
    'compose.kind': 'Type',
    'compose.titleField': 'Titre',
    'compose.text': 'Texte',
    'compose.recipients': 'Destinataires',
    'compose.roles': 'Les personnes de ces rôles',
    'compose.in': 'Dans',
    'compose.noClass': 'Aucune classe à choisir.',
    'compose.andPeople': 'Et ces personnes',
    'compose.addPeople': 'Ajouter des personnes',
    'compose.options': 'Options',
    'compose.chooseWho': 'Choisissez qui le reçoit : un rôle, ou des personnes.',
    'compose.chooseClassOrWhole': 'Choisissez au moins une classe, ou tout l’établissement.',
    'compose.chooseClass': 'Choisissez au moins une classe.',
    'compose.counting': 'Décompte des destinataires…',
    'compose.recipientsCount.one': '{n} destinataire',
    'compose.recipientsCount.other': '{n} destinataires',
    'compose.remove': 'Retirer {name}',
    'compose.nobodyChosen': 'Personne de choisi.',
    'compose.searching': 'Recherche…',
    'compose.addPerson': 'Ajouter {name}',
    'compose.foundCount.one': '{n} trouvée.',
    'compose.foundCount.other': '{n} trouvées.',
    'compose.noMatch': 'Personne que vous pouvez joindre ne correspond à « {q} ».',
    'compose.question': 'Question {n}',
    'compose.questionPrefix': 'Question {n} : ',
    'compose.wording': 'Énoncé',
    'compose.answer': 'Réponse',
    'compose.required': 'Réponse obligatoire',
    'compose.removeChoice': 'Retirer le choix {c} de la question {n}',
    'compose.removeShort': 'Retirer',
    'compose.choice': 'Choix {c}',
    'compose.addChoice': 'Ajouter un choix',
    'compose.toQuestion': ' à la question {n}',
    'compose.atMost': 'Au plus (facultatif)',
    'compose.removeQuestion': 'Retirer la question {n}',
    'compose.sendPoll': 'Envoyer le sondage',
    'compose.sendInformation': 'Envoyer l’information',
    'compose.giveTitle': 'Merci d’indiquer un titre.',
    'compose.what.publish': 'de publication',
    'compose.what.expires': 'de fin de publication',
    'compose.what.deadline': 'limite des réponses',
    'compose.giveDate': 'Indiquez la date {what}.',
    'compose.giveTime': 'Indiquez l’heure {what} (sur 24 heures, par exemple 08:30).',
    'compose.badTime': 'L’heure {what} n’est pas valide : écrivez-la sur 24 heures, par exemple 08:30.',
    'compose.writeQuestion': 'Merci d’écrire la question {n}.',
    'compose.fillChoice': 'Merci de remplir le choix {c} de la question {n}, ou de le retirer.',
    'compose.sameChoice': 'Question {n} : le choix {c} est identique à un autre.',
    'compose.maxRange': 'Question {n} : « au plus » doit être entre 1 et {max}.',
    'compose.sending': 'Envoi…',
    'compose.scheduled': '« {title} » sera publié {when}.',
    'compose.sentTo.one': '« {title} » a été envoyé à {n} personne.',
    'compose.sentTo.other': '« {title} » a été envoyé à {n} personnes.',
    'compose.sent': '« {title} » a été envoyé.',
    'compose.nothingSent': 'Rien n’a été envoyé ; ce que vous avez écrit est toujours dans le formulaire.',
    'compose.notSent': 'Non envoyé.',
  },
  en: {
    'compose.kind.single': 'One choice',
    'compose.kind.multiple': 'Several choices',
    'compose.kind.text': 'Free text',
    'compose.title': 'New information or poll',
    'compose.loading': 'Loading…',
    'compose.back': '‹ Information & polls',
    'compose.notAllowed': 'You may not send information or polls.',
    'compose.information': 'Information',
    'compose.poll': 'Poll',
    'compose.wholeSchool': 'The whole school',
    'compose.peopleChosen': 'People chosen',
    'compose.name': 'Name',
    'compose.found': 'People found',
    'compose.ack': 'Ask for “I have read it”',
    'compose.anonymous': 'Anonymous poll (you will see only the totals)',
    'compose.deadlineDate': 'Deadline for answers (optional)',
    'compose.deadlineTime': 'Deadline time',
    'compose.deadlineHint': 'Proposed: the end of the school day in 15 days. Without a date, the poll closes at the end of the school day, 15 days after it is published.',
    'compose.zoneHint': 'The school’s time{zone}, on the 24-hour clock (for example 08:30); dates as dd/mm/yyyy.',
    'compose.datePlaceholder': 'dd/mm/yyyy',
    'compose.badDate': 'The date {what} is not valid: write it as dd/mm/yyyy, for example 25/11/2026.',
    'compose.publishDate': 'Publish later, on (optional)',
    'compose.publishTime': 'Publish at',
    'compose.expiresDate': 'End of publication, on (optional)',
    'compose.expiresTime': 'End of publication at',
    'compose.publication': 'Publication',
    'compose.addQuestion': 'Add a question',
    'compose.questions': 'Questions',
    'compose.send': 'Send',
    'compose.clear': 'Clear the form',
    'compose.kind': 'Kind',
    'compose.titleField': 'Title',
    'compose.text': 'Text',
    'compose.recipients': 'Recipients',
    'compose.roles': 'People of these roles',
    'compose.in': 'In',
    'compose.noClass': 'No class to choose.',
    'compose.andPeople': 'And these people',
    'compose.addPeople': 'Add people',
    'compose.options': 'Options',
    'compose.chooseWho': 'Choose who receives it: a role, or people.',
    'compose.chooseClassOrWhole': 'Choose at least one class, or the whole school.',
    'compose.chooseClass': 'Choose at least one class.',
    'compose.counting': 'Counting the recipients…',
    'compose.recipientsCount.one': '{n} recipient',
    'compose.recipientsCount.other': '{n} recipients',
    'compose.remove': 'Remove {name}',
    'compose.nobodyChosen': 'Nobody chosen.',
    'compose.searching': 'Searching…',
    'compose.addPerson': 'Add {name}',
    'compose.foundCount.one': '{n} found.',
    'compose.foundCount.other': '{n} found.',
    'compose.noMatch': 'Nobody you may address matches “{q}”.',
    'compose.question': 'Question {n}',
    'compose.questionPrefix': 'Question {n}: ',
    'compose.wording': 'Wording',
    'compose.answer': 'Answer',
    'compose.required': 'Answer required',
    'compose.removeChoice': 'Remove choice {c} of question {n}',
    'compose.removeShort': 'Remove',
    'compose.choice': 'Choice {c}',
    'compose.addChoice': 'Add a choice',
    'compose.toQuestion': ' to question {n}',
    'compose.atMost': 'At most (optional)',
    'compose.removeQuestion': 'Remove question {n}',
    'compose.sendPoll': 'Send the poll',
    'compose.sendInformation': 'Send the information',
    'compose.giveTitle': 'Please give a title.',
    'compose.what.publish': 'of publication',
    'compose.what.expires': 'of the end of publication',
    'compose.what.deadline': 'of the deadline',
    'compose.giveDate': 'Give the date {what}.',
    'compose.giveTime': 'Give the time {what} (24-hour clock, for example 08:30).',
    'compose.badTime': 'The time {what} is not valid: write it on the 24-hour clock, for example 08:30.',
    'compose.writeQuestion': 'Please write question {n}.',
    'compose.fillChoice': 'Please fill choice {c} of question {n}, or remove it.',
    'compose.sameChoice': 'Question {n}: choice {c} is the same as another one.',
    'compose.maxRange': 'Question {n}: “at most” must be between 1 and {max}.',
    'compose.sending': 'Sending…',
    'compose.scheduled': '“{title}” will be published at {when}.',
    'compose.sentTo.one': '“{title}” was sent to {n} person.',
    'compose.sentTo.other': '“{title}” was sent to {n} people.',
    'compose.sent': '“{title}” was sent.',
    'compose.nothingSent': 'Nothing was sent; what you wrote is still in the form.',
    'compose.notSent': 'Not sent.',
  },
});

const MAX_QUESTIONS = 20;
const MAX_CHOICES = 20;
const KINDS = ['single', 'multiple', 'text'];

function blankQuestion() {
  // `required` counts for free text only: its answer may be left empty unless ticked.
  return { text: '', kind: 'single', choices: ['', ''], max: '', required: false };
}

function blankDraft(board) {
  return {
    client_id: board.newClientId(), kind: 'information', title: '', body: '',
    roles: new Set(), classes: new Set(), whole: false, users: new Map(),
    ack: false, anonymous: false, questions: [blankQuestion()], fresh: true,
    publishDate: '', publishTime: '', expiresDate: '', expiresTime: '', deadlineDate: '', deadlineTime: '',
  };
}

/**
 * A typed date → 'yyyy-mm-dd', or null: day first, as in France and Britain ("25/11/2026",
 * "25.11.2026", "5-1-2027"), or ISO ("2026-11-25"). A text field, not <input type=date>,
 * whose order (mm/dd/yyyy or dd/mm/yyyy) follows the browser's language, not the page's.
 */
export function isoDate(text) {
  const value = String(text || '').trim();
  let m = /^(\d{4})-(\d{1,2})-(\d{1,2})$/.exec(value);
  let [year, month, day] = m ? [m[1], m[2], m[3]] : [];
  if (!m) {
    m = /^(\d{1,2})\s*[/.-]\s*(\d{1,2})\s*[/.-]\s*(\d{4})$/.exec(value);
    if (!m) return null;
    [day, month, year] = [m[1], m[2], m[3]];
  }
  const date = new Date(Date.UTC(Number(year), Number(month) - 1, Number(day)));
  if (date.getUTCMonth() !== Number(month) - 1 || date.getUTCDate() !== Number(day)) return null; // 31/02
  return date.toISOString().slice(0, 10);
}

/** UTC ISO → {date: 'dd/mm/yyyy', time: 'HH:MM'} on the wall clock of `timeZone` (the reader's when unknown). */
export function utcToWall(iso, timeZone) {
  const date = new Date(iso || '');
  if (Number.isNaN(date.getTime())) return { date: '', time: '' };
  const parts = {};
  for (const p of new Intl.DateTimeFormat('en-US', {
    timeZone: timeZone || undefined, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit',
  }).formatToParts(date)) parts[p.type] = p.value;
  return { date: `${parts.day}/${parts.month}/${parts.year}`, time: `${parts.hour}:${parts.minute}` };
}

/** How far ahead of UTC the wall clock of `timeZone` is at `ms`, in ms. */
function zoneOffset(ms, timeZone) {
  const parts = {};
  for (const p of new Intl.DateTimeFormat('en-US', {
    timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  }).formatToParts(new Date(ms))) parts[p.type] = Number(p.value);
  return Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second) - ms;
}

/**
 * A date ("25/11/2026" or "2026-11-25", see isoDate) and a 24-hour time ("14:30", "9h05")
 * on the wall clock of `timeZone` (the reader's own when unknown) → UTC ISO, or null when not valid.
 */
export function wallToUtc(date, time, timeZone) {
  const d = /^(\d{4})-(\d{2})-(\d{2})$/.exec(isoDate(date) || '');
  const t = /^([01]?\d|2[0-3])\s*[:hH.]\s*([0-5]\d)$/.exec(time.trim());
  if (!d || !t) return null;
  const wall = Date.UTC(Number(d[1]), Number(d[2]) - 1, Number(d[3]), Number(t[1]), Number(t[2]));
  let ms;
  if (timeZone) {
    ms = wall - zoneOffset(wall, timeZone);
    ms = wall - zoneOffset(ms, timeZone); // again, in case the offset changes in between
  } else {
    ms = new Date(Number(d[1]), Number(d[2]) - 1, Number(d[3]), Number(t[1]), Number(t[2])).getTime();
  }
  return Number.isNaN(ms) ? null : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function checkbox(label, checked, extra = {}) {
  const id = nextId('check');
  const input = h('input', { id, type: 'checkbox', checked, ...extra });
  return { input, element: h('div', { class: 'check' }, input, h('label', { for: id }, label)) };
}

function field(label, input, hint) {
  const id = input.id || nextId('field');
  input.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), input,
    hint ? h('p', { class: 'hint' }, hint) : null);
}

/**
 * @param {object} options
 * @param {Board} options.board
 * @param {object} options.me
 * @param {(banner) => void} options.notify
 * @param {(broadcast) => void} options.onSent
 */
export function composeView({ board, me, notify, onSent }) {
  const headingId = nextId('compose-title');
  const heading = h('h2', { id: headingId, tabindex: '-1' }, translate('compose.title'));
  const body = h('div', { class: 'compose-body' }, h('p', { class: 'loading' }, translate('compose.loading')));
  const element = h('section', { class: 'compose', 'aria-labelledby': headingId },
    h('header', { class: 'conv-head' }, h('a', { href: '#/b', class: 'back' }, translate('compose.back')), heading),
    body);
  let destroyed = false;
  let form = null;

  board.loadAudience().then((audience) => {
    if (destroyed) return;
    board.dispatchEvent(new CustomEvent('audience'));
    if (!audience.allowed) {
      const { title, detail } = explain({ code: audience.code, message: audience.message });
      replace(body, h('div', { class: 'notice not-allowed', dataset: { code: audience.code || '' } },
        h('p', { class: 'banner-title' }, translate('compose.notAllowed')),
        h('p', {}, audience.message || detail || title)));
      return;
    }
    if (!board.composeDraft) board.composeDraft = blankDraft(board);
    form = composeForm({ board, me, audience, draft: board.composeDraft, notify, onSent });
    replace(body, form.element);
  }).catch((error) => {
    if (destroyed) return;
    replace(body, h('p', { class: 'notice', role: 'alert' }, explain(error).title));
  });

  return {
    element,
    focus: () => heading.focus(),
    destroy() { destroyed = true; if (form) form.destroy(); },
  };
}

function composeForm({ board, me, audience, draft, notify, onSent }) {
  if (draft.fresh && audience.classes && audience.classes.length === 1) {
    draft.classes.add(audience.classes[0].id); // only one class to choose: chosen
  }
  // Dates and times are on the school's clock (its time zone, from /api/me), whatever the reader's own.
  const timeZone = (me && me.school && me.school.timezone) || null;
  // The server's default deadline, shown so that the author sees it and may change it:
  // the end of the school day, 15 days ahead (docs/protocol.md §14.5).
  if (draft.fresh) {
    const wall = utcToWall(audience.default_deadline, timeZone);
    draft.deadlineDate = wall.date;
    draft.deadlineTime = wall.time;
  }
  draft.fresh = false;

  const errorBox = h('div', { class: 'banner banner-error form-error', role: 'alert', tabindex: '-1', hidden: true });

  // -- kind
  const kindName = nextId('kind');
  const kindRadios = [['information', translate('compose.information')], ['poll', translate('compose.poll')]].map(([value, label]) => {
    const id = nextId('kind');
    const input = h('input', { id, type: 'radio', name: kindName, value, checked: draft.kind === value, dataset: { kind: value } });
    return { input, element: h('div', { class: 'check' }, input, h('label', { for: id }, label)) };
  });

  // -- text
  const title = h('input', { type: 'text', maxlength: '200', required: true, autocomplete: 'off' });
  title.value = draft.title;
  const text = h('textarea', { rows: '5', maxlength: '8000' });
  text.value = draft.body;

  // -- audience
  const roleBoxes = (audience.roles || []).map((role) => ({
    role, ...checkbox(ROLE_LABELS[role] || role, draft.roles.has(role), { dataset: { role } }),
  }));
  const whole = audience.whole_school ? checkbox(translate('compose.wholeSchool'), draft.whole, { dataset: { whole: 'true' } }) : null;
  const classBoxes = (audience.classes || []).map((c) => ({
    id: c.id, ...checkbox(c.name || c.id, draft.classes.has(c.id), { dataset: { class: c.id } }),
  }));
  const chips = h('ul', { class: 'chips', 'aria-label': translate('compose.peopleChosen') });
  const peopleSearch = h('input', { type: 'search', autocomplete: 'off', placeholder: translate('compose.name') });
  const peopleStatus = h('p', { class: 'picker-status', role: 'status' });
  const peopleList = h('ul', { class: 'picker-results', 'aria-label': translate('compose.found') });
  const count = h('p', { class: 'recipients-count', role: 'status', 'aria-live': 'polite' });

  // -- options
  const ack = checkbox(translate('compose.ack'), draft.ack, { dataset: { option: 'ack' } });
  const anonymous = checkbox(translate('compose.anonymous'), draft.anonymous, { dataset: { option: 'anonymous' } });

  // -- when: publish later, end of publication, the poll's deadline; a date, and a
  // 24-hour time (a text field: <input type=time> shows "08:00 PM" in some locales).
  const zoneHint = translate('compose.zoneHint', { zone: timeZone ? ` (${timeZone})` : '' });
  function when(dateKey, timeKey, dateLabel, timeLabel, part) {
    const date = h('input', {
      type: 'text', inputmode: 'numeric', autocomplete: 'off', maxlength: '10', size: '10',
      placeholder: translate('compose.datePlaceholder'), dataset: { when: `${part}-date` },
    });
    date.value = draft[dateKey];
    date.addEventListener('input', () => { draft[dateKey] = date.value; });
    const time = h('input', {
      type: 'text', inputmode: 'numeric', autocomplete: 'off', maxlength: '5', size: '5',
      placeholder: 'hh:mm', pattern: '([01]?[0-9]|2[0-3])[:hH.][0-5][0-9]', dataset: { when: `${part}-time` },
    });
    time.value = draft[timeKey];
    time.addEventListener('input', () => { draft[timeKey] = time.value; });
    return { date, time, element: h('div', { class: 'row when' }, field(dateLabel, date), field(timeLabel, time)) };
  }
  const deadline = when('deadlineDate', 'deadlineTime', translate('compose.deadlineDate'), translate('compose.deadlineTime'), 'deadline');
  const pollOptions = h('div', { class: 'poll-options' }, anonymous.element, deadline.element,
    h('p', { class: 'hint' }, translate('compose.deadlineHint'), ' ', zoneHint));
  const publishLater = when('publishDate', 'publishTime', translate('compose.publishDate'), translate('compose.publishTime'), 'publish');
  const expires = when('expiresDate', 'expiresTime', translate('compose.expiresDate'), translate('compose.expiresTime'), 'expires');
  const whenBox = h('fieldset', { class: 'sub when-options' }, h('legend', {}, translate('compose.publication')),
    publishLater.element, expires.element, h('p', { class: 'hint' }, zoneHint));

  // -- questions
  const questionList = h('div', { class: 'question-editors' });
  const addQuestion = h('button', { type: 'button', class: 'secondary', dataset: { part: 'add-question' } }, translate('compose.addQuestion'));
  const questionsBox = h('fieldset', { class: 'questions-editor' }, h('legend', {}, translate('compose.questions')), questionList, addQuestion);

  const submit = h('button', { type: 'submit', class: 'compose-send' }, translate('compose.send'));
  const clear = h('button', { type: 'button', class: 'secondary' }, translate('compose.clear'));
  const status = h('p', { class: 'form-status', role: 'status' });

  title.dataset.field = 'title';
  text.dataset.field = 'text';
  const element = h('form', { class: 'compose-form', 'aria-label': translate('compose.title'), novalidate: true },
    errorBox,
    h('fieldset', { class: 'kind-choice' }, h('legend', {}, translate('compose.kind')), h('div', { class: 'row' }, kindRadios.map((k) => k.element))),
    field(translate('compose.titleField'), title),
    field(translate('compose.text'), text),
    h('fieldset', { class: 'audience' }, h('legend', {}, translate('compose.recipients')),
      roleBoxes.length ? h('fieldset', { class: 'sub' }, h('legend', {}, translate('compose.roles')),
        h('div', { class: 'row' }, roleBoxes.map((r) => r.element))) : null,
      roleBoxes.length ? h('fieldset', { class: 'sub' }, h('legend', {}, translate('compose.in')),
        whole ? whole.element : null,
        h('div', { class: 'row' }, classBoxes.map((c) => c.element)),
        classBoxes.length === 0 && !whole ? h('p', { class: 'hint' }, translate('compose.noClass')) : null) : null,
      h('fieldset', { class: 'sub' }, h('legend', {}, translate('compose.andPeople')),
        chips, field(translate('compose.addPeople'), peopleSearch), peopleStatus, peopleList),
      count),
    h('fieldset', { class: 'options' }, h('legend', {}, translate('compose.options')), ack.element, pollOptions, whenBox),
    questionsBox,
    h('div', { class: 'row' }, submit, clear, status));

  // ------------------------------------------------------------------ audience

  function to() {
    return {
      roles: roleBoxes.filter((r) => r.input.checked).map((r) => r.role),
      classes: whole && whole.input.checked ? null : classBoxes.filter((c) => c.input.checked).map((c) => c.id),
      users: [...draft.users.keys()],
    };
  }

  /** Why the audience cannot be sent as it is, or ''. */
  function audienceProblem(t) {
    if (t.roles.length === 0 && t.users.length === 0) return translate('compose.chooseWho');
    if (t.roles.length && t.classes !== null && t.classes.length === 0) {
      return whole ? translate('compose.chooseClassOrWhole') : translate('compose.chooseClass');
    }
    return '';
  }

  let previewGeneration = 0;
  const preview = debounce(async () => {
    const mine = ++previewGeneration;
    const t = to();
    const problem = audienceProblem(t);
    count.dataset.code = '';
    if (problem) {
      count.textContent = problem;
      count.dataset.state = 'empty';
      return;
    }
    count.textContent = translate('compose.counting');
    count.dataset.state = 'counting';
    try {
      const reply = await board.preview(t);
      if (mine !== previewGeneration) return;
      const n = reply.recipients;
      count.textContent = tn('compose.recipientsCount', n);
      count.dataset.state = 'ok';
    } catch (error) {
      if (mine !== previewGeneration) return;
      const { title: lead, detail } = explain(error);
      count.textContent = detail ? `${lead} ${detail}` : lead;
      count.dataset.state = 'refused';
      count.dataset.code = error.code;
    }
  }, 300);

  function syncAudience() {
    draft.roles = new Set(roleBoxes.filter((r) => r.input.checked).map((r) => r.role));
    draft.classes = new Set(classBoxes.filter((c) => c.input.checked).map((c) => c.id));
    draft.whole = Boolean(whole && whole.input.checked);
    for (const c of classBoxes) c.input.disabled = draft.whole;
    preview();
  }
  for (const box of [...roleBoxes, ...classBoxes, ...(whole ? [whole] : [])]) box.input.addEventListener('change', syncAudience);

  function renderChips() {
    replace(chips, [...draft.users.values()].map((person) => {
      const name = personName(person, person.id);
      return h('li', { class: 'chip', dataset: { user: person.id } },
        h('span', { title: personDetail(person) }, name),
        h('button', {
          type: 'button', class: 'chip-remove', 'aria-label': translate('compose.remove', { name }),
          onclick: () => { draft.users.delete(person.id); renderChips(); preview(); peopleSearch.focus(); },
        }, '×'));
    }));
    if (draft.users.size === 0) chips.append(h('li', { class: 'chips-empty' }, translate('compose.nobodyChosen')));
  }

  let searchGeneration = 0;
  const search = debounce(async () => {
    const mine = ++searchGeneration;
    const q = peopleSearch.value.trim();
    if (!q) {
      replace(peopleList);
      peopleStatus.textContent = '';
      return;
    }
    peopleStatus.textContent = translate('compose.searching');
    let reply;
    try {
      reply = await board.loadAudience(q);
    } catch (error) {
      if (mine !== searchGeneration) return;
      peopleStatus.textContent = explain(error).title;
      return;
    }
    if (mine !== searchGeneration) return;
    const people = (reply.people || []).filter((p) => !draft.users.has(p.id));
    replace(peopleList, people.map((person) => {
      const detail = personDetail(person);
      return h('li', {}, h('button', {
        type: 'button', class: 'person-button', dataset: { user: person.id },
        'aria-label': translate('compose.addPerson', { name: `${person.name}${detail ? `, ${detail}` : ''}` }),
        onclick: () => {
          draft.users.set(person.id, person);
          renderChips();
          preview();
          search();
          peopleSearch.focus();
        },
      }, h('span', { class: 'person-name' }, person.name), h('span', { class: 'person-detail' }, detail)));
    }));
    peopleStatus.textContent = people.length ? tn('compose.foundCount', people.length) : translate('compose.noMatch', { q });
  }, 250);
  peopleSearch.addEventListener('input', search);
  peopleSearch.addEventListener('keydown', (event) => {
    if (event.key !== 'Enter') return;
    event.preventDefault(); // Enter picks the only person found; it never sends the form
    const buttons = peopleList.querySelectorAll('button');
    if (buttons.length === 1) buttons[0].click();
  });

  // ------------------------------------------------------------------ questions

  function renderQuestions(focus) {
    const multiple = draft.questions.length > 1;
    replace(questionList, draft.questions.map((q, i) => {
      const n = i + 1;
      const legendId = nextId('qe');
      const wording = h('input', { type: 'text', maxlength: '300', autocomplete: 'off', dataset: { q: String(i), part: 'text' } });
      wording.value = q.text;
      wording.addEventListener('input', () => { q.text = wording.value; });
      const wordingId = nextId('qe-text');
      wording.id = wordingId;
      const kind = h('select', { id: nextId('qe-kind'), dataset: { q: String(i), part: 'kind' } },
        KINDS.map((value) => h('option', { value, selected: q.kind === value }, translate(`compose.kind.${value}`))));
      kind.addEventListener('change', () => {
        q.kind = kind.value;
        if (q.kind !== 'text' && q.choices.length < 2) q.choices.push(...['', ''].slice(q.choices.length));
        renderQuestions({ q: i, part: 'kind' });
      });
      const box = h('fieldset', { class: 'question-editor', 'aria-labelledby': legendId, dataset: { q: String(i) } },
        h('legend', { id: legendId }, translate('compose.question', { n })),
        h('div', { class: 'field' }, h('label', { for: wordingId }, h('span', { class: 'sr-only' }, translate('compose.questionPrefix', { n })), translate('compose.wording')), wording),
        h('div', { class: 'field' }, h('label', { for: kind.id }, h('span', { class: 'sr-only' }, translate('compose.questionPrefix', { n })), translate('compose.answer')), kind));
      if (q.kind === 'text') {
        const required = checkbox([h('span', { class: 'sr-only' }, translate('compose.questionPrefix', { n })), translate('compose.required')], q.required, { dataset: { q: String(i), part: 'required' } });
        required.input.addEventListener('change', () => { q.required = required.input.checked; });
        box.append(required.element);
      } else {
        const choices = h('ol', { class: 'choice-editors' }, q.choices.map((choice, c) => {
          const id = nextId('qe-choice');
          const input = h('input', { id, type: 'text', maxlength: '200', autocomplete: 'off', dataset: { q: String(i), choice: String(c) } });
          input.value = choice;
          input.addEventListener('input', () => { q.choices[c] = input.value; });
          const remove = h('button', {
            type: 'button', class: 'link remove-choice', 'aria-label': translate('compose.removeChoice', { c: c + 1, n }),
            hidden: q.choices.length <= 2,
            onclick: () => { q.choices.splice(c, 1); renderQuestions({ q: i, part: 'add-choice' }); },
          }, translate('compose.removeShort'));
          return h('li', { class: 'choice-editor' },
            h('label', { for: id }, h('span', { class: 'sr-only' }, translate('compose.questionPrefix', { n })), translate('compose.choice', { c: c + 1 })), input, remove);
        }));
        const add = h('button', {
          type: 'button', class: 'secondary small', dataset: { q: String(i), part: 'add-choice' },
          hidden: q.choices.length >= MAX_CHOICES,
          onclick: () => { q.choices.push(''); renderQuestions({ q: i, choice: q.choices.length - 1 }); },
        }, translate('compose.addChoice'), h('span', { class: 'sr-only' }, translate('compose.toQuestion', { n })));
        box.append(choices, add);
        if (q.kind === 'multiple') {
          const max = h('input', { type: 'number', min: '1', max: String(q.choices.length), inputmode: 'numeric', dataset: { q: String(i), part: 'max' } });
          max.value = q.max;
          max.addEventListener('input', () => { q.max = max.value; });
          const maxId = nextId('qe-max');
          max.id = maxId;
          box.append(h('div', { class: 'field max-field' },
            h('label', { for: maxId }, h('span', { class: 'sr-only' }, translate('compose.questionPrefix', { n })), translate('compose.atMost')), max));
        }
      }
      if (multiple) {
        box.append(h('button', {
          type: 'button', class: 'link remove-question', dataset: { q: String(i), part: 'remove' },
          onclick: () => { draft.questions.splice(i, 1); renderQuestions({ part: 'add-question' }); },
        }, translate('compose.removeQuestion', { n })));
      }
      return box;
    }));
    addQuestion.hidden = draft.questions.length >= MAX_QUESTIONS;
    if (!focus) return;
    let target = null;
    if (focus.part === 'add-question') target = addQuestion;
    else if (focus.choice !== undefined) target = questionList.querySelector(`[data-q="${focus.q}"][data-choice="${focus.choice}"]`);
    else target = questionList.querySelector(`[data-q="${focus.q}"][data-part="${focus.part}"]`);
    if (target) target.focus();
  }
  addQuestion.addEventListener('click', () => {
    draft.questions.push(blankQuestion());
    renderQuestions({ q: draft.questions.length - 1, part: 'text' });
  });

  // ------------------------------------------------------------------ kind & fields

  function syncKind() {
    const poll = kindRadios[1].input.checked;
    draft.kind = poll ? 'poll' : 'information';
    ack.element.hidden = poll;
    pollOptions.hidden = !poll;
    questionsBox.hidden = !poll;
    submit.textContent = poll ? translate('compose.sendPoll') : translate('compose.sendInformation');
  }
  for (const k of kindRadios) k.input.addEventListener('change', syncKind);
  title.addEventListener('input', () => { draft.title = title.value; });
  text.addEventListener('input', () => { draft.body = text.value; });
  ack.input.addEventListener('change', () => { draft.ack = ack.input.checked; });
  anonymous.input.addEventListener('change', () => { draft.anonymous = anonymous.input.checked; });

  // Enter in a one-line field never sends the form (a broadcast reaches many people).
  element.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && event.target instanceof HTMLInputElement) event.preventDefault();
  });

  // ------------------------------------------------------------------ sending

  /** The POST body, or {problem, focus} when something is missing. */
  function build() {
    const t = to();
    if (!title.value.trim()) return { problem: translate('compose.giveTitle'), focus: title };
    const problem = audienceProblem(t);
    if (problem) return { problem, focus: (roleBoxes[0] || {}).input || peopleSearch };
    const out = {
      kind: draft.kind, client_id: draft.client_id, title: title.value.trim(), body: text.value, to: t,
    };
    const moments = [[publishLater, 'publish_at', 'publish'], [expires, 'expires_at', 'expires']];
    if (draft.kind === 'poll') moments.push([deadline, 'deadline', 'deadline']);
    const times = {};
    for (const [w, key, part] of moments) {
      const what = translate(`compose.what.${part}`);
      const date = w.date.value.trim();
      const time = w.time.value.trim();
      if (!date && !time) continue;
      if (!date) return { problem: translate('compose.giveDate', { what }), focus: w.date };
      if (!time) return { problem: translate('compose.giveTime', { what }), focus: w.time };
      if (!isoDate(date)) return { problem: translate('compose.badDate', { what }), focus: w.date };
      const at = wallToUtc(date, time, timeZone);
      if (!at) return { problem: translate('compose.badTime', { what }), focus: w.time };
      times[key] = at;
    }
    if (times.publish_at) out.publish_at = times.publish_at;
    if (times.expires_at) out.expires_at = times.expires_at;
    if (draft.kind === 'information') {
      out.ack_requested = ack.input.checked;
      return { body: out };
    }
    const questions = [];
    for (const [i, q] of draft.questions.entries()) {
      const n = i + 1;
      const wording = questionList.querySelector(`[data-q="${i}"][data-part="text"]`);
      if (!q.text.trim()) return { problem: translate('compose.writeQuestion', { n }), focus: wording };
      if (q.kind === 'text') {
        questions.push({ text: q.text.trim(), kind: 'text', required: Boolean(q.required) });
        continue;
      }
      const choices = q.choices.map((c) => c.trim());
      const empty = choices.findIndex((c) => !c);
      if (empty >= 0) {
        return {
          problem: translate('compose.fillChoice', { c: empty + 1, n }),
          focus: questionList.querySelector(`[data-q="${i}"][data-choice="${empty}"]`),
        };
      }
      const twice = choices.findIndex((c, j) => choices.indexOf(c) !== j);
      if (twice >= 0) {
        return {
          problem: translate('compose.sameChoice', { c: twice + 1, n }),
          focus: questionList.querySelector(`[data-q="${i}"][data-choice="${twice}"]`),
        };
      }
      const question = { text: q.text.trim(), kind: q.kind, choices };
      if (q.kind === 'multiple' && String(q.max).trim()) {
        const max = Number(q.max);
        if (!Number.isInteger(max) || max < 1 || max > choices.length) {
          return {
            problem: translate('compose.maxRange', { n, max: choices.length }),
            focus: questionList.querySelector(`[data-q="${i}"][data-part="max"]`),
          };
        }
        question.max = max;
      }
      questions.push(question);
    }
    out.questions = questions;
    out.anonymous = anonymous.input.checked;
    if (times.deadline) out.deadline = times.deadline;
    return { body: out };
  }

  element.addEventListener('submit', async (event) => {
    event.preventDefault();
    errorBox.hidden = true;
    const { body: payload, problem, focus } = build();
    if (problem) {
      status.textContent = problem;
      if (focus) focus.focus();
      return;
    }
    submit.disabled = true;
    status.textContent = translate('compose.sending');
    try {
      const b = await board.create(payload);
      board.composeDraft = null; // sent: the next one is a new draft, with a new client_id
      status.textContent = '';
      const n = b.stats ? b.stats.recipients : null;
      if (b.status === 'scheduled') {
        notify({ kind: 'info', title: translate('compose.scheduled', { title: b.title, when: formatOpening(b.publish_at) }) });
      } else {
        notify({ kind: 'success', title: n !== null ? tn('compose.sentTo', n, { title: b.title }) : translate('compose.sent', { title: b.title }) });
      }
      onSent(b);
    } catch (error) {
      // Refused (or lost): nothing is lost here; a retry keeps the same client_id.
      const { title: lead, detail } = explain(error);
      replace(errorBox, h('div', { class: 'banner-text' },
        h('p', { class: 'banner-title' }, lead),
        detail ? h('p', { class: 'banner-detail' }, detail) : null,
        h('p', { class: 'banner-more' }, translate('compose.nothingSent'))));
      // Said once, at the top of the form (role=alert), rather than in the page's banners too.
      errorBox.dataset.code = error.code;
      errorBox.hidden = false;
      status.textContent = translate('compose.notSent');
      errorBox.focus();
    } finally {
      submit.disabled = false;
    }
  });

  clear.addEventListener('click', () => {
    board.composeDraft = blankDraft(board);
    const next = composeForm({ board, me, audience, draft: board.composeDraft, notify, onSent });
    element.replaceWith(next.element);
    next.focus();
  });

  renderChips();
  renderQuestions();
  syncKind();
  syncAudience();
  return { element, focus: () => title.focus(), destroy() {} };
}
