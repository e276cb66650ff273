"""`ticketflow dev` (embedded Temporal dev server + worker [+ demo]) and `ticketflow worker`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

from engine.cli.common import CliError, settings
from engine.devserver import DevServer
from engine.temporal import connect

log = logging.getLogger("ticketflow")


def register(app: typer.Typer) -> None:
    app.command("dev")(dev)
    app.command("worker")(worker)


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("ticketflow").setLevel(logging.INFO)


def dev(
    ctx: typer.Context,
    data_dir: Annotated[Path, typer.Option(help="Where the Temporal database, the store and the outbox live.", envvar="TICKETFLOW_DATA_DIR")] = Path(".ticketflow"),
    port: Annotated[int, typer.Option(help="Temporal frontend (gRPC) port.")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Temporal Web UI port.")] = 8233,
    demo: Annotated[bool, typer.Option("--demo", help="Keep demo tickets flowing, with simulated agents and customers.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every worker and demo step.")] = False,
) -> None:
    """Run the engine locally: Temporal dev server + worker in one process (Ctrl-C stops both).

    Starting again on the same --data-dir resumes every open ticket where it was.

    Example: ticketflow dev --demo
    """
    from engine.runner import running_worker, wait_for_stop_signal  # the worker stack loads only here

    _logging(verbose)
    cfg = settings(ctx, data_dir=data_dir, temporal_address=f"127.0.0.1:{port}")
    server = DevServer(cfg.data_dir, port=port, ui_port=ui_port)
    try:
        server.start()
    except RuntimeError as exc:
        raise CliError(str(exc)) from None

    async def main() -> None:
        await server.wait_ready()
        client = await connect(cfg)
        async with running_worker(client, cfg):
            typer.echo(f"ticketflow dev: Temporal at {server.address} (namespace {cfg.namespace}), Web UI {server.ui_url}")
            typer.echo(f"  task queue {cfg.task_queue}; data in {cfg.data_dir.resolve()}; outbox log {cfg.outbox_log.resolve()}")
            demo_task = None
            if demo:
                from engine.demo import Demo

                demo_task = asyncio.create_task(Demo(client, cfg.task_queue).run())
                typer.echo("  demo: tickets flowing; try `ticketflow list` in another terminal")
            typer.echo("  Ctrl-C to stop")
            await wait_for_stop_signal()
            typer.echo("ticketflow dev: stopping worker and server")
            if demo_task:
                demo_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await demo_task

    try:
        asyncio.run(main())
    finally:
        server.stop()


def worker(
    ctx: typer.Context,
    task_queue: Annotated[Optional[str], typer.Option(help="Task queue to poll (env TICKETFLOW_TASK_QUEUE).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Data dir for the embedded store and outbox (env TICKETFLOW_DATA_DIR).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every step.")] = False,
) -> None:
    """Run a worker against any Temporal server (TEMPORAL_ADDRESS); run as many as you like.

    SIGTERM or Ctrl-C finishes running activities (up to 10 s) and exits.

    Example: TEMPORAL_ADDRESS=temporal.internal:7233 ticketflow worker --task-queue ticketflow
    """
    from engine.runner import running_worker, wait_for_stop_signal

    _logging(verbose)
    cfg = settings(ctx, task_queue=task_queue, data_dir=data_dir)

    async def main() -> None:
        client = await connect(cfg)
        async with running_worker(client, cfg):
            typer.echo(f"ticketflow worker: {cfg.temporal_address} namespace {cfg.namespace} task queue {cfg.task_queue}")
            await wait_for_stop_signal()
            typer.echo("ticketflow worker: shutting down")

    asyncio.run(main())
