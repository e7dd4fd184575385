"""Signed, expiring identity tokens (JWT) and the :class:`Verifier` seam that reads them.

Préau's own tokens (``preau token``, the demo, the sign-in flows) are HS256 with
``PREAU_JWT_SECRET``; they name an establishment (``sch``) and a user (``sub``),
expire (``exp``), and may carry the session they belong to (``sid``). A host
application may mint its own tokens instead (``server/host_tokens.py``,
``server/jwks.py``): they go through the same :class:`Verifier` seam.

Every time claim (``exp``, and ``iat`` and ``nbf`` when present) is checked against
the time passed in, never the wall clock, so the server's injected clock
(``PREAU_CLOCK_START``) governs them all: a clock set a year ahead accepts the tokens
``preau token`` issues for it. The algorithm is always the one the verifier was
built with; the token's own ``alg`` header is only compared with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import jwt

from .errors import ErrorCode, Refused
from .model import SchoolId, UserId

__all__ = ["ALGORITHM", "ISSUED_AT_LEEWAY", "Identity", "SecretVerifier", "Verifier",
           "checked_header", "decode_claims", "identity_from_claims", "issue_token",
           "read_token", "warning_time"]

ALGORITHM = "HS256"

# How far in our future ``iat`` or ``nbf`` may be: an issuer whose clock runs a little
# ahead of ours (NTP keeps that to well under a second) must not sign people out. A
# minute is the usual allowance; beyond it the token is refused as not valid yet.
ISSUED_AT_LEEWAY = timedelta(seconds=60)
# A connection hears ``token_expiring`` this long before its token expires, or after
# four fifths of the token's remaining life when that is shorter (docs/protocol.md).
EXPIRY_WARNING = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a valid token speaks for, and until when; ``session_id`` is the ``sid``
    claim of Préau's own tokens (the sign-in session it belongs to), if any."""

    school_id: SchoolId
    user_id: UserId
    expires_at: datetime
    session_id: str | None = None


class Verifier(Protocol):
    """Reads a token: its :class:`Identity`, or :class:`Refused` saying why not.

    ``unauthenticated`` for a token that is not good; ``unavailable`` when the
    verifier cannot tell now (a host's key set cannot be fetched): retry later.
    """

    async def verify(self, token: str, now: datetime) -> Identity: ...


def issue_token(
    secret: str, school_id: SchoolId, user_id: UserId, *, ttl: timedelta, now: datetime,
    session_id: str | None = None,
) -> str:
    """A token for ``user_id`` of ``school_id``, valid from ``now`` for ``ttl``."""
    claims: dict[str, Any] = {
        "sch": school_id,
        "sub": user_id,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    if session_id is not None:
        claims["sid"] = session_id
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def checked_header(token: str, algorithm: str) -> dict[str, Any]:
    """The (unverified) header of ``token``, whose ``alg`` must be ``algorithm``: said
    before any key is looked at, so ``none``, or HS256 keyed with a public key, never
    passes. :class:`Refused` (``unauthenticated``) otherwise."""
    try:
        header: dict[str, Any] = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise Refused(ErrorCode.UNAUTHENTICATED, f"Jeton invalide : {exc}.",
                      params={"reason": "invalid"}) from exc
    alg = header.get("alg")
    if alg != algorithm:
        shown = alg[:16] if isinstance(alg, str) else alg
        raise Refused(ErrorCode.UNAUTHENTICATED,
                      f"Jeton invalide : signé avec {shown!r}, ce serveur attend {algorithm}.",
                      params={"reason": "invalid"})
    return header


def decode_claims(token: str, key: Any, *, algorithm: str, issuer: str | None = None,
                  audience: str | None = None) -> dict[str, Any]:
    """The claims of ``token`` signed by ``key`` with ``algorithm`` (and no other), its
    ``iss`` and ``aud`` checked when given; time claims are left to
    :func:`identity_from_claims`. :class:`Refused` (``unauthenticated``) otherwise."""
    checked_header(token, algorithm)
    required = ["exp"] + (["iss"] if issuer is not None else []) \
        + (["aud"] if audience is not None else [])
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=[algorithm], issuer=issuer, audience=audience,
            # PyJWT would check these against the wall clock: see identity_from_claims.
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                     "verify_aud": audience is not None, "require": required})
    except jwt.InvalidTokenError as exc:
        raise Refused(ErrorCode.UNAUTHENTICATED, f"Jeton invalide : {exc}.",
                      params={"reason": "invalid"}) from exc
    return claims


def identity_from_claims(claims: Mapping[str, Any], *, now: datetime, user_claim: str = "sub",
                         school: SchoolId | None = None) -> Identity:
    """The identity the (verified) ``claims`` name, their time claims checked at ``now``.

    ``school`` is the establishment the verifier serves (a host's tokens); ``None``
    reads it from ``sch`` (Préau's own tokens, which may also carry ``sid``).
    """
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
    sub, sch, exp = claims.get(user_claim), claims.get("sch"), claims.get("exp")
    if school is not None and sch is not None and sch != school:
        raise Refused(ErrorCode.UNAUTHENTICATED, "Le jeton désigne un autre établissement.",
                      params={"reason": "unknown_school"})
    if school is None and not isinstance(sch, str):
        raise Refused(ErrorCode.UNAUTHENTICATED, "Jeton invalide : attributs mal formés.",
                      params={"reason": "invalid"})
    if not isinstance(sub, str) or not sub or not isinstance(exp, int) \
            or isinstance(exp, bool):
        raise Refused(ErrorCode.UNAUTHENTICATED,
                      f"Jeton invalide : attributs mal formés (l'utilisateur est dans "
                      f"{user_claim!r}).", params={"reason": "invalid"})
    try:
        expires_at = datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):  # before year 1 or after 9999, say
        raise Refused(ErrorCode.UNAUTHENTICATED, "Jeton invalide : 'exp' hors limites.",
                      params={"reason": "invalid"}) from None
    if now >= expires_at:
        raise Refused(ErrorCode.UNAUTHENTICATED, "Le jeton a expiré : reconnectez-vous.",
                      params={"reason": "expired"})
    sid = claims.get("sid") if school is None else None
    return Identity(school or SchoolId(str(sch)), UserId(sub), expires_at,
                    sid if isinstance(sid, str) else None)


def read_token(secret: str, token: str, *, now: datetime) -> Identity:
    """The identity in one of Préau's own tokens, or :class:`Refused` saying why."""
    claims = decode_claims(token, secret, algorithm=ALGORITHM)
    return identity_from_claims(claims, now=now)


@dataclass(frozen=True, slots=True)
class SecretVerifier:
    """HS256 with a shared secret: Préau's own tokens (``school`` is ``None``, the
    token's ``sch`` names it), or a host's (one school, its ``issuer``)."""

    secret: str
    school: SchoolId | None = None
    issuer: str | None = None
    audience: str | None = None
    user_claim: str = "sub"

    async def verify(self, token: str, now: datetime) -> Identity:
        claims = decode_claims(token, self.secret, algorithm=ALGORITHM, issuer=self.issuer,
                               audience=self.audience)
        return identity_from_claims(claims, now=now, user_claim=self.user_claim,
                                    school=self.school)


def warning_time(now: datetime, expires_at: datetime) -> datetime:
    """When a connection whose token (checked at ``now``) expires at ``expires_at``
    hears ``token_expiring``: :data:`EXPIRY_WARNING` before, or after four fifths of
    the remaining life when that is shorter, so that a short token still has time."""
    return expires_at - min(EXPIRY_WARNING, max(expires_at - now, timedelta(0)) / 5)
