"""Record workflow histories for the replay tests: `python -m tests.histories.record [--suffix v2]`.

Runs a few varied tickets on the time-skipping server with today's workflow code and writes each
history as JSON (Temporal's own format, as `temporal workflow show -o json` prints). Run it when
the workflow changes, with a new suffix: old files stay, so the suite keeps proving that today's
code still replays yesterday's tickets.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import uuid
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from temporalio.testing import WorkflowEnvironment

from engine import tickets
from engine.calendar import calendar_from_dict
from engine.config import Settings
from engine.devserver import find_binary
from engine.intake import parse_event
from engine.models import (
    AgentReply,
    CompensationCommand,
    CompensationDecision,
    CustomerMessage,
    EscalateCommand,
    HoldCommand,
    ReopenCommand,
    ResolveCommand,
    SetPriorityCommand,
    SurveyAnswer,
)
from engine.ruleset import load_ruleset
from engine.ruleset.calendars import policies_with_calendars
from engine.runner import running_worker
from tests.conftest import register_search_attributes

HERE = Path(__file__).resolve().parent


def event(channel: str, lang: str, tier: str, subject: str, body: str, public: bool = False) -> dict:
    return {
        "event_id": f"rec-{uuid.uuid4()}",
        "channel": channel,
        "customer": {"id": f"rec-{uuid.uuid4().hex[:6]}", "tier": tier, "language": lang},
        "subject": subject,
        "body": body,
        "is_public": public,
        "occurred_at": datetime.now(timezone.utc).isoformat(),
    }


async def until(env, tid: str, *statuses: str):
    for _ in range(400):
        st = await tickets.state(env.client, tid)
        if st.status in statuses:
            return st
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{tid} stuck in {st.status}")


async def answer_and_survey(env, tid: str, agent: str, reply: str, score: int, **resolve) -> None:
    """The agent replies and resolves; the survey goes out three hours later and gets `score`."""
    await tickets.reply(env.client, tid, AgentReply(agent=agent, body=reply))
    await tickets.resolve(env.client, tid, ResolveCommand(agent=agent, **resolve))
    await env.sleep(timedelta(hours=3))
    await until(env, tid, "surveying")
    await tickets.survey_answer(env.client, tid, SurveyAnswer(score=score))


async def surveyed(env, s):
    tid = await tickets.submit(env.client, s.task_queue, parse_event(event("email", "en", "standard", "Charged twice", "My card was charged twice for order 77102.")))
    st = await until(env, tid, "open")
    await tickets.reply(env.client, tid, AgentReply(agent=st.assignee, body="Refunding the duplicate now."))
    await tickets.resolve(env.client, tid, ResolveCommand(agent=st.assignee, note="refunded"))
    await env.sleep(timedelta(hours=3))
    await until(env, tid, "surveying")
    await tickets.survey_answer(env.client, tid, SurveyAnswer(score=5, comment="quick"))
    return tid


async def reopened_pending(env, s):
    tid = await tickets.submit(env.client, s.task_queue, parse_event(event("wechat", "zh", "vip", "订单还没发货", "订单下了五天还没发货，请马上处理。")))
    st = await until(env, tid, "open")
    await tickets.reply(env.client, tid, AgentReply(agent=st.assignee, body="请提供订单号", wait_for_customer=True))
    await env.sleep(timedelta(hours=5))
    await tickets.customer_message(env.client, tid, CustomerMessage(body="订单号 20261122-5531", event_id="m1"))
    await until(env, tid, "open")
    await tickets.resolve(env.client, tid, ResolveCommand(agent=st.assignee))
    await tickets.reopen(env.client, tid, ReopenCommand(reason="还是没收到"))
    await tickets.resolve(env.client, tid, ResolveCommand(agent=st.assignee))
    await env.sleep(timedelta(days=8))
    await until(env, tid, "closed")
    return tid


async def breached_complaint(env, s):
    tid = await tickets.submit(env.client, s.task_queue, parse_event(event("weibo", "zh", "standard", "退款三周还没到账", "申请退款三周了还没到账，客服不回复，太失望了，我要投诉！", public=True)))
    await until(env, tid, "open")
    await env.sleep(timedelta(hours=6))
    st = await tickets.state(env.client, tid)  # the breach escalated it: someone else holds it now
    await tickets.reply(env.client, tid, AgentReply(agent=st.assignee, body="非常抱歉，已为您加急退款。"))
    await tickets.resolve(env.client, tid, ResolveCommand(agent=st.assignee, root_cause="退款单卡在人工审核"))
    await env.sleep(timedelta(days=4))
    await until(env, tid, "closed")
    return tid


async def escalated_on_hold(env, s):
    tid = await tickets.submit(env.client, s.task_queue, parse_event(event("douyin", "zh", "premium", "直播间买的外套质量很差", "外套开线了，要求退货退款，不然我就投诉到消费者协会。", public=True)))
    st = await until(env, tid, "open")
    await tickets.hold(env.client, tid, HoldCommand(agent=st.assignee, reason="等待仓库确认"))
    await env.sleep(timedelta(hours=2))
    await tickets.hold(env.client, tid, HoldCommand(agent=st.assignee, release=True))
    st = await tickets.state(env.client, tid)
    raised = {"P4": "P3", "P3": "P2", "P2": "P1"}.get(st.priority or "", "P1")
    if raised != st.priority:
        await tickets.set_priority(env.client, tid, SetPriorityCommand(priority=raised, by="lead.chen", reason="媒体关注"))
    await env.sleep(timedelta(hours=4))  # breach, then the escalation chain
    st = await tickets.state(env.client, tid)
    await tickets.escalate(env.client, tid, EscalateCommand(by=st.assignee, reason="需要管理层决定赔偿")) if st.escalation_tier != "management" else None
    st = await tickets.state(env.client, tid)
    await tickets.reply(env.client, tid, AgentReply(agent=st.assignee, body="非常抱歉，已安排退货退款并补偿优惠券。"))
    await tickets.resolve(env.client, tid, ResolveCommand(agent=st.assignee, note="退款并补偿", root_cause="供应商批次开线"))
    await env.sleep(timedelta(hours=3))
    await until(env, tid, "surveying")
    await tickets.survey_answer(env.client, tid, SurveyAnswer(score=2, comment="太慢了"))
    await asyncio.sleep(1)
    st = await tickets.state(env.client, tid)
    if st.status == "open":  # respond-v4: the low score reopened it (service recovery)
        st = await until(env, tid, "open")
        await answer_and_survey(env, tid, st.assignee, "已补发新外套并退还运费。", 4, root_cause="供应商批次开线")
    return tid


async def faq_handoff_compensated(env, s):
    """respond-v4: the FAQ bot answers, the customer asks for a person, compensation waits for
    approval, a low score reopens the ticket, and a message in the reopen window reopens it again."""
    tid = await tickets.submit(env.client, s.task_queue, parse_event(event("chat", "zh", "standard", "发票", "请问怎么开发票？")))
    await until(env, tid, "pending_customer")
    await tickets.customer_message(env.client, tid, CustomerMessage(body="转人工，发票开错了要退款", event_id="h1"))
    st = await until(env, tid, "open")
    await tickets.reply(env.client, tid, AgentReply(agent=st.assignee, body="您好，我来为您处理发票和退款。"))
    await tickets.compensate(env.client, tid, CompensationCommand(agent=st.assignee, agent_tier="agent", kind="refund", amount=300, reason="开票错误"))
    await tickets.decide_compensation(env.client, tid, CompensationDecision(by="sun.li", by_tier="manager", approve=True, note="同意"))
    await tickets.resolve(env.client, tid, ResolveCommand(agent=st.assignee, note="已重开发票并退款"))
    await env.sleep(timedelta(hours=1, minutes=5))
    await until(env, tid, "surveying")
    await tickets.survey_answer(env.client, tid, SurveyAnswer(score=1, comment="太麻烦"))
    st = await until(env, tid, "open")
    await tickets.reply(env.client, tid, AgentReply(agent=st.assignee, body="非常抱歉，已为您加急处理。"))
    await tickets.resolve(env.client, tid, ResolveCommand(agent=st.assignee))
    await env.sleep(timedelta(hours=1, minutes=5))
    await until(env, tid, "surveying")
    await tickets.survey_answer(env.client, tid, SurveyAnswer(score=4))
    await until(env, tid, "closed")
    await tickets.customer_message(env.client, tid, CustomerMessage(body="发票还是没收到", event_id="h2"))
    st = await until(env, tid, "open")
    await tickets.reply(env.client, tid, AgentReply(agent=st.assignee, body="已重新发送到您的邮箱。", wait_for_customer=True))
    await env.sleep(timedelta(days=8))  # auto-close after the reminder, no survey
    await until(env, tid, "closed")
    return tid


async def lunch_breach(env, s):
    """sla-first-policy-v5: opened in the lunch break of p3-normal's calendar, breached at 17:00,
    and moved by escalation to a policy on a 7-day calendar that is open at lunch."""
    office = policies_with_calendars(load_ruleset(s.rules_dir))["p3-normal"]["calendar"]
    cal, zone = calendar_from_dict(office), ZoneInfo(office["tz"])
    day = (await env.get_current_time()).astimezone(zone).date() + timedelta(days=1)
    while not cal.is_open(datetime.combine(day, time(13, 30), zone)):
        day += timedelta(days=1)
    await env.sleep(datetime.combine(day, time(12, 0, 30), zone) - await env.get_current_time())
    tid = await tickets.submit(env.client, s.task_queue, parse_event(event("email", "en", "standard", "Where is my parcel?", "My order 55310 has not arrived and tracking has not moved for four days.")))
    await until(env, tid, "open")
    await env.sleep(datetime.combine(day, time(17, 5), zone) - await env.get_current_time())
    st = await tickets.state(env.client, tid)
    await answer_and_survey(env, tid, st.assignee, "Sorry for the wait: the courier has it, it arrives tomorrow.", 3, note="courier delay")
    return tid


async def main(suffix: str) -> None:
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(find_binary("temporal-test-server")))
    await register_search_attributes(env.client)
    with tempfile.TemporaryDirectory() as tmp:
        s = Settings.from_env(task_queue="record", data_dir=Path(tmp))
        async with running_worker(env.client, s):
            for name, scenario in (("surveyed", surveyed), ("reopened-pending", reopened_pending),
                                   ("breached-complaint", breached_complaint), ("escalated-on-hold", escalated_on_hold),
                                   ("faq-handoff-compensated", faq_handoff_compensated), ("lunch-breach", lunch_breach)):
                tid = await scenario(env, s)
                await env.sleep(timedelta(days=31))  # past any reopen window: the workflow ends
                history = await tickets.handle(env.client, tid).fetch_history()
                path = HERE / f"{name}-{suffix}.json"
                path.write_text(history.to_json(), "utf-8")
                print(f"{path.name}: {len(history.events)} events")
    await env.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suffix", default="v1", help="version tag in the file names (never reuse one)")
    asyncio.run(main(parser.parse_args().suffix))
