"""Signed, expiring identity tokens (JWT, HS256).

A token names an establishment (``sch``) and a user (``sub``) and expires
(``exp``). Every time claim (``exp``, and ``iat`` and ``nbf`` when present) is
checked against the time passed in, never the wall clock, so the server's
injected clock (``PREAU_CLOCK_START``) governs them all: a clock set a year ahead
accepts the tokens ``preau token`` issues for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from .errors import ErrorCode, Refused
from .model import SchoolId, UserId

__all__ = ["ALGORITHM", "ISSUED_AT_LEEWAY", "Identity", "issue_token", "read_token"]

ALGORITHM = "HS256"

# How far in our future ``iat`` or ``nbf`` may be: an issuer whose clock runs a little
# ahead of ours (NTP keeps that to well under a second) must not sign people out. A
# minute is the usual allowance; beyond it the token is refused as not valid yet.
ISSUED_AT_LEEWAY = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a valid token speaks for, and until when."""

    school_id: SchoolId
    user_id: UserId
    expires_at: datetime


def issue_token(
    secret: str, school_id: SchoolId, user_id: UserId, *, ttl: timedelta, now: datetime
) -> str:
    """A token for ``user_id`` of ``school_id``, valid from ``now`` for ``ttl``."""
    claims = {
        "sch": school_id,
        "sub": user_id,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def read_token(secret: str, token: str, *, now: datetime) -> Identity:
    """The identity in ``token``, or :class:`Refused` (``unauthenticated``) saying why."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            # PyJWT would check these against the wall clock: see below.
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                     "require": ["exp", "sub", "sch"]},
        )
    except jwt.InvalidTokenError as exc:
        raise Refused(ErrorCode.UNAUTHENTICATED, f"Jeton invalide : {exc}.",
                      params={"reason": "invalid"}) from exc
    latest = now.timestamp() + ISSUED_AT_LEEWAY.total_seconds()
    for claim in ("iat", "nbf"):
        value = claims.get(claim)
        if value is None:
            continue
        # Numbers compared as numbers: a huge one cannot overflow a datetime.
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise Refused(ErrorCode.UNAUTHENTICATED, f"Jeton invalide : {claim} mal formé.",
                          params={"reason": "invalid"})
        if value > latest:
            raise Refused(ErrorCode.UNAUTHENTICATED,
                          "Le jeton n'est pas encore valide : il a été émis dans le futur.",
                          params={"reason": "not_yet_valid"})
    sub, sch, exp = claims.get("sub"), claims.get("sch"), claims.get("exp")
    if not isinstance(sub, str) or not isinstance(sch, str) or not isinstance(exp, int):
        raise Refused(ErrorCode.UNAUTHENTICATED, "Jeton invalide : attributs mal formés.",
                      params={"reason": "invalid"})
    try:
        expires_at = datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):  # before year 1 or after 9999, say
        raise Refused(ErrorCode.UNAUTHENTICATED, "Jeton invalide : 'exp' hors limites.",
                      params={"reason": "invalid"}) from None
    if now >= expires_at:
        raise Refused(ErrorCode.UNAUTHENTICATED, "Le jeton a expiré : reconnectez-vous.",
                      params={"reason": "expired"})
    return Identity(SchoolId(sch), UserId(sub), expires_at)
