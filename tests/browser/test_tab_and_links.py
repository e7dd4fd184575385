"""What users expect of a messaging app (issue 11, item 3): the unread count in the
tab's title and on its icon, and clickable links in messages that cannot run code."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import App
from tests.browser.test_app import open_discussion, send, start_discussion

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
