"""Search in one's own discussions over real sockets (``search`` frame and
``GET /api/search``), on SQLite and PostgreSQL: what it finds, what it never finds
(another school, a discussion one was never in, what was said after one left), its
pages, its refusals, and its cost against the user's allowance."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from server.client import Client
from server.limits import Limits
from tests.conftest import LiveServer
from tests.wire import Wire

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("close_wires"),
              pytest.mark.databases("sqlite", "postgresql")]


@pytest.fixture
def limits() -> Limits:
    return Limits(tick_seconds=0.05, hello_timeout=1.0, rate_per_second=1000, rate_burst=1000)


async def _start(wire: Wire, subject: str, to: list[str], body: str, cid: str) -> int:
    started = await wire.request({"type": "start", "subject": subject, "to": to,
                                  "body": body, "client_id": cid})
    assert started["type"] == "started", started
    return int(started["discussion"]["id"])


async def _search(wire: Wire, q: str, **more: Any) -> dict[str, Any]:
    return await wire.request({"type": "search", "q": q, **more})


def _keys(reply: dict[str, Any]) -> list[tuple[int, str, int | None]]:
    assert reply["type"] == "search", reply
    return [(r["discussion"], r["kind"], r["seq"]) for r in reply["results"]]


async def test_search_frame_finds_what_the_user_may_read(live_server: LiveServer):
    url = live_server.ws_url
    t1, _ = await Wire.signed_in(url, live_server.token("t1"))
    e1, _ = await Wire.signed_in(url, live_server.token("e1"))
    e2, _ = await Wire.signed_in(url, live_server.token("e2"))
    d = await _start(t1, "Sortie au musée", ["e1", "e2"], "Les élèves partent à 8 h", "c1")
    other = await _start(t1, "Conseil", ["e2"], "Les élèves du conseil", "c2")
    reply = await _search(e1, "ELEVE")
    assert _keys(reply) == [(d, "message", 1)]
    hit = reply["results"][0]
    assert hit["subject"] == "Sortie au musée"
    assert hit["at"].endswith("Z")
    # The snippet is plain text cut around the matched words: no markup to parse.
    assert {"text": "élèves", "match": True} in hit["snippet"]
    assert "".join(p["text"] for p in hit["snippet"]) == "Les élèves partent à 8 h"
    assert (reply["more"], reply["next"]) == (False, None)
    assert _keys(await _search(e1, "musee")) == [(d, "subject", None)]
    assert _keys(await _search(e2, "élève")) == [(other, "message", 1), (d, "message", 1)]
    # Left: what was said after is not found, what history still shows is.
    assert (await e1.request({"type": "leave", "discussion": d}))["type"] == "ok"
    ack = await t1.request({"type": "send", "discussion": d, "body": "Retour à 17 h",
                            "client_id": "c3"})
    assert ack["type"] == "ack", ack
    assert _keys(await _search(e1, "retour")) == []
    assert _keys(await _search(e2, "retour")) == [(d, "message", 2)]
    assert _keys(await _search(e1, "partent")) == [(d, "message", 1)]


async def test_another_school_is_never_found(live_server: LiveServer):
    """Moulin reuses hugo's user ids: hugo's e1 never finds moulin's discussion."""
    url = live_server.ws_url
    live_server.clock.advance(timedelta(hours=4))  # 14:00 in Paris, 10:00 in Martinique
    hugo_t1, _ = await Wire.signed_in(url, live_server.token("t1"))
    moulin_t1, _ = await Wire.signed_in(url, live_server.token("t1", "moulin"))
    e1, _ = await Wire.signed_in(url, live_server.token("e1"))
    moulin_e1, _ = await Wire.signed_in(url, live_server.token("e1", "moulin"))
    theirs = await _start(moulin_t1, "Piscine", ["e1"], "piscine lundi", "m1")
    mine = await _start(hugo_t1, "Cantine", ["e1"], "menu lundi", "h1")
    assert _keys(await _search(e1, "piscine")) == []
    assert _keys(await _search(e1, "lundi")) == [(mine, "message", 1)]
    assert _keys(await _search(moulin_e1, "lundi")) == [(theirs, "message", 1)]
    with live_server.client("e1") as http:
        assert http.get("/api/search", params={"q": "piscine"}).json()["results"] == []


async def test_rest_pages_and_refusals(live_server: LiveServer):
    url = live_server.ws_url
    t1, _ = await Wire.signed_in(url, live_server.token("t1"))
    d = await _start(t1, "Devoirs", ["e1"], "exercice 1", "c0")
    for i in range(2, 6):
        ack = await t1.request({"type": "send", "discussion": d, "body": f"exercice {i}",
                                "client_id": f"c{i}"})
        assert ack["type"] == "ack", ack
    seen: list[int] = []
    cursor = None
    with live_server.client("e1") as http:
        while True:
            params = {"q": "exercice", "limit": "2"} | ({"cursor": cursor} if cursor else {})
            page = http.get("/api/search", params=params)
            assert page.status_code == 200, page.text
            body = page.json()
            assert len(body["results"]) <= 2
            seen += [r["seq"] for r in body["results"]]
            cursor = body["next"]
            assert body["more"] is (cursor is not None)
            if cursor is None:
                break
        assert seen == [5, 4, 3, 2, 1]
        for q, phrase in (("", "trop courte"), ("é", "trop courte"), ("?!", "trop courte"),
                          ("x" * 101, "trop longue")):
            refused = http.get("/api/search", params={"q": q})
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["code"] == "bad_request"
            assert phrase in refused.json()["error"]["message"]
        bad = http.get("/api/search", params={"q": "exercice", "cursor": "nope"})
        assert (bad.status_code, bad.json()["error"]["code"]) == (400, "bad_request")
        too_many = http.get("/api/search", params={"q": "exercice", "limit": "51"})
        assert too_many.status_code == 400
        assert http.get("/api/search", params={"q": "exercice"},
                        headers={"Authorization": ""}).status_code == 401
    e1, _ = await Wire.signed_in(url, live_server.token("e1"))
    short = await _search(e1, "a")
    assert (short["type"], short["code"]) == ("error", "bad_request")
    wrong = await e1.request({"type": "search", "q": 3})
    assert (wrong["type"], wrong["code"]) == ("error", "bad_request")
    first = await _search(e1, "exercice", limit=3)
    assert [r["seq"] for r in first["results"]] == [5, 4, 3]
    rest = await _search(e1, "exercice", cursor=first["next"])
    assert ([r["seq"] for r in rest["results"]], rest["next"]) == ([2, 1], None)


async def test_the_python_client_pages_through_results(live_server: LiveServer):
    async with Client(live_server.url, live_server.token("t1"), reconnect=False) as t1:
        started = await t1.start(["e1"], "Cantine", "menu du lundi")
        d = int(started["discussion"]["id"])
        for day in ("mardi", "mercredi"):
            await t1.send(d, f"menu du {day}")
    async with Client(live_server.url, live_server.token("e1"), reconnect=False) as e1:
        first, after = await e1.search("menu", limit=2)
        assert [(r["discussion"], r["seq"]) for r in first] == [(d, 3), (d, 2)]
        assert after is not None
        rest, after = await e1.search("menu", cursor=after, limit=2)
        assert ([r["seq"] for r in rest], after) == ([1], None)


class TestRateLimit:
    @pytest.fixture
    def limits(self) -> Limits:
        # A burst of 10, then nearly nothing: what the test sees is the burst alone.
        return Limits(tick_seconds=0.05, hello_timeout=1.0, rate_per_second=0.01,
                      rate_burst=10)

    async def test_searches_spend_the_users_allowance(self, live_server: LiveServer):
        e1, _ = await Wire.signed_in(live_server.ws_url, live_server.token("e1"))
        first = await _search(e1, "bonjour")
        assert first["type"] == "search"
        second = await _search(e1, "bonjour")  # 4.8 + 4.8 of 10
        assert second["type"] == "search"
        third = await _search(e1, "bonjour")
        assert (third["type"], third["code"]) == ("error", "rate_limited")
        with live_server.client("e1") as http:
            assert http.get("/api/search", params={"q": "bonjour"}).status_code == 429
        # Through REST, a search costs as much: two pass, the third waits.
        with live_server.client("e2") as http:
            statuses = [http.get("/api/search", params={"q": "bonjour"}).status_code
                        for _ in range(3)]
            assert statuses == [200, 200, 429]
