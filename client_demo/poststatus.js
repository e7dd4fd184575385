// May I post here? The server's `post` status per discussion (docs/protocol.md §8.4),
// kept for both sides of the allowed-hours window so that a `window` event switches
// the composer without asking the server again.

/** Keep `status` (from a list item, the newest history page or a `post` event) on `d`. */
export function takePost(d, status) {
  if (!d || !status || typeof status.allowed !== 'boolean') return false;
  if (status.when_open) {
    d.postClosed = status;
    d.postOpen = status.when_open;
  } else if (status.when_closed) {
    d.postOpen = status;
    d.postClosed = status.when_closed;
  } else {
    d.postOpen = status;
    d.postClosed = status;
  }
  return true;
}

/** The status now, given the window (`{open}`), or null when the server has not said. */
export function currentPost(d, window) {
  if (!d) return null;
  const closed = window && window.open === false;
  return (closed ? d.postClosed : d.postOpen) || null;
}

/** Whether what the user types now would be delivered now (then typing may be sent). */
export function deliversNow(status) {
  return !status || (status.allowed && !status.held_until);
}
