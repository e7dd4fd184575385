// Start a discussion: a subject, recipients picked from /api/contacts, and the
// first message. `#/new?to=id,id` opens it with recipients filled in (a link
// from elsewhere, e.g. "write to the teacher"); those are not checked here:
// the server decides, and a refusal is shown with everything kept in the form.

import { contactPicker } from './picker.js';
import { h, nextId, replace } from './dom.js';
import { groupCounts, groupFrame, groupKey, groupLabel, startedText } from './groups.js';
import { t } from './i18n.js';
import { explain, formatOpening, personDetail, personName } from './text.js';

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
  const chips = h('ul', { class: 'chips', 'aria-label': 'Recipients chosen' });
  const body = h('textarea', { id: bodyId, rows: '4', maxlength: '8000', required: true });
  const submit = h('button', { type: 'submit' }, 'Start the discussion');
  const status = h('p', { class: 'form-status', role: 'status' });
  const notice = h('p', { class: 'notice', hidden: me.can_start !== false },
    'You may not start discussions here; you can reply in the ones you are included in.');

  const picker = contactPicker({
    label: 'Add recipients',
    action: 'Add',
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
          type: 'button', class: 'chip-remove', 'aria-label': `Remove ${name}`,
          onclick: () => { chosen.delete(person.id); renderChips(); picker.refresh(); picker.focus(); },
        }, '×'));
    }));
    if (chosen.size === 0 && chosenGroups.size === 0) chips.append(h('li', { class: 'chips-empty' }, 'Nobody yet.'));
  }

  const form = h('form', { class: 'new-discussion', 'aria-labelledby': headingId, novalidate: true },
    h('header', { class: 'conv-head' },
      h('a', { href: '#/', class: 'back' }, '‹ Discussions'),
      h('h2', { id: headingId, tabindex: '-1' }, 'New discussion')),
    notice,
    h('div', { class: 'field' }, h('label', { for: subjectId }, 'Subject'), subject),
    h('fieldset', { class: 'recipients' }, h('legend', {}, 'Recipients'), chips, picker.element),
    h('div', { class: 'field' }, h('label', { for: bodyId }, 'First message'), body),
    h('div', { class: 'row' }, submit, status));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const missing = [];
    if (!subject.value.trim()) missing.push('a subject');
    if (chosen.size === 0 && chosenGroups.size === 0) missing.push('at least one recipient');
    if (!body.value.trim()) missing.push('a first message');
    if (missing.length) {
      status.textContent = `Please give ${missing.join(', ')}.`;
      return;
    }
    submit.disabled = true;
    status.textContent = chat.connection && chat.connection.isOpen ? 'Starting…' : 'Waiting for the connection…';
    const { done } = chat.startDiscussion({
      subject: subject.value.trim(), to: [...chosen.keys()], body: body.value,
      groups: [...chosenGroups.values()].map(groupFrame),
    });
    try {
      const reply = await done;
      if (reply.type === 'held') {
        notify({ kind: 'info', title: `“${subject.value.trim()}” will be delivered at ${formatOpening(reply.held_until)}.` });
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
      status.textContent = 'Not started.';
      notify({ kind: 'error', ...explain(error), code: error.code, more: 'Your discussion was not started; what you wrote is still in the form.' });
    } finally {
      submit.disabled = false;
    }
  });

  renderChips();
  return { element: form, focus: () => subject.focus(), destroy() {} };
}
