// Signing in with the school's ENT (its OpenID Connect or CAS provider), as any app of
// Préau does (docs/protocol.md, « Signing in »): this page is the app. It makes a PKCE
// verifier, sends the browser to /signin/{school}/{provider}/start, and when Préau sends
// it back here with ?code=…&state=…, trades the code for credentials at
// POST /api/signin/token. The verifier and state stay in this tab's sessionStorage.

import { api, setCredentials } from './api.js';
import { h } from './dom.js';
import { register, t } from './i18n.js';

register({
  fr: {
    'ent.title': 'Connexion par l’ENT',
    'ent.button': 'Se connecter avec l’ENT',
    'ent.button.school': 'Se connecter avec l’ENT ({school})',
    'ent.finishing': 'Connexion en cours…',
    'ent.state': 'Cette connexion ne vient pas de cet onglet : recommencez.',
    'ent.failed': 'La connexion par l’ENT a échoué : {message}',
    'ent.unknown_account': 'Ce compte de l’ENT ne correspond à aucun utilisateur actif de l’établissement dans Préau. Adressez-vous à l’établissement.',
    'ent.provider_error': 'L’ENT n’a pas confirmé la connexion (annulée, ou indisponible). Réessayez.',
    'ent.invalid_grant': 'Cette connexion a expiré ou a déjà servi : recommencez.',
  },
  en: {
    'ent.title': 'Sign in with the ENT',
    'ent.button': 'Sign in with the ENT',
    'ent.button.school': 'Sign in with the ENT ({school})',
    'ent.finishing': 'Signing in…',
    'ent.state': 'This sign-in did not start in this tab: start again.',
    'ent.failed': 'Signing in with the ENT failed: {message}',
    'ent.unknown_account': 'This ENT account is not an active user of the school in Préau. Ask the school.',
    'ent.provider_error': 'The ENT did not confirm the sign-in (cancelled, or unavailable). Try again.',
    'ent.invalid_grant': 'This sign-in has expired or was already used: start again.',
  },
});

const PENDING_KEY = 'preau.ent.pending';
const SIGNED_IN_KEY = 'preau.ent.provider'; // {school, kind}: where to sign out too

function base64url(bytes) {
  let text = '';
  for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function random(size) {
  return base64url(crypto.getRandomValues(new Uint8Array(size)));
}

function redirectUri() {
  return `${location.origin}/`;
}

/** The providers of the schools this server hosts ([] if none). */
export async function entProviders() {
  try {
    const { providers } = await api('/api/signin/providers', { token: null });
    return providers || [];
  } catch {
    return [];
  }
}

/** Send the browser to the provider (via Préau), with a fresh PKCE verifier and state. */
export async function startEnt(provider) {
  const verifier = random(48);
  const state = random(24);
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  sessionStorage.setItem(PENDING_KEY, JSON.stringify({
    verifier, state, school: provider.school, kind: provider.kind,
  }));
  const url = new URL(provider.start, location.origin);
  url.searchParams.set('redirect_uri', redirectUri());
  url.searchParams.set('code_challenge', base64url(digest));
  url.searchParams.set('code_challenge_method', 'S256');
  url.searchParams.set('state', state);
  location.assign(url.toString());
}

/**
 * The page was opened by Préau's return from the provider: finish signing in.
 * Resolves to null when there was nothing to finish or it worked (the token is stored),
 * or to the sentence to show when it failed.
 */
export async function finishEnt() {
  const params = new URLSearchParams(location.search);
  if (!params.has('code') && !params.has('error')) return null;
  const pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) || 'null');
  sessionStorage.removeItem(PENDING_KEY);
  history.replaceState(null, '', redirectUri());  // the code is used once: not in history
  if (!pending || params.get('state') !== pending.state) return t('ent.state');
  if (params.has('error')) return explainError(params.get('error'), params.get('error_description'));
  try {
    const credentials = await api('/api/signin/token', {
      method: 'POST', token: null,
      body: { code: params.get('code'), code_verifier: pending.verifier, redirect_uri: redirectUri() },
    });
    setCredentials(credentials);
    sessionStorage.setItem(SIGNED_IN_KEY, JSON.stringify({ school: pending.school, kind: pending.kind }));
    return null;
  } catch (error) {
    return explainError(error.code, error.message);
  }
}

const KNOWN = ['unknown_account', 'provider_error', 'invalid_grant'];

/** A refusal in the page's language; the server's own (French) words otherwise. */
function explainError(code, description) {
  if (KNOWN.includes(code)) return t(`ent.${code}`);
  return t('ent.failed', { message: description || code });
}

/** The « Se connecter avec l'ENT » buttons, one per school that has a provider. */
export function entSection(providers) {
  const several = new Set(providers.map((p) => p.school)).size > 1;
  return h('div', { class: 'ent-signin' },
    h('h2', {}, t('ent.title')),
    ...providers.map((provider) => h('p', {},
      h('button', {
        type: 'button', class: 'ent-button', dataset: { school: provider.school, kind: provider.kind },
        onclick: (event) => { event.currentTarget.disabled = true; startEnt(provider); },
      }, several ? t('ent.button.school', { school: provider.school_name }) : t('ent.button')))));
}

/**
 * After the app's own sign-out (POST /api/session/logout): if this tab signed in with
 * the ENT, sign out there too, so that the next person at this computer is asked for a
 * password. Préau sends the browser to the provider, which comes back to this page.
 */
export function signOutOfEnt() {
  const provider = JSON.parse(sessionStorage.getItem(SIGNED_IN_KEY) || 'null');
  sessionStorage.removeItem(SIGNED_IN_KEY);
  if (!provider) return false;
  const url = new URL(`/signin/${encodeURIComponent(provider.school)}/${provider.kind}/logout`, location.origin);
  url.searchParams.set('redirect_uri', redirectUri());
  location.assign(url.toString());
  return true;
}
