"""The browser app end to end: real server, real Chromium, two or three people at once.

Each test signs people in through the demo sign-in page, each in their own browser
context (their own tab's sessionStorage), and checks what they see. Screenshots of
the main screens go to ``test-artifacts/``.
"""

from __future__ import annotations

import asyncio
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Locator, Page, WebSocket, expect

from server.client import Client, PreauError
from server.limits import Limits
from tests.browser.conftest import EVENING, NEXT_OPENING, App, check_layout, prepare
from tests.conftest import LiveServer, serve


def bodies(page: Page) -> Locator:
    """The stored messages shown in the open discussion (not the pending copies)."""
    return page.locator(".messages .message:not(.pending) .body")


def composer(page: Page) -> Locator:
    return page.get_by_label("Message", exact=True)


def send(page: Page, text: str) -> None:
    box = composer(page)
    box.fill(text)
    box.press("Enter")


def start_discussion(page: Page, subject: str, user: str, query: str, body: str) -> int:
    """Start a discussion through the form; returns its id (from the URL)."""
    page.get_by_role("link", name="New discussion").click()
    page.get_by_label("Subject").fill(subject)
    page.get_by_label("Add recipients").fill(query)
    page.locator(f'.picker-results button[data-user="{user}"]').click()
    expect(page.locator(f'.chips [data-user="{user}"]')).to_be_visible()
    page.get_by_label("First message").fill(body)
    page.get_by_role("button", name="Start the discussion").click()
    expect(page).to_have_url(re.compile(r"#/d/\d+$"))
    expect(bodies(page)).to_have_text([body])
    return int(page.url.rsplit("/", 1)[1])


def open_discussion(page: Page, discussion: int) -> None:
    page.locator(f'.discussion-list a[data-discussion="{discussion}"]').click()
    expect(page).to_have_url(re.compile(rf"#/d/{discussion}$"))


def write_many(server: LiveServer, user: str, to: str, count: int) -> int:
    """Start a discussion and post ``count`` messages in all with the Python client;
    returns the discussion id. Runs in a thread: Playwright's sync API keeps an event
    loop running in this one."""

    async def run() -> int:
        async with Client(server.url, server.token(user), reconnect=False) as client:
            started = await client.start([to], "Révisions", "old 1")
            discussion = int(started["discussion"]["id"])
            n = 2
            while n <= count:
                try:
                    await client.send(discussion, f"old {n}", client_id=f"old-{n}")
                    n += 1
                except PreauError as exc:  # 20 per second, bursts of 40: slow down
                    if exc.code != "rate_limited":
                        raise
                    await asyncio.sleep(0.2)
            return discussion

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result(timeout=60)


def test_teacher_and_student_converse_live(app: App):
    teacher = app.open("t1")
    student = app.open("e1", phone=True)

    discussion = start_discussion(teacher, "Sortie au musée", "e1", "Petit",
                                  "Bonjour, la sortie est jeudi.")

    # The student is told live: the discussion appears with one unread message.
    item = student.locator(f'.discussion-list a[data-discussion="{discussion}"]')
    expect(item).to_contain_text("Sortie au musée")
    expect(item.locator(".unread")).to_have_text("1 unread")
    expect(item).to_contain_text("Claire Martin: Bonjour, la sortie est jeudi.")
    open_discussion(student, discussion)
    expect(bodies(student)).to_have_text(["Bonjour, la sortie est jeudi."])
    expect(student.locator(".message .sender")).to_have_text(["Claire Martin"])
    # 09:00 UTC, shown in Paris time (with the day, unless the tests run on that day).
    expect(student.locator(".message time")).to_have_text([re.compile(r"^(Tue 24 Nov, )?10:00$")])
    # Opening it marked it read, and the teacher sees the receipt.
    expect(teacher.locator(".message.mine .status")).to_have_text("Read by Léa Petit")

    # Typing shows on the other side, then the reply reaches both, once.
    composer(student).press_sequentially("Merci madame !")
    expect(teacher.locator(".typing")).to_have_text("Léa Petit is typing…")
    composer(student).press("Enter")
    expected = ["Bonjour, la sortie est jeudi.", "Merci madame !"]
    expect(bodies(teacher)).to_have_text(expected)
    expect(bodies(student)).to_have_text(expected)
    expect(teacher.locator(".message .sender")).to_have_text(["You", "Léa Petit"])
    expect(teacher.locator(".typing")).to_have_text("")
    expect(student.locator(".message.mine .status")).to_have_text("Read by Claire Martin")
    expect(composer(student)).to_have_value("")

    # Markup in a message is shown as text, never interpreted.
    hostile = '<img src=x onerror="window.__pwned = 1"> <b>gras</b>'
    send(teacher, hostile)
    expect(bodies(student).last).to_have_text(hostile)
    assert student.locator(".messages img, .messages b").count() == 0
    assert student.evaluate("() => window.__pwned") is None

    check_layout(teacher)
    check_layout(student)
    app.screenshot(teacher, "conversation-desktop")
    app.screenshot(student, "conversation-phone")
    student.get_by_role("link", name="‹ Discussions").click()
    expect(student.locator(".discussion-list .item-preview")).to_contain_text(hostile)
    app.screenshot(student, "discussions-phone")


def test_student_cannot_contact_another_student(app: App):
    student = app.open("e1")
    student.get_by_role("link", name="New discussion").click()

    # Only the people the gatekeeper allows are offered: her teacher and the staff.
    offered = student.locator(".picker-results button[data-user]")
    expect(offered).to_have_count(3)
    assert {b.get_attribute("data-user") for b in offered.all()} == {"t1", "a1", "s1"}
    search = student.get_by_label("Add recipients")
    for classmate in ("Moreau", "Hugo", "Fournier"):  # e2 (same class), e2, e3 (2B)
        search.fill(classmate)
        expect(student.locator(".picker-status")).to_have_text(
            f"No one you may write to matches “{classmate}”.")
        expect(offered).to_have_count(0)
    search.fill("martin")
    expect(offered).to_have_count(1)
    expect(offered).to_have_attribute("data-user", "t1")
    check_layout(student)
    app.screenshot(student, "new-discussion-desktop")

    # Forcing it (a link naming her classmate) is refused, and nothing typed is lost.
    student.goto(f"{app.url}#/new?to=e2")
    expect(student.locator('.chips [data-user="e2"]')).to_be_visible()
    student.get_by_label("Subject").fill("Devoirs")
    student.get_by_label("First message").fill("Tu as fait l'exercice 3 ?")
    student.get_by_role("button", name="Start the discussion").click()
    banner = student.locator('.banner[data-code="recipient_not_allowed"]')
    expect(banner).to_be_visible()
    expect(banner).to_have_attribute("role", "alert")
    expect(banner).to_contain_text("You may not start a discussion with this person.")
    expect(banner).to_contain_text("what you wrote is still in the form")
    expect(student.get_by_label("Subject")).to_have_value("Devoirs")
    expect(student.get_by_label("First message")).to_have_value("Tu as fait l'exercice 3 ?")
    expect(student.locator('.chips [data-user="e2"]')).to_be_visible()
    expect(student.locator(".discussion-list li")).to_have_count(0)
    app.screenshot(student, "refused-recipient-desktop")


def test_outside_hours_refusal_keeps_the_text(app: App, demo_server: LiveServer):
    teacher = app.open("t1")
    start_discussion(teacher, "Conseil de classe", "e1", "Léa", "Le conseil est mardi.")

    demo_server.clock.set(EVENING)  # 22:30 in Paris: the window closes, live
    chip = teacher.locator(".window-chip")
    expect(chip).to_have_text("Closed until 07:00 on Wed 25 Nov")
    expect(teacher.locator('.banner[data-code="window"]')).to_contain_text("now closed")

    send(teacher, "À demain, bonne soirée")
    banner = teacher.locator('.banner[data-code="outside_hours"]')
    expect(banner).to_contain_text("Discussions are closed at this hour. "
                                   "They open again at 07:00 on Wed 25 Nov.")
    expect(banner).to_contain_text("it is back in the composer")
    expect(composer(teacher)).to_have_value("À demain, bonne soirée")
    expect(bodies(teacher)).to_have_text(["Le conseil est mardi."])
    expect(teacher.locator(".message.pending")).to_have_count(0)
    check_layout(teacher)
    app.screenshot(teacher, "outside-hours-desktop")

    # In the morning the window opens by itself, and the kept text can be sent.
    demo_server.clock.set(NEXT_OPENING)
    expect(chip).to_be_hidden()
    composer(teacher).press("Enter")
    expect(bodies(teacher)).to_have_text(["Le conseil est mardi.", "À demain, bonne soirée"])
    expect(composer(teacher)).to_have_value("")


def test_admin_switches_students_off(app: App, demo_server: LiveServer):
    student = app.open("e1", phone=True)
    sockets: list[WebSocket] = []
    student.on("websocket", lambda ws: sockets.append(ws))  # reconnections from now on

    admin = app.open("a1")
    admin.get_by_role("link", name="Settings").click()
    students_profile = admin.locator('input[data-profile="students"]')
    expect(students_profile).to_be_checked()
    check_layout(admin)
    students_profile.uncheck()
    admin.get_by_role("button", name="Save the settings").click()
    expect(admin.locator(".banner-success")).to_contain_text("1 change")
    # The audit log names the setting in words (the profile by its name in the directory,
    # the values as words), and keeps its key in a data attribute.
    first_row = admin.locator(".audit tbody tr").first
    expect(first_row.locator('td[data-field="profiles.students.discussions_enabled"]')).to_have_text(
        "Discussions for the profile students")
    expect(first_row).to_contain_text("onoff")
    expect(students_profile).not_to_be_checked()

    # The student is told why, live, and the app stops trying to reconnect.
    expect(student.locator(".access-reason")).to_have_text(
        "Discussions are switched off for your profile.")
    expect(student.locator(".conn")).to_have_text("Offline")
    student.wait_for_timeout(1500)  # longer than the first reconnection delays
    assert sockets == []
    check_layout(student)
    app.screenshot(student, "access-revoked-phone")

    # A student's right to start discussions (G4), from the same page.
    admin.get_by_label("Find a student").fill("Léa")
    expect(admin.locator(".student-list li")).to_have_count(1)
    right = admin.get_by_label("Léa Petit may start discussions")
    expect(right).to_be_checked()
    right.uncheck()
    expect(admin.locator(".student-list .saved")).to_have_text("Saved.")
    with demo_server.client("a1") as http:
        prefs = http.get("/api/users/e1/preferences").json()["preferences"]
    assert prefs == {"can_initiate": False}
    right_cell = admin.locator('.audit tbody tr td[data-field="users.e1.can_initiate"]').first
    expect(right_cell).to_have_text("Léa Petit may start discussions")
    app.screenshot(admin, "settings-desktop")

    # Switched on again: "Check again" brings the student back.
    students_profile.check()
    admin.get_by_role("button", name="Save the settings").click()
    expect(admin.locator(".banner-success").first).to_contain_text("1 change")
    student.get_by_role("button", name="Check again").click()
    expect(student.locator(".conn")).to_have_text("Connected")
    assert len(sockets) == 1


def test_reload_mid_conversation_loses_nothing(app: App):
    teacher = app.open("t1")
    student = app.open("e1")
    hellos: list[dict[str, Any]] = []

    def watch(ws: WebSocket) -> None:
        def sent(payload: str | bytes) -> None:
            frame = json.loads(payload)
            if frame.get("type") == "hello":
                hellos.append(frame)
        ws.on("framesent", sent)

    student.on("websocket", watch)

    discussion = start_discussion(teacher, "Rattrapage", "e1", "Léa", "m1")
    open_discussion(student, discussion)
    expect(bodies(student)).to_have_text(["m1"])
    send(student, "m2")
    expect(bodies(teacher)).to_have_text(["m1", "m2"])

    # Reload, while the teacher keeps writing.
    student.reload()
    send(teacher, "m3")
    expect(student.locator(".conn")).to_have_text("Connected")
    expect(bodies(student)).to_have_text(["m1", "m2", "m3"])

    # Away for a while (the tab shows another page), then back: what was said meanwhile
    # is replayed by the resume, and nothing is shown twice.
    student.goto("about:blank")
    send(teacher, "m4")
    send(teacher, "m5")
    expect(bodies(teacher)).to_have_text(["m1", "m2", "m3", "m4", "m5"])
    student.goto(f"{app.url}#/d/{discussion}")
    expect(bodies(student)).to_have_text(["m1", "m2", "m3", "m4", "m5"])
    send(student, "m6")
    everything = ["m1", "m2", "m3", "m4", "m5", "m6"]
    expect(bodies(student)).to_have_text(everything)
    expect(bodies(teacher)).to_have_text(everything)
    expect(student.locator(".message")).to_have_count(6)

    # Both returns resumed from the saved positions instead of starting fresh.
    assert len(hellos) == 2
    assert [pair[0] for pair in hellos[0]["resume"]] == [discussion]
    assert hellos[1]["resume"] == [[discussion, 3]]
    item = student.locator(f'.discussion-list a[data-discussion="{discussion}"]')
    expect(item.locator(".unread")).to_have_count(0)


def test_sign_in_page(app: App):
    page = app.page()
    expect(page.locator(".group summary")).to_have_text(
        ["Teachers (2)", "Staff (2)", "Students (3)", "Parents (3)"])
    expect(page.locator(".class-group h3")).to_have_text(["Seconde A", "Seconde B"])
    expect(page.locator('button[data-user="a1"]')).to_contain_text("administrator")
    check_layout(page)
    app.screenshot(page, "sign-in-desktop")

    page.get_by_label("Find a person").fill("petit")
    people = page.locator(".demo-picker button[data-user]:visible")
    expect(people).to_have_count(2)  # Léa Petit and her father
    assert {b.get_attribute("data-user") for b in people.all()} == {"e1", "p1"}
    expect(page.locator(".picker-status")).to_have_text("2 of 10 people.")

    # Keyboard: Tab moves to the next control with a visible focus ring; Enter signs in.
    page.keyboard.press("Tab")
    assert page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.locator('button[data-user="e1"]').focus()
    page.keyboard.press("Enter")
    expect(page.locator(".conn")).to_have_text("Connected")
    expect(page.locator(".me-name")).to_have_text("Léa Petit")

    phone = app.page(phone=True)
    expect(phone.locator(".group summary").first).to_be_visible()
    check_layout(phone)
    app.screenshot(phone, "sign-in-phone")


def test_token_sign_in_without_demo_mode(token_server: LiveServer, browser: Browser):
    running = App(token_server, browser)
    try:
        page = running.page()
        field = page.get_by_label("Your access token")
        field.fill("not-a-token")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator(".signin-message")).to_contain_text("This token was refused")

        field.fill(token_server.token("e1"))
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator(".conn")).to_have_text("Connected")
        expect(page.locator(".me-name")).to_have_text("Léa Petit")
        page.reload()  # the token is kept for the tab
        expect(page.locator(".conn")).to_have_text("Connected")

        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_label("Your access token")).to_be_visible()
    finally:
        running.close()
    assert running.errors == []


def test_invite_and_leave(app: App):
    teacher = app.open("t1")
    staff = app.open("s1")
    student = app.open("e1")
    discussion = start_discussion(teacher, "Absence", "e1", "Léa", "Léa était absente lundi.")

    # A student may not invite (G7): no button.
    open_discussion(student, discussion)
    expect(student.get_by_role("button", name="Leave")).to_be_visible()
    expect(student.get_by_role("button", name="Invite")).to_be_hidden()

    # The teacher invites the school-life staff member, who gets the whole discussion.
    teacher.get_by_role("button", name="Invite").click()
    invitees = teacher.locator(".invite-panel .picker-results button[data-user]")
    expect(invitees.first).to_be_visible()
    assert "e1" not in {b.get_attribute("data-user") for b in invitees.all()}  # present already
    teacher.get_by_label("Invite someone").fill("Leroy")
    teacher.locator('.invite-panel button[data-user="s1"]').click()
    expect(teacher.locator(".invite-panel [role=status]").last).to_have_text(
        "Sophie Leroy was invited.")
    expect(teacher.locator(".conv-people")).to_contain_text("Sophie Leroy")
    expect(student.locator(".conv-people")).to_contain_text("Sophie Leroy")
    open_discussion(staff, discussion)
    expect(bodies(staff)).to_have_text(["Léa était absente lundi."])
    send(staff, "Merci, je note.")
    expect(bodies(student)).to_have_text(["Léa était absente lundi.", "Merci, je note."])

    # Leaving asks first, then the composer gives way to a note; the others see it.
    staff.get_by_role("button", name="Leave").click()
    staff.get_by_role("button", name="Leave the discussion").click()
    expect(staff.locator(".left-note")).to_be_visible()
    expect(composer(staff)).to_be_hidden()
    expect(teacher.locator(".participant.gone")).to_have_text("Sophie Leroy (left)")
    send(teacher, "Après son départ")
    expect(bodies(student).last).to_have_text("Après son départ")
    expect(bodies(staff)).to_have_text(["Léa était absente lundi.", "Merci, je note."])


def test_history_scroll_back(app: App, demo_server: LiveServer):
    discussion = write_many(demo_server, "t1", "e1", 70)
    student = app.open("e1")
    item = student.locator(f'.discussion-list a[data-discussion="{discussion}"]')
    expect(item.locator(".unread")).to_have_text("70 unread")
    open_discussion(student, discussion)
    # The newest page comes with the discussion; older ones on demand, each once.
    expect(bodies(student)).to_have_count(51)
    expect(bodies(student).last).to_have_text("old 70")
    student.get_by_role("button", name="Load older messages").click()
    expect(bodies(student)).to_have_text([f"old {n}" for n in range(1, 71)])
    expect(student.get_by_role("button", name="Load older messages")).to_be_hidden()
    expect(item.locator(".unread")).to_have_count(0)


def test_held_messages_in_defer_mode(app: App, demo_server: LiveServer):
    with demo_server.client("a1") as http:
        reply = http.patch("/api/settings", json={"hours": {"outside": "defer"}})
        assert reply.status_code == 200, reply.text
    teacher = app.open("t1")
    kept = start_discussion(teacher, "Sortie", "e1", "Léa", "Départ à 8 h.")
    dropped = start_discussion(teacher, "Cantine", "e2", "Hugo", "Menu de jeudi.")

    demo_server.clock.set(EVENING)
    expect(teacher.locator(".window-chip")).to_be_visible()
    # Written in the evening: held, shown as such, and the composer is free again.
    send(teacher, "Sera perdu")
    held = teacher.locator(".message.pending.held")
    expect(held).to_contain_text("Will be delivered at 07:00 on Wed 25 Nov")
    teacher.get_by_role("button", name="Leave").click()
    teacher.get_by_role("button", name="Leave the discussion").click()
    expect(teacher.locator(".left-note")).to_be_visible()

    open_discussion(teacher, kept)
    send(teacher, "Message du soir")
    expect(held).to_contain_text("Will be delivered at 07:00 on Wed 25 Nov")
    expect(composer(teacher)).to_have_value("")
    app.screenshot(teacher, "held-desktop")

    # At the opening: the first is delivered (once), the other dropped and said so.
    demo_server.clock.set(NEXT_OPENING)
    expect(bodies(teacher)).to_have_text(["Départ à 8 h.", "Message du soir"])
    expect(held).to_have_count(0)
    banner = teacher.locator('.banner[data-code="not_participant"]')
    expect(banner).to_contain_text("A message held for the opening was not delivered.")
    open_discussion(teacher, dropped)
    expect(bodies(teacher)).to_have_text(["Menu de jeudi."])


def test_server_restart_reconnects_and_resends(browser: Browser, tmp_path: Path,
                                               limits: Limits):
    config, clock, _ = prepare(tmp_path, demo=True)
    with serve(config, clock, limits) as url:
        app = App(LiveServer(url, clock, config.database_url), browser)
        teacher = app.open("t1")
        student = app.open("e1")
        discussion = start_discussion(teacher, "Coupure", "e1", "Léa", "avant")
        open_discussion(student, discussion)
        expect(bodies(student)).to_have_text(["avant"])
    port = int(url.rsplit(":", 1)[1])
    try:
        # The server is gone: both pages say so, and keep what is written meanwhile.
        for page in (teacher, student):
            expect(page.locator(".conn")).to_have_text(re.compile("Reconnecting|Connecting"))
        send(student, "pendant la coupure")
        expect(student.locator(".message.pending")).to_contain_text("Waiting for the connection")
        send(teacher, "moi aussi")

        with serve(config, clock, limits, port=port):
            # Back: both reconnect by themselves (with backoff), resume, and the
            # messages written while it was down are sent once each.
            for page in (teacher, student):
                expect(page.locator(".conn")).to_have_text("Connected", timeout=20_000)
            for page in (teacher, student):
                expect(bodies(page)).to_have_count(3)
                texts = bodies(page).all_text_contents()
                assert texts[0] == "avant"
                assert sorted(texts[1:]) == ["moi aussi", "pendant la coupure"]
                expect(page.locator(".message.pending")).to_have_count(0)
    finally:
        app.close()
    assert app.errors == []


def test_a_message_hidden_from_a_parent_is_skipped_without_a_history_hunt(
        app: App, demo_server: LiveServer):
    """The invariant (docs/policy.md): what the teacher wrote while the parents' profile
    was off never reaches the parent. The app takes the ``skipped`` seq as held: no gap,
    so no ``history`` request to fill one, and the conversation goes on."""
    teacher = app.open("t1")
    parent = app.open("p1")
    sent_by_parent: list[dict[str, Any]] = []

    def watch(ws: WebSocket) -> None:
        ws.on("framesent", lambda payload: sent_by_parent.append(json.loads(payload)))

    parent.on("websocket", watch)
    discussion = start_discussion(teacher, "Réunion", "p1", "Marc", "m1")
    open_discussion(parent, discussion)
    expect(bodies(parent)).to_have_text(["m1"])
    parent.goto("about:blank")

    def parents_profile(on: bool) -> None:
        with demo_server.client("a1") as http:
            r = http.patch("/api/settings",
                           json={"profiles": {"parents": {"discussions_enabled": on}}})
            assert r.status_code == 200, r.text

    parents_profile(False)
    send(teacher, "only while the parents were off")
    expect(bodies(teacher)).to_have_text(["m1", "only while the parents were off"])
    parents_profile(True)
    parent.goto(f"{app.url}#/d/{discussion}")
    expect(parent.locator(".conn")).to_have_text("Connected")
    send(teacher, "m3")
    expect(bodies(parent)).to_have_text(["m1", "m3"])
    parent.wait_for_timeout(500)  # time for a gap fill, were one wrongly started
    # (opening the discussion asks ``history`` for read receipts, without ``before``)
    assert [f for f in sent_by_parent if f.get("type") == "history" and "before" in f] == []
    assert [f["resume"] for f in sent_by_parent if f.get("type") == "hello"] == [
        [[discussion, 1]]]
