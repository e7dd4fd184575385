"""The ``post`` status over a real WebSocket: a participant is told before typing whether
a post would be accepted, it follows joins, leaves and the hours, and typing is not
relayed when what is typed could not be posted (docs/protocol.md, "May I post here?")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.wire import Wire

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("close_wires"),
              pytest.mark.databases("sqlite", "postgresql")]

CLOSED = datetime(2026, 11, 24, 21, 30, tzinfo=UTC)  # 22:30 in Paris
OPENS = "2026-11-25T06:00:00Z"


async def newest(wire: Wire, d: int) -> dict[str, Any]:
    page = await wire.request({"type": "history", "discussion": d})
    assert page["type"] == "history"
    return page


async def listed(wire: Wire, d: int) -> dict[str, Any]:
    page = await wire.request({"type": "list"})
    return next(item for item in page["items"] if item["id"] == d)


async def no_typing_reaches(watcher: Wire, typist: Wire, d: int) -> None:
    """``typist`` types then leaves: ``watcher`` hears the leave, and no typing before it
    (both travel the discussion's channel in order)."""
    start = len(watcher.frames)
    await typist.send({"type": "typing", "discussion": d})
    assert (await typist.request({"type": "leave", "discussion": d}))["type"] == "ok"
    await watcher.expect("left", discussion=d)
    seen = [f for f in watcher.frames[start:] if f.get("type") == "typing"]
    assert seen == []


async def test_supervisor_leaving_is_told_before_typing(live_server: LiveServer) -> None:
    staff, _ = await Wire.signed_in(live_server.ws_url, live_server.token("a1"))
    teacher, _ = await Wire.signed_in(live_server.ws_url, live_server.token("t1"))
    pupil, _ = await Wire.signed_in(live_server.ws_url, live_server.token("e1"))
    # Léa (2A) and Inès (2B) may talk only because the staff member brought them in.
    started = await staff.request({"type": "start", "subject": "Projet", "to": ["t1", "e1", "e3"],
                                   "body": "Bonjour", "client_id": "a"})
    d = started["discussion"]["id"]
    assert started["discussion"]["post"]["allowed"] is True
    await pupil.expect("discussion")
    await teacher.expect("discussion")
    page = await newest(pupil, d)
    assert page["post"]["allowed"] is True
    # The other side of the window, so that a client needs nothing more at 20:00.
    assert page["post"]["when_closed"]["code"] == "outside_hours"
    await pupil.send({"type": "typing", "discussion": d})  # may post: the teacher sees it
    assert (await teacher.expect("typing", discussion=d))["user"] == "e1"

    assert (await staff.request({"type": "leave", "discussion": d}))["type"] == "ok"
    update = await pupil.expect("post", discussion=d)
    status = update["post"]
    assert status["allowed"] is False
    assert status["code"] == "not_invited_by_supervisor"
    assert status["message"] == ("Le membre du personnel qui vous a invité (Jean Durand) a "
                                 "quitté la discussion : vous ne pouvez plus écrire ici.")
    assert status["params"]["supervisor_left"] == {"id": "a1", "name": "Jean Durand",
                                                   "role": "staff"}
    assert [u["id"] for u in status["params"]["users"]] == ["e3"]
    # The same answer in the list and on opening it, and a send is refused alike.
    assert (await listed(pupil, d))["post"]["code"] == "not_invited_by_supervisor"
    assert (await newest(pupil, d))["post"] == status
    refused = await pupil.request({"type": "send", "discussion": d, "body": "?",
                                   "client_id": "1"})
    assert (refused["code"], refused["params"]) == (status["code"], status["params"])
    # The teacher does not teach Inès's class: she is silenced too, and told so.
    mine = (await teacher.expect("post", discussion=d))["post"]
    assert mine["code"] == "not_invited_by_supervisor"
    assert [u["id"] for u in mine["params"]["users"]] == ["e3"]
    # Léa may talk with her teacher, but whatever she types could not be posted here:
    # her typing reaches nobody.
    await no_typing_reaches(teacher, pupil, d)


async def test_outside_hours_is_told_and_typing_stays_home(live_server: LiveServer) -> None:
    day = timedelta(days=1)
    teacher, _ = await Wire.signed_in(live_server.ws_url, live_server.token("t1", ttl=day))
    pupil, _ = await Wire.signed_in(live_server.ws_url, live_server.token("e1", ttl=day))
    started = await teacher.request({"type": "start", "subject": "Devoirs", "to": ["e1"],
                                     "body": "Pour demain", "client_id": "a"})
    d = started["discussion"]["id"]
    await pupil.expect("discussion")
    live_server.clock.set(CLOSED)
    await pupil.expect("window", open=False)
    await teacher.expect("window", open=False)
    status = (await newest(pupil, d))["post"]
    assert status["allowed"] is False
    assert status["code"] == "outside_hours"
    assert status["params"] == {"rule": "G3", "opens_at": OPENS, "retry_at": OPENS,
                                "start": "07:00", "end": "20:00",
                                "timezone": "Europe/Paris"}
    assert "rouvrent le mer. 25 nov. à 07:00" in status["message"]
    assert status["when_open"] == {"allowed": True}
    assert (await listed(pupil, d))["post"]["code"] == "outside_hours"
    await no_typing_reaches(teacher, pupil, d)
