"""Préau as the OpenID Connect client of a school's provider: discovery, the
authorization request (code flow with PKCE and a nonce), the code exchange (PKCE verifier
and client secret), and the provider's keys for :mod:`server.signin.idtoken`.

Requests and answers are built with Authlib's OAuth 2.0 parameter helpers; HTTP goes
through one shared ``httpx.AsyncClient``. Discovery and keys are cached per provider
(keys fetched again when a token names an unknown ``kid``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from joserfc.jwk import KeySet

from .config import OidcProvider
from .idtoken import verify_id_token, verify_logout_token

__all__ = ["OidcClient", "ProviderError"]

DISCOVERY_TTL = 3600.0  # seconds a provider's metadata is kept
MIN_KEYS_REFRESH = 10.0  # seconds between two fetches of the keys (a flood of bad kids)


class ProviderError(Exception):
    """The provider could not be reached, or answered something unusable."""


class OidcClient:
    """The client of one school's OpenID Connect provider."""

    def __init__(self, provider: OidcProvider, http: httpx.AsyncClient) -> None:
        self.provider = provider
        self.http = http
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0
        self._lock = asyncio.Lock()

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (``issuer`` checked against the configuration)."""
        if self._metadata is not None and time.monotonic() - self._metadata_at < DISCOVERY_TTL:
            return self._metadata
        url = self.provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = await self._get_json(url)
        for key in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(doc.get(key), str):
                raise ProviderError(f"the discovery document at {url} lacks {key!r}")
        if doc["issuer"].rstrip("/") != self.provider.issuer.rstrip("/"):
            raise ProviderError(f"the discovery document at {url} names the issuer "
                                f"{doc['issuer']!r}, not {self.provider.issuer!r}")
        self._metadata, self._metadata_at = doc, time.monotonic()
        return doc

    async def keys(self, refresh: bool = False) -> KeySet:
        """The provider's signing keys; ``refresh`` fetches them again (rate-limited)."""
        async with self._lock:
            stale = refresh and time.monotonic() - self._keys_at > MIN_KEYS_REFRESH
            if self._keys is None or stale:
                doc = await self._get_json((await self.metadata())["jwks_uri"])
                try:
                    self._keys = KeySet.import_key_set(doc)  # type: ignore[arg-type]
                except (ValueError, KeyError, TypeError) as exc:
                    raise ProviderError(f"the provider's JWKS is unusable: {exc}") from exc
                self._keys_at = time.monotonic()
            return self._keys

    async def authorization_url(self, *, redirect_uri: str, state: str, nonce: str,
                                code_challenge: str) -> str:
        meta = await self.metadata()
        return str(prepare_grant_uri(
            meta["authorization_endpoint"], self.provider.client_id, "code",
            redirect_uri=redirect_uri, scope=" ".join(self.provider.scopes), state=state,
            nonce=nonce, code_challenge=code_challenge, code_challenge_method="S256"))

    async def exchange(self, *, code: str, redirect_uri: str, code_verifier: str
                       ) -> dict[str, Any]:
        """The token endpoint's answer for ``code`` (client_secret_basic, RFC 6749 §2.3.1)."""
        meta = await self.metadata()
        body = prepare_token_request("authorization_code", code=code,
                                     redirect_uri=redirect_uri, code_verifier=code_verifier)
        auth = httpx.BasicAuth(quote(self.provider.client_id, safe=""),
                               quote(self.provider.client_secret, safe=""))
        try:
            response = await self.http.post(
                meta["token_endpoint"], content=body, auth=auth,
                headers={"Content-Type": "application/x-www-form-urlencoded",
                         "Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise ProviderError(f"the token endpoint cannot be reached: {exc}") from exc
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code != 200 or not isinstance(answer, dict):
            detail = answer.get("error") if isinstance(answer, dict) else response.status_code
            raise ProviderError(f"the token endpoint refused the code: {detail}")
        if not isinstance(answer.get("id_token"), str):
            raise ProviderError("the token endpoint answered without an ID token")
        return answer

    async def verify_id_token(self, token: str, nonce: str) -> dict[str, Any]:
        meta = await self.metadata()
        return await verify_id_token(token, self.keys, issuer=meta["issuer"],
                                     client_id=self.provider.client_id, nonce=nonce,
                                     now=int(time.time()))

    async def verify_logout_token(self, token: str) -> dict[str, Any]:
        meta = await self.metadata()
        return await verify_logout_token(token, self.keys, issuer=meta["issuer"],
                                         client_id=self.provider.client_id,
                                         now=int(time.time()))

    async def end_session_url(self, *, post_logout_redirect_uri: str | None) -> str | None:
        """Where to send the browser to sign out at the provider too (RP-initiated logout),
        if the provider offers it."""
        meta = await self.metadata()
        endpoint = meta.get("end_session_endpoint")
        if not isinstance(endpoint, str):
            return None
        params: dict[str, str] = {"client_id": self.provider.client_id}
        if post_logout_redirect_uri:
            params["post_logout_redirect_uri"] = post_logout_redirect_uri
        return str(httpx.URL(endpoint, params=params))

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self.http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            doc = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderError(f"{url} cannot be read: {exc}") from exc
        if not isinstance(doc, dict):
            raise ProviderError(f"{url} is not a JSON object")
        return doc

