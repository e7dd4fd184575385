"""Benchmark: the hub on PostgreSQL beside SQLite, in one run (issue 9).

Run with ``.venv/bin/python -m bench.hub_postgres`` (8–10 minutes on a quiet machine)
or ``--quick`` (about 3 minutes). Needs the PostgreSQL of the tests (tests/postgres.py:
``PREAU_TEST_POSTGRES``, default ``postgresql://postgres@127.0.0.1:5432/postgres``,
trust authentication); each scenario gets a new database, dropped at the end.

The scenario and the measurement are bench/hub.py's, unchanged (20 rooms × 26
members, ``preau.msgpack`` clients, a ~92-byte body, every member must get every
message, latency on the load generator's clock, loss after a drain, steps rerun when
the machine is busy); only the database differs:

(p1) one node on a SQLite file: 10 msgs/s per room, then the max-rate ladder;
(p2) one node on PostgreSQL: the same steps. Both nodes run at once, each with its
     520 clients connected, and every step is run on one then on the other
     (alternately first): the machine is shared, and its noise comes and goes;
(p3) two nodes on PostgreSQL behind a private Redis, each room split half and half
     across them: 10 msgs/s per room.

PostgreSQL's CPU: before and after each measured window, the benchmark lists the
backends serving its database (``pg_stat_activity``) and reads their CPU time
(utime + stime in ``/proc/<pid>/stat``); the difference, over the messages
acknowledged (so stored) from those sent in the window, is its CPU per stored
message. The server's shared processes (WAL writer, checkpointer, autovacuum) are
not counted: they also serve every other database of the machine.

Targets (issue 9): on one node, PostgreSQL reaches ≥ 80 % of SQLite's max deliveries/s
and p99 ≤ 50 ms at 10 msgs/s per room; on two nodes, no loss and p99 ≤ 50 ms. Figures
go to ``bench/RESULTS.md``, section "PostgreSQL (issue 9)". Nothing here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import uvloop

from bench import hub
from bench.report import machine_lines, write_section
from tests.postgres import TestDatabases, admin_url

__all__ = ["main"]

SECTION = "PostgreSQL (issue 9)"
# The two stores are compared by their best passing step (then two bisections): steps of
# 10 up to 100, where this machine's node saturates.
LADDER = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 120)
QUICK_LADDER = (20, 30, 40, 60)
SETTINGS = ("server_version", "fsync", "synchronous_commit", "wal_level", "shared_buffers",
            "max_connections")


class BackendCpu:
    """The CPU seconds used so far by each PostgreSQL backend serving ``database``
    (a :data:`bench.hub.CpuSampler`). Asks over its own connection to the admin database,
    which is therefore not one of them."""

    def __init__(self, database: str) -> None:
        self.database = database
        self._conn: asyncpg.Connection | None = None

    async def __call__(self) -> dict[str, float]:
        if self._conn is None:
            self._conn = await asyncpg.connect(admin_url(), timeout=10)
        rows = await self._conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            self.database)
        out: dict[str, float] = {}
        for row in rows:
            seconds = hub.cpu_seconds(int(row["pid"]))
            if seconds is not None:
                out[str(row["pid"])] = seconds
        return out

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


async def server_settings() -> dict[str, str]:
    conn = await asyncpg.connect(admin_url(), timeout=10)
    try:
        return {name: str(await conn.fetchval(f"SHOW {name}")) for name in SETTINGS}
    finally:
        await conn.close()


async def on_postgres(databases: TestDatabases,
                      run: Callable[[str, BackendCpu], Awaitable[dict[str, Any]]]
                      ) -> dict[str, Any]:
    """``run(url, sampler)`` on a new PostgreSQL database, dropped afterwards."""
    url = await asyncio.to_thread(databases.create)
    sampler = BackendCpu(urlsplit(url).path.lstrip("/"))
    try:
        result: dict[str, Any] = await run(url, sampler)
        result["database"] = url
        return result
    finally:
        await sampler.close()
        await asyncio.to_thread(databases.drop, url)


async def side_by_side(opts: hub.Options, ladder: Sequence[float],
                       loads: dict[str, hub.Load]) -> dict[str, dict[str, Any]]:
    """(p1) and (p2): the fixed step, then the ladder, each step run on one store then on
    the other (alternately first), so that both meet the same moments of a shared
    machine; then two bisections each, in turn."""
    out: dict[str, dict[str, Any]] = {name: {} for name in loads}
    for name, load in loads.items():
        print(f"({name}) one node, 10 msgs/s per room", flush=True)
        out[name]["fixed"] = await load.step(10.0, opts.warmup, opts.duration, 5.0)
        hub.show(f"a {name}", out[name]["fixed"])
    if "b" in opts.skip:
        return out
    steps: dict[str, list[dict[str, Any]]] = {name: [] for name in loads}
    best: dict[str, dict[str, Any] | None] = dict.fromkeys(loads)
    fail: dict[str, dict[str, Any] | None] = dict.fromkeys(loads)
    started = hub.perf()
    budget = 150.0 if opts.quick else 2 * opts.ladder_budget

    async def step(name: str, rate: float) -> dict[str, Any]:
        res = await loads[name].step(rate, 2.0, opts.step_duration, 3.0)
        res["pass"] = hub.passes(res)
        steps[name].append(res)
        hub.show(f"b {name}", res)
        return res

    print("(b) one node each, max-rate ladder, the two stores in turn", flush=True)
    for i, rate in enumerate(ladder):
        climbing = [name for name in loads if fail[name] is None]
        if not climbing or hub.perf() - started > budget:
            break
        for name in climbing if i % 2 == 0 else climbing[::-1]:
            res = await step(name, rate)
            if res["pass"]:
                best[name] = res
            else:
                fail[name] = res
    bounds = {name: (b["rate_per_room"], f["rate_per_room"]) for name in loads
              if (b := best[name]) is not None and (f := fail[name]) is not None}
    for _ in range(0 if opts.quick else 2):
        for name, (lo, hi) in list(bounds.items()):
            mid = round((lo + hi) / 2, 2)
            if mid - lo < 0.25 or mid >= hi or hub.perf() - started > budget:
                continue
            res = await step(name, mid)
            if res["pass"]:
                bounds[name], best[name] = (mid, hi), res
            else:
                bounds[name] = (lo, mid)
    for name in loads:
        out[name].update(ladder=steps[name], best=best[name], first_fail=fail[name])
    return out


async def one_node_each(opts: hub.Options, ladder: Sequence[float], url: str,
                        cpu: BackendCpu) -> dict[str, Any]:
    """A node on a fresh SQLite file and a node on PostgreSQL, both loaded with their
    clients at once, for :func:`side_by_side`."""
    extras = ("setup", "rss_mib_loaded", "errors", "error_samples", "commands")

    async def on_sqlite(lite: hub.Load, _: hub.Scenario) -> dict[str, Any]:
        async def on_pg(pg: hub.Load, _: hub.Scenario) -> dict[str, Any]:
            return dict(await side_by_side(opts, ladder, {"sqlite": lite, "postgres": pg}))

        both: dict[str, Any] = await hub._classroom(opts, 1, False, on_pg, database_url=url,
                                                    database_cpu=cpu)
        both["postgres"].update({k: both.pop(k) for k in extras if k in both})
        return both

    both: dict[str, Any] = await hub._classroom(opts, 1, False, on_sqlite)
    both["sqlite"].update({k: both.pop(k) for k in extras if k in both})
    both["postgres"]["database"] = url
    return both


async def run(opts: hub.Options, ladder: Sequence[float]) -> dict[str, Any]:
    databases = await asyncio.to_thread(TestDatabases)
    results: dict[str, Any] = {"settings": await server_settings()}
    try:
        if "p1" not in opts.skip:
            print("(p1, p2) one node on a SQLite file, one node on PostgreSQL", flush=True)
            results.update(await on_postgres(
                databases, lambda url, cpu: one_node_each(opts, ladder, url, cpu)))
            results.pop("database", None)
        if "p3" not in opts.skip:
            print("(p3) two nodes on PostgreSQL + Redis, rooms split", flush=True)
            results["postgres2"] = await on_postgres(
                databases, lambda url, cpu: hub.scenario_redis(
                    opts, 2, database_url=url, database_cpu=cpu))
    finally:
        await asyncio.to_thread(databases.drop_all)
    return results


async def profile(opts: hub.Options) -> None:
    """``--profile DIR``: the node on PostgreSQL under py-spy (bench/hub.py's profiler),
    plus the CPU of the database's backends per step."""
    databases = await asyncio.to_thread(TestDatabases)
    try:
        await on_postgres(databases, lambda url, cpu: hub.scenario_profile(
            opts, opts.profile_rates, database_url=url, database_cpu=cpu))
    finally:
        await asyncio.to_thread(databases.drop_all)


# ---------------------------------------------------------------------- report


def _us(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f} µs"


def report(opts: hub.Options, results: dict[str, Any], command: str, wall: float,
           noise: str, code: str) -> list[str]:
    s = results["settings"]
    lines = [
        f"Command: `{command}` (total {wall / 60:.1f} min)",
        "",
        *machine_lines(["starlette", "uvicorn", "websockets", "msgpack", "aiosqlite",
                        "asyncpg", "redis"]),
        f"- PostgreSQL {s['server_version']} (the machine's server, shared with other work, "
        f"not pinned): fsync={s['fsync']}, synchronous_commit={s['synchronous_commit']}, "
        f"wal_level={s['wal_level']}, shared_buffers={s['shared_buffers']}, "
        f"max_connections={s['max_connections']}; a new database per scenario, dropped "
        "after it. The nodes use the store's default pool (`PREAU_DATABASE_URL` without "
        "options).",
        f"- Pinning: each node `taskset -c {hub.SERVER_CPU}`; load generator and Redis on "
        f"CPU {hub.LOAD_CPU}; PostgreSQL's backends run where the kernel puts them.",
        f"- Code under test: {code}",
        f"- Other activity on the machine during the run: {noise}. CPU: 100 % = one core; "
        "`postgres` is the backends serving the benchmark's database; `other` is the rest "
        "of the machine (the noise indicator; a step with other > 15 % is run again).",
        "",
        f"Scenario: bench/hub.py's (section \"Hub\"): {opts.rooms} rooms × {opts.size} "
        f"({opts.rooms * opts.size} connections, `preau.msgpack`), each teacher sends a "
        "~92-byte body as a `send`, every member including the sender must get every "
        f"message; warm-up {opts.warmup:g} s then {opts.duration:g} s measured (ladder: 2 s "
        f"+ {opts.step_duration:g} s); a ladder step passes with p99 ≤ 200 ms, no loss and "
        f"no error frame; then {'no' if opts.quick else 'two'} bisections. Gatekeeper on, "
        "`PREAU_RATE_LIMIT=10000`. The SQLite node and the PostgreSQL node run at once, "
        "each with its own clients connected, and every step is run on one then on the other "
        "(alternately first), so that both meet the same moments of the shared machine.",
        "",
        "| run | msgs/s per room | offered deliveries/s | delivered/s | latency p50 / p95 / "
        "p99 / max (ms) | ack p50 / p99 (ms) | lost | dup | error frames | CPU | "
        "PostgreSQL CPU per stored message |",
        "|---|---:|---:|---:|---|---|---:|---:|---:|---|---:|",
    ]

    def row(label: str, r: dict[str, Any]) -> str:
        return hub._row(label, r) + f" {_us(r.get('database_us_per_message'))} |"

    for key, name in (("sqlite", "SQLite"), ("postgres", "PostgreSQL")):
        one = results.get(key)
        if not one:
            continue
        lines.append(row(f"({'p1' if key == 'sqlite' else 'p2'}) one node, {name}",
                         one["fixed"]))
        for st in one.get("ladder", []):
            verdict = "pass" if st["pass"] else "**fail**"
            lines.append(row(f"ladder, {name}, {verdict}", st))
    two = results.get("postgres2")
    if two:
        lines.append(row("(p3) two nodes, PostgreSQL + Redis, rooms split", two["fixed"]))
    lines += reading(results)
    return lines


def _best(one: dict[str, Any] | None) -> dict[str, Any] | None:
    return one.get("best") if one else None


def _machine(r: dict[str, Any]) -> float:
    """The machine's whole CPU during a step, % of one core: the processes listed plus
    ``other`` (which holds the rest, softirq included)."""
    return float(sum(v for k, v in r["cpu"].items() if k != "softirq"))


def _node_us(r: dict[str, Any], *nodes: str) -> float:
    """The node(s)' CPU per delivery, µs."""
    return hub._us_per_delivery(r, *nodes)


def reading(results: dict[str, Any]) -> list[str]:
    out = ["", "Reading (targets of issue 9: one node on PostgreSQL ≥ 80 % of SQLite's "
           "deliveries/s and p99 ≤ 50 ms at 10 msgs/s per room; two nodes on PostgreSQL: no "
           "loss, p99 ≤ 50 ms):", ""]
    lite, pg, two = results.get("sqlite"), results.get("postgres"), results.get("postgres2")
    b_lite, b_pg = _best(lite), _best(pg)
    if b_lite and b_pg and lite and pg:
        ratio = b_pg["delivered_per_s"] / b_lite["delivered_per_s"]
        # A ladder that never failed only gives a lower bound of that store's maximum.
        lite_open, pg_open = lite.get("first_fail") is None, pg.get("first_fail") is None
        if lite_open and not pg_open:
            verdict = f"at most **{ratio:.0%}** (SQLite passed every step)" + (
                " — misses the ≥ 80 % target" if ratio < 0.8 else
                " — not enough to say whether it meets the ≥ 80 % target")
        elif pg_open and not lite_open:
            verdict = (f"at least **{ratio:.0%}** (PostgreSQL passed every step) — "
                       f"{'meets' if ratio >= 0.8 else 'not enough to judge'} the ≥ 80 % "
                       "target")
        elif lite_open and pg_open:
            verdict = "unknown: both passed every step (raise the ladder)"
        else:
            verdict = (f"**{ratio:.0%}** — {'meets' if ratio >= 0.8 else 'misses'} the "
                       "≥ 80 % target")
        failing = [f"{name} {_machine(one['first_fail']):.0f} % (node "
                   f"{one['first_fail']['cpu'].get('node0', 0):.0f} %)"
                   for name, one in (("SQLite", lite), ("PostgreSQL", pg))
                   if one.get("first_fail")]
        out.append(
            f"- Max sustained on one node: SQLite {b_lite['delivered_per_s']:,.0f} "
            f"deliveries/s (at {b_lite['rate_per_room']:g} msgs/s per room), PostgreSQL "
            f"{b_pg['delivered_per_s']:,.0f} (at {b_pg['rate_per_room']:g}): {verdict}. "
            f"Node CPU per delivery there: {_node_us(b_lite):.0f} µs on SQLite, "
            f"{_node_us(b_pg):.0f} µs on PostgreSQL, plus {b_pg['cpu'].get('postgres', 0):.0f} "
            "% of a core in PostgreSQL's backends. The whole machine (2 cores: node, load "
            f"generator, kernel, database) was at {_machine(b_lite):.0f} % and "
            f"{_machine(b_pg):.0f} % of its 200 % there" + (
                "; at the first failing step " + ", ".join(failing) if failing else "")
            + ".")
    elif any(one and "ladder" in one for one in (lite, pg)):
        out.append("- Max sustained: a ladder had no passing step; see the rows.")
    if pg:
        a = pg["fixed"]
        ok = a["p99"] is not None and a["p99"] <= 50 and a["lost"] == 0
        out.append(f"- One node on PostgreSQL at 10 msgs/s per room: p99 {a['p99']} ms "
                   f"(SQLite: {lite['fixed']['p99'] if lite else '–'} ms), {a['lost']} lost, "
                   f"ack p99 {a['ack_p99']} ms — {'meets' if ok else 'misses'} the p99 ≤ 50 ms "
                   "target.")
    if two:
        c = two["fixed"]
        ok = c["p99"] is not None and c["p99"] <= 50 and c["lost"] == 0
        out.append(f"- Two nodes on PostgreSQL + Redis, rooms split: p99 {c['p99']} ms, "
                   f"{c['lost']} lost, {c['dup']} duplicates, {c['errors']} error frames — "
                   f"{'meets' if ok else 'misses'} the target.")
    per = [(label, r) for label, r in (
        ("one node, 10 msgs/s per room", pg["fixed"] if pg else None),
        ("one node, best ladder step", b_pg),
        ("two nodes, 10 msgs/s per room", two["fixed"] if two else None))
        if r and r.get("database_us_per_message") is not None]
    if per:
        parts = [f"{label}: {_us(r['database_us_per_message'])} "
                 f"({r['database_cpu_s']:.2f} s of CPU over {r['stored']:,} messages, "
                 f"{r['offered_msgs_per_s']:,.0f} stored/s)" for label, r in per]
        out.append("- PostgreSQL's CPU per stored message (its backends for this database, "
                   "/proc utime + stime, over the messages acknowledged in the window): "
                   + "; ".join(parts) + ".")
    noisy = [r for key in ("sqlite", "postgres", "postgres2") if results.get(key)
             for r in [results[key]["fixed"], *results[key].get("ladder", [])]
             if r.get("disturbed")]
    if noisy:
        out.append(f"- {len(noisy)} step(s) were still disturbed by other activity after 3 "
                   "attempts (⚠).")
    return out


# ---------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short steps, a short ladder")
    p.add_argument("--skip", default="", help="comma-separated: p1 (with p2), p3, b (ladders)")
    p.add_argument("--profile", type=Path,
                   help="only profile: one node on PostgreSQL under py-spy at "
                        "--profile-rates, into DIR (see bench/hub.py's scenario_profile)")
    p.add_argument("--profile-rates", default="10,40", help="msgs/s per room (default 10,40)")
    p.add_argument("--no-write", action="store_true", help="do not rewrite bench/RESULTS.md")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    p.add_argument("--rooms", type=int, default=20, help=argparse.SUPPRESS)  # smoke tests
    p.add_argument("--size", type=int, default=26, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    opts = hub.Options(quick=args.quick, rooms=args.rooms, size=args.size,
                       profile=args.profile,
                       profile_rates=tuple(float(x) for x in args.profile_rates.split(",")),
                       skip={s.strip() for s in args.skip.split(",") if s.strip()})
    opts.ladder_budget = 420.0
    if args.quick:
        opts.warmup, opts.duration, opts.step_duration = 2.0, 8.0, 4.0
    ladder = QUICK_LADDER if args.quick else LADDER
    hub._raise_nofile()

    def _terminated(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally blocks

    signal.signal(signal.SIGTERM, _terminated)
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {hub.LOAD_CPU})  # Redis, started from here, inherits it
    gc.freeze()
    noise = hub._noise()
    command = ".venv/bin/python -m bench.hub_postgres" + (" --quick" if args.quick else "") \
        + (f" --skip {args.skip}" if args.skip else "")
    code = hub.code_version()
    t0 = hub.perf()
    if opts.profile is not None:
        uvloop.run(asyncio.wait_for(profile(opts), 900))
        return 0
    results = uvloop.run(asyncio.wait_for(run(opts, ladder), 1500))
    wall = hub.perf() - t0
    code_after = hub.code_version()
    if code_after != code:
        code = f"{code} at the start, {code_after} at the end (changed during the run!)"
    lines = report(opts, results, command, wall, f"before: {noise}; after: {hub._noise()}",
                   code)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print("\n".join(lines))
    if not args.no_write:
        write_section(SECTION, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
