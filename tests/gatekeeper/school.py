"""Small hand-built schools for the gatekeeper tests.

:func:`standard_school` is the cast every rule test shares (see its
docstring); :class:`SchoolBuilder` tweaks settings and preferences fluently,
and :func:`members` / :func:`joined` build discussions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from server.gatekeeper import Gatekeeper
from server.model import (
    DEFAULT_PREFERENCES,
    Audience,
    ClassId,
    Directory,
    DiscussionId,
    DiscussionMembers,
    OutsideHours,
    Participant,
    Profile,
    ProfileId,
    Role,
    School,
    SchoolClass,
    SchoolId,
    SchoolSettings,
    SchoolState,
    User,
    UserId,
)

__all__ = [
    "CLOSED",
    "NEXT_OPENING",
    "OPEN",
    "SchoolBuilder",
    "U",
    "joined",
    "left",
    "members",
    "standard_school",
]

# A Tuesday in May (CEST, UTC+2): 12:00 and 23:00 local.
OPEN = datetime(2026, 5, 12, 10, 0, tzinfo=UTC)
CLOSED = datetime(2026, 5, 12, 21, 0, tzinfo=UTC)
NEXT_OPENING = datetime(2026, 5, 13, 5, 0, tzinfo=UTC)  # 07:00 local, Wednesday

_JOINED = datetime(2026, 5, 11, 9, 0, tzinfo=UTC)
_LEFT = datetime(2026, 5, 11, 10, 0, tzinfo=UTC)


def U(raw: str) -> UserId:
    """A user id (short name to keep tables readable)."""
    return UserId(raw)


class SchoolBuilder:
    """A mutable recipe for a :class:`SchoolState`; every setter returns ``self``."""

    def __init__(self, school_id: str = "clg-jaures") -> None:
        self.school = School(SchoolId(school_id), f"School {school_id}")
        self.classes: dict[ClassId, SchoolClass] = {}
        self.profiles: dict[ProfileId, Profile] = {}
        self.users: dict[UserId, User] = {}
        self.settings = SchoolSettings()
        self.preferences: dict[UserId, Any] = {}
        self.version = 1

    # ------------------------------------------------------------------ directory

    def add_class(self, class_id: str, level: str = "college") -> SchoolBuilder:
        cid = ClassId(class_id)
        self.classes[cid] = SchoolClass(cid, class_id, level)
        return self

    def _add(self, user_id: str, role: Role, name: str, profile: str, **fields: Any) -> UserId:
        first, _, last = name.partition(" ")
        pid = ProfileId(profile)
        self.profiles.setdefault(pid, Profile(pid, profile))
        uid = UserId(user_id)
        self.users[uid] = User(uid, role, first, last, pid, **fields)
        return uid

    def teacher(
        self, user_id: str, name: str, teaches: Iterable[str] = (), profile: str = "teachers"
    ) -> UserId:
        return self._add(
            user_id, Role.TEACHER, name, profile, teaches=frozenset(map(ClassId, teaches))
        )

    def staff(self, user_id: str, name: str, admin: bool = False, profile: str = "staff") -> UserId:
        return self._add(user_id, Role.STAFF, name, profile, admin=admin)

    def student(
        self, user_id: str, name: str, class_id: str, profile: str = "students-college"
    ) -> UserId:
        return self._add(user_id, Role.STUDENT, name, profile, class_id=ClassId(class_id))

    def parent(
        self,
        user_id: str,
        name: str,
        children: Iterable[str] = (),
        delegate_of: Iterable[str] = (),
        profile: str = "parents",
    ) -> UserId:
        return self._add(
            user_id,
            Role.PARENT,
            name,
            profile,
            children=tuple(map(UserId, children)),
            delegate_of=frozenset(map(ClassId, delegate_of)),
        )

    def remove(self, *user_ids: str) -> SchoolBuilder:
        for uid in user_ids:
            del self.users[UserId(uid)]
        return self

    # ------------------------------------------------------------------ settings

    def set(self, **changes: Any) -> SchoolBuilder:
        """Change establishment settings (``discussions_enabled=False``…)."""
        self.settings = replace(self.settings, **changes)
        return self

    def hours(self, **changes: Any) -> SchoolBuilder:
        """Change the window (``enabled``, ``start``, ``end``, ``outside``)."""
        return self.set(hours=replace(self.settings.hours, **changes))

    def defer(self) -> SchoolBuilder:
        return self.hours(outside=OutsideHours.DEFER)

    def switch_off(self, *profiles: str) -> SchoolBuilder:
        """G2: switch discussions off for whole profiles."""
        off = self.settings.disabled_profiles | frozenset(map(ProfileId, profiles))
        return self.set(disabled_profiles=off)

    def parent_messaging(self, on: bool = True) -> SchoolBuilder:
        return self.set(parent_messaging_enabled=on)

    # ------------------------------------------------------------------ preferences

    def prefs(self, user_id: str, **changes: Any) -> SchoolBuilder:
        uid = UserId(user_id)
        self.preferences[uid] = replace(self.preferences.get(uid, DEFAULT_PREFERENCES), **changes)
        return self

    def accepts(self, teacher: str, **changes: Any) -> SchoolBuilder:
        """A teacher's contact preferences: ``students=False``, ``parents={"6A"}``…

        ``True``/``False`` switch a group on or off; a set of class ids limits it.
        """
        uid = UserId(teacher)
        current = self.preferences.get(uid, DEFAULT_PREFERENCES).accepts
        fixed: dict[str, Any] = {}
        for key, value in changes.items():
            if key in ("students", "parents") and not isinstance(value, Audience):
                if isinstance(value, bool):
                    value = Audience(enabled=value)
                else:
                    value = Audience(classes=frozenset(map(ClassId, value)))
            fixed[key] = value
        return self.prefs(teacher, accepts=replace(current, **fixed))

    def opt_in(self, *parents: str, on: bool = True) -> SchoolBuilder:
        for parent in parents:
            self.prefs(parent, parent_messaging_opt_in=on)
        return self

    def cannot_initiate(self, *students: str) -> SchoolBuilder:
        for student in students:
            self.prefs(student, can_initiate=False)
        return self

    # ------------------------------------------------------------------ results

    def state(self) -> SchoolState:
        directory = Directory(
            school=self.school,
            timezone=self.settings.timezone,
            profiles=dict(self.profiles),
            classes=dict(self.classes),
            users=dict(self.users),
        )
        return SchoolState(directory, self.settings, dict(self.preferences), self.version)

    def gatekeeper(self) -> Gatekeeper:
        return Gatekeeper(self.state())


def standard_school() -> SchoolBuilder:
    """The shared cast (a collège and one lycée class), default settings.

    ====== ============================ =========================================
    id     name                         facts
    ====== ============================ =========================================
    t.math Marie Curie                  teaches 6A, 6B
    t.art  Claude Monet                 teaches 6A
    t.hist Jules Michelet               teaches 2A
    s.cpe  Anne Dubois                  staff, profile ``vie-scolaire``
    s.adm  Paul Martin                  staff, admin, profile ``administration``
    st.6a1 Léa Bernard                  6A
    st.6a2 Hugo Petit                   6A
    st.6a3 Zoé Garnier                  6A
    st.6b1 Inès Moreau                  6B
    st.2a1 Tom Roux                     2A, profile ``students-lycee``
    p.6a1  Sophie Bernard               child st.6a1, delegate of 6A
    p.6a2  Marc Petit                   child st.6a2
    p.6a3  Julie Garnier                child st.6a3
    p.6b1  Nadia Moreau                 child st.6b1, delegate of 6B
    p.2a1  Luc Roux                     child st.2a1
    p.two  Eva Roux                     children st.2a1 (2A) and st.6b1 (6B)
    ====== ============================ =========================================
    """
    b = SchoolBuilder()
    for class_id in ("6A", "6B"):
        b.add_class(class_id)
    b.add_class("2A", "lycee")
    b.teacher("t.math", "Marie Curie", teaches=("6A", "6B"))
    b.teacher("t.art", "Claude Monet", teaches=("6A",))
    b.teacher("t.hist", "Jules Michelet", teaches=("2A",))
    b.staff("s.cpe", "Anne Dubois", profile="vie-scolaire")
    b.staff("s.adm", "Paul Martin", admin=True, profile="administration")
    b.student("st.6a1", "Léa Bernard", "6A")
    b.student("st.6a2", "Hugo Petit", "6A")
    b.student("st.6a3", "Zoé Garnier", "6A")
    b.student("st.6b1", "Inès Moreau", "6B")
    b.student("st.2a1", "Tom Roux", "2A", profile="students-lycee")
    b.parent("p.6a1", "Sophie Bernard", children=("st.6a1",), delegate_of=("6A",))
    b.parent("p.6a2", "Marc Petit", children=("st.6a2",))
    b.parent("p.6a3", "Julie Garnier", children=("st.6a3",))
    b.parent("p.6b1", "Nadia Moreau", children=("st.6b1",), delegate_of=("6B",))
    b.parent("p.2a1", "Luc Roux", children=("st.2a1",))
    b.parent("p.two", "Eva Roux", children=("st.2a1", "st.6b1"))
    return b


def joined(user: str, by: str | None = None) -> Participant:
    """A present participant brought in by ``by`` (``None``: the creator)."""
    return Participant(UserId(user), UserId(by) if by else None, _JOINED)


def left(user: str, by: str | None = None) -> Participant:
    """A participant who has left."""
    return Participant(UserId(user), UserId(by) if by else None, _JOINED, _LEFT)


def members(*participants: Participant, id: int = 1, version: int = 1) -> DiscussionMembers:
    """A discussion's membership."""
    return DiscussionMembers(DiscussionId(id), version, tuple(participants))
