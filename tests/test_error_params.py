"""Every error code is documented with its params in docs/protocol.md §9.1, and the
params the server really sends — over a real WebSocket and REST — are the documented
ones: a mobile developer writes the sentences from that page alone."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from server.errors import ErrorCode
from tests.conftest import LiveServer
from tests.wire import Wire

PROTOCOL = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
CLOSED = datetime(2026, 11, 24, 21, 30, tzinfo=UTC)  # 22:30 in Paris

CODES = {c.value: c for c in ErrorCode}
_HEADING = re.compile(r"^### `([a-z_]+)` \((\d{3})(?:, (G\d))?\)$")
_ROW = re.compile(r"^\| `([a-z_]+)` \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$")


def documented() -> dict[str, tuple[int, str, dict[str, str]]]:
    """code → (status, rule, {param: type}) as §9.1 of protocol.md states them."""
    text = PROTOCOL.read_text(encoding="utf-8")
    section = text.split("### 9.1 `params`", 1)[1].split("\n## 10.", 1)[0]
    out: dict[str, tuple[int, str, dict[str, str]]] = {}
    current: dict[str, str] | None = None
    for line in section.splitlines():
        heading = _HEADING.match(line)
        if heading:
            current = {}
            out[heading.group(1)] = (int(heading.group(2)), heading.group(3) or "", current)
            continue
        row = _ROW.match(line)
        if row and current is not None:
            name, kind, meaning, example = (g.strip() for g in row.groups())
            assert meaning, f"{name}: a meaning is required"
            assert example, f"{name}: an example is required"
            current[name] = kind
    return out


def test_every_code_is_documented_with_its_params() -> None:
    docs = documented()
    assert set(docs) == {c.value for c in ErrorCode}, "§9.1 lists exactly the codes"
    for code in ErrorCode:
        status, rule, params = docs[code.value]
        assert (status, rule) == (code.status, code.rule), code
        # ``rule`` is documented exactly where the code enforces one.
        assert ("rule" in params) == bool(code.rule), code
    # Every code that lifts by itself says when.
    assert "retry_at" in docs["outside_hours"][2]
    assert "retry_at" in docs["rate_limited"][2]


def check(seen: list[tuple[str, dict[str, Any]]]) -> None:
    docs = documented()
    for code, params in seen:
        names = docs[code][2]
        assert set(params) <= set(names), (code, set(params) - set(names))
        rule = CODES[code].rule
        if rule:
            assert params["rule"] == rule
        required = {n for n, k in names.items() if "optional" not in k}
        assert required <= set(params), (code, required - set(params))


def refusal(frame: dict[str, Any], code: str) -> tuple[str, dict[str, Any]]:
    assert frame["type"] == "error", frame
    assert frame["code"] == code, frame
    assert isinstance(frame["params"], dict)
    return code, frame["params"]


def rest(response: Any, code: str) -> tuple[str, dict[str, Any]]:
    body = response.json()["error"]
    assert body["code"] == code, body
    assert response.status_code == CODES[code].status
    return code, body["params"]


@pytest.mark.anyio
@pytest.mark.usefixtures("close_wires")
async def test_params_sent_are_the_documented_ones(live_server: LiveServer) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    url = live_server.ws_url
    stranger = await Wire.open(url)
    await stranger.send({"type": "hello", "token": "nope"})
    seen.append(refusal(await stranger.expect("error"), "unauthenticated"))
    assert seen[-1][1] == {"reason": "invalid"}

    staff, _ = await Wire.signed_in(url, live_server.token("a1"))
    teacher, _ = await Wire.signed_in(url, live_server.token("t1", ttl=timedelta(days=1)))
    pupil, _ = await Wire.signed_in(url, live_server.token("e1"))
    other, _ = await Wire.signed_in(url, live_server.token("e3"))

    seen.append(refusal(await pupil.request({"type": "start", "subject": "x", "to": ["e3"],
                                             "body": "hi", "client_id": "a"}),
                        "recipient_not_allowed"))
    assert seen[-1][1] == {"rule": "G5", "user": "e3"}
    seen.append(refusal(await pupil.request({"type": "history", "discussion": 1,
                                             "limit": 1000}), "bad_request"))
    assert seen[-1][1] == {"field": "limit", "max": 100}

    started = await staff.request({"type": "start", "subject": "Projet",
                                   "to": ["t1", "e1", "e3"], "body": "Bonjour",
                                   "client_id": "s"})
    d = started["discussion"]["id"]
    seen.append(refusal(await pupil.request({"type": "send", "discussion": d,
                                             "body": "x" * 8001, "client_id": "b"}),
                        "too_large"))
    assert seen[-1][1] == {"field": "body", "max_chars": 8000}
    seen.append(refusal(await staff.request({"type": "invite", "discussion": d,
                                             "user": "e1"}), "already_participant"))
    assert seen[-1][1]["user"]["name"] == "Léa Petit"
    seen.append(refusal(await pupil.request({"type": "invite", "discussion": d,
                                             "user": "e2"}), "cannot_invite"))
    seen.append(refusal(await pupil.request({"type": "history", "discussion": d + 1}),
                        "not_participant"))
    assert (await staff.request({"type": "leave", "discussion": d}))["type"] == "ok"
    await other.expect("left", discussion=d)
    seen.append(refusal(await pupil.request({"type": "send", "discussion": d, "body": "?",
                                             "client_id": "c"}),
                        "not_invited_by_supervisor"))
    assert seen[-1][1]["supervisor_left"]["id"] == "a1"

    with live_server.client() as anonymous:
        seen.append(rest(anonymous.get("/api/me"), "unauthenticated"))
        assert seen[-1][1] == {"reason": "missing"}
    with live_server.client("e1") as c:
        seen.append(rest(c.patch("/api/settings", json={}), "forbidden"))
        seen.append(rest(c.get("/api/contacts?limit=0"), "bad_request"))
        assert seen[-1][1]["field"] == "limit"
        seen.append(rest(c.post("/api/broadcasts", json={
            "kind": "information", "title": "Sortie", "body": "Demain", "client_id": "b1",
            "to": {"roles": ["parent"], "classes": ["2A"]}}), "broadcast_not_allowed"))
        assert seen[-1][1] == {"rule": "G8", "reason": "role"}
    with live_server.client("t1") as author:
        seen.append(rest(author.post("/api/broadcasts", json={
            "kind": "poll", "title": "Sortie", "client_id": "p1",
            "to": {"roles": ["parent"], "classes": ["2A"]},
            "questions": [{"text": "Qui vient ?", "kind": "maybe"}]}), "bad_request"))
        assert seen[-1][1] == {"field": "kind", "question": 1}
        seen.append(rest(author.patch("/api/settings", json={}), "forbidden"))
    with live_server.client("a1") as admin:
        seen.append(rest(admin.patch("/api/settings", json={"hours": {"start": "7h"}}),
                         "bad_request"))
        assert seen[-1][1] == {"field": "hours.start"}
        seen.append(rest(admin.get("/api/users/x9/preferences"), "not_found"))
        assert seen[-1][1] == {"user": "x9"}

    live_server.clock.set(CLOSED)
    await teacher.expect("window", open=False)
    seen.append(refusal(await teacher.request({"type": "start", "subject": "x", "to": ["e1"],
                                               "body": "hi", "client_id": "late"}),
                        "outside_hours"))
    assert seen[-1][1]["opens_at"] == "2026-11-25T06:00:00Z"
    check(seen)
    assert {code for code, _ in seen} >= {
        "unauthenticated", "bad_request", "too_large", "forbidden", "not_found",
        "outside_hours", "recipient_not_allowed", "not_participant",
        "not_invited_by_supervisor", "cannot_invite", "already_participant",
        "broadcast_not_allowed"}
