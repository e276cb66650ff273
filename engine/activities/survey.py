"""Survey history a survey rule may read: days since this customer was last sent a survey.

Read from the outbox (every survey sent is a row there, kept exactly once by its idempotency
key), so there is no second record to drift from what customers actually received.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from sqlalchemy import func
from sqlmodel import select
from temporalio import activity

from engine.store import Store
from engine.store.tables import OutboxMessage


class SurveyActivities:
    def __init__(self, store: Store) -> None:
        self.store = store

    @activity.defn(name="days_since_survey")
    def days_since_survey(self, customer_id: str, ticket_id: str) -> Optional[float]:
        """Days since the last survey sent to `customer_id` for another ticket; None if never."""
        with self.store.session() as session:
            last = session.exec(
                select(func.max(OutboxMessage.created_at)).where(
                    OutboxMessage.recipient == customer_id,
                    OutboxMessage.kind == "survey",
                    OutboxMessage.ticket_id != ticket_id,
                )
            ).first()
        if last is None:
            return None
        if last.tzinfo is None:  # SQLite hands back naive datetimes; we always store UTC
            last = last.replace(tzinfo=timezone.utc)
        return round(max(0.0, (datetime.now(timezone.utc) - last).total_seconds()) / 86400, 4)
