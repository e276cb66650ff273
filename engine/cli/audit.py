"""Auditor commands: `audit` (a ticket's timeline from its history), `export` (histories to JSON
files in Temporal's format) and `replay` (exported or live histories against today's code)."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from zoneinfo import ZoneInfo
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.audit.history import DEFAULT_QUERY, HistoryError, export_query, export_ticket, fetch_history, history_files, read_history
from engine.audit.replay import ReplayOutcome, file_sources, replay, server_sources
from engine.audit.report import render_html
from engine.audit.timeline import Timeline, TimelineError, build_timeline
from engine.cli.common import CliError, client_for, print_json, run
from engine.cli.render import console, duration, short_time

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
METRIC_SHORT = {"first_response": "FR", "next_reply": "NR", "periodic_update": "PU", "resolution": "RES"}
KIND_STYLE = {
    "decision": "blue", "escalation": "bold red", "sla breach": "bold red", "sla warning": "yellow",
    "assignment": "green", "queued": "yellow", "close": "magenta", "completed": "magenta",
    "customer message": "cyan", "agent reply": "cyan", "timer": "dim", "projection": "dim",
    "workflow task failed": "bold red", "activity failed": "bold red", "ended": "bold red",
}


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)
    app.command("export")(export)
    app.command("replay")(replay_cmd)


def _parse_at(value: str | None) -> datetime | None:
    if value is None:
        return None
    if value == "now":
        return datetime.now(timezone.utc)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO time (e.g. 2026-12-05T12:00:00+08:00) or 'now'", param_hint="--at") from None
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def _clock_cell(clocks: list[dict[str, Any]]) -> str:
    lines = [f"{METRIC_SHORT.get(c['metric'], c['metric'])} {c['state']} {duration(c['elapsed_seconds'])}/{duration(c['target_seconds'])}"
             for c in clocks if c["state"] != "pending"]
    return "\n".join(lines) or "-"


def _print_timeline(tl: Timeline) -> None:
    head = Table.grid(padding=(0, 2))
    cust = tl.customer
    for label, value in (
        ("ticket", f"{tl.ticket_id}  (run {tl.run_id})"),
        ("subject", f"{tl.subject}  [{tl.channel}; {cust.get('id', '?')} {cust.get('tier', '?')}/{cust.get('language', '?')}]"),
        ("status", f"{tl.status} (workflow {tl.outcome})"),
        ("priority / category", f"{tl.priority or '-'} / {tl.category or '-'}"),
        ("team / assignee", f"{tl.team or '-'} / {tl.assignee or '-'}  (tier {tl.escalation_tier})"),
        ("ruleset", tl.ruleset_version or "-"),
        ("sla policy", tl.sla_policy or "-"),
        ("workflow code", f"{tl.code_version} (patches: {', '.join(tl.patches) or 'none'})"),
    ):
        head.add_row(f"[bold]{label}[/bold]", escape(value))
    console.print(head)

    table = Table(title=f"timeline ({len(tl.entries)} entries, from history alone; times UTC)", title_justify="left",
                  show_lines=False, header_style="bold")
    table.add_column("#", justify="right", style="dim")
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("what happened", overflow="fold")
    table.add_column("SLA clocks then", no_wrap=True)  # FR first response, NR next reply, PU periodic update, RES resolution
    previous = None
    for e in tl.entries:
        what = e.summary
        if e.kind == "decision" and e.details.get("why"):
            what += "".join(f"\n  why: {w}" for w in e.details["why"])
        style = KIND_STYLE.get(e.kind, "")
        cell = _clock_cell(e.clocks)
        shown = '[dim]  " (same)[/dim]' if cell == previous and cell != "-" else cell  # only changes stand out
        previous = cell
        table.add_row(str(e.seq), e.at.strftime("%Y-%m-%d %H:%M:%S"), f"[{style}]{e.kind}[/{style}]" if style else e.kind,
                      escape(what), shown)
    console.print(table)

    when = {"completed": "when the workflow completed", "running": "the ticket's workflow is still running"}.get(
        tl.outcome, f"when the workflow {tl.outcome.replace('_', ' ')}")
    clocks = Table(title=f"SLA clocks at {tl.as_of.strftime('%Y-%m-%d %H:%M:%S')} UTC ({when}; recomputed from history)",
                   title_justify="left", header_style="bold")
    for col in ("metric", "state", "target", "elapsed", "remaining", "due", "breached at"):
        clocks.add_column(col)
    cal = tl.sla_targets.get("calendar")
    zone = ZoneInfo(cal["tz"]) if isinstance(cal, dict) and cal.get("tz") else ZoneInfo("UTC")
    for c in tl.clocks:  # due times in the calendar's zone, as `show` prints them
        clocks.add_row(c["metric"], c["state"], duration(c["target_seconds"]), duration(c["elapsed_seconds"]),
                       duration(c["remaining_seconds"]), short_time(c["due"], zone), short_time(c["breached_at"], zone))
    if tl.clocks:
        console.print(clocks)
    else:
        console.print("no SLA policy in this history: no clocks")


def audit(
    ctx: typer.Context,
    ticket_id: Annotated[Optional[str], typer.Argument(help="Ticket id, read from the server.", show_default=False)] = None,
    history: Annotated[Optional[Path], typer.Option("--history", help="An exported history (JSON, Temporal's format); no server needed.")] = None,
    html: Annotated[Optional[Path], typer.Option("--html", help="Also write the timeline as one self-contained HTML file.")] = None,
    at: Annotated[Optional[str], typer.Option("--at", help="Instant for the closing clocks of a running ticket: ISO time or 'now'.")] = None,
    hide: Annotated[Optional[str], typer.Option("--hide", help="Leave out entries of these kinds, e.g. timer,projection (numbering keeps the gaps).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """A ticket's timeline from its workflow history alone: every decision with rule ids, ruleset
    version and why it matched, assignments, messages, escalations, SLA warnings and breaches, with
    the SLA clocks recomputed at each step.

    Example: ticketflow audit TF-7K2M9QXA4B --html TF-7K2M9QXA4B.html

    Example: ticketflow audit --history exported/TF-7K2M9QXA4B.json --hide timer,projection

    Example: ticketflow audit --history exported/TF-7K2M9QXA4B.json --json
    """
    if (ticket_id is None) == (history is None):
        raise typer.BadParameter("give a TICKET (read from the server) or --history FILE, not both")
    when = _parse_at(at)
    if history is not None:
        try:
            hist = read_history(history)
        except HistoryError as exc:
            raise CliError(str(exc)) from None
    else:
        async def go():  # type: ignore[no-untyped-def]
            client = await client_for(ctx)
            try:
                return await fetch_history(client, ticket_id)  # type: ignore[arg-type]
            except HistoryError as exc:
                raise CliError(str(exc)) from None

        hist = run(go())
    try:
        tl = build_timeline(hist)
        if when is None and history is None and tl.outcome == "running":
            # a live ticket: the clocks as they stand now (never before the history's last event)
            when = max(datetime.now(timezone.utc), tl.as_of)
        if when is not None and tl.outcome == "running":
            tl = build_timeline(hist, at=when)
    except TimelineError as exc:
        raise CliError(str(exc)) from None
    hidden = {k.strip() for k in (hide or "").split(",") if k.strip()}
    if hidden:
        tl.entries = [e for e in tl.entries if e.kind not in hidden]
    if html is not None:
        try:
            html.parent.mkdir(parents=True, exist_ok=True)
            html.write_text(render_html(tl), "utf-8")
        except OSError as exc:
            raise CliError(f"{html}: cannot write: {exc.strerror or exc}") from None
    if as_json:
        print_json(tl.to_dict())
    elif html is not None:
        typer.echo(f"{tl.ticket_id}: timeline of {len(tl.entries)} entries written to {html}")
    else:
        _print_timeline(tl)


def export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the <ticket>.json files (created if missing).", show_default=False)],
    query: Annotated[Optional[str], typer.Option("--query", "-q", help='Visibility query, as in `ticketflow list --query`, e.g. \'Category = "complaint"\'.')] = None,
    ids: Annotated[Optional[list[str]], typer.Option("--id", help="A ticket id (repeat for several); instead of --query.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="At most this many tickets (default: all that match).", min=1)] = None,
    as_json: JsonFlag = False,
) -> None:
    """Export ticket histories as JSON files in Temporal's own format (what `temporal workflow show
    -o json` prints), one `<ticket>.json` per ticket, for `audit --history` and `replay --dir`.

    Example: ticketflow export --query 'TicketStatus = "closed" AND Priority = "P1"' --out audit/2026-12

    Example: ticketflow export --id TF-7K2M9QXA4B --out audit/
    """
    if ids and query:
        raise typer.BadParameter("give --id or --query, not both")
    q = DEFAULT_QUERY if not query else f"{DEFAULT_QUERY} AND ({query})"
    written: list[tuple[str, Path]] = []

    async def go() -> None:
        client = await client_for(ctx)
        try:
            if ids:
                for tid in ids[:limit] if limit else ids:
                    written.append((tid, await export_ticket(client, tid, out)))
            else:
                await export_query(client, q, out, limit, on_each=lambda tid, path: written.append((tid, path)))
        except HistoryError as exc:
            raise CliError(str(exc)) from None
        except OSError as exc:
            raise CliError(f"{out}: cannot write: {exc.strerror or exc}") from None

    run(go())
    if as_json:
        print_json({"out": str(out), "query": None if ids else q, "files": [{"ticket_id": t, "path": str(p)} for t, p in written]})
        return
    for tid, path in written:
        typer.echo(f"{tid}: {path}")
    typer.echo(f"{len(written)} histor{'y' if len(written) == 1 else 'ies'} written to {out}" + ("" if ids else f" (query: {q})"))


def replay_cmd(
    ctx: typer.Context,
    files: Annotated[Optional[list[Path]], typer.Argument(help="History files (JSON, Temporal's format).", show_default=False)] = None,
    directory: Annotated[Optional[Path], typer.Option("--dir", "-d", help="Replay every *.json in this directory.")] = None,
    query: Annotated[Optional[str], typer.Option("--query", "-q", help="Replay the histories of the tickets this visibility query matches, from the server.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="With --query: at most this many tickets.", min=1)] = None,
    as_json: JsonFlag = False,
) -> None:
    """Replay histories against the current workflow code and name every one that is not
    deterministic, and why. Exit 1 if any failed: run it in CI before deploying workflow changes.

    Example: ticketflow replay --dir tests/histories

    Example: ticketflow replay --query 'TicketStatus != "closed"' --limit 500
    """
    given = [name for name, value in (("FILE", files), ("--dir", directory), ("--query", query)) if value]
    if len(given) != 1:
        raise typer.BadParameter("give history FILEs, --dir DIR or --query QUERY (exactly one of them)")
    if limit is not None and not query:
        raise typer.BadParameter("--limit goes with --query")
    paths: list[Path] = []
    if files:
        paths = list(files)
    elif directory is not None:
        try:
            paths = history_files(directory)
        except HistoryError as exc:
            raise CliError(str(exc)) from None
        if not paths:
            raise CliError(f"{directory}: no *.json histories to replay")

    err = Console(stderr=True)
    outcomes: list[ReplayOutcome] = []

    async def go() -> None:
        progress = Progress(TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("{task.fields[name]}"), console=err, transient=True,
                            disable=as_json or not err.is_terminal)  # redraws are for a person watching
        with progress:
            task = progress.add_task("replay", total=len(paths) if paths else None, name="")

            def step(outcome: ReplayOutcome) -> None:
                outcomes.append(outcome)
                progress.update(task, advance=1, name=Path(outcome.name).name)

            if query:
                client = await client_for(ctx)
                q = f"{DEFAULT_QUERY} AND ({query})"
                try:
                    await replay(server_sources(client, q, limit), step)
                except Exception as exc:
                    message = getattr(exc, "message", None) or str(exc)
                    raise CliError(f"replay query failed: {message} (query: {q})") from None
            else:
                await replay(file_sources(paths), step)

    run(go())
    failed = [o for o in outcomes if not o.ok]
    if as_json:
        print_json({"replayed": len(outcomes), "failed": len(failed),
                    "failures": [{"name": o.name, "reason": o.reason} for o in failed],
                    "ok": [o.name for o in outcomes if o.ok]})
    else:
        for o in failed:
            typer.echo(f"FAILED {o.name}: {o.reason}")
        typer.echo(f"{len(outcomes)} replayed, {len(failed)} failed")
    if query and not outcomes:
        print("no ticket matched the query", file=sys.stderr)
    if failed:
        raise typer.Exit(1)
