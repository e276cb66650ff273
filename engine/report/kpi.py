"""KPIs over a cohort of tickets, trends over time, and the comparison of two cohorts.

Pure functions over `TicketFacts`; definitions (also in docs/metrics.md):

- volume: tickets opened in the period.
- first response p50/p90: wall time from opening to the first agent reply, over tickets that got
  one; `*_business_*`: the SLA clock's business time (policy calendar, pauses excluded).
- resolution p50/p90: opening to (the last) resolution, over tickets that stand resolved.
- resolution rate: resolved / volume.
- first-contact resolution rate: of the resolved tickets, those resolved by the first agent that
  took them, at the first tier, without ever asking the customer again (never pending_customer)
  and never reopened.
- SLA compliance per metric: clocks met / clocks decided (met or breached); running clocks that
  have not breached are not decided yet and are left out.
- escalation rate: tickets that moved above the agent tier / volume.
- reopen rate: tickets reopened at least once / tickets ever resolved.
- CSAT: mean score (1-5) and the count of each score; NPS: % promoters (9-10) minus % detractors
  (0-6) of the NPS answers.
- complaints: tickets whose category is "complaint".
- backlog by age: tickets not resolved at the end of the period, by how long they had been open.

Percentiles interpolate linearly between the nearest ranks (numpy's default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Sequence

from engine.report.data import TicketFacts

SLA_METRICS = ("first_response", "next_reply", "periodic_update", "resolution")
COMPLAINT_CATEGORY = "complaint"
CSAT_SCORES = (1, 2, 3, 4, 5)
BACKLOG_AGES: tuple[tuple[str, float], ...] = (
    ("<1h", 3600), ("1-4h", 4 * 3600), ("4-24h", 86400), ("1-3d", 3 * 86400), ("3-7d", 7 * 86400), (">7d", math.inf),
)


@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    unit: str  # count | seconds | rate | score
    better: str | None  # "higher", "lower", or None when neither (volume)


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def first_contact(t: TicketFacts) -> bool:
    return t.resolved and t.reopen_count == 0 and t.escalation_tier == "agent" and t.assignments <= 1 and not t.waited_on_customer


def backlog_by_age(backlog: Iterable[TicketFacts], at: datetime) -> dict[str, int]:
    out = {label: 0 for label, _ in BACKLOG_AGES}
    for t in backlog:
        age = (at - t.opened_at).total_seconds()
        label = next(label for label, limit in BACKLOG_AGES if age < limit)
        out[label] += 1
    return out


def compute(tickets: Sequence[TicketFacts], backlog: Sequence[TicketFacts] | None = None,
            at: datetime | None = None) -> dict[str, Any]:
    """Every KPI of a cohort (and of the backlog at `at`, when given)."""
    n = len(tickets)
    frt = [v for t in tickets if (v := t.first_response_seconds) is not None]
    frt_b = [v for t in tickets if (v := t.business_seconds("first_response")) is not None]
    res = [v for t in tickets if (v := t.resolution_seconds) is not None]
    res_b = [v for t in tickets if (v := t.business_seconds("resolution")) is not None]
    resolved = [t for t in tickets if t.resolved]
    ever_resolved = [t for t in tickets if t.resolved or t.reopen_count > 0]
    sla: dict[str, dict[str, Any]] = {}
    for metric in SLA_METRICS:
        met = breached = 0
        for t in tickets:
            clock = t.sla.get(metric)
            if not clock:
                continue
            if clock.get("breached_at") or clock.get("state") == "breached":
                breached += 1
            elif clock.get("state") == "fulfilled":
                met += 1
        if met or breached:
            sla[metric] = {"met": met, "breached": breached, "compliance": _rate(met, met + breached)}
    csat = [a.score for t in tickets for a in t.answers if a.kind == "csat"]
    nps = [a.score for t in tickets for a in t.answers if a.kind == "nps"]
    promoters, detractors = sum(1 for s in nps if s >= 9), sum(1 for s in nps if s <= 6)
    complaints = sum(1 for t in tickets if t.category == COMPLAINT_CATEGORY)
    out: dict[str, Any] = {
        "volume": n,
        "first_response_p50": percentile(frt, 0.5),
        "first_response_p90": percentile(frt, 0.9),
        "first_response_business_p50": percentile(frt_b, 0.5),
        "first_response_business_p90": percentile(frt_b, 0.9),
        "responded": len(frt),
        "resolution_p50": percentile(res, 0.5),
        "resolution_p90": percentile(res, 0.9),
        "resolution_business_p50": percentile(res_b, 0.5),
        "resolution_business_p90": percentile(res_b, 0.9),
        "resolved": len(resolved),
        "resolution_rate": _rate(len(resolved), n),
        "first_contact_resolution_rate": _rate(sum(1 for t in resolved if first_contact(t)), len(resolved)),
        "sla": sla,
        "escalation_rate": _rate(sum(1 for t in tickets if t.escalation_tier != "agent"), n),
        "reopen_rate": _rate(sum(1 for t in ever_resolved if t.reopen_count > 0), len(ever_resolved)),
        "csat_mean": _mean(csat),
        "csat_responses": len(csat),
        "csat_distribution": {str(s): csat.count(s) for s in CSAT_SCORES},
        "nps": (100.0 * (promoters - detractors) / len(nps)) if nps else None,
        "nps_responses": len(nps),
        "nps_breakdown": {"promoters": promoters, "passives": len(nps) - promoters - detractors, "detractors": detractors},
        "complaints": complaints,
        "complaint_rate": _rate(complaints, n),
    }
    if backlog is not None and at is not None:
        ages = backlog_by_age(backlog, at)
        out["backlog"] = {"total": sum(ages.values()), "by_age": ages}
    return out


# ---- the flat view: CSV columns and the comparison -------------------------------------------

BASE_KPIS: tuple[Kpi, ...] = (
    Kpi("volume", "Volume (tickets opened)", "count", None),
    Kpi("first_response_p50", "First response p50", "seconds", "lower"),
    Kpi("first_response_p90", "First response p90", "seconds", "lower"),
    Kpi("first_response_business_p50", "First response p50 (business time)", "seconds", "lower"),
    Kpi("first_response_business_p90", "First response p90 (business time)", "seconds", "lower"),
    Kpi("resolution_p50", "Resolution time p50", "seconds", "lower"),
    Kpi("resolution_p90", "Resolution time p90", "seconds", "lower"),
    Kpi("resolution_business_p50", "Resolution time p50 (business time)", "seconds", "lower"),
    Kpi("resolution_business_p90", "Resolution time p90 (business time)", "seconds", "lower"),
    Kpi("resolution_rate", "Resolution rate", "rate", "higher"),
    Kpi("first_contact_resolution_rate", "First-contact resolution rate", "rate", "higher"),
)
TAIL_KPIS: tuple[Kpi, ...] = (
    Kpi("escalation_rate", "Escalation rate", "rate", "lower"),
    Kpi("reopen_rate", "Reopen rate", "rate", "lower"),
    Kpi("csat_mean", "CSAT mean (1-5)", "score", "higher"),
    Kpi("csat_responses", "CSAT answers", "count", None),
    Kpi("nps", "NPS", "score", "higher"),
    Kpi("nps_responses", "NPS answers", "count", None),
    Kpi("complaints", "Complaints", "count", "lower"),
    Kpi("complaint_rate", "Complaint rate", "rate", "lower"),
)


def kpi_list(*kpi_sets: dict[str, Any]) -> list[Kpi]:
    """The flat KPIs, with one SLA column per metric present and the backlog when computed."""
    metrics = [m for m in SLA_METRICS if any(m in k.get("sla", {}) for k in kpi_sets)]
    out = list(BASE_KPIS)
    out += [Kpi(f"sla_{m}_compliance", f"SLA compliance: {m.replace('_', ' ')}", "rate", "higher") for m in metrics]
    out += list(TAIL_KPIS)
    out += [Kpi(f"csat_{s}", f"CSAT answers scoring {s}", "count", None) for s in CSAT_SCORES]
    if any("backlog" in k for k in kpi_sets):
        out.append(Kpi("backlog", "Backlog at the end", "count", "lower"))
        out += [Kpi(f"backlog_{label}", f"Backlog aged {label}", "count", "lower") for label, _ in BACKLOG_AGES]
    return out


def flatten(k: dict[str, Any]) -> dict[str, Any]:
    flat = {key: value for key, value in k.items() if not isinstance(value, dict)}
    for metric, v in k.get("sla", {}).items():
        flat[f"sla_{metric}_compliance"] = v["compliance"]
    for score, count in k.get("csat_distribution", {}).items():
        flat[f"csat_{score}"] = count
    if "backlog" in k:
        flat["backlog"] = k["backlog"]["total"]
        for label, count in k["backlog"]["by_age"].items():
            flat[f"backlog_{label}"] = count
    return flat


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """Each KPI side by side: the change, its direction (up/down/unchanged) and whether that is
    better or worse for the KPI (None for volume-like counts that are neither)."""
    fb, fa = flatten(before), flatten(after)
    rows = []
    for kpi in kpi_list(before, after):
        b, a = fb.get(kpi.key), fa.get(kpi.key)
        change = (a - b) if (a is not None and b is not None) else None
        if change is None:
            direction = "n/a"
        elif abs(change) < 1e-9:
            direction = "unchanged"
        else:
            direction = "up" if change > 0 else "down"
        if direction in ("up", "down") and kpi.better:
            verdict = "better" if (direction == "up") == (kpi.better == "higher") else "worse"
        elif direction == "unchanged":
            verdict = "unchanged"
        else:
            verdict = None
        relative = (change / b) if (change is not None and b not in (None, 0)) else None
        rows.append({"kpi": kpi.key, "label": kpi.label, "unit": kpi.unit, "before": b, "after": a, "change": change,
                     "relative_change": relative, "direction": direction, "assessment": verdict})
    return rows


# ---- trends over time ------------------------------------------------------------------------

STEPS = (60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)


def bucket_size(start: datetime, end: datetime, most: int = 40) -> int:
    span = max(1.0, (end - start).total_seconds())
    return next((s for s in STEPS if span / s <= most), STEPS[-1])


def trend(tickets: Sequence[TicketFacts], start: datetime | None = None, end: datetime | None = None) -> dict[str, Any]:
    """Per time bucket: tickets opened and resolved, first response p50, first-response SLA
    compliance (of tickets opened in it) and CSAT mean (of answers given in it)."""
    if not tickets:
        return {"bucket_seconds": None, "buckets": []}
    start = start or min(t.opened_at for t in tickets)
    end = end or max([t.opened_at for t in tickets] + [t.resolved_at for t in tickets if t.resolved_at is not None])
    step = bucket_size(start, end)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    first = int((start - epoch).total_seconds()) // step * step
    count = max(1, int(((end - epoch).total_seconds() - first) // step) + 1)
    index = lambda at: int(((at - epoch).total_seconds() - first) // step)  # noqa: E731
    slots: list[dict[str, Any]] = [{"opened": 0, "resolved": 0, "_frt": [], "_sla": [0, 0], "_csat": []} for _ in range(count)]

    def slot(at: datetime | None) -> dict[str, Any] | None:
        if at is None:
            return None
        i = index(at)
        return slots[i] if 0 <= i < count else None

    for t in tickets:
        s = slot(t.opened_at)
        if s is not None:
            s["opened"] += 1
            if (v := t.first_response_seconds) is not None:
                s["_frt"].append(v)
            clock = t.sla.get("first_response") or {}
            if clock.get("breached_at") or clock.get("state") == "breached":
                s["_sla"][1] += 1
            elif clock.get("state") == "fulfilled":
                s["_sla"][0] += 1
        if t.resolved and (r := slot(t.resolved_at)) is not None:
            r["resolved"] += 1
        for a in t.answers:
            if a.kind == "csat" and (c := slot(a.answered_at)) is not None:
                c["_csat"].append(a.score)
    buckets = []
    for i, s in enumerate(slots):
        met, breached = s["_sla"]
        buckets.append({
            "start": (epoch + timedelta(seconds=first + i * step)).isoformat(),
            "opened": s["opened"],
            "resolved": s["resolved"],
            "first_response_p50": percentile(s["_frt"], 0.5),
            "first_response_sla_compliance": _rate(met, met + breached),
            "csat_mean": _mean(s["_csat"]),
        })
    return {"bucket_seconds": step, "buckets": buckets}
