"""Who talks to whom in a load test, chosen so that the school's rules allow it.

The rules (``docs/policy.md``) decide the shape of the plan:

- a **class discussion** is started by a teacher who teaches the class (G5: a
  teacher may start with students of classes she teaches), with the class's
  students as recipients; the students may then post, because the teacher brought
  them all in and stays present (G6);
- a **parent–teacher thread** is started by a parent with a teacher of their
  child's class (G5), and only those two take part: a second parent in the thread
  would make a parent–parent pair, refused unless parent messaging is on (G6).

:func:`make_plan` is pure and deterministic for a given seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from server.errors import ConfigurationError
from server.model import Directory

from .options import MAX_RECIPIENTS

__all__ = ["Conversation", "Person", "Plan", "make_plan", "people_from_demo_users",
           "people_from_directory"]


@dataclass(frozen=True, slots=True)
class Person:
    """What the plan needs to know of a user of the directory."""

    id: str
    role: str                                  # teacher, staff, student, parent
    class_id: str | None = None                # students
    teaches: frozenset[str] = frozenset()      # teachers
    children: tuple[str, ...] = ()             # parents


@dataclass(frozen=True, slots=True)
class Conversation:
    """One discussion to start and keep busy.

    ``starter`` sends the ``start`` to ``recipients``; afterwards every member posts,
    ``rate`` messages/s in all, each message from a member drawn at random.
    """

    kind: str                       # "class" or "thread"
    label: str                      # "class 6A", "thread p-0001/t-003"
    starter: str
    recipients: tuple[str, ...]
    rate: float

    @property
    def members(self) -> tuple[str, ...]:
        return (self.starter, *self.recipients)


@dataclass(frozen=True, slots=True)
class Plan:
    """The conversations of a run and the users to connect (each once, in order)."""

    school: str
    conversations: tuple[Conversation, ...]
    users: tuple[str, ...]
    classes_available: int
    notes: tuple[str, ...] = field(default=())

    def rate_per_user(self) -> dict[str, float]:
        """Planned messages/s each user sends, over all their conversations.

        The server limits each connection (``PREAU_RATE_LIMIT``, 20/s by default):
        a user above it gets ``rate_limited`` refusals.
        """
        rates: dict[str, float] = {}
        for c in self.conversations:
            share = c.rate / len(c.members)
            for user in c.members:
                rates[user] = rates.get(user, 0.0) + share
        return rates


def people_from_directory(directory: Directory) -> list[Person]:
    """The users of a directory (a file or the database), in the directory's order."""
    return [Person(str(u.id), u.role.value, u.class_id, frozenset(u.teaches),
                   tuple(str(c) for c in u.children))
            for u in directory.users.values()]


def people_from_demo_users(doc: Mapping[str, Any]) -> list[Person]:
    """The users of a ``GET /api/demo/users`` answer (demo mode).

    Raises ConfigurationError if the answer does not have the expected shape.
    """
    people: list[Person] = []
    try:
        for u in doc["users"]:
            klass = u.get("class")
            people.append(Person(
                str(u["id"]), str(u["role"]),
                str(klass["id"]) if isinstance(klass, dict) else None,
                frozenset(str(c) for c in u.get("teaches") or ()),
                tuple(str(c) for c in u.get("children") or ())))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ConfigurationError(f"unexpected answer from /api/demo/users: {exc!r}") from None
    return people


def make_plan(people: Sequence[Person], *, school: str, classes: int, students: int | None,
              threads: int, rate: float, thread_rate: float, seed: int) -> Plan:
    """Choose up to ``classes`` classes and their conversations.

    A class is usable if it has students and a teacher who teaches it. Classes are
    taken in directory order. Each class gets one class discussion (its least busy
    teacher, its first ``students`` students, at most 50) and ``threads`` threads,
    each between a parent of a student of the class (used once in the run) and the
    least busy teacher of the class. Teachers are spread so that one teacher leads
    as few conversations as possible. Raises ConfigurationError if no class is usable.
    """
    rng = random.Random(seed)
    by_class: dict[str, list[str]] = {}
    for p in people:
        if p.role == "student" and p.class_id is not None:
            by_class.setdefault(p.class_id, []).append(p.id)
    teachers_of: dict[str, list[str]] = {}
    for p in people:
        if p.role == "teacher":
            for c in sorted(p.teaches):
                teachers_of.setdefault(c, []).append(p.id)
    student_class = {p.id: p.class_id for p in people
                     if p.role == "student" and p.class_id is not None}
    parents_of_class: dict[str, list[str]] = {}
    for p in people:
        if p.role == "parent":
            for c in dict.fromkeys(student_class[child] for child in p.children
                                   if child in student_class):
                parents_of_class.setdefault(c, []).append(p.id)

    usable = [c for c in by_class if teachers_of.get(c)]
    if not usable:
        raise ConfigurationError("the directory has no class with both students and a "
                                 "teacher: nothing to load-test")
    chosen = usable[:classes]
    notes: list[str] = []
    if len(chosen) < classes:
        notes.append(f"only {len(chosen)} usable classes in the directory "
                     f"({classes} asked)")

    load: dict[str, int] = {}          # conversations per teacher so far
    used_parents: set[str] = set()
    conversations: list[Conversation] = []
    per_class = min(students or MAX_RECIPIENTS, MAX_RECIPIENTS)

    def least_busy(candidates: Iterable[str]) -> str:
        # The random key breaks ties, so that teachers of equal load take turns.
        teacher = min(candidates, key=lambda t: (load.get(t, 0), rng.random()))
        load[teacher] = load.get(teacher, 0) + 1
        return teacher

    for c in chosen:
        teacher = least_busy(teachers_of[c])
        conversations.append(Conversation("class", f"class {c}", teacher,
                                          tuple(sorted(by_class[c])[:per_class]), rate))
        candidates = [p for p in parents_of_class.get(c, []) if p not in used_parents]
        picked = rng.sample(candidates, min(threads, len(candidates))) if thread_rate else []
        if len(picked) < threads and thread_rate:
            notes.append(f"class {c}: only {len(picked)} parents for {threads} threads")
        for parent in picked:
            used_parents.add(parent)
            conversations.append(Conversation("thread", f"thread {parent}/{c}", parent,
                                              (least_busy(teachers_of[c]),), thread_rate))
    users = tuple(dict.fromkeys(u for conv in conversations for u in conv.members))
    return Plan(school, tuple(conversations), users, len(usable), tuple(notes))
