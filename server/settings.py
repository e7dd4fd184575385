"""Settings and preferences as JSON: encode, validate a change, and diff for the audit log.

Pure functions over the frozen values of :mod:`server.model`. The REST API and
the store both speak this JSON shape, so there is exactly one place that knows
it (documented in ``docs/api.md``)::

    {"discussions_enabled": true, "parent_messaging_enabled": false,
     "timezone": "Europe/Paris",
     "hours": {"enabled": true, "start": "07:00", "end": "20:00", "outside": "refuse"},
     "limits": {"starts_per_hour": 30, "starts_per_day": 100},
     "profiles": {"students-lycee": {"discussions_enabled": true}, ...}}

A change is a *patch*: any subset of that shape. :func:`apply_settings_patch`
either returns the complete new value or raises :class:`InvalidSettings`
naming the field, so nothing is ever half-applied. :func:`flatten_settings`
turns a value into ``{"hours.start": "07:00", ...}`` so that the audit log
records one row per field that changed (:func:`diff`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import replace
from datetime import time
from typing import Any

from .errors import InvalidSettings
from .gatekeeper.hours import validate_hours, validate_timezone
from .model import (
    Audience,
    ClassId,
    Hours,
    OutsideHours,
    ProfileId,
    Role,
    SchoolSettings,
    StartLimits,
    UserPreferences,
)

__all__ = [
    "Json",
    "apply_preferences_patch",
    "apply_settings_patch",
    "diff",
    "flatten",
    "preferences_from_json",
    "preferences_to_json",
    "settings_from_json",
    "settings_to_json",
    "without_unknown_profiles",
]

Json = Any  # a decoded JSON value

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
MAX_STARTS = 10_000  # per hour or per day: above that a limit protects nobody


# --------------------------------------------------------------------------- school settings


def settings_to_json(settings: SchoolSettings, profiles: Collection[ProfileId]) -> dict[str, Json]:
    """The full settings document, with a switch for every profile of the school."""
    hours = settings.hours
    return {
        "discussions_enabled": settings.discussions_enabled,
        "parent_messaging_enabled": settings.parent_messaging_enabled,
        "timezone": settings.timezone,
        "hours": {
            "enabled": hours.enabled,
            "start": _format_time(hours.start),
            "end": _format_time(hours.end),
            "outside": hours.outside.value,
        },
        "limits": {
            "starts_per_hour": settings.start_limits.per_hour,
            "starts_per_day": settings.start_limits.per_day,
        },
        "profiles": {
            p: {"discussions_enabled": p not in settings.disabled_profiles} for p in profiles
        },
    }


def settings_from_json(data: Json) -> SchoolSettings:
    """Decode what :func:`settings_to_json` stored (trusted input: the store's own)."""
    return apply_settings_patch(SchoolSettings(), data, profiles=None)


def apply_settings_patch(
    settings: SchoolSettings, patch: Json, profiles: Collection[ProfileId] | None
) -> SchoolSettings:
    """Return ``settings`` with ``patch`` applied, or raise :class:`InvalidSettings`.

    ``profiles`` are the school's profile ids; a switch for any other id is
    refused. ``None`` accepts any id (used when decoding stored settings).
    """
    obj = _object(patch, "settings")
    _only(obj, {"discussions_enabled", "parent_messaging_enabled", "timezone", "hours",
                "limits", "profiles"}, "settings")
    new = settings
    if "discussions_enabled" in obj:
        new = replace(new, discussions_enabled=_bool(obj["discussions_enabled"],
                                                     "discussions_enabled"))
    if "parent_messaging_enabled" in obj:
        new = replace(new, parent_messaging_enabled=_bool(obj["parent_messaging_enabled"],
                                                          "parent_messaging_enabled"))
    if "timezone" in obj:
        tz = obj["timezone"]
        if not isinstance(tz, str):
            raise InvalidSettings("timezone doit être une chaîne telle que 'Europe/Paris'.",
                                  field="timezone")
        validate_timezone(tz)
        new = replace(new, timezone=tz)
    if "hours" in obj:
        new = replace(new, hours=_apply_hours(new.hours, obj["hours"]))
    if "limits" in obj:
        new = replace(new, start_limits=_apply_limits(new.start_limits, obj["limits"]))
    if "profiles" in obj:
        disabled = set(new.disabled_profiles)
        for pid, switch in _object(obj["profiles"], "profiles").items():
            if profiles is not None and pid not in profiles:
                raise InvalidSettings(f"profiles : profil inconnu {pid!r}.",
                                      field=f"profiles.{pid}")
            sw = _object(switch, f"profiles.{pid}")
            _only(sw, {"discussions_enabled"}, f"profiles.{pid}")
            if "discussions_enabled" in sw:
                on = _bool(sw["discussions_enabled"], f"profiles.{pid}.discussions_enabled")
                if on:
                    disabled.discard(ProfileId(pid))
                else:
                    disabled.add(ProfileId(pid))
        new = replace(new, disabled_profiles=frozenset(disabled))
    return new


def _apply_hours(hours: Hours, patch: Json) -> Hours:
    obj = _object(patch, "hours")
    _only(obj, {"enabled", "start", "end", "outside"}, "hours")
    new = hours
    if "enabled" in obj:
        new = replace(new, enabled=_bool(obj["enabled"], "hours.enabled"))
    if "start" in obj:
        new = replace(new, start=_parse_time(obj["start"], "hours.start"))
    if "end" in obj:
        new = replace(new, end=_parse_time(obj["end"], "hours.end"))
    if "outside" in obj:
        value = obj["outside"]
        if value not in ("refuse", "defer"):
            raise InvalidSettings("hours.outside vaut 'refuse' ou 'defer'.",
                                  field="hours.outside")
        new = replace(new, outside=OutsideHours(value))
    validate_hours(new)
    return new


def _apply_limits(limits: StartLimits, patch: Json) -> StartLimits:
    obj = _object(patch, "limits")
    _only(obj, {"starts_per_hour", "starts_per_day"}, "limits")
    new = limits
    if "starts_per_hour" in obj:
        new = replace(new, per_hour=_count(obj["starts_per_hour"], "limits.starts_per_hour"))
    if "starts_per_day" in obj:
        new = replace(new, per_day=_count(obj["starts_per_day"], "limits.starts_per_day"))
    if new.per_hour > new.per_day:
        raise InvalidSettings("limits.starts_per_hour ne peut pas dépasser "
                              "limits.starts_per_day.", field="limits.starts_per_hour")
    return new


def _count(value: Json, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_STARTS:
        raise InvalidSettings(f"{where} doit être un entier de 1 à {MAX_STARTS}.", field=where)
    return value


# --------------------------------------------------------------------------- user preferences


def preferences_to_json(prefs: UserPreferences, role: Role) -> dict[str, Json]:
    """The preferences that mean something for ``role`` (others are omitted)."""
    if role is Role.STUDENT:
        return {"can_initiate": prefs.can_initiate}
    if role is Role.PARENT:
        return {"parent_messaging_opt_in": prefs.parent_messaging_opt_in}
    if role is Role.TEACHER:
        a = prefs.accepts
        return {
            "accepts": {
                "students": _audience_to_json(a.students),
                "parents": _audience_to_json(a.parents),
                "teachers": a.teachers,
                "staff": a.staff,
            }
        }
    return {}


def preferences_from_json(data: Json, role: Role) -> UserPreferences:
    """Decode what :func:`preferences_to_json` stored (trusted input)."""
    return apply_preferences_patch(UserPreferences(), role, data, classes=None,
                                   allowed=_ROLE_KEYS[role])


_ROLE_KEYS: dict[Role, frozenset[str]] = {
    Role.STUDENT: frozenset({"can_initiate"}),
    Role.PARENT: frozenset({"parent_messaging_opt_in"}),
    Role.TEACHER: frozenset({"accepts"}),
    Role.STAFF: frozenset(),
}


def apply_preferences_patch(
    prefs: UserPreferences,
    role: Role,
    patch: Json,
    classes: Collection[ClassId] | None,
    allowed: Collection[str],
) -> UserPreferences:
    """Return ``prefs`` with ``patch`` applied, or raise :class:`InvalidSettings`.

    ``allowed`` are the keys the caller may change (a teacher may change her
    ``accepts``, only the admin a student's ``can_initiate``); a key of
    another role, or one not allowed, is refused by name. ``classes`` are the
    school's classes, for class-limited preferences (``None`` accepts any).
    """
    obj = _object(patch, "preferences")
    for key in obj:
        if key not in _ROLE_KEYS[role]:
            raise InvalidSettings(f"{key!r} n'est pas une préférence de ce rôle ({role.value}).",
                                  field=key)
        if key not in allowed:
            raise InvalidSettings(f"{key!r} ne peut pas être modifié ici.", field=key)
    new = prefs
    if "can_initiate" in obj:
        new = replace(new, can_initiate=_bool(obj["can_initiate"], "can_initiate"))
    if "parent_messaging_opt_in" in obj:
        new = replace(new, parent_messaging_opt_in=_bool(obj["parent_messaging_opt_in"],
                                                         "parent_messaging_opt_in"))
    if "accepts" in obj:
        acc = _object(obj["accepts"], "accepts")
        _only(acc, {"students", "parents", "teachers", "staff"}, "accepts")
        a = new.accepts
        if "students" in acc:
            a = replace(a, students=_audience(acc["students"], "accepts.students", classes))
        if "parents" in acc:
            a = replace(a, parents=_audience(acc["parents"], "accepts.parents", classes))
        if "teachers" in acc:
            a = replace(a, teachers=_bool(acc["teachers"], "accepts.teachers"))
        if "staff" in acc:
            a = replace(a, staff=_bool(acc["staff"], "accepts.staff"))
        new = replace(new, accepts=a)
    return new


def _audience_to_json(a: Audience) -> dict[str, Json]:
    return {"enabled": a.enabled, "classes": None if a.classes is None else sorted(a.classes)}


def _audience(value: Json, where: str, classes: Collection[ClassId] | None) -> Audience:
    if isinstance(value, bool):  # shorthand: true = everyone, false = nobody
        return Audience(enabled=value)
    obj = _object(value, where)
    _only(obj, {"enabled", "classes"}, where)
    enabled = _bool(obj.get("enabled", True), f"{where}.enabled")
    raw = obj.get("classes")
    if raw is None:
        return Audience(enabled=enabled)
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise InvalidSettings(f"{where}.classes doit être une liste d'identifiants de classes "
                              "ou null.", field=f"{where}.classes")
    if classes is not None:
        unknown = sorted(c for c in raw if c not in classes)
        if unknown:
            raise InvalidSettings(f"{where}.classes : classe inconnue {unknown[0]!r}.",
                                  field=f"{where}.classes")
    return Audience(enabled=enabled, classes=frozenset(ClassId(c) for c in raw))


# --------------------------------------------------------------------------- audit diffs


def flatten(doc: Mapping[str, Json], prefix: str = "") -> dict[str, Json]:
    """``{"hours": {"start": "07:00"}}`` → ``{"hours.start": "07:00"}`` (lists are leaves)."""
    out: dict[str, Json] = {}
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def diff(old: Mapping[str, Json], new: Mapping[str, Json]) -> list[tuple[str, Json, Json]]:
    """The ``(field, old, new)`` triples that differ between two flattened documents."""
    keys = sorted(set(old) | set(new))
    return [(k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)]


# --------------------------------------------------------------------------- small parsers


def _object(value: Json, where: str) -> dict[str, Json]:
    if not isinstance(value, dict):
        raise InvalidSettings(f"{where} doit être un objet JSON.", field=where)
    return value


def _only(obj: Mapping[str, Json], keys: Collection[str], where: str) -> None:
    for key in obj:
        if key not in keys:
            raise InvalidSettings(f"{where} : champ inconnu {key!r} (attendu : "
                                  f"{', '.join(sorted(keys))}).", field=f"{where}.{key}")


def _bool(value: Json, where: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidSettings(f"{where} doit valoir true ou false.", field=where)
    return value


def _parse_time(value: Json, where: str) -> time:
    if not isinstance(value, str) or not (m := _HHMM.match(value)):
        raise InvalidSettings(f"{where} doit être une heure écrite HH:MM, par exemple '07:00'.",
                              field=where)
    return time(int(m.group(1)), int(m.group(2)))


def _format_time(t: time) -> str:
    return f"{t.hour:02d}:{t.minute:02d}"


def without_unknown_profiles(
    settings: SchoolSettings, profiles: Collection[ProfileId]
) -> SchoolSettings:
    """``settings`` with the disabled profiles the directory no longer has left out: a
    directory import may drop a profile that a setting still names."""
    kept = frozenset(p for p in settings.disabled_profiles if p in profiles)
    if kept == settings.disabled_profiles:
        return settings
    return replace(settings, disabled_profiles=kept)
