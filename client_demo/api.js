// The REST API (docs/api.md) and where the credentials live.
//
// A sign-in gives an access token (minutes) and a refresh token (docs/protocol.md,
// "Sessions"). Both are kept in sessionStorage, not localStorage: they are per tab,
// so two tabs can be signed in as two different people (handy in a demo, and what a
// shared school computer should do: closing the tab signs out, and a refresh token
// that lives for weeks does not stay behind on the disk for the next pupil).
// A duplicated tab copies sessionStorage: it would then race the original with the
// same refresh token, and a refresh token used twice ends the whole session (reuse
// detection). So at boot a tab asks the others whether its id is taken
// (claimTab): a copy gives up the refresh token and keeps only the access token.
//
// The access token is refreshed through POST /api/session/refresh shortly before it
// expires (freshToken, before each request) and after a 401; one refresh at a time.

import { register, t } from './i18n.js';

register({
  fr: { 'session.ended': 'Votre session est terminée : reconnectez-vous.' },
  en: { 'session.ended': 'Your session has ended: sign in again.' },
});

const TOKEN_KEY = 'preau.token';
const REFRESH_KEY = 'preau.refresh';
const TAB_KEY = 'preau.tab';
const EXPIRES_KEY = 'preau.token.refresh_at';
const REFRESH_EARLY = 60_000; // ms before expiry (or a fifth of a shorter token's life)

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** A token alone (pasted, or made by `preau token`): nothing to refresh it with. */
export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  rememberLifetime(token);
}

/** What a sign-in or a refresh answers: {access_token, refresh_token, …}. */
export function setCredentials(credentials) {
  setToken(credentials.access_token);
  if (credentials.refresh_token) sessionStorage.setItem(REFRESH_KEY, credentials.refresh_token);
  else sessionStorage.removeItem(REFRESH_KEY);
}

export function clearToken() {
  for (const key of [TOKEN_KEY, REFRESH_KEY, EXPIRES_KEY]) sessionStorage.removeItem(key);
}

/**
 * When the token must be refreshed, on this browser's clock: its lifetime (`exp` −
 * `iat`, on the server's clock) counted from now, less a minute (or a fifth of a
 * shorter life). Counted from now, not read from `exp`, so that a browser whose clock
 * is off still refreshes in time. The token is not checked here: the server does.
 */
function rememberLifetime(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(part));
    const life = (claims.exp - claims.iat) * 1000;
    if (!Number.isFinite(life) || life <= 0) throw new Error('no lifetime');
    const early = Math.min(REFRESH_EARLY, life / 5);
    sessionStorage.setItem(EXPIRES_KEY, String(Date.now() + life - early));
  } catch {
    sessionStorage.removeItem(EXPIRES_KEY);
  }
}

function nearExpiry() {
  const at = Number(sessionStorage.getItem(EXPIRES_KEY));
  return at > 0 && Date.now() >= at;
}

let refreshing = null;

/** New credentials for the stored refresh token (one refresh at a time); the new access token. */
export function refreshCredentials() {
  if (!refreshing) refreshing = refreshNow().finally(() => { refreshing = null; });
  return refreshing;
}

async function refreshNow() {
  const refresh = sessionStorage.getItem(REFRESH_KEY);
  if (!refresh) {
    throw new ApiError(401, { error: { code: 'unauthenticated', message: t('session.ended') } });
  }
  let credentials;
  try {
    credentials = await request('/api/session/refresh', {
      method: 'POST', token: null, body: { refresh_token: refresh },
    });
  } catch (error) {
    // Refused for good (ended, expired, used): never present it again.
    if (error.code === 'unauthenticated' && sessionStorage.getItem(REFRESH_KEY) === refresh) {
      sessionStorage.removeItem(REFRESH_KEY);
    }
    throw error;
  }
  setCredentials(credentials);
  return credentials.access_token;
}

/** The tab's access token, refreshed first if it is about to expire. */
export async function freshToken() {
  const token = getToken();
  if (!token || !sessionStorage.getItem(REFRESH_KEY) || !nearExpiry()) return token;
  try {
    return await refreshCredentials();
  } catch (error) {
    if (error.code === 'unauthenticated') throw error;
    return getToken(); // the network: try with the current one, the server will say
  }
}

/** End the tab's session on the server (logout); its connections everywhere are closed. */
export function logout() {
  const token = getToken();
  if (!token || !sessionStorage.getItem(REFRESH_KEY)) return;
  // keepalive: the request goes out even as the page moves on to the sign-in screen.
  fetch(new URL('/api/session/logout', location.origin), {
    method: 'POST', keepalive: true, headers: { Authorization: `Bearer ${token}` },
  }).catch(() => { /* offline: the access token expires within minutes anyway */ });
}

/**
 * At boot: is this tab a copy of another (its sessionStorage duplicated)? The tab
 * that holds an id answers those who ask for it; a copy takes a new id and gives up
 * the refresh token (see the top of this file).
 */
let claimed = null;

export function claimTab() {
  if (!claimed) claimed = claim(); // once per page: our own channel must not answer us
  return claimed;
}

async function claim() {
  if (typeof BroadcastChannel === 'undefined') return;
  const channel = new BroadcastChannel('preau.tabs');
  let id = sessionStorage.getItem(TAB_KEY);
  const fresh = () => Math.random().toString(36).slice(2) + Date.now().toString(36);
  if (id) {
    const taken = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), 150);
      channel.onmessage = (event) => {
        if (event.data && event.data.taken === id) {
          clearTimeout(timer);
          resolve(true);
        }
      };
      channel.postMessage({ ask: id });
    });
    if (taken) {
      sessionStorage.removeItem(REFRESH_KEY);
      id = null;
    }
  }
  if (!id) {
    id = fresh();
    sessionStorage.setItem(TAB_KEY, id);
  }
  const mine = id;
  channel.onmessage = (event) => {
    if (event.data && event.data.ask === mine) channel.postMessage({ taken: mine });
  };
}

/** The `?school=` of the page's URL: the demo endpoints need it when the server hosts several. */
export function schoolParam() {
  return new URLSearchParams(location.search).get('school');
}

/** A refusal from the API, with the stable `code` of docs/api.md. */
export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || (status === 0 ? 'network' : 'internal');
    this.retry_at = error.retry_at || null;
  }
}

/**
 * fetch() a JSON endpoint with the tab's token (refreshed when it is about to expire,
 * and once more after a 401); throws ApiError on any refusal. `token: null` sends none.
 */
export async function api(path, { method = 'GET', body, token, params } = {}) {
  if (token !== undefined) return request(path, { method, body, token, params });
  try {
    return await request(path, { method, body, token: await freshToken(), params });
  } catch (error) {
    if (error.status !== 401 || !sessionStorage.getItem(REFRESH_KEY)) throw error;
    return request(path, { method, body, token: await refreshCredentials(), params });
  }
}

async function request(path, { method, body, token, params }) {
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, value);
  }
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(url, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, { error: { code: 'network', message: 'The server cannot be reached.' } });
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** Demo mode only: everyone of the school (404 when the server is not in demo mode). */
export function demoUsers() {
  return api('/api/demo/users', { token: null, params: { school: schoolParam() } });
}

/** Demo mode only: a sign-in session for `user` (access and refresh tokens). */
export function demoToken(user) {
  return api('/api/demo/token', {
    method: 'POST', token: null, body: { user }, params: { school: schoolParam() },
  });
}
