"""Two server processes, one private Redis, one database: they behave as one.

Every test runs twice: on a SQLite file, and on a PostgreSQL database (the nodes as
separate machines would run them), with the same assertions."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.model import DiscussionId, SchoolId
from tests.cluster import Cluster
from tests.redis_server import RedisServer
from tests.test_ws import start_on_both
from tests.wire import Wire

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("close_wires"),
              pytest.mark.databases("sqlite", "postgresql")]


@pytest.fixture
def cluster(tmp_path: Path, shared_database: str) -> Iterator[Cluster]:
    with RedisServer() as redis:
        c = Cluster(tmp_path, redis, database_url=shared_database)
        try:
            c.prepare()
            c.start(0)
            c.start(1)
            yield c
        finally:
            c.close()


async def transcript(c: Cluster, d: int) -> list[tuple[int, str]]:
    async with c.store() as st:
        rows = await st.messages(SchoolId("hugo"), DiscussionId(d), limit=10_000)
    return sorted((m.seq, m.body) for m in rows)


async def test_users_on_different_nodes_converse(cluster: Cluster):
    teacher, _ = await Wire.signed_in(cluster.ws(0), cluster.token("t1"))
    e1, _ = await Wire.signed_in(cluster.ws(1), cluster.token("e1"), encoding="msgpack")
    started = await teacher.request({"type": "start", "subject": "Sortie", "to": ["e1", "e2"],
                                     "body": "Bonjour", "client_id": "c1"})
    d = started["discussion"]["id"]
    await e1.expect("discussion")
    assert (await e1.expect("message", discussion=d, seq=1))["body"] == "Bonjour"
    await e1.request({"type": "send", "discussion": d, "body": "Merci", "client_id": "x"})
    assert (await teacher.expect("message", discussion=d, seq=2))["body"] == "Merci"
    e2, welcome = await Wire.signed_in(cluster.ws(1), cluster.token("e2"), resume=[[d, 0]])
    assert welcome["resume"]["replayed"] == 2
    assert [(await e2.expect("message", discussion=d))["seq"] for _ in range(2)] == [1, 2]
    for w in (teacher, e1, e2):
        await w.close()


async def test_the_same_start_on_two_nodes_at_once_is_one_discussion(cluster: Cluster):
    """A start retried on another node while the first is still under way: both nodes
    find no earlier start; the database keeps one, the other node answers as a retry."""
    here, _ = await Wire.signed_in(cluster.ws(0), cluster.token("t1"))
    there, _ = await Wire.signed_in(cluster.ws(1), cluster.token("t1"), encoding="msgpack")
    started = await start_on_both(here, there, [f"c{i}" for i in range(4)])
    for cid, d in started.items():  # each with its first message, once
        assert await transcript(cluster, d) == [(1, f"Bonjour {cid}")]
    for w in (here, there):
        await w.close()


async def test_profile_switched_off_disconnects_on_both_nodes(cluster: Cluster):
    students = [await Wire.signed_in(cluster.ws(i), cluster.token(u)) for i, u in
                ((0, "e1"), (1, "e2"))]
    teacher, _ = await Wire.signed_in(cluster.ws(1), cluster.token("t1"))
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.patch(f"{cluster.http(0)}/api/settings",
                             json={"profiles": {"students": {"discussions_enabled": False}}},
                             headers={"Authorization": f"Bearer {cluster.token('a1')}"})
    assert r.status_code == 200, r.text
    for wire, _ in students:
        access = await wire.expect("access")
        assert access["code"] == "profile_disabled"
        code, _ = await wire.closed()
        assert code == 4503
    assert (await teacher.request({"type": "ping"}))["type"] == "pong"  # others stay
    again = await Wire.open(cluster.ws(1))
    await again.send({"type": "hello", "token": cluster.token("e1")})
    assert (await again.expect("error"))["code"] == "profile_disabled"
    assert (await again.closed())[0] == 4503
    await teacher.close()


async def test_kill_9_a_node_mid_conversation(cluster: Cluster):
    teacher, _ = await Wire.signed_in(cluster.ws(1), cluster.token("t1"))
    started = await teacher.request({"type": "start", "subject": "S", "to": ["e1", "e2"],
                                     "body": "m1", "client_id": "c1"})
    d = started["discussion"]["id"]
    e1, _ = await Wire.signed_in(cluster.ws(0), cluster.token("e1"), resume=[[d, 0]])
    e2, _ = await Wire.signed_in(cluster.ws(1), cluster.token("e2"), resume=[[d, 0]])

    async def talk(start: int, stop: int) -> None:
        for i in range(start, stop):
            await teacher.request({"type": "send", "discussion": d, "body": f"m{i}",
                                   "client_id": f"c{i}"})

    await talk(2, 30)
    await e1.expect("message", discussion=d, seq=29)
    cluster.kill(0)  # e1's node dies without a goodbye
    await talk(30, 60)
    seen = e1.messages(d)
    e1b, welcome = await Wire.signed_in(cluster.ws(1), cluster.token("e1"),
                                        resume=[[d, max(seen)]])
    assert welcome["resume"]["complete"] is True
    await talk(60, 80)
    await e1b.expect("message", discussion=d, seq=79)
    await e2.expect("message", discussion=d, seq=79)
    expected = [seq for seq, _ in await transcript(cluster, d)]
    assert seen + e1b.messages(d) == expected  # no gap, no duplicate
    assert e2.messages(d) == expected
    for w in (teacher, e1b, e2):
        await w.close()


async def test_redis_restart_mid_run(cluster: Cluster):
    teacher, _ = await Wire.signed_in(cluster.ws(0), cluster.token("t1"))
    started = await teacher.request({"type": "start", "subject": "S", "to": ["e1"],
                                     "body": "m1", "client_id": "c1"})
    d = started["discussion"]["id"]
    e1, _ = await Wire.signed_in(cluster.ws(1), cluster.token("e1"), resume=[[d, 0]])
    await e1.expect("message", discussion=d, seq=1)
    cluster.redis.stop()
    for i in range(2, 12):  # node 0 keeps serving its own client; the store has it all
        ack = await teacher.request({"type": "send", "discussion": d, "body": f"m{i}",
                                     "client_id": f"c{i}"})
        assert ack["type"] == "ack", ack
    cluster.redis.start()
    for i in range(12, 20):
        await teacher.request({"type": "send", "discussion": d, "body": f"m{i}",
                               "client_id": f"c{i}"})
        await asyncio.sleep(0.05)
    await e1.expect("message", discussion=d, seq=19, timeout=20)
    expected = [seq for seq, _ in await transcript(cluster, d)]
    assert e1.messages(d) == expected
    async with httpx.AsyncClient(timeout=5) as http:
        for i in (0, 1):
            assert (await http.get(f"{cluster.http(i)}/readyz")).status_code == 200
    # The INFO lines operating.md promises, from `preau serve` as operators run it.
    reconnected = re.compile(r"INFO server\.broker\.redis: reconnected to Redis at \S+; "
                             r"\d+ channels subscribed again")
    for _ in range(100):  # node 1 delivered after the restart: it has reconnected
        log = (cluster.tmp / "node1.log").read_text(errors="replace")
        if reconnected.search(log):
            break
        await asyncio.sleep(0.1)
    assert reconnected.search(log), log
    assert "WARNING server.broker.redis: lost the connection to Redis" in log
    await teacher.close()
    await e1.close()


async def test_sigterm_sends_clients_elsewhere(cluster: Cluster):
    teacher, _ = await Wire.signed_in(cluster.ws(1), cluster.token("t1"))
    started = await teacher.request({"type": "start", "subject": "S", "to": ["e1"],
                                     "body": "m1", "client_id": "c1"})
    d = started["discussion"]["id"]
    e1, _ = await Wire.signed_in(cluster.ws(0), cluster.token("e1"), resume=[[d, 0]])
    await e1.expect("message", discussion=d, seq=1)
    ack = await e1.request({"type": "send", "discussion": d, "body": "avant",
                            "client_id": "e1-1"})
    assert ack["seq"] == 2
    stopping = asyncio.get_running_loop().run_in_executor(None, cluster.stop, 0)
    assert (await e1.expect("reconnect"))["reason"]
    code, _ = await e1.closed()
    assert code == 4000
    await stopping
    back, welcome = await Wire.signed_in(cluster.ws(1), cluster.token("e1"), resume=[[d, 2]])
    assert welcome["resume"]["complete"] is True
    await teacher.request({"type": "send", "discussion": d, "body": "après",
                           "client_id": "c3"})
    assert (await back.expect("message", discussion=d, seq=3))["body"] == "après"
    assert [seq for seq, _ in await transcript(cluster, d)] == [1, 2, 3]


async def test_membership_changes_during_a_redis_outage(cluster: Cluster):
    teacher, _ = await Wire.signed_in(cluster.ws(0), cluster.token("t1"))
    d = (await teacher.request({"type": "start", "subject": "S", "to": ["e1"], "body": "m1",
                                "client_id": "c1"}))["discussion"]["id"]
    e1_here, _ = await Wire.signed_in(cluster.ws(0), cluster.token("e1"), resume=[[d, 0]])
    e1_there, _ = await Wire.signed_in(cluster.ws(1), cluster.token("e1"), resume=[[d, 0]])
    e2_there, _ = await Wire.signed_in(cluster.ws(1), cluster.token("e2"), resume=[])
    await e1_there.expect("message", discussion=d, seq=1)
    cluster.redis.stop()
    assert (await e1_here.request({"type": "leave", "discussion": d}))["type"] == "ok"
    assert (await teacher.request({"type": "invite", "discussion": d, "user": "e2"}))[
        "type"] == "ok"
    cluster.redis.start()
    # Node 1 missed both notices: once Redis is back it re-reads memberships.
    await e1_there.expect("left", discussion=d, timeout=20)
    announced = await e2_there.expect("discussion", timeout=20)
    assert announced["discussion"]["id"] == d
    await asyncio.sleep(0.3)
    await teacher.request({"type": "send", "discussion": d, "body": "m2", "client_id": "c2"})
    assert (await e2_there.expect("message", discussion=d, seq=2))["body"] == "m2"
    await asyncio.sleep(0.3)
    assert e1_there.messages(d) == [1]  # nothing after she left


async def test_a_post_checked_before_an_invitation_is_checked_again(cluster: Cluster):
    """The race of a post with an invitation (docs/policy.md, "People who arrive later"):
    node 1 decides Léa's post with members that predate Hugo's invitation on node 0 (the
    notice cannot reach it, Redis is down). Stored on that decision, the post would reach
    Hugo, with whom she may not exchange (she started the discussion: nobody supervises
    her). The store refuses it; decided again with Hugo present, it is refused."""
    teacher, _ = await Wire.signed_in(cluster.ws(0), cluster.token("t1"))
    e1, _ = await Wire.signed_in(cluster.ws(1), cluster.token("e1"))
    d = (await e1.request({"type": "start", "subject": "S", "to": ["t1"], "body": "m1",
                           "client_id": "c1"}))["discussion"]["id"]
    # A first post on node 1: its members are cached there now.
    assert (await e1.request({"type": "send", "discussion": d, "body": "m2",
                              "client_id": "c2"}))["type"] == "ack"
    cluster.redis.stop()
    assert (await teacher.request({"type": "invite", "discussion": d, "user": "e2"}))[
        "type"] == "ok"
    refused = await e1.request({"type": "send", "discussion": d, "body": "pas pour Hugo",
                                "client_id": "c3"}, timeout=20)
    assert refused["code"] == "not_invited_by_supervisor"
    cluster.redis.start()
    assert await transcript(cluster, d) == [(1, "m1"), (2, "m2")]


async def test_client_library_survives_a_killed_node(cluster: Cluster):
    """The reference client: its node is killed, comes back, and nothing is lost."""
    from server.client import Client

    async with Client(cluster.ws(1), cluster.token("t1"), encoding="msgpack") as teacher, \
            Client(cluster.ws(0), cluster.token("e1"), max_backoff=0.5) as student:
        started = await teacher.start(["e1"], "Sortie", "m1")
        d = started["discussion"]["id"]
        seen: list[int] = []

        async def read() -> None:
            async for event in student.events():
                if event.type == "message" and event.data["discussion"] == d:
                    seen.append(event.data["seq"])
                    if event.data["seq"] == 40:
                        return

        reader = asyncio.create_task(read())
        for i in range(2, 21):
            await teacher.send(d, f"m{i}")
        cluster.kill(0)
        for i in range(21, 31):  # while the student's node is down
            await teacher.send(d, f"m{i}")
        await asyncio.get_running_loop().run_in_executor(None, cluster.start, 0)
        for i in range(31, 41):
            await teacher.send(d, f"m{i}")
        await asyncio.wait_for(reader, 30)
        assert seen == list(range(1, 41))
        ack = await student.send(d, "bien reçu")
        assert ack.seq == 41
