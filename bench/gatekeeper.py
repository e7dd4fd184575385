"""Benchmark: the gatekeeper's send check, and the contacts API over a real socket.

Run with ``make bench`` or ``.venv/bin/python -m bench.gatekeeper``. It builds the
demo school (30 classes × 28 students, seed 1), then measures:

1. ``Gatekeeper.check_send`` for a student in a 30-participant class discussion
   (a teacher, the class's 28 students and a staff member), once the
   discussion's decision is cached: median and p99 per call, in µs;
2. the same check with the cache dropped before every call (the cold cost of
   computing the G6 posters set for 30 participants);
3. ``GET /api/contacts`` (first page, and a search) for a teacher and for a
   parent against uvicorn on 127.0.0.1, measured from the client: median, p99.

Figures are written to ``bench/RESULTS.md`` (section "Gatekeeper") with the
command, date, machine and versions. Nothing here asserts; tests never time.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from bench.gatekeeper_check import measure_send_check
from bench.report import machine_lines, write_section
from server.config import Config
from server.demo import ADMIN_ID, generate_school
from server.directory import parse_directory
from server.gatekeeper import Gatekeeper
from server.model import (
    DiscussionId,
    DiscussionMembers,
    Participant,
    Role,
    SchoolSettings,
    SchoolState,
    UserId,
)
from server.store import SqliteStore
from server.tokens import issue_token
from server.web import create_app

SECRET = "bench-secret-" + "b" * 40
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # 10:00 in Paris, a school day


def _percentiles(samples_us: list[float]) -> dict[str, float]:
    ordered = sorted(samples_us)
    return {
        "median": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "n": float(len(ordered)),
    }


def class_discussion(state: SchoolState) -> tuple[DiscussionMembers, UserId]:
    """A teacher, all students of one of her classes and a staff member: 30 people."""
    users = state.directory.users.values()
    teacher = next(u for u in users if u.role is Role.TEACHER and u.teaches)
    klass = sorted(teacher.teaches)[0]
    students = [u for u in users if u.role is Role.STUDENT and u.class_id == klass]
    staff = next(u for u in users if u.role is Role.STAFF)
    people = [Participant(teacher.id, None, NOW)]
    people += [Participant(s.id, teacher.id, NOW) for s in students]
    people.append(Participant(staff.id, teacher.id, NOW))
    return DiscussionMembers(DiscussionId(1), 1, tuple(people)), students[0].id


def bench_send_check(gk: Gatekeeper, members: DiscussionMembers, sender: UserId) -> dict[str, Any]:
    figures = measure_send_check(gk, members, sender, NOW, 200_000)
    warm = {"median": figures["median_us"], "p99": figures["p99_us"], "n": 200_000.0}
    assert gk.check_send(sender, members, NOW).allowed, "the bench discussion must allow sends"
    cold: list[float] = []
    for version in range(2, 2002):
        fresh = DiscussionMembers(members.id, version, members.participants)
        t0 = time.perf_counter_ns()
        gk.check_send(sender, fresh, NOW)
        cold.append((time.perf_counter_ns() - t0) / 1000)
    return {"participants": len(members.participants), "warm": warm,
            "cold": _percentiles(cold)}


def _serve(db: Path) -> tuple[uvicorn.Server, threading.Thread, int]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config = Config(database_url=f"sqlite:///{db}", jwt_secret=SECRET)
    server = uvicorn.Server(uvicorn.Config(create_app(config, clock=lambda: NOW),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return server, thread, port


def bench_contacts(doc: dict[str, Any], users: dict[str, UserId], n: int) -> dict[str, Any]:
    directory = parse_directory(doc)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"

        async def load() -> None:
            st = SqliteStore(str(db))
            await st.open()
            await st.import_directory(directory, actor="bench", now=NOW)
            await st.close()

        asyncio.run(load())
        server, thread, port = _serve(db)
        out: dict[str, Any] = {}
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                for label, uid in users.items():
                    token = issue_token(SECRET, directory.school.id, uid,
                                        ttl=timedelta(hours=1), now=NOW)
                    headers = {"Authorization": f"Bearer {token}"}
                    for query, params in (("first page", {}), ("search", {"q": "mar"})):
                        def call(params: dict[str, str] = params,
                                 headers: dict[str, str] = headers) -> httpx.Response:
                            return client.get("/api/contacts", params=params, headers=headers)

                        first = call()
                        first.raise_for_status()
                        samples = _time_calls(call, n)
                        out[f"{label}, {query}"] = {
                            **_percentiles(samples), "total": first.json()["total"]}
                out["teacher, first page, just after a settings change (snapshot rebuilt)"] = \
                    _after_change(client, directory.school.id, users["teacher"], n=30)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    return out


def _after_change(client: httpx.Client, school: Any, teacher: UserId, n: int) -> dict[str, Any]:
    """Each sample: the admin toggles a setting, then the teacher's first contacts call."""
    admin_h = {"Authorization": "Bearer " + issue_token(SECRET, school, UserId(ADMIN_ID),
                                                         ttl=timedelta(hours=1), now=NOW)}
    teacher_h = {"Authorization": "Bearer " + issue_token(SECRET, school, teacher,
                                                           ttl=timedelta(hours=1), now=NOW)}
    samples = []
    total = 0
    for i in range(n):
        client.patch("/api/settings", json={"parent_messaging_enabled": i % 2 == 0},
                     headers=admin_h).raise_for_status()
        t0 = time.perf_counter_ns()
        r = client.get("/api/contacts", headers=teacher_h)
        samples.append((time.perf_counter_ns() - t0) / 1000)
        r.raise_for_status()
        total = r.json()["total"]
    return {**_percentiles(samples), "total": total}


def _time_calls(call: Callable[[], httpx.Response], n: int) -> list[float]:
    for _ in range(20):
        call()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        call().raise_for_status()
        samples.append((time.perf_counter_ns() - t0) / 1000)
    return samples


def main() -> None:
    doc = generate_school(classes=30, students=28, seed=1)
    directory = parse_directory(doc)
    state = SchoolState(directory, SchoolSettings(), {}, 1)
    t0 = time.perf_counter()
    gk = Gatekeeper(state)
    build_ms = (time.perf_counter() - t0) * 1000
    members, sender = class_discussion(state)
    send = bench_send_check(gk, members, sender)
    teacher = next(u.id for u in directory.users.values() if u.role is Role.TEACHER)
    parent = next(u.id for u in directory.users.values() if u.role is Role.PARENT)
    contacts = bench_contacts(doc, {"teacher": teacher, "parent": parent}, n=300)

    counts = {r.value: sum(1 for u in directory.users.values() if u.role is r) for r in Role}
    lines = [
        "Command: `.venv/bin/python -m bench.gatekeeper` (also `make bench`)",
        "",
        *machine_lines(["starlette", "uvicorn", "httpx"]),
        "",
        f"School: demo generator, 30 classes × 28 students, seed 1: {counts['student']} "
        f"students, {counts['parent']} parents, {counts['teacher']} teachers, "
        f"{counts['staff']} staff. Building the gatekeeper snapshot: {build_ms:.1f} ms.",
        "",
        "| measurement | median | p99 | calls |",
        "|---|---:|---:|---:|",
        f"| `check_send`, {send['participants']}-participant discussion, decision cached | "
        f"{send['warm']['median']:.2f} µs | {send['warm']['p99']:.2f} µs | "
        f"{int(send['warm']['n']):,} |",
        f"| `check_send`, same, cache dropped before each call (G6 computed) | "
        f"{send['cold']['median']:.1f} µs | {send['cold']['p99']:.1f} µs | "
        f"{int(send['cold']['n']):,} |",
    ]
    for label, figures in contacts.items():
        lines.append(
            f"| `GET /api/contacts`, {label} ({figures['total']} listed), over HTTP | "
            f"{figures['median'] / 1000:.2f} ms | {figures['p99'] / 1000:.2f} ms | "
            f"{int(figures['n'])} |")
    lines += [
        "",
        "Targets (issue 2): a send check under 5 µs median once cached; the contacts list "
        "under 10 ms. HTTP figures include the client (httpx) on the same 2 cores.",
    ]
    write_section("Gatekeeper", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
