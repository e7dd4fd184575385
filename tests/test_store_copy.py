"""``preau store copy``: a school moved from SQLite to PostgreSQL looks the same to
every one of its users, in the store and through a real server.

The SQLite database is built with everything a school accumulates: two imports (a
user gone from the second one), a settings change and preferences (the audit), three
discussions with replies, read positions, someone who left, messages hidden from a
participant (a profile switched off, a newcomer who may not read a student), two
schools sharing user ids, broadcasts (an acknowledged one, a poll with answers and a
reminder, a scheduled one, a dropped one) and held messages (a reply and a start).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from contextlib import closing
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from server.broadcasts import parse_answers, parse_draft
from server.cli import main
from server.clock import ManualClock
from server.config import Config
from server.directory import parse_directory
from server.errors import StoreError, StoreUnavailable, UnstorableValue
from server.limits import Limits
from server.model import ProfileId, SchoolId, UserId
from server.store import AlreadyStarted, Store, copy_sides, open_store
from server.store.copy import CopyRefused, TableCopied
from server.store.copy_sides import copy_database
from server.tokens import issue_token
from tests.conftest import SCHOOL_DAY, SECRET, serve
from tests.postgres import admin_execute
from tests.schools import other_school_doc, school_doc
from tests.wire import Wire

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("close_wires")]

HUGO, MOULIN = SchoolId("hugo"), SchoolId("moulin")
USERS = [UserId(u["id"]) for u in school_doc()["users"]]  # the same ids in both schools
# 22:00 in Paris, the evening of the day the school was built: the window is closed, so
# that nothing held is released and nothing scheduled is published while we look.
EVENING = SCHOOL_DAY + timedelta(hours=12)
NEXT_MORNING = SCHOOL_DAY + timedelta(hours=21)  # 07:00 in Paris, the next opening
META_KEY = "copy-test"


def _minutes(n: int) -> Any:
    return SCHOOL_DAY + timedelta(minutes=n)


async def _build(path: Path) -> None:
    """The school's SQLite database, with everything in it (see the module)."""
    st = await open_store(f"sqlite:///{path}")
    try:
        await _fill(st)
    finally:
        await st.close()


async def _fill(st: Store) -> None:
    u = UserId
    for doc in (school_doc(), other_school_doc()):
        await st.import_directory(parse_directory(doc), actor="import", now=_minutes(0))
    # Sophie (s1) left the school: kept, inactive, with her discussion.
    gone = school_doc()
    gone["users"] = [x for x in gone["users"] if x["id"] != "s1"]
    s1_talk = await st.create_discussion(HUGO, u("s1"), "Clés du CDI", [u("t1")],
                                         now=_minutes(1), first=("s1-1", "Où sont-elles ?"))
    # Sign-in sessions: Sophie's ends with her deactivation, one is rotated once (its
    # first refresh token kept, used), one ended by a logout.
    month = _minutes(60 * 24 * 30)
    for sid, user in (("s-s1", "s1"), ("s-t1", "t1"), ("s-e1", "e1")):
        await st.create_session(HUGO, u(user), session_id=sid, provider="oidc",
                                provider_session=f"op-{user}", refresh_hash=f"h-{user}-0",
                                now=_minutes(1), refresh_expires_at=month)
    await st.import_directory(parse_directory(gone), actor="import", now=_minutes(2))
    await st.rotate_refresh("h-t1-0", "h-t1-1", now=_minutes(2), refresh_expires_at=month)
    await st.end_sessions(HUGO, now=_minutes(2), reason="logout", session_id="s-e1")
    state = await st.load_school(HUGO)
    await st.update_settings(HUGO, replace(state.settings, parent_messaging_enabled=True),
                             actor="a1", now=_minutes(3))
    for parent in ("p1", "p2"):
        prefs = replace(state.preferences_of(u(parent)), parent_messaging_opt_in=True)
        await st.update_preferences(HUGO, u(parent), prefs, actor=parent, now=_minutes(4))
    await st.update_preferences(HUGO, u("e3"), replace(state.preferences_of(u("e3")),
                                                       can_initiate=False),
                                actor="a1", now=_minutes(4))

    # A trip: replies, read positions, and Hugo (e2) who leaves before the last word.
    trip = (await st.create_discussion(HUGO, u("t1"), "Sortie au musée",
                                       [u("e1"), u("e2"), u("p1")], now=_minutes(5),
                                       first=("t1-1", "Départ à 8 h"))).id
    await st.append_message(HUGO, trip, u("e1"), "e1-1", "Merci !", now=_minutes(6))
    await st.append_message(HUGO, trip, u("p1"), "p1-1", "Et le retour ?", now=_minutes(7))
    await st.mark_read(HUGO, trip, u("e1"), 2)
    await st.mark_read(HUGO, trip, u("p1"), 3)
    await st.leave(HUGO, trip, u("e2"), now=_minutes(8))
    await st.append_message(HUGO, trip, u("t1"), "t1-2", "Retour à 17 h", now=_minutes(9))

    # Léa asks her teacher; Inès (another class) is invited and may not read Léa; then
    # Léa writes while Inès's profile is off: hidden from her (docs/policy.md).
    homework = (await st.create_discussion(HUGO, u("e1"), "Exercice 4", [u("t1")],
                                           now=_minutes(10),
                                           first=("e1-2", "Bonjour madame"))).id
    members = await st.add_participant(HUGO, homework, u("e3"), invited_by=u("t1"),
                                       now=_minutes(11), readable_authors=[u("t1")])
    await st.append_message(HUGO, homework, u("e1"), "e1-3", "Seulement pour vous",
                            now=_minutes(12), hidden_from=[u("e3")],
                            members_version=members.version)
    await st.append_message(HUGO, homework, u("t1"), "t1-3", "Bienvenue Inès",
                            now=_minutes(13))
    await st.mark_read(HUGO, homework, u("t1"), 3)

    # The other school, same ids, other people.
    other = (await st.create_discussion(MOULIN, u("t1"), "Réunion", [u("p1")],
                                        now=_minutes(14), first=("m-1", "Jeudi ?"))).id
    await st.append_message(MOULIN, other, u("p1"), "m-2", "Oui", now=_minutes(15))
    await st.mark_read(MOULIN, other, u("t1"), 2)
    await st.mark_read(HUGO, s1_talk.id, u("t1"), 1)

    # Broadcasts: an acknowledged information, a poll answered (one answer changed)
    # with a reminder, a scheduled one, a dropped one, and one in the other school.
    info = parse_draft({"kind": "information", "client_id": "b-1", "title": "Réunion",
                        "body": "Jeudi 18 h", "to": {"roles": ["parent"]},
                        "ack_requested": True}, _minutes(20))
    b1, _ = await st.create_broadcast(HUGO, u("a1"), info, now=_minutes(20),
                                      publish_at=_minutes(20), deadline=None,
                                      recipients=[u("p1"), u("p2"), u("p3")])
    await st.mark_broadcast_received(HUGO, b1.id, [u("p1"), u("p2")], now=_minutes(21))
    await st.mark_broadcast_read(HUGO, b1.id, u("p1"), now=_minutes(22), acknowledge=True)
    await st.mark_broadcast_read(HUGO, b1.id, u("p2"), now=_minutes(23))
    poll = parse_draft({"kind": "poll", "client_id": "b-2", "title": "Sortie",
                        "to": {"roles": ["student"], "classes": ["2A"]},
                        "questions": [{"text": "Quel jour ?", "kind": "single",
                                       "choices": ["lundi", "mardi"]},
                                      {"text": "Remarques", "kind": "text"}]}, _minutes(24))
    b2, _ = await st.create_broadcast(HUGO, u("t1"), poll, now=_minutes(24),
                                      publish_at=_minutes(24),
                                      deadline=_minutes(24) + timedelta(days=15),
                                      recipients=[u("e1"), u("e2")])
    for user, answers, at in (("e1", [{"choices": [0]}, {"text": "Rien"}], 25),
                              ("e2", [{"choices": [1]}, {"text": "Pique-nique ?"}], 26),
                              ("e1", [{"choices": [1]}, {"text": "Plutôt mardi"}], 27)):
        await st.mark_broadcast_received(HUGO, b2.id, [u(user)], now=_minutes(at))
        await st.answer_poll(HUGO, b2.id, u(user), parse_answers(b2.questions, answers),
                             now=_minutes(at))
    await st.remind_broadcast(HUGO, b2.id, [u("e2")], now=_minutes(28))
    later = parse_draft({"kind": "information", "client_id": "b-3", "title": "Vacances",
                         "to": {"roles": ["teacher"]}}, _minutes(29))
    await st.create_broadcast(HUGO, u("a1"), later, now=_minutes(29),
                              publish_at=SCHOOL_DAY + timedelta(days=3), deadline=None,
                              recipients=None)
    dropped = parse_draft({"kind": "information", "client_id": "b-4", "title": "Annulé",
                           "to": {"roles": ["student"]}}, _minutes(30))
    b4, _ = await st.create_broadcast(HUGO, u("t2"), dropped, now=_minutes(30),
                                      publish_at=_minutes(40), deadline=None,
                                      recipients=None)
    await st.drop_broadcast(HUGO, b4.id, "forbidden", "Plus autorisé")
    elsewhere = parse_draft({"kind": "information", "client_id": "b-1", "title": "Cantine",
                             "to": {"roles": ["student"]}}, _minutes(31))
    await st.create_broadcast(MOULIN, u("a1"), elsewhere, now=_minutes(31),
                              publish_at=_minutes(31), deadline=None,
                              recipients=[u("e1"), u("e2"), u("e3")])

    # Held for the next morning: a reply, and a discussion's start.
    await st.hold(HUGO, u("e1"), "h-1", "Bonsoir", discussion_id=trip, subject=None,
                  recipients=[], now=_minutes(32), release_at=NEXT_MORNING)
    await st.hold(HUGO, u("p2"), "h-2", "Une question", discussion_id=None,
                  subject="Cantine", recipients=[u("t1")], now=_minutes(33),
                  release_at=NEXT_MORNING)
    await st.set_meta(META_KEY, "gardé")


async def _what_everyone_sees(st: Store) -> dict[str, object]:
    """Everything the store answers about every user of every school."""
    seen: dict[str, object] = {"schools": await st.list_schools(),
                               "meta": await st.get_meta(META_KEY),
                               "holding": await st.schools_holding(EVENING)}
    for school in await st.list_schools():
        state = await st.load_school(school)
        seen[f"{school} state"] = state
        # Imports keep the order of the file: the directory reads back in it.
        seen[f"{school} order"] = (list(state.directory.users), list(state.directory.classes),
                                   list(state.directory.profiles))
        seen[f"{school} version"] = await st.school_version(school)
        seen[f"{school} audit"] = await st.audit_log(school, limit=1000)
        discussions = set()
        for user in USERS:
            key = f"{school}/{user}"
            summaries = await st.summaries(school, user)
            seen[f"{key} summaries"] = summaries
            seen[f"{key} discussions"] = await st.discussions_of(school, user)
            seen[f"{key} present"] = await st.present_discussions(school, user)
            seen[f"{key} starts"] = await st.recent_starts(
                school, user, since=SCHOOL_DAY - timedelta(days=1), limit=100)
            for summary in summaries:
                d = summary.discussion.id
                discussions.add(d)
                seen[f"{key} {d} history"] = await st.messages(school, d, limit=1000,
                                                               reader=user)
                seen[f"{key} {d} visible"] = await st.visible_seq(school, d, user)
            # Search finds the same (its snippets are each database's own words).
            for words in (["retour"], ["seulement"], ["musee"], ["martin"]):
                seen[f"{key} search {words}"] = [
                    (h.discussion_id, h.kind, h.seq, h.at)
                    for h in await st.search(school, user, words, limit=50)]
            seen[f"{key} received"] = await st.broadcasts_received(school, user, now=EVENING,
                                                                   limit=1000)
            sent = await st.broadcasts_sent(school, user, limit=1000)
            seen[f"{key} sent"] = sent
            for b in sent:
                seen[f"{key} {b.id} receipts"] = await st.receipts(school, b.id)
        for d in sorted(discussions):
            seen[f"{school} {d} members"] = await st.members(school, d)
            seen[f"{school} {d} messages"] = await st.messages_after(school, d, 0, limit=1000)
            seen[f"{school} {d} as each"] = await st.discussion_summaries(school, d, USERS)
    return seen


def _assert_everything_is_there(seen: dict[str, object]) -> None:
    """The school really holds what the comparison is about (a copy of nothing would
    compare equal too)."""
    text = repr(seen)
    for sign in ("hidden_from=frozenset({'e3'})", "hidden_unread=2",
                 "left_at=datetime", "acknowledged_at=datetime", "'Plutôt mardi'",
                 "status='scheduled'", "status='dropped'", "reminded_at=datetime",
                 "parent_messaging_opt_in=True", "'gardé'", "Fournier-Moulin"):
        assert sign in text, sign
    assert "s1" not in seen["hugo state"].directory.users  # type: ignore[attr-defined]
    assert seen["hugo/e1 search ['retour']"] == [  # both words, the one after e2 left
        (2, "message", 4, _minutes(9)), (2, "message", 3, _minutes(7))]
    assert seen["hugo/e2 search ['retour']"] == [(2, "message", 3, _minutes(7))]
    assert seen["hugo/e3 search ['seulement']"] == []  # hidden from Inès
    assert len(seen["hugo audit"]) >= 4  # type: ignore[arg-type]


async def _counts(url: str, tables: list[str]) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {t: int(await conn.fetchval(f'SELECT count(*) FROM "{t}"')) for t in tables}
    finally:
        await conn.close()


def _sqlite_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        names = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name != 'schema_version' AND sql NOT LIKE 'CREATE VIRTUAL TABLE%'")]
        # Full-text indexes and their shadow tables (0010_search.sql) are not copied, nor
        # how far the destination indexed (0011_search_batches.sql).
        names = [n for n in names if n != "search_progress" and not any(
            n.startswith(f"{v}_") for v in ("message_text", "discussion_text", "user_text"))]
        return {n: int(db.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0])
                for n in names}


@pytest.fixture
async def school_db(tmp_path: Path) -> Path:
    path = tmp_path / "school.db"
    await _build(path)
    return path


@pytest.fixture
async def copied(school_db: Path, postgres_url: str) -> str:
    """The school copied into a fresh PostgreSQL database; its URL."""
    await copy_database(f"sqlite:///{school_db}", postgres_url)
    return postgres_url


async def _both(school_db: Path, postgres_url: str) -> tuple[Store, Store]:
    return await open_store(f"sqlite:///{school_db}"), await open_store(postgres_url)


class TestInTheStore:
    async def test_every_user_sees_what_they_saw_before(self, school_db: Path, copied: str):
        before, after = await _both(school_db, copied)
        try:
            seen_before = await _what_everyone_sees(before)
            _assert_everything_is_there(seen_before)
            seen_after = await _what_everyone_sees(after)
            assert seen_after.keys() == seen_before.keys()
            for key in seen_before:
                assert seen_after[key] == seen_before[key], key
        finally:
            await before.close()
            await after.close()

    async def test_held_items_come_out_the_same_and_new_rows_follow_the_copied_ones(
            self, school_db: Path, copied: str):
        """Claiming, and writing after the copy: the same answers on both, ids
        included (the identities were moved past the copied rows)."""
        stores = await _both(school_db, copied)
        try:
            before = await _after_the_move(stores[0])
            after = await _after_the_move(stores[1])
            assert after == before
            held = before[0]
            assert isinstance(held, list)
            assert [h.client_id for h in held] == ["h-1", "h-2"]
            assert [o.value for o in before[8:10]] == ["rotated", "reused"]  # type: ignore[attr-defined]
            assert [x.revoked_reason for x in before[10]] == [  # type: ignore[attr-defined]
                "deactivated", "reuse", "logout"]
        finally:
            for st in stores:
                await st.close()


async def _after_the_move(st: Store) -> tuple[object, ...]:
    u = UserId
    morning = NEXT_MORNING + timedelta(minutes=1)
    held = await st.claim_due(morning)
    due = await st.claim_due_broadcasts(SCHOOL_DAY + timedelta(days=4))
    started = await st.create_discussion(HUGO, u("t2"), "Nouvelle", [u("e3")], now=morning,
                                         first=("t2-9", "Bonjour"))
    # A copied start is one still (its client id came along): a retry is refused.
    with pytest.raises(AlreadyStarted) as retried:
        await st.create_discussion(HUGO, u("s1"), "Clés du CDI", [u("t1")], now=morning,
                                   first=("s1-1", "Où sont-elles ?"))
    sent = await st.append_message(HUGO, started.id, u("e3"), "e3-9", "Bonjour !",
                                   now=morning)
    draft = parse_draft({"kind": "information", "client_id": "b-9", "title": "Neuf",
                         "to": {"roles": ["teacher"]}}, morning)
    broadcast, _ = await st.create_broadcast(HUGO, u("a1"), draft, now=morning,
                                             publish_at=morning, deadline=None,
                                             recipients=[u("t1")])
    kept, _ = await st.hold(HUGO, u("e2"), "h-9", "Plus tard", discussion_id=started.id,
                            subject=None, recipients=[], now=morning,
                            release_at=morning + timedelta(days=1))
    state = await st.load_school(HUGO)
    audit = await st.update_settings(
        HUGO, replace(state.settings, disabled_profiles=frozenset({ProfileId("parents")})),
        actor="a1", now=morning)
    # The sessions came along: the rotated token's successor rotates, its used
    # predecessor is recognised (and ends the session), the ended ones stay ended.
    later = morning + timedelta(days=30)
    rotated = await st.rotate_refresh("h-t1-1", "h-t1-2", now=morning, refresh_expires_at=later)
    reused = await st.rotate_refresh("h-t1-0", "h-t1-x", now=morning, refresh_expires_at=later)
    sessions = [await st.get_session(HUGO, sid) for sid in ("s-s1", "s-t1", "s-e1")]
    return (held, due, started, sent, broadcast, kept, audit, retried.value.earlier,
            rotated.outcome, reused.outcome, sessions)


# ---------------------------------------------------------------------- through a server

# Who is looked at through the server: a teacher, an admin, a student who left a
# discussion, one who is hidden a message, parents (one acknowledged, one opted in).
SAMPLE = [(HUGO, "t1"), (HUGO, "a1"), (HUGO, "e1"), (HUGO, "e2"), (HUGO, "e3"),
          (HUGO, "p1"), (HUGO, "t2"), (MOULIN, "t1"), (MOULIN, "e1")]


async def _served(database_url: str) -> dict[str, object]:
    """What the sampled users get from a server on ``database_url``: the REST answers,
    and over the WebSocket the welcome, the list and every discussion's history."""
    clock = ManualClock(EVENING)
    config = Config(database_url=database_url, jwt_secret=SECRET)
    seen: dict[str, object] = {}
    with serve(config, clock, Limits(tick_seconds=0.05, hello_timeout=1.0)) as url:
        for school, user in SAMPLE:
            token = issue_token(SECRET, school, UserId(user), ttl=timedelta(hours=1),
                                now=clock())
            key = f"{school}/{user}"
            async with httpx.AsyncClient(base_url=url, timeout=10, headers={
                    "Authorization": f"Bearer {token}"}) as http:
                paths = ["/api/me", "/api/me/preferences", "/api/contacts"]
                if user == "a1":
                    paths += ["/api/audit", "/api/settings", "/api/users"]
                for path in paths:
                    seen[f"{key} {path}"] = await _get(http, path)
                status, listing = await _get(http, "/api/broadcasts")
                assert status == 200, listing
                seen[f"{key} /api/broadcasts"] = listing
                for item in listing["received"] + listing["sent"]:
                    path = f"/api/broadcasts/{item['id']}"
                    seen[f"{key} {path}"] = await _get(http, path)
                for item in listing["sent"]:
                    path = f"/api/broadcasts/{item['id']}/results"
                    seen[f"{key} {path}"] = await _get(http, path)
            wire, welcome = await Wire.signed_in(url.replace("http://", "ws://") + "/ws", token)
            welcome.pop("node")
            seen[f"{key} welcome"] = welcome
            listed = await wire.request({"type": "list", "limit": 200})
            listed.pop("ref")
            seen[f"{key} list"] = listed
            for item in listed["items"]:
                history = await wire.request({"type": "history", "discussion": item["id"],
                                              "limit": 100})
                history.pop("ref")
                seen[f"{key} history {item['id']}"] = history
            await wire.close()
    return seen


async def _get(http: httpx.AsyncClient, path: str) -> tuple[int, Any]:
    """The status and the answer: a refusal (Inès may not start a discussion, so her
    contacts are refused) must stay the same refusal."""
    response = await http.get(path)
    return response.status_code, response.json()


class TestThroughAServer:
    async def test_every_sampled_user_gets_the_same_answers(self, school_db: Path,
                                                            copied: str):
        before = await _served(f"sqlite:///{school_db}")
        text = repr(before)
        for sign in ("Seulement pour vous", "Plutôt mardi", "Sortie au musée", "Cantine"):
            assert sign in text, sign
        after = await _served(copied)
        assert after.keys() == before.keys()
        for key in before:
            assert after[key] == before[key], key


# ---------------------------------------------------------------------- the command


class TestTheCommand:
    async def test_prints_every_table_with_its_rows_and_checks_the_counts(
            self, school_db: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]):
        expected = _sqlite_counts(school_db)
        status = await asyncio.to_thread(
            main, ["store", "copy", "--from", f"sqlite:///{school_db}", "--to", postgres_url,
                   "--batch", "2"])
        out = capsys.readouterr().out
        assert status == 0, out
        printed = {m[1]: int(m[2]) for m in re.finditer(
            r"^(\w+) +(\d+) rows +[\d.]+ s$", out, re.MULTILINE)}
        assert printed == expected
        assert await _counts(postgres_url, list(expected)) == expected
        assert expected["messages"] >= 10
        assert expected["poll_counts"] >= 1

    async def test_a_destination_holding_anything_is_refused_and_left_alone(
            self, school_db: Path, copied: str, capsys: pytest.CaptureFixture[str]):
        tables = list(_sqlite_counts(school_db))
        before = await _counts(copied, tables)
        with pytest.raises(CopyRefused, match="already holds data"):
            await copy_database(f"sqlite:///{school_db}", copied)
        status = await asyncio.to_thread(
            main, ["store", "copy", "--from", f"sqlite:///{school_db}", "--to", copied])
        assert status == 2
        assert "already holds data" in capsys.readouterr().err
        assert await _counts(copied, tables) == before

    async def test_a_destination_in_use_is_refused_after_a_bounded_wait(
            self, school_db: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch):
        """Someone writing in the destination (a server started too early) holds its
        tables: the copy waits for them only so long, then gives up having written
        nothing."""
        await (await open_store(postgres_url)).close()  # the tables, as a server makes them
        monkeypatch.setattr(copy_sides, "LOCK_WAIT", 0.2)
        writer = await asyncpg.connect(postgres_url)
        writing = writer.transaction()
        await writing.start()
        try:
            await writer.execute("INSERT INTO meta (key, value) VALUES ('k', 'v')")
            with pytest.raises(CopyRefused, match="in use"):
                await copy_database(f"sqlite:///{school_db}", postgres_url)
        finally:
            await writing.rollback()
            await writer.close()
        assert set((await _counts(postgres_url, list(_sqlite_counts(school_db)))).values()) == {0}

    async def test_a_missing_source_is_refused_and_not_created(
            self, tmp_path: Path, postgres_url: str):
        missing = tmp_path / "typo.db"
        with pytest.raises(CopyRefused, match="no SQLite database"):
            await copy_database(f"sqlite:///{missing}", postgres_url)
        assert not missing.exists()

    @pytest.mark.parametrize(("table", "column", "value", "error"), [
        # Found while converting (SQLite's text is not a time)...
        ("participants", "joined_at", "'hier soir'", "cannot become timestamp"),
        # ...and refused by PostgreSQL itself (text may not hold a NUL character).
        ("messages", "body", "'a' || char(0) || 'b'", "SQLSTATE|cannot be stored"),
    ])
    async def test_a_copy_failing_midway_leaves_the_destination_empty(
            self, school_db: Path, postgres_url: str, table: str, column: str, value: str,
            error: str, capsys: pytest.CaptureFixture[str]):
        tables = list(_sqlite_counts(school_db))
        with sqlite3.connect(school_db) as db:
            db.execute(f"UPDATE {table} SET {column} = {value} "
                       f"WHERE rowid = (SELECT max(rowid) FROM {table})")
        progress: list[TableCopied] = []
        with pytest.raises(StoreError, match=error) as raised:
            await copy_database(f"sqlite:///{school_db}", postgres_url,
                                progress=progress.append)
        assert isinstance(raised.value, UnstorableValue)
        assert f"table {table}" in str(raised.value)
        assert progress, "the copy failed before it began"  # tables were copied before it
        assert set((await _counts(postgres_url, tables)).values()) == {0}
        # The command says so and exits with 1, and the destination is still empty.
        status = await asyncio.to_thread(
            main, ["store", "copy", "--from", f"sqlite:///{school_db}", "--to", postgres_url])
        assert status == 1
        err = capsys.readouterr().err
        assert f"table {table}" in err
        assert "nothing was committed" in err
        assert set((await _counts(postgres_url, tables)).values()) == {0}


    async def test_a_connection_lost_midway_commits_nothing(self, school_db: Path,
                                                            postgres_url: str):
        """PostgreSQL drops the copy's connection after a few tables: the copy fails
        as the database's failure (retryable), and nothing of it stays."""
        tables = list(_sqlite_counts(school_db))
        database = postgres_url.rpartition("/")[2]

        def cut(done: TableCopied) -> None:
            if done.table == "discussions":
                # With a timeout, it returns once the backend is gone (PostgreSQL 14+).
                admin_execute("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                       f"WHERE datname = '{database}' AND pid <> pg_backend_pid()")

        with pytest.raises(StoreUnavailable) as raised:
            await copy_database(f"sqlite:///{school_db}", postgres_url, progress=cut)
        assert raised.value.retryable
        assert set((await _counts(postgres_url, tables)).values()) == {0}


class TestTheOtherWay:
    async def test_postgresql_back_to_sqlite_gives_the_same_school(
            self, school_db: Path, copied: str, tmp_path: Path):
        """The direction is not built in: the copy back reads PostgreSQL's types and
        writes SQLite's, and the school is unchanged."""
        back = tmp_path / "back.db"
        report = await copy_database(copied, f"sqlite:///{back}")
        assert report.rows == sum(_sqlite_counts(school_db).values())
        # Nothing indexed yet: the first search indexes every copied message, once.
        assert _search_state(back) == (0, 0)
        original = await open_store(f"sqlite:///{school_db}")
        returned = await open_store(f"sqlite:///{back}")
        try:
            seen = await _what_everyone_sees(original)
            _assert_everything_is_there(seen)
            assert await _what_everyone_sees(returned) == seen
        finally:
            await original.close()
            await returned.close()
        assert _search_state(back) == _all_messages(back)

    async def test_sqlite_to_sqlite_leaves_the_destination_to_index_everything(
            self, school_db: Path, tmp_path: Path):
        """The source's search_progress is its own: copied, it would mark messages as
        indexed that the destination's index does not hold (or refuse the copy)."""
        source = await open_store(f"sqlite:///{school_db}")
        try:  # the source indexed all it holds
            seen = await _what_everyone_sees(source)
        finally:
            await source.close()
        assert _search_state(school_db) == _all_messages(school_db) != (0, 0)
        other = tmp_path / "other.db"
        await copy_database(f"sqlite:///{school_db}", f"sqlite:///{other}")
        assert _search_state(other) == (0, 0)
        returned = await open_store(f"sqlite:///{other}")
        try:
            assert await _what_everyone_sees(returned) == seen
        finally:
            await returned.close()
        assert _search_state(other) == _all_messages(other)


def _search_state(path: Path) -> tuple[int, int]:
    """How far messages are indexed, and how many rows the index holds."""
    with closing(sqlite3.connect(path)) as db:
        upto = db.execute("SELECT indexed_upto FROM search_progress").fetchone()[0]
        # The index's own rows (its docsize shadow table: one row per indexed message).
        held = db.execute("SELECT count(*) FROM message_text_docsize").fetchone()[0]
        return int(upto), int(held)


def _all_messages(path: Path) -> tuple[int, int]:
    with closing(sqlite3.connect(path)) as db:
        last, count = db.execute("SELECT max(rowid), count(*) FROM messages").fetchone()
        return int(last), int(count)
