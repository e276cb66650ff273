"""connectors.yaml: which connectors exist and which one each channel uses.

Loaded once at worker start (and by rules validation, which checks the connector names rules use).
Every mistake is one line naming the file and the key, found at start rather than at the first
message. Secrets are never in the file: it names environment variables, read here.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from engine.connectors.base import Connector, DeliveryFailed
from engine.connectors.log import LogConnector
from engine.connectors.smtp import SmtpConnector, valid_address
from engine.connectors.webhook import WebhookConnector
from engine.models import OutgoingMessage
from engine.paths import PROJECT_ROOT

# Names end up in the outbox table's 20-character `connector` column and in rules.
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,19}$")
_KEYS = {
    "log": {"type"},
    "webhook": {"type", "url", "secret_env", "timeout"},
    "smtp": {"type", "host", "port", "from", "starttls", "ssl", "username_env", "password_env", "timeout", "ca_file"},
}
MAX_TIMEOUT = 25
STAFF_CHANNEL = "internal"  # staff notices; see Connectors.for_channel
EVENT_SCHEMA = PROJECT_ROOT / "schemas" / "ticket-event.schema.json"


def known_channels() -> list[str]:
    """The channels a ticket can come from (the intake contract), so a typo in `channels:` is an
    error at start instead of a channel that silently falls back to the default."""
    schema = json.loads(EVENT_SCHEMA.read_text(encoding="utf-8"))
    return list(schema["properties"]["channel"]["enum"])


class ConnectorsInvalid(ValueError):
    pass


@dataclass
class Connectors:
    """The configured connectors and the channel → connector map (`default` for the rest)."""

    connectors: dict[str, Connector]
    channels: dict[str, str]
    source: str = "built-in"
    # Staff notices have no customer address; unless `channels.internal` says otherwise they go to
    # a log connector even when the default is SMTP or a webhook that could not deliver them.
    staff: Connector | None = field(default=None, repr=False)

    def names(self) -> list[str]:
        """Connector names rules may use (`connector: <name>`)."""
        return sorted(self.connectors)

    def get(self, name: str) -> Connector:
        try:
            return self.connectors[name]
        except KeyError:
            raise DeliveryFailed(f"unknown connector {name!r} (defined in {self.source}: {', '.join(self.names())})",
                                 retryable=False) from None

    def for_channel(self, channel: str) -> Connector:
        if channel in self.channels:
            return self.connectors[self.channels[channel]]
        if channel == STAFF_CHANNEL and self.staff is not None:
            return self.staff
        return self.connectors[self.channels["default"]]

    def for_message(self, msg: OutgoingMessage) -> Connector:
        """The connector the message names (rules chose it), else its channel's, else the default."""
        return self.get(msg.connector) if msg.connector else self.for_channel(msg.channel)


def log_only(outbox_log: Path) -> Connectors:
    """What ticketflow does without a connectors.yaml: every message to the outbox log."""
    outbox = LogConnector("outbox", outbox_log)
    return Connectors({"outbox": outbox}, {"default": "outbox"}, staff=outbox)


def load_connectors(path: Path, outbox_log: Path) -> Connectors:
    """Read and check `path`; raise ConnectorsInvalid with one line naming the file and key."""

    def bad(where: str, what: str) -> ConnectorsInvalid:
        return ConnectorsInvalid(f"{path}: {where}: {what}")

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConnectorsInvalid(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConnectorsInvalid(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise bad("(top)", "expected a mapping with `connectors` and `channels`")
    for key in data:
        if key not in ("connectors", "channels"):
            raise bad(str(key), "unknown key (known: connectors, channels)")
    specs = data.get("connectors")
    if not isinstance(specs, dict) or not specs:
        raise bad("connectors", "expected a mapping of connector names to settings, with at least one")

    connectors: dict[str, Connector] = {}
    for name, spec in specs.items():
        where = f"connectors.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise bad(where, "a name is 1-20 characters: lower-case letters, digits, '-' and '_'")
        connectors[name] = _build(name, spec, outbox_log, lambda what, w=where: bad(w, what))

    channels_raw = data.get("channels")
    if channels_raw is None:
        channels_raw = {}
    if not isinstance(channels_raw, dict):
        raise bad("channels", "expected a mapping of channel to connector name")
    channels: dict[str, str] = {}
    allowed = ["default", STAFF_CHANNEL, *known_channels()]
    for channel, target in channels_raw.items():
        if channel not in allowed:
            raise bad(f"channels.{channel}", f"unknown channel (known: {', '.join(allowed)})")
        if not isinstance(target, str) or target not in connectors:
            raise bad(f"channels.{channel}", f"connector {target!r} is not defined under connectors "
                                             f"(defined: {', '.join(sorted(connectors))})")
        channels[str(channel)] = target
    if "default" not in channels:
        if len(connectors) != 1:
            raise bad("channels.default", "required when there is more than one connector")
        channels["default"] = next(iter(connectors))

    default = connectors[channels["default"]]
    staff = default if isinstance(default, LogConnector) else next(
        (c for c in connectors.values() if isinstance(c, LogConnector)), None) or LogConnector("staff-log", outbox_log)
    return Connectors(connectors, channels, source=str(path), staff=staff)


def _build(name: str, spec: Any, outbox_log: Path, bad) -> Connector:  # type: ignore[no-untyped-def]
    if not isinstance(spec, dict):
        raise bad("expected a mapping with at least `type`")
    kind = spec.get("type")
    if kind not in _KEYS:
        raise bad(f"unknown type {kind!r} (known: {', '.join(_KEYS)})" if kind is not None else "`type` is required")
    unknown = sorted(str(k) for k in spec if k not in _KEYS[kind])
    if unknown:
        raise bad(f"unknown key {unknown[0]!r} for a {kind} connector (known: {', '.join(sorted(_KEYS[kind]))})")

    if kind == "log":
        return LogConnector(name, outbox_log)

    # The workflows give a send 30 s per attempt; a connector that waits longer would be cut off
    # by Temporal mid-delivery instead of failing cleanly with its own error.
    timeout = spec.get("timeout", 10 if kind == "webhook" else 15)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_TIMEOUT:
        raise bad(f"timeout: expected seconds, more than 0 and at most {MAX_TIMEOUT} (an attempt gets 30 s), got {timeout!r}")

    if kind == "webhook":
        url = spec.get("url")
        if not url:
            raise bad("`url` is required")
        parts = urlsplit(str(url))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise bad(f"url: expected an http:// or https:// URL, got {url!r}")
        secret = _env(spec, "secret_env", bad, required=True)
        return WebhookConnector(name, str(url), secret or "", timeout=float(timeout))

    host = spec.get("host")
    if not host or not isinstance(host, str):
        raise bad("`host` is required")
    sender = spec.get("from")
    if not sender or not isinstance(sender, str) or valid_address(sender) is None:
        raise bad(f"from: expected an address like 'Support <support@example.com>', got {sender!r}"
                  if sender else "`from` is required")
    starttls, use_ssl = spec.get("starttls", False), spec.get("ssl", False)
    for key, value in (("starttls", starttls), ("ssl", use_ssl)):
        if not isinstance(value, bool):
            raise bad(f"{key}: expected true or false, got {value!r}")
    if starttls and use_ssl:
        raise bad("starttls and ssl exclude each other (ssl: TLS from the first byte, usually port 465; "
                  "starttls: upgrade a plain connection, usually port 587)")
    port = spec.get("port", 465 if use_ssl else 587 if starttls else 25)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise bad(f"port: expected a port number, got {port!r}")
    username = _env(spec, "username_env", bad, required=False)
    password = _env(spec, "password_env", bad, required=False)
    if (username is None) != (password is None):
        raise bad("username_env and password_env go together")
    ca_file = spec.get("ca_file")
    if ca_file is not None and not Path(str(ca_file)).is_file():
        raise bad(f"ca_file: no such file {ca_file!r}")
    return SmtpConnector(name, host, port, sender, starttls=starttls, ssl_on_connect=use_ssl, username=username,
                         password=password, timeout=float(timeout), ca_file=str(ca_file) if ca_file else None)


def _env(spec: dict, key: str, bad, *, required: bool) -> str | None:  # type: ignore[no-untyped-def]
    """The value of the environment variable `spec[key]` names; the error names the variable,
    never its value."""
    var = spec.get(key)
    if var is None:
        if required:
            raise bad(f"`{key}` is required (the name of the environment variable holding the secret)")
        return None
    if not isinstance(var, str) or not var:
        raise bad(f"{key}: expected an environment variable name, got {var!r}")
    value = os.environ.get(var)
    if not value:
        raise bad(f"{key}: environment variable {var} is not set")
    return value
