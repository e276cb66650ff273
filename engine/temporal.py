"""Connecting to Temporal (local dev server, any cluster, or Temporal Cloud with TLS/API key)."""

from __future__ import annotations

from temporalio.client import Client, TLSConfig
from temporalio.runtime import Runtime

from engine.config import Settings


class ConnectError(RuntimeError):
    pass


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """`runtime`: a Temporal runtime of our own (the SDK metrics endpoint); default the SDK's."""
    tls: bool | TLSConfig = settings.tls
    if settings.tls_cert and settings.tls_key:
        tls = TLSConfig(
            client_cert=settings.tls_cert.read_bytes(),
            client_private_key=settings.tls_key.read_bytes(),
        )
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.namespace,
            tls=tls,
            api_key=settings.api_key,
            runtime=runtime,
        )
    except RuntimeError as exc:
        raise ConnectError(
            f"cannot reach Temporal at {settings.temporal_address} (namespace {settings.namespace}): "
            f"{str(exc).splitlines()[0]}; is `ticketflow dev` or a worker's server running? set TEMPORAL_ADDRESS"
        ) from None
