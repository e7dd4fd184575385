"""The Store's lifecycle (server/store/contract.py), on SQLite and PostgreSQL: open
migrates once and can be repeated, close releases, several stores (nodes) share one
database, and a healthy store reports no write failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.directory import parse_directory
from server.store import Store, open_store
from tests.conftest import SCHOOL_DAY
from tests.contracts.conftest import OpenStore
from tests.contracts.store_worker import run_workers
from tests.contracts.stores import E1, HUGO, T1, at
from tests.schools import school_doc

pytestmark = pytest.mark.anyio


async def test_reopening_keeps_everything_and_migrates_nothing_twice(store_url: str):
    first = await open_store(store_url)
    try:
        await first.import_directory(parse_directory(school_doc()), actor="t", now=SCHOOL_DAY)
        m = await first.create_discussion(HUGO, T1, "S", [E1], now=at(0), first=("c0", "m1"))
    finally:
        await first.close()
    for _ in range(2):
        again = await open_store(store_url)
        try:
            assert await again.list_schools() == [HUGO]
            assert [x.body for x in await again.messages_after(HUGO, m.id, 0)] == ["m1"]
        finally:
            await again.close()


async def test_nodes_starting_at_once_on_a_new_database_migrate_it_once(
        store_url: str, tmp_path: Path):
    job = {"do": "schools", "url": store_url, "school": HUGO, "now": at(0).isoformat(),
           "open_late": True}
    assert await run_workers([job] * 4, tmp_path / "go") == [[]] * 4
    st = await open_store(store_url)
    try:
        await st.import_directory(parse_directory(school_doc()), actor="t", now=SCHOOL_DAY)
        assert await st.list_schools() == [HUGO]
    finally:
        await st.close()


async def test_two_nodes_share_one_database_at_once(schools: Store, open_more: OpenStore):
    other = await open_more()  # opening migrates nothing more, under the first one's feet
    m = await schools.create_discussion(HUGO, T1, "S", [E1], now=at(0))
    msg, _ = await other.append_message(HUGO, m.id, E1, "c1", "de l'autre nœud", now=at(1))
    assert await schools.find_message(HUGO, m.id, E1, "c1") == msg
    nxt, _ = await schools.append_message(HUGO, m.id, T1, "c2", "réponse", now=at(2))
    assert nxt.seq == 2


async def test_a_healthy_store_reports_no_write_failure(schools: Store):
    assert schools.write_failure() is None
    await schools.set_meta("k", "v")
    assert schools.write_failure() is None


async def test_close_releases_the_database(store_url: str):
    st = await open_store(store_url)
    await st.set_meta("k", "v")
    await st.close()
    # The database is free for others; reading it again finds what was written.
    again = await open_store(store_url)
    try:
        assert await again.get_meta("k") == "v"
    finally:
        await again.close()
