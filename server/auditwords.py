"""What an audit entry is about, structured, so that a client shows it in words.

The store records each change as a dotted path and two JSON values
(``profiles.parents.discussions_enabled``, ``false``, ``true``). A person reads
"Discussions pour le profil Responsables : désactivées → activées". The path holds
ids (a profile, a user) that only the directory can name, so the server splits it:

- ``setting``: the path with its ids taken out, one of a closed list
  (:data:`SETTINGS`, docs/api.md) that a client keeps a catalogue of words for;
- ``profile`` / ``user``: whom it is about, with their name;
- ``classes``: the names of the classes a value lists (``accepts`` limited to classes).

Pure: the directory is an argument.
"""

from __future__ import annotations

from typing import Any

from .model import ClassId, Directory, ProfileId, UserId

__all__ = ["SETTINGS", "describe"]

SETTINGS = frozenset({
    "discussions_enabled", "parent_messaging_enabled", "hours.enabled", "hours.start",
    "hours.end", "hours.outside", "timezone", "limits.starts_per_hour",
    "limits.starts_per_day", "profile.discussions_enabled", "user.can_initiate",
    "user.parent_messaging_opt_in", "user.accepts.students.enabled",
    "user.accepts.students.classes", "user.accepts.parents.enabled",
    "user.accepts.parents.classes", "user.accepts.teachers", "user.accepts.staff",
})
"""Every ``setting`` an audit item may name; anything else is ``other`` (a field of a
later release), and a client shows the raw ``field`` then."""

_PROFILE_KEYS = ("discussions_enabled",)
_USER_KEYS = tuple(s.removeprefix("user.") for s in SETTINGS if s.startswith("user."))


def describe(field: str, old: Any, new: Any, actor: str,
             directory: Directory) -> dict[str, Any]:
    """The structured words of one audit entry (added to its JSON)."""
    out: dict[str, Any] = {"actor_name": _name(directory, actor)}
    setting, subject = _split(field)
    if setting.startswith("profile."):
        profile = directory.profiles.get(ProfileId(subject))
        out["profile"] = {"id": subject, "name": profile.name if profile else subject}
    elif setting.startswith("user."):
        user = directory.users.get(UserId(subject))
        out["user"] = ({"id": subject} if user is None else
                       {"id": subject, "name": user.display_name, "role": user.role.value})
    out["setting"] = setting
    listed = [c for v in (old, new) if isinstance(v, list) for c in v if isinstance(c, str)]
    if listed:
        out["classes"] = {c: (k.name if (k := directory.classes.get(ClassId(c))) else c)
                          for c in sorted(set(listed))}
    return out


def _split(field: str) -> tuple[str, str]:
    """``(setting, id)``: ``profiles.parents.discussions_enabled`` → the profile setting and
    ``parents``. Ids may hold dots: the known endings are matched, not the dots."""
    if field in SETTINGS and not field.startswith(("user.", "profile.")):
        return field, ""
    for prefix, keys, name in (("profiles.", _PROFILE_KEYS, "profile"),
                               ("users.", _USER_KEYS, "user")):
        if field.startswith(prefix):
            for key in keys:
                if field.endswith("." + key) and len(field) > len(prefix) + len(key) + 1:
                    return f"{name}.{key}", field[len(prefix):-len(key) - 1]
    return "other", ""


def _name(directory: Directory, actor: str) -> str | None:
    user = directory.users.get(UserId(actor))
    return None if user is None else user.display_name
