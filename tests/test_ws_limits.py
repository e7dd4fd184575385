"""Limits on the wire: slow consumers, oversized frames, connection counts."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from server.limits import Limits
from tests.conftest import LiveServer
from tests.wire import Silent, Wire

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("close_wires")]

OUTBOX = 64 * 1024


@pytest.fixture
def limits() -> Limits:
    return Limits(tick_seconds=0.05, hello_timeout=1.0, outbox_bytes=OUTBOX,
                  rate_per_second=100_000, rate_burst=100_000)



async def connections(live_server: LiveServer) -> int:
    async with httpx.AsyncClient(timeout=10) as http:
        count: int = (await http.get(f"{live_server.url}/readyz")).json()["connections"]
        return count


async def wait_connections(live_server: LiveServer, expected: int) -> None:
    for _ in range(200):
        if await connections(live_server) == expected:
            return
        await asyncio.sleep(0.05)
    assert await connections(live_server) == expected


async def test_slow_consumer_is_cut_and_others_keep_up(live_server: LiveServer):
    url = live_server.ws_url
    teacher, _ = await Wire.signed_in(url, live_server.token("t1"))
    fast, _ = await Wire.signed_in(url, live_server.token("e2"))
    d = (await teacher.request({"type": "start", "subject": "x", "to": ["e1", "e2"],
                                "body": "b", "client_id": "a"}))["discussion"]["id"]
    # The slow client stops reading after the welcome: the socket buffers fill (the
    # server side autotunes up to 4 MB here, hence 7 MB of messages), then
    # the server's outbox for it; the server must cut it, not buffer without bound.
    slow = await Silent.hello(url, live_server.token("e1"), resume=[[d, 0]])
    assert await connections(live_server) == 3
    body = "x" * 7000
    received = 0

    async def drain_fast() -> None:
        nonlocal received
        while received < 1001:
            frame = await fast.recv(timeout=10)
            if frame.get("type") == "message":
                received = frame["seq"]

    reader = asyncio.create_task(drain_fast())
    for i in range(1000):
        ack = await teacher.request({"type": "send", "discussion": d, "body": body,
                                     "client_id": f"c{i}"})
        assert ack["type"] == "ack"
    await asyncio.wait_for(reader, 20)
    assert received == 1001  # the fast client got everything, in order
    await wait_connections(live_server, 2)  # the slow one was cut
    slow.close()


async def test_oversized_frame_closes_1009(live_server: LiveServer):
    wire, _ = await Wire.signed_in(live_server.ws_url, live_server.token("t1"))
    await wire.send_raw("x" * (70 * 1024))
    code, _ = await wire.closed()
    assert code == 1009
    await wait_connections(live_server, 0)


async def test_hello_timeout_and_no_subprotocol(live_server: LiveServer):
    wire = await Wire.open(live_server.ws_url)
    code, reason = await wire.closed(timeout=5)
    assert (code, reason) == (4001, "no hello in time")
    from websockets.asyncio.client import connect

    async with connect(live_server.ws_url) as bare:
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(bare.recv(), 5)
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 1002


async def test_many_bad_frames_close_the_connection(live_server: LiveServer):
    wire, _ = await Wire.signed_in(live_server.ws_url, live_server.token("t1"), "msgpack")
    for _ in range(10):
        await wire.send_raw(b"\xc1")
    code, _ = await wire.closed()
    assert code == 1002
    await wait_connections(live_server, 0)


async def test_a_big_resume_still_fits(live_server: LiveServer):
    teacher, _ = await Wire.signed_in(live_server.ws_url, live_server.token("t1"))
    d = (await teacher.request({"type": "start", "subject": "x", "to": ["e1"], "body": "b",
                                "client_id": "a"}))["discussion"]["id"]
    for i in range(40):  # 40 × 7,000 characters: far more than half of the 64 KiB outbox
        await teacher.request({"type": "send", "discussion": d, "body": "y" * 7000,
                               "client_id": f"m{i}"})
    e1, welcome = await Wire.signed_in(live_server.ws_url, live_server.token("e1"),
                                       resume=[[d, 0]])
    assert welcome["resume"]["complete"] is False  # the newest messages, not all
    replayed = [(await e1.expect("message", discussion=d))["seq"]
                for _ in range(welcome["resume"]["replayed"])]
    assert replayed == list(range(42 - len(replayed), 42))  # contiguous, up to the last
    await teacher.request({"type": "send", "discussion": d, "body": "live", "client_id": "z"})
    assert (await e1.expect("message", discussion=d))["seq"] == 42
    history = await e1.request({"type": "history", "discussion": d, "before": replayed[0],
                                "limit": 5})
    assert [m["seq"] for m in history["messages"]] == list(
        range(replayed[0] - 1, replayed[0] - 6, -1))
