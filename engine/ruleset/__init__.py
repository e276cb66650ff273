"""The rules language: load, validate and compile `rules/*.yaml`, then evaluate decision groups.

This package owns turning ops-edited YAML into decisions. Submodules:
- fields: the vocabulary (fields rules read, actions each group sets) and `build_snapshot`;
- sentiment: the lexicon scorer behind the derived `sentiment` field;
- loader: YAML with positions, JSON Schema, semantic checks, normalisation, `load_ruleset`;
- compiler: conditions as closures, `Ruleset.evaluate`, traces;
- errors: `RuleIssue` and `RulesetError`.

Typical use (in an activity, never in workflow code):

    rs = load_ruleset(Path("rules"))
    result = rs.evaluate("priority", build_snapshot(raw_ticket))
    result.rule_ids, result.actions, result.trace, rs.version
"""

from .compiler import CompiledGroup, CompiledRule, GroupResult, Ruleset
from .errors import RuleIssue, RulesetError
from .fields import FIELDS, GROUP_ACTIONS, build_snapshot
from .loader import load_ruleset, load_ruleset_texts, rules_json_schema

__all__ = [
    "FIELDS",
    "GROUP_ACTIONS",
    "CompiledGroup",
    "CompiledRule",
    "GroupResult",
    "RuleIssue",
    "Ruleset",
    "RulesetError",
    "build_snapshot",
    "load_ruleset",
    "load_ruleset_texts",
    "rules_json_schema",
]
