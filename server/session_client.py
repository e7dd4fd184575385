"""A sign-in session's credentials on the client side: a token provider for :class:`Client`.

A client that signed in (the demo's picker, a school's ENT, docs/protocol.md §15) holds
an access token of minutes and a refresh token. :class:`SessionTokens` keeps both and,
given to :class:`~server.client.Client` as its token, hands it an access token that is
never about to expire: it trades the refresh token for a new pair through
``POST /api/session/refresh`` once the access token has lived three quarters of its
life (at most two minutes before its end), one refresh at a time. The server's
``token_expiring`` comes a minute before the end (or at four fifths of a short life),
later than that: the token it then gets is always a new one, sent in a ``refresh`` frame
on the same connection.

The token's life is counted on this machine's clock from when the token arrived (its
``exp`` − ``iat``, both on the server's clock), so that a client whose clock is wrong
still refreshes in time. A refused refresh (the session ended, the refresh token used
twice or expired) raises :class:`~server.client.PreauError` ``unauthenticated``: sign in
again.

Standard library only (``urllib`` in a thread): an app embedding the client needs
nothing more than the client itself.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from .client import PreauError

__all__ = ["SessionTokens"]

REFRESH_EARLY = 120.0  # seconds before the end, at most (a quarter of a shorter life)
_TIMEOUT = 10.0


class SessionTokens:
    """SessionTokens is responsible for a session's access token being fresh."""

    def __init__(self, base_url: str, credentials: Mapping[str, Any]) -> None:
        self.base_url = _http_base(base_url)
        self.refreshes = 0  # how many times the credentials were renewed
        self._lock = asyncio.Lock()
        self._keep(credentials)

    @classmethod
    async def demo(cls, base_url: str, user: str, *, school: str | None = None) -> SessionTokens:
        """Sign in as ``user`` on a server in demo mode (``POST /api/demo/token``)."""
        base = _http_base(base_url)
        path = "/api/demo/token" + ("" if school is None else f"?school={quote(school)}")
        return cls(base, await _post(base + path, {"user": user}))

    @property
    def access_token(self) -> str:
        return self._access

    @property
    def refresh_token(self) -> str:
        return self._refresh

    @property
    def session_id(self) -> str | None:
        return self._session_id

    async def __call__(self) -> str:
        """An access token with life left: the one in hand, or a refreshed one."""
        async with self._lock:
            if time.monotonic() >= self._refresh_at:
                await self._renew()
            return self._access

    async def refresh(self) -> str:
        """Renew the credentials now; the new access token."""
        async with self._lock:
            await self._renew()
            return self._access

    async def logout(self) -> None:
        """End the session on the server: its tokens are refused from now on, and its
        connections everywhere are closed (4501)."""
        await _post(self.base_url + "/api/session/logout", None, bearer=self._access)

    async def _renew(self) -> None:
        self._keep(await _post(self.base_url + "/api/session/refresh",
                               {"refresh_token": self._refresh}))
        self.refreshes += 1

    def _keep(self, credentials: Mapping[str, Any]) -> None:
        access = credentials.get("access_token") or credentials.get("token")
        refresh = credentials.get("refresh_token")
        if not isinstance(access, str) or not isinstance(refresh, str):
            raise PreauError("unauthenticated",
                             "these are not a session's credentials (no refresh token)")
        self._access, self._refresh = access, refresh
        session = credentials.get("session_id")
        self._session_id = session if isinstance(session, str) else None
        life = _lifetime(access)
        self._refresh_at = time.monotonic() + life - min(REFRESH_EARLY, life / 4)


def _lifetime(token: str) -> float:
    """``exp`` − ``iat`` of a JWT, in seconds (not checked here: the server does)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return max(0.0, float(claims["exp"]) - float(claims["iat"]))
    except (IndexError, ValueError, KeyError, TypeError) as exc:
        raise PreauError("unauthenticated", f"the access token cannot be read: {exc}") \
            from None


def _http_base(url: str) -> str:
    """``ws(s)://host/ws`` or ``http(s)://host/…`` → ``http(s)://host``."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "", "", ""))


async def _post(url: str, body: Mapping[str, Any] | None, *,
                bearer: str | None = None) -> dict[str, Any]:
    return await asyncio.to_thread(_post_now, url, body, bearer)


def _post_now(url: str, body: Mapping[str, Any] | None, bearer: str | None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    data = json.dumps(body or {}).encode("utf-8")
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
            answer = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read() or b"{}").get("error", {})
        except ValueError:
            error = {}
        raise PreauError(str(error.get("code", "unavailable")),
                         str(error.get("message", f"HTTP {exc.code}"))) from None
    except (OSError, ValueError) as exc:
        raise PreauError("unreachable", f"{url}: {exc}") from exc
    if not isinstance(answer, dict):
        raise PreauError("internal", f"{url}: not a JSON object")
    return answer
