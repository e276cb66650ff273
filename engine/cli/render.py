"""Human-readable output of tickets for the terminal (rich tables); `--json` bypasses this."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table

from engine.models import TicketState
from engine.tickets import TicketRow

# Piped output (scripts, CI logs) gets a wide table instead of rich's 80-column default.
console = Console() if sys.stdout.isatty() else Console(width=180)


def short_time(iso: str | None, tz: ZoneInfo | None = None) -> str:
    if not iso:
        return "-"
    at = datetime.fromisoformat(iso)
    if tz is not None:
        return at.astimezone(tz).strftime("%a %Y-%m-%d %H:%M:%S ") + tz.key
    return at.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def ticket_zone(st: TicketState) -> ZoneInfo | None:
    """The zone of the ticket's SLA calendar: due times are read in the team's local time."""
    cal = st.sla_targets.get("calendar") if st.sla_targets else None
    return ZoneInfo(cal["tz"]) if isinstance(cal, dict) and cal.get("tz") else None


def duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else ""
    s = abs(int(seconds))
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    parts = [f"{d}d" if d else "", f"{h}h" if h else "", f"{m}m" if m else "", f"{s}s" if s and not d else ""]
    return sign + ("".join(parts) or "0s")


def show_ticket(st: TicketState) -> None:
    head = Table.grid(padding=(0, 2))
    for label, value in (
        ("ticket", st.ticket_id),
        ("status", st.status),
        ("subject", st.subject),
        ("channel", f"{st.channel}{' (public)' if st.is_public else ''}"),
        ("customer", f"{st.customer.id} ({st.customer.tier}, {st.customer.language})"),
        ("priority", st.priority or "-"),
        ("category", f"{st.category or '-'}  tags: {', '.join(st.tags) or '-'}"),
        ("team / assignee", f"{st.team or '-'} / {st.assignee or '-'}"),
        ("ruleset", st.ruleset_version or "-"),
        ("sla policy", _policy_line(st)),
        ("escalation", st.escalation_tier),
    ):
        head.add_row(f"[bold]{label}[/bold]", value)
    for label, value in (
        ("origin", st.origin if st.origin != "customer" else ""),
        ("faq bot", f"answered with {st.bot_answer}" + (f"; handed to a person: {st.handoff}" if st.handoff else "")
         if st.bot_answer else ""),
        ("resolved by", st.resolved_by or ""),
        ("root cause", st.root_cause),
        ("continues", st.linked_to),
        ("reopen until", short_time(st.reopen_until) if st.reopen_until else ""),
        ("follow-up tasks", ", ".join(st.followups)),
        ("undelivered", ", ".join(st.undelivered)),
    ):
        if value:
            head.add_row(f"[bold]{label}[/bold]", value)
    console.print(head)

    stages = Table(title="stages", title_justify="left")
    stages.add_column("stage")
    stages.add_column("at")
    for s in st.stages:
        stages.add_row(s.stage, short_time(s.at))
    console.print(stages)

    decisions = Table(title="decisions", title_justify="left")
    for col in ("group", "rule", "actions", "ruleset"):
        decisions.add_column(col)
    for d in st.decisions:
        decisions.add_row(d.group, d.rule_id or "(no rule matched)", json.dumps(d.actions, ensure_ascii=False), d.ruleset_version)
    console.print(decisions)

    if st.sla:
        zone = ticket_zone(st)
        clocks = Table(title="sla (business time)" if zone else "sla (24x7)", title_justify="left")
        for col in ("metric", "state", "target", "elapsed", "remaining", "due", "breached at"):
            clocks.add_column(col)
        for c in st.sla:
            clocks.add_row(c.metric, c.state, duration(c.target_seconds), duration(c.elapsed_seconds),
                           duration(c.remaining_seconds), short_time(c.due, zone), short_time(c.breached_at, zone))
        console.print(clocks)

    if st.survey:
        sv = st.survey
        answer = f"score {sv.score}" if sv.score is not None else ("expired" if sv.expired else "waiting")
        where = f" on {sv.channel}" if sv.channel else ""
        reminded = f", reminded {short_time(sv.reminded_at)}" if sv.reminded_at else ""
        console.print(f"[bold]survey[/bold] {sv.kind}{where} sent {short_time(sv.sent_at)}{reminded}: {answer} {sv.comment}")

    if st.compensations:
        comp = Table(title="compensation", title_justify="left")
        for col in ("#", "kind", "amount", "offered by", "status", "rule", "decided by", "reason / note"):
            comp.add_column(col)
        for c in st.compensations:
            status = c.status + (f" ({c.approver_tier}+)" if c.status == "pending_approval" else "")
            comp.add_row(str(c.seq), c.kind, f"{c.amount:g}", c.offered_by, status, c.rule_id or "-", c.decided_by or "-",
                         c.reason + (f" / {c.note}" if c.note else ""))
        console.print(comp)

    msgs = Table(title="conversation", title_justify="left")
    for col in ("at", "who", "message"):
        msgs.add_column(col)
    for m in st.messages:
        msgs.add_row(short_time(m.at), f"{m.role}:{m.author}", m.body)
    console.print(msgs)


def _policy_line(st: TicketState) -> str:
    if not st.sla_policy:
        return "-"
    cal = st.sla_targets.get("calendar") if st.sla_targets else None
    where = f"calendar {cal['name']} ({cal['tz']})" if isinstance(cal, dict) else "24x7"
    return f"{st.sla_policy}, {where}"


def list_table(rows: list[TicketRow]) -> None:
    table = Table(box=None, header_style="bold")
    for col in ("ticket", "status", "priority", "category", "team", "assignee", "channel", "sla", "opened"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.ticket_id, r.status, r.priority, r.category, r.team, r.assignee, r.channel,
            "BREACHED" if r.sla_breached else "ok", r.opened_at[:16].replace("T", " "),
        )
    console.print(table)
    console.print(f"{len(rows)} ticket(s)")
