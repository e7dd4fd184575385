"""Benchmark: RedisBroker on loopback, publish -> receive, against a private redis-server.

Run with ``.venv/bin/python -m bench.broker`` (add ``--write`` to rewrite the
"Broker" section of ``bench/RESULTS.md``). Two brokers ("nodes") share one
private Redis; node A publishes 200-byte payloads on a channel node B subscribed.
It measures:

1. round trip: A publishes one message and waits until B's handler has it,
   one at a time: median and p99 in µs;
2. throughput, one publication awaited at a time (no batching possible);
3. throughput with 1,000 publications in flight (``asyncio.gather``): the
   flusher batches them into pipelines;
4. the same burst through a plain ``redis.asyncio`` client (a blocking pool of
   50 connections, one ``PUBLISH`` per call) as the baseline batching is
   measured against;
5. what one node's reader can take: ``redis-benchmark`` (pipelined, another
   process) publishes 100,000 messages, timed until B received them all (kept
   under Redis's 32 MB pub/sub output-buffer limit, past which Redis drops a
   subscriber that falls behind; the broker then reconnects by itself).

Throughput counts until B received everything. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis

from bench.report import machine_lines, write_section
from server.broker import RedisBroker
from tests.redis_server import RedisServer

__all__ = ["main"]

PAYLOAD = b"x" * 200
CHANNEL = "preau:{bench}:d:1"


class _Counter:
    def __init__(self) -> None:
        self.count = 0
        self.event = asyncio.Event()
        self.target = 0

    def handle_publication(self, channel: str, data: bytes) -> None:
        self.count += 1
        if self.count >= self.target:
            self.event.set()

    def handle_resubscribed(self) -> None:
        pass

    async def until(self, target: int) -> None:
        self.target = target
        if self.count < target:
            self.event.clear()
            await self.event.wait()


async def _round_trips(a: RedisBroker, b: _Counter, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        target = b.count + 1  # before publishing: delivery may beat publish()'s return
        start = time.perf_counter()
        await a.publish(CHANNEL, PAYLOAD)
        await b.until(target)
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


async def _throughput(
    b: _Counter, n: int, window: int, publish: Callable[[], Awaitable[object]]
) -> float:
    first = b.count
    start = time.perf_counter()
    for _ in range(0, n, window):
        if window == 1:
            await publish()
        else:
            await asyncio.gather(*(publish() for _ in range(window)))
    await b.until(first + n)
    return n / (time.perf_counter() - start)


async def _reader_ceiling(url: str, b: _Counter) -> str:
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return "not measured (redis-benchmark is not installed)"
    n, first = 100_000, b.count
    port = str(urlsplit(url).port)
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        binary, "-p", port, "-n", str(n), "-P", "100", "-c", "1", "-q",
        "PUBLISH", CHANNEL, PAYLOAD.decode(),
        stdout=asyncio.subprocess.DEVNULL,
    )
    await proc.wait()
    await b.until(first + n)
    return f"{n / (time.perf_counter() - start):,.0f} msg/s (100,000)"


async def _run(url: str) -> list[str]:
    a, b = RedisBroker(url, node_id="bench-a"), RedisBroker(url, node_id="bench-b")
    ha, hb = _Counter(), _Counter()
    a.register(ha)
    b.register(hb)
    await a.start()
    await b.start()
    # A naive publisher: one PUBLISH per call, concurrent calls spread over a blocking
    # pool (a plain pool refuses 1,000 concurrent commands: "Too many connections").
    plain = Redis(connection_pool=BlockingConnectionPool.from_url(url, max_connections=50))
    try:
        await b.subscribe(CHANNEL)
        await _round_trips(a, hb, 500)  # warm-up
        rtt = sorted(await _round_trips(a, hb, 5000))
        one = await _throughput(hb, 20_000, 1, lambda: a.publish(CHANNEL, PAYLOAD))
        burst = await _throughput(hb, 100_000, 1000, lambda: a.publish(CHANNEL, PAYLOAD))
        base = await _throughput(hb, 100_000, 1000, lambda: plain.publish(CHANNEL, PAYLOAD))
        reader = await _reader_ceiling(url, hb)
    finally:
        await plain.aclose()
        await a.close()
        await b.close()
    p99 = rtt[int(len(rtt) * 0.99)]
    return [
        f"- Round trip A publish -> B handler, one at a time: median "
        f"{statistics.median(rtt):.0f} µs, p99 {p99:.0f} µs (5,000 samples)",
        f"- Throughput, one publication awaited at a time: {one:,.0f} msg/s (20,000)",
        f"- Throughput, 1,000 in flight (flusher pipelines): {burst:,.0f} msg/s (100,000)",
        f"- Baseline, 1,000 in flight through a plain redis.asyncio client (blocking pool "
        f"of 50), one PUBLISH per call: {base:,.0f} msg/s (100,000)",
        f"- One node's reader, fed by redis-benchmark -P 100: {reader}",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args(argv)
    with RedisServer() as server:
        figures = asyncio.run(_run(server.url))
    lines = [
        "Command: `.venv/bin/python -m bench.broker`. Two RedisBrokers in one process, a "
        "private redis-server on 127.0.0.1, 200-byte payloads, one channel.",
        "",
        *machine_lines(["redis"]),
        "",
        *figures,
    ]
    print("\n".join(lines))
    if args.write:
        write_section("Broker", lines)


if __name__ == "__main__":
    main(sys.argv[1:])
