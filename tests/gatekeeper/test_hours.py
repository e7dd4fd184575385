"""G3 time window: ``hours.py`` on its own (the gatekeeper's use is in test_precedence)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.errors import InvalidSettings
from server.gatekeeper import Window, WindowState, validate_hours, validate_timezone
from server.model import Hours, OutsideHours

PARIS = ZoneInfo("Europe/Paris")


def paris(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A Paris wall-clock time, as the UTC instant the gatekeeper is given."""
    return datetime(year, month, day, hour, minute, tzinfo=PARIS).astimezone(UTC)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


DEFAULT = Window(Hours(), "Europe/Paris")


class TestDefaultWindow:
    """G3: "With hours.enabled, outside [start, end) local time nobody sends … DST included."

    Default 07:00–20:00 Europe/Paris, on a normal day and on both DST change days.
    """

    DAYS = (
        pytest.param((2026, 5, 12), "+02:00", id="normal-day"),
        pytest.param((2026, 3, 29), "+02:00", id="spring-forward"),
        pytest.param((2026, 10, 25), "+01:00", id="fall-back"),
    )
    TIMES = (((6, 59), False), ((7, 0), True), ((19, 59), True), ((20, 0), False))

    @pytest.mark.parametrize(("day", "offset"), DAYS)
    @pytest.mark.parametrize(("hm", "expected"), TIMES, ids=["06:59", "07:00", "19:59", "20:00"])
    def test_open_iff_in_start_end(
        self, day: tuple[int, int, int], offset: str, hm: tuple[int, int], expected: bool
    ) -> None:
        now = paris(*day, *hm)
        assert now.astimezone(PARIS).isoformat().endswith(offset)
        assert DEFAULT.is_open(now) is expected
        assert DEFAULT.state(now).is_open is expected
        # A fresh window (nothing cached) agrees with the shared, warmed one.
        assert Window(Hours(), "Europe/Paris").is_open(now) is expected

    @pytest.mark.parametrize(("day", "offset"), DAYS)
    def test_state_says_when_it_changes(self, day: tuple[int, int, int], offset: str) -> None:
        y, m, d = day
        opening, closing = paris(y, m, d, 7, 0), paris(y, m, d, 20, 0)
        following = date(y, m, d) + timedelta(days=1)
        tomorrow = paris(following.year, following.month, following.day, 7, 0)
        assert DEFAULT.state(paris(y, m, d, 6, 59)) == WindowState(False, opening, None)
        assert DEFAULT.state(paris(y, m, d, 0, 0)) == WindowState(False, opening, None)
        assert DEFAULT.state(paris(y, m, d, 7, 0)) == WindowState(True, None, closing)
        assert DEFAULT.state(paris(y, m, d, 19, 59)) == WindowState(True, None, closing)
        assert DEFAULT.state(paris(y, m, d, 20, 0)) == WindowState(False, tomorrow, None)
        assert DEFAULT.state(paris(y, m, d, 23, 59)) == WindowState(False, tomorrow, None)

    def test_instants_are_utc(self) -> None:
        state = DEFAULT.state(utc(2026, 5, 12, 10, 0))
        assert state.closes_at is not None
        assert state.closes_at.tzinfo is UTC

    def test_dst_day_openings_are_local_seven(self) -> None:
        assert paris(2026, 3, 29, 7, 0) == utc(2026, 3, 29, 5, 0)
        assert paris(2026, 10, 25, 7, 0) == utc(2026, 10, 25, 6, 0)


class TestNextOpening:
    """G3: "connected clients are told when the window … opens": today's start, else tomorrow's."""

    @pytest.mark.parametrize(
        ("now", "expected"),
        [
            pytest.param(paris(2026, 5, 12, 6, 59), paris(2026, 5, 12, 7, 0), id="before-today"),
            pytest.param(paris(2026, 5, 12, 0, 0), paris(2026, 5, 12, 7, 0), id="midnight"),
            pytest.param(paris(2026, 5, 12, 7, 0), paris(2026, 5, 13, 7, 0), id="open-now"),
            pytest.param(paris(2026, 5, 12, 20, 0), paris(2026, 5, 13, 7, 0), id="after-today"),
            # Across DST the next opening is 07:00 local, not "+24 h".
            pytest.param(paris(2026, 3, 28, 20, 0), utc(2026, 3, 29, 5, 0), id="into-summer"),
            pytest.param(paris(2026, 3, 28, 12, 0), utc(2026, 3, 29, 5, 0), id="open-into-summer"),
            pytest.param(paris(2026, 10, 24, 20, 0), utc(2026, 10, 25, 6, 0), id="into-winter"),
            pytest.param(paris(2026, 12, 31, 21, 0), paris(2027, 1, 1, 7, 0), id="new-year"),
        ],
    )
    def test_next_opening(self, now: datetime, expected: datetime) -> None:
        assert DEFAULT.next_opening(now) == expected
        assert Window(Hours(), "Europe/Paris").next_opening(now) == expected

    def test_across_dst_is_not_24_hours(self) -> None:
        open_sat = DEFAULT.next_opening(paris(2026, 3, 27, 20, 0))
        open_sun = DEFAULT.next_opening(paris(2026, 3, 28, 20, 0))
        assert open_sun - open_sat == timedelta(hours=23)


class TestDisabledHours:
    """SPEC §2: ``hours.enabled`` false — no "Uniquement entre": always open."""

    WINDOW = Window(Hours(enabled=False), "Europe/Paris")

    @pytest.mark.parametrize("hm", [(0, 0), (3, 0), (6, 59), (20, 0), (23, 59)])
    def test_always_open(self, hm: tuple[int, int]) -> None:
        now = paris(2026, 5, 12, *hm)
        assert self.WINDOW.is_open(now)
        assert self.WINDOW.state(now) == WindowState(True, None, None)
        assert self.WINDOW.next_opening(now) == now


class TestLocalTimeOddities:
    """A start or end inside a DST change: see the rule in ``hours.py``'s docstring."""

    def test_start_in_spring_forward_gap_opens_when_the_gap_ends(self) -> None:
        # 02:30 does not exist on 2026-03-29 in Paris: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
        window = Window(Hours(start=time(2, 30), end=time(9, 0)), "Europe/Paris")
        assert not window.is_open(utc(2026, 3, 29, 0, 59, 59))
        assert window.is_open(utc(2026, 3, 29, 1, 0))
        assert window.state(utc(2026, 3, 29, 0, 0)).opens_at == utc(2026, 3, 29, 1, 0)
        # The day before and after, 02:30 local as usual.
        assert window.next_opening(utc(2026, 3, 28, 12, 0)) == utc(2026, 3, 29, 1, 0)
        assert window.next_opening(utc(2026, 3, 29, 12, 0)) == paris(2026, 3, 30, 2, 30)

    def test_end_in_spring_forward_gap_closes_when_the_gap_ends(self) -> None:
        window = Window(Hours(start=time(1, 0), end=time(2, 30)), "Europe/Paris")
        assert window.is_open(utc(2026, 3, 29, 0, 59, 59))  # 01:59:59 CET
        assert window.state(utc(2026, 3, 29, 0, 30)).closes_at == utc(2026, 3, 29, 1, 0)
        assert not window.is_open(utc(2026, 3, 29, 1, 0))  # 03:00 CEST

    def test_start_in_fall_back_hour_counts_its_first_occurrence(self) -> None:
        # 02:30 happens twice on 2026-10-25: 00:30 UTC (CEST) and 01:30 UTC (CET).
        window = Window(Hours(start=time(2, 30), end=time(9, 0)), "Europe/Paris")
        assert not window.is_open(utc(2026, 10, 25, 0, 29))
        assert window.is_open(utc(2026, 10, 25, 0, 30))
        assert window.is_open(utc(2026, 10, 25, 1, 15))  # 02:15 CET, the second time round

    def test_end_in_fall_back_hour_closes_once(self) -> None:
        window = Window(Hours(start=time(1, 0), end=time(2, 30)), "Europe/Paris")
        assert window.is_open(utc(2026, 10, 25, 0, 29))
        assert not window.is_open(utc(2026, 10, 25, 0, 30))
        assert not window.is_open(utc(2026, 10, 25, 1, 15))  # 02:15 CET: already closed today

    def test_both_edges_in_the_spring_gap_skip_the_day(self) -> None:
        # 02:00-03:00 does not exist on 2027-03-28 in Paris (01:00 UTC: 02:00 CET -> 03:00
        # CEST): the window opens and closes at the same instant, so it is never open that
        # day, and the opening announced is the next day's 02:00, never 03:00 CEST.
        window = Window(Hours(start=time(2, 0), end=time(3, 0)), "Europe/Paris")
        next_day = paris(2027, 3, 29, 2, 0)
        assert window.state(paris(2027, 3, 27, 12, 0)) == WindowState(False, next_day, None)
        assert window.state(utc(2027, 3, 28, 0, 59, 59)) == WindowState(False, next_day, None)
        assert window.state(utc(2027, 3, 28, 1, 0)) == WindowState(False, next_day, None)
        assert not window.is_open(utc(2027, 3, 28, 1, 0))
        assert window.next_opening(paris(2027, 3, 27, 2, 30)) == next_day  # open the day before
        assert window.next_opening(paris(2027, 3, 27, 12, 0)) == next_day
        # A fresh window, asked first in the gap day, agrees.
        fresh = Window(Hours(start=time(2, 0), end=time(3, 0)), "Europe/Paris")
        assert fresh.state(utc(2027, 3, 28, 0, 30)).opens_at == next_day
        assert fresh.is_open(next_day)
        assert window.state(next_day) == WindowState(True, None, paris(2027, 3, 29, 3, 0))

    def test_window_partly_in_the_spring_gap_opens_at_the_end_of_the_gap(self) -> None:
        window = Window(Hours(start=time(2, 30), end=time(8, 0)), "Europe/Paris")
        state = window.state(paris(2027, 3, 27, 20, 0))
        assert state == WindowState(False, utc(2027, 3, 28, 1, 0), None)  # 03:00 CEST
        assert window.is_open(utc(2027, 3, 28, 1, 0))
        assert window.state(utc(2027, 3, 28, 1, 0)).closes_at == paris(2027, 3, 28, 8, 0)

    def test_window_in_the_autumn_fold_is_open_once(self) -> None:
        # 2027-10-31 in Paris: 03:00 CEST falls back to 02:00 CET (01:00 UTC). [02:00, 03:00)
        # opens at the first 02:00 (00:00 UTC) and closes at 03:00 CET (02:00 UTC): two hours.
        window = Window(Hours(start=time(2, 0), end=time(3, 0)), "Europe/Paris")
        assert window.state(utc(2027, 10, 30, 23, 59)) == WindowState(
            False, utc(2027, 10, 31, 0, 0), None)
        assert window.state(utc(2027, 10, 31, 0, 0)) == WindowState(
            True, None, utc(2027, 10, 31, 2, 0))
        assert window.is_open(utc(2027, 10, 31, 1, 30))  # 02:30 CET, the second time round
        assert window.state(utc(2027, 10, 31, 2, 0)) == WindowState(
            False, paris(2027, 11, 1, 2, 0), None)
        # [02:00, 02:30): closed during the second 02:00-02:30, opens once.
        short = Window(Hours(start=time(2, 0), end=time(2, 30)), "Europe/Paris")
        assert short.is_open(utc(2027, 10, 31, 0, 15))
        assert short.state(utc(2027, 10, 31, 1, 15)) == WindowState(
            False, paris(2027, 11, 1, 2, 0), None)

    def test_other_zones(self) -> None:
        window = Window(Hours(), "America/New_York")
        # 2026-03-08 is the US spring-forward day: 07:00 EDT = 11:00 UTC.
        assert not window.is_open(utc(2026, 3, 8, 10, 59))
        assert window.is_open(utc(2026, 3, 8, 11, 0))
        utc_window = Window(Hours(), "UTC")
        assert utc_window.is_open(utc(2026, 3, 8, 7, 0))
        assert not utc_window.is_open(utc(2026, 3, 8, 20, 0))

    def test_now_in_another_zone_is_the_same_instant(self) -> None:
        tokyo = ZoneInfo("Asia/Tokyo")
        now = utc(2026, 5, 12, 4, 59).astimezone(tokyo)  # 06:59 in Paris
        assert not Window(Hours(), "Europe/Paris").is_open(now)
        assert Window(Hours(), "Europe/Paris").is_open(now + timedelta(minutes=1))

    def test_naive_now_is_a_programmer_error(self) -> None:
        naive = datetime(2026, 5, 12, 12, 0)
        with pytest.raises(TypeError):
            Window(Hours(), "Europe/Paris").state(naive)
        with pytest.raises(TypeError):
            DEFAULT.is_open(naive)
        with pytest.raises(TypeError):
            Window(Hours(), "Europe/Paris").next_opening(naive)


class TestValidation:
    """SPEC §2 hours and timezone settings: invalid values are rejected with a clear sentence."""

    @pytest.mark.parametrize(
        ("hours", "message"),
        [
            pytest.param(
                Hours(start=time(8), end=time(8)), r"hours\.end doit venir après hours\.start",
                id="eq",
            ),
            pytest.param(
                Hours(start=time(20), end=time(7)),
                r"hours\.end \(07:00\) doit venir après hours\.start \(20:00\)",
                id="reversed",
            ),
            pytest.param(
                Hours(enabled=False, start=time(9), end=time(8)), "doit venir après", id="disabled"
            ),
            pytest.param(Hours(start=time(7, tzinfo=UTC)), "sans fuseau", id="aware-start"),
            pytest.param(Hours(end="20:00"), "doit être une heure du jour", id="not-a-time"),  # type: ignore[arg-type]
            pytest.param(Hours(outside="drop"), "hours.outside vaut", id="outside"),  # type: ignore[arg-type]
        ],
    )
    def test_invalid_hours(self, hours: Hours, message: str) -> None:
        with pytest.raises(InvalidSettings, match=message):
            validate_hours(hours)
        with pytest.raises(InvalidSettings, match=message):
            Window(hours, "Europe/Paris")

    @pytest.mark.parametrize(
        "hours",
        [
            Hours(),
            Hours(start=time(0, 0), end=time(23, 59)),
            Hours(start=time(7, 0), end=time(7, 1), outside=OutsideHours.DEFER),
        ],
    )
    def test_valid_hours(self, hours: Hours) -> None:
        validate_hours(hours)

    @pytest.mark.parametrize(
        "name", ["Mars/Olympus", "", "Europe", "../etc/passwd", "europe/paris", "localtime"]
    )
    def test_unknown_timezone(self, name: str) -> None:
        with pytest.raises(InvalidSettings) as info:
            validate_timezone(name)
        assert str(info.value) == f"fuseau horaire inconnu : {name!r}"
        assert info.value.field == "timezone"
        with pytest.raises(InvalidSettings):
            Window(Hours(), name)

    @pytest.mark.parametrize("name", ["Europe/Paris", "UTC", "America/Cayenne", "Indian/Reunion"])
    def test_known_timezone(self, name: str) -> None:
        validate_timezone(name)


def _reference_is_open(hours: Hours, tz: ZoneInfo, now: datetime) -> bool:
    """The wall-clock reading of G3, exact whenever start and end avoid DST changes."""
    return hours.start <= now.astimezone(tz).time() < hours.end


_ZONES = ["Europe/Paris", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC"]


class TestWindowProperties:
    """The cached interval agrees with the wall-clock definition, in any order of calls."""

    @given(
        zone=st.sampled_from(_ZONES),
        start=st.integers(4 * 60, 12 * 60),
        length=st.integers(1, 11 * 60),
        offsets=st.lists(st.integers(0, 2 * 365 * 24 * 3600), min_size=1, max_size=25),
    )
    def test_matches_wall_clock(
        self, zone: str, start: int, length: int, offsets: list[int]
    ) -> None:
        end = start + length
        hours = Hours(start=time(start // 60, start % 60), end=time(end // 60, end % 60))
        window = Window(hours, zone)
        tz = ZoneInfo(zone)
        base = utc(2025, 6, 1)
        for offset in offsets:
            now = base + timedelta(seconds=offset)
            expected = _reference_is_open(hours, tz, now)
            assert window.is_open(now) is expected
            state = window.state(now)
            assert state.is_open is expected
            if expected:
                assert state.closes_at is not None
                assert now < state.closes_at
                assert state.closes_at.astimezone(tz).time() == hours.end
            else:
                assert state.opens_at is not None
                assert now < state.opens_at
                assert state.opens_at.astimezone(tz).time() == hours.start
                assert state.opens_at - now <= timedelta(hours=25)
                assert window.next_opening(now) == state.opens_at

    @given(
        zone=st.sampled_from(_ZONES),
        start=st.integers(0, 23 * 60),
        length=st.integers(1, 3 * 60),
        offset=st.integers(0, 2 * 365 * 24 * 3600),
    )
    def test_announced_instants_are_real(
        self, zone: str, start: int, length: int, offset: int
    ) -> None:
        """Whatever the DST changes, ``opens_at`` is an instant at which the window is open
        and ``closes_at`` one at which it is closed (edges in gaps and folds included)."""
        end = min(start + length, 23 * 60 + 59)
        hours = Hours(start=time(start // 60, start % 60), end=time(end // 60, end % 60))
        now = utc(2025, 6, 1) + timedelta(seconds=offset)
        state = Window(hours, zone).state(now)
        fresh = Window(hours, zone)
        if state.is_open:
            assert state.closes_at is not None
            assert now < state.closes_at
            assert not fresh.is_open(state.closes_at)
        else:
            assert state.opens_at is not None
            assert now < state.opens_at
            assert fresh.is_open(state.opens_at)
