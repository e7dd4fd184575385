"""One pupil's account floods the node while a teacher and the principal keep working.

Bounded: 11 connections, 150 frames from each, 20 honest round trips per honest user.
Asserts behaviour only (the latencies are measured by ``bench/flood.py``, which runs
the same scenario): every honest request is answered and never refused, every honest
reconnect is welcomed, and the flooder meets the rate limit and the connection cap.
"""

from __future__ import annotations

import asyncio

import pytest

from bench.flood import Client, flood, honest
from server.limits import Limits
from tests.conftest import LiveServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def limits() -> Limits:
    return Limits(tick_seconds=0.05, hello_timeout=1.0)  # the default rates and caps


async def test_a_flooding_pupil_locks_nobody_out(live_server: LiveServer):
    url = live_server.ws_url
    cap = Limits().connections_per_user

    def token(user: str) -> str:
        return live_server.token(user)

    teacher, _ = await Client.hello(url, token("t1"))
    assert teacher is not None
    d = (await teacher.request({"type": "start", "subject": "Conseil", "to": ["a1"],
                                "body": "ordre du jour", "client_id": "c"}))["discussion"]["id"]
    await teacher.close()
    flooding = asyncio.create_task(flood(url, token, "e1", ["a1", "s1"], frames=150,
                                         connections=cap))
    reports = await asyncio.gather(*(honest(url, token, user, d, iterations=20, pause=0.25)
                                     for user in ("t1", "a1")))
    flooded = await flooding
    for report in reports:
        assert report.errors == [], report.user
        assert len(report.ack_ms) == 20
        assert report.lists == 20
        assert report.welcomes == report.reconnects + 1
    # The flooder alone was refused: beyond the cap, and beyond the rate.
    assert flooded.connections == cap
    refusals = {(f["code"], f["close"]) for f in flooded.refused}
    assert refusals == {("rate_limited", 4429)}
    assert flooded.codes["rate_limited"] > 0
    assert set(flooded.codes) <= {"rate_limited", "started", "ack", "ok", "discussions",
                                  "history", "pong"}
