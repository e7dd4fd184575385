"""``preau loadtest``: unit checks, then real runs against real server processes.

The end-to-end runs reuse :class:`tests.cluster.Cluster` (``python -m server serve``
nodes sharing a private Redis and a database, the clock at a school morning) by
composition: the database gets a small generated demo school instead of the test
schools, and ``preau loadtest`` runs as a process, as an operator would run it. Each
run is a few seconds of sending with 2 classes of 5 students. The two-node run goes
on a SQLite file, then on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from server.cli import main
from server.demo import generate_school
from server.directory import parse_directory
from server.loadtest.engine import _LoadClient
from server.loadtest.options import is_loopback
from server.loadtest.plan import make_plan, people_from_directory
from server.loadtest.report import render_html, render_text
from server.loadtest.stats import Histogram
from server.store import open_store
from tests.cluster import Cluster
from tests.conftest import free_port
from tests.redis_server import RedisServer

SCHOOL = generate_school(classes=2, students=5, seed=1)
RUN_TIMEOUT = 90  # seconds: a run here sends for 4 s; everything else is bounded inside


def write_school(tmp: Path) -> Path:
    path = tmp / "school.json"
    path.write_text(json.dumps(SCHOOL, ensure_ascii=False), encoding="utf-8")
    return path


@contextmanager
def demo_cluster(tmp: Path, database_url: str | None = None) -> Iterator[Cluster]:
    """Two nodes ready to start, on a database holding the demo school only."""
    with RedisServer() as redis:
        c = Cluster(tmp, redis, nodes=2, database_url=database_url)
        try:
            c.import_directories(SCHOOL)  # instead of c.prepare(): the demo school
            yield c
        finally:
            c.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """On a SQLite file."""
    with demo_cluster(tmp_path) as c:
        yield c


@pytest.fixture
def shared_cluster(tmp_path: Path, shared_database: str) -> Iterator[Cluster]:
    """On a SQLite file, then on PostgreSQL."""
    with demo_cluster(tmp_path, shared_database) as c:
        yield c


def loadtest(c: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m server loadtest ARGS`` with the nodes' secret and clock start."""
    env = c.env(0)  # PREAU_JWT_SECRET, PREAU_CLOCK_START, PYTHONPATH…
    return subprocess.run([sys.executable, "-m", "server", "loadtest", *args], env=env,
                          cwd=c.tmp, capture_output=True, text=True, timeout=RUN_TIMEOUT)


def planned_users(classes: int, threads: int) -> int:
    people = people_from_directory(parse_directory(SCHOOL))
    return len(make_plan(people, school="demo", classes=classes, students=None,
                         threads=threads, rate=1, thread_rate=1, seed=1).users)


def assert_clean(doc: dict[str, Any]) -> None:
    m = doc["messages"]
    assert m["delivered"] > 0
    assert m["losses"] == 0, doc["missing"]
    assert m["duplicates"] == 0
    assert m["redelivered"] == 0
    assert m["mismatched"] == 0
    assert m["delivered"] == m["expected"]
    assert doc["ok"] is True


# ---------------------------------------------------------------------- end to end


def test_one_node_two_classes(cluster: Cluster, tmp_path: Path):
    cluster.start(0)
    school = write_school(tmp_path)
    report = tmp_path / "report.html"
    run = loadtest(cluster, "--url", cluster.http(0), "--directory", str(school),
                   "--classes", "2", "--threads", "1", "--rate", "5", "--thread-rate", "1",
                   "--duration", "4", "--drain", "5", "--json", "--report", str(report))
    assert run.returncode == 0, run.stderr + run.stdout
    doc = json.loads(run.stdout)

    assert {"format", "run_id", "targets", "school", "settings", "phases", "connections",
            "discussions", "messages", "latency_ms", "refusals", "refusals_by_action",
            "storm", "drained", "missing", "load_generator", "notes", "timeline",
            "histogram_ms", "ok"} <= doc.keys()
    assert doc["targets"] == [cluster.http(0)]
    assert doc["school"] == "demo"
    planned = planned_users(classes=2, threads=1)
    assert doc["connections"]["planned"] == planned
    assert doc["connections"]["held"] == planned
    assert doc["connections"]["per_target"] == {cluster.http(0): planned}
    assert doc["discussions"]["classes"] == 2
    assert doc["discussions"]["threads"] == 2
    assert_clean(doc)
    assert doc["messages"]["sent"] >= 20  # about 4 s × (5 + 2 × 1) messages/s
    assert doc["messages"]["sent_per_second"] > 0
    latency = doc["latency_ms"]
    assert latency["count"] == doc["messages"]["delivered"]
    # The default warm-up is a quarter of the 4 s: the steady figures count the
    # messages sent after the first second, a strict part of the run's.
    assert doc["settings"]["warmup"] == 1.0
    steady = doc["steady_latency_ms"]
    assert 0 < steady["count"] < latency["count"]
    assert steady["max"] <= latency["max"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert doc["storm"] is None
    row = doc["timeline"][-1]
    assert {"t", "sent", "delivered", "refused", "connected", "p50_ms", "p99_ms",
            "max_ms"} <= row.keys()
    assert sum(r["delivered"] for r in doc["timeline"]) == doc["messages"]["delivered"]
    assert sum(b["count"] for b in doc["histogram_ms"]) == doc["messages"]["delivered"]
    # Not a terminal: plain progress lines on stderr, no carriage returns.
    assert "[done" in run.stderr
    assert "\r" not in run.stderr
    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 3
    assert "Latency over time" in page
    assert "Latency histogram" in page
    assert "<script" not in page
    assert "src=" not in page  # self-contained: nothing to fetch
    assert "href=" not in page


@pytest.mark.databases("sqlite", "postgresql")
def test_two_nodes_with_a_storm_lose_nothing(shared_cluster: Cluster):
    cluster = shared_cluster
    cluster.start(0)
    cluster.start(1)
    # Users from the database this time, its demo school named explicitly; JSON frames.
    run = loadtest(cluster, "--url", cluster.http(0), "--url", cluster.http(1),
                   "--database", cluster.database_url, "--school", "demo",
                   "--encoding", "json",
                   "--classes", "2", "--rate", "5", "--thread-rate", "1", "--duration", "4",
                   "--storm-at", "1.5", "--storm-fraction", "0.5", "--drain", "8",
                   "--json", "--quiet")
    assert run.returncode == 0, run.stderr + run.stdout
    assert run.stderr == ""
    doc = json.loads(run.stdout)
    assert_clean(doc)
    planned = doc["connections"]["planned"]
    assert planned == planned_users(classes=2, threads=2)
    assert doc["connections"]["per_target"] == {cluster.http(0): planned - planned // 2,
                                                cluster.http(1): planned // 2}
    storm = doc["storm"]
    assert storm["at"] == pytest.approx(1.5, abs=0.2)
    assert storm["dropped"] == round(0.5 * planned)
    assert storm["reconnected"] == storm["dropped"]
    assert doc["connections"]["reconnections"] >= storm["dropped"]
    assert doc["connections"]["held"] == planned
    text = render_text(doc)
    assert "losses       0    duplicates 0" in text
    assert "result       OK" in text
    assert f"{storm['dropped']} connections dropped" in text


def test_uses_a_school_of_its_own_unless_told_otherwise(cluster: Cluster):
    """Against the demo's database, the run goes to a school it imports, not the demo."""
    cluster.start(0)
    run = loadtest(cluster, "--url", cluster.http(0), "--database", cluster.database_url,
                   "--classes", "1", "--students", "3", "--threads", "1", "--rate", "2",
                   "--thread-rate", "1", "--duration", "2", "--drain", "5", "--json",
                   "--quiet")
    assert run.returncode == 0, run.stderr + run.stdout
    doc = json.loads(run.stdout)
    assert doc["school"] == "loadtest"
    assert doc["discussions"] == {**doc["discussions"], "classes": 1, "threads": 1}
    assert doc["messages"]["delivered"] > 0

    async def discussions() -> dict[str, int]:
        store = await open_store(cluster.database_url)
        try:
            counts: dict[str, int] = {}
            for school in await store.list_schools():
                state = await store.load_school(school)
                ids: set[str] = set()
                for user in state.directory.users:
                    ids.update(str(d.id) for d in await store.discussions_of(school, user))
                counts[str(school)] = len(ids)
            return counts
        finally:
            await store.close()

    # The demo school people look at got nothing; the load test's school got its 2.
    assert asyncio.run(discussions()) == {"demo": 0, "loadtest": 2}


def test_demo_api_needs_the_school_named(capsys, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("PREAU_JWT_SECRET", raising=False)
    assert main(["loadtest", "--demo-api"]) == 2
    err = capsys.readouterr().err
    assert "--school ID" in err
    assert "--database URL" in err


# ---------------------------------------------------------------------- refusals


def test_refuses_a_remote_target_without_touching_it(tmp_path: Path, capsys,
                                                     monkeypatch: pytest.MonkeyPatch):
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the load tester tried to connect")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setenv("PREAU_JWT_SECRET", "s" * 40)
    school = write_school(tmp_path)
    assert main(["loadtest", "--url", "http://10.0.0.1:8000", "--directory", str(school)]) == 2
    err = capsys.readouterr().err
    assert "refusing to load-test http://10.0.0.1:8000" in err
    assert "not a loopback address" in err
    assert "--allow-remote" in err
    # One remote URL among loopback ones is refused too.
    assert main(["loadtest", "--url", "http://127.0.0.1:8000", "--url",
                 "ws://example.org/ws", "--directory", str(school)]) == 2
    assert "example.org is not a loopback address" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (["--storm-at", "5", "--duration", "5"], "--storm-at 5 must fall within"),
    (["--report", "out.png"], "--report writes HTML"),
    (["--warmup", "5", "--duration", "5"], "--warmup 5 must be shorter"),
    (["--classes", "1000", "--rate", "50"], "above the limit of 1000"),
    (["--url", "ftp://127.0.0.1"], "invalid URL"),
])
def test_refuses_options_out_of_bounds(args: list[str], message: str, capsys):
    assert main(["loadtest", *args]) == 2
    assert message in capsys.readouterr().err


def test_hard_caps_are_argument_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["loadtest", "--duration", "601"])
    assert exit_info.value.code == 2
    assert "must be between 1 and 600" in capsys.readouterr().err


def test_an_unreachable_server_stops_the_run_at_the_probe(tmp_path: Path, capsys,
                                                          monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PREAU_JWT_SECRET", "s" * 40)
    url = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    assert main(["loadtest", "--url", url, "--directory", str(write_school(tmp_path)),
                 "--duration", "1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"cannot connect to {url}" in err
    assert "unreachable" in err


def test_needs_to_know_the_users(capsys, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("PREAU_JWT_SECRET", raising=False)
    assert main(["loadtest"]) == 2
    assert "--directory FILE" in capsys.readouterr().err


# ---------------------------------------------------------------------- units


@pytest.mark.parametrize(("host", "loopback"), [
    ("localhost", True), ("LOCALHOST", True), ("127.0.0.1", True), ("127.8.9.10", True),
    ("::1", True), ("[::1]", True), ("::ffff:127.0.0.1", True),
    ("10.0.0.1", False), ("192.168.1.2", False), ("::", False), ("0.0.0.0", False),
    ("example.org", False), ("localhost.example.org", False), ("127.0.0.1.nip.io", False),
])
def test_is_loopback(host: str, loopback: bool):
    assert is_loopback(host) is loopback


def test_histogram_percentiles_within_one_percent():
    h = Histogram()
    values = [i / 10_000 for i in range(1, 10_001)]  # 0.1 ms … 1 s, uniform
    for v in values:
        h.add(v)
    for q in (0.5, 0.95, 0.99):
        exact = values[int(q * len(values)) - 1]
        got = h.quantile(q)
        assert got is not None
        assert abs(got - exact) / exact < 0.011
    assert h.max == 1.0
    assert h.count == 10_000
    assert sum(n for _, n in h.buckets()) == 10_000
    empty = Histogram()
    assert empty.quantile(0.99) is None
    assert empty.buckets() == []


def test_plan_follows_the_rules_of_the_school():
    doc = generate_school(classes=4, students=6, seed=3)
    directory = parse_directory(doc)
    users = {str(uid): user for uid, user in directory.users.items()}
    plan = make_plan(people_from_directory(directory), school="demo", classes=3,
                     students=None, threads=2, rate=2, thread_rate=0.5, seed=1)
    classes = [c for c in plan.conversations if c.kind == "class"]
    threads = [c for c in plan.conversations if c.kind == "thread"]
    assert len(classes) == 3
    assert len(threads) == 6
    for conv in classes:  # a teacher of the class, with the class's students (G5)
        teacher = users[conv.starter]
        class_ids = {users[s].class_id for s in conv.recipients}
        assert len(class_ids) == 1
        assert class_ids <= teacher.teaches
        assert len(conv.recipients) == 6
    for conv in threads:  # a parent, and a teacher of a child's class (G5)
        parent, (teacher_id,) = users[conv.starter], conv.recipients
        child_classes = {users[c].class_id for c in parent.children}
        assert child_classes & users[teacher_id].teaches
    assert len({c.starter for c in threads}) == len(threads)  # a parent in one thread
    assert len(set(plan.users)) == len(plan.users)
    assert plan == make_plan(people_from_directory(directory), school="demo", classes=3,
                             students=None, threads=2, rate=2, thread_rate=0.5, seed=1)
    rates = plan.rate_per_user()
    assert sum(rates.values()) == pytest.approx(3 * 2 + 6 * 0.5)


def test_the_client_hook_counts_redeliveries():
    client = _LoadClient("ws://127.0.0.1:9/ws", "token", encoding="json")
    frames = [{"type": "message", "discussion": 1, "seq": s} for s in (1, 2, 2, 1, 3)]
    assert [client._first_delivery(f) for f in frames] == [True, True, False, False, True]
    assert client.redelivered == 2
    assert client.drop() is False  # never connected: nothing to drop


def test_html_report_without_deliveries():
    doc: dict[str, Any] = {
        "run_id": "abc", "targets": ["http://127.0.0.1:8000"], "ok": False,
        "settings": {"duration": 1.0, "warmup": 0.25},
        "connections": {"planned": 1, "held": 0, "failed": 1, "lost": 0, "reconnections": 0},
        "discussions": {"classes": 0, "threads": 0},
        "messages": {"sent": 0, "sent_per_second": 0, "delivered": 0,
                     "delivered_per_second": 0, "expected": 0, "losses": 0, "duplicates": 0,
                     "redelivered": 0, "mismatched": 0},
        "latency_ms": {"count": 0, "p50": None, "p95": None, "p99": None, "max": None},
        "steady_latency_ms": {"count": 0, "p50": None, "p95": None, "p99": None, "max": None},
        "refusals": {"unreachable": 1}, "storm": None, "notes": [], "drained": True,
        "load_generator": {"loop": "asyncio", "cpu_seconds": 0.0,
                           "cpu_us_per_delivery": None},
        "phases": {}, "timeline": [], "histogram_ms": []}
    page = render_html(doc)
    assert "FAILED" in page
    assert "(no data)" in page
    assert "unreachable 1" in page
