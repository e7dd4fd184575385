"""The store's records: what a :class:`~server.store.contract.Store` returns.

Frozen values, the same whichever database holds them. The protocols that return
them, one per role, are in :mod:`server.store.contract`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..broadcasts import Answer, Kind, Question
from ..errors import StoreError
from ..gatekeeper import BroadcastTarget
from ..model import DiscussionId, DiscussionMembers, SchoolId, UserId

__all__ = [
    "USED_REFRESH_KEPT",
    "AlreadyStarted",
    "AuditEntry",
    "Broadcast",
    "BroadcastStats",
    "Discussion",
    "DiscussionSummary",
    "HeldMessage",
    "ImportReport",
    "Receipt",
    "Rotation",
    "RotationOutcome",
    "SearchHit",
    "SignInSession",
    "StoredMessage",
]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One recorded change: who changed which field, when, from what to what."""

    id: int
    school_id: SchoolId
    at: datetime
    actor: str
    field: str
    old: object
    new: object


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What a directory import did."""

    school_id: SchoolId
    created: bool
    users_added: int
    users_updated: int
    users_deactivated: int
    version: int


@dataclass(frozen=True, slots=True)
class Discussion:
    """A discussion's header."""

    id: DiscussionId
    school_id: SchoolId
    subject: str
    created_by: UserId
    created_at: datetime
    last_seq: int


@dataclass(frozen=True, slots=True)
class HeldMessage:
    """A message (or a discussion's start) written outside the hours, in defer mode."""

    id: int
    school_id: SchoolId
    sender: UserId
    client_id: str
    discussion_id: DiscussionId | None  # None: a held start
    subject: str | None
    recipients: tuple[UserId, ...]
    body: str
    created_at: datetime
    release_at: datetime


@dataclass(frozen=True, slots=True)
class DiscussionSummary:
    """A discussion as one participant sees it in their list."""

    discussion: Discussion
    members: DiscussionMembers
    read_seq: int
    visible_seq: int  # the last seq this user may read (last_seq, or where they left)
    last_message: StoredMessage | None  # the last one up to visible_seq not hidden from them
    last_at: datetime | None = None  # the discussion's last activity: the list's order
    hidden_unread: int = 0  # messages after read_seq, up to visible_seq, hidden from them


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A durable message: ``seq`` is gap-free within its discussion, from 1.

    ``hidden_from``: the participants it must never reach (the gatekeeper's
    ``Decision.hidden_from`` when it was posted); empty in the usual case.
    """

    discussion_id: DiscussionId
    seq: int
    sender: UserId
    client_id: str
    body: str
    created_at: datetime
    hidden_from: frozenset[UserId] = frozenset()


class AlreadyStarted(StoreError):
    """The creator started a discussion with this client id already (another node or
    connection handling the same start, the same moment): nothing of this attempt was
    kept, and ``earlier`` is the first message of the discussion that was. The caller
    answers the start as a retry of that one (see
    :meth:`~server.store.contract.DiscussionStore.create_discussion`)."""

    def __init__(self, earlier: StoredMessage) -> None:
        super().__init__(f"discussion {earlier.discussion_id} was started with "
                         f"client id {earlier.client_id!r} already")
        self.earlier = earlier


@dataclass(frozen=True, slots=True)
class BroadcastStats:
    """A broadcast's figures, exact at ``version`` (which every change bumps)."""

    version: int
    recipients: int
    received: int
    read: int
    acknowledged: int
    answered: int
    counts: tuple[tuple[int, ...] | None, ...]  # per question: votes per choice (None: text)


@dataclass(frozen=True, slots=True)
class Broadcast:
    """An information message or a poll, with its current figures."""

    id: int
    school_id: SchoolId
    author: UserId
    client_id: str
    kind: Kind
    title: str
    body: str
    target: BroadcastTarget
    ack_requested: bool
    questions: tuple[Question, ...]
    anonymous: bool
    deadline: datetime | None
    created_at: datetime
    publish_at: datetime
    expires_at: datetime | None
    status: str                          # scheduled, published or dropped
    published_at: datetime | None
    dropped: tuple[str, str] | None      # (code, message) when dropped
    reminded_at: datetime | None
    stats: BroadcastStats


@dataclass(frozen=True, slots=True)
class Receipt:
    """One recipient's state for one broadcast."""

    broadcast_id: int
    user_id: UserId
    received_at: datetime | None
    read_at: datetime | None
    acknowledged_at: datetime | None
    answered_at: datetime | None
    answers: tuple[Answer, ...] | None
    reminded_at: datetime | None


# How long a used refresh token is kept to recognise its reuse. A legitimate client
# presents its token once and forgets it within seconds; a copy presented later than
# this is refused as unknown, without ending the session (it can do no harm either).
USED_REFRESH_KEPT = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class SignInSession:
    """A sign-in: who, how (``provider``: ``demo``, ``oidc``, ``cas``…, with the provider's
    own session id for its back-channel logout), since when, and when it ended."""

    id: str
    school_id: SchoolId
    user_id: UserId
    provider: str
    provider_session: str | None
    created_at: datetime
    last_used_at: datetime
    revoked_at: datetime | None = None
    revoked_reason: str | None = None


class RotationOutcome(enum.Enum):
    """What became of a refresh token presented for rotation
    (:meth:`~server.store.contract.SessionStore.rotate_refresh`)."""

    ROTATED = "rotated"  # used now; the new one replaces it
    REUSED = "reused"    # used before: the session is ended now (reuse detection)
    EXPIRED = "expired"  # too old: nothing changed
    REVOKED = "revoked"  # its session had ended already: nothing changed
    UNKNOWN = "unknown"  # no such token (or one pruned: expired, or used over a day ago)


@dataclass(frozen=True, slots=True)
class Rotation:
    """The outcome of a rotation, and the session as it stands after it (``None`` when
    the token is unknown)."""

    outcome: RotationOutcome
    session: SignInSession | None


# Around each matched word of a SearchHit's snippet: control characters, so the caller
# cuts the snippet into plain text and matches without parsing any markup (a message
# that holds them itself gains a highlighted word at worst, never markup).
MATCH_START, MATCH_END = "\x02", "\x03"


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One result of :meth:`~server.store.contract.SearchStore.search`.

    ``kind`` says what matched: ``"message"`` (``seq`` is the message's, ``at`` its
    time), ``"subject"`` or ``"participant"`` (``seq`` is 0, ``at`` the discussion's
    last activity). ``snippet`` is the matching text, shortened, with each matched word
    between :data:`MATCH_START` and :data:`MATCH_END`.
    """

    discussion_id: DiscussionId
    subject: str
    kind: str
    seq: int
    at: datetime
    snippet: str
