"""SLA clocks as a pure fold over ticket events.

`sla_state(events, policy, now)` is the one function the workflow (to set its timer), `show`, the
audit and the backtest use, so every place gives the same answer for the same events.

Metrics and what moves them:
- first_response: from `opened` to the first `agent_reply` (one cycle).
- next_reply: from each `customer_message` that waits for an answer to the next `agent_reply`
  (a new cycle each time; elapsed starts at zero per cycle).
- periodic_update: the customer hears from us at least this often while unresolved: from
  `opened`, restarted by every `agent_reply` or `progress_update`.
- resolution: from `opened` to `resolved`; `reopened` resumes it with the elapsed time kept.
A clock counts business time on the policy's calendar (24x7 when it has none) and stands still
while the status is one of the policy's `pause_on` statuses. A `policy` event switches targets
(and calendar) at that instant: elapsed time is kept, or restarted when the new policy says
`on_change: restart`. A breach is the instant elapsed time passed the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any, Iterable, Protocol

from engine.calendar import ALWAYS_OPEN, calendar_from_dict
from engine.models import SlaClock, SlaEvent, TicketState

METRIC_ORDER = ("first_response", "next_reply", "periodic_update", "resolution")
DEFAULT_WARNINGS = (0.5, 0.75, 0.9)


class Calendar(Protocol):
    def business_seconds(self, start: datetime, end: datetime) -> float: ...

    def add_business_seconds(self, start: datetime, seconds: float) -> datetime: ...


def calendar_of(policy: dict[str, Any]) -> Calendar:
    spec = policy.get("calendar")
    return calendar_from_dict(spec) if isinstance(spec, dict) else ALWAYS_OPEN


@dataclass
class _Clock:
    active: bool = False
    done: bool = False
    started: bool = False
    cycle: int = 0
    elapsed: float = 0.0
    breached_at: datetime | None = None


_first = itemgetter(0)


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def sla_state(
    events: Iterable[SlaEvent],
    policy: dict[str, Any],
    now: datetime,
    calendar: Calendar | None = None,
    legacy: bool = False,
) -> list[SlaClock]:
    """Every clock the policy has a target for, as it stands at `now` (events after it ignored).

    `policy` is the ticket's policy now. When the events record policy switches, the first one
    recorded also governs the moments before it (the few milliseconds between `opened` and the
    routing decision): counting them on a later policy's calendar would move a breach that
    happened under the first policy by that much, e.g. open time on a 7-day calendar that was a
    lunch break on the calendar in force.

    A clock whose elapsed time reaches its target exactly at `now` is breached at `now`: the
    workflow's timer fires at that instant and acts on the breach (`reached`), so the state says
    so too. An event at that same instant that stops the clock (a reply at the deadline) is in
    time: only running past the target breaches it then.

    Time is counted in whole microseconds, so a clock lands on its target exactly: in float
    seconds, 9479.866999 + 1320.133001 falls short of 10800 and a timer firing at the due instant
    would find the clock a hair under its target. Shown in whole seconds: elapsed truncated, and
    remaining the target less that, so the two always add up to the target.

    `legacy=True` is how workflows before the `sla-first-policy-v5` patch counted (`policy`
    governs the moments before the first switch; float seconds; reaching the target exactly is
    not yet a breach; remaining truncated on its own), which the replay of their histories must
    keep.
    """
    timeline = sorted([(parse_time(e.at), e) for e in events], key=_first)
    if not legacy:
        first_policy = next((e.policy for at, e in timeline if e.kind == "policy" and e.policy and at <= now), None)
        if first_policy is not None:
            policy = first_policy
    cal: Calendar = calendar or calendar_of(policy)
    # legacy: elapsed and targets in float / int seconds; else integer microseconds
    unit = 1 if legacy else 1_000_000

    def targets_of(p: dict[str, Any]) -> dict[str, int]:
        if legacy:
            return {m: int(p[m]) for m in METRIC_ORDER if p.get(m)}
        return {m: round(float(p[m]) * unit) for m in METRIC_ORDER if p.get(m)}

    def span_of(start: datetime, end: datetime) -> float:
        span = cal.business_seconds(start, end)
        return span if legacy else round(span * unit)

    targets = targets_of(policy)
    pause_on = set(policy.get("pause_on", ()))
    clocks = {m: _Clock() for m in METRIC_ORDER}
    paused = False
    status = ""
    resolved = False
    last: datetime | None = None

    def advance(until: datetime, reaching: bool = False) -> None:
        """Count business time up to `until`; `reaching`: reaching a target exactly breaches it
        (also with no time to count, when an event at `until` left a clock at its target)."""
        if last is None or until < last or (until == last and not reaching) or paused:
            return
        span = span_of(last, until)
        for metric, clock in clocks.items():
            if not clock.active or metric not in targets:
                continue
            target = targets[metric]
            if clock.breached_at is None and (clock.elapsed + span > target or reaching and clock.elapsed + span >= target):
                clock.breached_at = cal.add_business_seconds(last, max(0.0, (target - clock.elapsed) / unit))
            clock.elapsed += span

    def start(metric: str, fresh: bool) -> None:
        c = clocks[metric]
        if fresh or not c.started:
            c.cycle += 1 if c.started else 0
            c.elapsed, c.breached_at = 0, None
        c.active, c.done, c.started = True, False, True

    def stop(metric: str) -> None:
        c = clocks[metric]
        if c.active:
            c.active, c.done = False, True

    # each time parsed once; the sort is stable, so events at the same instant keep their order
    for at, ev in timeline:
        if at > now:
            break
        advance(at)
        last = at
        kind = ev.kind
        if kind == "status":
            status = ev.status
            paused = status in pause_on
        elif kind == "opened":
            start("first_response", fresh=False)
            start("periodic_update", fresh=False)
            start("resolution", fresh=False)
        elif kind in ("agent_reply", "first_response"):  # "first_response" is the v1 name
            stop("first_response")
            stop("next_reply")
            if not resolved:
                start("periodic_update", fresh=True)
        elif kind == "customer_message":
            fr = clocks["first_response"]
            if fr.done and not resolved and not clocks["next_reply"].active:
                start("next_reply", fresh=True)
        elif kind == "progress_update":
            if not resolved:
                start("periodic_update", fresh=True)
        elif kind == "resolved":
            resolved = True
            for metric in ("first_response", "next_reply", "periodic_update", "resolution"):
                stop(metric)
        elif kind == "reopened":
            resolved = False
            start("resolution", fresh=False)
            start("next_reply", fresh=True)
            start("periodic_update", fresh=True)
        elif kind == "policy" and ev.policy:
            policy = ev.policy
            restart = policy.get("on_change") == "restart"
            targets = targets_of(policy)
            pause_on = set(policy.get("pause_on", ()))
            cal = calendar or calendar_of(policy)
            paused = status in pause_on
            for metric, clock in clocks.items():
                if not clock.active:
                    continue
                if restart:
                    clock.elapsed, clock.breached_at = 0, None
                elif metric in targets and clock.breached_at is None and clock.elapsed > targets[metric]:
                    clock.breached_at = at  # a shorter target already passed: late from the switch on
    advance(now, reaching=not legacy)

    out: list[SlaClock] = []
    for metric in METRIC_ORDER:
        if metric not in targets:
            continue
        clock, target = clocks[metric], targets[metric]
        remaining = (target - clock.elapsed) / unit  # seconds
        elapsed_seconds, target_seconds = int(clock.elapsed // unit), int(target // unit)
        if not clock.started:
            state = "pending"
        elif clock.breached_at is not None:
            state = "breached"
        elif clock.done:
            state = "fulfilled"
        elif paused:
            state = "paused"
        else:
            state = "running"
        due = None
        if clock.active and not paused:
            due = (clock.breached_at or cal.add_business_seconds(now, remaining)).isoformat()
        out.append(
            SlaClock(
                metric=metric,
                state=state,
                due=due,
                elapsed_seconds=elapsed_seconds,
                # elapsed + remaining = target on screen; truncating both (legacy) could lose a second
                remaining_seconds=int(remaining) if legacy else target_seconds - elapsed_seconds,
                target_seconds=target_seconds,
                breached_at=clock.breached_at.isoformat() if clock.breached_at else None,
                cycle=clock.cycle,
                active=clock.active,
            )
        )
    return out


@dataclass(frozen=True)
class Threshold:
    """A fraction of a clock's target: a warning (< 1.0) or the breach (1.0) of one cycle."""

    metric: str
    cycle: int
    fraction: float

    @property
    def key(self) -> str:
        return f"{self.metric}:{self.cycle}:{self.fraction:g}"


def thresholds_of(policy: dict[str, Any]) -> tuple[float, ...]:
    warnings = policy.get("warnings", DEFAULT_WARNINGS)
    return tuple(sorted({float(f) for f in warnings if 0 < float(f) < 1})) + (1.0,)


def reached(clocks: Iterable[SlaClock], policy: dict[str, Any], fired: set[str]) -> list[Threshold]:
    """Thresholds that running clocks have reached and that have not fired yet, in order."""
    out: list[Threshold] = []
    for c in clocks:
        if not c.active:
            continue
        for f in thresholds_of(policy):
            t = Threshold(c.metric, c.cycle, f)
            if t.key not in fired and c.elapsed_seconds >= f * c.target_seconds:
                out.append(t)
    return sorted(out, key=lambda t: (t.fraction, METRIC_ORDER.index(t.metric)))


def next_threshold_at(
    clocks: Iterable[SlaClock], policy: dict[str, Any], fired: set[str], now: datetime
) -> datetime | None:
    """The earliest instant a running, unpaused clock reaches an unfired threshold: the one durable
    timer the workflow sets. None when every clock is paused, stopped or past all thresholds."""
    cal = calendar_of(policy)
    best: datetime | None = None
    for c in clocks:
        if not c.active or c.due is None:
            continue
        for f in thresholds_of(policy):
            t = Threshold(c.metric, c.cycle, f)
            if t.key in fired:
                continue
            left = f * c.target_seconds - c.elapsed_seconds
            at = now if left <= 0 else cal.add_business_seconds(now, left)
            if best is None or at < best:
                best = at
            break  # later fractions of this clock come after this one
    return best


def next_deadline(clocks: Iterable[SlaClock]) -> datetime | None:
    """The earliest breach of a running clock (v1 workflows time only breaches)."""
    dues = [parse_time(c.due) for c in clocks if c.state == "running" and c.due]
    return min(dues) if dues else None


def clocks_at(state: TicketState, now: datetime, legacy: bool = False) -> list[SlaClock]:
    """A ticket's clocks at `now`; `show` calls this with the real time, since a query only knows
    the time of the workflow's last task."""
    if not state.sla_targets:
        return []
    return sla_state(state.sla_events, state.sla_targets, now, legacy=legacy)
