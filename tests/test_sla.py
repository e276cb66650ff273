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


def test_moments_before_the_first_policy_count_on_that_policy_not_a_later_one():
    # Found by CI: a ticket opened 12 ms before lunch on a 7-day calendar that the routing put on
    # a Mon-Fri calendar with a lunch break; escalation later moved it to the 7-day policy. Its
    # breach must stay where the first policy put it (13:00 + 4h), not 12 ms earlier.
    office = {"name": "office", "tz": "Asia/Shanghai", "holidays": [],
              "hours": {d: [["09:00", "12:00"], ["13:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}}
    week = {"name": "week", "tz": "Asia/Shanghai", "holidays": [],
            "hours": {d: [["09:00", "21:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}
    first = {"first_response": 4 * 3600, "calendar": office}
    later = {"first_response": 3600, "calendar": week}
    lunch = datetime(2026, 11, 23, 4, 0, tzinfo=timezone.utc)  # Monday 12:00 in Shanghai
    events = [
        SlaEvent("opened", (lunch - timedelta(milliseconds=12)).isoformat()),
        SlaEvent("policy", (lunch + timedelta(milliseconds=1)).isoformat(), policy=first),
        SlaEvent("policy", datetime(2026, 11, 23, 9, 0, 1, tzinfo=timezone.utc).isoformat(), policy=later),
    ]
    due = datetime(2026, 11, 23, 8, 59, 59, 988000, tzinfo=timezone.utc)  # 17:00 less the 12 ms before lunch
    before = {c.metric: c for c in sla_state(events[:2], first, lunch + timedelta(minutes=5))}
    assert before["first_response"].due == due.isoformat()
    after = {c.metric: c for c in sla_state(events, later, datetime(2026, 11, 23, 10, tzinfo=timezone.utc))}
    assert after["first_response"].state == "breached" and after["first_response"].breached_at == due.isoformat()


def test_reaching_the_target_exactly_is_a_breach_at_that_instant_but_a_reply_then_is_in_time():
    due = T0 + timedelta(hours=1)
    opened = [SlaEvent("opened", at(0))]
    c = {c.metric: c for c in sla_state(opened, POLICY, due)}["first_response"]
    assert c.state == "breached" and c.breached_at == due.isoformat() and c.remaining_seconds == 0
    replied = opened + [SlaEvent("agent_reply", at(60))]
    c = {c.metric: c for c in sla_state(replied, POLICY, due)}["first_response"]
    assert c.state == "fulfilled" and c.breached_at is None
    status = opened + [SlaEvent("status", at(60), "open")]  # an event at the deadline that does not stop it
    assert {c.metric: c for c in sla_state(status, POLICY, due)}["first_response"].breached_at == due.isoformat()
    # workflows before v5: not yet breached at the very instant
    assert {c.metric: c for c in sla_state(opened, POLICY, due, legacy=True)}["first_response"].state == "running"
