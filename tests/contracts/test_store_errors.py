"""The error contract of the store, on SQLite and PostgreSQL: whatever fails beneath it
comes out as the store's own error (server/errors.py: ``StoreFull``, ``StoreBusy``,
``StoreUnavailable``, ``UnstorableValue``), never as a driver's, and nothing is
acknowledged unless it is stored: after a failure the message, discussion or setting is
absent, and a retry with the same client id stores it once, with the next seq.

How each failure is caused differs by store (tests/contracts/store_faults.py says how,
and which are real and which are raised by a trigger on the real server); what the
store must do about it does not. What only PostgreSQL has (a pool, connections that a
restart or a network cut ends, a server restarted) is in test_store_errors_postgresql.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.errors import (
    StoreBusy,
    StoreFull,
    StoreUnavailable,
    UnstorableValue,
)
from server.model import DiscussionId
from server.store import Store, open_store
from tests.conftest import free_port
from tests.contracts.store_faults import (
    WAIT,
    Faults,
    eventually_available,
    faults_for,
    nothing_more_stored,
    stored_once_after_retry,
    stored_once_on_retry,
    with_schools,
)
from tests.contracts.stores import E1, HUGO, T1, at

pytestmark = pytest.mark.anyio

Faulty = tuple[Store, Faults, DiscussionId]


@pytest.fixture
async def faulty(store_kind: str, store_url: str) -> AsyncIterator[Faulty]:
    """A store that gives up quickly (SQLite: 50 ms for another process's lock;
    PostgreSQL: a pool of 3 and half a second to get one), with one discussion, and the
    means to make its database fail."""
    options = ("?busy_timeout_ms=50" if store_kind == "sqlite"
               else "?pool_max=3&acquire_timeout=0.5")
    store = await open_store(store_url + options)
    try:
        d = await with_schools(store)
        yield store, faults_for(store_kind, store, store_url), d
    finally:
        await store.close()


class TestUnstorable:
    async def test_a_value_that_cannot_be_stored_fails_alone(self, faulty: Faulty):
        store, _, d = faulty
        bodies = ["un", "deux", "\ud800 lone surrogate", "trois", "quatre"]
        results = await asyncio.wait_for(asyncio.gather(
            *(store.append_message(HUGO, d, T1, f"c{i + 1}", body, now=at(1))
              for i, body in enumerate(bodies)), return_exceptions=True), WAIT)
        assert isinstance(results[2], UnstorableValue), results[2]
        assert not results[2].retryable
        stored = [r for r in results if not isinstance(r, BaseException)]
        # The others went in, each new, and the refused one took no seq.
        assert sorted(m.body for m, _ in stored) == ["deux", "quatre", "trois", "un"]
        assert all(new for _, new in stored)
        assert sorted(m.seq for m, _ in stored) == [2, 3, 4, 5]
        assert [m.seq for m in await store.messages_after(HUGO, d, 0)] == [1, 2, 3, 4, 5]
        assert await store.find_message(HUGO, d, T1, "c3") is None
        m, _ = await store.append_message(HUGO, d, E1, "c9", "après", now=at(2))
        assert m.seq == 6  # and the store goes on

    async def test_a_value_one_store_may_refuse_does_not_spoil_the_others(self, faulty: Faulty):
        """A NUL: SQLite keeps it, PostgreSQL's text cannot (22021). Either it is stored
        as it was sent or it is refused alone; the others are stored, gap-free."""
        store, _, d = faulty
        bodies = ["un", "deux", "avec \x00 un NUL", "trois", "quatre"]
        results = await asyncio.wait_for(asyncio.gather(
            *(store.append_message(HUGO, d, T1, f"c{i + 1}", body, now=at(1))
              for i, body in enumerate(bodies)), return_exceptions=True), WAIT)
        for r in results:
            assert not isinstance(r, BaseException) or isinstance(r, UnstorableValue), r
        stored = await store.messages_after(HUGO, d, 0)
        assert [m.seq for m in stored] == list(range(1, len(stored) + 1))
        assert {m.body for m in stored} == {"avant", *(
            b for b, r in zip(bodies, results, strict=True)
            if not isinstance(r, BaseException))}
        assert {"un", "deux", "trois", "quatre"} <= {m.body for m in stored}

    async def test_every_write_refuses_what_it_cannot_hold(self, faulty: Faulty):
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
    async def test_a_full_disk_stores_nothing_and_says_so(self, faulty: Faulty):
        """Writes that need more room. SQLite: the file capped at its size (a real
        SQLITE_FULL, for the writes that need a new page). PostgreSQL: filling the
        machine's disk is impractical, so a trigger on the real server raises what a full
        disk raises, ``RAISE EXCEPTION ... USING ERRCODE = '53100'`` (disk_full)."""
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
            await nothing_more_stored(store, d, "c1")
        assert await store.find_started(HUGO, T1, "s1") is None
        assert await store.get_meta("k") is None
        await stored_once_on_retry(store, d, "c1")
        assert store.write_failure() is None


class TestBusy:
    async def test_a_busy_database_stores_nothing_and_says_so(self, faulty: Faulty):
        """SQLite: another connection holds the write lock (a real SQLITE_BUSY after the
        50 ms busy timeout). PostgreSQL: triggers on the real server raise a
        serialization failure (40001) and a deadlock (40P01), since which transaction
        PostgreSQL picks as a victim is not for a test to arrange; a real lock timeout
        (55P03) is in test_store_errors_postgresql.py."""
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
            await nothing_more_stored(store, d, "c1")
        assert await store.find_started(HUGO, T1, "s1") is None
        assert await store.get_meta("k") is None
        await stored_once_on_retry(store, d, "c1")
        assert store.write_failure() is None  # known until a write succeeds
        await store.set_meta("k", "v")
        assert await store.get_meta("k") == "v"


class TestReadOnly:
    async def test_a_read_only_database_serves_reads_and_refuses_writes(self, faulty: Faulty):
        """What a node finds after a failover to a standby. SQLite: ``query_only`` on the
        store's writing connections (a real SQLITE_READONLY). PostgreSQL: a real one,
        ``default_transaction_read_only`` on the database and the store's sessions ended,
        so that its new ones are read-only (25006)."""
        store, faults, d = faulty
        async with faults.read_only():
            # The first calls may also meet the sessions ended to make it read-only.
            await eventually_available(lambda: store.messages_after(HUGO, d, 0))
            with pytest.raises(StoreUnavailable) as caught:
                await asyncio.wait_for(store.append_message(HUGO, d, T1, "c1", "x",
                                                            now=at(1)), WAIT)
            assert caught.value.retryable
            with pytest.raises(StoreUnavailable):
                await store.set_meta("k", "v")
            assert store.write_failure() is not None
            await nothing_more_stored(store, d, "c1")
        await eventually_available(
            lambda: store.append_message(HUGO, d, T1, "c1", "après", now=at(5)))
        await stored_once_after_retry(store, d, "c1")


class TestCannotOpen:
    async def test_an_unreachable_database_is_unavailable(self, store_kind: str,
                                                          tmp_path: Path):
        url = (f"sqlite:///{tmp_path / 'no such directory' / 'preau.db'}"
               if store_kind == "sqlite"
               else f"postgresql://postgres@127.0.0.1:{free_port()}/preau?acquire_timeout=1")
        with pytest.raises(StoreUnavailable) as caught:
            await asyncio.wait_for(open_store(url), WAIT)
        assert caught.value.retryable
