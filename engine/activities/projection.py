"""The reporting projection: the ticket row and its append-only events, written from the workflow.

Temporal history is the truth; this is a copy shaped for `report` and for queries across tickets.
Safe to run twice: the ticket row is an upsert, events are unique per (ticket, seq) and only the
missing ones are inserted, a survey answer is unique per (ticket, resolution).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from sqlmodel import select
from temporalio import activity

from engine import metrics
from engine.models import ProjectionUpdate
from engine.store import Store
from engine.store.tables import SurveyAnswerRow, TicketEventRow, TicketRow


def _t(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class ProjectionActivities:
    def __init__(self, store: Store) -> None:
        self.store = store

    @activity.defn(name="project_ticket")
    async def project_ticket(self, u: ProjectionUpdate) -> int:
        """Returns how many journal entries were new."""
        return await asyncio.to_thread(self.project, u)

    def project(self, u: ProjectionUpdate) -> int:
        now = datetime.now(timezone.utc)
        with self.store.session() as s:
            stored = s.get(TicketRow, u.ticket_id)
            before = metrics.StoredTicket(had_first_response=stored is not None and stored.first_response_at is not None,
                                          sla=dict(stored.sla or {}) if stored is not None else None)
            row = stored or TicketRow(
                ticket_id=u.ticket_id, status=u.status, channel=u.channel, customer_id=u.customer_id,
                opened_at=_t(u.opened_at), updated_at=now)
            row.status, row.priority, row.category = u.status, u.priority, u.category
            row.customer_tier, row.team, row.assignee = u.customer_tier, u.team, u.assignee
            row.ruleset_version, row.sla_policy, row.escalation_tier = u.ruleset_version, u.sla_policy, u.escalation_tier
            row.reopen_count = u.reopen_count
            row.first_response_at, row.resolved_at, row.closed_at = _t(u.first_response_at), _t(u.resolved_at), _t(u.closed_at)
            row.stages, row.sla, row.updated_at = dict(u.stages), dict(u.sla), now
            if u.survey is not None:
                row.survey_score, row.survey_kind = u.survey.score, u.survey.kind
            s.add(row)
            new, inserted, answered = 0, [], False
            if u.events:
                have = set(s.exec(select(TicketEventRow.seq).where(
                    TicketEventRow.ticket_id == u.ticket_id, TicketEventRow.seq >= min(e.seq for e in u.events))).all())
                for e in u.events:
                    if e.seq not in have:
                        s.add(TicketEventRow(ticket_id=u.ticket_id, seq=e.seq, at=_t(e.at), kind=e.kind, data=e.data))
                        new += 1
                        inserted.append(e)
            sv = u.survey
            if sv is not None and sv.score is not None:
                exists = s.exec(select(SurveyAnswerRow.id).where(
                    SurveyAnswerRow.ticket_id == u.ticket_id, SurveyAnswerRow.resolution == u.reopen_count)).first()
                if exists is None:
                    s.add(SurveyAnswerRow(ticket_id=u.ticket_id, resolution=u.reopen_count, kind=sv.kind, score=sv.score,
                                          comment=sv.comment, customer_id=u.customer_id, answered_at=_t(sv.answered_at) or now))
                    answered = True
            s.commit()
        # Counted after the commit, from what this transaction inserted: a retry inserts nothing.
        metrics.current().projected(u, inserted, answered, before)
        return new
