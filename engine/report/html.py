"""The HTML report: one self-contained file (inline CSS and inline SVG charts, no script, no
external asset or font), so it opens from a mail attachment or a laptop without a network.

Sections of a report: summary cards; trends over time (opened vs resolved, first response p50,
first-response SLA compliance, CSAT mean); SLA compliance per metric; customer satisfaction (CSAT
distribution, NPS breakdown); backlog by age; the breakdown table when --by is given; definitions.
A comparison has the KPI table with change and direction, SLA compliance and CSAT distribution
side by side, the two trends, and the definitions.

The SVG is written by hand here (no charting library): each chart is a few rectangles, polylines
and text labels with <title> tooltips, scaled to "nice" axis steps.
"""

from __future__ import annotations

import math
from datetime import datetime
from html import escape
from typing import Any, Callable, Sequence

from engine.report import kpi
from engine.report.render import GROUP_COLUMNS, fmt_change, fmt_duration, fmt_rate, fmt_value

BLUE, ORANGE, GREEN, RED, GREY, PURPLE = "#2f6db5", "#e08a1e", "#2e9a5a", "#c8413b", "#8a8f98", "#7a4fb5"
W, H = 560, 220
PAD_L, PAD_R, PAD_T, PAD_B = 56, 14, 22, 44

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","PingFang SC","Microsoft YaHei",sans-serif;
     color:#1d2330;background:#f5f6f8;margin:0}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #d9dde3;padding-bottom:4px}
.meta{color:#5b6270;font-size:13px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px}
.card{background:#fff;border:1px solid #e1e4e9;border-radius:8px;padding:10px 12px}
.card .k{color:#5b6270;font-size:12px}.card .v{font-size:20px;font-weight:600;margin-top:2px}.card .s{color:#5b6270;font-size:12px}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:12px}
figure{background:#fff;border:1px solid #e1e4e9;border-radius:8px;margin:0;padding:8px 10px}
figcaption{font-weight:600;font-size:13px;margin-bottom:2px}
svg{display:block;width:100%;height:auto}svg text{font-size:11px;fill:#4a5160}
table{border-collapse:collapse;background:#fff;border:1px solid #e1e4e9;font-size:13px;width:100%}
th,td{padding:5px 8px;border-bottom:1px solid #eceef2;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}th{background:#f0f2f5;font-weight:600}
.better{color:#1f7a45;font-weight:600}.worse{color:#b3322c;font-weight:600}.same{color:#5b6270}
.empty{color:#8a8f98;font-style:italic;padding:20px 0}
dl{background:#fff;border:1px solid #e1e4e9;border-radius:8px;padding:10px 14px;font-size:13px}
dt{font-weight:600;margin-top:6px}dd{margin:0 0 0 14px;color:#3c4250}
.legend span{display:inline-block;margin-right:12px;font-size:12px}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
"""

DEFINITIONS = (
    ("Cohort", "Tickets opened in the period (and, in a ruleset comparison, pinned to that ruleset version)."),
    ("First response", "Opening to the first agent reply. Business time counts only the SLA policy's working hours and leaves out time waiting on the customer or on hold."),
    ("Resolution time", "Opening to the last resolution, for tickets that stand resolved."),
    ("Resolution rate", "Resolved tickets / tickets opened."),
    ("First-contact resolution", "Of the resolved tickets, those resolved by the first agent at the first tier, without asking the customer again and without a reopen."),
    ("SLA compliance", "Clocks met / clocks decided (met or breached), per metric; running clocks not yet breached are left out."),
    ("Escalation rate", "Tickets moved above the agent tier / tickets opened."),
    ("Reopen rate", "Tickets reopened at least once / tickets ever resolved."),
    ("CSAT", "Mean of 1-5 satisfaction answers, and how many gave each score."),
    ("NPS", "Percentage of promoters (9-10) minus percentage of detractors (0-6) among 0-10 answers."),
    ("Complaints", "Tickets classified in the complaint category."),
    ("Backlog", "Tickets not resolved at the end of the period, by how long they had been open then."),
)


# ---- scales and charts -----------------------------------------------------------------------


def nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for m in (1, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if value <= m * exp:
            return m * exp
    return 10 * exp


def _duration_max(value: float) -> float:
    for step in (10, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800, 345600, 691200, 1382400):
        if value <= step:
            return float(step)
    return nice_max(value)


DURATION_STEPS = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 14400, 21600, 43200, 86400,
                  172800, 345600)


def tick_count(top: float, durations: bool = False, integers: bool = False) -> int:
    """How many gridlines make round steps (25 -> 5 of 5, 30 s -> 3 of 10 s, 1.0 -> 4 of 25 %;
    counts step by whole numbers)."""
    for n in (4, 5, 3, 6, 2):
        step = top / n
        if durations and any(abs(step - s) < 1e-9 for s in DURATION_STEPS):
            return n
        if integers and abs(step - round(step)) > 1e-9:
            continue
        if not durations and step > 0:
            mantissa = step / 10 ** math.floor(math.log10(step))
            if any(abs(mantissa - m) < 1e-9 for m in (1, 2, 2.5, 5)):
                return n
    return 4


def _axes(y_max: float, y_fmt: Callable[[float], str], x_labels: Sequence[str], ticks: int = 4) -> list[str]:
    out = []
    plot_h = H - PAD_T - PAD_B
    for i in range(ticks + 1):
        v = y_max * i / ticks
        y = PAD_T + plot_h - plot_h * i / ticks
        out.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}" stroke="#e6e8ec"/>')
        out.append(f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(y_fmt(v))}</text>')
    n = len(x_labels)
    if n:
        every = max(1, math.ceil(n / 8))
        for i, label in enumerate(x_labels):
            if i % every and i != n - 1:
                continue
            x = _x(i, n)
            out.append(f'<text x="{x:.1f}" y="{H - PAD_B + 16}" text-anchor="middle">{escape(label)}</text>')
    out.append(f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" stroke="#9aa0a9"/>')
    return out


def _x(i: int, n: int) -> float:
    plot_w = W - PAD_L - PAD_R
    return PAD_L + (plot_w * (i + 0.5) / n if n else 0)


def _y(v: float, y_max: float) -> float:
    plot_h = H - PAD_T - PAD_B
    return PAD_T + plot_h - plot_h * min(max(v, 0.0), y_max) / y_max


def _legend(series: Sequence[tuple[str, str, Any]]) -> str:
    if len(series) < 2:
        return ""
    return '<div class="legend">' + "".join(f'<span><i style="background:{c}"></i>{escape(n)}</span>' for n, c, _ in series) + "</div>"


def _empty(title: str, why: str = "no data in this period") -> str:
    return f'<figure><figcaption>{escape(title)}</figcaption><div class="empty">{escape(why)}</div></figure>'


def _top(values: list[float], y_max: float | None, durations: bool, integers: bool) -> float:
    if y_max is not None:
        return y_max
    if durations:
        return _duration_max(max(values))
    return max(4.0, nice_max(max(values))) if integers else nice_max(max(values))


def line_chart(title: str, x_labels: Sequence[str], series: Sequence[tuple[str, str, Sequence[float | None]]],
               y_fmt: Callable[[float], str], y_max: float | None = None, durations: bool = False, integers: bool = False) -> str:
    values = [v for _, _, vs in series for v in vs if v is not None]
    if not values:
        return _empty(title)
    top = _top(values, y_max, durations, integers)
    parts = [f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}">',
             *_axes(top, y_fmt, x_labels, tick_count(top, durations, integers))]
    n = len(x_labels)
    for name, color, vs in series:
        run: list[str] = []
        runs: list[list[str]] = []
        for i, v in enumerate(vs):
            if v is None:
                if run:
                    runs.append(run)
                run = []
                continue
            x, y = _x(i, n), _y(v, top)
            run.append(f"{x:.1f},{y:.1f}")
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.6" fill="{color}"><title>{escape(name)} {escape(x_labels[i])}: '
                         f'{escape(y_fmt(v))}</title></circle>')
        if run:
            runs.append(run)
        for r in runs:
            if len(r) > 1:
                parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(r)}"/>')
    parts.append("</svg>")
    return f"<figure><figcaption>{escape(title)}</figcaption>{_legend(series)}{''.join(parts)}</figure>"


def bar_chart(title: str, labels: Sequence[str], series: Sequence[tuple[str, str, Sequence[float | None]]],
              y_fmt: Callable[[float], str], y_max: float | None = None, notes: Sequence[str] | None = None,
              integers: bool = False) -> str:
    values = [v for _, _, vs in series for v in vs if v is not None]
    if not values or (y_max is None and max(values) <= 0):
        return _empty(title)
    top = _top(values, y_max, False, integers)
    parts = [f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}">', *_axes(top, y_fmt, labels, tick_count(top, integers=integers))]
    n, k = len(labels), len(series)
    slot = (W - PAD_L - PAD_R) / max(n, 1)
    bar = min(48.0, slot * 0.7 / k)
    for j, (name, color, vs) in enumerate(series):
        for i, v in enumerate(vs):
            if v is None:
                continue
            x = _x(i, n) - bar * k / 2 + j * bar
            y = _y(v, top)
            note = f" ({notes[i]})" if notes and k == 1 else ""
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar - 2:.1f}" height="{H - PAD_B - y:.1f}" fill="{color}" rx="2">'
                         f'<title>{escape(name)} {escape(labels[i])}: {escape(y_fmt(v))}{escape(note)}</title></rect>')
            parts.append(f'<text x="{x + (bar - 2) / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle">{escape(y_fmt(v))}</text>')
    parts.append("</svg>")
    return f"<figure><figcaption>{escape(title)}</figcaption>{_legend(series)}{''.join(parts)}</figure>"


# ---- page pieces -----------------------------------------------------------------------------


def _pct(v: float) -> str:
    return f"{100 * v:.0f}%"


def _count(v: float) -> str:
    return f"{v:.0f}" if abs(v - round(v)) < 1e-9 else f"{v:.1f}"


def _bucket_label(iso: str, step: int | None) -> str:
    d = datetime.fromisoformat(iso)
    if step is not None and step >= 86400:
        return d.strftime("%m-%d")
    return d.strftime("%H:%M") if step is not None and step < 3600 else d.strftime("%m-%d %H:%M")


STEP_NAMES = {60: "minute", 300: "5 minutes", 900: "15 minutes", 3600: "hour", 21600: "6 hours", 86400: "day",
              604800: "week", 2592000: "30 days"}


def _cards(k: dict[str, Any]) -> str:
    cards = [
        ("Tickets opened", str(k["volume"]), f"{k['resolved']} resolved"),
        ("First response p50", fmt_duration(k["first_response_p50"]), f"p90 {fmt_duration(k['first_response_p90'])}"),
        ("Resolution p50", fmt_duration(k["resolution_p50"]), f"p90 {fmt_duration(k['resolution_p90'])}"),
        ("Resolution rate", fmt_rate(k["resolution_rate"]), f"FCR {fmt_rate(k['first_contact_resolution_rate'])}"),
        ("Escalation rate", fmt_rate(k["escalation_rate"]), f"reopen rate {fmt_rate(k['reopen_rate'])}"),
        ("CSAT", fmt_value(k["csat_mean"], "score"), f"{k['csat_responses']} answers"),
        ("NPS", fmt_value(k["nps"], "score", "nps"), f"{k['nps_responses']} answers"),
        ("Complaints", str(k["complaints"]), f"{fmt_rate(k['complaint_rate'])} of volume"),
    ]
    for metric, v in k["sla"].items():
        cards.append((f"SLA {metric.replace('_', ' ')}", fmt_rate(v["compliance"]), f"{v['met']} met, {v['breached']} breached"))
    if "backlog" in k:
        cards.append(("Backlog at the end", str(k["backlog"]["total"]), "not resolved"))
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="k">{escape(a)}</div><div class="v">{escape(b)}</div><div class="s">{escape(c)}</div></div>'
        for a, b, c in cards) + "</div>"


def _trend_charts(trend: dict[str, Any], suffix: str = "") -> str:
    buckets, step = trend["buckets"], trend["bucket_seconds"]
    if not buckets:
        return '<div class="charts">' + _empty("Trends" + suffix) + "</div>"
    labels = [_bucket_label(b["start"], step) for b in buckets]
    per = STEP_NAMES.get(step, fmt_duration(step)) if step else "period"
    return '<div class="charts">' + "".join([
        line_chart(f"Tickets opened and resolved per {per}{suffix}", labels,
                   [("opened", BLUE, [b["opened"] for b in buckets]), ("resolved", GREEN, [b["resolved"] for b in buckets])], _count,
                   integers=True),
        line_chart(f"First response p50 (wall time){suffix}", labels, [("p50", ORANGE, [b["first_response_p50"] for b in buckets])],
                   fmt_duration, durations=True),
        line_chart(f"First-response SLA compliance{suffix}", labels,
                   [("compliance", GREEN, [b["first_response_sla_compliance"] for b in buckets])], _pct, y_max=1.0),
        line_chart(f"CSAT mean (1-5){suffix}", labels, [("CSAT", PURPLE, [b["csat_mean"] for b in buckets])],
                   lambda v: f"{v:.1f}", y_max=5.0),
    ]) + "</div>"


def _sla_chart(sides: Sequence[tuple[str, str, dict[str, Any]]]) -> str:
    metrics = [m for m in kpi.SLA_METRICS if any(m in k["sla"] for _, _, k in sides)]
    if not metrics:
        return _empty("SLA compliance per metric", "no SLA clock met or breached yet")
    series = [(name, color, [k["sla"][m]["compliance"] if m in k["sla"] else None for m in metrics]) for name, color, k in sides]
    notes = [f"{sides[0][2]['sla'][m]['met']} met, {sides[0][2]['sla'][m]['breached']} breached" if m in sides[0][2]["sla"] else ""
             for m in metrics]
    return bar_chart("SLA compliance per metric", [m.replace("_", " ") for m in metrics], series, _pct, y_max=1.0, notes=notes)


def _satisfaction_charts(sides: Sequence[tuple[str, str, dict[str, Any]]], shares: bool = False) -> str:
    scores = [str(s) for s in kpi.CSAT_SCORES]

    def dist(k: dict[str, Any]) -> list[float | None]:
        counts = [float(k["csat_distribution"][s]) for s in scores]
        total = sum(counts)
        return [c / total if total else None for c in counts] if shares else counts

    charts = [bar_chart("CSAT distribution" + (" (share of answers)" if shares else " (answers per score)"),
                        scores, [(name, color, dist(k)) for name, color, k in sides], _pct if shares else _count,
                        y_max=1.0 if shares else None, integers=not shares)]
    if any(k["nps_responses"] for _, _, k in sides):
        parts = ("detractors", "passives", "promoters")

        def nps(k: dict[str, Any]) -> list[float | None]:
            total = k["nps_responses"]
            return [k["nps_breakdown"][p] / total if total else None for p in parts]

        charts.append(bar_chart("NPS answers (share)", list(parts), [(name, color, nps(k)) for name, color, k in sides], _pct, y_max=1.0))
    return '<div class="charts">' + "".join(charts) + "</div>"


def _backlog_chart(k: dict[str, Any]) -> str:
    if "backlog" not in k or not k["backlog"]["total"]:
        return _empty("Backlog by age", "no unresolved tickets at the end of the period")
    ages = k["backlog"]["by_age"]
    return bar_chart(f"Backlog by age ({k['backlog']['total']} unresolved)", list(ages), [("tickets", GREY, [float(v) for v in ages.values()])], _count,
                     integers=True)


def _breakdown(doc: dict[str, Any]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in [doc["by"], *(h for _, h, _ in GROUP_COLUMNS)])
    rows = []
    for g in doc["groups"]:
        flat = kpi.flatten(g["kpis"])
        cells = "".join(f"<td>{escape(fmt_value(flat.get(key), unit, key))}</td>" for key, _, unit in GROUP_COLUMNS)
        rows.append(f"<tr><td>{escape(g['key'])}</td>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _definitions() -> str:
    return "<dl>" + "".join(f"<dt>{escape(a)}</dt><dd>{escape(b)}</dd>" for a, b in DEFINITIONS) + "</dl>"


def _page(title: str, meta: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>"
            f'<h1>{escape(title)}</h1><div class="meta">{meta}</div>{body}</main></body></html>\n')


# ---- documents -------------------------------------------------------------------------------


def to_html(doc: dict[str, Any]) -> str:
    if doc["report"] == "comparison":
        return _comparison(doc)
    k = doc["overall"]
    scope = f"ruleset {doc['ruleset']}" if doc["ruleset"] else "all ruleset versions"
    meta = (f"Tickets opened {escape(doc['period']['label'])} &middot; {escape(scope)} &middot; "
            f"{k['volume']} tickets &middot; generated {escape(doc['generated_at'][:19].replace('T', ' '))} UTC")
    body = [
        '<section id="summary"><h2>Summary</h2>', _cards(k), "</section>",
        '<section id="trends"><h2>Trends over time</h2>', _trend_charts(doc["trend"]), "</section>",
        '<section id="sla"><h2>SLA compliance</h2><div class="charts">', _sla_chart([("compliance", GREEN, k)]),
        _backlog_chart(k), "</div></section>",
        '<section id="satisfaction"><h2>Customer satisfaction</h2>', _satisfaction_charts([("answers", PURPLE, k)]), "</section>",
    ]
    if doc["by"]:
        body += [f'<section id="breakdown"><h2>By {escape(doc["by"])}</h2>', _breakdown(doc), "</section>"]
    body += ['<section id="definitions"><h2>Definitions</h2>', _definitions(), "</section>"]
    return _page("ticketflow KPI report", meta, "".join(body))


def _comparison(doc: dict[str, Any]) -> str:
    a, b = doc["before"], doc["after"]
    meta = (f"Before: {escape(a['label'])} ({a['kpis']['volume']} tickets) &middot; after: {escape(b['label'])} "
            f"({b['kpis']['volume']} tickets) &middot; generated {escape(doc['generated_at'][:19].replace('T', ' '))} UTC")
    rows = []
    for c in doc["changes"]:
        css = {"better": "better", "worse": "worse"}.get(c["assessment"] or "", "same")
        arrow = {"up": "&#9650;", "down": "&#9660;", "unchanged": "=", "n/a": ""}[c["direction"]]
        rows.append(f"<tr><td>{escape(c['label'])}</td><td>{escape(fmt_value(c['before'], c['unit'], c['kpi']))}</td>"
                    f"<td>{escape(fmt_value(c['after'], c['unit'], c['kpi']))}</td>"
                    f"<td>{escape(fmt_change(c['change'], c['unit'], c['kpi']))}</td>"
                    f'<td class="{css}">{arrow} {escape(c["assessment"] or "")}</td></tr>')
    table = ("<table><thead><tr><th>KPI</th><th>before</th><th>after</th><th>change</th><th>direction</th></tr></thead>"
             f"<tbody>{''.join(rows)}</tbody></table>")
    sides = [("before", GREY, a["kpis"]), ("after", BLUE, b["kpis"])]
    body = [
        '<section id="changes"><h2>Change by KPI</h2>', table, "</section>",
        '<section id="sla"><h2>SLA compliance</h2><div class="charts">', _sla_chart(sides), "</div></section>",
        '<section id="satisfaction"><h2>Customer satisfaction</h2>', _satisfaction_charts(sides, shares=True), "</section>",
        '<section id="trends"><h2>Trends over time</h2>',
        f"<h3>Before: {escape(a['label'])}</h3>", _trend_charts(a["trend"]),
        f"<h3>After: {escape(b['label'])}</h3>", _trend_charts(b["trend"]), "</section>",
        '<section id="definitions"><h2>Definitions</h2>', _definitions(), "</section>",
    ]
    return _page(f"ticketflow comparison: {a['label']} vs {b['label']}", meta, "".join(body))
