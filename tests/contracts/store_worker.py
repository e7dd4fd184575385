"""Another server process, as far as the store can tell: ``python -m
tests.contracts.store_worker JOB`` opens the store at ``JOB["url"]``, waits until the
file ``JOB["go"]`` exists (so that every worker of a test starts at once, after its
imports), does one job and prints what the store answered, as JSON, on stdout.

Jobs (``JOB["do"]``):

- ``append``: ``append_message`` of ``client_ids`` (all at once, as a node's
  connections would) by ``sender`` in ``discussion``; prints ``[[client_id, seq, new]...]``.
- ``claim_held``: ``claim_due(now)`` ``rounds`` times; prints the ids claimed.
- ``claim_broadcasts``: the same with ``claim_due_broadcasts``.
- ``answer``: ``answer_poll`` for each of ``users`` with ``answers``; prints the
  ``answered`` figure and the counts each call returned.

:func:`run_workers` starts several, says go once all have opened the store, and
gathers what they printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from server.model import DiscussionId, SchoolId, UserId
from server.store import open_store

__all__ = ["run_workers"]

_ROOT = Path(__file__).resolve().parents[2]
_WAIT = 60.0  # seconds a worker may take, imports included; reached only on failure


# A file or two per test, on a local disk: not worth a thread.
def _touch(path: Path) -> None:
    path.touch()


def _exists(path: Path) -> bool:
    return path.exists()


def _count_ready(go: Path) -> int:
    return len(list(go.parent.glob(f"{go.name}.ready.*")))


async def _job(job: dict[str, Any]) -> Any:
    store = await open_store(job["url"])
    try:
        go = Path(job["go"])
        _touch(Path(f"{go}.ready.{os.getpid()}"))
        deadline = time.monotonic() + _WAIT
        while not _exists(go):
            if time.monotonic() > deadline:
                raise TimeoutError("the test never said go")
            await asyncio.sleep(0.005)
        school = SchoolId(job["school"])
        now = datetime.fromisoformat(job["now"])
        do = job["do"]
        if do == "append":
            results = await asyncio.gather(*(
                store.append_message(school, DiscussionId(job["discussion"]),
                                     UserId(job["sender"]), cid, f"body of {cid}", now=now)
                for cid in job["client_ids"]))
            return [[m.client_id, m.seq, new] for m, new in results]
        if do == "claim_held":
            claimed: list[int] = []
            for _ in range(job["rounds"]):
                claimed += [h.id for h in await store.claim_due(now, limit=job["limit"])]
            return claimed
        if do == "claim_broadcasts":
            claimed = []
            for _ in range(job["rounds"]):
                claimed += [b.id for b in await store.claim_due_broadcasts(
                    now, limit=job["limit"])]
            return claimed
        if do == "answer":
            figures = []
            for user in job["users"]:
                _, stats = await store.answer_poll(school, job["broadcast"], UserId(user),
                                                   job["answers"], now=now)
                figures.append([stats.answered, [list(c) if c else None
                                                 for c in stats.counts]])
            return figures
        raise ValueError(f"unknown job {do!r}")
    finally:
        await store.close()


async def run_workers(jobs: list[dict[str, Any]], go: Path,
                      timeout: float = 120.0) -> list[Any]:
    """Start one process per job, say go once every one has opened the store, and return
    what each printed (in the order of ``jobs``); fail with a worker's stderr if it
    failed, or if they are not done within ``timeout`` seconds."""
    env = {**os.environ, "PYTHONPATH": str(_ROOT)}
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.contracts.store_worker",
        json.dumps({**job, "go": str(go)}), cwd=_ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        for job in jobs]
    try:
        async with asyncio.timeout(timeout):
            while _count_ready(go) < len(jobs):
                if any(p.returncode is not None for p in procs):
                    break  # one died before it was ready: its stderr says why, below
                await asyncio.sleep(0.01)
            _touch(go)
            outputs = [await p.communicate() for p in procs]
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
    results = []
    for p, (stdout, stderr) in zip(procs, outputs, strict=True):
        if p.returncode != 0:
            raise AssertionError(f"a store worker failed ({p.returncode}):\n"
                                 f"{stderr.decode(errors='replace')}")
        results.append(json.loads(stdout))
    return results


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_job(json.loads(sys.argv[1])))))
