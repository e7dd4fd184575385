"""Held items and the window over real sockets, with the server's injected clock.

Defer mode holds what is written outside the hours; whatever opens the window (the
clock reaching the opening, or the admin widening the hours) releases it, once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import LiveServer
from tests.test_broadcasts import admin_patch
from tests.wire import Wire

pytestmark = pytest.mark.anyio

EVENING = datetime(2026, 11, 24, 21, 30, tzinfo=UTC)  # 22:30 in Paris: closed
DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
async def _close_wires() -> AsyncIterator[None]:
    yield
    await Wire.close_all()


async def test_no_window_notice_for_a_change_made_before_connecting(live_server: LiveServer):
    """A settings change while nobody of the school is connected tells nobody anything,
    and the first to connect afterwards hears only of what changes after their welcome."""
    live_server.clock.set(EVENING)
    await admin_patch(live_server, "/api/settings", {"hours": {"outside": "defer"}})
    live_server.clock.set(datetime(2026, 11, 25, 6, 30, tzinfo=UTC))  # 07:30: open
    e1, welcome = await Wire.signed_in(live_server.ws_url, live_server.token("e1", ttl=DAY))
    assert welcome["window"]["open"] is True
    await asyncio.sleep(0.3)  # several ticks (50 ms each) while open: none may say "opened"
    live_server.clock.set(datetime(2026, 11, 25, 19, 0, tzinfo=UTC))  # 20:00: closes
    closed = await e1.expect("window")
    # The first window event is the closing: nothing about the opening that came before.
    assert closed["open"] is False
