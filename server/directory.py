"""The school directory file (format 1): reading, validating and writing it.

A school describes its people in one JSON document (``docs/directory.md`` is
the reference for the people who write it). This module turns that document
into a :class:`~server.model.Directory` and back:

- :func:`parse_directory` validates a decoded JSON value. It either returns a
  complete, self-consistent directory or raises :class:`~server.errors.DirectoryError`
  listing *every* problem found; a file is never half imported.
- :func:`load_directory` does the same from a file on disk, turning JSON syntax
  and encoding errors into a :class:`~server.errors.DirectoryError` as well.
- :func:`directory_to_json` is the exact inverse of :func:`parse_directory`:
  ``parse_directory(directory_to_json(d)) == d`` for every directory it returned.

The module is pure apart from :func:`load_directory` reading its file.
"""

from __future__ import annotations

import functools
import json
import os
import re
import unicodedata
import zoneinfo
from collections.abc import Callable, Mapping
from typing import cast

from server.errors import DirectoryError, Problem
from server.model import (
    ClassId,
    Directory,
    Profile,
    ProfileId,
    Relation,
    Role,
    School,
    SchoolClass,
    SchoolId,
    User,
    UserId,
)
from server.relations import parse_relation, relation_choices

__all__ = [
    "DEFAULT_TIMEZONE",
    "FORMAT_VERSION",
    "MAX_ID_LENGTH",
    "MAX_NAME_LENGTH",
    "directory_to_json",
    "is_valid_id",
    "load_directory",
    "parse_directory",
]

FORMAT_VERSION = 1
DEFAULT_TIMEZONE = "Europe/Paris"
MAX_ID_LENGTH = 64
MAX_NAME_LENGTH = 200

# ASCII only, so ids are safe in URLs, file names, log lines and Redis keys
# without escaping, and two ids that look alike are alike.
_ID_PATTERN = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_ID_LENGTH}}}")

# Names of the records and fields used in problems that are not about one field.
_FILE = "file"
_RECORD = "(record)"

_TOP_LEVEL_FIELDS = ("format", "school", "profiles", "classes", "users")
_SCHOOL_FIELDS = ("id", "name", "timezone")
_PROFILE_FIELDS = ("id", "name")
_CLASS_FIELDS = ("id", "name", "level")
_COMMON_USER_FIELDS = ("id", "role", "first_name", "last_name", "profile")
_ROLE_FIELDS: Mapping[Role, tuple[str, ...]] = {
    Role.TEACHER: ("teaches",),
    Role.STAFF: ("admin",),
    Role.STUDENT: ("class",),
    Role.PARENT: ("children", "relations", "delegate_of"),
}
# Which role a role-specific field belongs to, to say so when it is misplaced.
_FIELD_ROLE: Mapping[str, Role] = {
    name: role for role, names in _ROLE_FIELDS.items() for name in names
}
_ROLE_PLURAL: Mapping[Role, str] = {
    Role.TEACHER: "teachers",
    Role.STAFF: "staff",
    Role.STUDENT: "students",
    Role.PARENT: "parents",
}
_ALL_USER_FIELDS = _COMMON_USER_FIELDS + tuple(_FIELD_ROLE)
_ROLE_VALUES = frozenset(role.value for role in Role)
_ROLE_LIST = "teacher, staff, student or parent"


def is_valid_id(value: object) -> bool:
    """Whether ``value`` is a valid id: 1–64 characters among ``A–Z a–z 0–9 . _ -``."""
    return isinstance(value, str) and _ID_PATTERN.fullmatch(value) is not None


def parse_directory(data: object) -> Directory:
    """Validate a decoded JSON document and return the directory it describes.

    ``data`` is what :func:`json.loads` returned for a format-1 directory file.
    Raises :class:`DirectoryError` whose ``problems`` list every problem found,
    in file order, each naming the record (``users[12] (p-0042)``) and the
    field (``children[1]``). Nothing is returned unless the whole document is
    valid. Names are stored with surrounding white space removed.
    """
    return _Parser().parse(data)


def load_directory(path: str | os.PathLike[str]) -> Directory:
    """Read, decode and validate a directory file.

    The file must be UTF-8 JSON (a leading byte-order mark, as written by some
    Windows tools, is accepted). Text that is not UTF-8 or not JSON raises
    :class:`DirectoryError` with one problem whose record is the file name and
    whose field gives the position (``line 3, column 17``); an invalid document
    raises as :func:`parse_directory` does. Errors opening or reading the file
    (:class:`OSError`) propagate unchanged.
    """
    name = os.fspath(path)
    with open(name, "rb") as file:
        raw = file.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DirectoryError(
            [
                Problem(
                    name,
                    f"byte {exc.start}",
                    "the file is not UTF-8 text: export or save it as UTF-8",
                )
            ]
        ) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DirectoryError(
            [Problem(name, f"line {exc.lineno}, column {exc.colno}", f"not valid JSON: {exc.msg}")]
        ) from exc
    return parse_directory(data)


def directory_to_json(directory: Directory) -> dict[str, object]:
    """Return the format-1 document describing ``directory``, ready for :func:`json.dumps`.

    The exact inverse of :func:`parse_directory` on the directories it returns:
    ``parse_directory(directory_to_json(d)) == d``. Records keep the order of
    the mappings; class sets (``teaches``, ``delegate_of``) are written in the
    order of ``classes``, so the output is deterministic. Every field is
    written, optional ones included, so an export shows everything there is.
    """
    class_rank: dict[str, int] = {class_id: rank for rank, class_id in enumerate(directory.classes)}

    def class_list(ids: frozenset[ClassId]) -> list[str]:
        # Unknown ids cannot occur in a parsed directory; they sort last rather than fail.
        return sorted(ids, key=lambda c: (class_rank.get(c, len(class_rank)), c))

    users: list[dict[str, object]] = []
    for user in directory.users.values():
        record: dict[str, object] = {
            "id": user.id,
            "role": user.role.value,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "profile": user.profile,
        }
        if user.role is Role.TEACHER:
            record["teaches"] = class_list(user.teaches)
        elif user.role is Role.STAFF:
            record["admin"] = user.admin
        elif user.role is Role.STUDENT:
            record["class"] = user.class_id
        else:
            record["children"] = list(user.children)
            if user.relations:
                record["relations"] = {c: r.value for c, r in user.relations}
            record["delegate_of"] = class_list(user.delegate_of)
        users.append(record)

    school: dict[str, object] = {"id": directory.school.id, "name": directory.school.name}
    if directory.timezone is not None:
        school["timezone"] = directory.timezone
    return {
        "format": FORMAT_VERSION,
        "school": school,
        "profiles": [{"id": p.id, "name": p.name} for p in directory.profiles.values()],
        "classes": [
            {"id": c.id, "name": c.name, "level": c.level} for c in directory.classes.values()
        ],
        "users": users,
    }


# --------------------------------------------------------------------------- helpers


@functools.cache
def _time_zones() -> frozenset[str]:
    # Scanning the tz database takes tens of milliseconds; it does not change
    # while the process runs.
    return frozenset(zoneinfo.available_timezones())


def _kind(value: object) -> str:
    """The JSON name of a value's type, with its article, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {_quote(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__  # not produced by json.loads


def _quote(text: str, limit: int = 40) -> str:
    """``text`` as a JSON string, shortened so one bad value cannot flood the report."""
    if len(text) > limit:
        text = text[:limit] + "…"
    return json.dumps(text, ensure_ascii=False)


def _as_object(value: object) -> Mapping[str, object] | None:
    # json.loads only produces str keys, so the cast is safe for decoded JSON.
    return cast("Mapping[str, object]", value) if isinstance(value, dict) else None


def _as_list(value: object) -> list[object] | None:
    return cast("list[object]", value) if isinstance(value, list) else None


def _record_name(collection: str, index: int, record: Mapping[str, object] | None) -> str:
    """``users[12] (p-0042)``, or ``users[12]`` when the record has no usable id."""
    base = f"{collection}[{index}]"
    if record is not None:
        record_id = record.get("id")
        if is_valid_id(record_id):
            return f"{base} ({record_id})"
    return base


class _Parser:
    """One validation run: collects every problem, then builds the directory or raises."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        # Well-formed ids declared in each collection, whether or not their record
        # is otherwise valid: a reference to one is not "unknown", and saying so
        # would bury the real problem under echoes of it. ``None`` while the
        # collection is missing or not a list: then references to it are not
        # judged at all, for the same reason.
        self.declared: dict[str, set[str] | None] = dict.fromkeys(_TOP_LEVEL_FIELDS[2:])
        # Record name -> the earlier record with the same id.
        self.repeats: dict[str, str] = {}

    def add(self, record: str, field: str, message: str) -> None:
        self.problems.append(Problem(record, field, message))

    # ----------------------------------------------------------------- document

    def parse(self, data: object) -> Directory:
        top = _as_object(data)
        if top is None:
            self.add(_FILE, _RECORD, f"must be a JSON object, got {_kind(data)}")
            raise DirectoryError(self.problems)

        self.fields(_FILE, top, required=_TOP_LEVEL_FIELDS, allowed=_TOP_LEVEL_FIELDS)
        if "format" in top:
            version = top["format"]
            # ``type(...) is int``: True is an int in Python, but not a number in JSON.
            if type(version) is not int or version != FORMAT_VERSION:
                self.add(
                    _FILE,
                    "format",
                    f"must be {FORMAT_VERSION} (the only version of this format), "
                    f"got {_kind(version)}",
                )

        school: School | None = None
        timezone: str | None = None
        if "school" in top:
            school, timezone = self.school(top["school"])
        profiles = self.profiles(top["profiles"]) if "profiles" in top else {}
        classes = self.classes(top["classes"]) if "classes" in top else {}
        users = self.users(top["users"]) if "users" in top else {}

        if self.problems:
            raise DirectoryError(self.problems)
        if school is None:
            # A part that fails to build always records a problem first.
            raise RuntimeError("the school was not built, yet no problem was recorded")
        return Directory(
            school=school, timezone=timezone, profiles=profiles, classes=classes, users=users
        )

    def school(self, value: object) -> tuple[School | None, str | None]:
        record = "school"
        obj = _as_object(value)
        if obj is None:
            self.add(record, _RECORD, f"must be an object, got {_kind(value)}")
            return None, None
        self.fields(record, obj, required=("id", "name"), allowed=_SCHOOL_FIELDS)
        school_id = self.identifier(record, obj, "id")
        name = self.name(record, obj, "name")
        timezone = self.timezone(record, obj)
        if school_id is None or name is None:
            return None, timezone
        return School(SchoolId(school_id), name), timezone

    def timezone(self, record: str, obj: Mapping[str, object]) -> str | None:
        if "timezone" not in obj:
            return None
        value = obj["timezone"]
        if not isinstance(value, str):
            self.add(record, "timezone", f"must be a string, got {_kind(value)}")
            return None
        if value not in _time_zones():
            self.add(
                record,
                "timezone",
                f"unknown time zone {_quote(value)}: use an IANA name such as "
                f'"{DEFAULT_TIMEZONE}"',
            )
            return None
        return value

    def profiles(self, value: object) -> dict[ProfileId, Profile]:
        profiles: dict[ProfileId, Profile] = {}
        for record, obj in self.records("profiles", value):
            self.check_repeat(record, obj)
            self.fields(record, obj, required=_PROFILE_FIELDS, allowed=_PROFILE_FIELDS)
            profile_id = self.identifier(record, obj, "id")
            name = self.name(record, obj, "name")
            if profile_id is not None and name is not None:
                profiles.setdefault(ProfileId(profile_id), Profile(ProfileId(profile_id), name))
        return profiles

    def classes(self, value: object) -> dict[ClassId, SchoolClass]:
        classes: dict[ClassId, SchoolClass] = {}
        for record, obj in self.records("classes", value):
            self.check_repeat(record, obj)
            self.fields(record, obj, required=("id", "name"), allowed=_CLASS_FIELDS)
            class_id = self.identifier(record, obj, "id")
            name = self.name(record, obj, "name")
            level = self.level(record, obj)
            if class_id is not None and name is not None and level is not None:
                classes.setdefault(
                    ClassId(class_id), SchoolClass(ClassId(class_id), name, level)
                )
        return classes

    def level(self, record: str, obj: Mapping[str, object]) -> str | None:
        if "level" not in obj:
            return ""
        value = obj["level"]
        if not isinstance(value, str):
            self.add(record, "level", f"must be a string, got {_kind(value)}")
            return None
        # Free text and optional, so it may be empty, but bounded like a name.
        level = value.strip()
        if len(level) > MAX_NAME_LENGTH:
            self.add(record, "level", f"must be at most {MAX_NAME_LENGTH} characters")
            return None
        return level

    # -------------------------------------------------------------------- users

    def users(self, value: object) -> dict[UserId, User]:
        entries = self.records("users", value)

        # A first look at every user, because a parent may list a child who
        # comes later in the file. First occurrences only: a duplicate is
        # reported as such, not taken for a second person.
        roles: dict[str, object] = {}
        for _, obj in entries:
            user_id = obj.get("id")
            if isinstance(user_id, str) and is_valid_id(user_id) and user_id not in roles:
                roles[user_id] = obj.get("role")

        users: dict[UserId, User] = {}
        for record, obj in entries:
            user = self.user(record, obj, roles)
            if user is not None:
                users.setdefault(user.id, user)
        return users

    def user(
        self,
        record: str,
        obj: Mapping[str, object],
        roles: Mapping[str, object],
    ) -> User | None:
        self.check_repeat(record, obj)
        role = self.role(record, obj)
        own_fields = _ALL_USER_FIELDS if role is None else _COMMON_USER_FIELDS + _ROLE_FIELDS[role]
        # Without a role, a misplaced field cannot be told from a needed one:
        # only fields that no role has are flagged then.
        self.fields(record, obj, required=_COMMON_USER_FIELDS, allowed=own_fields, role=role)
        user_id = self.identifier(record, obj, "id")
        first_name = self.name(record, obj, "first_name")
        last_name = self.name(record, obj, "last_name")
        profile = self.reference(record, obj, "profile", "profile", "profiles")

        class_id: str | None = None
        children: tuple[UserId, ...] | None = ()
        relations: tuple[tuple[UserId, Relation], ...] | None = ()
        delegate_of: list[tuple[str, str]] | None = []
        teaches: list[tuple[str, str]] | None = []
        admin: bool | None = False
        if role is Role.TEACHER:
            teaches = self.class_list(record, obj, "teaches")
        elif role is Role.STAFF:
            admin = self.boolean(record, obj, "admin")
        elif role is Role.STUDENT:
            if obj.get("class") is None:
                # Missing and null alike: every student belongs to a class (SPEC §1).
                self.add(record, "class", "a student must have a class")
            else:
                class_id = self.reference(record, obj, "class", "class", "classes")
        elif role is Role.PARENT:
            children = self.children(record, obj, roles)
            relations = self.relations(record, obj, children)
            # A delegate may represent a class none of their children is in: the
            # principal designates class-council delegates from the elected lists
            # (SPEC "Clarifications"). The class itself must exist (class_list).
            delegate_of = self.class_list(record, obj, "delegate_of")

        if (
            role is None
            or user_id is None
            or first_name is None
            or last_name is None
            or profile is None
            or (role is Role.STUDENT and class_id is None)
            or children is None
            or relations is None
            or delegate_of is None
            or teaches is None
            or admin is None
        ):
            return None
        return User(
            id=UserId(user_id),
            role=role,
            first_name=first_name,
            last_name=last_name,
            profile=ProfileId(profile),
            class_id=None if class_id is None else ClassId(class_id),
            children=children,
            relations=relations,
            delegate_of=frozenset(ClassId(c) for _, c in delegate_of),
            teaches=frozenset(ClassId(c) for _, c in teaches),
            admin=admin,
        )

    def role(self, record: str, obj: Mapping[str, object]) -> Role | None:
        if "role" not in obj:
            return None  # reported with the other missing fields
        value = obj["role"]
        if not isinstance(value, str):
            self.add(record, "role", f"must be a string ({_ROLE_LIST}), got {_kind(value)}")
            return None
        try:
            return Role(value)
        except ValueError:
            self.add(record, "role", f"unknown role {_quote(value)}: expected {_ROLE_LIST}")
            return None

    def children(
        self, record: str, obj: Mapping[str, object], roles: Mapping[str, object]
    ) -> tuple[UserId, ...] | None:
        """A parent's children: a non-empty list of students, in file order."""
        if "children" not in obj:
            self.add(record, "children", "a parent must have at least one child")
            return None

        def student(field: str, child: str) -> bool:
            if child not in roles:
                self.add(record, field, f"unknown user {_quote(child)}: not in users")
                return False
            child_role = roles[child]
            if child_role == Role.STUDENT.value:
                return True
            # An invalid role is reported on the child's own record instead.
            if isinstance(child_role, str) and child_role in _ROLE_VALUES:
                self.add(record, field, f"{_quote(child)} is a {child_role}, not a student")
            return False

        checked = self.id_list(record, obj, "children", student)
        if checked is None:
            return None
        entries, ok = checked
        if ok and not entries:
            self.add(record, "children", "a parent must have at least one child")
            return None
        return tuple(UserId(child) for _, child in entries) if ok else None

    def relations(
        self, record: str, obj: Mapping[str, object], children: tuple[UserId, ...] | None
    ) -> tuple[tuple[UserId, Relation], ...] | None:
        """A parent's optional ``relations``: ``{child id: relation}``, each child one of
        theirs; in ``children`` order. Absent, every link is ``guardian``."""
        if "relations" not in obj:
            return ()
        value = obj["relations"]
        if not isinstance(value, dict):
            self.add(record, "relations",
                     f"must be an object {{child id: relation}}, got {_kind(value)}")
            return None
        found: dict[UserId, Relation] = {}
        ok = True
        for child, word in value.items():
            field = f"relations.{child}"[:100]
            if children is not None and child not in children:
                self.add(record, field, f"{_quote(str(child))} is not one of this parent's "
                                        "children")
                ok = False
                continue
            relation = parse_relation(word) if isinstance(word, str) else None
            if relation is None:
                self.add(record, field, f"unknown relation {_quote(str(word))[:80]}: expected "
                                        f"one of {relation_choices()}")
                ok = False
                continue
            found[UserId(child)] = relation
        if not ok or children is None:
            return None
        return tuple((c, found[c]) for c in children if c in found)

    def known(self, collection: str, record_id: str) -> bool:
        """Whether a reference to ``record_id`` in ``collection`` stands (see ``declared``)."""
        declared = self.declared[collection]
        return declared is None or record_id in declared

    # ------------------------------------------------------------ shared checks

    def records(
        self, collection: str, value: object
    ) -> list[tuple[str, Mapping[str, object]]]:
        """Each object of a top-level list, with its record name (``users[3] (s-0001)``).

        Reports a value that is not a list and entries that are not objects;
        notes repeated ids for :meth:`check_repeat`. Records with a repeated id
        are still returned, so their other problems are reported too.
        """
        items = _as_list(value)
        if items is None:
            self.add(_FILE, collection, f"must be a list, got {_kind(value)}")
            return []
        result: list[tuple[str, Mapping[str, object]]] = []
        first_seen: dict[str, int] = {}
        for index, item in enumerate(items):
            obj = _as_object(item)
            record = _record_name(collection, index, obj)
            if obj is None:
                self.add(record, _RECORD, f"must be an object, got {_kind(item)}")
                continue
            record_id = obj.get("id")
            if isinstance(record_id, str) and is_valid_id(record_id):
                if record_id in first_seen:
                    # Reported when the record itself is checked, to keep file order.
                    self.repeats[record] = f"{collection}[{first_seen[record_id]}]"
                else:
                    first_seen[record_id] = index
            result.append((record, obj))
        self.declared[collection] = set(first_seen)
        return result

    def check_repeat(self, record: str, obj: Mapping[str, object]) -> None:
        """Report a record whose id an earlier record of its list already has."""
        if record in self.repeats:
            self.add(
                record,
                "id",
                f"duplicate id {_quote(str(obj['id']))}: already used by {self.repeats[record]}",
            )

    def fields(
        self,
        record: str,
        obj: Mapping[str, object],
        *,
        required: tuple[str, ...],
        allowed: tuple[str, ...],
        role: Role | None = None,
    ) -> None:
        """Report missing required fields, then fields that do not belong here."""
        for field in required:
            if field not in obj:
                self.add(record, field, "required field is missing")
        for field in obj:
            if field in allowed:
                continue
            owner = _FIELD_ROLE.get(field)
            if role is not None and owner is not None:
                self.add(
                    record,
                    field,
                    f"not a field of a {role.value} (only {_ROLE_PLURAL[owner]} have it)",
                )
            else:
                self.add(record, field, f"unknown field (expected {', '.join(allowed)})")

    def identifier(self, record: str, obj: Mapping[str, object], field: str) -> str | None:
        if field not in obj:
            return None  # reported as missing
        value = obj[field]
        if not isinstance(value, str):
            self.add(record, field, f"must be a string, got {_kind(value)}")
            return None
        if not is_valid_id(value):
            self.add(
                record,
                field,
                f"invalid id {_quote(value)}: use 1 to {MAX_ID_LENGTH} characters among "
                "A-Z a-z 0-9 . _ -",
            )
            return None
        return value

    def name(self, record: str, obj: Mapping[str, object], field: str) -> str | None:
        if field not in obj:
            return None  # reported as missing
        value = obj[field]
        if not isinstance(value, str):
            self.add(record, field, f"must be a string, got {_kind(value)}")
            return None
        name = value.strip()
        if not name:
            self.add(record, field, "must not be empty")
            return None
        if len(name) > MAX_NAME_LENGTH:
            self.add(
                record, field, f"must be at most {MAX_NAME_LENGTH} characters, got {len(name)}"
            )
            return None
        # A line break or a tab inside a name breaks every list it is shown in.
        if any(unicodedata.category(char) == "Cc" for char in name):
            self.add(record, field, "must not contain control characters (line breaks, tabs)")
            return None
        return name

    def boolean(self, record: str, obj: Mapping[str, object], field: str) -> bool | None:
        value = obj.get(field, False)
        if not isinstance(value, bool):
            self.add(record, field, f"must be true or false, got {_kind(value)}")
            return None
        return value

    def reference(
        self, record: str, obj: Mapping[str, object], field: str, what: str, collection: str
    ) -> str | None:
        """A single id that must name a record of ``collection``."""
        if field not in obj:
            return None  # reported as missing
        value = obj[field]
        if not isinstance(value, str):
            self.add(record, field, f"must be a string (a {what} id), got {_kind(value)}")
            return None
        if not self.known(collection, value):
            self.add(record, field, f"unknown {what} {_quote(value)}: not in {collection}")
            return None
        return value

    def id_list(
        self,
        record: str,
        obj: Mapping[str, object],
        field: str,
        check: Callable[[str, str], bool],
    ) -> tuple[list[tuple[str, str]], bool] | None:
        """The entries of a list of ids, each with its field name (``teaches[2]``).

        ``check(field, id)`` validates each distinct id, reporting and returning
        false if it is wrong. Returns ``(entries, ok)``: ``entries`` leaves out
        non-strings and repeats (reported) and ``ok`` is false if any entry was
        left out or failed its check; ``None`` if the field is not a list.
        """
        value = obj[field]
        items = _as_list(value)
        if items is None:
            self.add(record, field, f"must be a list of ids, got {_kind(value)}")
            return None
        entries: list[tuple[str, str]] = []
        first_index: dict[str, int] = {}
        ok = True
        for index, item in enumerate(items):
            item_field = f"{field}[{index}]"
            if not isinstance(item, str):
                self.add(record, item_field, f"must be a string (an id), got {_kind(item)}")
                ok = False
            elif item in first_index:
                self.add(
                    record,
                    item_field,
                    f"duplicate entry {_quote(item)}: already at {field}[{first_index[item]}]",
                )
                ok = False
            else:
                first_index[item] = index
                entries.append((item_field, item))
                ok = check(item_field, item) and ok
        return entries, ok

    def class_list(
        self, record: str, obj: Mapping[str, object], field: str
    ) -> list[tuple[str, str]] | None:
        """An optional list of class ids (``teaches``, ``delegate_of``); empty if absent."""
        if field not in obj:
            return []

        def known_class(item_field: str, class_id: str) -> bool:
            if self.known("classes", class_id):
                return True
            self.add(record, item_field, f"unknown class {_quote(class_id)}: not in classes")
            return False

        checked = self.id_list(record, obj, field, known_class)
        if checked is None:
            return None
        entries, ok = checked
        return entries if ok else None
