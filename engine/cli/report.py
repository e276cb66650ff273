"""`ticketflow report`: KPIs from the store's ticket projection, by dimension, and comparisons."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

from engine.cli.common import CliError, settings
from engine.store import SchemaTooNew, Store


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    ctx: typer.Context,
    since: Annotated[Optional[str], typer.Option(help="Tickets opened from: 2026-11-01, 2026-11-01T08:00 (UTC unless an offset is given), or a time ago: 30m, 12h, 7d, 2w.")] = None,
    until: Annotated[Optional[str], typer.Option(help="Tickets opened before (same forms; default now). The backlog is counted at this instant.")] = None,
    by: Annotated[Optional[str], typer.Option(help="One row per group: channel, priority, category, team, agent or ruleset.")] = None,
    ruleset: Annotated[Optional[str], typer.Option(help="Only tickets pinned to this ruleset version (a prefix of at least 4 characters).")] = None,
    compare: Annotated[Optional[tuple[str, str]], typer.Option(
        help="Side by side with the change and its direction: two periods (SINCE..UNTIL SINCE..UNTIL) or two ruleset "
             "versions (OLD NEW, within --since/--until).", metavar="BEFORE AFTER")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON (durations in seconds, rates 0..1).")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print the report as CSV (one row per group, or per KPI with --compare).")] = False,
    html: Annotated[Optional[Path], typer.Option("--html", help="Write a self-contained HTML report with charts to FILE.", metavar="FILE")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Data dir of the embedded SQLite store (env TICKETFLOW_DATA_DIR); TICKETFLOW_DB_URL wins.")] = None,
) -> None:
    """KPIs of the tickets opened in a period: volume, first response and resolution p50/p90,
    resolution and first-contact resolution rates, SLA compliance per metric, escalation and
    reopen rates, CSAT and NPS, complaints, backlog by age.

    Examples:

    ```
    ticketflow report --since 7d --by channel
    ticketflow report --since 2026-11-01 --until 2026-11-08 --html week.html
    ticketflow report --compare 2026-10-25..2026-11-01 2026-11-01..2026-11-08
    ticketflow report --by ruleset                      # the versions, then:
    ticketflow report --compare 7db7bddfe6fa 1133a7d5f655 --json
    ```
    """
    from engine import report as rep
    from engine.report import html as html_render
    from engine.report import render

    if sum([as_json, as_csv, html is not None]) > 1:
        raise typer.BadParameter("choose one of --json, --csv and --html", param_hint="--json/--csv/--html")
    if by is not None and by not in rep.DIMENSIONS:
        raise typer.BadParameter(f"must be one of {', '.join(rep.DIMENSIONS)}", param_hint="--by")
    if compare is not None and (by is not None or ruleset is not None):
        raise typer.BadParameter("--compare compares whole cohorts; drop --by and --ruleset", param_hint="--compare")
    now = datetime.now(timezone.utc)
    try:
        start = rep.parse_time(since, now) if since else None
        end = rep.parse_time(until, now) if until else now
    except rep.BadPeriod as exc:
        raise typer.BadParameter(str(exc), param_hint="--since/--until") from None
    if start is not None and start >= end:
        raise typer.BadParameter("--since must be before --until", param_hint="--since/--until")

    store = _store(ctx, data_dir)
    try:
        if compare is not None:
            before, after = rep.selections_for_compare(store, compare[0], compare[1], start, end, now)
            doc = rep.build_comparison(store, before, after, now)
        else:
            doc = rep.build_report(store, start, end, by=by, ruleset=ruleset, now=now)
    except rep.BadPeriod as exc:
        raise typer.BadParameter(str(exc), param_hint="--compare") from None
    except rep.UnknownRuleset as exc:
        raise CliError(str(exc)) from None

    if as_json:
        typer.echo(render.to_json(doc), nl=False)
    elif as_csv:
        typer.echo(render.to_csv(doc), nl=False)
    elif html is not None:
        try:
            html.write_text(html_render.to_html(doc), encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot write {html}: {exc.strerror}") from None
        tickets = doc["overall"]["volume"] if doc["report"] == "kpis" else doc["before"]["kpis"]["volume"] + doc["after"]["kpis"]["volume"]
        typer.echo(f"wrote {html} ({tickets} tickets)")
    else:
        typer.echo(render.to_text(doc), nl=False)


def _store(ctx: typer.Context, data_dir: Path | None) -> Store:
    cfg = settings(ctx, data_dir=data_dir)
    if not cfg.db_url and not (cfg.data_dir / "ticketflow.db").exists():
        raise CliError(f"no store at {cfg.data_dir / 'ticketflow.db'}: pass --data-dir (where `ticketflow dev` keeps its data) "
                       "or set TICKETFLOW_DB_URL")
    try:
        return Store.open(cfg.database_url)
    except SchemaTooNew as exc:
        raise CliError(str(exc)) from None
