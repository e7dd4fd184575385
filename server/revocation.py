"""Ended sign-in sessions, as this node knows them: refuse their tokens, cut their connections.

An access token naming a session (``sid``, :mod:`server.sessions`) is checked at ``hello``
and at every REST request. Reading the store each time would cost a read per request, so
each node keeps a small cache:

- sessions known to be ended (from the store, or told by a :class:`~server.events.SessionsEnded`
  event): refused at once, without a read;
- sessions found open, trusted for :data:`RECHECK` seconds, then read again.

The node that ends a session publishes the event on the school's channel: every node with
connections of that school receives it, refuses the session's tokens from then on and
closes its connections (an ``access`` frame, then 4501). A node without connections of the
school does not receive it and learns of it at its next read, within :data:`RECHECK`
seconds. A node that missed the event while Redis was away reads the session of each of
its connections again when the broker comes back, and closes those that ended.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import cast

from . import events, frames
from .audience import Session
from .errors import ErrorCode, NotFound, Refused, StoreError
from .hub import Frame, Hub
from .model import SchoolId
from .protocol import CloseCode
from .store.contract import SessionStore

__all__ = ["PRUNE_EVERY", "RECHECK", "Revocations"]

log = logging.getLogger("preau.revocation")

RECHECK = 60.0  # seconds an open session is trusted before it is read again
PRUNE_EVERY = 3600.0  # seconds between two prunings of the refresh tokens, per node
_MAX_ENTRIES = 100_000  # each cache, at most: the oldest entries go first

_ENDED = "La session est terminée (déconnexion ou révocation) : reconnectez-vous."


class Revocations:
    """Revocations is responsible for refusing and cutting ended sessions on this node."""

    def __init__(self, store: SessionStore, hub: Hub, *,
                 publish: Callable[[SchoolId, events.Event], Awaitable[None]],
                 recheck: float = RECHECK,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._hub = hub
        self._publish = publish
        self._recheck = recheck
        self._monotonic = monotonic
        self._ended: dict[str, None] = {}  # insertion-ordered: the oldest go first
        self._open: dict[str, float] = {}  # session id → when it was read open
        self._pruned: float | None = None  # when this node last pruned refresh tokens

    def register(self, dispatch: events.Dispatch) -> None:
        dispatch.on(events.SessionsEnded, self._on_ended)

    async def announce(self, school: SchoolId, sessions: Sequence[str], reason: str) -> None:
        """Sessions ended (the store says so already): here at once, then on every node."""
        await self._publish(school, events.SessionsEnded(school, tuple(sessions), reason))

    async def check(self, school: SchoolId, session_id: str) -> None:
        """Refused (``unauthenticated``) if the session has ended or is not the school's."""
        if session_id in self._ended:
            raise Refused(ErrorCode.UNAUTHENTICATED, _ENDED)
        seen = self._open.get(session_id)
        now = self._monotonic()
        if seen is not None and now - seen < self._recheck:
            return
        try:
            session = await self._store.get_session(school, session_id)
        except NotFound:
            raise Refused(ErrorCode.UNAUTHENTICATED,
                          "Cette session est inconnue : reconnectez-vous.") from None
        if session.revoked_at is not None:
            self._remember_ended(session_id)
            raise Refused(ErrorCode.UNAUTHENTICATED, _ENDED)
        if session_id in self._ended:  # ended while we were reading
            raise Refused(ErrorCode.UNAUTHENTICATED, _ENDED)
        self._open.pop(session_id, None)
        self._open[session_id] = now
        if len(self._open) > _MAX_ENTRIES:
            del self._open[next(iter(self._open))]

    async def prune_due(self, now: datetime) -> None:
        """Once an hour (the node's tick asks every second): remove the refresh tokens
        nothing can use any more (``SessionStore.prune_refresh_tokens``)."""
        here = self._monotonic()
        if self._pruned is not None and here - self._pruned < PRUNE_EVERY:
            return
        self._pruned = here
        try:
            removed = await self._store.prune_refresh_tokens(now)
        except StoreError as exc:  # the next hour will do
            log.warning("could not prune the refresh tokens: %s", exc)
            return
        if removed:
            log.info("%d refresh tokens pruned (expired, used, or of ended sessions)", removed)

    def forget_open(self) -> None:
        """Events may have been lost (the broker was away): read every session again."""
        self._open.clear()

    async def recheck_connections(self) -> None:
        """Events may have been lost (the broker was away): read the session of every
        connection here once, and close those whose session ended meanwhile."""
        self.forget_open()
        by_session: dict[str, SchoolId] = {}
        for member in self._hub.members():
            session_id = cast(Session, member).session_id
            if session_id is not None:
                by_session[session_id] = member.school_id
        ended: dict[SchoolId, list[str]] = {}
        for session_id, school in by_session.items():
            try:
                await self.check(school, session_id)
            except Refused:
                ended.setdefault(school, []).append(session_id)
            except StoreError as exc:  # the next recheck (or the token's expiry) will do
                log.warning("could not check sign-in session %s: %s", session_id, exc)
        for school, sessions in ended.items():
            self._on_ended(events.SessionsEnded(school, tuple(sessions), "missed"))

    def _remember_ended(self, session_id: str) -> None:
        self._open.pop(session_id, None)
        self._ended[session_id] = None
        if len(self._ended) > _MAX_ENTRIES:
            del self._ended[next(iter(self._ended))]

    def _on_ended(self, ev: events.SessionsEnded) -> None:
        ended = set(ev.sessions)
        for session_id in ended:
            self._remember_ended(session_id)
        frame = Frame(frames.access(ErrorCode.UNAUTHENTICATED, _ENDED))
        for member in self._hub.members():
            connection = cast(Session, member)  # the hub holds only sessions
            if member.school_id == ev.school and connection.session_id in ended:
                connection.push(frame)
                connection.close(CloseCode.UNAUTHENTICATED, "session ended")
