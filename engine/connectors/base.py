"""The connector interface: how a message to a customer (or to staff) leaves ticketflow.

A connector knows one way out (a log file, an HTTP endpoint, an SMTP server). It does not know
about the outbox table or retries: the messaging activity (engine.activities.messaging) keeps the
exactly-once bookkeeping and asks a connector only to `deliver` one message and say how it went.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from engine.models import OutgoingMessage


class DeliveryFailed(Exception):
    """A delivery that did not happen. `retryable` says whether trying again later can help:
    a timeout or a 503 can, a rejected address or a 400 cannot (the activity then stops retrying)."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class Connector(ABC):
    type: ClassVar[str]

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def deliver(self, msg: OutgoingMessage, *, redelivery: bool = False) -> str:
        """Deliver `msg`; return a short detail for the outbox row ("HTTP 200", a Message-ID).

        `redelivery` is True when an earlier attempt claimed this idempotency key and may have
        delivered it before crashing. A connector that can see its own past deliveries (the log)
        checks; the others send again with the same key and rely on the receiver to drop it.
        Raises DeliveryFailed."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def message_fields(msg: OutgoingMessage) -> dict:
    """What every connector that writes JSON says about a message: `to` is the customer id,
    `address` the channel's user id or email (may be "")."""
    return {
        "idempotency_key": msg.idempotency_key,
        "ticket_id": msg.ticket_id,
        "kind": msg.kind,
        "channel": msg.channel,
        "to": msg.recipient,
        "address": msg.address,
        "language": msg.language,
        "subject": msg.subject,
        "body": msg.body,
    }


def excerpt(text: str, limit: int = 200) -> str:
    """One line of at most `limit` characters, for error messages that end up in an outbox row."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
