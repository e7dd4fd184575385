"""Headless Chromium signs a teacher and a parent in through the school's ENT (the real
LemonLDAP::NG of tests/identity_provider.py, its own login page), with no pasted token
and no demo picker; then they converse."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import DESKTOP, TIMEOUT_MS
from tests.browser.test_app import bodies, composer, open_discussion, start_discussion
from tests.conftest import _import_schools
from tests.signin_fixture import (  # noqa: F401 — the fixture
    PASSWORDS,
    SigninServer,
    signin_server_fixture,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def schools_url(tmp_path: Path) -> str:
    """Both test schools in a new SQLite file, imported in a thread (Playwright's event
    loop runs in this one)."""
    url = f"sqlite:///{tmp_path / 'ent.db'}"
    importer = threading.Thread(target=_import_schools, args=(url,))
    importer.start()
    importer.join(timeout=30)
    return url


@pytest.fixture
def pages(browser: Browser, signin_server: SigninServer) -> Iterator[list[Page]]:
    opened: list[Page] = []
    contexts = []
    errors: list[str] = []

    def make(locale: str = "en-GB") -> Page:
        context = browser.new_context(viewport=DESKTOP, locale=locale,
                                      timezone_id="Europe/Paris")
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        # Préau's pages only: the provider's own pages are not ours to judge.
        page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}")
                if page.url.startswith(signin_server.url) else None)
        opened.append(page)
        return page

    yield make  # type: ignore[misc]
    for context in contexts:
        context.close()
    assert errors == [], "JavaScript errors in the app"


def sign_in_with_the_ent(page: Page, server: SigninServer, login: str) -> None:
    page.goto(f"{server.url}/")
    button = page.locator('.ent-button[data-kind="oidc"]')
    expect(button).to_have_text("Sign in with the ENT")
    expect(page.locator(".demo-picker")).to_have_count(0)
    button.click()
    # The provider's own login page.
    page.locator("#userfield").fill(login)
    page.locator("#passwordfield").fill(PASSWORDS[login])
    page.locator("#passwordfield").press("Enter")
    expect(page.locator(".conn")).to_have_text("Connected")
    assert "code=" not in page.url  # the one-time code left the address bar


def test_a_teacher_and_a_parent_sign_in_with_the_ent_and_converse(
        signin_server: SigninServer, pages):
    teacher, parent = pages(), pages()
    sign_in_with_the_ent(teacher, signin_server, "claire.martin")
    sign_in_with_the_ent(parent, signin_server, "marc.petit")

    discussion = start_discussion(teacher, "Réunion", "p1", "Marc",
                                  "Bonjour, pouvons-nous nous voir jeudi ?")
    item = parent.locator(f'.discussion-list a[data-discussion="{discussion}"]')
    expect(item).to_contain_text("Réunion")
    open_discussion(parent, discussion)
    composer(parent).fill("Oui, jeudi à 17 h.")
    composer(parent).press("Enter")
    expect(bodies(teacher)).to_have_text(["Bonjour, pouvons-nous nous voir jeudi ?",
                                          "Oui, jeudi à 17 h."])


def test_an_unknown_account_sees_why_in_french(signin_server: SigninServer, pages):
    page = pages("fr-FR")
    page.goto(f"{signin_server.url}/")
    page.locator('.ent-button[data-kind="oidc"]').click()
    page.locator("#userfield").fill("inconnu")
    page.locator("#passwordfield").fill(PASSWORDS["inconnu"])
    page.locator("#passwordfield").press("Enter")
    expect(page.locator('.ent-button[data-kind="oidc"]')).to_have_text(
        "Se connecter avec l’ENT")
    expect(page.locator(".signin-message")).to_contain_text(
        "Ce compte de l’ENT ne correspond à aucun utilisateur actif de l’établissement")
    expect(page.locator(".conn")).to_have_count(0)
    assert page.evaluate("sessionStorage.getItem('preau.token')") is None


def test_signing_out_signs_out_of_the_ent_too(signin_server: SigninServer, pages):
    page = pages()
    sign_in_with_the_ent(page, signin_server, "claire.martin")
    page.get_by_role("button", name="Sign out").click()
    # The provider asks to confirm (Préau keeps no ID token to hint with); accepting
    # signs out there, and its page loads Préau's front-channel logout.
    page.locator("button.positive").click()
    frame = page.locator("iframe")
    expect(frame).to_have_attribute(
        "src", f"{signin_server.url}/signin/hugo/oidc/frontchannel-logout?"
        f"iss={quote(signin_server.provider.issuer, safe='')}&sid=claire.martin")
    page.locator("button.positive").click()  # « Continue »: back to Préau
    page.wait_for_url(re.compile(rf"^{re.escape(signin_server.url)}/\??$"))
    expect(page.locator('.ent-button[data-kind="oidc"]')).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('preau.refresh')") is None
    # The next person at this computer is asked for a password again.
    page.locator('.ent-button[data-kind="oidc"]').click()
    expect(page.locator("#passwordfield")).to_be_visible()


def test_signing_out_at_the_ent_cuts_the_app_in_the_same_browser(
        signin_server: SigninServer, pages):
    # The school turned front-channel logout on (tests/signin_fixture.py): the ENT's
    # sign-out page, in another tab of the browser that signed in, loads Préau's
    # front-channel URL in an iframe with Préau's cookie (same site here), and the app's
    # session ends.
    app = pages()
    sign_in_with_the_ent(app, signin_server, "claire.martin")
    refresh = app.evaluate("sessionStorage.getItem('preau.refresh')")
    assert refresh
    ent = app.context.new_page()
    ent.goto(f"{signin_server.provider.end_session_url}?confirm=1")
    expect(ent.locator("iframe")).to_have_attribute(
        "src", re.compile(r"/signin/hugo/oidc/frontchannel-logout\?"))
    # The connection is closed, the refresh refused: the app is back at its sign-in.
    expect(app.locator('.ent-button[data-kind="oidc"]')).to_be_visible()
    refused = httpx.post(f"{signin_server.url}/api/session/refresh",
                         json={"refresh_token": refresh}, timeout=10)
    assert refused.status_code == 401
