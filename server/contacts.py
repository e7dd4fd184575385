"""What a recipient picker searches: people and groups of classes, by what people type.

Two things the contacts API (``GET /api/contacts``) and the broadcast audience picker
share:

- :class:`Query` reads a search as people mean it. A class named in full (« 6e A », or
  its id « 6A ») is a class, not two words: it keeps that class's people and groups
  and no other class's — not « 6e AB », not « 5e A », not a 6e B pupil whose name
  holds an « a ». The other words must each appear in the person's name, role or
  class, case and accents aside, as before.
- :func:`group_views` says, for each group of a class the user may address in a start
  (:meth:`~server.gatekeeper.Gatekeeper.groups`), how many of its members would be
  included and how many left out, per reason code, if the discussion started now.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .gatekeeper import Group, GroupKind
from .model import ClassId, Role, SchoolClass, User, UserId
from .schools import Establishment, fold

__all__ = ["Query", "group_json", "group_views"]

# Words that find a group besides its class: its kind, in French and English.
_GROUP_WORDS = {
    GroupKind.STUDENTS: "eleves students",
    GroupKind.PARENTS: "parents responsables",
    GroupKind.TEAM: "equipe pedagogique enseignants professeurs team teachers",
}


@dataclass(frozen=True, slots=True)
class Query:
    """A folded search: the classes it names in full, and its other words."""

    classes: frozenset[ClassId]
    terms: tuple[str, ...]

    @classmethod
    def parse(cls, text: str, classes: Mapping[ClassId, SchoolClass]) -> Query:
        """Read ``text``; at each word, the longest class name (or id) that starts
        there, in whole words, is taken as that class."""
        words = fold(text).split()
        aliases: dict[tuple[str, ...], set[ClassId]] = {}
        for cid, c in classes.items():
            for alias in (c.name, cid):
                key = tuple(fold(alias).split())
                if key:
                    aliases.setdefault(key, set()).add(cid)
        longest = max((len(k) for k in aliases), default=0)
        found: set[ClassId] = set()
        terms: list[str] = []
        i = 0
        while i < len(words):
            for size in range(min(longest, len(words) - i), 0, -1):
                named = aliases.get(tuple(words[i:i + size]))
                if named:
                    found |= named
                    i += size
                    break
            else:
                terms.append(words[i])
                i += 1
        return cls(frozenset(found), tuple(terms))

    @property
    def empty(self) -> bool:
        return not self.classes and not self.terms

    def finds(self, est: Establishment, user: User) -> bool:
        """Whether ``user`` answers the search: of a class it names (a student of it, a
        parent with a child in it, a teacher of it), and with every other word."""
        if self.classes and self.classes.isdisjoint(_classes_of(est, user)):
            return False
        key = est.search_key(user)
        return all(t in key for t in self.terms)

    def finds_group(self, group: Group, class_name: str) -> bool:
        if self.classes and group.class_id not in self.classes:
            return False
        key = fold(f"{_GROUP_WORDS[group.kind]} {class_name} {group.class_id}")
        return all(t in key for t in self.terms)


def _classes_of(est: Establishment, user: User) -> frozenset[ClassId]:
    if user.role is Role.STUDENT:
        return frozenset(() if user.class_id is None else (user.class_id,))
    if user.role is Role.TEACHER:
        return user.teaches
    if user.role is Role.PARENT:
        users = est.gatekeeper.state.directory.users
        return frozenset(c.class_id for cid in user.children
                         if (c := users.get(cid)) is not None and c.class_id is not None)
    return frozenset()


def group_views(est: Establishment, user_id: UserId) -> Sequence[tuple[Group, dict[str, Any]]]:
    """Each group ``user_id`` may name with its counts if it were expanded now
    (remembered for the life of this establishment version: the counts change only
    with the directory or the settings)."""
    cached = est.group_counts.get(user_id)
    if cached is not None:
        return cached
    gk = est.gatekeeper
    classes = gk.state.directory.classes
    views = []
    for group in gk.groups(user_id):
        expansion = gk.expand_groups(user_id, (group,))
        views.append((group, group_json(group, classes[group.class_id].name,
                                        len(expansion.included),
                                        expansion.left_out_counts())))
    out = tuple(views)
    est.group_counts[user_id] = out
    return out


def group_json(group: Group, class_name: str, included: int,
               left_out: Mapping[str, int]) -> dict[str, Any]:
    """The ``{group}`` of docs/api.md: what to send in a start, and what it would reach."""
    return {"kind": group.kind.value, "class": {"id": group.class_id, "name": class_name},
            "included": included, "left_out": dict(left_out),
            "left_out_total": sum(left_out.values())}
