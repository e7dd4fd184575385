// Start a discussion: a subject, recipients picked from /api/contacts, and the
// first message. `#/new?to=id,id` opens it with recipients filled in (a link
// from elsewhere, e.g. "write to the teacher"); those are not checked here:
// the server decides, and a refusal is shown with everything kept in the form.

import { contactPicker } from './picker.js';
import { h, nextId, replace } from './dom.js';
import { groupCounts, groupFrame, groupKey, groupLabel, startedText } from './groups.js';
import { explain, formatOpening, personDetail, personName } from './text.js';
import { register, t } from './i18n.js';

register({
  fr: {
    'new.chosen': 'Destinataires choisis',
    'new.submit': 'Commencer la discussion',
    'new.cannot': 'Vous ne pouvez pas commencer de discussion ici ; vous pouvez répondre dans celles où vous êtes inclus.',
    'new.addLabel': 'Ajouter des destinataires',
    'new.add': 'Ajouter',
    'new.remove': 'Retirer {name}',
    'new.nobody': 'Personne pour l’instant.',
    'new.back': '‹ Discussions',
    'new.title': 'Nouvelle discussion',
    'new.subject': 'Sujet',
    'new.recipients': 'Destinataires',
    'new.first': 'Premier message',
    'new.missing.subject': 'un sujet',
    'new.missing.recipient': 'au moins un destinataire',
    'new.missing.body': 'un premier message',
    'new.please': 'Merci d’indiquer {what}.',
    'new.starting': 'Création…',
    'new.waiting': 'En attente de la connexion…',
    'new.held': '« {subject} » sera remis {when}.',
    'new.notStarted': 'Non créée.',
    'new.refusedMore': 'Votre discussion n’a pas été créée ; ce que vous avez écrit est toujours dans le formulaire.',
  },
  en: {
    'new.chosen': 'Recipients chosen',
    'new.submit': 'Start the discussion',
    'new.cannot': 'You may not start discussions here; you can reply in the ones you are included in.',
    'new.addLabel': 'Add recipients',
    'new.add': 'Add',
    'new.remove': 'Remove {name}',
    'new.nobody': 'Nobody yet.',
    'new.back': '‹ Discussions',
    'new.title': 'New discussion',
    'new.subject': 'Subject',
    'new.recipients': 'Recipients',
    'new.first': 'First message',
    'new.missing.subject': 'a subject',
    'new.missing.recipient': 'at least one recipient',
    'new.missing.body': 'a first message',
    'new.please': 'Please give {what}.',
    'new.starting': 'Starting…',
    'new.waiting': 'Waiting for the connection…',
    'new.held': '“{subject}” will be delivered at {when}.',
    'new.notStarted': 'Not started.',
    'new.refusedMore': 'Your discussion was not started; what you wrote is still in the form.',
  },
});

/**
 * @param {object} options
 * @param {Chat} options.chat
 * @param {object} options.me       /api/me
 * @param {string[]} options.to     recipients to start with
 * @param {(banner) => void} options.notify
 * @param {(id) => void} options.onStarted
 */
export function newDiscussionView({ chat, me, to, notify, onStarted }) {
  const headingId = nextId('new-title');
  const subjectId = nextId('subject');
  const bodyId = nextId('first-message');
  const chosen = new Map(); // id → person
  const chosenGroups = new Map(); // "parents:6A" → group, expanded by the server at the start
  for (const id of to) chosen.set(id, chat.person(id));

  const subject = h('input', { id: subjectId, type: 'text', maxlength: '200', required: true, autocomplete: 'off' });
  const chips = h('ul', { class: 'chips', 'aria-label': t('new.chosen') });
  const body = h('textarea', { id: bodyId, rows: '4', maxlength: '8000', required: true });
  const submit = h('button', { type: 'submit' }, t('new.submit'));
  const status = h('p', { class: 'form-status', role: 'status' });
  const notice = h('p', { class: 'notice', hidden: me.can_start !== false },
    t('new.cannot'));

  const picker = contactPicker({
    label: t('new.addLabel'),
    action: t('new.add'),
    exclude: () => new Set(chosen.keys()),
    excludeGroups: () => new Set(chosenGroups.keys()),
    onPickGroup: (group) => {
      chosenGroups.set(groupKey(group), group);
      renderChips();
      picker.focus();
    },
    onPick: (person) => {
      chosen.set(person.id, person);
      chat.persons.set(person.id, person);
      renderChips();
      picker.focus();
    },
    onError: (error) => {
      notice.hidden = false;
      notice.textContent = explain(error).title;
    },
  });

  function renderChips() {
    replace(chips, [...chosenGroups.entries()].map(([key, group]) => {
      const name = groupLabel(group);
      return h('li', { class: 'chip group-chip', dataset: { group: key } },
        h('span', {}, name), ' ', h('span', { class: 'chip-detail' }, groupCounts(group)),
        h('button', {
          type: 'button', class: 'chip-remove', 'aria-label': t('group.remove', { group: name }),
          onclick: () => { chosenGroups.delete(key); renderChips(); picker.refresh(); picker.focus(); },
        }, '×'));
    }));
    chips.append(...[...chosen.values()].map((person) => {
      const name = personName(person, person.id);
      return h('li', { class: 'chip', dataset: { user: person.id } },
        h('span', { title: personDetail(person) }, name),
        h('button', {
          type: 'button', class: 'chip-remove', 'aria-label': t('new.remove', { name }),
          onclick: () => { chosen.delete(person.id); renderChips(); picker.refresh(); picker.focus(); },
        }, '×'));
    }));
    if (chosen.size === 0 && chosenGroups.size === 0) chips.append(h('li', { class: 'chips-empty' }, t('new.nobody')));
  }

  const form = h('form', { class: 'new-discussion', 'aria-labelledby': headingId, novalidate: true },
    h('header', { class: 'conv-head' },
      h('a', { href: '#/', class: 'back' }, t('new.back')),
      h('h2', { id: headingId, tabindex: '-1' }, t('new.title'))),
    notice,
    h('div', { class: 'field' }, h('label', { for: subjectId }, t('new.subject')), subject),
    h('fieldset', { class: 'recipients' }, h('legend', {}, t('new.recipients')), chips, picker.element),
    h('div', { class: 'field' }, h('label', { for: bodyId }, t('new.first')), body),
    h('div', { class: 'row' }, submit, status));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const missing = [];
    if (!subject.value.trim()) missing.push(t('new.missing.subject'));
    if (chosen.size === 0 && chosenGroups.size === 0) missing.push(t('new.missing.recipient'));
    if (!body.value.trim()) missing.push(t('new.missing.body'));
    if (missing.length) {
      status.textContent = t('new.please', { what: missing.join(', ') });
      return;
    }
    submit.disabled = true;
    status.textContent = chat.connection && chat.connection.isOpen ? t('new.starting') : t('new.waiting');
    const { done } = chat.startDiscussion({
      subject: subject.value.trim(), to: [...chosen.keys()], body: body.value,
      groups: [...chosenGroups.values()].map(groupFrame),
    });
    try {
      const reply = await done;
      if (reply.type === 'held') {
        notify({ kind: 'info', title: t('new.held', { subject: subject.value.trim(), when: formatOpening(reply.held_until) }) });
        subject.value = '';
        body.value = '';
        chosen.clear();
        chosenGroups.clear();
        renderChips();
        status.textContent = '';
      } else {
        onStarted(reply.discussion.id);
        // Who the groups reached, and how many were left out and why (told once the
        // discussion is open, so that it stays in view there).
        if (reply.groups) notify({ kind: 'info', code: 'groups', title: startedText(reply.groups) });
      }
    } catch (error) {
      // Refused: nothing was created, and everything typed stays in the form.
      status.textContent = t('new.notStarted');
      notify({ kind: 'error', ...explain(error), code: error.code, more: t('new.refusedMore') });
    } finally {
      submit.disabled = false;
    }
  });

  renderChips();
  return { element: form, focus: () => subject.focus(), destroy() {} };
}
