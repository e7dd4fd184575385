"""The REST API over a real socket (uvicorn on a free port), two schools in one database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import LiveServer


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    assert body["code"] == code
    assert body["message"]
    return body


class TestHealthAndAuthentication:
    def test_health(self, live_server: LiveServer):
        with live_server.client() as c:
            assert c.get("/healthz").json()["status"] == "ok"
            assert c.get("/readyz").json()["status"] == "ready"

    def test_no_token_is_401(self, live_server: LiveServer):
        with live_server.client() as c:
            r = c.get("/api/contacts")
            error(r, 401, "unauthenticated")
            assert r.headers["www-authenticate"] == "Bearer"

    def test_bad_and_expired_tokens(self, live_server: LiveServer):
        with live_server.client() as c:
            error(c.get("/api/me", headers={"Authorization": "Bearer nonsense"}),
                  401, "unauthenticated")
            forged = live_server.token("a1")[:-4] + "AAAA"
            error(c.get("/api/me", headers={"Authorization": f"Bearer {forged}"}),
                  401, "unauthenticated")
            short = live_server.token("a1", ttl=timedelta(minutes=1))
            ok = c.get("/api/me", headers={"Authorization": f"Bearer {short}"})
            assert ok.status_code == 200
            live_server.clock.advance(timedelta(minutes=2))
            body = error(c.get("/api/me", headers={"Authorization": f"Bearer {short}"}),
                         401, "unauthenticated")
            assert "expiré" in body["message"]

    def test_token_for_unknown_user_or_school(self, live_server: LiveServer):
        with live_server.client("ghost") as c:
            error(c.get("/api/me"), 401, "unauthenticated")
        with live_server.client("t1", school="nowhere") as c:
            error(c.get("/api/me"), 401, "unauthenticated")

    def test_me(self, live_server: LiveServer):
        with live_server.client("e1") as c:
            me = c.get("/api/me").json()
        assert me["user"]["name"] == "Léa Petit"
        assert me["user"]["class"] == {"id": "2A", "name": "Seconde A"}
        assert me["school"] == {"id": "hugo", "name": "Lycée Victor Hugo",
                                "timezone": "Europe/Paris"}
        assert me["admin"] is False
        assert me["access"]["allowed"] is True
        assert me["window"]["open"] is True
        assert me["window"]["closes_at"]


class TestContacts:
    def test_teacher_sees_own_classes_and_staff(self, live_server: LiveServer):
        with live_server.client("t1") as c:
            assert ids(c.get("/api/contacts")) == ["t2", "a1", "s1", "e2", "p2", "e1", "p1"]

    def test_student_sees_teacher_and_staff_only(self, live_server: LiveServer):
        with live_server.client("e1") as c:
            assert ids(c.get("/api/contacts")) == ["a1", "s1", "t1"]

    def test_search_ignores_case_and_accents(self, live_server: LiveServer):
        with live_server.client("t2") as c:
            # Inès, and her father, listed as « responsable de Inès Fournier ».
            assert ids(c.get("/api/contacts", params={"q": "INES"})) == ["e3", "p3"]
            assert ids(c.get("/api/contacts", params={"q": "fournier karim"})) == ["p3"]
            # A class named in full finds its students and their parents.
            assert ids(c.get("/api/contacts", params={"q": "seconde b"})) == ["e3", "p3"]
            assert ids(c.get("/api/contacts", params={"q": "zzz"})) == []

    def test_paging_covers_everything_once(self, live_server: LiveServer):
        with live_server.client("a1") as c:
            everyone = ids(c.get("/api/contacts", params={"limit": 200}))
            seen: list[str] = []
            cursor = None
            while True:
                params: dict[str, Any] = {"limit": 3}
                if cursor:
                    params["cursor"] = cursor
                body = c.get("/api/contacts", params=params).json()
                seen += [i["id"] for i in body["items"]]
                assert body["total"] == len(everyone)
                cursor = body["next_cursor"]
                if cursor is None:
                    break
            assert seen == everyone
            assert len(everyone) == 9
            error(c.get("/api/contacts", params={"cursor": "!!"}), 400, "bad_request")
            error(c.get("/api/contacts", params={"limit": "0"}), 400, "bad_request")

    def test_never_crosses_schools(self, live_server: LiveServer):
        with live_server.client("a1", school="moulin") as c:
            body = c.get("/api/contacts", params={"limit": 200}).json()
        assert all(i["last_name"].endswith("-Moulin") for i in body["items"])

    def test_outside_hours_lists_with_the_opening_time(self, live_server: LiveServer):
        live_server.clock.set(datetime(2026, 11, 24, 21, 30, tzinfo=UTC))  # 22:30 Paris
        with live_server.client("e1") as c:
            body = c.get("/api/contacts").json()
        assert [i["id"] for i in body["items"]] == ["a1", "s1", "t1"]
        assert body["window"] == {"open": False, "opens_at": "2026-11-25T06:00:00Z",
                                  "closes_at": None}


class TestSettingsApi:
    def test_non_admin_is_forbidden(self, live_server: LiveServer):
        for user in ("s1", "t1", "e1", "p1"):
            with live_server.client(user) as c:
                error(c.get("/api/settings"), 403, "forbidden")
                error(c.patch("/api/settings", json={"discussions_enabled": False}),
                      403, "forbidden")
                error(c.get("/api/audit"), 403, "forbidden")
                error(c.patch("/api/users/e1/preferences", json={"can_initiate": False}),
                      403, "forbidden")

    def test_admin_reads_defaults(self, live_server: LiveServer):
        with live_server.client("a1") as c:
            settings = c.get("/api/settings").json()["settings"]
        assert settings == {
            "discussions_enabled": True,
            "parent_messaging_enabled": False,
            "timezone": "Europe/Paris",
            "hours": {"enabled": True, "start": "07:00", "end": "20:00", "outside": "refuse"},
            "limits": {"starts_per_hour": 30, "starts_per_day": 100},
            "profiles": {p: {"discussions_enabled": True}
                         for p in ("teachers", "staff", "students", "parents")},
        }

    def test_invalid_changes_are_400_and_change_nothing(self, live_server: LiveServer):
        bad: list[tuple[Any, str]] = [
            ({"hours": {"start": "20:00", "end": "07:00"}}, "end"),
            ({"hours": {"start": "09:00", "end": "09:00"}}, "end"),
            ({"hours": {"start": "7h"}}, "HH:MM"),
            ({"hours": {"outside": "later"}}, "defer"),
            ({"timezone": "Mars/Olympus"}, "Mars/Olympus"),
            ({"profiles": {"martians": {"discussions_enabled": False}}}, "martians"),
            ({"discussions_enabled": "no"}, "true ou false"),
            ({"colour": "blue"}, "colour"),
            ({"limits": {"starts_per_hour": 0}}, "starts_per_hour"),
            ({"limits": {"starts_per_day": True}}, "starts_per_day"),
            ({"limits": {"starts_per_hour": 50, "starts_per_day": 40}}, "ne peut pas dépasser"),
            ({"limits": {"starts": 5}}, "starts"),
            ([1, 2], "objet"),
        ]
        with live_server.client("a1") as c:
            for patch, words in bad:
                body = error(c.patch("/api/settings", json=patch), 400, "bad_request")
                assert words in body["message"], (patch, body)
                assert body["params"]["field"], (patch, body)  # the setting at fault
            body = error(c.patch("/api/settings", content=b"{not json",
                                 headers={"content-type": "application/json"}),
                         400, "bad_request")
            assert "JSON" in body["message"]
            error(c.patch("/api/settings", content=b""), 400, "bad_request")
            huge = b'{"x": "' + b"a" * 70_000 + b'"}'
            error(c.patch("/api/settings", content=huge), 413, "too_large")
            assert c.get("/api/audit").json()["items"] == []

    def test_changes_are_audited_and_take_effect(self, live_server: LiveServer):
        with live_server.client("a1") as admin, live_server.client("e1") as student:
            r = admin.patch("/api/settings", json={
                "hours": {"start": "08:00", "outside": "defer"},
                "profiles": {"students": {"discussions_enabled": False}},
            })
            assert r.status_code == 200, r.text
            assert r.json()["settings"]["hours"]["start"] == "08:00"
            error(student.get("/api/contacts"), 403, "profile_disabled")
            me = student.get("/api/me").json()
            assert me["access"] == {"allowed": False, "code": "profile_disabled",
                                    "message": me["access"]["message"],
                                    "params": {"rule": "G2", "profile": "students",
                                               "profile_name": "Élèves"}}
            log = admin.get("/api/audit").json()["items"]
            assert {(e["field"], e["old"], e["new"], e["actor"]) for e in log} == {
                ("hours.start", "07:00", "08:00", "a1"),
                ("hours.outside", "refuse", "defer", "a1"),
                ("profiles.students.discussions_enabled", True, False, "a1"),
            }
            assert all(e["at"] == "2026-11-24T09:00:00Z" for e in log)

    def test_admin_works_with_discussions_off_at_any_hour(self, live_server: LiveServer):
        live_server.clock.set(datetime(2026, 11, 24, 23, 0, tzinfo=UTC))
        with live_server.client("a1") as admin, live_server.client("t1") as teacher:
            assert admin.patch("/api/settings", json={"discussions_enabled": False,
                                                      "profiles": {"staff": {
                                                          "discussions_enabled": False}}},
                               ).status_code == 200
            error(teacher.get("/api/contacts"), 403, "discussions_disabled")
            error(admin.get("/api/contacts"), 403, "discussions_disabled")
            r = admin.patch("/api/settings", json={"discussions_enabled": True})
            assert r.status_code == 200
            assert teacher.get("/api/contacts").status_code == 200

    def test_student_can_initiate_is_admin_only(self, live_server: LiveServer):
        with live_server.client("a1") as admin, live_server.client("e1") as student:
            error(student.patch("/api/me/preferences", json={"can_initiate": True}),
                  403, "forbidden")
            r = admin.patch("/api/users/e1/preferences", json={"can_initiate": False})
            assert r.json()["preferences"] == {"can_initiate": False}
            error(student.get("/api/contacts"), 403, "cannot_initiate")
            assert student.get("/api/me/preferences").json() == {
                "preferences": {"can_initiate": False}}
            error(admin.patch("/api/users/t1/preferences", json={"can_initiate": False}),
                  400, "bad_request")
            error(admin.get("/api/users/nobody/preferences"), 404, "not_found")
            log = admin.get("/api/audit").json()["items"]
            assert [(e["field"], e["new"]) for e in log] == [("users.e1.can_initiate", False)]

    def test_admin_of_one_school_cannot_touch_another(self, live_server: LiveServer):
        with live_server.client("a1", school="moulin") as other:
            other.patch("/api/settings", json={"discussions_enabled": False})
        with live_server.client("t1") as teacher, live_server.client("a1") as admin:
            assert teacher.get("/api/contacts").status_code == 200
            assert admin.get("/api/audit").json()["items"] == []


class TestUserPreferences:
    def test_teacher_limits_who_may_contact_her(self, live_server: LiveServer):
        with live_server.client("t1") as teacher, live_server.client("e1") as student, \
                live_server.client("p2") as parent:
            r = teacher.patch("/api/me/preferences", json={"accepts": {"students": False}})
            assert r.status_code == 200, r.text
            assert r.json()["preferences"]["accepts"]["students"] == {"enabled": False,
                                                                      "classes": None}
            assert "t1" not in ids(student.get("/api/contacts"))
            assert "t1" in ids(parent.get("/api/contacts"))
            # Her own contacts are unchanged: preferences limit who contacts her.
            assert "e1" in ids(teacher.get("/api/contacts"))
            teacher.patch("/api/me/preferences",
                          json={"accepts": {"students": True,
                                            "parents": {"enabled": True, "classes": ["2B"]}}})
            assert "t1" in ids(student.get("/api/contacts"))
            assert "t1" not in ids(parent.get("/api/contacts"))
            error(teacher.patch("/api/me/preferences",
                                json={"accepts": {"parents": {"classes": ["9Z"]}}}),
                  400, "bad_request")
            error(teacher.patch("/api/me/preferences", json={"parent_messaging_opt_in": True}),
                  400, "bad_request")

    def test_parents_opt_in_to_the_delegate(self, live_server: LiveServer):
        with live_server.client("a1") as admin, live_server.client("p1") as delegate, \
                live_server.client("p2") as parent:
            assert "p1" not in ids(parent.get("/api/contacts"))
            admin.patch("/api/settings", json={"parent_messaging_enabled": True})
            assert "p1" not in ids(parent.get("/api/contacts"))  # nobody opted in yet
            delegate.patch("/api/me/preferences", json={"parent_messaging_opt_in": True})
            assert "p1" not in ids(parent.get("/api/contacts"))  # p2 has not
            parent.patch("/api/me/preferences", json={"parent_messaging_opt_in": True})
            assert "p1" in ids(parent.get("/api/contacts"))
            assert "p2" in ids(delegate.get("/api/contacts"))
            assert "p3" not in ids(delegate.get("/api/contacts"))  # 2B, not p1's class
            error(parent.patch("/api/me/preferences", json={"parent_messaging_opt_in": "yes"}),
                  400, "bad_request")


class TestAdminDirectory:
    def test_search_students_with_their_preferences(self, live_server: LiveServer):
        with live_server.client("a1") as admin:
            admin.patch("/api/users/e2/preferences", json={"can_initiate": False})
            body = admin.get("/api/users", params={"role": "student", "q": "moreau"}).json()
            assert [(i["id"], i["preferences"]) for i in body["items"]] == [
                ("e2", {"can_initiate": False})]
            everyone = admin.get("/api/users", params={"limit": 200}).json()
            assert everyone["total"] == 10
            error(admin.get("/api/users", params={"role": "pupil"}), 400, "bad_request")
        with live_server.client("t1") as teacher:
            error(teacher.get("/api/users"), 403, "forbidden")

    def test_demo_endpoints_only_in_demo_mode(self, live_server: LiveServer):
        with live_server.client() as anonymous:
            assert anonymous.get("/api/demo/users").status_code == 404
            assert anonymous.post("/api/demo/token", json={"user": "a1"}).status_code in (
                404, 405)


class TestSecurityHeaders:
    """Every response forbids framing and sniffing, sends no referrer, and carries a CSP
    that lets the app load only from its own origin and talk only to its own socket."""

    PATHS = ("/", "/app.js", "/style.css", "/healthz", "/api/me", "/nowhere")

    def test_on_every_response(self, live_server: LiveServer):
        host = live_server.url.removeprefix("http://")
        with httpx.Client(base_url=live_server.url, timeout=10) as http:
            for path in self.PATHS:
                r = http.get(path)
                assert r.headers["x-content-type-options"] == "nosniff", path
                assert r.headers["referrer-policy"] == "no-referrer", path
                assert r.headers["x-frame-options"] == "DENY", path
                csp = dict(d.strip().split(" ", 1)
                           for d in r.headers["content-security-policy"].split(";"))
                assert csp["default-src"] == "'self'"
                assert csp["script-src"] == "'self'"
                assert csp["style-src"] == "'self'"
                assert csp["connect-src"] == f"'self' ws://{host} wss://{host}"
                assert csp["object-src"] == "'none'"
                assert csp["frame-ancestors"] == "'none'"
                assert csp["base-uri"] == "'none'"
                assert csp["form-action"] == "'self'"
                assert "unsafe" not in r.headers["content-security-policy"]

    def test_a_forged_host_cannot_write_into_the_policy(self, live_server: LiveServer):
        with httpx.Client(base_url=live_server.url, timeout=10) as http:
            r = http.get("/healthz", headers={"Host": "evil; script-src *"})
        csp = r.headers["content-security-policy"]
        assert "evil" not in csp
        assert "connect-src 'self';" in csp
