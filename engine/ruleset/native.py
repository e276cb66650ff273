"""The native evaluator's Python side: a ruleset's conditions as the tables `_native.c` runs.

`Ruleset` decides which rules match with a `Program` from the C extension `_native` when it is
built (it is, by `pip install`, on any machine with a C compiler), and with the Python that
codegen.py generates otherwise. Both give the same answers: the C code implements each leaf
exactly as codegen and the closures do, and tests/test_ruleset_native.py compares them on
random snapshots. Outcomes are the compiler's shared Python objects; results of `evaluate` and
`stage_evaluator` (rule ids, actions, the compact trace) are built in C as compiler.py builds
them, as fresh
objects, so nothing downstream can tell the paths apart. Explain mode stays in Python: it is
for people reading one ticket, not for throughput.

Set TICKETFLOW_RULES_NATIVE=0 to use the generated Python (to compare, or to rule this module
out when something looks wrong); `ticketflow rules validate --json` reports which one is in use.

Tables (see Program_init in _native.c):
- fields: the field names a program reads, each read at most once per call;
- texts: per text-like field its `Scanner` (the field's keywords, in one trie) and field index;
- leaves: (kind, field, text, op, want, a, b, keyword ids, and the field, operator and expected
  value its trace entry shows) per `{field, op: value}` test;
- nodes: (type, arg, start, count) for leaf / all / any / not, children before parents, with
  `kids` holding the children of all and any: what traces walk, in evaluation order;
- ops: the same conditions as jumps (leaf, next op if true, next op if false), what deciding
  runs: a loop instead of a recursion (`_Tables.code`);
- groups: (first, root node per rule or -1 for a catch-all, outcomes, seen, combine, name, rule
  ids, rule actions, first op per rule); see GroupSpec.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from .fields import BOOL, ENUM, FIELDS, INT, LIST, NUMBER, STRING, TEXT

TABLES_VERSION = 5  # the table layout this module builds; _native.c says which one it reads

try:
    from . import _native
except ImportError:  # not built (no C compiler when installed): the generated Python is used
    _native = None
if _native is not None and getattr(_native, "TABLES_VERSION", None) != TABLES_VERSION:
    # an extension built from an older _native.c (a rebuild failed and left it): never use it
    logging.getLogger(__name__).warning(
        "engine/ruleset/_native is built for tables version %s, this code builds %s: deciding with generated "
        "Python; rebuild with `pip install -e .`", getattr(_native, "TABLES_VERSION", None), TABLES_VERSION)
    _native = None

# leaf kinds and node types: the enums of _native.c, in order
(L_IS_SET, L_IS_EMPTY, L_LIST_ANY, L_LIST_ALL, L_TEXT_ANY, L_TEXT_ALL, L_TEXT_IN, L_TEXT_NOT_IN, L_TEXT_STARTS,
 L_TEXT_MATCHES, L_BOOL_IS, L_ENUM_EQ, L_ENUM_NE, L_ENUM_IN, L_ENUM_NOT_IN, L_NUM_CMP, L_NUM_BETWEEN, L_NUM_IN,
 L_NUM_NOT_IN) = range(19)
N_LEAF, N_ALL, N_ANY, N_NOT = range(4)
CODE_TRUE, CODE_FALSE = -2, -1  # where a condition's jumps end
# Python's rich comparison codes (Py_LT ... Py_GE)
_COMPARE = {"lt": 0, "lte": 1, "eq": 2, "ne": 3, "gt": 4, "gte": 5}


def enabled() -> bool:
    """Whether rulesets built now decide with the native evaluator."""
    return _native is not None and os.environ.get("TICKETFLOW_RULES_NATIVE", "1") != "0"


class Natives:
    """The scanners of one ruleset (one per text-like field, shared by all its programs, so a
    text is folded and scanned once for all the groups of a stage and the next stage too), and
    the programs built from them."""

    def __init__(self, views: Mapping[str, Any], fold: Callable[[str], str]):
        self._fold = fold
        self._texts: dict[str, tuple[Any, dict[str, int]]] = {}
        for name, view in views.items():
            keywords = sorted(view.keywords)
            self._texts[name] = (_native.Scanner(keywords, view.precomputed, fold),
                                 {word: number for number, word in enumerate(keywords)})

    def program(self, groups: Sequence[GroupSpec], result_type: type | None = None) -> Any:
        """A Program deciding `groups` on one snapshot (see GroupSpec). With `result_type`
        (compiler.GroupResult, a class with __slots__) its evaluate() also builds the first
        group's result and trace, and results() every group's."""
        tables = _Tables(self._texts, self._fold)
        specs = []
        for group in groups:
            roots = tuple(-1 if cond is None else tables.node(cond) for cond in group.conditions)
            entries = tuple(CODE_TRUE if root < 0 else tables.code(root, CODE_TRUE, CODE_FALSE) for root in roots)
            specs.append((1 if group.first else 0, roots, group.outcomes, group.seen, group.combine,
                          group.name, group.ids, group.thens, entries))
        return _native.Program(tuple(tables.fields), tuple(tables.texts), tuple(tables.leaves),
                               tuple(tables.nodes), tuple(tables.kids), tuple(specs), self._fold, result_type,
                               tuple(tables.ops))


class GroupSpec(NamedTuple):
    """One group as a program needs it. A `first` group gives `outcomes` (one per rule, then
    the one of no match); an `all` group `seen` (mask -> (indices, merged actions, outcome),
    shared with the Python side) and `combine(mask)`, which computes and remembers a new mask."""

    name: str
    first: bool
    conditions: tuple[Mapping[str, Any] | None, ...]  # the rules' `when`, None for a catch-all
    ids: tuple[str, ...]
    thens: tuple[Mapping[str, Any], ...]
    outcomes: tuple[Any, ...] | None
    seen: dict[int, Any] | None
    combine: Callable[[int], Any] | None


class _Tables:
    def __init__(self, texts: Mapping[str, tuple[Any, dict[str, int]]], fold: Callable[[str], str]):
        self._known_texts = texts
        self._fold = fold
        self.fields: list[str] = []
        self._field_index: dict[str, int] = {}
        self.texts: list[tuple[int, Any]] = []
        self._text_index: dict[str, int] = {}
        self.leaves: list[tuple[Any, ...]] = []
        self.nodes: list[tuple[int, int, int, int]] = []
        self.kids: list[int] = []
        self.ops: list[tuple[int, int, int]] = []  # see code()

    def field(self, name: str) -> int:
        if name not in self._field_index:
            self._field_index[name] = len(self.fields)
            self.fields.append(sys.intern(name))  # build_snapshot interns its keys: found by identity
        return self._field_index[name]

    def text(self, name: str) -> int:
        if name not in self._text_index:
            self._text_index[name] = len(self.texts)
            self.texts.append((self.field(name), self._known_texts[name][0]))
        return self._text_index[name]

    def node(self, cond: Mapping[str, Any]) -> int:
        """The node of a condition, its children added first."""
        for combinator, kind in (("all", N_ALL), ("any", N_ANY)):
            if combinator in cond:
                children = [self.node(child) for child in cond[combinator]]
                start = len(self.kids)
                self.kids.extend(children)
                return self._add((kind, 0, start, len(children)))
        if "not" in cond:
            return self._add((N_NOT, self.node(cond["not"]), 0, 0))
        self.leaves.append(self._leaf(cond))
        return self._add((N_LEAF, len(self.leaves) - 1, 0, 0))

    def code(self, at: int, if_true: int, if_false: int) -> int:
        """The condition of node `at` as jumps: one op (leaf, next if true, next if false) per
        leaf, its children compiled last to first so that every jump goes to an op made before
        (the C side checks it: evaluation only moves down the table and always ends). Returns
        the op to start at; CODE_TRUE / CODE_FALSE end the walk with that answer. `all` and
        `any` short-circuit as Python does; `not` swaps the two targets."""
        kind, arg, start, count = self.nodes[at]
        if kind == N_LEAF:
            self.ops.append((arg, if_true, if_false))
            return len(self.ops) - 1
        if kind == N_NOT:
            return self.code(arg, if_false, if_true)
        entry = if_true if kind == N_ALL else if_false  # all([]) is true, any([]) false
        for child in reversed(self.kids[start:start + count]):
            entry = self.code(child, entry, if_false) if kind == N_ALL else self.code(child, if_true, entry)
        return entry

    def _add(self, node: tuple[int, int, int, int]) -> int:
        self.nodes.append(node)
        return len(self.nodes) - 1

    def _leaf(self, cond: Mapping[str, Any]) -> tuple[Any, ...]:
        """The same cases, in the same order, as codegen._leaf."""
        name = cond["field"]
        op = next(key for key in cond if key != "field")
        expected = cond[op]
        ftype = FIELDS[name].type
        fold = self._fold
        field = self.field(name)

        # what its compact-trace entry shows (compiler._leaf_entry): one object shared by every trace
        shown = list(expected) if isinstance(expected, list) else expected

        def leaf(kind: int, a: Any = None, b: Any = None, *, want: int = 0, compare: int = 0, text: int = -1,
                 ids: tuple[int, ...] | None = None) -> tuple[Any, ...]:
            return (kind, field, text, compare, want, a, b, ids, name, op, shown)

        if op == "is_set":
            return leaf(L_IS_SET, want=int(bool(expected)))
        if op == "is_empty":
            return leaf(L_IS_EMPTY, want=int(bool(expected)))
        if ftype == LIST and op in ("contains_any", "contains_all"):
            return leaf(L_LIST_ANY if op == "contains_any" else L_LIST_ALL, frozenset(fold(item) for item in expected))
        if ftype in (TEXT, STRING):
            text = self.text(name)
            if op in ("contains_any", "contains_all"):
                ids = self._known_texts[name][1]
                return leaf(L_TEXT_ANY if op == "contains_any" else L_TEXT_ALL, text=text,
                            ids=tuple(sorted({ids[fold(item)] for item in expected})))
            if op in ("eq", "in", "ne", "not_in"):
                values = frozenset(_interned([fold(expected)] if op in ("eq", "ne") else [fold(item) for item in expected]))
                return leaf(L_TEXT_IN if op in ("eq", "in") else L_TEXT_NOT_IN, values, text=text)
            if op == "starts_with":
                return leaf(L_TEXT_STARTS, fold(expected), text=text)
            if op == "matches":
                return leaf(L_TEXT_MATCHES, re.compile(expected, re.IGNORECASE).search, text=text)
        if ftype == BOOL and op in ("eq", "ne"):
            return leaf(L_BOOL_IS, bool(expected) if op == "eq" else not expected)
        if ftype == ENUM:
            # interned, as build_snapshot interns short values: equal values are then one object
            if op == "eq":
                return leaf(L_ENUM_EQ, *_interned([expected]))
            if op == "ne":
                return leaf(L_ENUM_NE, *_interned([expected]))
            if op in ("in", "not_in"):
                return leaf(L_ENUM_IN if op == "in" else L_ENUM_NOT_IN, frozenset(_interned(expected)))
        if ftype in (NUMBER, INT):
            if op in _COMPARE:
                return leaf(L_NUM_CMP, expected, compare=_COMPARE[op])
            if op == "between":
                low, high = expected
                return leaf(L_NUM_BETWEEN, low, high)
            if op in ("in", "not_in"):
                return leaf(L_NUM_IN if op == "in" else L_NUM_NOT_IN, frozenset(expected))
        raise ValueError(f"operator {op!r} on {ftype} field {name!r} reached the native compiler unvalidated")


def _interned(values: Sequence[Any]) -> list[Any]:
    """The values with every str interned: the C code finds an interned value among interned
    ones by address."""
    return [sys.intern(value) if type(value) is str else value for value in values]
