"""Another server process, as far as the store can tell: ``python -m
tests.contracts.store_worker JOB`` opens the store at ``JOB["url"]``, waits until the
file ``JOB["go"]`` exists (so that every worker of a test starts at once, after its
imports), does one job and prints what the store answered, as JSON, on stdout.

Jobs (``JOB["do"]``, see :data:`JOBS`): ``append`` messages, ``start`` discussions,
``join`` a discussion once it has reached a seq, ``mark_read``, ``claim_held`` and
``claim_broadcasts``, create a ``broadcast``, ``hold`` starts, mark a broadcast
``received``, ``answer`` a poll, list the ``schools``, ``rotate`` a refresh token,
``append_search`` (append, then search for what was just appended); each with the
arguments its function reads from ``JOB``.

:func:`run_workers` starts several, says go once all have opened the store, and
gathers what they printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from server.broadcasts import Draft, Kind
from server.errors import MembersChanged
from server.gatekeeper import BroadcastTarget
from server.model import DiscussionId, Role, SchoolId, UserId
from server.store import AlreadyStarted, Store, open_store

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


async def _append(store: Store, job: dict[str, Any], now: datetime) -> Any:
    """``[client_id, seq, new]`` per message, or ``[client_id, None, "MembersChanged"]``
    for one refused because the members moved past ``members_version``."""
    async def one(cid: str) -> list[Any]:
        try:
            m, new = await store.append_message(
                SchoolId(job["school"]), DiscussionId(job["discussion"]),
                UserId(job["sender"]), cid, f"body of {cid}", now=now,
                members_version=job.get("members_version"))
        except MembersChanged:
            return [cid, None, "MembersChanged"]
        return [m.client_id, m.seq, new]
    if job.get("one_by_one"):
        return [await one(cid) for cid in job["client_ids"]]
    return list(await asyncio.gather(*(one(cid) for cid in job["client_ids"])))


async def _join(store: Store, job: dict[str, Any], now: datetime) -> Any:
    """Once the discussion has ``after_seq`` messages, bring ``user`` in; its version."""
    school, d = SchoolId(job["school"]), DiscussionId(job["discussion"])
    deadline = time.monotonic() + _WAIT
    while (await store.get_discussion(school, d)).last_seq < job["after_seq"]:
        if time.monotonic() > deadline:
            raise TimeoutError("the discussion never reached after_seq")
        await asyncio.sleep(0.001)
    members = await store.add_participant(
        school, d, UserId(job["user"]), invited_by=UserId(job["invited_by"]), now=now,
        readable_authors=[UserId(u) for u in job["readable"]])
    return members.version


async def _mark_read(store: Store, job: dict[str, Any], now: datetime) -> Any:
    return [await store.mark_read(SchoolId(job["school"]), DiscussionId(job["discussion"]),
                                  UserId(job["user"]), seq) for seq in job["seqs"]]


async def _claim_held(store: Store, job: dict[str, Any], now: datetime) -> Any:
    claimed: list[int] = []
    for _ in range(job["rounds"]):
        claimed += [h.id for h in await store.claim_due(now, limit=job["limit"])]
    return claimed


async def _claim_broadcasts(store: Store, job: dict[str, Any], now: datetime) -> Any:
    claimed: list[int] = []
    for _ in range(job["rounds"]):
        claimed += [b.id for b in await store.claim_due_broadcasts(now, limit=job["limit"])]
    return claimed


async def _broadcast(store: Store, job: dict[str, Any], now: datetime) -> Any:
    """Create an information broadcast per client id (all at once); ``[cid, id, new]``."""
    target = BroadcastTarget(roles=frozenset({Role.STUDENT}))

    async def one(cid: str) -> list[Any]:
        b, new = await store.create_broadcast(
            SchoolId(job["school"]), UserId(job["author"]),
            Draft(Kind.INFORMATION, cid, "Sortie", "Demain", target), now=now,
            publish_at=now, deadline=None, recipients=[UserId(u) for u in job["users"]])
        return [cid, b.id, new]
    return list(await asyncio.gather(*(one(cid) for cid in job["client_ids"])))


async def _hold(store: Store, job: dict[str, Any], now: datetime) -> Any:
    """Hold a start per client id (all at once); ``[cid, id, new]``."""
    async def one(cid: str) -> list[Any]:
        h, new = await store.hold(SchoolId(job["school"]), UserId(job["sender"]), cid,
                                  "le soir", discussion_id=None, subject="Soir",
                                  recipients=[UserId("t1")], now=now,
                                  release_at=datetime.fromisoformat(job["release_at"]))
        return [cid, h.id, new]
    return list(await asyncio.gather(*(one(cid) for cid in job["client_ids"])))


async def _start(store: Store, job: dict[str, Any], now: datetime) -> Any:
    """Start a discussion per client id (all at once), each with its first message;
    ``[cid, discussion id, seq, body, new]`` (``new`` false: AlreadyStarted)."""
    async def one(cid: str) -> list[Any]:
        school, creator = SchoolId(job["school"]), UserId(job["creator"])
        try:
            m = await store.create_discussion(school, creator, f"Sujet {cid}",
                                              [UserId(u) for u in job["to"]], now=now,
                                              first=(cid, f"body of {cid}"))
        except AlreadyStarted as race:
            e = race.earlier
            return [cid, e.discussion_id, e.seq, e.body, False]
        return [cid, m.id, 1, f"body of {cid}", True]
    return list(await asyncio.gather(*(one(cid) for cid in job["client_ids"])))


async def _received(store: Store, job: dict[str, Any], now: datetime) -> Any:
    """Mark each group of users as having received the broadcast; the figure each time
    (``None``: nothing changed)."""
    out = []
    for users in job["groups"]:
        stats = await store.mark_broadcast_received(
            SchoolId(job["school"]), job["broadcast"], [UserId(u) for u in users], now=now)
        out.append(None if stats is None else stats.received)
    return out


async def _answer(store: Store, job: dict[str, Any], now: datetime) -> Any:
    figures = []
    for user in job["users"]:
        _, stats = await store.answer_poll(SchoolId(job["school"]), job["broadcast"],
                                           UserId(user), job["answers"], now=now)
        figures.append([stats.answered, [list(c) if c else None for c in stats.counts]])
    return figures


JOBS: dict[str, Callable[[Store, dict[str, Any], datetime], Awaitable[Any]]] = {
    "append": _append, "join": _join, "mark_read": _mark_read, "claim_held": _claim_held,
    "claim_broadcasts": _claim_broadcasts, "broadcast": _broadcast, "hold": _hold,
    "received": _received, "answer": _answer, "start": _start,
}


async def _schools(store: Store, job: dict[str, Any], now: datetime) -> Any:
    return await store.list_schools()


JOBS["schools"] = _schools


async def _rotate(store: Store, job: dict[str, Any], now: datetime) -> Any:
    """Rotate the refresh token of hash ``old`` into ``new``; the outcome's name."""
    rotation = await store.rotate_refresh(job["old"], job["new"], now=now,
                                          refresh_expires_at=datetime.fromisoformat(
                                              job["expires"]))
    return rotation.outcome.value


JOBS["rotate"] = _rotate


async def _append_search(store: Store, job: dict[str, Any], now: datetime) -> Any:
    """Append each message (its client id is a word of its text), then search for it
    as ``reader``; ``[client_id, seq, found seqs]`` per message."""
    school, d = SchoolId(job["school"]), DiscussionId(job["discussion"])
    answers = []
    for cid in job["client_ids"]:
        m, _ = await store.append_message(school, d, UserId(job["sender"]), cid,
                                          f"mot {cid}", now=now)
        hits = await store.search(school, UserId(job["reader"]), [cid])
        answers.append([cid, m.seq, [h.seq for h in hits]])
    return answers


JOBS["append_search"] = _append_search


async def _job(job: dict[str, Any]) -> Any:
    """Open the store, wait for go, do the job; with ``open_late``, open it only once
    told to go (so that every worker opens, and migrates, at once)."""
    go = Path(job["go"])
    store = None if job.get("open_late") else await open_store(job["url"])
    try:
        _touch(Path(f"{go}.ready.{os.getpid()}"))
        deadline = time.monotonic() + _WAIT
        while not _exists(go):
            if time.monotonic() > deadline:
                raise TimeoutError("the test never said go")
            await asyncio.sleep(0.005)
        if store is None:
            store = await open_store(job["url"])
        return await JOBS[job["do"]](store, job, datetime.fromisoformat(job["now"]))
    finally:
        if store is not None:
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
