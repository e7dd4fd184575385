"""What the sign-in endpoints share: the services they need (:class:`Signin`), the
addresses they make and check, and how they answer a browser or an app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..clock import Clock
from ..errors import ErrorCode
from ..hub import AddressAllowances
from ..model import SchoolId, UserId
from ..schools import Schools
from ..sessions import Sessions
from ..store import SigninStore
from .cas import CasClient
from .config import CasProvider, OidcProvider, SigninConfig
from .grants import Pending
from .oidc import OidcClient
from .pages import error_page

__all__ = ["MAX_FORM", "MAX_PARAM", "Signin", "allowed_redirect", "back_to_app", "base_url",
           "callback_url", "oidc_user", "page", "param", "read_form", "refuse_to_app"]

SIGNIN_RATE = 5.0  # sign-in starts and code exchanges a second, per client address
SIGNIN_BURST = 50.0
MAX_FORM = 32_768  # bytes of a logout request
MAX_PARAM = 2048  # a redirect URI, a state, a code: anything longer is not one


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
    _allowances: AddressAllowances = field(
        default_factory=lambda: AddressAllowances(SIGNIN_RATE, SIGNIN_BURST))

    def retry_after(self, request: Request) -> float:
        """Seconds this client address must wait (0: go on). Starts write a pending
        sign-in to the database and need no account: each address gets a few a second."""
        address = request.client.host if request.client is not None else ""
        return self._allowances.take(address)

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


def page(code: ErrorCode | str, text: str, status: int = 400) -> Response:
    return HTMLResponse(error_page(str(code), text), status_code=status,
                        headers={"Cache-Control": "no-store"})


def base_url(signin: Signin, request: Request) -> str:
    if signin.config.public_url is not None:
        return signin.config.public_url
    return str(request.base_url).rstrip("/")


def callback_url(signin: Signin, request: Request, school: str, kind: str) -> str:
    return f"{base_url(signin, request)}/signin/{school}/{kind}/callback"


def allowed_redirect(signin: Signin, request: Request, uri: str) -> bool:
    """The server's own page, or a configured app URI: exactly (no prefix, no wildcard,
    so that a code never travels to an address the school did not name)."""
    if uri in signin.config.app_redirect_uris:
        return True
    own = base_url(signin, request)
    return uri in (f"{own}/", f"{own}/index.html")


def back_to_app(pending: Pending, **params: str) -> Response:
    if pending.app_state is not None:
        params["state"] = pending.app_state
    joiner = "&" if urlsplit(pending.app_redirect_uri).query else "?"
    return RedirectResponse(f"{pending.app_redirect_uri}{joiner}{urlencode(params)}",
                            status_code=303, headers={"Cache-Control": "no-store"})


def refuse_to_app(pending: Pending, code: ErrorCode, text: str) -> Response:
    return back_to_app(pending, error=str(code), error_description=text)


def param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    return value if value is not None and 0 < len(value) <= MAX_PARAM else None


def oidc_user(provider: OidcProvider, claims: dict[str, Any]) -> UserId | None:
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


async def read_form(request: Request) -> dict[str, str]:
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


