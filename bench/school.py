"""Benchmark: whole schools through `preau loadtest`, one node and two nodes with Redis.

Run with ``.venv/bin/python -m bench.school [--sizes 30,60,120] [--duration 20]``.
For each size it generates a demo school of that many classes (28 students each),
imports it into a fresh SQLite file, starts ``preau serve`` pinned to CPU 0, runs
``preau loadtest`` pinned to CPU 1 (Redis shares CPU 1 in the two-node run) with
the classroom defaults (1 message/s per class discussion, 2 parent–teacher
threads per class at 0.2 message/s), and records connections, deliveries/s,
latency percentiles and losses. The biggest size whose p99 stays under 200 ms
with no loss is the "biggest school" figure. Writes the "Load test" section of
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.report import machine_lines, write_section
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-school-" + "s" * 40
CLOCK = "2026-11-24T09:00:00Z"  # a school morning, whatever the hour of the run
PYTHON = sys.executable
PREAU = [PYTHON, "-m", "server"]


def _taskset(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and os.cpu_count() else []


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(db: Path, redis_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREAU_")}
    env.update({"PREAU_DATABASE_URL": f"sqlite:///{db}", "PREAU_JWT_SECRET": SECRET,
                "PREAU_CLOCK_START": CLOCK, "PYTHONPATH": str(ROOT)})
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def _serve(db: Path, redis_url: str | None, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    process = subprocess.Popen([*_taskset(0), *PREAU, "serve", "--port", str(port)],
                               env=_env(db, redis_url), stdout=log.open("wb"),
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


def run(classes: int, nodes: int, duration: int, work: Path) -> dict[str, Any]:
    school = work / f"school-{classes}.json"
    with school.open("w") as out:
        subprocess.run([*PREAU, "demo-school", "--classes", str(classes), "--students", "28",
                        "--seed", "1"], stdout=out, check=True)
    db = work / f"school-{classes}-{nodes}.db"
    subprocess.run([*PREAU, "directory", "import", str(school)], env=_env(db, None),
                   check=True, capture_output=True)
    redis = RedisServer() if nodes > 1 else None
    servers: list[subprocess.Popen[bytes]] = []
    try:
        if redis is not None:
            redis.start()
        urls = []
        for i in range(nodes):
            process, url = _serve(db, redis.url if redis else None, work / f"node{i}.log")
            servers.append(process)
            urls.append(url)
        targets = [arg for u in urls for arg in ("--url", u)]
        command = [*_taskset(1), *PREAU, "loadtest", *targets,
                   "--directory", str(school), "--secret", SECRET, "--classes", str(classes),
                   "--duration", str(duration), "--warmup", "5", "--ramp", "400",
                   "--json", "--quiet"]
        env = _env(db, None)
        result = subprocess.run(command, env=env, capture_output=True, text=True,
                                timeout=duration + 600)
        doc: dict[str, Any] = json.loads(result.stdout)
        shown = [("$SECRET" if a == SECRET else Path(a).name if a.startswith(str(work)) else a)
                 for a in command[len(_taskset(1)) + 4:]]
        doc["command"] = " ".join(["preau loadtest", *shown])
        return doc
    finally:
        for process in servers:
            process.terminate()
        for process in servers:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        if redis is not None:
            redis.close()


def steady_p99(doc: dict[str, Any]) -> float | None:
    """The p99 of the messages sent after the load tester's warm-up (``--warmup``)."""
    value = doc["steady_latency_ms"]["p99"]
    return float(value) if value is not None else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="30,60,120", help="classes per school, comma-separated")
    p.add_argument("--duration", type=int, default=20, help="seconds of sending per run")
    p.add_argument("--two-nodes", type=int, default=30, help="classes for the two-node run")
    args = p.parse_args()
    rows = []
    sizes = [int(c) for c in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="preau-school-") as tmp:
        work = Path(tmp)
        plan = [(c, 1) for c in sizes] + [(args.two_nodes, 2)]
        for classes, nodes in plan:
            doc = run(classes, nodes, args.duration, work)
            rows.append((classes, nodes, doc))
            m, lat, c = doc["messages"], doc["latency_ms"], doc["connections"]
            print(f"{classes} classes, {nodes} node(s): {c['held']} connections, "
                  f"{m['delivered_per_second']:,.0f} deliveries/s, p99 {lat['p99']} ms "
                  f"(steady {steady_p99(doc)} ms), losses {m['losses']}", flush=True)
    lines = [
        f"Command: `.venv/bin/python -m bench.school --sizes {args.sizes} "
        f"--duration {args.duration} --two-nodes {args.two_nodes}`",
        "",
        *machine_lines(["starlette", "uvicorn", "websockets", "redis"]),
        "- Pinning: each server `taskset -c 0`; `preau loadtest` (and Redis) on CPU 1.",
        "",
        "Demo schools of N classes × 28 students (seed 1), imported into a fresh SQLite file; "
        "`preau loadtest` with the classroom defaults: each class's teacher starts a class "
        "discussion with the class, 1 message/s per class discussion spread over its members, "
        f"2 parent–teacher threads per class at 0.2 message/s; {args.duration} s of sending "
        "after a settle; losses counted after a 10 s drain. Servers: `PREAU_CLOCK_START="
        f"{CLOCK}`, default rate limit.",
        "",
        "| school | nodes | connections | sent/s | delivered/s | whole run p50 / p95 / p99 / "
        "max (ms) | steady p99 (ms) | losses | dup | refusals |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    biggest = None
    for classes, nodes, doc in rows:
        m, lat, c = doc["messages"], doc["latency_ms"], doc["connections"]
        refusals = doc.get("refusals") or {}
        lines.append(
            f"| {classes} classes | {nodes} | {c['held']:,} | {m['sent_per_second']:,.1f} | "
            f"{m['delivered_per_second']:,.0f} | {lat['p50']} / {lat['p95']} / {lat['p99']} / "
            f"{lat['max']} | {steady_p99(doc)} | {m['losses']} | {m['duplicates']} | "
            f"{', '.join(f'{k} {v}' for k, v in refusals.items()) or 'none'} |")
        steady = steady_p99(doc)
        if nodes == 1 and m["losses"] == 0 and steady is not None and steady < 200:
            biggest = max(biggest or 0, classes)
    lines += ["", "*Steady p99* counts the messages sent after the first 5 s of sending "
              "(`--warmup 5`). Sending starts the moment every member holds its discussion's "
              "first message: the whole-run figures include that first message, with every "
              "class discussion and thread started in the same instant and announced to "
              "its members while the last connections are still arriving. That transient "
              "grows with the school (the whole-run max above is about its length) and "
              "dominates the whole-run p99; the steady figure is "
              "the school in use (see each run's timeline in its JSON).", "",
              f"Biggest school measured with a steady p99 < 200 ms and no loss on one process: "
              f"**{biggest} classes** (sizes tried: {args.sizes}; "
              + ("the largest passed" if biggest == max(sizes) else "larger ones did not")
              + "; one load-generator process caps a run at 5,000 connections)."
              if biggest else "No size passed.", "",
              "Commands run (servers via `python -m server serve`):", ""]
    lines += [f"- `{doc['command']}`" for _, _, doc in rows]
    write_section("Load test", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
