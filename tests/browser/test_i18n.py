"""The app in French first, English second (issue 11, item 1).

Every screen is visited in a French browser (``locale='fr-FR'``) and in an English one
(``en-GB``); on each, the page's words (text, placeholders, accessible names, the tab's
title) must contain no string of the other language's catalogue (those that differ from
this language's), and no raw catalogue key. The catalogues are the app's own: read from
``/i18n.js`` in the page, once every module has registered its words.

The forms are driven by ids and data attributes, never by their words, so the same tour
runs in both languages.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ARTIFACTS, App, check_layout
from tests.conftest import LiveServer

CATALOGUES = """async () => {
  const i18n = await import('/i18n.js');
  return { fr: i18n.catalogue('fr'), en: i18n.catalogue('en'), lang: i18n.language() };
}"""

# What a reader gets from the page: its text (sr-only included, hidden parts not), the
# placeholders, accessible names and tooltips, and the tab's title.
SHOWN = """(ignore) => {
  let body = document.body.innerText;
  for (const el of ignore ? document.querySelectorAll(ignore) : []) {
    body = body.replace(el.innerText, '');
  }
  const parts = [document.title, body];
  for (const el of document.querySelectorAll('[placeholder], [aria-label], [title]')) {
    for (const name of ['placeholder', 'aria-label', 'title']) {
      const value = el.getAttribute(name);
      if (value) parts.push(value);
    }
  }
  return parts.join('\\n');
}"""

OTHER = {"fr": "en", "en": "fr"}
NATIVE_DATES = 'input[type="time"], input[type="date"], input[type="datetime-local"]'
LETTER = re.compile(r"[^\W\d_]")
EDGES = " .,:;!?…()‹›«»“”\"'·|–-\u00a0\u202f"


def found(piece: str, text: str) -> bool:
    """``piece`` as whole words in ``text`` ("Sent" is not in "Absent")."""
    return re.search(rf"(?<!\w){re.escape(piece)}(?!\w)", text) is not None


def foreign_fragments(avoid: dict[str, str], shown: dict[str, str]) -> set[str]:
    """The pieces of the ``avoid`` catalogue that must not be on a page in the other
    language: the literal parts around ``{params}`` of every string that differs from
    the shown language's, without the very short ones (under 3 characters) and those
    that are words of the shown language too ("Information", "Parents", "Message";
    as whole words: "Invite" is not a word of "Inviter")."""
    own = list(shown.values())
    out: set[str] = set()
    for key, text in avoid.items():
        if shown.get(key) == text:
            continue
        for piece in re.split(r"\{\w+\}", text):
            piece = piece.strip(EDGES)
            if len(piece) < 3 or not LETTER.search(piece):
                continue
            if any(found(piece, mine) for mine in own):
                continue
            out.add(piece)
    return out


class Checker:
    """Checks screens of one page against the catalogues, in its language."""

    def __init__(self, page: Page, lang: str, screens: list[str]) -> None:
        self.page = page
        self.lang = lang
        self.screens = screens

    def __call__(self, screen: str, *, ignore: str = "") -> None:
        page = self.page
        expect(page.locator("html")).to_have_attribute("lang", self.lang)
        cats = page.evaluate(CATALOGUES)
        assert cats["lang"] == self.lang
        assert len(cats["fr"]) > 300, "the modules have not registered their words"
        text = page.evaluate(SHOWN, ignore)
        foreign = sorted(p for p in foreign_fragments(cats[OTHER[self.lang]], cats[self.lang])
                         if found(p, text))
        assert foreign == [], f"{screen} ({self.lang}) shows words of the other language: {foreign}"
        keys = sorted(k for k in set(cats["fr"]) | set(cats["en"])
                      if re.search(rf"(?<![\w.]){re.escape(k)}(?![\w.])", text))
        assert keys == [], f"{screen} ({self.lang}) shows raw catalogue keys: {keys}"
        self.screens.append(screen)
        # A picture of each screen in each language, for a look at long French words.
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^a-z]+", "-", screen.lower()).strip("-")
        page.screenshot(path=str(ARTIFACTS / f"i18n-{self.lang}-{name}.png"))


def wait_open(page: Page) -> None:
    expect(page.locator(".conn")).to_have_attribute("data-state", "open")


def tour(app: App, server: LiveServer, locale: str) -> list[str]:
    """Every screen of the app, in ``locale``; returns the screens checked."""
    lang = locale.split("-")[0]

    # The sign-in page (the demo picker), before anyone is signed in.
    screens: list[str] = []
    first = app.page(locale=locale)
    check = Checker(first, lang, screens)
    expect(first.locator(".demo-picker")).to_be_visible()
    first.locator(".demo-picker input[type=search]").fill("Martin")
    expect(first.locator('.demo-picker button[data-user="t1"]')).to_be_visible()
    check("sign-in")

    # A teacher: the discussion list, a new discussion, a discussion.
    first.locator('.demo-picker button[data-user="t1"]').click()
    teacher = first
    wait_open(teacher)
    check("discussion list")
    teacher.locator("a.new-button").click()
    form = teacher.locator("form.new-discussion")
    form.locator('input[type="text"]').fill("Sortie au musée")
    form.locator(".picker input[type=search]").fill("Petit")
    form.locator('.picker-results button[data-user="e1"]').click()
    expect(form.locator('.chips [data-user="e1"]')).to_be_visible()
    check("new discussion")
    form.locator("textarea").fill("Bonjour, la sortie est confirmée.")
    form.locator('button[type="submit"]').click()
    expect(teacher).to_have_url(re.compile(r"#/d/\d+$"))
    expect(teacher.locator(".messages .message:not(.pending) .body")).to_have_count(1)
    expect(teacher.locator(".messages .message .status")).to_be_visible()
    check("discussion")
    teacher.locator('button[data-action="leave"]').click()
    check("discussion, leaving asked")
    teacher.locator(".leave-panel button.secondary").click()
    teacher.goto(f"{app.url}#/d/99999")
    expect(teacher.locator(".conversation.missing")).to_be_visible()
    check("unknown discussion")

    # Information and polls: the lists, the form, one sent poll with its results.
    teacher.locator('nav a[data-route="broadcasts"]').click()
    expect(teacher.locator("a.new-button")).to_be_visible()
    check("broadcast lists")
    teacher.locator("a.new-button").click()
    compose = teacher.locator("form.compose-form")
    compose.locator('input[data-kind="poll"]').check()
    compose.locator('input[data-field="title"]').fill("Sortie au musée")
    compose.locator('input[data-role="parent"]').check()
    expect(compose.locator(".recipients-count")).to_have_attribute("data-state", "ok")
    compose.locator('[data-q="0"][data-part="text"]').fill("Accompagnerez-vous la sortie ?")
    compose.locator('[data-q="0"][data-choice="0"]').fill("Oui")
    compose.locator('[data-q="0"][data-choice="1"]').fill("Non")
    # No date or time field that a browser shows in its own language's order or on the
    # 12-hour clock ("12/09/2026", "08:00 PM"), whatever the page's language.
    assert compose.locator(NATIVE_DATES).count() == 0
    expect(compose.locator('input[data-when="deadline-date"]')).to_have_value("09/12/2026")
    expect(compose.locator('input[data-when="deadline-time"]')).to_have_value("20:00")
    check("broadcast form")
    compose.locator("button.compose-send").click()
    expect(teacher).to_have_url(re.compile(r"#/b/\d+$"))
    broadcast = int(teacher.url.rsplit("/", 1)[1])
    teacher.locator(".results-button").click()
    expect(teacher.locator(".results .pending-lists")).to_be_visible()
    check("broadcast results")

    # A parent: the poll received, answered; her preferences.
    parent = app.open("p2", locale=locale)
    parent.locator('nav a[data-route="broadcasts"]').click()
    item = parent.locator(f'.received-list a[data-broadcast="{broadcast}"]')
    expect(item.locator(".badge-todo")).to_be_visible()
    check_parent = Checker(parent, lang, screens)
    check_parent("broadcast lists (recipient)")
    item.click()
    parent.locator('.poll-form input[value="0"]').check()
    parent.locator(".poll-form button.send-answers").click()
    expect(parent.locator(".poll-form .form-status")).not_to_be_empty()
    check_parent("poll answered")
    parent.locator('nav a[data-route="prefs"]').click()
    expect(parent.locator('input[data-pref="parent_messaging_opt_in"]')).to_be_visible()
    check_parent("preferences")

    # The administrator: settings, students' rights, the audit log with one change.
    admin = app.open("a1", locale=locale)
    admin.locator('nav a[data-route="settings"]').click()
    profile = admin.locator('input[data-profile="students"]')
    expect(profile).to_be_checked()
    assert admin.locator(NATIVE_DATES).count() == 0
    expect(admin.locator('input[data-hours="end"]')).to_have_value("20:00")
    profile.uncheck()
    admin.locator('form.settings-form button[type="submit"]').click()
    expect(admin.locator(
        '.audit td[data-field="profiles.students.discussions_enabled"]')).to_be_visible()
    expect(admin.locator(".student-list li").first).to_be_visible()
    check_admin = Checker(admin, lang, screens)
    check_admin("settings and audit log")

    # A student whose profile was just switched off: the page that says so.
    student = app.page(locale=locale)
    student.locator('.demo-picker button[data-user="e1"]').click()
    expect(student.locator(".access")).to_be_visible()
    # The reason itself is a refusal sentence of explain() (text.js), which moves to the
    # errors' own catalogue separately: the rest of the page is checked here.
    Checker(student, lang, screens)("access refused", ignore=".access-reason, .access-detail")
    return screens


@pytest.mark.parametrize("locale", ["fr-FR", "en-GB"])
def test_every_screen_speaks_one_language(app: App, demo_server: LiveServer, locale: str):
    screens = tour(app, demo_server, locale)
    assert len(screens) == 14, screens


def test_french_dates_and_24_hour_times(app: App):
    teacher = app.open("t1", locale="fr-FR")
    expect(teacher.locator(".conn")).to_have_text("Connecté")
    # A poll's default deadline: the end of the school day (20:00 in Paris), in 15 days.
    teacher.locator('nav a[data-route="broadcasts"]').click()
    teacher.locator("a.new-button").click()
    compose = teacher.locator("form.compose-form")
    compose.locator('input[data-kind="poll"]').check()
    compose.locator('input[data-field="title"]').fill("Réunion")
    compose.locator('input[data-role="parent"]').check()
    compose.locator('[data-q="0"][data-part="text"]').fill("Présent ?")
    compose.locator('[data-q="0"][data-choice="0"]').fill("Oui")
    compose.locator('[data-q="0"][data-choice="1"]').fill("Non")
    compose.locator("button.compose-send").click()
    expect(teacher).to_have_url(re.compile(r"#/b/\d+$"))
    # « mer. 9 déc. à 20:00 »: French day and month, 24-hour time, on the school's clock.
    expect(teacher.locator(".broadcast-status")).to_contain_text(
        "Réponses jusqu’à mer. 9 déc. à 20:00.")
    expect(teacher.locator(".broadcast-detail .conv-people")).to_contain_text(
        "publié 24 nov. 2026, 10:00")
    parent = app.open("p2", locale="fr-FR")
    parent.locator('nav a[data-route="broadcasts"]').click()
    expect(parent.locator(".received-list .badge-todo")).to_have_text(
        "Répondre avant mer. 9 déc. à 20:00")
    # A message of the test Tuesday: « mar. 24 nov., 10:00 » (or « 10:00 » on that day).
    teacher.locator('nav a[data-route="list"]').click()
    teacher.locator("a.new-button").click()
    form = teacher.locator("form.new-discussion")
    form.locator('input[type="text"]').fill("Cantine")
    form.locator(".picker input[type=search]").fill("Petit")
    form.locator('.picker-results button[data-user="e1"]').click()
    form.locator("textarea").fill("Bonjour")
    form.locator('button[type="submit"]').click()
    expect(teacher.locator(".messages .message:not(.pending) time")).to_have_text(
        [re.compile(r"^(mar\. 24 nov\., )?10:00$")])


def test_the_switch_redraws_in_place_and_is_remembered(app: App):
    page = app.page(locale="en-GB")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator(".signin h1")).to_have_text("Sign in to Préau")
    page.locator('.lang-switch button[data-lang="fr"]').click()
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.locator(".signin h1")).to_have_text("Connexion à Préau")
    expect(page.locator('.lang-switch button[data-lang="fr"]')).to_have_attribute(
        "aria-pressed", "true")

    page.locator('.demo-picker button[data-user="t1"]').click()
    wait_open(page)
    expect(page.locator("button.sign-out")).to_have_text("Se déconnecter")
    page.locator("a.new-button").click()
    expect(page.locator(".new-discussion h2")).to_have_text("Nouvelle discussion")
    expect(page).to_have_title("Nouvelle discussion · Préau")

    # To English: the header, the screen and the tab's title, without a reload.
    marker = page.evaluate("() => { window.notReloaded = true; return true; }")
    assert marker
    page.locator('.topbar .lang-switch button[data-lang="en"]').click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("button.sign-out")).to_have_text("Sign out")
    expect(page.locator(".new-discussion h2")).to_have_text("New discussion")
    expect(page).to_have_title("New discussion · Préau")
    expect(page.locator(".conn")).to_have_text("Connected")
    assert page.evaluate("() => window.notReloaded === true")

    # Back to French, and a reload keeps the choice over the browser's English.
    page.locator('.topbar .lang-switch button[data-lang="fr"]').click()
    expect(page.locator(".conn")).to_have_text("Connecté")
    page.reload()
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.locator(".new-discussion h2")).to_have_text("Nouvelle discussion")


def test_a_french_browser_gets_french_and_the_page_says_so(app: App):
    page = app.page(locale="fr-FR")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.locator(".signin h1")).to_have_text("Connexion à Préau")
    expect(page).to_have_title("Connexion · Préau")
    # Before the app runs, the page itself is French.
    html = (Path(__file__).resolve().parents[2] / "client_demo" / "index.html").read_text()
    assert '<html lang="fr">' in html
    assert "Chargement de Préau…" in html


def test_readme_screens_in_french(app: App):
    """The README's pictures, in French (``test-artifacts/readme-*.png``, copied to
    ``docs/img/`` by hand): a teacher's conversation (desktop), the student's side
    (phone), and a poll's results."""
    teacher = app.open("t1", locale="fr-FR")
    student = app.open("e1", phone=True, locale="fr-FR")
    teacher.locator("a.new-button").click()
    form = teacher.locator("form.new-discussion")
    form.locator('input[type="text"]').fill("Sortie au musée")
    form.locator(".picker input[type=search]").fill("Petit")
    form.locator('.picker-results button[data-user="e1"]').click()
    form.locator("textarea").fill(
        "Bonjour Léa, la sortie au musée est jeudi. Rendez-vous à 8 h 30.")
    form.locator('button[type="submit"]').click()
    expect(teacher).to_have_url(re.compile(r"#/d/\d+$"))
    discussion = int(teacher.url.rsplit("/", 1)[1])
    student.locator(f'.discussion-list a[data-discussion="{discussion}"]').click()
    box = student.locator(".composer textarea")
    box.fill("Merci madame ! Faut-il apporter l’autorisation signée ?")
    box.press("Enter")
    expect(teacher.locator(".messages .message:not(.pending)")).to_have_count(2)
    reply = teacher.locator(".composer textarea")
    reply.fill("Oui, à me rendre avant mercredi. Voir https://lycee-hugo.example/sorties")
    reply.press("Enter")
    expect(student.locator(".messages .message:not(.pending)")).to_have_count(3)
    expect(teacher.locator(".message.mine .status").last).to_have_text("Lu par Léa Petit")
    expect(teacher.locator(".message .sender").first).to_have_text("Vous")
    teacher.locator(".composer textarea").blur()
    app.screenshot(teacher, "readme-conversation")
    app.screenshot(student, "readme-conversation-phone")

    # A poll to the parents of Seconde A, answered by one of them.
    parent = app.open("p2", locale="fr-FR")
    teacher.locator('nav a[data-route="broadcasts"]').click()
    teacher.locator("a.new-button").click()
    compose = teacher.locator("form.compose-form")
    compose.locator('input[data-kind="poll"]').check()
    compose.locator('input[data-field="title"]').fill("Sortie au musée")
    compose.locator('textarea[data-field="text"]').fill("Merci de répondre avant vendredi.")
    compose.locator('input[data-role="parent"]').check()
    compose.locator('[data-q="0"][data-part="text"]').fill("Accompagnerez-vous la sortie ?")
    compose.locator('[data-q="0"][data-choice="0"]').fill("Oui")
    compose.locator('[data-q="0"][data-choice="1"]').fill("Non")
    compose.locator('button[data-part="add-question"]').click()
    compose.locator('[data-q="1"][data-part="text"]').fill("Quels jours êtes-vous disponible ?")
    compose.locator('[data-q="1"][data-part="kind"]').select_option("multiple")
    compose.locator('[data-q="1"][data-choice="0"]').fill("Lundi")
    compose.locator('[data-q="1"][data-choice="1"]').fill("Mardi")
    compose.locator('[data-q="1"][data-part="add-choice"]').click()
    compose.locator('[data-q="1"][data-choice="2"]').fill("Jeudi")
    compose.locator("button.compose-send").click()
    expect(teacher).to_have_url(re.compile(r"#/b/\d+$"))
    broadcast = int(teacher.url.rsplit("/", 1)[1])
    parent.locator('nav a[data-route="broadcasts"]').click()
    parent.locator(f'.received-list a[data-broadcast="{broadcast}"]').click()
    poll = parent.locator(".poll-form")
    poll.locator('[data-question="0"] input[value="0"]').check()
    poll.locator('[data-question="1"] input[value="0"]').check()
    poll.locator('[data-question="1"] input[value="1"]').check()
    poll.locator("button.send-answers").click()
    expect(teacher.locator('.figures [data-stat="answered"] dd')).to_have_text("1")
    teacher.locator(".results-button").click()
    results = teacher.locator(".results")
    expect(results.locator('.responses tbody tr[data-user="p2"]')).to_contain_text("Lundi, Mardi")
    expect(results).to_contain_text("1 sur 2 destinataires ont répondu.")
    teacher.locator(".banner-close").first.click()
    results.scroll_into_view_if_needed()
    app.screenshot(teacher, "readme-poll-results")


def test_french_phone_header_keeps_its_two_lines(app: App):
    """French words are longer ("Informations & sondages", "Mes préférences"), and the
    header has the FR | EN switch: on a phone it still shows who is signed in, and the
    navigation stays on two lines at most."""
    parent = app.open("p2", phone=True, locale="fr-FR")
    expect(parent.locator(".topbar .me-name")).to_have_text("Nadia Moreau")
    expect(parent.locator(".topbar .lang-switch")).to_be_visible()
    links = parent.locator("nav a")
    expect(links).to_have_count(3)
    line = links.first.bounding_box()
    nav = parent.locator("nav").bounding_box()
    assert line is not None
    assert nav is not None
    assert nav["height"] <= 2 * line["height"] + 8, "the navigation takes more than two lines"
    check_layout(parent)
    app.screenshot(parent, "i18n-fr-header-phone")
