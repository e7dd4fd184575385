"""The sign-in endpoints (Starlette routes), mounted by :mod:`server.web`:

- ``GET /api/signin/providers``: the schools' providers, for the app's sign-in page;
- ``GET /signin/{school}/{oidc|cas}/start``: an app starts a sign-in (PKCE, S256);
- ``GET /signin/{school}/oidc/callback``, ``GET /signin/{school}/cas/callback``: the
  provider's return; the app gets ``code`` and its ``state`` (or ``error``);
- ``POST /api/signin/token``: the app trades ``code`` and ``code_verifier`` for
  credentials (:meth:`~server.sessions.Sessions.open_session`);
- ``POST /signin/{school}/oidc/backchannel-logout``,
  ``GET /signin/{school}/oidc/frontchannel-logout``, ``POST /signin/{school}/cas/callback``
  (``logoutRequest``): the provider ends the sessions it opened;
- ``GET /signin/{school}/{oidc|cas}/logout``: sign out at the provider too.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..errors import ErrorCode, NotFound, PreauError, Refused, StoreError
from ..model import SchoolId, UserId
from ..session_routes import credentials_json
from .grants import (
    PENDING_TTL,
    Grant,
    Pending,
    challenge_of,
    is_challenge,
    is_verifier,
    issue_code,
    put_pending,
    take_code,
    take_pending,
)
from .idtoken import TokenRefused
from .logout import (
    backchannel_logout,
    bind_frontchannel,
    cas_single_logout,
    frontchannel_logout,
    provider_logout,
)
from .oidc import ProviderError
from .service import (
    MAX_PARAM,
    Signin,
    allowed_redirect,
    back_to_app,
    base_url,
    callback_url,
    oidc_user,
    page,
    param,
    refuse_to_app,
)

__all__ = ["Signin", "signin_routes"]

log = logging.getLogger("preau.signin")

CAS_COOKIE = "preau_cas_signin"  # never "lemonldap" or another provider's cookie name

_EXPIRED = ("Cette demande de connexion a expiré ou a déjà servi. "
            "Revenez à l'application et recommencez.")
_NO_PROVIDER = "Cet établissement ne propose pas ce mode de connexion."
_BAD_START = ("La demande de connexion de l'application est incomplète ou incorrecte "
              "(adresse de retour, défi PKCE S256).")
_UNKNOWN = ("Ce compte de l'ENT ne correspond à aucun utilisateur actif de cet "
            "établissement dans Préau. Adressez-vous à l'établissement.")
_PROVIDER = "Le fournisseur d'identité de l'établissement n'a pas confirmé la connexion."
_SLOW_DOWN = "Trop de demandes de connexion depuis cette adresse : réessayez dans un instant."
_STORE = ("Préau ne peut pas enregistrer la connexion pour l'instant : "
          "réessayez dans un instant.")
_DENIED = "La connexion a été annulée auprès du fournisseur d'identité."


def signin_routes(get: Callable[[], Signin]) -> list[Route]:
    """The routes, with ``get`` giving the services once the app has started."""

    async def providers(request: Request) -> Response:
        signin = get()
        listed: list[dict[str, Any]] = []
        for (school, kind), provider in sorted(signin.config.providers.items()):
            try:
                est = await signin.schools.get(school)
            except NotFound:
                continue
            listed.append({"school": school,
                           "school_name": est.gatekeeper.state.directory.school.name,
                           "kind": kind, "label": provider.label,
                           "start": f"/signin/{school}/{kind}/start"})
        return JSONResponse({"providers": listed})

    async def start(request: Request) -> Response:
        signin = get()
        school = SchoolId(request.path_params["school"])
        kind = request.path_params["kind"]
        oidc = signin.oidc(school) if kind == "oidc" else None
        cas = signin.cas(school) if kind == "cas" else None
        if oidc is None and cas is None:
            return page(ErrorCode.NOT_FOUND, _NO_PROVIDER, 404)
        if signin.retry_after(request):
            return page(ErrorCode.RATE_LIMITED, _SLOW_DOWN, 429)
        redirect_uri = param(request, "redirect_uri")
        challenge = param(request, "code_challenge")
        state = request.query_params.get("state")
        if (redirect_uri is None or not allowed_redirect(signin, request, redirect_uri)
                or not is_challenge(challenge)
                or request.query_params.get("code_challenge_method") != "S256"
                or (state is not None and not 0 < len(state) <= MAX_PARAM)):
            # No trusted address to send an error to: the browser shows this page.
            return page(ErrorCode.BAD_REQUEST, _BAD_START)
        assert challenge is not None
        pending = Pending(provider=kind, verifier=secrets.token_urlsafe(48),
                          nonce=secrets.token_urlsafe(24), app_redirect_uri=redirect_uri,
                          app_challenge=challenge, app_state=state)
        now = signin.clock()
        try:
            key = await put_pending(signin.store, school, pending, now=now)
            if oidc is not None:
                url = await oidc.authorization_url(
                    redirect_uri=callback_url(signin, request, school, "oidc"), state=key,
                    nonce=pending.nonce, code_challenge=challenge_of(pending.verifier))
            else:
                assert cas is not None
                url = cas.login_url(callback_url(signin, request, school, "cas"))
        except ProviderError as exc:
            log.warning("sign-in at %s/%s cannot start: %s", school, kind, exc)
            return refuse_to_app(pending, ErrorCode.PROVIDER_ERROR, _PROVIDER)
        except PreauError as exc:
            log.warning("sign-in at %s/%s cannot start: %s", school, kind, exc)
            return page(ErrorCode.UNAVAILABLE, _STORE, 503)
        response = RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
        if cas is not None:
            # CAS carries no state: the service URL must be the one registered, exactly
            # (and the one its single logout is posted to). The browser that comes back
            # with the ticket is the one that left: it brings the state in this cookie.
            response.set_cookie(CAS_COOKIE, key, max_age=int(PENDING_TTL.total_seconds()),
                                path=f"/signin/{school}/cas/", httponly=True, samesite="lax",
                                secure=base_url(signin, request).startswith("https:"))
        return response

    async def oidc_callback(request: Request) -> Response:
        signin = get()
        school = SchoolId(request.path_params["school"])
        oidc = signin.oidc(school)
        state = param(request, "state")
        if oidc is None:
            return page(ErrorCode.NOT_FOUND, _NO_PROVIDER, 404)
        pending = None if state is None else await take_pending(
            signin.store, school, state, now=signin.clock())
        if pending is None or pending.provider != "oidc":
            return page(ErrorCode.INVALID_GRANT, _EXPIRED)
        if "error" in request.query_params:
            return refuse_to_app(pending, ErrorCode.PROVIDER_ERROR, _DENIED)
        code = param(request, "code")
        if code is None:
            return refuse_to_app(pending, ErrorCode.PROVIDER_ERROR, _PROVIDER)
        try:
            answer = await oidc.exchange(code=code,
                                         redirect_uri=callback_url(signin, request, school, "oidc"),
                                         code_verifier=pending.verifier)
            claims = await oidc.verify_id_token(answer["id_token"], pending.nonce)
        except (ProviderError, TokenRefused) as exc:
            log.warning("OpenID Connect sign-in at %s refused: %s", school, exc)
            return refuse_to_app(pending, ErrorCode.PROVIDER_ERROR, _PROVIDER)
        user = oidc_user(oidc.provider, claims)
        # The provider's session, which its logout names: the ID token's sid; without
        # one (LemonLDAP::NG 2.16 puts none, and its front-channel logout names the
        # account's login as sid), the subject.
        sid = claims.get("sid")
        return await _signed_in(signin, request, school, pending, user, "oidc",
                                sid if isinstance(sid, str) else str(claims["sub"]))

    async def cas_callback(request: Request) -> Response:
        signin = get()
        school = SchoolId(request.path_params["school"])
        cas = signin.cas(school)
        if cas is None:
            return page(ErrorCode.NOT_FOUND, _NO_PROVIDER, 404)
        if request.method == "POST":
            return await cas_single_logout(signin, school, request)
        state, ticket = request.cookies.get(CAS_COOKIE), param(request, "ticket")
        pending = None if state is None else await take_pending(
            signin.store, school, state, now=signin.clock())
        if pending is None or pending.provider != "cas":
            return page(ErrorCode.INVALID_GRANT, _EXPIRED)
        if ticket is None:
            return refuse_to_app(pending, ErrorCode.PROVIDER_ERROR, _DENIED)
        try:
            found, named = await cas.validate(ticket, callback_url(signin, request, school, "cas"))
        except ProviderError as exc:
            log.warning("CAS sign-in at %s refused: %s", school, exc)
            return refuse_to_app(pending, ErrorCode.PROVIDER_ERROR, _PROVIDER)
        # An account of another school is nobody here: ids repeat across schools.
        other = cas.provider.school_attribute is not None and named != school
        user = None if other else found
        response = await _signed_in(signin, request, school, pending, user, "cas", ticket)
        response.delete_cookie(CAS_COOKIE, path=f"/signin/{school}/cas/")
        return response

    async def token(request: Request) -> Response:
        signin = get()
        try:
            body = await request.json()
        except ValueError:
            body = None
        wait = signin.retry_after(request)
        if wait:
            return _error(Refused(ErrorCode.RATE_LIMITED, _SLOW_DOWN,
                                  retry_at=signin.clock() + timedelta(seconds=wait)))
        if not isinstance(body, dict):
            return _error(Refused(ErrorCode.BAD_REQUEST, "Envoyez un objet JSON."))
        code, verifier, redirect_uri = (body.get("code"), body.get("code_verifier"),
                                        body.get("redirect_uri"))
        if not (isinstance(code, str) and is_verifier(verifier)
                and isinstance(redirect_uri, str)):
            return _error(Refused(ErrorCode.BAD_REQUEST,
                                  "Donnez code, code_verifier (RFC 7636) et redirect_uri."))
        assert isinstance(verifier, str)
        now = signin.clock()
        try:
            taken = await take_code(signin.store, code, verifier=verifier,
                                    redirect_uri=redirect_uri, now=now)
            if taken is None:
                raise Refused(ErrorCode.INVALID_GRANT,
                              "Ce code de connexion est inconnu, a déjà servi, a expiré, ou "
                              "ne correspond pas à ce code_verifier ou à cette adresse de "
                              "retour : recommencez la connexion.")
            school, user, grant = taken
            try:
                credentials = await signin.sessions.open_session(
                    school, user, provider=grant.provider,
                    provider_session=grant.provider_session, now=now)
            except Refused as exc:
                raise Refused(ErrorCode.UNKNOWN_ACCOUNT, _UNKNOWN) from exc
        except PreauError as exc:
            return _error(exc)
        return JSONResponse({"token_type": "Bearer", **credentials_json(credentials),
                             "school": school, "user": user},
                            headers={"Cache-Control": "no-store"})

    def bound(handler: Callable[[Signin, Request], Awaitable[Response]]
              ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await handler(get(), request)
        return endpoint

    routes = [
        Route("/api/signin/providers", providers, methods=["GET"]),
        Route("/api/signin/token", token, methods=["POST"]),
        Route("/signin/{school}/oidc/callback", oidc_callback, methods=["GET"]),
        Route("/signin/{school}/oidc/backchannel-logout", bound(backchannel_logout),
              methods=["POST"]),
        Route("/signin/{school}/oidc/frontchannel-logout", bound(frontchannel_logout),
              methods=["GET"]),
        Route("/signin/{school}/cas/callback", cas_callback, methods=["GET", "POST"]),
        Route("/signin/{school}/{kind}/start", start, methods=["GET"]),
        Route("/signin/{school}/{kind}/logout", bound(provider_logout), methods=["GET"]),
    ]
    # The database busy or unreachable at any step: a French page, not a 500.
    return [Route(r.path, _guarded(r.endpoint), methods=sorted(r.methods or ()))
            for r in routes]


async def _signed_in(signin: Signin, request: Request, school: SchoolId, pending: Pending,
                     user: str | UserId | None, provider: str,
                     provider_session: str | None) -> Response:
    """The provider vouched for ``user``: if the directory knows them, the app gets a
    one-time code; otherwise an error, never a code."""
    try:
        est = await signin.schools.get(school)
    except NotFound:
        est = None
    if user is None or est is None or est.gatekeeper.user(UserId(user)) is None:
        log.info("sign-in at %s: %r is not an active user here", school, user)
        return refuse_to_app(pending, ErrorCode.UNKNOWN_ACCOUNT, _UNKNOWN)
    grant = Grant(user_id=str(user), provider=provider, provider_session=provider_session,
                  redirect_uri=pending.app_redirect_uri, challenge=pending.app_challenge)
    code = await issue_code(signin.store, school, grant, now=signin.clock())
    response = back_to_app(pending, code=code)
    if provider == "oidc" and provider_session is not None:
        await bind_frontchannel(signin, request, school, provider_session, response)
    return response


def _guarded(endpoint: Callable[[Request], Awaitable[Response]]
             ) -> Callable[[Request], Awaitable[Response]]:
    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except StoreError as exc:
            log.warning("sign-in step %s failed: %s", request.url.path, exc)
            return page(ErrorCode.UNAVAILABLE, _STORE, 503)
    return guarded


def _error(exc: PreauError) -> Response:
    code = exc.code if isinstance(exc, Refused) else ErrorCode.UNAVAILABLE
    error: dict[str, str] = {"code": str(code),
                             "message": exc.message if isinstance(exc, Refused) else str(exc)}
    if isinstance(exc, Refused) and exc.retry_at is not None:
        error["retry_at"] = exc.retry_at.isoformat().replace("+00:00", "Z")
    return JSONResponse({"error": error}, status_code=code.status,
                        headers={"Cache-Control": "no-store"})

