"""The rules language: load, validate and compile `rules/*.yaml`, then evaluate decision groups.

This package owns turning ops-edited YAML into decisions. Submodules:
- fields: the vocabulary (fields rules read, actions each group sets) and `build_snapshot`;
- sentiment: the lexicon scorer behind the derived `sentiment` field;
- loader: YAML with positions, JSON Schema, semantic checks, normalisation, `load_ruleset`;
- schemacheck: the fast yes/no schema check valid files take;
- compiler: `Ruleset.evaluate` (with a trace) and `Ruleset.decide` (without), traces;
- codegen: each group's conditions as one generated Python function;
- errors: `RuleIssue` and `RulesetError`.

Typical use (in an activity, never in workflow code):

    rs = load_ruleset(Path("rules"))
    result = rs.evaluate("priority", build_snapshot(raw_ticket))
    result.rule_ids, result.actions, result.trace, rs.version
    rs.decide("priority", snapshot).actions  # no trace, shared and read-only: backtests, fixtures
"""

from .compiler import CompiledGroup, CompiledRule, GroupOutcome, GroupResult, Ruleset
from .errors import RuleIssue, RulesetError
from .fields import FIELDS, GROUP_ACTIONS, build_snapshot
from .loader import load_ruleset, load_ruleset_texts, rules_json_schema

__all__ = [
    "FIELDS",
    "GROUP_ACTIONS",
    "CompiledGroup",
    "CompiledRule",
    "GroupOutcome",
    "GroupResult",
    "RuleIssue",
    "Ruleset",
    "RulesetError",
    "build_snapshot",
    "load_ruleset",
    "load_ruleset_texts",
    "rules_json_schema",
]
