"""The refusals that carry facts: their French sentence and their ``params``.

Each builder returns a :class:`~server.gatekeeper.decision.Decision` whose
``message`` is the server's French sentence and whose ``params`` hold what a
client needs to write it in its own language (``docs/protocol.md`` lists them
per code): people as ``{"id", "name"}``, instants as ISO 8601 in UTC, local
times as ``HH:MM``. Pure, like the rest of the package: the clock is an argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from server.errors import ErrorCode
from server.gatekeeper import rules
from server.gatekeeper.decision import Decision, refuse
from server.gatekeeper.hours import Window
from server.gatekeeper.index import SchoolIndex
from server.model import Role, User, UserId

__all__ = ["french_day", "g6_refusal", "names_fr", "outside_hours", "person",
           "start_refusal"]

NAMES_SHOWN = 5
"""How many blockers a G6 refusal names before summing up the rest."""

_DAYS = ("lun.", "mar.", "mer.", "jeu.", "ven.", "sam.", "dim.")
_MONTHS = ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.",
           "oct.", "nov.", "déc.")
_ROLE_WORDS = {Role.TEACHER: "le professeur", Role.STAFF: "le membre du personnel"}


def french_day(local: datetime) -> str:
    """``mer. 25 nov.``: the French short form of a local date."""
    return f"{_DAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]}"


def person(user: User) -> dict[str, Any]:
    """A person as refusals name them: id, display name and role."""
    return {"id": user.id, "name": user.display_name, "role": user.role.value}


def names_fr(names: Sequence[str], others: int = 0) -> str:
    """'A', 'A et B', 'A, B et C', 'A, B et 3 autres'."""
    if others:
        return f"{', '.join(names)} et {others} autre{'s' if others > 1 else ''}"
    if len(names) <= 1:
        return names[0] if names else "quelqu'un"
    return f"{', '.join(names[:-1])} et {names[-1]}"


def outside_hours(window: Window, opens_at: datetime) -> Decision:
    """G3: closed now; ``opens_at`` (UTC) is the next opening."""
    local = opens_at.astimezone(window.tz)
    hours = window.hours
    return refuse(
        ErrorCode.OUTSIDE_HOURS,
        f"Les discussions sont fermées à cette heure ; elles rouvrent le {french_day(local)} "
        f"à {local:%H:%M} ({window.timezone}).",
        retry_at=opens_at,
        params={"opens_at": opens_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "start": f"{hours.start:%H:%M}", "end": f"{hours.end:%H:%M}",
                "timezone": window.timezone},
    )


def start_refusal(code: ErrorCode, y: UserId) -> Decision:
    """G5 from X to ``y`` refused with ``code``."""
    if code is ErrorCode.RECIPIENT_NOT_ALLOWED:
        # The id as given, whether or not it exists: nothing is revealed.
        return refuse(code, f"Vous ne pouvez pas commencer de discussion avec {y!r}.",
                      params={"user": y})
    return refuse(code, params={"user": y})


def g6_refusal(index: SchoolIndex, m: rules.Membership, user_id: UserId) -> Decision:
    """Why ``user_id``, present and active, may not post in ``m`` (G6): the blockers by
    name, and the supervisor who brought them in if that one has left since."""
    sender = index.users[user_id]
    blocking = rules.blockers(index, m, user_id)
    codes = {rules.pair_refusal_code(index, sender, index.users[y]) for y in blocking}
    people = sorted((index.users[y] for y in blocking), key=lambda u: (u.display_name, u.id))
    shown = people if len(people) <= NAMES_SHOWN else people[: NAMES_SHOWN - 1]
    others = len(people) - len(shown)
    names = names_fr([u.display_name for u in shown], others)
    params: dict[str, Any] = {"discussion": m.id, "users": [person(u) for u in shown],
                              "others": others}
    if ErrorCode.PARENT_MESSAGING_DISABLED in codes:
        return refuse(
            ErrorCode.PARENT_MESSAGING_DISABLED,
            f"La messagerie entre parents est désactivée : vous ne pouvez pas écrire ici "
            f"en présence de {names}.", params=params)
    if ErrorCode.NOT_OPTED_IN in codes:
        # About the sender's own choice only: another parent's is never told.
        return refuse(
            ErrorCode.NOT_OPTED_IN,
            f"Vous ne pouvez pas écrire ici en présence de {names} : activez d'abord la "
            "messagerie entre parents.", params=params)
    left = _supervisor_left(index, m, user_id)
    params["supervisor_left"] = None if left is None else person(left)
    if left is not None:
        return refuse(
            ErrorCode.NOT_INVITED_BY_SUPERVISOR,
            f"{_ROLE_WORDS[left.role].capitalize()} qui vous a invité ({left.display_name}) "
            "a quitté la discussion : vous ne pouvez plus écrire ici.", params=params)
    return refuse(
        ErrorCode.NOT_INVITED_BY_SUPERVISOR,
        f"Vous ne pouvez pas écrire ici : {names} et vous ne pouvez échanger qu'en présence "
        "d'un professeur ou d'un personnel qui vous a invités tous les deux.", params=params)


def _supervisor_left(index: SchoolIndex, m: rules.Membership, user_id: UserId) -> User | None:
    """The teacher or staff member who brought ``user_id`` in, if they have left."""
    by = m.brought_by.get(user_id)
    if by is None or by in m.present:
        return None  # the creator, or still here (switched off is not "left")
    inviter = index.users.get(by)
    if inviter is None or inviter.role not in rules.SUPERVISOR_ROLES:
        return None
    return inviter
