"""Business calendars in rules files: the `calendars:` section, its JSON Schema, and its
normalised form (holidays from .ics files read at load time, so the ruleset version covers them
and workers never need the .ics file).

    calendars:
      cn-office:
        description: Shanghai office, lunch break 12:00-13:00
        timezone: Asia/Shanghai
        hours: {mon: ["09:00-12:00", "13:00-18:00"], ..., sat: [], sun: []}
        holidays: [2026-10-01, [2026-10-01, 2026-10-07]]
        holidays_ics: holidays-cn-2026.ics      # relative to the rules file; a list is fine too
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from engine.calendar import WEEKDAYS, calendar_from_dict
from engine.ics import holiday_entries, read_ics

INTERVAL_PATTERN = r"^\d{1,2}:\d{2}\s*-\s*\d{1,2}:\d{2}$"

CALENDAR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["timezone", "hours"],
    "additionalProperties": False,
    "properties": {
        "description": {"type": "string"},
        "timezone": {"type": "string", "description": "IANA time zone, e.g. Asia/Shanghai"},
        "hours": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                day: {
                    "type": "array",
                    "items": {"anyOf": [
                        {"type": "string", "pattern": INTERVAL_PATTERN},
                        {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
                    ]},
                }
                for day in WEEKDAYS
            },
        },
        # dates arrive as YAML dates or ISO strings; checked when the calendar is built
        "holidays": {"type": "array"},
        "holidays_ics": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    },
}


class CalendarProblem(ValueError):
    def __init__(self, key: tuple[Any, ...], message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.hint = hint


def _day(value: Any) -> str:
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def normalise_calendar(name: str, spec: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    """The calendar as data (engine.calendar's dict form plus description); raises CalendarProblem."""
    hours: dict[str, list[list[str]]] = {}
    for day, intervals in (spec.get("hours") or {}).items():
        out = []
        for item in intervals:
            if isinstance(item, str):
                start, _, end = item.partition("-")
                out.append([start.strip(), end.strip()])
            else:
                out.append([str(item[0]), str(item[1])])
        hours[day] = out
    holidays: list[Any] = []
    for i, h in enumerate(spec.get("holidays") or []):
        if isinstance(h, (list, tuple)) and len(h) == 2:
            holidays.append([_day(h[0]), _day(h[1])])
        elif isinstance(h, (date, str)):
            holidays.append(_day(h))
        else:
            raise CalendarProblem(("holidays", i), f"holiday {h!r} is not a date or a [first, last] pair",
                                  "write 2026-10-01 or [2026-10-01, 2026-10-07]")
    ics = spec.get("holidays_ics") or []
    for path_text in [ics] if isinstance(ics, str) else ics:
        path = Path(path_text)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            entries = holiday_entries(read_ics(path, tz=spec.get("timezone")))
        except OSError as exc:
            raise CalendarProblem(("holidays_ics",), f"cannot read {path}: {exc.strerror or exc}",
                                  "the path is relative to the rules file") from None
        except ValueError as exc:
            raise CalendarProblem(("holidays_ics",), str(exc)) from None
        for entry in entries:
            holidays.append([entry[0].isoformat(), entry[1].isoformat()] if isinstance(entry, tuple) else entry.isoformat())
    data = {"name": name, "tz": spec.get("timezone"), "hours": hours, "holidays": holidays}
    try:
        built = calendar_from_dict(data)
    except ValueError as exc:
        message = str(exc).split(": ", 1)[1] if str(exc).startswith("calendar") and ": " in str(exc) else str(exc)
        key: tuple[Any, ...] = ("timezone",) if "zone" in message else ("hours",) if "hours" in message else ()
        raise CalendarProblem(key, message) from None
    out = built.to_dict()
    out["description"] = " ".join(str(spec.get("description") or "").split())
    return out


def from_normalised(spec: dict[str, Any]) -> dict[str, Any]:
    """A normalised calendar read back (Ruleset.from_dict) in the rules-file shape."""
    return {
        "description": spec.get("description", ""),
        "timezone": spec["tz"],
        "hours": spec["hours"],
        "holidays": spec.get("holidays", []),
    }


def policies_with_calendars(ruleset: Any) -> dict[str, dict[str, Any]]:
    """The ruleset's SLA policies with their calendar embedded as data (engine.calendar dict form),
    so a pure SLA clock (workflow, audit, backtest) needs nothing else."""
    calendars = ruleset.section("calendars") or {}
    out: dict[str, dict[str, Any]] = {}
    for name, policy in ruleset.sla_policies.items():
        policy = dict(policy)
        if policy.get("calendar") in calendars:
            spec = calendars[policy["calendar"]]
            policy["calendar"] = {"name": policy["calendar"], "tz": spec["timezone"], "hours": spec["hours"], "holidays": spec["holidays"]}
        out[name] = policy
    return out
