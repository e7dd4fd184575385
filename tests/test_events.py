"""Events between nodes: every type round-trips, version 1 is read and written exactly as
before, an unreadable event falls back to the store, and nodes writing versions 1 and 2
side by side (a rolling upgrade) lose and duplicate nothing."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
import redis.asyncio as aioredis

from server import events
from server.broker.channels import discussion_channel, school_channel
from server.model import DiscussionId, SchoolId, UserId
from tests.cluster import Cluster
from tests.conftest import SCHOOL_DAY
from tests.redis_server import RedisServer
from tests.wire import Wire

S, D = SchoolId("hugo"), DiscussionId(7)
AT = datetime(2026, 11, 24, 9, 30, 15, 123456, tzinfo=UTC)

# One of each type, and the map version 1 (Préau before typed events) made of it.
SAMPLES: list[tuple[events.Event, dict[str, Any]]] = [
    (events.Message(S, D, 3, UserId("t1"), "c-1", "Bonjour", AT),
     {"k": "m", "s": "hugo", "d": 7, "q": 3, "f": "t1", "c": "c-1", "b": "Bonjour",
      "t": "2026-11-24T09:30:15.123456+00:00"}),
    (events.Message(S, D, 4, UserId("e1"), "c-2", "Salut", AT,
                    frozenset({UserId("p2"), UserId("p1")})),
     {"k": "m", "s": "hugo", "d": 7, "q": 4, "f": "e1", "c": "c-2", "b": "Salut",
      "t": "2026-11-24T09:30:15.123456+00:00", "h": ["p1", "p2"]}),
    (events.Joined(S, D, UserId("e2"), UserId("t1")),
     {"k": "j", "s": "hugo", "d": 7, "u": "e2", "i": "t1"}),
    (events.Left(S, D, UserId("e2")), {"k": "l", "s": "hugo", "d": 7, "u": "e2"}),
    (events.Read(S, D, UserId("e1"), 4), {"k": "r", "s": "hugo", "d": 7, "u": "e1", "q": 4}),
    (events.Typing(S, D, UserId("e1")), {"k": "y", "s": "hugo", "d": 7, "u": "e1"}),
    (events.Presence(S, UserId("e1"), True, (D, DiscussionId(9))),
     {"k": "p", "s": "hugo", "u": "e1", "on": True, "ds": [7, 9]}),
    (events.DiscussionAdded(S, D, (UserId("t1"), UserId("e1"))),
     {"k": "n", "s": "hugo", "d": 7, "us": ["t1", "e1"]}),
    (events.PolicyChanged(S), {"k": "v", "s": "hugo"}),
    (events.HeldDropped(S, UserId("e1"), "c-3", D, "not_participant", "Plus dedans."),
     {"k": "x", "s": "hugo", "u": "e1", "c": "c-3", "d": 7, "code": "not_participant",
      "m": "Plus dedans."}),
    (events.HeldDropped(S, UserId("e1"), "c-4", None, "recipient_not_allowed", "Non."),
     {"k": "x", "s": "hugo", "u": "e1", "c": "c-4", "d": None,
      "code": "recipient_not_allowed", "m": "Non."}),
    # New in this release: version 1 is what a node writing version 1 sends (old nodes
    # cannot read it, and read the school again instead: tested below).
    (events.SessionsEnded(S, ("s-1", "s-2"), "logout"),
     {"k": "se", "s": "hugo", "ss": ["s-1", "s-2"], "why": "logout"}),
    (events.BroadcastPublished(S, 12, UserId("t1"), (UserId("e1"), UserId("e2"))),
     {"k": "b", "s": "hugo", "id": 12, "a": "t1", "us": ["e1", "e2"]}),
    (events.BroadcastStats(S, 12, UserId("t1"), {"version": 3, "recipients": 2,
                                                 "counts": [[1, 0], None]}),
     {"k": "bs", "s": "hugo", "id": 12, "a": "t1",
      "st": {"version": 3, "recipients": 2, "counts": [[1, 0], None]}}),
    (events.BroadcastMine(S, 12, UserId("e1"), {"read_at": "2026-11-24T09:31:00Z",
                                                "answers": None}),
     {"k": "bm", "s": "hugo", "id": 12, "u": "e1",
      "mine": {"read_at": "2026-11-24T09:31:00Z", "answers": None}}),
    (events.BroadcastReminded(S, 12, (UserId("e2"),), UserId("t1"), "Sortie",
                              "2026-11-24T10:00:00Z"),
     {"k": "br", "s": "hugo", "id": 12, "us": ["e2"], "a": "t1", "t": "Sortie",
      "at": "2026-11-24T10:00:00Z"}),
    (events.BroadcastDropped(S, 12, UserId("t1"), "outside_hours", "Fermé."),
     {"k": "bx", "s": "hugo", "id": 12, "a": "t1", "code": "outside_hours", "m": "Fermé."}),
]

IDS = [f"{type(e).__name__}-{i}" for i, (e, _) in enumerate(SAMPLES)]


def test_the_samples_cover_every_kind():
    assert {type(e).KIND for e, _ in SAMPLES} == set(events.KINDS)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize(("event", "v1"), SAMPLES, ids=IDS)
def test_every_event_round_trips_through_msgpack(event: events.Event, v1: dict[str, Any],
                                                 version: int):
    wire = msgpack.packb(events.encode(event, version), use_bin_type=True)
    assert events.decode(msgpack.unpackb(wire, raw=False)) == event


@pytest.mark.parametrize(("event", "v1"), SAMPLES, ids=IDS)
def test_version_1_is_the_old_encoding_both_ways(event: events.Event, v1: dict[str, Any]):
    """A node of the previous release reads what a new node writes at version 1 (the same
    maps), and a new node reads what the previous release writes."""
    assert events.encode(event, 1) == v1
    assert events.decode(msgpack.unpackb(msgpack.packb(v1), raw=False)) == event


@pytest.mark.parametrize(("event", "v1"), SAMPLES, ids=IDS)
def test_version_2_says_so_and_keeps_the_envelope(event: events.Event, v1: dict[str, Any]):
    v2 = events.encode(event, 2)
    assert v2["v"] == 2
    assert {k: v2[k] for k in ("k", "s", "d") if k in v1} == {
        k: v1[k] for k in ("k", "s", "d") if k in v1}


def test_a_message_time_is_an_integer_in_version_2():
    message = SAMPLES[0][0]
    assert events.encode(message, 2)["t"] == 1795512615123456  # µs since 1970, UTC
    assert events.decode(events.encode(message, 2)) == message


def test_a_newer_version_is_unreadable_with_its_envelope():
    newer = {**events.encode(SAMPLES[0][0], 2), "v": 3, "t": {"µs": 1}}
    with pytest.raises(events.Unreadable) as caught:
        events.decode(newer)
    assert (caught.value.kind, caught.value.version, caught.value.school,
            caught.value.discussion) == ("m", 3, S, D)


@pytest.mark.parametrize("data", [
    {"k": "zz", "v": 2, "s": "hugo", "d": 7},  # a kind from a later release
    {"k": "m", "v": 2, "s": "hugo", "d": 7},  # fields missing
    {"k": "m", "s": "hugo", "d": 7, "q": "3", "f": "t1", "c": "c", "b": "b",
     "t": "2026-11-24T09:30:15+00:00"},  # a field of the wrong type
    {"k": "m", "v": True, "s": "hugo", "d": 7},
    ["m", "hugo"],
])
def test_what_cannot_be_read_raises_unreadable(data: object):
    with pytest.raises(events.Unreadable):
        events.decode(data)


def test_a_node_writes_only_the_versions_it_knows():
    for version in (events.OLDEST, events.CURRENT):
        assert events.encode_version(version) == version
    for bad in (0, events.CURRENT + 1):
        with pytest.raises(ValueError, match="events version"):
            events.encode_version(bad)


def test_events_are_frozen():
    message = events.Message(S, D, 3, UserId("t1"), "c-1", "Bonjour", AT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.seq = 9  # type: ignore[misc]


# ---------------------------------------------------------------------- two nodes


class VersionedCluster(Cluster):
    """Node ``i`` writes events of ``versions[i]`` (``PREAU_EVENTS_VERSION``)."""

    def __init__(self, tmp: Path, redis: RedisServer, versions: tuple[int, ...]) -> None:
        super().__init__(tmp, redis, nodes=len(versions))
        self.versions = versions

    def env(self, i: int) -> dict[str, str]:
        return {**super().env(i), "PREAU_EVENTS_VERSION": str(self.versions[i])}


def cluster_of(tmp: Path, versions: tuple[int, ...]) -> Iterator[VersionedCluster]:
    with RedisServer() as redis:
        c = VersionedCluster(tmp, redis, versions)
        try:
            c.prepare()
            for i in range(len(versions)):
                c.start(i)
            yield c
        finally:
            c.close()


@pytest.fixture
def upgrading(tmp_path: Path) -> Iterator[VersionedCluster]:
    """Node 0 still writes version 1 (old nodes remain); node 1 writes version 2."""
    yield from cluster_of(tmp_path, (1, 2))


@pytest.fixture
def upgraded(tmp_path: Path) -> Iterator[VersionedCluster]:
    yield from cluster_of(tmp_path, (2, 2))


async def readyz(c: Cluster, i: int) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(f"{c.http(i)}/readyz")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def stored(c: Cluster, d: int) -> list[int]:
    async with c.store() as st:
        rows = await st.messages(S, DiscussionId(d), limit=10_000)
    return sorted(m.seq for m in rows)


async def broadcast(c: Cluster, i: int, to: list[str], client_id: str) -> int:
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(f"{c.http(i)}/api/broadcasts",
                            json={"kind": "information", "client_id": client_id,
                                  "title": "Réunion", "body": "Jeudi 18 h.",
                                  "to": {"users": to}},
                            headers={"Authorization": f"Bearer {c.token('t1')}"})
    assert r.status_code == 201, r.text
    bid: int = r.json()["broadcast"]["id"]
    return bid


async def quiet(*wires: Wire) -> None:
    """Every frame in flight to these connections has arrived (a ping answered after a
    pause in which nothing was sent)."""
    await asyncio.sleep(0.3)
    for wire in wires:
        assert (await wire.request({"type": "ping"}))["type"] == "pong"


@pytest.mark.anyio
@pytest.mark.usefixtures("close_wires")
async def test_a_rolling_upgrade_loses_and_duplicates_nothing(upgrading: VersionedCluster):
    c = upgrading
    t1_old, _ = await Wire.signed_in(c.ws(0), c.token("t1"))
    t1_new, _ = await Wire.signed_in(c.ws(1), c.token("t1"), encoding="msgpack")
    e1, _ = await Wire.signed_in(c.ws(1), c.token("e1"))
    e2, _ = await Wire.signed_in(c.ws(0), c.token("e2"), encoding="msgpack")

    # Started on the old-encoding node: the new node hears of it and of its message.
    started = await t1_old.request({"type": "start", "subject": "Sortie", "to": ["e1"],
                                    "body": "Bonjour", "client_id": "s1"})
    d = started["discussion"]["id"]
    for wire in (e1, t1_new):
        assert (await wire.expect("message", discussion=d, seq=1))["body"] == "Bonjour"
    # New → old, and old → new.
    await e1.request({"type": "send", "discussion": d, "body": "Merci", "client_id": "m2"})
    assert (await t1_old.expect("message", discussion=d, seq=2))["body"] == "Merci"

    # An invitation from the new node: the old one adds e2, and its joined reaches e1.
    assert (await t1_new.request({"type": "invite", "discussion": d,
                                  "user": "e2"}))["type"] == "ok"
    await e2.expect("discussion")
    joined = await t1_old.expect("joined", discussion=d)
    assert (joined["user"]["id"], joined["invited_by"]) == ("e2", "t1")
    assert [(await e2.expect("message", discussion=d))["seq"] for _ in range(2)] == [1, 2]
    await e2.request({"type": "send", "discussion": d, "body": "Présent", "client_id": "m3"})
    for wire in (e1, t1_new, t1_old):
        assert (await wire.expect("message", discussion=d, seq=3))["body"] == "Présent"

    # Read positions and typing, both ways.
    await e1.request({"type": "read", "discussion": d, "seq": 3})
    read = await t1_old.expect("read", discussion=d, user="e1")
    assert read["seq"] == 3
    await e2.request({"type": "read", "discussion": d, "seq": 2})
    assert (await t1_new.expect("read", discussion=d, user="e2"))["seq"] == 2
    await e1.send({"type": "typing", "discussion": d})
    await t1_old.expect("typing", discussion=d, user="e1")
    await e2.send({"type": "typing", "discussion": d})
    await t1_new.expect("typing", discussion=d, user="e2")

    # Broadcasts published on either node reach recipients on the other.
    b_old = await broadcast(c, 0, ["e1"], "b-old")
    assert (await e1.expect("broadcast"))["broadcast"]["id"] == b_old
    b_new = await broadcast(c, 1, ["e2"], "b-new")
    assert (await e2.expect("broadcast"))["broadcast"]["id"] == b_new

    # Leaving, from each node.
    assert (await e2.request({"type": "leave", "discussion": d}))["type"] == "ok"
    await t1_new.expect("left", discussion=d, user="e2")
    assert (await e1.request({"type": "leave", "discussion": d}))["type"] == "ok"
    await t1_old.expect("left", discussion=d, user="e2")
    await t1_old.expect("left", discussion=d, user="e1")
    await t1_old.request({"type": "send", "discussion": d, "body": "Au revoir",
                          "client_id": "m4"})
    await t1_new.expect("message", discussion=d, seq=4)

    await quiet(t1_old, t1_new, e1, e2)
    assert await stored(c, d) == [1, 2, 3, 4]
    assert t1_old.messages(d) == t1_new.messages(d) == [1, 2, 3, 4]
    assert e1.messages(d) == e2.messages(d) == [1, 2, 3]  # then they left
    for wire, sent in ((e1, b_old), (e2, b_new)):
        received = [f["broadcast"]["id"] for f in wire.frames if f.get("type") == "broadcast"]
        assert received == [sent]
    for i in (0, 1):
        assert (await readyz(c, i))["events_unreadable"] == 0


@pytest.mark.anyio
@pytest.mark.usefixtures("close_wires")
async def test_an_event_of_a_newer_version_is_counted_and_read_from_the_store(
        upgraded: VersionedCluster):
    c = upgraded
    teacher, _ = await Wire.signed_in(c.ws(0), c.token("t1"))
    e1, _ = await Wire.signed_in(c.ws(1), c.token("e1"))
    d = (await teacher.request({"type": "start", "subject": "Devoirs", "to": ["e1"],
                                "body": "b1", "client_id": "s1"}))["discussion"]["id"]
    await e1.expect("message", discussion=d, seq=1)

    # A node of a later release stores message 2 and announces it in a version that
    # these nodes cannot read.
    async with c.store() as st:
        members = await st.members(S, DiscussionId(d))
        msg, _ = await st.append_message(S, DiscussionId(d), UserId("t1"), "later-1", "b2",
                                         now=SCHOOL_DAY + timedelta(minutes=5),
                                         members_version=members.version)
    assert msg.seq == 2
    newer = {"k": "m", "v": events.CURRENT + 1, "s": "hugo", "d": d, "q": 2,
             "payload": {"what": "a later layout"}}
    unknown = {"k": "zz", "v": events.CURRENT + 1, "s": "hugo"}
    client = aioredis.from_url(c.redis.url)
    try:
        tag = b"\x00later\x00\x00"  # another node's publications start with its own tag
        await client.publish(discussion_channel(S, DiscussionId(d)),
                             tag + msgpack.packb(newer, use_bin_type=True))
        await client.publish(school_channel(S), tag + msgpack.packb(unknown, use_bin_type=True))
    finally:
        await client.aclose()

    # Delivered all the same, read from the store, once, to both nodes' connections.
    assert (await e1.expect("message", discussion=d, seq=2))["body"] == "b2"
    assert (await teacher.expect("message", discussion=d, seq=2))["body"] == "b2"
    await teacher.request({"type": "send", "discussion": d, "body": "b3", "client_id": "m3"})
    await e1.expect("message", discussion=d, seq=3)
    await quiet(teacher, e1)
    assert e1.messages(d) == teacher.messages(d) == [1, 2, 3]
    for i in (0, 1):
        assert (await readyz(c, i))["events_unreadable"] == 2
        assert "unreadable event" in c.log(i)
