"""Client-side ticket operations shared by the CLI, the demo and tests.

Submitting starts the ticket's workflow with the ticket id as workflow id, so a channel that
delivers the same event twice reaches the same ticket instead of opening a second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import uuid

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.common import TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from engine import searchattrs as sa
from engine.intake import ticket_id_for
from engine.sla import clocks_at
from engine.models import (
    AgentReply,
    CommandResult,
    CompensationCommand,
    CompensationDecision,
    CustomerMessage,
    FollowupTaskState,
    TaskDone,
    EscalateCommand,
    HoldCommand,
    ReopenCommand,
    ResolveCommand,
    SetPriorityCommand,
    SurveyAnswer,
    TicketEvent,
    TicketInput,
    TicketState,
    TimingOverrides,
)
from engine.workflows import FollowupTaskWorkflow, TicketWorkflow


class TicketExists(Exception):
    pass


async def submit(
    client: Client, task_queue: str, event: TicketEvent, timing: TimingOverrides | None = None
) -> str:
    """Start the ticket (or find the one this event already opened) and return its id."""
    ticket_id = ticket_id_for(event)
    try:
        await client.start_workflow(
            TicketWorkflow.run,
            TicketInput(ticket_id=ticket_id, event=event, timing=timing or TimingOverrides()),
            id=ticket_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(sa.initial_pairs(event.channel)),
            static_summary=f"{event.channel}: {event.subject[:80]}",
        )
    except WorkflowAlreadyStartedError:
        raise TicketExists(f"event {event.event_id} on {event.channel} already opened ticket {ticket_id}, which is closed") from None
    return ticket_id


def handle(client: Client, ticket_id: str) -> WorkflowHandle[TicketWorkflow, TicketState]:
    return client.get_workflow_handle_for(TicketWorkflow.run, ticket_id)


async def state(client: Client, ticket_id: str) -> TicketState:
    """The ticket as its workflow knows it, with SLA clocks brought to the current time."""
    st = await handle(client, ticket_id).query(TicketWorkflow.state)
    if st.status != "closed":
        # Never earlier than the workflow's own clock (which runs ahead on a time-skipping server).
        now = max(datetime.now(timezone.utc), datetime.fromisoformat(st.as_of))
        st.sla = clocks_at(st, now)
    return st


async def _command(client: Client, ticket_id: str, update: Any, arg: Any) -> TicketState:
    """Run an agent command (a validated workflow update), then read the ticket as it now stands."""
    return (await _command_detail(client, ticket_id, update, arg))[1]


async def reply(client: Client, ticket_id: str, cmd: AgentReply) -> TicketState:
    return await _command(client, ticket_id, TicketWorkflow.agent_reply, cmd)


async def resolve(client: Client, ticket_id: str, cmd: ResolveCommand) -> TicketState:
    return await _command(client, ticket_id, TicketWorkflow.resolve, cmd)


async def reopen(client: Client, ticket_id: str, cmd: ReopenCommand) -> TicketState:
    return await _command(client, ticket_id, TicketWorkflow.reopen, cmd)


async def survey_answer(client: Client, ticket_id: str, answer: SurveyAnswer) -> TicketState:
    return await _command(client, ticket_id, TicketWorkflow.survey_answer, answer)


async def hold(client: Client, ticket_id: str, cmd: HoldCommand) -> TicketState:
    return await _command(client, ticket_id, TicketWorkflow.hold, cmd)


async def set_priority(client: Client, ticket_id: str, cmd: SetPriorityCommand) -> TicketState:
    return await _command(client, ticket_id, TicketWorkflow.set_priority, cmd)


async def escalate(client: Client, ticket_id: str, cmd: EscalateCommand) -> TicketState:
    return await _command(client, ticket_id, TicketWorkflow.escalate, cmd)


class TicketEnded(Exception):
    pass


async def customer_message(client: Client, ticket_id: str, msg: CustomerMessage, task_queue: str = "") -> str | None:
    """Deliver a customer's message. A ticket closed for good (its reopen window over) cannot
    reopen: the message opens a new ticket linked to it, whose id is returned (else None)."""
    h = handle(client, ticket_id)
    try:
        await h.signal(TicketWorkflow.customer_message, msg)
        return None
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        desc = await h.describe()  # NOT_FOUND again when there never was such a ticket
        if desc.status == WorkflowExecutionStatus.RUNNING:
            raise
    if desc.status != WorkflowExecutionStatus.COMPLETED:
        raise TicketEnded(f"ticket {ticket_id} ended {desc.status.name.lower() if desc.status else 'abnormally'}; "
                          "submit the message as a new ticket")
    old: TicketState = await h.result()
    event = TicketEvent(
        event_id=msg.event_id or f"{ticket_id}:after-close:{uuid.uuid4().hex[:12]}", channel=old.channel,
        customer=old.customer, subject=old.subject, body=msg.body, occurred_at=datetime.now(timezone.utc).isoformat(),
        is_public=old.is_public, origin="customer", linked_to=ticket_id,
    )
    return await submit(client, task_queue or desc.task_queue, event)


async def _command_detail(client: Client, ticket_id: str, update: Any, arg: Any) -> tuple[CommandResult, TicketState]:
    """The update's own result (e.g. "issued" or "waits for approval") and the ticket after it."""
    result = await handle(client, ticket_id).execute_update(update, arg)
    return result, await state(client, ticket_id)


async def compensate(client: Client, ticket_id: str, cmd: CompensationCommand) -> tuple[CommandResult, TicketState]:
    return await _command_detail(client, ticket_id, TicketWorkflow.offer_compensation, cmd)


async def decide_compensation(client: Client, ticket_id: str, cmd: CompensationDecision) -> tuple[CommandResult, TicketState]:
    return await _command_detail(client, ticket_id, TicketWorkflow.decide_compensation, cmd)


def task_handle(client: Client, task_id: str) -> WorkflowHandle[FollowupTaskWorkflow, FollowupTaskState]:
    return client.get_workflow_handle_for(FollowupTaskWorkflow.run, task_id)


async def task_state(client: Client, task_id: str) -> FollowupTaskState:
    h = task_handle(client, task_id)
    desc = await h.describe()
    if desc.status == WorkflowExecutionStatus.RUNNING:
        return await h.query(FollowupTaskWorkflow.state)
    return await h.result()


async def task_done(client: Client, task_id: str, cmd: TaskDone) -> FollowupTaskState:
    await task_handle(client, task_id).execute_update(FollowupTaskWorkflow.complete, cmd)
    return await task_state(client, task_id)


@dataclass
class TicketRow:
    ticket_id: str
    status: str
    priority: str
    category: str
    team: str
    assignee: str
    channel: str
    sla_breached: bool
    opened_at: str
    closed_at: str | None


def build_query(
    *, status: str | None = None, priority: str | None = None, team: str | None = None,
    channel: str | None = None, assignee: str | None = None, breached: bool | None = None, extra: str | None = None,
) -> str:
    parts = ['WorkflowType = "TicketWorkflow"']
    for name, value in (("TicketStatus", status), ("Priority", priority), ("Team", team), ("Channel", channel), ("Assignee", assignee)):
        if value:
            values = [v.strip() for v in value.split(",") if v.strip()]
            quoted = ", ".join('"' + v.replace('"', "") + '"' for v in values)
            parts.append(f"{name} IN ({quoted})" if len(values) > 1 else f"{name} = {quoted}")
    if breached is not None:
        parts.append(f"SlaBreached = {'true' if breached else 'false'}")
    if extra:
        parts.append(f"({extra})")
    return " AND ".join(parts)


async def list_tickets(client: Client, query: str, limit: int = 50) -> list[TicketRow]:
    rows: list[TicketRow] = []
    async for wf in client.list_workflows(query, limit=limit):
        attrs = wf.typed_search_attributes
        rows.append(
            TicketRow(
                ticket_id=wf.id,
                status=attrs.get(sa.STATUS) or "",
                priority=attrs.get(sa.PRIORITY) or "",
                category=attrs.get(sa.CATEGORY) or "",
                team=attrs.get(sa.TEAM) or "",
                assignee=attrs.get(sa.ASSIGNEE) or "",
                channel=attrs.get(sa.CHANNEL) or "",
                sla_breached=bool(attrs.get(sa.SLA_BREACHED)),
                opened_at=wf.start_time.isoformat(),
                closed_at=wf.close_time.isoformat() if wf.close_time else None,
            )
        )
        if len(rows) >= limit:
            break
    return rows
