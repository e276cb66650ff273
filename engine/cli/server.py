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


MetricsPort = Annotated[int, typer.Option("--metrics-port", envvar="TICKETFLOW_METRICS_PORT",
                                          help="Prometheus metrics of ticketflow (/metrics); 0 turns them off.")]
SdkMetricsPort = Annotated[int, typer.Option("--sdk-metrics-port", envvar="TICKETFLOW_SDK_METRICS_PORT",
                                             help="Temporal SDK metrics (Prometheus) on their own port; 0 turns them off.")]


def _start_metrics(port: int, sdk_port: int, addr: str, *, strict: bool) -> tuple[object | None, object | None, list[str]]:
    """The metrics endpoint and the SDK runtime. `strict` (worker): a busy port is an error; otherwise
    (dev) it is a warning and the engine runs without that endpoint."""
    from engine import metrics

    server = runtime = None
    lines: list[str] = []
    shown = "127.0.0.1" if addr in ("0.0.0.0", "::") else addr
    try:
        if port:
            server = metrics.start_metrics_server(port, addr)
            lines.append(f"metrics http://{shown}:{port}/metrics")
        if sdk_port:
            runtime = metrics.sdk_runtime(sdk_port, addr)
            lines.append(f"Temporal SDK metrics http://{shown}:{sdk_port}/metrics")
    except metrics.PortInUse as exc:
        if strict:
            if server is not None:
                server.shutdown()  # type: ignore[attr-defined]
            raise CliError(str(exc)) from None
        typer.echo(f"ticketflow: warning: {exc}", err=True)
    return server, runtime, lines


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("ticketflow").setLevel(logging.INFO)


def dev(
    ctx: typer.Context,
    data_dir: Annotated[Path, typer.Option(help="Where the Temporal database, the store and the outbox live.", envvar="TICKETFLOW_DATA_DIR")] = Path(".ticketflow"),
    port: Annotated[int, typer.Option(help="Temporal frontend (gRPC) port.")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Temporal Web UI port.")] = 8233,
    demo: Annotated[bool, typer.Option("--demo", help="Keep demo tickets flowing, with simulated agents and customers.")] = False,
    metrics_port: MetricsPort = 9464,
    sdk_metrics_port: SdkMetricsPort = 9465,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every worker and demo step.")] = False,
) -> None:
    """Run the engine locally: Temporal dev server + worker in one process (Ctrl-C stops both).

    Starting again on the same --data-dir resumes every open ticket where it was. Prometheus
    metrics on 127.0.0.1:--metrics-port (9464), Temporal SDK metrics on --sdk-metrics-port (9465);
    0 turns either off, a busy port is a warning.

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
    # Local only: the dev endpoints listen on the loopback interface.
    metrics_server, runtime, metrics_lines = _start_metrics(metrics_port, sdk_metrics_port, "127.0.0.1", strict=False)

    async def main() -> None:
        await server.wait_ready()
        client = await connect(cfg, runtime=runtime)  # type: ignore[arg-type]
        async with running_worker(client, cfg):
            typer.echo(f"ticketflow dev: Temporal at {server.address} (namespace {cfg.namespace}), Web UI {server.ui_url}")
            if metrics_lines:
                typer.echo("  " + "; ".join(metrics_lines))
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
        if metrics_server is not None:
            metrics_server.shutdown()  # type: ignore[attr-defined]
        server.stop()


def worker(
    ctx: typer.Context,
    task_queue: Annotated[Optional[str], typer.Option(help="Task queue to poll (env TICKETFLOW_TASK_QUEUE).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Data dir for the embedded store and outbox (env TICKETFLOW_DATA_DIR).")] = None,
    metrics_port: MetricsPort = 9464,
    sdk_metrics_port: SdkMetricsPort = 9465,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every step.")] = False,
) -> None:
    """Run a worker against any Temporal server (TEMPORAL_ADDRESS); run as many as you like.

    SIGTERM or Ctrl-C finishes running activities (up to 10 s) and exits. Prometheus scrapes
    ticketflow's metrics on --metrics-port and the Temporal SDK's on --sdk-metrics-port (all
    interfaces); with several workers on one host give each its own ports.

    Example: TEMPORAL_ADDRESS=temporal.internal:7233 ticketflow worker --task-queue ticketflow --metrics-port 9464
    """
    from engine.runner import running_worker, wait_for_stop_signal

    _logging(verbose)
    cfg = settings(ctx, task_queue=task_queue, data_dir=data_dir)

    metrics_server, runtime, metrics_lines = _start_metrics(metrics_port, sdk_metrics_port, "0.0.0.0", strict=True)

    async def main() -> None:
        client = await connect(cfg, runtime=runtime)  # type: ignore[arg-type]
        async with running_worker(client, cfg):
            typer.echo(f"ticketflow worker: {cfg.temporal_address} namespace {cfg.namespace} task queue {cfg.task_queue}")
            if metrics_lines:
                typer.echo("  " + "; ".join(metrics_lines))
            await wait_for_stop_signal()
            typer.echo("ticketflow worker: shutting down")

    try:
        asyncio.run(main())
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()  # type: ignore[attr-defined]
