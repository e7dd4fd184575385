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

export const KIND_LABELS = { information: 'Information', poll: 'Poll' };
const STATUS_LABELS = { published: 'Published', scheduled: 'Scheduled', dropped: 'Not published' };

/** "12 of 28" */
function ofTotal(n, total) {
  return `${n ?? 0} of ${total ?? 0}`;
}

/** The audience as given, in words: "Parents · Seconde A · 2 chosen people". */
export function describeAudience(to, classNames = new Map()) {
  if (!to) return '';
  const parts = [];
  const roles = (to.roles || []).map((r) => ROLE_LABELS[r] || r);
  if (roles.length) {
    const where = to.classes === null ? 'the whole school'
      : (to.classes || []).map((c) => classNames.get(c) || c).join(', ');
    parts.push(`${roles.join(', ')} of ${where || 'no class'}`);
  }
  const users = to.users || [];
  if (users.length) parts.push(`${users.length} chosen ${users.length === 1 ? 'person' : 'people'}`);
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
  const received = h('ul', { class: 'broadcast-list received-list', 'aria-label': 'Received' });
  const sent = h('ul', { class: 'broadcast-list sent-list', 'aria-label': 'Sent' });
  const receivedEmpty = h('p', { class: 'list-empty', hidden: true }, 'Nothing received yet.');
  const loading = h('p', { class: 'list-empty', hidden: board.loaded }, 'Loading…');
  const newButton = h('a', { href: '#/b/new', class: 'button new-button', hidden: true }, 'New');
  const sentEmpty = h('p', { class: 'list-empty', hidden: true }, 'Nothing sent yet.');
  const moreButton = (name) => {
    const button = h('button', { type: 'button', class: `more-button more-${name}`, hidden: true }, 'Voir plus');
    button.addEventListener('click', () => {
      button.disabled = true;
      board.loadMore(name).catch((error) => notify({ kind: 'error', ...explain(error), code: error.code }))
        .finally(() => { button.disabled = false; });
    });
    return button;
  };
  const receivedMore = moreButton('received');
  const sentMore = moreButton('sent');
  const sentSection = h('section', { class: 'broadcast-section', 'aria-label': 'Sent by me', hidden: true },
    h('h3', { class: 'list-title' }, 'Sent by me'), sent, sentEmpty, sentMore);
  const sidebar = h('aside', { class: 'sidebar', 'aria-labelledby': headingId },
    h('div', { class: 'sidebar-head' }, h('h2', { id: headingId }, 'Informations & sondages'), newButton),
    loading,
    h('section', { class: 'broadcast-section', 'aria-label': 'Received' },
      h('h3', { class: 'list-title' }, 'Received'), received, receivedEmpty, receivedMore),
    sentSection);

  let pane = null;
  if (route.name === 'compose') {
    pane = composeView({ board, me, notify, onSent: (b) => { location.hash = `#/b/${b.id}`; } });
  } else if (route.name === 'broadcast') {
    pane = broadcastDetail({ board, id: route.id, notify });
  }
  const element = h('div', { class: `chat-layout broadcasts${pane ? ' show-pane' : ''}` }, sidebar,
    h('div', { class: 'pane' }, pane ? pane.element
      : h('div', { class: 'empty-pane' }, h('p', {}, 'Choose an information message or a poll.'))));

  function receivedItem(b) {
    const unread = !b.mine || !b.mine.read_at;
    const reminded = board.reminded(b);
    const active = route.name === 'broadcast' && route.id === b.id;
    const badges = [];
    if (unread) badges.push(['new', 'New']);
    if (reminded) badges.push(['reminded', 'Reminder']);
    if (b.ack_requested) {
      badges.push(b.mine && b.mine.acknowledged_at ? ['done', 'Acknowledged'] : ['ack', 'Acknowledgement requested']);
    }
    if (b.poll) {
      if (Board.closed(b)) badges.push(['closed', 'Closed']);
      else if (b.mine && b.mine.answered_at) badges.push(['done', 'Answered']);
      else badges.push(['todo', b.poll.deadline ? `Answer by ${formatOpening(b.poll.deadline)}` : 'To answer']);
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
    if (s) figure = b.kind === 'poll' ? `${ofTotal(s.answered, s.recipients)} answered`
      : b.ack_requested ? `${ofTotal(s.acknowledged, s.recipients)} acknowledged`
        : `${ofTotal(s.read, s.recipients)} read`;
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
  const title = h('h2', { id: titleId, tabindex: '-1' }, 'Loading…');
  const meta = h('p', { class: 'conv-people' });
  const content = h('div', { class: 'broadcast-content' });
  const element = h('section', { class: 'broadcast-detail', 'aria-labelledby': titleId },
    h('header', { class: 'conv-head' },
      h('a', { href: '#/b', class: 'back' }, '‹ Informations & sondages'), title, meta),
    content);

  let part = null; // the recipient's or the author's part, once the broadcast is known
  let missing = false;

  function renderHead(b) {
    title.textContent = b.title;
    const when = b.published_at ? `published ${formatFull(b.published_at)}`
      : b.publish_at ? `to be published ${formatFull(b.publish_at)}` : '';
    replace(meta, h('span', { class: 'kind' }, KIND_LABELS[b.kind] || b.kind), ' · ',
      board.isMine(b) ? 'by you' : ['from ', h('span', { class: 'author', title: personDetail(b.author) }, personName(b.author))],
      when ? ` · ${when}` : '');
  }

  function render() {
    const b = board.get(id);
    if (!b) {
      if (board.loaded && !missing) {
        missing = true;
        // Not in the lists (older than the 100 listed, or not mine to see): ask for it.
        board.fetch(id).catch((error) => {
          title.textContent = 'Not available';
          replace(content, h('p', { class: 'notice' }, error.code === 'not_found'
            ? 'This information message or poll does not exist, or is not addressed to you.'
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
  const ackButton = h('button', { type: 'button' }, 'J’ai pris connaissance');
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
        reminder.textContent = `${personName(b.author)} sent a reminder at ${formatTime(at)}.`;
        board.seeReminder(id); // seen now; the note stays while the page is open
      }
      if (b.ack_requested) {
        const done = b.mine && b.mine.acknowledged_at;
        ackButton.hidden = Boolean(done);
        ackStatus.textContent = done
          ? `You acknowledged it (${formatTime(done)}).`
          : `${personName(b.author)} asks you to confirm that you have read it.`;
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
  const submit = h('button', { type: 'submit' }, 'Send my answers');
  const status = h('p', { class: 'form-status', role: 'status' });
  const closedNote = h('p', { class: 'notice poll-closed', hidden: true });
  const form = h('form', { class: 'poll-form', 'aria-labelledby': headingId, novalidate: true },
    h('h3', { id: headingId }, 'Your answers'), info, closedNote, questions, h('div', { class: 'row' }, submit, status));

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
      if (optional) group.append(h('p', { class: 'hint' }, 'Réponse facultative.'));
      if (q.kind === 'text') {
        const areaId = nextId('answer');
        const area = h('textarea', { id: areaId, rows: '3', maxlength: '2000', disabled: closed });
        area.value = (mine && mine.text) || '';
        group.append(h('label', { for: areaId, class: 'sr-only' }, `Answer to question ${i + 1}`), area);
        inputs.push({ kind: 'text', els: [area], optional });
      } else {
        const multiple = q.kind === 'multiple';
        const max = multiple ? (q.max || q.choices.length) : 1;
        if (multiple) {
          group.append(h('p', { class: 'hint' }, max < q.choices.length
            ? `Choose up to ${max}.` : 'Choose one or more.'));
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
      status.textContent = `Please answer question ${missing + 1}.`;
      const first = questions.children[missing].querySelector('input, textarea');
      if (first) first.focus();
      return;
    }
    submit.disabled = true;
    status.textContent = 'Sending…';
    try {
      await board.answer(id, answers);
      dirty = false;
      status.textContent = 'Your answers were saved.';
    } catch (error) {
      status.textContent = 'Not saved: your answers are still here.';
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
      const who = b.poll.anonymous ? 'Anonymous: the author sees only the totals, never who answered what.'
        : `Named: ${personName(b.author)} sees your answers.`;
      info.textContent = closed ? who
        : `${b.poll.deadline ? `You can answer, and change your answers, until ${formatOpening(b.poll.deadline)}.` : 'You can change your answers until the poll closes.'} ${who}`;
      closedNote.hidden = !closed;
      closedNote.textContent = `This poll is closed${b.poll.deadline ? ` since ${formatOpening(b.poll.deadline)}` : ''}. ${answered ? 'Your answers are shown below.' : 'You did not answer.'}`;
      submit.hidden = closed;
      submit.textContent = answered ? 'Change my answers' : 'Send my answers';
      if (answered && !dirty && !status.textContent) status.textContent = `Answered ${formatTime(answered)}.`;
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
    h('h3', { id: statsId }, 'Live figures'), figures, bars);
  const resultsButton = h('button', { type: 'button', class: 'secondary', 'aria-expanded': 'false' }, 'Results');
  const remindButton = h('button', { type: 'button', class: 'secondary' }, 'Remind');
  const actionStatus = h('p', { class: 'form-status remind-status', role: 'status' });
  const results = h('section', { class: 'results panel-card', 'aria-label': 'Results', hidden: true });
  const element = h('div', { class: 'broadcast-scroll' }, dropped, status, audience, bodyText(b0), stats,
    h('div', { class: 'row actions' }, resultsButton, remindButton, actionStatus), results);

  let lastVersion = -1; // the stats version the results were last asked for
  // The classes' names come with the audience, which may arrive after this page (a
  // reload): asked at each render, and the page renders again when it comes.
  const classNames = () => new Map(((board.audience && board.audience.classes) || []).map((c) => [c.id, c.name]));

  function renderStats(b) {
    const s = b.stats;
    const rows = [['recipients', 'Recipients', s ? s.recipients : 0]];
    if (s) {
      rows.push(['received', 'Received', s.received], ['read', 'Read', s.read]);
      if (b.ack_requested) rows.push(['acknowledged', 'Acknowledged', s.acknowledged]);
      if (b.poll) rows.push(['answered', 'Answered', s.answered]);
    }
    replace(figures, rows.map(([key, label, n]) => h('div', { class: 'figure', dataset: { stat: key } },
      h('dt', {}, label), h('dd', {}, String(n ?? 0)))));
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

  function personList(label, key, people) {
    if (!people) return null;
    return h('div', { class: 'pending', dataset: { pending: key } },
      h('h4', {}, `${label} (${people.length})`),
      people.length ? h('ul', { class: 'names' }, people.map((p) => h('li', { title: personDetail(p) }, personLabel(p))))
        : h('p', { class: 'hint' }, 'Nobody.'));
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
    const parts = [h('h3', {}, 'Results')];
    if (b.poll) {
      parts.push(h('p', { class: 'hint' }, `${ofTotal(s && s.answered, s && s.recipients)} recipients answered.`));
      b.poll.questions.forEach((q, i) => {
        if (q.kind === 'text') {
          const texts = (reply.texts && reply.texts[i]) || [];
          parts.push(h('div', { class: 'question-stats texts', dataset: { question: String(i) } },
            h('p', { class: 'question-text' }, `${i + 1}. ${q.text}`),
            texts.length ? h('ul', { class: 'free-texts' }, texts.map((t) => h('li', { class: 'body' }, t)))
              : h('p', { class: 'hint' }, 'No answer yet.')));
        } else {
          parts.push(questionBars(q, i, s && s.counts && s.counts[i], s && s.answered));
        }
      });
    }
    if (b.poll && b.poll.anonymous) {
      parts.push(h('p', { class: 'notice' }, 'Anonymous poll: nobody, you included, can see who answered what, nor who answered.'));
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
        personList('Pas encore reçu', 'not_received', pending.not_received),
        personList('Reçu, pas encore lu', 'not_read', only(pending.not_read, notReceived)),
        b.ack_requested ? personList('Lu, sans accusé de lecture', 'not_acknowledged',
          only(only(pending.not_acknowledged, notReceived), notRead)) : null,
        b.poll ? personList('Lu, sans réponse', 'not_answered',
          only(only(pending.not_answered, notReceived), notRead)) : null));
    }
    if (b.poll && reply.responses) {
      const qs = b.poll.questions;
      parts.push(h('div', { class: 'table-wrap' }, h('table', { class: 'responses' },
        h('caption', {}, 'Answers by person'),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Person'),
          qs.map((q, i) => h('th', { scope: 'col', title: q.text }, `${i + 1}. ${q.text}`)))),
        h('tbody', {}, reply.responses.length === 0
          ? h('tr', {}, h('td', { colspan: String(qs.length + 1) }, 'No answer yet.'))
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
    resultsButton.textContent = resultsShown ? 'Hide the results' : 'Results';
    if (resultsShown) {
      replace(results, h('p', {}, 'Loading…'));
      results.hidden = false;
      loadResults();
    } else {
      results.hidden = true;
    }
  });

  remindButton.addEventListener('click', async () => {
    remindButton.disabled = true;
    actionStatus.textContent = 'Sending the reminder…';
    try {
      const reply = await board.remind(id);
      const n = reply.reminded || 0;
      actionStatus.textContent = `${n} reminded`;
    } catch (error) {
      if (error.code === 'rate_limited') {
        actionStatus.textContent = error.retry_at
          ? `A reminder was sent recently: the next one is possible at ${formatOpening(error.retry_at)}.`
          : 'A reminder was sent recently: wait 10 minutes.';
      } else {
        actionStatus.textContent = 'No reminder sent.';
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
        state === 'scheduled' && b.publish_at ? ` Will be published at ${formatOpening(b.publish_at)}.` : '',
        b.poll ? ` ${b.poll.closed ? 'Closed.' : b.poll.deadline ? `Answers until ${formatOpening(b.poll.deadline)}.` : ''}` : '',
        b.poll && b.poll.anonymous ? ' Anonymous.' : '',
        b.expires_at ? h('span', { class: 'expires' }, ` Fin de publication : ${formatOpening(b.expires_at)}.`) : '');
      audience.textContent = b.to ? `To: ${describeAudience(b.to, classNames())}` : '';
      dropped.hidden = !b.dropped && state !== 'dropped';
      dropped.textContent = b.dropped
        ? `Not published: ${explain(b.dropped).title}${b.dropped.message ? ` (${b.dropped.message})` : ''}`
        : 'Not published.';
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
