"""The REST routes of sign-in sessions: refresh the credentials, log out.

``POST /api/session/refresh`` takes ``{"refresh_token": …}`` and needs no bearer (the
access token may have expired): it answers a new pair, the old refresh token being used
up (:meth:`~server.sessions.Sessions.refresh`). ``POST /api/session/logout`` takes the
bearer token and ends its session: every node refuses its tokens and closes its
connections. ``DELETE /api/users/{user_id}/sessions`` (administrators) ends every session
of a user. Both are documented in ``docs/api.md`` and ``docs/protocol.md``.

The refresh route has no account to charge before it has checked the token, so it is
limited per client address (:data:`REFRESH_RATE` a second, :data:`REFRESH_BURST` saved
up): a refresh token has 256 random bits and cannot be guessed, but a flood of tries
must not reach the store at others' expense. A school's pupils may all come from one
address (its NAT), and behind a load balancer every request does unless the server
trusts its ``X-Forwarded-For`` (uvicorn's ``FORWARDED_ALLOW_IPS``, docs/operating.md):
the limit leaves room for tens of thousands of users on 15-minute tokens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .clock import Clock
from .errors import ErrorCode, PreauError, Refused
from .hub import AddressAllowances
from .model import UserId
from .sessions import Credentials, Sessions
from .settings import Json
from .tokens import Identity

__all__ = ["REFRESH_BURST", "REFRESH_RATE", "SessionRoutes", "credentials_json"]

REFRESH_RATE = 50.0  # refreshes a second, per client address
REFRESH_BURST = 500.0
_MAX_TOKEN_CHARS = 200


class Caller(Protocol):
    """What the logout route needs of an authenticated request (``rest.Caller``)."""

    @property
    def identity(self) -> Identity: ...

    @property
    def now(self) -> datetime: ...


def credentials_json(c: Credentials) -> dict[str, Json]:
    """Credentials as the REST API answers them."""
    body: dict[str, Json] = {"access_token": c.access_token, "refresh_token": c.refresh_token,
                             "expires_at": _iso(c.access_expires_at),
                             "session_id": c.session_id}
    if c.refresh_expires_at is not None:
        body["refresh_expires_at"] = _iso(c.refresh_expires_at)
    return body


class SessionRoutes:
    """SessionRoutes is responsible for the HTTP side of refresh and logout."""

    def __init__(self, sessions: Callable[[], Sessions], clock: Clock, *,
                 error_response: Callable[[PreauError], Response],
                 json_body: Callable[[Request], Awaitable[Json]]) -> None:
        self._sessions = sessions
        self._clock = clock
        self._error_response = error_response
        self._json_body = json_body
        self._allowances: AddressAllowances | None = None  # made at the first refresh

    async def refresh(self, request: Request) -> Response:
        try:
            self._charge(request)
            body = await self._json_body(request)
            token = body.get("refresh_token") if isinstance(body, dict) else None
            if not isinstance(token, str) or not 0 < len(token) <= _MAX_TOKEN_CHARS:
                raise Refused(ErrorCode.BAD_REQUEST,
                              "Donnez le jeton de renouvellement dans 'refresh_token'.")
            credentials = await self._sessions().refresh(token, now=self._clock())
        except PreauError as exc:
            return self._error_response(exc)
        return JSONResponse(credentials_json(credentials),
                            headers={"Cache-Control": "no-store"})

    async def logout(self, request: Request, caller: Caller) -> Json:
        """End the bearer token's session (an endpoint of ``web``'s ``api()``)."""
        session_id = caller.identity.session_id
        if session_id is None:
            raise Refused(ErrorCode.BAD_REQUEST,
                          "Ce jeton n'appartient à aucune session : il n'y a rien à fermer.")
        await self._sessions().end_session(caller.identity.school_id, session_id,
                                           now=caller.now)
        return {"ended": session_id}

    async def end_user_sessions(self, request: Request, caller: Caller) -> Json:
        """An administrator ends every session of a user of the school (a lost phone, a
        shared computer left signed in): ``{"ended": how many}``. An endpoint of
        ``web``'s ``api(admin=True)``."""
        user_id = UserId(request.path_params["user_id"])
        ended = await self._sessions().end_user_sessions(caller.identity.school_id, user_id,
                                                         now=caller.now)
        return {"ended": ended}

    def _charge(self, request: Request) -> None:
        address = request.client.host if request.client is not None else ""
        if self._allowances is None:
            self._allowances = AddressAllowances(REFRESH_RATE, REFRESH_BURST)
        wait = self._allowances.take(address)
        if wait:
            raise Refused(ErrorCode.RATE_LIMITED,
                          retry_at=self._clock() + timedelta(seconds=wait))


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")
