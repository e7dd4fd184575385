"""Broadcasts and polls (G8): whom a sender may address, and who then receives.

A :class:`BroadcastTarget` describes an audience; :func:`broadcast_refusal`
decides whether the sender may address it (G8 only: the caller applies G1–G3
first) and :func:`broadcast_recipients` resolves it to user ids.

G8 ("diffuser des informations ou effectuer des sondages"):

- staff may address anyone;
- a teacher, the students and/or parents of classes she teaches (the parents
  of a class are the parents with a child in it);
- a delegate parent, the parents of classes they are delegate of, only while
  parent messaging is on and they have opted in themselves; the audience is
  then the *opted-in* parents of those classes;
- students and non-delegate parents, nobody.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from server.errors import ErrorCode
from server.gatekeeper.decision import Decision, refuse
from server.gatekeeper.index import SchoolIndex
from server.model import ClassId, Role, User, UserId

__all__ = [
    "BroadcastScope",
    "BroadcastTarget",
    "broadcast_recipients",
    "broadcast_refusal",
    "broadcast_scope",
    "may_broadcast_to",
]


@dataclass(frozen=True, slots=True)
class BroadcastTarget:
    """An audience: people of some ``roles`` in some ``classes``, plus explicit ``users``.

    - ``roles`` and ``classes`` select by group: with ``classes=None`` every
      user of those roles in the school; with a set of classes, the students
      of those classes, the parents with a child in them, the teachers who
      teach them (staff belong to no class, so they are reached only with
      ``classes=None`` or by name).
    - ``users`` adds people by id. Each must be someone the sender may
      address, else the whole broadcast is refused (an unknown id or a user of
      another school alike). Naming oneself is harmless: the sender is left out.

    The audience is the union of both parts, without the sender and without
    users whose profile has discussions off (they receive nothing, G2).
    """

    roles: frozenset[Role] = frozenset()
    classes: frozenset[ClassId] | None = None
    users: frozenset[UserId] = frozenset()

    @property
    def empty(self) -> bool:
        """Whether the target names no group and no person (a malformed request)."""
        return not self.roles and not self.users


@dataclass(frozen=True, slots=True)
class BroadcastScope:
    """The groups a sender may address: ``roles`` in ``classes`` (``None``: the whole school).

    People can also be named one by one (see :func:`may_broadcast_to`).
    """

    roles: frozenset[Role]
    classes: frozenset[ClassId] | None


_TEACHER_ROLES = frozenset({Role.STUDENT, Role.PARENT})
_DELEGATE_ROLES = frozenset({Role.PARENT})


def may_broadcast_to(idx: SchoolIndex, sender: User, y_id: UserId) -> bool:
    """G8 per recipient: may ``sender`` address user ``y_id`` (ignoring G1–G3 and G2 of Y)?"""
    y = idx.users.get(y_id)
    if y is None or y_id == sender.id:
        return False
    if sender.role is Role.STAFF:
        return True
    if sender.role is Role.TEACHER:
        if y.role is Role.STUDENT:
            return y.class_id is not None and y.class_id in sender.teaches
        return y.role is Role.PARENT and not sender.teaches.isdisjoint(idx.child_classes(y_id))
    if sender.role is Role.PARENT and sender.delegate_of:
        return (
            y.role is Role.PARENT
            and idx.parent_messaging_enabled
            and idx.opted_in(sender.id)
            and idx.opted_in(y_id)
            and not sender.delegate_of.isdisjoint(idx.child_classes(y_id))
        )
    return False


# One refusal per reason, shared (decisions are immutable). ``reason`` in the params
# lets a client word it: ``role`` (students and non-delegate parents address nobody),
# ``teacher_scope``, ``delegate_scope``, ``recipient`` (one person named is out of reach).
_NO_AUDIENCE = refuse(ErrorCode.BAD_REQUEST, "Une diffusion a besoin d'un public : des "
                      "rôles ou des personnes.", params={"field": "to"})
_TEACHER_SCOPE = refuse(
    ErrorCode.BROADCAST_NOT_ALLOWED,
    "Un professeur ne peut envoyer d'informations ou de sondages qu'aux élèves et aux "
    "parents de ses classes.", params={"reason": "teacher_scope"})
_DELEGATE_SCOPE = refuse(
    ErrorCode.BROADCAST_NOT_ALLOWED,
    "Un parent délégué ne peut envoyer d'informations ou de sondages qu'aux parents des "
    "classes qu'il représente.", params={"reason": "delegate_scope"})
_DELEGATE_SWITCH = refuse(ErrorCode.PARENT_MESSAGING_DISABLED)
_DELEGATE_OPT_IN = refuse(
    ErrorCode.NOT_OPTED_IN,
    "Activez la messagerie entre parents pour envoyer des informations aux parents de "
    "votre classe.")
_ROLE = refuse(ErrorCode.BROADCAST_NOT_ALLOWED, params={"reason": "role"})
_RECIPIENT = refuse(ErrorCode.BROADCAST_NOT_ALLOWED, params={"reason": "recipient"})


def broadcast_refusal(
    idx: SchoolIndex, sender: User, target: BroadcastTarget
) -> Decision | None:
    """``None`` if ``sender`` may address ``target`` (G8), else the refusal.

    An empty target is ``bad_request``. A delegate is refused with
    ``parent_messaging_disabled`` (the school's switch) or ``not_opted_in``
    (their own) when those switches are the reason; every other refusal is
    ``broadcast_not_allowed``, also for a named parent who has not opted in.
    """
    if target.empty:
        return _NO_AUDIENCE
    role = sender.role
    if role is Role.STAFF:
        pass  # staff to anyone in the school
    elif role is Role.TEACHER:
        if target.roles and not (
            target.roles <= _TEACHER_ROLES
            and target.classes is not None
            and target.classes <= sender.teaches
        ):
            return _TEACHER_SCOPE
    elif role is Role.PARENT and sender.delegate_of:
        if not idx.parent_messaging_enabled:
            return _DELEGATE_SWITCH
        if not idx.opted_in(sender.id):
            return _DELEGATE_OPT_IN
        if target.roles and not (
            target.roles <= _DELEGATE_ROLES
            and target.classes is not None
            and target.classes <= sender.delegate_of
        ):
            return _DELEGATE_SCOPE
    else:
        return _ROLE
    for y_id in target.users:
        if y_id == sender.id:
            continue  # the sender is left out, not an error
        if not may_broadcast_to(idx, sender, y_id):
            # One code whatever the reason (unknown, another class, not opted in):
            # a parent's choice is not told to the delegate (SPEC "Clarifications").
            return _RECIPIENT
    return None


def broadcast_scope(
    idx: SchoolIndex, sender: User
) -> tuple[BroadcastScope | None, Decision | None]:
    """What ``sender`` may address (G8), or why nothing: for a recipient picker."""
    if sender.role is Role.STAFF:
        return BroadcastScope(frozenset(Role), None), None
    if sender.role is Role.TEACHER and sender.teaches:
        return BroadcastScope(_TEACHER_ROLES, sender.teaches), None
    if sender.role is Role.PARENT and sender.delegate_of:
        scope = BroadcastScope(_DELEGATE_ROLES, sender.delegate_of)
        refusal = broadcast_refusal(
            idx, sender, BroadcastTarget(roles=scope.roles, classes=scope.classes))
        return (scope, None) if refusal is None else (None, refusal)
    return None, _ROLE


def broadcast_recipients(
    idx: SchoolIndex, sender: User, target: BroadcastTarget
) -> tuple[UserId, ...]:
    """Who receives a broadcast ``broadcast_refusal`` allowed: sorted ids.

    The sender, users with discussions off (G2) and anyone G8 does not let the
    sender address (for a delegate: parents who have not opted in) are left out.
    """
    active = idx.active
    return tuple(
        sorted(
            y_id
            for y_id in set(_resolve(idx, target))
            if y_id in active and may_broadcast_to(idx, sender, y_id)
        )
    )


def _resolve(idx: SchoolIndex, target: BroadcastTarget) -> Iterator[UserId]:
    yield from target.users
    if not target.roles:
        return
    if target.classes is None:
        yield from (uid for uid, u in idx.users.items() if u.role in target.roles)
        return
    for class_id in target.classes:
        if Role.STUDENT in target.roles:
            yield from idx.class_students(class_id)
        if Role.PARENT in target.roles:
            yield from idx.class_parents(class_id)
        if Role.TEACHER in target.roles:
            yield from idx.class_teachers(class_id)
