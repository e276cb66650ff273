"""Business calendars: when support is open, and how much open time lies between two instants.

Owns `BusinessCalendar` (IANA zone, split shifts per weekday, holiday dates and ranges),
`ALWAYS_OPEN` (24x7) and the JSON form (`to_dict` / `calendar_from_dict`). These are the
`Calendar` protocol `engine.sla` folds over. Pure and deterministic: standard library only, no I/O
or clock reads, nothing mutable at module level, so workflow code can import it in the sandbox.

Semantics, all in the calendar's zone:
- An interval "09:00"-"18:00" on a weekday is the real time between the instant the local clock
  first shows 09:00 that day and the instant it first shows 18:00; "24:00" is the next midnight.
  So business time is always real elapsed seconds: a "00:00"-"24:00" day lasts 23 h or 25 h on DST
  change days. A wall time inside a spring-forward gap maps to the instant of the jump; an
  ambiguous one (fall-back) to its first occurrence. Both maps are monotonic, so intervals that
  touch in wall time still touch in real time and nothing is counted twice or lost.
- Intervals are half-open: open at 09:00:00, closed at 18:00:00.
- A weekday missing from `hours` is closed. Holidays are local dates; a holiday closes the
  whole day (a range is inclusive at both ends).
- Results are computed in whole microseconds (timedelta arithmetic), so `add_business_seconds`
  and `business_seconds` are exact inverses; returned datetimes are aware and in UTC.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["ALWAYS_OPEN", "WEEKDAYS", "AlwaysOpenCalendar", "BusinessCalendar", "calendar_from_dict"]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# add_business_seconds / next_open give up after this many local days, so a calendar whose
# every open day is a holiday fails loudly instead of spinning.
SEARCH_DAYS = 3653
_DAY = timedelta(days=1)
_SECOND = timedelta(seconds=1)
_USEC = timedelta(microseconds=1)
_HHMM = re.compile(r"(\d\d):(\d\d)")
_DAYS_REMEMBERED = 4096  # per calendar: eleven years of days, a few hundred kB at most

Holiday = date | tuple[date, date]


def _utc(dt: datetime, what: str = "datetime") -> datetime:
    if not isinstance(dt, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{what} {dt.isoformat()} is naive; calendars need aware datetimes")
    return dt.astimezone(UTC)


def _check_seconds(seconds: float) -> None:
    if seconds < 0:
        raise ValueError(f"seconds must be >= 0, got {seconds}")


class BusinessCalendar:
    """Open hours per weekday in one IANA zone, minus holidays. See the module docstring."""

    __slots__ = ("_days", "_hol_ends", "_hol_starts", "_holidays", "_hours", "_zone", "name", "tz")

    def __init__(
        self,
        tz: str,
        hours: Mapping[str, Sequence[Sequence[str]]],
        holidays: Iterable[Holiday] = (),
        name: str = "business",
    ) -> None:
        self.name = name
        self.tz = tz
        self._zone = _zone(tz, self._err)
        self._hours = _parse_hours(hours, self._err)
        self._holidays = _parse_holidays(holidays, self._err)
        # Merged, sorted ranges so a lookup is one bisect and a long range is skipped in one step.
        merged: list[list[date]] = []
        for lo, hi in sorted(_as_range(h) for h in self._holidays):
            if merged and lo <= merged[-1][1] + _DAY:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        self._hol_starts = [lo for lo, _ in merged]
        self._hol_ends = [hi for _, hi in merged]
        # local date -> its open intervals in UTC: a pure function of the date, and zone
        # arithmetic is most of what an SLA clock costs, asked again for the same days
        self._days: dict[date, tuple[tuple[datetime, datetime], ...]] = {}

    def _err(self, msg: str) -> ValueError:
        return ValueError(f"calendar {self.name!r}: {msg}")

    # -- the Calendar protocol -------------------------------------------------------------

    def business_seconds(self, start: datetime, end: datetime) -> float:
        """Open time in [start, end), in seconds; 0.0 if end <= start."""
        lo, hi = _utc(start, "start"), _utc(end, "end")
        if hi <= lo:
            return 0.0
        total = timedelta()
        for s, e in self._walk(self._local_date(lo) - _DAY, self._local_date(hi) + _DAY):
            if e <= lo:
                continue
            if s >= hi:
                break
            total += min(e, hi) - max(s, lo)
        return total / _SECOND

    def add_business_seconds(self, start: datetime, seconds: float) -> datetime:
        """The earliest instant (UTC) by which `seconds` of open time have passed since `start`.

        `seconds` is rounded to the microsecond. With seconds == 0 the answer is `start` itself,
        even when closed: nothing has to elapse, and rounding forward to the next opening would
        make a zero target look later than the event that met it. A positive amount that ends
        exactly at a closing time returns that closing instant, not the next opening.
        """
        _check_seconds(seconds)
        lo = _utc(start, "start")
        remaining = timedelta(seconds=seconds)
        if not remaining:
            return lo
        self._require_hours()
        first = self._local_date(lo) - _DAY
        for s, e in self._walk(first, first + timedelta(days=SEARCH_DAYS)):
            if e <= lo:
                continue
            s = max(s, lo)
            if remaining <= e - s:
                return s + remaining
            remaining -= e - s
        raise self._err(f"{seconds} business seconds after {lo.isoformat()} not reached within {SEARCH_DAYS} days")

    # -- queries ---------------------------------------------------------------------------

    def is_open(self, at: datetime) -> bool:
        t = _utc(at, "at")
        day = self._local_date(t)
        return any(s <= t < e for s, e in self._walk(day - _DAY, day + _DAY))

    def next_open(self, at: datetime) -> datetime:
        """`at` (in UTC) if open, else the next opening instant."""
        t = _utc(at, "at")
        self._require_hours()
        first = self._local_date(t) - _DAY
        for s, e in self._walk(first, first + timedelta(days=SEARCH_DAYS)):
            if e > t:
                return max(s, t)
        raise self._err(f"no opening within {SEARCH_DAYS} days after {t.isoformat()}")

    def is_holiday(self, day: date) -> bool:
        return self._holiday_end(day) is not None

    # -- JSON form -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tz": self.tz,
            "hours": {
                wd: [[_fmt(s), _fmt(e)] for s, e in self._hours[i]] for i, wd in enumerate(WEEKDAYS)
            },
            "holidays": [
                h.isoformat() if not isinstance(h, tuple) else [h[0].isoformat(), h[1].isoformat()]
                for h in self._holidays
            ],
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BusinessCalendar):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"BusinessCalendar(name={self.name!r}, tz={self.tz!r})"

    # -- internals -------------------------------------------------------------------------

    def _require_hours(self) -> None:
        if not any(self._hours):
            raise self._err("has no open hours on any weekday")

    def _local_date(self, t: datetime) -> date:
        return t.astimezone(self._zone).date()

    def _holiday_end(self, day: date) -> date | None:
        i = bisect_right(self._hol_starts, day) - 1
        if i >= 0 and self._hol_ends[i] >= day:
            return self._hol_ends[i]
        return None

    def _walk(self, day: date, last: date) -> Iterator[tuple[datetime, datetime]]:
        """Open intervals (UTC, in order) of each local day from `day` through `last`."""
        while day <= last:
            hol_end = self._holiday_end(day)
            if hol_end is not None:
                day = hol_end + _DAY
                continue
            intervals = self._days.get(day)
            if intervals is None:
                intervals = self._open_intervals(day)
            yield from intervals
            day += _DAY

    def _open_intervals(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        midnight = datetime.combine(day, time())
        found = []
        for s, e in self._hours[day.weekday()]:
            a = self._instant(midnight + timedelta(minutes=s))
            b = self._instant(midnight + timedelta(minutes=e))
            if b > a:  # a shift wholly inside a DST gap has no real time
                found.append((a, b))
        if len(self._days) >= _DAYS_REMEMBERED:
            self._days.clear()
        intervals = self._days[day] = tuple(found)
        return intervals

    def _instant(self, wall: datetime) -> datetime:
        """The real instant the local clock first shows `wall` (naive, local)."""
        first = wall.replace(tzinfo=self._zone).astimezone(UTC)  # fold=0: first occurrence
        if first.astimezone(self._zone).replace(tzinfo=None) == wall:
            return first
        # `wall` is in a spring-forward gap. fold=0 used the old offset (an instant after the
        # jump), fold=1 the new one (an instant before it); the jump lies between them.
        lo = wall.replace(tzinfo=self._zone, fold=1).astimezone(UTC)
        hi, before = first, lo.astimezone(self._zone).utcoffset()
        while hi - lo > _USEC:
            mid = lo + (hi - lo) // 2
            if mid.astimezone(self._zone).utcoffset() == before:
                lo = mid
            else:
                hi = mid
        return hi


class AlwaysOpenCalendar:
    """24x7: business time is wall time; no zone or holidays apply."""

    __slots__ = ()
    name = "24x7"
    tz = "UTC"

    def business_seconds(self, start: datetime, end: datetime) -> float:
        lo, hi = _utc(start, "start"), _utc(end, "end")
        return (hi - lo) / _SECOND if hi > lo else 0.0

    def add_business_seconds(self, start: datetime, seconds: float) -> datetime:
        _check_seconds(seconds)
        return _utc(start, "start") + timedelta(seconds=seconds)

    def is_open(self, at: datetime) -> bool:
        _utc(at, "at")
        return True

    def next_open(self, at: datetime) -> datetime:
        return _utc(at, "at")

    def is_holiday(self, day: date) -> bool:
        return False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tz": self.tz,
            "hours": {wd: [["00:00", "24:00"]] for wd in WEEKDAYS},
            "holidays": [],
        }

    def __repr__(self) -> str:
        return "ALWAYS_OPEN"


ALWAYS_OPEN = AlwaysOpenCalendar()


def calendar_from_dict(d: Mapping[str, Any]) -> BusinessCalendar:
    """Build and validate a calendar from its JSON form (see `BusinessCalendar.to_dict`)."""
    if not isinstance(d, Mapping):
        raise ValueError(f"calendar: expected a mapping, got {type(d).__name__}")
    name = d.get("name", "business")
    if not isinstance(name, str) or not name:
        raise ValueError(f"calendar: name must be a non-empty string, got {name!r}")
    unknown = sorted(set(d) - {"name", "tz", "hours", "holidays"})
    if unknown:
        raise ValueError(f"calendar {name!r}: unknown key {unknown[0]!r} (expected name, tz, hours, holidays)")
    for key in ("tz", "hours"):
        if key not in d:
            raise ValueError(f"calendar {name!r}: missing {key!r}")
    raw = d.get("holidays", [])
    if not isinstance(raw, list):
        raise ValueError(f"calendar {name!r}: holidays must be a list")
    holidays: list[Holiday] = []
    for i, h in enumerate(raw):
        try:
            if isinstance(h, str):
                holidays.append(date.fromisoformat(h))
            elif isinstance(h, list) and len(h) == 2 and all(isinstance(x, str) for x in h):
                holidays.append((date.fromisoformat(h[0]), date.fromisoformat(h[1])))
            else:
                raise ValueError("expected 'YYYY-MM-DD' or ['YYYY-MM-DD', 'YYYY-MM-DD']")
        except ValueError as exc:
            raise ValueError(f"calendar {name!r}: holidays[{i}]: {h!r}: {exc}") from None
    return BusinessCalendar(tz=d["tz"], hours=d["hours"], holidays=holidays, name=name)


# -- parsing helpers ------------------------------------------------------------------------


def _zone(tz: Any, err: Any) -> ZoneInfo:
    if not isinstance(tz, str) or not tz:
        raise err(f"tz must be an IANA zone name, got {tz!r}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise err(f"unknown time zone {tz!r}") from None


def _minutes(value: Any, where: str, err: Any) -> int:
    m = _HHMM.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise err(f"{where}: malformed time {value!r} (expected HH:MM)")
    h, mi = int(m[1]), int(m[2])
    if mi > 59 or h > 24 or (h == 24 and mi):
        raise err(f"{where}: malformed time {value!r} (expected 00:00 to 24:00)")
    return h * 60 + mi


def _fmt(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _parse_hours(hours: Any, err: Any) -> tuple[tuple[tuple[int, int], ...], ...]:
    if not isinstance(hours, Mapping):
        raise err(f"hours must be a mapping of weekday to intervals, got {type(hours).__name__}")
    for key in hours:
        if key not in WEEKDAYS:
            raise err(f"hours: unknown weekday {key!r} (expected one of {', '.join(WEEKDAYS)})")
    week = []
    for wd in WEEKDAYS:  # a missing weekday is closed
        spans = hours.get(wd) or []
        if isinstance(spans, (str, bytes)) or not isinstance(spans, Sequence):
            raise err(f"hours.{wd}: expected a list of [start, end] pairs, got {spans!r}")
        parsed: list[tuple[int, int, int]] = []
        for i, span in enumerate(spans):
            where = f"hours.{wd}[{i}]"
            if isinstance(span, (str, bytes)) or not isinstance(span, Sequence) or len(span) != 2:
                raise err(f"{where}: expected a [start, end] pair, got {span!r}")
            s, e = _minutes(span[0], where, err), _minutes(span[1], where, err)
            if s == 24 * 60:
                raise err(f"{where}: 24:00 is only allowed as an end")
            if e <= s:
                why = "is empty" if e == s else "ends before it starts"
                raise err(f"{where}: {span[0]}-{span[1]} {why}")
            parsed.append((s, e, i))
        parsed.sort()
        for (s0, e0, i0), (s1, e1, i1) in pairwise(parsed):
            if s1 < e0:
                raise err(f"hours.{wd}[{i1}]: {_fmt(s1)}-{_fmt(e1)} overlaps hours.{wd}[{i0}] {_fmt(s0)}-{_fmt(e0)}")
        week.append(tuple((s, e) for s, e, _ in parsed))
    return tuple(week)


def _parse_holidays(holidays: Iterable[Any], err: Any) -> tuple[Holiday, ...]:
    out: list[Holiday] = []
    for i, h in enumerate(holidays):
        if _is_date(h):
            out.append(h)
        elif isinstance(h, (tuple, list)) and len(h) == 2 and all(_is_date(x) for x in h):
            if h[1] < h[0]:
                raise err(f"holidays[{i}]: {h[0]} to {h[1]} ends before it starts")
            out.append((h[0], h[1]))
        else:
            raise err(f"holidays[{i}]: expected a date or an inclusive (start, end) pair, got {h!r}")
    return tuple(out)


def _is_date(x: Any) -> bool:
    # datetime is a date subclass; a holiday with a time of day is almost surely a mistake
    return isinstance(x, date) and not isinstance(x, datetime)


def _as_range(h: Holiday) -> tuple[date, date]:
    return h if isinstance(h, tuple) else (h, h)
