"""The gatekeeper's memos: they may make answers faster, never different."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from server.gatekeeper import ALLOW, Gatekeeper, rules
from server.gatekeeper.index import SchoolIndex
from server.model import DiscussionMembers

from .school import OPEN, SchoolBuilder, U, joined, left, members, standard_school


@pytest.fixture
def computations(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Records each ``(id, version)`` whose G6 facts are computed."""
    seen: list[tuple[int, int]] = []
    real: Callable[[SchoolIndex, DiscussionMembers], rules.Membership] = rules.membership

    def counting(index: SchoolIndex, m: DiscussionMembers) -> rules.Membership:
        seen.append((m.id, m.version))
        return real(index, m)

    monkeypatch.setattr(rules, "membership", counting)
    return seen


SUPERVISED = members(joined("t.math"), joined("st.6a1", "t.math"), joined("st.6a2", "t.math"))
UNSUPERVISED = members(
    left("t.math"), joined("st.6a1", "t.math"), joined("st.6a2", "t.math"), version=2
)


class TestMembershipCache:
    """G6 facts are cached per ``(members.id, members.version)`` (``Gatekeeper`` docstring)."""

    def test_computed_once_per_version(
        self, school: SchoolBuilder, computations: list[tuple[int, int]]
    ) -> None:
        gk = school.gatekeeper()
        for _ in range(3):
            assert gk.check_send(U("st.6a1"), SUPERVISED, OPEN) == ALLOW
            gk.posters(SUPERVISED)
            gk.blockers(U("st.6a2"), SUPERVISED)
            gk.recipients(SUPERVISED)
            gk.check_invite(U("t.math"), SUPERVISED, U("st.6a3"), OPEN)
            gk.check_leave(U("st.6a1"), SUPERVISED)
        assert computations == [(1, 1)]

    def test_a_new_version_recomputes(
        self, school: SchoolBuilder, computations: list[tuple[int, int]]
    ) -> None:
        gk = school.gatekeeper()
        assert gk.check_send(U("st.6a1"), SUPERVISED, OPEN) == ALLOW
        assert not gk.check_send(U("st.6a1"), UNSUPERVISED, OPEN).allowed
        assert gk.posters(UNSUPERVISED) == frozenset()
        assert computations == [(1, 1), (1, 2)]

    def test_the_version_is_the_key(self, school: SchoolBuilder) -> None:
        # The contract: membership changes bump the version. A caller breaking it
        # gets the answer cached for that version, which is what this pins down.
        gk = school.gatekeeper()
        gk.posters(SUPERVISED)
        same_version = members(*UNSUPERVISED.participants, version=1)
        assert gk.posters(same_version) == gk.posters(SUPERVISED)
        assert Gatekeeper(school.state()).posters(same_version) == frozenset()

    def test_discussions_are_cached_independently(
        self, school: SchoolBuilder, computations: list[tuple[int, int]]
    ) -> None:
        gk = school.gatekeeper()
        other = members(*UNSUPERVISED.participants, id=2, version=1)
        for _ in range(3):
            assert gk.check_send(U("st.6a1"), SUPERVISED, OPEN) == ALLOW
            assert not gk.check_send(U("st.6a1"), other, OPEN).allowed
        assert computations == [(1, 1), (2, 1)]

    def test_the_cache_is_bounded(self, computations: list[tuple[int, int]]) -> None:
        gk = Gatekeeper(standard_school().state(), membership_cache_size=2)
        one, two, three = (members(*SUPERVISED.participants, id=i) for i in (1, 2, 3))
        for m in (one, two, one, three):  # "one" was computed first: it goes first
            gk.posters(m)
        assert computations == [(1, 1), (2, 1), (3, 1)]
        gk.posters(two)
        assert computations[-1] == (3, 1)
        gk.posters(one)
        assert computations[-1] == (1, 1)

    def test_g6_refusals_are_remembered_boundedly(self) -> None:
        gk = Gatekeeper(standard_school().state(), membership_cache_size=1)
        for _ in range(2):
            for uid in ("st.6a1", "st.6a2"):
                decision = gk.check_send(U(uid), UNSUPERVISED, OPEN)
                assert decision == Gatekeeper(standard_school().state()).check_send(
                    U(uid), UNSUPERVISED, OPEN
                )
                assert decision.code is not None

    def test_a_new_state_reflects_the_change(self, school: SchoolBuilder) -> None:
        assert school.gatekeeper().posters(SUPERVISED) == {U("t.math"), U("st.6a1"), U("st.6a2")}
        school.switch_off("teachers")
        school.version += 1
        gk = school.gatekeeper()
        assert gk.version == 2
        assert gk.posters(SUPERVISED) == frozenset()
        assert gk.recipients(SUPERVISED) == (U("st.6a1"), U("st.6a2"))


class TestOtherCaches:
    """Contacts and the hours window are memoized too."""

    def test_contacts_cached_within_a_snapshot(self, school: SchoolBuilder) -> None:
        gk = school.gatekeeper()
        first = gk.contacts(U("st.6a1"))
        assert gk.contacts(U("st.6a1")) is first
        assert U("t.math") in {u.id for u in first}
        school.accepts("t.math", students=False)
        assert U("t.math") not in {u.id for u in school.gatekeeper().contacts(U("st.6a1"))}

    def test_window_moves_with_now_either_way(self, school: SchoolBuilder) -> None:
        gk = school.gatekeeper()
        times = [
            (datetime(2026, 5, 12, 17, 59, tzinfo=UTC), True),
            (datetime(2026, 5, 12, 18, 0, tzinfo=UTC), False),  # 20:00 Paris
            (datetime(2026, 5, 12, 4, 59, tzinfo=UTC), False),  # earlier the same day
            (datetime(2026, 5, 12, 5, 0, tzinfo=UTC), True),
            (datetime(2026, 5, 20, 12, 0, tzinfo=UTC), True),
            (datetime(2026, 5, 12, 17, 59, tzinfo=UTC), True),
        ]
        for now, expected in times:
            assert gk.check_send(U("st.6a1"), SUPERVISED, now).allowed is expected

    def test_cached_decisions_equal_fresh_ones(self, school: SchoolBuilder) -> None:
        warm = school.gatekeeper()
        for m in (SUPERVISED, UNSUPERVISED):
            for uid in school.users:
                first = warm.check_send(uid, m, OPEN)
                again = warm.check_send(uid, m, OPEN)
                fresh = Gatekeeper(school.state()).check_send(uid, m, OPEN)
                assert first == again == fresh
