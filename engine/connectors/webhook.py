"""The webhook connector: a signed JSON POST to a URL the operator runs (a channel gateway).

Channels whose APIs ticketflow does not call itself (WeChat, Weibo, in-app chat ...) are reached
through a small gateway: it receives this POST and speaks the channel's API. The request carries
the message's idempotency key so the gateway can drop a redelivery, and an HMAC-SHA256 signature
over the timestamp and the exact body bytes so it can tell the request came from ticketflow and
was not replayed later. `verify_signature` is the receiving side of that check.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timezone

import httpx

from engine.connectors.base import Connector, DeliveryFailed, excerpt, message_fields
from engine.models import OutgoingMessage

SIGNATURE_HEADER = "X-Ticketflow-Signature"
TIMESTAMP_HEADER = "X-Ticketflow-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"

# Statuses where the same request may succeed later: the receiver timed out, throttled us, or broke.
_RETRYABLE = {408, 429}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value: "sha256=" + hex HMAC-SHA256(secret, "<timestamp>." + body)."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: str, timestamp: str, body_bytes: bytes, header: str, now: float,
                     tolerance: float = 300) -> bool:
    """For receivers: True if `header` signs `body_bytes` at `timestamp` with `secret` and the
    timestamp is within `tolerance` seconds of `now` (an old, captured request cannot be replayed)."""
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now - sent) > tolerance:
        return False
    expected = sign(secret, str(sent), body_bytes)
    return hmac.compare_digest(expected.encode("ascii"), (header or "").strip().encode("utf-8", "replace"))


def payload(msg: OutgoingMessage, sent_at: datetime) -> dict:
    """The JSON body: the message's fields and when it was sent."""
    return {**message_fields(msg), "sent_at": sent_at.isoformat()}


class WebhookConnector(Connector):
    type = "webhook"

    def __init__(self, name: str, url: str, secret: str, timeout: float = 10.0) -> None:
        super().__init__(name)
        self.url = url
        self._secret = secret  # never logged, never in an error message
        self.timeout = timeout

    def deliver(self, msg: OutgoingMessage, *, redelivery: bool = False) -> str:
        now = datetime.now(timezone.utc)
        body = json.dumps(payload(msg, now), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        timestamp = str(int(now.timestamp()))
        headers = {
            "Content-Type": "application/json",  # UTF-8 by definition (RFC 8259)
            IDEMPOTENCY_HEADER: msg.idempotency_key,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
            "User-Agent": "ticketflow-webhook",
        }
        try:
            # One client per delivery: deliveries are rare next to the cost of a new connection,
            # and no pooled connection can outlive a gateway restart.
            with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
                response = client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise DeliveryFailed(f"webhook {self.name}: no answer from {self.url} within {self.timeout:g}s "
                                 f"({type(exc).__name__})", retryable=True) from exc
        except httpx.TransportError as exc:
            raise DeliveryFailed(f"webhook {self.name}: cannot reach {self.url}: {str(exc) or type(exc).__name__}",
                                 retryable=True) from exc
        status = response.status_code
        if 200 <= status < 300:
            return f"HTTP {status}"
        text = excerpt(response.text)
        message = f"webhook {self.name}: {self.url} answered HTTP {status}" + (f": {text}" if text else "")
        raise DeliveryFailed(message, retryable=status in _RETRYABLE or status >= 500)
