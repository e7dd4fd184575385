"""The live hub end to end: real uvicorn, real WebSockets, one node, in-memory broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.test_broadcasts import opt_in
from tests.wire import Wire

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("close_wires"),
              pytest.mark.databases("sqlite", "postgresql")]



async def test_teacher_and_students_converse(live_server: LiveServer):
    url = live_server.ws_url
    teacher, welcome = await Wire.signed_in(url, live_server.token("t1"))
    assert welcome["user"]["id"] == "t1"
    assert welcome["read_only"] is False
    e1, _ = await Wire.signed_in(url, live_server.token("e1"), encoding="msgpack")
    started = await teacher.request({"type": "start", "subject": "Sortie", "to": ["e1", "e2"],
                                     "body": "Bonjour", "client_id": "c1"})
    assert started["type"] == "started", started
    d = started["discussion"]["id"]
    assert started["ack"]["seq"] == 1
    new = await e1.expect("discussion")
    assert new["discussion"]["id"] == d
    first = await e1.expect("message", discussion=d)
    assert (first["seq"], first["body"], first["sender"]) == (1, "Bonjour", "t1")
    ack = await e1.request({"type": "send", "discussion": d, "body": "Merci", "client_id": "x"})
    assert (ack["type"], ack["seq"], ack["duplicate"]) == ("ack", 2, False)
    reply = await teacher.expect("message", discussion=d, seq=2)
    assert reply["body"] == "Merci"
    again = await e1.request({"type": "send", "discussion": d, "body": "Merci", "client_id": "x"})
    assert (again["seq"], again["duplicate"]) == (2, True)
    retried = await teacher.request({"type": "start", "subject": "Sortie", "to": ["e1", "e2"],
                                     "body": "Bonjour", "client_id": "c1"})
    assert retried["discussion"]["id"] == d  # a retried start is not a second discussion
    assert retried["ack"]["duplicate"] is True
    listed = await teacher.request({"type": "list"})
    assert [i["id"] for i in listed["items"]] == [d]
    await teacher.close()
    await e1.close()


async def start_on_both(first: Wire, second: Wire, client_ids: list[str]) -> dict[str, int]:
    """Each client id's start sent on both connections (the same user's) at once: one
    discussion per start, created by one of them and answered to the other as a retry.
    Returns the discussion of each start."""
    async def starts(wire: Wire) -> list[dict[str, Any]]:
        return [await wire.request({"type": "start", "subject": f"Sujet {cid}",
                                    "to": ["e1"], "body": f"Bonjour {cid}",
                                    "client_id": cid}, timeout=20) for cid in client_ids]
    discussions = {}
    for cid, *told in zip(client_ids, *await asyncio.gather(starts(first), starts(second)),
                          strict=True):
        assert [r["type"] for r in told] == ["started", "started"], told
        assert sorted(r["ack"]["duplicate"] for r in told) == [False, True], told
        # The same discussion and first message for both, the creation's time included.
        d = told[0]["discussion"]["id"]
        assert {(r["discussion"]["id"], r["ack"]["discussion"], r["ack"]["seq"],
                 r["ack"]["client_id"], r["ack"]["at"]) for r in told} == {
            (d, d, 1, cid, told[0]["ack"]["at"])}, told
        discussions[cid] = d
    assert len(set(discussions.values())) == len(client_ids)
    return discussions


async def test_the_same_start_on_two_connections_at_once_is_one_discussion(
        live_server: LiveServer):
    """The same user, two connections (two tabs, or a retry on a new connection while the
    first attempt is still under way): both find no earlier start, both create it; the
    store keeps one, and the other is answered as a retry."""
    url = live_server.ws_url
    tab1, _ = await Wire.signed_in(url, live_server.token("t1"))
    tab2, _ = await Wire.signed_in(url, live_server.token("t1"), encoding="msgpack")
    # A few (a start costs 4 of the user's 40 requests of burst): one is enough to race.
    started = await start_on_both(tab1, tab2, [f"c{i}" for i in range(4)])
    listed = await tab1.request({"type": "list"})
    assert sorted(i["id"] for i in listed["items"]) == sorted(started.values())


async def test_refusals_arrive_as_error_frames(live_server: LiveServer):
    url = live_server.ws_url
    e1, _ = await Wire.signed_in(url, live_server.token("e1"))
    r = await e1.request({"type": "start", "subject": "x", "to": ["e2"], "body": "hi",
                          "client_id": "a"})
    assert (r["type"], r["code"]) == ("error", "recipient_not_allowed")
    r = await e1.request({"type": "send", "discussion": 999, "body": "hi", "client_id": "b"})
    assert r["code"] == "not_participant"
    await e1.close()


async def test_bad_token_closes_4501(live_server: LiveServer):
    wire = await Wire.open(live_server.ws_url)
    await wire.send({"type": "hello", "token": "nope"})
    error = await wire.expect("error")
    assert error["code"] == "unauthenticated"
    code, _ = await wire.closed()
    assert code == 4501


async def test_outside_hours_is_read_only(live_server: LiveServer):
    live_server.clock.set(datetime(2026, 11, 24, 21, 30, tzinfo=UTC))
    token = live_server.token("t1", ttl=timedelta(days=1))
    wire, welcome = await Wire.signed_in(live_server.ws_url, token)
    assert welcome["read_only"] is True
    assert welcome["window"]["opens_at"] == "2026-11-25T06:00:00Z"
    r = await wire.request({"type": "start", "subject": "x", "to": ["e1"], "body": "hi",
                            "client_id": "a"})
    assert (r["code"], r["retry_at"]) == ("outside_hours", "2026-11-25T06:00:00Z")
    live_server.clock.set(datetime(2026, 11, 25, 6, 0, tzinfo=UTC))
    opened = await wire.expect("window")
    assert opened["open"] is True
    await wire.close()


async def test_malformed_frames_get_errors_not_crashes(live_server: LiveServer):
    wire, _ = await Wire.signed_in(live_server.ws_url, live_server.token("t1"))
    await wire.send_raw("{not json")
    assert (await wire.expect("error"))["code"] == "bad_request"
    await wire.send_raw(b"\xc1binary in a json connection")
    assert (await wire.expect("error"))["code"] == "bad_request"
    r = await wire.request({"type": "send", "discussion": "one", "body": 3, "client_id": "a"})
    assert r["code"] == "bad_request"
    r = await wire.request({"type": "teleport"})
    assert r["code"] == "bad_request"
    r = await wire.request({"type": "send", "discussion": 1, "body": "x" * 9000,
                            "client_id": "a"})
    assert r["code"] == "too_large"
    # Numbers no SQLite INTEGER can hold, and JSON nested past Python's recursion limit,
    # are refused like any bad field instead of taking the connection down (1011).
    huge = 10**20
    for frame in ({"type": "send", "discussion": huge, "body": "x", "client_id": "a"},
                  {"type": "history", "discussion": huge},
                  {"type": "read", "discussion": 1, "seq": huge}):
        r = await wire.request(frame)
        assert (r["type"], r["code"]) == ("error", "bad_request"), r
        assert "2^63 - 1" in r["message"]
    await wire.send_raw("[" * 30_000 + "]" * 30_000)
    assert (await wire.expect("error"))["code"] == "bad_request"
    assert (await wire.request({"type": "ping"}))["type"] == "pong"
    await wire.close()
    # Nor does a resume position out of range: the hello is refused, the server stays up.
    hello = await Wire.open(live_server.ws_url)
    await hello.send({"type": "hello", "token": live_server.token("t1"),
                      "resume": [[huge, 1]]})
    assert (await hello.expect("error"))["code"] == "bad_request"


async def test_resume_replays_what_was_missed(live_server: LiveServer):
    url = live_server.ws_url
    teacher, _ = await Wire.signed_in(url, live_server.token("t1"))
    started = await teacher.request({"type": "start", "subject": "S", "to": ["e1"],
                                     "body": "m1", "client_id": "c1"})
    d = started["discussion"]["id"]
    for i in range(2, 6):
        await teacher.request({"type": "send", "discussion": d, "body": f"m{i}",
                               "client_id": f"c{i}"})
    e1, welcome = await Wire.signed_in(url, live_server.token("e1"), resume=[[d, 2]])
    assert welcome["resume"] == {"replayed": 3, "complete": True}
    for seq in (3, 4, 5):
        await e1.expect("message", discussion=d, seq=seq)
    await teacher.request({"type": "send", "discussion": d, "body": "m6", "client_id": "c6"})
    await e1.expect("message", discussion=d, seq=6)
    assert e1.messages(d) == [3, 4, 5, 6]
    await asyncio.gather(teacher.close(), e1.close())


async def admin_patch(live_server: LiveServer, path: str, body: dict[str, object]) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as http:
        r = await http.patch(path, json=body,
                             headers={"Authorization": f"Bearer {live_server.token('a1')}"})
        assert r.status_code == 200, r.text


class TestGatekeeperOnTheWire:
    async def test_connect_refused_when_switched_off(self, live_server: LiveServer):
        await admin_patch(live_server, "/api/settings",
                          {"profiles": {"students": {"discussions_enabled": False}}})
        wire = await Wire.open(live_server.ws_url)
        await wire.send({"type": "hello", "token": live_server.token("e1")})
        assert (await wire.expect("error"))["code"] == "profile_disabled"
        assert (await wire.closed())[0] == 4503
        await admin_patch(live_server, "/api/settings", {"discussions_enabled": False})
        wire = await Wire.open(live_server.ws_url, encoding="msgpack")
        await wire.send({"type": "hello", "token": live_server.token("t1")})
        assert (await wire.expect("error"))["code"] == "discussions_disabled"
        assert (await wire.closed())[0] == 4503

    async def test_cannot_initiate_but_can_reply(self, live_server: LiveServer):
        await admin_patch(live_server, "/api/users/e1/preferences", {"can_initiate": False})
        teacher, _ = await Wire.signed_in(live_server.ws_url, live_server.token("t1"))
        e1, _ = await Wire.signed_in(live_server.ws_url, live_server.token("e1"))
        r = await e1.request({"type": "start", "subject": "x", "to": ["t1"], "body": "b",
                              "client_id": "a"})
        assert r["code"] == "cannot_initiate"
        d = (await teacher.request({"type": "start", "subject": "x", "to": ["e1"],
                                    "body": "b", "client_id": "a"}))["discussion"]["id"]
        r = await e1.request({"type": "send", "discussion": d, "body": "ok", "client_id": "b"})
        assert r["type"] == "ack"

    async def test_supervisor_leaving_silences_the_students(self, live_server: LiveServer):
        teacher, _ = await Wire.signed_in(live_server.ws_url, live_server.token("t1"))
        e1, _ = await Wire.signed_in(live_server.ws_url, live_server.token("e1"))
        d = (await teacher.request({"type": "start", "subject": "Groupe", "to": ["e1", "e2"],
                                    "body": "Travaillez ensemble", "client_id": "a"})
             )["discussion"]["id"]
        await e1.expect("discussion")
        ok = await e1.request({"type": "send", "discussion": d, "body": "oui", "client_id": "1"})
        assert ok["type"] == "ack"
        assert (await teacher.request({"type": "leave", "discussion": d}))["type"] == "ok"
        left = await e1.expect("left", discussion=d)
        assert left["user"] == "t1"
        r = await e1.request({"type": "send", "discussion": d, "body": "seuls ?",
                              "client_id": "2"})
        assert r["code"] == "not_invited_by_supervisor"
        assert r["message"] == ("Le professeur qui vous a invité (Claire Martin) a quitté la "
                                "discussion : vous ne pouvez plus écrire ici.")
        assert r["params"]["rule"] == "G6"
        assert r["params"]["supervisor_left"] == {"id": "t1", "name": "Claire Martin",
                                                  "role": "teacher"}
        assert [u["name"] for u in r["params"]["users"]] == ["Hugo Moreau"]
        r = await teacher.request({"type": "send", "discussion": d, "body": "x",
                                   "client_id": "3"})
        assert r["code"] == "not_participant"
        history = await teacher.request({"type": "history", "discussion": d})
        assert [m["seq"] for m in history["messages"]] == [2, 1]  # what was said while present

    async def test_invitations(self, live_server: LiveServer):
        teacher, _ = await Wire.signed_in(live_server.ws_url, live_server.token("t1"))
        e1, _ = await Wire.signed_in(live_server.ws_url, live_server.token("e1"))
        d = (await teacher.request({"type": "start", "subject": "x", "to": ["e1"],
                                    "body": "b", "client_id": "a"}))["discussion"]["id"]
        await e1.expect("discussion")  # e1 follows it from here: later joins are announced
        r = await e1.request({"type": "invite", "discussion": d, "user": "e2"})
        assert r["code"] == "cannot_invite"
        r = await teacher.request({"type": "invite", "discussion": d, "user": "e3"})
        assert r["code"] == "recipient_not_allowed"  # e3 is in 2B, not taught by t1
        assert (await teacher.request({"type": "invite", "discussion": d,
                                       "user": "e2"}))["type"] == "ok"
        joined = await e1.expect("joined", discussion=d)
        assert (joined["user"]["id"], joined["invited_by"]) == ("e2", "t1")
        r = await teacher.request({"type": "invite", "discussion": d, "user": "e2"})
        assert r["code"] == "already_participant"

    async def test_parents_need_messaging_and_opt_in(self, live_server: LiveServer):
        p2, _ = await Wire.signed_in(live_server.ws_url, live_server.token("p2"))
        start = {"type": "start", "subject": "x", "to": ["p1"], "body": "b", "client_id": "a"}
        assert (await p2.request(start))["code"] == "parent_messaging_disabled"
        await admin_patch(live_server, "/api/settings", {"parent_messaging_enabled": True})
        assert (await p2.request(start))["code"] == "not_opted_in"

    async def test_a_parent_learns_nothing_of_other_parents(self, live_server: LiveServer):
        """No oracle: a parent without a delegate link to p3 gets the answer of an unknown
        id, whatever the school's switch; a delegate who opted in gets it for a parent who
        has not (that choice is p2's)."""
        p2, _ = await Wire.signed_in(live_server.ws_url, live_server.token("p2"))

        async def code(who: Wire, to: str) -> str:
            start = {"type": "start", "subject": "x", "to": [to], "body": "b",
                     "client_id": f"c-{to}"}
            return str((await who.request(start))["code"])

        assert await code(p2, "p3") == await code(p2, "p-0042") == "recipient_not_allowed"
        await admin_patch(live_server, "/api/settings", {"parent_messaging_enabled": True})
        assert await code(p2, "p3") == await code(p2, "p-0042") == "recipient_not_allowed"
        await opt_in(live_server, "p1")
        p1, _ = await Wire.signed_in(live_server.ws_url, live_server.token("p1"))
        assert await code(p1, "p2") == await code(p1, "p-0042") == "recipient_not_allowed"

    async def test_list_and_read_positions(self, live_server: LiveServer):
        teacher, _ = await Wire.signed_in(live_server.ws_url, live_server.token("t1"))
        e1, _ = await Wire.signed_in(live_server.ws_url, live_server.token("e1"))
        d = (await teacher.request({"type": "start", "subject": "Devoirs", "to": ["e1"],
                                    "body": "b1", "client_id": "a"}))["discussion"]["id"]
        await teacher.request({"type": "send", "discussion": d, "body": "b2",
                               "client_id": "b"})
        listed = await e1.request({"type": "list"})
        item = next(i for i in listed["items"] if i["id"] == d)
        assert (item["subject"], item["unread"], item["last_message"]["body"]) == (
            "Devoirs", 2, "b2")
        assert (await e1.request({"type": "read", "discussion": d, "seq": 2}))["type"] == "ok"
        read = await teacher.expect("read", discussion=d)
        assert (read["user"], read["seq"]) == ("e1", 2)
        listed = await e1.request({"type": "list"})
        assert next(i for i in listed["items"] if i["id"] == d)["unread"] == 0
        # A fresh connection (a reload) learns e1's position on opening the discussion,
        # and each side only the other's.
        again, _ = await Wire.signed_in(live_server.ws_url, live_server.token("t1"))
        history = await again.request({"type": "history", "discussion": d})
        assert history["reads"] == {"e1": 2}
        assert (await e1.request({"type": "history", "discussion": d}))["reads"] == {"t1": 0}
        # Scrolling back reads them no more: an older page carries none.
        older = await again.request({"type": "history", "discussion": d, "before": 2})
        assert older["reads"] == {}
        assert older["messages"]
        await e1.send({"type": "typing", "discussion": d})
        assert (await teacher.expect("typing", discussion=d))["user"] == "e1"


async def test_rate_limit(live_server: LiveServer):
    teacher, _ = await Wire.signed_in(live_server.ws_url, live_server.token("t1"))
    d = (await teacher.request({"type": "start", "subject": "x", "to": ["e1"], "body": "b",
                                "client_id": "a"}))["discussion"]["id"]
    for i in range(60):
        await teacher.send({"type": "send", "discussion": d, "body": "x", "client_id": f"{i}",
                            "ref": f"r{i}"})
    codes: list[str] = []
    while len(codes) < 60:
        frame = await teacher.recv()
        if str(frame.get("ref", "")).startswith("r"):
            codes.append(frame.get("code", frame["type"]))
    assert "rate_limited" in codes
    assert codes.count("ack") >= 20


async def test_resume_brings_discussions_started_while_away(live_server: LiveServer):
    url = live_server.ws_url
    e1, _ = await Wire.signed_in(url, live_server.token("e1"))
    d1 = (await e1.request({"type": "start", "subject": "A", "to": ["t1"], "body": "a1",
                            "client_id": "a"}))["discussion"]["id"]
    await e1.close()
    teacher, _ = await Wire.signed_in(url, live_server.token("t1"))
    await teacher.request({"type": "send", "discussion": d1, "body": "a2", "client_id": "b"})
    d2 = (await teacher.request({"type": "start", "subject": "B", "to": ["e1"], "body": "b1",
                                 "client_id": "c"}))["discussion"]["id"]
    back, welcome = await Wire.signed_in(url, live_server.token("e1"), resume=[[d1, 1]])
    assert welcome["resume"] == {"replayed": 2, "complete": True}
    announced = await back.expect("discussion")
    assert announced["discussion"]["id"] == d2
    await back.expect("message", discussion=d2, seq=1)
    assert back.messages(d1) == [2]
    assert back.messages(d2) == [1]
    fresh, welcome = await Wire.signed_in(url, live_server.token("e1"))  # no resume: live only
    assert welcome["resume"] == {"replayed": 0, "complete": True}
    assert (await fresh.request({"type": "ping"}))["type"] == "pong"
    assert fresh.messages(d1) == []


async def test_defer_mode_holds_until_the_opening(live_server: LiveServer):
    url = live_server.ws_url
    day = timedelta(days=1)
    teacher, _ = await Wire.signed_in(url, live_server.token("t1", ttl=day))
    d = (await teacher.request({"type": "start", "subject": "Groupe", "to": ["e1", "e2"],
                                "body": "m1", "client_id": "a"}))["discussion"]["id"]
    await admin_patch(live_server, "/api/settings", {"hours": {"outside": "defer"}})
    live_server.clock.set(datetime(2026, 11, 24, 21, 30, tzinfo=UTC))  # 22:30 in Paris
    e1, welcome = await Wire.signed_in(url, live_server.token("e1", ttl=day), resume=[[d, 1]])
    assert welcome["read_only"] is True
    held = await teacher.request({"type": "send", "discussion": d, "body": "demain",
                                  "client_id": "b"})
    assert (held["type"], held["held_until"]) == ("held", "2026-11-25T06:00:00Z")
    again = await teacher.request({"type": "send", "discussion": d, "body": "demain",
                                   "client_id": "b"})
    assert (again["type"], again["duplicate"]) == ("held", True)
    new = await teacher.request({"type": "start", "subject": "Soir", "to": ["e1"],
                                 "body": "nouvelle", "client_id": "c"})
    assert (new["type"], new["discussion"]) == ("held", None)
    mine = await e1.request({"type": "send", "discussion": d, "body": "à deux",
                             "client_id": "e"})
    assert mine["type"] == "held"
    # Invitations are refused outside the hours even in defer mode.
    r = await teacher.request({"type": "invite", "discussion": d, "user": "p1"})
    assert r["code"] == "outside_hours"
    await asyncio.sleep(0.2)
    assert e1.messages(d) == []  # nothing delivered before the opening
    # The teacher leaves before the opening: the students' pair is no longer supervised.
    assert (await teacher.request({"type": "leave", "discussion": d}))["type"] == "ok"
    live_server.clock.set(datetime(2026, 11, 25, 6, 0, tzinfo=UTC))
    await e1.expect("window", open=True)
    dropped = await e1.expect("held_dropped")
    assert (dropped["client_id"], dropped["code"]) == ("e", "not_invited_by_supervisor")
    # Released items of different discussions reach the client in no particular order.
    announced = (next((f for f in e1.frames if f.get("type") == "discussion"), None)
                 or await e1.expect("discussion"))
    assert announced["discussion"]["subject"] == "Soir"
    d2 = announced["discussion"]["id"]
    if 1 not in e1.messages(d2):
        await e1.expect("message", discussion=d2, seq=1)
    assert [f["body"] for f in e1.frames
            if f.get("type") == "message" and f.get("discussion") == d2] == ["nouvelle"]
    assert e1.messages(d) == []  # neither held message of the first discussion was posted
    gone = await teacher.expect("held_dropped", client_id="b")
    assert gone["code"] == "not_participant"  # the teacher had left before the opening


async def test_a_retry_is_answered_even_after_the_window_closed(live_server: LiveServer):
    day = timedelta(days=1)
    teacher, _ = await Wire.signed_in(live_server.ws_url, live_server.token("t1", ttl=day))
    started = await teacher.request({"type": "start", "subject": "x", "to": ["e1"],
                                     "body": "b", "client_id": "s1"})
    d = started["discussion"]["id"]
    ack = await teacher.request({"type": "send", "discussion": d, "body": "x",
                                 "client_id": "m1"})
    live_server.clock.set(datetime(2026, 11, 24, 21, 30, tzinfo=UTC))
    retry = await teacher.request({"type": "send", "discussion": d, "body": "x",
                                   "client_id": "m1"})
    assert (retry["type"], retry["seq"], retry["duplicate"]) == ("ack", ack["seq"], True)
    again = await teacher.request({"type": "start", "subject": "x", "to": ["e1"],
                                   "body": "b", "client_id": "s1"})
    assert (again["type"], again["discussion"]["id"]) == ("started", d)
    fresh = await teacher.request({"type": "send", "discussion": d, "body": "y",
                                   "client_id": "m2"})
    assert fresh["code"] == "outside_hours"


async def test_resume_beyond_the_last_message_is_clamped(live_server: LiveServer):
    teacher, _ = await Wire.signed_in(live_server.ws_url, live_server.token("t1"))
    d = (await teacher.request({"type": "start", "subject": "x", "to": ["e1"], "body": "b",
                                "client_id": "a"}))["discussion"]["id"]
    e1, welcome = await Wire.signed_in(live_server.ws_url, live_server.token("e1"),
                                       resume=[[d, 50]])
    assert welcome["resume"]["complete"] is True
    await teacher.request({"type": "send", "discussion": d, "body": "2", "client_id": "b"})
    assert (await e1.expect("message", discussion=d))["seq"] == 2
