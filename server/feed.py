"""A discussion's feed on one node: publications in, a gap-free ordered stream out.

Messages reach a node twice or not at all (its own, then the broker's copy; a
publication lost while Redis was away), and out of order across publishers.
A :class:`Feed` turns that into the stream its connections need: it delivers
seq ``w + 1`` after ``w`` (``w`` is the *watermark*), drops what it has already
delivered, holds what comes early, and reads the store to fill a gap.

Nothing here knows the hub or the broker: the node passes in how to deliver a
message, how to read the store, and how to run a task in the background.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .store import StoredMessage

__all__ = ["Feed"]

FILL_BATCH = 500  # messages read from the store at a time to fill a gap

Deliver = Callable[[StoredMessage], None]
Read = Callable[[int, int], Awaitable[list[StoredMessage]]]  # (after, upto) → oldest first
Spawn = Callable[[Coroutine[Any, Any, None]], None]


class Feed:
    """One discussion's ordered stream on this node.

    ``watermark`` is ``None`` until :meth:`start` sets it from the store (the last
    seq that was durable when the first connection here joined); until then
    messages are only held. :meth:`close` stops a fill in progress from delivering.
    """

    __slots__ = ("_deliver", "_read", "_spawn", "closed", "filling", "pending", "watermark")

    def __init__(self, deliver: Deliver, read: Read, spawn: Spawn) -> None:
        self.watermark: int | None = None
        self.pending: dict[int, StoredMessage] = {}
        self.filling = False
        self.closed = False
        self._deliver = deliver
        self._read = read
        self._spawn = spawn

    def start(self, watermark: int) -> None:
        """Begin at ``watermark`` (if not begun): deliver what was held after it."""
        if self.watermark is None:
            self.watermark = watermark
            self._drain()

    def offer(self, msg: StoredMessage) -> None:
        """A message of this discussion, from this node or the broker, maybe again."""
        w = self.watermark
        if w is not None and msg.seq <= w:
            return  # seen
        if w is not None and msg.seq == w + 1 and not self.pending:
            self.watermark = msg.seq
            self._deliver(msg)
            return
        self.pending[msg.seq] = msg
        self._drain()

    def close(self) -> None:
        self.closed = True

    async def catch_up(self, last: int) -> None:
        """The store says ``last`` is durable: fill up to it (publications were lost)."""
        if self.watermark is not None and last > self.watermark and not self.filling:
            self.filling = True
            await self._fill(upto=last)

    def _drain(self) -> None:
        if self.watermark is None:
            return
        pending = self.pending
        for seq in [s for s in pending if s <= self.watermark]:
            del pending[seq]
        while self.watermark + 1 in pending:
            self._advance(pending.pop(self.watermark + 1))
        if pending and not self.filling:
            self.filling = True
            self._spawn(self._fill())

    def _advance(self, msg: StoredMessage) -> None:
        self.watermark = msg.seq
        self._deliver(msg)

    async def _fill(self, upto: int | None = None) -> None:
        """Read from the store what the broker did not bring (a gap in sequence numbers)."""
        try:
            while self.watermark is not None and (self.pending or upto is not None):
                target = max(self.pending) if self.pending else upto
                assert target is not None
                rows = await self._read(self.watermark, target)
                if not rows:
                    break
                for msg in rows:
                    if self.closed:
                        return
                    if msg.seq == self.watermark + 1:
                        self.pending.pop(msg.seq, None)
                        self._advance(msg)
                while self.watermark + 1 in self.pending:
                    self._advance(self.pending.pop(self.watermark + 1))
                if upto is not None and self.watermark >= upto:
                    upto = None
        finally:
            self.filling = False
