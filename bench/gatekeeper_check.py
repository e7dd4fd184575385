"""Per-call timing of ``Gatekeeper.check_send``, for benchmark scripts.

:func:`measure_send_check` times ``n`` individual calls with
``time.perf_counter_ns`` after a warm-up (which also fills the gatekeeper's
caches, so this measures the hot path: the discussion's G6 facts already
computed, the hours interval already known). Per-call timing includes the
cost of reading the clock twice; ``timer_overhead_ns`` reports it so a reader
can subtract it. The garbage collector is paused while timing so that its
pauses do not land on random calls.
"""

from __future__ import annotations

import gc
import statistics
import time
from datetime import datetime

from server.gatekeeper import Gatekeeper
from server.model import DiscussionMembers, UserId

__all__ = ["measure_send_check"]


def measure_send_check(
    gk: Gatekeeper,
    members: DiscussionMembers,
    user: UserId,
    now: datetime,
    n: int,
) -> dict[str, float | int | bool | str]:
    """Time ``gk.check_send(user, members, now)`` ``n`` times, one call per sample.

    Returns ``n``, ``participants``, ``allowed`` and ``code`` (the decision
    measured), ``median_us``, ``p99_us``, ``mean_us``, ``min_us``, ``max_us``
    and ``timer_overhead_ns`` (the median cost of an empty timed sample, included
    in every figure above).
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    check = gk.check_send
    clock = time.perf_counter_ns
    decision = check(user, members, now)
    for _ in range(min(n, 10_000)):  # warm-up: caches, branch predictors, allocator
        check(user, members, now)

    samples = [0] * n
    empty = [0] * min(n, 10_000)
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for i in range(len(empty)):
            start = clock()
            empty[i] = clock() - start
        for i in range(n):
            start = clock()
            check(user, members, now)
            samples[i] = clock() - start
    finally:
        if was_enabled:
            gc.enable()

    samples.sort()
    p99_index = min(n - 1, max(0, round(0.99 * n) - 1))
    return {
        "n": n,
        "participants": len(members.present()),
        "allowed": decision.allowed,
        "code": decision.code.value if decision.code is not None else "",
        "median_us": statistics.median(samples) / 1000,
        "p99_us": samples[p99_index] / 1000,
        "mean_us": statistics.fmean(samples) / 1000,
        "min_us": samples[0] / 1000,
        "max_us": samples[-1] / 1000,
        "timer_overhead_ns": statistics.median(empty),
    }
