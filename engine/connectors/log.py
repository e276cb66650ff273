"""The log connector: one JSON line per message in `<data dir>/outbox.log`, for development,
demos and staff notices. `tail -f` it to watch what customers would receive.

Each line is fsynced before `deliver` returns, so a delivery the outbox row calls done is on disk.
A retried attempt (redelivery) first looks for a line a crashed attempt may have written, so a
retry never writes a message twice.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path

from engine.connectors.base import Connector, DeliveryFailed, message_fields
from engine.models import OutgoingMessage

# Several log connectors (and several activity threads) may share one file: appends and the
# "already written?" scan must not interleave within this process.
_file_lock = threading.Lock()


def _logged(path: Path, key: str) -> bool:
    if not path.exists():
        return False
    needle = json.dumps(key, ensure_ascii=False)
    with path.open(encoding="utf-8") as fh:
        # The substring test is a cheap filter; the parse makes a key quoted in a body not count.
        return any(needle in line and _key_of(line) == key for line in fh)


def _key_of(line: str) -> str | None:
    try:
        return json.loads(line).get("idempotency_key")
    except ValueError:
        return None  # a torn last line from a crash mid-write is not a delivery


def _torn(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell() == 0:
            return False
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) != b"\n"


class LogConnector(Connector):
    type = "log"

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(name)
        self.path = path

    def deliver(self, msg: OutgoingMessage, *, redelivery: bool = False) -> str:
        line = json.dumps({"at": datetime.now(timezone.utc).isoformat(), **message_fields(msg)}, ensure_ascii=False)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with _file_lock:
                if redelivery and _logged(self.path, msg.idempotency_key):
                    return "logged (by an earlier attempt)"
                with self.path.open("a", encoding="utf-8") as fh:
                    # A crash mid-write can leave a torn line without its newline: end it first,
                    # so this message gets a line of its own.
                    fh.write(("\n" if _torn(self.path) else "") + line + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
        except OSError as exc:  # a full disk may clear up; the retry checks for a partial write
            raise DeliveryFailed(f"cannot write {self.path}: {exc.strerror or exc}", retryable=True) from exc
        return "logged"
