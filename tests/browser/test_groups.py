"""The new-discussion picker with groups of a class and parents named with their
children (issue 11), in Chromium, in French and in English."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from server.limits import Limits
from tests.browser.conftest import TIMEOUT_MS, App, school_server
from tests.conftest import LiveServer
from tests.test_contacts_groups import import_college

COLLEGE = "college"


@pytest.fixture
def college(tmp_path, limits: Limits) -> Iterator[LiveServer]:
    """Demo mode, with the collège of tests/test_contacts_groups.py imported (classes 6e A,
    6e AB, 6e B, 5e A; Zoé Blanc of 6e A switched off; Claire André, mother of Léa)."""
    with school_server(tmp_path, limits, demo=True) as server:
        # In a thread: Playwright's sync API keeps an event loop running in this one.
        importer = threading.Thread(target=import_college, args=(server,))
        importer.start()
        importer.join(timeout=30)
        with httpx.Client(base_url=server.url, timeout=10, headers={
                "Authorization": f"Bearer {server.token('a1', school=COLLEGE)}"}) as c:
            assert c.get("/api/settings").json()["settings"]["profiles"][
                "students-off"]["discussions_enabled"] is False
        yield server


def signed_in(app: App, user: str, locale: str) -> Page:
    context = app.browser.new_context(locale=locale, timezone_id="Europe/Paris",
                                      viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    app.contexts.append(context)
    page = context.new_page()
    page.on("pageerror", lambda exc: app.errors.append(f"{page.url}: {exc}"))
    page.goto(f"{app.server.url}/?school={COLLEGE}")
    page.locator(f'.demo-picker button[data-user="{user}"]').click()
    expect(page.locator(".conn.online, .conn")).to_be_visible()
    page.goto(f"{app.server.url}/?school={COLLEGE}#/new")
    return page


@pytest.fixture
def app(college: LiveServer, browser: Browser) -> Iterator[App]:
    running = App(college, browser)
    try:
        yield running
    finally:
        running.close()
    assert running.errors == [], "JavaScript errors in the app"


def test_groups_with_counts_and_a_start_to_a_group_in_french(app: App):
    page = signed_in(app, "t2", "fr-FR")
    students = page.locator('.picker-groups [data-group="students:6A"]')
    expect(students).to_have_text("Élèves de 6e A2 inclus, 1 exclu (messagerie désactivée)")
    expect(page.locator('.picker-groups [data-group="parents:6A"]')).to_contain_text(
        "Parents de 6e A")
    expect(page.locator('.picker-groups [data-group="team:6A"]')).to_contain_text(
        "Équipe pédagogique de 6e A")
    # A parent with her child and the relation the directory gives; another without one.
    expect(page.locator('.picker-results [data-user="p6a1"] .person-detail')).to_have_text(
        "mère de Léa André (6e A)")
    expect(page.locator('.picker-results [data-user="p6a2"] .person-detail')).to_have_text(
        "responsable de Hugo Petit (6e A)")

    students.click()
    expect(page.locator('.chips [data-group="students:6A"]')).to_contain_text(
        "Élèves de 6e A")
    expect(students).to_have_count(0)  # chosen: no longer offered
    page.locator('.picker-results [data-user="p6a1"]').click()
    page.locator("form.new-discussion input[type=text]").fill("Sortie au musée")
    page.locator("form.new-discussion textarea").fill("Bonjour à tous")
    page.locator("form.new-discussion button[type=submit]").click()
    expect(page.locator('.banner[data-code="groups"] p')).to_have_text(
        "Discussion envoyée à 2 personnes des groupes ; 1 exclu (messagerie désactivée).")
    # The participants, the parent named with her child.
    expect(page.locator(".participant").filter(has_text="Claire André")).to_have_text(
        "Claire André, mère de Léa André (6e A)")
    expect(page.locator(".participant")).to_have_count(3)  # Léa, Hugo, Claire André


def test_searching_a_class_and_the_english_words(app: App):
    page = signed_in(app, "t1", "en-GB")
    search = page.locator(".picker input[type=search]")
    expect(page.locator(".picker-groups [data-group]")).to_have_count(12)
    search.fill("6e A")
    groups = page.locator(".picker-groups [data-group]")
    expect(groups).to_have_count(3)
    assert sorted(groups.evaluate_all("els => els.map(e => e.dataset.group)")) == [
        "parents:6A", "students:6A", "team:6A"]
    people = page.locator(".picker-results [data-user]")
    expect(people).to_have_count(5)
    assert sorted(people.evaluate_all("els => els.map(e => e.dataset.user)")) == [
        "p6a1", "p6a2", "s6a1", "s6a2", "t2"]
    expect(page.locator('.picker-groups [data-group="students:6A"]')).to_have_text(
        "Students of 6e A2 included, 1 left out (messaging switched off)")
    expect(page.locator('.picker-results [data-user="p6a1"] .person-detail')).to_have_text(
        "mother of Léa André (6e A)")
    search.fill("6e AB")
    expect(page.locator(".picker-groups [data-group]")).to_have_count(3)
    expect(page.locator(".picker-results [data-user]")).to_have_count(1)
    expect(page.locator('.picker-results [data-user="s6ab"]')).to_be_visible()


def test_the_discussion_list_names_a_parent_with_her_child(app: App):
    teacher = signed_in(app, "t2", "fr-FR")
    teacher.locator('.picker-results [data-user="p6a1"]').click()
    teacher.locator("form.new-discussion input[type=text]").fill("Rendez-vous")
    teacher.locator("form.new-discussion textarea").fill("Pouvez-vous passer jeudi ?")
    teacher.locator("form.new-discussion button[type=submit]").click()
    expect(teacher.locator(".participant")).to_have_text(["Claire André, mère de Léa André (6e A)"])
    parent = signed_in(app, "p6a1", "fr-FR")
    parent.goto(f"{app.server.url}/?school={COLLEGE}#/")
    parent.locator(".discussion-list a").first.click()
    parent.locator(".composer textarea").fill("Oui, jeudi 17 h.")
    parent.locator(".composer button[type=submit]").click()
    expect(teacher.locator(".discussion-list .item-preview")).to_have_text(
        "Claire André, mère de Léa André (6e A)\u00a0: Oui, jeudi 17 h.")
