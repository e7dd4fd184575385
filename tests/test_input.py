"""Text that cannot be stored is refused at the door, and what is stored can always be read.

JSON lets a client write a lone UTF-16 surrogate (``"\\ud800"``) and a NUL
(``"\\u0000"``). Every string of every frame and of every REST body is checked
where it comes in (``bad_request``, the connection stays up); tokens whose claims
are out of range are ``unauthenticated``; and a value stored before these checks
existed goes out with U+FFFD instead of failing every later read. Real uvicorn,
real sockets.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest

from server import web
from tests.conftest import SECRET, LiveServer
from tests.wire import Wire

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("close_wires")]

SURROGATE = "\ud800"
UNSTORABLE = ["a\ud800b", "\udfff", "a\x00b"]



async def connections(server: LiveServer) -> int:
    async with httpx.AsyncClient(timeout=10) as http:
        count: int = (await http.get(f"{server.url}/readyz")).json()["connections"]
        return count


async def wait_connections(server: LiveServer, expected: int) -> None:
    for _ in range(200):
        if await connections(server) == expected:
            return
        await asyncio.sleep(0.05)
    assert await connections(server) == expected


async def discussion(teacher: Wire, *to: str) -> int:
    started = await teacher.request({"type": "start", "subject": "Sortie", "to": list(to),
                                     "body": "Bonjour", "client_id": "setup"})
    assert started["type"] == "started", started
    d: int = started["discussion"]["id"]
    return d


async def answers(wire: Wire, *frames: dict[str, Any]) -> list[dict[str, Any]]:
    """Send ``frames`` without waiting, then their replies, in order."""
    refs = [f"a{len(wire.frames)}-{i}" for i in range(len(frames))]
    for ref, frame in zip(refs, frames, strict=True):
        await wire.send({**frame, "ref": ref})
    replies: dict[str, dict[str, Any]] = {}
    while len(replies) < len(refs):
        reply = await wire.recv()
        if reply.get("ref") in refs:
            replies[reply["ref"]] = reply
    return [replies[ref] for ref in refs]


async def still_answers(wire: Wire) -> None:
    assert (await wire.request({"type": "ping"}))["type"] == "pong"


def signed(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, SECRET, algorithm="HS256")


# ---------------------------------------------------------------------- WebSocket


@pytest.mark.parametrize("text", UNSTORABLE)
@pytest.mark.databases("sqlite", "postgresql")  # the good sends share the writer's batches
async def test_unstorable_send_is_refused_and_others_sends_are_acked(
        live_server: LiveServer, text: str):
    teacher, _ = await Wire.signed_in(live_server.ws_url, live_server.token("t1"))
    pupil, _ = await Wire.signed_in(live_server.ws_url, live_server.token("e1"))
    d = await discussion(teacher, "e1")
    for i in range(12):  # within the pupil's burst allowance (docs/protocol.md §5.1)
        # In the same moment, so that both would be in one batch of the writer.
        # (The ping is well-formed: it keeps the malformed count from closing.)
        (bad_body, bad_client_id, _), good = await asyncio.gather(
            answers(pupil, {"type": "send", "discussion": d, "body": text,
                            "client_id": f"b{i}"},
                    {"type": "send", "discussion": d, "body": "ok", "client_id": text},
                    {"type": "ping"}),
            teacher.request({"type": "send", "discussion": d, "body": f"message {i}",
                             "client_id": f"g{i}"}))
        assert (bad_body["type"], bad_body["code"]) == ("error", "bad_request"), bad_body
        assert "'body'" in bad_body["message"]
        assert (bad_client_id["type"], bad_client_id["code"]) == ("error", "bad_request")
        assert "'client_id'" in bad_client_id["message"]
        assert good["type"] == "ack", good
    history = await pupil.request({"type": "history", "discussion": d})
    assert [m["body"] for m in history["messages"]][:2] == ["message 11", "message 10"]
    await still_answers(pupil)
    assert await connections(live_server) == 2


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
async def test_unstorable_subject_recipient_and_invitee_are_bad_requests(
        live_server: LiveServer, encoding: str):
    teacher, _ = await Wire.signed_in(live_server.ws_url, live_server.token("t1"), encoding)
    # MessagePack cannot carry a surrogate (it is not UTF-8): there, NUL is the test.
    texts = UNSTORABLE if encoding == "json" else ["a\x00b"]
    d = await discussion(teacher, "e1")
    for text in texts:
        frames: list[dict[str, Any]] = [
            {"type": "start", "subject": text, "to": ["e1"], "body": "b", "client_id": "x"},
            {"type": "start", "subject": "s", "to": ["e1", text], "body": "b",
             "client_id": "y"},
            {"type": "invite", "discussion": d, "user": text},
        ]
        for frame in frames:
            r = await teacher.request(frame)
            assert (r["type"], r["code"]) == ("error", "bad_request"), (frame, r)
    await still_answers(teacher)
    listed = await teacher.request({"type": "list"})
    assert [i["id"] for i in listed["items"]] == [d]  # nothing was started


@pytest.mark.parametrize("ref", ["r\ud800", "r\x00", "r" * 65])
async def test_unusable_ref_gets_an_error_without_it(live_server: LiveServer, ref: str):
    wire, _ = await Wire.signed_in(live_server.ws_url, live_server.token("t1"))
    await wire.send({"type": "ping", "ref": ref})
    error = await wire.expect("error")
    assert error["code"] == "bad_request"
    assert "ref" not in error
    await still_answers(wire)
    assert await connections(live_server) == 1


@pytest.mark.parametrize("token", ["x\ud800", "x\x00y"])
async def test_unusable_hello_token_is_unauthenticated(live_server: LiveServer, token: str):
    wire = await Wire.open(live_server.ws_url)
    await wire.send({"type": "hello", "token": token})
    assert (await wire.expect("error"))["code"] == "unauthenticated"
    code, _ = await wire.closed()
    assert code == 4501


@pytest.mark.parametrize("exp", [10**30, -(10**30), 2**63 - 1])
async def test_token_exp_out_of_range_is_unauthenticated(live_server: LiveServer, exp: int):
    token = signed({"sch": "hugo", "sub": "t1", "exp": exp})
    wire = await Wire.open(live_server.ws_url)
    await wire.send({"type": "hello", "token": token})
    error = await wire.expect("error")
    assert error["code"] == "unauthenticated"
    code, _ = await wire.closed()
    assert code == 4501
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as http:
        r = await http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthenticated"


async def test_a_connection_whose_writer_fails_is_closed_and_detached(
        live_server: LiveServer, monkeypatch: pytest.MonkeyPatch):
    """Whatever kills a connection's writer task (here a failure injected into the
    socket's send) closes that connection: its session is detached, its user offline."""
    teacher, _ = await Wire.signed_in(live_server.ws_url, live_server.token("t1"))
    pupil, _ = await Wire.signed_in(live_server.ws_url, live_server.token("e1"))
    await discussion(teacher, "e1")
    await pupil.expect("discussion")
    real_send = web._WebSocketTransport.send

    async def failing_send(self: Any, data: str | bytes) -> None:
        if isinstance(data, str) and '"ref":"boom"' in data:
            raise ValueError("injected failure")
        await real_send(self, data)

    monkeypatch.setattr(web._WebSocketTransport, "send", failing_send)
    await pupil.send({"type": "ping", "ref": "boom"})
    code, reason = await pupil.closed(timeout=15)
    assert (code, reason) == (1011, "internal error")
    offline = await teacher.expect("presence", user="e1", timeout=15)
    assert offline["online"] is False
    await wait_connections(live_server, 1)
    await still_answers(teacher)


# ---------------------------------------------------------------------- REST


def raw_json(body: Any) -> bytes:
    """A JSON body as a client could write it (json.dumps escapes surrogates)."""
    return json.dumps(body).encode()


async def put_raw(http: httpx.AsyncClient, method: str, path: str, content: bytes
                  ) -> httpx.Response:
    return await http.request(method, path, content=content,
                              headers={"Content-Type": "application/json"})


def rest(server: LiveServer, user: str) -> httpx.AsyncClient:
    token = server.token(user, ttl=timedelta(days=60))
    return httpx.AsyncClient(base_url=server.url, timeout=10,
                             headers={"Authorization": f"Bearer {token}"})


TEXT_POLL = [{"text": "Une remarque ?", "kind": "text"}]


def poll(title: str = "Sortie", client_id: str = "p-1",
         questions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"kind": "poll", "client_id": client_id, "title": title, "body": "Merci.",
            "to": {"users": ["e1"]}, "questions": questions or TEXT_POLL}


def refused(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code, r.text


@pytest.mark.parametrize("text", UNSTORABLE)
async def test_unstorable_poll_text_is_refused_before_anything_is_stored(
        live_server: LiveServer, text: str):
    async with rest(live_server, "t1") as teacher, rest(live_server, "e1") as pupil:
        for body in (poll(title=text), poll(client_id=text),
                     poll(questions=[{"text": text, "kind": "text"}]),
                     poll(questions=[{"text": "Q", "kind": "single",
                                      "choices": ["Oui", text]}]),
                     {**poll(), "to": {"users": [text]}},
                     {**poll(), text: 1}):
            refused(await put_raw(teacher, "POST", "/api/broadcasts", raw_json(body)),
                    400, "bad_request")
        r = await teacher.post("/api/broadcasts", json=poll())
        assert r.status_code == 201, r.text
        bid = r.json()["broadcast"]["id"]
        refused(await put_raw(pupil, "PUT", f"/api/broadcasts/{bid}/answers",
                              raw_json({"answers": [{"text": text}]})), 400, "bad_request")
        assert (await pupil.get("/api/broadcasts")).status_code == 200
        results = await teacher.get(f"/api/broadcasts/{bid}/results")
        assert results.status_code == 200, results.text
        assert results.json()["stats"]["answered"] == 0
        refused(await put_raw(teacher, "PATCH", "/api/me/preferences",
                              raw_json({"accepts": {text: True}})), 400, "bad_request")


async def test_unstorable_settings_and_parameters_are_refused(live_server: LiveServer):
    async with rest(live_server, "a1") as admin:
        refused(await put_raw(admin, "PATCH", "/api/settings",
                              raw_json({"timezone": "Europe/Paris\ud800"})), 400,
                "bad_request")
        refused(await admin.get("/api/contacts", params={"q": "mar\x00tin"}), 400,
                "bad_request")
        refused(await admin.get("/api/users", params={"q": "x" * 201}), 400, "bad_request")
        refused(await admin.get("/api/users/e1%00/preferences"), 400, "bad_request")
        assert (await admin.get("/api/users", params={"q": "martin"})).status_code == 200


@pytest.mark.parametrize("body", [
    b'{"answers": [{"choices": [' + b"9" * 4301 + b"]}]}",
    b'{"timezone": ' + b"1" * 5000 + b"}",
])
async def test_integers_python_cannot_read_are_bad_requests(
        live_server: LiveServer, body: bytes):
    async with rest(live_server, "a1") as admin:
        refused(await put_raw(admin, "PATCH", "/api/settings", body), 400, "bad_request")
        refused(await put_raw(admin, "PUT", "/api/broadcasts/1/answers", body), 400,
                "bad_request")


# ---------------------------------------------------------------------- stored values


@pytest.mark.databases("sqlite")  # writes the file itself: PostgreSQL refuses such text
async def test_a_stored_surrogate_never_breaks_a_read(live_server: LiveServer):
    """Values stored before the boundary refused them (here written straight into the
    database) are read back through REST and both WebSocket encodings with U+FFFD."""
    async with rest(live_server, "t1") as teacher:
        r = await teacher.post("/api/broadcasts", json=poll(
            questions=[{"text": "QUESTION", "kind": "text"}]))
        assert r.status_code == 201, r.text
        bid = r.json()["broadcast"]["id"]
    async with rest(live_server, "e1") as pupil:
        r = await pupil.put(f"/api/broadcasts/{bid}/answers",
                            json={"answers": [{"text": "ANSWER"}]})
        assert r.status_code == 200, r.text
    with sqlite3.connect(live_server.database) as db:
        # JSON columns keep the escape, which json.loads turns back into a lone surrogate.
        db.execute("UPDATE broadcast_recipients SET answers = "
                   "replace(answers, 'ANSWER', 'a\\ud800b') WHERE broadcast_id = ?", (bid,))
        db.execute("UPDATE broadcasts SET questions = "
                   "replace(questions, 'QUESTION', 'q\\udfffq') WHERE id = ?", (bid,))
    async with rest(live_server, "t1") as teacher:
        results = await teacher.get(f"/api/broadcasts/{bid}/results")
        assert results.status_code == 200, results.text
        assert "a\ufffdb" in results.text
    # A first connection catches up on the broadcast, then another in the other encoding.
    for encoding in ("json", "msgpack"):
        with sqlite3.connect(live_server.database) as db:
            db.execute("UPDATE broadcast_recipients SET received_at = NULL "
                       "WHERE broadcast_id = ?", (bid,))
        pupil_ws, _ = await Wire.signed_in(live_server.ws_url, live_server.token("e1"),
                                           encoding)
        caught_up = (await pupil_ws.expect("broadcast"))["broadcast"]
        assert caught_up["poll"]["questions"][0]["text"] == "q\ufffdq"
        assert caught_up["mine"]["answers"] == [{"text": "a\ufffdb"}]
        await still_answers(pupil_ws)
        await pupil_ws.close()
    async with rest(live_server, "e1") as pupil:
        listed = await pupil.get("/api/broadcasts")
        assert listed.status_code == 200, listed.text
        assert listed.json()["received"][0]["mine"]["answers"] == [{"text": "a\ufffdb"}]
