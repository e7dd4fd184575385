"""Broadcast rows as values, the same for every store.

Both stores keep the broadcasts tables with the same columns (SQLite's 0002 and 0005,
PostgreSQL's 0002), so they select them in the same order (:data:`COLUMNS`,
:data:`RECEIPT`) and turn a row into a :class:`~server.store.base.Broadcast` or
:class:`~server.store.base.Receipt` here. What differs is how a driver hands back a time
or a JSON column: each store passes its own ``time`` and ``data`` readers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from ..broadcasts import Kind, Question, QuestionKind, parse_target, questions_from_json
from ..model import SchoolId, UserId
from .base import Broadcast, BroadcastStats, Receipt

__all__ = ["COLUMNS", "NCOLS", "RECEIPT", "Row", "broadcast_from_row", "counter", "is_poll",
           "receipt_from_row"]

COLUMNS = ("b.id, b.school_id, b.author, b.client_id, b.kind, b.title, b.body, b.audience, "
           "b.ack_requested, b.questions, b.anonymous, b.deadline, b.created_at, "
           "b.publish_at, b.expires_at, b.status, b.published_at, b.dropped_code, "
           "b.dropped_message, b.reminded_at, b.version, b.n_recipients, b.n_received, "
           "b.n_read, b.n_acknowledged, b.n_answered")
RECEIPT = ("r.broadcast_id, r.user_id, r.received_at, r.read_at, r.acknowledged_at, "
           "r.answered_at, r.answers, r.reminded_at")
NCOLS = COLUMNS.count(",") + 1



class Row(Protocol):
    """A row as a driver returns it: its columns by position."""

    def __getitem__(self, index: int, /) -> Any: ...


Votes = Mapping[tuple[int, int], int]   # (question, choice) -> votes, from poll_counts
Time = Callable[[Any], datetime | None]
Data = Callable[[Any], Any]


def counter(column: str) -> str:
    """The broadcast's counter that a recipient's column set for the first time moves:
    ``read_at`` moves ``n_read``."""
    return f"n_{column.removesuffix('_at')}"


def is_poll(r: Row) -> bool:
    """Whether the row's figures need its ``poll_counts`` rows."""
    return bool(r[4] == Kind.POLL.value)


def _tallies(questions: Sequence[Question], votes: Votes) -> tuple[tuple[int, ...] | None, ...]:
    return tuple(None if q.kind is QuestionKind.TEXT
                 else tuple(votes.get((i, c), 0) for c in range(len(q.choices)))
                 for i, q in enumerate(questions))


def broadcast_from_row(r: Row, votes: Votes, *, time: Time, data: Data) -> Broadcast:
    """A row of :data:`COLUMNS` and its poll's counts (empty for an information)."""
    def when(value: Any) -> datetime:
        out = time(value)
        assert out is not None
        return out

    questions = questions_from_json(data(r[9]), stored=True) if is_poll(r) else ()
    stats = BroadcastStats(int(r[20]), int(r[21]), int(r[22]), int(r[23]), int(r[24]),
                           int(r[25]), _tallies(questions, votes) if questions else ())
    return Broadcast(
        id=int(r[0]), school_id=SchoolId(r[1]), author=UserId(r[2]), client_id=r[3],
        kind=Kind(r[4]), title=r[5], body=r[6], target=parse_target(data(r[7])),
        ack_requested=bool(r[8]), questions=questions, anonymous=bool(r[10]),
        deadline=time(r[11]), created_at=when(r[12]), publish_at=when(r[13]),
        expires_at=time(r[14]), status=r[15], published_at=time(r[16]),
        dropped=None if r[17] is None else (r[17], r[18] or ""), reminded_at=time(r[19]),
        stats=stats)


def receipt_from_row(r: Row, *, time: Time, data: Data) -> Receipt:
    """A row of :data:`RECEIPT`."""
    answers = None if r[6] is None else tuple(data(r[6]))
    return Receipt(int(r[0]), UserId(r[1]), time(r[2]), time(r[3]), time(r[4]), time(r[5]),
                   answers, time(r[7]))
