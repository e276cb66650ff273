"""The generated decide functions (engine/ruleset/codegen.py) and the fast schema check
(engine/ruleset/schemacheck.py) against their references.

- `Ruleset.decide` and `Ruleset.evaluate` pick rules with one generated function per group;
  `evaluate(..., explain=True)` still walks the per-leaf closures and is the reference. On random
  valid conditions (every field type, every operator the catalog allows) and random snapshots
  (missing fields, None, right and wrong types) the three must agree, and agree with a small
  independent model of the documented semantics;
- `GroupOutcome` is shared and read-only, `GroupResult` fresh and owned by the caller;
- nothing a rules file says becomes code: hostile keyword / text / regex values stay constants;
- `match: all` groups with more rules than a machine word still work (the mask is a Python int);
- `schemacheck.is_valid` says yes/no exactly as jsonschema does, and invalid files still get
  jsonschema's detailed messages.
"""

from __future__ import annotations

import ast
import copy
import enum
import random
import re
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from engine.ruleset import RulesetError, build_snapshot, load_ruleset_texts, rules_json_schema, schemacheck
from engine.ruleset.compiler import _CODEGEN_HELPERS, GroupOutcome, _finder, fold
from engine.ruleset.fields import (BOOL, ENUM, FIELDS, GROUP_ACTIONS, INT, LIST, NUMBER, OPERATORS,
                                   OPERATORS_BY_TYPE, STRING, TEXT)

ROOT = Path(__file__).resolve().parents[1]


# =============================================================================================
# Vocabulary of the random rules and snapshots


class Level(enum.IntEnum):  # an int subclass: a number, looked up through _is_number
    HIGH = 5


class Text(str):  # a str subclass: text
    pass


# Fields of every catalog type (several per type, so that rules share and mix fields).
POOL: dict[str, tuple[str, ...]] = {
    ENUM: ("channel", "customer.tier", "priority", "status"),
    BOOL: ("is_public",),
    TEXT: ("subject", "body", "text"),
    STRING: ("customer.id", "customer.language", "category"),
    NUMBER: ("order_value", "sentiment", "age_hours"),
    INT: ("reopen_count", "prior_contacts"),
    LIST: ("tags",),
}
POOL_FIELDS = [name for names in POOL.values() for name in names]

# Words texts are made of and rules look for: Latin in several cases and widths, Chinese,
# punctuation, prefixes of each other (退 / 退款), word-start traps (sue / issue), ligatures and
# letters whose case folding changes their length.
WORDS = ["refund", "Refund", "REFUND", "ＲＥＦＵＮＤ", "refunded", "prerefund", "退款", "退", "款", "多扣",
         "broken", "BROKEN.", "sue you", "issue", "re:", "RE: 订单", "订单 8812", "zh", "zh-TW", "EN", "vip",
         "VIP", "ｖｉｐ", "é", "o'clock", "doesn’t", "c++", "100%", "12315", "差劲", "angry", "ﬁne", "straße",
         "SS", "İstanbul", "我", "，", "!", "！", "a.b", "x"]
KEYWORDS = [word for word in WORDS if word.strip()] + [" you", "fine", "strasse"]
SEPARATORS = [" ", "", "\n", "，", "  ", "\t"]
REGEXES = [r"^re:", r"refund|退款", r"\d{3,}", r"broken$", r"^\s*$", r"订单\s*\d+", r"[a-z]+-[a-z]+",
           r"(?:sue|refund) you", r"^.{0,3}$", r"ＲＥＦＵＮＤ", r"\bvip\b", "ß", "REFUND", r"^\S+$"]
NUMBERS = [-1, -0.3, 0, 0.5, 1, 2, 3, 5, 10, 100, 5000, 1e9]
TAGS = ["vip", "VIP", "public", "Public", "退款", "ａｎｇｒｙ", "angry", "x", "Straße"]
WRONG = [True, False, 0, 1, 5000, 2.5, -0.0, Level.HIGH, float("nan"), float("inf"), "5", "", "   ", "\n",
         "ＶＩＰ", "Vip", "退款", Text("refund"), ["refund"], ("退款",), [], {}, {"a": 1}, b"refund", object()]


# ---- the example's vocabulary ------------------------------------------------------------------
#
# Each example draws a few words, keywords, numbers and tags, and its rules and snapshots mostly use
# those, so snapshots often hold exactly what a rule compares with (the boundary of lt/gte, a
# keyword after leading space, eq after folding); the full lists are drawn from too. The strategies
# are static (built once, fast to draw from): they produce placeholders, which `resolve` replaces
# with the example's vocabulary.

VOCABULARY_SIZE = 3


class Slot(NamedTuple):
    """The example's `kind` value number `index`."""
    kind: str
    index: int


class TextSpec(NamedTuple):
    lead: str
    pieces: tuple[Any, ...]
    separators: tuple[str, ...]
    case: str


class Range(NamedTuple):  # `between`: the two values, sorted once resolved
    low: Any
    high: Any


EVERY = {"words": WORDS, "keywords": KEYWORDS, "numbers": NUMBERS, "tags": TAGS}

vocabularies = st.fixed_dictionaries({
    kind: st.lists(st.sampled_from(values), min_size=VOCABULARY_SIZE, max_size=VOCABULARY_SIZE)
    for kind, values in EVERY.items()})


def slot(kind: str) -> st.SearchStrategy[Any]:
    mine = st.integers(0, VOCABULARY_SIZE - 1).map(lambda index: Slot(kind, index))
    return st.one_of(mine, mine, mine, st.sampled_from(EVERY[kind]))


WORD, KEYWORD, NUMBER_VALUE, TAG = slot("words"), slot("keywords"), slot("numbers"), slot("tags")
INT_VALUE = st.integers(0, VOCABULARY_SIZE - 1).map(lambda index: Slot("ints", index))


def resolve(value: Any, vocabulary: dict[str, list[Any]]) -> Any:
    """`value` with its placeholders replaced by the vocabulary's values."""
    if isinstance(value, Slot):
        if value.kind == "ints":
            number = vocabulary["numbers"][value.index]
            return int(number) if float(number).is_integer() else number
        return vocabulary[value.kind][value.index]
    if isinstance(value, Range):
        return sorted([resolve(value.low, vocabulary), resolve(value.high, vocabulary)])
    if isinstance(value, TextSpec):
        text = value.lead + "".join(resolve(piece, vocabulary) + separator
                                    for piece, separator in zip(value.pieces, value.separators))
        return {"as is": text, "upper": text.upper(), "title": text.title()}[value.case]
    if type(value) is dict:
        return {key: resolve(item, vocabulary) for key, item in value.items()}
    if type(value) is list:
        return [resolve(item, vocabulary) for item in value]
    if type(value) is tuple:
        return tuple(resolve(item, vocabulary) for item in value)
    return value  # objects and subclasses (Level, Text) stay as they are


TEXT_SPECS = st.builds(
    TextSpec,
    st.sampled_from(["", " ", "\n  ", "\u3000"]),
    st.one_of(st.lists(st.one_of(WORD, KEYWORD), max_size=4), st.lists(KEYWORD, min_size=1, max_size=2)).map(tuple),
    st.lists(st.sampled_from(SEPARATORS), min_size=4, max_size=4).map(tuple),
    st.sampled_from(["as is", "as is", "upper", "title"]))
TEXTS = st.one_of(TEXT_SPECS, TEXT_SPECS, st.text(alphabet="aeirfundsy退款我 ：:!ＲｅＥ-", max_size=12))


def right_value(name: str) -> st.SearchStrategy[Any]:
    spec = FIELDS[name]
    if spec.type == ENUM:
        return st.sampled_from([*spec.values, spec.values[0].upper(), ""])
    if spec.type == BOOL:
        return st.booleans()
    if spec.type in (TEXT, STRING):
        return TEXTS
    if spec.type == NUMBER:
        return st.one_of(NUMBER_VALUE, NUMBER_VALUE, st.floats(allow_nan=True, allow_infinity=True),
                         st.integers(-10, 6000))
    if spec.type == INT:
        return st.one_of(INT_VALUE, INT_VALUE, st.just(Level.HIGH), st.integers(-3, 12))
    assert spec.type == LIST
    item = st.one_of(TAG, WORD, st.sampled_from([3, None, True, ["vip"]]))
    return st.one_of(st.lists(item, max_size=4), st.lists(item, max_size=3).map(tuple))


def field_value(name: str) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), right_value(name), right_value(name), st.sampled_from(WRONG))


SNAPSHOTS = st.fixed_dictionaries({}, optional={name: field_value(name) for name in POOL_FIELDS})


# ---- conditions ------------------------------------------------------------------------------

def leaf_values(name: str, op: str) -> st.SearchStrategy[Any]:
    """Values the loader accepts for `op` on field `name` (placeholders included)."""
    spec = FIELDS[name]
    if op in ("is_set", "is_empty"):
        return st.booleans()
    if spec.type == ENUM:
        one = st.sampled_from(spec.values)
        return one if op in ("eq", "ne") else st.lists(one, min_size=1, max_size=3)
    if spec.type == BOOL:
        return st.booleans()
    if spec.type == LIST:
        return st.lists(TAG, min_size=1, max_size=3)
    if spec.type in (TEXT, STRING):
        if op in ("contains_any", "contains_all"):
            return st.lists(KEYWORD, min_size=1, max_size=3)
        if op == "starts_with":
            return KEYWORD
        if op == "matches":
            return st.sampled_from(REGEXES)
        one = st.one_of(WORD, st.sampled_from(["", " refund ", "Re: 订单 8812"]))
        return one if op in ("eq", "ne") else st.lists(one, min_size=1, max_size=3)
    if op == "between":
        return st.builds(Range, NUMBER_VALUE, NUMBER_VALUE)
    if op in ("in", "not_in"):
        return st.lists(NUMBER_VALUE, min_size=1, max_size=3)
    return NUMBER_VALUE


LEAF_KINDS = [(name, op) for names in POOL.values() for name in names for op in OPERATORS_BY_TYPE[FIELDS[name].type]]
OPERATORS_ON: dict[str, list[str]] = {}  # operator -> the pool's fields it applies to
for _name, _op in LEAF_KINDS:
    OPERATORS_ON.setdefault(_op, []).append(_name)


def test_the_generator_covers_every_type_and_operator_of_the_catalog() -> None:
    assert {FIELDS[name].type for name in POOL_FIELDS} == set(OPERATORS_BY_TYPE)
    for ftype, ops in OPERATORS_BY_TYPE.items():
        for op in ops:
            assert any(FIELDS[name].type == ftype and o == op for name, o in LEAF_KINDS), (ftype, op)
    assert set(OPERATORS_ON) == set(OPERATORS)


# an operator first, then a field it applies to: every operator is as likely as the others
LEAVES = st.one_of(*(
    st.sampled_from(OPERATORS_ON[op]).flatmap(
        lambda name, op=op: leaf_values(name, op).map(lambda value, name=name, op=op: {"field": name, op: value}))
    for op in sorted(OPERATORS_ON)))


def conditions(depth: int = 3) -> st.SearchStrategy[dict[str, Any]]:
    if depth == 0:
        return LEAVES
    inner = conditions(depth - 1)
    return st.one_of(
        LEAVES,
        st.lists(inner, min_size=1, max_size=3).map(lambda items: {"all": items}),
        st.lists(inner, min_size=1, max_size=3).map(lambda items: {"any": items}),
        inner.map(lambda item: {"not": item}),
    )


CONDITIONS = conditions()


@st.composite
def rulesets(draw: st.DrawFn) -> dict[str, Any]:
    """A rules document with a `match: all` classification group and a `match: first` priority
    group, each optionally ending with a catch-all (placeholders not resolved yet)."""
    classification = []
    for index, cond in enumerate(draw(st.lists(CONDITIONS, min_size=1, max_size=6))):
        then: dict[str, Any] = {}
        if draw(st.booleans()):
            then["category"] = f"c{index}"
        if draw(st.booleans()) or not then:
            then["tags"] = draw(st.lists(st.sampled_from(["a", "b", "c", "退款"]), max_size=3))
        classification.append({"id": f"c{index}", "when": cond, "then": then})
    if draw(st.booleans()):
        classification.append({"id": "c-default", "then": {"tags": ["default"]}})
    priority = [{"id": f"p{index}", "when": cond, "then": {"priority": draw(st.sampled_from(["P1", "P2", "P3", "P4"]))}}
                for index, cond in enumerate(draw(st.lists(CONDITIONS, min_size=1, max_size=6)))]
    if draw(st.booleans()):
        priority.append({"id": "p-default", "then": {"priority": "P4"}})
    return {"groups": [{"name": "classification", "match": "all", "rules": classification},
                       {"name": "priority", "match": "first", "rules": priority}]}


def load(doc: dict[str, Any]):
    return load_ruleset_texts({"random.yaml": yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)})


# =============================================================================================
# An independent model of the documented semantics (rules/README.md, compiler.py docstrings)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, dict)):
        return not value
    return False


def model(cond: dict[str, Any] | None, snap: dict[str, Any]) -> bool:
    if cond is None:
        return True
    if "all" in cond:
        return all(model(item, snap) for item in cond["all"])
    if "any" in cond:
        return any(model(item, snap) for item in cond["any"])
    if "not" in cond:
        return not model(cond["not"], snap)
    name = cond["field"]
    op = next(key for key in cond if key != "field")
    expected = cond[op]
    value = snap.get(name)
    ftype = FIELDS[name].type
    if op == "is_set":
        return (value is not None) == expected
    if op == "is_empty":
        return _empty(value) == expected
    if ftype == LIST:
        if not isinstance(value, (list, tuple)):
            return False
        items = {fold(item) for item in value if isinstance(item, str)}
        needles = {fold(item) for item in expected}
        return bool(needles & items) if op == "contains_any" else needles <= items
    if ftype in (TEXT, STRING):
        if not isinstance(value, str):
            return False
        folded = fold(value)
        if op == "contains_any":
            return any(_finder(fold(word))(folded) for word in expected)
        if op == "contains_all":
            return all(_finder(fold(word))(folded) for word in expected)
        if op == "eq":
            return folded == fold(expected)
        if op == "ne":
            return folded != fold(expected)
        if op == "in":
            return folded in {fold(item) for item in expected}
        if op == "not_in":
            return folded not in {fold(item) for item in expected}
        if op == "starts_with":
            return folded.lstrip().startswith(fold(expected))
        assert op == "matches"
        return re.search(expected, folded, re.IGNORECASE) is not None
    if ftype == BOOL:
        return value is (expected if op == "eq" else not expected)
    if ftype == ENUM:
        if op == "eq":
            return value == expected
        if not isinstance(value, str):
            return False
        return {"ne": value != expected, "in": value in expected, "not_in": value not in expected}[op]
    assert ftype in (NUMBER, INT)
    if not _number(value):
        return False
    if op == "between":
        return expected[0] <= value <= expected[1]
    if op == "in":
        return value in set(expected)
    if op == "not_in":
        return value not in set(expected)
    return {"lt": value < expected, "lte": value <= expected, "gt": value > expected, "gte": value >= expected,
            "eq": value == expected, "ne": value != expected}[op]


# =============================================================================================
# Checks shared by the tests


def thaw(actions: Any) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value for key, value in actions.items()}


def merged(rules: list[dict[str, Any]]) -> dict[str, Any]:
    """`match: all`: scalars last wins, lists unioned in first-seen order."""
    out: dict[str, Any] = {}
    for rule in rules:
        for key, value in rule["then"].items():
            if isinstance(value, list):
                current = out.setdefault(key, [])
                current.extend(item for item in dict.fromkeys(value) if item not in current)
            else:
                out[key] = value
    return out


_NAME = re.compile(r"^[a-z]\d+$")  # generated variables and numbered constants: v0, n1, t2, c3, ...
_BUILTINS = {"isinstance", "str"}
_ATTRIBUTES = {"last", "__class__"} | {name for kind in (str, frozenset, dict, tuple) for name in dir(kind)
                                       if not name.startswith("_")}


def assert_source_is_only_structure(source: str) -> None:
    """Every name in the generated source is a helper, a variable or a numbered constant; every
    string literal is a catalog field name; every other literal an int, bool or None."""
    allowed = set(_CODEGEN_HELPERS) | _BUILTINS | {"decide", "snap", "get", "matched"}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            assert node.id in allowed or _NAME.match(node.id), (node.id, source)
        elif isinstance(node, ast.Attribute):
            assert node.attr in _ATTRIBUTES, (node.attr, source)
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, str):
                assert node.value in FIELDS, (node.value, source)
            else:
                assert node.value is None or isinstance(node.value, (bool, int)), (node.value, source)


def check_group(rs: Any, doc_group: dict[str, Any], snap: dict[str, Any], order: list[str]) -> None:
    """decide, evaluate and explain agree with each other and with the model on one snapshot."""
    name, first, rules = doc_group["name"], doc_group["match"] == "first", doc_group["rules"]
    got: dict[str, Any] = {}
    for kind in order:  # the order varies: the shared text views must not leak between calls
        if kind == "decide":
            got[kind] = rs.decide(name, snap)
        elif kind == "evaluate":
            got[kind] = rs.evaluate(name, snap)
        else:
            got[kind] = rs.evaluate(name, snap, explain=True)
    decided, evaluated, explained = got["decide"], got["evaluate"], got["explain"]
    context = (name, snap, rs.source(name))

    hits = [rule for rule in rules if model(rule.get("when"), snap)]
    if first:
        hits = hits[:1]
    want_ids = [rule["id"] for rule in hits]
    want_actions = copy.deepcopy(hits[0]["then"]) if first and hits else merged(hits)

    assert isinstance(decided, GroupOutcome) and isinstance(decided.rule_ids, tuple), context
    assert list(decided.rule_ids) == want_ids, context
    assert evaluated.rule_ids == want_ids, context
    assert explained.rule_ids == want_ids, context
    assert thaw(decided.actions) == want_actions, context
    assert evaluated.actions == want_actions, context
    assert explained.actions == want_actions, context

    # compact trace: exactly the matched rules, in order
    assert [entry["rule_id"] for entry in evaluated.trace] == want_ids, context
    assert all(entry["matched"] is True for entry in evaluated.trace), context
    # explain trace: every rule; matched flags are what decide picked
    assert [entry["rule_id"] for entry in explained.trace] == [rule["id"] for rule in rules], context
    if first:
        flags = [entry.get("matched") for entry in explained.trace]
        cut = flags.index(True) + 1 if True in flags else len(flags)
        assert all(flag is False for flag in flags[:cut] if flag is not True), context
        assert all(entry.get("skipped") is True for entry in explained.trace[cut:]), context
        assert [entry["rule_id"] for entry in explained.trace[:cut] if entry["matched"]] == list(decided.rule_ids)
    else:
        assert [entry["rule_id"] for entry in explained.trace if entry["matched"]] == list(decided.rule_ids), context


# =============================================================================================
# 1. Random conditions and snapshots


CALL_ORDERS = [["decide", "evaluate", "explain"], ["explain", "evaluate", "decide"], ["evaluate", "decide", "explain"]]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(vocabulary=vocabularies, doc=rulesets(), snaps=st.lists(SNAPSHOTS, min_size=1, max_size=6), data=st.data())
def test_decide_evaluate_and_explain_agree_on_random_rules_and_snapshots(vocabulary, doc, snaps, data) -> None:
    doc, snaps = resolve(doc, vocabulary), [resolve(snap, vocabulary) for snap in snaps]
    note(f"rules:\n{yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)}\nsnapshots: {snaps!r}")
    try:
        rs = load(doc)
    except RulesetError:  # e.g. two identical conditions in the first group (shadowing)
        assume(False)
    for group in doc["groups"]:
        assert_source_is_only_structure(rs.source(group["name"]))
    stage = rs.decider(("classification", "priority"))  # both groups in one generated function
    for raw in snaps:
        # as a caller hands it over, and through build_snapshot (derived text, FOLDED_TEXT)
        for snap in (raw, build_snapshot(raw)) if data.draw(st.booleans()) else (raw,):
            together = stage(snap)
            for group in doc["groups"]:
                check_group(rs, group, snap, data.draw(st.sampled_from(CALL_ORDERS)))
            decided = (rs.decide("classification", snap), rs.decide("priority", snap))
            assert len(together) == 2 and all(a is b for a, b in zip(together, decided)), (snap, together, decided)
            assert all(a is b for a, b in zip(stage(snap), decided)), snap  # a mask seen before: the same outcome


ODD_VALUES = [None, *WRONG, Text("ＶＩＰ 退款"), [1, "VIP"], "  vip", "VIP", "\u3000ＶＩＰ", "vip退款"]


def test_every_leaf_kind_on_every_odd_value() -> None:
    """Deterministic sweep: one rule per (field, operator) of the pool, each snapshot giving every
    field the same odd value (wrong types, int/str subclasses, NaN, full-width, whitespace)."""
    rules = [{"id": f"r{index}", "when": {"field": name, op: _fixed_value(name, op)}, "then": {"tags": [f"t{index}"]}}
             for index, (name, op) in enumerate(LEAF_KINDS)]
    doc = {"groups": [{"name": "classification", "match": "all", "rules": rules},
                      {"name": "priority", "match": "first",
                       "rules": [{"id": f"p{r['id']}", "when": r["when"], "then": {"priority": "P2"}} for r in rules]}]}
    rs = load(doc)
    for number, value in enumerate(ODD_VALUES):
        snap = {name: value for name in POOL_FIELDS}
        for group in doc["groups"]:
            check_group(rs, group, snap, CALL_ORDERS[number % 3])
            check_group(rs, group, build_snapshot(snap), CALL_ORDERS[(number + 1) % 3])


def _fixed_value(name: str, op: str) -> Any:
    spec = FIELDS[name]
    if op in ("is_set", "is_empty"):
        return op == "is_empty"
    if spec.type == ENUM:
        return spec.values[0] if op in ("eq", "ne") else list(spec.values[:2])
    if spec.type == BOOL:
        return op == "eq"
    if spec.type == LIST:
        return ["VIP", "退款"]
    if spec.type in (TEXT, STRING):
        return {"contains_any": ["vip", "退款"], "contains_all": ["vip"], "starts_with": "vip",
                "matches": r"^\s*vip", "eq": "VIP", "ne": "vip", "in": ["vip", "5"], "not_in": ["vip"]}[op]
    return {"between": [1, 5], "in": [5, 0], "not_in": [5]}.get(op, 5)


# =============================================================================================
# 2. Shared read-only outcomes, fresh results

SHARED = """
groups:
  - name: classification
    match: all
    rules:
      - id: refund
        when: {field: text, contains_any: [refund, 退款]}
        then: {category: refund, tags: [money, refund]}
      - id: angry
        when: {field: text, contains_any: [terrible, 差劲]}
        then: {category: complaint, tags: [angry, refund]}
  - name: priority
    match: first
    rules:
      - id: vip
        when: {field: customer.tier, eq: vip}
        then: {priority: P1}
      - id: default
        then: {priority: P3}
"""


def test_group_outcome_is_read_only_and_shared() -> None:
    rs = load_ruleset_texts({"s.yaml": SHARED})
    one = rs.decide("classification", build_snapshot({"body": "refund please, terrible"}))
    assert one.rule_ids == ("refund", "angry")
    assert one.actions == {"category": "complaint", "tags": ("money", "refund", "angry")}
    assert isinstance(one.actions["tags"], tuple)
    for attribute in ("group", "rule_ids", "actions", "other"):
        with pytest.raises(AttributeError):
            setattr(one, attribute, "changed")
    with pytest.raises(TypeError):
        one.actions["category"] = "changed"  # type: ignore[index]
    with pytest.raises(TypeError):
        del one.actions["tags"]  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        one.actions["tags"].append("changed")

    # the same rules matched: the very same object, on other snapshots
    two = rs.decide("classification", build_snapshot({"subject": "退款", "body": "差劲"}))
    assert two is one
    vip_a = rs.decide("priority", {"customer.tier": "vip", "body": "x"})
    vip_b = rs.decide("priority", {"customer.tier": "vip", "channel": "sms"})
    assert vip_a is vip_b and vip_a.rule_ids == ("vip",) and vip_a.actions == {"priority": "P1"}
    assert rs.decide("priority", {}) is rs.decide("priority", {"customer.tier": "premium"})
    none_a, none_b = rs.decide("classification", {}), rs.decide("classification", {"body": "hello"})
    assert none_a is none_b and none_a.rule_ids == () and dict(none_a.actions) == {}
    # and they are unchanged by all of the above
    assert rs.decide("classification", build_snapshot({"body": "refund terrible"})).actions == {
        "category": "complaint", "tags": ("money", "refund", "angry")}


def test_group_outcome_attributes_cannot_be_deleted() -> None:
    rs = load_ruleset_texts({"s.yaml": SHARED})
    outcome = rs.decide("priority", {"customer.tier": "vip"})
    for attribute in ("group", "rule_ids", "actions"):
        with pytest.raises(AttributeError):
            delattr(outcome, attribute)
    assert rs.decide("priority", {"customer.tier": "vip"}).rule_ids == ("vip",)


def test_evaluate_returns_fresh_objects_the_caller_may_change() -> None:
    rs = load_ruleset_texts({"s.yaml": SHARED})
    snapshot = build_snapshot({"body": "refund please, terrible", "customer": {"tier": "vip"}})
    want = {"category": "complaint", "tags": ["money", "refund", "angry"]}
    for explain in (False, True):
        first = rs.evaluate("classification", snapshot, explain=explain)
        second = rs.evaluate("classification", snapshot, explain=explain)
        assert first == second and first is not second
        assert first.actions is not second.actions and first.actions["tags"] is not second.actions["tags"]
        assert first.rule_ids is not second.rule_ids and first.trace is not second.trace
        first.actions["tags"].append("mutated")
        first.actions["category"] = "mutated"
        first.rule_ids.append("mutated")
        first.trace.append({"mutated": True})
        first.trace[0]["leaves"].append("mutated")
        third = rs.evaluate("classification", snapshot, explain=explain)
        assert third.actions == want and third.rule_ids == ["refund", "angry"], explain
        assert "mutated" not in third.trace[0]["leaves"] and len(third.trace) == 2
        assert thaw(rs.decide("classification", snapshot).actions) == want

        routed = rs.evaluate("priority", snapshot, explain=explain)
        routed.actions["priority"] = "P4"
        routed.rule_ids.clear()
        assert rs.evaluate("priority", snapshot, explain=explain).actions == {"priority": "P1"}
        assert rs.decide("priority", snapshot).actions == {"priority": "P1"}
    assert rs.to_dict()["groups"][0]["rules"][0]["then"] == {"category": "refund", "tags": ["money", "refund"]}


def test_first_group_list_actions_are_tuples_in_outcomes_and_fresh_lists_in_results() -> None:
    rs = load_ruleset_texts({"r.yaml": """
groups:
  - name: routing
    match: first
    rules:
      - id: zh
        when: {field: customer.language, eq: zh}
        then: {team: cn, skills: [zh, billing]}
"""})
    outcome = rs.decide("routing", {"customer.language": "ZH"})
    assert outcome.actions == {"team": "cn", "skills": ("zh", "billing")}
    result = rs.evaluate("routing", {"customer.language": "ZH"})
    result.actions["skills"].append("x")
    assert rs.evaluate("routing", {"customer.language": "zh"}).actions == {"team": "cn", "skills": ["zh", "billing"]}
    assert outcome.actions["skills"] == ("zh", "billing")


def test_stage_decider_returns_what_decide_returns() -> None:
    """`Ruleset.decider(groups)` (codegen.generate_stage) decides several groups in one call and
    must return, per group, the very outcome `decide` returns."""
    rs = load_ruleset_texts({"s.yaml": SHARED})
    decider = rs.decider(("classification", "priority"))
    snapshots = [build_snapshot({"body": "refund terrible", "customer": {"tier": "vip"}}),
                 build_snapshot({"body": "refund terrible", "customer": {"tier": "vip"}}),  # the same masks again
                 build_snapshot({"body": "差劲"}), {}, {"body": 42, "customer.tier": ["vip"]}]
    for snapshot in snapshots:
        classification, priority = decider(snapshot)
        assert classification is rs.decide("classification", snapshot), snapshot
        assert priority is rs.decide("priority", snapshot), snapshot
    assert rs.decider(("classification", "priority")) is decider
    with pytest.raises(KeyError):
        rs.decider(("nope",))


# =============================================================================================
# 3. Nothing from the rules file becomes code

EVIL = ['"); import os; ("', "__import__('os')", "a'b\"c\\d", "line1\nline2", "''' \"\"\" ''", "]; matched |= 1; [",
        "\\n\\x00", "#comment", "lambda: 0", "\u2028sep", "退款'); os.system('x"]


def test_hostile_values_stay_constants() -> None:
    regexes = [re.escape(EVIL[0]), re.escape(EVIL[1]), "'b\"c\\\\"]
    rules = [
        {"id": "kw", "when": {"field": "body", "contains_any": EVIL}, "then": {"tags": ["kw"]}},
        {"id": "all-kw", "when": {"field": "subject", "contains_all": EVIL[:2]}, "then": {"tags": ["all-kw"]}},
        {"id": "eq", "when": {"field": "category", "eq": EVIL[0]}, "then": {"tags": ["eq"]}},
        {"id": "in", "when": {"field": "customer.id", "in": EVIL}, "then": {"tags": ["in"]}},
        {"id": "not-in", "when": {"field": "customer.id", "not_in": EVIL}, "then": {"tags": ["not-in"]}},
        {"id": "starts", "when": {"field": "subject", "starts_with": EVIL[0]}, "then": {"tags": ["starts"]}},
        {"id": "tags", "when": {"field": "tags", "contains_any": EVIL}, "then": {"tags": ["tags"]}},
        *({"id": f"re{index}", "when": {"field": "body", "matches": pattern}, "then": {"tags": [f"re{index}"]}}
          for index, pattern in enumerate(regexes)),
    ]
    doc = {"groups": [{"name": "classification", "match": "all", "rules": rules},
                      {"name": "priority", "match": "first",
                       "rules": [{"id": f"p-{r['id']}", "when": r["when"], "then": {"priority": "P1"}} for r in rules]}]}
    rs = load(doc)
    for group in ("classification", "priority"):
        source = rs.source(group)
        for value in [*EVIL, *regexes, "import", "os.system", "__import__"]:
            assert value not in source, (value, source)
        assert_source_is_only_structure(source)

    cases = [
        ({"body": f"x {EVIL[0]} y"}, ["kw", "re0"]),
        ({"body": f"please {EVIL[1]}"}, ["kw", "re1"]),
        ({"body": "a'b\"c\\d"}, ["kw", "re2"]),
        ({"body": "nothing here"}, []),
        ({"body": "import os"}, []),
        ({"subject": EVIL[0] + " and " + EVIL[1]}, ["all-kw", "starts"]),
        ({"subject": "   " + EVIL[0].upper()}, ["starts"]),
        ({"category": EVIL[0]}, ["eq"]),
        ({"category": EVIL[0] + " "}, []),
        ({"customer.id": EVIL[3]}, ["in"]),
        ({"customer.id": EVIL[10].upper()}, ["in"]),
        ({"customer.id": "line1 line2"}, ["not-in"]),
        ({"tags": [EVIL[4], "x"]}, ["tags"]),
    ]
    for snapshot, want in cases:
        for group in doc["groups"]:
            check_group(rs, group, snapshot, CALL_ORDERS[0])
        assert list(rs.decide("classification", snapshot).rule_ids) == want, snapshot
        assert rs.evaluate("priority", snapshot).rule_ids == ([f"p-{want[0]}"] if want else []), snapshot


def test_values_outside_the_catalog_never_reach_the_generator() -> None:
    """Enum values and field names come from the catalog: hostile ones are refused by the loader."""
    for when in ({"field": "channel", "eq": EVIL[0]}, {"field": "channel", "in": ["sms", EVIL[1]]},
                 {"field": "__import__('os')", "eq": "x"}, {"field": "body", "matches": "(" + EVIL[0]}):
        doc = {"groups": [{"name": "priority", "match": "first",
                           "rules": [{"id": "p", "when": when, "then": {"priority": "P1"}}]}]}
        with pytest.raises(RulesetError):
            load(doc)


# =============================================================================================
# 4. More rules than a machine word in a `match: all` group


def test_all_group_with_eighty_rules() -> None:
    count = 80
    rules = [{"id": f"r{index}", "when": {"any": [{"field": "tags", "contains_any": [f"k{index}"]},
                                                  {"field": "order_value", "eq": index}]},
              "then": {"category": f"c{index}", "tags": [f"t{index % 7}", f"t{index}"]}}
             for index in range(count)]
    rules.append({"id": "always", "then": {"tags": ["always"]}})  # a catch-all: bit 80
    doc = {"groups": [{"name": "classification", "match": "all", "rules": rules},
                      {"name": "priority", "match": "first",
                       "rules": [{"id": f"p{index}", "when": {"field": "tags", "contains_any": [f"k{index}"]},
                                  "then": {"priority": "P2"}} for index in range(count)]}]}
    rs = load(doc)

    rng = random.Random(1279)
    picks = [[79], [63], [64], [0, 79], list(range(count)), [], [62, 63, 64, 65]]
    # more distinct combinations than the outcome cache keeps (4096): the uncached path too
    picks += [sorted(rng.sample(range(count), rng.randint(1, 12))) for _ in range(4300)]
    for number, chosen in enumerate(picks):
        snapshot = {"tags": [f"K{index}" for index in chosen]}
        decided = rs.decide("classification", snapshot)
        want = [f"r{index}" for index in chosen] + ["always"]
        assert list(decided.rule_ids) == want
        if number < 300 or number % 50 == 0:  # the full three-way check on a sample
            for group in doc["groups"]:
                check_group(rs, group, snapshot, CALL_ORDERS[number % 3])
        else:
            assert rs.evaluate("classification", snapshot).rule_ids == want
            assert thaw(decided.actions) == rs.evaluate("classification", snapshot).actions
    everything = rs.evaluate("classification", {"tags": [f"k{index}" for index in range(count)]})
    assert everything.actions["category"] == "c79"
    assert everything.actions["tags"][:7] == ["t0", "t1", "t2", "t3", "t4", "t5", "t6"]
    assert len(everything.actions["tags"]) == count + 1
    assert rs.decide("classification", {"order_value": 79}).rule_ids == ("r79", "always")
    assert rs.decide("classification", {"order_value": 79}) is rs.decide("classification", {"tags": ["k79"]})


# =============================================================================================
# 5. The fast schema check


def test_as_draft7_moves_ref_siblings_into_all_of() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "properties": {
            "a": {"$ref": "#/$defs/x", "type": "string", "description": "kept as is"},
            "b": {"$ref": "#/$defs/x", "minLength": 1, "allOf": [{"maxLength": 3}]},
            "c": {"$ref": "#/$defs/x", "description": "only", "title": "annotations", "$comment": "here",
                  "examples": ["e"]},
            "d": {"items": [{"$ref": "#/$defs/x", "pattern": "^a"}]},
        },
    }
    before = copy.deepcopy(schema)
    out = schemacheck.as_draft7(schema)
    assert schema == before  # not changed in place
    assert out["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert out["properties"]["a"] == {"type": "string", "description": "kept as is", "allOf": [{"$ref": "#/$defs/x"}]}
    assert out["properties"]["b"] == {"minLength": 1, "allOf": [{"$ref": "#/$defs/x"}, {"maxLength": 3}]}
    assert out["properties"]["c"] == before["properties"]["c"]
    assert out["properties"]["d"] == {"items": [{"pattern": "^a", "allOf": [{"$ref": "#/$defs/x"}]}]}
    # the real schema: no $ref keeps a constraining sibling
    for node in _walk(schemacheck.as_draft7(rules_json_schema())):
        if "$ref" in node:
            assert set(node) <= {"$ref", "description", "title", "$comment", "examples"}, node


def _walk(node: Any):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


REFERENCE = Draft202012Validator(rules_json_schema())
DOCUMENT_DIRS = [ROOT / "rules", ROOT / "tests" / "rules_broken", ROOT / "tests" / "rules_lint_bad"]


def _documents() -> list[tuple[str, Any]]:
    out = []
    for directory in DOCUMENT_DIRS:
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (yaml.YAMLError, UnicodeDecodeError):
                continue
            out.append((str(path.relative_to(ROOT)), data))
    return out


DOCUMENTS = _documents()
SHIPPED = {name: data for name, data in DOCUMENTS if name.startswith("rules/") and not name.startswith("rules/tests/")
           and isinstance(data, dict)}

HAND_MADE = {
    "unknown top-level key": {"groups": [], "grups": []},
    "group without rules": {"groups": [{"name": "priority", "match": "first"}]},
    "empty rules": {"groups": [{"name": "priority", "match": "first", "rules": []}]},
    "match of the wrong type": {"groups": [{"name": "priority", "match": 1,
                                            "rules": [{"id": "a", "then": {"priority": "P1"}}]}]},
    "match not an enum value": {"groups": [{"name": "priority", "match": "First",
                                            "rules": [{"id": "a", "then": {"priority": "P1"}}]}]},
    "action of another group": {"groups": [{"name": "routing", "match": "first",
                                            "rules": [{"id": "a", "then": {"team": "t", "priority": "P1"}}]}]},
    "action of another group, alone": {"groups": [{"name": "priority", "match": "first",
                                                   "rules": [{"id": "a", "then": {"team": "t"}}]}]},
    "bad duration": {"groups": [{"name": "auto_close", "match": "first",
                                 "rules": [{"id": "a", "then": {"auto_close_after": "4 hours"}}]}]},
    "negative duration": {"groups": [{"name": "auto_close", "match": "first",
                                      "rules": [{"id": "a", "then": {"auto_close_after": -5}}]}]},
    "rule id not kebab-case": {"groups": [{"name": "priority", "match": "first",
                                           "rules": [{"id": "A_b", "then": {"priority": "P1"}}]}]},
    "unknown operator": {"groups": [{"name": "priority", "match": "first",
                                     "rules": [{"id": "a", "when": {"field": "channel", "equals": "sms"},
                                                "then": {"priority": "P1"}}]}]},
    "between of three": {"groups": [{"name": "priority", "match": "first",
                                     "rules": [{"id": "a", "when": {"field": "order_value", "between": [1, 2, 3]},
                                                "then": {"priority": "P1"}}]}]},
    "empty then": {"groups": [{"name": "priority", "match": "first", "rules": [{"id": "a", "then": {}}]}]},
    "empty file mapping": {},
    "not a mapping": ["groups"],
    "policy name not kebab-case": {"sla_policies": {"Gold": {"first_response": "1h", "resolution": "2h"}}},
    "warning out of range": {"sla_policies": {"gold": {"first_response": "1h", "resolution": "2h", "warnings": [1]}}},
    "template without body": {"templates": {"survey": {"en": {"subject": "s"}}}},
    "faq without keywords": {"faq": [{"id": "a", "keywords": {}, "answer": {"en": "x"}}]},
    # valid ones, so that the check is not just "always no"
    "valid minimal": {"groups": [{"name": "priority", "match": "first",
                                  "rules": [{"id": "a", "then": {"priority": "P1"}}]}]},
    "valid duration in seconds": {"groups": [{"name": "auto_close", "match": "first",
                                              "rules": [{"id": "a", "then": {"auto_close_after": 3600}}]}]},
}


@pytest.mark.parametrize("name, data", DOCUMENTS + list(HAND_MADE.items()),
                         ids=[name for name, _ in DOCUMENTS] + list(HAND_MADE))
def test_is_valid_agrees_with_jsonschema(name: str, data: Any) -> None:
    before = copy.deepcopy(data)
    assert schemacheck.is_valid(data) is REFERENCE.is_valid(data), name
    assert data == before  # no defaults filled in


def test_the_documents_cover_both_answers() -> None:
    answers = {REFERENCE.is_valid(data) for _, data in DOCUMENTS}
    assert answers == {True, False}
    assert len(SHIPPED) >= 10 and all(REFERENCE.is_valid(data) for data in SHIPPED.values())
    assert not any(REFERENCE.is_valid(data) for name, data in HAND_MADE.items() if not name.startswith("valid"))


MUTATIONS = [None, 0, 1, -1, 1.5, 3600.0, True, False, "", "x", "P1", "4h", "first", "kebab-id", "Not Kebab",
             [], ["x"], [{}], {}, {"x": 1}, {"field": "channel", "eq": "sms"}]


def _paths(node: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out.extend(_paths(value, path + (key,)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out.extend(_paths(value, path + (index,)))
    return out


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_is_valid_agrees_with_jsonschema_on_mutated_shipped_files(data) -> None:
    name = data.draw(st.sampled_from(sorted(SHIPPED)))
    doc = copy.deepcopy(SHIPPED[name])
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(doc)))
        if not path:
            continue
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = copy.deepcopy(data.draw(st.sampled_from(MUTATIONS)))
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[data.draw(st.sampled_from(["extra", "when", "then", "id", "match", "description", "eq"]))] = \
                copy.deepcopy(data.draw(st.sampled_from(MUTATIONS)))
        else:
            parent.append(copy.deepcopy(data.draw(st.sampled_from(MUTATIONS))))
    assert schemacheck.is_valid(doc) is REFERENCE.is_valid(doc), (name, doc)


BROKEN = ROOT / "tests" / "rules_broken"


@pytest.mark.parametrize("case", ["schema-structure", "several-errors-at-once", "unknown-action-for-group",
                                  "wrong-type-value", "bad-duration"])
def test_invalid_files_still_get_the_detailed_messages(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same lines `rules validate` prints (tests/rules_broken/<case>/expected.txt), and the
    same issues as with the jsonschema walk alone (what the loader did before schemacheck)."""
    files = {f"tests/rules_broken/{case}/{path.name}": path.read_text(encoding="utf-8")
             for path in sorted((BROKEN / case).glob("*.yaml"))}
    with pytest.raises(RulesetError) as fast:
        load_ruleset_texts(files)
    assert any(not schemacheck.is_valid(yaml.safe_load(text)) for text in files.values())  # the fallback ran
    expected = (BROKEN / case / "expected.txt").read_text(encoding="utf-8").rstrip().splitlines()[:-1]
    assert [str(issue) for issue in fast.value.issues] == [line.rstrip() for line in expected]

    monkeypatch.setattr("engine.ruleset.loader.schemacheck.is_valid", lambda data: False)
    with pytest.raises(RulesetError) as slow:
        load_ruleset_texts(files)
    assert slow.value.issues == fast.value.issues


def test_valid_shipped_rules_load_without_the_slow_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    """A valid file never reaches jsonschema: the fast check answers alone."""
    from engine.ruleset import loader

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("jsonschema walked a valid file")

    monkeypatch.setattr(loader, "_schema_validator", refuse)
    rs = loader.load_ruleset(ROOT / "rules")
    assert rs.has_group("priority") and set(GROUP_ACTIONS) >= set(rs.groups)


def test_contains_all_matches_when_the_text_holds_exactly_its_keywords() -> None:
    # The keywords found in a text can be exactly the rule's list (no other keyword of the
    # ruleset in it): that is a match, for the generated code as for explain.
    doc = {"groups": [{"name": "priority", "match": "first", "rules": [
        {"id": "both", "when": {"field": "text", "contains_all": ["退款", "refund"]}, "then": {"priority": "P1"}},
        {"id": "rest", "then": {"priority": "P4"}}]}]}
    rs = load_ruleset_texts({"t.yaml": yaml.safe_dump(doc, allow_unicode=True)})
    for text, want in (("我要退款 refund now", ("both",)), ("我要退款", ("rest",)), ("Refund 退款", ("both",))):
        snapshot = build_snapshot({"body": text})
        assert rs.decide("priority", snapshot).rule_ids == want, text
        assert tuple(rs.evaluate("priority", snapshot, explain=True).rule_ids) == want, text
        assert rs.decider(("priority",))(snapshot)[0].rule_ids == want, text
