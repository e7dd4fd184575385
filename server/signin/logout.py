"""Ending sessions from the ENT's side, and the ENT's side from Préau's:

- ``POST /signin/{school}/oidc/backchannel-logout``: OpenID Connect Back-Channel Logout
  1.0, a logout token signed by the ENT;
- ``GET /signin/{school}/oidc/frontchannel-logout``: Front-Channel Logout 1.0, loaded by
  the ENT's sign-out page in an iframe (LemonLDAP::NG 2.16 has only this one);
- ``POST /signin/{school}/cas/callback`` with ``logoutRequest``: CAS single logout;
- ``GET /signin/{school}/{kind}/logout``: send the browser to the ENT's sign-out.

Each of the first three ends the sessions opened through that ENT session
(:meth:`~server.sessions.Sessions.end_provider_session`), which closes their connections.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ..model import SchoolId
from .cas import session_index
from .idtoken import TokenRefused
from .oidc import ProviderError
from .service import Signin, allowed_redirect, base_url, oidc_user, param, read_form

__all__ = ["backchannel_logout", "cas_single_logout", "frontchannel_logout",
           "provider_logout"]

log = logging.getLogger("preau.signin")


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


async def frontchannel_logout(signin: Signin, request: Request) -> Response:
    """OpenID Connect Front-Channel Logout 1.0: the provider's logout page loads this
    in an iframe with its ``iss`` and the session's ``sid``. Nothing signs it: the sid is
    all the proof there is, and LemonLDAP::NG 2.16 (which has no back-channel logout)
    sends the user's login as sid. The worst a forger can do is sign a user out."""
    school = SchoolId(request.path_params["school"])
    oidc = signin.oidc(school)
    iss, sid = param(request, "iss"), param(request, "sid")
    headers = {"Cache-Control": "no-store"}
    if oidc is None or sid is None or iss is None:
        return Response(status_code=400, headers=headers)
    try:
        issuer = (await oidc.metadata())["issuer"]
    except ProviderError as exc:
        log.warning("front-channel logout at %s: %s", school, exc)
        return Response(status_code=503, headers=headers)
    if iss != issuer:
        return Response(status_code=400, headers=headers)
    ended = await signin.sessions.end_provider_session(school, "oidc", sid,
                                                       now=signin.clock())
    log.info("front-channel logout at %s: %d session(s) ended", school, ended)
    return HTMLResponse("<!doctype html><title>Préau</title>", headers=headers)


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


