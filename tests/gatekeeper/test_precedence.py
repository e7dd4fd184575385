"""Precedence: unauthenticated > G1 > G2 > G3 > the rest, for every check."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from server.errors import ErrorCode, InvalidSettings, Refused
from server.gatekeeper import ALLOW, BroadcastTarget, Decision, Gatekeeper, hold, refuse
from server.model import ClassId, Role

from .school import CLOSED, NEXT_OPENING, OPEN, SchoolBuilder, U, joined, members, standard_school

# st.6a1 may not initiate, is in a discussion she cannot post to (no supervisor),
# and the poll closed long ago: every check fails on its own rule at the end.
DISCUSSION = members(joined("st.6a1"), joined("st.6a2", "st.6a1"), joined("t.math", "st.6a1"))
PAST_DEADLINE = OPEN - timedelta(days=1)
STUDENTS_6A = BroadcastTarget(roles=frozenset({Role.STUDENT}), classes=frozenset({ClassId("6A")}))

Ask = Callable[[Gatekeeper, str, datetime], Decision]

CHECKS: dict[str, tuple[Ask, bool, ErrorCode | None]] = {
    # name: (ask, subject to G3?, the code once G1–G3 pass)
    "connect": (lambda gk, u, now: gk.check_connect(U(u)), False, None),
    "read": (lambda gk, u, now: gk.check_read(U(u)), False, None),
    "contacts": (lambda gk, u, now: gk.check_contacts(U(u)), False, ErrorCode.CANNOT_INITIATE),
    "start": (
        lambda gk, u, now: gk.check_start(U(u), [U("st.6a2")], now),
        True,
        ErrorCode.CANNOT_INITIATE,
    ),
    "send": (
        lambda gk, u, now: gk.check_send(U(u), DISCUSSION, now),
        True,
        ErrorCode.NOT_INVITED_BY_SUPERVISOR,
    ),
    "invite": (
        lambda gk, u, now: gk.check_invite(U(u), DISCUSSION, U("st.6a3"), now),
        True,
        ErrorCode.CANNOT_INVITE,
    ),
    "broadcast": (
        lambda gk, u, now: gk.check_broadcast(U(u), STUDENTS_6A, now)[0],
        True,
        ErrorCode.BROADCAST_NOT_ALLOWED,
    ),
    "vote": (
        lambda gk, u, now: gk.check_vote(U(u), PAST_DEADLINE, now),
        True,
        ErrorCode.POLL_CLOSED,
    ),
}


def everything_off() -> SchoolBuilder:
    return (
        standard_school()
        .set(discussions_enabled=False)
        .switch_off("students-college")
        .cannot_initiate("st.6a1")
    )


class TestPrecedence:
    """Clarification: "When several refusals apply: unauthenticated, then G1
    discussions_disabled, then G2 profile_disabled, then G3 outside_hours, then the rest. With
    discussions off nothing is readable either."
    """

    @pytest.mark.parametrize("check", sorted(CHECKS))
    def test_layers(self, check: str) -> None:
        ask, timed, rest = CHECKS[check]
        school = everything_off()
        assert ask(school.gatekeeper(), "ghost", CLOSED).code is ErrorCode.UNAUTHENTICATED
        assert ask(school.gatekeeper(), "st.6a1", CLOSED).code is ErrorCode.DISCUSSIONS_DISABLED
        school.set(discussions_enabled=True)
        assert ask(school.gatekeeper(), "st.6a1", CLOSED).code is ErrorCode.PROFILE_DISABLED
        school.set(disabled_profiles=frozenset())
        closed = ask(school.gatekeeper(), "st.6a1", CLOSED)
        if timed:
            assert closed.code is ErrorCode.OUTSIDE_HOURS
            assert closed.retry_at == NEXT_OPENING
        else:
            assert closed.code is rest  # reading and listing are allowed at any hour
        assert ask(school.gatekeeper(), "st.6a1", OPEN).code is rest

    @pytest.mark.parametrize("check", sorted(CHECKS))
    def test_defer_mode_never_holds_a_refusal(self, check: str) -> None:
        ask, _, rest = CHECKS[check]
        gk = standard_school().cannot_initiate("st.6a1").defer().gatekeeper()
        decision = ask(gk, "st.6a1", CLOSED)
        if check in ("invite", "vote"):
            assert decision.code is ErrorCode.OUTSIDE_HOURS
        else:
            assert decision.code is rest
            assert decision.hold_until is None

    def test_connect_outside_hours_is_read_only(self, school: SchoolBuilder) -> None:
        gk = school.gatekeeper()
        assert gk.check_connect(U("st.6a1")) == ALLOW
        state = gk.window_state(CLOSED)
        assert not state.is_open
        assert state.opens_at == NEXT_OPENING

    def test_admin_with_switches_off(self, school: SchoolBuilder) -> None:
        # The settings API is the admin's whatever the switches; connecting is not.
        gk = school.set(discussions_enabled=False).switch_off("administration").gatekeeper()
        assert gk.is_admin(U("s.adm"))
        assert not gk.is_admin(U("s.cpe"))
        assert not gk.is_admin(U("t.math"))
        assert not gk.is_admin(U("ghost"))
        assert gk.check_connect(U("s.adm")).code is ErrorCode.DISCUSSIONS_DISABLED


class TestDecision:
    """The value every check returns: a refusal is a stable code, a sentence, maybe retry_at."""

    def test_refuse_defaults_to_the_phrase(self) -> None:
        decision = refuse(ErrorCode.NOT_PARTICIPANT)
        assert not decision.allowed
        assert decision.message == ErrorCode.NOT_PARTICIPANT.phrase

    def test_raise_for_refusal(self) -> None:
        ALLOW.raise_for_refusal()
        hold(NEXT_OPENING).raise_for_refusal()
        with pytest.raises(Refused) as info:
            refuse(ErrorCode.OUTSIDE_HOURS, "closed", retry_at=NEXT_OPENING).raise_for_refusal()
        assert info.value.code is ErrorCode.OUTSIDE_HOURS
        assert info.value.message == "closed"
        assert info.value.retry_at == NEXT_OPENING

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"allowed": True, "code": ErrorCode.BAD_REQUEST},
            {"allowed": True, "message": "why"},
            {"allowed": True, "retry_at": NEXT_OPENING},
            {"allowed": False},
            {"allowed": False, "code": ErrorCode.BAD_REQUEST, "message": ""},
            {"allowed": False, "code": ErrorCode.BAD_REQUEST, "message": "x", "hold_until": OPEN},
        ],
    )
    def test_malformed_decisions_fail_loudly(self, kwargs: dict[str, object]) -> None:
        with pytest.raises(ValueError, match="Decision"):
            Decision(**kwargs)  # type: ignore[arg-type]

    def test_gatekeeper_rejects_invalid_settings(self, school: SchoolBuilder) -> None:
        with pytest.raises(InvalidSettings, match="fuseau horaire inconnu : 'Mars/Olympus'"):
            Gatekeeper(school.set(timezone="Mars/Olympus").state())
        with pytest.raises(ValueError, match="membership_cache_size"):
            Gatekeeper(standard_school().state(), membership_cache_size=0)


class TestSnapshot:
    """The gatekeeper answers about one school state and names it."""

    def test_user_lookup(self, school: SchoolBuilder) -> None:
        gk = school.gatekeeper()
        user = gk.user(U("t.math"))
        assert user is not None
        assert user.display_name == "Marie Curie"
        assert gk.user(U("ghost")) is None

    def test_reprs(self, school: SchoolBuilder) -> None:
        gk = school.gatekeeper()
        assert repr(gk) == (
            "<Gatekeeper school='clg-jaures' version=1 Window([07:00, 20:00) Europe/Paris, refuse)>"
        )
        assert repr(school.hours(enabled=False).gatekeeper().window) == (
            "Window(always open, Europe/Paris)"
        )

    def test_preferences_of_strangers_are_ignored(self, school: SchoolBuilder) -> None:
        before = school.gatekeeper()
        after = school.prefs("ghost", can_initiate=False).opt_in("ghost").gatekeeper()
        assert after.check_connect(U("ghost")) == before.check_connect(U("ghost"))
        assert after.contacts(U("st.6a1")) == before.contacts(U("st.6a1"))
