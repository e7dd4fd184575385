"""Connections that never finish their request head are closed (slowloris)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest

from tests.conftest import LiveServer
from tests.wire import Wire

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("close_wires")]

BOUND = 30.0  # generous: the deadline is 5–10 s; without one the server waits for ever



async def _closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Read until end of stream: True if the server closed the connection within BOUND."""
    try:
        async with asyncio.timeout(BOUND):
            while await reader.read(4096):
                pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


async def test_a_partial_request_line_is_closed(live_server: LiveServer):
    parts = urlsplit(live_server.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(b"GET /ws HT")
    await writer.drain()
    try:
        assert await _closed_by_server(reader)
    finally:
        writer.close()


async def test_dripped_headers_are_closed(live_server: LiveServer):
    parts = urlsplit(live_server.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n")

    async def drip() -> None:
        # One header byte a second: each byte would reset uvicorn's keep-alive timer.
        for _ in range(int(BOUND)):
            await asyncio.sleep(1)
            writer.write(b"X")
            await writer.drain()

    dripping = asyncio.create_task(drip())
    try:
        assert await _closed_by_server(reader)
    finally:
        dripping.cancel()
        await asyncio.gather(dripping, return_exceptions=True)
        writer.close()


async def test_honest_clients_are_not_cut(live_server: LiveServer):
    # An open WebSocket outlives the deadline (the upgrade ends the watch), and so does
    # a plain HTTP client that keeps asking.
    wire, _ = await Wire.signed_in(live_server.ws_url, live_server.token("t1"))
    parts = urlsplit(live_server.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        for _ in range(8):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await writer.drain()
            status = await reader.readline()
            assert status.startswith(b"HTTP/1.1 200"), status
            head = (await reader.readuntil(b"\r\n\r\n")).lower()
            length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            await asyncio.sleep(1)
    finally:
        writer.close()
    assert (await wire.request({"type": "ping"}))["type"] == "pong"
