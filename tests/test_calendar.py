"""Business calendars (engine.calendar) and .ics holiday import (engine.ics)."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from engine.calendar import ALWAYS_OPEN, BusinessCalendar, calendar_from_dict
from engine.ics import holiday_entries, parse_ics, read_ics

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")
BER = ZoneInfo("Europe/Berlin")
FIXTURE = Path(__file__).parent / "data" / "holidays-cn-2026.ics"
H = 3600.0

WEEKDAY_SPLIT = [("09:00", "12:00"), ("13:30", "18:00")]  # 7.5 h
CN = BusinessCalendar(
    tz="Asia/Shanghai",
    hours={d: WEEKDAY_SPLIT for d in ("mon", "tue", "wed", "thu", "fri")} | {"sat": [], "sun": []},
    holidays=[date(2026, 1, 1), (date(2026, 2, 16), date(2026, 2, 22)), (date(2026, 10, 1), date(2026, 10, 7))],
    name="cn-business",
)


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


def wall_day(tz: str, **days: list[tuple[str, str]]) -> BusinessCalendar:
    return BusinessCalendar(tz=tz, hours=days)


# -- plain business time -------------------------------------------------------------------


def test_split_shift_day():
    assert CN.business_seconds(sh(2026, 3, 2, 9), sh(2026, 3, 2, 18)) == 7.5 * H
    assert CN.business_seconds(sh(2026, 3, 2, 11), sh(2026, 3, 2, 14)) == 1.5 * H  # lunch excluded
    assert CN.business_seconds(sh(2026, 3, 2, 12, 15), sh(2026, 3, 2, 13, 0)) == 0


def test_start_and_end_outside_hours_weekend_and_holiday():
    # Fri 20:00 .. Mon 08:00: nothing; Fri 17:00 .. Mon 10:00: 1 h + 1 h
    assert CN.business_seconds(sh(2026, 3, 6, 20), sh(2026, 3, 9, 8)) == 0
    assert CN.business_seconds(sh(2026, 3, 6, 17), sh(2026, 3, 9, 10)) == 2 * H
    # start on a Saturday, end inside a holiday week
    assert CN.business_seconds(sh(2026, 2, 14, 10), sh(2026, 2, 18, 10)) == 0
    # Sep 30 (Wed) 17:00 .. Oct 8 (Thu) 10:00 crosses the whole National Day week
    assert CN.business_seconds(sh(2026, 9, 30, 17), sh(2026, 10, 8, 10)) == 2 * H
    assert CN.business_seconds(sh(2026, 3, 2, 10), sh(2026, 3, 2, 9)) == 0.0


def test_input_zone_does_not_matter_and_output_is_utc():
    a = CN.add_business_seconds(sh(2026, 3, 6, 17), 2 * H)
    b = CN.add_business_seconds(sh(2026, 3, 6, 17).astimezone(NY), 2 * H)
    assert a == b == sh(2026, 3, 9, 10) and a.tzinfo is UTC
    assert CN.business_seconds(sh(2026, 3, 6, 17).astimezone(UTC), sh(2026, 3, 9, 10).astimezone(BER)) == 2 * H


def test_add_over_weekend_lunch_and_exact_close():
    assert CN.add_business_seconds(sh(2026, 3, 6, 17), 2 * H) == sh(2026, 3, 9, 10)
    assert CN.add_business_seconds(sh(2026, 3, 2, 11), 2 * H) == sh(2026, 3, 2, 14, 30)
    assert CN.add_business_seconds(sh(2026, 3, 2, 12, 30), 1) == sh(2026, 3, 2, 13, 30, 1)
    # the amount runs out exactly at closing: the answer is the closing instant, not next morning
    assert CN.add_business_seconds(sh(2026, 3, 2, 17), H) == sh(2026, 3, 2, 18)


def test_zero_seconds_returns_start_even_when_closed():
    saturday = sh(2026, 3, 7, 3, 4, 5)
    assert CN.add_business_seconds(saturday, 0) == saturday
    assert CN.add_business_seconds(saturday, 0).tzinfo is UTC
    with pytest.raises(ValueError, match="seconds must be >= 0"):
        CN.add_business_seconds(saturday, -1)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="naive"):
        CN.business_seconds(datetime(2026, 3, 2, 9), sh(2026, 3, 2, 10))
    with pytest.raises(ValueError, match="naive"):
        CN.is_open(datetime(2026, 3, 2, 9))


def test_year_boundary_with_new_year_holiday():
    cal = BusinessCalendar(
        "Asia/Shanghai", {d: [("09:00", "18:00")] for d in ("mon", "tue", "wed", "thu", "fri")}, [date(2026, 1, 1)]
    )
    # Wed Dec 31 2025 17:00 -> Fri Jan 2 2026 (Thu Jan 1 is a holiday)
    assert cal.business_seconds(sh(2025, 12, 31, 17), sh(2026, 1, 2, 10)) == 2 * H
    assert cal.add_business_seconds(sh(2025, 12, 31, 17), 2 * H) == sh(2026, 1, 2, 10)
    assert cal.next_open(sh(2025, 12, 31, 18)) == sh(2026, 1, 2, 9)


def test_midnight_spanning_night_shift():
    # a night desk 22:00-06:00, written as two intervals either side of midnight
    night = {d: [("00:00", "06:00"), ("22:00", "24:00")] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    cal = BusinessCalendar("Asia/Shanghai", night)
    assert cal.business_seconds(sh(2026, 3, 2, 23), sh(2026, 3, 3, 1)) == 2 * H
    assert cal.add_business_seconds(sh(2026, 3, 2, 23, 30), H) == sh(2026, 3, 3, 0, 30)
    assert cal.add_business_seconds(sh(2026, 3, 3, 5), 2 * H) == sh(2026, 3, 3, 23)
    assert cal.is_open(sh(2026, 3, 3, 0)) and not cal.is_open(sh(2026, 3, 3, 6))


# -- DST -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "day", "hours"),
    [
        ("America/New_York", date(2026, 3, 8), 23),
        ("America/New_York", date(2026, 11, 1), 25),
        ("Europe/Berlin", date(2026, 3, 29), 23),
        ("Europe/Berlin", date(2026, 10, 25), 25),
        ("Europe/Berlin", date(2026, 10, 26), 24),
    ],
)
def test_full_day_lasts_its_real_length(tz, day, hours):
    zone = ZoneInfo(tz)
    wd = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[day.weekday()]
    cal = wall_day(tz, **{wd: [("00:00", "24:00")]})
    start = datetime.combine(day, datetime.min.time(), zone)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), zone)
    assert (end - start.astimezone(UTC)).total_seconds() == hours * H  # the real elapsed time
    assert cal.business_seconds(start - timedelta(days=2), end + timedelta(days=2)) == hours * H
    assert cal.add_business_seconds(start, hours * H) == end


@pytest.mark.parametrize(
    ("tz", "day", "shift", "expected_hours"),
    [
        # shift across the 02:00-03:00 gap: 01:00 EST .. 04:00 EDT is 2 real hours
        ("America/New_York", date(2026, 3, 8), ("01:00", "04:00"), 2),
        # across the repeated hour: 01:00 EDT .. 04:00 EST is 4 real hours
        ("America/New_York", date(2026, 11, 1), ("01:00", "04:00"), 4),
        # a shift starting inside the gap starts when the clock jumps (03:00 EDT)
        ("America/New_York", date(2026, 3, 8), ("02:30", "05:00"), 2),
        # a shift wholly inside the gap has no real time
        ("America/New_York", date(2026, 3, 8), ("02:00", "03:00"), 0),
        # an ambiguous wall time means its first occurrence
        ("America/New_York", date(2026, 11, 1), ("01:00", "01:30"), 0.5),
        ("Europe/Berlin", date(2026, 3, 29), ("01:30", "03:30"), 1),
        ("Europe/Berlin", date(2026, 10, 25), ("01:30", "03:30"), 3),
    ],
)
def test_shift_across_dst_change(tz, day, shift, expected_hours):
    zone = ZoneInfo(tz)
    cal = wall_day(tz, sun=[shift])
    start = datetime.combine(day, datetime.min.time(), zone)
    assert cal.business_seconds(start, start + timedelta(days=1)) == expected_hours * H
    if expected_hours:
        opens = cal.next_open(start)
        assert cal.add_business_seconds(start, expected_hours * H) - opens == timedelta(hours=expected_hours)


def test_adjacent_shifts_stay_adjacent_across_dst():
    # splitting a day at a wall time inside the gap or the repeated hour loses and doubles nothing
    for day, split in ((date(2026, 3, 8), "02:30"), (date(2026, 11, 1), "01:30")):
        one = wall_day("America/New_York", sun=[("00:00", "24:00")])
        two = wall_day("America/New_York", sun=[("00:00", split), (split, "24:00")])
        start = datetime.combine(day, datetime.min.time(), NY)
        end = start + timedelta(days=1)
        assert one.business_seconds(start, end) == two.business_seconds(start, end)


def test_office_hours_over_dst_weekend():
    office = BusinessCalendar("Europe/Berlin", {d: [("09:00", "17:00")] for d in ("mon", "tue", "wed", "thu", "fri")})
    fri = datetime(2026, 3, 27, 16, tzinfo=BER)  # CET
    mon = datetime(2026, 3, 30, 10, tzinfo=BER)  # CEST
    assert office.business_seconds(fri, mon) == 2 * H
    assert office.add_business_seconds(fri, 2 * H) == mon


# -- inverse and additivity, randomised ----------------------------------------------------

RANDOM_CALENDARS = [
    CN,
    BusinessCalendar(
        "America/New_York",
        {
            "mon": [("08:00", "12:00"), ("12:30", "17:00")],
            "tue": [("00:00", "24:00")],
            "sat": [("01:00", "04:00")],
            "sun": [("00:00", "02:30"), ("02:30", "24:00")],
        },
        [(date(2026, 11, 20), date(2026, 12, 2)), date(2027, 3, 14)],
        name="ny",
    ),
    BusinessCalendar(
        "Europe/Berlin",
        {d: [("07:00", "11:00"), ("11:00", "15:00"), ("22:00", "24:00")] for d in ("mon", "wed", "fri", "sun")},
        [(date(2026, 12, 24), date(2027, 1, 6))],
        name="berlin",
    ),
]


@pytest.mark.parametrize("cal", RANDOM_CALENDARS, ids=lambda c: c.name)
def test_add_and_measure_are_inverse(cal):
    rng = random.Random(20260308)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(300):
        start = base + timedelta(microseconds=rng.randrange(int(730 * 86400e6)))
        d = rng.randrange(int(60 * 8 * 3600e6)) / 1e6  # up to ~60 business days, whole microseconds
        end = cal.add_business_seconds(start, d)
        assert cal.business_seconds(start, end) == d
        # it is the earliest such instant: a microsecond earlier is not enough
        assert d == 0 or cal.business_seconds(start, end - timedelta(microseconds=1)) < d
        assert d == 0 or cal.is_open(end - timedelta(microseconds=1))


@pytest.mark.parametrize("cal", RANDOM_CALENDARS, ids=lambda c: c.name)
def test_business_time_is_additive(cal):
    rng = random.Random(7)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(200):
        a = base + timedelta(microseconds=rng.randrange(int(730 * 86400e6)))
        b, c = sorted(a + timedelta(microseconds=rng.randrange(int(45 * 86400e6))) for _ in range(2))
        whole, parts = cal.business_seconds(a, c), cal.business_seconds(a, b) + cal.business_seconds(b, c)
        assert abs(whole - parts) < 5e-7  # equal to the microsecond; the float sum may round


# -- efficiency and termination ------------------------------------------------------------


def test_thirty_business_days_walk_per_interval(monkeypatch):
    calls = 0
    real = BusinessCalendar._instant

    def counting(self, wall):
        nonlocal calls
        calls += 1
        return real(self, wall)

    monkeypatch.setattr(BusinessCalendar, "_instant", counting)
    end = CN.add_business_seconds(sh(2026, 9, 1, 9), 30 * 7.5 * H)
    assert end == sh(2026, 10, 19, 18)  # 30 working days from Tue Sep 1, skipping the Oct 1-7 week
    assert calls <= 2 * 2 * 52  # two instants per interval, two intervals per day, ~50 days


def test_calendar_without_hours_fails_instead_of_looping():
    closed = BusinessCalendar("UTC", {}, name="closed")
    with pytest.raises(ValueError, match="calendar 'closed': has no open hours"):
        closed.add_business_seconds(datetime(2026, 1, 1, tzinfo=UTC), 1)
    with pytest.raises(ValueError, match="no open hours"):
        closed.next_open(datetime(2026, 1, 1, tzinfo=UTC))
    assert closed.business_seconds(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)) == 0
    assert closed.add_business_seconds(datetime(2026, 1, 1, tzinfo=UTC), 0) == datetime(2026, 1, 1, tzinfo=UTC)


def test_search_is_bounded_when_every_open_day_is_a_holiday():
    cal = BusinessCalendar("UTC", {"mon": [("09:00", "17:00")]}, [(date(2026, 1, 1), date(2045, 12, 31))], name="x")
    with pytest.raises(ValueError, match="not reached within 3653 days"):
        cal.add_business_seconds(datetime(2026, 1, 1, tzinfo=UTC), 1)
    with pytest.raises(ValueError, match="no opening within 3653 days"):
        cal.next_open(datetime(2026, 1, 1, tzinfo=UTC))


# -- is_open / next_open -------------------------------------------------------------------


def test_is_open_and_next_open():
    assert CN.is_open(sh(2026, 3, 2, 9)) and not CN.is_open(sh(2026, 3, 2, 12))  # half-open
    assert not CN.is_open(sh(2026, 10, 2, 10))  # holiday
    assert CN.next_open(sh(2026, 3, 2, 10)) == sh(2026, 3, 2, 10)
    assert CN.next_open(sh(2026, 3, 2, 12, 30)) == sh(2026, 3, 2, 13, 30)
    assert CN.next_open(sh(2026, 3, 6, 18)) == sh(2026, 3, 9, 9)
    assert CN.next_open(sh(2026, 9, 30, 18)) == sh(2026, 10, 8, 9)
    assert CN.next_open(sh(2026, 3, 2, 10)).tzinfo is UTC
    assert CN.is_holiday(date(2026, 2, 18)) and not CN.is_holiday(date(2026, 2, 23))


# -- 24x7 ----------------------------------------------------------------------------------


def test_always_open_is_wall_time():
    a = datetime(2026, 3, 7, 12, tzinfo=NY)
    b = datetime(2026, 3, 9, 12, tzinfo=NY)  # across spring-forward: 47 real hours
    assert ALWAYS_OPEN.business_seconds(a, b) == 47 * H
    assert ALWAYS_OPEN.business_seconds(b, a) == 0
    assert ALWAYS_OPEN.add_business_seconds(a, 47 * H) == b
    assert ALWAYS_OPEN.is_open(a) and ALWAYS_OPEN.next_open(a) == a
    twin = calendar_from_dict(ALWAYS_OPEN.to_dict())
    assert twin.business_seconds(a, b) == 47 * H and twin.add_business_seconds(a, 47 * H) == b


# -- JSON form and validation --------------------------------------------------------------


def test_dict_round_trip_through_json():
    d = CN.to_dict()
    assert d["hours"]["mon"] == [["09:00", "12:00"], ["13:30", "18:00"]] and d["hours"]["sat"] == []
    assert d["holidays"] == ["2026-01-01", ["2026-02-16", "2026-02-22"], ["2026-10-01", "2026-10-07"]]
    again = calendar_from_dict(json.loads(json.dumps(d)))
    assert again == CN and again.to_dict() == d and again.name == "cn-business"


def _cal(**over):
    d = {"name": "cn-business", "tz": "Asia/Shanghai", "hours": {"mon": [["09:00", "18:00"]]}, "holidays": []}
    d.update(over)
    return d


@pytest.mark.parametrize(
    ("d", "message"),
    [
        (
            _cal(hours={"mon": [["09:00", "12:00"], ["13:00", "12:00"]]}),
            "calendar 'cn-business': hours.mon[1]: 13:00-12:00 ends before it starts",
        ),
        (_cal(hours={"monday": [["09:00", "18:00"]]}), "calendar 'cn-business': hours: unknown weekday 'monday'"),
        (_cal(hours={"tue": [["9:00", "18:00"]]}), "calendar 'cn-business': hours.tue[0]: malformed time '9:00'"),
        (_cal(hours={"tue": [["09:00", "18:60"]]}), "calendar 'cn-business': hours.tue[0]: malformed time '18:60'"),
        (_cal(hours={"tue": [["24:00", "24:00"]]}), "calendar 'cn-business': hours.tue[0]: 24:00 is only allowed as an end"),
        (_cal(hours={"tue": [["09:00", "09:00"]]}), "calendar 'cn-business': hours.tue[0]: 09:00-09:00 is empty"),
        (_cal(hours={"tue": [["09:00"]]}), "calendar 'cn-business': hours.tue[0]: expected a [start, end] pair"),
        (
            _cal(hours={"wed": [["13:00", "18:00"], ["09:00", "13:30"]]}),
            "calendar 'cn-business': hours.wed[0]: 13:00-18:00 overlaps hours.wed[1] 09:00-13:30",
        ),
        (_cal(tz="Asia/Shangai"), "calendar 'cn-business': unknown time zone 'Asia/Shangai'"),
        (_cal(tz="../etc/passwd"), "calendar 'cn-business': unknown time zone '../etc/passwd'"),
        (_cal(holidays=["2026-13-01"]), "calendar 'cn-business': holidays[0]: '2026-13-01'"),
        (_cal(holidays=[["2026-10-07", "2026-10-01"]]), "calendar 'cn-business': holidays[0]: 2026-10-07 to 2026-10-01 ends before it starts"),
        (_cal(holiday=[]), "calendar 'cn-business': unknown key 'holiday'"),
        ({"name": "x", "hours": {}}, "calendar 'x': missing 'tz'"),
    ],
)
def test_calendar_from_dict_validation(d, message):
    with pytest.raises(ValueError) as info:
        calendar_from_dict(d)
    text = str(info.value)
    assert "\n" not in text and text.startswith(message), text


def test_constructor_validates_too():
    with pytest.raises(ValueError, match="unknown time zone"):
        BusinessCalendar("Mars/Olympus", {})
    with pytest.raises(ValueError, match=r"holidays\[0\]: expected a date"):
        BusinessCalendar("UTC", {}, [datetime(2026, 1, 1)])


# -- .ics import ---------------------------------------------------------------------------


def test_fixture_holidays_land_on_the_right_dates():
    hs = read_ics(FIXTURE, tz="Asia/Shanghai")
    assert [(h.summary, h.start, h.end) for h in hs] == [
        ("元旦", date(2026, 1, 1), date(2026, 1, 1)),
        ("春节", date(2026, 2, 16), date(2026, 2, 22)),
        ("清明节", date(2026, 4, 4), date(2026, 4, 6)),
        ("劳动节", date(2026, 5, 1), date(2026, 5, 5)),
        ("国庆节", date(2026, 10, 1), date(2026, 10, 7)),  # date-time form, ends at midnight Oct 8
    ]  # the cancelled draft is left out; the VTIMEZONE and VALARM DTSTARTs are not events
    cal = BusinessCalendar("Asia/Shanghai", {"wed": WEEKDAY_SPLIT, "thu": WEEKDAY_SPLIT}, holiday_entries(hs))
    assert cal.add_business_seconds(sh(2026, 9, 30, 17), 2 * H) == sh(2026, 10, 8, 10)
    assert calendar_from_dict(cal.to_dict()) == cal


def test_fixture_is_crlf_and_folded():
    raw = FIXTURE.read_bytes()
    assert b"\r\n " in raw and raw.count(b"\n") == raw.count(b"\r\n")
    assert parse_ics(raw.replace(b"\r\n", b"\n"), tz="Asia/Shanghai") == read_ics(FIXTURE, tz="Asia/Shanghai")


def _ics(*body: str) -> str:
    return "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//t//t//EN", *body, "END:VCALENDAR", ""])


def _event(*props: str) -> list[str]:
    return ["BEGIN:VEVENT", *props, "END:VEVENT"]


def test_unfolding_may_split_a_utf8_character():
    line = "SUMMARY:中秋节".encode()
    folded = line[:10] + b"\r\n " + line[10:]  # splits the 3-byte 中
    data = _ics(*_event("DTSTART;VALUE=DATE:20260925", "@@")).encode().replace(b"@@", folded)
    [h] = parse_ics(data)
    assert h.summary == "中秋节" and h.entry() == date(2026, 9, 25)


def test_summary_escapes():
    [h] = parse_ics(_ics(*_event("DTSTART;VALUE=DATE:20260101", r"SUMMARY:New Year\, observed\; HQ")))
    assert h.summary == "New Year, observed; HQ"


def test_yearly_rrule_count_until_interval_and_exdate():
    def dates(*props):
        return [h.entry() for h in parse_ics(_ics(*_event("DTSTART;VALUE=DATE:20260101", *props)))]

    assert dates("RRULE:FREQ=YEARLY;COUNT=3") == [date(2026, 1, 1), date(2027, 1, 1), date(2028, 1, 1)]
    assert dates("RRULE:FREQ=YEARLY;UNTIL=20280101") == [date(2026, 1, 1), date(2027, 1, 1), date(2028, 1, 1)]
    assert dates("RRULE:FREQ=YEARLY;UNTIL=20271231T235959Z") == [date(2026, 1, 1), date(2027, 1, 1)]
    assert dates("RRULE:FREQ=YEARLY;INTERVAL=2;COUNT=2") == [date(2026, 1, 1), date(2028, 1, 1)]
    assert dates("RRULE:FREQ=YEARLY;BYMONTH=1;BYMONTHDAY=1;COUNT=2") == [date(2026, 1, 1), date(2027, 1, 1)]
    assert len(dates("RRULE:FREQ=YEARLY")) == 10  # open-ended rules stop ten years on by default
    since_2000 = _ics(*_event("DTSTART;VALUE=DATE:20000101", "RRULE:FREQ=YEARLY"))
    assert parse_ics(since_2000, until=date(2027, 6, 30))[-1].entry() == date(2027, 1, 1)
    assert dates("RRULE:FREQ=YEARLY;COUNT=3", "EXDATE;VALUE=DATE:20270101") == [date(2026, 1, 1), date(2028, 1, 1)]
    multi = parse_ics(_ics(*_event("DTSTART;VALUE=DATE:20261001", "DTEND;VALUE=DATE:20261008", "RRULE:FREQ=YEARLY;COUNT=2")))
    assert [h.entry() for h in multi] == [(date(2026, 10, 1), date(2026, 10, 7)), (date(2027, 10, 1), date(2027, 10, 7))]
    leap = parse_ics(_ics(*_event("DTSTART;VALUE=DATE:20280229", "RRULE:FREQ=YEARLY;COUNT=2")))
    assert [h.entry() for h in leap] == [date(2028, 2, 29), date(2032, 2, 29)]


def test_date_time_events_use_the_calendar_zone():
    ev = _ics(*_event("DTSTART:20260930T160000Z", "DTEND:20261007T160000Z", "SUMMARY:国庆"))
    assert [h.entry() for h in parse_ics(ev, tz="Asia/Shanghai")] == [(date(2026, 10, 1), date(2026, 10, 7))]
    assert [h.entry() for h in parse_ics(ev)] == [(date(2026, 9, 30), date(2026, 10, 7))]  # UTC days
    half = _ics(*_event("DTSTART;TZID=Europe/Berlin:20261224T120000", "DTEND;TZID=Europe/Berlin:20261224T180000"))
    assert [h.entry() for h in parse_ics(half, tz="Europe/Berlin")] == [date(2026, 12, 24)]


@pytest.mark.parametrize(
    ("lines", "line_no", "message"),
    [
        (["BEGIN:VCALENDAR", "VERSION:2.0", "this is not ics", "END:VCALENDAR"], 3, "malformed content line"),
        (_ics(*_event("DTSTART;VALUE=DATE:2026-01-01")).split("\r\n"), 5, "malformed date '2026-01-01'"),
        (_ics(*_event("DTSTART:20260101")).split("\r\n"), 5, "date '20260101' needs VALUE=DATE"),
        (_ics(*_event("SUMMARY:x")).split("\r\n"), 4, "VEVENT has no DTSTART"),
        (
            _ics(*_event("DTSTART;VALUE=DATE:20260105", "DTEND;VALUE=DATE:20260101")).split("\r\n"),
            6,
            "event ends before it starts",
        ),
        (_ics(*_event("DTSTART;VALUE=DATE:20260101", "RRULE:FREQ=WEEKLY")).split("\r\n"), 6, "unsupported RRULE FREQ"),
        (
            _ics(*_event("DTSTART;VALUE=DATE:20260101", "RRULE:FREQ=YEARLY;BYDAY=MO")).split("\r\n"),
            6,
            "unsupported RRULE part BYDAY",
        ),
        (_ics(*_event("DTSTART;TZID=Mars/Base:20260101T000000")).split("\r\n"), 5, "unknown TZID 'Mars/Base'"),
        (["BEGIN:VCALENDAR", "BEGIN:VEVENT", "DTSTART;VALUE=DATE:20260101", "END:VCALENDAR"], 4, "END:VCALENDAR does not close BEGIN:VEVENT (line 2)"),
        (["BEGIN:VCALENDAR", "VERSION:2.0"], 2, "BEGIN:VCALENDAR (line 1) is never closed"),
        (["VERSION:2.0"], 1, "VERSION outside VCALENDAR"),
        ([" folded", "BEGIN:VCALENDAR"], 1, "continuation line with nothing to continue"),
    ],
)
def test_malformed_ics_names_file_and_line(tmp_path, lines, line_no, message):
    path = tmp_path / "bad.ics"
    path.write_bytes("\r\n".join(lines).encode())
    with pytest.raises(ValueError) as info:
        read_ics(path)
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{path}:{line_no}: {message}"), text
