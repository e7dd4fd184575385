"""A live connection's token: warned before it expires, refreshed without reconnecting,
closed 4401 when it expires unrefreshed (real uvicorn, real WebSockets)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from server.clock import ManualClock
from server.config import Config
from server.directory import parse_directory
from server.limits import Limits
from server.store import open_store
from tests.conftest import SCHOOL_DAY, SECRET, LiveServer, serve
from tests.schools import school_doc
from tests.wire import Wire

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("close_wires")]

TTL = timedelta(minutes=10)


async def conversation(live: LiveServer) -> tuple[Wire, Wire, int]:
    """t1 and e1 in one discussion; e1's token lasts :data:`TTL`."""
    teacher, _ = await Wire.signed_in(live.ws_url, live.token("t1", ttl=timedelta(days=1)))
    e1, _ = await Wire.signed_in(live.ws_url, live.token("e1", ttl=TTL))
    started = await teacher.request({"type": "start", "subject": "S", "to": ["e1"],
                                     "body": "m1", "client_id": "c1"})
    d = started["discussion"]["id"]
    await e1.expect("message", discussion=d, seq=1)
    return teacher, e1, d


@pytest.mark.databases("sqlite", "postgresql")
async def test_a_refresh_keeps_the_connection_and_loses_nothing(live_server: LiveServer):
    teacher, e1, d = await conversation(live_server)
    expires = SCHOOL_DAY + TTL
    live_server.clock.set(expires - timedelta(seconds=59))
    warning = await e1.expect("token_expiring")
    assert warning["expires_at"] == "2026-11-24T09:10:00Z"
    fresh = live_server.token("e1", ttl=TTL)  # from the host or /api/session, say

    async def talk() -> None:
        for i in range(2, 12):
            await teacher.request({"type": "send", "discussion": d, "body": f"m{i}",
                                   "client_id": f"c{i}"})

    refreshed, _ = await asyncio.gather(e1.request({"type": "refresh", "token": fresh}), talk())
    assert refreshed == {"type": "refreshed", "ref": refreshed["ref"],
                         "expires_at": "2026-11-24T09:19:01Z"}
    await e1.expect("message", discussion=d, seq=11)
    # Past the old expiry: still open, still subscribed, nothing replayed.
    live_server.clock.set(expires + timedelta(minutes=1))
    await asyncio.sleep(0.2)  # several ticks
    await teacher.request({"type": "send", "discussion": d, "body": "m12", "client_id": "c12"})
    await e1.expect("message", discussion=d, seq=12)
    assert e1.messages(d) == list(range(1, 13))
    assert (await e1.request({"type": "ping"}))["type"] == "pong"
    kinds = [f["type"] for f in e1.frames]
    assert (kinds.count("welcome"), kinds.count("error"), kinds.count("token_expiring")) \
        == (1, 0, 1)


async def test_an_unrefreshed_token_closes_4401(live_server: LiveServer):
    _, e1, _ = await conversation(live_server)
    live_server.clock.set(SCHOOL_DAY + TTL)
    error = await e1.expect("error")
    assert error["code"] == "token_expired"
    code, _ = await e1.closed()
    assert code == 4401


async def test_a_bad_refresh_is_refused_and_the_connection_goes_on(live_server: LiveServer):
    _, e1, _ = await conversation(live_server)
    for token in ("garbage", live_server.token("e1", ttl=timedelta(seconds=-1))):
        reply = await e1.request({"type": "refresh", "token": token})
        assert (reply["type"], reply["code"]) == ("error", "unauthenticated")
    reply = await e1.request({"type": "refresh"})
    assert reply["code"] == "bad_request"
    assert (await e1.request({"type": "ping"}))["type"] == "pong"
    # ... until the current token expires.
    live_server.clock.set(SCHOOL_DAY + TTL)
    assert (await e1.closed())[0] == 4401


async def test_a_refresh_with_another_users_token_closes_4501(live_server: LiveServer):
    _, e1, _ = await conversation(live_server)
    for user, school in (("e2", "hugo"), ("t1", "zola")):
        wire, _ = await Wire.signed_in(live_server.ws_url, live_server.token("e1"))
        reply = await wire.request({"type": "refresh",
                                    "token": live_server.token(user, school=school)})
        assert (reply["type"], reply["code"]) == ("error", "unauthenticated")
        assert "autre utilisateur" in reply["message"]
        assert reply["params"] == {"reason": "another_user"}
        assert (await wire.closed())[0] == 4501
    assert (await e1.request({"type": "ping"}))["type"] == "pong"  # others unaffected


@pytest.fixture
def tickless(tmp_path: Path) -> Iterator[LiveServer]:
    """A server whose tick never runs: only a refresh can notice a directory change."""
    url = f"sqlite:///{tmp_path / 'tickless.db'}"

    async def setup() -> None:
        st = await open_store(url)
        try:
            await st.import_directory(parse_directory(school_doc()), actor="test",
                                      now=SCHOOL_DAY)
        finally:
            await st.close()

    asyncio.run(setup())
    clock = ManualClock(SCHOOL_DAY)
    with serve(Config(database_url=url, jwt_secret=SECRET), clock,
               Limits(tick_seconds=3600, hello_timeout=1.0)) as base:
        yield LiveServer(base, clock, url)


async def test_a_refresh_rechecks_the_directory(tickless: LiveServer):
    s1, _ = await Wire.signed_in(tickless.ws_url, tickless.token("s1"))
    doc = school_doc()
    doc["users"] = [u for u in doc["users"] if u["id"] != "s1"]  # s1 left the school
    st = await open_store(tickless.database_url)
    try:
        await st.import_directory(parse_directory(doc), actor="test", now=SCHOOL_DAY)
    finally:
        await st.close()
    reply = await s1.request({"type": "refresh", "token": tickless.token("s1")})
    assert (reply["type"], reply["code"]) == ("error", "unauthenticated")
    assert (await s1.closed())[0] == 4501
