"""Compiling validated rules into Python closures, and evaluating them against a snapshot.

This module owns the runtime side of the rules language: `Ruleset` (what workers hold and
evaluate), the compiled groups and rules, `GroupResult`, the merge of actions in `all` groups and
the trace. It trusts its input: everything reaching `Ruleset` went through the loader's checks
(`load_ruleset` or `Ruleset.from_dict`), so compiling cannot fail on user mistakes.

Every condition compiles to two closures: `test(ctx) -> bool` for the hot path (short-circuiting,
no allocation), and `record(ctx, out, full) -> bool`, which also appends one trace entry per leaf
it evaluates. Only explain mode and the rules that matched pay for recording.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .fields import A_LIST, BOOL, ENUM, FIELDS, GROUP_ACTIONS, INT, LIST, NUMBER, STRING, TEXT

_TRACE_TEXT_LIMIT = 120  # traces go into workflow history: keep long texts from bloating it


def fold(value: str) -> str:
    """The form text operators compare: NFKC turns full-width letters and digits (common in
    Chinese input methods) into ASCII, casefold makes Latin case-insensitive; Chinese passes
    through unchanged; a typographic apostrophe (’, phones insert it) becomes a plain one."""
    return unicodedata.normalize("NFKC", value).casefold().replace("\u2019", "'")


class _Context:
    """One evaluation: the snapshot plus folded field values, so several rules reading `text`
    fold it once."""

    __slots__ = ("snap", "_folded")

    def __init__(self, snap: Mapping[str, Any]):
        self.snap = snap
        self._folded: dict[str, Any] = {}

    def folded(self, name: str) -> Any:
        """Folded str for a string value, tuple of folded strings for a list, None otherwise."""
        try:
            return self._folded[name]
        except KeyError:
            pass
        value = self.snap.get(name)
        if isinstance(value, str):
            result: Any = fold(value)
        elif isinstance(value, (list, tuple)):
            result = tuple(fold(item) for item in value if isinstance(item, str))
        else:
            result = None
        self._folded[name] = result
        return result


Test = Callable[[_Context], bool]
Record = Callable[[_Context, list, bool], bool]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, dict)):
        return not value
    return False


def _trace_value(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _TRACE_TEXT_LIMIT:
        return value[:_TRACE_TEXT_LIMIT] + "…"
    if isinstance(value, (list, tuple)):
        return [_trace_value(item) for item in value]
    return value


def _is_word_char(char: str) -> bool:
    """A letter or digit of a script that separates words with spaces (Latin, Cyrillic, ...).
    CJK characters (U+2E80 and up) are not: a keyword right after 我 still starts a word."""
    return char.isalnum() and char < "\u2e80"


def _finder(needle: str) -> Callable[[str], bool]:
    """`needle in text`, except that a keyword starting with a Latin letter or digit must start
    a word: "refund" finds "refunds" and "refunded" but "sue" does not find "issue". Chinese
    keywords match anywhere, since Chinese text has no spaces between words."""
    if not _is_word_char(needle[0]):
        return lambda text: needle in text

    def find(text: str) -> bool:
        start = text.find(needle)
        while start != -1:
            if start == 0 or not _is_word_char(text[start - 1]):
                return True
            start = text.find(needle, start + 1)
        return False

    return find


def _leaf_test(name: str, ftype: str, op: str, expected: Any) -> Test:
    """The predicate for one `{field, op: expected}` test. A missing field fails every
    comparison, is not set, and is empty; a value of the wrong type fails too."""
    if op == "is_set":
        want = bool(expected)
        return lambda ctx: (ctx.snap.get(name) is not None) is want
    if op == "is_empty":
        want = bool(expected)
        return lambda ctx: _is_empty(ctx.snap.get(name)) is want

    if ftype == LIST:
        needles = frozenset(fold(item) for item in expected)
        if op == "contains_any":
            return lambda ctx: bool(needles.intersection(ctx.folded(name) or ()))
        if op == "contains_all":
            return lambda ctx: ctx.folded(name) is not None and needles.issubset(ctx.folded(name))

    if ftype in (TEXT, STRING):
        if op in ("eq", "ne"):
            target = fold(expected)
            if op == "eq":
                return lambda ctx: ctx.folded(name) == target
            return lambda ctx: (value := ctx.folded(name)) is not None and value != target
        if op in ("in", "not_in"):
            targets = frozenset(fold(item) for item in expected)
            if op == "in":
                return lambda ctx: ctx.folded(name) in targets
            return lambda ctx: (value := ctx.folded(name)) is not None and value not in targets
        if op in ("contains_any", "contains_all"):
            finders = tuple(_finder(fold(item)) for item in expected)
            if op == "contains_any":
                return lambda ctx: (value := ctx.folded(name)) is not None and any(f(value) for f in finders)
            return lambda ctx: (value := ctx.folded(name)) is not None and all(f(value) for f in finders)
        if op == "starts_with":
            prefix = fold(expected)
            return lambda ctx: (value := ctx.folded(name)) is not None and value.lstrip().startswith(prefix)
        if op == "matches":
            # Matched against the folded text so `matches` agrees with the other text operators
            # on full-width input; IGNORECASE covers upper-case letters written in the pattern.
            pattern = re.compile(expected, re.IGNORECASE)
            return lambda ctx: (value := ctx.folded(name)) is not None and pattern.search(value) is not None

    if ftype in (ENUM, BOOL):
        # Enum values and booleans are exact: the loader already rejected values outside the enum.
        kind = bool if ftype == BOOL else str
        if op == "eq":
            return lambda ctx: isinstance(value := ctx.snap.get(name), kind) and value == expected
        if op == "ne":
            return lambda ctx: isinstance(value := ctx.snap.get(name), kind) and value != expected
        members = frozenset(expected) if op in ("in", "not_in") else frozenset()
        if op == "in":
            return lambda ctx: isinstance(value := ctx.snap.get(name), kind) and value in members
        if op == "not_in":
            return lambda ctx: isinstance(value := ctx.snap.get(name), kind) and value not in members

    if ftype in (NUMBER, INT):
        if op == "eq":
            return lambda ctx: _is_number(value := ctx.snap.get(name)) and value == expected
        if op == "ne":
            return lambda ctx: _is_number(value := ctx.snap.get(name)) and value != expected
        if op in ("in", "not_in"):
            numbers = frozenset(expected)
            if op == "in":
                return lambda ctx: _is_number(value := ctx.snap.get(name)) and value in numbers
            return lambda ctx: _is_number(value := ctx.snap.get(name)) and value not in numbers
        if op == "lt":
            return lambda ctx: _is_number(value := ctx.snap.get(name)) and value < expected
        if op == "lte":
            return lambda ctx: _is_number(value := ctx.snap.get(name)) and value <= expected
        if op == "gt":
            return lambda ctx: _is_number(value := ctx.snap.get(name)) and value > expected
        if op == "gte":
            return lambda ctx: _is_number(value := ctx.snap.get(name)) and value >= expected
        if op == "between":
            low, high = expected
            return lambda ctx: _is_number(value := ctx.snap.get(name)) and low <= value <= high

    raise ValueError(f"operator {op!r} on {ftype} field {name!r} reached the compiler unvalidated")


def compile_condition(cond: Mapping[str, Any]) -> tuple[Test, Record]:
    """Compile a validated condition into its (test, record) closures."""
    for combinator in ("all", "any"):
        if combinator in cond:
            parts = [compile_condition(child) for child in cond[combinator]]
            tests = tuple(test for test, _ in parts)
            records = tuple(record for _, record in parts)
            return (_all(tests, records) if combinator == "all" else _any(tests, records))
    if "not" in cond:
        inner_test, inner_record = compile_condition(cond["not"])
        return (lambda ctx: not inner_test(ctx)), (lambda ctx, out, full: not inner_record(ctx, out, full))

    name = cond["field"]
    op = next(key for key in cond if key != "field")
    expected = cond[op]
    test = _leaf_test(name, FIELDS[name].type, op, expected)
    shown = copy.deepcopy(expected)

    def record(ctx: _Context, out: list, full: bool) -> bool:
        result = test(ctx)
        out.append({"field": name, "op": op, "expected": shown,
                    "actual": _trace_value(ctx.snap.get(name)), "result": result})
        return result

    return test, record


def _all(tests: tuple[Test, ...], records: tuple[Record, ...]) -> tuple[Test, Record]:
    def test(ctx: _Context) -> bool:
        for part in tests:
            if not part(ctx):
                return False
        return True

    def record(ctx: _Context, out: list, full: bool) -> bool:
        if full:  # explain mode shows every leaf, not just the ones needed to decide
            return all([part(ctx, out, full) for part in records])
        for part in records:
            if not part(ctx, out, full):
                return False
        return True

    return test, record


def _any(tests: tuple[Test, ...], records: tuple[Record, ...]) -> tuple[Test, Record]:
    def test(ctx: _Context) -> bool:
        for part in tests:
            if part(ctx):
                return True
        return False

    def record(ctx: _Context, out: list, full: bool) -> bool:
        if full:
            return any([part(ctx, out, full) for part in records])
        for part in records:
            if part(ctx, out, full):
                return True
        return False

    return test, record


def _always(ctx: _Context) -> bool:
    return True


def _always_record(ctx: _Context, out: list, full: bool) -> bool:
    return True


@dataclass(frozen=True)
class CompiledRule:
    id: str
    description: str
    when: Mapping[str, Any] | None  # the condition as written; None for a catch-all
    then: Mapping[str, Any]  # normalised actions (durations in seconds)
    test: Test = field(repr=False, compare=False)
    record: Record = field(repr=False, compare=False)


@dataclass(frozen=True)
class CompiledGroup:
    name: str
    match: str  # "first" | "all"
    description: str
    rules: tuple[CompiledRule, ...]


@dataclass(frozen=True)
class GroupResult:
    """What one group decided: matched rule ids in order, merged actions, and the trace."""

    group: str
    rule_ids: list[str]
    actions: dict[str, Any]
    trace: list[dict[str, Any]]


def _copy_actions(then: Mapping[str, Any]) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, list) else value for key, value in then.items()}


def _merge(into: dict[str, Any], then: Mapping[str, Any], list_keys: frozenset[str]) -> None:
    """`all` groups: a later rule overwrites scalars; lists are unioned, first occurrence first."""
    for key, value in then.items():
        if key in list_keys and key in into:
            into[key] = into[key] + [item for item in value if item not in into[key]]
        else:
            into[key] = list(value) if isinstance(value, list) else value


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class Ruleset:
    """A validated, compiled ruleset. Immutable in use; build it with `load_ruleset` or
    `Ruleset.from_dict`, both of which validate first."""

    def __init__(self, normalised: Mapping[str, Any]):
        self._data = copy.deepcopy(dict(normalised))
        self.version: str = hashlib.sha256(canonical_json(self._data).encode("utf-8")).hexdigest()[:12]
        self.sla_policies: dict[str, dict[str, Any]] = copy.deepcopy(self._data.get("sla_policies", {}))
        self.groups: dict[str, CompiledGroup] = {}
        self._list_actions: dict[str, frozenset[str]] = {}
        for group in self._data.get("groups", []):
            rules = []
            for rule in group["rules"]:
                when = rule.get("when")
                test, record = compile_condition(when) if when is not None else (_always, _always_record)
                rules.append(CompiledRule(rule["id"], rule.get("description", ""), when, rule["then"], test, record))
            self.groups[group["name"]] = CompiledGroup(group["name"], group["match"], group.get("description", ""), tuple(rules))
            self._list_actions[group["name"]] = frozenset(
                key for key, action in GROUP_ACTIONS[group["name"]].items() if action.kind == A_LIST)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<ruleset>") -> "Ruleset":
        """Rebuild a ruleset from `to_dict()` output (e.g. a pinned version stored as JSON).
        The data is validated like a rules file; problems raise RulesetError naming `source`."""
        # Imported here because the loader imports this module to build the Ruleset it returns.
        from .loader import validate_dict

        return cls(validate_dict(data, source))

    def to_dict(self) -> dict[str, Any]:
        """The normalised ruleset as plain JSON-able data; `version` is the hash of exactly this."""
        return copy.deepcopy(self._data)

    def has_group(self, name: str) -> bool:
        return name in self.groups

    def evaluate(self, group: str, snapshot: Mapping[str, Any], explain: bool = False) -> GroupResult:
        """Evaluate one group against one snapshot (see `build_snapshot`). Raises KeyError for a
        group this ruleset does not define.

        The trace: with `explain`, one entry per rule with every leaf and its result, and the
        rules after a `first` match marked skipped; without, only the matched rules with the
        leaves that decided them, small enough to record in workflow history."""
        compiled = self.groups[group]
        ctx = _Context(snapshot)
        first = compiled.match == "first"
        matched: list[CompiledRule] = []
        trace: list[dict[str, Any]] = []
        if explain:
            for rule in compiled.rules:
                if first and matched:
                    trace.append({"rule_id": rule.id, "skipped": True})
                    continue
                leaves: list[dict[str, Any]] = []
                hit = rule.record(ctx, leaves, True)
                trace.append({"rule_id": rule.id, "matched": hit, "leaves": leaves})
                if hit:
                    matched.append(rule)
        else:
            for rule in compiled.rules:
                if rule.test(ctx):
                    matched.append(rule)
                    if first:
                        break
            for rule in matched:
                leaves = []
                rule.record(ctx, leaves, False)
                for leaf in leaves:
                    del leaf["result"]
                trace.append({"rule_id": rule.id, "matched": True, "leaves": leaves})
        if first or not matched:
            actions = _copy_actions(matched[0].then) if matched else {}
        else:
            actions = {}
            for rule in matched:
                _merge(actions, rule.then, self._list_actions[group])
        return GroupResult(group, [rule.id for rule in matched], actions, trace)

    def __repr__(self) -> str:
        return f"Ruleset(version={self.version!r}, groups={sorted(self.groups)}, sla_policies={sorted(self.sla_policies)})"
