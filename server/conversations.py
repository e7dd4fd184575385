"""What participants ask of their discussions: post, start, invite, leave, read, type,
page through the history and the list.

Each request follows the same path: the gatekeeper decides (with the members cached by
the :class:`~server.audience.Audience`, no I/O in the usual case), the store keeps what
was decided if the members are still those it was decided with (else it is decided
again), and the node announces it to the others (:class:`Announcer`). A message goes to
this node's feed at once, before the broker: local connections get it even if Redis is
away.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from . import events, frames, summaries
from .audience import Audience, Session
from .clock import Clock
from .errors import ErrorCode, MembersChanged, NotFound, Refused, StoreUnavailable
from .gatekeeper.groups import Group
from .gatekeeper.quota import DAY
from .model import DiscussionId, DiscussionMembers, Participant, SchoolId, UserId
from .posting import post_json
from .schools import Establishment
from .store import AlreadyStarted, HeldMessage, Store, StoredMessage

__all__ = ["Announcer", "Conversations", "message_event"]

# A post or an invitation is stored only if the members it was checked against are
# still those in the store; else it is checked again with the new ones, this many times
# at most (then ``unavailable``: the client retries with the same request).
_RECHECKS = 5


class Announcer(Protocol):
    """How requests tell every node (this one included) what they changed."""

    async def announce(self, school: SchoolId, event: events.Event) -> None:
        """On the school's channel, and handled here too."""

    async def announce_in(self, school: SchoolId, d: DiscussionId,
                          event: events.Event) -> None:
        """On the discussion's channel, and handled here too."""

    async def publish_in(self, school: SchoolId, d: DiscussionId,
                         event: events.Event) -> None:
        """On the discussion's channel only (this node has handled it already)."""


class Conversations:
    """Conversations is responsible for the requests participants make of discussions."""

    def __init__(self, store: Store, clock: Clock, audience: Audience, host: Announcer, *,
                 establishment: Callable[[SchoolId], Awaitable[Establishment]]) -> None:
        self.store = store
        self.clock = clock
        self.audience = audience
        self._host = host
        self._establishment = establishment

    async def _fresh_members(self, school: SchoolId, d: DiscussionId) -> DiscussionMembers:
        """The members as the store has them now (the cached ones were outdated)."""
        self.audience.members_changed((school, d))
        return await self._members_or_nobody(school, d)

    async def _members_or_nobody(self, school: SchoolId, d: DiscussionId) -> DiscussionMembers:
        """The discussion's members; for an id that does not exist here, nobody.

        The gatekeeper then answers an unknown discussion exactly as one the user is not
        in, with the same precedence (G1–G3 first): no oracle on which ids exist.
        """
        try:
            return await self.audience.members(school, d)
        except NotFound:
            return DiscussionMembers(d, 0, ())

    async def send(self, session: Session, d: DiscussionId, body: str,
                   client_id: str) -> dict[str, Any]:
        """Post a message; returns the ack frame (sent only once the message is durable)."""
        school, user = session.school_id, session.user_id
        members = await self._members_or_nobody(school, d)
        for _ in range(_RECHECKS):
            est = await self._establishment(school)
            now = self.clock()
            decision = est.gatekeeper.check_send(user, members, now)
            if not decision.allowed or decision.hold_until is not None:
                # A retry of a message already stored is answered as such, whatever the
                # rules say now (the window may have closed since the first attempt).
                earlier = await self.store.find_message(school, d, user, client_id)
                if earlier is not None:
                    return frames.ack(earlier, duplicate=True)
                decision.raise_for_refusal()
                assert decision.hold_until is not None
                return await self._hold(school, user, client_id, body, decision.hold_until,
                                        discussion=d)
            try:
                msg, new = await self.store.append_message(
                    school, d, user, client_id, body, now=now,
                    hidden_from=decision.hidden_from, members_version=members.version)
            except MembersChanged:  # someone joined or left since: decide with them
                members = await self._fresh_members(school, d)
                continue
            break
        else:
            raise StoreUnavailable(f"the members of discussion {d} keep changing")
        if new:
            self.audience.offer((school, d), msg)
        # A retry publishes again: the first attempt's node may have died before its
        # PUBLISH. Feeds drop what they have already seen.
        await self._host.publish_in(school, d, message_event(school, msg))
        return frames.ack(msg, duplicate=not new)

    async def start_discussion(self, session: Session, subject: str, to: Sequence[UserId],
                               body: str, client_id: str,
                               groups: Sequence[Group] = ()) -> dict[str, Any]:
        """Start a discussion with ``to`` and the members of ``groups`` the user may reach
        now (expanded here, at the start, by the gatekeeper: the others are left out and
        counted in the answer, never stored as participants)."""
        school, user = session.school_id, session.user_id
        est = await self._establishment(school)
        now = self.clock()
        decision, expansion = est.gatekeeper.check_group_start(user, to, groups, now)
        earlier = await self.store.find_started(school, user, client_id)
        if earlier is None:
            decision.raise_for_refusal()
            await self._check_start_quota(school, est, user, now)
            everyone = (*dict.fromkeys(to), *expansion.included)
            told = frames.group_expansion(expansion) if groups else None
            if decision.hold_until is not None:
                held = await self._hold(school, user, client_id, body, decision.hold_until,
                                        subject=subject, recipients=everyone)
                return held if told is None else {**held, "groups": told}
            try:
                msg = await self.create_discussion(school, user, subject, everyone, body,
                                                   client_id, now)
            except AlreadyStarted as race:  # the same start, stored meanwhile elsewhere
                earlier = race.earlier
            else:
                return frames.started(await self.summary(school, user, msg.discussion_id),
                                      frames.ack(msg, duplicate=False), told)
        # A retry (or the loser of a race with the same start on another connection or
        # node): answer what the first attempt did, whatever the rules say now.
        return frames.started(await self.summary(school, user, earlier.discussion_id),
                              frames.ack(earlier, duplicate=True))

    async def _check_start_quota(self, school: SchoolId, est: Establishment, user: UserId,
                                 now: datetime) -> None:
        """Refuse ``rate_limited`` (with ``retry_at``) past the school's start limits.
        Counted from the store, so it holds across connections and nodes; two starts
        racing on different connections may both pass (one over, at most per connection)."""
        gk = est.gatekeeper
        recent = await self.store.recent_starts(school, user, since=now - DAY,
                                                limit=gk.start_limits.per_day)
        gk.check_start_quota(recent, now).raise_for_refusal()

    async def create_discussion(self, school: SchoolId, user: UserId, subject: str,
                                to: Sequence[UserId], body: str, client_id: str,
                                now: datetime) -> StoredMessage:
        """Store the discussion with its first message and announce it;
        :class:`~server.store.AlreadyStarted` (nothing stored, nothing announced) if
        ``user`` started one with ``client_id`` already."""
        # One transaction: a failure leaves no discussion without its first message.
        members = await self.store.create_discussion(school, user, subject, to, now=now,
                                                     first=(client_id, body))
        d = members.id
        msg = StoredMessage(d, 1, user, client_id, body, now)
        everyone = [p.user_id for p in members.participants]
        await self._host.announce(school, events.DiscussionAdded(school, d, tuple(everyone)))
        await self._host.publish_in(school, d, message_event(school, msg))
        return msg

    async def posted(self, school: SchoolId, msg: StoredMessage) -> None:
        """A message just stored (released from hold): deliver here, publish to the others."""
        self.audience.offer((school, msg.discussion_id), msg)
        await self._host.publish_in(school, msg.discussion_id, message_event(school, msg))

    async def held_dropped(self, school: SchoolId, held: HeldMessage, code: ErrorCode,
                           message: str, params: Mapping[str, Any]) -> None:
        await self._host.announce(school, events.HeldDropped(
            school, held.sender, held.client_id, held.discussion_id, code.value, message,
            dict(params)))

    async def _hold(self, school: SchoolId, user: UserId, client_id: str, body: str,
                    until: datetime, *, discussion: DiscussionId | None = None,
                    subject: str | None = None,
                    recipients: Sequence[UserId] = ()) -> dict[str, Any]:
        """Defer mode outside the hours: keep it for the opening (checked again then)."""
        held, new = await self.store.hold(school, user, client_id, body,
                                          discussion_id=discussion, subject=subject,
                                          recipients=recipients, now=self.clock(),
                                          release_at=until)
        return frames.held(discussion, client_id, held.release_at, duplicate=not new)

    async def invite(self, session: Session, d: DiscussionId, invitee: UserId) -> None:
        school, user = session.school_id, session.user_id
        members = await self._members_or_nobody(school, d)
        for _ in range(_RECHECKS):
            gk = (await self._establishment(school)).gatekeeper
            now = self.clock()
            gk.check_invite(user, members, invitee, now).raise_for_refusal()
            # What was posted before they arrive (or while they were away) is theirs only
            # from authors they may exchange with now, the invitation applied: hidden in
            # the same transaction, against exactly these members (docs/policy.md).
            readable = gk.readable_authors(invitee, _with(members, invitee, user, now))
            try:
                await self.store.add_participant(school, d, invitee, invited_by=user, now=now,
                                                 members_version=members.version,
                                                 readable_authors=readable)
            except MembersChanged:
                members = await self._fresh_members(school, d)
                continue
            break
        else:
            raise StoreUnavailable(f"the members of discussion {d} keep changing")
        await self._host.announce_in(school, d, events.Joined(school, d, invitee, user))
        await self._host.announce(school, events.DiscussionAdded(school, d, (invitee,)))

    async def leave(self, session: Session, d: DiscussionId) -> None:
        school, user = session.school_id, session.user_id
        est = await self._establishment(school)
        members = await self._members_or_nobody(school, d)
        est.gatekeeper.check_leave(user, members).raise_for_refusal()
        await self.store.leave(school, d, user, now=self.clock())
        await self._host.announce_in(school, d, events.Left(school, d, user))

    async def mark_read(self, session: Session, d: DiscussionId, seq: int) -> None:
        school, user = session.school_id, session.user_id
        try:
            position = await self.store.mark_read(school, d, user, seq)
        except NotFound:
            raise Refused(ErrorCode.NOT_PARTICIPANT, params={"discussion": d}) from None
        await self._host.announce_in(school, d, events.Read(school, d, user, position))

    async def typing(self, session: Session, d: DiscussionId) -> None:
        """Relay that the user is typing, only if what they type could be posted now:
        typing reaches nobody they may not write to (an unsupervised classmate, anyone
        outside the hours). Dropped silently then, like any lost typing event; the
        ``post`` status tells the client to stop sending it. Where it is relayed, the
        pair rule filters it again per recipient (:mod:`server.activity`)."""
        school, user = session.school_id, session.user_id
        members = await self._members_or_nobody(school, d)
        participant = members.get(user)
        if participant is None or not participant.present:
            raise Refused(ErrorCode.NOT_PARTICIPANT, params={"discussion": d})
        gk = (await self._establishment(school)).gatekeeper
        decision = gk.check_send(user, members, self.clock())
        if not decision.allowed or decision.hold_until is not None:
            return
        await self._host.announce_in(school, d, events.Typing(school, d, user))

    async def history(self, session: Session, d: DiscussionId, before: int | None,
                      limit: int) -> tuple[list[dict[str, Any]], bool]:
        school, user = session.school_id, session.user_id
        visible = await self.store.visible_seq(school, d, user)
        if visible is None:
            raise Refused(ErrorCode.NOT_PARTICIPANT, params={"discussion": d})
        bound = visible + 1 if before is None else min(before, visible + 1)
        rows = await self.store.messages(school, d, before_seq=bound, limit=limit + 1,
                                         reader=user)
        return [frames.message(m) for m in rows[:limit]], len(rows) > limit

    async def post_status(self, session: Session, d: DiscussionId) -> dict[str, Any]:
        """Whether ``session``'s user may post in ``d`` now, and why not (the ``post``
        object of docs/protocol.md)."""
        est = await self._establishment(session.school_id)
        members = await self._members_or_nobody(session.school_id, d)
        return post_json(est.gatekeeper, session.user_id, members, self.clock())

    async def reads(self, session: Session, d: DiscussionId) -> dict[UserId, int]:
        """The other participants' read positions that ``session``'s user may learn: those
        whose live ``read`` event would reach them now (the G6 pair rule, either way, as
        :class:`~server.activity.Activity` filters it), so a reload shows what the
        events showed. Called after :meth:`history` has checked the user took part."""
        school, user = session.school_id, session.user_id
        est = await self._establishment(school)
        try:
            members = await self.audience.members(school, d)
        except NotFound:
            return {}
        positions = await self.store.read_positions(school, d)
        return {other: seq for other, seq in positions.items()
                if other != user and user in est.gatekeeper.exchanges_with(other, members)}

    async def summaries(self, session: Session, before: str | None = None,
                        limit: int = 200) -> tuple[list[dict[str, Any]], str | None]:
        """A page of the user's discussions, most recently active first, and the cursor
        of the next page (``None`` on the last). A flood of new discussions pushes older
        ones to later pages, never out of reach."""
        school = session.school_id
        est = await self._establishment(school)
        gk, now = est.gatekeeper, self.clock()
        position = None
        if before is not None:
            when, discussion = summaries.read_cursor(before)
            position = (when, DiscussionId(discussion))
        rows = await self.store.summaries(school, session.user_id, limit=limit + 1,
                                          before=position)
        page = rows[:limit]
        after = None
        if len(rows) > limit:
            last = page[-1]
            assert last.last_at is not None
            after = summaries.cursor(last.last_at, last.discussion.id)
        me = session.user_id
        return [summaries.summary_json(est, s, me, post=post_json(gk, me, s.members, now))
                for s in page], after

    async def summary(self, school: SchoolId, user: UserId, d: DiscussionId) -> dict[str, Any]:
        est = await self._establishment(school)
        for s in await self.store.summaries(school, user, discussion_id=d):
            return summaries.summary_json(
                est, s, user, post=post_json(est.gatekeeper, user, s.members, self.clock()))
        raise NotFound(f"no discussion {d} for {user}")


def _with(members: DiscussionMembers, user: UserId, invited_by: UserId,
          now: datetime) -> DiscussionMembers:
    """``members`` with ``user`` brought in (or back) by ``invited_by``, as the store
    will have them once the invitation is stored (same order: a returning participant
    keeps their row)."""
    joining = Participant(user, invited_by, now)
    rows = [joining if p.user_id == user else p for p in members.participants]
    if joining not in rows:
        rows.append(joining)
    return DiscussionMembers(members.id, members.version + 1, tuple(rows))


def message_event(school: SchoolId, msg: StoredMessage) -> events.Message:
    return events.Message(school, msg.discussion_id, msg.seq, msg.sender, msg.client_id,
                          msg.body, msg.created_at, msg.hidden_from)
