"""A raw protocol client for end-to-end tests: frames in, frames out, nothing hidden.

The client library (``server.client``) is what applications use; these tests
also need to send what no well-behaved client would (bad frames, wrong types).
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any, ClassVar
from urllib.parse import urlsplit

import msgpack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


class Wire:
    _open: ClassVar[list[Wire]] = []

    def __init__(self, conn: ClientConnection, encoding: str) -> None:
        self.conn = conn
        self.encoding = encoding
        self.frames: list[dict[str, Any]] = []
        Wire._open.append(self)

    @classmethod
    async def close_all(cls) -> None:
        """Close every connection a test opened (a fixture calls this after each test)."""
        wires, cls._open = cls._open, []
        for wire in wires:
            await wire.close()

    @classmethod
    async def open(cls, url: str, encoding: str = "json", *, rcvbuf: int | None = None,
                   **kwargs: Any) -> Wire:
        """Connect; ``rcvbuf`` pins a small kernel receive buffer (a slow reader whose
        socket fills quickly instead of autotuning to tens of megabytes)."""
        if rcvbuf is not None:
            host, port = urlsplit(url).hostname, urlsplit(url).port
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
            kwargs["sock"] = sock
        conn = await connect(url, subprotocols=[f"preau.{encoding}"],  # type: ignore[list-item]
                             open_timeout=10, **kwargs)
        return cls(conn, encoding)

    @classmethod
    async def signed_in(cls, url: str, token: str, encoding: str = "json",
                        resume: list[list[int]] | None = None) -> tuple[Wire, dict[str, Any]]:
        wire = await cls.open(url, encoding)
        hello: dict[str, Any] = {"type": "hello", "token": token}
        if resume is not None:
            hello["resume"] = resume
        await wire.send(hello)
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


class Silent:
    """A client that says hello, reads the welcome, then never reads again.

    A raw socket with a small receive buffer (no autotuning), driven by the
    websockets sans-I/O protocol, so that nothing reads on its behalf.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    async def hello(cls, url: str, token: str, resume: list[list[int]] | None = None) -> Silent:
        from websockets.client import ClientProtocol
        from websockets.datastructures import Headers
        from websockets.uri import parse_uri

        parts = urlsplit(url)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, (parts.hostname, parts.port))
        protocol = ClientProtocol(parse_uri(url), subprotocols=["preau.json"])  # type: ignore[list-item]
        request = protocol.connect()
        request.headers = Headers(request.headers)
        protocol.send_request(request)
        for data in protocol.data_to_send():
            await loop.sock_sendall(sock, data)
        welcome = said_hello = False
        while not welcome:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), 5)
            protocol.receive_data(chunk)
            for event in protocol.events_received():
                data = getattr(event, "data", b"")
                if isinstance(data, bytes | bytearray | memoryview) and b"welcome" in data:
                    welcome = True
            if protocol.handshake_exc is not None:
                raise protocol.handshake_exc
            if protocol.state.name == "OPEN" and not said_hello:
                said_hello = True
                protocol.send_text(json.dumps({"type": "hello", "token": token,
                                               "resume": resume or []}).encode())
            for data in protocol.data_to_send():
                await loop.sock_sendall(sock, data)
        return cls(sock)

    def close(self) -> None:
        self.sock.close()
