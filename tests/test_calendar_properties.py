"""Property-based checks of business calendars (hypothesis): the invariants SLA clocks rely on."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.calendar import BusinessCalendar

SHANGHAI_TZ = ZoneInfo("Asia/Shanghai")
BERLIN_TZ = ZoneInfo("Europe/Berlin")
WEEKDAY = [("09:00", "12:00"), ("13:00", "18:00")]
SHANGHAI = BusinessCalendar(
    tz="Asia/Shanghai",
    hours={d: WEEKDAY for d in ("mon", "tue", "wed", "thu", "fri")},
    holidays=[date(2026, 10, 1), (date(2026, 10, 2), date(2026, 10, 7)), date(2027, 1, 1)],
    name="sh",
)
BERLIN_24 = BusinessCalendar(tz="Europe/Berlin", hours={d: [("00:00", "24:00")] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}, name="berlin-24")
NEW_YORK = BusinessCalendar(
    tz="America/New_York",
    hours={d: [("01:00", "04:00"), ("08:00", "17:30")] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    name="ny",
)
CALENDARS = st.sampled_from([SHANGHAI, BERLIN_24, NEW_YORK])

instants = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(timezone.utc)
)
durations = st.floats(min_value=0, max_value=60 * 86400, allow_nan=False).map(lambda x: round(x, 6))


@settings(max_examples=300, deadline=None)
@given(CALENDARS, instants, durations)
def test_adding_then_measuring_gives_the_same_duration(cal, start, seconds):
    end = cal.add_business_seconds(start, seconds)
    assert abs(cal.business_seconds(start, end) - seconds) < 1e-5


@settings(max_examples=200, deadline=None)
@given(CALENDARS, instants, durations, durations)
def test_results_are_monotonic(cal, start, a, b):
    lo, hi = sorted((a, b))
    assert cal.add_business_seconds(start, lo) <= cal.add_business_seconds(start, hi)
    end_lo, end_hi = start + timedelta(seconds=lo), start + timedelta(seconds=hi)
    assert cal.business_seconds(start, end_lo) <= cal.business_seconds(start, end_hi)


@settings(max_examples=200, deadline=None)
@given(instants, st.floats(min_value=0, max_value=86400))
def test_no_time_passes_outside_hours_or_on_holidays(start, span):
    end = start + timedelta(seconds=span)
    measured = SHANGHAI.business_seconds(start, end)
    # Walk a grid of 200 steps: a step open at both ends is all business time (steps are shorter
    # than the lunch break), and only steps holding an opening or closing (at most 5 in a day)
    # can differ.
    step = max(span / 200, 1.0)
    t, approx = start, 0.0
    while t < end:
        nxt = min(t + timedelta(seconds=step), end)
        if SHANGHAI.is_open(t) and SHANGHAI.is_open(nxt - timedelta(microseconds=1)):
            approx += (nxt - t).total_seconds()
        t = nxt
    assert measured >= approx - 1e-6  # every fully open step is counted
    assert measured <= approx + 5 * step + 1e-6  # and nothing outside the hours


@given(st.sampled_from([date(2026, 10, 1), date(2026, 10, 4), date(2027, 1, 1), date(2026, 11, 28)]))
def test_a_holiday_or_weekend_counts_nothing(day):
    start = datetime(day.year, day.month, day.day, 0, 0, tzinfo=SHANGHAI_TZ)
    assert SHANGHAI.business_seconds(start, start + timedelta(days=1)) == 0


@given(st.integers(min_value=2026, max_value=2030))
def test_dst_days_have_the_right_length(year):
    # last Sunday of March: 23 hours; last Sunday of October: 25 hours; any other Sunday: 24
    def last_sunday(month: int) -> date:
        d = date(year, month, 31)
        return d - timedelta(days=(d.weekday() - 6) % 7)

    for day, hours in ((last_sunday(3), 23), (last_sunday(10), 25), (last_sunday(3) - timedelta(days=7), 24)):
        start = datetime(day.year, day.month, day.day, tzinfo=BERLIN_TZ)
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=BERLIN_TZ)
        assert BERLIN_24.business_seconds(start, end) == hours * 3600
