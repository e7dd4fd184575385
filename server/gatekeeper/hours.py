"""The allowed-hours window (G3): when a school's discussions are open for sending.

The window is ``[start, end)`` in the school's local time, every day, DST
included. Precisely, on each local date ``D`` it opens at the first instant of
``D`` whose wall-clock time is at or after ``start`` and closes at the first
instant of ``D`` whose wall-clock time is at or after ``end``. On ordinary days
that is just ``start`` and ``end``; the definition settles the two odd cases:

- a time that does not exist locally (the spring-forward gap, e.g. 02:30 on
  2026-03-29 in Europe/Paris) is reached when the gap ends: the window opens
  (or closes) at 03:00 local, the first moment the clock shows 02:30 or later;
- a time that happens twice (the fall-back hour, e.g. 02:30 on 2026-10-25)
  counts at its first occurrence, so the window opens and closes exactly once
  a day, even though the clock shows the hour twice.

When both ``start`` and ``end`` fall in the same gap (``[02:00, 03:00)`` on
2027-03-28 in Paris), the window opens and closes at the same instant: it is
not open at all that day. Such a day is skipped: every opening this module
announces (``opens_at``, :meth:`Window.next_opening`) is an instant at which
the window really is open, so clients are never told of an opening that does
not happen, and nothing held for it is held again.

Because ``end`` must be after ``start`` (see :func:`validate_hours`), a window
never spans midnight, and ``hours.enabled = False`` means always open.

Every instant this module returns is in UTC: comparing two aware datetimes of
the same ``ZoneInfo`` ignores their UTC offsets (a Python gotcha around the
fall-back hour), so UTC is the only safe currency. Convert with
``.astimezone(window.tz)`` for display.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from server.errors import InvalidSettings
from server.model import Hours, OutsideHours

__all__ = ["Window", "WindowState", "validate_hours", "validate_timezone"]

# Names the zone database accepts but whose meaning depends on the host: two
# nodes could disagree on the school's hours.
_HOST_DEPENDENT_ZONES = frozenset({"localtime", "posixrules"})

_ONE_DAY = timedelta(days=1)

# Days skipped looking for a day on which the window is open. A window is empty on a
# day only when both its edges fall in one clock jump: such days are rare and never
# consecutive (the longest jump on record, Samoa's in 2011, skipped a single day).
_MAX_EMPTY_DAYS = 7


@dataclass(frozen=True, slots=True)
class WindowState:
    """Whether sending is open at an instant, and when that changes.

    ``opens_at`` is the next opening when closed; ``closes_at`` the coming
    closing when open; both are ``None`` when hours are disabled (always open).
    """

    is_open: bool
    opens_at: datetime | None
    closes_at: datetime | None


_ALWAYS_OPEN = WindowState(is_open=True, opens_at=None, closes_at=None)


def validate_timezone(name: str) -> None:
    """Raise :class:`~server.errors.InvalidSettings` unless ``name`` is an IANA zone."""
    _zone(name)


def validate_hours(hours: Hours) -> None:
    """Raise :class:`~server.errors.InvalidSettings` unless ``hours`` is a usable window.

    The times are checked even when ``hours.enabled`` is false, because they
    come back into force when the admin switches the window on again.
    """
    for name, value in (("start", hours.start), ("end", hours.end)):
        if not isinstance(value, time):
            raise InvalidSettings(f"hours.{name} doit être une heure du jour, pas {value!r}.",
                                  field=f"hours.{name}")
        if value.tzinfo is not None:
            raise InvalidSettings(
                f"hours.{name} doit être une heure locale sans fuseau : celui de "
                "l'établissement s'applique.", field=f"hours.{name}"
            )
    if hours.end == hours.start:
        raise InvalidSettings(
            f"hours.end doit venir après hours.start : les deux valent {hours.start:%H:%M}, "
            "les discussions ne s'ouvriraient jamais (désactivez les horaires pour permettre "
            "toute heure).", field="hours.end"
        )
    if hours.end < hours.start:
        raise InvalidSettings(
            f"hours.end ({hours.end:%H:%M}) doit venir après hours.start "
            f"({hours.start:%H:%M}) : la plage ne peut pas passer minuit.", field="hours.end"
        )
    if not isinstance(hours.outside, OutsideHours):
        choices = ", ".join(repr(o.value) for o in OutsideHours)
        raise InvalidSettings(f"hours.outside vaut {choices}, pas {hours.outside!r}.",
                              field="hours.outside")


class Window:
    """The allowed-hours window of one school, built from its ``Hours`` and time zone.

    Construction validates both and raises
    :class:`~server.errors.InvalidSettings`. Every method takes ``now`` as an
    aware datetime: a naive one raises ``TypeError`` from the comparison with
    the cached interval (unless hours are disabled: ``now`` is not looked at).

    The window remembers the UTC interval the last ``now`` fell in (open
    ``[opening, closing)``, or closed until the next opening), so
    :meth:`is_open` is two comparisons until ``now`` leaves it. That memo is
    the only mutable state; answers depend on ``now`` alone.
    """

    __slots__ = ("_always_open", "_segment", "hours", "timezone", "tz")

    def __init__(self, hours: Hours, timezone: str) -> None:
        validate_hours(hours)
        self.hours = hours
        self.timezone = timezone
        self.tz = _zone(timezone)
        self._always_open = not hours.enabled
        # An empty interval: the first call computes the real one.
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        self._segment: tuple[datetime, datetime, WindowState] = (epoch, epoch, _ALWAYS_OPEN)

    def __repr__(self) -> str:
        if self._always_open:
            return f"Window(always open, {self.timezone})"
        h = self.hours
        return f"Window([{h.start:%H:%M}, {h.end:%H:%M}) {self.timezone}, {h.outside.value})"

    def is_open(self, now: datetime) -> bool:
        """Whether sending is allowed at ``now`` (the hot path: no allocation when cached)."""
        if self._always_open:
            return True
        low, high, state = self._segment
        if low <= now < high:
            return state.is_open
        return self._recompute(now).is_open

    def state(self, now: datetime) -> WindowState:
        """Whether the window is open at ``now`` and when that changes next."""
        if self._always_open:
            return _ALWAYS_OPEN
        low, high, state = self._segment
        if low <= now < high:
            return state
        return self._recompute(now)

    def next_opening(self, now: datetime) -> datetime:
        """Today's opening if ``now`` is before it, else the next local day's opening.

        Days are counted in local time, so across a DST change the answer is
        07:00 local, not 24 hours later. With hours disabled the window never
        closes, so the answer is ``now`` itself.
        """
        if self._always_open:
            return now
        state = self.state(now)
        if state.opens_at is not None:
            return state.opens_at
        # Open now, so today's opening is past: the next day's that opens.
        today = now.astimezone(self.tz).date()
        return self._opening_from(today + _ONE_DAY)

    def day_end(self, when: datetime, days: int = 0) -> datetime:
        """The end of the school day ``days`` local days after the one ``when`` falls in.

        That is the closing instant (``hours.end``, as defined above) of that local
        date, in UTC. With hours disabled it is still ``hours.end``: the end of the
        school day as the school set it, even though sending is allowed after it.
        """
        day = when.astimezone(self.tz).date() + timedelta(days=days)
        return self._instant(day, self.hours.end)

    # ------------------------------------------------------------------ internals

    def _recompute(self, now: datetime) -> WindowState:
        today = now.astimezone(self.tz).date()
        opening = self._instant(today, self.hours.start)
        closing = self._instant(today, self.hours.end)
        state: WindowState
        if now < opening:
            # Before today's opening, unless today's window is empty (both edges in one
            # clock jump): then the next day that opens.
            low = self._instant(today - _ONE_DAY, self.hours.end)
            high = opening if opening < closing else self._opening_from(today + _ONE_DAY)
            state = WindowState(is_open=False, opens_at=high, closes_at=None)
        elif now < closing:
            low, high = opening, closing
            state = WindowState(is_open=True, opens_at=None, closes_at=closing)
        else:
            low, high = closing, self._opening_from(today + _ONE_DAY)
            state = WindowState(is_open=False, opens_at=high, closes_at=None)
        # Only zones whose clocks jump back across midnight could make the
        # neighbouring day's bounds miss ``now``; then answer without caching.
        if low <= now < high:
            self._segment = (low, high, state)
        return state

    def _opening_from(self, day: date) -> datetime:
        """The opening of local ``day``, or of the first day after it on which the window
        is open at all (both edges in one spring-forward gap make an empty window)."""
        for _ in range(_MAX_EMPTY_DAYS):
            opening = self._instant(day, self.hours.start)
            if opening < self._instant(day, self.hours.end):
                return opening
            day += _ONE_DAY
        raise AssertionError(f"{self!r} stays closed for {_MAX_EMPTY_DAYS} days")

    def _instant(self, day: date, at: time) -> datetime:
        """The first instant of local ``day`` whose wall-clock time is ``at`` or later, in UTC."""
        wall = datetime.combine(day, at)
        # fold=0 is the earlier of two occurrences in the fall-back hour.
        first = wall.replace(tzinfo=self.tz, fold=0).astimezone(UTC)
        if first.astimezone(self.tz).replace(tzinfo=None) == wall:
            return first
        # ``at`` falls in a spring-forward gap: fold=1 maps it before the jump
        # and fold=0 after, so the jump — the first instant showing ``at`` or
        # later — lies between. Transitions fall on whole seconds.
        before = int(wall.replace(tzinfo=self.tz, fold=1).timestamp())
        after = int(first.timestamp()) + 1
        while after - before > 1:
            middle = (before + after) // 2
            if datetime.fromtimestamp(middle, self.tz).replace(tzinfo=None) >= wall:
                after = middle
            else:
                before = middle
        return datetime.fromtimestamp(after, UTC)


def _zone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or name in _HOST_DEPENDENT_ZONES:
        raise InvalidSettings(f"fuseau horaire inconnu : {name!r}", field="timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        # ValueError: malformed keys ("", "../x"); OSError: a directory ("Europe").
        raise InvalidSettings(f"fuseau horaire inconnu : {name!r}",
                              field="timezone") from exc
