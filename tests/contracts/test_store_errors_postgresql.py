"""The error contract of the store where only PostgreSQL can fail: its sessions ended
under it, a COMMIT refused, a lock held elsewhere too long, a pool with no free
connection, the server stopped and started again (a private server,
tests/postgres_private.py, never the machine's). Every failure comes out as the store's
own error, never asyncpg's; nothing is acknowledged unless stored; the store recovers
without being reopened. What both stores share is in test_store_errors.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from server.errors import StoreBusy, StoreUnavailable
from server.store import open_store
from tests.contracts.store_faults import (
    WAIT,
    eventually_available,
    nothing_more_stored,
    stored_once_on_retry,
    terminate_sessions,
    waiting_on_locks,
    with_schools,
)
from tests.contracts.stores import E1, HUGO, T1, at
from tests.postgres_private import PrivatePostgres

pytestmark = pytest.mark.anyio


class TestConnectionLost:
    """The store's sessions ended under it (``pg_terminate_backend``: a crashed server,
    a cut network): each call then succeeds on a fresh connection or is
    ``StoreUnavailable``, never a driver's error, and the store recovers by itself."""

    async def test_calls_after_the_sessions_ended(self, postgres_url: str):
        store = await open_store(postgres_url + "?pool_max=3&acquire_timeout=2")
        try:
            d = await with_schools(store)
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
            d = await with_schools(store)
            await locker.execute("BEGIN")
            await locker.execute("SELECT 1 FROM discussions WHERE id = $1 FOR UPDATE", d)
            write = asyncio.create_task(store.append_message(HUGO, d, T1, "c1", "x",
                                                             now=at(1)))
            await waiting_on_locks(postgres_url, 1)
            await terminate_sessions(postgres_url, sparing=await locker.fetchval(
                "SELECT pg_backend_pid()"))
            with pytest.raises(StoreUnavailable):
                await asyncio.wait_for(write, WAIT)
            await locker.execute("ROLLBACK")
            await eventually_available(lambda: store.messages_after(HUGO, d, 0))
            await nothing_more_stored(store, d, "c1")
            await stored_once_on_retry(store, d, "c1")
        finally:
            await locker.close()
            await store.close()


class TestCommitFails:
    """The transaction fails at its COMMIT, after every statement went through: a
    deferred constraint trigger on the real server raises then (a serialization failure,
    as PostgreSQL reports at COMMIT under SERIALIZABLE). Nothing is acknowledged."""

    async def test_nothing_is_acknowledged_when_the_commit_fails(self, postgres_url: str):
        store = await open_store(postgres_url)
        admin = await asyncpg.connect(postgres_url, timeout=10)
        try:
            d = await with_schools(store)
            await admin.execute(
                "CREATE FUNCTION preau_test_at_commit() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'could not serialize access (raised by a test at "
                "commit)' USING ERRCODE = '40001'; END $$; "
                "CREATE CONSTRAINT TRIGGER preau_test_at_commit AFTER INSERT ON messages "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                "EXECUTE FUNCTION preau_test_at_commit()")
            with pytest.raises(StoreBusy):
                await asyncio.wait_for(store.append_message(HUGO, d, T1, "c1", "x",
                                                            now=at(1)), WAIT)
            with pytest.raises(StoreBusy):
                await asyncio.wait_for(store.create_discussion(
                    HUGO, T1, "Cantine", [E1], now=at(1), first=("s1", "x")), WAIT)
            await nothing_more_stored(store, d, "c1")
            assert await store.find_started(HUGO, T1, "s1") is None
            assert [x.id for x in await store.discussions_of(HUGO, T1)] == [d]
            await admin.execute("DROP TRIGGER preau_test_at_commit ON messages")
            await stored_once_on_retry(store, d, "c1")
        finally:
            await admin.close()
            await store.close()


class TestLockTimeout:
    async def test_a_row_lock_held_too_long_elsewhere_is_busy(self, postgres_url: str):
        """A real lock_timeout (55P03): another session holds the discussion's row for
        longer than the store's sessions wait for a lock (10 s); reads go on meanwhile."""
        store = await open_store(postgres_url)
        locker = await asyncpg.connect(postgres_url, timeout=10)
        try:
            d = await with_schools(store)
            await locker.execute("BEGIN")
            await locker.execute("SELECT 1 FROM discussions WHERE id = $1 FOR UPDATE", d)
            write = asyncio.create_task(store.append_message(HUGO, d, T1, "c1", "x",
                                                             now=at(1)))
            await waiting_on_locks(postgres_url, 1)
            await nothing_more_stored(store, d, "c1")  # reads are not held up
            with pytest.raises(StoreBusy) as caught:
                await asyncio.wait_for(write, 3 * WAIT)
            assert caught.value.retryable
            await locker.execute("ROLLBACK")
            await nothing_more_stored(store, d, "c1")
            await stored_once_on_retry(store, d, "c1")
        finally:
            await locker.close()
            await store.close()


class TestPoolExhausted:
    async def test_no_free_connection_in_time_is_busy(self, postgres_url: str):
        store = await open_store(postgres_url + "?pool_min=0&pool_max=2&acquire_timeout=0.3")
        locker = await asyncpg.connect(postgres_url, timeout=10)
        try:
            d = await with_schools(store)
            await locker.execute("BEGIN")
            await locker.execute("LOCK TABLE meta IN ACCESS EXCLUSIVE MODE")
            # Two reads of meta wait behind the lock, each holding one of the two
            # connections of the pool.
            held = [asyncio.create_task(store.get_meta("k")) for _ in range(2)]
            await waiting_on_locks(postgres_url, 2)
            with pytest.raises(StoreBusy) as caught:
                await asyncio.wait_for(store.get_meta("other"), WAIT)
            assert caught.value.retryable
            with pytest.raises(StoreBusy):
                await asyncio.wait_for(store.append_message(HUGO, d, T1, "c1", "x",
                                                            now=at(1)), WAIT)
            await locker.execute("ROLLBACK")
            assert await asyncio.wait_for(asyncio.gather(*held), WAIT) == [None, None]
            await nothing_more_stored(store, d, "c1")
            await stored_once_on_retry(store, d, "c1")
        finally:
            await locker.close()
            await store.close()


class TestRestart:
    async def test_the_store_recovers_when_its_server_comes_back(
            self, private_postgres: PrivatePostgres):
        store = await open_store(private_postgres.url + "?pool_max=3&acquire_timeout=2")
        try:
            d = await with_schools(store)
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
            await eventually_available(lambda: store.messages_after(HUGO, d, 0))
            await nothing_more_stored(store, d, "c1")
            assert await store.find_started(HUGO, T1, "s1") is None
            assert await store.get_meta("k") is None
            await stored_once_on_retry(store, d, "c1")
            assert store.write_failure() is None
        finally:
            await store.close()

    async def test_writes_in_flight_when_the_server_stops(
            self, private_postgres: PrivatePostgres):
        """Appends from many connections while the server stops: each is acknowledged
        and stored, or fails as ``StoreUnavailable``; once the server is back, retrying
        the failed ones stores every message exactly once, gap-free."""
        store = await open_store(private_postgres.url + "?pool_max=4&acquire_timeout=2")
        try:
            d = await with_schools(store)

            async def send(i: int) -> tuple[str, int | None]:
                await asyncio.sleep(i * 0.002)
                try:
                    m, _ = await store.append_message(HUGO, d, T1, f"c{i}", "x", now=at(1))
                except StoreUnavailable:
                    return f"c{i}", None
                return f"c{i}", m.seq

            sending = asyncio.gather(*(send(i) for i in range(1, 301)))
            await asyncio.sleep(0.2)
            await asyncio.to_thread(private_postgres.stop)
            told = dict(await asyncio.wait_for(sending, WAIT))
            await asyncio.to_thread(private_postgres.start)
            stored = {m.client_id: m.seq for m in
                      await eventually_available(lambda: store.messages_after(HUGO, d, 0))}
            acknowledged = {c: s for c, s in told.items() if s is not None}
            assert acknowledged.items() <= stored.items()  # acknowledged means stored
            assert sorted(stored.values()) == list(range(1, len(stored) + 1))

            def retry(client_id: str) -> Callable[[], Awaitable[object]]:
                return lambda: store.append_message(HUGO, d, T1, client_id, "x", now=at(2))

            for client_id, seq in told.items():
                if seq is None:
                    await eventually_available(retry(client_id))
            final = await store.messages_after(HUGO, d, 0)
            assert sorted(m.client_id for m in final) == sorted(["c0", *told])
            assert [m.seq for m in final] == list(range(1, 302))
        finally:
            await store.close()
