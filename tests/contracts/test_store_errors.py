"""The error contract of the store, on SQLite and PostgreSQL: whatever fails beneath it
comes out as the store's own error (server/errors.py: ``StoreFull``, ``StoreBusy``,
``StoreUnavailable``, ``UnstorableValue``), never as a driver's, and nothing is
acknowledged unless it is stored: after a failure the message, discussion or setting is
absent, and a retry with the same client id stores it once, with the next seq.

How each failure is caused differs by store (tests/contracts/store_faults.py says how,
and which are real and which are raised by a trigger on the real server); what the
store must do about it does not. What only PostgreSQL has (a pool, connections that a
restart or a network cut ends) is in the classes at the end, against the machine's
server and against a private one (tests/postgres_private.py) that a test stops and
starts again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import asyncpg
import pytest

from server.directory import parse_directory
from server.errors import (
    StoreBusy,
    StoreError,
    StoreFull,
    StoreUnavailable,
    UnstorableValue,
)
from server.model import DiscussionId
from server.store import Store, open_store
from tests.conftest import SCHOOL_DAY, free_port
from tests.contracts.store_faults import Faults, faults_for, terminate_sessions
from tests.contracts.stores import E1, HUGO, T1, at
from tests.postgres_private import PrivatePostgres, PrivatePostgresUnavailable
from tests.schools import other_school_doc, school_doc

pytestmark = pytest.mark.anyio

T = TypeVar("T")
WAIT = 10.0  # bound on any wait here; reached only when a test fails


async def _with_schools(store: Store) -> DiscussionId:
    """Import both schools; a discussion t1 -> e1 with one message (seq 1)."""
    for doc in (school_doc(), other_school_doc()):
        await store.import_directory(parse_directory(doc), actor="t", now=SCHOOL_DAY)
    m = await store.create_discussion(HUGO, T1, "Sortie", [E1], now=at(0),
                                      first=("c0", "avant"))
    return m.id


@pytest.fixture
async def faulty(store_kind: str, store_url: str
                 ) -> AsyncIterator[tuple[Store, Faults, DiscussionId]]:
    """A store that gives up quickly (SQLite: 50 ms for another process's lock;
    PostgreSQL: a pool of 3 and half a second to get one), with one discussion, and the
    means to make its database fail."""
    options = ("?busy_timeout_ms=50" if store_kind == "sqlite"
               else "?pool_max=3&acquire_timeout=0.5")
    store = await open_store(store_url + options)
    try:
        d = await _with_schools(store)
        yield store, faults_for(store_kind, store, store_url), d
    finally:
        await store.close()


async def _nothing_more_stored(store: Store, d: DiscussionId, client_id: str) -> None:
    assert await store.find_message(HUGO, d, T1, client_id) is None
    assert [m.seq for m in await store.messages_after(HUGO, d, 0)] == [1]
    assert (await store.get_discussion(HUGO, d)).last_seq == 1


async def _stored_once_on_retry(store: Store, d: DiscussionId, client_id: str) -> None:
    m, new = await store.append_message(HUGO, d, T1, client_id, "après", now=at(5))
    assert (m.seq, new) == (2, True)  # no seq was taken by the failed attempt
    again, new = await store.append_message(HUGO, d, T1, client_id, "après", now=at(5))
    assert (again.seq, new) == (2, False)


class TestUnstorable:
    async def test_a_value_that_cannot_be_stored_fails_alone(self, faulty):
        store, _, d = faulty
        bodies = ["un", "deux", "\ud800 lone surrogate", "trois", "quatre"]
        results = await asyncio.wait_for(asyncio.gather(
            *(store.append_message(HUGO, d, T1, f"c{i + 1}", body, now=at(1))
              for i, body in enumerate(bodies)), return_exceptions=True), WAIT)
        assert isinstance(results[2], UnstorableValue), results[2]
        assert not results[2].retryable
        stored = [r for r in results if not isinstance(r, BaseException)]
        assert sorted((m.seq, m.body, new) for m, new in stored) == [
            (2, "un", True), (3, "deux", True), (4, "trois", True), (5, "quatre", True)] or \
            sorted(m.seq for m, _ in stored) == [2, 3, 4, 5]
        assert [m.seq for m in await store.messages_after(HUGO, d, 0)] == [1, 2, 3, 4, 5]
        assert await store.find_message(HUGO, d, T1, "c3") is None
        m, _ = await store.append_message(HUGO, d, E1, "c9", "après", now=at(2))
        assert m.seq == 6  # and the store goes on

    async def test_every_write_refuses_what_it_cannot_hold(self, faulty):
        store, _, d = faulty
        with pytest.raises(UnstorableValue):
            await store.create_discussion(HUGO, T1, "\udfff", [E1], now=at(1),
                                          first=("s1", "x"))
        assert await store.find_started(HUGO, T1, "s1") is None
        assert [x.id for x in await store.discussions_of(HUGO, T1)] == [d]
        with pytest.raises(UnstorableValue):
            await store.set_meta("k", "\ud800")
        assert await store.get_meta("k") is None
        with pytest.raises(UnstorableValue):
            await store.mark_read(HUGO, d, E1, 2**70)  # beyond 64 bits
        with pytest.raises(UnstorableValue):
            await store.hold(HUGO, E1, "h1", "\ud800", discussion_id=d, subject=None,
                             recipients=[], now=at(1), release_at=at(100))
        assert await store.claim_due(at(200)) == []
        assert store.write_failure() is None  # the request was at fault, not the database


class TestFull:
    async def test_a_full_disk_stores_nothing_and_says_so(self, faulty):
        """Writes that need more room (on SQLite a capped file refuses only those)."""
        store, faults, d = faulty
        async with faults.full():
            with pytest.raises(StoreFull) as caught:
                await asyncio.wait_for(store.append_message(HUGO, d, T1, "c1", "x" * 8000,
                                                            now=at(1)), WAIT)
            assert caught.value.retryable
            assert isinstance(caught.value.__cause__, Exception)  # the driver's, kept
            with pytest.raises(StoreFull):
                await store.create_discussion(HUGO, T1, "Cantine", [E1], now=at(1),
                                              first=("s1", "x" * 8000))
            with pytest.raises(StoreFull):
                await store.set_meta("k", "x" * 20_000)
            assert store.write_failure() is not None
            # Reads still work.
            await _nothing_more_stored(store, d, "c1")
        assert await store.find_started(HUGO, T1, "s1") is None
        assert await store.get_meta("k") is None
        await _stored_once_on_retry(store, d, "c1")
        assert store.write_failure() is None


class TestBusy:
    async def test_a_busy_database_stores_nothing_and_says_so(self, faulty):
        store, faults, d = faulty
        async with faults.busy():
            with pytest.raises(StoreBusy) as caught:
                await asyncio.wait_for(store.append_message(HUGO, d, T1, "c1", "x",
                                                            now=at(1)), WAIT)
            assert caught.value.retryable
            with pytest.raises(StoreBusy):
                await asyncio.wait_for(store.set_meta("k", "v"), WAIT)
            with pytest.raises(StoreBusy):
                await asyncio.wait_for(store.create_discussion(
                    HUGO, T1, "Cantine", [E1], now=at(1), first=("s1", "x")), WAIT)
            assert store.write_failure() is not None
            await _nothing_more_stored(store, d, "c1")
        assert await store.find_started(HUGO, T1, "s1") is None
        assert await store.get_meta("k") is None
        await _stored_once_on_retry(store, d, "c1")
        assert store.write_failure() is None  # known until a write succeeds
        await store.set_meta("k", "v")
        assert await store.get_meta("k") == "v"


class TestReadOnly:
    async def test_a_read_only_database_serves_reads_and_refuses_writes(self, faulty):
        store, faults, d = faulty
        async with faults.read_only():
            # The first calls may also meet the sessions ended to make it read-only.
            await _eventually(lambda: store.messages_after(HUGO, d, 0))
            with pytest.raises(StoreUnavailable) as caught:
                await asyncio.wait_for(store.append_message(HUGO, d, T1, "c1", "x",
                                                            now=at(1)), WAIT)
            assert caught.value.retryable
            with pytest.raises(StoreUnavailable):
                await store.set_meta("k", "v")
            assert store.write_failure() is not None
            await _nothing_more_stored(store, d, "c1")
        await _eventually(lambda: store.append_message(HUGO, d, T1, "c1", "après", now=at(5)))
        await _stored_once_on_retry_done(store, d, "c1")


async def _stored_once_on_retry_done(store: Store, d: DiscussionId, client_id: str) -> None:
    """After :func:`_eventually` stored the retry: once, with the next seq."""
    m, new = await store.append_message(HUGO, d, T1, client_id, "après", now=at(5))
    assert (m.seq, new) == (2, False)


async def _eventually(call: Callable[[], Awaitable[T]], attempts: int = 50) -> T:
    """Call until it succeeds; every failure meanwhile must be ``StoreUnavailable``
    (never a driver's error). Fails after ``attempts`` tries, 0.1 s apart."""
    failures: list[StoreError] = []
    for _ in range(attempts):
        try:
            return await asyncio.wait_for(call(), WAIT)
        except StoreUnavailable as exc:
            failures.append(exc)
        await asyncio.sleep(0.1)
    pytest.fail(f"still failing after {attempts} tries: {failures[-1]!r}")


class TestCannotOpen:
    async def test_an_unreachable_database_is_unavailable(self, store_kind: str,
                                                          tmp_path: Path):
        url = (f"sqlite:///{tmp_path / 'no such directory' / 'preau.db'}"
               if store_kind == "sqlite"
               else f"postgresql://postgres@127.0.0.1:{free_port()}/preau?acquire_timeout=1")
        with pytest.raises(StoreUnavailable) as caught:
            await asyncio.wait_for(open_store(url), WAIT)
        assert caught.value.retryable


# ---------------------------------------------------------------------- PostgreSQL only


async def _waiting_on_locks(url: str, count: int) -> None:
    """Return once ``count`` sessions of ``url``'s database wait for a lock."""
    conn = await asyncpg.connect(url, timeout=10)
    try:
        async with asyncio.timeout(WAIT):
            while True:
                waiting = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'")
                if waiting >= count:
                    return
                await asyncio.sleep(0.02)
    finally:
        await conn.close()


class TestConnectionLost:
    """The store's sessions ended under it (``pg_terminate_backend``: a crashed server,
    a cut network): each call then succeeds on a fresh connection or is
    ``StoreUnavailable``, never a driver's error, and the store recovers by itself."""

    async def test_calls_after_the_sessions_ended(self, postgres_url: str):
        store = await open_store(postgres_url + "?pool_max=3&acquire_timeout=2")
        try:
            d = await _with_schools(store)
            await asyncio.gather(*(store.messages_after(HUGO, d, 0) for _ in range(3)))
            assert await terminate_sessions(postgres_url) >= 1
            told: dict[str, int | None] = {}
            for i in range(1, 9):
                try:
                    m, new = await asyncio.wait_for(
                        store.append_message(HUGO, d, T1, f"c{i}", "x", now=at(1)), WAIT)
                    assert new
                    told[f"c{i}"] = m.seq
                except StoreUnavailable:
                    told[f"c{i}"] = None
            assert told["c8"] is not None  # recovered without being reopened
            stored = {m.client_id: m.seq for m in await store.messages_after(HUGO, d, 0)}
            assert sorted(stored.values()) == list(range(1, len(stored) + 1))  # no gap
            # What was acknowledged is stored with that seq; what failed is not stored.
            assert {c: s for c, s in told.items() if s is not None} == {
                c: s for c, s in stored.items() if c != "c0"}
        finally:
            await store.close()

    async def test_a_write_in_flight_when_its_session_ends(self, postgres_url: str):
        store = await open_store(postgres_url + "?pool_max=3&acquire_timeout=2")
        locker = await asyncpg.connect(postgres_url, timeout=10)
        try:
            d = await _with_schools(store)
            await locker.execute("BEGIN")
            await locker.execute("SELECT 1 FROM discussions WHERE id = $1 FOR UPDATE", d)
            write = asyncio.create_task(store.append_message(HUGO, d, T1, "c1", "x",
                                                             now=at(1)))
            await _waiting_on_locks(postgres_url, 1)
            await terminate_sessions(postgres_url, sparing=await locker.fetchval(
                "SELECT pg_backend_pid()"))
            with pytest.raises(StoreUnavailable):
                await asyncio.wait_for(write, WAIT)
            await locker.execute("ROLLBACK")
            await _eventually(lambda: store.messages_after(HUGO, d, 0))
            await _nothing_more_stored(store, d, "c1")
            await _stored_once_on_retry(store, d, "c1")
        finally:
            await locker.close()
            await store.close()


class TestPoolExhausted:
    async def test_no_free_connection_in_time_is_busy(self, postgres_url: str):
        store = await open_store(postgres_url + "?pool_min=0&pool_max=2&acquire_timeout=0.3")
        locker = await asyncpg.connect(postgres_url, timeout=10)
        try:
            d = await _with_schools(store)
            await locker.execute("BEGIN")
            await locker.execute("LOCK TABLE meta IN ACCESS EXCLUSIVE MODE")
            # Two reads of meta wait behind the lock, each holding one of the two
            # connections of the pool.
            held = [asyncio.create_task(store.get_meta("k")) for _ in range(2)]
            await _waiting_on_locks(postgres_url, 2)
            with pytest.raises(StoreBusy) as caught:
                await asyncio.wait_for(store.get_meta("other"), WAIT)
            assert caught.value.retryable
            with pytest.raises(StoreBusy):
                await asyncio.wait_for(store.append_message(HUGO, d, T1, "c1", "x",
                                                            now=at(1)), WAIT)
            await locker.execute("ROLLBACK")
            assert await asyncio.wait_for(asyncio.gather(*held), WAIT) == [None, None]
            await _nothing_more_stored(store, d, "c1")
            await _stored_once_on_retry(store, d, "c1")
        finally:
            await locker.close()
            await store.close()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL server for this test alone, which it may stop and start."""
    try:
        server = PrivatePostgres()
    except PrivatePostgresUnavailable as exc:
        raise pytest.fail.Exception(str(exc), pytrace=False) from None  # the hint, alone
    with server:
        yield server


class TestRestart:
    async def test_the_store_recovers_when_its_server_comes_back(
            self, private_postgres: PrivatePostgres):
        store = await open_store(private_postgres.url + "?pool_max=3&acquire_timeout=2")
        try:
            d = await _with_schools(store)
            await asyncio.to_thread(private_postgres.stop)
            calls: list[Callable[[], Awaitable[object]]] = [
                lambda: store.append_message(HUGO, d, T1, "c1", "x", now=at(1)),
                lambda: store.create_discussion(HUGO, T1, "S", [E1], now=at(1),
                                                first=("s1", "x")),
                lambda: store.set_meta("k", "v"),
                lambda: store.get_meta("k"),
                lambda: store.load_school(HUGO),
                lambda: store.messages_after(HUGO, d, 0),
                lambda: store.claim_due(at(1)),
            ]
            for call in calls:
                with pytest.raises(StoreUnavailable):
                    await asyncio.wait_for(call(), WAIT)
            assert store.write_failure() is not None
            await asyncio.to_thread(private_postgres.start)
            # The same store, not reopened, serves again once the server is back.
            await _eventually(lambda: store.messages_after(HUGO, d, 0))
            await _nothing_more_stored(store, d, "c1")
            assert await store.find_started(HUGO, T1, "s1") is None
            assert await store.get_meta("k") is None
            await _stored_once_on_retry(store, d, "c1")
            assert store.write_failure() is None
        finally:
            await store.close()
