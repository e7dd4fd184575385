"""Checking tokens minted by host applications: their key sets (JWKS), and the choice
of verifier for each token.

:class:`JwksKeys` keeps one host's public keys. They are fetched on first use, again
when they are older than ``jwks_max_age``, and again when a token names a key id
(``kid``) we do not know — the host rotated its keys — but at most once per
``jwks_refetch`` whatever the tokens say, so that a flood of made-up ``kid`` values
cannot make us hammer the host. Every time is the server's injected clock.

Fetching is blocking I/O (``urllib``), done in a worker thread. A key set that cannot
be fetched is the server's problem, not the user's: the token is answered
``unavailable`` (retry shortly, close 4013), never ``unauthenticated``.

:class:`TokenVerifiers` is the server's :class:`~server.tokens.Verifier`: a token whose
``iss`` is a configured host's goes to that host's verifier (RS256/ES256 with its
JWKS, or HS256 with its secret); any other is one of Préau's own (HS256,
``PREAU_JWT_SECRET``). The choice reads the unverified ``iss`` and ``aud`` only to pick;
the chosen verifier then checks everything with its configured algorithm and key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt

from .errors import ErrorCode, Refused
from .host_tokens import HostTokenConfig, host_token_configs
from .model import SchoolId
from .tokens import (
    Identity,
    SecretVerifier,
    Verifier,
    checked_header,
    decode_claims,
    identity_from_claims,
)

__all__ = ["MAX_JWKS_BYTES", "JwksKeys", "JwksVerifier", "TokenVerifiers", "build_verifier",
           "fetch_jwks"]

log = logging.getLogger("preau.jwks")

MAX_JWKS_BYTES = 1024 * 1024  # a key set is a few KiB; a larger answer is not one
FETCH_TIMEOUT = 5.0  # seconds; a hello waits for it
_KEY_TYPES = {"RS256": ("RSA", None), "ES256": ("EC", "P-256")}

Fetcher = Callable[[str], Awaitable[Mapping[str, Any]]]


class JwksUnavailable(Exception):
    """The key set could not be fetched or read; the message says why."""


def _fetch_blocking(url: str) -> Mapping[str, Any]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:
            data = response.read(MAX_JWKS_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise JwksUnavailable(f"HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise JwksUnavailable(str(reason)) from None
    if len(data) > MAX_JWKS_BYTES:
        raise JwksUnavailable(f"larger than {MAX_JWKS_BYTES} bytes")
    try:
        doc = json.loads(data)
    except ValueError:
        raise JwksUnavailable("not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise JwksUnavailable("not a key set (no 'keys' list)")
    return doc


async def fetch_jwks(url: str) -> Mapping[str, Any]:
    """The JSON key set at ``url``, fetched off the event loop; :class:`JwksUnavailable`."""
    return await asyncio.to_thread(_fetch_blocking, url)


class JwksKeys:
    """JwksKeys is responsible for one host's current signing keys (see the module doc)."""

    def __init__(self, config: HostTokenConfig, fetch: Fetcher = fetch_jwks) -> None:
        assert config.jwks_url is not None
        self.config = config
        self._fetch = fetch
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: datetime | None = None  # last successful fetch
        self._tried_at: datetime | None = None  # last attempt, successful or not
        self._lock = asyncio.Lock()
        self.fetches = 0  # attempts so far (for logs and tests)

    async def key(self, kid: str | None, now: datetime) -> jwt.PyJWK:
        """The key a token names (``kid``; none when the set has a single key)."""
        stale = self._fetched_at is None or not (
            self._fetched_at <= now < self._fetched_at + self.config.jwks_max_age)
        if stale:
            await self._refresh(now)
        found = self._find(kid)
        if found is None and kid is not None:
            await self._refresh(now)  # rotated keys?
            found = self._find(kid)
        if found is None:
            if not self._keys and self._fetched_at is None:
                raise Refused(ErrorCode.UNAVAILABLE,
                              "Impossible de vérifier le jeton : le jeu de clés de "
                              f"l'application hôte ({self.config.jwks_url}) est injoignable. "
                              "Réessayez dans un instant.", params={"reason": "jwks"})
            named = ("ne désigne aucune clé ('kid')" if kid is None
                     else f"désigne une clé inconnue {kid[:64]!r}")
            raise Refused(ErrorCode.UNAUTHENTICATED, f"Jeton invalide : il {named}.",
                          params={"reason": "invalid"})
        return found

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _refresh(self, now: datetime) -> None:
        """Fetch the key set, unless it was tried less than ``jwks_refetch`` ago
        (successfully or not: an unreachable host is not asked at every hello either)."""
        tried = self._tried_at
        async with self._lock:
            if self._tried_at != tried:
                return  # another token fetched while we waited: use its result
            if tried is not None and tried <= now < tried + self.config.jwks_refetch:
                return
            self._tried_at = now
            self.fetches += 1
            try:
                doc = await self._fetch(str(self.config.jwks_url))
            except JwksUnavailable as exc:
                log.warning("school %s: cannot fetch the key set %s: %s",
                            self.config.school, self.config.jwks_url, exc)
                return  # the keys we had (if any) stay in use until it answers again
            self._keys = self._usable(doc)
            self._fetched_at = now
            if not self._keys:
                log.warning("school %s: the key set %s has no %s signing key",
                            self.config.school, self.config.jwks_url, self.config.algorithm)

    def _usable(self, doc: Mapping[str, Any]) -> dict[str | None, jwt.PyJWK]:
        """The keys of ``doc`` that can check this school's algorithm; others are skipped."""
        kty, crv = _KEY_TYPES[self.config.algorithm]
        keys: dict[str | None, jwt.PyJWK] = {}
        for jwk in doc.get("keys", []):
            if not isinstance(jwk, dict) or jwk.get("kty") != kty \
                    or (crv is not None and jwk.get("crv") != crv) \
                    or jwk.get("use", "sig") != "sig" \
                    or jwk.get("alg", self.config.algorithm) != self.config.algorithm:
                continue
            try:
                key = jwt.PyJWK(jwk, algorithm=self.config.algorithm)
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError) as exc:
                log.warning("school %s: skipping a key of %s: %s", self.config.school,
                            self.config.jwks_url, exc)
                continue
            kid = jwk.get("kid")
            keys[kid if isinstance(kid, str) else None] = key
        return keys


class JwksVerifier:
    """A host's RS256 or ES256 tokens, checked with its published keys."""

    def __init__(self, config: HostTokenConfig, fetch: Fetcher = fetch_jwks) -> None:
        self.config = config
        self.keys = JwksKeys(config, fetch)

    async def verify(self, token: str, now: datetime) -> Identity:
        config = self.config
        kid = checked_header(token, config.algorithm).get("kid")
        key = await self.keys.key(kid if isinstance(kid, str) else None, now)
        claims = decode_claims(token, key.key, algorithm=config.algorithm,
                               issuer=config.issuer, audience=config.audience)
        return identity_from_claims(claims, now=now, user_claim=config.user_claim,
                                    school=config.school)


def host_verifier(config: HostTokenConfig, fetch: Fetcher = fetch_jwks) -> Verifier:
    """The verifier ``config`` describes."""
    if config.algorithm == "HS256":
        assert config.secret is not None
        return SecretVerifier(config.secret, school=config.school, issuer=config.issuer,
                              audience=config.audience, user_claim=config.user_claim)
    return JwksVerifier(config, fetch)


class TokenVerifiers:
    """The server's verifier: each token to its host's verifier, or Préau's own."""

    def __init__(self, own: Verifier, hosts: Mapping[SchoolId, HostTokenConfig],
                 fetch: Fetcher = fetch_jwks) -> None:
        self.own = own
        self.hosts: dict[SchoolId, Verifier] = {}
        self._by_issuer: dict[str, list[tuple[str | None, Verifier]]] = {}
        for school, config in hosts.items():
            verifier = host_verifier(config, fetch)
            self.hosts[school] = verifier
            self._by_issuer.setdefault(config.issuer, []).append((config.audience, verifier))

    async def verify(self, token: str, now: datetime) -> Identity:
        return await self._pick(token).verify(token, now)

    def _pick(self, token: str) -> Verifier:
        if not self._by_issuer:
            return self.own
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError as exc:
            raise Refused(ErrorCode.UNAUTHENTICATED, f"Jeton invalide : {exc}.",
                          params={"reason": "invalid"}) from exc
        issuer = claims.get("iss")
        candidates = self._by_issuer.get(issuer) if isinstance(issuer, str) else None
        if not candidates:
            return self.own
        if len(candidates) == 1:
            return candidates[0][1]
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        for audience, verifier in candidates:
            if audience in auds:
                return verifier
        raise Refused(ErrorCode.UNAUTHENTICATED,
                      "Jeton invalide : son audience ne désigne aucun établissement de cet "
                      "émetteur.", params={"reason": "invalid"})


def build_verifier(own_secret: str, identity_file: str | Path | None, *,
                   own: Verifier | None = None, fetch: Fetcher = fetch_jwks) -> TokenVerifiers:
    """The server's verifier: Préau's own tokens with ``own_secret`` (or ``own``, a
    verifier that also checks, say, that the token's sign-in session is still open), and
    the hosts' of ``identity_file`` (``PREAU_IDENTITY_FILE``; :class:`ConfigurationError`)."""
    return TokenVerifiers(own or SecretVerifier(own_secret), host_token_configs(identity_file),
                          fetch)
