"""The store contract: what Préau asks of a database, one role at a time.

Eight role protocols, each readable in one sitting, and :class:`Store`, their union
plus a lifecycle. Code that needs one role may ask for that protocol only (the
held-item releaser needs a :class:`HeldStore`, not a whole store).
:class:`~server.store.sqlite.SqliteStore` and the PostgreSQL store implement all of
them; ``tests/contracts/`` holds the behaviours both must show, one test at least
per method here.

Every method takes the establishment (``school_id``), except the claims and
releases that serve every school at once, and never returns a record of another
one: a discussion id of another school is :class:`~server.errors.NotFound`.
Implementations translate their driver's errors into the store's own
(:mod:`server.errors`: ``StoreBusy``, ``StoreFull``, ``StoreUnavailable``,
``UnstorableValue``) at this boundary, and acknowledge nothing they have not stored.
The records they return are in :mod:`server.store.base`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol

from ..broadcasts import Answer, Draft
from ..model import (
    Directory,
    DiscussionId,
    DiscussionMembers,
    SchoolId,
    SchoolSettings,
    SchoolState,
    UserId,
    UserPreferences,
)
from .base import (
    AuditEntry,
    Broadcast,
    BroadcastStats,
    Discussion,
    DiscussionSummary,
    HeldMessage,
    ImportReport,
    Receipt,
    Rotation,
    SearchHit,
    SignInSession,
    StoredMessage,
)

__all__ = [
    "BroadcastStore",
    "DirectoryStore",
    "DiscussionStore",
    "HeldStore",
    "MessageStore",
    "SearchStore",
    "SessionStore",
    "SigninStore",
    "Store",
]


class DirectoryStore(Protocol):
    """Schools as the directory and the administrators make them: the deployment's
    metadata, each school's directory, settings and users' preferences, and the audit
    of every change to them."""

    async def get_meta(self, key: str) -> str | None:
        """The deployment's value for ``key`` (the demo's token secret…), if set."""

    async def set_meta(self, key: str, value: str) -> None:
        """Set or replace the deployment's value for ``key``."""

    async def list_schools(self) -> list[SchoolId]:
        """Every school of the deployment, by id."""

    async def school_version(self, school_id: SchoolId) -> int:
        """The version that :meth:`load_school` would return now (cheap; for cache checks)."""

    async def load_school(
        self, school_id: SchoolId, *, known: SchoolState | None = None
    ) -> SchoolState:
        """The school's active directory, settings and preferences. :class:`NotFound` if absent.

        When ``known`` (an earlier state of the same school) has the current
        ``directory_version``, its directory is reused instead of read again.
        """

    async def import_directory(
        self, directory: Directory, *, actor: str, now: datetime
    ) -> ImportReport:
        """Create or update a school from a validated directory, in one transaction.

        Users absent from ``directory`` are deactivated (kept, so discussions keep
        their authors) and their sign-in sessions ended (reason ``deactivated``, see
        :class:`SessionStore`); discussions, messages and preferences are untouched.
        """

    async def update_settings(
        self, school_id: SchoolId, settings: SchoolSettings, *, actor: str, now: datetime
    ) -> list[AuditEntry]:
        """Replace the settings, recording one audit entry per changed field."""

    async def update_preferences(
        self,
        school_id: SchoolId,
        user_id: UserId,
        preferences: UserPreferences,
        *,
        actor: str,
        now: datetime,
    ) -> list[AuditEntry]:
        """Replace one user's preferences, recording one audit entry per changed field."""

    async def audit_log(
        self, school_id: SchoolId, *, before: int | None = None, limit: int = 50
    ) -> list[AuditEntry]:
        """Newest first; ``before`` is an entry id to page from."""


class DiscussionStore(Protocol):
    """Discussions and who is in them: creation (with the first message, in one
    transaction), membership, and each participant's list of discussions."""

    async def create_discussion(
        self,
        school_id: SchoolId,
        creator: UserId,
        subject: str,
        recipients: Sequence[UserId],
        *,
        now: datetime,
        first: tuple[str, str] | None = None,
    ) -> DiscussionMembers:
        """Create a discussion with its creator and recipients (brought in by the creator).

        ``first`` is the creator's ``(client_id, body)``: stored as message 1 in the same
        transaction, so that a discussion never exists without its first message (a
        failure leaves neither, and the client's retry creates it once).

        A start is unique by ``(school_id, creator, client_id)`` in the database: when
        the creator started one with that client id already (two nodes or connections
        handling the same start at once, each having found no earlier one with
        :meth:`find_started`), nothing is kept and :class:`~server.store.base.AlreadyStarted`
        is raised, carrying that discussion's first message: one discussion whatever
        the race, and the loser answers as a retry."""

    async def get_discussion(self, school_id: SchoolId, discussion_id: DiscussionId) -> Discussion:
        ...

    async def find_started(
        self, school_id: SchoolId, creator: UserId, client_id: str
    ) -> StoredMessage | None:
        """The first message of a discussion ``creator`` started with ``client_id`` (given
        as ``first`` to :meth:`create_discussion`), if any, so that a retried start returns
        the original instead of a second discussion."""

    async def members(
        self, school_id: SchoolId, discussion_id: DiscussionId
    ) -> DiscussionMembers: ...

    async def add_participant(
        self,
        school_id: SchoolId,
        discussion_id: DiscussionId,
        user_id: UserId,
        *,
        invited_by: UserId,
        now: datetime,
        members_version: int | None = None,
        readable_authors: Collection[UserId] | None = None,
    ) -> DiscussionMembers:
        """Bring a user in (or back in); bumps the membership version.

        With ``members_version``, only if the members are still at that version (those
        the invitation was checked against), else :class:`~server.errors.MembersChanged`.
        With ``readable_authors``, in the same transaction, the user is added to the
        ``hidden_from`` of every message posted before they arrived (all of them for a
        newcomer, those after they left for someone coming back) whose author is not
        among them (docs/policy.md, "People who arrive later")."""

    async def leave(
        self, school_id: SchoolId, discussion_id: DiscussionId, user_id: UserId, *, now: datetime
    ) -> DiscussionMembers:
        """Mark a participant as gone; bumps the membership version."""

    async def discussions_of(self, school_id: SchoolId, user_id: UserId) -> list[Discussion]:
        """Discussions the user is or was in, most recently active first."""

    async def present_discussions(self, school_id: SchoolId, user_id: UserId) -> list[DiscussionId]:
        """Ids of the discussions the user is present in (what a connection subscribes to)."""

    async def summaries(
        self, school_id: SchoolId, user_id: UserId, *, limit: int = 200,
        discussion_id: DiscussionId | None = None,
        before: tuple[datetime, DiscussionId] | None = None,
    ) -> list[DiscussionSummary]:
        """The user's discussions (or only ``discussion_id``), most recently active first
        (``last_at``, then id, both descending), with members, read position and last
        visible message (never one hidden from the user, who is not counted the hidden
        ones as unread either); with ``before``, only those after that ``(last_at, id)``
        in this order (the next page)."""

    async def discussion_summaries(
        self, school_id: SchoolId, discussion_id: DiscussionId, users: Sequence[UserId]
    ) -> dict[UserId, DiscussionSummary]:
        """One discussion as each of ``users`` sees it (those who never took part are
        left out): what :meth:`summaries` gives per user, read once for all."""

    async def recent_starts(self, school_id: SchoolId, user_id: UserId, *, since: datetime,
                            limit: int) -> list[datetime]:
        """When the user started discussions (held starts included) after ``since``:
        the newest ``limit``, newest first."""


class MessageStore(Protocol):
    """Messages of a discussion, numbered ``1, 2, 3…`` with no gap and no duplicate
    whichever node appends, and each participant's read position."""

    async def append_message(
        self,
        school_id: SchoolId,
        discussion_id: DiscussionId,
        sender: UserId,
        client_id: str,
        body: str,
        *,
        now: datetime,
        hidden_from: Collection[UserId] = (),
        members_version: int | None = None,
    ) -> tuple[StoredMessage, bool]:
        """Store a message durably with the next sequence number.

        Idempotent by ``(sender, client_id)``: a retry returns the original
        message and ``False``; a new message returns ``True``. ``hidden_from``
        is kept with it: no read for those users ever returns it. With
        ``members_version`` (the members the post was checked against), a new
        message is stored only if the members are still at that version, else
        :class:`~server.errors.MembersChanged`: someone who joined meanwhile was not
        part of the decision.
        """

    async def find_message(
        self, school_id: SchoolId, discussion_id: DiscussionId, sender: UserId, client_id: str
    ) -> StoredMessage | None:
        """The message ``sender`` stored with ``client_id`` in the discussion, if any."""

    async def messages(
        self,
        school_id: SchoolId,
        discussion_id: DiscussionId,
        *,
        before_seq: int | None = None,
        limit: int = 50,
        reader: UserId | None = None,
    ) -> list[StoredMessage]:
        """History, newest first, strictly before ``before_seq`` when given; with
        ``reader``, without the messages hidden from them."""

    async def messages_after(
        self, school_id: SchoolId, discussion_id: DiscussionId, after_seq: int, *,
        upto: int | None = None, limit: int = 1000, newest: bool = False
    ) -> list[StoredMessage]:
        """Messages with ``after_seq < seq <= upto``, oldest first (replay and gap filling).

        At most ``limit``: the oldest ones, or with ``newest`` the newest ones. Every
        message is returned, with its ``hidden_from``: the caller serves several
        readers and leaves each one out where it must (a seq skipped for them).
        """

    async def mark_read(
        self, school_id: SchoolId, discussion_id: DiscussionId, user_id: UserId, seq: int
    ) -> int:
        """Move the user's read position forward (never back); returns the new position."""

    async def read_positions(
        self, school_id: SchoolId, discussion_id: DiscussionId
    ) -> dict[UserId, int]:
        """Every participant's read position (former ones too); empty for a discussion
        that is not there. Who may learn which is the caller's business."""

    async def visible_seq(
        self, school_id: SchoolId, discussion_id: DiscussionId, user_id: UserId
    ) -> int | None:
        """The last seq the user may read: ``last_seq`` while present, the seq at which they
        left otherwise; ``None`` if they never took part (or the discussion is elsewhere)."""


class BroadcastStore(Protocol):
    """The broadcasts part of the store (see ``docs/protocol.md`` §14).

    Every change to a recipient's row bumps the broadcast's ``version`` and its
    counters in the same transaction, and returns the figures at that version.
    """

    async def create_broadcast(
        self, school_id: SchoolId, author: UserId, draft: Draft, *, now: datetime,
        publish_at: datetime, deadline: datetime | None,
        recipients: Sequence[UserId] | None, held_for_hours: bool = False,
    ) -> tuple[Broadcast, bool]:
        """Store a broadcast: published to ``recipients`` now, or scheduled for
        ``publish_at`` when ``recipients`` is ``None``. Idempotent by ``(author,
        draft.client_id)``: a retry returns the original and ``False``.
        ``held_for_hours``: ``publish_at`` is the window's opening, not the author's
        choice (see :meth:`HeldStore.release_for_opening`)."""

    async def find_broadcast(
        self, school_id: SchoolId, author: UserId, client_id: str
    ) -> Broadcast | None:
        """The broadcast ``author`` created with ``client_id``, if any (retries)."""

    async def get_broadcast(self, school_id: SchoolId, broadcast_id: int) -> Broadcast:
        """:class:`NotFound` if it is not in this school."""

    async def claim_due_broadcasts(self, now: datetime, *, limit: int = 100) -> list[Broadcast]:
        """Scheduled broadcasts whose time has come, claimed for this caller (a claim older
        than a minute is taken over)."""

    async def publish_broadcast(
        self, school_id: SchoolId, broadcast_id: int, recipients: Sequence[UserId], *,
        now: datetime,
    ) -> Broadcast:
        """A scheduled broadcast goes out to ``recipients``."""

    async def reschedule_broadcast(
        self, school_id: SchoolId, broadcast_id: int, publish_at: datetime
    ) -> None:
        """Hold a due broadcast until the window's opening ``publish_at`` (unclaimed)."""

    async def drop_broadcast(
        self, school_id: SchoolId, broadcast_id: int, code: str, message: str
    ) -> Broadcast:
        """A scheduled broadcast refused at its publication."""

    async def broadcasts_received(
        self, school_id: SchoolId, user_id: UserId, *, now: datetime, limit: int = 100,
        undelivered: bool = False, before: tuple[datetime, int] | None = None,
    ) -> list[tuple[Broadcast, Receipt]]:
        """Published to the user and not expired at ``now``, newest first (by
        ``(published_at, id)``); with ``undelivered``, only those the user has not received
        yet; with ``before``, only those strictly after that position in this order."""

    async def broadcasts_sent(
        self, school_id: SchoolId, author: UserId, *, limit: int = 100,
        before: int | None = None,
    ) -> list[Broadcast]:
        """The author's broadcasts, newest first (by id); with ``before``, only ids below it."""

    async def receipt(
        self, school_id: SchoolId, broadcast_id: int, user_id: UserId
    ) -> Receipt | None: ...

    async def receipts(self, school_id: SchoolId, broadcast_id: int) -> list[Receipt]:
        """Every recipient's row, by user id."""

    async def mark_broadcast_received(
        self, school_id: SchoolId, broadcast_id: int, users: Sequence[UserId], *,
        now: datetime,
    ) -> BroadcastStats | None:
        """``None`` if all of ``users`` had already received it (nothing changed)."""

    async def mark_broadcast_read(
        self, school_id: SchoolId, broadcast_id: int, user_id: UserId, *, now: datetime,
        acknowledge: bool = False,
    ) -> tuple[Receipt, BroadcastStats | None]:
        """Read (and acknowledged); ``None`` figures if nothing changed."""

    async def answer_poll(
        self, school_id: SchoolId, broadcast_id: int, user_id: UserId,
        answers: Sequence[Answer], *, now: datetime,
    ) -> tuple[Receipt, BroadcastStats]:
        """Replace the user's answer set; the per-choice counts move with it."""

    async def remind_broadcast(
        self, school_id: SchoolId, broadcast_id: int, users: Sequence[UserId], *,
        now: datetime,
    ) -> None: ...


class HeldStore(Protocol):
    """Messages (and starts) written outside the school's hours in defer mode, kept
    until an opening; every node claims the due ones, and each goes to one node."""

    async def hold(
        self,
        school_id: SchoolId,
        sender: UserId,
        client_id: str,
        body: str,
        *,
        discussion_id: DiscussionId | None,
        subject: str | None,
        recipients: Sequence[UserId],
        now: datetime,
        release_at: datetime,
    ) -> tuple[HeldMessage, bool]:
        """Keep a message for the next opening; idempotent by ``(sender, client_id)``."""

    async def claim_due(self, now: datetime, *, limit: int = 100) -> list[HeldMessage]:
        """Held messages whose time has come, claimed for this caller (a claim older than
        a minute is taken over: its node died)."""

    async def release_held(self, held_id: int, *, later: datetime | None = None) -> None:
        """Done with a held message (``later``: keep it until then, unclaimed)."""

    async def schools_holding(self, now: datetime) -> list[SchoolId]:
        """Schools with held messages, or broadcasts held for the hours, that wait for an
        opening after ``now`` (read only: every node asks every second)."""

    async def release_for_opening(self, school_id: SchoolId, now: datetime) -> None:
        """The school's window is open at ``now``: everything held for an opening becomes
        due now, to be claimed as usual (:meth:`claim_due`,
        :meth:`BroadcastStore.claim_due_broadcasts`).
        Broadcasts scheduled by their author keep their time."""


class SearchStore(Protocol):
    """Search in one's own discussions: what ``history`` and ``list`` would show them,
    never more."""

    async def search(
        self,
        school_id: SchoolId,
        user_id: UserId,
        words: Sequence[str],
        *,
        before: tuple[datetime, DiscussionId, int] | None = None,
        limit: int = 20,
    ) -> list[SearchHit]:
        """The user's discussions and messages where every one of ``words`` (letters
        and digits only) starts a word, accents and case aside, newest first.

        A message matches by its text, within what ``history`` returns that user:
        up to where they left, never one hidden from them. A discussion matches by its
        subject, or by the name of one other participant as ``list`` shows them to the
        user (nobody who joined after they left, nobody gone from the directory); one
        hit per discussion, the subject first. Discussions the user never took part in,
        and other schools, never match. ``before`` is the ``(at, discussion_id, seq)``
        of the last hit of the previous page: hits strictly after it in the order
        ``at``, ``discussion_id``, ``seq``, all descending.
        """


class SessionStore(Protocol):
    """Sign-in sessions and their refresh tokens (:mod:`server.sessions`).

    A refresh token is kept only as its SHA-256 (``*_hash``, hex): the store never sees
    the token. Each use rotates it (:meth:`rotate_refresh`); a used one is kept for a day
    (:meth:`prune_refresh_tokens`), so that its second use is recognised and ends the
    session. Whatever the
    number of nodes presenting the same token at once, exactly one rotates it.
    """

    async def create_session(
        self, school_id: SchoolId, user_id: UserId, *, session_id: str, provider: str,
        provider_session: str | None, refresh_hash: str, now: datetime,
        refresh_expires_at: datetime,
    ) -> SignInSession:
        """Open a session with its first refresh token, in one transaction."""

    async def get_session(self, school_id: SchoolId, session_id: str) -> SignInSession:
        """The session, ended or not; :class:`NotFound` if absent or of another school."""

    async def rotate_refresh(
        self, refresh_hash: str, new_hash: str, *, now: datetime, refresh_expires_at: datetime
    ) -> Rotation:
        """Use a refresh token: if it is unused, unexpired and its session open, mark it
        used and store ``new_hash`` in its place (``ROTATED``). If it was used already,
        end its session (reason ``reuse``) and every token of it (``REUSED``). Otherwise
        change nothing (``EXPIRED``, ``REVOKED``, ``UNKNOWN``). One transaction."""

    async def end_sessions(
        self, school_id: SchoolId, *, now: datetime, reason: str,
        session_id: str | None = None, user_id: UserId | None = None,
        provider: str | None = None, provider_session: str | None = None,
    ) -> list[str]:
        """End the open sessions of the school that match every filter given (one session,
        a user's, or those of a provider's session; at least one filter); the ids of
        those ended now (not those ended before)."""

    async def prune_refresh_tokens(self, now: datetime) -> int:
        """Remove the refresh tokens no rotation can accept any more: expired, used more
        than :data:`~server.store.base.USED_REFRESH_KEPT` ago, or of an ended session
        (each is then ``UNKNOWN``, refused all the same); how many. Every school at once."""


class SigninStore(Protocol):
    """The short-lived grants of a sign-in through a school's identity provider
    (:mod:`server.signin`): a sign-in waiting for the provider (``kind`` ``"pending"``,
    keyed by its state), a one-time code waiting for an app (``"code"``, keyed by
    the code's hash), and a browser's front-channel logout binding (``"frontchannel"``,
    keyed by the hash of its cookie). Kept here, not in a node's memory, so that the provider's
    redirect and the app's exchange may reach any node."""

    async def put_signin_grant(
        self, kind: str, key: str, school_id: SchoolId, payload: str, *,
        expires_at: datetime, now: datetime,
    ) -> bool:
        """Keep ``payload`` under (``kind``, ``key``) until ``expires_at``; ``False``
        (and nothing changed) if that key is already taken. Grants expired at ``now``
        are forgotten on the way."""

    async def take_signin_grant(
        self, kind: str, key: str, school_id: SchoolId, *, now: datetime,
    ) -> str | None:
        """Remove and return the payload of (``kind``, ``key``) if it belongs to
        ``school_id`` and has not expired at ``now``; ``None`` otherwise. One
        statement: of two takes of the same grant, even on two nodes, one alone gets it
        (a replayed code finds nothing)."""


class Store(DirectoryStore, DiscussionStore, MessageStore, BroadcastStore, HeldStore,
            SearchStore, SessionStore, SigninStore, Protocol):
    """Every role of the store, and its lifecycle: durable state for a whole
    deployment (schools, settings, audit, discussions, messages, broadcasts, held
    items)."""

    async def open(self) -> None:
        """Connect and apply pending schema migrations. Call once before anything else."""

    async def close(self) -> None:
        """Release the connection; the store cannot be used afterwards."""

    def write_failure(self) -> str | None:
        """Why writes fail, if this process's most recent write failed because of the
        database (busy, full, I/O) within the last 30 s and none succeeded since;
        ``None`` otherwise. ``/readyz`` reports it."""
