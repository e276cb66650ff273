"""The demo: realistic tickets flowing through a running engine, with simulated agents and customers.

Customers write on several channels in Chinese and English (VIP and standard, complaints, refunds,
delivery and product questions, public posts); agents answer through the same workflow updates
the CLI uses; customers answer follow-ups and surveys. Survey timings are shortened through the
ticket's recorded timing overrides so a whole life fits in a minute or two; the rules stay realistic.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from datetime import datetime, timezone

from temporalio.client import Client

from engine import tickets
from engine.intake import parse_event
from engine.models import (
    AgentReply,
    CustomerMessage,
    HoldCommand,
    ReopenCommand,
    ResolveCommand,
    SurveyAnswer,
    TimingOverrides,
)

log = logging.getLogger("ticketflow.demo")

ROOT_CAUSES = ("courier skipped the delivery scan", "installer did not follow the checklist",
               "refund stuck in manual review", "wrong item picked in the warehouse")
DEMO_TIMING = TimingOverrides(survey_delay_seconds=10, survey_expiry_seconds=90, reopen_window_seconds=60)

# (channel, language, tier, public, subject, body, order value)
CORPUS: list[tuple[str, str, str, bool, str, str, float | None]] = [
    ("weibo", "zh", "standard", True, "退款三周还没到账", "申请退款已经三周了还没到账，客服一直不回复，太失望了，大家千万别买！", 899.0),
    ("wechat", "zh", "vip", False, "订单还没发货", "我是你们的老客户，订单下了五天还没发货，请马上处理，很着急。", 4200.0),
    ("email", "en", "vip", False, "Urgent: wrong item delivered", "I received the wrong laptop model for order 88213. I need the right one before Friday, this is urgent.", 2350.0),
    ("email", "en", "standard", False, "Where is my parcel?", "My order 55310 was supposed to arrive yesterday but tracking has not moved for four days.", 59.9),
    ("chat", "en", "standard", False, "How do I reset my password?", "I forgot my password and the reset email never arrives. Can you help?", None),
    ("app", "zh", "standard", False, "耳机左边没有声音", "新买的耳机左耳没有声音，已经重新配对过了，还是不行，请问怎么办？", 399.0),
    ("douyin", "zh", "premium", True, "直播间买的商品质量很差", "在直播间买的外套质量很差，开线了，要求退货退款，不然我就投诉到消费者协会。", 268.0),
    ("forum", "en", "standard", True, "Firmware update bricked my router", "After the latest firmware update my router does not boot anymore. Several people here report the same.", 129.0),
    ("sms", "zh", "standard", False, "快递显示已签收但没收到", "快递显示已签收，但我根本没有收到包裹，麻烦查一下。", 156.0),
    ("web", "en", "premium", False, "Charged twice for one order", "My card was charged twice for order 77102. Please refund the duplicate charge.", 410.0),
    ("zhihu", "zh", "standard", True, "这个品牌的售后怎么样？", "想问一下大家，这个品牌的售后服务怎么样？保修期是多久？", None),
    ("phone", "en", "vip", False, "Invoice for last quarter", "Please send me the VAT invoices for all orders from last quarter.", None),
    ("kuaishou", "zh", "standard", False, "优惠券用不了", "领的满减优惠券结算的时候用不了，提示不符合条件，是什么原因？", 88.0),
    ("wechat", "en", "standard", False, "Thanks, great service", "Just wanted to say the replacement arrived quickly, thank you!", None),
]

AGENT_REPLIES = {
    "zh": ["您好，非常抱歉给您带来不便，我们正在为您核实处理。", "已为您加急处理，请问方便提供一下订单号吗？", "问题已经处理好了，请您查收。"],
    "en": ["Sorry for the trouble, I am looking into this right now.", "Could you send me the order number and a photo, please?", "This is sorted now, please check on your side."],
}
CUSTOMER_REPLIES = {
    "zh": ["订单号是 20261122-5531，照片已发。", "好的，谢谢。"],
    "en": ["Order number is 55310, photo attached.", "OK, thanks for the quick answer."],
}


def make_event(rng: random.Random, n: int) -> dict:
    channel, lang, tier, public, subject, body, value = rng.choice(CORPUS)
    event = {
        "event_id": f"demo-{uuid.uuid4()}",
        "channel": channel,
        "customer": {"id": f"demo-cust-{rng.randint(1000, 9999)}", "tier": tier, "language": lang},
        "subject": subject,
        "body": body,
        "is_public": public,
        "occurred_at": datetime.now(timezone.utc).isoformat(),
        "prior_contacts": rng.randint(0, 3),
    }
    if value is not None:
        event["order_value"] = value
    return event


class Demo:
    def __init__(self, client: Client, task_queue: str, *, seed: int | None = None, interval: float = 4.0) -> None:
        self.client = client
        self.task_queue = task_queue
        self.rng = random.Random(seed)
        self.interval = interval
        self.submitted = 0

    async def run(self) -> None:
        await asyncio.gather(self._customers(), self._agents())

    async def _customers(self) -> None:
        while True:
            try:
                event = parse_event(make_event(self.rng, self.submitted))
                ticket_id = await tickets.submit(self.client, self.task_queue, event, DEMO_TIMING)
                self.submitted += 1
                log.info("demo: %s opened %s on %s", event.customer.id, ticket_id, event.channel)
            except Exception as exc:  # the demo keeps going; the engine's own errors are logged there
                log.warning("demo submit failed: %s", exc)
            await asyncio.sleep(self.interval * self.rng.uniform(0.5, 1.5))

    async def _agents(self) -> None:
        while True:
            await asyncio.sleep(self.interval * 0.75)
            try:
                rows = await tickets.list_tickets(
                    self.client,
                    tickets.build_query(status="assigned,open,pending_customer,on_hold,resolved,surveying"),
                    limit=100,
                )
            except Exception as exc:
                log.warning("demo list failed: %s", exc)
                continue
            for row in rows:
                try:
                    await self._act(row)
                except Exception as exc:  # a refused update is normal in a race with the workflow
                    log.debug("demo action on %s: %s", row.ticket_id, exc)

    async def _act(self, row: tickets.TicketRow) -> None:
        r = self.rng.random()
        tid, agent = row.ticket_id, row.assignee
        if row.status in ("assigned", "open") and r < 0.35:
            st = await tickets.state(self.client, tid)
            lang = "zh" if st.customer.language.startswith("zh") else "en"
            replied = any(m.role == "agent" for m in st.messages)
            if replied and self.rng.random() < 0.6:
                cause = "demo: " + self.rng.choice(ROOT_CAUSES) if st.category == "complaint" else ""
                await tickets.resolve(self.client, tid, ResolveCommand(agent=agent, note="demo: resolved", root_cause=cause))
            else:
                ask = self.rng.random() < 0.4
                body = self.rng.choice(AGENT_REPLIES[lang][1:2] if ask else AGENT_REPLIES[lang][::2])
                await tickets.reply(self.client, tid, AgentReply(agent=agent, body=body, wait_for_customer=ask))
        elif row.status == "open" and r < 0.42:
            await tickets.hold(self.client, tid, HoldCommand(agent=agent, reason="demo: waiting for the warehouse"))
        elif row.status == "on_hold" and r < 0.25:
            await tickets.hold(self.client, tid, HoldCommand(agent=agent, release=True))
        elif row.status == "pending_customer" and r < 0.3:
            st = await tickets.state(self.client, tid)
            lang = "zh" if st.customer.language.startswith("zh") else "en"
            await tickets.customer_message(self.client, tid, CustomerMessage(body=self.rng.choice(CUSTOMER_REPLIES[lang]), event_id=f"demo-{uuid.uuid4()}"))
        elif row.status == "resolved" and r < 0.03:
            await tickets.reopen(self.client, tid, ReopenCommand(reason="demo: the problem came back"))
        elif row.status == "surveying" and r < 0.3:
            st = await tickets.state(self.client, tid)
            if st.survey and st.survey.kind == "nps":
                score = self.rng.choices(range(11), weights=[1, 1, 1, 1, 1, 2, 2, 4, 6, 8, 8])[0]
            else:
                score = self.rng.choices([1, 2, 3, 4, 5], weights=[1, 1, 2, 4, 6])[0]
            await tickets.survey_answer(self.client, tid, SurveyAnswer(score=score, comment="demo"))
