"""A discussion as each participant sees it in their list, and the list's pages.

The ``discussion`` object of ``docs/protocol.md``: the subject, the participants
as the viewer may see them (as they were when the viewer left, if they did), the
unread count and the last message they may read. Built from the store's
:class:`~server.store.DiscussionSummary` and the school's directory.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from . import frames
from .errors import ErrorCode, Refused
from .model import DiscussionId, SchoolId, UserId
from .protocol import MAX_INT
from .schools import Establishment
from .store import DiscussionSummary, Store

__all__ = ["cursor", "for_users", "participants_json", "read_cursor", "summary_json"]


def participants_json(est: Establishment, s: DiscussionSummary,
                      viewer: UserId) -> list[dict[str, Any]]:
    """The participants as ``viewer`` may see them: as they were when the viewer left,
    if they did (nobody invited later, nobody's leaving after)."""
    participants = []
    for p in s.members.as_seen_by(viewer):
        entry = est.person(p.user_id)
        entry["present"] = p.present
        entry["invited_by"] = p.invited_by
        participants.append(entry)
    return participants


def summary_json(est: Establishment, s: DiscussionSummary, viewer: UserId,
                 participants: list[dict[str, Any]] | None = None,
                 post: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``discussion`` object; ``participants`` may be shared by the summaries of one
    discussion at one membership version for viewers who are present (frames are
    encoded, never changed). ``post``, when given, is the viewer's ``post`` status
    (:func:`server.posting.post_json`)."""
    if participants is None:
        participants = participants_json(est, s, viewer)
    out: dict[str, Any] = {"id": s.discussion.id, "subject": s.discussion.subject,
            "created_by": s.discussion.created_by,
            "created_at": frames.iso(s.discussion.created_at),
            "last_seq": s.visible_seq, "read_seq": s.read_seq,
            "unread": max(0, s.visible_seq - s.read_seq - s.hidden_unread),
            "participants": participants,
            "last_message": None if s.last_message is None
            else frames.message(s.last_message)}
    if post is not None:
        out["post"] = post
    return out


async def for_users(store: Store, est: Establishment, school: SchoolId, d: DiscussionId,
                    users: list[UserId]) -> dict[UserId, dict[str, Any]]:
    """The ``discussion`` objects of one discussion for several users (one read, and one
    participants list shared by all who are present)."""
    found = await store.discussion_summaries(school, d, users)
    participants = None
    out = {}
    for user, s in found.items():
        me = s.members.get(user)
        if me is not None and not me.present:  # sees it as it was when they left
            out[user] = summary_json(est, s, user)
            continue
        if participants is None:
            participants = participants_json(est, s, user)
        out[user] = summary_json(est, s, user, participants)
    return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def cursor(at: datetime, row_id: int) -> str:
    """A page's position, opaque to clients: ``<µs since 1970>-<id>`` (``list``'s
    discussions, and received broadcasts, both ordered by a time then an id)."""
    return f"{(at - _EPOCH) // _MICROSECOND}-{row_id}"


def read_cursor(text: str) -> tuple[datetime, int]:
    micros, _, d = text.partition("-")
    if not (micros.isascii() and micros.isdigit() and d.isascii() and d.isdigit()):
        raise Refused(ErrorCode.BAD_REQUEST, "'before' doit être le 'next' d'une page "
                      "précédente.", params={"field": "before"})
    try:
        if int(d) > MAX_INT:
            raise OverflowError
        return _EPOCH + int(micros) * _MICROSECOND, int(d)
    except OverflowError:
        raise Refused(ErrorCode.BAD_REQUEST, "'before' doit être le 'next' d'une page "
                      "précédente.", params={"field": "before"}) from None
