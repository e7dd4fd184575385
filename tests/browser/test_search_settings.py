"""The browser app in French: search in one's discussions (the box above the list),
« Mes réglages » (everyone's own settings) and a teacher's « Qui peut me contacter »
(the ``accepts`` preference), against a real server, in Debian's Chromium.

Every string these screens take from their catalogues (search.js, mysettings.js) is
checked to be the French one: no English sentence of theirs shows on a French page.
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor

import httpx
from playwright.sync_api import Page, expect

from server.client import Client
from tests.browser.conftest import DESKTOP, PHONE, TIMEOUT_MS, App, check_layout
from tests.conftest import LiveServer

# English sentences of search.js and mysettings.js that must never show in French.
ENGLISH = ["Search my discussions", "No result", "result for", "results for", "My settings",
           "Who may contact", "You may start", "Students may contact me", "Save",
           "Starting a discussion", "Outside these hours", "Change these choices"]


def french(app: App, user: str, *, phone: bool = False) -> Page:
    """A tab in French (the browser's language), signed in as ``user``, connected."""
    context = app.browser.new_context(viewport=PHONE if phone else DESKTOP, locale="fr-FR",
                                      timezone_id="Europe/Paris")
    context.set_default_timeout(TIMEOUT_MS)
    app.contexts.append(context)
    page = context.new_page()
    page.on("pageerror", lambda exc: app.errors.append(f"{page.url}: {exc}"))
    page.goto(app.url)
    page.locator(f'.demo-picker button[data-user="{user}"]').click()
    expect(page.locator('.conn[data-state="open"]')).to_be_visible()
    return page


def no_english(page: Page, where: str) -> None:
    text = page.locator(where).inner_text()
    shown = [s for s in ENGLISH if s in text]
    assert shown == [], f"English on the French page: {shown}"


def seed(server: LiveServer) -> tuple[int, int]:
    """Claire Martin (t1) writes to Léa (e1) in one discussion and to Hugo (e2) in
    another, with the Python client (in a thread: Playwright's loop runs in this one)."""

    async def run() -> tuple[int, int]:
        async with Client(server.url, server.token("t1"), reconnect=False) as client:
            with_lea = await client.start(["e1"], "Sortie au musée",
                                          "Les élèves partent à 8 h <b>jeudi</b>.")
            d = int(with_lea["discussion"]["id"])
            await client.send(d, "Pensez au pique-nique.", client_id="p1")
            without = await client.start(["e2"], "Sortie privée", "Les élèves de Hugo")
            return d, int(without["discussion"]["id"])

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result(timeout=60)


def test_search_finds_only_my_discussions_and_opens_them(app: App, demo_server: LiveServer):
    mine, other = seed(demo_server)
    page = french(app, "e1")
    box = page.get_by_label("Rechercher dans mes discussions")
    expect(box).to_have_attribute("placeholder", "Rechercher (sujet, personne, message)")
    box.fill("eleve")  # no accent: « élèves » is found all the same
    results = page.locator(".search-result")
    expect(results).to_have_count(1)
    expect(page.locator(".search-status")).to_have_text("1 résultat pour « eleve »")
    hit = results.first
    expect(hit.locator(".item-subject")).to_have_text("Sortie au musée")
    expect(hit.locator(".search-kind")).to_have_text("Message")
    expect(hit.locator("mark")).to_have_text("élèves")
    # The message's markup is text in the snippet, never an element.
    expect(hit.locator(".search-snippet")).to_contain_text("<b>jeudi</b>")
    assert hit.locator(".search-snippet b").count() == 0
    assert page.locator(f'.search-result a[data-discussion="{other}"]').count() == 0
    # A subject and a participant's name are found too.
    box.fill("musee")
    expect(page.locator(".search-result .search-kind")).to_have_text(["Sujet"])
    box.fill("claire")
    expect(page.locator(".search-result .search-kind")).to_have_text(["Participant"])
    box.fill("privee")
    expect(page.locator(".search-status")).to_have_text("Aucun résultat pour « privee ».")
    box.fill("e")
    expect(page.locator(".search-status")).to_have_text("Tapez au moins deux lettres.")
    # Opening a result opens the discussion, and the results stay.
    box.fill("pique")
    page.locator(f'.search-result a[data-discussion="{mine}"]').click()
    expect(page).to_have_url(re.compile(rf"#/d/{mine}$"))
    expect(page.locator(".messages .body").last).to_have_text("Pensez au pique-nique.")
    # The message found is marked in the discussion.
    expect(page.locator(".messages .search-target .body")).to_have_text("Pensez au pique-nique.")
    expect(page.locator(".search-result")).to_have_count(1)
    check_layout(page)
    no_english(page, ".search-panel")
    app.screenshot(page, "search-fr")


def test_my_settings_page_in_french(app: App, demo_server: LiveServer):
    with httpx.Client(base_url=demo_server.url, timeout=10,
                      headers={"Authorization": f"Bearer {demo_server.token('a1')}"}) as admin:
        assert admin.patch("/api/settings", json={
            "hours": {"outside": "defer"}}).status_code == 200
    page = french(app, "p1")
    page.locator(".topbar a.me-name").click()  # one's name in the header
    expect(page).to_have_url(re.compile(r"#/me$"))
    expect(page.locator(".topbar a.me-name")).to_have_attribute(
        "title", "Mes réglages : ce qui s’applique à moi")
    section = page.locator('[data-page="my-settings"]')
    expect(section.get_by_role("heading", name="Mes réglages")).to_be_visible()
    expect(section.locator('[data-setting="access"]')).to_have_text(
        "Vous avez accès aux discussions.")
    expect(section.locator('[data-setting="profile"]')).to_have_text("activées")
    expect(section.locator('[data-setting="hours"]')).to_have_text(
        "De 07:00 à 20:00 (Europe/Paris).")
    expect(section.locator('[data-setting="outside"]')).to_have_text(
        "les messages sont mis en attente et remis à l’ouverture.")
    expect(section.locator('[data-setting="parent_messaging"]')).to_have_text(
        "Non autorisée par l’établissement. Vous n’y participez pas.")
    expect(section.locator('[data-setting="accepts"]')).to_contain_text(
        "Selon les règles de l’établissement")
    check_layout(page)
    no_english(page, "main")
    app.screenshot(page, "my-settings-fr")
    phone = french(app, "e1", phone=True)
    phone.goto(f"{app.url}#/me")
    expect(phone.locator('[data-page="my-settings"] [data-setting="can_start"]')).to_have_text(
        "Vous pouvez démarrer des discussions : 30 par heure et 100 par jour au plus.")
    check_layout(phone)
    app.screenshot(phone, "my-settings-phone-fr")


def test_teacher_chooses_who_may_contact_them(app: App, demo_server: LiveServer):
    page = french(app, "t1")
    page.get_by_role("link", name="Mes préférences", exact=True).click()
    expect(page).to_have_title("Qui peut me contacter · Préau")
    form = page.locator('[data-page="contact-prefs"] form')
    expect(form.get_by_label("Les élèves peuvent me contacter")).to_be_checked()
    # Parents: only those of 2A (Seconde A). Staff: nobody.
    form.locator('[data-scope="parents.only"]').check()
    form.locator('[data-accepts="parents.class"][data-class="2A"]').check()
    form.get_by_label("Les personnels peuvent me contacter").uncheck()
    form.get_by_role("button", name="Enregistrer").click()
    expect(form.locator(".form-status")).to_have_text("Enregistré.")
    check_layout(page)
    no_english(page, "main")
    app.screenshot(page, "contact-prefs-fr")
    # The server has it, and « Mes réglages » says it in words.
    with httpx.Client(base_url=demo_server.url, timeout=10,
                      headers={"Authorization": f"Bearer {demo_server.token('t1')}"}) as t1:
        accepts = t1.get("/api/me/preferences").json()["preferences"]["accepts"]
    assert accepts["parents"] == {"enabled": True, "classes": ["2A"]}
    assert accepts["staff"] is False
    assert accepts["students"] == {"enabled": True, "classes": None}
    page.locator(".topbar a.me-name").click()
    section = page.locator('[data-page="my-settings"]')
    expect(section.locator('[data-setting="accepts.parents"]')).to_have_text(
        "seulement : Seconde A")
    expect(section.locator('[data-setting="accepts.staff"]')).to_have_text("non")
    expect(section.locator('[data-setting="accepts.students"]')).to_have_text("oui")
    # A reload shows the saved choice.
    page.reload()
    page.get_by_role("link", name="Mes préférences", exact=True).click()
    expect(page.locator('[data-accepts="parents.class"][data-class="2A"]')).to_be_checked()
    expect(page.get_by_label("Les personnels peuvent me contacter")).not_to_be_checked()


def test_search_and_settings_in_english(app: App):
    """The other language: the same screens from the English catalogue."""
    page = app.open("e1")  # an English browser
    box = page.get_by_label("Search my discussions")
    expect(box).to_have_attribute("placeholder", "Search (subject, person, message)")
    box.fill("zzz")
    expect(page.locator(".search-status")).to_have_text("No result for “zzz”.")
    page.locator(".topbar a.me-name").click()
    section = page.locator('[data-page="my-settings"]')
    expect(section.get_by_role("heading", name="My settings")).to_be_visible()
    expect(section.locator('[data-setting="can_start"]')).to_have_text(
        "You may start discussions: at most 30 an hour and 100 a day.")
