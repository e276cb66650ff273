"""Benchmark: the rules engine against hand-written Python making the same decisions.

What is measured, all in one run on the same synthetic tickets:
- engine, default rules: `Ruleset.evaluate` for every group of rules/ at the stage of a ticket's
  life where the workflow runs it (engine/ruleset/stages.py: classification + priority on arrival,
  routing + sla_policy + respond + resolution + faq after them, auto_close while waiting,
  escalation on an SLA event, compensation when an agent offers some, survey at resolution,
  recovery when the survey is answered), once without trace (what the worker does) and once with
  `explain=True`;
- baseline: `Baseline.decide`, hand-written if/elif code implementing the same rules (see below);
- engine, generated rules: a ruleset of 200 generated rules, written as YAML text and loaded with
  `load_ruleset_texts`, over the same tickets;
- load time: load + validate + compile of rules/ and of the 200-rule text;
- per group: each group evaluated alone over all tickets (so it pays for its own text scan);
- build_snapshot: its cost per ticket (mostly sentiment scoring), for scale;
- the same rules decided by the generated Python (TICKETFLOW_RULES_NATIVE=0), the path a
  machine without a C compiler runs, when the native evaluator is the one in use.

Tickets and snapshots: seeded random tickets, 60 % Chinese, 35 % English, 5 % mixed, built from
phrases customers write (the keywords of rules/*.yaml, FAQ questions, near misses such as "issue"
or 社交媒体, neutral and emotional phrases) and some spam adverts, with channels, tiers, public
flags, order values, reopen counts, SLA events, compensation offers (kind, amount, agent tier),
resolutions (by whom, who opened the ticket, days since the last survey) and survey answers (kind
and score). Every text carries its own order number, so no text repeats and nothing is cached
from one ticket to the next. The stage snapshots of every ticket (one per stage) are built with
`build_snapshot` BEFORE timing (their later stages apply the engine's earlier decisions, as the
workflow does); sentiment scoring and snapshot building are therefore not in the timed loops,
for the engine and the baseline alike. The snapshots are then frozen out of the garbage
collector's sight (`gc.freeze`), so collections during timing cost what they would in a worker.

The baseline, and why it is the fair one: it is what a competent engineer would write instead of a
rules engine. It gets the same input (the same snapshot dicts, including the folded text that
build_snapshot prepares for the engine) and must produce the same output (the matched rule ids
and the actions of every group; not the trace, which only the engine gives). It tests each
keyword list with one precompiled regex implementing exactly the engine's rule (Latin keywords
must start a word, Chinese ones match anywhere; see `keyword_regex`), reuses a search whose
list classification and priority share (urgent, legal risk), and short-circuits like the rules
(first match wins, `all` and `any` stop early). What it does not get is the engine's own design:
one scan of the text for all keyword lists, shared by the groups of a stage. It takes the
keyword lists and the `then` actions from the loaded ruleset, so editing a keyword or a duration
does not break it; conditions, thresholds and rule order are written out by hand, except the FAQ
entries: like an FAQ bot reading its data, it tries the faq group's rules (which the loader
writes from rules/faq.yaml, one per entry, in file order) in their order and stops at the first
whose keywords are in the text, with the condition they all share written out once. Before any
timing the bench asserts that baseline and engine decide identically on every ticket; if the
rules' logic changes, that check fails, names the group and ticket, and `Baseline` must follow.

Ratios are engine tickets/s divided by baseline tickets/s (1.0 = as fast as hand-written code).
Timings are the best of a few repeats on one core (the process is single-threaded). Without
trace, each stage's deciding function (the engine's `decider`, the baseline's method) is mapped
over the list of that stage's snapshots, the same loop for both; with the compact trace, the
same loop maps the engine's `stage_evaluator`, the function the worker's activity calls
(engine/activities/triage.py); explain mode calls `evaluate` per group.

Which evaluator: the engine decides with the native evaluator (engine/ruleset/_native.c) when
it is built, as a worker does; the header line says which one ran. TICKETFLOW_RULES_NATIVE=0
measures the generated Python instead.

Run: python bench/rules_bench.py [--quick] [--json] [--tickets N] [--rules DIR]
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import platform
import random
import re
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml

from engine.models import AGENT_TIERS, COMPENSATIONS
from engine.ruleset import Ruleset, build_snapshot, load_ruleset, load_ruleset_texts, schemacheck
from engine.ruleset.compiler import _is_empty, fold
from engine.ruleset.fields import FOLDED_TEXT, ORIGINS, RESOLVERS, SLA_METRICS, TIERS_UP
from engine.ruleset.stages import STAGES, apply_to_snapshot

# ---------------------------------------------------------------------------------------------
# Synthetic tickets

# Phrases per topic, as customers write them. Many contain keywords of rules/*.yaml so that the
# rules fire; others are near misses ("issue" is not "sue", 社交媒体 is not 找媒体) or neutral.
_ZH = {
    "refund": ["我要退款", "申请退货已经一周了，钱还没退回", "麻烦把钱退回到原支付账户", "不想要了，能退钱吗",
               "退费什么时候到账", "款退回了吗？"],
    "delivery": ["快递三天了还没收到", "物流一直不更新", "包裹显示已签收但我没收到", "什么时候发货？",
                 "配送员态度很差", "运单号查不到", "快递被退回了"],
    "product": ["用了两天就坏了", "屏幕出现故障", "开机就死机", "APP一打开就闪退", "说明书看不懂，怎么用",
                "还在保修期内吗？需要寄回维修吗", "质量太差了"],
    "account": ["登录不上，验证码收不到", "密码忘了怎么办", "账号被封号了", "帐号注册不了", "账户被锁定"],
    "billing": ["被多扣款了", "发票什么时候开", "支付成功了但订单显示未付款", "账单金额不对", "扣费两次"],
    "complaint": ["再不处理我就投诉", "我要投诉你们的客服", "必须给我一个说法，否则曝光你们", "已经在黑猫投诉了",
                  "骗子公司", "给你们差评", "我要维权"],
    "legal": ["我已经联系律师了", "准备起诉你们", "我会去市场监管局反映", "打12315投诉", "我要找媒体曝光",
              "已经向消协反映", "我会联系记者"],
    "urgent": ["急用，麻烦尽快处理", "马上给我解决", "十万火急", "请立即回复", "赶紧处理一下"],
    "question": ["请问营业时间是几点？", "咨询一下有没有优惠", "如何修改收货地址", "能不能开发票？", "有没有线下门店",
                 "请问是否支持货到付款", "我的包裹到哪了？", "怎么查物流", "下单后多久发货？", "支持七天无理由退货吗？",
                 "地址填错了能改吗"],
    "neutral": ["你好", "麻烦看一下", "订单号在上面", "谢谢", "在吗", "我在社交媒体上看到你们的广告",
                "用工商银行卡付的款"],
    "angry": ["太差劲了！", "气死我了！！", "客服一直推脱，太失望了", "垃圾服务", "真的很无语"],
    "happy": ["非常满意，谢谢", "客服很耐心，点赞", "东西不错"],
    "spam": ["加微信领取优惠券", "兼职日结，日赚300", "点击链接免费领取礼品", "专业代购，价格优惠", "刷单返利，在家就能做",
             "贷款秒批，不看征信"],
}
_EN = {
    "refund": ["I want a refund", "please refund my order", "how do I return the item?", "I need my money back",
               "where is the return label", "I sent it back last week"],
    "delivery": ["my package has not been delivered", "the tracking has not moved since Monday",
                 "the courier left the parcel outside", "when is the delivery?", "shipping is taking forever"],
    "product": ["the kettle stopped working", "it arrived broken", "the app keeps crashing", "is it covered by the warranty?",
                "the screen is faulty", "where can I find the manual"],
    "account": ["I cannot log in", "forgot my password", "the verification code never arrives", "my account locked itself"],
    "billing": ["I was charged twice", "please send the invoice", "the payment failed but money was taken",
                "my receipt is wrong", "I was overcharged"],
    "complaint": ["this is unacceptable", "I want to file a complaint", "this is a scam", "I will complain to the consumer association"],
    "legal": ["my lawyer will contact you", "I will sue you", "I am taking legal action", "I will write to the regulator"],
    "urgent": ["this is urgent", "please fix it ASAP", "I need it right now", "reply immediately"],
    "question": ["what is your return policy?", "how can I change my address?", "do you have a store in Shanghai?",
                 "what are your business hours?", "is it possible to pay by card?", "where is my parcel?",
                 "how long does delivery take?", "I need a VAT receipt", "how do I reset my password?"],
    "neutral": ["hello", "order number below", "thanks", "there is an issue with my order", "see the attached photo"],
    "angry": ["terrible service!", "I am very angry", "worst shop ever", "totally useless support"],
    "happy": ["thank you, great help", "the agent was very helpful", "excellent service"],
    "spam": ["earn money fast from home", "work from home, 500 dollars a day", "click here to claim your free gift",
             "crypto investment with guaranteed returns", "cheap SEO services for your shop"],
}
_TOPICS = ["refund", "delivery", "product", "account", "billing", "complaint", "legal", "urgent", "question", "neutral",
           "spam"]
_TOPIC_WEIGHTS = [14, 16, 12, 8, 8, 8, 4, 6, 14, 10, 2]
_CHANNELS = ["wechat", "weibo", "douyin", "kuaishou", "zhihu", "email", "phone", "chat", "web", "app", "sms", "forum"]
_CHANNEL_WEIGHTS = [18, 10, 8, 4, 3, 12, 8, 12, 8, 10, 3, 4]
_SOCIAL = {"weibo", "douyin", "kuaishou", "zhihu", "forum", "wechat"}


def make_raw_tickets(n: int, seed: int = 20240611) -> list[dict[str, Any]]:
    """`n` raw tickets: 60 % Chinese, 35 % English, 5 % mixed, with realistic channels, tiers,
    public flags and order values. Every text carries its own order number, so no two texts are
    the same and nothing can be cached from one ticket to the next."""
    rng = random.Random(seed)
    tickets = []
    for i in range(n):
        roll = rng.random()
        lang = "zh" if roll < 0.60 else "en" if roll < 0.95 else "mixed"
        topics = rng.choices(_TOPICS, _TOPIC_WEIGHTS, k=rng.choice((1, 1, 2, 2, 3)))
        mood = rng.choices(["angry", "happy", None], [25, 10, 65])[0]
        if "spam" in topics:  # an advert is only an advert
            topics, mood = ["spam"], None
        parts = []
        for topic in topics + ([mood] if mood else []):
            pool = _ZH if lang == "zh" or (lang == "mixed" and rng.random() < 0.5) else _EN
            parts.append(rng.choice(pool[topic]))
        rng.shuffle(parts)
        order = rng.randrange(10_000_000, 99_999_999)
        if lang == "zh":
            subject = rng.choice([f"订单{order}", parts[0], f"关于订单 {order} 的问题", ""])
            body = "，".join(parts) + rng.choice(["。", "！", "？", "", "。谢谢"]) + f" 订单号 {order}"
        else:
            subject = rng.choice([f"Order #{order}", parts[0].capitalize(), f"Re: order {order}", ""])
            body = ". ".join(p[0].upper() + p[1:] for p in parts) + rng.choice([".", "!", "?", ""]) + f" Order {order}."
        channel = rng.choices(_CHANNELS, _CHANNEL_WEIGHTS)[0]
        raw: dict[str, Any] = {
            "channel": channel,
            "is_public": channel in _SOCIAL and channel != "wechat" and rng.random() < 0.5,
            "subject": subject,
            "body": body,
            "customer": {"id": f"c{i}", "tier": rng.choices(["standard", "premium", "vip"], [70, 20, 10])[0],
                         "language": "en" if lang == "en" else "zh"},
            "status": "received",
            "reopen_count": rng.choices([0, 1, 2], [85, 12, 3])[0],
            "tags": [],
        }
        if rng.random() < 0.7:
            raw["order_value"] = round(rng.lognormvariate(6.5, 1.3), 2)
        if rng.random() < 0.6:
            raw["prior_contacts"] = rng.choices([0, 1, 2, 3, 5], [50, 25, 12, 8, 5])[0]
        if rng.random() < 0.08:  # a web form lets the customer pick a category
            raw["category"] = rng.choice(["refund", "billing", "delivery"])
        tickets.append(raw)
    return tickets


# Fields a stage sets before its groups run (what the workflow knows at that moment); `ticket` is
# the ticket so far, with the decisions of the earlier stages.
def _stage_fields(stage: str, rng: random.Random, ticket: Mapping[str, Any]) -> dict[str, Any]:
    if stage == "assign":
        return {"status": "triaged"}
    if stage == "pending":
        return {"status": "pending_customer"}
    if stage == "sla_event":
        event = rng.choices(["warning", "breach", "followup"], [55, 30, 15])[0]
        return {"status": "open", "sla.event": event, "sla.metric": rng.choice(SLA_METRICS),
                "sla.threshold": rng.choice([0.5, 0.75, 0.9]) if event == "warning" else 1.0,
                "escalation.tier": rng.choices(TIERS_UP, [60, 25, 10, 5])[0],
                "age_hours": round(rng.uniform(0.5, 72), 1)}
    if stage == "compensation":  # an agent offers something with `ticketflow compensate`
        kind = rng.choices(COMPENSATIONS, [50, 30, 20])[0]
        if kind == "coupon":  # coupons come in round face values
            amount: float = rng.choice([10, 20, 30, 50, 100, 150, 200, 300, 500, 1000])
        else:  # a refund or a reship: the value of (part of) an order, clamped to 20..6000
            amount = round(min(6000.0, max(20.0, rng.lognormvariate(5.3, 1.1))), 2)
        return {"status": "open", "compensation.kind": kind, "compensation.amount": amount,
                "agent.tier": rng.choices(AGENT_TIERS, [60, 25, 10, 5])[0]}
    if stage == "resolve":
        fields: dict[str, Any] = {"status": "resolved",
                                  "resolved_by": rng.choices(RESOLVERS, [80, 12, 8])[0],
                                  "origin": rng.choices(ORIGINS, [95, 5])[0]}
        if rng.random() < 0.4:  # surveyed before (missing: never)
            fields["customer.days_since_survey"] = round(rng.uniform(1, 365), 1)
        return fields
    if stage == "survey_answer":
        # The kind survey.yaml sends the tier (VIPs nps, others csat); 15 % answer the other
        # kind, a survey sent under an earlier version of the rules or before a tier change.
        nps = (ticket.get("customer.tier") == "vip") != (rng.random() < 0.15)
        if nps:
            score = rng.choices(range(11), [3, 2, 2, 3, 3, 5, 7, 10, 20, 20, 25])[0]
        else:
            score = rng.choices(range(1, 6), [6, 5, 10, 29, 50])[0]
        return {"status": "surveying", "survey.kind": "nps" if nps else "csat", "survey.score": score}
    return {}


def stage_snapshots(ruleset: Ruleset, raws: list[dict[str, Any]], seed: int = 7) -> tuple[list[tuple[dict, ...]], float]:
    """Per ticket, one snapshot per stage of STAGES, each carrying the decisions of the stages
    before it (applied with stages.apply_to_snapshot, as the workflow does). Returns the
    snapshots and the time build_snapshot took per ticket."""
    rng = random.Random(seed)
    spent = 0.0
    out = []
    for raw in raws:
        started = time.perf_counter()
        running = build_snapshot(raw)
        spent += time.perf_counter() - started
        per_stage = []
        for stage, groups in STAGES:
            snapshot = dict(running)
            snapshot.update(_stage_fields(stage, rng, running))
            per_stage.append(snapshot)
            running = dict(snapshot)
            for group in groups:
                if ruleset.has_group(group):
                    apply_to_snapshot(running, ruleset.evaluate(group, snapshot))
        out.append(tuple(per_stage))
    return out, spent / max(1, len(raws))


def evaluation_plan(ruleset: Ruleset) -> tuple[tuple[int, str], ...]:
    """(stage index, group) for every group of the ruleset, in the order the workflow runs them."""
    plan = tuple((index, group) for index, (_, groups) in enumerate(STAGES) for group in groups
                 if ruleset.has_group(group))
    missing = set(ruleset.groups) - {group for _, group in plan}
    if missing:
        raise SystemExit(f"groups not in engine/ruleset/stages.py STAGES, cannot place them: {sorted(missing)}")
    return plan


# ---------------------------------------------------------------------------------------------
# The hand-written baseline

# `_is_word_char` of the engine as a regex class: a letter or digit below U+2E80 (CJK).
_WORD = "[^\\W_\u2e80-\U0010ffff]"


def keyword_regex(words: list[str]) -> re.Pattern[str]:
    """One regex for a keyword list with the engine's matching rule: a keyword that starts with
    a Latin letter or digit must start a word, other keywords (Chinese) match anywhere. The
    word-start check is a lookbehind placed after the first letter, so the regex engine can still
    skip quickly to the possible first characters (a leading lookbehind makes it ~3x slower)."""
    parts = []
    for word in sorted({fold(w) for w in words}, key=len, reverse=True):
        head, rest = re.escape(word[0]), re.escape(word[1:])
        if word[0].isalnum() and word[0] < "\u2e80":
            parts.append(f"{head}(?<!{_WORD}{head}){rest}")
        else:
            parts.append(head + rest)
    return re.compile("|".join(parts))


def _keywords(ruleset: Ruleset, rule_id: str, *path: Any) -> list[str]:
    """The contains_any list of a rule of the loaded ruleset, at `path` inside its condition."""
    rule = next(r for group in ruleset.groups.values() for r in group.rules if r.id == rule_id)
    node: Any = rule.when
    for step in path:
        node = node[step]
    assert node["field"] == "text" and "contains_any" in node, (rule_id, path, node)
    return node["contains_any"]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _folded_text(s: Mapping) -> str | None:
    """The snapshot's text as the rules compare it: build_snapshot's folded copy (the same input
    the engine reads) when it belongs to this text, else folded here; None if there is no text."""
    text = s.get("text")
    ready = s.get(FOLDED_TEXT)
    return ready[1] if ready is not None and ready[0] is text else fold(text) if isinstance(text, str) else None


def _folded(value: Any) -> str | None:
    """A string field (category) as the rules compare it; None if it is not a string."""
    return fold(value) if isinstance(value, str) else None


class Baseline:
    """rules/*.yaml written as plain Python. Each method returns {group: (rule ids, actions)}."""

    def __init__(self, ruleset: Ruleset):
        kw = lambda rule_id, *path: keyword_regex(_keywords(ruleset, rule_id, *path)).search
        self.product, self.account = kw("topic-product"), kw("topic-account")
        self.billing, self.delivery, self.refund = kw("topic-billing"), kw("topic-delivery"), kw("topic-refund")
        self.complaint = kw("topic-complaint", "any", 0)
        self.spam = kw("topic-spam")
        self.urgent, self.legal = kw("tag-urgent"), kw("tag-legal-risk")
        # priority.yaml repeats the urgent and legal lists (a test keeps them equal) but has its
        # own complaint list; the information-request rule has a question list and a trouble list.
        self.p_complaint = kw("p2-complaint-or-angry", "any", 0)
        self.question = kw("p4-information-request", "all", 0)
        self.trouble = kw("p4-information-request", "all", 2, "not")
        # The faq group is written by the loader from rules/faq.yaml, one rule per entry in file
        # order: (entry id, its keywords in every language). Every entry shares one extra
        # condition (not for complaints, spam or public posts), written out in `faq` below.
        self.faq_entries = [(rule.id, kw(rule.id, "all", 0)) for rule in ruleset.groups["faq"].rules]
        self.then = {rule.id: rule.then for group in ruleset.groups.values() for rule in group.rules}

    def _first(self, group: str, rule_id: str) -> tuple[list[str], dict[str, Any]]:
        then = self.then[rule_id]
        return [rule_id], {k: list(v) if isinstance(v, list) else v for k, v in then.items()}

    def stages(self) -> list[tuple[int, Callable[[Mapping], Any], str | None]]:
        """(index in STAGES, the method deciding that stage, its group) in the workflow's order;
        the group is None for classify and assign, which decide several groups and return a dict."""
        by_name = {"classify": (self.classify, None), "assign": (self.assign, None),
                   "pending": (self.auto_close, "auto_close"), "sla_event": (self.escalation, "escalation"),
                   "compensation": (self.compensation, "compensation"), "resolve": (self.survey, "survey"),
                   "survey_answer": (self.recovery, "recovery")}
        return [(index, *by_name[name]) for index, (name, _) in enumerate(STAGES)]

    def decide(self, snapshots: tuple[Mapping, ...]) -> dict[str, tuple[list[str], dict[str, Any]]]:
        """Every group's decision for one ticket, from its stage snapshots."""
        out: dict[str, tuple[list[str], dict[str, Any]]] = {}
        for index, decide, group in self.stages():
            decided = decide(snapshots[index])
            out.update(decided if group is None else {group: decided})
        return out

    def classify(self, s: Mapping) -> dict[str, tuple[list[str], dict[str, Any]]]:
        t = _folded_text(s)
        sentiment = s.get("sentiment")
        angry5 = _number(sentiment) and sentiment <= -0.5
        tier = s.get("customer.tier")
        urgent = legal = None  # searched once, shared by both groups

        # classification (match: all): later category wins, tags accumulate
        ids: list[str] = []
        tags: list[str] = []
        category = None
        if _is_empty(s.get("category")):
            ids.append("default-general")
            category = "general"
        if t is not None:
            for rule_id, search, topic in (("topic-product", self.product, "product"),
                                           ("topic-account", self.account, "account"),
                                           ("topic-billing", self.billing, "billing"),
                                           ("topic-delivery", self.delivery, "delivery"),
                                           ("topic-refund", self.refund, "refund")):
                if search(t):
                    ids.append(rule_id)
                    category = topic
                    tags.append(topic)
        if (t is not None and self.complaint(t)) or (_number(sentiment) and sentiment <= -0.6):
            ids.append("topic-complaint")
            category = "complaint"
            tags.append("complaint")
        if t is not None and self.spam(t):
            ids.append("topic-spam")
            category = "spam"
            tags.append("spam")
        if s.get("is_public") is True:
            ids.append("tag-public")
            tags.append("public")
        channel = s.get("channel")
        if isinstance(channel, str) and channel in ("weibo", "douyin", "kuaishou", "zhihu", "wechat"):
            ids.append("tag-social")
            tags.append("social")
        if tier == "vip":
            ids.append("tag-vip")
            tags.append("vip")
        if angry5:
            ids.append("tag-angry")
            tags.append("angry")
        if t is not None:
            urgent = self.urgent(t) is not None
            if urgent:
                ids.append("tag-urgent")
                tags.append("urgent")
            legal = self.legal(t) is not None
            if legal:
                ids.append("tag-legal-risk")
                tags.append("legal-risk")
        reopen, prior = s.get("reopen_count"), s.get("prior_contacts")
        repeat = (_number(reopen) and reopen >= 1) or (_number(prior) and prior >= 3)
        if repeat:
            ids.append("tag-repeat-contact")
            tags.append("repeat-contact")
        value = s.get("order_value")
        high_value = _number(value) and value >= 5000
        if high_value:
            ids.append("tag-high-value")
            tags.append("high-value")
        actions: dict[str, Any] = {}
        if category is not None:
            actions["category"] = category
        if tags:
            actions["tags"] = tags
        classification = (ids, actions)

        # priority (match: first)
        if s.get("is_public") is True and _number(sentiment) and sentiment <= -0.3:
            rule = "p1-public-negative"
        elif tier == "vip" and urgent:
            rule = "p1-vip-urgent"
        elif legal:
            rule = "p1-legal-risk"
        elif tier == "vip":
            rule = "p2-vip"
        elif (t is not None and self.p_complaint(t)) or angry5:
            rule = "p2-complaint-or-angry"
        elif high_value:
            rule = "p2-high-value-order"
        elif repeat:
            rule = "p2-repeat-contact"
        elif (t is not None and self.question(t) and _number(sentiment) and sentiment >= 0
              and not self.trouble(t)):
            rule = "p4-information-request"
        else:
            rule = "p3-default"
        return {"classification": classification, "priority": self._first("priority", rule)}

    def assign(self, s: Mapping) -> dict[str, tuple[list[str], dict[str, Any]]]:
        category = _folded(s.get("category"))
        sentiment = s.get("sentiment")
        public = s.get("is_public") is True
        tags = s.get("tags")
        if s.get("customer.tier") == "vip":
            rule = "vip-care"
        elif public and _number(sentiment) and sentiment <= -0.3:
            rule = "complaints-public-negative"
        elif category == "complaint" or (isinstance(tags, list) and "legal-risk" in
                                         [fold(tag) for tag in tags if isinstance(tag, str)]):
            rule = "complaints"
        elif category in ("refund", "billing"):
            rule = "refunds"
        elif category == "delivery":
            rule = "logistics"
        elif category in ("product", "account"):
            rule = "product-support"
        else:
            rule = "general-support"
        priority = s.get("priority")
        if priority == "P1":
            policy = "sla-p1"
        elif public and s.get("channel") in ("weibo", "douyin", "kuaishou", "zhihu", "forum"):
            policy = "sla-public-social"
        elif priority == "P2":
            policy = "sla-p2"
        elif priority == "P4":
            policy = "sla-p4"
        else:
            policy = "sla-default"
        return {"routing": self._first("routing", rule), "sla_policy": self._first("sla_policy", policy),
                "respond": self.respond(s, category, public), "resolution": self.resolution(category),
                "faq": self.faq(s, category, public)}

    def respond(self, s: Mapping, category: str | None, public: bool) -> tuple[list[str], dict[str, Any]]:
        channel = s.get("channel")
        if public:
            rule = "public-posts-human-first"
        elif category == "complaint":
            rule = "complaints-human-first"
        elif s.get("customer.tier") == "vip":
            rule = "vip-human-first"
        elif channel == "phone":
            rule = "phone-human-first"
        elif channel in ("chat", "app", "web"):
            rule = "bot-first-on-chat-surfaces"
        else:
            rule = "default-human-first"
        return self._first("respond", rule)

    def resolution(self, category: str | None) -> tuple[list[str], dict[str, Any]]:
        if category == "complaint":
            return self._first("resolution", "complaints-need-person-and-root-cause")
        return self._first("resolution", "default-resolution")

    def faq(self, s: Mapping, category: str | None, public: bool) -> tuple[list[str], dict[str, Any]]:
        # No entry answers complaints, spam or public posts; otherwise the first entry (in file
        # order) with a keyword in the text.
        if category not in ("complaint", "spam") and not public:
            t = _folded_text(s)
            if t is not None:
                for entry, search in self.faq_entries:
                    if search(t):
                        return self._first("faq", entry)
        return [], {}

    def auto_close(self, s: Mapping) -> tuple[list[str], dict[str, Any]]:
        category = s.get("category")
        if isinstance(category, str) and fold(category) == "complaint":
            return self._first("auto_close", "complaints-wait-longer")
        if s.get("customer.tier") == "vip":
            return self._first("auto_close", "vip-wait-longer")
        return self._first("auto_close", "default-auto-close")

    def escalation(self, s: Mapping) -> tuple[list[str], dict[str, Any]]:
        event, tier = s.get("sla.event"), s.get("escalation.tier")
        threshold = s.get("sla.threshold")
        late = event in ("breach", "followup")
        if event == "warning" and _number(threshold) and threshold >= 0.9:
            rule = "warn-late-stage"
        elif event == "warning":
            rule = "warn-assignee"
        elif late and s.get("priority") == "P1" and tier == "agent":
            rule = "p1-breach-to-senior"
        elif late and tier == "agent":
            rule = "breach-to-senior"
        elif late and tier == "senior":
            rule = "senior-to-other-department"
        elif late and tier == "other_department":
            rule = "to-management"
        else:
            rule = "management-keeps-informed"
        return self._first("escalation", rule)

    def compensation(self, s: Mapping) -> tuple[list[str], dict[str, Any]]:
        tier, amount = s.get("agent.tier"), s.get("compensation.amount")
        amount = amount if _number(amount) else None
        if tier == "manager" and amount is not None and amount <= 5000:
            rule = "manager-up-to-5000"
        elif tier == "agent" and s.get("compensation.kind") == "coupon" and amount is not None and amount <= 200:
            rule = "agent-coupon-up-to-200"
        elif tier == "agent" and amount is not None and amount <= 100:
            rule = "agent-up-to-100"
        elif tier in ("senior", "expert") and amount is not None and amount <= 500:
            rule = "senior-up-to-500"
        elif amount is not None and amount > 2000:
            rule = "above-2000-needs-manager"
        elif amount is not None and amount > 500:
            rule = "above-500-needs-expert"
        else:
            rule = "needs-senior"
        return self._first("compensation", rule)

    def survey(self, s: Mapping) -> tuple[list[str], dict[str, Any]]:
        days = s.get("customer.days_since_survey")
        if _folded(s.get("category")) == "spam":
            return self._first("survey", "no-survey-spam")
        if s.get("resolved_by") == "auto_close":
            return self._first("survey", "no-survey-auto-closed")
        if s.get("origin") == "agent":
            return self._first("survey", "no-survey-agent-initiated")
        if _number(days) and days < 30:
            return self._first("survey", "no-survey-recently-surveyed")
        if s.get("channel") == "phone":
            return self._first("survey", "no-survey-phone")
        if s.get("customer.tier") == "vip":
            return self._first("survey", "vip-nps")
        return self._first("survey", "default-csat")

    def recovery(self, s: Mapping) -> tuple[list[str], dict[str, Any]]:
        kind, score = s.get("survey.kind"), s.get("survey.score")
        scored = _number(score)
        if s.get("customer.tier") == "vip" and kind == "nps" and scored and score <= 6:
            return self._first("recovery", "vip-detractor")
        if kind == "csat" and scored and score <= 2:
            return self._first("recovery", "csat-dissatisfied")
        if kind == "nps" and scored and score <= 6:
            return self._first("recovery", "nps-detractor")
        return self._first("recovery", "satisfied")


def verify(ruleset: Ruleset, baseline: Baseline, tickets: list[tuple[dict, ...]],
           plan: tuple[tuple[int, str], ...]) -> tuple[int, list[str]]:
    """Assert that the engine and the baseline decide the same for every group of every ticket;
    returns the number of decisions compared and the rules that never matched (whose baseline
    branch the check therefore did not cover)."""
    compared = 0
    matched: set[str] = set()
    stages: dict[int, tuple[str, ...]] = {}
    for stage, group in plan:
        stages[stage] = stages.get(stage, ()) + (group,)
    for number, snapshots in enumerate(tickets):
        expected = baseline.decide(snapshots)
        for stage, group in plan:
            result = ruleset.evaluate(group, snapshots[stage])
            got = (result.rule_ids, result.actions)
            outcome = ruleset.decide(group, snapshots[stage])  # the same, read-only and without trace
            staged = ruleset.decider(stages[stage])(snapshots[stage])[stages[stage].index(group)]
            if (staged.rule_ids, dict(staged.actions)) != (outcome.rule_ids, dict(outcome.actions)):
                raise AssertionError(f"decider and decide disagree on group {group}, ticket {number}: {staged} vs {outcome}")
            if (list(outcome.rule_ids), _listed(outcome.actions)) != got:
                raise AssertionError(f"decide and evaluate disagree on group {group}, ticket {number}: "
                                     f"{outcome} vs {got}")
            if got != expected.get(group):
                raise AssertionError(
                    f"baseline and engine disagree on group {group}, ticket {number}: engine {got}, "
                    f"baseline {expected.get(group)}; text {snapshots[0].get('text')!r}. If rules/ changed, "
                    "update Baseline in bench/rules_bench.py")
            matched.update(result.rule_ids)
            compared += 1
    never = [rule.id for group in ruleset.groups.values() for rule in group.rules if rule.id not in matched]
    return compared, never


def _listed(actions: Mapping[str, Any]) -> dict[str, Any]:
    """GroupOutcome actions (tuples, read-only) as evaluate returns them (lists, a dict)."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in actions.items()}


def verify_paths(ruleset: Ruleset, tickets: list[tuple[dict, ...]], plan: tuple[tuple[int, str], ...]) -> int:
    """For a ruleset without a hand-written twin (the generated one): decide, evaluate and
    explain must agree on every decision, and the stage functions (decider, stage_evaluator)
    with the group's own; returns how many were compared."""
    compared = 0
    stages: dict[int, tuple[str, ...]] = {}
    for stage, group in plan:
        stages[stage] = stages.get(stage, ()) + (group,)
    for number, snapshots in enumerate(tickets):
        for stage, group in plan:
            snapshot = snapshots[stage]
            outcome = ruleset.decide(group, snapshot)
            staged = ruleset.decider(stages[stage])(snapshot)[stages[stage].index(group)]
            # equal, not always the same object: past the cache of combinations, outcomes are new
            if (staged.rule_ids, dict(staged.actions)) != (outcome.rule_ids, dict(outcome.actions)):
                raise AssertionError(f"decider and decide disagree on group {group}, ticket {number}")
            traced = ruleset.evaluate(group, snapshot)
            if ruleset.stage_evaluator(stages[stage])(snapshot)[stages[stage].index(group)] != traced:
                raise AssertionError(f"stage_evaluator and evaluate disagree on group {group}, ticket {number}")
            explained = ruleset.evaluate(group, snapshot, explain=True)
            views = {(tuple(traced.rule_ids), json.dumps(traced.actions, sort_keys=True)),
                     (tuple(explained.rule_ids), json.dumps(explained.actions, sort_keys=True)),
                     (outcome.rule_ids, json.dumps(_listed(outcome.actions), sort_keys=True))}
            if len(views) != 1:
                raise AssertionError(f"decide, evaluate and explain disagree on group {group}, ticket {number}: {views}")
            compared += 1
    return compared


# ---------------------------------------------------------------------------------------------
# A generated 200-rule ruleset

_EXTRA_WORDS = ["coupon", "discount", "points", "membership", "subscription", "cancel", "upgrade", "exchange",
                "size", "color", "stock", "preorder", "gift card", "voucher", "install", "battery", "charger",
                "screen", "bluetooth", "wifi", "优惠券", "积分", "会员", "订阅", "取消", "升级", "换货", "尺码",
                "颜色", "库存", "预售", "礼品卡", "安装", "电池", "充电器", "屏幕", "蓝牙", "网络", "发票抬头",
                "地址", "改地址", "催单", "加急", "价保", "差价", "赠品", "少发", "错发", "漏发"]
_REGEXES = [r"订单\s*\d{6,}", r"order\s*#?\d{5,}", r"\d{11}", r"(?:退|换)货", r"https?://\S+", r"[!！]{2,}"]


def generate_ruleset_yaml(ruleset: Ruleset, n_rules: int = 200, seed: int = 99) -> str:
    """YAML text of a valid ruleset with `n_rules` rules over every group, using the keywords of
    `ruleset` plus others, and every operator family (keywords, enums, numbers, regex, prefix,
    lists, presence) nested in all/any/not."""
    rng = random.Random(seed)
    words = sorted({w for group in ruleset.groups.values() for rule in group.rules
                    for w in _all_keywords(rule.when)} | set(_EXTRA_WORDS))

    def leaf() -> dict[str, Any]:
        kind = rng.choices(["text", "channel", "tier", "public", "sentiment", "value", "repeat", "language",
                            "subject", "body", "tags", "category", "priority", "event", "escalation", "set"],
                           [30, 8, 8, 4, 6, 6, 4, 3, 3, 3, 5, 5, 4, 3, 3, 2])[0]
        if kind == "text":
            return {"field": "text", rng.choice(["contains_any"] * 5 + ["contains_all"]): rng.sample(words, rng.randint(2, 10))}
        if kind == "channel":
            return {"field": "channel", "in": rng.sample(_CHANNELS, rng.randint(1, 5))}
        if kind == "tier":
            return {"field": "customer.tier", "eq": rng.choice(["standard", "premium", "vip"])}
        if kind == "public":
            return {"field": "is_public", "eq": rng.random() < 0.7}
        if kind == "sentiment":
            return {"field": "sentiment", rng.choice(["lte", "gte", "lt"]): round(rng.uniform(-0.8, 0.6), 2)}
        if kind == "value":
            low = rng.choice([100, 500, 1000, 2000, 5000])
            return rng.choice([{"field": "order_value", "gte": low}, {"field": "order_value", "between": [low, low * 4]}])
        if kind == "repeat":
            return {"field": rng.choice(["reopen_count", "prior_contacts"]), "gte": rng.randint(1, 4)}
        if kind == "language":
            return {"field": "customer.language", "in": rng.sample(["zh", "en", "zh-TW", "ja"], rng.randint(1, 2))}
        if kind == "subject":
            return {"field": "subject", "starts_with": rng.choice(["re:", "订单", "关于", "order", "fw:"])}
        if kind == "body":
            return {"field": "body", "matches": rng.choice(_REGEXES)}
        if kind == "tags":
            return {"field": "tags", "contains_any": rng.sample(["refund", "complaint", "vip", "urgent", "legal-risk",
                                                                 "public", "angry", "social"], rng.randint(1, 3))}
        if kind == "category":
            return {"field": "category", "in": rng.sample(["refund", "billing", "delivery", "product", "account",
                                                           "complaint", "general"], rng.randint(1, 3))}
        if kind == "priority":
            return {"field": "priority", "in": rng.sample(["P1", "P2", "P3", "P4"], rng.randint(1, 2))}
        if kind == "event":
            return {"field": "sla.event", "eq": rng.choice(["warning", "breach", "followup"])}
        if kind == "escalation":
            return {"field": "escalation.tier", "eq": rng.choice(TIERS_UP)}
        return {"field": rng.choice(["prior_contacts", "category", "order_value"]), rng.choice(["is_set", "is_empty"]): True}

    def condition(depth: int = 0) -> dict[str, Any]:
        roll = rng.random()
        if depth < 2 and roll < 0.3:
            return {"all": [condition(depth + 1) for _ in range(rng.randint(2, 3))]}
        if depth < 2 and roll < 0.45:
            return {"any": [condition(depth + 1) for _ in range(rng.randint(2, 3))]}
        if depth < 2 and roll < 0.5:
            return {"not": leaf()}
        return leaf()

    values = {
        "classification": lambda i: {"category": rng.choice(["refund", "billing", "delivery", "product", "vip-care"]),
                                     "tags": rng.sample(["gen-a", "gen-b", "gen-c", "gen-d"], 2)},
        "priority": lambda i: {"priority": rng.choice(["P1", "P2", "P3", "P4"])},
        "routing": lambda i: {"team": f"team-{i % 9}", "skills": [rng.choice(["vip", "billing", "delivery"])],
                              "strategy": rng.choice(["least_loaded", "round_robin"])},
        "sla_policy": lambda i: {"policy": rng.choice(["gen-fast", "gen-normal", "gen-slow"])},
        "auto_close": lambda i: {"auto_close_after": f"{rng.randint(3, 14)}d", "remind_before": "1d", "reopen_window": "7d"},
        "escalation": lambda i: {"notify": rng.sample(["assignee", "team_lead", "manager"], 2), "tier_up": rng.random() < 0.5},
        "survey": lambda i: {"survey": True, "kind": rng.choice(["csat", "nps"]), "delay": f"{rng.randint(1, 4)}h"},
    }
    sizes = {"classification": 70, "priority": 40, "routing": 30, "sla_policy": 15, "auto_close": 10,
             "escalation": 20, "survey": 15}
    scale = n_rules / sum(sizes.values())
    groups = []
    for name, size in sizes.items():
        count = max(2, round(size * scale))
        first = name != "classification"
        rules, seen = [], set()
        while len(rules) < count - (1 if first else 0):
            when = condition()
            key = json.dumps(when, sort_keys=True, ensure_ascii=False)
            if key in seen:
                continue
            seen.add(key)
            rules.append({"id": f"gen-{name.replace('_', '-')}-{len(rules)}", "when": when, "then": values[name](len(rules))})
        if first:
            rules.append({"id": f"gen-{name.replace('_', '-')}-default", "then": values[name](len(rules))})
        groups.append({"name": name, "match": "all" if name == "classification" else "first", "rules": rules})
    doc = {"sla_policies": {"gen-fast": {"first_response": "30m", "resolution": "4h"},
                            "gen-normal": {"first_response": "4h", "resolution": "1d"},
                            "gen-slow": {"first_response": "1d", "resolution": "5d"}},
           "groups": groups}
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=120)


def _all_keywords(cond: Any) -> list[str]:
    if isinstance(cond, dict):
        found = list(cond.get("contains_any", [])) if cond.get("field") == "text" else []
        for value in cond.values():
            found += _all_keywords(value)
        return found
    if isinstance(cond, list):
        return [word for item in cond for word in _all_keywords(item)]
    return []


# ---------------------------------------------------------------------------------------------
# Timing


def best_of(repeats: int, run: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def engine_loop(ruleset: Ruleset, tickets: list[tuple[dict, ...]], plan: tuple[tuple[int, str], ...],
                mode: str) -> Callable[[], None]:
    """Stage by stage over all tickets, as workers do: the groups of one stage are evaluated
    together on one snapshot (one activity), and another ticket's stages come in between.

    mode: "decide" (Ruleset.decider: one function per stage returning each group's rule ids and
    actions, no trace - what the baseline's method per stage returns too), "trace"
    (Ruleset.stage_evaluator: one function per stage returning each group's result with the
    compact trace the workflow records in history, as fresh objects the caller owns - what the
    worker's evaluation activity calls) or "explain" (evaluate with explain=True per group: every
    leaf). The first two map each stage's function over that stage's snapshots, as the baseline
    loop does."""
    stages: dict[int, list[str]] = {}
    for stage, group in plan:
        stages.setdefault(stage, []).append(group)
    if mode in ("decide", "trace"):
        make = ruleset.decider if mode == "decide" else ruleset.stage_evaluator
        functions = [(make(tuple(groups)), column(tickets, stage)) for stage, groups in stages.items()]

        def run_stages() -> None:
            for function, snapshots in functions:
                consume(map(function, snapshots))
        return run_stages

    def run() -> None:
        for stage, groups in stages.items():
            for snapshots in tickets:
                snapshot = snapshots[stage]
                for group in groups:
                    ruleset.evaluate(group, snapshot, True)
    return run


def baseline_loop(baseline: Baseline, tickets: list[tuple[dict, ...]]) -> Callable[[], None]:
    """The same order and the same loop as engine_loop's decide mode: stage by stage over all
    tickets, one function per stage mapped over that stage's snapshots."""
    stages = [(decide, column(tickets, stage)) for stage, decide, _ in baseline.stages()]

    def run() -> None:
        for decide, snapshots in stages:
            consume(map(decide, snapshots))
    return run


def column(tickets: list[tuple[dict, ...]], stage: int) -> list[dict]:
    """The snapshots of one stage, every ticket's, in ticket order."""
    return [snapshots[stage] for snapshots in tickets]


def consume(calls: Any) -> None:
    """Run an iterator of calls to the end at C speed: the loop costs the same for the engine
    and the baseline, and as little as Python allows, so the figures are the deciding functions'
    own (a `for` loop in Python added about 1.3 µs per ticket to both)."""
    collections.deque(calls, maxlen=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20k tickets, fewer repeats: well under a minute")
    parser.add_argument("--json", action="store_true", help="end with one JSON line holding every figure")
    parser.add_argument("--tickets", type=int, help="number of synthetic tickets (default 100000, quick 20000)")
    parser.add_argument("--rules", default=str(ROOT / "rules"), help="rules directory (default: rules/)")
    args = parser.parse_args(argv)
    n = args.tickets or (20_000 if args.quick else 100_000)
    repeats = 2 if args.quick else 3
    load_repeats = 5 if args.quick else 10

    rules_dir = Path(args.rules)
    ruleset = load_ruleset(rules_dir)
    plan = evaluation_plan(ruleset)
    generated_text = generate_ruleset_yaml(ruleset)
    generated = load_ruleset_texts({"generated.yaml": generated_text})
    generated_plan = evaluation_plan(generated)
    n_generated = sum(len(group.rules) for group in generated.groups.values())
    n_default = sum(len(group.rules) for group in ruleset.groups.values())

    setup_started = time.perf_counter()
    tickets, snapshot_seconds = stage_snapshots(ruleset, make_raw_tickets(n))
    baseline = Baseline(ruleset)
    compared, never_matched = verify(ruleset, baseline, tickets, plan)
    compared_generated = verify_paths(generated, tickets, generated_plan)
    setup_seconds = time.perf_counter() - setup_started
    gc.collect()
    gc.freeze()  # the snapshots live for the whole run: keep collections from walking them

    # Once per process, not per load: generating the fast schema checker (schemacheck.py). A
    # first load pays it; it is printed on its own below and not in the load figures.
    schemacheck._check = None  # the loads above generated it already: measure a fresh one
    schema_once = time.perf_counter()
    schemacheck._validator()
    schema_once = time.perf_counter() - schema_once
    # re.purge(): Python caches compiled regexes, so a second load of the same rules would skip
    # compiling the ruleset's patterns; every timed load here pays for them like a first load.
    default_load = best_of(load_repeats, lambda: (re.purge(), load_ruleset(rules_dir)))
    generated_load = best_of(load_repeats, lambda: (re.purge(), load_ruleset_texts({"generated.yaml": generated_text})))
    t_base = best_of(repeats, baseline_loop(baseline, tickets))
    t = {mode: best_of(repeats, engine_loop(ruleset, tickets, plan, mode)) for mode in ("decide", "trace", "explain")}
    t_generated = {mode: best_of(repeats, engine_loop(generated, tickets, generated_plan, mode))
                   for mode in ("decide", "trace")}
    # The same rules decided by the generated Python, the path without the C extension, in the
    # same run (its answers are checked equal to the native ones before timing).
    t_python: dict[str, float] = {}
    if ruleset.evaluator == "native":
        with mock.patch.dict(os.environ, {"TICKETFLOW_RULES_NATIVE": "0"}):
            python_rules = load_ruleset(rules_dir)
        verify(python_rules, baseline, tickets, plan)
        t_python = {mode: best_of(repeats, engine_loop(python_rules, tickets, plan, mode)) for mode in ("decide", "trace")}
    # Each group alone over all tickets: here every group pays for folding and scanning the text
    # it reads, which in the loop above classification and priority share.
    per_group = {group: best_of(repeats, engine_loop(ruleset, tickets, ((stage, group),), "decide")) / n
                 for stage, group in plan}

    figures = {
        "tickets": n,
        "groups": [group for _, group in plan],
        "rules_default": n_default,
        "rules_generated": n_generated,
        "baseline_tickets_per_s": round(n / t_base),
        "engine_tickets_per_s": round(n / t["decide"]),
        "engine_trace_tickets_per_s": round(n / t["trace"]),
        "engine_explain_tickets_per_s": round(n / t["explain"]),
        "engine_200_rules_tickets_per_s": round(n / t_generated["decide"]),
        "engine_200_rules_trace_tickets_per_s": round(n / t_generated["trace"]),
        "ratio": round(t_base / t["decide"], 3),
        "ratio_trace": round(t_base / t["trace"], 3),
        "ratio_explain": round(t_base / t["explain"], 3),
        "baseline_us_per_ticket": round(t_base / n * 1e6, 2),
        "engine_us_per_ticket": round(t["decide"] / n * 1e6, 2),
        "engine_trace_us_per_ticket": round(t["trace"] / n * 1e6, 2),
        "engine_explain_us_per_ticket": round(t["explain"] / n * 1e6, 2),
        "engine_200_rules_us_per_ticket": round(t_generated["decide"] / n * 1e6, 2),
        "python_evaluator_tickets_per_s": round(n / t_python["decide"]) if t_python else None,
        "python_evaluator_trace_tickets_per_s": round(n / t_python["trace"]) if t_python else None,
        "engine_us_per_group_evaluation": round(t["decide"] / (n * len(plan)) * 1e6, 3),
        "engine_us_per_group_alone": {group: round(seconds * 1e6, 2) for group, seconds in per_group.items()},
        "load_default_ms": round(default_load * 1e3, 2),
        "load_200_rules_ms": round(generated_load * 1e3, 2),
        "schema_checker_once_ms": round(schema_once * 1e3, 1),
        "build_snapshot_us_per_ticket": round(snapshot_seconds * 1e6, 1),
        "decisions_verified": compared,
        "decisions_verified_generated": compared_generated,
        "rules_never_matched": never_matched,
        "repeats": repeats,
        "python": platform.python_version(),
        "evaluator": ruleset.evaluator,
        "targets": {"engine_tickets_per_s": 150_000, "engine_trace_tickets_per_s": 75_000, "ratio": 1 / 3,
                    "load_200_rules_ms": 100},
    }
    groups = ", ".join(group for _, group in plan)
    print(f"rules bench: {n} synthetic tickets, {len(plan)} groups per ticket ({groups}); "
          f"Python {platform.python_version()}; {ruleset.evaluator} evaluator; best of {repeats}")
    print(f"setup {setup_seconds:.1f}s: snapshots built; engine == baseline on {compared} decisions; decide == "
          f"evaluate == explain on {compared_generated} decisions of the generated rules; "
          + (f"rules never matched (not covered): {never_matched}" if never_matched
             else f"every one of the {n_default} rules matched at least once"))
    print()
    print(f"{'':46}{'tickets/s':>12}{'µs/ticket':>12}{'vs baseline':>13}")
    rows = [("baseline (hand-written if/elif)", t_base),
            (f"engine, rules/ ({n_default} rules), no trace", t["decide"]),
            ("engine, rules/, compact trace (as recorded)", t["trace"]),
            ("engine, rules/, explain (every leaf)", t["explain"]),
            (f"engine, generated ({n_generated} rules), no trace", t_generated["decide"]),
            (f"engine, generated ({n_generated} rules), trace", t_generated["trace"])]
    if t_python:
        rows += [("rules/ by generated Python (no C), no trace", t_python["decide"]),
                 ("rules/ by generated Python (no C), trace", t_python["trace"])]
    for label, seconds in rows:
        print(f"{label:46}{n / seconds:>12,.0f}{seconds / n * 1e6:>12.2f}{t_base / seconds:>12.2f}x")
    print()
    print("engine µs per decision, each group alone over all tickets (no text shared between groups):")
    print("  " + ", ".join(f"{group} {seconds * 1e6:.1f}" for group, seconds in per_group.items()))
    print(f"load + validate + compile (cold regex cache): rules/ {default_load * 1e3:.1f} ms, {n_generated} generated rules "
          f"{generated_load * 1e3:.1f} ms (plus {schema_once * 1e3:.0f} ms once per process for the schema checker)")
    print(f"build_snapshot (not in the loops above; mostly sentiment): {snapshot_seconds * 1e6:.1f} µs/ticket")
    print(f"ratio engine/baseline (tickets/s): {figures['ratio']:.3f} without trace, "
          f"{figures['ratio_trace']:.3f} with the compact trace, {figures['ratio_explain']:.3f} with explain")
    if args.json:
        print(json.dumps(figures, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
