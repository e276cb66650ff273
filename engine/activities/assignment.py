"""Assignment: pick an agent in the routed team by language, skills, availability and load.

One assignment row per ticket makes the activity idempotent: a retry returns the agent it already
chose. Load is the count of an agent's active rows. Strategies: `least_loaded` (fewest open
tickets, ties broken by a stable hash of the ticket id so ties spread) and `round_robin` (the
member after the team's most recent assignee). The store issue adds shifts, queues and row locks
for PostgreSQL; until then one lock serialises assignment inside a worker process.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime, timezone

from sqlalchemy import func
from sqlmodel import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from engine.agents import Agent, Directory
from engine.models import Assignment, AssignmentRequest
from engine.store import Store
from engine.store.tables import TicketAssignment

_lock = threading.Lock()
TIER_RANK = {"agent": 0, "senior": 1, "expert": 2, "lead": 2, "manager": 3}


def _stable(ticket_id: str, agent_id: str) -> str:
    return hashlib.sha256(f"{ticket_id}/{agent_id}".encode()).hexdigest()


def choose_agent(
    req: AssignmentRequest, directory: Directory, load: dict[str, int], last_assignee: str | None
) -> tuple[Agent, str]:
    """Pure choice given the directory and current loads; returns the agent and why."""
    members = [m for m in directory.members(req.team) if m.id not in req.exclude]
    if not members:
        raise ApplicationError(f"team {req.team!r} has no agents to assign", non_retryable=True)
    if req.min_tier:
        senior = [m for m in members if TIER_RANK.get(m.tier, 0) >= TIER_RANK.get(req.min_tier, 0)]
        members = senior or members  # nobody senior enough: the team still owns it
    online = [m for m in members if m.status == "online"] or members
    speaks = [m for m in online if req.language in m.languages]
    skilled = [m for m in speaks if set(req.skills) <= set(m.skills)]
    pool, why = (skilled, "language and skills match") if skilled else (
        (speaks, "language match, skills relaxed") if speaks else (online, "nobody speaks the language")
    )
    free = [m for m in pool if load.get(m.id, 0) < m.max_open]
    if free:
        pool = free
    else:
        why += "; everyone at capacity"
    if req.strategy == "round_robin" and last_assignee:
        ids = [m.id for m in members]
        start = ids.index(last_assignee) + 1 if last_assignee in ids else 0
        ordered = ids[start:] + ids[:start]
        pick = next(m for i in ordered for m in pool if m.id == i)
        return pick, f"round_robin after {last_assignee}; {why}"
    pick = min(pool, key=lambda m: (load.get(m.id, 0), _stable(req.ticket_id, m.id)))
    return pick, f"least_loaded ({load.get(pick.id, 0)} open); {why}"


class AssignmentActivities:
    def __init__(self, store: Store, directory: Directory) -> None:
        self.store = store
        self.directory = directory

    @activity.defn(name="assign_agent")
    def assign_agent(self, req: AssignmentRequest) -> Assignment:
        with _lock, self.store.session() as session:
            existing = session.get(TicketAssignment, req.ticket_id)
            if existing is not None and existing.active and existing.team == req.team and existing.agent not in req.exclude:
                return Assignment(team=existing.team, agent=existing.agent, reason="already assigned (retry)")
            previous = self.directory.agents.get(existing.agent) if existing is not None else None
            if (
                previous is not None
                and previous.team == req.team
                and previous.status == "online"
                and previous.id not in req.exclude
            ):
                # A reopened ticket goes back to the agent who knows it.
                existing.active, existing.assigned_at, existing.released_at = True, datetime.now(timezone.utc), None
                session.add(existing)
                session.commit()
                return Assignment(team=req.team, agent=previous.id, reason="back to the previous assignee")
            rows = session.exec(
                select(TicketAssignment.agent, func.count())
                .where(TicketAssignment.active == True)  # noqa: E712
                .group_by(TicketAssignment.agent)
            ).all()
            load = {agent: n for agent, n in rows}
            last = session.exec(
                select(TicketAssignment.agent)
                .where(TicketAssignment.team == req.team)
                .order_by(TicketAssignment.assigned_at.desc())  # type: ignore[union-attr]
                .limit(1)
            ).first()
            agent, why = choose_agent(req, self.directory, load, last)
            now = datetime.now(timezone.utc)
            if existing is None:
                session.add(TicketAssignment(ticket_id=req.ticket_id, team=req.team, agent=agent.id, assigned_at=now))
            else:
                existing.team, existing.agent, existing.active = req.team, agent.id, True
                existing.assigned_at, existing.released_at = now, None
                session.add(existing)
            session.commit()
            return Assignment(team=req.team, agent=agent.id, reason=why)

    @activity.defn(name="release_assignment")
    def release_assignment(self, ticket_id: str) -> None:
        with _lock, self.store.session() as session:
            row = session.get(TicketAssignment, ticket_id)
            if row is not None and row.active:
                row.active, row.released_at = False, datetime.now(timezone.utc)
                session.add(row)
                session.commit()
