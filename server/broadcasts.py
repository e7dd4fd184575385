"""Information broadcasts and polls as values: a draft, its questions, an answer set.

Pure functions, no I/O: :func:`parse_draft` turns a client's JSON into a
:class:`Draft` (or raises :class:`~server.errors.Refused` with ``bad_request``
naming the field), :func:`parse_answers` checks one recipient's answer set
against the poll's questions, and :func:`tally_changes` says which per-choice
counters an answer change moves. Who may send to whom is G8, in
:mod:`server.gatekeeper.broadcast`; storing and delivering are the store's and
the noticeboard's. The wire format is ``docs/protocol.md`` §14.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import ErrorCode, Refused
from .gatekeeper import BroadcastTarget
from .model import ClassId, Role, UserId

__all__ = [
    "DEFAULT_POLL_DAYS",
    "REMINDER_INTERVAL",
    "Draft",
    "Kind",
    "Question",
    "QuestionKind",
    "parse_answers",
    "parse_datetime",
    "parse_draft",
    "parse_target",
    "questions_from_json",
    "questions_to_json",
    "tally_changes",
    "target_to_json",
]

# A poll without a deadline closes at the end of the school day (the allowed hours'
# ``end``, in the school's time zone) this many local days after its publication.
DEFAULT_POLL_DAYS = 15
MAX_AHEAD = timedelta(days=366)        # publish_at, expires_at and deadline
REMINDER_INTERVAL = timedelta(minutes=10)
MAX_TITLE_CHARS = 200
MAX_BODY_CHARS = 8000
MAX_CLIENT_ID_CHARS = 64
MAX_QUESTIONS = 20
MAX_QUESTION_CHARS = 300
MIN_CHOICES, MAX_CHOICES = 2, 20
MAX_CHOICE_CHARS = 200
MAX_ANSWER_CHARS = 2000
MAX_TARGET_ITEMS = 500                 # roles, classes or users named in one audience

Answer = dict[str, Any]  # {"choices": [int, ...]} or {"text": str}


class Kind(enum.StrEnum):
    INFORMATION = "information"
    POLL = "poll"


class QuestionKind(enum.StrEnum):
    SINGLE = "single"
    MULTIPLE = "multiple"
    TEXT = "text"


@dataclass(frozen=True, slots=True)
class Question:
    """One poll question; ``choices`` is empty and ``max`` ``None`` for free text.

    ``required`` is for free text only: whether the answer may be left empty. A choice
    question always takes a choice.
    """

    text: str
    kind: QuestionKind
    choices: tuple[str, ...] = ()
    max: int | None = None
    required: bool = True


@dataclass(frozen=True, slots=True)
class Draft:
    """A validated request to create a broadcast (times are UTC)."""

    kind: Kind
    client_id: str
    title: str
    body: str
    target: BroadcastTarget
    ack_requested: bool = False
    publish_at: datetime | None = None     # None: now
    expires_at: datetime | None = None
    questions: tuple[Question, ...] = ()
    anonymous: bool = False
    deadline: datetime | None = None       # None: see DEFAULT_POLL_DAYS


def _bad(message: str, **params: Any) -> Refused:
    """``bad_request`` with a French sentence and its params (``field``, ``question``…)."""
    return Refused(ErrorCode.BAD_REQUEST, message, params=params)


def _text(obj: Mapping[str, Any], name: str, max_chars: int, *, required: bool = True,
          label: str | None = None, **where: Any) -> str:
    label = label or f"'{name}'"
    value = obj.get(name, None if required else "")
    if not isinstance(value, str):
        raise _bad(f"{label} doit être une chaîne.", field=name, **where)
    if required and not value.strip():
        raise _bad(f"{label} ne doit pas être vide.", field=name, **where)
    if len(value) > max_chars:
        raise _bad(f"{label} est limité à {max_chars} caractères.", field=name,
                   max_chars=max_chars, **where)
    return value


def _bool(obj: Mapping[str, Any], name: str) -> bool:
    value = obj.get(name, False)
    if not isinstance(value, bool):
        raise _bad(f"'{name}' doit valoir true ou false.", field=name)
    return value


def parse_datetime(value: object, name: str) -> datetime:
    """An ISO 8601 time with its offset (``Z`` or ``+01:00``), as UTC."""
    if not isinstance(value, str):
        raise _bad(f"'{name}' doit être une heure ISO 8601, par exemple "
                   "2026-12-01T08:00:00Z.", field=name)
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise _bad(f"'{name}' n'est pas une heure ISO 8601 : {value!r}.", field=name) from None
    if dt.tzinfo is None:
        raise _bad(f"'{name}' doit préciser son décalage horaire (Z ou +01:00).", field=name)
    try:
        return dt.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first UTC instant
        raise _bad(f"'{name}' est hors limites : {value!r}.", field=name) from None


def _ids(value: object, name: str) -> frozenset[str]:
    if not isinstance(value, list) or len(value) > MAX_TARGET_ITEMS or not all(
            isinstance(x, str) and x for x in value):
        raise _bad(f"'to.{name}' doit être une liste d'au plus {MAX_TARGET_ITEMS} identifiants.",
                   field=f"to.{name}", max=MAX_TARGET_ITEMS)
    return frozenset(value)


def parse_target(obj: object) -> BroadcastTarget:
    """The audience ``{"roles": [...], "classes": [...] | null, "users": [...]}``."""
    if not isinstance(obj, dict):
        raise _bad("'to' doit être un objet avec 'roles', 'classes' et/ou 'users'.",
                   field="to")
    unknown = set(obj) - {"roles", "classes", "users"}
    if unknown:
        raise _bad(f"Champ inconnu 'to.{sorted(unknown)[0]}'.",
                   field=f"to.{sorted(unknown)[0]}")
    roles_raw = _ids(obj.get("roles", []), "roles")
    try:
        roles = frozenset(Role(r) for r in roles_raw)
    except ValueError:
        raise _bad("'to.roles' contient student, parent, teacher ou staff.",
                   field="to.roles") from None
    classes_raw = obj.get("classes")
    classes = None if classes_raw is None else frozenset(
        ClassId(c) for c in _ids(classes_raw, "classes"))
    users = frozenset(UserId(u) for u in _ids(obj.get("users", []), "users"))
    target = BroadcastTarget(roles=roles, classes=classes, users=users)
    if target.empty:
        raise _bad("'to' doit nommer au moins un rôle ou une personne.", field="to")
    return target


def target_to_json(target: BroadcastTarget) -> dict[str, Any]:
    return {"roles": sorted(r.value for r in target.roles),
            "classes": None if target.classes is None else sorted(target.classes),
            "users": sorted(target.users)}


def _question(obj: object, i: int, *, stored: bool) -> Question:
    label = f"question {i + 1}"
    q = {"question": i + 1}
    if not isinstance(obj, dict):
        raise _bad(f"{label} : un objet avec 'text' et 'kind' est attendu.", field="questions",
                   **q)
    text = _text(obj, "text", MAX_QUESTION_CHARS, label=f"{label} : 'text'", question=i + 1)
    try:
        kind = QuestionKind(str(obj.get("kind")))
    except ValueError:
        raise _bad(f"{label} : 'kind' vaut single, multiple ou text.", field="kind",
                   **q) from None
    if kind is QuestionKind.TEXT:
        if obj.get("choices") or obj.get("max") is not None:
            raise _bad(f"{label} : une question à réponse libre n'a ni "
                       "'choices' ni 'max'.", field="choices", **q)
        # Optional unless the author says otherwise; a poll stored before the field
        # existed keeps the rule it was published with: its text answers are required.
        required = obj.get("required", stored)
        if not isinstance(required, bool):
            raise _bad(f"{label} : 'required' vaut true ou false.", field="required", **q)
        return Question(text, kind, required=required)
    if "required" in obj:
        raise _bad(f"{label} : 'required' ne vaut que pour les réponses libres ; "
                   "un choix est toujours obligatoire.", field="required", **q)
    raw = obj.get("choices")
    if not isinstance(raw, list) or not MIN_CHOICES <= len(raw) <= MAX_CHOICES:
        raise _bad(f"{label} : 'choices' doit être une liste de {MIN_CHOICES} à {MAX_CHOICES} "
                   "chaînes.", field="choices", min=MIN_CHOICES, max=MAX_CHOICES, **q)
    choices = []
    for j, choice in enumerate(raw):
        if not isinstance(choice, str) or not choice.strip():
            raise _bad(f"{label} : le choix {j + 1} doit être une chaîne non vide.",
                       field="choices", choice=j + 1, **q)
        if len(choice) > MAX_CHOICE_CHARS:
            raise _bad(f"{label} : le choix {j + 1} est limité à {MAX_CHOICE_CHARS} caractères.",
                       field="choices", choice=j + 1, max_chars=MAX_CHOICE_CHARS, **q)
        choices.append(choice)
    if len(set(choices)) != len(choices):
        raise _bad(f"{label} : deux choix sont identiques.", field="choices", **q)
    most = obj.get("max")
    if kind is QuestionKind.SINGLE:
        if most is not None:
            raise _bad(f"{label} : 'max' ne vaut que pour les questions à choix multiples.",
                       field="max", **q)
    elif most is not None and (not isinstance(most, int) or isinstance(most, bool)
                               or not 1 <= most <= len(choices)):
        raise _bad(f"{label} : 'max' doit être un entier de 1 à {len(choices)}.", field="max",
                   min=1, max=len(choices), **q)
    return Question(text, kind, tuple(choices), most)


def questions_from_json(raw: object, *, stored: bool = False) -> tuple[Question, ...]:
    """A poll's questions, validated (``bad_request`` names the question at fault).

    ``stored``: read back from the database, where a text question without
    ``required`` was written before the field existed, when every text answer was
    required; in a request, a text question without it is optional.
    """
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_QUESTIONS:
        raise _bad(f"'questions' doit être une liste de 1 à {MAX_QUESTIONS} questions.",
                   field="questions", min=1, max=MAX_QUESTIONS)
    return tuple(_question(q, i, stored=stored) for i, q in enumerate(raw))


def questions_to_json(questions: Sequence[Question]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for q in questions:
        item: dict[str, Any] = {"text": q.text, "kind": q.kind.value}
        if q.kind is QuestionKind.TEXT:
            item["required"] = q.required
        else:
            item["choices"] = list(q.choices)
            if q.max is not None:
                item["max"] = q.max
        out.append(item)
    return out


_DRAFT_FIELDS = frozenset({"kind", "client_id", "title", "body", "to", "ack_requested",
                           "publish_at", "expires_at", "questions", "anonymous", "deadline"})


def parse_draft(obj: object, now: datetime) -> Draft:
    """A creation request, validated whole; ``Refused(bad_request)`` names the field."""
    if not isinstance(obj, dict):
        raise _bad("Le corps doit être un objet JSON.", field="body")
    unknown = set(obj) - _DRAFT_FIELDS
    if unknown:
        raise _bad(f"Champ inconnu {sorted(unknown)[0]!r}.",
                   field=sorted(unknown)[0])
    try:
        kind = Kind(str(obj.get("kind")))
    except ValueError:
        raise _bad("'kind' vaut information ou poll.", field="kind") from None
    client_id = _text(obj, "client_id", MAX_CLIENT_ID_CHARS)
    title = _text(obj, "title", MAX_TITLE_CHARS)
    body = _text(obj, "body", MAX_BODY_CHARS, required=False)
    if "to" not in obj:
        raise _bad("'to' est obligatoire : à qui s'adresse la diffusion.", field="to")
    target = parse_target(obj["to"])
    limit = now + MAX_AHEAD
    publish_at = None
    if obj.get("publish_at") is not None:
        publish_at = parse_datetime(obj["publish_at"], "publish_at")
        if publish_at > limit:
            raise _bad("'publish_at' doit tomber dans l'année qui vient.", field="publish_at")
        if publish_at <= now:
            publish_at = None  # a time already past: publish now
    start = publish_at or now
    expires_at = None
    if obj.get("expires_at") is not None:
        expires_at = parse_datetime(obj["expires_at"], "expires_at")
        if expires_at <= start or expires_at > start + MAX_AHEAD:
            raise _bad("'expires_at' doit venir après la publication, dans l'année.",
                       field="expires_at")
    ack = _bool(obj, "ack_requested")
    anonymous = _bool(obj, "anonymous")
    questions: tuple[Question, ...] = ()
    deadline = None
    if kind is Kind.POLL:
        if ack:
            raise _bad("'ack_requested' ne vaut que pour une information : la réponse à un "
                       "sondage en tient lieu.", field="ack_requested")
        questions = questions_from_json(obj.get("questions"))
        if obj.get("deadline") is not None:
            deadline = parse_datetime(obj["deadline"], "deadline")
            if deadline <= start or deadline > start + MAX_AHEAD:
                raise _bad("'deadline' doit venir après la publication, dans l'année.",
                           field="deadline")
    else:
        for name in ("questions", "deadline"):
            if obj.get(name) is not None:
                raise _bad(f"'{name}' ne vaut que pour un sondage.", field=name)
        if anonymous:
            raise _bad("'anonymous' ne vaut que pour un sondage.", field="anonymous")
    return Draft(kind, client_id, title, body, target, ack, publish_at, expires_at,
                 questions, anonymous, deadline)


def parse_answers(questions: Sequence[Question], raw: object) -> list[Answer]:
    """One recipient's answer set, one answer per question in order, normalised
    (choice indexes sorted); ``Refused(bad_request)`` names the question at fault."""
    if not isinstance(raw, list) or len(raw) != len(questions):
        raise _bad(f"'answers' doit être une liste de {len(questions)} réponses, une par "
                   "question.", field="answers")
    out: list[Answer] = []
    for i, (q, a) in enumerate(zip(questions, raw, strict=True)):
        label = f"réponse {i + 1}"
        where = {"field": "answers", "question": i + 1}
        if not isinstance(a, dict):
            raise _bad(f"{label} : un objet est attendu.", **where)
        if q.kind is QuestionKind.TEXT:
            if set(a) != {"text"}:
                raise _bad(f"{label} : la question {i + 1} attend {{'text': ...}}.", **where)
            text = _text(a, "text", MAX_ANSWER_CHARS, required=q.required,
                         label=f"{label} : 'text'", question=i + 1)
            # An optional question left blank is stored as "", whatever blanks were sent.
            out.append({"text": text if text.strip() else ""})
            continue
        picks = a.get("choices")
        if set(a) != {"choices"} or not isinstance(picks, list) or not all(
                isinstance(c, int) and not isinstance(c, bool) for c in picks):
            raise _bad(f"{label} : la question {i + 1} attend {{'choices': [indices]}}.",
                       **where)
        if len(set(picks)) != len(picks) or any(not 0 <= c < len(q.choices) for c in picks):
            raise _bad(f"{label} : les choix sont des indices distincts de 0 à "
                       f"{len(q.choices) - 1}.", **where)
        most = 1 if q.kind is QuestionKind.SINGLE else (q.max or len(q.choices))
        if not 1 <= len(picks) <= most:
            raise _bad(f"{label} : choisissez {'un' if most == 1 else f'de 1 à {most}'} "
                       "des choix.", min=1, max=most, **where)
        out.append({"choices": sorted(picks)})
    return out


def tally_changes(old: Sequence[Answer] | None, new: Sequence[Answer]
                  ) -> dict[tuple[int, int], int]:
    """``{(question, choice): delta}`` when an answer set ``old`` becomes ``new``.

    Only choice answers count; pairs whose count does not change are left out.
    """
    delta: dict[tuple[int, int], int] = {}
    for sign, answers in ((-1, old or ()), (1, new)):
        for i, a in enumerate(answers):
            for c in a.get("choices", ()):
                delta[(i, c)] = delta.get((i, c), 0) + sign
    return {k: v for k, v in delta.items() if v}
