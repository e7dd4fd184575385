"""The directory file format: what it accepts, what it rejects and how it says so.

Each kind of bad file has its own test that checks the whole list of problems,
so a test also fails if a problem comes with unrelated echoes.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.directory import (
    directory_to_json,
    is_valid_id,
    load_directory,
    parse_directory,
)
from server.errors import DirectoryError, Problem
from server.model import (
    ClassId,
    Directory,
    Profile,
    ProfileId,
    Relation,
    Role,
    School,
    SchoolClass,
    SchoolId,
    User,
    UserId,
)

DOCS = Path(__file__).resolve().parent.parent / "docs" / "directory.md"

# Positions in SCHOOL["users"], to name records in expected problems.
T1, T2, A1, S1, E1, E2, E3, P1, P2 = range(9)

SCHOOL: dict[str, Any] = {
    "format": 1,
    "school": {"id": "hugo", "name": "Lycée Victor Hugo", "timezone": "Europe/Paris"},
    "profiles": [
        {"id": "teachers", "name": "Enseignants"},
        {"id": "staff", "name": "Personnels"},
        {"id": "students", "name": "Élèves"},
        {"id": "parents", "name": "Responsables"},
    ],
    "classes": [
        {"id": "2A", "name": "Seconde A", "level": "lycee"},
        {"id": "2B", "name": "Seconde B", "level": "lycee"},
    ],
    "users": [
        {"id": "t1", "role": "teacher", "first_name": "Claire", "last_name": "Martin",
         "profile": "teachers", "teaches": ["2A", "2B"]},
        {"id": "t2", "role": "teacher", "first_name": "Hélène", "last_name": "Bernard",
         "profile": "teachers", "teaches": ["2B"]},
        {"id": "a1", "role": "staff", "first_name": "Jean", "last_name": "Durand",
         "profile": "staff", "admin": True},
        {"id": "s1", "role": "staff", "first_name": "Sophie", "last_name": "Leroy",
         "profile": "staff"},
        {"id": "e1", "role": "student", "first_name": "Léa", "last_name": "Petit",
         "profile": "students", "class": "2A"},
        {"id": "e2", "role": "student", "first_name": "Hugo", "last_name": "Petit",
         "profile": "students", "class": "2B"},
        {"id": "e3", "role": "student", "first_name": "Inès", "last_name": "Fournier",
         "profile": "students", "class": "2B"},
        {"id": "p1", "role": "parent", "first_name": "Marc", "last_name": "Petit",
         "profile": "parents", "children": ["e2", "e1"], "delegate_of": ["2A"]},
        {"id": "p2", "role": "parent", "first_name": "Karim", "last_name": "Fournier",
         "profile": "parents", "children": ["e3"]},
    ],
}


def school() -> dict[str, Any]:
    """A fresh copy of a valid document, for a test to break."""
    return copy.deepcopy(SCHOOL)


def user(doc: dict[str, Any], index: int) -> dict[str, Any]:
    users: list[dict[str, Any]] = doc["users"]
    return users[index]


def problems(doc: object) -> list[tuple[str, str]]:
    """The ``(record, field)`` of every problem, in order; fails if the file is accepted."""
    with pytest.raises(DirectoryError) as caught:
        parse_directory(doc)
    return [(p.record, p.field) for p in caught.value.problems]


def only_problem(doc: object) -> Problem:
    """The one problem reported for ``doc``; fails if there are more, or none."""
    with pytest.raises(DirectoryError) as caught:
        parse_directory(doc)
    found = caught.value.problems
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


def doc_example() -> object:
    blocks = re.findall(r"```json\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) == 1, "docs/directory.md should have exactly one JSON example"
    return json.loads(blocks[0])


# --------------------------------------------------------------------------- accepted


class TestValidFile:
    def test_maps_every_field_to_the_model(self):
        d = parse_directory(school())
        assert d.school == School(SchoolId("hugo"), "Lycée Victor Hugo")
        assert d.timezone == "Europe/Paris"
        assert d.profiles[ProfileId("staff")] == Profile(ProfileId("staff"), "Personnels")
        assert d.classes[ClassId("2A")] == SchoolClass(ClassId("2A"), "Seconde A", "lycee")
        users = d.users
        assert users[UserId("t1")].teaches == {"2A", "2B"}
        assert users[UserId("a1")].admin is True
        assert users[UserId("e1")] == User(
            UserId("e1"), Role.STUDENT, "Léa", "Petit", ProfileId("students"),
            class_id=ClassId("2A"),
        )
        parent = users[UserId("p1")]
        assert parent.children == ("e2", "e1")  # file order, not sorted
        assert parent.delegate_of == {"2A"}
        assert parent.role is Role.PARENT

    def test_mappings_keep_file_order(self):
        d = parse_directory(school())
        assert list(d.classes) == ["2A", "2B"]
        assert list(d.users) == [u["id"] for u in SCHOOL["users"]]

    def test_optional_fields_take_their_defaults(self):
        doc = school()
        del doc["school"]["timezone"]
        del doc["classes"][0]["level"]
        del user(doc, T1)["teaches"]
        del user(doc, A1)["admin"]
        del user(doc, P1)["delegate_of"]
        d = parse_directory(doc)
        assert d.timezone is None  # the school keeps its setting (Europe/Paris at first)
        assert d.classes[ClassId("2A")].level == ""
        assert d.users[UserId("t1")].teaches == frozenset()
        assert d.users[UserId("a1")].admin is False
        assert d.users[UserId("p1")].delegate_of == frozenset()

    def test_names_are_stripped(self):
        doc = school()
        user(doc, E1)["first_name"] = "  Léa "
        doc["school"]["name"] = "\tLycée Victor Hugo\n"
        d = parse_directory(doc)
        assert d.users[UserId("e1")].first_name == "Léa"
        assert d.school.name == "Lycée Victor Hugo"

    def test_a_parent_may_come_before_their_children(self):
        doc = school()
        doc["users"].reverse()
        assert parse_directory(doc).users[UserId("p1")].children == ("e2", "e1")

    def test_another_time_zone(self):
        doc = school()
        doc["school"]["timezone"] = "America/Martinique"
        assert parse_directory(doc).timezone == "America/Martinique"

    @pytest.mark.parametrize("good", ["a", "x" * 64, "A.b_c-9", "2A", "s-0001"])
    def test_valid_ids(self, good: str):
        assert is_valid_id(good)

    def test_names_of_exactly_200_characters(self):
        doc = school()
        user(doc, E1)["last_name"] = " " + "x" * 200 + " "
        assert parse_directory(doc).users[UserId("e1")].last_name == "x" * 200


# --------------------------------------------------------------------------- document


class TestDocument:
    @pytest.mark.parametrize("data", [[], "school", 1, None])
    def test_top_level_must_be_an_object(self, data: object):
        problem = only_problem(data)
        assert (problem.record, problem.field) == ("file", "(record)")
        assert "must be a JSON object" in problem.message

    def test_unknown_top_level_field(self):
        doc = school()
        doc["version"] = 2
        problem = only_problem(doc)
        assert (problem.record, problem.field) == ("file", "version")
        assert "unknown field" in problem.message

    @pytest.mark.parametrize("missing", ["format", "school", "profiles", "classes", "users"])
    def test_missing_top_level_field(self, missing: str):
        doc = school()
        del doc[missing]
        # References to a missing section are not each reported unknown.
        problem = only_problem(doc)
        assert (problem.record, problem.field, problem.message) == (
            "file", missing, "required field is missing"
        )

    @pytest.mark.parametrize("version", [2, 0, "1", True, 1.0, None])
    def test_format_must_be_1(self, version: object):
        doc = school()
        doc["format"] = version
        problem = only_problem(doc)
        assert (problem.record, problem.field) == ("file", "format")
        assert problem.message.startswith("must be 1")

    @pytest.mark.parametrize("section", ["profiles", "classes", "users"])
    def test_a_section_must_be_a_list(self, section: str):
        doc = school()
        doc[section] = {}
        assert only_problem(doc) == Problem("file", section, "must be a list, got an object")

    def test_a_record_must_be_an_object(self):
        doc = school()
        doc["users"].append(["e9", "student"])
        problem = only_problem(doc)
        assert (problem.record, problem.field) == ("users[9]", "(record)")
        assert problem.message == "must be an object, got a list"

    def test_school_must_be_an_object(self):
        doc = school()
        doc["school"] = "hugo"
        problem = only_problem(doc)
        assert (problem.record, problem.field) == ("school", "(record)")


# --------------------------------------------------------------------------- values


class TestIds:
    @pytest.mark.parametrize("bad", ["", "a b", "élève", "x" * 65, "a/b", "2A\n", "tab\t"])
    def test_invalid_id_is_rejected(self, bad: str):
        doc = school()
        user(doc, S1)["id"] = bad
        problem = only_problem(doc)
        # Without a valid id the record is named by its position alone.
        assert (problem.record, problem.field) == ("users[3]", "id")
        assert problem.message.startswith("invalid id")
        assert not is_valid_id(bad)

    @pytest.mark.parametrize(
        ("path", "record"),
        [
            (("school",), "school"),
            (("profiles", 1), "profiles[1]"),
            (("classes", 1), "classes[1]"),
            (("users", S1), "users[3]"),
        ],
    )
    def test_every_kind_of_record_checks_its_id(self, path: tuple[Any, ...], record: str):
        doc = school()
        target: Any = doc
        for key in path:
            target = target[key]
        target["id"] = 42
        found = problems(doc)
        assert found[0] == (record, "id")
        if path[0] == "profiles":
            # The staff's profile is then unknown: the profile record is at fault first.
            assert found[1:] == [("users[2] (a1)", "profile"), ("users[3] (s1)", "profile")]
        elif path[0] == "classes":
            assert ("users[1] (t2)", "teaches[0]") in found[1:]
        else:
            assert found == [(record, "id")]


class TestNames:
    @pytest.mark.parametrize(
        ("bad", "message"),
        [
            ("", "must not be empty"),
            ("   ", "must not be empty"),
            ("x" * 201, "must be at most 200 characters, got 201"),
            ("Léa\nPetit", "must not contain control characters (line breaks, tabs)"),
            (7, "must be a string, got the number 7"),
            (None, "must be a string, got null"),
        ],
    )
    def test_invalid_name_is_rejected(self, bad: object, message: str):
        doc = school()
        user(doc, E1)["first_name"] = bad
        assert only_problem(doc) == Problem("users[4] (e1)", "first_name", message)

    @pytest.mark.parametrize(
        ("section", "record"),
        [("school", "school"), ("profiles", "profiles[0] (teachers)"),
         ("classes", "classes[0] (2A)")],
    )
    def test_every_kind_of_record_checks_its_name(self, section: str, record: str):
        doc = school()
        target = doc["school"] if section == "school" else doc[section][0]
        target["name"] = " "
        assert only_problem(doc) == Problem(record, "name", "must not be empty")


class TestDuplicateIds:
    @pytest.mark.parametrize(
        ("section", "first", "record"),
        [
            ("profiles", 0, "profiles[4] (teachers)"),
            ("classes", 1, "classes[2] (2B)"),
            ("users", E3, "users[9] (e3)"),
        ],
    )
    def test_duplicate_id_is_rejected(self, section: str, first: int, record: str):
        doc = school()
        doc[section].append(copy.deepcopy(doc[section][first]))
        problem = only_problem(doc)
        assert (problem.record, problem.field) == (record, "id")
        assert problem.message.endswith(f"already used by {section}[{first}]")

    def test_the_same_id_in_two_sections_is_fine(self):
        doc = school()
        user(doc, E1)["id"] = "2A"
        user(doc, P1)["children"] = ["e2", "2A"]
        assert parse_directory(doc).users[UserId("2A")].class_id == "2A"


class TestMissingFields:
    @pytest.mark.parametrize("field", ["id", "role", "first_name", "last_name", "profile"])
    def test_every_user_needs_the_common_fields(self, field: str):
        doc = school()
        del user(doc, T2)[field]
        problem = only_problem(doc)
        record = "users[1]" if field == "id" else "users[1] (t2)"
        assert problem == Problem(record, field, "required field is missing")

    @pytest.mark.parametrize(
        ("section", "field", "record"),
        [("school", "name", "school"), ("profiles", "name", "profiles[1] (staff)"),
         ("classes", "name", "classes[1] (2B)")],
    )
    def test_records_need_their_name(self, section: str, field: str, record: str):
        doc = school()
        target = doc["school"] if section == "school" else doc[section][1]
        del target[field]
        assert only_problem(doc) == Problem(record, field, "required field is missing")


class TestTypes:
    def test_a_number_is_not_a_boolean(self):
        doc = school()
        user(doc, A1)["admin"] = 1
        assert only_problem(doc) == Problem(
            "users[2] (a1)", "admin", "must be true or false, got the number 1"
        )

    def test_a_string_is_not_a_boolean(self):
        doc = school()
        user(doc, A1)["admin"] = "true"
        problem = only_problem(doc)
        assert (problem.record, problem.field) == ("users[2] (a1)", "admin")

    def test_a_boolean_is_not_a_number(self):
        doc = school()
        doc["format"] = True
        problem = only_problem(doc)
        assert problem.message == (
            "must be 1 (the only version of this format), got the boolean true"
        )

    def test_a_string_is_not_a_list(self):
        doc = school()
        user(doc, T2)["teaches"] = "2B"
        assert only_problem(doc) == Problem(
            "users[1] (t2)", "teaches", 'must be a list of ids, got the string "2B"'
        )

    def test_a_list_is_not_a_string(self):
        doc = school()
        user(doc, E1)["class"] = ["2A"]
        assert only_problem(doc) == Problem(
            "users[4] (e1)", "class", "must be a string (a class id), got a list"
        )

    def test_list_entries_must_be_strings(self):
        doc = school()
        user(doc, P2)["children"] = ["e3", 3]
        assert only_problem(doc) == Problem(
            "users[8] (p2)", "children[1]", "must be a string (an id), got the number 3"
        )

    def test_level_must_be_a_string(self):
        doc = school()
        doc["classes"][0]["level"] = 2
        assert only_problem(doc) == Problem(
            "classes[0] (2A)", "level", "must be a string, got the number 2"
        )

    def test_role_must_be_a_string(self):
        doc = school()
        user(doc, S1)["role"] = ["staff"]
        problem = only_problem(doc)
        assert (problem.record, problem.field) == ("users[3] (s1)", "role")

    def test_long_values_are_shortened_in_messages(self):
        doc = school()
        user(doc, E1)["class"] = "x" * 500
        problem = only_problem(doc)
        assert len(problem.message) < 100
        assert "…" in problem.message


class TestRoles:
    def test_unknown_role(self):
        doc = school()
        user(doc, E1)["role"] = "pupil"
        # The record's class cannot be judged without a role, so it is not flagged.
        assert only_problem(doc) == Problem(
            "users[4] (e1)",
            "role",
            'unknown role "pupil": expected teacher, staff, student or parent',
        )

    @pytest.mark.parametrize(
        ("index", "field", "value", "message"),
        [
            (E1, "teaches", ["2A"], "not a field of a student (only teachers have it)"),
            (T1, "admin", True, "not a field of a teacher (only staff have it)"),
            (A1, "class", "2A", "not a field of a staff (only students have it)"),
            (P2, "class", "2B", "not a field of a parent (only students have it)"),
            (E1, "children", ["e2"], "not a field of a student (only parents have it)"),
            (T1, "delegate_of", ["2A"], "not a field of a teacher (only parents have it)"),
        ],
    )
    def test_a_field_of_another_role(self, index: int, field: str, value: object, message: str):
        doc = school()
        user(doc, index)[field] = value
        problem = only_problem(doc)
        assert (problem.field, problem.message) == (field, message)
        assert problem.record.startswith(f"users[{index}] (")

    def test_unknown_user_field(self):
        doc = school()
        user(doc, E1)["email"] = "lea@example.org"
        problem = only_problem(doc)
        assert (problem.record, problem.field) == ("users[4] (e1)", "email")
        assert problem.message == (
            "unknown field (expected id, role, first_name, last_name, profile, class)"
        )

    @pytest.mark.parametrize(
        ("section", "record"),
        [("school", "school"), ("profiles", "profiles[0] (teachers)"),
         ("classes", "classes[0] (2A)")],
    )
    def test_unknown_field_elsewhere(self, section: str, record: str):
        doc = school()
        target = doc["school"] if section == "school" else doc[section][0]
        target["colour"] = "blue"
        problem = only_problem(doc)
        assert (problem.record, problem.field) == (record, "colour")
        assert problem.message.startswith("unknown field")


class TestReferences:
    def test_unknown_profile(self):
        doc = school()
        user(doc, E3)["profile"] = "eleves"
        assert only_problem(doc) == Problem(
            "users[6] (e3)", "profile", 'unknown profile "eleves": not in profiles'
        )

    def test_unknown_class_of_a_student(self):
        doc = school()
        user(doc, E3)["class"] = "2C"
        # p2 is delegate of nothing, so the wrong class has no echo there.
        assert only_problem(doc) == Problem(
            "users[6] (e3)", "class", 'unknown class "2C": not in classes'
        )

    def test_unknown_class_taught(self):
        doc = school()
        user(doc, T1)["teaches"] = ["2A", "9Z"]
        assert only_problem(doc) == Problem(
            "users[0] (t1)", "teaches[1]", 'unknown class "9Z": not in classes'
        )

    def test_unknown_class_of_a_delegate(self):
        doc = school()
        user(doc, P1)["delegate_of"] = ["2a"]  # ids are case-sensitive
        assert only_problem(doc) == Problem(
            "users[7] (p1)", "delegate_of[0]", 'unknown class "2a": not in classes'
        )

    def test_a_child_who_does_not_exist(self):
        doc = school()
        user(doc, P2)["children"] = ["e4"]
        assert only_problem(doc) == Problem(
            "users[8] (p2)", "children[0]", 'unknown user "e4": not in users'
        )

    @pytest.mark.parametrize(("child", "role"), [("t1", "teacher"), ("a1", "staff"),
                                                  ("p1", "parent")])
    def test_a_child_who_is_not_a_student(self, child: str, role: str):
        doc = school()
        user(doc, P2)["children"] = ["e3", child]
        assert only_problem(doc) == Problem(
            "users[8] (p2)", "children[1]", f'"{child}" is a {role}, not a student'
        )

    def test_a_child_with_an_invalid_role_is_reported_once(self):
        doc = school()
        user(doc, E3)["role"] = "eleve"
        del user(doc, E3)["class"]
        assert problems(doc) == [("users[6] (e3)", "role")]

    def test_a_reference_to_a_flawed_record_is_not_unknown(self):
        doc = school()
        doc["classes"][0]["name"] = ""  # 2A is declared, though its record is wrong
        assert problems(doc) == [("classes[0] (2A)", "name")]


class TestStudents:
    @pytest.mark.parametrize("value", ["missing", None])
    def test_a_student_needs_a_class(self, value: object):
        doc = school()
        if value == "missing":
            del user(doc, E3)["class"]
        else:
            user(doc, E3)["class"] = value
        assert only_problem(doc) == Problem(
            "users[6] (e3)", "class", "a student must have a class"
        )


class TestParents:
    @pytest.mark.parametrize("value", ["missing", []])
    def test_a_parent_needs_a_child(self, value: object):
        doc = school()
        if value == "missing":
            del user(doc, P2)["children"]
        else:
            user(doc, P2)["children"] = value
        assert only_problem(doc) == Problem(
            "users[8] (p2)", "children", "a parent must have at least one child"
        )

    def test_a_delegate_of_a_class_without_their_child(self):
        # Class-council delegates are designated from the elected lists: a parent may
        # represent a class none of their children is in (SPEC "Clarifications").
        doc = school()
        user(doc, P2)["delegate_of"] = ["2B", "2A"]  # e3 is in 2B only
        assert parse_directory(doc).users[UserId("p2")].delegate_of == {"2A", "2B"}

    def test_a_delegate_of_an_unknown_class_is_still_refused(self):
        doc = school()
        user(doc, P2)["delegate_of"] = ["2B", "9Z"]
        assert only_problem(doc) == Problem(
            "users[8] (p2)", "delegate_of[1]", 'unknown class "9Z": not in classes'
        )

    def test_a_delegate_of_the_class_of_any_of_their_children(self):
        doc = school()
        user(doc, P1)["delegate_of"] = ["2A", "2B"]  # e1 in 2A, e2 in 2B
        assert parse_directory(doc).users[UserId("p1")].delegate_of == {"2A", "2B"}

    def test_an_unknown_child_is_reported_whatever_the_delegation(self):
        doc = school()
        user(doc, P2)["children"] = ["e3", "e9"]
        user(doc, P2)["delegate_of"] = ["2A"]
        assert problems(doc) == [("users[8] (p2)", "children[1]")]


class TestDuplicateEntries:
    @pytest.mark.parametrize(
        ("index", "field", "value"),
        [
            (T1, "teaches", ["2A", "2B", "2A"]),
            (P1, "children", ["e1", "e2", "e1"]),
            (P1, "delegate_of", ["2A", "2B", "2A"]),
        ],
    )
    def test_an_entry_twice_in_a_list(self, index: int, field: str, value: list[str]):
        doc = school()
        user(doc, index)[field] = value
        assert problems(doc) == [(f"users[{index}] ({user(doc, index)['id']})", f"{field}[2]")]

    def test_the_message_points_at_the_first_occurrence(self):
        doc = school()
        user(doc, P1)["children"] = ["e1", "e2", "e1"]
        assert only_problem(doc).message == 'duplicate entry "e1": already at children[0]'


class TestTimeZone:
    @pytest.mark.parametrize("bad", ["Paris", "europe/paris", "", "UTC+1", "../etc/passwd"])
    def test_unknown_time_zone(self, bad: str):
        doc = school()
        doc["school"]["timezone"] = bad
        problem = only_problem(doc)
        assert (problem.record, problem.field) == ("school", "timezone")
        assert problem.message.startswith("unknown time zone")

    def test_time_zone_must_be_a_string(self):
        doc = school()
        doc["school"]["timezone"] = None
        assert only_problem(doc) == Problem("school", "timezone", "must be a string, got null")


class TestSeveralProblems:
    def test_every_problem_is_reported_in_file_order(self):
        doc = school()
        doc["format"] = 2
        doc["school"]["timezone"] = "Mars/Olympus"
        doc["classes"].append({"id": "2A", "name": "Seconde A bis"})
        user(doc, T1)["teaches"] = ["2A", "9Z"]
        user(doc, A1)["admin"] = "yes"
        user(doc, E1)["class"] = None
        user(doc, E2)["teaches"] = ["2B"]
        user(doc, P1)["children"] = ["e2", "t1", "e2"]
        user(doc, P2)["delegate_of"] = ["9Z"]
        doc["users"].append({"id": "e3", "role": "pupil", "first_name": "X"})

        with pytest.raises(DirectoryError) as caught:
            parse_directory(doc)
        found = [(p.record, p.field) for p in caught.value.problems]
        assert found == [
            ("file", "format"),
            ("school", "timezone"),
            ("classes[2] (2A)", "id"),
            ("users[0] (t1)", "teaches[1]"),
            ("users[2] (a1)", "admin"),
            ("users[4] (e1)", "class"),
            ("users[5] (e2)", "teaches"),
            ("users[7] (p1)", "children[1]"),
            ("users[7] (p1)", "children[2]"),
            ("users[8] (p2)", "delegate_of[0]"),
            ("users[9] (e3)", "id"),
            ("users[9] (e3)", "role"),
            ("users[9] (e3)", "last_name"),
            ("users[9] (e3)", "profile"),
        ]
        # The message lists them all, one a line, for the command line to print.
        text = str(caught.value)
        assert text.startswith("the directory was rejected (14 problems):")
        assert len(text.splitlines()) == 15


# --------------------------------------------------------------------------- round trip


class TestRoundTrip:
    def test_round_trip(self):
        d = parse_directory(school())
        assert parse_directory(directory_to_json(d)) == d

    def test_round_trip_through_json_text(self):
        d = parse_directory(school())
        text = json.dumps(directory_to_json(d), ensure_ascii=False)
        assert parse_directory(json.loads(text)) == d

    def test_output_is_explicit_and_deterministic(self):
        doc = school()
        del user(doc, A1)["admin"]
        del doc["school"]["timezone"]
        user(doc, T1)["teaches"] = ["2B", "2A"]
        out = directory_to_json(parse_directory(doc))
        assert out["school"] == {"id": "hugo", "name": "Lycée Victor Hugo"}
        users: list[dict[str, object]] = out["users"]  # type: ignore[assignment]
        assert users[A1]["admin"] is False
        assert users[T1]["teaches"] == ["2A", "2B"]  # class order, whatever the input order
        assert users[P2] == {
            "id": "p2", "role": "parent", "first_name": "Karim", "last_name": "Fournier",
            "profile": "parents", "children": ["e3"], "delegate_of": [],
        }

    @settings(max_examples=60, deadline=None)
    @given(st.data())
    def test_any_valid_directory_round_trips(self, data: st.DataObject):
        d = data.draw(directories())
        out = directory_to_json(d)
        assert parse_directory(out) == d
        assert parse_directory(json.loads(json.dumps(out))) == d


_ids = st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True)
_names = (
    st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30)
    .map(str.strip)
    .filter(bool)
)


@st.composite
def directories(draw: st.DrawFn) -> Directory:
    """Any valid directory, built on the model side."""
    profile_ids = draw(st.lists(_ids, min_size=1, max_size=4, unique=True))
    class_ids = draw(st.lists(_ids, min_size=1, max_size=5, unique=True))
    user_ids = draw(st.lists(_ids, min_size=0, max_size=12, unique=True))
    roles = [draw(st.sampled_from(Role)) for _ in user_ids]
    students = [uid for uid, role in zip(user_ids, roles, strict=True) if role is Role.STUDENT]
    profile_st = st.sampled_from(profile_ids).map(ProfileId)
    class_set = st.frozensets(st.sampled_from(class_ids).map(ClassId))

    student_class = {uid: ClassId(draw(st.sampled_from(class_ids))) for uid in students}
    users: dict[UserId, User] = {}
    for uid, role in zip(user_ids, roles, strict=True):
        if role is Role.PARENT and not students:
            role = Role.STAFF  # a parent needs a child
        base = User(UserId(uid), role, draw(_names), draw(_names), draw(profile_st))
        if role is Role.TEACHER:
            base = _with(base, teaches=draw(class_set))
        elif role is Role.STAFF:
            base = _with(base, admin=draw(st.booleans()))
        elif role is Role.STUDENT:
            base = _with(base, class_id=student_class[uid])
        else:
            children = draw(st.lists(st.sampled_from(students), min_size=1, unique=True))
            # Any class: a delegate need not have a child in the class they represent.
            delegate_of = draw(class_set)
            base = _with(base, children=tuple(UserId(c) for c in children),
                         delegate_of=delegate_of)
        users[base.id] = base

    return Directory(
        school=School(SchoolId(draw(_ids)), draw(_names)),
        timezone=draw(st.sampled_from(["Europe/Paris", "America/Martinique", "UTC"])),
        profiles={ProfileId(p): Profile(ProfileId(p), draw(_names)) for p in profile_ids},
        classes={
            ClassId(c): SchoolClass(ClassId(c), draw(_names), draw(st.just("") | _names))
            for c in class_ids
        },
        users=users,
    )


def _with(u: User, **changes: Any) -> User:
    from dataclasses import replace

    return replace(u, **changes)


# --------------------------------------------------------------------------- files


class TestLoadDirectory:
    def test_loads_a_file(self, tmp_path: Path):
        path = tmp_path / "school.json"
        path.write_text(json.dumps(SCHOOL, ensure_ascii=False), encoding="utf-8")
        assert load_directory(path) == parse_directory(school())
        assert load_directory(str(path)) == parse_directory(school())

    def test_accepts_a_byte_order_mark(self, tmp_path: Path):
        path = tmp_path / "school.json"
        path.write_text(json.dumps(SCHOOL, ensure_ascii=False), encoding="utf-8-sig")
        assert load_directory(path).school.name == "Lycée Victor Hugo"

    def test_a_syntax_error_gives_line_and_column(self, tmp_path: Path):
        path = tmp_path / "broken.json"
        path.write_text('{"format": 1,\n  "school": {"id": "x"\n  "name": "y"}}', encoding="utf-8")
        with pytest.raises(DirectoryError) as caught:
            load_directory(path)
        (problem,) = caught.value.problems
        assert problem.record == str(path)
        assert problem.field == "line 3, column 3"
        assert problem.message == "not valid JSON: Expecting ',' delimiter"

    def test_text_that_is_not_utf8(self, tmp_path: Path):
        path = tmp_path / "latin1.json"
        path.write_bytes(json.dumps(SCHOOL, ensure_ascii=False).encode("latin-1"))
        with pytest.raises(DirectoryError) as caught:
            load_directory(path)
        (problem,) = caught.value.problems
        assert problem.record == str(path)
        assert problem.field.startswith("byte ")
        assert "UTF-8" in problem.message

    def test_an_invalid_document_reports_its_problems(self, tmp_path: Path):
        doc = school()
        doc["format"] = 3
        path = tmp_path / "school.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
        with pytest.raises(DirectoryError) as caught:
            load_directory(path)
        assert [(p.record, p.field) for p in caught.value.problems] == [("file", "format")]

    def test_a_missing_file_is_an_os_error(self, tmp_path: Path):
        with pytest.raises(FileNotFoundError):
            load_directory(tmp_path / "nope.json")


class TestDocumentation:
    def test_the_example_in_the_docs_parses(self):
        d = parse_directory(doc_example())
        assert {u.role for u in d.users.values()} == set(Role)
        assert parse_directory(directory_to_json(d)) == d

    def test_the_docs_name_every_field(self):
        text = DOCS.read_text(encoding="utf-8")
        for field in ("format", "school", "profiles", "classes", "users", "timezone", "level",
                      "role", "first_name", "last_name", "profile", "teaches", "admin",
                      "class", "children", "delegate_of"):
            assert f"`{field}`" in text, field


class TestRelations:
    """A parent's optional ``relations`` (issue 11): what they are to each child."""

    def test_french_words_and_codes_in_children_order(self):
        doc = school()
        user(doc, P1)["relations"] = {"e1": "MÈRE", "e2": "responsable légal"}
        user(doc, P2)["relations"] = {"e3": "father"}
        users = parse_directory(doc).users
        assert users[UserId("p1")].relations == ((UserId("e2"), Relation.LEGAL_GUARDIAN),
                                                 (UserId("e1"), Relation.MOTHER))
        assert users[UserId("p2")].relation_to(UserId("e3")) is Relation.FATHER

    def test_absent_is_guardian(self):
        parent = parse_directory(school()).users[UserId("p1")]
        assert parent.relations == ()
        assert parent.relation_to(UserId("e1")) is Relation.GUARDIAN

    def test_round_trip(self):
        doc = school()
        user(doc, P1)["relations"] = {"e1": "grand-mère"}
        directory = parse_directory(doc)
        written = directory_to_json(directory)
        assert parse_directory(written) == directory
        users: list[dict[str, Any]] = written["users"]  # type: ignore[assignment]
        assert next(u for u in users if u["id"] == "p1")["relations"] == {"e1": "grandmother"}

    @pytest.mark.parametrize(("relations", "field", "message"), [
        ({"e3": "mère"}, "relations.e3", "is not one of this parent's children"),
        ({"e1": "cousine"}, "relations.e1", "unknown relation"),
        ({"e1": 3}, "relations.e1", "unknown relation"),
        (["e1"], "relations", "must be an object"),
    ])
    def test_refused(self, relations: object, field: str, message: str):
        doc = school()
        user(doc, P1)["relations"] = relations
        problem = only_problem(doc)
        assert problem.field == field
        assert message in problem.message

    def test_only_for_parents(self):
        doc = school()
        user(doc, E1)["relations"] = {}
        assert problems(doc) == [("users[4] (e1)", "relations")]
