"""How many discussions one user may start: per rolling hour and per rolling day.

Pure: the caller passes the times of the user's recent starts (the store knows them),
newest first, and the instant of the new start.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from server.errors import ErrorCode
from server.model import StartLimits

from .decision import ALLOW, Decision, refuse

__all__ = ["DAY", "HOUR", "check_start_quota"]

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def check_start_quota(limits: StartLimits, recent: Sequence[datetime],
                      now: datetime) -> Decision:
    """``rate_limited`` if ``recent`` (start times, newest first, at least the newest
    ``limits.per_day`` of the last day) already holds a window's worth; ``retry_at`` is
    the instant the oldest start that counts leaves its window (a start is possible
    again then, whichever window is full)."""
    retry_at: datetime | None = None
    for limit, span in ((limits.per_hour, HOUR), (limits.per_day, DAY)):
        inside = [t for t in recent if t > now - span]
        if len(inside) >= limit:
            frees = inside[limit - 1] + span  # the limit-th newest leaves the window then
            retry_at = frees if retry_at is None else max(retry_at, frees)
    if retry_at is None:
        return ALLOW
    return refuse(ErrorCode.RATE_LIMITED,
                  f"Vous avez commencé le nombre maximal de discussions pour le moment "
                  f"({limits.per_hour} par heure, {limits.per_day} par jour) : réessayez "
                  "plus tard.",
                  retry_at=retry_at,
                  params={"limit": "starts", "per_hour": limits.per_hour,
                          "per_day": limits.per_day})
