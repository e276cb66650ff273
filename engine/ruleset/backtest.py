"""Backtest: what a candidate ruleset would have decided for past tickets, without touching them.

For each ticket, the inputs recorded when it opened (its workflow input) go through the candidate's
stages exactly as a live ticket would (engine.ruleset.stages); the candidate's decisions are
compared with the decisions the ticket really got. The ticket's recorded SLA events are replayed
through the pure SLA clock under the candidate's policy, so breaches that would appear or
disappear show up too. Nothing here talks to a live workflow.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from engine.intake import raw_snapshot
from engine.models import TicketEvent, TicketState
from engine.ruleset.calendars import policies_with_calendars
from engine.ruleset.compiler import Ruleset
from engine.ruleset.stages import evaluate_staged
from engine.sla import sla_state

# what is compared: (label, group, action)
FIELDS = (
    ("category", "classification", "category"),
    ("priority", "priority", "priority"),
    ("team", "routing", "team"),
    ("sla_policy", "sla_policy", "policy"),
    ("survey", "survey", "kind"),
)


@dataclass
class PastTicket:
    """What a backtest needs of one past ticket: its opening event and what it became."""

    ticket_id: str
    event: TicketEvent
    state: TicketState
    until: datetime  # the instant its clocks are read at: close time, or now for an open ticket


@dataclass
class TicketChange:
    ticket_id: str
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # label -> (recorded, candidate)
    rules: dict[str, tuple[str, str]] = field(default_factory=dict)  # label -> (recorded rule, candidate rule)
    breaches_added: list[str] = field(default_factory=list)
    breaches_removed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes or self.breaches_added or self.breaches_removed)


@dataclass
class BacktestReport:
    candidate: str
    tickets: int
    per_ticket: list[TicketChange]
    field_changes: dict[str, Counter] = field(default_factory=dict)  # label -> Counter of "old -> new"
    breaches_added: Counter = field(default_factory=Counter)  # metric -> count
    breaches_removed: Counter = field(default_factory=Counter)

    @property
    def changed(self) -> list[TicketChange]:
        return [t for t in self.per_ticket if t.changed]


def _recorded(state: TicketState, group: str, action: str) -> tuple[Any, str]:
    """The first decision of the group the ticket got (later ones are escalations or re-choices)."""
    for d in state.decisions:
        if d.group == group and not d.rule_id.startswith("manual:") and d.rule_id != "escalation":
            return d.actions.get(action), d.rule_id
    return None, ""


def _breached(events: Any, policy: dict[str, Any] | None, until: datetime) -> set[str]:
    if not policy:
        return set()
    return {c.metric for c in sla_state(events, policy, until) if c.state == "breached"}


def backtest(candidate: Ruleset, tickets: Iterable[PastTicket]) -> BacktestReport:
    policies = policies_with_calendars(candidate)
    report = BacktestReport(candidate=candidate.version, tickets=0, per_ticket=[],
                            field_changes={label: Counter() for label, _, _ in FIELDS})
    for past in tickets:
        report.tickets += 1
        staged = {d.group: d for d in evaluate_staged(candidate, raw_snapshot(past.event))}
        change = TicketChange(past.ticket_id)
        for label, group, action in FIELDS:
            old, old_rule = _recorded(past.state, group, action)
            new_decision = staged.get(group)
            new = new_decision.result.actions.get(action) if new_decision else None
            if group == "survey":  # "no survey" and "survey of kind X" are what ops care about
                old = old if _recorded(past.state, "survey", "survey")[0] is not False else "none"
                new = new if not new_decision or new_decision.result.actions.get("survey") is not False else "none"
            if old != new and not (group == "survey" and old is None):
                change.changes[label] = (old, new)
                change.rules[label] = (old_rule, new_decision.rule_id if new_decision else "")
                report.field_changes[label][f"{old} → {new}"] += 1
        # SLA: the recorded events, read under the recorded and the candidate policy
        new_policy_name = staged["sla_policy"].result.actions.get("policy") if "sla_policy" in staged else None
        before = _breached(past.state.sla_events, past.state.sla_targets or None, past.until)
        after = _breached(_without_policy_events(past.state.sla_events), policies.get(new_policy_name or ""), past.until)
        change.breaches_added = sorted(after - before)
        change.breaches_removed = sorted(before - after)
        report.breaches_added.update(change.breaches_added)
        report.breaches_removed.update(change.breaches_removed)
        report.per_ticket.append(change)
    return report


def _without_policy_events(events: Any) -> list[Any]:
    # Recorded policy switches carry the recorded targets; under the candidate, its own policy rules.
    return [e for e in events if e.kind != "policy"]
