"""The load test itself: connect, start the conversations, send, storm, drain, count.

One :class:`Engine` runs one :class:`~.plan.Plan` in one event loop, through the
Python client library (:mod:`server.client`), one :class:`~server.client.Client` per
user. Phases, each bounded in time:

1. **ramp**: one probe connection per URL first (to fail fast: wrong secret, closed
   hours), then every user at ``--ramp`` connections/s;
2. **start**: each conversation's starter sends ``start`` (its body is message 1);
3. **send**: for ``--duration`` seconds each conversation gets messages at its rate
   (a fixed schedule with a random phase), each from a member drawn at random; the
   optional storm cuts ``--storm-fraction`` of the connections at ``--storm-at``;
4. **drain**: sends in flight get their ack or fail; the server's last ``seq`` of each
   discussion is read (``history``); then the engine waits (at most ``--drain`` s)
   until every connected member has every message;
5. **close**.

Every message body starts with ``lt RUN UID T_US``: the run id, a unique integer, and
the send time in µs since the run began (this process's monotonic clock), so that each
receiver computes the end-to-end latency and the engine detects losses (a member
missing a ``seq``), duplicates (one message stored under two ``seq``) and mismatches
(two members seeing different messages under one ``seq``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import secrets
import signal
import sys
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

from server.client import Client, Event, PreauError

from .options import Options
from .plan import Conversation, Plan
from .stats import Stats

__all__ = ["Aborted", "Engine", "Outcome"]

REQUEST_TIMEOUT = 10.0    # the client's per-request bound (sends wait through reconnections)
# A refused `send` or `start` is tried again, with the same client_id, as protocol.md §9
# tells clients to do for these codes (each refusal still counts in the report): the
# message is then either stored once or given up, never stored twice.
ATTEMPTS = 3
_RETRY_CODES = frozenset({"internal", "rate_limited", "timeout"})
MAX_IN_FLIGHT = 10_000    # sends awaiting their ack; beyond it the engine skips (and counts)
CLOSE_TIMEOUT = 10.0
_FILLER = "Bonjour à toutes et à tous, voici le message de la classe. "


class Aborted(Exception):
    """The run cannot go on (nothing connects, tokens refused, closed hours): the
    message says why and what to do."""


class _LoadClient(Client):
    """The library's client, plus the two things only a load tester needs.

    Both reach into the client's internals on purpose, in this one place: the library
    deliberately hides re-delivered messages and offers no way to fail a connection.
    """

    def __init__(self, url: str, token: str, *, encoding: Literal["json", "msgpack"]) -> None:
        super().__init__(url, token, encoding=encoding, request_timeout=REQUEST_TIMEOUT)
        #: ``message`` frames the server sent again although this client held them:
        #: the library skips them silently; the protocol promises there are none.
        self.redelivered = 0

    def _first_delivery(self, frame: dict[str, Any]) -> bool:
        first = super()._first_delivery(frame)
        if not first:
            self.redelivered += 1
        return first

    def drop(self) -> bool:
        """Cut the TCP connection without a close frame, as a network failure would
        (the library then reconnects and resumes by itself). False if not connected."""
        ws = self._ws
        if ws is None or not self.connected:
            return False
        ws.transport.abort()
        return True


@dataclass(slots=True)
class _Member:
    """One user's connection and what it received."""

    user: str
    url: str
    client: _LoadClient
    opened: bool = False
    failure: str | None = None          # the code that ended the client for good
    failure_message: str = ""
    received: dict[int, int] = field(default_factory=dict)   # discussion → messages
    announced: set[int] = field(default_factory=set)     # `discussion` events received
    reconnections: int = 0
    dropped_at: float | None = None     # set by the storm until the next welcome

    @property
    def alive(self) -> bool:
        return self.opened and self.failure is None


@dataclass(slots=True)
class _Discussion:
    conv: Conversation
    members: list[_Member]
    id: int | None = None
    last_seq: int = 0                   # the highest seq acknowledged or delivered


@dataclass(slots=True)
class Outcome:
    """Everything a report needs; times in seconds since the run began."""

    run_id: str
    options: Options
    plan: Plan
    stats: Stats
    phases: dict[str, float]
    connections: dict[str, int]
    per_target: dict[str, int]
    discussions: dict[str, int]
    messages: dict[str, int]
    storm: dict[str, float] | None
    notes: list[str]
    drained: bool
    missing: list[dict[str, Any]]
    cpu: dict[str, float]


class Engine:
    """Runs a plan once. ``tokens`` maps every planned user to a token; ``out`` gets
    the progress line (when ``options.progress``)."""

    def __init__(self, options: Options, plan: Plan, tokens: Mapping[str, str], *,
                 out: TextIO | None = None) -> None:
        self.options = options
        self.plan = plan
        self.run_id = secrets.token_hex(3)
        self.rng = random.Random(options.seed)
        self.out = out if out is not None else sys.stderr
        self.cpu0 = time.process_time()
        # CPU seconds and deliveries at the start and end of the sending phase: the
        # generator's cost per delivery in steady state, without connecting and closing.
        self.cpu: dict[str, float] = {}
        self.t0 = time.monotonic()
        self.stats = Stats(self.t0)
        self.members = [
            _Member(user, options.urls[i % len(options.urls)],
                    _LoadClient(options.urls[i % len(options.urls)], tokens[user],
                                encoding=options.encoding))
            for i, user in enumerate(plan.users)]
        by_user = {m.user: m for m in self.members}
        self.discussions = [_Discussion(c, [by_user[u] for u in c.members])
                            for c in plan.conversations]
        self.by_id: dict[int, _Discussion] = {}
        self.phases: dict[str, float] = {}
        self.notes: list[str] = list(plan.notes)
        self._uids = itertools.count(1)
        self._uid_key: dict[int, int] = {}      # message uid → discussion·seq key
        self._key_uid: dict[int, int] = {}      # discussion·seq key → message uid
        self.duplicates = 0
        self.mismatched = 0
        self.foreign = 0
        self.skipped = 0
        self.late_ticks = 0
        self._in_flight: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._storm: dict[str, float] | None = None
        self._read_only = False
        self._closing = False

    # ------------------------------------------------------------------ the run

    async def run(self) -> Outcome:
        """Run every phase and return the outcome; raises :class:`Aborted`.

        Connections are closed whatever happens, including cancellation.
        """
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, self._interrupt)
        ticker = self._spawn(self._tick())
        try:
            await self._ramp()
            self.phases["ramp_end"] = self._now()
            await self._start_all()
            await self._send_phase()
            drained = await self._drain()
            self.phases["drain_end"] = self._now()
            return self._outcome(drained)
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)
            ticker.cancel()
            if self.options.progress and "send_start" in self.phases:
                self._progress(final=True)
            await self._close_all()

    def _interrupt(self) -> None:
        """First Ctrl-C: stop sending now and report; the next one kills the process."""
        self._stop.set()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
        self.notes.append("interrupted: sending stopped early")

    def _now(self) -> float:
        return time.monotonic() - self.t0

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ ramp

    async def _ramp(self) -> None:
        # One probe per URL, one after the other: a wrong secret, an unknown school or
        # closed hours then show up as one clear error instead of a flood of refusals.
        probes: dict[str, _Member] = {}
        for m in self.members:
            probes.setdefault(m.url, m)
        for m in probes.values():
            await self._connect(m)
            if not m.opened:
                code = m.failure or "?"
                raise Aborted(f"cannot connect to {m.url} as {m.user}: {code}"
                              + (f" ({m.failure_message})" if m.failure_message else "")
                              + _HINTS.get(code, ""))
            if self._read_only:
                raise Aborted(
                    f"{m.url} is outside the school's allowed hours (welcome.read_only): "
                    "every message would be refused with outside_hours. Run the server "
                    "with PREAU_CLOCK_START=2026-11-24T09:00:00Z (docs/loadtest.md)")
        rest = [m for m in self.members if not m.opened]
        start = time.monotonic()
        connecting: list[asyncio.Task[None]] = []
        for i, m in enumerate(rest):
            delay = start + i / self.options.ramp - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            connecting.append(asyncio.create_task(self._connect(m)))
        if connecting:
            await asyncio.wait(connecting)

    async def _connect(self, m: _Member) -> None:
        try:
            welcome = await m.client.connect()
        except PreauError as exc:
            m.failure, m.failure_message = exc.code, exc.message
            self.stats.on_refusal(time.monotonic(), "connect", exc.code)
            return
        m.opened = True
        if welcome.get("read_only"):
            self._read_only = True
        self._spawn(self._consume(m))
        # Behave like an app that keeps its positions: without them, the resume after a
        # drop (a list of pairs) would replay every discussion of earlier runs from seq 1
        # (protocol.md §4.2), and a storm would measure that flood instead.
        try:
            for item in await m.client.discussions():
                m.client.positions.setdefault(int(item["id"]), int(item["last_seq"]))
        except PreauError as exc:
            self.stats.on_refusal(time.monotonic(), "list", exc.code)

    # ------------------------------------------------------------------ events

    async def _consume(self, m: _Member) -> None:
        """Read ``m``'s events until its client ends (every event must be read)."""
        try:
            async for event in m.client.events():
                if event.type == "message":
                    self._on_message(m, event.data)
                else:
                    self._on_event(m, event)
        except PreauError as exc:
            m.failure = exc.code
            self.stats.on_refusal(time.monotonic(), "connection", exc.code)

    def _on_message(self, m: _Member, frame: dict[str, Any]) -> None:
        now = time.monotonic()
        body, d, seq = frame.get("body"), frame.get("discussion"), frame.get("seq")
        parts = body.split(" ", 4) if isinstance(body, str) else ()
        if (len(parts) < 4 or parts[0] != "lt" or parts[1] != self.run_id
                or not isinstance(d, int) or not isinstance(seq, int)):
            # Another run's discussion replayed after a reconnection, or someone else.
            self.foreign += 1
            return
        uid, sent_us = int(parts[2]), int(parts[3])
        m.received[d] = m.received.get(d, 0) + 1
        self.stats.on_delivery(now, now - self.t0 - sent_us / 1e6)
        key = (d << 32) | seq
        known = self._key_uid.get(key)
        if known is None:
            self._key_uid[key] = uid
            if self._uid_key.setdefault(uid, key) != key:
                self.duplicates += 1      # the same message stored under a second seq
        elif known != uid:
            self.mismatched += 1          # two members disagree on what this seq is
        disc = self.by_id.get(d)
        if disc is not None and seq > disc.last_seq:
            disc.last_seq = seq

    def _on_event(self, m: _Member, event: Event) -> None:
        if event.type == "discussion":
            d = event.data.get("discussion", {}).get("id")
            if isinstance(d, int):
                m.announced.add(d)
        elif event.type == "welcome":         # a reconnection (the first welcome is not here)
            m.reconnections += 1
            if event.data.get("read_only"):
                self._read_only = True
            if m.dropped_at is not None and self._storm is not None:
                self._storm["reconnected"] += 1
                back = time.monotonic() - m.dropped_at
                self._storm["recovery_seconds"] = max(self._storm["recovery_seconds"], back)
                m.dropped_at = None
        elif event.type in ("error", "access"):
            self.stats.on_refusal(time.monotonic(), event.type,
                                  str(event.data.get("code", "error")))

    # ------------------------------------------------------------------ start

    async def _start_all(self) -> None:
        await asyncio.gather(*(self._start(d) for d in self.discussions))
        started = [d for d in self.discussions if d.id is not None]
        if not started:
            raise Aborted("no discussion could be started: "
                          + _codes(self.stats.refusals_by_action.get("start", {})))
        if self.options.settle:
            await self._settle()
        self.phases["settled"] = self._now()

    async def _settle(self) -> None:
        """Wait (at most REQUEST_TIMEOUT) until every connected member holds message 1
        of each of its discussions.

        A member holding it has finished joining the discussion on its server (the
        join's replay, or the live copy buffered during the join, delivered it), so
        the send phase measures steady traffic, not the joins. ``--no-settle`` skips
        this: messages then race the joins, as when someone answers at once.
        """
        deadline = time.monotonic() + REQUEST_TIMEOUT
        while True:
            waiting = sum(1 for d, disc in self.by_id.items() for m in disc.members
                          if m.alive and not m.received.get(d))
            if not waiting:
                return
            if time.monotonic() >= deadline:
                self.notes.append(f"{waiting} members still lacked their discussion's first "
                                  f"message after {REQUEST_TIMEOUT:g} s; sending anyway")
                return
            await asyncio.sleep(0.02)

    async def _start(self, disc: _Discussion) -> None:
        starter = disc.members[0]
        if not starter.alive:
            self.notes.append(f"{disc.conv.label}: not started, {starter.user} is not "
                              "connected")
            return
        uid = next(self._uids)
        body, client_id = self._body(uid), f"{self.run_id}-{uid}"
        subject = f"Load test {self.run_id}: {disc.conv.label}"
        for attempt in range(ATTEMPTS):
            try:
                started = await starter.client.start(disc.conv.recipients, subject, body,
                                                     client_id=client_id)
                break
            except PreauError as exc:
                self.stats.on_refusal(time.monotonic(), "start", exc.code)
                if exc.code not in _RETRY_CODES or attempt == ATTEMPTS - 1:
                    return
            await asyncio.sleep(_retry_delay(attempt, self.rng))
        disc.id = int(started["discussion"]["id"])
        ack = started.get("ack") or {}
        self.stats.on_sent(time.monotonic(), duplicate=bool(ack.get("duplicate")))
        disc.last_seq = max(disc.last_seq, int(ack.get("seq", 1)))
        self.by_id[disc.id] = disc

    def _body(self, uid: int) -> str:
        head = f"lt {self.run_id} {uid} {int((time.monotonic() - self.t0) * 1e6)} "
        size = self.options.body_size
        return (head + _FILLER * (size // len(_FILLER) + 1))[:max(size, len(head))]

    # ------------------------------------------------------------------ send

    async def _send_phase(self) -> None:
        self.phases["send_start"] = self._now()
        self.stats.steady_from = self.phases["send_start"] + self.options.warmup
        self.cpu["send_start"] = time.process_time()
        self.cpu["send_start_deliveries"] = self.stats.delivered
        start = time.monotonic()
        stop_at = start + self.options.duration
        pacers = [asyncio.create_task(self._pace(d, start, stop_at))
                  for d in self.discussions if d.id is not None and d.conv.rate > 0]
        storm = None
        if self.options.storm_at is not None:
            storm = asyncio.create_task(self._storm_at(start + self.options.storm_at))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), self.options.duration)
        self._stop.set()
        for task in [*pacers, *([storm] if storm else [])]:
            task.cancel()
        await asyncio.gather(*pacers, *([storm] if storm else []), return_exceptions=True)
        self.phases["send_end"] = self._now()
        self.cpu["send_end"] = time.process_time()
        self.cpu["send_end_deliveries"] = self.stats.delivered

    async def _pace(self, disc: _Discussion, start: float, stop_at: float) -> None:
        """Messages at a fixed interval from a random phase; a member at random each."""
        interval = 1.0 / disc.conv.rate
        at = start + self.rng.uniform(0, interval)
        while at < stop_at:
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0:
                # More than a second behind: this process is saturated. Skip ahead rather
                # than burst, and say so (the figures then understate the asked load).
                self.late_ticks += 1
                at = time.monotonic()
            senders = [m for m in disc.members if m.alive]
            if not senders or disc.id is None:
                return
            if len(self._in_flight) >= MAX_IN_FLIGHT:
                self.skipped += 1
            else:
                task = asyncio.create_task(self._send(self.rng.choice(senders), disc, disc.id))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            at += interval

    async def _send(self, m: _Member, disc: _Discussion, d: int) -> None:
        uid = next(self._uids)
        body, client_id = self._body(uid), f"{self.run_id}-{uid}"
        for attempt in range(ATTEMPTS):
            try:
                ack = await m.client.send(d, body, client_id=client_id)
                break
            except PreauError as exc:
                self.stats.on_refusal(time.monotonic(), "send", exc.code)
                if exc.code not in _RETRY_CODES or attempt == ATTEMPTS - 1 or self._closing:
                    return
            await asyncio.sleep(_retry_delay(attempt, self.rng))
        self.stats.on_sent(time.monotonic(), duplicate=ack.duplicate)
        if ack.seq > disc.last_seq:
            disc.last_seq = ack.seq

    async def _storm_at(self, when: float) -> None:
        await asyncio.sleep(max(0.0, when - time.monotonic()))
        connected = [m for m in self.members if m.client.connected]
        victims = self.rng.sample(connected, max(1, round(self.options.storm_fraction
                                                          * len(connected))))
        now = time.monotonic()
        self._storm = {"at": now - self.t0 - self.phases["send_start"], "dropped": 0,
                       "reconnected": 0, "recovery_seconds": 0.0}
        for m in victims:           # all at once: no await between the drops
            if m.client.drop():
                m.dropped_at = now
                self._storm["dropped"] += 1

    # ------------------------------------------------------------------ drain

    async def _drain(self) -> bool:
        """Wait for the acks, learn each discussion's last seq, wait for deliveries.

        True if every connected member got every message within ``--drain`` seconds.
        """
        if self._in_flight:
            # A send attempt waits at most REQUEST_TIMEOUT (reconnections included); no
            # new attempt starts from now on.
            self._closing = True
            await asyncio.wait(set(self._in_flight), timeout=REQUEST_TIMEOUT + 2)
        deadline = time.monotonic() + self.options.drain
        await asyncio.gather(*(self._last_seq(d) for d in self.by_id.values()))
        while True:
            if self._missing() == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)

    async def _last_seq(self, disc: _Discussion) -> None:
        """Ask the server for the discussion's newest seq: a message stored but neither
        acknowledged (timeout) nor delivered to anyone must still count as lost."""
        assert disc.id is not None
        for m in disc.members:
            if not m.alive:
                continue
            try:
                newest, _ = await m.client.history(disc.id, limit=1)
            except PreauError as exc:
                self.stats.on_refusal(time.monotonic(), "history", exc.code)
                continue
            if newest:
                disc.last_seq = max(disc.last_seq, int(newest[0]["seq"]))
            return

    def _missing_detail(self, limit: int = 20) -> list[dict[str, Any]]:
        """Who misses what, for the first ``limit`` (member, discussion) pairs."""
        out: list[dict[str, Any]] = []
        for d, disc in self.by_id.items():
            for m in disc.members:
                have = m.received.get(d, 0)
                if m.alive and have < disc.last_seq and len(out) < limit:
                    out.append({"user": m.user, "url": m.url, "discussion": d,
                                "conversation": disc.conv.label, "last_seq": disc.last_seq,
                                "received": have, "position": m.client.positions.get(d),
                                "announced": d in m.announced,
                                "started_by_this_member": m is disc.members[0]})
        return out

    def _missing(self) -> int:
        return sum(max(0, disc.last_seq - m.received.get(d, 0))
                   for d, disc in self.by_id.items() for m in disc.members if m.alive)

    async def _close_all(self) -> None:
        for task in list(self._in_flight):
            task.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await asyncio.gather(*(m.client.close() for m in self.members),
                                     return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=CLOSE_TIMEOUT)

    # ------------------------------------------------------------------ progress

    async def _tick(self) -> None:
        """Sample the connection count every half second, and show progress."""
        interactive = self.out.isatty()
        last_line = 0.0
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            self.stats.second(now).connected = self._connected()
            if self.options.progress and (interactive or now - last_line >= 5.0):
                last_line = now
                self._progress()

    def _connected(self) -> int:
        return sum(1 for m in self.members if m.client.connected)

    def _progress(self, *, final: bool = False) -> None:
        """One line: ``\\r``-rewritten on a terminal, a plain line every 5 s otherwise."""
        s = self.stats
        p99 = s.latency.quantile(0.99)
        phase = ("done" if final else "drain" if "send_end" in self.phases
                 else "send" if "send_start" in self.phases
                 else "start" if "ramp_end" in self.phases else "ramp")
        clock = ""
        if "send_start" in self.phases:
            elapsed = min(self._now() - self.phases["send_start"], self.options.duration)
            clock = f" {elapsed:5.1f}/{self.options.duration:g}s"
        line = (f"[{phase}{clock}] "
                f"connections {self._connected()}/{len(self.members)}  sent {s.sent}  "
                f"delivered {s.delivered}  p99 "
                + ("-" if p99 is None else f"{p99 * 1000:.1f} ms")
                + (f"  refused {sum(s.refusals.values())}" if s.refusals else ""))
        if self.out.isatty():
            self.out.write("\r\x1b[2K" + line + ("\n" if final else ""))
        else:
            self.out.write(line + "\n")
        self.out.flush()

    # ------------------------------------------------------------------ outcome

    def _outcome(self, drained: bool) -> Outcome:
        alive = [m for m in self.members if m.alive]
        expected = sum(d.last_seq for d in self.by_id.values() for m in d.members if m.alive)
        per_target: dict[str, int] = {}
        for m in alive:
            per_target[m.url] = per_target.get(m.url, 0) + 1
        if self.late_ticks:
            self.notes.append(f"the load generator fell behind its schedule "
                              f"{self.late_ticks} times: it is saturated (see cpu)")
        if self.skipped:
            self.notes.append(f"{self.skipped} sends skipped: {MAX_IN_FLIGHT} were "
                              "already waiting for their ack")
        return Outcome(
            run_id=self.run_id, options=self.options, plan=self.plan, stats=self.stats,
            phases=dict(self.phases),
            connections={
                "planned": len(self.members),
                "opened": sum(1 for m in self.members if m.opened),
                "held": sum(1 for m in alive if m.client.connected),
                "failed": sum(1 for m in self.members if not m.opened),
                "lost": sum(1 for m in self.members if m.opened and m.failure),
                "reconnections": sum(m.reconnections for m in self.members)},
            per_target=per_target,
            discussions={
                "planned": len(self.discussions),
                "started": len(self.by_id),
                "classes": sum(1 for d in self.by_id.values() if d.conv.kind == "class"),
                "threads": sum(1 for d in self.by_id.values() if d.conv.kind == "thread")},
            messages={
                "sent": self.stats.sent,
                "stored": sum(d.last_seq for d in self.by_id.values()),
                "delivered": self.stats.delivered,
                "expected": expected,
                "losses": self._missing(),
                "duplicates": self.duplicates,
                "redelivered": sum(m.client.redelivered for m in self.members),
                "mismatched": self.mismatched,
                "retried_acks": self.stats.retried_acks,
                "foreign": self.foreign,
                "skipped": self.skipped},
            storm=self._storm, notes=self.notes, drained=drained,
            missing=self._missing_detail(),
            cpu={"total": time.process_time() - self.cpu0,
                 "send": self.cpu["send_end"] - self.cpu["send_start"],
                 "send_deliveries": (self.cpu["send_end_deliveries"]
                                     - self.cpu["send_start_deliveries"])})


_HINTS: dict[str, str] = {
    "unauthenticated": ": is the secret the server's, the school id right, and the "
                       "token valid by the server's clock? See docs/loadtest.md",
    "unreachable": ": is the server running?",
    "discussions_disabled": ": discussions are switched off in this school",
    "profile_disabled": ": discussions are switched off for this user's profile",
}


def _retry_delay(attempt: int, rng: random.Random) -> float:
    """0.25 s, then 0.5 s… with jitter: retries of many clients do not come back together."""
    return 0.25 * 2.0 ** attempt * rng.uniform(0.75, 1.25)


def _codes(counter: Mapping[str, int]) -> str:
    return ", ".join(f"{code} ×{n}" for code, n in sorted(counter.items())) or "no answer"
