"""The local side of fan-out: connections on this node, and how bytes reach them.

- :class:`Transport` is the one thing a session needs from a socket; ``web.py``
  adapts Starlette's WebSocket to it, tests use an in-memory one.
- :class:`Frame` is an outgoing frame encoded at most once per encoding, however
  many connections receive it (the Centrifuge rule: encode once per node).
- :class:`Outbox` is a connection's bounded outbound queue, counted in bytes, with
  one writer task. A client too slow to drain it is cut with close 4008 rather
  than allowed to grow the server's memory.
- :class:`Hub` is only a registry: connections by user, and by discussion.
- :class:`Allowance` is one user's request budget on this node, shared by all of
  that user's connections here (more connections do not buy more requests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from .model import DiscussionId, SchoolId, UserId
from .protocol import CloseCode, Encoding, close_reason, encode

__all__ = ["Allowance", "Frame", "Hub", "Member", "Outbox", "Transport", "TransportClosed"]

log = logging.getLogger("preau.hub")


class TransportClosed(Exception):
    """The peer went away; nothing more can be sent or received."""


class Transport(Protocol):
    """Transport is responsible for moving one connection's frames.

    ``receive`` returns one frame (``str`` for text, ``bytes`` for binary) and
    raises :class:`TransportClosed` once the peer is gone. ``send`` raises
    :class:`TransportClosed` likewise. ``close`` is idempotent.
    """

    async def receive(self) -> str | bytes: ...

    async def send(self, data: str | bytes) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class Frame:
    """An outgoing frame, encoded lazily and at most once per encoding."""

    __slots__ = ("_json", "_msgpack", "body")

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.body = body
        self._json: str | bytes | None = None
        self._msgpack: str | bytes | None = None

    def data(self, encoding: Encoding) -> str | bytes:
        if encoding is Encoding.JSON:
            if self._json is None:
                self._json = encode(self.body, encoding)
            return self._json
        if self._msgpack is None:
            self._msgpack = encode(self.body, encoding)
        return self._msgpack


class Outbox:
    """A bounded outbound queue, drained by a writer task that exists only while needed.

    Sizes are ``len()`` of each frame: bytes for MessagePack, characters for JSON
    (the UTF-8 encoding can be larger; the limit is approximate there).
    ``put`` never blocks: when the bytes waiting would exceed ``limit`` the
    outbox closes the transport with :data:`CloseCode.SLOW` and drops what is
    queued (the client resumes from its last seen position on reconnect).

    An idle connection holds no task and no event, only an empty list: the writer
    is started by ``put`` and ends when the queue is empty (memory per idle
    connection is a budget, see bench/RESULTS.md).
    """

    __slots__ = ("_closed", "_pending", "_queue", "_transport", "_writer", "limit")

    def __init__(self, transport: Transport, limit: int) -> None:
        self._transport = transport
        self.limit = limit
        self._queue: list[str | bytes] = []
        self._pending = 0
        self._closed = False
        self._writer: asyncio.Task[None] | None = None

    @property
    def pending_bytes(self) -> int:
        return self._pending

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, data: str | bytes) -> None:
        if self._closed:
            return
        size = len(data)
        # One frame always fits in an empty outbox (a big history page, say): memory stays
        # bounded by the limit plus one frame.
        if self._pending and self._pending + size > self.limit:
            self.abort(CloseCode.SLOW, "slow: too many frames waiting for this client")
            return
        self._queue.append(data)
        self._pending += size
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())

    def abort(self, code: int, reason: str) -> None:
        """Drop everything queued and close the transport (from sync code)."""
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        self._pending = 0
        asyncio.get_running_loop().create_task(self._transport.close(code, close_reason(reason)))

    async def close(self, code: int, reason: str, *, flush_timeout: float = 2.0) -> None:
        """Send what is queued (for at most ``flush_timeout`` s), then close."""
        if not self._closed:
            self._closed = True
            writer = self._writer
            if writer is not None:
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(writer), flush_timeout)
            await self._transport.close(code, close_reason(reason))
        await self.stop()

    async def stop(self) -> None:
        """Stop the writer task (the transport is closed or being closed elsewhere)."""
        self._closed = True
        writer = self._writer
        if writer is not None and not writer.done():
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _write(self) -> None:
        transport = self._transport
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                for data in batch:
                    if self._pending == 0 and self._closed:
                        return  # aborted: what was queued is dropped
                    self._pending -= len(data)
                    await transport.send(data)
        except TransportClosed:
            self._closed = True
            self._queue.clear()
            self._pending = 0
        except Exception:
            # The connection must not live on without its writer: close it, so that its
            # session ends and is detached (a bug costs one connection, and shows).
            log.exception("writing to a connection failed")
            self.abort(CloseCode.INTERNAL, "internal error")
        finally:
            self._writer = None


class Allowance:
    """A token bucket: ``rate`` tokens a second, at most ``burst`` saved up.

    One per (school, user) on a node, held by the :class:`Hub` while the user has a
    connection here: a pupil with twenty tabs gets the same rate as with one.
    """

    __slots__ = ("burst", "rate", "refilled", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.refilled = time.monotonic()

    def take(self, cost: float) -> float:
        """Spend ``cost`` tokens: 0.0 if done, else the seconds until there would be
        enough (nothing is spent then)."""
        now = time.monotonic()
        tokens = self.tokens + (now - self.refilled) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        self.refilled = now
        if tokens < cost:
            self.tokens = tokens
            return (cost - tokens) / self.rate
        self.tokens = tokens - cost
        return 0.0

    def full(self, now: float) -> bool:
        """Saved up to ``burst`` again by ``now``: no different from a fresh one."""
        return self.tokens + (now - self.refilled) * self.rate >= self.burst


class AddressAllowances:
    """One :class:`Allowance` per client address, for the routes that run before anyone
    is known (refreshing a session, starting a sign-in): a flood from one address
    waits, others do not. At most ``keep`` addresses are remembered; beyond that the
    full allowances, which differ in nothing from fresh ones, are forgotten."""

    __slots__ = ("_allowances", "burst", "keep", "rate")

    def __init__(self, rate: float, burst: float, *, keep: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.keep = keep
        self._allowances: dict[str, Allowance] = {}

    def take(self, address: str) -> float:
        """Spend one for ``address``: 0.0 if done, else the seconds to wait."""
        allowance = self._allowances.get(address)
        if allowance is None:
            if len(self._allowances) >= self.keep:
                now = time.monotonic()
                self._allowances = {a: b for a, b in self._allowances.items()
                                    if not b.full(now)}
            allowance = self._allowances[address] = Allowance(self.rate, self.burst)
        return allowance.take(1.0)


_FORGET_FULL_AFTER = 1024  # allowances kept before looking for ones to forget


class Member(Protocol):
    """What the hub knows of a connection: who it is and how to reach it."""

    school_id: SchoolId
    user_id: UserId

    def deliver(self, discussion: DiscussionId, seq: int, frame: Frame | None) -> None:
        """A sequenced message of ``discussion`` (dropped if already seen); ``None`` for
        a message hidden from this member: its seq is passed over, nothing is sent of it."""

    def push(self, frame: Frame) -> None:
        """Any other frame."""


class Hub:
    """Hub is responsible for tracking the connections of this node.

    By user (to reach everyone signed in as someone) and by discussion (to fan
    out). It does no I/O; the node decides what goes where. It also keeps each
    user's :class:`Allowance` (``rate`` requests a second, ``burst`` saved up),
    shared by their connections and their REST requests on this node. An allowance
    outlives the user's last connection until it has filled up again, so that
    reconnecting (or calling the REST API without a connection) buys nothing.
    """

    def __init__(self, rate: float = 20.0, burst: float = 40.0) -> None:
        self._by_user: dict[tuple[SchoolId, UserId], set[Member]] = {}
        self._allowances: dict[tuple[SchoolId, UserId], Allowance] = {}
        self._forget_full_after = _FORGET_FULL_AFTER  # allowances kept before a sweep
        self._rate = rate
        self._burst = burst
        self._by_discussion: dict[tuple[SchoolId, DiscussionId], set[Member]] = {}

    def __len__(self) -> int:
        return sum(len(s) for s in self._by_user.values())

    def add(self, member: Member) -> bool:
        """Register a connection; True if it is the user's first on this node."""
        key = (member.school_id, member.user_id)
        members = self._by_user.setdefault(key, set())
        members.add(member)
        return len(members) == 1

    def remove(self, member: Member) -> bool:
        """Forget a connection (unsubscribe it first); True if it was the user's last here."""
        key = (member.school_id, member.user_id)
        members = self._by_user.get(key)
        if members is None or member not in members:
            return False
        members.discard(member)
        if not members:
            del self._by_user[key]
            return True
        return False

    def allowance(self, school_id: SchoolId, user_id: UserId) -> Allowance:
        """The user's request budget on this node, shared by their connections and REST
        requests (created on first use)."""
        key = (school_id, user_id)
        allowance = self._allowances.get(key)
        if allowance is None:
            if len(self._allowances) >= self._forget_full_after:
                self._forget_full()
            allowance = self._allowances[key] = Allowance(self._rate, self._burst)
        return allowance

    def _forget_full(self) -> None:
        """Drop the allowances of users with no connection here that have filled up
        again (a fresh one is the same); memory stays bounded by recent users."""
        now = time.monotonic()
        for key in [k for k, a in self._allowances.items()
                    if k not in self._by_user and a.full(now)]:
            del self._allowances[key]
        self._forget_full_after = max(_FORGET_FULL_AFTER, 2 * len(self._allowances))

    def connections_of(self, school_id: SchoolId, user_id: UserId) -> int:
        return len(self._by_user.get((school_id, user_id), ()))

    def subscribe(self, member: Member, discussion: DiscussionId) -> bool:
        """Add a connection to a discussion's audience; True if it is the first on this node."""
        subs = self._by_discussion.setdefault((member.school_id, discussion), set())
        subs.add(member)
        return len(subs) == 1

    def unsubscribe(self, member: Member, discussion: DiscussionId) -> bool:
        """Remove a connection from a discussion; True if nobody here listens any more."""
        key = (member.school_id, discussion)
        subs = self._by_discussion.get(key)
        if subs is None:
            return False
        subs.discard(member)
        if not subs:
            del self._by_discussion[key]
            return True
        return False

    def of_user(self, school_id: SchoolId, user_id: UserId) -> frozenset[Member]:
        return frozenset(self._by_user.get((school_id, user_id), ()))

    def in_discussion(self, school_id: SchoolId, discussion: DiscussionId) -> set[Member]:
        """The live set (do not mutate; copy before awaiting)."""
        return self._by_discussion.get((school_id, discussion), _EMPTY)

    def discussions(self) -> Iterator[tuple[SchoolId, DiscussionId]]:
        return iter(list(self._by_discussion))

    def members(self) -> Iterator[Member]:
        for members in list(self._by_user.values()):
            yield from list(members)

    def schools(self) -> set[SchoolId]:
        return {school for school, _ in self._by_user}


_EMPTY: set[Any] = set()
