"""A school's directory, settings and preferences, indexed for the rules.

:class:`SchoolIndex` is built once per :class:`~server.model.SchoolState` so
that each rule in :mod:`server.gatekeeper.rules` is a few set lookups: who is
reachable (G2), which classes a parent's children are in, who opted in, each
teacher's contact preferences.
"""

from __future__ import annotations

from collections.abc import Mapping

from server.model import (
    DEFAULT_PREFERENCES,
    ClassId,
    ContactPreferences,
    Role,
    SchoolState,
    User,
    UserId,
)

__all__ = ["SchoolIndex"]

_NO_CLASSES: frozenset[ClassId] = frozenset()
_NOBODY: frozenset[UserId] = frozenset()


class SchoolIndex:
    """The facts of one :class:`~server.model.SchoolState`, indexed; read-only after ``__init__``.

    - ``users``: the directory (anyone absent is unknown: other schools included).
    - ``active``: users whose profile has discussions on (G2).
    - ``classes``: the classes of the directory.
    - ``parent_messaging_enabled``: the establishment switch of the parent rule.
    """

    __slots__ = (
        "_accepts",
        "_cannot_initiate",
        "_child_classes",
        "_class_parents",
        "_class_students",
        "_class_teachers",
        "_opted_in",
        "active",
        "classes",
        "parent_messaging_enabled",
        "users",
    )

    def __init__(self, state: SchoolState) -> None:
        settings = state.settings
        users: Mapping[UserId, User] = state.directory.users
        self.users = users
        self.classes: frozenset[ClassId] = frozenset(state.directory.classes)
        self.parent_messaging_enabled = settings.parent_messaging_enabled
        disabled = settings.disabled_profiles
        self.active: frozenset[UserId] = frozenset(
            uid for uid, u in users.items() if u.profile not in disabled
        )

        # Preferences matter only for the role they belong to (model.UserPreferences).
        self._accepts: dict[UserId, ContactPreferences] = {}
        self._cannot_initiate: set[UserId] = set()
        self._opted_in: set[UserId] = set()
        for uid, prefs in state.preferences.items():
            user = users.get(uid)
            if user is None:
                continue
            if user.role is Role.TEACHER:
                self._accepts[uid] = prefs.accepts
            elif user.role is Role.STUDENT and not prefs.can_initiate:
                self._cannot_initiate.add(uid)
            elif user.role is Role.PARENT and prefs.parent_messaging_opt_in:
                self._opted_in.add(uid)

        class_students: dict[ClassId, set[UserId]] = {}
        class_teachers: dict[ClassId, set[UserId]] = {}
        class_parents: dict[ClassId, set[UserId]] = {}
        self._child_classes: dict[UserId, frozenset[ClassId]] = {}
        for uid, user in users.items():
            if user.role is Role.STUDENT and user.class_id is not None:
                class_students.setdefault(user.class_id, set()).add(uid)
            elif user.role is Role.TEACHER:
                for class_id in user.teaches:
                    class_teachers.setdefault(class_id, set()).add(uid)
        for uid, user in users.items():
            if user.role is not Role.PARENT:
                continue
            # A child who left the directory (or has no class) links to no class.
            classes = frozenset(
                child.class_id
                for child_id in user.children
                if (child := users.get(child_id)) is not None
                and child.role is Role.STUDENT
                and child.class_id is not None
            )
            if classes:
                self._child_classes[uid] = classes
                for class_id in classes:
                    class_parents.setdefault(class_id, set()).add(uid)
        self._class_students = {c: frozenset(s) for c, s in class_students.items()}
        self._class_teachers = {c: frozenset(s) for c, s in class_teachers.items()}
        self._class_parents = {c: frozenset(s) for c, s in class_parents.items()}

    def accepts(self, teacher: UserId) -> ContactPreferences:
        """A teacher's contact preferences (the defaults accept everyone)."""
        return self._accepts.get(teacher, DEFAULT_PREFERENCES.accepts)

    def can_initiate(self, user_id: UserId) -> bool:
        """G4: false only for a student whose record forbids starting discussions."""
        return user_id not in self._cannot_initiate

    def opted_in(self, parent: UserId) -> bool:
        """Whether a parent switched on messaging between parents."""
        return parent in self._opted_in

    def child_classes(self, parent: UserId) -> frozenset[ClassId]:
        """The classes of a parent's children who are in the directory."""
        return self._child_classes.get(parent, _NO_CLASSES)

    def class_students(self, class_id: ClassId) -> frozenset[UserId]:
        """The students of a class."""
        return self._class_students.get(class_id, _NOBODY)

    def class_teachers(self, class_id: ClassId) -> frozenset[UserId]:
        """The teachers who teach a class."""
        return self._class_teachers.get(class_id, _NOBODY)

    def class_parents(self, class_id: ClassId) -> frozenset[UserId]:
        """Parents with a child in the class ("the parents of the class", G8)."""
        return self._class_parents.get(class_id, _NOBODY)
