"""Information broadcasts and polls (G8) end to end: REST in, hub events out.

One node over a real socket for the rules, the deadline (injected clock) and the
anonymity of results; two ``preau serve`` processes sharing Redis and the
database (a SQLite file, then PostgreSQL) for exact counts under concurrent answers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.broadcasts import parse_answers, questions_from_json, questions_to_json
from server.demo import generate_school
from server.errors import Refused
from tests.cluster import Cluster
from tests.conftest import SCHOOL_DAY, LiveServer
from tests.redis_server import RedisServer
from tests.wire import Wire

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("close_wires")]

POLL: list[dict[str, Any]] = [
    {"text": "Accompagnerez-vous la sortie ?", "kind": "single", "choices": ["Oui", "Non"]},
    {"text": "Quels jours ?", "kind": "multiple", "choices": ["Lun", "Mar", "Jeu"], "max": 2},
    {"text": "Une remarque ?", "kind": "text"}]



def client(server: LiveServer, user: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, timeout=10,
                             headers={"Authorization": f"Bearer {token(server, user)}"})


def token(server: LiveServer, user: str) -> str:
    """A token that outlives the days these tests move the clock by."""
    return server.token(user, ttl=timedelta(days=60))


def poll(to: dict[str, Any], client_id: str = "b-1", **extra: Any) -> dict[str, Any]:
    return {"kind": "poll", "client_id": client_id, "title": "Sortie au musée",
            "body": "Merci de répondre.", "to": to, "questions": POLL, **extra}


def information(to: dict[str, Any], client_id: str = "i-1", **extra: Any) -> dict[str, Any]:
    return {"kind": "information", "client_id": client_id, "title": "Réunion",
            "body": "Jeudi 18 h.", "to": to, **extra}


def refused(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code, r.text
    return str(r.json()["error"]["message"])


def created(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()["broadcast"]
    return out


async def admin_patch(server: LiveServer, path: str, body: dict[str, Any]) -> None:
    async with client(server, "a1") as c:
        r = await c.patch(path, json=body)
        assert r.status_code == 200, r.text


async def opt_in(server: LiveServer, *parents: str) -> None:
    for p in parents:
        async with client(server, p) as c:
            r = await c.patch("/api/me/preferences", json={"parent_messaging_opt_in": True})
            assert r.status_code == 200, r.text


ANSWER = [{"choices": [0]}, {"choices": [0, 2]}, {"text": "Je peux conduire."}]


class TestWhoMaySendToWhom:
    """G8 for every sender kind, allowed and refused."""

    async def test_staff_addresses_anyone(self, live_server: LiveServer):
        async with client(live_server, "s1") as c:
            r = await c.post("/api/broadcasts/preview",
                             json={"to": {"roles": ["student", "parent", "teacher", "staff"]}})
            assert r.json() == {"recipients": 9}  # everyone but s1
            r = await c.post("/api/broadcasts/preview", json={"to": {"users": ["e3", "t2"]}})
            assert r.json() == {"recipients": 2}
            # Even staff name only people of the school: the whole broadcast is refused.
            r = await c.post("/api/broadcasts", json=information({"users": ["e3", "ghost"]}))
            refused(r, 403, "broadcast_not_allowed")
            audience = (await c.get("/api/broadcasts/audience")).json()
        assert audience["allowed"] is True
        assert audience["whole_school"] is True
        assert audience["roles"] == ["parent", "staff", "student", "teacher"]
        assert [c["id"] for c in audience["classes"]] == ["2A", "2B"]
        async with client(live_server, "s1") as c:
            # And G2 comes first: with the staff profile switched off, nothing goes out.
            await admin_patch(live_server, "/api/settings",
                              {"profiles": {"staff": {"discussions_enabled": False}}})
            r = await c.post("/api/broadcasts", json=information({"users": ["e3"]}))
            refused(r, 403, "profile_disabled")

    async def test_teacher_addresses_her_classes_students_and_parents(
            self, live_server: LiveServer):
        async with client(live_server, "t1") as c:
            ok = await c.post("/api/broadcasts/preview",
                              json={"to": {"roles": ["student", "parent"], "classes": ["2A"]}})
            assert ok.json() == {"recipients": 4}  # e1, e2, p1, p2
            for to in ({"roles": ["student"], "classes": ["2B"]},      # not her class
                       {"roles": ["student"], "classes": None},         # the whole school
                       {"roles": ["teacher"], "classes": ["2A"]},       # colleagues
                       {"users": ["e3"]}):                              # a student of 2B
                r = await c.post("/api/broadcasts", json=information(to))
                refused(r, 403, "broadcast_not_allowed")
            audience = (await c.get("/api/broadcasts/audience?q=petit")).json()
        assert audience["roles"] == ["parent", "student"]
        assert [c["id"] for c in audience["classes"]] == ["2A"]
        assert audience["whole_school"] is False
        assert [p["id"] for p in audience["people"]] == ["e1", "p1"]  # by name

    @pytest.mark.parametrize("user", ["e1", "p2"])
    async def test_students_and_other_parents_address_nobody(
            self, live_server: LiveServer, user: str):
        async with client(live_server, user) as c:
            audience = (await c.get("/api/broadcasts/audience")).json()
            assert (audience["allowed"], audience["code"]) == (False, "broadcast_not_allowed")
            r = await c.post("/api/broadcasts", json=information({"users": ["t1"]}))
            refused(r, 403, "broadcast_not_allowed")

    async def test_a_delegate_needs_parent_messaging_and_the_opt_ins(
            self, live_server: LiveServer):
        to = {"roles": ["parent"], "classes": ["2A"]}
        async with client(live_server, "p1") as c:
            audience = (await c.get("/api/broadcasts/audience")).json()
            assert (audience["allowed"], audience["code"]) == (False,
                                                               "parent_messaging_disabled")
            refused(await c.post("/api/broadcasts", json=poll(to)), 403,
                    "parent_messaging_disabled")
            await admin_patch(live_server, "/api/settings", {"parent_messaging_enabled": True})
            refused(await c.post("/api/broadcasts", json=poll(to)), 403, "not_opted_in")
            await opt_in(live_server, "p1")
            # p2 has not opted in: the audience is empty, and naming p2 is refused with
            # the code of an unknown id (p2's choice is not told to the delegate).
            refused(await c.post("/api/broadcasts", json=poll(to)), 400, "bad_request")
            refused(await c.post("/api/broadcasts", json=poll({"users": ["p2"]})), 403,
                    "broadcast_not_allowed")
            refused(await c.post("/api/broadcasts", json=poll({"users": ["p-0042"]})), 403,
                    "broadcast_not_allowed")
            # A parent of another class, or a student, is never a delegate's audience.
            refused(await c.post("/api/broadcasts", json=poll({"users": ["p3"]})), 403,
                    "broadcast_not_allowed")
            refused(await c.post("/api/broadcasts",
                                 json=poll({"roles": ["student"], "classes": ["2A"]})),
                    403, "broadcast_not_allowed")
            await opt_in(live_server, "p2")
            b = created(await c.post("/api/broadcasts", json=poll(to)))
            assert b["stats"]["recipients"] == 1
            # Parent messaging switched off again: the delegate can no longer broadcast.
            await admin_patch(live_server, "/api/settings", {"parent_messaging_enabled": False})
            refused(await c.post("/api/broadcasts", json=poll(to, "b-2")), 403,
                    "parent_messaging_disabled")
            refused(await c.post(f"/api/broadcasts/{b['id']}/remind"), 403,
                    "parent_messaging_disabled")

    async def test_non_opted_in_parents_never_receive_a_delegates_broadcast(
            self, live_server: LiveServer):
        await admin_patch(live_server, "/api/settings", {"parent_messaging_enabled": True})
        await opt_in(live_server, "p1")
        p2, _ = await Wire.signed_in(live_server.ws_url, live_server.token("p2"))
        # A teacher's broadcast to the same parents does reach p2.
        async with client(live_server, "t1") as c:
            teacher = created(await c.post("/api/broadcasts", json=information(
                {"roles": ["parent"], "classes": ["2A"]})))
        got = await p2.expect("broadcast")
        assert got["broadcast"]["id"] == teacher["id"]
        async with client(live_server, "p1") as c:
            r = await c.post("/api/broadcasts", json=information(
                {"roles": ["parent"], "classes": ["2A"]}, "d-1"))
            refused(r, 400, "bad_request")  # nobody opted in but the delegate
        async with client(live_server, "p2") as c:
            listed = (await c.get("/api/broadcasts")).json()
            assert [b["id"] for b in listed["received"]] == [teacher["id"]]
        await p2.request({"type": "ping"})
        assert [f["broadcast"]["id"] for f in p2.frames if f["type"] == "broadcast"] == [
            teacher["id"]]

    @pytest.mark.databases("sqlite", "postgresql")
    async def test_outside_hours_refused_then_held_in_defer_mode(self, live_server: LiveServer):
        live_server.clock.advance(timedelta(hours=12))  # 22:00 in Paris
        to = {"roles": ["student"], "classes": ["2A"]}
        e1, _ = await Wire.signed_in(live_server.ws_url, token(live_server, "e1"))
        async with client(live_server, "t1") as c:
            r = await c.post("/api/broadcasts", json=information(to))
            refused(r, 403, "outside_hours")
            assert r.json()["error"]["retry_at"] == "2026-11-25T06:00:00Z"
            await admin_patch(live_server, "/api/settings", {"hours": {"outside": "defer"}})
            b = created(await c.post("/api/broadcasts", json=information(to)))
            assert (b["status"], b["publish_at"]) == ("scheduled", "2026-11-25T06:00:00Z")
            assert b["published_at"] is None
            live_server.clock.advance(timedelta(hours=9))  # 07:00: the opening
            got = await e1.expect("broadcast")
            assert got["broadcast"]["id"] == b["id"]
            b = (await c.get(f"/api/broadcasts/{b['id']}")).json()["broadcast"]
            assert b["status"] == "published"
            assert b["stats"]["recipients"] == 2


    @pytest.mark.databases("sqlite", "postgresql")
    async def test_a_held_broadcast_is_checked_again_at_the_opening(
            self, live_server: LiveServer):
        """Defer mode: the delegate's broadcast waits for 07:00; parent messaging is
        switched off meanwhile, so it is dropped and the delegate told why."""
        await admin_patch(live_server, "/api/settings", {"parent_messaging_enabled": True,
                                                         "hours": {"outside": "defer"}})
        await opt_in(live_server, "p1", "p2")
        live_server.clock.advance(timedelta(hours=12))  # 22:00 in Paris
        delegate, _ = await Wire.signed_in(live_server.ws_url, token(live_server, "p1"))
        p2, _ = await Wire.signed_in(live_server.ws_url, token(live_server, "p2"))
        async with client(live_server, "p1") as c:
            b = created(await c.post("/api/broadcasts", json=poll(
                {"roles": ["parent"], "classes": ["2A"]})))
            assert b["status"] == "scheduled"
            await admin_patch(live_server, "/api/settings", {"parent_messaging_enabled": False})
            live_server.clock.advance(timedelta(hours=9))  # the opening
            dropped = await delegate.expect("broadcast_dropped", id=b["id"])
            assert dropped["code"] == "parent_messaging_disabled"
            view = (await c.get(f"/api/broadcasts/{b['id']}")).json()["broadcast"]
            assert view["status"] == "dropped"
            assert view["dropped"]["code"] == "parent_messaging_disabled"
        await p2.request({"type": "ping"})
        assert [f for f in p2.frames if f["type"].startswith("broadcast")] == []
        async with client(live_server, "p2") as c:
            assert (await c.get("/api/broadcasts")).json()["received"] == []


class TestInformation:
    @pytest.mark.databases("sqlite", "postgresql")
    async def test_acknowledgements_counted_live_and_a_reminder(self, live_server: LiveServer):
        url = live_server.ws_url
        author, _ = await Wire.signed_in(url, live_server.token("t1"))
        e1, _ = await Wire.signed_in(url, live_server.token("e1"), encoding="msgpack")
        e2, _ = await Wire.signed_in(url, live_server.token("e2"))
        async with client(live_server, "t1") as t1:
            b = created(await t1.post("/api/broadcasts", json=information(
                {"roles": ["student"], "classes": ["2A"]}, ack_requested=True)))
            assert b["stats"]["recipients"] == 2
            for wire in (e1, e2):
                got = (await wire.expect("broadcast"))["broadcast"]
                assert (got["id"], got["title"], got["ack_requested"]) == (b["id"], "Réunion",
                                                                            True)
                assert got["mine"]["received_at"] is not None
                assert got["stats"] is None
            # Both received it live: the author's figures say so.
            stats = await author.expect("broadcast_stats", id=b["id"])
            while stats["stats"]["received"] < 2:
                stats = await author.expect("broadcast_stats", id=b["id"])
            async with client(live_server, "e1") as c:
                r = await c.post(f"/api/broadcasts/{b['id']}/acknowledge")
                assert r.status_code == 200, r.text
                mine = r.json()["broadcast"]["mine"]
                assert mine["acknowledged_at"]
                assert mine["read_at"]
            seen = await author.expect("broadcast_stats", id=b["id"])
            assert (seen["stats"]["read"], seen["stats"]["acknowledged"]) == (1, 1)
            assert (await e1.expect("broadcast_mine", id=b["id"]))["mine"]["acknowledged_at"]
            results = (await t1.get(f"/api/broadcasts/{b['id']}/results")).json()
            assert [p["id"] for p in results["pending"]["not_acknowledged"]] == ["e2"]
            assert results["pending"]["not_received"] == []
            assert (await t1.post(f"/api/broadcasts/{b['id']}/remind")).json() == {
                "reminded": 1}
            reminder = await e2.expect("broadcast_reminder", id=b["id"])
            assert reminder["author"]["id"] == "t1"
            refused(await t1.post(f"/api/broadcasts/{b['id']}/remind"), 429, "rate_limited")
            live_server.clock.advance(timedelta(minutes=11))
            assert (await t1.post(f"/api/broadcasts/{b['id']}/remind")).status_code == 200
        async with client(live_server, "e2") as c:
            listed = (await c.get("/api/broadcasts")).json()["received"]
            assert listed[0]["mine"]["reminded_at"] is not None
            # Others' broadcasts and results are not yours.
            refused(await c.get(f"/api/broadcasts/{b['id']}/results"), 403, "forbidden")
        async with client(live_server, "e3") as c:
            refused(await c.get(f"/api/broadcasts/{b['id']}"), 404, "not_found")
            refused(await c.post(f"/api/broadcasts/{b['id']}/read"), 404, "not_found")

    @pytest.mark.databases("sqlite", "postgresql")
    async def test_published_while_offline_arrives_at_the_next_connection(
            self, live_server: LiveServer):
        async with client(live_server, "t1") as t1:
            b = created(await t1.post("/api/broadcasts", json=information(
                {"roles": ["student"], "classes": ["2A"]})))
            assert b["stats"]["received"] == 0  # nobody connected
        e1, _ = await Wire.signed_in(live_server.ws_url, live_server.token("e1"))
        got = await e1.expect("broadcast")
        assert got["broadcast"]["id"] == b["id"]
        assert got["broadcast"]["mine"]["received_at"] is not None
        await e1.close()
        # Delivered once: the next connection gets nothing again.
        again, _ = await Wire.signed_in(live_server.ws_url, live_server.token("e1"))
        await again.request({"type": "ping"})
        assert [f for f in again.frames if f["type"] == "broadcast"] == []
        async with client(live_server, "t1") as t1:
            view = (await t1.get(f"/api/broadcasts/{b['id']}")).json()["broadcast"]
            assert view["stats"]["received"] == 1

    @pytest.mark.databases("sqlite", "postgresql")
    async def test_ids_and_bodies_no_row_could_match(self, live_server: LiveServer):
        async with client(live_server, "t1") as c:
            refused(await c.get("/api/broadcasts/99999999999999999999"), 404, "not_found")
            refused(await c.put("/api/broadcasts/99999999999999999999/answers",
                                json={"answers": []}), 404, "not_found")
            deep = "[" * 30_000 + "]" * 30_000  # under the 64 KiB limit, past recursion
            r = await c.post("/api/broadcasts", content=deep,
                             headers={"Content-Type": "application/json"})
            refused(r, 400, "bad_request")

    @pytest.mark.databases("sqlite", "postgresql")
    async def test_a_retry_returns_the_original(self, live_server: LiveServer):
        body = information({"roles": ["student"], "classes": ["2A"]})
        async with client(live_server, "t1") as c:
            first = created(await c.post("/api/broadcasts", json=body))
            again = await c.post("/api/broadcasts", json=body)
            assert again.status_code == 200
            assert again.json()["broadcast"]["id"] == first["id"]
            assert len((await c.get("/api/broadcasts")).json()["sent"]) == 1

    @pytest.mark.databases("sqlite", "postgresql")
    async def test_publication_period(self, live_server: LiveServer):
        now = SCHOOL_DAY
        body = information({"roles": ["student"], "classes": ["2A"]},
                           publish_at=(now + timedelta(hours=1)).isoformat(),
                           expires_at=(now + timedelta(days=1)).isoformat())
        async with client(live_server, "t1") as t1, client(live_server, "e1") as e1:
            b = created(await t1.post("/api/broadcasts", json=body))
            assert b["status"] == "scheduled"
            assert (await e1.get("/api/broadcasts")).json()["received"] == []
            live_server.clock.advance(timedelta(hours=1, seconds=1))
            for _ in range(100):
                if (await e1.get("/api/broadcasts")).json()["received"]:
                    break
                await asyncio.sleep(0.05)
            assert [x["id"] for x in (await e1.get("/api/broadcasts")).json()["received"]] == [
                b["id"]]
            live_server.clock.advance(timedelta(days=1))
            assert (await e1.get("/api/broadcasts")).json()["received"] == []

    @pytest.mark.parametrize(("change", "fragment"), [
        ({"kind": "memo"}, "'kind'"),
        ({"title": ""}, "'title'"),
        ({"to": {}}, "au moins un rôle"),
        ({"to": {"roles": ["pupil"]}}, "to.roles"),
        ({"ack_requested": "yes"}, "'ack_requested'"),
        ({"deadline": "2026-12-01T00:00:00Z"}, "'deadline' ne vaut que pour un sondage"),
        ({"publish_at": "tomorrow"}, "'publish_at'"),
        ({"expires_at": "0001-01-01T00:00:00+01:00"}, "hors limites"),
        ({"colour": "red"}, "Champ inconnu"),
    ])
    async def test_bad_requests_name_the_field(self, live_server: LiveServer,
                                               change: dict[str, Any], fragment: str):
        body = {**information({"roles": ["student"], "classes": ["2A"]}), **change}
        async with client(live_server, "t1") as c:
            assert fragment in refused(await c.post("/api/broadcasts", json=body), 400,
                                       "bad_request")


class TestPolls:
    @pytest.mark.databases("sqlite", "postgresql")
    async def test_named_poll_results_live(self, live_server: LiveServer):
        author, _ = await Wire.signed_in(live_server.ws_url, live_server.token("t1"))
        async with client(live_server, "t1") as t1:
            b = created(await t1.post("/api/broadcasts",
                                      json=poll({"roles": ["parent"], "classes": ["2A"]})))
            # By default: the end of the school day (20:00 in Paris), 15 days later.
            assert b["poll"]["deadline"] == "2026-12-09T19:00:00Z"
            assert b["stats"]["counts"] == [[0, 0], [0, 0, 0], None]
            async with client(live_server, "p2") as p2:
                r = await p2.put(f"/api/broadcasts/{b['id']}/answers", json={"answers": ANSWER})
                assert r.status_code == 200, r.text
                assert r.json()["broadcast"]["mine"]["answers"] == ANSWER
                stats = (await author.expect("broadcast_stats", id=b["id"]))["stats"]
                while stats["answered"] < 1:
                    stats = (await author.expect("broadcast_stats", id=b["id"]))["stats"]
                assert stats["counts"] == [[1, 0], [1, 0, 1], None]
                # Changing one's answers moves the counts, never doubles them.
                changed = [{"choices": [1]}, {"choices": [1]}, {"text": "Finalement non."}]
                r = await p2.put(f"/api/broadcasts/{b['id']}/answers",
                                 json={"answers": changed})
                assert r.status_code == 200, r.text
            results = (await t1.get(f"/api/broadcasts/{b['id']}/results")).json()
            assert results["stats"]["answered"] == 1
            assert results["stats"]["counts"] == [[0, 1], [0, 1, 0], None]
            assert results["texts"] == [None, None, ["Finalement non."]]
            assert [r["user"]["id"] for r in results["responses"]] == ["p2"]
            assert [p["id"] for p in results["pending"]["not_answered"]] == ["p1"]

    @pytest.mark.parametrize(("answers", "fragment"), [
        ([{"choices": [0]}], "3 réponses"),
        ([{"choices": [0, 1]}, {"choices": [0]}, {"text": "x"}], "réponse 1"),
        ([{"choices": [0]}, {"choices": [0, 1, 2]}, {"text": "x"}], "de 1 à 2"),
        ([{"choices": [5]}, {"choices": [0]}, {"text": "x"}], "indices distincts de 0 à 1"),
        ([{"choices": [0]}, {"choices": [0]}, {"choices": [0]}], "réponse 3"),
    ])
    async def test_bad_answers_name_the_question(self, live_server: LiveServer,
                                                 answers: list[Any], fragment: str):
        async with client(live_server, "t1") as t1, client(live_server, "p2") as p2:
            b = created(await t1.post("/api/broadcasts",
                                      json=poll({"roles": ["parent"], "classes": ["2A"]})))
            r = await p2.put(f"/api/broadcasts/{b['id']}/answers", json={"answers": answers})
            assert fragment in refused(r, 400, "bad_request")

    async def test_text_questions_are_optional_unless_the_author_requires_them(
            self, live_server: LiveServer):
        questions: list[dict[str, Any]] = [
            {"text": "Une remarque ?", "kind": "text"},
            {"text": "Votre numéro de téléphone ?", "kind": "text", "required": True}]
        async with client(live_server, "t1") as t1, client(live_server, "p2") as p2:
            b = created(await t1.post("/api/broadcasts", json=poll(
                {"roles": ["parent"], "classes": ["2A"]}, questions=questions)))
            assert b["poll"]["questions"] == [{**questions[0], "required": False}, questions[1]]
            seen = (await p2.get(f"/api/broadcasts/{b['id']}")).json()["broadcast"]
            assert [q["required"] for q in seen["poll"]["questions"]] == [False, True]
            url = f"/api/broadcasts/{b['id']}/answers"
            # The required one may not be left empty, even with blanks only.
            for blank in ("", "   "):
                r = await p2.put(url, json={"answers": [{"text": "ok"}, {"text": blank}]})
                assert "réponse 2" in refused(r, 400, "bad_request")
            # The optional one may.
            r = await p2.put(url, json={"answers": [{"text": "  "}, {"text": "06 12"}]})
            assert r.status_code == 200, r.text
            assert r.json()["broadcast"]["mine"]["answers"] == [{"text": ""}, {"text": "06 12"}]
            results = (await t1.get(f"/api/broadcasts/{b['id']}/results")).json()
        assert results["stats"]["answered"] == 1
        assert results["texts"] == [[], ["06 12"]]  # a blank is no text

    async def test_required_is_for_text_questions(self, live_server: LiveServer):
        choice = {**POLL[0], "required": True}
        wrong = {"text": "Une remarque ?", "kind": "text", "required": "oui"}
        async with client(live_server, "t1") as t1:
            for questions, fragment in (([choice], "réponses libres"), ([wrong], "true ou false")):
                r = await t1.post("/api/broadcasts", json=poll(
                    {"roles": ["parent"], "classes": ["2A"]}, questions=questions))
                assert fragment in refused(r, 400, "bad_request")

    @pytest.mark.parametrize("answers", [[{"choices": [0]}], [{"choices": [5]}] * 3, ANSWER])
    async def test_a_stranger_learns_nothing_of_a_poll(self, live_server: LiveServer,
                                                       answers: list[Any]):
        """No oracle: p3 (2B) is not a recipient of a 2A poll, so any answer, well formed
        or not, gets what an id that does not exist gets."""
        async with client(live_server, "t1") as t1, client(live_server, "p3") as p3:
            b = created(await t1.post("/api/broadcasts",
                                      json=poll({"roles": ["parent"], "classes": ["2A"]})))
            r = await p3.put(f"/api/broadcasts/{b['id']}/answers", json={"answers": answers})
            missing = await p3.put("/api/broadcasts/999999/answers", json={"answers": answers})
            said = refused(r, 404, "not_found").replace(str(b["id"]), "N")
            assert said == refused(missing, 404, "not_found").replace("999999", "N")

    @pytest.mark.databases("sqlite", "postgresql")
    async def test_the_default_deadline_is_the_end_of_a_school_day(
            self, live_server: LiveServer):
        """15 local days after publication, at the end of the school's hours, in its
        time zone: here 01:00 on the 25th in Auckland, whose school day ends at 18:00."""
        await admin_patch(live_server, "/api/settings", {
            "timezone": "Pacific/Auckland", "hours": {"enabled": False, "end": "18:00"}})
        live_server.clock.advance(timedelta(hours=3))  # 12:00Z, 01:00 on the 25th there
        async with client(live_server, "t1") as t1:
            audience = (await t1.get("/api/broadcasts/audience")).json()
            b = created(await t1.post("/api/broadcasts",
                                      json=poll({"roles": ["parent"], "classes": ["2A"]})))
        # 18:00 NZDT (UTC+13) on 10 December; the form is offered the same.
        assert b["poll"]["deadline"] == "2026-12-10T05:00:00Z"
        assert audience["default_deadline"] == b["poll"]["deadline"]

    async def test_deadline_enforced_with_the_injected_clock(self, live_server: LiveServer):
        deadline = SCHOOL_DAY + timedelta(hours=2)
        async with client(live_server, "t1") as t1, client(live_server, "p2") as p2:
            b = created(await t1.post("/api/broadcasts", json=poll(
                {"roles": ["parent"], "classes": ["2A"]}, deadline=deadline.isoformat())))
            assert b["poll"]["deadline"] == "2026-11-24T11:00:00Z"
            url = f"/api/broadcasts/{b['id']}/answers"
            assert (await p2.put(url, json={"answers": ANSWER})).status_code == 200
            live_server.clock.advance(timedelta(hours=2))  # exactly the deadline
            refused(await p2.put(url, json={"answers": ANSWER}), 409, "poll_closed")
            view = (await p2.get(f"/api/broadcasts/{b['id']}")).json()["broadcast"]
            assert view["poll"]["closed"] is True
            assert view["mine"]["answers"] == ANSWER  # the answer given before stays
            refused(await t1.post(f"/api/broadcasts/{b['id']}/remind"), 409, "poll_closed")
            results = (await t1.get(f"/api/broadcasts/{b['id']}/results")).json()
            assert results["stats"]["answered"] == 1

    @pytest.mark.databases("sqlite", "postgresql")
    async def test_anonymous_results_never_name_anyone(self, live_server: LiveServer):
        """Whatever the author (an admin) calls, no recipient's id comes back."""
        recipients = {"e1", "e2", "e3", "p1", "p2", "p3"}
        author, _ = await Wire.signed_in(live_server.ws_url, live_server.token("a1"))
        async with client(live_server, "a1") as a1:
            b = created(await a1.post("/api/broadcasts", json=poll(
                {"roles": ["student", "parent"]}, anonymous=True)))
            assert b["stats"]["recipients"] == len(recipients)
            for i, user in enumerate(sorted(recipients)):
                async with client(live_server, user) as c:
                    answers = [{"choices": [i % 2]}, {"choices": [i % 3]},
                               {"text": f"Remarque numéro {i}"}]
                    r = await c.put(f"/api/broadcasts/{b['id']}/answers",
                                    json={"answers": answers})
                    assert r.status_code == 200, r.text
                    # Nor can a recipient see anyone's answers.
                    refused(await c.get(f"/api/broadcasts/{b['id']}/results"), 403,
                            "forbidden")
            results = (await a1.get(f"/api/broadcasts/{b['id']}/results")).json()
            assert results["stats"]["answered"] == len(recipients)
            assert results["stats"]["counts"][0] == [3, 3]
            assert results["texts"][2] == sorted(f"Remarque numéro {i}" for i in range(6))
            assert results["pending"] is None
            assert results["responses"] is None
            seen = [results,
                    (await a1.get(f"/api/broadcasts/{b['id']}")).json(),
                    (await a1.get("/api/broadcasts")).json(),
                    (await a1.get("/api/audit")).json()]
        await author.request({"type": "ping"})
        seen += author.frames
        leaked = [v for doc in seen for v in strings(doc) if v in recipients]
        assert leaked == []
        assert any(f["type"] == "broadcast_stats" for f in author.frames)


def strings(doc: object) -> Iterator[str]:
    """Every string in a JSON document, keys and values."""
    if isinstance(doc, str):
        yield doc
    elif isinstance(doc, dict):
        for k, v in doc.items():
            yield str(k)
            yield from strings(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from strings(v)


# ---------------------------------------------------------------------- two nodes


@pytest.fixture
def big_cluster(tmp_path: Path, shared_database: str) -> Iterator[Cluster]:
    """Two nodes over a demo school of two classes of 28 (68 parents), sharing a SQLite
    file, then a PostgreSQL database."""
    with RedisServer() as redis:
        c = Cluster(tmp_path, redis, database_url=shared_database)
        try:
            c.prepare(generate_school(classes=2, students=28, seed=3))
            c.start(0)
            c.start(1)
            yield c
        finally:
            c.close()


@pytest.mark.databases("sqlite", "postgresql")
async def test_counts_stay_exact_under_concurrent_answers_on_two_nodes(big_cluster: Cluster):
    c = big_cluster

    def http(i: int, user: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=c.http(i), timeout=30, headers={
            "Authorization": f"Bearer {c.token(user, 'demo')}"})

    # The author watches from node 0 and from node 1.
    watchers = [(await Wire.signed_in(c.ws(i), c.token("admin", "demo")))[0] for i in (0, 1)]
    async with http(0, "admin") as admin:
        r = await admin.post("/api/broadcasts", json=poll({"roles": ["parent"]}, "many"))
        b = created(r)
        bid = b["id"]
        parents = b["stats"]["recipients"]
        assert parents >= 60
    async with c.store() as st:
        ids = [r.user_id for r in await st.receipts("demo", bid)]  # type: ignore[arg-type]
    assert len(ids) == parents

    async def answer(k: int, user: str) -> list[dict[str, Any]]:
        """Each parent answers on its node, and a third of them change their mind."""
        async with http(k % 2, user) as h:
            first: list[dict[str, Any]] = [{"choices": [k % 2]}, {"choices": [0, 1]},
                                           {"text": f"t{k}"}]
            r = await h.put(f"/api/broadcasts/{bid}/answers", json={"answers": first})
            assert r.status_code == 200, r.text
            if k % 3:
                return first
            final: list[dict[str, Any]] = [{"choices": [(k + 1) % 2]}, {"choices": [2]},
                                           {"text": f"t{k}"}]
            r = await h.put(f"/api/broadcasts/{bid}/answers", json={"answers": final})
            assert r.status_code == 200, r.text
            return final

    finals = await asyncio.gather(*(answer(k, u) for k, u in enumerate(ids)))
    expected = [[sum(1 for f in finals if c_ in f[0]["choices"]) for c_ in (0, 1)],
                [sum(1 for f in finals if c_ in f[1]["choices"]) for c_ in (0, 1, 2)], None]
    async with http(1, "admin") as admin:
        results = (await admin.get(f"/api/broadcasts/{bid}/results")).json()
    assert results["stats"]["answered"] == parents
    assert results["stats"]["counts"] == expected
    assert len(results["responses"]) == parents
    # Each watcher's latest figures (highest version) are the exact final ones.
    for wire in watchers:
        latest: dict[str, Any] = {}
        for _ in range(200):
            await wire.request({"type": "ping"})
            frames = [f for f in wire.frames if f["type"] == "broadcast_stats"]
            if frames:
                latest = max(frames, key=lambda f: f["stats"]["version"])["stats"]
                if latest == results["stats"]:
                    break
            await asyncio.sleep(0.05)
        assert latest == results["stats"], json.dumps(latest)


async def test_a_poll_stored_before_required_existed_keeps_its_text_answers_required() -> None:
    """Text answers were all required before the field: a stored poll without it keeps
    that rule; what is written now always says which."""
    old = [{"text": "Une remarque ?", "kind": "text"}]
    (stored,) = questions_from_json(old, stored=True)
    assert stored.required is True
    with pytest.raises(Refused, match="réponse 1"):
        parse_answers([stored], [{"text": ""}])
    (new,) = questions_from_json(old)
    assert new.required is False
    assert questions_to_json([new]) == [{**old[0], "required": False}]
    assert questions_from_json(questions_to_json([new]), stored=True) == (new,)


class TestPaging:
    async def test_received_and_sent_are_paged_with_before_limit_more_next(
            self, live_server: LiveServer):
        to = {"roles": ["student"], "classes": ["2A"]}
        async with client(live_server, "t1") as t1:
            made = [created(await t1.post("/api/broadcasts", json=information(to, f"i-{i}")))
                    ["id"] for i in range(5)]
            first = (await t1.get("/api/broadcasts")).json()
            assert first["more"] == {"received": False, "sent": False}
            assert first["next"] == {"received": None, "sent": None}
            sent: list[int] = []
            before = None
            while True:
                page = (await t1.get("/api/broadcasts/sent", params={
                    "limit": 2, **({} if before is None else {"before": before})})).json()
                sent += [b["id"] for b in page["items"]]
                before = page["next"]
                assert page["more"] is (before is not None)
                if not page["more"]:
                    break
            assert sent == made[::-1]
        async with client(live_server, "e1") as e1:
            got: list[int] = []
            before = None
            while True:
                page = (await e1.get("/api/broadcasts/received", params={
                    "limit": 2, **({} if before is None else {"before": before})})).json()
                got += [b["id"] for b in page["items"]]
                if got == made[::-1][:2]:  # published while paging: not seen in this paging
                    async with client(live_server, "t1") as t1:
                        created(await t1.post("/api/broadcasts", json=information(to, "late")))
                before = page["next"]
                if not page["more"]:
                    break
            assert got == made[::-1]
            for path in ("/api/broadcasts/received", "/api/broadcasts/sent"):
                for bad in ({"before": "x"}, {"before": "12-"}, {"before": "-1"},
                            {"before": str(2**64)}, {"limit": 0}, {"limit": 201},
                            {"limit": "a"}):
                    refused(await e1.get(path, params=bad), 400, "bad_request")
