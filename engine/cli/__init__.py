"""The `ticketflow` command: subcommands, global connection flags, and one-line errors.

Exit codes: 0 ok, 1 failed, 2 usage. A traceback appears only with --debug.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated, Optional

import typer

from engine.cli import agents, audit, report, rules, server, tickets
from engine.cli.common import CliError

app = typer.Typer(
    rich_markup_mode="markdown",
    name="ticketflow",
    help="Customer-support tickets as durable Temporal workflows, driven by YAML rules.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _global(
    ctx: typer.Context,
    address: Annotated[Optional[str], typer.Option("--address", envvar="TEMPORAL_ADDRESS", help="Temporal frontend host:port.")] = None,
    namespace: Annotated[Optional[str], typer.Option("--namespace", envvar="TEMPORAL_NAMESPACE", help="Temporal namespace.")] = None,
    task_queue: Annotated[Optional[str], typer.Option("--task-queue", envvar="TICKETFLOW_TASK_QUEUE", help="Task queue of the workers.")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    ctx.obj = {"temporal_address": address, "namespace": namespace, "task_queue": task_queue}


server.register(app)
tickets.register(app)
rules.register(app)
agents.register(app)
audit.register(app)
report.register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; usage errors exit 2 (typer), our failures print one line and exit 1."""
    args = sys.argv[1:] if argv is None else argv
    try:
        app(args=args, prog_name="ticketflow")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if "--debug" in args:
            raise
        message = str(exc) if isinstance(exc, CliError) else _describe(exc)
        print(f"ticketflow: error: {message}", file=sys.stderr)
        return 1
    return 0


def _describe(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    known = getattr(exc, "__module__", "").startswith("engine")
    return first if known and first else f"{type(exc).__name__}: {first}".rstrip(": ")


def entrypoint() -> None:
    """The console script. Exits with os._exit after flushing: the Temporal core's Rust runtime
    can crash (SIGSEGV/SIGABRT) if its threads outlive Python's finalisation, which would turn a
    successful short command into exit code 139 (temporalio/sdk-python#300)."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    logging.shutdown()
    os._exit(code)
