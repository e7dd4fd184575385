"""What users expect of a messaging app (issue 11, item 3): the unread count in the
tab's title and on its icon, and clickable links in messages that cannot run code."""

from __future__ import annotations

from playwright.sync_api import Dialog, Page, expect

from tests.browser.conftest import App
from tests.browser.test_app import open_discussion, send, start_discussion
from tests.browser.test_broadcasts import new_form, send_and_open

PLAIN_ICON = "data:,"  # index.html's icon: nothing drawn
# The icon as an <img> of this page: it decodes only if it is an image and the page's
# Content-Security-Policy (img-src) lets it load.
DECODES = """async (href) => {
  const img = new Image();
  img.src = href;
  try { await img.decode(); } catch { return 0; }
  return img.naturalWidth;
}"""


def icon(page: Page) -> str:
    href = page.locator('link[rel="icon"]').get_attribute("href")
    assert href is not None
    return href


def test_unread_count_in_the_tab_title_and_on_the_favicon(app: App):
    teacher = app.open("t1")
    student = app.open("e1")
    favicon = student.locator('link[rel="icon"]')
    expect(student).to_have_title("Discussions · Préau")
    expect(favicon).to_have_attribute("href", PLAIN_ICON)

    discussion = start_discussion(teacher, "Conseil", "e1", "Léa", "Le conseil est mardi.")
    expect(student).to_have_title("(1) Discussions · Préau")
    expect(favicon).not_to_have_attribute("href", PLAIN_ICON)
    one = icon(student)
    assert one.startswith("data:image/svg+xml,")
    assert student.evaluate(DECODES, one) > 0

    send(teacher, "Apportez vos bulletins.")
    expect(student).to_have_title("(2) Discussions · Préau")
    expect(favicon).not_to_have_attribute("href", one)  # the badge says 2 now
    assert student.evaluate(DECODES, icon(student)) > 0
    # The author's own messages are read: nothing unread in the teacher's tab.
    expect(teacher).to_have_title("Conseil · Préau")
    expect(teacher.locator('link[rel="icon"]')).to_have_attribute("href", PLAIN_ICON)

    # Reading them brings the tab back to plain.
    open_discussion(student, discussion)
    expect(student).to_have_title("Conseil · Préau")
    expect(favicon).to_have_attribute("href", PLAIN_ICON)
    student.locator('nav a[data-route="list"]').click()
    expect(student).to_have_title("Discussions · Préau")


LINK_TEXT = "voir https://exemple.fr/a?b=1. et javascript:alert(1)"
# linkify() of dom.js on its own: [text, href] for each piece of the result.
PIECES = """async (text) => {
  const { linkify } = await import('/dom.js');
  return linkify(text).map((p) => (typeof p === 'string' ? [p, null]
    : [p.textContent, p.getAttribute('href'), p.target, p.rel]));
}"""


def test_links_in_messages_are_clickable_and_safe(app: App):
    teacher = app.open("t1")
    student = app.open("e1")
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    for page in (teacher, student):
        page.on("dialog", on_dialog)
    discussion = start_discussion(teacher, "Sortie", "e1", "Léa", "Bonjour")
    send(teacher, LINK_TEXT)
    open_discussion(student, discussion)

    body = student.locator(".messages .message .body").last
    expect(body).to_have_text(LINK_TEXT)  # every character, as text
    links = body.locator("a")
    expect(links).to_have_count(1)
    link = links.first
    expect(link).to_have_text("https://exemple.fr/a?b=1")  # the full stop is the sentence's
    expect(link).to_have_attribute("href", "https://exemple.fr/a?b=1")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    # The rest stays text: no element but the link, no javascript: anywhere as an address.
    assert body.evaluate("(p) => [...p.childNodes].map((n) => n.nodeName)") == [
        "#text", "A", "#text"]
    assert student.locator('[href^="javascript:" i], [src^="javascript:" i]').count() == 0
    expect(teacher.locator(".messages .message .body").last.locator("a")).to_have_count(1)

    # It opens in a new tab that cannot reach back to the app (no window.opener).
    student.context.route("https://exemple.fr/**", lambda route: route.fulfill(
        status=200, content_type="text/html", body="<title>Exemple</title>"))
    with student.expect_popup() as opened:
        link.click()
    popup = opened.value
    popup.wait_for_load_state()
    assert popup.url == "https://exemple.fr/a?b=1"
    assert popup.evaluate("() => window.opener") is None
    popup.close()
    assert dialogs == [], "a script of the message ran"

    # The rules, piece by piece.
    assert student.evaluate(PIECES, "(voir https://a.fr/x), puis https://fr.wikipedia.org/wiki/"
                                    "Préau_(bâtiment).") == [
        ["(voir ", None],
        ["https://a.fr/x", "https://a.fr/x", "_blank", "noopener noreferrer nofollow"],
        ["), puis ", None],
        ["https://fr.wikipedia.org/wiki/Préau_(bâtiment)",
         "https://fr.wikipedia.org/wiki/Pr%C3%A9au_(b%C3%A2timent)", "_blank",
         "noopener noreferrer nofollow"],
        [".", None]]
    for text in ("JAVASCRIPT:alert(1)", "data:text/html,<script>alert(1)</script>",
                 "vbscript:msgbox(1)", "file:///etc/passwd", "ftp://exemple.fr/a",
                 "https://", "http://?x", "xhttps://exemple.fr", "<a href=x>https</a>"):
        assert student.evaluate(PIECES, text) == [[text, None]], text
    assert dialogs == []


def test_links_in_information_messages(app: App):
    teacher = app.open("t1")
    parent = app.open("p2")
    new_form(teacher)
    teacher.get_by_label("Title", exact=True).fill("Sortie")
    teacher.get_by_label("Text", exact=True).fill(LINK_TEXT)
    teacher.get_by_label("Parents", exact=True).check()
    broadcast = send_and_open(teacher, "Send the information")
    parent.goto(f"{app.url}#/b/{broadcast}")
    for page in (teacher, parent):
        body = page.locator(".broadcast-detail .broadcast-body")
        expect(body).to_have_text(LINK_TEXT)
        expect(body.locator("a")).to_have_count(1)
        expect(body.locator("a")).to_have_attribute("href", "https://exemple.fr/a?b=1")
        expect(body.locator("a")).to_have_attribute("rel", "noopener noreferrer nofollow")
