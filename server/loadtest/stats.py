"""Counters of a load test: latencies in log-bucketed histograms, per second and overall.

A run can deliver millions of messages; keeping each latency would cost memory in
proportion. A histogram of logarithmic buckets 2 % wide (10 µs to ~1,000 s, about 930
buckets) gives any percentile within 1 % of the true value, in constant memory, and
histograms of different seconds add up. The maximum is kept exactly.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["Histogram", "Second", "Stats"]

_LOW = 1e-5                     # seconds: the first bucket holds everything below
_RATIO = 1.02
_LOG_RATIO = math.log(_RATIO)
_BUCKETS = int(math.log(1e3 / _LOW) / _LOG_RATIO) + 2


class Histogram:
    """Latencies (seconds) in buckets of 2 % relative width; percentiles within 1 %."""

    __slots__ = ("count", "counts", "max", "total")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        """Record one latency; negative values (clock noise) count as zero."""
        seconds = max(seconds, 0.0)
        index = 0 if seconds <= _LOW else min(_BUCKETS - 1,
                                              int(math.log(seconds / _LOW) / _LOG_RATIO) + 1)
        self.counts[index] = self.counts.get(index, 0) + 1
        self.count += 1
        self.total += seconds
        if seconds > self.max:
            self.max = seconds

    def merge(self, other: Histogram) -> None:
        """Add ``other``'s latencies to this histogram."""
        for index, n in other.counts.items():
            self.counts[index] = self.counts.get(index, 0) + n
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0 < q ≤ 1) in seconds, ``None`` when empty.

        The answer is the geometric middle of the bucket that holds it, capped at the
        exact maximum, so it is within 1 % of the true value.
        """
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return min(self.max, _value(index))
        return self.max

    def buckets(self, per_decade: int = 10) -> list[tuple[float, int]]:
        """Coarser buckets for a chart: ``(upper bound in seconds, count)``, in order,
        ``per_decade`` bounds per factor of ten, from the first to the last non-empty."""
        coarse: Counter[int] = Counter()
        for index, n in self.counts.items():
            coarse[math.ceil(math.log10(max(_value(index), _LOW)) * per_decade)] += n
        if not coarse:
            return []
        return [(10 ** (k / per_decade), coarse.get(k, 0))
                for k in range(min(coarse), max(coarse) + 1)]

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


def _value(index: int) -> float:
    """A representative latency of bucket ``index``: the geometric middle of its bounds."""
    if index == 0:
        return _LOW
    return float(_LOW * _RATIO ** (index - 0.5))


@dataclass(slots=True)
class Second:
    """What happened during one second of the run (by the receiver's clock)."""

    sent: int = 0
    delivered: int = 0
    refused: int = 0
    connected: int = 0          # sampled once during the second
    latency: Histogram = field(default_factory=Histogram)


class Stats:
    """The counters of a run; times are ``time.monotonic()`` seconds, ``t0`` the origin.

    The engine calls the ``on_*`` methods; :mod:`.report` reads the fields.
    """

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.sent = 0                      # messages the server acknowledged (stored)
        self.retried_acks = 0              # acks with duplicate=true: a resent send
        self.delivered = 0                 # message frames received (sender's own included)
        self.latency = Histogram()
        # Deliveries of messages sent after the warm-up (see Options.warmup).
        self.steady_latency = Histogram()
        self.steady_from = float("inf")    # a time relative to t0, set when sending starts
        self.refusals: Counter[str] = Counter()
        self.refusals_by_action: dict[str, Counter[str]] = {}
        self.seconds: dict[int, Second] = {}

    def second(self, now: float) -> Second:
        """The record of the second that contains ``now``."""
        key = int(now - self.t0)
        record = self.seconds.get(key)
        if record is None:
            record = self.seconds[key] = Second()
        return record

    def on_sent(self, now: float, *, duplicate: bool) -> None:
        self.sent += 1
        if duplicate:
            self.retried_acks += 1
        self.second(now).sent += 1

    def on_delivery(self, now: float, latency: float) -> None:
        self.delivered += 1
        self.latency.add(latency)
        if now - self.t0 - latency >= self.steady_from:
            self.steady_latency.add(latency)
        record = self.second(now)
        record.delivered += 1
        record.latency.add(latency)

    def on_refusal(self, now: float, action: str, code: str) -> None:
        """A refusal or failure: ``action`` is what was tried (connect, start, send…)."""
        self.refusals[code] += 1
        self.refusals_by_action.setdefault(action, Counter())[code] += 1
        self.second(now).refused += 1
