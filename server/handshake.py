"""A deadline for a connection's request head: slow or silent peers are closed.

uvicorn has no header-read timeout: ``timeout_keep_alive`` only runs *between*
requests, and any byte received cancels it. A peer that opens a TCP connection and
sends half a request line, or drips one header byte a second (slowloris), is held
for as long as it likes, and never reaches the app (whose ``hello`` timeout starts
only once the WebSocket is open).

:func:`head_deadline_protocol` returns uvicorn's HTTP protocol (httptools, or h11)
with one addition: every ``timeout`` seconds it looks at the connection, and closes
it if no new request head has been read since the last look while none is being
answered. A WebSocket upgrade hands the socket to another protocol and ends the
watch; the session's hello timeout takes over from there. So a connection must
show a complete request head within ``timeout`` to ``2 × timeout`` seconds of being
accepted (or of its previous response), and one that is answering a request is
never cut. Behind a load balancer, its own ``timeout http-request`` does the same
earlier (docs/operating.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from .config import Config
from .web import UVICORN_OPTIONS

__all__ = ["head_deadline_protocol", "uvicorn_options"]


def uvicorn_options(config: Config) -> dict[str, Any]:
    """How ``preau serve`` (and the tests' servers) run uvicorn: ``UVICORN_OPTIONS``, the
    request-head deadline, and the connection ceiling for plain HTTP requests (beyond
    it, 503; uvicorn does not count WebSockets there: they are capped per user)."""
    return {**UVICORN_OPTIONS, "http": head_deadline_protocol(config.handshake_timeout),
            "limit_concurrency": config.max_connections}


class _HeadDeadline:
    """Mixed in before uvicorn's protocol (which provides ``loop``, ``transport`` and
    ``cycle``, the request being answered, in both of its implementations)."""

    head_timeout: float = 5.0
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._head_seen: Any = None
        self._head_timer: asyncio.TimerHandle | None = self.loop.call_later(
            self.head_timeout, self._head_check)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)  # type: ignore[misc]

    def _head_check(self) -> None:
        self._head_timer = None
        transport = self.transport
        protocol: object = transport.get_protocol()
        if transport.is_closing() or protocol is not self:
            return  # closed already, or upgraded to a WebSocket
        cycle = self.cycle
        if cycle is not None and (cycle is not self._head_seen
                                  or not cycle.response_complete):
            # A new request since the last look, or one still being answered: fine.
            self._head_seen = cycle
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_check)
            return
        transport.close()


def head_deadline_protocol(timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class, closing peers that take longer than ``timeout``
    seconds (up to twice that) to send a request head; pass it as ``http=``."""
    protocol: type[asyncio.Protocol] = type(
        "HeadDeadlineProtocol", (_HeadDeadline, AutoHTTPProtocol), {"head_timeout": timeout})
    return protocol
