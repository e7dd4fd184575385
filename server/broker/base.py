"""The broker seam: publish/subscribe between server processes, whatever carries it.

:class:`Broker` is a ``typing.Protocol``. :class:`~server.broker.memory.MemoryBroker`
serves one process (tests, a single-node deployment);
:class:`~server.broker.redis.RedisBroker` connects several processes through one
Redis. The node registers itself as the :class:`BrokerEventHandler` and the
broker calls it back for every publication on a channel the node subscribed to
(the Centrifuge shape: ``node.go`` ``RegisterBrokerEventHandler(n)``).

The broker carries no history and promises no delivery: a message is durable in
the store before it is published, and a node that missed publications (an outage,
a late subscription) re-reads the store. Driver errors are translated at this
boundary into :class:`BrokerUnavailable`.

Lifecycle, enforced by every implementation (misuse raises ``RuntimeError``)::

    new --start()--> started --close()--> closed

``register()`` comes before ``start()``; ``publish``, ``subscribe``,
``unsubscribe`` and ``check`` need a started broker; ``close()`` may be called in
any state and more than once.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Protocol

from ..errors import PreauError

__all__ = [
    "Broker",
    "BrokerEventHandler",
    "BrokerState",
    "BrokerUnavailable",
]


class BrokerUnavailable(PreauError):
    """The broker cannot carry a publication or answer a health check right now.

    Raised by ``publish`` and ``check``. The message names the broker (its URL,
    password hidden) and what failed; the driver's exception is the ``__cause__``.
    A caller that already stored the message may carry on: subscribers catch up
    from the store when the broker comes back.
    """


class BrokerState(enum.Enum):
    """Where a broker is in its lifecycle (connection health is ``connected``)."""

    NEW = "new"
    STARTED = "started"
    CLOSED = "closed"

    def expect(self, wanted: BrokerState, operation: str) -> None:
        """Raise ``RuntimeError`` unless this is ``wanted``: ``operation()`` misused."""
        if self is not wanted:
            raise RuntimeError(
                f"{operation}() expects a {wanted.value} broker, got a {self.value} one")


class BrokerEventHandler(Protocol):
    """BrokerEventHandler is responsible for receiving what the broker delivers.

    The node implements it. Both methods are called on the event loop thread and
    must return quickly without blocking or awaiting (schedule work instead). An
    exception raised from them is logged and swallowed: it never stops delivery.
    """

    def handle_publication(self, channel: str, data: bytes) -> None:
        """A publication on ``channel``, ``data`` exactly as published.

        Calls for one channel come in publish order (as the broker saw it), and
        only while the channel is subscribed: none arrive for a channel once
        ``unsubscribe`` has returned.
        """

    def handle_resubscribed(self) -> None:
        """The broker lost its connection and has it back, every subscription restored.

        Publications made meanwhile may be lost: re-read the store for every
        subscribed channel to fill the gap (deduplicating by sequence number).
        Not called for the first connection made by ``start()``.
        """


class Broker(Protocol):
    """Broker is responsible for PUB/SUB between the server processes.

    One broker subscription per channel per node: the node subscribes when its
    first local connection needs a channel and unsubscribes when its last one
    leaves, and fans each publication out to its local connections itself.
    """

    @property
    def state(self) -> BrokerState:
        """The lifecycle state."""
        ...

    @property
    def connected(self) -> bool:
        """True while the broker can publish and deliver (started and connected)."""
        ...

    def register(self, handler: BrokerEventHandler) -> None:
        """Set the handler that receives publications; call once, before ``start()``."""

    async def start(self) -> None:
        """Connect; raise :class:`BrokerUnavailable` if the backend cannot be reached.

        A broker that started survives later losses by itself (see
        ``handle_resubscribed``); only the first connection fails fast.
        """

    async def close(self) -> None:
        """Stop delivering, release connections and tasks; prompt even during an outage."""

    async def publish(self, channel: str, data: bytes) -> None:
        """Send ``data`` to every node subscribed to ``channel``, this one included.

        Returns once the backend accepted the publication (not once it was
        delivered). Raises :class:`BrokerUnavailable` promptly when disconnected.
        Publications awaited in some order on one broker reach subscribers in
        that order.
        """

    async def subscribe(self, channel: str) -> None:
        """Start delivering ``channel`` to the handler; idempotent.

        When it returns, either the subscription is live (every publication made
        from then on is delivered), or the broker is disconnected: then the
        channel is recorded, subscribed on reconnection, and
        ``handle_resubscribed`` follows. It does not raise for an outage.
        """

    async def subscribe_many(self, channels: Iterable[str]) -> None:
        """``subscribe`` for each channel, in one round trip."""

    async def unsubscribe(self, channel: str) -> None:
        """Stop delivering ``channel``; takes effect before it returns; idempotent."""

    async def unsubscribe_many(self, channels: Iterable[str]) -> None:
        """``unsubscribe`` for each channel, in one round trip."""

    async def check(self) -> None:
        """End-to-end health: a probe goes out and comes back through a subscription.

        Raises :class:`BrokerUnavailable` if it does not within the broker's
        timeout (about 2 s). Used by ``/readyz``.
        """
