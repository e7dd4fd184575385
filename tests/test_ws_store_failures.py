"""A node whose database fails, end to end: real uvicorn, real WebSockets, on SQLite and
on PostgreSQL.

Clients get a retryable ``unavailable`` (WebSocket) or 503 (REST), never a 1011 close or
a 500; nothing is acknowledged unless stored; reads go on while a write waits; /readyz
reports failing writes; a connection whose attach failed leaves nothing behind.

How the database fails: on SQLite, another connection holds the file's write lock (as
another process would); on PostgreSQL, triggers make every write fail with a
serialization failure or a deadlock (tests/contracts/store_faults.py), or a test's
session holds a lock the writes wait for. PostgreSQL alone can also go away under a
live server and come back: a private server (tests/postgres_private.py) is stopped
while clients are connected and started again, and a pool of one connection is left
with none free.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest

from server.clock import ManualClock
from server.config import Config
from server.limits import Limits
from tests.conftest import SCHOOL_DAY, SECRET, LiveServer, _import_schools, serve
from tests.contracts.store_faults import WRITTEN_TABLES, PostgresFaults, waiting_on_locks
from tests.postgres_private import PrivatePostgres
from tests.test_store_failures import write_lock_held
from tests.wire import Wire

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("close_wires"),
              pytest.mark.databases("sqlite", "postgresql")]

WAIT = 10.0  # bound on a wait for the database to come back; reached only when it fails


@pytest.fixture
def impatient_server(database: str, schools_url: str, limits: Limits) -> Iterator[LiveServer]:
    """A live server whose writes give up at once while :func:`writes_refused` (SQLite:
    after 200 ms waiting for another's lock)."""
    url = f"{schools_url}?busy_timeout_ms=200" if database == "sqlite" else schools_url
    clock = ManualClock(SCHOOL_DAY)
    config = Config(database_url=url, jwt_secret=SECRET)
    with serve(config, clock, limits) as served:
        yield LiveServer(served, clock, schools_url)


@asynccontextmanager
async def writes_refused(server: LiveServer, database: str) -> AsyncIterator[str]:
    """Every write of ``server``'s store fails, retryably, for the block; yields a word
    of the cause /readyz then reports."""
    if database == "sqlite":
        with write_lock_held(str(server.database)):
            yield "locked"
    else:
        async with PostgresFaults(server.database_url).busy():
            yield "raised by a test"


@asynccontextmanager
async def writes_wait(server: LiveServer, database: str) -> AsyncIterator[None]:
    """Writes wait, for the block, for a lock held elsewhere; reads need none. PostgreSQL:
    EXCLUSIVE mode lets plain reads through and stops every write."""
    if database == "sqlite":
        with write_lock_held(str(server.database)):
            yield
        return
    conn = await asyncpg.connect(server.database_url, timeout=10)
    try:
        async with conn.transaction():
            await conn.execute(f"LOCK TABLE {', '.join(WRITTEN_TABLES)} IN EXCLUSIVE MODE")
            yield
    finally:
        await conn.close()


async def readyz(server: LiveServer) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(f"{server.url}/readyz")
    return r.status_code, r.json()


async def settled(server: LiveServer, counts: tuple[int, int]) -> bool:
    """Whether /readyz's (connections, discussions) reach ``counts`` within 5 s (a closed
    connection is detached just after its close)."""
    for _ in range(100):
        _, report = await readyz(server)
        if (report["connections"], report["discussions"]) == counts:
            return True
        await asyncio.sleep(0.05)
    return False


async def started(wire: Wire, to: list[str], client_id: str = "s1") -> int:
    r = await wire.request({"type": "start", "subject": "Sortie", "to": to, "body": "Bonjour",
                            "client_id": client_id})
    assert r["type"] == "started", r
    return int(r["discussion"]["id"])


async def test_writes_that_fail_are_unavailable_then_succeed_on_retry(
        impatient_server: LiveServer, database: str):
    server = impatient_server
    teacher, _ = await Wire.signed_in(server.ws_url, server.token("t1"))
    d = await started(teacher, ["e1"])
    send = {"type": "send", "discussion": d, "body": "Demain", "client_id": "m1"}
    async with writes_refused(server, database) as cause:
        refused = await teacher.request(send)
        assert (refused["type"], refused["code"]) == ("error", "unavailable")
        refused = await teacher.request({"type": "start", "subject": "x", "to": ["e2"],
                                         "body": "b", "client_id": "s2"})
        assert (refused["type"], refused["code"]) == ("error", "unavailable")
        async with httpx.AsyncClient(base_url=server.url, timeout=10, headers={
                "Authorization": f"Bearer {server.token('a1')}"}) as admin:
            r = await admin.patch("/api/settings", json={"hours": {"outside": "defer"}})
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "unavailable"
            assert "Retry-After" in r.headers
        status, report = await readyz(server)
        assert status == 503
        assert report["status"] == "unavailable"
        assert "writes failing" in report["store"]
        assert cause in report["store"]
        # The connection is still served.
        assert (await teacher.request({"type": "ping"}))["type"] == "pong"
    ack = await teacher.request(send)  # the same client_id: stored once, now
    assert (ack["type"], ack["seq"], ack["duplicate"]) == ("ack", 2, False)
    history = await teacher.request({"type": "history", "discussion": d})
    assert [m["body"] for m in history["messages"]] == ["Demain", "Bonjour"]
    status, report = await readyz(server)
    assert (status, report["store"]) == (200, "ok")


async def test_reads_are_answered_while_a_write_waits_for_the_lock(live_server: LiveServer,
                                                                   database: str):
    teacher, _ = await Wire.signed_in(live_server.ws_url, live_server.token("t1"))
    d = await started(teacher, ["e1"])
    student, _ = await Wire.signed_in(live_server.ws_url, live_server.token("e1"))
    async with writes_wait(live_server, database):
        # The student's receipt is a write: it waits for the lock (up to 10 s here).
        await student.send({"type": "read", "discussion": d, "seq": 1, "ref": "r1"})
        if database == "postgresql":  # PostgreSQL says when it waits, and for what
            await waiting_on_locks(live_server.database_url, 1, doing="read_seq")
        else:
            await asyncio.sleep(0.3)  # let it reach the lock; without it this proves nothing
        history = await teacher.request({"type": "history", "discussion": d})
        assert [m["body"] for m in history["messages"]] == ["Bonjour"]
        listed = await teacher.request({"type": "list"})
        assert [i["id"] for i in listed["items"]] == [d]
        assert not [f for f in student.frames if f.get("ref") == "r1"]  # still waiting
    assert (await student.expect("ok", ref="r1", timeout=10))["type"] == "ok"


async def test_a_failed_attach_leaves_nothing_behind(impatient_server: LiveServer,
                                                     database: str):
    server = impatient_server
    # Something the student must be handed at connection (a write: marked received), and a
    # discussion the attach joins before that.
    async with httpx.AsyncClient(base_url=server.url, timeout=10, headers={
            "Authorization": f"Bearer {server.token('s1')}"}) as staff:
        r = await staff.post("/api/broadcasts", json={
            "kind": "information", "client_id": "i-1", "title": "Réunion",
            "body": "Jeudi 18 h.", "to": {"users": ["e1"]}})
        assert r.status_code == 201, r.text
    teacher, _ = await Wire.signed_in(server.ws_url, server.token("t1"))
    d = await started(teacher, ["e1"])
    await teacher.close()
    assert await settled(server, (0, 0))  # nobody connected, no discussion followed
    async with writes_refused(server, database):
        student = await Wire.open(server.ws_url)
        await student.send({"type": "hello", "token": server.token("e1"), "resume": []})
        error = await student.expect("error")
        assert error["code"] == "unavailable"
        code, _ = await student.closed()
        assert code == 4013
        assert not [f for f in student.frames if f.get("type") == "welcome"]
        _, report = await readyz(server)
        assert (report["connections"], report["discussions"]) == (0, 0)
    # Nothing was half done: the next attempt gets everything, and live traffic flows.
    teacher, _ = await Wire.signed_in(server.ws_url, server.token("t1"))
    student, welcome = await Wire.signed_in(server.ws_url, server.token("e1"), resume=[])
    assert welcome["resume"]["complete"] is True
    await student.expect("message", discussion=d, seq=1)  # replayed, then the broadcast
    assert (await student.expect("broadcast"))["broadcast"]["title"] == "Réunion"
    ack = await teacher.request({"type": "send", "discussion": d, "body": "Re",
                                 "client_id": "m2"})
    assert ack["type"] == "ack"
    assert (await student.expect("message", discussion=d, seq=2))["body"] == "Re"
    _, report = await readyz(server)
    assert (report["connections"], report["discussions"]) == (2, 1)


# ------------------------------------------------------- PostgreSQL gone and back

QUICK = Limits(tick_seconds=0.05, hello_timeout=1.0, rate_per_second=100_000,
               rate_burst=100_000)


@pytest.fixture
def stoppable_server(private_postgres: PrivatePostgres,
                     limits: Limits) -> Iterator[tuple[LiveServer, PrivatePostgres]]:
    """A live server on a private PostgreSQL (both schools imported) that the test may
    stop and start; a call waits at most 2 s for one of the pool's connections."""
    _import_schools(private_postgres.url)
    clock = ManualClock(SCHOOL_DAY)
    config = Config(database_url=f"{private_postgres.url}?pool_max=4&acquire_timeout=2",
                    jwt_secret=SECRET)
    with serve(config, clock, limits) as url:
        yield LiveServer(url, clock, private_postgres.url), private_postgres


async def until_stored(wire: Wire, frame: dict[str, Any]) -> dict[str, Any]:
    """Send ``frame`` until it is stored (the database is coming back); every refusal
    meanwhile must be ``unavailable``. The answer that stored it."""
    for _ in range(int(WAIT / 0.1)):
        reply = await wire.request(frame, timeout=WAIT)
        if reply["type"] != "error":
            return reply
        assert reply["code"] == "unavailable", reply
        await asyncio.sleep(0.1)
    pytest.fail(f"{frame} still unavailable after {WAIT} s")


async def told_to_come_back(server: LiveServer, user: str) -> None:
    """A connection opened now is refused ``unavailable`` and closed 4013 (come back
    shortly), before any welcome."""
    late = await Wire.open(server.ws_url)
    await late.send({"type": "hello", "token": server.token(user), "resume": []})
    assert (await late.expect("error"))["code"] == "unavailable"
    assert (await late.closed())[0] == 4013
    assert not [f for f in late.frames if f.get("type") == "welcome"]


async def test_postgresql_stopped_under_connected_clients(
        stoppable_server: tuple[LiveServer, PrivatePostgres]):
    server, postgres = stoppable_server
    teacher, _ = await Wire.signed_in(server.ws_url, server.token("t1"))
    pupil, _ = await Wire.signed_in(server.ws_url, server.token("e1"), resume=[])
    d = await started(teacher, ["e1"])
    for wire in (teacher, pupil):  # both follow it (else they would be told to reconnect)
        await wire.expect("message", discussion=d, seq=1)
    await asyncio.to_thread(postgres.stop)

    send = {"type": "send", "discussion": d, "body": "Demain", "client_id": "m1"}
    start = {"type": "start", "subject": "Cantine", "to": ["e2"], "body": "Menu",
             "client_id": "s2"}
    for frame in (send, start):
        refused = await teacher.request(frame, timeout=WAIT)
        assert (refused["type"], refused["code"]) == ("error", "unavailable"), refused
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT, headers={
            "Authorization": f"Bearer {server.token('a1')}"}) as admin:
        r = await admin.patch("/api/settings", json={"hours": {"outside": "defer"}})
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "unavailable"
        assert "Retry-After" in r.headers
    status, report = await readyz(server)
    assert (status, report["status"]) == (503, "unavailable")
    assert report["store"] != "ok"
    await told_to_come_back(server, "e2")
    # The connections are still served.
    for wire in (teacher, pupil):
        assert (await wire.request({"type": "ping"}))["type"] == "pong"

    await asyncio.to_thread(postgres.start)
    # The same clients retry, and each retry is stored once.
    ack = await until_stored(teacher, send)
    assert (ack["type"], ack["seq"], ack["duplicate"]) == ("ack", 2, False)
    again = await teacher.request(send)
    assert (again["seq"], again["duplicate"]) == (2, True)
    new = await until_stored(teacher, start)
    assert (new["type"], new["ack"]["duplicate"]) == ("started", False)
    assert (await pupil.expect("message", discussion=d, seq=2))["body"] == "Demain"
    # The one refused while it was down comes back and finds what was started for her.
    e2, welcome = await Wire.signed_in(server.ws_url, server.token("e2"), resume=[])
    assert welcome["resume"]["complete"] is True
    assert (await e2.expect("message", discussion=new["discussion"]["id"], seq=1))[
        "body"] == "Menu"
    await pupil.request({"type": "ping"})
    assert pupil.messages(d) == [1, 2]  # no gap, no second copy
    status, report = await readyz(server)
    assert (status, report["store"]) == (200, "ok")


@pytest.mark.parametrize("limits", [QUICK], ids=["no-rate-limit"])
async def test_sends_in_flight_when_postgresql_stops(
        stoppable_server: tuple[LiveServer, PrivatePostgres]):
    """A teacher sends without waiting for the acks while the server stops: each send is
    acknowledged and then stored, or refused ``unavailable``; once it is back, retrying
    the refused ones stores each exactly once, and the pupil's stream is every message
    once, in order, without a gap."""
    server, postgres = stoppable_server
    teacher, _ = await Wire.signed_in(server.ws_url, server.token("t1"))
    pupil, _ = await Wire.signed_in(server.ws_url, server.token("e1"), resume=[])
    d = await started(teacher, ["e1"])
    for wire in (teacher, pupil):  # both follow it (else they would be told to reconnect)
        await wire.expect("message", discussion=d, seq=1)
    sent: list[str] = []
    stopped = asyncio.Event()

    async def sending() -> None:  # from 0.2 s before the stop to a little after it
        after = 0
        while after < 10:
            client_id = f"c{len(sent)}"
            await teacher.send({"type": "send", "discussion": d, "body": client_id,
                                "client_id": client_id, "ref": client_id})
            sent.append(client_id)
            after += stopped.is_set()
            await asyncio.sleep(0.002)

    sender = asyncio.ensure_future(sending())
    await asyncio.sleep(0.2)
    await asyncio.to_thread(postgres.stop)
    stopped.set()
    await sender
    told: dict[str, int | None] = {}
    while len(told) < len(sent):
        reply = await teacher.recv(timeout=WAIT)
        if reply.get("ref") in sent:
            if reply["type"] == "ack":
                told[reply["ref"]] = reply["seq"]
            else:
                assert (reply["type"], reply["code"]) == ("error", "unavailable"), reply
                told[reply["ref"]] = None
    refused = [c for c, seq in told.items() if seq is None]
    assert refused  # those sent once it was down, at least

    await asyncio.to_thread(postgres.start)
    for client_id in refused:
        ack = await until_stored(teacher, {"type": "send", "discussion": d,
                                           "body": client_id, "client_id": client_id})
        told[client_id] = ack["seq"]
    last = len(sent) + 1
    await pupil.expect("message", discussion=d, seq=last, timeout=WAIT)
    await pupil.request({"type": "ping"})
    assert pupil.messages(d) == list(range(1, last + 1))  # each once, in order, no gap
    streamed = {f["client_id"]: f["seq"] for f in pupil.frames
                if f.get("type") == "message" and f["seq"] > 1}
    assert streamed == told  # what was acknowledged is what was stored, under that seq


@pytest.fixture
def one_connection_server(postgres_url: str, limits: Limits) -> Iterator[LiveServer]:
    """A live server whose pool has a single connection, waited for at most 0.3 s."""
    _import_schools(postgres_url)
    clock = ManualClock(SCHOOL_DAY)
    config = Config(database_url=f"{postgres_url}?pool_min=1&pool_max=1&acquire_timeout=0.3",
                    jwt_secret=SECRET)
    with serve(config, clock, limits) as url:
        yield LiveServer(url, clock, postgres_url)


async def test_no_free_database_connection_is_unavailable_then_stored_on_retry(
        one_connection_server: LiveServer, caplog: pytest.LogCaptureFixture):
    """The pool's one connection is held by a read waiting for a lock a test's session
    holds on ``schools`` (/readyz reads it): writes find no free connection in time and
    are refused ``unavailable`` (503 over REST); the lock gone, a retry is stored once."""
    server = one_connection_server
    postgres_url = server.database_url
    teacher, _ = await Wire.signed_in(server.ws_url, server.token("t1"))
    pupil, _ = await Wire.signed_in(server.ws_url, server.token("e1"), resume=[])
    d = await started(teacher, ["e1"])
    for wire in (teacher, pupil):
        await wire.expect("message", discussion=d, seq=1)
    send = {"type": "send", "discussion": d, "body": "Demain", "client_id": "m1"}
    locker = await asyncpg.connect(postgres_url, timeout=10)
    try:
        async with locker.transaction():
            await locker.execute("LOCK TABLE schools IN ACCESS EXCLUSIVE MODE")
            holding = asyncio.ensure_future(readyz(server))
            await waiting_on_locks(postgres_url, 1, doing="schools")
            refused = await teacher.request(send)
            assert (refused["type"], refused["code"]) == ("error", "unavailable")
            async with httpx.AsyncClient(base_url=server.url, timeout=WAIT, headers={
                    "Authorization": f"Bearer {server.token('a1')}"}) as admin:
                r = await admin.patch("/api/settings",
                                      json={"hours": {"outside": "defer"}})
                assert r.status_code == 503, r.text
                assert r.json()["error"]["code"] == "unavailable"
                assert "Retry-After" in r.headers
            assert (await teacher.request({"type": "ping"}))["type"] == "pong"
    finally:
        await locker.close()
    # Refused for the reason this test gives, not another.
    why = [r.getMessage() for r in caplog.records if "store unavailable" in r.getMessage()]
    assert why
    assert all("waiting for a database connection" in w for w in why), why
    await holding
    ack = await until_stored(teacher, send)
    assert (ack["type"], ack["seq"], ack["duplicate"]) == ("ack", 2, False)
    assert (await pupil.expect("message", discussion=d, seq=2))["body"] == "Demain"
    await pupil.request({"type": "ping"})
    assert pupil.messages(d) == [1, 2]
