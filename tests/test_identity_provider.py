"""The private LemonLDAP::NG of tests/identity_provider.py works on its own, without
Préau: OpenID Connect (discovery, authorization code with PKCE, ID token checked
against the JWKS, userinfo, front-channel logout) and CAS (login, ticket, 2.0 and 3.0
validation with attributes, back-channel single logout). The sign-in tests of Préau
build on these behaviours."""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse
from xml.etree import ElementTree

import httpx
import jwt
import pytest

from tests import identity_provider as identity_provider_module
from tests.http_receiver import Receiver, http_receiver
from tests.identity_provider import (
    Account,
    IdentityProvider,
    IdentityProviderUnavailable,
    submit_login,
)

CAS_NS = {"cas": "http://www.yale.edu/tp/cas"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with http_receiver() as running:
        yield running


def pkce() -> tuple[str, str]:
    verifier = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize(idp: IdentityProvider, browser: httpx.Client, redirect_uri: str,
              challenge: str | None, login: str, password: str) -> httpx.Response:
    """The browser's part: /oauth2/authorize, then the login form. Returns the answer."""
    query = {"response_type": "code", "client_id": idp.client_id,
             "redirect_uri": redirect_uri, "scope": "openid profile email preau",
             "state": "etat-1", "nonce": "nonce-1"}
    if challenge is not None:
        query |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    page = browser.get(f"{idp.authorization_url}?{urlencode(query)}")
    return submit_login(browser, page, login, password)


def exchange(idp: IdentityProvider, answer: httpx.Response, redirect_uri: str,
             verifier: str) -> dict[str, str]:
    """The server's part: the code for tokens, with no cookie (LL::NG refuses a token
    request that carries its session cookie), the client secret, the PKCE verifier."""
    code = parse_qs(urlparse(answer.headers["location"]).query)["code"][0]
    token = httpx.post(idp.token_url, auth=(idp.client_id, idp.client_secret), timeout=10,
                       data={"grant_type": "authorization_code", "code": code,
                             "redirect_uri": redirect_uri, "code_verifier": verifier})
    assert token.status_code == 200, token.text
    tokens: dict[str, str] = token.json()
    return tokens


def test_without_lemonldap_the_error_says_how_to_install_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(identity_provider_module, "_PORTAL_PSGI", tmp_path / "absent.psgi")
    with pytest.raises(IdentityProviderUnavailable, match="make lemonldap"):
        IdentityProvider()


def test_discovery_names_the_endpoints_and_keys(identity_provider: IdentityProvider) -> None:
    meta = httpx.get(identity_provider.discovery_url, timeout=10).json()
    idp = identity_provider
    assert meta["issuer"] == idp.issuer
    assert (meta["authorization_endpoint"], meta["token_endpoint"], meta["jwks_uri"],
            meta["userinfo_endpoint"], meta["end_session_endpoint"]) == (
        idp.authorization_url, idp.token_url, idp.jwks_url, idp.userinfo_url,
        idp.end_session_url)
    assert "S256" in meta["code_challenge_methods_supported"]
    assert meta["frontchannel_logout_supported"] is True
    assert meta["backchannel_logout_supported"] is False  # LL::NG 2.16: see the module doc
    keys = httpx.get(idp.jwks_url, timeout=10).json()["keys"]
    assert [(k["kid"], k["kty"], k["use"]) for k in keys] == [(idp.key_id, "RSA", "sig")]


def test_an_idle_connection_does_not_hold_up_others(
        identity_provider: IdentityProvider) -> None:
    """Browsers open connections ahead of need and may send nothing on them."""
    with socket.create_connection(("127.0.0.1", identity_provider.port), timeout=10):
        answer = httpx.get(identity_provider.discovery_url, timeout=10)
    assert answer.status_code == 200


def test_authorization_code_with_pkce_gives_a_signed_id_token(
        identity_provider: IdentityProvider) -> None:
    idp = identity_provider
    redirect_uri = "http://127.0.0.1:9/auth/oidc/callback"
    idp.configure(redirect_uris=[redirect_uri])
    verifier, challenge = pkce()
    with httpx.Client(timeout=10) as browser:
        answer = authorize(idp, browser, redirect_uri, challenge, "claire.martin", "claire-pw")
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(redirect_uri + "?")
    params = parse_qs(urlparse(location).query)
    assert params["state"] == ["etat-1"]

    tokens = exchange(idp, answer, redirect_uri, verifier)
    key = jwt.PyJWKClient(idp.jwks_url).get_signing_key_from_jwt(tokens["id_token"])
    claims = jwt.decode(tokens["id_token"], key.key, algorithms=["RS256"],
                        audience=idp.client_id, issuer=idp.issuer)
    assert (claims["sub"], claims["preau_uid"], claims["preau_school"], claims["nonce"]) == (
        "claire.martin", "t1", "hugo", "nonce-1")
    assert jwt.get_unverified_header(tokens["id_token"])["kid"] == idp.key_id

    userinfo = httpx.get(idp.userinfo_url, timeout=10,
                         headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    assert userinfo == {"sub": "claire.martin", "preau_uid": "t1", "preau_school": "hugo",
                        "name": "Claire Martin", "email": "claire.martin@hugo.test"}


def test_pkce_is_required_and_checked(identity_provider: IdentityProvider) -> None:
    idp = identity_provider
    redirect_uri = "http://127.0.0.1:9/auth/oidc/callback"
    idp.configure(redirect_uris=[redirect_uri])
    with httpx.Client(timeout=10) as browser:
        without = authorize(idp, browser, redirect_uri, None, "marc.petit", "marc-pw")
    assert "code=" not in without.headers.get("location", "")

    _, challenge = pkce()
    with httpx.Client(timeout=10) as browser:
        answer = authorize(idp, browser, redirect_uri, challenge, "marc.petit", "marc-pw")
    code = parse_qs(urlparse(answer.headers["location"]).query)["code"][0]
    wrong_verifier, _ = pkce()
    token = httpx.post(idp.token_url, auth=(idp.client_id, idp.client_secret), timeout=10,
                       data={"grant_type": "authorization_code", "code": code,
                             "redirect_uri": redirect_uri, "code_verifier": wrong_verifier})
    assert token.status_code == 400
    assert "id_token" not in token.text


def test_a_wrong_password_or_redirect_uri_gives_no_code(
        identity_provider: IdentityProvider) -> None:
    idp = identity_provider
    redirect_uri = "http://127.0.0.1:9/auth/oidc/callback"
    idp.configure(redirect_uris=[redirect_uri])
    _, challenge = pkce()
    with httpx.Client(timeout=10) as browser:
        answer = authorize(idp, browser, redirect_uri, challenge, "claire.martin", "faux")
    assert answer.status_code != 302
    assert 'name="password"' in answer.text  # the form again

    with httpx.Client(timeout=10) as browser:  # checked once the user is known
        answer = authorize(idp, browser, "http://127.0.0.1:9/elsewhere", challenge,
                           "claire.martin", "claire-pw")
    assert "code=" not in answer.headers.get("location", "")
    assert answer.status_code != 302


def test_accounts_can_be_added_while_running(identity_provider: IdentityProvider) -> None:
    idp = identity_provider
    redirect_uri = "http://127.0.0.1:9/auth/oidc/callback"
    idp.configure(redirect_uris=[redirect_uri])
    idp.add_account(Account("nouveau", "nouveau-pw", {"preau_uid": "t2",
                                                      "preau_school": "hugo"}))
    _, challenge = pkce()
    with httpx.Client(timeout=10) as browser:
        answer = authorize(idp, browser, redirect_uri, challenge, "nouveau", "nouveau-pw")
    assert answer.status_code == 302
    assert "code=" in answer.headers["location"]


def test_front_channel_logout_names_the_user(identity_provider: IdentityProvider,
                                             receiver: Receiver) -> None:
    """LL::NG 2.16 logs relying parties out through the browser: an iframe to their
    front-channel URL with ``iss`` and ``sid`` (the ``sub`` it gave them)."""
    idp = identity_provider
    redirect_uri = f"{receiver.url}/auth/oidc/callback"
    idp.configure(redirect_uris=[redirect_uri],
                  frontchannel_logout_url=f"{receiver.url}/auth/oidc/frontchannel-logout")
    verifier, challenge = pkce()
    with httpx.Client(timeout=10) as browser:
        answer = authorize(idp, browser, redirect_uri, challenge, "claire.martin", "claire-pw")
        # LL::NG counts the relying party as signed in once it has taken its tokens.
        exchange(idp, answer, redirect_uri, verifier)
        page = browser.get(idp.end_session_url, params={"confirm": "1"})
    frames = re.findall(r'<iframe src="([^"]+)"', page.text)
    assert len(frames) == 1, page.text
    url = urlparse(html.unescape(frames[0]))
    assert f"{url.scheme}://{url.netloc}{url.path}" == (
        f"{receiver.url}/auth/oidc/frontchannel-logout")
    assert parse_qs(url.query) == {"iss": [idp.issuer], "sid": ["claire.martin"]}


def test_rp_initiated_logout_returns_to_the_relying_party(
        identity_provider: IdentityProvider) -> None:
    """Préau's own logout: end_session with the ID token as hint logs out at once (no
    confirmation page for this client) and sends the browser back."""
    idp = identity_provider
    redirect_uri = "http://127.0.0.1:9/auth/oidc/callback"
    back = "http://127.0.0.1:9/signed-out"
    idp.configure(redirect_uris=[redirect_uri], post_logout_redirect_uris=[back])
    verifier, challenge = pkce()
    with httpx.Client(timeout=10) as browser:
        answer = authorize(idp, browser, redirect_uri, challenge, "claire.martin", "claire-pw")
        tokens = exchange(idp, answer, redirect_uri, verifier)
        out = browser.get(idp.end_session_url, params={
            "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": back,
            "state": "etat-2"})
        assert out.status_code == 302
        assert out.headers["location"] == f"{back}?state=etat-2"
        # Signed out: authorize asks for the password again.
        _, challenge = pkce()
        again = browser.get(idp.authorization_url + "?" + urlencode({
            "response_type": "code", "client_id": idp.client_id, "scope": "openid",
            "redirect_uri": redirect_uri, "code_challenge": challenge,
            "code_challenge_method": "S256"}))
    assert 'name="password"' in again.text


def test_cas_login_ticket_and_attributes(identity_provider: IdentityProvider) -> None:
    idp = identity_provider
    service = "http://127.0.0.1:9/auth/cas/callback"
    idp.configure(cas_services=[service])
    with httpx.Client(timeout=10) as browser:
        page = browser.get(f"{idp.cas_url}/login", params={"service": service})
        answer = submit_login(browser, page, "marc.petit", "marc-pw")
    assert answer.status_code == 302
    ticket = parse_qs(urlparse(answer.headers["location"]).query)["ticket"][0]
    assert ticket.startswith("ST-")

    xml = httpx.get(f"{idp.cas_url}/p3/serviceValidate", timeout=10,
                    params={"service": service, "ticket": ticket}).text
    success = ElementTree.fromstring(xml).find("cas:authenticationSuccess", CAS_NS)
    assert success is not None, xml
    assert success.findtext("cas:user", namespaces=CAS_NS) == "marc.petit"
    attributes = success.find("cas:attributes", CAS_NS)
    assert attributes is not None
    assert attributes.findtext("cas:preau_uid", namespaces=CAS_NS) == "p1"
    assert attributes.findtext("cas:preau_school", namespaces=CAS_NS) == "hugo"

    again = httpx.get(f"{idp.cas_url}/serviceValidate", timeout=10,  # a ticket serves once
                      params={"service": service, "ticket": ticket}).text
    assert "authenticationFailure" in again


def test_the_sso_session_outlives_configure(identity_provider: IdentityProvider) -> None:
    """configure() restarts the portal; its sessions are files, so a signed-in browser
    stays signed in: the next CAS login gives a ticket without the form."""
    idp = identity_provider
    service = "http://127.0.0.1:9/auth/cas/callback"
    idp.configure(cas_services=[service])
    with httpx.Client(timeout=10) as browser:
        page = browser.get(f"{idp.cas_url}/login", params={"service": service})
        assert submit_login(browser, page, "marc.petit", "marc-pw").status_code == 302
        idp.configure(cas_services=[service, "http://127.0.0.1:9/other"])
        again = browser.get(f"{idp.cas_url}/login", params={"service": service})
    assert again.status_code == 302
    assert "ticket=ST-" in again.headers["location"]


def test_cas_single_logout_posts_to_the_service(identity_provider: IdentityProvider,
                                               receiver: Receiver) -> None:
    idp = identity_provider
    service = f"{receiver.url}/auth/cas/callback"
    idp.configure(cas_services=[service])
    with httpx.Client(timeout=10) as browser:
        page = browser.get(f"{idp.cas_url}/login", params={"service": service})
        answer = submit_login(browser, page, "claire.martin", "claire-pw")
        ticket = parse_qs(urlparse(answer.headers["location"]).query)["ticket"][0]
        validated = httpx.get(f"{idp.cas_url}/serviceValidate", timeout=10,
                              params={"service": service, "ticket": ticket}).text
        assert "authenticationSuccess" in validated
        browser.get(f"{idp.cas_url}/logout")
    slo = receiver.wait_for("/auth/cas/callback")
    assert slo.method == "POST"
    request = parse_qs(slo.body)["logoutRequest"][0]
    assert f"<samlp:SessionIndex>{ticket}</samlp:SessionIndex>" in request
