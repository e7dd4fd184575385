// The REST API (docs/api.md) and where the token lives.
//
// The token is kept in sessionStorage, not localStorage: it is per tab, so two
// tabs can be signed in as two different people (handy in a demo, and what a
// shared school computer should do: closing the tab signs out).

const TOKEN_KEY = 'preau.token';

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
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

/** fetch() a JSON endpoint with the tab's token; throws ApiError on any refusal. */
export async function api(path, { method = 'GET', body, token = getToken(), params } = {}) {
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

/** Demo mode only: a token for `user`. */
export function demoToken(user) {
  return api('/api/demo/token', {
    method: 'POST', token: null, body: { user }, params: { school: schoolParam() },
  });
}
