"""MemoryBroker: the broker for a single process, and the fake the node tests use.

It connects nothing: two ``MemoryBroker`` instances never see each other's
publications, so it serves one server process only (tests, a one-node
deployment). Use :class:`~server.broker.redis.RedisBroker` for several.

Delivery is scheduled with ``loop.call_soon`` rather than made inside
``publish``: like Redis, the publisher gets control back before any handler runs
(so the node never re-enters itself from its own publish), and since
``call_soon`` callbacks run first in, first out, publications keep their order.
Whether the channel is still subscribed is checked when the callback runs, so
nothing is delivered after ``unsubscribe`` returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .base import Broker, BrokerEventHandler, BrokerState

__all__ = ["MemoryBroker"]

logger = logging.getLogger(__name__)


class MemoryBroker:
    """Broker is responsible for PUB/SUB between the server processes; here, within one."""

    def __init__(self) -> None:
        self._handler: BrokerEventHandler | None = None
        self._state = BrokerState.NEW
        self._channels: set[str] = set()

    @property
    def state(self) -> BrokerState:
        return self._state

    @property
    def connected(self) -> bool:
        return self._state is BrokerState.STARTED

    def register(self, handler: BrokerEventHandler) -> None:
        self._state.expect(BrokerState.NEW, "register")
        self._handler = handler

    async def start(self) -> None:
        self._state.expect(BrokerState.NEW, "start")
        if self._handler is None:
            raise RuntimeError("register a BrokerEventHandler before start()")
        self._state = BrokerState.STARTED

    async def close(self) -> None:
        self._state = BrokerState.CLOSED
        self._channels.clear()

    async def publish(self, channel: str, data: bytes) -> None:
        self._expect_started("publish")
        if channel in self._channels:
            asyncio.get_running_loop().call_soon(self._deliver, channel, bytes(data))

    async def subscribe(self, channel: str) -> None:
        await self.subscribe_many((channel,))

    async def subscribe_many(self, channels: Iterable[str]) -> None:
        self._expect_started("subscribe")
        self._channels.update(channels)

    async def unsubscribe(self, channel: str) -> None:
        await self.unsubscribe_many((channel,))

    async def unsubscribe_many(self, channels: Iterable[str]) -> None:
        self._expect_started("unsubscribe")
        self._channels.difference_update(channels)

    async def check(self) -> None:
        """Always succeeds on a started broker: there is nothing to reach."""
        self._expect_started("check")

    def _deliver(self, channel: str, data: bytes) -> None:
        if channel not in self._channels or self._handler is None:
            return  # unsubscribed (or closed) after the publication was scheduled
        try:
            self._handler.handle_publication(channel, data)
        except Exception:
            logger.exception("the broker event handler failed on channel %s", channel)

    def _expect_started(self, operation: str) -> None:
        self._state.expect(BrokerState.STARTED, operation)


if TYPE_CHECKING:
    # mypy proves MemoryBroker satisfies Broker (Centrifuge's `var _ Broker = ...`).
    _: Broker = MemoryBroker()
