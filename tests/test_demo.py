"""The demo school: deterministic, valid, and shaped like a real school."""

from __future__ import annotations

import hashlib
import json
import random
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from server.demo import ADMIN_ID, generate_school
from server.directory import parse_directory
from server.model import ClassId, Directory, Role, User, UserId

ROOT = Path(__file__).resolve().parent.parent


def dump(doc: dict[str, object]) -> str:
    # The form `preau demo-school` prints.
    return json.dumps(doc, ensure_ascii=False, indent=1)


def of_role(d: Directory, role: Role) -> list[User]:
    return [u for u in d.users.values() if u.role is role]


@pytest.fixture(scope="module")
def default() -> Directory:
    return parse_directory(generate_school())


def check_school(d: Directory, classes: int, students: int) -> None:
    """The invariants every demo school keeps, whatever its size and seed."""
    assert len(d.classes) == classes
    per_class = Counter(u.class_id for u in of_role(d, Role.STUDENT))
    assert per_class == dict.fromkeys(d.classes, students)

    # Collège and lycée classes, with the matching student profiles.
    for c in d.classes.values():
        assert (re.fullmatch(r"[6543][A-Z]+", c.id) and c.level == "college") or (
            re.fullmatch(r"[21T][A-Z]+", c.id) and c.level == "lycee"
        ), c
    for s in of_role(d, Role.STUDENT):
        assert s.class_id is not None
        assert s.profile == f"students-{d.classes[s.class_id].level}"

    # Families: one to three children, one or two parents per student.
    parents = of_role(d, Role.PARENT)
    assert all(1 <= len(p.children) <= 3 for p in parents)
    parents_of = Counter(child for p in parents for child in p.children)
    assert set(parents_of) == {s.id for s in of_role(d, Role.STUDENT)}
    assert set(parents_of.values()) <= {1, 2}

    # Exactly two delegates per class, each with a child in it.
    for class_id in d.classes:
        delegates = [p for p in parents if class_id in p.delegate_of]
        assert len(delegates) == 2, class_id
        for p in delegates:
            assert any(d.users[c].class_id == class_id for c in p.children)

    # Several teachers per class; nobody teaches more than five classes.
    teachers = of_role(d, Role.TEACHER)
    taught = Counter(c for t in teachers for c in t.teaches)
    assert all(6 <= taught[c] <= 8 for c in d.classes), taught
    assert all(1 <= len(t.teaches) <= 5 for t in teachers)

    # Eight staff, two of them admins, the principal among them.
    staff = of_role(d, Role.STAFF)
    assert len(staff) == 8
    assert {s.id for s in staff if s.admin} == {ADMIN_ID, "staff-01"}

    # Readable ids, numbered without gaps.
    for role, pattern in [(Role.TEACHER, "t-{:03d}"), (Role.STUDENT, "s-{:04d}"),
                          (Role.PARENT, "p-{:04d}")]:
        ids = [u.id for u in of_role(d, role)]
        assert ids == [pattern.format(n) for n in range(1, len(ids) + 1)]
    assert [s.id for s in staff] == ["admin"] + [f"staff-{n:02d}" for n in range(1, 8)]
    assert {u.profile for u in teachers} == {"teachers"}
    assert {u.profile for u in parents} == {"parents"}


class TestDeterminism:
    @pytest.mark.parametrize(("classes", "students", "seed"), [(30, 28, 1), (2, 3, 7), (5, 4, 0)])
    def test_same_arguments_same_bytes(self, classes: int, students: int, seed: int):
        first = dump(generate_school(classes, students, seed))
        assert dump(generate_school(classes, students, seed)) == first

    def test_independent_of_hash_randomisation(self):
        # Set iteration order changes with PYTHONHASHSEED; the output must not.
        code = (
            "import hashlib, json, sys; from server.demo import generate_school; "
            "sys.stdout.write(hashlib.sha256(json.dumps(generate_school(6, 10, 3), "
            "ensure_ascii=False).encode()).hexdigest())"
        )
        expected = hashlib.sha256(
            json.dumps(generate_school(6, 10, 3), ensure_ascii=False).encode()
        ).hexdigest()
        for hash_seed in ("0", "12345"):
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True,
                cwd=ROOT, env={"PYTHONHASHSEED": hash_seed, "PATH": ""}, timeout=60,
            )
            assert out.stdout == expected

    def test_uses_neither_nor_disturbs_the_global_random(self):
        random.seed(1)
        a = dump(generate_school(4, 5))
        state = random.getstate()
        random.seed(2)
        b = dump(generate_school(4, 5))
        assert a == b
        random.setstate(state)
        generate_school(4, 5)
        assert random.getstate() == state

    def test_another_seed_other_people_same_shape(self):
        one, two = generate_school(seed=1), generate_school(seed=2)
        assert dump(one) != dump(two)
        d1, d2 = parse_directory(one), parse_directory(two)
        assert list(d1.classes) == list(d2.classes)
        assert len(of_role(d1, Role.STUDENT)) == len(of_role(d2, Role.STUDENT))
        names1 = [u.display_name for u in of_role(d1, Role.STUDENT)]
        names2 = [u.display_name for u in of_role(d2, Role.STUDENT)]
        assert names1 != names2

    def test_school_id(self):
        d = parse_directory(generate_school(2, 2, school_id="college-demo.2"))
        assert d.school.id == "college-demo.2"


class TestDefaultSchool:
    def test_is_a_valid_directory_of_the_requested_size(self, default: Directory):
        check_school(default, 30, 28)
        assert len(of_role(default, Role.STUDENT)) == 840
        assert list(default.profiles) == [
            "teachers", "staff", "students-college", "students-lycee", "parents"
        ]
        assert default.timezone == "Europe/Paris"

    def test_round_trips(self, default: Directory):
        from server.directory import directory_to_json

        assert directory_to_json(default) == generate_school()

    def test_collège_and_lycée_classes(self, default: Directory):
        levels = Counter(c.level for c in default.classes.values())
        assert levels["college"] >= 12
        assert levels["lycee"] >= 12
        assert {"6A", "5A", "4A", "3A", "2A", "1A", "TA"} <= set(default.classes)
        assert default.classes[ClassId("2B")].name == "Seconde B"
        assert default.classes[ClassId("6A")].name == "6e A"

    def test_teachers_teach_three_to_five_classes(self, default: Directory):
        loads = [len(t.teaches) for t in of_role(default, Role.TEACHER)]
        assert sum(3 <= n <= 5 for n in loads) >= 0.9 * len(loads)

    def test_families(self, default: Directory):
        parents = of_role(default, Role.PARENT)
        sizes = Counter(len(p.children) for p in parents)
        assert sizes[1]
        assert sizes[2]
        assert sizes[3]
        parents_of = Counter(c for p in parents for c in p.children)
        two = sum(n == 2 for n in parents_of.values())
        assert 0.6 * len(parents_of) < two < len(parents_of)  # most, not all

        students = default.users
        siblings = [p.children for p in parents if len(p.children) > 1]
        same_name = sum(len({students[c].last_name for c in kids}) == 1 for kids in siblings)
        assert same_name >= 0.75 * len(siblings)
        apart = sum(len({students[c].class_id for c in kids}) > 1 for kids in siblings)
        assert apart >= 0.75 * len(siblings)

    def test_parents_share_the_children_of_their_family(self, default: Directory):
        by_children = Counter(p.children for p in of_role(default, Role.PARENT))
        assert set(by_children.values()) <= {1, 2}

    def test_delegates_come_from_two_families(self, default: Directory):
        for class_id in default.classes:
            first, second = [p for p in of_role(default, Role.PARENT)
                             if class_id in p.delegate_of]
            assert first.children != second.children

    def test_names_look_french_and_are_rarely_repeated(self, default: Directory):
        people = [u for u in default.users.values() if u.id != ADMIN_ID]
        names = Counter(u.display_name for u in people)
        assert len(names) >= 0.99 * len(people)
        assert all(re.fullmatch(r"[A-ZÉ][\w' -]+", u.first_name) for u in people)
        assert all(re.fullmatch(r"[A-ZÉ][\w' -]+", u.last_name) for u in people)
        principal = default.users[UserId("admin")]
        assert principal.display_name == "Hélène Proviseure"
        assert principal.admin

    def test_is_fast(self):
        start = time.perf_counter()
        generate_school()
        assert time.perf_counter() - start < 1.0


class TestSizes:
    @pytest.mark.parametrize(
        ("classes", "students"),
        [(1, 1), (2, 3), (3, 1), (7, 2), (8, 1), (40, 5), (200, 1)],
    )
    @pytest.mark.parametrize("seed", [1, 2, 3])
    def test_any_size_is_a_valid_school(self, classes: int, students: int, seed: int):
        check_school(parse_directory(generate_school(classes, students, seed)), classes, students)

    def test_two_classes_are_one_collège_one_lycée(self):
        d = parse_directory(generate_school(2, 3))
        assert list(d.classes) == ["6A", "2A"]

    def test_class_letters_do_not_run_out(self):
        d = parse_directory(generate_school(200, 1))
        assert "6AA" in d.classes
        assert d.classes[ClassId("6AA")].name == "6e AA"

    @pytest.mark.parametrize(
        "arguments",
        [{"classes": 0}, {"students": 0}, {"classes": -1}, {"school_id": "mon école"},
         {"school_id": ""}],
    )
    def test_rejects_impossible_arguments(self, arguments: dict[str, object]):
        with pytest.raises(ValueError, match=r"need at least|invalid school id"):
            generate_school(**arguments)  # type: ignore[arg-type]
