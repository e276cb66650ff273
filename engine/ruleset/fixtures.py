"""Rule fixtures: example tickets with the decisions ops expect (`rules/tests/*.yaml`).

    cases:
      - name: angry public refund post on Weibo
        ticket: {channel: weibo, is_public: true, customer: {tier: standard, language: zh},
                 subject: 退款三周还没到账, body: ...}
        expect:
          classification: {rule: topic-complaint, category: complaint}
          priority: {rule: p1-public-negative, priority: P1}

`expect` names groups; in each, `rule` is the deciding rule, `rules` the full list of matched
rules, and any other key an action whose value must be exactly this. Cases run through the same
stages as a live ticket (engine.ruleset.stages), so a fixture that passes is what a ticket gets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .compiler import Ruleset
from .loader import _parse_duration
from .stages import evaluate_staged, stage_trigger

TICKET_DEFAULTS: dict[str, Any] = {
    "customer.id": "fixture-customer",
    "customer.tier": "standard",
    "customer.language": "zh",
    "status": "open",
    "reopen_count": 0,
    "tags": [],
}


class FixtureError(ValueError):
    pass


@dataclass
class Mismatch:
    group: str
    key: str
    expected: Any
    actual: Any


@dataclass
class CaseResult:
    file: str
    line: int
    name: str
    mismatches: list[Mismatch] = field(default_factory=list)
    matched_rules: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


@dataclass
class FixtureReport:
    cases: list[CaseResult]
    uncovered: list[str]  # rule ids no case matched

    @property
    def failed(self) -> list[CaseResult]:
        return [c for c in self.cases if not c.ok]


class _LineLoader(yaml.SafeLoader):
    pass


def _mapping_with_line(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[str, Any]:
    value = loader.construct_mapping(node, deep=True)
    value["__line__"] = node.start_mark.line + 1
    return value


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != "__line__"}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


def load_cases(path: Path) -> list[tuple[int, str, dict[str, Any], dict[str, Any]]]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LineLoader)  # noqa: S506 (SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise FixtureError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise FixtureError(f"{path}:1: a fixture file needs a top-level `cases:` list")
    cases = []
    for i, case in enumerate(data["cases"]):
        line = case.get("__line__", 0) if isinstance(case, dict) else 0
        if not isinstance(case, dict) or not isinstance(case.get("ticket"), dict) or not isinstance(case.get("expect"), dict):
            raise FixtureError(f"{path}:{line}: case {i + 1} needs `ticket:` and `expect:` mappings")
        name = str(case.get("name") or f"case {i + 1}")
        cases.append((line, name, _strip_lines(case["ticket"]), _strip_lines(case["expect"])))
    return cases


def _flat(ticket: dict[str, Any]) -> dict[str, Any]:
    flat = dict(TICKET_DEFAULTS)
    for key, value in ticket.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                flat[f"{key}.{sub}"] = v
        else:
            flat[key] = value
    return flat


def run_case(ruleset: Ruleset, ticket: dict[str, Any], expect: dict[str, Any], file: str, line: int, name: str) -> CaseResult:
    result = CaseResult(file=file, line=line, name=name)
    decided = {d.group: d for d in evaluate_staged(ruleset, _flat(ticket))}
    for d in decided.values():
        result.matched_rules.extend(d.result.rule_ids)
    for group, wanted in expect.items():
        d = decided.get(group)
        if d is None:
            why = "no such group in the ruleset"
            if ruleset.has_group(group):
                why = f"not evaluated: the {group} group runs only when the ticket has {stage_trigger(group)}"
            result.mismatches.append(Mismatch(group, "group", "evaluated", why))
            continue
        if not isinstance(wanted, dict):
            wanted = {"rule": wanted}
        for key, value in wanted.items():
            if key == "rule":
                actual: Any = d.rule_id or None
            elif key == "rules":
                actual = d.result.rule_ids
            else:
                actual = d.result.actions.get(key)
                if isinstance(value, str) and isinstance(actual, int) and not isinstance(actual, bool):
                    value = _seconds(value)
            if actual != value:
                result.mismatches.append(Mismatch(group, key, value, actual))
    return result


def _seconds(text: str) -> Any:
    try:
        return _parse_duration(text)
    except (ValueError, TypeError):
        return text


def run_fixtures(ruleset: Ruleset, directory: Path) -> FixtureReport:
    files = sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml"))
    if not files:
        raise FixtureError(f"{directory}: no fixture files (*.yaml)")
    cases: list[CaseResult] = []
    for path in files:
        for line, name, ticket, expect in load_cases(path):
            cases.append(run_case(ruleset, ticket, expect, str(path), line, name))
    matched = {rid for c in cases for rid in c.matched_rules}
    every = [r.id for g in ruleset.groups.values() for r in g.rules]
    return FixtureReport(cases=cases, uncovered=[rid for rid in every if rid not in matched])
