"""One user cannot lock others out: limits per user, not per connection.

- the request rate is one allowance per user on the node, shared by all of that
  user's connections, and every frame (read, list, history, ping…) costs something;
- a user has at most ``connections_per_user`` connections on a node;
- discussion starts are limited per hour and per day (school settings);
- a welcome always fits, however many discussions the user was added to;
- ``list`` is paged, so a flood of new discussions pushes nothing out of reach.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from server.node import Limits
from tests.conftest import LiveServer
from tests.wire import Wire

pytestmark = pytest.mark.anyio

# A trickle: 1 request every 100 s once the burst of 10 is spent, so that what a test
# sees in a few seconds is the burst alone, whatever the machine's speed.
TRICKLE = Limits(tick_seconds=0.05, hello_timeout=1.0, rate_per_second=0.01, rate_burst=10,
                 connections_per_user=4)


@pytest.fixture(autouse=True)
async def _close_wires() -> AsyncIterator[None]:
    yield
    await Wire.close_all()


async def _answers(wire: Wire, refs: set[str]) -> list[dict[str, Any]]:
    """The replies carrying ``refs`` (each request is answered exactly once)."""
    out: list[dict[str, Any]] = []
    while len(out) < len(refs):
        frame = await wire.recv()
        if frame.get("ref") in refs:
            out.append(frame)
    return out


@pytest.mark.parametrize("limits", [TRICKLE])
async def test_the_rate_is_per_user_across_connections(live_server: LiveServer):
    url = live_server.ws_url
    teacher, _ = await Wire.signed_in(url, live_server.token("t1"))
    d = (await teacher.request({"type": "start", "subject": "x", "to": ["e1"], "body": "b",
                                "client_id": "a"}))["discussion"]["id"]
    await teacher.close()
    # Four connections of the same pupil, each sending eight messages at once.
    wires = [(await Wire.signed_in(url, live_server.token("e1")))[0] for _ in range(4)]
    for n, wire in enumerate(wires):
        for i in range(8):
            await wire.send({"type": "send", "discussion": d, "body": "x",
                             "client_id": f"{n}-{i}", "ref": f"{n}-{i}"})
    replies = [r for n, w in enumerate(wires)
               for r in await _answers(w, {f"{n}-{i}" for i in range(8)})]
    acked = [r for r in replies if r["type"] == "ack"]
    limited = [r for r in replies if r.get("code") == "rate_limited"]
    # One allowance of 10 for the user, not 10 per connection (32 sends would all pass).
    assert len(acked) <= 10
    assert len(acked) + len(limited) == 32
    assert all("retry_at" in r for r in limited)


@pytest.mark.parametrize("limits", [TRICKLE])
async def test_reads_lists_histories_and_pings_cost_something(live_server: LiveServer):
    url = live_server.ws_url
    teacher, _ = await Wire.signed_in(url, live_server.token("t1"))
    d = (await teacher.request({"type": "start", "subject": "x", "to": ["e1"], "body": "b",
                                "client_id": "a"}))["discussion"]["id"]
    e1, _ = await Wire.signed_in(url, live_server.token("e1"))
    frames = [{"type": "read", "discussion": d, "seq": 1}, {"type": "list"},
              {"type": "history", "discussion": d}, {"type": "ping"}]
    refs = set()
    for i in range(200):
        ref = f"f{i}"
        refs.add(ref)
        await e1.send({**frames[i % len(frames)], "ref": ref})
    replies = await _answers(e1, refs)
    served = [r for r in replies if r["type"] != "error"]
    errors = [r["code"] for r in replies if r["type"] == "error"]
    assert errors
    assert set(errors) == {"rate_limited"}
    assert len(served) < 40  # the burst of 10 tokens, at most 4 pings' worth each
    # The teacher, another user, is not limited by the pupil's flood.
    assert (await teacher.request({"type": "send", "discussion": d, "body": "still here",
                                   "client_id": "b"}))["type"] == "ack"


@pytest.mark.parametrize("limits", [TRICKLE])
async def test_connections_per_user_are_capped(live_server: LiveServer):
    url = live_server.ws_url
    for _ in range(4):
        await Wire.signed_in(url, live_server.token("e1"))
    extra = await Wire.open(url)
    await extra.send({"type": "hello", "token": live_server.token("e1")})
    error = await extra.expect("error")
    assert error["code"] == "rate_limited"
    code, _ = await extra.closed()
    assert code == 4429
    # Other users are not counted against the pupil's cap, nor the pupil against theirs.
    _, welcome = await Wire.signed_in(url, live_server.token("e2"))
    assert welcome["user"]["id"] == "e2"
    # A connection that goes frees its place.
    first = Wire._open[0]
    await first.close()
    for _ in range(100):
        again = await Wire.open(url)
        await again.send({"type": "hello", "token": live_server.token("e1")})
        frame = await again.recv()
        if frame["type"] == "welcome":
            break
        await asyncio.sleep(0.05)
    assert frame["type"] == "welcome"
