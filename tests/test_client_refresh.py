"""The Python client keeps its connection's token fresh by itself, against a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from server.client import Client, Event, PreauError
from tests.conftest import SCHOOL_DAY, LiveServer
from tests.wire import Wire

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("close_wires")]

TTL = timedelta(minutes=10)


class Provider:
    """A token provider (what an app's sign-in layer would be): counts its calls."""

    def __init__(self, live: LiveServer, user: str) -> None:
        self.live, self.user, self.calls = live, user, 0

    async def __call__(self) -> str:
        self.calls += 1
        return self.live.token(self.user, ttl=TTL)


async def next_event(events: AsyncIterator[Event], kind: str) -> Event:
    async def find() -> Event:
        async for event in events:
            if event.type == kind:
                return event
        raise AssertionError(f"the stream ended before {kind!r}")
    return await asyncio.wait_for(find(), 5)


async def test_the_client_refreshes_on_token_expiring(live_server: LiveServer):
    teacher, _ = await Wire.signed_in(live_server.ws_url,
                                      live_server.token("t1", ttl=timedelta(days=1)))
    provider = Provider(live_server, "e1")
    async with Client(live_server.url, provider) as client:
        started = await teacher.request({"type": "start", "subject": "S", "to": ["e1"],
                                         "body": "m1", "client_id": "c1"})
        d = started["discussion"]["id"]
        events = client.events()
        await next_event(events, "message")
        live_server.clock.set(SCHOOL_DAY + TTL - timedelta(seconds=30))
        await next_event(events, "token_expiring")
        async with asyncio.timeout(5):
            # Until the server's `refreshed` arrives (a reply, not an event).
            while client.token_expires_at != SCHOOL_DAY + TTL - timedelta(seconds=30) + TTL:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert provider.calls == 2
        live_server.clock.set(SCHOOL_DAY + TTL + timedelta(minutes=1))  # past the first
        await teacher.request({"type": "send", "discussion": d, "body": "m2",
                               "client_id": "c2"})
        second = await next_event(events, "message")
        assert second.data["seq"] == 2
        assert client.connected
        assert (await client.request("ping"))["type"] == "pong"
        assert provider.calls == 2  # no reconnection asked for another


async def test_an_expired_connection_reconnects_with_the_provider(live_server: LiveServer):
    provider = Provider(live_server, "e1")
    async with Client(live_server.url, provider) as client:
        events = client.events()
        live_server.clock.set(SCHOOL_DAY + TTL)  # expired before any warning was heard
        error = await next_event(events, "error")
        assert error.data["code"] == "token_expired"
        await next_event(events, "welcome")  # reopened at once, with a fresh token
        assert provider.calls == 2
        assert (await client.request("ping"))["type"] == "pong"


async def test_a_plain_token_that_expires_ends_the_client(live_server: LiveServer):
    async with Client(live_server.url, live_server.token("e1", ttl=TTL)) as client:
        live_server.clock.set(SCHOOL_DAY + TTL)
        with pytest.raises(PreauError) as caught:
            await next_event(client.events(), "never")
        assert (caught.value.code, caught.value.close_code) == ("token_expired", 4401)


async def test_a_plain_token_is_refreshed_by_hand(live_server: LiveServer):
    async with Client(live_server.url, live_server.token("e1", ttl=TTL)) as client:
        later = await client.refresh(live_server.token("e1", ttl=2 * TTL))
        assert later == SCHOOL_DAY + 2 * TTL
        with pytest.raises(PreauError) as caught:
            await client.refresh(live_server.token("e2"))
        assert caught.value.code == "unauthenticated"
