"""Messages to customers through the outbox: exactly one delivery per idempotency key.

The default connector is a log: the outbox row (unique key) plus one JSON line in
`<data dir>/outbox.log` that a user can `tail -f`. The row and the line are written in one
transaction; only when the activity is a retry (attempt > 1) does it check the log for a line a
crashed attempt may have written before its commit, so a retried send is never duplicated.
Webhook, SMTP and channel connectors come with the respond/survey issue behind the same interface.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from temporalio import activity

from engine import metrics
from engine.agents import Directory
from engine.models import OutgoingMessage, StaffNotice
from engine.store import Store
from engine.store.tables import OutboxMessage

_file_lock = threading.Lock()


def _logged(path: Path, key: str) -> bool:
    if not path.exists():
        return False
    needle = json.dumps(key)
    with path.open(encoding="utf-8") as fh:
        return any(needle in line and json.loads(line).get("idempotency_key") == key for line in fh)


class MessagingActivities:
    def __init__(self, store: Store, outbox_log: Path, directory: Callable[[], Directory] | None = None) -> None:
        self.store = store
        self.outbox_log = outbox_log
        self.directory = directory  # read when needed: team leads change with `agents import`

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
        retry = activity.in_activity() and activity.info().attempt > 1
        now = datetime.now(timezone.utc)
        with self.store.session() as session:
            if session.exec(select(OutboxMessage.id).where(OutboxMessage.idempotency_key == msg.idempotency_key)).first():
                return False
            session.add(
                OutboxMessage(
                    idempotency_key=msg.idempotency_key,
                    ticket_id=msg.ticket_id,
                    kind=msg.kind,
                    channel=msg.channel,
                    connector="log",
                    recipient=msg.recipient,
                    language=msg.language,
                    body=msg.body,
                    created_at=now,
                    delivered_at=now,
                )
            )
            try:
                session.flush()
            except IntegrityError:
                return False  # another worker delivered it between our check and insert
            self.outbox_log.parent.mkdir(parents=True, exist_ok=True)
            with _file_lock:
                if not (retry and _logged(self.outbox_log, msg.idempotency_key)):
                    line = json.dumps(
                        {
                            "at": now.isoformat(),
                            "idempotency_key": msg.idempotency_key,
                            "ticket_id": msg.ticket_id,
                            "kind": msg.kind,
                            "channel": msg.channel,
                            "to": msg.recipient,
                            "language": msg.language,
                            "body": msg.body,
                        },
                        ensure_ascii=False,
                    )
                    with self.outbox_log.open("a", encoding="utf-8") as fh:
                        fh.write(line + "\n")
                        fh.flush()
                        os.fsync(fh.fileno())
            session.commit()
        metrics.current().message_sent(msg.kind, msg.channel)  # once: only the insert that committed gets here
        return True
