// Tiny DOM helpers.
//
// Safety rule of the whole app: user data (names, subjects, message bodies,
// server messages) only ever reaches the page as text nodes or attribute values.
// Nothing here (or anywhere else) assigns innerHTML, so a body such as
// "<img onerror=…>" is shown as those characters and never becomes markup.

/**
 * Create an element: h('button', {type: 'button', onclick: f}, 'Send').
 * Props: `class`, `text`, `dataset`, `on<event>` handlers, booleans
 * (`disabled`, `checked`, `hidden`…), anything else as a string attribute.
 * Children: strings (become text nodes), nodes, arrays, null/false (skipped).
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (typeof value === 'boolean') {
      // disabled, checked, hidden, required… (an attribute when there is no such property)
      if (key in el) el[key] = value; else el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

/** Append children (strings become text nodes; arrays are flattened; null is skipped). */
export function append(parent, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replace all children of `parent`. */
export function replace(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

let uid = 0;
/** A unique id for label/aria wiring. */
export function nextId(prefix = 'id') {
  uid += 1;
  return `${prefix}-${uid}`;
}

/**
 * Keep `container`'s children in step with `items` ({key, version, render}),
 * reusing the elements whose key and version did not change. A plain
 * re-render would recreate every message, which resets focus and makes screen
 * readers announce the whole log again; this only touches what changed.
 */
export function reconcile(container, items) {
  const existing = new Map();
  for (const el of container.children) existing.set(el.dataset.key, el);
  let cursor = container.firstElementChild;
  for (const item of items) {
    let el = existing.get(item.key);
    if (el && el.dataset.version !== String(item.version)) {
      const fresh = item.render();
      fresh.dataset.key = item.key;
      fresh.dataset.version = String(item.version);
      el.replaceWith(fresh);
      if (cursor === el) cursor = fresh;
      el = fresh;
    }
    if (!el) {
      el = item.render();
      el.dataset.key = item.key;
      el.dataset.version = String(item.version);
    }
    existing.delete(item.key);
    if (el !== cursor) container.insertBefore(el, cursor);
    else cursor = cursor.nextElementSibling;
  }
  for (const el of existing.values()) el.remove();
}

/** Call `fn` at most once per `ms`, on the trailing edge. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// http(s) addresses in user text. A candidate starts at "http://" or "https://" (not
// glued to a preceding letter or digit) and runs to the next space or character that
// cannot be in a written address; linkify() then trims what belongs to the sentence.
const URL_CANDIDATE = /(?<![\p{L}\p{N}])https?:\/\/[^\s<>"'`\u00a0\u2000-\u200b\u3000]+/giu;
const TRAILING = /[.,;:!?…»"'’”*_~]$/u;
const CLOSERS = { ')': '(', ']': '[', '}': '{' };

/** Trailing punctuation of the sentence is not part of the address: "(voir https://a.fr/x)." */
function trimCandidate(text) {
  let end = text.length;
  for (;;) {
    const last = text[end - 1];
    if (TRAILING.test(last)) { end -= 1; continue; }
    const opener = CLOSERS[last];
    if (opener) {
      // Kept only when the address opened it: https://fr.wikipedia.org/wiki/Préau_(bâtiment)
      const inside = text.slice(0, end);
      if (inside.split(opener).length - 1 < inside.split(last).length - 1) { end -= 1; continue; }
    }
    return text.slice(0, end);
  }
}

/** The address as a link target, or null unless it is a well-formed http(s) URL with a host. */
export function safeHref(text) {
  let url;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname) return null;
  return url.href;
}

/**
 * User text as nodes, with its http(s) addresses as links that open in a new tab
 * without giving it this page (`noopener noreferrer`) nor the school's endorsement
 * (`nofollow`). Every piece is a text node; any other scheme (javascript:, data:…)
 * stays text. For h(): h('p', {class: 'body'}, linkify(body)).
 */
export function linkify(text) {
  const source = String(text ?? '');
  const out = [];
  let at = 0;
  for (const match of source.matchAll(URL_CANDIDATE)) {
    const candidate = trimCandidate(match[0]);
    const href = safeHref(candidate);
    if (!href) continue;
    if (match.index > at) out.push(source.slice(at, match.index));
    out.push(h('a', {
      href, target: '_blank', rel: 'noopener noreferrer nofollow', class: 'body-link',
    }, candidate));
    at = match.index + candidate.length;
  }
  if (at < source.length) out.push(source.slice(at));
  return out;
}
