"""What only the PostgreSQL store has: migrations under an advisory lock, the pool's
options in the database URL, group commit of concurrent appends, and hidden_from
lists kept as Python sorts them. What both stores do is in tests/contracts/."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import asyncpg
import pytest

from server.directory import parse_directory
from server.errors import (
    ConfigurationError,
    MembersChanged,
    NotFound,
    StoreError,
    UnstorableValue,
)
from server.model import DiscussionId, SchoolId, UserId
from server.store import PostgresStore, StoredMessage, open_store, postgres_options
from server.store.postgres import _MIGRATION_LOCK, _migrations
from tests.conftest import SCHOOL_DAY
from tests.schools import school_doc

pytestmark = pytest.mark.anyio

HUGO = SchoolId("hugo")
T1, E1, E2 = UserId("t1"), UserId("e1"), UserId("e2")
LATEST = max(number for number, _ in _migrations())
ROOT = Path(__file__).resolve().parent.parent

# Opens the store at argv[1] (migrating it) and prints the schema version it found.
_OPEN = """
import asyncio, sys
from server.store import open_store

async def main():
    store = await open_store(sys.argv[1])
    print(await store.schema_version())
    await store.close()

asyncio.run(main())
"""


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[PostgresStore]:
    st = PostgresStore(postgres_url)
    await st.open()
    try:
        await st.import_directory(parse_directory(school_doc()), actor="t", now=SCHOOL_DAY)
        yield st
    finally:
        await st.close()


async def _waiting_for_lock(admin: asyncpg.Connection, count: int) -> None:
    """Return once ``count`` sessions wait for the migration lock (fail after 60 s)."""
    for _ in range(1200):
        waiting = await admin.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND ((classid::bigint << 32) | objid::bigint) = $1", _MIGRATION_LOCK)
        if waiting >= count:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"{count} processes did not reach the migration lock within 60 s")


class TestMigrations:
    async def test_two_processes_starting_at_once_migrate_once(self, postgres_url: str):
        holder = await asyncpg.connect(postgres_url)
        try:
            # Both processes reach the lock while the test holds it, then race for it.
            await holder.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
            procs = [await asyncio.create_subprocess_exec(
                sys.executable, "-c", _OPEN, postgres_url, cwd=ROOT,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
                for _ in range(2)]
            try:
                await _waiting_for_lock(holder, 2)
                await holder.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
                async with asyncio.timeout(60):
                    outputs = [await p.communicate() for p in procs]
            finally:
                for p in procs:
                    if p.returncode is None:
                        p.kill()
                        await p.wait()
            for p, (out, err) in zip(procs, outputs, strict=True):
                assert p.returncode == 0, err.decode()
                assert out.split() == [str(LATEST).encode()]
            versions = await holder.fetch("SELECT version FROM schema_version ORDER BY version")
            assert [r[0] for r in versions] == [n for n, _ in _migrations()]
        finally:
            await holder.close()

    async def test_a_failed_migration_leaves_nothing_behind(self, postgres_url: str):
        conn = await asyncpg.connect(postgres_url)
        try:
            # A table of migration 0001 already there: its CREATE TABLE fails, and with it
            # the whole migration (one transaction), schema_version included.
            await conn.execute("CREATE TABLE held (id integer)")
            with pytest.raises(StoreError, match="already exists"):
                await open_store(postgres_url)
            assert await conn.fetchval("SELECT to_regclass('schema_version')") is None
            assert await conn.fetchval("SELECT to_regclass('discussions')") is None
        finally:
            await conn.close()


class TestPoolOptions:
    def test_the_pool_options_are_taken_out_of_the_url(self):
        dsn, options = postgres_options(
            "postgresql://u@db:5432/preau?pool_min=2&sslmode=require&pool_max=20"
            "&acquire_timeout=2.5")
        assert dsn == "postgresql://u@db:5432/preau?sslmode=require"
        assert options == {"pool_min": 2, "pool_max": 20, "acquire_timeout": 2.5}

    def test_no_options_means_the_defaults(self):
        assert postgres_options("postgres://db/preau") == ("postgres://db/preau", {})

    def test_a_minimum_alone_raises_the_maximum_to_it(self):
        assert postgres_options("postgresql://db/p?pool_min=15")[1] == {
            "pool_min": 15, "pool_max": 15}

    @pytest.mark.parametrize(("query", "words"), [
        ("pool_size=3", "unsupported option pool_size"),
        ("pool_min=two", "invalid pool_min='two'"),
        ("pool_max=0", "invalid pool_max='0'"),
        ("acquire_timeout=-1", "invalid acquire_timeout"),
        ("acquire_timeout=nan", "invalid acquire_timeout"),
        ("pool_min=5&pool_max=2", "pool_min=5 is more than pool_max=2"),
    ])
    def test_a_wrong_option_is_refused_with_what_to_write(self, query: str, words: str):
        with pytest.raises(ConfigurationError, match=words):
            postgres_options(f"postgresql://db/preau?{query}")

    async def test_open_store_sizes_the_pool_from_the_url(self, postgres_url: str):
        store = await open_store(f"{postgres_url}?pool_min=2&pool_max=3&acquire_timeout=7")
        try:
            assert isinstance(store, PostgresStore)
            assert (store.pool.get_min_size(), store.pool.get_max_size()) == (2, 3)
            assert store.acquire_timeout == 7
            assert store.pool.get_size() == 2
        finally:
            await store.close()


class TestGroupCommit:
    async def test_one_batch_answers_each_message_for_itself(self, store: PostgresStore):
        d = await store.create_discussion(HUGO, T1, "S", [E1], now=SCHOOL_DAY)
        other = await store.create_discussion(HUGO, T1, "S2", [E1], now=SCHOOL_DAY)
        await store.append_message(HUGO, d.id, T1, "before", "x", now=SCHOOL_DAY)

        def send(did: DiscussionId, client_id: str, version: int | None = None
                 ) -> Awaitable[tuple[StoredMessage, bool]]:
            return store.append_message(HUGO, did, T1, client_id, "b", now=SCHOOL_DAY,
                                        members_version=version)

        # Gathered in one go: they are queued together, and stored by one statement.
        results = await asyncio.gather(
            send(d.id, "a1"), send(other.id, "o1"), send(d.id, "before"),
            send(d.id, "a2"), send(d.id, "a1"), send(DiscussionId(10**9), "lost"),
            send(d.id, "stale", d.version + 5), send(other.id, "o2"),
            return_exceptions=True)
        assert isinstance(results[5], NotFound)
        assert isinstance(results[6], MembersChanged)
        stored = [r for r in results if isinstance(r, tuple)]
        assert [(m.client_id, m.seq, new) for m, new in stored] == [
            ("a1", 2, True), ("o1", 1, True), ("before", 1, False), ("a2", 3, True),
            ("a1", 2, False), ("o2", 2, True)]
        assert (await store.get_discussion(HUGO, d.id)).last_seq == 3
        assert [m.client_id for m in await store.messages(HUGO, d.id)] == [
            "a2", "a1", "before"]

    async def test_a_message_the_database_refuses_fails_alone(self, store: PostgresStore):
        d = await store.create_discussion(HUGO, T1, "S", [E1], now=SCHOOL_DAY)
        results = await asyncio.gather(*(
            store.append_message(HUGO, d.id, T1, f"c{i}", "nul \x00 byte" if i == 1 else "ok",
                                 now=SCHOOL_DAY) for i in range(4)), return_exceptions=True)
        assert isinstance(results[1], UnstorableValue)
        stored = [r for r in results if isinstance(r, tuple)]
        assert sorted(m.seq for m, _ in stored) == [1, 2, 3]
        assert (await store.get_discussion(HUGO, d.id)).last_seq == 3


async def test_hidden_from_is_a_list_sorted_by_code_point(store: PostgresStore,
                                                          postgres_url: str):
    d = await store.create_discussion(HUGO, T1, "S", [E1], now=SCHOOL_DAY, first=("c0", "x"))
    await store.append_message(HUGO, d.id, E1, "c1", "y", now=SCHOOL_DAY,
                               hidden_from=[UserId("zz"), UserId("Z")])
    await store.add_participant(HUGO, d.id, E2, invited_by=T1, now=SCHOOL_DAY,
                                members_version=d.version, readable_authors=[T1])
    conn = await asyncpg.connect(postgres_url)
    try:
        raw = await conn.fetchval("SELECT hidden_from FROM messages WHERE discussion_id = $1 "
                                  "AND seq = 2", d.id)
    finally:
        await conn.close()
    assert json.loads(raw) == sorted(["zz", "Z", "e2"]) == ["Z", "e2", "zz"]
