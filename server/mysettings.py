"""``GET /api/me/settings``: what applies to the signed-in user, in one document, for
the "Mes réglages" page (docs/api.md "My settings").

The school's rules as they bear on this user (discussions on or off for the school and
for their profile, the hours, how many discussions they may start, messaging between
parents) and their own preferences (who may contact a teacher, a parent's opt-in, a
student's right to start). Read-only: changes go through ``PATCH /api/me/preferences``
(the user's own) or the administrator's ``/api/settings``.
"""

from __future__ import annotations

from datetime import time
from typing import Any

from .model import ClassId, Role, SchoolState, User
from .settings import preferences_to_json

__all__ = ["my_settings"]


def _hhmm(t: time) -> str:
    return f"{t.hour:02d}:{t.minute:02d}"


def my_settings(state: SchoolState, user: User, *, can_start: bool,
                access: dict[str, Any]) -> dict[str, Any]:
    """The document; ``can_start`` and ``access`` as ``GET /api/me`` says them."""
    settings = state.settings
    directory = state.directory
    profile = directory.profiles.get(user.profile)
    prefs = state.preferences_of(user.id)
    hours = settings.hours
    doc: dict[str, Any] = {
        "role": user.role.value,
        "access": access,
        "school": {"discussions_enabled": settings.discussions_enabled,
                   "timezone": settings.timezone},
        "profile": {"id": user.profile,
                    "name": profile.name if profile is not None else user.profile,
                    "discussions_enabled": user.profile not in settings.disabled_profiles},
        "hours": {"enabled": hours.enabled, "start": _hhmm(hours.start),
                  "end": _hhmm(hours.end), "outside": hours.outside.value},
        "can_start": can_start,
        "start_limits": {"per_hour": settings.start_limits.per_hour,
                         "per_day": settings.start_limits.per_day},
        "parent_messaging": {
            "enabled": settings.parent_messaging_enabled,
            "opt_in": prefs.parent_messaging_opt_in if user.role is Role.PARENT else None},
        "preferences": preferences_to_json(prefs, user.role),
    }
    if user.role is Role.TEACHER:
        # The classes a teacher may limit students and parents to: theirs, and any the
        # current choice names already.
        a = prefs.accepts
        named: set[ClassId] = set(user.teaches)
        for audience in (a.students, a.parents):
            named |= set(audience.classes or ())
        doc["classes"] = [{"id": c, "name": directory.classes[c].name if c in directory.classes
                           else c} for c in sorted(named)]
    return doc
