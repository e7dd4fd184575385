"""The audit log in words (issue 11, item 1): settings by name, values as words, profiles
and people by name — never raw keys or JSON — in French and in English."""

from __future__ import annotations

from playwright.sync_api import Locator, expect

from tests.browser.conftest import App
from tests.conftest import LiveServer


def test_audit_log_says_each_change_in_words(app: App, demo_server: LiveServer):
    with demo_server.client("a1") as http:
        assert http.patch("/api/settings", json={
            "parent_messaging_enabled": True, "hours": {"start": "08:00"},
            "profiles": {"parents": {"discussions_enabled": False}},
        }).status_code == 200
    with demo_server.client("t1") as http:
        assert http.patch("/api/me/preferences", json={
            "accepts": {"students": {"classes": ["2A"]}}}).status_code == 200

    admin = app.open("a1")
    admin.goto(f"{app.url}#/settings")
    rows = admin.locator(".audit tbody tr")

    def row(field: str) -> Locator:
        return admin.locator(f'.audit tbody tr[data-field="{field}"]')

    expect(rows).to_have_count(4)
    cells = row("parent_messaging_enabled").locator("td")
    for i, text in ((1, "Jean Durand"), (2, "Messaging between parents"), (3, "off"),
                    (4, "on")):
        expect(cells.nth(i)).to_have_text(text)
    expect(row("hours.start").locator("td").nth(2)).to_have_text("Hours: start")
    expect(row("profiles.parents.discussions_enabled").locator("td").nth(2)).to_have_text(
        "Discussions for the profile parents")
    expect(row("users.t1.accepts.students.classes").locator("td").nth(4)).to_have_text(
        "Seconde A")

    admin.evaluate("localStorage.setItem('preau.language', 'fr')")
    admin.reload()
    expect(row("parent_messaging_enabled").locator("td").nth(2)).to_have_text(
        "Messagerie entre parents")
    expect(row("parent_messaging_enabled").locator("td").nth(3)).to_have_text("désactivée")
    expect(row("parent_messaging_enabled").locator("td").nth(4)).to_have_text("activée")
    expect(row("hours.start").locator("td").nth(2)).to_have_text("Horaires : début")
    expect(row("hours.start").locator("td").nth(4)).to_have_text("08:00")
    expect(row("profiles.parents.discussions_enabled").locator("td")).to_contain_text(
        ["Discussions pour le profil parents", "activées", "désactivées"])
    teacher = row("users.t1.accepts.students.classes").locator("td")
    expect(teacher.nth(1)).to_have_text("Claire Martin")
    expect(teacher.nth(2)).to_have_text("Claire Martin accepte les élèves des classes")
    expect(teacher.nth(3)).to_have_text("toutes les classes")
    expect(teacher.nth(4)).to_have_text("Seconde A")
    # No raw key or JSON is shown as text.
    table = admin.locator(".audit tbody").inner_text()
    for raw in ("parent_messaging_enabled", "profiles.", "users.", "true", "false", "["):
        assert raw not in table
    app.screenshot(admin, "audit-log-fr")
