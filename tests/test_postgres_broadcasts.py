"""Broadcasts on PostgreSQL: what SQLite answers, step by step, and the race that only
several writers at once can run.

The contract suite (tests/contracts/test_store_broadcasts.py) checks each method on
both stores, and processes answering for different recipients at once. Here a whole
broadcast life is replayed on both stores and every answer compared, and two
processes change the same recipients' answers at once, over and over: each change
reads the answer it replaces, so without the broadcast's row lock two of them would
both take back the same vote.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from server.broadcasts import Answer, Draft, parse_draft, tally_changes
from server.directory import parse_directory
from server.errors import NotFound, UnstorableValue
from server.model import SchoolId, UserId
from server.store import BroadcastStore, PostgresStore, SqliteStore
from tests.conftest import SCHOOL_DAY
from tests.schools import other_school_doc, school_doc

pytestmark = pytest.mark.anyio

HUGO, MOULIN = SchoolId("hugo"), SchoolId("moulin")
A1 = UserId("a1")
PARENTS = [UserId(f"p{i}") for i in range(1, 4)]
POLL = [{"text": "Accompagnerez-vous la sortie ?", "kind": "single", "choices": ["Oui", "Non"]},
        {"text": "Quels jours ?", "kind": "multiple", "choices": ["Lun", "Mar", "Jeu"]},
        {"text": "Une remarque ?", "kind": "text"}]


def at(minutes: float) -> datetime:
    return SCHOOL_DAY + timedelta(minutes=minutes)


def draft(client_id: str, kind: str = "information", **extra: Any) -> Draft:
    body: dict[str, Any] = {"kind": kind, "client_id": client_id, "title": "Sortie",
                            "body": "Au musée.", "to": {"roles": ["parent"]}, **extra}
    if kind == "poll":
        body["questions"] = POLL
    return parse_draft(body, SCHOOL_DAY)


async def add_schools(store: PostgresStore | SqliteStore) -> None:
    for doc in (school_doc(), other_school_doc()):
        await store.import_directory(parse_directory(doc), actor="t", now=SCHOOL_DAY)


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(postgres_url, pool_max=4)
    await store.open()
    await add_schools(store)
    try:
        yield store
    finally:
        await store.close()


async def life(store: BroadcastStore) -> list[object]:
    """Every answer of the store through the lives of four broadcasts, or the error."""
    out: list[object] = []

    async def step(call: Awaitable[Any]) -> Any:
        try:
            out.append(await call)
        except NotFound as exc:
            out.append(("NotFound", str(exc)))
        return out[-1]

    info = draft("i-1", ack_requested=True, expires_at="2026-11-25T09:00:00Z")
    info_id = (await step(store.create_broadcast(HUGO, A1, info, now=at(0), publish_at=at(0),
                                                 deadline=None, recipients=PARENTS)))[0].id
    await step(store.create_broadcast(HUGO, A1, info, now=at(1), publish_at=at(1),
                                      deadline=None, recipients=PARENTS[:1]))
    await step(store.create_broadcast(MOULIN, A1, info, now=at(1), publish_at=at(1),
                                      deadline=None, recipients=PARENTS[:1]))
    poll = await step(store.create_broadcast(HUGO, A1, draft("p-1", "poll", anonymous=True),
                                             now=at(2), publish_at=at(2), deadline=at(600),
                                             recipients=PARENTS))
    poll_id = poll[0].id
    scheduled = [(await step(store.create_broadcast(
        HUGO, A1, draft(client_id), now=at(3), publish_at=at(60), deadline=None,
        recipients=None, held_for_hours=held)))[0].id
        for client_id, held in (("s-1", False), ("s-2", True))]
    await step(store.find_broadcast(HUGO, A1, "p-1"))
    await step(store.find_broadcast(MOULIN, A1, "p-1"))
    await step(store.get_broadcast(MOULIN, info_id))
    await step(store.claim_due_broadcasts(at(30)))
    await step(store.claim_due_broadcasts(at(61)))
    await step(store.claim_due_broadcasts(at(61.5)))   # claimed a moment ago: not again
    await step(store.claim_due_broadcasts(at(63)))     # claimed by a node that died
    await step(store.publish_broadcast(HUGO, scheduled[0], PARENTS[1:], now=at(64)))
    await step(store.publish_broadcast(HUGO, scheduled[0], PARENTS, now=at(65)))  # already out
    await step(store.reschedule_broadcast(HUGO, scheduled[1], at(120)))
    await step(store.get_broadcast(HUGO, scheduled[1]))
    await step(store.drop_broadcast(HUGO, scheduled[1], "outside_hours", "Hors des heures."))
    await step(store.mark_broadcast_received(HUGO, info_id, PARENTS[:2], now=at(70)))
    await step(store.mark_broadcast_received(HUGO, info_id, PARENTS[:2], now=at(71)))
    await step(store.mark_broadcast_received(HUGO, info_id, [], now=at(71)))
    await step(store.mark_broadcast_read(HUGO, info_id, PARENTS[0], now=at(72)))
    await step(store.mark_broadcast_read(HUGO, info_id, PARENTS[0], now=at(73), acknowledge=True))
    await step(store.mark_broadcast_read(HUGO, info_id, PARENTS[0], now=at(74), acknowledge=True))
    await step(store.mark_broadcast_read(HUGO, info_id, PARENTS[2], now=at(75), acknowledge=True))
    await step(store.mark_broadcast_read(HUGO, info_id, UserId("t1"), now=at(75)))
    await step(store.mark_broadcast_read(MOULIN, info_id, PARENTS[0], now=at(75)))
    await step(store.answer_poll(HUGO, poll_id, PARENTS[0], [{"choices": [0]}, {"choices": [0, 2]},
                                                        {"text": "Volontiers"}], now=at(80)))
    await step(store.answer_poll(HUGO, poll_id, PARENTS[1], [{"choices": [0]}, {"choices": [2]},
                                                        {"text": ""}], now=at(81)))
    await step(store.answer_poll(HUGO, poll_id, PARENTS[0], [{"choices": [1]}, {"choices": [1, 2]},
                                                        {"text": "Finalement non"}], now=at(82)))
    await step(store.answer_poll(HUGO, poll_id, UserId("t1"), [{"choices": [1]}, {"choices": [1]},
                                                         {"text": ""}], now=at(82)))
    await step(store.remind_broadcast(HUGO, info_id, PARENTS[1:], now=at(90)))
    for user in PARENTS:
        await step(store.broadcasts_received(HUGO, user, now=at(91)))
        await step(store.broadcasts_received(HUGO, user, now=at(91), undelivered=True))
    await step(store.broadcasts_received(HUGO, PARENTS[2], now=at(24 * 60), limit=1))
    await step(store.broadcasts_received(MOULIN, PARENTS[0], now=at(91)))
    await step(store.broadcasts_sent(HUGO, A1))
    await step(store.broadcasts_sent(HUGO, A1, limit=2))
    for broadcast_id in (info_id, poll_id, scheduled[0]):
        await step(store.receipts(HUGO, broadcast_id))
    await step(store.receipt(HUGO, poll_id, PARENTS[0]))
    await step(store.receipt(HUGO, poll_id, UserId("t1")))
    await step(store.receipts(MOULIN, poll_id))
    for broadcast_id in (info_id, poll_id, *scheduled):
        await step(store.get_broadcast(HUGO, broadcast_id))
    return out


async def test_a_broadcasts_life_reads_the_same_on_both_stores(pg: PostgresStore,
                                                                tmp_path: Path):
    sqlite = SqliteStore(str(tmp_path / "preau.db"))
    await sqlite.open()
    try:
        await add_schools(sqlite)
        expected = await life(sqlite)
    finally:
        await sqlite.close()
    got = await life(pg)
    assert len(got) == len(expected)
    for i, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
        assert mine == theirs, f"step {i}"



async def test_a_value_postgresql_refuses_undoes_the_whole_write(pg: PostgresStore):
    """PostgreSQL's text holds no NUL (SQLite's does): a write that fails at its last
    statement leaves nothing of its first ones, and the broadcast's lock goes with it."""
    bad = [PARENTS[0], UserId("p\x00")]
    with pytest.raises(UnstorableValue):   # the broadcast's row went in, its recipients not
        await pg.create_broadcast(HUGO, A1, draft("i-1"), now=at(0), publish_at=at(0),
                                  deadline=None, recipients=bad)
    assert await pg.find_broadcast(HUGO, A1, "i-1") is None
    assert (await pg.create_broadcast(HUGO, A1, draft("i-1"), now=at(1), publish_at=at(1),
                                      deadline=None, recipients=PARENTS))[1]

    scheduled, _ = await pg.create_broadcast(HUGO, A1, draft("s-1"), now=at(0),
                                             publish_at=at(5), deadline=None, recipients=None)
    with pytest.raises(UnstorableValue):   # published, then its recipients refused
        await pg.publish_broadcast(HUGO, scheduled.id, bad, now=at(5))
    assert await pg.get_broadcast(HUGO, scheduled.id) == scheduled
    assert await pg.receipts(HUGO, scheduled.id) == []

    poll, _ = await pg.create_broadcast(HUGO, A1, draft("p-1", "poll"), now=at(0),
                                        publish_at=at(0), deadline=at(600), recipients=PARENTS)
    first: list[Answer] = [{"choices": [0]}, {"choices": [1]}, {"text": "Oui"}]
    receipt, stats = await pg.answer_poll(HUGO, poll.id, PARENTS[0], first, now=at(1))
    with pytest.raises(UnstorableValue):
        await pg.answer_poll(HUGO, poll.id, PARENTS[0], [{"choices": [1]}, {"choices": [2]},
                                                         {"text": "\x00"}], now=at(2))
    assert await pg.receipt(HUGO, poll.id, PARENTS[0]) == receipt
    assert (await pg.get_broadcast(HUGO, poll.id)).stats == stats
    _, after = await pg.answer_poll(HUGO, poll.id, PARENTS[1], first, now=at(3))
    assert (after.version, after.answered, after.counts) == (
        stats.version + 1, 2, ((2, 0), (0, 2, 0), None))

ROUNDS = 6
VOTERS = [UserId(f"v{i}") for i in range(24)]


def ballot(worker: int, round_: int, voter: int) -> list[Answer]:
    """What a worker answers for a voter in a round: differs between workers and rounds,
    so that every answer moves counts (and a lost update shows)."""
    n = worker * 7 + round_ * 3 + voter
    return [{"choices": [n % 2]}, {"choices": sorted({n % 3, (n // 3) % 3})},
            {"text": f"{worker}.{round_}"}]


async def answer_as_worker(url: str, broadcast_id: int, worker: int) -> None:
    """One server process: answer for every voter, ROUNDS times, several at once; print
    every version it was told, one JSON line."""
    store = PostgresStore(url, pool_max=4)
    await store.open()
    try:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        versions = []
        for round_ in range(ROUNDS):
            done = await asyncio.gather(*(
                store.answer_poll(HUGO, broadcast_id, voter, ballot(worker, round_, i),
                                  now=at(100 + round_)) for i, voter in enumerate(VOTERS)))
            versions += [stats.version for _, stats in done]
        print(json.dumps(versions), flush=True)
    finally:
        await store.close()


async def test_counts_stay_exact_when_two_processes_change_the_same_answers_at_once(
        pg: PostgresStore, postgres_url: str):
    poll, _ = await pg.create_broadcast(HUGO, A1, draft("p-1", "poll"), now=at(0),
                                        publish_at=at(0), deadline=at(600), recipients=VOTERS)
    workers = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.test_postgres_broadcasts", postgres_url, str(poll.id),
        str(w), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parent.parent) for w in range(2)]
    try:
        for w in workers:   # both have their pools open: start them at once
            assert w.stdout is not None
            assert await asyncio.wait_for(w.stdout.readline(), 30) == b"ready\n"
        outs = await asyncio.wait_for(asyncio.gather(*(w.communicate(b"go\n")
                                                       for w in workers)), 120)
    finally:
        for w in workers:
            if w.returncode is None:
                w.kill()
                await w.wait()
    assert [w.returncode for w in workers] == [0, 0]
    told = sorted(v for out, _ in outs for v in json.loads(out.decode().splitlines()[-1]))
    writes = 2 * ROUNDS * len(VOTERS)
    # Every answer moved the broadcast to a version of its own, and none was lost.
    assert told == list(range(2, 2 + writes))
    final = await pg.get_broadcast(HUGO, poll.id)
    receipts = await pg.receipts(HUGO, poll.id)
    tally: dict[tuple[int, int], int] = {}
    for r in receipts:
        assert r.answers is not None
        for key, n in tally_changes(None, r.answers).items():
            tally[key] = tally.get(key, 0) + n
    assert final.stats.version == 1 + writes
    assert (final.stats.received, final.stats.read, final.stats.answered) == (24, 24, 24)
    assert final.stats.counts == (
        tuple(tally.get((0, c), 0) for c in range(2)),
        tuple(tally.get((1, c), 0) for c in range(3)), None)


if __name__ == "__main__":   # a worker of the test above, in its own process
    asyncio.run(answer_as_worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
