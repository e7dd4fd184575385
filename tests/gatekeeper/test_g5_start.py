"""G4 initiation and G5 who may start a discussion with whom (cast: ``school.standard_school``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from server.errors import ErrorCode
from server.gatekeeper import ALLOW
from server.model import Role

from .school import CLOSED, NEXT_OPENING, OPEN, SchoolBuilder, U, standard_school

Setup = Callable[[SchoolBuilder], object]


def nothing(b: SchoolBuilder) -> None:
    """Default settings and preferences."""


def accepts(teacher: str, **changes: object) -> Setup:
    return lambda b: b.accepts(teacher, **changes)


def all_prefs_off(b: SchoolBuilder) -> None:
    """Every preference at its most restrictive: it must not matter for staff recipients."""
    for uid, user in b.users.items():
        if user.role is Role.TEACHER:
            b.accepts(uid, students=False, parents=False, teachers=False, staff=False)
        elif user.role is Role.STUDENT:
            b.cannot_initiate(uid)
        else:
            b.opt_in(uid, on=False)
    b.parent_messaging(False)


# (X, Y, setup, may X start with Y?) — every cell of the table, each way round.
G5_TABLE = [
    # teacher row
    ("t.math", "t.hist", nothing, True),
    ("t.math", "t.hist", accepts("t.hist", teachers=False), False),
    ("t.hist", "t.math", accepts("t.hist", teachers=False), True),  # her prefs limit others only
    ("t.math", "t.hist", accepts("t.hist", staff=False, students=False, parents=False), True),
    ("t.math", "s.cpe", nothing, True),
    ("t.math", "st.6a1", nothing, True),
    ("t.math", "st.6b1", nothing, True),
    ("t.math", "st.2a1", nothing, False),
    ("t.art", "st.6b1", nothing, False),
    ("t.math", "st.6a1", accepts("t.math", students=False), True),  # never whom she contacts
    ("t.math", "p.6a1", nothing, True),
    ("t.math", "p.two", nothing, True),  # one child in 6B
    ("t.hist", "p.two", nothing, True),  # the other child in 2A
    ("t.art", "p.two", nothing, False),
    ("t.hist", "p.6a1", nothing, False),
    ("t.math", "p.6a1", accepts("t.math", parents=False), True),
    # staff row
    ("s.cpe", "t.math", nothing, True),
    ("s.cpe", "t.math", accepts("t.math", staff=False), False),
    ("s.cpe", "t.math", accepts("t.math", teachers=False), True),
    ("s.cpe", "s.adm", nothing, True),
    ("s.adm", "s.cpe", nothing, True),
    ("s.cpe", "st.2a1", nothing, True),
    ("s.cpe", "st.6a1", lambda b: b.cannot_initiate("st.6a1"), True),
    ("s.cpe", "p.2a1", nothing, True),
    # student row
    ("st.6a1", "t.math", nothing, True),
    ("st.6a1", "t.math", accepts("t.math", students=False), False),
    ("st.6a1", "t.math", accepts("t.math", students={"6A"}), True),
    ("st.6a1", "t.math", accepts("t.math", students={"6B"}), False),
    ("st.6b1", "t.math", accepts("t.math", students={"6B"}), True),
    ("st.6a1", "t.math", accepts("t.math", students=set()), False),
    ("st.6a1", "t.math", accepts("t.math", parents=False, teachers=False, staff=False), True),
    ("st.2a1", "t.math", nothing, False),  # not taught by her, whatever she accepts
    ("st.6a1", "s.cpe", nothing, True),
    ("st.6a1", "st.6a2", nothing, False),
    ("st.6a1", "st.2a1", nothing, False),
    ("st.6a1", "p.6a1", nothing, False),  # not even one's own parent
    ("st.6a1", "p.6b1", nothing, False),
    # parent row
    ("p.6a1", "t.math", nothing, True),
    ("p.6a1", "t.math", accepts("t.math", parents=False), False),
    ("p.6a1", "t.math", accepts("t.math", parents={"6A"}), True),
    ("p.6a1", "t.math", accepts("t.math", parents={"6B"}), False),
    ("p.6a1", "t.math", accepts("t.math", students=False, teachers=False, staff=False), True),
    ("p.two", "t.math", accepts("t.math", parents={"6B"}), True),
    ("p.two", "t.hist", accepts("t.hist", parents={"2A"}), True),
    # The child t.hist teaches (2A) is not in the classes she accepts parents of.
    ("p.two", "t.hist", accepts("t.hist", parents={"6B"}), False),
    ("p.2a1", "t.math", nothing, False),
    ("p.6a1", "s.cpe", nothing, True),
    ("p.6a1", "st.6a1", nothing, False),  # not even one's own child
    ("p.6a1", "st.6b1", nothing, False),
    ("p.6a2", "p.6a1", nothing, False),  # parent rule: below
]


class TestG5Table:
    """G5 who may start a discussion with whom (X starts, Y is a recipient):

    | X \\ Y  | teacher                   | staff | student            | parent             |
    | teacher | if Y accepts teachers     | yes   | Y in a class X     | a child of Y in a  |
    |         |                           |       | teaches            | class X teaches    |
    | staff   | if Y accepts staff        | yes   | yes                | yes                |
    | student | X's class is taught by Y  | yes   | no                 | no                 |
    |         | and Y accepts students    |       |                    |                    |
    | parent  | a child of X is taught by | yes   | no                 | parent rule        |
    |         | Y and Y accepts parents   |       |                    |                    |

    "Accepts students/parents" limited to some classes means: only students of
    those classes, only parents of children in those classes.
    """

    @pytest.mark.parametrize(("x", "y", "setup", "expected"), G5_TABLE)
    def test_cell(self, x: str, y: str, setup: Setup, expected: bool) -> None:
        school = standard_school()
        setup(school)
        gk = school.gatekeeper()
        assert gk.may_start(U(x), U(y)) is expected
        assert (gk.start_refusal(U(x), U(y)) == ALLOW) is expected
        assert (U(y) in {u.id for u in gk.contacts(U(x))}) is expected

    def test_every_role_pair_is_covered(self) -> None:
        roles = {u.id: u.role for u in standard_school().users.values()}
        pairs = {(roles[U(x)], roles[U(y)]) for x, y, _, _ in G5_TABLE}
        assert len(pairs) == 16


class TestStaffAlwaysReachable:
    """G5: "Staff are always reachable" — by everyone, whatever the preferences."""

    @pytest.mark.parametrize("x", sorted(standard_school().users))
    @pytest.mark.parametrize("setup", [nothing, all_prefs_off])
    def test_anyone_to_staff(self, x: str, setup: Setup) -> None:
        school = standard_school()
        setup(school)
        gk = school.gatekeeper()
        for staff in ("s.cpe", "s.adm"):
            assert gk.may_start(U(x), U(staff)) is (x != staff)


class TestRecipientExists:
    """G2: "A user whose profile has discussions off … cannot be chosen as a recipient."

    Unknown ids, users of another school and oneself are never recipients
    either, and all are refused alike (``recipient_not_allowed``).
    """

    def test_switched_off_recipient(self, school: SchoolBuilder) -> None:
        gk = school.switch_off("vie-scolaire", "students-lycee").gatekeeper()
        assert not gk.may_start(U("t.math"), U("s.cpe"))
        assert not gk.may_start(U("s.adm"), U("s.cpe"))
        assert not gk.may_start(U("t.hist"), U("st.2a1"))
        assert gk.may_start(U("s.cpe"), U("s.adm"))  # the sender's own switch is G2 of check_*

    @pytest.mark.parametrize("y", ["nobody", "", "t.math"])
    def test_unknown_or_self(self, school: SchoolBuilder, y: str) -> None:
        gk = school.gatekeeper()
        assert not gk.may_start(U("t.math"), U(y))
        refusal = gk.start_refusal(U("t.math"), U(y))
        assert refusal.code is ErrorCode.RECIPIENT_NOT_ALLOWED
        assert refusal.message == f"Vous ne pouvez pas commencer de discussion avec {y!r}."
        assert dict(refusal.params) == {"user": y}

    def test_other_school(self, school: SchoolBuilder) -> None:
        other = SchoolBuilder("clg-other")
        other.add_class("6A")
        other.staff("o.staff", "Olga Autre")
        other.student("o.6a1", "Oscar Autre", "6A")
        here = school.gatekeeper()
        # Staff reach "anyone" — in their own school only.
        assert not here.may_start(U("s.cpe"), U("o.6a1"))
        assert not here.may_start(U("o.staff"), U("st.6a1"))
        assert here.start_refusal(U("s.cpe"), U("o.6a1")).code is ErrorCode.RECIPIENT_NOT_ALLOWED
        assert here.start_refusal(U("s.cpe"), U("o.6a1")) == here.start_refusal(
            U("s.cpe"), U("o.6a1")
        )

    def test_unknown_sender(self, school: SchoolBuilder) -> None:
        assert not school.gatekeeper().may_start(U("nobody"), U("s.cpe"))


class TestParentRule:
    """G5 parent rule: "only when parent_messaging_enabled, both parents opted in, and either X
    is a delegate of a class where Y has a child, or Y is a delegate of a class where X has a
    child."

    p.6a1 is delegate of 6A, p.6b1 of 6B; p.6a2 has a child in 6A; p.two in 2A and 6B.
    """

    CASES = (
        # (X, Y, parent messaging, opted in, expected code or None)
        ("p.6a2", "p.6a1", False, ("p.6a1", "p.6a2"), ErrorCode.PARENT_MESSAGING_DISABLED),
        ("p.6a1", "p.6a2", False, ("p.6a1", "p.6a2"), ErrorCode.PARENT_MESSAGING_DISABLED),
        ("p.6a2", "p.6a1", True, ("p.6a1", "p.6a2"), None),  # Y delegate of X's child's class
        ("p.6a1", "p.6a2", True, ("p.6a1", "p.6a2"), None),  # X delegate of Y's child's class
        # X has not opted in: X is told so (X's own choice).
        ("p.6a2", "p.6a1", True, ("p.6a1",), ErrorCode.NOT_OPTED_IN),
        ("p.6a1", "p.6a2", True, ("p.6a2",), ErrorCode.NOT_OPTED_IN),
        ("p.6a1", "p.6a2", True, (), ErrorCode.NOT_OPTED_IN),
        # Only Y has not opted in: Y's choice is not told, the answer is an unknown id's.
        ("p.6a2", "p.6a1", True, ("p.6a2",), ErrorCode.RECIPIENT_NOT_ALLOWED),
        ("p.6a1", "p.6a2", True, ("p.6a1",), ErrorCode.RECIPIENT_NOT_ALLOWED),
        ("p.two", "p.6b1", True, ("p.two", "p.6b1"), None),
        ("p.6b1", "p.two", True, ("p.two", "p.6b1"), None),
        # Delegate of another class: no link, and opting in would not help.
        ("p.2a1", "p.6b1", True, ("p.2a1", "p.6b1"), ErrorCode.RECIPIENT_NOT_ALLOWED),
        ("p.6b1", "p.6a2", True, ("p.6a2", "p.6b1"), ErrorCode.RECIPIENT_NOT_ALLOWED),
        ("p.6a1", "p.6b1", True, ("p.6a1", "p.6b1"), ErrorCode.RECIPIENT_NOT_ALLOWED),
        ("p.6a1", "p.6b1", True, (), ErrorCode.RECIPIENT_NOT_ALLOWED),
        # Neither is a delegate.
        ("p.6a2", "p.6a3", True, ("p.6a2", "p.6a3"), ErrorCode.RECIPIENT_NOT_ALLOWED),
        # Without a link the school's switch is not the reason: an unknown id's answer.
        ("p.6a2", "p.6a3", False, ("p.6a2", "p.6a3"), ErrorCode.RECIPIENT_NOT_ALLOWED),
        ("p.6a2", "p.6a3", False, (), ErrorCode.RECIPIENT_NOT_ALLOWED),
    )

    @pytest.mark.parametrize(("x", "y", "enabled", "opted", "code"), CASES)
    def test_parent_rule(
        self, x: str, y: str, enabled: bool, opted: tuple[str, ...], code: ErrorCode | None
    ) -> None:
        gk = standard_school().parent_messaging(enabled).opt_in(*opted).gatekeeper()
        assert gk.may_start(U(x), U(y)) is (code is None)
        assert gk.start_refusal(U(x), U(y)).code is code

    @pytest.mark.parametrize("enabled", [False, True])
    @pytest.mark.parametrize("opted", [(), ("p.6a2",), ("p.6a2", "p.6a3")])
    def test_no_oracle_between_a_parent_and_an_unknown_id(
        self, enabled: bool, opted: tuple[str, ...]
    ) -> None:
        """SPEC "Refusals reveal nothing": a parent without a delegate link to Y learns
        neither that Y is a parent nor Y's choice, whatever the switches."""
        gk = standard_school().parent_messaging(enabled).opt_in(*opted).gatekeeper()
        unknown = gk.start_refusal(U("p.6a2"), U("p-0042"))
        for y in ("p.6a3", "p.2a1", "p.two"):
            refusal = gk.start_refusal(U("p.6a2"), U(y))
            assert refusal.code is unknown.code is ErrorCode.RECIPIENT_NOT_ALLOWED
            decision = gk.check_start(U("p.6a2"), [U(y)], OPEN)
            assert decision.code is gk.check_start(U("p.6a2"), [U("p-0042")], OPEN).code

    def test_a_delegates_refusal_does_not_tell_another_parents_choice(self) -> None:
        """A delegate who opted in cannot tell "did not opt in" from "not a parent"."""
        gk = standard_school().parent_messaging().opt_in("p.6a1").gatekeeper()
        not_opted = gk.check_start(U("p.6a1"), [U("p.6a2")], OPEN)
        unknown = gk.check_start(U("p.6a1"), [U("p-0042")], OPEN)
        assert not_opted.code is unknown.code is ErrorCode.RECIPIENT_NOT_ALLOWED

    def test_a_child_who_left_the_directory_links_nothing(self) -> None:
        school = standard_school().parent_messaging().opt_in("p.6a1", "p.6a2")
        assert school.gatekeeper().may_start(U("p.6a2"), U("p.6a1"))
        gk = school.remove("st.6a2").gatekeeper()
        assert not gk.may_start(U("p.6a2"), U("p.6a1"))
        assert not gk.may_start(U("p.6a2"), U("t.math"))


class TestDelegateWithoutAChildInTheClass:
    """SPEC "A delegate need not have a child in the class they represent": p.del, whose
    only child is in 2A, is a class-council delegate of 6A; the parent rule treats them as
    6A's delegate, both ways."""

    @staticmethod
    def school() -> SchoolBuilder:
        b = standard_school()
        b.parent("p.del", "Rose Blanc", children=("st.2a1",), delegate_of=("6A",))
        return b.parent_messaging()

    @pytest.mark.parametrize(("x", "y"), [("p.del", "p.6a2"), ("p.6a2", "p.del")])
    def test_writes_to_and_hears_from_the_parents_of_the_class(self, x: str, y: str) -> None:
        gk = self.school().opt_in("p.del", "p.6a2").gatekeeper()
        assert gk.may_start(U(x), U(y))
        assert gk.check_start(U(x), [U(y)], OPEN) == ALLOW

    @pytest.mark.parametrize(("x", "y"), [("p.del", "p.6a2"), ("p.6a2", "p.del")])
    def test_only_when_both_opted_in(self, x: str, y: str) -> None:
        gk = self.school().opt_in("p.del").gatekeeper()
        assert not gk.may_start(U(x), U(y))

    def test_not_the_parents_of_another_class(self) -> None:
        gk = self.school().opt_in("p.del", "p.6b1").gatekeeper()
        assert not gk.may_start(U("p.del"), U("p.6b1"))
        assert not gk.may_start(U("p.6b1"), U("p.del"))

    def test_a_delegate_does_not_reach_the_teachers_of_the_class(self) -> None:
        # Representing a class is not having a child taught there (G5 parent → teacher).
        gk = self.school().gatekeeper()
        assert not gk.may_start(U("p.del"), U("t.art"))  # teaches 6A only
        assert gk.may_start(U("p.del"), U("t.hist"))  # teaches 2A, the child's class


class TestCheckStart:
    """G4 "a student with can_initiate = false cannot start one", then G5 for every recipient:
    "A start with one forbidden recipient is refused whole and creates nothing."
    """

    @pytest.mark.parametrize(
        ("x", "recipients", "setup", "code"),
        [
            ("t.math", ["st.6a1", "p.6a1", "s.cpe"], nothing, None),
            ("t.math", ["st.6a1"], lambda b: b.prefs("t.math", can_initiate=False), None),
            ("s.cpe", ["st.2a1", "t.math", "p.6b1"], nothing, None),
            ("st.6a1", ["t.math", "t.art"], nothing, None),
            (
                "st.6a1",
                ["t.math"],
                lambda b: b.cannot_initiate("st.6a1"),
                ErrorCode.CANNOT_INITIATE,
            ),
            ("st.6a1", ["s.cpe"], lambda b: b.cannot_initiate("st.6a1"), ErrorCode.CANNOT_INITIATE),
            ("st.6a2", ["t.math"], lambda b: b.cannot_initiate("st.6a1"), None),
            ("p.6a1", ["t.math", "s.cpe"], nothing, None),
            ("p.6a1", ["t.math", "t.math", "t.math"], nothing, None),  # duplicates ignored
            ("t.math", [], nothing, ErrorCode.BAD_REQUEST),
            ("t.math", ["st.6a1", "t.math"], nothing, ErrorCode.BAD_REQUEST),
            ("t.math", ["st.6a1", "st.2a1", "s.cpe"], nothing, ErrorCode.RECIPIENT_NOT_ALLOWED),
            ("st.6a1", ["t.math", "st.6a2"], nothing, ErrorCode.RECIPIENT_NOT_ALLOWED),
            ("p.6a2", ["t.math", "p.6a1"], nothing, ErrorCode.PARENT_MESSAGING_DISABLED),
            ("p.6a2", ["p.6a1"], lambda b: b.parent_messaging(), ErrorCode.NOT_OPTED_IN),
        ],
    )
    def test_check_start(
        self, x: str, recipients: list[str], setup: Setup, code: ErrorCode | None
    ) -> None:
        school = standard_school()
        setup(school)
        decision = school.gatekeeper().check_start(U(x), [U(r) for r in recipients], OPEN)
        assert decision.code is code
        assert decision.allowed is (code is None)
        assert decision.hold_until is None

    def test_the_forbidden_recipient_is_named_by_id(self, school: SchoolBuilder) -> None:
        decision = school.gatekeeper().check_start(
            U("t.math"), [U("st.6a1"), U("st.2a1"), U("nobody")], OPEN
        )
        assert decision.message == "Vous ne pouvez pas commencer de discussion avec 'st.2a1'."
        assert dict(decision.params) == {"user": "st.2a1"}

    def test_defer_mode_holds_the_first_message(self, school: SchoolBuilder) -> None:
        gk = school.defer().gatekeeper()
        decision = gk.check_start(U("st.6a1"), [U("t.math")], CLOSED)
        assert decision.allowed
        assert decision.hold_until == NEXT_OPENING
        # Held, but only if it would be allowed at all.
        assert gk.check_start(U("st.6a1"), [U("st.6a2")], CLOSED).code is (
            ErrorCode.RECIPIENT_NOT_ALLOWED
        )

    def test_refuse_mode_says_when_it_opens(self, school: SchoolBuilder) -> None:
        decision = school.gatekeeper().check_start(U("st.6a1"), [U("t.math")], CLOSED)
        assert decision.code is ErrorCode.OUTSIDE_HOURS
        assert decision.retry_at == NEXT_OPENING
        assert "rouvrent le mer. 13 mai à 07:00 (Europe/Paris)" in decision.message
        assert dict(decision.params) == {"opens_at": "2026-05-13T05:00:00Z", "start": "07:00",
                                         "end": "20:00", "timezone": "Europe/Paris"}


class TestContacts:
    """G4 and G5 as a list: whom may this user start a discussion with?"""

    def test_student_contacts_sorted_by_name(self, school: SchoolBuilder) -> None:
        gk = school.gatekeeper()
        names = [u.display_name for u in gk.contacts(U("st.6a1"))]
        assert names == ["Marie Curie", "Anne Dubois", "Paul Martin", "Claude Monet"]

    def test_contacts_are_exactly_may_start(self, school: SchoolBuilder) -> None:
        gk = school.parent_messaging().opt_in("p.6a1", "p.6a2").gatekeeper()
        for x in school.users:
            listed = [u.id for u in gk.contacts(x)]
            assert listed == [
                u.id
                for u in sorted(
                    school.users.values(), key=lambda u: (u.last_name, u.first_name, u.id)
                )
                if gk.may_start(x, u.id)
            ]
        # Bernard (the delegate), Curie, Dubois, Martin, Monet.
        assert [u.id for u in gk.contacts(U("p.6a2"))] == [
            "p.6a1",
            "t.math",
            "s.cpe",
            "s.adm",
            "t.art",
        ]

    def test_unknown_user_has_no_contacts(self, school: SchoolBuilder) -> None:
        assert school.gatekeeper().contacts(U("nobody")) == ()

    @pytest.mark.parametrize(
        ("x", "setup", "code"),
        [
            ("t.math", nothing, None),
            ("s.cpe", nothing, None),
            ("p.6a2", nothing, None),
            ("st.6a1", nothing, None),
            ("st.6a1", lambda b: b.cannot_initiate("st.6a1"), ErrorCode.CANNOT_INITIATE),
            ("nobody", nothing, ErrorCode.UNAUTHENTICATED),
            ("t.math", lambda b: b.set(discussions_enabled=False), ErrorCode.DISCUSSIONS_DISABLED),
            ("t.math", lambda b: b.switch_off("teachers"), ErrorCode.PROFILE_DISABLED),
        ],
    )
    def test_check_contacts(self, x: str, setup: Setup, code: ErrorCode | None) -> None:
        school = standard_school()
        setup(school)
        assert school.gatekeeper().check_contacts(U(x)).code is code
