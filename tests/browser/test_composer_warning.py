"""The composer says before typing when a post will be refused (issue 11, item 3): the
server's ``post`` status (protocol §8.4), written in the reader's language from its code
and params by client_demo/errors.js."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

from playwright.sync_api import WebSocket, expect

from server.client import Client
from tests.browser.conftest import EVENING, NEXT_OPENING, App
from tests.browser.test_app import composer, open_discussion
from tests.conftest import LiveServer

LEFT_EN = ("The teacher who brought you in (Claire Martin) left the discussion: "
           "you can no longer write here.")
LEFT_FR = ("Le professeur qui vous a invité (Claire Martin) a quitté la discussion : "
           "vous ne pouvez plus écrire ici.")


def as_teacher(server: LiveServer, step: str, discussion: int = 0) -> int:
    """The teacher, with the Python client: start with Léa and Hugo, or leave. In a
    thread: Playwright's sync API keeps an event loop running in this one."""

    async def run() -> int:
        async with Client(server.url, server.token("t1"), reconnect=False) as client:
            if step == "start":
                started = await client.start(["e1", "e2"], "Exposé", "Travaillez à deux.")
                return int(started["discussion"]["id"])
            await client.leave(discussion)
            return discussion

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result(timeout=60)


def test_a_student_whose_teacher_left_is_told_before_typing(app: App, demo_server: LiveServer):
    discussion = as_teacher(demo_server, "start")
    student = app.open("e1")
    open_discussion(student, discussion)
    note = student.locator(".post-note")
    expect(composer(student)).to_be_enabled()
    expect(note).to_be_hidden()

    # The teacher leaves: Léa and Hugo may not talk unsupervised. Léa's page says so at
    # once, before she types anything, and the composer is closed.
    as_teacher(demo_server, "leave", discussion)
    expect(note).to_have_text(LEFT_EN)
    expect(composer(student)).to_be_disabled()
    expect(student.locator(".composer button[type=submit]")).to_be_disabled()

    # After a reload, in French: the status comes back with the discussion.
    student.evaluate("localStorage.setItem('preau.language', 'fr')")
    student.reload()
    open_discussion(student, discussion)
    expect(student.locator(".post-note")).to_have_text(LEFT_FR)
    expect(composer(student)).to_be_disabled()
    app.screenshot(student, "composer-teacher-left")


def test_outside_hours_is_said_before_sending_and_lifts_by_itself(app: App,
                                                                 demo_server: LiveServer):
    discussion = as_teacher(demo_server, "start")
    student = app.open("e2")
    typing: list[int] = []

    def watch(ws: WebSocket) -> None:
        def sent(payload: str | bytes) -> None:
            frame = json.loads(payload)
            if frame.get("type") == "typing":
                typing.append(frame["discussion"])
        ws.on("framesent", sent)

    student.on("websocket", watch)
    student.reload()  # the next socket is watched
    expect(student.locator(".conn")).to_have_text("Connected")
    open_discussion(student, discussion)
    note = student.locator(".post-note")
    expect(note).to_be_hidden()
    composer(student).press_sequentially("Bon")
    for _ in range(100):  # the frame is reported by the browser a moment later
        if typing:
            break
        student.wait_for_timeout(50)
    assert typing == [discussion]  # sent while open

    demo_server.clock.set(EVENING)  # the window closes, live: no request is needed
    expect(note).to_have_text("Discussions are closed at this hour. "
                              "They open again at 07:00 on Wed 25 Nov.")
    # Closed for a few hours only: one may still write a draft for the morning, but
    # nobody is told one is typing a message that cannot go out now (§5.6).
    expect(composer(student)).to_be_enabled()
    student.wait_for_timeout(3100)  # past the client's 3 s typing throttle
    composer(student).press_sequentially("soir")
    expect(composer(student)).to_have_value("Bonsoir")
    student.wait_for_timeout(300)  # as long as the first one took to be reported, and more
    assert typing == [discussion]
    demo_server.clock.set(NEXT_OPENING)
    expect(note).to_be_hidden()
