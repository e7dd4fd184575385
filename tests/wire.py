"""A raw protocol client for end-to-end tests: frames in, frames out, nothing hidden.

The client library (``server.client``) is what applications use; these tests
also need to send what no well-behaved client would (bad frames, wrong types).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgpack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


class Wire:
    def __init__(self, conn: ClientConnection, encoding: str) -> None:
        self.conn = conn
        self.encoding = encoding
        self.frames: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, url: str, encoding: str = "json", **kwargs: Any) -> Wire:
        conn = await connect(url, subprotocols=[f"preau.{encoding}"],  # type: ignore[list-item]
                             open_timeout=10, **kwargs)
        return cls(conn, encoding)

    @classmethod
    async def signed_in(cls, url: str, token: str, encoding: str = "json",
                        resume: list[list[int]] | None = None) -> tuple[Wire, dict[str, Any]]:
        wire = await cls.open(url, encoding)
        await wire.send({"type": "hello", "token": token, "resume": resume or []})
        welcome = await wire.expect("welcome")
        return wire, welcome

    async def send(self, frame: dict[str, Any]) -> None:
        if self.encoding == "json":
            await self.conn.send(json.dumps(frame))
        else:
            await self.conn.send(msgpack.packb(frame, use_bin_type=True))

    async def send_raw(self, data: str | bytes) -> None:
        await self.conn.send(data)

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        data = await asyncio.wait_for(self.conn.recv(), timeout)
        frame: dict[str, Any] = (json.loads(data) if isinstance(data, str)
                                 else msgpack.unpackb(data, raw=False))
        self.frames.append(frame)
        return frame

    async def expect(self, kind: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        """The next frame of ``kind`` (matching ``match``); other frames are kept in ``frames``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.recv(max(0.01, deadline - loop.time()))
            if frame.get("type") == kind and all(frame.get(k) == v for k, v in match.items()):
                return frame

    async def request(self, frame: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """Send with a fresh ref and return the reply (or error) carrying it."""
        ref = f"r{id(frame)}-{len(self.frames)}"
        await self.send({**frame, "ref": ref})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            reply = await self.recv(max(0.01, deadline - loop.time()))
            if reply.get("ref") == ref:
                return reply

    async def closed(self, timeout: float = 5.0) -> tuple[int | None, str]:
        """Read until the server closes; the close code and reason."""
        try:
            while True:
                await self.recv(timeout)
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            return (rcvd.code, rcvd.reason) if rcvd is not None else (None, "")

    def messages(self, discussion: int) -> list[int]:
        return [f["seq"] for f in self.frames
                if f.get("type") == "message" and f.get("discussion") == discussion]

    async def close(self) -> None:
        await self.conn.close()
