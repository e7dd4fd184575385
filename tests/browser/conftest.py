"""Browser fixtures: the app of ``client_demo/`` served by a real server, driven by
Playwright through Debian's Chromium (``/usr/bin/chromium``; Playwright's own browser
download does not work here, and is never needed).

- ``demo_server``: like ``live_server`` (same schools, same ``ManualClock``, same
  secret) but in demo mode, so that the sign-in page lists everyone.
- ``browser``: one Chromium per test module.
- ``app``: opens pages signed in as a given user, and fails the test on any
  JavaScript error in them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server.clock import ManualClock
from server.config import Config
from server.limits import Limits
from tests.conftest import SCHOOL_DAY, SECRET, LiveServer, _import_schools, serve

try:
    from playwright.sync_api import (
        Browser,
        BrowserContext,
        Page,
        ViewportSize,
        expect,
        sync_playwright,
    )
except ImportError as exc:  # a clear failure, never a skip
    raise ImportError("the browser tests need the playwright pip package (in the test "
                      "extras): `.venv/bin/pip install -e '.[test]'`") from exc

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 780}  # a phone held upright: under 400 px
# Both schools are imported (as for live_server); the app passes ?school= to the demo API.
SCHOOL = "hugo"
TIMEOUT_MS = 10_000

expect.set_options(timeout=TIMEOUT_MS)


def prepare(tmp_path: Path, *, demo: bool) -> tuple[Config, ManualClock, Path]:
    """The two test schools of ``live_server`` in a new database, and a clock at 10:00
    in Paris on a Tuesday."""
    db = tmp_path / "browser.db"
    # In a thread: Playwright's sync API keeps an event loop running in this one,
    # where asyncio.run() (used by _import_schools) refuses to start.
    importer = threading.Thread(target=_import_schools, args=(f"sqlite:///{db}",))
    importer.start()
    importer.join(timeout=30)
    # Tokens outlive the tests' clock jumps to the evening and the next morning.
    config = Config(database_url=f"sqlite:///{db}", jwt_secret=SECRET, demo=demo,
                    token_ttl=int(timedelta(days=7).total_seconds()))
    return config, ManualClock(SCHOOL_DAY), db


@contextmanager
def school_server(tmp_path: Path, limits: Limits, *, demo: bool) -> Iterator[LiveServer]:
    config, clock, _ = prepare(tmp_path, demo=demo)
    with serve(config, clock, limits) as url:
        yield LiveServer(url, clock, config.database_url)


@pytest.fixture
def demo_server(tmp_path: Path, limits: Limits) -> Iterator[LiveServer]:
    """Demo mode: GET /api/demo/users lists everyone, POST /api/demo/token signs in."""
    with school_server(tmp_path, limits, demo=True) as server:
        yield server


@pytest.fixture
def token_server(tmp_path: Path, limits: Limits) -> Iterator[LiveServer]:
    """Not in demo mode: the sign-in page asks for a token (``server.token(user)``)."""
    with school_server(tmp_path, limits, demo=False) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is missing ({CHROMIUM}): the browser tests need Debian's "
                    "Chromium; install it with `apt-get install chromium` (or `make chromium`).",
                    pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                              timeout=30_000)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class App:
    """Pages of the app, one browser context (one tab's sessionStorage) per person."""

    server: LiveServer
    browser: Browser
    contexts: list[BrowserContext] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.server.url}/?school={SCHOOL}"

    def page(self, *, phone: bool = False, locale: str = "en-GB") -> Page:
        """A fresh tab at the sign-in page, in Paris time, in English unless told
        otherwise (the app takes its language from the browser's)."""
        context = self.browser.new_context(viewport=PHONE if phone else DESKTOP,
                                           locale=locale, timezone_id="Europe/Paris")
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))
        page.goto(self.url)
        return page

    def open(self, user: str, *, phone: bool = False, locale: str = "en-GB") -> Page:
        """A tab signed in as ``user`` through the demo sign-in page, connected."""
        page = self.page(phone=phone, locale=locale)
        page.locator(f'.demo-picker button[data-user="{user}"]').click()
        expect(page.locator(".conn")).to_have_attribute("data-state", "open")
        return page

    def screenshot(self, page: Page, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=False)
        return path

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()


@pytest.fixture
def app(demo_server: LiveServer, browser: Browser) -> Iterator[App]:
    running = App(demo_server, browser)
    try:
        yield running
    finally:
        running.close()
    assert running.errors == [], "JavaScript errors in the app"


# ---------------------------------------------------------------------- shared checks

# 22:30 in Paris on the test Tuesday (after the default 07:00–20:00 window), and the
# opening on Wednesday at 07:00 Paris time.
EVENING = datetime(2026, 11, 24, 21, 30, tzinfo=UTC)
NEXT_OPENING = datetime(2026, 11, 25, 6, 0, 1, tzinfo=UTC)

# Every visible form control must have a label (a <label for>, or aria-label).
UNLABELLED = """() => [...document.querySelectorAll('input, textarea, select')]
  .filter((el) => el.offsetParent !== null)
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
  .map((el) => el.outerHTML)"""
NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"


def check_layout(page: Page) -> None:
    assert page.evaluate(UNLABELLED) == []
    assert page.evaluate(NO_SIDEWAYS_SCROLL), "the page scrolls sideways"
