"""Fixes found when the app was tried as a new user would (issue 11, item 4)."""

from __future__ import annotations

from playwright.sync_api import Route, expect

from tests.browser.conftest import DESKTOP, EVENING, NEXT_OPENING, App, check_layout
from tests.browser.test_app import bodies, composer, open_discussion, send, start_discussion
from tests.browser.test_broadcasts import figure, new_form, send_and_open
from tests.conftest import LiveServer


def test_error_banners_go_after_a_success_and_stay_with_their_screen(app: App,
                                                                     demo_server: LiveServer):
    teacher = app.open("t1")
    first = start_discussion(teacher, "Conseil", "e1", "Léa", "Le conseil est mardi.")
    start_discussion(teacher, "Cantine", "e2", "Hugo", "Menu de jeudi.")
    errors = teacher.locator(".banner-error")

    demo_server.clock.set(EVENING)
    expect(teacher.locator(".window-chip")).to_be_visible()
    send(teacher, "Trop tard")
    expect(teacher.locator('.banner[data-code="outside_hours"]')).to_be_visible()
    # Going to another discussion leaves the refusal behind.
    open_discussion(teacher, first)
    expect(errors).to_have_count(0)

    send(teacher, "Toujours trop tard")
    expect(teacher.locator('.banner[data-code="outside_hours"]')).to_be_visible()
    # A later success (the same text, sent in the morning) takes it away.
    demo_server.clock.set(NEXT_OPENING)
    expect(teacher.locator(".window-chip")).to_be_hidden()
    composer(teacher).press("Enter")
    expect(bodies(teacher)).to_have_text(["Le conseil est mardi.", "Toujours trop tard"])
    expect(errors).to_have_count(0)


def test_unknown_or_forbidden_discussion_shows_a_clear_page(app: App):
    teacher = app.open("t1")
    theirs = start_discussion(teacher, "Conseil", "e1", "Léa", "Le conseil est mardi.")
    student = app.open("e2")  # not in it
    for discussion in (99999, theirs):
        student.goto(f"{app.url}#/d/{discussion}")
        expect(student.get_by_role("heading", name="Discussion not found")).to_be_visible()
        expect(student.locator(".missing-reason")).to_contain_text("does not exist")
        expect(composer(student)).to_have_count(0)
        expect(student.get_by_text("Le conseil est mardi.")).to_have_count(0)
        student.locator("a.missing-back").click()
        expect(student).to_have_url(f"{app.url}#/")
        expect(student.locator(".empty-pane")).to_be_visible()


def test_audience_keeps_the_class_name_after_a_reload(app: App):
    teacher = app.open("t1")
    new_form(teacher)
    teacher.get_by_label("Title", exact=True).fill("Conseil de classe")
    teacher.get_by_label("Text", exact=True).fill("Mardi à 17 h.")
    teacher.get_by_label("Parents", exact=True).check()
    send_and_open(teacher, "Send the information")
    audience = teacher.locator(".broadcast-detail .audience")
    expect(audience).to_have_text("To: Parents of Seconde A")
    # After a reload the broadcast may be shown before the audience (which has the
    # classes' names) arrives: hold that answer until the page shows the broadcast.
    held: list[Route] = []
    teacher.route("**/api/broadcasts/audience*", lambda route: held.append(route))
    teacher.reload()
    expect(teacher.locator(".broadcast-detail .broadcast-status")).to_contain_text("Published")
    assert held
    for route in held:
        route.continue_()
    expect(audience).to_have_text("To: Parents of Seconde A")


def test_results_list_each_person_where_they_stopped(app: App):
    teacher = app.open("t1")
    hugo = app.open("e2")  # connected: receives it, never opens it
    nadia = app.open("p2")  # opens it, does not answer
    new_form(teacher)
    teacher.get_by_label("Poll", exact=True).check()
    teacher.get_by_label("Title", exact=True).fill("Sortie")
    teacher.get_by_label("Text", exact=True).fill("Qui vient ?")
    teacher.get_by_label("Question 1: Wording").fill("Venez-vous ?")
    teacher.get_by_label("Question 1: Choice 1").fill("Oui")
    teacher.get_by_label("Question 1: Choice 2").fill("Non")
    teacher.get_by_label("Students", exact=True).check()
    teacher.get_by_label("Parents", exact=True).check()
    expect(teacher.locator(".recipients-count")).to_have_text("4 recipients")
    broadcast = send_and_open(teacher, "Send the poll")
    expect(figure(teacher, "received")).to_have_text("2")
    expect(hugo.locator('nav a[data-route="broadcasts"] .nav-badge')).to_have_text("1 new")
    nadia.goto(f"{app.url}#/b/{broadcast}")
    expect(figure(teacher, "read")).to_have_text("1")

    teacher.get_by_role("button", name="Results").click()
    results = teacher.locator(".results")
    expect(results.locator('[data-pending="not_received"] li')).to_have_text(
        ["Léa Petit", "Marc Petit, guardian of Léa Petit (Seconde A)"])  # not connected
    expect(results.locator('[data-pending="not_read"] li')).to_have_text(["Hugo Moreau"])
    expect(results.locator('[data-pending="not_answered"] li')).to_have_text(
        ["Nadia Moreau, guardian of Hugo Moreau (Seconde A)"])


def test_publish_later_and_expiry_on_the_schools_clock(app: App):
    # A teacher whose browser is in New York: the times she types, and reads, are the
    # school's (Paris).
    context = app.browser.new_context(viewport=DESKTOP, locale="en-GB",
                                      timezone_id="America/New_York")
    app.contexts.append(context)
    teacher = context.new_page()
    teacher.on("pageerror", lambda exc: app.errors.append(f"{teacher.url}: {exc}"))
    teacher.goto(app.url)
    teacher.locator('.demo-picker button[data-user="t1"]').click()
    expect(teacher.locator(".conn")).to_have_attribute("data-state", "open")

    new_form(teacher)
    teacher.get_by_label("Title", exact=True).fill("Réunion parents-professeurs")
    teacher.get_by_label("Parents", exact=True).check()
    teacher.locator('input[data-when="publish-date"]').fill("25/11/2026")  # day first
    teacher.locator('input[data-when="publish-time"]').fill("09:15")
    send_and_open(teacher, "Send the information")
    status = teacher.locator(".broadcast-detail .broadcast-status")
    expect(status).to_contain_text("Scheduled")
    # 09:15 in Paris (03:15 in New York, where she reads it) is shown on the school's clock.
    expect(status).to_contain_text("Will be published at 09:15 on Wed 25 Nov.")

    new_form(teacher)
    teacher.get_by_label("Title", exact=True).fill("Cantine")
    teacher.get_by_label("Parents", exact=True).check()
    teacher.locator('input[data-when="expires-date"]').fill("2026-11-30")
    teacher.locator('input[data-when="expires-time"]').fill("18:00")
    send_and_open(teacher, "Send the information")
    expect(status).to_contain_text("Published")
    expect(status.locator(".expires")).to_have_text(" End of publication: 18:00 on Mon 30 Nov.")


def test_phone_header_shows_who_is_signed_in_and_a_short_navigation(app: App):
    context = app.browser.new_context(viewport={"width": 375, "height": 740}, locale="en-GB",
                                      timezone_id="Europe/Paris")
    app.contexts.append(context)
    parent = context.new_page()
    parent.on("pageerror", lambda exc: app.errors.append(f"{parent.url}: {exc}"))
    parent.goto(app.url)
    parent.locator('.demo-picker button[data-user="p2"]').click()
    expect(parent.locator(".conn")).to_have_attribute("data-state", "open")

    expect(parent.locator(".topbar .me-name")).to_be_visible()
    expect(parent.locator(".topbar .me-name")).to_have_text("Nadia Moreau")
    links = parent.locator("nav a")
    expect(links).to_have_count(3)  # Discussions, Information & polls, My preferences
    line = links.first.bounding_box()
    nav = parent.locator("nav").bounding_box()
    assert line is not None
    assert nav is not None
    assert nav["height"] <= 2 * line["height"] + 8, "the navigation takes more than two lines"
    check_layout(parent)
    app.screenshot(parent, "header-phone")


def test_read_receipts_survive_a_reload(app: App):
    """Issue 11, item 3: others' read positions come with ``history`` (§6.5), so a
    reload, or a read that happened while the page was away, still shows the receipt."""
    teacher = app.open("t1")
    student = app.open("e1")
    discussion = start_discussion(teacher, "Sortie", "e1", "Léa", "La sortie est jeudi.")
    receipt = teacher.locator(".message.mine .status")
    open_discussion(student, discussion)
    expect(receipt).to_have_text("Read by Léa Petit")
    teacher.reload()
    expect(teacher.locator(".conn")).to_have_text("Connected")
    expect(bodies(teacher)).to_have_text(["La sortie est jeudi."])
    expect(receipt).to_have_text("Read by Léa Petit")

    # Read while the teacher's page was elsewhere: no live event reached it.
    student.goto("about:blank")
    send(teacher, "Prévoyez un pique-nique.")
    expect(receipt).to_have_text(["Sent"])  # on the newest of one's messages only
    teacher.goto("about:blank")
    student.goto(f"{app.url}#/d/{discussion}")
    expect(bodies(student)).to_have_text(["La sortie est jeudi.", "Prévoyez un pique-nique."])
    teacher.goto(f"{app.url}#/d/{discussion}")
    expect(teacher.locator(".conn")).to_have_text("Connected")
    expect(receipt).to_have_text("Read by Léa Petit")
