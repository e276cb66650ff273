"""Replay histories against today's TicketWorkflow: does the current code make the same decisions,
in the same order, as the code that wrote each history?

One Replayer runs every history in turn (one worker, no server). A history that cannot even be read
counts as failed, with the reason, so a batch never stops half-way.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.worker import Replayer

from engine.audit.history import HistoryError, fetch_history, read_history

REASON_WIDTH = 300
_CORE_MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')
_runtime: Runtime | None = None


def _quiet_runtime() -> Runtime:
    """The core logs every failed replay as a warning; we report it ourselves, in one line."""
    global _runtime
    if _runtime is None:
        _runtime = Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(
            filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))))
    return _runtime


@dataclass
class ReplayOutcome:
    name: str
    ok: bool
    reason: str = ""


@dataclass
class Source:
    """A named history, or why it could not be loaded."""

    name: str
    history: WorkflowHistory | None = None
    error: str = ""


def describe_failure(exc: BaseException) -> str:
    """One line: the replayer's messages carry the whole command list; the first line says why."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    inner = _CORE_MESSAGE.search(text)
    if inner:  # core wraps the reason in a debug dump of its Failure struct
        text = inner.group(1).replace('\\"', '"').replace("\\'", "'")
    kind = type(exc).__name__
    if "ondeterminism" not in text and kind not in ("RuntimeError", "Exception"):
        text = f"{kind}: {text}"
    return text if len(text) <= REASON_WIDTH else text[: REASON_WIDTH - 1] + "…"


_EVENT_REF = re.compile(r"HistoryEvent\(id: (\d+)")
_LOCAL_ACTIVITY_REF = re.compile(r"LocalActivity\((\d+)\)")


def history_context(history: WorkflowHistory, reason: str) -> str:
    """What the history holds where the replayer's reason points, in words: the SDK names an
    event by id ("No command scheduled for event HistoryEvent(id: 17, ...)") or a local activity
    by its number ("Missing associated machine for LocalActivity(2)"); an engineer then wants to
    know which step of the ticket that was without opening the JSON. '' when it names neither."""
    found = _EVENT_REF.search(reason)
    if found:
        number = int(found.group(1))
        event = next((e for e in history.events if e.event_id == number), None)
        return f"history event {number}: {_event_words(event)}" if event is not None else ""
    found = _LOCAL_ACTIVITY_REF.search(reason)
    if found:
        seq = int(found.group(1))
        for event in history.events:
            if event.HasField("marker_recorded_event_attributes") and \
                    event.marker_recorded_event_attributes.marker_name == "core_local_activity":
                data = _marker_data(event)
                if data.get("seq") == seq:
                    return f"local activity {seq} of the history: {data.get('activity_type', '?')!r} (event {event.event_id})"
        return f"the history records no local activity {seq}"
    return ""


def _event_words(event: HistoryEvent) -> str:
    kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_").replace("_", " ").lower()
    if event.HasField("activity_task_scheduled_event_attributes"):
        return f"{kind} {event.activity_task_scheduled_event_attributes.activity_type.name!r}"
    if event.HasField("timer_started_event_attributes"):
        return f"{kind} {event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()}"
    if event.HasField("marker_recorded_event_attributes"):
        data = _marker_data(event)
        return f"{kind} {event.marker_recorded_event_attributes.marker_name} {data.get('activity_type', '')}".rstrip()
    if event.HasField("workflow_execution_signaled_event_attributes"):
        return f"{kind} {event.workflow_execution_signaled_event_attributes.signal_name!r}"
    return kind


def _marker_data(event: HistoryEvent) -> dict:
    payloads = event.marker_recorded_event_attributes.details.get("data")
    try:
        data = json.loads(payloads.payloads[0].data) if payloads is not None and payloads.payloads else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def file_sources(paths: Iterable[Path]) -> Iterable[Source]:
    for path in paths:
        try:
            yield Source(str(path), read_history(path))
        except HistoryError as exc:
            message = str(exc)
            if message.startswith(str(path)):  # the outcome is named after the file already
                message = "cannot read: " + message[len(str(path)):].lstrip(":").strip()
            yield Source(str(path), error=message)


async def server_sources(client: Client, query: str, limit: int | None = None) -> AsyncIterator[Source]:
    count = 0
    async for wf in client.list_workflows(query, limit=limit):
        try:
            yield Source(wf.id, await fetch_history(client, wf.id, wf.run_id))
        except HistoryError as exc:
            yield Source(wf.id, error=str(exc))
        count += 1
        if limit is not None and count >= limit:
            break


async def _aiter(sources: Iterable[Source] | AsyncIterator[Source]) -> AsyncIterator[Source]:
    if hasattr(sources, "__aiter__"):
        async for s in sources:  # type: ignore[union-attr]
            yield s
    else:
        for s in sources:  # type: ignore[union-attr]
            yield s


async def replay(
    sources: Iterable[Source] | AsyncIterator[Source],
    on_result: Callable[[ReplayOutcome], None] | None = None,
) -> list[ReplayOutcome]:
    """Replay every source with the current workflow code; one outcome per source, in order."""
    from engine.workflows import FollowupTaskWorkflow, TicketWorkflow

    outcomes: list[ReplayOutcome] = []
    names: dict[int, str] = {}

    def report(outcome: ReplayOutcome) -> None:
        outcomes.append(outcome)
        if on_result is not None:
            on_result(outcome)

    async def histories() -> AsyncIterator[WorkflowHistory]:
        async for src in _aiter(sources):
            if src.history is None:
                report(ReplayOutcome(src.name, False, src.error or "cannot read"))
                continue
            names[id(src.history)] = src.name
            yield src.history

    # Follow-up tasks are workflows too: an export by query may hold them beside the tickets.
    replayer = Replayer(workflows=[TicketWorkflow, FollowupTaskWorkflow], runtime=_quiet_runtime())
    async with replayer.workflow_replay_iterator(histories()) as results:
        async for result in results:
            name = names.get(id(result.history), result.history.workflow_id)
            if result.replay_failure is None:
                report(ReplayOutcome(name, True))
            else:
                reason = describe_failure(result.replay_failure)
                context = history_context(result.history, reason)
                report(ReplayOutcome(name, False, f"{reason} [{context}]" if context else reason))
    return outcomes
