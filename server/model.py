"""The school's vocabulary as frozen values: people, classes, settings, discussions.

Nothing here does I/O or knows about time beyond carrying it. Every other layer
speaks in these types. Identifiers are plain strings (users, classes, profiles,
establishments) or integers (discussions) wrapped in ``NewType`` so that mypy
keeps a user id from being passed where a class id is expected.

Glossary (one English term per SPEC concept):

- *establishment* / *school*: one school with its own directory and settings
  (``SchoolId``). Everything carries it.
- *profile*: the web-space profile a user belongs to (``students-lycee``…);
  discussions can be switched off per profile (G2).
- *delegate*: a parent elected to represent the parents of a class.
- *discussion*: a conversation with participants; *participant*: a user in a
  discussion, with who brought them in (``invited_by``) and when they left.
- *supervisor*: a teacher or staff participant who brought others in (G6).
- *broadcast*: one-way information or a poll to an audience (G8).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, time
from typing import NewType

__all__ = [
    "DEFAULT_PREFERENCES",
    "DEFAULT_SETTINGS",
    "Audience",
    "ClassId",
    "ContactPreferences",
    "Directory",
    "DiscussionId",
    "DiscussionMembers",
    "Hours",
    "OutsideHours",
    "Participant",
    "Profile",
    "ProfileId",
    "Relation",
    "Role",
    "School",
    "SchoolClass",
    "SchoolId",
    "SchoolSettings",
    "SchoolState",
    "StartLimits",
    "User",
    "UserId",
    "UserPreferences",
]

SchoolId = NewType("SchoolId", str)
UserId = NewType("UserId", str)
ClassId = NewType("ClassId", str)
ProfileId = NewType("ProfileId", str)
DiscussionId = NewType("DiscussionId", int)


class Role(enum.StrEnum):
    """The four roles of SPEC §1."""

    TEACHER = "teacher"
    STAFF = "staff"
    STUDENT = "student"
    PARENT = "parent"


class Relation(enum.StrEnum):
    """What a parent is to one of their children, for labels such as « Claire André,
    mère de Léa André (6e A) ». Clients translate the code; ``guardian`` (« responsable »)
    is the default when the directory does not say."""

    MOTHER = "mother"
    FATHER = "father"
    STEPMOTHER = "stepmother"
    STEPFATHER = "stepfather"
    GRANDMOTHER = "grandmother"
    GRANDFATHER = "grandfather"
    LEGAL_GUARDIAN = "legal_guardian"
    GUARDIAN = "guardian"


# --------------------------------------------------------------------------- directory


@dataclass(frozen=True, slots=True)
class School:
    """An establishment's identity; its time zone lives in :class:`SchoolSettings`."""

    id: SchoolId
    name: str


@dataclass(frozen=True, slots=True)
class Profile:
    """A web-space profile (a group of users the admin can switch off at once)."""

    id: ProfileId
    name: str


@dataclass(frozen=True, slots=True)
class SchoolClass:
    """A class (``2nde A``); ``level`` is free text such as ``lycee`` or ``college``."""

    id: ClassId
    name: str
    level: str = ""


@dataclass(frozen=True, slots=True)
class User:
    """A person of the directory.

    Only the fields of the user's role are meaningful: ``class_id`` for a
    student, ``children``, ``relations`` and ``delegate_of`` for a parent,
    ``teaches`` for a teacher, ``admin`` for staff. Others are empty.
    ``relations`` holds the links whose relation the directory gives, in
    ``children`` order (see :meth:`relation_to`).
    """

    id: UserId
    role: Role
    first_name: str
    last_name: str
    profile: ProfileId
    class_id: ClassId | None = None
    children: tuple[UserId, ...] = ()
    delegate_of: frozenset[ClassId] = frozenset()
    teaches: frozenset[ClassId] = frozenset()
    admin: bool = False
    relations: tuple[tuple[UserId, Relation], ...] = ()

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    def relation_to(self, child: UserId) -> Relation:
        """What this parent is to ``child``: as the directory says, else ``guardian``."""
        for child_id, relation in self.relations:
            if child_id == child:
                return relation
        return Relation.GUARDIAN


@dataclass(frozen=True, slots=True)
class Directory:
    """A whole school directory, as imported: validated, self-consistent.

    ``timezone`` is the school's time zone as the file gives it, or ``None``
    when the file does not say (the school keeps its current setting, which
    starts as Europe/Paris). A directory loaded from the store always has it.
    """

    school: School
    timezone: str | None
    profiles: Mapping[ProfileId, Profile]
    classes: Mapping[ClassId, SchoolClass]
    users: Mapping[UserId, User]


# --------------------------------------------------------------------------- settings


class OutsideHours(enum.StrEnum):
    """What happens to a message written outside the allowed hours (G3)."""

    REFUSE = "refuse"
    DEFER = "defer"


@dataclass(frozen=True, slots=True)
class Hours:
    """The allowed-hours window, ``[start, end)`` in the school's local time."""

    enabled: bool = True
    start: time = time(7, 0)
    end: time = time(20, 0)
    outside: OutsideHours = OutsideHours.REFUSE


@dataclass(frozen=True, slots=True)
class StartLimits:
    """How many discussions one user may start in any rolling hour and day (held starts
    included), so that one account cannot bury everyone's list under new discussions."""

    per_hour: int = 30
    per_day: int = 100


@dataclass(frozen=True, slots=True)
class SchoolSettings:
    """Establishment-wide settings (SPEC §2), with their defaults."""

    discussions_enabled: bool = True
    parent_messaging_enabled: bool = False
    hours: Hours = field(default_factory=Hours)
    timezone: str = "Europe/Paris"
    disabled_profiles: frozenset[ProfileId] = frozenset()
    start_limits: StartLimits = field(default_factory=StartLimits)


@dataclass(frozen=True, slots=True)
class Audience:
    """Whether a teacher accepts a group, optionally limited to some classes.

    ``classes is None`` means every class; an empty set with ``enabled`` is the
    same as not accepting.
    """

    enabled: bool = True
    classes: frozenset[ClassId] | None = None

    def admits(self, class_id: ClassId | None) -> bool:
        if not self.enabled:
            return False
        return self.classes is None or (class_id is not None and class_id in self.classes)


@dataclass(frozen=True, slots=True)
class ContactPreferences:
    """A teacher's "Préférences de contact": who may start a discussion with her."""

    students: Audience = Audience()
    parents: Audience = Audience()
    teachers: bool = True
    staff: bool = True


@dataclass(frozen=True, slots=True)
class UserPreferences:
    """Per-user settings; only the ones of the user's role matter."""

    can_initiate: bool = True  # students, set by the admin (G4)
    accepts: ContactPreferences = ContactPreferences()  # teachers, set by themselves
    parent_messaging_opt_in: bool = False  # parents, set by themselves


DEFAULT_SETTINGS = SchoolSettings()
DEFAULT_PREFERENCES = UserPreferences()


@dataclass(frozen=True, slots=True)
class SchoolState:
    """Everything the gatekeeper needs about one school, at one version.

    ``version`` increases with every change to the directory, the settings or a
    preference; caches keyed on it are invalidated by construction.
    ``directory_version`` increases only with directory imports, so that a
    settings change can reuse the (large) directory already loaded.
    ``preferences`` holds only users whose preferences differ from the defaults.
    """

    directory: Directory
    settings: SchoolSettings
    preferences: Mapping[UserId, UserPreferences]
    version: int
    directory_version: int = 0

    def preferences_of(self, user_id: UserId) -> UserPreferences:
        return self.preferences.get(user_id, DEFAULT_PREFERENCES)


# --------------------------------------------------------------------------- discussions


@dataclass(frozen=True, slots=True)
class Participant:
    """A user's membership of a discussion.

    ``invited_by`` is who brought them in (the creator for the first
    recipients, the inviter later); ``None`` for the creator. ``left_at`` is
    set once they leave.
    """

    user_id: UserId
    invited_by: UserId | None
    joined_at: datetime
    left_at: datetime | None = None

    @property
    def present(self) -> bool:
        return self.left_at is None


@dataclass(frozen=True, slots=True)
class DiscussionMembers:
    """Who is (and was) in a discussion, at a membership ``version``.

    The version increases at each join or leave, so a decision computed for
    ``(id, version)`` under one :class:`SchoolState` version stays valid until
    either changes.
    """

    id: DiscussionId
    version: int
    participants: tuple[Participant, ...]

    def present(self) -> tuple[Participant, ...]:
        return tuple(p for p in self.participants if p.left_at is None)

    def get(self, user_id: UserId) -> Participant | None:
        for p in self.participants:
            if p.user_id == user_id:
                return p
        return None

    def as_seen_by(self, user_id: UserId) -> tuple[Participant, ...]:
        """The participants as ``user_id`` may see them: everyone while they are present;
        once they left, the discussion as it was then — nobody who joined later, and
        those who left afterwards still shown present (what happens after is not theirs
        to know). A participant who came back after them is left out (their earlier stay
        is not kept)."""
        me = self.get(user_id)
        if me is None or me.left_at is None:
            return self.participants
        gone = me.left_at
        return tuple(
            p if p.left_at is None or p.left_at <= gone else replace(p, left_at=None)
            for p in self.participants
            if p.user_id == user_id or p.joined_at <= gone
        )
