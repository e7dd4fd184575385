"""The live hub end to end: real uvicorn, real WebSockets, one node, in-memory broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import LiveServer
from tests.wire import Wire

pytestmark = pytest.mark.anyio


async def test_teacher_and_students_converse(live_server: LiveServer):
    url = live_server.ws_url
    teacher, welcome = await Wire.signed_in(url, live_server.token("t1"))
    assert welcome["user"]["id"] == "t1"
    assert welcome["read_only"] is False
    e1, _ = await Wire.signed_in(url, live_server.token("e1"), encoding="msgpack")
    started = await teacher.request({"type": "start", "subject": "Sortie", "to": ["e1", "e2"],
                                     "body": "Bonjour", "client_id": "c1"})
    assert started["type"] == "started", started
    d = started["discussion"]["id"]
    assert started["ack"]["seq"] == 1
    new = await e1.expect("discussion")
    assert new["discussion"]["id"] == d
    first = await e1.expect("message", discussion=d)
    assert (first["seq"], first["body"], first["sender"]) == (1, "Bonjour", "t1")
    ack = await e1.request({"type": "send", "discussion": d, "body": "Merci", "client_id": "x"})
    assert (ack["type"], ack["seq"], ack["duplicate"]) == ("ack", 2, False)
    reply = await teacher.expect("message", discussion=d, seq=2)
    assert reply["body"] == "Merci"
    again = await e1.request({"type": "send", "discussion": d, "body": "Merci", "client_id": "x"})
    assert (again["seq"], again["duplicate"]) == (2, True)
    await teacher.close()
    await e1.close()


async def test_refusals_arrive_as_error_frames(live_server: LiveServer):
    url = live_server.ws_url
    e1, _ = await Wire.signed_in(url, live_server.token("e1"))
    r = await e1.request({"type": "start", "subject": "x", "to": ["e2"], "body": "hi",
                          "client_id": "a"})
    assert (r["type"], r["code"]) == ("error", "recipient_not_allowed")
    r = await e1.request({"type": "send", "discussion": 999, "body": "hi", "client_id": "b"})
    assert r["code"] == "not_participant"
    await e1.close()


async def test_bad_token_closes_4501(live_server: LiveServer):
    wire = await Wire.open(live_server.ws_url)
    await wire.send({"type": "hello", "token": "nope"})
    error = await wire.expect("error")
    assert error["code"] == "unauthenticated"
    code, _ = await wire.closed()
    assert code == 4501


async def test_outside_hours_is_read_only(live_server: LiveServer):
    live_server.clock.set(datetime(2026, 11, 24, 21, 30, tzinfo=UTC))
    token = live_server.token("t1", ttl=timedelta(days=1))
    wire, welcome = await Wire.signed_in(live_server.ws_url, token)
    assert welcome["read_only"] is True
    assert welcome["window"]["opens_at"] == "2026-11-25T06:00:00Z"
    r = await wire.request({"type": "start", "subject": "x", "to": ["e1"], "body": "hi",
                            "client_id": "a"})
    assert (r["code"], r["retry_at"]) == ("outside_hours", "2026-11-25T06:00:00Z")
    live_server.clock.set(datetime(2026, 11, 25, 6, 0, tzinfo=UTC))
    opened = await wire.expect("window")
    assert opened["open"] is True
    await wire.close()


async def test_malformed_frames_get_errors_not_crashes(live_server: LiveServer):
    wire, _ = await Wire.signed_in(live_server.ws_url, live_server.token("t1"))
    await wire.send_raw("{not json")
    assert (await wire.expect("error"))["code"] == "bad_request"
    await wire.send_raw(b"\xc1binary in a json connection")
    assert (await wire.expect("error"))["code"] == "bad_request"
    r = await wire.request({"type": "send", "discussion": "one", "body": 3, "client_id": "a"})
    assert r["code"] == "bad_request"
    r = await wire.request({"type": "teleport"})
    assert r["code"] == "bad_request"
    r = await wire.request({"type": "send", "discussion": 1, "body": "x" * 9000,
                            "client_id": "a"})
    assert r["code"] == "too_large"
    assert (await wire.request({"type": "ping"}))["type"] == "pong"
    await wire.close()


async def test_resume_replays_what_was_missed(live_server: LiveServer):
    url = live_server.ws_url
    teacher, _ = await Wire.signed_in(url, live_server.token("t1"))
    started = await teacher.request({"type": "start", "subject": "S", "to": ["e1"],
                                     "body": "m1", "client_id": "c1"})
    d = started["discussion"]["id"]
    for i in range(2, 6):
        await teacher.request({"type": "send", "discussion": d, "body": f"m{i}",
                               "client_id": f"c{i}"})
    e1, welcome = await Wire.signed_in(url, live_server.token("e1"), resume=[[d, 2]])
    assert welcome["resume"] == {"replayed": 3, "complete": True}
    for seq in (3, 4, 5):
        await e1.expect("message", discussion=d, seq=seq)
    await teacher.request({"type": "send", "discussion": d, "body": "m6", "client_id": "c6"})
    await e1.expect("message", discussion=d, seq=6)
    assert e1.messages(d) == [3, 4, 5, 6]
    await asyncio.gather(teacher.close(), e1.close())
