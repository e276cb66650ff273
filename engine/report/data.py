"""Reading the reporting projection: one `TicketFacts` per ticket, with what the KPIs need.

A report's tickets are a cohort: those *opened* in [since, until) (optionally pinned to one ruleset
version), so two periods or two ruleset versions compare like with like. The backlog is different:
every ticket opened before `until` that was not resolved by then, whenever it was opened.

Everything here is timezone-aware UTC (sqlmodel's UTCDateTime reads the store's columns back as
UTC; `utc()` also accepts a naive value as UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

from sqlalchemy import func
from sqlmodel import Session, select

from engine.store import Store
from engine.store.tables import RulesetVersionRow, SurveyAnswerRow, TicketEventRow, TicketRow

DONE_STATUSES = ("resolved", "surveying", "closed")


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def aware(value: datetime) -> datetime:
    """For comparisons in SQL: the store's datetime columns take aware values (sqlmodel's UTCDateTime)."""
    return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)


@dataclass
class Answer:
    kind: str  # csat | nps
    score: int
    answered_at: datetime


@dataclass
class TicketFacts:
    ticket_id: str
    status: str
    channel: str
    priority: str | None
    category: str | None
    team: str | None
    agent: str | None
    ruleset: str | None
    opened_at: datetime
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    reopen_count: int = 0
    escalation_tier: str = "agent"
    sla: dict[str, dict[str, Any]] = field(default_factory=dict)
    assignments: int = 0  # "assigned" journal rows: more than one means the ticket was handed on
    waited_on_customer: bool = False  # was ever pending_customer: we had to ask the customer again
    answers: list[Answer] = field(default_factory=list)

    @property
    def resolved(self) -> bool:
        return self.resolved_at is not None and self.status in DONE_STATUSES

    def resolved_by(self, at: datetime) -> bool:
        return self.resolved and self.resolved_at is not None and self.resolved_at <= at

    @property
    def first_response_seconds(self) -> float | None:
        if self.first_response_at is None:
            return None
        return max(0.0, (self.first_response_at - self.opened_at).total_seconds())

    @property
    def resolution_seconds(self) -> float | None:
        if not self.resolved or self.resolved_at is None:
            return None
        return max(0.0, (self.resolved_at - self.opened_at).total_seconds())

    def business_seconds(self, metric: str) -> float | None:
        """The SLA clock's elapsed business time, once that clock has stopped for good."""
        clock = self.sla.get(metric) or {}
        if metric == "first_response" and self.first_response_at is None:
            return None
        if metric == "resolution" and not self.resolved:
            return None
        value = clock.get("elapsed_seconds")
        return float(value) if value is not None else None

    def dimension(self, by: str) -> str:
        value = {"channel": self.channel, "priority": self.priority, "category": self.category, "team": self.team,
                 "agent": self.agent, "ruleset": self.ruleset}[by]
        return value or "(none)"


def _cohort(q: Any, since: datetime | None, until: datetime | None, ruleset: str | None) -> Any:
    if since is not None:
        q = q.where(TicketRow.opened_at >= aware(since))
    if until is not None:
        q = q.where(TicketRow.opened_at < aware(until))
    if ruleset is not None:
        q = q.where(TicketRow.ruleset_version == ruleset)
    return q


def load_tickets(store: Store, since: datetime | None = None, until: datetime | None = None,
                 ruleset: str | None = None) -> list[TicketFacts]:
    """The cohort opened in [since, until), optionally only tickets pinned to `ruleset`."""
    with store.session() as s:
        rows = s.exec(_cohort(select(TicketRow), since, until, ruleset).order_by(TicketRow.opened_at)).all()
        facts = {r.ticket_id: _facts(r) for r in rows}
        if facts:
            _add_journal(s, facts, since, until, ruleset)
    return list(facts.values())


def load_backlog(store: Store, at: datetime) -> list[TicketFacts]:
    """Tickets opened before `at` and not resolved by then (a reopened ticket counts as open)."""
    cut = aware(at)
    with store.session() as s:
        rows = s.exec(select(TicketRow).where(TicketRow.opened_at < cut)
                      .where((TicketRow.resolved_at == None) | (TicketRow.resolved_at > cut)  # noqa: E711
                             | TicketRow.status.not_in(DONE_STATUSES))  # type: ignore[attr-defined]
                      ).all()
    return [f for f in (_facts(r) for r in rows) if not f.resolved_by(at)]


def _facts(r: TicketRow) -> TicketFacts:
    return TicketFacts(
        ticket_id=r.ticket_id, status=r.status, channel=r.channel, priority=r.priority, category=r.category,
        team=r.team, agent=r.assignee, ruleset=r.ruleset_version, opened_at=utc(r.opened_at),  # type: ignore[arg-type]
        first_response_at=utc(r.first_response_at), resolved_at=utc(r.resolved_at), closed_at=utc(r.closed_at),
        reopen_count=r.reopen_count or 0, escalation_tier=r.escalation_tier or "agent", sla=dict(r.sla or {}),
    )


def _add_journal(s: Session, facts: dict[str, TicketFacts], since: datetime | None, until: datetime | None,
                 ruleset: str | None) -> None:
    """Assignment counts, waits on the customer and survey answers, each in one query over the cohort."""
    cohort = _cohort(select(TicketRow.ticket_id), since, until, ruleset).subquery()
    assigned = (select(TicketEventRow.ticket_id, func.count())
                .where(TicketEventRow.kind == "assigned", TicketEventRow.ticket_id.in_(select(cohort.c.ticket_id)))  # type: ignore[attr-defined]
                .group_by(TicketEventRow.ticket_id))
    for ticket_id, n in s.exec(assigned).all():
        facts[ticket_id].assignments = int(n)
    waited = (select(TicketEventRow.ticket_id).distinct()
              .where(TicketEventRow.kind == "status",
                     TicketEventRow.data["status"].as_string() == "pending_customer",  # type: ignore[index]
                     TicketEventRow.ticket_id.in_(select(cohort.c.ticket_id))))  # type: ignore[attr-defined]
    for ticket_id in s.exec(waited).all():
        facts[ticket_id].waited_on_customer = True
    answers = (select(SurveyAnswerRow.ticket_id, SurveyAnswerRow.kind, SurveyAnswerRow.score, SurveyAnswerRow.answered_at)
               .where(SurveyAnswerRow.ticket_id.in_(select(cohort.c.ticket_id)))  # type: ignore[attr-defined]
               .order_by(SurveyAnswerRow.answered_at))
    for ticket_id, kind, score, at in s.exec(answers).all():
        facts[ticket_id].answers.append(Answer(kind=kind, score=int(score), answered_at=utc(at)))  # type: ignore[arg-type]


@dataclass
class RulesetSeen:
    version: str
    tickets: int
    first_opened: datetime | None
    last_opened: datetime | None
    published_at: datetime | None = None
    message: str = ""


def ruleset_versions(store: Store, since: datetime | None = None, until: datetime | None = None) -> list[RulesetSeen]:
    """The ruleset versions tickets were pinned to, oldest first (by their first ticket)."""
    with store.session() as s:
        q = _cohort(select(TicketRow.ruleset_version, func.count(), func.min(TicketRow.opened_at), func.max(TicketRow.opened_at)),
                    since, until, None).where(TicketRow.ruleset_version != None).group_by(TicketRow.ruleset_version)  # noqa: E711
        seen = [RulesetSeen(v, int(n), utc(a), utc(b)) for v, n, a, b in s.exec(q).all()]
        published = {r.version: r for r in s.exec(select(RulesetVersionRow)).all()}
    for item in seen:
        row = published.get(item.version)
        if row is not None:
            item.published_at, item.message = utc(row.created_at), row.message
    return sorted(seen, key=lambda r: (r.first_opened or datetime.min.replace(tzinfo=timezone.utc), r.version))


class UnknownRuleset(LookupError):
    pass


def resolve_ruleset(known: Iterable[RulesetSeen], prefix: str) -> str:
    """A full version from a prefix (at least 4 characters), or a clear error listing the choices."""
    known = list(known)
    matches = [r.version for r in known if r.version.startswith(prefix)]
    if len(prefix) >= 4 and len(matches) == 1:
        return matches[0]
    listing = ", ".join(f"{r.version} ({r.tickets} tickets)" for r in known) or "none (no tickets in the store yet)"
    if len(matches) > 1:
        raise UnknownRuleset(f"ruleset {prefix!r} is ambiguous: {', '.join(matches)}")
    if len(prefix) < 4 and matches:
        raise UnknownRuleset(f"ruleset {prefix!r}: give at least 4 characters of the version; known: {listing}")
    raise UnknownRuleset(f"no tickets pinned to ruleset {prefix!r}; known versions: {listing}")
