"""Intake: turn a channel event (a JSON object) into a validated TicketEvent and a ticket id.

Validation happens before any workflow starts, so a bad event starts nothing. Errors name the
schema path that failed (`customer.tier: 'gold' is not one of [...]`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from engine.paths import PROJECT_ROOT
from engine.models import Customer, TicketEvent

SCHEMA_PATH = PROJECT_ROOT / "schemas" / "ticket-event.schema.json"


class EventInvalid(ValueError):
    """An event that does not match the schema; `path` is where, `str()` is the one-line error."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"invalid ticket event at {path}: {message}")
        self.path = path


_formats = FormatChecker(formats=())


@_formats.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("needs a time zone offset, e.g. 2026-11-22T09:30:00+08:00")
    return True


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=_formats)


def _path(err: Any) -> str:
    parts = [str(p) if not isinstance(p, int) else f"[{p}]" for p in err.absolute_path]
    return ".".join(parts).replace(".[", "[") or "(event)"


def parse_event(data: object) -> TicketEvent:
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        err = errors[0]
        message = err.message
        if err.validator == "format" and err.cause is not None:
            message = f"{err.instance!r} is not a date-time: {err.cause}"
        raise EventInvalid(_path(err), message)
    assert isinstance(data, dict)
    cust = data["customer"]
    occurred = datetime.fromisoformat(data["occurred_at"].replace("Z", "+00:00"))
    return TicketEvent(
        event_id=data["event_id"],
        channel=data["channel"],
        customer=Customer(
            id=cust["id"],
            tier=cust.get("tier", "standard"),
            language=cust.get("language", "en"),
            name=cust.get("name", ""),
            email=cust.get("email", ""),
        ),
        subject=data["subject"],
        body=data["body"],
        occurred_at=occurred.isoformat(),
        is_public=bool(data.get("is_public", False)),
        order_value=data.get("order_value"),
        prior_contacts=data.get("prior_contacts"),
        origin=data.get("origin", "customer"),
        linked_to=data.get("linked_to", ""),
    )


def ticket_id_for(event: TicketEvent) -> str:
    """A stable id from channel + event id: a channel that delivers the same event twice opens one ticket."""
    digest = hashlib.sha256(f"{event.channel}\x00{event.event_id}".encode()).digest()
    return "TF-" + base64.b32encode(digest)[:10].decode()


def raw_snapshot(event: TicketEvent) -> dict[str, Any]:
    """What the rules see of a new ticket: the same fields the workflow's first evaluation sends."""
    raw: dict[str, Any] = {
        "channel": event.channel, "is_public": event.is_public, "subject": event.subject, "body": event.body,
        "customer.id": event.customer.id, "customer.tier": event.customer.tier,
        "customer.language": event.customer.language, "status": "received", "reopen_count": 0, "tags": [],
        "origin": event.origin,
    }
    if event.order_value is not None:
        raw["order_value"] = event.order_value
    if event.prior_contacts is not None:
        raw["prior_contacts"] = event.prior_contacts
    return raw
