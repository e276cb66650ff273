"""Channel connectors: how messages leave ticketflow (log file, signed webhook, SMTP).

`load_connectors(connectors.yaml)` builds them; `Connectors.for_message` picks one per message;
the messaging activity keeps the outbox bookkeeping that makes each delivery happen once.
See docs/connectors.md.
"""

from engine.connectors.base import Connector, DeliveryFailed
from engine.connectors.config import Connectors, ConnectorsInvalid, load_connectors, log_only
from engine.connectors.log import LogConnector
from engine.connectors.smtp import SmtpConnector, default_subject, message_id
from engine.connectors.webhook import WebhookConnector, sign, verify_signature

__all__ = [
    "Connector", "Connectors", "ConnectorsInvalid", "DeliveryFailed", "LogConnector", "SmtpConnector",
    "WebhookConnector", "default_subject", "load_connectors", "log_only", "message_id", "sign", "verify_signature",
]
