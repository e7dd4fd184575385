"""The live view of every establishment: its current gatekeeper and contact index.

:class:`Schools` is responsible for handing out, per establishment, a
:class:`~server.gatekeeper.Gatekeeper` built from the store's current state.
A gatekeeper is an immutable snapshot; when the school's version in the store
moves (a settings change here, a directory import by the CLI, later a notice
from another node), the next call builds a fresh one, so no decision is ever
taken on stale settings and every cache inside the old snapshot is dropped
with it.
"""

from __future__ import annotations

import asyncio
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from .gatekeeper import Gatekeeper, Group
from .model import Role, SchoolId, User, UserId
from .store import DirectoryStore

__all__ = ["Establishment", "Schools", "fold", "person"]


def fold(text: str) -> str:
    """Case- and accent-insensitive form for searching names ("Hélène" → "helene")."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def person(user: User, gk: Gatekeeper) -> dict[str, Any]:
    """A user as others see them (the ``{person}`` of docs/protocol.md)."""
    out: dict[str, Any] = {"id": user.id, "name": user.display_name,
                           "first_name": user.first_name, "last_name": user.last_name,
                           "role": user.role.value}
    directory = gk.state.directory
    classes = directory.classes
    if user.role is Role.STUDENT and user.class_id is not None and user.class_id in classes:
        out["class"] = {"id": user.class_id, "name": classes[user.class_id].name}
    elif user.role is Role.PARENT:
        # What a client needs to write « mère de Léa André (6e A) » in its language:
        # each child still in the directory, with the relation's code.
        children = []
        for child_id in user.children:
            child = directory.users.get(child_id)
            if child is None:
                continue
            entry: dict[str, Any] = {"id": child.id, "name": child.display_name,
                                     "first_name": child.first_name,
                                     "last_name": child.last_name,
                                     "relation": user.relation_to(child_id).value}
            if child.class_id is not None and child.class_id in classes:
                entry["class"] = {"id": child.class_id, "name": classes[child.class_id].name}
            children.append(entry)
        out["children"] = children
    return out


@dataclass(slots=True)
class Establishment:
    """One school at one version: its gatekeeper and derived, lazily built indexes."""

    gatekeeper: Gatekeeper
    _search_keys: dict[UserId, str] = field(default_factory=dict)
    # Per user, the groups they may name and their counts (server.contacts).
    group_counts: dict[UserId, tuple[tuple[Group, dict[str, Any]], ...]] = field(
        default_factory=dict)

    @property
    def version(self) -> int:
        return self.gatekeeper.version

    def person(self, user_id: UserId) -> dict[str, Any]:
        """The ``{person}`` of a user id; just ``{"id"}`` for someone no longer here."""
        user = self.gatekeeper.user(user_id)
        return person(user, self.gatekeeper) if user is not None else {"id": user_id}

    def search_key(self, user: User) -> str:
        key = self._search_keys.get(user.id)
        if key is None:
            directory = self.gatekeeper.state.directory
            parts = [user.first_name, user.last_name, user.role.value]
            if user.class_id is not None and user.class_id in directory.classes:
                parts.append(directory.classes[user.class_id].name)
            # A parent is listed with their children (« mère de Léa André (6e A) »):
            # the children's names and classes find them too.
            for child_id in user.children:
                child = directory.users.get(child_id)
                if child is not None:
                    parts += [child.first_name, child.last_name]
                    if child.class_id is not None and child.class_id in directory.classes:
                        parts.append(directory.classes[child.class_id].name)
            key = self._search_keys[user.id] = fold(" ".join(parts))
        return key


class Schools:
    """Schools is responsible for the current :class:`Establishment` of each school."""

    def __init__(self, store: DirectoryStore) -> None:
        self._store = store
        self._current: dict[SchoolId, Establishment] = {}
        self._locks: dict[SchoolId, asyncio.Lock] = {}

    def current(self, school_id: SchoolId) -> Establishment | None:
        """The last establishment built for the school, without asking the store.

        For the per-message path: the node keeps it fresh by calling :meth:`get`
        when a policy notice arrives and on its periodic tick.
        """
        return self._current.get(school_id)

    async def get(self, school_id: SchoolId) -> Establishment:
        """The school's establishment at the store's current version.

        Raises :class:`~server.errors.NotFound` for an unknown school.
        """
        version = await self._store.school_version(school_id)
        current = self._current.get(school_id)
        if current is not None and current.version == version:
            return current
        lock = self._locks.setdefault(school_id, asyncio.Lock())
        async with lock:
            current = self._current.get(school_id)
            if current is None or current.version != version:
                known = None if current is None else current.gatekeeper.state
                state = await self._store.load_school(school_id, known=known)
                current = Establishment(Gatekeeper(state))
                self._current[school_id] = current
            return current
