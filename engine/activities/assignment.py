"""Assignment: pick an agent in the routed team by availability, shift, language, skills, tier and
load, with the strategy the routing rules chose; queue the ticket when nobody can take it.

Exactness with many workers at once: an agent's load (`agent.open_count`) only changes through a
conditional UPDATE (`... WHERE open_count < max_open`) in the same transaction as the ticket's
assignment row, whose own row is locked first (SELECT ... FOR UPDATE on PostgreSQL; SQLite
serialises writers). A lost race shows up as an UPDATE that changed no row, and the next candidate
is tried. One assignment row per ticket makes a retried activity return what it already did.

Queued tickets are not polled: when an agent frees a slot or comes online, the store says which
queued tickets could now be taken, and the caller signals those workflows to try again.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Callable

from sqlalchemy import update
from sqlmodel import Session, select
from temporalio import activity

from engine import metrics
from engine.agents import Agent
from engine.calendar import calendar_from_dict
from engine.models import Assignment, AssignmentRequest
from engine.store import Store
from engine.store.directory import agent_of
from engine.store.tables import AgentRow, QueuedTicket, TeamRow, TicketAssignment

TIER_RANK = {"agent": 0, "senior": 1, "expert": 2, "lead": 2, "manager": 3}


def _stable(ticket_id: str, agent_id: str) -> str:
    return hashlib.sha256(f"{ticket_id}/{agent_id}".encode()).hexdigest()


def available(agent: Agent, now: datetime) -> bool:
    if agent.status != "online":
        return False
    return agent.shift is None or calendar_from_dict(agent.shift).is_open(now)


def rank(req: AssignmentRequest, members: list[Agent], load: dict[str, int], cursor: str, now: datetime) -> tuple[list[Agent], str]:
    """Pure: the candidates in the order to try them, and why. Empty when nobody may take it.

    Hard requirements: online and inside their shift, below capacity, the tier asked for. Soft,
    relaxed in this order when nobody meets them: skills, then language (a ticket is better
    answered by a colleague with a translation tool than left unanswered).
    """
    pool = [m for m in members if m.id not in req.exclude and available(m, now) and load.get(m.id, 0) < m.max_open]
    if req.min_tier:
        pool = [m for m in pool if TIER_RANK.get(m.tier, 0) >= TIER_RANK.get(req.min_tier, 0)]
    if not pool:
        return [], "nobody available with capacity" + (f" at tier {req.min_tier} or above" if req.min_tier else "")
    speaks = [m for m in pool if req.language in m.languages]
    skilled = [m for m in speaks if set(req.skills) <= set(m.skills)]
    if skilled:
        pool, why = skilled, "language and skills match"
    elif speaks:
        pool, why = speaks, "language match, skills relaxed"
    else:
        why = "nobody available speaks the language"
    if req.strategy == "round_robin":
        order = [m.id for m in sorted(members, key=lambda m: m.id)]
        start = order.index(cursor) + 1 if cursor in order else 0
        rotation = order[start:] + order[:start]
        ranked = sorted(pool, key=lambda m: rotation.index(m.id))
        return ranked, f"round_robin after {cursor or '(start)'}; {why}"
    ranked = sorted(pool, key=lambda m: (load.get(m.id, 0) / m.max_open, load.get(m.id, 0), _stable(req.ticket_id, m.id)))
    return ranked, f"least_loaded ({load.get(ranked[0].id, 0)} open); {why}"


class AssignmentActivities:
    def __init__(self, store: Store, now: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.now = now or (lambda: datetime.now(timezone.utc))

    @activity.defn(name="assign_agent")
    def assign_agent(self, req: AssignmentRequest) -> Assignment:
        return self.assign(req)

    def assign(self, req: AssignmentRequest) -> Assignment:
        now = self.now()
        with self.store.session() as s:
            existing = s.exec(select(TicketAssignment).where(TicketAssignment.ticket_id == req.ticket_id).with_for_update()).first()
            if existing is not None and existing.active and existing.team == req.team and existing.agent not in req.exclude:
                current = s.get(AgentRow, existing.agent)
                if not req.min_tier or (current and TIER_RANK.get(current.tier, 0) >= TIER_RANK.get(req.min_tier, 0)):
                    return Assignment(team=existing.team, agent=existing.agent, reason=f"{existing.agent} already holds it")
            team = s.get(TeamRow, req.team)
            members = [agent_of(r) for r in s.exec(select(AgentRow).where(AgentRow.team == req.team)).all()]
            if team is None or not members:
                return self._queue(s, req, now, f"team {req.team!r} has no agents")
            previous = existing.agent if existing is not None else ""
            if existing is not None and not existing.active and previous not in req.exclude and not req.min_tier:
                # A reopened ticket goes back to the agent who knows it, when they can take it.
                back = next((m for m in members if m.id == previous), None)
                if back and available(back, now) and self._take(s, back.id):
                    return self._commit(s, req, existing, back.id, team, now, "back to the previous assignee", "previous_assignee")
            load = {r.id: r.open_count for r in s.exec(select(AgentRow).where(AgentRow.team == req.team)).all()}
            ranked, why = rank(req, members, load, team.rr_cursor, now)
            for agent in ranked:
                if self._take(s, agent.id):
                    return self._commit(s, req, existing, agent.id, team, now, why)
            why = why if not ranked else "every candidate filled up meanwhile"
            if existing is not None and existing.active:
                holder = s.get(AgentRow, existing.agent)
                if holder is not None and existing.team == req.team and available(agent_of(holder), now):
                    return Assignment(team=existing.team, agent=existing.agent, reason=f"nobody else can take it ({why}); stays with {existing.agent}")
                # The holder cannot work on it (offline, or another team was asked for): free the slot.
                existing.active, existing.released_at = False, now
                s.add(existing)
                s.exec(update(AgentRow).where(AgentRow.id == existing.agent, AgentRow.open_count > 0)  # type: ignore[call-overload]
                       .values(open_count=AgentRow.open_count - 1))
            return self._queue(s, req, now, why)

    def _take(self, s: Session, agent_id: str) -> bool:
        """One more ticket for the agent if below capacity; False when another worker got there first."""
        res = s.exec(  # type: ignore[call-overload]
            update(AgentRow)
            .where(AgentRow.id == agent_id, AgentRow.open_count < AgentRow.max_open)
            .values(open_count=AgentRow.open_count + 1)
        )
        return res.rowcount == 1

    def _commit(self, s: Session, req: AssignmentRequest, existing: TicketAssignment | None, agent_id: str,
                team: TeamRow, now: datetime, why: str, strategy: str = "") -> Assignment:
        if existing is None:
            s.add(TicketAssignment(ticket_id=req.ticket_id, team=req.team, agent=agent_id, assigned_at=now))
        else:
            if existing.active:  # a reassignment: the previous agent's slot frees up
                s.exec(update(AgentRow).where(AgentRow.id == existing.agent, AgentRow.open_count > 0)  # type: ignore[call-overload]
                       .values(open_count=AgentRow.open_count - 1))
            existing.team, existing.agent, existing.active = req.team, agent_id, True
            existing.assigned_at, existing.released_at = now, None
            s.add(existing)
        if req.strategy == "round_robin":
            team.rr_cursor = agent_id
            s.add(team)
        queued = s.get(QueuedTicket, req.ticket_id)
        queued_at = queued.queued_at if queued is not None else None
        if queued is not None:
            s.delete(queued)
        s.commit()
        # After the commit that took the slot: a retry returns the existing row and counts nothing.
        metrics.current().assigned(req.team, strategy or req.strategy, queued_at, now)
        return Assignment(team=req.team, agent=agent_id, reason=why)

    def _queue(self, s: Session, req: AssignmentRequest, now: datetime, why: str) -> Assignment:
        new = s.get(QueuedTicket, req.ticket_id) is None
        if new:
            s.add(QueuedTicket(ticket_id=req.ticket_id, team=req.team, request=_request_dict(req), queued_at=now))
        s.commit()
        if new:
            metrics.current().ticket_queued(req.team)
        return Assignment(team=req.team, agent="", reason=f"queued in {req.team}: {why}")

    @activity.defn(name="release_assignment")
    def release_assignment(self, ticket_id: str) -> list[str]:
        """Free the ticket's slot; returns queued tickets that could now be assigned (to signal)."""
        return self.release(ticket_id)

    def release(self, ticket_id: str) -> list[str]:
        now = self.now()
        with self.store.session() as s:
            row = s.exec(select(TicketAssignment).where(TicketAssignment.ticket_id == ticket_id).with_for_update()).first()
            team = None
            if row is not None and row.active:
                row.active, row.released_at = False, now
                s.add(row)
                s.exec(update(AgentRow).where(AgentRow.id == row.agent, AgentRow.open_count > 0)  # type: ignore[call-overload]
                       .values(open_count=AgentRow.open_count - 1))
                team = row.team
            queued = s.get(QueuedTicket, ticket_id)
            if queued is not None:
                s.delete(queued)
            s.commit()
        return self.waiting(team) if team else []

    def waiting(self, team: str | None = None, limit: int = 20) -> list[str]:
        """Queued tickets (oldest first) that some agent could take right now."""
        now = self.now()
        with self.store.session() as s:
            q = select(QueuedTicket).order_by(QueuedTicket.queued_at).limit(200)
            if team:
                q = q.where(QueuedTicket.team == team)
            queued = list(s.exec(q).all())
            out = []
            for item in queued:
                req = _request_from(item.request)
                rows = s.exec(select(AgentRow).where(AgentRow.team == item.team)).all()
                load = {r.id: r.open_count for r in rows}
                if rank(req, [agent_of(r) for r in rows], load, "", now)[0]:
                    out.append(item.ticket_id)
                if len(out) >= limit:
                    break
            return out


def _request_dict(req: AssignmentRequest) -> dict:
    # `exclude` is not kept: it named someone who could not work on it then (offline, silent);
    # once they are available again they may take it from the queue like anyone else.
    return {"ticket_id": req.ticket_id, "team": req.team, "language": req.language, "skills": list(req.skills),
            "strategy": req.strategy, "exclude": [], "min_tier": req.min_tier}


def _request_from(data: dict) -> AssignmentRequest:
    return AssignmentRequest(**data)
