"""G6 in a discussion, everyone sees every message (cast: ``school.standard_school``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from server.errors import ErrorCode
from server.gatekeeper import ALLOW, Gatekeeper
from server.model import DiscussionMembers

from .school import CLOSED, NEXT_OPENING, OPEN, SchoolBuilder, U, joined, left, members

Setup = Callable[[SchoolBuilder], object]


def posters(gk: Gatekeeper, m: DiscussionMembers) -> set[str]:
    return set(gk.posters(m))


def assert_consistent(gk: Gatekeeper, m: DiscussionMembers) -> None:
    """posters, blockers and check_send tell the same story for every present participant."""
    for p in m.present():
        uid = p.user_id
        blocked = gk.blockers(uid, m)
        decision = gk.check_send(uid, m, OPEN)
        if uid in gk.recipients(m):
            assert (uid in gk.posters(m)) is (not blocked)
            assert decision.allowed is (not blocked)
        else:
            assert uid not in gk.posters(m)
            assert not decision.allowed


class TestSupervision:
    """G6: "X may post only if, for every other present participant Y, the pair may talk: G5
    holds in either direction (a student may answer the teacher who wrote to them), or both X
    and Y were brought in by a teacher or staff member who is still present … When that
    supervisor leaves, unsupervised pairs can no longer post there."

    Clarification: "Supervision is literal … Supervision is not handed over … Two people each
    brought in by a different supervisor are fine while both supervisors stay."
    """

    CASES = (
        pytest.param(
            [joined("t.math"), joined("st.6a1", "t.math"), joined("st.6a2", "t.math")],
            {"t.math", "st.6a1", "st.6a2"},
            id="teacher-brings-two-students",
        ),
        pytest.param(
            [left("t.math"), joined("st.6a1", "t.math"), joined("st.6a2", "t.math")],
            set(),
            id="teacher-leaves",
        ),
        pytest.param(
            [
                joined("t.math"),
                joined("st.6a1", "t.math"),
                joined("st.6a2", "t.math"),
                joined("t.art", "t.math"),
            ],
            {"t.math", "t.art", "st.6a1", "st.6a2"},
            id="colleague-joins",
        ),
        pytest.param(
            [
                left("t.math"),
                joined("st.6a1", "t.math"),
                joined("st.6a2", "t.math"),
                joined("t.art", "t.math"),
            ],
            {"t.art"},  # a colleague who stays does not take over supervision
            id="no-handover",
        ),
        pytest.param(
            [joined("s.cpe"), joined("st.6a1", "s.cpe"), joined("st.2a1", "s.cpe")],
            {"s.cpe", "st.6a1", "st.2a1"},
            id="staff-supervises",
        ),
        pytest.param(
            [joined("s.cpe"), joined("st.6a1", "s.cpe"), joined("p.2a1", "s.cpe")],
            {"s.cpe", "st.6a1", "p.2a1"},
            id="staff-brings-student-and-parent",
        ),
        pytest.param(
            [
                joined("t.math"),
                joined("st.6b1", "t.math"),
                joined("t.art", "t.math"),
                joined("st.6a1", "t.art"),
            ],
            {"t.math", "t.art", "st.6b1", "st.6a1"},
            id="two-supervisors-both-present",
        ),
        pytest.param(
            [
                joined("t.math"),
                joined("st.6b1", "t.math"),
                joined("t.art", "t.math"),
                left("st.6a1", "t.art"),
            ],
            {"t.math", "t.art", "st.6b1"},
            id="two-supervisors-a-student-leaves",
        ),
        pytest.param(
            [
                joined("t.math"),
                joined("st.6b1", "t.math"),
                left("t.art", "t.math"),
                joined("st.6a1", "t.art"),
            ],
            {"t.math"},
            id="two-supervisors-one-leaves",
        ),
        pytest.param(
            [
                left("t.math"),
                joined("st.6b1", "t.math"),
                joined("t.art", "t.math"),
                joined("st.6a1", "t.art"),
            ],
            # t.art no longer counts as brought in: she and st.6b1 fail G5 both ways.
            set(),
            id="two-supervisors-the-first-leaves",
        ),
        pytest.param(
            [joined("st.6a1"), joined("t.math", "st.6a1"), joined("st.6a2", "t.math")],
            {"t.math"},  # the student who started it was brought in by nobody
            id="student-started",
        ),
        pytest.param(
            [joined("st.6a1"), joined("t.math", "st.6a1"), joined("t.art", "st.6a1")],
            {"st.6a1", "t.math", "t.art"},
            id="student-started-with-her-teachers",
        ),
        pytest.param(
            [joined("t.math"), joined("st.6a1", "t.math"), joined("p.6a1", "t.math")],
            {"t.math", "st.6a1", "p.6a1"},
            id="teacher-brings-student-and-parent",
        ),
        pytest.param(
            [joined("t.math"), joined("p.6a2", "t.math"), joined("p.6a3", "t.math")],
            {"t.math", "p.6a2", "p.6a3"},
            id="teacher-brings-two-parents",
        ),
        pytest.param(
            [
                joined("t.math"),
                joined("t.hist", "t.math"),
                joined("st.2a1", "t.hist"),
            ],
            # Literal reading: the creator was brought in by nobody and does not
            # teach 2A, so she and t.hist's student fail the pair check.
            {"t.hist"},
            id="creator-and-a-colleagues-student",
        ),
        pytest.param([joined("st.6a1")], {"st.6a1"}, id="alone"),
        pytest.param(
            [joined("st.6a1"), left("t.math", "st.6a1")], {"st.6a1"}, id="alone-after-leave"
        ),
    )

    @pytest.mark.parametrize(("participants", "expected"), CASES)
    def test_posters(
        self, school: SchoolBuilder, participants: list[object], expected: set[str]
    ) -> None:
        m = members(*participants)  # type: ignore[arg-type]
        gk = school.gatekeeper()
        assert posters(gk, m) == expected
        assert_consistent(gk, m)

    def test_refusal_names_the_blockers(self, school: SchoolBuilder) -> None:
        m = members(left("t.math"), joined("st.6a1", "t.math"), joined("st.6a2", "t.math"))
        gk = school.gatekeeper()
        decision = gk.check_send(U("st.6a1"), m, OPEN)
        assert decision.code is ErrorCode.NOT_INVITED_BY_SUPERVISOR
        assert decision.message == ("Le professeur qui vous a invité (Marie Curie) a quitté la "
                                    "discussion : vous ne pouvez plus écrire ici.")
        assert [u["name"] for u in decision.params["users"]] == ["Hugo Petit"]
        assert decision.params["supervisor_left"] == {"id": "t.math", "name": "Marie Curie",
                                                      "role": "teacher"}
        assert gk.blockers(U("st.6a1"), m) == {U("st.6a2")}
        assert gk.blockers(U("st.6a2"), m) == {U("st.6a1")}

    def test_refusal_names_every_blocker(self, school: SchoolBuilder) -> None:
        m = members(
            left("s.cpe"),
            *(joined(s, "s.cpe") for s in ("st.6a1", "st.6a2", "st.6a3", "st.6b1", "st.2a1")),
        )
        decision = school.gatekeeper().check_send(U("st.6a1"), m, OPEN)
        assert [u["name"] for u in decision.params["users"]] == [
            "Hugo Petit", "Inès Moreau", "Tom Roux", "Zoé Garnier"]
        assert decision.params["others"] == 0
        assert decision.params["supervisor_left"]["id"] == "s.cpe"

    def test_refusal_without_a_departure_names_the_blockers(
            self, school: SchoolBuilder) -> None:
        # The supervisor is present but switched off: nobody "left", the pairs are named.
        m = members(joined("s.cpe"), joined("st.6a1", "s.cpe"), joined("st.6a2", "s.cpe"))
        decision = school.switch_off("vie-scolaire").gatekeeper().check_send(U("st.6a1"), m, OPEN)
        assert decision.code is ErrorCode.NOT_INVITED_BY_SUPERVISOR
        assert decision.message.startswith(
            "Vous ne pouvez pas écrire ici : Hugo Petit et vous ne pouvez échanger qu'en "
            "présence d'un professeur")
        assert decision.params["supervisor_left"] is None

    def test_many_blockers_are_summed_up(self) -> None:
        school = SchoolBuilder()
        school.add_class("6A")
        school.staff("s", "Sam Staff")
        for i in range(8):
            school.student(f"st{i}", f"Student {i}", "6A")
        m = members(left("s"), *(joined(f"st{i}", "s") for i in range(8)))
        decision = school.gatekeeper().check_send(U("st0"), m, OPEN)
        assert [u["name"] for u in decision.params["users"]] == [
            "Student 1", "Student 2", "Student 3", "Student 4"]
        assert decision.params["others"] == 3

    def test_switched_off_supervisor_no_longer_supervises(self, school: SchoolBuilder) -> None:
        m = members(joined("s.cpe"), joined("st.6a1", "s.cpe"), joined("st.2a1", "s.cpe"))
        gk = school.switch_off("vie-scolaire").gatekeeper()
        assert posters(gk, m) == set()
        assert gk.check_send(U("s.cpe"), m, OPEN).code is ErrorCode.PROFILE_DISABLED
        assert gk.check_send(U("st.6a1"), m, OPEN).code is ErrorCode.NOT_INVITED_BY_SUPERVISOR
        assert gk.recipients(m) == (U("st.6a1"), U("st.2a1"))

    def test_switched_off_participant_is_skipped(self, school: SchoolBuilder) -> None:
        m = members(left("s.cpe"), joined("st.6a1", "s.cpe"), joined("st.2a1", "s.cpe"))
        assert posters(school.gatekeeper(), m) == set()
        gk = school.switch_off("students-lycee").gatekeeper()
        assert posters(gk, m) == {"st.6a1"}
        assert gk.blockers(U("st.6a1"), m) == frozenset()
        assert gk.recipients(m) == (U("st.6a1"),)  # switched-off users receive nothing
        assert gk.check_send(U("st.2a1"), m, OPEN).code is ErrorCode.PROFILE_DISABLED

    def test_participant_who_left_the_directory_is_skipped(self, school: SchoolBuilder) -> None:
        m = members(left("s.cpe"), joined("st.6a1", "s.cpe"), joined("st.2a1", "s.cpe"))
        gk = school.remove("st.2a1").gatekeeper()
        assert posters(gk, m) == {"st.6a1"}
        assert gk.check_send(U("st.2a1"), m, OPEN).code is ErrorCode.UNAUTHENTICATED

    @pytest.mark.parametrize("outsider", ["st.6a3", "nobody"])
    def test_blockers_of_a_non_participant(self, school: SchoolBuilder, outsider: str) -> None:
        m = members(joined("t.math"), joined("st.6a1", "t.math"))
        gk = school.gatekeeper()
        expected = {"st.6a1"} if outsider == "st.6a3" else {"st.6a1", "t.math"}
        assert gk.blockers(U(outsider), m) == {U(u) for u in expected}
        assert gk.check_send(U(outsider), m, OPEN).code in (
            ErrorCode.NOT_PARTICIPANT,
            ErrorCode.UNAUTHENTICATED,
        )


class TestParentsInDiscussions:
    """G6 with the parent rule. Clarifications: "a withdrawn opt-in or parent messaging
    switched off stops a delegate conversation"; "A delegate's discussion with several parents:
    the non-delegate parents cannot post to each other, so only the delegate posts there."
    """

    DELEGATE_AND_PARENT = members(joined("p.6a1"), joined("p.6a2", "p.6a1"))

    PMD = ErrorCode.PARENT_MESSAGING_DISABLED
    NOI = ErrorCode.NOT_OPTED_IN
    NIS = ErrorCode.NOT_INVITED_BY_SUPERVISOR

    @pytest.mark.parametrize(
        ("setup", "delegate_code", "parent_code"),
        [
            (lambda b: b.opt_in("p.6a1", "p.6a2"), PMD, PMD),
            (lambda b: b.parent_messaging(), NOI, NOI),
            # Only the sender's own choice is told; the other parent's never is.
            (lambda b: b.parent_messaging().opt_in("p.6a1"), NIS, NOI),
            (lambda b: b.parent_messaging().opt_in("p.6a2"), NOI, NIS),
            (lambda b: b.parent_messaging().opt_in("p.6a1", "p.6a2"), None, None),
        ],
    )
    def test_delegate_and_parent(
        self,
        school: SchoolBuilder,
        setup: Setup,
        delegate_code: ErrorCode | None,
        parent_code: ErrorCode | None,
    ) -> None:
        setup(school)
        gk = school.gatekeeper()
        for sender, code in (("p.6a1", delegate_code), ("p.6a2", parent_code)):
            decision = gk.check_send(U(sender), self.DELEGATE_AND_PARENT, OPEN)
            assert decision.code is code

    def test_ongoing_discussion_stops_when_opt_in_withdrawn(self, school: SchoolBuilder) -> None:
        m = self.DELEGATE_AND_PARENT
        school.parent_messaging().opt_in("p.6a1", "p.6a2")
        assert school.gatekeeper().check_send(U("p.6a2"), m, OPEN) == ALLOW
        school.opt_in("p.6a2", on=False)
        school.version += 1
        decision = school.gatekeeper().check_send(U("p.6a2"), m, OPEN)
        assert decision.code is ErrorCode.NOT_OPTED_IN
        assert "Sophie Bernard" in decision.message
        school.opt_in("p.6a2").parent_messaging(False)
        decision = school.gatekeeper().check_send(U("p.6a1"), m, OPEN)
        assert decision.code is ErrorCode.PARENT_MESSAGING_DISABLED
        assert "Marc Petit" in decision.message

    def test_delegate_with_several_parents_only_the_delegate_posts(
        self, school: SchoolBuilder
    ) -> None:
        gk = school.parent_messaging().opt_in("p.6a1", "p.6a2", "p.6a3").gatekeeper()
        m = members(joined("p.6a1"), joined("p.6a2", "p.6a1"), joined("p.6a3", "p.6a1"))
        assert posters(gk, m) == {"p.6a1"}
        decision = gk.check_send(U("p.6a2"), m, OPEN)
        # No delegate link between the two: opting in would not help.
        assert decision.code is ErrorCode.NOT_INVITED_BY_SUPERVISOR
        assert "Julie Garnier" in decision.message
        assert gk.blockers(U("p.6a2"), m) == {U("p.6a3")}

    def test_parent_codes_win_over_others(self, school: SchoolBuilder) -> None:
        # p.6a2 is blocked by a parent (switches) and by a student (no supervisor).
        m = members(joined("p.6a1"), joined("p.6a2", "p.6a1"), joined("st.6b1", "p.6a1"))
        gk = school.parent_messaging().opt_in("p.6a1").gatekeeper()
        decision = gk.check_send(U("p.6a2"), m, OPEN)
        assert decision.code is ErrorCode.NOT_OPTED_IN
        assert "en présence de Inès Moreau et Sophie Bernard" in decision.message


class TestSendChecks:
    """G6 ``check_send`` around the pair check: participation, and G3 defer mode."""

    M = members(joined("t.math"), joined("st.6a1", "t.math"), left("st.6a2", "t.math"))

    @pytest.mark.parametrize(
        ("user", "code"),
        [
            ("t.math", None),
            ("st.6a1", None),
            ("st.6a2", ErrorCode.NOT_PARTICIPANT),  # left
            ("st.6a3", ErrorCode.NOT_PARTICIPANT),  # never in
            ("nobody", ErrorCode.UNAUTHENTICATED),
        ],
    )
    def test_participation(self, school: SchoolBuilder, user: str, code: ErrorCode | None) -> None:
        assert school.gatekeeper().check_send(U(user), self.M, OPEN).code is code

    def test_outside_hours_refused_with_retry_at(self, school: SchoolBuilder) -> None:
        decision = school.gatekeeper().check_send(U("st.6a1"), self.M, CLOSED)
        assert decision.code is ErrorCode.OUTSIDE_HOURS
        assert decision.retry_at == NEXT_OPENING

    def test_defer_mode_holds(self, school: SchoolBuilder) -> None:
        gk = school.defer().gatekeeper()
        decision = gk.check_send(U("st.6a1"), self.M, CLOSED)
        assert decision.allowed
        assert decision.hold_until == NEXT_OPENING
        assert gk.check_send(U("st.6a1"), self.M, OPEN) == ALLOW
        assert gk.check_send(U("st.6a2"), self.M, CLOSED).code is ErrorCode.NOT_PARTICIPANT

    def test_hours_disabled(self, school: SchoolBuilder) -> None:
        gk = school.hours(enabled=False).gatekeeper()
        assert gk.check_send(U("st.6a1"), self.M, CLOSED) == ALLOW

    def test_recipients_in_joining_order(self, school: SchoolBuilder) -> None:
        assert school.gatekeeper().recipients(self.M) == (U("t.math"), U("st.6a1"))
