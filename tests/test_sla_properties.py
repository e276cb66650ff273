"""Property-based checks of the pure SLA clock (hypothesis): what `show` promises holds later.

A running clock's `due` is a promise: with nothing else happening, the clock breaches at exactly
that instant, not a millisecond before or after, whatever calendars the ticket's policies had
before (the bug CI found: a policy switch moved an earlier breach by the milliseconds between
arrival and routing).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.calendar import BusinessCalendar
from engine.models import SlaEvent
from engine.sla import sla_state

OFFICE = BusinessCalendar(tz="Asia/Shanghai", name="office", holidays=[date(2026, 10, 1)],
                          hours={d: [("09:00", "12:00"), ("13:00", "18:00")] for d in ("mon", "tue", "wed", "thu", "fri")})
WEEK = BusinessCalendar(tz="Asia/Shanghai", name="week",
                        hours={d: [("09:00", "21:00")] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")})
NEW_YORK = BusinessCalendar(tz="America/New_York", name="ny",
                            hours={d: [("08:00", "17:30")] for d in ("mon", "tue", "wed", "thu", "fri")})


def policy(first_response: int, calendar: BusinessCalendar | None, restart: bool = False) -> dict:
    p: dict = {"first_response": first_response, "resolution": 10 * first_response,
               "next_reply": 2 * first_response, "periodic_update": 3 * first_response}
    if calendar is not None:
        p["calendar"] = calendar.to_dict()
    if restart:
        p["on_change"] = "restart"
    return p


policies = st.builds(policy, st.sampled_from([60, 1800, 3600, 4 * 3600, 8 * 3600]),
                     st.sampled_from([OFFICE, WEEK, NEW_YORK, None]), st.booleans())
instants = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(timezone.utc))
gaps = st.integers(min_value=0, max_value=6 * 3600 * 1000).map(lambda ms: timedelta(milliseconds=ms))


@st.composite
def tickets(draw) -> tuple[list[SlaEvent], dict]:
    """Arrival, routing a few ms later, then replies, messages, pauses, resumes, resolutions,
    reopens and policy switches."""
    at = draw(instants)
    first = draw(policies)
    events = [SlaEvent("opened", at.isoformat())]
    at += timedelta(milliseconds=draw(st.integers(min_value=0, max_value=80)))
    events.append(SlaEvent("policy", at.isoformat(), policy=first))
    current = first
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        at += draw(gaps)
        kind = draw(st.sampled_from(["pause", "resume", "policy", "agent_reply", "customer_message",
                                     "progress_update", "resolved", "reopened"]))
        if kind == "policy":
            current = draw(policies)
            events.append(SlaEvent("policy", at.isoformat(), policy=current))
        elif kind in ("pause", "resume"):
            events.append(SlaEvent("status", at.isoformat(), "pending_customer" if kind == "pause" else "open"))
        else:
            events.append(SlaEvent(kind, at.isoformat()))
    return events, current


def clocks(events: list[SlaEvent], current: dict, now: datetime) -> dict:
    return {c.metric: c for c in sla_state(events, current, now)}


@settings(max_examples=400, deadline=None)
@given(tickets(), gaps)
def test_a_running_clock_breaches_exactly_when_it_said_it_would(ticket, wait):
    events, current = ticket
    last = datetime.fromisoformat(events[-1].at)
    for metric, seen in clocks(events, current, last + wait).items():
        if seen.state != "running":
            continue
        due = datetime.fromisoformat(seen.due)
        assert clocks(events, current, due - timedelta(microseconds=1))[metric].state == "running", metric
        at_due = clocks(events, current, due)[metric]
        assert at_due.state == "breached" and at_due.breached_at == seen.due, metric
        assert clocks(events, current, due + timedelta(days=3))[metric].breached_at == seen.due, metric


@settings(max_examples=300, deadline=None)
@given(tickets(), gaps, gaps)
def test_elapsed_only_grows_and_adds_up_with_remaining_to_the_target(ticket, a, b):
    events, current = ticket
    last = datetime.fromisoformat(events[-1].at)
    early, late = clocks(events, current, last + a), clocks(events, current, last + a + b)
    for metric, c in early.items():
        assert c.elapsed_seconds <= late[metric].elapsed_seconds, metric
        for clock in (c, late[metric]):
            assert clock.elapsed_seconds + clock.remaining_seconds == clock.target_seconds, metric
