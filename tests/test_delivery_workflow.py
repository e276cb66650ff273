"""Whole tickets delivered through real connectors: WeChat messages to a signed webhook (a local
HTTP gateway), email tickets and their survey by SMTP (a local aiosmtpd server), and a gateway
that stays down, which records the message as undelivered instead of stalling the ticket.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import datetime, timedelta, timezone

from email import message_from_bytes, policy

import pytest

from engine import tickets
from engine.config import Settings
from engine.intake import parse_event
from engine.models import AgentReply, ResolveCommand, SurveyAnswer
from engine.runner import running_worker
from tests.test_connectors import SECRET, Receiver
from tests.test_connectors import receiver as gateway  # noqa: F401 - pytest fixtures, shared
from tests.test_connectors import smtp_server as mailbox  # noqa: F401


@pytest.fixture
def wired(tmp_path, monkeypatch, gateway, mailbox, settings: Settings) -> Settings:
    box, port = mailbox
    monkeypatch.setenv("TF_TEST_GATEWAY_SECRET", SECRET)
    cfg = tmp_path / "connectors.yaml"
    cfg.write_text(
        "connectors:\n"
        "  outbox: {type: log}\n"
        f"  gateway: {{type: webhook, url: '{gateway.url}', secret_env: TF_TEST_GATEWAY_SECRET, timeout: 5}}\n"
        f"  mail: {{type: smtp, host: 127.0.0.1, port: {port}, from: 'Support <support@shop.example>', timeout: 5}}\n"
        "channels:\n  default: outbox\n  wechat: gateway\n  email: mail\n",
        "utf-8",
    )
    return dataclasses.replace(settings, connectors_file=cfg)


def event(**over) -> dict:
    base = {"event_id": f"d-{uuid.uuid4()}", "occurred_at": datetime.now(timezone.utc).isoformat(),
            "subject": "订单还没发货", "body": "订单下了五天还没发货，请尽快处理。"}
    base.update(over)
    return base


async def wait_until(check, what: str, tries: int = 300):
    for _ in range(tries):
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"never {what}")


async def test_wechat_ticket_messages_go_to_the_signed_webhook(time_env, wired, gateway):
    async with running_worker(time_env.client, wired, watch_rules=False):
        tid = await tickets.submit(time_env.client, wired.task_queue, parse_event(event(
            channel="wechat", customer={"id": "wx-openid-77", "language": "zh", "name": "李娜"})))
        st = await wait_until(lambda: _status(time_env, tid, "open"), "open")
        await tickets.reply(time_env.client, tid, AgentReply(agent=st.assignee, body="已为您催促仓库，今天发出。"))
        keys = await wait_until(lambda: _posted(gateway, tid, 2), "two posts")
    assert keys == [f"{tid}:ack", f"{tid}:reply:1"]
    assert all(p["signature_ok"] for p in gateway.posts)
    ack = gateway.accepted[f"{tid}:ack"]
    assert ack["channel"] == "wechat" and ack["to"] == "wx-openid-77" and ack["kind"] == "acknowledgement"
    assert tid in ack["body"] and "李娜" in ack["body"]
    assert gateway.accepted[f"{tid}:reply:1"]["body"] == "已为您催促仓库，今天发出。"


async def test_email_ticket_and_its_survey_arrive_by_smtp(time_env, wired, mailbox):
    box, _ = mailbox
    async with running_worker(time_env.client, wired, watch_rules=False):
        tid = await tickets.submit(time_env.client, wired.task_queue, parse_event(event(
            channel="email", subject="Charged twice", body="My card was charged twice for order 77102.",
            customer={"id": "c-5", "language": "en", "name": "Li Na", "email": "li.na@example.com"})))
        st = await wait_until(lambda: _status(time_env, tid, "open"), "open")
        await tickets.reply(time_env.client, tid, AgentReply(agent=st.assignee, body="Refunded the duplicate."))
        await tickets.resolve(time_env.client, tid, ResolveCommand(agent=st.assignee))
        await time_env.sleep(timedelta(hours=1, minutes=5))
        await wait_until(lambda: _status(time_env, tid, "surveying"), "surveying")
        await tickets.survey_answer(time_env.client, tid, SurveyAnswer(score=5))
        await wait_until(lambda: _status(time_env, tid, "closed"), "closed")
    mails = [message_from_bytes(m["data"], policy=policy.default) for m in box.messages]
    mails = [m for m in mails if m["X-Ticketflow-Idempotency-Key"].startswith(tid)]
    keys = [m["X-Ticketflow-Idempotency-Key"] for m in mails]
    assert keys == [f"{tid}:ack", f"{tid}:reply:1", f"{tid}:survey:0", f"{tid}:closed"]  # each exactly once
    assert all(m["To"] == "li.na@example.com" for m in mails)
    assert tid in mails[0]["Subject"]  # the email variant of the acknowledgement has a subject
    assert "1" in mails[2].get_content() and "5" in mails[2].get_content()  # the CSAT scale


async def test_a_gateway_that_stays_down_records_the_message_undelivered(time_env, wired, gateway):
    gateway.script = [503] * 50
    async with running_worker(time_env.client, wired, watch_rules=False):
        tid = await tickets.submit(time_env.client, wired.task_queue, parse_event(event(
            channel="wechat", customer={"id": "wx-down", "language": "zh"})))
        await time_env.sleep(timedelta(hours=1))  # past every retry of the acknowledgement
        st = await wait_until(lambda: _status(time_env, tid, "open"), "open")
        assert st.undelivered == ["ack"]
        assert any(m.author == "delivery" and "not delivered" in m.body for m in st.messages)
        assert len(gateway.posts) == 8  # the retry policy's attempts, then the ticket went on
        # An undelivered acknowledgement still starts the progress interval: a day later an update is tried.
        await time_env.sleep(timedelta(days=1))
        await wait_until(lambda: _posted(gateway, f"{tid}:progress:1", 1), "a progress update attempted")


async def _status(env, tid: str, status: str):
    st = await tickets.state(env.client, tid)
    return st if st.status == status else None


async def _posted(gateway: Receiver, tid: str, n: int):
    keys = [k for k in gateway.keys_posted() if k.startswith(tid)]
    return keys if len(keys) >= n else None
