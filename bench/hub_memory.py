"""Where the memory of an idle connection goes: tracemalloc in a node, N connections.

Run with ``.venv/bin/python -m bench.hub_memory [--idle 2000] [--depth 1]``. Diagnostic
only (nothing is written to bench/RESULTS.md): tracemalloc slows the node and adds its
own bookkeeping, so the headline figure is the RSS one of ``bench.hub`` (d).

The node is ``python -m bench.hub_memory --serve …``: the ordinary ``preau serve``
(``server.cli.main``) with tracemalloc started first and a SIGUSR1 handler that
writes a snapshot (after a full collection). The client connects the same idle
connections as ``bench.hub`` (d) (N distinct students, each in one 26-member class
discussion, ``preau.msgpack``); snapshots are taken before and after; the
difference is printed grouped by allocation site (file:line, the innermost
``--depth`` frames), in bytes per connection, with the RSS difference for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import os
import signal
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _serve(snapshot_dir: str, argv: list[str]) -> int:
    tracemalloc.start(int(os.environ.get("BENCH_TRACE_DEPTH", "8")))
    count = [0]

    def dump(signum: int, frame: Any) -> None:
        gc.collect()
        count[0] += 1
        tracemalloc.take_snapshot().dump(os.path.join(snapshot_dir, f"snap{count[0]}.bin"))
        Path(snapshot_dir, f"snap{count[0]}.done").touch()

    signal.signal(signal.SIGUSR1, dump)
    from server.cli import main as cli_main

    return cli_main(argv)


async def _measure(idle: int, depth: int, top: int) -> None:
    import tempfile

    from bench import hub

    size = 26
    rooms = math.ceil(idle / size)
    opts = hub.Options(quick=True)
    snaps = Path(tempfile.mkdtemp(prefix="preau-bench-mem-"))
    sc = hub.Scenario(opts, 1, False, rooms, size,
                      entry=("-m", "bench.hub_memory", "--serve", str(snaps)))
    node = sc.nodes[0]
    clients: list[hub.WsClient] = []
    try:
        discussions = await hub.create_discussions(node.port, rooms, size)
        warm = [await hub.hello(node.port, hub.member_id(0, i), [discussions[0]])
                for i in range(size)]
        for ws in warm:
            await ws.close()
        await asyncio.sleep(2.0)

        async def snapshot(k: int) -> tracemalloc.Snapshot:
            os.kill(node.pid, signal.SIGUSR1)
            done = snaps / f"snap{k}.done"
            for _ in range(600):
                if done.exists():
                    break
                await asyncio.sleep(0.1)
            return tracemalloc.Snapshot.load(str(snaps / f"snap{k}.bin"))

        before = await snapshot(1)
        rss0 = hub.rss_kib(node.pid)
        sem = asyncio.Semaphore(100)

        async def one(r: int, i: int) -> None:
            async with sem:
                ws = await hub.hello(node.port, hub.member_id(r, i), [discussions[r]])
                ws.on_frame = hub._ignore
                clients.append(ws)

        await asyncio.gather(*(one(r, i) for r in range(rooms) for i in range(size)))
        await asyncio.sleep(5.0)
        after = await snapshot(2)
        rss1 = hub.rss_kib(node.pid)
        n = len(clients)
        stats = after.compare_to(before, "traceback")
        total = sum(s.size_diff for s in stats)
        print(f"{n} idle connections; RSS +{(rss1 - rss0) / n:.1f} KiB per connection under "
              f"tracemalloc; traced Python allocations +{total / n / 1024:.1f} KiB per "
              "connection (the rest: allocator slack, C libraries' own mallocs)\n")
        grouped: dict[str, list[int]] = {}
        for s in stats:
            frames = s.traceback[-depth:] if depth > 0 else s.traceback
            key = " <- ".join(f"{_short(f.filename)}:{f.lineno}" for f in reversed(frames))
            g = grouped.setdefault(key, [0, 0])
            g[0] += s.size_diff
            g[1] += s.count_diff
        owners: dict[str, int] = {}
        for st in stats:
            owner = "other (C-level allocations under the event loop, etc.)"
            for f in reversed(st.traceback):  # innermost first
                short = _short(f.filename)
                hit = next((o for o in OWNERS if short.startswith(o)), None)
                if hit is not None:
                    owner = OWNERS[hit]
                    break
            owners[owner] = owners.get(owner, 0) + st.size_diff
        print("by owner (innermost frame of a known package; asyncio/collections objects are "
              "counted for the code that created them):")
        for owner, size_diff in sorted(owners.items(), key=lambda kv: -kv[1]):
            print(f"{size_diff / n:10.0f}  {owner}")
        print()
        rows = sorted(grouped.items(), key=lambda kv: -kv[1][0])[:top]
        print("bytes/conn  blocks/conn  allocation site (innermost first)")
        for key, (size_diff, count_diff) in rows:
            print(f"{size_diff / n:10.0f}  {count_diff / n:11.2f}  {key}")
    finally:
        for ws in clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2)
        sc.close()
        import shutil

        shutil.rmtree(snaps, ignore_errors=True)


OWNERS = {
    "server/": "Préau (server/)",
    "uvicorn/": "uvicorn (HTTP + websockets-sansio protocol, receive queue, events)",
    "websockets/": "websockets (sans-I/O protocol, request/response headers)",
    "starlette/": "Starlette (ASGI app chain: middleware/routing coroutine frames, WebSocket)",
}


def _short(path: str) -> str:
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        return _serve(sys.argv[2], sys.argv[3:])
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--idle", type=int, default=2000)
    p.add_argument("--depth", type=int, default=1, help="frames per allocation site")
    p.add_argument("--top", type=int, default=30)
    args = p.parse_args()
    import uvloop

    from bench import hub

    hub._raise_nofile()
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {hub.LOAD_CPU})
    t0 = time.perf_counter()
    uvloop.run(asyncio.wait_for(_measure(args.idle, args.depth, args.top), 600))
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
