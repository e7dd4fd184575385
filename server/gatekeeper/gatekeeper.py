"""The gatekeeper: one school's policy, consulted on every connection and every message.

:class:`Gatekeeper` applies SPEC §3 (G1–G8) in the order the "Clarifications"
set — ``unauthenticated``, then G1 ``discussions_disabled``, then G2
``profile_disabled``, then G3 ``outside_hours``, then the rest — and returns a
:class:`~server.gatekeeper.decision.Decision`. It does no I/O and never reads
the clock: ``now`` is always an argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from server.errors import ErrorCode
from server.gatekeeper import rules
from server.gatekeeper.broadcast import (
    BroadcastScope,
    BroadcastTarget,
    broadcast_recipients,
    broadcast_refusal,
    broadcast_scope,
    may_broadcast_to,
)
from server.gatekeeper.decision import ALLOW, Decision, hold, refuse
from server.gatekeeper.groups import (
    Expansion,
    Group,
    addressable_groups,
    expand_groups,
    may_address_group,
)
from server.gatekeeper.hours import Window, WindowState
from server.gatekeeper.index import SchoolIndex
from server.gatekeeper.quota import check_start_quota
from server.gatekeeper.refusals import g6_refusal, outside_hours, person, start_refusal
from server.model import (
    DiscussionId,
    DiscussionMembers,
    OutsideHours,
    Role,
    SchoolState,
    StartLimits,
    User,
    UserId,
)

__all__ = ["DEFAULT_MEMBERSHIP_CACHE_SIZE", "Gatekeeper"]

DEFAULT_MEMBERSHIP_CACHE_SIZE = 4096
"""How many discussions' G6 facts one :class:`Gatekeeper` remembers."""

# Refusals that carry nothing variable are built once and shared (decisions
# are immutable), which keeps them off the hot path's allocation budget.
_UNAUTHENTICATED = refuse(ErrorCode.UNAUTHENTICATED)
_DISCUSSIONS_DISABLED = refuse(ErrorCode.DISCUSSIONS_DISABLED)
_CANNOT_INITIATE = refuse(ErrorCode.CANNOT_INITIATE)
_CANNOT_INVITE = refuse(ErrorCode.CANNOT_INVITE)
_NO_RECIPIENT = refuse(ErrorCode.BAD_REQUEST, "Une discussion a besoin d'au moins un "
                       "destinataire.", params={"field": "to"})
_NOBODY_IN_GROUPS = refuse(
    ErrorCode.BAD_REQUEST,
    "Personne dans ces groupes ne peut recevoir cette discussion : choisissez d'autres "
    "destinataires.", params={"field": "groups", "reason": "nobody_in_groups"},
)
_NO_EXPANSION = Expansion()
_SELF_RECIPIENT = refuse(ErrorCode.BAD_REQUEST, "Vous ne pouvez pas être destinataire de "
                         "votre propre discussion.", params={"field": "to"})


class Gatekeeper:
    """An immutable policy snapshot of one :class:`~server.model.SchoolState`.

    Build one per state version: any change to the settings, a preference or
    the directory makes a new ``SchoolState`` and so a new ``Gatekeeper``,
    which is how every cache below is invalidated — by construction, never by
    hand. Caches are memoization only: an answer depends on the state and the
    arguments, never on what was asked before.

    What is worked out once:

    - at construction, each user's access (in the directory, G1, G2) and the
      indexes the rules read (:class:`~server.gatekeeper.index.SchoolIndex`);
    - per discussion, the G6 facts (who is present, who receives, who may
      post) for its current ``(members.id, members.version)``; one version
      per discussion is kept, for at most ``membership_cache_size``
      discussions, the least recently computed being dropped first (G6
      refusals, which name the blockers, are remembered likewise);
    - per user, the contact list;
    - in :attr:`window`, the allowed-hours interval ``now`` falls in.

    The memos are plain attribute and dict assignments, safe on one event
    loop; threads sharing a gatekeeper could at worst compute a value twice.
    """

    __slots__ = (
        "_access",
        "_cache_size",
        "_contacts",
        "_defer",
        "_g6_refusals",
        "_index",
        "_memberships",
        "_sorted_users",
        "state",
        "version",
        "window",
    )

    def __init__(
        self,
        state: SchoolState,
        *,
        membership_cache_size: int = DEFAULT_MEMBERSHIP_CACHE_SIZE,
    ) -> None:
        """Index ``state``; raises :class:`~server.errors.InvalidSettings` on bad hours or zone."""
        if membership_cache_size < 1:
            raise ValueError("membership_cache_size must be at least 1")
        self.state = state
        self.version = state.version
        settings = state.settings
        self.window = Window(settings.hours, settings.timezone)
        self._defer = settings.hours.outside is OutsideHours.DEFER
        self._index = index = SchoolIndex(state)
        # Unknown ids are absent and read as unauthenticated (precedence 1).
        self._access: dict[UserId, Decision]
        if not settings.discussions_enabled:
            self._access = dict.fromkeys(index.users, _DISCUSSIONS_DISABLED)
        else:
            self._access = {
                uid: ALLOW if uid in index.active else self._profile_disabled(u)
                for uid, u in index.users.items()
            }
        self._cache_size = membership_cache_size
        self._memberships: dict[DiscussionId, rules.Membership] = {}
        # G6 refusals name the blockers, which costs a pass over the
        # participants: remembered so that a client retrying is not costly.
        self._g6_refusals: dict[tuple[DiscussionId, int, UserId], Decision] = {}
        self._contacts: dict[UserId, tuple[User, ...]] = {}
        self._sorted_users: tuple[User, ...] | None = None

    def __repr__(self) -> str:
        school = self.state.directory.school.id
        return f"<Gatekeeper school={school!r} version={self.version} {self.window!r}>"

    # ------------------------------------------------------------------ who

    def user(self, user_id: UserId) -> User | None:
        """The directory entry of ``user_id``, or ``None`` (unknown here, or another school)."""
        return self._index.users.get(user_id)

    def is_admin(self, user_id: UserId) -> bool:
        """Whether ``user_id`` is a staff member with ``admin`` (whatever their profile switch)."""
        user = self._index.users.get(user_id)
        return user is not None and user.role is Role.STAFF and user.admin

    # ------------------------------------------------------------------ G1, G2

    def check_connect(self, user_id: UserId) -> Decision:
        """``unauthenticated`` (not in the directory), then G1, then G2.

        Reading is allowed at any hour, so G3 does not apply: a client
        connecting outside the window is told :meth:`window_state`.
        """
        return self._access.get(user_id, _UNAUTHENTICATED)

    def check_read(self, user_id: UserId) -> Decision:
        """Same rules as :meth:`check_connect`: with discussions off nothing is readable."""
        return self._access.get(user_id, _UNAUTHENTICATED)

    # ------------------------------------------------------------------ G3

    def window_state(self, now: datetime) -> WindowState:
        """Whether sending is open at ``now`` and when that changes (G3)."""
        return self.window.state(now)

    # ------------------------------------------------------------------ G4, G5

    def may_start(self, x: UserId, y: UserId) -> bool:
        """Raw G5 from X to Y: Y in the directory, not X, with discussions on (see ``rules``)."""
        return rules.may_start(self._index, x, y)

    def start_refusal(self, x: UserId, y: UserId) -> Decision:
        """``ALLOW`` if X may start with Y (G5), else the most specific refusal.

        Parent to parent with a delegate link: ``parent_messaging_disabled``
        (the school's switch), or ``not_opted_in`` when X has not opted in;
        anything else is ``recipient_not_allowed`` — also for an unknown id,
        a user of another school, a parent without a link or one who has not
        opted in, so that the answer never reveals who exists or chose what.
        """
        code = rules.start_refusal_code(self._index, x, y)
        return ALLOW if code is None else start_refusal(code, y)

    def check_start(self, user_id: UserId, recipients: Sequence[UserId], now: datetime) -> Decision:
        """May ``user_id`` start a discussion with ``recipients`` at ``now``?

        Precedence: unauthenticated, G1, G2, G3 (refused, or held until the
        opening in defer mode), G4 ``cannot_initiate``, ``bad_request`` (no
        recipient, or the sender among them), then G5 for each recipient,
        duplicates ignored. One forbidden recipient refuses the whole start.
        """
        return self.check_group_start(user_id, recipients, (), now)[0]

    def check_group_start(
        self, user_id: UserId, recipients: Sequence[UserId], groups: Sequence[Group],
        now: datetime,
    ) -> tuple[Decision, Expansion]:
        """:meth:`check_start` with ``groups`` beside the people picked one by one.

        After G1–G4, a group the sender may not name (:func:`~server.gatekeeper.groups.
        may_address_group`) refuses the start with ``recipient_not_allowed``, then each
        individual is checked as in :meth:`check_start`, then the groups are expanded at
        ``now`` (:func:`~server.gatekeeper.groups.expand_groups`): members the sender
        may not reach are left out, not refused. Nobody to reach at all is
        ``bad_request``. An acceptance comes with the expansion (its ``included`` leaves
        out those picked one by one); a refusal with an empty one.
        """
        nothing = _NO_EXPANSION
        access = self._access.get(user_id, _UNAUTHENTICATED)
        if not access.allowed:
            return access, nothing
        hold_until: datetime | None = None
        if not self.window.is_open(now):
            opens_at = self._opens_at(now)
            if not self._defer:
                return self._outside_hours(opens_at), nothing
            hold_until = opens_at
        index = self._index
        sender = index.users[user_id]
        if not rules.may_initiate(index, sender):
            return _CANNOT_INITIATE, nothing
        for group in groups:
            if not may_address_group(index, sender, group):
                return _group_refusal(group), nothing
        if not recipients and not groups:
            return _NO_RECIPIENT, nothing
        unique = dict.fromkeys(recipients)
        if user_id in unique:
            return _SELF_RECIPIENT, nothing
        for y in unique:
            code = rules.start_refusal_code(index, user_id, y)
            if code is not None:
                return start_refusal(code, y), nothing
        expansion = nothing
        if groups:
            expansion = expand_groups(index, sender, groups)
            if unique:
                expansion = Expansion(
                    tuple(y for y in expansion.included if y not in unique), expansion.left_out)
            if not unique and not expansion.included:
                return _NOBODY_IN_GROUPS, nothing
        return (ALLOW if hold_until is None else hold(hold_until)), expansion

    def groups(self, user_id: UserId) -> tuple[Group, ...]:
        """The groups ``user_id`` may name in a start (raw: gate with :meth:`check_contacts`)."""
        user = self._index.users.get(user_id)
        return () if user is None else addressable_groups(self._index, user)

    def expand_groups(self, user_id: UserId, groups: Sequence[Group]) -> Expansion:
        """Who of ``groups`` ``user_id`` would reach now, and who would be left out, for a
        picker; the start itself expands them again (:meth:`check_group_start`). Nobody,
        if one of the groups is not one ``user_id`` may name."""
        index = self._index
        user = index.users.get(user_id)
        if user is None or not all(may_address_group(index, user, g) for g in groups):
            return _NO_EXPANSION
        return expand_groups(index, user, groups)

    def check_start_quota(self, recent: Sequence[datetime], now: datetime) -> Decision:
        """One more start, after ``recent`` (the user's start times, newest first, at
        least the newest :attr:`start_limits.per_day <StartLimits>` of the last day)?
        Checked after :meth:`check_start`, so ``rate_limited`` comes last."""
        return check_start_quota(self.start_limits, recent, now)

    @property
    def start_limits(self) -> StartLimits:
        return self.state.settings.start_limits

    def check_contacts(self, user_id: UserId) -> Decision:
        """May ``user_id`` list contacts to start a discussion? Unauthenticated, G1, G2, G4."""
        access = self._access.get(user_id, _UNAUTHENTICATED)
        if not access.allowed:
            return access
        if not rules.may_initiate(self._index, self._index.users[user_id]):
            return _CANNOT_INITIATE
        return ALLOW

    def contacts(self, user_id: UserId) -> tuple[User, ...]:
        """Everyone ``user_id`` may start a discussion with (G5), by (last, first name, id).

        Raw G5 like :meth:`may_start`: gate it with :meth:`check_contacts`.
        Cached per user for the life of this snapshot; unknown ids get ``()``.
        """
        cached = self._contacts.get(user_id)
        if cached is not None:
            return cached
        index = self._index
        if user_id not in index.users:
            return ()
        if self._sorted_users is None:
            self._sorted_users = tuple(
                sorted(index.users.values(), key=lambda u: (u.last_name, u.first_name, u.id))
            )
        found = tuple(u for u in self._sorted_users if rules.may_start(index, user_id, u.id))
        self._contacts[user_id] = found
        return found

    # ------------------------------------------------------------------ G6

    def check_send(self, user_id: UserId, members: DiscussionMembers, now: datetime) -> Decision:
        """May ``user_id`` post in the discussion ``members`` at ``now``? (the hot path)

        Precedence: unauthenticated, G1, G2, G3 (refused, or held until the
        opening in defer mode), ``not_participant`` (absent or left), then G6.
        An acceptance names in ``hidden_from`` the present participants the
        pair check skipped (switched off, out of the directory): the message
        must never reach them. A G6 refusal names the blockers; its code is
        ``parent_messaging_disabled`` (the school's switch) or ``not_opted_in``
        (the sender's own) when a blocking parent pair is stopped by those
        switches, else ``not_invited_by_supervisor`` — another parent's
        choice is never told.
        """
        access = self._access.get(user_id, _UNAUTHENTICATED)
        if not access.allowed:
            return access
        hold_until: datetime | None = None
        if not self.window.is_open(now):
            opens_at = self._opens_at(now)
            if not self._defer:
                return self._outside_hours(opens_at)
            hold_until = opens_at
        m = self._membership(members)
        if user_id not in m.present:
            return _not_participant(m.id)
        if user_id in m.posters:
            if m.unreached:
                # Skipped by the pair check, so never to receive it, even once switched
                # back on: the store keeps the names with the message.
                return Decision(allowed=True, hold_until=hold_until, hidden_from=m.unreached)
            return ALLOW if hold_until is None else hold(hold_until)
        key = (m.id, m.version, user_id)
        refusal = self._g6_refusals.get(key)
        if refusal is None:
            if len(self._g6_refusals) >= self._cache_size:
                self._g6_refusals.clear()  # rare, and recomputing is cheap enough
            refusal = self._g6_refusals[key] = g6_refusal(self._index, m, user_id)
        return refusal

    def posters(self, members: DiscussionMembers) -> frozenset[UserId]:
        """Present participants who may post (G6); cached per ``(members.id, members.version)``.

        Only participants in the directory with discussions on can be posters.
        """
        return self._membership(members).posters

    def blockers(self, user_id: UserId, members: DiscussionMembers) -> frozenset[UserId]:
        """The present participants ``user_id`` may not post to (G6); empty means may post.

        Participants not in the directory or switched off are never blockers.
        """
        return rules.blockers(self._index, self._membership(members), user_id)

    def exchanges_with(self, user_id: UserId, members: DiscussionMembers) -> frozenset[UserId]:
        """Who may see ``user_id``'s typing and read events in ``members`` now.

        The G6 pair rule, either way, supervision included (see
        :func:`~server.gatekeeper.rules.exchanges_with`); ``user_id`` is not in it
        (their own connections are the caller's business).
        """
        return rules.exchanges_with(self._index, self._membership(members), user_id)

    def readable_authors(self, invitee: UserId, members: DiscussionMembers) -> frozenset[UserId]:
        """Whose messages, posted before ``invitee`` was brought in (or while they were
        away), ``invitee`` may read; ``members`` is the discussion with the invitation
        applied. Nobody allowed those messages between their author and ``invitee``
        when they were posted, so the pair is decided now: the G6 pair rule, either
        way, supervision included (a classmate whom the same teacher brought in stays
        readable). A former participant is linked by G5 alone, since supervision needs
        presence; a switched-off author, or one gone from the directory, by nothing.
        ``invitee`` always reads their own messages.

        Computed without the membership cache: ``members`` is a state the store has not
        committed yet, and another could take its version if the invitation failed.
        """
        idx = self._index
        m = rules.membership(idx, members)
        readable = set(rules.exchanges_with(idx, m, invitee))
        readable.add(invitee)
        for p in members.participants:
            if p.user_id not in m.present and rules.may_talk(idx, m, invitee, p.user_id):
                readable.add(p.user_id)
        return frozenset(readable)

    def recipients(self, members: DiscussionMembers) -> tuple[UserId, ...]:
        """Present participants who receive messages: in the directory, discussions on (G2).

        In joining order; the sender is included (the caller skips them if it must).
        """
        return self._membership(members).recipients

    # ------------------------------------------------------------------ G7, leaving

    def check_invite(
        self, inviter: UserId, members: DiscussionMembers, invitee: UserId, now: datetime
    ) -> Decision:
        """May ``inviter`` bring ``invitee`` into the discussion ``members`` at ``now``?

        Precedence: unauthenticated, G1, G2, G3 (refused outside the window
        even in defer mode), ``not_participant`` (inviter not present),
        ``cannot_invite`` (not a teacher or staff), ``already_participant``,
        then G5 from the inviter (:meth:`start_refusal`).
        """
        access = self._access.get(inviter, _UNAUTHENTICATED)
        if not access.allowed:
            return access
        if not self.window.is_open(now):
            return self._outside_hours(self._opens_at(now))
        m = self._membership(members)
        if inviter not in m.present:
            return _not_participant(m.id)
        if not rules.may_invite(self._index.users[inviter]):
            return _CANNOT_INVITE
        if invitee in m.present:
            user = self._index.users.get(invitee)
            return refuse(ErrorCode.ALREADY_PARTICIPANT, params={
                "discussion": m.id, "user": person(user) if user else {"id": invitee}})
        return self.start_refusal(inviter, invitee)

    def check_leave(self, user_id: UserId, members: DiscussionMembers) -> Decision:
        """Leaving is allowed at any hour, whatever the switches.

        Only ``unauthenticated`` (not in the directory) and ``not_participant`` refuse.
        """
        if user_id not in self._index.users:
            return _UNAUTHENTICATED
        if user_id not in self._membership(members).present:
            return _not_participant(members.id)
        return ALLOW

    # ------------------------------------------------------------------ G8

    def check_broadcast(
        self, sender: UserId, target: BroadcastTarget, now: datetime
    ) -> tuple[Decision, tuple[UserId, ...]]:
        """May ``sender`` send information or a poll to ``target``, and who receives it?

        Precedence: unauthenticated, G1, G2, G3 (refused, or held until the
        opening in defer mode), then G8 (:func:`~server.gatekeeper.broadcast.broadcast_refusal`).
        The recipients, sorted, leave out the sender and switched-off users;
        a refusal comes with ``()``.
        """
        access = self._access.get(sender, _UNAUTHENTICATED)
        if not access.allowed:
            return access, ()
        hold_until: datetime | None = None
        if not self.window.is_open(now):
            opens_at = self._opens_at(now)
            if not self._defer:
                return self._outside_hours(opens_at), ()
            hold_until = opens_at
        index = self._index
        user = index.users[sender]
        refusal = broadcast_refusal(index, user, target)
        if refusal is not None:
            return refusal, ()
        decision = ALLOW if hold_until is None else hold(hold_until)
        return decision, broadcast_recipients(index, user, target)

    def broadcast_scope(self, sender: UserId) -> tuple[Decision, BroadcastScope | None]:
        """The groups ``sender`` may address, for a picker: G1, G2 then G8 (not G3:
        a broadcast can be written at any hour, and is refused or held when sent)."""
        access = self._access.get(sender, _UNAUTHENTICATED)
        if not access.allowed:
            return access, None
        scope, refusal = broadcast_scope(self._index, self._index.users[sender])
        return (ALLOW, scope) if refusal is None else (refusal, None)

    def may_broadcast_to(self, sender: UserId, y: UserId) -> bool:
        """G8 for one person: may ``sender`` address ``y`` (active, G2 included)?"""
        index = self._index
        user = index.users.get(sender)
        return (user is not None and y in index.active
                and may_broadcast_to(index, user, y))

    def check_vote(self, user_id: UserId, deadline: datetime, now: datetime) -> Decision:
        """May ``user_id`` vote at ``now`` in a poll closing at ``deadline``?

        Precedence: unauthenticated, G1, G2, G3 (refused even in defer mode:
        a vote is not held), then ``poll_closed`` once ``now >= deadline``.
        Whether the user is among the poll's recipients is the caller's check.
        """
        access = self._access.get(user_id, _UNAUTHENTICATED)
        if not access.allowed:
            return access
        if not self.window.is_open(now):
            return self._outside_hours(self._opens_at(now))
        if now >= deadline:
            return refuse(ErrorCode.POLL_CLOSED, params={
                "deadline": deadline.isoformat().replace("+00:00", "Z")})
        return ALLOW

    # ------------------------------------------------------------------ internals

    def _membership(self, members: DiscussionMembers) -> rules.Membership:
        cache = self._memberships
        m = cache.get(members.id)
        if m is not None and m.version == members.version:
            return m
        m = rules.membership(self._index, members)
        # Re-inserting moves the discussion to the young end of the eviction order.
        cache.pop(members.id, None)
        if len(cache) >= self._cache_size:
            del cache[next(iter(cache))]
        cache[members.id] = m
        return m

    def _opens_at(self, now: datetime) -> datetime:
        opens_at = self.window.state(now).opens_at
        assert opens_at is not None  # only called when the window is closed
        return opens_at

    def _outside_hours(self, opens_at: datetime) -> Decision:
        return outside_hours(self.window, opens_at)

    def _profile_disabled(self, user: User) -> Decision:
        profile = self.state.directory.profiles.get(user.profile)
        return refuse(ErrorCode.PROFILE_DISABLED, params={
            "profile": user.profile, "profile_name": profile.name if profile else user.profile})


def _not_participant(d: DiscussionId) -> Decision:
    return refuse(ErrorCode.NOT_PARTICIPANT, params={"discussion": d})


def _group_refusal(group: Group) -> Decision:
    # The same code as a forbidden individual; the class id is the one given.
    return refuse(ErrorCode.RECIPIENT_NOT_ALLOWED,
                  f"Vous ne pouvez pas écrire au groupe {group.kind.value!r} de la classe "
                  f"{group.class_id!r}.",
                  params={"group": {"kind": group.kind.value, "class": group.class_id}})
