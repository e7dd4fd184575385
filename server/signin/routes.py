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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..clock import Clock
from ..errors import ErrorCode, NotFound, PreauError, Refused
from ..model import SchoolId, UserId
from ..schools import Schools
from ..session_routes import credentials_json
from ..sessions import Sessions
from ..store import SigninStore
from .cas import CasClient, session_index
from .config import CasProvider, OidcProvider, SigninConfig
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
from .oidc import OidcClient, ProviderError
from .pages import error_page

__all__ = ["Signin", "signin_routes"]

log = logging.getLogger("preau.signin")

CAS_COOKIE = "preau_cas_signin"  # never "lemonldap" or another provider's cookie name
MAX_FORM = 32_768  # bytes of a logout request
MAX_PARAM = 2048  # a redirect URI, a state, a code: anything longer is not one

_EXPIRED = ("Cette demande de connexion a expiré ou a déjà servi. "
            "Revenez à l'application et recommencez.")
_NO_PROVIDER = "Cet établissement ne propose pas ce mode de connexion."
_BAD_START = ("La demande de connexion de l'application est incomplète ou incorrecte "
              "(adresse de retour, défi PKCE S256).")
_UNKNOWN = ("Ce compte de l'ENT ne correspond à aucun utilisateur actif de cet "
            "établissement dans Préau. Adressez-vous à l'établissement.")
_PROVIDER = "Le fournisseur d'identité de l'établissement n'a pas confirmé la connexion."
_DENIED = "La connexion a été annulée auprès du fournisseur d'identité."


@dataclass
class Signin:
    """What the sign-in endpoints need, made once by the app's lifespan."""

    config: SigninConfig
    store: SigninStore
    schools: Schools
    sessions: Sessions
    clock: Clock
    http: httpx.AsyncClient
    _oidc: dict[SchoolId, OidcClient] = field(default_factory=dict)

    def oidc(self, school: SchoolId) -> OidcClient | None:
        provider = self.config.provider(school, "oidc")
        if not isinstance(provider, OidcProvider):
            return None
        if school not in self._oidc:
            self._oidc[school] = OidcClient(provider, self.http)
        return self._oidc[school]

    def cas(self, school: SchoolId) -> CasClient | None:
        provider = self.config.provider(school, "cas")
        return CasClient(provider, self.http) if isinstance(provider, CasProvider) else None


def _page(code: ErrorCode | str, text: str, status: int = 400) -> Response:
    return HTMLResponse(error_page(str(code), text), status_code=status,
                        headers={"Cache-Control": "no-store"})


def _base(signin: Signin, request: Request) -> str:
    if signin.config.public_url is not None:
        return signin.config.public_url
    return str(request.base_url).rstrip("/")


def _callback(signin: Signin, request: Request, school: str, kind: str) -> str:
    return f"{_base(signin, request)}/signin/{school}/{kind}/callback"


def _allowed_redirect(signin: Signin, request: Request, uri: str) -> bool:
    """The server's own page, or a configured app URI: exactly (no prefix, no wildcard,
    so that a code never travels to an address the school did not name)."""
    if uri in signin.config.app_redirect_uris:
        return True
    own = _base(signin, request)
    return uri in (f"{own}/", f"{own}/index.html")


def _back_to_app(pending: Pending, **params: str) -> Response:
    if pending.app_state is not None:
        params["state"] = pending.app_state
    joiner = "&" if urlsplit(pending.app_redirect_uri).query else "?"
    return RedirectResponse(f"{pending.app_redirect_uri}{joiner}{urlencode(params)}",
                            status_code=303, headers={"Cache-Control": "no-store"})


def _refuse_to_app(pending: Pending, code: ErrorCode, text: str) -> Response:
    return _back_to_app(pending, error=str(code), error_description=text)


def _param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    return value if value is not None and 0 < len(value) <= MAX_PARAM else None


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
            return _page(ErrorCode.NOT_FOUND, _NO_PROVIDER, 404)
        redirect_uri = _param(request, "redirect_uri")
        challenge = _param(request, "code_challenge")
        state = request.query_params.get("state")
        if (redirect_uri is None or not _allowed_redirect(signin, request, redirect_uri)
                or not is_challenge(challenge)
                or request.query_params.get("code_challenge_method") != "S256"
                or (state is not None and not 0 < len(state) <= MAX_PARAM)):
            # No trusted address to send an error to: the browser shows this page.
            return _page(ErrorCode.BAD_REQUEST, _BAD_START)
        assert challenge is not None
        pending = Pending(provider=kind, verifier=secrets.token_urlsafe(48),
                          nonce=secrets.token_urlsafe(24), app_redirect_uri=redirect_uri,
                          app_challenge=challenge, app_state=state)
        now = signin.clock()
        try:
            key = await put_pending(signin.store, school, pending, now=now)
            if oidc is not None:
                url = await oidc.authorization_url(
                    redirect_uri=_callback(signin, request, school, "oidc"), state=key,
                    nonce=pending.nonce, code_challenge=challenge_of(pending.verifier))
            else:
                assert cas is not None
                url = cas.login_url(_callback(signin, request, school, "cas"))
        except ProviderError as exc:
            log.warning("sign-in at %s/%s cannot start: %s", school, kind, exc)
            return _refuse_to_app(pending, ErrorCode.PROVIDER_ERROR, _PROVIDER)
        except PreauError as exc:
            return _page(ErrorCode.UNAVAILABLE, str(exc), 503)
        response = RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
        if cas is not None:
            # CAS carries no state: the service URL must be the one registered, exactly
            # (and the one its single logout is posted to). The browser that comes back
            # with the ticket is the one that left: it brings the state in this cookie.
            response.set_cookie(CAS_COOKIE, key, max_age=int(PENDING_TTL.total_seconds()),
                                path=f"/signin/{school}/cas/", httponly=True, samesite="lax",
                                secure=_base(signin, request).startswith("https:"))
        return response

    async def oidc_callback(request: Request) -> Response:
        signin = get()
        school = SchoolId(request.path_params["school"])
        oidc = signin.oidc(school)
        state = _param(request, "state")
        if oidc is None:
            return _page(ErrorCode.NOT_FOUND, _NO_PROVIDER, 404)
        pending = None if state is None else await take_pending(
            signin.store, school, state, now=signin.clock())
        if pending is None or pending.provider != "oidc":
            return _page(ErrorCode.INVALID_GRANT, _EXPIRED)
        if "error" in request.query_params:
            return _refuse_to_app(pending, ErrorCode.PROVIDER_ERROR, _DENIED)
        code = _param(request, "code")
        if code is None:
            return _refuse_to_app(pending, ErrorCode.PROVIDER_ERROR, _PROVIDER)
        try:
            answer = await oidc.exchange(code=code,
                                         redirect_uri=_callback(signin, request, school, "oidc"),
                                         code_verifier=pending.verifier)
            claims = await oidc.verify_id_token(answer["id_token"], pending.nonce)
        except (ProviderError, TokenRefused) as exc:
            log.warning("OpenID Connect sign-in at %s refused: %s", school, exc)
            return _refuse_to_app(pending, ErrorCode.PROVIDER_ERROR, _PROVIDER)
        user = _oidc_user(oidc.provider, claims)
        # The provider's session, which its logout names: the ID token's sid; without
        # one (LemonLDAP::NG 2.16 puts none, and its front-channel logout names the
        # account's login as sid), the subject.
        sid = claims.get("sid")
        return await _signed_in(signin, school, pending, user, "oidc",
                                sid if isinstance(sid, str) else str(claims["sub"]))

    async def cas_callback(request: Request) -> Response:
        signin = get()
        school = SchoolId(request.path_params["school"])
        cas = signin.cas(school)
        if cas is None:
            return _page(ErrorCode.NOT_FOUND, _NO_PROVIDER, 404)
        if request.method == "POST":
            return await _cas_logout(signin, school, request)
        state, ticket = request.cookies.get(CAS_COOKIE), _param(request, "ticket")
        pending = None if state is None else await take_pending(
            signin.store, school, state, now=signin.clock())
        if pending is None or pending.provider != "cas":
            return _page(ErrorCode.INVALID_GRANT, _EXPIRED)
        if ticket is None:
            return _refuse_to_app(pending, ErrorCode.PROVIDER_ERROR, _DENIED)
        try:
            found, named = await cas.validate(ticket, _callback(signin, request, school, "cas"))
        except ProviderError as exc:
            log.warning("CAS sign-in at %s refused: %s", school, exc)
            return _refuse_to_app(pending, ErrorCode.PROVIDER_ERROR, _PROVIDER)
        # An account of another school is nobody here: ids repeat across schools.
        other = cas.provider.school_attribute is not None and named != school
        user = None if other else found
        response = await _signed_in(signin, school, pending, user, "cas", ticket)
        response.delete_cookie(CAS_COOKIE, path=f"/signin/{school}/cas/")
        return response

    async def token(request: Request) -> Response:
        signin = get()
        try:
            body = await request.json()
        except ValueError:
            body = None
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

    async def backchannel_logout(request: Request) -> Response:
        signin = get()
        school = SchoolId(request.path_params["school"])
        oidc = signin.oidc(school)
        if oidc is None:
            return JSONResponse({"error": "invalid_request"}, status_code=404)
        logout_token = (await _form(request)).get("logout_token")
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
            user = _oidc_user(oidc.provider, claims)
            ended = 0 if user is None else await signin.sessions.end_user_sessions(
                school, user, now=now)
        log.info("back-channel logout at %s: %d session(s) ended", school, ended)
        return Response(status_code=200, headers={"Cache-Control": "no-store"})

    async def frontchannel_logout(request: Request) -> Response:
        """OpenID Connect Front-Channel Logout 1.0: the provider's logout page loads this
        in an iframe with its ``iss`` and the session's ``sid`` (LemonLDAP::NG 2.16 has
        no back-channel logout). The ``sid`` is known only to the provider, Préau and
        that browser: it is what proves the request, as a CAS ticket does."""
        signin = get()
        school = SchoolId(request.path_params["school"])
        oidc = signin.oidc(school)
        iss, sid = _param(request, "iss"), _param(request, "sid")
        headers = {"Cache-Control": "no-store"}
        if oidc is None or sid is None:
            return Response(status_code=400, headers=headers)
        try:
            issuer = (await oidc.metadata())["issuer"]
        except ProviderError as exc:
            log.warning("front-channel logout at %s: %s", school, exc)
            return Response(status_code=503, headers=headers)
        if iss is not None and iss != issuer:
            return Response(status_code=400, headers=headers)
        ended = await signin.sessions.end_provider_session(school, "oidc", sid,
                                                           now=signin.clock())
        log.info("front-channel logout at %s: %d session(s) ended", school, ended)
        return HTMLResponse("<!doctype html><title>Préau</title>", headers=headers)

    async def provider_logout(request: Request) -> Response:
        """Sign out at the provider too, after the app's /api/session/logout."""
        signin = get()
        school = SchoolId(request.path_params["school"])
        kind = request.path_params["kind"]
        back = _param(request, "redirect_uri")
        if back is not None and not _allowed_redirect(signin, request, back):
            back = None
        target: str | None = None
        try:
            if kind == "oidc" and (oidc := signin.oidc(school)) is not None:
                target = await oidc.end_session_url(post_logout_redirect_uri=back)
            elif kind == "cas" and (cas := signin.cas(school)) is not None:
                target = cas.logout_url(back)
        except ProviderError as exc:
            log.warning("provider logout at %s/%s: %s", school, kind, exc)
        return RedirectResponse(target or back or f"{_base(signin, request)}/",
                                status_code=303)

    return [
        Route("/api/signin/providers", providers, methods=["GET"]),
        Route("/api/signin/token", token, methods=["POST"]),
        Route("/signin/{school}/oidc/callback", oidc_callback, methods=["GET"]),
        Route("/signin/{school}/oidc/backchannel-logout", backchannel_logout,
              methods=["POST"]),
        Route("/signin/{school}/oidc/frontchannel-logout", frontchannel_logout,
              methods=["GET"]),
        Route("/signin/{school}/cas/callback", cas_callback, methods=["GET", "POST"]),
        Route("/signin/{school}/{kind}/start", start, methods=["GET"]),
        Route("/signin/{school}/{kind}/logout", provider_logout, methods=["GET"]),
    ]


def _oidc_user(provider: OidcProvider, claims: dict[str, Any]) -> UserId | None:
    if provider.school_claim is not None and claims.get(provider.school_claim) != \
            provider.school_id:
        return None  # an account of another school: ids repeat across schools
    value = claims.get(provider.user_claim)
    if isinstance(value, list) and len(value) == 1:  # a multi-valued attribute of one
        value = value[0]
    if not isinstance(value, str) or not value:
        return None
    if provider.users is not None:
        return provider.users.get(value)
    return UserId(value)


async def _signed_in(signin: Signin, school: SchoolId, pending: Pending,
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
        return _refuse_to_app(pending, ErrorCode.UNKNOWN_ACCOUNT, _UNKNOWN)
    grant = Grant(user_id=str(user), provider=provider, provider_session=provider_session,
                  redirect_uri=pending.app_redirect_uri, challenge=pending.app_challenge)
    code = await issue_code(signin.store, school, grant, now=signin.clock())
    return _back_to_app(pending, code=code)


async def _cas_logout(signin: Signin, school: SchoolId, request: Request) -> Response:
    raw = (await _form(request)).get("logoutRequest")
    ticket = None if raw is None else session_index(raw)
    if ticket is None:
        return Response(status_code=400)
    ended = await signin.sessions.end_provider_session(school, "cas", ticket,
                                                       now=signin.clock())
    log.info("CAS single logout at %s: %d session(s) ended", school, ended)
    return Response(status_code=200)


async def _form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (a provider's logout request), read
    up to :data:`MAX_FORM` bytes; {} for anything else. (Starlette's own form parser
    needs python-multipart, which these two small forms do not justify.)"""
    if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"):
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return {}
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {name: values[0] for name, values in fields.items()}


def _error(exc: PreauError) -> Response:
    code = exc.code if isinstance(exc, Refused) else ErrorCode.UNAVAILABLE
    message = exc.message if isinstance(exc, Refused) else str(exc)
    return JSONResponse({"error": {"code": str(code), "message": message}},
                        status_code=code.status, headers={"Cache-Control": "no-store"})

