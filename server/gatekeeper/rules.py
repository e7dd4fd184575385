"""The rules G4–G7 as pure predicates over a :class:`~server.gatekeeper.index.SchoolIndex`.

Nothing here knows the time, the order of checks or the wording of refusals:
:class:`~server.gatekeeper.Gatekeeper` applies the precedence (SPEC
"Clarifications") and caches. Each function answers one question of SPEC §3:

- G4 :func:`may_initiate` — may this user start discussions at all?
- G5 :func:`may_start` — may X start a discussion with Y? (:func:`start_refusal_code`
  says why not, as precisely as is useful.)
- G6 :func:`membership` / :func:`blockers` — in this discussion, who may post?
- G7 :func:`may_invite` — may this participant invite anyone?
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from server.errors import ErrorCode
from server.gatekeeper.index import SchoolIndex
from server.model import DiscussionId, DiscussionMembers, Role, User, UserId

__all__ = [
    "SUPERVISOR_ROLES",
    "Membership",
    "blockers",
    "delegate_link",
    "exchanges_with",
    "may_initiate",
    "may_invite",
    "may_start",
    "may_talk",
    "membership",
    "pair_refusal_code",
    "parents_may_talk",
    "start_refusal_code",
]

SUPERVISOR_ROLES = frozenset({Role.TEACHER, Role.STAFF})
"""The roles that invite (G7) and supervise (G6)."""


# --------------------------------------------------------------------------- G4, G7


def may_initiate(idx: SchoolIndex, user: User) -> bool:
    """G4: anyone may start discussions but a student whose record has ``can_initiate=False``."""
    return user.role is not Role.STUDENT or idx.can_initiate(user.id)


def may_invite(user: User) -> bool:
    """G7, first half: only teachers and staff invite (G5 from the inviter is the second half)."""
    return user.role in SUPERVISOR_ROLES


# --------------------------------------------------------------------------- G5


def may_start(idx: SchoolIndex, x_id: UserId, y_id: UserId) -> bool:
    """G5: may X start a discussion with recipient Y?

    False unless both are in the directory, Y is not X and Y's profile has
    discussions on (G2: a switched-off user cannot be chosen). X's own
    switches (G1, G2, G4) are not considered here: callers check them first.
    Contact preferences limit who may reach a teacher, never whom she reaches.
    """
    if x_id == y_id or y_id not in idx.active:
        return False
    x = idx.users.get(x_id)
    if x is None:
        return False
    y = idx.users[y_id]
    y_role = y.role
    if y_role is Role.STAFF:
        return True  # staff are always reachable
    x_role = x.role
    if x_role is Role.STAFF:
        return y_role is not Role.TEACHER or idx.accepts(y_id).staff
    if x_role is Role.TEACHER:
        if y_role is Role.TEACHER:
            return idx.accepts(y_id).teachers
        if y_role is Role.STUDENT:
            return y.class_id is not None and y.class_id in x.teaches
        return y_role is Role.PARENT and not x.teaches.isdisjoint(idx.child_classes(y_id))
    if x_role is Role.STUDENT:
        if y_role is not Role.TEACHER:
            return False  # students reach neither students nor parents
        class_id = x.class_id
        return (
            class_id is not None
            and class_id in y.teaches
            and idx.accepts(y_id).students.admits(class_id)
        )
    # X is a parent, the last role.
    if y_role is Role.TEACHER:
        # The same child must be both taught by Y and in a class Y accepts parents of.
        audience = idx.accepts(y_id).parents
        return any(c in y.teaches and audience.admits(c) for c in idx.child_classes(x_id))
    return y_role is Role.PARENT and parents_may_talk(idx, x, y)


def delegate_link(idx: SchoolIndex, x: User, y: User) -> bool:
    """Whether one parent is a delegate of a class where the other has a child."""
    return not x.delegate_of.isdisjoint(idx.child_classes(y.id)) or not y.delegate_of.isdisjoint(
        idx.child_classes(x.id)
    )


def parents_may_talk(idx: SchoolIndex, x: User, y: User) -> bool:
    """The parent rule: parent messaging on, both opted in, and a delegate link (either way)."""
    return (
        idx.parent_messaging_enabled
        and idx.opted_in(x.id)
        and idx.opted_in(y.id)
        and delegate_link(idx, x, y)
    )


def pair_refusal_code(idx: SchoolIndex, x: User, y: User) -> ErrorCode | None:
    """Why parent X may not talk to parent Y, when that may be told to X.

    Refusals reveal nothing X may not know (SPEC "Clarifications"), so the
    order matters:

    - without a delegate link, ``None``: opting in would not help, and
      whether Y is a parent at all is none of X's business, so the caller's
      generic code (the one an unknown id gets) is the honest one;
    - with a link, ``parent_messaging_disabled`` when the school has it off
      (a school setting, and the link is public: delegates are designated
      from the elected lists);
    - ``not_opted_in`` when X has not opted in (X's own choice);
    - ``None`` when only Y has not opted in: Y's choice is Y's, and telling it
      would distinguish it from "no link".
    """
    if x.role is not Role.PARENT or y.role is not Role.PARENT:
        return None
    if not delegate_link(idx, x, y):
        return None
    if not idx.parent_messaging_enabled:
        return ErrorCode.PARENT_MESSAGING_DISABLED
    if not idx.opted_in(x.id):
        return ErrorCode.NOT_OPTED_IN
    return None


def start_refusal_code(idx: SchoolIndex, x_id: UserId, y_id: UserId) -> ErrorCode | None:
    """``None`` if X may start with Y (G5), else the most specific code that reveals nothing.

    An unknown id, a user of another school, X itself and a switched-off user
    all give ``recipient_not_allowed``; only parent-to-parent refusals with a
    delegate link, about the school's switch or X's own opt-in, are more
    precise (:func:`pair_refusal_code`).
    """
    if may_start(idx, x_id, y_id):
        return None
    x = idx.users.get(x_id)
    y = idx.users.get(y_id)
    if x is None or y is None or x_id == y_id or y_id not in idx.active:
        return ErrorCode.RECIPIENT_NOT_ALLOWED
    return pair_refusal_code(idx, x, y) or ErrorCode.RECIPIENT_NOT_ALLOWED


# --------------------------------------------------------------------------- G6


@dataclass(frozen=True, slots=True)
class Membership:
    """The G6 facts of one discussion at one membership version, under one school state.

    - ``present``: present participants, whatever their directory status.
    - ``recipients``: present participants in the directory with discussions
      on, in joining order — the people the pair check looks at and who
      receive messages (G2: switched-off users receive nothing).
    - ``brought_by``: who brought each present participant in (``None`` for
      the creator).
    - ``supervisors``: present teachers and staff with discussions on.
    - ``supervised``: recipients brought in by one of the ``supervisors``.
    - ``posters``: recipients who may post (G6).
    - ``unreached``: present participants who are not recipients (switched
      off, or gone from the directory): what is posted now never reaches them.
    """

    id: DiscussionId
    version: int
    present: frozenset[UserId]
    recipients: tuple[UserId, ...]
    brought_by: Mapping[UserId, UserId | None]
    supervisors: frozenset[UserId]
    supervised: frozenset[UserId]
    posters: frozenset[UserId]
    unreached: frozenset[UserId]


def may_talk(idx: SchoolIndex, m: Membership, x_id: UserId, y_id: UserId) -> bool:
    """G6 pair check: G5 either way, or both brought in by supervisors who are present.

    Supervision is literal: X and Y may each have a different supervisor, but
    both supervisors must still be present (and not switched off).
    """
    return (
        (x_id in m.supervised and y_id in m.supervised)
        or may_start(idx, x_id, y_id)
        or may_start(idx, y_id, x_id)
    )


def membership(idx: SchoolIndex, members: DiscussionMembers) -> Membership:
    """Compute a discussion's :class:`Membership`, including who may post (G6).

    X may post iff :func:`may_talk` holds with every other recipient; users
    not in the directory or switched off are skipped. Cost: one pair check
    per pair of recipients, skipping pairs already known to block both.
    """
    brought_by: dict[UserId, UserId | None] = {}
    for p in members.participants:
        if p.left_at is None:
            brought_by.setdefault(p.user_id, p.invited_by)
    active = idx.active
    users = idx.users
    recipients = tuple(uid for uid in brought_by if uid in active)
    supervisors = frozenset(uid for uid in recipients if users[uid].role in SUPERVISOR_ROLES)
    supervised = frozenset(
        uid for uid in recipients if (by := brought_by[uid]) is not None and by in supervisors
    )
    posters = set(recipients)
    for i, x_id in enumerate(recipients):
        for y_id in recipients[i + 1 :]:
            if x_id not in posters and y_id not in posters:
                continue  # both already blocked: this pair changes nothing
            if x_id in supervised and y_id in supervised:
                continue
            if may_start(idx, x_id, y_id) or may_start(idx, y_id, x_id):
                continue
            posters.discard(x_id)
            posters.discard(y_id)
    return Membership(
        id=members.id,
        version=members.version,
        present=frozenset(brought_by),
        recipients=recipients,
        brought_by=brought_by,
        supervisors=supervisors,
        supervised=supervised,
        posters=frozenset(posters),
        unreached=frozenset(brought_by).difference(recipients),
    )


def blockers(idx: SchoolIndex, m: Membership, x_id: UserId) -> frozenset[UserId]:
    """The recipients of ``m`` other than X with whom X fails the G6 pair check.

    Empty means X may post (if X is a recipient). X need not be a participant:
    the answer then says whom X could post to were X let in unsupervised.
    """
    return frozenset(y for y in m.recipients if y != x_id and not may_talk(idx, m, x_id, y))


def exchanges_with(idx: SchoolIndex, m: Membership, x_id: UserId) -> frozenset[UserId]:
    """The recipients of ``m`` who may see what X does there now (typing, reading): the
    pair rule of G6 holds between them, either way, supervision included.

    Nobody if X is not in the directory or is switched off (G2); X itself is not
    counted. X need not be present (a former participant's read position): then only
    G5 links them, since supervision needs presence. A poster passes the pair check
    with every recipient, which keeps the common case to one set operation.
    """
    if x_id not in idx.active:
        return frozenset()
    if x_id in m.posters:
        return frozenset(m.recipients).difference((x_id,))
    return frozenset(y for y in m.recipients if y != x_id and may_talk(idx, m, x_id, y))
