"""The native evaluator (engine/ruleset/_native.c, native.py) against the generated Python.

Owns: the extension is built and used by default (TICKETFLOW_RULES_NATIVE=0: generated Python
for rulesets built afterwards); native == generated Python on random rules and snapshots (decide,
evaluate with its compact trace, stage deciders and stage evaluators; raw, through build_snapshot,
and not dicts); long texts cut in traces as Python cuts them, in every string kind; the
generated-Python path keeps the coverage tests/test_ruleset_codegen.py gives it; `_native.Scanner`
== `compiler._finder`; the text cache; the fallback beyond KEYWORDS_MAX keywords; exceptions of
Python callbacks propagating through C; no reference or memory leaks. The random rules and
snapshots, the model and `check_group` are the codegen test's.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import tracemalloc
import types
from collections import UserDict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

from engine.ruleset import GroupResult, RulesetError, build_snapshot, load_ruleset, native
from engine.ruleset.compiler import _finder, _KeywordScanner, fold
from engine.ruleset.fields import FOLDED_TEXT
from tests import test_ruleset_codegen as codegen_tests
from tests.test_ruleset_codegen import (CALL_ORDERS, SNAPSHOTS, Text, check_group, load, resolve, rulesets, thaw,
                                        vocabularies)

ROOT = Path(__file__).resolve().parents[1]
ENV = "TICKETFLOW_RULES_NATIVE"
GROUPS = ("classification", "priority")
_native = native._native
SLOW = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@contextlib.contextmanager
def evaluator_env(value: str | None) -> Iterator[None]:
    """TICKETFLOW_RULES_NATIVE set to `value` (None: unset, the default) inside the block."""
    with mock.patch.dict(os.environ):
        os.environ.pop(ENV, None)
        if value is not None:
            os.environ[ENV] = value
        yield


def both(doc: dict[str, Any]) -> tuple[Any, Any]:
    """The same document as (generated Python, native) rulesets."""
    with evaluator_env("0"):
        python = load(doc)
    with evaluator_env(None):
        fast = load(doc)
    assert (python.evaluator, fast.evaluator) == ("python", "native")
    return python, fast


def same_result(a: GroupResult, b: GroupResult, context: Any) -> None:
    assert type(a) is type(b) is GroupResult, context
    assert (a.group, a.rule_ids, a.actions, a.trace) == (b.group, b.rule_ids, b.actions, b.trace), context


# 1. Built, and used by default


def test_native_is_built_and_used_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert _native is not None and native.enabled()
    default = load_ruleset(ROOT / "rules")
    assert default.evaluator == "native"
    monkeypatch.setenv(ENV, "0")
    assert not native.enabled()
    python = load_ruleset(ROOT / "rules")
    assert (python.evaluator, default.evaluator) == ("python", "native")  # read when a ruleset is built
    monkeypatch.setenv(ENV, "1")
    assert load_ruleset(ROOT / "rules").evaluator == "native"
    snap = build_snapshot({"subject": "Refund 退款", "body": "charged twice, terrible", "customer": {"tier": "vip"}})
    for group in default.groups:  # the shipped rules decide alike on both
        same_result(default.evaluate(group, snap), python.evaluate(group, snap), group)


# 2. Native and generated Python agree on random rules and snapshots


def compare(python: Any, fast: Any, doc: dict[str, Any], snap: Mapping[str, Any], order: list[str]) -> None:
    for group in doc["groups"]:
        name = group["name"]
        want, got = python.decide(name, snap), fast.decide(name, snap)
        assert (got.rule_ids, thaw(got.actions)) == (want.rule_ids, thaw(want.actions)), (name, snap, want, got)
        same_result(python.evaluate(name, snap), fast.evaluate(name, snap), (name, snap))
        check_group(fast, group, snap, order)
        check_group(python, group, snap, order)
    # the stage's results together (the worker's call): the same as evaluate one group at a time
    want_results, got_results = python.stage_evaluator(GROUPS)(snap), fast.stage_evaluator(GROUPS)(snap)
    for want, got, name in zip(want_results, got_results, GROUPS, strict=True):
        same_result(want, got, (name, snap))
        same_result(got, fast.evaluate(name, snap), (name, snap))
    want_stage, got_stage = python.decider(GROUPS)(snap), fast.decider(GROUPS)(snap)
    assert [(o.rule_ids, thaw(o.actions)) for o in got_stage] == [(o.rule_ids, thaw(o.actions)) for o in want_stage]
    assert all(o is fast.decide(name, snap) for o, name in zip(got_stage, GROUPS)), snap


def random_case(vocabulary: dict, doc: dict, snaps: list) -> tuple[dict, list, Any, Any]:
    """The drawn document and snapshots resolved, each snapshot raw and through build_snapshot,
    and the document as (generated Python, native) rulesets."""
    doc, snaps = resolve(doc, vocabulary), [resolve(snap, vocabulary) for snap in snaps]
    note(f"doc: {doc!r}\nsnapshots: {snaps!r}")
    try:
        python, fast = both(doc)
    except RulesetError:  # e.g. a shadowed rule in the first group
        assume(False)
    return doc, [snap for raw in snaps for snap in (raw, build_snapshot(raw))], python, fast


@SLOW
@given(vocabulary=vocabularies, doc=rulesets(), snaps=st.lists(SNAPSHOTS, min_size=1, max_size=5), data=st.data())
def test_native_agrees_with_generated_python(vocabulary, doc, snaps, data) -> None:
    doc, snaps, python, fast = random_case(vocabulary, doc, snaps)
    for snap in snaps:
        compare(python, fast, doc, snap, data.draw(st.sampled_from(CALL_ORDERS)))


DEFAULTS = {"channel": "email", "order_value": 120, "body": "Refund 退款 please", "tags": ["VIP"]}


class Defaults(dict):
    """A dict subclass whose get() is what rules read: it supplies values the dict lacks."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key, DEFAULTS.get(key, default))


@settings(SLOW, max_examples=150)
@given(vocabulary=vocabularies, doc=rulesets(), snaps=st.lists(SNAPSHOTS, min_size=1, max_size=4))
def test_snapshots_that_are_not_dicts_decide_as_the_dict(vocabulary, doc, snaps) -> None:
    doc, snaps, python, fast = random_case(vocabulary, doc, snaps)
    for snap in snaps:
        # a read-only view, a Mapping that is no dict (get() in Python), a dict subclass with its own get()
        views = [(types.MappingProxyType(snap), snap), (UserDict(snap), snap), (Defaults(snap), {**DEFAULTS, **snap})]
        for view, equivalent in views:
            context = (type(view), snap)
            for name in GROUPS:
                want = fast.decide(name, equivalent)
                assert fast.decide(name, view) is want, (name, context)
                assert python.decide(name, view).rule_ids == want.rule_ids, (name, context)
                same_result(python.evaluate(name, equivalent), fast.evaluate(name, view), (name, context))
            assert fast.decider(GROUPS)(view) == tuple(fast.decide(name, equivalent) for name in GROUPS), context


# 3. The generated Python keeps its own coverage


@pytest.fixture
def generated_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """TICKETFLOW_RULES_NATIVE=0, and the codegen tests' load() proves every ruleset is Python."""
    monkeypatch.setenv(ENV, "0")
    original = codegen_tests.load

    def load_python(doc: dict[str, Any]) -> Any:
        rs = original(doc)
        assert rs.evaluator == "python"
        return rs

    monkeypatch.setattr(codegen_tests, "load", load_python)


@pytest.mark.usefixtures("generated_python")
def test_generated_python_on_odd_values_and_wide_groups() -> None:
    codegen_tests.test_every_leaf_kind_on_every_odd_value()
    codegen_tests.test_all_group_with_eighty_rules()


@pytest.mark.usefixtures("generated_python")
def test_generated_python_on_random_rules_and_snapshots() -> None:
    codegen_tests.test_decide_evaluate_and_explain_agree_on_random_rules_and_snapshots()


# 4. The keyword scanner against compiler._finder

# ASCII letters, digits, spaces, punctuation, Chinese, full-width, Cyrillic, accented letters,
# U+2E2F (a letter just below U+2E80: a word character), U+2E7F / U+2E80 (either side of the
# bound, neither a letter), U+3005 (a letter above it: not a word character), an astral emoji.
ALPHABET = "abersu019 .,!'-退款扣多ＲｅＥéЖж\u2e2f\u2e7f\u2e80\u3005\U0001F600"
KNOWN_KEYWORDS = ["多扣", "扣款", "多扣款", "扣", "re", "ref", "refund", "sue", "issue", "é", "жe", "'re", " re",
                  "\u2e2fa", "\u2e80", "\u3005a", "\U0001F600", "a\U0001F600", "", "1", "19"]


def scanner_ids(keywords: list[str], text: str) -> tuple[int, ...]:
    return _native.Scanner(keywords, None, fold).find(text)


@settings(max_examples=300, deadline=None)
@given(keywords=st.sets(st.one_of(st.sampled_from(KNOWN_KEYWORDS), st.text(ALPHABET, max_size=4)), max_size=14),
       data=st.data())
def test_scanner_finds_what_finder_finds(keywords, data) -> None:
    kws = sorted(keywords)
    piece = st.one_of(st.sampled_from(kws), st.text(ALPHABET, max_size=3)) if kws else st.text(ALPHABET, max_size=3)
    text = data.draw(st.one_of(st.text(ALPHABET, max_size=24), st.lists(piece, max_size=6).map("".join)))
    want = tuple(index for index, word in enumerate(kws) if _finder(word)(text))
    assert scanner_ids(kws, text) == want, (kws, text)
    assert _KeywordScanner(set(kws)).find(text) == {kws[index] for index in want}, (kws, text)


def test_scanner_examples_and_limits() -> None:
    kws = sorted(["多扣", "扣款", "多扣款", "refund", "sue", "款", "é"])

    def found(text: str) -> set[str]:
        return {kws[index] for index in scanner_ids(kws, text)}

    assert found("多扣款") == {"多扣", "扣款", "多扣款", "款"}
    assert found("refund at start, at end: 款") == {"refund", "款"}
    assert found("an issue, sue!") == {"sue"} and found("issue") == set() and found("我sue") == {"sue"}
    assert found("café") == set() and found("é") == {"é"} and found("\u2e2fsue") == set()
    assert found("\u2e80sue") == {"sue"} and found("\U0001F600refund") == {"refund"}
    assert scanner_ids(["", "x"], "") == (0,) and scanner_ids([], "anything") == ()
    words = sorted(f"kw{number:04d}" for number in range(_native.KEYWORDS_MAX))
    assert scanner_ids(words, "kw4095 kw0063 kw0064 xkw0001") == (63, 64, 4095)
    with pytest.raises(OverflowError):
        _native.Scanner([*words, "kw9999"], None, fold)


# 5. The text cache: alternate texts, equal texts in other objects, stale FOLDED_TEXT

CACHE_DOC = {"groups": [
    {"name": "classification", "match": "all", "rules": [
        {"id": "refund", "when": {"field": "text", "contains_any": ["refund", "退款"]}, "then": {"tags": ["refund"]}},
        {"id": "both", "when": {"field": "text", "contains_all": ["refund", "now"]}, "then": {"tags": ["both"]}},
        {"id": "hello", "when": {"field": "text", "eq": "hello"}, "then": {"tags": ["hello"]}},
        {"id": "starts", "when": {"field": "text", "starts_with": "退款"}, "then": {"tags": ["starts"]}},
        {"id": "re", "when": {"field": "text", "matches": "^refund"}, "then": {"tags": ["re"]}},
        {"id": "body", "when": {"field": "body", "contains_any": ["refund", "now"]}, "then": {"tags": ["body"]}},
        {"id": "empty", "when": {"field": "text", "is_empty": True}, "then": {"tags": ["empty"]}},
        {"id": "vip", "when": {"field": "tags", "contains_any": ["vip"]}, "then": {"tags": ["vip"]}},
        {"id": "small", "when": {"field": "order_value", "lt": 5000}, "then": {"tags": ["small"]}},
    ]},
    {"name": "priority", "match": "first", "rules": [
        {"id": "p-hello", "when": {"field": "text", "in": ["hello", "refund now"]}, "then": {"priority": "P1"}},
        {"id": "p-not", "when": {"not": {"field": "text", "contains_any": ["refund"]}}, "then": {"priority": "P2"}},
        {"id": "p-ne", "when": {"field": "text", "ne": "refund now"}, "then": {"priority": "P3"}},
    ]},
]}


class Reentrant(dict):
    """Its get() first decides other snapshots on the rulesets deciding it: their text caches
    change while it is being decided."""

    def __init__(self, data: Mapping[str, Any], rulesets: tuple[Any, ...]) -> None:
        super().__init__(data)
        self.rulesets = rulesets

    def get(self, key: str, default: Any = None) -> Any:
        if key in ("text", "body"):
            for rs in self.rulesets:
                rs.decider(GROUPS)({"text": "退款 other"})
                rs.evaluate("classification", build_snapshot({"body": "hello"}))
        return super().get(key, default)


def cache_snapshots(rulesets: tuple[Any, ...]) -> list[Mapping[str, Any]]:
    return [
        build_snapshot({"body": "Refund now"}),
        build_snapshot({"body": "退款 please"}),
        {"text": "refund now".capitalize()},  # equal to the first text, another object, not precomputed
        {"text": "REFUND NOW"},
        {"text": "ＲＥＦＵＮＤ now"},  # not ASCII: folded by the Python callback
        {"text": "hello", FOLDED_TEXT: ("Refund now", "refund now")},  # stale: another text's
        {"text": "Refund now", FOLDED_TEXT: ("退款 please", "退款 please")},
        {"text": "退款 please", FOLDED_TEXT: ("hello", "hello")},
        {"text": Text("Refund now")},
        {"text": 42, "body": "refund"},
        {"body": "now"},
        {"text": "hello", "body": "Hello"},
        # traces: long texts cut, nested lists copied; numbers beyond 64 bits; unusual white space
        {"text": "x" * 130 + " refund", "tags": ("vip", ("y" * 130,), ["z" * 125]), "order_value": 2**70},
        {"text": "\x1c\u3000退款", "tags": [Text("VIP")], "order_value": -(2**70)},
        {"text": "\x1c\u3000 ", "order_value": 2**63 - 1},
        Reentrant(build_snapshot({"body": "Refund now"}), rulesets),
        Reentrant({"text": "ＲＥＦＵＮＤ now", "body": "now"}, rulesets),
    ]


def test_the_text_cache_never_answers_for_another_snapshot() -> None:
    python, fast = both(CACHE_DOC)
    snaps = cache_snapshots((python, fast))
    steps = [index for first in range(len(snaps)) for second in range(len(snaps)) for index in (first, second)]
    for step, index in enumerate(steps):  # every ordered pair of snapshots, one after the other
        compare(python, fast, CACHE_DOC, snaps[index], CALL_ORDERS[step % 3])
    assert fast.decide("priority", snaps[5]).rule_ids == ("p-hello",)  # stale FOLDED_TEXT: ignored
    assert [fast.decide("classification", snaps[i]).rule_ids for i in (6, 7, -1)] == [
        ("refund", "both", "re"), ("refund", "starts"), ("refund", "both", "re", "body")]
    assert fast.evaluate("classification", snaps[12]).trace[0]["leaves"][0]["actual"] == "x" * 120 + "…"


# 6. Beyond the C tables: the generated Python, with a warning


def test_too_many_keywords_fall_back_to_generated_python(caplog: pytest.LogCaptureFixture) -> None:
    words = [f"kw{number:04d}" for number in range(4200)]
    assert len(words) > _native.KEYWORDS_MAX
    rules = [{"id": f"c{part}", "when": {"field": "text", "contains_any": words[part * 1050:(part + 1) * 1050]},
              "then": {"tags": [f"t{part}"]}} for part in range(4)]
    doc = {"groups": [{"name": "classification", "match": "all", "rules": rules},
                      {"name": "priority", "match": "first", "rules": [
                          {"id": "p", "when": {"field": "text", "contains_any": words[4000:]}, "then": {"priority": "P1"}}]}]}
    with evaluator_env(None), caplog.at_level(logging.WARNING):
        rs = load(doc)
    assert rs.evaluator == "python"
    assert any(record.levelno == logging.WARNING and "native" in record.getMessage() for record in caplog.records)
    for text, want in (("see KW4100 now", ("c3",)), ("kw0000 and kw1050", ("c0", "c1")), ("xkw4100", ())):
        snap = build_snapshot({"body": text})
        assert rs.decide("classification", snap).rule_ids == want, text
        assert rs.evaluate("classification", snap).rule_ids == list(want), text
        assert rs.decider(GROUPS)(snap)[0].rule_ids == want, text
        check_group(rs, doc["groups"][1], snap, CALL_ORDERS[0])


# 7. Exceptions in Python callbacks propagate


class Boom(Exception):
    pass


def boom(*args: Any) -> Any:
    raise Boom(args)


class RaisingGet(dict):  # get() fails on one field
    def get(self, key: str, default: Any = None) -> Any:
        return boom(key) if key == "body" else super().get(key, default)


class RaisingMapping(UserDict):  # a Mapping, no dict: its __getitem__, under get(), fails on one field
    def __getitem__(self, key: str) -> Any:
        return boom(key) if key == "order_value" else super().__getitem__(key)


BadEq = type("BadEq", (str,), {"__eq__": boom, "__hash__": str.__hash__})  # an enum value that cannot compare
BadFold = type("BadFold", (str,), {"isascii": boom})  # a text compiler.fold fails on
BadNumber = type("BadNumber", (float,), {"__lt__": boom})


ERROR_DOC = {"groups": [{"name": name, "match": match, "rules": [
    {"id": f"{name[0]}-body", "when": {"field": "body", "contains_any": ["refund"]}, "then": then},
    {"id": f"{name[0]}-re", "when": {"field": "subject", "matches": "^re: ref"}, "then": then},
    {"id": f"{name[0]}-channel", "when": {"field": "channel", "eq": "email"}, "then": then},
    {"id": f"{name[0]}-value", "when": {"field": "order_value", "lt": 100}, "then": then},
]} for name, match, then in (("classification", "all", {"tags": ["x"]}), ("priority", "first", {"priority": "P1"}))]}

BAD_SNAPSHOTS = [RaisingGet({"body": "refund"}), RaisingMapping({"subject": "hi", "order_value": 5}),
                 {"subject": "no", "channel": BadEq("email")}, {"body": BadFold("退款 refund")},
                 {"subject": "Re: nope", "order_value": BadNumber(5.0)}]


@pytest.mark.parametrize("snap", BAD_SNAPSHOTS, ids=["dict-get", "mapping-getitem", "enum-eq", "fold", "number-lt"])
def test_exceptions_in_callbacks_propagate(snap: Mapping[str, Any]) -> None:
    python, fast = both(ERROR_DOC)
    for rs in (python, fast):
        for name in GROUPS:
            for call in (rs.decide, rs.evaluate):
                with pytest.raises(Boom):
                    call(name, snap)
            with pytest.raises(Boom):
                rs.decider((name,))(snap)
        with pytest.raises(Boom):
            rs.decider(GROUPS)(snap)
        with pytest.raises(AttributeError):  # not a Mapping at all
            rs.decide("priority", None)
    # nothing is left half-done: the next snapshots are decided as ever
    fine = [build_snapshot({"subject": "Re: refund", "body": "refund", "channel": "email", "order_value": 5}),
            {"subject": "re: ref", "order_value": 500.0}, {}]
    for number, good in enumerate(fine):
        compare(python, fast, ERROR_DOC, good, CALL_ORDERS[number])


# 8. No leaks


def test_no_reference_or_memory_leaks() -> None:
    count = 70  # a match-all group wider than 64 rules: its masks are big ints
    rules = [{"id": f"r{index}", "when": {"any": [{"field": "text", "contains_any": [f"k{index}", "退款"]},
                                                  {"field": "tags", "contains_any": [f"Ｔ{index % 5}"]},
                                                  {"field": "order_value", "gte": index * 10.5}]},
              "then": {"tags": [f"t{index}"]}} for index in range(count)]
    rules.append({"id": "starts", "when": {"field": "body", "starts_with": "ｐｌｅａｓｅ"}, "then": {"category": "x"}})
    doc = {"groups": [{"name": "classification", "match": "all", "rules": rules},
                      {"name": "priority", "match": "first", "rules": [
                          {"id": "p-re", "when": {"field": "text", "matches": "k6[0-9]"}, "then": {"priority": "P1"}},
                          {"id": "p-any", "then": {"priority": "P4"}}]}]}
    _, fast = both(doc)
    # two non-ASCII texts in turn, and list items: fold() is called on every decision
    snaps = [{"text": "退款 K65 " + "ab " * 10, "body": "Please 退款", "tags": ["ｔ1", "vip"], "order_value": float("333.5")},
             {"text": "Ｋ64 k3 ñ " + str(id(doc)), "tags": ("ｔ2",), "order_value": int("700000")},
             types.MappingProxyType(build_snapshot({"body": "k69 k0 k1 k2 退款", "order_value": float("-1.5")}))]
    decider = fast.decider(GROUPS)

    def run(rounds: int) -> None:  # whole rounds: every run leaves the same last text in the caches
        for snap in snaps * rounds:
            decider(snap)
            fast.decide("classification", snap)
            fast.decide("priority", snap)
            fast.evaluate("classification", snap)
            fast.evaluate("priority", snap)
            fast.stage_evaluator(GROUPS)(snap)
            try:
                fast.decide("classification", RaisingGet(snap))
            except Boom:
                pass

    run(10)  # warm: every outcome built, the mask caches filled
    watched = [value for snap in snaps for value in snap.values()] + list(snaps)
    watched += [fast.decide(name, snap) for name in GROUPS for snap in snaps]
    for snap in snaps:  # rules past the first 64 match: masks wider than a machine word
        assert any(int(rule[1:]) >= 64 for rule in fast.decide("classification", snap).rule_ids if rule[1:].isdigit())
    gc.collect()
    before = [sys.getrefcount(value) for value in watched]
    tracemalloc.start()
    try:
        run(100)
        gc.collect()
        start = tracemalloc.get_traced_memory()[0]
        run(-(-20_000 // (6 * len(snaps))))  # 20,000 calls deciding (6 per snapshot and round)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    after = [sys.getrefcount(value) for value in watched]
    assert after == before, [(value, b, a) for value, b, a in zip(watched, before, after) if a != b]
    assert grown < 200_000, grown


# 8. Interned and plain keys

def test_interned_and_plain_keys_decide_alike() -> None:
    """build_snapshot interns its keys and short values, and the native programs look fields up
    by interned names and compare enum values with interned constants, so most comparisons are
    by address. A snapshot whose keys and values are equal but other objects (built by other
    code) must decide the same: every example ticket of rules/tests, through every stage,
    against the generated Python."""
    import yaml

    from engine.ruleset.stages import STAGES, apply_to_snapshot

    with evaluator_env("0"):
        python = load_ruleset(Path("rules"))
    fast = load_ruleset(Path("rules"))
    tickets = [case["ticket"] for path in sorted(Path("rules/tests").glob("*.yaml"))
               for case in yaml.safe_load(path.read_text("utf-8"))["cases"]]
    assert len(tickets) > 50
    for ticket in tickets:
        snapshot = build_snapshot(ticket)
        assert all(sys.intern(key) is key for key in snapshot)
        # equal keys and text values, other objects (build_snapshot interns both)
        plain = {"".join(list(key)): "".join(list(value)) if type(value) is str else value
                 for key, value in snapshot.items()}
        assert all(a is not b and a == b for a, b in zip(snapshot, plain))
        for stage, groups in STAGES:
            groups = tuple(group for group in groups if fast.has_group(group))
            want = ([(o.rule_ids, dict(o.actions)) for o in python.decider(groups)(snapshot)],
                    [(r.rule_ids, r.actions, r.trace) for r in (python.evaluate(g, snapshot) for g in groups)])
            for snap in (snapshot, plain):
                got = ([(o.rule_ids, dict(o.actions)) for o in fast.decider(groups)(snap)],
                       [(r.rule_ids, r.actions, r.trace) for r in (fast.evaluate(g, snap) for g in groups)])
                assert got == want, (stage, ticket)
            for result in fast.decider(groups)(snapshot):
                apply_to_snapshot(snapshot, result)
                apply_to_snapshot(plain, result)


def test_objects_never_initialised_raise_instead_of_crashing() -> None:
    """Program and Scanner made with __new__ alone (or left by a failed __init__) hold no tables:
    using them must raise, not read through empty pointers."""
    program = _native.Program.__new__(_native.Program)
    with pytest.raises(TypeError, match="not initialised"):
        program.index({})
    with pytest.raises(TypeError, match="not initialised"):
        program.evaluate({})
    with pytest.raises(TypeError, match="not initialised"):
        program.results({})
    with pytest.raises(TypeError):
        program({})
    with pytest.raises(TypeError, match="not initialised"):
        _native.Scanner.__new__(_native.Scanner).find("refund")


# 9. Long texts in traces


@pytest.mark.parametrize("text", [
    "refund " + "a" * 200,                      # ASCII
    "refund " + "é" * 200,                      # Latin-1
    "退款" + "快" * 200,                          # two bytes a character
    "退款 🙂" + "快" * 200,                       # four bytes, an astral character in what is kept
    "退款" + "快" * 130 + "🙂",                   # four bytes, the astral character only in what is cut
    "refund " + "a" * 113,                      # 120 exactly: kept whole
])
def test_long_texts_are_cut_in_traces_as_python_cuts_them(text: str) -> None:
    """Traces keep 120 characters of a text and an ellipsis. The native cut builds the string
    itself, in the narrowest kind that holds it (as every Python str must be, or it would compare
    unequal to an equal string); every leaf on the text shows it."""
    doc = {"groups": [{"name": "classification", "match": "all", "rules": [
        {"id": "a", "when": {"all": [{"field": "text", "contains_any": ["refund", "退款"]},
                                     {"field": "text", "matches": "."}]}, "then": {"tags": ["x"]}},
        {"id": "b", "when": {"field": "body", "is_set": True}, "then": {"tags": ["y"]}}]}]}
    python, fast = both(doc)
    snap = {"text": text, "body": text}
    want, got = python.evaluate("classification", snap), fast.evaluate("classification", snap)
    same_result(want, got, text)
    shown = [leaf["actual"] for entry in got.trace for leaf in entry["leaves"]]
    expected = text if len(text) <= 120 else text[:120] + "…"
    assert shown == [expected] * 3
    assert [len(value) for value in shown] == [min(len(text), 121)] * 3
    assert {hash(value) for value in shown} == {hash(expected)}


def test_the_result_type_must_keep_its_fields_in_slots() -> None:
    """The native evaluator fills a result's slots directly, so it takes only a class that has
    them (GroupResult does) and refuses any other with a clear error when the program is built."""
    ruleset = load_ruleset(ROOT / "rules")

    class Plain:
        pass

    class Borrowed:  # another class's slots, which would point into GroupResult's layout
        group, rule_ids, actions, trace = GroupResult.group, GroupResult.rule_ids, GroupResult.actions, GroupResult.trace

    spec = ruleset._native_spec(ruleset._plans["priority"])
    for wrong in (Plain, Borrowed):
        with pytest.raises(ValueError, match="__slots__"):
            ruleset._natives.program([spec], wrong)
    program = ruleset._natives.program([spec], GroupResult)
    assert program.results(build_snapshot({"subject": "退款"}))[0] == ruleset.evaluate("priority", build_snapshot({"subject": "退款"}))
