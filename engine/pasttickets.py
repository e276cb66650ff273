"""Past tickets for the backtest: each one's opening event and what it became, read from exported
history files (Temporal's JSON format) or from the server.

From a history alone: the workflow input gives the event; the completion result gives the final
ticket (decisions, SLA events). An open ticket in a file has no result yet, so its decisions come
from the rule-evaluation markers and it is compared without SLA clocks.

`read_past` is how every history file is read, by `from_dir` and by the backtest index
(engine.backtestindex), so both give a backtest the same tickets.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Iterator, Optional

from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter

from engine.models import Customer, EvaluationResult, TicketInput, TicketState, decode
from engine.ruleset.backtest import PastTicket
from engine.tickets import build_query, state

_CONVERT = DataConverter.default.payload_converter


def _decode(payloads, kind):  # type: ignore[no-untyped-def]
    values = _CONVERT.from_payloads(list(payloads.payloads), [kind])
    return values[0] if values else None


def from_history(history: WorkflowHistory) -> PastTicket:
    events: list[HistoryEvent] = list(history.events)
    started = events[0].workflow_execution_started_event_attributes
    tin: TicketInput = _decode(started.input, TicketInput)
    last = events[-1]
    if last.HasField("workflow_execution_completed_event_attributes"):
        final: TicketState = _decode(last.workflow_execution_completed_event_attributes.result, TicketState)
        closed = next((s.at for s in reversed(final.stages) if s.stage == "close"), None)
        until = datetime.fromisoformat(closed) if closed else last.event_time.ToDatetime(tzinfo=timezone.utc)
        return PastTicket(tin.ticket_id, tin.event, final, until, _survey_inputs(_survey_answers(events), final))
    st = TicketState(ticket_id=tin.ticket_id, status="open", channel=tin.event.channel,
                     customer=tin.event.customer or Customer(id=""), subject=tin.event.subject)
    for e in events:
        if e.HasField("marker_recorded_event_attributes") and "result" in e.marker_recorded_event_attributes.details:
            try:
                res: EvaluationResult = _decode(e.marker_recorded_event_attributes.details["result"], EvaluationResult)
            except Exception:  # another kind of marker (a patch, another local activity)
                continue
            if res and getattr(res, "decisions", None):
                st.decisions.extend(res.decisions)
    return PastTicket(tin.ticket_id, tin.event, st, last.event_time.ToDatetime(tzinfo=timezone.utc),
                      _survey_inputs(_survey_answers(events), st))


def _json(p: dict) -> object:
    return json.loads(base64.b64decode(p.get("data", "")))


_DAYS_SINCE_SURVEY = "days_since_survey"  # the activity whose answer the v4 survey decision reads


def _survey_inputs(answers: list[float | None], state: TicketState) -> dict[str, Any]:
    """What the workflow added to the snapshot of its last survey decision (engine.workflows.
    aftercare._survey_v4): who resolved the ticket, and the days_since_survey answer fetched for
    that decision (the n-th answer goes with the n-th survey decision). Nothing before v4, which
    asked no such activity and added neither field."""
    surveys = sum(1 for d in state.decisions if d.group == "survey")
    if not answers or not surveys:
        return {}
    inputs: dict[str, Any] = {"resolved_by": state.resolved_by or "agent"}
    days = answers[min(surveys, len(answers)) - 1]
    if days is not None:
        inputs["customer.days_since_survey"] = days
    return inputs


def _payload_value(payload: dict) -> Any:
    """One payload of an exported history as a value: JSON, or null (None)."""
    encoding = base64.b64decode(payload.get("metadata", {}).get("encoding", ""))
    if encoding == b"binary/null":
        return None
    if encoding != b"json/plain":
        raise ValueError(f"unexpected payload encoding {encoding!r}")
    return json.loads(base64.b64decode(payload.get("data", "")))


def _survey_answers_json(events: list[dict]) -> list[float | None]:
    asked = {str(e.get("eventId")) for e in events
             if e.get("activityTaskScheduledEventAttributes", {}).get("activityType", {}).get("name") == _DAYS_SINCE_SURVEY}
    answers = []
    for e in events:
        done = e.get("activityTaskCompletedEventAttributes")
        if done and str(done.get("scheduledEventId")) in asked:
            payloads = done.get("result", {}).get("payloads")
            answers.append(_payload_value(payloads[0]) if payloads else None)
    return answers


def _survey_answers(events: list[HistoryEvent]) -> list[float | None]:
    asked = {e.event_id for e in events if e.HasField("activity_task_scheduled_event_attributes")
             and e.activity_task_scheduled_event_attributes.activity_type.name == _DAYS_SINCE_SURVEY}
    return [_decode(e.activity_task_completed_event_attributes.result, Optional[float]) for e in events
            if e.HasField("activity_task_completed_event_attributes")
            and e.activity_task_completed_event_attributes.scheduled_event_id in asked]


def _fast(data: dict) -> PastTicket | None:
    """A ticket straight from the JSON: only the input, the result (or, while open, the rule
    decisions) are decoded. Building the whole protobuf history costs far more and is not needed."""
    events = data.get("events") or []
    if not events:
        return None
    start = events[0].get("workflowExecutionStartedEventAttributes", {})
    done = events[-1].get("workflowExecutionCompletedEventAttributes")
    if "input" not in start:
        return None
    tin: TicketInput = decode(TicketInput, _json(start["input"]["payloads"][0]))
    last_time = datetime.fromisoformat(events[-1]["eventTime"].replace("Z", "+00:00"))
    if done and "result" in done:
        final: TicketState = decode(TicketState, _json(done["result"]["payloads"][0]))
        closed = next((st.at for st in reversed(final.stages) if st.stage == "close"), None)
        return PastTicket(tin.ticket_id, tin.event, final, datetime.fromisoformat(closed) if closed else last_time,
                          _survey_inputs(_survey_answers_json(events), final))
    st = TicketState(ticket_id=tin.ticket_id, status="open", channel=tin.event.channel,
                     customer=tin.event.customer or Customer(id=""), subject=tin.event.subject)
    for e in events:
        result = e.get("markerRecordedEventAttributes", {}).get("details", {}).get("result")
        if not result:
            continue
        payloads = result.get("payloads", [])
        data = _json(payloads[0]) if payloads else None
        if not isinstance(data, dict) or "decisions" not in data:
            continue  # a patch marker or another local activity
        st.decisions.extend(decode(EvaluationResult, data).decisions)
    return PastTicket(tin.ticket_id, tin.event, st, last_time, _survey_inputs(_survey_answers_json(events), st))


def read_past(path: Path) -> PastTicket:
    """One exported history file as a past ticket; ValueError (with the file name) if it is not one."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the history: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return _fast(data) or from_history(WorkflowHistory.from_json(path.stem, data))
    except Exception as exc:  # not a ticket's history (another workflow type, a truncated file)
        raise ValueError(f"{path}: not a ticket history: {type(exc).__name__}: {exc}") from None


def history_paths(directory: Path) -> list[Path]:
    files = sorted(directory.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"{directory}: no exported histories (*.json)")
    return files


def from_dir(directory: Path) -> Iterator[PastTicket]:
    for path in history_paths(directory):
        yield read_past(path)


async def from_server(client: Client, query: str | None, limit: int) -> AsyncIterator[PastTicket]:
    q = build_query(extra=query)
    async for wf in client.list_workflows(q, limit=limit):
        handle = client.get_workflow_handle(wf.id)
        history = await handle.fetch_history()
        past = from_history(history)
        if not past.state.sla_events and wf.close_time is None:
            live = await state(client, wf.id)  # open: its clocks live in the workflow
            inputs = {**past.survey_inputs, "resolved_by": live.resolved_by or "agent"} if past.survey_inputs else {}
            past = PastTicket(past.ticket_id, past.event, live, datetime.now(timezone.utc), inputs)
        yield past
