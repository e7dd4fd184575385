// The tab's title and icon say how much is unread: "(3) Discussions · Préau", and a
// red badge with 3 on the favicon, so a teacher with Préau in a background tab sees
// that something came. Both go back to plain when nothing is unread.
//
// The badge is an SVG data: URL (the page's Content-Security-Policy has
// `img-src 'self' data:`, and a favicon is loaded as an image). The only thing
// written into the SVG is a number we formatted ourselves, never user data.

let base = 'Préau';
let count = 0;
let plainIcon = null; // the icon of index.html, restored at 0

/** The screen's own title ("Discussions · Préau"); the unread count goes before it. */
export function setTitle(title) {
  base = title;
  render();
}

/** The number of unread things: messages in discussions, new information and polls. */
export function setUnread(n) {
  const next = Math.max(0, Math.floor(Number(n) || 0));
  if (next === count) return;
  count = next;
  render();
  renderIcon();
}

function label(n) {
  return n > 99 ? '99+' : String(n);
}

function render() {
  document.title = count > 0 ? `(${label(count)}) ${base}` : base;
}

function iconLink() {
  let link = document.querySelector('link[rel="icon"]');
  if (!link) {
    link = document.createElement('link');
    link.rel = 'icon';
    link.href = 'data:,';
    document.head.append(link);
  }
  if (plainIcon === null) plainIcon = link.getAttribute('href') || 'data:,';
  return link;
}

/** A red disc with the count in white, readable at 16 × 16. */
export function badgeIcon(n) {
  const text = label(n);
  const size = text.length >= 3 ? 26 : text.length === 2 ? 34 : 44;
  const svg = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">'
    + '<circle cx="32" cy="32" r="31" fill="#c62828"/>'
    + `<text x="32" y="32" dy=".36em" text-anchor="middle" font-family="Arial,Helvetica,sans-serif" font-weight="700" font-size="${size}" fill="#fff">${text}</text>`
    + '</svg>';
  return `data:image/svg+xml,${encodeURIComponent(svg)}`;
}

function renderIcon() {
  const link = iconLink();
  const href = count > 0 ? badgeIcon(count) : plainIcon;
  // A new element, not a new href: some browsers only look at an icon link when it is added.
  const fresh = link.cloneNode(false);
  fresh.setAttribute('href', href);
  if (count > 0) fresh.setAttribute('type', 'image/svg+xml'); else fresh.removeAttribute('type');
  fresh.dataset.unread = String(count);
  link.replaceWith(fresh);
}
