"""The Broker contract, run against MemoryBroker and RedisBroker; then Redis-only behaviour.

``TestContract`` runs once per implementation (the ``make_node`` fixture is
parametrised). What only several processes or a real server can show (two nodes
sharing one Redis, round trips, outages and recovery) is in the Redis classes,
against a private ``redis-server`` over a real socket. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import logging
import time

import anyio
import pytest
from redis.asyncio import Redis

from server.broker import BrokerState, BrokerUnavailable, MemoryBroker, RedisBroker
from tests.conftest import free_port
from tests.contracts.conftest import MakeNode, Node, RecordingHandler, eventually
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio


def _state(node: Node) -> BrokerState:
    return node.broker.state  # a call, so mypy does not carry narrowing across awaits


async def _marker(node: Node, channel: str) -> None:
    """Publish a marker on ``channel`` (subscribed) and wait for it: what came before is in."""
    marker = b"marker-%d" % time.monotonic_ns()
    await node.broker.publish(channel, marker)
    await node.handler.wait_for(lambda: marker in node.handler.on(channel))


class TestContract:
    """What every Broker promises (base.py); each test runs for memory and Redis."""

    async def test_publication_reaches_the_subscriber_byte_for_byte(self, node: Node):
        payloads = [b"", b"hello", b"\x00\xff\r\n\x80", "été".encode(), bytes(range(256)) * 4096]
        await node.broker.subscribe("preau:{hugo}:d:1")
        for payload in payloads:
            await node.broker.publish("preau:{hugo}:d:1", payload)
        await node.handler.wait_for(lambda: len(node.handler.publications) == len(payloads))
        assert node.handler.publications == [("preau:{hugo}:d:1", p) for p in payloads]
        assert all(type(data) is bytes for _, data in node.handler.publications)

    async def test_a_thousand_publications_arrive_in_order(self, node: Node):
        await node.broker.subscribe("d")
        for i in range(1000):
            await node.broker.publish("d", b"%d" % i)
        await node.handler.wait_for(lambda: len(node.handler.on("d")) == 1000)
        assert node.handler.on("d") == [b"%d" % i for i in range(1000)]

    async def test_concurrent_publications_arrive_in_call_order(self, node: Node):
        await node.broker.subscribe("d")
        await asyncio.gather(*(node.broker.publish("d", b"%d" % i) for i in range(1000)))
        await node.handler.wait_for(lambda: len(node.handler.on("d")) == 1000)
        assert node.handler.on("d") == [b"%d" % i for i in range(1000)]

    async def test_nothing_arrives_on_a_channel_not_subscribed(self, node: Node):
        await node.broker.subscribe("mine")
        await node.broker.publish("other", b"not for us")
        await _marker(node, "mine")
        assert node.handler.on("other") == []

    async def test_subscribe_is_idempotent(self, node: Node):
        await node.broker.subscribe("d")
        await node.broker.subscribe("d")
        await node.broker.subscribe_many(["d", "d"])
        await node.broker.publish("d", b"once")
        await _marker(node, "d")
        assert node.handler.on("d")[0] == b"once"
        assert node.handler.on("d").count(b"once") == 1

    async def test_unsubscribe_stops_delivery(self, node: Node):
        await node.broker.subscribe_many(["d", "other"])
        await node.broker.publish("d", b"before")
        await node.handler.wait_for(lambda: node.handler.on("d") == [b"before"])
        await node.broker.unsubscribe("d")
        await node.broker.publish("d", b"after")
        await _marker(node, "other")
        assert node.handler.on("d") == [b"before"]

    async def test_nothing_is_delivered_once_unsubscribe_returned(self, node: Node):
        # Publications already on their way when unsubscribe is called are dropped too.
        await node.broker.subscribe_many(["d", "other"])
        # A burst large enough that Redis is still sending it when gather() returns...
        await asyncio.gather(*(node.broker.publish("d", b"x" * 1024) for _ in range(1000)))
        # ...and, for MemoryBroker, deliveries still scheduled (publish does not yield).
        for _ in range(10):
            await node.broker.publish("d", b"y")
        await node.broker.unsubscribe("d")
        count = len(node.handler.on("d"))
        await _marker(node, "other")
        assert len(node.handler.on("d")) == count

    async def test_unsubscribe_is_idempotent_and_resubscribing_works(self, node: Node):
        await node.broker.unsubscribe("never-subscribed")
        await node.broker.subscribe("d")
        await node.broker.unsubscribe("d")
        await node.broker.unsubscribe("d")
        await node.broker.subscribe("d")
        await node.broker.publish("d", b"back")
        await node.handler.wait_for(lambda: node.handler.on("d") == [b"back"])

    async def test_many_channels_at_once(self, node: Node):
        channels = [f"preau:{{hugo}}:d:{i}" for i in range(2500)]
        await node.broker.subscribe_many(channels)
        for channel in channels[::250]:
            await node.broker.publish(channel, channel.encode())
        await node.handler.wait_for(lambda: len(node.handler.publications) == 10)
        assert node.handler.publications == [(c, c.encode()) for c in channels[::250]]
        await node.broker.unsubscribe_many(channels[1:])
        await node.broker.publish(channels[250], b"gone")
        await _marker(node, channels[0])
        assert node.handler.on(channels[250]) == [channels[250].encode()]

    async def test_check_succeeds(self, node: Node):
        await node.broker.check()
        assert node.broker.connected

    async def test_a_failing_handler_does_not_stop_delivery(
        self, node: Node, caplog: pytest.LogCaptureFixture
    ):
        original = node.handler.handle_publication

        def flaky(channel: str, data: bytes) -> None:
            original(channel, data)
            if data == b"boom":
                raise ValueError("handler bug")

        node.handler.handle_publication = flaky  # type: ignore[method-assign]
        await node.broker.subscribe("d")
        with caplog.at_level(logging.ERROR, logger="server.broker"):
            await node.broker.publish("d", b"boom")
            await node.broker.publish("d", b"next")
            await node.handler.wait_for(lambda: node.handler.on("d") == [b"boom", b"next"])
        assert "handler failed" in caplog.text

    async def test_lifecycle(self, make_node: MakeNode):
        node = await make_node("n1")
        assert _state(node) is BrokerState.STARTED
        assert node.broker.connected
        with pytest.raises(RuntimeError, match="expects a new broker"):
            node.broker.register(RecordingHandler())
        with pytest.raises(RuntimeError, match="expects a new broker"):
            await node.broker.start()
        await node.broker.close()
        await node.broker.close()  # idempotent
        assert _state(node) is BrokerState.CLOSED
        assert not node.broker.connected
        with pytest.raises(RuntimeError, match="expects a started broker, got a closed one"):
            await node.broker.publish("d", b"x")
        with pytest.raises(RuntimeError, match="expects a started broker"):
            await node.broker.subscribe("d")
        with pytest.raises(RuntimeError, match="expects a started broker"):
            await node.broker.check()


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_misuse_before_start_fails_loudly(kind: str):
    # The URL is never contacted: every call fails before any I/O.
    broker = MemoryBroker() if kind == "memory" else RedisBroker("redis://127.0.0.1:1/0",
                                                                  node_id="n1")
    try:
        with pytest.raises(RuntimeError, match="expects a started broker, got a new one"):
            await broker.publish("d", b"x")
        with pytest.raises(RuntimeError, match="register a BrokerEventHandler"):
            await broker.start()
    finally:
        await broker.close()


async def test_memory_brokers_are_one_process_only():
    """Documented limit: two MemoryBrokers never see each other (the two-node test is Redis's)."""
    a, b = MemoryBroker(), MemoryBroker()
    ha, hb = RecordingHandler(), RecordingHandler()
    a.register(ha)
    b.register(hb)
    await a.start()
    await b.start()
    await a.subscribe("d")
    await b.subscribe("d")
    await a.publish("d", b"x")
    await ha.wait_for(lambda: ha.on("d") == [b"x"])
    await asyncio.sleep(0)
    assert hb.publications == []
    await a.close()
    await b.close()


async def test_memory_delivery_comes_after_publish_returns():
    """MemoryBroker delivers with call_soon, like a network would: never inside publish()."""
    broker, handler = MemoryBroker(), RecordingHandler()
    broker.register(handler)
    await broker.start()
    await broker.subscribe("d")
    await broker.publish("d", b"x")
    assert handler.publications == []
    await handler.wait_for(lambda: handler.on("d") == [b"x"])
    await broker.close()


async def _numsub(server: RedisServer, channel: str) -> int:
    async with Redis.from_url(server.url) as admin:
        [(_, count)] = await admin.pubsub_numsub(channel)
        return int(count)


class TestRedisNodes:
    """Several nodes sharing one Redis, and what Redis sees of them."""

    async def test_two_nodes_both_receive(self, make_redis_node: MakeNode):
        one, two = await make_redis_node("n1"), await make_redis_node("n2")
        await one.broker.subscribe("preau:{hugo}:d:7")
        await two.broker.subscribe("preau:{hugo}:d:7")
        await one.broker.publish("preau:{hugo}:d:7", b"from one")
        await two.broker.publish("preau:{hugo}:d:7", b"from two")
        await one.handler.wait_for(lambda: len(one.handler.publications) == 2)
        await two.handler.wait_for(lambda: len(two.handler.publications) == 2)
        assert one.handler.on("preau:{hugo}:d:7") == [b"from one", b"from two"]
        assert two.handler.on("preau:{hugo}:d:7") == [b"from one", b"from two"]

    async def test_one_redis_subscription_per_channel_per_node(
        self, make_redis_node: MakeNode, redis_server: RedisServer
    ):
        one, two = await make_redis_node("n1"), await make_redis_node("n2")
        for _ in range(3):
            await one.broker.subscribe("d")
        await two.broker.subscribe("d")
        assert await _numsub(redis_server, "d") == 2
        await one.broker.unsubscribe("d")
        # unsubscribe() does not wait for Redis, but a later subscribe() waits for a
        # round trip behind it on the same connection.
        await one.broker.subscribe("e")
        assert await _numsub(redis_server, "d") == 1

    async def test_subscribe_returns_once_the_subscription_is_live(
        self, make_redis_node: MakeNode, redis_server: RedisServer
    ):
        node = await make_redis_node("n1")
        await node.broker.subscribe("d")
        # Straight after subscribe(), Redis already counts it: a publication from any
        # process now reaches the node.
        assert await _numsub(redis_server, "d") == 1

    async def test_subscribe_many_is_a_few_commands_not_one_per_channel(
        self, make_redis_node: MakeNode, redis_server: RedisServer
    ):
        node = await make_redis_node("n1")
        async with Redis.from_url(redis_server.url) as admin:
            await admin.config_resetstat()
            await node.broker.subscribe_many([f"d{i}" for i in range(2500)])
            stats = await admin.info("commandstats")
        assert stats["cmdstat_subscribe"]["calls"] == 3  # 1,000 channels per command
        assert await _numsub(redis_server, "d2499") == 1

    async def test_start_against_a_closed_port_names_the_url(self):
        port = free_port()
        broker = RedisBroker(f"redis://:s3cret@127.0.0.1:{port}/0", node_id="n1", timeout=1.0)
        broker.register(RecordingHandler())
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable) as caught:
            await broker.start()
        assert time.monotonic() - started < 2
        assert f"redis://:***@127.0.0.1:{port}/0" in str(caught.value)
        assert "s3cret" not in str(caught.value)
        assert broker.state is BrokerState.CLOSED

    async def test_publications_already_sent_are_dropped_after_unsubscribe(
        self, make_redis_node: MakeNode, redis_server: RedisServer
    ):
        node = await make_redis_node("n1")
        await node.broker.subscribe_many(["d", "other"])
        async with Redis.from_url(redis_server.url) as admin:
            async with admin.pipeline(transaction=False) as pipe:
                for _ in range(1000):
                    pipe.publish("d", b"x" * 4096)
                await pipe.execute()
            # Let the whole burst reach this node's socket, unread: blocking is the point.
            time.sleep(0.1)  # noqa: ASYNC251
            await node.broker.unsubscribe("d")
            count = len(node.handler.on("d"))
            assert count < 1000  # or this test shows nothing
            await _marker(node, "other")
        assert len(node.handler.on("d")) == count

    async def test_an_invalid_url_is_a_configuration_error(self):
        from server.errors import ConfigurationError

        with pytest.raises(ConfigurationError, match="invalid Redis URL"):
            RedisBroker("http://127.0.0.1/", node_id="n1")

    async def test_the_node_channel_is_reserved(self, make_redis_node: MakeNode):
        node = await make_redis_node("n1")
        with pytest.raises(ValueError, match="reserved"):
            await node.broker.subscribe("preau:node:n1")


class TestRedisOutage:
    """Redis goes away and comes back: the broker notices, fails fast, and recovers."""

    async def test_stop_then_restart(self, make_redis_node: MakeNode, redis_server: RedisServer):
        node, other = await make_redis_node("n1"), await make_redis_node("n2")
        await node.broker.subscribe("d")
        await other.broker.publish("d", b"before")
        await node.handler.wait_for(lambda: node.handler.on("d") == [b"before"])

        await anyio.to_thread.run_sync(redis_server.stop)
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match=r"redis://127\.0\.0\.1"):
            await node.broker.publish("d", b"lost")
        assert time.monotonic() - started < 2
        await eventually(lambda: not node.broker.connected, 2, "connected going False")
        with pytest.raises(BrokerUnavailable):
            await node.broker.check()

        # While disconnected, subscriptions are recorded without waiting for Redis.
        with anyio.fail_after(1):
            await node.broker.subscribe("later")
            await node.broker.subscribe_many(["gone"])
            await node.broker.unsubscribe("gone")

        await anyio.to_thread.run_sync(redis_server.start)
        await eventually(lambda: node.handler.resubscribed == 1, 10, "handle_resubscribed")
        assert node.broker.connected
        await eventually(lambda: other.broker.connected, 10, "the second node reconnecting")
        await other.broker.publish("d", b"after")
        await other.broker.publish("later", b"new")
        await other.broker.publish("gone", b"not for us")
        await node.handler.wait_for(lambda: node.handler.on("later") == [b"new"])
        assert node.handler.on("d") == [b"before", b"after"]
        assert node.handler.on("gone") == []
        assert await _numsub(redis_server, "gone") == 0
        await node.broker.check()

    async def test_connection_killed_by_redis_is_resubscribed(
        self, make_redis_node: MakeNode, redis_server: RedisServer
    ):
        node = await make_redis_node("n1")
        await node.broker.subscribe("d")
        async with Redis.from_url(redis_server.url) as admin:
            await admin.client_kill_filter(_type="pubsub")
            await eventually(lambda: node.handler.resubscribed == 1, 10, "handle_resubscribed")
            await admin.publish("d", b"again")
        await node.handler.wait_for(lambda: node.handler.on("d") == [b"again"])

    async def test_a_silent_connection_is_detected(self, redis_server: RedisServer):
        # CLIENT PAUSE keeps sockets open but answers nothing: only the keep-alive PING
        # and its deadline can tell.
        broker = RedisBroker(redis_server.url, node_id="n1", timeout=0.5, keepalive=0.2)
        handler = RecordingHandler()
        broker.register(handler)
        await broker.start()
        try:
            await broker.subscribe("d")
            async with Redis.from_url(redis_server.url) as admin:
                await admin.client_pause(1500)  # all commands, PING included
                await eventually(lambda: not broker.connected, 3, "the silence being noticed")
                await eventually(lambda: handler.resubscribed == 1, 10, "handle_resubscribed")
                await admin.publish("d", b"awake")
            await handler.wait_for(lambda: handler.on("d") == [b"awake"])
        finally:
            await broker.close()

    async def test_close_during_an_outage_is_prompt(
        self, make_redis_node: MakeNode, redis_server: RedisServer
    ):
        node = await make_redis_node("n1")
        await node.broker.subscribe("d")
        await anyio.to_thread.run_sync(redis_server.stop)
        await eventually(lambda: not node.broker.connected, 2, "connected going False")
        started = time.monotonic()
        await node.broker.close()
        assert time.monotonic() - started < 0.5
        assert node.broker.state is BrokerState.CLOSED

    async def test_publications_in_flight_at_close_fail_cleanly(self, make_redis_node: MakeNode):
        node = await make_redis_node("n1")
        pending = [asyncio.ensure_future(node.broker.publish("d", b"x")) for _ in range(100)]
        await asyncio.sleep(0)
        await node.broker.close()
        results = await asyncio.gather(*pending, return_exceptions=True)
        assert all(r is None or isinstance(r, BrokerUnavailable) for r in results)
