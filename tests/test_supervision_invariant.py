"""The invariant above every rule (docs/policy.md), over real WebSockets: no one ever
receives — live, in a replay, in history, in ``list``, or as a typing or read event —
anything the gatekeeper did not allow between its author and them when it was sent.

The school: a collège class 6A (Léa ``e1``, Hugo ``e2``) and a lycée class 2L (Tom
``l1``, profile ``students-lycee``), both taught by ``t1``; ``a1`` is the admin.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.clock import ManualClock
from server.config import Config
from server.directory import parse_directory
from server.limits import Limits
from server.store.sqlite import SqliteStore
from tests.conftest import SCHOOL_DAY, SECRET, LiveServer, serve
from tests.wire import Wire

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("close_wires")]


SCHOOL = "jaures"


def _doc() -> dict[str, Any]:
    def user(uid: str, role: str, first: str, last: str, profile: str,
             **extra: Any) -> dict[str, Any]:
        return {"id": uid, "role": role, "first_name": first, "last_name": last,
                "profile": profile, **extra}

    return {
        "format": 1,
        "school": {"id": SCHOOL, "name": "Cité scolaire Jean Jaurès", "timezone": "Europe/Paris"},
        "profiles": [{"id": "teachers", "name": "Enseignants"},
                     {"id": "staff", "name": "Personnels"},
                     {"id": "students-college", "name": "Élèves (collège)"},
                     {"id": "students-lycee", "name": "Élèves (lycée)"}],
        "classes": [{"id": "6A", "name": "Sixième A", "level": "college"},
                    {"id": "2L", "name": "Seconde L", "level": "lycee"}],
        "users": [
            user("t1", "teacher", "Claire", "Martin", "teachers", teaches=["6A", "2L"]),
            user("a1", "staff", "Jean", "Durand", "staff", admin=True),
            user("e1", "student", "Léa", "Petit", "students-college", **{"class": "6A"}),
            user("e2", "student", "Hugo", "Moreau", "students-college", **{"class": "6A"}),
            user("l1", "student", "Tom", "Roux", "students-lycee", **{"class": "2L"}),
        ],
    }


@pytest.fixture
def cite(tmp_path: Path) -> Iterator[LiveServer]:
    db = tmp_path / "cite.db"

    async def prepare() -> None:
        st = SqliteStore(str(db))
        await st.open()
        try:
            await st.import_directory(parse_directory(_doc()), actor="test", now=SCHOOL_DAY)
        finally:
            await st.close()

    asyncio.run(prepare())
    clock = ManualClock(SCHOOL_DAY)
    config = Config(database_url=f"sqlite:///{db}", jwt_secret=SECRET)
    with serve(config, clock, Limits(tick_seconds=0.05, hello_timeout=1.0)) as url:
        yield LiveServer(url, clock, config.database_url)


async def _sign_in(server: LiveServer, user: str,
                   resume: list[list[int]] | None = None) -> Wire:
    wire, _ = await Wire.signed_in(server.ws_url, server.token(user, SCHOOL), resume=resume)
    return wire


async def _lycee_profile(server: LiveServer, on: bool) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        r = await http.patch(
            "/api/settings",
            json={"profiles": {"students-lycee": {"discussions_enabled": on}}},
            headers={"Authorization": f"Bearer {server.token('a1', SCHOOL)}"})
        assert r.status_code == 200, r.text


def _bodies(frames: list[dict[str, Any]]) -> list[str]:
    """Every message body in ``frames``, wherever it sits (message, history, list)."""
    found: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            if value.get("type") == "message" and "body" in value:
                found.append(str(value["body"]))
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(frames)
    return found


class TestTheIssueSequence:
    """Issue 12, item 3, step by step."""

    @pytest.fixture
    async def hidden(self, cite: LiveServer) -> tuple[Wire, Wire, int]:
        """Steps 1–5; yields the teacher's and Léa's connections and the discussion."""
        teacher = await _sign_in(cite, "t1")
        e1 = await _sign_in(cite, "e1")
        # 1. A collège student starts a discussion with her teacher.
        started = await e1.request({"type": "start", "subject": "Exercice 4", "to": ["t1"],
                                    "body": "Bonjour madame", "client_id": "c-1"})
        d = int(started["discussion"]["id"])
        # 2. The teacher invites a lycée student; G6 refuses posts between the students.
        assert (await teacher.request({"type": "invite", "discussion": d,
                                       "user": "l1"}))["type"] == "ok"
        l1 = await _sign_in(cite, "l1", resume=[[d, 0]])
        refused = await e1.request({"type": "send", "discussion": d, "body": "x",
                                    "client_id": "c-2"})
        assert refused["code"] == "not_invited_by_supervisor"
        refused = await l1.request({"type": "send", "discussion": d, "body": "y",
                                    "client_id": "l-1"})
        assert refused["code"] == "not_invited_by_supervisor"
        # Léa's opening message is not Tom's either: they may not exchange (people who
        # arrive later, docs/policy.md). Replayed after the welcome as a skipped seq.
        assert l1.messages(d) == []
        assert [f["seq"] for f in l1.frames if f["type"] == "skipped"] == [1]
        # The teacher welcomes him: that one is his.
        await teacher.request({"type": "send", "discussion": d, "body": "Bienvenue Tom",
                               "client_id": "t-0"})
        assert (await l1.expect("message", discussion=d))["seq"] == 2
        await l1.close()
        # 3. The admin switches the lycée profile off.
        await _lycee_profile(cite, False)
        # 4. The first student posts "only for the teacher": accepted.
        ack = await e1.request({"type": "send", "discussion": d,
                                "body": "only for the teacher", "client_id": "c-3"})
        assert (ack["type"], ack["seq"]) == ("ack", 3)
        assert (await teacher.expect("message", discussion=d, seq=3))["body"] == (
            "only for the teacher")
        # 5. The profile is switched back on.
        await _lycee_profile(cite, True)
        return teacher, e1, d

    async def test_not_in_the_replay_nor_live(self, cite: LiveServer,
                                              hidden: tuple[Wire, Wire, int]):
        teacher, _, d = hidden
        l1, welcome = await Wire.signed_in(cite.ws_url, cite.token("l1", SCHOOL),
                                           resume=[[d, 2]])
        assert welcome["resume"] == {"replayed": 0, "complete": True}
        # Its place in the sequence is said, nothing of it: the stream stays gap-free.
        assert await l1.expect("skipped", discussion=d) == {
            "type": "skipped", "discussion": d, "seq": 3}
        await teacher.request({"type": "send", "discussion": d, "body": "Bonjour à tous",
                               "client_id": "t-1"})
        assert (await l1.expect("message", discussion=d))["seq"] == 4
        assert "only for the teacher" not in _bodies(l1.frames)

    async def test_not_in_a_replay_from_the_start(self, cite: LiveServer,
                                                  hidden: tuple[Wire, Wire, int]):
        _, _, d = hidden
        l1 = await _sign_in(cite, "l1", resume=[])  # announced and replayed from seq 1
        await l1.expect("skipped", discussion=d, seq=3)
        assert l1.messages(d) == [2]
        assert [f["seq"] for f in l1.frames if f["type"] == "skipped"] == [1, 3]
        assert "only for the teacher" not in _bodies(l1.frames)

    async def test_not_in_history_nor_list(self, cite: LiveServer,
                                           hidden: tuple[Wire, Wire, int]):
        teacher, _, d = hidden
        l1 = await _sign_in(cite, "l1")
        history = await l1.request({"type": "history", "discussion": d})
        assert [m["seq"] for m in history["messages"]] == [2]
        assert history["more"] is False
        listed = await l1.request({"type": "list"})
        (summary,) = listed["items"]
        assert summary["last_message"]["seq"] == 2
        assert summary["unread"] == 1  # seq 2 only: the hidden ones are not waiting for him
        assert "only for the teacher" not in _bodies(l1.frames)
        # The teacher, who was allowed it, still has it everywhere.
        history = await teacher.request({"type": "history", "discussion": d})
        assert [m["seq"] for m in history["messages"]] == [3, 2, 1]
        listed = await teacher.request({"type": "list"})
        assert listed["items"][0]["last_message"]["body"] == "only for the teacher"

    async def test_typing_and_read_do_not_cross_a_blocked_pair(
            self, cite: LiveServer, hidden: tuple[Wire, Wire, int]):
        teacher, e1, d = hidden
        l1 = await _sign_in(cite, "l1")
        # Léa types: nobody sees it. Tom could not read what she writes, so nothing she
        # types can be posted here (her composer says so): even the teacher, with whom
        # she may talk, is not told she is writing a message that cannot come.
        await e1.send({"type": "typing", "discussion": d})
        assert (await e1.request({"type": "ping"}))["type"] == "pong"  # handled, if relayed
        # Tom reads: the teacher sees it, Léa does not; Tom's own connection does.
        assert (await l1.request({"type": "read", "discussion": d, "seq": 2}))["type"] == "ok"
        assert (await teacher.expect("read", discussion=d, user="l1"))["seq"] == 2
        # (his own event came before the reply, so it is among the frames already read)
        assert [f["seq"] for f in l1.frames if f["type"] == "read"] == [2]
        # Both sides answered a ping after the events were handed out on this node.
        for wire in (l1, e1):
            assert (await wire.request({"type": "ping"}))["type"] == "pong"
        assert [f for f in l1.frames if f["type"] == "typing"] == []
        assert [f for f in teacher.frames if f["type"] == "typing"] == []
        assert [f for f in e1.frames if f["type"] == "read" and f["user"] == "l1"] == []
        # After a reload: the teacher gets Tom's position, Léa still does not.
        for user, seen in (("t1", {"l1": 2}), ("e1", {})):
            fresh = await _sign_in(cite, user)
            history = await fresh.request({"type": "history", "discussion": d})
            assert {u: s for u, s in history["reads"].items() if u == "l1"} == seen, user
        # The teacher's typing reaches both students (each may talk with her).
        await teacher.send({"type": "typing", "discussion": d})
        assert (await l1.expect("typing", discussion=d))["user"] == "t1"
        assert (await e1.expect("typing", discussion=d))["user"] == "t1"


class TestListAfterLeaving:
    async def test_a_former_participant_sees_it_as_it_was(self, cite: LiveServer):
        teacher = await _sign_in(cite, "t1")
        started = await teacher.request({"type": "start", "subject": "Sortie",
                                         "to": ["e1", "e2"], "body": "b", "client_id": "c"})
        d = int(started["discussion"]["id"])
        e2 = await _sign_in(cite, "e2")
        cite.clock.advance(timedelta(minutes=1))
        assert (await e2.request({"type": "leave", "discussion": d}))["type"] == "ok"
        cite.clock.advance(timedelta(minutes=1))
        assert (await teacher.request({"type": "invite", "discussion": d,
                                       "user": "l1"}))["type"] == "ok"
        e1 = await _sign_in(cite, "e1")
        assert (await e1.request({"type": "leave", "discussion": d}))["type"] == "ok"

        (summary,) = (await e2.request({"type": "list"}))["items"]
        seen = {p["id"]: p["present"] for p in summary["participants"]}
        # Nobody invited after she left; Léa, who left after her, still shown present.
        assert seen == {"t1": True, "e1": True, "e2": False}
        # Those still there see everything as it is.
        (summary,) = (await teacher.request({"type": "list"}))["items"]
        seen = {p["id"]: p["present"] for p in summary["participants"]}
        assert seen == {"t1": True, "e1": False, "e2": False, "l1": True}


class TestHeldMessages:
    async def test_a_held_message_is_hidden_from_whoever_is_off_at_its_release(
            self, cite: LiveServer):
        """Defer mode: checked again at the opening, hidden from the lycée student whose
        profile is off then, and still hidden once it is back on."""
        day = timedelta(days=1)
        teacher, _ = await Wire.signed_in(cite.ws_url, cite.token("t1", SCHOOL, ttl=day))
        started = await teacher.request({"type": "start", "subject": "Groupe",
                                         "to": ["e1", "l1"], "body": "m1", "client_id": "a"})
        d = int(started["discussion"]["id"])
        async with httpx.AsyncClient(base_url=cite.url, timeout=10) as http:
            r = await http.patch("/api/settings", json={"hours": {"outside": "defer"}},
                                 headers={"Authorization": f"Bearer {cite.token('a1', SCHOOL)}"})
            assert r.status_code == 200, r.text
        cite.clock.set(SCHOOL_DAY.replace(hour=21, minute=30))  # 22:30 in Paris: closed
        held = await teacher.request({"type": "send", "discussion": d, "body": "pour demain",
                                      "client_id": "b"})
        assert held["type"] == "held"
        await _lycee_profile(cite, False)
        cite.clock.set(SCHOOL_DAY.replace(day=25, hour=6))  # 07:00: the opening
        assert (await teacher.expect("message", discussion=d, seq=2))["body"] == "pour demain"
        await _lycee_profile(cite, True)
        l1 = await _sign_in(cite, "l1", resume=[[d, 1]])
        await l1.expect("skipped", discussion=d, seq=2)
        history = await l1.request({"type": "history", "discussion": d})
        assert [m["seq"] for m in history["messages"]] == [1]
        assert "pour demain" not in _bodies(l1.frames)


def _skipped(wire: Wire, d: int) -> list[int]:
    return [f["seq"] for f in wire.frames if f["type"] == "skipped" and f["discussion"] == d]


async def _post(wire: Wire, d: int, body: str, client_id: str) -> int:
    ack = await wire.request({"type": "send", "discussion": d, "body": body,
                              "client_id": client_id})
    assert ack["type"] == "ack", ack
    return int(ack["seq"])


class TestPeopleWhoArriveLater:
    """docs/policy.md, "People who arrive later": a message posted before someone was
    brought in (or while they were away) is theirs only if its author and they may
    exchange when they are brought in."""

    async def test_an_invitee_never_reads_a_student_he_may_not_exchange_with(
            self, cite: LiveServer):
        teacher = await _sign_in(cite, "t1")
        e1 = await _sign_in(cite, "e1")
        started = await e1.request({"type": "start", "subject": "Exercice 4", "to": ["t1"],
                                    "body": "Bonjour madame", "client_id": "c-1"})
        d = int(started["discussion"]["id"])
        assert await _post(teacher, d, "Je regarde", "t-1") == 2
        assert await _post(e1, d, "only for the teacher", "c-2") == 3
        l1 = await _sign_in(cite, "l1")  # connected: told at once
        assert (await teacher.request({"type": "invite", "discussion": d,
                                       "user": "l1"}))["type"] == "ok"
        announced = (await l1.expect("discussion"))["discussion"]
        assert announced["last_message"]["seq"] == 2  # the teacher's, not Léa's
        assert announced["unread"] == 1
        await l1.expect("skipped", discussion=d, seq=3)  # replayed from seq 1
        assert l1.messages(d) == [2]
        assert _skipped(l1, d) == [1, 3]
        history = await l1.request({"type": "history", "discussion": d})
        assert [m["seq"] for m in history["messages"]] == [2]
        (summary,) = (await l1.request({"type": "list"}))["items"]
        assert (summary["last_message"]["seq"], summary["unread"]) == (2, 1)
        # Another connection of his, replayed from the start.
        again, welcome = await Wire.signed_in(cite.ws_url, cite.token("l1", SCHOOL),
                                              resume=[[d, 0]])
        assert welcome["resume"] == {"replayed": 1, "complete": True}
        await again.expect("skipped", discussion=d, seq=3)
        assert (again.messages(d), _skipped(again, d)) == ([2], [1, 3])
        # From now on, the rules as before: Léa may not post, the teacher reaches him.
        refused = await e1.request({"type": "send", "discussion": d, "body": "x",
                                    "client_id": "c-3"})
        assert refused["code"] == "not_invited_by_supervisor"
        assert await _post(teacher, d, "Bienvenue Tom", "t-2") == 4
        assert (await l1.expect("message", discussion=d))["seq"] == 4
        for wire in (l1, again):
            assert not {"Bonjour madame", "only for the teacher"} & set(_bodies(wire.frames))
        # The teacher still reads everything.
        history = await teacher.request({"type": "history", "discussion": d})
        assert [m["seq"] for m in history["messages"]] == [4, 3, 2, 1]

    async def test_a_class_discussion_stays_readable_for_whom_the_teacher_invites(
            self, cite: LiveServer):
        teacher = await _sign_in(cite, "t1")
        started = await teacher.request({"type": "start", "subject": "Sortie", "to":
                                         ["e1", "e2"], "body": "Consignes", "client_id": "t"})
        d = int(started["discussion"]["id"])
        e1, e2 = await _sign_in(cite, "e1"), await _sign_in(cite, "e2")
        assert await _post(e1, d, "Question de Léa", "e1-1") == 2
        assert await _post(e2, d, "Réponse de Hugo", "e2-1") == 3
        assert (await e2.request({"type": "leave", "discussion": d}))["type"] == "ok"
        assert await _post(e1, d, "Merci", "e1-2") == 4
        assert (await teacher.request({"type": "invite", "discussion": d,
                                       "user": "l1"}))["type"] == "ok"
        l1 = await _sign_in(cite, "l1", resume=[])
        await l1.expect("message", discussion=d, seq=4)
        # The teacher brought Léa and Tom in and is there: supervised, readable. Hugo has
        # left: only G5 could link two students, and it does not.
        assert (l1.messages(d), _skipped(l1, d)) == ([1, 2, 4], [3])
        history = await l1.request({"type": "history", "discussion": d})
        assert [m["seq"] for m in history["messages"]] == [4, 2, 1]
        assert "Réponse de Hugo" not in _bodies(l1.frames)
        assert await _post(l1, d, "Bonjour", "l1-1") == 5  # and he may post with Léa
        history = await e1.request({"type": "history", "discussion": d})
        assert [m["seq"] for m in history["messages"]] == [5, 4, 3, 2, 1]

    async def test_coming_back_does_not_show_what_was_said_while_away(
            self, cite: LiveServer):
        teacher = await _sign_in(cite, "t1")
        e1 = await _sign_in(cite, "e1")
        started = await e1.request({"type": "start", "subject": "Note", "to": ["t1"],
                                    "body": "Bonjour madame", "client_id": "c-1"})
        d = int(started["discussion"]["id"])
        assert (await teacher.request({"type": "invite", "discussion": d,
                                       "user": "e2"}))["type"] == "ok"
        e2 = await _sign_in(cite, "e2")
        assert await _post(teacher, d, "Bienvenue Hugo", "t-1") == 2
        assert (await e2.expect("message", discussion=d))["seq"] == 2
        assert (await e2.request({"type": "leave", "discussion": d}))["type"] == "ok"
        # Hugo gone, Léa may post again (only her teacher is there).
        assert await _post(e1, d, "only for the teacher", "c-2") == 3
        assert await _post(teacher, d, "Hugo revient", "t-2") == 4
        assert (await teacher.request({"type": "invite", "discussion": d,
                                       "user": "e2"}))["type"] == "ok"
        announced = (await e2.expect("discussion"))["discussion"]
        assert (announced["last_message"]["seq"], announced["unread"]) == (4, 2)
        await e2.expect("message", discussion=d, seq=4)
        assert _skipped(e2, d) == [1, 3]
        history = await e2.request({"type": "history", "discussion": d})
        assert [m["seq"] for m in history["messages"]] == [4, 2]
        (summary,) = (await e2.request({"type": "list"}))["items"]
        assert (summary["last_message"]["seq"], summary["unread"]) == (4, 2)
        again = await _sign_in(cite, "e2", resume=[[d, 0]])
        await again.expect("message", discussion=d, seq=4)
        assert (again.messages(d), _skipped(again, d)) == ([2, 4], [1, 3])
        for wire in (e2, again):
            assert not {"Bonjour madame", "only for the teacher"} & set(_bodies(wire.frames))
