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
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.frames import iso
from server.limits import Limits
from server.model import SchoolId, UserId
from server.store import SqliteStore
from tests.conftest import LiveServer
from tests.wire import Wire

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("close_wires")]

# A trickle: 1 request every 100 s once the burst of 10 is spent, so that what a test
# sees in a few seconds is the burst alone, whatever the machine's speed.
TRICKLE = Limits(tick_seconds=0.05, hello_timeout=1.0, rate_per_second=0.01, rate_burst=10,
                 connections_per_user=4, throttle_max=0.001)



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


SMALL_OUTBOX = Limits(tick_seconds=0.05, hello_timeout=1.0, outbox_bytes=64 * 1024,
                      rate_per_second=100_000, rate_burst=100_000)


async def _flood_of_discussions(live_server: LiveServer, count: int) -> list[int]:
    """``count`` discussions started by pupil e1 with the staff, written straight to the
    store (as if over hours, by the protocol): their ids, oldest first."""
    store = SqliteStore(str(live_server.database))
    await store.open()
    try:
        ids = []
        for i in range(count):
            members = await store.create_discussion(
                SchoolId("hugo"), UserId("e1"), f"flood {i}", [UserId("a1"), UserId("s1")],
                now=live_server.clock())
            await store.append_message(SchoolId("hugo"), members.id, UserId("e1"), f"c{i}",
                                       "x" * 100, now=live_server.clock())
            ids.append(int(members.id))
        return ids
    finally:
        await store.close()


@pytest.mark.parametrize("limits", [SMALL_OUTBOX])
@pytest.mark.databases("sqlite")  # writes the flood straight into the file
async def test_a_welcome_always_fits_and_list_pages_through_a_flood(live_server: LiveServer):
    url = live_server.ws_url
    a1, welcome = await Wire.signed_in(url, live_server.token("a1"), resume=[])
    mine = (await a1.request({"type": "start", "subject": "Conseil de classe", "to": ["t1"],
                              "body": "ordre du jour", "client_id": "mine"}))
    d_mine = mine["discussion"]["id"]
    await a1.close()
    flood = await _flood_of_discussions(live_server, 300)
    # Every reconnect, with any resume list, is welcomed: the announcements are cut.
    for resume in ([], [[d_mine, 1]]):
        wire, welcome = await Wire.signed_in(url, live_server.token("a1"), resume=resume)
        assert welcome["resume"]["complete"] is False
        announced = []
        while True:
            try:
                frame = await wire.recv(timeout=0.5)
            except TimeoutError:
                break
            if frame["type"] == "discussion":
                announced.append(frame["discussion"]["id"])
        assert 0 < len(announced) < 300
        # A discussion left out of the welcome is still followed live.
        quiet = next(d for d in flood if d not in announced)
        e1, _ = await Wire.signed_in(url, live_server.token("e1"))
        await e1.request({"type": "send", "discussion": quiet, "body": "still there?",
                          "client_id": f"live-{len(resume)}"})
        live = await wire.expect("message", discussion=quiet)
        assert live["body"] == "still there?"
        await e1.close()
        # The list, paged, reaches every discussion, the principal's own included.
        seen: list[int] = []
        before = None
        while True:
            ask: dict[str, Any] = {"type": "list", "limit": 120}
            if before is not None:
                ask["before"] = before
            page = await wire.request(ask)
            assert page["type"] == "discussions"
            seen += [item["id"] for item in page["items"]]
            if not page["more"]:
                assert page["next"] is None
                break
            before = page["next"]
        assert sorted(seen) == sorted([*flood, d_mine])
        assert len(seen) == len(set(seen))
        await wire.close()


async def test_list_without_parameters_is_the_first_page(live_server: LiveServer):
    url = live_server.ws_url
    teacher, _ = await Wire.signed_in(url, live_server.token("t1"))
    for i in range(3):
        await teacher.request({"type": "start", "subject": f"s{i}", "to": ["e1"], "body": "b",
                               "client_id": f"c{i}"})
    listed = await teacher.request({"type": "list"})
    assert [i["subject"] for i in listed["items"]] == ["s2", "s1", "s0"]
    assert (listed["more"], listed["next"]) == (False, None)
    first = await teacher.request({"type": "list", "limit": 2})
    assert [i["subject"] for i in first["items"]] == ["s2", "s1"]
    assert first["more"] is True
    rest = await teacher.request({"type": "list", "limit": 2, "before": first["next"]})
    assert [i["subject"] for i in rest["items"]] == ["s0"]
    assert rest["more"] is False
    for bad in ({"before": "nonsense"}, {"before": 12}, {"limit": 0}, {"limit": 100_000}):
        error = await teacher.request({"type": "list", **bad})
        assert error["code"] == "bad_request"


async def test_starts_are_limited_per_hour_and_day(live_server: LiveServer):
    with live_server.client("a1") as admin:
        r = admin.patch("/api/settings", json={"limits": {"starts_per_hour": 2,
                                                          "starts_per_day": 3}})
        assert r.status_code == 200, r.text
        audited = {e["field"]: (e["old"], e["new"])
                   for e in admin.get("/api/audit").json()["items"]}
    assert audited["limits.starts_per_hour"] == (30, 2)
    assert audited["limits.starts_per_day"] == (100, 3)
    url = live_server.ws_url
    e1, _ = await Wire.signed_in(url, live_server.token("e1", ttl=timedelta(days=3)))

    async def start(n: int) -> dict[str, Any]:
        return await e1.request({"type": "start", "subject": f"s{n}", "to": ["a1"],
                                 "body": "b", "client_id": f"start-{n}"})

    first_at = live_server.clock()
    assert (await start(1))["type"] == "started"
    live_server.clock.advance(timedelta(minutes=10))
    assert (await start(2))["type"] == "started"
    refused = await start(3)
    assert refused["code"] == "rate_limited"
    assert refused["retry_at"] == iso(first_at + timedelta(hours=1))
    # A retry of a start already made is answered as such, not refused.
    assert (await start(2))["ack"]["duplicate"] is True
    # Other users are not limited by e1's starts.
    e2, _ = await Wire.signed_in(url, live_server.token("e2"))
    assert (await e2.request({"type": "start", "subject": "x", "to": ["a1"], "body": "b",
                              "client_id": "e2"}))["type"] == "started"
    live_server.clock.set(first_at + timedelta(hours=1, seconds=1))
    assert (await start(3))["type"] == "started"
    live_server.clock.advance(timedelta(hours=2))
    refused = await start(4)  # three today: the day is full until the first leaves it
    assert refused["code"] == "rate_limited"
    assert refused["retry_at"] == iso(first_at + timedelta(days=1))
    live_server.clock.set(first_at + timedelta(days=1, seconds=1))
    assert (await start(4))["type"] == "started"


async def test_held_starts_count_towards_the_limit(live_server: LiveServer):
    with live_server.client("a1") as admin:
        assert admin.patch("/api/settings", json={
            "limits": {"starts_per_hour": 1, "starts_per_day": 5},
            "hours": {"outside": "defer"}}).status_code == 200
    live_server.clock.set(datetime(2026, 11, 24, 21, 0, tzinfo=UTC))  # 22:00 in Paris
    e1, _ = await Wire.signed_in(live_server.ws_url, live_server.token("e1"))
    held = await e1.request({"type": "start", "subject": "s", "to": ["a1"], "body": "b",
                             "client_id": "held"})
    assert held["type"] == "held"
    refused = await e1.request({"type": "start", "subject": "s", "to": ["a1"], "body": "b",
                                "client_id": "more"})
    assert refused["code"] == "rate_limited"


@pytest.mark.parametrize("limits", [TRICKLE])
async def test_rest_requests_share_the_allowance_and_reconnecting_buys_nothing(
        live_server: LiveServer):
    with live_server.client("e1") as pupil, live_server.client("t1") as teacher:
        codes = [pupil.get("/api/me").status_code for _ in range(14)]
        # The burst of 10, then refusals: the REST API is no way around the rate.
        assert codes[:10] == [200] * 10
        assert set(codes[10:]) == {429}
        refused = pupil.get("/api/me").json()["error"]
        assert refused["code"] == "rate_limited"
        assert "retry_at" in refused
        # Another user is not affected.
        assert teacher.get("/api/me").status_code == 200
    # The same allowance on the WebSocket, and connecting again does not refill it.
    for _ in range(2):
        wire, _ = await Wire.signed_in(live_server.ws_url, live_server.token("e1"))
        reply = await wire.request({"type": "ping"})
        assert (reply["type"], reply.get("code")) == ("error", "rate_limited")
        await wire.close()
