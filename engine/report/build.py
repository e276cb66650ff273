"""Assembling a report (or a comparison) from the store: which tickets, which KPIs, which trend.

The document returned is plain JSON-able data; every renderer (text, JSON, CSV, HTML) reads it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from engine.report import kpi
from engine.report.data import TicketFacts, load_backlog, load_tickets, resolve_ruleset, ruleset_versions
from engine.store import Store

DIMENSIONS = ("channel", "priority", "category", "team", "agent", "ruleset")
_RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class BadPeriod(ValueError):
    pass


def parse_time(text: str, now: datetime) -> datetime:
    """`2026-11-01`, `2026-11-01T08:00`, `2026-11-01T08:00+08:00` (UTC when no offset), `now`, or a
    time ago: `30m`, `12h`, `7d`, `2w`."""
    text = text.strip()
    if text == "now":
        return now
    m = _RELATIVE.match(text)
    if m:
        return now - timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadPeriod(f"cannot read time {text!r}: use a date (2026-11-01), a date and time "
                        "(2026-11-01T08:00, UTC unless an offset is given), now, or a time ago (30m, 12h, 7d, 2w)") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def parse_period(text: str, now: datetime) -> tuple[datetime | None, datetime]:
    """`SINCE..UNTIL` (either side may be empty: `..2026-11-01`, `7d..`)."""
    if ".." not in text:
        raise BadPeriod(f"{text!r} is not a period: write SINCE..UNTIL, for example 2026-11-01..2026-11-08 or 14d..7d")
    a, b = text.split("..", 1)
    since = parse_time(a, now) if a.strip() else None
    until = parse_time(b, now) if b.strip() else now
    if since is not None and since >= until:
        raise BadPeriod(f"period {text!r} ends before it starts")
    return since, until


def _period_label(since: datetime | None, until: datetime) -> str:
    fmt = lambda d: d.strftime("%Y-%m-%d %H:%M") if (d.hour, d.minute) != (0, 0) else d.strftime("%Y-%m-%d")  # noqa: E731
    return f"{fmt(since)} .. {fmt(until)} UTC" if since else f"before {fmt(until)} UTC"


@dataclass
class Selection:
    """A cohort: tickets opened in [since, until), optionally only those pinned to one ruleset."""

    since: datetime | None
    until: datetime
    ruleset: str | None = None

    def label(self) -> str:
        if self.ruleset:
            return f"ruleset {self.ruleset}"
        return _period_label(self.since, self.until)


def _iso(d: datetime | None) -> str | None:
    return d.isoformat() if d else None


def _side(store: Store, sel: Selection, by: str | None = None) -> dict[str, Any]:
    tickets = load_tickets(store, sel.since, sel.until, sel.ruleset)
    backlog = [t for t in load_backlog(store, sel.until) if sel.ruleset is None or t.ruleset == sel.ruleset]
    side: dict[str, Any] = {
        "label": sel.label(),
        "since": _iso(sel.since),
        "until": _iso(sel.until),
        "ruleset": sel.ruleset,
        "kpis": kpi.compute(tickets, backlog, sel.until),
        "trend": _trend(tickets, sel),
    }
    if by is not None:
        side["groups"] = _groups(tickets, backlog, sel.until, by)
    return side


def _trend(tickets: list[TicketFacts], sel: Selection) -> dict[str, Any]:
    """Over the period asked for; without --since, from the first ticket to the last event."""
    if not tickets:
        return kpi.trend(tickets)
    if sel.since is not None:
        return kpi.trend(tickets, sel.since, sel.until)
    last = max([t.opened_at for t in tickets] + [t.resolved_at for t in tickets if t.resolved_at is not None])
    return kpi.trend(tickets, min(t.opened_at for t in tickets), min(sel.until, last))


def _groups(tickets: list[TicketFacts], backlog: list[TicketFacts], at: datetime, by: str) -> list[dict[str, Any]]:
    keys = sorted({t.dimension(by) for t in tickets} | {t.dimension(by) for t in backlog})
    out = []
    for key in keys:
        mine = [t for t in tickets if t.dimension(by) == key]
        out.append({"key": key, "kpis": kpi.compute(mine, [t for t in backlog if t.dimension(by) == key], at)})
    return sorted(out, key=lambda g: (-g["kpis"]["volume"], g["key"]))


def build_report(store: Store, since: datetime | None, until: datetime, by: str | None = None,
                 ruleset: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    if by is not None and by not in DIMENSIONS:
        raise BadPeriod(f"--by must be one of {', '.join(DIMENSIONS)}")
    if ruleset is not None:
        ruleset = resolve_ruleset(ruleset_versions(store), ruleset)
    side = _side(store, Selection(since, until, ruleset), by)
    return {
        "report": "kpis",
        "generated_at": (now or datetime.now(timezone.utc)).isoformat(),
        "period": {"since": _iso(since), "until": _iso(until), "label": _period_label(since, until)},
        "ruleset": ruleset,
        "by": by,
        "overall": side["kpis"],
        "groups": side.get("groups", []),
        "trend": side["trend"],
        "rulesets": [{"version": r.version, "tickets": r.tickets, "first_opened": _iso(r.first_opened),
                      "last_opened": _iso(r.last_opened), "message": r.message} for r in ruleset_versions(store, since, until)],
    }


def build_comparison(store: Store, before: Selection, after: Selection, now: datetime | None = None) -> dict[str, Any]:
    kind = "ruleset" if before.ruleset or after.ruleset else "period"
    a, b = _side(store, before), _side(store, after)
    return {
        "report": "comparison",
        "generated_at": (now or datetime.now(timezone.utc)).isoformat(),
        "kind": kind,
        "before": a,
        "after": b,
        "changes": kpi.compare(a["kpis"], b["kpis"]),
    }


def selections_for_compare(store: Store, first: str, second: str, since: datetime | None, until: datetime,
                           now: datetime) -> tuple[Selection, Selection]:
    """Two periods (`A..B`) or two ruleset versions (prefixes; within --since/--until)."""
    periods = [".." in first, ".." in second]
    if all(periods):
        s1, u1 = parse_period(first, now)
        s2, u2 = parse_period(second, now)
        return Selection(s1, u1), Selection(s2, u2)
    if any(periods):
        raise BadPeriod("--compare takes two periods (SINCE..UNTIL SINCE..UNTIL) or two ruleset versions, not one of each")
    known = ruleset_versions(store, since, until)
    v1, v2 = resolve_ruleset(known, first), resolve_ruleset(known, second)
    if v1 == v2:
        raise BadPeriod(f"--compare names the same ruleset twice ({v1})")
    return Selection(since, until, v1), Selection(since, until, v2)
