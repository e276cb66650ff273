"""Messages to customers and staff through the outbox: exactly one delivery per idempotency key.

The outbox table is the bookkeeping; a connector (engine.connectors: log, webhook, SMTP) does the
delivering. Each attempt:

  (a) a delivered row for the key → return False, deliver nothing;
  (b) claim: insert the row (or reuse the undelivered one) as pending, attempts + 1, commit;
  (c) deliver through the connector the message, its channel or the default names;
  (d) mark it delivered (time, the connector's detail) and commit; on failure record last_error.

Between (c) and (d) a crash leaves the row pending; the retry delivers again with the SAME key
(Idempotency-Key header, Message-ID, log line), which is how the receiver drops the second copy.
The log connector checks its own file instead. A retryable failure is raised as is, so the
activity's retry policy tries again; a non-retryable one becomes a non-retryable ApplicationError.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from engine import metrics
from engine.agents import Directory
from engine.connectors import Connector, Connectors, DeliveryFailed, log_only
from engine.models import OutgoingMessage, StaffNotice
from engine.store import Store
from engine.store.tables import OutboxMessage

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


class MessagingActivities:
    def __init__(self, store: Store, outbox_log: Path, directory: Callable[[], Directory] | None = None,
                 connectors: Connectors | None = None) -> None:
        self.store = store
        self.outbox_log = outbox_log
        self.directory = directory  # read when needed: team leads change with `agents import`
        self.connectors = connectors if connectors is not None else log_only(outbox_log)

    @activity.defn(name="send_message")
    def send_message(self, msg: OutgoingMessage) -> bool:
        """Returns True when this call delivered it, False when it had been delivered before."""
        return self._deliver(msg)

    @activity.defn(name="notify_staff")
    def notify_staff(self, notice: StaffNotice) -> list[str]:
        """Tell the people an escalation names; returns who was told (each once per key)."""
        people = self.resolve_targets(notice.targets, notice.team, notice.assignee)
        for person in people:
            self._deliver(OutgoingMessage(
                idempotency_key=f"{notice.idempotency_key}:{person}", ticket_id=notice.ticket_id,
                kind="staff_notice", channel="internal", recipient=person, language="en", body=notice.body,
            ))
        return people

    def resolve_targets(self, targets: list[str], team: str, assignee: str) -> list[str]:
        """assignee, team_lead (of the ticket's team), manager (lead of the management team), or a
        team id (its lead). Unknown names are kept as given, so a notice is never silently lost."""
        d = self.directory() if self.directory else None
        out: list[str] = []
        for target in targets:
            if target == "assignee":
                person = assignee
            elif target == "team_lead":
                person = d.teams[team].lead if d and team in d.teams else ""
            elif target == "manager":
                person = d.teams["management"].lead if d and "management" in d.teams else ""
            elif d and target in d.teams:
                person = d.teams[target].lead
            else:
                person = target
            if person and person not in out:
                out.append(person)
        return out

    def _deliver(self, msg: OutgoingMessage) -> bool:
        key = msg.idempotency_key
        if self._delivered(key):
            return False
        try:
            connector = self.connectors.for_message(msg)
        except DeliveryFailed as exc:  # a rule names a connector connectors.yaml does not define
            raise ApplicationError(exc.message, type="DeliveryFailed", non_retryable=True) from None
        claimed = self._claim(msg, connector)
        if claimed is None:
            return False  # delivered by a concurrent attempt between our check and the claim
        try:
            detail = connector.deliver(msg, redelivery=claimed > 1)
        except DeliveryFailed as exc:
            self._mark_failed(key, exc.message)
            if exc.retryable:
                raise  # the activity's retry policy tries again, with the same key
            raise ApplicationError(exc.message, type="DeliveryFailed", non_retryable=True) from None
        except Exception as exc:  # a connector bug: keep the row honest, let Temporal retry
            self._mark_failed(key, f"{type(exc).__name__}: {exc}")
            raise
        if not self._mark_delivered(key, detail):
            return False  # a concurrent attempt marked it first (the receiver drops the copy)
        metrics.current().message_sent(msg.kind, msg.channel)  # once: only the attempt that marked it
        return True

    def _delivered(self, key: str) -> bool:
        with self.store.session() as session:
            status = session.exec(select(OutboxMessage.status).where(OutboxMessage.idempotency_key == key)).first()
        return status == DELIVERED

    def _claim(self, msg: OutgoingMessage, connector: Connector) -> int | None:
        """Step (b): the row is pending and counts this attempt; returns the attempt number it
        records (1 = nobody tried this key before), or None if the key is delivered already."""
        now = datetime.now(timezone.utc)
        with self.store.session() as session:
            session.add(OutboxMessage(
                idempotency_key=msg.idempotency_key, ticket_id=msg.ticket_id, kind=msg.kind, channel=msg.channel,
                connector=connector.name, recipient=msg.recipient, language=msg.language, body=msg.body,
                address=msg.address[:254] or None, subject=msg.subject[:300] or None,
                created_at=now, status=PENDING, attempts=1,
            ))
            try:
                session.commit()
                return 1
            except IntegrityError:
                session.rollback()  # an earlier attempt made the row: reuse it
            # One UPDATE, not read-modify-write: two overlapping attempts each count, and a row
            # delivered meanwhile is left alone.
            result = session.exec(
                update(OutboxMessage)
                .where(OutboxMessage.idempotency_key == msg.idempotency_key, OutboxMessage.status != DELIVERED)
                .values(attempts=OutboxMessage.attempts + 1, status=PENDING, connector=connector.name)
            )
            session.commit()
            if result.rowcount == 0:
                return None
            return session.exec(
                select(OutboxMessage.attempts).where(OutboxMessage.idempotency_key == msg.idempotency_key)
            ).one()

    def _mark_delivered(self, key: str, detail: str) -> bool:
        """Step (d); False if another attempt marked it first."""
        with self.store.session() as session:
            result = session.exec(
                update(OutboxMessage)
                .where(OutboxMessage.idempotency_key == key, OutboxMessage.status != DELIVERED)
                .values(status=DELIVERED, delivered_at=datetime.now(timezone.utc), detail=detail[:500], last_error=None)
            )
            session.commit()
            return result.rowcount == 1

    def _mark_failed(self, key: str, error: str) -> None:
        with self.store.session() as session:
            session.exec(
                update(OutboxMessage)
                .where(OutboxMessage.idempotency_key == key, OutboxMessage.status != DELIVERED)
                .values(status=FAILED, last_error=error[:2000])
            )
            session.commit()
