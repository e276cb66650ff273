"""Dataclasses that cross the workflow boundary: events, commands, decisions and ticket state.

Everything here is plain data (serialisable by Temporal's default JSON converter) and imports only
the standard library, so workflow code may use it freely. The shape of `TicketState` is the
`ticketflow show --json` contract of DESIGN.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATUSES = (
    "received",
    "triaged",
    "assigned",
    "open",
    "pending_customer",
    "on_hold",
    "resolved",
    "surveying",
    "closed",
)
OPEN_STATUSES = ("received", "triaged", "assigned", "open", "pending_customer", "on_hold")
STAGES = ("receive", "classify", "assign", "respond", "survey", "close")
PRIORITIES = ("P1", "P2", "P3", "P4")
COMPENSATIONS = ("refund", "coupon", "reship")
AGENT_TIERS = ("agent", "senior", "expert", "manager")  # as in agents.yaml, lowest first


@dataclass
class Customer:
    id: str
    tier: str = "standard"
    language: str = "en"
    name: str = ""
    email: str = ""


@dataclass
class TicketEvent:
    """A customer's first message on a channel, as in schemas/ticket-event.schema.json."""

    event_id: str
    channel: str
    customer: Customer
    subject: str
    body: str
    occurred_at: str
    is_public: bool = False
    order_value: float | None = None
    prior_contacts: int | None = None
    origin: str = "customer"  # customer | agent (an agent reaching out: no survey by default rules)
    linked_to: str = ""  # a closed ticket this one continues (a message after its reopen window)


@dataclass
class TimingOverrides:
    """Shorter delays than the rules give; used by the demo so a newcomer can watch a whole life.

    Recorded in the workflow input, so an auditor sees that a ticket ran on demo timings.
    """

    survey_delay_seconds: int | None = None
    survey_expiry_seconds: int | None = None
    reopen_window_seconds: int | None = None


@dataclass
class TicketInput:
    ticket_id: str
    event: TicketEvent
    timing: TimingOverrides = field(default_factory=TimingOverrides)


@dataclass
class Decision:
    """One evaluation of one rule group: which rules matched, what they decided and why."""

    group: str
    rule_id: str  # the deciding rule (first match); "" when no rule matched
    rule_ids: list[str]
    actions: dict[str, Any]
    ruleset_version: str
    trace: list[dict[str, Any]] = field(default_factory=list)
    at: str = ""


@dataclass
class EvaluationRequest:
    groups: list[str]
    snapshot: dict[str, Any]
    ruleset_version: str | None = None
    ticket_id: str = ""  # decides a pilot's share for a new ticket


@dataclass
class EvaluationResult:
    ruleset_version: str
    decisions: list[Decision]
    sla_policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    version_reason: str = ""  # why this version: pinned, active version, pilot (...), rules directory


@dataclass
class AssignmentRequest:
    ticket_id: str
    team: str
    language: str
    skills: list[str] = field(default_factory=list)
    strategy: str = "least_loaded"
    exclude: list[str] = field(default_factory=list)
    min_tier: str = ""  # escalation: only agents at this tier or above (senior, expert, lead, manager)


@dataclass
class Assignment:
    team: str
    agent: str
    reason: str


@dataclass
class OutgoingMessage:
    """A message to a customer; `idempotency_key` makes a retried send a no-op."""

    idempotency_key: str
    ticket_id: str
    kind: str
    channel: str
    recipient: str
    language: str
    body: str
    connector: str = ""  # connector name chosen by the rules; "" = the channel's connector (connectors.yaml)
    address: str = ""  # where the connector delivers: an email address, a channel user id
    subject: str = ""  # email subject line; other channels ignore it


@dataclass
class StageRecord:
    stage: str
    at: str


@dataclass
class Message:
    author: str
    role: str  # customer | agent | system
    body: str
    at: str


@dataclass
class AgentReply:
    agent: str
    body: str
    wait_for_customer: bool = False
    forced_by: str = ""  # a supervisor replying for the assignee (recorded)
    template: str = ""  # a canned reply (template kind reply.<name>); body is then optional extra text


@dataclass
class CustomerMessage:
    body: str
    event_id: str = ""
    wants_human: bool = False  # the customer pressed "talk to a person" (words like 转人工 count too)


@dataclass
class ResolveCommand:
    agent: str
    note: str = ""
    forced_by: str = ""
    root_cause: str = ""


@dataclass
class HoldCommand:
    agent: str
    reason: str = ""
    release: bool = False


@dataclass
class SetPriorityCommand:
    priority: str
    by: str
    reason: str = ""


@dataclass
class EscalateCommand:
    by: str
    reason: str
    team: str = ""  # for a move to other_department: which team (default: the escalations desk)


@dataclass
class MigrateCommand:
    version: str
    by: str
    reason: str = ""


@dataclass
class StaffNotice:
    """An internal message to people (assignee, team lead, manager) about a ticket."""

    idempotency_key: str
    ticket_id: str
    team: str
    assignee: str
    targets: list[str]
    body: str


@dataclass
class ReopenCommand:
    reason: str
    by: str = "customer"


@dataclass
class SurveyAnswer:
    score: int
    comment: str = ""


@dataclass
class CommandResult:
    """What an update returns: small on purpose, since every update's result is kept in history."""

    ticket_id: str
    status: str
    detail: str = ""


@dataclass
class SlaClock:
    metric: str
    state: str  # running | paused | fulfilled | breached
    due: str | None
    elapsed_seconds: int
    remaining_seconds: int | None
    target_seconds: int
    breached_at: str | None = None
    cycle: int = 0  # next_reply and periodic_update start a new cycle each time they restart
    active: bool = False  # counting (or paused) right now, as opposed to not started or stopped


@dataclass
class Survey:
    kind: str = "csat"
    sent_at: str | None = None
    score: int | None = None
    comment: str = ""
    answered_at: str | None = None
    expired: bool = False
    channel: str = ""  # where it went, when not the ticket's own channel
    reminded_at: str | None = None
    rule_id: str = ""


@dataclass
class SlaEvent:
    """One thing that moves an SLA clock: opened, status (pause/resume), first_response, resolved, reopened."""

    kind: str
    at: str
    status: str = ""
    policy: dict[str, Any] | None = None  # kind "policy": the targets in force from `at` on


@dataclass
class Compensation:
    """A refund, coupon or reship offered on a ticket; above the agent's limit it waits for approval."""

    seq: int
    kind: str
    amount: float
    reason: str
    offered_by: str
    status: str  # issued | pending_approval | declined
    at: str
    rule_id: str = ""
    approver_tier: str = ""  # the lowest tier that may approve it, when pending
    decided_by: str = ""
    decided_at: str = ""
    note: str = ""


@dataclass
class CompensationCommand:
    agent: str
    agent_tier: str  # looked up in the directory by the CLI, like a supervisor's rank
    kind: str
    amount: float
    reason: str


@dataclass
class CompensationDecision:
    by: str
    by_tier: str
    approve: bool
    note: str = ""


@dataclass
class FollowupTaskInput:
    """Service recovery: a task for the team lead after a low survey score, with its own deadline."""

    task_id: str
    ticket_id: str
    team: str
    reason: str
    due_seconds: int
    notify: list[str] = field(default_factory=list)


@dataclass
class FollowupTaskState:
    task_id: str
    ticket_id: str
    team: str
    reason: str
    status: str  # open | done
    opened_at: str
    due: str
    told: list[str] = field(default_factory=list)
    overdue: bool = False
    done_by: str = ""
    done_at: str = ""
    note: str = ""


@dataclass
class TaskDone:
    by: str
    note: str


@dataclass
class TicketState:
    ticket_id: str
    status: str
    channel: str
    customer: Customer
    subject: str
    priority: str | None = None
    category: str | None = None
    tags: list[str] = field(default_factory=list)
    team: str | None = None
    assignee: str | None = None
    ruleset_version: str | None = None
    sla_policy: str | None = None
    sla_targets: dict[str, Any] = field(default_factory=dict)  # the policy's targets, as pinned
    sla: list[SlaClock] = field(default_factory=list)
    sla_events: list[SlaEvent] = field(default_factory=list)
    stages: list[StageRecord] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    survey: Survey | None = None
    reopen_count: int = 0
    escalation_tier: str = "agent"  # agent -> senior -> other_department -> management
    is_public: bool = False
    timing: TimingOverrides = field(default_factory=TimingOverrides)
    as_of: str = ""  # the workflow time this state was read at (queries see the last task's time)
    origin: str = "customer"
    resolved_by: str | None = None  # agent | bot | auto_close
    root_cause: str = ""
    handoff: str = ""  # why a human took over from the FAQ bot
    bot_answer: str = ""  # the FAQ entry the bot answered with
    compensations: list["Compensation"] = field(default_factory=list)
    followups: list[str] = field(default_factory=list)  # follow-up task workflow ids
    linked_to: str = ""  # the closed ticket this one continues
    linked_tickets: list[str] = field(default_factory=list)
    reopen_until: str | None = None  # closed, but a customer message until then reopens it
    undelivered: list[str] = field(default_factory=list)  # message steps a connector refused


@dataclass
class JournalEntry:
    """One row of the store's append-only ticket_event table: a transition or a decision."""

    seq: int
    at: str
    kind: str  # stage | status | decision
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProjectionUpdate:
    """What the reporting projection needs from a ticket, plus the journal entries it has not seen."""

    ticket_id: str
    status: str
    channel: str
    customer_id: str
    customer_tier: str
    opened_at: str
    priority: str | None = None
    category: str | None = None
    team: str | None = None
    assignee: str | None = None
    ruleset_version: str | None = None
    sla_policy: str | None = None
    escalation_tier: str = "agent"
    reopen_count: int = 0
    first_response_at: str | None = None
    resolved_at: str | None = None
    closed_at: str | None = None
    stages: dict[str, str] = field(default_factory=dict)
    sla: dict[str, dict[str, Any]] = field(default_factory=dict)
    survey: Survey | None = None
    events: list[JournalEntry] = field(default_factory=list)


_HINTS: dict[type, dict[str, Any]] = {}


def decode(tp: Any, value: Any) -> Any:
    """Plain JSON data (as Temporal's default converter writes it) back into these dataclasses.

    The SDK's converter resolves type hints for every object it builds; reading thousands of
    exported histories (backtest, audit) spends most of its time there, so hints are cached here.
    """
    import dataclasses as dc
    import types
    import typing

    if value is None:
        return None
    if dc.is_dataclass(tp):
        hints = _HINTS.get(tp)
        if hints is None:
            hints = _HINTS[tp] = typing.get_type_hints(tp)
        return tp(**{f.name: decode(hints[f.name], value[f.name]) for f in dc.fields(tp) if f.name in value})
    origin = typing.get_origin(tp)
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return [decode(item, v) for v in value]
    if origin is dict:
        _, item = typing.get_args(tp) or (Any, Any)
        return {k: decode(item, v) for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return decode(options[0], value) if len(options) == 1 else value
    return value


@dataclass
class RenderRequest:
    """Which template to render for a customer message, and the values it may use."""

    ruleset_version: str
    kind: str  # acknowledgement, survey, ... or faq.<entry id>, reply.<name>
    channel: str
    language: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class RenderedMessage:
    body: str
    subject: str = ""
    template: str = ""  # which variant rendered it, e.g. "survey/zh", "email/en", "builtin:closed/en"
