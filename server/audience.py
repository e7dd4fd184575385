"""Who listens to which discussion on this node, and the feeds that serve them.

A connection joins a discussion's *audience* when its user is in the discussion:
the first one here opens the discussion's :class:`~server.feed.Feed` and the
broker subscription to its channel, the last one to leave closes both. Joining
replays what the connection missed, within a :class:`Replay` allowance, so that
the stream it then receives is in order, without gap or duplicate.

The members of every discussion followed here are cached for the gatekeeper's
per-message decision; the cache is dropped on every join or leave announced (and
whenever publications may have been lost), so that it never outlives a change.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from . import frames, summaries
from .broker import Broker, BrokerUnavailable
from .broker.channels import discussion_channel
from .errors import NotFound
from .feed import FILL_BATCH, Feed
from .hub import Frame, Hub, Member
from .limits import Limits
from .model import DiscussionId, DiscussionMembers, SchoolId, UserId
from .protocol import Encoding
from .schools import Establishment
from .store import Store, StoredMessage

__all__ = ["Audience", "Replay", "Session", "quietly"]

log = logging.getLogger("preau.node")

Key = tuple[SchoolId, DiscussionId]


class Session(Member, Protocol):
    """What the node needs of a connection (``server.session.Session`` implements it)."""

    def begin_catchup(self, discussion: DiscussionId) -> None:
        """Buffer the discussion's live messages until :meth:`end_catchup`."""

    def end_catchup(self, discussion: DiscussionId, position: int,
                    messages: Sequence[StoredMessage]) -> None:
        """Deliver ``messages`` then the buffered ones, skipping seqs ≤ ``position``."""

    @property
    def open(self) -> bool: ...

    def forget(self, discussion: DiscussionId) -> None: ...

    def shutdown(self) -> None:
        """Close with 4000 once the request in progress (if any) is answered."""

    def close(self, code: int, reason: str) -> None: ...

    @property
    def subscribed(self) -> Iterable[DiscussionId]: ...

    @property
    def expires_at(self) -> datetime: ...

    def check_token(self, now: datetime) -> None:
        """Send ``token_expiring`` when due; close (4401) once the token has expired."""

    encoding: Encoding


class Replay:
    """What one connection's resume may still queue: bounded in bytes and messages, so
    that a resume always fits in the outbox (the newest messages are kept). The
    ``discussion`` announcements are charged to the same budget: a user added to 800
    discussions while away still gets a welcome (``complete: false``), never a 4008."""

    __slots__ = ("budget", "limit")

    def __init__(self, budget: int, limit: int) -> None:
        self.budget = budget
        self.limit = limit

    def charge(self, size: int) -> bool:
        """Reserve ``size`` bytes for one frame; False (nothing reserved) if it does not fit."""
        if size > self.budget:
            self.budget = 0  # what comes after it would be out of order: stop here
            return False
        self.budget -= size
        return True

    @property
    def spent(self) -> bool:
        return self.budget <= 0

    def take(self, rows: list[StoredMessage]) -> list[StoredMessage]:
        kept: list[StoredMessage] = []
        for msg in reversed(rows):
            cost = len(msg.body) + 160  # the frame around the body, roughly
            if cost > self.budget:
                break
            self.budget -= cost
            kept.append(msg)
        kept.reverse()
        return kept


async def quietly(call: Awaitable[None]) -> None:
    """A broker call whose failure only delays other nodes: what it announces is durable
    already, and they catch up from the store when the broker is back."""
    try:
        await call
    except BrokerUnavailable as exc:
        log.warning("broker unavailable: %s", exc)


class Audience:
    """Audience is responsible for the discussions followed on this node: who listens,
    their feeds, their broker subscriptions and their cached members."""

    def __init__(self, store: Store, broker: Broker, hub: Hub, limits: Limits, *,
                 establishment: Callable[[SchoolId], Awaitable[Establishment]],
                 spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        self.store = store
        self.broker = broker
        self.hub = hub
        self.limits = limits
        self._establishment = establishment
        self._spawn = spawn
        self._feeds: dict[Key, Feed] = {}
        self._members: dict[Key, DiscussionMembers] = {}
        self._membership_changes = 0  # joins and leaves announced, for the members cache

    def followed(self) -> list[Key]:
        """The discussions someone here listens to."""
        return list(self._feeds)

    def replay(self) -> Replay:
        """A fresh replay allowance: half the outbox, so that live traffic still fits."""
        return Replay(self.limits.outbox_bytes // 2, self.limits.replay_max)

    # ------------------------------------------------------------------ members

    async def members(self, school: SchoolId, d: DiscussionId) -> DiscussionMembers:
        key = (school, d)
        members = self._members.get(key)
        if members is None:
            changes = self._membership_changes
            members = await self.store.members(school, d)
            # Cached only while notices about it reach us, and only if no join or leave
            # was announced while we read (the read may predate it).
            if key in self._feeds and changes == self._membership_changes:
                self._members[key] = members
        return members

    def cached_members(self, key: Key) -> DiscussionMembers | None:
        return self._members.get(key)

    def members_changed(self, key: Key) -> None:
        """A join or leave in ``key`` (or maybe one: publications were lost)."""
        self._members.pop(key, None)
        self._membership_changes += 1

    def school_changed(self, school: SchoolId) -> None:
        """A policy change: every cached membership of the school is read again."""
        self._members = {k: v for k, v in self._members.items() if k[0] != school}
        self._membership_changes += 1

    # ------------------------------------------------------------------ joining

    async def join_one(self, session: Session, d: DiscussionId, from_seq: int | None,
                       replay: Replay | None = None, *, announce: bool = False) -> int:
        """Subscribe a connection to a discussion; replay after ``from_seq`` if given.

        ``None`` means live only: from what is durable now. The session buffers live
        messages from before it joins the audience until its replay is read, so the
        stream it sends is in order, without gap or duplicate. A replay is the newest
        messages after ``from_seq`` that fit in ``replay`` (a fresh allowance if
        ``None``); returns 1 if older ones were left out (the client pages them with
        ``history``).

        With ``announce``, a ``discussion`` event goes first, read *after* joining the
        audience: a join or leave is then either in it or announced after it.
        """
        return await self.join(session.school_id, d, [session], from_seq, replay,
                               announce=announce)

    async def join(self, school: SchoolId, d: DiscussionId, sessions: Sequence[Session],
                   from_seq: int | None, replay: Replay | None = None, *,
                   announce: bool = False) -> int:
        """:meth:`join_one` for several connections at once, with one read of the
        discussion for all (a new class discussion adds thirty people together).
        A shared ``replay`` allowance is for a single session.

        If a step fails, the connections still catching up leave the discussion again
        (audience, feed, buffer) before the error goes up: none is left subscribed to a
        feed that never starts."""
        try:
            return await self._joining(school, d, sessions, from_seq, replay,
                                       announce=announce)
        except BaseException:
            for session in sessions:
                if d in set(session.subscribed):
                    self.leave(session, d)
            raise

    async def summaries(self, school: SchoolId, d: DiscussionId,
                        users: list[UserId]) -> dict[UserId, dict[str, Any]]:
        """The ``discussion`` objects of one discussion for several users."""
        est = await self._establishment(school)
        return await summaries.for_users(self.store, est, school, d, users)

    async def _joining(self, school: SchoolId, d: DiscussionId, sessions: Sequence[Session],
                       from_seq: int | None, replay: Replay | None = None, *,
                       announce: bool = False) -> int:
        key = (school, d)
        for session in sessions:
            session.begin_catchup(d)
            if self.hub.subscribe(session, d):
                self._feeds[key] = self._new_feed(key)
                await quietly(self.broker.subscribe(discussion_channel(*key)))
        joined = list(sessions)
        unannounced: list[Session] = []  # no room left in the replay budget: live only
        if announce:
            found = await self.summaries(school, d, [s.user_id for s in sessions])
            joined = []
            for session in sessions:
                summary = found.get(session.user_id)
                if summary is None:  # not (or no longer) in it
                    self.leave(session, d)
                    continue
                frame = Frame(frames.discussion(summary))
                if replay is not None and not replay.charge(len(frame.data(session.encoding))):
                    unannounced.append(session)
                    continue
                session.push(frame)
                joined.append(session)
            if not joined and not unannounced:
                return 0
        last = (await self.store.get_discussion(*key)).last_seq
        feed_now = self._feeds.get(key)
        if feed_now is not None:
            feed_now.start(last)
        rows: list[StoredMessage] = []
        if from_seq is not None and from_seq < last:
            limit = self.limits.replay_max if replay is None else replay.limit
            rows = await self.store.messages_after(school, d, from_seq, upto=last,
                                                   limit=limit, newest=True)
        incomplete = 0
        for session in unannounced:
            if session.open:
                session.end_catchup(d, last, [])
                incomplete = 1
            else:
                self.leave(session, d)
        for session in joined:
            if not session.open:  # gone while we awaited: do not leave it in the audience
                self.leave(session, d)
            elif from_seq is None or from_seq >= last:
                # Live only, or a client claiming more than exists: start from what is stored.
                session.end_catchup(d, last if from_seq is None else min(last, from_seq), [])
            else:
                taken = (replay or self.replay()).take(rows)
                session.end_catchup(d, from_seq, taken)
                incomplete = max(incomplete, int(not taken or taken[0].seq > from_seq + 1))
        return incomplete

    def leave(self, session: Session, d: DiscussionId) -> None:
        session.forget(d)
        if self.hub.unsubscribe(session, d):
            key = (session.school_id, d)
            feed = self._feeds.pop(key, None)
            if feed is not None:
                feed.close()
            self._members.pop(key, None)
            self._spawn(self._unsubscribe(key))

    async def _unsubscribe(self, key: Key) -> None:
        # Someone here may have joined again since: then the subscription must stay.
        if key not in self._feeds:
            await quietly(self.broker.unsubscribe(discussion_channel(*key)))

    # ------------------------------------------------------------------ the feeds

    def _new_feed(self, key: Key) -> Feed:
        school, d = key

        def deliver(msg: StoredMessage) -> None:
            frame = Frame(frames.message(msg))  # encoded once for every connection here
            hidden = msg.hidden_from
            for member in self.hub.in_discussion(school, d):
                # Nobody here receives what the gatekeeper kept from them (usually nobody).
                member.deliver(d, msg.seq,
                               None if hidden and member.user_id in hidden else frame)

        async def read(after: int, upto: int) -> list[StoredMessage]:
            return await self.store.messages_after(school, d, after, upto=upto,
                                                   limit=FILL_BATCH)

        return Feed(deliver, read, self._spawn)

    def offer(self, key: Key, msg: StoredMessage) -> None:
        """A message of ``key``, from this node or another, maybe again."""
        feed = self._feeds.get(key)
        if feed is not None:  # else nobody here listens
            feed.offer(msg)

    async def catch_up(self, key: Key) -> None:
        """Publications of ``key`` may have been lost: read the store up to its last seq."""
        feed = self._feeds.get(key)
        if feed is None or feed.watermark is None:
            return
        try:
            last = (await self.store.get_discussion(*key)).last_seq
        except NotFound:
            return
        self.members_changed(key)
        await feed.catch_up(last)
