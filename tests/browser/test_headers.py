"""The app under its own Content-Security-Policy, in a real Chromium.

The server's CSP forbids inline code and every other origin. These tests check that the
headers reach the browser, that the app works under them (sign in, converse, the
settings and broadcast screens) without a single violation, and that the policy is
really enforced (an injected inline script does not run, and is reported).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from playwright.sync_api import ConsoleMessage, Page, expect

from tests.browser.conftest import DESKTOP, TIMEOUT_MS, App
from tests.browser.test_app import bodies, send, start_discussion

# Installed before any script of the page: every violation the browser reports.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


@dataclass
class Watched:
    page: Page
    console: list[str] = field(default_factory=list)

    def violations(self) -> list[str]:
        found: list[str] = self.page.evaluate("() => window.__violations")
        return found + [m for m in self.console if "Content Security Policy" in m]


def watched_page(app: App) -> tuple[Watched, dict[str, str]]:
    """A tab at the sign-in page that records CSP violations; also the page's headers."""
    context = app.browser.new_context(viewport=DESKTOP, locale="en-GB",
                                      timezone_id="Europe/Paris")
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_VIOLATIONS)
    app.contexts.append(context)
    page = context.new_page()
    watched = Watched(page)

    def on_console(message: ConsoleMessage) -> None:
        watched.console.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: app.errors.append(f"{page.url}: {exc}"))
    response = page.goto(app.url)
    assert response is not None
    return watched, response.headers


def sign_in(watched: Watched, user: str) -> None:
    watched.page.locator(f'.demo-picker button[data-user="{user}"]').click()
    expect(watched.page.locator(".conn")).to_have_text("Connected")


def test_the_app_works_under_its_own_policy(app: App):
    teacher, headers = watched_page(app)
    csp = headers["content-security-policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'",
                      "object-src 'none'", "base-uri 'none'", "form-action 'self'"):
        assert directive in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"

    student, _ = watched_page(app)
    admin, _ = watched_page(app)
    sign_in(teacher, "t1")
    sign_in(student, "e1")
    sign_in(admin, "a1")
    discussion = start_discussion(teacher.page, "Sortie", "e1", "Petit", "Bonjour")
    student.page.locator(f'.discussion-list a[data-discussion="{discussion}"]').click()
    expect(bodies(student.page)).to_have_text(["Bonjour"])
    send(student.page, "Merci !")
    expect(bodies(teacher.page)).to_have_text(["Bonjour", "Merci !"])
    # The other screens, with their styles and scripts.
    admin.page.get_by_role("link", name="Settings").click()
    expect(admin.page).to_have_title("Settings · Préau")
    teacher.page.locator('nav a[data-route="broadcasts"]').click()
    expect(teacher.page.get_by_role("heading", name="Information & polls")).to_be_visible()

    for tab in (teacher, student, admin):
        assert tab.violations() == []


def test_the_policy_is_enforced(app: App):
    """The check above could pass with no policy at all: here an injected inline script
    is blocked, and the violation is seen by the same means."""
    tab, _ = watched_page(app)
    tab.page.evaluate("""() => {
        const s = document.createElement('script');
        s.textContent = 'window.__injected = 1';
        document.head.appendChild(s);
    }""")
    expect(tab.page.locator("body")).to_be_visible()
    tab.page.wait_for_function("() => window.__violations.length > 0", timeout=TIMEOUT_MS)
    assert tab.page.evaluate("() => window.__injected") is None
    assert any(v.startswith("script-src") for v in tab.violations())
