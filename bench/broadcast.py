"""Benchmark: a poll to every parent of a school, and everyone answering at once.

Run with ``.venv/bin/python -m bench.broadcast [--classes 30] [--runs 3]``.

One ``preau serve`` (embedded defaults: SQLite file, in-memory broker) pinned to
CPU 0 serves a demo school of N classes × 28 students; every parent connects
(the load side runs on CPU 1). Per run, the principal posts a named poll to all
parents, and the benchmark measures:

- **fan-out**: from the POST to the last parent's ``broadcast`` event;
- **answers**: every parent then answers over REST (32 keep-alive connections,
  one request in flight on each); answers per second, and the time until the
  author's connection holds
  figures (``broadcast_stats``) that count every answer.

Medians over the runs are written to the "Broadcasts" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from bench.report import machine_lines, write_section
from server.model import SchoolId, UserId
from server.tokens import issue_token

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-broadcast-" + "s" * 40
CLOCK = "2026-11-24T09:00:00Z"
PYTHON = sys.executable
IN_FLIGHT = 32


def _taskset(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") else []


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _token(user: str) -> str:
    now = datetime.fromisoformat(CLOCK.replace("Z", "+00:00")).astimezone(UTC)
    return issue_token(SECRET, SchoolId("demo"), UserId(user), ttl=timedelta(days=1), now=now)


class Listener:
    """One parent's connection: records when each broadcast arrived."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.arrived: dict[int, float] = {}
        self.stats: list[dict[str, Any]] = []
        self.task = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, url: str, user: str) -> Listener:
        ws = await connect(url, subprotocols=["preau.json"],  # type: ignore[list-item]
                           open_timeout=30, max_size=2**22)
        await ws.send(json.dumps({"type": "hello", "token": _token(user)}))
        while json.loads(await ws.recv())["type"] != "welcome":
            pass
        return cls(ws)

    async def _read(self) -> None:
        async for data in self.ws:
            frame = json.loads(data)
            if frame["type"] == "broadcast":
                self.arrived.setdefault(frame["broadcast"]["id"], time.perf_counter())
            elif frame["type"] == "broadcast_stats":
                self.stats.append(frame["stats"])


class Answerer:
    """A bare HTTP/1.1 keep-alive connection: httpx would cost the benchmark more CPU
    per request than the server spends, and measure itself."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, base: str) -> Answerer:
        host, port = base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer, f"{host}:{port}")

    async def put(self, path: str, token: str, body: dict[str, Any]) -> int:
        data = json.dumps(body).encode()
        self.writer.write(
            f"PUT {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
            .encode() + data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


async def _wait(predicate: Any) -> None:
    async with asyncio.timeout(120):
        # Polling: the condition spans hundreds of listeners; 2 ms bounds the error.
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.002)


async def measure(base: str, parents: list[str], runs: int) -> list[dict[str, float]]:
    ws_url = base.replace("http://", "ws://") + "/ws"
    listeners: list[Listener] = []
    for i in range(0, len(parents), 100):
        listeners += await asyncio.gather(*(Listener.open(ws_url, p)
                                            for p in parents[i:i + 100]))
    author = await Listener.open(ws_url, "admin")
    results = []
    limits = httpx.Limits(max_connections=IN_FLIGHT)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        for run in range(runs):
            result = await one_run(http, listeners, author, parents, run)
            results.append(result)
            print(f"run {run + 1}: fan-out to {len(parents)} parents "
                  f"{result['fanout_ms']:.0f} ms, {result['answers_per_s']:.0f} answers/s, "
                  f"author's figures complete {result['figures_ms']:.0f} ms after the "
                  "first answer", flush=True)
    for x in [*listeners, author]:
        await x.ws.close()
    return results


async def one_run(http: httpx.AsyncClient, listeners: list[Listener], author: Listener,
                  parents: list[str], run: int) -> dict[str, float]:
    body = {"kind": "poll", "client_id": f"bench-{run}-{time.time_ns()}",
            "title": "Sortie", "body": "Qui vient ?", "to": {"roles": ["parent"]},
            "questions": [{"text": "Vous venez ?", "kind": "single",
                           "choices": ["Oui", "Non"]}]}
    t0 = time.perf_counter()
    r = await http.post("/api/broadcasts", json=body,
                        headers={"Authorization": f"Bearer {_token('admin')}"})
    r.raise_for_status()
    bid = r.json()["broadcast"]["id"]
    await _wait(lambda: all(bid in x.arrived for x in listeners))
    fanout = max(x.arrived[bid] for x in listeners) - t0
    tokens = {u: _token(u) for u in parents}
    queue = list(enumerate(parents))
    answerers = [await Answerer.open(str(http.base_url).rstrip("/")) for _ in range(IN_FLIGHT)]

    async def work(a: Answerer) -> None:
        while queue:
            k, user = queue.pop()
            status = await a.put(f"/api/broadcasts/{bid}/answers", tokens[user],
                                 {"answers": [{"choices": [k % 2]}]})
            if status != 200:
                raise RuntimeError(f"answer refused with HTTP {status}")

    t1 = time.perf_counter()
    await asyncio.gather(*(work(a) for a in answerers))
    t2 = time.perf_counter()
    for a in answerers:
        a.close()
    await _wait(lambda: any(s["answered"] == len(parents) for s in author.stats[-5:]))
    t3 = time.perf_counter()
    return {"fanout_ms": fanout * 1000, "answers_per_s": len(parents) / (t2 - t1),
            "figures_ms": (t3 - t1) * 1000}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", type=int, default=30)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="preau-broadcast-") as tmp:
        work = Path(tmp)
        school = work / "school.json"
        with school.open("w") as out:
            subprocess.run([PYTHON, "-m", "server", "demo-school", "--classes",
                            str(args.classes), "--students", "28", "--seed", "1"],
                           stdout=out, check=True)
        doc = json.loads(school.read_text())
        parents = sorted(u["id"] for u in doc["users"] if u["role"] == "parent")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREAU_")}
        env.pop("REDIS_URL", None)
        env.update({"PREAU_DATABASE_URL": f"sqlite:///{work / 'b.db'}",
                    "PREAU_JWT_SECRET": SECRET, "PREAU_CLOCK_START": CLOCK,
                    "PYTHONPATH": str(ROOT)})
        subprocess.run([PYTHON, "-m", "server", "directory", "import", str(school)], env=env,
                       check=True, capture_output=True)
        port = _free_port()
        log = (work / "serve.log").open("wb")
        server = subprocess.Popen([*_taskset(0), PYTHON, "-m", "server", "serve", "--port",
                                   str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not start")
                time.sleep(0.1)
            if shutil.which("taskset"):
                os.sched_setaffinity(0, {1})
            results = asyncio.run(measure(base, parents, args.runs))
        finally:
            server.terminate()
            server.wait(timeout=20)
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    lines = [
        f"Command: `.venv/bin/python -m bench.broadcast --classes {args.classes} "
        f"--runs {args.runs}`",
        "",
        *machine_lines(["starlette", "uvicorn", "websockets", "httpx"]),
        "- Pinning: `preau serve` on CPU 0 (embedded defaults: SQLite file, in-memory "
        "broker); the benchmark's clients on CPU 1.",
        "",
        f"A demo school of {args.classes} classes × 28 students (seed 1); all "
        f"{len(parents):,} parents connected over WebSocket (JSON), plus the principal. "
        "Per run, the principal posts a named poll to every parent; then every parent "
        f"answers over REST on {IN_FLIGHT} keep-alive connections (a bare HTTP/1.1 client: "
        "httpx cost more CPU per request than the server).",
        "",
        "| figure | median | runs |",
        "|---|---:|---|",
        f"| fan-out: POST to the last parent's `broadcast` event | {med['fanout_ms']:,.0f} ms | "
        + ", ".join(f"{r['fanout_ms']:,.0f}" for r in results) + " |",
        f"| answers stored and counted, per second | {med['answers_per_s']:,.0f} | "
        + ", ".join(f"{r['answers_per_s']:,.0f}" for r in results) + " |",
        f"| first answer to the author's figures counting all {len(parents):,} | "
        f"{med['figures_ms']:,.0f} ms | "
        + ", ".join(f"{r['figures_ms']:,.0f}" for r in results) + " |",
        "",
        "Each answer is one transaction (the recipient's row, the per-choice counts and "
        "the figures' version together) and one `broadcast_stats` event to the author; "
        "the fan-out marks every connected recipient received in one transaction.",
    ]
    write_section("Broadcasts", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
