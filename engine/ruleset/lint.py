"""Lint: things that load fine but are probably mistakes, reported as warnings with file:line.

Validation refuses what cannot work; lint points at what works differently from what the author
likely meant: rules nobody can read the reason of, keywords that can never matter, policies no
rule picks, first-match groups that leave some tickets without a decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

from .compiler import Ruleset


@dataclass
class Finding:
    file: str
    line: int
    rule_id: str
    group: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        who = f"rule '{self.rule_id}' (group {self.group})" if self.rule_id else f"group {self.group}"
        return f"{where}: warning: {who}: {self.message}"


def _rule_lines(directory: Path) -> dict[str, tuple[str, int, str]]:
    """rule id -> (file, line, group), read from the YAML nodes so warnings point at the source."""
    where: dict[str, tuple[str, int, str]] = {}
    files = sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml"))
    for path in files:
        try:
            root = yaml.compose(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            continue
        for group_node in _items(_get(root, "groups")):
            gname = _scalar(_get(group_node, "name"))
            for rule_node in _items(_get(group_node, "rules")):
                rid = _scalar(_get(rule_node, "id"))
                if rid:
                    where[rid] = (str(path), rule_node.start_mark.line + 1, gname or "")
        for entry_node in _items(_get(root, "faq")):  # each faq entry is a rule of the faq group
            rid = _scalar(_get(entry_node, "id"))
            if rid:
                where[rid] = (str(path), entry_node.start_mark.line + 1, "faq")
    return where


def _get(node: Any, key: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if getattr(k, "value", None) == key:
                return v
    return None


def _items(node: Any) -> list[Any]:
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _scalar(node: Any) -> str | None:
    return node.value if isinstance(node, yaml.ScalarNode) else None


def _leaves(cond: Any, negated: bool = False) -> Iterator[tuple[dict[str, Any], bool]]:
    """Every leaf with whether it sits under an odd number of `not`s."""
    if not isinstance(cond, dict):
        return
    for key in ("all", "any"):
        if key in cond:
            for sub in cond[key]:
                yield from _leaves(sub, negated)
            return
    if "not" in cond:
        yield from _leaves(cond["not"], not negated)
        return
    yield cond, negated


def lint_ruleset(ruleset: Ruleset, directory: Path) -> list[Finding]:
    lines = _rule_lines(directory)
    findings: list[Finding] = []

    def add(rule_id: str, group: str, message: str) -> None:
        file, line, _ = lines.get(rule_id, (str(directory), 0, group))
        findings.append(Finding(file, line, rule_id, group, message))

    chosen_policies: set[str] = set()
    for group in ruleset.groups.values():
        seen_keywords: dict[str, str] = {}
        for rule in group.rules:
            if not rule.description:
                add(rule.id, group.name, "no description: say why the rule exists, for the next person who edits it")
            if not rule.then:
                add(rule.id, group.name, "sets no action; delete it or give it a `then`")
            if group.name == "sla_policy" and "policy" in rule.then:
                chosen_policies.add(rule.then["policy"])
            for leaf, negated in _leaves(rule.when):
                words = leaf.get("contains_any") or leaf.get("contains_all")
                if negated or not isinstance(words, list) or leaf.get("field") not in ("text", "subject", "body"):
                    continue
                folded = [str(w).casefold() for w in words]
                for w in folded:
                    if folded.count(w) > 1:
                        add(rule.id, group.name, f"keyword '{w}' is listed twice")
                        break
                if group.match == "first":
                    for w in folded:
                        if w in seen_keywords and seen_keywords[w] != rule.id:
                            add(rule.id, group.name, f"keyword '{w}' also appears in earlier rule '{seen_keywords[w]}' of this first-match group, so here it only matters when that rule did not match")
                        seen_keywords.setdefault(w, rule.id)
        # escalation and faq decide only for some tickets on purpose: most get no FAQ answer
        if group.match == "first" and group.rules and group.rules[-1].when is not None and group.name not in ("escalation", "faq"):
            add("", group.name, f"no catch-all rule at the end: tickets matching none of its rules get no {group.name} decision")
    for name in ruleset.sla_policies:
        if chosen_policies and name not in chosen_policies:
            findings.append(Finding(str(directory), 0, "", "sla_policy", f"sla policy '{name}' is defined but no rule chooses it"))
    return findings
