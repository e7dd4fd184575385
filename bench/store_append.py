"""Appending messages to the PostgreSQL store: messages per second, and the database's
CPU per stored message (docs/design/postgresql.md quotes it).

    python -m bench.store_append [--senders 50] [--rooms 10] [--messages 5000]
                                 [--pool 10] [--alone] [--body TEXT]
                                 [--url postgresql://…/postgres]

``--senders`` coroutines append at once (as a node's connections would), round-robin
over ``--rooms`` discussions, into a new database created (and dropped) on the server
of ``--url``. ``--alone`` stores each message by its own statement (no group commit),
for comparison. ``--body`` is the text of every message ("Bonjour" unless given): its
words are what the full-text index (migration 0007) costs at each append. The CPU is
that of the server processes serving this run's connections (from /proc, so the
server must run on this machine); the WAL writer and checkpointer are not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from server.directory import parse_directory
from server.model import SchoolId, UserId
from server.store.postgres import PostgresStore
from server.store.postgres_appender import Append
from tests.schools import school_doc

HUGO = SchoolId("hugo")
NOW = datetime(2026, 11, 24, 9, tzinfo=UTC)


def _cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


async def run(url: str, senders: int, rooms: int, count: int, pool: int, alone: bool,
              body: str = "Bonjour") -> str:
    name = f"preau_bench_{os.getpid()}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        dsn = urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
        store = PostgresStore(dsn, pool_min=pool, pool_max=pool)
        await store.open()
        try:
            await store.import_directory(parse_directory(school_doc()), actor="b", now=NOW)
            ids = [(await store.create_discussion(HUGO, UserId("t1"), f"r{i}", [UserId("e1")],
                                                  now=NOW)).id for i in range(rooms)]
            pids = [r[0] for r in await admin.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1", name)]
            sent = 0

            async def sender() -> None:
                nonlocal sent
                while sent < count:
                    i, sent = sent, sent + 1
                    if alone:
                        await store._append_alone(Append(HUGO, ids[i % rooms], UserId("t1"),
                                                         f"c{i}", body, NOW, frozenset(),
                                                         None))
                    else:
                        await store.append_message(HUGO, ids[i % rooms], UserId("t1"),
                                                   f"c{i}", body, now=NOW)

            cpu, wall, own = _cpu_seconds(pids), time.perf_counter(), time.process_time()
            await asyncio.gather(*(sender() for _ in range(senders)))
            wall = time.perf_counter() - wall
            cpu = _cpu_seconds(pids) - cpu
            own = time.process_time() - own
            stored = sum([(await store.get_discussion(HUGO, d)).last_seq for d in ids])
            assert stored == count, f"{stored} stored of {count}"
        finally:
            await store.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
    return (f"{'alone' if alone else 'group commit'}: senders={senders} rooms={rooms} "
            f"pool={pool}: {count / wall:,.0f} messages/s, PostgreSQL CPU "
            f"{cpu / count * 1e6:.0f} µs/message, node CPU {own / count * 1e6:.0f} µs/message")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--senders", type=int, default=50)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--pool", type=int, default=10)
    parser.add_argument("--alone", action="store_true")
    parser.add_argument("--body", default="Bonjour")
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    print(asyncio.run(run(args.url, args.senders, args.rooms, args.messages, args.pool,
                          args.alone, args.body)))


if __name__ == "__main__":
    main()
