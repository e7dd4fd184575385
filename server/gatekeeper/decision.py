"""The gatekeeper's answer: a :class:`Decision` value, never an exception.

Every ``check_*`` of :class:`~server.gatekeeper.Gatekeeper` returns one. The
caller either goes ahead (``allowed``), goes ahead but holds the message until
``hold_until`` (defer mode outside the allowed hours, G3), or replies with the
refusal's ``code``, ``message`` and ``params`` — calling :meth:`Decision.raise_for_refusal`
where an exception is more convenient (HTTP handlers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from server.errors import ErrorCode, Refused
from server.model import UserId

__all__ = ["ALLOW", "Decision", "hold", "refuse"]

_NO_PARAMS: Mapping[str, Any] = MappingProxyType({})


def _no_params() -> Mapping[str, Any]:
    return _NO_PARAMS  # shared: no allocation for the many decisions without params


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether one action may proceed and, if not, why.

    Contract (checked at construction, so a malformed decision fails loudly):

    - allowed: ``code`` is ``None``, ``message`` empty and ``retry_at`` ``None``;
      ``hold_until``, when set, is the instant the message may be delivered;
      ``hidden_from`` names the present participants the message must never
      reach (switched off, or out of the directory, when it is posted: the
      invariant of ``docs/policy.md``). Empty in the usual case.
    - refused: ``code`` is set and ``message`` is a sentence for people;
      ``retry_at``, when set, is when the refusal lifts by itself
      (``outside_hours``); ``hold_until`` is ``None``; ``params`` are the
      refusal's structured facts (JSON values: names, ids, ISO 8601 instants,
      limits) from which a client words it in its own language
      (``docs/protocol.md`` lists them per code).

    Instants are timezone-aware (UTC). Decisions are immutable values: equal
    inputs give equal decisions, so they may be compared and shared.
    """

    allowed: bool
    code: ErrorCode | None = None
    message: str = ""
    retry_at: datetime | None = None
    hold_until: datetime | None = None
    hidden_from: frozenset[UserId] = frozenset()
    params: Mapping[str, Any] = field(default_factory=_no_params)

    def __post_init__(self) -> None:
        if self.allowed:
            if (self.code is not None or self.message or self.retry_at is not None
                    or self.params):
                raise ValueError("an allowed Decision carries no code, message or retry_at")
        elif (self.code is None or not self.message or self.hold_until is not None
              or self.hidden_from):
            raise ValueError("a refused Decision needs a code and a message, and no "
                             "hold_until or hidden_from")

    def raise_for_refusal(self) -> None:
        """Raise :class:`~server.errors.Refused` if this is a refusal; do nothing otherwise."""
        if self.allowed:
            return
        assert self.code is not None  # guaranteed by __post_init__
        raise Refused(self.code, self.message, retry_at=self.retry_at, params=self.params)


ALLOW = Decision(allowed=True)
"""The plain "go ahead" (shared: decisions are immutable)."""


def refuse(
    code: ErrorCode, message: str | None = None, *, retry_at: datetime | None = None,
    params: Mapping[str, Any] | None = None,
) -> Decision:
    """A refusal with ``code``; ``message`` defaults to the code's phrase."""
    return Decision(allowed=False, code=code, message=message or code.phrase, retry_at=retry_at,
                    params=MappingProxyType(dict(params)) if params else _NO_PARAMS)


def hold(until: datetime) -> Decision:
    """An acceptance whose message is held and delivered at ``until`` (defer mode, G3)."""
    return Decision(allowed=True, hold_until=until)
