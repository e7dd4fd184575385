"""The feed alone: ordering, duplicates, gaps filled from the store, and closing."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import pytest

from server.feed import Feed
from server.model import DiscussionId, UserId
from server.store import StoredMessage

pytestmark = pytest.mark.anyio

AT = datetime(2026, 11, 24, 9, tzinfo=UTC)


def msg(seq: int) -> StoredMessage:
    return StoredMessage(DiscussionId(1), seq, UserId("t1"), f"c{seq}", f"m{seq}", AT)


class Harness:
    """A feed over a store holding messages 1..``stored``, recording deliveries."""

    def __init__(self, stored: int) -> None:
        self.stored = stored
        self.delivered: list[int] = []
        self.reads: list[tuple[int, int]] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.feed = Feed(lambda m: self.delivered.append(m.seq), self.read, self.spawn)

    async def read(self, after: int, upto: int) -> list[StoredMessage]:
        self.reads.append((after, upto))
        await asyncio.sleep(0)
        return [msg(s) for s in range(after + 1, min(upto, self.stored) + 1)]

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(coro))

    async def settle(self) -> None:
        while self.tasks:
            await self.tasks.pop()


async def test_in_order_without_duplicates():
    h = Harness(stored=3)
    h.feed.start(0)
    for seq in (1, 1, 2, 3, 2):
        h.feed.offer(msg(seq))
    assert h.delivered == [1, 2, 3]
    assert h.reads == []  # no gap, no read


async def test_held_until_started_then_delivered_after_the_watermark():
    h = Harness(stored=5)
    h.feed.offer(msg(4))
    h.feed.offer(msg(5))
    assert h.delivered == []
    h.feed.start(3)  # 1..3 were durable when the first connection joined
    assert h.delivered == [4, 5]


async def test_a_gap_is_filled_from_the_store_in_order():
    h = Harness(stored=6)
    h.feed.start(1)
    h.feed.offer(msg(5))  # 2..4 never published (Redis was away)
    h.feed.offer(msg(6))
    assert h.delivered == []
    await h.settle()
    assert h.delivered == [2, 3, 4, 5, 6]
    assert h.reads == [(1, 6)]


async def test_catch_up_reads_what_no_publication_brought():
    h = Harness(stored=4)
    h.feed.start(1)
    await h.feed.catch_up(4)
    assert h.delivered == [2, 3, 4]
    await h.feed.catch_up(4)  # nothing new: no read
    assert h.reads == [(1, 4)]


async def test_a_closed_feed_delivers_nothing_more():
    h = Harness(stored=4)
    h.feed.start(1)
    h.feed.offer(msg(4))
    h.feed.close()  # the last connection here left while the fill was reading
    await h.settle()
    assert h.delivered == []
