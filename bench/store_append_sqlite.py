"""Appending messages to the SQLite store (a file, through its group-commit appender):
messages per second, and this process's CPU per stored message (the database work is
done in its threads, so it is counted).

    python -m bench.store_append_sqlite [--senders 50] [--rooms 10] [--messages 5000]
                                        [--body TEXT]

The SQLite twin of :mod:`bench.store_append`, with the same load: ``--senders``
coroutines append at once, round-robin over ``--rooms`` discussions, into a new file
(deleted after). ``--body`` is every message's text: its words are what the full-text
index costs (in batches since migration 0011, partly after the appends: the second
figure adds the search that indexes the rest).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from server.directory import parse_directory
from server.model import SchoolId, UserId
from server.store import open_store
from tests.schools import school_doc

HUGO = SchoolId("hugo")
NOW = datetime(2026, 11, 24, 9, tzinfo=UTC)


async def run(senders: int, rooms: int, count: int, body: str) -> str:
    with tempfile.TemporaryDirectory(prefix="preau-bench-") as folder:
        store = await open_store(f"sqlite:///{Path(folder) / 'bench.db'}")
        try:
            await store.import_directory(parse_directory(school_doc()), actor="b", now=NOW)
            ids = [(await store.create_discussion(HUGO, UserId("t1"), f"r{i}", [UserId("e1")],
                                                  now=NOW)).id for i in range(rooms)]
            sent = 0

            async def sender() -> None:
                nonlocal sent
                while sent < count:
                    i, sent = sent, sent + 1
                    await store.append_message(HUGO, ids[i % rooms], UserId("t1"), f"c{i}",
                                               body, now=NOW)

            wall, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(sender() for _ in range(senders)))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            # Messages are indexed for search in batches (0011_search_batches.sql), some
            # after the last append: a search indexes what is left, counted apart.
            indexed = time.process_time()
            await store.search(HUGO, UserId("e1"), ["zzz"], limit=1)
            indexed = cpu + time.process_time() - indexed
            stored = sum([(await store.get_discussion(HUGO, d)).last_seq for d in ids])
            assert stored == count, f"{stored} stored of {count}"
        finally:
            await store.close()
    return (f"SQLite: senders={senders} rooms={rooms}: {count / wall:,.0f} messages/s, "
            f"process CPU {cpu / count * 1e6:.0f} µs/message, "
            f"{indexed / count * 1e6:.0f} with all indexed for search")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--senders", type=int, default=50)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--body", default="Bonjour")
    args = parser.parse_args()
    print(asyncio.run(run(args.senders, args.rooms, args.messages, args.body)))


if __name__ == "__main__":
    main()
