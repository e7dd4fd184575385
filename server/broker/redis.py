"""RedisBroker: publish/subscribe between server processes through one Redis.

Two connections per node:

- **Publishing** goes through a ``redis.asyncio`` client and one flusher task.
  ``publish`` queues the publication and waits; the flusher sends everything
  queued as one pipeline (one round trip), and while that round trip is in
  flight, new publications queue up for the next one. A lone publication costs
  one round trip; a burst of concurrent ones costs one round trip per batch, and
  one connection keeps them in call order.
- **Subscribing** uses one dedicated pub/sub connection, driven here rather than
  by ``redis.asyncio.client.PubSub``, whose automatic reconnection would hide
  the very events the node must hear about (a lost connection means lost
  publications). A *session* is one such connection: a writer task sends
  ``SUBSCRIBE``/``UNSUBSCRIBE``/``PING`` (all queued commands in one write) and a
  reader task dispatches what comes back. Any error ends the whole session.

Confirmation without per-channel bookkeeping: Redis answers commands on a
connection in order, so when a ``PING <token>`` sent after ``SUBSCRIBE`` commands
comes back, those subscriptions are live. ``subscribe`` waits for such a
*barrier*; a barrier not answered within ``timeout`` seconds (also used as an
idle keep-alive every ``keepalive`` seconds) declares the connection dead, which
catches silent network failures a closed socket would not report. A watchdog
task checks those deadlines every ``min(timeout, keepalive) / 4`` seconds.

After a loss, a supervisor task reconnects with exponential backoff (0.1 s
doubling to 5 s, with jitter), subscribes every current channel again (in
commands of at most 1,000 channels), and once the barrier behind them returns,
calls ``handle_resubscribed`` so the node re-reads the store. While
disconnected, ``publish`` and ``check`` raise :class:`BrokerUnavailable` at once
and ``subscribe`` records the channel for the next session.

Every node also subscribes its private ``preau:node:<id>`` channel: ``check``
publishes a probe there and waits for it to come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import random
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ..errors import ConfigurationError
from .base import Broker, BrokerEventHandler, BrokerState, BrokerUnavailable
from .channels import node_channel

__all__ = ["RedisBroker"]

logger = logging.getLogger(__name__)

_BACKOFF_MIN = 0.1
_BACKOFF_MAX = 5.0
_SUBSCRIBE_CHUNK = 1000  # channels per SUBSCRIBE command: keeps a resubscription's commands small
_PIPELINE_MAX = 1000  # publications per pipeline round trip

# A failed publication must fail fast: no retry (the message is already durable in
# the store and subscribers catch up). A stale pooled connection after an outage is
# replaced by the pool's own check when it is handed out, so no retry is needed for it.
_NO_RETRY = Retry(NoBackoff(), 0)

_Publication = tuple[bytes, bytes, asyncio.Future[None]]


def _redact(url: str) -> str:
    """The URL with its password (if any) replaced by ``***``, for messages and logs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    except ValueError:
        return "<unparsable Redis URL>"


def _describe(exc: BaseException) -> str:
    """The first real error inside (possibly nested) exception groups, as text."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


def _chunks(items: Sequence[bytes], size: int) -> Iterable[Sequence[bytes]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class _Session:
    """One pub/sub connection and what is in flight on it; it dies whole.

    ``barriers`` maps each ``PING`` token to its waiter and deadline, in sending
    order; a deadline is set when the writer actually sends the ``PING``.
    """

    def __init__(self, conn: AbstractConnection) -> None:
        self.conn = conn
        self.outbox: list[tuple[bytes, ...]] = []
        self.wakeup = asyncio.Event()
        self.barriers: dict[bytes, tuple[asyncio.Future[bool], float | None]] = {}
        self.ready_token = b""
        self.ready = False
        self.dead = False
        self.reads = 0  # replies read so far: the watchdog's sign of life
        self._tokens = itertools.count()

    def send(self, *command: bytes) -> None:
        if not self.dead:
            self.outbox.append(command)
            self.wakeup.set()

    def barrier(self, *, ready: bool = False) -> asyncio.Future[bool]:
        """A future set to True once everything sent before it was answered, False if lost.

        ``ready`` marks the session's first barrier: its answer makes the session ready.
        """
        token = b"b%d" % next(self._tokens)
        if ready:
            self.ready_token = token
        future = asyncio.get_running_loop().create_future()
        if self.dead:
            future.set_result(False)
            return future
        self.barriers[token] = (future, None)
        self.send(b"PING", token)
        return future

    def stamp(self, deadline: float) -> None:
        """Start the clock on barriers about to be sent."""
        for token, (future, when) in self.barriers.items():
            if when is None:
                self.barriers[token] = (future, deadline)

    def next_deadline(self) -> float | None:
        for _future, when in self.barriers.values():
            return when  # the oldest; sent first, so stamped first
        return None

    def answered(self, token: bytes) -> None:
        """A PONG came back: it and every barrier sent before it are answered."""
        if token not in self.barriers:
            return  # not ours (cannot happen) or already failed
        for key in list(self.barriers):
            future, _ = self.barriers.pop(key)
            if not future.done():
                future.set_result(True)
            if key == token:
                return

    def fail(self) -> None:
        self.dead = True
        self.outbox.clear()
        for future, _ in self.barriers.values():
            if not future.done():
                future.set_result(False)
        self.barriers.clear()


class RedisBroker:
    """Broker is responsible for PUB/SUB between the server processes, through Redis.

    ``url`` is a ``redis://`` (or ``rediss://``, ``unix://``) URL; ``node_id``
    names this process (its health-probe channel and its Redis client name).
    ``timeout`` bounds connecting, each reply and a health check; ``keepalive``
    is how long the pub/sub connection may stay silent before it is pinged.
    """

    def __init__(
        self, url: str, *, node_id: str, timeout: float = 2.0, keepalive: float = 10.0
    ) -> None:
        self._url = _redact(url)
        self._node_channel = node_channel(node_id)
        self._node_raw = self._node_channel.encode()
        self._timeout = timeout
        self._keepalive = keepalive
        try:
            self._redis: Redis = Redis.from_url(
                url,
                protocol=2,  # the pub/sub reader below parses RESP2 replies
                socket_connect_timeout=timeout,
                socket_timeout=timeout,
                retry=_NO_RETRY,
                health_check_interval=0,  # a health PING would steal the reader's replies
                client_name=f"preau-{node_id}",
            )
        except ValueError as exc:
            raise ConfigurationError(f"invalid Redis URL {self._url}: {exc}") from exc
        self._handler: BrokerEventHandler | None = None
        self._state = BrokerState.NEW
        self._channels: dict[bytes, str] = {}  # raw name -> name, what the handler gets
        self._session: _Session | None = None
        self._connected = asyncio.Event()
        self._ever_connected = False
        self._outbox: list[_Publication] = []
        self._outbox_ready = asyncio.Event()
        self._in_flight: list[_Publication] = []
        self._probes: dict[bytes, asyncio.Future[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def state(self) -> BrokerState:
        return self._state

    @property
    def connected(self) -> bool:
        return self._state is BrokerState.STARTED and self._connected.is_set()

    def register(self, handler: BrokerEventHandler) -> None:
        self._state.expect(BrokerState.NEW, "register")
        self._handler = handler

    async def start(self) -> None:
        """Connect both connections; :class:`BrokerUnavailable` (and closed) if it cannot."""
        self._state.expect(BrokerState.NEW, "start")
        if self._handler is None:
            raise RuntimeError("register a BrokerEventHandler before start()")
        self._state = BrokerState.STARTED
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            await self.close()
            raise BrokerUnavailable(f"cannot reach Redis at {self._url}: {exc}") from exc
        self._tasks = [
            asyncio.create_task(self._flush(), name=f"broker-flush {self._node_channel}"),
            asyncio.create_task(self._supervise(), name=f"broker-subscriber {self._node_channel}"),
        ]
        # The session makes its first attempt at once; give it connect + handshake + reply.
        try:
            async with asyncio.timeout(3 * self._timeout):
                await self._connected.wait()
        except TimeoutError as exc:
            await self.close()
            raise BrokerUnavailable(
                f"Redis at {self._url} answered but the subscription connection failed "
                f"within {3 * self._timeout:g} s"
            ) from exc

    async def close(self) -> None:
        if self._state is BrokerState.CLOSED:
            return
        self._state = BrokerState.CLOSED
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _, _, future in (*self._in_flight, *self._outbox):
            if not future.done():
                future.set_exception(BrokerUnavailable(f"the broker for {self._url} was closed"))
        self._in_flight, self._outbox = [], []
        for probe in self._probes.values():
            probe.cancel()
        self._probes.clear()
        self._channels.clear()
        self._connected.clear()
        await self._redis.aclose()

    # Publishing.

    async def publish(self, channel: str, data: bytes) -> None:
        self._expect_started("publish")
        await self._publish(channel.encode(), data)

    async def _publish(self, channel: bytes, data: bytes) -> None:
        if not self._connected.is_set():
            raise BrokerUnavailable(f"not connected to Redis at {self._url}")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outbox.append((channel, data, future))
        self._outbox_ready.set()
        await future

    async def _flush(self) -> None:
        """Send queued publications, all of them per round trip, in order."""
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            while self._outbox:
                batch = [p for p in self._outbox[:_PIPELINE_MAX] if not p[2].done()]
                del self._outbox[:_PIPELINE_MAX]
                if not batch:
                    continue  # every publisher in it was cancelled
                self._in_flight = batch
                try:
                    await self._send(batch)
                except Exception as exc:  # whatever it is, the publishers must hear of it
                    if not isinstance(exc, RedisError | OSError):
                        logger.exception("publishing to Redis at %s failed", self._url)
                    for _, _, future in batch:
                        if not future.done():
                            error = BrokerUnavailable(
                                f"cannot publish to Redis at {self._url}: {exc}"
                            )
                            error.__cause__ = exc
                            future.set_exception(error)
                else:
                    for _, _, future in batch:
                        if not future.done():
                            future.set_result(None)
                finally:
                    self._in_flight = []

    async def _send(self, batch: list[_Publication]) -> None:
        if len(batch) == 1:
            channel, data, _ = batch[0]
            await self._redis.publish(channel, data)
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel, data, _ in batch:
                pipe.publish(channel, data)
            await pipe.execute()

    # Subscribing.

    async def subscribe(self, channel: str) -> None:
        await self.subscribe_many((channel,))

    async def subscribe_many(self, channels: Iterable[str]) -> None:
        self._expect_started("subscribe")
        names = {self._raw(name): name for name in channels}  # all checked before any change
        new: list[bytes] = []
        for raw, name in names.items():
            if raw not in self._channels:
                self._channels[raw] = name
                new.append(raw)
        session = self._session
        if session is None or session.dead:
            return  # disconnected: the next session subscribes everything recorded
        for chunk in _chunks(new, _SUBSCRIBE_CHUNK):
            session.send(b"SUBSCRIBE", *chunk)
        # A channel already recorded may still await its confirmation, so wait whenever
        # anything is outstanding; a barrier covers every SUBSCRIBE sent before it.
        if new or session.barriers:
            await session.barrier()

    async def unsubscribe(self, channel: str) -> None:
        await self.unsubscribe_many((channel,))

    async def unsubscribe_many(self, channels: Iterable[str]) -> None:
        self._expect_started("unsubscribe")
        gone = [raw for raw in map(self._raw, dict.fromkeys(channels)) if raw in self._channels]
        for raw in gone:
            # Delivery checks this map, so nothing more reaches the handler from here on,
            # even what Redis already sent before it processes the UNSUBSCRIBE.
            del self._channels[raw]
        session = self._session
        if session is not None:
            for chunk in _chunks(gone, _SUBSCRIBE_CHUNK):
                session.send(b"UNSUBSCRIBE", *chunk)

    async def check(self) -> None:
        self._expect_started("check")
        token = os.urandom(8).hex().encode()
        probe: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._probes[token] = probe
        try:
            async with asyncio.timeout(self._timeout):
                await self._publish(self._node_raw, token)
                await probe
        except TimeoutError as exc:
            raise BrokerUnavailable(
                f"a probe sent through Redis at {self._url} did not come back "
                f"within {self._timeout:g} s"
            ) from exc
        finally:
            self._probes.pop(token, None)

    def _raw(self, channel: str) -> bytes:
        raw = channel.encode()
        if raw == self._node_raw:
            raise ValueError(f"{channel} is reserved for this node's health probes")
        return raw

    def _expect_started(self, operation: str) -> None:
        self._state.expect(BrokerState.STARTED, operation)

    # The pub/sub connection.

    async def _supervise(self) -> None:
        """Run sessions one after another, forever; back off between failed ones."""
        failures = 0
        while True:
            # A connection of our own, outside the pool: same URL, options and class.
            pool = self._redis.connection_pool
            conn: AbstractConnection = pool.make_connection()  # type: ignore[no-untyped-call]
            session = _Session(conn)
            self._session = session
            # Queued now, sent right after the handshake: every recorded channel, and the
            # barrier whose answer means all of them are live.
            for chunk in _chunks([self._node_raw, *self._channels], _SUBSCRIBE_CHUNK):
                session.send(b"SUBSCRIBE", *chunk)
            session.barrier(ready=True)
            try:
                await conn.connect()  # type: ignore[no-untyped-call]
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._write(session))
                    group.create_task(self._read(session))
                    group.create_task(self._watch(session))
            except Exception as exc:  # any failure ends the session; the next one retries
                if session.ready:
                    logger.warning("lost the connection to Redis at %s (%s); reconnecting",
                                   self._url, _describe(exc))
                else:
                    logger.info("cannot connect to Redis at %s (%s); retrying",
                                self._url, _describe(exc))
            finally:
                self._connected.clear()
                self._session = None
                session.fail()
                with contextlib.suppress(Exception):
                    await conn.disconnect(nowait=True)
            failures = 0 if session.ready else failures + 1
            delay = min(_BACKOFF_MAX, _BACKOFF_MIN * 2 ** min(failures, 16))
            await asyncio.sleep(delay / 2 + random.uniform(0, delay / 2))

    async def _write(self, session: _Session) -> None:
        conn = session.conn
        loop = asyncio.get_running_loop()
        while True:
            await session.wakeup.wait()
            session.wakeup.clear()
            commands, session.outbox = session.outbox, []
            if commands:
                session.stamp(loop.time() + self._timeout)
                await conn.send_packed_command(conn.pack_commands(commands), check_health=False)

    async def _read(self, session: _Session) -> None:
        conn = session.conn
        while True:
            # No timeout per read: arming a timer for each message was a third of the
            # reader's cost. The watchdog below enforces deadlines instead. The
            # supervisor disconnects, once every task of the session has stopped.
            response = await conn.read_response(timeout=math.inf, disconnect_on_error=False)
            session.reads += 1
            self._dispatch(session, response)

    async def _watch(self, session: _Session) -> None:
        """Declare the session dead when a barrier is late; ping it when it is quiet."""
        loop = asyncio.get_running_loop()
        tick = min(self._timeout, self._keepalive) / 4
        reads, quiet_since = session.reads, loop.time()
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            deadline = session.next_deadline()
            if deadline is not None and deadline <= now:
                raise TimeoutError(f"Redis did not answer within {self._timeout:g} s")
            if session.reads != reads:
                reads, quiet_since = session.reads, now
            elif not session.barriers and now - quiet_since >= self._keepalive:
                session.barrier()  # quiet for a while: make sure the connection still works
                quiet_since = now

    def _dispatch(self, session: _Session, response: Any) -> None:
        kind = response[0]
        if kind == b"message":
            raw, data = response[1], response[2]
            name = self._channels.get(raw)
            if name is not None:
                self._deliver(name, data)
            elif raw == self._node_raw:
                probe = self._probes.get(data)
                if probe is not None and not probe.done():
                    probe.set_result(None)
        elif kind == b"pong":
            token = response[1]
            session.answered(token)
            if token == session.ready_token:
                self._resubscribed(session)
        # subscribe/unsubscribe confirmations need nothing: barriers stand for them.

    def _resubscribed(self, session: _Session) -> None:
        session.ready = True
        self._connected.set()
        if not self._ever_connected:
            self._ever_connected = True
            return
        logger.info("reconnected to Redis at %s; %d channels subscribed again",
                    self._url, len(self._channels))
        if self._handler is not None:
            try:
                self._handler.handle_resubscribed()
            except Exception:
                logger.exception("the broker event handler failed on resubscription")

    def _deliver(self, channel: str, data: bytes) -> None:
        if self._handler is None:
            return
        try:
            self._handler.handle_publication(channel, data)
        except Exception:
            logger.exception("the broker event handler failed on channel %s", channel)


if TYPE_CHECKING:
    # mypy proves RedisBroker satisfies Broker (Centrifuge's `var _ Broker = ...`).
    _: Broker = RedisBroker("redis://", node_id="typecheck")
