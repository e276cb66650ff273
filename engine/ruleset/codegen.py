"""Generating one Python function per rule group: rule evaluation without the C extension.

Where the native evaluator is built (native.py, _native.c) it decides instead, with the same
semantics; this module stays the fallback and what `Ruleset.source()` shows.

The compiler (compiler.py) turns every condition into closures, which explain mode and traces
walk leaf by leaf. Deciding which rule matches does not need that walk: this module writes the
conditions of a whole group as the if-statements a person would write by hand, and `exec`s the
source once per ruleset version. The generated function returns the index of the first matching
rule (`match: first`, -1 for none) or a bitmask of every matching rule (`match: all`).

Why generated source and not more closures: a closure call per leaf and per combinator costs more
than the comparison it wraps; inline, a leaf is one expression. Each field is read from the
snapshot once per group, where the first rule that needs it starts, and its derived form (is it a
number; its folded text and keywords) is computed once with it.

Safety: nothing a rules file says becomes code. Field names come from the code-owned catalog
(`fields.FIELDS`, checked by the loader) and operators from a fixed table here; every expected
value is bound as a constant in the function's namespace (`c0`, `c1`, ...), never spliced into
the source. The generated expressions mirror the closures in compiler.py exactly (same type
checks, same folding); tests/test_ruleset_codegen.py checks both agree on random snapshots.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .fields import BOOL, ENUM, FIELDS, INT, LIST, NUMBER, STRING, TEXT

Decide = Callable[[Mapping[str, Any]], int]


class _Source:
    """The source of one group's function, with the constants and fields it uses."""

    def __init__(self, helpers: Mapping[str, Any]):
        self.namespace: dict[str, Any] = dict(helpers)
        self.lines: list[str] = []
        self.loaded: dict[str, str] = {}  # field name -> variable holding its raw value
        self.derived: dict[tuple[str, str], str] = {}  # (field, "num" | "text") -> variable
        self._consts = 0

    def const(self, value: Any) -> str:
        name = f"c{self._consts}"
        self._consts += 1
        self.namespace[name] = value
        return name

    def emit(self, line: str, indent: int = 1) -> None:
        self.lines.append("    " * indent + line)

    def value(self, name: str, pending: list[str]) -> str:
        """The variable holding the field's raw value; the read is queued in `pending`."""
        if name not in self.loaded:
            var = f"v{len(self.loaded)}"
            self.loaded[name] = var
            pending.append(f"{var} = get({name!r})")
        return self.loaded[name]

    def _derive(self, name: str, kind: str, prefix: str, pending: list[str],
                lines: Callable[[str, str], list[str]]) -> str:
        """The variable holding a form of the field computed once per group (`lines(var, raw)`
        computes it); the lines are queued in `pending` the first time."""
        key = (name, kind)
        if key not in self.derived:
            raw = self.value(name, pending)
            var = f"{prefix}{len(self.derived)}"
            self.derived[key] = var
            pending.extend(lines(var, raw))
        return self.derived[key]

    def number(self, name: str, pending: list[str]) -> str:
        """Whether the field holds a number (not a bool): NUMBER_CLASSES answers for the usual
        classes, anything else asks is_number."""
        return self._derive(name, "num", "n", pending, lambda var, raw: [
            f"{var} = NUMBER_CLASSES.get({raw}.__class__)", f"if {var} is None: {var} = is_number({raw})"])

    def items(self, name: str, pending: list[str]) -> str:
        """The folded string items of a list field; None when it is no list."""
        return self._derive(name, "items", "l", pending, lambda var, raw: [f"{var} = folded_items({raw})"])

    def text(self, name: str, view: Any, pending: list[str]) -> str:
        """(value, folded, keywords, list bits) of a text field, shared through its view;
        NOT_TEXT when the value is not a string."""
        def lines(var: str, raw: str) -> list[str]:
            v = self.const(view)
            return [f"{var} = {v}.last",
                    f"if {raw} is not {var}[0] and {raw} != {var}[0]: {var} = load_text({v}, {raw}, snap)"]
        return self._derive(name, "text", "t", pending, lines)


def _leaf(src: _Source, cond: Mapping[str, Any], views: dict[str, Any], pending: list[str],
          new_view: Callable[[str], Any]) -> str:
    name = cond["field"]
    op = next(key for key in cond if key != "field")
    expected = cond[op]
    ftype = FIELDS[name].type
    if op == "is_set":
        v = src.value(name, pending)
        return f"({v} is not None)" if expected else f"({v} is None)"
    if op == "is_empty":
        v = src.value(name, pending)
        return f"is_empty({v})" if expected else f"(not is_empty({v}))"

    if ftype == LIST:
        # imported here: compiler imports this module
        from .compiler import fold
        needles = src.const(frozenset(fold(item) for item in expected))
        items = src.items(name, pending)
        if op == "contains_any":
            return f"({items} is not None and not {needles}.isdisjoint({items}))"
        if op == "contains_all":
            return f"({items} is not None and {needles} <= {items})"

    if ftype in (TEXT, STRING):
        from .compiler import fold
        view = views.get(name) or views.setdefault(name, new_view(name))
        t = src.text(name, view, pending)
        # `t` is NOT_TEXT for a value that is not a string: it has no keywords, no list bits and
        # a folded form equal to nothing, so only the negative tests need to check for it.
        if op == "contains_any":
            return f"({t}[3] & {view.list_bit(frozenset(fold(item) for item in expected))})"
        if op == "contains_all":
            needles = frozenset(fold(item) for item in expected)  # never empty: the schema says so
            view.keywords.update(needles)
            return f"({src.const(needles)} <= {t}[2])"
        if op in ("eq", "in"):
            c = src.const(frozenset([fold(expected)] if op == "eq" else [fold(item) for item in expected]))
            return f"({t}[1] in {c})"
        if op in ("ne", "not_in"):
            c = src.const(frozenset([fold(expected)] if op == "ne" else [fold(item) for item in expected]))
            test = f"{t}[1] not in {c}"
        elif op == "starts_with":
            c = src.const(fold(expected))
            test = f"{t}[1].lstrip().startswith({c})"
        elif op == "matches":
            c = src.const(re.compile(expected, re.IGNORECASE).search)
            test = f"{c}({t}[1]) is not None"
        else:
            raise ValueError(f"operator {op!r} on text field {name!r} reached the code generator unvalidated")
        return f"({t} is not NOT_TEXT and {test})"

    if ftype == BOOL and op in ("eq", "ne"):
        v = src.value(name, pending)
        want = bool(expected) if op == "eq" else not expected
        return f"({v} is {want!r})"  # True/False: singletons, and the literal is one of two words

    if ftype == ENUM:
        v = src.value(name, pending)
        if op == "eq":
            return f"({v} == {src.const(expected)})"
        if op == "ne":
            return f"(isinstance({v}, str) and {v} != {src.const(expected)})"
        if op in ("in", "not_in"):
            return f"(isinstance({v}, str) and {v} {'in' if op == 'in' else 'not in'} {src.const(frozenset(expected))})"

    if ftype in (NUMBER, INT):
        v = src.value(name, pending)
        n = src.number(name, pending)
        compare = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">=", "eq": "==", "ne": "!="}
        if op in compare:
            return f"({n} and {v} {compare[op]} {src.const(expected)})"
        if op == "between":
            low, high = expected
            return f"({n} and {src.const(low)} <= {v} <= {src.const(high)})"
        if op in ("in", "not_in"):
            return f"({n} and {v} {'in' if op == 'in' else 'not in'} {src.const(frozenset(expected))})"

    raise ValueError(f"operator {op!r} on {ftype} field {name!r} reached the code generator unvalidated")


def _condition(src: _Source, cond: Mapping[str, Any], views: dict[str, Any], pending: list[str],
               new_view: Callable[[str], Any]) -> str:
    for combinator, joiner in (("all", " and "), ("any", " or ")):
        if combinator in cond:
            parts = [_condition(src, child, views, pending, new_view) for child in cond[combinator]]
            return "(" + joiner.join(parts) + ")"
    if "not" in cond:
        return f"(not {_condition(src, cond['not'], views, pending, new_view)})"
    return _leaf(src, cond, views, pending, new_view)


def _rules(src: _Source, match: str, conditions: Sequence[Mapping[str, Any] | None], views: dict[str, Any],
           new_view: Callable[[str], Any], found: Callable[[int], str], none: str, indent: int) -> None:
    """Emit one group's rules. `match: first`: each rule's test, then `found(index)` (a statement
    that must leave the block) and finally `none`; `match: all`: the bitmask in `matched`."""
    first = match == "first"
    if not first:
        src.emit("matched = 0", indent)
    for index, cond in enumerate(conditions):
        pending: list[str] = []
        test = "True" if cond is None else _condition(src, cond, views, pending, new_view)
        for line in pending:  # the fields this rule is the first to read
            src.emit(line, indent)
        if first and cond is None:
            src.emit(found(index), indent)
            return
        if first:
            src.emit(f"if {test}: {found(index)}", indent)
        elif cond is None:
            src.emit(f"matched |= {1 << index}", indent)
        else:
            src.emit(f"if {test}: matched |= {1 << index}", indent)
    if none:
        src.emit(none, indent)


def _compile(src: _Source, name: str) -> Callable[..., Any]:
    source = "\n".join(src.lines) + "\n"
    code = compile(source, f"<rules {name}>", "exec")
    exec(code, src.namespace)  # noqa: S102 - source built above from catalog names and constants
    src.namespace["__source__"] = source
    return src.namespace["decide"]


def generate(group: str, match: str, conditions: Sequence[Mapping[str, Any] | None], views: dict[str, Any],
             new_view: Callable[[str], Any], helpers: Mapping[str, Any]) -> tuple[Decide, str]:
    """The decide function of one group and its source. `conditions` are the rules' `when`, in
    order (None: a catch-all). `views` is the ruleset's shared text views (added to, as the
    closures do); `helpers` the functions the source calls (see compiler._CODEGEN_HELPERS).
    The function returns the index of the first match (-1: none) or the bitmask of matches."""
    src = _Source(helpers)
    src.emit("def decide(snap):", 0)
    src.emit("get = snap.get")
    _rules(src, match, conditions, views, new_view, lambda index: f"return {index}",
           "return -1" if match == "first" else "return matched", 1)
    decide = _compile(src, f"group {group}")
    return decide, src.namespace["__source__"]


def generate_stage(groups: Sequence[tuple[str, str, Sequence[Mapping[str, Any] | None], Sequence[Any], Any]],
                   views: dict[str, Any], new_view: Callable[[str], Any],
                   helpers: Mapping[str, Any]) -> tuple[Callable[[Mapping[str, Any]], tuple[Any, ...]], str]:
    """One function deciding several groups on one snapshot, as a stage of the workflow does:
    it returns their outcomes as a tuple, in order. Each entry of `groups` is (name, match,
    conditions, outcomes, combination): for `first` groups the outcome of each rule followed by
    the outcome of no match; for `all` groups `combination(mask)` gives (indices, actions,
    outcome) and `outcomes` is the dict of what it gave for the masks already seen."""
    src = _Source(helpers)
    src.emit("def decide(snap):", 0)
    src.emit("get = snap.get")
    results = []
    for number, (name, match, conditions, outcomes, combination) in enumerate(groups):
        result = f"r{number}"
        results.append(result)
        if match == "first":
            table = src.const(tuple(outcomes))
            # a one-pass loop, so that a match can leave the group's block with `break`
            src.emit("while True:")
            _rules(src, match, conditions, views, new_view,
                   lambda index, table=table, result=result: f"{result} = {table}[{index}]; break",
                   f"{result} = {table}[-1]; break", 2)
        else:
            _rules(src, match, conditions, views, new_view, lambda index: "", "", 1)
            seen, combine = src.const(outcomes), src.const(combination)
            src.emit(f"{result} = {seen}.get(matched)")  # (indices, actions, outcome), see compiler._Plan
            src.emit(f"{result} = ({result} if {result} is not None else {combine}(matched))[2]")
        # variables of one group are not reused by the next: a variable may not have been set
        src.loaded.clear()
        src.derived.clear()
    src.emit(f"return ({', '.join(results)},)")
    decide = _compile(src, "stage " + "+".join(name for name, *_ in groups))
    return decide, src.namespace["__source__"]
