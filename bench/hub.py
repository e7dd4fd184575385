"""Benchmark: the live hub under a classroom load, over real sockets, real processes.

Run with ``.venv/bin/python -m bench.hub`` (4–5 minutes on a quiet machine; disturbed steps
are rerun, up to ~10) or ``--quick`` (about 1.5 minutes).
``--profile DIR`` instead profiles one node with py-spy (see :func:`scenario_profile`).

Scenario (the one of the peer harness, see bench/peers/README.md): ROOMS classroom
rooms × SIZE members (default 20 × 26 = 520 connections): one teacher and 25
students per room, in a hand-built school (one class per room, the teacher teaches
only that class). The directory is imported into a fresh SQLite file in a temporary
folder; each node is ``python -m server serve`` (pinned with ``taskset -c 0``), the
load generator (this process) and Redis run on CPU 1. Every teacher creates her
room's discussion through the protocol (``start`` with her 25 students); then the
520 clients connect (``preau.msgpack``, ``hello`` resuming from the discussion's
current position) and stay connected.

In every step each teacher sends RATE msgs/s (open-loop schedule, teachers phase
shifted) of a ~92-byte JSON text as the ``body`` of a ``send`` — the payload of the
peer harness: ``{k: step, s: seq, t: send time, r: room, m: measured?, p: padding}``.
Every member, the sender included, must receive every message. Measured, as in the
peer harness: deliveries/s inside the window, latency (receive − send, one clock)
p50/p95/p99/max, losses after a drain (5 s; 3 s in the ladder), messages never
delivered (after the hub has been silent for 1 s), duplicates; also the sender's
``send`` → ``ack`` time (the ack comes once the message is durable) and CPU.

(a) one node (in-memory broker), 10 msgs/s per room;
(b) one node, max-rate ladder: raise the rate until p99 > 200 ms or any loss (or
    any error frame), then bisect twice; report the best passing step;
(c) two nodes behind one private Redis, sharing the SQLite file, each room split
    half and half (the teacher and 12 students on node 0, 13 students on node 1),
    10 msgs/s per room; also (c0) one node behind the same Redis, as the reference;
(d) memory: one node, N idle authenticated connections (default 10,000; N distinct
    students, each in one 26-member class discussion): server RSS before and after,
    divided by N (also the marginal cost over the second half);
(e) what browsers do: the same clients offering ``permessage-deflate`` (Chrome and
    Firefox always do; the server accepts it): one node at 10 and 40 msgs/s per room,
    and 2,000 idle connections.

Persistence is on (SQLite, WAL, synchronous=NORMAL, as the server configures it)
and the gatekeeper checks every send. Figures go to ``bench/RESULTS.md`` (section
"Hub"). Only 127.0.0.1 is used; every wait is bounded. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import hashlib
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgpack
import uvloop
from websockets.speedups import apply_mask

from bench.report import machine_lines, write_section
from server.directory import parse_directory
from server.model import SchoolId, UserId
from server.store import open_store
from server.tokens import issue_token
from tests.redis_server import RedisServer

__all__ = ["classroom_school", "main"]

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-hub-secret-" + "h" * 40
DAY = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Paris: window open
SCHOOL = SchoolId("bench")
HOST = "127.0.0.1"
PAD = "x" * 32  # the peer harness's padding: a ~92-byte body
SERVER_CPU, LOAD_CPU = 0, 1
perf = time.perf_counter
CLK = os.sysconf("SC_CLK_TCK")
DISTURBED = 15.0  # % of a core used by other processes during a step: run it again
LADDER = (10, 20, 30, 40, 50, 60, 70, 80, 100, 120, 150)
# Cumulative CPU seconds of a database server's processes serving the benchmark, by
# process (bench/hub_postgres.py: the PostgreSQL backends of its database).
CpuSampler = Callable[[], Awaitable[dict[str, float]]]


# ---------------------------------------------------------------------- the school


def classroom_school(rooms: int, size: int, school_id: str = SCHOOL) -> dict[str, Any]:
    """A directory with ``rooms`` classes of ``size - 1`` students and one teacher each."""
    users: list[dict[str, Any]] = [
        {"id": "admin", "role": "staff", "first_name": "Anne", "last_name": "Admin",
         "profile": "staff", "admin": True}]
    classes = []
    for r in range(rooms):
        cid = f"c{r:04d}"
        classes.append({"id": cid, "name": f"Classe {r}", "level": "lycee"})
        users.append({"id": teacher_id(r), "role": "teacher", "first_name": "Prof",
                      "last_name": f"Salle{r}", "profile": "teachers", "teaches": [cid]})
        for i in range(1, size):
            users.append({"id": student_id(r, i), "role": "student", "first_name": f"Élève{i}",
                          "last_name": f"Salle{r}", "profile": "students", "class": cid})
    return {
        "format": 1,
        "school": {"id": school_id, "name": "Lycée du banc d'essai", "timezone": "Europe/Paris"},
        "profiles": [{"id": "teachers", "name": "Enseignants"},
                     {"id": "staff", "name": "Personnels"},
                     {"id": "students", "name": "Élèves"}],
        "classes": classes,
        "users": users,
    }


def teacher_id(room: int) -> str:
    return f"t{room:04d}"


def student_id(room: int, i: int) -> str:
    return f"s{room:04d}-{i:02d}"


def member_id(room: int, i: int) -> str:
    return teacher_id(room) if i == 0 else student_id(room, i)


def token(user: str) -> str:
    return issue_token(SECRET, SCHOOL, UserId(user), ttl=timedelta(days=1), now=DAY)


def prepare_db(database_url: str, doc: dict[str, Any]) -> None:
    async def run() -> None:
        st = await open_store(database_url)
        try:
            await st.import_directory(parse_directory(doc), actor="bench", now=DAY)
        finally:
            await st.close()

    # Called from the running benchmark loop: run the import on its own loop, in a thread.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


# ---------------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _raise_nofile() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Node:
    """One ``python -m server serve`` process, pinned to SERVER_CPU."""

    def __init__(self, index: int, tmp: Path, database_url: str, redis_url: str | None,
                 rate_limit: int, entry: Sequence[str] = ("-m", "server")) -> None:
        self.index = index
        self.port = _free_port()
        self.log_path = tmp / f"node{index}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREAU_")}
        env.pop("REDIS_URL", None)
        env.update({
            "PREAU_DATABASE_URL": database_url,
            "PREAU_JWT_SECRET": SECRET,
            "PREAU_CLOCK_START": DAY.isoformat().replace("+00:00", "Z"),
            "PREAU_RATE_LIMIT": str(rate_limit),
            "PREAU_NODE_ID": f"node{index}",
            "PYTHONPATH": str(ROOT),
        })
        if redis_url:
            env["REDIS_URL"] = redis_url
        cmd = [sys.executable, *entry, "serve", "--port", str(self.port)]
        if shutil.which("taskset"):
            cmd = ["taskset", "-c", str(SERVER_CPU), *cmd]
        self.command = cmd
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=log,
                                            stderr=subprocess.STDOUT,
                                            preexec_fn=_raise_nofile)
        self._wait_ready()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"node {self.index} exited:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://{HOST}:{self.port}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"node {self.index} not ready in {timeout} s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def cpu_seconds(pid: int | None) -> float | None:
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / CLK
    except OSError:
        return None


def thread_cpu_seconds(pid: int) -> dict[str, tuple[float, float]]:
    """CPU time (user, system) per thread of a process, by thread id."""
    out: dict[str, tuple[float, float]] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                tail = f.read().rsplit(")", 1)[1]
        except OSError:
            continue
        parts = tail.split()
        out[tid] = (int(parts[11]) / CLK, int(parts[12]) / CLK)
    return out


def machine_busy_seconds() -> tuple[float, float]:
    """CPU time used on the machine (all cores), from /proc/stat: (tasks, irq + softirq).

    Softirq time (most of the kernel's loopback TCP work) is not charged to any process.
    """
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (v[0] + v[1] + v[2] + v[7]) / CLK, (v[5] + v[6]) / CLK


async def wait_quiet(pids: Sequence[int], limit_s: float, threshold: float = 15.0) -> float:
    """Wait (at most ``limit_s``) until the rest of the machine used < ``threshold`` % CPU
    over one second; returns that last figure. The machine is shared: this keeps
    benchmark steps out of other people's bursts when it can, and says when it could not.
    """
    deadline = perf() + limit_s
    other = 0.0
    while True:
        m0, c0, t0 = machine_busy_seconds()[0], sum(cpu_seconds(p) or 0 for p in pids), perf()
        await asyncio.sleep(1.0)
        m1, c1, t1 = machine_busy_seconds()[0], sum(cpu_seconds(p) or 0 for p in pids), perf()
        other = 100.0 * ((m1 - m0) - (c1 - c0)) / (t1 - t0)
        if other < threshold or perf() >= deadline:
            return round(other, 1)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------------- client


_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# What Chrome and Firefox send with every WebSocket handshake.
DEFLATE_OFFER = ("Sec-WebSocket-Extensions: permessage-deflate; "
                 "client_max_window_bits\r\n")
_unpack = msgpack.unpackb
_pack = msgpack.Packer(use_bin_type=True).pack


class WsClient(asyncio.Protocol):
    """A minimal RFC 6455 client speaking ``preau.msgpack``.

    Frames are parsed in ``data_received`` and handed to ``on_frame`` (a plain
    callback: no task or future per frame, so that the load generator stays cheap);
    until ``on_frame`` is set they queue up for :meth:`recv`. Pings are answered.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.handshake_done = False
        self.handshake: asyncio.Future[None] | None = None
        self.key = b""
        self.on_frame: Callable[[dict[str, Any]], None] | None = None
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.inflate: Any = None  # zlib decompressor when permessage-deflate was accepted
        self.inflate_wbits = 0
        self.inflate_reset = False  # server_no_context_takeover

    @classmethod
    async def connect(cls, port: int, protocol: str = "preau.msgpack",
                      limit_s: float = 20.0, deflate: bool = False) -> WsClient:
        loop = asyncio.get_running_loop()
        transport, proto = await asyncio.wait_for(loop.create_connection(cls, HOST, port),
                                                  limit_s)
        proto.transport = transport
        proto.key = base64.b64encode(os.urandom(16))
        proto.handshake = loop.create_future()
        assert proto.transport is not None
        proto.transport.write(
            (f"GET /ws HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {proto.key.decode()}\r\n"
             f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocol}\r\n"
             + (DEFLATE_OFFER if deflate else "") + "\r\n").encode())
        try:
            await asyncio.wait_for(proto.handshake, limit_s)
        except BaseException:
            proto.transport.abort()
            raise
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()
        if self.handshake is not None and not self.handshake.done():
            self.handshake.set_exception(ConnectionError(f"closed during handshake: {exc!r}"))
        self.queue.put_nowait(None)

    def _finish_handshake(self) -> bool:
        assert self.handshake is not None
        assert self.transport is not None
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        del self.buf[:end + 4]
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (ln.partition(":") for ln in lines[1:])}
        want = base64.b64encode(hashlib.sha1(self.key + _GUID).digest()).decode()
        if " 101 " not in lines[0] + " " or headers.get("sec-websocket-accept") != want:
            self.handshake.set_exception(ConnectionError(f"handshake refused: {lines[0]!r}"))
            self.transport.abort()
            return False
        accepted = headers.get("sec-websocket-extensions", "")
        if accepted.startswith("permessage-deflate"):
            params = dict((p.strip().partition("=")[0], p.strip().partition("=")[2])
                          for p in accepted.split(";")[1:])
            self.inflate_wbits = int(params.get("server_max_window_bits") or 15)
            self.inflate_reset = "server_no_context_takeover" in params
            self.inflate = zlib.decompressobj(-self.inflate_wbits)
        self.handshake_done = True
        self.handshake.set_result(None)
        return True

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.handshake_done and not self._finish_handshake():
            return
        pos, n = 0, len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            ln, hl = b1 & 0x7F, 2
            if ln == 126:
                if n - pos < 4:
                    break
                ln, hl = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
            elif ln == 127:
                if n - pos < 10:
                    break
                ln, hl = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            if n - pos < hl + ln:
                break
            payload = bytes(buf[pos + hl:pos + hl + ln])
            pos += hl + ln
            op = b0 & 0x0F
            if b0 & 0x40 and self.inflate is not None:  # RSV1: a compressed message
                payload = self.inflate.decompress(payload + b"\x00\x00\xff\xff")
                if self.inflate_reset:
                    self.inflate = zlib.decompressobj(-self.inflate_wbits)
            if op == 0x2 or op == 0x1:  # the server sends whole frames (no fragments)
                frame = _unpack(payload)
                cb = self.on_frame
                if cb is None:
                    self.queue.put_nowait(frame)
                else:
                    cb(frame)
            elif op == 0x9:
                self._send_frame(0xA, payload)
            elif op == 0x8:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 0
                with contextlib.suppress(ConnectionError):
                    self._send_frame(0x8, payload[:2])
                assert self.transport is not None
                self.transport.close()
                break
        del buf[:pos]

    async def recv(self, limit_s: float = 20.0) -> dict[str, Any]:
        frame = await asyncio.wait_for(self.queue.get(), limit_s)
        if frame is None:
            raise ConnectionError(f"connection closed (code {self.close_code})")
        return frame

    def _send_frame(self, op: int, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("socket closed")
        n = len(payload)
        if n < 126:
            head = bytes((0x80 | op, 0x80 | n))
        elif n < 65536:
            head = bytes((0x80 | op, 0x80 | 126)) + n.to_bytes(2, "big")
        else:
            head = bytes((0x80 | op, 0x80 | 127)) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        self.transport.write(head + mask + apply_mask(payload, mask))

    def send(self, frame: dict[str, Any]) -> None:
        self._send_frame(0x2, _pack(frame))

    async def close(self, limit_s: float = 2.0) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        try:
            self._send_frame(0x8, (1000).to_bytes(2, "big"))
            await asyncio.wait_for(self.closed.wait(), limit_s)
        except (TimeoutError, ConnectionError):
            pass
        finally:
            self.transport.close()


async def hello(port: int, user: str, resume: Sequence[tuple[int, int]] = (),
                deflate: bool = False) -> WsClient:
    """Connect and authenticate; returns once the ``welcome`` came (later frames queue)."""
    ws = await WsClient.connect(port, deflate=deflate)
    try:
        ws.send({"type": "hello", "token": token(user),
                 "resume": [list(p) for p in resume]})
        first = await ws.recv()
        if first.get("type") != "welcome":
            raise RuntimeError(f"{user}: expected welcome, got {first}")
    except BaseException:
        assert ws.transport is not None
        ws.transport.abort()
        raise
    return ws


START_FAILURES: Counter[str] = Counter()  # `start`s answered with an error, then retried


async def create_discussions(port: int, rooms: int, size: int,
                             concurrency: int = 1) -> dict[int, tuple[int, int]]:
    """Each teacher starts her room's discussion; returns room -> (discussion, last seq).

    One at a time by default: concurrent ``start``s can fail with ``internal``
    ("database is locked", see the report). A ``start`` refused with ``internal`` is
    retried (at most 3 times, same ``client_id``: ``start`` is idempotent) and counted
    in START_FAILURES.
    """
    sem = asyncio.Semaphore(concurrency)
    out: dict[int, tuple[int, int]] = {}

    async def one(r: int) -> None:
        async with sem:
            ws = await hello(port, teacher_id(r))
            for attempt in range(4):
                ws.send({"type": "start", "subject": f"Salle {r}", "ref": f"s{attempt}",
                         "to": [student_id(r, i) for i in range(1, size)],
                         "body": "Bonjour à tous", "client_id": "start"})
                f: dict[str, Any] = {}
                for _ in range(100):
                    f = await ws.recv()
                    if f.get("type") in ("started", "error"):
                        break
                if f.get("type") == "started":
                    out[r] = (int(f["discussion"]["id"]), int(f["ack"]["seq"]))
                    break
                if f.get("code") != "internal" or attempt == 3:
                    raise RuntimeError(f"start refused in room {r}: {f}")
                START_FAILURES[str(f.get("message"))] += 1
                await asyncio.sleep(0.05)
            await ws.close()

    await asyncio.gather(*(one(r) for r in range(rooms)))
    return out


# ---------------------------------------------------------------------- measurement


def pct(ordered: Sequence[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000.0, 2)


class Recorder:
    def __init__(self) -> None:
        self.reset(-1)
        self.last_rx = 0.0
        self.errors: Counter[str] = Counter()
        self.error_samples: list[str] = []
        self.closes: Counter[int] = Counter()

    def reset(self, step: int) -> None:
        self.step = step
        self.lat = array("d")
        self.ack_lat = array("d")
        self.win_start = math.inf
        self.win_end = -math.inf
        self.in_window = 0
        self.acks_in_window = 0  # `ack`s received inside the window: messages stored
        self.misrouted = 0
        self.stray = 0
        self.sent_at: dict[str, float] = {}


@dataclass(eq=False)
class Member:
    room: int
    idx: int
    node: int
    discussion: int = 0
    ws: WsClient | None = None
    got: set[int] = field(default_factory=set)
    dup: int = 0


def make_on_frame(member: Member, rec: Recorder) -> Callable[[dict[str, Any]], None]:
    got, room = member.got, member.room
    loads = json.loads

    def on_frame(f: dict[str, Any]) -> None:
        now = perf()
        rec.last_rx = now
        kind = f.get("type")
        if kind == "message":
            try:
                m = loads(f["body"])
                if m["k"] != rec.step:
                    rec.stray += 1
                    return
                if m["r"] != room:
                    rec.misrouted += 1
                    return
            except (ValueError, KeyError, TypeError):
                rec.stray += 1
                return
            if rec.win_start <= now <= rec.win_end:
                rec.in_window += 1
            if not m["m"]:
                return
            s = m["s"]
            if s in got:
                member.dup += 1
                return
            got.add(s)
            rec.lat.append(now - m["t"])
        elif kind == "ack":
            if rec.win_start <= now <= rec.win_end:
                rec.acks_in_window += 1
            t0 = rec.sent_at.pop(f.get("client_id", ""), None)
            if t0 is not None:
                rec.ack_lat.append(now - t0)
        elif kind == "error":
            code = str(f.get("code"))
            rec.errors[code] += 1
            if len(rec.error_samples) < 10:
                rec.error_samples.append(f"{member_id(member.room, member.idx)}: {f}")

    return on_frame


class Load:
    """The 520 clients of one scenario, and the steps run with them."""

    def __init__(self, rooms: int, size: int, ports: list[int],
                 discussions: dict[int, tuple[int, int]], pids: dict[str, int],
                 deflate: bool = False, database_cpu: CpuSampler | None = None) -> None:
        self.rooms_n, self.size, self.ports = rooms, size, ports
        self.deflate = deflate
        self.discussions = discussions
        self.pids = pids
        self.database_cpu = database_cpu
        self.rec = Recorder()
        self.quiet_wait = 15.0  # s, at most, before each step
        self.steps_run = 0
        half = (size + 1) // 2
        # Two nodes: the teacher and the first half of the room on node 0, the rest on 1.
        self.rooms = [[Member(r, i, 0 if len(ports) == 1 or i < half else 1,
                              discussions[r][0]) for i in range(size)]
                      for r in range(rooms)]
        self.members = [m for room in self.rooms for m in room]

    async def connect_all(self, concurrency: int = 50) -> dict[str, Any]:
        sem = asyncio.Semaphore(concurrency)
        times = array("d")
        failures: list[str] = []

        async def one(m: Member) -> None:
            async with sem:
                t = perf()
                try:
                    d, last = self.discussions[m.room]
                    ws = await hello(self.ports[m.node], member_id(m.room, m.idx),
                                     [(d, last)], deflate=self.deflate)
                except Exception as exc:
                    failures.append(repr(exc))
                    return
                times.append(perf() - t)
                on_frame = make_on_frame(m, self.rec)
                ws.on_frame = on_frame
                while not ws.queue.empty():
                    f = ws.queue.get_nowait()
                    if f is not None:
                        on_frame(f)
                m.ws = ws

        t0 = perf()
        await asyncio.gather(*(one(m) for m in self.members))
        wall = perf() - t0
        st = sorted(times)
        return {"connections": len(self.members), "failed": len(failures),
                "deflate_negotiated": sum(1 for m in self.members
                                          if m.ws is not None and m.ws.inflate is not None),
                "failures": failures[:5], "wall_s": round(wall, 2),
                "per_conn_p50_ms": ms(pct(st, 0.5)), "per_conn_p95_ms": ms(pct(st, 0.95))}

    async def close_all(self) -> None:
        sem = asyncio.Semaphore(100)

        async def one(m: Member) -> None:
            if m.ws is not None:
                async with sem:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(m.ws.close(), 5)

        await asyncio.gather(*(one(m) for m in self.members))

    async def _sender(self, r: int, step: int, rate: float, t_first: float, warm_end: float,
                      win_end: float, sent: list[tuple[int, int] | None],
                      send_lag: array[float]) -> None:
        m = self.rooms[r][0]
        ws, d, rec = m.ws, m.discussion, self.rec
        if ws is None:
            return
        interval = 1.0 / rate
        first = last = -1
        for k in range(math.ceil((win_end - t_first) * rate) + 1):
            due = t_first + k * interval
            if due >= win_end:
                break
            now = perf()
            if due > now:
                await asyncio.sleep(due - now)
            measured = due >= warm_end
            t = perf()
            send_lag.append(t - due)
            body = json.dumps({"k": step, "s": k, "t": t, "r": r, "m": measured, "p": PAD},
                              separators=(",", ":"))
            cid = f"{step}-{r}-{k}"  # unique across rooms: each ack finds its send time
            if measured:
                rec.sent_at[cid] = t
            try:
                ws.send({"type": "send", "discussion": d, "body": body, "client_id": cid})
            except ConnectionError as exc:
                rec.errors["send failed"] += 1
                if len(rec.error_samples) < 10:
                    rec.error_samples.append(f"room {r}: {exc!r}")
                break
            if measured:
                if first < 0:
                    first = k
                last = k
        sent[r] = (first, last) if first >= 0 else None

    async def step(self, rate: float, warmup: float, duration: float,
                   drain: float) -> dict[str, Any]:
        """One step; run again (at most twice) if other processes used > DISTURBED % CPU."""
        for attempt in range(1, 4):
            self.steps_run += 1
            res = await self.run_step(self.steps_run, rate, warmup, duration, drain)
            res["attempt"] = attempt
            res["disturbed"] = res["cpu"].get("other", 0.0) > DISTURBED
            if not res["disturbed"]:
                break
            show(f"disturbed, attempt {attempt}", res)
        return res

    async def run_step(self, step: int, rate: float, warmup: float, duration: float,
                       drain: float, quiesce_max: float = 10.0) -> dict[str, Any]:
        rec = self.rec
        quiet = await wait_quiet(list(self.pids.values()), self.quiet_wait)
        rec.reset(step)
        errors_before = sum(rec.errors.values())
        for m in self.members:
            m.got.clear()
            m.dup = 0
        sent: list[tuple[int, int] | None] = [None] * self.rooms_n
        send_lag: array[float] = array("d")
        t_first = perf() + 0.2
        warm_end = t_first + warmup
        win_end = warm_end + duration
        rec.win_start, rec.win_end = warm_end, win_end
        senders = [asyncio.create_task(
            self._sender(r, step, rate, t_first + (r / self.rooms_n) / rate, warm_end,
                         win_end, sent, send_lag)) for r in range(self.rooms_n)]
        await asyncio.sleep(max(0.0, warm_end - perf()))
        d0 = await self.database_cpu() if self.database_cpu else {}
        c0 = {k: cpu_seconds(p) for k, p in self.pids.items()}
        m0 = machine_busy_seconds()
        w0 = perf()
        await asyncio.sleep(max(0.0, win_end - perf()))
        c1 = {k: cpu_seconds(p) for k, p in self.pids.items()}
        m1 = machine_busy_seconds()
        w1 = perf()
        d1 = await self.database_cpu() if self.database_cpu else {}
        await asyncio.gather(*senders)
        expected = sum((s[1] - s[0] + 1) * self.size for s in sent if s is not None)
        deadline = perf() + drain
        while perf() < deadline and len(rec.lat) < expected:  # noqa: ASYNC110 (bounded poll)
            await asyncio.sleep(0.05)
        await asyncio.sleep(min(0.2, max(0.0, deadline - perf())))

        def count_lost() -> int:
            lost = 0
            for r, s in enumerate(sent):
                if s is None:
                    continue
                for m in self.rooms[r]:
                    lost += (s[1] - s[0] + 1) - sum(1 for q in m.got if s[0] <= q <= s[1])
            return lost

        lost = count_lost()
        q0 = perf()
        while perf() - q0 < quiesce_max and perf() - max(rec.last_rx, q0) < 1.0:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        never = count_lost() if lost else 0
        lat = sorted(rec.lat)
        acks = sorted(rec.ack_lat)
        win = w1 - w0
        cpu = {k: round(100.0 * (c1[k] - c0[k]) / win, 1)  # type: ignore[operator]
               for k in self.pids if c0.get(k) is not None and c1.get(k) is not None}
        # The database server's processes serving this benchmark (PostgreSQL backends):
        # a backend that appeared during the window counts from zero.
        database_s = sum(v - d0.get(k, 0.0) for k, v in d1.items())
        if self.database_cpu:
            cpu["postgres"] = round(100.0 * database_s / win, 1)
        # Everything else on the machine (other processes): the noise indicator; and the
        # kernel's softirq time (loopback TCP), charged to no process.
        # (This kernel also charges softirq time to the interrupted process, so "other" is
        # total − ours, softirq included; it reads a few % below zero under heavy load.)
        ours = sum(cpu.values())
        cpu["other"] = round(100.0 * ((m1[0] + m1[1]) - (m0[0] + m0[1])) / win - ours, 1)
        cpu["softirq"] = round(100.0 * (m1[1] - m0[1]) / win, 1)
        n_sent = sum(s[1] - s[0] + 1 for s in sent if s is not None)
        return {
            "step": step, "rate_per_room": rate,
            "offered_msgs_per_s": round(n_sent / duration, 1),
            "offered_deliveries_per_s": round(expected / duration, 1),
            "delivered_per_s": round(rec.in_window / win, 1),
            "expected": expected, "lost": lost, "never": never,
            "dup": sum(m.dup for m in self.members), "misrouted": rec.misrouted,
            "stray": rec.stray, "errors": sum(rec.errors.values()) - errors_before,
            "p50": ms(pct(lat, 0.5)), "p95": ms(pct(lat, 0.95)), "p99": ms(pct(lat, 0.99)),
            "max": ms(lat[-1] if lat else None),
            "ack_p50": ms(pct(acks, 0.5)), "ack_p99": ms(pct(acks, 0.99)),
            "send_lag_p99": ms(pct(sorted(send_lag), 0.99)),
            # Messages acknowledged (so stored) inside the window, and the database
            # server's CPU over that window, per stored message.
            "stored": rec.acks_in_window,
            "database_cpu_s": round(database_s, 4) if self.database_cpu else None,
            "database_us_per_message": (round(1e6 * database_s / rec.acks_in_window, 1)
                                        if self.database_cpu and rec.acks_in_window
                                        else None),
            "other_before": quiet,
            "cpu": cpu,
        }


def passes(res: dict[str, Any], p99_limit_ms: float = 200.0) -> bool:
    return (res["p99"] is not None and res["p99"] <= p99_limit_ms and res["lost"] == 0
            and res["misrouted"] == 0 and res["errors"] == 0)


def show(label: str, res: dict[str, Any]) -> None:
    print(f"  [{label}] rate/room={res['rate_per_room']:g} delivered/s={res['delivered_per_s']}"
          f" p50={res['p50']} p99={res['p99']} max={res['max']} lost={res['lost']}"
          f" never={res['never']} dup={res['dup']} errors={res['errors']}"
          f" ack_p99={res['ack_p99']} cpu={res['cpu']}", flush=True)


# ---------------------------------------------------------------------- scenarios


@dataclass
class Options:
    quick: bool
    rooms: int = 20
    size: int = 26
    warmup: float = 3.0
    duration: float = 20.0
    step_duration: float = 8.0
    idle: int = 10_000
    idle_deflate: int = 2_000
    profile: Path | None = None
    profile_rates: tuple[float, ...] = (10.0, 40.0)
    profile_native: bool = False
    skip: set[str] = field(default_factory=set)
    ladder_budget: float = 260.0  # s of ladder steps, at most (70 with quick)


class Scenario:
    """A fresh temporary folder and database, nodes, optionally Redis; closed at the end."""

    def __init__(self, opts: Options, nodes: int, redis: bool, rooms: int,
                 size: int, entry: Sequence[str] = ("-m", "server"),
                 database_url: str | None = None) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="preau-bench-hub-"))
        # A fresh SQLite file here, unless the caller made another (empty) database.
        self.database_url = database_url or f"sqlite:///{self.tmp / 'hub.db'}"
        self.rooms, self.size = rooms, size
        self.redis: RedisServer | None = None
        self.nodes: list[Node] = []
        t = perf()
        prepare_db(self.database_url, classroom_school(rooms, size))
        self.import_s = perf() - t
        try:
            if redis:
                self.redis = RedisServer()  # inherits this process's CPU (LOAD_CPU)
                self.redis.start()
            url = self.redis.url if self.redis else None
            for i in range(nodes):
                self.nodes.append(Node(i, self.tmp, self.database_url, url,
                                       rate_limit=10_000, entry=entry))
        except BaseException:
            self.close()
            raise

    @property
    def redis_pid(self) -> int | None:
        process = self.redis._process if self.redis else None
        return process.pid if process is not None else None

    def pids(self) -> dict[str, int]:
        out = {f"node{n.index}": n.pid for n in self.nodes}
        if self.redis_pid:
            out["redis"] = self.redis_pid
        out["loadgen"] = os.getpid()
        return out

    def close(self, failed: bool = False) -> None:
        for n in self.nodes:
            n.stop()
            if failed:
                print(f"--- node {n.index} log (tail) ---\n{n.log_tail()}", file=sys.stderr)
        if self.redis is not None:
            self.redis.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


async def _classroom(opts: Options, nodes: int, redis: bool,
                     body: Callable[[Load, Scenario], Any], deflate: bool = False,
                     database_url: str | None = None,
                     database_cpu: CpuSampler | None = None) -> Any:
    sc = Scenario(opts, nodes, redis, opts.rooms, opts.size, database_url=database_url)
    try:
        t = perf()
        discussions = await create_discussions(sc.nodes[0].port, opts.rooms, opts.size)
        create_s = perf() - t
        load = Load(opts.rooms, opts.size, [n.port for n in sc.nodes], discussions, sc.pids(),
                    deflate=deflate, database_cpu=database_cpu)
        setup = await load.connect_all()
        setup["import_s"] = round(sc.import_s, 2)
        setup["create_discussions_s"] = round(create_s, 2)
        print(f"  setup: {setup}", flush=True)
        if setup["failed"]:
            raise RuntimeError(f"connections failed: {setup['failures']}")
        await asyncio.sleep(1.0)
        rss0 = {f"node{n.index}": rss_kib(n.pid) for n in sc.nodes}
        try:
            result = await body(load, sc)
        finally:
            await load.close_all()
        result["setup"] = setup
        result["rss_mib_loaded"] = {k: round(rss_kib(n.pid) / 1024, 1)
                                    for k, n in zip(rss0, sc.nodes, strict=True)}
        result["errors"] = dict(load.rec.errors)
        result["error_samples"] = load.rec.error_samples
        result["commands"] = [" ".join(n.command) for n in sc.nodes]
        return result
    except BaseException:
        sc.close(failed=True)
        raise
    finally:
        sc.close()


async def scenario_one_node(opts: Options, database_url: str | None = None,
                            database_cpu: CpuSampler | None = None,
                            ladder: Sequence[float] | None = None) -> dict[str, Any]:
    """(a) the fixed load, then (b) the ladder, on one node with the in-memory broker
    (on a fresh SQLite file, or on the empty database of ``database_url``)."""

    async def body(load: Load, sc: Scenario) -> dict[str, Any]:
        out: dict[str, Any] = {}
        print("(a) one node, 10 msgs/s per room", flush=True)
        out["fixed"] = await load.step(10.0, opts.warmup, opts.duration, 5.0)
        show("a", out["fixed"])
        if "b" in opts.skip:
            return out
        print("(b) one node, max-rate ladder", flush=True)
        steps: list[dict[str, Any]] = []
        best: dict[str, Any] | None = None
        fail: dict[str, Any] | None = None
        rates = ladder or ((20, 40, 60, 80) if opts.quick else LADDER)
        started = perf()
        budget = 70.0 if opts.quick else opts.ladder_budget

        async def step(rate: float) -> dict[str, Any] | None:
            if perf() - started > budget:
                out["ladder_stopped"] = "time budget"
                return None
            res = await load.step(rate, 2.0, opts.step_duration, 3.0)
            res["pass"] = passes(res)
            steps.append(res)
            show("b", res)
            return res

        for rate in rates:
            res = await step(rate)
            if res is None:
                break
            if not res["pass"]:
                fail = res
                break
            best = res
        if best is not None and fail is not None:
            lo, hi = best["rate_per_room"], fail["rate_per_room"]
            for _ in range(0 if opts.quick else 2):
                mid = round((lo + hi) / 2, 2)
                if mid - lo < 0.25 or mid >= hi:
                    break
                res = await step(mid)
                if res is None:
                    break
                if res["pass"]:
                    lo, best = mid, res
                else:
                    hi = mid
        out["ladder"] = steps
        out["best"] = best
        out["first_fail"] = fail
        return out

    result: dict[str, Any] = await _classroom(opts, 1, False, body, database_url=database_url,
                                              database_cpu=database_cpu)
    return result


async def scenario_deflate(opts: Options) -> dict[str, Any]:
    """(e) what browsers do: every client offers permessage-deflate (one node)."""

    async def body(load: Load, sc: Scenario) -> dict[str, Any]:
        print("(e) one node, clients offering permessage-deflate, 10 and 40 msgs/s per room",
              flush=True)
        fixed = await load.step(10.0, opts.warmup, opts.duration, 5.0)
        show("e", fixed)
        high = await load.step(40.0, 2.0, opts.step_duration, 3.0)
        show("e", high)
        return {"fixed": fixed, "high": high}

    result: dict[str, Any] = await _classroom(opts, 1, False, body, deflate=True)
    result["memory"] = await scenario_memory(opts, deflate=True, idle=opts.idle_deflate)
    return result


async def scenario_redis(opts: Options, nodes: int, database_url: str | None = None,
                         database_cpu: CpuSampler | None = None) -> dict[str, Any]:
    """(c) the fixed load through Redis: two nodes, or (c0) one node."""

    async def body(load: Load, sc: Scenario) -> dict[str, Any]:
        label = f"c, {nodes} node(s) + Redis"
        print(f"({label}) 10 msgs/s per room", flush=True)
        res = await load.step(10.0, opts.warmup, opts.duration, 5.0)
        show(label, res)
        return {"fixed": res}

    result: dict[str, Any] = await _classroom(opts, nodes, True, body,
                                              database_url=database_url,
                                              database_cpu=database_cpu)
    return result


async def scenario_memory(opts: Options, deflate: bool = False,
                          idle: int | None = None) -> dict[str, Any]:
    """(d) N idle authenticated connections of N distinct students on one node."""
    size = 26
    rooms = math.ceil((idle or opts.idle) / size)
    n = rooms * size
    print(f"({'e' if deflate else 'd'}) memory: {n} idle connections ({rooms} rooms x {size})"
          f"{', clients offering permessage-deflate' if deflate else ''}", flush=True)
    sc = Scenario(opts, 1, False, rooms, size)
    clients: list[WsClient] = []
    try:
        node = sc.nodes[0]
        t = perf()
        discussions = await create_discussions(node.port, rooms, size)
        create_s = perf() - t
        # Warm up the code paths (imports, caches) with one room connected then closed.
        warm = [await hello(node.port, member_id(0, i), [discussions[0]], deflate=deflate)
                for i in range(size)]
        for ws in warm:
            await ws.close()
        await asyncio.sleep(2.0)
        rss_before = rss_kib(node.pid)
        sem = asyncio.Semaphore(100)
        failures: list[str] = []
        marks: dict[int, int] = {}

        async def one(r: int, i: int) -> None:
            async with sem:
                try:
                    ws = await hello(node.port, member_id(r, i), [discussions[r]],
                                     deflate=deflate)
                except Exception as exc:
                    failures.append(repr(exc))
                    return
                ws.on_frame = _ignore
                while not ws.queue.empty():
                    ws.queue.get_nowait()
                clients.append(ws)

        t = perf()
        order = [(r, i) for r in range(rooms) for i in range(size)]
        half = len(order) // 2
        await asyncio.gather(*(one(r, i) for r, i in order[:half]))
        connect_s = perf() - t
        await asyncio.sleep(3.0)
        marks[len(clients)] = rss_kib(node.pid)
        t = perf()
        await asyncio.gather(*(one(r, i) for r, i in order[half:]))
        connect_s += perf() - t
        await asyncio.sleep(5.0)  # idle: presence frames delivered, buffers settled
        rss_after = rss_kib(node.pid)
        marks[len(clients)] = rss_after
        (n1, r1), (n2, r2) = sorted(marks.items())
        out = {
            "connections": len(clients), "failed": len(failures), "failures": failures[:5],
            "rooms": rooms, "size": size,
            "rss_before_mib": round(rss_before / 1024, 1),
            "rss_after_mib": round(rss_after / 1024, 1),
            "per_conn_kib": round((rss_after - rss_before) / max(1, len(clients)), 1),
            "marginal_per_conn_kib": round((r2 - r1) / max(1, n2 - n1), 1),
            "half": {"connections": n1, "rss_mib": round(r1 / 1024, 1)},
            "connect_s": round(connect_s, 1),
            "deflate_negotiated": sum(1 for ws in clients if ws.inflate is not None),
            "create_discussions_s": round(create_s, 1),
            "import_s": round(sc.import_s, 1),
            "command": " ".join(node.command),
        }
        print(f"  {out}", flush=True)
        return out
    finally:
        sem2 = asyncio.Semaphore(200)

        async def close(ws: WsClient) -> None:
            async with sem2:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 3)

        await asyncio.gather(*(close(ws) for ws in clients))
        sc.close()


def _ignore(frame: dict[str, Any]) -> None:
    pass


# ---------------------------------------------------------------------- profiling


PROFILE_HZ = int(os.environ.get("BENCH_PROFILE_HZ", "250"))


async def scenario_profile(opts: Options, rates: Sequence[float],
                           database_url: str | None = None,
                           database_cpu: CpuSampler | None = None) -> dict[str, Any]:
    """``--profile DIR``: one node, each rate for ``duration`` s under py-spy (no RESULTS.md).

    py-spy (``pip install py-spy``) samples the node at PROFILE_HZ, all threads,
    ``--nonblocking`` (the node is not paused); with ``--native`` it adds the C frames
    (uvloop, libc, sqlite) and must pause the node for each sample (more overhead, and
    syscalls are over-represented). ``BENCH_PROFILE_GIL=1`` keeps only samples holding
    the GIL (no waits for the GIL or in epoll: closest to CPU time); ``BENCH_PROFILE_HZ``
    sets the rate. Raw collapsed stacks go to ``DIR/hub-<rate>.txt``, the summary
    (bench/hub_profile.py) to ``DIR/hub-<rate>.md``.
    """
    from bench.hub_profile import summarise

    assert opts.profile is not None
    opts.profile.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))

    async def body(load: Load, sc: Scenario) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, rate in enumerate(rates):
            raw = opts.profile / f"hub-{rate:g}.txt"  # type: ignore[operator]
            seconds = opts.duration
            cmd = [spy, "record", "--pid", str(sc.nodes[0].pid), "--rate", str(PROFILE_HZ),
                   "--duration", str(int(seconds)), "--format", "raw", "--threads",
                   "-o", str(raw),
                   *(["--native"] if opts.profile_native else ["--nonblocking"]),
                   *(["--gil"] if os.environ.get("BENCH_PROFILE_GIL") else [])]
            spy_proc: subprocess.Popen[bytes] | None = None

            async def start_spy(cmd: list[str] = cmd) -> None:
                nonlocal spy_proc
                await asyncio.sleep(opts.warmup + 0.2)
                spy_proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,  # noqa: ASYNC220
                                            stderr=subprocess.STDOUT)

            starter = asyncio.create_task(start_spy())
            threads0 = thread_cpu_seconds(sc.nodes[0].pid)
            res = await load.run_step(k + 1, rate, opts.warmup, seconds, 5.0)
            threads1 = thread_cpu_seconds(sc.nodes[0].pid)
            await starter
            assert spy_proc is not None
            spy_proc.wait(timeout=60)
            show(f"profile {rate:g}", res)
            deliveries = res["delivered_per_s"] * seconds
            messages = res["offered_msgs_per_s"] * seconds
            # Per thread, over the whole step (warm-up, window and drain: the same load).
            span = seconds + opts.warmup + 5.0
            used = {n: (u - threads0.get(n, (0.0, 0.0))[0], k - threads0.get(n, (0.0, 0.0))[1])
                    for n, (u, k) in threads1.items()}
            sent = messages * span / seconds
            names = dict(re.findall(r"thread \((\d+)\): ([^;]+)", raw.read_text()))
            per_thread = "\n".join(
                f"  thread {tid} ({names.get(tid, '?')}): {u + k:.2f} s CPU, {u:.2f} user + "
                f"{k:.2f} system (≈ {1e6 * (u + k) / sent:.0f} µs per message)"
                for tid, (u, k) in sorted(used.items(), key=lambda kv: -sum(kv[1]))
                if u + k > 0.005)
            summary = summarise(raw, 45, deliveries, PROFILE_HZ)
            text = (f"rate {rate:g} msgs/s per room, {res['delivered_per_s']:,.0f} deliveries/s, "
                    f"node CPU {res['cpu'].get('node0')} %, {seconds:g} s sampled at "
                    f"{PROFILE_HZ} Hz; µs/unit = per delivery\n\nCPU per thread of the node "
                    f"(/proc, over the step):\n{per_thread}\n\n" + summary)
            raw.with_suffix(".md").write_text(text)
            print(text, flush=True)
            out[f"{rate:g}"] = res
        return out

    result: dict[str, Any] = await _classroom(opts, 1, False, body, database_url=database_url,
                                              database_cpu=database_cpu)
    return result


# ---------------------------------------------------------------------- report


def _cpu(c: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0f} %" for k, v in c.items())


def _row(label: str, r: dict[str, Any]) -> str:
    never = f" ({r['never']} never)" if r["lost"] else ""
    if r.get("disturbed"):
        label += " ⚠ disturbed"
    if r.get("attempt", 1) > 1:
        label += f" (attempt {r['attempt']})"
    return (f"| {label} | {r['rate_per_room']:g} | {r['offered_deliveries_per_s']:,.0f} | "
            f"{r['delivered_per_s']:,.0f} | {r['p50']} / {r['p95']} / {r['p99']} / {r['max']} | "
            f"{r['ack_p50']} / {r['ack_p99']} | {r['lost']}{never} | {r['dup']} | "
            f"{r['errors']} | {_cpu(r['cpu'])} |")


def report(opts: Options, results: dict[str, Any], command: str, wall: float,
           noise: str, code: str) -> list[str]:
    lines = [
        f"Command: `{command}` (total {wall / 60:.1f} min)",
        "",
        *machine_lines(["starlette", "uvicorn", "websockets", "msgpack", "aiosqlite", "redis"]),
        f"- Pinning: each node `taskset -c {SERVER_CPU}`; load generator (one uvloop "
        f"process, minimal msgpack WebSocket client) and Redis on CPU {LOAD_CPU}.",
        f"- Code under test: {code}",
        f"- Other activity on the machine during the run: {noise}. The `other` CPU figure "
        "of each row is the machine's total CPU (softirq included) minus the processes listed "
        "(100 % = one core): the noise indicator; it reads a few % below zero under heavy "
        "load, since this kernel also charges some softirq time (`softirq`: loopback TCP) to "
        "the processes.",
        "",
        f"Scenario: {opts.rooms} rooms × {opts.size} (one teacher + {opts.size - 1} students "
        f"per room, {opts.rooms * opts.size} connections, `preau.msgpack`); the teacher "
        "sends a ~92-byte JSON body (the peer harness's payload) as a `send`; every member "
        "including the sender must get every message. SQLite file (WAL), gatekeeper on, "
        "`PREAU_RATE_LIMIT=10000`. Warm-up "
        f"{opts.warmup:g} s, then {opts.duration:g} s measured (ladder steps: 2 s + "
        f"{opts.step_duration:g} s); loss = not received 5 s (ladder: 3 s) after the last "
        "send; latency = receive − send on the load generator's clock; ack = `send` → "
        "`ack` (durable) seen by the teacher. Before each step the benchmark waits (at most "
        f"15 s) for the machine to be quiet; a step during which other processes used more "
        f"than {DISTURBED:g} % of a core is run again (at most 3 attempts; the last is shown, "
        "marked ⚠ if still disturbed).",
        "",
        "| run | msgs/s per room | offered deliveries/s | delivered/s | latency p50 / p95 / "
        "p99 / max (ms) | ack p50 / p99 (ms) | lost | dup | error frames | CPU |",
        "|---|---:|---:|---:|---|---|---:|---:|---:|---|",
    ]
    one = results.get("one")
    if one:
        lines.append(_row("(a) one node, in-memory broker", one["fixed"]))
        for s in one.get("ladder", []):
            verdict = "pass" if s["pass"] else "**fail**"
            lines.append(_row(f"(b) ladder step, {verdict}", s))
    c0 = results.get("redis1")
    if c0:
        lines.append(_row("(c0) one node + Redis", c0["fixed"]))
    c2 = results.get("redis2")
    if c2:
        lines.append(_row("(c) two nodes + Redis, rooms split", c2["fixed"]))
    e = results.get("deflate")
    if e:
        lines.append(_row("(e) one node, clients offering permessage-deflate", e["fixed"]))
        lines.append(_row("(e) same, higher rate", e["high"]))
    lines.append("")
    if one and one.get("best"):
        b = one["best"]
        lines.append(f"**(b) Max sustained (one node): {b['delivered_per_s']:,.0f} deliveries/s** "
                     f"at {b['rate_per_room']:g} msgs/s per room (p99 {b['p99']} ms, "
                     f"server CPU {b['cpu'].get('node0', 0):.0f} %); first failing rate: "
                     f"{one['first_fail']['rate_per_room'] if one.get('first_fail') else 'none'}"
                     f"{' (' + one['ladder_stopped'] + ')' if one.get('ladder_stopped') else ''}.")
    elif one and "ladder" in one:
        lines.append("**(b)** no ladder step passed.")
    mem = results.get("memory")
    if mem:
        lines += [
            "",
            f"**(d) Memory:** {mem['connections']:,} idle authenticated connections "
            f"({mem['rooms']} class discussions × {mem['size']}, one connection per student or "
            f"teacher, each subscribed to its discussion; {mem['failed']} failed): server RSS "
            f"{mem['rss_before_mib']} MiB → {mem['rss_after_mib']} MiB, "
            f"**{mem['per_conn_kib']} KiB per connection** (marginal over the second half: "
            f"{mem['marginal_per_conn_kib']} KiB; at {mem['half']['connections']:,}: "
            f"{mem['half']['rss_mib']} MiB). Connecting them took {mem['connect_s']} s "
            "(100 at a time).",
        ]
    if e:
        em = e["memory"]
        n_on, n_all = e["setup"]["deflate_negotiated"], e["setup"]["connections"]
        verdict = ("the server accepted it: every delivery is then compressed separately per "
                   "connection (no encode-once)" if n_on else
                   "the server declined it (`ws_per_message_deflate=False`), so browsers cost "
                   "what the msgpack clients cost")
        lines += [
            "",
            f"**(e) Browsers' permessage-deflate:** Chrome and Firefox offer "
            f"`permessage-deflate` on every WebSocket; negotiated on {n_on} of {n_all} "
            f"connections: {verdict}. Idle memory with these clients: "
            f"{em['connections']:,} connections, {em['per_conn_kib']} KiB per connection "
            f"(marginal {em['marginal_per_conn_kib']} KiB).",
        ]
    setups = []
    for key, label in (("one", "one node"), ("redis1", "one node + Redis"),
                       ("redis2", "two nodes")):
        r = results.get(key)
        if r:
            s = r["setup"]
            setups.append(f"{label}: {s['connections']} connections in {s['wall_s']} s "
                          f"(per connection p50 {s['per_conn_p50_ms']} ms, p95 "
                          f"{s['per_conn_p95_ms']} ms; {opts.rooms} discussions created in "
                          f"{s['create_discussions_s']} s); RSS under load "
                          f"{r['rss_mib_loaded']} MiB")
    if setups:
        lines += ["", "Setup: " + "; ".join(setups) + "."]
    if START_FAILURES:
        lines += ["", f"`start` answered `internal` then retried during setup: "
                  f"{sum(START_FAILURES.values())} time(s) ({dict(START_FAILURES)})."]
    errs = {k: v for key in ("one", "redis1", "redis2") if results.get(key)
            for k, v in results[key]["errors"].items()}
    if errs:
        lines += ["", f"Error frames received: {errs}."]
    node_cmd = (one or c2 or c0 or {}).get("commands", [""])[0] or (mem or {}).get("command", "")
    lines += ["", "Node command (env: PREAU_DATABASE_URL, PREAU_JWT_SECRET, PREAU_CLOCK_START, "
              "PREAU_RATE_LIMIT, PREAU_NODE_ID; REDIS_URL for the Redis runs): "
              f"`{node_cmd}`"]
    return lines


def _us_per_delivery(r: dict[str, Any], *nodes: str) -> float:
    cpu = sum(float(r["cpu"].get(n, 0.0)) for n in nodes or ("node0",))
    return 1e4 * cpu / max(1.0, float(r["delivered_per_s"]))  # % of a core -> µs per delivery


def reading(results: dict[str, Any]) -> list[str]:
    """The short honest reading, from the figures (targets of the issue)."""
    out = ["", "Reading (targets: ≥ 18,000 deliveries/s on one process; p99 ≤ 50 ms at "
           "10 msgs/s per room, one node and two; no loss; ≤ 30 KB per idle connection):", ""]
    one = results.get("one")
    if one:
        a = one["fixed"]
        ok = a["p99"] is not None and a["p99"] <= 50 and a["lost"] == 0
        out.append(f"- (a) 10 msgs/s per room: p99 {a['p99']} ms, {a['lost']} lost, server CPU "
                   f"{a['cpu'].get('node0', 0):.0f} % ({_us_per_delivery(a):.0f} µs of CPU per "
                   f"delivery) — {'meets' if ok else 'misses'} the p99 ≤ 50 ms target.")
        best, fail = one.get("best"), one.get("first_fail")
        if best:
            b = best["delivered_per_s"]
            line = (f"- (b) {b:,.0f} deliveries/s sustained "
                    f"({_us_per_delivery(best):.0f} µs of CPU per delivery): "
                    f"{'meets' if b >= 18000 else f'{b / 18000:.0%} of'} the 18,000/s target.")
            if fail:
                line += (f" At the first failing rate ({fail['rate_per_room']:g} msgs/s per room) "
                         f"the node used {fail['cpu'].get('node0', 0):.0f} % of its core and the "
                         f"load generator {fail['cpu'].get('loadgen', 0):.0f} % of the other: "
                         + ("the node is the limit."
                            if fail["cpu"].get("node0", 0) >= 95 else
                            "the node was not saturated: the limit is elsewhere (load "
                            "generator, kernel, noise)."))
            out.append(line)
    c0, c2 = results.get("redis1"), results.get("redis2")
    if c2:
        c = c2["fixed"]
        ok = c["p99"] is not None and c["p99"] <= 50 and c["lost"] == 0
        total = c["cpu"].get("node0", 0) + c["cpu"].get("node1", 0)
        line = (f"- (c) two nodes: p99 {c['p99']} ms, {c['lost']} lost — "
                f"{'meets' if ok else 'misses'} the target. The two nodes together used "
                f"{total:.0f} % of a core")
        if c0:
            line += (f", against {c0['fixed']['cpu'].get('node0', 0):.0f} % for one node behind "
                     "the same Redis (c0): each node decodes every publication of the rooms it "
                     "serves, and the sender's node also stores and acks")
        out.append(line + ".")
    mem = results.get("memory")
    if mem:
        kb = mem["per_conn_kib"] * 1.024
        out.append(f"- (d) {mem['per_conn_kib']} KiB ({kb:.1f} kB) per idle connection — "
                   f"{'meets' if kb <= 30 else 'misses'} the ≤ 30 KB target. Where it goes: "
                   "`.venv/bin/python -m bench.hub_memory` (tracemalloc, by allocation site "
                   "and by package).")
    e = results.get("deflate")
    if e and one:
        plain, comp = one["fixed"], e["fixed"]
        hi = e["high"]
        plain_hi = next((r for r in one.get("ladder", []) if r["rate_per_room"] == 40), None)
        line = (f"- (e) with clients offering permessage-deflate the node spends "
                f"{_us_per_delivery(comp):.0f} µs of CPU per delivery at 10 msgs/s per room "
                f"(vs {_us_per_delivery(plain):.0f} µs without)")
        if plain_hi:
            line += (f" and {_us_per_delivery(hi):.0f} µs at 40 (vs "
                     f"{_us_per_delivery(plain_hi):.0f} µs)")
        mem = results.get("memory")
        line += (f"; an idle connection takes {e['memory']['per_conn_kib']} KiB"
                 + (f" (vs {mem['per_conn_kib']} KiB)" if mem else "")
                 + (f" — compression was negotiated on {e['setup']['deflate_negotiated']} "
                    "connections." if e["setup"]["deflate_negotiated"] else
                    " — compression was declined, as it should be for encode-once fan-out."))
        out.append(line)
    noisy = [r for key in ("one", "redis1", "redis2", "deflate") if results.get(key)
             for r in [results[key]["fixed"], *results[key].get("ladder", []),
                       *([results[key]["high"]] if "high" in results[key] else [])]
             if r.get("disturbed")]
    if noisy:
        out.append(f"- {len(noisy)} step(s) were still disturbed by other activity after 3 "
                   "attempts (⚠): their latency tails say more about the machine than about "
                   "the hub.")
    return out


# ---------------------------------------------------------------------- main


def code_version() -> str:
    """The commit, and whether server/ has uncommitted changes (the code under test)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "server"], cwd=ROOT,
                               text=True, capture_output=True, timeout=10).stdout.split("\n")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    changed = [ln for ln in dirty if ln.strip()]
    return f"commit {head}" + (f" + uncommitted changes to {len(changed)} file(s) in server/"
                               if changed else "")


def _noise() -> str:
    """Other busy processes now (the machine is shared): a hint for the reader."""
    try:
        out = subprocess.run(["ps", "-eo", "pcpu,args", "--sort=-pcpu"], capture_output=True,
                             text=True, timeout=5).stdout.splitlines()[1:]
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    me = {str(os.getpid())}
    busy = [ln.strip()[:80] for ln in out if float(ln.split()[0]) >= 5.0
            and not any(p in ln for p in me) and "bench.hub" not in ln]
    return "; ".join(busy[:3]) or "none seen above 5 % CPU"


async def run(opts: Options) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if opts.profile is not None:
        results["profile"] = await scenario_profile(opts, opts.profile_rates)
        return results
    if "a" not in opts.skip:
        results["one"] = await scenario_one_node(opts)
    if "c" not in opts.skip:
        if "c0" not in opts.skip:
            results["redis1"] = await scenario_redis(opts, 1)
        results["redis2"] = await scenario_redis(opts, 2)
    if "d" not in opts.skip:
        results["memory"] = await scenario_memory(opts)
    if "e" not in opts.skip:
        results["deflate"] = await scenario_deflate(opts)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short steps, 2,000 idle connections")
    p.add_argument("--idle", type=int, help="idle connections for (d) (default 10,000)")
    p.add_argument("--skip", default="", help="comma-separated: a (and b), b, c0, c, d, e")
    p.add_argument("--profile", type=Path,
                   help="only profile: one node under py-spy at --profile-rates, into DIR")
    p.add_argument("--profile-rates", default="10,40", help="msgs/s per room (default 10,40)")
    p.add_argument("--native", action="store_true", help="with --profile: py-spy --native")
    p.add_argument("--no-write", action="store_true", help="do not rewrite bench/RESULTS.md")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    p.add_argument("--rooms", type=int, default=20, help=argparse.SUPPRESS)  # smoke tests
    p.add_argument("--size", type=int, default=26, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    opts = Options(quick=args.quick, profile=args.profile, rooms=args.rooms, size=args.size,
                   skip={s.strip() for s in args.skip.split(",") if s.strip()})
    if args.quick:
        opts.warmup, opts.duration, opts.step_duration, opts.idle = 2.0, 8.0, 4.0, 2000
        opts.idle_deflate = 1000
        opts.skip.add("c0")
    if args.idle:
        opts.idle = args.idle
    opts.profile_rates = tuple(float(x) for x in args.profile_rates.split(","))
    opts.profile_native = args.native
    _raise_nofile()

    def _terminated(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally blocks: nodes stopped

    signal.signal(signal.SIGTERM, _terminated)
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {LOAD_CPU})  # Redis, started from here, inherits it
    gc.freeze()
    noise = _noise()
    command = ".venv/bin/python -m bench.hub" + (" --quick" if args.quick else "") + \
        (f" --idle {args.idle}" if args.idle else "") + \
        (f" --skip {args.skip}" if args.skip else "")
    code = code_version()
    t0 = perf()
    results = uvloop.run(asyncio.wait_for(run(opts), 900))
    wall = perf() - t0
    if opts.profile is not None:
        return 0
    noise_after = _noise()
    code_after = code_version()
    if code_after != code:
        code = f"{code} at the start, {code_after} at the end (changed during the run!)"
    lines = report(opts, results, command, wall, f"before: {noise}; after: {noise_after}", code)
    lines += reading(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print("\n".join(lines))
    if not args.no_write:
        write_section("Hub", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
