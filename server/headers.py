"""Security headers on every HTTP response: a pure ASGI middleware (no framework).

The browser app (``client_demo/``) is ES modules and one stylesheet from this origin,
with no inline script, style or event handler, so the policy can be strict: nothing
runs or loads from anywhere else, and the page cannot be framed (clickjacking). The
only other origin it talks to is its own WebSocket endpoint, ``ws://`` or ``wss://`` on
the host the page came from (written out because older browsers do not count
WebSocket schemes as ``'self'``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["SecurityHeaders", "content_security_policy"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A Host header is the client's to choose: only a plain host name or IP address, with
# an optional port, goes into the policy, so that no one can write directives into it.
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
                   r"(?::[0-9]{1,5})?")

_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; "
           "img-src 'self' data:; connect-src 'self'{sockets}; object-src 'none'; "
           "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

_FIXED = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),  # frame-ancestors, for browsers without CSP level 2
]


def content_security_policy(host: str | None) -> str:
    """The policy for a page served to ``host`` (the request's Host header)."""
    sockets = f" ws://{host} wss://{host}" if host and _HOST.fullmatch(host) else ""
    return _POLICY.format(sockets=sockets)


class SecurityHeaders:
    """Adds CSP, ``X-Content-Type-Options``, ``Referrer-Policy`` and ``X-Frame-Options``
    to every HTTP response (a header the endpoint set itself is kept)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for k, v in scope.get("headers", ())
                     if k == b"host"), None)
        added = [(b"content-security-policy", content_security_policy(host).encode()),
                 *_FIXED]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in added if k not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
