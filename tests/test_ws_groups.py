"""A start addressed to groups of a class, over real WebSockets (issue 11): the groups
expand at the start to whom the sender may reach; the others are left out, counted in
the answer, and never receive anything, live or in history."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import LiveServer
from tests.test_ws import admin_patch
from tests.wire import Wire

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("close_wires"),
              pytest.mark.databases("sqlite", "postgresql")]


async def test_a_start_to_groups_reaches_the_included_and_never_the_left_out(
        live_server: LiveServer):
    url = live_server.ws_url
    # t1 (the only teacher of 2A) accepts no discussion from staff; parents are off.
    with live_server.client("t1") as http:
        r = http.patch("/api/me/preferences", json={"accepts": {"staff": False}})
        assert r.status_code == 200, r.text
    t1, _ = await Wire.signed_in(url, live_server.token("t1"))
    e1, _ = await Wire.signed_in(url, live_server.token("e1"))
    await admin_patch(live_server, "/api/settings",
                      {"profiles": {"parents": {"discussions_enabled": False}}})
    s1, _ = await Wire.signed_in(url, live_server.token("s1"))
    started = await s1.request({
        "type": "start", "subject": "Sortie au musée", "body": "Bonjour à tous",
        "client_id": "g1",
        "groups": [{"kind": "students", "class": "2A"}, {"kind": "parents", "class": "2A"},
                   {"kind": "team", "class": "2A"}]})
    assert started["type"] == "started", started
    assert started["groups"] == {
        "included": ["e1", "e2"],
        "left_out": {"profile_disabled": 2, "recipient_not_allowed": 1},
        "left_out_total": 3}
    d = started["discussion"]["id"]
    assert sorted(p["id"] for p in started["discussion"]["participants"]) == ["e1", "e2", "s1"]
    first = await e1.expect("message", discussion=d)
    assert first["body"] == "Bonjour à tous"

    # The parents are switched back on: what was said without them is not theirs.
    await admin_patch(live_server, "/api/settings",
                      {"profiles": {"parents": {"discussions_enabled": True}}})
    p1, _ = await Wire.signed_in(url, live_server.token("p1"))
    await s1.request({"type": "send", "discussion": d, "body": "Rendez-vous à 9 h",
                      "client_id": "m2"})
    await e1.expect("message", discussion=d, seq=2)
    for left_out in (t1, p1):
        listed = await left_out.request({"type": "list"})
        assert d not in [i["id"] for i in listed["items"]]
        history = await left_out.request({"type": "history", "discussion": d})
        assert history["code"] == "not_participant"
    await asyncio.sleep(0.2)  # anything sent to them would have arrived by now
    for left_out in (t1, p1):
        assert not [f for f in left_out.frames if f.get("discussion") == d
                    or (isinstance(f.get("discussion"), dict)
                        and f["discussion"].get("id") == d)], left_out.frames


async def test_groups_beside_people_and_the_whole_start_refusals(live_server: LiveServer):
    url = live_server.ws_url
    t1, _ = await Wire.signed_in(url, live_server.token("t1"))
    # A person picked one by one is not repeated among those the groups included.
    started = await t1.request({
        "type": "start", "subject": "Devoirs", "body": "Pour lundi", "client_id": "g2",
        "to": ["e1", "s1"], "groups": [{"kind": "students", "class": "2A"}]})
    assert started["groups"]["included"] == ["e2"]
    assert started["groups"]["left_out"] == {}
    assert sorted(p["id"] for p in started["discussion"]["participants"]) == [
        "e1", "e2", "s1", "t1"]
    # A class she does not teach: the whole start is refused, like a forbidden person.
    refused = await t1.request({
        "type": "start", "subject": "Devoirs", "body": "Pour lundi", "client_id": "g3",
        "groups": [{"kind": "parents", "class": "2B"}]})
    assert refused["code"] == "recipient_not_allowed"
    # One forbidden individual still refuses the whole start, groups or not.
    refused = await t1.request({
        "type": "start", "subject": "Devoirs", "body": "Pour lundi", "client_id": "g4",
        "to": ["e3"], "groups": [{"kind": "students", "class": "2A"}]})
    assert refused["code"] == "recipient_not_allowed"
    # Students do not address groups.
    e1, _ = await Wire.signed_in(url, live_server.token("e1"))
    refused = await e1.request({
        "type": "start", "subject": "Salut", "body": "Coucou", "client_id": "g5",
        "groups": [{"kind": "students", "class": "2A"}]})
    assert refused["code"] == "recipient_not_allowed"
    bad = await t1.request({"type": "start", "subject": "x", "body": "y", "client_id": "g6",
                            "groups": [{"kind": "cousins", "class": "2A"}]})
    assert bad["code"] == "bad_request"


async def test_a_held_start_keeps_the_members_included_when_written(live_server: LiveServer):
    """Defer mode: the groups are expanded when the start is written; the members included
    then are held as its recipients and receive it at the opening."""
    day = timedelta(days=1)
    await admin_patch(live_server, "/api/settings", {"hours": {"outside": "defer"}})
    live_server.clock.set(datetime(2026, 11, 24, 21, 30, tzinfo=UTC))  # 22:30 in Paris
    t1, _ = await Wire.signed_in(live_server.ws_url, live_server.token("t1", ttl=day))
    p2, _ = await Wire.signed_in(live_server.ws_url, live_server.token("p2", ttl=day))
    held = await t1.request({
        "type": "start", "subject": "Demain", "body": "Sortie annulée", "client_id": "h1",
        "groups": [{"kind": "parents", "class": "2A"}]})
    assert held["type"] == "held", held
    assert held["groups"] == {"included": ["p1", "p2"], "left_out": {}, "left_out_total": 0}
    live_server.clock.set(datetime(2026, 11, 25, 6, 0, tzinfo=UTC))  # the opening
    new = await p2.expect("discussion", timeout=10)
    assert sorted(p["id"] for p in new["discussion"]["participants"]) == ["p1", "p2", "t1"]
    first = await p2.expect("message", discussion=new["discussion"]["id"], timeout=10)
    assert first["body"] == "Sortie annulée"

