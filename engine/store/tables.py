"""sqlmodel tables. Every change here needs an Alembic migration in engine/store/migrations/versions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel


class OutboxMessage(SQLModel, table=True):
    """A message handed to a connector. The unique key is what makes a retried send a no-op.

    `status`: pending = an attempt claimed it and has not reported back (in flight, or it crashed
    mid-delivery: the next attempt sends again with the same key); failed = the last attempt
    failed (`last_error` says why; a retry may still deliver it); delivered = done, never again."""

    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True, index=True, max_length=200)
    ticket_id: str = Field(index=True, max_length=64)
    kind: str = Field(max_length=40)
    channel: str = Field(max_length=20)
    connector: str = Field(max_length=20)
    recipient: str = Field(max_length=200)
    language: str = Field(max_length=10)
    body: str
    created_at: datetime
    delivered_at: datetime | None = None
    status: str = Field(default="pending", max_length=10)
    attempts: int = 0
    detail: str | None = None  # what the connector said: "HTTP 200", a Message-ID, "logged"
    last_error: str | None = None
    address: str | None = Field(default=None, max_length=254)
    subject: str | None = Field(default=None, max_length=300)


class TicketAssignment(SQLModel, table=True):
    """Who holds a ticket; open rows are an agent's load. One row per ticket keeps assign idempotent."""

    __tablename__ = "assignment"

    ticket_id: str = Field(primary_key=True, max_length=64)
    team: str = Field(index=True, max_length=64)
    agent: str = Field(index=True, max_length=64)
    active: bool = Field(default=True, index=True)
    assigned_at: datetime
    released_at: datetime | None = None


class TeamRow(SQLModel, table=True):
    """A team: its queue of waiting tickets lives in `queued_ticket`, its round-robin cursor here."""

    __tablename__ = "team"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    lead: str = Field(default="", max_length=64)
    rr_cursor: str = Field(default="", max_length=64)  # the agent who got the last round-robin ticket


class AgentRow(SQLModel, table=True):
    """An agent. `open_count` is their load, changed only under a row lock with the assignment row."""

    __tablename__ = "agent"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    team: str = Field(index=True, max_length=64, foreign_key="team.id")
    languages: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    skills: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    tier: str = Field(default="agent", max_length=20)
    max_open: int = 20
    status: str = Field(default="online", max_length=10)
    shift: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))  # calendar dict; None = always
    open_count: int = 0
    updated_at: datetime


class QueuedTicket(SQLModel, table=True):
    """A ticket nobody could take yet; it is offered to the next agent who frees up or comes online."""

    __tablename__ = "queued_ticket"

    ticket_id: str = Field(primary_key=True, max_length=64)
    team: str = Field(index=True, max_length=64)
    request: dict = Field(sa_column=Column(JSON, nullable=False))  # the AssignmentRequest
    queued_at: datetime


class TicketRow(SQLModel, table=True):
    """The reporting projection of one ticket. Temporal history stays the source of truth."""

    __tablename__ = "ticket"

    ticket_id: str = Field(primary_key=True, max_length=64)
    status: str = Field(index=True, max_length=20)
    priority: str | None = Field(default=None, max_length=4)
    category: str | None = Field(default=None, max_length=64)
    channel: str = Field(index=True, max_length=20)
    customer_id: str = Field(index=True, max_length=128)
    customer_tier: str = Field(default="standard", max_length=20)
    team: str | None = Field(default=None, max_length=64)
    assignee: str | None = Field(default=None, max_length=64)
    ruleset_version: str | None = Field(default=None, max_length=40)
    sla_policy: str | None = Field(default=None, max_length=64)
    escalation_tier: str = Field(default="agent", max_length=20)
    reopen_count: int = 0
    opened_at: datetime
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    stages: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))  # stage -> first time
    sla: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))  # metric -> outcome
    survey_score: int | None = None
    survey_kind: str | None = Field(default=None, max_length=10)
    updated_at: datetime


class TicketEventRow(SQLModel, table=True):
    """Append-only: one row per decision or transition; (ticket, seq) unique so a retry adds nothing."""

    __tablename__ = "ticket_event"
    __table_args__ = (UniqueConstraint("ticket_id", "seq", name="uq_ticket_event_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: str = Field(index=True, max_length=64)
    seq: int
    at: datetime
    kind: str = Field(max_length=40)
    data: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class SurveyAnswerRow(SQLModel, table=True):
    __tablename__ = "survey_answer"
    __table_args__ = (UniqueConstraint("ticket_id", "resolution", name="uq_survey_answer_resolution"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: str = Field(index=True, max_length=64)
    resolution: int  # which resolution of the ticket it answers (0 = first)
    kind: str = Field(max_length=10)
    score: int
    comment: str = ""
    customer_id: str = Field(index=True, max_length=128)
    answered_at: datetime


class RulesetVersionRow(SQLModel, table=True):
    """A published ruleset: its normalised content under its content hash."""

    __tablename__ = "ruleset_version"

    version: str = Field(primary_key=True, max_length=40)
    data: dict = Field(sa_column=Column(JSON, nullable=False))
    author: str = Field(default="", max_length=100)
    message: str = ""
    created_at: datetime
    active: bool = False
    # A pilot runs beside the active version: for this share of new tickets and/or these channels.
    pilot_share: float | None = None
    pilot_channels: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
