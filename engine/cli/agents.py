"""`ticketflow agents import | list | status`: the agents and teams in the store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from engine.agents import AgentsInvalid, load_directory
from engine.cli.common import CliError, client_for, print_json, settings
from engine.cli.render import console
from engine.store import SchemaTooNew, Store
from engine.store.directory import AGENT_STATUSES, UnknownAgent, import_directory, list_agents, set_status

agents_app = typer.Typer(rich_markup_mode="markdown", help="Agents and teams in the store (SQLite by default, PostgreSQL via TICKETFLOW_DB_URL).", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def register(app: typer.Typer) -> None:
    app.add_typer(agents_app, name="agents")


def _store(ctx: typer.Context) -> Store:
    cfg = settings(ctx)
    try:
        return Store.open(cfg.database_url)
    except SchemaTooNew as exc:
        raise CliError(str(exc)) from None


@agents_app.command("import")
def import_cmd(ctx: typer.Context, file: Annotated[Path, typer.Argument(help="Agents YAML (schemas/agents.schema.json).", show_default=False)], as_json: JsonFlag = False) -> None:
    """Create or update teams and agents from a YAML file; open-ticket counts are kept.

    Example: ticketflow agents import agents.yaml
    """
    try:
        directory = load_directory(file)
    except AgentsInvalid as exc:
        raise CliError(str(exc)) from None
    teams, agents = import_directory(_store(ctx), directory)
    if as_json:
        print_json({"teams": teams, "agents": agents})
    else:
        typer.echo(f"imported {teams} teams and {agents} agents from {file}")


@agents_app.command("list")
def list_cmd(ctx: typer.Context, team: Annotated[Optional[str], typer.Option(help="Only this team.")] = None, as_json: JsonFlag = False) -> None:
    """Agents with their status, load and capacity.

    Example: ticketflow agents list --team refunds
    """
    rows = list_agents(_store(ctx), team)
    if as_json:
        print_json([{"id": r.id, "name": r.name, "team": r.team, "tier": r.tier, "status": r.status, "languages": r.languages,
                     "skills": r.skills, "open": r.open_count, "max_open": r.max_open, "shift": bool(r.shift)} for r in rows])
        return
    table = Table(box=None, header_style="bold")
    for col in ("agent", "name", "team", "tier", "status", "load", "languages", "skills"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.id, r.name, r.team, r.tier, r.status, f"{r.open_count}/{r.max_open}", ",".join(r.languages), ",".join(r.skills))
    console.print(table)


@agents_app.command("status")
def status_cmd(
    ctx: typer.Context,
    agent: Annotated[str, typer.Argument(help="Agent id.", show_default=False)],
    status: Annotated[str, typer.Argument(help="online, away or offline.", show_default=False)],
    as_json: JsonFlag = False,
) -> None:
    """Set an agent's status. Offline hands their open tickets to colleagues; online takes queued ones.

    Example: ticketflow agents status wang.fang offline
    """
    if status not in AGENT_STATUSES:
        raise typer.BadParameter(f"status must be one of {', '.join(AGENT_STATUSES)}")
    store = _store(ctx)
    try:
        row, held = set_status(store, agent, status)
    except UnknownAgent as exc:
        raise CliError(str(exc)) from None
    from engine.activities.assignment import AssignmentActivities

    waiting = AssignmentActivities(store).waiting(row.team) if status == "online" else []
    moved = held if status == "offline" else []

    async def tell() -> None:
        if not moved and not waiting:
            return
        client = await client_for(ctx)
        for ticket_id in moved:
            await client.get_workflow_handle(ticket_id).signal("assignee_unavailable", agent)
        for ticket_id in waiting:
            await client.get_workflow_handle(ticket_id).signal("assignment_available")

    asyncio.run(tell())
    if as_json:
        print_json({"agent": agent, "status": status, "reassigning": moved, "offered": waiting})
    else:
        typer.echo(f"{agent} is {status}" + (f"; handing over {len(moved)} ticket(s)" if moved else "")
                   + (f"; offered {len(waiting)} queued ticket(s)" if waiting else ""))
