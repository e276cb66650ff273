"""Staffing inside TicketWorkflow: a ticket nobody can take waits in its team's queue and is
assigned when a slot opens (no polling); an assignee who goes offline or stays silent hands over."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from engine import tickets
from engine.intake import parse_event
from engine.models import AgentReply, ResolveCommand
from engine.paths import PROJECT_ROOT
from engine.runner import running_worker
from engine.store import Store
from engine.store.directory import set_status


def small_agents(tmp: Path, per_team: int, max_open: int) -> Path:
    data = yaml.safe_load((PROJECT_ROOT / "agents.yaml").read_text("utf-8"))
    kept, seen = [], {}
    for a in data["agents"]:
        if seen.get(a["team"], 0) < per_team:
            seen[a["team"]] = seen.get(a["team"], 0) + 1
            kept.append({**a, "max_open": max_open})
    data["agents"] = kept
    path = tmp / "agents.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def rules_with_silence_limit(tmp: Path) -> Path:
    d = tmp / "rules"
    shutil.copytree(PROJECT_ROOT / "rules", d, ignore=shutil.ignore_patterns("tests"))
    routing = d / "routing.yaml"
    text = routing.read_text("utf-8").replace(
        "then: {team: logistics, skills: [delivery], strategy: round_robin}",
        "then: {team: logistics, skills: [delivery], strategy: round_robin, reassign_after: 30m}")
    routing.write_text(text, "utf-8")
    return d


def parcel(n: int) -> dict:
    return {
        "event_id": f"st-{uuid.uuid4()}", "channel": "email",
        "customer": {"id": f"c-{n}", "tier": "standard", "language": "zh"},
        "subject": "快递还没到", "body": f"我的包裹 {n} 物流四天没有更新了",
        "occurred_at": datetime.now(timezone.utc).isoformat(),
    }


async def until(env, tid: str, check, tries: int = 200):
    for _ in range(tries):
        st = await tickets.state(env.client, tid)
        if check(st):
            return st
        await asyncio.sleep(0.05)
    raise AssertionError(f"{tid}: condition not met; status {st.status}, assignee {st.assignee}")


@pytest.fixture
async def staffed(time_env, settings, tmp_path, request):
    per_team, max_open, silent = request.param
    cfg = dataclasses.replace(settings, agents_file=small_agents(tmp_path, per_team, max_open))
    if silent:
        cfg = dataclasses.replace(cfg, rules_dir=rules_with_silence_limit(tmp_path))
    async with running_worker(time_env.client, cfg, watch_rules=False):
        yield time_env, cfg


@pytest.mark.parametrize("staffed", [(1, 1, False)], indirect=True)
async def test_queued_ticket_is_assigned_when_a_slot_opens(staffed):
    env, cfg = staffed
    a = await tickets.submit(env.client, cfg.task_queue, parse_event(parcel(1)))
    first = await until(env, a, lambda s: s.status == "open")
    b = await tickets.submit(env.client, cfg.task_queue, parse_event(parcel(2)))
    queued = await until(env, b, lambda s: s.status == "open")
    assert first.team == queued.team == "logistics" and first.assignee and queued.assignee is None
    assert any("waiting in the logistics queue" in m.body for m in queued.messages)
    desc = await tickets.handle(env.client, b).describe()
    from engine import searchattrs as sa
    assert desc.typed_search_attributes.get(sa.ASSIGNEE) == "(queue)"

    await tickets.reply(env.client, a, AgentReply(agent=first.assignee, body="已联系快递"))
    await tickets.resolve(env.client, a, ResolveCommand(agent=first.assignee))
    taken = await until(env, b, lambda s: s.assignee is not None)
    assert taken.assignee == first.assignee
    assert any("a slot opened" in m.body for m in taken.messages)


@pytest.mark.parametrize("staffed", [(1, 5, False)], indirect=True)
async def test_offline_assignee_hands_over_and_queue_waits_for_them(staffed):
    env, cfg = staffed
    a = await tickets.submit(env.client, cfg.task_queue, parse_event(parcel(3)))
    st = await until(env, a, lambda s: s.status == "open")
    agent = st.assignee
    store = Store.open(cfg.database_url)
    _, held = set_status(store, agent, "offline")
    assert a in held
    await tickets.handle(env.client, a).signal("assignee_unavailable", agent)
    queued = await until(env, a, lambda s: s.assignee is None)  # the only logistics agent is gone
    assert any(f"{agent} went offline" in m.body for m in queued.messages)
    set_status(store, agent, "online")
    await tickets.handle(env.client, a).signal("assignment_available")
    back = await until(env, a, lambda s: s.assignee == agent)
    assert back.status == "open"


@pytest.mark.parametrize("staffed", [(2, 5, True)], indirect=True)
async def test_silent_assignee_is_replaced_after_the_rule_set_time(staffed):
    env, cfg = staffed
    a = await tickets.submit(env.client, cfg.task_queue, parse_event(parcel(4)))
    st = await until(env, a, lambda s: s.status == "open")
    silent = st.assignee
    await env.sleep(timedelta(minutes=29))
    assert (await tickets.state(env.client, a)).assignee == silent
    await env.sleep(timedelta(minutes=2))
    moved = await until(env, a, lambda s: s.assignee != silent)
    assert moved.team == "logistics" and any(f"{silent} did not answer in time" in m.body for m in moved.messages)
    # The new assignee answers: no further handover, however long the ticket stays open.
    await tickets.reply(env.client, a, AgentReply(agent=moved.assignee, body="马上处理"))
    await env.sleep(timedelta(hours=2))
    assert (await tickets.state(env.client, a)).assignee == moved.assignee
