"""Reading rules files, validating them, and normalising them into a Ruleset.

This module owns everything between YAML text and a compiled `Ruleset`:
- parsing each file while remembering the line and column of every key and value, so an error
  points at the exact spot an ops person has to fix;
- the JSON Schema of one rules file (`rules_json_schema`), generated from the catalogs in
  fields.py so the schema, the checks below and the compiler can never disagree; the committed
  copy in schemas/rules.schema.json is kept equal to it by a test;
- the semantic pass the schema cannot express: fields and operators against the catalog, enum
  values, safe regexes, one operator per test, catch-all last, duplicate ids and group names,
  identical conditions shadowing a later rule, references to SLA policies;
- normalisation (durations to seconds, defaults filled in, groups in name order), which is what
  the ruleset version hashes.

Templates (`templates:`) and FAQ entries (`faq:`) are checked here too: message kinds, variant
keys and every template text with engine.templates (syntax, variables, a trial render); FAQ
entries become the rules of a generated `faq` group and their answers templates `faq.<id>`.

Every problem found is collected; loading raises one RulesetError carrying all of them, because
fixing one error per run is miserable.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml
from jsonschema import Draft202012Validator

try:  # the regex parser moved in 3.11; it is the only reliable way to see a pattern's structure
    import re._parser as _sre_parse  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_parse as _sre_parse  # type: ignore[no-redef]

from engine import templates as _templates  # a module reference: engine.templates imports this package

from . import schemacheck
from .calendars import CalendarProblem, from_normalised, normalise_calendar
from .calendars import CALENDAR_SCHEMA
from .compiler import Ruleset, canonical_json
from .errors import RuleIssue, RulesetError, suggest as _suggest
from .fields import (A_BOOL, A_DURATION, A_ENUM, A_LIST, A_SLA_POLICY, A_STRING, BOOL, ENUM, FIELDS,
                     GROUP_ACTIONS, INT, NUMBER, OPERATORS, OPERATORS_BY_TYPE, STATUSES, STRING, TEXT)

ID_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
DURATION_PATTERN = r"^(?=[0-9])([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$"
DEFAULT_PAUSE_ON = ["pending_customer", "on_hold"]
DEFAULT_WARNINGS = [0.5, 0.75, 0.9]
MAX_REGEX_LENGTH = 500
_MAX_NODES = 100_000  # YAML aliases can expand exponentially ("billion laughs"); stop early
_MAX_DEPTH = 64  # deeper nesting is a mistake, and would exhaust the compiler's recursion
_DURATION_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_COMBINATORS = ("all", "any", "not")
_SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "rules.schema.json"


# ---------------------------------------------------------------------------------------------
# JSON Schema


def rules_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one rules file, derived from fields.py.

    It checks structure: keys, types, group names, the actions each group may set, durations.
    What needs the catalog or the whole ruleset (field names, operator/field compatibility, enum
    values, one operator per test, duplicate ids) is the loader's semantic pass."""
    scalar = {"type": ["string", "number", "boolean"]}
    scalar_list = {"type": "array", "minItems": 1, "items": scalar}
    string_list = {"type": "array", "minItems": 1, "items": {"type": "string"}}
    operator_values = {
        "eq": scalar, "ne": scalar, "in": scalar_list, "not_in": scalar_list,
        "lt": {"type": "number"}, "lte": {"type": "number"}, "gt": {"type": "number"}, "gte": {"type": "number"},
        "between": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number"}},
        "contains_any": string_list, "contains_all": string_list,
        "starts_with": {"type": "string"}, "matches": {"type": "string"},
        "is_set": {"type": "boolean"}, "is_empty": {"type": "boolean"},
    }
    assert set(operator_values) == set(OPERATORS)
    condition = {
        "description": "Either one of all/any/not, or a field test: {field: NAME, <operator>: value}.",
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {
            "all": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/condition"}},
            "any": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/condition"}},
            "not": {"$ref": "#/$defs/condition"},
            "field": {"type": "string"},
            **operator_values,
        },
    }
    action_kinds = {
        A_STRING: {"type": "string", "minLength": 1},
        A_LIST: {"type": "array", "items": {"type": "string", "minLength": 1}},
        A_BOOL: {"type": "boolean"},
        A_DURATION: {"$ref": "#/$defs/duration"},
        A_SLA_POLICY: {"$ref": "#/$defs/id"},
    }
    actions: dict[str, Any] = {}
    per_group = []
    for group, spec in GROUP_ACTIONS.items():
        properties = {}
        for key, action in spec.items():
            schema = {"enum": list(action.values)} if action.kind == A_ENUM else dict(action_kinds[action.kind])
            properties[key] = {"description": action.description, **schema}
        actions[group] = {"type": "object", "minProperties": 1, "additionalProperties": False, "properties": properties}
        per_group.append({
            "if": {"required": ["name"], "properties": {"name": {"const": group}}},
            "then": {"properties": {"rules": {"items": {"properties": {"then": {"$ref": f"#/$defs/actions/{group}"}}}}}},
        })
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:ticketflow:schema:rules",
        "title": "ticketflow rules file",
        "description": "One file under rules/. Generated from engine/ruleset/fields.py; see rules/README.md.",
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {
            "groups": {"type": "array", "items": {"$ref": "#/$defs/group"}},
            "sla_policies": {
                "type": "object",
                "propertyNames": {"$ref": "#/$defs/id"},
                "additionalProperties": {"$ref": "#/$defs/sla_policy"},
            },
            "calendars": {
                "type": "object",
                "propertyNames": {"$ref": "#/$defs/id"},
                "additionalProperties": {"$ref": "#/$defs/calendar"},
            },
            "templates": {
                "description": "Customer-message templates by kind (see rules/README.md, Templates); "
                               "canned replies are reply.<name>",
                "type": "object",
                "properties": {name: {"description": kind.description, "$ref": "#/$defs/template_variants"}
                               for name, kind in _templates.KINDS.items() if not kind.family},
                "additionalProperties": {"$ref": "#/$defs/template_variants"},
            },
            "faq": {
                "description": "FAQ entries the bot answers; they become the rules of the faq group, in this order",
                "type": "array",
                "items": {"$ref": "#/$defs/faq_entry"},
            },
        },
        "$defs": {
            "id": {"type": "string", "pattern": ID_PATTERN},
            "duration": {
                "description": "\"90s\", \"30m\", \"4h\", \"2d\", \"1d12h\", or a number of seconds",
                "type": ["string", "integer"], "pattern": DURATION_PATTERN, "minimum": 0,
            },
            "group": {
                "type": "object",
                "required": ["name", "match", "rules"],
                "additionalProperties": False,
                "properties": {
                    "name": {"enum": list(GROUP_ACTIONS)},
                    "match": {"enum": ["first", "all"]},
                    "description": {"type": "string"},
                    "rules": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/rule"}},
                },
                "allOf": per_group,
            },
            "rule": {
                "type": "object",
                "required": ["id", "then"],
                "additionalProperties": False,
                "properties": {
                    "id": {"$ref": "#/$defs/id"},
                    "description": {"type": "string"},
                    "when": {"$ref": "#/$defs/condition"},
                    "then": {"type": "object"},
                },
            },
            "condition": condition,
            "actions": actions,
            "sla_policy": {
                "type": "object",
                "required": ["first_response", "resolution"],
                "additionalProperties": False,
                "properties": {
                    "description": {"type": "string"},
                    "first_response": {"$ref": "#/$defs/duration"},
                    "next_reply": {"$ref": "#/$defs/duration"},
                    "periodic_update": {"$ref": "#/$defs/duration"},
                    "resolution": {"$ref": "#/$defs/duration"},
                    "pause_on": {"type": "array", "items": {"enum": list(STATUSES)}},
                    "calendar": {"$ref": "#/$defs/id"},
                    "warnings": {
                        "description": "fractions of each target at which escalation rules run, e.g. [0.5, 0.75, 0.9]",
                        "type": "array", "items": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                    },
                    "on_change": {"enum": ["keep", "restart"],
                                  "description": "when a ticket switches to this policy: keep the elapsed time (default) or restart the clocks"},
                },
            },
            "calendar": CALENDAR_SCHEMA,
            "template_variants": {
                "description": "variants by language (en, zh, zh-TW) or <channel>/<language> (email/en)",
                "type": "object",
                "minProperties": 1,
                "additionalProperties": {"$ref": "#/$defs/template"},
            },
            "template": {
                "description": "the message text, or {subject, body}; Jinja syntax: {{ name }}, {% if ... %}",
                "type": ["string", "object"],
                "minLength": 1,
                "required": ["body"],
                "additionalProperties": False,
                "properties": {
                    "subject": {"type": "string", "minLength": 1, "description": "e.g. the e-mail subject"},
                    "body": {"type": "string", "minLength": 1},
                },
            },
            "faq_entry": {
                "type": "object",
                "required": ["id", "keywords", "answer"],
                "additionalProperties": False,
                "properties": {
                    "id": {"$ref": "#/$defs/id"},
                    "description": {"type": "string"},
                    "keywords": {
                        "description": "by language: any one keyword found in the ticket's text selects the entry",
                        "type": "object",
                        "minProperties": 1,
                        "additionalProperties": {"type": "array", "minItems": 1,
                                                 "items": {"type": "string", "minLength": 1}},
                    },
                    "when": {"$ref": "#/$defs/condition"},
                    "answer": {"$ref": "#/$defs/template_variants"},
                },
            },
        },
    }


def write_json_schema(path: Path = _SCHEMA_FILE) -> None:
    """Regenerate schemas/rules.schema.json after changing the catalogs in fields.py."""
    path.write_text(json.dumps(rules_json_schema(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


_validator: Draft202012Validator | None = None


def _schema_validator() -> Draft202012Validator:
    global _validator
    if _validator is None:
        _validator = Draft202012Validator(rules_json_schema())
    return _validator


# ---------------------------------------------------------------------------------------------
# Sources: parsed data plus positions


DataPath = tuple  # a path into the data: ("groups", 0, "rules", 3, "when", "all", 1, "field")


@dataclass
class _Source:
    name: str
    data: Any
    # the parser's marks (line and column from 0), turned into positions by `at`
    values: dict[DataPath, yaml.Mark] = field(default_factory=dict)
    keys: dict[DataPath, yaml.Mark] = field(default_factory=dict)
    bad: set[DataPath] = field(default_factory=set)  # paths the schema already complained about
    # literal block scalars (`|`): path -> (line, column) of their first content line, so a
    # problem on line N of a template points at line N of it in the file
    blocks: dict[DataPath, tuple[int, int]] = field(default_factory=dict)

    def at(self, path: DataPath, key: bool = False) -> tuple[int | None, int | None]:
        if key and path in self.keys:
            return _position(self.keys[path])
        while True:
            if path in self.values:
                return _position(self.values[path])
            if not path:
                return None, None
            path = path[:-1]

    def has_bad_within(self, path: DataPath) -> bool:
        return any(bad[:len(path)] == path for bad in self.bad)

    def in_text(self, path: DataPath, line: int | None) -> tuple[int | None, int | None]:
        """The file position of `line` (1-based) of the text value at `path`."""
        if line is not None and path in self.blocks:
            first, column = self.blocks[path]
            return first + line - 1, column
        return self.at(path)

    def issue(self, path: DataPath, message: str, hint: str | None = None, key: bool = False,
              position: tuple[int | None, int | None] | None = None) -> RuleIssue:
        line, column = position or self.at(path, key)
        group, rule_id = self._context(path)
        if len(path) >= 2 and path[0] == "sla_policies":
            message = f"sla policy '{path[1]}': {message}"
        elif len(path) >= 2 and path[0] == "calendars":
            message = f"calendar '{path[1]}': {message}"
        elif path and path[0] in ("templates", "faq"):
            # a problem with a key is about the mapping holding it: name that one
            subject = self._template_subject(path[:-1] if key else path)
            if subject:
                message = f"{subject}: {message}"
        return RuleIssue(self.name, line, column, rule_id, group, message, hint)

    def _template_subject(self, path: DataPath) -> str:
        """'template 'survey' (email/en)', 'faq entry 'delivery-time' answer (zh)', or ''."""
        if len(path) >= 2 and path[0] == "templates":
            return f"template '{path[1]}'" + (f" ({path[2]})" if len(path) >= 3 else "")
        if len(path) >= 2 and path[0] == "faq" and isinstance(path[1], int):
            try:
                entry_id = self.data["faq"][path[1]].get("id")
            except (LookupError, TypeError, AttributeError):
                entry_id = None
            text = f"faq entry '{entry_id}'" if isinstance(entry_id, str) else f"faq entry {path[1] + 1}"
            if len(path) >= 4 and path[2] == "answer":
                text += f" answer ({path[3]})"
            return text
        return ""

    def _context(self, path: DataPath) -> tuple[str | None, str | None]:
        group = rule_id = None
        try:
            if len(path) >= 2 and path[0] == "groups":
                node = self.data["groups"][path[1]]
                if isinstance(node.get("name"), str):
                    group = node["name"]
                if len(path) >= 4 and path[2] == "rules":
                    rule = node["rules"][path[3]]
                    if isinstance(rule.get("id"), str):
                        rule_id = rule["id"]
        except (LookupError, TypeError, AttributeError):
            pass
        return group, rule_id


# libyaml when present: parsing is most of the load time, and it reports the same positions.
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_STR_TAG = "tag:yaml.org,2002:str"
# Scalar tags the safe loader resolves plain values to; their constructors are called directly.
_PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{kind}" for kind in ("int", "float", "bool", "null", "timestamp"))


def _position(mark: yaml.Mark) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


class _TooBig(Exception):
    def __init__(self, message: str, mark: yaml.Mark):
        super().__init__(message)
        self.mark = mark


def _parse(name: str, text: str) -> tuple[_Source | None, list[RuleIssue]]:
    """Parse YAML text, recording the position of every value and key."""
    source = _Source(name, None)
    issues: list[RuleIssue] = []
    loader = _YamlLoader(text)
    lines = text.splitlines()
    count = 0
    # Positions are kept as the parser's marks and turned into numbers only for a message
    # (_Source.at): a rules file has thousands of nodes and most loads report nothing.
    values, keys = source.values, source.keys
    scalar, mapping, sequence = yaml.ScalarNode, yaml.MappingNode, yaml.SequenceNode
    constructors = loader.yaml_constructors

    def walk(node: yaml.Node, path: DataPath) -> Any:
        nonlocal count
        count += 1
        if count > _MAX_NODES or len(path) > _MAX_DEPTH:
            raise _TooBig("file nests too deeply or expands too many aliases", node.start_mark)
        values[path] = node.start_mark
        kind = node.__class__
        if kind is scalar:
            if node.style == "|":
                # the content starts on the line after the `|`; its indentation is the column
                first = node.start_mark.line + 1
                if first < len(lines):
                    content = lines[first]
                    source.blocks[path] = (first + 1, len(content) - len(content.lstrip(" ")) + 1)
            tag = node.tag
            if tag == _STR_TAG:
                return node.value
            if tag in _PLAIN_TAGS:  # the safe constructor's own function, without its bookkeeping
                return constructors[tag](loader, node)
            return loader.construct_object(node, deep=True)  # anything else: its own error
        if kind is mapping:
            loader.flatten_mapping(node)  # resolves YAML merge keys (<<: *defaults)
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.__class__ is not scalar:
                    issues.append(RuleIssue(name, *_position(key_node.start_mark), None, None, "a key must be plain text"))
                    continue
                # The key as written: YAML 1.1 would turn an unquoted `on:` or `no:` into a boolean.
                key = key_node.value
                at = path + (key,)
                if key in out:
                    first_line = keys[at].line + 1
                    issues.append(RuleIssue(name, *_position(key_node.start_mark), None, None,
                                            f"duplicate key '{key}' (also on line {first_line})",
                                            "YAML keeps only the last one; remove one of them"))
                    continue
                keys[at] = key_node.start_mark
                out[key] = walk(value_node, at)
            return out
        if kind is sequence:
            return [walk(item, path + (index,)) for index, item in enumerate(node.value)]
        return loader.construct_object(node, deep=True)

    try:
        node = loader.get_single_node()
        source.data = walk(node, ()) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = exc.problem or str(exc)
        hint = f"{exc.context} (line {exc.context_mark.line + 1})" if exc.context and exc.context_mark else None
        return None, [RuleIssue(name, line, column, None, None, f"YAML syntax error: {problem}", hint)]
    except _TooBig as exc:
        return None, [RuleIssue(name, exc.mark.line + 1, exc.mark.column + 1, None, None, str(exc))]
    finally:
        loader.dispose()
    if source.data is None:
        issues.append(RuleIssue(name, 1, 1, None, None, "the file is empty",
                                "a rules file needs `groups:`, `sla_policies:`, `calendars:`, `templates:` "
                                "and/or `faq:`"))
        return None, issues
    return source, issues


# ---------------------------------------------------------------------------------------------
# Messages


def _shown(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


_TYPE_WORDS = {"string": "text", "number": "a number", "integer": "a whole number", "boolean": "true or false",
               "array": "a list", "object": "a mapping"}


def _label(path: DataPath) -> str:
    for part in reversed(path):
        if isinstance(part, str):
            return part
    return "the file"


def _where_kind(path: DataPath) -> str:
    """What sort of mapping sits at `path`, for wording messages about its keys."""
    if not path:
        return "top"
    if path[0] == "templates":
        return {2: "variants", 3: "template"}.get(len(path), "other")
    if path[0] == "faq" and "when" not in path[2:3]:
        if len(path) == 2:
            return "faq_entry"
        if len(path) >= 3 and path[2] == "answer":
            return {3: "variants", 4: "template"}.get(len(path), "other")
        return "other"
    if path[0] == "sla_policies":
        return "sla_policy" if len(path) == 2 else "other"
    if path[0] == "calendars":
        return "calendar" if len(path) == 2 else "other"
    if path[0] == "groups" and len(path) == 2:
        return "group"
    if path[0] == "groups" and len(path) == 4:
        return "rule"
    if len(path) == 5 and path[4] == "then":
        return "then"
    if "when" in path:
        return "condition"
    return "other"


def _schema_issues(source: _Source) -> list[RuleIssue]:
    if schemacheck.is_valid(source.data):  # the usual case, answered fast; errors need the walk below
        return []
    issues = []
    for error in _schema_validator().iter_errors(source.data):
        path = tuple(error.absolute_path)
        source.bad.add(path)
        issues.extend(_translate(source, error, path))
    return issues


def _translate(source: _Source, error: Any, path: DataPath) -> list[RuleIssue]:
    kind, value, schema = error.validator, error.instance, error.schema
    label = _label(path)
    if kind == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        out = []
        for key in value:
            if key in allowed:
                continue
            where = _where_kind(path)
            if where == "then":
                group = source._context(path)[0]
                message = f"unknown action '{key}' for group {group}"
                hint = _suggest(key, allowed) or f"group {group} can set: {', '.join(allowed)}"
            elif where == "condition":
                message = f"unknown operator '{key}'"
                hint = _suggest(key, allowed) or f"use all/any/not, or field plus one of: {', '.join(OPERATORS)}"
            else:
                what = {"top": "top-level key", "group": "key in group", "rule": "key in rule",
                        "sla_policy": "key in sla policy", "calendar": "key in calendar"}.get(where, "key")
                # (in a template or faq entry the message already names it: "template 'x' (en): unknown key")
                message = f"unknown {what} '{key}'"
                hint = _suggest(key, allowed) or f"allowed: {', '.join(allowed)}"
            out.append(source.issue(path + (key,), message, hint, key=True))
        return out
    if kind == "required":
        what = {"group": "group", "rule": "rule", "sla_policy": "sla policy", "calendar": "calendar",
                "faq_entry": "entry"}.get(_where_kind(path), "mapping")
        return [source.issue(path, f"the {what} has no '{key}'", f"add '{key}:'")
                for key in error.validator_value if isinstance(value, dict) and key not in value]
    if kind == "propertyNames" or "propertyNames" in error.relative_schema_path:
        return [source.issue(path + (value,), "the name must be kebab-case",
                             "use lowercase letters, digits and dashes, e.g. 'p1-urgent'", key=True)]
    if kind == "pattern":
        if error.validator_value == DURATION_PATTERN:
            return [source.issue(path, f"{label}: {value!r} is not a duration",
                                 "write e.g. 90s, 30m, 4h, 2d, 1d12h, or a number of seconds")]
        return [source.issue(path, f"{label}: {value!r} must be kebab-case",
                             "use lowercase letters, digits and dashes, e.g. 'vip-public-post'")]
    if kind == "type":
        if schema.get("pattern") == DURATION_PATTERN:
            return [source.issue(path, f"{label}: {_shown(value)} is not a duration",
                                 "write e.g. 90s, 30m, 4h, 2d, 1d12h, or a number of seconds")]
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        words = " or ".join(_TYPE_WORDS.get(word, word) for word in wanted)
        hint = None
        if wanted == ["string"] and isinstance(value, (int, float, bool)):
            hint = "put the value in quotes, e.g. \"12315\""
        elif path and path[-1] == "when":
            hint = "a condition is a mapping such as {field: channel, eq: weibo}"
        elif isinstance(path[-1] if path else None, int) and "when" in path and isinstance(value, str):
            hint = "each item is a condition such as {field: channel, eq: weibo}"
        return [source.issue(path, f"{label}: expected {words}, got {_shown(value)}", hint)]
    if kind == "enum":
        allowed = [str(item) for item in error.validator_value]
        return [source.issue(path, f"{label}: {_shown(value)} is not one of {', '.join(allowed)}",
                             _suggest(value, allowed))]
    if kind in ("minItems", "maxItems"):
        if label == "between":
            return [source.issue(path, "between needs exactly two values: [low, high]")]
        return [source.issue(path, f"{label} must not be empty")]
    if kind == "minProperties":
        where = _where_kind(path)
        if where == "top":
            return [source.issue(path, "the file has none of 'groups', 'sla_policies', 'calendars', 'templates', 'faq'")]
        if label == "keywords" and path[:1] == ("faq",):
            return [source.issue(path, "keywords is empty", "add keywords by language, e.g. en: [shipping time]")]
        if where == "variants":
            what = "the answer" if label == "answer" else "it"
            return [source.issue(path, f"{what} has no variant", "add one, e.g. en: \"...\"")]
        if where == "then":
            return [source.issue(path, "'then' sets no action")]
        return [source.issue(path, f"{label} is empty")]
    if kind == "minLength":
        return [source.issue(path, f"{label} must not be empty text")]
    if kind == "minimum":
        return [source.issue(path, f"{label} must not be negative")]
    return [source.issue(path, f"{label}: {error.message}")]


# ---------------------------------------------------------------------------------------------
# Semantic checks


def regex_problem(pattern: str) -> tuple[str, str | None] | None:
    """Why `pattern` may not be used in a rule, as (message, hint), or None if it is fine.

    Besides syntax, this refuses a quantified group whose content is itself repeated — (a+)+,
    (.*)*, (\\w+)* — the classic shape that makes backtracking take exponential time on a
    near-miss, which would stall a worker evaluating one unlucky ticket."""
    if len(pattern) > MAX_REGEX_LENGTH:
        return f"regular expression is longer than {MAX_REGEX_LENGTH} characters", "split it into several tests"
    try:
        re.compile(pattern)
        parsed = _sre_parse.parse(pattern)
    except re.error as exc:
        return f"invalid regular expression: {exc.msg} at position {exc.pos}", None
    if _nested_repeat(parsed, outer_unbounded=False):
        return (f"regular expression '{pattern}' repeats a group that itself repeats; it can take "
                "exponential time on some texts",
                "drop one of the two quantifiers, e.g. \\w+ instead of (\\w+)*")
    return None


def _nested_repeat(items: Any, outer_unbounded: bool) -> bool:
    for op, av in items:
        name = getattr(op, "name", str(op))
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            low, high, sub = av
            if outer_unbounded and high > 1:
                return True
            if _nested_repeat(sub, outer_unbounded or high == _sre_parse.MAXREPEAT):
                return True
        elif name == "SUBPATTERN":
            if _nested_repeat(av[-1], outer_unbounded):
                return True
        elif name == "BRANCH":
            if any(_nested_repeat(branch, outer_unbounded) for branch in av[1]):
                return True
        elif name in ("ASSERT", "ASSERT_NOT"):
            if _nested_repeat(av[1], outer_unbounded):
                return True
        elif name == "GROUPREF_EXISTS":
            if any(branch is not None and _nested_repeat(branch, outer_unbounded) for branch in av[1:]):
                return True
        # ATOMIC_GROUP and POSSESSIVE_REPEAT never backtrack into their content: safe by design.
    return False


def _value_fits(ftype: str, value: Any) -> bool:
    if ftype == BOOL:
        return isinstance(value, bool)
    if ftype in (NUMBER, INT):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, str)


def _check_condition(source: _Source, cond: Any, path: DataPath, issues: list[RuleIssue]) -> None:
    if not isinstance(cond, dict):
        return  # the schema reported it
    combinators = [key for key in _COMBINATORS if key in cond]
    operators = [key for key in OPERATORS if key in cond]
    if combinators:
        if len(combinators) > 1 or operators or "field" in cond:
            found = ", ".join(f"'{key}'" for key in combinators + (["field"] if "field" in cond else []) + operators)
            issues.append(source.issue(path, f"a condition is one of all/any/not or a single field test, "
                                             f"this one mixes {found}",
                                       "nest them, e.g. all: [{field: ..., eq: ...}, {any: [...]}]"))
            return
        child = cond[combinators[0]]
        if combinators[0] == "not":
            _check_condition(source, child, path + ("not",), issues)
        elif isinstance(child, list):
            for index, item in enumerate(child):
                _check_condition(source, item, path + (combinators[0], index), issues)
        return
    if source.has_bad_within(path):
        return  # one message per broken test is enough
    name = cond.get("field")
    if name is None:
        issues.append(source.issue(path, f"the test {', '.join(repr(o) for o in operators)} has no 'field'",
                                   "add e.g. field: channel"))
        return
    spec = FIELDS.get(name)
    if spec is None:
        hint = _suggest(name, FIELDS) or "see the fields table in rules/README.md"
        issues.append(source.issue(path + ("field",), f"unknown field '{name}'", hint))
        return
    allowed = OPERATORS_BY_TYPE[spec.type]
    if not operators:
        issues.append(source.issue(path, f"the test on '{name}' has no operator", f"add one of: {', '.join(allowed)}"))
        return
    if len(operators) > 1:
        issues.append(source.issue(path, f"the test on '{name}' has {len(operators)} operators "
                                         f"({', '.join(operators)}); a test takes exactly one",
                                   "combine tests with all: [...], or use between for a range"))
        return
    op = operators[0]
    expected = cond[op]
    if op not in allowed:
        issues.append(source.issue(path + (op,), f"operator '{op}' does not apply to {spec.type} field '{name}'",
                                   f"{name} takes: {', '.join(allowed)}", key=True))
        return
    if op in ("eq", "ne", "in", "not_in"):
        items = [(path + (op,), expected)] if op in ("eq", "ne") else [
            (path + (op, index), item) for index, item in enumerate(expected)]
        for item_path, item in items:
            if not _value_fits(spec.type, item):
                want = {BOOL: "true or false", NUMBER: "a number", INT: "a number"}.get(spec.type, "text")
                hint = "put the value in quotes" if want == "text" else None
                issues.append(source.issue(item_path, f"{name} is {spec.type}; {op} needs {want}, got {_shown(item)}", hint))
            elif spec.type == ENUM and item not in spec.values:
                issues.append(source.issue(item_path, f"{item!r} is not a value of {name}",
                                           _suggest(item, spec.values) or f"{name} is one of: {', '.join(spec.values)}"))
    elif op == "between":
        low, high = expected
        if low > high:
            issues.append(source.issue(path + (op,), f"between [{low}, {high}] is empty: low is above high",
                                       f"write [{high}, {low}]"))
    elif op in ("contains_any", "contains_all", "starts_with") and spec.type in (TEXT, STRING):
        needles = expected if isinstance(expected, list) else [expected]
        for index, needle in enumerate(needles):
            if not needle.strip():
                where = path + (op, index) if isinstance(expected, list) else path + (op,)
                issues.append(source.issue(where, f"{op} has an empty text, which every {name} contains",
                                           "remove it"))
    elif op == "matches":
        problem = regex_problem(expected)
        if problem is not None:
            issues.append(source.issue(path + (op,), problem[0], problem[1]))


def _parse_duration(value: Any) -> int:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # JSON Schema counts 3600.0 as an integer, so the schema let it through: whole seconds
        return int(value)
    return sum(int(amount) * _DURATION_UNITS[unit] for amount, unit in re.findall(r"([0-9]+)([dhms])", value))


def _base_dir(source: _Source) -> Path | None:
    path = Path(source.name)
    return path.parent if path.suffix in (".yaml", ".yml") else None


def _check_calendars(source: _Source, issues: list[RuleIssue]) -> None:
    calendars = source.data.get("calendars")
    for name, spec in (calendars.items() if isinstance(calendars, dict) else []):
        path = ("calendars", name)
        if not isinstance(spec, dict) or source.has_bad_within(path):
            continue
        try:
            normalise_calendar(name, spec, _base_dir(source))
        except CalendarProblem as exc:
            issues.append(source.issue(path + exc.key, str(exc), exc.hint))


def _check_variants(source: _Source, kind: str, variants: Any, path: DataPath, issues: list[RuleIssue]) -> None:
    """The variants of one message kind: their keys, and every text with the template checker."""
    if not isinstance(variants, dict):
        return
    for key, spec in variants.items():
        variant_path = path + (key,)
        problem = _templates.variant_problem(key)
        if problem is not None:
            issues.append(source.issue(variant_path, problem[0], problem[1], key=True))
            continue
        if source.has_bad_within(variant_path):
            continue
        if isinstance(spec, str):
            texts = [(variant_path, spec)]
        elif isinstance(spec, dict):
            texts = [(variant_path + (part,), spec[part]) for part in ("subject", "body") if isinstance(spec.get(part), str)]
        else:
            continue
        for text_path, text in texts:
            found = _templates.template_problem(kind, text)
            if found is not None:
                issues.append(source.issue(text_path, found.message, found.hint,
                                           position=source.in_text(text_path, found.line)))


def _check_templates(source: _Source, issues: list[RuleIssue]) -> None:
    templates = source.data.get("templates")
    for kind, variants in (templates.items() if isinstance(templates, dict) else []):
        path = ("templates", kind)
        problem = _templates.kind_problem(kind)
        if problem is not None:
            issues.append(source.issue(path, problem[0], problem[1], key=True))
            continue
        _check_variants(source, kind, variants, path, issues)
        if (_templates.needs_own_english(kind) and isinstance(variants, dict) and variants
                and "en" not in variants):
            issues.append(source.issue(path, f"template '{kind}' has no 'en' variant",
                                       "add en: ...; it is what every language without a variant of its own "
                                       "gets (there is no built-in text for it)", key=True))


def _check_faq(source: _Source, issues: list[RuleIssue]) -> None:
    entries = source.data.get("faq")
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(entry, dict):
            continue
        path = ("faq", index)
        if "when" in entry:
            _check_condition(source, entry["when"], path + ("when",), issues)
        keywords = entry.get("keywords")
        for language, words in (keywords.items() if isinstance(keywords, dict) else []):
            if not re.match(_templates.LANGUAGE_PATTERN, language):
                problem = _templates.variant_problem(language)
                hint = problem[1] if problem and "did you mean" in (problem[1] or "") and "/" not in language else None
                issues.append(source.issue(path + ("keywords", language),
                                           f"keywords: '{language}' is not a language code",
                                           hint or "write a language code such as en, zh, zh-TW", key=True))
            for at, word in enumerate(words if isinstance(words, list) else []):
                if isinstance(word, str) and word and not word.strip():
                    issues.append(source.issue(path + ("keywords", language, at),
                                               "a blank keyword, which every text contains", "remove it"))
        entry_id, answer = entry.get("id"), entry.get("answer")
        if not (isinstance(entry_id, str) and re.match(ID_PATTERN, entry_id)) or not isinstance(answer, dict):
            continue
        _check_variants(source, f"faq.{entry_id}", answer, path + ("answer",), issues)
        if answer and "en" not in answer:
            issues.append(source.issue(path + ("answer",), "the answer has no 'en' variant",
                                       "add en: ...; customers whose language has no answer of its own get it",
                                       key=True))


def _copied(value: Any) -> Any:
    """A copy of parsed rules data (mappings, lists and immutable scalars): what copy.deepcopy
    gives here, several times faster, as it needs no memo for shared or cyclic parts (a YAML
    alias is copied once per use, as the data reads)."""
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copied(item) for item in value]
    return value


def _faq_condition(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The condition of the rule an FAQ entry becomes: any of its keywords (every language) in
    the ticket's text, and its own `when` if it has one."""
    words = [word for group in entry["keywords"].values() for word in group]
    found: dict[str, Any] = {"field": "text", "contains_any": list(dict.fromkeys(words))}
    if "when" in entry:
        return {"all": [found, _copied(entry["when"])]}
    return found


def _check_source(source: _Source, issues: list[RuleIssue]) -> None:
    """Checks that need only one file."""
    data = source.data
    if not isinstance(data, dict):
        return
    _check_calendars(source, issues)
    _check_templates(source, issues)
    _check_faq(source, issues)
    groups = data.get("groups")
    for gi, group in enumerate(groups if isinstance(groups, list) else []):
        if not isinstance(group, dict) or not isinstance(group.get("rules"), list):
            continue
        rules = group["rules"]
        seen_conditions: dict[str, str] = {}
        for ri, rule in enumerate(rules):
            if not isinstance(rule, dict):
                continue
            path = ("groups", gi, "rules", ri)
            if "when" in rule:
                _check_condition(source, rule["when"], path + ("when",), issues)
                if group.get("match") == "first" and isinstance(rule["when"], dict):
                    key = canonical_json(_canonical_condition(rule["when"]))
                    if key in seen_conditions:
                        issues.append(source.issue(
                            path + ("when",), f"has the same condition as rule '{seen_conditions[key]}' above, "
                                              "so it can never match in a 'first' group",
                            "change the condition or merge the two rules"))
                    else:
                        seen_conditions[key] = str(rule.get("id"))
            elif ri != len(rules) - 1:
                later = len(rules) - ri - 1
                issues.append(source.issue(
                    path + ("id",), "has no 'when' (a catch-all) but is not the last rule of its group",
                    f"move it to the end; the {later} rule(s) after it "
                    f"{'can never match' if group.get('match') == 'first' else 'are out of order'}"))
    policies = data.get("sla_policies")
    for name, policy in (policies.items() if isinstance(policies, dict) else []):
        path = ("sla_policies", name)
        if not isinstance(policy, dict) or source.has_bad_within(path):
            continue
        first, resolution = _parse_duration(policy["first_response"]), _parse_duration(policy["resolution"])
        if first <= 0 or resolution <= 0:
            target = "first_response" if first <= 0 else "resolution"
            issues.append(source.issue(path + (target,), f"{target} must be longer than zero"))
        elif first > resolution:
            issues.append(source.issue(path + ("first_response",),
                                       "first_response is longer than resolution",
                                       "a ticket cannot be resolved before its first response is due"))


def _canonical_condition(cond: Any) -> Any:
    """A form in which conditions that differ only in the order of all/any items or list values
    compare equal, to catch a rule shadowed by an identical earlier one."""
    if not isinstance(cond, dict):
        return cond
    out = {}
    for key, value in cond.items():
        if key in ("all", "any") and isinstance(value, list):
            out[key] = sorted((_canonical_condition(item) for item in value), key=canonical_json)
        elif key == "not":
            out[key] = _canonical_condition(value)
        elif isinstance(value, list):
            out[key] = sorted(value, key=canonical_json)
        else:
            out[key] = value
    return out


def _check_ruleset(sources: list[_Source], issues: list[RuleIssue]) -> None:
    """Checks across files: unique group names, rule ids and policy names; policy references."""
    group_at: dict[str, str] = {}
    rule_at: dict[str, str] = {}
    policy_at: dict[str, str] = {}

    def where(source: _Source, path: DataPath, key: bool = False) -> str:
        line = source.at(path, key)[0]
        return f"{source.name}:{line}" if line is not None else source.name

    for source in sources:
        policies = source.data.get("sla_policies") if isinstance(source.data, dict) else None
        for name in (policies if isinstance(policies, dict) else {}):
            path = ("sla_policies", name)
            if name in policy_at:
                issues.append(source.issue(path, f"is already defined at {policy_at[name]}",
                                           "policy names must be unique across all files", key=True))
            else:
                policy_at[name] = where(source, path, key=True)
    calendar_at: dict[str, str] = {}
    for source in sources:
        calendars = source.data.get("calendars") if isinstance(source.data, dict) else None
        for name in (calendars if isinstance(calendars, dict) else {}):
            path = ("calendars", name)
            if name in calendar_at:
                issues.append(source.issue(path, f"is already defined at {calendar_at[name]}",
                                           "calendar names must be unique across all files", key=True))
            else:
                calendar_at[name] = where(source, path, key=True)
    for source in sources:
        policies = source.data.get("sla_policies") if isinstance(source.data, dict) else None
        for name, policy in (policies.items() if isinstance(policies, dict) else []):
            ref = policy.get("calendar") if isinstance(policy, dict) else None
            if isinstance(ref, str) and ref not in calendar_at:
                hint = _suggest(ref, calendar_at) or (f"defined calendars: {', '.join(sorted(calendar_at))}"
                                                     if calendar_at else "define it under calendars: in a rules file")
                issues.append(source.issue(("sla_policies", name, "calendar"), f"calendar '{ref}' is not defined", hint))
    for source in sources:
        groups = source.data.get("groups") if isinstance(source.data, dict) else None
        for gi, group in enumerate(groups if isinstance(groups, list) else []):
            if not isinstance(group, dict):
                continue
            name = group.get("name")
            if isinstance(name, str):
                if name in group_at:
                    issues.append(source.issue(("groups", gi, "name"), f"group '{name}' is already defined at "
                                               f"{group_at[name]}", "merge the two groups into one"))
                else:
                    group_at[name] = where(source, ("groups", gi, "name"))
            for ri, rule in enumerate(group.get("rules") if isinstance(group.get("rules"), list) else []):
                if not isinstance(rule, dict):
                    continue
                path = ("groups", gi, "rules", ri)
                rule_id = rule.get("id")
                if isinstance(rule_id, str):
                    if rule_id in rule_at:
                        issues.append(source.issue(path + ("id",), f"duplicate rule id (first used at "
                                                   f"{rule_at[rule_id]})", "rule ids must be unique across all files"))
                    else:
                        rule_at[rule_id] = where(source, path + ("id",))
                then = rule.get("then")
                if name not in GROUP_ACTIONS or not isinstance(then, dict) or source.has_bad_within(path + ("then",)):
                    continue
                for key, action in GROUP_ACTIONS[name].items():
                    if action.kind == A_SLA_POLICY and key in then and then[key] not in policy_at:
                        hint = _suggest(then[key], policy_at) or (
                            f"defined policies: {', '.join(sorted(policy_at))}" if policy_at else
                            "define it under sla_policies: in a rules file")
                        issues.append(source.issue(path + ("then", key), f"sla policy '{then[key]}' is not defined", hint))
    _check_templates_and_faq(sources, rule_at, issues)


def _check_templates_and_faq(sources: list[_Source], rule_at: dict[str, str], issues: list[RuleIssue]) -> None:
    """Across files: each message kind defined once; FAQ ids unique among themselves and rule
    ids; `faq:` entries or a hand-written faq group, not both; every FAQ answer has a template
    and every FAQ answer template an entry or rule answering with it."""

    def where(source: _Source, path: DataPath, key: bool = False) -> str:
        line = source.at(path, key)[0]
        return f"{source.name}:{line}" if line is not None else source.name

    def mapping(source: _Source, key: str) -> dict:
        value = source.data.get(key) if isinstance(source.data, dict) else None
        return value if isinstance(value, dict) else {}

    def listed(source: _Source, key: str) -> list:
        value = source.data.get(key) if isinstance(source.data, dict) else None
        return value if isinstance(value, list) else []

    kinds: dict[str, tuple[_Source, DataPath]] = {}
    for source in sources:
        for kind in mapping(source, "templates"):
            if _templates.kind_problem(kind) is not None:
                continue
            path = ("templates", kind)
            if kind in kinds:
                issues.append(source.issue(path, f"template '{kind}' is already defined at {where(*kinds[kind], key=True)}",
                                           "write all variants of a message kind in one place", key=True))
            else:
                kinds[kind] = (source, path)

    faq_at: dict[str, str] = {}
    seen_conditions: dict[str, str] = {}
    for source in sources:
        for index, entry in enumerate(listed(source, "faq")):
            entry_id = entry.get("id") if isinstance(entry, dict) else None
            if not isinstance(entry_id, str):
                continue
            path = ("faq", index)
            if entry_id in faq_at:
                issues.append(source.issue(path + ("id",), f"duplicate faq entry id (first used at {faq_at[entry_id]})",
                                           "faq entry ids must be unique across all files"))
                continue
            if entry_id in rule_at:
                issues.append(source.issue(path + ("id",), f"'{entry_id}' is already a rule id (at {rule_at[entry_id]})",
                                           "an faq entry becomes a rule of the faq group: pick an id no rule has"))
                continue
            faq_at[entry_id] = where(source, path + ("id",))
            kind = f"faq.{entry_id}"
            if kind in kinds:
                other, other_path = kinds[kind]
                issues.append(other.issue(other_path, f"faq entry '{entry_id}' (at {faq_at[entry_id]}) has its answer "
                                          "under its own `answer:` already", "remove this template, or edit the "
                                          "entry's answer", key=True))
            if source.has_bad_within(path):
                continue
            try:
                condition = canonical_json(_canonical_condition(_faq_condition(entry)))
            except (KeyError, TypeError, AttributeError):
                continue
            if condition in seen_conditions:
                issues.append(source.issue(path + ("keywords",), f"has the same keywords and condition as faq entry "
                                           f"'{seen_conditions[condition]}' above, so it can never answer",
                                           "merge the two entries or change the keywords", key=True))
            else:
                seen_conditions[condition] = entry_id

    answered = set(faq_at)
    for source in sources:
        for gi, group in enumerate(listed(source, "groups")):
            if not isinstance(group, dict) or group.get("name") != "faq":
                continue
            if faq_at:
                first = next(iter(faq_at.values()))
                issues.append(source.issue(("groups", gi, "name"), f"this group is written for you from the faq: "
                                           f"entries (the first at {first})",
                                           "move these rules into faq: entries, or drop the faq: entries and write "
                                           "the answers under templates: faq.<id>"))
                continue
            for ri, rule in enumerate(group.get("rules") if isinstance(group.get("rules"), list) else []):
                then = rule.get("then") if isinstance(rule, dict) else None
                answer = then.get("answer") if isinstance(then, dict) else None
                if not isinstance(answer, str):
                    continue
                answered.add(answer)
                if f"faq.{answer}" not in kinds:
                    defined = [kind[4:] for kind in kinds if kind.startswith("faq.")]
                    hint = _suggest(answer, defined) or f"define templates: faq.{answer}: {{en: ...}} in a rules file"
                    issues.append(source.issue(("groups", gi, "rules", ri, "then", "answer"),
                                               f"answer '{answer}' has no template faq.{answer}", hint))
    for kind, (source, path) in kinds.items():
        if kind.startswith("faq.") and kind[4:] not in answered and kind[4:] not in faq_at:
            hint = _suggest(kind[4:], answered) or "an FAQ answer is written under its entry's `answer:` in faq:"
            issues.append(source.issue(path, f"template '{kind}': no faq entry or faq rule answers with "
                                       f"'{kind[4:]}'", hint, key=True))


# ---------------------------------------------------------------------------------------------
# Normalisation and entry points


def _text(description: str | None) -> str:
    """Descriptions with their whitespace collapsed: re-wrapping a YAML `>` block is not a change."""
    return " ".join((description or "").split())


FAQ_GROUP_DESCRIPTION = ("Written from the faq: entries, in their order: the first entry with a keyword in the "
                         "ticket's text (and whose condition holds) gives the answer.")


def _variants(variants: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Variants as {key: {subject?, body}}, sorted. Trailing whitespace is not part of a message
    (rendering strips it), so `|` and `|-` blocks give the same version."""
    out = {}
    for key, spec in sorted(variants.items()):
        spec = {"body": spec} if isinstance(spec, str) else spec
        out[key] = {part: spec[part].rstrip() for part in ("subject", "body") if part in spec}
    return out


def _normalise(sources: list[_Source]) -> dict[str, Any]:
    groups = []
    policies = {}
    calendars: dict[str, Any] = {}
    templates: dict[str, Any] = {}
    faq_rules: list[dict[str, Any]] = []
    for source in sources:
        for kind, variants in (source.data.get("templates") or {}).items():
            templates[kind] = _variants(variants)
        for entry in source.data.get("faq") or []:
            faq_rules.append({"id": entry["id"], "description": _text(entry.get("description")),
                              "then": {"answer": entry["id"]}, "when": _faq_condition(entry)})
            templates[f"faq.{entry['id']}"] = _variants(entry["answer"])
        for group in source.data.get("groups") or []:
            actions = GROUP_ACTIONS[group["name"]]
            rules = []
            for rule in group["rules"]:
                then = {}
                for key, value in rule["then"].items():
                    kind = actions[key].kind
                    if kind == A_DURATION:
                        value = _parse_duration(value)
                    elif kind == A_LIST:
                        value = list(dict.fromkeys(value))
                    then[key] = value
                normal = {"id": rule["id"], "description": _text(rule.get("description")), "then": then}
                if "when" in rule:
                    normal["when"] = _copied(rule["when"])
                rules.append(normal)
            groups.append({"name": group["name"], "match": group["match"],
                           "description": _text(group.get("description")), "rules": rules})
        for name, policy in (source.data.get("sla_policies") or {}).items():
            normal = {
                "description": _text(policy.get("description")),
                "first_response": _parse_duration(policy["first_response"]),
                "resolution": _parse_duration(policy["resolution"]),
                "pause_on": list(dict.fromkeys(policy.get("pause_on", DEFAULT_PAUSE_ON))),
                "warnings": sorted({float(f) for f in policy.get("warnings", DEFAULT_WARNINGS)}),
                "on_change": policy.get("on_change", "keep"),
            }
            for optional in ("next_reply", "periodic_update"):
                if optional in policy:
                    normal[optional] = _parse_duration(policy[optional])
            if "calendar" in policy:
                normal["calendar"] = policy["calendar"]
            policies[name] = normal
        for name, spec in (source.data.get("calendars") or {}).items():
            calendars[name] = from_normalised(normalise_calendar(name, spec, _base_dir(source)))
    if faq_rules:
        groups.append({"name": "faq", "match": "first", "description": FAQ_GROUP_DESCRIPTION, "rules": faq_rules})
    groups.sort(key=lambda group: group["name"])
    out: dict[str, Any] = {"groups": groups, "sla_policies": dict(sorted(policies.items()))}
    if calendars:
        out["calendars"] = dict(sorted(calendars.items()))
    if templates:  # absent rather than empty: rulesets without templates keep their version
        out["templates"] = dict(sorted(templates.items()))
    return out


def _validate(sources: list[_Source], issues: list[RuleIssue]) -> dict[str, Any]:
    """Run every check over parsed sources; raise RulesetError with all issues, or normalise."""
    for source in sources:
        issues.extend(_schema_issues(source))
        _check_source(source, issues)
    _check_ruleset(sources, issues)
    if issues:
        unique = list(dict.fromkeys(issues))  # overlapping schema branches can repeat a message
        raise RulesetError(unique)
    return _normalise(sources)


def load_ruleset_texts(files: Mapping[str, str]) -> Ruleset:
    """Load a ruleset from {file name: YAML text}; the names appear in error messages."""
    sources: list[_Source] = []
    issues: list[RuleIssue] = []
    for name, text in files.items():
        source, problems = _parse(name, text)
        issues.extend(problems)
        if source is not None:
            sources.append(source)
    if not files:
        issues.append(RuleIssue("<rules>", None, None, None, None, "no rules files were given"))
    return Ruleset(_validate(sources, issues))


def load_ruleset(path: Path | str) -> Ruleset:
    """Load the rules directory `path` (every *.yaml / *.yml directly in it; subdirectories such
    as rules/tests/ are not read) or a single rules file. Raises RulesetError listing every
    problem found."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))
        if not files:
            raise RulesetError([RuleIssue(str(path), None, None, None, None,
                                          "no rules files (*.yaml) in this directory")])
    elif path.is_file():
        files = [path]
    else:
        raise RulesetError([RuleIssue(str(path), None, None, None, None, "no such file or directory")])
    texts = {}
    issues = []
    for file in files:
        try:
            texts[str(file)] = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            issues.append(RuleIssue(str(file), None, None, None, None, f"cannot read the file: {exc}"))
    if issues:
        raise RulesetError(issues)
    return load_ruleset_texts(texts)


def validate_dict(data: Mapping[str, Any], source: str = "<ruleset>") -> dict[str, Any]:
    """Validate a ruleset given as data (e.g. `Ruleset.to_dict()` output read back from JSON)
    and return its normalised form. Issues name `source` and carry no line numbers."""
    try:
        # A JSON round trip copies the data and rejects anything JSON could not have held.
        data = json.loads(json.dumps(data))
    except (TypeError, ValueError) as exc:
        raise RulesetError([RuleIssue(source, None, None, None, None, f"not JSON data: {exc}")]) from None
    return _validate([_Source(source, data)], [])
