"""Held items and the window over real sockets, with the server's injected clock.

Defer mode holds what is written outside the hours; whatever opens the window (the
clock reaching the opening, or the admin widening the hours) releases it, once.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import LiveServer
from tests.test_broadcasts import admin_patch, client, created, information
from tests.wire import Wire

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("close_wires"),
              pytest.mark.databases("sqlite", "postgresql")]

EVENING = datetime(2026, 11, 24, 21, 30, tzinfo=UTC)  # 22:30 in Paris: closed
DAY = timedelta(days=1)



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


async def test_widening_the_hours_releases_what_was_held_at_once(live_server: LiveServer):
    """Defer mode: held at 22:30 for 07:00, then the admin moves the end to 23:00: the
    window is open now, so the held message, start and broadcast go out now (each once),
    while a broadcast its author scheduled for tomorrow keeps its time."""
    url = live_server.ws_url
    teacher, _ = await Wire.signed_in(url, live_server.token("t1", ttl=DAY))
    e1, _ = await Wire.signed_in(url, live_server.token("e1", ttl=DAY))
    started = await teacher.request({"type": "start", "subject": "Devoirs", "to": ["e1"],
                                     "body": "m1", "client_id": "s1"})
    d = started["discussion"]["id"]
    await e1.expect("message", discussion=d, seq=1)
    await admin_patch(live_server, "/api/settings", {"hours": {"outside": "defer"}})
    live_server.clock.set(EVENING)
    await e1.expect("window", open=False)
    held = await teacher.request({"type": "send", "discussion": d, "body": "ce soir",
                                  "client_id": "h1"})
    assert (held["type"], held["held_until"]) == ("held", "2026-11-25T06:00:00Z")
    new = await teacher.request({"type": "start", "subject": "Soir", "to": ["e1"],
                                 "body": "nouvelle", "client_id": "h2"})
    assert new["type"] == "held"
    to = {"roles": ["student"], "classes": ["2A"]}
    tomorrow = "2026-11-25T09:00:00Z"
    async with client(live_server, "t1") as c:
        waiting = created(await c.post("/api/broadcasts", json=information(to, "b1")))
        assert (waiting["status"], waiting["publish_at"]) == ("scheduled",
                                                               "2026-11-25T06:00:00Z")
        chosen = created(await c.post("/api/broadcasts",
                                      json=information(to, "b2", publish_at=tomorrow)))
        assert chosen["status"] == "scheduled"
        await asyncio.sleep(0.3)  # several ticks (50 ms each): still closed, nothing goes out
        assert e1.messages(d) == [1]

        await admin_patch(live_server, "/api/settings", {"hours": {"end": "23:00"}})
        await e1.expect("window", open=True)
        got = await e1.expect("message", discussion=d, seq=2)
        assert (got["body"], got["client_id"], got["at"]) == ("ce soir", "h1",
                                                               "2026-11-24T21:30:00Z")
        announced = await e1.expect("discussion")
        assert announced["discussion"]["subject"] == "Soir"
        published = await e1.expect("broadcast")
        assert published["broadcast"]["id"] == waiting["id"]
        await teacher.expect("message", discussion=d, seq=2)
        view = (await c.get(f"/api/broadcasts/{waiting['id']}")).json()["broadcast"]
        assert view["status"] == "published"
        later = (await c.get(f"/api/broadcasts/{chosen['id']}")).json()["broadcast"]
        assert (later["status"], later["publish_at"]) == ("scheduled", tomorrow)
    # Released once: no second copy of anything.
    await e1.request({"type": "ping"})
    assert e1.messages(d) == [1, 2]
    assert [f["discussion"]["subject"] for f in e1.frames if f["type"] == "discussion"] == [
        "Devoirs", "Soir"]
    assert [f["broadcast"]["id"] for f in e1.frames if f["type"] == "broadcast"] == [
        waiting["id"]]
