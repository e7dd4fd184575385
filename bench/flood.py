"""Benchmark: one pupil's account floods a node while a teacher and the principal work.

Run with ``.venv/bin/python -m bench.flood [--runs 3] [--iterations 40]``.

One ``preau serve`` (embedded defaults: SQLite file, in-memory broker, the default
limits) pinned to CPU 0 serves a demo school; the clients run on CPU 1. A teacher
and the principal share a discussion and work as people do: each sends a message
and waits for its ack, asks for a page of their list, and every fifth time
reconnects (``hello`` with ``resume``). Their ack latencies are measured twice:
alone, then while one pupil opens as many connections as the node allows (and one
more), and from every one of them sends frames as fast as the socket takes them,
for as long as the honest users work — starts to every staff member, sends, reads,
lists, histories, typing, pings. p50/p99 of the honest users' acks go to the "Flood" section of
bench/RESULTS.md.

The same scenario (:func:`flood`, :func:`honest`) is the bounded test
``tests/test_flood.py``, which asserts behaviour (everyone honest answered and
welcomed, the flooder limited) and never time.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.report import machine_lines, write_section
from server.model import SchoolId, UserId
from server.tokens import issue_token

__all__ = ["Client", "FloodReport", "HonestReport", "flood", "honest"]

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-flood-" + "s" * 40
CLOCK = "2026-11-24T09:00:00Z"
PYTHON = sys.executable

Token = Callable[[str], str]


class Client:
    """A JSON WebSocket client: requests matched to replies by ``ref``; the rest counted."""

    def __init__(self, ws: ClientConnection, welcome: dict[str, Any]) -> None:
        self.ws = ws
        self.welcome = welcome
        self.counts: Counter[str] | None = None  # replies to fire-and-forget requests
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._refs = itertools.count()
        self.close_code: int | None = None
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def hello(cls, url: str, token: str, resume: list[list[int]] | None = None
                    ) -> tuple[Client | None, dict[str, Any]]:
        """Connect and say hello: the client and its welcome, or ``None`` and the frame
        (an error) that refused it, with ``close`` set to the close code."""
        ws = await connect(url, subprotocols=["preau.json"],  # type: ignore[list-item]
                           open_timeout=20, max_size=None)
        hello: dict[str, Any] = {"type": "hello", "token": token}
        if resume is not None:
            hello["resume"] = resume
        await ws.send(json.dumps(hello))
        while True:
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 20))
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                return None, {"type": "closed", "close": code}
            if frame["type"] == "welcome":
                return cls(ws, frame), frame
            if frame["type"] == "error":
                try:
                    await asyncio.wait_for(ws.recv(), 20)
                except ConnectionClosed as exc:
                    frame["close"] = exc.rcvd.code if exc.rcvd is not None else None
                await ws.close()
                return None, frame

    async def _read(self) -> None:
        try:
            async for data in self.ws:
                frame = json.loads(data)
                future = self._pending.pop(frame.get("ref", ""), None)
                if future is not None and not future.done():
                    future.set_result(frame)
                elif self.counts is not None and "ref" in frame:
                    self.counts[frame.get("code", frame["type"])] += 1
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd is not None else None
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("closed"))

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        ref = f"r{next(self._refs)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ref] = future
        await self.ws.send(json.dumps({**frame, "ref": ref}))
        return await asyncio.wait_for(future, 20)

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)


@dataclass
class HonestReport:
    user: str
    ack_ms: list[float] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)  # any refused request
    lists: int = 0
    welcomes: int = 0
    reconnects: int = 0


@dataclass
class FloodReport:
    codes: Counter[str] = field(default_factory=Counter)  # reply types and error codes
    connections: int = 0
    refused: list[dict[str, Any]] = field(default_factory=list)  # hello refusals
    frames_sent: int = 0
    seconds: float = 0.0  # from the first connection to the last reply
    cut: Counter[str] = field(default_factory=Counter)  # flood connections closed, by code


async def honest(url: str, token: Token, user: str, discussion: int, *, iterations: int,
                 pause: float, every: int = 5) -> HonestReport:
    """Send and wait for the ack, list a page, reconnect every ``every`` iterations."""
    report = HonestReport(user)
    client, welcome = await Client.hello(url, token(user), resume=[])
    if client is None:
        report.errors.append(welcome)
        return report
    report.welcomes += 1
    seq = 0
    try:
        for i in range(iterations):
            started = time.perf_counter()
            ack = await client.request({"type": "send", "discussion": discussion,
                                        "body": f"{user} {i}", "client_id": f"{user}-{i}"})
            if ack["type"] == "ack":
                report.ack_ms.append((time.perf_counter() - started) * 1000)
                seq = max(seq, ack["seq"])
            else:
                report.errors.append(ack)
            page = await client.request({"type": "list", "limit": 10})
            if page["type"] == "discussions":
                report.lists += 1
            else:
                report.errors.append(page)
            if (i + 1) % every == 0:
                await client.close()
                report.reconnects += 1
                again, welcome = await Client.hello(url, token(user),
                                                    resume=[[discussion, seq]])
                if again is None:
                    report.errors.append(welcome)
                    return report
                client = again
                report.welcomes += 1
            await asyncio.sleep(pause)
    finally:
        await client.close()
    return report


async def flood(url: str, token: Token, user: str, staff: list[str], *, frames: int,
                connections: int, stop: asyncio.Event | None = None) -> FloodReport:
    """Open ``connections`` connections as ``user`` (plus one beyond the node's cap, if
    ``connections`` reaches it) and send ``frames`` frames from each (fewer if ``stop``
    is set first), as fast as the socket takes them; the replies are counted by type or
    error code."""
    report = FloodReport()
    began = time.perf_counter()
    clients: list[Client] = []
    for _ in range(connections + 1):
        client, frame = await Client.hello(url, token(user))
        if client is None:
            report.refused.append(frame)
        else:
            clients.append(client)
    report.connections = len(clients)
    if not clients:
        return report
    first = await clients[0].request({"type": "start", "subject": "flood", "to": staff[:1],
                                      "body": "x", "client_id": "flood-first"})
    d = first["discussion"]["id"] if first["type"] == "started" else 1
    kinds: list[dict[str, Any]] = [
        {"type": "start", "subject": "flood", "to": staff, "body": "x"},
        {"type": "send", "discussion": d, "body": "x" * 200},
        {"type": "read", "discussion": d, "seq": 1},
        {"type": "list", "limit": 200},
        {"type": "history", "discussion": d, "limit": 100},
        {"type": "typing", "discussion": d},
        {"type": "ping"},
    ]

    async def pour(n: int, client: Client) -> None:
        client.counts = report.codes
        for i in range(frames):
            if stop is not None and stop.is_set():
                break
            frame = dict(kinds[i % len(kinds)])
            ref = f"f{n}-{i}"
            frame["ref"] = ref
            if frame["type"] in ("start", "send"):
                frame["client_id"] = ref
            try:
                await client.ws.send(json.dumps(frame))
            except ConnectionClosed:
                # Cut (4008: it read its replies too slowly): count it, and come back, as
                # an attacker would; bounded by ``frames`` all the same.
                await client.close()
                report.cut[str(client.close_code)] += 1
                for _ in range(50):  # its place is free once the server has noticed
                    again, refusal = await Client.hello(url, token(user))
                    if again is not None:
                        break
                    report.refused.append(refusal)
                    await asyncio.sleep(0.1)
                if again is None:
                    break
                client = clients[n] = again
                client.counts = report.codes
                continue
            report.frames_sent += 1
            if i % 50 == 49:
                await asyncio.sleep(0)  # let the other connections pour too

    await asyncio.gather(*(pour(n, c) for n, c in enumerate(clients)))
    # The last replies: until a tenth of a second passes without one (at most 30 s).
    for _ in range(300):
        before = report.codes.total()
        await asyncio.sleep(0.1)
        if report.codes.total() == before:
            break
    report.seconds = time.perf_counter() - began
    for client in clients:
        await client.close()
    return report


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# ---------------------------------------------------------------------- the benchmark


def _taskset(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") else []


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _token(user: str) -> str:
    now = datetime.fromisoformat(CLOCK.replace("Z", "+00:00"))
    return issue_token(SECRET, SchoolId("demo"), UserId(user), ttl=timedelta(hours=2),
                       now=now)


async def _run(base: str, school: dict[str, Any], args: argparse.Namespace
               ) -> dict[str, list[float] | FloodReport]:
    url = base.replace("http://", "ws://") + "/ws"
    users = school["users"]
    teacher = next(u["id"] for u in users if u["role"] == "teacher")
    principal = next(u["id"] for u in users if u["role"] == "staff" and u.get("admin"))
    staff = [u["id"] for u in users if u["role"] == "staff"]
    pupil = next(u["id"] for u in users if u["role"] == "student")
    client, _ = await Client.hello(url, _token(teacher))
    assert client is not None
    started = await client.request({"type": "start", "subject": "Conseil de classe",
                                    "to": [principal], "body": "ordre du jour",
                                    "client_id": "bench"})
    d = started["discussion"]["id"]
    await client.close()

    async def work(tag: str) -> list[float]:
        reports = await asyncio.gather(*(
            honest(url, _token, u, d, iterations=args.iterations, pause=0.25)
            for u in (teacher, principal)))
        for r in reports:
            if r.errors:
                raise RuntimeError(f"{tag}: {r.user} was refused: {r.errors[:3]}")
        return [ms for r in reports for ms in r.ack_ms]

    alone = await work("alone")
    stop = asyncio.Event()
    flood_task = asyncio.create_task(flood(url, _token, pupil, staff, frames=args.frames,
                                           connections=10, stop=stop))
    await asyncio.sleep(0.5)  # the flood is under way
    flooded = await work("flood")
    poured = flood_task.done()
    stop.set()
    report = await flood_task
    if poured:
        raise RuntimeError(f"the flood ended before the honest users: {report}")
    return {"alone": alone, "flooded": flooded, "report": report}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--frames", type=int, default=2_000_000,
                   help="at most this many frames per flood connection (it stops with the "
                        "honest users)")
    p.add_argument("--iterations", type=int, default=40, help="acks per honest user per run")
    args = p.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="preau-flood-") as tmp:
        work = Path(tmp)
        school_file = work / "school.json"
        with school_file.open("w") as out:
            subprocess.run([PYTHON, "-m", "server", "demo-school", "--classes", "4",
                            "--students", "28", "--seed", "1", "--school-id", "demo"],
                           stdout=out, check=True)
        school = json.loads(school_file.read_text())
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREAU_")}
        env.pop("REDIS_URL", None)
        env.update({"PREAU_DATABASE_URL": f"sqlite:///{work / 'f.db'}",
                    "PREAU_JWT_SECRET": SECRET, "PREAU_CLOCK_START": CLOCK,
                    "PYTHONPATH": str(ROOT)})
        subprocess.run([PYTHON, "-m", "server", "directory", "import", str(school_file)],
                       env=env, check=True, capture_output=True)
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
            for _ in range(args.runs):
                results.append(asyncio.run(_run(base, school, args)))
        finally:
            server.terminate()
            server.wait(timeout=20)
    alone = [ms for r in results for ms in r["alone"]]  # type: ignore[union-attr]
    flooded = [ms for r in results for ms in r["flooded"]]  # type: ignore[union-attr]
    codes: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    cut: Counter[str] = Counter()
    sent = 0
    seconds = 0.0
    for r in results:
        rep = r["report"]
        assert isinstance(rep, FloodReport)
        codes += rep.codes
        cut += rep.cut
        sent += rep.frames_sent
        seconds += rep.seconds
        refused.update(str(f.get("close")) for f in rep.refused)
    lines = [
        f"Command: `.venv/bin/python -m bench.flood --runs {args.runs} --frames {args.frames} "
        f"--iterations {args.iterations}`",
        "",
        *machine_lines(["starlette", "uvicorn", "websockets", "httpx"]),
        "- Pinning: `preau serve` on CPU 0 (embedded defaults: SQLite file, in-memory "
        "broker, default limits: 20 requests/s per user, 10 connections per user); the "
        "benchmark's clients on CPU 1.",
        "",
        "A teacher and the principal share a discussion; each, every 0.25 s, sends a "
        "message and waits for its ack, then lists 10 discussions, and reconnects with "
        f"`resume` every fifth time ({args.iterations} acks each per run). With the flood, "
        "one pupil opens 11 connections (the 11th is refused) and pours frames from each "
        "of the 10 others, as fast as they go, for as long as the honest users work (start "
        "to every staff member, send, read, list of 200, history of 100, typing, ping, in "
        "turn).",
        "",
        "| honest users' acks | p50 | p99 | acks |",
        "|---|---:|---:|---:|",
        f"| alone | {_p(alone, 0.5):.1f} ms | {_p(alone, 0.99):.1f} ms | {len(alone)} |",
        f"| during the flood | {_p(flooded, 0.5):.1f} ms | {_p(flooded, 0.99):.1f} ms | "
        f"{len(flooded)} |",
        "",
        f"The flood: {sent:,} frames written in {seconds:.0f} s ({sent / seconds:,.0f}/s; "
        "most wait unread in the flooder's TCP buffers: the server reads a user over the "
        "rate no faster than the allowance); replies "
        + ", ".join(f"{k} {v:,}" for k, v in codes.most_common())
        + "; hello refusals by close code: "
        + (", ".join(f"{k} × {v}" for k, v in refused.items()) or "none")
        + "; flood connections cut (and reopened) by close code: "
        + (", ".join(f"{k} × {v}" for k, v in cut.items()) or "none")
        + ". Target (issue 12): p99 under 50 ms during the flood.",
    ]
    write_section("Flood: one account against everyone else", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
