"""Backtest: what a candidate ruleset would have decided for past tickets, without touching them.

For each ticket, the inputs recorded when it opened (its workflow input) go through the candidate's
stages exactly as a live ticket would (engine.ruleset.stages); the candidate's decisions are
compared with the decisions the ticket really got. The ticket's recorded SLA events are replayed
through the pure SLA clock under the candidate's policy, so breaches that would appear or
disappear show up too. Nothing here talks to a live workflow.

A past ticket is first reduced to a `Recorded`: only what the comparison reads (the raw snapshot
of its opening event, the first recorded decision per compared field, its SLA events, targets and
`until`, the breaches recorded under them). The backtest index (engine.backtestindex) stores
exactly that, so an indexed backtest and one straight from histories run the same comparison code.

Work whose result cannot differ is skipped, never approximated: the SLA clock is recomputed only
for a ticket with SLA events whose candidate policy is not, as data, the policy it ran under (else
the answer is the one the index computed, by the same pure function from the same events); only
the compared groups are evaluated, plus any group whose actions feed a later stage's snapshot
(stage_plan), since a group reads nothing but that snapshot; and decisions come without a trace
(Ruleset.decider), which a backtest never shows.
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from engine.intake import raw_snapshot
from engine.models import SlaEvent, TicketEvent, TicketState
from engine.ruleset.calendars import policies_with_calendars
from engine.ruleset.compiler import GroupOutcome, GroupResult, Ruleset
from engine.ruleset.fields import GROUP_ACTIONS, build_snapshot
from engine.ruleset.stages import STAGES, apply_to_snapshot, deciding_rule, stage_trigger
from engine.sla import Calendar, calendar_of, sla_state

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
    # What the workflow added to the snapshot for the survey decision compared (the last one),
    # read from the history: on v4 tickets, who resolved it and the `days_since_survey` activity's
    # answer (engine.workflows.aftercare). Empty for older tickets, whose survey saw neither.
    survey_inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Recorded:
    """One past ticket reduced to what the comparison reads; built by `recorded_of`, or read back
    from the backtest index (which is why everything here is plain JSON data)."""

    ticket_id: str
    raw: dict[str, Any]  # engine.intake.raw_snapshot of the opening event
    decisions: Sequence[Sequence[Any]]  # (recorded value, rule id) per FIELDS entry, in its order
    breaches: frozenset[str]  # recorded: the recorded events under the recorded targets
    # What the candidate's clock gives when its policy is exactly the recorded targets (same key):
    # the recorded events without their policy switches, under those targets. Computed when
    # indexing, so an unchanged policy costs no SLA recompute. None: recompute.
    same_policy_breaches: frozenset[str] | None = None
    targets_key: str = ""  # policy_key(recorded targets), with same_policy_breaches
    # No SLA event recorded (an open ticket read from a file is compared without clocks): no clock
    # ever starts, so no policy can breach.
    no_clock: bool = False
    snapshot: dict[str, Any] | None = None  # build_snapshot(raw), when the index stored it
    # group -> fields its stage's snapshot had beyond the opening input and earlier decisions, as
    # recorded (survey: status, resolved_by, customer.days_since_survey); see `stage_inputs`
    stage_inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The clock's inputs, for a recompute: given, or loaded on first use (the index decodes them
    # only for a backtest whose policy differs from the recorded one).
    sla_events: list[SlaEvent] = field(default_factory=list)
    sla_targets: dict[str, Any] = field(default_factory=dict)
    until: datetime | None = None
    load_clock: Callable[[], tuple[list[SlaEvent], dict[str, Any], datetime]] | None = field(default=None, repr=False)

    def clock_inputs(self) -> tuple[list[SlaEvent], dict[str, Any], datetime]:
        if self.load_clock is not None:
            self.sla_events, self.sla_targets, self.until = self.load_clock()
            self.load_clock = None
        assert self.until is not None
        return self.sla_events, self.sla_targets, self.until


def policy_key(policy: dict[str, Any] | None) -> str:
    """A fingerprint of a policy as data (targets, pause_on, calendar ...). Two policies with the
    same key give the same clocks for the same events; a mere re-spelling (1 vs 1.0) gives another
    key, which only costs a recompute."""
    if not policy:
        return ""
    text = json.dumps(policy, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


@dataclass(slots=True)
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
    """The decision of the group the ticket is compared on: the first one (later ones are
    escalations or re-choices), except for the survey: the last one, made at the resolution that
    stood, whose inputs the history holds (PastTicket.survey_inputs)."""
    decisions = reversed(state.decisions) if group == "survey" else state.decisions
    for d in decisions:
        if d.group == group and not d.rule_id.startswith("manual:") and d.rule_id != "escalation":
            return d.actions.get(action), d.rule_id
    return None, ""


def stage_inputs(past: PastTicket) -> dict[str, dict[str, Any]]:
    """Per compared group evaluated after the ticket opened, the fields its snapshot had that the
    opening input lacks, as far as the history records them. Without them a backtest would
    compare the recorded survey decision (made on a resolved ticket, knowing who resolved it and
    when the customer was last surveyed) with the candidate's on the ticket as it arrived, and
    report changes that no rules edit caused. Fields the workflow computes at that moment but
    does not record (age, agents' edits of tags or priority) are not rebuilt: a survey rule
    reading them sees the values the ticket opened with."""
    if not any(d.group == "survey" for d in past.state.decisions):
        return {}
    return {"survey": {"status": "resolved", **past.survey_inputs}}


def _breached(events: Any, policy: dict[str, Any] | None, until: datetime, calendar: Calendar | None = None) -> set[str]:
    """`calendar`: the policy's own, already built (valid only for events without policy switches)."""
    if not policy:
        return set()
    return {c.metric for c in sla_state(events, policy, until, calendar) if c.state == "breached"}


def _without_policy_events(events: Any) -> list[Any]:
    # Recorded policy switches carry the recorded targets; under the candidate, its own policy rules.
    return [e for e in events if e.kind != "policy"]


def recorded_of(past: PastTicket, same_policy: bool = False) -> Recorded:
    """Reduce a past ticket to what the comparison reads. `same_policy` also computes the
    breaches under an unchanged policy (worth it only when stored for later backtests)."""
    decisions = []
    for _label, group, action in FIELDS:
        old, rule = _recorded(past.state, group, action)
        if group == "survey":  # "no survey" and "survey of kind X" are what ops care about
            old = old if _recorded(past.state, "survey", "survey")[0] is not False else "none"
        decisions.append((old, rule))
    events, targets = past.state.sla_events, past.state.sla_targets or {}
    rec = Recorded(past.ticket_id, raw_snapshot(past.event), tuple(decisions),
                   frozenset(_breached(events, targets or None, past.until)), no_clock=not events,
                   stage_inputs=stage_inputs(past), sla_events=events, sla_targets=targets, until=past.until)
    if same_policy:
        rec.same_policy_breaches = frozenset(_breached(_without_policy_events(events), targets, past.until))
        rec.targets_key = policy_key(targets)
    return rec


def _sets_snapshot(group: str) -> bool:
    """Whether an action this group may take is written into the snapshot later stages read.
    Asked of stages.apply_to_snapshot itself rather than copied from it, so a change there counts."""
    for action in GROUP_ACTIONS.get(group) or {"?": None}:
        probe: dict[str, Any] = {}
        apply_to_snapshot(probe, GroupResult(group, [], {action: ["probe"]}, []))
        if probe:
            return True
    return False


StagePlan = tuple[tuple[str, tuple[str, ...]], ...]  # (trigger field or "", groups evaluated)


def stage_plan(ruleset: Ruleset, only: Iterable[str] | None = None) -> StagePlan:
    """evaluate_staged's stages for this ruleset, each with its trigger field. With `only`: just
    the groups whose results are read, plus those that feed a later snapshot; the others cannot
    change what the read ones decide (a group reads the snapshot, nothing else)."""
    wanted = None if only is None else set(only)
    plan = []
    for _stage, groups in STAGES:
        present = tuple(g for g in groups if ruleset.has_group(g)
                        and (wanted is None or g in wanted or _sets_snapshot(g)))
        if present:
            plan.append((stage_trigger(groups[0]), present))
    return tuple(plan)


def staged_from_snapshot(ruleset: Ruleset, snapshot: dict[str, Any], plan: StagePlan | None = None,
                         inputs: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, GroupOutcome]:
    """evaluate_staged's logic (same stages, triggers and snapshot updates) on a snapshot built
    beforehand, so an indexed backtest does not score sentiment again. Decisions come without a
    trace (`Ruleset.decider`, one generated function per stage): a backtest compares actions and
    names the deciding rule, and never shows the trace. `snapshot` is changed in place (later
    stages see earlier results), as evaluate_staged does with its own. `inputs`: per group,
    fields its stage's snapshot gets first (Recorded.stage_inputs)."""
    return _Stager(ruleset, plan if plan is not None else stage_plan(ruleset)).run(snapshot, inputs)


class _Stager:
    """staged_from_snapshot for many tickets and one ruleset: each stage's decider is looked up
    once, and what each (shared, read-only) outcome writes into the snapshot is worked out once."""

    __slots__ = ("stages", "updates")

    def __init__(self, ruleset: Ruleset, plan: StagePlan):
        self.stages = tuple((trigger, groups, ruleset.decider(groups)) for trigger, groups in plan)
        self.updates: dict[GroupOutcome, _Updates] = {}

    def run(self, snapshot: dict[str, Any], inputs: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, GroupOutcome]:
        out: dict[str, GroupOutcome] = {}
        updates = self.updates
        for trigger, groups, decide in self.stages:
            if inputs:
                for group in groups:
                    given = inputs.get(group)
                    if given:
                        snapshot.update(given)
            if trigger and snapshot.get(trigger) in (None, ""):
                continue
            # the stage's groups all read the snapshot as it was: decide() has evaluated every
            # one of them before the first update below
            for outcome in decide(snapshot):
                out[outcome.group] = outcome
                fields = updates.get(outcome)
                if fields is None:
                    fields = updates[outcome] = _updates_of(outcome)
                if fields is _MERGES:
                    apply_to_snapshot(snapshot, outcome)
                elif fields:
                    snapshot.update(fields)
        return out


# What an outcome writes into the snapshot, worked out once per outcome (outcomes are shared and
# read-only, GroupOutcome): the fields it sets, or _MERGES when what it writes depends on the
# snapshot (tags are added to the ticket's own) and apply_to_snapshot must run each time.
_MERGES: dict[str, Any] = {"(merges)": None}
_Updates = dict[str, Any]


def _updates_of(outcome: GroupOutcome) -> _Updates:
    # Asked of apply_to_snapshot itself (on an empty snapshot), so a change there counts here.
    probe: dict[str, Any] = {}
    apply_to_snapshot(probe, outcome)
    return _MERGES if "tags" in probe else probe


@contextmanager
def gc_paused() -> Iterator[None]:
    """For loops over thousands of tickets: they allocate many small objects and no reference
    cycles, yet each allocation burst makes the cyclic collector rescan everything alive (about
    half of an indexed backtest's time, measured). On the way out, what was allocated meanwhile is
    moved to the oldest generation (gc.freeze then gc.unfreeze: a list splice, no scan) instead
    of being scanned by a young-generation collection at the next allocation (3-5 ms per
    thousand tickets, measured): it is the result the caller keeps. Nothing is leaked: any
    cycle among those objects is collected by the next full collection."""
    enabled = gc.isenabled()
    # unfreeze() would also release what a caller froze on purpose: then leave the young alone
    promote = gc.get_freeze_count() == 0
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if promote:
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def _verdict(candidate: Ruleset, group: str, action: str, result: GroupOutcome | None) -> tuple[Any, str]:
    """What the candidate decided for one compared field, and the rule an auditor should read."""
    if result is None:
        return None, ""
    new = result.actions.get(action)
    if group == "survey" and result.actions.get("survey") is False:
        new = "none"
    return new, deciding_rule(candidate, group, list(result.rule_ids))


def backtest(candidate: Ruleset, tickets: Iterable[PastTicket | Recorded]) -> BacktestReport:
    with gc_paused():
        return _backtest(candidate, tickets)


def _backtest(candidate: Ruleset, tickets: Iterable[PastTicket | Recorded]) -> BacktestReport:
    policies = policies_with_calendars(candidate)
    keys = {name: policy_key(p) for name, p in policies.items()}
    calendars = {name: calendar_of(p) for name, p in policies.items()}  # parsed once, not per ticket
    plan = stage_plan(candidate, only={group for _, group, _ in FIELDS})
    report = BacktestReport(candidate=candidate.version, tickets=0, per_ticket=[],
                            field_changes={label: Counter() for label, _, _ in FIELDS})
    stager = _Stager(candidate, plan)
    # Outcomes are shared (GroupOutcome): the value and deciding rule one gives a compared field
    # are worked out once per outcome, not per ticket.
    verdicts: dict[tuple[GroupOutcome | None, str], tuple[Any, str]] = {}
    for item in tickets:
        rec = item if isinstance(item, Recorded) else recorded_of(item)
        report.tickets += 1
        # the stored snapshot is copied: stages write to it
        snapshot = build_snapshot(rec.raw) if rec.snapshot is None else dict(rec.snapshot)
        staged = stager.run(snapshot, rec.stage_inputs)
        change = TicketChange(rec.ticket_id)
        for (label, group, action), (old, old_rule) in zip(FIELDS, rec.decisions):
            result = staged.get(group)
            found = verdicts.get((result, action))
            if found is None:
                found = verdicts[(result, action)] = _verdict(candidate, group, action, result)
            new, new_rule = found
            if old != new and not (group == "survey" and old is None):
                change.changes[label] = (old, new)
                change.rules[label] = (old_rule, new_rule)
                report.field_changes[label][f"{old} → {new}"] += 1
        # SLA: the recorded events, read under the recorded and the candidate policy
        name = staged["sla_policy"].actions.get("policy") if "sla_policy" in staged else None
        policy = policies.get(name or "")
        before = rec.breaches
        if not policy or rec.no_clock:
            after: frozenset[str] | set[str] = frozenset()
        elif rec.same_policy_breaches is not None and keys[name] == rec.targets_key:
            after = rec.same_policy_breaches  # same events, same policy, same pure function
        else:
            events, _, until = rec.clock_inputs()
            after = _breached(_without_policy_events(events), policy, until, calendars[name])
        if after != before:
            change.breaches_added = sorted(after - before)
            change.breaches_removed = sorted(before - after)
            report.breaches_added.update(change.breaches_added)
            report.breaches_removed.update(change.breaches_removed)
        report.per_ticket.append(change)
    return report
