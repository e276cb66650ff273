"""Respond, survey and close on the time-skipping server, with the shipped rules and templates:
FAQ bot and hand-off, progress updates, auto-close with a reminder, survey skip rules, reminder
and expiry, service recovery (reopen, follow-up task), the reopen window and linked tickets,
complaint rules and compensation limits. Every wait is skipped virtual time, never a sleep.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import select
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from engine import tickets
from engine.intake import parse_event
from engine.store import Store
from engine.store.tables import TicketEventRow
from engine.models import (
    AgentReply,
    CompensationCommand,
    CompensationDecision,
    CustomerMessage,
    ReopenCommand,
    ResolveCommand,
    SurveyAnswer,
    TaskDone,
    TicketState,
)


def event(**over) -> dict:
    base = {
        "event_id": f"r-{uuid.uuid4()}",
        "channel": "email",
        "customer": {"id": f"c-{uuid.uuid4().hex[:6]}", "tier": "standard", "language": "en", "name": "Ada"},
        "subject": "Kettle stopped working",
        "body": "My kettle stopped working after two weeks. Can you help?",
        "occurred_at": datetime.now(timezone.utc).isoformat(),
    }
    base.update(over)
    return base


async def wait_for(client, ticket_id: str, check, what: str, tries: int = 300) -> TicketState:
    st = None
    for _ in range(tries):
        st = await tickets.state(client, ticket_id)
        if check(st):
            return st
        await asyncio.sleep(0.05)
    raise AssertionError(f"{ticket_id}: never {what}; status {st.status if st else '?'}")


async def wait_status(client, ticket_id: str, *statuses: str) -> TicketState:
    return await wait_for(client, ticket_id, lambda st: st.status in statuses, f"in {statuses}")


def outbox(settings, ticket_id: str | None = None) -> list[dict]:
    path = settings.outbox_log
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines()] if path.exists() else []
    return [r for r in rows if ticket_id is None or r["ticket_id"] == ticket_id]


def journal(settings, ticket_id: str) -> list[tuple[str, dict]]:
    with Store.open(settings.database_url).session() as session:
        rows = session.exec(select(TicketEventRow).where(TicketEventRow.ticket_id == ticket_id).order_by(TicketEventRow.seq))
        return [(r.kind, r.data) for r in rows]


def kinds(settings, ticket_id: str) -> list[str]:
    return [r["kind"] for r in outbox(settings, ticket_id) if r["channel"] != "internal"]


async def open_ticket(env, settings, **over) -> tuple[str, TicketState]:
    ticket_id = await tickets.submit(env.client, settings.task_queue, parse_event(event(**over)))
    return ticket_id, await wait_status(env.client, ticket_id, "open")


async def resolve_and_survey(env, ticket_id: str, st: TicketState, reply: str | None = None, **resolve) -> TicketState:
    """The assignee replies (`reply`, or a default when nobody has yet), resolves, and the survey goes out."""
    if reply is not None or not any(m.role == "agent" for m in st.messages):
        await tickets.reply(env.client, ticket_id, AgentReply(agent=st.assignee, body=reply or "We fixed it."))
    await tickets.resolve(env.client, ticket_id, ResolveCommand(agent=st.assignee, **resolve))
    await env.sleep(timedelta(hours=1, minutes=5))
    return await wait_status(env.client, ticket_id, "surveying")


# ---- FAQ bot -----------------------------------------------------------------------------------

FAQ_CHAT = {"channel": "chat", "customer": {"id": "c-faq", "language": "zh", "name": "小王"},
            "subject": "发票", "body": "请问怎么开发票？"}


async def test_faq_bot_answers_first_and_a_person_takes_over_on_request(worker_env):
    env, settings = worker_env
    ticket_id = await tickets.submit(env.client, settings.task_queue, parse_event(event(**FAQ_CHAT)))
    st = await wait_status(env.client, ticket_id, "pending_customer")
    assert st.bot_answer and st.assignee is None
    assert kinds(settings, ticket_id) == ["acknowledgement", "faq_answer"]
    answer = outbox(settings, ticket_id)[1]
    assert answer["body"] and any(m.role == "bot" for m in st.messages)

    await tickets.customer_message(env.client, ticket_id, CustomerMessage(body="转人工", event_id="m1"))
    st = await wait_status(env.client, ticket_id, "open")
    assert st.assignee and st.handoff == "the customer asked for a person"
    assert [s.stage for s in st.stages][:4] == ["receive", "classify", "respond", "assign"]
    assert kinds(settings, ticket_id) == ["acknowledgement", "faq_answer", "handoff"]
    # The hand-off is recorded: the store's journal of the ticket (written from history) has it.
    await wait_for(env.client, ticket_id, lambda _: ("handoff", "the customer asked for a person") in
                   [(k, d.get("reason")) for k, d in journal(settings, ticket_id)], "journaled")


async def test_faq_bot_resolves_when_the_customer_is_satisfied_and_silent(worker_env):
    env, settings = worker_env
    ticket_id = await tickets.submit(env.client, settings.task_queue, parse_event(event(**FAQ_CHAT)))
    await wait_status(env.client, ticket_id, "pending_customer")
    await env.sleep(timedelta(days=2, minutes=1))
    st = await wait_for(env.client, ticket_id, lambda s: s.resolved_by == "bot", "resolved by the bot")
    assert st.assignee is None and "resolve" in [s.stage for s in st.stages]


async def test_any_message_after_the_faq_answer_reaches_a_person(worker_env):
    env, settings = worker_env
    ticket_id = await tickets.submit(env.client, settings.task_queue, parse_event(event(**FAQ_CHAT)))
    await wait_status(env.client, ticket_id, "pending_customer")
    await tickets.customer_message(env.client, ticket_id, CustomerMessage(body="抬头写错了能重开吗", event_id="m2"))
    st = await wait_status(env.client, ticket_id, "open")
    assert st.assignee and st.handoff == "the customer wrote again after the FAQ answer"


# ---- progress updates and auto-close -------------------------------------------------------------

async def test_progress_update_when_nobody_told_the_customer_anything_for_a_day(worker_env):
    env, settings = worker_env
    ticket_id, st = await open_ticket(env, settings)
    await env.sleep(timedelta(hours=23))
    assert "progress_update" not in kinds(settings, ticket_id)
    await env.sleep(timedelta(hours=1, minutes=5))
    await wait_for(env.client, ticket_id, lambda s: "progress_update" in kinds(settings, ticket_id), "updated")
    update = next(r for r in outbox(settings, ticket_id) if r["kind"] == "progress_update")
    assert ticket_id in update["body"]
    # An agent's reply is news too: the next update is a day after it, not after the last update.
    st = await tickets.state(env.client, ticket_id)  # the late ticket was escalated meanwhile
    await tickets.reply(env.client, ticket_id, AgentReply(agent=st.assignee, body="Still on it."))
    await env.sleep(timedelta(hours=20))
    assert kinds(settings, ticket_id).count("progress_update") == 1


async def test_auto_close_reminds_then_closes_without_a_survey(worker_env):
    env, settings = worker_env
    ticket_id, st = await open_ticket(env, settings)
    await tickets.reply(env.client, ticket_id, AgentReply(agent=st.assignee, body="Which model is it?", wait_for_customer=True))
    await env.sleep(timedelta(days=6, hours=1))
    await wait_for(env.client, ticket_id, lambda s: "auto_close_reminder" in kinds(settings, ticket_id), "reminded")
    st = await tickets.state(env.client, ticket_id)
    assert st.status == "pending_customer"
    assert any(d.group == "auto_close" and d.rule_id == "default-auto-close" for d in st.decisions)
    await env.sleep(timedelta(days=1, minutes=5))
    st = await wait_status(env.client, ticket_id, "closed")
    assert st.resolved_by == "auto_close" and st.survey is None
    assert next(d for d in st.decisions if d.group == "survey").rule_id == "no-survey-auto-closed"
    assert kinds(settings, ticket_id)[-1] == "auto_closed"


async def test_customer_answer_stops_the_auto_close(worker_env):
    env, settings = worker_env
    ticket_id, st = await open_ticket(env, settings)
    await tickets.reply(env.client, ticket_id, AgentReply(agent=st.assignee, body="Which model?", wait_for_customer=True))
    await env.sleep(timedelta(days=3))
    await tickets.customer_message(env.client, ticket_id, CustomerMessage(body="KX-200", event_id="a1"))
    await wait_status(env.client, ticket_id, "open")
    await env.sleep(timedelta(days=5))
    st = await tickets.state(env.client, ticket_id)
    assert st.status == "open" and "auto_close_reminder" not in kinds(settings, ticket_id)


# ---- survey --------------------------------------------------------------------------------------

async def test_survey_reminder_then_expiry_then_close(worker_env):
    env, settings = worker_env
    ticket_id, st = await open_ticket(env, settings)
    st = await resolve_and_survey(env, ticket_id, st)
    assert st.survey.kind == "csat" and st.survey.rule_id == "default-csat"
    await env.sleep(timedelta(days=1, minutes=5))
    st = await wait_for(env.client, ticket_id, lambda s: s.survey.reminded_at, "reminded")
    assert kinds(settings, ticket_id).count("survey_reminder") == 1
    await env.sleep(timedelta(days=2, minutes=5))
    st = await wait_status(env.client, ticket_id, "closed")
    assert st.survey.expired and st.survey.score is None
    assert kinds(settings, ticket_id)[-1] == "closed"


async def test_survey_cancelled_when_reopened_before_it_is_sent(worker_env):
    env, settings = worker_env
    ticket_id, st = await open_ticket(env, settings)
    await tickets.reply(env.client, ticket_id, AgentReply(agent=st.assignee, body="Fixed."))
    await tickets.resolve(env.client, ticket_id, ResolveCommand(agent=st.assignee))
    await env.sleep(timedelta(minutes=20))
    await tickets.reopen(env.client, ticket_id, ReopenCommand(reason="still broken"))
    st = await wait_status(env.client, ticket_id, "open")
    await env.sleep(timedelta(hours=2))
    assert "survey" not in kinds(settings, ticket_id)
    st = await tickets.state(env.client, ticket_id)
    st = await resolve_and_survey(env, ticket_id, st)
    keys = [r["idempotency_key"] for r in outbox(settings, ticket_id) if r["kind"] == "survey"]
    assert keys == [f"{ticket_id}:survey:1"]  # one survey per resolution, none for the cancelled one


async def test_no_second_survey_for_a_customer_within_thirty_days(worker_env):
    env, settings = worker_env
    customer = {"id": "c-repeat", "language": "en"}
    first, st = await open_ticket(env, settings, customer=customer)
    await resolve_and_survey(env, first, st)
    second, st2 = await open_ticket(env, settings, customer=customer)
    await tickets.reply(env.client, second, AgentReply(agent=st2.assignee, body="Done."))
    await tickets.resolve(env.client, second, ResolveCommand(agent=st2.assignee))
    st2 = await wait_status(env.client, second, "closed")
    assert st2.survey is None
    assert next(d for d in st2.decisions if d.group == "survey").rule_id == "no-survey-recently-surveyed"


async def test_agent_initiated_ticket_gets_no_survey(worker_env):
    env, settings = worker_env
    ticket_id, st = await open_ticket(env, settings, origin="agent", subject="Your order is delayed",
                                      body="Your parcel is delayed by the storm; we will keep you posted.")
    await tickets.reply(env.client, ticket_id, AgentReply(agent=st.assignee, body="Update: it ships tomorrow."))
    await tickets.resolve(env.client, ticket_id, ResolveCommand(agent=st.assignee))
    st = await wait_status(env.client, ticket_id, "closed")
    assert st.survey is None and "survey" not in kinds(settings, ticket_id)


# ---- service recovery --------------------------------------------------------------------------

async def test_low_csat_reopens_the_ticket_and_tells_the_team_lead(worker_env):
    env, settings = worker_env
    ticket_id, st = await open_ticket(env, settings)
    await resolve_and_survey(env, ticket_id, st)
    await tickets.survey_answer(env.client, ticket_id, SurveyAnswer(score=2, comment="not fixed"))
    st = await wait_for(env.client, ticket_id, lambda s: s.reopen_count == 1 and s.status == "open", "reopened")
    rec = next(d for d in st.decisions if d.group == "recovery")
    assert rec.rule_id == "csat-dissatisfied" and rec.actions["reopen"] is True
    assert "recovery" in [s.stage for s in st.stages] and st.assignee
    assert "recovery" in kinds(settings, ticket_id)
    staff = [r for r in outbox(settings, ticket_id) if r["channel"] == "internal"]
    assert any("low csat score 2" in r["body"] for r in staff)


async def test_vip_detractor_opens_a_follow_up_task_with_its_own_deadline(worker_env):
    env, settings = worker_env
    ticket_id, st = await open_ticket(env, settings, customer={"id": "c-vip9", "tier": "vip", "language": "en"})
    await tickets.reply(env.client, ticket_id, AgentReply(agent=st.assignee, body="Replaced."))
    await tickets.resolve(env.client, ticket_id, ResolveCommand(agent=st.assignee))
    await env.sleep(timedelta(hours=2, minutes=5))  # VIP NPS goes out two hours after resolution
    st = await wait_status(env.client, ticket_id, "surveying")
    assert st.survey.kind == "nps"
    await tickets.survey_answer(env.client, ticket_id, SurveyAnswer(score=3))
    st = await wait_for(env.client, ticket_id, lambda s: s.followups, "a follow-up task")
    task_id = st.followups[0]
    task = await tickets.task_state(env.client, task_id)
    assert task.status == "open" and not task.overdue
    for _ in range(100):
        if (await tickets.task_state(env.client, task_id)).told:
            break
        await asyncio.sleep(0.05)
    assert (await tickets.task_state(env.client, task_id)).told == ["zhao.min"]  # the vip-care lead
    await env.sleep(timedelta(hours=4, minutes=5))
    task = await tickets.task_state(env.client, task_id)
    assert task.overdue  # the manager was told
    with pytest.raises(WorkflowUpdateFailedError):
        await tickets.task_done(env.client, task_id, TaskDone(by="zhao.min", note=""))
    task = await tickets.task_done(env.client, task_id, TaskDone(by="zhao.min", note="called, sent a gift card"))
    assert task.status == "done" and task.done_by == "zhao.min"
    internal = [r["body"] for r in outbox(settings) if r["channel"] == "internal" and task_id in r["body"]]
    assert any("overdue" in body for body in internal)


# ---- close, reopen window, linked tickets ---------------------------------------------------------

async def test_message_within_the_reopen_window_reopens_after_it_opens_a_linked_ticket(worker_env):
    env, settings = worker_env
    ticket_id, st = await open_ticket(env, settings)
    await resolve_and_survey(env, ticket_id, st)
    await tickets.survey_answer(env.client, ticket_id, SurveyAnswer(score=5))
    st = await wait_status(env.client, ticket_id, "closed")
    assert st.reopen_until
    await env.sleep(timedelta(days=2))
    assert await tickets.customer_message(env.client, ticket_id, CustomerMessage(body="It broke again", event_id="w1")) is None
    st = await wait_status(env.client, ticket_id, "open")
    assert st.reopen_count == 1 and st.assignee and st.reopen_until is None
    assert "reopened" in kinds(settings, ticket_id)

    await resolve_and_survey(env, ticket_id, st, reply="Replaced the kettle.")
    await tickets.survey_answer(env.client, ticket_id, SurveyAnswer(score=4))
    await wait_status(env.client, ticket_id, "closed")
    await env.sleep(timedelta(days=7, minutes=5))  # the reopen window passes quietly
    final = await tickets.handle(env.client, ticket_id).result()
    assert final.status == "closed" and final.reopen_until is None
    assert kinds(settings, ticket_id).count("closed") == 2

    new_id = await tickets.customer_message(env.client, ticket_id, CustomerMessage(body="And now the lid!", event_id="w2"),
                                            settings.task_queue)
    assert new_id and new_id != ticket_id
    new = await wait_status(env.client, new_id, "open")
    assert new.linked_to == ticket_id and new.customer.id == st.customer.id
    assert "linked_ticket" in kinds(settings, new_id)


async def test_agent_can_reopen_within_the_window_but_not_after(worker_env):
    env, settings = worker_env
    ticket_id, st = await open_ticket(env, settings)
    await resolve_and_survey(env, ticket_id, st)
    await tickets.survey_answer(env.client, ticket_id, SurveyAnswer(score=5))
    await wait_status(env.client, ticket_id, "closed")
    st = await tickets.reopen(env.client, ticket_id, ReopenCommand(reason="customer called: still broken", by="zhang.wei"))
    st = await wait_status(env.client, ticket_id, "open")
    assert st.reopen_count == 1 and "reopened" in kinds(settings, ticket_id)

    await resolve_and_survey(env, ticket_id, st, reply="Replaced it.")
    await tickets.survey_answer(env.client, ticket_id, SurveyAnswer(score=5))
    await wait_status(env.client, ticket_id, "closed")
    await env.sleep(timedelta(days=7, minutes=5))
    await tickets.handle(env.client, ticket_id).result()
    with pytest.raises(RPCError):  # the window is over: the ticket's workflow has ended, it takes no commands
        await tickets.reopen(env.client, ticket_id, ReopenCommand(reason="again", by="zhang.wei"))
    final = await tickets.handle(env.client, ticket_id).result()
    assert final.status == "closed" and final.reopen_count == 1


# ---- complaints ------------------------------------------------------------------------------------

COMPLAINT = {"channel": "wechat", "customer": {"id": "c-angry", "language": "zh"},
             "subject": "投诉安装师傅", "body": "我要投诉你们的安装师傅，迟到三个小时还态度恶劣！"}


async def test_complaint_needs_a_human_reply_and_a_root_cause(worker_env):
    env, settings = worker_env
    ticket_id, st = await open_ticket(env, settings, **COMPLAINT)
    assert st.category == "complaint"
    await tickets.reply(env.client, ticket_id, AgentReply(agent=st.assignee, body="", template="apology"))
    apology = outbox(settings, ticket_id)[-1]
    assert apology["kind"] == "agent_reply" and apology["body"]
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await tickets.resolve(env.client, ticket_id, ResolveCommand(agent=st.assignee, root_cause="late installer"))
    assert "only template or bot replies" in str(err.value.cause)
    await tickets.reply(env.client, ticket_id, AgentReply(agent=st.assignee, body="师傅明天上午会再次上门，费用全免。"))
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await tickets.resolve(env.client, ticket_id, ResolveCommand(agent=st.assignee))
    assert "root cause" in str(err.value.cause)
    st = await tickets.resolve(env.client, ticket_id, ResolveCommand(agent=st.assignee, root_cause="installer double-booked"))
    assert st.status == "resolved" and st.root_cause == "installer double-booked"


async def test_unknown_canned_reply_is_refused_with_its_name(worker_env):
    env, settings = worker_env
    ticket_id, st = await open_ticket(env, settings)
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await tickets.reply(env.client, ticket_id, AgentReply(agent=st.assignee, body="", template="no-such-reply"))
    assert "no-such-reply" in str(err.value.cause)
    after = await tickets.state(env.client, ticket_id)
    assert not any(m.role == "agent" for m in after.messages)


async def test_compensation_within_limit_is_issued_above_it_waits_for_a_supervisor(worker_env):
    env, settings = worker_env
    ticket_id, st = await open_ticket(env, settings, **COMPLAINT)
    agent = st.assignee
    await tickets.reply(env.client, ticket_id, AgentReply(agent=agent, body="非常抱歉，我们马上处理。"))
    result, st = await tickets.compensate(env.client, ticket_id, CompensationCommand(
        agent=agent, agent_tier="agent", kind="coupon", amount=50, reason="late installer"))
    assert "issued" in result.detail and st.compensations[0].status == "issued"
    assert st.compensations[0].rule_id == "agent-coupon-up-to-200"
    result, st = await tickets.compensate(env.client, ticket_id, CompensationCommand(
        agent=agent, agent_tier="agent", kind="refund", amount=300, reason="refund the installation fee"))
    assert "waits for approval by a senior" in result.detail and st.compensations[1].status == "pending_approval"

    refusals = [
        (tickets.compensate, CompensationCommand(agent=agent, agent_tier="agent", kind="refund", amount=10, reason="x"), "still waits for approval"),
        (tickets.compensate, CompensationCommand(agent=agent, agent_tier="agent", kind="cash", amount=10, reason="x"), "must be one of"),
        (tickets.decide_compensation, CompensationDecision(by=agent, by_tier="manager", approve=True), "cannot approve it too"),
        (tickets.decide_compensation, CompensationDecision(by="li.lei", by_tier="agent", approve=True), "needs a senior or above"),
        (tickets.decide_compensation, CompensationDecision(by="wang.fang", by_tier="senior", approve=False), "say why"),
        (tickets.resolve, ResolveCommand(agent=agent, root_cause="x"), "still waits for approval"),
    ]
    for fn, cmd, message in refusals:
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await fn(env.client, ticket_id, cmd)
        assert message in str(err.value.cause), (cmd, str(err.value.cause))
    result, st = await tickets.decide_compensation(env.client, ticket_id, CompensationDecision(
        by="wang.fang", by_tier="senior", approve=True, note="receipt checked"))
    assert st.compensations[1].status == "issued" and st.compensations[1].decided_by == "wang.fang"
    assert kinds(settings, ticket_id).count("compensation") == 2
