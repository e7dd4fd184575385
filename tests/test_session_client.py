"""The Python client on a sign-in session (server/session_client.py): short real-time
access tokens, refreshed on the live connection without reconnecting; logout ends it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from server.client import Client, PreauError
from server.clock import ManualClock
from server.config import Config
from server.limits import Limits
from server.session_client import SessionTokens
from tests.conftest import SCHOOL_DAY, SECRET, serve

pytestmark = [pytest.mark.anyio]

TTL = 6  # seconds, on the real clock: the server warns after 4/5 of it


class RealClock(ManualClock):
    """The real time (these tests wait for real tokens to age)."""

    def __call__(self) -> datetime:
        return datetime.now(UTC)


@pytest.fixture
def url(schools_url: str, limits: Limits) -> Iterator[str]:
    # The real time: outside the school's hours the connection is read-only, which is
    # all these tests need (pings, refreshes).
    config = Config(database_url=schools_url, jwt_secret=SECRET, demo=True, token_ttl=TTL)
    with serve(config, RealClock(SCHOOL_DAY), limits) as base:
        yield base


async def test_the_client_outlives_its_access_tokens_on_one_connection(url: str):
    tokens = await SessionTokens.demo(url, "t1", school="hugo")
    first_access = tokens.access_token
    async with Client(url, tokens) as client:
        welcome = client.welcome
        await asyncio.sleep(TTL * 2)  # two tokens' lives: refreshed twice, at least
        assert (await client.request("ping"))["type"] == "pong"
        assert client.welcome is welcome, "the client reconnected"
    assert tokens.refreshes >= 2
    assert tokens.access_token != first_access


async def test_logout_ends_the_session(url: str):
    tokens = await SessionTokens.demo(url, "t1", school="hugo")
    await tokens.logout()
    with pytest.raises(PreauError) as refused:
        await tokens.refresh()
    assert refused.value.code == "unauthenticated"
    async with httpx.AsyncClient(base_url=url) as http:
        me = await http.get("/api/me", headers={"Authorization": f"Bearer {tokens.access_token}"})
    assert me.status_code == 401
