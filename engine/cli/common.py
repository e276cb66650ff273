"""What every command shares: settings from flags and env, the error type, JSON and async helpers."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from typing import Any, Awaitable, Callable, TypeVar

import typer
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from engine.config import Settings
from engine.temporal import connect

T = TypeVar("T")


class CliError(Exception):
    """A failure explained in one line; exit code 1."""


def settings(ctx: typer.Context, **overrides: object) -> Settings:
    base: dict[str, object] = dict(ctx.obj or {})
    base.update({k: v for k, v in overrides.items() if v is not None})
    return Settings.from_env(**base)


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def client_for(ctx: typer.Context) -> Client:
    return await connect(settings(ctx))


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), ensure_ascii=False, indent=2, default=str) + "\n")


async def ticket_call(ticket_id: str, call: Callable[[], Awaitable[T]]) -> T:
    """Run a call against one ticket's workflow and turn Temporal's errors into one clear line."""
    try:
        return await call()
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        message = getattr(cause, "message", None) or str(cause or exc)
        raise CliError(f"{ticket_id}: {message}") from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise CliError(f"no ticket {ticket_id} (or it is closed and can no longer take commands)") from None
        if exc.status == RPCStatusCode.INVALID_ARGUMENT and "validat" in exc.message.lower():
            raise CliError(f"{ticket_id}: {exc.message}") from None
        raise CliError(f"{ticket_id}: {exc.message}") from None
