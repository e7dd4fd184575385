"""Information messages and polls in the browser (docs/protocol.md §14): composing,
receiving live, answering, acknowledging, live figures, results and reminders.

Real server (demo mode), real Chromium, one browser context per person. Screenshots of
the compose form, a received poll and the results go to ``test-artifacts/``.
"""

from __future__ import annotations

import asyncio
import re
import threading
from datetime import UTC, datetime, timedelta

from playwright.sync_api import Locator, Page, expect

from server.broadcasts import Draft, Kind
from server.gatekeeper import BroadcastTarget
from server.model import ClassId, Role, SchoolId, UserId
from server.store import open_store
from tests.browser.conftest import EVENING, NEXT_OPENING, App, check_layout
from tests.conftest import SCHOOL_DAY, LiveServer


def open_area(page: Page) -> None:
    page.locator('nav a[data-route="broadcasts"]').click()
    expect(page).to_have_url(re.compile(r"#/b$"))


def new_form(page: Page) -> None:
    open_area(page)
    page.get_by_role("link", name="New", exact=True).click()
    expect(page).to_have_url(re.compile(r"#/b/new$"))
    expect(page.get_by_label("Title", exact=True)).to_be_visible()


def fill_poll(page: Page, title: str) -> None:
    """A three-question poll: one choice, several (at most 2 of 3), free text."""
    page.get_by_label("Poll", exact=True).check()
    page.get_by_label("Title", exact=True).fill(title)
    page.get_by_label("Text", exact=True).fill("Merci de répondre avant vendredi.\nBonne journée.")
    page.get_by_label("Question 1: Wording").fill("Accompagnerez-vous la sortie ?")
    page.get_by_label("Question 1: Choice 1").fill("Oui")
    page.get_by_label("Question 1: Choice 2").fill("Non")
    page.get_by_role("button", name="Add a question").click()
    expect(page.get_by_label("Question 2: Wording")).to_be_focused()
    page.get_by_label("Question 2: Wording").fill("Quels jours ?")
    page.get_by_label("Question 2: Answer").select_option("multiple")
    page.get_by_label("Question 2: Choice 1").fill("Lundi")
    page.get_by_label("Question 2: Choice 2").fill("Mardi")
    page.get_by_role("button", name="Add a choice to question 2").click()
    expect(page.get_by_label("Question 2: Choice 3")).to_be_focused()
    page.get_by_label("Question 2: Choice 3").fill("Jeudi")
    page.get_by_label("Question 2: At most (optional)").fill("2")
    page.get_by_role("button", name="Add a question").click()
    page.get_by_label("Question 3: Wording").fill("Une remarque ?")
    page.get_by_label("Question 3: Answer").select_option("text")
    # Free text is optional unless the author ticks it.
    expect(page.locator('input[data-q="2"][data-part="required"]')).not_to_be_checked()


def send_and_open(page: Page, button: str) -> int:
    """Send the form; the app opens the sent broadcast. Returns its id (from the URL)."""
    page.get_by_role("button", name=button).click()
    expect(page).to_have_url(re.compile(r"#/b/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def figure(page: Page, key: str) -> Locator:
    return page.locator(f'.figures [data-stat="{key}"] dd')


def bar_count(page: Page, scope: str, question: int, choice: int) -> Locator:
    return page.locator(f'{scope} .question-stats[data-question="{question}"] '
                        f'[data-choice="{choice}"] .bar-count')


def received_item(page: Page, broadcast: int) -> Locator:
    return page.locator(f'.received-list a[data-broadcast="{broadcast}"]')


def test_teacher_poll_to_parents_answered_live(app: App):
    teacher = app.open("t1")
    parent = app.open("p2", phone=True)
    parent_elsewhere = app.open("p2")  # the same parent on another device

    # The teacher may address the students and the parents of her class (2A), only.
    new_form(teacher)
    expect(teacher.locator(".audience input[data-role]")).to_have_count(2)
    expect(teacher.locator(".audience input[data-class]")).to_have_count(1)
    expect(teacher.get_by_label("Seconde A")).to_be_checked()  # her only class
    expect(teacher.locator(".recipients-count")).to_have_text(
        "Choose who receives it: a role, or people.")
    teacher.get_by_label("Parents", exact=True).check()
    # Every parent of 2A (p1 and p2): a teacher's broadcast does not need their opt-in.
    expect(teacher.locator(".recipients-count")).to_have_text("2 recipients")
    fill_poll(teacher, "Sortie au musée")
    # The deadline proposed is the end of the school day (20:00, Paris), 15 days ahead.
    expect(teacher.locator('input[data-when="deadline-date"]')).to_have_value("09/12/2026")
    expect(teacher.locator('input[data-when="deadline-time"]')).to_have_value("20:00")
    check_layout(teacher)
    teacher.locator(".compose-body").evaluate("(el) => { el.scrollTop = 0; }")
    app.screenshot(teacher, "broadcast-compose-desktop")
    broadcast = send_and_open(teacher, "Send the poll")
    expect(teacher.locator(".banner-success")).to_contain_text("“Sortie au musée” was sent")
    expect(teacher.locator(".broadcast-status")).to_contain_text("Published")
    expect(figure(teacher, "recipients")).to_have_text("2")
    expect(teacher.locator(f'.sent-list a[data-broadcast="{broadcast}"]')).to_contain_text(
        "0 of 2 answered")

    # The parent is told live: a badge in the navigation, the poll in the list.
    expect(parent.locator('nav a[data-route="broadcasts"] .nav-badge')).to_have_text("1 new")
    open_area(parent)
    item = received_item(parent, broadcast)
    expect(item).to_contain_text("Sortie au musée")
    expect(item).to_contain_text("Poll · Claire Martin")
    expect(item.locator(".badge-new")).to_have_text("New")
    item.click()
    expect(parent.locator(".broadcast-body")).to_have_text(
        "Merci de répondre avant vendredi.\nBonne journée.")
    # Opening it is reading it: the teacher's figures move live.
    expect(figure(teacher, "read")).to_have_text("1")
    expect(parent.locator('nav a[data-route="broadcasts"] .nav-badge')).to_be_hidden()

    # Answering: one choice, at most two days, a remark.
    form = parent.locator(".poll-form")
    expect(form.locator(".poll-info")).to_contain_text("Named: Claire Martin sees your answers.")
    form.get_by_label("Oui", exact=True).check()
    form.get_by_label("Lundi").check()
    form.get_by_label("Mardi").check()
    expect(form.get_by_label("Jeudi")).to_be_disabled()  # at most 2
    expect(form.locator('[data-question="2"] .hint')).to_have_text("Optional answer.")
    form.get_by_label("Answer to question 3").fill("Je peux conduire.")
    check_layout(parent)
    parent.get_by_role("button", name="Send my answers").click()
    expect(form.locator(".form-status")).to_have_text("Your answers were saved.")
    expect(parent.get_by_role("button", name="Change my answers")).to_be_visible()
    app.screenshot(parent, "broadcast-poll-phone")

    # Her other device is told (broadcast_mine).
    open_area(parent_elsewhere)
    expect(received_item(parent_elsewhere, broadcast).locator(".badge-done")).to_have_text(
        "Answered")

    # The author sees the count and the bars move live, then the results.
    expect(figure(teacher, "answered")).to_have_text("1")
    expect(bar_count(teacher, ".live-bars", 0, 0)).to_have_text("1")
    expect(bar_count(teacher, ".live-bars", 1, 2)).to_have_text("0")
    teacher.get_by_role("button", name="Results").click()
    results = teacher.locator(".results")
    expect(results.locator(".free-texts li")).to_have_text(["Je peux conduire."])
    # Marc Petit is not connected: not received, so listed there only.
    # A parent is named with their child (issue 11).
    expect(results.locator('[data-pending="not_received"] li')).to_have_text(
        ["Marc Petit, guardian of Léa Petit (Seconde A)"])
    expect(results.locator('[data-pending="not_answered"] li')).to_have_count(0)
    row = results.locator('.responses tbody tr[data-user="p2"]')
    expect(row).to_contain_text("Nadia Moreau")
    expect(row).to_contain_text("Oui")
    expect(row).to_contain_text("Lundi, Mardi")
    check_layout(teacher)
    results.scroll_into_view_if_needed()
    app.screenshot(teacher, "broadcast-results-desktop")

    # Answers stay changeable until the deadline; the open results follow live.
    form.get_by_label("Non", exact=True).check()
    parent.get_by_role("button", name="Change my answers").click()
    expect(form.locator(".form-status")).to_have_text("Your answers were saved.")
    expect(row).to_contain_text("Non")
    expect(bar_count(teacher, ".results", 0, 0)).to_have_text("0")
    expect(bar_count(teacher, ".results", 0, 1)).to_have_text("1")
    expect(figure(teacher, "answered")).to_have_text("1")

    # After a reload the list is fetched again, and the form shows my answers.
    parent.reload()
    expect(parent.locator(".conn")).to_have_text("Connected")
    expect(parent.locator(".poll-form").get_by_label("Non", exact=True)).to_be_checked()
    expect(parent.locator(".poll-form").get_by_label("Lundi")).to_be_checked()
    expect(parent.locator(".poll-form").get_by_label("Answer to question 3")).to_have_value(
        "Je peux conduire.")

    # A reminder goes to who has not answered (p1, not connected).
    teacher.get_by_role("button", name="Remind").click()
    expect(teacher.locator(".remind-status")).to_have_text("1 reminded")


def test_information_acknowledged_and_reminded(app: App):
    teacher = app.open("t1")
    student = app.open("e1")

    new_form(teacher)
    teacher.get_by_label("Title", exact=True).fill("Conseil de classe <b>mardi</b>")
    hostile = '<img src=x onerror="window.__pwned = 1"> Apportez vos carnets.'
    teacher.get_by_label("Text", exact=True).fill(hostile)
    # Chosen people, found by name among those she may address.
    teacher.get_by_label("Add people").fill("Petit")
    found = teacher.locator('.audience .picker-results button[data-user]')
    expect(found.first).to_be_visible()
    assert {b.get_attribute("data-user") for b in found.all()} <= {"e1", "p1"}
    teacher.locator('.audience .picker-results button[data-user="e1"]').click()
    expect(teacher.locator('.chips [data-user="e1"]')).to_contain_text("Léa Petit")
    expect(teacher.locator(".recipients-count")).to_have_text("1 recipient")
    teacher.get_by_role("button", name="Remove Léa Petit").click()
    expect(teacher.locator(".recipients-count")).to_have_text(
        "Choose who receives it: a role, or people.")
    teacher.get_by_label("Students", exact=True).check()
    expect(teacher.locator(".recipients-count")).to_have_text("2 recipients")
    teacher.locator('input[data-option="ack"]').check()
    broadcast = send_and_open(teacher, "Send the information")
    expect(figure(teacher, "acknowledged")).to_have_text("0")

    # Markup in the title and the text is shown as text, never interpreted.
    open_area(student)
    item = received_item(student, broadcast)
    expect(item.locator(".item-subject")).to_have_text("Conseil de classe <b>mardi</b>")
    expect(item.locator(".badge-ack")).to_have_text("Acknowledgement requested")

    # A reminder reaches the student live, before she opened it.
    teacher.get_by_role("button", name="Remind").click()
    expect(teacher.locator(".remind-status")).to_have_text("2 reminded")
    expect(student.locator('.banner[data-code="broadcast_reminder"]')).to_contain_text(
        "Reminder from Claire Martin")
    expect(item.locator(".badge-reminded")).to_have_text("Reminder")
    # Again at once: one reminder every 10 minutes at most.
    teacher.get_by_role("button", name="Remind").click()
    expect(teacher.locator(".remind-status")).to_contain_text("A reminder was sent recently")

    item.click()
    expect(student.locator(".broadcast-body")).to_have_text(hostile)
    expect(student.locator(".conv-head h2")).to_have_text("Conseil de classe <b>mardi</b>")
    assert student.locator(".broadcast-detail img, .broadcast-detail b").count() == 0
    assert student.evaluate("() => window.__pwned") is None
    expect(figure(teacher, "read")).to_have_text("1")
    student.locator(".ack-button").click()
    expect(student.locator(".ack-status")).to_contain_text("You acknowledged it")
    expect(figure(teacher, "acknowledged")).to_have_text("1")
    expect(item.locator(".badge-done")).to_have_text("Acknowledged")

    teacher.get_by_role("button", name="Results").click()
    expect(teacher.locator('.results [data-pending="not_received"] li')).to_have_text(
        ["Hugo Moreau"])  # not connected: listed where he stopped, only there
    expect(teacher.locator('.results [data-pending="not_acknowledged"] li')).to_have_count(0)

    # A student may not broadcast: no "New", and the form says why.
    expect(student.get_by_role("link", name="New", exact=True)).to_be_hidden()
    student.goto(f"{app.url}#/b/new")
    expect(student.locator(".not-allowed")).to_contain_text(
        "You may not send information or polls.")


def test_refused_outside_hours_keeps_the_form(app: App, demo_server: LiveServer):
    teacher = app.open("t1", phone=True)
    demo_server.clock.set(EVENING)
    expect(teacher.locator(".window-chip")).to_be_visible()
    new_form(teacher)
    teacher.get_by_label("Title", exact=True).fill("Cantine")
    teacher.get_by_label("Text", exact=True).fill("Menu de jeudi.")
    teacher.get_by_label("Parents", exact=True).check()
    # The count already says what the creation would get.
    expect(teacher.locator(".recipients-count")).to_have_attribute("data-code", "outside_hours")
    check_layout(teacher)
    teacher.get_by_role("button", name="Send the information").click()
    banner = teacher.locator('.form-error[data-code="outside_hours"]')
    expect(banner).to_have_attribute("role", "alert")
    expect(banner).to_contain_text("They open again at 07:00 on Wed 25 Nov.")
    expect(banner).to_contain_text("Nothing was sent; what you wrote is still in the form.")
    expect(banner).to_be_focused()
    expect(teacher.get_by_label("Title", exact=True)).to_have_value("Cantine")
    expect(teacher.get_by_label("Text", exact=True)).to_have_value("Menu de jeudi.")
    expect(teacher.get_by_label("Parents", exact=True)).to_be_checked()
    app.screenshot(teacher, "broadcast-refused-phone")

    # In the morning the same draft goes (same client_id), once.
    demo_server.clock.set(NEXT_OPENING)
    expect(teacher.locator(".window-chip")).to_be_hidden()
    broadcast = send_and_open(teacher, "Send the information")
    expect(figure(teacher, "recipients")).to_have_text("2")
    check_layout(teacher)
    app.screenshot(teacher, "broadcast-sent-phone")
    teacher.locator('a.back[href="#/b"]').click()
    expect(teacher.locator(".sent-list a[data-broadcast]")).to_have_count(1)
    expect(teacher.locator(f'.sent-list a[data-broadcast="{broadcast}"]')).to_contain_text(
        "Cantine")
    check_layout(teacher)


def test_delegate_poll_to_opted_in_parents(app: App, demo_server: LiveServer):
    # The school allows messaging between parents; p2 opted in, p1 (the delegate) not yet.
    with demo_server.client("a1") as http:
        reply = http.patch("/api/settings", json={"parent_messaging_enabled": True})
        assert reply.status_code == 200, reply.text
    with demo_server.client("p2") as http:
        reply = http.patch("/api/me/preferences", json={"parent_messaging_opt_in": True})
        assert reply.status_code == 200, reply.text

    delegate = app.open("p1")
    other = app.open("p2", phone=True)

    # Not opted in: the form says why instead of offering an audience.
    delegate.goto(f"{app.url}#/b/new")
    expect(delegate.locator(".not-allowed")).to_be_visible()
    expect(delegate.locator(".audience")).to_have_count(0)

    # "Mes préférences": the delegate opts in.
    delegate.locator('nav a[data-route="prefs"]').click()
    opt_in = delegate.get_by_label("I take part in messaging between parents")
    expect(opt_in).not_to_be_checked()
    check_layout(delegate)
    opt_in.check()
    expect(delegate.locator(".prefs-form .saved")).to_have_text(
        "Saved: you take part in messaging between parents.")
    with demo_server.client("p1") as http:
        prefs = http.get("/api/me/preferences").json()["preferences"]
    assert prefs == {"parent_messaging_opt_in": True}

    # Now the delegate may address the parents of 2A, and only them.
    new_form(delegate)
    expect(delegate.locator(".audience input[data-role]")).to_have_count(1)
    delegate.get_by_label("Parents", exact=True).check()
    expect(delegate.get_by_label("Seconde A")).to_be_checked()
    expect(delegate.locator(".recipients-count")).to_have_text("1 recipient")  # p2 only
    delegate.get_by_label("Poll", exact=True).check()
    delegate.get_by_label("Title", exact=True).fill("Fête de fin d'année")
    delegate.get_by_label("Question 1: Wording").fill("Venez-vous ?")
    delegate.get_by_label("Question 1: Choice 1").fill("Oui")
    delegate.get_by_label("Question 1: Choice 2").fill("Non")
    delegate.get_by_label("Anonymous poll (you will see only the totals)").check()
    broadcast = send_and_open(delegate, "Send the poll")
    expect(figure(delegate, "recipients")).to_have_text("1")
    delegate.get_by_role("button", name="Results").click()
    expect(delegate.locator(".results")).to_contain_text("Anonymous poll")
    expect(delegate.locator(".results .responses")).to_have_count(0)

    # The other parent answers; the delegate watches it live.
    open_area(other)
    received_item(other, broadcast).click()
    expect(other.locator(".poll-info")).to_contain_text("Anonymous")
    other.locator(".poll-form").get_by_label("Oui", exact=True).check()
    other.get_by_role("button", name="Send my answers").click()
    expect(other.locator(".poll-form .form-status")).to_have_text("Your answers were saved.")
    expect(figure(delegate, "answered")).to_have_text("1")
    expect(bar_count(delegate, ".live-bars", 0, 0)).to_have_text("1")
    expect(bar_count(delegate, ".results", 0, 0)).to_have_text("1")
    expect(delegate.locator(".results [data-pending]")).to_have_count(0)
    check_layout(delegate)
    app.screenshot(delegate, "broadcast-delegate-results-desktop")


def test_held_until_the_opening_then_published_or_dropped(app: App, demo_server: LiveServer):
    with demo_server.client("a1") as http:
        reply = http.patch("/api/settings", json={"hours": {"outside": "defer"},
                                                  "parent_messaging_enabled": True})
        assert reply.status_code == 200, reply.text
    for parent in ("p1", "p2"):
        with demo_server.client(parent) as http:
            reply = http.patch("/api/me/preferences", json={"parent_messaging_opt_in": True})
            assert reply.status_code == 200, reply.text
    teacher = app.open("t1")
    delegate = app.open("p1")
    student = app.open("e1", phone=True)
    open_area(student)

    # Written in the evening, in defer mode: kept, and published at the opening.
    demo_server.clock.set(EVENING)
    expect(teacher.locator(".window-chip")).to_be_visible()
    new_form(teacher)
    teacher.get_by_label("Title", exact=True).fill("Rentrée des vacances")
    teacher.get_by_label("Students", exact=True).check()
    kept = send_and_open(teacher, "Send the information")
    expect(teacher.locator(".banner").first).to_contain_text(
        "will be published at 07:00 on Wed 25 Nov")
    expect(teacher.locator(".broadcast-status .badge-status")).to_have_text("Scheduled")

    new_form(delegate)
    delegate.get_by_label("Parents", exact=True).check()
    delegate.get_by_label("Title", exact=True).fill("Covoiturage")
    dropped = send_and_open(delegate, "Send the information")
    expect(delegate.locator(".broadcast-status .badge-status")).to_have_text("Scheduled")
    expect(student.locator(".received-list a[data-broadcast]")).to_have_count(0)

    # Meanwhile the school switches messaging between parents off: the delegate's is dropped.
    with demo_server.client("a1") as http:
        reply = http.patch("/api/settings", json={"parent_messaging_enabled": False})
        assert reply.status_code == 200, reply.text
    demo_server.clock.set(NEXT_OPENING)
    expect(teacher.locator(".broadcast-status .badge-status")).to_have_text("Published")
    expect(received_item(student, kept)).to_contain_text("Rentrée des vacances")
    expect(delegate.locator(".dropped-note")).to_contain_text("Not published")
    expect(delegate.locator(".broadcast-status .badge-status")).to_have_text("Not published")
    expect(delegate.locator('.banner[data-code="parent_messaging_disabled"]')).to_contain_text(
        "“Covoiturage” was not published.")
    expect(delegate.locator(f'.sent-list a[data-broadcast="{dropped}"]')).to_contain_text(
        "Not published")


def test_poll_closes_at_its_deadline(app: App, demo_server: LiveServer):
    teacher = app.open("t1")
    parent = app.open("p2")
    new_form(teacher)
    teacher.get_by_label("Poll", exact=True).check()
    teacher.get_by_label("Title", exact=True).fill("Réunion")
    teacher.get_by_label("Parents", exact=True).check()
    teacher.get_by_label("Question 1: Wording").fill("Présent ?")
    teacher.get_by_label("Question 1: Choice 1").fill("Oui")
    teacher.get_by_label("Question 1: Choice 2").fill("Non")
    teacher.locator('input[data-when="deadline-date"]').fill("2026-11-24")
    teacher.locator('input[data-when="deadline-time"]').fill("18:00")  # the school's clock: Paris
    broadcast = send_and_open(teacher, "Send the poll")
    expect(teacher.locator(".broadcast-status")).to_contain_text(
        "Answers until 18:00 on Tue 24 Nov.")

    open_area(parent)
    item = received_item(parent, broadcast)
    expect(item.locator(".badge-todo")).to_have_text("Answer by 18:00 on Tue 24 Nov")
    item.click()
    parent.locator(".poll-form").get_by_label("Oui", exact=True).check()
    parent.get_by_role("button", name="Send my answers").click()
    expect(parent.locator(".poll-form .form-status")).to_have_text("Your answers were saved.")

    # After the deadline a change is refused, and the poll shows as closed.
    demo_server.clock.set(datetime(2026, 11, 24, 17, 0, 1, tzinfo=UTC))
    parent.locator(".poll-form").get_by_label("Non", exact=True).check()
    parent.get_by_role("button", name="Change my answers").click()
    expect(parent.locator('.banner[data-code="poll_closed"]')).to_contain_text(
        "This poll is closed")
    expect(parent.locator(".poll-closed")).to_contain_text("This poll is closed since 18:00")
    expect(parent.locator(".poll-form").get_by_label("Oui", exact=True)).to_be_checked()
    expect(parent.locator(".poll-form").get_by_label("Non", exact=True)).to_be_disabled()
    expect(parent.get_by_role("button", name="Change my answers")).to_be_hidden()
    expect(item.locator(".badge-closed")).to_have_text("Closed")
    # A reload says the same (the server's `closed`).
    parent.reload()
    expect(parent.locator(".poll-closed")).to_be_visible()


def test_staff_may_address_the_whole_school(app: App):
    staff = app.open("a1", phone=True)
    new_form(staff)
    expect(staff.locator(".audience input[data-role]")).to_have_count(4)
    staff.get_by_label("Teachers", exact=True).check()
    staff.get_by_label("The whole school").check()
    expect(staff.get_by_label("Seconde B")).to_be_disabled()
    expect(staff.locator(".recipients-count")).to_have_text("2 recipients")  # t1 and t2
    staff.get_by_label("Staff", exact=True).check()
    expect(staff.locator(".recipients-count")).to_have_text("3 recipients")  # and s1, not a1
    check_layout(staff)


def _many_broadcasts(server: LiveServer, count: int) -> None:
    """``count`` information messages from t1 to e1, published over the last hours,
    written through the store (in a thread: Playwright's loop runs in this one)."""
    async def run() -> None:
        st = await open_store(server.database_url)
        try:
            to = BroadcastTarget(roles=frozenset({Role.STUDENT}),
                                 classes=frozenset({ClassId("2A")}))
            for i in range(count):
                when = SCHOOL_DAY - timedelta(minutes=count - i)
                await st.create_broadcast(
                    SchoolId("hugo"), UserId("t1"),
                    Draft(Kind.INFORMATION, f"many-{i}", f"Info n° {i}", "…", to),
                    now=when, publish_at=when, deadline=None, recipients=[UserId("e1")])
        finally:
            await st.close()

    thread = threading.Thread(target=asyncio.run, args=(run(),))
    thread.start()
    thread.join(timeout=60)


def test_received_and_sent_lists_show_more_on_request(app: App):
    _many_broadcasts(app.server, 130)
    for user, scope in (("e1", ".received-list"), ("t1", ".sent-list")):
        page = app.open(user)
        open_area(page)
        items = page.locator(f"{scope} a[data-broadcast]")
        expect(items).to_have_count(100)
        expect(items.first).to_contain_text("Info n° 129")
        more = page.locator(f"{scope} ~ .more-button")
        expect(more).to_be_visible()
        more.click()
        expect(items).to_have_count(130)
        expect(items.last).to_contain_text("Info n° 0")
        expect(more).to_be_hidden()
