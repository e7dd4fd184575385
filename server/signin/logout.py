"""Ending sessions from the ENT's side, and the ENT's side from Préau's:

- ``POST /signin/{school}/oidc/backchannel-logout``: OpenID Connect Back-Channel Logout
  1.0, a logout token signed by the ENT;
- ``GET /signin/{school}/oidc/frontchannel-logout``: Front-Channel Logout 1.0, loaded by
  the ENT's sign-out page in an iframe (LemonLDAP::NG 2.16 has only this one), for the
  schools that turn it on, and only from the browser that signed in (its cookie);
- ``POST /signin/{school}/cas/callback`` with ``logoutRequest``: CAS single logout;
- ``GET /signin/{school}/{kind}/logout``: send the browser to the ENT's sign-out.

Each of the first three ends the sessions opened through that ENT session
(:meth:`~server.sessions.Sessions.end_provider_session`), which closes their connections.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ..model import SchoolId
from .cas import session_index
from .idtoken import TokenRefused
from .oidc import ProviderError
from .service import Signin, allowed_redirect, base_url, oidc_user, param, read_form

__all__ = ["FRONTCHANNEL_COOKIE", "backchannel_logout", "bind_frontchannel",
           "cas_single_logout", "frontchannel_logout", "provider_logout"]

log = logging.getLogger("preau.signin")

FRONTCHANNEL_COOKIE = "preau_oidc_logout"
_BINDING = "frontchannel"  # the kind of signin grant that keeps a browser's binding


async def backchannel_logout(signin: Signin, request: Request) -> Response:
    """A logout token (checked by :func:`~server.signin.idtoken.verify_logout_token`)
    ends the sessions of its ``sid``, or, without one, every session of its user."""
    school = SchoolId(request.path_params["school"])
    oidc = signin.oidc(school)
    if oidc is None:
        return JSONResponse({"error": "invalid_request"}, status_code=404)
    logout_token = (await read_form(request)).get("logout_token")
    if logout_token is None:
        return JSONResponse({"error": "invalid_request"}, status_code=400)
    try:
        claims = await oidc.verify_logout_token(logout_token)
    except (ProviderError, TokenRefused) as exc:
        log.warning("back-channel logout at %s refused: %s", school, exc)
        return JSONResponse({"error": "invalid_request"}, status_code=400)
    now = signin.clock()
    sid = claims.get("sid")
    if isinstance(sid, str):
        ended = await signin.sessions.end_provider_session(school, "oidc", sid, now=now)
    else:
        user = oidc_user(oidc.provider, claims)
        ended = 0 if user is None else await signin.sessions.end_user_sessions(
            school, user, now=now)
    log.info("back-channel logout at %s: %d session(s) ended", school, ended)
    return Response(status_code=200, headers={"Cache-Control": "no-store"})


def _cookie_path(school: SchoolId) -> str:
    return f"/signin/{school}/oidc/"


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


async def bind_frontchannel(signin: Signin, request: Request, school: SchoolId,
                            provider_session: str, response: Response) -> None:
    """At the end of a successful OpenID Connect sign-in of a school that turned
    front-channel logout on: give this browser a random value (an HttpOnly cookie on
    Préau's own origin) whose hash the store keeps with the provider session. Only a
    request bringing it may end that provider session's Préau sessions from the front
    channel: someone who merely knows the sid (a login, with LemonLDAP::NG) has not got
    it."""
    oidc = signin.oidc(school)
    if oidc is None or not oidc.provider.frontchannel_logout:
        return
    now = signin.clock()
    ttl = signin.sessions.refresh_ttl  # as long as the sessions it may end
    while True:
        value = secrets.token_urlsafe(32)
        if await signin.store.put_signin_grant(
                _BINDING, _hash(value), school, json.dumps({"sid": provider_session}),
                expires_at=now + ttl, now=now):
            break
    _set_cookie(signin, request, school, response, value, int(ttl.total_seconds()))


def _set_cookie(signin: Signin, request: Request, school: SchoolId, response: Response,
                value: str, max_age: int) -> None:
    secure = base_url(signin, request).startswith("https:")
    # The ENT's logout page loads the front-channel URL in an iframe: over HTTPS the
    # cookie must be SameSite=None to reach it from an ENT on another site (where the
    # browser still sends cookies to third-party frames); plain HTTP (tests, an ENT on
    # the same site) cannot be None and needs no more than Lax. The same attributes
    # delete it (max_age 0): a frame may not replace a None cookie with a Lax one.
    response.set_cookie(FRONTCHANNEL_COOKIE, value, max_age=max_age,
                        path=_cookie_path(school), httponly=True, secure=secure,
                        samesite="none" if secure else "lax")


async def frontchannel_logout(signin: Signin, request: Request) -> Response:
    """OpenID Connect Front-Channel Logout 1.0: the provider's logout page loads this
    in an iframe with its ``iss`` and the session's ``sid``. Nothing signs it, and
    LemonLDAP::NG 2.16 (which has no back-channel logout) sends the user's login as sid:
    anyone could type it. So it is off unless the school turns it on
    (``frontchannel_logout``), and ends only the sessions of the sign-in whose cookie
    (:func:`bind_frontchannel`) the browser brings, when its provider session is the
    ``sid``. Without that cookie: 200, nothing ended."""
    school = SchoolId(request.path_params["school"])
    oidc = signin.oidc(school)
    iss, sid = param(request, "iss"), param(request, "sid")
    headers = {"Cache-Control": "no-store"}
    if oidc is None or not oidc.provider.frontchannel_logout:
        return Response(status_code=404, headers=headers)
    if sid is None or iss is None:
        return Response(status_code=400, headers=headers)
    try:
        issuer = (await oidc.metadata())["issuer"]
    except ProviderError as exc:
        log.warning("front-channel logout at %s: %s", school, exc)
        return Response(status_code=503, headers=headers)
    if iss != issuer:
        return Response(status_code=400, headers=headers)
    page = HTMLResponse("<!doctype html><title>Préau</title>", headers=headers)
    cookie = request.cookies.get(FRONTCHANNEL_COOKIE)
    if cookie is None or not 0 < len(cookie) <= 100:
        log.info("front-channel logout at %s without this browser's sign-in cookie: "
                 "nothing ended", school)
        return page
    now = signin.clock()
    bound = await signin.store.take_signin_grant(_BINDING, _hash(cookie), school, now=now)
    _set_cookie(signin, request, school, page, "", 0)  # used once
    if bound is None or json.loads(bound).get("sid") != sid:
        log.info("front-channel logout at %s: this browser did not sign in with that "
                 "provider session: nothing ended", school)
        return page
    ended = await signin.sessions.end_provider_session(school, "oidc", sid, now=now)
    log.info("front-channel logout at %s: %d session(s) ended", school, ended)
    return page


async def provider_logout(signin: Signin, request: Request) -> Response:
    """Sign out at the provider too, after the app's /api/session/logout."""
    school = SchoolId(request.path_params["school"])
    kind = request.path_params["kind"]
    back = param(request, "redirect_uri")
    if back is not None and not allowed_redirect(signin, request, back):
        back = None
    target: str | None = None
    try:
        if kind == "oidc" and (oidc := signin.oidc(school)) is not None:
            target = await oidc.end_session_url(post_logout_redirect_uri=back)
        elif kind == "cas" and (cas := signin.cas(school)) is not None:
            target = cas.logout_url(back)
    except ProviderError as exc:
        log.warning("provider logout at %s/%s: %s", school, kind, exc)
    return RedirectResponse(target or back or f"{base_url(signin, request)}/",
                            status_code=303)


async def cas_single_logout(signin: Signin, school: SchoolId, request: Request) -> Response:
    """The CAS server's ``logoutRequest`` names the ticket of the sign-in to end (the
    ticket was secret between it, Préau and the browser)."""
    raw = (await read_form(request)).get("logoutRequest")
    ticket = None if raw is None else session_index(raw)
    if ticket is None:
        return Response(status_code=400)
    ended = await signin.sessions.end_provider_session(school, "cas", ticket,
                                                       now=signin.clock())
    log.info("CAS single logout at %s: %d session(s) ended", school, ended)
    return Response(status_code=200)


