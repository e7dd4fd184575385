"""Refusals reveal nothing (SPEC "Clarifications"): over real WebSockets, a user gets the
same answer for "exists but not for you" as for "does not exist".

The cast is ``tests/schools.py`` (school ``hugo``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.wire import Wire

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("close_wires"),
              pytest.mark.databases("sqlite", "postgresql")]



async def _answer(wire: Wire, frame: dict[str, Any]) -> tuple[str, str]:
    """The reply's type and code (``ok`` has no code)."""
    reply = await wire.request(frame)
    return str(reply["type"]), str(reply.get("code", ""))


class TestDiscussionIds:
    async def _a_discussion_of_others(self, live_server: LiveServer) -> int:
        t1, _ = await Wire.signed_in(live_server.ws_url, live_server.token("t1"))
        started = await t1.request({"type": "start", "subject": "Devoirs", "to": ["e1"],
                                    "body": "b", "client_id": "c-1"})
        await t1.close()
        return int(started["discussion"]["id"])

    async def test_outside_hours_an_id_that_exists_answers_like_one_that_does_not(
            self, live_server: LiveServer):
        d = await self._a_discussion_of_others(live_server)
        live_server.clock.advance(timedelta(hours=11))  # 21:00 in Paris: closed
        e2, _ = await Wire.signed_in(live_server.ws_url, live_server.token("e2"))
        t2, _ = await Wire.signed_in(live_server.ws_url, live_server.token("t2"))
        for wire, frame in (
            (e2, {"type": "send", "body": "x", "client_id": "k"}),
            (e2, {"type": "typing"}),
            (e2, {"type": "history"}),
            (e2, {"type": "read", "seq": 1}),
            (e2, {"type": "leave"}),
            (t2, {"type": "invite", "user": "e3"}),
        ):
            existing = await _answer(wire, {**frame, "discussion": d})
            missing = await _answer(wire, {**frame, "discussion": 999_999})
            assert existing == missing, frame["type"]

    async def test_during_hours_too(self, live_server: LiveServer):
        d = await self._a_discussion_of_others(live_server)
        e2, _ = await Wire.signed_in(live_server.ws_url, live_server.token("e2"))
        existing = await _answer(e2, {"type": "send", "discussion": d, "body": "x",
                                      "client_id": "k"})
        missing = await _answer(e2, {"type": "send", "discussion": 999_999, "body": "x",
                                     "client_id": "k"})
        assert existing == missing == ("error", "not_participant")
