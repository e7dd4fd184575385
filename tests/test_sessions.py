"""Sign-in sessions over real sockets: the demo path opens one, refresh rotates its
tokens, a reused refresh token ends it, logout ends it, the directory's deactivation
ends it; an ended session's access token is refused at hello and at REST, and its live
connections are cut (access frame, then 4501), on this node and on another one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from server import events, session_routes
from server.clock import ManualClock
from server.config import Config
from server.directory import parse_directory
from server.errors import Refused
from server.hub import Hub
from server.limits import Limits
from server.model import SchoolId, UserId
from server.revocation import RECHECK, Revocations
from server.store import SignInSession, SqliteStore, open_store
from server.tokens import issue_token, read_token
from tests.cluster import Cluster
from tests.conftest import SCHOOL_DAY, SECRET, serve
from tests.redis_server import RedisServer
from tests.schools import school_doc
from tests.wire import Wire

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("close_wires")]

HUGO = SchoolId("hugo")


class Demo:
    """A server in demo mode (its sign-in picker opens sessions), and its clock."""

    def __init__(self, url: str, clock: ManualClock, database_url: str) -> None:
        self.url = url
        self.clock = clock
        self.database_url = database_url
        self.http = httpx.AsyncClient(base_url=url, timeout=10)

    @property
    def ws(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    async def sign_in(self, user: str) -> dict[str, Any]:
        r = await self.http.post("/api/demo/token?school=hugo", json={"user": user})
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def refresh(self, refresh_token: str) -> httpx.Response:
        return await self.http.post("/api/session/refresh", json={"refresh_token": refresh_token})


@pytest.fixture
async def demo(schools_url: str, limits: Limits) -> AsyncIterator[Demo]:
    clock = ManualClock(SCHOOL_DAY)
    config = Config(database_url=schools_url, jwt_secret=SECRET, demo=True, token_ttl=600)
    with serve(config, clock, limits) as url:
        d = Demo(url, clock, schools_url)
        async with d.http:
            yield d


async def _cut(wire: Wire) -> None:
    """The connection is told its session ended, then closed with 4501."""
    frame = await wire.expect("access")
    assert frame["code"] == "unauthenticated"
    assert "session" in frame["message"]
    code, _ = await wire.closed()
    assert code == 4501


async def _refused_at_hello(ws: str, token: str) -> None:
    wire = await Wire.open(ws)
    await wire.send({"type": "hello", "token": token, "protocol": 1})
    error = await wire.expect("error")
    assert error["code"] == "unauthenticated"
    code, _ = await wire.closed()
    assert code == 4501


async def test_the_demo_sign_in_opens_a_session_of_short_lived_tokens(demo: Demo):
    signed = await demo.sign_in("t1")
    identity = read_token(SECRET, signed["access_token"], now=demo.clock())
    assert identity.session_id == signed["session_id"]
    assert identity.expires_at - SCHOOL_DAY <= timedelta(seconds=600)
    assert signed["token"] == signed["access_token"]  # what older clients read
    assert signed["refresh_token"]
    assert signed["expires_at"].endswith("Z")


async def test_refresh_rotates_and_a_reuse_ends_the_session_and_cuts_it(demo: Demo):
    signed = await demo.sign_in("t1")
    first = await demo.refresh(signed["refresh_token"])
    assert first.status_code == 200, first.text
    pair = first.json()
    assert set(pair) >= {"access_token", "refresh_token", "expires_at", "refresh_expires_at"}
    assert pair["refresh_token"] != signed["refresh_token"]
    assert pair["session_id"] == signed["session_id"]
    # The new access token works, at hello and at REST.
    wire, _ = await Wire.signed_in(demo.ws, pair["access_token"])
    me = await demo.http.get("/api/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert me.status_code == 200
    # The first refresh token again: someone else holds a copy. The session ends.
    reused = await demo.refresh(signed["refresh_token"])
    assert reused.status_code == 401
    assert reused.json()["error"]["code"] == "unauthenticated"
    await _cut(wire)
    # Neither the newest refresh token nor any access token of the session works now.
    assert (await demo.refresh(pair["refresh_token"])).status_code == 401
    await _refused_at_hello(demo.ws, pair["access_token"])
    me = await demo.http.get("/api/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert me.status_code == 401
    assert (await demo.http.get("/readyz")).json()["refresh_reuse_detected"] == 1


async def test_logout_ends_the_session_and_cuts_its_connections_only(demo: Demo):
    mine, other = await demo.sign_in("t1"), await demo.sign_in("t1")  # two devices
    wire, _ = await Wire.signed_in(demo.ws, mine["access_token"])
    kept, _ = await Wire.signed_in(demo.ws, other["access_token"])
    out = await demo.http.post("/api/session/logout",
                         headers={"Authorization": f"Bearer {mine['access_token']}"})
    assert out.status_code == 200, out.text
    await _cut(wire)
    await _refused_at_hello(demo.ws, mine["access_token"])
    assert (await demo.refresh(mine["refresh_token"])).status_code == 401
    # The other device's session goes on.
    assert (await kept.request({"type": "ping"}))["type"] == "pong"
    assert (await demo.refresh(other["refresh_token"])).status_code == 200


async def test_refresh_refuses_what_is_not_a_refresh_token(demo: Demo):
    assert (await demo.refresh("not-a-token")).status_code == 401
    bad = await demo.http.post("/api/session/refresh", json={"token": "x"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "bad_request"
    # A token made by `preau token` has no session: nothing to log out.
    token = issue_token(SECRET, SchoolId("hugo"), UserId("t1"), ttl=timedelta(hours=1),
                        now=demo.clock())
    plain = await demo.http.post("/api/session/logout",
                                 headers={"Authorization": f"Bearer {token}"})
    assert plain.status_code == 400


async def test_deactivation_ends_the_sessions_and_refresh_is_refused(demo: Demo):
    signed = await demo.sign_in("t2")
    wire, _ = await Wire.signed_in(demo.ws, signed["access_token"])
    doc = school_doc()
    doc["users"] = [u for u in doc["users"] if u["id"] != "t2"]
    st = await open_store(demo.database_url)
    try:
        await st.import_directory(parse_directory(doc), actor="test", now=demo.clock())
        session = await st.get_session(SchoolId("hugo"), signed["session_id"])
    finally:
        await st.close()
    assert session.revoked_reason == "deactivated"
    frame = await wire.expect("access")  # cut by the node's tick, as before sessions
    assert frame["code"] == "unauthenticated"
    assert (await wire.closed())[0] == 4501
    refused = await demo.refresh(signed["refresh_token"])
    assert refused.status_code == 401
    await _refused_at_hello(demo.ws, signed["access_token"])


async def test_the_refresh_route_is_rate_limited_per_address(
        demo: Demo, monkeypatch: pytest.MonkeyPatch):
    # A smaller allowance than the real one (50 a second, 500 saved up), for a short test.
    monkeypatch.setattr(session_routes, "REFRESH_RATE", 1.0)
    monkeypatch.setattr(session_routes, "REFRESH_BURST", 20.0)
    answers = [(await demo.refresh(f"guess-{i}")).status_code for i in range(40)]
    assert answers.count(429) > 0
    assert set(answers) == {401, 429}


# ---------------------------------------------------------------------- two nodes


@pytest.fixture
def cluster(tmp_path: Path, shared_database: str) -> Iterator[Cluster]:
    with RedisServer() as redis:
        c = Cluster(tmp_path, redis, database_url=shared_database)
        c.extra_env = {"PREAU_DEMO": "1"}  # the sign-in picker, on both nodes
        try:
            c.prepare()
            c.start(0)
            c.start(1)
            yield c
        finally:
            c.close()


@pytest.mark.databases("sqlite", "postgresql")
async def test_a_reuse_on_one_node_cuts_the_connection_on_the_other(cluster: Cluster):
    async with httpx.AsyncClient(base_url=cluster.http(0), timeout=10) as http0, \
            httpx.AsyncClient(base_url=cluster.http(1), timeout=10) as http1:
        await _reuse_across_nodes(cluster, http0, http1)


async def _reuse_across_nodes(cluster: Cluster, http0: httpx.AsyncClient,
                              http1: httpx.AsyncClient) -> None:
    signed = (await http0.post("/api/demo/token?school=hugo", json={"user": "e1"})).json()
    wire, _ = await Wire.signed_in(cluster.ws(1), signed["access_token"])
    # Node 1 has read the session open (and trusts that for a while).
    me = await http1.get("/api/me",
                         headers={"Authorization": f"Bearer {signed['access_token']}"})
    assert me.status_code == 200
    pair = (await http1.post("/api/session/refresh",
                             json={"refresh_token": signed["refresh_token"]})).json()
    assert (await http0.post("/api/session/refresh",
                             json={"refresh_token": signed["refresh_token"]})).status_code == 401
    await _cut(wire)
    # Node 1 knows at once, from the event, without waiting for its cache to age.
    await _refused_at_hello(cluster.ws(1), pair["access_token"])
    me = await http1.get("/api/me",
                         headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert me.status_code == 401


@pytest.mark.databases("sqlite")
async def test_logout_on_one_node_cuts_the_connections_on_both(cluster: Cluster):
    async with httpx.AsyncClient(base_url=cluster.http(0), timeout=10) as http0:
        signed = (await http0.post("/api/demo/token?school=hugo", json={"user": "t1"})).json()
    here, _ = await Wire.signed_in(cluster.ws(0), signed["access_token"])
    there, _ = await Wire.signed_in(cluster.ws(1), signed["access_token"], encoding="msgpack")
    async with httpx.AsyncClient(base_url=cluster.http(0), timeout=10) as http0:
        out = await http0.post("/api/session/logout",
                         headers={"Authorization": f"Bearer {signed['access_token']}"})
    assert out.status_code == 200
    await asyncio.gather(_cut(here), _cut(there))


# ---------------------------------------------------------------------- refresh frame


async def test_a_refreshed_connection_follows_its_new_session(demo: Demo):
    """A connection refreshed with another session's token (the user signed in again)
    belongs to that session from then on: ending it cuts the connection."""
    old, new = await demo.sign_in("t1"), await demo.sign_in("t1")
    wire, _ = await Wire.signed_in(demo.ws, old["access_token"])
    reply = await wire.request({"type": "refresh", "token": new["access_token"]})
    assert reply["type"] == "refreshed"
    await demo.http.post("/api/session/logout",
                         headers={"Authorization": f"Bearer {old['access_token']}"})
    assert (await wire.request({"type": "ping"}))["type"] == "pong"  # not the old one's
    await demo.http.post("/api/session/logout",
                         headers={"Authorization": f"Bearer {new['access_token']}"})
    await _cut(wire)


async def test_a_refresh_frame_with_an_ended_sessions_token_ends_the_connection(demo: Demo):
    mine, ended = await demo.sign_in("t1"), await demo.sign_in("t1")
    await demo.http.post("/api/session/logout",
                         headers={"Authorization": f"Bearer {ended['access_token']}"})
    wire, _ = await Wire.signed_in(demo.ws, mine["access_token"])
    reply = await wire.request({"type": "refresh", "token": ended["access_token"]})
    assert (reply["type"], reply["code"]) == ("error", "unauthenticated")
    assert (await wire.closed())[0] == 4501


# ---------------------------------------------------------------------- the cache


class CountingStore(SqliteStore):
    """The SQLite store, counting the session reads the revocation check makes."""

    reads = 0

    async def get_session(self, school_id: SchoolId, session_id: str) -> SignInSession:
        self.reads += 1
        return await super().get_session(school_id, session_id)


async def test_the_revocation_check_reads_the_store_once_a_minute_at_most(tmp_path: Path):
    store = CountingStore(str(tmp_path / "cache.db"))
    await store.open()
    try:
        await store.import_directory(parse_directory(school_doc()), actor="t", now=SCHOOL_DAY)
        await store.create_session(HUGO, UserId("t1"), session_id="s1", provider="demo",
                                   provider_session=None, refresh_hash="h", now=SCHOOL_DAY,
                                   refresh_expires_at=SCHOOL_DAY + timedelta(days=1))
        published: list[events.Event] = []
        now = [0.0]
        hub = Hub()

        async def publish(school: SchoolId, event: events.Event) -> None:
            published.append(event)
            dispatch(event)

        revocations = Revocations(store, hub, publish=publish, monotonic=lambda: now[0])
        dispatch = events.Dispatch()
        revocations.register(dispatch)
        for _ in range(100):  # a hundred REST requests in a minute: one read
            await revocations.check(HUGO, "s1")
        assert store.reads == 1
        now[0] = RECHECK  # a minute on: read again
        await revocations.check(HUGO, "s1")
        assert store.reads == 2
        # Ended elsewhere, and said so: refused at once, without a read.
        await store.end_sessions(HUGO, now=SCHOOL_DAY, reason="logout", session_id="s1")
        await revocations.announce(HUGO, ["s1"], "logout")
        with pytest.raises(Refused):
            await revocations.check(HUGO, "s1")
        assert store.reads == 2
        assert published == [events.SessionsEnded(HUGO, ("s1",), "logout")]
        # A session this process never saw, ended without it being told: one read.
        with pytest.raises(Refused):
            await revocations.check(HUGO, "unknown")
        assert store.reads == 3
    finally:
        await store.close()


async def test_an_administrator_ends_every_session_of_a_user(demo: Demo):
    phone, laptop = await demo.sign_in("t1"), await demo.sign_in("t1")
    wires = [(await Wire.signed_in(demo.ws, c["access_token"]))[0] for c in (phone, laptop)]
    admin, other = await demo.sign_in("a1"), await demo.sign_in("t2")
    refused = await demo.http.delete(
        "/api/users/t1/sessions", headers={"Authorization": f"Bearer {other['access_token']}"})
    assert refused.status_code == 403
    ended = await demo.http.delete(
        "/api/users/t1/sessions", headers={"Authorization": f"Bearer {admin['access_token']}"})
    assert (ended.status_code, ended.json()) == (200, {"ended": 2})
    await asyncio.gather(*(_cut(w) for w in wires))
    assert (await demo.refresh(laptop["refresh_token"])).status_code == 401
    assert (await demo.refresh(admin["refresh_token"])).status_code == 200  # not theirs


@pytest.mark.databases("sqlite")
async def test_a_logout_missed_while_redis_was_away_cuts_when_it_comes_back(cluster: Cluster):
    async with httpx.AsyncClient(base_url=cluster.http(0), timeout=10) as http0:
        signed = (await http0.post("/api/demo/token?school=hugo", json={"user": "t1"})).json()
        there, _ = await Wire.signed_in(cluster.ws(1), signed["access_token"])
        cluster.redis.stop()
        # Node 0 ends the session; its event to node 1 is lost with Redis.
        out = await http0.post("/api/session/logout",
                               headers={"Authorization": f"Bearer {signed['access_token']}"})
        assert out.status_code == 200
    assert (await there.request({"type": "ping"}))["type"] == "pong"  # not told yet
    cluster.redis.start()
    # Node 1 resubscribes, reads its connections' sessions again, and cuts this one.
    frame = await there.expect("access", timeout=20)
    assert frame["code"] == "unauthenticated"
    assert (await there.closed())[0] == 4501
