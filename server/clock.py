"""Where "now" comes from: injected everywhere so that tests never wait for 20:00.

A :data:`Clock` is any zero-argument callable returning an aware UTC
``datetime``. The server uses :func:`system_clock`; tests and demos use
:class:`ManualClock`, which only moves when told to.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["Clock", "ManualClock", "system_clock"]

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The real time, in UTC."""
    return datetime.now(UTC)


class ManualClock:
    """A clock that stands still until :meth:`set` or :meth:`advance` moves it."""

    def __init__(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = now

    def __call__(self) -> datetime:
        return self._now

    def set(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = now

    def advance(self, delta: timedelta) -> None:
        self._now += delta
