"""The SMTP connector: a plain-text UTF-8 email per message, through the operator's mail server.

The Message-ID is derived from the idempotency key, so a message resent after a crash (the server
accepted it, the outbox never heard) carries the same Message-ID as the first copy and mail systems
that de-duplicate by Message-ID show it once. SMTP's own reply codes decide retries: 4xx is
"try again later", 5xx is "this will not work".
"""

from __future__ import annotations

import hashlib
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

from engine.connectors.base import Connector, DeliveryFailed, excerpt
from engine.models import OutgoingMessage

# A pragmatic check, not RFC 5322: one @, something on both sides, a dot in the domain, no spaces
# or control characters (which would also let a crafted address inject headers).
_ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"\\]+@[^@\s<>()\[\],;:\"\\]+\.[^@\s<>()\[\],;:\"\\]+$")

_SUBJECTS = {
    "en": {
        "acknowledgement": "We received your request [{ticket}]",
        "agent_reply": "Re: your request [{ticket}]",
        "survey": "How did we do? [{ticket}]",
        "staff_notice": "Ticket {ticket} needs attention",
        "": "About your request [{ticket}]",
    },
    "zh": {
        "acknowledgement": "我们已收到您的请求 [{ticket}]",
        "agent_reply": "回复：您的请求 [{ticket}]",
        "survey": "请为我们的服务评分 [{ticket}]",
        "staff_notice": "工单 {ticket} 需要处理",
        "": "关于您的请求 [{ticket}]",
    },
}


def default_subject(kind: str, language: str, ticket_id: str) -> str:
    """Used when the message has no subject of its own (the rules' templates may give one)."""
    table = _SUBJECTS["zh" if language.lower().startswith("zh") else "en"]
    return table.get(kind, table[""]).format(ticket=ticket_id)


def valid_address(text: str) -> str | None:
    """The bare address in `text` ("a@b.example" or "Name <a@b.example>"), or None."""
    if not text or any(c in text for c in "\r\n\0"):
        return None
    _, addr = parseaddr(text)
    return addr if _ADDRESS.match(addr) else None


def message_id(idempotency_key: str, domain: str) -> str:
    """The same key always gives the same Message-ID (the key itself may hold characters a
    Message-ID cannot, and may say more about a ticket than a mail header should)."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:40]
    return f"<tf.{digest}@{domain}>"


class SmtpConnector(Connector):
    type = "smtp"

    def __init__(self, name: str, host: str, port: int, sender: str, *, starttls: bool = False,
                 ssl_on_connect: bool = False, username: str | None = None, password: str | None = None,
                 timeout: float = 15.0, ca_file: str | None = None) -> None:
        super().__init__(name)
        self.host, self.port, self.sender = host, port, sender
        self.starttls, self.ssl_on_connect = starttls, ssl_on_connect
        self.username, self._password = username, password
        self.timeout = timeout
        self.ca_file = ca_file
        self.envelope_from = valid_address(sender) or ""
        self.domain = self.envelope_from.rsplit("@", 1)[-1]

    def build(self, msg: OutgoingMessage) -> EmailMessage:
        to = valid_address(msg.address)
        if to is None:
            what = f"{msg.address!r} is not an email address" if msg.address else "the message has no email address"
            raise DeliveryFailed(f"smtp {self.name}: cannot send {msg.idempotency_key}: {what}", retryable=False)
        email = EmailMessage()
        email["From"] = self.sender
        email["To"] = msg.address.strip()
        email["Subject"] = msg.subject or default_subject(msg.kind, msg.language, msg.ticket_id)
        email["Date"] = formatdate(usegmt=True)
        email["Message-ID"] = message_id(msg.idempotency_key, self.domain)
        email["X-Ticketflow-Idempotency-Key"] = msg.idempotency_key
        email["X-Ticketflow-Ticket"] = msg.ticket_id
        if msg.language:
            email["Content-Language"] = msg.language
        email.set_content(msg.body, charset="utf-8")
        return email

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def deliver(self, msg: OutgoingMessage, *, redelivery: bool = False) -> str:
        email = self.build(msg)
        to = valid_address(msg.address) or ""
        where = f"smtp {self.name} ({self.host}:{self.port})"
        server: smtplib.SMTP | None = None
        sent = False
        try:
            if self.ssl_on_connect:
                server = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._tls())
            else:
                server = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            if self.starttls:
                server.starttls(context=self._tls())
            if self.username:
                server.login(self.username, self._password or "")
            server.send_message(email, from_addr=self.envelope_from, to_addrs=[to])
            sent = True
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()), (550, b""))
            raise DeliveryFailed(f"{where}: recipient {to} refused: {code} {_text(text)}", retryable=400 <= code < 500) from exc
        except smtplib.SMTPNotSupportedError as exc:  # no STARTTLS, no SMTPUTF8 for a non-ASCII address
            raise DeliveryFailed(f"{where}: {exc}", retryable=False) from exc
        except smtplib.SMTPResponseException as exc:  # includes authentication and sender refusals
            code = exc.smtp_code
            raise DeliveryFailed(f"{where}: {code} {_text(exc.smtp_error)}", retryable=400 <= code < 500) from exc
        except ssl.SSLCertVerificationError as exc:  # a wrong certificate does not fix itself
            raise DeliveryFailed(f"{where}: TLS certificate not trusted: {exc.verify_message}", retryable=False) from exc
        except (smtplib.SMTPException, OSError) as exc:  # disconnects, refused connections, timeouts
            raise DeliveryFailed(f"{where}: {str(exc) or type(exc).__name__}", retryable=True) from exc
        finally:
            if server is not None:
                _close(server, polite=sent)
        return str(email["Message-ID"])


def _close(server: smtplib.SMTP, polite: bool) -> None:
    """QUIT after a delivery (and a failing QUIT then changes nothing: the server has the message);
    after a failure just drop the connection rather than wait on a server that may be gone."""
    try:
        if polite:
            server.quit()
            return
    except (smtplib.SMTPException, OSError):
        pass
    server.close()


def _text(raw: bytes | str) -> str:
    return excerpt(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw))
