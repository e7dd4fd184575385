"""What only the PostgreSQL store has: migrations under an advisory lock, the pool's
options in the database URL, group commit of concurrent appends, and hidden_from
lists kept as Python sorts them. What both stores do is in tests/contracts/."""

from __future__ import annotations

import asyncio
import json
import logging
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
    StoreBusy,
    StoreError,
    StoreFull,
    StoreUnavailable,
    UnstorableValue,
)
from server.model import DiscussionId, SchoolId, UserId
from server.store import (
    AlreadyStarted,
    PostgresStore,
    StoredMessage,
    displayed_url,
    open_store,
    postgres_options,
)
from server.store.postgres import _MIGRATION_LOCK, _migrations
from server.store.postgres_failures import translate
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

# Appends rounds of messages to every discussion of argv[2] (JSON ids), one gather per
# round (so one batch per round), in the order given; prints [[discussion, seq, new]...].
_APPEND_ROUNDS = """
import asyncio, json, sys
from datetime import datetime
from server.model import DiscussionId, SchoolId, UserId
from server.store import open_store

async def main():
    store = await open_store(sys.argv[1])
    ids, name, rounds = json.loads(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    now = datetime.fromisoformat(sys.argv[5])
    out = []
    for r in range(rounds):
        results = await asyncio.gather(*(
            store.append_message(SchoolId("hugo"), DiscussionId(d), UserId("t1"),
                                 f"{name}-{r}-{d}", "x", now=now) for d in ids))
        out += [[d, m.seq, new] for d, (m, new) in zip(ids, results)]
    await store.close()
    print(json.dumps(out))

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


class TestStartsBefore0003:
    async def test_0003_finds_the_starts_made_before_it(self, postgres_url: str):
        """Discussions of before 0003 get their start's client id from their first
        message where the creator sent it; of two that a race started with the same
        one, the earliest only (the unique index could not be built otherwise)."""
        st = await open_store(postgres_url)
        await st.import_directory(parse_directory(school_doc()), actor="t", now=SCHOOL_DAY)
        a = await st.create_discussion(HUGO, E1, "A", [T1], now=SCHOOL_DAY, first=("s1", "a"))
        raced = await st.create_discussion(HUGO, E1, "B", [T1], now=SCHOOL_DAY,
                                           first=("s1b", "b"))
        replied = await st.create_discussion(HUGO, T1, "C", [E1], now=SCHOOL_DAY)
        await st.append_message(HUGO, replied.id, E1, "r1", "c", now=SCHOOL_DAY)
        own = await st.create_discussion(HUGO, T1, "D", [E1], now=SCHOOL_DAY)
        await st.append_message(HUGO, own.id, T1, "t1", "d", now=SCHOOL_DAY)
        await st.close()
        conn = await asyncpg.connect(postgres_url)
        try:  # back to 0002, the race's duplicate included
            await conn.execute(
                "DROP INDEX discussions_by_start;"
                "ALTER TABLE discussions DROP COLUMN start_client_id;"
                "UPDATE messages SET client_id = 's1' WHERE client_id = 's1b';"
                "DELETE FROM schema_version WHERE version = 3;")
            st = PostgresStore(postgres_url)
            await st.open()
            try:
                assert await st.schema_version() == LATEST
                starts = {r[0]: r[1] for r in await conn.fetch(
                    "SELECT id, start_client_id FROM discussions")}
                assert starts == {a.id: "s1", raced.id: None, replied.id: None, own.id: "t1"}
                found = await st.find_started(HUGO, E1, "s1")
                assert found is not None
                assert found.discussion_id == a.id
                with pytest.raises(AlreadyStarted) as race:
                    await st.create_discussion(HUGO, E1, "A", [T1], now=SCHOOL_DAY,
                                               first=("s1", "a"))
                assert race.value.earlier == found
            finally:
                await st.close()
        finally:
            await conn.close()


class TestSearchBefore0007:
    async def test_0007_indexes_what_was_stored_before_it(self, postgres_url: str):
        """Messages stored before the search index existed are found once 0007 has run."""
        st = await open_store(postgres_url)
        await st.import_directory(parse_directory(school_doc()), actor="t", now=SCHOOL_DAY)
        d = await st.create_discussion(HUGO, T1, "Sortie au théâtre", [E1], now=SCHOOL_DAY,
                                       first=("s1", "Prévoir un pique-nique"))
        await st.close()
        conn = await asyncpg.connect(postgres_url)
        try:  # back to before 0007
            await conn.execute(
                "DROP INDEX messages_text; DROP TEXT SEARCH CONFIGURATION preau_search;"
                "DROP EXTENSION unaccent; DELETE FROM schema_version WHERE version = 7;")
            st = PostgresStore(postgres_url)
            await st.open()
            try:
                assert await st.schema_version() == LATEST
                hits = await st.search(HUGO, E1, ["pique", "nique"])
                assert [(h.discussion_id, h.kind, h.seq) for h in hits] == [
                    (d.id, "message", 1)]
                assert [h.kind for h in await st.search(HUGO, E1, ["theatre"])] == ["subject"]
                await conn.execute("SET enable_seqscan = off")  # a tiny table all the same
                plan = "\n".join(r[0] for r in await conn.fetch(
                    "EXPLAIN SELECT 1 FROM messages WHERE to_tsvector('preau_search'::regconfig,"
                    " body) @@ to_tsquery('preau_search'::regconfig, 'nique')"))
                assert "messages_text" in plan  # the index serves the search expression
            finally:
                await st.close()
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

    async def test_an_application_name_in_the_url_is_kept(self, postgres_url: str):
        store = await open_store(f"{postgres_url}?application_name=preau-node-2")
        try:
            assert isinstance(store, PostgresStore)
            async with store.pool.acquire() as conn:
                assert await conn.fetchval("SHOW application_name") == "preau-node-2"
                assert await conn.fetchval("SHOW lock_timeout") == "10s"
        finally:
            await store.close()

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
    async def test_one_batch_answers_each_message_for_itself(
            self, store: PostgresStore, caplog: pytest.LogCaptureFixture):
        caplog.set_level(logging.INFO, "preau.store")
        d = await store.create_discussion(HUGO, T1, "S", [E1], now=SCHOOL_DAY)
        other = await store.create_discussion(HUGO, T1, "S2", [E1], now=SCHOOL_DAY)
        await store.append_message(HUGO, d.id, T1, "before", "x", now=SCHOOL_DAY)

        def send(did: DiscussionId, client_id: str, version: int | None = None,
                 hidden: tuple[UserId, ...] = ()) -> Awaitable[tuple[StoredMessage, bool]]:
            return store.append_message(HUGO, did, T1, client_id, "b", now=SCHOOL_DAY,
                                        members_version=version, hidden_from=hidden)

        # Gathered in one go: they are queued together, and stored by one statement.
        results = await asyncio.gather(
            send(d.id, "a1"), send(other.id, "o1"), send(d.id, "before"),
            send(d.id, "a2", d.version, (E1,)), send(d.id, "a1"),
            send(DiscussionId(10**9), "lost"),
            send(d.id, "stale", d.version + 5), send(other.id, "o2"),
            return_exceptions=True)
        assert "one by one" not in caplog.text  # all answered by the batch statement
        assert isinstance(results[5], NotFound)
        assert isinstance(results[6], MembersChanged)
        stored = [r for r in results if isinstance(r, tuple)]
        assert [(m.client_id, m.seq, new) for m, new in stored] == [
            ("a1", 2, True), ("o1", 1, True), ("before", 1, False), ("a2", 3, True),
            ("a1", 2, False), ("o2", 2, True)]
        assert [m.hidden_from for m, _ in stored] == [set(), set(), set(), {E1}, set(), set()]
        assert (await store.get_discussion(HUGO, d.id)).last_seq == 3
        assert [m.client_id for m in await store.messages(HUGO, d.id)] == [
            "a2", "a1", "before"]
        assert [m.client_id for m in await store.messages(HUGO, d.id, reader=E1)] == [
            "a1", "before"]

    async def test_batches_of_several_processes_over_the_same_discussions(
            self, store: PostgresStore, postgres_url: str):
        ids = [int((await store.create_discussion(HUGO, T1, f"S{i}", [E1],
                                                  now=SCHOOL_DAY)).id) for i in range(6)]
        # The processes queue the discussions in different orders: each batch locks its
        # rows in key order whatever its own, so no two batches wait on each other.
        orders = [ids, ids[::-1], ids[::2] + ids[1::2], ids[::-1]]
        procs = [await asyncio.create_subprocess_exec(
            sys.executable, "-c", _APPEND_ROUNDS, postgres_url, json.dumps(order), f"p{i}",
            "20", SCHOOL_DAY.isoformat(), cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            for i, order in enumerate(orders)]
        try:
            async with asyncio.timeout(120):
                outputs = [await p.communicate() for p in procs]
        finally:
            for p in procs:
                if p.returncode is None:
                    p.kill()
                    await p.wait()
        seqs: dict[int, list[int]] = {d: [] for d in ids}
        for p, (out, err) in zip(procs, outputs, strict=True):
            assert p.returncode == 0, err.decode()
            for d, seq, new in json.loads(out):
                assert new is True
                seqs[d].append(seq)
        for d in ids:
            assert sorted(seqs[d]) == list(range(1, 4 * 20 + 1))
            assert (await store.get_discussion(HUGO, DiscussionId(d))).last_seq == 80

    async def test_a_message_the_database_refuses_fails_alone(
            self, store: PostgresStore, caplog: pytest.LogCaptureFixture):
        caplog.set_level(logging.INFO, "preau.store")
        d = await store.create_discussion(HUGO, T1, "S", [E1], now=SCHOOL_DAY)
        results = await asyncio.gather(*(
            store.append_message(HUGO, d.id, T1, f"c{i}", "nul \x00 byte" if i == 1 else "ok",
                                 now=SCHOOL_DAY) for i in range(4)), return_exceptions=True)
        assert "a batch of 4 messages failed" in caplog.text
        assert isinstance(results[1], UnstorableValue)
        stored = [r for r in results if isinstance(r, tuple)]
        assert sorted(m.seq for m, _ in stored) == [1, 2, 3]
        assert (await store.get_discussion(HUGO, d.id)).last_seq == 3


@pytest.mark.parametrize(("error", "expected"), [
    (asyncpg.exceptions.DiskFullError, StoreFull),
    (asyncpg.exceptions.SerializationError, StoreBusy),
    (asyncpg.exceptions.DeadlockDetectedError, StoreBusy),
    (asyncpg.exceptions.LockNotAvailableError, StoreBusy),
    (asyncpg.exceptions.QueryCanceledError, StoreBusy),
    (asyncpg.exceptions.AdminShutdownError, StoreUnavailable),
    (asyncpg.exceptions.CrashShutdownError, StoreUnavailable),
    (asyncpg.exceptions.CannotConnectNowError, StoreUnavailable),
    (asyncpg.exceptions.TooManyConnectionsError, StoreUnavailable),
    (asyncpg.exceptions.ReadOnlySQLTransactionError, StoreUnavailable),
    (asyncpg.exceptions.ConnectionFailureError, StoreUnavailable),
    (asyncpg.exceptions.CharacterNotInRepertoireError, UnstorableValue),
    (asyncpg.exceptions.NumericValueOutOfRangeError, UnstorableValue),
    (asyncpg.exceptions.UntranslatableCharacterError, UnstorableValue),
    (asyncpg.exceptions.UniqueViolationError, StoreError),
    (ConnectionResetError, StoreUnavailable),
    (TimeoutError, StoreBusy),
])
def test_each_sqlstate_becomes_the_stores_error(error: type[Exception],
                                                 expected: type[StoreError]):
    """The errors the contract suite cannot provoke cheaply, by the server's SQLSTATE."""
    translated = translate(error("the server's words"), "storing messages")
    assert type(translated) is expected
    assert translated.retryable == (expected is not UnstorableValue
                                    and expected is not StoreError)


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


def test_a_password_in_the_database_url_is_never_shown():
    assert displayed_url("postgresql://preau:s3cret@db.example:5432/preau?pool_max=4") == \
        "postgresql://preau:***@db.example:5432/preau?pool_max=4"
    assert displayed_url("postgresql://preau@db/preau") == "postgresql://preau@db/preau"
    assert displayed_url("sqlite:///var/preau.db") == "sqlite:///var/preau.db"
