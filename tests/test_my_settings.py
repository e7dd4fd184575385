"""GET /api/me/settings over a real socket: every user sees what applies to them (the
school's switches for their profile, the hours, starting discussions, messaging between
parents) and their own preferences, as the administrator and they themselves set them."""

from __future__ import annotations

import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.databases("sqlite", "postgresql")


def test_each_user_sees_what_applies_to_them(live_server: LiveServer):
    with live_server.client("t1") as t1:
        doc = t1.get("/api/me/settings").json()
        assert doc["role"] == "teacher"
        assert doc["profile"] == {"id": "teachers", "name": "Enseignants",
                                  "discussions_enabled": True}
        assert doc["school"]["discussions_enabled"] is True
        assert doc["hours"] == {"enabled": True, "start": "07:00", "end": "20:00",
                                "outside": "refuse"}
        assert doc["can_start"] is True
        assert doc["preferences"]["accepts"]["students"] == {"enabled": True, "classes": None}
        assert doc["classes"] == [{"id": "2A", "name": "Seconde A"}]
        assert doc["parent_messaging"]["opt_in"] is None
        changed = t1.patch("/api/me/preferences",
                           json={"accepts": {"parents": {"enabled": True, "classes": ["2A"]},
                                             "students": False}})
        assert changed.status_code == 200, changed.text
        accepts = t1.get("/api/me/settings").json()["preferences"]["accepts"]
        assert accepts["parents"] == {"enabled": True, "classes": ["2A"]}
        assert accepts["students"]["enabled"] is False
    with live_server.client("p1") as p1:
        doc = p1.get("/api/me/settings").json()
        assert doc["parent_messaging"] == {"enabled": False, "opt_in": False}
        assert "classes" not in doc
        p1.patch("/api/me/preferences", json={"parent_messaging_opt_in": True})
        assert p1.get("/api/me/settings").json()["parent_messaging"]["opt_in"] is True
    with live_server.client("a1") as admin:
        off = admin.patch("/api/settings", json={
            "profiles": {"students": {"discussions_enabled": False}},
            "hours": {"start": "08:00"}})
        assert off.status_code == 200, off.text
    with live_server.client("e1") as e1:
        doc = e1.get("/api/me/settings").json()
        assert doc["profile"]["discussions_enabled"] is False
        assert doc["access"]["allowed"] is False
        assert doc["access"]["code"] == "profile_disabled"
        assert doc["hours"]["start"] == "08:00"
        assert doc["preferences"] == {"can_initiate": True}
    with live_server.client() as anonymous:
        assert anonymous.get("/api/me/settings").status_code == 401
