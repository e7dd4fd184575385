"""A Préau server whose school ``hugo`` signs in through the private LemonLDAP::NG of
``identity_provider`` (OpenID Connect and CAS), and helpers that go through the
provider's own login form over HTTP, as a browser would."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from server.clock import ManualClock
from server.config import Config
from server.limits import Limits
from tests.conftest import SCHOOL_DAY, SECRET, free_port, serve
from tests.identity_provider import IdentityProvider

APP_URI = "fr.preau.app:/signin"
PASSWORDS = {"claire.martin": "claire-pw", "marc.petit": "marc-pw", "inconnu": "inconnu-pw",
             "sans.preau": "sans-pw"}


_HIDDEN = re.compile(r'<input[^>]*type="hidden"[^>]*>')
_ATTRIBUTE = re.compile(r'(name|value)="([^"]*)"')


def submit_login(client: httpx.Client, page: httpx.Response, login: str,
                 password: str) -> httpx.Response:
    """Post the provider's login form that ``page`` shows, with its hidden fields."""
    assert 'name="password"' in page.text, page.text[:300]
    fields: dict[str, str] = {}
    for tag in _HIDDEN.findall(page.text):
        attributes = dict(_ATTRIBUTE.findall(tag))
        if "name" in attributes:
            fields[attributes["name"]] = html.unescape(attributes.get("value", ""))
    fields.update(user=login, password=password)
    return client.post(str(page.url), data=fields)


@dataclass
class SigninServer:
    url: str
    provider: IdentityProvider
    clock: ManualClock
    public: str | None = None  # where the ENT sends the browser back, if not ``url``

    @property
    def own_page(self) -> str:
        return f"{self.url}/"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def identity_file(path: Path, provider: IdentityProvider, *, public_url: str | None = None,
                  cas_version: int = 3, frontchannel_logout: bool = True) -> Path:
    public = "" if public_url is None else f'public_url = "{public_url}"'
    cas_attributes = ('user_attribute = "preau_uid"\nschool_attribute = "preau_school"'
                      if cas_version == 3 else "")
    path.write_text(f"""
[signin]
app_redirect_uris = ["{APP_URI}"]
{public}

[schools.hugo.oidc]
issuer = "{provider.issuer}"
client_id = "{provider.client_id}"
client_secret = "{provider.client_secret}"
user_claim = "preau_uid"
school_claim = "preau_school"
scopes = ["openid", "profile", "preau"]
frontchannel_logout = {"true" if frontchannel_logout else "false"}

[schools.hugo.cas]
server_url = "{provider.cas_url}"
version = {cas_version}
{cas_attributes}
""", encoding="utf-8")
    return path


@pytest.fixture(name="signin_server")
def signin_server_fixture(identity_provider: IdentityProvider, schools_url: str, tmp_path: Path,
                  limits: Limits) -> Iterator[SigninServer]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    identity_provider.configure(
        redirect_uris=[f"{base}/signin/hugo/oidc/callback"],
        post_logout_redirect_uris=[f"{base}/"],
        frontchannel_logout_url=f"{base}/signin/hugo/oidc/frontchannel-logout",
        cas_services=[f"{base}/signin/hugo/cas/callback"])
    clock = ManualClock(SCHOOL_DAY)
    config = Config(database_url=schools_url, jwt_secret=SECRET,
                    identity_file=str(identity_file(tmp_path / "identity.toml",
                                                    identity_provider)))
    with serve(config, clock, limits, port=port) as url:
        yield SigninServer(url, identity_provider, clock)


def follow_to(client: httpx.Client, response: httpx.Response, prefix: str) -> httpx.Response:
    """Follow redirects until one points at ``prefix``; that redirect."""
    for _ in range(10):
        location = response.headers.get("location")
        if response.status_code not in (301, 302, 303, 307) or location is None:
            raise AssertionError(f"stopped at {response.status_code} {response.url}: "
                                 f"{response.text[:300]}")
        target = urljoin(str(response.url), location)
        if target.startswith(prefix):
            return response
        response = client.get(target)
        if response.status_code == 200 and 'name="password"' in response.text:
            return response
    raise AssertionError("too many redirects")


@dataclass
class Returned:
    """Where Préau sent the app back to, and with what."""

    location: str
    params: dict[str, str]
    verifier: str
    redirect_uri: str


def sign_in(server: SigninServer, login: str, *, kind: str = "oidc",
            redirect_uri: str | None = None, client: httpx.Client | None = None,
            app_state: str = "app-state-1") -> Returned:
    """An app's sign-in through the provider's login form, up to Préau's redirect back
    to the app (not followed)."""
    if client is None:
        with httpx.Client(timeout=20) as own:
            return sign_in(server, login, kind=kind, redirect_uri=redirect_uri, client=own,
                           app_state=app_state)
    redirect_uri = redirect_uri or server.own_page
    verifier, challenge = pkce()
    start = client.get(f"{server.url}/signin/hugo/{kind}/start",
                       params={"redirect_uri": redirect_uri, "code_challenge": challenge,
                               "code_challenge_method": "S256", "state": app_state})
    assert start.status_code == 303, start.text
    callback = f"{server.public or server.url}/signin/hugo/{kind}/callback"
    page = follow_to(client, start, callback)
    if page.status_code == 200:  # the provider's login form
        answer = submit_login(client, page, login, PASSWORDS[login])
        back = follow_to(client, answer, callback)
    else:  # already signed in at the provider
        back = page
    returning = client.get(urljoin(str(back.url), back.headers["location"]))
    assert returning.status_code == 303, returning.text
    location = returning.headers["location"]
    assert location.startswith(redirect_uri)
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    return Returned(location, params, verifier, redirect_uri)


def exchange(server: SigninServer, returned: Returned, **override: str) -> httpx.Response:
    body = {"code": returned.params.get("code", ""), "code_verifier": returned.verifier,
            "redirect_uri": returned.redirect_uri, **override}
    return httpx.post(f"{server.url}/api/signin/token", json=body, timeout=10)
