"""Signed, expiring identity tokens (JWT, HS256).

A token names an establishment (``sch``) and a user (``sub``) and expires
(``exp``). Expiry is checked against the time passed in, not the wall clock,
so the server's injected clock governs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from .errors import ErrorCode, Refused
from .model import SchoolId, UserId

__all__ = ["ALGORITHM", "Identity", "issue_token", "read_token"]

ALGORITHM = "HS256"


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
            options={"verify_exp": False, "require": ["exp", "sub", "sch"]},
        )
    except jwt.InvalidTokenError as exc:
        raise Refused(ErrorCode.UNAUTHENTICATED, f"Invalid token: {exc}.") from exc
    sub, sch, exp = claims.get("sub"), claims.get("sch"), claims.get("exp")
    if not isinstance(sub, str) or not isinstance(sch, str) or not isinstance(exp, int):
        raise Refused(ErrorCode.UNAUTHENTICATED, "Invalid token: malformed claims.")
    try:
        expires_at = datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):  # before year 1 or after 9999, say
        raise Refused(ErrorCode.UNAUTHENTICATED, "Invalid token: 'exp' is out of range.") \
            from None
    if now >= expires_at:
        raise Refused(ErrorCode.UNAUTHENTICATED, "The token has expired: sign in again.")
    return Identity(SchoolId(sch), UserId(sub), expires_at)
