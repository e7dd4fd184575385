"""Properties of the gatekeeper over randomly generated small schools (hypothesis)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.gatekeeper import BroadcastTarget, Gatekeeper
from server.model import (
    Audience,
    ClassId,
    ContactPreferences,
    Directory,
    DiscussionId,
    DiscussionMembers,
    Hours,
    OutsideHours,
    Participant,
    Profile,
    ProfileId,
    Role,
    School,
    SchoolClass,
    SchoolId,
    SchoolSettings,
    SchoolState,
    User,
    UserId,
    UserPreferences,
)

JOINED = datetime(2026, 5, 11, 9, 0, tzinfo=UTC)
LEFT = JOINED + timedelta(hours=1)
# 12:00 and 23:00 in Paris: inside and outside the default window.
TIMES = [datetime(2026, 5, 12, 10, 0, tzinfo=UTC), datetime(2026, 5, 12, 21, 0, tzinfo=UTC)]
PROFILES = [ProfileId(p) for p in ("p0", "p1", "p2", "p3")]

PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@dataclass(frozen=True)
class World:
    """A school state, some discussions in it, and the instant to ask at."""

    state: SchoolState
    discussions: tuple[DiscussionMembers, ...]
    now: datetime

    @property
    def users(self) -> list[UserId]:
        # An unknown id rides along: it must be refused like anyone unreachable.
        return [*self.state.directory.users, UserId("ghost")]


def _subset(draw: st.DrawFn, items: list[ClassId]) -> frozenset[ClassId]:
    return frozenset(draw(st.lists(st.sampled_from(items), unique=True))) if items else frozenset()


def _audience(draw: st.DrawFn, classes: list[ClassId]) -> Audience:
    limited = draw(st.booleans())
    return Audience(
        enabled=draw(st.booleans()), classes=_subset(draw, classes) if limited else None
    )


@st.composite
def worlds(draw: st.DrawFn) -> World:
    """A consistent directory, settings, preferences and discussions with invited_by chains."""
    classes = [ClassId(f"c{i}") for i in range(draw(st.integers(1, 3)))]
    users: dict[UserId, User] = {}

    def add(prefix: str, n: int, make: Callable[[UserId, ProfileId], User]) -> list[UserId]:
        ids = [UserId(f"{prefix}{i}") for i in range(n)]
        for uid in ids:
            users[uid] = make(uid, draw(st.sampled_from(PROFILES)))
        return ids

    teachers = add(
        "t",
        draw(st.integers(1, 3)),
        lambda uid, profile: User(
            uid, Role.TEACHER, "F", uid, profile, teaches=_subset(draw, classes)
        ),
    )
    add(
        "s",
        draw(st.integers(0, 2)),
        lambda uid, profile: User(uid, Role.STAFF, "F", uid, profile, admin=draw(st.booleans())),
    )
    students = add(
        "st",
        draw(st.integers(1, 5)),
        lambda uid, profile: User(
            uid, Role.STUDENT, "F", uid, profile, class_id=draw(st.sampled_from(classes))
        ),
    )
    parents = add(
        "p",
        draw(st.integers(0, 4)),
        lambda uid, profile: User(
            uid,
            Role.PARENT,
            "F",
            uid,
            profile,
            children=tuple(
                draw(st.lists(st.sampled_from(students), min_size=1, max_size=2, unique=True))
            ),
            delegate_of=_subset(draw, classes),
        ),
    )

    preferences: dict[UserId, UserPreferences] = {}
    for uid in teachers:
        preferences[uid] = UserPreferences(
            accepts=ContactPreferences(
                students=_audience(draw, classes),
                parents=_audience(draw, classes),
                teachers=draw(st.booleans()),
                staff=draw(st.booleans()),
            )
        )
    for uid in students:
        preferences[uid] = UserPreferences(can_initiate=draw(st.booleans()))
    for uid in parents:
        preferences[uid] = UserPreferences(parent_messaging_opt_in=draw(st.booleans()))

    hours = Hours(
        enabled=draw(st.booleans()),
        outside=draw(st.sampled_from(list(OutsideHours))),
    )
    school_settings = SchoolSettings(
        discussions_enabled=draw(st.sampled_from([True, True, True, False])),
        parent_messaging_enabled=draw(st.booleans()),
        hours=hours,
        disabled_profiles=frozenset(draw(st.lists(st.sampled_from(PROFILES), max_size=2))),
    )
    directory = Directory(
        school=School(SchoolId("school"), "School"),
        timezone="Europe/Paris",
        profiles={p: Profile(p, p) for p in PROFILES},
        classes={c: SchoolClass(c, c) for c in classes},
        users=users,
    )
    state = SchoolState(directory, school_settings, preferences, version=1)

    everyone = sorted(users)
    discussions = []
    for d in range(draw(st.integers(1, 3))):
        people = draw(st.lists(st.sampled_from(everyone), min_size=1, max_size=7, unique=True))
        participants = []
        for i, uid in enumerate(people):
            # The first is the creator; each other was brought in by an earlier one.
            by = None if i == 0 else people[draw(st.integers(0, i - 1))]
            gone = draw(st.integers(0, 4)) == 0
            participants.append(Participant(uid, by, JOINED, LEFT if gone else None))
        discussions.append(DiscussionMembers(DiscussionId(d + 1), 1, tuple(participants)))
    return World(state, tuple(discussions), draw(st.sampled_from(TIMES)))


def supervised_pair(world: World, m: DiscussionMembers, x: UserId, y: UserId) -> bool:
    """The Clarification, written out independently: both brought in by present, switched-on
    teachers or staff."""
    users = world.state.directory.users
    off = world.state.settings.disabled_profiles
    present = {p.user_id: p for p in m.participants if p.left_at is None}

    def supervises(uid: UserId | None) -> bool:
        user = users.get(uid) if uid is not None else None
        return (
            user is not None
            and uid in present
            and user.role in (Role.TEACHER, Role.STAFF)
            and user.profile not in off
        )

    return supervises(present[x].invited_by) and supervises(present[y].invited_by)


class TestNoUnsupervisedPeers:
    """SPEC source: "ni les parents non délégués ni les élèves ne peuvent communiquer entre eux,
    sauf à y avoir été invités par un enseignant ou un personnel également présent dans la
    discussion."
    """

    @PROPERTY_SETTINGS
    @given(worlds())
    def test_students_and_non_delegate_parents(self, world: World) -> None:
        gk = Gatekeeper(world.state)
        users = world.state.directory.users
        for m in world.discussions:
            recipients = gk.recipients(m)
            for x in recipients:
                for y in recipients:
                    ux, uy = users[x], users[y]
                    peers = (ux.role is uy.role is Role.STUDENT) or (
                        ux.role is uy.role is Role.PARENT
                        and not ux.delegate_of
                        and not uy.delegate_of
                    )
                    if x == y or not peers or supervised_pair(world, m, x, y):
                        continue
                    assert y in gk.blockers(x, m)
                    assert x not in gk.posters(m)
                    assert not gk.check_send(x, m, world.now).allowed

    @PROPERTY_SETTINGS
    @given(worlds())
    def test_posters_blockers_and_check_send_agree(self, world: World) -> None:
        gk = Gatekeeper(world.state)
        for m in world.discussions:
            recipients = gk.recipients(m)
            assert gk.posters(m) == {x for x in recipients if not gk.blockers(x, m)}
            for x in world.users:
                decision = gk.check_send(x, m, world.now)
                if decision.allowed:
                    assert x in gk.posters(m)
                if gk.check_connect(x).allowed and gk.window.is_open(world.now):
                    assert decision.allowed is (x in gk.posters(m))


class TestTheInvariant:
    """docs/policy.md, the invariant: nothing reaches anyone the gatekeeper did not allow
    between its author and them when it was sent."""

    @PROPERTY_SETTINGS
    @given(worlds())
    def test_an_accepted_post_is_hidden_from_everyone_it_may_not_reach(
            self, world: World) -> None:
        gk = Gatekeeper(world.state)
        off = world.state.settings.disabled_profiles
        users = world.state.directory.users
        for m in world.discussions:
            present = {p.user_id for p in m.participants if p.left_at is None}
            for x in world.users:
                decision = gk.check_send(x, m, world.now)
                if not decision.allowed:
                    assert decision.hidden_from == frozenset()
                    continue
                # Written out independently: present, and gone or switched off.
                unreachable = {u for u in present
                               if u not in users or users[u].profile in off}
                assert decision.hidden_from == unreachable
                reached = present - decision.hidden_from - {x}
                assert reached == gk.exchanges_with(x, m)

    @PROPERTY_SETTINGS
    @given(worlds())
    def test_typing_and_reads_follow_the_pair_rule_both_ways(self, world: World) -> None:
        gk = Gatekeeper(world.state)
        off = world.state.settings.disabled_profiles
        users = world.state.directory.users
        for m in world.discussions:
            recipients = set(gk.recipients(m))
            for x in world.users:
                peers = gk.exchanges_with(x, m)
                assert x not in peers
                assert peers <= recipients
                if x not in users or users[x].profile in off:
                    assert peers == frozenset()  # switched off, gone: nobody sees them
                if x in recipients:
                    # Among those present: the pair rule, the same both ways.
                    assert peers == recipients - {x} - gk.blockers(x, m)
                    assert all(x in gk.exchanges_with(y, m) for y in peers)


# --------------------------------------------------------------------------- monotonicity


@dataclass(frozen=True)
class Mutation:
    """One setting switched off or narrowed; ``off`` lists users whose profile it turns off."""

    name: str
    state: SchoolState
    off: frozenset[UserId] = frozenset()


def _with_prefs(state: SchoolState, uid: UserId, prefs: UserPreferences) -> SchoolState:
    return replace(state, preferences={**state.preferences, uid: prefs}, version=state.version + 1)


def _narrow(audience: Audience, classes: list[ClassId]) -> Iterator[Audience]:
    if audience.enabled:
        yield replace(audience, enabled=False)
    current = audience.classes if audience.classes is not None else frozenset(classes)
    for c in sorted(current):
        yield replace(audience, classes=current - {c})


def mutations(world: World) -> list[Mutation]:
    """Every single switch-off or narrowing the settings of ``world`` allow."""
    state = world.state
    s = state.settings
    users = state.directory.users
    classes = sorted(state.directory.classes)
    found: list[Mutation] = []

    def settings_change(
        name: str, changed: SchoolSettings, off: frozenset[UserId] = frozenset()
    ) -> None:
        found.append(
            Mutation(name, replace(state, settings=changed, version=state.version + 1), off)
        )

    if s.discussions_enabled:
        settings_change("discussions off", replace(s, discussions_enabled=False))
    if s.parent_messaging_enabled:
        settings_change("parent messaging off", replace(s, parent_messaging_enabled=False))
    for p in PROFILES:
        if p not in s.disabled_profiles:
            off = frozenset(uid for uid, u in users.items() if u.profile == p)
            profiles_off = replace(s, disabled_profiles=s.disabled_profiles | {p})
            settings_change(f"profile {p} off", profiles_off, off)
    for uid, prefs in state.preferences.items():
        role = users[uid].role
        if role is Role.STUDENT and prefs.can_initiate:
            found.append(
                Mutation(
                    f"{uid} cannot initiate",
                    _with_prefs(state, uid, replace(prefs, can_initiate=False)),
                )
            )
        if role is Role.PARENT and prefs.parent_messaging_opt_in:
            found.append(
                Mutation(
                    f"{uid} opts out",
                    _with_prefs(state, uid, replace(prefs, parent_messaging_opt_in=False)),
                )
            )
        if role is Role.TEACHER:
            accepts = prefs.accepts
            narrowings: list[tuple[str, ContactPreferences]] = []
            if accepts.teachers:
                narrowings.append(("refuses teachers", replace(accepts, teachers=False)))
            if accepts.staff:
                narrowings.append(("refuses staff", replace(accepts, staff=False)))
            for audience in _narrow(accepts.students, classes):
                narrowings.append((f"students {audience}", replace(accepts, students=audience)))
            for audience in _narrow(accepts.parents, classes):
                narrowings.append((f"parents {audience}", replace(accepts, parents=audience)))
            for name, narrowed in narrowings:
                changed = _with_prefs(state, uid, replace(prefs, accepts=narrowed))
                found.append(Mutation(f"{uid} {name}", changed))
    return found


def _targets(world: World) -> list[BroadcastTarget]:
    classes = frozenset(world.state.directory.classes)
    everyone = frozenset(world.users)
    return [
        BroadcastTarget(roles=frozenset(Role)),
        BroadcastTarget(roles=frozenset({Role.STUDENT, Role.PARENT}), classes=classes),
        BroadcastTarget(roles=frozenset({Role.PARENT}), classes=classes),
        *(BroadcastTarget(users=frozenset({u})) for u in everyone),
    ]


def _implies(after: bool, before: bool) -> bool:
    return before or not after


class TestSwitchingOffNeverGrants:
    """SPEC §2/§3: every switch an admin, a teacher or a parent turns off removes rights; none
    adds one. The one documented exception: a switched-off participant is skipped by the G6 pair
    check (Clarifications), so switching a profile off can unblock a post — but only by removing
    every blocker.
    """

    @PROPERTY_SETTINGS
    @given(worlds(), st.data())
    def test_monotone(self, world: World, data: st.DataObject) -> None:
        candidates = mutations(world)
        if not candidates:
            return
        mutation = data.draw(st.sampled_from(candidates), label="mutation")
        before, after = Gatekeeper(world.state), Gatekeeper(mutation.state)
        now = world.now
        users = world.users
        for x in users:
            assert set(after.contacts(x)) <= set(before.contacts(x)), mutation.name
            assert _implies(after.check_contacts(x).allowed, before.check_contacts(x).allowed)
            for y in users:
                assert _implies(after.may_start(x, y), before.may_start(x, y)), mutation.name
                assert _implies(
                    after.check_start(x, [y], now).allowed, before.check_start(x, [y], now).allowed
                ), mutation.name
            for m in world.discussions:
                if after.check_send(x, m, now).allowed and not before.check_send(x, m, now).allowed:
                    # Only the profile exception: every former blocker is now switched off.
                    assert mutation.off, mutation.name
                    assert before.blockers(x, m) <= mutation.off, mutation.name
                for y in users:
                    assert _implies(
                        after.check_invite(x, m, y, now).allowed,
                        before.check_invite(x, m, y, now).allowed,
                    ), mutation.name
            for target in _targets(world):
                decision_after, recipients_after = after.check_broadcast(x, target, now)
                decision_before, recipients_before = before.check_broadcast(x, target, now)
                assert _implies(decision_after.allowed, decision_before.allowed), mutation.name
                assert set(recipients_after) <= set(recipients_before), mutation.name


# --------------------------------------------------------------------------- determinism


def _all_answers(gk: Gatekeeper, world: World, reverse: bool = False) -> list[object]:
    users = world.users[::-1] if reverse else world.users
    now = world.now
    answers: dict[tuple[object, ...], object] = {}
    for x in users:
        answers["connect", x] = gk.check_connect(x)
        answers["contacts", x] = (gk.check_contacts(x), gk.contacts(x))
        for target in _targets(world):
            answers["broadcast", x, target] = gk.check_broadcast(x, target, now)
        for y in users:
            answers["start", x, y] = gk.check_start(x, [y], now)
        for m in world.discussions:
            answers["send", x, m.id] = gk.check_send(x, m, now)
            answers["blockers", x, m.id] = gk.blockers(x, m)
            answers["leave", x, m.id] = gk.check_leave(x, m)
            for y in users:
                answers["invite", x, m.id, y] = gk.check_invite(x, m, y, now)
    for m in world.discussions:
        answers["posters", m.id] = gk.posters(m)
        answers["recipients", m.id] = gk.recipients(m)
    return sorted(answers.items(), key=repr)


class TestDeterminism:
    """A decision depends only on its inputs: equal states give equal decisions, and a cached
    answer equals a fresh one, whatever was asked before."""

    @PROPERTY_SETTINGS
    @given(worlds())
    def test_equal_states_equal_decisions(self, world: World) -> None:
        twin = replace(
            world.state,
            directory=replace(world.state.directory, users=dict(world.state.directory.users)),
            preferences=dict(world.state.preferences),
        )
        warm = Gatekeeper(world.state)
        first = _all_answers(warm, world)
        cached = _all_answers(warm, world, reverse=True)
        fresh = _all_answers(Gatekeeper(twin), world, reverse=True)
        assert first == cached == fresh
