"""SLA clocks inside TicketWorkflow on the time-skipping server: business calendars, pause,
priority changes, warnings, the escalation chain, and silence after resolution.

Each test runs the shipped rules with sla.yaml replaced by a small policy set written here, so the
expected instants can be worked out by hand.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import WorkflowUpdateFailedError

from engine import tickets
from engine.intake import parse_event
from engine.models import AgentReply, EscalateCommand, HoldCommand, ResolveCommand, SetPriorityCommand
from engine.paths import PROJECT_ROOT
from engine.runner import running_worker
from engine.sla import clocks_at
from engine.workflows import TicketWorkflow

SHANGHAI = ZoneInfo("Asia/Shanghai")

SLA_YAML = """
calendars:
  sh-office:
    description: Shanghai office with a lunch break
    timezone: Asia/Shanghai
    hours:
      mon: ["09:00-12:00", "13:00-18:00"]
      tue: ["09:00-12:00", "13:00-18:00"]
      wed: ["09:00-12:00", "13:00-18:00"]
      thu: ["09:00-12:00", "13:00-18:00"]
      fri: ["09:00-12:00", "13:00-18:00"]
    holidays_ics: {ics}
sla_policies:
  office-hour:
    description: one business hour to answer, in office hours
    first_response: 1h
    resolution: 8h
    calendar: sh-office
  fast:
    description: P1 and P2, around the clock
    first_response: 1h
    resolution: 10h
    warnings: [0.5, 0.75, 0.9]
  slow:
    description: everything else, around the clock
    first_response: 4h
    resolution: 40h
groups:
  - name: sla_policy
    match: first
    rules:
      - id: test-office
        description: tickets that mention the office run on office hours
        when: {field: text, contains_any: [office]}
        then: {policy: office-hour}
      - id: test-fast
        description: urgent ones are fast
        when: {field: priority, in: [P1, P2]}
        then: {policy: fast}
      - id: test-slow
        description: the rest
        then: {policy: slow}
"""


def rules_dir(tmp: Path, holidays: list[str] | None = None) -> Path:
    d = tmp / "rules"
    d.mkdir()
    for f in (PROJECT_ROOT / "rules").glob("*.yaml"):
        if f.name not in ("sla.yaml", "calendars.yaml"):
            shutil.copy(f, d / f.name)
    ics = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//ticketflow//test//EN"]
    for day in holidays or []:
        ics += ["BEGIN:VEVENT", f"UID:{day}@test", f"DTSTART;VALUE=DATE:{day.replace('-', '')}", "SUMMARY:holiday", "END:VEVENT"]
    ics.append("END:VCALENDAR")
    (d / "holidays.ics").write_text("\r\n".join(ics) + "\r\n")
    (d / "sla.yaml").write_text(SLA_YAML.replace("{ics}", "holidays.ics"))
    return d


@pytest.fixture
async def sla_env(time_env, settings, tmp_path, request):
    holidays = getattr(request, "param", None)
    if callable(holidays):  # worked out from the server's clock, which a test may not have moved yet
        holidays = holidays(await time_env.get_current_time())
    cfg = dataclasses.replace(settings, rules_dir=rules_dir(tmp_path, holidays))
    async with running_worker(time_env.client, cfg, watch_rules=False):
        yield time_env, cfg


def ev(subject: str, body: str, tier: str = "standard", lang: str = "en") -> dict:
    return {
        "event_id": f"sla-{uuid.uuid4()}", "channel": "email",
        "customer": {"id": "c-77", "tier": tier, "language": lang},
        "subject": subject, "body": body, "occurred_at": datetime.now(timezone.utc).isoformat(),
    }


async def submit(env, cfg, **kw) -> str:
    tid = await tickets.submit(env.client, cfg.task_queue, parse_event(ev(**kw)))
    for _ in range(200):
        st = await tickets.state(env.client, tid)
        if st.status == "open":
            return tid
        await asyncio.sleep(0.05)
    raise AssertionError(f"{tid} did not open")


async def skip_to(env, when: datetime) -> None:
    now = await env.get_current_time()
    assert when > now, f"{when} is in the past (server time {now})"
    await env.sleep(when - now)


def next_friday_1755(now: datetime) -> datetime:
    local = now.astimezone(SHANGHAI)
    days = (4 - local.weekday()) % 7 or 7
    return (local + timedelta(days=days)).replace(hour=17, minute=55, second=0, microsecond=0)


def near(a: str | datetime, b: datetime, seconds: float = 1.0) -> bool:
    """Instants agree within a second: the ticket opens when its first workflow task runs, a few
    milliseconds after the instant the test skipped to."""
    a = datetime.fromisoformat(a) if isinstance(a, str) else a
    return abs((a - b).total_seconds()) <= seconds


async def state_now(env, tid: str):
    """The ticket with its clocks at the server's (skipped) time; a query alone only knows the
    time of the workflow's last task, and the wall clock is behind a time-skipping server."""
    st = await tickets.state(env.client, tid)
    st.sla = clocks_at(st, await env.get_current_time())
    return st


def clock(st, metric: str):
    return next(c for c in st.sla if c.metric == metric)


async def test_friday_evening_ticket_breaches_monday_morning(sla_env):
    env, cfg = sla_env
    friday = next_friday_1755(await env.get_current_time())
    await skip_to(env, friday)
    tid = await submit(env, cfg, subject="Office printer order", body="Where is the office printer I ordered?")
    st = await tickets.state(env.client, tid)
    assert st.sla_policy == "office-hour"
    monday_0955 = (friday + timedelta(days=3)).replace(hour=9, minute=55)
    assert near(clock(st, "first_response").due, monday_0955)

    await skip_to(env, monday_0955 - timedelta(minutes=1))
    st = await state_now(env, tid)
    assert clock(st, "first_response").state == "running"  # not a second early
    assert abs(clock(st, "first_response").elapsed_seconds - (3600 - 60)) <= 1
    await skip_to(env, monday_0955 + timedelta(minutes=1))
    st = await state_now(env, tid)
    fr = clock(st, "first_response")
    assert fr.state == "breached" and near(fr.breached_at, monday_0955)


def _monday_after_next_friday_1755(now: datetime) -> list[str]:
    # The very Friday the test skips to: at 17:55 on a Friday or later that is next week's.
    return [(next_friday_1755(now) + timedelta(days=3)).date().isoformat()]


@pytest.mark.parametrize("sla_env", [_monday_after_next_friday_1755], indirect=True)
async def test_holiday_from_ics_is_skipped(sla_env):
    env, cfg = sla_env
    friday = next_friday_1755(await env.get_current_time())
    await skip_to(env, friday)
    tid = await submit(env, cfg, subject="Office chair", body="The office chair arrived broken")
    st = await tickets.state(env.client, tid)
    tuesday_0955 = (friday + timedelta(days=4)).replace(hour=9, minute=55)
    assert near(clock(st, "first_response").due, tuesday_0955)


async def test_priority_change_halfway_keeps_elapsed_time(sla_env):
    env, cfg = sla_env
    tid = await submit(env, cfg, subject="Question about sizes", body="Do you have this jacket in XL?")
    st = await tickets.state(env.client, tid)
    assert st.sla_policy == "slow" and clock(st, "first_response").target_seconds == 4 * 3600
    await env.sleep(timedelta(minutes=40))
    before = clock(await state_now(env, tid), "first_response")
    await tickets.handle(env.client, tid).execute_update(
        TicketWorkflow.set_priority, SetPriorityCommand(priority="P1", by="lead.anna", reason="customer is a journalist"))
    st = await state_now(env, tid)
    after = clock(st, "first_response")
    assert st.priority == "P1" and st.sla_policy == "fast"
    assert after.target_seconds == 3600 and abs(after.elapsed_seconds - before.elapsed_seconds) <= 1
    assert after.remaining_seconds == 3600 - after.elapsed_seconds  # the elapsed time carried over
    kinds = [(e.kind, (e.policy or {}).get("first_response")) for e in st.sla_events if e.kind == "policy"]
    assert kinds == [("policy", 4 * 3600), ("policy", 3600)]  # the switch is an event
    manual = [d for d in st.decisions if d.group == "priority" and d.rule_id == "manual:lead.anna"]
    assert manual and manual[0].actions == {"priority": "P1"}


def _fired(st, metric: str) -> list[str]:
    return [m.body for m in st.messages if m.role == "system" and m.body.startswith(f"SLA {metric} ")]


async def test_warnings_fire_once_each_in_order_then_breach(sla_env):
    env, cfg = sla_env
    tid = await submit(env, cfg, subject="Urgent: wrong item", body="Urgent, I received the wrong laptop", tier="vip")
    st = await tickets.state(env.client, tid)
    assert st.sla_policy == "fast"
    agent = st.assignee
    await env.sleep(timedelta(minutes=70))
    st = await tickets.state(env.client, tid)
    assert _fired(st, "first_response") == [
        "SLA first_response warning at 50% of target",
        "SLA first_response warning at 75% of target",
        "SLA first_response warning at 90% of target",
        "SLA first_response breach at 100% of target",
    ]
    esc = [d for d in st.decisions if d.group == "escalation"]
    # first_response warnings come first (resolution, at 10h, is far from its 50 %)
    assert [d.rule_id for d in esc] == ["warn-assignee", "warn-assignee", "warn-late-stage", "p1-breach-to-senior"]
    assert st.escalation_tier == "senior"
    notices = [json.loads(x) for x in cfg.outbox_log.read_text().splitlines()]
    staff = [n for n in notices if n["ticket_id"] == tid and n["kind"] == "staff_notice"]
    assert len({n["idempotency_key"] for n in staff}) == len(staff)  # each notice once
    # 50 % and 75 %: the agent; 90 %: agent and team lead (the same person on vip-care: told once);
    # breach: the team lead
    lead = "zhao.min"
    assert [(n["idempotency_key"].split(":")[4], n["to"]) for n in staff] == [
        ("0.5", agent), ("0.75", agent), ("0.9", agent), ("0.9", lead), ("1", lead)] if agent != lead else [
        ("0.5", agent), ("0.75", agent), ("0.9", agent), ("1", lead)]
    assert all("first_response" in n["body"] for n in staff)


async def test_escalation_chain_runs_tier_by_tier_with_its_delays(sla_env):
    env, cfg = sla_env
    tid = await submit(env, cfg, subject="Refund not received", body="My refund has not arrived, order 5531", lang="zh")
    st = await tickets.state(env.client, tid)
    first_agent, team = st.assignee, st.team
    opened = datetime.fromisoformat(st.stages[0].at)
    target = clock(st, "first_response").target_seconds
    await env.sleep(timedelta(seconds=target) + timedelta(hours=3, minutes=30))
    st = await tickets.state(env.client, tid)
    esc = {s.stage: datetime.fromisoformat(s.at) for s in st.stages if s.stage.startswith("escalate:")}
    assert list(esc) == ["escalate:senior", "escalate:other_department", "escalate:management"]
    breach = opened + timedelta(seconds=target)
    senior_at, other_at, mgmt_at = esc.values()
    assert abs((senior_at - breach).total_seconds()) < 5
    # P2 ticket (rule breach-to-senior: again after 1h), then senior-to-other-department (again after 2h)
    priority_before = next(d for d in st.decisions if d.group == "priority").actions["priority"]
    wait1 = 30 * 60 if priority_before == "P1" else 3600
    assert abs((other_at - senior_at).total_seconds() - wait1) < 5
    assert abs((mgmt_at - other_at).total_seconds() - 2 * 3600) < 5
    assert st.escalation_tier == "management" and st.team == "management" and st.assignee == "sun.li"
    assigned = [m.body for m in st.messages if m.author == "assignment"]
    assert len(assigned) == 4 and first_agent in assigned[0] and team in assigned[0]
    assert "escalations" in assigned[2]


async def test_no_sla_timer_fires_after_resolve(sla_env):
    env, cfg = sla_env
    tid = await submit(env, cfg, subject="Size question", body="Do you have this in XL?")
    st = await tickets.state(env.client, tid)
    await tickets.reply(env.client, tid, AgentReply(agent=st.assignee, body="Yes, XL is in stock."))
    await tickets.resolve(env.client, tid, ResolveCommand(agent=st.assignee))
    await env.sleep(timedelta(hours=50))
    st = await tickets.state(env.client, tid)
    assert _fired(st, "first_response") == [] and _fired(st, "resolution") == []
    assert not [d for d in st.decisions if d.group == "escalation"]
    history = await tickets.handle(env.client, tid).fetch_history()
    resolved_at = next(i for i, e in enumerate(history.events)
                       if e.HasField("workflow_execution_update_accepted_event_attributes")
                       and e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name == "resolve")
    fired_after = [e for e in history.events[resolved_at:] if e.HasField("timer_fired_event_attributes")]
    assert len(fired_after) <= 2  # the survey delay and its expiry, nothing from the SLA


async def test_hold_pauses_the_clocks_and_release_resumes_them(sla_env):
    env, cfg = sla_env
    tid = await submit(env, cfg, subject="Size question", body="Do you have this in XL?")
    st = await tickets.state(env.client, tid)
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await tickets.hold(env.client, tid, HoldCommand(agent="someone.else", reason="x"))
    assert "not the assignee" in str(err.value.cause)
    await env.sleep(timedelta(minutes=10))
    st = await tickets.hold(env.client, tid, HoldCommand(agent=st.assignee, reason="waiting for the warehouse"))
    assert st.status == "on_hold"
    held = clock(await state_now(env, tid), "resolution")
    await env.sleep(timedelta(hours=30))  # far past every target: nothing may count or fire
    still = await state_now(env, tid)
    assert clock(still, "resolution").state == "paused"
    assert clock(still, "resolution").elapsed_seconds == held.elapsed_seconds
    assert _fired(still, "resolution") == [] and _fired(still, "first_response") == []
    await tickets.hold(env.client, tid, HoldCommand(agent=st.assignee, release=True))
    await env.sleep(timedelta(minutes=5))
    resumed = await state_now(env, tid)
    assert resumed.status == "open" and clock(resumed, "resolution").state == "running"
    assert abs(clock(resumed, "resolution").elapsed_seconds - held.elapsed_seconds - 300) <= 2

    with pytest.raises(WorkflowUpdateFailedError) as err:
        await tickets.set_priority(env.client, tid, SetPriorityCommand(priority=resumed.priority, by="lead"))
    assert "already" in str(err.value.cause)
    st = await tickets.escalate(env.client, tid, EscalateCommand(by="lead.anna", reason="press enquiry"))
    assert st.escalation_tier == "senior" and any(s.stage == "escalate:senior" for s in st.stages)
