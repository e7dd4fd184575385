"""Stable error codes and the exception tree.

Every refusal Préau sends — over HTTP, and later over the WebSocket — carries one
:class:`ErrorCode`: a short machine string that never changes meaning once
published, a default human sentence, and the HTTP status it maps to. Clients
switch on the code; the sentence is for people.

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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

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
        "unauthenticated", 401, "", "Sign in again: the token is missing, invalid or expired."
    )
    BAD_REQUEST = ("bad_request", 400, "", "The request is malformed.")
    TOO_LARGE = ("too_large", 413, "", "The request is too large.")
    RATE_LIMITED = ("rate_limited", 429, "", "Too many requests: slow down and retry.")
    FORBIDDEN = ("forbidden", 403, "", "Only an administrator of the school may do this.")
    NOT_FOUND = ("not_found", 404, "", "There is no such thing here.")
    TOKEN_EXPIRED = (
        "token_expired", 401, "", "The token has expired: reconnect with a fresh one."
    )

    # Gatekeeper, in precedence order for the first four.
    DISCUSSIONS_DISABLED = (
        "discussions_disabled", 403, "G1", "Discussions are switched off in this school."
    )
    PROFILE_DISABLED = (
        "profile_disabled", 403, "G2", "Discussions are switched off for your profile."
    )
    OUTSIDE_HOURS = (
        "outside_hours", 403, "G3", "Discussions are closed at this hour."
    )
    CANNOT_INITIATE = (
        "cannot_initiate", 403, "G4", "You may reply in discussions but not start one."
    )
    RECIPIENT_NOT_ALLOWED = (
        "recipient_not_allowed", 403, "G5", "You cannot start a discussion with this person."
    )
    NOT_PARTICIPANT = (
        "not_participant", 403, "G6", "You are not a participant of this discussion."
    )
    NOT_INVITED_BY_SUPERVISOR = (
        "not_invited_by_supervisor",
        403,
        "G6",
        "Some participants may only talk to each other while the teacher or staff member "
        "who brought them in is present.",
    )
    PARENT_MESSAGING_DISABLED = (
        "parent_messaging_disabled", 403, "G5", "Messaging between parents is switched off."
    )
    NOT_OPTED_IN = (
        "not_opted_in",
        403,
        "G5",
        "Both parents must have switched on messaging between parents.",
    )
    CANNOT_INVITE = (
        "cannot_invite", 403, "G7", "Only a teacher or a staff member present may invite."
    )
    ALREADY_PARTICIPANT = (
        "already_participant", 409, "G7", "This person is already in the discussion."
    )
    BROADCAST_NOT_ALLOWED = (
        "broadcast_not_allowed", 403, "G8", "You cannot send information or polls to them."
    )
    POLL_CLOSED = ("poll_closed", 409, "G8", "The poll is closed: its deadline has passed.")

    # Sign-in through a school's identity provider (server/signin/).
    INVALID_GRANT = ("invalid_grant", 400, "",
                     "This sign-in code is unknown, used, expired, or not yours.")
    UNKNOWN_ACCOUNT = ("unknown_account", 403, "",
                       "This account is not an active user of the school.")
    PROVIDER_ERROR = ("provider_error", 502, "",
                      "The school's identity provider did not complete the sign-in.")
    # Store and server.
    CONFLICT = ("conflict", 409, "", "The request conflicts with what is stored.")
    INTERNAL = ("internal", 500, "", "Something went wrong on the server.")
    UNAVAILABLE = (
        "unavailable", 503, "", "The server cannot store this right now: retry in a moment."
    )


class PreauError(Exception):
    """Base of every exception Préau raises on purpose."""


class Refused(PreauError):
    """A request refused with a stable :class:`ErrorCode`.

    ``message`` defaults to the code's phrase; ``retry_at`` says when a
    temporary refusal (``outside_hours``) lifts.
    """

    def __init__(
        self, code: ErrorCode, message: str | None = None, *, retry_at: datetime | None = None
    ) -> None:
        self.code = code
        self.message = message or code.phrase
        self.retry_at = retry_at
        super().__init__(f"{code.value}: {self.message}")


class InvalidSettings(PreauError):
    """A settings change that cannot be applied; ``str(exc)`` says why."""


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
