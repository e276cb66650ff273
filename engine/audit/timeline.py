"""A ticket's timeline, built from its workflow history alone.

No query, no worker, no database: every entry comes from an event in the history, decoded with
temporalio's default data converter —

- the workflow input (WorkflowExecutionStarted) and result (WorkflowExecutionCompleted);
- decisions: the results of the `evaluate_rules` local activity, recorded in MarkerRecorded events
  (`details["result"]`), each with group, deciding rule, every matching rule, actions, ruleset
  version and the trace (the conditions that matched and the values they saw);
- agent commands: WorkflowExecutionUpdateAccepted (the request) / UpdateCompleted (the result);
- customer messages and staffing signals: WorkflowExecutionSignaled;
- side effects: ActivityTaskScheduled (the input) and ActivityTaskCompleted (the result):
  assignment, messages to the customer, notices to staff, releases;
- timers, search-attribute upserts (status changes) and patch markers (which code version ran).

SLA clocks are recomputed at every entry with the pure `engine.sla.sla_state`, from SLA events
rebuilt the way TicketWorkflow records them (opened at start; every status change; agent replies;
customer messages; resolve; reopen; a `policy` event when the policy is set (v2+) or changes), with
the policy taken from the `sla_policies` of the EvaluationResult markers. The workflow time of each
event is what the workflow saw: the start of its workflow task, moved on by each local activity's
completion time — so the rebuilt events match the workflow's own `sla_events` to the microsecond,
for finished and running tickets alike. SLA warnings and breaches are found the way the workflow
finds them (`reached` / `next_threshold_at`), so they appear at the instant the clock crossed.

v1 histories (no patch markers) have no warnings, no `customer_message`/`policy` events and call
the first reply `first_response`; v2 adds patch "sla-escalation-v2"; v3 adds "store-v3".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter

from engine import sla as sla_clock
from engine.models import SlaClock, SlaEvent
from engine.workflows.escalation import PRIORITY_UP, TIERS

WORKFLOW_TYPE = "TicketWorkflow"
V2_PATCH = "sla-escalation-v2"
V3_PATCH = "store-v3"
V4_PATCH = "respond-v4"
V5_PATCH = "sla-first-policy-v5"
# Statuses a ticket leaves when it is reopened (by the reopen update, a low survey score or a
# customer message in the reopen window).
DONE = ("resolved", "surveying", "closed")
SUMMARY_WIDTH = 110

_CONVERTER = DataConverter.default.payload_converter


class TimelineError(Exception):
    """A history that is not a ticket's, explained in one line."""


@dataclass
class Entry:
    at: datetime
    kind: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    event_id: int | None = None
    clocks: list[dict[str, Any]] = field(default_factory=list)
    seq: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "kind": self.kind,
            "summary": self.summary,
            "details": self.details,
            "event_id": self.event_id,
            "clocks": self.clocks,
        }


@dataclass
class Timeline:
    ticket_id: str
    workflow_id: str
    run_id: str
    task_queue: str
    code_version: str  # v1 | v2 | v3 | v4 | v5
    patches: list[str]
    outcome: str  # running | completed | failed | terminated | canceled | timed_out | continued_as_new
    status: str
    as_of: datetime
    entries: list[Entry]
    clocks: list[dict[str, Any]]
    sla_events: list[SlaEvent]
    ruleset_version: str | None = None
    priority: str | None = None
    category: str | None = None
    team: str | None = None
    assignee: str | None = None
    escalation_tier: str = "agent"
    reopen_count: int = 0
    sla_policy: str | None = None
    sla_targets: dict[str, Any] = field(default_factory=dict)
    channel: str = ""
    subject: str = ""
    customer: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None  # the workflow's own final state, when it completed

    @property
    def decisions(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == "decision"]

    def kinds(self) -> list[str]:
        return [e.kind for e in self.entries]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ticket_id": self.ticket_id,
            "workflow_id": self.workflow_id,
            "run_id": self.run_id,
            "task_queue": self.task_queue,
            "code_version": self.code_version,
            "patches": self.patches,
            "outcome": self.outcome,
            "status": self.status,
            "channel": self.channel,
            "subject": self.subject,
            "customer": self.customer,
            "ruleset_version": self.ruleset_version,
            "priority": self.priority,
            "category": self.category,
            "team": self.team,
            "assignee": self.assignee,
            "escalation_tier": self.escalation_tier,
            "reopen_count": self.reopen_count,
            "sla_policy": self.sla_policy,
            "sla_targets": self.sla_targets,
            "as_of": self.as_of.isoformat(),
            "clocks": self.clocks,
            "sla_events": [dataclasses.asdict(e) for e in self.sla_events],
            "entries": [e.to_dict() for e in self.entries],
        }


# ---- decoding helpers ---------------------------------------------------------------------------


def _decode_all(payloads: Any) -> list[Any]:
    out: list[Any] = []
    for p in getattr(payloads, "payloads", payloads) or []:
        try:
            out.append(_CONVERTER.from_payloads([p])[0])
        except Exception:  # an encrypted or custom payload: say so rather than fail the audit
            encoding = p.metadata.get("encoding", b"?").decode("utf-8", "replace")
            out.append(f"<undecodable payload ({encoding})>")
    return out


def _decode_first(payloads: Any) -> Any:
    values = _decode_all(payloads)
    return values[0] if values else None


def _wf_time(seconds: int, nanos: int) -> datetime:
    """A timestamp as `workflow.now()` renders it (float seconds, like the SDK), so times match."""
    return datetime.fromtimestamp((seconds * 1_000_000_000 + nanos) / 1e9, timezone.utc)


def _event_time(ev: HistoryEvent) -> datetime:
    return _wf_time(ev.event_time.seconds, ev.event_time.nanos)


def _short(text: Any, width: int = SUMMARY_WIDTH) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= width else s[: width - 1] + "…"


def _secs(seconds: float | int | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(float(seconds)))
    sign = "-" if s < 0 else ""
    s = abs(s)
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m, sec = divmod(rem, 60)
    parts = [f"{d}d" if d else "", f"{h}h" if h else "", f"{m}m" if m else "", f"{sec}s" if sec and not d else ""]
    return sign + ("".join(parts) or "0s")


def _actions_text(actions: dict[str, Any]) -> str:
    parts = []
    for key, value in actions.items():
        if isinstance(value, list):
            value = ",".join(str(v) for v in value) or "[]"
        parts.append(f"{key}={value}")
    return " ".join(parts) or "no actions"


def _why(trace: list[dict[str, Any]]) -> list[str]:
    """Each matched rule's conditions with the value they saw: `rule: field op expected (saw x)`."""
    out: list[str] = []
    for item in trace or []:
        if not isinstance(item, dict):
            continue
        if "leaves" not in item:  # a recorded reason rather than an evaluation (manual changes)
            out.append(", ".join(f"{k}: {v}" for k, v in item.items()))
            continue
        if not item.get("matched"):
            continue
        leaves = item.get("leaves") or []
        if not leaves:
            out.append(f"{item.get('rule_id')}: (no conditions: catch-all)")
            continue
        conds = [f"{leaf.get('field')} {leaf.get('op')} {_short(repr(leaf.get('expected')), 60)} "
                 f"(saw {_short(repr(leaf.get('actual')), 60)})" for leaf in leaves]
        out.append(f"{item.get('rule_id')}: " + " and ".join(conds))
    return out


# ---- the builder --------------------------------------------------------------------------------


class _Builder:
    """Walks the history once, keeping a shadow of the ticket the way TicketWorkflow keeps it."""

    def __init__(self, history: WorkflowHistory) -> None:
        self.history = history
        self.entries: list[Entry] = []
        self.sla_events: list[SlaEvent] = []
        self.targets: dict[str, Any] = {}
        self.targets_timeline: list[tuple[datetime, dict[str, Any]]] = []
        self.wf_now: datetime | None = None
        self.last_time: datetime | None = None
        self.wft_started: dict[int, datetime] = {}  # by started event id
        self.wft_scheduled: dict[int, tuple[int, datetime]] = {}  # scheduled event id -> (started id, time)
        self.started_any = False
        self.pending_signals: list[tuple[HistoryEvent, str, list[Any]]] = []
        self.activities: dict[int, tuple[str, Any]] = {}  # scheduled event id -> (type, input)
        self.updates: dict[str, Entry] = {}
        self.timers: dict[str, Entry] = {}
        self.patches: list[str] = []
        self.v2 = False
        self.v3 = False
        self.v4 = False
        self.v5 = False
        self.evaluations = 0
        # the ticket as the workflow sees it
        self.ticket_id = history.workflow_id
        self.task_queue = ""
        self.channel = ""
        self.subject = ""
        self.customer: dict[str, Any] = {}
        self.status = "received"
        self.priority: str | None = None
        self.category: str | None = None
        self.team: str | None = None
        self.assignee: str | None = None
        self.ruleset_version: str | None = None
        self.sla_policy: str | None = None
        self.tier = "agent"
        self.reopen_count = 0
        self.seen_events: set[str] = set()
        self.first_response_seen = False
        self.survey: dict[str, Any] | None = None
        self.survey_plan: dict[str, Any] | None = None
        self.phase = "sla"  # what a timer set now waits for: sla | survey delay | survey expiry
        self.pending_tier: str | None = None
        self.pending_raise: tuple[str, str] | None = None
        self.pending_reassign: str | None = None
        self.followups: list[datetime] = []
        self.sa: dict[str, Any] = {}
        self.outcome = "running"
        self.result: dict[str, Any] | None = None
        self.end: datetime | None = None

    # -- plumbing --

    @property
    def now(self) -> datetime:
        assert self.wf_now is not None or self.last_time is not None
        return self.wf_now or self.last_time  # type: ignore[return-value]

    def add(self, kind: str, summary: str, details: dict[str, Any] | None = None,
            ev: HistoryEvent | None = None, at: datetime | None = None) -> Entry:
        entry = Entry(at=at or self.now, kind=kind, summary=summary, details=details or {},
                      event_id=ev.event_id if ev is not None else None)
        self.entries.append(entry)
        return entry

    def sla(self, kind: str, status: str = "", policy: dict[str, Any] | None = None) -> None:
        self.sla_events.append(SlaEvent(kind=kind, at=self.now.isoformat(), status=status, policy=policy))

    def set_targets(self, targets: dict[str, Any]) -> None:
        self.targets = dict(targets)
        self.targets_timeline.append((self.now, self.targets))

    def targets_at(self, at: datetime) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for since, targets in self.targets_timeline:
            if since <= at:
                found = targets
        return found

    def clocks_at(self, policy: dict[str, Any], now: datetime, events: list[SlaEvent] | None = None) -> list[SlaClock]:
        """The pure SLA clock over this ticket's events, counted as its own code version did."""
        return sla_clock.sla_state(self.sla_events if events is None else events, policy, now, legacy=not self.v5)

    # -- the walk --

    def run(self) -> None:
        for ev in self.history.events:
            self.last_time = _event_time(ev)
            kind = ev.WhichOneof("attributes") or ""
            handler = getattr(self, "_on_" + kind.removesuffix("_event_attributes"), None)
            if handler is not None:
                handler(ev, getattr(ev, kind))

    def _on_workflow_execution_started(self, ev: HistoryEvent, a: Any) -> None:
        if a.workflow_type.name != WORKFLOW_TYPE:
            name = a.workflow_type.name
            article = "an" if name[:1].lower() in "aeiou" else "a"
            raise TimelineError(f"{self.history.workflow_id}: {article} {name} history, not a ticket ({WORKFLOW_TYPE})")
        self.task_queue = a.task_queue.name
        inp = _decode_first(a.input) or {}
        event = inp.get("event") or {}
        self.ticket_id = inp.get("ticket_id") or self.history.workflow_id
        self.channel = event.get("channel", "")
        self.subject = event.get("subject", "")
        self.customer = dict(event.get("customer") or {})
        if event.get("event_id"):
            self.seen_events.add(event["event_id"])
        for name, payload in a.search_attributes.indexed_fields.items():
            self.sa[name] = _decode_first([payload])
        timing = {k: v for k, v in (inp.get("timing") or {}).items() if v is not None}
        details = {"ticket_id": self.ticket_id, "channel": self.channel, "customer": self.customer,
                   "subject": self.subject, "body": event.get("body", ""), "is_public": event.get("is_public", False),
                   "event_id": event.get("event_id"), "occurred_at": event.get("occurred_at"),
                   "order_value": event.get("order_value"), "prior_contacts": event.get("prior_contacts"),
                   "task_queue": self.task_queue, "timing_overrides": timing}
        who = self.customer.get("id", "?")
        extra = f" [demo timings: {timing}]" if timing else ""
        self.add("received", _short(f"{self.channel}{' (public)' if event.get('is_public') else ''} from {who} "
                                    f"({self.customer.get('tier', '?')}, {self.customer.get('language', '?')}): "
                                    f"{self.subject} — {event.get('body', '')}") + extra, details, ev)

    def _on_workflow_task_started(self, ev: HistoryEvent, a: Any) -> None:
        self.wft_started[ev.event_id] = _event_time(ev)
        self.wft_scheduled[a.scheduled_event_id] = (ev.event_id, _event_time(ev))

    def _on_workflow_task_completed(self, ev: HistoryEvent, a: Any) -> None:
        # Some servers (the time-skipping test server) leave started_event_id out: find the task
        # started for the same scheduled event instead.
        started_id, started = a.started_event_id, self.wft_started.get(a.started_event_id)
        if started is None and a.scheduled_event_id in self.wft_scheduled:
            started_id, started = self.wft_scheduled[a.scheduled_event_id]
        if started is not None and (self.wf_now is None or started > self.wf_now):
            self.wf_now = started
        if not self.started_any:
            self.started_any = True
            self.sla("opened")
        # signals delivered before this task started were handled by it, at its time
        due = [s for s in self.pending_signals if s[0].event_id < started_id]
        self.pending_signals = [s for s in self.pending_signals if s not in due]
        for sig_ev, name, args in due:
            self._signal(sig_ev, name, args)

    def _on_workflow_task_failed(self, ev: HistoryEvent, a: Any) -> None:
        from temporalio.api.enums.v1 import WorkflowTaskFailedCause

        cause = WorkflowTaskFailedCause.Name(a.cause).removeprefix("WORKFLOW_TASK_FAILED_CAUSE_").lower()
        self.add("workflow task failed", _short(f"{cause}: {a.failure.message}"),
                 {"cause": cause, "message": a.failure.message}, ev, at=_event_time(ev))

    def _on_marker_recorded(self, ev: HistoryEvent, a: Any) -> None:
        if a.marker_name == "core_patch":
            data = _decode_first(a.details["patch-data"]) if "patch-data" in a.details else {}
            patch = (data or {}).get("id", "?")
            self.patches.append(patch)
            self.v2 = V2_PATCH in self.patches
            self.v3 = self.v2 and V3_PATCH in self.patches
            self.v4 = self.v3 and V4_PATCH in self.patches
            self.v5 = self.v4 and V5_PATCH in self.patches
            self.add("code version", f"workflow code patch {patch!r} (runs as {self.code_version})",
                     {"patch": patch, "deprecated": (data or {}).get("deprecated", False)}, ev)
            return
        if a.marker_name != "core_local_activity":
            self.add("marker", f"marker {a.marker_name}", {"marker": a.marker_name}, ev)
            return
        data = _decode_first(a.details["data"]) if "data" in a.details else {}
        data = data or {}
        done = data.get("complete_time") or {}
        if done:
            t = _wf_time(int(done.get("seconds", 0)), int(done.get("nanos", 0)))
            if self.wf_now is None or t > self.wf_now:
                self.wf_now = t  # the workflow's clock moves on to the local activity's completion
        activity = data.get("activity_type", "?")
        if a.HasField("failure"):
            self.add("activity failed", _short(f"local activity {activity} failed: {a.failure.message}"),
                     {"activity": activity, "message": a.failure.message}, ev)
            return
        result = _decode_first(a.details["result"]) if "result" in a.details else None
        if activity == "evaluate_rules" and isinstance(result, dict):
            self._evaluation(ev, result)
        elif activity == "render_message" and isinstance(result, dict):
            self.add("template", _short(f"rendered {result.get('template')}: {result.get('body')}"),
                     {"activity": activity, "template": result.get("template"), "subject": result.get("subject"),
                      "body": result.get("body")}, ev)
        elif activity == "project_ticket":
            self.add("projection", f"reporting store updated ({result} journal entries)",
                     {"activity": activity, "result": result}, ev)
        else:
            self.add("local activity", f"{activity} → {_short(result, 60)}", {"activity": activity, "result": result}, ev)

    # -- decisions --

    def _evaluation(self, ev: HistoryEvent, result: dict[str, Any]) -> None:
        self.evaluations += 1
        decisions = [d for d in result.get("decisions") or [] if isinstance(d, dict)]
        policies = result.get("sla_policies") or {}
        if self.evaluations == 1 and result.get("ruleset_version"):
            self.ruleset_version = result["ruleset_version"]  # pinned at classification
        for d in decisions:
            self._decision(ev, d)
        if self.evaluations == 2:  # routing + sla_policy: the policy is chosen for the first time
            if self.sla_policy and self.sla_policy in policies:
                self.set_targets(policies[self.sla_policy])
                if self.v2:
                    self.sla("policy", policy=dict(self.targets))
                self.add("sla policy", f"SLA policy {self.sla_policy}: {self._targets_text()}",
                         {"policy": self.sla_policy, "targets": self.targets}, ev)
            elif self.sla_policy:
                self.add("sla policy", f"SLA policy {self.sla_policy!r} is not in ruleset {result.get('ruleset_version')}: no SLA clock",
                         {"policy": self.sla_policy}, ev)
        elif any(d.get("group") == "sla_policy" for d in decisions) and self.evaluations > 2:
            new = self.sla_policy  # a priority change chose the policy again
            if new and new in policies and policies[new] != self.targets:
                self.set_targets(policies[new])
                self.sla("policy", policy=dict(self.targets))
                kept = "restarted" if self.targets.get("on_change") == "restart" else "elapsed time kept"
                self.add("sla policy", f"SLA policy is now {new} ({kept}): {self._targets_text()}",
                         {"policy": new, "targets": self.targets, "on_change": self.targets.get("on_change", "keep")}, ev)

    def _targets_text(self) -> str:
        parts = [f"{m} {_secs(self.targets[m])}" for m in sla_clock.METRIC_ORDER if self.targets.get(m)]
        cal = self.targets.get("calendar")
        where = f"calendar {cal.get('name')} ({cal.get('tz')})" if isinstance(cal, dict) else "24x7"
        return ", ".join(parts) + f"; {where}"

    def _decision(self, ev: HistoryEvent, d: dict[str, Any]) -> None:
        group = d.get("group", "?")
        actions = d.get("actions") or {}
        rule = d.get("rule_id") or ""
        if group == "classification":
            self.category = actions.get("category", self.category)
        elif group == "priority" and "priority" in actions:
            self.priority = actions["priority"]
        elif group == "routing" and "team" in actions:
            self.team = actions["team"]
        elif group == "sla_policy" and "policy" in actions:
            self.sla_policy = actions["policy"]
        elif group == "survey":
            self.survey_plan = dict(actions)
            if actions.get("survey", True):
                self.phase = "survey delay"
        elif group == "escalation":
            if actions.get("raise_priority") and self.priority and PRIORITY_UP.get(self.priority, self.priority) != self.priority:
                self.pending_raise = (PRIORITY_UP[self.priority], rule)
            if actions.get("tier_up") and self.tier != TIERS[-1]:
                self.pending_tier = rule
            elif actions.get("reassign_team") or actions.get("reassign_agent"):
                self.pending_reassign = f"escalation rule {rule}"
            if actions.get("again_after"):
                self.followups.append(self.now + timedelta(seconds=int(actions["again_after"])))
        trace = d.get("trace") or []
        details = {"group": group, "rule_id": rule, "rule_ids": d.get("rule_ids") or [], "actions": actions,
                   "ruleset_version": d.get("ruleset_version"), "why": _why(trace), "trace": trace}
        shown = rule or "(no rule matched)"
        also = [r for r in details["rule_ids"] if r != rule]
        more = f" (also matched: {', '.join(also)})" if also else ""
        self.add("decision", _short(f"{group}: {shown} → {_actions_text(actions)}{more}", 2 * SUMMARY_WIDTH)
                 + f" [ruleset {d.get('ruleset_version')}]", details, ev)

    # -- activities --

    def _on_activity_task_scheduled(self, ev: HistoryEvent, a: Any) -> None:
        name = a.activity_type.name
        arg = _decode_first(a.input)
        self.activities[ev.event_id] = (name, arg)
        if name == "assign_agent" and isinstance(arg, dict):
            if self.pending_tier is not None:
                rule, self.pending_tier = self.pending_tier, None
                before = self.tier
                self.tier = TIERS[min(TIERS.index(self.tier) + 1, len(TIERS) - 1)]
                self.add("escalation", f"tier {before} → {self.tier} (rule {rule}); asking team {arg.get('team')}"
                         + (f" for a {arg.get('min_tier')} or above" if arg.get("min_tier") else ""),
                         {"from": before, "to": self.tier, "rule_id": rule, "request": arg}, ev)
        elif name == "send_message" and isinstance(arg, dict) and arg.get("kind") == "survey":
            self.phase = "survey expiry"

    def _completed(self, ev: HistoryEvent, scheduled_id: int) -> tuple[str, Any]:
        return self.activities.pop(scheduled_id, ("?", None))

    def _on_activity_task_completed(self, ev: HistoryEvent, a: Any) -> None:
        name, arg = self._completed(ev, a.scheduled_event_id)
        result = _decode_first(a.result) if a.HasField("result") else None
        at = _event_time(ev)
        arg = arg if isinstance(arg, dict) else {"input": arg}
        if name == "assign_agent" and isinstance(result, dict):
            why = self.pending_reassign
            self.pending_reassign = None
            agent, team, reason = result.get("agent") or "", result.get("team") or "", result.get("reason", "")
            details = {"agent": agent or None, "team": team, "reason": reason, "request": arg}
            if why:
                details["because"] = why
            self.team = team or self.team
            if agent:
                changed = agent != self.assignee
                self.assignee = agent
                text = f"{'assigned to' if changed else 'stays with'} {agent} in {team}: {reason}"
                self.add("assignment", _short(text), details, ev, at=at)
            else:
                self.assignee = None
                self.add("queued", _short(f"nobody can take it now: waiting in the {team} queue: {reason}"), details, ev, at=at)
        elif name == "send_message":
            kind = arg.get("kind", "?")
            details = {"message_kind": kind, "channel": arg.get("channel"), "recipient": arg.get("recipient"),
                       "language": arg.get("language"), "idempotency_key": arg.get("idempotency_key"),
                       "body": arg.get("body"), "result": result}
            if kind == "survey":
                self.survey = {"sent_at": at.isoformat(), "kind": (self.survey_plan or {}).get("kind", "csat"), "score": None}
                self.add("survey sent", _short(f"{self.survey['kind']} survey to {arg.get('recipient')} on {arg.get('channel')}: {arg.get('body')}"),
                         details, ev, at=at)
            else:
                self.add("message sent", _short(f"{kind} to {arg.get('recipient')} on {arg.get('channel')}: {arg.get('body')}"),
                         details, ev, at=at)
        elif name == "notify_staff":
            details = {"targets": arg.get("targets"), "notified": result, "body": arg.get("body"),
                       "idempotency_key": arg.get("idempotency_key"), "team": arg.get("team"), "assignee": arg.get("assignee")}
            who = ", ".join(result) if isinstance(result, list) and result else "nobody"
            self.add("staff notice", _short(f"to {'/'.join(arg.get('targets') or [])} ({who}): {arg.get('body')}"), details, ev, at=at)
        elif name == "release_assignment":
            waiting = result if isinstance(result, list) else []
            text = "agent's slot released" + (f"; queued tickets told: {', '.join(waiting)}" if waiting else "")
            self.add("release", text, {"ticket_id": arg.get("input"), "queued_tickets_signalled": waiting}, ev, at=at)
        else:
            self.add("activity", _short(f"{name} → {result}"), {"activity": name, "input": arg, "result": result}, ev, at=at)

    def _activity_ended(self, ev: HistoryEvent, a: Any, how: str) -> None:
        name, arg = self._completed(ev, a.scheduled_event_id)
        failure = getattr(a, "failure", None)
        message = failure.message if failure is not None and failure.message else how
        self.add("activity failed", _short(f"{name} {how}: {message}"), {"activity": name, "input": arg, "message": message},
                 ev, at=_event_time(ev))

    def _on_activity_task_failed(self, ev: HistoryEvent, a: Any) -> None:
        self._activity_ended(ev, a, "failed")

    def _on_activity_task_timed_out(self, ev: HistoryEvent, a: Any) -> None:
        self._activity_ended(ev, a, "timed out")

    def _on_activity_task_canceled(self, ev: HistoryEvent, a: Any) -> None:
        self._activity_ended(ev, a, "canceled")

    # -- timers --

    def _on_timer_started(self, ev: HistoryEvent, a: Any) -> None:
        duration = a.start_to_fire_timeout.ToTimedelta()
        fires = self.now + duration
        entry = self.add("timer", f"timer {a.timer_id} set for {_secs(duration.total_seconds())} (until {fires.isoformat(timespec='seconds')})",
                         {"timer_id": a.timer_id, "seconds": duration.total_seconds(), "fires_at": fires.isoformat(), "waits_for": self.phase}, ev)
        self.timers[a.timer_id] = entry

    def _on_timer_fired(self, ev: HistoryEvent, a: Any) -> None:
        started = self.timers.get(a.timer_id)
        waits = started.details.get("waits_for") if started else None
        self.add("timer", f"timer {a.timer_id} fired" + (f" ({waits})" if waits else ""), {"timer_id": a.timer_id, "waits_for": waits},
                 ev, at=_event_time(ev))
        if waits == "survey expiry" and self.survey and self.survey.get("score") is None:
            self.survey["expired"] = True
            self.add("survey expired", "the survey expired unanswered", {"sent_at": self.survey.get("sent_at")}, ev, at=_event_time(ev))

    def _on_timer_canceled(self, ev: HistoryEvent, a: Any) -> None:
        started = self.timers.get(a.timer_id)
        waits = started.details.get("waits_for") if started else None
        self.add("timer", f"timer {a.timer_id} canceled: woken earlier" + (f" ({waits})" if waits else ""),
                 {"timer_id": a.timer_id, "waits_for": waits}, ev)

    # -- signals and updates --

    def _on_workflow_execution_signaled(self, ev: HistoryEvent, a: Any) -> None:
        self.pending_signals.append((ev, a.signal_name, _decode_all(a.input)))

    def _signal(self, ev: HistoryEvent, name: str, args: list[Any]) -> None:
        arg = args[0] if args else None
        received = _event_time(ev).isoformat()
        if name == "customer_message" and isinstance(arg, dict):
            event_id = arg.get("event_id") or ""
            details = {"body": arg.get("body"), "event_id": event_id or None, "received_at": received}
            if event_id and event_id in self.seen_events:
                details["duplicate"] = True
                self.add("customer message", _short(f"(delivered twice, ignored) {arg.get('body')}"), details, ev)
                return
            if event_id:
                self.seen_events.add(event_id)
            if self.v2:
                self.sla("customer_message")
            self.add("customer message", _short(f"{self.customer.get('id', 'customer')}: {arg.get('body')}"), details, ev)
        elif name == "assignment_available":
            self.add("signal", "a slot opened in the team (assignment_available)", {"signal": name, "received_at": received}, ev)
            if self.assignee is None:
                self.pending_reassign = "a slot opened in the team"
        elif name == "assignee_unavailable":
            self.add("signal", f"assignee {arg} went offline (assignee_unavailable)", {"signal": name, "agent": arg, "received_at": received}, ev)
            if arg and arg == self.assignee:
                self.pending_reassign = f"{arg} went offline"
        else:
            self.add("signal", f"signal {name}", {"signal": name, "args": args, "received_at": received}, ev)

    def _on_workflow_execution_update_accepted(self, ev: HistoryEvent, a: Any) -> None:
        req = a.accepted_request
        name = req.input.name
        args = _decode_all(req.input.args)
        cmd = args[0] if args and isinstance(args[0], dict) else {}
        details: dict[str, Any] = {"update": name, "request": cmd, "update_id": req.meta.update_id or a.protocol_instance_id}
        forced = f" (forced by {cmd.get('forced_by')})" if cmd.get("forced_by") else ""
        if name == "agent_reply":
            if self.v2:
                self.sla("agent_reply")
            elif not self.first_response_seen:
                self.first_response_seen = True
                self.sla("first_response")
            wait = " [waits for the customer: SLA paused]" if cmd.get("wait_for_customer") else ""
            entry = self.add("agent reply", _short(f"{cmd.get('agent')}{forced}: {cmd.get('body')}") + wait, details, ev)
        elif name == "resolve":
            self.sla("resolved")
            entry = self.add("resolve", _short(f"resolved by {cmd.get('agent')}{forced}: {cmd.get('note') or 'resolved'}"), details, ev)
        elif name == "reopen":
            self.reopen_count += 1
            self.sla("reopened")
            if self.survey and self.survey.get("score") is None:
                self.survey["cancelled"] = True
            self.phase = "sla"
            entry = self.add("reopen", _short(f"reopened by {cmd.get('by', 'customer')} (#{self.reopen_count}): {cmd.get('reason')}"), details, ev)
        elif name == "survey_answer":
            if self.survey is not None:
                self.survey.update(score=cmd.get("score"), comment=cmd.get("comment", ""), answered_at=self.now.isoformat())
            entry = self.add("survey answered", _short(f"score {cmd.get('score')}" + (f": {cmd.get('comment')}" if cmd.get("comment") else "")),
                             details, ev)
        elif name == "hold":
            if cmd.get("release"):
                entry = self.add("hold", _short(f"released from hold by {cmd.get('agent')}" + (f": {cmd.get('reason')}" if cmd.get("reason") else "")),
                                 details, ev)
            else:
                entry = self.add("hold", _short(f"on hold by {cmd.get('agent')}: {cmd.get('reason') or '(no reason)'} [SLA paused]"), details, ev)
        elif name == "set_priority":
            before, self.priority = self.priority, cmd.get("priority")
            details.update({"from": before, "to": self.priority, "by": cmd.get("by"), "rule_id": f"manual:{cmd.get('by')}"})
            entry = self.add("priority change", _short(f"{before} → {self.priority} set by {cmd.get('by')}"
                                                        + (f": {cmd.get('reason')}" if cmd.get("reason") else "")), details, ev)
        elif name == "escalate":
            before = self.tier
            if self.tier != TIERS[-1]:
                self.tier = TIERS[TIERS.index(self.tier) + 1]
            self.pending_tier = None
            details.update({"from": before, "to": self.tier, "rule_id": f"manual:{cmd.get('by')}"})
            entry = self.add("escalation", _short(f"tier {before} → {self.tier} by {cmd.get('by')}: {cmd.get('reason')}"
                                                   + (f" (team {cmd.get('team')})" if cmd.get("team") else "")), details, ev)
        else:
            entry = self.add("update", _short(f"{name} {cmd or args}"), details, ev)
        self.updates[details["update_id"]] = entry

    def _on_workflow_execution_update_completed(self, ev: HistoryEvent, a: Any) -> None:
        entry = self.updates.get(a.meta.update_id)
        if a.outcome.HasField("failure"):
            message = a.outcome.failure.message
            if entry is not None:
                entry.details["failure"] = message
            self.add("update failed", _short(f"{entry.details['update'] if entry else 'update'} failed: {message}"),
                     {"update_id": a.meta.update_id, "message": message}, ev)
        elif entry is not None:
            entry.details["result"] = _decode_first(a.outcome.success)

    # -- search attributes (status changes) and the end --

    def _on_upsert_workflow_search_attributes(self, ev: HistoryEvent, a: Any) -> None:
        values = {name: _decode_first([p]) for name, p in a.search_attributes.indexed_fields.items()}
        for name, value in values.items():
            before = self.sa.get(name)
            self.sa[name] = value
            if name == "TicketStatus" and value != self.status:
                last = self.sla_events[-1].kind if self.sla_events else ""
                if self.v4 and value == "resolved" and last != "resolved":
                    self.sla("resolved")  # resolved without an update: by the FAQ bot or auto-close
                elif self.v4 and value == "open" and self.status in DONE and last != "reopened":
                    self.sla("reopened")  # a low score (recovery) or a message in the reopen window
                    self.reopen_count += 1
                    self.add("reopen", f"reopened (#{self.reopen_count}) without an agent: service recovery or a "
                                       "customer message in the reopen window", {"from": self.status}, ev)
                self.status = str(value)
                self.sla("status", self.status)
                if self.status == "closed":
                    self._closed(ev)
                else:
                    self.add("status", f"status {before or '?'} → {self.status}", {"from": before, "to": self.status}, ev)
            elif name == "Priority" and value != self.priority and value is not None:
                before_p, self.priority = self.priority, str(value)
                details = {"from": before_p, "to": self.priority}
                if self.pending_raise and self.pending_raise[0] == value:
                    details["rule_id"] = "escalation"
                    details["escalation_rule"] = self.pending_raise[1]
                    text = f"{before_p} → {self.priority} raised by escalation rule {self.pending_raise[1]}"
                    self.pending_raise = None
                else:
                    text = f"{before_p} → {self.priority}"
                self.add("priority change", text, details, ev)
            elif name == "RulesetVersion" and value != before:
                self.add("ruleset", f"pinned to ruleset version {value}", {"ruleset_version": value}, ev)
            elif name == "SlaBreached" and value and not before:
                self.add("visibility", "SlaBreached set: the ticket shows as breached in `ticketflow list --breached`",
                         {"SlaBreached": True}, ev)

    def _closed(self, ev: HistoryEvent) -> None:
        survey = self.survey
        if survey is None:
            note = "no survey"
        elif survey.get("score") is not None:
            note = f"survey score {survey['score']}"
        elif survey.get("expired"):
            note = "survey expired unanswered"
        else:
            note = "survey unanswered"
        self.add("close", f"closed ({note})", {"survey": survey, "reopen_count": self.reopen_count}, ev)

    def _on_signal_external_workflow_execution_initiated(self, ev: HistoryEvent, a: Any) -> None:
        target = a.workflow_execution.workflow_id
        self.add("signal sent", f"told queued ticket {target} a slot opened ({a.signal_name})",
                 {"to": target, "signal": a.signal_name}, ev)

    def _on_workflow_execution_completed(self, ev: HistoryEvent, a: Any) -> None:
        result = _decode_first(a.result)
        self.result = result if isinstance(result, dict) else None
        self.outcome = "completed"
        self.end = self.now
        final = (self.result or {}).get("status", self.status)
        self.add("completed", f"workflow completed (ticket {final})", {"status": final}, ev)

    def _ended(self, ev: HistoryEvent, outcome: str, message: str) -> None:
        self.outcome = outcome
        self.end = _event_time(ev)
        self.add("ended", _short(f"workflow {outcome.replace('_', ' ')}" + (f": {message}" if message else "")),
                 {"outcome": outcome, "message": message}, ev, at=self.end)

    def _on_workflow_execution_failed(self, ev: HistoryEvent, a: Any) -> None:
        self._ended(ev, "failed", a.failure.message)

    def _on_workflow_execution_terminated(self, ev: HistoryEvent, a: Any) -> None:
        self._ended(ev, "terminated", a.reason)

    def _on_workflow_execution_canceled(self, ev: HistoryEvent, a: Any) -> None:
        self._ended(ev, "canceled", "")

    def _on_workflow_execution_timed_out(self, ev: HistoryEvent, a: Any) -> None:
        self._ended(ev, "timed_out", "")

    def _on_workflow_execution_continued_as_new(self, ev: HistoryEvent, a: Any) -> None:
        self._ended(ev, "continued_as_new", f"new run {a.new_execution_run_id}")

    # -- after the walk --

    @property
    def code_version(self) -> str:
        return "v5" if self.v5 else "v4" if self.v4 else "v3" if self.v3 else "v2" if self.v2 else "v1"

    def crossings(self, end: datetime) -> list[Entry]:
        """SLA warnings and breaches at the instant each clock crossed its threshold, found the way
        the workflow finds them (v1 workflows acted on breaches only)."""
        if not self.targets_timeline:
            return []
        first = self.targets_timeline[0][0]
        times = {t for t, _ in self.targets_timeline}
        times |= {sla_clock.parse_time(e.at) for e in self.sla_events}
        bounds = sorted(t for t in times | {end} if first <= t <= end)
        fired: set[str] = set()
        out: list[Entry] = []
        for i, start in enumerate(bounds):
            policy = self.targets_at(start)
            if not policy:
                continue
            acting = policy if self.v2 else {**policy, "warnings": []}
            stop = bounds[i + 1] if i + 1 < len(bounds) else None
            now = start
            for _ in range(10_000):
                clocks = self.clocks_at(policy, now)
                for t in sla_clock.reached(clocks, acting, fired):
                    fired.add(t.key)
                    clock = next(c for c in clocks if c.metric == t.metric)
                    breach = t.fraction >= 1.0
                    at = self._crossed_at(policy, t, now)
                    text = (f"{t.metric} breached: target {_secs(clock.target_seconds)}" if breach
                            else f"{t.metric} at {t.fraction:.0%} of its {_secs(clock.target_seconds)} target")
                    if t.cycle:
                        text += f" (cycle {t.cycle})"
                    out.append(Entry(at=at, kind="sla breach" if breach else "sla warning", summary=text,
                                     details={"metric": t.metric, "cycle": t.cycle, "fraction": t.fraction, "key": t.key,
                                              "target_seconds": clock.target_seconds, "breached_at": clock.breached_at,
                                              "recomputed": True}))
                if stop is None:
                    break
                nxt = sla_clock.next_threshold_at(clocks, acting, fired, now)
                if nxt is None or nxt >= stop:
                    break
                now = max(nxt, now + timedelta(microseconds=1))
        return out

    def _crossed_at(self, policy: dict[str, Any], t: sla_clock.Threshold, now: datetime) -> datetime:
        """The exact instant a clock passed `fraction` of its target: the breach instant of the same
        clock with every target of that metric scaled by the fraction (`now` is up to a second
        late, since `reached` compares whole seconds)."""
        def scaled(p: dict[str, Any]) -> dict[str, Any]:
            return {**p, t.metric: float(p[t.metric]) * t.fraction} if p.get(t.metric) else p

        events = [dataclasses.replace(e, policy=scaled(e.policy)) if e.policy else e for e in self.sla_events]
        clock = next((c for c in self.clocks_at(scaled(policy), now, events) if c.metric == t.metric), None)
        if clock is None or clock.breached_at is None or clock.cycle != t.cycle:
            return now
        return min(sla_clock.parse_time(clock.breached_at), now)

    def _next_threshold(self, start: datetime, fires: datetime, crossings: list[Entry]) -> str | None:
        """The threshold the workflow's timer set at `start` waited for, if it fires at `fires`."""
        policy = self.targets_at(start)
        if not policy:
            return None
        acting = policy if self.v2 else {**policy, "warnings": []}
        fired = {c.details["key"] for c in crossings if c.at <= start}
        best: tuple[datetime, str] | None = None
        for c in self.clocks_at(policy, start):
            if not c.active or c.due is None:
                continue
            for f in sla_clock.thresholds_of(acting):
                t = sla_clock.Threshold(c.metric, c.cycle, f)
                if t.key in fired:
                    continue
                left = f * c.target_seconds - c.elapsed_seconds
                at = start if left <= 0 else sla_clock.calendar_of(policy).add_business_seconds(start, left)
                label = f"{c.metric} {'breach' if f >= 1 else f'{f:.0%}'}" + (f" (cycle {c.cycle})" if c.cycle else "")
                if best is None or at < best[0]:
                    best = (at, label)
                break
        if best is None or abs((best[0] - fires).total_seconds()) > 2:
            return None
        return f"next SLA threshold: {best[1]}"

    def label_timers(self, crossings: list[Entry]) -> None:
        """Say what each SLA-loop timer waited for: the threshold or follow-up due when it fires."""
        for entry in self.entries:
            if entry.kind != "timer" or "fires_at" not in entry.details:
                continue
            if entry.details.get("waits_for") != "sla":
                entry.summary += f": {entry.details.get('waits_for')}"
                continue
            fires = sla_clock.parse_time(entry.details["fires_at"])
            what = self._next_threshold(entry.at, fires, crossings)
            if what is None and any(abs((f - fires).total_seconds()) <= 2 for f in self.followups):
                what = "escalation follow-up"
            what = what or "follow-up or reassignment deadline"
            entry.details["waits_for"] = what
            entry.summary += f": {what}"
        labels = {e.details.get("timer_id"): e.details.get("waits_for") for e in self.entries
                  if e.kind == "timer" and "fires_at" in e.details}
        for entry in self.entries:
            if entry.kind == "timer" and "fires_at" not in entry.details and entry.details.get("waits_for") == "sla":
                what = labels.get(entry.details.get("timer_id"))
                entry.details["waits_for"] = what
                entry.summary = entry.summary.replace("(sla)", f"({what})")


def _clock_dicts(clocks: list[Any]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(c) for c in clocks]


def build_timeline(history: WorkflowHistory, at: datetime | None = None) -> Timeline:
    """The timeline of one TicketWorkflow history, with SLA clocks at every entry.

    `at` is the instant for the closing clocks of a ticket still running (default: its last
    event); a completed ticket's closing clocks are at its completion, as the workflow's own
    result computed them.
    """
    if not history.events:
        raise TimelineError(f"{history.workflow_id}: empty history")
    b = _Builder(history)
    b.run()
    if b.wf_now is None and b.last_time is None:
        raise TimelineError(f"{history.workflow_id}: no events with a time")
    last = max(t for t in (b.wf_now, b.last_time) if t is not None)
    if b.outcome == "running":
        as_of = at or last
    else:
        as_of = b.end or last
    # activities scheduled and not finished yet: say so, they are part of what the ticket waits on
    for scheduled_id, (name, arg) in sorted(b.activities.items()):
        ev = next((e for e in history.events if e.event_id == scheduled_id), None)
        what = arg.get("kind") if isinstance(arg, dict) and name == "send_message" else None
        b.add("activity pending", f"{name}{f' ({what})' if what else ''} scheduled, not completed when the history was read",
              {"activity": name, "input": arg}, ev, at=_event_time(ev) if ev is not None else last)

    # signals the server took but no workflow task has handled yet: shown, not yet counted
    for sig_ev, name, args in b.pending_signals:
        arg = args[0] if args else None
        body = arg.get("body") if isinstance(arg, dict) else arg
        b.add("signal pending", _short(f"{name} received, not handled by the workflow yet: {body}"),
              {"signal": name, "args": args}, sig_ev, at=_event_time(sig_ev))

    crossings = b.crossings(as_of)
    b.label_timers(crossings)
    entries = list(b.entries)
    for c in sorted(crossings, key=lambda e: e.at):
        index = next((i for i, e in enumerate(entries) if e.at > c.at), len(entries))
        entries.insert(index, c)
    for seq, entry in enumerate(entries, 1):
        entry.seq = seq
        targets = b.targets_at(entry.at)
        entry.clocks = _clock_dicts(b.clocks_at(targets, entry.at)) if targets else []

    final_targets = b.targets_at(as_of)
    clocks = _clock_dicts(b.clocks_at(final_targets, as_of)) if final_targets else []
    return Timeline(
        ticket_id=b.ticket_id,
        workflow_id=history.workflow_id,
        run_id=history.run_id,
        task_queue=b.task_queue,
        code_version=b.code_version,
        patches=list(b.patches),
        outcome=b.outcome,
        status=b.status,
        as_of=as_of,
        entries=entries,
        clocks=clocks,
        sla_events=list(b.sla_events),
        ruleset_version=b.ruleset_version,
        priority=b.priority,
        category=b.category,
        team=b.team,
        assignee=b.assignee,
        escalation_tier=b.tier,
        reopen_count=b.reopen_count,
        sla_policy=b.sla_policy,
        sla_targets=dict(b.targets),
        channel=b.channel,
        subject=b.subject,
        customer=b.customer,
        result=b.result,
    )
