"""server/client.py against a scripted fake server on a real socket.

Each test writes a small script (``async def script(fake, conn, index)``) that plays
the server side of one connection; ``index`` counts connections, so a script can
drop the first one and welcome the second. The fake records every ``hello`` and
request it receives, which is what most assertions look at.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import msgpack
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from server.client import Ack, Client, Event, PreauError

pytestmark = pytest.mark.anyio

AT = "2026-11-24T09:00:00.123456Z"
ENCODINGS = ["json", "msgpack"]

Script = Callable[["Fake", ServerConnection, int], Awaitable[None]]


# ---------------------------------------------------------------------- the fake server


class Fake:
    """Plays ``script`` for each connection, after recording its ``hello``."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.opened_at: list[float] = []
        self.paths: list[str] = []
        self.subprotocols: list[str | None] = []
        self.hellos: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.frame_types: set[type] = set()
        self.close_codes: list[int | None] = []
        self._changed = asyncio.Condition()

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Wait until what the fake recorded satisfies ``predicate``."""
        async with self._changed:
            await self._changed.wait_for(predicate)

    async def _recorded(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def handler(self, conn: ServerConnection) -> None:
        index = self.connections
        self.connections += 1
        self.opened_at.append(time.monotonic())
        self.paths.append(conn.request.path if conn.request else "")
        self.subprotocols.append(conn.subprotocol)
        try:
            self.hellos.append(await self.get(conn))
            await self.script(self, conn, index)
            # Returning would close the connection (1000): stay until the client leaves.
            await conn.wait_closed()
        except ConnectionClosed:
            pass
        self.close_codes.append(conn.close_code)
        await self._recorded()

    async def get(self, conn: ServerConnection) -> dict[str, Any]:
        data = await conn.recv()
        self.frame_types.add(type(data))
        frame: dict[str, Any] = (json.loads(data) if isinstance(data, str)
                                 else msgpack.unpackb(data, raw=False))
        return frame

    async def serve_requests(self, conn: ServerConnection,
                             reply: Callable[[dict[str, Any]], dict[str, Any] | None]
                             | None = None) -> None:
        """Answer requests until the connection closes."""
        while True:
            request = await self.get(conn)
            self.requests.append(request)
            await self._recorded()
            answer = (reply or standard_reply)(request)
            if answer is not None:
                await put(conn, answer)


async def put(conn: ServerConnection, frame: dict[str, Any]) -> None:
    if conn.subprotocol == "preau.msgpack":
        await conn.send(msgpack.packb(frame, use_bin_type=True))
    else:
        await conn.send(json.dumps(frame))


async def welcome(conn: ServerConnection, **fields: Any) -> None:
    await put(conn, {"type": "welcome", "protocol": 1, "node": "n1",
                     "user": {"id": "t-001", "name": "M. Martin"},
                     "school": {"id": "hugo", "name": "Collège Hugo",
                                "timezone": "Europe/Paris"},
                     "read_only": False,
                     "window": {"open": True, "opens_at": None, "closes_at": AT},
                     "heartbeat": 25, "resume": {"replayed": 0, "complete": True},
                     **fields})


def message(d: int, seq: int) -> dict[str, Any]:
    return {"type": "message", "discussion": d, "seq": seq, "sender": "s-0001",
            "body": f"m{seq}", "at": AT, "client_id": f"c-{d}-{seq}"}


def ack(request: dict[str, Any], seq: int = 41, duplicate: bool = False) -> dict[str, Any]:
    return {"type": "ack", "ref": request["ref"], "discussion": request["discussion"],
            "seq": seq, "client_id": request["client_id"], "at": AT, "duplicate": duplicate}


def standard_reply(request: dict[str, Any]) -> dict[str, Any] | None:
    ref = request.get("ref")
    kind = request["type"]
    if kind == "send":
        return ack(request)
    if kind == "start":
        return {"type": "started", "ref": ref, "discussion": {"id": 7, "subject": "Sortie"},
                "ack": {"type": "ack", "discussion": 7, "seq": 1,
                        "client_id": request["client_id"], "at": AT, "duplicate": False}}
    if kind == "list":
        return {"type": "discussions", "ref": ref, "items": [{"id": 7}, {"id": 3}]}
    if kind == "history":
        return {"type": "history", "ref": ref, "discussion": request["discussion"],
                "messages": [message(request["discussion"], 2),
                             message(request["discussion"], 1)], "more": False,
                "reads": {"t-001": 2}}
    if kind == "ping":
        return {"type": "pong", "ref": ref}
    if kind == "typing":
        return None
    return {"type": "ok", "ref": ref}


async def steady(fake: Fake, conn: ServerConnection, index: int) -> None:
    """Welcome every connection and answer its requests."""
    await welcome(conn)
    await fake.serve_requests(conn)


@asynccontextmanager
async def fake_server(script: Script = steady, *, subprotocols: list[str] | None = None,
                      seconds: float = 10) -> AsyncIterator[tuple[str, Fake]]:
    """A fake server on 127.0.0.1; the whole test is bounded by ``seconds``."""
    fake = Fake(script)
    offered = [Subprotocol(s) for s in
               (["preau.json", "preau.msgpack"] if subprotocols is None else subprotocols)]
    async with asyncio.timeout(seconds):
        async with serve(fake.handler, "127.0.0.1", 0, subprotocols=offered or None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            yield f"ws://127.0.0.1:{port}/ws", fake


async def take(events: AsyncIterator[Event], n: int) -> list[Event]:
    return [await anext(events) for _ in range(n)]


def seqs(events: list[Event]) -> list[tuple[int, int]]:
    return [(e.data["discussion"], e.data["seq"]) for e in events if e.type == "message"]


# ---------------------------------------------------------------------- hello and encodings


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_connect_sends_hello_and_returns_welcome(encoding: Any) -> None:
    async with fake_server() as (url, fake), Client(url, "tok", encoding=encoding) as client:
        assert client.connected
        assert client.welcome is not None
        assert client.welcome["school"]["id"] == "hugo"
        assert fake.hellos == [{"type": "hello", "token": "tok"}]  # nothing to resume yet
        assert fake.subprotocols == [f"preau.{encoding}"]
        assert fake.frame_types == {str if encoding == "json" else bytes}


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_send_returns_the_ack(encoding: Any) -> None:
    async with fake_server() as (url, fake), Client(url, "tok", encoding=encoding) as client:
        result = await client.send(12, "Bonjour")
        assert result == Ack(12, 41, result.client_id,
                             datetime(2026, 11, 24, 9, 0, 0, 123456, tzinfo=UTC), False)
        uuid.UUID(result.client_id)  # generated
        [request] = fake.requests
        assert request["type"] == "send"
        assert request["body"] == "Bonjour"
        assert request["client_id"] == result.client_id
        assert isinstance(request["ref"], str)
        assert fake.frame_types == {str if encoding == "json" else bytes}


async def test_an_http_base_url_reaches_the_ws_endpoint() -> None:
    async with fake_server() as (url, fake):
        base = url.replace("ws://", "http://").removesuffix("/ws")
        async with Client(base, "tok"):
            assert fake.paths == ["/ws"]


async def test_a_token_function_is_called_for_the_connection() -> None:
    async def token() -> str:
        return "fresh"

    async with fake_server() as (url, fake), Client(url, token):
        assert fake.hellos[0]["token"] == "fresh"


async def test_the_server_must_accept_the_subprotocol() -> None:
    async with fake_server(subprotocols=[]) as (url, _):
        with pytest.raises(PreauError) as caught:
            await Client(url, "tok").connect()
        assert caught.value.code == "protocol_error"


async def test_an_unreachable_server_raises() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = Client(f"ws://127.0.0.1:{port}/ws", "tok")
    with pytest.raises(PreauError) as caught:
        await client.connect()
    assert caught.value.code == "unreachable"


async def test_misuse_fails_loudly() -> None:
    client = Client("ws://127.0.0.1:1/ws", "tok")
    with pytest.raises(RuntimeError, match="connect"):
        await client.send(1, "too early")
    async with fake_server() as (url, _), Client(url, "tok") as client:
        with pytest.raises(RuntimeError, match="connect"):
            await client.connect()


# ---------------------------------------------------------------------- requests


async def test_reads_gives_the_others_read_positions_from_history() -> None:
    async with fake_server() as (url, fake), Client(url, "tok") as client:
        assert await client.reads(7) == {"t-001": 2}
        await fake.until(lambda: len(fake.requests) == 1)
        assert [{k: v for k, v in r.items() if k != "ref"} for r in fake.requests] == [
            {"type": "history", "discussion": 7, "limit": 1}]


async def test_request_helpers_send_the_documented_frames() -> None:
    async with fake_server() as (url, fake), Client(url, "tok") as client:
        started = await client.start(["s-0001", "p-0001"], "Sortie", "Départ 8 h",
                                     client_id="c1")
        assert started["type"] == "started"
        assert started["discussion"]["id"] == 7
        assert await client.discussions() == [{"id": 7}, {"id": 3}]
        messages, more = await client.history(7, before=3, limit=2)
        assert [m["seq"] for m in messages] == [2, 1]
        assert more is False
        await client.invite(7, "t-002")
        await client.mark_read(7, 2)
        await client.typing(7)
        await client.leave(7)
        assert (await client.request("ping"))["type"] == "pong"
        await fake.until(lambda: len(fake.requests) == 8)
        sent = [{k: v for k, v in r.items() if k != "ref"} for r in fake.requests]
        assert sent == [
            {"type": "start", "to": ["s-0001", "p-0001"], "subject": "Sortie",
             "body": "Départ 8 h", "client_id": "c1"},
            {"type": "list"},
            {"type": "history", "discussion": 7, "before": 3, "limit": 2},
            {"type": "invite", "discussion": 7, "user": "t-002"},
            {"type": "read", "discussion": 7, "seq": 2},
            {"type": "typing", "discussion": 7},
            {"type": "leave", "discussion": 7},
            {"type": "ping"},
        ]
        assert "ref" not in fake.requests[5]  # typing has no reply
        assert len({r["ref"] for r in fake.requests if "ref" in r}) == 7


async def test_an_error_reply_raises_and_keeps_the_connection() -> None:
    def refuse_sends(request: dict[str, Any]) -> dict[str, Any] | None:
        if request["type"] == "send":
            return {"type": "error", "ref": request["ref"], "code": "outside_hours",
                    "message": "Discussions are closed at this hour.",
                    "retry_at": "2026-11-25T06:00:00Z"}
        return standard_reply(request)

    async def script(fake: Fake, conn: ServerConnection, index: int) -> None:
        await welcome(conn)
        await fake.serve_requests(conn, refuse_sends)

    async with fake_server(script) as (url, _), Client(url, "tok") as client:
        with pytest.raises(PreauError) as caught:
            await client.send(12, "Bonsoir")
        error = caught.value
        assert (error.code, error.message) == ("outside_hours",
                                               "Discussions are closed at this hour.")
        assert error.retry_at == datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
        assert error.close_code is None
        assert (await client.request("ping"))["type"] == "pong"
        assert client.connected


async def test_an_unanswered_request_times_out() -> None:
    async with (fake_server(lambda fake, conn, i: welcome(conn)) as (url, _),
                Client(url, "tok", request_timeout=0.2) as client):
        started = time.monotonic()
        with pytest.raises(PreauError) as caught:
            await client.request("ping")
        assert caught.value.code == "timeout"
        assert time.monotonic() - started < 1


async def test_a_frame_over_64_kib_is_refused_before_sending() -> None:
    async with fake_server() as (url, fake), Client(url, "tok") as client:
        with pytest.raises(PreauError) as caught:
            await client.send(12, "x" * 70_000)
        assert caught.value.code == "too_large"
        assert (await client.request("ping"))["type"] == "pong"
        assert [r["type"] for r in fake.requests] == ["ping"]


async def test_close_fails_pending_requests_and_ends_the_events() -> None:
    async def script(fake: Fake, conn: ServerConnection, index: int) -> None:
        await welcome(conn)
        await put(conn, message(12, 1))  # then never answers

    async with fake_server(script) as (url, _):
        client = Client(url, "tok")
        await client.connect()
        events = client.events()
        pending = asyncio.create_task(client.request("ping"))
        [first] = await take(events, 1)
        await client.close()
        with pytest.raises(PreauError) as caught:
            await pending
        assert caught.value.code == "closed"
        assert first.type == "message"
        assert [e async for e in events] == []
        assert not client.connected
        await client.close()  # idempotent


# ---------------------------------------------------------------------- events, dedupe, resume


async def test_positions_advance_only_when_contiguous() -> None:
    async def script(fake: Fake, conn: ServerConnection, index: int) -> None:
        await welcome(conn)
        for seq in (1, 3, 3, 2, 1, 4):
            await put(conn, message(12, seq))
        await put(conn, {"type": "typing", "discussion": 12, "user": "s-0001"})

    async with fake_server(script) as (url, _), Client(url, "tok") as client:
        events = await take(client.events(), 5)
        assert seqs(events) == [(12, 1), (12, 3), (12, 2), (12, 4)]
        assert events[-1] == Event("typing", {"type": "typing", "discussion": 12,
                                              "user": "s-0001"})
        assert client.positions == {12: 4}


async def test_a_skipped_seq_moves_the_position_and_is_no_event() -> None:
    """Protocol §4.5: a seq hidden from this user comes as ``skipped``; without it the
    position would stay below it for ever, and every resume would replay from there."""
    async def script(fake: Fake, conn: ServerConnection, index: int) -> None:
        await welcome(conn)
        await put(conn, message(12, 1))
        await put(conn, message(12, 3))
        await put(conn, {"type": "skipped", "discussion": 12, "seq": 2})
        await put(conn, message(12, 4))
        await put(conn, {"type": "typing", "discussion": 12, "user": "s-0001"})

    async with fake_server(script) as (url, _), Client(url, "tok") as client:
        events = await take(client.events(), 4)
        assert seqs(events) == [(12, 1), (12, 3), (12, 4)]
        assert events[-1].type == "typing"
        assert client.positions == {12: 4}


async def test_positions_set_before_connect_are_resumed() -> None:
    async with fake_server() as (url, fake):
        client = Client(url, "tok")
        client.positions.update({12: 40, 15: 3})
        async with client:
            assert fake.hellos[0]["resume"] == [[12, 40], [15, 3]]


async def test_reconnect_resumes_from_the_highest_contiguous_seq() -> None:
    async def script(fake: Fake, conn: ServerConnection, index: int) -> None:
        await welcome(conn)
        if index == 0:
            for d, seq in ((12, 1), (12, 2), (12, 3), (15, 7), (20, 1), (20, 3)):
                await put(conn, message(d, seq))
            await conn.close(4008, "too slow")

    async with fake_server(script) as (url, fake), Client(url, "tok") as client:
        events = await take(client.events(), 7)
        assert [e.type for e in events] == ["message"] * 6 + ["welcome"]
        assert sorted(fake.hellos[1]["resume"]) == [[12, 3], [15, 7], [20, 1]]


async def test_a_replayed_message_is_delivered_once() -> None:
    async def script(fake: Fake, conn: ServerConnection, index: int) -> None:
        if index == 0:
            await welcome(conn)
            await put(conn, message(12, 1))
            await put(conn, message(12, 2))
            await conn.close(4000, "server shutting down")
        else:
            # Welcome first, then the replay (here overlapping what was seen), then live.
            await welcome(conn, resume={"replayed": 2, "complete": True})
            await put(conn, message(12, 2))
            await put(conn, message(12, 3))
            await put(conn, message(12, 4))

    async with fake_server(script) as (url, fake), Client(url, "tok") as client:
        events = await take(client.events(), 5)
        assert [e.type for e in events] == ["message", "message", "welcome", "message",
                                            "message"]
        assert seqs(events) == [(12, 1), (12, 2), (12, 3), (12, 4)]
        assert events[2].data["resume"] == {"replayed": 2, "complete": True}
        assert fake.hellos[1]["resume"] == [[12, 2]]
        assert client.positions == {12: 4}
        assert client.welcome == events[2].data


# ---------------------------------------------------------------------- reconnection


async def abort(conn: ServerConnection) -> None:
    """Cut the TCP connection without a closing handshake: the client sees 1006."""
    conn.transport.abort()


@pytest.mark.parametrize("code", [4000, 4008, 1006])
async def test_the_client_reconnects_after(code: int) -> None:
    async def script(fake: Fake, conn: ServerConnection, index: int) -> None:
        await welcome(conn)
        if index == 0:
            await put(conn, message(12, 1))
            await (abort(conn) if code == 1006 else conn.close(code, "bye"))
        else:
            await put(conn, message(12, 2))
            await fake.serve_requests(conn)

    async with fake_server(script) as (url, fake), Client(url, "tok") as client:
        events = await take(client.events(), 3)
        assert [e.type for e in events] == ["message", "welcome", "message"]
        assert fake.connections == 2
        assert client.connected
        assert (await client.request("ping"))["type"] == "pong"


async def test_an_unacked_send_is_retried_with_the_same_client_id() -> None:
    async def script(fake: Fake, conn: ServerConnection, index: int) -> None:
        await welcome(conn)
        request = await fake.get(conn)
        fake.requests.append(request)
        if index == 0:
            await abort(conn)  # stored, but the ack is lost with the connection
        else:
            await put(conn, ack(request, duplicate=True))

    async with fake_server(script) as (url, fake), Client(url, "tok") as client:
        result = await client.send(12, "Bonjour")
        first, second = fake.requests
        assert first["client_id"] == second["client_id"] == result.client_id
        assert first["body"] == second["body"] == "Bonjour"
        assert result.duplicate
        assert fake.connections == 2


async def test_a_request_that_is_not_idempotent_raises_connection_lost() -> None:
    async def script(fake: Fake, conn: ServerConnection, index: int) -> None:
        await welcome(conn)
        if index == 0:
            fake.requests.append(await fake.get(conn))
            await abort(conn)
        else:
            await fake.serve_requests(conn)

    async with fake_server(script) as (url, fake), Client(url, "tok") as client:
        with pytest.raises(PreauError) as caught:
            await client.invite(12, "t-002")
        assert caught.value.code == "connection_lost"
        assert (await client.request("ping"))["type"] == "pong"  # after the reconnect
        assert [r["type"] for r in fake.requests] == ["invite", "ping"]


async def test_the_reconnect_event_moves_the_client_at_once() -> None:
    async def script(fake: Fake, conn: ServerConnection, index: int) -> None:
        await welcome(conn)
        if index == 0:
            await put(conn, {"type": "reconnect", "reason": "server shutting down"})

    async with fake_server(script) as (url, fake), Client(url, "tok") as client:
        events = await take(client.events(), 2)
        assert [e.type for e in events] == ["reconnect", "welcome"]
        await fake.until(lambda: len(fake.close_codes) == 1)
        assert fake.close_codes == [1000]  # the client left by itself


async def test_backoff_grows_and_stays_under_max_backoff() -> None:
    async def script(fake: Fake, conn: ServerConnection, index: int) -> None:
        if 1 <= index <= 4:
            await abort(conn)  # refused before welcome: the node is still down
            return
        await welcome(conn)
        if index == 0:
            await abort(conn)

    async with fake_server(script) as (url, fake):
        async with Client(url, "tok", max_backoff=0.2) as client:
            [event] = await take(client.events(), 1)
            assert event.type == "welcome"
        gaps = [b - a for a, b in zip(fake.opened_at, fake.opened_at[1:], strict=False)]
        assert len(gaps) == 5
        assert all(0.04 < gap < 0.2 + 0.15 for gap in gaps), gaps


async def test_without_reconnect_a_drop_ends_the_client() -> None:
    async def script(fake: Fake, conn: ServerConnection, index: int) -> None:
        await welcome(conn)
        await conn.close(4000, "server shutting down")

    async with fake_server(script) as (url, fake), Client(url, "tok", reconnect=False) as client:
        with pytest.raises(PreauError) as caught:
            await anext(client.events())
        assert caught.value.close_code == 4000
        await asyncio.sleep(0.3)
        assert fake.connections == 1


# ---------------------------------------------------------------------- terminal closes


async def test_a_refused_token_raises_an_auth_error_at_connect() -> None:
    async def script(fake: Fake, conn: ServerConnection, index: int) -> None:
        await conn.close(4501, "invalid token")

    async with fake_server(script) as (url, fake):
        client = Client(url, "bad")
        with pytest.raises(PreauError) as caught:
            await client.connect()
        assert (caught.value.code, caught.value.message) == ("unauthenticated", "invalid token")
        assert caught.value.close_code == 4501
        with pytest.raises(PreauError, match="unauthenticated"):
            await client.send(12, "no")
        await asyncio.sleep(0.3)
        assert fake.connections == 1


async def test_an_expired_token_ends_a_session_without_reconnecting() -> None:
    async def script(fake: Fake, conn: ServerConnection, index: int) -> None:
        await welcome(conn)
        await put(conn, {"type": "error", "code": "unauthenticated",
                         "message": "The token has expired: sign in again."})
        await conn.close(4501, "token expired")

    async with fake_server(script) as (url, fake), Client(url, "tok") as client:
        events = client.events()
        [error_event] = await take(events, 1)
        assert error_event.type == "error"
        with pytest.raises(PreauError) as caught:
            await anext(events)
        assert caught.value.code == "unauthenticated"
        assert caught.value.close_code == 4501
        with pytest.raises(PreauError, match="unauthenticated"):  # the iterator stays ended
            await anext(client.events())
        await asyncio.sleep(0.3)
        assert fake.connections == 1
        assert not client.connected


async def test_a_token_function_replaces_an_expired_token_once() -> None:
    tokens = iter(["t1", "t2", "t3"])

    async def token() -> str:
        return next(tokens)

    async def script(fake: Fake, conn: ServerConnection, index: int) -> None:
        if index == 2:
            await conn.close(4501, "invalid token")
            return
        await welcome(conn)
        await conn.close(4501, "token expired")

    async with fake_server(script) as (url, fake), Client(url, token) as client:
        events = client.events()
        [event] = await take(events, 1)
        assert event.type == "welcome"  # t2 was accepted
        with pytest.raises(PreauError) as caught:  # t2 expired, t3 refused: no loop
            await anext(events)
        assert caught.value.close_code == 4501
        assert [h["token"] for h in fake.hellos] == ["t1", "t2", "t3"]
        await asyncio.sleep(0.3)
        assert fake.connections == 3


async def test_access_revoked_during_a_session_is_terminal() -> None:
    async def script(fake: Fake, conn: ServerConnection, index: int) -> None:
        await welcome(conn)
        await put(conn, {"type": "access", "code": "discussions_disabled",
                         "message": "Discussions are switched off in this school."})
        await conn.close(4503, "discussions_disabled")

    async with fake_server(script) as (url, fake), Client(url, "tok") as client:
        events = client.events()
        [access] = await take(events, 1)
        assert access.type == "access"
        with pytest.raises(PreauError) as caught:
            await anext(events)
        assert caught.value.code == "discussions_disabled"
        assert caught.value.close_code == 4503
        with pytest.raises(PreauError, match="discussions_disabled"):
            await client.request("ping")
        await asyncio.sleep(0.3)
        assert fake.connections == 1


async def test_access_refused_at_hello_raises_at_connect() -> None:
    async def script(fake: Fake, conn: ServerConnection, index: int) -> None:
        await conn.close(4503, "profile_disabled")

    async with fake_server(script) as (url, fake):
        with pytest.raises(PreauError) as caught:
            await Client(url, "tok").connect()
        assert caught.value.code == "access_revoked"
        assert caught.value.message == "profile_disabled"
        assert caught.value.close_code == 4503
        assert fake.connections == 1
