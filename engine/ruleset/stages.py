"""When each group runs in a ticket's life, and what its actions change in the next snapshot.

The workflow evaluates groups at these moments; `rules test`, `rules explain` and later the
backtest replay the same plan on example tickets, so a fixture sees what a live ticket would.
Groups of one stage read one snapshot; a later stage sees the earlier stages' results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .compiler import GroupOutcome, GroupResult, Ruleset
from .fields import build_snapshot

# (stage, groups evaluated together on one snapshot)
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("classify", ("classification", "priority")),
    ("assign", ("routing", "sla_policy", "respond", "resolution", "faq")),
    ("pending", ("auto_close",)),
    ("sla_event", ("escalation",)),
    ("compensation", ("compensation",)),
    ("resolve", ("survey",)),
    ("survey_answer", ("recovery",)),
)

# stage -> the field that must be set for it to happen at all: escalation runs on an SLA event,
# so a ticket without one (as it arrives) gets no escalation decision here either, and a
# fixture cannot "cover" an escalation rule by accident.
_TRIGGER = {"sla_event": "sla.event", "compensation": "compensation.kind", "survey_answer": "survey.score"}

# action -> snapshot field it sets for later stages
_SETS = {"category": "category", "priority": "priority", "team": "team", "policy": "sla_policy"}


def stage_trigger(group: str) -> str:
    """The field a group's stage needs (e.g. escalation: sla.event), or '' when it always runs."""
    return next((_TRIGGER.get(stage, "") for stage, groups in STAGES if group in groups), "")


def deciding_rule(ruleset: Ruleset, group: str, matched: list[str]) -> str:
    """The rule an auditor should read first. In a match-all group, where later rules win, it is
    the last matched rule that set a single-valued action (the category, not just a tag)."""
    if not matched:
        return ""
    then = {r.id: r.then for r in ruleset.groups[group].rules}
    scalar = [rid for rid in matched if any(not isinstance(v, list) for v in then[rid].values())]
    return scalar[-1] if scalar else matched[0]


def apply_to_snapshot(snapshot: dict[str, Any], result: GroupResult | GroupOutcome) -> None:
    for action, value in result.actions.items():
        if action == "tags":
            snapshot["tags"] = list(dict.fromkeys([*snapshot.get("tags", []), *value]))
        elif action in _SETS:
            snapshot[_SETS[action]] = value


@dataclass
class StagedDecision:
    stage: str
    group: str
    rule_id: str
    result: GroupResult


def evaluate_staged(ruleset: Ruleset, raw: Mapping[str, Any], explain: bool = False) -> list[StagedDecision]:
    """Every group the ruleset has, stage by stage, as the workflow would run them."""
    snapshot = build_snapshot(raw)
    out: list[StagedDecision] = []
    for stage, groups in STAGES:
        trigger = _TRIGGER.get(stage)
        if trigger and snapshot.get(trigger) in (None, ""):
            continue
        present = tuple(g for g in groups if ruleset.has_group(g))
        results = [ruleset.evaluate(g, snapshot, explain=True) for g in present] if explain \
            else ruleset.stage_evaluator(present)(snapshot)
        for res in results:
            out.append(StagedDecision(stage, res.group, deciding_rule(ruleset, res.group, res.rule_ids), res))
        for res in results:
            apply_to_snapshot(snapshot, res)
    return out
