"""Where "now" comes from: injected everywhere so that tests never wait for 20:00.

A :data:`Clock` is any zero-argument callable returning an aware UTC
``datetime``. The server uses :func:`system_clock`; tests and demos use
:class:`ManualClock`, which only moves when told to.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["Clock", "ManualClock", "OffsetClock", "configured_clock", "system_clock"]

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


class OffsetClock:
    """Real time shifted so that it read ``start`` when created, then runs normally.

    ``PREAU_CLOCK_START`` uses it, so that a demo or a multi-process test sees a
    school morning whatever the hour it actually runs at.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("OffsetClock needs an aware datetime")
        self._offset = start - system_clock()

    def __call__(self) -> datetime:
        return system_clock() + self._offset


def configured_clock(start: datetime | None) -> Clock:
    """The clock a process runs on: real time, or :class:`OffsetClock` from ``start``.

    ``start`` is ``PREAU_CLOCK_START`` (``Config.clock_start``). The server and every
    command that writes what it reads back (directory imports, ``demo-setup``: their
    audit entries) take their time from here, so that one database never mixes the
    real clock with the shifted one.
    """
    return system_clock if start is None else OffsetClock(start)
