"""The browser app on short-lived tokens: it refreshes them on the live connection
(``token_expiring`` → REST refresh → ``refresh`` frame) without reconnecting, comes back
with a refreshed token when one expired anyway (4401), and loses no message; its
sign-out ends the session on the server."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, WebSocket, expect

from server.limits import Limits
from tests.browser.conftest import App, prepare
from tests.browser.test_app import bodies, open_discussion, send, start_discussion
from tests.conftest import LiveServer, serve

TTL = 300  # seconds: the server warns 60 s before expiry


@pytest.fixture
def short_tokens(tmp_path: Path, limits: Limits) -> Iterator[LiveServer]:
    """Demo mode, with access tokens of five minutes (on the server's manual clock)."""
    config, clock, _ = prepare(tmp_path, demo=True)
    with serve(replace(config, token_ttl=TTL), clock, limits) as url:
        yield LiveServer(url, clock, config.database_url)


@pytest.fixture
def short_app(short_tokens: LiveServer, browser: Browser) -> Iterator[App]:
    running = App(short_tokens, browser)
    try:
        yield running
    finally:
        running.close()
    assert running.errors == [], "JavaScript errors in the app"


class Frames:
    """The WebSockets a page opens, and the frames it sends and receives on them."""

    def __init__(self, page: Page) -> None:
        self.sockets: list[WebSocket] = []
        self.sent: list[dict[str, object]] = []
        self.received: list[dict[str, object]] = []
        page.on("websocket", self._opened)

    def _opened(self, ws: WebSocket) -> None:
        self.sockets.append(ws)
        ws.on("framesent", lambda payload: self.sent.append(_frame(payload)))
        ws.on("framereceived", lambda payload: self.received.append(_frame(payload)))

    def types_sent(self) -> list[object]:
        return [f.get("type") for f in self.sent]

    def types_received(self) -> list[object]:
        return [f.get("type") for f in self.received]


def _frame(payload: str | bytes) -> dict[str, object]:
    try:
        value = json.loads(payload)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def signed_in(app: App, user: str) -> tuple[Page, Frames]:
    page = app.page()
    frames = Frames(page)
    page.locator(f'.demo-picker button[data-user="{user}"]').click()
    expect(page.locator(".conn")).to_have_text("Connected")
    return page, frames


def stored_token(page: Page) -> str:
    return str(page.evaluate("() => sessionStorage.getItem('preau.token')"))


def test_the_app_outlives_its_access_tokens_without_losing_a_message(
        short_app: App, short_tokens: LiveServer):
    teacher, teacher_frames = signed_in(short_app, "t1")
    student, student_frames = signed_in(short_app, "e1")
    discussion = start_discussion(teacher, "Sortie", "e1", "Petit", "Bonjour")
    open_discussion(student, discussion)
    before = {"t1": stored_token(teacher), "e1": stored_token(student)}

    # Four minutes on: the server says the tokens are about to expire; each page
    # refreshes through REST and hands the new token over its live connection.
    short_tokens.clock.advance(timedelta(seconds=TTL - 50))
    for page, frames, user in ((teacher, teacher_frames, "t1"),
                               (student, student_frames, "e1")):
        page.wait_for_function("(t) => sessionStorage.getItem('preau.token') !== t",
                               arg=before[user])
        _wait(page, lambda f=frames: "refreshed" in f.types_received())  # type: ignore[misc]
        assert "token_expiring" in frames.types_received()
        assert "refresh" in frames.types_sent()

    # Past the first tokens' expiry: nobody was cut, the conversation goes on.
    short_tokens.clock.advance(timedelta(seconds=60))
    send(student, "Merci")
    send(teacher, "Avec plaisir")
    expected = ["Bonjour", "Merci", "Avec plaisir"]
    expect(bodies(teacher)).to_have_text(expected)
    expect(bodies(student)).to_have_text(expected)
    assert len(teacher_frames.sockets) == 1, "the teacher reconnected"
    assert len(student_frames.sockets) == 1, "the student reconnected"
    # A REST call with the refreshed token works (the contacts of the new-discussion form).
    teacher.get_by_role("link", name="New discussion").click()
    teacher.get_by_label("Add recipients").fill("Moreau")
    expect(teacher.locator('.picker-results button[data-user="e2"]')).to_be_visible()
    open_discussion(teacher, discussion)

    # An hour later in one jump (a laptop waking up): the tokens expired unrefreshed.
    # The server closes with 4401; the app comes back with a refreshed token, and what
    # was said meanwhile arrives.
    short_tokens.clock.advance(timedelta(hours=1))
    expect(teacher.locator(".conn")).to_have_text("Connected")
    _wait(student, lambda: len(student_frames.sockets) >= 2)
    expect(student.locator(".conn")).to_have_text("Connected")
    send(student, "Encore là ?")
    expect(bodies(teacher)).to_have_text([*expected, "Encore là ?"])
    expect(bodies(student)).to_have_text([*expected, "Encore là ?"])


def test_sign_out_ends_the_session_on_the_server(short_app: App):
    first, _ = signed_in(short_app, "t1")
    token = stored_token(first)
    first.get_by_role("button", name="Sign out").click()
    expect(first.locator(".demo-picker")).to_be_visible()
    # The signed-out tab's access token is refused from now on (once the logout,
    # sent as the page moves on, has been served).
    status = first.evaluate(
        """async (token) => {
             for (let i = 0; i < 100; i += 1) {
               const r = await fetch('/api/me', {headers: {Authorization: `Bearer ${token}`}});
               if (r.status !== 200) return r.status;
               await new Promise((done) => setTimeout(done, 50));
             }
             return 200;
           }""", token)
    assert status == 401
    assert first.evaluate("() => sessionStorage.getItem('preau.refresh')") is None


def _wait(page: Page, predicate: Callable[[], bool], within_ms: int = 10_000) -> None:
    """Until ``predicate()`` holds; Playwright's events are delivered while it waits."""
    for _ in range(within_ms // 50):
        if predicate():
            return
        page.wait_for_timeout(50)
    pytest.fail("the condition did not hold in time")


def test_a_duplicated_tab_gives_up_the_refresh_token(short_app: App):
    """A tab opened as a copy of another (its sessionStorage copied) must not race the
    original with the same refresh token: a second use would end the session."""
    original, _ = signed_in(short_app, "t1")
    refresh = original.evaluate("() => sessionStorage.getItem('preau.refresh')")
    assert refresh
    with original.context.expect_page() as opened:
        original.evaluate("() => { window.open(location.href); }")
    copy = opened.value
    expect(copy.locator(".conn")).to_have_text("Connected")  # signed in, on the access token
    assert copy.evaluate("() => sessionStorage.getItem('preau.refresh')") is None
    assert copy.evaluate("() => sessionStorage.getItem('preau.tab')") != original.evaluate(
        "() => sessionStorage.getItem('preau.tab')")
    assert original.evaluate("() => sessionStorage.getItem('preau.refresh')") == refresh
