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

from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from temporalio import activity

from engine.models import OutgoingMessage
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
    def __init__(self, store: Store, outbox_log: Path) -> None:
        self.store = store
        self.outbox_log = outbox_log

    @activity.defn(name="send_message")
    def send_message(self, msg: OutgoingMessage) -> bool:
        """Returns True when this call delivered it, False when it had been delivered before."""
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
        return True
