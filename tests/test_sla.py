"""The pure SLA clock: elapsed, remaining, due, pause and breach instants."""

from datetime import datetime, timedelta, timezone

from engine.models import SlaEvent
from engine.sla import next_deadline, sla_state

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
POLICY = {"first_response": 3600, "resolution": 4 * 3600, "pause_on": ["pending_customer", "on_hold"]}


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def clocks(events, now_minutes):
    return {c.metric: c for c in sla_state(events, POLICY, T0 + timedelta(minutes=now_minutes))}


def test_running_clock_reports_elapsed_remaining_and_due():
    c = clocks([SlaEvent("opened", at(0))], 20)["first_response"]
    assert (c.state, c.elapsed_seconds, c.remaining_seconds) == ("running", 1200, 2400)
    assert c.due == at(60)


def test_first_reply_fulfils_first_response_only():
    ev = [SlaEvent("opened", at(0)), SlaEvent("first_response", at(30))]
    cs = clocks(ev, 90)
    assert cs["first_response"].state == "fulfilled" and cs["first_response"].elapsed_seconds == 1800
    assert cs["resolution"].state == "running" and cs["resolution"].elapsed_seconds == 5400


def test_breach_instant_is_exact_and_state_sticks_after_fulfilment():
    ev = [SlaEvent("opened", at(0)), SlaEvent("first_response", at(75))]
    c = clocks(ev, 120)["first_response"]
    assert c.state == "breached" and c.breached_at == at(60) and c.remaining_seconds == -900


def test_pause_while_pending_customer_loses_no_time():
    ev = [
        SlaEvent("opened", at(0)),
        SlaEvent("status", at(30), "pending_customer"),
        SlaEvent("status", at(30 + 24 * 60), "open"),
    ]
    paused = clocks(ev[:2], 600)["resolution"]
    assert paused.state == "paused" and paused.elapsed_seconds == 1800 and paused.due is None
    resumed = clocks(ev, 30 + 24 * 60 + 10)["resolution"]
    assert resumed.state == "running" and resumed.elapsed_seconds == 2400
    assert resumed.due == at(30 + 24 * 60 + 10 + 200)


def test_reopen_resumes_resolution_with_elapsed_kept():
    ev = [
        SlaEvent("opened", at(0)),
        SlaEvent("first_response", at(10)),
        SlaEvent("resolved", at(60)),
        SlaEvent("reopened", at(600)),
    ]
    cs = clocks(ev, 630)
    assert cs["resolution"].state == "running" and cs["resolution"].elapsed_seconds == 90 * 60
    assert cs["first_response"].state == "fulfilled"


def test_next_deadline_is_earliest_running_due_and_none_when_paused():
    ev = [SlaEvent("opened", at(0))]
    assert next_deadline(sla_state(ev, POLICY, T0)) == T0 + timedelta(hours=1)
    ev.append(SlaEvent("status", at(5), "on_hold"))
    assert next_deadline(sla_state(ev, POLICY, T0 + timedelta(minutes=10))) is None


def test_events_after_now_are_ignored_so_the_past_can_be_recomputed():
    ev = [SlaEvent("opened", at(0)), SlaEvent("first_response", at(30))]
    assert clocks(ev, 20)["first_response"].state == "running"
