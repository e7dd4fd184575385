"""Names and small helpers shared by the store contract tests (tests/contracts/test_store_*)."""

from __future__ import annotations

from datetime import datetime, timedelta

from server.model import SchoolId, UserId
from tests.conftest import SCHOOL_DAY

__all__ = ["A1", "E1", "E2", "E3", "HUGO", "MOULIN", "P1", "P2", "S1", "T1", "T2", "at"]

HUGO = SchoolId("hugo")
MOULIN = SchoolId("moulin")  # reuses hugo's user ids with other people: a leak shows
T1, T2, A1, S1 = UserId("t1"), UserId("t2"), UserId("a1"), UserId("s1")
E1, E2, E3 = UserId("e1"), UserId("e2"), UserId("e3")
P1, P2 = UserId("p1"), UserId("p2")


def at(minutes: float) -> datetime:
    """``minutes`` after the test school day's 10:00 (whole seconds, as both stores keep)."""
    return SCHOOL_DAY + timedelta(minutes=minutes)
