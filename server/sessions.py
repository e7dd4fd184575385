"""Sign-in sessions: short-lived access tokens, rotated refresh tokens, revocation.

Whoever signs a user in (the demo picker, OpenID Connect, CAS…) calls
:meth:`Sessions.open_session` and hands the :class:`Credentials` to the client:

- the **access token** is Préau's own JWT (:func:`~server.tokens.issue_token`, HS256),
  naming the session (``sid``) and lasting minutes (``PREAU_TOKEN_TTL``, 15 min by
  default): what ``hello`` and ``Authorization: Bearer`` take;
- the **refresh token** is a random string the store keeps only as its SHA-256. The
  client trades it for a new pair (:meth:`Sessions.refresh`) before the access token
  expires; each one works once. Presenting a used one again means that two parties hold
  it (a stolen copy, or a client that lost track): the whole session ends at once
  (reuse detection) and the event is logged and counted.

A session ends at logout (:meth:`Sessions.end_session`), at the provider's back-channel
logout (:meth:`Sessions.end_provider_session`), when the directory deactivates the user
(the import does it in its own transaction), or on reuse. Whatever ends it, ``ended``
(the node's :meth:`~server.revocation.Revocations.announce`) tells every node, which
refuses its access tokens from then on and closes its live connections (4501).

The user is checked against the school's directory when the session opens and at every
refresh: unknown, deactivated or of another school gets no token.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from .errors import ErrorCode, NotFound, Refused
from .model import SchoolId, UserId
from .schools import Schools
from .store.base import RotationOutcome
from .store.contract import SessionStore
from .tokens import issue_token

__all__ = [
    "DEFAULT_ACCESS_TTL",
    "DEFAULT_REFRESH_TTL",
    "Credentials",
    "Ended",
    "Sessions",
    "refresh_hash",
]

log = logging.getLogger("preau.sessions")

DEFAULT_ACCESS_TTL = timedelta(minutes=15)
DEFAULT_REFRESH_TTL = timedelta(days=30)  # idle: each refresh starts it again
_REFRESH_BYTES = 32  # 256 random bits: not guessable, whatever the rate of tries

# Why a session ended (kept in the store, ``revoked_reason``).
LOGOUT, PROVIDER_LOGOUT, REUSE, DEACTIVATED, ADMIN = (
    "logout", "provider_logout", "reuse", "deactivated", "admin")

Ended = Callable[[SchoolId, Sequence[str], str], Awaitable[None]]
"""Told the school, the ids of the sessions just ended, and why."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a client keeps after signing in or refreshing."""

    access_token: str
    refresh_token: str
    access_expires_at: datetime
    session_id: str
    refresh_expires_at: datetime | None = None


def refresh_hash(token: str) -> str:
    """What the store keeps of a refresh token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


_SIGN_IN_AGAIN = "Reconnectez-vous : la session est terminée."
_NOT_IN_DIRECTORY = ("Ce compte n'est pas (ou plus) dans l'annuaire de l'établissement : "
                     "aucune session ne peut être ouverte.")


class Sessions:
    """Sessions is responsible for opening, refreshing and ending sign-in sessions."""

    def __init__(self, store: SessionStore, schools: Schools, *, secret: str,
                 ended: Ended, access_ttl: timedelta = DEFAULT_ACCESS_TTL,
                 refresh_ttl: timedelta = DEFAULT_REFRESH_TTL) -> None:
        self._store = store
        self._schools = schools
        self._secret = secret
        self._ended = ended
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.reuse_detected = 0  # refresh tokens presented twice (/readyz)

    async def open_session(self, school_id: SchoolId, user_id: UserId, *, provider: str,
                           provider_session: str | None, now: datetime) -> Credentials:
        """A new session for a user of the school's directory, and its first credentials.

        Refused (``unauthenticated``) for an unknown school, or a user who is not (or no
        longer) in its directory."""
        await self._check_user(school_id, user_id)
        session_id = secrets.token_urlsafe(16)
        refresh = secrets.token_urlsafe(_REFRESH_BYTES)
        refresh_expires = now + self.refresh_ttl
        await self._store.create_session(
            school_id, user_id, session_id=session_id, provider=provider,
            provider_session=provider_session, refresh_hash=refresh_hash(refresh), now=now,
            refresh_expires_at=refresh_expires)
        return self._credentials(school_id, user_id, session_id, refresh, now, refresh_expires)

    async def refresh(self, refresh_token: str, *, now: datetime) -> Credentials:
        """New credentials for a refresh token, which is used up.

        Refused (``unauthenticated``) if the token is unknown, expired, of an ended
        session, already used (which ends its session: reuse detection), or if its user
        left the directory (which ends the session too)."""
        new = secrets.token_urlsafe(_REFRESH_BYTES)
        refresh_expires = now + self.refresh_ttl
        rotation = await self._store.rotate_refresh(
            refresh_hash(refresh_token), refresh_hash(new), now=now,
            refresh_expires_at=refresh_expires)
        session = rotation.session
        match rotation.outcome:
            case RotationOutcome.UNKNOWN:
                raise Refused(ErrorCode.UNAUTHENTICATED,
                              "Ce jeton de renouvellement est inconnu : reconnectez-vous.")
            case RotationOutcome.EXPIRED:
                raise Refused(ErrorCode.UNAUTHENTICATED,
                              "Ce jeton de renouvellement a expiré : reconnectez-vous.")
            case RotationOutcome.REVOKED:
                raise Refused(ErrorCode.UNAUTHENTICATED, _SIGN_IN_AGAIN)
            case RotationOutcome.REUSED:
                assert session is not None
                self.reuse_detected += 1
                log.warning("refresh token used twice: session %s of %s/%s ended "
                            "(a copy of the token may be in other hands)",
                            session.id, session.school_id, session.user_id)
                await self._ended(session.school_id, [session.id], REUSE)
                raise Refused(ErrorCode.UNAUTHENTICATED,
                              "Ce jeton de renouvellement a déjà servi : par précaution, "
                              "la session est terminée. Reconnectez-vous.")
        assert session is not None
        try:
            await self._check_user(session.school_id, session.user_id)
        except Refused:
            await self.end_session(session.school_id, session.id, now=now,
                                   reason=DEACTIVATED)
            raise
        return self._credentials(session.school_id, session.user_id, session.id, new, now,
                                 refresh_expires)

    async def end_session(self, school_id: SchoolId, session_id: str, *, now: datetime,
                          reason: str = LOGOUT) -> None:
        """End one session (logout): its tokens are refused and its connections closed."""
        ended = await self._store.end_sessions(school_id, now=now, reason=reason,
                                               session_id=session_id)
        if ended:
            await self._ended(school_id, ended, reason)

    async def end_provider_session(self, school_id: SchoolId, provider: str,
                                   provider_session: str, *, now: datetime) -> int:
        """End the sessions opened under the provider's session ``provider_session`` (its
        back-channel logout); how many."""
        ended = await self._store.end_sessions(
            school_id, now=now, reason=PROVIDER_LOGOUT, provider=provider,
            provider_session=provider_session)
        if ended:
            await self._ended(school_id, ended, PROVIDER_LOGOUT)
        return len(ended)

    async def end_user_sessions(self, school_id: SchoolId, user_id: UserId, *,
                                now: datetime) -> int:
        """End every session of the user (an administrator's decision, ``DELETE
        /api/users/{id}/sessions``); how many."""
        ended = await self._store.end_sessions(school_id, now=now, reason=ADMIN,
                                               user_id=user_id)
        if ended:
            await self._ended(school_id, ended, ADMIN)
        return len(ended)

    async def _check_user(self, school_id: SchoolId, user_id: UserId) -> None:
        try:
            est = await self._schools.get(school_id)
        except NotFound:
            raise Refused(ErrorCode.UNAUTHENTICATED,
                          "Cet établissement n'existe pas sur ce serveur.") from None
        if est.gatekeeper.user(user_id) is None:
            raise Refused(ErrorCode.UNAUTHENTICATED, _NOT_IN_DIRECTORY)

    def _credentials(self, school_id: SchoolId, user_id: UserId, session_id: str,
                     refresh: str, now: datetime, refresh_expires: datetime) -> Credentials:
        access = issue_token(self._secret, school_id, user_id, ttl=self.access_ttl, now=now,
                             session_id=session_id)
        # The token's exp is whole seconds: say what it says.
        expires = (now + self.access_ttl).replace(microsecond=0)
        return Credentials(access, refresh, expires, session_id, refresh_expires)
