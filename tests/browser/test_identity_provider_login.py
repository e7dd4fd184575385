"""The private LemonLDAP::NG's own pages in Chromium, without Préau: its login form
signs a user in and sends the browser to the relying party with a code, and its logout
page loads the relying party's front-channel logout URL (an iframe) in the browser."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import DESKTOP, TIMEOUT_MS
from tests.http_receiver import Receiver, http_receiver
from tests.identity_provider import IdentityProvider


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with http_receiver() as running:
        yield running


def test_login_page_then_front_channel_logout(identity_provider: IdentityProvider,
                                              receiver: Receiver, browser: Browser) -> None:
    idp = identity_provider
    callback = f"{receiver.url}/auth/oidc/callback"
    idp.configure(redirect_uris=[callback],
                  frontchannel_logout_url=f"{receiver.url}/auth/oidc/frontchannel-logout")
    verifier = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    context = browser.new_context(viewport=DESKTOP, locale="fr-FR")
    context.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(idp.authorization_url + "?" + urlencode({
            "response_type": "code", "client_id": idp.client_id, "scope": "openid preau",
            "redirect_uri": callback, "state": "etat-n", "code_challenge": challenge,
            "code_challenge_method": "S256"}))
        page.locator("#userfield").fill("marc.petit")
        page.locator("#passwordfield").fill("marc-pw")
        page.locator("#lform button[type=submit]").click()
        arrived = receiver.wait_for("/auth/oidc/callback?")
        query = parse_qs(urlparse(arrived.path).query)
        assert query["state"] == ["etat-n"]

        token = httpx.post(idp.token_url, auth=(idp.client_id, idp.client_secret),
                           timeout=10, data={
                               "grant_type": "authorization_code", "code": query["code"][0],
                               "redirect_uri": callback, "code_verifier": verifier})
        assert token.status_code == 200, token.text

        page.goto(f"{idp.end_session_url}?confirm=1")
        logout = receiver.wait_for("/auth/oidc/frontchannel-logout?")
        assert parse_qs(urlparse(logout.path).query) == {"iss": [idp.issuer],
                                                        "sid": ["marc.petit"]}
        page.goto(idp.url + "/")
        expect(page.locator("#passwordfield")).to_be_visible()  # signed out
    finally:
        context.close()
    assert errors == [], "JavaScript errors in LemonLDAP::NG's pages"
