"""Text, JSON and CSV renderings of a report document (see `engine.report.build`).

JSON is the document itself: durations in seconds, rates as fractions (0..1), null where a KPI has
no data. CSV is one row per group (the first row, group "(all)", is the whole cohort) with the
flat KPI columns, or for a comparison one row per KPI with before, after, change and direction.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from engine.report import kpi

ARROWS = {"up": "▲", "down": "▼", "unchanged": "=", "n/a": " "}


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 9.95:
        return f"{seconds:.1f}s".replace(".0s", "s")
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def fmt_rate(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def fmt_value(value: Any, unit: str, key: str = "") -> str:
    if value is None:
        return "–"
    if unit == "seconds":
        return fmt_duration(value)
    if unit == "rate":
        return fmt_rate(value)
    if unit == "score":
        return f"{value:+.0f}" if key == "nps" else f"{value:.2f}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def fmt_change(change: float | None, unit: str, key: str = "") -> str:
    if change is None:
        return "–"
    sign = "+" if change > 0 else ("-" if change < 0 else "±")
    if unit == "seconds":
        return sign + fmt_duration(abs(change))
    if unit == "rate":
        return f"{sign}{abs(100 * change):.1f} pt"
    if unit == "score":
        return f"{sign}{abs(change):.0f}" if key == "nps" else f"{sign}{abs(change):.2f}"
    return f"{sign}{abs(change):g}"


# ---- text --------------------------------------------------------------------------------------


def _summary_lines(k: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [
        ("Volume (tickets opened)", str(k["volume"])),
        ("First response p50 / p90", f"{fmt_duration(k['first_response_p50'])} / {fmt_duration(k['first_response_p90'])}"
                                     f"  (business {fmt_duration(k['first_response_business_p50'])} / {fmt_duration(k['first_response_business_p90'])};"
                                     f" {k['responded']} answered)"),
        ("Resolution time p50 / p90", f"{fmt_duration(k['resolution_p50'])} / {fmt_duration(k['resolution_p90'])}"
                                      f"  (business {fmt_duration(k['resolution_business_p50'])} / {fmt_duration(k['resolution_business_p90'])})"),
        ("Resolution rate", f"{fmt_rate(k['resolution_rate'])}  ({k['resolved']} of {k['volume']})"),
        ("First-contact resolution", fmt_rate(k["first_contact_resolution_rate"])),
    ]
    if k["sla"]:
        for metric, v in k["sla"].items():
            rows.append((f"SLA compliance: {metric}", f"{fmt_rate(v['compliance'])}  ({v['met']} met, {v['breached']} breached)"))
    else:
        rows.append(("SLA compliance", "– (no clock decided yet)"))
    dist = " ".join(f"{s}:{n}" for s, n in k["csat_distribution"].items())
    nb = k["nps_breakdown"]
    rows += [
        ("Escalation rate", fmt_rate(k["escalation_rate"])),
        ("Reopen rate", fmt_rate(k["reopen_rate"])),
        ("CSAT", f"{fmt_value(k['csat_mean'], 'score')} mean of {k['csat_responses']}  [{dist}]"),
        ("NPS", f"{fmt_value(k['nps'], 'score', 'nps')} of {k['nps_responses']}  "
                f"(promoters {nb['promoters']}, passives {nb['passives']}, detractors {nb['detractors']})"),
        ("Complaints", f"{k['complaints']}  ({fmt_rate(k['complaint_rate'])} of volume)"),
    ]
    if "backlog" in k:
        ages = ", ".join(f"{a} {n}" for a, n in k["backlog"]["by_age"].items())
        rows.append(("Backlog at the end", f"{k['backlog']['total']}  ({ages})"))
    return rows


GROUP_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("volume", "volume", "count"), ("first_response_p50", "FRT p50", "seconds"), ("first_response_p90", "FRT p90", "seconds"),
    ("resolution_p50", "res p50", "seconds"), ("resolution_p90", "res p90", "seconds"), ("resolution_rate", "resolved", "rate"),
    ("first_contact_resolution_rate", "FCR", "rate"), ("sla_first_response_compliance", "SLA 1st", "rate"),
    ("sla_resolution_compliance", "SLA res", "rate"), ("escalation_rate", "escal.", "rate"), ("reopen_rate", "reopen", "rate"),
    ("csat_mean", "CSAT", "score"), ("nps", "NPS", "score"), ("complaints", "compl.", "count"), ("backlog", "backlog", "count"),
)


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for r in [header, *rows]:
        cells = [c.ljust(widths[i]) if i < left else c.rjust(widths[i]) for i, c in enumerate(r)]
        out.append("  ".join(cells).rstrip())
    out.insert(1, "  ".join("-" * w for w in widths))
    return out


def to_text(doc: dict[str, Any]) -> str:
    if doc["report"] == "comparison":
        return _comparison_text(doc)
    scope = f"ruleset {doc['ruleset']}" if doc["ruleset"] else "all rulesets"
    lines = [f"ticketflow report: tickets opened {doc['period']['label']} ({scope})", ""]
    width = max(len(label) for label, _ in _summary_lines(doc["overall"]))
    lines += [f"  {label.ljust(width)}  {value}" for label, value in _summary_lines(doc["overall"])]
    if doc["by"]:
        lines += ["", f"By {doc['by']}:"]
        rows = []
        for g in doc["groups"]:
            flat = kpi.flatten(g["kpis"])
            rows.append([g["key"], *(fmt_value(flat.get(key), unit, key) for key, _, unit in GROUP_COLUMNS)])
        lines += ["  " + line for line in _table([doc["by"], *(h for _, h, _ in GROUP_COLUMNS)], rows)]
    if len(doc.get("rulesets", [])) > 1 and doc["by"] != "ruleset":
        versions = ", ".join(f"{r['version']} ({r['tickets']})" for r in doc["rulesets"])
        lines += ["", f"Tickets came from {len(doc['rulesets'])} ruleset versions: {versions}; "
                      "compare them with --compare OLD NEW"]
    return "\n".join(lines) + "\n"


def _comparison_text(doc: dict[str, Any]) -> str:
    a, b = doc["before"], doc["after"]
    lines = [f"ticketflow report --compare ({doc['kind']}s)",
             f"  before: {a['label']}: {a['kpis']['volume']} tickets" + (f", opened {_span(a)}" if a["ruleset"] else ""),
             f"  after:  {b['label']}: {b['kpis']['volume']} tickets" + (f", opened {_span(b)}" if b["ruleset"] else ""),
             ""]
    rows = []
    for c in doc["changes"]:
        if c["kpi"].startswith(("csat_", "backlog_")) and c["kpi"] not in ("csat_mean", "csat_responses"):
            continue  # distributions: in --json / --csv / --html
        arrow = ARROWS[c["direction"]]
        rows.append([c["label"], fmt_value(c["before"], c["unit"], c["kpi"]), fmt_value(c["after"], c["unit"], c["kpi"]),
                     fmt_change(c["change"], c["unit"], c["kpi"]), f"{arrow} {c['assessment'] or ''}".rstrip()])
    lines += ["  " + line for line in _table(["KPI", "before", "after", "change", "direction"], rows)]
    lines += ["", "  ▲/▼: the KPI went up/down; better/worse: for that KPI (lower times and rates of escalation,",
              "  reopens and complaints are better; higher resolution, compliance, CSAT and NPS are better)."]
    return "\n".join(lines) + "\n"


def _span(side: dict[str, Any]) -> str:
    trend = side["trend"]["buckets"]
    if not trend:
        return "(none)"
    return f"{trend[0]['start'][:16].replace('T', ' ')} .. {trend[-1]['start'][:16].replace('T', ' ')} UTC"


# ---- JSON and CSV ------------------------------------------------------------------------------


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def to_csv(doc: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if doc["report"] == "comparison":
        cols = ["kpi", "label", "unit", "before", "after", "change", "relative_change", "direction", "assessment"]
        w.writerow(cols)
        for c in doc["changes"]:
            w.writerow([_cell(c[k]) for k in cols])
        return buf.getvalue()
    sets = [doc["overall"], *(g["kpis"] for g in doc["groups"])]
    keys = [k.key for k in kpi.kpi_list(*sets)]
    extra = ["responded", "resolved"]
    w.writerow(["group", *keys, *extra])
    rows = [("(all)", doc["overall"]), *((g["key"], g["kpis"]) for g in doc["groups"])]
    for name, k in rows:
        flat = kpi.flatten(k)
        w.writerow([name, *(_cell(flat.get(key)) for key in keys), *(_cell(flat.get(key)) for key in extra)])
    return buf.getvalue()
