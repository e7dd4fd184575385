"""G7 invitations, and leaving (cast: ``school.standard_school``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from server.errors import ErrorCode
from server.gatekeeper import ALLOW

from .school import (
    CLOSED,
    NEXT_OPENING,
    OPEN,
    SchoolBuilder,
    U,
    joined,
    left,
    members,
    standard_school,
)

Setup = Callable[[SchoolBuilder], object]


def nothing(b: SchoolBuilder) -> None:
    """Default settings."""


# Everyone is present, except st.6a3 who left; st.2a1 joined through s.cpe.
EVERYONE = members(
    joined("t.math"),
    joined("s.cpe", "t.math"),
    joined("st.6a1", "t.math"),
    joined("p.6a1", "t.math"),
    left("st.6a3", "t.math"),
    joined("st.2a1", "s.cpe"),
)


class TestInvite:
    """G7: "Only a teacher or staff participant may invite, and only people they could start a
    discussion with (G5 from the inviter)."
    """

    @pytest.mark.parametrize(
        ("inviter", "invitee", "setup", "code"),
        [
            # Teacher inviter.
            ("t.math", "st.6a2", nothing, None),
            ("t.math", "p.6a2", nothing, None),
            ("t.math", "t.art", nothing, None),
            ("t.math", "s.adm", nothing, None),
            (
                "t.math",
                "t.art",
                lambda b: b.accepts("t.art", teachers=False),
                ErrorCode.RECIPIENT_NOT_ALLOWED,
            ),
            ("t.math", "p.2a1", nothing, ErrorCode.RECIPIENT_NOT_ALLOWED),
            ("t.math", "st.6a3", nothing, None),  # someone who left may be invited again
            # Staff inviter.
            ("s.cpe", "st.6b1", nothing, None),
            ("s.cpe", "p.2a1", nothing, None),
            ("s.cpe", "t.hist", nothing, None),
            (
                "s.cpe",
                "t.hist",
                lambda b: b.accepts("t.hist", staff=False),
                ErrorCode.RECIPIENT_NOT_ALLOWED,
            ),
            ("s.cpe", "nobody", nothing, ErrorCode.RECIPIENT_NOT_ALLOWED),
            (
                "s.cpe",
                "st.6b1",
                lambda b: b.switch_off("students-college"),
                ErrorCode.RECIPIENT_NOT_ALLOWED,
            ),
            # Students and parents never invite, even people they could reach.
            ("st.6a1", "t.art", nothing, ErrorCode.CANNOT_INVITE),
            ("st.2a1", "s.adm", nothing, ErrorCode.CANNOT_INVITE),
            ("p.6a1", "s.adm", nothing, ErrorCode.CANNOT_INVITE),
            (
                "p.6a1",
                "p.6a2",
                lambda b: b.parent_messaging().opt_in("p.6a1", "p.6a2"),
                ErrorCode.CANNOT_INVITE,
            ),
            # Participation.
            ("t.art", "st.6a2", nothing, ErrorCode.NOT_PARTICIPANT),
            ("st.6a3", "s.cpe", nothing, ErrorCode.NOT_PARTICIPANT),
            ("t.math", "st.6a1", nothing, ErrorCode.ALREADY_PARTICIPANT),
            ("s.cpe", "t.math", nothing, ErrorCode.ALREADY_PARTICIPANT),
            ("nobody", "st.6a2", nothing, ErrorCode.UNAUTHENTICATED),
        ],
    )
    def test_invite(self, inviter: str, invitee: str, setup: Setup, code: ErrorCode | None) -> None:
        school = standard_school()
        setup(school)
        decision = school.gatekeeper().check_invite(U(inviter), EVERYONE, U(invitee), OPEN)
        assert decision.code is code
        assert decision.allowed is (code is None)

    def test_refused_outside_hours_even_in_defer_mode(self, school: SchoolBuilder) -> None:
        for gk in (school.gatekeeper(), school.defer().gatekeeper()):
            decision = gk.check_invite(U("t.math"), EVERYONE, U("st.6a2"), CLOSED)
            assert decision.code is ErrorCode.OUTSIDE_HOURS
            assert decision.retry_at == NEXT_OPENING

    def test_parent_invitee_gets_the_specific_code(self, school: SchoolBuilder) -> None:
        # G5 from the inviter decides; a teacher reaching a parent has no parent-rule code.
        gk = school.gatekeeper()
        refusal = gk.check_invite(U("t.math"), EVERYONE, U("p.2a1"), OPEN)
        assert refusal == gk.start_refusal(U("t.math"), U("p.2a1"))


class TestWhatAnInviteeReads:
    """docs/policy.md, "People who arrive later": a message posted before someone was
    brought in (or while they were away) is theirs only if its author and they may
    exchange when they are brought in (the pair rule of G6, the invitation applied)."""

    def test_a_student_who_started_it_is_not_read_by_another_student(
            self, school: SchoolBuilder) -> None:
        # Léa started it with her teacher, who invites Inès (6B): the students may not
        # exchange (Léa was brought in by nobody), the teacher and Inès may.
        after = members(joined("st.6a1"), joined("t.math", "st.6a1"),
                        joined("st.6b1", "t.math"))
        readable = school.gatekeeper().readable_authors(U("st.6b1"), after)
        assert readable == {U("t.math"), U("st.6b1")}

    def test_a_class_discussion_of_the_teacher_stays_readable(
            self, school: SchoolBuilder) -> None:
        # The teacher brought everyone in: supervised pairs. Zoé, who left, is linked to
        # the newcomer by G5 alone (supervision needs presence): not readable.
        after = members(joined("t.math"), joined("st.6a1", "t.math"),
                        joined("st.6a2", "t.math"), joined("p.6a1", "t.math"),
                        left("st.6a3", "t.math"), joined("st.6b1", "t.math"))
        readable = school.gatekeeper().readable_authors(U("st.6b1"), after)
        assert readable == {U(u) for u in ("t.math", "st.6a1", "st.6a2", "p.6a1", "st.6b1")}

    def test_the_supervision_must_be_present(self, school: SchoolBuilder) -> None:
        # The teacher who brought the students in has left; the staff member who invites
        # Inès does not take the supervision over.
        after = members(left("t.math"), joined("s.cpe", "t.math"),
                        joined("st.6a1", "t.math"), joined("st.6b1", "s.cpe"))
        readable = school.gatekeeper().readable_authors(U("st.6b1"), after)
        assert readable == {U("s.cpe"), U("t.math"), U("st.6b1")}

    def test_switched_off_or_gone_authors_are_not_read(self, school: SchoolBuilder) -> None:
        after = members(joined("t.math"), joined("p.6a1", "t.math"),
                        joined("t.art", "t.math"), joined("st.6a2", "t.math"))
        gk = school.switch_off("parents").remove("t.art").gatekeeper()
        assert gk.readable_authors(U("st.6a2"), after) == {U("t.math"), U("st.6a2")}

    def test_the_decision_does_not_enter_the_cache(self, school: SchoolBuilder) -> None:
        # The invitation may still fail: its state must not stand for the version it names.
        gk = school.gatekeeper()
        after = members(joined("st.6a1"), joined("t.math", "st.6a1"),
                        joined("st.6b1", "t.math"), version=2)
        gk.readable_authors(U("st.6b1"), after)
        other = members(joined("st.6a1"), joined("t.math", "st.6a1"),
                        joined("st.6a2", "t.math"), version=2)
        assert gk.recipients(other) == (U("st.6a1"), U("t.math"), U("st.6a2"))


class TestLeave:
    """Clarification: "Leaving is allowed at any hour (supervision lapses at once)."."""

    @pytest.mark.parametrize(
        ("user", "code"),
        [
            ("t.math", None),
            ("st.2a1", None),
            ("st.6a3", ErrorCode.NOT_PARTICIPANT),
            ("t.art", ErrorCode.NOT_PARTICIPANT),
            ("nobody", ErrorCode.UNAUTHENTICATED),
        ],
    )
    def test_leave(self, school: SchoolBuilder, user: str, code: ErrorCode | None) -> None:
        assert school.gatekeeper().check_leave(U(user), EVERYONE).code is code

    def test_leaving_ignores_hours_and_switches(self, school: SchoolBuilder) -> None:
        gk = school.switch_off("teachers").set(discussions_enabled=False).gatekeeper()
        assert gk.check_leave(U("t.math"), EVERYONE) == ALLOW

    def test_supervision_lapses_at_once(self, school: SchoolBuilder) -> None:
        gk = school.gatekeeper()
        before = members(joined("s.cpe"), joined("st.6a1", "s.cpe"), joined("st.2a1", "s.cpe"))
        after = members(
            left("s.cpe"), joined("st.6a1", "s.cpe"), joined("st.2a1", "s.cpe"), version=2
        )
        assert gk.check_send(U("st.6a1"), before, OPEN) == ALLOW
        assert gk.check_send(U("st.6a1"), after, OPEN).code is ErrorCode.NOT_INVITED_BY_SUPERVISOR
