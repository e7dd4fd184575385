"""Groups as recipients of a new discussion: « les élèves de 6e A », « les parents de
6e A », « l'équipe pédagogique de 6e A ».

A teacher or staff member may name a whole group instead of picking its members one
by one. The group is expanded when the discussion starts, to the members the sender
could start a discussion with alone (G5, G2 included); the others are *left out*, each
with a reason code, and the start goes on without them. People picked one by one keep
the rule of SPEC "Clarifications": one forbidden individual refuses the whole start.

Who may address which group:

- staff, any class's groups;
- a teacher, the groups of the classes she teaches;
- nobody else (students and parents name people one by one).

The members of a group are, from the directory: the students of the class; the parents
with a child in it ("the parents of the class", as for G8); the teachers who teach it
(the *team*). Staff belong to no class. The sender is never their own recipient and is
left out silently (not counted).

Reason codes, told to the sender only as counts per code:

- ``profile_disabled``: the member's profile has discussions off (G2);
- ``recipient_not_allowed``: any other G5 refusal (for a team, a colleague whose
  contact preferences do not accept the sender's role); like an individual refusal,
  the code does not say which preference.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from server.errors import ErrorCode
from server.gatekeeper.index import SchoolIndex
from server.gatekeeper.rules import start_refusal_code
from server.model import ClassId, Role, User, UserId

__all__ = [
    "Expansion",
    "Group",
    "GroupKind",
    "addressable_groups",
    "expand_groups",
    "group_members",
    "may_address_group",
]

_GROUP_SENDERS = frozenset({Role.TEACHER, Role.STAFF})


class GroupKind(enum.StrEnum):
    """Who in a class: its students, their parents, or its teachers."""

    STUDENTS = "students"
    PARENTS = "parents"
    TEAM = "team"


@dataclass(frozen=True, slots=True, order=True)
class Group:
    """A group of one class, e.g. ``Group(GroupKind.PARENTS, ClassId("6A"))``."""

    kind: GroupKind
    class_id: ClassId


@dataclass(frozen=True, slots=True)
class Expansion:
    """What naming some groups reaches now.

    - ``included``: the members the sender may reach, sorted;
    - ``left_out``: each other member (the sender excepted) with its reason code.
    """

    included: tuple[UserId, ...] = ()
    left_out: Mapping[UserId, ErrorCode] = field(default_factory=dict)

    def left_out_counts(self) -> dict[str, int]:
        """How many members were left out, per reason code (what the sender is told)."""
        counts: dict[str, int] = {}
        for code in self.left_out.values():
            counts[code.value] = counts.get(code.value, 0) + 1
        return dict(sorted(counts.items()))


def may_address_group(idx: SchoolIndex, sender: User, group: Group) -> bool:
    """Whether ``sender`` may name ``group`` at all (a class of the directory: any for
    staff, one she teaches for a teacher)."""
    if group.class_id not in idx.classes:
        return False
    if sender.role is Role.STAFF:
        return True
    return sender.role is Role.TEACHER and group.class_id in sender.teaches


def addressable_groups(idx: SchoolIndex, sender: User) -> tuple[Group, ...]:
    """Every group ``sender`` may name, by class then kind (students, parents, team)."""
    if sender.role not in _GROUP_SENDERS:
        return ()
    classes = idx.classes if sender.role is Role.STAFF else sender.teaches & idx.classes
    return tuple(Group(kind, c) for c in sorted(classes) for kind in GroupKind)


def group_members(idx: SchoolIndex, group: Group) -> frozenset[UserId]:
    """Everyone in ``group`` per the directory, switched off or not."""
    if group.kind is GroupKind.STUDENTS:
        return idx.class_students(group.class_id)
    if group.kind is GroupKind.PARENTS:
        return idx.class_parents(group.class_id)
    return idx.class_teachers(group.class_id)


def expand_groups(idx: SchoolIndex, sender: User, groups: Iterable[Group]) -> Expansion:
    """Split the members of ``groups`` into those ``sender`` may reach (G5 one by one:
    exactly those a start with them alone would accept) and those left out, with why.

    The caller has checked :func:`may_address_group` for each group and the sender's
    own switches (G1–G4).
    """
    members: set[UserId] = set()
    for group in groups:
        members.update(group_members(idx, group))
    members.discard(sender.id)
    included: list[UserId] = []
    left_out: dict[UserId, ErrorCode] = {}
    for y in sorted(members):
        code = start_refusal_code(idx, sender.id, y)
        if code is None:
            included.append(y)
        elif y not in idx.active:
            left_out[y] = ErrorCode.PROFILE_DISABLED
        else:
            left_out[y] = code
    return Expansion(tuple(included), left_out)
