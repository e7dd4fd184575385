"""Groups of a class as recipients of a start (issue 11): who may name them, how they
expand, and that a group never reaches anyone a start with them alone would refuse."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.errors import ErrorCode
from server.gatekeeper import Gatekeeper, Group, GroupKind
from server.model import ClassId, Role, UserId

from .school import CLOSED, NEXT_OPENING, OPEN, SchoolBuilder, U, standard_school
from .test_properties import PROPERTY_SETTINGS, World, worlds

STUDENTS, PARENTS, TEAM = GroupKind.STUDENTS, GroupKind.PARENTS, GroupKind.TEAM


def G(kind: GroupKind, class_id: str) -> Group:
    return Group(kind, ClassId(class_id))


def nothing(b: SchoolBuilder) -> None:
    """Default settings and preferences."""


def students_off(b: SchoolBuilder) -> None:
    b.student("st.6a4", "Lou Blanc", "6A", profile="students-off")
    b.switch_off("students-off")


def parents_off(b: SchoolBuilder) -> None:
    b.switch_off("parents")


def art_refuses_teachers(b: SchoolBuilder) -> None:
    b.accepts("t.art", teachers=False)


# (sender, groups, setup, included, left out by reason code)
EXPANSIONS: list[tuple[str, list[Group], Callable[[SchoolBuilder], None], set[str],
                       dict[str, int]]] = [
    ("t.math", [G(STUDENTS, "6A")], nothing, {"st.6a1", "st.6a2", "st.6a3"}, {}),
    ("t.math", [G(STUDENTS, "6A")], students_off, {"st.6a1", "st.6a2", "st.6a3"},
     {"profile_disabled": 1}),
    ("t.math", [G(PARENTS, "6A")], nothing, {"p.6a1", "p.6a2", "p.6a3"}, {}),
    ("t.math", [G(PARENTS, "6B")], nothing, {"p.6b1", "p.two"}, {}),
    ("t.math", [G(PARENTS, "6A")], parents_off, set(), {"profile_disabled": 3}),
    # The sender is no recipient of her own team, and is not counted either.
    ("t.math", [G(TEAM, "6A")], nothing, {"t.art"}, {}),
    ("t.math", [G(TEAM, "6A")], art_refuses_teachers, set(), {"recipient_not_allowed": 1}),
    ("s.cpe", [G(TEAM, "6A")], art_refuses_teachers, {"t.art", "t.math"}, {}),
    ("s.cpe", [G(STUDENTS, "2A"), G(PARENTS, "2A")], nothing,
     {"st.2a1", "p.2a1", "p.two"}, {}),
    # Two groups sharing a member count it once.
    ("s.adm", [G(PARENTS, "6B"), G(PARENTS, "2A")], nothing, {"p.6b1", "p.two", "p.2a1"}, {}),
]


@pytest.mark.parametrize(("sender", "groups", "setup", "included", "left_out"), EXPANSIONS)
def test_expansion(sender: str, groups: list[Group], setup: Callable[[SchoolBuilder], None],
                   included: set[str], left_out: dict[str, int]) -> None:
    b = standard_school()
    setup(b)
    decision, expansion = b.gatekeeper().check_group_start(U(sender), [], groups, OPEN)
    if included:
        assert decision.allowed, decision
        assert set(expansion.included) == included
        assert expansion.left_out_counts() == left_out
    else:
        # Nobody reachable in the groups and nobody picked: nothing to start.
        assert decision.code is ErrorCode.BAD_REQUEST
        raw = b.gatekeeper().expand_groups(U(sender), groups)
        assert raw.included == ()
        assert raw.left_out_counts() == left_out


# (sender, group): groups their sender may not name, refused whole.
FORBIDDEN_GROUPS = [
    ("t.art", G(STUDENTS, "6B")),  # not her class
    ("t.art", G(PARENTS, "2A")),
    ("t.math", G(TEAM, "2A")),
    ("s.cpe", G(STUDENTS, "9Z")),  # no such class
    ("st.6a1", G(STUDENTS, "6A")),  # students and parents name people one by one
    ("p.6a1", G(PARENTS, "6A")),  # even a delegate (G8 broadcasts are for that)
]


@pytest.mark.parametrize(("sender", "group"), FORBIDDEN_GROUPS)
def test_forbidden_group_refuses_the_start(sender: str, group: Group) -> None:
    decision, expansion = standard_school().gatekeeper().check_group_start(
        U(sender), [U("s.cpe")] if sender != "s.cpe" else [U("s.adm")], [group], OPEN)
    assert decision.code is ErrorCode.RECIPIENT_NOT_ALLOWED
    assert expansion.included == ()


def test_one_forbidden_individual_still_refuses_the_whole_start() -> None:
    decision, _ = standard_school().gatekeeper().check_group_start(
        U("t.art"), [U("st.6b1")], [G(STUDENTS, "6A")], OPEN)
    assert decision.code is ErrorCode.RECIPIENT_NOT_ALLOWED


def test_people_picked_one_by_one_are_not_repeated_among_the_included() -> None:
    decision, expansion = standard_school().gatekeeper().check_group_start(
        U("t.math"), [U("st.6a1"), U("s.cpe")], [G(STUDENTS, "6A")], OPEN)
    assert decision.allowed
    assert expansion.included == (U("st.6a2"), U("st.6a3"))


def test_precedence_before_groups() -> None:
    b = standard_school().switch_off("teachers")
    decision, _ = b.gatekeeper().check_group_start(U("t.math"), [], [G(STUDENTS, "6A")], OPEN)
    assert decision.code is ErrorCode.PROFILE_DISABLED
    gk = standard_school().gatekeeper()
    decision, _ = gk.check_group_start(U("t.math"), [], [G(STUDENTS, "6A")], CLOSED)
    assert decision.code is ErrorCode.OUTSIDE_HOURS
    decision, expansion = standard_school().defer().gatekeeper().check_group_start(
        U("t.math"), [], [G(STUDENTS, "6A")], CLOSED)
    assert decision.allowed
    assert decision.hold_until == NEXT_OPENING
    assert len(expansion.included) == 3


def test_addressable_groups() -> None:
    gk = standard_school().gatekeeper()
    assert gk.groups(U("t.art")) == (G(STUDENTS, "6A"), G(PARENTS, "6A"), G(TEAM, "6A"))
    assert {g.class_id for g in gk.groups(U("s.cpe"))} == {"6A", "6B", "2A"}
    assert gk.groups(U("st.6a1")) == ()
    assert gk.groups(U("p.6a1")) == ()
    assert gk.groups(U("ghost")) == ()


# ------------------------------------------------------------------ the property


@st.composite
def group_starts(draw: st.DrawFn) -> tuple[World, UserId, list[Group]]:
    world = draw(worlds())
    users = world.state.directory.users
    sender = draw(st.sampled_from(sorted(users)))
    classes = sorted(world.state.directory.classes)
    groups = draw(st.lists(st.builds(Group, st.sampled_from(list(GroupKind)),
                                     st.sampled_from(classes)), min_size=1, max_size=3))
    return world, sender, groups


class TestNobodyReachedThroughAGroupWhoCouldNotBeReachedAlone:
    """Issue 11: "no student is reached through a group who could not be reached alone"
    (and the same for parents and teachers)."""

    @PROPERTY_SETTINGS
    @given(group_starts())
    def test_each_included_member_could_be_started_with_alone(
            self, case: tuple[World, UserId, list[Group]]) -> None:
        world, sender, groups = case
        gk = Gatekeeper(world.state)
        decision, expansion = gk.check_group_start(sender, [], groups, world.now)
        if not decision.allowed:
            assert expansion.included == ()
            return
        for y in expansion.included:
            alone = gk.check_start(sender, [y], world.now)
            assert alone.allowed, (y, alone)
            assert alone.hold_until == decision.hold_until

    @PROPERTY_SETTINGS
    @given(group_starts())
    def test_students_and_parents_written_out_independently(
            self, case: tuple[World, UserId, list[Group]]) -> None:
        """The rule for students and parents restated from SPEC §3 without the gatekeeper:
        a switched-on member of a class the sender (teacher or staff) may address."""
        world, sender, groups = case
        users = world.state.directory.users
        off = world.state.settings.disabled_profiles
        x = users[sender]
        expansion = Gatekeeper(world.state).expand_groups(sender, groups)
        for y_id in expansion.included:
            y = users[y_id]
            assert y.profile not in off
            assert x.role in (Role.TEACHER, Role.STAFF)
            if y.role is Role.STUDENT:
                assert x.role is Role.STAFF or y.class_id in x.teaches
            elif y.role is Role.PARENT:
                classes = {users[c].class_id for c in y.children if c in users}
                assert x.role is Role.STAFF or classes & x.teaches

    @PROPERTY_SETTINGS
    @given(group_starts())
    def test_every_member_is_included_or_left_out_with_a_reason(
            self, case: tuple[World, UserId, list[Group]]) -> None:
        world, sender, groups = case
        gk = Gatekeeper(world.state)
        expansion = gk.expand_groups(sender, groups)
        users = world.state.directory.users
        members = set()
        for g in groups:
            for uid, u in users.items():
                if g.kind is STUDENTS and u.role is Role.STUDENT:
                    if u.class_id == g.class_id:
                        members.add(uid)
                elif g.kind is PARENTS and u.role is Role.PARENT:
                    if any(c in users and users[c].class_id == g.class_id for c in u.children):
                        members.add(uid)
                elif g.kind is TEAM and u.role is Role.TEACHER and g.class_id in u.teaches:
                    members.add(uid)
        members.discard(sender)
        if not set(groups) <= set(gk.groups(sender)):
            members = set()  # a group they may not name: nobody, whoever is in it
        assert set(expansion.included) | set(expansion.left_out) == members
        assert not set(expansion.included) & set(expansion.left_out)
        for y, code in expansion.left_out.items():
            assert not gk.may_start(sender, y)
            assert code in (ErrorCode.PROFILE_DISABLED, ErrorCode.RECIPIENT_NOT_ALLOWED)
