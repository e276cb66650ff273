"""Compiling validated rules into generated Python functions and closures, and evaluating them.

This module owns the runtime side of the rules language: `Ruleset` (what workers hold and
evaluate), the compiled groups and rules, `GroupResult`, the merge of actions in `all` groups and
the trace. It trusts its input: everything reaching `Ruleset` went through the loader's checks
(`load_ruleset` or `Ruleset.from_dict`), so compiling cannot fail on user mistakes.

Compiled forms of every group:
- the native evaluator (native.py builds its tables, _native.c runs them) picks the rules for
  `decide` and `decider`, and builds the results of `evaluate` and `stage_evaluator` with their
  compact trace, where the C extension is built (it is by `pip install` on a machine with a C
  compiler);
- otherwise `codegen.generate` writes the group's conditions as one Python function (plain
  if-statements, each field read once) that returns which rules matched, and `decide` (no
  trace) and `evaluate` (compact trace) use it; see codegen.py for why and how it stays safe.
  With the native evaluator it is generated only when `source()` asks for it;
- every condition also compiles to closures: `test(snapshot) -> bool` and `record(snapshot, out,
  full) -> bool`, which appends one trace entry per leaf it evaluates. Explain mode walks them,
  and the compact trace of a matched rule is built from them; they are the reference the
  generated code and the native evaluator are tested against (tests/test_ruleset_codegen.py,
  tests/test_ruleset_native.py).

Why it is shaped the way it is (bench/rules_bench.py measures it against hand-written Python;
tests/test_ruleset_perf_semantics.py pins the behaviour of these paths):
- Text operators compare folded text (`fold`). Each text-like field has one `_TextField` per
  ruleset that keeps the last value it saw together with its folded form and the keywords found
  in it. Every test on that field shares it, in one group and across the groups evaluated on the
  same snapshot, so a ticket's text is folded and searched once rather than once per rule.
  build_snapshot already folds `text` (fields.FOLDED_TEXT), sharing the costly NFKC pass with
  sentiment scoring; a copy that does not belong to the snapshot's text is ignored.
- All the keywords that contains_any / contains_all tests look for in one field are found by one
  regular-expression pass over the text (`_KeywordScanner`); each test is then a set operation.
- Results: `decide` returns a shared, read-only `GroupOutcome` per rule (per combination of
  matched rules in an `all` group), so deciding allocates nothing. `evaluate` returns fresh
  objects the caller owns: GroupResult keeps its frozen fields in slots (the native evaluator
  allocates it and fills them without a call), actions are copied with dict() and only their
  lists copied again, and trace entries are built for the matched rules only, without
  re-running their tests where the condition is one test or an `all` of tests.
- Stages: the worker evaluates a stage's groups together on one snapshot (`stage_evaluator`),
  one native call for all of them, so each field is read and each text scanned once per stage
  rather than per group, and the per-call overhead is paid once.

Deliberately not done: caching decisions across snapshots other than by the text value itself
(snapshots are mutable dicts, and no two tickets share a text).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from . import codegen, native, sentiment
from .fields import A_LIST, BOOL, ENUM, FIELDS, FOLDED_TEXT, GROUP_ACTIONS, INT, LIST, NUMBER, STRING, TEXT

_log = logging.getLogger(__name__)

_TRACE_TEXT_LIMIT = 120  # traces go into workflow history: keep long texts from bloating it


def fold(value: str) -> str:
    """The form text operators compare: NFKC turns full-width letters and digits (common in
    Chinese input methods) into ASCII, casefold makes Latin case-insensitive; Chinese passes
    through unchanged; a typographic apostrophe (’, phones insert it) becomes a plain one."""
    if value.isascii():
        # NFKC leaves ASCII alone and casefold equals lower on it: same result, much cheaper.
        return value.lower()
    # sentiment.normalise is NFKC plus the apostrophe; casefold never makes or removes a ’, so
    # the order of the two steps does not matter. build_snapshot shares that NFKC pass (the
    # costly step) between the sentiment score and the folded text (fields.FOLDED_TEXT).
    return sentiment.normalise(value).casefold()


Snapshot = Mapping[str, Any]
Test = Callable[[Snapshot], bool]
Record = Callable[[Snapshot, list, bool], bool]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# The answer of `_is_number` for the classes snapshots hold, found with one dict lookup; any
# other class (an int subclass, say) falls back to `_is_number` itself.
_NUMBER_CLASSES: dict[type, bool] = {int: True, float: True, bool: False, str: False, type(None): False,
                                     list: False, dict: False}


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, dict)):
        return not value
    return False


def _trace_value(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= _TRACE_TEXT_LIMIT else value[:_TRACE_TEXT_LIMIT] + "…"
    if isinstance(value, (list, tuple)):
        return [_trace_value(item) for item in value]
    return value


_SCALARS = frozenset({int, float, bool, type(None)})  # trace them as they are


def _leaf_entry(name: str, op: str, expected: Any) -> Callable[[Snapshot], dict[str, Any]]:
    """The trace entry of one leaf, without its result: {field, op, expected, actual}."""
    # Shared by every trace of this leaf (traces are read, not edited); a list is copied once so
    # the trace never aliases the ruleset's own data. Values are JSON scalars or lists of them.
    shown = list(expected) if isinstance(expected, list) else expected

    def entry(snap: Snapshot) -> dict[str, Any]:
        actual = snap.get(name)
        cls = actual.__class__
        if cls is str:
            if len(actual) > _TRACE_TEXT_LIMIT:
                actual = actual[:_TRACE_TEXT_LIMIT] + "…"
        elif cls not in _SCALARS:
            actual = _trace_value(actual)  # lists are copied, never shared with the snapshot
        return {"field": name, "op": op, "expected": shown, "actual": actual}

    return entry


# ---------------------------------------------------------------------------------------------
# Keywords


def _is_word_char(char: str) -> bool:
    """A letter or digit of a script that separates words with spaces (Latin, Cyrillic, ...).
    CJK characters (U+2E80 and up) are not: a keyword right after 我 still starts a word."""
    return char.isalnum() and char < "\u2e80"


def _finder(needle: str) -> Callable[[str], bool]:
    """`needle in text`, except that a keyword starting with a Latin letter or digit must start
    a word: "refund" finds "refunds" and "refunded" but "sue" does not find "issue". Chinese
    keywords match anywhere, since Chinese text has no spaces between words.

    The reference definition of keyword matching; `_KeywordScanner` finds the same keywords for
    a whole set at once."""
    if not needle or not _is_word_char(needle[0]):
        return lambda text: needle in text

    def find(text: str) -> bool:
        start = text.find(needle)
        while start != -1:
            if start == 0 or not _is_word_char(text[start - 1]):
                return True
            start = text.find(needle, start + 1)
        return False

    return find


def _trie_pattern(words: list[str]) -> str:
    """One regex alternation matching any of `words`, written as a trie: "ab(?:c|d)" instead of
    "abc|abd". At each position of a text the regex engine then follows one branch per
    character instead of trying every keyword, and it returns the LONGEST word starting there
    (the shorter ones that start there are its prefixes)."""
    trie: dict[str, dict] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # end of a word

    escaped: dict[str, str] = {}  # re.escape per character is slow on a few thousand nodes

    def emit(node: dict[str, dict]) -> str:
        branches = []
        for char in sorted(key for key in node if key):
            if char not in escaped:
                escaped[char] = re.escape(char)
            branches.append(escaped[char] + emit(node[char]))
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" in node:  # a word ends here: the longer ones are optional, tried first (greedy)
            body = f"(?:{body})?"
        return body

    return emit(trie)


class _KeywordScanner:
    """Finds, in one pass over a folded text, every keyword of a set that `_finder` would find.

    A plain `any(keyword in text ...)` per test costs one scan of the text per keyword; a ruleset
    has a hundred keywords or more over the same text. Here one regex holds them all (a trie, see
    `_trie_pattern`). Where the regex matches it returns the longest keyword starting at that
    position; the other keywords starting there are its prefixes (`_prefixes`). The search then
    resumes one character later, so overlapping keywords (多扣 and 扣款 in 多扣款) are all found.

    The word-start rule needs the character before a keyword:
    - any text: the regex finds keywords anywhere, and a match of a keyword that must start a word
      is kept only if the character before it is not a word character. All keywords found at one
      position share their first character, hence the same rule. (A lookbehind in the regex would
      do the same, but compiling the Unicode class it needs takes milliseconds per keyword.)
    - ASCII text (English tickets): the regex matches the non-word character before the keyword,
      `[^A-Za-z0-9](refund|...)`, on the text with a newline in front. This lets the regex engine
      skip whole words at once: only spaces and punctuation are tried, not every letter. Only
      ASCII keywords can occur in ASCII text, so that pattern holds only those.
    """

    def __init__(self, keywords: set[str]):
        self.always = frozenset(word for word in keywords if not word)  # "" is in every text
        words = sorted(word for word in keywords if word)
        known = set(words)
        self._prefixes = {word: tuple(word[:end] for end in range(1, len(word) + 1) if word[:end] in known)
                          for word in words}
        self._starting = frozenset(word for word in words if _is_word_char(word[0]))
        self._any = re.compile(_trie_pattern(words)) if words else None
        ascii_words = [word for word in words if word.isascii()]
        starting = [word for word in ascii_words if word in self._starting]
        anywhere = [word for word in ascii_words if word not in self._starting]
        self._ascii_starting = re.compile(f"[^A-Za-z0-9]({_trie_pattern(starting)})") if starting else None
        self._ascii_anywhere = re.compile(_trie_pattern(anywhere)) if anywhere else None

    def find(self, text: str) -> frozenset[str]:
        found = set(self.always)
        prefixes = self._prefixes
        if text.isascii():
            if self._ascii_starting is not None:
                padded = "\n" + text  # a non-word character before the text: a keyword may start it
                search = self._ascii_starting.search
                match = search(padded)
                while match is not None:
                    found.update(prefixes[match.group(1)])
                    match = search(padded, match.start(1))
            if self._ascii_anywhere is not None:
                search = self._ascii_anywhere.search
                match = search(text)
                while match is not None:
                    found.update(prefixes[match.group()])
                    match = search(text, match.start() + 1)
        elif self._any is not None:
            starting = self._starting
            search = self._any.search
            match = search(text)
            while match is not None:
                word, start = match.group(), match.start()
                if not (start and word in starting and _is_word_char(text[start - 1])):
                    found.update(prefixes[word])
                match = search(text, start + 1)
        return frozenset(found)


_NO_KEYWORDS: frozenset[str] = frozenset()
_UNSET = object()  # equal to nothing a snapshot can hold


class _TextField:
    """A text-like field (text, string) as the tests of one ruleset read it.

    `last` is (value, folded value, keywords found in it, lists hit) for the last string value
    seen; "lists hit" is a bitmask with one bit per keyword list of a contains_any test
    (`list_bit`), so generated code tests a list with one `&`. It is replaced as one tuple, never
    updated in place, so threads sharing a ruleset at worst fold the same text twice. Tests
    compare the snapshot's value with last[0] by identity first: the groups evaluated on one
    snapshot see the very same string object."""

    __slots__ = ("keywords", "last", "lists", "precomputed", "scanner", "word_bits")

    def __init__(self, name: str) -> None:
        self.keywords: set[str] = set()  # filled while compiling, then turned into `scanner`
        self.lists: dict[frozenset[str], int] = {}  # keyword list -> its bit
        self.word_bits: dict[str, int] = {}  # keyword -> bits of the lists holding it
        self.scanner: _KeywordScanner | None = None
        self.last: tuple[Any, Any, frozenset[str], int] = (_UNSET, "", _NO_KEYWORDS, 0)
        # build_snapshot folds `text` already (fields.FOLDED_TEXT); other fields are folded here
        self.precomputed = FOLDED_TEXT if name == "text" else None

    def list_bit(self, needles: frozenset[str]) -> int:
        """The bit that stands for this keyword list in last[3]."""
        self.keywords.update(needles)
        return self.lists.setdefault(needles, 1 << len(self.lists))

    def finish(self, scanner: bool = True) -> None:
        """Done adding keywords and lists. `scanner=False` leaves building the keyword scanner
        to the first text loaded: with the native evaluator only explain mode needs it, and its
        regexes are most of a ruleset's compile time."""
        if self.keywords and scanner:
            self.scanner = _KeywordScanner(self.keywords)
        for needles, bit in self.lists.items():
            for word in needles:
                self.word_bits[word] = self.word_bits.get(word, 0) | bit

    def load(self, value: str, snap: Snapshot) -> tuple[str, str, frozenset[str], int]:
        ready = snap.get(self.precomputed) if self.precomputed is not None else None
        if isinstance(ready, tuple) and len(ready) == 2 and ready[0] == value:
            folded = ready[1]  # folded by build_snapshot, and still belonging to this value
        else:
            folded = fold(value)
        scanner = self.scanner
        if scanner is None and self.keywords:  # finish(scanner=False): built on first use
            scanner = self.scanner = _KeywordScanner(self.keywords)
        found = scanner.find(folded) if scanner is not None else _NO_KEYWORDS
        hit = 0
        word_bits = self.word_bits
        for word in found:
            hit |= word_bits.get(word, 0)
        last = (value, folded, found, hit)
        self.last = last
        return last


# What a generated test sees for a value that is not text: no keywords, no list hit, and a folded
# form equal to no string (eq/in fail); tests that would pass on "not equal" check for it.
_NOT_TEXT: tuple[Any, Any, frozenset[str], int] = (_UNSET, object(), _NO_KEYWORDS, 0)


# ---------------------------------------------------------------------------------------------
# Leaves


def _text_test(name: str, view: _TextField, op: str, expected: Any) -> Test:
    """Tests on text and string fields. The first lines of each closure are the same on purpose:
    they find the folded value (and keywords) of the field, reusing `view.last` when the snapshot
    holds the same string; a non-string value fails every test."""
    if op in ("contains_any", "contains_all"):
        needles = frozenset(fold(item) for item in expected)
        view.keywords.update(needles)
        if op == "contains_any":
            def contains_any(snap: Snapshot) -> bool:
                value = snap.get(name)
                last = view.last
                if value is not last[0] and value != last[0]:
                    if not isinstance(value, str):
                        return False
                    last = view.load(value, snap)
                return not needles.isdisjoint(last[2])
            return contains_any

        def contains_all(snap: Snapshot) -> bool:
            value = snap.get(name)
            last = view.last
            if value is not last[0] and value != last[0]:
                if not isinstance(value, str):
                    return False
                last = view.load(value, snap)
            return needles <= last[2]
        return contains_all

    if op in ("eq", "in"):
        targets = frozenset([fold(expected)] if op == "eq" else [fold(item) for item in expected])

        def member(snap: Snapshot) -> bool:
            value = snap.get(name)
            last = view.last
            if value is not last[0] and value != last[0]:
                if not isinstance(value, str):
                    return False
                last = view.load(value, snap)
            return last[1] in targets
        return member

    # Rarer operators: one shared way to get the folded value, then the comparison.
    if op in ("ne", "not_in"):
        excluded = frozenset([fold(expected)] if op == "ne" else [fold(item) for item in expected])
        check: Callable[[str], bool] = lambda folded: folded not in excluded
    elif op == "starts_with":
        prefix = fold(expected)
        check = lambda folded: folded.lstrip().startswith(prefix)
    elif op == "matches":
        # Matched against the folded text so `matches` agrees with the other text operators on
        # full-width input; IGNORECASE covers upper-case letters written in the pattern.
        search = re.compile(expected, re.IGNORECASE).search
        check = lambda folded: search(folded) is not None
    else:
        raise ValueError(f"operator {op!r} on text field {name!r} reached the compiler unvalidated")

    def test(snap: Snapshot) -> bool:
        value = snap.get(name)
        last = view.last
        if value is not last[0] and value != last[0]:
            if not isinstance(value, str):
                return False
            last = view.load(value, snap)
        return check(last[1])
    return test


def _number_test(name: str, op: str, expected: Any) -> Test:
    """Tests on number fields: a missing value, text or a boolean fails every comparison. One
    closure per operator, so a test is a single call (these are the most frequent tests)."""

    def numeric(value: Any) -> bool:  # _is_number, with one dict lookup for the usual classes
        known = _NUMBER_CLASSES.get(value.__class__)
        return _is_number(value) if known is None else known

    if op == "lt":
        return lambda snap: numeric(value := snap.get(name)) and value < expected
    if op == "lte":
        return lambda snap: numeric(value := snap.get(name)) and value <= expected
    if op == "gt":
        return lambda snap: numeric(value := snap.get(name)) and value > expected
    if op == "gte":
        return lambda snap: numeric(value := snap.get(name)) and value >= expected
    if op == "eq":
        return lambda snap: numeric(value := snap.get(name)) and value == expected
    if op == "ne":
        return lambda snap: numeric(value := snap.get(name)) and value != expected
    if op == "between":
        low, high = expected
        return lambda snap: numeric(value := snap.get(name)) and low <= value <= high
    numbers = frozenset(expected)
    if op == "in":
        return lambda snap: numeric(value := snap.get(name)) and value in numbers
    if op == "not_in":
        return lambda snap: numeric(value := snap.get(name)) and value not in numbers
    raise ValueError(f"operator {op!r} on number field {name!r} reached the compiler unvalidated")


def _leaf_test(name: str, ftype: str, op: str, expected: Any, views: dict[str, _TextField]) -> Test:
    """The predicate for one `{field, op: expected}` test. A missing field fails every
    comparison, is not set, and is empty; a value of the wrong type fails too."""
    if op == "is_set":
        want = bool(expected)
        return lambda snap: (snap.get(name) is not None) is want
    if op == "is_empty":
        want = bool(expected)
        return lambda snap: _is_empty(snap.get(name)) is want

    if ftype == LIST:
        needles = frozenset(fold(item) for item in expected)

        def folded_items(value: Any) -> set[str]:
            return {fold(item) for item in value if isinstance(item, str)}

        if op == "contains_any":
            return lambda snap: (isinstance(value := snap.get(name), (list, tuple))
                                 and not needles.isdisjoint(folded_items(value)))
        if op == "contains_all":
            return lambda snap: isinstance(value := snap.get(name), (list, tuple)) and needles <= folded_items(value)

    if ftype in (TEXT, STRING):
        view = views.setdefault(name, _TextField(name))
        return _text_test(name, view, op, expected)

    if ftype == BOOL:
        # True and False are singletons and bool cannot be subclassed: `is` is the exact test.
        if op == "eq":
            return lambda snap: snap.get(name) is expected
        if op == "ne":
            other = not expected
            return lambda snap: snap.get(name) is other

    if ftype == ENUM:
        # The loader rejected values outside the enum, so `expected` is text: only a string can
        # be equal to it, no type check needed for eq.
        if op == "eq":
            return lambda snap: snap.get(name) == expected
        if op == "ne":
            return lambda snap: isinstance(value := snap.get(name), str) and value != expected
        members = frozenset(expected)
        if op == "in":
            return lambda snap: isinstance(value := snap.get(name), str) and value in members
        if op == "not_in":
            return lambda snap: isinstance(value := snap.get(name), str) and value not in members

    if ftype in (NUMBER, INT):
        return _number_test(name, op, expected)

    raise ValueError(f"operator {op!r} on {ftype} field {name!r} reached the compiler unvalidated")


# ---------------------------------------------------------------------------------------------
# Conditions


def compile_condition(cond: Mapping[str, Any], views: dict[str, _TextField] | None = None) -> tuple[Test, Record]:
    """Compile a validated condition into its (test, record) closures. `views` collects the
    shared text fields of one ruleset; a ruleset builds their keyword scanners afterwards
    (`_finish_views`), so compile every condition of a ruleset with the same dict."""
    if views is None:  # a lone condition: finish its own views
        views = {}
        compiled = compile_condition(cond, views)
        _finish_views(views)
        return compiled
    for combinator in ("all", "any"):
        if combinator in cond:
            parts = [compile_condition(child, views) for child in cond[combinator]]
            tests = tuple(test for test, _ in parts)
            records = tuple(record for _, record in parts)
            return _all(tests, records) if combinator == "all" else _any(tests, records)
    if "not" in cond:
        inner_test, inner_record = compile_condition(cond["not"], views)
        return (lambda snap: not inner_test(snap)), (lambda snap, out, full: not inner_record(snap, out, full))

    name = cond["field"]
    op = next(key for key in cond if key != "field")
    expected = cond[op]
    test = _leaf_test(name, FIELDS[name].type, op, expected, views)
    entry = _leaf_entry(name, op, expected)

    def record(snap: Snapshot, out: list, full: bool) -> bool:
        result = test(snap)
        leaf = entry(snap)
        if full:  # the compact trace of a matched rule leaves the result out: it is implied
            leaf["result"] = result
        out.append(leaf)
        return result

    return test, record


def _matched_entry(rule_id: str, cond: Mapping[str, Any] | None,
                   record: Record) -> Callable[[Snapshot], dict[str, Any]]:
    """The compact-trace entry of a rule that matched: {rule_id, matched: True, leaves}, built in
    one call. When the condition is one test or an `all` of tests, every test was true and is
    recorded, so the leaves are built without running the tests again; `any` and `not` need
    `record` to find the tests that decided."""
    if cond is None:
        return lambda snap: {"rule_id": rule_id, "matched": True, "leaves": []}
    entries = _implied_entries(cond)
    if entries is None:
        def decided(snap: Snapshot) -> dict[str, Any]:
            leaves: list[dict[str, Any]] = []
            record(snap, leaves, False)
            return {"rule_id": rule_id, "matched": True, "leaves": leaves}
        return decided
    if len(entries) == 1:
        only = entries[0]
        return lambda snap: {"rule_id": rule_id, "matched": True, "leaves": [only(snap)]}
    return lambda snap: {"rule_id": rule_id, "matched": True, "leaves": [entry(snap) for entry in entries]}


def _implied_entries(cond: Mapping[str, Any]) -> list[Callable[[Snapshot], dict[str, Any]]] | None:
    if "all" in cond:
        entries = []
        for child in cond["all"]:
            found = _implied_entries(child)
            if found is None:
                return None
            entries.extend(found)
        return entries
    if "any" in cond or "not" in cond:
        return None
    op = next(key for key in cond if key != "field")
    return [_leaf_entry(cond["field"], op, cond[op])]


def _finish_views(views: dict[str, _TextField], scanners: bool = True) -> None:
    for view in views.values():
        view.finish(scanners)


def _load_text(view: _TextField, value: Any, snap: Snapshot) -> tuple[Any, Any, frozenset[str], int]:
    return view.load(value, snap) if isinstance(value, str) else _NOT_TEXT


def _folded_items(value: Any) -> frozenset[str] | None:
    """A list field's string items, folded; None when the value is not a list."""
    if not isinstance(value, (list, tuple)):
        return None
    return frozenset(fold(item) for item in value if isinstance(item, str))


# What generated group functions call (codegen.generate); the same checks as the closures above.
_CODEGEN_HELPERS = {"NUMBER_CLASSES": _NUMBER_CLASSES, "is_number": _is_number, "is_empty": _is_empty,
                    "folded_items": _folded_items, "load_text": _load_text,
                    "NOT_TEXT": _NOT_TEXT}


def _all(tests: tuple[Test, ...], records: tuple[Record, ...]) -> tuple[Test, Record]:
    if len(tests) == 2:  # the common case, without a loop
        first, second = tests
        test: Test = lambda snap: first(snap) and second(snap)
    else:
        def test(snap: Snapshot) -> bool:
            for part in tests:
                if not part(snap):
                    return False
            return True

    def record(snap: Snapshot, out: list, full: bool) -> bool:
        result = True
        for part in records:
            if not part(snap, out, full):
                if not full:  # explain mode shows every leaf, not just the ones needed to decide
                    return False
                result = False
        return result

    return test, record


def _any(tests: tuple[Test, ...], records: tuple[Record, ...]) -> tuple[Test, Record]:
    if len(tests) == 2:
        first, second = tests
        test: Test = lambda snap: first(snap) or second(snap)
    else:
        def test(snap: Snapshot) -> bool:
            for part in tests:
                if part(snap):
                    return True
            return False

    def record(snap: Snapshot, out: list, full: bool) -> bool:
        result = False
        for part in records:
            if part(snap, out, full):
                if not full:
                    return True
                result = True
        return result

    return test, record


def _always(snap: Snapshot) -> bool:
    return True


def _always_record(snap: Snapshot, out: list, full: bool) -> bool:
    return True


# ---------------------------------------------------------------------------------------------
# Rules, groups, results


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


@dataclass(frozen=True, init=False, slots=True)
class GroupResult:
    """What one group decided: matched rule ids in order, merged actions, and the trace."""

    group: str
    rule_ids: list[str]
    actions: dict[str, Any]
    trace: list[dict[str, Any]]

    def __init__(self, group: str, rule_ids: list[str], actions: dict[str, Any], trace: list[dict[str, Any]]):
        # Frozen, so the fields are written through their slots' descriptors, as the generated
        # __init__ would; the native evaluator fills the same slots directly (_native.c).
        _SET_GROUP(self, group)
        _SET_RULE_IDS(self, rule_ids)
        _SET_ACTIONS(self, actions)
        _SET_TRACE(self, trace)


# the slots' own setters: object.__setattr__ would look each name up first
_SET_GROUP, _SET_RULE_IDS, _SET_ACTIONS, _SET_TRACE = (
    getattr(GroupResult, name).__set__ for name in ("group", "rule_ids", "actions", "trace"))


def _copy_actions(then: Mapping[str, Any]) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, list) else value for key, value in then.items()}


def _merge(into: dict[str, Any], then: Mapping[str, Any], list_keys: frozenset[str]) -> None:
    """`all` groups: a later rule overwrites scalars; lists are unioned, first occurrence first."""
    for key, value in then.items():
        if key in list_keys and key in into:
            current = into[key]  # a list this result owns: extending it in place is safe
            for item in value:
                if item not in current:
                    current.append(item)
        else:
            into[key] = list(value) if isinstance(value, list) else value


class GroupOutcome:
    """What one group decided, without a trace: the matched rule ids and the merged actions.

    Returned by `Ruleset.decide`, the path for callers that need no trace (backtests, fixtures,
    benchmarks). Outcomes are shared between calls, so they are read-only all the way down: ids
    are a tuple, `actions` a read-only mapping, and list-valued actions are tuples."""

    __slots__ = ("actions", "group", "rule_ids")

    def __init__(self, group: str, rule_ids: tuple[str, ...], actions: Mapping[str, Any]):
        frozen = {key: tuple(value) if isinstance(value, list) else value for key, value in actions.items()}
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "rule_ids", rule_ids)
        object.__setattr__(self, "actions", MappingProxyType(frozen))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"GroupOutcome is read-only (cannot set {name})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"GroupOutcome is read-only (cannot delete {name})")

    def __repr__(self) -> str:
        return f"GroupOutcome({self.group!r}, {self.rule_ids!r}, {dict(self.actions)!r})"


_MASK_CACHE_LIMIT = 4096  # distinct rule combinations remembered per `all` group


def _undecided(snapshot: Snapshot) -> int:
    raise RuntimeError("a group's plan was used before the ruleset set its decide function")


class _Plan:
    """What evaluation walks for one group: its `decide` function (the native program's index,
    or the function codegen.py generates), the native program's `evaluate` when there is one,
    per rule the rule, the action keys holding lists (a result gets its own copy of those) and
    the builder of its compact-trace entry; and the shared outcomes for `Ruleset.decide`."""

    __slots__ = ("by_mask", "decide", "first", "list_keys", "name", "native_evaluate", "outcomes", "rules", "source")

    def __init__(self, group: CompiledGroup, list_keys: frozenset[str]):
        self.name = group.name
        self.first = group.match == "first"
        # set by Ruleset: the native program's index(), or the generated function and its source
        self.decide: codegen.Decide = _undecided
        self.source: str | None = None
        self.native_evaluate: Callable[[Snapshot], GroupResult] | None = None  # with the native evaluator
        self.rules = tuple((rule, tuple(key for key, value in rule.then.items() if isinstance(value, list)),
                            _matched_entry(rule.id, rule.when, rule.record))
                           for rule in group.rules)
        self.list_keys = list_keys
        # first: one outcome per rule, then "nothing matched" last so that decide's -1 finds it
        self.outcomes = tuple(GroupOutcome(self.name, (rule.id,), rule.then) for rule in group.rules) \
            + (GroupOutcome(self.name, (), {}),)
        # all: mask of matched rules -> (their indices, merged actions, outcome)
        self.by_mask: dict[int, tuple[tuple[int, ...], dict[str, Any], GroupOutcome]] = {}

    def combination(self, mask: int) -> tuple[tuple[int, ...], dict[str, Any], GroupOutcome]:
        """The rules a mask of an `all` group stands for, their merged actions and outcome."""
        found = self.by_mask.get(mask)
        if found is not None:
            return found
        indices = tuple(i for i in range(len(self.rules)) if mask >> i & 1)
        actions: dict[str, Any] = {}
        for i in indices:
            _merge(actions, self.rules[i][0].then, self.list_keys)
        found = (indices, actions, GroupOutcome(self.name, tuple(self.rules[i][0].id for i in indices), actions))
        if len(self.by_mask) < _MASK_CACHE_LIMIT:
            self.by_mask[mask] = found
        return found


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class Ruleset:
    """A validated, compiled ruleset. Immutable in use; build it with `load_ruleset` or
    `Ruleset.from_dict`, both of which validate first."""

    def __init__(self, normalised: Mapping[str, Any]):
        # A private copy, through JSON: the data is JSON by construction (the loader checked
        # it), and this is several times faster than copy.deepcopy on a large ruleset.
        self._data = json.loads(json.dumps(dict(normalised), ensure_ascii=False))
        self.version: str = hashlib.sha256(canonical_json(self._data).encode("utf-8")).hexdigest()[:12]
        self.sla_policies: dict[str, dict[str, Any]] = copy.deepcopy(self._data.get("sla_policies", {}))
        # {kind: {variant: {subject?, body}}}, read-only views (engine.templates.render reads them)
        self._templates = MappingProxyType({
            kind: MappingProxyType({key: MappingProxyType(dict(spec)) for key, spec in variants.items()})
            for kind, variants in copy.deepcopy(self._data.get("templates", {})).items()})
        self.groups: dict[str, CompiledGroup] = {}
        self._list_actions: dict[str, frozenset[str]] = {}
        self._plans: dict[str, _Plan] = {}
        views: dict[str, _TextField] = {}  # one per text field, shared by all groups
        for group in self._data.get("groups", []):
            rules = []
            for rule in group["rules"]:
                when = rule.get("when")
                test, record = compile_condition(when, views) if when is not None else (_always, _always_record)
                rules.append(CompiledRule(rule["id"], rule.get("description", ""), when, rule["then"], test, record))
            compiled = CompiledGroup(group["name"], group["match"], group.get("description", ""), tuple(rules))
            self.groups[group["name"]] = compiled
            self._list_actions[group["name"]] = frozenset(
                key for key, action in GROUP_ACTIONS[group["name"]].items() if action.kind == A_LIST)
            self._plans[group["name"]] = _Plan(compiled, self._list_actions[group["name"]])
        self._views = views
        self._deciders: dict[tuple[str, ...], Callable[[Snapshot], tuple[GroupOutcome, ...]]] = {}
        self._evaluators: dict[tuple[str, ...], Callable[[Snapshot], tuple[GroupResult, ...]]] = {}
        # Which rules match is decided by the native evaluator where it is built (native.py), and
        # by generated Python otherwise. The closures compiled above registered every keyword.
        self._natives = self._build_natives(views) if native.enabled() else None
        if self._natives is None:
            for name, plan in self._plans.items():
                plan.decide, plan.source = codegen.generate(name, "first" if plan.first else "all",
                                                            [rule.when for rule, _, _ in plan.rules],
                                                            views, _TextField, _CODEGEN_HELPERS)
        # the generated code and the closures read the views; with the native evaluator only
        # explain mode does, and builds its keyword scanner when it first needs it
        _finish_views(views, scanners=self._natives is None)
        self.evaluator = "python" if self._natives is None else "native"

    def _build_natives(self, views: dict[str, _TextField]) -> native.Natives | None:
        """The native programs of every group, set as the plans' decide and evaluate; None
        (and the generated Python is used) for a ruleset beyond the C tables' fixed sizes."""
        try:
            natives = native.Natives(views, fold)
            programs = {name: natives.program([self._native_spec(plan)], GroupResult) for name, plan in self._plans.items()}
        except OverflowError as exc:
            _log.warning("ruleset %s: deciding with generated Python, not the native evaluator: %s", self.version, exc)
            return None
        for name, program in programs.items():
            self._plans[name].decide = program.index
            self._plans[name].native_evaluate = program.evaluate
        return natives

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

    def section(self, name: str) -> Any:
        """One top-level section of `to_dict()` (e.g. "calendars"), a copy; None if absent.
        Cheaper than to_dict() when a caller needs one part of a large ruleset."""
        return copy.deepcopy(self._data.get(name))

    @property
    def templates(self) -> Mapping[str, Mapping[str, Mapping[str, str]]]:
        """The ruleset's customer-message templates, `faq.<id>` answers included:
        {kind: {variant ("en", "email/zh"): {"subject"?: ..., "body": ...}}}. Read-only."""
        return self._templates

    def has_group(self, name: str) -> bool:
        return name in self.groups

    def evaluate(self, group: str, snapshot: Mapping[str, Any], explain: bool = False) -> GroupResult:
        """Evaluate one group against one snapshot (see `build_snapshot`). Raises KeyError for a
        group this ruleset does not define.

        The trace: with `explain`, one entry per rule with every leaf and its result, and the
        rules after a `first` match marked skipped; without, only the matched rules with the
        leaves that decided them, small enough to record in workflow history. The result and
        everything in it are fresh objects the caller owns."""
        plan = self._plans[group]
        if explain:
            return self._explain(plan, snapshot)
        if plan.native_evaluate is not None:
            return plan.native_evaluate(snapshot)
        found = plan.decide(snapshot)
        if plan.first:
            if found < 0:
                return GroupResult(plan.name, [], {}, [])
            rule, list_keys, matched_entry = plan.rules[found]
            actions = dict(rule.then)
            for key in list_keys:  # the result owns its lists: callers may change them
                actions[key] = list(actions[key])
            return GroupResult(plan.name, [rule.id], actions, [matched_entry(snapshot)])
        indices, merged, outcome = plan.combination(found)
        rules = plan.rules
        return GroupResult(plan.name, list(outcome.rule_ids), _copy_actions(merged),
                           [rules[i][2](snapshot) for i in indices])

    def decide(self, group: str, snapshot: Mapping[str, Any]) -> GroupOutcome:
        """What `evaluate` decides, without a trace and without building a result: the rule ids
        and actions as a shared, read-only `GroupOutcome`. Raises KeyError for an unknown group."""
        plan = self._plans[group]
        found = plan.decide(snapshot)
        if plan.first:
            return plan.outcomes[found]
        cached = plan.by_mask.get(found)
        return (cached if cached is not None else plan.combination(found))[2]

    def decider(self, groups: tuple[str, ...]) -> Callable[[Snapshot], tuple[GroupOutcome, ...]]:
        """One function deciding `groups` together on a snapshot, as a stage of the workflow
        does (stages.STAGES): it returns their outcomes, in order, as `decide` would one by one.
        Generated once per ruleset and tuple of groups. Raises KeyError for an unknown group."""
        found = self._deciders.get(groups)
        if found is None and self._natives is not None:
            found = self._natives.program([self._native_spec(self._plans[name]) for name in groups])
            self._deciders[groups] = found
        if found is None:
            spec = []
            for name in groups:
                plan = self._plans[name]
                conditions = [rule.when for rule, _, _ in plan.rules]
                if plan.first:
                    spec.append((name, "first", conditions, plan.outcomes, None))
                else:
                    spec.append((name, "all", conditions, plan.by_mask, plan.combination))
            found, source = codegen.generate_stage(spec, self._views, _TextField, _CODEGEN_HELPERS)
            self._deciders[groups] = found
        return found

    def stage_evaluator(self, groups: tuple[str, ...]) -> Callable[[Snapshot], tuple[GroupResult, ...]]:
        """One function evaluating `groups` together on a snapshot, as the worker does for a
        stage: it returns their results, in order, as `evaluate` would one by one (compact
        trace, fresh objects). With the native evaluator it is one program for all of them, so a
        text is folded and scanned once. Built once per ruleset and tuple of groups. Raises
        KeyError for an unknown group."""
        found = self._evaluators.get(groups)
        if found is None:
            plans = [self._plans[name] for name in groups]
            if self._natives is not None:
                found = self._natives.program([self._native_spec(plan) for plan in plans], GroupResult).results
            else:
                evaluate = self.evaluate
                found = lambda snapshot: tuple([evaluate(name, snapshot) for name in groups])  # noqa: E731
            self._evaluators[groups] = found
        return found

    @staticmethod
    def _native_spec(plan: _Plan) -> native.GroupSpec:
        rules = [rule for rule, _, _ in plan.rules]
        return native.GroupSpec(plan.name, plan.first, tuple(rule.when for rule in rules), tuple(rule.id for rule in rules),
                                tuple(rule.then for rule in rules), plan.outcomes if plan.first else None,
                                None if plan.first else plan.by_mask, None if plan.first else plan.combination)

    def source(self, group: str) -> str:
        """The Python source generated for a group's decisions (codegen.py), for debugging.
        With the native evaluator it is generated when first asked for (on views of its own:
        the ruleset's are finished), and is what the generated Python would run."""
        plan = self._plans[group]
        if plan.source is None:
            _, plan.source = codegen.generate(group, "first" if plan.first else "all",
                                              [rule.when for rule, _, _ in plan.rules], {}, _TextField, _CODEGEN_HELPERS)
        return plan.source

    def _explain(self, plan: _Plan, snapshot: Mapping[str, Any]) -> GroupResult:
        matched: list[CompiledRule] = []
        trace: list[dict[str, Any]] = []
        for rule, *_ in plan.rules:
            if plan.first and matched:
                trace.append({"rule_id": rule.id, "skipped": True})
                continue
            leaves: list[dict[str, Any]] = []
            hit = rule.record(snapshot, leaves, True)
            trace.append({"rule_id": rule.id, "matched": hit, "leaves": leaves})
            if hit:
                matched.append(rule)
        if plan.first or not matched:
            actions = _copy_actions(matched[0].then) if matched else {}
        else:
            actions = {}
            for rule in matched:
                _merge(actions, rule.then, plan.list_keys)
        return GroupResult(plan.name, [rule.id for rule in matched], actions, trace)

    def __repr__(self) -> str:
        return f"Ruleset(version={self.version!r}, groups={sorted(self.groups)}, sla_policies={sorted(self.sla_policies)})"
