"""iCalendar (.ics) holiday import for business calendars.

Owns reading the VEVENTs of an .ics file (RFC 5545) as holidays: DTSTART/DTEND (all-day
VALUE=DATE and date-time forms, or DURATION), SUMMARY, STATUS:CANCELLED, EXDATE and simple
yearly recurrence (RRULE FREQ=YEARLY with optional INTERVAL, COUNT or UNTIL). Everything else
(VTIMEZONE, VALARM, other properties) is read past. The result feeds
`BusinessCalendar(holidays=holiday_entries(...))`.

Standard library only. Malformed input raises a one-line ValueError "<file>:<line>: <what>".
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["IcsHoliday", "holiday_entries", "parse_ics", "read_ics"]

# An RRULE with neither COUNT nor UNTIL, and no `until` from the caller, is expanded this many
# years from its own DTSTART. Files often start yearly holidays decades back: pass `until`.
HORIZON_YEARS = 10

_CONTENT = re.compile(
    r'([A-Za-z0-9-]+)((?:;[A-Za-z0-9-]+=(?:"[^"]*"|[^";:,]*)(?:,(?:"[^"]*"|[^";:,]*))*)*):(.*)'
)
_PARAM = re.compile(r';([A-Za-z0-9-]+)=((?:"[^"]*"|[^";:,]*)(?:,(?:"[^"]*"|[^";:,]*))*)')
_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_DATETIME = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(Z?)")
_DURATION = re.compile(r"P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")
_UNESCAPE = re.compile(r"\\([\\;,nN])")

Moment = date | datetime


@dataclass(frozen=True)
class IcsHoliday:
    summary: str
    start: date
    end: date  # inclusive

    def entry(self) -> date | tuple[date, date]:
        """The form `BusinessCalendar(holidays=...)` takes."""
        return self.start if self.start == self.end else (self.start, self.end)


@dataclass
class _Prop:
    line: int
    params: dict[str, str]
    value: str


class _Parser:
    def __init__(self, source: str, tz: str | None, until: date | None) -> None:
        self.source = source
        self.until = until
        self.zone: ZoneInfo | None = None
        if tz is not None:
            try:
                self.zone = ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError, OSError):
                raise ValueError(f"{source}: unknown time zone {tz!r}") from None

    def fail(self, line: int, msg: str) -> ValueError:
        return ValueError(f"{self.source}:{line}: {msg}")

    # -- lines and components --------------------------------------------------------------

    def logical_lines(self, data: bytes) -> list[tuple[int, str]]:
        """Unfolded content lines with the number of the physical line each starts on.

        Unfolding happens on bytes: folding may split a multi-byte UTF-8 character.
        """
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        out: list[tuple[int, bytearray]] = []
        for n, raw in enumerate(re.split(rb"\r\n|\n|\r", data), start=1):
            if raw[:1] in (b" ", b"\t"):
                if not out:
                    raise self.fail(n, "continuation line with nothing to continue")
                out[-1][1].extend(raw[1:])
            elif raw.strip():
                out.append((n, bytearray(raw)))
        lines = []
        for n, raw in out:
            try:
                lines.append((n, raw.decode("utf-8")))
            except UnicodeDecodeError:
                raise self.fail(n, "not valid UTF-8") from None
        return lines

    def parse(self, data: bytes) -> list[IcsHoliday]:
        lines = self.logical_lines(data)
        if not lines:
            raise self.fail(1, "empty file, expected BEGIN:VCALENDAR")
        stack: list[tuple[str, int]] = []
        event: dict[str, _Prop] = {}
        exdates: list[_Prop] = []
        holidays: list[IcsHoliday] = []
        seen_calendar = False
        for n, text in lines:
            m = _CONTENT.fullmatch(text)
            if m is None:
                raise self.fail(n, f"malformed content line {text[:40]!r} (expected NAME[;PARAM=..]:VALUE)")
            name, value = m[1].upper(), m[3]
            params = {k.upper(): v.strip('"') for k, v in _PARAM.findall(m[2])}
            if name == "BEGIN":
                comp = value.strip().upper()
                if not stack and (comp != "VCALENDAR" or seen_calendar):
                    raise self.fail(n, f"BEGIN:{comp} outside VCALENDAR")
                if comp == "VEVENT":
                    if stack and stack[-1][0] != "VCALENDAR":
                        raise self.fail(n, f"BEGIN:VEVENT inside {stack[-1][0]} (line {stack[-1][1]})")
                    event, exdates = {}, []
                seen_calendar = True
                stack.append((comp, n))
            elif name == "END":
                comp = value.strip().upper()
                if not stack or stack[-1][0] != comp:
                    open_ = f"BEGIN:{stack[-1][0]} (line {stack[-1][1]})" if stack else "nothing"
                    raise self.fail(n, f"END:{comp} does not close {open_}")
                _, begun = stack.pop()
                if comp == "VEVENT" and stack and stack[-1][0] == "VCALENDAR":
                    holidays.extend(self.event(begun, event, exdates))
            elif not stack:
                raise self.fail(n, f"{name} outside VCALENDAR")
            elif stack[-1][0] == "VEVENT":  # not VALARM or VTIMEZONE, whose DTSTART means other things
                prop = _Prop(n, params, value)
                if name == "EXDATE":
                    exdates.append(prop)
                elif name in event:
                    if name in ("DTSTART", "DTEND", "DURATION", "RRULE"):
                        raise self.fail(n, f"second {name} in one VEVENT (first on line {event[name].line})")
                else:
                    event[name] = prop
        if stack:
            comp, begun = stack[-1]
            raise self.fail(lines[-1][0], f"BEGIN:{comp} (line {begun}) is never closed with END:{comp}")
        return sorted(holidays, key=lambda h: (h.start, h.end, h.summary))

    # -- one event -------------------------------------------------------------------------

    def event(self, begun: int, props: dict[str, _Prop], exdates: list[_Prop]) -> list[IcsHoliday]:
        if "STATUS" in props and props["STATUS"].value.strip().upper() == "CANCELLED":
            return []
        if "DTSTART" not in props:
            raise self.fail(begun, "VEVENT has no DTSTART")
        start = self.moment(props["DTSTART"])
        all_day = not isinstance(start, datetime)
        if "DTEND" in props:
            end_prop = props["DTEND"]
            end = self.moment(end_prop)
            if isinstance(end, datetime) == all_day:
                raise self.fail(end_prop.line, "DTEND and DTSTART must both be dates or both date-times")
            if not all_day and (end.tzinfo is None) != (start.tzinfo is None):  # type: ignore[union-attr]
                raise self.fail(end_prop.line, "DTEND and DTSTART mix floating and zoned times")
        elif "DURATION" in props:
            end_prop = props["DURATION"]
            end = start + self.duration(end_prop, all_day)
        else:
            end_prop = props["DTSTART"]
            end = start + timedelta(days=1) if all_day else start  # RFC 5545: one day / an instant
        if (end <= start) if all_day else (end < start):  # type: ignore[operator]
            raise self.fail(end_prop.line, "event ends before it starts")
        summary = _UNESCAPE.sub(
            lambda m: "\n" if m[1] in "nN" else m[1], props["SUMMARY"].value if "SUMMARY" in props else ""
        ).strip()
        skip = {self.day(self.moment(p, v)) for p in exdates for v in p.value.split(",")}
        out = []
        for occ in self.occurrences(start, props.get("RRULE")):
            if self.day(occ) in skip:
                continue
            occ_end = occ + (end - start)  # type: ignore[operator]
            # DTEND is exclusive: an all-day event's last day is the one before it, and a timed
            # event ending exactly at midnight does not touch the next day. A timed event closes
            # every day it touches, even partly: holidays are whole days.
            if all_day:
                last = occ_end - timedelta(days=1)
            else:
                last = self.day(occ_end - timedelta(microseconds=1) if occ_end > occ else occ_end)
            out.append(IcsHoliday(summary, self.day(occ), last))
        return out

    def occurrences(self, start: Moment, rule: _Prop | None) -> list[Moment]:
        if rule is None:
            return [start]
        parts: dict[str, str] = {}
        for part in rule.value.split(";"):
            key, eq, val = part.partition("=")
            if not eq:
                raise self.fail(rule.line, f"malformed RRULE part {part!r}")
            parts[key.strip().upper()] = val.strip()
        if parts.get("FREQ", "").upper() != "YEARLY":
            raise self.fail(rule.line, f"unsupported RRULE FREQ={parts.get('FREQ', '')} (only FREQ=YEARLY)")
        unsupported = sorted(set(parts) - {"FREQ", "COUNT", "UNTIL", "INTERVAL", "BYMONTH", "BYMONTHDAY", "WKST"})
        if unsupported:
            raise self.fail(rule.line, f"unsupported RRULE part {unsupported[0]} (only simple yearly rules)")
        for key, own in (("BYMONTH", start.month), ("BYMONTHDAY", start.day)):
            if key in parts and parts[key] != str(own) and parts[key] != f"{own:02d}":
                raise self.fail(rule.line, f"unsupported RRULE {key}={parts[key]} (must match DTSTART)")
        if "COUNT" in parts and "UNTIL" in parts:
            raise self.fail(rule.line, "RRULE has both COUNT and UNTIL")
        count = self.positive(rule, parts, "COUNT")
        interval = self.positive(rule, parts, "INTERVAL") or 1
        until = self.day(self.moment(rule, parts["UNTIL"])) if "UNTIL" in parts else None
        if count is None and until is None:
            until = self.until or date(min(start.year + HORIZON_YEARS - 1, date.max.year), 12, 31)
        out: list[Moment] = []
        year = start.year
        while year <= date.max.year and (count is None or len(out) < count):
            try:
                occ = start.replace(year=year)
            except ValueError:  # Feb 29 in a common year: RFC 5545 skips it
                occ = None
            if occ is not None:
                if until is not None and self.day(occ) > until:
                    break
                out.append(occ)
            year += interval
        return out

    # -- values ----------------------------------------------------------------------------

    def moment(self, prop: _Prop, value: str | None = None) -> Moment:
        text = (prop.value if value is None else value).strip()
        is_date = prop.params.get("VALUE", "").upper() == "DATE"
        m = (_DATE if is_date else _DATETIME).fullmatch(text)
        if m is None and not is_date and value is not None:  # UNTIL/EXDATE may be either form
            m = _DATE.fullmatch(text)
        if m is not None and m.re is _DATETIME:
            zone: tzinfo | None = UTC if m[7] else None
            if zone is None and "TZID" in prop.params:
                zone = self.named_zone(prop)
        try:
            if m is not None and m.re is _DATE:
                return date(int(m[1]), int(m[2]), int(m[3]))
            if m is not None:
                return datetime(*(int(m[i]) for i in range(1, 7)), tzinfo=zone)  # type: ignore[misc]
        except ValueError:  # month 13, Feb 30, 25:00 ...
            pass
        if _DATE.fullmatch(text) and not is_date:
            raise self.fail(prop.line, f"date {text!r} needs VALUE=DATE (or write a date-time YYYYMMDDTHHMMSS)")
        form = "YYYYMMDD" if is_date else "YYYYMMDDTHHMMSS[Z]"
        raise self.fail(prop.line, f"malformed date {text!r} (expected {form})")

    def named_zone(self, prop: _Prop) -> ZoneInfo:
        try:
            return ZoneInfo(prop.params["TZID"])
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise self.fail(prop.line, f"unknown TZID {prop.params['TZID']!r} (expected an IANA zone name)") from None

    def day(self, m: Moment) -> date:
        """The local date of a moment: in the target zone if given, else in the moment's own."""
        if isinstance(m, datetime):
            if m.tzinfo is not None and self.zone is not None:
                m = m.astimezone(self.zone)
            return m.date()
        return m

    def duration(self, prop: _Prop, all_day: bool) -> timedelta:
        m = _DURATION.fullmatch(prop.value.strip())
        if m is None or prop.value.strip() in ("P", "PT"):
            raise self.fail(prop.line, f"malformed DURATION {prop.value!r} (expected e.g. P3D or PT8H)")
        w, d, h, mi, s = (int(x or 0) for x in m.groups())
        delta = timedelta(weeks=w, days=d, hours=h, minutes=mi, seconds=s)
        if all_day and delta % timedelta(days=1):
            raise self.fail(prop.line, f"DURATION {prop.value!r} of an all-day event must be whole days")
        return delta

    def positive(self, rule: _Prop, parts: dict[str, str], key: str) -> int | None:
        if key not in parts:
            return None
        if not parts[key].isdigit() or int(parts[key]) < 1:
            raise self.fail(rule.line, f"RRULE {key}={parts[key]} must be a positive integer")
        return int(parts[key])


def parse_ics(
    data: str | bytes,
    source: str = "<ics>",
    *,
    tz: str | None = None,
    until: date | None = None,
) -> list[IcsHoliday]:
    """Holidays in an .ics document, sorted by start date, recurrences expanded.

    `tz` is the zone whose dates count (normally the calendar's): a date-time event is the set
    of local days it touches there; without `tz`, its own TZID or UTC decides. All-day events are
    dates everywhere. Open-ended yearly rules are expanded through `until` (default: ten years
    from their DTSTART). `source` names the document in error messages.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return _Parser(source, tz, until).parse(raw)


def read_ics(
    path: str | os.PathLike[str], *, tz: str | None = None, until: date | None = None
) -> list[IcsHoliday]:
    """`parse_ics` on a file; errors name the file."""
    with open(path, "rb") as fh:
        data = fh.read()
    return parse_ics(data, os.fspath(path), tz=tz, until=until)


def holiday_entries(holidays: list[IcsHoliday]) -> list[date | tuple[date, date]]:
    return [h.entry() for h in holidays]
