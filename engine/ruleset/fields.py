"""The vocabulary of the rules language: the fields a condition may read, the actions each group
may set, and the derived fields computed from a raw ticket snapshot.

This module owns three catalogs, each the single place to edit when the vocabulary grows:
- FIELDS: field name -> type, allowed values (enums), description. The loader type-checks every
  condition against it; rules/README.md documents it for ops.
- OPERATORS_BY_TYPE: which operators make sense for which field type.
- GROUP_ACTIONS: group name -> the actions its rules may set. Adding a group (escalation,
  auto_close, ...) is one entry here; the JSON Schema, the loader's checks and the merge of `all`
  groups all derive from it.

`build_snapshot` turns the flat dict a workflow activity hands over into what rules read, adding
the derived fields. It is pure: same input, same output, on every worker and in every replay.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Mapping

from engine.models import AGENT_TIERS, COMPENSATIONS

from . import sentiment

CHANNELS = ("wechat", "weibo", "douyin", "kuaishou", "zhihu", "email", "phone", "chat", "web", "app", "sms", "forum")
TIERS = ("standard", "premium", "vip")
PRIORITIES = ("P1", "P2", "P3", "P4")
SLA_METRICS = ("first_response", "next_reply", "periodic_update", "resolution")
TIERS_UP = ("agent", "senior", "other_department", "management")
ORIGINS = ("customer", "agent")
RESOLVERS = ("agent", "bot", "auto_close")
SURVEY_KINDS = ("csat", "nps")
STATUSES = ("received", "triaged", "assigned", "open", "pending_customer", "on_hold", "resolved", "surveying", "closed")

# Field types. `text` is free prose (subject, body) and `string` an identifier-like value; both
# compare case-insensitively, the split only tells ops which fields hold prose.
ENUM, BOOL, TEXT, STRING, NUMBER, INT, LIST = "enum", "bool", "text", "string", "number", "int", "list"


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    description: str
    values: tuple[str, ...] = ()  # allowed values, for enums
    derived: bool = False  # computed by build_snapshot, never supplied by callers
    optional: bool = False  # may legitimately be missing from a snapshot


def _catalog(*fields: Field) -> dict[str, Field]:
    return {f.name: f for f in fields}


FIELDS: dict[str, Field] = _catalog(
    Field("channel", ENUM, "where the customer wrote", CHANNELS),
    Field("is_public", BOOL, "the message is visible to the public (a post or comment, not a DM)"),
    Field("subject", TEXT, "subject or first line of the message", optional=True),
    Field("body", TEXT, "message text", optional=True),
    Field("text", TEXT, "subject and body joined by a newline", derived=True),
    Field("customer.id", STRING, "customer identifier"),
    Field("customer.tier", ENUM, "customer value tier", TIERS),
    Field("customer.language", STRING, "preferred language code, e.g. zh, en, zh-TW", optional=True),
    Field("order_value", NUMBER, "value of the order the ticket is about", optional=True),
    Field("category", STRING, "ticket category; missing until classified", optional=True),
    Field("tags", LIST, "labels set by classification or agents", optional=True),
    Field("priority", ENUM, "current priority; missing until prioritised", PRIORITIES, optional=True),
    Field("status", ENUM, "ticket status", STATUSES),
    Field("reopen_count", INT, "how many times the ticket was reopened"),
    Field("sentiment", NUMBER, "tone of the text from -1 (angry) to 1 (happy)", derived=True),
    Field("prior_contacts", INT, "earlier tickets from this customer in the last 30 days", optional=True),
    Field("team", STRING, "team that owns the ticket; missing until routed", optional=True),
    Field("assignee", STRING, "agent id holding the ticket; missing until assigned", optional=True),
    Field("sla_policy", STRING, "name of the SLA policy the ticket runs under", optional=True),
    Field("age_hours", NUMBER, "wall-clock hours since the ticket opened", optional=True),
    Field("age_business_hours", NUMBER, "business hours since the ticket opened, on the policy's calendar", optional=True),
    Field("sla.first_response.used", NUMBER, "share of the first-response target used, 1.0 = due now", optional=True),
    Field("sla.next_reply.used", NUMBER, "share of the next-reply target used", optional=True),
    Field("sla.periodic_update.used", NUMBER, "share of the periodic-update target used", optional=True),
    Field("sla.resolution.used", NUMBER, "share of the resolution target used", optional=True),
    Field("sla.event", ENUM, "escalation only: what happened to the clock", ("warning", "breach", "followup")),
    Field("sla.metric", ENUM, "escalation only: which clock", SLA_METRICS),
    Field("sla.threshold", NUMBER, "escalation only: the warning fraction reached (1.0 for a breach)", optional=True),
    Field("escalation.tier", ENUM, "who holds the ticket now: agent, senior, other_department, management", TIERS_UP),
    Field("origin", ENUM, "who opened the ticket: the customer, or an agent reaching out", ORIGINS, optional=True),
    Field("resolved_by", ENUM, "survey only: who resolved it - an agent, the FAQ bot, or auto-close", RESOLVERS, optional=True),
    Field("customer.days_since_survey", NUMBER, "survey only: days since this customer was last sent a survey; missing if never", optional=True),
    Field("survey.kind", ENUM, "recovery only: the survey answered", SURVEY_KINDS, optional=True),
    Field("survey.score", INT, "recovery only: the score given (CSAT 1-5, NPS 0-10)", optional=True),
    Field("compensation.kind", ENUM, "compensation only: what is offered", COMPENSATIONS, optional=True),
    Field("compensation.amount", NUMBER, "compensation only: its value in the shop's currency", optional=True),
    Field("agent.tier", ENUM, "compensation only: the tier of the agent offering it", AGENT_TIERS, optional=True),
)

# Every field may be tested for presence; the rest depends on what the value is.
_PRESENCE = ("is_set", "is_empty")
_TEXTUAL = ("eq", "ne", "in", "not_in", "contains_any", "contains_all", "starts_with", "matches")
_NUMERIC = ("eq", "ne", "in", "not_in", "lt", "lte", "gt", "gte", "between")
OPERATORS_BY_TYPE: dict[str, tuple[str, ...]] = {
    ENUM: ("eq", "ne", "in", "not_in") + _PRESENCE,
    BOOL: ("eq", "ne") + _PRESENCE,
    TEXT: _TEXTUAL + _PRESENCE,
    STRING: _TEXTUAL + _PRESENCE,
    NUMBER: _NUMERIC + _PRESENCE,
    INT: _NUMERIC + _PRESENCE,
    LIST: ("contains_any", "contains_all") + _PRESENCE,
}
OPERATORS: tuple[str, ...] = (
    "eq", "ne", "in", "not_in", "lt", "lte", "gt", "gte", "between",
    "contains_any", "contains_all", "starts_with", "matches", "is_set", "is_empty",
)

# Action kinds. `duration` is written "4h"/"1d12h" (or seconds) and normalised to seconds;
# `sla_policy` must name a policy defined under sla_policies; a `list` merges by union in `all`
# groups while everything else is overwritten by later rules.
A_STRING, A_LIST, A_ENUM, A_BOOL, A_DURATION, A_SLA_POLICY = "string", "list", "enum", "bool", "duration", "sla_policy"


@dataclass(frozen=True)
class Action:
    kind: str
    description: str
    values: tuple[str, ...] = ()


GROUP_ACTIONS: dict[str, dict[str, Action]] = {
    "classification": {
        "category": Action(A_STRING, "ticket category, e.g. refund, complaint"),
        "tags": Action(A_LIST, "labels added to the ticket"),
    },
    "priority": {
        "priority": Action(A_ENUM, "P1 (most urgent) to P4", PRIORITIES),
    },
    "routing": {
        "team": Action(A_STRING, "team that owns the ticket"),
        "skills": Action(A_LIST, "skills the assigned agent must have, e.g. a language"),
        "strategy": Action(A_ENUM, "how an agent is picked within the team", ("least_loaded", "round_robin")),
        "reassign_after": Action(A_DURATION, "give the ticket to another agent if the assignee has not answered within this time"),
    },
    "sla_policy": {
        "policy": Action(A_SLA_POLICY, "name of an SLA policy defined under sla_policies"),
    },
    "escalation": {
        "notify": Action(A_LIST, "who to tell: assignee, team_lead, manager, or a team id"),
        "reassign_team": Action(A_STRING, "move the ticket to this team and assign it there"),
        "reassign_agent": Action(A_BOOL, "give the ticket to another agent of the same team"),
        "raise_priority": Action(A_BOOL, "raise the priority one step (P4 -> P3 ... -> P1)"),
        "tier_up": Action(A_BOOL, "move up one tier: agent -> senior -> other_department -> management"),
        "again_after": Action(A_DURATION, "if still breached, evaluate escalation again after this long"),
    },
    "auto_close": {
        "auto_close_after": Action(A_DURATION, "close a ticket waiting on the customer after this long"),
        "remind_before": Action(A_DURATION, "remind the customer this long before closing"),
        "reopen_window": Action(A_DURATION, "a customer message within this long after close reopens the ticket"),
    },
    "survey": {
        "survey": Action(A_BOOL, "send a satisfaction survey after resolution"),
        "delay": Action(A_DURATION, "wait this long after resolution before sending"),
        "expires_after": Action(A_DURATION, "stop accepting answers this long after sending"),
        "kind": Action(A_ENUM, "survey type", SURVEY_KINDS),
        "channel": Action(A_ENUM, "send the survey on this channel instead of the ticket's own", CHANNELS),
        "remind_after": Action(A_DURATION, "send one reminder this long after the survey if it is unanswered"),
    },
    "respond": {
        "connector": Action(A_STRING, "deliver customer messages through this connector (a name in connectors.yaml)"),
        "faq_bot": Action(A_BOOL, "let the FAQ bot answer first when an FAQ entry matches"),
        "progress_every": Action(A_DURATION, "tell the customer how it is going this often while the ticket is unresolved"),
        "bot_resolve_after": Action(A_DURATION, "resolve a bot-answered ticket when the customer says nothing more for this long"),
    },
    "faq": {
        "answer": Action(A_STRING, "the FAQ entry whose answer the bot sends (generated from faq: entries)"),
    },
    "resolution": {
        "needs_human_reply": Action(A_BOOL, "refuse to resolve until an agent wrote a reply of their own (not a template, not the bot)"),
        "needs_root_cause": Action(A_BOOL, "refuse to resolve without a root cause"),
    },
    "recovery": {
        "reopen": Action(A_BOOL, "reopen the ticket for its assignee"),
        "followup": Action(A_BOOL, "open a follow-up task for the team lead"),
        "followup_due": Action(A_DURATION, "the follow-up task's own deadline"),
        "notify": Action(A_LIST, "who to tell: assignee, team_lead, manager, or a team id"),
    },
    "compensation": {
        "approve": Action(A_BOOL, "true: within the agent's authority, issued at once; false: waits for approval"),
        "approver": Action(A_ENUM, "the lowest tier that may approve it", AGENT_TIERS[1:]),
    },
}


# Not a field: `text` already folded (compiler.fold) by build_snapshot, as (text, folded) so the
# compiler can check it still belongs to the snapshot's text before using it.
FOLDED_TEXT = "_folded.text"


def build_snapshot(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Return a new snapshot: `raw` flattened to dotted keys plus the derived fields.

    Nested mappings ({"customer": {"tier": "vip"}}) are flattened to "customer.tier" so callers
    may pass either shape. Derived fields are always recomputed from the inputs, so a stale value
    in `raw` can never disagree with the text it came from.

    Private key: FOLDED_TEXT holds (text, text as the rules compare it), see compiler.fold.
    """
    snapshot: dict[str, Any] = {}
    _flatten(raw, "", snapshot)
    subject = snapshot.get("subject")
    body = snapshot.get("body")
    subject = subject if isinstance(subject, str) else ""
    body = body if isinstance(body, str) else ""
    text = f"{subject}\n{body}" if subject and body else subject or body
    snapshot["text"] = text
    normalised = sentiment.normalise(text)  # once, for the score and for the rules' text matching
    snapshot["sentiment"] = sentiment.score(normalised, normalised=True)
    snapshot[FOLDED_TEXT] = (text, normalised.casefold())
    return snapshot


_INTERN_UP_TO = 64  # characters; longer values (subjects, bodies) are not worth a lookup


def _flatten(value: Mapping[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for key, item in value.items():
        # Interned: the native evaluator looks fields up by interned names (native.py), and a
        # dict lookup that finds the very same key object skips loading and comparing the
        # key's text, a cache miss per field on a snapshot no longer in cache (rules_bench:
        # 14 -> 10 µs per ticket).
        name = sys.intern(f"{prefix}{key}")
        if isinstance(item, Mapping):
            _flatten(item, f"{name}.", out)
        elif isinstance(item, list):
            out[name] = list(item)
        elif type(item) is str and len(item) <= _INTERN_UP_TO:
            # short text (channel, tier, language, ids) interned too: the native evaluator then
            # compares it with the rules' values by address (native.py)
            out[name] = sys.intern(item)
        else:
            out[name] = item
