"""G8 broadcasts and polls (cast: ``school.standard_school``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta

import pytest

from server.errors import ErrorCode
from server.gatekeeper import ALLOW, BroadcastTarget
from server.gatekeeper.broadcast import may_broadcast_to
from server.gatekeeper.index import SchoolIndex
from server.model import ClassId, Role, UserId

from .school import CLOSED, NEXT_OPENING, OPEN, SchoolBuilder, U, standard_school

Setup = Callable[[SchoolBuilder], object]

S, P, T, F = Role.STUDENT, Role.PARENT, Role.TEACHER, Role.STAFF


def target(
    roles: Iterable[Role] = (), classes: Iterable[str] | None = None, users: Iterable[str] = ()
) -> BroadcastTarget:
    return BroadcastTarget(
        roles=frozenset(roles),
        classes=None if classes is None else frozenset(map(ClassId, classes)),
        users=frozenset(map(UserId, users)),
    )


def nothing(b: SchoolBuilder) -> None:
    """Default settings."""


def delegate_ready(b: SchoolBuilder) -> None:
    """Parent messaging on; the 6A delegate and one other 6A parent opted in."""
    b.parent_messaging().opt_in("p.6a1", "p.6a2")


ALL_STUDENTS = ["st.2a1", "st.6a1", "st.6a2", "st.6a3", "st.6b1"]


class TestBroadcast:
    """G8: "Staff to anyone; teachers to the students and/or parents of classes they teach; a
    delegate parent to the opted-in parents of their class, only with parent_messaging_enabled."

    Clarification: "Delegates broadcasting must have opted in themselves; 'the parents of the
    class' are the parents with a child in it."
    """

    CASES: tuple[tuple[str, BroadcastTarget, Setup, ErrorCode | None, list[str]], ...] = (
        # Staff: anyone, sender left out.
        ("s.cpe", target({S}), nothing, None, ALL_STUDENTS),
        ("s.cpe", target({F}), nothing, None, ["s.adm"]),
        ("s.cpe", target({T}, {"6A"}), nothing, None, ["t.art", "t.math"]),
        ("s.cpe", target({F}, {"6A"}), nothing, None, []),  # staff belong to no class
        ("s.cpe", target({P}, {"6B"}), nothing, None, ["p.6b1", "p.two"]),
        ("s.cpe", target(users={"t.hist", "p.2a1", "s.cpe"}), nothing, None, ["p.2a1", "t.hist"]),
        ("s.cpe", target(users={"nobody"}), nothing, ErrorCode.BROADCAST_NOT_ALLOWED, []),
        ("s.adm", target({S}, {"2A"}), nothing, None, ["st.2a1"]),
        # Teacher: students and/or parents of classes she teaches.
        ("t.math", target({S}, {"6A"}), nothing, None, ["st.6a1", "st.6a2", "st.6a3"]),
        (
            "t.math",
            target({S, P}, {"6B"}),
            nothing,
            None,
            ["p.6b1", "p.two", "st.6b1"],
        ),
        (
            "t.math",
            target({P}, {"6A", "6B"}),
            nothing,
            None,
            ["p.6a1", "p.6a2", "p.6a3", "p.6b1", "p.two"],
        ),
        ("t.math", target(users={"st.6b1", "p.6a3"}), nothing, None, ["p.6a3", "st.6b1"]),
        ("t.math", target({S}), nothing, ErrorCode.BROADCAST_NOT_ALLOWED, []),  # whole school
        ("t.math", target({S}, {"6A", "2A"}), nothing, ErrorCode.BROADCAST_NOT_ALLOWED, []),
        ("t.math", target({T}, {"6A"}), nothing, ErrorCode.BROADCAST_NOT_ALLOWED, []),
        ("t.math", target({F}), nothing, ErrorCode.BROADCAST_NOT_ALLOWED, []),
        ("t.math", target(users={"st.2a1"}), nothing, ErrorCode.BROADCAST_NOT_ALLOWED, []),
        ("t.math", target(users={"t.art"}), nothing, ErrorCode.BROADCAST_NOT_ALLOWED, []),
        ("t.art", target({P}, {"6B"}), nothing, ErrorCode.BROADCAST_NOT_ALLOWED, []),
        # Delegate parent: the opted-in parents of their class.
        ("p.6a1", target({P}, {"6A"}), delegate_ready, None, ["p.6a2"]),
        ("p.6a1", target({P}, {"6A"}), nothing, ErrorCode.PARENT_MESSAGING_DISABLED, []),
        (
            "p.6a1",
            target({P}, {"6A"}),
            lambda b: b.parent_messaging().opt_in("p.6a2"),
            ErrorCode.NOT_OPTED_IN,
            [],
        ),
        (
            "p.6a1",
            target({P}, {"6A"}),
            lambda b: b.opt_in("p.6a1", "p.6a2"),
            ErrorCode.PARENT_MESSAGING_DISABLED,
            [],
        ),
        ("p.6a1", target(users={"p.6a2"}), delegate_ready, None, ["p.6a2"]),
        # A parent of the class who did not opt in: the same answer as a stranger (no oracle).
        ("p.6a1", target(users={"p.6a3"}), delegate_ready, ErrorCode.BROADCAST_NOT_ALLOWED, []),
        ("p.6a1", target(users={"p-0042"}), delegate_ready, ErrorCode.BROADCAST_NOT_ALLOWED, []),
        ("p.6a1", target({P}, {"6B"}), delegate_ready, ErrorCode.BROADCAST_NOT_ALLOWED, []),
        ("p.6a1", target({P}), delegate_ready, ErrorCode.BROADCAST_NOT_ALLOWED, []),
        ("p.6a1", target({S}, {"6A"}), delegate_ready, ErrorCode.BROADCAST_NOT_ALLOWED, []),
        ("p.6a1", target(users={"p.6b1"}), delegate_ready, ErrorCode.BROADCAST_NOT_ALLOWED, []),
        ("p.6a1", target(users={"st.6a1"}), delegate_ready, ErrorCode.BROADCAST_NOT_ALLOWED, []),
        # Students and non-delegate parents: never.
        ("st.6a1", target({S}, {"6A"}), nothing, ErrorCode.BROADCAST_NOT_ALLOWED, []),
        ("st.6a1", target(users={"t.math"}), nothing, ErrorCode.BROADCAST_NOT_ALLOWED, []),
        ("p.6a2", target({P}, {"6A"}), delegate_ready, ErrorCode.BROADCAST_NOT_ALLOWED, []),
        ("p.two", target(users={"p.6b1"}), delegate_ready, ErrorCode.BROADCAST_NOT_ALLOWED, []),
        # A target with no audience at all is malformed.
        ("s.cpe", target(classes={"6A"}), nothing, ErrorCode.BAD_REQUEST, []),
    )

    @pytest.mark.parametrize(("sender", "to", "setup", "code", "expected"), CASES)
    def test_broadcast(
        self,
        sender: str,
        to: BroadcastTarget,
        setup: Setup,
        code: ErrorCode | None,
        expected: list[str],
    ) -> None:
        school = standard_school()
        setup(school)
        decision, recipients = school.gatekeeper().check_broadcast(U(sender), to, OPEN)
        assert decision.code is code
        assert recipients == tuple(U(r) for r in expected)

    def test_switched_off_recipients_are_left_out(self, school: SchoolBuilder) -> None:
        gk = school.switch_off("students-lycee").gatekeeper()
        decision, recipients = gk.check_broadcast(U("s.cpe"), target({S}), OPEN)
        assert decision == ALLOW
        assert U("st.2a1") not in recipients
        decision, recipients = gk.check_broadcast(U("s.cpe"), target(users={"st.2a1"}), OPEN)
        assert (decision, recipients) == (ALLOW, ())

    def test_switched_off_sender(self, school: SchoolBuilder) -> None:
        gk = school.switch_off("vie-scolaire").gatekeeper()
        assert gk.check_broadcast(U("s.cpe"), target({S}), OPEN)[0].code is (
            ErrorCode.PROFILE_DISABLED
        )

    def test_outside_hours(self, school: SchoolBuilder) -> None:
        decision, recipients = school.gatekeeper().check_broadcast(
            U("t.math"), target({S}, {"6A"}), CLOSED
        )
        assert decision.code is ErrorCode.OUTSIDE_HOURS
        assert decision.retry_at == NEXT_OPENING
        assert recipients == ()

    def test_defer_mode_holds_broadcasts(self, school: SchoolBuilder) -> None:
        gk = school.defer().gatekeeper()
        decision, recipients = gk.check_broadcast(U("t.math"), target({S}, {"6A"}), CLOSED)
        assert decision.allowed
        assert decision.hold_until == NEXT_OPENING
        assert recipients == (U("st.6a1"), U("st.6a2"), U("st.6a3"))
        refused, _ = gk.check_broadcast(U("st.6a1"), target({S}, {"6A"}), CLOSED)
        assert refused.code is ErrorCode.BROADCAST_NOT_ALLOWED


class TestVote:
    """G8 polls: "one vote per recipient (changeable until the deadline)"; G3: nobody votes
    outside the window; Clarification: "invitations and votes outside the window stay refused"
    (defer mode included); extra code ``poll_closed``.
    """

    DEADLINE = OPEN + timedelta(hours=1)

    @pytest.mark.parametrize(
        ("now", "code"),
        [
            (OPEN, None),
            (DEADLINE - timedelta(microseconds=1), None),
            (DEADLINE, ErrorCode.POLL_CLOSED),
            (DEADLINE + timedelta(minutes=1), ErrorCode.POLL_CLOSED),
        ],
    )
    @pytest.mark.parametrize("voter", ["st.6a1", "p.6a2", "t.art", "s.adm"])
    def test_deadline(self, school: SchoolBuilder, voter: str, now: object, code: object) -> None:
        assert school.gatekeeper().check_vote(U(voter), self.DEADLINE, now).code is code  # type: ignore[arg-type]

    @pytest.mark.parametrize("defer", [False, True])
    def test_outside_hours_refused(self, school: SchoolBuilder, defer: bool) -> None:
        if defer:
            school.defer()
        decision = school.gatekeeper().check_vote(U("st.6a1"), CLOSED + timedelta(days=3), CLOSED)
        assert decision.code is ErrorCode.OUTSIDE_HOURS
        assert decision.retry_at == NEXT_OPENING

    @pytest.mark.parametrize(
        ("setup", "voter", "code"),
        [
            (lambda b: b.set(discussions_enabled=False), "st.6a1", ErrorCode.DISCUSSIONS_DISABLED),
            (lambda b: b.switch_off("students-college"), "st.6a1", ErrorCode.PROFILE_DISABLED),
            (nothing, "nobody", ErrorCode.UNAUTHENTICATED),
        ],
    )
    def test_switches(self, setup: Setup, voter: str, code: ErrorCode) -> None:
        school = standard_school()
        setup(school)
        assert school.gatekeeper().check_vote(U(voter), self.DEADLINE, OPEN).code is code


class TestPerRecipientPredicate:
    """G8 per recipient (``may_broadcast_to``): students and non-delegate parents reach nobody."""

    @pytest.mark.parametrize(
        ("sender", "y", "expected"),
        [
            ("s.cpe", "st.2a1", True),
            ("s.cpe", "s.cpe", False),
            ("s.cpe", "nobody", False),
            ("t.math", "p.two", True),
            ("t.math", "t.art", False),
            ("p.6a1", "p.6a2", True),
            ("p.6a1", "p.6a3", False),  # not opted in
            ("p.6a2", "p.6a1", False),  # not a delegate
            ("st.6a1", "st.6a2", False),
            ("st.6a1", "t.math", False),
        ],
    )
    def test_may_broadcast_to(self, sender: str, y: str, expected: bool) -> None:
        school = standard_school()
        delegate_ready(school)
        index = SchoolIndex(school.state())
        assert may_broadcast_to(index, school.users[U(sender)], U(y)) is expected


class TestDelegateWithoutAChildInTheClass:
    """SPEC "A delegate need not have a child in the class they represent": p.del, whose
    only child is in 2A, is a class-council delegate of 6A; G8 treats them as 6A's."""

    @staticmethod
    def school() -> SchoolBuilder:
        b = standard_school()
        b.parent("p.del", "Rose Blanc", children=("st.2a1",), delegate_of=("6A",))
        return b.parent_messaging().opt_in("p.del", "p.6a1", "p.6a2")

    def test_broadcasts_to_the_opted_in_parents_of_the_class(self) -> None:
        gk = self.school().gatekeeper()
        decision, recipients = gk.check_broadcast(U("p.del"), target({P}, {"6A"}), OPEN)
        assert decision == ALLOW
        assert recipients == ("p.6a1", "p.6a2")  # p.6a3 has not opted in
        scope = gk.broadcast_scope(U("p.del"))[1]
        assert scope is not None
        assert scope.classes == frozenset({ClassId("6A")})

    def test_not_to_the_class_of_their_own_child(self) -> None:
        gk = self.school().opt_in("p.2a1").gatekeeper()
        decision, _ = gk.check_broadcast(U("p.del"), target({P}, {"2A"}), OPEN)
        assert decision.code is ErrorCode.BROADCAST_NOT_ALLOWED
        decision, _ = gk.check_broadcast(U("p.del"), target(users={"p.2a1"}), OPEN)
        assert decision.code is ErrorCode.BROADCAST_NOT_ALLOWED

    def test_needs_parent_messaging(self) -> None:
        gk = self.school().parent_messaging(False).gatekeeper()
        decision, _ = gk.check_broadcast(U("p.del"), target({P}, {"6A"}), OPEN)
        assert decision.code is ErrorCode.PARENT_MESSAGING_DISABLED
