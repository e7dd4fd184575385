"""The contacts API's groups with their counts, and a search that reads « 6e A » as a
class (issue 11), over a real socket."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.contacts import Query
from server.directory import parse_directory
from server.model import ClassId, SchoolClass
from server.store import open_store
from tests.conftest import SCHOOL_DAY, LiveServer


def college_doc() -> dict[str, Any]:
    """A collège whose class names share words: 6e A, 6e AB, 6e B, 5e A."""
    def user(uid: str, role: str, first: str, last: str, profile: str,
             **extra: Any) -> dict[str, Any]:
        return {"id": uid, "role": role, "first_name": first, "last_name": last,
                "profile": profile, **extra}

    return {
        "format": 1,
        "school": {"id": "college", "name": "Collège Jean Jaurès", "timezone": "Europe/Paris"},
        "profiles": [{"id": "teachers", "name": "Enseignants"},
                     {"id": "staff", "name": "Personnels"},
                     {"id": "students", "name": "Élèves"},
                     {"id": "students-off", "name": "Élèves sans discussions"},
                     {"id": "parents", "name": "Responsables"}],
        "classes": [{"id": "6A", "name": "6e A", "level": "college"},
                    {"id": "6AB", "name": "6e AB", "level": "college"},
                    {"id": "6B", "name": "6e B", "level": "college"},
                    {"id": "5A", "name": "5e A", "level": "college"}],
        "users": [
            user("t1", "teacher", "Claire", "Martin", "teachers",
                 teaches=["6A", "6AB", "6B", "5A"]),
            user("t2", "teacher", "Paul", "Arnaud", "teachers", teaches=["6A"]),
            user("cpe", "staff", "Anne", "Dubois", "staff"),
            user("a1", "staff", "Jean", "Durand", "staff", admin=True),
            user("s6a1", "student", "Léa", "André", "students", **{"class": "6A"}),
            user("s6a2", "student", "Hugo", "Petit", "students", **{"class": "6A"}),
            user("s6a3", "student", "Zoé", "Blanc", "students-off", **{"class": "6A"}),
            user("s6ab", "student", "Adam", "Roux", "students", **{"class": "6AB"}),
            user("s6b", "student", "Alice", "Moreau", "students", **{"class": "6B"}),
            user("s5a", "student", "Anaïs", "Garnier", "students", **{"class": "5A"}),
            user("p6a1", "parent", "Claire", "André", "parents", children=["s6a1"],
                 relations={"s6a1": "mère"}),
            user("p6a2", "parent", "Marc", "Petit", "parents", children=["s6a2"]),
            user("p6b", "parent", "Nadia", "Moreau", "parents", children=["s6b"]),
        ],
    }


def import_college(live_server: LiveServer) -> None:
    async def run() -> None:
        st = await open_store(live_server.database_url)
        try:
            await st.import_directory(parse_directory(college_doc()), actor="test",
                                      now=SCHOOL_DAY)
        finally:
            await st.close()
    asyncio.run(run())
    with live_server.client("a1", school="college") as c:
        r = c.patch("/api/settings",
                    json={"profiles": {"students-off": {"discussions_enabled": False}}})
        assert r.status_code == 200, r.text


def contacts(live_server: LiveServer, user: str, q: str = "") -> dict[str, Any]:
    with live_server.client(user, school="college") as c:
        r = c.get("/api/contacts", params={"q": q, "limit": 200})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


def groups(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(g["kind"], g["class"]["id"]) for g in body["groups"]]


def test_groups_with_their_counts(live_server: LiveServer):
    import_college(live_server)
    body = contacts(live_server, "t2")
    assert body["groups"] == [
        {"kind": "students", "class": {"id": "6A", "name": "6e A"}, "included": 2,
         "left_out": {"profile_disabled": 1}, "left_out_total": 1},
        {"kind": "parents", "class": {"id": "6A", "name": "6e A"}, "included": 2,
         "left_out": {}, "left_out_total": 0},
        # The team of 6e A is t1 and t2 herself, who is not counted.
        {"kind": "team", "class": {"id": "6A", "name": "6e A"}, "included": 1,
         "left_out": {}, "left_out_total": 0},
    ]
    with live_server.client("t1", school="college") as c:
        r = c.patch("/api/me/preferences", json={"accepts": {"teachers": False}})
        assert r.status_code == 200, r.text
    team = [g for g in contacts(live_server, "t2")["groups"] if g["kind"] == "team"]
    assert (team[0]["included"], team[0]["left_out"]) == (0, {"recipient_not_allowed": 1})
    # Staff address every class's groups; students and parents none.
    assert len(contacts(live_server, "cpe")["groups"]) == 12
    assert contacts(live_server, "s6a1")["groups"] == []
    assert contacts(live_server, "p6a1")["groups"] == []


def test_searching_a_class_finds_that_class_only(live_server: LiveServer):
    import_college(live_server)
    found = contacts(live_server, "t1", "6e A")
    # Students, parents and teachers of 6e A; not 6e AB, 6e B or 5e A, whose names have a's.
    assert sorted(i["id"] for i in found["items"]) == ["p6a1", "p6a2", "s6a1", "s6a2", "t2"]
    assert groups(found) == [("students", "6A"), ("parents", "6A"), ("team", "6A")]
    assert sorted(i["id"] for i in contacts(live_server, "t1", "6A")["items"]) == [
        "p6a1", "p6a2", "s6a1", "s6a2", "t2"]
    assert [i["id"] for i in contacts(live_server, "t1", "6e ab")["items"]] == ["s6ab"]
    assert groups(contacts(live_server, "t1", "parents 6e A")) == [("parents", "6A")]
    assert sorted(i["id"] for i in contacts(live_server, "t1", "6e A petit")["items"]) == [
        "p6a2", "s6a2"]
    # A word that is no whole class name still searches as before.
    assert {i["id"] for i in contacts(live_server, "t1", "6e")["items"]} >= {
        "s6a1", "s6ab", "s6b"}
    # A parent is found by their child's name too.
    assert "p6a1" in [i["id"] for i in contacts(live_server, "t1", "léa")["items"]]


@pytest.mark.parametrize(("text", "classes", "terms"), [
    ("6e A", {"6A"}, ()),
    ("6E a", {"6A"}, ()),
    ("6e AB", {"6AB"}, ()),
    ("6e A B", {"6A"}, ("b",)),
    ("Léa 6e A", {"6A"}, ("lea",)),
    ("6A 5e A", {"6A", "5A"}, ()),
    ("6e", set(), ("6e",)),
    ("", set(), ()),
])
def test_query_reads_class_names_as_whole_words(text: str, classes: set[str],
                                                terms: tuple[str, ...]) -> None:
    known = {ClassId(c["id"]): SchoolClass(ClassId(c["id"]), c["name"], c["level"])
             for c in college_doc()["classes"]}
    q = Query.parse(text, known)
    assert q.classes == classes
    assert q.terms == terms


def test_a_parent_comes_with_their_children_and_the_relation(live_server: LiveServer):
    import_college(live_server)
    items = {i["id"]: i for i in contacts(live_server, "t2", "andré")["items"]}
    assert items["p6a1"]["children"] == [
        {"id": "s6a1", "name": "Léa André", "first_name": "Léa", "last_name": "André",
         "relation": "mother", "class": {"id": "6A", "name": "6e A"}}]
    # Without a relation in the directory: the default, guardian (« responsable »).
    items = {i["id"]: i for i in contacts(live_server, "t2", "petit")["items"]}
    assert items["p6a2"]["children"][0]["relation"] == "guardian"
    assert "children" not in items["s6a2"]
