"""The SearchStore contract (server/store/contract.py), on SQLite and PostgreSQL.

Search finds, in the user's own discussions, messages by their text and discussions by
subject or participant name, accents and case aside; it never finds what ``history``
and ``list`` would not show that user: another school, a discussion they were never
in, what was said after they left, a message hidden from them.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import datetime
from pathlib import Path

import pytest

from server.directory import parse_directory
from server.model import DiscussionId
from server.store import SearchHit, Store
from server.store.base import MATCH_END, MATCH_START
from server.store.sqlite import SqliteStore
from tests.contracts.store_worker import run_workers
from tests.contracts.stores import E1, E2, E3, HUGO, MOULIN, T1, T2, at
from tests.schools import school_doc

pytestmark = pytest.mark.anyio


def found(hits: list[SearchHit]) -> list[tuple[DiscussionId, str, int]]:
    return [(h.discussion_id, h.kind, h.seq) for h in hits]


def plain(snippet: str) -> str:
    return snippet.replace(MATCH_START, "").replace(MATCH_END, "")


class TestWhatIsFound:
    async def test_message_text_accents_and_case_aside(self, schools: Store):
        d = (await schools.create_discussion(HUGO, T1, "Sortie", [E1], now=at(0))).id
        await schools.append_message(HUGO, d, T1, "c1", "Rappel aux ÉLÈVES : musée demain",
                                     now=at(1))
        await schools.append_message(HUGO, d, E1, "c2", "D'accord", now=at(2))
        hits = await schools.search(HUGO, E1, ["eleve"])
        assert found(hits) == [(d, "message", 1)]
        assert hits[0].subject == "Sortie"
        assert hits[0].at == at(1)
        assert f"{MATCH_START}ÉLÈVES{MATCH_END}" in hits[0].snippet
        assert "musée" in plain(hits[0].snippet)
        # Every word must start a word of the text; the last may be cut short.
        assert found(await schools.search(HUGO, E1, ["rappel", "mus"])) == [(d, "message", 1)]
        assert await schools.search(HUGO, E1, ["rappel", "piscine"]) == []
        assert await schools.search(HUGO, E1, []) == []

    async def test_subject_and_participant_names(self, schools: Store):
        d = (await schools.create_discussion(HUGO, T1, "Réunion parents-professeurs",
                                             [E1], now=at(0))).id
        hits = await schools.search(HUGO, E1, ["reunion"])
        assert found(hits) == [(d, "subject", 0)]
        assert plain(hits[0].snippet) == "Réunion parents-professeurs"
        # T1 is Claire Martin; Hélène Bernard (T2) is not in it.
        hits = await schools.search(HUGO, E1, ["claire", "martin"])
        assert found(hits) == [(d, "participant", 0)]
        assert plain(hits[0].snippet) == "Claire Martin"
        assert await schools.search(HUGO, E1, ["helene"]) == []
        # One's own name finds nothing: every discussion would.
        assert await schools.search(HUGO, E1, ["lea"]) == []


    async def test_a_long_message_is_cut_around_the_match(self, schools: Store):
        d = (await schools.create_discussion(HUGO, T1, "Conseil", [E1], now=at(0))).id
        words = [f"mot{i}" for i in range(60)]
        words[30] = "bibliothèque"
        await schools.append_message(HUGO, d, T1, "c1", " ".join(words), now=at(1))
        [hit] = await schools.search(HUGO, E1, ["bibliotheque"])
        text = plain(hit.snippet)
        assert f"{MATCH_START}bibliothèque{MATCH_END}" in hit.snippet
        assert text.startswith("…")
        assert text.endswith("…")
        assert len(text.split()) < 30  # a few words around it, not the whole message

class TestWhatIsNeverFound:
    async def test_another_schools_discussion_with_the_same_user_ids(self, schools: Store):
        mine = (await schools.create_discussion(HUGO, T1, "Piscine", [E1], now=at(0))).id
        theirs = (await schools.create_discussion(MOULIN, T1, "Piscine", [E1], now=at(0))).id
        await schools.append_message(MOULIN, theirs, T1, "c1", "piscine lundi", now=at(1))
        # Moulin's Claire is Martin-Moulin: hugo's e1 knows only hugo's Claire Martin.
        assert found(await schools.search(HUGO, E1, ["piscine"])) == [(mine, "subject", 0)]
        assert await schools.search(HUGO, E1, ["moulin"]) == []
        assert found(await schools.search(MOULIN, E1, ["piscine"])) == [
            (theirs, "message", 1), (theirs, "subject", 0)]

    async def test_a_discussion_never_joined(self, schools: Store):
        d = (await schools.create_discussion(HUGO, T1, "Conseil de classe", [T2],
                                             now=at(0))).id
        await schools.append_message(HUGO, d, T1, "c1", "conseil jeudi", now=at(1))
        assert await schools.search(HUGO, E1, ["conseil"]) == []
        assert await schools.search(HUGO, E2, ["claire"]) == []
        assert found(await schools.search(HUGO, T2, ["conseil"])) == [
            (d, "message", 1), (d, "subject", 0)]

    async def test_after_leaving_only_what_history_still_shows(self, schools: Store):
        d = (await schools.create_discussion(HUGO, T1, "Voyage", [E1, E2], now=at(0))).id
        await schools.append_message(HUGO, d, T1, "c1", "départ lundi", now=at(1))
        await schools.leave(HUGO, d, E1, now=at(2))
        await schools.append_message(HUGO, d, T1, "c2", "retour lundi", now=at(3))
        await schools.add_participant(HUGO, d, E3, invited_by=T1, now=at(4))
        assert await schools.visible_seq(HUGO, d, E1) == 1  # history's bound
        assert found(await schools.search(HUGO, E1, ["lundi"])) == [(d, "message", 1)]
        assert await schools.search(HUGO, E1, ["retour"]) == []
        # Inès (e3) joined after e1 left: not in the discussion as e1 may see it.
        assert await schools.search(HUGO, E1, ["ines"]) == []
        assert found(await schools.search(HUGO, E2, ["ines"])) == [(d, "participant", 0)]
        assert found(await schools.search(HUGO, E2, ["lundi"])) == [
            (d, "message", 2), (d, "message", 1)]

    async def test_a_message_hidden_from_the_user(self, schools: Store):
        d = (await schools.create_discussion(HUGO, T1, "Devoirs", [E1, E2], now=at(0))).id
        await schools.append_message(HUGO, d, T1, "c1", "exercice douze", now=at(1),
                                     hidden_from=[E2])
        assert await schools.search(HUGO, E2, ["exercice"]) == []
        assert found(await schools.search(HUGO, E1, ["exercice"])) == [(d, "message", 1)]


class TestPaging:
    async def test_pages_follow_each_other_newest_first(self, schools: Store):
        d = (await schools.create_discussion(HUGO, T1, "Cantine", [E1], now=at(0))).id
        e = (await schools.create_discussion(HUGO, T1, "Menus", [E1], now=at(0))).id
        for i in range(7):
            await schools.append_message(HUGO, d if i % 2 else e, T1, f"c{i}",
                                         f"menu numéro {i}", now=at(1 + i // 2))
        seen: list[SearchHit] = []
        before: tuple[datetime, DiscussionId, int] | None = None
        while True:
            page = await schools.search(HUGO, E1, ["menu"], before=before, limit=3)
            assert len(page) <= 3
            seen += page
            if len(page) < 3:
                break
            last = page[-1]
            before = (last.at, last.discussion_id, last.seq)
        keys = [(h.at, h.discussion_id, h.seq) for h in seen]
        assert keys == sorted(keys, reverse=True)
        assert len(set(keys)) == len(keys) == 8  # 7 messages and the subject « Menus »
        # « Menus » was last active at(4), with its message 4: the subject after it.
        assert found(seen)[:2] == [(e, "message", 4), (e, "subject", 0)]
        assert {h.seq for h in seen if h.kind == "message"} == {1, 2, 3, 4}


async def test_names_follow_a_new_import(schools: Store):
    """The name index follows the directory: a renamed user is found by the new name,
    one gone from it (whom ``list`` shows by id only) no more."""
    d = (await schools.create_discussion(HUGO, T1, "Absence", [E1, T2], now=at(0))).id
    assert found(await schools.search(HUGO, E1, ["helene"])) == [(d, "participant", 0)]
    doc = school_doc()
    doc["users"] = [u for u in doc["users"] if u["id"] != T2]
    for u in doc["users"]:
        if u["id"] == T1:
            u["last_name"] = "Lefèvre"
    await schools.import_directory(parse_directory(doc), actor="t", now=at(1))
    assert found(await schools.search(HUGO, E1, ["lefevre"])) == [(d, "participant", 0)]
    assert await schools.search(HUGO, E1, ["martin"]) == []
    assert await schools.search(HUGO, E1, ["helene"]) == []


def _sqlite_index(store_url: str) -> tuple[int, int, int, int] | None:
    """SQLite indexes messages in batches (0011_search_batches.sql): how far
    (``indexed_upto``), how many rows the index holds (its docsize table has one per
    message), the last message's rowid and how many there are. None on PostgreSQL."""
    if not store_url.startswith("sqlite:///"):
        return None
    with closing(sqlite3.connect(store_url.removeprefix("sqlite:///"))) as db:
        row = db.execute(
            "SELECT indexed_upto, (SELECT count(*) FROM message_text_docsize), "
            "(SELECT coalesce(max(rowid), 0) FROM messages), "
            "(SELECT count(*) FROM messages) FROM search_progress").fetchone()
        return tuple(int(v) for v in row)  # type: ignore[return-value]


class TestWhatWasJustSaid:
    """A search finds every message committed before it started, however the store
    indexes them (SQLite: in batches, off the append's path)."""

    async def test_messages_appended_just_before_are_found(self, schools: Store,
                                                           store_url: str):
        if isinstance(schools, SqliteStore):  # no background batch meanwhile
            schools.search_pending_seconds = 3600.0
        d = (await schools.create_discussion(HUGO, T1, "Sortie", [E1], now=at(0))).id
        for i in range(30):
            await schools.append_message(HUGO, d, T1, f"c{i}", f"consigne numéro{i}",
                                         now=at(1))
        state = _sqlite_index(store_url)
        if state is not None:  # no batch has run yet: the search itself catches up
            upto, held, last, count = state
            assert (upto, held) == (0, 0)
            assert (last, count) == (30, 30)
        hits = await schools.search(HUGO, E1, ["consigne"], limit=50)
        assert sorted(h.seq for h in hits) == list(range(1, 31))
        assert found(await schools.search(HUGO, E1, ["numéro29"])) == [(d, "message", 30)]
        if state is not None:
            assert _sqlite_index(store_url) == (30, 30, 30, 30)

    async def test_two_processes_appending_and_searching_index_each_message_once(
            self, schools: Store, store_url: str, tmp_path: Path):
        d = (await schools.create_discussion(HUGO, T1, "Sortie", [E1], now=at(0))).id

        def job(sender: str, prefix: str) -> dict[str, object]:
            return {"do": "append_search", "url": store_url, "school": HUGO,
                    "now": at(1).isoformat(), "discussion": d, "sender": sender,
                    "reader": E1, "client_ids": [f"{prefix}{i}" for i in range(80)]}

        answers = await run_workers([job(T1, "a"), job(E1, "b")], tmp_path / "go")
        for answer in answers:
            for cid, seq, seqs in answer:
                assert seqs == [seq], cid  # found by the search right after it
        assert len(await schools.search(HUGO, E1, ["mot"], limit=500)) == 160
        state = _sqlite_index(store_url)
        if state is not None:  # every message in the index, once
            assert state == (160, 160, 160, 160)
