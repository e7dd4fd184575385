"""Stable error codes and the exception tree.

Every refusal Préau sends — over HTTP and over the WebSocket — carries one
:class:`ErrorCode`: a short machine string that never changes meaning once
published, a default human sentence (in French), and the HTTP status it maps to,
plus ``params``: the structured facts of this refusal (who, when, which rule,
which limit), so that any client writes the sentence in its own language.
Clients switch on the code; the sentence is for people. ``docs/protocol.md``
lists every code with its params (``tests/test_error_params.py`` holds them to it).

Exception hierarchy::

    PreauError                      base of everything raised on purpose
    ├── Refused                     a policy or request refusal carrying an ErrorCode
    ├── InvalidSettings             a settings change that cannot be applied (bad_request)
    ├── DirectoryError              a directory file rejected whole, with every problem
    ├── StoreError                  the database failed or disagreed (``retryable``: may work later)
    │   ├── NotFound                a record that does not exist (in this establishment)
    │   ├── UnstorableValue         a value the database cannot hold (bad_request)
    │   └── StoreUnavailable        the database cannot serve now: retry (unavailable, 503)
    │       ├── StoreBusy           another process holds the write lock past the timeout
    │       └── StoreFull           the disk (or the database's size limit) is full
    ├── BrokerUnavailable           pub/sub cannot publish or answer now (server.broker)
    └── ConfigurationError          the server cannot start with this configuration

Codes are append-only: add new members at the end of their group, never renumber
or rename one (``tests/test_errors.py`` freezes them).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "ConfigurationError",
    "DirectoryError",
    "ErrorCode",
    "InvalidSettings",
    "MembersChanged",
    "NotFound",
    "PreauError",
    "Problem",
    "Refused",
    "StoreBusy",
    "StoreError",
    "StoreFull",
    "StoreUnavailable",
    "UnstorableValue",
    "iso",
    "wire_params",
]


class ErrorCode(enum.StrEnum):
    """A stable refusal code: ``code.value`` is the wire string.

    Each member also has ``status`` (the HTTP status it maps to), ``phrase``
    (a default sentence for people) and ``rule`` (the SPEC rule it enforces,
    or ``""``).
    """

    status: int
    phrase: str
    rule: str

    def __new__(cls, value: str, status: int, rule: str, phrase: str) -> ErrorCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.status = status
        member.rule = rule
        member.phrase = phrase
        return member

    # Request and authentication.
    UNAUTHENTICATED = (
        "unauthenticated", 401, "", "Reconnectez-vous : le jeton est absent, invalide ou expiré."
    )
    BAD_REQUEST = ("bad_request", 400, "", "La requête est mal formée.")
    TOO_LARGE = ("too_large", 413, "", "La requête est trop volumineuse.")
    RATE_LIMITED = ("rate_limited", 429, "", "Trop de requêtes : ralentissez puis réessayez.")
    FORBIDDEN = ("forbidden", 403, "", "Seul un administrateur de l'établissement peut faire cela.")
    NOT_FOUND = ("not_found", 404, "", "Cela n'existe pas ici.")
    TOKEN_EXPIRED = (
        "token_expired", 401, "", "Le jeton a expiré : reconnectez-vous avec un nouveau jeton."
    )

    # Gatekeeper, in precedence order for the first four.
    DISCUSSIONS_DISABLED = (
        "discussions_disabled", 403, "G1",
        "Les discussions sont désactivées dans cet établissement."
    )
    PROFILE_DISABLED = (
        "profile_disabled", 403, "G2", "Les discussions sont désactivées pour votre profil."
    )
    OUTSIDE_HOURS = (
        "outside_hours", 403, "G3", "Les discussions sont fermées à cette heure."
    )
    CANNOT_INITIATE = (
        "cannot_initiate", 403, "G4",
        "Vous pouvez répondre dans les discussions, mais pas en commencer une."
    )
    RECIPIENT_NOT_ALLOWED = (
        "recipient_not_allowed", 403, "G5",
        "Vous ne pouvez pas commencer de discussion avec cette personne."
    )
    NOT_PARTICIPANT = (
        "not_participant", 403, "G6", "Vous ne participez pas à cette discussion."
    )
    NOT_INVITED_BY_SUPERVISOR = (
        "not_invited_by_supervisor",
        403,
        "G6",
        "Certains participants ne peuvent échanger qu'en présence du professeur ou du "
        "personnel qui les a invités.",
    )
    PARENT_MESSAGING_DISABLED = (
        "parent_messaging_disabled", 403, "G5", "La messagerie entre parents est désactivée."
    )
    NOT_OPTED_IN = (
        "not_opted_in",
        403,
        "G5",
        "Les deux parents doivent avoir activé la messagerie entre parents.",
    )
    CANNOT_INVITE = (
        "cannot_invite", 403, "G7", "Seul un professeur ou un personnel présent peut inviter."
    )
    ALREADY_PARTICIPANT = (
        "already_participant", 409, "G7", "Cette personne participe déjà à la discussion."
    )
    BROADCAST_NOT_ALLOWED = (
        "broadcast_not_allowed", 403, "G8",
        "Vous ne pouvez pas leur envoyer d'informations ni de sondages."
    )
    POLL_CLOSED = ("poll_closed", 409, "G8", "Le sondage est clos : sa date limite est passée.")

    # Sign-in through a school's identity provider (server/signin/).
    INVALID_GRANT = ("invalid_grant", 400, "",
                     "This sign-in code is unknown, used, expired, or not yours.")
    UNKNOWN_ACCOUNT = ("unknown_account", 403, "",
                       "This account is not an active user of the school.")
    PROVIDER_ERROR = ("provider_error", 502, "",
                      "The school's identity provider did not complete the sign-in.")
    # Store and server.
    CONFLICT = ("conflict", 409, "", "La requête contredit ce qui est enregistré.")
    INTERNAL = ("internal", 500, "", "Une erreur est survenue sur le serveur.")
    UNAVAILABLE = (
        "unavailable", 503, "",
        "Le serveur ne peut pas enregistrer cela pour le moment : réessayez dans un instant."
    )


class PreauError(Exception):
    """Base of every exception Préau raises on purpose."""


class Refused(PreauError):
    """A request refused with a stable :class:`ErrorCode`.

    ``message`` defaults to the code's phrase; ``retry_at`` says when a
    temporary refusal (``outside_hours``, ``rate_limited``) lifts; ``params`` are
    the structured facts a client needs to word it (JSON values only).
    """

    def __init__(
        self, code: ErrorCode, message: str | None = None, *, retry_at: datetime | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.code = code
        self.message = message or code.phrase
        self.retry_at = retry_at
        self.params: Mapping[str, Any] = params or {}
        super().__init__(f"{code.value}: {self.message}")


def iso(dt: datetime) -> str:
    """An instant as ISO 8601 in UTC with a ``Z``, the protocol's one format."""
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def wire_params(code: ErrorCode, params: Mapping[str, Any] | None = None,
                retry_at: datetime | None = None) -> dict[str, Any]:
    """The ``params`` object of an error on the wire: ``rule`` (G1–G8) when the code
    enforces one, the refusal's own facts, and ``retry_at`` when it lifts by itself."""
    out: dict[str, Any] = {"rule": code.rule} if code.rule else {}
    if params:
        out.update(params)
    if retry_at is not None:
        out["retry_at"] = iso(retry_at)
    return out


class InvalidSettings(PreauError):
    """A settings change that cannot be applied; ``str(exc)`` says why (in French) and
    ``field``, when known, is the dotted name of the setting at fault (``params.field``
    of the ``bad_request`` a client gets)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in an imported file: which record, which field, what."""

    record: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.record}: {self.field}: {self.message}"


class DirectoryError(PreauError):
    """A directory file rejected whole; ``problems`` lists every bad record and field."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"the directory was rejected ({count} {noun}):\n{lines}")


class StoreError(PreauError):
    """The database failed or refused an operation.

    ``retryable`` says whether the same request may succeed later unchanged (the
    database was busy, full or unreachable): clients get ``unavailable`` (503)
    for those, ``internal`` (500) for the others.
    """

    retryable = False


class NotFound(StoreError):
    """A record that does not exist in this establishment."""


class MembersChanged(StoreError):
    """The discussion's participants changed (a join or a leave) since the write was
    checked against them: the gatekeeper must decide again with the new ones, so that
    nothing is stored on a decision about people who are no longer those present."""

    retryable = True


class UnstorableValue(StoreError):
    """A value the database cannot hold: text that is not valid Unicode, an integer
    beyond 64 bits. The request is at fault, not the database (``bad_request``)."""


class StoreUnavailable(StoreError):
    """The database cannot serve now (I/O error, cannot open, read-only…); nothing
    was written. The message keeps the driver's own words."""

    retryable = True


class StoreBusy(StoreUnavailable):
    """Another connection held the write lock for longer than the busy timeout."""


class StoreFull(StoreUnavailable):
    """The disk, or the database's page limit, is full: nothing more can be written."""


class ConfigurationError(PreauError):
    """The server cannot start with this configuration; the message says what to set."""
