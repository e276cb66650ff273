"""Building and running a worker: the workflows and activities one process serves on a task queue.

Shared by `ticketflow worker` (any cluster) and `ticketflow dev` (embedded server), and by tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from contextlib import asynccontextmanager
from typing import AsyncIterator

from temporalio.client import Client
from temporalio.worker import Worker

from engine.activities.assignment import AssignmentActivities
from engine.activities.messaging import MessagingActivities
from engine.activities.triage import RulesetRegistry, TriageActivities
from engine.agents import load_directory
from engine import metrics
from engine.config import Settings
from engine.connectors import ConnectorsInvalid, load_connectors
from engine.connectors.usage import unknown_connectors
from engine.reload import RulesWatcher
from engine.store import Store
from engine.store.directory import import_directory, is_empty, load_from_store
from engine.activities.projection import ProjectionActivities
from engine.activities.rendering import RenderingActivities
from engine.activities.survey import SurveyActivities
from engine.workflows import FollowupTaskWorkflow, TicketWorkflow

log = logging.getLogger("ticketflow.worker")


def build_worker(client: Client, settings: Settings, executor: ThreadPoolExecutor, registry: RulesetRegistry,
                 store: Store) -> Worker:
    """Validate agents and the store first: a worker that starts is a worker that can work."""
    if is_empty(store):
        teams, agents = import_directory(store, load_directory(settings.agents_file))
        log.info("store had no agents: imported %d teams and %d agents from %s", teams, agents, settings.agents_file)
    triage = TriageActivities(registry)
    assignment = AssignmentActivities(store)
    projection = ProjectionActivities(store)
    rendering = RenderingActivities(registry)
    survey = SurveyActivities(store)
    connectors = load_connectors(settings.connectors_file, settings.outbox_log)
    unknown = unknown_connectors(registry.active, connectors.names())
    if unknown:
        raise ConnectorsInvalid(f"{settings.connectors_file}: {unknown[0]}")
    messaging = MessagingActivities(store, settings.outbox_log, lambda: load_from_store(store), connectors=connectors)
    log.info("ruleset %s from %s; store %s", registry.active.version, settings.rules_dir, store.engine.url.render_as_string(hide_password=True))
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[TicketWorkflow, FollowupTaskWorkflow],
        activities=[
            triage.evaluate_rules,
            assignment.assign_agent,
            assignment.release_assignment,
            projection.project_ticket,
            messaging.send_message,
            messaging.notify_staff,
            rendering.render_message,
            survey.days_since_survey,
        ],
        activity_executor=executor,
        graceful_shutdown_timeout=timedelta(seconds=10),
        interceptors=[metrics.MetricsInterceptor()],  # counts failed activity attempts
    )


@asynccontextmanager
async def running_worker(client: Client, settings: Settings, *, watch_rules: bool = True) -> AsyncIterator[Worker]:
    """A running worker; with `watch_rules`, edits to the rules (or SIGHUP) reload them live."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store.open(settings.database_url)
    registry = RulesetRegistry(settings.rules_dir, settings.data_dir, store)
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="activity") as executor:
        worker = build_worker(client, settings, executor, registry, store)
        watcher = asyncio.create_task(RulesWatcher(registry, settings.rules_dir).run()) if watch_rules else None
        gauges = metrics.store_collector()  # queue length, backlog, active ruleset: read at scrape time
        gauges.attach(store, lambda: registry.get(None).version)
        try:
            async with worker:
                yield worker
        finally:
            gauges.detach(store)
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher


async def wait_for_stop_signal() -> None:
    """Block until SIGINT or SIGTERM, so callers can shut down in order."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
