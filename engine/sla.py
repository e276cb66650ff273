"""SLA clocks as a pure fold over ticket events.

`sla_state(events, policy, now)` is the one function the workflow (to set its breach timer), `show`
and later the audit use, so every place gives the same answer. Time is wall-clock (24x7) here;
business calendars plug in through `calendar` without changing callers.
Paused time (statuses in the policy's `pause_on`) never counts and is never lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Protocol

from engine.models import SlaClock, SlaEvent, TicketState

# metric -> (event kinds that start or resume it, event kinds that stop it)
METRICS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "first_response": (frozenset({"opened"}), frozenset({"first_response", "resolved"})),
    "resolution": (frozenset({"opened", "reopened"}), frozenset({"resolved"})),
}


class Calendar(Protocol):
    def business_seconds(self, start: datetime, end: datetime) -> float: ...

    def add_business_seconds(self, start: datetime, seconds: float) -> datetime: ...


class AlwaysOpen:
    """The 24x7 calendar: business time is wall time."""

    def business_seconds(self, start: datetime, end: datetime) -> float:
        return max(0.0, (end - start).total_seconds())

    def add_business_seconds(self, start: datetime, seconds: float) -> datetime:
        return start + timedelta(seconds=seconds)


@dataclass
class _Clock:
    active: bool = False
    done: bool = False
    elapsed: float = 0.0
    breached_at: datetime | None = None


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def sla_state(
    events: Iterable[SlaEvent],
    policy: dict[str, Any],
    now: datetime,
    calendar: Calendar | None = None,
) -> list[SlaClock]:
    cal = calendar or AlwaysOpen()
    pause_on = set(policy.get("pause_on", ()))
    targets = {m: int(policy[m]) for m in METRICS if policy.get(m)}
    clocks = {m: _Clock() for m in targets}
    paused = False
    last: datetime | None = None

    def advance(until: datetime) -> None:
        if last is None or until <= last or paused:
            return
        span = cal.business_seconds(last, until)
        for metric, clock in clocks.items():
            if not clock.active:
                continue
            target = targets[metric]
            if clock.breached_at is None and clock.elapsed + span > target:
                clock.breached_at = cal.add_business_seconds(last, target - clock.elapsed)
            clock.elapsed += span

    for ev in sorted(events, key=lambda e: parse_time(e.at)):
        at = parse_time(ev.at)
        if at > now:
            break
        advance(at)
        last = at
        if ev.kind == "status":
            paused = ev.status in pause_on
        for metric, clock in clocks.items():
            starts, stops = METRICS[metric]
            if ev.kind in starts and not (clock.done and metric == "first_response"):
                clock.active, clock.done = True, False
            elif ev.kind in stops and clock.active:
                clock.active, clock.done = False, True
    advance(now)

    out: list[SlaClock] = []
    for metric, clock in clocks.items():
        target = targets[metric]
        remaining = target - clock.elapsed
        if clock.breached_at is not None:
            state = "breached"
        elif clock.done:
            state = "fulfilled"
        elif clock.active and paused:
            state = "paused"
        elif clock.active:
            state = "running"
        else:
            state = "pending"
        due = None
        if clock.active and not paused:
            due = cal.add_business_seconds(now, remaining).isoformat() if remaining > 0 else None
            if clock.breached_at is not None:
                due = clock.breached_at.isoformat()
        out.append(
            SlaClock(
                metric=metric,
                state=state,
                due=due,
                elapsed_seconds=int(clock.elapsed),
                remaining_seconds=int(remaining),
                target_seconds=target,
                breached_at=clock.breached_at.isoformat() if clock.breached_at else None,
            )
        )
    return out


def next_deadline(clocks: Iterable[SlaClock]) -> datetime | None:
    """The earliest instant a running clock breaches: the one durable timer the workflow sets."""
    dues = [parse_time(c.due) for c in clocks if c.state == "running" and c.due]
    return min(dues) if dues else None


def clocks_at(state: TicketState, now: datetime) -> list[SlaClock]:
    """A ticket's clocks at `now`; `show` calls this with the real time, since a query only knows
    the time of the workflow's last task."""
    if not state.sla_targets:
        return []
    return sla_state(state.sla_events, state.sla_targets, now)
