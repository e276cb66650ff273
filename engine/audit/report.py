"""A ticket's timeline as one self-contained HTML file: inline CSS, no scripts, no external assets,
so it can be attached to an audit record, mailed, or opened offline years later."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from html import escape
from typing import Any

from engine.audit.timeline import Timeline

METRIC_SHORT = {"first_response": "first response", "next_reply": "next reply",
                "periodic_update": "periodic update", "resolution": "resolution"}

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI","Noto Sans","PingFang SC","Microsoft YaHei",sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 8px}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:12px 0}
.meta dt{font-weight:600;color:#4a5368} .meta dd{margin:0}
table{border-collapse:collapse;width:100%} th,td{border-bottom:1px solid #e3e6ee;padding:5px 8px;vertical-align:top;text-align:left}
th{background:#f4f6fa;font-weight:600;position:sticky;top:0}
td.at{white-space:nowrap;font-variant-numeric:tabular-nums;color:#4a5368}
.kind{display:inline-block;padding:1px 7px;border-radius:10px;font-size:12px;white-space:nowrap;background:#eef1f7}
.k-decision{background:#e3ecff}.k-escalation,.k-sla-breach{background:#ffe1e1}.k-sla-warning{background:#fff1d6}
.k-assignment,.k-queued{background:#e2f5ea}.k-close,.k-completed{background:#e9e4ff}.k-timer,.k-projection{background:#f3f3f3;color:#6b7280}
.k-customer-message{background:#fdf0ff}.k-agent-reply,.k-message-sent,.k-survey-sent{background:#e6f7fb}
.k-workflow-task-failed,.k-activity-failed,.k-ended{background:#ffd3d3}
details summary{cursor:pointer;color:#3451b2} pre{white-space:pre-wrap;word-break:break-word;background:#f8f9fb;padding:8px;margin:4px 0;font-size:12px}
.clocks{font-size:12px;color:#4a5368;white-space:nowrap}
.s-breached{color:#b42318;font-weight:600}.s-running{color:#155eef}.s-paused{color:#b54708}.s-fulfilled{color:#067647}
.why{margin:2px 0 0 0;padding-left:18px;font-size:12px;color:#4a5368}
footer{margin-top:28px;font-size:12px;color:#6b7280}
"""


def _dur(seconds: int | float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    sign = "-" if s < 0 else ""
    s = abs(s)
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m, sec = divmod(rem, 60)
    parts = [f"{d}d" if d else "", f"{h}h" if h else "", f"{m}m" if m else "", f"{sec}s" if sec and not d else ""]
    return sign + ("".join(parts) or "0s")


def _time(iso: str | None) -> str:
    if not iso:
        return "-"
    return datetime.fromisoformat(iso).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _clock_cell(clocks: list[dict[str, Any]]) -> str:
    lines = []
    for c in clocks:
        if c["state"] == "pending":
            continue
        lines.append(f'{escape(METRIC_SHORT.get(c["metric"], c["metric"]))}: <span class="s-{escape(c["state"])}">{escape(c["state"])}</span> '
                     f'{_dur(c["elapsed_seconds"])}/{_dur(c["target_seconds"])}')
    return "<br>".join(lines) or "-"


def render_html(tl: Timeline) -> str:
    data = tl.to_dict()
    rows = []
    for e in data["entries"]:
        kind = e["kind"]
        why = e["details"].get("why") if kind == "decision" else None
        why_html = ("<ul class=\"why\">" + "".join(f"<li>{escape(w)}</li>" for w in why) + "</ul>") if why else ""
        detail = json.dumps(e["details"], ensure_ascii=False, indent=2, default=str)
        rows.append(
            "<tr>"
            f'<td class="at">{escape(_time(e["at"]))}</td>'
            f'<td><span class="kind k-{escape(kind.replace(" ", "-"))}">{escape(kind)}</span></td>'
            f'<td>{escape(e["summary"])}{why_html}<details><summary>details</summary><pre>{escape(detail)}</pre></details></td>'
            f'<td class="clocks">{_clock_cell(e["clocks"])}</td>'
            "</tr>"
        )
    clock_rows = "".join(
        "<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in (
            c["metric"], c["state"], _dur(c["target_seconds"]), _dur(c["elapsed_seconds"]), _dur(c["remaining_seconds"]),
            _time(c["due"]), _time(c["breached_at"]), c.get("cycle", 0))) + "</tr>"
        for c in data["clocks"]
    ) or '<tr><td colspan="8">no SLA policy: no clocks</td></tr>'
    cust = data["customer"]
    meta = [
        ("ticket", data["ticket_id"]),
        ("subject", data["subject"]),
        ("channel", data["channel"]),
        ("customer", f'{cust.get("id", "?")} ({cust.get("tier", "?")}, {cust.get("language", "?")})'),
        ("status", f'{data["status"]} (workflow {data["outcome"]})'),
        ("priority / category", f'{data["priority"] or "-"} / {data["category"] or "-"}'),
        ("team / assignee", f'{data["team"] or "-"} / {data["assignee"] or "-"}'),
        ("escalation tier", data["escalation_tier"]),
        ("ruleset version", data["ruleset_version"] or "-"),
        ("sla policy", data["sla_policy"] or "-"),
        ("workflow code", f'{data["code_version"]} (patches: {", ".join(data["patches"]) or "none"})'),
        ("workflow / run", f'{data["workflow_id"]} / {data["run_id"]}'),
    ]
    meta_html = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in meta)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Audit {escape(data['ticket_id'])}</title><style>{_CSS}</style></head><body>"
        f"<h1>Audit timeline — {escape(data['ticket_id'])}</h1>"
        "<div>Built from the workflow history alone: decisions as recorded (rule ids, ruleset version, the "
        "conditions that matched and the values they saw); SLA clocks recomputed with the same pure function "
        "the workflow uses.</div>"
        f'<dl class="meta">{meta_html}</dl>'
        f"<h2>Timeline ({len(data['entries'])} entries)</h2>"
        "<table><thead><tr><th>time</th><th>kind</th><th>what happened</th><th>SLA clocks then</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        f"<h2>SLA clocks at {escape(_time(data['as_of']))}</h2>"
        "<table><thead><tr><th>metric</th><th>state</th><th>target</th><th>elapsed</th><th>remaining</th>"
        f"<th>due</th><th>breached at</th><th>cycle</th></tr></thead><tbody>{clock_rows}</tbody></table>"
        "<footer>Generated by <code>ticketflow audit</code>. Times in UTC; elapsed and remaining in business "
        "time of the policy's calendar.</footer>"
        "</body></html>\n"
    )
