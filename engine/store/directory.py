"""Agents and teams in the store: import from a validated YAML file, list, change status, and the
directory view (teams, leads) that notices and assignment read.

The YAML file (agents.yaml, schemas/agents.schema.json) is how agents are edited; `agents import`
upserts it. A worker seeds an empty store from TICKETFLOW_AGENTS_FILE so the embedded default works
out of the box.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlmodel import select

from engine.agents import Agent, Directory, Team
from engine.store.db import Store
from engine.store.tables import AgentRow, TeamRow, TicketAssignment

AGENT_STATUSES = ("online", "away", "offline")


class UnknownAgent(LookupError):
    pass


def import_directory(store: Store, directory: Directory) -> tuple[int, int]:
    """Upsert teams and agents; returns (teams, agents) written. Load counts are kept."""
    now = datetime.now(timezone.utc)
    with store.session() as s:
        for team in directory.teams.values():
            row = s.get(TeamRow, team.id)
            if row is None:
                s.add(TeamRow(id=team.id, name=team.name, lead=team.lead))
            else:
                row.name, row.lead = team.name, team.lead
                s.add(row)
        s.flush()
        for a in directory.agents.values():
            row = s.get(AgentRow, a.id)
            fields = dict(name=a.name, team=a.team, languages=list(a.languages), skills=list(a.skills),
                          tier=a.tier, max_open=a.max_open, status=a.status, shift=a.shift, updated_at=now)
            if row is None:
                s.add(AgentRow(id=a.id, open_count=0, **fields))
            else:
                for key, value in fields.items():
                    setattr(row, key, value)
                s.add(row)
        s.commit()
    return len(directory.teams), len(directory.agents)


def is_empty(store: Store) -> bool:
    with store.session() as s:
        return s.exec(select(AgentRow.id).limit(1)).first() is None


def load_from_store(store: Store) -> Directory:
    with store.session() as s:
        teams = {t.id: Team(t.id, t.name, t.lead) for t in s.exec(select(TeamRow)).all()}
        agents = {a.id: agent_of(a) for a in s.exec(select(AgentRow)).all()}
    return Directory(teams=teams, agents=agents)


def agent_of(row: AgentRow) -> Agent:
    return Agent(id=row.id, name=row.name, team=row.team, languages=tuple(row.languages), skills=tuple(row.skills),
                 tier=row.tier, max_open=row.max_open, status=row.status, shift=row.shift)


def list_agents(store: Store, team: str | None = None) -> list[AgentRow]:
    with store.session() as s:
        q = select(AgentRow).order_by(AgentRow.team, AgentRow.id)
        if team:
            q = q.where(AgentRow.team == team)
        return list(s.exec(q).all())


def set_status(store: Store, agent_id: str, status: str) -> tuple[AgentRow, list[str]]:
    """Set an agent's status; returns the row and the tickets they hold (to reassign when offline)."""
    if status not in AGENT_STATUSES:
        raise ValueError(f"status must be one of {', '.join(AGENT_STATUSES)}, got {status!r}")
    with store.session() as s:
        row = s.get(AgentRow, agent_id)
        if row is None:
            raise UnknownAgent(f"no agent {agent_id!r} in the store (ticketflow agents list)")
        row.status, row.updated_at = status, datetime.now(timezone.utc)
        s.add(row)
        held = list(s.exec(select(TicketAssignment.ticket_id).where(
            TicketAssignment.agent == agent_id, TicketAssignment.active == True)).all())  # noqa: E712
        s.commit()
        s.refresh(row)
        return row, held
