"""sqlmodel tables. Every change here needs an Alembic migration in engine/store/migrations/versions."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel


class OutboxMessage(SQLModel, table=True):
    """A message handed to a connector. The unique key is what makes a retried send a no-op."""

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


class TicketAssignment(SQLModel, table=True):
    """Who holds a ticket; open rows are an agent's load. One row per ticket keeps assign idempotent."""

    __tablename__ = "assignment"

    ticket_id: str = Field(primary_key=True, max_length=64)
    team: str = Field(index=True, max_length=64)
    agent: str = Field(index=True, max_length=64)
    active: bool = Field(default=True, index=True)
    assigned_at: datetime
    released_at: datetime | None = None
