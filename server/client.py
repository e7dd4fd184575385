"""A Préau client: one WebSocket, requests with replies, a stream of events, resume.

This module is also the reference implementation of ``docs/protocol.md`` for people
writing another client (a mobile app): it needs only the standard library,
``websockets`` and ``msgpack``, and every rule of the protocol it relies on is said
where it is applied. Usage is in ``docs/client.md``.

What it does for you:

- **hello/welcome**: :meth:`Client.connect` offers one subprotocol (``preau.json`` or
  ``preau.msgpack``), sends ``hello`` with the token and the resume pairs, and
  returns the ``welcome`` frame.
- **requests**: each request gets a unique ``ref``; the reply carrying that ``ref``
  completes it, an ``error`` reply raises :class:`PreauError`.
- **events**: every other frame is an :class:`Event`, read with :meth:`Client.events`.
  ``message`` events are deduplicated by ``(discussion, seq)``; ``skipped`` frames (a
  seq hidden from this user) move the position and are not events.
- **reconnect and resume**: when the connection drops for a reason worth retrying
  (close 4000–4499, 1001, 1006, 1011, a network error…), the client reconnects
  with exponential backoff (capped at ``max_backoff``) and sends, in ``hello``, the
  highest contiguous ``seq`` it has seen per discussion (:attr:`Client.positions`).
  The server replays what was missed; the event stream simply continues.
- **token refresh**: given a token *provider* (an async function returning a fresh
  token) instead of a token, the client answers the server's ``token_expiring`` by
  calling it and sending ``refresh``, so the connection goes on without a reconnect;
  a reconnection (and one after close 4401, the token expired) calls it too.
- **safe retries**: a ``send`` whose ack was lost with the connection is sent again,
  with the same ``client_id``, on the next connection; the server recognises the
  ``client_id`` and answers with the original ack (``duplicate: true``), so the
  message exists once.

Errors are all :class:`PreauError`; its ``code`` is the server's error code, or one of
the client-side codes listed in its docstring.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import json
import logging
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import urlsplit, urlunsplit

import msgpack
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

__all__ = ["Ack", "Client", "Event", "PreauError"]

log = logging.getLogger("preau.client")

PROTOCOL_VERSION = 1
# The server refuses frames above 64 KiB by closing the connection (1009); checking
# before sending turns that into an exception for one request only.
MAX_FRAME_BYTES = 64 * 1024
# Replies can be much larger than requests (a page of history is up to 100 messages
# of 8,000 characters), so incoming frames get a generous limit of their own.
MAX_INCOMING_BYTES = 16 * 1024 * 1024
# The server accepts at most this many resume pairs in hello; we send the most recent.
MAX_RESUME_PAIRS = 1000

# Requests that are safe to send again after a connection dropped before the reply:
# `send` is idempotent by `client_id`, the others change nothing or set a maximum.
# `start`, `invite` and `leave` are not retried: a second attempt could create a
# second discussion or be refused because the first one worked.
_RETRYABLE = frozenset({"send", "start", "read", "list", "history", "ping"})
MAX_LIST = 200  # discussions in one page of ``list`` (docs/protocol.md)
# Requests the server never answers.
_NO_REPLY = frozenset({"typing"})

# Close codes after which reconnecting cannot help (see the table in protocol.md):
# protocol errors are bugs in the client, 4500–4999 are decisions about the user.
_TERMINAL_CLOSES = frozenset({1002, 1003, 1007, 1008, 1009, 1010})
_CLOSE_NAMES = {
    1002: "protocol_error",
    1009: "too_large",
    4401: "token_expired",
    4501: "unauthenticated",
    4503: "access_revoked",
}
_SHUTDOWN = 4000
_TOKEN_EXPIRED = 4401
_UNAUTHENTICATED = 4501


def _is_terminal(close_code: int) -> bool:
    return close_code in _TERMINAL_CLOSES or 4500 <= close_code <= 4999


class PreauError(Exception):
    """A refusal from the server, or a request or connection that failed for good.

    ``code`` is the server's error code (``outside_hours``, ``not_participant``,
    ``rate_limited``, ``unauthenticated``, ``discussions_disabled``…) or one of the
    client's own:

    - ``timeout``: no reply within ``request_timeout`` (for ``send``: the message may
      or may not exist; send it again later with the same ``client_id`` to find out);
    - ``connection_lost``: the connection dropped before the reply to a request that
      is not retried automatically (``start``, ``invite``, ``leave``);
    - ``closed``: the client was closed;
    - ``unreachable``: the first connection could not be opened;
    - ``protocol_error``, ``too_large``, ``access_revoked``, ``disconnected``: the
      connection was closed for good; ``close_code`` says how.

    ``retry_at`` is set when waiting helps (``outside_hours``: when the window opens).
    ``close_code`` is set when the error ended the connection (4501, 4503, 1002…).
    """

    def __init__(self, code: str, message: str = "", *, retry_at: datetime | None = None,
                 close_code: int | None = None) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.retry_at = retry_at
        self.close_code = close_code

    @classmethod
    def from_frame(cls, frame: dict[str, Any], *, close_code: int | None = None,
                   reason: str = "") -> PreauError:
        """The exception for an ``error`` (or ``access``) frame."""
        retry_at = frame.get("retry_at")
        return cls(str(frame.get("code", "error")), reason or str(frame.get("message", "")),
                   retry_at=_parse_time(retry_at) if isinstance(retry_at, str) else None,
                   close_code=close_code)


@dataclass(frozen=True, slots=True)
class Ack:
    """The server stored a message durably: it has this ``seq`` in that discussion.

    ``duplicate`` is true when the server had already stored this ``client_id``
    (a retry): the ack is the original one and no second message was created.
    """

    discussion: int
    seq: int
    client_id: str
    at: datetime
    duplicate: bool

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> Ack:
        return cls(int(frame["discussion"]), int(frame["seq"]), str(frame["client_id"]),
                   _parse_time(frame["at"]), bool(frame.get("duplicate", False)))


@dataclass(frozen=True, slots=True)
class Event:
    """A frame the server pushed: ``type`` is its ``"type"``, ``data`` the whole frame.

    Types: ``message``, ``discussion``, ``joined``, ``left``, ``read``, ``typing``,
    ``presence``, ``window``, ``access``, ``reconnect``, ``error`` (one that answers
    no request), and ``welcome`` — the welcome of each *re*\\ connection, so that an
    application can look at ``data["resume"]["complete"]`` and ``read_only``.
    """

    type: str
    data: dict[str, Any]


class _State(enum.Enum):
    NEW = "new"                    # connect() not called yet
    CONNECTED = "connected"        # a welcomed connection is in use
    RECONNECTING = "reconnecting"  # the connection dropped; a new one is being opened
    CLOSED = "closed"              # close() was called, or a terminal error happened


class _ConnectionLost(Exception):
    """Internal: the connection a request was sent on has gone."""


_END = None  # end of the event stream, queued after the last event


class Client:
    """A connection to a Préau server that survives network drops.

    ``url`` is the WebSocket endpoint (``wss://host/ws``); an ``http(s)://host``
    base URL is accepted and mapped to it. ``token`` is the JWT, or an async
    function returning a fresh one (a *token provider*): it is then called before
    every connection and whenever the server says ``token_expiring`` (the client then
    sends ``refresh`` by itself); a connection closed because its token expired
    (4401, or 4501 from an older server) is reopened at once with a fresh token.
    With a plain token, call :meth:`refresh` with a new one before it expires.

    Misuse raises ``RuntimeError``: requests before :meth:`connect`, ``connect``
    twice. A client is used once: after :meth:`close` or a terminal error, make a
    new one (copy :attr:`positions` into it to resume where this one stopped).
    """

    def __init__(self, url: str, token: str | Callable[[], Awaitable[str]], *,
                 encoding: Literal["json", "msgpack"] = "json", reconnect: bool = True,
                 max_backoff: float = 5.0, request_timeout: float = 10.0) -> None:
        if encoding not in ("json", "msgpack"):
            raise ValueError(f"encoding must be 'json' or 'msgpack', not {encoding!r}")
        self.url = _websocket_url(url)
        self.encoding = encoding
        self.reconnect = reconnect
        self.max_backoff = max_backoff
        self.request_timeout = request_timeout
        #: The last ``welcome`` frame (of the first connection or of a reconnection).
        self.welcome: dict[str, Any] | None = None
        #: Highest contiguous ``seq`` seen per discussion: what ``hello`` resumes from.
        #: Fill it before :meth:`connect` to resume a previous session (an app restart).
        #: Ordered from least to most recently advanced.
        self.positions: dict[int, int] = {}
        #: When the connection's token expires, as the server last said it
        #: (``token_expiring``, ``refreshed``); ``None`` until it says.
        self.token_expires_at: datetime | None = None
        self._token = token
        self._state = _State.NEW
        self._ws: ClientConnection | None = None
        # Set while a welcomed connection is usable or once the client is closed;
        # cleared while reconnecting. Requests wait on it.
        self._settled = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._failure: PreauError | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._refs = itertools.count(1)
        # Unbounded on purpose: the reader must never wait for the application, or
        # replies (acks) would be stuck behind unread events. An application that does
        # not care about events must still drain them (or memory grows).
        self._events: asyncio.Queue[Event | None] = asyncio.Queue()
        # Seqs seen above a gap, per discussion; the gap closes when they become
        # contiguous with `positions`.
        self._ahead: dict[int, set[int]] = {}
        # The last refusal frame (`error` without ref, `access`) of the current
        # connection: it explains the close that usually follows it.
        self._last_refusal: dict[str, Any] | None = None
        self._reconnect_now = False
        self._refreshing: asyncio.Task[None] | None = None  # answering token_expiring

    # ------------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        """True while a welcomed connection is open (false while reconnecting)."""
        return self._state is _State.CONNECTED and self._settled.is_set()

    async def connect(self) -> dict[str, Any]:
        """Open the connection, send ``hello`` and return the ``welcome`` frame.

        Raises :class:`PreauError`: ``unauthenticated`` (close 4501), an access code
        such as ``discussions_disabled`` (close 4503), ``unreachable`` (network or HTTP
        failure), ``timeout``. The first connection is not retried; the later ones are.
        """
        if self._state is not _State.NEW:
            raise RuntimeError(f"connect() expects a new client, this one is {self._state.value}")
        self._state = _State.RECONNECTING
        try:
            ws, welcome = await self._open()
        except BaseException as exc:
            failure = exc if isinstance(exc, PreauError) else PreauError("closed", str(exc))
            self._finish(failure)
            raise
        if self._state is _State.CLOSED:  # close() was called meanwhile
            await ws.close()
            raise PreauError("closed", "the client was closed while connecting")
        self._install(ws, welcome)
        self._runner = asyncio.create_task(self._run(ws), name="preau-client")
        return welcome

    async def close(self) -> None:
        """Close the connection and stop reconnecting. Idempotent.

        Pending requests raise ``PreauError("closed")``; :meth:`events` returns the
        events already received, then ends.
        """
        if self._state is _State.CLOSED:
            return
        self._finish(None)
        if self._refreshing is not None:
            self._refreshing.cancel()
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        if self._runner is not None:
            # It may be sleeping before a reconnection, or opening one.
            self._runner.cancel()
            await asyncio.wait({self._runner})

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    # ------------------------------------------------------------------ requests

    async def send(self, discussion: int, body: str, *, client_id: str | None = None) -> Ack:
        """Post a message; return once it is durable.

        ``client_id`` is the idempotency key (a new uuid4 if omitted). If the
        connection drops before the ack, the same frame is sent again on the next
        connection until acked or ``request_timeout`` has passed. A refusal raises
        :class:`PreauError` and nothing was stored.
        """
        reply = await self.request("send", discussion=discussion, body=body,
                                   client_id=client_id or str(uuid.uuid4()))
        return Ack.from_frame(reply)

    async def start(self, to: Sequence[str], subject: str, body: str, *,
                    client_id: str | None = None) -> dict[str, Any]:
        """Start a discussion with ``to`` and a first message; return the ``started`` frame.

        Retried after a connection drop with the same ``client_id``: the server answers
        a retried start with the original discussion, never a second one.
        """
        return await self.request("start", to=list(to), subject=subject, body=body,
                                  client_id=client_id or str(uuid.uuid4()))

    async def invite(self, discussion: int, user: str) -> None:
        """Add ``user`` to a discussion. Not retried after a connection drop."""
        await self.request("invite", discussion=discussion, user=user)

    async def leave(self, discussion: int) -> None:
        """Leave a discussion; it is no longer resumed. Not retried after a drop."""
        await self.request("leave", discussion=discussion)
        self.positions.pop(discussion, None)
        self._ahead.pop(discussion, None)

    async def mark_read(self, discussion: int, seq: int) -> None:
        """Tell the server (and the other participants) you have read up to ``seq``."""
        await self.request("read", discussion=discussion, seq=seq)

    async def typing(self, discussion: int) -> None:
        """Say you are typing. Best effort: no reply, and dropped while reconnecting."""
        ws = self._usable_connection()
        if ws is None:
            return
        with contextlib.suppress(ConnectionClosed):
            await self._write(ws, {"type": "typing", "discussion": discussion})

    async def discussions(self) -> list[dict[str, Any]]:
        """All your discussions, most recently active first (every page of ``list``)."""
        items, after = await self.discussions_page()
        while after is not None:
            page, after = await self.discussions_page(before=after, limit=MAX_LIST)
            items += page
        return items

    async def discussions_page(self, *, before: str | None = None, limit: int | None = None
                               ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of your discussions, most recently active first, and the cursor of
        the next page (``None`` on the last); pass it as ``before``."""
        fields: dict[str, Any] = {}
        if before is not None:
            fields["before"] = before
        if limit is not None:
            fields["limit"] = limit
        reply = await self.request("list", **fields)
        after = reply.get("next") if reply.get("more") else None
        return list(reply["items"]), after

    async def history(self, discussion: int, *, before: int | None = None,
                      limit: int = 50) -> tuple[list[dict[str, Any]], bool]:
        """Messages with ``seq < before`` (the latest if ``None``), newest first.

        Returns ``(messages, more)``; ``more`` is true if older messages exist.
        Pass the smallest ``seq`` received as ``before`` to get the next page.
        """
        fields: dict[str, Any] = {"discussion": discussion, "limit": limit}
        if before is not None:
            fields["before"] = before
        reply = await self.request("history", **fields)
        return list(reply["messages"]), bool(reply["more"])

    async def reads(self, discussion: int) -> dict[str, int]:
        """The other participants' read positions (user id → seq) you may learn, as a
        ``history`` reply gives them (§6.5): read receipts after a restart. Later ones
        come as ``read`` events."""
        reply = await self.request("history", discussion=discussion, limit=1)
        return {str(user): int(seq) for user, seq in reply.get("reads", {}).items()}

    async def request(self, type: str, **fields: Any) -> dict[str, Any]:
        """Send any request and return its reply frame.

        A unique ``ref`` is added; the reply carrying it is returned, an ``error``
        reply raises :class:`PreauError`. While reconnecting, the request waits for the
        new connection. Requests in ``send``, ``read``, ``list``, ``history``,
        ``ping`` are sent again if the connection drops before the reply; the others
        raise ``connection_lost``. Everything is bounded by ``request_timeout``.
        """
        if type in _NO_REPLY:
            raise ValueError(f"{type!r} has no reply: use the dedicated method")
        frame = {"type": type, **fields}
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.request_timeout):
                while True:
                    ws = await self._connection()
                    # A new ref per attempt: a ref names one frame on one connection.
                    ref = str(next(self._refs))
                    future: asyncio.Future[dict[str, Any]] = loop.create_future()
                    self._pending[ref] = future
                    try:
                        await self._write(ws, {**frame, "ref": ref})
                        reply = await future
                        break
                    except (_ConnectionLost, ConnectionClosed):
                        self._lost(ws)
                        if type not in _RETRYABLE:
                            raise PreauError(
                                "connection_lost",
                                f"the connection dropped before the reply to {type!r}: "
                                "it may or may not have been applied") from None
                    finally:
                        self._pending.pop(ref, None)
                        # Mark a failure set after we stopped waiting as retrieved.
                        if not future.done():
                            future.cancel()
                        elif not future.cancelled():
                            future.exception()
        except TimeoutError:
            raise PreauError("timeout", f"no reply to {type!r} within "
                                        f"{self.request_timeout:g} s") from None
        if reply.get("type") == "error":
            raise PreauError.from_frame(reply)
        return reply

    async def refresh(self, token: str | None = None) -> datetime:
        """Give the connection a fresh token (``refresh``); when it now expires.

        ``token`` defaults to one from the token provider; a token given here is also
        the one later reconnections use, when the client was made with a plain token.
        The server refuses another user's token by closing the connection (4501); a
        token it cannot verify raises ``unauthenticated`` and the connection goes on
        until its current token expires.
        """
        if token is None:
            if isinstance(self._token, str):
                raise ValueError("this client has a plain token: pass the new one")
            token = await self._token()
        elif isinstance(self._token, str):
            self._token = token
        reply = await self.request("refresh", token=token)
        self.token_expires_at = _parse_time(str(reply.get("expires_at")))
        return self.token_expires_at

    async def _refresh_soon(self) -> None:
        """Answer ``token_expiring`` (a provider is set): refresh, or let it expire,
        in which case the close 4401 that follows reconnects with the provider."""
        try:
            await self.refresh()
        except Exception as exc:  # the provider failed, the refresh was refused…
            log.warning("could not refresh the token: %s", exc)

    # ------------------------------------------------------------------ events

    def events(self) -> AsyncIterator[Event]:
        """Every event the server pushes, in order, across reconnections.

        A ``message`` already delivered (same discussion and seq, e.g. replayed by a
        resume) is skipped. The iterator ends after :meth:`close`, or raises the
        :class:`PreauError` that ended the client (close 4501, 4503…). Use one
        iterator at a time: each event is delivered once.
        """
        return _EventStream(self)

    # ------------------------------------------------------------------ internals

    async def _open(self) -> tuple[ClientConnection, dict[str, Any]]:
        """One connection up to its ``welcome``, or :class:`PreauError`."""
        token = self._token if isinstance(self._token, str) else await self._token()
        subprotocol = Subprotocol(f"preau.{self.encoding}")
        try:
            ws = await ws_connect(self.url, subprotocols=[subprotocol],
                                  open_timeout=self.request_timeout,
                                  max_size=MAX_INCOMING_BYTES)
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise PreauError("unreachable", f"{self.url}: {exc}") from exc
        refusal: dict[str, Any] | None = None
        try:
            if ws.subprotocol != subprotocol:
                raise PreauError("protocol_error",
                                 f"the server did not accept the subprotocol {subprotocol}")
            hello: dict[str, Any] = {"type": "hello", "token": token}
            # The most recently advanced discussions, if there are too many.
            resume = [[d, seq] for d, seq in self.positions.items()][-MAX_RESUME_PAIRS:]
            if resume:
                hello["resume"] = resume
            await self._write(ws, hello)
            async with asyncio.timeout(self.request_timeout):
                while True:
                    frame = _decode(await ws.recv())
                    if frame is None:
                        continue
                    if frame.get("type") == "welcome":
                        return ws, frame
                    # Before welcome the server only sends what explains a refusal.
                    if frame.get("type") in ("error", "access"):
                        refusal = frame
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else 1006
            reason = exc.rcvd.reason if exc.rcvd is not None else ""
            raise _close_error(code, reason, refusal) from None
        except TimeoutError:
            await ws.close()
            raise PreauError("timeout", "no welcome from the server") from None
        except BaseException:
            await ws.close()
            raise

    def _install(self, ws: ClientConnection, welcome: dict[str, Any]) -> None:
        self._ws = ws
        self.welcome = welcome
        self._last_refusal = None
        self._state = _State.CONNECTED
        self._settled.set()

    async def _run(self, ws: ClientConnection) -> None:
        """Read one connection after another until the client closes or fails for good."""
        try:
            while True:
                await self._read(ws)
                code = ws.close_code if ws.close_code is not None else 1006
                error = _close_error(code, ws.close_reason or "", self._last_refusal)
                self._lost(ws)
                self._fail_pending(_ConnectionLost())
                if self._state is _State.CLOSED:
                    return
                expired = code in (_TOKEN_EXPIRED, _UNAUTHENTICATED)
                fresh_token = expired and not isinstance(self._token, str)
                # A plain token that expired would only be refused again.
                hopeless = code == _TOKEN_EXPIRED and isinstance(self._token, str)
                if not self.reconnect or hopeless or (_is_terminal(code) and not fresh_token):
                    self._finish(error)
                    return
                # 4000 says "reconnect at once, elsewhere"; an expired token is replaced
                # at once. Anything else may be the network or an overloaded server.
                at_once = self._reconnect_now or code == _SHUTDOWN or fresh_token
                self._reconnect_now = False
                log.info("connection closed (%s %s), reconnecting", code, ws.close_reason)
                reopened = await self._reopen(at_once)
                if reopened is None:
                    return
                ws = reopened
        except Exception as exc:  # a bug here must end the stream, not hang it
            log.exception("the client's reader failed")
            self._finish(PreauError("closed", f"internal client error: {exc!r}"))

    async def _reopen(self, at_once: bool) -> ClientConnection | None:
        """Reconnect with capped exponential backoff; ``None`` if it ended for good."""
        self._state = _State.RECONNECTING
        failures = 0
        delay = 0.0 if at_once else _backoff(0, self.max_backoff)
        while True:
            await asyncio.sleep(delay)
            try:
                ws, welcome = await self._open()
            except PreauError as exc:
                # A hello refused with 4501 or 4503 means the same next time: no loop.
                if exc.close_code is not None and _is_terminal(exc.close_code):
                    self._finish(exc)
                    return None
                log.info("reconnection failed: %s", exc)
            except Exception:  # the token function failed: offline, probably
                log.warning("reconnection failed", exc_info=True)
            else:
                if self._state is _State.CLOSED:
                    await ws.close()
                    return None
                self._install(ws, welcome)
                self._events.put_nowait(Event("welcome", welcome))
                return ws
            failures += 1
            delay = _backoff(failures, self.max_backoff)

    async def _read(self, ws: ClientConnection) -> None:
        """Dispatch frames until the connection closes."""
        try:
            async for data in ws:
                frame = _decode(data)
                if frame is not None:
                    self._dispatch(frame)
                if self._reconnect_now:
                    await ws.close(1000, "reconnecting as asked")
                    break
        except ConnectionClosed:
            pass

    def _dispatch(self, frame: dict[str, Any]) -> None:
        """A reply completes its request; anything else is an event."""
        ref = frame.get("ref")
        if ref is not None:
            # A reply nobody waits for (its request timed out) is dropped.
            future = self._pending.get(str(ref))
            if future is not None and not future.done():
                future.set_result(frame)
            return
        kind = str(frame.get("type"))
        if kind == "message" and not self._first_delivery(frame):
            return
        if kind == "skipped":
            # A seq hidden from this user (protocol §4.5): it moves the position like a
            # message would, and is not an event.
            self._first_delivery(frame)
            return
        if kind in ("error", "access"):
            self._last_refusal = frame
        elif kind == "reconnect" and self.reconnect:
            # The node is going away: leave now rather than wait for its close 4000.
            self._reconnect_now = True
        elif kind == "token_expiring":
            expires_at = frame.get("expires_at")
            if isinstance(expires_at, str):
                self.token_expires_at = _parse_time(expires_at)
            if not isinstance(self._token, str) and (self._refreshing is None
                                                     or self._refreshing.done()):
                self._refreshing = asyncio.create_task(self._refresh_soon(),
                                                       name="preau-client-refresh")
        self._events.put_nowait(Event(kind, frame))

    def _first_delivery(self, frame: dict[str, Any]) -> bool:
        """Record a message's seq; false if it was already delivered.

        ``positions[d]`` only moves when the seq is contiguous, so that a resume asks
        for everything after the first gap; seqs seen beyond a gap wait in ``_ahead``.
        """
        d, seq = frame.get("discussion"), frame.get("seq")
        if not isinstance(d, int) or not isinstance(seq, int):
            return True
        position = self.positions.get(d)
        ahead = self._ahead.get(d, set())
        if position is not None and (seq <= position or seq in ahead):
            return False
        if position is not None and seq != position + 1:
            self._ahead.setdefault(d, set()).add(seq)
            return True
        while seq + 1 in ahead:
            seq += 1
            ahead.discard(seq)
        if not ahead:
            self._ahead.pop(d, None)
        # Re-insert so that the dict's order is "least recently advanced first".
        self.positions.pop(d, None)
        self.positions[d] = seq
        return True

    async def _connection(self) -> ClientConnection:
        """The current connection, after waiting for a reconnection if one is running."""
        while True:
            if self._state is _State.NEW:
                raise RuntimeError("call connect() before sending requests")
            if self._state is _State.CLOSED:
                raise self._failure or PreauError("closed", "the client is closed")
            if self._ws is not None and self._settled.is_set():
                return self._ws
            await self._settled.wait()

    def _usable_connection(self) -> ClientConnection | None:
        if self._state is _State.NEW:
            raise RuntimeError("call connect() before sending requests")
        if self._state is _State.CLOSED:
            raise self._failure or PreauError("closed", "the client is closed")
        return self._ws if self._settled.is_set() else None

    def _lost(self, ws: ClientConnection) -> None:
        """``ws`` is gone: requests wait for the next connection from now on."""
        if self._ws is ws:
            self._ws = None
            if self._state is not _State.CLOSED:
                self._settled.clear()

    def _fail_pending(self, exc: Exception) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(exc)
        self._pending.clear()

    def _finish(self, failure: PreauError | None) -> None:
        """The client ends: with ``failure``, or closed by the application (``None``)."""
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        self._failure = failure
        self._settled.set()  # wake the requests waiting for a connection
        self._fail_pending(failure or PreauError("closed", "the client was closed"))
        self._events.put_nowait(_END)

    async def _write(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        data = _encode(frame, self.encoding)
        size = len(data.encode() if isinstance(data, str) else data)
        if size > MAX_FRAME_BYTES:
            raise PreauError("too_large", f"the frame is {size} bytes, the limit is "
                                          f"{MAX_FRAME_BYTES}")
        await ws.send(data)


class _EventStream:
    """The iterator returned by :meth:`Client.events` (a class, not an async
    generator, so that abandoning it half-way needs no finalisation)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        queue = self._client._events
        event = await queue.get()
        if event is _END:
            queue.put_nowait(_END)  # stay ended for any later iterator
            failure = self._client._failure
            if failure is not None:
                raise failure
            raise StopAsyncIteration
        return event


# ---------------------------------------------------------------------- helpers


def _encode(frame: dict[str, Any], encoding: str) -> str | bytes:
    """JSON goes in text frames, MessagePack in binary frames."""
    if encoding == "json":
        return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
    data: bytes = msgpack.packb(frame, use_bin_type=True)
    return data


def _decode(data: str | bytes) -> dict[str, Any] | None:
    """One incoming frame, or ``None`` (logged) if it is not a map with a type."""
    try:
        value = json.loads(data) if isinstance(data, str) else msgpack.unpackb(data, raw=False)
    except (ValueError, msgpack.UnpackException):
        log.warning("ignoring an undecodable frame")
        return None
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        log.warning("ignoring a frame without a type")
        return None
    return value


def _close_error(code: int, reason: str, refusal: dict[str, Any] | None) -> PreauError:
    """Why a connection ended, preferring the frame that announced it (its code is
    more precise than the close code: ``discussions_disabled`` rather than 4503)."""
    if refusal is not None:
        return PreauError.from_frame(refusal, close_code=code, reason=reason)
    return PreauError(_CLOSE_NAMES.get(code, "disconnected"), reason or f"closed with {code}",
                      close_code=code)


def _backoff(failures: int, cap: float) -> float:
    """Exponential from 0.1 s, capped, with jitter so that clients cut together
    (a node that died) do not come back together."""
    return min(cap, 0.1 * 2.0 ** min(failures, 30)) * random.uniform(0.5, 1.0)


def _parse_time(value: str) -> datetime:
    """``2026-11-24T09:00:00.123456Z`` → an aware datetime (UTC)."""
    return datetime.fromisoformat(value)


def _websocket_url(url: str) -> str:
    """``http(s)://host`` → ``ws(s)://host/ws``; a ``ws(s)://`` URL with a path is kept."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"expected a ws://, wss://, http:// or https:// URL, not {url!r}")
    path = parts.path if parts.path not in ("", "/") else "/ws"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))
